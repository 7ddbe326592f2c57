//! The group object's host (named by the group id), over [`kafdo_group::GroupCoordinator`].
//!
//! # Unknown groups
//!
//! The core's storage is created by the first join (or an administrator's commit). Every other
//! call to a group whose storage was never created answers without creating it (describe
//! `GROUP_ID_NOT_FOUND`, no offsets, `UNKNOWN_MEMBER_ID` for heartbeats, leaves and commits, a
//! marker with nothing to settle), so probing names leaves nothing behind.
//!
//! # The alarm
//!
//! Session timeouts (and forgetting ended producers) are the core's alarm
//! ([`GroupCoordinator::next_alarm_ms`], [`GroupCoordinator::on_alarm`]), armed by the shared
//! policy of [`super::Alarm`]: a heartbeat pushes its member's deadline later, so arming only
//! when earlier spares a storage write per heartbeat.

use kafdo_group::{GroupCoordinator, GroupError};
use kafdo_sql::Sql;
use kafdo_types::group::{
    GroupDescription, GroupHeartbeatCall, GroupJoinCall, OffsetCommitRequest, OffsetFetchQuery,
    OffsetFetchResponse,
};
use kafdo_types::rpc::{
    DescribeGroupRequest, GroupCall, GroupTxnMarkerRequest, LeaveGroupRequest, MarkerAck,
    TxnOffsetCommitRequest,
};
use kafdo_types::{ApiError, ErrorCode};

use super::{reply, storage_error, Alarm, Effects, Served};

fn api_error(e: GroupError) -> ApiError {
    ApiError::new(e.code(), e.to_string())
}

fn unknown_member(member_id: &str) -> ApiError {
    ApiError::new(
        ErrorCode::UnknownMemberId,
        format!("unknown member id {member_id:?}"),
    )
}

fn not_found() -> ApiError {
    ApiError::new(
        ErrorCode::GroupIdNotFound,
        "no member ever joined this group and it has no committed offsets",
    )
}

/// The core's first table: present once any step opened the group.
const EXISTS_QUERY: &str =
    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'group_state'";

/// A group object's memory: its core (opened by the first call that needs storage) and its
/// armed alarm.
pub struct GroupHost<S: Sql> {
    sql: S,
    core: Option<GroupCoordinator<S>>,
    alarm: Alarm,
}

impl<S: Sql + Clone> GroupHost<S> {
    /// A host over the object's storage.
    pub fn new(sql: S) -> Self {
        Self {
            sql,
            core: None,
            alarm: Alarm::default(),
        }
    }

    /// The instance lost its memory.
    pub fn restart(&mut self) {
        self.core = None;
        self.alarm.forget();
    }

    /// Arming the alarm failed: the next step arms again.
    pub fn alarm_failed(&mut self) {
        self.alarm.forget();
    }

    /// Whether this group's storage exists (some call opened it before).
    pub fn exists(&self) -> Result<bool, ApiError> {
        if self.core.is_some() {
            return Ok(true);
        }
        Ok(self
            .sql
            .first(EXISTS_QUERY, &[])
            .map_err(storage_error)?
            .is_some())
    }

    /// The core, opened (and its storage created) if it is not.
    pub fn core(&mut self) -> Result<&mut GroupCoordinator<S>, ApiError> {
        if self.core.is_none() {
            self.core = Some(GroupCoordinator::open(self.sql.clone()).map_err(api_error)?);
        }
        Ok(self.core.as_mut().expect("opened above"))
    }

    /// Serves one call.
    pub fn serve(&mut self, call: GroupCall, now_ms: i64) -> Served {
        let answer = match call {
            GroupCall::Join(call) => reply::<GroupJoinCall>(self.core().and_then(|core| {
                core.join(&call.request, &call.partition_counts, now_ms)
                    .map_err(api_error)
            })),
            GroupCall::Heartbeat(call) => {
                reply::<GroupHeartbeatCall>(self.existing(&call.member_id).and_then(|core| {
                    core.heartbeat(
                        &call.member_id,
                        &call.request,
                        &call.partition_counts,
                        now_ms,
                    )
                    .map_err(api_error)
                }))
            }
            GroupCall::Leave(call) => reply::<LeaveGroupRequest>(
                self.existing(&call.member_id)
                    .and_then(|core| core.leave(&call.member_id, now_ms).map_err(api_error)),
            ),
            GroupCall::Commit(req) => reply::<OffsetCommitRequest>((|| {
                // A member's commit to a group that never existed is refused without creating
                // storage; an administrator's commit (`member_id` empty) creates the group.
                let core = if req.member_id.is_empty() {
                    self.core()?
                } else {
                    self.existing(&req.member_id)?
                };
                core.commit_offsets(&req, now_ms).map_err(api_error)
            })()),
            GroupCall::Offsets(query) => reply::<OffsetFetchQuery>(self.offsets(&query)),
            GroupCall::Describe(_) => reply::<DescribeGroupRequest>(self.describe(now_ms)),
            GroupCall::TxnOffsets(req) => reply::<TxnOffsetCommitRequest>(
                self.existing(&req.member_id)
                    .and_then(|core| core.txn_offset_commit(&req, now_ms).map_err(api_error)),
            ),
            GroupCall::TxnMarker(req) => reply::<GroupTxnMarkerRequest>((|| {
                // A group that never existed holds no offsets of the transaction, and a late
                // transactional commit to it finds no member: nothing to settle.
                if !self.exists()? {
                    return Ok(MarkerAck {
                        marker_offset: None,
                    });
                }
                self.core()?.txn_marker(&req, now_ms).map_err(api_error)
            })()),
        };
        Served {
            answer,
            effects: self.after_step(),
        }
    }

    /// The core of a group that exists; `UNKNOWN_MEMBER_ID` for `member_id` otherwise.
    fn existing(&mut self, member_id: &str) -> Result<&mut GroupCoordinator<S>, ApiError> {
        if !self.exists()? {
            return Err(unknown_member(member_id));
        }
        self.core()
    }

    fn offsets(&mut self, query: &OffsetFetchQuery) -> Result<OffsetFetchResponse, ApiError> {
        if !self.exists()? {
            return Ok(OffsetFetchResponse {
                offsets: Vec::new(),
            });
        }
        self.core()?.fetch_offsets(query).map_err(api_error)
    }

    fn describe(&mut self, now_ms: i64) -> Result<GroupDescription, ApiError> {
        if !self.exists()? {
            return Err(not_found());
        }
        let core = self.core()?;
        let description = core.describe(now_ms).map_err(api_error)?;
        // Generation 0: no member ever joined. Offsets committed by an administrator still make
        // the group exist, as in Kafka.
        if description.generation_id == 0 {
            let offsets = core
                .fetch_offsets(&OffsetFetchQuery::default())
                .map_err(api_error)?;
            if offsets.offsets.is_empty() {
                return Err(not_found());
            }
        }
        Ok(description)
    }

    /// The alarm fired: session timeouts and forgotten producers, then the next alarm.
    pub fn on_alarm(&mut self, now_ms: i64) -> Effects {
        self.alarm.fired();
        if !self.exists().unwrap_or(true) {
            return Effects::default();
        }
        if let Err(e) = self
            .core()
            .and_then(|core| core.on_alarm(now_ms).map_err(api_error))
        {
            tracing::error!("group alarm failed: {}", e.message);
        }
        self.after_step()
    }

    /// The alarm to arm after a step of an opened core.
    fn after_step(&mut self) -> Effects {
        let Some(core) = self.core.as_ref() else {
            return Effects::default();
        };
        Effects {
            set_alarm_ms: self.alarm.after_step_of(core.next_alarm_ms(), "group"),
            ..Effects::default()
        }
    }
}
