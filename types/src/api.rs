//! The bodies of HTTP API v1 (see `design/http-api.md` for the routes).
//!
//! Field names are Kafka's (`producer_id`, `producer_epoch`, `base_sequence`, `high_watermark`,
//! `last_stable_offset`, ...). Requests reject unknown fields, so a typo is an error rather than
//! a silently ignored option.

use serde::{Deserialize, Serialize};

use crate::record::{ProduceRecord, Record};

/// `GET /health`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// Always `"ok"`.
    pub status: String,
}

/// What happens to old records of a topic.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CleanupPolicy {
    /// Records older than `retention_ms` are deleted.
    #[default]
    Delete,
    /// Only the latest record of each key is kept.
    Compact,
}

/// Seven days, Kafka's default `retention.ms`.
pub const DEFAULT_RETENTION_MS: i64 = 7 * 24 * 60 * 60 * 1000;

fn default_retention_ms() -> i64 {
    DEFAULT_RETENTION_MS
}

/// A topic's configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicConfig {
    /// How long records are kept, in ms; `-1` keeps them for ever (as in Kafka).
    #[serde(default = "default_retention_ms")]
    pub retention_ms: i64,
    /// Delete old records or compact by key.
    #[serde(default)]
    pub cleanup_policy: CleanupPolicy,
}

impl Default for TopicConfig {
    fn default() -> Self {
        Self {
            retention_ms: DEFAULT_RETENTION_MS,
            cleanup_policy: CleanupPolicy::Delete,
        }
    }
}

/// `POST /v1/topics`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTopicRequest {
    /// The topic name: `[a-zA-Z0-9._-]`, 1 to 249 characters.
    pub name: String,
    /// 1 to 256.
    pub partitions: i32,
    /// Optional; defaults as in Kafka.
    #[serde(default)]
    pub config: TopicConfig,
}

/// A topic as described by `GET /v1/topics/{t}` and `POST /v1/topics`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicDescription {
    /// The name.
    pub name: String,
    /// The topic id, as Kafka has them: a UUID of this incarnation of the topic (a topic
    /// deleted and created again gets another; see [`kafka_topic_id`]). Empty from a Worker
    /// that predates topic ids.
    #[serde(default)]
    pub topic_id: String,
    /// The partition count.
    pub partitions: i32,
    /// The configuration.
    pub config: TopicConfig,
}

/// `POST /v1/topics/{t}/partitions`: adds partitions (Kafka's CreatePartitions).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreatePartitionsRequest {
    /// The new partition count: higher than the current one, at most 256.
    pub count: i32,
}

/// `GET /v1/topics`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicList {
    /// Every topic, by name.
    pub topics: Vec<TopicDescription>,
}

/// `GET /v1/topics/{t}/partitions/{p}`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionInfo {
    /// The first offset still in the log.
    pub log_start_offset: i64,
    /// The offset the next record will get.
    pub high_watermark: i64,
    /// The first offset of the oldest open transaction, or the high watermark.
    pub last_stable_offset: i64,
}

/// `GET /v1/topics/{t}/partitions/{p}/offsets?timestamp=T`: the first offset whose record has a
/// timestamp at or after `T` (Kafka's ListOffsets by timestamp), below the last stable offset
/// for read_committed and below the high watermark otherwise. Both are `null` when no record
/// has such a timestamp.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimestampOffset {
    /// The offset found.
    pub offset: Option<i64>,
    /// Its record's timestamp (at or after the one asked for).
    pub timestamp: Option<i64>,
}

/// One producer a partition remembers (Kafka's DescribeProducers).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerState {
    /// The producer id.
    pub producer_id: i64,
    /// Its newest epoch here.
    pub producer_epoch: i32,
    /// The sequence number of its last record appended here (-1 before any in this epoch).
    pub last_sequence: i32,
    /// When it last appended here, ms since the epoch.
    pub last_timestamp: i64,
    /// The first offset of its open transaction here, if one is open and has written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_txn_start_offset: Option<i64>,
}

/// The answer to `GET /v1/topics/{t}/partitions/{p}/producers`: every producer the partition
/// remembers (at most its `max_producers`), by producer id.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerList {
    /// The producers.
    pub producers: Vec<ProducerState>,
}

/// The answer to `DELETE /v1/topics/{t}/partitions/{p}/records?before=N`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteRecordsResponse {
    /// The log start offset now (Kafka's low watermark): `before`, or more if retention had
    /// already passed it.
    pub log_start_offset: i64,
}

/// `POST /v1/topics/{t}/records`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProduceRequest {
    /// The records, each routed by `partition`, else by key, else sticky.
    pub records: Vec<ProduceRecord>,
}

/// Where one produced record landed.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordOffset {
    /// The partition.
    pub partition: i32,
    /// The offset.
    pub offset: i64,
}

/// The answer to `POST /v1/topics/{t}/records`: one entry per record, in request order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProduceResponse {
    /// Offsets in request order.
    pub offsets: Vec<RecordOffset>,
}

/// `POST /v1/topics/{t}/partitions/{p}/records`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionProduceRequest {
    /// The idempotent or transactional producer, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub producer_id: Option<i64>,
    /// Its epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub producer_epoch: Option<i32>,
    /// The sequence number of the first record of this batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_sequence: Option<i32>,
    /// Whether the batch belongs to the producer's open transaction.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub transactional: bool,
    /// The records (their `partition` fields must be absent or equal to the path's).
    pub records: Vec<ProduceRecord>,
}

/// The answer to a partition produce.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionProduceResponse {
    /// The first record's offset.
    pub base_offset: i64,
    /// The last record's offset.
    pub last_offset: i64,
    /// True when this batch was a retry of one already appended: nothing new was written and
    /// the offsets are the original ones.
    pub duplicate: bool,
}

/// Which records a fetch may return.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Isolation {
    /// Only committed records, up to the last stable offset (the default).
    #[default]
    ReadCommitted,
    /// Everything up to the high watermark, open and aborted transactions included.
    ReadUncommitted,
}

impl Isolation {
    /// The name in a query string and in JSON: `read_committed`, `read_uncommitted`.
    pub fn as_str(self) -> &'static str {
        match self {
            Isolation::ReadCommitted => "read_committed",
            Isolation::ReadUncommitted => "read_uncommitted",
        }
    }
}

/// The answer to `GET /v1/topics/{t}/partitions/{p}/records`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchResponse {
    /// Records in offset order (offsets may skip: markers, aborted records, compaction).
    pub records: Vec<Record>,
    /// Where the next fetch should start.
    pub next_offset: i64,
    /// The partition's high watermark.
    pub high_watermark: i64,
    /// The partition's last stable offset.
    pub last_stable_offset: i64,
}

/// `POST /v1/produce`: one batch for each of many partitions (of one or more topics), as one
/// Kafka Produce request carries. Each batch is what `POST /v1/topics/{t}/partitions/{p}/records`
/// takes, and each is appended or refused on its own, as Kafka's partitions do.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultiProduceRequest {
    /// The batches, at most one per partition, 1 to
    /// [`MAX_PARTITIONS_PER_REQUEST`](crate::limits::MAX_PARTITIONS_PER_REQUEST).
    pub partitions: Vec<PartitionBatch>,
}

/// One partition's batch of a [`MultiProduceRequest`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionBatch {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The batch, with its producer fields.
    pub batch: PartitionProduceRequest,
}

/// What happened to one partition of a multi-partition call: its answer or its error.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionOutcome<T> {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The answer, when the partition's part succeeded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer: Option<T>,
    /// The error, when it failed (the other partitions are unaffected).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<crate::ApiError>,
}

impl<T> PartitionOutcome<T> {
    /// The outcome of `topic`/`partition` from its result.
    pub fn new(topic: &str, partition: i32, result: Result<T, crate::ApiError>) -> Self {
        let (answer, error) = match result {
            Ok(answer) => (Some(answer), None),
            Err(error) => (None, Some(error)),
        };
        Self {
            topic: topic.to_string(),
            partition,
            answer,
            error,
        }
    }

    /// The outcome as a result (an outcome with neither is a malformed answer).
    pub fn into_result(self) -> Result<T, crate::ApiError> {
        match (self.answer, self.error) {
            (Some(answer), None) => Ok(answer),
            (_, Some(error)) => Err(error),
            (None, None) => Err(crate::ApiError::new(
                crate::ErrorCode::UnknownServerError,
                "a partition outcome with neither an answer nor an error",
            )),
        }
    }
}

/// The answer to `POST /v1/produce`: one outcome per batch, in request order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MultiProduceResponse {
    /// The outcomes.
    pub partitions: Vec<PartitionOutcome<PartitionProduceResponse>>,
}

/// `POST /v1/fetch`: many partitions read at once, with one wait, as one Kafka Fetch request.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultiFetchRequest {
    /// The partitions, each at most once, 1 to
    /// [`MAX_PARTITIONS_PER_REQUEST`](crate::limits::MAX_PARTITIONS_PER_REQUEST).
    pub partitions: Vec<PartitionFetch>,
    /// Which records may be returned (read_committed by default).
    #[serde(default)]
    pub isolation: Isolation,
    /// How long to wait when fewer than `min_bytes` are there (0 by default, at most 30 s).
    #[serde(default)]
    pub wait_ms: u32,
    /// How many bytes of records make the answer worth sending before `wait_ms` (1 by default).
    #[serde(default = "default_min_bytes")]
    pub min_bytes: u32,
    /// The byte budget of the whole answer (16 MiB by default and at most); each partition
    /// brings at most its share of it (see `design/http-api.md`).
    #[serde(default = "default_multi_fetch_max_bytes")]
    pub max_bytes: u32,
}

fn default_min_bytes() -> u32 {
    1
}

fn default_multi_fetch_max_bytes() -> u32 {
    crate::limits::MAX_FETCH_MAX_BYTES
}

/// One partition of a [`MultiFetchRequest`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionFetch {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The first offset wanted (0 to 2^53 - 1).
    pub offset: i64,
    /// This partition's byte budget (1 MiB by default, at most 16 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<u32>,
    /// The most records (1,000 by default, at most 10,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_records: Option<u32>,
}

/// The answer to `POST /v1/fetch`: one outcome per partition, in request order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MultiFetchResponse {
    /// The outcomes.
    pub partitions: Vec<PartitionOutcome<FetchResponse>>,
}

/// `POST /v1/producers`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitProducerRequest {
    /// For a transactional producer: its stable id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transactional_id: Option<String>,
    /// How long a transaction may stay open before it is aborted (default 60 s, max 15 min).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_timeout_ms: Option<i64>,
}

/// The answer to `POST /v1/producers`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InitProducerResponse {
    /// The producer id.
    pub producer_id: i64,
    /// The producer epoch.
    pub producer_epoch: i32,
}

/// The namespace of Kafdo's topic ids (a fixed UUID).
const TOPIC_ID_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x6b61_6664_6f00_4c0b_9a55_7e50_7069_6373);

/// A topic id as a request may name it (any form of UUID), in the form answers carry it
/// (hyphenated, lower case); `None` when it is not a UUID.
pub fn canonical_topic_id(text: &str) -> Option<String> {
    uuid::Uuid::try_parse(text).ok().map(|id| id.to_string())
}

/// The Kafka topic id of a topic incarnation: the name-based (v5) UUID of its Kafdo id
/// ([`TopicMetadata::topic_id`](crate::rpc::TopicMetadata), never reused), so every door
/// (the HTTP API, the Kafka gateway) derives the same id without storing one, and it is never
/// the nil UUID Kafka reserves.
pub fn kafka_topic_id(incarnation: &str) -> uuid::Uuid {
    uuid::Uuid::new_v5(&TOPIC_ID_NAMESPACE, incarnation.as_bytes())
}
