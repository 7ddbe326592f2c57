use serde::{Deserialize, Serialize};

/// A protocol error code, named as Kafka names it (plus the few Kafdo adds for HTTP ingestion).
///
/// Every error answer of the API carries one of these in `{"error": {"code": ...}}`; clients
/// branch on the code, never on the message.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum ErrorCode {
    /// The request is malformed: bad JSON or CBOR, a missing or invalid field.
    InvalidRequest,
    /// The topic does not exist, or the partition is outside the topic.
    UnknownTopicOrPartition,
    /// A topic of that name already exists.
    TopicAlreadyExists,
    /// A partition count outside 1..=256.
    InvalidPartitions,
    /// A topic config value that is not allowed.
    InvalidConfig,
    /// A topic name outside Kafka's alphabet or length.
    InvalidTopicException,
    /// A request the topic's configuration forbids (deleting records of a compacted topic).
    PolicyViolation,
    /// A record larger than 1 MiB.
    MessageTooLarge,
    /// A record the topic cannot hold: a record without a key on a compacted topic (Kafka's
    /// `INVALID_RECORD`).
    InvalidRecord,
    /// A fetch offset below the log start offset or above the high watermark.
    OffsetOutOfRange,
    /// The producer's epoch is older than the one the broker knows: a newer instance exists.
    ProducerFenced,
    /// The producer epoch is not the current one for this request.
    InvalidProducerEpoch,
    /// A sequence number gap: a batch was lost between producer and partition.
    OutOfOrderSequenceNumber,
    /// The partition has no state for this producer and the batch does not start at sequence 0.
    UnknownProducerId,
    /// Another transactional operation on this id is in progress.
    ConcurrentTransactions,
    /// The transaction ran past its timeout and was aborted.
    TransactionTimedOut,
    /// The request does not fit the transaction's current state.
    InvalidTxnState,
    /// A transactional write the coordinator did not register with this partition.
    InvalidTxnRegistration,
    /// A group generation that is not the current one.
    IllegalGeneration,
    /// A member id the group does not know.
    UnknownMemberId,
    /// The group is rebalancing; rejoin.
    RebalanceInProgress,
    /// The group does not exist.
    GroupIdNotFound,
    /// Offsets of a pending transaction are not yet settled (`require_stable`).
    UnstableOffsetCommit,
    /// The same `Idempotency-Key` was used with a different request body.
    IdempotencyKeyReused,
    /// The first request with this `Idempotency-Key` is still in flight.
    IdempotencyKeyInFlight,
    /// The object did not answer in time: the outcome is unknown, retry.
    RequestTimedOut,
    /// The object is busy or restarting: retry.
    CoordinatorLoadInProgress,
    /// A bug or an unexpected failure on the server.
    UnknownServerError,
}

impl ErrorCode {
    /// The HTTP status that goes with the code.
    pub fn http_status(self) -> u16 {
        use ErrorCode::*;
        match self {
            InvalidRequest
            | InvalidPartitions
            | InvalidConfig
            | InvalidTopicException
            | InvalidRecord
            | PolicyViolation => 400,
            UnknownTopicOrPartition | GroupIdNotFound => 404,
            TopicAlreadyExists
            | ProducerFenced
            | InvalidProducerEpoch
            | ConcurrentTransactions
            | InvalidTxnState
            | InvalidTxnRegistration
            | IllegalGeneration
            | UnknownMemberId
            | RebalanceInProgress
            | TransactionTimedOut
            | IdempotencyKeyInFlight => 409,
            MessageTooLarge => 413,
            OffsetOutOfRange => 416,
            OutOfOrderSequenceNumber | UnknownProducerId | IdempotencyKeyReused => 422,
            UnstableOffsetCommit | RequestTimedOut | CoordinatorLoadInProgress => 503,
            UnknownServerError => 500,
        }
    }

    /// Whether retrying the same request may succeed (Kafka's `RetriableException`).
    pub fn is_retriable(self) -> bool {
        use ErrorCode::*;
        matches!(
            self,
            ConcurrentTransactions
                | UnstableOffsetCommit
                | RequestTimedOut
                | CoordinatorLoadInProgress
                | IdempotencyKeyInFlight
                | RebalanceInProgress
        )
    }

    /// The code's name as it appears on the wire.
    pub fn name(self) -> &'static str {
        use ErrorCode::*;
        match self {
            InvalidRequest => "INVALID_REQUEST",
            UnknownTopicOrPartition => "UNKNOWN_TOPIC_OR_PARTITION",
            TopicAlreadyExists => "TOPIC_ALREADY_EXISTS",
            InvalidPartitions => "INVALID_PARTITIONS",
            InvalidConfig => "INVALID_CONFIG",
            InvalidTopicException => "INVALID_TOPIC_EXCEPTION",
            PolicyViolation => "POLICY_VIOLATION",
            MessageTooLarge => "MESSAGE_TOO_LARGE",
            InvalidRecord => "INVALID_RECORD",
            OffsetOutOfRange => "OFFSET_OUT_OF_RANGE",
            ProducerFenced => "PRODUCER_FENCED",
            InvalidProducerEpoch => "INVALID_PRODUCER_EPOCH",
            OutOfOrderSequenceNumber => "OUT_OF_ORDER_SEQUENCE_NUMBER",
            UnknownProducerId => "UNKNOWN_PRODUCER_ID",
            ConcurrentTransactions => "CONCURRENT_TRANSACTIONS",
            TransactionTimedOut => "TRANSACTION_TIMED_OUT",
            InvalidTxnState => "INVALID_TXN_STATE",
            InvalidTxnRegistration => "INVALID_TXN_REGISTRATION",
            IllegalGeneration => "ILLEGAL_GENERATION",
            UnknownMemberId => "UNKNOWN_MEMBER_ID",
            RebalanceInProgress => "REBALANCE_IN_PROGRESS",
            GroupIdNotFound => "GROUP_ID_NOT_FOUND",
            UnstableOffsetCommit => "UNSTABLE_OFFSET_COMMIT",
            IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
            IdempotencyKeyInFlight => "IDEMPOTENCY_KEY_IN_FLIGHT",
            RequestTimedOut => "REQUEST_TIMED_OUT",
            CoordinatorLoadInProgress => "COORDINATOR_LOAD_IN_PROGRESS",
            UnknownServerError => "UNKNOWN_SERVER_ERROR",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// An error answer: a code and a human-readable message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    /// What went wrong, as a Kafka error name.
    pub code: ErrorCode,
    /// Details for a person.
    pub message: String,
}

impl ApiError {
    /// An error with a code and a message.
    /// The message is cut to [`MAX_ERROR_MESSAGE_BYTES`](crate::limits::MAX_ERROR_MESSAGE_BYTES)
    /// (at a character boundary): no input can make an error answer large.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        let mut message = message.into();
        let max = crate::limits::MAX_ERROR_MESSAGE_BYTES;
        if message.len() > max {
            let mut end = max - "…".len();
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
            message.push('…');
        }
        Self { code, message }
    }
}

/// The body of every error answer: `{"error": {"code", "message"}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ApiError,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_cut_to_the_limit() {
        let long = "é".repeat(5_000);
        let e = ApiError::new(ErrorCode::InvalidRequest, long);
        assert!(e.message.len() <= crate::limits::MAX_ERROR_MESSAGE_BYTES);
        assert!(e.message.ends_with('…'));
        let short = ApiError::new(ErrorCode::InvalidRequest, "short");
        assert_eq!(short.message, "short");
    }

    #[test]
    fn names_match_serde() {
        for code in [
            ErrorCode::InvalidRequest,
            ErrorCode::UnknownTopicOrPartition,
            ErrorCode::OutOfOrderSequenceNumber,
            ErrorCode::IdempotencyKeyReused,
            ErrorCode::InvalidTxnRegistration,
            ErrorCode::InvalidRecord,
            ErrorCode::UnknownServerError,
        ] {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.name()));
        }
    }

    #[test]
    fn invalid_record_is_a_bad_request() {
        assert_eq!(ErrorCode::InvalidRecord.http_status(), 400);
        assert_eq!(ErrorCode::InvalidRecord.name(), "INVALID_RECORD");
        assert!(!ErrorCode::InvalidRecord.is_retriable());
    }
}
