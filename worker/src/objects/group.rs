//! The `Group` class: one consumer group, over [`kafdo_group::GroupCoordinator`]. The object is
//! named by the group id.
//!
//! A thin adapter: each call decodes a CBOR body, runs one step of the core with the time read
//! here (`Date.now()`), and encodes the answer. The core never calls out; the router passes in
//! the partition counts of the topics a join subscribes to.
//!
//! # The alarm
//!
//! Session timeouts are enforced by the object's alarm. After every step the adapter asks the
//! core for [`GroupCoordinator::next_alarm_ms`] and arms the alarm when that is earlier than
//! the one it armed (or none is armed); when the alarm fires it runs
//! [`GroupCoordinator::on_alarm`] (which removes silent members and reassigns their
//! partitions) and arms the next one, or deletes it when nothing is due ever. A heartbeat
//! pushes its member's deadline later, so arming only when earlier spares a storage write per
//! heartbeat: an alarm that fires before anything is due does nothing and re-arms (the core
//! tolerates early, late and repeated alarms). The next deadline is read and the alarm set
//! without an `.await` in between, so two interleaved calls cannot arm a stale time last.
//!
//! # Unknown groups
//!
//! The core's storage is created by the first join (or an administrator's commit). Every
//! other call to a group whose storage was never created answers without creating it
//! (describe `GROUP_ID_NOT_FOUND`, no offsets, `UNKNOWN_MEMBER_ID` for heartbeats, leaves and
//! commits, a marker with nothing to settle), so probing names leaves nothing behind.

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::Promise;
use kafdo_group::{GroupCoordinator, GroupError};
use kafdo_sql::Sql;
use kafdo_types::group::{
    GroupHeartbeatCall, GroupJoinCall, OffsetCommitRequest, OffsetFetchQuery, OffsetFetchResponse,
};
use kafdo_types::rpc::{GroupTxnMarkerRequest, MarkerAck, TxnOffsetCommitRequest};
use kafdo_types::{ApiError, ErrorCode};
use wasm_bindgen::prelude::wasm_bindgen;
use worker::worker_sys::DurableObjectState;
use worker::{web_sys, Env, Response, State};

use super::{cbor_answer, no_such_call, now_ms, serve, serve_alarm, storage_error, ArmedAlarm};
use crate::group_http::MemberCall;
use crate::http::from_cbor;
use crate::sql::DoSql;

/// A consumer group object.
#[wasm_bindgen]
pub struct Group {
    /// Shared with the task that serves each request (see `crate::guard`).
    inner: Rc<GroupObject>,
}

/// The state of a group object.
pub struct GroupObject {
    state: State,
    /// Opened on the first call that needs storage.
    core: RefCell<Option<GroupCoordinator<DoSql>>>,
    /// The alarm armed last.
    alarm: ArmedAlarm,
}

fn api_error(e: GroupError) -> ApiError {
    ApiError::new(e.code(), e.to_string())
}

/// The core's first table: present once any step opened the group.
const EXISTS_QUERY: &str =
    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'group_state'";

impl GroupObject {
    /// Whether this group's storage exists (some call opened it before).
    fn exists(&self) -> Result<bool, ApiError> {
        if self.core.borrow().is_some() {
            return Ok(true);
        }
        let sql = DoSql::new(&self.state).map_err(storage_error)?;
        Ok(sql
            .first(EXISTS_QUERY, &[])
            .map_err(storage_error)?
            .is_some())
    }

    fn with_core<T>(
        &self,
        f: impl FnOnce(&mut GroupCoordinator<DoSql>) -> Result<T, GroupError>,
    ) -> Result<T, ApiError> {
        let mut core = self.core.borrow_mut();
        if core.is_none() {
            let sql = DoSql::new(&self.state).map_err(storage_error)?;
            *core = Some(GroupCoordinator::open(sql).map_err(api_error)?);
        }
        f(core.as_mut().expect("opened above")).map_err(api_error)
    }

    /// Arms the alarm for the core's next deadline when it is earlier than the armed one.
    /// Called after every step; an error is logged (the next step or alarm arms again).
    async fn arm_alarm(&self) {
        if self.core.borrow().is_none() {
            return;
        }
        let next = match self.with_core(|core| core.next_alarm_ms()) {
            Ok(next) => next,
            Err(e) => {
                worker::console_error!("group alarm: {}", e.message);
                return;
            }
        };
        if let Some(at_ms) = next {
            self.alarm.arm(&self.state, at_ms, "group").await;
        }
    }

    /// The alarm: session timeouts and forgotten producers, then the next alarm.
    async fn alarm(&self) {
        self.alarm.fired();
        if !self.exists().unwrap_or(true) {
            return;
        }
        if let Err(e) = self.with_core(|core| core.on_alarm(now_ms())) {
            worker::console_error!("group alarm failed: {}", e.message);
        }
        match self.with_core(|core| core.next_alarm_ms()) {
            Ok(Some(_)) => self.arm_alarm().await,
            Ok(None) => {
                if let Err(e) = self.state.storage().delete_alarm().await {
                    worker::console_error!("group alarm: deleting it failed: {e}");
                }
            }
            Err(e) => worker::console_error!("group alarm: {}", e.message),
        }
    }

    async fn call(&self, path: &str, body: &[u8]) -> worker::Result<Response> {
        let answer = match path {
            "/group/join" => cbor_answer(from_cbor::<GroupJoinCall>(body).and_then(|call| {
                self.with_core(|core| core.join(&call.request, &call.partition_counts, now_ms()))
            })),
            "/group/heartbeat" => {
                cbor_answer(from_cbor::<GroupHeartbeatCall>(body).and_then(|call| {
                    if !self.exists()? {
                        return Err(unknown_member(&call.member_id));
                    }
                    self.with_core(|core| {
                        core.heartbeat(
                            &call.member_id,
                            &call.request,
                            &call.partition_counts,
                            now_ms(),
                        )
                    })
                }))
            }
            "/group/leave" => cbor_answer(from_cbor::<MemberCall>(body).and_then(|call| {
                if !self.exists()? {
                    return Err(unknown_member(&call.member_id));
                }
                self.with_core(|core| core.leave(&call.member_id, now_ms()))
            })),
            "/group/commit" => {
                cbor_answer(from_cbor::<OffsetCommitRequest>(body).and_then(|req| {
                    // A member's commit to a group that never existed: refused without creating
                    // storage (an administrator's commit, `member_id` empty, creates the group).
                    if !req.member_id.is_empty() && !self.exists()? {
                        return Err(unknown_member(&req.member_id));
                    }
                    self.with_core(|core| core.commit_offsets(&req, now_ms()))
                }))
            }
            "/group/offsets" => cbor_answer(from_cbor::<OffsetFetchQuery>(body).and_then(|q| {
                if !self.exists()? {
                    return Ok(OffsetFetchResponse {
                        offsets: Vec::new(),
                    });
                }
                self.with_core(|core| core.fetch_offsets(&q))
            })),
            "/group/describe" => cbor_answer((|| {
                let not_found = || {
                    ApiError::new(
                        ErrorCode::GroupIdNotFound,
                        "no member ever joined this group and it has no committed offsets",
                    )
                };
                if !self.exists()? {
                    return Err(not_found());
                }
                let description = self.with_core(|core| core.describe(now_ms()))?;
                // Generation 0: no member ever joined. Offsets committed by an administrator
                // still make the group exist, as in Kafka.
                if description.generation_id == 0 {
                    let offsets =
                        self.with_core(|core| core.fetch_offsets(&OffsetFetchQuery::default()))?;
                    if offsets.offsets.is_empty() {
                        return Err(not_found());
                    }
                }
                Ok(description)
            })()),
            "/group/txn-offsets" => {
                cbor_answer(from_cbor::<TxnOffsetCommitRequest>(body).and_then(|req| {
                    if !self.exists()? {
                        return Err(unknown_member(&req.member_id));
                    }
                    self.with_core(|core| core.txn_offset_commit(&req, now_ms()))
                }))
            }
            "/group/txn-marker" => {
                cbor_answer(from_cbor::<GroupTxnMarkerRequest>(body).and_then(|req| {
                    // A group that never existed holds no offsets of the transaction, and a
                    // late transactional commit to it finds no member: nothing to settle.
                    if !self.exists()? {
                        return Ok(MarkerAck {
                            marker_offset: None,
                        });
                    }
                    self.with_core(|core| core.txn_marker(&req, now_ms()))
                }))
            }
            _ => cbor_answer::<()>(Err(no_such_call(path))),
        };
        self.arm_alarm().await;
        answer
    }
}

fn unknown_member(member_id: &str) -> ApiError {
    ApiError::new(
        ErrorCode::UnknownMemberId,
        format!("unknown member id {member_id:?}"),
    )
}

#[wasm_bindgen]
impl Group {
    /// Called by the runtime when the object starts.
    #[wasm_bindgen(constructor)]
    pub fn new(state: DurableObjectState, _env: Env) -> Self {
        let state = State::from(state);
        Self {
            inner: Rc::new(GroupObject {
                state,
                core: RefCell::new(None),
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

    /// Called by the runtime when the alarm fires.
    pub fn alarm(&self) -> Promise {
        serve_alarm(&self.inner, |inner| async move { inner.alarm().await })
    }
}
