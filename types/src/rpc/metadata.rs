//! Calls to the metadata object ([`Object::Metadata`](super::Object::Metadata), named
//! `cluster`): topics, producer-id blocks and the registry of consumer groups.

use serde::{Deserialize, Serialize};

use super::PartitionRef;
use crate::api::{CreateTopicRequest, TopicConfig};

object_calls! {
    /// A call to the metadata object (`kafdo_metadata::Metadata`).
    pub enum MetadataCall: Metadata {
        /// Creates a topic (a fresh topic id, never reused).
        CreateTopic(CreateTopicRequest) -> TopicMetadata = "/metadata/create-topic",
        /// One topic, or `UNKNOWN_TOPIC_OR_PARTITION`.
        Topic(TopicRequest) -> TopicMetadata = "/metadata/topic",
        /// Every topic.
        ListTopics(ListTopicsRequest) -> Vec<TopicMetadata> = "/metadata/list-topics",
        /// Raises a topic's partition count (never lowers it); answers the topic.
        AddPartitions(AddPartitionsToTopic) -> TopicMetadata = "/metadata/add-partitions",
        /// Deletes a topic; answers what was deleted (its partitions are deleted next).
        DeleteTopic(DeleteTopicRequest) -> TopicMetadata = "/metadata/delete-topic",
        /// Client producer ids never handed out before (one per producer: see
        /// [`KEY_PRODUCER_ID_BASE`]).
        AllocateProducerIds(AllocateProducerIds) -> ProducerIdBlock
            = "/metadata/allocate-producer-ids",
        /// A block of key producer ids (`Idempotency-Key` produce) never handed out before.
        AllocateKeyProducerIds(AllocateKeyProducerIds) -> ProducerIdBlock
            = "/metadata/allocate-key-producer-ids",
        /// The marks below which every producer id was handed out.
        ProducerIdMarks(ProducerIdMarksRequest) -> ProducerIdMarks
            = "/metadata/producer-id-marks",
        /// Records a group id in the registry behind `GET /v1/groups`.
        RegisterGroup(RegisterGroupRequest) -> () = "/metadata/register-group",
        /// A page of the registry.
        ListGroups(ListGroupsRequest) -> Vec<String> = "/metadata/list-groups",
    }
}

/// A topic as the metadata object stores it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMetadata {
    /// The name.
    pub name: String,
    /// A unique id for this incarnation of the topic.
    pub topic_id: String,
    /// The partition count.
    pub partitions: i32,
    /// The configuration.
    pub config: TopicConfig,
    /// When it was created, ms since the epoch.
    pub created_ms: i64,
}

impl TopicMetadata {
    /// The reference a partition call carries.
    pub fn partition(&self, partition: i32) -> PartitionRef {
        PartitionRef {
            topic: self.name.clone(),
            topic_id: self.topic_id.clone(),
            partition,
            config: self.config.clone(),
        }
    }

    /// The Durable Object name of one partition of this topic incarnation.
    pub fn partition_object_name(&self, partition: i32) -> String {
        super::partition_object_name(&self.topic_id, partition)
    }
}

/// [`MetadataCall::Topic`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicRequest {
    /// The topic.
    pub name: String,
}

/// [`MetadataCall::ListTopics`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListTopicsRequest;

/// [`MetadataCall::DeleteTopic`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteTopicRequest {
    /// The topic.
    pub name: String,
    /// Delete only this incarnation (its Kafka topic id, [`crate::api::kafka_topic_id`]): a
    /// topic of that name with another id is `UNKNOWN_TOPIC_OR_PARTITION`, untouched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_id: Option<String>,
}

/// [`MetadataCall::AddPartitions`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddPartitionsToTopic {
    /// The topic.
    pub name: String,
    /// The new partition count, higher than the current one.
    pub count: i32,
}

/// [`MetadataCall::AllocateProducerIds`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocateProducerIds {
    /// How many.
    pub count: u32,
}

/// Where the key producer ids begin: client ids are below it, the ids of `Idempotency-Key`
/// produce (which no client sees) from it up to 2^53.
pub const KEY_PRODUCER_ID_BASE: i64 = 1 << 52;

/// [`MetadataCall::AllocateKeyProducerIds`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocateKeyProducerIds {
    /// How many.
    pub count: u32,
}

/// [`MetadataCall::ProducerIdMarks`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerIdMarksRequest;

/// Every producer id below each mark was handed out.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerIdMarks {
    /// The next client id (every client id below it was handed out).
    pub client_below: i64,
    /// The next key id.
    pub key_below: i64,
}

/// Producer ids `start..end`, never handed out before.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerIdBlock {
    /// The first id.
    pub start: i64,
    /// One past the last id.
    pub end: i64,
}

/// [`MetadataCall::RegisterGroup`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterGroupRequest {
    /// The group id.
    pub group_id: String,
}

/// [`MetadataCall::ListGroups`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListGroupsRequest {
    /// Only ids after this one (the previous page's last).
    pub after: Option<String>,
    /// At most this many.
    pub limit: u32,
}
