//! Calls to an `Idempotency-Key` object ([`Object::Key`](super::Object::Key), named
//! `{topic}/{key}`), which a keyed produce runs through (see `design/ingest.md`).

use serde::{Deserialize, Serialize};

use crate::api::RecordOffset;

object_calls! {
    /// A call to an `Idempotency-Key` object (`kafdo_ingest::IdempotencyKey`).
    pub enum KeyCall: Key {
        /// Stores the fingerprint and a proposed producer id, or answers the key's state.
        Begin(KeyBegin) -> KeyBeginAnswer = "/ingest/begin",
        /// Stores the answer of an attempt that appended everything.
        Complete(KeyComplete) -> () = "/ingest/complete",
        /// Gives the key back after a failed attempt, so a retry need not wait for the lease.
        Release(KeyRelease) -> () = "/ingest/release",
    }
}

/// [`KeyCall::Begin`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyBegin {
    /// The digest of the decoded request.
    pub fingerprint: Vec<u8>,
    /// A fresh producer id, kept only if the key is new.
    pub producer_id: i64,
    /// How long this attempt holds the key.
    pub lease_ms: i64,
    /// How long the key is remembered.
    pub ttl_ms: i64,
    /// The topic's partition count as this attempt sees it (the key keeps the first one's).
    pub partitions: i32,
}

/// The answer to [`KeyCall::Begin`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyBeginAnswer {
    /// Append with this producer id, then complete with this attempt.
    Proceed {
        /// The key's producer id.
        producer_id: i64,
        /// The attempt number.
        attempt: i64,
        /// The partition count to route with: the first attempt's, so every attempt sends the
        /// same batches even if partitions were added in between.
        partitions: i32,
    },
    /// Answered before: these offsets.
    Done {
        /// The stored offsets, in request order.
        offsets: Vec<RecordOffset>,
    },
    /// Another attempt holds the key for this long still (the in-flight conflict travels as a
    /// value, not an error: the Worker turns it into a 409 with a `Retry-After` header).
    InFlight {
        /// Until its lease ends.
        retry_after_ms: i64,
    },
}

/// [`KeyCall::Complete`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyComplete {
    /// The key's producer id (names the key's incarnation).
    pub producer_id: i64,
    /// The attempt.
    pub attempt: i64,
    /// The offsets, in request order.
    pub offsets: Vec<RecordOffset>,
}

/// [`KeyCall::Release`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRelease {
    /// The key's producer id.
    pub producer_id: i64,
    /// The attempt that failed.
    pub attempt: i64,
}
