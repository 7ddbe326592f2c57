//! The object's alarm. A partition has two jobs that no request drives: retention, for a
//! partition no longer written to (appends apply it otherwise), and compaction on a compacted
//! topic. A Durable Object has one alarm, so the adapter arms it at
//! [`Partition::next_alarm_ms`], the earlier of the two, and runs [`Partition::on_alarm`] when
//! it fires. As in the group and transaction coordinators, what is due is the core's rule; the
//! adapter only carries the time in and the alarm out.
//!
//! Alarms come early, late, twice, or after a restart (a Durable Object persists its alarm, not
//! the core's memory), so neither step relies on being called at the time it asked for: each
//! looks at the log and does what is due then.

use kafdo_sql::Sql;
use serde::{Deserialize, Serialize};

use crate::compaction::CompactionStep;
use crate::{Partition, PartitionError};

/// What one alarm step did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlarmStep {
    /// The log start offset after retention (unchanged when nothing had expired).
    pub log_start_offset: i64,
    /// The compaction step (nothing read or removed on a topic that is not compacted, or
    /// when there was nothing to clean).
    pub compaction: CompactionStep,
}

impl<S: Sql> Partition<S> {
    /// When the adapter should call [`Partition::on_alarm`] next, in ms since the epoch: the
    /// earlier of the next compaction step ([`Partition::next_compaction_ms`]) and the next
    /// retention step ([`Partition::next_retention_ms`]). `None` when neither is due: an
    /// append or a marker may change that, so the adapter asks again after each (and after
    /// every alarm). A time in the past means at once.
    pub fn next_alarm_ms(&self, now_ms: i64) -> Result<Option<i64>, PartitionError> {
        let retention = self.next_retention_ms()?;
        Ok([self.next_compaction_ms(now_ms), retention]
            .into_iter()
            .flatten()
            .min())
    }

    /// The alarm: [`Partition::enforce_retention`] first (so a partition no longer written to
    /// is cut too), then one [`Partition::compact`] step, each its own storage transaction.
    /// An error from either stops there and is returned: after a retention error no
    /// compaction step runs, and a retention step that committed stays when compaction then
    /// fails. The adapter should retry a while later rather than at once, so a persistent
    /// storage failure cannot spin the alarm.
    ///
    /// Early, late and repeated firings are harmless. Retention deletes only rows that have
    /// expired at `now_ms`, so an early firing deletes nothing (it does count as a step, so
    /// the next one may wait up to [`PartitionConfig::retention_interval_ms`]); a late one
    /// catches up, at most [`MAX_RETENTION_ROWS_PER_STEP`] rows at a time. A compaction step
    /// goes on with the round in progress, or starts one only when something below the last
    /// stable offset is dirty or a kept tombstone has expired, so a repeated firing finds
    /// nothing to do once a round finished; an early one, before the dirty ratio or the
    /// interval call for a round, cleans sooner than needed (see [`Partition::compact`]).
    ///
    /// [`PartitionConfig::retention_interval_ms`]: crate::PartitionConfig::retention_interval_ms
    /// [`MAX_RETENTION_ROWS_PER_STEP`]: crate::MAX_RETENTION_ROWS_PER_STEP
    pub fn on_alarm(&mut self, now_ms: i64) -> Result<AlarmStep, PartitionError> {
        // A compacted topic is never cut and a delete topic never compacted, so at most one
        // of the two does anything; the order only decides which error stops the alarm.
        let log_start_offset = self.enforce_retention(now_ms)?;
        let compaction = self.compact(now_ms)?;
        Ok(AlarmStep {
            log_start_offset,
            compaction,
        })
    }
}
