//! The `TxnCoordinator` class: one transactional id, over
//! [`kafdo_txn_coordinator::TxnCoordinator`] (see `design/txn-coordinator.md`).
//!
//! The object is named by the transactional id (`state.id().name()`, available in `alarm` too).
//! The core returns effects; this adapter carries them out:
//!
//! - A client call (`/txn/init`, `/txn/add-partitions`, `/txn/add-offsets`, `/txn/end`,
//!   `/txn/admin-abort`) gets a fresh [`RequestId`] and a parked oneshot; the core's step runs
//!   synchronously; the call then awaits its oneshot, which the [`Output::Reply`] for it
//!   resolves, in this step or a later one (a commit answers once every marker is in).
//! - Every [`Output::Call`] is spawned as its own task: the stub call (to a partition, a
//!   group or the metadata object) with a deadline, then `on_call_result` with its result,
//!   exactly once. An object's error answer is [`CallError::Refused`]; a thrown call, a
//!   timeout, or an `UNKNOWN_SERVER_ERROR` answer (a storage failure: the outcome is unknown)
//!   is [`CallError::NoAnswer`]. All calls of a step go out concurrently.
//! - After every step the alarm is set to `next_alarm_ms()` (or deleted); `alarm()` runs
//!   `on_alarm`, which re-sends markers and aborts transactions past their timeout.
//! - A step that returns `Err` (storage failed) drops the core, so the next step opens it
//!   again exactly as a restart would, and fails every waiting request with
//!   `UNKNOWN_SERVER_ERROR`.
//!
//! No `RefCell` borrow is held across an `.await`: a step borrows the core, runs, and returns
//! its outputs before anything is awaited.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use futures_channel::oneshot;
use js_sys::Promise;
use kafdo_txn_coordinator::{
    Answer, Call, CallError, CallId, CallReply, Output, RequestId, TxnCoordinator as Core,
    TxnError, CALL_TIMEOUT_MS,
};
use kafdo_types::api::InitProducerRequest;
use kafdo_types::rpc::{partition_object_name, MarkerAck, TxnResult};
use kafdo_types::txn::{
    valid_transactional_id, AddOffsetsRequest, CoordinatorAddPartitions, EndTxnRequest,
};
use kafdo_types::{ApiError, ErrorCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::{wasm_bindgen, JsValue};
use worker::worker_sys::DurableObjectState;
use worker::{web_sys, Env, Response, ScheduledTime, State};

use super::{cbor_answer, no_such_call, now_ms, serve, serve_alarm, storage_error};
use crate::http::from_cbor;
use crate::internal::{AllocateProducerIds, ProducerIdBlock, METADATA_OBJECT_NAME};
use crate::router::call_object;
use crate::sql::DoSql;

/// `/txn/end`: a commit or an abort.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TxnEnd {
    /// The producer id and epoch of the transaction to end.
    pub request: EndTxnRequest,
    /// Commit or abort.
    pub result: TxnResult,
}

/// A transaction coordinator object.
#[wasm_bindgen]
pub struct TxnCoordinator {
    inner: Rc<TxnObject>,
}

type Waiter = oneshot::Sender<Result<Answer, TxnError>>;

/// The state of a coordinator object.
pub struct TxnObject {
    state: State,
    env: Env,
    /// Opened on the first step; dropped when a step fails (reopened at the next).
    core: RefCell<Option<Core<DoSql>>>,
    /// Client requests waiting for their reply.
    waiting: RefCell<HashMap<u64, Waiter>>,
    next_request: Cell<u64>,
    /// The alarm time last asked for, so an unchanged schedule costs no storage call.
    alarm_ms: Cell<Option<i64>>,
}

fn server_error(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::UnknownServerError, message)
}

impl TxnObject {
    fn transactional_id(&self) -> Result<String, ApiError> {
        let name = self
            .state
            .id()
            .name()
            .ok_or_else(|| server_error("a coordinator object must be named by its id"))?;
        if !valid_transactional_id(&name) {
            return Err(ApiError::new(
                ErrorCode::InvalidRequest,
                format!("invalid transactional_id {name:?}"),
            ));
        }
        Ok(name)
    }

    /// Runs one step of the core (opening it if needed), then dispatches its outputs and
    /// re-arms the alarm. Never awaits.
    fn step(
        self: &Rc<Self>,
        f: impl FnOnce(&mut Core<DoSql>, i64) -> Result<Vec<Output>, TxnError>,
    ) -> Result<(), ApiError> {
        let now = now_ms();
        let result = {
            let mut core = self.core.borrow_mut();
            if core.is_none() {
                let id = self.transactional_id()?;
                let sql = DoSql::new(&self.state).map_err(storage_error)?;
                *core = Some(Core::open(sql, &id, now).map_err(|e| e.to_api_error())?);
            }
            f(core.as_mut().expect("opened above"), now)
        };
        match result {
            Ok(outputs) => self.dispatch(outputs),
            Err(e) => {
                // Storage failed mid-step: forget the core's memory (a restart) and fail
                // everyone waiting; their clients retry.
                self.core.borrow_mut().take();
                let waiting: Vec<Waiter> =
                    self.waiting.borrow_mut().drain().map(|(_, w)| w).collect();
                for w in waiting {
                    let _ = w.send(Err(e.clone()));
                }
                return Err(e.to_api_error());
            }
        }
        self.rearm();
        Ok(())
    }

    fn dispatch(self: &Rc<Self>, outputs: Vec<Output>) {
        for output in outputs {
            match output {
                Output::Reply { request, result } => {
                    let waiter = self.waiting.borrow_mut().remove(&request.0);
                    if let Some(waiter) = waiter {
                        // A client that gave up dropped its receiver: nothing to do.
                        let _ = waiter.send(result);
                    }
                }
                Output::Call { id, call } => {
                    let this = Rc::clone(self);
                    wasm_bindgen_futures::spawn_local(async move {
                        let result = this.perform(call).await;
                        this.report(id, result);
                    });
                }
            }
        }
    }

    /// Feeds a call's result back (exactly once per call).
    fn report(self: &Rc<Self>, id: CallId, result: Result<CallReply, CallError>) {
        if let Err(e) = self.step(|core, now| core.on_call_result(id, result, now)) {
            worker::console_error!("coordinator step after call {id}: {}", e.message);
        }
    }

    /// Sets the alarm to the core's next deadline, or deletes it.
    fn rearm(&self) {
        let next = self.core.borrow().as_ref().and_then(|c| c.next_alarm_ms());
        if next == self.alarm_ms.get() {
            return;
        }
        self.alarm_ms.set(next);
        let storage = self.state.storage();
        wasm_bindgen_futures::spawn_local(async move {
            let result = match next {
                Some(at) => {
                    let date = js_sys::Date::new(&JsValue::from_f64(at as f64));
                    storage.set_alarm(ScheduledTime::new(date)).await
                }
                None => storage.delete_alarm().await,
            };
            if let Err(e) = result {
                worker::console_error!("coordinator alarm: {e}");
            }
        });
    }

    async fn object<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        binding: &str,
        name: &str,
        path: &str,
        req: &Req,
    ) -> Result<Resp, CallError> {
        let timeout_ms = u32::try_from(CALL_TIMEOUT_MS).expect("a small deadline");
        call_object(&self.env, binding, name, path, req, timeout_ms)
            .await
            .map_err(|e| match e.code {
                // The outcome is unknown: the object may or may not have acted.
                ErrorCode::RequestTimedOut | ErrorCode::UnknownServerError => {
                    CallError::NoAnswer(e.message)
                }
                _ => CallError::Refused(e),
            })
    }

    async fn perform(&self, call: Call) -> Result<CallReply, CallError> {
        match call {
            Call::AllocateProducerId => {
                let block: ProducerIdBlock = self
                    .object(
                        "METADATA",
                        METADATA_OBJECT_NAME,
                        "/metadata/allocate-producer-ids",
                        &AllocateProducerIds { count: 1 },
                    )
                    .await?;
                Ok(CallReply::ProducerId(block.start))
            }
            Call::RegisterTxn(req) => {
                let name = partition_object_name(&req.partition.topic_id, req.partition.partition);
                let () = self
                    .object("PARTITION", &name, "/partition/register-txn", &req)
                    .await?;
                Ok(CallReply::Done)
            }
            Call::WriteMarker(req) => {
                let name = partition_object_name(&req.partition.topic_id, req.partition.partition);
                let ack: MarkerAck = self
                    .object("PARTITION", &name, "/partition/write-marker", &req)
                    .await?;
                Ok(CallReply::Marker(ack))
            }
            Call::TxnOffsetCommit(req) => {
                let () = self
                    .object("GROUP", &req.group_id, "/group/txn-offsets", &req)
                    .await?;
                Ok(CallReply::Done)
            }
            Call::GroupTxnMarker(req) => {
                let ack: MarkerAck = self
                    .object("GROUP", &req.group_id, "/group/txn-marker", &req)
                    .await?;
                Ok(CallReply::Marker(ack))
            }
        }
    }

    /// Runs a client request: parks its waiter, runs the step, awaits the reply.
    async fn request(
        self: &Rc<Self>,
        f: impl FnOnce(&mut Core<DoSql>, RequestId, i64) -> Result<Vec<Output>, TxnError>,
    ) -> Result<Answer, ApiError> {
        let id = self.next_request.get();
        self.next_request.set(id + 1);
        let (tx, rx) = oneshot::channel();
        self.waiting.borrow_mut().insert(id, tx);
        if let Err(e) = self.step(|core, now| f(core, RequestId(id), now)) {
            self.waiting.borrow_mut().remove(&id);
            return Err(e);
        }
        match rx.await {
            Ok(result) => result.map_err(|e| e.to_api_error()),
            Err(_) => Err(server_error(
                "the coordinator dropped the request (it restarted): retry",
            )),
        }
    }

    async fn call(self: &Rc<Self>, path: &str, body: &[u8]) -> worker::Result<Response> {
        match path {
            "/txn/init" => match from_cbor::<InitProducerRequest>(body) {
                Ok(req) => cbor_answer(
                    self.request(|core, id, now| core.init_producer(id, &req, now))
                        .await
                        .and_then(|a| match a {
                            Answer::Producer(p) => Ok(p),
                            other => Err(unexpected(&other)),
                        }),
                ),
                Err(e) => cbor_answer::<()>(Err(e)),
            },
            "/txn/add-partitions" => match from_cbor::<CoordinatorAddPartitions>(body) {
                Ok(req) => cbor_answer(
                    self.request(|core, id, now| core.add_partitions(id, &req, now))
                        .await
                        .map(|_| ()),
                ),
                Err(e) => cbor_answer::<()>(Err(e)),
            },
            "/txn/add-offsets" => match from_cbor::<AddOffsetsRequest>(body) {
                Ok(req) => cbor_answer(
                    self.request(|core, id, now| core.add_offsets(id, &req, now))
                        .await
                        .map(|_| ()),
                ),
                Err(e) => cbor_answer::<()>(Err(e)),
            },
            "/txn/end" => match from_cbor::<TxnEnd>(body) {
                Ok(req) => cbor_answer(
                    self.request(|core, id, now| core.end_txn(id, &req.request, req.result, now))
                        .await
                        .and_then(ended),
                ),
                Err(e) => cbor_answer::<()>(Err(e)),
            },
            "/txn/admin-abort" => cbor_answer(
                self.request(|core, id, now| core.admin_abort(id, now))
                    .await
                    .and_then(ended),
            ),
            "/txn/describe" => cbor_answer(self.read(|core, now| core.describe(now))),
            "/txn/open-transaction" => {
                cbor_answer(self.read(|core, now| core.open_transaction(now)))
            }
            _ => cbor_answer::<()>(Err(no_such_call(path))),
        }
    }

    /// A read-only look at the core (opening it if needed).
    fn read<T>(self: &Rc<Self>, f: impl FnOnce(&Core<DoSql>, i64) -> T) -> Result<T, ApiError> {
        let mut value = None;
        self.step(|core, now| {
            value = Some(f(core, now));
            Ok(Vec::new())
        })?;
        Ok(value.expect("the step ran"))
    }

    async fn alarm(self: &Rc<Self>) {
        // The alarm that fired is no longer set.
        self.alarm_ms.set(None);
        if let Err(e) = self.step(|core, now| core.on_alarm(now)) {
            worker::console_error!("coordinator alarm step: {}", e.message);
        }
    }
}

fn unexpected(answer: &Answer) -> ApiError {
    server_error(format!("the coordinator answered {answer:?} out of turn"))
}

fn ended(answer: Answer) -> Result<kafdo_types::txn::EndTxnResponse, ApiError> {
    match answer {
        Answer::Ended(e) => Ok(e),
        other => Err(unexpected(&other)),
    }
}

#[wasm_bindgen]
impl TxnCoordinator {
    /// Called by the runtime when the object starts.
    #[wasm_bindgen(constructor)]
    pub fn new(state: DurableObjectState, env: Env) -> Self {
        Self {
            inner: Rc::new(TxnObject {
                state: State::from(state),
                env,
                core: RefCell::new(None),
                waiting: RefCell::new(HashMap::new()),
                next_request: Cell::new(1),
                alarm_ms: Cell::new(None),
            }),
        }
    }

    /// Serves one call.
    pub fn fetch(&self, req: web_sys::Request) -> Promise {
        serve(&self.inner, req, |inner, path, body| async move {
            inner.call(&path, &body).await
        })
    }

    /// Re-sends markers that are due and aborts transactions past their timeout.
    pub fn alarm(&self) -> Promise {
        serve_alarm(&self.inner, |inner| async move { inner.alarm().await })
    }
}
