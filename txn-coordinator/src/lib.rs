//! The transaction coordinator core: producer ids, epochs and fencing, and two-phase commit
//! across partitions and consumer groups (Kafka's KIP-98, with KIP-447's group fencing and
//! KIP-890's server-side defense).
//!
//! One [`TxnCoordinator`] serves one `transactional_id`; in production it lives in a Durable
//! Object named by that id. It is sans-IO: plain Rust over [`kafdo_sql::Sql`], with time passed
//! in and no randomness, so the Worker, native tests and the simulator drive the very same code.
//!
//! # Effects, not calls
//!
//! The coordinator never calls another object. Each step (a client request, the result of an
//! earlier call, an alarm) runs synchronously from its first read to its last write and returns
//! a list of [`Output`]s:
//!
//! - [`Output::Call`]: a call the adapter must make to another object ([`Call`]: allocate a
//!   producer id, register a transaction with a partition, write a marker, forward transactional
//!   offsets to a group, write a group marker). The adapter later reports what came back with
//!   [`TxnCoordinator::on_call_result`], under the same [`CallId`].
//! - [`Output::Reply`]: the answer to a client request, identified by the [`RequestId`] the
//!   adapter gave when it passed the request in. A request may be answered at once or several
//!   steps later (a commit answers once every participant acknowledged its marker), but every
//!   request gets exactly one reply, unless the object restarts first (then the client's HTTP
//!   request fails and the client retries: a timeout is an unknown outcome).
//!
//! After every step the adapter sets the Durable Object alarm to
//! [`TxnCoordinator::next_alarm_ms`] and, when it fires, calls [`TxnCoordinator::on_alarm`].
//! The alarm aborts transactions past their timeout, re-sends markers nobody acknowledged, and
//! gives up on calls that got no answer within [`CALL_TIMEOUT_MS`]. Firing it early, late or
//! twice is harmless: it only acts on what is due.
//!
//! # The state machine
//!
//! ```text
//!   Empty ──add──► Ongoing ──commit──► PrepareCommit ──all acked──► CompleteCommit
//!     ▲              │  ▲              (commit point)                    │    │
//!     │              │  └────────────── add (the next transaction) ──────┘    │
//!     │              │  ▲                                                      │
//!     │              │  └──────────── add (the next transaction) ──────┐      │
//!     │              │                                                  │      │
//!     │              └─abort, timeout, init, admin─► PrepareAbort ──all acked──► CompleteAbort
//!     │                                                                         │      │
//!     └──────────────── init (from Empty, CompleteCommit or CompleteAbort) ◄────┴──────┘
//! ```
//!
//! The epoch is bumped at every commit or abort (at the Prepare step, KIP-890 part 2) and at
//! every init; the [`kafdo_types::txn::EndTxnResponse`] carries the new one. A transaction is
//! identified by (producer id, epoch), so a late commit or abort can never land on a later
//! transaction (KAFKA-17754). Once the epochs are spent ([`CoordinatorConfig::roll_epoch`]) the
//! transactional id moves to a new producer id at epoch 0, which the end's answer carries. See `design/txn-coordinator.md` for the full argument: what is
//! persisted when, why persisting PrepareCommit is the commit point, and recovery.
//!
//! # Ordering of offset commits
//!
//! The coordinator sends one offset commit per group at a time, numbered (`sequence`, persisted
//! before the call goes out); the group keeps the offsets of the highest number, so a late call
//! never overwrites newer offsets. Once the latest call has an unknown outcome (no answer, or a
//! restart while it was in flight) the transaction cannot commit until the client sends its
//! offsets again and that call is answered; it may always abort.
//!
//! # Errors
//!
//! Request errors are answers ([`Output::Reply`] with a [`TxnError`]). A method returns `Err`
//! only when storage fails; the adapter then drops the core and opens it again (exactly what a
//! restart does: memory lost, SQLite kept), failing the requests it was holding.

#![warn(missing_docs)]

mod coordinator;
mod error;
mod store;

pub use coordinator::TxnCoordinator;
pub use error::TxnError;

use kafdo_types::api::InitProducerResponse;
use kafdo_types::rpc::{
    GroupTxnMarkerRequest, MarkerAck, RegisterTxnRequest, TxnOffsetCommitRequest,
    WriteMarkerRequest,
};
use kafdo_types::txn::EndTxnResponse;
use kafdo_types::ApiError;

/// A call the coordinator gives up on when no result came back within this long: it is then
/// treated as failed (a marker is re-sent, a waiting request answers `REQUEST_TIMED_OUT`).
pub const CALL_TIMEOUT_MS: i64 = 10_000;
/// The first delay before a failed marker is re-sent; it doubles with every failure.
pub const MARKER_RETRY_BASE_MS: i64 = 100;
/// The longest delay between two attempts at one marker.
pub const MARKER_RETRY_MAX_MS: i64 = 30_000;
/// The most client requests the coordinator holds open at once; more answer
/// `COORDINATOR_LOAD_IN_PROGRESS` (retriable).
pub const MAX_PENDING_REQUESTS: usize = 256;
/// Epochs never pass this: Kafka's epochs are 16-bit (`Short.MaxValue - 1`, its own limit), and
/// the same producer serves Kafka clients through the gateway. A transactional id moves to a new
/// producer id well before (see [`CoordinatorConfig::roll_epoch`]); the room between is for inits
/// that arrive while a transaction ends (each fences with one more epoch), and past it such an
/// init waits (`CONCURRENT_TRANSACTIONS`) for the move.
pub const MAX_PRODUCER_EPOCH: i32 = i16::MAX as i32 - 1;

/// The default [`CoordinatorConfig::roll_epoch`]: at one transaction every 10 ms with an epoch
/// bump at each end, a producer id lasts about 5 minutes, as in Kafka with transaction version 2
/// (the move costs one call to the metadata object; partitions forget idle producers).
pub const DEFAULT_ROLL_EPOCH: i32 = MAX_PRODUCER_EPOCH - 1_000;

/// Tunables of a coordinator.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct CoordinatorConfig {
    /// Once a transaction ends with the epoch at or past this, the transactional id moves to a
    /// new producer id (allocated by the metadata object) at epoch 0, as Kafka does at epoch
    /// overflow (KIP-890 part 2): the end's answer carries the new producer id. Tests and the
    /// simulator set it low to exercise the move.
    pub roll_epoch: i32,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        Self {
            roll_epoch: DEFAULT_ROLL_EPOCH,
        }
    }
}

/// The adapter's handle on a client request it holds open (any number it likes, unique among
/// the requests it holds).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub u64);

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "r{}", self.0)
    }
}

/// Identifies one outgoing call. Unique across restarts: `incarnation` counts how many times
/// the object was opened, so a result meant for an earlier incarnation is never mistaken for a
/// current one.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CallId {
    /// The incarnation of the coordinator that made the call.
    pub incarnation: u32,
    /// A counter within the incarnation.
    pub seq: u32,
}

impl std::fmt::Display for CallId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "c{}.{}", self.incarnation, self.seq)
    }
}

/// A call to another object that the coordinator asks the adapter to make.
#[derive(Clone, Debug, PartialEq)]
pub enum Call {
    /// Ask the metadata object for a new producer id (once per transactional id). Expected
    /// result: [`CallReply::ProducerId`].
    AllocateProducerId,
    /// `POST /partition/register-txn` to the partition named in the request. Expected result:
    /// [`CallReply::Done`].
    RegisterTxn(RegisterTxnRequest),
    /// `POST /partition/write-marker`. Expected result: [`CallReply::Marker`].
    WriteMarker(WriteMarkerRequest),
    /// `POST /group/txn-offsets` to the group named in the request. Expected result:
    /// [`CallReply::Done`].
    TxnOffsetCommit(TxnOffsetCommitRequest),
    /// `POST /group/txn-marker`. Expected result: [`CallReply::Marker`].
    GroupTxnMarker(GroupTxnMarkerRequest),
}

/// A successful answer to a [`Call`].
#[derive(Clone, Debug, PartialEq)]
pub enum CallReply {
    /// The metadata object allocated this producer id.
    ProducerId(i64),
    /// The partition registered the transaction, or the group stored the pending offsets.
    Done,
    /// The participant wrote (or had already written) the marker.
    Marker(MarkerAck),
}

/// A failed [`Call`].
#[derive(Clone, Debug, PartialEq)]
pub enum CallError {
    /// The object answered with an error.
    Refused(ApiError),
    /// No answer: the fetch failed, timed out, or the object reset. The call may or may not have
    /// taken effect.
    NoAnswer(String),
}

/// A successful answer to a client request.
#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    /// `POST /v1/producers`: the producer id and the new epoch.
    Producer(InitProducerResponse),
    /// `POST /v1/transactions/{id}/partitions`: every partition registered the transaction.
    PartitionsAdded,
    /// `POST /v1/transactions/{id}/offsets`: the group holds the offsets as pending.
    OffsetsAdded,
    /// Commit, abort or admin abort: the final state and the epoch for the next transaction.
    Ended(EndTxnResponse),
}

/// What a step asks of the adapter.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// Make this call and report its result with [`TxnCoordinator::on_call_result`].
    Call {
        /// The call's id.
        id: CallId,
        /// The call.
        call: Call,
    },
    /// Answer this client request.
    Reply {
        /// The request.
        request: RequestId,
        /// The answer.
        result: Result<Answer, TxnError>,
    },
}
