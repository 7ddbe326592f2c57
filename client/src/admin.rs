//! Topic administration: create, list, describe, delete, and a partition's offsets.
//!
//! These are plain calls on [`Client`]. Reads and deletes are retried on an unknown outcome;
//! a creation is not (a retry after a lost answer would report `TOPIC_ALREADY_EXISTS` for the
//! topic the first attempt created, which is better left to the caller to interpret).

use kafdo_types::api::{
    CreatePartitionsRequest, CreateTopicRequest, DeleteRecordsResponse, Isolation, PartitionInfo,
    ProducerList, TimestampOffset, TopicConfig, TopicDescription, TopicList,
};
use kafdo_types::limits;

use crate::client::{topic_path, Call, Client};
use crate::error::Error;
use crate::retry::Safety;
use crate::transport::Method;

impl Client {
    /// `POST /v1/topics`: creates a topic with `partitions` partitions (1 to 256).
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        config: TopicConfig,
    ) -> Result<TopicDescription, Error> {
        if !limits::valid_topic_name(name) {
            return Err(Error::InvalidArgument(format!(
                "invalid topic name {name:?}: use 1 to 249 of [a-zA-Z0-9._-]"
            )));
        }
        if !(limits::MIN_PARTITIONS..=limits::MAX_PARTITIONS).contains(&partitions) {
            return Err(Error::InvalidArgument(format!(
                "a topic has {} to {} partitions, not {partitions}",
                limits::MIN_PARTITIONS,
                limits::MAX_PARTITIONS
            )));
        }
        let mut call = Call::new(Method::Post, "/v1/topics".into(), Safety::NotIdempotent);
        call.body = Some(self.encode(&CreateTopicRequest {
            name: name.to_string(),
            partitions,
            config,
        }));
        self.call(call).await
    }

    /// `GET /v1/topics`: every topic.
    pub async fn list_topics(&self) -> Result<Vec<TopicDescription>, Error> {
        let list: TopicList = self
            .call(Call::new(
                Method::Get,
                "/v1/topics".into(),
                Safety::Idempotent,
            ))
            .await?;
        Ok(list.topics)
    }

    /// `GET /v1/topics/{t}`: a topic's partition count and configuration.
    pub async fn describe_topic(&self, name: &str) -> Result<TopicDescription, Error> {
        self.call(Call::new(Method::Get, topic_path(name), Safety::Idempotent))
            .await
    }

    /// `POST /v1/topics/{t}/partitions`: raises the partition count to `count` (never lowers
    /// it). Not retried on an unknown outcome: a retry that finds the count already raised is
    /// refused (`INVALID_PARTITIONS`), which the caller can read as done.
    pub async fn add_partitions(&self, name: &str, count: i32) -> Result<TopicDescription, Error> {
        let mut call = Call::new(
            Method::Post,
            format!("{}/partitions", topic_path(name)),
            Safety::NotIdempotent,
        );
        call.body = Some(self.encode(&CreatePartitionsRequest { count }));
        self.call(call).await
    }

    /// `DELETE /v1/topics/{t}`. Retried on an unknown outcome, so a delete whose first attempt
    /// succeeded unseen may report `UNKNOWN_TOPIC_OR_PARTITION`: the topic is gone either way.
    pub async fn delete_topic(&self, name: &str) -> Result<(), Error> {
        self.call(Call::new(
            Method::Delete,
            topic_path(name),
            Safety::Idempotent,
        ))
        .await
    }

    /// `DELETE /v1/topics/{t}?topic_id=ID`: deletes the topic only if it is the incarnation
    /// with that topic id (`UNKNOWN_TOPIC_OR_PARTITION` otherwise, the topic untouched).
    pub async fn delete_topic_with_id(&self, name: &str, topic_id: &str) -> Result<(), Error> {
        let mut call = Call::new(Method::Delete, topic_path(name), Safety::Idempotent);
        call.query = vec![("topic_id", topic_id.to_string())];
        self.call(call).await
    }

    /// `GET /v1/topics/{t}/partitions/{p}`: log start offset, high watermark, last stable offset.
    pub async fn partition_info(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<PartitionInfo, Error> {
        self.call(Call::new(
            Method::Get,
            format!("{}/partitions/{partition}", topic_path(topic)),
            Safety::Idempotent,
        ))
        .await
    }

    /// `GET /v1/topics/{t}/partitions/{p}/offsets?timestamp=T`: the first offset whose record
    /// has a timestamp at or after `timestamp` (ms since the epoch), below the last stable
    /// offset for read_committed and the high watermark otherwise; `None`s when there is none.
    pub async fn offset_for_timestamp(
        &self,
        topic: &str,
        partition: i32,
        timestamp: i64,
        isolation: Isolation,
    ) -> Result<TimestampOffset, Error> {
        let mut call = Call::new(
            Method::Get,
            format!("{}/partitions/{partition}/offsets", topic_path(topic)),
            Safety::Idempotent,
        );
        call.query = vec![
            ("timestamp", timestamp.to_string()),
            ("isolation", isolation.as_str().to_string()),
        ];
        self.call(call).await
    }

    /// `GET /v1/topics/{t}/partitions/{p}/producers`: the producers the partition remembers.
    pub async fn partition_producers(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<ProducerList, Error> {
        self.call(Call::new(
            Method::Get,
            format!("{}/partitions/{partition}/producers", topic_path(topic)),
            Safety::Idempotent,
        ))
        .await
    }

    /// `DELETE /v1/topics/{t}/partitions/{p}/records?before=N`: deletes every record before
    /// offset `before` (Kafka's DeleteRecords) and answers the new log start offset. Retrying
    /// is harmless: a second call finds the log start already there.
    pub async fn delete_records(
        &self,
        topic: &str,
        partition: i32,
        before: i64,
    ) -> Result<DeleteRecordsResponse, Error> {
        let mut call = Call::new(
            Method::Delete,
            format!("{}/partitions/{partition}/records", topic_path(topic)),
            Safety::Idempotent,
        );
        call.query = vec![("before", before.to_string())];
        self.call(call).await
    }
}
