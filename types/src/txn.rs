//! Transactions: the HTTP API v1 bodies of `/v1/producers` (transactional) and
//! `/v1/transactions/...`, the admin views, and the calls the Worker makes to a transaction
//! coordinator object.
//!
//! The coordinator itself lives in `kafdo-txn-coordinator` (see `design/txn-coordinator.md`).
//! A transactional producer talks to it in this order:
//!
//! 1. `POST /v1/producers {"transactional_id"}` ([`crate::api::InitProducerRequest`]): the stable
//!    producer id and a new epoch; any older instance is fenced, its open transaction finished.
//! 2. `POST /v1/transactions/{id}/partitions` ([`AddPartitionsRequest`]) before the first write
//!    to a partition: the coordinator registers the (producer id, epoch) with the partition.
//! 3. Transactional writes to those partitions with the same producer id and epoch.
//! 4. `POST /v1/transactions/{id}/offsets` ([`AddOffsetsRequest`]) for consume-transform-produce.
//! 5. `POST /v1/transactions/{id}/commit` or `/abort` ([`EndTxnRequest`]): the answer
//!    ([`EndTxnResponse`]) carries the epoch for the next transaction, bumped after every commit
//!    or abort (KIP-890 part 2). A commit that timed out has an unknown outcome: retry it with the
//!    same epoch; a retry after the commit completed answers success again.

use serde::{Deserialize, Serialize};

use crate::rpc::{PartitionRef, TopicPartitionOffset};

/// The transaction timeout when `POST /v1/producers` does not give one (Kafka's default).
pub const DEFAULT_TRANSACTION_TIMEOUT_MS: i64 = 60_000;
/// The longest transaction timeout a producer may ask for (Kafka's
/// `transaction.max.timeout.ms` default, 15 minutes).
pub const MAX_TRANSACTION_TIMEOUT_MS: i64 = 15 * 60 * 1000;
/// The longest `transactional_id`, in bytes.
pub const MAX_TRANSACTIONAL_ID_LEN: usize = 249;
/// The longest `group_id`, in bytes.
pub const MAX_GROUP_ID_LEN: usize = 249;
/// The most partitions one transaction may write to.
pub const MAX_PARTITIONS_PER_TXN: usize = 1_000;
/// The most consumer groups one transaction may commit offsets to.
pub const MAX_GROUPS_PER_TXN: usize = 16;
/// The most partitions one `POST /v1/transactions/{id}/partitions` may add.
pub const MAX_PARTITIONS_PER_ADD: usize = 100;
/// The most offsets one `POST /v1/transactions/{id}/offsets` may carry.
pub const MAX_OFFSETS_PER_ADD: usize = 1_000;

/// Checks a `transactional_id`: 1 to 249 bytes, no control characters (it names a Durable
/// Object and appears in URL paths).
pub fn valid_transactional_id(transactional_id: &str) -> bool {
    crate::limits::valid_id(transactional_id, MAX_TRANSACTIONAL_ID_LEN)
}

/// Checks a `group_id`: 1 to 249 bytes, no control characters.
pub fn valid_group_id(group_id: &str) -> bool {
    crate::limits::valid_id(group_id, MAX_GROUP_ID_LEN)
}

/// The state of a transactional id's current (or last) transaction, named as Kafka names it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TransactionState {
    /// No transaction has been started with the current epoch.
    Empty,
    /// A transaction is open: partitions or offsets were added and it has not ended.
    Ongoing,
    /// The commit point has passed: commit markers are being written to every participant.
    PrepareCommit,
    /// The transaction is aborting: abort markers are being written to every participant.
    PrepareAbort,
    /// Every participant acknowledged the commit marker.
    CompleteCommit,
    /// Every participant acknowledged the abort marker.
    CompleteAbort,
}

impl TransactionState {
    /// The name on the wire and in storage.
    pub fn name(self) -> &'static str {
        match self {
            TransactionState::Empty => "Empty",
            TransactionState::Ongoing => "Ongoing",
            TransactionState::PrepareCommit => "PrepareCommit",
            TransactionState::PrepareAbort => "PrepareAbort",
            TransactionState::CompleteCommit => "CompleteCommit",
            TransactionState::CompleteAbort => "CompleteAbort",
        }
    }

    /// The state of a name, the inverse of [`TransactionState::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "Empty" => TransactionState::Empty,
            "Ongoing" => TransactionState::Ongoing,
            "PrepareCommit" => TransactionState::PrepareCommit,
            "PrepareAbort" => TransactionState::PrepareAbort,
            "CompleteCommit" => TransactionState::CompleteCommit,
            "CompleteAbort" => TransactionState::CompleteAbort,
            _ => return None,
        })
    }

    /// Whether a transaction is open or ending (it holds back the last stable offset of its
    /// partitions).
    pub fn is_open(self) -> bool {
        matches!(
            self,
            TransactionState::Ongoing
                | TransactionState::PrepareCommit
                | TransactionState::PrepareAbort
        )
    }
}

impl std::fmt::Display for TransactionState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A topic partition as a client names it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicPartition {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
}

/// `POST /v1/transactions/{id}/partitions`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddPartitionsRequest {
    /// The producer id from `POST /v1/producers`.
    pub producer_id: i64,
    /// The current epoch.
    pub producer_epoch: i32,
    /// The partitions the transaction will write to (1 to [`MAX_PARTITIONS_PER_ADD`]).
    pub partitions: Vec<TopicPartition>,
}

/// `POST /v1/transactions/{id}/offsets`: consumer offsets committed inside the transaction
/// (KIP-447: fenced by the group's generation and member id).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddOffsetsRequest {
    /// The producer id.
    pub producer_id: i64,
    /// The current epoch.
    pub producer_epoch: i32,
    /// The consumer group.
    pub group_id: String,
    /// The consumer's generation in the group.
    pub generation_id: i32,
    /// The consumer's member id in the group.
    pub member_id: String,
    /// The offsets (1 to [`MAX_OFFSETS_PER_ADD`]).
    pub offsets: Vec<TopicPartitionOffset>,
}

/// `POST /v1/transactions/{id}/commit` and `POST /v1/transactions/{id}/abort`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndTxnRequest {
    /// The producer id.
    pub producer_id: i64,
    /// The epoch of the transaction to end.
    pub producer_epoch: i32,
    /// Keep the epoch for the next transaction (Kafka's "transaction version 1", what
    /// librdkafka, kafka-python and kafkajs speak through the Kafka gateway: EndTxn below v5).
    /// By default the end bumps the epoch, as KIP-890 part 2 does (see
    /// `design/txn-coordinator.md`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub keep_epoch: bool,
}

/// The answer to a commit or an abort (also to the admin abort).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndTxnResponse {
    /// `CompleteCommit` or `CompleteAbort`.
    pub state: TransactionState,
    /// The producer id to use for the next transaction: the same one, except once its epochs
    /// run out, when the transactional id moves to a new producer id (KIP-890 part 2).
    pub producer_id: i64,
    /// The epoch to use for the next transaction (bumped after every commit or abort; 0 with a
    /// new producer id).
    pub producer_epoch: i32,
}

/// `GET /v1/transactions/{id}`: the current or last transaction of a transactional id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactionDescription {
    /// The transactional id.
    pub transactional_id: String,
    /// The state.
    pub state: TransactionState,
    /// The producer id (`-1` before the first `POST /v1/producers`).
    pub producer_id: i64,
    /// The current epoch (`-1` before the first `POST /v1/producers`).
    pub producer_epoch: i32,
    /// The partitions of the current or last transaction.
    pub partitions: Vec<TopicPartition>,
    /// The consumer groups of the current or last transaction.
    #[serde(default)]
    pub groups: Vec<String>,
    /// The producer's transaction timeout.
    pub transaction_timeout_ms: i64,
    /// How long the transaction has been open (`None` unless it is open or ending).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age_ms: Option<i64>,
}

/// The admin list of open transactions (`GET /v1/admin/transactions`): what holds back the last
/// stable offset of which partitions, and for how long.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenTransactionList {
    /// Open transactions, oldest first.
    pub transactions: Vec<OpenTransaction>,
}

/// One open transaction in the admin list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenTransaction {
    /// The transactional id.
    pub transactional_id: String,
    /// The producer id.
    pub producer_id: i64,
    /// The epoch of the open transaction.
    pub producer_epoch: i32,
    /// `Ongoing`, `PrepareCommit` or `PrepareAbort`.
    pub state: TransactionState,
    /// How long it has been open.
    pub age_ms: i64,
    /// The partitions it holds back.
    pub partitions: Vec<HeldPartition>,
}

/// A partition whose last stable offset an open transaction holds back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldPartition {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The transaction's first offset in the partition: the last stable offset cannot pass it
    /// (`None` when the transaction has not written there yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_offset: Option<i64>,
}

/// `POST /txn/add-partitions`: the Worker's call to a coordinator object for
/// `POST /v1/transactions/{id}/partitions`, with the topics resolved to their incarnations.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoordinatorAddPartitions {
    /// The producer id.
    pub producer_id: i64,
    /// The current epoch.
    pub producer_epoch: i32,
    /// The partitions, resolved through the metadata object.
    pub partitions: Vec<PartitionRef>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_names_round_trip_and_match_serde() {
        for state in [
            TransactionState::Empty,
            TransactionState::Ongoing,
            TransactionState::PrepareCommit,
            TransactionState::PrepareAbort,
            TransactionState::CompleteCommit,
            TransactionState::CompleteAbort,
        ] {
            assert_eq!(TransactionState::from_name(state.name()), Some(state));
            let json = serde_json::to_string(&state).unwrap();
            assert_eq!(json, format!("\"{}\"", state.name()));
        }
        assert_eq!(TransactionState::from_name("Dead"), None);
    }

    #[test]
    fn http_bodies_parse_as_the_brief_writes_them() {
        let add: AddPartitionsRequest = serde_json::from_str(
            r#"{"producer_id":7,"producer_epoch":2,"partitions":[{"topic":"a","partition":1}]}"#,
        )
        .unwrap();
        assert_eq!(
            add.partitions[0],
            TopicPartition {
                topic: "a".into(),
                partition: 1
            }
        );

        let offsets: AddOffsetsRequest = serde_json::from_str(
            r#"{"producer_id":7,"producer_epoch":2,"group_id":"g","generation_id":3,
                "member_id":"m","offsets":[{"topic":"a","partition":0,"offset":42}]}"#,
        )
        .unwrap();
        assert_eq!(offsets.offsets[0].offset, 42);

        let end: EndTxnRequest =
            serde_json::from_str(r#"{"producer_id":7,"producer_epoch":2}"#).unwrap();
        assert_eq!(end.producer_epoch, 2);
        assert!(serde_json::from_str::<EndTxnRequest>(r#"{"producer_id":7}"#).is_err());
        assert!(serde_json::from_str::<EndTxnRequest>(
            r#"{"producer_id":7,"producer_epoch":2,"extra":1}"#
        )
        .is_err());

        let answer = serde_json::to_string(&EndTxnResponse {
            state: TransactionState::CompleteCommit,
            producer_id: 7,
            producer_epoch: 3,
        })
        .unwrap();
        assert_eq!(
            answer,
            r#"{"state":"CompleteCommit","producer_id":7,"producer_epoch":3}"#
        );
    }

    #[test]
    fn ids_are_checked() {
        assert!(valid_transactional_id("orders-1"));
        assert!(!valid_transactional_id(""));
        assert!(!valid_transactional_id("a\nb"));
        assert!(!valid_transactional_id(
            &"x".repeat(MAX_TRANSACTIONAL_ID_LEN + 1)
        ));
        assert!(valid_group_id("g"));
        assert!(!valid_group_id(""));
    }

    mod round_trips {
        use super::*;
        use proptest::prelude::*;
        use serde::de::DeserializeOwned;

        fn state() -> impl Strategy<Value = TransactionState> {
            prop_oneof![
                Just(TransactionState::Empty),
                Just(TransactionState::Ongoing),
                Just(TransactionState::PrepareCommit),
                Just(TransactionState::PrepareAbort),
                Just(TransactionState::CompleteCommit),
                Just(TransactionState::CompleteAbort),
            ]
        }

        fn topic_partition() -> impl Strategy<Value = TopicPartition> {
            ("[a-z]{1,8}", 0..256i32)
                .prop_map(|(topic, partition)| TopicPartition { topic, partition })
        }

        fn offset() -> impl Strategy<Value = TopicPartitionOffset> {
            (
                "[a-z]{1,8}",
                0..256i32,
                0..(1i64 << 53),
                proptest::option::of(".{0,8}"),
            )
                .prop_map(|(topic, partition, offset, metadata)| {
                    TopicPartitionOffset {
                        topic,
                        partition,
                        offset,
                        metadata,
                    }
                })
        }

        /// JSON and CBOR both give back what went in.
        fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(value: &T) {
            let json = serde_json::to_string(value).unwrap();
            assert_eq!(&serde_json::from_str::<T>(&json).unwrap(), value);
            let mut cbor = Vec::new();
            ciborium::into_writer(value, &mut cbor).unwrap();
            assert_eq!(&ciborium::from_reader::<T, _>(&cbor[..]).unwrap(), value);
        }

        proptest! {
            #[test]
            fn add_partitions(producer_id in 0..(1i64 << 53), producer_epoch in 0..i32::MAX,
                              partitions in proptest::collection::vec(topic_partition(), 0..5)) {
                round_trip(&AddPartitionsRequest { producer_id, producer_epoch, partitions });
            }

            #[test]
            fn add_offsets(producer_id in 0..(1i64 << 53), producer_epoch in 0..i32::MAX,
                           group_id in ".{1,12}", generation_id in -1..i32::MAX,
                           member_id in ".{0,12}",
                           offsets in proptest::collection::vec(offset(), 0..5)) {
                round_trip(&AddOffsetsRequest {
                    producer_id, producer_epoch, group_id, generation_id, member_id, offsets,
                });
            }

            #[test]
            fn end_txn(producer_id in 0..(1i64 << 53), producer_epoch in 0..i32::MAX,
                       state in state()) {
                round_trip(&EndTxnRequest {
                    producer_id,
                    producer_epoch,
                    keep_epoch: false,
                });
                round_trip(&EndTxnResponse { state, producer_id, producer_epoch });
            }

            #[test]
            fn descriptions(transactional_id in ".{1,12}", state in state(),
                            producer_id in -1..(1i64 << 53), producer_epoch in -1..i32::MAX,
                            partitions in proptest::collection::vec(topic_partition(), 0..5),
                            groups in proptest::collection::vec("[a-z]{1,8}", 0..3),
                            age_ms in proptest::option::of(0..(1i64 << 40))) {
                round_trip(&TransactionDescription {
                    transactional_id: transactional_id.clone(),
                    state,
                    producer_id,
                    producer_epoch,
                    partitions: partitions.clone(),
                    groups,
                    transaction_timeout_ms: DEFAULT_TRANSACTION_TIMEOUT_MS,
                    age_ms,
                });
                let held = partitions
                    .into_iter()
                    .map(|p| HeldPartition { topic: p.topic, partition: p.partition,
                                             first_offset: age_ms })
                    .collect();
                round_trip(&OpenTransactionList {
                    transactions: vec![OpenTransaction {
                        transactional_id,
                        producer_id,
                        producer_epoch,
                        state,
                        age_ms: age_ms.unwrap_or(0),
                        partitions: held,
                    }],
                });
            }
        }
    }
}
