//! The SDK's errors.
//!
//! Every error answer of the API carries a Kafka error code; [`Error::Api`] keeps it so callers
//! branch on the code, never on the message. Failures without an answer are sorted by what they
//! say about the request: [`Error::Connect`] (certainly not executed) and
//! [`Error::UnknownOutcome`] (maybe executed: a timeout is not a failure, brief rule 8).
//!
//! [`Error::class`] sorts every error into the four classes a transactional producer acts on,
//! as Kafka does: fatal (a fenced producer must stop), abortable (abort the transaction and try
//! again), retriable (try the same request again) and unknown outcome (retry a commit, never turn
//! it into an abort).

use kafdo_types::ErrorCode;

use crate::transport::TransportError;

/// What a caller should do about an error.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// Stop: the producer was fenced by a newer instance, or the request can never succeed.
    Fatal,
    /// Abort the current transaction and start again.
    Abortable,
    /// The same request may succeed later.
    Retriable,
    /// The request may or may not have been executed: retry it as is (it is idempotent).
    UnknownOutcome,
}

/// An error of the Kafdo SDK.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server answered with an error.
    #[error("{code}: {message} (HTTP {status})")]
    Api {
        /// The HTTP status.
        status: u16,
        /// The Kafka error code.
        code: ErrorCode,
        /// The server's message.
        message: String,
    },
    /// No connection could be made; the request was not executed.
    #[error("cannot reach Kafdo: {0}")]
    Connect(String),
    /// The request may or may not have been executed (a timeout or a lost connection).
    #[error("unknown outcome: {0}")]
    UnknownOutcome(String),
    /// The server's answer could not be understood (not Kafdo, or a version mismatch).
    #[error("unexpected answer (HTTP {status}): {message}")]
    Protocol {
        /// The HTTP status.
        status: u16,
        /// What was wrong with it.
        message: String,
    },
    /// The caller asked for something the SDK refuses before sending anything.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The producer or consumer was closed, or its background task is gone.
    #[error("closed: {0}")]
    Closed(String),
}

impl Error {
    /// The Kafka error code that best describes the error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Api { code, .. } => *code,
            Error::UnknownOutcome(_) => ErrorCode::RequestTimedOut,
            Error::InvalidArgument(_) => ErrorCode::InvalidRequest,
            Error::Connect(_) | Error::Protocol { .. } | Error::Closed(_) => {
                ErrorCode::UnknownServerError
            }
        }
    }

    /// Whether the request may or may not have been executed.
    pub fn is_unknown_outcome(&self) -> bool {
        matches!(self, Error::UnknownOutcome(_))
            || matches!(
                self,
                Error::Api {
                    code: ErrorCode::RequestTimedOut,
                    ..
                }
            )
    }

    /// Whether retrying the same request may succeed.
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Api { code, .. } => code.is_retriable(),
            Error::Connect(_) | Error::UnknownOutcome(_) => true,
            Error::Protocol { status, .. } => *status >= 500,
            Error::InvalidArgument(_) | Error::Closed(_) => false,
        }
    }

    /// The class of the error for a transactional producer (see the module docs).
    pub fn class(&self) -> ErrorClass {
        use ErrorCode::*;
        if self.is_unknown_outcome() {
            return ErrorClass::UnknownOutcome;
        }
        match self {
            Error::Api { code, .. } => match code {
                ProducerFenced | InvalidProducerEpoch | TransactionTimedOut => {
                    // A newer instance owns the transactional id (or the coordinator aborted our
                    // transaction and bumped the epoch): this instance must stop.
                    ErrorClass::Fatal
                }
                code if code.is_retriable() => ErrorClass::Retriable,
                OutOfOrderSequenceNumber
                | UnknownProducerId
                | InvalidTxnRegistration
                | IllegalGeneration
                | UnknownMemberId
                | UnknownTopicOrPartition
                | MessageTooLarge
                | InvalidTxnState => ErrorClass::Abortable,
                _ => ErrorClass::Fatal,
            },
            Error::Connect(_) => ErrorClass::Retriable,
            Error::Protocol { status, .. } if *status >= 500 => ErrorClass::Retriable,
            _ => ErrorClass::Fatal,
        }
    }

    pub(crate) fn from_transport(e: TransportError) -> Self {
        match e {
            TransportError::Connect(m) => Error::Connect(m),
            TransportError::Timeout(_) | TransportError::Io(_) => {
                Error::UnknownOutcome(e.to_string())
            }
            TransportError::Invalid(m) => Error::InvalidArgument(m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: ErrorCode) -> Error {
        Error::Api {
            status: code.http_status(),
            code,
            message: String::new(),
        }
    }

    #[test]
    fn classes_follow_kafka() {
        assert_eq!(api(ErrorCode::ProducerFenced).class(), ErrorClass::Fatal);
        assert_eq!(
            api(ErrorCode::ConcurrentTransactions).class(),
            ErrorClass::Retriable
        );
        assert_eq!(
            api(ErrorCode::RequestTimedOut).class(),
            ErrorClass::UnknownOutcome
        );
        assert_eq!(
            api(ErrorCode::OutOfOrderSequenceNumber).class(),
            ErrorClass::Abortable
        );
        assert_eq!(
            Error::from_transport(TransportError::Timeout(std::time::Duration::from_secs(1)))
                .class(),
            ErrorClass::UnknownOutcome
        );
        assert_eq!(
            Error::from_transport(TransportError::Connect("refused".into())).class(),
            ErrorClass::Retriable
        );
        assert_eq!(api(ErrorCode::InvalidRequest).class(), ErrorClass::Fatal);
    }
}
