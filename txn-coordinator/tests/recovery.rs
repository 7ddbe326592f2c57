//! Recovery: the coordinator driven against small models of partitions and a group, with one
//! fault injected between every two steps of a transaction (exhaustively), and with many faults
//! at random (seeded, so a failing seed replays exactly).
//!
//! The models are the participants' side of the protocol as the coordinator relies on it:
//! a partition accepts a registration only for a transaction, by (epoch, number), newer than
//! every one it has a marker for (so a late registration cannot open a hanging transaction),
//! markers are idempotent, and a group holds transactional offsets as pending until the marker.
//! Half the random runs' clients speak transaction version 1 (their ends keep the epoch, so
//! consecutive transactions share it and only the number tells them apart). The checker
//! asserts:
//!
//! - one outcome per transaction: no participant ever gets a commit marker and another an abort
//!   marker for the same (producer id, epoch, number), nor a participant both;
//! - a commit answered success means every participant the client added has the commit marker
//!   (and the group committed the offsets); an abort answered success, the abort marker;
//! - epochs answered by inits only rise;
//! - at the end, once the alarms have run, no partition holds an open registration of an ended
//!   epoch and the coordinator is not stuck in a Prepare state.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use kafdo_sql::Sqlite;
use kafdo_txn_coordinator::{
    Answer, Call, CallError, CallId, CallReply, CoordinatorConfig, Output, RequestId,
    TxnCoordinator, TxnError,
};
use kafdo_types::api::{InitProducerRequest, TopicConfig};
use kafdo_types::rpc::{MarkerAck, PartitionRef, TopicPartitionOffset, TxnResult};
use kafdo_types::txn::{
    AddOffsetsRequest, CoordinatorAddPartitions, EndTxnRequest, TransactionState,
};
use kafdo_types::{ApiError, ErrorCode};

const TXN_ID: &str = "txn";

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// A transaction at a partition: (producer id, epoch, the coordinator's number). The producer
/// id changes when its epochs are spent; the epoch stays across transactions of transaction
/// version 1.
type Txn = (i64, i32, i64);

/// A transaction at a group: (producer id, epoch). Groups do not take part in transactions that
/// keep their epoch (the coordinator refuses to end those), so the epoch names the transaction.
type GroupTxn = (i64, i32);

#[derive(Default)]
struct PartitionModel {
    registered: BTreeSet<Txn>,
    ended: BTreeMap<Txn, TxnResult>,
}

impl PartitionModel {
    /// The last transaction of `producer_id` that ended here: (epoch, number).
    fn last_ended(&self, producer_id: i64) -> Option<(i32, i64)> {
        self.ended
            .range((producer_id, i32::MIN, i64::MIN)..=(producer_id, i32::MAX, i64::MAX))
            .next_back()
            .map(|((_, epoch, num), _)| (*epoch, *num))
    }

    /// The outcome of the last transaction of (producer id, epoch) that ended here.
    fn ended_in(&self, producer_id: i64, epoch: i32) -> Option<TxnResult> {
        self.ended
            .range((producer_id, epoch, i64::MIN)..=(producer_id, epoch, i64::MAX))
            .next_back()
            .map(|(_, result)| *result)
    }
}

#[derive(Default)]
struct GroupModel {
    /// Per transaction: the sequence number and offset of the highest-numbered call received.
    pending: BTreeMap<GroupTxn, (i64, i64)>,
    committed: BTreeMap<GroupTxn, i64>,
    ended: BTreeMap<GroupTxn, TxnResult>,
}

impl GroupModel {
    /// The last epoch of `producer_id` whose transaction ended here.
    fn last_ended(&self, producer_id: i64) -> Option<i32> {
        self.ended
            .range((producer_id, i32::MIN)..=(producer_id, i32::MAX))
            .next_back()
            .map(|((_, epoch), _)| *epoch)
    }
}

fn partition(name: &str) -> PartitionRef {
    let (topic, p) = name.split_once('/').unwrap();
    PartitionRef {
        topic: topic.into(),
        topic_id: format!("{topic}-id"),
        partition: p.parse().unwrap(),
        config: TopicConfig::default(),
    }
}

/// The participants, the network between them and the coordinator, and the checker's records.
struct World {
    core: Option<TxnCoordinator<Sqlite>>,
    now_ms: i64,
    in_flight: VecDeque<(CallId, Call)>,
    partitions: BTreeMap<String, PartitionModel>,
    group: GroupModel,
    /// The outcome of every transaction, as the first marker fixed it: at the partitions, and
    /// at the group.
    outcomes: BTreeMap<Txn, TxnResult>,
    group_outcomes: BTreeMap<GroupTxn, TxnResult>,
    next_producer_id: i64,
    next_request: u64,
    /// Replies delivered to clients, by request.
    replies: BTreeMap<RequestId, Result<Answer, TxnError>>,
    /// Requests the coordinator holds; lost when it restarts.
    held: BTreeSet<RequestId>,
    last_init: (i64, i32),
    config: CoordinatorConfig,
}

impl World {
    fn new(config: CoordinatorConfig) -> Self {
        Self {
            core: Some(
                TxnCoordinator::open_with_config(Sqlite::memory(), TXN_ID, 0, config).unwrap(),
            ),
            now_ms: 0,
            in_flight: VecDeque::new(),
            partitions: BTreeMap::new(),
            group: GroupModel::default(),
            outcomes: BTreeMap::new(),
            group_outcomes: BTreeMap::new(),
            next_producer_id: 1000,
            next_request: 0,
            replies: BTreeMap::new(),
            held: BTreeSet::new(),
            last_init: (-1, -1),
            config,
        }
    }

    fn core(&mut self) -> &mut TxnCoordinator<Sqlite> {
        self.core.as_mut().unwrap()
    }

    fn absorb(&mut self, outputs: Vec<Output>) {
        for output in outputs {
            match output {
                Output::Call { id, call } => self.in_flight.push_back((id, call)),
                Output::Reply { request, result } => {
                    assert!(self.held.remove(&request), "one reply per request");
                    if let Ok(Answer::Producer(r)) = &result {
                        // Producer ids are allocated rising, so (id, epoch) rises.
                        let init = (r.producer_id, r.producer_epoch);
                        assert!(init > self.last_init, "init epochs rise");
                        self.last_init = init;
                    }
                    self.replies.insert(request, result);
                }
            }
        }
    }

    fn send(&mut self, request: &ClientRequest) -> RequestId {
        self.next_request += 1;
        let id = RequestId(self.next_request);
        self.held.insert(id);
        let now = self.now_ms;
        let core = self.core.as_mut().unwrap();
        let out = match request {
            ClientRequest::Init => {
                let req = InitProducerRequest {
                    transactional_id: Some(TXN_ID.into()),
                    transaction_timeout_ms: None,
                };
                core.init_producer(id, &req, now)
            }
            ClientRequest::Add(pid, epoch, parts) => {
                let req = CoordinatorAddPartitions {
                    producer_id: *pid,
                    producer_epoch: *epoch,
                    partitions: parts.iter().map(|p| partition(p)).collect(),
                };
                core.add_partitions(id, &req, now)
            }
            ClientRequest::Offsets(pid, epoch, offset) => {
                let req = AddOffsetsRequest {
                    producer_id: *pid,
                    producer_epoch: *epoch,
                    group_id: "g".into(),
                    generation_id: 1,
                    member_id: "m".into(),
                    offsets: vec![TopicPartitionOffset {
                        topic: "in".into(),
                        partition: 0,
                        offset: *offset,
                        metadata: None,
                    }],
                };
                core.add_offsets(id, &req, now)
            }
            ClientRequest::End(pid, epoch, result, keep_epoch) => {
                let req = EndTxnRequest {
                    producer_id: *pid,
                    producer_epoch: *epoch,
                    keep_epoch: *keep_epoch,
                };
                core.end_txn(id, &req, *result, now)
            }
        }
        .unwrap();
        self.absorb(out);
        id
    }

    /// What the participant does with a call it receives.
    fn apply(&mut self, call: &Call) -> Result<CallReply, CallError> {
        // Every producer id the metadata model gave out (a call of an earlier one may still be
        // on the way).
        let allocated = 1001..=self.next_producer_id;
        fn fix_outcome<K: Ord + Copy + std::fmt::Debug>(
            txn: K,
            result: TxnResult,
            outcomes: &mut BTreeMap<K, TxnResult>,
        ) {
            let agreed = *outcomes.entry(txn).or_insert(result);
            assert_eq!(
                agreed, result,
                "transaction {txn:?} got both a commit and an abort marker"
            );
        }
        match call {
            Call::AllocateProducerId => {
                self.next_producer_id += 1;
                Ok(CallReply::ProducerId(self.next_producer_id))
            }
            Call::RegisterTxn(r) => {
                assert!(allocated.contains(&r.producer_id));
                let key = format!("{}/{}", r.partition.topic, r.partition.partition);
                let p = self.partitions.entry(key).or_default();
                let txn = (r.producer_epoch, r.txn_seq);
                if p.last_ended(r.producer_id)
                    .is_some_and(|ended| txn <= ended)
                {
                    let e = ApiError::new(ErrorCode::ProducerFenced, "transaction ended");
                    return Err(CallError::Refused(e));
                }
                p.registered
                    .insert((r.producer_id, r.producer_epoch, r.txn_seq));
                Ok(CallReply::Done)
            }
            Call::WriteMarker(r) => {
                assert!(allocated.contains(&r.producer_id));
                let txn = (r.producer_id, r.producer_epoch, r.txn_seq);
                fix_outcome(txn, r.result, &mut self.outcomes);
                let key = format!("{}/{}", r.partition.topic, r.partition.partition);
                let p = self.partitions.entry(key).or_default();
                let first = *p.ended.entry(txn).or_insert(r.result);
                assert_eq!(first, r.result);
                p.registered.remove(&txn);
                Ok(CallReply::Marker(MarkerAck {
                    marker_offset: None,
                }))
            }
            Call::TxnOffsetCommit(r) => {
                let g = &mut self.group;
                if g.last_ended(r.producer_id)
                    .is_some_and(|e| r.producer_epoch <= e)
                {
                    let e = ApiError::new(ErrorCode::InvalidProducerEpoch, "epoch ended");
                    return Err(CallError::Refused(e));
                }
                // A late or duplicated earlier call changes nothing (the group keeps the
                // offsets of the highest sequence).
                let newest = g
                    .pending
                    .entry((r.producer_id, r.producer_epoch))
                    .or_insert((0, 0));
                if r.sequence >= newest.0 {
                    *newest = (r.sequence, r.offsets[0].offset);
                }
                Ok(CallReply::Done)
            }
            Call::GroupTxnMarker(r) => {
                let txn = (r.producer_id, r.producer_epoch);
                fix_outcome(txn, r.result, &mut self.group_outcomes);
                let g = &mut self.group;
                let first = *g.ended.entry(txn).or_insert(r.result);
                assert_eq!(first, r.result);
                if let Some((_, offset)) = g.pending.remove(&txn) {
                    if r.result == TxnResult::Commit {
                        g.committed.insert(txn, offset);
                    }
                }
                Ok(CallReply::Marker(MarkerAck {
                    marker_offset: None,
                }))
            }
        }
    }

    fn deliver(&mut self, id: CallId, result: Result<CallReply, CallError>) {
        let now = self.now_ms;
        let out = self.core().on_call_result(id, result, now).unwrap();
        self.absorb(out);
    }

    fn restart(&mut self) {
        let sql = self.core.take().unwrap().into_sql();
        let core = TxnCoordinator::open_with_config(sql, TXN_ID, self.now_ms, self.config);
        self.core = Some(core.unwrap());
        self.held.clear();
    }

    /// Moves time to the next alarm and fires it; false when no alarm is set.
    fn run_alarm(&mut self) -> bool {
        let Some(at) = self.core().next_alarm_ms() else {
            return false;
        };
        self.now_ms = self.now_ms.max(at);
        let now = self.now_ms;
        let out = self.core().on_alarm(now).unwrap();
        self.absorb(out);
        true
    }

    /// Delivers everything and runs alarms until nothing is pending (bounded).
    fn settle(&mut self) {
        for _ in 0..10_000 {
            if let Some((id, call)) = self.in_flight.pop_front() {
                let result = self.apply(&call);
                self.deliver(id, result);
            } else if self.core().state() == TransactionState::Ongoing || !self.run_alarm() {
                return;
            }
        }
        panic!("the coordinator did not settle");
    }

    /// The end-state checks: nothing stuck, no hanging registration.
    fn check_settled(&mut self) {
        let state = self.core().state();
        assert!(
            !matches!(
                state,
                TransactionState::PrepareCommit | TransactionState::PrepareAbort
            ),
            "stuck in {state}"
        );
        let open = (state == TransactionState::Ongoing).then(|| {
            let core = self.core();
            (
                core.producer_id().expect("a producer id"),
                core.producer_epoch(),
                core.txn_seq(),
            )
        });
        for (name, p) in &self.partitions {
            for txn in &p.registered {
                assert_eq!(
                    Some(*txn),
                    open,
                    "partition {name} holds a registration of {txn:?} that no open transaction \
                     owns (a hanging transaction)"
                );
            }
        }
    }
}

#[derive(Clone, Debug)]
enum ClientRequest {
    Init,
    Add(i64, i32, Vec<String>),
    Offsets(i64, i32, i64),
    /// Commit or abort; `true` keeps the epoch (transaction version 1).
    End(i64, i32, TxnResult, bool),
}

#[derive(Copy, Clone, Debug, PartialEq)]
enum Fault {
    /// The coordinator restarts just before the call is delivered.
    Restart,
    /// The call is lost: never delivered, never answered.
    Drop,
    /// The call takes effect but its answer is lost.
    LoseAnswer,
    /// The call fails at once without taking effect.
    Fail,
    /// The participant is busy: a retriable refusal.
    Refuse,
    /// The call takes effect and is answered twice.
    Duplicate,
}

const FAULTS: [Fault; 6] = [
    Fault::Restart,
    Fault::Drop,
    Fault::LoseAnswer,
    Fault::Fail,
    Fault::Refuse,
    Fault::Duplicate,
];

/// One step of the world for [`one_transaction`]: delivers the oldest call (injecting `fault` at
/// its delivery number), or else fires the next alarm. False when nothing can happen.
fn progress(w: &mut World, deliveries: &mut usize, fault: Option<(Fault, usize)>) -> bool {
    let Some((call_id, call)) = w.in_flight.pop_front() else {
        return w.run_alarm();
    };
    *deliveries += 1;
    match fault {
        Some((f, at)) if at == *deliveries => match f {
            Fault::Restart => {
                w.restart();
                let result = w.apply(&call);
                w.deliver(call_id, result);
            }
            Fault::Drop => {}
            Fault::LoseAnswer => {
                let _ = w.apply(&call);
            }
            Fault::Fail => w.deliver(call_id, Err(CallError::NoAnswer("failed".into()))),
            Fault::Refuse => {
                let e = ApiError::new(ErrorCode::CoordinatorLoadInProgress, "busy");
                w.deliver(call_id, Err(CallError::Refused(e)));
            }
            Fault::Duplicate => {
                let result = w.apply(&call);
                w.deliver(call_id, result.clone());
                let again = w.apply(&call);
                w.deliver(call_id, again);
            }
        },
        _ => {
            let result = w.apply(&call);
            w.deliver(call_id, result);
        }
    }
    true
}

/// One transaction (init, 3 partitions of 2 topics, offsets, commit) with `fault` injected at
/// the `at`-th call delivery. The client retries every step until it succeeds (commit with the
/// same epoch: rule 8). Returns how many deliveries the run made.
fn one_transaction(fault: Option<(Fault, usize)>) -> usize {
    let mut w = World::new(CoordinatorConfig::default());
    let parts: Vec<String> = ["a/0", "a/1", "b/0"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut pid = -1;
    let mut epoch = -1;
    let mut step = 0;
    let mut pending: Option<(RequestId, ClientRequest)> = None;
    let mut deliveries = 0;
    let mut committed_epoch = None;
    for _ in 0..10_000 {
        if pending.is_none() {
            let request = match step {
                0 => ClientRequest::Init,
                1 => ClientRequest::Add(pid, epoch, parts.clone()),
                2 => ClientRequest::Offsets(pid, epoch, 42),
                3 => ClientRequest::End(pid, epoch, TxnResult::Commit, false),
                // The transaction cannot commit: abort it and do it again.
                9 => ClientRequest::End(pid, epoch, TxnResult::Abort, false),
                _ => break,
            };
            let id = w.send(&request);
            pending = Some((id, request));
        }
        let (id, request) = pending.clone().unwrap();
        if let Some(reply) = w.replies.remove(&id) {
            pending = None;
            match reply {
                Ok(Answer::Producer(r)) => {
                    pid = r.producer_id;
                    epoch = r.producer_epoch;
                    step = 1;
                }
                Ok(Answer::PartitionsAdded) | Ok(Answer::OffsetsAdded) => step += 1,
                Ok(Answer::Ended(r)) if step == 9 => {
                    assert_eq!(r.state, TransactionState::CompleteAbort);
                    for p in &parts {
                        let ended = w.partitions[p].ended_in(pid, epoch);
                        assert_ne!(ended, Some(TxnResult::Commit));
                    }
                    assert_eq!(w.group.committed.get(&(pid, epoch)), None);
                    epoch = r.producer_epoch;
                    step = 1;
                }
                Ok(Answer::Ended(r)) => {
                    assert_eq!(r.state, TransactionState::CompleteCommit);
                    assert_eq!(r.producer_epoch, epoch + 1);
                    committed_epoch = Some(epoch);
                    // Every participant has the commit marker when the commit answers.
                    for p in &parts {
                        let ended = w.partitions[p].ended_in(pid, epoch);
                        assert_eq!(ended, Some(TxnResult::Commit));
                    }
                    assert_eq!(w.group.committed.get(&(pid, epoch)), Some(&42));
                    step += 1;
                }
                Err(e) if e.code() == ErrorCode::InvalidTxnState && step != 9 => {
                    // An offset commit of unknown outcome: the transaction can only abort.
                    assert!(
                        matches!(fault, Some((f, _)) if f != Fault::Duplicate),
                        "{e}"
                    );
                    step = 9;
                }
                Err(e) => {
                    // Only retriable outcomes are expected with one fault: retry the step.
                    assert!(
                        matches!(
                            e.code(),
                            ErrorCode::RequestTimedOut
                                | ErrorCode::ConcurrentTransactions
                                | ErrorCode::CoordinatorLoadInProgress
                        ),
                        "{request:?} failed with {e}"
                    );
                    // The client backs off for 100 ms before retrying: calls land, time passes.
                    if w.in_flight.is_empty() {
                        w.now_ms += 100;
                        let now = w.now_ms;
                        let out = w.core().on_alarm(now).unwrap();
                        w.absorb(out);
                    } else {
                        progress(&mut w, &mut deliveries, fault);
                    }
                }
            }
            continue;
        }
        if !w.held.contains(&id) {
            // The coordinator restarted: the request died with it. Retry.
            pending = None;
            continue;
        }
        assert!(
            progress(&mut w, &mut deliveries, fault),
            "{request:?} waits, and nothing can move it"
        );
    }
    assert_eq!(step, 4, "the transaction did not finish ({fault:?})");
    let epoch = committed_epoch.unwrap();
    assert_eq!(
        w.group_outcomes.get(&(pid, epoch)),
        Some(&TxnResult::Commit)
    );
    assert!(w
        .outcomes
        .iter()
        .filter(|((p, e, _), _)| (*p, *e) == (pid, epoch))
        .all(|(_, r)| *r == TxnResult::Commit));
    assert!(
        w.group_outcomes
            .values()
            .filter(|r| **r == TxnResult::Abort)
            .count()
            <= 1
    );
    w.settle();
    w.check_settled();
    deliveries
}

#[test]
fn one_fault_between_any_two_steps() {
    let clean = one_transaction(None);
    assert!(clean >= 9, "init, 3 registrations, offsets, 4 markers");
    let mut runs = 0;
    for fault in FAULTS {
        for at in 1..=clean + 2 {
            one_transaction(Some((fault, at)));
            runs += 1;
        }
    }
    assert!(runs >= FAULTS.len() * clean);
}

/// Two producer instances of one transactional id (the second fences the first now and then),
/// random commits and aborts, and faults at random: delays, reordering, drops, lost answers,
/// duplicates, restarts, alarms early, late and twice, time passing beyond the timeout.
/// What a random run went through, to prove the runs cover the interesting cases.
#[derive(Default, Debug)]
struct Stats {
    commits: usize,
    aborts: usize,
    /// Ends answered with a new producer id (its epochs were spent).
    rolls: usize,
    fenced: usize,
    timed_out: usize,
    restarts: usize,
    /// Non-empty transactions ended keeping their epoch (transaction version 1).
    kept: usize,
}

fn random_run(seed: u64, stats: &mut Stats) {
    let mut rng = Rng(seed);
    // Half the runs spend their epochs quickly, to move to new producer ids often.
    let config = if seed.is_multiple_of(2) {
        CoordinatorConfig {
            roll_epoch: 2 + rng.below(6) as i32,
        }
    } else {
        CoordinatorConfig::default()
    };
    let mut w = World::new(config);
    // Half the runs' clients speak transaction version 1: their ends keep the epoch.
    let tv1 = seed % 4 >= 2;
    struct Client {
        pid: i64,
        epoch: i32,
        pending: Option<(RequestId, ClientRequest)>,
        added: BTreeSet<String>,
        offsets: Option<i64>,
        fenced: bool,
    }
    let mut clients: Vec<Client> = (0..2)
        .map(|_| Client {
            pid: -1,
            epoch: -1,
            pending: None,
            added: BTreeSet::new(),
            offsets: None,
            fenced: true,
        })
        .collect();
    let names = ["a/0", "a/1", "b/0", "b/1"];
    for _ in 0..600 {
        // Client 0 does most of the work; client 1 is the instance that now and then takes over.
        let c = usize::from(rng.chance(15));
        match rng.below(10) {
            // A client acts.
            0..=3 => {
                let client = &mut clients[c];
                if let Some((id, request)) = client.pending.clone() {
                    if let Some(reply) = w.replies.remove(&id) {
                        client.pending = None;
                        match (reply, request) {
                            (Ok(Answer::Producer(r)), _) => {
                                client.pid = r.producer_id;
                                client.epoch = r.producer_epoch;
                                client.fenced = false;
                                client.added.clear();
                                client.offsets = None;
                            }
                            (Ok(Answer::PartitionsAdded), ClientRequest::Add(_, _, parts)) => {
                                client.added.extend(parts);
                            }
                            (Ok(Answer::OffsetsAdded), ClientRequest::Offsets(_, _, o)) => {
                                client.offsets = Some(o);
                            }
                            (
                                Ok(Answer::Ended(r)),
                                ClientRequest::End(pid, epoch, result, keep),
                            ) => {
                                let want = match result {
                                    TxnResult::Commit => TransactionState::CompleteCommit,
                                    TxnResult::Abort => TransactionState::CompleteAbort,
                                };
                                assert_eq!(r.state, want);
                                if !client.added.is_empty() {
                                    match result {
                                        TxnResult::Commit => stats.commits += 1,
                                        TxnResult::Abort => stats.aborts += 1,
                                    }
                                }
                                for p in &client.added {
                                    assert_eq!(
                                        w.partitions[p].ended_in(pid, epoch),
                                        Some(result),
                                        "seed {seed}: {p} lacks the {result:?} marker of {epoch}"
                                    );
                                }
                                if keep && r.producer_id == pid && !client.added.is_empty() {
                                    // Kept, unless the transaction had timed out: its abort
                                    // then answers the epoch the timeout bumped to.
                                    if r.producer_epoch == epoch {
                                        stats.kept += 1;
                                    } else {
                                        assert_eq!(result, TxnResult::Abort, "seed {seed}");
                                        assert_eq!(r.producer_epoch, epoch + 1, "seed {seed}");
                                    }
                                }
                                if let (Some(o), TxnResult::Commit) = (client.offsets, result) {
                                    assert_eq!(w.group.committed.get(&(pid, epoch)), Some(&o));
                                }
                                if r.producer_id == pid {
                                    // An empty transaction ends without spending an epoch.
                                    assert!(r.producer_epoch >= epoch);
                                } else {
                                    assert!(r.producer_id > pid && r.producer_epoch == 0);
                                    assert!(epoch + 1 >= config.roll_epoch, "moved early");
                                    stats.rolls += 1;
                                }
                                client.pid = r.producer_id;
                                client.epoch = r.producer_epoch;
                                client.added.clear();
                                client.offsets = None;
                            }
                            (Err(e), request) => match e.code() {
                                ErrorCode::ProducerFenced => {
                                    stats.fenced += 1;
                                    client.fenced = true;
                                }
                                ErrorCode::TransactionTimedOut => {
                                    stats.timed_out += 1;
                                    // Abort the timed-out transaction to learn the next epoch.
                                    let end = ClientRequest::End(
                                        client.pid,
                                        client.epoch,
                                        TxnResult::Abort,
                                        tv1,
                                    );
                                    let id = w.send(&end);
                                    client.pending = Some((id, end));
                                }
                                ErrorCode::RequestTimedOut
                                | ErrorCode::ConcurrentTransactions
                                | ErrorCode::CoordinatorLoadInProgress => {
                                    if let ClientRequest::End(..) = request {
                                        // Rule 8: retry the commit or abort, never switch.
                                        let id = w.send(&request);
                                        client.pending = Some((id, request));
                                    }
                                }
                                ErrorCode::InvalidTxnState => {
                                    // A commit after an offset commit of unknown outcome
                                    // (sending the offsets again would also do), or the
                                    // transaction already ended: abort.
                                    let end = ClientRequest::End(
                                        client.pid,
                                        client.epoch,
                                        TxnResult::Abort,
                                        tv1,
                                    );
                                    let id = w.send(&end);
                                    client.pending = Some((id, end));
                                }
                                ErrorCode::InvalidProducerEpoch | ErrorCode::InvalidRequest => {
                                    client.fenced = true
                                }
                                ErrorCode::UnknownTopicOrPartition => {}
                                other => panic!("seed {seed}: unexpected {other}: {e}"),
                            },
                            (reply, request) => panic!("{request:?} answered {reply:?}"),
                        }
                    } else if !w.held.contains(&id) {
                        // Lost with a restart: retry the same request.
                        let id = w.send(&request);
                        client.pending = Some((id, request));
                    }
                } else if (client.fenced && rng.chance(20)) || rng.chance(2) {
                    let id = w.send(&ClientRequest::Init);
                    client.pending = Some((id, ClientRequest::Init));
                } else if !client.fenced {
                    let request = match rng.below(6) {
                        0..=2 => {
                            let n = 1 + rng.below(2) as usize;
                            let parts = (0..n)
                                .map(|_| names[rng.below(names.len() as u64) as usize].to_string())
                                .collect();
                            ClientRequest::Add(client.pid, client.epoch, parts)
                        }
                        3 => {
                            ClientRequest::Offsets(client.pid, client.epoch, rng.below(100) as i64)
                        }
                        4 => ClientRequest::End(client.pid, client.epoch, TxnResult::Commit, tv1),
                        _ => ClientRequest::End(client.pid, client.epoch, TxnResult::Abort, tv1),
                    };
                    let id = w.send(&request);
                    client.pending = Some((id, request));
                }
            }
            // The network delivers a call, perhaps out of order, perhaps badly.
            4..=7 => {
                if w.in_flight.is_empty() {
                    continue;
                }
                let i = rng.below(w.in_flight.len().min(3) as u64) as usize;
                let (id, call) = w.in_flight.remove(i).unwrap();
                match rng.below(20) {
                    0 => {}
                    1 => {
                        let _ = w.apply(&call);
                    }
                    2 => w.deliver(id, Err(CallError::NoAnswer("failed".into()))),
                    3 => {
                        let result = w.apply(&call);
                        w.deliver(id, result.clone());
                        w.deliver(id, result);
                    }
                    4 => {
                        // Delayed: back to the end of the queue.
                        w.in_flight.push_back((id, call));
                    }
                    _ => {
                        let result = w.apply(&call);
                        w.deliver(id, result);
                    }
                }
            }
            // Time passes, alarms fire (early, on time, twice).
            8 => {
                w.now_ms += rng.below(5_000) as i64;
                let now = w.now_ms;
                let out = w.core().on_alarm(now).unwrap();
                w.absorb(out);
                if rng.chance(20) {
                    w.run_alarm();
                }
            }
            // The coordinator restarts.
            _ => {
                if rng.chance(10) {
                    stats.restarts += 1;
                    w.restart();
                }
            }
        }
    }
    // Let everything in flight land, then run the alarms out: nothing may stay stuck.
    while let Some((id, call)) = w.in_flight.pop_front() {
        let result = w.apply(&call);
        w.deliver(id, result);
    }
    w.settle();
    w.check_settled();
}

#[test]
fn random_faults_keep_every_transaction_atomic() {
    let mut stats = Stats::default();
    for seed in 0..300 {
        random_run(seed, &mut stats);
    }
    assert!(stats.commits > 300, "{stats:?}");
    assert!(stats.aborts > 100, "{stats:?}");
    assert!(stats.fenced > 50, "{stats:?}");
    assert!(stats.timed_out > 10, "{stats:?}");
    assert!(stats.restarts > 300, "{stats:?}");
    assert!(stats.rolls > 50, "{stats:?}");
    assert!(stats.kept > 100, "{stats:?}");
    eprintln!("{stats:?}");
}
