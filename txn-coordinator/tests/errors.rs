//! Every error path of the coordinator, one test each, on real SQLite: the code a client sees
//! and that nothing changed where nothing should.

use kafdo_sql::{Param, Row, Sql, SqlError, Sqlite};
use kafdo_txn_coordinator::{
    Answer, Call, CallError, CallId, CallReply, Output, RequestId, TxnCoordinator, TxnError,
    CALL_TIMEOUT_MS, MAX_PENDING_REQUESTS,
};
use kafdo_types::api::{InitProducerRequest, TopicConfig};
use kafdo_types::rpc::{MarkerAck, PartitionRef, TopicPartitionOffset, TxnResult};
use kafdo_types::txn::{
    AddOffsetsRequest, CoordinatorAddPartitions, EndTxnRequest, TransactionState,
    MAX_GROUPS_PER_TXN, MAX_OFFSETS_PER_ADD, MAX_PARTITIONS_PER_ADD, MAX_PARTITIONS_PER_TXN,
};
use kafdo_types::{ApiError, ErrorCode};

const TXN_ID: &str = "t";

type Reply = Result<Answer, TxnError>;

struct Driver<S: Sql> {
    core: TxnCoordinator<S>,
    now_ms: i64,
    next_request: u64,
    calls: Vec<(CallId, Call)>,
}

fn partition(topic: &str, partition: i32) -> PartitionRef {
    PartitionRef {
        topic: topic.into(),
        topic_id: format!("{topic}-id"),
        partition,
        config: TopicConfig::default(),
    }
}

fn offsets(n: usize, group_id: &str, epoch: i32) -> AddOffsetsRequest {
    AddOffsetsRequest {
        producer_id: 1000,
        producer_epoch: epoch,
        group_id: group_id.into(),
        generation_id: 1,
        member_id: "m".into(),
        offsets: (0..n)
            .map(|i| TopicPartitionOffset {
                topic: "in".into(),
                partition: i as i32,
                offset: 5,
                metadata: None,
            })
            .collect(),
    }
}

fn ok_reply(call: &Call) -> CallReply {
    match call {
        Call::AllocateProducerId => CallReply::ProducerId(1000),
        Call::RegisterTxn(_) | Call::TxnOffsetCommit(_) => CallReply::Done,
        Call::WriteMarker(_) | Call::GroupTxnMarker(_) => CallReply::Marker(MarkerAck {
            marker_offset: None,
        }),
    }
}

fn code(replies: Vec<Reply>) -> ErrorCode {
    assert_eq!(replies.len(), 1, "one reply expected: {replies:?}");
    match replies.into_iter().next().unwrap() {
        Err(e) => e.code(),
        Ok(answer) => panic!("expected an error, got {answer:?}"),
    }
}

fn ok(replies: Vec<Reply>) -> Answer {
    assert_eq!(replies.len(), 1, "one reply expected: {replies:?}");
    replies.into_iter().next().unwrap().expect("success")
}

impl Driver<Sqlite> {
    fn new() -> Self {
        Self::on(Sqlite::memory())
    }
}

impl<S: Sql> Driver<S> {
    fn on(sql: S) -> Self {
        Self {
            core: TxnCoordinator::open(sql, TXN_ID, 0).unwrap(),
            now_ms: 0,
            next_request: 1,
            calls: Vec::new(),
        }
    }

    fn request(&mut self) -> RequestId {
        self.next_request += 1;
        RequestId(self.next_request)
    }

    fn collect(&mut self, outputs: Vec<Output>) -> Vec<Reply> {
        let mut replies = Vec::new();
        for output in outputs {
            match output {
                Output::Call { id, call } => self.calls.push((id, call)),
                Output::Reply { result, .. } => replies.push(result),
            }
        }
        replies
    }

    /// Answers every outstanding call (and those they cause) successfully.
    fn ack_all(&mut self) -> Vec<Reply> {
        let mut replies = Vec::new();
        while !self.calls.is_empty() {
            let (id, call) = self.calls.remove(0);
            let out = self
                .core
                .on_call_result(id, Ok(ok_reply(&call)), self.now_ms)
                .unwrap();
            replies.extend(self.collect(out));
        }
        replies
    }

    /// Answers the oldest outstanding call with `result`.
    fn answer_first(&mut self, result: Result<CallReply, CallError>) -> Vec<Reply> {
        let (id, _) = self.calls.remove(0);
        let out = self.core.on_call_result(id, result, self.now_ms).unwrap();
        self.collect(out)
    }

    fn init_with(&mut self, transaction_timeout_ms: Option<i64>) -> Vec<Reply> {
        let request = self.request();
        let req = InitProducerRequest {
            transactional_id: Some(TXN_ID.into()),
            transaction_timeout_ms,
        };
        let out = self.core.init_producer(request, &req, self.now_ms).unwrap();
        self.collect(out)
    }

    /// Inits and answers every call: the new epoch.
    fn init(&mut self) -> i32 {
        let mut replies = self.init_with(None);
        replies.extend(self.ack_all());
        match ok(replies) {
            Answer::Producer(r) => r.producer_epoch,
            other => panic!("{other:?}"),
        }
    }

    fn add(&mut self, epoch: i32, partitions: Vec<PartitionRef>) -> Vec<Reply> {
        self.add_as(1000, epoch, partitions)
    }

    fn add_as(
        &mut self,
        producer_id: i64,
        epoch: i32,
        partitions: Vec<PartitionRef>,
    ) -> Vec<Reply> {
        let request = self.request();
        let req = CoordinatorAddPartitions {
            producer_id,
            producer_epoch: epoch,
            partitions,
        };
        let out = self
            .core
            .add_partitions(request, &req, self.now_ms)
            .unwrap();
        self.collect(out)
    }

    /// Adds one partition and answers the registration.
    fn begin(&mut self, epoch: i32) {
        let mut replies = self.add(epoch, vec![partition("a", 0)]);
        replies.extend(self.ack_all());
        assert_eq!(ok(replies), Answer::PartitionsAdded);
    }

    fn offsets(&mut self, req: &AddOffsetsRequest) -> Vec<Reply> {
        let request = self.request();
        let out = self.core.add_offsets(request, req, self.now_ms).unwrap();
        self.collect(out)
    }

    fn end(&mut self, epoch: i32, result: TxnResult) -> Vec<Reply> {
        let request = self.request();
        let req = EndTxnRequest {
            keep_epoch: false,
            producer_id: 1000,
            producer_epoch: epoch,
        };
        let out = self
            .core
            .end_txn(request, &req, result, self.now_ms)
            .unwrap();
        self.collect(out)
    }

    /// Commits and answers every marker: the new epoch.
    fn commit(&mut self, epoch: i32) -> i32 {
        let mut replies = self.end(epoch, TxnResult::Commit);
        replies.extend(self.ack_all());
        match ok(replies) {
            Answer::Ended(r) => {
                assert_eq!(r.state, TransactionState::CompleteCommit);
                r.producer_epoch
            }
            other => panic!("{other:?}"),
        }
    }

    fn alarm(&mut self, now_ms: i64) -> Vec<Reply> {
        self.now_ms = now_ms;
        let out = self.core.on_alarm(now_ms).unwrap();
        self.collect(out)
    }
}

#[test]
fn error_codes_map_as_kafka_names_them() {
    let cases = [
        (
            TxnError::ProducerFenced {
                producer_epoch: 0,
                fence_epoch: 1,
            },
            ErrorCode::ProducerFenced,
        ),
        (
            TxnError::InvalidProducerEpoch {
                producer_epoch: 0,
                current_epoch: 1,
            },
            ErrorCode::InvalidProducerEpoch,
        ),
        (
            TxnError::ConcurrentTransactions("x".into()),
            ErrorCode::ConcurrentTransactions,
        ),
        (
            TxnError::TransactionTimedOut { producer_epoch: 0 },
            ErrorCode::TransactionTimedOut,
        ),
        (
            TxnError::InvalidTxnState("x".into()),
            ErrorCode::InvalidTxnState,
        ),
        (
            TxnError::InvalidRequest("x".into()),
            ErrorCode::InvalidRequest,
        ),
        (
            TxnError::Participant(ApiError::new(ErrorCode::IllegalGeneration, "x")),
            ErrorCode::IllegalGeneration,
        ),
        (TxnError::NoAnswer("x".into()), ErrorCode::RequestTimedOut),
        (
            TxnError::Busy("x".into()),
            ErrorCode::CoordinatorLoadInProgress,
        ),
        (
            TxnError::Storage(SqlError::TooManyParams(101)),
            ErrorCode::UnknownServerError,
        ),
    ];
    for (error, code) in cases {
        assert_eq!(error.code(), code);
        assert_eq!(error.to_api_error().code, code);
    }
    // Retriable ones are the ones a client should simply retry.
    assert!(ErrorCode::ConcurrentTransactions.is_retriable());
    assert!(!ErrorCode::ProducerFenced.is_retriable());
}

#[test]
fn producer_fenced_after_a_new_init() {
    let mut d = Driver::new();
    let old = d.init();
    d.begin(old);
    let new = d.init();
    assert!(new > old);
    assert_eq!(
        code(d.add(old, vec![partition("b", 0)])),
        ErrorCode::ProducerFenced
    );
    assert_eq!(
        code(d.offsets(&offsets(1, "g", old))),
        ErrorCode::ProducerFenced
    );
    assert_eq!(
        code(d.end(old, TxnResult::Commit)),
        ErrorCode::ProducerFenced
    );
    assert_eq!(
        code(d.end(old, TxnResult::Abort)),
        ErrorCode::ProducerFenced
    );
    // The fencing init aborted the old instance's transaction.
    assert_eq!(d.core.state(), TransactionState::CompleteAbort);
}

#[test]
fn producer_fenced_answers_waiting_adds() {
    let mut d = Driver::new();
    let old = d.init();
    d.begin(old);
    let waiting = d.add(old, vec![partition("b", 0)]);
    assert!(waiting.is_empty(), "the add waits for the registration");
    let mut replies = d.init_with(None);
    replies.extend(d.ack_all());
    let fenced: Vec<_> = replies.iter().filter(|r| r.is_err()).collect();
    assert_eq!(fenced.len(), 1);
    assert_eq!(
        fenced[0].as_ref().unwrap_err().code(),
        ErrorCode::ProducerFenced
    );
}

#[test]
fn invalid_producer_epoch_for_stale_and_unknown_epochs() {
    let mut d = Driver::new();
    let e0 = d.init();
    d.begin(e0);
    let e1 = d.commit(e0);
    assert_eq!(e1, e0 + 1);
    assert_eq!(
        code(d.add(e0, vec![partition("a", 0)])),
        ErrorCode::InvalidProducerEpoch
    );
    assert_eq!(
        code(d.offsets(&offsets(1, "g", e0))),
        ErrorCode::InvalidProducerEpoch
    );
    d.begin(e1);
    // A late commit of the previous transaction cannot land on this one (KAFKA-17754).
    assert_eq!(
        code(d.end(e0, TxnResult::Commit)),
        ErrorCode::InvalidProducerEpoch
    );
    assert_eq!(
        code(d.end(e0, TxnResult::Abort)),
        ErrorCode::InvalidProducerEpoch
    );
    assert_eq!(
        code(d.end(e1 + 5, TxnResult::Commit)),
        ErrorCode::InvalidProducerEpoch
    );
    assert_eq!(d.core.state(), TransactionState::Ongoing);
}

#[test]
fn concurrent_transactions_while_ending() {
    let mut d = Driver::new();
    let e0 = d.init();
    d.begin(e0);
    assert!(d.end(e0, TxnResult::Commit).is_empty());
    assert_eq!(d.core.state(), TransactionState::PrepareCommit);
    assert_eq!(
        code(d.end(e0, TxnResult::Commit)),
        ErrorCode::ConcurrentTransactions
    );
    assert_eq!(
        code(d.add(e0, vec![partition("b", 0)])),
        ErrorCode::ConcurrentTransactions
    );
    assert_eq!(
        code(d.offsets(&offsets(1, "g", e0))),
        ErrorCode::ConcurrentTransactions
    );
    // Even the next epoch (nobody has it yet) must wait.
    assert_eq!(
        code(d.add(e0 + 1, vec![partition("b", 0)])),
        ErrorCode::ConcurrentTransactions
    );
    assert_eq!(
        code(d.end(e0 + 1, TxnResult::Commit)),
        ErrorCode::ConcurrentTransactions
    );
    assert!(ErrorCode::ConcurrentTransactions.is_retriable());
}

#[test]
fn concurrent_transactions_while_an_add_is_in_flight() {
    let mut d = Driver::new();
    let e0 = d.init();
    d.begin(e0);
    assert!(d.add(e0, vec![partition("b", 0)]).is_empty());
    assert_eq!(
        code(d.end(e0, TxnResult::Commit)),
        ErrorCode::ConcurrentTransactions
    );
    assert_eq!(ok(d.ack_all()), Answer::PartitionsAdded);
    assert!(d.offsets(&offsets(1, "g", e0)).is_empty());
    assert_eq!(
        code(d.end(e0, TxnResult::Abort)),
        ErrorCode::ConcurrentTransactions
    );
    assert_eq!(ok(d.ack_all()), Answer::OffsetsAdded);
    assert_eq!(d.commit(e0), e0 + 1);
}

#[test]
fn transaction_timed_out() {
    let mut d = Driver::new();
    let mut replies = d.init_with(Some(1_000));
    replies.extend(d.ack_all());
    let Answer::Producer(p) = ok(replies) else {
        panic!()
    };
    let e0 = p.producer_epoch;
    d.begin(e0);
    assert!(d.offsets(&offsets(1, "g", e0)).is_empty());
    // The alarm at the timeout aborts, answering the waiting offsets request.
    let replies = d.alarm(1_000);
    assert_eq!(code(replies), ErrorCode::TransactionTimedOut);
    assert_eq!(d.core.state(), TransactionState::PrepareAbort);
    assert_eq!(
        code(d.end(e0, TxnResult::Commit)),
        ErrorCode::TransactionTimedOut
    );
    assert_eq!(
        code(d.add(e0, vec![partition("a", 0)])),
        ErrorCode::TransactionTimedOut
    );
    assert!(d.ack_all().is_empty());
    assert_eq!(
        code(d.end(e0, TxnResult::Commit)),
        ErrorCode::TransactionTimedOut
    );
    assert_eq!(
        code(d.offsets(&offsets(1, "g", e0))),
        ErrorCode::TransactionTimedOut
    );
    // An abort of the timed-out transaction succeeds and gives the epoch to continue with.
    let Answer::Ended(r) = ok(d.end(e0, TxnResult::Abort)) else {
        panic!()
    };
    assert_eq!(r.state, TransactionState::CompleteAbort);
    assert_eq!(r.producer_epoch, e0 + 1);
    d.begin(e0 + 1);
}

#[test]
fn invalid_txn_state_for_the_wrong_ending() {
    let mut d = Driver::new();
    let e0 = d.init();
    d.begin(e0);
    assert!(d.end(e0, TxnResult::Commit).is_empty());
    assert_eq!(
        code(d.end(e0, TxnResult::Abort)),
        ErrorCode::InvalidTxnState
    );
    assert_eq!(d.ack_all().len(), 1);
    assert_eq!(
        code(d.end(e0, TxnResult::Abort)),
        ErrorCode::InvalidTxnState
    );

    let e1 = e0 + 1;
    d.begin(e1);
    assert!(d.end(e1, TxnResult::Abort).is_empty());
    assert_eq!(
        code(d.end(e1, TxnResult::Commit)),
        ErrorCode::InvalidTxnState
    );
    assert_eq!(d.ack_all().len(), 1);
    assert_eq!(
        code(d.end(e1, TxnResult::Commit)),
        ErrorCode::InvalidTxnState
    );
}

#[test]
fn invalid_request_for_init() {
    let mut d = Driver::new();
    for timeout in [0, -1, 15 * 60 * 1000 + 1] {
        assert_eq!(code(d.init_with(Some(timeout))), ErrorCode::InvalidRequest);
    }
    let request = d.request();
    let req = InitProducerRequest {
        transactional_id: None,
        transaction_timeout_ms: None,
    };
    let out = d.core.init_producer(request, &req, 0).unwrap();
    assert_eq!(code(d.collect(out)), ErrorCode::InvalidRequest);
    assert!(
        d.calls.is_empty(),
        "no producer id is allocated for a bad request"
    );
}

#[test]
fn invalid_request_for_producer_ids() {
    let mut d = Driver::new();
    assert_eq!(
        code(d.add(0, vec![partition("a", 0)])),
        ErrorCode::InvalidRequest,
        "no producer yet"
    );
    let e0 = d.init();
    assert_eq!(
        code(d.add_as(7, e0, vec![partition("a", 0)])),
        ErrorCode::InvalidRequest,
        "another producer id"
    );
}

#[test]
fn invalid_request_for_partitions() {
    let mut d = Driver::new();
    let e0 = d.init();
    assert_eq!(code(d.add(e0, vec![])), ErrorCode::InvalidRequest);
    let too_many: Vec<_> = (0..=MAX_PARTITIONS_PER_ADD as i32)
        .map(|p| partition("a", p))
        .collect();
    assert_eq!(code(d.add(e0, too_many)), ErrorCode::InvalidRequest);
    assert_eq!(
        code(d.add(e0, vec![partition("a", -1)])),
        ErrorCode::InvalidRequest
    );
    assert_eq!(
        code(d.add(e0, vec![partition("bad topic", 0)])),
        ErrorCode::InvalidRequest
    );
    let mut no_id = partition("a", 0);
    no_id.topic_id.clear();
    assert_eq!(code(d.add(e0, vec![no_id])), ErrorCode::InvalidRequest);
    assert_eq!(d.core.state(), TransactionState::Empty, "nothing began");

    // At most MAX_PARTITIONS_PER_TXN partitions in one transaction.
    let per_add = MAX_PARTITIONS_PER_ADD as i32;
    for batch in 0..(MAX_PARTITIONS_PER_TXN as i32 / per_add) {
        let parts = (0..per_add)
            .map(|p| partition("a", batch * per_add + p))
            .collect();
        let mut replies = d.add(e0, parts);
        replies.extend(d.ack_all());
        assert_eq!(ok(replies), Answer::PartitionsAdded);
    }
    assert_eq!(
        code(d.add(e0, vec![partition("b", 0)])),
        ErrorCode::InvalidRequest
    );
    // Partitions already in the transaction do not count twice.
    assert_eq!(
        ok(d.add(e0, vec![partition("a", 0)])),
        Answer::PartitionsAdded
    );
}

#[test]
fn invalid_request_for_offsets() {
    let mut d = Driver::new();
    let e0 = d.init();
    assert_eq!(
        code(d.offsets(&offsets(0, "g", e0))),
        ErrorCode::InvalidRequest
    );
    assert_eq!(
        code(d.offsets(&offsets(MAX_OFFSETS_PER_ADD + 1, "g", e0))),
        ErrorCode::InvalidRequest
    );
    assert_eq!(
        code(d.offsets(&offsets(1, "", e0))),
        ErrorCode::InvalidRequest
    );
    let mut negative = offsets(1, "g", e0);
    negative.offsets[0].offset = -1;
    assert_eq!(code(d.offsets(&negative)), ErrorCode::InvalidRequest);
    let mut long_member = offsets(1, "g", e0);
    long_member.member_id = "m".repeat(300);
    assert_eq!(code(d.offsets(&long_member)), ErrorCode::InvalidRequest);

    for g in 0..MAX_GROUPS_PER_TXN {
        let mut replies = d.offsets(&offsets(1, &format!("g{g}"), e0));
        replies.extend(d.ack_all());
        assert_eq!(ok(replies), Answer::OffsetsAdded);
    }
    assert_eq!(
        code(d.offsets(&offsets(1, "one-too-many", e0))),
        ErrorCode::InvalidRequest
    );
    // A group already in the transaction may commit again.
    let mut replies = d.offsets(&offsets(1, "g0", e0));
    replies.extend(d.ack_all());
    assert_eq!(ok(replies), Answer::OffsetsAdded);
}

#[test]
fn participant_refusals_are_passed_on() {
    let mut d = Driver::new();
    let e0 = d.init();
    assert!(d.add(e0, vec![partition("gone", 0)]).is_empty());
    let refused = ApiError::new(ErrorCode::UnknownTopicOrPartition, "deleted");
    assert_eq!(
        code(d.answer_first(Err(CallError::Refused(refused)))),
        ErrorCode::UnknownTopicOrPartition
    );
    for group_code in [
        ErrorCode::IllegalGeneration,
        ErrorCode::UnknownMemberId,
        ErrorCode::RebalanceInProgress,
        ErrorCode::GroupIdNotFound,
    ] {
        assert!(d.offsets(&offsets(1, "g", e0)).is_empty());
        let refused = ApiError::new(group_code, "refused");
        assert_eq!(
            code(d.answer_first(Err(CallError::Refused(refused)))),
            group_code
        );
    }
}

/// A group that refuses an offset commit wrote nothing, so the refused request changes
/// nothing here either: the group it added leaves the transaction (and does not count against
/// its groups), and a transaction it began is as it was before, persisted so.
#[test]
fn a_refused_offset_commit_is_taken_back() {
    let db = std::rc::Rc::new(Sqlite::memory());
    let mut d = Driver::on(std::rc::Rc::clone(&db));
    let e0 = d.init();
    let before = d.core.describe(d.now_ms);
    let refused = || {
        Err(CallError::Refused(ApiError::new(
            ErrorCode::UnknownMemberId,
            "who",
        )))
    };

    // It began the transaction: afterwards none is open, and a reopened object agrees.
    assert!(d.offsets(&offsets(1, "g", e0)).is_empty());
    assert_eq!(d.core.describe(d.now_ms).state, TransactionState::Ongoing);
    assert_eq!(code(d.answer_first(refused())), ErrorCode::UnknownMemberId);
    assert_eq!(d.core.describe(d.now_ms), before);
    let reopened = TxnCoordinator::open(std::rc::Rc::clone(&db), TXN_ID, 0).unwrap();
    assert_eq!(reopened.describe(d.now_ms).state, before.state);
    assert_eq!(reopened.describe(d.now_ms).groups, before.groups);
    // Nothing to time out.
    assert!(d.alarm(1_000_000_000).is_empty());
    assert_eq!(d.core.describe(d.now_ms).producer_epoch, e0);

    // In an open transaction, the group leaves it; the partition stays.
    d.begin(e0);
    for g in 0..MAX_GROUPS_PER_TXN {
        assert!(d.offsets(&offsets(1, &format!("stale{g}"), e0)).is_empty());
        assert_eq!(code(d.answer_first(refused())), ErrorCode::UnknownMemberId);
    }
    let open = d.core.describe(d.now_ms);
    assert_eq!(open.state, TransactionState::Ongoing);
    assert_eq!(open.partitions.len(), 1);
    assert!(open.groups.is_empty(), "{open:?}");
    let mut replies = d.offsets(&offsets(1, "g", e0));
    replies.extend(d.ack_all());
    assert_eq!(ok(replies), Answer::OffsetsAdded);

    // A group already in the transaction keeps its earlier offsets, so it stays.
    assert!(d.offsets(&offsets(1, "g", e0)).is_empty());
    assert_eq!(code(d.answer_first(refused())), ErrorCode::UnknownMemberId);
    assert_eq!(d.core.describe(d.now_ms).groups, ["g"]);
    d.commit(e0);
}

#[test]
fn no_answer_is_request_timed_out() {
    let mut d = Driver::new();
    assert!(d.init_with(None).is_empty());
    assert_eq!(
        code(d.answer_first(Err(CallError::NoAnswer("reset".into())))),
        ErrorCode::RequestTimedOut
    );
    let e0 = d.init();
    assert!(d.add(e0, vec![partition("a", 0)]).is_empty());
    assert_eq!(
        code(d.answer_first(Err(CallError::NoAnswer("reset".into())))),
        ErrorCode::RequestTimedOut
    );
    assert!(d.offsets(&offsets(1, "g", e0)).is_empty());
    // Never answered: the alarm gives up on it.
    assert_eq!(d.core.next_alarm_ms(), Some(CALL_TIMEOUT_MS));
    assert!(d.alarm(CALL_TIMEOUT_MS - 1).is_empty());
    assert_eq!(code(d.alarm(CALL_TIMEOUT_MS)), ErrorCode::RequestTimedOut);
    // Its late answer changes nothing.
    assert!(d.ack_all().is_empty());
}

#[test]
fn busy_when_too_many_requests_wait() {
    let mut d = Driver::new();
    let e0 = d.init();
    for _ in 0..MAX_PENDING_REQUESTS {
        assert!(d.add(e0, vec![partition("a", 0)]).is_empty());
    }
    assert_eq!(
        d.calls.len(),
        1,
        "the waiting requests share one registration"
    );
    assert_eq!(
        code(d.add(e0, vec![partition("a", 0)])),
        ErrorCode::CoordinatorLoadInProgress
    );
    assert_eq!(
        code(d.init_with(None)),
        ErrorCode::CoordinatorLoadInProgress
    );
    let replies = d.ack_all();
    assert_eq!(replies.len(), MAX_PENDING_REQUESTS);
    assert!(replies.iter().all(|r| r == &Ok(Answer::PartitionsAdded)));
}

/// Real SQLite that fails every write statement while `fail_writes` is set: a storage failure
/// in the middle of a step.
struct FlakySqlite {
    inner: Sqlite,
    fail_writes: std::cell::Cell<bool>,
}

impl Sql for FlakySqlite {
    fn exec(&self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>, SqlError> {
        let write = !sql.trim_start().starts_with("SELECT");
        if write && self.fail_writes.get() {
            return Err(SqlError::Statement {
                message: "disk I/O error (injected)".into(),
                statement: sql.into(),
            });
        }
        self.inner.exec(sql, params)
    }

    fn transaction<T, E: From<SqlError>>(&self, f: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
        self.inner.transaction(f)
    }
}

#[test]
fn storage_failure_is_returned_and_changes_nothing() {
    let sql = FlakySqlite {
        inner: Sqlite::memory(),
        fail_writes: std::cell::Cell::new(false),
    };
    let mut d = Driver::on(sql);
    let e0 = d.init();
    d.begin(e0);
    d.core.sql().fail_writes.set(true);
    let request = d.request();
    let req = EndTxnRequest {
        keep_epoch: false,
        producer_id: 1000,
        producer_epoch: e0,
    };
    let err = d
        .core
        .end_txn(request, &req, TxnResult::Commit, 0)
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::UnknownServerError);
    // The adapter reopens the core, as after a restart: the commit point was not passed.
    d.core.sql().fail_writes.set(false);
    let mut d = Driver::on(d.core.into_sql());
    assert_eq!(d.core.state(), TransactionState::Ongoing);
    assert_eq!(d.core.producer_epoch(), e0);
    assert_eq!(d.commit(e0), e0 + 1);
}

/// The sequence number of the latest offset commit sent to a group.
fn last_offsets_sequence<S: Sql>(d: &Driver<S>) -> i64 {
    d.calls
        .iter()
        .rev()
        .find_map(|(_, call)| match call {
            Call::TxnOffsetCommit(r) => Some(r.sequence),
            _ => None,
        })
        .expect("an offset commit call")
}

#[test]
fn an_offset_commit_of_unknown_outcome_is_sent_again_before_the_commit() {
    let mut d = Driver::new();
    let e0 = d.init();
    d.begin(e0);
    assert!(d.offsets(&offsets(1, "g", e0)).is_empty());
    assert_eq!(last_offsets_sequence(&d), 1);
    // A second commit to the same group waits for the first: they must land in order.
    assert_eq!(
        code(d.offsets(&offsets(1, "g", e0))),
        ErrorCode::ConcurrentTransactions
    );
    assert_eq!(
        code(d.answer_first(Err(CallError::NoAnswer("reset".into())))),
        ErrorCode::RequestTimedOut
    );
    // The unknown call may never land: no commit until a new one is answered.
    assert_eq!(
        code(d.end(e0, TxnResult::Commit)),
        ErrorCode::InvalidTxnState
    );
    // The client sends its offsets again: a new call, numbered after the unknown one, so the
    // group keeps the new offsets even if the old call lands late.
    assert!(d.offsets(&offsets(1, "g", e0)).is_empty());
    assert_eq!(last_offsets_sequence(&d), 2);
    assert_eq!(ok(d.ack_all()), Answer::OffsetsAdded);
    let mut replies = d.end(e0, TxnResult::Commit);
    replies.extend(d.ack_all());
    let Answer::Ended(r) = ok(replies) else {
        panic!()
    };
    assert_eq!(r.state, TransactionState::CompleteCommit);

    // A restart while an offset commit is in flight leaves it unknown; the numbers continue
    // from storage, and a new transaction starts again at 1.
    let e1 = r.producer_epoch;
    d.begin(e1);
    assert!(d.offsets(&offsets(1, "g", e1)).is_empty());
    assert_eq!(last_offsets_sequence(&d), 1);
    let mut d = Driver::on(d.core.into_sql());
    assert_eq!(
        code(d.end(e1, TxnResult::Commit)),
        ErrorCode::InvalidTxnState
    );
    assert!(d.offsets(&offsets(1, "g", e1)).is_empty());
    assert_eq!(last_offsets_sequence(&d), 2);
    assert_eq!(ok(d.ack_all()), Answer::OffsetsAdded);
    // Or it aborts, which is always allowed.
    let mut replies = d.end(e1, TxnResult::Abort);
    replies.extend(d.ack_all());
    let Answer::Ended(r) = ok(replies) else {
        panic!()
    };
    assert_eq!(r.state, TransactionState::CompleteAbort);
}

/// Real SQLite whose `fail_at`-th write statement fails (once).
struct FailNthWrite {
    inner: Sqlite,
    writes: std::cell::Cell<u64>,
    fail_at: u64,
}

impl Sql for FailNthWrite {
    fn exec(&self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>, SqlError> {
        if !sql.trim_start().starts_with("SELECT") {
            self.writes.set(self.writes.get() + 1);
            if self.writes.get() == self.fail_at {
                return Err(SqlError::Statement {
                    message: "disk I/O error (injected)".into(),
                    statement: sql.into(),
                });
            }
        }
        self.inner.exec(sql, params)
    }

    fn transaction<T, E: From<SqlError>>(&self, f: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
        self.inner.transaction(f)
    }
}

/// Opens the core, as the adapter does after a storage failure. The failure is injected once,
/// so only the very first open could meet it, and the test starts after that open's writes.
fn open_retrying(sql: FailNthWrite) -> TxnCoordinator<FailNthWrite> {
    TxnCoordinator::open(sql, TXN_ID, 0).expect("the failure is injected once")
}

/// One transaction (init, 2 partitions, offsets, commit) where the `fail_at`-th write fails:
/// the step returns a storage error, the adapter reopens the core on the same database, and the
/// client retries. The transaction must end committed (or, when the failure hit an offset
/// commit, aborted and redone), never half-written. Returns the writes of the run.
fn commit_with_failed_write(fail_at: u64) -> u64 {
    let sql = FailNthWrite {
        inner: Sqlite::memory(),
        writes: std::cell::Cell::new(0),
        fail_at,
    };
    let mut core = Some(open_retrying(sql));
    let mut producer_epoch = -1;
    let mut step = 0;
    let mut next_request = 0;
    for _ in 0..1_000 {
        next_request += 1;
        let request = RequestId(next_request);
        let c = core.as_mut().unwrap();
        let result = match step {
            0 => {
                let req = InitProducerRequest {
                    transactional_id: Some(TXN_ID.into()),
                    transaction_timeout_ms: None,
                };
                c.init_producer(request, &req, 0)
            }
            1 => {
                let req = CoordinatorAddPartitions {
                    producer_id: 1000,
                    producer_epoch,
                    partitions: vec![partition("a", 0), partition("b", 0)],
                };
                c.add_partitions(request, &req, 0)
            }
            2 => c.add_offsets(request, &offsets(1, "g", producer_epoch), 0),
            3 | 9 => {
                let result = if step == 3 {
                    TxnResult::Commit
                } else {
                    TxnResult::Abort
                };
                let req = EndTxnRequest {
                    keep_epoch: false,
                    producer_id: 1000,
                    producer_epoch,
                };
                c.end_txn(request, &req, result, 0)
            }
            _ => break,
        };
        // Answer every call at once; collect this request's reply.
        let mut outputs = match result {
            Ok(outputs) => outputs,
            Err(e) => {
                assert_eq!(e.code(), ErrorCode::UnknownServerError);
                core = Some(open_retrying(core.take().unwrap().into_sql()));
                continue;
            }
        };
        let mut reply = None;
        let mut failed = false;
        while let Some(output) = outputs.pop() {
            match output {
                Output::Reply { request: r, result } => {
                    assert_eq!(r, request);
                    reply = Some(result);
                }
                Output::Call { id, call } => {
                    let c = core.as_mut().unwrap();
                    match c.on_call_result(id, Ok(ok_reply(&call)), 0) {
                        Ok(more) => outputs.extend(more),
                        Err(e) => {
                            assert_eq!(e.code(), ErrorCode::UnknownServerError);
                            failed = true;
                            break;
                        }
                    }
                }
            }
        }
        if failed {
            core = Some(open_retrying(core.take().unwrap().into_sql()));
            // A Prepare state left behind is driven by the alarm.
            let c = core.as_mut().unwrap();
            let mut outputs = c.on_alarm(0).unwrap();
            while let Some(output) = outputs.pop() {
                if let Output::Call { id, call } = output {
                    outputs.extend(c.on_call_result(id, Ok(ok_reply(&call)), 0).unwrap());
                }
            }
            continue;
        }
        match reply.expect("every request is answered") {
            Ok(Answer::Producer(r)) => {
                producer_epoch = r.producer_epoch;
                step = 1;
            }
            Ok(Answer::PartitionsAdded) | Ok(Answer::OffsetsAdded) => step += 1,
            Ok(Answer::Ended(r)) => {
                producer_epoch = r.producer_epoch;
                step = if step == 9 { 1 } else { 4 };
            }
            Err(e) if e.code() == ErrorCode::InvalidTxnState => step = 9,
            Err(e) => assert!(e.code().is_retriable(), "step {step}: {e}"),
        }
    }
    assert_eq!(
        step, 4,
        "the transaction did not commit (failure at write {fail_at})"
    );
    let core = core.unwrap();
    assert_eq!(core.state(), TransactionState::CompleteCommit);
    let writes = core.sql().writes.get();
    assert!(writes >= fail_at, "the failure was injected");
    writes
}

#[test]
fn a_storage_failure_at_any_write_leaves_a_consistent_state() {
    let clean = commit_with_failed_write(0);
    assert!(clean >= 8);
    // The first open's writes (the schema and the row) come before the test.
    let first_open = open_retrying(FailNthWrite {
        inner: Sqlite::memory(),
        writes: std::cell::Cell::new(0),
        fail_at: 0,
    })
    .sql()
    .writes
    .get();
    for fail_at in first_open + 1..=clean {
        commit_with_failed_write(fail_at);
    }
}

/// A coordinator stored by the build before `previous_producer_id` (schema version 2) opens
/// with this build: the migration adds the column and the open transaction goes on.
#[test]
fn a_database_of_the_previous_schema_version_is_migrated() {
    let db = std::rc::Rc::new(Sqlite::memory());
    let mut d = Driver::on(db.clone());
    let epoch = d.init();
    d.begin(epoch);
    drop(d);
    // The schema of two versions ago: no transaction numbers, no retired producer id. (An
    // open transaction of that schema registered at the partitions without a number, which
    // they read as 0: the migration's default.)
    for column in ["txn_seq", "previous_producer_id"] {
        db.run(
            &format!("ALTER TABLE txn_coordinator DROP COLUMN {column}"),
            &[],
        )
        .unwrap();
    }
    db.run("UPDATE schema_version SET version = 2", &[])
        .unwrap();

    let mut d = Driver::on(db.clone());
    assert_eq!(d.core.state(), TransactionState::Ongoing);
    let row = db
        .first(
            "SELECT previous_producer_id, txn_seq FROM txn_coordinator",
            &[],
        )
        .unwrap()
        .unwrap();
    assert_eq!((row.opt_int(0), row.int(1)), (None, 0));
    assert_eq!(
        d.commit(epoch),
        epoch + 1,
        "the transaction of the old schema commits"
    );
}
