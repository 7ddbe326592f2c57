//! Kafdo's error names as Kafka error codes on the wire.
//!
//! Kafdo names its errors as Kafka does ([`ErrorCode`]), so the mapping is mostly a table. Two
//! rules on top: a code an older request version does not know is downgraded to the one that
//! version's clients expect ([`for_version`]), and a failure to reach Kafdo at all is a
//! retriable network error, never a success.

use kafdo_client::Error as ClientError;
use kafdo_types::api::PartitionOutcome;
use kafdo_types::ErrorCode;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::ResponseError;

/// Kafka's code for Kafdo's error name.
pub fn kafka_code(code: ErrorCode) -> ResponseError {
    use ErrorCode as E;
    use ResponseError as K;
    match code {
        E::InvalidRequest | E::IdempotencyKeyReused | E::IdempotencyKeyInFlight => {
            K::InvalidRequest
        }
        E::UnknownTopicOrPartition => K::UnknownTopicOrPartition,
        E::TopicAlreadyExists => K::TopicAlreadyExists,
        E::InvalidPartitions => K::InvalidPartitions,
        E::InvalidConfig => K::InvalidConfig,
        E::InvalidTopicException => K::InvalidTopicException,
        E::MessageTooLarge => K::MessageTooLarge,
        E::InvalidRecord => K::InvalidRecord,
        E::PolicyViolation => K::PolicyViolation,
        E::OffsetOutOfRange => K::OffsetOutOfRange,
        E::ProducerFenced | E::TransactionTimedOut => K::ProducerFenced,
        E::InvalidProducerEpoch => K::InvalidProducerEpoch,
        E::OutOfOrderSequenceNumber => K::OutOfOrderSequenceNumber,
        E::UnknownProducerId => K::UnknownProducerId,
        E::ConcurrentTransactions => K::ConcurrentTransactions,
        E::InvalidTxnState | E::InvalidTxnRegistration => K::InvalidTxnState,
        E::IllegalGeneration => K::IllegalGeneration,
        E::UnknownMemberId => K::UnknownMemberId,
        E::RebalanceInProgress => K::RebalanceInProgress,
        E::GroupIdNotFound => K::GroupIdNotFound,
        E::UnstableOffsetCommit => K::UnstableOffsetCommit,
        E::RequestTimedOut => K::RequestTimedOut,
        E::CoordinatorLoadInProgress => K::CoordinatorLoadInProgress,
        _ => K::UnknownServerError,
    }
}

/// The code a request of `api` at `version` is answered with: `code`, or the older code its
/// clients know in its place.
///
/// - `PRODUCER_FENCED` (KIP-588) is known to InitProducerId from v4, AddPartitionsToTxn from
///   v2, AddOffsetsToTxn from v2 and EndTxn from v2; older versions, and Produce and
///   TxnOffsetCommit at every version (Kafka's partitions and group coordinators answer a
///   fenced producer so), get `INVALID_PRODUCER_EPOCH`.
pub fn for_version(api: ApiKey, version: i16, code: ResponseError) -> ResponseError {
    if code == ResponseError::ProducerFenced {
        let knows_fenced = match api {
            ApiKey::InitProducerId => version >= 4,
            ApiKey::AddPartitionsToTxn | ApiKey::AddOffsetsToTxn | ApiKey::EndTxn => version >= 2,
            _ => false,
        };
        if !knows_fenced {
            return ResponseError::InvalidProducerEpoch;
        }
    }
    code
}

/// The per-partition outcomes of one multi-partition call (`POST /v1/produce`, `POST /v1/fetch`)
/// of `asked` partitions: each answer (`Ok`), or its error as Kafka names it; a call that failed
/// as a whole fails every partition with its code.
pub fn outcomes<T>(
    call: Result<Vec<PartitionOutcome<T>>, ClientError>,
    asked: usize,
) -> Vec<Result<T, (ResponseError, String)>> {
    match call {
        Ok(outcomes) => outcomes
            .into_iter()
            .map(|o| o.into_result().map_err(|e| (kafka_code(e.code), e.message)))
            .collect(),
        Err(error) => (0..asked).map(|_| Err(from_client(&error))).collect(),
    }
}

/// Kafka's code for a failed call to Kafdo, with a message for answers that carry one.
pub fn from_client(error: &ClientError) -> (ResponseError, String) {
    match error {
        ClientError::Api { code, message, .. } => (kafka_code(*code), message.clone()),
        // The call may or may not have happened: Kafka's answer to a request whose outcome the
        // broker does not know is a timeout, which clients retry (an idempotent producer's
        // retry is deduplicated by its sequence numbers).
        ClientError::UnknownOutcome(message) => (ResponseError::RequestTimedOut, message.clone()),
        ClientError::Connect(message) | ClientError::Closed(message) => {
            (ResponseError::NetworkException, message.clone())
        }
        other => (ResponseError::UnknownServerError, other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kafdo_code_has_its_kafka_number() {
        let table = [
            (ErrorCode::UnknownTopicOrPartition, 3),
            (ErrorCode::OffsetOutOfRange, 1),
            (ErrorCode::MessageTooLarge, 10),
            (ErrorCode::InvalidTopicException, 17),
            (ErrorCode::TopicAlreadyExists, 36),
            (ErrorCode::InvalidPartitions, 37),
            (ErrorCode::InvalidConfig, 40),
            (ErrorCode::InvalidRequest, 42),
            (ErrorCode::PolicyViolation, 44),
            (ErrorCode::OutOfOrderSequenceNumber, 45),
            (ErrorCode::InvalidProducerEpoch, 47),
            (ErrorCode::InvalidTxnState, 48),
            (ErrorCode::ConcurrentTransactions, 51),
            (ErrorCode::UnknownProducerId, 59),
            (ErrorCode::InvalidRecord, 87),
            (ErrorCode::ProducerFenced, 90),
            (ErrorCode::RequestTimedOut, 7),
            (ErrorCode::UnknownServerError, -1),
        ];
        for (code, number) in table {
            assert_eq!(kafka_code(code).code(), number, "{code}");
        }
    }

    #[test]
    fn fenced_is_downgraded_where_the_version_predates_it() {
        let fenced = ResponseError::ProducerFenced;
        let epoch = ResponseError::InvalidProducerEpoch;
        assert_eq!(for_version(ApiKey::Produce, 9, fenced), epoch);
        assert_eq!(for_version(ApiKey::InitProducerId, 3, fenced), epoch);
        assert_eq!(for_version(ApiKey::InitProducerId, 4, fenced), fenced);
        assert_eq!(for_version(ApiKey::EndTxn, 1, fenced), epoch);
        assert_eq!(for_version(ApiKey::EndTxn, 2, fenced), fenced);
        assert_eq!(
            for_version(ApiKey::Produce, 3, ResponseError::UnknownProducerId),
            ResponseError::UnknownProducerId
        );
    }

    #[test]
    fn an_unreachable_kafdo_is_retriable() {
        let (code, _) = from_client(&ClientError::Connect("refused".into()));
        assert!(code.is_retriable());
        let (code, _) = from_client(&ClientError::UnknownOutcome("timed out".into()));
        assert_eq!(code, ResponseError::RequestTimedOut);
    }
}
