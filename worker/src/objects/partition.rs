//! The `Partition` class: one topic partition (named `{topic_id}/{partition}`), over
//! [`kafdo_broker::host::partition::PartitionHost`], which runs the core's steps and its alarm
//! (retention, then one compaction step) and says when to arm the alarm and wake readers.
//!
//! # Long polling
//!
//! What this class adds is waiting, which only a runtime can do: a read with `wait_ms > 0`
//! that finds no records registers a waiter (a oneshot channel) and sleeps until an append, a
//! marker (which moves the last stable offset) or a delete completes on this object, or the
//! wait elapses, whichever comes first, then reads once more. The number of parked readers is
//! bounded ([`MAX_WAITERS`]); past it a read answers at once.
//!
//! The least time between two compaction rounds and between two retention steps come from the
//! `COMPACTION_INTERVAL_MS` and `RETENTION_INTERVAL_MS` variables of `wrangler.toml`.

use std::cell::RefCell;
use std::pin::pin;
use std::rc::Rc;
use std::time::Duration;

use futures_channel::oneshot;
use futures_util::future::select;
use js_sys::Promise;
use kafdo_broker::host::partition::PartitionHost;
use kafdo_broker::host::{reply, Effects};
use kafdo_partition::{PartitionConfig, DEFAULT_COMPACTION_INTERVAL_MS, RETENTION_INTERVAL_MS};
use kafdo_types::limits::MAX_FETCH_WAIT_MS;
use kafdo_types::rpc::{ObjectCall, PartitionCall, ReadRequest};
use kafdo_types::ApiError;
use wasm_bindgen::prelude::wasm_bindgen;
use worker::worker_sys::DurableObjectState;
use worker::{web_sys, Delay, Env, State};

use super::{now_ms, serve, serve_alarm, wrong_kind, Hosted};
use crate::sql::DoSql;

/// The most long-polling reads one partition parks at a time.
pub const MAX_WAITERS: usize = 1_000;

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
    hosted: Hosted<PartitionHost<DoSql>>,
    /// Parked long-polling reads, woken after every append, marker and delete.
    waiters: RefCell<Vec<oneshot::Sender<()>>>,
}

impl PartitionObject {
    async fn apply(&self, effects: Effects) {
        if effects.wake_readers {
            for waiter in self.waiters.borrow_mut().drain(..) {
                // A reader that gave up has dropped its receiver; nothing to do for it.
                let _ = waiter.send(());
            }
        }
        if let Some(at_ms) = effects.set_alarm_ms {
            self.hosted
                .set_alarm(at_ms, "partition", PartitionHost::alarm_failed)
                .await;
        }
    }

    async fn call(&self, call: PartitionCall) -> Result<Vec<u8>, ApiError> {
        match call {
            PartitionCall::Read(req) if req.wait_ms > 0 => {
                reply::<ReadRequest>(self.long_poll(&req).await)
            }
            call => {
                let served = self.hosted.with(|host| host.serve(call, now_ms()))?;
                self.apply(served.effects).await;
                served.answer
            }
        }
    }

    async fn long_poll(
        &self,
        req: &ReadRequest,
    ) -> Result<kafdo_types::api::FetchResponse, ApiError> {
        let first = self.hosted.with(|host| host.read(req, now_ms()))??;
        if !first.records.is_empty() {
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
        self.hosted.with(|host| host.read(req, now_ms()))?
    }
}

#[wasm_bindgen]
impl Partition {
    /// Called by the runtime when the object starts.
    #[wasm_bindgen(constructor)]
    pub fn new(state: DurableObjectState, env: Env) -> Self {
        let interval_ms = |var: &str, default: i64| {
            env.var(var)
                .ok()
                .and_then(|v| v.to_string().parse::<i64>().ok())
                .filter(|&ms| ms >= 0)
                .unwrap_or(default)
        };
        let config = PartitionConfig {
            compaction_interval_ms: interval_ms(
                COMPACTION_INTERVAL_VAR,
                DEFAULT_COMPACTION_INTERVAL_MS,
            ),
            retention_interval_ms: interval_ms(RETENTION_INTERVAL_VAR, RETENTION_INTERVAL_MS),
            ..PartitionConfig::default()
        };
        Self {
            inner: Rc::new(PartitionObject {
                hosted: Hosted::new(State::from(state), move |sql| {
                    PartitionHost::new(sql, config)
                }),
                waiters: RefCell::new(Vec::new()),
            }),
        }
    }

    /// Serves one call.
    pub fn fetch(&self, req: web_sys::Request) -> Promise {
        serve(&self.inner, req, |inner, call| async move {
            let ObjectCall::Partition(call) = call else {
                return Err(wrong_kind(&call, "partition"));
            };
            inner.call(call).await
        })
    }

    /// Called by the runtime when the alarm fires: retention and a compaction step.
    pub fn alarm(&self) -> Promise {
        serve_alarm(&self.inner, |inner| async move {
            match inner.hosted.with(|host| host.on_alarm(now_ms())) {
                Ok((effects, _)) => inner.apply(effects).await,
                Err(e) => worker::console_error!("partition alarm: {}", e.message),
            }
        })
    }
}
