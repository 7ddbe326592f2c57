//! Calls to a bench object ([`Object::Bench`](super::Object::Bench)): the benchmark's baseline
//! (a bare multi-row INSERT append) and the SQL binding's self-test on the real runtime.

use serde::{Deserialize, Serialize};

use crate::record::ProduceRecord;

object_calls! {
    /// A call to a bench object (`worker/src/objects/bench.rs`).
    pub enum BenchCall: Bench {
        /// Appends records to a plain table: no producer state, no index, no transaction.
        BareAppend(BareAppendRequest) -> BareAppendResponse = "/bench/bare-append",
        /// Panics on purpose (only when the Worker's `KAFDO_DEBUG_PANIC` variable is set).
        Panic(PanicRequest) -> () = "/bench/panic",
        /// Exercises the SQL binding: transactions, rollback, cursor errors, parameter limits.
        SqlRollback(SqlRollbackRequest) -> SqlRollbackReport = "/bench/debug-sql-rollback",
    }
}

/// [`BenchCall::BareAppend`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BareAppendRequest {
    /// The records.
    pub records: Vec<ProduceRecord>,
}

/// The answer of the benchmark's bare append (`POST /bench/bare-append/{n}`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BareAppendResponse {
    /// The first record's offset.
    pub base_offset: i64,
    /// The last record's offset.
    pub last_offset: i64,
}

/// [`BenchCall::Panic`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PanicRequest;

/// [`BenchCall::SqlRollback`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SqlRollbackRequest;

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
