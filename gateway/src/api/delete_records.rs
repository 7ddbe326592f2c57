//! DeleteRecords: each partition's records before an offset deleted (Kafdo's
//! `DELETE /v1/topics/{t}/partitions/{p}/records?before=N`), all partitions at once. Offset -1
//! is Kafka's "up to the high watermark": the gateway reads the high watermark first, and
//! Kafdo refuses an offset past the last stable offset (an open transaction's records stay).

use futures_util::future::join_all;
use kafka_protocol::messages::delete_records_request::DeleteRecordsPartition;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{ApiKey, DeleteRecordsRequest, DeleteRecordsResponse};

use super::Gateway;
use crate::errors;

/// Kafka's offset for "every record up to the high watermark".
const HIGH_WATERMARK: i64 = -1;

impl Gateway {
    pub(super) async fn delete_records(
        &self,
        request: DeleteRecordsRequest,
        version: i16,
    ) -> DeleteRecordsResponse {
        let topics = request.topics.iter().map(|topic| async move {
            let name = topic.name.0.as_str();
            let partitions = join_all(
                topic
                    .partitions
                    .iter()
                    .map(|p| self.delete_partition_records(name, p, version)),
            )
            .await;
            DeleteRecordsTopicResult::default()
                .with_name(topic.name.clone())
                .with_partitions(partitions)
        });
        DeleteRecordsResponse::default().with_topics(join_all(topics).await)
    }

    async fn delete_partition_records(
        &self,
        topic: &str,
        wanted: &DeleteRecordsPartition,
        version: i16,
    ) -> DeleteRecordsPartitionResult {
        let answer =
            DeleteRecordsPartitionResult::default().with_partition_index(wanted.partition_index);
        let partition = wanted.partition_index;
        let before = match wanted.offset {
            HIGH_WATERMARK => self
                .kafdo
                .partition_info(topic, partition)
                .await
                .map(|info| info.high_watermark),
            offset => Ok(offset),
        };
        let deleted = match before {
            Ok(before) => self.kafdo.delete_records(topic, partition, before).await,
            Err(error) => Err(error),
        };
        match deleted {
            Ok(done) => answer.with_low_watermark(done.log_start_offset),
            Err(error) => {
                let (code, message) = errors::from_client(&error);
                let code = errors::for_version(ApiKey::DeleteRecords, version, code);
                tracing::debug!(?code, %message, "DeleteRecords: a partition failed");
                answer.with_low_watermark(-1).with_error_code(code.code())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::protocol::Encodable;
    use kafka_protocol::ResponseError;

    #[test]
    fn every_offered_version_encodes() {
        let (low, high) = super::super::offered(ApiKey::DeleteRecords).unwrap();
        for version in low..=high {
            let answer = DeleteRecordsResponse::default().with_topics(vec![
                DeleteRecordsTopicResult::default().with_partitions(vec![
                    DeleteRecordsPartitionResult::default().with_low_watermark(7),
                    DeleteRecordsPartitionResult::default()
                        .with_partition_index(1)
                        .with_low_watermark(-1)
                        .with_error_code(ResponseError::OffsetOutOfRange.code()),
                ]),
            ]);
            answer
                .encode(&mut BytesMut::new(), version)
                .unwrap_or_else(|e| panic!("v{version}: {e}"));
        }
    }
}
