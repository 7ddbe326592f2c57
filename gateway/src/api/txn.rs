//! The transaction APIs of classic Kafka clients (KIP-98, "transaction version 1"):
//! AddPartitionsToTxn (v0-3, the client's form) and EndTxn (v0-3). Both become Kafdo's
//! transaction calls (`POST /v1/transactions/{id}/partitions`, `.../commit`, `.../abort`); the
//! end keeps the epoch (`keep_epoch`), as these clients expect: they go on with the same epoch
//! and continue their sequence numbers. The coordinator's transaction numbers keep the
//! transactions of one epoch apart at the partitions (`design/txn-coordinator.md`,
//! "Transaction version 1").

use super::Gateway;
use crate::errors;
use kafdo_types::txn::{AddPartitionsRequest, EndTxnRequest, TopicPartition};
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, ApiKey, EndTxnRequest as KafkaEndTxn,
    EndTxnResponse,
};

impl Gateway {
    pub(super) async fn add_partitions_to_txn(
        &self,
        request: AddPartitionsToTxnRequest,
        version: i16,
    ) -> AddPartitionsToTxnResponse {
        let partitions: Vec<TopicPartition> = request
            .v3_and_below_topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(|&partition| TopicPartition {
                    topic: t.name.0.to_string(),
                    partition,
                })
            })
            .collect();
        let add = AddPartitionsRequest {
            producer_id: request.v3_and_below_producer_id.0,
            producer_epoch: i32::from(request.v3_and_below_producer_epoch),
            partitions,
        };
        let transactional_id = request.v3_and_below_transactional_id.0.as_str();
        // Kafdo adds all of them or none: one code for every partition.
        let code = match self
            .kafdo
            .add_partitions_to_txn(transactional_id, &add)
            .await
        {
            Ok(()) => 0,
            Err(error) => {
                let (code, message) = errors::from_client(&error);
                let code = errors::for_version(ApiKey::AddPartitionsToTxn, version, code);
                tracing::debug!(?code, %message, "AddPartitionsToTxn refused");
                code.code()
            }
        };
        let results = request
            .v3_and_below_topics
            .iter()
            .map(|t| {
                AddPartitionsToTxnTopicResult::default()
                    .with_name(t.name.clone())
                    .with_results_by_partition(
                        t.partitions
                            .iter()
                            .map(|&p| {
                                AddPartitionsToTxnPartitionResult::default()
                                    .with_partition_index(p)
                                    .with_partition_error_code(code)
                            })
                            .collect(),
                    )
            })
            .collect();
        AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results)
    }

    pub(super) async fn end_txn(&self, request: KafkaEndTxn, version: i16) -> EndTxnResponse {
        let end = EndTxnRequest {
            producer_id: request.producer_id.0,
            producer_epoch: i32::from(request.producer_epoch),
            keep_epoch: true,
        };
        match self
            .kafdo
            .end_transaction(request.transactional_id.0.as_str(), request.committed, &end)
            .await
        {
            Ok(_) => EndTxnResponse::default(),
            Err(error) => {
                let (code, message) = errors::from_client(&error);
                let code = errors::for_version(ApiKey::EndTxn, version, code);
                tracing::debug!(?code, %message, "EndTxn refused");
                EndTxnResponse::default().with_error_code(code.code())
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
        for api in [ApiKey::AddPartitionsToTxn, ApiKey::EndTxn] {
            let (low, high) = super::super::offered(api).unwrap();
            for version in low..=high {
                let mut out = BytesMut::new();
                let encoded = match api {
                    ApiKey::AddPartitionsToTxn => AddPartitionsToTxnResponse::default()
                        .with_results_by_topic_v3_and_below(vec![
                            AddPartitionsToTxnTopicResult::default().with_results_by_partition(
                                vec![AddPartitionsToTxnPartitionResult::default()
                                    .with_partition_error_code(
                                        ResponseError::ConcurrentTransactions.code(),
                                    )],
                            ),
                        ])
                        .encode(&mut out, version),
                    _ => EndTxnResponse::default()
                        .with_error_code(ResponseError::InvalidTxnState.code())
                        .encode(&mut out, version),
                };
                encoded.unwrap_or_else(|e| panic!("{api:?} v{version}: {e}"));
            }
        }
    }
}
