//! The idempotent producer against a simple in-memory model (proptest).
//!
//! Random sequences of appends (next sequence, gaps, sequence 0, random sequences, old and new
//! epochs), exact retries of earlier accepted batches, clock ticks (past the expiry too) and
//! restarts (drop the core, reopen on the same SQLite) run against both the real partition on
//! SQLite and a model written from the rules alone: per producer, the current epoch, *every*
//! batch of that epoch (a retry is a duplicate only when it is among the last five), and the
//! last append time. Every answer must agree (offsets, `duplicate`, error code), and the log
//! read back must hold exactly the model's records, each once, in order.

use std::collections::BTreeMap;
use std::rc::Rc;

use kafdo_partition::{Partition, PartitionConfig};
use kafdo_sql::Sqlite;
use kafdo_types::api::{Isolation, TopicConfig};
use kafdo_types::record::ProduceRecord;
use kafdo_types::rpc::{AppendRequest, PartitionRef, ProducerBatch, ReadRequest};
use kafdo_types::ErrorCode;
use proptest::prelude::*;

const EXPIRY_MS: i64 = 10_000;
const MAX_PRODUCERS: usize = 3;

#[derive(Clone, Debug)]
enum Seq {
    /// The sequence the model expects next.
    Next,
    /// Zero.
    Zero,
    /// One past the expected: a gap.
    Gap,
    /// Anything small.
    Any(i32),
}

#[derive(Clone, Debug)]
enum Op {
    Append {
        producer_id: i64,
        epoch_delta: i32,
        seq: Seq,
        records: usize,
    },
    /// Resend the `n`-th most recent accepted batch, exactly.
    Retry(usize),
    Tick(i64),
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    let seq = prop_oneof![
        6 => Just(Seq::Next),
        1 => Just(Seq::Zero),
        1 => Just(Seq::Gap),
        1 => (0i32..12).prop_map(Seq::Any),
    ];
    prop_oneof![
        8 => (0i64..5, prop_oneof![6 => Just(0), 1 => Just(1), 1 => Just(-1)], seq, 1usize..4)
            .prop_map(|(producer_id, epoch_delta, seq, records)| Op::Append {
                producer_id,
                epoch_delta,
                seq,
                records,
            }),
        3 => (0usize..8).prop_map(Op::Retry),
        1 => prop_oneof![3 => 1i64..500, 1 => Just(EXPIRY_MS + 1)].prop_map(Op::Tick),
        1 => Just(Op::Restart),
    ]
}

/// One batch as the model remembers it.
#[derive(Clone, Copy, Debug, PartialEq)]
struct ModelBatch {
    first: i32,
    last: i32,
    base_offset: i64,
    last_offset: i64,
}

#[derive(Clone, Debug)]
struct ModelProducer {
    epoch: i32,
    /// Every batch of the current epoch, oldest first.
    batches: Vec<ModelBatch>,
    last_seen_ms: i64,
}

#[derive(Default)]
struct Model {
    producers: BTreeMap<i64, ModelProducer>,
    /// The value of every record in the log, in offset order.
    log: Vec<String>,
}

type Answer = Result<(i64, i64, bool), ErrorCode>;

fn wrap(seq: i64) -> i32 {
    (seq % (i64::from(i32::MAX) + 1)) as i32
}

impl Model {
    fn expected_next(&self, producer_id: i64) -> i32 {
        self.producers
            .get(&producer_id)
            .and_then(|p| p.batches.last())
            .map_or(0, |b| wrap(i64::from(b.last) + 1))
    }

    fn epoch(&self, producer_id: i64) -> i32 {
        self.producers.get(&producer_id).map_or(0, |p| p.epoch)
    }

    fn append(
        &mut self,
        producer_id: i64,
        epoch: i32,
        first: i32,
        values: &[String],
        now_ms: i64,
    ) -> Answer {
        // Expired producers are as good as unknown.
        self.producers
            .retain(|_, p| now_ms - p.last_seen_ms <= EXPIRY_MS);
        let last = wrap(i64::from(first) + values.len() as i64 - 1);
        let base_offset = self.log.len() as i64;
        let last_offset = base_offset + values.len() as i64 - 1;
        let new_batch = ModelBatch {
            first,
            last,
            base_offset,
            last_offset,
        };
        match self.producers.get_mut(&producer_id) {
            None => {
                if first != 0 {
                    return Err(ErrorCode::UnknownProducerId);
                }
                while self.producers.len() >= MAX_PRODUCERS {
                    let idlest = *self
                        .producers
                        .iter()
                        .min_by_key(|(id, p)| (p.last_seen_ms, **id))
                        .unwrap()
                        .0;
                    self.producers.remove(&idlest);
                }
                self.producers.insert(
                    producer_id,
                    ModelProducer {
                        epoch,
                        batches: vec![new_batch],
                        last_seen_ms: now_ms,
                    },
                );
            }
            Some(p) if epoch < p.epoch => return Err(ErrorCode::ProducerFenced),
            Some(p) if epoch > p.epoch => {
                if first != 0 {
                    return Err(ErrorCode::OutOfOrderSequenceNumber);
                }
                *p = ModelProducer {
                    epoch,
                    batches: vec![new_batch],
                    last_seen_ms: now_ms,
                };
            }
            Some(p) => {
                let recent = &p.batches[p.batches.len().saturating_sub(5)..];
                if let Some(b) = recent.iter().find(|b| b.first == first && b.last == last) {
                    return Ok((b.base_offset, b.last_offset, true));
                }
                let next = p.batches.last().map_or(0, |b| wrap(i64::from(b.last) + 1));
                if first != next {
                    return Err(ErrorCode::OutOfOrderSequenceNumber);
                }
                p.batches.push(new_batch);
                p.last_seen_ms = now_ms;
            }
        }
        self.log.extend(values.iter().cloned());
        Ok((base_offset, last_offset, false))
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

fn read_all(core: &mut Partition<Rc<Sqlite>>) -> Vec<String> {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let r = core
            .read(
                &ReadRequest {
                    partition: pref(),
                    offset,
                    max_records: 7,
                    max_bytes: 1 << 20,
                    isolation: Isolation::ReadCommitted,
                    wait_ms: 0,
                },
                0,
            )
            .unwrap();
        for (i, rec) in r.records.iter().enumerate() {
            assert_eq!(rec.offset, offset + i as i64, "offsets are dense");
            out.push(String::from_utf8(rec.value.clone().unwrap()).unwrap());
        }
        if r.next_offset == r.high_watermark {
            return out;
        }
        offset = r.next_offset;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn producer_state_matches_the_model(ops in proptest::collection::vec(op(), 1..80)) {
        let config = PartitionConfig { producer_expiry_ms: EXPIRY_MS, max_producers: MAX_PRODUCERS, ..PartitionConfig::default() };
        let db = Rc::new(Sqlite::memory());
        let mut now_ms = 1_000;
        let mut core = Partition::open_with_config(db.clone(), now_ms, config).unwrap();
        let mut model = Model::default();
        // Accepted batches, for retries: (producer id, epoch, base sequence, values).
        let mut sent: Vec<(i64, i32, i32, Vec<String>)> = Vec::new();
        let mut counter = 0;
        for op in ops {
            let (producer_id, epoch, first, values) = match op {
                Op::Tick(ms) => { now_ms += ms; continue; }
                Op::Restart => {
                    drop(core);
                    core = Partition::open_with_config(db.clone(), now_ms, config).unwrap();
                    continue;
                }
                Op::Retry(n) => {
                    let Some(batch) = sent.iter().rev().nth(n) else { continue };
                    batch.clone()
                }
                Op::Append { producer_id, epoch_delta, seq, records } => {
                    let epoch = (model.epoch(producer_id) + epoch_delta).max(0);
                    let next = model.expected_next(producer_id);
                    let first = match seq {
                        Seq::Next => next,
                        Seq::Zero => 0,
                        Seq::Gap => wrap(i64::from(next) + 1),
                        Seq::Any(s) => s,
                    };
                    let values = (0..records).map(|_| { counter += 1; format!("v{counter}") }).collect();
                    (producer_id, epoch, first, values)
                }
            };
            let expected = model.append(producer_id, epoch, first, &values, now_ms);
            let req = AppendRequest {
                partition: pref(),
                producer: Some(ProducerBatch { producer_id, producer_epoch: epoch, base_sequence: first }),
                transactional: false,
                producer_ids_below: kafdo_types::rpc::ANY_PRODUCER_ID,
                records: values.iter().map(|v| ProduceRecord::value(v.clone())).collect(),
            };
            let actual = core
                .append(&req, now_ms)
                .map(|r| (r.base_offset, r.last_offset, r.duplicate))
                .map_err(|e| e.code());
            prop_assert_eq!(actual, expected, "append pid={} epoch={} seq={} n={}", producer_id, epoch, first, values.len());
            if matches!(actual, Ok((_, _, false))) {
                sent.push((producer_id, epoch, first, values));
            }
            core.verify().unwrap();
        }
        core.verify().unwrap();
        prop_assert_eq!(read_all(&mut core), model.log.clone());
        drop(core);
        let mut core = Partition::open_with_config(db.clone(), now_ms, config).unwrap();
        core.verify().unwrap();
        prop_assert_eq!(read_all(&mut core), model.log);
    }
}
