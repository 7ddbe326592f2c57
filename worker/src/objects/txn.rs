//! The `TxnCoordinator` class: one transactional id (the object's name, which `state.id()`
//! carries in `alarm` too), over [`kafdo_broker::host::coordinator::CoordinatorHost`].
//!
//! The host runs the core's steps; this class carries out what they ask:
//!
//! - A client call that the host parks ([`Reception::Waiting`]) gets a oneshot, resolved by the
//!   step's or a later step's reply for its request id (a commit answers once every marker is
//!   in). A step that failed fails every parked call (their clients retry).
//! - Every call to another object is spawned as its own task running
//!   [`kafdo_broker::host::coordinator::perform`] over Durable Object stubs, and its result is
//!   fed back to the host exactly once. All calls of a step go out concurrently.
//! - The alarm is armed when the step says so; `alarm()` runs the host's `on_alarm`, which
//!   re-sends markers and aborts transactions past their timeout.
//!
//! No `RefCell` borrow is held across an `.await`: a step borrows the host, runs, and returns
//! its outputs before anything is awaited.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use futures_channel::oneshot;
use js_sys::Promise;
use kafdo_broker::host::coordinator::{perform, CoordinatorHost, CoordinatorStep, Reception};
use kafdo_txn_coordinator::{CallError, CallId, CallReply, CoordinatorConfig, RequestId};
use kafdo_types::rpc::{CoordinatorCall, ObjectCall};
use kafdo_types::{ApiError, ErrorCode};
use wasm_bindgen::prelude::wasm_bindgen;
use worker::worker_sys::DurableObjectState;
use worker::{web_sys, Env, State};

use super::{now_ms, serve, serve_alarm, wrong_kind, Hosted};
use crate::sql::DoSql;
use crate::stubs::DoRuntime;

/// A transaction coordinator object.
#[wasm_bindgen]
pub struct TxnCoordinator {
    inner: Rc<TxnObject>,
}

type Waiter = oneshot::Sender<Result<Vec<u8>, ApiError>>;

/// The state of a coordinator object.
pub struct TxnObject {
    hosted: Hosted<CoordinatorHost<DoSql>>,
    env: Env,
    /// Client calls waiting for their reply.
    waiting: RefCell<HashMap<RequestId, Waiter>>,
}

impl TxnObject {
    async fn call(self: &Rc<Self>, call: CoordinatorCall) -> Result<Vec<u8>, ApiError> {
        let (reception, step) = self.hosted.with(|host| host.call(call, now_ms()))?;
        let reply = match reception {
            Reception::Answered(answer) => {
                self.carry_out(step);
                return answer;
            }
            Reception::Waiting(request) => {
                let (tx, rx) = oneshot::channel();
                self.waiting.borrow_mut().insert(request, tx);
                rx
            }
        };
        self.carry_out(step);
        reply.await.unwrap_or_else(|_| {
            Err(ApiError::new(
                ErrorCode::UnknownServerError,
                "the coordinator dropped the request (it restarted): retry",
            ))
        })
    }

    /// Carries out a step: answers, failures, calls, the alarm. Never awaits.
    fn carry_out(self: &Rc<Self>, step: CoordinatorStep) {
        if let Some(e) = &step.failed {
            let waiting: Vec<Waiter> = self.waiting.borrow_mut().drain().map(|(_, w)| w).collect();
            for w in waiting {
                let _ = w.send(Err(e.clone()));
            }
        }
        for (request, answer) in step.replies {
            let waiter = self.waiting.borrow_mut().remove(&request);
            // A client that gave up dropped its receiver: nothing to do.
            if let Some(waiter) = waiter {
                let _ = waiter.send(answer);
            }
        }
        for (id, call) in step.calls {
            let this = Rc::clone(self);
            wasm_bindgen_futures::spawn_local(async move {
                let runtime = DoRuntime::new(this.env.clone());
                let result = perform(&runtime, call).await;
                this.report(id, result);
            });
        }
        if let Some(at_ms) = step.set_alarm_ms {
            let this = Rc::clone(self);
            wasm_bindgen_futures::spawn_local(async move {
                this.hosted
                    .set_alarm(at_ms, "coordinator", CoordinatorHost::alarm_failed)
                    .await;
            });
        }
    }

    /// Feeds a call's result back (exactly once per call).
    fn report(self: &Rc<Self>, id: CallId, result: Result<CallReply, CallError>) {
        match self
            .hosted
            .with(|host| host.on_call_result(id, result, now_ms()))
        {
            Ok(step) => self.carry_out(step),
            Err(e) => worker::console_error!("coordinator step after call {id}: {}", e.message),
        }
    }
}

#[wasm_bindgen]
impl TxnCoordinator {
    /// Called by the runtime when the object starts.
    #[wasm_bindgen(constructor)]
    pub fn new(state: DurableObjectState, env: Env) -> Self {
        let state = State::from(state);
        let transactional_id = state.id().name();
        Self {
            inner: Rc::new(TxnObject {
                hosted: Hosted::new(state, move |sql| {
                    CoordinatorHost::new(
                        sql,
                        transactional_id.clone(),
                        CoordinatorConfig::default(),
                    )
                }),
                env,
                waiting: RefCell::new(HashMap::new()),
            }),
        }
    }

    /// Serves one call.
    pub fn fetch(&self, req: web_sys::Request) -> Promise {
        serve(&self.inner, req, |inner, call| async move {
            let ObjectCall::Coordinator(call) = call else {
                return Err(wrong_kind(&call, "coordinator"));
            };
            inner.call(call).await
        })
    }

    /// Re-sends markers that are due and aborts transactions past their timeout.
    pub fn alarm(&self) -> Promise {
        serve_alarm(&self.inner, |inner| async move {
            match inner.hosted.with(|host| host.on_alarm(now_ms())) {
                Ok(step) => inner.carry_out(step),
                Err(e) => worker::console_error!("coordinator alarm step: {}", e.message),
            }
        })
    }
}
