//! The partition log core: a sans-IO state machine over [`kafdo_sql::Sql`].
//!
//! One topic partition is one Durable Object, named `{topic_id}/{partition}`. The Worker's
//! `Partition` class decodes a call, runs one method of [`Partition`] and encodes the answer;
//! this crate never awaits, never reads a clock (`now_ms` is passed in) and never talks to
//! another object. `design/partition.md` has the measurements and the reasons behind the
//! choices below.
//!
//! # The log
//!
//! Offsets are dense: the high watermark is the offset the next record gets, every offset in
//! `[log_start_offset, high_watermark)` holds exactly one record (a data record or a
//! transaction marker), and an append takes the next `n` offsets. The one exception is a
//! compacted topic, where compaction removes superseded records and leaves their offsets
//! empty (never reused). The log is stored **one row
//! per batch**: an append of `n` records writes one row holding all of them in a compact binary
//! blob (see [`codec`]), split into several rows when the blob would pass [`MAX_ROW_BYTES`] (a
//! Durable Object row holds at most 2 MB). Measured on file-backed SQLite, a row per batch
//! appends batches of 100 to 1,000 records about twice as fast as a row per record and reads
//! them about twice as fast too (`examples/layout_bench.rs`; figures in `design/partition.md`).
//!
//! ```sql
//! partition_meta(id = 1, topic_name, topic_id, partition_index, retention_ms, cleanup_policy,
//!                log_start_offset, deleted)
//! batches(base_offset INTEGER PRIMARY KEY, last_offset, max_timestamp, producer_id,
//!         producer_epoch, flags, size_bytes, records BLOB)
//! producers(producer_id INTEGER PRIMARY KEY, producer_epoch, last_seen_ms, batches BLOB)
//! transactions(producer_id INTEGER PRIMARY KEY, producer_epoch, transactional_id, open,
//!              first_offset, start_ms, updated_ms)
//! aborted_transactions(producer_id, first_offset, last_offset)   -- the aborted index
//! compaction(id = 1, cleaned_offset, round_end_offset, cursor_offset, round_kept_records,
//!            round_min_tombstone_ms, clean_records, min_tombstone_ms, last_round_ms)
//! ```
//!
//! `flags` marks a row transactional (1), a control batch (2, one marker record) and, for a
//! control batch, a commit (4; an abort otherwise), and a row rewritten by compaction (8: its
//! records carry explicit offsets). `size_bytes` is the sum of the records'
//! key, value and header bytes, so a read can plan how many rows it needs before fetching any
//! blob. `max_timestamp` and `log_start_offset` serve retention
//! ([`Partition::enforce_retention`]), which deletes whole rows from the front, never past the
//! last stable offset. On a compacted topic ([`compaction`]) retention deletes nothing;
//! compaction rewrites rows in place instead, keeping the latest record per key, so offsets
//! may skip (gaps between and inside rows), which reads and [`Partition::verify`] allow there.
//! A compacted topic refuses records without a key (`INVALID_RECORD`).
//!
//! The high watermark, the log start offset, the producer states and the transactions are
//! cached in memory, loaded by [`Partition::open`]: an object restart loses memory and keeps
//! SQLite, so everything cached is recomputed from the tables. Memory is updated only after
//! the storage transaction that wrote the change committed.
//!
//! # Which topic
//!
//! The first call binds the object to its [`PartitionRef`] (topic name, topic id, number); a
//! call naming another topic id or number is refused with `UNKNOWN_TOPIC_OR_PARTITION`, and so
//! is every call after [`Partition::delete`]. Topic ids are never reused, so a request still
//! carrying a deleted topic's id can never write into a new topic of the same name.
//!
//! # Idempotent producers
//!
//! A batch with a [`ProducerBatch`] is checked against the producer's state
//! ([`producer`]: epochs, the last five batches, sequence wrap) and the batch and the new state
//! are written in the same storage transaction, so an append is never recorded without its
//! sequence or the other way round. A retry of a remembered batch answers the original offsets
//! with `duplicate: true` and writes nothing. State is bounded: a producer idle longer than
//! [`PartitionConfig::producer_expiry_ms`] is forgotten, and at most
//! [`PartitionConfig::max_producers`] are kept (a new producer evicts the idlest).
//!
//! # Transactions
//!
//! The coordinator registers a (producer id, epoch) with the partition before the producer's
//! first transactional write ([`Partition::register_txn`], KIP-890 part 1); a transactional
//! batch of an unregistered pair is refused (`INVALID_TXN_REGISTRATION`), so no transaction
//! can start behind the coordinator's back. The first transactional batch records the
//! transaction's first offset. [`Partition::write_marker`] appends a control batch that ends
//! the transaction: an abort adds `(producer_id, first_offset, marker_offset)` to the aborted
//! index. A marker for an epoch that has no open transaction here (a duplicate, a late one, or
//! one that overtook its registration) changes nothing but the remembered last ended epoch, and
//! a registration for an epoch at or below that is refused: a delayed registration can never
//! reopen a transaction that already ended (KAFKA-17754's hanging transaction).
//!
//! The last stable offset is the first offset of the oldest open transaction, or the high
//! watermark when none is open. `read_committed` reads stop there, skip control batches and
//! the aborted index's ranges; `read_uncommitted` reads go to the high watermark and skip only
//! control batches.
//!
//! # Deliberately absent
//!
//! The core never waits (long polling is the adapter's), never times a transaction out (the
//! coordinator's alarm does and sends an abort marker), and never calls another object.

#![warn(missing_docs)]

pub mod codec;
pub mod compaction;
pub mod producer;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use kafdo_sql::{Param, Row, Sql, SqlError, MAX_SAFE_INTEGER};
use kafdo_types::api::{
    CleanupPolicy, FetchResponse, Isolation, PartitionInfo, PartitionProduceResponse,
};
use kafdo_types::limits::{
    MAX_FETCH_MAX_BYTES, MAX_FETCH_MAX_RECORDS, MAX_RECORDS_PER_REQUEST, MAX_RECORD_BYTES,
};
use kafdo_types::rpc::{
    AppendRequest, MarkerAck, PartitionRef, ProducerBatch, ReadRequest, RegisterTxnRequest,
    TxnResult, WriteMarkerRequest,
};
use kafdo_types::txn::valid_transactional_id;
use kafdo_types::ErrorCode;
use serde::{Deserialize, Serialize};

use crate::codec::RecordReader;
use crate::compaction::{CompactionState, FLAG_OFFSETS};
pub use crate::compaction::{
    CompactionStep, DEFAULT_COMPACTION_INTERVAL_MS, DEFAULT_DELETE_RETENTION_MS,
};
use crate::producer::{ProducerEntry, Verdict};

/// The largest records blob one log row holds. A Durable Object row holds at most 2 MB; the
/// margin covers the other columns and the encoding of the largest single record (1 MiB of
/// key, value and headers plus a few bytes of lengths).
pub const MAX_ROW_BYTES: usize = 1_500_000;

/// How long an idle producer's state is kept by default: 7 days (Kafka's
/// `transactional.id.expiration.ms` and `producer.id.expiration.ms` are of that order).
pub const DEFAULT_PRODUCER_EXPIRY_MS: i64 = 7 * 24 * 60 * 60 * 1000;

/// How many producers a partition remembers by default. Each costs one small row and about
/// 250 bytes of memory, so 10,000 cost a few MB at most.
pub const DEFAULT_MAX_PRODUCERS: usize = 10_000;

/// How often an append also deletes expired producer state from storage.
pub const EXPIRY_SWEEP_INTERVAL_MS: i64 = 60_000;

/// How often an append also applies retention by default (see [`Partition::enforce_retention`]
/// and [`PartitionConfig::retention_interval_ms`]).
pub const RETENTION_INTERVAL_MS: i64 = 60_000;

/// The most plan-fetch-decode rounds one read runs (each decodes at least one row).
const MAX_READ_ROUNDS: usize = 8;

/// The most log rows one retention step deletes, so a step stays short; the next step goes on.
pub const MAX_RETENTION_ROWS_PER_STEP: i64 = 1_000;

const FLAG_TRANSACTIONAL: i64 = 1;
const FLAG_CONTROL: i64 = 2;
const FLAG_COMMIT: i64 = 4;

/// Why a partition refused a request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PartitionError {
    /// The partition's topic was deleted, or the request names another topic incarnation.
    #[error("unknown topic or partition: {0}")]
    UnknownTopicOrPartition(String),
    /// The request is malformed.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// A record is larger than the limit.
    #[error("record {index} is {size_bytes} bytes, more than the limit of {max_bytes}")]
    MessageTooLarge {
        /// Its position in the batch.
        index: usize,
        /// Its size.
        size_bytes: usize,
        /// The limit.
        max_bytes: usize,
    },
    /// A record the topic cannot hold: a compacted topic needs a key on every record.
    #[error("invalid record: {0}")]
    InvalidRecord(String),
    /// A read below the log start offset or above the high watermark.
    #[error("offset {offset} is outside [{log_start_offset}, {high_watermark}]")]
    OffsetOutOfRange {
        /// The offset asked for.
        offset: i64,
        /// The first offset in the log.
        log_start_offset: i64,
        /// The next offset to be written.
        high_watermark: i64,
    },
    /// The producer's epoch is older than one this partition has seen.
    #[error("producer fenced: {0}")]
    ProducerFenced(String),
    /// A sequence gap, or a new epoch not starting at sequence 0.
    #[error("out of order sequence number: {0}")]
    OutOfOrderSequenceNumber(String),
    /// The partition has no state for the producer and the batch does not start at sequence 0.
    #[error("unknown producer id: {0}")]
    UnknownProducerId(String),
    /// A transactional write of a (producer id, epoch) the coordinator did not register here.
    #[error("invalid transaction registration: {0}")]
    InvalidTxnRegistration(String),
    /// The producer's previous transaction is still open on this partition.
    #[error("concurrent transactions: {0}")]
    ConcurrentTransactions(String),
    /// A write that does not fit the producer's transaction state.
    #[error("invalid transaction state: {0}")]
    InvalidTxnState(String),
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] SqlError),
}

impl PartitionError {
    /// The protocol error code for the answer.
    pub fn code(&self) -> ErrorCode {
        match self {
            PartitionError::UnknownTopicOrPartition(_) => ErrorCode::UnknownTopicOrPartition,
            PartitionError::InvalidRequest(_) => ErrorCode::InvalidRequest,
            PartitionError::MessageTooLarge { .. } => ErrorCode::MessageTooLarge,
            PartitionError::InvalidRecord(_) => ErrorCode::InvalidRecord,
            PartitionError::OffsetOutOfRange { .. } => ErrorCode::OffsetOutOfRange,
            PartitionError::ProducerFenced(_) => ErrorCode::ProducerFenced,
            PartitionError::OutOfOrderSequenceNumber(_) => ErrorCode::OutOfOrderSequenceNumber,
            PartitionError::UnknownProducerId(_) => ErrorCode::UnknownProducerId,
            PartitionError::InvalidTxnRegistration(_) => ErrorCode::InvalidTxnRegistration,
            PartitionError::ConcurrentTransactions(_) => ErrorCode::ConcurrentTransactions,
            PartitionError::InvalidTxnState(_) => ErrorCode::InvalidTxnState,
            PartitionError::Storage(_) => ErrorCode::UnknownServerError,
        }
    }
}

/// Bounds on a partition's producer state.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct PartitionConfig {
    /// A producer that has not appended for longer than this is forgotten.
    pub producer_expiry_ms: i64,
    /// The most producers remembered; a new one evicts the idlest. Also bounds the
    /// transaction rows (open transactions are never evicted).
    pub max_producers: usize,
    /// On a compacted topic, how long a tombstone (a keyed record with a null value) is kept
    /// after its timestamp before compaction removes it (Kafka's `delete.retention.ms`).
    pub delete_retention_ms: i64,
    /// On a compacted topic, the least time between the starts of two compaction rounds
    /// (Kafka's `log.cleaner.backoff.ms`), so a busy partition batches its cleaning.
    pub compaction_interval_ms: i64,
    /// The least time between two retention steps, by an append or the alarm (unless a step
    /// was cut short by its row limit), so a busy partition does not look for expired rows at
    /// every append.
    pub retention_interval_ms: i64,
}

impl Default for PartitionConfig {
    fn default() -> Self {
        Self {
            producer_expiry_ms: DEFAULT_PRODUCER_EXPIRY_MS,
            max_producers: DEFAULT_MAX_PRODUCERS,
            delete_retention_ms: DEFAULT_DELETE_RETENTION_MS,
            compaction_interval_ms: DEFAULT_COMPACTION_INTERVAL_MS,
            retention_interval_ms: RETENTION_INTERVAL_MS,
        }
    }
}

/// An open transaction on this partition, for the admin view.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionOpenTransaction {
    /// The transactional id the coordinator registered.
    pub transactional_id: String,
    /// The producer id.
    pub producer_id: i64,
    /// The epoch of the open transaction.
    pub producer_epoch: i32,
    /// Its first offset here: the last stable offset cannot pass it (`None` until the first
    /// transactional batch).
    pub first_offset: Option<i64>,
    /// When the coordinator registered it, ms since the epoch.
    pub start_ms: i64,
}

const MIGRATIONS: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS partition_meta (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        topic_name TEXT NOT NULL,
        topic_id TEXT NOT NULL,
        partition_index INTEGER NOT NULL,
        retention_ms INTEGER NOT NULL,
        cleanup_policy TEXT NOT NULL,
        log_start_offset INTEGER NOT NULL,
        deleted INTEGER NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS batches (
        base_offset INTEGER PRIMARY KEY,
        last_offset INTEGER NOT NULL,
        max_timestamp INTEGER NOT NULL,
        producer_id INTEGER,
        producer_epoch INTEGER,
        flags INTEGER NOT NULL,
        size_bytes INTEGER NOT NULL,
        records BLOB NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS producers (
        producer_id INTEGER PRIMARY KEY,
        producer_epoch INTEGER NOT NULL,
        last_seen_ms INTEGER NOT NULL,
        batches BLOB NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS transactions (
        producer_id INTEGER PRIMARY KEY,
        producer_epoch INTEGER NOT NULL,
        transactional_id TEXT NOT NULL,
        open INTEGER NOT NULL,
        first_offset INTEGER,
        start_ms INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS aborted_transactions (
        producer_id INTEGER NOT NULL,
        first_offset INTEGER NOT NULL,
        last_offset INTEGER NOT NULL,
        PRIMARY KEY (producer_id, first_offset)
    )",
    "CREATE INDEX IF NOT EXISTS aborted_transactions_by_last_offset
        ON aborted_transactions (last_offset)",
    "CREATE TABLE IF NOT EXISTS compaction (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        cleaned_offset INTEGER NOT NULL,
        round_end_offset INTEGER,
        cursor_offset INTEGER NOT NULL,
        round_kept_records INTEGER NOT NULL,
        round_min_tombstone_ms INTEGER,
        clean_records INTEGER NOT NULL,
        min_tombstone_ms INTEGER,
        last_round_ms INTEGER NOT NULL
    )",
];

/// The topic incarnation this object serves.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Binding {
    topic: String,
    topic_id: String,
    partition: i32,
    /// How long records are kept (`-1`: for ever), from the topic config at the first call.
    retention_ms: i64,
    /// Whether the topic's `cleanup_policy` is `compact` (from the first call too).
    compact: bool,
}

/// A producer's transaction on this partition: open, or the last one that ended.
#[derive(Clone, Debug, PartialEq, Eq)]
struct TxnEntry {
    transactional_id: String,
    /// The open transaction's epoch, or the last ended epoch.
    producer_epoch: i32,
    open: bool,
    first_offset: Option<i64>,
    start_ms: i64,
    updated_ms: i64,
}

/// One row of the log as a read plans it (everything but the blob).
#[derive(Clone, Debug)]
struct RowMeta {
    base_offset: i64,
    last_offset: i64,
    producer_id: Option<i64>,
    flags: i64,
    size_bytes: i64,
}

/// A row about to be written.
struct NewRow {
    base_offset: i64,
    last_offset: i64,
    max_timestamp: i64,
    size_bytes: usize,
    blob: Vec<u8>,
}

/// One partition: its log and its producer state, in the object's SQLite.
pub struct Partition<S: Sql> {
    sql: S,
    config: PartitionConfig,
    binding: Option<Binding>,
    deleted: bool,
    log_start_offset: i64,
    high_watermark: i64,
    producers: BTreeMap<i64, ProducerEntry>,
    /// `(last_seen_ms, producer_id)` of every entry of `producers`, idlest first, so expiry
    /// and eviction find their victims without scanning every producer.
    idle: BTreeSet<(i64, i64)>,
    transactions: BTreeMap<i64, TxnEntry>,
    last_sweep_ms: i64,
    last_retention_ms: i64,
    /// How far compaction got (see [`compaction`]); mirrors the `compaction` table.
    compaction: CompactionState,
    /// The key map of the compaction round in progress (`(round end, key -> latest offset)`),
    /// kept between steps of a round so each step does not rebuild it; rebuilt after a restart.
    compaction_map: Option<(i64, HashMap<Vec<u8>, i64>)>,
}

fn policy_name(policy: CleanupPolicy) -> &'static str {
    match policy {
        CleanupPolicy::Delete => "delete",
        CleanupPolicy::Compact => "compact",
    }
}

fn check_producer_ids(producer_id: i64, producer_epoch: i32) -> Result<(), PartitionError> {
    if !(0..=MAX_SAFE_INTEGER).contains(&producer_id) || producer_epoch < 0 {
        return Err(PartitionError::InvalidRequest(format!(
            "producer_id must be in 0..=2^53-1 and producer_epoch non-negative, got \
             {producer_id} and {producer_epoch}"
        )));
    }
    Ok(())
}

impl<S: Sql> Partition<S> {
    /// Opens the partition on its storage with the default [`PartitionConfig`]: creates the
    /// schema on first use and loads the cached state (high watermark, log start offset,
    /// producers, transactions). Called when the object starts.
    pub fn open(sql: S, now_ms: i64) -> Result<Self, PartitionError> {
        Self::open_with_config(sql, now_ms, PartitionConfig::default())
    }

    /// [`Partition::open`] with explicit bounds on producer state.
    pub fn open_with_config(
        sql: S,
        now_ms: i64,
        config: PartitionConfig,
    ) -> Result<Self, PartitionError> {
        assert!(config.max_producers > 0 && config.producer_expiry_ms > 0);
        assert!(config.delete_retention_ms >= 0 && config.compaction_interval_ms >= 0);
        assert!(config.retention_interval_ms >= 0);
        kafdo_sql::migrate(&sql, MIGRATIONS)?;
        let meta = sql.first(
            "SELECT topic_name, topic_id, partition_index, log_start_offset, deleted,
                    retention_ms, cleanup_policy
             FROM partition_meta WHERE id = 1",
            &[],
        )?;
        let (binding, log_start_offset, deleted) = match meta {
            Some(r) => (
                Some(Binding {
                    topic: r.text(0).to_owned(),
                    topic_id: r.text(1).to_owned(),
                    partition: i32::try_from(r.int(2)).expect("a stored partition number"),
                    retention_ms: r.int(5),
                    compact: r.text(6) == policy_name(CleanupPolicy::Compact),
                }),
                r.int(3),
                r.int(4) != 0,
            ),
            None => (None, 0, false),
        };
        let last = sql.first(
            "SELECT base_offset, last_offset FROM batches ORDER BY base_offset DESC LIMIT 1",
            &[],
        )?;
        let high_watermark = match last {
            Some(r) => {
                assert!(r.int(0) <= r.int(1), "a log row ends before it starts");
                r.int(1) + 1
            }
            None => log_start_offset,
        };
        assert!(log_start_offset <= high_watermark);
        let producers: BTreeMap<i64, ProducerEntry> = sql
            .exec(
                "SELECT producer_id, producer_epoch, last_seen_ms, batches FROM producers",
                &[],
            )?
            .into_iter()
            .map(|r| {
                let entry = ProducerEntry {
                    producer_epoch: i32::try_from(r.int(1)).expect("a stored epoch"),
                    batches: codec::decode_batches(r.blob(3)).into(),
                    last_seen_ms: r.int(2),
                };
                (r.int(0), entry)
            })
            .collect();
        let transactions = sql
            .exec(
                "SELECT producer_id, producer_epoch, transactional_id, open, first_offset,
                        start_ms, updated_ms
                 FROM transactions",
                &[],
            )?
            .into_iter()
            .map(|r| {
                let entry = TxnEntry {
                    producer_epoch: i32::try_from(r.int(1)).expect("a stored epoch"),
                    transactional_id: r.text(2).to_owned(),
                    open: r.int(3) != 0,
                    first_offset: r.opt_int(4),
                    start_ms: r.int(5),
                    updated_ms: r.int(6),
                };
                (r.int(0), entry)
            })
            .collect();
        let compaction = compaction::load_state(&sql, log_start_offset)?;
        let partition = Self {
            sql,
            config,
            binding,
            deleted,
            log_start_offset,
            high_watermark,
            idle: producers
                .iter()
                .map(|(&id, e)| (e.last_seen_ms, id))
                .collect(),
            producers,
            transactions,
            last_sweep_ms: now_ms,
            last_retention_ms: i64::MIN / 2,
            compaction,
            compaction_map: None,
        };
        partition.assert_offsets();
        Ok(partition)
    }

    /// The bounds this partition was opened with.
    pub fn config(&self) -> PartitionConfig {
        self.config
    }

    /// Checks that a call names this partition. Returns whether the object is not yet bound
    /// (the caller then binds it in its storage transaction with [`Partition::bind_sql`]).
    fn check_ref(&self, partition: &PartitionRef) -> Result<bool, PartitionError> {
        match &self.binding {
            Some(b) if b.topic_id != partition.topic_id || b.partition != partition.partition => {
                Err(PartitionError::UnknownTopicOrPartition(format!(
                    "this object is partition {} of topic id {:?}, not partition {} of topic \
                     id {:?}",
                    b.partition, b.topic_id, partition.partition, partition.topic_id
                )))
            }
            Some(b) if self.deleted => Err(PartitionError::UnknownTopicOrPartition(format!(
                "partition {} of topic {:?} was deleted",
                b.partition, b.topic
            ))),
            Some(_) => Ok(false),
            None if self.deleted => unreachable!("a deleted partition is always bound"),
            None => Ok(true),
        }
    }

    fn bind_sql(&self, partition: &PartitionRef, deleted: bool) -> Result<(), SqlError> {
        self.sql.run(
            "INSERT INTO partition_meta (id, topic_name, topic_id, partition_index,
                 retention_ms, cleanup_policy, log_start_offset, deleted)
             VALUES (1, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (id) DO UPDATE SET deleted = excluded.deleted",
            &[
                Param::Text(&partition.topic),
                Param::Text(&partition.topic_id),
                partition.partition.into(),
                partition.config.retention_ms.into(),
                Param::Text(policy_name(partition.config.cleanup_policy)),
                self.log_start_offset.into(),
                deleted.into(),
            ],
        )
    }

    fn bind_memory(&mut self, partition: &PartitionRef) {
        self.binding = Some(Binding {
            topic: partition.topic.clone(),
            topic_id: partition.topic_id.clone(),
            partition: partition.partition,
            retention_ms: partition.config.retention_ms,
            compact: partition.config.cleanup_policy == CleanupPolicy::Compact,
        });
    }

    /// Whether this partition's topic is compacted (`cleanup_policy = compact`).
    fn is_compacted(&self) -> bool {
        self.binding.as_ref().is_some_and(|b| b.compact)
    }

    fn assert_offsets(&self) {
        assert!(
            0 <= self.log_start_offset && self.log_start_offset <= self.high_watermark,
            "log start offset {} and high watermark {} out of order",
            self.log_start_offset,
            self.high_watermark
        );
        let lso = self.last_stable_offset();
        assert!(
            self.log_start_offset <= lso && lso <= self.high_watermark,
            "last stable offset {lso} outside [{}, {}]",
            self.log_start_offset,
            self.high_watermark
        );
    }

    /// The first offset of the oldest open transaction, or the high watermark.
    fn last_stable_offset(&self) -> i64 {
        self.transactions
            .values()
            .filter(|t| t.open)
            .filter_map(|t| t.first_offset)
            .min()
            .unwrap_or(self.high_watermark)
    }

    /// A producer's state, unless it expired.
    fn live_producer(&self, producer_id: i64, now_ms: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id).filter(|e| {
            now_ms - e.last_seen_ms <= self.config.producer_expiry_ms
                || self.in_open_transaction(producer_id)
        })
    }

    /// Whether the producer has an open transaction here. Its idempotence state is then kept
    /// however idle it is: forgetting it would refuse the transaction's next batch
    /// (`UNKNOWN_PRODUCER_ID`) and leave it unable to finish.
    fn in_open_transaction(&self, producer_id: i64) -> bool {
        self.transactions.get(&producer_id).is_some_and(|t| t.open)
    }

    /// Producers to forget before `producer_id` is stored: the expired ones (every
    /// [`EXPIRY_SWEEP_INTERVAL_MS`]), then, when a new producer would pass
    /// [`PartitionConfig::max_producers`], the idlest.
    fn producers_to_forget(&self, producer_id: i64, now_ms: i64) -> (BTreeSet<i64>, bool) {
        let mut forget: BTreeSet<i64> = BTreeSet::new();
        let sweep = now_ms - self.last_sweep_ms >= EXPIRY_SWEEP_INTERVAL_MS;
        if sweep {
            // Expired means `last_seen_ms < now_ms - producer_expiry_ms`: a prefix of `idle`.
            let cutoff = now_ms.saturating_sub(self.config.producer_expiry_ms);
            forget.extend(
                self.idle
                    .range(..(cutoff, i64::MIN))
                    .map(|&(_, id)| id)
                    .filter(|&id| id != producer_id && !self.in_open_transaction(id)),
            );
        }
        if !self.producers.contains_key(&producer_id) {
            let excess =
                (self.producers.len() - forget.len() + 1).saturating_sub(self.config.max_producers);
            // The idlest first; producers with open transactions stay, so when only they are
            // left the cap is passed by at most their number (which `max_producers` bounds).
            let victims: Vec<i64> = self
                .idle
                .iter()
                .map(|&(_, id)| id)
                .filter(|&id| {
                    id != producer_id && !forget.contains(&id) && !self.in_open_transaction(id)
                })
                .take(excess)
                .collect();
            forget.extend(victims);
        }
        (forget, sweep)
    }

    /// Appends a batch. Runs as one storage transaction: all records and the producer state, or
    /// nothing.
    pub fn append(
        &mut self,
        req: &AppendRequest,
        now_ms: i64,
    ) -> Result<PartitionProduceResponse, PartitionError> {
        let bind = self.check_ref(&req.partition)?;
        let records = &req.records;
        if records.is_empty() || records.len() > MAX_RECORDS_PER_REQUEST {
            return Err(PartitionError::InvalidRequest(format!(
                "a batch holds 1 to {MAX_RECORDS_PER_REQUEST} records, not {}",
                records.len()
            )));
        }
        for (index, r) in records.iter().enumerate() {
            let size_bytes = r.size_bytes();
            if size_bytes > MAX_RECORD_BYTES {
                return Err(PartitionError::MessageTooLarge {
                    index,
                    size_bytes,
                    max_bytes: MAX_RECORD_BYTES,
                });
            }
            let timestamp = r.timestamp.unwrap_or(now_ms);
            if !(0..=MAX_SAFE_INTEGER).contains(&timestamp) {
                return Err(PartitionError::InvalidRequest(format!(
                    "record {index} has timestamp {timestamp}, outside 0..=2^53-1"
                )));
            }
        }
        // A compacted topic keeps the latest record per key, so a record without a key has no
        // place in it; Kafka refuses it the same way (INVALID_RECORD). The binding decides
        // once the partition is bound; the first call's topic config before that.
        let compact = match &self.binding {
            Some(b) => b.compact,
            None => req.partition.config.cleanup_policy == CleanupPolicy::Compact,
        };
        if compact {
            if let Some(index) = records.iter().position(|r| r.key.is_none()) {
                return Err(PartitionError::InvalidRecord(format!(
                    "record {index} has no key: a compacted topic needs a key on every record"
                )));
            }
        }
        if req.transactional && req.producer.is_none() {
            return Err(PartitionError::InvalidRequest(
                "a transactional batch needs producer_id, producer_epoch and base_sequence".into(),
            ));
        }
        let count = records.len() as i64;
        let base_offset = self.high_watermark;
        let last_offset = base_offset + count - 1;

        // The producer's verdict first: a retry of a remembered batch is answered before any
        // other check, since its records are already in the log.
        let mut new_producer = None;
        let mut txn_first_write = false;
        if let Some(p) = &req.producer {
            check_producer_ids(p.producer_id, p.producer_epoch)?;
            if p.base_sequence < 0 {
                return Err(PartitionError::InvalidRequest(format!(
                    "base_sequence must be non-negative, got {}",
                    p.base_sequence
                )));
            }
            let entry = self.live_producer(p.producer_id, now_ms);
            match ProducerEntry::check(entry, p, records.len())? {
                Verdict::Duplicate(b) => {
                    return Ok(PartitionProduceResponse {
                        base_offset: b.base_offset,
                        last_offset: b.last_offset,
                        duplicate: true,
                    })
                }
                Verdict::Append => {}
            }
            txn_first_write = self.check_transaction(p, req.transactional)?;
            new_producer = Some((
                p.producer_id,
                ProducerEntry::record(entry, p, base_offset, last_offset, now_ms),
            ));
        }
        let (forget, swept) = match &new_producer {
            Some((id, _)) => self.producers_to_forget(*id, now_ms),
            None => (BTreeSet::new(), false),
        };

        let retention = if now_ms - self.last_retention_ms >= self.config.retention_interval_ms {
            Some(self.retention_plan(now_ms)?)
        } else {
            None
        };
        let rows = split_rows(req, base_offset, now_ms);
        let flags = if req.transactional {
            FLAG_TRANSACTIONAL
        } else {
            0
        };
        self.sql.transaction(|| {
            if bind {
                self.bind_sql(&req.partition, false)?;
            }
            if let Some((Some(start), _)) = retention {
                self.retention_sql(start)?;
            }
            for row in &rows {
                self.insert_row(row, req.producer.as_ref(), flags)?;
            }
            for id in &forget {
                self.sql
                    .run("DELETE FROM producers WHERE producer_id = ?", &[(*id).into()])?;
            }
            if let Some((id, entry)) = &new_producer {
                self.sql.run(
                    "INSERT INTO producers (producer_id, producer_epoch, last_seen_ms, batches)
                     VALUES (?, ?, ?, ?)
                     ON CONFLICT (producer_id) DO UPDATE SET
                         producer_epoch = excluded.producer_epoch,
                         last_seen_ms = excluded.last_seen_ms,
                         batches = excluded.batches",
                    &[
                        (*id).into(),
                        entry.producer_epoch.into(),
                        entry.last_seen_ms.into(),
                        Param::Blob(&codec::encode_batches(&entry.batches)),
                    ],
                )?;
            }
            if txn_first_write {
                self.sql.run(
                    "UPDATE transactions SET first_offset = ?, updated_ms = ? WHERE producer_id = ?",
                    &[
                        base_offset.into(),
                        now_ms.into(),
                        req.producer.expect("checked").producer_id.into(),
                    ],
                )?;
            }
            Ok::<_, PartitionError>(())
        })?;

        // Committed: now memory follows.
        if bind {
            self.bind_memory(&req.partition);
        }
        self.high_watermark = last_offset + 1;
        for id in &forget {
            let entry = self.producers.remove(id).expect("a producer to forget");
            self.idle.remove(&(entry.last_seen_ms, *id));
        }
        if swept {
            self.last_sweep_ms = now_ms;
        }
        if let Some((plan, behind)) = retention {
            // A step cut short by its row limit goes on at the next append: waiting a whole
            // interval would let a busy partition outgrow its retention for ever.
            self.last_retention_ms = if behind { i64::MIN / 2 } else { now_ms };
            if let Some(start) = plan {
                self.log_start_offset = start;
            }
        }
        if let Some((id, entry)) = new_producer {
            let last_seen_ms = entry.last_seen_ms;
            if let Some(old) = self.producers.insert(id, entry) {
                self.idle.remove(&(old.last_seen_ms, id));
            }
            self.idle.insert((last_seen_ms, id));
            if txn_first_write {
                let txn = self.transactions.get_mut(&id).expect("an open transaction");
                txn.first_offset = Some(base_offset);
                txn.updated_ms = now_ms;
            }
        }
        self.assert_offsets();
        Ok(PartitionProduceResponse {
            base_offset,
            last_offset,
            duplicate: false,
        })
    }

    fn insert_row(
        &self,
        row: &NewRow,
        producer: Option<&ProducerBatch>,
        flags: i64,
    ) -> Result<(), SqlError> {
        assert!(row.blob.len() <= MAX_ROW_BYTES || row.base_offset == row.last_offset);
        self.sql.run(
            "INSERT INTO batches (base_offset, last_offset, max_timestamp, producer_id,
                 producer_epoch, flags, size_bytes, records)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            &[
                row.base_offset.into(),
                row.last_offset.into(),
                row.max_timestamp.into(),
                producer.map(|p| p.producer_id).into(),
                producer.map(|p| p.producer_epoch).into(),
                flags.into(),
                (row.size_bytes as i64).into(),
                Param::Blob(&row.blob),
            ],
        )
    }

    /// Checks a producer's batch against its transaction on this partition. Returns whether
    /// it is the first transactional batch of the open transaction (its first offset is then
    /// recorded).
    fn check_transaction(
        &self,
        p: &ProducerBatch,
        transactional: bool,
    ) -> Result<bool, PartitionError> {
        let (id, epoch) = (p.producer_id, p.producer_epoch);
        match self.transactions.get(&id) {
            Some(t) if t.open => {
                if epoch < t.producer_epoch {
                    return Err(PartitionError::ProducerFenced(format!(
                        "producer id {id}: epoch {epoch} is older than the open transaction's \
                         epoch {}",
                        t.producer_epoch
                    )));
                }
                if epoch > t.producer_epoch {
                    return Err(PartitionError::ConcurrentTransactions(format!(
                        "producer id {id}: the transaction of epoch {} is still open on this \
                         partition; epoch {epoch} may write once its marker has arrived",
                        t.producer_epoch
                    )));
                }
                if !transactional {
                    return Err(PartitionError::InvalidTxnState(format!(
                        "producer id {id} epoch {epoch} has an open transaction on this \
                         partition; its batches must be transactional"
                    )));
                }
                Ok(t.first_offset.is_none())
            }
            Some(t) if transactional && epoch <= t.producer_epoch => {
                Err(PartitionError::ProducerFenced(format!(
                    "producer id {id}: the transaction of epoch {} already ended on this \
                     partition; epoch {epoch} may not write transactionally again",
                    t.producer_epoch
                )))
            }
            _ if transactional => Err(PartitionError::InvalidTxnRegistration(format!(
                "producer id {id} epoch {epoch} is not registered for a transaction on this \
                 partition: add the partition to the transaction first"
            ))),
            _ => Ok(false),
        }
    }

    /// Reads from an offset. Never waits: long polling is the adapter's job (it re-reads when
    /// [`Partition::info`] shows new records).
    ///
    /// Returns up to `max_records` records and about `max_bytes` bytes of keys, values and
    /// headers (the first record always, however large, so a reader always progresses).
    /// `read_committed` stops at the last stable offset and skips aborted records;
    /// both isolations skip transaction markers. `next_offset` is where the next read should
    /// start: after the last record returned, or after the markers and aborted records
    /// skipped.
    pub fn read(
        &mut self,
        req: &ReadRequest,
        now_ms: i64,
    ) -> Result<FetchResponse, PartitionError> {
        let _ = now_ms;
        if self.check_ref(&req.partition)? {
            self.sql
                .transaction(|| self.bind_sql(&req.partition, false))?;
            self.bind_memory(&req.partition);
        }
        if req.max_records == 0 {
            return Err(PartitionError::InvalidRequest(
                "max_records must be at least 1".into(),
            ));
        }
        let offset = req.offset;
        if offset < self.log_start_offset || offset > self.high_watermark {
            return Err(PartitionError::OffsetOutOfRange {
                offset,
                log_start_offset: self.log_start_offset,
                high_watermark: self.high_watermark,
            });
        }
        let last_stable_offset = self.last_stable_offset();
        let end = match req.isolation {
            Isolation::ReadCommitted => last_stable_offset,
            Isolation::ReadUncommitted => self.high_watermark,
        };
        let max_records = req.max_records.min(MAX_FETCH_MAX_RECORDS) as usize;
        let max_bytes = req.max_bytes.min(MAX_FETCH_MAX_BYTES) as usize;
        let mut response = FetchResponse {
            records: Vec::new(),
            next_offset: offset,
            high_watermark: self.high_watermark,
            last_stable_offset,
        };
        if offset >= end {
            return Ok(response);
        }

        // Rounds of plan, fetch, decode. The plan estimates the first row's share of bytes, so a
        // round may stop short of the limits; the next round goes on from there. Each round
        // decodes at least one row or hits a limit, and the rounds are capped, so a read is a
        // bounded number of statements.
        let mut bytes = 0usize;
        for _ in 0..MAX_READ_ROUNDS {
            if response.next_offset >= end || response.records.len() >= max_records {
                break;
            }
            let full = self.read_round(
                response.next_offset,
                end,
                req.isolation,
                (max_records, max_bytes),
                &mut bytes,
                &mut response,
            )?;
            if full {
                break;
            }
        }
        assert!(response.next_offset <= end && response.next_offset >= offset);
        assert!(response
            .records
            .windows(2)
            .all(|w| w[0].offset < w[1].offset));
        Ok(response)
    }

    /// One round of a read from `from` (see [`Partition::read`]): plans rows from their
    /// metadata, fetches their blobs and appends records to `response` until a limit
    /// (`(max_records, max_bytes)`, with `bytes` already used) is reached, which it returns.
    fn read_round(
        &self,
        from: i64,
        end: i64,
        isolation: Isolation,
        limits: (usize, usize),
        bytes: &mut usize,
        response: &mut FetchResponse,
    ) -> Result<bool, PartitionError> {
        // Plan: the rows' metadata, without blobs, decides which rows are needed.
        let offset = from;
        let (max_records, max_bytes) = limits;
        // One row more than records wanted: after a compaction gap, the first row found may
        // end before `offset` and hold nothing for this read.
        let row_limit = max_records - response.records.len() + 1;
        let metas: Vec<RowMeta> = self
            .sql
            .exec(
                "SELECT base_offset, last_offset, producer_id, flags, size_bytes FROM batches
                 WHERE base_offset >= coalesce(
                           (SELECT max(base_offset) FROM batches WHERE base_offset <= ?), ?)
                   AND base_offset < ?
                 ORDER BY base_offset LIMIT ?",
                &[
                    offset.into(),
                    offset.into(),
                    end.into(),
                    (row_limit as i64).into(),
                ],
            )?
            .iter()
            .map(|r| RowMeta {
                base_offset: r.int(0),
                last_offset: r.int(1),
                producer_id: r.opt_int(2),
                flags: r.int(3),
                size_bytes: r.int(4),
            })
            .collect();
        // Fewer rows than asked for: every row below `end` is in the plan, so once they are
        // read the reader may go on to `end` (compaction may have removed all that follows).
        let exhausted = metas.len() < row_limit;
        let compacted = self.is_compacted();
        let Some(scan_start) = metas.first().map(|m| m.base_offset) else {
            // Compaction removed every row from `offset` to `end`; anywhere else the log is
            // dense and some row holds `offset`.
            assert!(
                compacted,
                "no log row holds offset {offset} below {end}: offsets are not dense"
            );
            response.next_offset = end;
            return Ok(false);
        };
        assert!(
            scan_start <= offset || compacted,
            "the log has a hole before offset {offset}"
        );
        let aborted: Vec<(i64, i64, i64)> = if isolation == Isolation::ReadCommitted {
            self.sql
                .exec(
                    "SELECT producer_id, first_offset, last_offset FROM aborted_transactions
                     WHERE last_offset >= ? AND first_offset < ?",
                    &[scan_start.into(), end.into()],
                )?
                .iter()
                .map(|r| (r.int(0), r.int(1), r.int(2)))
                .collect()
        } else {
            Vec::new()
        };
        let visible = |m: &RowMeta| {
            if m.flags & FLAG_CONTROL != 0 {
                return false;
            }
            if m.flags & FLAG_TRANSACTIONAL == 0 {
                return true;
            }
            let id = m.producer_id.expect("a transactional row has a producer");
            // A transaction's rows all lie between its first offset and its marker, so a row
            // is either wholly inside an aborted range of its producer or wholly outside.
            !aborted
                .iter()
                .any(|&(a, first, last)| a == id && first <= m.base_offset && m.base_offset <= last)
        };
        let mut planned_records = response.records.len();
        let mut planned_bytes = *bytes;
        let mut last_needed = scan_start;
        for m in &metas {
            last_needed = m.base_offset;
            // A row wholly before `offset` is only the scan's start before a compaction gap.
            if !visible(m) || m.last_offset < offset {
                continue;
            }
            if m.flags & FLAG_OFFSETS != 0 {
                // A rewritten row holds an unknown share of its offsets: count it as one
                // record and all its bytes, so the plan never fetches more bytes than allowed
                // (the record limit still stops the decoding below).
                planned_records += 1;
                planned_bytes += m.size_bytes as usize;
            } else {
                let from = m.base_offset.max(offset);
                let row_records = (m.last_offset - m.base_offset + 1) as usize;
                let used = (m.last_offset - from + 1) as usize;
                planned_records += used;
                planned_bytes += m.size_bytes as usize * used / row_records;
            }
            if planned_records >= max_records || planned_bytes >= max_bytes {
                break;
            }
        }

        // Fetch the blobs of the planned rows (markers carry none worth reading).
        let blobs = self.sql.exec(
            "SELECT base_offset, records FROM batches
             WHERE base_offset >= ? AND base_offset <= ? AND flags & 2 = 0
             ORDER BY base_offset",
            &[scan_start.into(), last_needed.into()],
        )?;
        let mut blobs: BTreeMap<i64, Row> = blobs.into_iter().map(|r| (r.int(0), r)).collect();
        let mut full = false;
        'rows: for m in metas.iter().take_while(|m| m.base_offset <= last_needed) {
            if !visible(m) || m.last_offset < offset {
                response.next_offset = response.next_offset.max(m.last_offset + 1);
                continue;
            }
            let mut row = blobs.remove(&m.base_offset).expect("a planned row's blob");
            let blob = row.take_blob(1);
            let explicit = m.flags & FLAG_OFFSETS != 0;
            let mut reader = if explicit {
                RecordReader::with_offsets(&blob, m.base_offset)
            } else {
                RecordReader::new(&blob, m.base_offset)
            };
            let mut last_decoded = m.base_offset - 1;
            while let Some(record) = reader.next_record() {
                last_decoded = record.offset;
                if record.offset < offset {
                    continue;
                }
                let size = record.size_bytes();
                full = response.records.len() >= max_records
                    || (!response.records.is_empty() && *bytes + size > max_bytes);
                if full {
                    break 'rows;
                }
                *bytes += size;
                response.next_offset = record.offset + 1;
                response.records.push(record);
            }
            assert!(
                last_decoded <= m.last_offset && (explicit || last_decoded == m.last_offset),
                "a log row holds other records than its offsets say"
            );
            // A rewritten row may end in a gap: the reader goes past it.
            response.next_offset = response.next_offset.max(m.last_offset + 1);
        }
        if !full && exhausted && metas.last().is_some_and(|m| m.base_offset == last_needed) {
            // Every row below `end` was read: nothing is left before `end`, not even a gap.
            response.next_offset = response.next_offset.max(end);
        }
        Ok(full)
    }

    /// The offsets a client sees.
    pub fn info(&self, partition: &PartitionRef) -> Result<PartitionInfo, PartitionError> {
        self.check_ref(partition)?;
        Ok(PartitionInfo {
            log_start_offset: self.log_start_offset,
            high_watermark: self.high_watermark,
            last_stable_offset: self.last_stable_offset(),
        })
    }

    /// Deletes the whole log (the topic was deleted); later calls get
    /// `UNKNOWN_TOPIC_OR_PARTITION`. Deleting again answers success, so the metadata object
    /// may retry.
    pub fn delete(&mut self, partition: &PartitionRef) -> Result<(), PartitionError> {
        let same = self.binding.as_ref().is_some_and(|b| {
            b.topic_id == partition.topic_id && b.partition == partition.partition
        });
        if self.deleted && same {
            return Ok(());
        }
        self.check_ref(partition)?;
        self.sql.transaction(|| {
            for table in [
                "batches",
                "producers",
                "transactions",
                "aborted_transactions",
                "compaction",
            ] {
                self.sql.run(&format!("DELETE FROM {table}"), &[])?;
            }
            self.bind_sql(partition, true)
        })?;
        self.bind_memory(partition);
        self.deleted = true;
        self.compaction = CompactionState::new(self.log_start_offset);
        self.compaction_map = None;
        self.producers.clear();
        self.idle.clear();
        self.transactions.clear();
        Ok(())
    }

    /// Registers a (producer id, epoch) for a transaction on this partition (KIP-890 part 1):
    /// from now on the producer's transactional batches of that epoch are accepted.
    ///
    /// Registering the open transaction's pair again is a no-op. Refused: an epoch older than
    /// the open transaction's (`PRODUCER_FENCED`), a newer one while the older transaction is
    /// still open here (`CONCURRENT_TRANSACTIONS`: its marker must come first), and an epoch at
    /// or below one whose transaction already ended here (`PRODUCER_FENCED`: a delayed
    /// registration must not reopen it).
    pub fn register_txn(
        &mut self,
        req: &RegisterTxnRequest,
        now_ms: i64,
    ) -> Result<(), PartitionError> {
        let bind = self.check_ref(&req.partition)?;
        let (id, epoch) = (req.producer_id, req.producer_epoch);
        check_producer_ids(id, epoch)?;
        if !valid_transactional_id(&req.transactional_id) {
            return Err(PartitionError::InvalidRequest(format!(
                "invalid transactional_id {:?}",
                req.transactional_id
            )));
        }
        match self.transactions.get(&id) {
            Some(t) if t.open && t.producer_epoch == epoch => return Ok(()),
            Some(t) if t.open && t.producer_epoch < epoch => {
                return Err(PartitionError::ConcurrentTransactions(format!(
                    "producer id {id}: the transaction of epoch {} is still open on this \
                     partition; epoch {epoch} can be registered once its marker has arrived",
                    t.producer_epoch
                )))
            }
            Some(t) if epoch < t.producer_epoch || (!t.open && epoch == t.producer_epoch) => {
                return Err(PartitionError::ProducerFenced(format!(
                    "producer id {id}: epoch {epoch} is not newer than epoch {}, whose \
                     transaction is {} on this partition",
                    t.producer_epoch,
                    if t.open { "open" } else { "ended" }
                )))
            }
            _ => {}
        }
        let forget = self.transactions_to_forget(id)?;
        let entry = TxnEntry {
            transactional_id: req.transactional_id.clone(),
            producer_epoch: epoch,
            open: true,
            first_offset: None,
            start_ms: now_ms,
            updated_ms: now_ms,
        };
        self.store_txn_entry(&req.partition, bind, forget, id, entry)?;
        self.assert_offsets();
        Ok(())
    }

    /// Stores a producer's transaction row (binding the partition first if this is its first
    /// call, and dropping the row `forget` to stay under the cap) in one storage transaction,
    /// then mirrors it in memory once committed.
    fn store_txn_entry(
        &mut self,
        partition: &PartitionRef,
        bind: bool,
        forget: Option<i64>,
        id: i64,
        entry: TxnEntry,
    ) -> Result<(), PartitionError> {
        self.sql.transaction(|| {
            if bind {
                self.bind_sql(partition, false)?;
            }
            if let Some(f) = forget {
                self.sql.run(
                    "DELETE FROM transactions WHERE producer_id = ?",
                    &[f.into()],
                )?;
            }
            self.upsert_txn(id, &entry)
        })?;
        if bind {
            self.bind_memory(partition);
        }
        if let Some(f) = forget {
            self.transactions.remove(&f);
        }
        self.transactions.insert(id, entry);
        Ok(())
    }

    /// Which ended transaction row to drop so a new producer's row fits under
    /// [`PartitionConfig::max_producers`]. Open transactions are never dropped: when every row
    /// is open, the registration is refused until some end.
    fn transactions_to_forget(&self, producer_id: i64) -> Result<Option<i64>, PartitionError> {
        if self.transactions.contains_key(&producer_id)
            || self.transactions.len() < self.config.max_producers
        {
            return Ok(None);
        }
        self.transactions
            .iter()
            .filter(|(_, t)| !t.open)
            .min_by_key(|(&id, t)| (t.updated_ms, id))
            .map(|(&id, _)| Some(id))
            .ok_or_else(|| {
                PartitionError::ConcurrentTransactions(format!(
                    "this partition already has {} open transactions, its limit",
                    self.transactions.len()
                ))
            })
    }

    fn upsert_txn(&self, producer_id: i64, t: &TxnEntry) -> Result<(), SqlError> {
        self.sql.run(
            "INSERT INTO transactions (producer_id, producer_epoch, transactional_id, open,
                 first_offset, start_ms, updated_ms)
             VALUES (?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (producer_id) DO UPDATE SET
                 producer_epoch = excluded.producer_epoch,
                 transactional_id = excluded.transactional_id,
                 open = excluded.open,
                 first_offset = excluded.first_offset,
                 start_ms = excluded.start_ms,
                 updated_ms = excluded.updated_ms",
            &[
                producer_id.into(),
                t.producer_epoch.into(),
                Param::Text(&t.transactional_id),
                t.open.into(),
                t.first_offset.into(),
                t.start_ms.into(),
                t.updated_ms.into(),
            ],
        )
    }

    /// Ends the producer's open transaction on this partition: appends a control batch (one
    /// offset) and, for an abort, adds the transaction to the aborted index.
    ///
    /// A marker whose epoch is at least the open transaction's ends it (the coordinator may
    /// end a fenced producer's transaction with a bumped epoch, as Kafka's does). A marker for
    /// an older epoch, or with no transaction open, is acknowledged with `marker_offset: None`
    /// and changes nothing, except that the partition remembers the epoch as ended so a
    /// registration of it arriving later is refused. A registered transaction that wrote
    /// nothing here ends without a control batch (`marker_offset: None` too): there is nothing
    /// for a reader to skip.
    pub fn write_marker(
        &mut self,
        req: &WriteMarkerRequest,
        now_ms: i64,
    ) -> Result<MarkerAck, PartitionError> {
        let bind = self.check_ref(&req.partition)?;
        let (id, epoch) = (req.producer_id, req.producer_epoch);
        check_producer_ids(id, epoch)?;
        let existing = self.transactions.get(&id);
        let ends_open = existing.is_some_and(|t| t.open && epoch >= t.producer_epoch);
        if !ends_open {
            // Nothing open to end: a duplicate or late marker, or one that overtook its
            // registration. Remember the epoch as ended if it is newer than anything known.
            let newer = existing.is_none_or(|t| !t.open && epoch > t.producer_epoch);
            if !newer {
                return Ok(MarkerAck {
                    marker_offset: None,
                });
            }
            let Ok(forget) = self.transactions_to_forget(id) else {
                // Every row is an open transaction: the epoch goes unremembered, which only
                // loses the protection against a registration that is delayed beyond it.
                return Ok(MarkerAck {
                    marker_offset: None,
                });
            };
            let entry = TxnEntry {
                transactional_id: existing
                    .map(|t| t.transactional_id.clone())
                    .unwrap_or_default(),
                producer_epoch: epoch,
                open: false,
                first_offset: None,
                start_ms: now_ms,
                updated_ms: now_ms,
            };
            self.store_txn_entry(&req.partition, bind, forget, id, entry)?;
            return Ok(MarkerAck {
                marker_offset: None,
            });
        }
        let open = existing.expect("checked above").clone();
        assert!(!bind, "an open transaction means the partition is bound");
        let ended = TxnEntry {
            producer_epoch: epoch,
            open: false,
            first_offset: None,
            updated_ms: now_ms,
            ..open.clone()
        };
        let marker_offset = open.first_offset.map(|_| self.high_watermark);
        self.sql.transaction(|| {
            if let (Some(first), Some(marker)) = (open.first_offset, marker_offset) {
                let commit = req.result == TxnResult::Commit;
                let row = NewRow {
                    base_offset: marker,
                    last_offset: marker,
                    max_timestamp: now_ms,
                    size_bytes: 0,
                    blob: vec![u8::from(commit)],
                };
                let producer = ProducerBatch {
                    producer_id: id,
                    producer_epoch: epoch,
                    base_sequence: 0,
                };
                let flags =
                    FLAG_TRANSACTIONAL | FLAG_CONTROL | if commit { FLAG_COMMIT } else { 0 };
                self.insert_row(&row, Some(&producer), flags)?;
                if !commit {
                    self.sql.run(
                        "INSERT INTO aborted_transactions (producer_id, first_offset, last_offset)
                         VALUES (?, ?, ?)",
                        &[id.into(), first.into(), marker.into()],
                    )?;
                }
            }
            self.upsert_txn(id, &ended)
        })?;
        if marker_offset.is_some() {
            self.high_watermark += 1;
        }
        self.transactions.insert(id, ended);
        self.assert_offsets();
        Ok(MarkerAck { marker_offset })
    }

    /// Applies the topic's `retention_ms`: deletes whole rows from the front of the log whose
    /// newest record is older than `now_ms - retention_ms`, and advances the log start offset
    /// past them. Never passes the last stable offset (an open transaction's records stay until
    /// it ends) and deletes at most [`MAX_RETENTION_ROWS_PER_STEP`] rows per call. An append
    /// also runs it, at most once per [`PartitionConfig::retention_interval_ms`] (at every append while a step
    /// was cut short by the row limit); the adapter may call it from an alarm. Returns the log
    /// start offset.
    pub fn enforce_retention(&mut self, now_ms: i64) -> Result<i64, PartitionError> {
        let (plan, behind) = self.retention_plan(now_ms)?;
        if let Some(start) = plan {
            self.sql.transaction(|| self.retention_sql(start))?;
            self.log_start_offset = start;
            self.assert_offsets();
        }
        self.last_retention_ms = if behind { i64::MIN / 2 } else { now_ms };
        Ok(self.log_start_offset)
    }

    /// When the adapter's alarm should run [`Partition::enforce_retention`], so that a
    /// partition that stopped receiving writes is cut too: when the oldest row below the last
    /// stable offset expires, and not sooner than [`PartitionConfig::retention_interval_ms`] after the last step
    /// (at once while a step was cut short by its row limit). `None` when no row can expire
    /// (no retention, a compacted topic, or nothing decided to delete; the next append or
    /// marker asks again).
    pub fn next_retention_ms(&self) -> Result<Option<i64>, PartitionError> {
        let Some(retention_ms) = self.retention_ms() else {
            return Ok(None);
        };
        let oldest = self.sql.first(
            "SELECT max_timestamp FROM batches WHERE base_offset >= ? AND base_offset < ?
             ORDER BY base_offset LIMIT 1",
            &[
                self.log_start_offset.into(),
                self.last_stable_offset().into(),
            ],
        )?;
        // After a restart, or a step cut short, `last_retention_ms` is far in the past.
        let not_before = self
            .last_retention_ms
            .saturating_add(self.config.retention_interval_ms);
        Ok(oldest.map(|row| {
            row.int(0)
                .saturating_add(retention_ms)
                .saturating_add(1)
                .max(not_before)
        }))
    }

    /// The topic's `retention_ms` when retention cuts this log: a live partition of a topic
    /// with `cleanup_policy = delete` and a finite retention.
    fn retention_ms(&self) -> Option<i64> {
        // A compacted topic keeps the latest record of every key for ever (Kafka's
        // `cleanup.policy=compact` without `delete`): time-based deletion would drop keys.
        match &self.binding {
            Some(b) if !self.deleted && !b.compact && b.retention_ms >= 0 => Some(b.retention_ms),
            _ => None,
        }
    }

    /// The new log start offset retention allows, if it moves, and whether the step stopped
    /// only at its row limit (every row it looked at had expired: more may be due now).
    fn retention_plan(&self, now_ms: i64) -> Result<(Option<i64>, bool), SqlError> {
        let Some(retention_ms) = self.retention_ms() else {
            return Ok((None, false));
        };
        let cutoff = now_ms.saturating_sub(retention_ms);
        let limit = self.last_stable_offset();
        let rows = self.sql.exec(
            "SELECT last_offset, max_timestamp FROM batches
             WHERE base_offset >= ? AND base_offset < ?
             ORDER BY base_offset LIMIT ?",
            &[
                self.log_start_offset.into(),
                limit.into(),
                MAX_RETENTION_ROWS_PER_STEP.into(),
            ],
        )?;
        let mut start = self.log_start_offset;
        let mut behind = rows.len() as i64 == MAX_RETENTION_ROWS_PER_STEP;
        for r in rows {
            // Rows are deleted in order: the first one still within retention stops the step,
            // so the log stays a contiguous range of offsets.
            if r.int(1) >= cutoff {
                behind = false;
                break;
            }
            start = r.int(0) + 1;
        }
        assert!(start <= limit);
        Ok(((start > self.log_start_offset).then_some(start), behind))
    }

    fn retention_sql(&self, start: i64) -> Result<(), SqlError> {
        self.sql
            .run("DELETE FROM batches WHERE base_offset < ?", &[start.into()])?;
        // Aborted ranges wholly before the log start can no longer affect a read.
        self.sql.run(
            "DELETE FROM aborted_transactions WHERE last_offset < ?",
            &[start.into()],
        )?;
        self.sql.run(
            "UPDATE partition_meta SET log_start_offset = ? WHERE id = 1",
            &[start.into()],
        )
    }

    /// The transactions open on this partition, oldest first offset first (those that have
    /// not written yet last), for the admin view.
    pub fn open_transactions(&self) -> Vec<PartitionOpenTransaction> {
        let mut open: Vec<PartitionOpenTransaction> = self
            .transactions
            .iter()
            .filter(|(_, t)| t.open)
            .map(|(&id, t)| PartitionOpenTransaction {
                transactional_id: t.transactional_id.clone(),
                producer_id: id,
                producer_epoch: t.producer_epoch,
                first_offset: t.first_offset,
                start_ms: t.start_ms,
            })
            .collect();
        open.sort_by_key(|t| (t.first_offset.is_none(), t.first_offset, t.producer_id));
        open
    }

    /// How many producers' states are held (expired ones not yet swept included).
    pub fn producer_count(&self) -> usize {
        self.producers.len()
    }

    /// Scans the whole log and asserts its invariants: rows in order from the log start offset
    /// to the high watermark, each row's blob holding exactly its records, the cache equal to
    /// storage. Offsets are dense except where compaction removed records: on a compacted
    /// topic, gaps (between rows and inside rewritten rows) lie only below the compaction
    /// frontier, and the cleaned part holds each key at most once and no aborted record. For
    /// tests and the simulator; it reads every row.
    pub fn verify(&self) -> Result<(), PartitionError> {
        if self.deleted {
            let left = self.sql.first("SELECT count(*) FROM batches", &[])?;
            assert_eq!(
                left.map_or(0, |r| r.int(0)),
                0,
                "a deleted log still has rows"
            );
            return Ok(());
        }
        let rows = self.sql.exec(
            "SELECT base_offset, last_offset, flags, records, producer_id, size_bytes,
                    max_timestamp
             FROM batches ORDER BY base_offset",
            &[],
        )?;
        let aborted: Vec<(i64, i64, i64)> = self
            .sql
            .exec(
                "SELECT producer_id, first_offset, last_offset FROM aborted_transactions",
                &[],
            )?
            .iter()
            .map(|r| (r.int(0), r.int(1), r.int(2)))
            .collect();
        let compacted = self.is_compacted();
        // Below this offset compaction may have removed records (rounds rewrite rows in
        // order, from the log start up to the round's cursor).
        let frontier = self.compaction.frontier();
        assert!(
            compacted || frontier <= self.log_start_offset,
            "a topic that is not compacted was compacted"
        );
        let mut clean_keys: BTreeSet<Vec<u8>> = BTreeSet::new();
        let mut next = self.log_start_offset;
        for r in &rows {
            let (base, last, flags) = (r.int(0), r.int(1), r.int(2));
            assert!(base <= last, "a log row ends before it starts");
            assert!(base >= next, "log rows overlap or start before the log");
            assert!(
                base == next || base <= frontier,
                "a gap before offset {base} above the compaction frontier {frontier}"
            );
            let explicit = flags & FLAG_OFFSETS != 0;
            assert!(
                !explicit || base < frontier,
                "a rewritten row at {base} above the compaction frontier {frontier}"
            );
            let is_aborted = flags & FLAG_TRANSACTIONAL != 0
                && aborted.iter().any(|&(id, first, end)| {
                    Some(id) == r.opt_int(4) && first <= base && base <= end
                });
            if flags & FLAG_CONTROL == 0 {
                let mut reader = if explicit {
                    RecordReader::with_offsets(r.blob(3), base)
                } else {
                    RecordReader::new(r.blob(3), base)
                };
                let (mut n, mut previous, mut size, mut max_ts) = (0, base - 1, 0, None);
                while let Some(record) = reader.next_record() {
                    assert!(
                        record.offset > previous && record.offset <= last,
                        "a row's records are out of order or outside its offsets"
                    );
                    previous = record.offset;
                    n += 1;
                    size += record.size_bytes() as i64;
                    max_ts = max_ts.max(Some(record.timestamp));
                    if compacted && record.offset < self.compaction.cleaned_offset {
                        assert!(!is_aborted, "an aborted record in the cleaned log");
                        if let Some(key) = record.key {
                            assert!(
                                clean_keys.insert(key),
                                "a key twice in the cleaned log (offset {})",
                                record.offset
                            );
                        }
                    }
                }
                if explicit {
                    assert_eq!(size, r.int(5), "a rewritten row's size_bytes is wrong");
                    if let Some(ts) = max_ts {
                        assert_eq!(ts, r.int(6), "a rewritten row's max_timestamp is wrong");
                    }
                } else {
                    assert_eq!(
                        n,
                        last - base + 1,
                        "a row's blob disagrees with its offsets"
                    );
                }
            } else {
                assert_eq!(base, last, "a control batch spans one offset");
            }
            next = last + 1;
        }
        assert_eq!(
            next, self.high_watermark,
            "the cached high watermark is wrong"
        );
        if compacted {
            assert!(
                aborted
                    .iter()
                    .all(|&(_, _, end)| end >= self.compaction.cleaned_offset),
                "an aborted-index entry below the cleaned offset"
            );
        }
        if compacted {
            // (Retention moves the log start of other topics, and with it the initial state.)
            let stored = compaction::load_state(&self.sql, self.log_start_offset)?;
            assert_eq!(
                stored, self.compaction,
                "the cached compaction state is wrong"
            );
        }
        let idle: BTreeSet<(i64, i64)> = self
            .producers
            .iter()
            .map(|(&id, e)| (e.last_seen_ms, id))
            .collect();
        assert_eq!(
            idle, self.idle,
            "the idle index disagrees with the producers"
        );
        self.assert_offsets();
        Ok(())
    }
}

/// Encodes a batch's records into rows of at most [`MAX_ROW_BYTES`] (a single record larger
/// than that, at most 1 MiB plus its lengths, gets a row of its own and still fits 2 MB).
fn split_rows(req: &AppendRequest, base_offset: i64, now_ms: i64) -> Vec<NewRow> {
    let mut rows = Vec::new();
    let mut row: Option<NewRow> = None;
    let mut previous_timestamp = 0;
    for (i, r) in req.records.iter().enumerate() {
        let offset = base_offset + i as i64;
        let timestamp = r.timestamp.unwrap_or(now_ms);
        let size = r.size_bytes();
        let encoded_bound = size + codec::record_overhead_bytes(r.headers.len());
        if let Some(current) = &row {
            if current.blob.len() + encoded_bound > MAX_ROW_BYTES {
                rows.push(row.take().expect("a row"));
            }
        }
        let current = row.get_or_insert_with(|| {
            previous_timestamp = 0;
            NewRow {
                base_offset: offset,
                last_offset: offset,
                max_timestamp: timestamp,
                size_bytes: 0,
                blob: Vec::new(),
            }
        });
        codec::encode_record(
            &mut current.blob,
            previous_timestamp,
            timestamp,
            r.key.as_deref(),
            r.value.as_deref(),
            &r.headers,
        );
        previous_timestamp = timestamp;
        current.last_offset = offset;
        current.max_timestamp = current.max_timestamp.max(timestamp);
        current.size_bytes += size;
    }
    rows.extend(row);
    rows
}

#[cfg(test)]
mod tests;
