//! The transaction coordinator's host (named by the transactional id), over
//! [`kafdo_txn_coordinator::TxnCoordinator`] (see `design/txn-coordinator.md`).
//!
//! The core returns effects; the host turns them into what its runtime carries out:
//!
//! - A client call (init, add partitions, add offsets, end, admin abort) gets a fresh
//!   [`RequestId`] and comes back [`Reception::Waiting`]: the runtime parks the caller until a
//!   [`CoordinatorStep::replies`] entry for that id arrives, in this step or a later one (a
//!   commit answers once every marker is in). A read (describe, open transaction) is
//!   [`Reception::Answered`] at once.
//! - Every [`CoordinatorStep::calls`] entry is a call to another object: the runtime runs
//!   [`perform`] for it (all of a step's calls concurrently) and feeds the result back with
//!   [`CoordinatorHost::on_call_result`], exactly once per call.
//! - A step that fails (storage failed) drops the core, so the next step opens it again exactly
//!   as a restart would, and [`CoordinatorStep::failed`] tells the runtime to fail every
//!   parked caller with that error (their clients retry).
//!
//! The alarm re-sends markers that are due and aborts transactions past their timeout; it is
//! armed by the shared policy of [`super::Alarm`].

use kafdo_sql::Sql;
use kafdo_txn_coordinator::{
    Answer, Call, CallError, CallId, CallReply, CoordinatorConfig, Output, RequestId,
    TxnCoordinator, TxnError, CALL_TIMEOUT_MS,
};
use kafdo_types::rpc::{AllocateProducerIds, CoordinatorCall, Object};
use kafdo_types::txn::valid_transactional_id;
use kafdo_types::{ApiError, ErrorCode};

use super::Alarm;
use crate::cbor::to_cbor;
use crate::{ask, Runtime};

/// How a call was received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reception {
    /// Answered at once (a read, or a call refused before the core saw it).
    Answered(Result<Vec<u8>, ApiError>),
    /// Park the caller until the step's or a later step's reply for this request.
    Waiting(RequestId),
}

/// What a step asks of the runtime.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CoordinatorStep {
    /// Answers to parked callers: the CBOR of the call's answer, or the error.
    pub replies: Vec<(RequestId, Result<Vec<u8>, ApiError>)>,
    /// Calls to other objects: run [`perform`] and report with `on_call_result`.
    pub calls: Vec<(CallId, Call)>,
    /// Set the alarm to this time, replacing the armed one.
    pub set_alarm_ms: Option<i64>,
    /// The step failed and the core was dropped: fail every parked caller with this.
    pub failed: Option<ApiError>,
}

/// A coordinator object's memory: its core (opened on the first step, dropped when one fails),
/// the next request id, and its armed alarm.
pub struct CoordinatorHost<S: Sql> {
    sql: S,
    transactional_id: Option<String>,
    config: CoordinatorConfig,
    core: Option<TxnCoordinator<S>>,
    next_request: u64,
    alarm: Alarm,
}

fn server_error(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::UnknownServerError, message)
}

/// A client request's answer as the caller decodes it (`kafdo_types::rpc::CoordinatorCall`'s
/// answers).
fn encode(answer: Result<Answer, TxnError>) -> Result<Vec<u8>, ApiError> {
    match answer.map_err(|e| e.to_api_error())? {
        Answer::Producer(p) => Ok(to_cbor(&p)),
        Answer::PartitionsAdded | Answer::OffsetsAdded => Ok(to_cbor(&())),
        Answer::Ended(e) => Ok(to_cbor(&e)),
    }
}

impl<S: Sql + Clone> CoordinatorHost<S> {
    /// A host over the object's storage; `transactional_id` is the object's name (`None` if it
    /// has none, which refuses every call).
    pub fn new(sql: S, transactional_id: Option<String>, config: CoordinatorConfig) -> Self {
        Self {
            sql,
            transactional_id,
            config,
            core: None,
            next_request: 1,
            alarm: Alarm::default(),
        }
    }

    /// The instance lost its memory (its parked callers are gone with it).
    pub fn restart(&mut self) {
        self.core = None;
        self.alarm.forget();
    }

    /// Arming the alarm failed: the next step arms again.
    pub fn alarm_failed(&mut self) {
        self.alarm.forget();
    }

    /// The core, opened if it is not.
    pub fn core(&mut self, now_ms: i64) -> Result<&mut TxnCoordinator<S>, ApiError> {
        if self.core.is_none() {
            let id = match &self.transactional_id {
                Some(id) if valid_transactional_id(id) => id.clone(),
                Some(id) => {
                    return Err(ApiError::new(
                        ErrorCode::InvalidRequest,
                        format!("invalid transactional_id {id:?}"),
                    ))
                }
                None => return Err(server_error("a coordinator object must be named by its id")),
            };
            let core = TxnCoordinator::open_with_config(self.sql.clone(), &id, now_ms, self.config)
                .map_err(|e| e.to_api_error())?;
            self.core = Some(core);
        }
        Ok(self.core.as_mut().expect("opened above"))
    }

    /// Receives one call.
    pub fn call(&mut self, call: CoordinatorCall, now_ms: i64) -> (Reception, CoordinatorStep) {
        let request = RequestId(self.next_request);
        self.next_request += 1;
        let waiting = |step: CoordinatorStep| {
            // A failed step answers its own caller with the error, besides the parked ones.
            match &step.failed {
                Some(e) => (Reception::Answered(Err(e.clone())), step),
                None => (Reception::Waiting(request), step),
            }
        };
        match call {
            CoordinatorCall::Init(req) => {
                waiting(self.step(now_ms, |core, now| core.init_producer(request, &req, now)))
            }
            CoordinatorCall::AddPartitions(req) => {
                waiting(self.step(now_ms, |core, now| core.add_partitions(request, &req, now)))
            }
            CoordinatorCall::AddOffsets(req) => {
                waiting(self.step(now_ms, |core, now| core.add_offsets(request, &req, now)))
            }
            CoordinatorCall::End(req) => waiting(self.step(now_ms, |core, now| {
                core.end_txn(request, &req.request, req.result, now)
            })),
            CoordinatorCall::AdminAbort(_) => {
                waiting(self.step(now_ms, |core, now| core.admin_abort(request, now)))
            }
            CoordinatorCall::Describe(_) => {
                let answer = self
                    .core(now_ms)
                    .map(|core| to_cbor(&core.describe(now_ms)));
                (Reception::Answered(answer), CoordinatorStep::default())
            }
            CoordinatorCall::OpenTransaction(_) => {
                let answer = self
                    .core(now_ms)
                    .map(|core| to_cbor(&core.open_transaction(now_ms)));
                (Reception::Answered(answer), CoordinatorStep::default())
            }
        }
    }

    /// A call of an earlier step answered (exactly once per call).
    pub fn on_call_result(
        &mut self,
        id: CallId,
        result: Result<CallReply, CallError>,
        now_ms: i64,
    ) -> CoordinatorStep {
        self.step(now_ms, |core, now| core.on_call_result(id, result, now))
    }

    /// The alarm fired: markers that are due, transactions past their timeout.
    pub fn on_alarm(&mut self, now_ms: i64) -> CoordinatorStep {
        self.alarm.fired();
        self.step(now_ms, |core, now| core.on_alarm(now))
    }

    /// Runs one step of the core (opening it if needed) and sorts its outputs. Never awaits.
    fn step(
        &mut self,
        now_ms: i64,
        f: impl FnOnce(&mut TxnCoordinator<S>, i64) -> Result<Vec<Output>, TxnError>,
    ) -> CoordinatorStep {
        let mut step = CoordinatorStep::default();
        let result = match self.core(now_ms) {
            Ok(core) => f(core, now_ms).map_err(|e| e.to_api_error()),
            Err(e) => Err(e),
        };
        match result {
            Ok(outputs) => {
                for output in outputs {
                    match output {
                        Output::Reply { request, result } => {
                            step.replies.push((request, encode(result)))
                        }
                        Output::Call { id, call } => step.calls.push((id, call)),
                    }
                }
                let next = self.core.as_ref().and_then(|c| c.next_alarm_ms());
                step.set_alarm_ms = self.alarm.after_step(next);
            }
            Err(e) => {
                // Storage failed mid-step: forget the core's memory (a restart); everyone
                // waiting fails and retries.
                self.core = None;
                step.failed = Some(e);
            }
        }
        step
    }
}

/// Carries out one of the coordinator's calls to another object, with the coordinator's
/// deadline. An object's error answer is [`CallError::Refused`]; a call that timed out, could
/// not be delivered, or met an `UNKNOWN_SERVER_ERROR` (a storage failure: the object may or may
/// not have acted) is [`CallError::NoAnswer`].
pub async fn perform<R: Runtime>(runtime: &R, call: Call) -> Result<CallReply, CallError> {
    let timeout_ms = u32::try_from(CALL_TIMEOUT_MS).expect("a small deadline");
    let result = match call {
        Call::AllocateProducerId => ask(
            runtime,
            Object::Metadata,
            AllocateProducerIds { count: 1 },
            timeout_ms,
        )
        .await
        .map(|block| CallReply::ProducerId(block.start)),
        Call::RegisterTxn(req) => ask(runtime, Object::partition(&req.partition), req, timeout_ms)
            .await
            .map(|()| CallReply::Done),
        Call::WriteMarker(req) => ask(runtime, Object::partition(&req.partition), req, timeout_ms)
            .await
            .map(CallReply::Marker),
        Call::TxnOffsetCommit(req) => {
            let group = Object::Group(req.group_id.clone());
            ask(runtime, group, req, timeout_ms)
                .await
                .map(|()| CallReply::Done)
        }
        Call::GroupTxnMarker(req) => {
            let group = Object::Group(req.group_id.clone());
            ask(runtime, group, req, timeout_ms)
                .await
                .map(CallReply::Marker)
        }
    };
    result.map_err(|e| match e.code {
        // The outcome is unknown: the object may or may not have acted.
        ErrorCode::RequestTimedOut | ErrorCode::UnknownServerError => {
            CallError::NoAnswer(e.message)
        }
        _ => CallError::Refused(e),
    })
}
