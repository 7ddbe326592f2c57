//! The coordinator's state machine. The crate docs describe the protocol; this module is the
//! code, in the order a transaction goes through it: open, init, add partitions and offsets,
//! commit or abort, markers, completion, alarms.
//!
//! What lives where:
//!
//! - In SQLite (the source of truth, see `store.rs`): the producer id, the epochs, the state,
//!   the participants, and where each group's offset commits stand.
//! - In memory only (lost on restart, by design): the calls in flight, the client requests
//!   waiting for an answer, which partitions acknowledged their registration, which participants
//!   acknowledged their marker, and the retry schedule of markers. After a restart nobody waits
//!   (the clients' HTTP requests died with the object), a retried add registers again and every
//!   marker of a Prepare state is due at once; registrations and markers are idempotent at the
//!   participants, so nothing in memory is needed for correctness.

use std::collections::{BTreeMap, BTreeSet};

use kafdo_sql::{Sql, MAX_SAFE_INTEGER};
use kafdo_types::api::{InitProducerRequest, InitProducerResponse};
use kafdo_types::limits::valid_topic_name;
use kafdo_types::rpc::{
    GroupTxnMarkerRequest, PartitionRef, RegisterTxnRequest, TxnOffsetCommitRequest, TxnResult,
    WriteMarkerRequest,
};
use kafdo_types::txn::{
    valid_group_id, valid_transactional_id, AddOffsetsRequest, CoordinatorAddPartitions,
    EndTxnRequest, EndTxnResponse, HeldPartition, OpenTransaction, TopicPartition,
    TransactionDescription, TransactionState, DEFAULT_TRANSACTION_TIMEOUT_MS, MAX_GROUPS_PER_TXN,
    MAX_GROUP_ID_LEN, MAX_OFFSETS_PER_ADD, MAX_PARTITIONS_PER_ADD, MAX_PARTITIONS_PER_TXN,
    MAX_TRANSACTION_TIMEOUT_MS,
};
use kafdo_types::ErrorCode;

use crate::store::{self, EndReason, Key, OffsetsCall, Participant, TxnRow};
use crate::{
    Answer, Call, CallError, CallId, CallReply, CoordinatorConfig, Output, RequestId, TxnError,
    CALL_TIMEOUT_MS, MARKER_RETRY_BASE_MS, MARKER_RETRY_MAX_MS, MAX_PENDING_REQUESTS,
    MAX_PRODUCER_EPOCH,
};

use TransactionState::*;

/// The transaction coordinator of one `transactional_id`. See the crate docs.
pub struct TxnCoordinator<S: Sql> {
    sql: S,
    config: CoordinatorConfig,
    /// A copy of the stored row; changed only after the write that changes storage succeeded.
    row: TxnRow,
    /// A copy of the stored participants of the current or last transaction.
    participants: BTreeMap<Key, Participant>,
    next_seq: u32,
    calls: BTreeMap<CallId, InFlight>,
    /// Client requests waiting for calls or for the transaction to complete, in arrival order.
    waiters: Vec<Waiter>,
    /// In Prepare states: the participants whose marker is not acknowledged yet.
    markers: BTreeMap<Key, MarkerRetry>,
    /// The partitions that acknowledged their registration in this transaction (in memory
    /// only: after a restart a retried add registers again, which the partition allows).
    registered: BTreeSet<Key>,
}

#[derive(Clone, Debug)]
struct InFlight {
    sent_ms: i64,
    kind: CallKind,
}

#[derive(Clone, Debug)]
enum CallKind {
    AllocateProducerId,
    Register {
        key: Key,
        txn: TxnKey,
    },
    Offsets {
        group_id: String,
        txn: TxnKey,
        undo: Box<OffsetsUndo>,
    },
    Marker {
        key: Key,
        txn: TxnKey,
    },
}

/// What an offset commit the group refuses takes back (a refusal means the group wrote
/// nothing): the group, if the call added it, and the transaction, if the call began it and
/// nothing joined since. A refused request changes nothing, so it can neither use up one of a
/// transaction's groups nor leave a transaction open to time out and fence its producer.
#[derive(Clone, Debug)]
struct OffsetsUndo {
    /// The group was not in the transaction before the call.
    new_group: bool,
    /// The call began the transaction: the row and participants before it.
    began: Option<(TxnRow, BTreeMap<Key, Participant>)>,
}

/// The transaction a call belongs to: (producer id, epoch, number). The producer id is part of
/// it since a transactional id moves to a new one when its epochs are spent, and epochs start
/// again; the number since a transaction-version-1 producer keeps its epoch across transactions.
type TxnKey = (i64, i32, i64);

#[derive(Clone, Debug)]
struct MarkerRetry {
    in_flight: Option<CallId>,
    attempts: u32,
    next_ms: i64,
}

#[derive(Clone, Debug)]
enum Waiter {
    /// An init waiting for the metadata object to allocate the producer id (the first one, or
    /// a new one once the epochs of the current one are spent).
    InitNeedsPid {
        request: RequestId,
        transaction_timeout_ms: i64,
    },
    /// An init that already bumped the epoch, waiting for the open transaction to complete.
    InitAfterEnd {
        request: RequestId,
        producer_epoch: i32,
    },
    /// Add partitions, waiting for the partitions' registration acknowledgements.
    AddPartitions {
        request: RequestId,
        pending: BTreeSet<Key>,
    },
    /// Add offsets, waiting for the group.
    AddOffsets { request: RequestId, call: CallId },
    /// Commit, abort or admin abort, waiting for every marker; answers with `producer_epoch`.
    End {
        request: RequestId,
        producer_epoch: i32,
    },
    /// A completed commit or abort whose requester owns the current epoch, which is spent:
    /// waiting for the new producer id it goes on with.
    EndNeedsPid { request: RequestId },
}

/// How a request's epoch relates to the coordinator's.
enum EpochCheck {
    /// The current epoch.
    Current,
    /// The epoch of the transaction that is ending or just ended (the coordinator bumped the
    /// epoch when it ended it): the request is a retry or a late arrival.
    Ended,
}

fn reply(out: &mut Vec<Output>, request: RequestId, result: Result<Answer, TxnError>) {
    out.push(Output::Reply { request, result });
}

/// Turns the result of a request's step into outputs: a request error becomes the request's
/// answer, a storage error goes up to the adapter.
fn finish(
    mut out: Vec<Output>,
    request: RequestId,
    result: Result<(), TxnError>,
) -> Result<Vec<Output>, TxnError> {
    match result {
        Ok(()) => Ok(out),
        Err(TxnError::Storage(e)) => Err(TxnError::Storage(e)),
        Err(e) => {
            reply(&mut out, request, Err(e));
            Ok(out)
        }
    }
}

fn next_epoch(epoch: i32) -> i32 {
    assert!(
        epoch < MAX_PRODUCER_EPOCH,
        "producer epoch {epoch} reached the limit {MAX_PRODUCER_EPOCH}"
    );
    epoch + 1
}

/// Moves `row` to its new producer id, if its epochs moved to one: epoch 0, nothing fenced.
/// The old id is remembered as retired.
fn adopt_next_producer_id(row: &mut TxnRow) {
    if let Some(producer_id) = row.next_producer_id.take() {
        row.previous_producer_id = row.producer_id;
        row.producer_id = Some(producer_id);
        row.producer_epoch = 0;
        row.fence_epoch = 0;
    }
}

fn complete_state(result: TxnResult) -> TransactionState {
    match result {
        TxnResult::Commit => CompleteCommit,
        TxnResult::Abort => CompleteAbort,
    }
}

fn call_error(error: CallError) -> TxnError {
    match error {
        CallError::Refused(e) => TxnError::Participant(e),
        CallError::NoAnswer(reason) => TxnError::NoAnswer(reason),
    }
}

/// The delay before the next attempt at a marker that failed `attempts` times (at least once).
fn marker_backoff_ms(attempts: u32) -> i64 {
    assert!(attempts >= 1);
    (MARKER_RETRY_BASE_MS << (attempts - 1).min(20)).min(MARKER_RETRY_MAX_MS)
}

impl<S: Sql> TxnCoordinator<S> {
    /// Opens the coordinator of `transactional_id` on its storage: creates the tables on first
    /// use, loads the state, and counts the incarnation. Called when the object starts (and by
    /// tests to model a restart: memory lost, SQLite kept). A transaction found in a Prepare
    /// state has all its unacknowledged markers due at `now_ms`: set the alarm.
    pub fn open(sql: S, transactional_id: &str, now_ms: i64) -> Result<Self, TxnError> {
        Self::open_with_config(sql, transactional_id, now_ms, CoordinatorConfig::default())
    }

    /// [`TxnCoordinator::open`] with tunables other than the defaults.
    pub fn open_with_config(
        sql: S,
        transactional_id: &str,
        now_ms: i64,
        config: CoordinatorConfig,
    ) -> Result<Self, TxnError> {
        assert!(
            (2..=MAX_PRODUCER_EPOCH - 2).contains(&config.roll_epoch),
            "roll_epoch {} leaves no room below {MAX_PRODUCER_EPOCH}",
            config.roll_epoch
        );
        assert!(
            valid_transactional_id(transactional_id),
            "the adapter checks transactional ids: {transactional_id:?}"
        );
        let (row, participants) = sql.transaction(|| -> Result<_, TxnError> {
            store::create_schema(&sql)?;
            let mut row = match store::load_row(&sql)? {
                Some(row) => {
                    assert_eq!(
                        row.transactional_id, transactional_id,
                        "an object serves one transactional id"
                    );
                    row
                }
                None => TxnRow {
                    transactional_id: transactional_id.to_owned(),
                    producer_id: None,
                    producer_epoch: -1,
                    fence_epoch: -1,
                    state: Empty,
                    txn_epoch: -1,
                    end_reason: None,
                    transaction_timeout_ms: DEFAULT_TRANSACTION_TIMEOUT_MS,
                    txn_start_ms: None,
                    state_ms: now_ms,
                    incarnation: 0,
                    next_producer_id: None,
                    previous_producer_id: None,
                    txn_seq: 0,
                },
            };
            row.incarnation = row
                .incarnation
                .checked_add(1)
                .expect("incarnations fit in u32");
            store::save_row(&sql, &row)?;
            let mut participants = store::load_participants(&sql)?;
            // An offset commit in flight when the object stopped may still land: its outcome is
            // unknown now.
            for (key, participant) in &mut participants {
                if participant.offsets == OffsetsCall::InFlight {
                    participant.offsets = OffsetsCall::Unknown;
                    store::save_participant(&sql, key, participant)?;
                }
            }
            Ok((row, participants))
        })?;
        let mut core = Self {
            sql,
            config,
            row,
            participants: participants.into_iter().collect(),
            next_seq: 1,
            calls: BTreeMap::new(),
            waiters: Vec::new(),
            markers: BTreeMap::new(),
            registered: BTreeSet::new(),
        };
        if matches!(core.row.state, PrepareCommit | PrepareAbort) {
            core.schedule_markers(now_ms);
        }
        core.check_invariants();
        Ok(core)
    }

    /// Gives the storage back (the simulator and tests drop the core this way to restart it).
    pub fn into_sql(self) -> S {
        self.sql
    }

    /// The storage, for inspection (tests and the simulator read the tables).
    pub fn sql(&self) -> &S {
        &self.sql
    }

    /// The transactional id this coordinator serves.
    pub fn transactional_id(&self) -> &str {
        &self.row.transactional_id
    }

    /// The state of the current or last transaction.
    pub fn state(&self) -> TransactionState {
        self.row.state
    }

    /// The producer id, once allocated.
    pub fn producer_id(&self) -> Option<i64> {
        self.row.producer_id
    }

    /// The number of the open, ending or last ended transaction (0 before the first): with the
    /// producer id and epoch, what names it at the partitions.
    pub fn txn_seq(&self) -> i64 {
        self.row.txn_seq
    }

    /// The current epoch (`-1` before the first init).
    pub fn producer_epoch(&self) -> i32 {
        self.row.producer_epoch
    }

    /// `POST /v1/producers` with this transactional id. Answers the producer id and a new epoch,
    /// which fences every older instance. An open transaction is aborted first (a transaction
    /// already past its commit point is committed first); the answer waits for it. The first
    /// init asks the metadata object for the producer id ([`Call::AllocateProducerId`]).
    pub fn init_producer(
        &mut self,
        request: RequestId,
        req: &InitProducerRequest,
        now_ms: i64,
    ) -> Result<Vec<Output>, TxnError> {
        let mut out = Vec::new();
        let result = self.try_init_producer(request, req, now_ms, &mut out);
        self.check_invariants_unless_storage_failed(&result);
        finish(out, request, result)
    }

    fn try_init_producer(
        &mut self,
        request: RequestId,
        req: &InitProducerRequest,
        now_ms: i64,
        out: &mut Vec<Output>,
    ) -> Result<(), TxnError> {
        if req.transactional_id.as_deref() != Some(self.row.transactional_id.as_str()) {
            return Err(TxnError::InvalidRequest(format!(
                "this coordinator serves transactional id {:?}, not {:?}",
                self.row.transactional_id, req.transactional_id
            )));
        }
        let transaction_timeout_ms = req
            .transaction_timeout_ms
            .unwrap_or(DEFAULT_TRANSACTION_TIMEOUT_MS);
        if !(1..=MAX_TRANSACTION_TIMEOUT_MS).contains(&transaction_timeout_ms) {
            return Err(TxnError::InvalidRequest(format!(
                "transaction_timeout_ms must be in 1..={MAX_TRANSACTION_TIMEOUT_MS}, not \
                 {transaction_timeout_ms}"
            )));
        }
        self.check_not_busy()?;
        if self.init_needs_producer_id() {
            self.allocate_producer_id(now_ms, out);
            self.waiters.push(Waiter::InitNeedsPid {
                request,
                transaction_timeout_ms,
            });
            return Ok(());
        }
        self.init(request, transaction_timeout_ms, now_ms, out)
    }

    /// The init proper, once the producer id is known.
    fn init(
        &mut self,
        request: RequestId,
        transaction_timeout_ms: i64,
        now_ms: i64,
        out: &mut Vec<Output>,
    ) -> Result<(), TxnError> {
        assert!(
            self.row.producer_id.is_some(),
            "init runs with a producer id"
        );
        match self.row.state {
            Ongoing => {
                // Rule 1: fence the old instance and abort its transaction before answering.
                // One bump serves both (KAFKA-19367: bumping twice is needless).
                let producer_epoch = self.prepare(
                    PrepareAbort,
                    EndReason::Fence,
                    Some(transaction_timeout_ms),
                    false,
                    now_ms,
                    out,
                )?;
                self.waiters.push(Waiter::InitAfterEnd {
                    request,
                    producer_epoch,
                });
                self.start_markers(now_ms, out)?;
            }
            PrepareCommit | PrepareAbort => {
                if self.row.producer_epoch >= MAX_PRODUCER_EPOCH {
                    // No epoch left to fence with: the new producer id comes once this
                    // transaction completes.
                    return Err(self.concurrent());
                }
                // The outcome is already decided; fence now, answer once it is complete.
                let mut next = self.row.clone();
                next.producer_epoch = next_epoch(self.row.producer_epoch);
                next.fence_epoch = next.producer_epoch;
                next.transaction_timeout_ms = transaction_timeout_ms;
                let producer_epoch = next.producer_epoch;
                self.persist_row(next)?;
                self.waiters.push(Waiter::InitAfterEnd {
                    request,
                    producer_epoch,
                });
                self.drive_markers(now_ms, out);
            }
            Empty | CompleteCommit | CompleteAbort => {
                let mut next = self.row.clone();
                adopt_next_producer_id(&mut next);
                assert!(
                    next.producer_epoch + 1 < self.config.roll_epoch,
                    "an init moves to a new producer id before it would hand out a spent epoch"
                );
                next.producer_epoch = next_epoch(next.producer_epoch);
                next.fence_epoch = next.producer_epoch;
                next.transaction_timeout_ms = transaction_timeout_ms;
                next.state = Empty;
                next.state_ms = now_ms;
                next.txn_start_ms = None;
                self.sql.transaction(|| -> Result<(), TxnError> {
                    store::save_row(&self.sql, &next)?;
                    store::delete_participants(&self.sql)?;
                    Ok(())
                })?;
                let answer = InitProducerResponse {
                    producer_id: next.producer_id.expect("init runs with a producer id"),
                    producer_epoch: next.producer_epoch,
                };
                self.row = next;
                self.participants.clear();
                self.registered.clear();
                reply(out, request, Ok(Answer::Producer(answer)));
            }
        }
        Ok(())
    }

    /// `POST /v1/transactions/{id}/partitions`, with topics resolved to their incarnations.
    /// Registers the (producer id, epoch) with every new partition first (KIP-890 part 1); the
    /// answer waits for every acknowledgement. The first add of an epoch begins the transaction.
    pub fn add_partitions(
        &mut self,
        request: RequestId,
        req: &CoordinatorAddPartitions,
        now_ms: i64,
    ) -> Result<Vec<Output>, TxnError> {
        let mut out = Vec::new();
        let result = self.try_add_partitions(request, req, now_ms, &mut out);
        self.check_invariants_unless_storage_failed(&result);
        finish(out, request, result)
    }

    fn try_add_partitions(
        &mut self,
        request: RequestId,
        req: &CoordinatorAddPartitions,
        now_ms: i64,
        out: &mut Vec<Output>,
    ) -> Result<(), TxnError> {
        if req.partitions.is_empty() || req.partitions.len() > MAX_PARTITIONS_PER_ADD {
            return Err(TxnError::InvalidRequest(format!(
                "a request adds 1 to {MAX_PARTITIONS_PER_ADD} partitions, not {}",
                req.partitions.len()
            )));
        }
        if let Some(bad) = req
            .partitions
            .iter()
            .find(|p| !valid_topic_name(&p.topic) || p.topic_id.is_empty() || p.partition < 0)
        {
            return Err(TxnError::InvalidRequest(format!(
                "invalid partition {:?}/{}",
                bad.topic, bad.partition
            )));
        }
        self.check_open_for_add(req.producer_id, req.producer_epoch)?;
        let requested: BTreeMap<Key, &PartitionRef> = req
            .partitions
            .iter()
            .map(|p| (Participant::key_of(p), p))
            .collect();
        let begin = self.row.state != Ongoing;
        let new: Vec<(Key, Participant)> = requested
            .iter()
            .filter(|(key, _)| begin || !self.participants.contains_key(key))
            .map(|(key, p)| {
                let participant = Participant {
                    partition: Some((*p).clone()),
                    offsets: OffsetsCall::Settled,
                    offsets_sequence: 0,
                };
                (key.clone(), participant)
            })
            .collect();
        let existing = if begin {
            0
        } else {
            self.participants
                .keys()
                .filter(|k| matches!(k, Key::Partition { .. }))
                .count()
        };
        if existing + new.len() > MAX_PARTITIONS_PER_TXN {
            return Err(TxnError::InvalidRequest(format!(
                "a transaction writes to at most {MAX_PARTITIONS_PER_TXN} partitions"
            )));
        }
        self.check_not_busy()?;
        self.begin_and_add(begin, &new, now_ms)?;

        // Register every partition that has not acknowledged yet; one call per partition at a
        // time, shared by every request that waits for it.
        let txn = self.current_txn();
        let mut pending = BTreeSet::new();
        for key in requested.keys() {
            if self.registered.contains(key) {
                continue;
            }
            pending.insert(key.clone());
            let in_flight = self.calls.values().any(|c| {
                matches!(&c.kind, CallKind::Register { key: k, txn: t } if k == key && *t == txn)
            });
            if !in_flight {
                let call = Call::RegisterTxn(RegisterTxnRequest {
                    partition: self.participants[key]
                        .partition
                        .clone()
                        .expect("a partition participant has its reference"),
                    transactional_id: self.row.transactional_id.clone(),
                    producer_id: txn.0,
                    producer_epoch: txn.1,
                    txn_seq: txn.2,
                });
                let kind = CallKind::Register {
                    key: key.clone(),
                    txn,
                };
                self.send(out, now_ms, kind, call);
            }
        }
        if pending.is_empty() {
            reply(out, request, Ok(Answer::PartitionsAdded));
        } else {
            self.waiters
                .push(Waiter::AddPartitions { request, pending });
        }
        Ok(())
    }

    /// `POST /v1/transactions/{id}/offsets`: adds the group to the transaction (persisted first,
    /// so it gets a marker whatever happens next), then forwards the offsets to the group, which
    /// fences them by generation and member id (KIP-447) and holds them as pending until the
    /// marker. The answer is the group's.
    pub fn add_offsets(
        &mut self,
        request: RequestId,
        req: &AddOffsetsRequest,
        now_ms: i64,
    ) -> Result<Vec<Output>, TxnError> {
        let mut out = Vec::new();
        let result = self.try_add_offsets(request, req, now_ms, &mut out);
        self.check_invariants_unless_storage_failed(&result);
        finish(out, request, result)
    }

    fn try_add_offsets(
        &mut self,
        request: RequestId,
        req: &AddOffsetsRequest,
        now_ms: i64,
        out: &mut Vec<Output>,
    ) -> Result<(), TxnError> {
        if !valid_group_id(&req.group_id) {
            return Err(TxnError::InvalidRequest(format!(
                "invalid group id {:?}",
                req.group_id
            )));
        }
        if req.member_id.len() > MAX_GROUP_ID_LEN {
            return Err(TxnError::InvalidRequest(format!(
                "a member id is at most {MAX_GROUP_ID_LEN} bytes"
            )));
        }
        if req.offsets.is_empty() || req.offsets.len() > MAX_OFFSETS_PER_ADD {
            return Err(TxnError::InvalidRequest(format!(
                "a request commits 1 to {MAX_OFFSETS_PER_ADD} offsets, not {}",
                req.offsets.len()
            )));
        }
        if let Some(bad) = req
            .offsets
            .iter()
            .find(|o| !valid_topic_name(&o.topic) || o.partition < 0 || o.offset < 0)
        {
            return Err(TxnError::InvalidRequest(format!(
                "invalid offset {} for {:?}/{}",
                bad.offset, bad.topic, bad.partition
            )));
        }
        self.check_open_for_add(req.producer_id, req.producer_epoch)?;
        let key = Key::Group(req.group_id.clone());
        let begin = self.row.state != Ongoing;
        let existing = if begin {
            None
        } else {
            self.participants.get(&key).cloned()
        };
        match existing.as_ref().map(|p| p.offsets) {
            // One at a time per group, so they land in the order they were sent.
            Some(OffsetsCall::InFlight) => {
                return Err(TxnError::ConcurrentTransactions(format!(
                    "an offset commit to group {:?} is in flight",
                    req.group_id
                )));
            }
            // A new call, numbered after the unknown one: if that one lands late, the group
            // keeps this one's offsets.
            Some(OffsetsCall::Unknown | OffsetsCall::Settled) => {}
            None => {
                let groups = if begin {
                    0
                } else {
                    self.participants
                        .keys()
                        .filter(|k| matches!(k, Key::Group(_)))
                        .count()
                };
                if groups >= MAX_GROUPS_PER_TXN {
                    return Err(TxnError::InvalidRequest(format!(
                        "a transaction commits offsets to at most {MAX_GROUPS_PER_TXN} groups"
                    )));
                }
            }
        }
        self.check_not_busy()?;
        let undo = Box::new(OffsetsUndo {
            new_group: existing.is_none(),
            began: begin.then(|| (self.row.clone(), self.participants.clone())),
        });
        // Persisted before the call goes out: the group gets a marker whatever happens next,
        // and a restart finds the call's outcome unknown.
        let sequence = existing.as_ref().map_or(0, |p| p.offsets_sequence) + 1;
        let participant = Participant {
            partition: None,
            offsets: OffsetsCall::InFlight,
            offsets_sequence: sequence,
        };
        self.begin_and_add(begin, &[(key, participant)], now_ms)?;
        let txn = self.current_txn();
        assert_eq!(txn.0, req.producer_id, "checked");
        let call = Call::TxnOffsetCommit(TxnOffsetCommitRequest {
            group_id: req.group_id.clone(),
            transactional_id: self.row.transactional_id.clone(),
            producer_id: txn.0,
            producer_epoch: txn.1,
            generation_id: req.generation_id,
            member_id: req.member_id.clone(),
            offsets: req.offsets.clone(),
            sequence,
        });
        let kind = CallKind::Offsets {
            group_id: req.group_id.clone(),
            txn,
            undo,
        };
        let call = self.send(out, now_ms, kind, call);
        self.waiters.push(Waiter::AddOffsets { request, call });
        Ok(())
    }

    /// Checks that a request may add to the transaction of its epoch.
    fn check_open_for_add(&self, producer_id: i64, producer_epoch: i32) -> Result<(), TxnError> {
        match self.check_producer(producer_id, producer_epoch)? {
            EpochCheck::Ended if self.row.end_reason == Some(EndReason::Timeout) => {
                Err(TxnError::TransactionTimedOut { producer_epoch })
            }
            EpochCheck::Ended if matches!(self.row.state, PrepareCommit | PrepareAbort) => {
                Err(self.concurrent())
            }
            EpochCheck::Ended => Err(TxnError::InvalidProducerEpoch {
                producer_epoch,
                current_epoch: self.row.producer_epoch,
            }),
            EpochCheck::Current if matches!(self.row.state, PrepareCommit | PrepareAbort) => {
                Err(self.concurrent())
            }
            EpochCheck::Current => Ok(()),
        }
    }

    /// Persists new participants, beginning the transaction first when none is open, in one
    /// storage transaction.
    fn begin_and_add(
        &mut self,
        begin: bool,
        new: &[(Key, Participant)],
        now_ms: i64,
    ) -> Result<(), TxnError> {
        let mut next = self.row.clone();
        if begin {
            assert!(self.markers.is_empty());
            adopt_next_producer_id(&mut next);
            next.state = Ongoing;
            next.txn_epoch = next.producer_epoch;
            next.txn_seq += 1;
            next.txn_start_ms = Some(now_ms);
            next.state_ms = now_ms;
            next.end_reason = None;
        }
        self.sql.transaction(|| -> Result<(), TxnError> {
            if begin {
                store::save_row(&self.sql, &next)?;
                store::delete_participants(&self.sql)?;
            }
            for (key, participant) in new {
                store::save_participant(&self.sql, key, participant)?;
            }
            Ok(())
        })?;
        if begin {
            self.row = next;
            self.participants.clear();
            self.registered.clear();
        }
        self.participants.extend(new.iter().cloned());
        Ok(())
    }

    /// `POST /v1/transactions/{id}/commit` (`TxnResult::Commit`) or `.../abort`. Persists
    /// PrepareCommit (the commit point) or PrepareAbort with the next epoch, then writes markers
    /// to every participant; answers once all acknowledged, with the next epoch. A retry after
    /// completion with the same epoch answers the same; a retry while markers are being written
    /// gets `CONCURRENT_TRANSACTIONS`. A commit or abort with no transaction open succeeds and
    /// changes nothing.
    pub fn end_txn(
        &mut self,
        request: RequestId,
        req: &EndTxnRequest,
        result: TxnResult,
        now_ms: i64,
    ) -> Result<Vec<Output>, TxnError> {
        let mut out = Vec::new();
        let r = self.try_end_txn(request, req, result, now_ms, &mut out);
        self.check_invariants_unless_storage_failed(&r);
        finish(out, request, r)
    }

    fn try_end_txn(
        &mut self,
        request: RequestId,
        req: &EndTxnRequest,
        result: TxnResult,
        now_ms: i64,
        out: &mut Vec<Output>,
    ) -> Result<(), TxnError> {
        if let EpochCheck::Ended = self.check_producer(req.producer_id, req.producer_epoch)? {
            return self.answer_ended(request, req.producer_epoch, result, now_ms, out);
        }
        match self.row.state {
            PrepareCommit | PrepareAbort => Err(self.concurrent()),
            CompleteCommit | CompleteAbort if self.kept_epoch() => {
                // The last transaction ended keeping this epoch (transaction version 1): this
                // is a retry of its end, answered from what it became.
                if complete_state(result) != self.row.state {
                    return Err(TxnError::InvalidTxnState(format!(
                        "the last transaction of epoch {} is {}: it cannot {}",
                        self.row.txn_epoch,
                        self.row.state,
                        match result {
                            TxnResult::Commit => "commit",
                            TxnResult::Abort => "abort",
                        }
                    )));
                }
                let answer = self.ended_answer(self.row.state);
                reply(out, request, Ok(Answer::Ended(answer)));
                Ok(())
            }
            Empty | CompleteCommit | CompleteAbort => {
                // Nothing was added with this epoch: there is nothing to end, so nothing is
                // written and the epoch is not spent.
                let answer = self.ended_answer(complete_state(result));
                reply(out, request, Ok(Answer::Ended(answer)));
                Ok(())
            }
            Ongoing => {
                // A registration or offset commit still in flight could land after the marker;
                // the client has not seen it succeed, so it must not end the transaction yet.
                let txn = self.current_txn();
                let adding = self.calls.values().any(|c| match c.kind {
                    CallKind::Register { txn: t, .. } | CallKind::Offsets { txn: t, .. } => {
                        t == txn
                    }
                    CallKind::AllocateProducerId | CallKind::Marker { .. } => false,
                });
                if adding {
                    return Err(TxnError::ConcurrentTransactions(
                        "a registration or offset commit of this transaction is in flight".into(),
                    ));
                }
                if result == TxnResult::Commit {
                    let unknown = self.participants.iter().find_map(|(key, p)| match key {
                        Key::Group(group_id) if p.offsets == OffsetsCall::Unknown => {
                            Some(group_id.clone())
                        }
                        _ => None,
                    });
                    if let Some(group_id) = unknown {
                        return Err(self.offsets_unknown(&group_id));
                    }
                }
                if req.keep_epoch && self.participants.keys().any(|k| matches!(k, Key::Group(_))) {
                    return Err(TxnError::InvalidRequest(
                        "keep_epoch (transaction version 1) cannot end a transaction that holds \
                         consumer-group offsets: end it without keep_epoch"
                            .into(),
                    ));
                }
                self.check_not_busy()?;
                let state = match result {
                    TxnResult::Commit => PrepareCommit,
                    TxnResult::Abort => PrepareAbort,
                };
                let producer_epoch =
                    self.prepare(state, EndReason::Client, None, req.keep_epoch, now_ms, out)?;
                self.waiters.push(Waiter::End {
                    request,
                    producer_epoch,
                });
                self.start_markers(now_ms, out)
            }
        }
    }

    /// Answers a commit or abort that names the epoch of the transaction that is ending or
    /// just ended: a retry (rule 8) or a late arrival.
    fn answer_ended(
        &mut self,
        request: RequestId,
        producer_epoch: i32,
        result: TxnResult,
        now_ms: i64,
        out: &mut Vec<Output>,
    ) -> Result<(), TxnError> {
        let state = self.row.state;
        let reason = self
            .row
            .end_reason
            .expect("an ended transaction has a reason");
        // Fences and admin aborts raise the fence epoch past the transaction's epoch, so
        // requests of that epoch never get here.
        assert!(matches!(reason, EndReason::Client | EndReason::Timeout));
        match (state, result) {
            (_, TxnResult::Commit) if reason == EndReason::Timeout => {
                Err(TxnError::TransactionTimedOut { producer_epoch })
            }
            (PrepareCommit, TxnResult::Commit) | (PrepareAbort, TxnResult::Abort) => {
                Err(self.concurrent())
            }
            (CompleteCommit, TxnResult::Commit) | (CompleteAbort, TxnResult::Abort) => {
                if self.needs_new_producer_id() {
                    self.allocate_producer_id(now_ms, out);
                    self.waiters.push(Waiter::EndNeedsPid { request });
                    return Ok(());
                }
                let answer = self.ended_answer(state);
                reply(out, request, Ok(Answer::Ended(answer)));
                Ok(())
            }
            _ => Err(TxnError::InvalidTxnState(format!(
                "the transaction of epoch {producer_epoch} is {state}: it cannot {}",
                match result {
                    TxnResult::Commit => "commit",
                    TxnResult::Abort => "abort",
                }
            ))),
        }
    }

    /// The admin abort of the open transaction: fences the instance (the producer is presumed
    /// gone; a live one must init again) and aborts. Answers once complete, with the final state:
    /// a transaction already past its commit point completes as CompleteCommit, and with no open
    /// transaction the answer is the current state, unchanged.
    pub fn admin_abort(
        &mut self,
        request: RequestId,
        now_ms: i64,
    ) -> Result<Vec<Output>, TxnError> {
        let mut out = Vec::new();
        let result = self.try_admin_abort(request, now_ms, &mut out);
        self.check_invariants_unless_storage_failed(&result);
        finish(out, request, result)
    }

    fn try_admin_abort(
        &mut self,
        request: RequestId,
        now_ms: i64,
        out: &mut Vec<Output>,
    ) -> Result<(), TxnError> {
        match self.row.state {
            Ongoing => {
                self.check_not_busy()?;
                let producer_epoch =
                    self.prepare(PrepareAbort, EndReason::Admin, None, false, now_ms, out)?;
                self.waiters.push(Waiter::End {
                    request,
                    producer_epoch,
                });
                self.start_markers(now_ms, out)
            }
            PrepareCommit | PrepareAbort => {
                self.check_not_busy()?;
                self.waiters.push(Waiter::End {
                    request,
                    producer_epoch: self.row.producer_epoch,
                });
                self.drive_markers(now_ms, out);
                Ok(())
            }
            Empty | CompleteCommit | CompleteAbort => {
                let answer = self.ended_answer(self.row.state);
                reply(out, request, Ok(Answer::Ended(answer)));
                Ok(())
            }
        }
    }

    /// Moves the open transaction to PrepareCommit or PrepareAbort with the next epoch (the
    /// same one with `keep_epoch`, a client's end in transaction version 1), and fails the
    /// requests still adding to it. For a commit this write is the commit point. Returns the
    /// epoch to go on with; the caller then starts the markers.
    fn prepare(
        &mut self,
        state: TransactionState,
        reason: EndReason,
        transaction_timeout_ms: Option<i64>,
        keep_epoch: bool,
        now_ms: i64,
        out: &mut Vec<Output>,
    ) -> Result<i32, TxnError> {
        assert_eq!(self.row.state, Ongoing);
        assert!(matches!(state, PrepareCommit | PrepareAbort));
        assert!(state == PrepareAbort || reason == EndReason::Client);
        assert!(self.markers.is_empty());
        assert!(!keep_epoch || reason == EndReason::Client);
        let mut next = self.row.clone();
        next.state = state;
        if !keep_epoch {
            next.producer_epoch = next_epoch(self.row.producer_epoch);
        }
        if matches!(reason, EndReason::Fence | EndReason::Admin) {
            next.fence_epoch = next.producer_epoch;
        }
        if let Some(timeout_ms) = transaction_timeout_ms {
            next.transaction_timeout_ms = timeout_ms;
        }
        next.end_reason = Some(reason);
        next.state_ms = now_ms;
        let producer_epoch = next.producer_epoch;
        self.persist_row(next)?;

        let txn_epoch = self.row.txn_epoch;
        let error = match reason {
            EndReason::Client => TxnError::ConcurrentTransactions("the transaction ended".into()),
            EndReason::Timeout => TxnError::TransactionTimedOut {
                producer_epoch: txn_epoch,
            },
            EndReason::Fence | EndReason::Admin => TxnError::ProducerFenced {
                producer_epoch: txn_epoch,
                fence_epoch: producer_epoch,
            },
        };
        let waiters = std::mem::take(&mut self.waiters);
        for waiter in waiters {
            match waiter {
                Waiter::AddPartitions { request, .. } | Waiter::AddOffsets { request, .. } => {
                    reply(out, request, Err(error.clone()));
                }
                other => self.waiters.push(other),
            }
        }
        Ok(producer_epoch)
    }

    /// Schedules a marker for every participant, due now, and sends them. A transaction with no
    /// participants completes at once.
    fn start_markers(&mut self, now_ms: i64, out: &mut Vec<Output>) -> Result<(), TxnError> {
        self.schedule_markers(now_ms);
        if self.markers.is_empty() {
            return self.complete(now_ms, out);
        }
        self.drive_markers(now_ms, out);
        Ok(())
    }

    fn schedule_markers(&mut self, now_ms: i64) {
        assert!(self.markers.is_empty());
        for key in self.participants.keys() {
            let retry = MarkerRetry {
                in_flight: None,
                attempts: 0,
                next_ms: now_ms,
            };
            self.markers.insert(key.clone(), retry);
        }
    }

    /// Sends every marker that is due and not in flight.
    fn drive_markers(&mut self, now_ms: i64, out: &mut Vec<Output>) {
        let due: Vec<Key> = self
            .markers
            .iter()
            .filter(|(_, m)| m.in_flight.is_none() && m.next_ms <= now_ms)
            .map(|(key, _)| key.clone())
            .collect();
        let result = match self.row.state {
            PrepareCommit => TxnResult::Commit,
            PrepareAbort => TxnResult::Abort,
            other => panic!("markers are only written in Prepare states, not {other}"),
        };
        let producer_id = self
            .row
            .producer_id
            .expect("a transaction has a producer id");
        let (txn_epoch, txn_seq) = (self.row.txn_epoch, self.row.txn_seq);
        for key in due {
            let call = match &key {
                Key::Partition { .. } => Call::WriteMarker(WriteMarkerRequest {
                    partition: self.participants[&key]
                        .partition
                        .clone()
                        .expect("a partition participant has its reference"),
                    producer_id,
                    producer_epoch: txn_epoch,
                    txn_seq,
                    result,
                }),
                Key::Group(group_id) => Call::GroupTxnMarker(GroupTxnMarkerRequest {
                    group_id: group_id.clone(),
                    producer_id,
                    producer_epoch: txn_epoch,
                    result,
                }),
            };
            let kind = CallKind::Marker {
                key: key.clone(),
                txn: (producer_id, txn_epoch, txn_seq),
            };
            let id = self.send(out, now_ms, kind, call);
            self.markers.get_mut(&key).expect("due").in_flight = Some(id);
        }
    }

    /// Every participant acknowledged: persists CompleteCommit or CompleteAbort and answers the
    /// waiting commit, abort and init requests.
    fn complete(&mut self, now_ms: i64, out: &mut Vec<Output>) -> Result<(), TxnError> {
        assert!(self.markers.is_empty());
        let mut next = self.row.clone();
        next.state = match self.row.state {
            PrepareCommit => CompleteCommit,
            PrepareAbort => CompleteAbort,
            other => panic!("only a Prepare state completes, not {other}"),
        };
        next.state_ms = now_ms;
        next.txn_start_ms = None;
        self.persist_row(next)?;
        let producer_id = self
            .row
            .producer_id
            .expect("a transaction has a producer id");
        // Once the epochs are spent, whoever owns the current epoch (the last init, else the
        // ender) goes on with a new producer id; the others are fenced anyway and get their
        // epoch of the old one.
        let spent = self.needs_new_producer_id();
        let current = self.row.producer_epoch;
        for waiter in std::mem::take(&mut self.waiters) {
            match waiter {
                Waiter::End {
                    request,
                    producer_epoch,
                } if spent && producer_epoch == current => {
                    self.waiters.push(Waiter::EndNeedsPid { request });
                }
                Waiter::End {
                    request,
                    producer_epoch,
                } => {
                    let answer = EndTxnResponse {
                        state: self.row.state,
                        producer_id,
                        producer_epoch,
                    };
                    reply(out, request, Ok(Answer::Ended(answer)));
                }
                Waiter::InitAfterEnd {
                    request,
                    producer_epoch,
                } if spent && producer_epoch == current => {
                    self.waiters.push(Waiter::InitNeedsPid {
                        request,
                        transaction_timeout_ms: self.row.transaction_timeout_ms,
                    });
                }
                Waiter::InitAfterEnd {
                    request,
                    producer_epoch,
                } => {
                    let answer = InitProducerResponse {
                        producer_id,
                        producer_epoch,
                    };
                    reply(out, request, Ok(Answer::Producer(answer)));
                }
                // An init that asked for a new producer id before this transaction began (its
                // owner may begin while the init waits) goes on waiting for it.
                waiter @ Waiter::InitNeedsPid { .. } => self.waiters.push(waiter),
                other => panic!("{other:?} cannot wait across the end of a transaction"),
            }
        }
        // Everything still waiting needs a producer id.
        if !self.waiters.is_empty() {
            self.allocate_producer_id(now_ms, out);
        }
        Ok(())
    }

    /// The result of a call the coordinator asked for. Unknown ids (a call the coordinator
    /// already gave up on, or one of an earlier incarnation) are ignored, and so are duplicate
    /// and late results: they change nothing.
    pub fn on_call_result(
        &mut self,
        id: CallId,
        result: Result<CallReply, CallError>,
        now_ms: i64,
    ) -> Result<Vec<Output>, TxnError> {
        let mut out = Vec::new();
        self.call_result(id, result, now_ms, &mut out)?;
        self.check_invariants();
        Ok(out)
    }

    fn call_result(
        &mut self,
        id: CallId,
        result: Result<CallReply, CallError>,
        now_ms: i64,
        out: &mut Vec<Output>,
    ) -> Result<(), TxnError> {
        let Some(call) = self.calls.remove(&id) else {
            return Ok(());
        };
        match call.kind {
            CallKind::AllocateProducerId => self.on_producer_id(result, now_ms, out),
            CallKind::Register { key, txn } => self.on_registered(key, txn, result, out),
            CallKind::Offsets {
                group_id,
                txn,
                undo,
            } => self.on_offsets(id, group_id, txn, *undo, result, out),
            CallKind::Marker { key, txn } => self.on_marker(id, key, txn, result, now_ms, out),
        }
    }

    fn on_producer_id(
        &mut self,
        result: Result<CallReply, CallError>,
        now_ms: i64,
        out: &mut Vec<Output>,
    ) -> Result<(), TxnError> {
        let (waiting, others): (Vec<Waiter>, Vec<Waiter>) = std::mem::take(&mut self.waiters)
            .into_iter()
            .partition(|w| matches!(w, Waiter::InitNeedsPid { .. } | Waiter::EndNeedsPid { .. }));
        self.waiters = others;
        match result {
            Ok(CallReply::ProducerId(producer_id)) => {
                assert!(
                    (0..=MAX_SAFE_INTEGER).contains(&producer_id),
                    "the metadata object allocated producer id {producer_id}"
                );
                let mut next = self.row.clone();
                if self.row.producer_id.is_none() {
                    next.producer_id = Some(producer_id);
                    self.persist_row(next)?;
                } else if self.init_needs_producer_id() {
                    // The epochs of the current producer id are spent, or an init would spend
                    // them: the owner of the current epoch goes on with this one.
                    next.next_producer_id = Some(producer_id);
                    self.persist_row(next)?;
                }
                // Else the old owner began a transaction while an init waited for this id: the
                // init fences it the usual way, and this id is not needed (ids are plentiful).
                // Ends first: an init that waited too fences them, as it would have without
                // the move. Each waiting init gets its own epoch, in arrival order: the last
                // one wins.
                let (ends, inits): (Vec<Waiter>, Vec<Waiter>) = waiting
                    .into_iter()
                    .partition(|w| matches!(w, Waiter::EndNeedsPid { .. }));
                for waiter in ends {
                    // Nothing can begin while the epochs are spent, so the new id is there.
                    assert!(!self.needs_new_producer_id());
                    let Waiter::EndNeedsPid { request } = waiter else {
                        unreachable!()
                    };
                    let answer = self.ended_answer(self.row.state);
                    reply(out, request, Ok(Answer::Ended(answer)));
                }
                for waiter in inits {
                    if self.init_needs_producer_id() {
                        // The inits before this one spent the new producer id's epochs too
                        // (only with a tiny roll_epoch): wait for another.
                        self.allocate_producer_id(now_ms, out);
                        self.waiters.push(waiter);
                        continue;
                    }
                    let Waiter::InitNeedsPid {
                        request,
                        transaction_timeout_ms,
                    } = waiter
                    else {
                        unreachable!()
                    };
                    match self.init(request, transaction_timeout_ms, now_ms, out) {
                        Ok(()) => {}
                        Err(TxnError::Storage(e)) => return Err(TxnError::Storage(e)),
                        Err(e) => reply(out, request, Err(e)),
                    }
                }
                Ok(())
            }
            Ok(other) => panic!("AllocateProducerId answered {other:?}"),
            Err(error) => {
                let error = call_error(error);
                for waiter in waiting {
                    match waiter {
                        Waiter::InitNeedsPid { request, .. } | Waiter::EndNeedsPid { request } => {
                            reply(out, request, Err(error.clone()));
                        }
                        _ => unreachable!(),
                    }
                }
                Ok(())
            }
        }
    }

    fn on_registered(
        &mut self,
        key: Key,
        txn: TxnKey,
        result: Result<CallReply, CallError>,
        out: &mut Vec<Output>,
    ) -> Result<(), TxnError> {
        if self.row.state != Ongoing || self.current_txn() != txn {
            // The transaction ended; its waiting requests were answered then.
            return Ok(());
        }
        let outcome = match result {
            Ok(CallReply::Done) => {
                self.registered.insert(key.clone());
                Ok(())
            }
            Ok(other) => panic!("RegisterTxn answered {other:?}"),
            Err(error) => Err(call_error(error)),
        };
        let mut still_waiting = Vec::new();
        for waiter in std::mem::take(&mut self.waiters) {
            match waiter {
                Waiter::AddPartitions {
                    request,
                    mut pending,
                } if pending.contains(&key) => match &outcome {
                    Ok(()) => {
                        pending.remove(&key);
                        if pending.is_empty() {
                            reply(out, request, Ok(Answer::PartitionsAdded));
                        } else {
                            still_waiting.push(Waiter::AddPartitions { request, pending });
                        }
                    }
                    Err(error) => reply(out, request, Err(error.clone())),
                },
                other => still_waiting.push(other),
            }
        }
        self.waiters = still_waiting;
        Ok(())
    }

    fn on_offsets(
        &mut self,
        id: CallId,
        group_id: String,
        txn: TxnKey,
        undo: OffsetsUndo,
        result: Result<CallReply, CallError>,
        out: &mut Vec<Output>,
    ) -> Result<(), TxnError> {
        let refused = matches!(result, Err(CallError::Refused(_)));
        if self.row.state == Ongoing && self.current_txn() == txn && refused && undo.new_group {
            self.take_back_offsets(Key::Group(group_id), undo.began)?;
        } else if self.row.state == Ongoing && self.current_txn() == txn {
            let key = Key::Group(group_id);
            let mut participant = self.participants[&key].clone();
            assert_eq!(participant.offsets, OffsetsCall::InFlight);
            participant.offsets = match &result {
                Ok(_) | Err(CallError::Refused(_)) => OffsetsCall::Settled,
                Err(CallError::NoAnswer(_)) => OffsetsCall::Unknown,
            };
            store::save_participant(&self.sql, &key, &participant)?;
            self.participants.insert(key, participant);
        }
        let Some(index) = self
            .waiters
            .iter()
            .position(|w| matches!(w, Waiter::AddOffsets { call, .. } if *call == id))
        else {
            // The transaction ended and the request was answered then.
            return Ok(());
        };
        let Waiter::AddOffsets { request, .. } = self.waiters.remove(index) else {
            unreachable!()
        };
        match result {
            Ok(CallReply::Done) => reply(out, request, Ok(Answer::OffsetsAdded)),
            Ok(other) => panic!("TxnOffsetCommit answered {other:?}"),
            Err(error) => reply(out, request, Err(call_error(error))),
        }
        Ok(())
    }

    /// The group `key`, added by an offset commit it refused, holds nothing of the
    /// transaction: it leaves it, and the transaction, if that commit began it and nothing
    /// else joined or is joining, is as it was before (see [`OffsetsUndo`]).
    fn take_back_offsets(
        &mut self,
        key: Key,
        began: Option<(TxnRow, BTreeMap<Key, Participant>)>,
    ) -> Result<(), TxnError> {
        let txn = self.current_txn();
        let joining = self.calls.values().any(|c| match c.kind {
            CallKind::Register { txn: t, .. } | CallKind::Offsets { txn: t, .. } => t == txn,
            CallKind::AllocateProducerId | CallKind::Marker { .. } => false,
        });
        let alone = self.participants.len() == 1 && !joining;
        match began.filter(|_| alone) {
            Some((row, participants)) => {
                self.sql.transaction(|| -> Result<(), TxnError> {
                    store::save_row(&self.sql, &row)?;
                    store::delete_participants(&self.sql)?;
                    for (key, participant) in &participants {
                        store::save_participant(&self.sql, key, participant)?;
                    }
                    Ok(())
                })?;
                self.row = row;
                self.participants = participants;
                self.registered.clear();
            }
            None => {
                store::delete_participant(&self.sql, &key)?;
                self.participants.remove(&key);
            }
        }
        Ok(())
    }

    fn on_marker(
        &mut self,
        id: CallId,
        key: Key,
        txn: TxnKey,
        result: Result<CallReply, CallError>,
        now_ms: i64,
        out: &mut Vec<Output>,
    ) -> Result<(), TxnError> {
        assert!(
            matches!(self.row.state, PrepareCommit | PrepareAbort) && self.current_txn() == txn,
            "a marker call in flight outlives its transaction only if given up on"
        );
        let retry = self
            .markers
            .get_mut(&key)
            .expect("an unacknowledged participant");
        assert_eq!(retry.in_flight, Some(id), "one marker call per participant");
        retry.in_flight = None;
        let acked = match result {
            Ok(CallReply::Marker(_)) => true,
            Ok(other) => panic!("a marker call answered {other:?}"),
            // The participant's object was deleted with its topic or group: nothing is left
            // there to end, and retrying would hold the transaction open for ever.
            Err(CallError::Refused(e)) => matches!(
                e.code,
                ErrorCode::UnknownTopicOrPartition | ErrorCode::GroupIdNotFound
            ),
            Err(CallError::NoAnswer(_)) => false,
        };
        if !acked {
            retry.attempts += 1;
            retry.next_ms = now_ms.saturating_add(marker_backoff_ms(retry.attempts));
            return Ok(());
        }
        self.markers.remove(&key);
        if self.markers.is_empty() {
            return self.complete(now_ms, out);
        }
        Ok(())
    }

    /// The alarm: gives up on calls without an answer for [`CALL_TIMEOUT_MS`], aborts an
    /// Ongoing transaction past its timeout (bumping the epoch), and re-sends due markers. Only
    /// acts on what is due at `now_ms`, so an early, late or repeated alarm is harmless.
    pub fn on_alarm(&mut self, now_ms: i64) -> Result<Vec<Output>, TxnError> {
        let mut out = Vec::new();
        let expired: Vec<CallId> = self
            .calls
            .iter()
            .filter(|(_, c)| c.sent_ms.saturating_add(CALL_TIMEOUT_MS) <= now_ms)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            let error = CallError::NoAnswer(format!("no answer within {CALL_TIMEOUT_MS} ms"));
            self.call_result(id, Err(error), now_ms, &mut out)?;
        }
        if self.row.state == Ongoing && now_ms >= self.timeout_at_ms() {
            // Rule 5: abort with a bumped epoch, so the timed-out producer cannot add to or
            // commit this transaction, and its late writes are refused by the partitions.
            self.prepare(
                PrepareAbort,
                EndReason::Timeout,
                None,
                false,
                now_ms,
                &mut out,
            )?;
            self.start_markers(now_ms, &mut out)?;
        }
        if matches!(self.row.state, PrepareCommit | PrepareAbort) {
            self.drive_markers(now_ms, &mut out);
        }
        self.check_invariants();
        Ok(out)
    }

    fn timeout_at_ms(&self) -> i64 {
        let start_ms = self
            .row
            .txn_start_ms
            .expect("an Ongoing transaction has a start");
        start_ms.saturating_add(self.row.transaction_timeout_ms)
    }

    /// When the adapter should next call [`TxnCoordinator::on_alarm`]: the earliest of the
    /// open transaction's timeout, the next marker attempt, and the deadline of a call in
    /// flight. `None` when nothing is pending. May be in the past (then fire at once).
    pub fn next_alarm_ms(&self) -> Option<i64> {
        let calls = self
            .calls
            .values()
            .map(|c| c.sent_ms.saturating_add(CALL_TIMEOUT_MS));
        let timeout = (self.row.state == Ongoing).then(|| self.timeout_at_ms());
        let markers = self
            .markers
            .values()
            .filter(|m| m.in_flight.is_none())
            .map(|m| m.next_ms);
        calls.chain(timeout).chain(markers).min()
    }

    /// `GET /v1/transactions/{id}`.
    pub fn describe(&self, now_ms: i64) -> TransactionDescription {
        let mut partitions = Vec::new();
        let mut groups = Vec::new();
        for (key, participant) in &self.participants {
            match (key, &participant.partition) {
                (Key::Partition { .. }, Some(p)) => partitions.push(TopicPartition {
                    topic: p.topic.clone(),
                    partition: p.partition,
                }),
                (Key::Group(group_id), _) => groups.push(group_id.clone()),
                (Key::Partition { .. }, None) => unreachable!("partitions keep their reference"),
            }
        }
        partitions.sort();
        TransactionDescription {
            transactional_id: self.row.transactional_id.clone(),
            state: self.row.state,
            producer_id: self.row.producer_id.unwrap_or(-1),
            producer_epoch: self.row.producer_epoch,
            partitions,
            groups,
            transaction_timeout_ms: self.row.transaction_timeout_ms,
            age_ms: self.open_age_ms(now_ms),
        }
    }

    /// The open transaction for the admin list, if one is open or ending (the partitions'
    /// first offsets are the partitions' to fill in).
    pub fn open_transaction(&self, now_ms: i64) -> Option<OpenTransaction> {
        let age_ms = self.open_age_ms(now_ms)?;
        let description = self.describe(now_ms);
        Some(OpenTransaction {
            transactional_id: description.transactional_id,
            producer_id: description.producer_id,
            producer_epoch: self.row.txn_epoch,
            state: self.row.state,
            age_ms,
            partitions: description
                .partitions
                .into_iter()
                .map(|p| HeldPartition {
                    topic: p.topic,
                    partition: p.partition,
                    first_offset: None,
                })
                .collect(),
        })
    }

    fn open_age_ms(&self, now_ms: i64) -> Option<i64> {
        if !self.row.state.is_open() {
            return None;
        }
        let start_ms = self
            .row
            .txn_start_ms
            .expect("an open transaction has a start");
        Some(now_ms.saturating_sub(start_ms).max(0))
    }

    /// Classifies a request's producer id and epoch, refusing fenced, unknown and stale ones.
    fn check_producer(
        &self,
        producer_id: i64,
        producer_epoch: i32,
    ) -> Result<EpochCheck, TxnError> {
        let Some(our_producer_id) = self.row.producer_id else {
            return Err(TxnError::InvalidRequest(format!(
                "transactional id {:?} has no producer yet: POST /v1/producers first",
                self.row.transactional_id
            )));
        };
        if Some(producer_id) == self.row.next_producer_id {
            // The new producer id the epochs moved to: it starts at 0.
            return match producer_epoch {
                0 => Ok(EpochCheck::Current),
                _ => Err(TxnError::InvalidProducerEpoch {
                    producer_epoch,
                    current_epoch: 0,
                }),
            };
        }
        if Some(producer_id) == self.row.previous_producer_id {
            return Err(TxnError::ProducerIdRetired {
                producer_id,
                current_producer_id: our_producer_id,
            });
        }
        if producer_id != our_producer_id {
            return Err(TxnError::InvalidRequest(format!(
                "producer id {producer_id} is not the producer id of transactional id {:?}",
                self.row.transactional_id
            )));
        }
        let row = &self.row;
        if producer_epoch < row.fence_epoch {
            return Err(TxnError::ProducerFenced {
                producer_epoch,
                fence_epoch: row.fence_epoch,
            });
        }
        if producer_epoch == row.producer_epoch {
            let between = matches!(row.state, Empty | CompleteCommit | CompleteAbort);
            if between && (self.spent(row) || row.next_producer_id.is_some()) {
                // Retired: its owner goes on with the new producer id (no correct client uses
                // this epoch; the one that ended the transaction retries with that epoch).
                return Err(TxnError::ProducerFenced {
                    producer_epoch,
                    fence_epoch: producer_epoch,
                });
            }
            return Ok(EpochCheck::Current);
        }
        let ended = matches!(
            row.state,
            PrepareCommit | PrepareAbort | CompleteCommit | CompleteAbort
        );
        if ended && producer_epoch == row.txn_epoch {
            return Ok(EpochCheck::Ended);
        }
        Err(TxnError::InvalidProducerEpoch {
            producer_epoch,
            current_epoch: row.producer_epoch,
        })
    }

    fn offsets_unknown(&self, group_id: &str) -> TxnError {
        TxnError::InvalidTxnState(format!(
            "the last offset commit to group {group_id:?} got no answer and may never land: send \
             the offsets again before committing the transaction of epoch {}, or abort it",
            self.row.txn_epoch
        ))
    }

    fn concurrent(&self) -> TxnError {
        TxnError::ConcurrentTransactions(format!(
            "the transaction of epoch {} is in {}: retry",
            self.row.txn_epoch, self.row.state
        ))
    }

    /// Whether the ending or last ended transaction kept its epoch (a client's end in
    /// transaction version 1): its epoch is still the current one.
    fn kept_epoch(&self) -> bool {
        !matches!(self.row.state, Empty | Ongoing) && self.row.txn_epoch == self.row.producer_epoch
    }

    fn check_not_busy(&self) -> Result<(), TxnError> {
        if self.waiters.len() >= MAX_PENDING_REQUESTS {
            return Err(TxnError::Busy(format!(
                "{MAX_PENDING_REQUESTS} requests are already waiting"
            )));
        }
        Ok(())
    }

    /// Whether `row`'s epochs are spent: a transaction ending now moves to a new producer id.
    fn spent(&self, row: &TxnRow) -> bool {
        row.producer_epoch >= self.config.roll_epoch
    }

    /// Between transactions with the epochs spent and no new producer id yet: one must be
    /// allocated before anything else can go on.
    fn needs_new_producer_id(&self) -> bool {
        self.row.producer_id.is_some()
            && self.row.next_producer_id.is_none()
            && matches!(self.row.state, Empty | CompleteCommit | CompleteAbort)
            && self.spent(&self.row)
    }

    /// Whether an init must first get a producer id: the first one, or a new one when between
    /// transactions the next epoch would be spent (so an init never hands out a spent epoch).
    fn init_needs_producer_id(&self) -> bool {
        self.row.producer_id.is_none()
            || (self.row.next_producer_id.is_none()
                && matches!(self.row.state, Empty | CompleteCommit | CompleteAbort)
                && self.row.producer_epoch + 1 >= self.config.roll_epoch)
    }

    /// The open, ending or last ended transaction.
    fn current_txn(&self) -> TxnKey {
        (
            self.row.producer_id.unwrap_or(-1),
            self.row.txn_epoch,
            self.row.txn_seq,
        )
    }

    /// The producer id and epoch a client goes on with after the last transaction: the new
    /// producer id at epoch 0 once the epochs moved, else the current ones (-1 before any).
    fn next_identity(&self) -> (i64, i32) {
        match self.row.next_producer_id {
            Some(producer_id) => (producer_id, 0),
            None => (self.row.producer_id.unwrap_or(-1), self.row.producer_epoch),
        }
    }

    /// The answer to an end of the last transaction (or of none): `state` and the identity to
    /// go on with.
    fn ended_answer(&self, state: TransactionState) -> EndTxnResponse {
        let (producer_id, producer_epoch) = self.next_identity();
        EndTxnResponse {
            state,
            producer_id,
            producer_epoch,
        }
    }

    /// Asks the metadata object for a producer id, unless a request for one is in flight.
    fn allocate_producer_id(&mut self, now_ms: i64, out: &mut Vec<Output>) {
        let allocating = self
            .calls
            .values()
            .any(|c| matches!(c.kind, CallKind::AllocateProducerId));
        if !allocating {
            self.send(
                out,
                now_ms,
                CallKind::AllocateProducerId,
                Call::AllocateProducerId,
            );
        }
    }

    fn persist_row(&mut self, next: TxnRow) -> Result<(), TxnError> {
        store::save_row(&self.sql, &next)?;
        self.row = next;
        Ok(())
    }

    fn send(&mut self, out: &mut Vec<Output>, now_ms: i64, kind: CallKind, call: Call) -> CallId {
        let id = CallId {
            incarnation: self.row.incarnation,
            seq: self.next_seq,
        };
        self.next_seq = self.next_seq.checked_add(1).expect("call ids fit in u32");
        self.calls.insert(
            id,
            InFlight {
                sent_ms: now_ms,
                kind,
            },
        );
        out.push(Output::Call { id, call });
        id
    }

    /// After a storage failure the adapter reopens the core, so the memory of a half-done step is
    /// thrown away and need not be consistent.
    fn check_invariants_unless_storage_failed(&self, result: &Result<(), TxnError>) {
        if !matches!(result, Err(TxnError::Storage(_))) {
            self.check_invariants();
        }
    }

    /// The invariants of the state machine, checked after every step.
    fn check_invariants(&self) {
        let row = &self.row;
        assert!(row.fence_epoch <= row.producer_epoch);
        assert!(row.producer_epoch <= MAX_PRODUCER_EPOCH);
        if row.producer_id.is_none() {
            assert_eq!(row.producer_epoch, -1);
            assert_eq!(row.state, Empty);
        }
        if row.next_producer_id.is_some() {
            assert!(row.producer_id.is_some());
            assert!(matches!(row.state, Empty | CompleteCommit | CompleteAbort));
        }
        match row.state {
            Empty => assert!(self.participants.is_empty()),
            Ongoing => {
                assert_eq!(row.txn_epoch, row.producer_epoch);
                // A transaction begins only with an epoch that is not spent, so its end has
                // room for the bump.
                assert!(row.producer_epoch < self.config.roll_epoch);
                assert!(row.txn_start_ms.is_some());
                assert!(!self.participants.is_empty());
            }
            PrepareCommit | PrepareAbort | CompleteCommit | CompleteAbort => {
                assert!(row.end_reason.is_some());
                if self.kept_epoch() {
                    // Only a client's end keeps the epoch (transaction version 1).
                    assert_eq!(row.end_reason, Some(EndReason::Client));
                    assert!(row.producer_epoch < self.config.roll_epoch);
                } else {
                    assert!(row.txn_epoch < row.producer_epoch);
                    // Only a fence bumps the epoch twice past a transaction: without one, the
                    // epoch after a transaction is its epoch plus one.
                    if row.txn_epoch >= row.fence_epoch {
                        assert_eq!(row.producer_epoch, row.txn_epoch + 1);
                    }
                }
            }
        }
        if matches!(row.state, PrepareCommit | PrepareAbort) {
            // The participants still to acknowledge; a Prepare state with none left completes
            // in the same step.
            assert!(!self.markers.is_empty());
            assert!(self
                .markers
                .keys()
                .all(|key| self.participants.contains_key(key)));
        } else {
            assert!(self.markers.is_empty());
        }
        assert!(self
            .registered
            .iter()
            .all(|key| self.participants.contains_key(key)));
        for (key, participant) in &self.participants {
            match key {
                Key::Partition { .. } => assert_eq!(participant.offsets, OffsetsCall::Settled),
                // In an open transaction, a group's offset commit is in flight exactly when
                // one of its calls is.
                Key::Group(group_id) if row.state == Ongoing => {
                    let in_flight = self.calls.values().any(|c| {
                        matches!(&c.kind, CallKind::Offsets { group_id: g, txn, .. }
                            if g == group_id && *txn == self.current_txn())
                    });
                    assert_eq!(participant.offsets == OffsetsCall::InFlight, in_flight);
                }
                Key::Group(_) => {}
            }
        }
        assert!(self.waiters.len() <= MAX_PENDING_REQUESTS);
    }
}
