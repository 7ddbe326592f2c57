//! Simulated clients: each is a small state machine that behaves as the real client would.
//!
//! A client has at most one request outstanding (one Jepsen process). The world asks it for its
//! next [`Action`] whenever it is idle, and tells it how the outstanding request ended
//! ([`Answered`]): an answer, a refusal, or a timeout. A timeout is an unknown outcome, and
//! every client treats it as the real one must: resend the same batch with the same sequence
//! numbers, resend the same commit (never turn it into an abort), re-read the same offset.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;

use kafdo_broker::topics::FetchOptions;
use kafdo_types::api::{
    InitProducerRequest, InitProducerResponse, Isolation, PartitionProduceRequest,
    PartitionProduceResponse, ProduceRequest, RecordOffset,
};
use kafdo_types::group::{
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, OffsetFetchQuery,
    OffsetFetchResponse,
};
use kafdo_types::rpc::{ProducerBatch, TopicPartitionOffset, TxnResult};
use kafdo_types::txn::{
    AddOffsetsRequest, AddPartitionsRequest, EndTxnRequest, EndTxnResponse, TopicPartition,
};
use kafdo_types::ErrorCode;
use kafdo_types::{ApiError, ProduceRecord};

use crate::history::{
    GroupOffset, IngestRecord, KeyedValue, Process, ReadRecord, Reply, Request, Tp,
    TOMBSTONE_HEADER,
};
use crate::rng::Rng;

/// A request a client sends to the Worker: the broker call its route makes.
#[derive(Clone, Debug)]
pub enum ClientReq {
    /// `POST /v1/producers`, with or without a transactional id.
    InitProducer(InitProducerRequest),
    /// `POST /v1/topics/{t}/partitions/{p}/records`.
    ProducePartition {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The body.
        request: PartitionProduceRequest,
    },
    /// `GET /v1/topics/{t}/partitions/{p}/records`.
    Fetch {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The query.
        options: FetchOptions,
    },
    /// `GET /v1/topics/{t}/partitions/{p}`: the partition's offsets.
    PartitionOffsets {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
    },
    /// `POST /v1/transactions/{id}/partitions`.
    AddPartitions {
        /// The transactional id.
        transactional_id: String,
        /// The body.
        request: AddPartitionsRequest,
    },
    /// Commit or abort.
    EndTxn {
        /// The transactional id.
        transactional_id: String,
        /// The producer id and epoch.
        request: EndTxnRequest,
        /// Commit or abort.
        result: TxnResult,
    },
    /// `POST /v1/transactions/{id}/offsets`.
    AddOffsets {
        /// The transactional id.
        transactional_id: String,
        /// The offsets, fenced by generation and member.
        request: AddOffsetsRequest,
    },
    /// `POST /v1/groups/{g}/members`.
    Join {
        /// The group.
        group_id: String,
        /// The join.
        request: JoinGroupRequest,
    },
    /// `POST /v1/groups/{g}/members/{m}/heartbeat`.
    Heartbeat {
        /// The group.
        group_id: String,
        /// The member.
        member_id: String,
        /// The heartbeat.
        request: HeartbeatRequest,
    },
    /// `GET /v1/groups/{g}/offsets`.
    FetchOffsets {
        /// The group.
        group_id: String,
        /// The query.
        query: OffsetFetchQuery,
    },
    /// `POST /v1/topics/{t}/records` with an `Idempotency-Key`.
    Ingest {
        /// The topic.
        topic: String,
        /// The `Idempotency-Key`.
        key: String,
        /// The body.
        request: ProduceRequest,
    },
}

impl ClientReq {
    /// The history's declaration of the keys a batch writes to the compacted topic, for a
    /// produce to it.
    pub fn compacted_keys(&self) -> Option<Vec<KeyedValue>> {
        match self {
            ClientReq::ProducePartition { topic, request, .. }
                if topic == super::COMPACTED_TOPIC =>
            {
                Some(request.records.iter().map(keyed_value).collect())
            }
            _ => None,
        }
    }
}

/// The history's declaration of a keyed record's key (its value named as [`ReadRecord`] does).
fn keyed_value(r: &ProduceRecord) -> KeyedValue {
    let read = ReadRecord::from_record(&kafdo_types::Record {
        offset: 0,
        timestamp: 0,
        key: r.key.clone(),
        value: r.value.clone(),
        headers: r.headers.clone(),
    });
    KeyedValue {
        value: read.value,
        key: read.key.expect("a keyed record"),
        tombstone: read.tombstone,
    }
}

/// A successful answer to a [`ClientReq`].
#[derive(Clone, Debug)]
pub enum ClientAns {
    /// A producer id and epoch.
    Producer(InitProducerResponse),
    /// Where a batch landed.
    Produced(PartitionProduceResponse),
    /// What a fetch read.
    Fetched(kafdo_types::api::FetchResponse),
    /// A partition's offsets.
    PartitionOffsets(kafdo_types::api::PartitionInfo),
    /// Partitions or offsets added to a transaction.
    Done,
    /// A transaction ended.
    Ended(EndTxnResponse),
    /// A join's answer.
    Joined(JoinGroupResponse),
    /// A heartbeat's answer.
    Heartbeat(HeartbeatResponse),
    /// A group's committed offsets.
    Offsets(OffsetFetchResponse),
    /// Where a keyed ingestion's records are, in request order.
    Ingested(Vec<RecordOffset>),
}

impl ClientAns {
    /// The answer as the history records it.
    pub fn history_reply(&self) -> Reply {
        match self {
            ClientAns::Producer(p) => Reply::Producer {
                producer_id: p.producer_id,
                producer_epoch: p.producer_epoch,
            },
            ClientAns::Produced(p) => Reply::Produce {
                base_offset: p.base_offset,
                last_offset: p.last_offset,
                duplicate: p.duplicate,
            },
            ClientAns::PartitionOffsets(info) => Reply::PartitionOffsets {
                log_start_offset: info.log_start_offset,
                high_watermark: info.high_watermark,
                last_stable_offset: info.last_stable_offset,
            },
            ClientAns::Fetched(f) => Reply::Fetch {
                records: f.records.iter().map(ReadRecord::from_record).collect(),
                next_offset: f.next_offset,
                high_watermark: f.high_watermark,
                last_stable_offset: f.last_stable_offset,
            },
            ClientAns::Done => Reply::Done,
            ClientAns::Ended(e) => Reply::EndTxn {
                state: e.state,
                producer_id: Some(e.producer_id),
                producer_epoch: e.producer_epoch,
            },
            ClientAns::Joined(j) => Reply::Member {
                member_id: j.member_id.clone(),
                generation_id: j.generation_id,
                assignment: tps(&j.assignment),
            },
            ClientAns::Heartbeat(h) => Reply::Member {
                // The heartbeat's member id is the request's; the checker reads it from there.
                member_id: String::new(),
                generation_id: h.generation_id,
                assignment: tps(&h.assignment),
            },
            ClientAns::Ingested(offsets) => Reply::Ingest {
                offsets: offsets.clone(),
            },
            ClientAns::Offsets(o) => Reply::Offsets {
                offsets: o
                    .offsets
                    .iter()
                    .map(|o| GroupOffset {
                        topic: o.topic.clone(),
                        partition: o.partition,
                        offset: o.offset,
                    })
                    .collect(),
            },
        }
    }
}

fn tps(assignment: &[kafdo_types::txn::TopicPartition]) -> Vec<Tp> {
    assignment
        .iter()
        .map(|tp| Tp::new(tp.topic.clone(), tp.partition))
        .collect()
}

/// What a client wants to do next.
pub enum Action {
    /// Send a request (and record it as this history operation).
    Send(Box<(ClientReq, Request)>),
    /// Nothing for this long.
    Sleep(i64),
    /// The client has finished.
    Done,
}

/// How the outstanding request ended.
pub enum Answered<'a> {
    /// It succeeded.
    Ok(&'a ClientAns),
    /// It was refused.
    Fail(&'a ApiError),
    /// No answer in time: unknown outcome.
    Timeout,
}

/// What clients share: whether the run is winding down, and the time.
pub struct Env {
    /// When true, clients finish what they started and stop.
    pub settling: bool,
    /// The simulated time.
    pub now_ms: i64,
    /// The next client producer id the deployment will hand out (for the impostor only).
    pub next_producer_id: Option<i64>,
}

/// A client process, as the world keeps it.
pub struct ClientSlot {
    /// The client.
    pub client: Client,
    /// The id of its outstanding request.
    pub outstanding: Option<u64>,
    /// Wake-ups of an older generation are stale.
    pub wake_generation: u64,
    /// It has finished.
    pub done: bool,
}

impl ClientSlot {
    /// A client that has not started.
    pub fn new(client: Client) -> Self {
        Self {
            client,
            outstanding: None,
            wake_generation: 0,
            done: false,
        }
    }
}

/// A topic partition as the API names it.
fn topic_partition(tp: &Tp) -> TopicPartition {
    TopicPartition {
        topic: tp.topic.clone(),
        partition: tp.partition,
    }
}

/// A partition produce's body for a batch of this producer.
fn partition_produce(
    producer: ProducerBatch,
    transactional: bool,
    records: Vec<ProduceRecord>,
) -> PartitionProduceRequest {
    PartitionProduceRequest {
        producer_id: Some(producer.producer_id),
        producer_epoch: Some(producer.producer_epoch),
        base_sequence: Some(producer.base_sequence),
        transactional,
        records,
    }
}

/// The records of a batch to `tp`: plain values, or on the compacted topic keyed records
/// ([`keyed_record`]).
fn records_for(tp: &Tp, values: &[String]) -> Vec<ProduceRecord> {
    if tp.topic == super::COMPACTED_TOPIC {
        values.iter().map(|v| keyed_record(v)).collect()
    } else {
        values_to_records(values)
    }
}

/// The keys the workload writes on the compacted topic: few, so each gets many versions.
pub const COMPACTED_KEYS: u64 = 3;

/// A keyed record for the compacted topic, a pure function of its unique value so that a retry
/// sends the same record and no random draw is spent: the key is one of [`COMPACTED_KEYS`]
/// (`k0`..), and about one record in four is a tombstone (a null value) that carries its name in
/// the [`TOMBSTONE_HEADER`] header.
pub fn keyed_record(value: &str) -> ProduceRecord {
    // FNV-1a: stable across platforms and releases.
    let hash = value.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let key = format!("k{}", hash % COMPACTED_KEYS);
    if (hash / COMPACTED_KEYS).is_multiple_of(4) {
        ProduceRecord {
            key: Some(key.into_bytes()),
            value: None,
            headers: vec![kafdo_types::Header {
                key: TOMBSTONE_HEADER.into(),
                value: Some(value.as_bytes().to_vec()),
            }],
            partition: None,
            timestamp: None,
        }
    } else {
        ProduceRecord::keyed(key.into_bytes(), value.as_bytes().to_vec())
    }
}

fn values_to_records(values: &[String]) -> Vec<ProduceRecord> {
    values
        .iter()
        .map(|v| ProduceRecord::value(v.as_bytes().to_vec()))
        .collect()
}

fn produce_op(
    tp: &Tp,
    producer: ProducerBatch,
    transactional_id: Option<&str>,
    values: &[String],
) -> Request {
    Request::Produce {
        topic: tp.topic.clone(),
        partition: tp.partition,
        producer_id: Some(producer.producer_id),
        producer_epoch: Some(producer.producer_epoch),
        base_sequence: Some(producer.base_sequence),
        transactional_id: transactional_id.map(str::to_owned),
        values: values.to_vec(),
        sources: Vec::new(),
    }
}

/// Fresh unique values for one process.
#[derive(Debug)]
struct Values {
    process: Process,
    next: u64,
}

impl Values {
    fn take(&mut self, n: usize) -> Vec<String> {
        (0..n)
            .map(|_| {
                self.next += 1;
                format!("p{}-{}", self.process, self.next)
            })
            .collect()
    }
}

/// A simulated client.
pub enum Client {
    /// An idempotent (non-transactional) producer.
    Idempotent(IdempotentProducer),
    /// A transactional producer.
    Transactional(TransactionalProducer),
    /// A read_committed consumer of one partition.
    Consumer(Consumer),
    /// A read-process-write processor.
    Processor(Box<Processor>),
    /// A sender of keyed (`Idempotency-Key`) topic produce requests.
    Ingest(IngestClient),
    /// A client that writes as producer ids nobody was handed out.
    Impostor(Impostor),
}

impl Client {
    /// The next action of an idle client.
    pub fn next(&mut self, rng: &mut Rng, env: &Env) -> Action {
        match self {
            Client::Idempotent(c) => c.next(rng, env),
            Client::Transactional(c) => c.next(rng, env),
            Client::Consumer(c) => c.next(rng, env),
            Client::Processor(c) => c.next(rng, env),
            Client::Ingest(c) => c.next(rng, env),
            Client::Impostor(c) => c.next(rng, env),
        }
    }

    /// The outstanding request ended.
    pub fn on_result(&mut self, answered: Answered<'_>, rng: &mut Rng) {
        match self {
            Client::Idempotent(c) => c.on_result(answered),
            Client::Transactional(c) => c.on_result(answered, rng),
            Client::Consumer(c) => c.on_result(answered, rng),
            Client::Processor(c) => c.on_result(answered),
            Client::Ingest(c) => c.on_result(answered, rng),
            Client::Impostor(c) => c.left = c.left.saturating_sub(1),
        }
    }

    /// The client process crashed: it forgets everything in memory and starts over.
    pub fn crash(&mut self) {
        match self {
            Client::Idempotent(c) => {
                c.producer_id = None;
                c.batch = None;
            }
            Client::Transactional(c) => {
                c.producer = None;
                c.txn = None;
            }
            Client::Consumer(c) => c.rewind(),
            Client::Processor(c) => c.crash(),
            // A sender of webhooks keeps its queue on disk: after a restart it sends the same
            // request with the same key again, which is what the key is for.
            Client::Ingest(c) => c.backoff_ms = 0,
            Client::Impostor(_) => {}
        }
    }
}

/// An idempotent producer: batches of 1 to 3 unique values to random partitions of its topic,
/// one at a time, each retried with the same sequence until it gets a definite answer.
#[derive(Debug)]
pub struct IdempotentProducer {
    values: Values,
    topic_partitions: Vec<Tp>,
    producer_id: Option<i64>,
    sequences: BTreeMap<Tp, i32>,
    batch: Option<(Tp, Vec<String>)>,
    batches_left: u32,
}

impl IdempotentProducer {
    /// A producer of `batches` batches to `topic_partitions`.
    pub fn new(process: Process, topic_partitions: Vec<Tp>, batches: u32) -> Self {
        Self {
            values: Values { process, next: 0 },
            topic_partitions,
            producer_id: None,
            sequences: BTreeMap::new(),
            batch: None,
            batches_left: batches,
        }
    }

    fn next(&mut self, rng: &mut Rng, env: &Env) -> Action {
        let Some(producer_id) = self.producer_id else {
            if self.batches_left == 0 || env.settling {
                return Action::Done;
            }
            return Action::Send(Box::new((
                ClientReq::InitProducer(InitProducerRequest {
                    transactional_id: None,
                    transaction_timeout_ms: None,
                }),
                Request::InitProducer {
                    transactional_id: None,
                },
            )));
        };
        if self.batch.is_none() {
            if self.batches_left == 0 || env.settling {
                return Action::Done;
            }
            let tp = rng.pick(&self.topic_partitions).clone();
            let n = rng.range(1, 3) as usize;
            self.batch = Some((tp, self.values.take(n)));
        }
        let (tp, values) = self.batch.clone().expect("a batch");
        let producer = ProducerBatch {
            producer_id,
            producer_epoch: 0,
            base_sequence: self.sequences.get(&tp).copied().unwrap_or(0),
        };
        let op = produce_op(&tp, producer, None, &values);
        let req = ClientReq::ProducePartition {
            topic: tp.topic.clone(),
            partition: tp.partition,
            request: partition_produce(producer, false, records_for(&tp, &values)),
        };
        Action::Send(Box::new((req, op)))
    }

    fn on_result(&mut self, answered: Answered<'_>) {
        match answered {
            Answered::Ok(ClientAns::Producer(p)) => {
                self.producer_id = Some(p.producer_id);
                self.sequences.clear();
            }
            Answered::Ok(ClientAns::Produced(_)) => {
                let (tp, values) = self.batch.take().expect("a batch was outstanding");
                let seq = self.sequences.entry(tp).or_insert(0);
                *seq = seq.wrapping_add(values.len() as i32);
                self.batches_left -= 1;
            }
            Answered::Ok(other) => panic!("an idempotent producer got {other:?}"),
            // Unknown outcome: send the same batch again with the same sequence.
            Answered::Timeout => {}
            Answered::Fail(e) if e.code.is_retriable() => {}
            // A definite refusal breaks this producer's sequence: start over with a new
            // producer id, as Kafka's idempotent producer resets after a fatal error. The
            // batch may still have landed through an earlier attempt; it is not resent.
            Answered::Fail(_) => {
                if self.batch.take().is_some() {
                    self.batches_left -= 1;
                }
                self.producer_id = None;
            }
        }
    }
}

/// An impostor: it writes batches as producer ids that nobody was handed out, the way a client
/// would claim the next id before its owner gets it, so that the owner's first batch is taken
/// for a duplicate and never written. Every attempt must be refused (`UNKNOWN_PRODUCER_ID`);
/// the checker's `ProducerIdHandedOut` sees any that is not. It aims well past the next id
/// (by [`IMPOSTOR_LEAD`]), at ids no run reaches: aiming at the very next one could lose the race
/// to a legitimate init, and then its batch would be an impersonation of an id that was handed
/// out, which only authentication can refuse.
#[derive(Debug)]
pub struct Impostor {
    values: Values,
    topic_partitions: Vec<Tp>,
    left: u32,
}

/// How far past the next producer id the impostor aims.
pub const IMPOSTOR_LEAD: i64 = 10_000;

impl Impostor {
    /// An impostor making `attempts` claims on `topic_partitions`.
    pub fn new(process: Process, topic_partitions: Vec<Tp>, attempts: u32) -> Self {
        Self {
            values: Values { process, next: 0 },
            topic_partitions,
            left: attempts,
        }
    }

    fn next(&mut self, rng: &mut Rng, env: &Env) -> Action {
        if self.left == 0 || env.settling {
            return Action::Done;
        }
        let next = env
            .next_producer_id
            .expect("the impostor sees the allocator");
        let tp = rng.pick(&self.topic_partitions).clone();
        let producer = ProducerBatch {
            producer_id: next + IMPOSTOR_LEAD + rng.range(0, 10),
            producer_epoch: 0,
            base_sequence: 0,
        };
        let values = self.values.take(1);
        let op = produce_op(&tp, producer, None, &values);
        let req = ClientReq::ProducePartition {
            topic: tp.topic.clone(),
            partition: tp.partition,
            request: partition_produce(producer, false, values_to_records(&values)),
        };
        Action::Send(Box::new((req, op)))
    }
}

/// A transaction being built by a [`TransactionalProducer`].
#[derive(Debug)]
struct Txn {
    partitions: Vec<Tp>,
    added: bool,
    batches: VecDeque<(Tp, Vec<String>)>,
    sequences: BTreeMap<Tp, i32>,
    result: TxnResult,
    /// Sleep this long before ending (a stalled producer, to trigger the transaction timeout).
    stall_ms: i64,
}

/// A transactional producer: init, then transactions of a few batches over one or two
/// partitions, each committed (mostly) or aborted. Several processes may share one
/// transactional id: each init fences the others, which then run as zombies until refused.
#[derive(Debug)]
pub struct TransactionalProducer {
    values: Values,
    transactional_id: String,
    transaction_timeout_ms: i64,
    topic_partitions: Vec<Tp>,
    producer: Option<(i64, i32)>,
    txn: Option<Txn>,
    txns_left: u32,
    /// Per mille of transactions it aborts.
    abort_per_mille: u32,
}

impl TransactionalProducer {
    /// A producer of `txns` transactions under `transactional_id`.
    pub fn new(
        process: Process,
        transactional_id: String,
        transaction_timeout_ms: i64,
        topic_partitions: Vec<Tp>,
        txns: u32,
    ) -> Self {
        Self {
            values: Values { process, next: 0 },
            transactional_id,
            transaction_timeout_ms,
            topic_partitions,
            producer: None,
            txn: None,
            txns_left: txns,
            abort_per_mille: 200,
        }
    }

    /// Aborts `abort_per_mille` transactions in a thousand instead of 200.
    pub fn with_aborts(mut self, abort_per_mille: u32) -> Self {
        self.abort_per_mille = abort_per_mille;
        self
    }

    fn next(&mut self, rng: &mut Rng, env: &Env) -> Action {
        let Some((producer_id, producer_epoch)) = self.producer else {
            if self.txns_left == 0 || env.settling {
                return Action::Done;
            }
            return Action::Send(Box::new((
                ClientReq::InitProducer(InitProducerRequest {
                    transactional_id: Some(self.transactional_id.clone()),
                    transaction_timeout_ms: Some(self.transaction_timeout_ms),
                }),
                Request::InitProducer {
                    transactional_id: Some(self.transactional_id.clone()),
                },
            )));
        };
        if self.txn.is_none() {
            if self.txns_left == 0 || env.settling {
                return Action::Done;
            }
            let mut partitions = Vec::new();
            for _ in 0..rng.range(1, 2) {
                let tp = rng.pick(&self.topic_partitions).clone();
                if !partitions.contains(&tp) {
                    partitions.push(tp);
                }
            }
            let mut batches = VecDeque::new();
            for tp in &partitions {
                for _ in 0..rng.range(1, 2) {
                    let n = rng.range(1, 3) as usize;
                    batches.push_back((tp.clone(), self.values.take(n)));
                }
            }
            let result = if rng.chance(1000 - self.abort_per_mille) {
                TxnResult::Commit
            } else {
                TxnResult::Abort
            };
            let stall_ms = if rng.chance(50) {
                self.transaction_timeout_ms + rng.range(0, 2_000)
            } else {
                0
            };
            self.txn = Some(Txn {
                partitions,
                added: false,
                batches,
                sequences: BTreeMap::new(),
                result,
                stall_ms,
            });
        }
        let tid = self.transactional_id.clone();
        let txn = self.txn.as_mut().expect("a transaction");
        if !txn.added {
            let req = AddPartitionsRequest {
                producer_id,
                producer_epoch,
                partitions: txn.partitions.iter().map(topic_partition).collect(),
            };
            let op = Request::AddPartitions {
                transactional_id: tid.clone(),
                producer_id,
                producer_epoch,
                partitions: txn.partitions.clone(),
            };
            return Action::Send(Box::new((
                ClientReq::AddPartitions {
                    transactional_id: tid,
                    request: req,
                },
                op,
            )));
        }
        if let Some((tp, values)) = txn.batches.front() {
            let producer = ProducerBatch {
                producer_id,
                producer_epoch,
                base_sequence: txn.sequences.get(tp).copied().unwrap_or(0),
            };
            let op = produce_op(tp, producer, Some(&tid), values);
            let req = ClientReq::ProducePartition {
                topic: tp.topic.clone(),
                partition: tp.partition,
                request: partition_produce(producer, true, records_for(tp, values)),
            };
            return Action::Send(Box::new((req, op)));
        }
        if txn.stall_ms > 0 {
            let stall_ms = std::mem::take(&mut txn.stall_ms);
            return Action::Sleep(stall_ms);
        }
        let op = Request::EndTxn {
            transactional_id: tid.clone(),
            producer_id,
            producer_epoch,
            commit: txn.result == TxnResult::Commit,
        };
        Action::Send(Box::new((
            ClientReq::EndTxn {
                transactional_id: tid,
                request: EndTxnRequest {
                    keep_epoch: false,
                    producer_id,
                    producer_epoch,
                },
                result: txn.result,
            },
            op,
        )))
    }

    fn on_result(&mut self, answered: Answered<'_>, _rng: &mut Rng) {
        match answered {
            Answered::Ok(ClientAns::Producer(p)) => {
                self.producer = Some((p.producer_id, p.producer_epoch));
                // Whatever this instance had open was aborted by the init.
                self.txn = None;
            }
            Answered::Ok(ClientAns::Done) => {
                if let Some(txn) = self.txn.as_mut() {
                    txn.added = true;
                }
            }
            Answered::Ok(ClientAns::Produced(_)) => {
                let txn = self.txn.as_mut().expect("a transaction was open");
                let (tp, values) = txn.batches.pop_front().expect("a batch was outstanding");
                let seq = txn.sequences.entry(tp).or_insert(0);
                *seq = seq.wrapping_add(values.len() as i32);
            }
            Answered::Ok(ClientAns::Ended(end)) => {
                // A new producer id once the old one's epochs are spent.
                self.producer = Some((end.producer_id, end.producer_epoch));
                self.txn = None;
                self.txns_left = self.txns_left.saturating_sub(1);
            }
            Answered::Ok(other) => panic!("a transactional producer got {other:?}"),
            // Unknown outcome: resend the same request (the same batch with the same sequence,
            // the same commit).
            Answered::Timeout => {}
            Answered::Fail(e) if e.code.is_retriable() => {}
            Answered::Fail(_) => {
                // Fenced, timed out, or refused: this instance's transaction is over. Start
                // over with a new init (which aborts or finishes whatever is left open).
                if self.txn.take().is_some() {
                    self.txns_left = self.txns_left.saturating_sub(1);
                }
                self.producer = None;
            }
        }
    }
}

/// A read_committed consumer of one partition: reads forward from offset 0 in small fetches,
/// and now and then starts a new session from the beginning (a restarted consumer).
///
/// On a topic with retention the offset it wants may be gone: the fetch is refused with
/// `OFFSET_OUT_OF_RANGE`, and the consumer then asks the partition for its log start offset
/// and goes on from there in a new session, as the SDK's consumer does with
/// `auto_offset_reset = earliest`.
#[derive(Debug)]
pub struct Consumer {
    process: Process,
    tp: Tp,
    session: u32,
    position: i64,
    reads_left: u32,
    /// The last fetch was out of range: ask for the log start offset next.
    reset: bool,
}

impl Consumer {
    /// A consumer making `reads` fetches of `tp`.
    pub fn new(process: Process, tp: Tp, reads: u32) -> Self {
        Self {
            process,
            tp,
            session: 0,
            position: 0,
            reads_left: reads,
            reset: false,
        }
    }

    fn rewind(&mut self) {
        self.session += 1;
        self.position = 0;
        self.reset = false;
    }

    fn next(&mut self, rng: &mut Rng, env: &Env) -> Action {
        if self.reads_left == 0 || env.settling {
            return Action::Done;
        }
        if self.reset {
            let req = ClientReq::PartitionOffsets {
                topic: self.tp.topic.clone(),
                partition: self.tp.partition,
            };
            let op = Request::PartitionOffsets {
                topic: self.tp.topic.clone(),
                partition: self.tp.partition,
            };
            return Action::Send(Box::new((req, op)));
        }
        let req = ClientReq::Fetch {
            topic: self.tp.topic.clone(),
            partition: self.tp.partition,
            options: FetchOptions {
                offset: self.position,
                max_records: rng.range(1, 6) as u32,
                max_bytes: 1 << 20,
                isolation: Isolation::ReadCommitted,
                wait_ms: 0,
            },
        };
        let op = Request::Fetch {
            topic: self.tp.topic.clone(),
            partition: self.tp.partition,
            offset: self.position,
            isolation: Isolation::ReadCommitted,
            reader: format!("p{}.s{}", self.process, self.session),
        };
        Action::Send(Box::new((req, op)))
    }

    fn on_result(&mut self, answered: Answered<'_>, rng: &mut Rng) {
        self.reads_left = self.reads_left.saturating_sub(1);
        match answered {
            Answered::Ok(ClientAns::Fetched(f)) => {
                self.position = f.next_offset;
                if rng.chance(20) {
                    self.rewind();
                }
            }
            Answered::Ok(ClientAns::PartitionOffsets(info)) => {
                // Earliest: a new pass from the log start.
                self.session += 1;
                self.position = info.log_start_offset;
                self.reset = false;
            }
            Answered::Fail(e) if e.code == ErrorCode::OffsetOutOfRange => self.reset = true,
            _ => {}
        }
    }
}

/// The stage of a processor's transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    AddPartitions,
    Produce,
    AddOffsets,
    End(TxnResult),
}

/// A processor's transaction: the outputs of a few input records of one partition, and the
/// input offset to commit with them.
#[derive(Debug)]
struct ProcessTxn {
    input: Tp,
    next_offset: i64,
    partitions: Vec<Tp>,
    outputs: VecDeque<(Tp, Vec<String>, Vec<String>)>,
    sequences: BTreeMap<Tp, i32>,
    stage: Stage,
}

/// Which request a processor has outstanding, to read its answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pending {
    None,
    Join,
    Heartbeat,
    Init,
    FetchOffsets,
    Read,
    Txn,
}

/// A read-process-write processor (KIP-447): a member of the pipeline's group and a
/// transactional producer. It reads committed input from the partitions it owns, writes one
/// output per input record (naming its source) and commits the input offsets in the same
/// transaction, fenced by its generation and member id.
#[derive(Debug)]
pub struct Processor {
    process: Process,
    transactional_id: String,
    group_id: String,
    input_topic: String,
    output_topic: String,
    output_partitions: i32,
    transaction_timeout_ms: i64,
    session_timeout_ms: i64,
    member: Option<(String, i32)>,
    assignment: Vec<Tp>,
    producer: Option<(i64, i32)>,
    positions: Option<BTreeMap<Tp, i64>>,
    txn: Option<ProcessTxn>,
    pending: Pending,
    since_heartbeat: u32,
    next_input: usize,
    idle: BTreeMap<Tp, bool>,
    reads: u64,
    outputs: u64,
    txns_left: u32,
    /// Actions left before the processor winds down (it may find no input for a long time).
    actions_left: u32,
}

/// How a processor is wired.
pub struct ProcessorSetup {
    /// The transactional id.
    pub transactional_id: String,
    /// The group.
    pub group_id: String,
    /// The input topic.
    pub input_topic: String,
    /// The output topic and its partition count.
    pub output: (String, i32),
    /// Transaction timeout.
    pub transaction_timeout_ms: i64,
    /// Group session timeout.
    pub session_timeout_ms: i64,
    /// Transactions to run.
    pub txns: u32,
}

impl Processor {
    /// A processor.
    pub fn new(process: Process, setup: ProcessorSetup) -> Self {
        Self {
            process,
            transactional_id: setup.transactional_id,
            group_id: setup.group_id,
            input_topic: setup.input_topic,
            output_topic: setup.output.0,
            output_partitions: setup.output.1,
            transaction_timeout_ms: setup.transaction_timeout_ms,
            session_timeout_ms: setup.session_timeout_ms,
            member: None,
            assignment: Vec::new(),
            producer: None,
            positions: None,
            txn: None,
            pending: Pending::None,
            since_heartbeat: 0,
            next_input: 0,
            idle: BTreeMap::new(),
            reads: 0,
            outputs: 0,
            txns_left: setup.txns,
            actions_left: setup.txns * 12,
        }
    }

    fn crash(&mut self) {
        self.member = None;
        self.assignment.clear();
        self.producer = None;
        self.positions = None;
        self.txn = None;
    }

    fn send(&mut self, pending: Pending, req: ClientReq, op: Request) -> Action {
        self.pending = pending;
        Action::Send(Box::new((req, op)))
    }

    fn next(&mut self, rng: &mut Rng, env: &Env) -> Action {
        self.actions_left = self.actions_left.saturating_sub(1);
        if self.actions_left == 0 && self.txn.is_none() {
            return Action::Done;
        }
        let Some((member_id, generation_id)) = self.member.clone() else {
            if env.settling || self.txns_left == 0 {
                return Action::Done;
            }
            let req = JoinGroupRequest {
                member_id: None,
                group_instance_id: None,
                topics: vec![self.input_topic.clone()],
                session_timeout_ms: Some(self.session_timeout_ms),
                assignor: None,
            };
            let op = Request::JoinGroup {
                group_id: self.group_id.clone(),
                member_id: None,
                topics: vec![self.input_topic.clone()],
            };
            let group_id = self.group_id.clone();
            let req = ClientReq::Join {
                group_id,
                request: req,
            };
            return self.send(Pending::Join, req, op);
        };
        let tid = self.transactional_id.clone();
        let Some((producer_id, producer_epoch)) = self.producer else {
            let req = ClientReq::InitProducer(InitProducerRequest {
                transactional_id: Some(tid.clone()),
                transaction_timeout_ms: Some(self.transaction_timeout_ms),
            });
            let op = Request::InitProducer {
                transactional_id: Some(tid),
            };
            return self.send(Pending::Init, req, op);
        };
        if let Some(txn) = self.txn.as_mut() {
            let (req, op) = match txn.stage {
                Stage::AddPartitions => (
                    ClientReq::AddPartitions {
                        transactional_id: tid.clone(),
                        request: AddPartitionsRequest {
                            producer_id,
                            producer_epoch,
                            partitions: txn.partitions.iter().map(topic_partition).collect(),
                        },
                    },
                    Request::AddPartitions {
                        transactional_id: tid,
                        producer_id,
                        producer_epoch,
                        partitions: txn.partitions.clone(),
                    },
                ),
                Stage::Produce => {
                    let (tp, values, sources) = txn.outputs.front().expect("an output batch");
                    let producer = ProducerBatch {
                        producer_id,
                        producer_epoch,
                        base_sequence: txn.sequences.get(tp).copied().unwrap_or(0),
                    };
                    let mut op = produce_op(tp, producer, Some(&tid), values);
                    if let Request::Produce { sources: s, .. } = &mut op {
                        s.clone_from(sources);
                    }
                    let req = ClientReq::ProducePartition {
                        topic: tp.topic.clone(),
                        partition: tp.partition,
                        request: partition_produce(producer, true, values_to_records(values)),
                    };
                    (req, op)
                }
                Stage::AddOffsets => {
                    let offsets = vec![TopicPartitionOffset {
                        topic: txn.input.topic.clone(),
                        partition: txn.input.partition,
                        offset: txn.next_offset,
                        metadata: None,
                    }];
                    let op = Request::AddOffsets {
                        transactional_id: tid.clone(),
                        producer_id,
                        producer_epoch,
                        group_id: self.group_id.clone(),
                        generation_id,
                        member_id: member_id.clone(),
                        offsets: vec![crate::history::GroupOffset {
                            topic: txn.input.topic.clone(),
                            partition: txn.input.partition,
                            offset: txn.next_offset,
                        }],
                    };
                    let req = AddOffsetsRequest {
                        producer_id,
                        producer_epoch,
                        group_id: self.group_id.clone(),
                        generation_id,
                        member_id,
                        offsets,
                    };
                    (
                        ClientReq::AddOffsets {
                            transactional_id: tid,
                            request: req,
                        },
                        op,
                    )
                }
                Stage::End(result) => (
                    ClientReq::EndTxn {
                        transactional_id: tid.clone(),
                        request: EndTxnRequest {
                            keep_epoch: false,
                            producer_id,
                            producer_epoch,
                        },
                        result,
                    },
                    Request::EndTxn {
                        transactional_id: tid,
                        producer_id,
                        producer_epoch,
                        commit: result == TxnResult::Commit,
                    },
                ),
            };
            return self.send(Pending::Txn, req, op);
        }
        let all_idle =
            !self.assignment.is_empty() && self.assignment.iter().all(|tp| self.idle[tp]);
        if self.txns_left == 0 || (env.settling && (all_idle || self.assignment.is_empty())) {
            return Action::Done;
        }
        if self.since_heartbeat >= 3 || self.assignment.is_empty() || all_idle {
            self.since_heartbeat = 0;
            if self.assignment.is_empty() || all_idle {
                for v in self.idle.values_mut() {
                    *v = false;
                }
                if rng.chance(700) {
                    return Action::Sleep(rng.range(100, 500));
                }
            }
            let req = ClientReq::Heartbeat {
                group_id: self.group_id.clone(),
                member_id: member_id.clone(),
                request: HeartbeatRequest { generation_id },
            };
            let op = Request::Heartbeat {
                group_id: self.group_id.clone(),
                member_id,
                generation_id,
            };
            return self.send(Pending::Heartbeat, req, op);
        }
        self.since_heartbeat += 1;
        let Some(positions) = self.positions.as_ref() else {
            let req = ClientReq::FetchOffsets {
                group_id: self.group_id.clone(),
                query: OffsetFetchQuery {
                    require_stable: true,
                    topic: None,
                    partitions: None,
                },
            };
            let op = Request::FetchOffsets {
                group_id: self.group_id.clone(),
                require_stable: true,
            };
            return self.send(Pending::FetchOffsets, req, op);
        };
        self.next_input = (self.next_input + 1) % self.assignment.len();
        self.reads += 1;
        let tp = self.assignment[self.next_input].clone();
        let offset = positions.get(&tp).copied().unwrap_or(0);
        let req = ClientReq::Fetch {
            topic: tp.topic.clone(),
            partition: tp.partition,
            options: FetchOptions {
                offset,
                max_records: rng.range(1, 4) as u32,
                max_bytes: 1 << 20,
                isolation: Isolation::ReadCommitted,
                wait_ms: 0,
            },
        };
        let op = Request::Fetch {
            topic: tp.topic.clone(),
            partition: tp.partition,
            offset,
            isolation: Isolation::ReadCommitted,
            // Each read starts from the group's committed position: a pass of its own.
            reader: format!("p{}.r{}", self.process, self.reads),
        };
        self.send(Pending::Read, req, op)
    }

    fn set_assignment(&mut self, assignment: &[kafdo_types::txn::TopicPartition]) {
        let new: Vec<Tp> = assignment
            .iter()
            .map(|tp| Tp::new(tp.topic.clone(), tp.partition))
            .collect();
        if new != self.assignment {
            self.assignment = new;
            self.positions = None;
        }
        self.idle = self
            .assignment
            .iter()
            .map(|tp| (tp.clone(), false))
            .collect();
    }

    /// The transaction is over for this instance: a new init aborts whatever is left.
    fn reset_producer(&mut self) {
        self.producer = None;
        self.txn = None;
        self.positions = None;
    }

    fn on_result(&mut self, answered: Answered<'_>) {
        let pending = std::mem::replace(&mut self.pending, Pending::None);
        match (pending, answered) {
            (_, Answered::Timeout) => {}
            (Pending::Join, Answered::Ok(ClientAns::Joined(j))) => {
                self.member = Some((j.member_id.clone(), j.generation_id));
                self.set_assignment(&j.assignment);
                self.positions = None;
            }
            (Pending::Heartbeat, Answered::Ok(ClientAns::Heartbeat(h))) => {
                if let Some((_, generation)) = self.member.as_mut() {
                    *generation = h.generation_id;
                }
                self.set_assignment(&h.assignment);
            }
            (Pending::Join | Pending::Heartbeat, Answered::Fail(e)) => {
                if matches!(
                    e.code,
                    ErrorCode::UnknownMemberId | ErrorCode::IllegalGeneration
                ) {
                    self.member = None;
                    self.assignment.clear();
                    self.positions = None;
                }
            }
            (Pending::Init, Answered::Ok(ClientAns::Producer(p))) => {
                self.producer = Some((p.producer_id, p.producer_epoch));
                self.txn = None;
                self.positions = None;
            }
            (Pending::Init, Answered::Fail(_)) => {}
            (Pending::FetchOffsets, Answered::Ok(ClientAns::Offsets(o))) => {
                self.positions = Some(
                    o.offsets
                        .iter()
                        .map(|o| (Tp::new(o.topic.clone(), o.partition), o.offset))
                        .collect(),
                );
            }
            (Pending::FetchOffsets, Answered::Fail(_)) => {}
            (Pending::Read, Answered::Ok(ClientAns::Fetched(f))) => {
                let tp = self.assignment[self.next_input].clone();
                if f.records.is_empty() {
                    self.idle.insert(tp.clone(), true);
                    if let Some(positions) = self.positions.as_mut() {
                        // Skip what read_committed skipped (markers, aborted records).
                        positions.insert(tp, f.next_offset);
                    }
                    return;
                }
                let mut partitions = Vec::new();
                let mut outputs: BTreeMap<Tp, (Vec<String>, Vec<String>)> = BTreeMap::new();
                for record in &f.records {
                    let value =
                        String::from_utf8_lossy(record.value.as_deref().unwrap_or_default())
                            .into_owned();
                    let bucket =
                        value.bytes().map(u64::from).sum::<u64>() % self.output_partitions as u64;
                    let out = Tp::new(self.output_topic.clone(), bucket as i32);
                    if !partitions.contains(&out) {
                        partitions.push(out.clone());
                    }
                    let entry = outputs.entry(out).or_default();
                    // Unique per attempt: a reprocessed input gets a new output value.
                    self.outputs += 1;
                    entry
                        .0
                        .push(format!("o{}.{}-{value}", self.process, self.outputs));
                    entry.1.push(value);
                }
                self.txn = Some(ProcessTxn {
                    input: tp,
                    next_offset: f.next_offset,
                    partitions,
                    outputs: outputs.into_iter().map(|(tp, (v, s))| (tp, v, s)).collect(),
                    sequences: BTreeMap::new(),
                    stage: Stage::AddPartitions,
                });
            }
            (Pending::Read, Answered::Fail(_)) => {}
            (Pending::Txn, Answered::Ok(ans)) => {
                let txn = self.txn.as_mut().expect("a transaction");
                match (txn.stage, ans) {
                    (Stage::AddPartitions, ClientAns::Done) => {
                        txn.stage = Stage::Produce;
                    }
                    (Stage::Produce, ClientAns::Produced(_)) => {
                        let (tp, values, _) = txn.outputs.pop_front().expect("a batch");
                        let seq = txn.sequences.entry(tp).or_insert(0);
                        *seq = seq.wrapping_add(values.len() as i32);
                        if txn.outputs.is_empty() {
                            txn.stage = Stage::AddOffsets;
                        }
                    }
                    (Stage::AddOffsets, ClientAns::Done) => {
                        txn.stage = Stage::End(TxnResult::Commit);
                    }
                    (Stage::End(result), ClientAns::Ended(end)) => {
                        self.producer = Some((end.producer_id, end.producer_epoch));
                        let txn = self.txn.take().expect("a transaction");
                        match (result, self.positions.as_mut()) {
                            (TxnResult::Commit, Some(positions)) => {
                                positions.insert(txn.input, txn.next_offset);
                            }
                            _ => self.positions = None,
                        }
                        self.txns_left = self.txns_left.saturating_sub(1);
                    }
                    (stage, ans) => panic!("a processor in {stage:?} got {ans:?}"),
                }
            }
            (Pending::Txn, Answered::Fail(e)) => {
                let stage = self.txn.as_ref().map(|t| t.stage);
                let group_refused = matches!(
                    e.code,
                    ErrorCode::IllegalGeneration
                        | ErrorCode::UnknownMemberId
                        | ErrorCode::RebalanceInProgress
                );
                match stage {
                    // The group fenced the offsets: abort, then rejoin or heartbeat.
                    Some(Stage::AddOffsets) if group_refused => {
                        if let Some(txn) = self.txn.as_mut() {
                            txn.stage = Stage::End(TxnResult::Abort);
                        }
                        if e.code == ErrorCode::UnknownMemberId {
                            self.member = None;
                        }
                        self.since_heartbeat = 3;
                    }
                    _ if e.code.is_retriable() => {}
                    _ => self.reset_producer(),
                }
            }
            (pending, Answered::Ok(ans)) => {
                panic!("a processor waiting for {pending:?} got {ans:?}")
            }
            (Pending::None, Answered::Fail(_)) => {}
        }
    }
}

/// One request of an ingestion script: a key and a body.
#[derive(Clone, Debug)]
pub struct IngestEntry {
    /// The `Idempotency-Key`.
    pub key: String,
    /// The body as sent.
    pub request: ProduceRequest,
    /// The records as the history names them (each with the partition it is routed to).
    pub routed: Vec<IngestRecord>,
    /// Wait this long before sending it: a reuse of the previous entry's key after the key
    /// expired.
    pub wait_ms: i64,
}

/// What the processes of one ingestion client share: the first time any of them sent each
/// entry, which bounds how long any of them may retry it.
pub type FirstSent = Rc<RefCell<BTreeMap<usize, i64>>>;

/// A sender of keyed topic produce requests (a webhook sender, a device): works through a
/// script of (key, body) entries, retrying each with the same key and body after a timeout or
/// a retriable refusal until it is answered. Two processes may run the same script (a client
/// that thinks its first attempt died, running it again elsewhere), so the same key is sent
/// concurrently.
///
/// A key is only retried within the key's TTL minus the longest a request can take to reach
/// the key's object (`retry_window_ms`, counted from the entry's first send by any process):
/// after the TTL the draft treats the same key as a new request, and the same body would
/// rightly be appended again.
#[derive(Debug)]
pub struct IngestClient {
    topic: String,
    script: Rc<Vec<IngestEntry>>,
    first_sent: FirstSent,
    retry_window_ms: i64,
    next: usize,
    waited: bool,
    backoff_ms: i64,
}

impl IngestClient {
    /// A process running `script` against `topic`.
    pub fn new(
        topic: String,
        script: Rc<Vec<IngestEntry>>,
        first_sent: FirstSent,
        retry_window_ms: i64,
    ) -> Self {
        Self {
            topic,
            script,
            first_sent,
            retry_window_ms,
            next: 0,
            waited: false,
            backoff_ms: 0,
        }
    }

    fn advance(&mut self) {
        self.next += 1;
        self.waited = false;
        self.backoff_ms = 0;
    }

    fn next(&mut self, _rng: &mut Rng, env: &Env) -> Action {
        loop {
            let Some(entry) = self.script.get(self.next) else {
                return Action::Done;
            };
            let first = self.first_sent.borrow().get(&self.next).copied();
            if first.is_none() && env.settling {
                // Finish what was started, start nothing new.
                return Action::Done;
            }
            if first.is_some_and(|at| env.now_ms > at + self.retry_window_ms) {
                // Too late to retry safely: the outcome stays unknown.
                self.advance();
                continue;
            }
            if !self.waited && entry.wait_ms > 0 && !env.settling {
                self.waited = true;
                return Action::Sleep(entry.wait_ms);
            }
            if self.backoff_ms > 0 {
                return Action::Sleep(std::mem::take(&mut self.backoff_ms));
            }
            self.first_sent
                .borrow_mut()
                .entry(self.next)
                .or_insert(env.now_ms);
            let req = ClientReq::Ingest {
                topic: self.topic.clone(),
                key: entry.key.clone(),
                request: entry.request.clone(),
            };
            let op = Request::Ingest {
                topic: self.topic.clone(),
                key: entry.key.clone(),
                records: entry.routed.clone(),
            };
            return Action::Send(Box::new((req, op)));
        }
    }

    fn on_result(&mut self, answered: Answered<'_>, rng: &mut Rng) {
        match answered {
            Answered::Ok(ClientAns::Ingested(_)) => self.advance(),
            Answered::Ok(other) => panic!("an ingestion client got {other:?}"),
            // Unknown outcome: the same key and body again.
            Answered::Timeout => {}
            // Another attempt holds the key (409): wait a little, as Retry-After asks.
            Answered::Fail(e) if e.code == ErrorCode::IdempotencyKeyInFlight => {
                self.backoff_ms = rng.range(200, 2_000);
            }
            Answered::Fail(e) if e.code.is_retriable() => {}
            // A definite refusal (the key was used with another body): give up on the entry.
            Answered::Fail(_) => self.advance(),
        }
    }
}
