//! Retention (`cleanup_policy = delete`): whole rows are deleted from the front of the log
//! once their newest record is older than the topic's `retention_ms`, never past the last
//! stable offset, at most [`MAX_RETENTION_ROWS_PER_STEP`] rows a step. Appends run it now and
//! then; for a partition no longer written to, [`Partition::next_retention_ms`] tells the
//! adapter's alarm when to run [`Partition::enforce_retention`].

use kafdo_sql::{Sql, SqlError};

use crate::{Partition, PartitionError};

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
}
