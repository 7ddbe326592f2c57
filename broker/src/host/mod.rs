//! The object hosts: what a Durable Object class does beyond decoding a call and sending the
//! answer, written once for the Worker's classes and the simulator's objects.
//!
//! A host owns one core over its storage (`S: Sql`), opened on the first call exactly as a
//! Durable Object opens it after every restart. Each call runs one step of the core,
//! synchronously from its first read to its last write, and comes back as [`Served`]: the
//! answer (CBOR, or the error) and the [`Effects`] the runtime must carry out: arm the alarm,
//! wake the parked readers, delete the object's storage. The runtime never decides those by
//! itself, so the Worker and the simulator cannot disagree on them.
//!
//! | host | core | alarm |
//! | --- | --- | --- |
//! | [`metadata::MetadataHost`] | `kafdo_metadata::Metadata` | none |
//! | [`partition::PartitionHost`] | `kafdo_partition::Partition` | retention, then one compaction step |
//! | [`coordinator::CoordinatorHost`] | `kafdo_txn_coordinator::TxnCoordinator` | markers re-sent, timeouts |
//! | [`group::GroupHost`] | `kafdo_group::GroupCoordinator` | session timeouts, forgotten producers |
//! | [`key::KeyHost`] | `kafdo_ingest::IdempotencyKey` | expiry; an empty object deletes its storage |
//!
//! # The alarm policy, one for every object
//!
//! A Durable Object has one alarm; setting it replaces the one set before. After every step a
//! host asks its core when it is next due (`next_alarm_ms`) and arms the alarm only when that
//! is earlier than what this instance armed ([`Alarm`]). A deadline that moved later (a
//! heartbeat pushing a session timeout) keeps the armed alarm: it fires early, the core finds
//! nothing due, and the host arms again for the real deadline. That costs one spurious firing
//! instead of a storage write per heartbeat. A restarted instance remembers nothing armed, so
//! its first step arms again, replacing the stored alarm; that is safe because a core's next
//! deadline is always its earliest. Every core tolerates early, late and repeated alarms, and
//! the simulator fires them so.

pub mod coordinator;
pub mod group;
pub mod key;
pub mod metadata;
pub mod partition;

use kafdo_sql::SqlError;
use kafdo_types::rpc::Call;
use kafdo_types::{ApiError, ErrorCode};

use crate::cbor::to_cbor;

/// What a step asks of the runtime, besides answering.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Effects {
    /// Set the object's alarm to this time (ms since the epoch), replacing the armed one.
    pub set_alarm_ms: Option<i64>,
    /// Wake every parked long-polling read: the log or its last stable offset moved.
    pub wake_readers: bool,
    /// Delete all of the object's storage, its alarm with it (the host forgot its core).
    pub delete_storage: bool,
}

/// The outcome of one call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Served {
    /// The CBOR of the call's answer, or the error.
    pub answer: Result<Vec<u8>, ApiError>,
    /// What the runtime must do.
    pub effects: Effects,
}

/// The alarm time an object instance armed last (memory only: `None` after a restart, once
/// the alarm fired, or after arming failed; then the next step arms again).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Alarm {
    armed_ms: Option<i64>,
}

impl Alarm {
    /// After a step whose core is next due at `next_ms`: the time to arm, if the armed alarm
    /// must be replaced (see the module docs).
    pub fn after_step(&mut self, next_ms: Option<i64>) -> Option<i64> {
        let at_ms = next_ms?;
        if self.armed_ms.is_some_and(|armed| armed <= at_ms) {
            return None;
        }
        self.armed_ms = Some(at_ms);
        Some(at_ms)
    }

    /// [`Alarm::after_step`] for a core that may fail to say when it is next due: the failure
    /// is logged (`what` names the object) and nothing is armed (the next step asks again).
    pub fn after_step_of<E: std::fmt::Display>(
        &mut self,
        next_ms: Result<Option<i64>, E>,
        what: &str,
    ) -> Option<i64> {
        let next_ms = next_ms.unwrap_or_else(|e| {
            tracing::error!("{what} alarm: {e}");
            None
        });
        self.after_step(next_ms)
    }

    /// The alarm fired: nothing is armed any more.
    pub fn fired(&mut self) {
        self.armed_ms = None;
    }

    /// Arming failed, or the instance lost its memory: the next step arms again.
    pub fn forget(&mut self) {
        self.armed_ms = None;
    }
}

/// Encodes a step's result as the answer to a call of payload type `C`: the compiler checks
/// that the core's answer is the type the caller decodes.
pub fn reply<C: Call>(result: Result<C::Answer, ApiError>) -> Result<Vec<u8>, ApiError> {
    result.map(|answer| to_cbor(&answer))
}

/// A storage failure outside a core's step (opening the storage, checking the schema).
pub fn storage_error(e: SqlError) -> ApiError {
    ApiError::new(ErrorCode::UnknownServerError, e.to_string())
}

/// The answer to a call of another object's kind (a bug, or a hostile name collision).
pub fn wrong_kind(path: &str, host: &str) -> ApiError {
    ApiError::new(
        ErrorCode::InvalidRequest,
        format!("the {host} object has no call {path}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_alarm_is_armed_only_for_an_earlier_deadline() {
        let mut alarm = Alarm::default();
        assert_eq!(alarm.after_step(None), None);
        assert_eq!(alarm.after_step(Some(100)), Some(100));
        // Later or equal: the armed alarm fires early, then the host arms again.
        assert_eq!(alarm.after_step(Some(100)), None);
        assert_eq!(alarm.after_step(Some(500)), None);
        assert_eq!(alarm.after_step(Some(50)), Some(50));
        alarm.fired();
        assert_eq!(alarm.after_step(Some(500)), Some(500));
        // A restart (or a failed arming) forgets: the next step arms whatever is next.
        alarm.forget();
        assert_eq!(alarm.after_step(Some(900)), Some(900));
        let failed: Result<Option<i64>, &str> = Err("storage failed");
        assert_eq!(alarm.after_step_of(failed, "test"), None);
        assert_eq!(
            alarm.after_step_of(Ok::<_, &str>(Some(10)), "test"),
            Some(10)
        );
    }
}
