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
//!              first_offset, start_ms, updated_ms, txn_seq)
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
//! The first call binds the object to its [`PartitionRef`](kafdo_types::rpc::PartitionRef)
//! (topic name, topic id, number); a call naming another topic id or number is refused with
//! `UNKNOWN_TOPIC_OR_PARTITION`, and so is every call after [`Partition::delete`]. Topic ids are never reused, so a request still
//! carrying a deleted topic's id can never write into a new topic of the same name.
//!
//! # Idempotent producers
//!
//! A batch with a [`ProducerBatch`](kafdo_types::rpc::ProducerBatch) is checked against the
//! producer's state ([`producer`]: epochs, the last five batches, sequence wrap) and the batch
//! and the new state are written in the same storage transaction, so an append is never recorded without its
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
//! # Where the code is
//!
//! One module per concern, each adding an `impl<S: Sql> Partition<S>` block; this file holds
//! the error type, [`PartitionConfig`], the [`Partition`] struct and [`Partition::open`].
//!
//! - `schema`: the tables as append-only migrations, [`MAX_ROW_BYTES`] and the row flags.
//! - `binding`: which topic the object serves ([`Partition::delete`] ends it).
//! - `append`: [`Partition::append`], rows split under [`MAX_ROW_BYTES`], the bounds on producer
//!   state; [`producer`] holds the pure sequence and epoch decision, [`codec`] the row format.
//! - `read`: [`Partition::read`] (plan, fetch, decode, in bounded rounds) and
//!   [`Partition::info`].
//! - `transactions`: [`Partition::register_txn`], [`Partition::write_marker`], the last stable
//!   offset, the aborted index and [`Partition::open_transactions`].
//! - `retention`: [`Partition::enforce_retention`] and [`Partition::next_retention_ms`].
//! - [`compaction`]: [`Partition::compact`] and [`Partition::next_compaction_ms`].
//! - `alarm`: [`Partition::next_alarm_ms`] and [`Partition::on_alarm`], the object's one alarm
//!   for both retention and compaction.
//! - `verify`: [`Partition::verify`], the full scan of the invariants for tests and the
//!   simulator.
//!
//! # Deliberately absent
//!
//! The core never waits (long polling is the adapter's), never times a transaction out (the
//! coordinator's alarm does and sends an abort marker), and never calls another object.

#![warn(missing_docs)]

pub mod codec;
pub mod compaction;
pub mod producer;

mod alarm;
mod append;
mod binding;
mod read;
mod retention;
mod schema;
mod transactions;
mod verify;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use kafdo_sql::{Sql, SqlError, MAX_SAFE_INTEGER};
use kafdo_types::api::CleanupPolicy;
use kafdo_types::record::RecordsError;
use kafdo_types::ErrorCode;

pub use crate::alarm::AlarmStep;
pub use crate::append::EXPIRY_SWEEP_INTERVAL_MS;
use crate::binding::Binding;
use crate::compaction::CompactionState;
pub use crate::compaction::{
    CompactionStep, DEFAULT_COMPACTION_INTERVAL_MS, DEFAULT_DELETE_RETENTION_MS,
};
use crate::producer::ProducerEntry;
pub use crate::retention::{MAX_RETENTION_ROWS_PER_STEP, RETENTION_INTERVAL_MS};
pub use crate::schema::MAX_ROW_BYTES;
use crate::schema::{policy_name, MIGRATIONS};
use crate::transactions::TxnEntry;
pub use kafdo_types::rpc::PartitionOpenTransaction;

/// How long an idle producer's state is kept by default: 7 days (Kafka's
/// `transactional.id.expiration.ms` and `producer.id.expiration.ms` are of that order).
pub const DEFAULT_PRODUCER_EXPIRY_MS: i64 = 7 * 24 * 60 * 60 * 1000;

/// How many producers a partition remembers by default. Each costs one small row and about
/// 250 bytes of memory, so 10,000 cost a few MB at most.
pub const DEFAULT_MAX_PRODUCERS: usize = 10_000;

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
    /// What the topic's configuration forbids (deleting records of a compacted topic).
    #[error("policy violation: {0}")]
    PolicyViolation(String),
    /// Records the topic cannot take (`kafdo_types::record::RecordsError`).
    #[error(transparent)]
    Records(#[from] RecordsError),
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
            PartitionError::PolicyViolation(_) => ErrorCode::PolicyViolation,
            PartitionError::Records(e) => e.code(),
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
    /// Whether rows wholly below the log start offset are still stored (a
    /// [`Partition::delete_records`] that had more to delete than one step): the alarm deletes
    /// them, a bounded number per step.
    untrimmed: bool,
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
                        start_ms, updated_ms, txn_seq
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
                    txn_seq: r.int(7),
                };
                (r.int(0), entry)
            })
            .collect();
        let compaction = compaction::load_state(&sql, log_start_offset)?;
        let untrimmed = retention::untrimmed(&sql, log_start_offset)?;
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
            untrimmed,
        };
        partition.assert_offsets();
        Ok(partition)
    }

    /// The bounds this partition was opened with.
    pub fn config(&self) -> PartitionConfig {
        self.config
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

    /// How many producers' states are held (expired ones not yet swept included).
    pub fn producer_count(&self) -> usize {
        self.producers.len()
    }
}

#[cfg(test)]
mod tests;
