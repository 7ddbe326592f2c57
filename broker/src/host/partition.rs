//! The partition object's host, over [`kafdo_partition::Partition`].
//!
//! The object is named `{topic_id}/{partition}`, so a topic deleted and created again gets new
//! objects. Appends and markers wake the parked long-polling reads (a marker moves the last
//! stable offset) and may make the alarm due earlier; a delete wakes them too, so they fail.
//!
//! # The alarm
//!
//! The core says when it is next due ([`Partition::next_alarm_ms`]: the next compaction step
//! on a compacted topic, or when the oldest row expires on a topic with retention). When the
//! alarm fires the host runs [`Partition::on_alarm`]: retention (so a partition no longer
//! written to is cut too), then one bounded compaction step, then arms for what is next (at
//! once while a compaction round is in progress). A step that failed (a storage error) is
//! tried again [`ALARM_RETRY_MS`] later, so a persistent failure does not spin the alarm.

use kafdo_partition::{AlarmStep, Partition, PartitionConfig, PartitionError};
use kafdo_sql::Sql;
use kafdo_types::api::{DeleteRecordsResponse, FetchResponse};
use kafdo_types::rpc::{
    AppendRequest, DeleteRecordsRequest, OffsetForTimestampRequest, OpenTransactionsRequest,
    PartitionCall, PartitionInfoRequest, PartitionOpenTransaction, ProducersRequest, ReadRequest,
    RegisterTxnRequest, WriteMarkerRequest,
};
use kafdo_types::ApiError;

use super::{reply, Alarm, Effects, Served};

/// How long the alarm waits after a retention or compaction step failed before it tries again.
pub const ALARM_RETRY_MS: i64 = 10_000;

fn api_error(e: PartitionError) -> ApiError {
    ApiError::new(e.code(), e.to_string())
}

/// A partition object's memory: its core (opened on the first call) and its armed alarm.
pub struct PartitionHost<S: Sql> {
    sql: S,
    config: PartitionConfig,
    core: Option<Partition<S>>,
    alarm: Alarm,
}

impl<S: Sql + Clone> PartitionHost<S> {
    /// A host over the object's storage, with the core's bounds.
    pub fn new(sql: S, config: PartitionConfig) -> Self {
        Self {
            sql,
            config,
            core: None,
            alarm: Alarm::default(),
        }
    }

    /// The core, opened if it is not (as after a restart).
    pub fn core(&mut self, now_ms: i64) -> Result<&mut Partition<S>, ApiError> {
        if self.core.is_none() {
            let core = Partition::open_with_config(self.sql.clone(), now_ms, self.config)
                .map_err(api_error)?;
            self.core = Some(core);
        }
        Ok(self.core.as_mut().expect("opened above"))
    }

    /// The instance lost its memory (the simulator's restarts; on the Worker, a new instance).
    pub fn restart(&mut self) {
        self.core = None;
        self.alarm.forget();
    }

    /// Arming the alarm failed: the next step arms again.
    pub fn alarm_failed(&mut self) {
        self.alarm.forget();
    }

    /// Serves one call. A read answers what is there now; the runtime parks a read with
    /// `wait_ms` that found nothing, and reads again with [`PartitionHost::read`] when woken.
    pub fn serve(&mut self, call: PartitionCall, now_ms: i64) -> Served {
        let mut effects = Effects::default();
        // Only an append, a marker or a deletion changes when the alarm is due (a new oldest row, a round
        // of compaction to come): other calls spare the question.
        let mut may_move_alarm = false;
        let answer = match call {
            PartitionCall::Append(req) => {
                let result = self.append(&req, now_ms);
                effects.wake_readers = result.is_ok();
                may_move_alarm = result.is_ok();
                reply::<AppendRequest>(result)
            }
            PartitionCall::Read(req) => reply::<ReadRequest>(self.read(&req, now_ms)),
            PartitionCall::Info(req) => reply::<PartitionInfoRequest>(
                self.core(now_ms)
                    .and_then(|core| core.info(&req.partition).map_err(api_error)),
            ),
            PartitionCall::OffsetForTimestamp(req) => reply::<OffsetForTimestampRequest>(
                self.core(now_ms)
                    .and_then(|core| core.offset_for_timestamp(&req).map_err(api_error)),
            ),
            PartitionCall::Producers(req) => reply::<ProducersRequest>(
                self.core(now_ms)
                    .and_then(|core| core.producers(&req.partition).map_err(api_error)),
            ),
            PartitionCall::DeleteRecords(req) => {
                let result = self.core(now_ms).and_then(|core| {
                    core.delete_records(&req)
                        .map(|log_start_offset| DeleteRecordsResponse { log_start_offset })
                        .map_err(api_error)
                });
                // Rows left for later steps make the alarm due at once.
                may_move_alarm = result.is_ok();
                reply::<DeleteRecordsRequest>(result)
            }
            PartitionCall::RegisterTxn(req) => reply::<RegisterTxnRequest>(
                self.core(now_ms)
                    .and_then(|core| core.register_txn(&req, now_ms).map_err(api_error)),
            ),
            PartitionCall::WriteMarker(req) => {
                let result = self
                    .core(now_ms)
                    .and_then(|core| core.write_marker(&req, now_ms).map_err(api_error));
                // A marker moves the last stable offset: read_committed readers parked at the
                // old one may now have records to see.
                effects.wake_readers = result.is_ok();
                may_move_alarm = result.is_ok();
                reply::<WriteMarkerRequest>(result)
            }
            PartitionCall::OpenTransactions(req) => {
                reply::<OpenTransactionsRequest>(self.open_transactions(&req, now_ms))
            }
            PartitionCall::Delete(req) => {
                let result = self
                    .core(now_ms)
                    .and_then(|core| core.delete(&req.partition).map_err(api_error));
                // Parked reads fail now rather than at their deadline.
                effects.wake_readers = true;
                reply::<kafdo_types::rpc::DeletePartitionRequest>(result)
            }
        };
        if may_move_alarm {
            effects.set_alarm_ms = self.next_alarm(now_ms);
        }
        Served { answer, effects }
    }

    fn append(
        &mut self,
        req: &AppendRequest,
        now_ms: i64,
    ) -> Result<kafdo_types::api::PartitionProduceResponse, ApiError> {
        self.core(now_ms)?.append(req, now_ms).map_err(api_error)
    }

    /// Reads what is there now (a long poll's first and later reads).
    pub fn read(&mut self, req: &ReadRequest, now_ms: i64) -> Result<FetchResponse, ApiError> {
        self.core(now_ms)?.read(req, now_ms).map_err(api_error)
    }

    fn open_transactions(
        &mut self,
        req: &OpenTransactionsRequest,
        now_ms: i64,
    ) -> Result<Vec<PartitionOpenTransaction>, ApiError> {
        let core = self.core(now_ms)?;
        core.info(&req.partition).map_err(api_error)?;
        Ok(core.open_transactions())
    }

    /// The alarm fired: retention and one compaction step, then the next alarm. Also answers
    /// what the step did (`None` if it failed), for the simulator's statistics.
    pub fn on_alarm(&mut self, now_ms: i64) -> (Effects, Option<AlarmStep>) {
        self.alarm.fired();
        let step = self
            .core(now_ms)
            .and_then(|core| core.on_alarm(now_ms).map_err(api_error));
        let (set_alarm_ms, step) = match step {
            Ok(step) => {
                let c = &step.compaction;
                if c.rows_read > 0 {
                    tracing::info!(
                        rows_read = c.rows_read,
                        records_removed = c.records_removed,
                        cleaned_offset = c.cleaned_offset,
                        "partition compaction step"
                    );
                }
                (self.next_alarm(now_ms), Some(step))
            }
            Err(e) => {
                tracing::error!("partition alarm failed: {}", e.message);
                (self.alarm.after_step(Some(now_ms + ALARM_RETRY_MS)), None)
            }
        };
        let effects = Effects {
            set_alarm_ms,
            ..Effects::default()
        };
        (effects, step)
    }

    /// The alarm to arm after a step, if it must change. A core that cannot say (a storage
    /// error) is logged and arms nothing: the next step asks again.
    fn next_alarm(&mut self, now_ms: i64) -> Option<i64> {
        let next = self.core.as_ref()?.next_alarm_ms(now_ms);
        self.alarm.after_step_of(next, "partition")
    }
}
