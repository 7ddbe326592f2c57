//! read_committed never sees aborted or open records (proptest).
//!
//! Random interleavings of what a coordinator and its producers do to one partition:
//! registrations, transactional and plain writes, commit and abort markers (each followed by
//! the epoch bump of KIP-890 part 2), stale markers and registrations of older epochs
//! (duplicates, delayed ones), plain appends and restarts. A model tracks every data record's
//! fate (plain, open, committed, aborted). After every step:
//!
//! - the last stable offset is the first offset of the oldest open transaction (else the high
//!   watermark), and never above the high watermark;
//! - a read_committed scan from offset 0 returns exactly the plain and committed records below
//!   the last stable offset, in order, each once: never an aborted or open record;
//! - a read_uncommitted scan returns every data record, never a marker.

use std::collections::BTreeMap;
use std::rc::Rc;

use kafdo_partition::Partition;
use kafdo_sql::Sqlite;
use kafdo_types::api::{Isolation, TopicConfig};
use kafdo_types::record::ProduceRecord;
use kafdo_types::rpc::{
    AppendRequest, PartitionRef, ProducerBatch, ReadRequest, RegisterTxnRequest, TxnResult,
    WriteMarkerRequest,
};
use kafdo_types::ErrorCode;
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Register(i64),
    /// A transactional write of the producer's current epoch.
    TxnWrite(i64, usize),
    /// A plain (non-idempotent) append.
    Plain(usize),
    /// The coordinator ends the current transaction of the producer.
    End(i64, bool),
    /// A duplicate or delayed marker of an older epoch.
    StaleMarker(i64, bool),
    /// A delayed registration of an older epoch.
    StaleRegister(i64),
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    let pid = 0i64..3;
    prop_oneof![
        3 => pid.clone().prop_map(Op::Register),
        6 => (pid.clone(), 1usize..4).prop_map(|(p, n)| Op::TxnWrite(p, n)),
        2 => (1usize..3).prop_map(Op::Plain),
        3 => (pid.clone(), any::<bool>()).prop_map(|(p, c)| Op::End(p, c)),
        1 => (pid.clone(), any::<bool>()).prop_map(|(p, c)| Op::StaleMarker(p, c)),
        1 => pid.prop_map(Op::StaleRegister),
        1 => Just(Op::Restart),
    ]
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Fate {
    Plain,
    Open(i64),
    Committed,
    Aborted,
}

#[derive(Default, Clone)]
struct Producer {
    epoch: i32,
    registered: bool,
    next_sequence: i32,
    /// Offsets of the current transaction's records here.
    open_offsets: Vec<i64>,
}

#[derive(Default)]
struct Model {
    producers: BTreeMap<i64, Producer>,
    /// (offset, value, fate) of every data record; markers take offsets but are not listed.
    records: Vec<(i64, String, Fate)>,
    high_watermark: i64,
}

impl Model {
    fn last_stable_offset(&self) -> i64 {
        self.producers
            .values()
            .filter_map(|p| p.open_offsets.first().copied())
            .min()
            .unwrap_or(self.high_watermark)
    }
}

fn pref() -> PartitionRef {
    PartitionRef {
        topic: "t".into(),
        topic_id: "1-t".into(),
        partition: 0,
        config: TopicConfig::default(),
    }
}

fn scan(core: &mut Partition<Rc<Sqlite>>, isolation: Isolation) -> (Vec<(i64, String)>, i64) {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let r = core
            .read(
                &ReadRequest {
                    partition: pref(),
                    offset,
                    max_records: 3,
                    max_bytes: 1 << 20,
                    isolation,
                    wait_ms: 0,
                },
                0,
            )
            .unwrap();
        assert!(r.last_stable_offset <= r.high_watermark);
        let end = match isolation {
            Isolation::ReadCommitted => r.last_stable_offset,
            Isolation::ReadUncommitted => r.high_watermark,
        };
        assert!(r.next_offset <= end);
        for rec in &r.records {
            assert!(rec.offset >= offset && rec.offset < end);
            out.push((
                rec.offset,
                String::from_utf8(rec.value.clone().unwrap()).unwrap(),
            ));
        }
        if r.next_offset == end {
            return (out, r.last_stable_offset);
        }
        assert!(
            r.next_offset > offset,
            "a read below the end always progresses"
        );
        offset = r.next_offset;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn read_committed_never_sees_aborted_or_open_records(ops in proptest::collection::vec(op(), 1..60)) {
        let db = Rc::new(Sqlite::memory());
        let now_ms = 5_000;
        let mut core = Partition::open(db.clone(), now_ms).unwrap();
        let mut model = Model::default();
        let mut counter = 0;
        let mut value = || { counter += 1; format!("v{counter}") };
        for op in ops {
            match op {
                Op::Register(id) => {
                    let p = model.producers.entry(id).or_default();
                    let r = core.register_txn(&RegisterTxnRequest {
                        txn_seq: 0,
                        partition: pref(),
                        transactional_id: format!("tx-{id}"),
                        producer_id: id,
                        producer_epoch: p.epoch,
                    }, now_ms);
                    prop_assert!(r.is_ok(), "registering the current epoch: {:?}", r);
                    p.registered = true;
                }
                Op::StaleRegister(id) => {
                    let p = model.producers.entry(id).or_default();
                    if p.epoch == 0 { continue; }
                    let r = core.register_txn(&RegisterTxnRequest {
                        txn_seq: 0,
                        partition: pref(),
                        transactional_id: format!("tx-{id}"),
                        producer_id: id,
                        producer_epoch: p.epoch - 1,
                    }, now_ms);
                    prop_assert_eq!(r.map_err(|e| e.code()), Err(ErrorCode::ProducerFenced));
                }
                Op::TxnWrite(id, n) => {
                    let p = model.producers.entry(id).or_default();
                    let values: Vec<String> = (0..n).map(|_| value()).collect();
                    let r = core.append(&AppendRequest {
                        partition: pref(),
                        producer: Some(ProducerBatch {
                            producer_id: id,
                            producer_epoch: p.epoch,
                            base_sequence: p.next_sequence,
                        }),
                        transactional: true,
                        producer_ids_below: kafdo_types::rpc::ANY_PRODUCER_ID,
                        records: values.iter().map(|v| ProduceRecord::value(v.clone())).collect(),
                    }, now_ms);
                    if !p.registered {
                        prop_assert_eq!(r.map_err(|e| e.code()), Err(ErrorCode::InvalidTxnRegistration));
                        continue;
                    }
                    let r = r.unwrap();
                    prop_assert_eq!(r.base_offset, model.high_watermark);
                    prop_assert!(!r.duplicate);
                    for (i, v) in values.into_iter().enumerate() {
                        let offset = r.base_offset + i as i64;
                        p.open_offsets.push(offset);
                        model.records.push((offset, v, Fate::Open(id)));
                    }
                    p.next_sequence += n as i32;
                    model.high_watermark = r.last_offset + 1;
                }
                Op::Plain(n) => {
                    let values: Vec<String> = (0..n).map(|_| value()).collect();
                    let r = core.append(&AppendRequest {
                        partition: pref(),
                        producer: None,
                        transactional: false,
                        producer_ids_below: kafdo_types::rpc::ANY_PRODUCER_ID,
                        records: values.iter().map(|v| ProduceRecord::value(v.clone())).collect(),
                    }, now_ms).unwrap();
                    for (i, v) in values.into_iter().enumerate() {
                        model.records.push((r.base_offset + i as i64, v, Fate::Plain));
                    }
                    model.high_watermark = r.last_offset + 1;
                }
                Op::End(id, commit) => {
                    let p = model.producers.entry(id).or_default();
                    let ack = core.write_marker(&WriteMarkerRequest {
                        txn_seq: 0,
                        partition: pref(),
                        producer_id: id,
                        producer_epoch: p.epoch,
                        result: if commit { TxnResult::Commit } else { TxnResult::Abort },
                    }, now_ms).unwrap();
                    prop_assert_eq!(ack.marker_offset.is_some(), !p.open_offsets.is_empty());
                    if let Some(marker) = ack.marker_offset {
                        prop_assert_eq!(marker, model.high_watermark);
                        model.high_watermark += 1;
                    }
                    let fate = if commit { Fate::Committed } else { Fate::Aborted };
                    for r in model.records.iter_mut().filter(|r| r.2 == Fate::Open(id)) {
                        r.2 = fate;
                    }
                    // KIP-890 part 2: the next transaction has a new epoch, from sequence 0.
                    *p = Producer { epoch: p.epoch + 1, ..Producer::default() };
                }
                Op::StaleMarker(id, commit) => {
                    let p = model.producers.entry(id).or_default();
                    if p.epoch == 0 { continue; }
                    let ack = core.write_marker(&WriteMarkerRequest {
                        txn_seq: 0,
                        partition: pref(),
                        producer_id: id,
                        producer_epoch: p.epoch - 1,
                        result: if commit { TxnResult::Commit } else { TxnResult::Abort },
                    }, now_ms).unwrap();
                    prop_assert_eq!(ack.marker_offset, None);
                }
                Op::Restart => {
                    drop(core);
                    core = Partition::open(db.clone(), now_ms).unwrap();
                }
            }
            core.verify().unwrap();
            let info = core.info(&pref()).unwrap();
            prop_assert_eq!(info.high_watermark, model.high_watermark);
            prop_assert_eq!(info.last_stable_offset, model.last_stable_offset());
            let lso = model.last_stable_offset();
            let expected: Vec<(i64, String)> = model.records.iter()
                .filter(|r| r.0 < lso && matches!(r.2, Fate::Plain | Fate::Committed))
                .map(|r| (r.0, r.1.clone()))
                .collect();
            let (committed, _) = scan(&mut core, Isolation::ReadCommitted);
            prop_assert_eq!(committed, expected);
            let everything: Vec<(i64, String)> = model.records.iter().map(|r| (r.0, r.1.clone())).collect();
            let (uncommitted, _) = scan(&mut core, Isolation::ReadUncommitted);
            prop_assert_eq!(uncommitted, everything);
        }
    }
}
