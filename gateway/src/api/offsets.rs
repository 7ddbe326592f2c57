//! ListOffsets: a partition's earliest offset, its latest (the high watermark, or the last
//! stable offset under read_committed), and the first offset at or after a timestamp.

use futures_util::future::join_all;
use kafdo_types::api::Isolation;
use kafka_protocol::messages::list_offsets_request::ListOffsetsPartition;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ApiKey, ListOffsetsRequest, ListOffsetsResponse};
use kafka_protocol::ResponseError;

use super::Gateway;
use crate::errors;

/// Kafka's `timestamp` values that name an offset rather than a time.
const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;

impl Gateway {
    pub(super) async fn list_offsets(
        &self,
        request: ListOffsetsRequest,
        version: i16,
    ) -> ListOffsetsResponse {
        let isolation = if request.isolation_level == 1 {
            Isolation::ReadCommitted
        } else {
            Isolation::ReadUncommitted
        };
        let mut topics = Vec::with_capacity(request.topics.len());
        for topic in &request.topics {
            let name = topic.name.0.as_str();
            let partitions = join_all(
                topic
                    .partitions
                    .iter()
                    .map(|p| self.list_offset(name, p, isolation, version)),
            )
            .await;
            topics.push(
                ListOffsetsTopicResponse::default()
                    .with_name(topic.name.clone())
                    .with_partitions(partitions),
            );
        }
        ListOffsetsResponse::default().with_topics(topics)
    }

    async fn list_offset(
        &self,
        topic: &str,
        wanted: &ListOffsetsPartition,
        isolation: Isolation,
        version: i16,
    ) -> ListOffsetsPartitionResponse {
        let answer =
            ListOffsetsPartitionResponse::default().with_partition_index(wanted.partition_index);
        let found = match wanted.timestamp {
            LATEST | EARLIEST => self
                .kafdo
                .partition_info(topic, wanted.partition_index)
                .await
                .map(|info| match (wanted.timestamp, isolation) {
                    (EARLIEST, _) => (info.log_start_offset, -1),
                    (_, Isolation::ReadCommitted) => (info.last_stable_offset, -1),
                    (_, Isolation::ReadUncommitted) => (info.high_watermark, -1),
                })
                .map_err(|e| errors::from_client(&e)),
            MAX_TIMESTAMP => Err((
                ResponseError::InvalidRequest,
                "the offset of the largest timestamp (-3) is not offered".to_string(),
            )),
            timestamp if timestamp < 0 => Err((
                ResponseError::InvalidRequest,
                format!("unknown offset spec {timestamp}"),
            )),
            timestamp => self
                .kafdo
                .offset_for_timestamp(topic, wanted.partition_index, timestamp, isolation)
                .await
                .map(|found| {
                    // Kafka answers -1, -1 when no record has such a timestamp.
                    (found.offset.unwrap_or(-1), found.timestamp.unwrap_or(-1))
                })
                .map_err(|e| errors::from_client(&e)),
        };
        match found {
            Ok((offset, timestamp)) => answer.with_offset(offset).with_timestamp(timestamp),
            Err((code, message)) => {
                let code = errors::for_version(ApiKey::ListOffsets, version, code);
                tracing::debug!(?code, %message, "ListOffsets: a partition failed");
                answer.with_error_code(code.code())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::protocol::Encodable;

    #[test]
    fn every_offered_version_encodes() {
        let (low, high) = super::super::offered(ApiKey::ListOffsets).unwrap();
        for version in low..=high {
            let answer = ListOffsetsResponse::default().with_topics(vec![
                ListOffsetsTopicResponse::default().with_partitions(vec![
                    ListOffsetsPartitionResponse::default().with_offset(5),
                    ListOffsetsPartitionResponse::default().with_error_code(3),
                ]),
            ]);
            answer
                .encode(&mut BytesMut::new(), version)
                .unwrap_or_else(|e| panic!("v{version}: {e}"));
        }
    }
}
