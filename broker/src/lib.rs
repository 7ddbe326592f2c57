//! Kafdo's orchestration: everything between a front door and the cores, written once and run
//! by the Worker over Durable Objects and by the simulator over its seeded network.
//!
//! The cores (`kafdo_partition`, `kafdo_txn_coordinator`, ...) are sans-IO state machines, one
//! per object. What sits between them is this crate:
//!
//! - **the [`Broker`]**, what a request to Kafdo does beyond decoding it: looking a topic up
//!   (with the isolate's cache, [`topics`]), planning a produce and fanning it out to the
//!   partitions with the offsets answered in request order ([`produce`]), the
//!   `Idempotency-Key` protocol ([`ingest`]), producers and transactions ([`txn`]), groups
//!   ([`groups`]), and the admin fan-outs, each bounded ([`fan_out`]);
//! - **the object hosts** ([`host`]), what a Durable Object class does beyond decoding a call:
//!   opening its core on first use, dispatching each call to a step, the alarm's composition and
//!   the one arming policy of every object, and the coordinator's calls to other objects
//!   ([`host::coordinator::perform`]).
//!
//! # The runtime
//!
//! Both reach the world through one trait, [`Runtime`]: a call to an object (named by a typed
//! [`Object`] and a typed [`ObjectCall`], never by strings), the time, and a random number. The
//! Worker implements it with Durable Object stubs, `Date.now()` and `Math.random()`; the
//! simulator with its seeded scheduler (every call a message that may be delayed, dropped or
//! duplicated), its logical clock and its seeded generator.
//!
//! # Why async, and how the simulator stays deterministic
//!
//! The orchestration is written as plain `async` code over the [`Runtime`], not as
//! effect-returning state machines: a keyed produce or a fan-out reads top to bottom as what it
//! does, and it is the code the Worker runs. The simulator drives it with its own executor
//! (`kafdo_sim::sim::executor`): one task per request, polled only by the event loop; a task's
//! object call is pending until the event loop delivers the answer (or its deadline, an event
//! too), then the task is polled again. There is no other source of wake-ups, no thread and no
//! timer, so one seed still replays one run exactly. The cores, which must never interleave
//! inside a step, stay synchronous state machines (`design/broker.md`).
//!
//! Architecture invariant: this crate never depends on `worker`, and it never awaits between
//! the first read and the last write of a core's step: a host runs a step synchronously and
//! returns what the runtime must do next.

#![warn(missing_docs)]

pub mod cbor;
pub mod fan_out;
pub mod groups;
pub mod host;
pub mod ingest;
pub mod isolate;
#[cfg(feature = "local")]
pub mod local;
pub mod many;
pub mod produce;
pub mod topics;
pub mod txn;

use std::future::Future;
use std::rc::Rc;

use kafdo_types::rpc::{Call, Object, ObjectCall};
use kafdo_types::{ApiError, ErrorCode};

pub use isolate::Isolate;

/// How long the broker waits for an object to answer before it answers `REQUEST_TIMED_OUT`
/// (503: the outcome is unknown). A read waits this plus its `wait_ms`; a coordinator call twice
/// this (a commit waits for every marker, a fencing init for the abort of the open transaction).
pub const OBJECT_CALL_TIMEOUT_MS: u32 = 15_000;

/// What the orchestration needs of the platform it runs on.
pub trait Runtime {
    /// Calls an object: the CBOR encoding of the call's answer, or the object's error. A call
    /// that does not answer within `timeout_ms` fails with `REQUEST_TIMED_OUT`, and one that
    /// cannot be delivered or whose object failed with `UNKNOWN_SERVER_ERROR`: either way the
    /// outcome is unknown.
    fn call(
        &self,
        object: Object,
        call: ObjectCall,
        timeout_ms: u32,
    ) -> impl Future<Output = Result<Vec<u8>, ApiError>>;

    /// Now, in ms since the epoch.
    fn now_ms(&self) -> i64;

    /// A number in `0..n` (`n > 0`), uniformly at random.
    fn random_below(&self, n: u32) -> u32;
}

/// Calls `object` and decodes its answer as the call's answer type.
pub async fn ask<R: Runtime, C: Call>(
    runtime: &R,
    object: Object,
    call: C,
    timeout_ms: u32,
) -> Result<C::Answer, ApiError> {
    let call: ObjectCall = call.into();
    assert_eq!(
        object.kind(),
        call.kind(),
        "{} sent to {object}",
        call.path()
    );
    let answer = runtime.call(object, call, timeout_ms).await?;
    cbor::from_cbor(&answer)
}

/// Shorthand for an `INVALID_REQUEST` error.
pub(crate) fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidRequest, message)
}

/// The deployment's settings the orchestration reads (the Worker takes them from its
/// variables, the simulator from the seed).
#[derive(Clone, Debug)]
pub struct Config {
    /// How long an `Idempotency-Key` is remembered after its first use.
    pub idempotency_key_ttl_ms: i64,
    /// How long one attempt of a keyed produce holds its key.
    pub idempotency_key_lease_ms: i64,
    /// Bugs planted in the orchestration (the simulator's planted-bug tests only).
    #[cfg(feature = "planted-bugs")]
    pub bugs: PlantedBugs,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            idempotency_key_ttl_ms: kafdo_ingest::DEFAULT_KEY_TTL_MS,
            idempotency_key_lease_ms: kafdo_ingest::DEFAULT_LEASE_MS,
            #[cfg(feature = "planted-bugs")]
            bugs: PlantedBugs::default(),
        }
    }
}

/// Bugs the simulator plants in the shared orchestration to show that its checker catches them.
#[cfg(feature = "planted-bugs")]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct PlantedBugs {
    /// A keyed produce appends with the producer id it proposed instead of the one the key
    /// reserved: a retry of an unfinished attempt is no longer a duplicate of the first.
    pub keyed_produce_ignores_reservation: bool,
    /// A produce answers the offsets of each partition's records in reverse order.
    pub produce_offsets_reversed: bool,
}

/// One request's view of Kafdo: the runtime, the isolate's memory, the settings.
pub struct Broker<R> {
    runtime: R,
    isolate: Rc<Isolate>,
    config: Config,
}

impl<R: Runtime> Broker<R> {
    /// A broker over `runtime`, sharing `isolate`'s caches with the other requests of the
    /// isolate.
    pub fn new(runtime: R, isolate: Rc<Isolate>, config: Config) -> Self {
        Self {
            runtime,
            isolate,
            config,
        }
    }

    /// The runtime.
    pub fn runtime(&self) -> &R {
        &self.runtime
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Calls an object with the usual deadline.
    pub(crate) async fn ask<C: Call>(
        &self,
        object: Object,
        call: C,
    ) -> Result<C::Answer, ApiError> {
        ask(&self.runtime, object, call, OBJECT_CALL_TIMEOUT_MS).await
    }

    /// Calls an object with a deadline of its own.
    pub(crate) async fn ask_within<C: Call>(
        &self,
        object: Object,
        call: C,
        timeout_ms: u32,
    ) -> Result<C::Answer, ApiError> {
        ask(&self.runtime, object, call, timeout_ms).await
    }
}
