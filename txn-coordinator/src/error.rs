//! Why the coordinator refused a request.

use kafdo_sql::SqlError;
use kafdo_types::{ApiError, ErrorCode};

/// Why a request to the coordinator failed. Every variant maps to one protocol code
/// ([`TxnError::code`]); the adapter answers `{"error": {"code", "message"}}` with
/// `ApiError::new(err.code(), err.to_string())`.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum TxnError {
    /// The epoch belongs to an instance that a later `POST /v1/producers` (or an admin abort)
    /// fenced. Fatal for that instance: it must stop.
    #[error(
        "producer epoch {producer_epoch} is fenced: a newer instance holds epoch {fence_epoch} or later"
    )]
    ProducerFenced {
        /// The epoch of the request.
        producer_epoch: i32,
        /// The first epoch of the newest instance.
        fence_epoch: i32,
    },
    /// The producer id was this transactional id's before its epochs were spent and it moved to
    /// a new one (see `CoordinatorConfig::roll_epoch`): whoever uses it was fenced by the move.
    #[error(
        "producer id {producer_id} is retired: the transactional id moved to producer id {current_producer_id}"
    )]
    ProducerIdRetired {
        /// The producer id of the request.
        producer_id: i64,
        /// The transactional id's producer id now.
        current_producer_id: i64,
    },
    /// The epoch is not the current one, but no newer instance exists: the coordinator bumped it
    /// when it ended a transaction (KIP-890 part 2), or the epoch was never issued.
    #[error("producer epoch {producer_epoch} is not the current epoch {current_epoch}")]
    InvalidProducerEpoch {
        /// The epoch of the request.
        producer_epoch: i32,
        /// The coordinator's current epoch.
        current_epoch: i32,
    },
    /// The transaction is ending, or a call it needs is still in flight: retry shortly.
    #[error("concurrent transactions: {0}")]
    ConcurrentTransactions(String),
    /// The transaction ran past `transaction_timeout_ms` and the coordinator aborted it. An abort
    /// with the same epoch answers success and the next epoch.
    #[error("the transaction of epoch {producer_epoch} timed out and was aborted")]
    TransactionTimedOut {
        /// The epoch of the aborted transaction.
        producer_epoch: i32,
    },
    /// The request does not fit the transaction's state (for example a commit after the
    /// transaction was aborted).
    #[error("invalid transaction state: {0}")]
    InvalidTxnState(String),
    /// The request is malformed, names another producer id, or breaks a limit.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// A participant (partition, group, metadata object) refused the call the request needed;
    /// its code is passed on, for example `UNKNOWN_TOPIC_OR_PARTITION`, `ILLEGAL_GENERATION`,
    /// `UNKNOWN_MEMBER_ID`, `REBALANCE_IN_PROGRESS`.
    #[error("{0}")]
    Participant(ApiError),
    /// A call the request needed got no answer (failed, timed out, or the object reset): the
    /// outcome is unknown, retry the request.
    #[error("no answer from a participant: {0}")]
    NoAnswer(String),
    /// Too many requests are waiting on this coordinator: retry shortly.
    #[error("coordinator busy: {0}")]
    Busy(String),
    /// Storage failed. When a method returns this, the adapter drops the core and opens it again.
    #[error(transparent)]
    Storage(#[from] SqlError),
}

impl TxnError {
    /// The protocol error code for the answer.
    pub fn code(&self) -> ErrorCode {
        match self {
            TxnError::ProducerFenced { .. } | TxnError::ProducerIdRetired { .. } => {
                ErrorCode::ProducerFenced
            }
            TxnError::InvalidProducerEpoch { .. } => ErrorCode::InvalidProducerEpoch,
            TxnError::ConcurrentTransactions(_) => ErrorCode::ConcurrentTransactions,
            TxnError::TransactionTimedOut { .. } => ErrorCode::TransactionTimedOut,
            TxnError::InvalidTxnState(_) => ErrorCode::InvalidTxnState,
            TxnError::InvalidRequest(_) => ErrorCode::InvalidRequest,
            TxnError::Participant(e) => e.code,
            TxnError::NoAnswer(_) => ErrorCode::RequestTimedOut,
            TxnError::Busy(_) => ErrorCode::CoordinatorLoadInProgress,
            TxnError::Storage(_) => ErrorCode::UnknownServerError,
        }
    }

    /// The error as the API answers it.
    pub fn to_api_error(&self) -> ApiError {
        match self {
            TxnError::Participant(e) => e.clone(),
            other => ApiError::new(other.code(), other.to_string()),
        }
    }
}
