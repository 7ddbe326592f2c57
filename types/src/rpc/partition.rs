//! Calls to a partition object ([`Object::Partition`](super::Object::Partition)), named
//! `{topic_id}/{partition}`.

use serde::{Deserialize, Serialize};

use super::MarkerAck;
use crate::api::{
    DeleteRecordsResponse, FetchResponse, Isolation, PartitionInfo, PartitionProduceResponse,
    ProducerList, TimestampOffset, TopicConfig,
};
use crate::record::ProduceRecord;

object_calls! {
    /// A call to a partition object (`kafdo_partition::Partition`).
    pub enum PartitionCall: Partition {
        /// Appends one batch.
        Append(AppendRequest) -> PartitionProduceResponse = "/partition/append",
        /// Reads records (a read with `wait_ms` may wait for new ones).
        Read(ReadRequest) -> FetchResponse = "/partition/read",
        /// The partition's offsets.
        Info(PartitionInfoRequest) -> PartitionInfo = "/partition/info",
        /// The first offset at or after a timestamp.
        OffsetForTimestamp(OffsetForTimestampRequest) -> TimestampOffset
            = "/partition/offset-for-timestamp",
        /// The producers the partition remembers (Kafka's DescribeProducers).
        Producers(ProducersRequest) -> ProducerList = "/partition/producers",
        /// Deletes the records before an offset (Kafka's DeleteRecords): the new log start.
        DeleteRecords(DeleteRecordsRequest) -> DeleteRecordsResponse
            = "/partition/delete-records",
        /// From a coordinator: a (producer id, epoch) may write transactionally here.
        RegisterTxn(RegisterTxnRequest) -> () = "/partition/register-txn",
        /// From a coordinator: ends a transaction here.
        WriteMarker(WriteMarkerRequest) -> MarkerAck = "/partition/write-marker",
        /// The transactions registered here and still open (the admin's list).
        OpenTransactions(OpenTransactionsRequest) -> Vec<PartitionOpenTransaction>
            = "/partition/open-transactions",
        /// Deletes the log (the topic was deleted).
        Delete(DeletePartitionRequest) -> () = "/partition/delete",
    }
}

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

/// [`PartitionCall::Append`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendRequest {
    /// Which partition.
    pub partition: PartitionRef,
    /// The producer, for an idempotent or transactional batch.
    pub producer: Option<ProducerBatch>,
    /// Whether the batch belongs to the producer's open transaction.
    pub transactional: bool,
    /// The Worker's evidence that every producer id below this was handed out (from the
    /// metadata object's counter, as its isolate last learned it): the partition refuses a
    /// producer id at or past it with `UNKNOWN_PRODUCER_ID`, so no client can claim an id
    /// before it is handed out to another (`design/partition.md`). Ignored without a producer.
    pub producer_ids_below: i64,
    /// The records.
    pub records: Vec<ProduceRecord>,
}

/// A [`AppendRequest::producer_ids_below`] that allows every producer id a Durable Object can
/// hold: for tests and tools that write to a core directly, never for the Worker.
pub const ANY_PRODUCER_ID: i64 = crate::limits::MAX_SAFE_INTEGER;

/// [`PartitionCall::Read`].
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

/// [`PartitionCall::Info`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionInfoRequest {
    /// Which partition.
    pub partition: PartitionRef,
}

/// [`PartitionCall::OffsetForTimestamp`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffsetForTimestampRequest {
    /// Which partition.
    pub partition: PartitionRef,
    /// Milliseconds since the epoch, at least 0.
    pub timestamp: i64,
    /// Below the last stable offset (read_committed) or the high watermark.
    pub isolation: Isolation,
}

/// [`PartitionCall::Producers`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducersRequest {
    /// Which partition.
    pub partition: PartitionRef,
}

/// [`PartitionCall::DeleteRecords`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteRecordsRequest {
    /// Which partition.
    pub partition: PartitionRef,
    /// Every record before this offset goes (the log start offset moves to it).
    pub before: i64,
}

/// [`PartitionCall::OpenTransactions`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenTransactionsRequest {
    /// Which partition.
    pub partition: PartitionRef,
}

/// [`PartitionCall::Delete`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletePartitionRequest {
    /// Which partition.
    pub partition: PartitionRef,
}

/// [`PartitionCall::RegisterTxn`]: the coordinator tells a partition that this producer id and
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
    /// The coordinator's number of the transaction (rising, one per transaction of the
    /// transactional id): with "transaction version 1" (Kafka clients that keep their epoch)
    /// consecutive transactions share an epoch, and the number tells them apart.
    #[serde(default)]
    pub txn_seq: i64,
}

/// [`PartitionCall::WriteMarker`]: ends the producer's transaction on this partition.
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
    /// The coordinator's number of the transaction (see [`RegisterTxnRequest::txn_seq`]).
    #[serde(default)]
    pub txn_seq: i64,
    /// Commit or abort.
    pub result: super::TxnResult,
}

/// An open transaction on a partition, for the admin view.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionOpenTransaction {
    /// The transactional id the coordinator registered.
    pub transactional_id: String,
    /// The producer id.
    pub producer_id: i64,
    /// The epoch of the open transaction.
    pub producer_epoch: i32,
    /// Its first offset here: the last stable offset cannot pass it (`None` until the first
    /// transactional batch).
    pub first_offset: Option<i64>,
    /// When the coordinator registered it, ms since the epoch.
    pub start_ms: i64,
}
