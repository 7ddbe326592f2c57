//! [`Consumer`]: reads assigned partitions with long polls, `read_committed` by default.
//!
//! A consumer has an *assignment* (the partitions it reads, [`Consumer::assign`]) and a
//! *position* per partition: the offset of the next record it will return. A partition without
//! a position gets one on the next poll from `auto_offset_reset` (Kafka's
//! `auto.offset.reset`): the log start offset (`Earliest`) or the end (`Latest`: the last
//! stable offset for `read_committed`, the high watermark for `read_uncommitted`).
//! [`Consumer::seek`] sets a position explicitly.
//!
//! # Poll
//!
//! [`Consumer::poll`] fetches every assigned partition at once, without waiting. If none has
//! records it fetches them all again as long polls (`wait_ms`, up to the poll's timeout) and
//! returns as soon as one partition answers with records; the other polls are dropped
//! unanswered (their records are fetched again by the next poll: positions move only with
//! records returned). Every answer also moves the position to its `next_offset`, which may skip
//! offsets that hold no readable record (transaction markers, aborted records).
//!
//! Records of one poll come partition by partition, in assignment order, each in offset order.
//!
//! `read_committed` (the default) returns only committed records, up to the last stable offset;
//! `read_uncommitted` returns everything up to the high watermark.
//!
//! A fetch below the log start offset (records deleted by retention) answers
//! `OFFSET_OUT_OF_RANGE`; the consumer then applies `auto_offset_reset` again, as Kafka does.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use futures_util::future::join_all;
use futures_util::stream::{FuturesUnordered, Stream, StreamExt};
use kafdo_types::api::{FetchResponse, Isolation};
use kafdo_types::limits::MAX_FETCH_WAIT_MS;
use kafdo_types::txn::TopicPartition;
use kafdo_types::{ErrorCode, Header};

use crate::client::{Client, FetchOptions};
use crate::error::Error;

/// Where a partition without a position starts.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum OffsetReset {
    /// At the log start offset.
    Earliest,
    /// At the end: only records produced from now on (Kafka's default).
    #[default]
    Latest,
    /// Nowhere: polling such a partition is an error (`OFFSET_OUT_OF_RANGE`).
    None,
}

/// A consumer's settings.
#[derive(Clone, Debug)]
pub struct ConsumerConfig {
    /// Which records to read (`ReadCommitted` by default).
    pub isolation: Isolation,
    /// Where a partition without a position starts.
    pub auto_offset_reset: OffsetReset,
    /// The most records one fetch of one partition returns.
    pub max_partition_fetch_records: u32,
    /// The byte budget of one fetch of one partition.
    pub max_partition_fetch_bytes: u32,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        Self {
            isolation: Isolation::ReadCommitted,
            auto_offset_reset: OffsetReset::Latest,
            max_partition_fetch_records: kafdo_types::limits::DEFAULT_FETCH_MAX_RECORDS,
            max_partition_fetch_bytes: kafdo_types::limits::DEFAULT_FETCH_MAX_BYTES,
        }
    }
}

/// A record as a consumer returns it: where it is, and what it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerRecord {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The offset.
    pub offset: i64,
    /// Create or append time, ms since the epoch.
    pub timestamp: i64,
    /// The key.
    pub key: Option<Vec<u8>>,
    /// The value (`None` for a tombstone).
    pub value: Option<Vec<u8>>,
    /// The headers.
    pub headers: Vec<Header>,
}

/// What the last fetch of a partition said about its end.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct PartitionEnd {
    /// The high watermark.
    pub high_watermark: i64,
    /// The last stable offset.
    pub last_stable_offset: i64,
}

/// A consumer of assigned partitions. See the module docs.
#[derive(Debug)]
pub struct Consumer {
    client: Client,
    config: ConsumerConfig,
    assignment: Vec<TopicPartition>,
    positions: HashMap<TopicPartition, i64>,
    ends: HashMap<TopicPartition, PartitionEnd>,
}

impl Consumer {
    /// A consumer with no assignment.
    pub fn new(client: Client, config: ConsumerConfig) -> Self {
        Self {
            client,
            config,
            assignment: Vec::new(),
            positions: HashMap::new(),
            ends: HashMap::new(),
        }
    }

    /// The client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The configuration.
    pub fn config(&self) -> &ConsumerConfig {
        &self.config
    }

    /// Reads exactly these partitions from now on. Partitions still assigned keep their
    /// positions; the others are forgotten.
    pub fn assign(&mut self, partitions: impl IntoIterator<Item = TopicPartition>) {
        let mut assignment: Vec<TopicPartition> = Vec::new();
        for tp in partitions {
            if !assignment.contains(&tp) {
                assignment.push(tp);
            }
        }
        self.positions.retain(|tp, _| assignment.contains(tp));
        self.ends.retain(|tp, _| assignment.contains(tp));
        self.assignment = assignment;
    }

    /// Assigns every partition of `topic` (asks the server for the partition count).
    pub async fn assign_topic(&mut self, topic: &str) -> Result<(), Error> {
        let description = self.client.describe_topic(topic).await?;
        self.assign((0..description.partitions).map(|partition| TopicPartition {
            topic: topic.to_string(),
            partition,
        }));
        Ok(())
    }

    /// The assigned partitions, in assignment order.
    pub fn assignment(&self) -> &[TopicPartition] {
        &self.assignment
    }

    /// The next offset the consumer returns from `tp`, if it has one yet.
    pub fn position(&self, tp: &TopicPartition) -> Option<i64> {
        self.positions.get(tp).copied()
    }

    /// What the last fetch of `tp` said about the partition's end.
    pub fn partition_end(&self, tp: &TopicPartition) -> Option<PartitionEnd> {
        self.ends.get(tp).copied()
    }

    /// Makes `offset` the next offset to read from `tp`, which must be assigned.
    pub fn seek(&mut self, tp: &TopicPartition, offset: i64) -> Result<(), Error> {
        if !self.assignment.contains(tp) {
            return Err(Error::InvalidArgument(format!(
                "{}/{} is not assigned to this consumer",
                tp.topic, tp.partition
            )));
        }
        if offset < 0 {
            return Err(Error::InvalidArgument(format!("negative offset {offset}")));
        }
        self.positions.insert(tp.clone(), offset);
        Ok(())
    }

    /// Moves every assigned partition to its log start offset.
    pub async fn seek_to_beginning(&mut self) -> Result<(), Error> {
        self.reset_all(OffsetReset::Earliest).await
    }

    /// Moves every assigned partition to its end (the last stable offset for read_committed).
    pub async fn seek_to_end(&mut self) -> Result<(), Error> {
        self.reset_all(OffsetReset::Latest).await
    }

    async fn reset_all(&mut self, reset: OffsetReset) -> Result<(), Error> {
        let assignment = self.assignment.clone();
        let offsets = join_all(assignment.iter().map(|tp| self.reset_offset(tp, reset))).await;
        for (tp, offset) in assignment.into_iter().zip(offsets) {
            self.positions.insert(tp, offset?);
        }
        Ok(())
    }

    /// The offset a reset policy gives a partition.
    pub(crate) async fn reset_offset(
        &self,
        tp: &TopicPartition,
        reset: OffsetReset,
    ) -> Result<i64, Error> {
        let info = self.client.partition_info(&tp.topic, tp.partition).await?;
        match reset {
            OffsetReset::Earliest => Ok(info.log_start_offset),
            OffsetReset::Latest => Ok(match self.config.isolation {
                Isolation::ReadCommitted => info.last_stable_offset,
                Isolation::ReadUncommitted => info.high_watermark,
            }),
            OffsetReset::None => Err(Error::Api {
                status: 416,
                code: ErrorCode::OffsetOutOfRange,
                message: format!(
                    "{}/{} has no position and auto_offset_reset is None",
                    tp.topic, tp.partition
                ),
            }),
        }
    }

    /// Gives every assigned partition without a position one, from `auto_offset_reset`.
    async fn resolve_positions(&mut self) -> Result<(), Error> {
        let missing: Vec<TopicPartition> = self
            .assignment
            .iter()
            .filter(|tp| !self.positions.contains_key(*tp))
            .cloned()
            .collect();
        let reset = self.config.auto_offset_reset;
        let offsets = join_all(missing.iter().map(|tp| self.reset_offset(tp, reset))).await;
        for (tp, offset) in missing.into_iter().zip(offsets) {
            self.positions.insert(tp, offset?);
        }
        Ok(())
    }

    fn options(&self, tp: &TopicPartition, wait_ms: u32) -> FetchOptions {
        FetchOptions {
            offset: self.positions[tp],
            max_records: self.config.max_partition_fetch_records,
            max_bytes: self.config.max_partition_fetch_bytes,
            isolation: self.config.isolation,
            wait_ms,
        }
    }

    /// Returns the next records of the assigned partitions, waiting up to `timeout` for some to
    /// arrive (an empty answer after that). See the module docs.
    pub async fn poll(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>, Error> {
        if self.assignment.is_empty() {
            // Nothing to read (a group member without partitions): wait as a poll would, so a
            // poll loop does not spin.
            self.client.sleep(timeout).await;
            return Ok(Vec::new());
        }
        self.resolve_positions().await?;
        // First, whatever is there now.
        let answers = {
            let client = &self.client;
            join_all(self.assignment.iter().map(|tp| {
                let options = self.options(tp, 0);
                async move {
                    (
                        tp.clone(),
                        client.fetch(&tp.topic, tp.partition, options).await,
                    )
                }
            }))
            .await
        };
        let mut records = Vec::new();
        for (tp, answer) in answers {
            self.apply(tp, answer, &mut records).await?;
        }
        let wait_ms = u32::try_from(timeout.as_millis())
            .unwrap_or(u32::MAX)
            .min(MAX_FETCH_WAIT_MS);
        if !records.is_empty() || wait_ms == 0 {
            return Ok(records);
        }
        // Then long polls, until the first partition answers with records.
        let mut polls: FuturesUnordered<_> = {
            let client = &self.client;
            self.assignment
                .iter()
                .map(|tp| {
                    let options = self.options(tp, wait_ms);
                    async move {
                        (
                            tp.clone(),
                            client.fetch(&tp.topic, tp.partition, options).await,
                        )
                    }
                })
                .collect()
        };
        let mut answers = Vec::new();
        while let Some((tp, answer)) = polls.next().await {
            let has_records = answer.as_ref().is_ok_and(|a| !a.records.is_empty());
            answers.push((tp, answer));
            if has_records {
                break;
            }
        }
        drop(polls);
        for (tp, answer) in answers {
            self.apply(tp, answer, &mut records).await?;
        }
        // Partition by partition, in assignment order.
        let order: HashMap<(&str, i32), usize> = self
            .assignment
            .iter()
            .enumerate()
            .map(|(i, tp)| ((tp.topic.as_str(), tp.partition), i))
            .collect();
        records.sort_by_key(|r| (order[&(r.topic.as_str(), r.partition)], r.offset));
        Ok(records)
    }

    /// Takes one fetch answer: its records, the new position and the partition's end.
    async fn apply(
        &mut self,
        tp: TopicPartition,
        answer: Result<FetchResponse, Error>,
        out: &mut Vec<ConsumerRecord>,
    ) -> Result<(), Error> {
        let answer = match answer {
            Ok(answer) => answer,
            Err(e) if e.code() == ErrorCode::OffsetOutOfRange => {
                let offset = self
                    .reset_offset(&tp, self.config.auto_offset_reset)
                    .await?;
                self.positions.insert(tp, offset);
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        // A fetch that was overtaken by a seek is stale.
        let position = self.positions[&tp];
        if answer.records.first().is_some_and(|r| r.offset < position) {
            return Ok(());
        }
        self.ends.insert(
            tp.clone(),
            PartitionEnd {
                high_watermark: answer.high_watermark,
                last_stable_offset: answer.last_stable_offset,
            },
        );
        if answer.next_offset > position {
            self.positions.insert(tp.clone(), answer.next_offset);
        }
        out.extend(answer.records.into_iter().map(|r| ConsumerRecord {
            topic: tp.topic.clone(),
            partition: tp.partition,
            offset: r.offset,
            timestamp: r.timestamp,
            key: r.key,
            value: r.value,
            headers: r.headers,
        }));
        Ok(())
    }

    /// The records as an endless stream: each poll waits up to `poll_timeout` and the stream
    /// yields their records one by one. An error ends nothing: the stream yields it and polls
    /// again on the next `next()`.
    pub fn stream(
        &mut self,
        poll_timeout: Duration,
    ) -> impl Stream<Item = Result<ConsumerRecord, Error>> + '_ {
        futures_util::stream::unfold(
            (self, VecDeque::new()),
            move |(consumer, mut buffer)| async move {
                loop {
                    if let Some(record) = buffer.pop_front() {
                        return Some((Ok(record), (consumer, buffer)));
                    }
                    match consumer.poll(poll_timeout).await {
                        Ok(records) => buffer.extend(records),
                        Err(e) => return Some((Err(e), (consumer, buffer))),
                    }
                }
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{api_error, json, FakeTransport};
    use serde_json::json;

    fn tp(p: i32) -> TopicPartition {
        TopicPartition {
            topic: "t".into(),
            partition: p,
        }
    }

    fn query(request: &crate::HttpRequest, name: &str) -> Option<String> {
        request
            .query
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
    }

    /// Partition 0 holds offsets 0..3; partition 1 gets offset 0 only on a long poll.
    fn server() -> FakeTransport {
        FakeTransport::new(|request, _| {
            let p: i32 = request.path.split('/').nth(5).unwrap().parse().unwrap();
            if !request.path.ends_with("/records") {
                return json(
                    200,
                    json!({"log_start_offset": 0, "high_watermark": 3, "last_stable_offset": 3}),
                );
            }
            let offset: i64 = query(request, "offset").unwrap().parse().unwrap();
            let wait = query(request, "wait_ms").is_some();
            let available: i64 = match (p, wait) {
                (0, _) => 3,
                (1, true) => 1,
                _ => 0,
            };
            if offset > 3 {
                return api_error(ErrorCode::OffsetOutOfRange);
            }
            let records: Vec<_> = (offset..available)
                .map(|o| json!({"offset": o, "timestamp": 1, "key": null, "value": "eA==", "headers": []}))
                .collect();
            json(
                200,
                json!({"records": records, "next_offset": available.max(offset), "high_watermark": 3, "last_stable_offset": 3}),
            )
        })
    }

    #[tokio::test]
    async fn polls_then_long_polls_and_tracks_positions() {
        let transport = server();
        let mut consumer = Consumer::new(
            Client::new(transport.clone()),
            ConsumerConfig {
                auto_offset_reset: OffsetReset::Earliest,
                ..ConsumerConfig::default()
            },
        );
        consumer.assign([tp(0), tp(1)]);
        let records = consumer.poll(Duration::from_millis(100)).await.unwrap();
        assert_eq!(
            records
                .iter()
                .map(|r| (r.partition, r.offset))
                .collect::<Vec<_>>(),
            vec![(0, 0), (0, 1), (0, 2)]
        );
        assert_eq!(records[0].value.as_deref(), Some(&b"x"[..]));
        assert_eq!(consumer.position(&tp(0)), Some(3));
        assert!(transport
            .requests()
            .iter()
            .all(|r| query(r, "isolation").as_deref() != Some("read_uncommitted")));
        // Nothing new without waiting: the long poll brings partition 1's record.
        let records = consumer.poll(Duration::from_millis(100)).await.unwrap();
        assert_eq!(
            records
                .iter()
                .map(|r| (r.partition, r.offset))
                .collect::<Vec<_>>(),
            vec![(1, 0)]
        );
        assert_eq!(consumer.position(&tp(1)), Some(1));
        // Seek, and an offset out of range resets to the beginning.
        consumer.seek(&tp(0), 1).unwrap();
        assert!(consumer.seek(&tp(7), 1).is_err());
        consumer.assign([tp(0)]);
        let records = consumer.poll(Duration::ZERO).await.unwrap();
        assert_eq!(
            records.iter().map(|r| r.offset).collect::<Vec<_>>(),
            vec![1, 2]
        );
        consumer.seek(&tp(0), 9).unwrap();
        assert!(consumer.poll(Duration::ZERO).await.unwrap().is_empty());
        assert_eq!(consumer.position(&tp(0)), Some(0));
    }

    #[tokio::test]
    async fn latest_starts_at_the_end_and_the_stream_yields_records() {
        let transport = server();
        let mut consumer = Consumer::new(Client::new(transport), ConsumerConfig::default());
        consumer.assign([tp(0)]);
        assert!(consumer.poll(Duration::ZERO).await.unwrap().is_empty());
        assert_eq!(consumer.position(&tp(0)), Some(3));
        consumer.seek(&tp(0), 0).unwrap();
        let offsets: Vec<i64> = consumer
            .stream(Duration::ZERO)
            .take(3)
            .map(|r| r.unwrap().offset)
            .collect()
            .await;
        assert_eq!(offsets, vec![0, 1, 2]);
    }
}
