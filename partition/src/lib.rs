//! The partition log core: a sans-IO state machine over [`kafdo_sql::Sql`].
//!
//! (Module documentation to be written with the implementation: the storage schema, the
//! append and read paths, producer state, and what is deliberately absent.)

use kafdo_sql::{Sql, SqlError};
use kafdo_types::api::{FetchResponse, PartitionInfo, PartitionProduceResponse};
use kafdo_types::rpc::{AppendRequest, PartitionRef, ReadRequest};
use kafdo_types::ErrorCode;

/// Why a partition refused a request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PartitionError {
    /// The partition's topic was deleted, or the request names another topic incarnation.
    #[error("unknown topic or partition: {0}")]
    UnknownTopicOrPartition(String),
    /// The request is malformed.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// A record is larger than the limit.
    #[error("record {index} is {size_bytes} bytes, more than the limit of {max_bytes}")]
    MessageTooLarge {
        /// Its position in the batch.
        index: usize,
        /// Its size.
        size_bytes: usize,
        /// The limit.
        max_bytes: usize,
    },
    /// A read below the log start offset or above the high watermark.
    #[error("offset {offset} is outside [{log_start_offset}, {high_watermark}]")]
    OffsetOutOfRange {
        /// The offset asked for.
        offset: i64,
        /// The first offset in the log.
        log_start_offset: i64,
        /// The next offset to be written.
        high_watermark: i64,
    },
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] SqlError),
}

impl PartitionError {
    /// The protocol error code for the answer.
    pub fn code(&self) -> ErrorCode {
        match self {
            PartitionError::UnknownTopicOrPartition(_) => ErrorCode::UnknownTopicOrPartition,
            PartitionError::InvalidRequest(_) => ErrorCode::InvalidRequest,
            PartitionError::MessageTooLarge { .. } => ErrorCode::MessageTooLarge,
            PartitionError::OffsetOutOfRange { .. } => ErrorCode::OffsetOutOfRange,
            PartitionError::Storage(_) => ErrorCode::UnknownServerError,
        }
    }
}

/// One partition: its log and its producer state, in the object's SQLite.
pub struct Partition<S: Sql> {
    sql: S,
}

impl<S: Sql> Partition<S> {
    /// Opens the partition on its storage: creates or migrates the schema and loads the cached
    /// state (high watermark, log start offset). Called when the object starts.
    pub fn open(sql: S, now_ms: i64) -> Result<Self, PartitionError> {
        let _ = now_ms;
        Ok(Self { sql })
    }

    /// Appends a batch. Runs as one storage transaction: all records and the producer state, or
    /// nothing.
    pub fn append(
        &mut self,
        req: &AppendRequest,
        now_ms: i64,
    ) -> Result<PartitionProduceResponse, PartitionError> {
        let _ = (req, now_ms, &self.sql);
        todo!()
    }

    /// Reads from an offset. Never waits: long polling is the adapter's job (it re-reads when
    /// [`Partition::info`] shows new records).
    pub fn read(&mut self, req: &ReadRequest, now_ms: i64) -> Result<FetchResponse, PartitionError> {
        let _ = (req, now_ms);
        todo!()
    }

    /// The offsets a client sees.
    pub fn info(&self, partition: &PartitionRef) -> Result<PartitionInfo, PartitionError> {
        let _ = partition;
        todo!()
    }

    /// Deletes the whole log (the topic was deleted); later calls get
    /// `UNKNOWN_TOPIC_OR_PARTITION`.
    pub fn delete(&mut self, partition: &PartitionRef) -> Result<(), PartitionError> {
        let _ = partition;
        todo!()
    }
}
