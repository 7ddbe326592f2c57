//! The transaction APIs of classic Kafka clients (KIP-98, "transaction version 1"):
//! AddPartitionsToTxn (v0-3, the client's form) and EndTxn (v0-3); and the admin's view,
//! ListTransactions (v0-2), DescribeTransactions (v0) and DescribeProducers (v0, KIP-664). The first two become Kafdo's
//! transaction calls (`POST /v1/transactions/{id}/partitions`, `.../commit`, `.../abort`); the
//! end keeps the epoch (`keep_epoch`), as these clients expect: they go on with the same epoch
//! and continue their sequence numbers. The coordinator's transaction numbers keep the
//! transactions of one epoch apart at the partitions (`design/txn-coordinator.md`,
//! "Transaction version 1").

use super::Gateway;
use crate::errors;
use std::collections::BTreeMap;

use futures_util::future::join_all;
use kafdo_types::txn::{AddPartitionsRequest, EndTxnRequest, TopicPartition};
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState as ProducerStateAnswer,
    TopicResponse as DescribeProducersTopicResponse,
};
use kafka_protocol::messages::describe_transactions_response::{
    TopicData, TransactionState as DescribedState,
};
use kafka_protocol::messages::list_transactions_response::TransactionState as ListedState;
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, ApiKey, DescribeProducersRequest,
    DescribeProducersResponse, DescribeTransactionsRequest, DescribeTransactionsResponse,
    EndTxnRequest as KafkaEndTxn, EndTxnResponse, ListTransactionsRequest,
    ListTransactionsResponse, ProducerId, TopicName, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

/// Kafka's names of the transaction states a ListTransactions filter may name.
const STATE_NAMES: &[&str] = &[
    "Empty",
    "Ongoing",
    "PrepareCommit",
    "PrepareAbort",
    "CompleteCommit",
    "CompleteAbort",
    "Dead",
    "PrepareEpochFence",
];

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
    /// ListTransactions: the transactions open now (Ongoing, PrepareCommit, PrepareAbort; Kafdo
    /// keeps no registry of idle transactional ids, so the ended ones are not listed), filtered
    /// by state, producer id, minimum age (v1) and transactional id pattern (v2, a regular
    /// expression: not offered, refused with `INVALID_REQUEST`).
    pub(super) async fn list_transactions(
        &self,
        request: ListTransactionsRequest,
        version: i16,
    ) -> ListTransactionsResponse {
        let unknown: Vec<StrBytes> = request
            .state_filters
            .iter()
            .filter(|s| !STATE_NAMES.contains(&s.as_str()))
            .cloned()
            .collect();
        let answer = ListTransactionsResponse::default().with_unknown_state_filters(unknown);
        if request.transactional_id_pattern.is_some() {
            return answer.with_error_code(ResponseError::InvalidRequest.code());
        }
        let open = match self.kafdo.list_transactions().await {
            Ok(list) => list.transactions,
            Err(error) => {
                let (code, message) = errors::from_client(&error);
                let code = errors::for_version(ApiKey::ListTransactions, version, code);
                tracing::debug!(?code, %message, "ListTransactions failed");
                return answer.with_error_code(code.code());
            }
        };
        let states = open
            .into_iter()
            .filter(|t| {
                request.state_filters.is_empty()
                    || request
                        .state_filters
                        .iter()
                        .any(|s| s.as_str() == t.state.name())
            })
            .filter(|t| {
                request.producer_id_filters.is_empty()
                    || request
                        .producer_id_filters
                        .contains(&ProducerId(t.producer_id))
            })
            .filter(|t| request.duration_filter < 0 || t.age_ms >= request.duration_filter)
            .map(|t| {
                ListedState::default()
                    .with_transactional_id(TransactionalId(StrBytes::from_string(
                        t.transactional_id,
                    )))
                    .with_producer_id(ProducerId(t.producer_id))
                    .with_transaction_state(StrBytes::from_static_str(t.state.name()))
            })
            .collect();
        answer.with_transaction_states(states)
    }

    /// DescribeTransactions: each transactional id's state, producer, timeout, start time (of
    /// an open transaction) and partitions; `TRANSACTIONAL_ID_NOT_FOUND` for an id that never
    /// had a producer.
    pub(super) async fn describe_transactions(
        &self,
        request: DescribeTransactionsRequest,
        version: i16,
    ) -> DescribeTransactionsResponse {
        let states = request.transactional_ids.iter().map(|id| async move {
            let answer = DescribedState::default().with_transactional_id(id.clone());
            let described = match self.kafdo.describe_transaction(id.0.as_str()).await {
                Ok(d) if d.producer_id < 0 => {
                    return answer
                        .with_error_code(ResponseError::TransactionalIdNotFound.code())
                        .with_producer_id(ProducerId(-1))
                        .with_producer_epoch(-1)
                        .with_transaction_start_time_ms(-1)
                }
                Ok(d) => d,
                Err(error) => {
                    let (code, message) = errors::from_client(&error);
                    let code = errors::for_version(ApiKey::DescribeTransactions, version, code);
                    tracing::debug!(?code, %message, "DescribeTransactions: an id failed");
                    return answer.with_error_code(code.code());
                }
            };
            let mut topics: BTreeMap<String, Vec<i32>> = BTreeMap::new();
            for p in &described.partitions {
                topics.entry(p.topic.clone()).or_default().push(p.partition);
            }
            let start_ms = described
                .age_ms
                .map_or(-1, |age| now_ms().saturating_sub(age));
            answer
                .with_transaction_state(StrBytes::from_static_str(described.state.name()))
                .with_transaction_timeout_ms(
                    i32::try_from(described.transaction_timeout_ms).unwrap_or(i32::MAX),
                )
                .with_transaction_start_time_ms(start_ms)
                .with_producer_id(ProducerId(described.producer_id))
                .with_producer_epoch(i16::try_from(described.producer_epoch).unwrap_or(-1))
                .with_topics(
                    topics
                        .into_iter()
                        .map(|(topic, partitions)| {
                            TopicData::default()
                                .with_topic(TopicName(StrBytes::from_string(topic)))
                                .with_partitions(partitions)
                        })
                        .collect(),
                )
        });
        DescribeTransactionsResponse::default().with_transaction_states(join_all(states).await)
    }
    /// DescribeProducers: each partition's producers (`GET .../partitions/{p}/producers`), with
    /// the partition's own error when it has none to give.
    pub(super) async fn describe_producers(
        &self,
        request: DescribeProducersRequest,
        version: i16,
    ) -> DescribeProducersResponse {
        let topics = request.topics.iter().map(|topic| async move {
            let name = topic.name.0.as_str();
            let partitions = topic.partition_indexes.iter().map(|&p| async move {
                let answer = PartitionResponse::default().with_partition_index(p);
                match self.kafdo.partition_producers(name, p).await {
                    Ok(list) => answer.with_active_producers(
                        list.producers
                            .into_iter()
                            .map(|s| {
                                ProducerStateAnswer::default()
                                    .with_producer_id(ProducerId(s.producer_id))
                                    .with_producer_epoch(s.producer_epoch)
                                    .with_last_sequence(s.last_sequence)
                                    .with_last_timestamp(s.last_timestamp)
                                    .with_coordinator_epoch(-1)
                                    .with_current_txn_start_offset(
                                        s.current_txn_start_offset.unwrap_or(-1),
                                    )
                            })
                            .collect(),
                    ),
                    Err(error) => {
                        let (code, message) = errors::from_client(&error);
                        let code = errors::for_version(ApiKey::DescribeProducers, version, code);
                        answer
                            .with_error_code(code.code())
                            .with_error_message(Some(StrBytes::from_string(message)))
                    }
                }
            });
            DescribeProducersTopicResponse::default()
                .with_name(topic.name.clone())
                .with_partitions(join_all(partitions).await)
        });
        DescribeProducersResponse::default().with_topics(join_all(topics).await)
    }
}

/// Now, in ms since the epoch, for a start time derived from an age.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::protocol::Encodable;

    #[test]
    fn the_admin_answers_encode_at_every_offered_version() {
        for version in 0..=2 {
            let answer = ListTransactionsResponse::default().with_transaction_states(vec![
                ListedState::default()
                    .with_producer_id(ProducerId(7))
                    .with_transaction_state(StrBytes::from_static_str("Ongoing")),
            ]);
            answer.encode(&mut BytesMut::new(), version).unwrap();
        }
        let answer = DescribeTransactionsResponse::default().with_transaction_states(vec![
            DescribedState::default()
                .with_producer_id(ProducerId(7))
                .with_topics(vec![TopicData::default().with_partitions(vec![0, 2])]),
        ]);
        answer.encode(&mut BytesMut::new(), 0).unwrap();
        assert_eq!(
            super::super::offered(ApiKey::ListTransactions),
            Some((0, 2))
        );
        assert_eq!(
            super::super::offered(ApiKey::DescribeTransactions),
            Some((0, 0))
        );
        let answer = DescribeProducersResponse::default().with_topics(vec![
            DescribeProducersTopicResponse::default().with_partitions(vec![
                PartitionResponse::default().with_active_producers(vec![
                    ProducerStateAnswer::default().with_current_txn_start_offset(-1),
                ]),
            ]),
        ]);
        answer.encode(&mut BytesMut::new(), 0).unwrap();
    }

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
