//! Simulated clients: each is a small state machine that behaves as the real client would.
//!
//! A client has at most one request outstanding (one Jepsen process). The world asks it for its
//! next [`Action`] whenever it is idle, and tells it how the outstanding request ended
//! ([`Answered`]): an answer, a refusal, or a timeout. A timeout is an unknown outcome, and
//! every client treats it as the real one must: resend the same batch with the same sequence
//! numbers, resend the same commit (never turn it into an abort), re-read the same offset.

use std::collections::{BTreeMap, VecDeque};

use kafdo_txn_coordinator::Answer;
use kafdo_types::api::{Isolation, PartitionProduceResponse};
use kafdo_types::rpc::{AppendRequest, PartitionRef, ProducerBatch, ReadRequest, TxnResult};
use kafdo_types::txn::{CoordinatorAddPartitions, EndTxnRequest};
use kafdo_types::{ApiError, ProduceRecord};

use crate::history::{Process, Request, Tp};
use crate::rng::Rng;

/// A request a client sends to an object (the Worker's routing is modelled by the world).
#[derive(Clone, Debug)]
pub enum ClientReq {
    /// `POST /v1/producers` without a transactional id: the Worker allocates a producer id from
    /// the metadata object.
    AllocateProducerId,
    /// A produce to one partition.
    Append(AppendRequest),
    /// A fetch from one partition.
    Read(ReadRequest),
    /// `POST /v1/producers` with a transactional id.
    InitProducer {
        /// The transactional id (names the coordinator).
        transactional_id: String,
        /// The transaction timeout.
        transaction_timeout_ms: i64,
    },
    /// `POST /v1/transactions/{id}/partitions`.
    AddPartitions {
        /// The transactional id.
        transactional_id: String,
        /// The call with the partitions resolved.
        req: CoordinatorAddPartitions,
    },
    /// Commit or abort.
    EndTxn {
        /// The transactional id.
        transactional_id: String,
        /// The producer id and epoch.
        req: EndTxnRequest,
        /// Commit or abort.
        result: TxnResult,
    },
}

/// A successful answer to a [`ClientReq`].
#[derive(Clone, Debug)]
pub enum ClientAns {
    /// A fresh producer id (epoch 0).
    ProducerId(i64),
    /// Where a batch landed.
    Produced(PartitionProduceResponse),
    /// What a fetch read.
    Fetched(kafdo_types::api::FetchResponse),
    /// A coordinator's answer.
    Coordinator(Answer),
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

/// What clients share: the topics, and whether the run is winding down.
pub struct Env<'a> {
    /// Partition references by topic partition.
    pub partitions: &'a BTreeMap<Tp, PartitionRef>,
    /// When true, clients finish what they started and stop.
    pub settling: bool,
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
}

impl Client {
    /// The next action of an idle client.
    pub fn next(&mut self, rng: &mut Rng, env: &Env<'_>) -> Action {
        match self {
            Client::Idempotent(c) => c.next(rng, env),
            Client::Transactional(c) => c.next(rng, env),
            Client::Consumer(c) => c.next(rng, env),
        }
    }

    /// The outstanding request ended.
    pub fn on_result(&mut self, answered: Answered<'_>, rng: &mut Rng) {
        match self {
            Client::Idempotent(c) => c.on_result(answered),
            Client::Transactional(c) => c.on_result(answered, rng),
            Client::Consumer(c) => c.on_result(answered, rng),
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

    fn next(&mut self, rng: &mut Rng, env: &Env<'_>) -> Action {
        let Some(producer_id) = self.producer_id else {
            if self.batches_left == 0 || env.settling {
                return Action::Done;
            }
            return Action::Send(Box::new((
                ClientReq::AllocateProducerId,
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
        let req = AppendRequest {
            partition: env.partitions[&tp].clone(),
            producer: Some(producer),
            transactional: false,
            records: values_to_records(&values),
        };
        Action::Send(Box::new((ClientReq::Append(req), op)))
    }

    fn on_result(&mut self, answered: Answered<'_>) {
        match answered {
            Answered::Ok(ClientAns::ProducerId(id)) => {
                self.producer_id = Some(*id);
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
        }
    }

    fn next(&mut self, rng: &mut Rng, env: &Env<'_>) -> Action {
        let Some((producer_id, producer_epoch)) = self.producer else {
            if self.txns_left == 0 || env.settling {
                return Action::Done;
            }
            return Action::Send(Box::new((
                ClientReq::InitProducer {
                    transactional_id: self.transactional_id.clone(),
                    transaction_timeout_ms: self.transaction_timeout_ms,
                },
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
            let result = if rng.chance(800) {
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
            let req = CoordinatorAddPartitions {
                producer_id,
                producer_epoch,
                partitions: txn
                    .partitions
                    .iter()
                    .map(|tp| env.partitions[tp].clone())
                    .collect(),
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
                    req,
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
            let req = AppendRequest {
                partition: env.partitions[tp].clone(),
                producer: Some(producer),
                transactional: true,
                records: values_to_records(values),
            };
            return Action::Send(Box::new((ClientReq::Append(req), op)));
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
                req: EndTxnRequest {
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
            Answered::Ok(ClientAns::Coordinator(Answer::Producer(p))) => {
                self.producer = Some((p.producer_id, p.producer_epoch));
                // Whatever this instance had open was aborted by the init.
                self.txn = None;
            }
            Answered::Ok(ClientAns::Coordinator(Answer::PartitionsAdded)) => {
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
            Answered::Ok(ClientAns::Coordinator(Answer::Ended(end))) => {
                let (producer_id, _) = self.producer.expect("a producer");
                self.producer = Some((producer_id, end.producer_epoch));
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
#[derive(Debug)]
pub struct Consumer {
    process: Process,
    tp: Tp,
    session: u32,
    position: i64,
    reads_left: u32,
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
        }
    }

    fn rewind(&mut self) {
        self.session += 1;
        self.position = 0;
    }

    fn next(&mut self, rng: &mut Rng, env: &Env<'_>) -> Action {
        if self.reads_left == 0 || env.settling {
            return Action::Done;
        }
        let req = ReadRequest {
            partition: env.partitions[&self.tp].clone(),
            offset: self.position,
            max_records: rng.range(1, 6) as u32,
            max_bytes: 1 << 20,
            isolation: Isolation::ReadCommitted,
            wait_ms: 0,
        };
        let op = Request::Fetch {
            topic: self.tp.topic.clone(),
            partition: self.tp.partition,
            offset: self.position,
            isolation: Isolation::ReadCommitted,
            reader: format!("p{}.s{}", self.process, self.session),
        };
        Action::Send(Box::new((ClientReq::Read(req), op)))
    }

    fn on_result(&mut self, answered: Answered<'_>, rng: &mut Rng) {
        self.reads_left = self.reads_left.saturating_sub(1);
        if let Answered::Ok(ClientAns::Fetched(f)) = answered {
            self.position = f.next_offset;
            if rng.chance(20) {
                self.rewind();
            }
        }
    }
}
