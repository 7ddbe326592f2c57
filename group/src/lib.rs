//! The consumer group coordinator core: membership, server-side assignment, cooperative
//! rebalancing, committed and transactional offsets.
//!
//! One [`GroupCoordinator`] runs per group id (in production one Durable Object per group). It
//! is a sans-IO state machine over [`kafdo_sql::Sql`]: every step is synchronous, runs inside
//! one storage transaction, takes the time as `now_ms`, and never calls out. The partition
//! counts of the subscribed topics are inputs (the Worker looks them up in the metadata
//! object). Member ids come from a counter in SQLite, so a run is fully determined by its
//! inputs and the simulator can replay it.
//!
//! # Membership (KIP-848 style: the group computes the assignment)
//!
//! - **Join** (`member_id` absent): the group makes a member id (`member-0000000001`, ...),
//!   recomputes the target assignment with its [`assignor`], bumps the generation and
//!   answers the member id, the generation and the partitions the member owns *now*.
//! - **Heartbeat** (`generation_id`): renews the session and answers the member's current
//!   assignment. The generation the member echoes is its acknowledgement (below).
//! - **Leave**: the member's partitions are free at once and go to the others.
//! - **Session timeout**: a member silent for `session_timeout_ms` is removed and its
//!   partitions reassigned. The adapter sets its alarm at [`GroupCoordinator::next_alarm_ms`]
//!   and calls [`GroupCoordinator::on_alarm`]; every other step also removes expired members
//!   first, so an alarm that fires late (or twice) changes nothing.
//! - **Static membership** (KIP-345): a join without `member_id` but with the
//!   `group_instance_id` of a current member takes over that member's place: a new member id,
//!   the same partitions and progress, no rebalance. The old member id is fenced (its calls
//!   answer `UNKNOWN_MEMBER_ID`).
//!
//! The generation is bumped whenever the membership or the target assignment changes.
//!
//! # Cooperative rebalancing: why no partition ever has two owners
//!
//! Each partition row holds a **target** (the member the assignor chose) and an **owner** (the
//! member that may believe it owns the partition). The owner changes only in three ways:
//!
//! 1. *Grant*: when the group answers member M (join or heartbeat), every partition targeted at
//!    M that has no owner gets owner M. The answer lists exactly the partitions with owner =
//!    target = M.
//! 2. *Release*: when the assignor moves a partition away from its owner M in generation G, the
//!    row records `revoke_generation = G`. From G on, every answer to M leaves the partition out
//!    (its target is no longer M). M applies an answer (stops consuming what it left out) before
//!    its next heartbeat, which echoes the answer's generation. A heartbeat echoing a generation
//!    `>= G` therefore proves M stopped consuming the partition, and only then is the owner
//!    cleared. An older heartbeat arriving late echoes `< G` and releases nothing.
//! 3. *Removal*: a member that leaves or whose session expired owns nothing any more (a consumer
//!    stops consuming when `session_timeout_ms` passed without a successful heartbeat, which is
//!    before the group's own deadline, measured from when it received that heartbeat).
//!
//! A partition is granted only when it has no owner, and the owner is cleared only once the
//! previous owner has provably stopped; so at every moment at most one member believes it owns
//! any partition. Members keep, untouched, the partitions they retain while others move.
//! Answers only ever carry the group's current generation, and within one generation a member's
//! answers only grow (the target is fixed), so "an answer of generation >= G" always left the
//! revoked partition out.
//!
//! # Errors
//!
//! `UNKNOWN_MEMBER_ID` for a member the group does not know (never joined, left, expired, or
//! replaced by a static takeover); `ILLEGAL_GENERATION` for a generation the member was never
//! told, or a commit for a partition the member does not own; `REBALANCE_IN_PROGRESS` for a
//! commit with an older generation than the member's latest answer (heartbeat, then commit
//! again).
//!
//! # Offsets
//!
//! A commit is fenced by generation and member id: the member's `generation_id` must be the
//! generation of the last answer it was sent, and it must own every partition it commits (a
//! partition being released still counts until the member acknowledges, so it can commit its
//! final position). An empty group also accepts `generation_id -1` with no member id (an
//! administrator resetting offsets), as Kafka does.
//!
//! # Transactional offsets (KIP-447)
//!
//! [`GroupCoordinator::txn_offset_commit`] stores offsets as *pending* for (producer_id,
//! producer_epoch), fenced like a commit. [`GroupCoordinator::txn_marker`] makes them committed
//! or drops them; a duplicate or late marker finds nothing pending and changes nothing. A fetch
//! with `require_stable` answers `UNSTABLE_OFFSET_COMMIT` (retriable) while any partition it
//! asks for has pending offsets; without it, pending offsets are invisible. The group remembers
//! each producer's last ended epoch, so a delayed copy of a transactional commit that arrives
//! after its marker is refused rather than left pending for ever.
//!
//! Storage: see `design/group.md` for the schema. Nothing grows per message: rows are per
//! member, per partition of the subscribed topics, and per producer with open offsets.

#![warn(missing_docs)]

pub mod assignor;
mod coordinator;

pub use coordinator::{
    validate_join, validate_offsets, GroupCoordinator, MAX_COMMITTED_OFFSETS,
    MAX_PENDING_PRODUCERS, TXN_PRODUCER_RETENTION_MS,
};

use kafdo_sql::SqlError;
use kafdo_types::ErrorCode;

/// Why a group step was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GroupError {
    /// The group does not know this member id.
    #[error("unknown member id {0:?}")]
    UnknownMemberId(String),
    /// A generation the member was never told.
    #[error("generation {generation_id} is not valid for member {member_id:?} (its latest is {current})")]
    IllegalGeneration {
        /// The member.
        member_id: String,
        /// The generation it sent.
        generation_id: i32,
        /// The generation of the last answer it was sent.
        current: i32,
    },
    /// An offset commit for a partition the member does not own.
    #[error("member {member_id:?} does not own {topic}-{partition}")]
    NotAssigned {
        /// The member.
        member_id: String,
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
    },
    /// A commit with an older generation than the member's latest answer.
    #[error("the member was moved to generation {current} (commit sent {generation_id}): heartbeat, then commit again")]
    RebalanceInProgress {
        /// The generation the commit carried.
        generation_id: i32,
        /// The member's latest generation.
        current: i32,
    },
    /// A subscribed topic whose partition count was not given (the topic does not exist).
    #[error("unknown topic {0:?}")]
    UnknownTopicOrPartition(String),
    /// A partition asked for with `require_stable` has pending transactional offsets.
    #[error(
        "{topic}-{partition} has transactional offsets waiting for their transaction's outcome"
    )]
    UnstableOffsetCommit {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
    },
    /// Transactional offsets for a transaction that already ended here.
    #[error("producer {producer_id} epoch {producer_epoch}: that transaction has ended")]
    InvalidProducerEpoch {
        /// The producer id.
        producer_id: i64,
        /// The epoch of the request.
        producer_epoch: i32,
    },
    /// Transactional offsets from an older epoch than the producer's pending ones.
    #[error("producer {producer_id} epoch {producer_epoch} is fenced by a newer epoch")]
    ProducerFenced {
        /// The producer id.
        producer_id: i64,
        /// The epoch of the request.
        producer_epoch: i32,
    },
    /// Too many producers hold pending offsets in this group.
    #[error(
        "too many open transactions hold offsets in this group (at most {MAX_PENDING_PRODUCERS})"
    )]
    TooManyPendingTransactions,
    /// The request is malformed or over a limit.
    #[error("{0}")]
    InvalidRequest(String),
    /// Storage failed.
    #[error(transparent)]
    Storage(SqlError),
}

impl GroupError {
    /// The protocol error code for the answer.
    pub fn code(&self) -> ErrorCode {
        match self {
            GroupError::UnknownMemberId(_) => ErrorCode::UnknownMemberId,
            GroupError::IllegalGeneration { .. } | GroupError::NotAssigned { .. } => {
                ErrorCode::IllegalGeneration
            }
            GroupError::RebalanceInProgress { .. } => ErrorCode::RebalanceInProgress,
            GroupError::UnknownTopicOrPartition(_) => ErrorCode::UnknownTopicOrPartition,
            GroupError::UnstableOffsetCommit { .. } => ErrorCode::UnstableOffsetCommit,
            GroupError::InvalidProducerEpoch { .. } => ErrorCode::InvalidProducerEpoch,
            GroupError::ProducerFenced { .. } => ErrorCode::ProducerFenced,
            GroupError::TooManyPendingTransactions => ErrorCode::ConcurrentTransactions,
            GroupError::InvalidRequest(_) => ErrorCode::InvalidRequest,
            GroupError::Storage(_) => ErrorCode::UnknownServerError,
        }
    }
}
