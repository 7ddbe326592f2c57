//! Log compaction: `cleanup_policy = "compact"` keeps the latest record of every key.
//!
//! # What a reader sees
//!
//! Compaction only removes records; it never moves one to another offset. After it, a
//! `read_committed` reader of the whole log sees, for every key, the same latest value as
//! before (just fewer superseded records): offsets keep increasing, with gaps where records
//! were removed. The log start offset does not move because of compaction, and neither does the
//! high watermark: the row holding the last offset is never deleted (when all its records go,
//! it stays as an empty row until a later round, when it is no longer last).
//!
//! # The algorithm (Kafka's log cleaner, in bounded steps)
//!
//! The log is split at the **cleaned offset**: below it every key appears at most once and no
//! aborted record or transaction marker is left (except a marker in the last row); from it on
//! the log is *dirty*, as appended. A **round** cleans the dirty range `[cleaned, end)`:
//!
//! 1. Choose `end`: whole rows from the cleaned offset, at most
//!    [`MAX_COMPACTION_MAP_RECORDS`] offsets and [`MAX_COMPACTION_MAP_BYTES`] bytes, and never
//!    at or past the last stable offset (open transactions are undecided: only decided data is
//!    compacted).
//! 2. Build the **key map** over `[cleaned, end)`: key -> latest offset, from the data records
//!    that are not aborted (the aborted index says which rows are).
//! 3. Rewrite every row of `[log_start, end)` in order (the cursor), a bounded number of rows per
//!    step ([`MAX_COMPACTION_ROWS_PER_STEP`], [`MAX_COMPACTION_BYTES_PER_STEP`]). A record is
//!    removed when the map has a later offset for its key, or when it is a tombstone (a key
//!    with a null value) older than the delete retention. Rows of aborted transactions and
//!    transaction markers are removed whole (a marker in the row holding the high watermark
//!    stays). A row that loses records is rewritten with explicit offsets (flag 8; see
//!    [`crate::codec`]) and its `size_bytes` and `max_timestamp` recomputed; a row that loses
//!    all is deleted.
//! 4. When the cursor reaches `end`, the cleaned offset becomes `end`, and aborted-index entries
//!    that end below it are dropped (their records are gone).
//!
//! Why this keeps the latest value per key: by induction the cleaned part holds each key once;
//! a key of the dirty range keeps only its latest record, and any older record of it in the
//! cleaned part has a lower offset than the map's, so it goes. A key not in the map is already
//! unique. Rows are rewritten in offset order, so by the time a tombstone is removed every older
//! record of its key (all at lower offsets) is already gone.
//!
//! Each step is one storage transaction: its rewrites and the new state (`compaction` table:
//! cleaned offset, the round's end and cursor, counters) together, so a restart continues where
//! the last step stopped. The key map is kept in memory between steps of a round and rebuilt
//! after a restart (from the same rows: rewriting removes only records the map does not point
//! at, or expired tombstones whose key has no other record left below them).
//!
//! # Tombstones
//!
//! A tombstone is kept while it is the latest record of its key and younger than
//! [`crate::PartitionConfig::delete_retention_ms`] (Kafka's `delete.retention.ms`, default 24 h,
//! [`DEFAULT_DELETE_RETENTION_MS`]), measured from the tombstone's own timestamp (create time
//! when the producer gives one, else append time: as with retention, a producer that stamps
//! records in the past makes them eligible sooner). A reader that reaches the head within that
//! time sees the delete. The earliest kept tombstone's timestamp is remembered, so a round runs
//! when it expires even without new data.
//!
//! # When it runs
//!
//! [`crate::Partition::next_compaction_ms`] tells the adapter when the next step is due: at
//! once while a round is in progress; otherwise when the dirty range is at least half the
//! cleaned records ([`MIN_CLEANABLE_DIRTY_PERCENT`], Kafka's `min.cleanable.dirty.ratio`, so
//! the work of rewriting the whole log is amortised over at least as many new records), or
//! anything is dirty and [`MAX_COMPACTION_LAG_INTERVALS`] intervals passed since the last round
//! (so a quiet topic's last few superseded records do not stay for ever: Kafka's
//! `max.compaction.lag.ms`), or an old tombstone expired, and no sooner than
//! [`crate::PartitionConfig::compaction_interval_ms`] after the last round started. The Durable
//! Object sets its alarm to that time after every append and marker and runs
//! [`crate::Partition::compact`] (one step) when it fires.
//!
//! # Left out
//!
//! Rows are not merged: a row keeps its offset range and its producer, so a heavily compacted
//! log can have many small rows. There is no `min.compaction.lag.ms` or
//! `max.compaction.lag.ms`, and `cleanup.policy=compact,delete` is not offered (a compacted
//! topic is never cut by retention).

use std::collections::HashMap;

use kafdo_sql::{Row, Sql, SqlError};
use kafdo_types::record::Record;
use serde::{Deserialize, Serialize};

use crate::codec::{self, RecordReader};
use crate::schema::{FLAG_CONTROL, FLAG_TRANSACTIONAL};
use crate::{Partition, PartitionError};

/// Kafka's default `delete.retention.ms`: a tombstone stays readable for 24 hours.
pub const DEFAULT_DELETE_RETENTION_MS: i64 = 24 * 60 * 60 * 1000;

/// The default least time between the starts of two rounds (Kafka's cleaner backs off 15 s).
pub const DEFAULT_COMPACTION_INTERVAL_MS: i64 = 15_000;

/// The most offsets of the dirty range one round indexes in its key map.
pub const MAX_COMPACTION_MAP_RECORDS: i64 = 50_000;

/// The most bytes (keys, values, headers) of the dirty range one round indexes; keys are at
/// most that, so the key map's memory is bounded by it.
pub const MAX_COMPACTION_MAP_BYTES: i64 = 16 << 20;

/// The most rows one step reads and rewrites.
pub const MAX_COMPACTION_ROWS_PER_STEP: i64 = 1_000;

/// The most bytes of records one step reads (at least one row, however large).
pub const MAX_COMPACTION_BYTES_PER_STEP: i64 = 8 << 20;

/// A round is due when the dirty offsets are at least this share of the cleaned records.
pub const MIN_CLEANABLE_DIRTY_PERCENT: i64 = 50;

/// Whatever the dirty share, a round is due this many compaction intervals after the last one
/// started when anything is dirty (150 s with the default 15 s interval).
pub const MAX_COMPACTION_LAG_INTERVALS: i64 = 10;

/// `batches.flags`: the row was rewritten by compaction and its records carry their offsets.
pub(crate) const FLAG_OFFSETS: i64 = 8;

/// How far compaction got: the `compaction` table, mirrored in memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CompactionState {
    /// Below this offset the log is clean (each key once, no aborted record).
    pub cleaned_offset: i64,
    /// The round in progress.
    pub round: Option<Round>,
    /// Records left in the cleaned part after the last round (for the dirty ratio).
    pub clean_records: i64,
    /// The timestamp of the oldest tombstone the last round kept.
    pub min_tombstone_ms: Option<i64>,
    /// When the last round started.
    pub last_round_ms: i64,
}

/// A round in progress: it cleans `[cleaned_offset, end_offset)` and has rewritten the rows
/// below `cursor_offset`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Round {
    pub end_offset: i64,
    pub cursor_offset: i64,
    pub kept_records: i64,
    pub min_tombstone_ms: Option<i64>,
}

impl CompactionState {
    pub fn new(log_start_offset: i64) -> Self {
        Self {
            cleaned_offset: log_start_offset,
            round: None,
            clean_records: 0,
            min_tombstone_ms: None,
            last_round_ms: i64::MIN / 2,
        }
    }

    /// Below this offset compaction may have removed records.
    pub fn frontier(&self) -> i64 {
        match &self.round {
            Some(r) => self.cleaned_offset.max(r.cursor_offset),
            None => self.cleaned_offset,
        }
    }
}

/// Loads the compaction state (the initial one when no step ran yet).
pub(crate) fn load_state<S: Sql>(
    sql: &S,
    log_start_offset: i64,
) -> Result<CompactionState, SqlError> {
    let row = sql.first(
        "SELECT cleaned_offset, round_end_offset, cursor_offset, round_kept_records,
                round_min_tombstone_ms, clean_records, min_tombstone_ms, last_round_ms
         FROM compaction WHERE id = 1",
        &[],
    )?;
    Ok(match row {
        None => CompactionState::new(log_start_offset),
        Some(r) => CompactionState {
            cleaned_offset: r.int(0),
            round: r.opt_int(1).map(|end_offset| Round {
                end_offset,
                cursor_offset: r.int(2),
                kept_records: r.int(3),
                min_tombstone_ms: r.opt_int(4),
            }),
            clean_records: r.int(5),
            min_tombstone_ms: r.opt_int(6),
            last_round_ms: r.int(7),
        },
    })
}

fn store_state<S: Sql>(sql: &S, state: &CompactionState) -> Result<(), SqlError> {
    let round = state.round.as_ref();
    sql.run(
        "INSERT INTO compaction (id, cleaned_offset, round_end_offset, cursor_offset,
             round_kept_records, round_min_tombstone_ms, clean_records, min_tombstone_ms,
             last_round_ms)
         VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET
             cleaned_offset = excluded.cleaned_offset,
             round_end_offset = excluded.round_end_offset,
             cursor_offset = excluded.cursor_offset,
             round_kept_records = excluded.round_kept_records,
             round_min_tombstone_ms = excluded.round_min_tombstone_ms,
             clean_records = excluded.clean_records,
             min_tombstone_ms = excluded.min_tombstone_ms,
             last_round_ms = excluded.last_round_ms",
        &[
            state.cleaned_offset.into(),
            round.map(|r| r.end_offset).into(),
            round.map_or(0, |r| r.cursor_offset).into(),
            round.map_or(0, |r| r.kept_records).into(),
            round.and_then(|r| r.min_tombstone_ms).into(),
            state.clean_records.into(),
            state.min_tombstone_ms.into(),
            state.last_round_ms.into(),
        ],
    )
}

/// What one compaction step did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompactionStep {
    /// Log rows read and checked.
    pub rows_read: usize,
    /// Records decoded in those rows.
    pub records_read: usize,
    /// Records removed (superseded, expired tombstones, aborted; markers count as records).
    pub records_removed: usize,
    /// Rows rewritten with fewer records.
    pub rows_rewritten: usize,
    /// Rows deleted.
    pub rows_deleted: usize,
    /// Whether this step finished a round.
    pub round_finished: bool,
    /// The cleaned offset after the step.
    pub cleaned_offset: i64,
}

/// One row as the rewrite step sees it.
struct StepRow {
    base_offset: i64,
    last_offset: i64,
    max_timestamp: i64,
    producer_id: Option<i64>,
    flags: i64,
    blob: Vec<u8>,
}

/// What a step does to a row.
enum Change {
    Delete(i64),
    Rewrite {
        base_offset: i64,
        flags: i64,
        size_bytes: i64,
        max_timestamp: i64,
        blob: Vec<u8>,
    },
}

fn record_reader(blob: &[u8], base_offset: i64, flags: i64) -> RecordReader<'_> {
    if flags & FLAG_OFFSETS != 0 {
        RecordReader::with_offsets(blob, base_offset)
    } else {
        RecordReader::new(blob, base_offset)
    }
}

fn aborted_ranges<S: Sql>(sql: &S, from: i64, to: i64) -> Result<Vec<(i64, i64, i64)>, SqlError> {
    Ok(sql
        .exec(
            "SELECT producer_id, first_offset, last_offset FROM aborted_transactions
             WHERE last_offset >= ? AND first_offset <= ?",
            &[from.into(), to.into()],
        )?
        .iter()
        .map(|r| (r.int(0), r.int(1), r.int(2)))
        .collect())
}

/// Whether a transactional row lies in an aborted range of its producer (a transaction's rows
/// lie wholly inside or wholly outside its range, as the read path relies on too).
fn is_aborted(
    aborted: &[(i64, i64, i64)],
    flags: i64,
    producer_id: Option<i64>,
    base: i64,
) -> bool {
    flags & FLAG_TRANSACTIONAL != 0
        && flags & FLAG_CONTROL == 0
        && aborted
            .iter()
            .any(|&(id, first, last)| Some(id) == producer_id && first <= base && base <= last)
}

impl<S: Sql> Partition<S> {
    /// The offset below which the log is clean (each key once), for tests and the admin view.
    pub fn cleaned_offset(&self) -> i64 {
        self.compaction.cleaned_offset
    }

    /// When the next compaction step is due (ms since the epoch), or `None` when there is
    /// nothing to do or the topic is not compacted. See the module docs for the rule.
    pub fn next_compaction_ms(&self, now_ms: i64) -> Option<i64> {
        if !self.is_compacted() || self.deleted {
            return None;
        }
        let state = &self.compaction;
        if state.round.is_some() {
            return Some(now_ms);
        }
        let not_before = state
            .last_round_ms
            .saturating_add(self.config.compaction_interval_ms);
        let dirty = self.last_stable_offset() - state.cleaned_offset;
        let ratio_due = dirty > 0
            && dirty.saturating_mul(100)
                >= state
                    .clean_records
                    .saturating_mul(MIN_CLEANABLE_DIRTY_PERCENT);
        let by_ratio = ratio_due.then_some(not_before);
        let by_lag = (dirty > 0).then(|| {
            state.last_round_ms.saturating_add(
                self.config
                    .compaction_interval_ms
                    .saturating_mul(MAX_COMPACTION_LAG_INTERVALS),
            )
        });
        let by_tombstone = state.min_tombstone_ms.map(|t| {
            t.saturating_add(self.config.delete_retention_ms)
                .saturating_add(1)
                .max(not_before)
        });
        [by_ratio, by_lag, by_tombstone].into_iter().flatten().min()
    }

    /// Runs one bounded compaction step (see the module docs): starts a round if none is in
    /// progress and there is something to clean, then rewrites the next rows of the round, all
    /// in one storage transaction. Does nothing on a topic that is not compacted. It does not
    /// check [`Partition::next_compaction_ms`]: calling it early only cleans sooner.
    pub fn compact(&mut self, now_ms: i64) -> Result<CompactionStep, PartitionError> {
        let mut step = CompactionStep {
            cleaned_offset: self.compaction.cleaned_offset,
            ..CompactionStep::default()
        };
        if !self.is_compacted() || self.deleted {
            return Ok(step);
        }
        let mut state = self.compaction.clone();
        let mut round = match state.round.take() {
            Some(round) => round,
            None => match self.plan_round(now_ms)? {
                Some(round) => {
                    state.last_round_ms = now_ms;
                    round
                }
                None => return Ok(step),
            },
        };
        let end = round.end_offset;
        assert!(
            end <= self.last_stable_offset(),
            "a round past the last stable offset"
        );
        if self.compaction_map.as_ref().map(|(e, _)| *e) != Some(end) {
            let map = self.build_key_map(state.cleaned_offset, end)?;
            self.compaction_map = Some((end, map));
        }
        let map = &self.compaction_map.as_ref().expect("built above").1;

        // The rows of this step: from the cursor, bounded in rows and bytes.
        let metas = self.sql.exec(
            "SELECT base_offset, size_bytes FROM batches
             WHERE base_offset >= ? AND base_offset < ? ORDER BY base_offset LIMIT ?",
            &[
                round.cursor_offset.into(),
                end.into(),
                MAX_COMPACTION_ROWS_PER_STEP.into(),
            ],
        )?;
        let mut chosen = 0;
        let mut bytes = 0;
        for m in &metas {
            if chosen > 0 && bytes + m.int(1) > MAX_COMPACTION_BYTES_PER_STEP {
                break;
            }
            bytes += m.int(1);
            chosen += 1;
        }
        let rows: Vec<StepRow> = match metas.get(chosen.max(1) - 1) {
            None => Vec::new(),
            Some(last) => self
                .sql
                .exec(
                    "SELECT base_offset, last_offset, max_timestamp, producer_id, flags, records
                     FROM batches WHERE base_offset >= ? AND base_offset <= ?
                     ORDER BY base_offset",
                    &[round.cursor_offset.into(), last.int(0).into()],
                )?
                .into_iter()
                .map(|mut r: Row| StepRow {
                    base_offset: r.int(0),
                    last_offset: r.int(1),
                    max_timestamp: r.int(2),
                    producer_id: r.opt_int(3),
                    flags: r.int(4),
                    blob: r.take_blob(5),
                })
                .collect(),
        };
        let aborted = match rows.last() {
            Some(last) => aborted_ranges(&self.sql, round.cursor_offset, last.base_offset)?,
            None => Vec::new(),
        };
        let tombstone_cutoff = now_ms.saturating_sub(self.config.delete_retention_ms);
        let mut changes = Vec::new();
        for row in &rows {
            step.rows_read += 1;
            let holds_high_watermark = row.last_offset == self.high_watermark - 1;
            if row.flags & FLAG_CONTROL != 0 {
                // A marker is only for readers to skip; the row holding the high watermark
                // stays so the high watermark survives a restart.
                step.records_read += 1;
                if !holds_high_watermark {
                    step.records_removed += 1;
                    changes.push(Change::Delete(row.base_offset));
                }
                continue;
            }
            let mut reader = record_reader(&row.blob, row.base_offset, row.flags);
            if is_aborted(&aborted, row.flags, row.producer_id, row.base_offset) {
                assert!(
                    !holds_high_watermark,
                    "an aborted transaction's row after its marker"
                );
                while reader.next_record().is_some() {
                    step.records_read += 1;
                    step.records_removed += 1;
                }
                changes.push(Change::Delete(row.base_offset));
                continue;
            }
            let mut kept: Vec<Record> = Vec::new();
            let mut removed = 0;
            while let Some(record) = reader.next_record() {
                step.records_read += 1;
                let superseded = record
                    .key
                    .as_ref()
                    .and_then(|k| map.get(k))
                    .is_some_and(|&latest| latest > record.offset);
                let tombstone = record.key.is_some() && record.value.is_none();
                if superseded || (tombstone && record.timestamp < tombstone_cutoff) {
                    removed += 1;
                } else {
                    kept.push(record);
                }
            }
            step.records_removed += removed;
            round.kept_records += kept.len() as i64;
            for r in kept.iter().filter(|r| r.value.is_none() && r.key.is_some()) {
                round.min_tombstone_ms = Some(
                    round
                        .min_tombstone_ms
                        .map_or(r.timestamp, |t| t.min(r.timestamp)),
                );
            }
            if kept.is_empty() && !holds_high_watermark {
                changes.push(Change::Delete(row.base_offset));
            } else if removed > 0 {
                changes.push(rewrite(row, &kept));
            }
        }
        for c in &changes {
            match c {
                Change::Delete(_) => step.rows_deleted += 1,
                Change::Rewrite { .. } => step.rows_rewritten += 1,
            }
        }
        // All of this round's rows from the cursor were read when the query returned fewer
        // than asked for and the byte bound took them all.
        let all_read = chosen == metas.len() && (metas.len() as i64) < MAX_COMPACTION_ROWS_PER_STEP;
        round.cursor_offset = match rows.last() {
            _ if all_read => end,
            Some(last) => last.last_offset + 1,
            None => end,
        };
        assert!(round.cursor_offset <= end);
        let finished = round.cursor_offset == end;
        if finished {
            state.cleaned_offset = end;
            state.clean_records = round.kept_records;
            state.min_tombstone_ms = round.min_tombstone_ms;
        } else {
            state.round = Some(round);
        }
        self.sql.transaction(|| {
            for c in &changes {
                match c {
                    Change::Delete(base) => self.sql.run(
                        "DELETE FROM batches WHERE base_offset = ?",
                        &[(*base).into()],
                    )?,
                    Change::Rewrite {
                        base_offset,
                        flags,
                        size_bytes,
                        max_timestamp,
                        blob,
                    } => self.sql.run(
                        "UPDATE batches SET flags = ?, size_bytes = ?, max_timestamp = ?,
                             records = ?
                         WHERE base_offset = ?",
                        &[
                            (*flags).into(),
                            (*size_bytes).into(),
                            (*max_timestamp).into(),
                            kafdo_sql::Param::Blob(blob),
                            (*base_offset).into(),
                        ],
                    )?,
                }
            }
            if finished {
                // Every record of these aborted transactions is gone: nothing left to hide.
                self.sql.run(
                    "DELETE FROM aborted_transactions WHERE last_offset < ?",
                    &[end.into()],
                )?;
            }
            store_state(&self.sql, &state)
        })?;
        if finished {
            self.compaction_map = None;
        }
        self.compaction = state;
        step.round_finished = finished;
        step.cleaned_offset = self.compaction.cleaned_offset;
        self.assert_offsets();
        Ok(step)
    }

    /// The next round, if there is anything to clean: the dirty range up to the bounds, or,
    /// with no dirty data, a pass over the cleaned part when its oldest tombstone expired.
    fn plan_round(&self, now_ms: i64) -> Result<Option<Round>, SqlError> {
        let cleaned = self.compaction.cleaned_offset;
        let limit = self.last_stable_offset();
        let rows = self.sql.exec(
            "SELECT base_offset, last_offset, size_bytes FROM batches
             WHERE base_offset >= ? AND base_offset < ? ORDER BY base_offset LIMIT ?",
            &[
                cleaned.into(),
                limit.into(),
                MAX_COMPACTION_MAP_RECORDS.into(),
            ],
        )?;
        let (mut end, mut offsets, mut bytes) = (cleaned, 0, 0);
        for r in &rows {
            let n = r.int(1) - r.int(0) + 1;
            if offsets > 0
                && (offsets + n > MAX_COMPACTION_MAP_RECORDS
                    || bytes + r.int(2) > MAX_COMPACTION_MAP_BYTES)
            {
                break;
            }
            offsets += n;
            bytes += r.int(2);
            end = r.int(1) + 1;
        }
        // Rows never straddle the last stable offset: it is the first offset of a batch.
        assert!(end <= limit);
        let tombstone_due = self
            .compaction
            .min_tombstone_ms
            .is_some_and(|t| t < now_ms.saturating_sub(self.config.delete_retention_ms));
        if end == cleaned && !tombstone_due {
            return Ok(None);
        }
        Ok(Some(Round {
            end_offset: end,
            cursor_offset: self.log_start_offset,
            kept_records: 0,
            min_tombstone_ms: None,
        }))
    }

    /// The key map of a round: every key of the data records in `[cleaned, end)` that are not
    /// aborted, with its latest offset there.
    fn build_key_map(&self, cleaned: i64, end: i64) -> Result<HashMap<Vec<u8>, i64>, SqlError> {
        let mut map = HashMap::new();
        if cleaned >= end {
            return Ok(map);
        }
        let aborted = aborted_ranges(&self.sql, cleaned, end)?;
        let rows = self.sql.exec(
            "SELECT base_offset, producer_id, flags, records FROM batches
             WHERE base_offset >= ? AND base_offset < ? AND flags & 2 = 0
             ORDER BY base_offset",
            &[cleaned.into(), end.into()],
        )?;
        for r in &rows {
            let (base, flags) = (r.int(0), r.int(2));
            if is_aborted(&aborted, flags, r.opt_int(1), base) {
                continue;
            }
            let mut reader = record_reader(r.blob(3), base, flags);
            while let Some(record) = reader.next_record() {
                if let Some(key) = record.key {
                    // Rows come in offset order, so the last insert is the latest offset.
                    map.insert(key, record.offset);
                }
            }
        }
        Ok(map)
    }
}

/// A row rewritten with only `kept` (possibly none, for the row holding the high watermark).
fn rewrite(row: &StepRow, kept: &[Record]) -> Change {
    let mut blob = Vec::new();
    let mut previous_timestamp = 0;
    for r in kept {
        codec::encode_record_with_offset(&mut blob, row.base_offset, previous_timestamp, r);
        previous_timestamp = r.timestamp;
    }
    // The offsets add at most a few bytes per record to a blob that lost at least one record;
    // a row held at most 1.5 MB plus one record, so it stays far under a row's 2 MB.
    assert!(blob.len() <= crate::MAX_ROW_BYTES + (1 << 20) + 4 * kept.len());
    Change::Rewrite {
        base_offset: row.base_offset,
        flags: row.flags | FLAG_OFFSETS,
        size_bytes: kept.iter().map(|r| r.size_bytes() as i64).sum(),
        max_timestamp: kept
            .iter()
            .map(|r| r.timestamp)
            .max()
            .unwrap_or(row.max_timestamp),
        blob,
    }
}
