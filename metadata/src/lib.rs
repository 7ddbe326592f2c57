//! The cluster metadata core: topics and producer-id allocation.
//!
//! One object (the Durable Object named `cluster`) owns the list of topics and the counter from
//! which producer ids are handed out. It is a sans-IO state machine over [`kafdo_sql::Sql`]: the
//! Worker's `Metadata` class decodes a call, runs one method here, and encodes the answer.
//!
//! # Topic incarnations
//!
//! Every created topic gets a `topic_id` that is never reused: `"{seq}-{name}"`, where `seq`
//! comes from a persisted counter. Partition objects are named by topic id and number, so a
//! topic that is deleted and created again gets new, empty partition objects, and a request
//! still carrying the old id (a stale cache in some Worker isolate) reaches the old, deleted
//! partitions and is refused there instead of writing into the new topic.
//!
//! # Producer ids
//!
//! Producer ids must be unique across the deployment for ever, also after restarts, and a
//! partition must never accept one that was not handed out (else a client could claim the next
//! id before its owner gets it, and the owner's first batch would be answered as a duplicate
//! and never written). They come from two persisted counters:
//!
//! - **Client ids** (`0..2^52`), the ids clients see (`POST /v1/producers`, transactional
//!   ids' coordinators): handed out exactly as asked ([`Metadata::allocate_producer_ids`],
//!   one per producer), so every id below the counter was handed out to someone, and the
//!   counter is the mark the Worker shows partitions ([`Metadata::producer_id_marks`]).
//! - **Key ids** (`2^52..2^53`), the producer ids of `Idempotency-Key` produce, which no client
//!   ever sees: handed out in blocks ([`Metadata::allocate_key_producer_ids`]) so a Worker
//!   isolate need not ask for every key. A block an isolate loses is never used. A client batch
//!   naming one is refused, since the Worker shows partitions the client mark for it.
//!
//! Ids are plentiful and gaps are harmless.
//!
//! # Schema
//!
//! ```sql
//! topics(name TEXT PRIMARY KEY, topic_id TEXT UNIQUE, partitions, retention_ms,
//!        cleanup_policy, created_ms)
//! counters(name TEXT PRIMARY KEY, value)   -- 'topic_seq', 'next_producer_id',
//!                                          --   'next_key_producer_id' (from 2^52)
//! ```

#![warn(missing_docs)]

pub mod groups;

use std::ops::Range;

use kafdo_sql::{Param, Row, Sql, SqlError, MAX_SAFE_INTEGER};
use kafdo_types::api::{CleanupPolicy, CreateTopicRequest, TopicConfig};
use kafdo_types::limits::{valid_topic_name, MAX_PARTITIONS, MIN_PARTITIONS};
use kafdo_types::rpc::{ProducerIdMarks, TopicMetadata, KEY_PRODUCER_ID_BASE};
use kafdo_types::ErrorCode;

/// The most topics one deployment holds.
pub const MAX_TOPICS: usize = 10_000;

/// The most producer ids one allocation hands out.
pub const MAX_PRODUCER_ID_BLOCK: u32 = 10_000;

/// Why the metadata object refused a request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetadataError {
    /// No topic of that name.
    #[error("unknown topic: {0}")]
    UnknownTopic(String),
    /// A topic of that name exists.
    #[error("topic already exists: {0}")]
    TopicAlreadyExists(String),
    /// The name is outside Kafka's alphabet or length.
    #[error(
        "invalid topic name {0:?}: use 1 to 249 characters of [a-zA-Z0-9._-], not '.' or '..'"
    )]
    InvalidTopicName(String),
    /// A partition count outside 1..=256.
    #[error(
        "invalid partition count {0}: a topic has {MIN_PARTITIONS} to {MAX_PARTITIONS} partitions"
    )]
    InvalidPartitions(i32),
    /// A new partition count that does not add partitions (Kafka never removes any).
    #[error("invalid partition count: {0}")]
    FewerPartitions(String),
    /// A config value that is not allowed.
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    /// A request outside the limits.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] SqlError),
}

impl MetadataError {
    /// The protocol error code for the answer.
    pub fn code(&self) -> ErrorCode {
        match self {
            MetadataError::UnknownTopic(_) => ErrorCode::UnknownTopicOrPartition,
            MetadataError::TopicAlreadyExists(_) => ErrorCode::TopicAlreadyExists,
            MetadataError::InvalidTopicName(_) => ErrorCode::InvalidTopicException,
            MetadataError::InvalidPartitions(_) | MetadataError::FewerPartitions(_) => {
                ErrorCode::InvalidPartitions
            }
            MetadataError::InvalidConfig(_) => ErrorCode::InvalidConfig,
            MetadataError::InvalidRequest(_) => ErrorCode::InvalidRequest,
            MetadataError::Storage(_) => ErrorCode::UnknownServerError,
        }
    }
}

const MIGRATIONS: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS topics (
        name TEXT PRIMARY KEY,
        topic_id TEXT NOT NULL UNIQUE,
        partitions INTEGER NOT NULL,
        retention_ms INTEGER NOT NULL,
        cleanup_policy TEXT NOT NULL,
        created_ms INTEGER NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS counters (
        name TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    )",
    // The groups the Worker has seen (see `groups.rs`).
    "CREATE TABLE IF NOT EXISTS consumer_groups (
        group_id TEXT PRIMARY KEY,
        created_ms INTEGER NOT NULL
    )",
];

const TOPIC_COLUMNS: &str = "name, topic_id, partitions, retention_ms, cleanup_policy, created_ms";

/// The cluster metadata: topics and the producer-id counter.
pub struct Metadata<S: Sql> {
    sql: S,
}

impl<S: Sql> Metadata<S> {
    /// Opens the metadata on its storage, creating the schema on first use.
    pub fn open(sql: S) -> Result<Self, MetadataError> {
        kafdo_sql::migrate(&sql, MIGRATIONS)?;
        Ok(Self { sql })
    }

    /// Creates a topic. The name, partition count and config are validated first, so a refused
    /// request changes nothing.
    pub fn create_topic(
        &mut self,
        req: &CreateTopicRequest,
        now_ms: i64,
    ) -> Result<TopicMetadata, MetadataError> {
        if !valid_topic_name(&req.name) {
            return Err(MetadataError::InvalidTopicName(req.name.clone()));
        }
        if !(MIN_PARTITIONS..=MAX_PARTITIONS).contains(&req.partitions) {
            return Err(MetadataError::InvalidPartitions(req.partitions));
        }
        validate_config(&req.config)?;
        self.sql.transaction(|| {
            if self.find(&req.name)?.is_some() {
                return Err(MetadataError::TopicAlreadyExists(req.name.clone()));
            }
            let count = self.sql.first("SELECT count(*) FROM topics", &[])?;
            if count.map_or(0, |r| r.int(0)) as usize >= MAX_TOPICS {
                return Err(MetadataError::InvalidRequest(format!(
                    "the cluster already holds the maximum of {MAX_TOPICS} topics"
                )));
            }
            let seq = self.next_counter("topic_seq", 1)?;
            let topic = TopicMetadata {
                name: req.name.clone(),
                topic_id: format!("{seq}-{}", req.name),
                partitions: req.partitions,
                config: req.config.clone(),
                created_ms: now_ms,
            };
            self.sql.run(
                &format!("INSERT INTO topics ({TOPIC_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"),
                &[
                    Param::Text(&topic.name),
                    Param::Text(&topic.topic_id),
                    topic.partitions.into(),
                    topic.config.retention_ms.into(),
                    Param::Text(policy_name(topic.config.cleanup_policy)),
                    now_ms.into(),
                ],
            )?;
            Ok(topic)
        })
    }

    /// Raises a topic's partition count to `count` (Kafka's CreatePartitions: partitions are
    /// added, never removed). The new partitions are new objects with empty logs; the existing
    /// ones keep theirs. A count that is not higher, or past the limit, changes nothing.
    pub fn add_partitions(
        &mut self,
        name: &str,
        count: i32,
    ) -> Result<TopicMetadata, MetadataError> {
        if !(MIN_PARTITIONS..=MAX_PARTITIONS).contains(&count) {
            return Err(MetadataError::InvalidPartitions(count));
        }
        self.sql.transaction(|| {
            let mut topic = self.topic(name)?;
            if count <= topic.partitions {
                return Err(MetadataError::FewerPartitions(format!(
                    "topic {name:?} has {} partitions: the new count must be higher (partitions \
                     are never removed), not {count}",
                    topic.partitions
                )));
            }
            self.sql.run(
                "UPDATE topics SET partitions = ? WHERE name = ?",
                &[count.into(), Param::Text(name)],
            )?;
            topic.partitions = count;
            Ok(topic)
        })
    }

    /// Describes one topic.
    pub fn topic(&self, name: &str) -> Result<TopicMetadata, MetadataError> {
        self.find(name)?
            .ok_or_else(|| MetadataError::UnknownTopic(name.to_owned()))
    }

    /// Every topic, by name.
    pub fn list_topics(&self) -> Result<Vec<TopicMetadata>, MetadataError> {
        let rows = self.sql.exec(
            &format!("SELECT {TOPIC_COLUMNS} FROM topics ORDER BY name"),
            &[],
        )?;
        Ok(rows.iter().map(topic_from_row).collect())
    }

    /// Deletes a topic and returns what it was, so the caller can delete its partitions. With
    /// `topic_id`, only that incarnation (by its Kafka topic id): one of that name with another
    /// id is not found, and stays.
    pub fn delete_topic(
        &mut self,
        name: &str,
        topic_id: Option<&str>,
    ) -> Result<TopicMetadata, MetadataError> {
        self.sql.transaction(|| {
            let topic = self.topic(name)?;
            if let Some(wanted) = topic_id {
                if kafdo_types::api::kafka_topic_id(&topic.topic_id).to_string() != wanted {
                    return Err(MetadataError::UnknownTopic(format!(
                        "{name} with topic id {wanted}"
                    )));
                }
            }
            self.sql
                .run("DELETE FROM topics WHERE name = ?", &[Param::Text(name)])?;
            Ok(topic)
        })
    }

    /// Hands out `count` client producer ids never handed out before.
    pub fn allocate_producer_ids(&mut self, count: u32) -> Result<Range<i64>, MetadataError> {
        self.allocate("next_producer_id", 0, KEY_PRODUCER_ID_BASE, count)
    }

    /// Hands out `count` key producer ids (for `Idempotency-Key` produce) never handed out
    /// before.
    pub fn allocate_key_producer_ids(&mut self, count: u32) -> Result<Range<i64>, MetadataError> {
        self.allocate(
            "next_key_producer_id",
            KEY_PRODUCER_ID_BASE,
            MAX_SAFE_INTEGER,
            count,
        )
    }

    /// Every id below each mark was handed out: the next client id and the next key id.
    pub fn producer_id_marks(&self) -> Result<ProducerIdMarks, MetadataError> {
        Ok(ProducerIdMarks {
            client_below: self.counter("next_producer_id")?,
            key_below: KEY_PRODUCER_ID_BASE + self.counter("next_key_producer_id")?,
        })
    }

    fn allocate(
        &mut self,
        counter: &str,
        base: i64,
        limit: i64,
        count: u32,
    ) -> Result<Range<i64>, MetadataError> {
        if count == 0 || count > MAX_PRODUCER_ID_BLOCK {
            return Err(MetadataError::InvalidRequest(format!(
                "producer id blocks hold 1 to {MAX_PRODUCER_ID_BLOCK} ids, not {count}"
            )));
        }
        self.sql.transaction(|| {
            let end = base + self.next_counter(counter, i64::from(count))?;
            assert!(end <= limit, "producer ids exhausted");
            Ok(end - i64::from(count)..end)
        })
    }

    fn counter(&self, name: &str) -> Result<i64, MetadataError> {
        let row = self.sql.first(
            "SELECT value FROM counters WHERE name = ?",
            &[Param::Text(name)],
        )?;
        Ok(row.map_or(0, |r| r.int(0)))
    }

    fn find(&self, name: &str) -> Result<Option<TopicMetadata>, MetadataError> {
        let row = self.sql.first(
            &format!("SELECT {TOPIC_COLUMNS} FROM topics WHERE name = ?"),
            &[Param::Text(name)],
        )?;
        Ok(row.as_ref().map(topic_from_row))
    }

    /// Adds `by` to a counter and returns its new value (counters start at 0).
    fn next_counter(&self, name: &str, by: i64) -> Result<i64, MetadataError> {
        self.sql.run(
            "INSERT INTO counters (name, value) VALUES (?, ?)
             ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
            &[Param::Text(name), by.into()],
        )?;
        let row = self
            .sql
            .first(
                "SELECT value FROM counters WHERE name = ?",
                &[Param::Text(name)],
            )?
            .expect("the counter row was just written");
        Ok(row.int(0))
    }
}

fn validate_config(config: &TopicConfig) -> Result<(), MetadataError> {
    if config.retention_ms != -1 && config.retention_ms <= 0 {
        return Err(MetadataError::InvalidConfig(format!(
            "retention_ms must be positive or -1 (keep for ever), not {}",
            config.retention_ms
        )));
    }
    Ok(())
}

fn policy_name(policy: CleanupPolicy) -> &'static str {
    match policy {
        CleanupPolicy::Delete => "delete",
        CleanupPolicy::Compact => "compact",
    }
}

fn topic_from_row(row: &Row) -> TopicMetadata {
    TopicMetadata {
        name: row.text(0).to_owned(),
        topic_id: row.text(1).to_owned(),
        partitions: row.int(2) as i32,
        config: TopicConfig {
            retention_ms: row.int(3),
            cleanup_policy: match row.text(4) {
                "delete" => CleanupPolicy::Delete,
                "compact" => CleanupPolicy::Compact,
                other => panic!("unknown cleanup policy {other:?} in the topics table"),
            },
        },
        created_ms: row.int(5),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafdo_sql::Sqlite;

    fn create(name: &str, partitions: i32) -> CreateTopicRequest {
        CreateTopicRequest {
            name: name.into(),
            partitions,
            config: TopicConfig::default(),
        }
    }

    #[test]
    fn create_describe_list_delete() {
        let mut md = Metadata::open(Sqlite::memory()).unwrap();
        let a = md.create_topic(&create("a", 4), 10).unwrap();
        md.create_topic(&create("b", 1), 11).unwrap();
        assert_eq!(md.topic("a").unwrap(), a);
        let names: Vec<_> = md
            .list_topics()
            .unwrap()
            .into_iter()
            .map(|t| t.name)
            .collect();
        assert_eq!(names, ["a", "b"]);
        md.delete_topic("a", None).unwrap();
        assert_eq!(
            md.topic("a").unwrap_err().code(),
            ErrorCode::UnknownTopicOrPartition
        );
        assert_eq!(
            md.delete_topic("a", None).unwrap_err().code(),
            ErrorCode::UnknownTopicOrPartition
        );
    }

    #[test]
    fn partitions_are_added_never_removed() {
        let mut md = Metadata::open(Sqlite::memory()).unwrap();
        let created = md.create_topic(&create("a", 2), 0).unwrap();
        let grown = md.add_partitions("a", 5).unwrap();
        assert_eq!((grown.partitions, &grown.topic_id), (5, &created.topic_id));
        assert_eq!(md.topic("a").unwrap().partitions, 5);
        for (count, code) in [
            (5, ErrorCode::InvalidPartitions),
            (3, ErrorCode::InvalidPartitions),
            (MAX_PARTITIONS + 1, ErrorCode::InvalidPartitions),
            (0, ErrorCode::InvalidPartitions),
        ] {
            assert_eq!(md.add_partitions("a", count).unwrap_err().code(), code);
        }
        assert_eq!(
            md.topic("a").unwrap().partitions,
            5,
            "refusals change nothing"
        );
        assert_eq!(
            md.add_partitions("b", 3).unwrap_err().code(),
            ErrorCode::UnknownTopicOrPartition
        );
    }

    #[test]
    fn recreated_topic_gets_a_new_id() {
        let mut md = Metadata::open(Sqlite::memory()).unwrap();
        let first = md.create_topic(&create("t", 2), 0).unwrap();
        md.delete_topic("t", None).unwrap();
        let second = md.create_topic(&create("t", 2), 0).unwrap();
        assert_ne!(first.topic_id, second.topic_id);
        assert_ne!(
            first.partition_object_name(0),
            second.partition_object_name(0)
        );
    }

    #[test]
    fn refuses_bad_input_and_writes_nothing() {
        let mut md = Metadata::open(Sqlite::memory()).unwrap();
        md.create_topic(&create("t", 1), 0).unwrap();
        let cases = [
            (create("t", 1), ErrorCode::TopicAlreadyExists),
            (create("x", 0), ErrorCode::InvalidPartitions),
            (create("x", 257), ErrorCode::InvalidPartitions),
            (create("bad name", 1), ErrorCode::InvalidTopicException),
            (create("..", 1), ErrorCode::InvalidTopicException),
            (
                create(&"a".repeat(250), 1),
                ErrorCode::InvalidTopicException,
            ),
        ];
        for (req, code) in cases {
            assert_eq!(
                md.create_topic(&req, 0).unwrap_err().code(),
                code,
                "{req:?}"
            );
        }
        let mut bad_retention = create("x", 1);
        bad_retention.config.retention_ms = 0;
        assert_eq!(
            md.create_topic(&bad_retention, 0).unwrap_err().code(),
            ErrorCode::InvalidConfig
        );
        assert_eq!(md.list_topics().unwrap().len(), 1);
        assert!(md.create_topic(&create("x", 256), 0).is_ok());
    }

    #[test]
    fn every_id_below_a_mark_was_handed_out() {
        let mut md = Metadata::open(Sqlite::memory()).unwrap();
        let marks = md.producer_id_marks().unwrap();
        assert_eq!(
            (marks.client_below, marks.key_below),
            (0, KEY_PRODUCER_ID_BASE)
        );
        let client = md.allocate_producer_ids(1).unwrap();
        let keys = md.allocate_key_producer_ids(100).unwrap();
        assert_eq!(client, 0..1);
        assert_eq!(keys, KEY_PRODUCER_ID_BASE..KEY_PRODUCER_ID_BASE + 100);
        let marks = md.producer_id_marks().unwrap();
        assert_eq!(
            (marks.client_below, marks.key_below),
            (1, KEY_PRODUCER_ID_BASE + 100)
        );
    }

    #[test]
    fn producer_ids_are_unique_across_restarts() {
        let sql = std::rc::Rc::new(Sqlite::memory());
        let mut seen = Vec::new();
        for _ in 0..3 {
            // A new core on the same SQLite is an object restart.
            let mut md = Metadata::open(sql.clone()).unwrap();
            seen.extend(md.allocate_producer_ids(5).unwrap());
            seen.extend(md.allocate_producer_ids(1).unwrap());
        }
        let mut unique = seen.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), seen.len());
        assert_eq!(seen.len(), 18);
        let mut md = Metadata::open(sql).unwrap();
        assert_eq!(
            md.allocate_producer_ids(0).unwrap_err().code(),
            ErrorCode::InvalidRequest
        );
    }
}
