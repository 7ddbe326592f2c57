//! CreateTopics, DeleteTopics and InitProducerId.
//!
//! Kafka's topic configs are mapped onto Kafdo's ([`topic_config`]): `retention.ms` and
//! `cleanup.policy` are Kafdo's own; configs about replicas and segments, which Kafdo's storage
//! has no use for, are accepted and have no effect; any other config fails its topic with
//! `INVALID_CONFIG` and a message naming it, and the request's other topics go on.

use futures_util::future::join_all;
use kafdo_types::api::{CleanupPolicy, InitProducerRequest, TopicConfig};
use kafdo_types::limits;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    ApiKey, CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest,
    CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse, InitProducerIdRequest,
    InitProducerIdResponse, ProducerId, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use uuid::Uuid;

use super::Gateway;
use crate::errors;

/// Kafka's `num.partitions` default, for a CreateTopics that leaves the count to the broker.
const DEFAULT_PARTITIONS: i32 = 1;

/// Kafka topic configs Kafdo accepts and ignores: each is about replicas, segments, or
/// caches that Kafdo's storage does not have, and none changes what a client reads.
const IGNORED_CONFIGS: &[&str] = &[
    "min.insync.replicas",
    "unclean.leader.election.enable",
    "segment.bytes",
    "segment.ms",
    "segment.index.bytes",
    "segment.jitter.ms",
    "index.interval.bytes",
    "flush.messages",
    "flush.ms",
    "file.delete.delay.ms",
    "preallocate",
    "retention.bytes",
    "compression.type",
    "message.timestamp.type",
    "min.cleanable.dirty.ratio",
    "delete.retention.ms",
    "min.compaction.lag.ms",
    "max.compaction.lag.ms",
];

type Failure = (ResponseError, String);

impl Gateway {
    pub(super) async fn create_topics(
        &self,
        request: CreateTopicsRequest,
        version: i16,
    ) -> CreateTopicsResponse {
        let results = join_all(
            request
                .topics
                .iter()
                .map(|topic| self.create_topic(topic, request.validate_only)),
        )
        .await;
        let topics = request
            .topics
            .iter()
            .zip(results)
            .map(|(topic, result)| {
                let answer = CreatableTopicResult::default().with_name(topic.name.clone());
                match result {
                    Ok(partitions) if version >= 5 => answer
                        .with_num_partitions(partitions)
                        .with_replication_factor(1),
                    Ok(_) => answer,
                    Err((code, message)) => {
                        tracing::debug!(?code, %message, "CreateTopics: a topic refused");
                        let mut answer = answer.with_error_code(code.code());
                        if version >= 1 {
                            answer.error_message = Some(StrBytes::from_string(message));
                        }
                        if version >= 5 {
                            answer.configs = None;
                        }
                        answer
                    }
                }
            })
            .collect();
        CreateTopicsResponse::default().with_topics(topics)
    }

    /// Creates one topic (or only checks it, with `validate_only`); its partition count.
    async fn create_topic(
        &self,
        topic: &CreatableTopic,
        validate_only: bool,
    ) -> Result<i32, Failure> {
        let (name, partitions, config) = creatable(topic)?;
        if validate_only {
            return match self.kafdo.describe_topic(name).await {
                Ok(_) => Err((
                    ResponseError::TopicAlreadyExists,
                    format!("topic {name:?} already exists"),
                )),
                Err(error) if error.code() == kafdo_types::ErrorCode::UnknownTopicOrPartition => {
                    Ok(partitions)
                }
                Err(error) => Err(errors::from_client(&error)),
            };
        }
        self.kafdo
            .create_topic(name, partitions, config)
            .await
            .map(|created| created.partitions)
            .map_err(|error| errors::from_client(&error))
    }

    /// DeleteTopics v6 naming a topic by id: the name is found in the topic list, and the
    /// delete names that incarnation, so a topic created again under the name meanwhile (with
    /// another id) is not deleted: it answers `UNKNOWN_TOPIC_ID`, as a topic id never seen.
    async fn delete_topic_by_id(&self, id: Uuid) -> Result<(), Failure> {
        let unknown = || {
            (
                ResponseError::UnknownTopicId,
                format!("no topic has the topic id {id}"),
            )
        };
        let topics = self
            .kafdo
            .list_topics()
            .await
            .map_err(|error| errors::from_client(&error))?;
        let name = super::metadata::by_id(&topics, id)
            .ok_or_else(unknown)?
            .name
            .clone();
        match self
            .kafdo
            .delete_topic_with_id(&name, &id.to_string())
            .await
        {
            Ok(()) => Ok(()),
            Err(error) if error.code() == kafdo_types::ErrorCode::UnknownTopicOrPartition => {
                Err(unknown())
            }
            Err(error) => Err(errors::from_client(&error)),
        }
    }

    /// CreatePartitions: each topic's count raised (`POST /v1/topics/{t}/partitions`); manual
    /// assignments may name only broker 0; `validate_only` checks against the current count
    /// and changes nothing.
    pub(super) async fn create_partitions(
        &self,
        request: CreatePartitionsRequest,
        version: i16,
    ) -> CreatePartitionsResponse {
        let validate_only = request.validate_only;
        let results = join_all(request.topics.iter().map(|t| async move {
            let name = t.name.0.as_str();
            let result: Result<(), Failure> = if t
                .assignments
                .iter()
                .flatten()
                .any(|a| a.broker_ids.iter().any(|b| b.0 != 0))
            {
                Err((
                    ResponseError::InvalidReplicaAssignment,
                    "the only broker is 0".into(),
                ))
            } else if validate_only {
                match self.kafdo.describe_topic(name).await {
                    Ok(d) if t.count > d.partitions && t.count <= limits::MAX_PARTITIONS => Ok(()),
                    Ok(d) => Err((
                        ResponseError::InvalidPartitions,
                        format!(
                            "topic {name:?} has {} partitions: the new count must be higher, \
                             at most {}",
                            d.partitions,
                            limits::MAX_PARTITIONS
                        ),
                    )),
                    Err(error) => Err(errors::from_client(&error)),
                }
            } else {
                self.kafdo
                    .add_partitions(name, t.count)
                    .await
                    .map(|_| ())
                    .map_err(|error| errors::from_client(&error))
            };
            let mut answer = CreatePartitionsTopicResult::default().with_name(t.name.clone());
            if let Err((code, message)) = result {
                let code = errors::for_version(ApiKey::CreatePartitions, version, code);
                tracing::debug!(?code, %message, "CreatePartitions: a topic refused");
                answer = answer
                    .with_error_code(code.code())
                    .with_error_message(Some(StrBytes::from_string(message)));
            }
            answer
        }))
        .await;
        CreatePartitionsResponse::default().with_results(results)
    }

    pub(super) async fn delete_topics(
        &self,
        request: DeleteTopicsRequest,
        version: i16,
    ) -> DeleteTopicsResponse {
        // Up to v5 by name; from v6 each entry has a name or a topic id.
        let wanted: Vec<Option<TopicName>> = if version >= 6 {
            request.topics.iter().map(|t| t.name.clone()).collect()
        } else {
            request.topic_names.iter().cloned().map(Some).collect()
        };
        let ids: Vec<Uuid> = if version >= 6 {
            request.topics.iter().map(|t| t.topic_id).collect()
        } else {
            vec![Uuid::nil(); wanted.len()]
        };
        let results = join_all(wanted.iter().zip(&ids).map(|(name, id)| async move {
            match name {
                Some(name) => self
                    .kafdo
                    .delete_topic(name.0.as_str())
                    .await
                    .map_err(|error| errors::from_client(&error)),
                None => self.delete_topic_by_id(*id).await,
            }
        }))
        .await;
        let responses = wanted
            .into_iter()
            .zip(results)
            .enumerate()
            .map(|(i, (name, result))| {
                let mut answer = DeletableTopicResult::default().with_name(name);
                if version >= 6 {
                    answer.topic_id = request.topics[i].topic_id;
                }
                if let Err((code, message)) = result {
                    tracing::debug!(?code, %message, "DeleteTopics: a topic refused");
                    answer.error_code = code.code();
                    if version >= 5 {
                        answer.error_message = Some(StrBytes::from_string(message));
                    }
                }
                answer
            })
            .collect();
        DeleteTopicsResponse::default().with_responses(responses)
    }

    pub(super) async fn init_producer_id(
        &self,
        request: InitProducerIdRequest,
        version: i16,
    ) -> InitProducerIdResponse {
        let kafdo_request = InitProducerRequest {
            transactional_id: request.transactional_id.as_ref().map(|t| t.0.to_string()),
            transaction_timeout_ms: request
                .transactional_id
                .is_some()
                .then_some(i64::from(request.transaction_timeout_ms)),
        };
        let answer = InitProducerIdResponse::default();
        let result = match self.kafdo.init_producer(&kafdo_request).await {
            Ok(p) => i16::try_from(p.producer_epoch)
                .map(|epoch| (p.producer_id, epoch))
                .map_err(|_| {
                    (
                        ResponseError::ProducerFenced,
                        format!("epoch {} does not fit Kafka's i16", p.producer_epoch),
                    )
                }),
            Err(error) => Err(errors::from_client(&error)),
        };
        match result {
            Ok((id, epoch)) => answer
                .with_producer_id(ProducerId(id))
                .with_producer_epoch(epoch),
            Err((code, message)) => {
                let code = errors::for_version(ApiKey::InitProducerId, version, code);
                tracing::debug!(?code, %message, "InitProducerId refused");
                answer
                    .with_error_code(code.code())
                    .with_producer_id(ProducerId(-1))
                    .with_producer_epoch(-1)
            }
        }
    }
}

/// A CreateTopics entry as Kafdo's name, partition count and config, or why it cannot be.
pub fn creatable(topic: &CreatableTopic) -> Result<(&str, i32, TopicConfig), Failure> {
    let name = topic.name.0.as_str();
    if !limits::valid_topic_name(name) {
        return Err((
            ResponseError::InvalidTopicException,
            format!("invalid topic name {name:?}: use 1 to 249 of [a-zA-Z0-9._-]"),
        ));
    }
    let partitions = if !topic.assignments.is_empty() {
        if topic.num_partitions != -1 || topic.replication_factor != -1 {
            return Err((
                ResponseError::InvalidRequest,
                "give either assignments or a partition count and replication factor".into(),
            ));
        }
        if topic
            .assignments
            .iter()
            .any(|a| a.broker_ids.iter().any(|b| b.0 != 0))
        {
            return Err((
                ResponseError::InvalidReplicaAssignment,
                "the only broker is node 0".into(),
            ));
        }
        topic.assignments.len() as i32
    } else if topic.num_partitions == -1 {
        DEFAULT_PARTITIONS
    } else {
        topic.num_partitions
    };
    if !(limits::MIN_PARTITIONS..=limits::MAX_PARTITIONS).contains(&partitions) {
        return Err((
            ResponseError::InvalidPartitions,
            format!(
                "a topic has {} to {} partitions, not {partitions}",
                limits::MIN_PARTITIONS,
                limits::MAX_PARTITIONS
            ),
        ));
    }
    if topic.replication_factor == 0 || topic.replication_factor < -1 {
        return Err((
            ResponseError::InvalidReplicationFactor,
            format!("replication factor {}", topic.replication_factor),
        ));
    }
    let configs = topic
        .configs
        .iter()
        .map(|c| (c.name.as_str(), c.value.as_ref().map(|v| v.as_str())));
    Ok((name, partitions, topic_config(configs)?))
}

/// Kafka topic configs as Kafdo's [`TopicConfig`]; the first that cannot be is the error.
pub fn topic_config<'a>(
    configs: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
) -> Result<TopicConfig, Failure> {
    let mut config = TopicConfig::default();
    for (name, value) in configs {
        let invalid = |why: &str| {
            (
                ResponseError::InvalidConfig,
                format!("{name}={}: {why}", value.unwrap_or("null")),
            )
        };
        let Some(value) = value else {
            // A null value asks for the default.
            continue;
        };
        match name {
            "retention.ms" => {
                config.retention_ms = match value.parse::<i64>() {
                    Ok(ms) if ms == -1 || (1..=limits::MAX_SAFE_INTEGER).contains(&ms) => ms,
                    _ => return Err(invalid("a number of ms, or -1 to keep records for ever")),
                }
            }
            "cleanup.policy" => {
                config.cleanup_policy = match value {
                    "delete" => CleanupPolicy::Delete,
                    "compact" => CleanupPolicy::Compact,
                    _ => return Err(invalid("Kafdo offers \"delete\" or \"compact\"")),
                }
            }
            "max.message.bytes" => match value.parse::<i64>() {
                // Kafdo's record limit is fixed; a topic may ask for no more than it.
                Ok(n) if (1..=(limits::MAX_RECORD_BYTES as i64 + 12)).contains(&n) => {}
                _ => {
                    return Err(invalid(&format!(
                        "Kafdo's records are at most {} bytes",
                        limits::MAX_RECORD_BYTES
                    )))
                }
            },
            _ if IGNORED_CONFIGS.contains(&name) => {}
            _ => return Err(invalid("not a topic config Kafdo knows")),
        }
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::protocol::Encodable;

    #[test]
    fn kafka_configs_map_onto_kafdos() {
        let config = topic_config([
            ("retention.ms", Some("60000")),
            ("cleanup.policy", Some("compact")),
        ])
        .unwrap();
        assert_eq!(config.retention_ms, 60_000);
        assert_eq!(config.cleanup_policy, CleanupPolicy::Compact);
        assert_eq!(
            topic_config([("retention.ms", Some("-1"))])
                .unwrap()
                .retention_ms,
            -1
        );
        assert!(topic_config([("min.insync.replicas", Some("2")), ("retention.ms", None)]).is_ok());
        for bad in [
            ("retention.ms", "soon"),
            ("retention.ms", "-5"),
            ("cleanup.policy", "compact,delete"),
            ("max.message.bytes", "10485760"),
            ("no.such.config", "1"),
        ] {
            let (code, message) = topic_config([(bad.0, Some(bad.1))]).unwrap_err();
            assert_eq!(code, ResponseError::InvalidConfig);
            assert!(message.starts_with(bad.0), "{message}");
        }
    }

    #[test]
    fn a_creatable_topic_is_checked() {
        let topic = |partitions, replication| {
            CreatableTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("t")))
                .with_num_partitions(partitions)
                .with_replication_factor(replication)
        };
        assert_eq!(creatable(&topic(-1, -1)).unwrap().1, DEFAULT_PARTITIONS);
        assert_eq!(creatable(&topic(3, 3)).unwrap().1, 3);
        assert_eq!(
            creatable(&topic(0, 1)).unwrap_err().0,
            ResponseError::InvalidPartitions
        );
        assert_eq!(
            creatable(&topic(257, 1)).unwrap_err().0,
            ResponseError::InvalidPartitions
        );
        assert_eq!(
            creatable(&topic(1, 0)).unwrap_err().0,
            ResponseError::InvalidReplicationFactor
        );
        let bad_name = topic(1, 1).with_name(TopicName(StrBytes::from_static_str("a/b")));
        assert_eq!(
            creatable(&bad_name).unwrap_err().0,
            ResponseError::InvalidTopicException
        );
    }

    #[test]
    fn every_offered_version_encodes() {
        for (key, answer) in [
            (ApiKey::CreateTopics, 0),
            (ApiKey::DeleteTopics, 1),
            (ApiKey::InitProducerId, 2),
            (ApiKey::CreatePartitions, 3),
        ] {
            let (low, high) = super::super::offered(key).unwrap();
            for version in low..=high {
                let mut out = BytesMut::new();
                let result = match answer {
                    0 => CreateTopicsResponse::default()
                        .with_topics(vec![CreatableTopicResult::default()])
                        .encode(&mut out, version),
                    1 => DeleteTopicsResponse::default()
                        .with_responses(vec![DeletableTopicResult::default()
                            .with_name(Some(TopicName(StrBytes::from_static_str("t"))))])
                        .encode(&mut out, version),
                    2 => InitProducerIdResponse::default().encode(&mut out, version),
                    _ => CreatePartitionsResponse::default()
                        .with_results(vec![CreatePartitionsTopicResult::default()
                            .with_error_code(ResponseError::InvalidPartitions.code())
                            .with_error_message(Some(StrBytes::from_static_str("no")))])
                        .encode(&mut out, version),
                };
                result.unwrap_or_else(|e| panic!("{key:?} v{version}: {e}"));
            }
        }
    }
}
