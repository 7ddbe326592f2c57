//! The calls the Worker makes to the `Metadata` object, as CBOR bodies of `POST`s.
//!
//! The partition calls are shared with other crates and live in `kafdo_types::rpc`; these are
//! private to the Worker, so they live here (not in a core).
//!
//! | path | body | answer |
//! | --- | --- | --- |
//! | `/metadata/create-topic` | `CreateTopicRequest` | `TopicMetadata` |
//! | `/metadata/topic` | [`TopicName`] | `TopicMetadata` |
//! | `/metadata/list-topics` | (none) | `Vec<TopicMetadata>` |
//! | `/metadata/delete-topic` | [`TopicName`] | `TopicMetadata` (what was deleted) |
//! | `/metadata/allocate-producer-ids` | [`AllocateProducerIds`] | [`ProducerIdBlock`] |
//!
//! Every object answers errors as a CBOR `ApiError` with the code's HTTP status.

use serde::{Deserialize, Serialize};

/// The name of the one metadata object.
pub const METADATA_OBJECT_NAME: &str = "cluster";

/// A call about one topic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicName {
    /// The topic.
    pub name: String,
}

/// Asks for a block of producer ids.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocateProducerIds {
    /// How many.
    pub count: u32,
}

/// Producer ids `start..end`, never handed out before.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerIdBlock {
    /// The first id.
    pub start: i64,
    /// One past the last id.
    pub end: i64,
}

/// The answer of the benchmark's bare append (`POST /bench/bare-append/{n}`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BareAppendResponse {
    /// The first record's offset.
    pub base_offset: i64,
    /// The last record's offset.
    pub last_offset: i64,
}

/// The answer of `POST /debug/sql-rollback`: what the SQL binding did on the real runtime.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SqlRollbackReport {
    /// Rows in the table after a transaction that committed one row (expected: 1).
    pub rows_after_commit: i64,
    /// Whether the failing transaction came back as an error (expected: true).
    pub failed_transaction_returned_error: bool,
    /// Rows after a transaction that inserted two rows and then hit a key conflict
    /// (expected: 1, the committed row only: the two inserts were rolled back).
    pub rows_after_rollback: i64,
    /// Rows 10 and 11 after an outer transaction inserted 10, ran an inner transaction that
    /// inserted 11 and failed, and went on to commit (expected: `[true, false]`: the inner
    /// transaction rolled back alone, as a savepoint).
    pub nested_rows_10_11: [bool; 2],
    /// The error of a statement that fails while its cursor is read (expected: `Some`, and the
    /// instance still answering).
    pub cursor_error: Option<String>,
    /// The error of a statement with 101 bound parameters (expected: `Some`).
    pub too_many_params_error: Option<String>,
}
