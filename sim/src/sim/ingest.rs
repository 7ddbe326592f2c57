//! Keyed ingestion (`Idempotency-Key`) in the simulator: the Worker's multi-step protocol as a
//! state machine, the `IdempotencyKey` objects, and the scripts the ingestion clients run.
//!
//! # The Worker's run
//!
//! A keyed `POST /v1/topics/{t}/records` is not one object call but a protocol the Worker
//! drives (`worker/src/txn_routes.rs::keyed_produce`, over `worker/src/objects/ingest.rs`).
//! Each request that reaches the simulated Worker becomes a [`Run`], which makes the same calls
//! in the same order, each through the simulated network (dropped, duplicated, delayed) and
//! each with the Worker's call deadline:
//!
//! 1. a producer id is proposed (from the metadata object, as the isolate's block does), and
//!    `begin` goes to the key's object, named `{topic}/{key}`;
//! 2. on `Proceed`, one idempotent append per partition (the key's producer id, epoch 0, base
//!    sequence 0), all at once, routed deterministically (explicit partition, else murmur2 of
//!    the record key, else the partition the fingerprint picks);
//! 3. when every append answered: `complete` with the offsets, then the answer; if any append
//!    failed, or `complete` did, `release`, then the first failure.
//!
//! `Done` answers the stored offsets at once; `InFlight` is the 409; any other refusal or a
//! deadline passed is the client's error. A run may die at any point (the isolate is killed):
//! nothing more is sent, the lease runs out by itself.
//!
//! # The key objects
//!
//! Each is a [`kafdo_ingest::IdempotencyKey`] over its own SQLite, adapted as
//! `worker/src/objects/ingest.rs` does: after a `begin` that proceeds, the alarm is set to the
//! key's expiry; the alarm forgets expired keys and, when nothing is left, deletes all of the
//! object's storage. Restarts drop the core and keep the database. With faults on, an object
//! (key or partition) sometimes dies right after a step of a run, before answering it.

use std::rc::Rc;

use kafdo_ingest::{Begin, BeginRequest, IdempotencyKey, IngestError};
use kafdo_sql::{Sql, Sqlite};
use kafdo_types::api::{PartitionProduceResponse, RecordOffset};
use kafdo_types::partitioner::plan_produce;
use kafdo_types::rpc::AppendRequest;
use kafdo_types::{ApiError, ErrorCode, ProduceRecord};

use super::clients::{ClientAns, ClientReq, IngestEntry};
use super::{Db, Event, Msg, Target, World};
use crate::history::{IngestRecord, Process, Tp};
use crate::rng::Rng;

/// The Worker's deadline for each object call (`router::OBJECT_CALL_TIMEOUT_MS`).
pub const WORKER_CALL_TIMEOUT_MS: i64 = 15_000;

/// The longest a request can take to reach a key's object after the client sent it: the
/// client's request to the Worker and the Worker's `begin`, each delayed at most 5 s, plus a
/// margin. A client retries a key only while it is younger than the key's TTL minus this.
pub const MAX_BEGIN_LATENCY_MS: i64 = 12_000;

/// A call of a run.
#[derive(Clone, Debug)]
pub enum RunCall {
    /// `/ingest/begin`.
    Begin(BeginRequest),
    /// `/ingest/complete`.
    Complete {
        producer_id: i64,
        attempt: i64,
        offsets: Vec<RecordOffset>,
    },
    /// `/ingest/release`.
    Release { producer_id: i64, attempt: i64 },
    /// `/partition/append` of one batch.
    Append(AppendRequest),
}

/// The answer to a [`RunCall`].
#[derive(Clone, Debug)]
pub enum RunAns {
    /// `begin`: proceed with this producer id and attempt.
    Proceed { producer_id: i64, attempt: i64 },
    /// `begin`: answered before.
    Answered(Vec<RecordOffset>),
    /// `begin`: another attempt holds the key.
    InFlight { retry_after_ms: i64 },
    /// `complete` or `release` done.
    Done,
    /// An append's answer.
    Produced(PartitionProduceResponse),
}

#[derive(Clone, Debug)]
enum Stage {
    Begin,
    Append {
        producer_id: i64,
        attempt: i64,
    },
    Complete {
        producer_id: i64,
        attempt: i64,
        offsets: Vec<RecordOffset>,
    },
    Release(ApiError),
}

/// One keyed request inside the simulated Worker.
pub(super) struct Run {
    from: Process,
    request: u64,
    topic: String,
    object: String,
    fingerprint: Vec<u8>,
    records: Vec<ProduceRecord>,
    stage: Stage,
    /// Outstanding calls: call id -> the batch index of an append (0 for the key's calls).
    pending: std::collections::BTreeMap<u32, usize>,
    batches: Vec<Batch>,
    slots: Vec<(usize, usize)>,
    answers: Vec<Option<Result<PartitionProduceResponse, ApiError>>>,
    next_call: u32,
}

/// An `IdempotencyKey` object.
pub(super) struct KeySlot {
    db: Db,
    core: Option<IdempotencyKey<Db>>,
    alarm_generation: u64,
}

/// The fingerprint of a keyed request: a stable digest of the topic and the decoded records
/// (the Worker uses SHA-256 of their CBOR; any digest that is equal exactly for equal bodies
/// serves).
pub fn fingerprint(topic: &str, records: &[ProduceRecord]) -> Vec<u8> {
    let body = serde_json::to_vec(&(topic, records)).expect("records serialize");
    let mut out = Vec::with_capacity(16);
    for basis in [0xcbf2_9ce4_8422_2325_u64, 0x6c62_272e_07bb_0142] {
        let mut h = basis;
        for b in &body {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        out.extend_from_slice(&h.to_be_bytes());
    }
    out
}

/// One append of a keyed request: the partition and its records.
type Batch = (i32, Vec<ProduceRecord>);

/// Routes a keyed request as the Worker does (`kafdo_types::partitioner::plan_produce` with the
/// sticky partition the fingerprint picks): the batches (partition, records) in order of first
/// use, and for each record its (batch, index in batch).
pub fn route(
    records: &[ProduceRecord],
    partitions: i32,
    fingerprint: &[u8],
) -> (Vec<Batch>, Vec<(usize, usize)>) {
    let sticky = kafdo_ingest::sticky_partition(fingerprint, partitions);
    let plan = plan_produce(records.to_vec(), partitions, sticky)
        .expect("scripts name partitions of the topic");
    (plan.batches, plan.slots)
}

/// A script of `count` keyed requests for ingestion client `client` to `topic`: 1 to 4
/// records each, routed by explicit partition, record key or the sticky partition; now and then
/// the previous key again with a new body, at once (refused: the key is taken) or after the
/// key's TTL (a new request).
pub fn script(
    rng: &mut Rng,
    client: u32,
    topic: &str,
    partitions: i32,
    count: u32,
    ttl_ms: i64,
) -> Vec<IngestEntry> {
    let mut entries: Vec<IngestEntry> = Vec::new();
    for n in 0..count {
        let (key, wait_ms) = match entries.last() {
            Some(last) if rng.chance(100) => (last.key.clone(), 0),
            Some(last) if rng.chance(100) => (last.key.clone(), ttl_ms + rng.range(100, 3_000)),
            _ => (format!("key-{client}-{n}"), 0),
        };
        let records: Vec<ProduceRecord> = (0..rng.range(1, 4))
            .map(|j| {
                let mut record = ProduceRecord::value(format!("i{client}.{n}.{j}").into_bytes());
                match rng.below(10) {
                    0..=4 => {
                        record.partition = Some(rng.range(0, i64::from(partitions) - 1) as i32)
                    }
                    5..=7 => record.key = Some(format!("rk{}", rng.below(100)).into_bytes()),
                    _ => {}
                }
                record
            })
            .collect();
        let (batches, slots) = route(&records, partitions, &fingerprint(topic, &records));
        let routed = records
            .iter()
            .zip(&slots)
            .map(|(r, (b, _))| IngestRecord {
                partition: batches[*b].0,
                value: String::from_utf8(r.value.clone().expect("a value")).expect("utf-8"),
            })
            .collect();
        entries.push(IngestEntry {
            key,
            records,
            routed,
            wait_ms,
        });
    }
    entries
}

fn timed_out(what: &str) -> ApiError {
    ApiError::new(
        ErrorCode::RequestTimedOut,
        format!("{what} did not answer in time"),
    )
}

impl World {
    // ---- the Worker's runs -------------------------------------------------------------------

    /// A keyed request reached the Worker: start its run.
    pub(super) fn start_run(&mut self, from: Process, request: u64, req: ClientReq) {
        let ClientReq::Ingest {
            topic,
            key,
            records,
        } = req
        else {
            panic!("{req:?} is not a keyed produce");
        };
        let fingerprint = fingerprint(&topic, &records);
        let begin = BeginRequest {
            fingerprint: fingerprint.clone(),
            producer_id: self.allocate_producer_id(),
            lease_ms: self.config.ingest_lease_ms,
            ttl_ms: self.config.ingest_ttl_ms,
        };
        self.next_run += 1;
        let run = self.next_run;
        let object = format!("{topic}/{key}");
        self.runs.insert(
            run,
            Run {
                from,
                request,
                topic,
                object: object.clone(),
                fingerprint,
                records,
                stage: Stage::Begin,
                pending: Default::default(),
                batches: Vec::new(),
                slots: Vec::new(),
                answers: Vec::new(),
                next_call: 0,
            },
        );
        self.run_call(run, Target::Key(object), 0, RunCall::Begin(begin));
    }

    fn run_call(&mut self, run: u64, to: Target, slot: usize, call: RunCall) {
        let r = self.runs.get_mut(&run).expect("a live run");
        r.next_call += 1;
        let call_id = r.next_call;
        r.pending.insert(call_id, slot);
        self.schedule(WORKER_CALL_TIMEOUT_MS, Event::RunTimeout { run, call_id });
        self.send(to, Msg::RunCall { run, call_id, call });
    }

    /// A call's deadline passed.
    pub(super) fn run_timeout(&mut self, run: u64, call_id: u32) {
        let pending = self
            .runs
            .get(&run)
            .is_some_and(|r| r.pending.contains_key(&call_id));
        if pending {
            self.run_result(run, call_id, Err(timed_out("an object")));
        }
    }

    /// A call of a run answered (or its deadline passed).
    pub(super) fn run_result(&mut self, run: u64, call_id: u32, result: Result<RunAns, ApiError>) {
        let Some(r) = self.runs.get_mut(&run) else {
            // The run died, or answered already.
            return;
        };
        let Some(slot) = r.pending.remove(&call_id) else {
            // A duplicate, or an answer after the deadline.
            return;
        };
        match r.stage.clone() {
            Stage::Begin => match result {
                Err(e) => self.finish_run(run, Err(e)),
                Ok(RunAns::Answered(offsets)) => self.finish_run(run, Ok(offsets)),
                Ok(RunAns::InFlight { retry_after_ms }) => {
                    let e = ApiError::new(
                        ErrorCode::IdempotencyKeyInFlight,
                        format!(
                            "a request with this Idempotency-Key is still in flight; retry \
                             after {retry_after_ms} ms"
                        ),
                    );
                    self.finish_run(run, Err(e));
                }
                Ok(RunAns::Proceed {
                    producer_id,
                    attempt,
                }) => self.run_appends(run, producer_id, attempt),
                Ok(other) => panic!("begin answered {other:?}"),
            },
            Stage::Append {
                producer_id,
                attempt,
            } => {
                r.answers[slot] = Some(result.map(|ans| match ans {
                    RunAns::Produced(p) => p,
                    other => panic!("an append answered {other:?}"),
                }));
                if !r.pending.is_empty() {
                    return;
                }
                let answers: Vec<PartitionProduceResponse> = match r
                    .answers
                    .iter()
                    .map(|a| a.clone().expect("every append answered"))
                    .collect::<Result<_, _>>()
                {
                    Ok(answers) => answers,
                    Err(e) => {
                        // Give the key back so a retry need not wait for the lease.
                        r.stage = Stage::Release(e);
                        let object = r.object.clone();
                        let call = RunCall::Release {
                            producer_id,
                            attempt,
                        };
                        self.run_call(run, Target::Key(object), 0, call);
                        return;
                    }
                };
                let offsets: Vec<RecordOffset> = r
                    .slots
                    .iter()
                    .map(|&(b, i)| RecordOffset {
                        partition: r.batches[b].0,
                        offset: answers[b].base_offset + i as i64,
                    })
                    .collect();
                r.stage = Stage::Complete {
                    producer_id,
                    attempt,
                    offsets: offsets.clone(),
                };
                let object = r.object.clone();
                let call = RunCall::Complete {
                    producer_id,
                    attempt,
                    offsets,
                };
                self.run_call(run, Target::Key(object), 0, call);
            }
            Stage::Complete {
                producer_id,
                attempt,
                offsets,
            } => match result {
                Ok(_) => self.finish_run(run, Ok(offsets)),
                Err(e) => {
                    // The complete may or may not have landed: give the key back either way
                    // (a release after a complete changes nothing that matters), so a retry
                    // need not wait for the lease.
                    let r = self.runs.get_mut(&run).expect("a live run");
                    r.stage = Stage::Release(e);
                    let object = r.object.clone();
                    let call = RunCall::Release {
                        producer_id,
                        attempt,
                    };
                    self.run_call(run, Target::Key(object), 0, call);
                }
            },
            // Released or not, the answer is the append's failure.
            Stage::Release(e) => self.finish_run(run, Err(e)),
        }
    }

    fn run_appends(&mut self, run: u64, producer_id: i64, attempt: i64) {
        let partitions = self.partition_counts[&self.runs[&run].topic];
        let r = self.runs.get_mut(&run).expect("a live run");
        let (batches, slots) = route(&r.records, partitions, &r.fingerprint);
        r.answers = vec![None; batches.len()];
        r.batches = batches.clone();
        r.slots = slots;
        r.stage = Stage::Append {
            producer_id,
            attempt,
        };
        let topic = r.topic.clone();
        for (b, (p, records)) in batches.into_iter().enumerate() {
            let tp = Tp::new(topic.clone(), p);
            let append = AppendRequest {
                partition: self.partition_refs[&tp].clone(),
                producer: Some(kafdo_ingest::producer_batch(producer_id)),
                transactional: false,
                records,
            };
            self.run_call(run, Target::Partition(tp), b, RunCall::Append(append));
        }
    }

    fn finish_run(&mut self, run: u64, result: Result<Vec<RecordOffset>, ApiError>) {
        let r = self.runs.remove(&run).expect("a live run");
        self.send(
            Target::Client(r.from),
            Msg::Reply {
                id: r.request,
                result: result.map(ClientAns::Ingested),
            },
        );
    }

    /// The Worker isolate running a request dies: nothing more is sent for it.
    pub(super) fn kill_run(&mut self) {
        let runs: Vec<u64> = self.runs.keys().copied().collect();
        if runs.is_empty() {
            return;
        }
        let run = *self.rng.pick(&runs);
        let r = self.runs.remove(&run).expect("a live run");
        self.note(format!("kill the Worker run of p{}'s {}", r.from, r.object));
    }

    /// An append of a run reaches its partition.
    pub(super) fn run_append(
        &mut self,
        tp: &Tp,
        req: AppendRequest,
    ) -> Option<Result<RunAns, ApiError>> {
        let result =
            match self.object_request(&Target::Partition(tp.clone()), ClientReq::Append(req)) {
                Ok(ClientAns::Produced(p)) => Ok(RunAns::Produced(p)),
                Ok(other) => panic!("an append answered {other:?}"),
                Err(e) => Err(e),
            };
        if self.faults_on() && self.rng.chance(20) {
            // The partition dies after the step, before its answer leaves.
            self.restart_partition(tp);
            return None;
        }
        Some(result)
    }

    // ---- the key objects ---------------------------------------------------------------------

    fn key(&mut self, object: &str) -> &mut IdempotencyKey<Db> {
        let slot = self
            .keys
            .entry(object.to_owned())
            .or_insert_with(|| KeySlot {
                db: Rc::new(Sqlite::memory()),
                core: None,
                alarm_generation: 0,
            });
        if slot.core.is_none() {
            slot.core = Some(IdempotencyKey::open(slot.db.clone()).expect("open a key"));
        }
        slot.core.as_mut().expect("open")
    }

    /// A call of a run reaches a key's object. `None` when the object died before answering.
    pub(super) fn key_call(
        &mut self,
        object: &str,
        call: RunCall,
    ) -> Option<Result<RunAns, ApiError>> {
        let now_ms = self.now_ms;
        let err = |e: IngestError| ApiError::new(e.code(), e.to_string());
        let result = match call {
            RunCall::Begin(req) => match self.key(object).begin(&req, now_ms) {
                Ok(Begin::Proceed {
                    producer_id,
                    attempt,
                }) => {
                    self.note(format!(
                        "key {object}: attempt {attempt} proceeds with pid={producer_id}"
                    ));
                    self.set_key_alarm(object);
                    Ok(RunAns::Proceed {
                        producer_id,
                        attempt,
                    })
                }
                Ok(Begin::Done { offsets }) => Ok(RunAns::Answered(offsets)),
                // The in-flight conflict travels as a value, as in the adapter.
                Err(IngestError::InFlight { retry_after_ms }) => {
                    Ok(RunAns::InFlight { retry_after_ms })
                }
                Err(e) => Err(err(e)),
            },
            RunCall::Complete {
                producer_id,
                attempt,
                offsets,
            } => {
                let result = self
                    .key(object)
                    .complete(producer_id, attempt, &offsets, now_ms)
                    .map(|()| RunAns::Done)
                    .map_err(err);
                self.note(format!(
                    "key {object}: attempt {attempt} of pid={producer_id} completes"
                ));
                result
            }
            RunCall::Release {
                producer_id,
                attempt,
            } => self
                .key(object)
                .release(producer_id, attempt, now_ms)
                .map(|()| RunAns::Done)
                .map_err(err),
            RunCall::Append(_) => panic!("an append sent to key {object}"),
        };
        if self.faults_on() && self.rng.chance(20) {
            // The object dies after its step, before its answer leaves.
            self.restart_key(object);
            return None;
        }
        Some(result)
    }

    /// Restarts a key's object: memory lost, storage kept (or, with the planted
    /// `ingest_forgets_reservation` bug, an unanswered key's reservation lost).
    pub(super) fn restart_key(&mut self, object: &str) {
        self.note(format!("restart key {object}"));
        let forget = self.config.bugs.ingest_forgets_reservation;
        let slot = self.keys.get_mut(object).expect("a known key");
        slot.core = None;
        let created = || {
            slot.db
                .first(
                    "SELECT 1 FROM sqlite_master WHERE name = 'idempotency_key'",
                    &[],
                )
                .expect("read the schema")
                .is_some()
        };
        // An object whose storage was deleted after expiry has nothing to forget.
        if forget && created() {
            slot.db
                .run("DELETE FROM idempotency_key WHERE answer IS NULL", &[])
                .expect("forget a reservation");
        }
    }

    /// Sets a key's alarm to its expiry, as the adapter does after a `begin` that proceeds and
    /// after an alarm that left the key in place; late or spurious firings with faults on.
    fn set_key_alarm(&mut self, object: &str) {
        let next = self.key(object).next_alarm_ms().expect("key alarm");
        let faults = self.faults_on();
        let slot = self.keys.get_mut(object).expect("a known key");
        slot.alarm_generation += 1;
        let generation = slot.alarm_generation;
        let Some(at_ms) = next else { return };
        let mut delay = (at_ms - self.now_ms).max(0);
        if faults && self.rng.chance(100) {
            delay += self.rng.range(1, 3_000);
        }
        let object = object.to_owned();
        self.schedule(
            delay,
            Event::KeyAlarm {
                object: object.clone(),
                generation,
            },
        );
        if faults && self.rng.chance(100) {
            let early = self.rng.range(0, delay + 1_000);
            self.schedule(
                early,
                Event::KeyAlarm {
                    object,
                    generation: u64::MAX,
                },
            );
        }
    }

    /// A key's alarm fires: forget it if expired; when the object is empty, delete all of its
    /// storage (and with it the alarm).
    pub(super) fn key_alarm(&mut self, object: &str, generation: u64) {
        let current = self.keys[object].alarm_generation;
        if generation != current && generation != u64::MAX {
            return;
        }
        let now_ms = self.now_ms;
        let empty = self.key(object).on_alarm(now_ms).expect("key alarm");
        if empty {
            let slot = self.keys.get_mut(object).expect("a known key");
            slot.core = None;
            slot.db = Rc::new(Sqlite::memory());
            slot.alarm_generation += 1;
            self.note(format!("key {object} expired"));
        } else {
            self.set_key_alarm(object);
        }
    }
}
