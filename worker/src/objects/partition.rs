//! The `Partition` class: one topic partition, over [`kafdo_partition::Partition`].
//!
//! The object is named `{topic_id}/{partition}` (`TopicMetadata::partition_object_name`), so a
//! topic deleted and created again gets new objects. The core is opened on the first call.
//!
//! # Long polling
//!
//! A read with `wait_ms > 0` that finds no records registers a waiter (a oneshot channel) and
//! sleeps until an append or a transaction marker (which moves the last stable offset) completes
//! on this object, or the wait elapses, whichever comes first, then reads once more. The core never waits: it answers what is there now. The
//! number of parked readers is bounded ([`MAX_WAITERS`]); past it a read answers at once.
//!
//! # Compaction (the alarm)
//!
//! On a compacted topic the core says when a compaction step is due
//! ([`PartitionCore::next_compaction_ms`]). After every append and marker the adapter arms the
//! object's alarm for that time unless an earlier one is armed; when the alarm fires it runs
//! one bounded step ([`PartitionCore::compact`], one storage transaction) and arms again for
//! the next (at once while a round is in progress). Nobody has to ask: a partition that is
//! written to compacts itself. A topic with `cleanup_policy = delete` never arms it. The least
//! time between two rounds is the `COMPACTION_INTERVAL_MS` variable of `wrangler.toml`
//! (default [`kafdo_partition::DEFAULT_COMPACTION_INTERVAL_MS`], 15 s).
//!
//! # Retention (the alarm too)
//!
//! Appends apply retention themselves (at most once per `RETENTION_INTERVAL_MS` of
//! `wrangler.toml`, default a minute), which is enough while a partition is written to. For one that stopped, the same alarm is also armed for when its
//! oldest row expires ([`PartitionCore::next_retention_ms`]), and the alarm runs
//! [`PartitionCore::enforce_retention`] before its compaction step.

use std::cell::RefCell;
use std::pin::pin;
use std::rc::Rc;
use std::time::Duration;

use futures_channel::oneshot;
use futures_util::future::select;
use js_sys::Promise;
use kafdo_partition::{
    Partition as PartitionCore, PartitionConfig, PartitionError, DEFAULT_COMPACTION_INTERVAL_MS,
    RETENTION_INTERVAL_MS,
};
use kafdo_types::api::FetchResponse;
use kafdo_types::limits::MAX_FETCH_WAIT_MS;
use kafdo_types::rpc::{
    AppendRequest, PartitionCall, ReadRequest, RegisterTxnRequest, WriteMarkerRequest,
};
use kafdo_types::ApiError;
use wasm_bindgen::prelude::wasm_bindgen;
use worker::worker_sys::DurableObjectState;
use worker::{web_sys, Delay, Env, Response, State};

use super::{cbor_answer, no_such_call, now_ms, serve, serve_alarm, storage_error, ArmedAlarm};
use crate::http::from_cbor;
use crate::sql::DoSql;

/// The most long-polling reads one partition parks at a time.
pub const MAX_WAITERS: usize = 1_000;

/// How long the alarm waits after a retention or compaction step failed (a storage error)
/// before it tries again, so a persistent failure does not spin the alarm.
pub const COMPACTION_RETRY_MS: i64 = 10_000;

/// The variable that sets the least time between two compaction rounds, in ms.
pub const COMPACTION_INTERVAL_VAR: &str = "COMPACTION_INTERVAL_MS";

/// The variable that sets the least time between two retention steps, in ms.
pub const RETENTION_INTERVAL_VAR: &str = "RETENTION_INTERVAL_MS";

/// A partition object.
#[wasm_bindgen]
pub struct Partition {
    /// Shared with the task that serves each request (see `crate::guard`).
    inner: Rc<PartitionObject>,
}

/// The state of a partition object.
pub struct PartitionObject {
    state: State,
    /// Opened on the first call.
    core: RefCell<Option<PartitionCore<DoSql>>>,
    /// Parked long-polling reads, woken after every append.
    waiters: RefCell<Vec<oneshot::Sender<()>>>,
    /// The core's bounds (the compaction interval comes from the environment).
    config: PartitionConfig,
    /// The compaction or retention alarm armed last.
    alarm: ArmedAlarm,
}

fn api_error(e: PartitionError) -> ApiError {
    ApiError::new(e.code(), e.to_string())
}

impl PartitionObject {
    fn with_core<T>(
        &self,
        f: impl FnOnce(&mut PartitionCore<DoSql>) -> Result<T, PartitionError>,
    ) -> Result<T, ApiError> {
        let mut core = self.core.borrow_mut();
        if core.is_none() {
            let sql = DoSql::new(&self.state).map_err(storage_error)?;
            *core = Some(
                PartitionCore::open_with_config(sql, now_ms(), self.config).map_err(api_error)?,
            );
        }
        f(core.as_mut().expect("opened above")).map_err(api_error)
    }

    /// Wakes every parked read (after an append, or a delete that makes them fail).
    fn wake_waiters(&self) {
        for waiter in self.waiters.borrow_mut().drain(..) {
            // A reader that gave up has dropped its receiver; nothing to do for it.
            let _ = waiter.send(());
        }
    }

    /// Arms the alarm for the next compaction step or retention step when it is earlier than
    /// the armed one. Called after appends and markers; an error is logged (the next one arms
    /// again).
    async fn arm_alarm(&self) {
        let next = match self.core.borrow().as_ref() {
            Some(core) => {
                let retention = core.next_retention_ms().unwrap_or_else(|e| {
                    worker::console_error!("partition retention: {e}");
                    None
                });
                [core.next_compaction_ms(now_ms()), retention]
                    .into_iter()
                    .flatten()
                    .min()
            }
            None => return,
        };
        if let Some(at_ms) = next {
            self.alarm.arm(&self.state, at_ms, "partition").await;
        }
    }

    /// The alarm: retention (a partition that stopped receiving writes is cut too) and one
    /// compaction step, then the next alarm if more is due. Each does nothing when not due.
    async fn alarm(&self) {
        self.alarm.fired();
        if let Err(e) = self.with_core(|core| core.enforce_retention(now_ms())) {
            worker::console_error!("partition retention failed: {}", e.message);
            let retry_ms = now_ms() + COMPACTION_RETRY_MS;
            self.alarm.arm(&self.state, retry_ms, "partition").await;
            return;
        }
        match self.with_core(|core| core.compact(now_ms())) {
            Ok(step) if step.rows_read > 0 => worker::console_log!(
                "partition compaction: {} rows read, {} records removed, cleaned to {}",
                step.rows_read,
                step.records_removed,
                step.cleaned_offset
            ),
            Ok(_) => {}
            Err(e) => {
                worker::console_error!("partition compaction failed: {}", e.message);
                let retry_ms = now_ms() + COMPACTION_RETRY_MS;
                self.alarm.arm(&self.state, retry_ms, "partition").await;
                return;
            }
        }
        self.arm_alarm().await;
    }

    async fn read(&self, req: ReadRequest) -> Result<FetchResponse, ApiError> {
        let first = self.with_core(|core| core.read(&req, now_ms()))?;
        if !first.records.is_empty() || req.wait_ms == 0 {
            return Ok(first);
        }
        let woken = {
            let mut waiters = self.waiters.borrow_mut();
            // Readers whose wait elapsed left their sender behind.
            waiters.retain(|w| !w.is_canceled());
            if waiters.len() >= MAX_WAITERS {
                return Ok(first);
            }
            let (tx, rx) = oneshot::channel();
            waiters.push(tx);
            rx
        };
        let wait_ms = req.wait_ms.min(MAX_FETCH_WAIT_MS);
        let delay = Delay::from(Duration::from_millis(wait_ms.into()));
        select(pin!(woken), pin!(delay)).await;
        self.with_core(|core| core.read(&req, now_ms()))
    }

    async fn call(&self, path: &str, body: &[u8]) -> worker::Result<Response> {
        match path {
            "/partition/append" => {
                let result = from_cbor::<AppendRequest>(body)
                    .and_then(|req| self.with_core(|core| core.append(&req, now_ms())));
                if result.is_ok() {
                    self.wake_waiters();
                    self.arm_alarm().await;
                }
                cbor_answer(result)
            }
            "/partition/read" => match from_cbor::<ReadRequest>(body) {
                Ok(req) => cbor_answer(self.read(req).await),
                Err(e) => cbor_answer::<()>(Err(e)),
            },
            "/partition/info" => cbor_answer(
                from_cbor::<PartitionCall>(body)
                    .and_then(|req| self.with_core(|core| core.info(&req.partition))),
            ),
            "/partition/register-txn" => cbor_answer(
                from_cbor::<RegisterTxnRequest>(body)
                    .and_then(|req| self.with_core(|core| core.register_txn(&req, now_ms()))),
            ),
            "/partition/write-marker" => {
                let result = from_cbor::<WriteMarkerRequest>(body)
                    .and_then(|req| self.with_core(|core| core.write_marker(&req, now_ms())));
                // A marker moves the last stable offset: read_committed readers parked at the
                // old one may now have records to see.
                if result.is_ok() {
                    self.wake_waiters();
                    self.arm_alarm().await;
                }
                cbor_answer(result)
            }
            "/partition/open-transactions" => {
                cbor_answer(from_cbor::<PartitionCall>(body).and_then(|req| {
                    self.with_core(|core| {
                        core.info(&req.partition)?;
                        Ok(core.open_transactions())
                    })
                }))
            }
            "/partition/delete" => {
                let result = from_cbor::<PartitionCall>(body)
                    .and_then(|req| self.with_core(|core| core.delete(&req.partition)));
                self.wake_waiters();
                cbor_answer(result)
            }
            _ => cbor_answer::<()>(Err(no_such_call(path))),
        }
    }
}

#[wasm_bindgen]
impl Partition {
    /// Called by the runtime when the object starts.
    #[wasm_bindgen(constructor)]
    pub fn new(state: DurableObjectState, env: Env) -> Self {
        let state = State::from(state);
        let interval_ms = |var: &str, default: i64| {
            env.var(var)
                .ok()
                .and_then(|v| v.to_string().parse::<i64>().ok())
                .filter(|&ms| ms >= 0)
                .unwrap_or(default)
        };
        Self {
            inner: Rc::new(PartitionObject {
                state,
                core: RefCell::new(None),
                waiters: RefCell::new(Vec::new()),
                config: PartitionConfig {
                    compaction_interval_ms: interval_ms(
                        COMPACTION_INTERVAL_VAR,
                        DEFAULT_COMPACTION_INTERVAL_MS,
                    ),
                    retention_interval_ms: interval_ms(
                        RETENTION_INTERVAL_VAR,
                        RETENTION_INTERVAL_MS,
                    ),
                    ..PartitionConfig::default()
                },
                alarm: ArmedAlarm::default(),
            }),
        }
    }

    /// Serves one call.
    pub fn fetch(&self, req: web_sys::Request) -> Promise {
        serve(&self.inner, req, |inner, path, body| async move {
            inner.call(&path, &body).await
        })
    }

    /// Called by the runtime when the alarm fires: a compaction step.
    pub fn alarm(&self) -> Promise {
        serve_alarm(&self.inner, |inner| async move { inner.alarm().await })
    }
}
