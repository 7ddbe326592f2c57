//! Metadata and FindCoordinator: the gateway is the whole cluster, one broker (node 0) that
//! leads every partition and coordinates every transactional id and group.

use kafdo_types::api::TopicDescription;
use kafdo_types::limits;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, FindCoordinatorRequest, FindCoordinatorResponse, MetadataRequest, MetadataResponse,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use uuid::Uuid;

use super::{code, Gateway, Node};
use crate::errors;

/// The cluster id every Metadata answer carries.
pub const CLUSTER_ID: &str = "kafdo";

impl Gateway {
    pub(super) async fn metadata(
        &self,
        request: MetadataRequest,
        version: i16,
    ) -> MetadataResponse {
        // Null topics asks for every topic; so does an empty list at v0.
        let wanted: Option<Vec<Wanted>> = match &request.topics {
            None => None,
            Some(topics) if topics.is_empty() && version == 0 => None,
            Some(topics) => Some(
                topics
                    .iter()
                    .map(|t| match &t.name {
                        Some(name) => Wanted::Name(name.0.to_string()),
                        None => Wanted::Id(t.topic_id),
                    })
                    .collect(),
            ),
        };
        // One call lists every topic with its partition count: no call per topic.
        let topics = match self.kafdo.list_topics().await {
            Ok(topics) => Ok(topics),
            Err(error) => {
                let (code, message) = errors::from_client(&error);
                tracing::warn!(%message, "Metadata: listing the topics failed");
                Err(code)
            }
        };
        metadata_answer(
            &self.node,
            version,
            wanted.as_deref(),
            topics.as_deref().map_err(|c| *c),
        )
    }

    pub(super) fn find_coordinator(
        &self,
        request: FindCoordinatorRequest,
        version: i16,
    ) -> FindCoordinatorResponse {
        find_coordinator_answer(&self.node, version, request)
    }
}

/// A topic a Metadata request names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Wanted {
    /// By name.
    Name(String),
    /// By topic id only (v10 on).
    Id(Uuid),
}

/// Builds the Metadata answer for `version` from Kafdo's topic list (or the error of listing
/// it, given to every named topic).
pub fn metadata_answer(
    node: &Node,
    version: i16,
    wanted: Option<&[Wanted]>,
    topics: Result<&[TopicDescription], ResponseError>,
) -> MetadataResponse {
    let broker = MetadataResponseBroker::default()
        .with_node_id(BrokerId(node.id))
        .with_host(StrBytes::from_string(node.host.clone()))
        .with_port(node.port);
    let mut answer = MetadataResponse::default().with_brokers(vec![broker]);
    if version >= 1 {
        answer.controller_id = BrokerId(node.id);
    }
    if version >= 2 {
        answer.cluster_id = Some(StrBytes::from_static_str(CLUSTER_ID));
    }
    let found = |name: &str| -> Result<Option<&TopicDescription>, ResponseError> {
        Ok(topics?.iter().find(|t| t.name == name))
    };
    answer.topics = match wanted {
        None => topics
            .unwrap_or_default()
            .iter()
            .map(|t| topic_entry(node, version, &t.name, Ok(t)))
            .collect(),
        Some(wanted) => wanted
            .iter()
            .map(|w| match w {
                Wanted::Id(id) => match topics.map(|all| by_id(all, *id)) {
                    Ok(Some(t)) => topic_entry(node, version, &t.name, Ok(t)),
                    Ok(None) => {
                        let mut topic = MetadataResponseTopic::default()
                            .with_error_code(ResponseError::UnknownTopicId.code());
                        topic.topic_id = *id;
                        topic
                    }
                    Err(e) => MetadataResponseTopic::default().with_error_code(e.code()),
                },
                Wanted::Name(name) if !limits::valid_topic_name(name) => topic_entry(
                    node,
                    version,
                    name,
                    Err(ResponseError::InvalidTopicException),
                ),
                Wanted::Name(name) => {
                    let topic = match found(name) {
                        Ok(Some(t)) => Ok(t),
                        Ok(None) => Err(ResponseError::UnknownTopicOrPartition),
                        Err(e) => Err(e),
                    };
                    topic_entry(node, version, name, topic)
                }
            })
            .collect(),
    };
    answer
}

/// The topic of Kafka topic id `id`, if any.
pub fn by_id(topics: &[TopicDescription], id: Uuid) -> Option<&TopicDescription> {
    topics.iter().find(|t| topic_uuid(t) == Some(id))
}

/// A topic's Kafka topic id.
fn topic_uuid(topic: &TopicDescription) -> Option<Uuid> {
    Uuid::try_parse(&topic.topic_id).ok()
}

fn topic_entry(
    node: &Node,
    version: i16,
    name: &str,
    described: Result<&TopicDescription, ResponseError>,
) -> MetadataResponseTopic {
    let mut topic = MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(name.to_string()))));
    if version >= 10 {
        if let Some(id) = described.ok().and_then(topic_uuid) {
            topic.topic_id = id;
        }
    }
    match described.map(|t| t.partitions) {
        Ok(count) => {
            topic.partitions = (0..count)
                .map(|p| {
                    let mut partition = MetadataResponsePartition::default()
                        .with_partition_index(p)
                        .with_leader_id(BrokerId(node.id))
                        .with_replica_nodes(vec![BrokerId(node.id)])
                        .with_isr_nodes(vec![BrokerId(node.id)]);
                    if version >= 7 {
                        partition.leader_epoch = 0;
                    }
                    partition
                })
                .collect();
        }
        Err(error) => topic.error_code = code(Some(error)),
    }
    topic
}

/// Node 0 for every key: of a group (`key_type` 0) or a transactional id (1).
pub fn find_coordinator_answer(
    node: &Node,
    version: i16,
    request: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let host = StrBytes::from_string(node.host.clone());
    let known_type = matches!(request.key_type, 0 | 1);
    let error = (!known_type).then_some(ResponseError::InvalidRequest);
    if version >= 4 {
        // v4 asks for many keys at once.
        let coordinators = request
            .coordinator_keys
            .into_iter()
            .map(|key| {
                let mut c = Coordinator::default()
                    .with_key(key)
                    .with_error_code(code(error));
                if error.is_none() {
                    c = c
                        .with_node_id(BrokerId(node.id))
                        .with_host(host.clone())
                        .with_port(node.port);
                } else {
                    c.error_message = Some(StrBytes::from_static_str(
                        "key_type is 0 (group) or 1 (transaction)",
                    ));
                }
                c
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let mut answer = FindCoordinatorResponse::default().with_error_code(code(error));
    if error.is_none() {
        answer = answer
            .with_node_id(BrokerId(node.id))
            .with_host(host)
            .with_port(node.port);
    }
    answer
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafdo_types::api::TopicConfig;
    use kafka_protocol::protocol::Encodable;

    fn node() -> Node {
        Node {
            id: 0,
            host: "127.0.0.1".into(),
            port: 9092,
        }
    }

    fn topics() -> Vec<TopicDescription> {
        vec![TopicDescription {
            name: "orders".into(),
            topic_id: kafdo_types::api::kafka_topic_id("1-orders").to_string(),
            partitions: 3,
            config: TopicConfig::default(),
        }]
    }

    #[test]
    fn every_offered_version_encodes() {
        let (low, high) =
            super::super::offered(kafka_protocol::messages::ApiKey::Metadata).unwrap();
        let topics = topics();
        let wanted = [
            Wanted::Name("orders".into()),
            Wanted::Name("missing".into()),
            Wanted::Name("bad/name".into()),
        ];
        for version in low..=high {
            for wanted in [None, Some(&wanted[..])] {
                let answer = metadata_answer(&node(), version, wanted, Ok(&topics));
                answer
                    .encode(&mut BytesMut::new(), version)
                    .unwrap_or_else(|e| panic!("v{version}: {e}"));
            }
        }
        let (low, high) =
            super::super::offered(kafka_protocol::messages::ApiKey::FindCoordinator).unwrap();
        for version in low..=high {
            let request = FindCoordinatorRequest::default()
                .with_key(StrBytes::from_static_str("txn"))
                .with_coordinator_keys(if version >= 4 {
                    vec![StrBytes::from_static_str("txn")]
                } else {
                    vec![]
                })
                .with_key_type(1);
            find_coordinator_answer(&node(), version, request)
                .encode(&mut BytesMut::new(), version)
                .unwrap_or_else(|e| panic!("v{version}: {e}"));
        }
    }

    #[test]
    fn a_topic_is_led_by_node_zero_and_errors_are_per_topic() {
        let topics = topics();
        let wanted = [
            Wanted::Name("orders".into()),
            Wanted::Name("missing".into()),
            Wanted::Name("bad/name".into()),
            Wanted::Id(Uuid::from_u128(7)),
            Wanted::Id(kafdo_types::api::kafka_topic_id("1-orders")),
        ];
        let answer = metadata_answer(&node(), 12, Some(&wanted), Ok(&topics));
        assert_eq!(answer.brokers[0].port, 9092);
        let orders = &answer.topics[0];
        assert_eq!(orders.error_code, 0);
        assert_eq!(orders.partitions.len(), 3);
        assert!(orders.partitions.iter().all(|p| p.leader_id == BrokerId(0)));
        let codes: Vec<i16> = answer.topics.iter().map(|t| t.error_code).collect();
        assert_eq!(codes, vec![0, 3, 17, 100, 0]);
        // From v10 a topic carries its id, and can be asked for by it.
        let id = kafdo_types::api::kafka_topic_id("1-orders");
        assert_eq!(orders.topic_id, id);
        assert_eq!(answer.topics[4].name.as_ref().unwrap().0.as_str(), "orders");
        assert_eq!(answer.topics[4].topic_id, id);
        let old = metadata_answer(&node(), 9, Some(&wanted[..1]), Ok(&topics));
        assert!(old.topics[0].topic_id.is_nil(), "v9 has no topic ids");
        // Kafdo unreachable: every named topic carries the (retriable) error.
        let answer = metadata_answer(
            &node(),
            12,
            Some(&wanted[..1]),
            Err(ResponseError::NetworkException),
        );
        assert_eq!(answer.topics[0].error_code, 13);
    }
}
