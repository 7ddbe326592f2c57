//! Calls to Durable Objects: what the Worker (and the cores, through their call traits) send to
//! a partition, the metadata object, a coordinator or a group.
//!
//! These travel as CBOR in the body of a `POST` to the object's path (for example
//! `/partition/append`). They are not part of the public API and may change with the Worker.

use serde::{Deserialize, Serialize};

use crate::api::{Isolation, TopicConfig};
use crate::record::ProduceRecord;

/// The identity of an idempotent or transactional producer on one batch.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerBatch {
    /// The producer id.
    pub producer_id: i64,
    /// The producer epoch.
    pub producer_epoch: i32,
    /// The sequence number of the batch's first record.
    pub base_sequence: i32,
}

/// Which topic incarnation a partition object serves. A topic that is deleted and created again
/// gets a new `topic_id`, so its partitions are new objects with empty logs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionRef {
    /// The topic name.
    pub topic: String,
    /// The topic's id (unique for ever).
    pub topic_id: String,
    /// The partition number.
    pub partition: i32,
    /// The topic's configuration.
    pub config: TopicConfig,
}

/// `POST /partition/append`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendRequest {
    /// Which partition.
    pub partition: PartitionRef,
    /// The producer, for an idempotent or transactional batch.
    pub producer: Option<ProducerBatch>,
    /// Whether the batch belongs to the producer's open transaction.
    pub transactional: bool,
    /// The records.
    pub records: Vec<ProduceRecord>,
}

/// `POST /partition/read`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadRequest {
    /// Which partition.
    pub partition: PartitionRef,
    /// The first offset wanted.
    pub offset: i64,
    /// At most this many records.
    pub max_records: u32,
    /// About this many bytes of keys, values and headers (the first record always fits).
    pub max_bytes: u32,
    /// Committed only, or everything.
    pub isolation: Isolation,
    /// How long to wait for records when there are none yet.
    pub wait_ms: u32,
}

/// `POST /partition/info`, `POST /partition/delete`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionCall {
    /// Which partition.
    pub partition: PartitionRef,
}

/// A topic as the metadata object stores it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMetadata {
    /// The name.
    pub name: String,
    /// A unique id for this incarnation of the topic.
    pub topic_id: String,
    /// The partition count.
    pub partitions: i32,
    /// The configuration.
    pub config: TopicConfig,
    /// When it was created, ms since the epoch.
    pub created_ms: i64,
}

impl TopicMetadata {
    /// The reference a partition call carries.
    pub fn partition(&self, partition: i32) -> PartitionRef {
        PartitionRef {
            topic: self.name.clone(),
            topic_id: self.topic_id.clone(),
            partition,
            config: self.config.clone(),
        }
    }

    /// The Durable Object name of one partition of this topic incarnation.
    pub fn partition_object_name(&self, partition: i32) -> String {
        partition_object_name(&self.topic_id, partition)
    }
}

/// The Durable Object name of a partition: its topic id and number.
pub fn partition_object_name(topic_id: &str, partition: i32) -> String {
    format!("{topic_id}/{partition}")
}

/// How a transaction ended.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TxnResult {
    /// The transaction committed: its records and offsets become visible.
    Commit,
    /// The transaction aborted: its records are hidden from read_committed readers for ever.
    Abort,
}

/// `POST /partition/register-txn`: the coordinator tells a partition that this producer id and
/// epoch may write transactionally to it (KIP-890 part 1). A partition refuses transactional
/// batches of a (producer id, epoch) it was not told about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterTxnRequest {
    /// Which partition.
    pub partition: PartitionRef,
    /// The transactional id (for the admin view of open transactions).
    pub transactional_id: String,
    /// The producer id.
    pub producer_id: i64,
    /// The epoch of the transaction being started.
    pub producer_epoch: i32,
}

/// `POST /partition/write-marker`: ends the producer's transaction on this partition.
/// Idempotent: a duplicate or late marker (for an epoch already ended) is acknowledged and
/// changes nothing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteMarkerRequest {
    /// Which partition.
    pub partition: PartitionRef,
    /// The producer id.
    pub producer_id: i64,
    /// The epoch of the transaction being ended.
    pub producer_epoch: i32,
    /// Commit or abort.
    pub result: TxnResult,
}

/// A partition's or group's acknowledgement of a marker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarkerAck {
    /// Where the marker landed in the log (partitions only; `None` when it was a duplicate).
    pub marker_offset: Option<i64>,
}

/// One offset to commit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicPartitionOffset {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The next offset to consume.
    pub offset: i64,
    /// Free-form metadata stored with the offset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<String>,
}

/// `POST /group/txn-offsets`: offsets written inside a transaction; pending until the marker
/// (KIP-447: fenced by generation and member id).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnOffsetCommitRequest {
    /// The group.
    pub group_id: String,
    /// The transactional id.
    pub transactional_id: String,
    /// The producer id.
    pub producer_id: i64,
    /// The producer epoch.
    pub producer_epoch: i32,
    /// The member's generation.
    pub generation_id: i32,
    /// The member.
    pub member_id: String,
    /// The offsets.
    pub offsets: Vec<TopicPartitionOffset>,
    /// This call's number among the transaction's offset commits to this group, from 1. The
    /// group keeps, per partition, the offset of the highest number it received, so a late or
    /// duplicated earlier call never overwrites newer offsets, and a call of unknown outcome
    /// can be followed by a new one.
    pub sequence: i64,
}

/// `POST /group/txn-marker`: makes the producer's pending offsets committed, or drops them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupTxnMarkerRequest {
    /// The group.
    pub group_id: String,
    /// The producer id.
    pub producer_id: i64,
    /// The epoch of the transaction being ended.
    pub producer_epoch: i32,
    /// Commit or abort.
    pub result: TxnResult,
}
