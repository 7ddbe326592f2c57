//! Topics: lookup with the isolate's cache, create, list, describe, delete, and the per-partition
//! reads (offsets, fetch).
//!
//! # The topic cache
//!
//! Produce and fetch need the topic's id and partition count. The isolate caches them for
//! [`TOPIC_CACHE_MS`](crate::isolate::TOPIC_CACHE_MS) to spare a call to the metadata object on
//! every request. A stale entry is harmless: a deleted topic's partitions refuse every call with
//! `UNKNOWN_TOPIC_OR_PARTITION`, and on that answer [`Broker::with_topic`] drops the entry,
//! asks the metadata object again, and retries once if the topic now has another id (it was
//! deleted and created again). Records that a retried produce had written to the old
//! incarnation are gone with it: its partitions are being deleted.

use std::future::Future;

use kafdo_types::api::{
    CreateTopicRequest, DeleteRecordsResponse, FetchResponse, Isolation, PartitionInfo,
    ProducerList, TimestampOffset, TopicDescription, TopicList,
};
use kafdo_types::rpc::{
    AddPartitionsToTopic, Call, DeletePartitionRequest, DeleteRecordsRequest, DeleteTopicRequest,
    ListTopicsRequest, Object, OffsetForTimestampRequest, PartitionInfoRequest, PartitionRef,
    ProducersRequest, ReadRequest, TopicMetadata, TopicRequest,
};
use kafdo_types::{ApiError, ErrorCode};

use crate::{fan_out, Broker, Runtime, OBJECT_CALL_TIMEOUT_MS};

/// What a fetch asks for (the query of `GET /v1/topics/{t}/partitions/{p}/records`, checked).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct FetchOptions {
    /// The first offset wanted.
    pub offset: i64,
    /// At most this many records.
    pub max_records: u32,
    /// About this many bytes.
    pub max_bytes: u32,
    /// read_committed or read_uncommitted.
    pub isolation: Isolation,
    /// How long to wait when there are no records yet.
    pub wait_ms: u32,
}

/// `UNKNOWN_TOPIC_OR_PARTITION` for a partition the topic does not have.
pub fn unknown_partition(topic: &str, partition: i32) -> ApiError {
    ApiError::new(
        ErrorCode::UnknownTopicOrPartition,
        format!("topic {topic:?} has no partition {partition}"),
    )
}

/// Checks that `topic` has partition `p`.
pub fn check_partition(topic: &TopicMetadata, p: i32) -> Result<(), ApiError> {
    if (0..topic.partitions).contains(&p) {
        Ok(())
    } else {
        Err(unknown_partition(&topic.name, p))
    }
}

/// The public description of a topic.
pub fn describe(topic: &TopicMetadata) -> TopicDescription {
    TopicDescription {
        name: topic.name.clone(),
        topic_id: kafdo_types::api::kafka_topic_id(&topic.topic_id).to_string(),
        partitions: topic.partitions,
        config: topic.config.clone(),
    }
}

/// The object of one partition of a topic incarnation.
pub fn partition_object(topic: &TopicMetadata, p: i32) -> Object {
    Object::Partition {
        topic_id: topic.topic_id.clone(),
        partition: p,
    }
}

impl<R: Runtime> Broker<R> {
    /// A topic's metadata, from the isolate's cache when `fresh` is false and the entry is
    /// young. The flag says whether it came from the cache.
    pub async fn topic(&self, name: &str, fresh: bool) -> Result<(TopicMetadata, bool), ApiError> {
        if !fresh {
            if let Some(t) = self.isolate.cached_topic(name, self.runtime.now_ms()) {
                return Ok((t, true));
            }
        }
        let request = TopicRequest {
            name: name.to_owned(),
        };
        match self.ask(Object::Metadata, request).await {
            Ok(t) => {
                self.isolate.remember_topic(&t, self.runtime.now_ms());
                Ok((t, false))
            }
            Err(e) => {
                if e.code == ErrorCode::UnknownTopicOrPartition {
                    self.isolate.forget_topic(name);
                }
                Err(e)
            }
        }
    }

    /// Runs `f` on the topic's metadata; when the answer says the topic or partition is unknown
    /// and the metadata came from the cache, retries once with fresh metadata if the topic
    /// changed.
    pub async fn with_topic<T, F, Fut>(&self, name: &str, f: F) -> Result<T, ApiError>
    where
        F: Fn(TopicMetadata) -> Fut,
        Fut: Future<Output = Result<T, ApiError>>,
    {
        let (cached, from_cache) = self.topic(name, false).await?;
        let old_id = cached.topic_id.clone();
        match f(cached).await {
            Err(e) if e.code == ErrorCode::UnknownTopicOrPartition && from_cache => {
                self.isolate.forget_topic(name);
                let (fresh, _) = self.topic(name, true).await?;
                if fresh.topic_id == old_id {
                    return Err(e);
                }
                f(fresh).await
            }
            result => result,
        }
    }

    /// `POST /v1/topics`.
    pub async fn create_topic(
        &self,
        request: CreateTopicRequest,
    ) -> Result<TopicDescription, ApiError> {
        let topic = self.ask(Object::Metadata, request).await?;
        self.isolate.remember_topic(&topic, self.runtime.now_ms());
        Ok(describe(&topic))
    }

    /// `GET /v1/topics`.
    pub async fn list_topics(&self) -> Result<TopicList, ApiError> {
        let topics = self.ask(Object::Metadata, ListTopicsRequest).await?;
        Ok(TopicList {
            topics: topics.iter().map(describe).collect(),
        })
    }

    /// `GET /v1/topics/{t}` (always fresh: an administrator wants what is true now).
    pub async fn describe_topic(&self, name: &str) -> Result<TopicDescription, ApiError> {
        Ok(describe(&self.topic(name, true).await?.0))
    }

    /// `DELETE /v1/topics/{t}[?topic_id=ID]`: deletes the topic (only the incarnation with that
    /// Kafka topic id, if given) from the metadata, then every partition's log
    /// ([`fan_out::bounded`]). A partition that fails to delete keeps its data, but nothing can
    /// reach it any more: its topic id is gone for ever.
    pub async fn delete_topic(&self, name: &str, topic_id: Option<&str>) -> Result<(), ApiError> {
        let request = DeleteTopicRequest {
            name: name.to_owned(),
            topic_id: topic_id.map(str::to_owned),
        };
        let topic = self.ask(Object::Metadata, request).await?;
        self.isolate.forget_topic(name);
        let topic = &topic;
        let deletes = (0..topic.partitions).map(|p| async move {
            let request = DeletePartitionRequest {
                partition: topic.partition(p),
            };
            (p, self.ask(partition_object(topic, p), request).await)
        });
        for (p, result) in fan_out::bounded(deletes).await {
            if let Err(e) = result {
                tracing::error!(
                    topic_id = %topic.topic_id,
                    partition = p,
                    "deleting a partition failed: {}",
                    e.message
                );
            }
        }
        Ok(())
    }

    /// `POST /v1/topics/{t}/partitions`: raises the partition count (never lowers it). The new
    /// partitions are new objects, empty; this isolate forgets its cached count at once, others
    /// within the cache's time (2 s). Keyed records go where Kafka's partitioner sends them with
    /// the new count, except a keyed produce already begun, which keeps its first count.
    pub async fn add_partitions(
        &self,
        name: &str,
        count: i32,
    ) -> Result<TopicDescription, ApiError> {
        let request = AddPartitionsToTopic {
            name: name.to_owned(),
            count,
        };
        let topic = self.ask(Object::Metadata, request).await;
        self.isolate.forget_topic(name);
        Ok(describe(&topic?))
    }

    /// Calls partition `p` of topic `name` with the call `make` builds for its reference, within
    /// `timeout_ms`: the topic looked up (with [`Broker::with_topic`]'s retry on a stale
    /// cache), the partition checked against its count. One path for every partition call.
    async fn ask_partition<C: Call>(
        &self,
        name: &str,
        p: i32,
        timeout_ms: u32,
        make: impl Fn(PartitionRef) -> C,
    ) -> Result<C::Answer, ApiError> {
        let make = &make;
        self.with_topic(name, |topic| async move {
            check_partition(&topic, p)?;
            self.ask_within(
                partition_object(&topic, p),
                make(topic.partition(p)),
                timeout_ms,
            )
            .await
        })
        .await
    }

    /// `GET /v1/topics/{t}/partitions/{p}`.
    pub async fn partition_info(&self, name: &str, p: i32) -> Result<PartitionInfo, ApiError> {
        self.ask_partition(name, p, OBJECT_CALL_TIMEOUT_MS, |partition| {
            PartitionInfoRequest { partition }
        })
        .await
    }

    /// `GET /v1/topics/{t}/partitions/{p}/offsets?timestamp=T`.
    pub async fn offset_for_timestamp(
        &self,
        name: &str,
        p: i32,
        timestamp: i64,
        isolation: Isolation,
    ) -> Result<TimestampOffset, ApiError> {
        self.ask_partition(name, p, OBJECT_CALL_TIMEOUT_MS, |partition| {
            OffsetForTimestampRequest {
                partition,
                timestamp,
                isolation,
            }
        })
        .await
    }

    /// `GET /v1/topics/{t}/partitions/{p}/producers`.
    pub async fn partition_producers(&self, name: &str, p: i32) -> Result<ProducerList, ApiError> {
        self.ask_partition(name, p, OBJECT_CALL_TIMEOUT_MS, |partition| {
            ProducersRequest { partition }
        })
        .await
    }

    /// `DELETE /v1/topics/{t}/partitions/{p}/records?before=N`.
    pub async fn delete_records(
        &self,
        name: &str,
        p: i32,
        before: i64,
    ) -> Result<DeleteRecordsResponse, ApiError> {
        self.ask_partition(name, p, OBJECT_CALL_TIMEOUT_MS, |partition| {
            DeleteRecordsRequest { partition, before }
        })
        .await
    }

    /// `GET /v1/topics/{t}/partitions/{p}/records`: waits up to `wait_ms` beyond the usual
    /// deadline.
    pub async fn fetch(
        &self,
        name: &str,
        p: i32,
        options: FetchOptions,
    ) -> Result<FetchResponse, ApiError> {
        let timeout_ms = OBJECT_CALL_TIMEOUT_MS + options.wait_ms;
        self.ask_partition(name, p, timeout_ms, |partition| ReadRequest {
            partition,
            offset: options.offset,
            max_records: options.max_records,
            max_bytes: options.max_bytes,
            isolation: options.isolation,
            wait_ms: options.wait_ms,
        })
        .await
    }
}
