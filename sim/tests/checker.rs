//! The checker on hand-written histories: good ones pass, and each invariant is broken at least
//! once and caught.

use kafdo_sim::checker::{check, Invariant, Report};
use kafdo_sim::history::{
    Entry, GroupOffset, History, IngestRecord, KeyedValue, Observation, ReadRecord, Recorder,
    Reply, Request, Tp,
};
use kafdo_types::api::{Isolation, RecordOffset};
use kafdo_types::rpc::TxnResult;
use kafdo_types::txn::TransactionState;
use kafdo_types::ErrorCode;

const RC: Isolation = Isolation::ReadCommitted;
const RU: Isolation = Isolation::ReadUncommitted;

/// A transaction as the tests name it: (transactional id, producer id, epoch).
type Txn<'a> = (&'a str, i64, i32);

#[derive(Default)]
struct H {
    r: Recorder,
    t: i64,
}

fn records(items: &[(i64, &str)]) -> Vec<ReadRecord> {
    items
        .iter()
        .map(|(offset, value)| ReadRecord {
            offset: *offset,
            value: value.to_string(),
            ..ReadRecord::default()
        })
        .collect()
}

fn offsets(items: &[(&str, i32, i64)]) -> Vec<GroupOffset> {
    items
        .iter()
        .map(|(topic, partition, offset)| GroupOffset {
            topic: topic.to_string(),
            partition: *partition,
            offset: *offset,
        })
        .collect()
}

impl H {
    fn tick(&mut self) -> i64 {
        self.t += 1;
        self.t
    }
    fn invoke(&mut self, p: u32, op: Request) {
        let t = self.tick();
        self.r.invoke(t, p, op);
    }
    fn ok(&mut self, p: u32, reply: Reply) {
        let t = self.tick();
        self.r.ok(t, p, reply);
    }
    fn fail(&mut self, p: u32, code: ErrorCode) {
        let t = self.tick();
        self.r.fail(t, p, code, "");
    }
    fn info(&mut self, p: u32) {
        let t = self.tick();
        self.r.info(t, p, "timeout");
    }
    fn observe(&mut self, o: Observation) {
        let t = self.tick();
        self.r.observe(t, o);
    }

    fn produce_req(
        tp: (&str, i32),
        txn: Option<Txn<'_>>,
        values: &[&str],
        sources: &[&str],
    ) -> Request {
        Request::Produce {
            topic: tp.0.into(),
            partition: tp.1,
            producer_id: Some(txn.map_or(100, |t| t.1)),
            producer_epoch: Some(txn.map_or(0, |t| t.2)),
            base_sequence: Some(0),
            transactional_id: txn.map(|t| t.0.to_string()),
            values: values.iter().map(|v| v.to_string()).collect(),
            sources: sources.iter().map(|v| v.to_string()).collect(),
        }
    }

    fn produce(
        &mut self,
        p: u32,
        tp: (&str, i32),
        txn: Option<Txn<'_>>,
        values: &[&str],
        base: i64,
    ) {
        self.produce_from(p, tp, txn, values, &[], base);
    }

    fn produce_from(
        &mut self,
        p: u32,
        tp: (&str, i32),
        txn: Option<Txn<'_>>,
        values: &[&str],
        sources: &[&str],
        base: i64,
    ) {
        self.invoke(p, Self::produce_req(tp, txn, values, sources));
        self.ok(
            p,
            Reply::Produce {
                base_offset: base,
                last_offset: base + values.len() as i64 - 1,
                duplicate: false,
            },
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn fetch(
        &mut self,
        p: u32,
        tp: (&str, i32),
        offset: i64,
        isolation: Isolation,
        reader: &str,
        got: &[(i64, &str)],
        next: i64,
        hw: i64,
        lso: i64,
    ) {
        self.invoke(
            p,
            Request::Fetch {
                topic: tp.0.into(),
                partition: tp.1,
                offset,
                isolation,
                reader: reader.into(),
            },
        );
        self.ok(
            p,
            Reply::Fetch {
                records: records(got),
                next_offset: next,
                high_watermark: hw,
                last_stable_offset: lso,
            },
        );
    }

    fn init(&mut self, p: u32, tid: &str, pid: i64, epoch: i32) {
        self.invoke(
            p,
            Request::InitProducer {
                transactional_id: Some(tid.into()),
            },
        );
        self.ok(
            p,
            Reply::Producer {
                producer_id: pid,
                producer_epoch: epoch,
            },
        );
    }

    fn add(&mut self, p: u32, txn: Txn<'_>, tps: &[(&str, i32)]) {
        self.invoke(
            p,
            Request::AddPartitions {
                transactional_id: txn.0.into(),
                producer_id: txn.1,
                producer_epoch: txn.2,
                partitions: tps.iter().map(|(t, n)| Tp::new(*t, *n)).collect(),
            },
        );
        self.ok(p, Reply::Done);
    }

    fn end(&mut self, p: u32, txn: Txn<'_>, commit: bool) {
        self.invoke(
            p,
            Request::EndTxn {
                transactional_id: txn.0.into(),
                producer_id: txn.1,
                producer_epoch: txn.2,
                commit,
            },
        );
    }

    fn ended(&mut self, p: u32, txn: Txn<'_>, commit: bool) {
        self.end(p, txn, commit);
        self.ok(
            p,
            Reply::EndTxn {
                producer_id: None,
                state: if commit {
                    TransactionState::CompleteCommit
                } else {
                    TransactionState::CompleteAbort
                },
                producer_epoch: txn.2 + 1,
            },
        );
    }

    fn marker(&mut self, tp: (&str, i32), txn: Txn<'_>, commit: bool, offset: i64) {
        self.observe(Observation::Marker {
            topic: tp.0.into(),
            partition: tp.1,
            producer_id: txn.1,
            producer_epoch: txn.2,
            result: if commit {
                TxnResult::Commit
            } else {
                TxnResult::Abort
            },
            offset: Some(offset),
        });
    }

    fn scan(
        &mut self,
        tp: (&str, i32),
        isolation: Isolation,
        got: &[(i64, &str)],
        hw: i64,
        lso: i64,
    ) {
        self.invoke(
            99,
            Request::Scan {
                topic: tp.0.into(),
                partition: tp.1,
                isolation,
            },
        );
        self.ok(
            99,
            Reply::Fetch {
                records: records(got),
                next_offset: hw,
                high_watermark: hw,
                last_stable_offset: lso,
            },
        );
    }

    fn settle(&mut self) {
        self.observe(Observation::Settled);
    }

    fn check(self) -> Report {
        let history = self.r.into_history();
        let report = check(&history).expect("well-formed history");
        println!("{}{report}", history.trace());
        report
    }

    fn history(self) -> History {
        self.r.into_history()
    }
}

/// `history` written as JSONL and read back, which must give it back unchanged.
fn round_trip(history: &History) -> History {
    let mut bytes = Vec::new();
    history.write_jsonl(&mut bytes).unwrap();
    let back = History::read_jsonl(&bytes[..]).unwrap();
    assert_eq!(&back, history);
    back
}

const A0: (&str, i32) = ("a", 0);
const B0: (&str, i32) = ("b", 0);
const T0: Txn<'static> = ("t", 1, 0);
const T1: Txn<'static> = ("t", 1, 1);

/// The good story: a committed transaction (v1, v2), an idempotent write (x1), an aborted
/// transaction (v3), a reader that sees exactly the committed records.
fn good_story(h: &mut H) {
    h.init(1, "t", 1, 0);
    h.add(1, T0, &[A0]);
    h.produce(1, A0, Some(T0), &["v1", "v2"], 0);
    h.end(1, T0, true);
    h.marker(A0, T0, true, 2);
    h.ok(
        1,
        Reply::EndTxn {
            producer_id: None,
            state: TransactionState::CompleteCommit,
            producer_epoch: 1,
        },
    );
    h.fetch(3, A0, 0, RC, "r1", &[(0, "v1"), (1, "v2")], 3, 3, 3);
    h.produce(2, A0, None, &["x1"], 3);
    h.add(1, T1, &[A0]);
    h.produce(1, A0, Some(T1), &["v3"], 4);
    h.fetch(3, A0, 3, RC, "r1", &[(3, "x1")], 4, 5, 4);
    h.fetch(3, A0, 4, RC, "r1", &[], 4, 5, 4);
    h.ended(1, T1, false);
    h.marker(A0, T1, false, 5);
    h.fetch(3, A0, 4, RC, "r1", &[], 6, 6, 6);
}

fn good_end(h: &mut H) {
    h.settle();
    h.scan(A0, RU, &[(0, "v1"), (1, "v2"), (3, "x1"), (4, "v3")], 6, 6);
    h.scan(A0, RC, &[(0, "v1"), (1, "v2"), (3, "x1")], 6, 6);
}

#[test]
fn a_good_history_is_valid() {
    let mut h = H::default();
    good_story(&mut h);
    good_end(&mut h);
    let report = h.check();
    assert!(report.is_valid(), "{report}");
    assert!(report.settled);
    assert_eq!((report.committed_txns, report.aborted_txns), (1, 1));
}

#[test]
fn a_good_history_survives_the_jsonl_round_trip() {
    let mut h = H::default();
    good_story(&mut h);
    good_end(&mut h);
    let back = round_trip(&h.history());
    assert!(check(&back).unwrap().is_valid());
}

#[test]
fn an_unsettled_history_checks_safety_only() {
    let mut h = H::default();
    good_story(&mut h);
    let report = h.check();
    assert!(report.is_valid(), "{report}");
    assert!(!report.settled);
}

#[test]
fn unknown_outcomes_and_refusals_are_allowed() {
    let mut h = H::default();
    // A write that timed out and was retried: the retry is a duplicate with the same offsets.
    h.invoke(2, H::produce_req(A0, None, &["x1"], &[]));
    h.info(2);
    h.invoke(2, H::produce_req(A0, None, &["x1"], &[]));
    h.ok(
        2,
        Reply::Produce {
            base_offset: 0,
            last_offset: 0,
            duplicate: true,
        },
    );
    // A write whose only attempt timed out, and that did land.
    h.invoke(2, H::produce_req(A0, None, &["x2"], &[]));
    h.info(2);
    // A write that was refused and did not land.
    h.invoke(2, H::produce_req(A0, None, &["x3"], &[]));
    h.fail(2, ErrorCode::OutOfOrderSequenceNumber);
    // A commit whose answer was lost: the transaction committed anyway.
    h.init(1, "t", 1, 0);
    h.add(1, T0, &[A0]);
    h.produce(1, A0, Some(T0), &["v1"], 2);
    h.end(1, T0, true);
    h.info(1);
    h.settle();
    h.scan(A0, RU, &[(0, "x1"), (1, "x2"), (2, "v1")], 4, 4);
    h.scan(A0, RC, &[(0, "x1"), (1, "x2"), (2, "v1")], 4, 4);
    let report = h.check();
    assert!(report.is_valid(), "{report}");
}

fn assert_caught(h: H, invariant: Invariant) {
    let report = h.check();
    assert!(
        report.has(invariant),
        "expected a {invariant:?} violation, got: {report}"
    );
}

#[test]
fn a_committed_record_read_twice_is_caught() {
    let mut h = H::default();
    h.produce(2, A0, None, &["x1", "x2"], 0);
    // The partition answers a next offset that does not move past the record it returned.
    h.fetch(3, A0, 0, RC, "r1", &[(0, "x1")], 0, 2, 2);
    h.fetch(3, A0, 0, RC, "r1", &[(0, "x1"), (1, "x2")], 2, 2, 2);
    assert_caught(h, Invariant::ReadTwice);
}

#[test]
fn a_new_reader_session_may_read_again() {
    let mut h = H::default();
    h.produce(2, A0, None, &["x1"], 0);
    h.fetch(3, A0, 0, RC, "r1", &[(0, "x1")], 1, 1, 1);
    h.fetch(3, A0, 0, RC, "r2", &[(0, "x1")], 1, 1, 1);
    assert!(h.check().is_valid());
}

#[test]
fn an_aborted_record_read_is_caught() {
    let mut h = H::default();
    h.init(1, "t", 1, 0);
    h.add(1, T0, &[A0]);
    h.produce(1, A0, Some(T0), &["v1"], 0);
    h.ended(1, T0, false);
    h.marker(A0, T0, false, 1);
    h.fetch(3, A0, 0, RC, "r1", &[(0, "v1")], 2, 2, 2);
    assert_caught(h, Invariant::ReadAborted);
}

#[test]
fn an_open_record_read_is_caught() {
    let mut h = H::default();
    h.init(1, "t", 1, 0);
    h.add(1, T0, &[A0]);
    h.produce(1, A0, Some(T0), &["v1"], 0);
    h.fetch(3, A0, 0, RC, "r1", &[(0, "v1")], 1, 1, 1);
    h.ended(1, T0, true);
    assert_caught(h, Invariant::ReadOpen);
}

#[test]
fn a_read_before_the_marker_landed_is_caught() {
    let mut h = H::default();
    h.init(1, "t", 1, 0);
    h.add(1, T0, &[A0]);
    h.produce(1, A0, Some(T0), &["v1"], 0);
    h.end(1, T0, true);
    // The commit was asked for, but the partition returned the record before its marker.
    h.fetch(3, A0, 0, RC, "r1", &[(0, "v1")], 1, 1, 1);
    h.marker(A0, T0, true, 1);
    assert_caught(h, Invariant::ReadOpen);
}

#[test]
fn a_skipped_committed_record_is_caught() {
    let mut h = H::default();
    h.produce(2, A0, None, &["x1", "x2", "x3"], 0);
    h.fetch(3, A0, 0, RC, "r1", &[(0, "x1"), (2, "x3")], 3, 3, 3);
    h.settle();
    h.scan(A0, RU, &[(0, "x1"), (1, "x2"), (2, "x3")], 3, 3);
    h.scan(A0, RC, &[(0, "x1"), (1, "x2"), (2, "x3")], 3, 3);
    assert_caught(h, Invariant::SkippedRecord);
}

#[test]
fn a_lost_acknowledged_write_is_caught() {
    let mut h = H::default();
    h.produce(2, A0, None, &["x1"], 0);
    h.produce(2, A0, None, &["x2"], 1);
    h.settle();
    h.scan(A0, RU, &[(0, "x1")], 1, 1);
    h.scan(A0, RC, &[(0, "x1")], 1, 1);
    assert_caught(h, Invariant::LostWrite);
}

#[test]
fn an_acknowledged_write_hidden_from_read_committed_is_caught() {
    let mut h = H::default();
    h.produce(2, A0, None, &["x1"], 0);
    h.settle();
    h.scan(A0, RU, &[(0, "x1")], 1, 1);
    h.scan(A0, RC, &[], 1, 1);
    assert_caught(h, Invariant::LostWrite);
}

#[test]
fn a_duplicate_write_is_caught() {
    let mut h = H::default();
    h.invoke(2, H::produce_req(A0, None, &["x1"], &[]));
    h.info(2);
    h.produce(2, A0, None, &["x1"], 1);
    h.settle();
    h.scan(A0, RU, &[(0, "x1"), (1, "x1")], 2, 2);
    h.scan(A0, RC, &[(0, "x1"), (1, "x1")], 2, 2);
    assert_caught(h, Invariant::DuplicateWrite);
}

#[test]
fn two_values_at_one_offset_are_caught() {
    let mut h = H::default();
    h.produce(2, A0, None, &["x1"], 0);
    h.produce(4, A0, None, &["y1"], 0);
    assert_caught(h, Invariant::OneValuePerOffset);
}

#[test]
fn a_value_nobody_wrote_is_caught() {
    let mut h = H::default();
    h.fetch(3, A0, 0, RU, "r1", &[(0, "ghost")], 1, 1, 1);
    assert_caught(h, Invariant::OneValuePerOffset);
}

#[test]
fn a_record_on_a_marker_offset_is_caught() {
    let mut h = H::default();
    h.init(1, "t", 1, 0);
    h.add(1, T0, &[A0]);
    h.produce(1, A0, Some(T0), &["v1"], 0);
    h.end(1, T0, true);
    h.marker(A0, T0, true, 1);
    h.produce(2, A0, None, &["x1"], 1);
    assert_caught(h, Invariant::OneValuePerOffset);
}

#[test]
fn a_gap_in_the_offsets_is_caught() {
    let mut h = H::default();
    h.produce(2, A0, None, &["x1"], 0);
    h.produce(2, A0, None, &["x2"], 2);
    h.settle();
    h.scan(A0, RU, &[(0, "x1"), (2, "x2")], 3, 3);
    h.scan(A0, RC, &[(0, "x1"), (2, "x2")], 3, 3);
    assert_caught(h, Invariant::DenseOffsets);
}

#[test]
fn an_unobserved_marker_may_explain_one_gap() {
    // An end-to-end run sees no markers: a transaction that registered may owe one.
    let mut h = H::default();
    h.init(1, "t", 1, 0);
    h.add(1, T0, &[A0]);
    h.produce(1, A0, Some(T0), &["v1"], 0);
    h.ended(1, T0, true);
    h.produce(2, A0, None, &["x1"], 2);
    h.settle();
    h.scan(A0, RU, &[(0, "v1"), (2, "x1")], 3, 3);
    h.scan(A0, RC, &[(0, "v1"), (2, "x1")], 3, 3);
    let report = h.check();
    assert!(report.is_valid(), "{report}");
}

#[test]
fn a_partly_visible_transaction_is_caught() {
    let mut h = H::default();
    h.init(1, "t", 1, 0);
    h.add(1, T0, &[A0, B0]);
    h.produce(1, A0, Some(T0), &["v1"], 0);
    h.produce(1, B0, Some(T0), &["w1"], 0);
    h.end(1, T0, true);
    h.info(1);
    h.settle();
    h.scan(A0, RU, &[(0, "v1")], 2, 2);
    h.scan(A0, RC, &[(0, "v1")], 2, 2);
    h.scan(B0, RU, &[(0, "w1")], 2, 2);
    h.scan(B0, RC, &[], 2, 2);
    assert_caught(h, Invariant::TxnAtomicity);
}

#[test]
fn disagreeing_markers_are_caught() {
    let mut h = H::default();
    h.init(1, "t", 1, 0);
    h.add(1, T0, &[A0, B0]);
    h.end(1, T0, true);
    h.marker(A0, T0, true, 0);
    h.marker(B0, T0, false, 0);
    assert_caught(h, Invariant::TxnAtomicity);
}

#[test]
fn a_lost_acknowledged_commit_is_caught() {
    let mut h = H::default();
    h.init(1, "t", 1, 0);
    h.add(1, T0, &[A0]);
    h.produce(1, A0, Some(T0), &["v1"], 0);
    h.ended(1, T0, true);
    h.settle();
    h.scan(A0, RU, &[(0, "v1")], 2, 2);
    h.scan(A0, RC, &[], 2, 2);
    assert_caught(h, Invariant::TxnAtomicity);
}

#[test]
fn a_commit_nobody_asked_for_is_caught() {
    let mut h = H::default();
    h.init(1, "t", 1, 0);
    h.add(1, T0, &[A0]);
    h.produce(1, A0, Some(T0), &["v1"], 0);
    h.marker(A0, T0, true, 1);
    assert_caught(h, Invariant::TxnAtomicity);
}

fn add_offsets(h: &mut H, txn: Txn<'_>, group: &str, offs: &[(&str, i32, i64)]) {
    h.invoke(
        1,
        Request::AddOffsets {
            transactional_id: txn.0.into(),
            producer_id: txn.1,
            producer_epoch: txn.2,
            group_id: group.into(),
            generation_id: 1,
            member_id: "m1".into(),
            offsets: offsets(offs),
        },
    );
    h.ok(1, Reply::Done);
}

fn fetch_offsets(h: &mut H, p: u32, group: &str, stable: bool, offs: &[(&str, i32, i64)]) {
    h.invoke(
        p,
        Request::FetchOffsets {
            group_id: group.into(),
            require_stable: stable,
        },
    );
    h.ok(
        p,
        Reply::Offsets {
            offsets: offsets(offs),
        },
    );
}

#[test]
fn offsets_of_an_aborted_transaction_are_caught() {
    let mut h = H::default();
    h.init(1, "t", 1, 0);
    add_offsets(&mut h, T0, "g", &[("a", 0, 5)]);
    h.ended(1, T0, false);
    fetch_offsets(&mut h, 3, "g", false, &[("a", 0, 5)]);
    assert_caught(h, Invariant::OffsetVisibility);
}

#[test]
fn offsets_of_an_open_transaction_are_caught() {
    let mut h = H::default();
    h.init(1, "t", 1, 0);
    add_offsets(&mut h, T0, "g", &[("a", 0, 5)]);
    fetch_offsets(&mut h, 3, "g", false, &[("a", 0, 5)]);
    h.ended(1, T0, true);
    assert_caught(h, Invariant::OffsetVisibility);
}

#[test]
fn committed_offsets_are_visible() {
    let mut h = H::default();
    h.init(1, "t", 1, 0);
    add_offsets(&mut h, T0, "g", &[("a", 0, 5)]);
    h.ended(1, T0, true);
    fetch_offsets(&mut h, 3, "g", true, &[("a", 0, 5)]);
    let report = h.check();
    assert!(report.is_valid(), "{report}");
}

#[test]
fn two_inits_with_one_epoch_are_caught() {
    let mut h = H::default();
    h.init(1, "t", 1, 0);
    h.init(2, "t", 1, 0);
    assert_caught(h, Invariant::EpochsRise);
}

#[test]
fn a_coordinator_epoch_going_back_is_caught() {
    let mut h = H::default();
    for epoch in [0, 2, 1] {
        h.observe(Observation::Coordinator {
            transactional_id: "t".into(),
            producer_id: 1,
            producer_epoch: epoch,
            state: TransactionState::Empty,
        });
    }
    assert_caught(h, Invariant::EpochsRise);
}

#[test]
fn an_end_that_lowers_the_epoch_is_caught() {
    let mut h = H::default();
    h.init(1, "t", 1, 0);
    h.end(1, T0, false);
    h.ok(
        1,
        Reply::EndTxn {
            producer_id: None,
            state: TransactionState::CompleteAbort,
            producer_epoch: -1,
        },
    );
    assert_caught(h, Invariant::EpochsRise);
}

#[test]
fn a_zombie_write_is_caught() {
    let mut h = H::default();
    h.init(1, "t", 1, 0);
    h.add(1, T0, &[A0]);
    h.init(2, "t", 1, 1);
    // The old instance writes after the new one was handed epoch 1: it must be fenced.
    h.produce(1, A0, Some(T0), &["v1"], 0);
    assert_caught(h, Invariant::Fencing);
}

#[test]
fn a_fenced_zombie_is_fine() {
    let mut h = H::default();
    h.init(1, "t", 1, 0);
    h.add(1, T0, &[A0]);
    h.init(2, "t", 1, 1);
    h.invoke(1, H::produce_req(A0, Some(T0), &["v1"], &[]));
    h.fail(1, ErrorCode::ProducerFenced);
    let report = h.check();
    assert!(report.is_valid(), "{report}");
}

/// A transaction whose end spends the epochs of producer id 1: the answer moves the
/// transactional id to producer id 2, epoch 0.
fn move_to_producer_id_2(h: &mut H) {
    h.init(1, "t", 1, 0);
    h.add(1, T0, &[A0]);
    h.produce(1, A0, Some(T0), &["v1"], 0);
    h.end(1, T0, true);
    h.marker(A0, T0, true, 1);
    h.ok(
        1,
        Reply::EndTxn {
            producer_id: Some(2),
            state: TransactionState::CompleteCommit,
            producer_epoch: 0,
        },
    );
}

#[test]
fn a_move_to_a_new_producer_id_is_valid() {
    let mut h = H::default();
    move_to_producer_id_2(&mut h);
    let next: Txn<'static> = ("t", 2, 0);
    h.add(1, next, &[A0]);
    h.produce(1, A0, Some(next), &["v2"], 2);
    h.ended(1, next, true);
    h.marker(A0, next, true, 3);
    h.observe(Observation::Coordinator {
        transactional_id: "t".into(),
        producer_id: 2,
        producer_epoch: 1,
        state: TransactionState::CompleteCommit,
    });
    h.settle();
    h.scan(A0, RU, &[(0, "v1"), (2, "v2")], 4, 4);
    h.scan(A0, RC, &[(0, "v1"), (2, "v2")], 4, 4);
    let report = h.check();
    assert!(report.is_valid(), "{report}");
    assert_eq!(report.committed_txns, 2, "{report}");
}

#[test]
fn a_write_with_the_old_producer_id_after_the_move_is_caught() {
    let mut h = H::default();
    move_to_producer_id_2(&mut h);
    // Producer id 1 is retired: nothing with it may succeed any more.
    h.add(1, ("t", 1, 1), &[A0]);
    assert_caught(h, Invariant::Fencing);
}

#[test]
fn a_move_to_an_older_producer_id_is_caught() {
    let mut h = H::default();
    h.init(1, "t", 5, 0);
    h.end(1, ("t", 5, 0), false);
    h.ok(
        1,
        Reply::EndTxn {
            producer_id: Some(4),
            state: TransactionState::CompleteAbort,
            producer_epoch: 0,
        },
    );
    assert_caught(h, Invariant::EpochsRise);
}

#[test]
fn lso_above_the_high_watermark_is_caught() {
    let mut h = H::default();
    h.produce(2, A0, None, &["x1"], 0);
    h.fetch(3, A0, 0, RC, "r1", &[(0, "x1")], 1, 1, 2);
    assert_caught(h, Invariant::LsoBound);
}

#[test]
fn a_read_committed_record_past_the_lso_is_caught() {
    let mut h = H::default();
    h.produce(2, A0, None, &["x1", "x2"], 0);
    h.fetch(3, A0, 0, RC, "r1", &[(0, "x1"), (1, "x2")], 2, 2, 1);
    assert_caught(h, Invariant::LsoBound);
}

#[test]
fn a_partition_state_going_back_is_caught() {
    let mut h = H::default();
    for (hw, lso) in [(3, 1), (4, 2), (4, 1)] {
        h.observe(Observation::PartitionState {
            topic: "a".into(),
            partition: 0,
            log_start_offset: 0,
            high_watermark: hw,
            last_stable_offset: lso,
        });
    }
    assert_caught(h, Invariant::LsoBound);
}

#[test]
fn a_hanging_transaction_is_caught() {
    let mut h = H::default();
    h.init(1, "t", 1, 0);
    h.add(1, T0, &[A0]);
    h.produce(1, A0, Some(T0), &["v1"], 0);
    h.settle();
    h.scan(A0, RU, &[(0, "v1")], 1, 0);
    h.scan(A0, RC, &[], 1, 0);
    assert_caught(h, Invariant::Hanging);
}

/// A pipeline from `in` to `out`: the input i1, i2 at `in/0` offsets 0 and 1.
fn pipeline_start(h: &mut H) {
    h.observe(Observation::Pipeline {
        group_id: "g".into(),
        input_topic: "in".into(),
        output_topic: "out".into(),
    });
    h.produce(2, ("in", 0), None, &["i1", "i2"], 0);
    h.init(1, "t", 1, 0);
    h.add(1, T0, &[("out", 0)]);
}

#[test]
fn a_good_pipeline_is_valid() {
    let mut h = H::default();
    pipeline_start(&mut h);
    h.produce_from(1, ("out", 0), Some(T0), &["o1", "o2"], &["i1", "i2"], 0);
    add_offsets(&mut h, T0, "g", &[("in", 0, 2)]);
    h.ended(1, T0, true);
    h.settle();
    h.scan(("in", 0), RU, &[(0, "i1"), (1, "i2")], 2, 2);
    h.scan(("in", 0), RC, &[(0, "i1"), (1, "i2")], 2, 2);
    h.scan(("out", 0), RU, &[(0, "o1"), (1, "o2")], 3, 3);
    h.scan(("out", 0), RC, &[(0, "o1"), (1, "o2")], 3, 3);
    fetch_offsets(&mut h, 99, "g", true, &[("in", 0, 2)]);
    let report = h.check();
    assert!(report.is_valid(), "{report}");
}

#[test]
fn a_pipeline_duplicate_output_is_caught() {
    let mut h = H::default();
    pipeline_start(&mut h);
    h.produce_from(1, ("out", 0), Some(T0), &["o1"], &["i1"], 0);
    h.ended(1, T0, true);
    // The offsets were not committed with the output, so i1 is processed again.
    h.add(1, T1, &[("out", 0)]);
    h.produce_from(1, ("out", 0), Some(T1), &["o1b", "o2"], &["i1", "i2"], 2);
    add_offsets(&mut h, T1, "g", &[("in", 0, 2)]);
    h.ended(1, T1, true);
    h.settle();
    h.scan(("in", 0), RU, &[(0, "i1"), (1, "i2")], 2, 2);
    h.scan(("in", 0), RC, &[(0, "i1"), (1, "i2")], 2, 2);
    h.scan(("out", 0), RU, &[(0, "o1"), (2, "o1b"), (3, "o2")], 5, 5);
    h.scan(("out", 0), RC, &[(0, "o1"), (2, "o1b"), (3, "o2")], 5, 5);
    fetch_offsets(&mut h, 99, "g", true, &[("in", 0, 2)]);
    assert_caught(h, Invariant::PipelineExactlyOnce);
}

#[test]
fn a_pipeline_lost_output_is_caught() {
    let mut h = H::default();
    pipeline_start(&mut h);
    h.produce_from(1, ("out", 0), Some(T0), &["o1"], &["i1"], 0);
    add_offsets(&mut h, T0, "g", &[("in", 0, 2)]);
    h.ended(1, T0, true);
    h.settle();
    h.scan(("in", 0), RU, &[(0, "i1"), (1, "i2")], 2, 2);
    h.scan(("in", 0), RC, &[(0, "i1"), (1, "i2")], 2, 2);
    h.scan(("out", 0), RU, &[(0, "o1")], 2, 2);
    h.scan(("out", 0), RC, &[(0, "o1")], 2, 2);
    fetch_offsets(&mut h, 99, "g", true, &[("in", 0, 2)]);
    assert_caught(h, Invariant::PipelineExactlyOnce);
}

fn member(h: &mut H, p: u32, member: &str, generation: i32, owns: &[(&str, i32)]) {
    h.invoke(
        p,
        Request::JoinGroup {
            group_id: "g".into(),
            member_id: None,
            topics: vec!["a".into()],
        },
    );
    h.ok(
        p,
        Reply::Member {
            member_id: member.into(),
            generation_id: generation,
            assignment: owns.iter().map(|(t, n)| Tp::new(*t, *n)).collect(),
        },
    );
}

#[test]
fn two_owners_in_one_generation_are_caught() {
    let mut h = H::default();
    member(&mut h, 1, "m1", 1, &[("a", 0), ("a", 1)]);
    member(&mut h, 2, "m2", 2, &[("a", 1)]);
    member(&mut h, 1, "m1", 2, &[("a", 0)]);
    assert!(h.check().is_valid());
    let mut h = H::default();
    member(&mut h, 1, "m1", 1, &[("a", 0), ("a", 1)]);
    member(&mut h, 2, "m2", 1, &[("a", 1)]);
    assert_caught(h, Invariant::GroupOwnership);
}

#[test]
fn a_malformed_history_is_refused() {
    let mut h = H::default();
    h.ok(1, Reply::Done);
    assert!(check(&h.history()).is_err());
    let mut h = H::default();
    h.invoke(1, H::produce_req(A0, None, &["x"], &[]));
    h.invoke(1, H::produce_req(A0, None, &["y"], &[]));
    assert!(check(&h.history()).is_err());
}

// ---- keyed ingestion (Idempotency-Key) ------------------------------------------------------

const A1: (&str, i32) = ("a", 1);

/// A keyed produce of `records` (partition, value) to topic `a`.
fn ingest_req(key: &str, records: &[(i32, &str)]) -> Request {
    Request::Ingest {
        topic: "a".into(),
        key: key.into(),
        records: records
            .iter()
            .map(|(partition, value)| IngestRecord {
                partition: *partition,
                value: value.to_string(),
            })
            .collect(),
    }
}

/// The answer to a keyed produce: (partition, offset) per record.
fn ingested(offsets: &[(i32, i64)]) -> Reply {
    Reply::Ingest {
        offsets: offsets
            .iter()
            .map(|(partition, offset)| RecordOffset {
                partition: *partition,
                offset: *offset,
            })
            .collect(),
    }
}

/// The same key and body from two processes: p1 times out and retries, p2 (which thinks p1
/// died) sends it too and is told the key is in flight, then both are answered the same.
fn ingest_story(h: &mut H) {
    let body = [(0, "k1"), (1, "k2"), (0, "k3")];
    h.invoke(1, ingest_req("order-1", &body));
    h.info(1);
    h.invoke(2, ingest_req("order-1", &body));
    h.fail(2, ErrorCode::IdempotencyKeyInFlight);
    h.invoke(1, ingest_req("order-1", &body));
    h.ok(1, ingested(&[(0, 1), (1, 0), (0, 2)]));
    h.invoke(2, ingest_req("order-1", &body));
    h.ok(2, ingested(&[(0, 1), (1, 0), (0, 2)]));
    // A reader meets the records like any others.
    h.fetch(
        3,
        A0,
        0,
        RC,
        "r1",
        &[(0, "x1"), (1, "k1"), (2, "k3")],
        3,
        3,
        3,
    );
    // A second key that was never answered, whose one attempt landed on one partition.
    h.invoke(1, ingest_req("order-2", &[(1, "k4")]));
    h.info(1);
}

fn ingest_settle(h: &mut H, a0: &[(i64, &str)], a1: &[(i64, &str)]) {
    h.settle();
    let hw0 = a0.len() as i64;
    let hw1 = a1.len() as i64;
    h.scan(A0, RU, a0, hw0, hw0);
    h.scan(A0, RC, a0, hw0, hw0);
    h.scan(A1, RU, a1, hw1, hw1);
    h.scan(A1, RC, a1, hw1, hw1);
}

#[test]
fn a_good_ingestion_history_is_valid() {
    let mut h = H::default();
    h.produce(4, A0, None, &["x1"], 0);
    ingest_story(&mut h);
    ingest_settle(
        &mut h,
        &[(0, "x1"), (1, "k1"), (2, "k3")],
        &[(0, "k2"), (1, "k4")],
    );
    let report = h.check();
    assert!(report.is_valid(), "{report}");
}

#[test]
fn an_ingestion_history_survives_the_jsonl_round_trip() {
    let mut h = H::default();
    h.produce(4, A0, None, &["x1"], 0);
    ingest_story(&mut h);
    let history = h.history();
    let mut bytes = Vec::new();
    history.write_jsonl(&mut bytes).unwrap();
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert!(text.contains(r#""op":{"f":"ingest","topic":"a","key":"order-1","records":[{"partition":0,"value":"k1"}"#), "{text}");
    assert!(
        text.contains(r#""reply":{"f":"ingest","offsets":[{"partition":0,"offset":1}"#),
        "{text}"
    );
    let back = History::read_jsonl(&bytes[..]).unwrap();
    assert_eq!(back, history);
    assert!(check(&back).unwrap().is_valid());
}

#[test]
fn retries_of_a_key_answering_different_offsets_are_caught() {
    let mut h = H::default();
    h.invoke(1, ingest_req("order-1", &[(0, "k1")]));
    h.ok(1, ingested(&[(0, 0)]));
    // The key forgot its producer id: the retry was appended again, and answered so.
    h.invoke(2, ingest_req("order-1", &[(0, "k1")]));
    h.ok(2, ingested(&[(0, 1)]));
    assert_caught(h, Invariant::IngestAnswer);
}

#[test]
fn an_ingestion_answer_on_the_wrong_partition_is_caught() {
    let mut h = H::default();
    h.invoke(1, ingest_req("order-1", &[(0, "k1"), (1, "k2")]));
    h.ok(1, ingested(&[(0, 0), (0, 1)]));
    assert_caught(h, Invariant::IngestAnswer);
    let mut h = H::default();
    h.invoke(1, ingest_req("order-1", &[(0, "k1"), (1, "k2")]));
    h.ok(1, ingested(&[(0, 0)]));
    assert_caught(h, Invariant::IngestAnswer);
}

#[test]
fn an_unanswered_ingestion_appended_twice_is_caught() {
    let mut h = H::default();
    h.produce(4, A0, None, &["x1"], 0);
    ingest_story(&mut h);
    // order-2 was never answered, but its record landed twice.
    ingest_settle(
        &mut h,
        &[(0, "x1"), (1, "k1"), (2, "k3")],
        &[(0, "k2"), (1, "k4"), (2, "k4")],
    );
    assert_caught(h, Invariant::IngestExactlyOnce);
}

#[test]
fn an_answered_ingestion_appended_twice_is_caught() {
    let mut h = H::default();
    h.produce(4, A0, None, &["x1"], 0);
    ingest_story(&mut h);
    // A retry of order-1 appended k3 again: the answer still names offset 2.
    ingest_settle(
        &mut h,
        &[(0, "x1"), (1, "k1"), (2, "k3"), (3, "k3")],
        &[(0, "k2"), (1, "k4")],
    );
    assert_caught(h, Invariant::IngestExactlyOnce);
}

#[test]
fn an_answered_ingestion_lost_is_caught() {
    let mut h = H::default();
    h.produce(4, A0, None, &["x1"], 0);
    ingest_story(&mut h);
    // k2 was acknowledged at a/1 offset 0, but nothing is there.
    ingest_settle(&mut h, &[(0, "x1"), (1, "k1"), (2, "k3")], &[(1, "k4")]);
    assert_caught(h, Invariant::IngestExactlyOnce);
}

#[test]
fn an_ingested_value_reused_is_malformed() {
    let mut h = H::default();
    h.invoke(1, ingest_req("order-1", &[(0, "k1")]));
    h.info(1);
    h.invoke(1, ingest_req("order-2", &[(0, "k1")]));
    h.info(1);
    assert!(check(&h.history()).is_err());
    let mut h = H::default();
    h.produce(4, A0, None, &["k1"], 0);
    h.invoke(1, ingest_req("order-1", &[(0, "k1")]));
    h.info(1);
    assert!(check(&h.history()).is_err());
}

// ---- compacted topics ---------------------------------------------------------------------

/// The compacted topic of these tests, with a delete retention of 100 ms.
const C0: (&str, i32) = ("c", 0);
const RETENTION_MS: i64 = 100;

/// A record of the compacted topic as a reader sees it: the key is `k` and the value's first
/// letter, and a value with a `t` in it is a tombstone.
/// `history` with every observation `declaration` picks replaced by a note: the same run,
/// with the checker told less about its topics.
fn undeclared(mut history: History, declaration: impl Fn(&Observation) -> bool) -> History {
    for event in &mut history.events {
        if let Entry::Observe { observation } = &mut event.entry {
            if declaration(observation) {
                *observation = Observation::Note {
                    text: "undeclared".into(),
                };
            }
        }
    }
    history
}

fn kread(offset: i64, value: &str) -> ReadRecord {
    ReadRecord {
        offset,
        value: value.to_string(),
        key: Some(format!("k{}", &value[..1])),
        tombstone: value.contains('t'),
    }
}

fn krecords(items: &[(i64, &str)]) -> Vec<ReadRecord> {
    items.iter().map(|(o, v)| kread(*o, v)).collect()
}

impl H {
    fn compacted(&mut self) {
        self.observe(Observation::Compacted {
            topic: C0.0.into(),
            delete_retention_ms: RETENTION_MS,
        });
    }

    /// A keyed produce to the compacted topic: its keys declared, then the write.
    fn kproduce(&mut self, p: u32, txn: Option<Txn<'_>>, values: &[&str], base: i64) {
        let records = values
            .iter()
            .map(|v| {
                let r = kread(0, v);
                KeyedValue {
                    value: r.value,
                    key: r.key.expect("a key"),
                    tombstone: r.tombstone,
                }
            })
            .collect();
        self.observe(Observation::Keys { records });
        self.produce(p, C0, txn, values, base);
    }

    #[allow(clippy::too_many_arguments)]
    fn kfetch(
        &mut self,
        offset: i64,
        isolation: Isolation,
        reader: &str,
        got: Vec<ReadRecord>,
        next: i64,
        hw: i64,
        lso: i64,
    ) {
        self.invoke(
            3,
            Request::Fetch {
                topic: C0.0.into(),
                partition: C0.1,
                offset,
                isolation,
                reader: reader.into(),
            },
        );
        self.ok(
            3,
            Reply::Fetch {
                records: got,
                next_offset: next,
                high_watermark: hw,
                last_stable_offset: lso,
            },
        );
    }

    fn kscans(&mut self, got: &[(i64, &str)], hw: i64) {
        for isolation in [RU, RC] {
            self.invoke(
                99,
                Request::Scan {
                    topic: C0.0.into(),
                    partition: C0.1,
                    isolation,
                },
            );
            self.ok(
                99,
                Reply::Fetch {
                    records: krecords(got),
                    next_offset: hw,
                    high_watermark: hw,
                    last_stable_offset: hw,
                },
            );
        }
    }

    fn kstate(&mut self, log_start_offset: i64, hw: i64) {
        self.observe(Observation::PartitionState {
            topic: C0.0.into(),
            partition: C0.1,
            log_start_offset,
            high_watermark: hw,
            last_stable_offset: hw,
        });
    }
}

/// Keys a and b: a1, b1, a2 outside transactions; T0 commits a3 and b2 (marker at 5); T1
/// writes the tombstone at4 and aborts (marker at 7); then the tombstone at5 outside. A reader
/// reads everything committed before compaction; a second one after it, across the gaps.
fn compacted_story(h: &mut H) {
    h.compacted();
    h.kstate(0, 0);
    h.kproduce(2, None, &["a1", "b1", "a2"], 0);
    h.init(1, "t", 1, 0);
    h.add(1, T0, &[C0]);
    h.kproduce(1, Some(T0), &["a3", "b2"], 3);
    h.ended(1, T0, true);
    h.marker(C0, T0, true, 5);
    h.add(1, T1, &[C0]);
    h.kproduce(1, Some(T1), &["at4"], 6);
    h.ended(1, T1, false);
    h.marker(C0, T1, false, 7);
    h.kproduce(2, None, &["at5"], 8);
    h.kstate(0, 9);
    h.kfetch(0, RC, "r1", krecords(&[(0, "a1"), (1, "b1")]), 2, 9, 9);
    h.kfetch(
        2,
        RC,
        "r1",
        krecords(&[(2, "a2"), (3, "a3"), (4, "b2")]),
        6,
        9,
        9,
    );
    h.kfetch(6, RC, "r1", krecords(&[(8, "at5")]), 9, 9, 9);
    // Compaction ran: a1, b1, a2, a3, the aborted tombstone and both markers are gone.
    h.kstate(0, 9);
    h.kfetch(0, RC, "r2", krecords(&[(4, "b2"), (8, "at5")]), 9, 9, 9);
    h.kfetch(0, RU, "r3", krecords(&[(4, "b2"), (8, "at5")]), 9, 9, 9);
}

#[test]
fn a_good_compacted_history_is_valid() {
    let mut h = H::default();
    compacted_story(&mut h);
    h.settle();
    h.kscans(&[(4, "b2"), (8, "at5")], 9);
    let back = round_trip(&h.history());
    let report = check(&back).unwrap();
    println!("{}{report}", back.trace());
    assert!(report.is_valid(), "{report}");
    assert_eq!((report.committed_txns, report.aborted_txns), (1, 1));
}

#[test]
fn an_expired_tombstone_may_go_with_its_key() {
    let mut h = H::default();
    compacted_story(&mut h);
    h.t += RETENTION_MS + 1;
    h.settle();
    h.kscans(&[(4, "b2")], 9);
    let report = h.check();
    assert!(report.is_valid(), "{report}");
}

#[test]
fn the_same_gaps_on_a_topic_that_is_not_compacted_are_caught() {
    let mut h = H::default();
    compacted_story(&mut h);
    h.settle();
    h.kscans(&[(4, "b2"), (8, "at5")], 9);
    // The same history without the declaration: the topic is taken as a delete topic.
    let history = undeclared(h.history(), |o| matches!(o, Observation::Compacted { .. }));
    let report = check(&history).unwrap();
    assert!(report.has(Invariant::DenseOffsets), "{report}");
    assert!(report.has(Invariant::LostWrite), "{report}");
}

#[test]
fn a_lost_latest_value_is_caught() {
    let mut h = H::default();
    compacted_story(&mut h);
    h.settle();
    // Compaction kept b's older value instead of its latest.
    h.kscans(&[(1, "b1"), (8, "at5")], 9);
    assert_caught(h, Invariant::CompactedLatest);
}

#[test]
fn a_tombstone_removed_within_its_retention_is_caught() {
    let mut h = H::default();
    compacted_story(&mut h);
    h.settle();
    h.kscans(&[(4, "b2")], 9);
    assert_caught(h, Invariant::CompactedLatest);
}

#[test]
fn an_expired_tombstone_gone_while_older_values_remain_is_caught() {
    let mut h = H::default();
    compacted_story(&mut h);
    h.t += RETENTION_MS + 1;
    h.settle();
    // The tombstone went, but a's older value came back into view.
    h.kscans(&[(3, "a3"), (4, "b2")], 9);
    assert_caught(h, Invariant::CompactedLatest);
}

#[test]
fn an_aborted_write_does_not_count_as_the_latest() {
    let mut h = H::default();
    h.compacted();
    h.kproduce(2, None, &["a1"], 0);
    h.init(1, "t", 1, 0);
    h.add(1, T0, &[C0]);
    h.kproduce(1, Some(T0), &["a2"], 1);
    h.ended(1, T0, false);
    h.marker(C0, T0, false, 2);
    h.settle();
    h.kscans(&[(0, "a1")], 3);
    let report = h.check();
    assert!(report.is_valid(), "{report}");
    // Compacting past the open transaction lost a1 to the aborted a2.
    let mut h = H::default();
    h.compacted();
    h.kproduce(2, None, &["a1"], 0);
    h.init(1, "t", 1, 0);
    h.add(1, T0, &[C0]);
    h.kproduce(1, Some(T0), &["a2"], 1);
    h.ended(1, T0, false);
    h.marker(C0, T0, false, 2);
    h.settle();
    h.kscans(&[], 3);
    assert_caught(h, Invariant::CompactedLatest);
}

#[test]
fn a_record_read_with_another_key_is_caught() {
    let mut h = H::default();
    h.compacted();
    h.kproduce(2, None, &["a1"], 0);
    let mut wrong = kread(0, "a1");
    wrong.key = Some("kb".into());
    h.kfetch(0, RC, "r1", vec![wrong], 1, 1, 1);
    assert_caught(h, Invariant::CompactedRead);
}

#[test]
fn a_tombstone_read_as_a_value_is_caught() {
    let mut h = H::default();
    h.compacted();
    h.kproduce(2, None, &["at1"], 0);
    let mut wrong = kread(0, "at1");
    wrong.tombstone = false;
    h.kfetch(0, RU, "r1", vec![wrong], 1, 1, 1);
    assert_caught(h, Invariant::CompactedRead);
}

#[test]
fn an_older_value_read_after_a_newer_one_is_caught() {
    let mut h = H::default();
    h.compacted();
    h.kproduce(2, None, &["a1", "a2"], 0);
    h.kfetch(1, RC, "r1", krecords(&[(1, "a2")]), 2, 2, 2);
    // The same session goes back to an older version of the key.
    h.kfetch(0, RC, "r1", krecords(&[(0, "a1")]), 1, 2, 2);
    assert_caught(h, Invariant::CompactedRead);
}

#[test]
fn an_aborted_record_read_on_a_compacted_topic_is_caught() {
    let mut h = H::default();
    h.compacted();
    h.init(1, "t", 1, 0);
    h.add(1, T0, &[C0]);
    h.kproduce(1, Some(T0), &["a1"], 0);
    h.ended(1, T0, false);
    h.marker(C0, T0, false, 1);
    h.kfetch(0, RC, "r1", krecords(&[(0, "a1")]), 2, 2, 2);
    assert_caught(h, Invariant::ReadAborted);
}

#[test]
fn a_log_start_moved_by_compaction_is_caught() {
    let mut h = H::default();
    h.compacted();
    h.kproduce(2, None, &["a1", "a2"], 0);
    h.kstate(0, 2);
    h.kstate(1, 2);
    assert_caught(h, Invariant::LogStartFixed);
}

#[test]
fn a_record_removed_for_an_aborted_write_is_caught() {
    let mut h = H::default();
    h.compacted();
    h.kproduce(2, None, &["a1"], 0);
    h.init(1, "t", 1, 0);
    h.add(1, T0, &[C0]);
    h.kproduce(1, Some(T0), &["a2"], 1);
    h.ended(1, T0, false);
    h.marker(C0, T0, false, 2);
    // Compaction took the open a2 as a1's successor: a1 went, and a2 aborted.
    h.kfetch(0, RC, "r1", krecords(&[]), 3, 3, 3);
    assert_caught(h, Invariant::CompactedSkipped);
}

#[test]
fn a_record_removed_before_its_successor_was_sent_is_caught() {
    let mut h = H::default();
    h.compacted();
    h.kproduce(2, None, &["a1"], 0);
    h.kfetch(0, RC, "r1", krecords(&[]), 1, 1, 1);
    h.kproduce(2, None, &["a2"], 1);
    assert_caught(h, Invariant::CompactedSkipped);
}

#[test]
fn a_record_superseded_before_the_fetch_may_be_gone() {
    let mut h = H::default();
    h.compacted();
    h.kproduce(2, None, &["a1", "b1"], 0);
    h.kproduce(2, None, &["a2"], 2);
    h.kfetch(0, RC, "r1", krecords(&[(1, "b1"), (2, "a2")]), 3, 3, 3);
    let report = h.check();
    assert!(report.is_valid(), "{report}");
}

// ---- topics with retention ----------------------------------------------------------------

/// The retained topic of these tests, with a retention of 100 ms.
const R0: (&str, i32) = ("r", 0);
const KEEP_MS: i64 = 100;

impl H {
    fn retained(&mut self) {
        self.observe(Observation::Retention {
            topic: R0.0.into(),
            retention_ms: KEEP_MS,
        });
    }

    fn rstate(&mut self, log_start_offset: i64, hw: i64, lso: i64) {
        self.observe(Observation::PartitionState {
            topic: R0.0.into(),
            partition: R0.1,
            log_start_offset,
            high_watermark: hw,
            last_stable_offset: lso,
        });
    }

    fn roffsets(&mut self, p: u32, log_start_offset: i64, hw: i64, lso: i64) {
        self.invoke(
            p,
            Request::PartitionOffsets {
                topic: R0.0.into(),
                partition: R0.1,
            },
        );
        self.ok(
            p,
            Reply::PartitionOffsets {
                log_start_offset,
                high_watermark: hw,
                last_stable_offset: lso,
            },
        );
    }

    fn rout_of_range(&mut self, p: u32, offset: i64, reader: &str) {
        self.invoke(
            p,
            Request::Fetch {
                topic: R0.0.into(),
                partition: R0.1,
                offset,
                isolation: RC,
                reader: reader.into(),
            },
        );
        self.fail(p, ErrorCode::OffsetOutOfRange);
    }
}

/// x1 and x2 outside transactions and T0's v1 (marker at 3), read by r1; then `wait_ms`
/// pass, x3 is appended at 4 and that append's retention step deletes offsets 0 to 3. r1 goes
/// on; a second reader asks for offset 0, is refused, and goes on from the log start in a new
/// session.
fn retained_story(h: &mut H, wait_ms: i64) {
    h.retained();
    h.rstate(0, 0, 0);
    h.produce(2, R0, None, &["x1", "x2"], 0);
    h.rstate(0, 2, 2);
    h.init(1, "t", 1, 0);
    h.add(1, T0, &[R0]);
    h.produce(1, R0, Some(T0), &["v1"], 2);
    h.rstate(0, 3, 2);
    h.end(1, T0, true);
    h.marker(R0, T0, true, 3);
    h.rstate(0, 4, 4);
    h.ok(
        1,
        Reply::EndTxn {
            producer_id: None,
            state: TransactionState::CompleteCommit,
            producer_epoch: 1,
        },
    );
    h.fetch(
        3,
        R0,
        0,
        RC,
        "r1",
        &[(0, "x1"), (1, "x2"), (2, "v1")],
        4,
        4,
        4,
    );
    h.t += wait_ms;
    h.produce(2, R0, None, &["x3"], 4);
    h.rstate(4, 5, 5);
    h.fetch(3, R0, 4, RC, "r1", &[(4, "x3")], 5, 5, 5);
    h.rout_of_range(4, 0, "r2");
    h.roffsets(4, 4, 5, 5);
    h.fetch(4, R0, 4, RC, "r3", &[(4, "x3")], 5, 5, 5);
}

fn retained_end(h: &mut H, got: &[(i64, &str)]) {
    h.settle();
    h.scan(R0, RU, got, 5, 5);
    h.scan(R0, RC, got, 5, 5);
}

#[test]
fn a_good_history_with_retention_is_valid() {
    let mut h = H::default();
    retained_story(&mut h, KEEP_MS + 1);
    retained_end(&mut h, &[(4, "x3")]);
    let back = round_trip(&h.history());
    let report = check(&back).unwrap();
    println!("{}{report}", back.trace());
    assert!(report.is_valid(), "{report}");
    assert_eq!((report.committed_txns, report.aborted_txns), (1, 0));
}

#[test]
fn the_same_history_without_retention_is_caught() {
    let mut h = H::default();
    retained_story(&mut h, KEEP_MS + 1);
    retained_end(&mut h, &[(4, "x3")]);
    let history = undeclared(h.history(), |o| matches!(o, Observation::Retention { .. }));
    let report = check(&history).unwrap();
    assert!(report.has(Invariant::DenseOffsets), "{report}");
    assert!(report.has(Invariant::LostWrite), "{report}");
}

#[test]
fn records_deleted_before_they_expired_are_caught() {
    let mut h = H::default();
    retained_story(&mut h, KEEP_MS / 2);
    retained_end(&mut h, &[(4, "x3")]);
    let report = h.check();
    assert!(report.has(Invariant::RetentionExpired), "{report}");
    // Only retention's promise is broken: the records above the log start are all there.
    assert!(
        report
            .violations
            .iter()
            .all(|v| v.invariant == Invariant::RetentionExpired),
        "{report}"
    );
}

#[test]
fn a_write_lost_above_the_log_start_is_still_a_lost_write() {
    let mut h = H::default();
    retained_story(&mut h, KEEP_MS + 1);
    retained_end(&mut h, &[]);
    assert_caught(h, Invariant::LostWrite);
}

#[test]
fn retention_past_an_open_transaction_is_caught() {
    let mut h = H::default();
    retained_story(&mut h, KEEP_MS + 1);
    // T1 writes v2 at 5 and stays open while x4 lands at 6 and retention deletes v2.
    h.add(1, T1, &[R0]);
    h.produce(1, R0, Some(T1), &["v2"], 5);
    h.rstate(4, 6, 5);
    h.t += KEEP_MS + 1;
    h.produce(2, R0, None, &["x4"], 6);
    h.rstate(6, 7, 6);
    h.ended(1, T1, true);
    h.marker(R0, T1, true, 7);
    h.rstate(6, 8, 8);
    h.settle();
    h.scan(R0, RU, &[(6, "x4")], 8, 8);
    h.scan(R0, RC, &[(6, "x4")], 8, 8);
    assert_caught(h, Invariant::RetentionStable);
}

#[test]
fn a_log_start_going_back_is_caught() {
    let mut h = H::default();
    retained_story(&mut h, KEEP_MS + 1);
    h.rstate(2, 5, 5);
    assert_caught(h, Invariant::RetentionLogStart);
    // A partition-offsets answer sent after the log start reached 4 shows an older one.
    let mut h = H::default();
    retained_story(&mut h, KEEP_MS + 1);
    h.roffsets(4, 2, 5, 5);
    assert_caught(h, Invariant::RetentionLogStart);
}

#[test]
fn a_log_start_past_the_last_stable_offset_is_caught() {
    let mut h = H::default();
    retained_story(&mut h, KEEP_MS + 1);
    h.roffsets(4, 5, 5, 4);
    assert_caught(h, Invariant::RetentionLogStart);
}

#[test]
fn a_fetch_answered_below_the_log_start_is_caught() {
    let mut h = H::default();
    retained_story(&mut h, KEEP_MS + 1);
    h.fetch(5, R0, 0, RC, "r9", &[], 4, 5, 5);
    assert_caught(h, Invariant::RetentionLogStart);
    // From the log start, but answering a last stable offset below it.
    let mut h = H::default();
    retained_story(&mut h, KEEP_MS + 1);
    h.fetch(5, R0, 4, RC, "r9", &[], 4, 5, 3);
    assert_caught(h, Invariant::RetentionLogStart);
}

#[test]
fn a_missing_final_read_uncommitted_scan_is_reported_not_a_panic() {
    // A recorded run (tests/tests/history.rs) may end with only a read_committed scan of a
    // partition: the checker reports the missing scan instead of panicking.
    let mut h = H::default();
    ingest_story(&mut h);
    h.settle();
    h.scan(A0, RU, &[(0, "k1"), (1, "k3")], 2, 2);
    h.scan(A0, RC, &[(0, "k1"), (1, "k3")], 2, 2);
    h.scan(A1, RC, &[(0, "k2"), (1, "k4")], 2, 2);
    assert_caught(h, Invariant::LostWrite);
}

#[test]
fn a_producer_id_accepted_before_it_was_handed_out_is_caught() {
    // Plain produces use producer id 100 (`H::produce_req`).
    let mut h = H::default();
    h.observe(Observation::ProducerIds { below: 101 });
    h.produce(1, A0, None, &["x1"], 0);
    let report = h.check();
    assert!(report.is_valid(), "{report}");
    let mut h = H::default();
    h.observe(Observation::ProducerIds { below: 100 });
    h.produce(1, A0, None, &["x1"], 0);
    // Handed out only after the answer: too late.
    h.observe(Observation::ProducerIds { below: 101 });
    assert_caught(h, Invariant::ProducerIdHandedOut);
    // A history without allocations (recorded on wrangler dev) is not judged on this.
    let mut h = H::default();
    h.produce(1, A0, None, &["x1"], 0);
    assert!(h.check().is_valid());
}

#[test]
fn a_key_with_a_write_nobody_saw_placed_is_not_judged_on_its_latest() {
    // a1 is acknowledged at 0; the tombstone at2 of a later batch never answered (it may have
    // landed at 1, superseded a1, and gone with its delete retention).
    let mut h = H::default();
    h.compacted();
    h.kproduce(2, None, &["a1"], 0);
    let records = vec![KeyedValue {
        value: "at2".into(),
        key: "ka".into(),
        tombstone: true,
    }];
    h.observe(Observation::Keys { records });
    h.invoke(2, H::produce_req(C0, None, &["at2"], &[]));
    h.info(2);
    h.t += RETENTION_MS + 1;
    h.settle();
    h.kscans(&[], 2);
    let report = h.check();
    assert!(report.is_valid(), "{report}");
}
