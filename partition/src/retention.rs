//! Retention (`cleanup_policy = delete`): whole rows are deleted from the front of the log
//! once their newest record is older than the topic's `retention_ms`, never past the last
//! stable offset, at most [`MAX_RETENTION_ROWS_PER_STEP`] rows a step. Appends run it now and
//! then; for a partition no longer written to, [`Partition::next_retention_ms`] tells the
//! adapter's alarm when to run [`Partition::enforce_retention`].
//!
//! [`Partition::delete_records`] (Kafka's DeleteRecords) moves the log start offset to any
//! offset up to the last stable offset, inside a row if need be: the rows wholly before it go,
//! a bounded number per step, the rest at the next alarms; a row it cuts stays, its records
//! before the log start no longer readable.

use kafdo_sql::{Sql, SqlError};
use kafdo_types::rpc::DeleteRecordsRequest;

use crate::{Partition, PartitionError};

/// Whether rows wholly below `log_start_offset` are stored (a trim is due).
pub(crate) fn untrimmed<S: Sql>(sql: &S, log_start_offset: i64) -> Result<bool, SqlError> {
    Ok(sql
        .first(
            "SELECT 1 FROM batches WHERE base_offset < ? AND last_offset < ? LIMIT 1",
            &[log_start_offset.into(), log_start_offset.into()],
        )?
        .is_some())
}

/// How often an append also applies retention by default (see
/// [`Partition::enforce_retention`] and
/// [`PartitionConfig::retention_interval_ms`](crate::PartitionConfig::retention_interval_ms)).
pub const RETENTION_INTERVAL_MS: i64 = 60_000;

/// The most log rows one retention step deletes, so a step stays short; the next step goes on.
pub const MAX_RETENTION_ROWS_PER_STEP: i64 = 1_000;

impl<S: Sql> Partition<S> {
    /// Applies the topic's `retention_ms`: deletes whole rows from the front of the log whose
    /// newest record is older than `now_ms - retention_ms`, and advances the log start offset
    /// past them. Never passes the last stable offset (an open transaction's records stay until
    /// it ends) and deletes at most [`MAX_RETENTION_ROWS_PER_STEP`] rows per call. An append
    /// also runs it, at most once per
    /// [`PartitionConfig::retention_interval_ms`](crate::PartitionConfig::retention_interval_ms)
    /// (at every append while a step was cut short by the row limit); the adapter may call it
    /// from an alarm. Returns the log start offset.
    pub fn enforce_retention(&mut self, now_ms: i64) -> Result<i64, PartitionError> {
        if self.untrimmed {
            // Rows a delete_records left behind go first; time-based retention waits for them.
            let more = self
                .sql
                .transaction(|| self.trim_below(self.log_start_offset))?;
            self.untrimmed = more;
            return Ok(self.log_start_offset);
        }
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
    /// stable offset expires, and not sooner than
    /// [`PartitionConfig::retention_interval_ms`](crate::PartitionConfig::retention_interval_ms)
    /// after the last step (at once while a step was cut short by its row limit). `None` when no row can expire
    /// (no retention, a compacted topic, or nothing decided to delete; the next append or
    /// marker asks again).
    pub fn next_retention_ms(&self) -> Result<Option<i64>, PartitionError> {
        if self.untrimmed {
            return Ok(Some(i64::MIN / 2));
        }
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
    pub(crate) fn retention_plan(&self, now_ms: i64) -> Result<(Option<i64>, bool), SqlError> {
        let Some(retention_ms) = self.retention_ms().filter(|_| !self.untrimmed) else {
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

    pub(crate) fn retention_sql(&self, start: i64) -> Result<(), SqlError> {
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

    /// Deletes the records before `req.before` (Kafka's DeleteRecords) and answers the log
    /// start offset: `before` when it moved there, the current one when it was already past.
    /// Refused: an offset outside `0..=high watermark` (`OFFSET_OUT_OF_RANGE`), one past the
    /// last stable offset (`INVALID_REQUEST`: an open transaction's records stay until it
    /// ends, as with retention; Kafka would delete them), and any deletion on a compacted
    /// topic (`POLICY_VIOLATION`, as in Kafka).
    /// One storage transaction moves the log start and deletes up to
    /// [`MAX_RETENTION_ROWS_PER_STEP`] rows wholly before it; the rest go at the next alarms
    /// ([`Partition::next_alarm_ms`] is then now).
    pub fn delete_records(&mut self, req: &DeleteRecordsRequest) -> Result<i64, PartitionError> {
        self.check_and_bind(&req.partition)?;
        if self.is_compacted() {
            return Err(PartitionError::PolicyViolation(
                "records of a compacted topic cannot be deleted: compaction keeps every key's \
                 latest record"
                    .into(),
            ));
        }
        let before = req.before;
        if before < 0 || before > self.high_watermark {
            return Err(PartitionError::OffsetOutOfRange {
                offset: before,
                log_start_offset: self.log_start_offset,
                high_watermark: self.high_watermark,
            });
        }
        let last_stable_offset = self.last_stable_offset();
        if before > last_stable_offset {
            return Err(PartitionError::InvalidRequest(format!(
                "offset {before} is past the last stable offset {last_stable_offset}: an open \
                 transaction's records stay until it ends"
            )));
        }
        if before <= self.log_start_offset {
            return Ok(self.log_start_offset);
        }
        let more = self.sql.transaction(|| {
            self.sql.run(
                "UPDATE partition_meta SET log_start_offset = ? WHERE id = 1",
                &[before.into()],
            )?;
            self.sql.run(
                "DELETE FROM aborted_transactions WHERE last_offset < ?",
                &[before.into()],
            )?;
            self.trim_below(before)
        })?;
        self.log_start_offset = before;
        self.untrimmed = more;
        self.assert_offsets();
        Ok(before)
    }

    /// Deletes up to [`MAX_RETENTION_ROWS_PER_STEP`] rows wholly before `start`; answers
    /// whether more remain.
    fn trim_below(&self, start: i64) -> Result<bool, SqlError> {
        self.sql.run(
            "DELETE FROM batches WHERE base_offset IN (
                 SELECT base_offset FROM batches WHERE base_offset < ? AND last_offset < ?
                 ORDER BY base_offset LIMIT ?)",
            &[
                start.into(),
                start.into(),
                MAX_RETENTION_ROWS_PER_STEP.into(),
            ],
        )?;
        untrimmed(&self.sql, start)
    }
}
