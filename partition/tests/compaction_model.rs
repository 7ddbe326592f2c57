//! Compaction keeps, for every key, the latest committed value (proptest).
//!
//! Random interleavings on one compacted partition: keyed plain appends (values and
//! tombstones, several records and keys per batch), idempotent appends and exact retries of
//! them, transactions that write, commit or abort, single compaction steps, compaction run to
//! the end, clock ticks past the delete retention, and restarts (the core reopened on the same
//! SQLite, so compaction continues from its persisted state). A model keeps every data record
//! with its fate. After every step:
//!
//! - `verify()` holds (offsets increasing, rows consistent, the cleaned part has each key once
//!   and no aborted record);
//! - a read_committed scan from the log start (a few records per read, so reads start inside
//!   rows and gaps) returns records in increasing offset order, each exactly as written at its
//!   offset, never an aborted or open one, and for every key the same latest value as the model
//!   (a latest tombstone may be missing only once it is older than the delete retention);
//! - a scan from a random offset returns the full scan's suffix;
//! - a read_uncommitted scan never returns an aborted record below the cleaned offset nor a
//!   marker, and returns every record of an open transaction;
//! - a retry of any of the idempotent producer's last five batches answers its original offsets;
//! - after compaction runs to the end, the read_committed scan is exactly the latest record of
//!   every key below the last stable offset, minus expired tombstones.

use std::collections::BTreeMap;
use std::rc::Rc;

use kafdo_partition::{Partition, PartitionConfig};
use kafdo_sql::Sqlite;
use kafdo_types::api::{CleanupPolicy, Isolation, TopicConfig};
use kafdo_types::record::ProduceRecord;
use kafdo_types::rpc::{
    AppendRequest, PartitionRef, ProducerBatch, ReadRequest, RegisterTxnRequest, TxnResult,
    WriteMarkerRequest,
};
use kafdo_types::ErrorCode;
use proptest::prelude::*;

const DELETE_RETENTION_MS: i64 = 1_000;
const IDEMPOTENT_PID: i64 = 7;

/// One record to write: a key out of four and a value, or a tombstone (`None`).
type Put = (u8, Option<()>);

#[derive(Clone, Debug)]
enum Op {
    Plain(Vec<Put>),
    Idempotent(Vec<Put>),
    /// A retry of the idempotent producer's n-th last batch (of the last five).
    Retry(usize),
    Register(i64),
    TxnWrite(i64, Vec<Put>),
    End(i64, bool),
    Step,
    CompactAll,
    Tick(i64),
    Restart,
}

fn puts() -> impl Strategy<Value = Vec<Put>> {
    proptest::collection::vec(
        (0u8..4, prop_oneof![4 => Just(Some(())), 1 => Just(None)]),
        1..6,
    )
}

fn op() -> impl Strategy<Value = Op> {
    let pid = 0i64..2;
    prop_oneof![
        6 => puts().prop_map(Op::Plain),
        3 => puts().prop_map(Op::Idempotent),
        2 => (0usize..5).prop_map(Op::Retry),
        2 => pid.clone().prop_map(Op::Register),
        3 => (pid.clone(), puts()).prop_map(|(p, v)| Op::TxnWrite(p, v)),
        2 => (pid, any::<bool>()).prop_map(|(p, c)| Op::End(p, c)),
        5 => Just(Op::Step),
        2 => Just(Op::CompactAll),
        2 => (0i64..800).prop_map(Op::Tick),
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

#[derive(Clone, Debug)]
struct ModelRecord {
    key: Vec<u8>,
    value: Option<Vec<u8>>,
    timestamp: i64,
    fate: Fate,
}

#[derive(Default, Clone)]
struct Txn {
    epoch: i32,
    registered: bool,
    next_sequence: i32,
    open_first: Option<i64>,
}

#[derive(Default)]
struct Model {
    records: BTreeMap<i64, ModelRecord>,
    txns: BTreeMap<i64, Txn>,
    high_watermark: i64,
    idempotent_sequence: i32,
    /// (base_sequence, records, base_offset, last_offset) of the idempotent producer's batches.
    idempotent_batches: Vec<(i32, Vec<ProduceRecord>, i64, i64)>,
}

impl Model {
    fn last_stable_offset(&self) -> i64 {
        self.txns
            .values()
            .filter_map(|t| t.open_first)
            .min()
            .unwrap_or(self.high_watermark)
    }

    /// The latest committed record of every key below `end`.
    fn latest(&self, end: i64) -> BTreeMap<Vec<u8>, (i64, &ModelRecord)> {
        let mut latest = BTreeMap::new();
        for (&offset, r) in self.records.range(..end) {
            if matches!(r.fate, Fate::Plain | Fate::Committed) {
                latest.insert(r.key.clone(), (offset, r));
            }
        }
        latest
    }
}

fn pref() -> PartitionRef {
    PartitionRef {
        topic: "t".into(),
        topic_id: "1-t".into(),
        partition: 0,
        config: TopicConfig {
            cleanup_policy: CleanupPolicy::Compact,
            ..TopicConfig::default()
        },
    }
}

fn config() -> PartitionConfig {
    PartitionConfig {
        delete_retention_ms: DELETE_RETENTION_MS,
        compaction_interval_ms: 0,
        ..PartitionConfig::default()
    }
}

type Scanned = Vec<(i64, Vec<u8>, Option<Vec<u8>>)>;

fn scan(
    core: &mut Partition<Rc<Sqlite>>,
    from: i64,
    isolation: Isolation,
    max_records: u32,
) -> Scanned {
    let mut out = Vec::new();
    let mut offset = from;
    loop {
        let r = core
            .read(
                &ReadRequest {
                    partition: pref(),
                    offset,
                    max_records,
                    max_bytes: 1 << 20,
                    isolation,
                    wait_ms: 0,
                },
                0,
            )
            .unwrap();
        let end = match isolation {
            Isolation::ReadCommitted => r.last_stable_offset,
            Isolation::ReadUncommitted => r.high_watermark,
        };
        assert!(r.next_offset <= end);
        for rec in &r.records {
            assert!(rec.offset >= offset && rec.offset < end);
            assert!(rec.offset < r.next_offset);
            out.push((rec.offset, rec.key.clone().unwrap(), rec.value.clone()));
        }
        if r.next_offset == end {
            assert!(out.windows(2).all(|w| w[0].0 < w[1].0));
            return out;
        }
        assert!(
            r.next_offset > offset,
            "a read below the end always progresses"
        );
        offset = r.next_offset;
    }
}

fn records(puts: &[Put], counter: &mut u64) -> Vec<ProduceRecord> {
    puts.iter()
        .map(|&(k, v)| {
            *counter += 1;
            ProduceRecord {
                key: Some(format!("k{k}").into_bytes()),
                value: v.map(|()| format!("v{counter}").into_bytes()),
                ..ProduceRecord::default()
            }
        })
        .collect()
}

fn compact_all(core: &mut Partition<Rc<Sqlite>>, now_ms: i64) {
    for _ in 0..1_000 {
        let step = core.compact(now_ms).unwrap();
        if step.rows_read == 0 && !step.round_finished {
            return;
        }
    }
    panic!("compaction does not come to an end");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn compaction_keeps_the_latest_committed_value_of_every_key(
        ops in proptest::collection::vec(op(), 1..60),
        read_size in 1u32..5,
        from_seed in any::<u64>(),
    ) {
        let db = Rc::new(Sqlite::memory());
        let mut now_ms = 10_000;
        let mut core = Partition::open_with_config(db.clone(), now_ms, config()).unwrap();
        let mut model = Model::default();
        let mut counter = 0u64;
        for op in ops {
            let compacted_all = matches!(op, Op::CompactAll);
            match op {
                Op::Plain(puts) => {
                    let recs = records(&puts, &mut counter);
                    let r = core.append(&AppendRequest {
                        partition: pref(), producer: None, transactional: false,
                        producer_ids_below: kafdo_types::rpc::ANY_PRODUCER_ID, records: recs.clone(),
                    }, now_ms).unwrap();
                    for (i, rec) in recs.into_iter().enumerate() {
                        model.records.insert(r.base_offset + i as i64, ModelRecord {
                            key: rec.key.unwrap(), value: rec.value, timestamp: now_ms, fate: Fate::Plain,
                        });
                    }
                    model.high_watermark = r.last_offset + 1;
                }
                Op::Idempotent(puts) => {
                    let recs = records(&puts, &mut counter);
                    let base_sequence = model.idempotent_sequence;
                    let r = core.append(&AppendRequest {
                        partition: pref(),
                        producer: Some(ProducerBatch { producer_id: IDEMPOTENT_PID, producer_epoch: 0, base_sequence }),
                        transactional: false,
                        producer_ids_below: kafdo_types::rpc::ANY_PRODUCER_ID,
                        records: recs.clone(),
                    }, now_ms).unwrap();
                    prop_assert!(!r.duplicate);
                    prop_assert_eq!(r.base_offset, model.high_watermark);
                    for (i, rec) in recs.iter().enumerate() {
                        model.records.insert(r.base_offset + i as i64, ModelRecord {
                            key: rec.key.clone().unwrap(), value: rec.value.clone(), timestamp: now_ms, fate: Fate::Plain,
                        });
                    }
                    model.idempotent_sequence += recs.len() as i32;
                    model.idempotent_batches.push((base_sequence, recs, r.base_offset, r.last_offset));
                    model.high_watermark = r.last_offset + 1;
                }
                Op::Retry(n) => {
                    let batches = &model.idempotent_batches;
                    if n >= batches.len().min(5) { continue; }
                    let (base_sequence, recs, base, last) = batches[batches.len() - 1 - n].clone();
                    let r = core.append(&AppendRequest {
                        partition: pref(),
                        producer: Some(ProducerBatch { producer_id: IDEMPOTENT_PID, producer_epoch: 0, base_sequence }),
                        transactional: false,
                        producer_ids_below: kafdo_types::rpc::ANY_PRODUCER_ID,
                        records: recs,
                    }, now_ms).unwrap();
                    prop_assert!(r.duplicate, "a retry of a remembered batch is a duplicate");
                    prop_assert_eq!((r.base_offset, r.last_offset), (base, last));
                }
                Op::Register(id) => {
                    let t = model.txns.entry(id).or_default();
                    core.register_txn(&RegisterTxnRequest {
                        txn_seq: 0,
                        partition: pref(),
                        transactional_id: format!("tx-{id}"),
                        producer_id: id,
                        producer_epoch: t.epoch,
                    }, now_ms).unwrap();
                    t.registered = true;
                }
                Op::TxnWrite(id, puts) => {
                    let t = model.txns.entry(id).or_default();
                    let recs = records(&puts, &mut counter);
                    let r = core.append(&AppendRequest {
                        partition: pref(),
                        producer: Some(ProducerBatch { producer_id: id, producer_epoch: t.epoch, base_sequence: t.next_sequence }),
                        transactional: true,
                        producer_ids_below: kafdo_types::rpc::ANY_PRODUCER_ID,
                        records: recs.clone(),
                    }, now_ms);
                    if !t.registered {
                        prop_assert_eq!(r.map_err(|e| e.code()), Err(ErrorCode::InvalidTxnRegistration));
                        continue;
                    }
                    let r = r.unwrap();
                    for (i, rec) in recs.iter().enumerate() {
                        model.records.insert(r.base_offset + i as i64, ModelRecord {
                            key: rec.key.clone().unwrap(), value: rec.value.clone(), timestamp: now_ms, fate: Fate::Open(id),
                        });
                    }
                    t.open_first.get_or_insert(r.base_offset);
                    t.next_sequence += recs.len() as i32;
                    model.high_watermark = r.last_offset + 1;
                }
                Op::End(id, commit) => {
                    let t = model.txns.entry(id).or_default();
                    let ack = core.write_marker(&WriteMarkerRequest {
                        txn_seq: 0,
                        partition: pref(),
                        producer_id: id,
                        producer_epoch: t.epoch,
                        result: if commit { TxnResult::Commit } else { TxnResult::Abort },
                    }, now_ms).unwrap();
                    prop_assert_eq!(ack.marker_offset.is_some(), t.open_first.is_some());
                    if ack.marker_offset.is_some() {
                        model.high_watermark += 1;
                    }
                    let fate = if commit { Fate::Committed } else { Fate::Aborted };
                    for r in model.records.values_mut().filter(|r| r.fate == Fate::Open(id)) {
                        r.fate = fate;
                    }
                    *t = Txn { epoch: t.epoch + 1, ..Txn::default() };
                }
                Op::Step => {
                    core.compact(now_ms).unwrap();
                }
                Op::CompactAll => {
                    compact_all(&mut core, now_ms);
                }
                Op::Tick(ms) => now_ms += ms,
                Op::Restart => {
                    drop(core);
                    core = Partition::open_with_config(db.clone(), now_ms, config()).unwrap();
                }
            }
            core.verify().unwrap();
            let info = core.info(&pref()).unwrap();
            prop_assert_eq!(info.log_start_offset, 0, "compaction never moves the log start");
            prop_assert_eq!(info.high_watermark, model.high_watermark);
            let lso = model.last_stable_offset();
            prop_assert_eq!(info.last_stable_offset, lso);
            prop_assert!(core.cleaned_offset() <= lso);

            // read_committed: each record as written, committed, and the latest per key.
            let committed = scan(&mut core, 0, Isolation::ReadCommitted, read_size);
            let mut seen: BTreeMap<Vec<u8>, (i64, Option<Vec<u8>>)> = BTreeMap::new();
            for (offset, key, value) in &committed {
                let m = model.records.get(offset).expect("a record the model wrote");
                prop_assert!(matches!(m.fate, Fate::Plain | Fate::Committed), "offset {} is {:?}", offset, m.fate);
                prop_assert_eq!((&m.key, &m.value), (key, value));
                seen.insert(key.clone(), (*offset, value.clone()));
            }
            let latest = model.latest(lso);
            let expired = |m: &ModelRecord| m.value.is_none() && m.timestamp < now_ms - DELETE_RETENTION_MS;
            for (key, (offset, m)) in &latest {
                match seen.get(key) {
                    Some((o, _)) => prop_assert_eq!(o, offset, "key {:?}: not its latest record", key),
                    None => prop_assert!(expired(m), "key {:?}: its latest record {} is gone", key, offset),
                }
            }
            prop_assert!(seen.len() <= latest.len());
            if compacted_all {
                let mut exact: Scanned = latest.iter()
                    .filter(|(_, (_, m))| !expired(m))
                    .map(|(k, (o, m))| (*o, k.clone(), m.value.clone()))
                    .collect();
                exact.sort();
                prop_assert_eq!(&committed, &exact, "after compaction to the end");
            }

            // A read from any offset is the suffix of the full scan (gaps at the start too).
            {
                let from = (from_seed % (lso as u64 + 1)) as i64;
                let suffix = scan(&mut core, from, Isolation::ReadCommitted, read_size);
                let expected: Scanned = committed.iter().filter(|r| r.0 >= from).cloned().collect();
                prop_assert_eq!(suffix, expected);
            }

            // read_uncommitted: as written; aborted records only where not yet cleaned; every
            // open record.
            let uncommitted = scan(&mut core, 0, Isolation::ReadUncommitted, read_size);
            for (offset, key, value) in &uncommitted {
                let m = model.records.get(offset).expect("a record the model wrote");
                prop_assert_eq!((&m.key, &m.value), (key, value));
                prop_assert!(!(m.fate == Fate::Aborted && *offset < core.cleaned_offset()));
            }
            for (offset, m) in &model.records {
                if matches!(m.fate, Fate::Open(_)) {
                    prop_assert!(uncommitted.iter().any(|r| r.0 == *offset), "open record {} gone", offset);
                }
            }
        }
    }
}
