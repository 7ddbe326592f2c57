//! [`Producer`]: batching, Kafka's partitioner, idempotence, a delivery future per record.
//!
//! # Flow of a record
//!
//! [`Producer::send`] picks the partition ([`crate::partitioner`]), waits for room in the
//! buffer (`max_buffered_records`: the producer's back-pressure, Kafka's `buffer.memory`), and
//! queues the record to that partition's *sender*, a background task that owns the partition's
//! batch and sequence numbers. It returns a [`DeliveryFuture`] that resolves to the record's
//! `(partition, offset)` once the batch is acknowledged.
//!
//! A sender takes records from its queue into a batch until the batch is full (`batch_size`
//! bytes or `max_batch_records` records) or `linger_ms` has passed since the batch's first
//! record, then sends it with `POST /v1/topics/{t}/partitions/{p}/records`. Each partition has
//! at most one batch in flight, so batches land in the order they were made; records that
//! arrive meanwhile queue up and go out as the next batch as soon as the answer comes (they
//! have already waited at least a round trip, so the linger is not applied again).
//!
//! # Idempotence (on by default)
//!
//! Before its first batch the producer gets a producer id and epoch from `POST /v1/producers`.
//! Each partition sender numbers its records from 0: a batch carries the `base_sequence` of its
//! first record. A batch that fails with an unknown outcome (a timeout, a lost connection) or a
//! retriable error is retried, after a jittered backoff, **with the same base_sequence**: the
//! partition keeps the last 5 batches of each producer and answers a repeat with the original
//! offsets (`duplicate: true`), so a retry can never write a record twice. The sequence
//! advances only when a batch is acknowledged.
//!
//! When retries run out on an unknown outcome, the partition's sequence state is uncertain: the
//! batch's records fail with [`Error::UnknownOutcome`], and the sender takes a fresh producer id
//! for its next batch (sequence 0), as Kafka's producer bumps its epoch (KIP-360). A definite
//! error (`MESSAGE_TOO_LARGE`, `UNKNOWN_TOPIC_OR_PARTITION`, ...) fails the batch's records and
//! leaves the sequence where it was, since nothing was written; `OUT_OF_ORDER_SEQUENCE_NUMBER`
//! and `UNKNOWN_PRODUCER_ID` also take a fresh producer id.
//!
//! If the server has no `/v1/producers` route (a Worker older than producer ids), the producer
//! falls back to plain batches without producer id: [`Producer::is_idempotent`] then says
//! `false`, and a batch is retried only when the request certainly did not leave (a connection
//! refused); an unknown outcome is reported to the caller instead of risking a duplicate.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::{select, Either};
use kafdo_types::api::{InitProducerRequest, PartitionProduceRequest, PartitionProduceResponse};
use kafdo_types::limits::{MAX_RECORDS_PER_REQUEST, MAX_RECORD_BYTES};
use kafdo_types::{ErrorCode, ProduceRecord};
use tokio::sync::{mpsc, oneshot, OnceCell, OwnedSemaphorePermit, Semaphore};

use crate::client::{is_missing_route, Client};
use crate::error::Error;
use crate::partitioner::StickyPartitioner;
use crate::retry::{Jitter, RetryPolicy, Safety};

/// A producer's settings (Kafka's names where Kafka has them).
#[derive(Clone, Debug)]
pub struct ProducerConfig {
    /// How long a batch waits for more records before it is sent, in ms (Kafka's `linger.ms`).
    pub linger_ms: u64,
    /// The most record bytes (key + value + headers) in one batch (Kafka's `batch.size`).
    pub batch_size: usize,
    /// The most records in one batch (at most 10,000, the server's limit per request).
    pub max_batch_records: usize,
    /// Producer id and sequence numbers, so retries never duplicate (Kafka's
    /// `enable.idempotence`, on by default).
    pub enable_idempotence: bool,
    /// The most records sent but not yet acknowledged; `send` waits for room beyond it.
    pub max_buffered_records: usize,
    /// Retries of a batch: attempts and backoff.
    pub retry: RetryPolicy,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        Self {
            linger_ms: 5,
            // Larger than Kafka's 16 KiB: every batch is an HTTP request and a storage
            // transaction, so throughput comes from big batches (10,000 records is the
            // server's limit per request).
            batch_size: 1024 * 1024,
            max_batch_records: 10_000,
            enable_idempotence: true,
            max_buffered_records: 200_000,
            retry: RetryPolicy {
                max_attempts: 20,
                initial_backoff_ms: 100,
                max_backoff_ms: 2_000,
            },
        }
    }
}

/// A producer id and epoch from `POST /v1/producers`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct ProducerIdentity {
    /// The producer id.
    pub producer_id: i64,
    /// The producer epoch.
    pub producer_epoch: i32,
}

type DeliveryResult = Result<(i32, i64), Error>;

/// Resolves to where one record landed, `(partition, offset)`, once its batch is acknowledged.
#[derive(Debug)]
pub struct DeliveryFuture {
    receiver: oneshot::Receiver<DeliveryResult>,
}

impl std::future::Future for DeliveryFuture {
    type Output = DeliveryResult;

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<DeliveryResult> {
        std::pin::Pin::new(&mut self.receiver).poll(cx).map(|r| {
            r.unwrap_or_else(|_| Err(Error::Closed("the partition sender stopped".into())))
        })
    }
}

/// A record waiting in a partition sender's queue.
struct Pending {
    record: ProduceRecord,
    size_bytes: usize,
    done: oneshot::Sender<DeliveryResult>,
    _permit: OwnedSemaphorePermit,
}

enum Message {
    Record(Pending),
    /// Send what is queued now, and answer once every earlier record is delivered.
    Flush(oneshot::Sender<()>),
}

/// What the partition senders share (not the senders map: the senders end when the producer
/// is dropped and their queues close).
pub(crate) struct SenderContext {
    pub(crate) client: Client,
    config: ProducerConfig,
    identity: OnceCell<Option<ProducerIdentity>>,
    jitter: Jitter,
    /// For a transactional producer: its transaction (see [`crate::txn`]).
    pub(crate) txn: Option<crate::txn::TxnShared>,
}

impl SenderContext {
    /// The producer's identity: `None` when idempotence is off or the server lacks producer ids.
    async fn identity(&self) -> Result<Option<ProducerIdentity>, Error> {
        if let Some(txn) = &self.txn {
            return Ok(Some(txn.identity()));
        }
        if !self.config.enable_idempotence {
            return Ok(None);
        }
        self.identity
            .get_or_try_init(|| async { self.fresh_identity().await })
            .await
            .copied()
    }

    async fn fresh_identity(&self) -> Result<Option<ProducerIdentity>, Error> {
        match self
            .client
            .init_producer(&InitProducerRequest::default())
            .await
        {
            Ok(answer) => Ok(Some(ProducerIdentity {
                producer_id: answer.producer_id,
                producer_epoch: answer.producer_epoch,
            })),
            Err(e) if is_missing_route(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

struct TopicState {
    partitioner: StickyPartitioner,
}

struct Inner {
    context: Arc<SenderContext>,
    topics: Mutex<HashMap<String, TopicState>>,
    senders: Mutex<HashMap<(String, i32), mpsc::UnboundedSender<Message>>>,
    buffer: Arc<Semaphore>,
}

/// An idempotent, batching producer. Cheap to clone; clones share batches and senders.
#[derive(Clone)]
pub struct Producer {
    inner: Arc<Inner>,
}

impl Producer {
    /// What the senders share (the transactional producer reads its transaction there).
    pub(crate) fn context(&self) -> &Arc<SenderContext> {
        &self.inner.context
    }
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("config", &self.inner.context.config)
            .finish_non_exhaustive()
    }
}

impl Producer {
    /// A producer over `client`. Nothing is sent until the first record.
    pub fn new(client: Client, config: ProducerConfig) -> Self {
        Self::build(client, config, None)
    }

    /// A producer whose batches belong to `txn`'s transactions.
    pub(crate) fn build(
        client: Client,
        config: ProducerConfig,
        txn: Option<crate::txn::TxnShared>,
    ) -> Self {
        assert!(config.max_buffered_records > 0, "max_buffered_records > 0");
        let buffer = Arc::new(Semaphore::new(config.max_buffered_records));
        Self {
            inner: Arc::new(Inner {
                context: Arc::new(SenderContext {
                    client,
                    config,
                    identity: OnceCell::new(),
                    jitter: Jitter::new(),
                    txn,
                }),
                topics: Mutex::new(HashMap::new()),
                senders: Mutex::new(HashMap::new()),
                buffer,
            }),
        }
    }

    /// Whether this producer writes with a producer id and sequence numbers. Before the first
    /// batch this asks the server for the producer id.
    pub async fn is_idempotent(&self) -> Result<bool, Error> {
        Ok(self.inner.context.identity().await?.is_some())
    }

    /// The producer id and epoch, once obtained (`None` without idempotence).
    pub async fn identity(&self) -> Result<Option<ProducerIdentity>, Error> {
        self.inner.context.identity().await
    }

    /// Queues a record with an optional key; see [`Producer::send_record`].
    pub async fn send(
        &self,
        topic: &str,
        key: Option<Vec<u8>>,
        value: Vec<u8>,
    ) -> Result<DeliveryFuture, Error> {
        self.send_record(
            topic,
            ProduceRecord {
                key,
                value: Some(value),
                ..ProduceRecord::default()
            },
        )
        .await
    }

    /// Queues a record and returns the future of its delivery. Waits only to learn the topic's
    /// partition count (once per topic) and for room in the buffer; the record is sent in the
    /// background, with its partition's batch.
    pub async fn send_record(
        &self,
        topic: &str,
        mut record: ProduceRecord,
    ) -> Result<DeliveryFuture, Error> {
        let size_bytes = record.size_bytes();
        if size_bytes > MAX_RECORD_BYTES {
            return Err(Error::Api {
                status: 413,
                code: ErrorCode::MessageTooLarge,
                message: format!("a record of {size_bytes} bytes; the limit is {MAX_RECORD_BYTES}"),
            });
        }
        let partitions = self.partition_count(topic).await?;
        if let Some(p) = record.partition {
            if !(0..partitions).contains(&p) {
                return Err(Error::Api {
                    status: 404,
                    code: ErrorCode::UnknownTopicOrPartition,
                    message: format!("topic {topic} has no partition {p}"),
                });
            }
        }
        let permit = self
            .inner
            .buffer
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::Closed("producer closed".into()))?;
        let partition = {
            let mut topics = self.inner.topics.lock().unwrap();
            let state = topics
                .get_mut(topic)
                .expect("partition_count registered the topic");
            state.partitioner.partition(
                record.partition,
                record.key.as_deref(),
                size_bytes,
                self.inner.context.jitter.next(),
            )
        };
        // The partition endpoint takes the partition from its path.
        record.partition = None;
        let (done, receiver) = oneshot::channel();
        let message = Message::Record(Pending {
            record,
            size_bytes,
            done,
            _permit: permit,
        });
        self.sender(topic, partition)
            .send(message)
            .map_err(|_| Error::Closed("the partition sender stopped".into()))?;
        Ok(DeliveryFuture { receiver })
    }

    /// Sends every queued record now (without waiting for `linger_ms`) and waits until all
    /// records sent before this call are acknowledged or failed.
    pub async fn flush(&self) -> Result<(), Error> {
        let senders: Vec<_> = self
            .inner
            .senders
            .lock()
            .unwrap()
            .values()
            .cloned()
            .collect();
        let mut waits = Vec::with_capacity(senders.len());
        for sender in senders {
            let (done, wait) = oneshot::channel();
            if sender.send(Message::Flush(done)).is_ok() {
                waits.push(wait);
            }
        }
        for wait in waits {
            wait.await
                .map_err(|_| Error::Closed("a partition sender stopped".into()))?;
        }
        Ok(())
    }

    /// The partition count of `topic`, asked of the server once and then cached.
    pub async fn partition_count(&self, topic: &str) -> Result<i32, Error> {
        if let Some(state) = self.inner.topics.lock().unwrap().get(topic) {
            return Ok(state.partitioner.partitions());
        }
        let description = self.inner.context.client.describe_topic(topic).await?;
        let config = &self.inner.context.config;
        let mut topics = self.inner.topics.lock().unwrap();
        let state = topics
            .entry(topic.to_string())
            .or_insert_with(|| TopicState {
                partitioner: StickyPartitioner::new(
                    description.partitions,
                    config.batch_size,
                    config.max_batch_records,
                ),
            });
        Ok(state.partitioner.partitions())
    }

    /// The queue of a partition's sender, starting the sender on first use.
    fn sender(&self, topic: &str, partition: i32) -> mpsc::UnboundedSender<Message> {
        let mut senders = self.inner.senders.lock().unwrap();
        if let Some(sender) = senders.get(&(topic.to_string(), partition)) {
            if !sender.is_closed() {
                return sender.clone();
            }
        }
        let (sender, queue) = mpsc::unbounded_channel();
        let task = PartitionSender {
            context: self.inner.context.clone(),
            topic: topic.to_string(),
            partition,
            identity: None,
            next_sequence: 0,
        };
        self.inner
            .context
            .client
            .transport()
            .spawn(Box::pin(task.run(queue)));
        senders.insert((topic.to_string(), partition), sender.clone());
        sender
    }
}

/// The background task of one partition: its batch, its sequence numbers, one batch in flight.
struct PartitionSender {
    context: Arc<SenderContext>,
    topic: String,
    partition: i32,
    /// `None` until the first batch; then the identity this partition writes with.
    identity: Option<Option<ProducerIdentity>>,
    next_sequence: i32,
}

impl PartitionSender {
    async fn run(mut self, mut queue: mpsc::UnboundedReceiver<Message>) {
        let config = self.context.config.clone();
        let max_records = config.max_batch_records.clamp(1, MAX_RECORDS_PER_REQUEST);
        let mut carried: Option<Pending> = None;
        loop {
            // The batch's first record: one carried over from a full batch, one that queued
            // during the last send (it has waited long enough), or the next to arrive.
            let (first, waited) = match carried.take() {
                Some(p) => (p, true),
                None => match queue.try_recv() {
                    Ok(Message::Record(p)) => (p, true),
                    Ok(Message::Flush(done)) => {
                        let _ = done.send(());
                        continue;
                    }
                    Err(mpsc::error::TryRecvError::Empty) => match queue.recv().await {
                        Some(Message::Record(p)) => (p, false),
                        Some(Message::Flush(done)) => {
                            let _ = done.send(());
                            continue;
                        }
                        None => return,
                    },
                    Err(mpsc::error::TryRecvError::Disconnected) => return,
                },
            };
            let mut bytes = first.size_bytes;
            let mut batch = vec![first];
            let mut flushes = Vec::new();
            let mut closed = false;
            let mut linger = if waited || config.linger_ms == 0 {
                None
            } else {
                Some(
                    self.context
                        .client
                        .transport()
                        .sleep(Duration::from_millis(config.linger_ms)),
                )
            };
            // Fill the batch until it is full, the linger ends, or a flush asks for it.
            while batch.len() < max_records && bytes < config.batch_size && flushes.is_empty() {
                let message = match queue.try_recv() {
                    Ok(m) => m,
                    Err(mpsc::error::TryRecvError::Disconnected) => {
                        closed = true;
                        break;
                    }
                    Err(mpsc::error::TryRecvError::Empty) => match linger.take() {
                        None => break,
                        Some(timer) => match select(Box::pin(queue.recv()), timer).await {
                            Either::Left((Some(m), timer)) => {
                                linger = Some(timer);
                                m
                            }
                            Either::Left((None, _)) => {
                                closed = true;
                                break;
                            }
                            Either::Right(((), _)) => break,
                        },
                    },
                };
                match message {
                    Message::Flush(done) => flushes.push(done),
                    Message::Record(p) => {
                        if bytes + p.size_bytes > config.batch_size {
                            carried = Some(p);
                            break;
                        }
                        bytes += p.size_bytes;
                        batch.push(p);
                    }
                }
            }
            self.send_batch(batch).await;
            for done in flushes {
                let _ = done.send(());
            }
            if closed && carried.is_none() {
                return;
            }
        }
    }

    /// Sends one batch with retries and resolves its records' futures.
    async fn send_batch(&mut self, batch: Vec<Pending>) {
        let result = self.deliver(&batch).await;
        if let (Err(e), Some(txn)) = (&result, &self.context.txn) {
            txn.fail(e.clone());
        }
        for (i, pending) in batch.into_iter().enumerate() {
            let answer = match &result {
                Ok(response) => Ok((self.partition, response.base_offset + i as i64)),
                Err(e) => Err(e.clone()),
            };
            let _ = pending.done.send(answer);
        }
    }

    async fn deliver(&mut self, batch: &[Pending]) -> Result<PartitionProduceResponse, Error> {
        if let Some(txn) = &self.context.txn {
            // Each transaction has its own epoch (bumped by every commit or abort), and a new
            // epoch's sequence starts at 0.
            let current = txn.identity();
            if self.identity != Some(Some(current)) {
                self.identity = Some(Some(current));
                self.next_sequence = 0;
            }
            txn.register(&self.context.client, &self.topic, self.partition)
                .await?;
        }
        let identity = match self.identity {
            Some(identity) => identity,
            None => {
                let identity = self.context.identity().await?;
                self.identity = Some(identity);
                identity
            }
        };
        let count = batch.len() as i32;
        let request = PartitionProduceRequest {
            producer_id: identity.map(|i| i.producer_id),
            producer_epoch: identity.map(|i| i.producer_epoch),
            base_sequence: identity.map(|_| self.next_sequence),
            transactional: self.context.txn.is_some(),
            records: batch.iter().map(|p| p.record.clone()).collect(),
        };
        let body = self.context.client.encode(&request);
        let safety = if identity.is_some() {
            Safety::Idempotent
        } else {
            Safety::NotIdempotent
        };
        let policy = &self.context.config.retry;
        let mut attempt = 1;
        let result = loop {
            let result = self
                .context
                .client
                .produce_to_partition_once(&self.topic, self.partition, body.clone())
                .await;
            match result {
                Err(e) if policy.should_retry(&e, safety, attempt) => {
                    let wait = policy.backoff(attempt - 1, self.context.jitter.next());
                    self.context.client.sleep(wait).await;
                    attempt += 1;
                }
                other => break other,
            }
        };
        match &result {
            Ok(response) => {
                if response.last_offset - response.base_offset + 1 != i64::from(count) {
                    return Err(Error::Protocol {
                        status: 200,
                        message: format!(
                            "a batch of {count} records answered offsets {}..={}",
                            response.base_offset, response.last_offset
                        ),
                    });
                }
                // Kafka wraps sequence numbers at i32::MAX back to 0.
                self.next_sequence = ((i64::from(self.next_sequence) + i64::from(count))
                    % (i64::from(i32::MAX) + 1)) as i32;
            }
            Err(_) if self.context.txn.is_some() => {
                // A transaction cannot change producer id: the failure makes the transaction
                // abortable or fatal (see `send_batch`), and the abort's new epoch restarts the
                // sequence.
            }
            Err(e)
                if identity.is_some()
                    && (e.is_unknown_outcome()
                        || matches!(
                            e.code(),
                            ErrorCode::OutOfOrderSequenceNumber | ErrorCode::UnknownProducerId
                        )) =>
            {
                // The partition's view of our sequence is uncertain: start over with a fresh
                // producer id, whose sequence begins at 0 (see the module docs).
                self.identity = Some(self.context.fresh_identity().await.unwrap_or(identity));
                self.next_sequence = 0;
            }
            Err(_) => {}
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::ClientConfig;
    use crate::testing::{api_error, body, json, FakeTransport};
    use crate::transport::{Method, TransportError};
    use serde_json::json;
    use std::sync::atomic::{AtomicI64, Ordering};

    fn config() -> ClientConfig {
        ClientConfig {
            retry: RetryPolicy {
                max_attempts: 5,
                initial_backoff_ms: 1,
                max_backoff_ms: 2,
            },
            ..ClientConfig::default()
        }
    }

    /// A server with `partitions` partitions that numbers offsets per partition.
    fn server(
        partitions: i32,
        fail: impl Fn(&crate::HttpRequest, usize) -> Option<Result<crate::HttpResponse, TransportError>>
            + Send
            + Sync
            + 'static,
    ) -> FakeTransport {
        let offsets: Arc<Vec<AtomicI64>> =
            Arc::new((0..partitions).map(|_| AtomicI64::new(0)).collect());
        FakeTransport::new(move |request, index| {
            if let Some(answer) = fail(request, index) {
                return answer;
            }
            match (request.method, request.path.as_str()) {
                (Method::Get, "/v1/topics/t") => json(
                    200,
                    json!({"name":"t","partitions":partitions,"config":{"retention_ms":-1,"cleanup_policy":"delete"}}),
                ),
                (Method::Post, "/v1/producers") => json(
                    200,
                    json!({"producer_id": 1000 + index, "producer_epoch": 0}),
                ),
                (Method::Post, path) if path.starts_with("/v1/topics/t/partitions/") => {
                    let p: usize = path.split('/').nth(5).unwrap().parse().unwrap();
                    let n = body(request)["records"].as_array().unwrap().len() as i64;
                    let base = offsets[p].fetch_add(n, Ordering::SeqCst);
                    json(
                        200,
                        json!({"base_offset": base, "last_offset": base + n - 1, "duplicate": false}),
                    )
                }
                _ => api_error(ErrorCode::InvalidRequest),
            }
        })
    }

    fn produces(transport: &FakeTransport) -> Vec<serde_json::Value> {
        transport
            .requests()
            .iter()
            .filter(|r| r.path.contains("/partitions/"))
            .map(body)
            .collect()
    }

    #[tokio::test]
    async fn batches_by_linger_and_size_with_sequences() {
        let transport = server(1, |_, _| None);
        let client = Client::with_config(transport.clone(), config());
        let producer = Producer::new(
            client,
            ProducerConfig {
                linger_ms: 50,
                max_batch_records: 4,
                ..ProducerConfig::default()
            },
        );
        let mut deliveries = Vec::new();
        for i in 0..10 {
            deliveries.push(
                producer
                    .send("t", None, format!("v{i}").into_bytes())
                    .await
                    .unwrap(),
            );
        }
        producer.flush().await.unwrap();
        for (i, d) in deliveries.into_iter().enumerate() {
            assert_eq!(d.await.unwrap(), (0, i as i64));
        }
        let batches = produces(&transport);
        let sizes: Vec<usize> = batches
            .iter()
            .map(|b| b["records"].as_array().unwrap().len())
            .collect();
        assert_eq!(sizes, vec![4, 4, 2]);
        let sequences: Vec<i64> = batches
            .iter()
            .map(|b| b["base_sequence"].as_i64().unwrap())
            .collect();
        assert_eq!(sequences, vec![0, 4, 8]);
        assert!(batches[0]["producer_id"].as_i64().unwrap() >= 1000);
        assert!(batches
            .iter()
            .all(|b| b["producer_id"] == batches[0]["producer_id"]
                && b["producer_epoch"] == json!(0)));
    }

    #[tokio::test]
    async fn a_retry_keeps_the_base_sequence() {
        // The first produce times out (unknown outcome), the second succeeds.
        let transport = server(1, |request, _| {
            static FAILED: std::sync::atomic::AtomicBool =
                std::sync::atomic::AtomicBool::new(false);
            if request.path.contains("/partitions/") && !FAILED.swap(true, Ordering::SeqCst) {
                return Some(Err(TransportError::Timeout(Duration::from_secs(1))));
            }
            None
        });
        let producer = Producer::new(
            Client::with_config(transport.clone(), config()),
            ProducerConfig {
                linger_ms: 0,
                retry: RetryPolicy {
                    max_attempts: 3,
                    initial_backoff_ms: 1,
                    max_backoff_ms: 1,
                },
                ..ProducerConfig::default()
            },
        );
        let d = producer
            .send("t", Some(b"k".to_vec()), b"v".to_vec())
            .await
            .unwrap();
        assert_eq!(d.await.unwrap(), (0, 0));
        let batches = produces(&transport);
        assert_eq!(batches.len(), 2);
        assert_eq!(batches[0], batches[1], "the retry is the same batch");
        assert_eq!(batches[1]["base_sequence"], json!(0));
        // The next batch continues the sequence.
        producer
            .send("t", None, b"w".to_vec())
            .await
            .unwrap()
            .await
            .unwrap();
        assert_eq!(produces(&transport)[2]["base_sequence"], json!(1));
    }

    #[tokio::test]
    async fn keys_pick_kafkas_partition_and_batches_are_per_partition() {
        let transport = server(4, |_, _| None);
        let producer = Producer::new(
            Client::with_config(transport.clone(), config()),
            ProducerConfig::default(),
        );
        let mut expected = HashMap::new();
        let mut deliveries = Vec::new();
        for i in 0..40 {
            let key = format!("key-{i}");
            let p = kafdo_types::partitioner::partition_for_key(key.as_bytes(), 4);
            *expected.entry(p).or_insert(0) += 1;
            deliveries.push((
                p,
                producer
                    .send("t", Some(key.into_bytes()), vec![1])
                    .await
                    .unwrap(),
            ));
        }
        producer.flush().await.unwrap();
        for (p, d) in deliveries {
            assert_eq!(d.await.unwrap().0, p);
        }
        // Each partition got its records in one batch, numbered from sequence 0.
        for request in transport
            .requests()
            .iter()
            .filter(|r| r.path.contains("/partitions/"))
        {
            let p: i32 = request.path.split('/').nth(5).unwrap().parse().unwrap();
            let b = body(request);
            assert_eq!(b["records"].as_array().unwrap().len(), expected[&p]);
            assert_eq!(b["base_sequence"], json!(0));
        }
    }

    #[tokio::test]
    async fn definite_errors_fail_records_and_keep_the_sequence() {
        let transport = server(1, |request, _| {
            let b: serde_json::Value = if request.path.contains("/partitions/") {
                body(request)
            } else {
                json!({})
            };
            if b["records"][0]["value"] == json!("YmFk") {
                return Some(api_error(ErrorCode::MessageTooLarge));
            }
            None
        });
        let producer = Producer::new(
            Client::with_config(transport.clone(), config()),
            ProducerConfig {
                linger_ms: 0,
                ..ProducerConfig::default()
            },
        );
        let bad = producer
            .send("t", None, b"bad".to_vec())
            .await
            .unwrap()
            .await;
        assert_eq!(bad.unwrap_err().code(), ErrorCode::MessageTooLarge);
        producer
            .send("t", None, b"good".to_vec())
            .await
            .unwrap()
            .await
            .unwrap();
        let batches = produces(&transport);
        assert_eq!(batches.len(), 2, "a definite error is not retried");
        assert_eq!(batches[1]["base_sequence"], json!(0), "nothing was written");
    }

    #[tokio::test]
    async fn falls_back_without_producer_ids_and_does_not_retry_unknown_outcomes() {
        let transport = server(1, |request, _| {
            if request.path == "/v1/producers" {
                return Some(Ok(crate::HttpResponse {
                    status: 404,
                    content_type: None,
                    body: b"Not Found".to_vec(),
                }));
            }
            if request.path.contains("/partitions/")
                && body(request)["records"][0]["value"] == json!("bG9zdA==")
            {
                return Some(Err(TransportError::Io("reset".into())));
            }
            None
        });
        let producer = Producer::new(
            Client::with_config(transport.clone(), config()),
            ProducerConfig {
                linger_ms: 0,
                ..ProducerConfig::default()
            },
        );
        assert!(!producer.is_idempotent().await.unwrap());
        producer
            .send("t", None, b"a".to_vec())
            .await
            .unwrap()
            .await
            .unwrap();
        let lost = producer
            .send("t", None, b"lost".to_vec())
            .await
            .unwrap()
            .await;
        assert!(lost.unwrap_err().is_unknown_outcome());
        let batches = produces(&transport);
        assert_eq!(
            batches.len(),
            2,
            "an unknown outcome without idempotence is not retried"
        );
        assert!(batches[0].get("producer_id").is_none());
    }

    #[tokio::test]
    async fn unknown_outcome_after_retries_takes_a_fresh_producer_id() {
        let transport = server(1, |request, _| {
            if request.path.contains("/partitions/")
                && body(request)["records"][0]["value"] == json!("bG9zdA==")
            {
                return Some(Err(TransportError::Timeout(Duration::from_millis(1))));
            }
            None
        });
        let producer = Producer::new(
            Client::with_config(transport.clone(), config()),
            ProducerConfig {
                linger_ms: 0,
                retry: RetryPolicy {
                    max_attempts: 2,
                    initial_backoff_ms: 1,
                    max_backoff_ms: 1,
                },
                ..ProducerConfig::default()
            },
        );
        producer
            .send("t", None, b"a".to_vec())
            .await
            .unwrap()
            .await
            .unwrap();
        assert!(producer
            .send("t", None, b"lost".to_vec())
            .await
            .unwrap()
            .await
            .unwrap_err()
            .is_unknown_outcome());
        producer
            .send("t", None, b"b".to_vec())
            .await
            .unwrap()
            .await
            .unwrap();
        let batches = produces(&transport);
        assert_eq!(batches.len(), 4);
        assert_eq!(batches[1]["base_sequence"], json!(1));
        assert_eq!(batches[2]["base_sequence"], json!(1));
        assert_ne!(batches[3]["producer_id"], batches[0]["producer_id"]);
        assert_eq!(batches[3]["base_sequence"], json!(0));
    }

    /// What the partition appended, by (producer id, base_sequence): base offset and batch.
    type AppendLog = HashMap<(i64, i64), (i64, serde_json::Value)>;

    /// Random faults on every produce: refused connections (not sent), answers lost after the
    /// append (unknown outcome), and retriable errors. The partition side here remembers which
    /// (producer id, base_sequence) it appended, as the real partition does, so that a retry
    /// gets the original offsets. Checked: every retry repeats its batch byte for byte,
    /// sequences have no gap, and every record acknowledged has its own offset, once.
    #[tokio::test]
    async fn random_faults_never_duplicate_or_skip() {
        for seed in 1..=20u64 {
            let jitter = Arc::new(Jitter::with_seed(seed));
            let log: Arc<Mutex<AppendLog>> = Arc::default();
            let next_offset = Arc::new(AtomicI64::new(0));
            let (j, l, n) = (jitter.clone(), log.clone(), next_offset.clone());
            let transport = server(1, move |request, _| {
                if !request.path.contains("/partitions/") {
                    return None;
                }
                let b = body(request);
                let key = (
                    b["producer_id"].as_i64().unwrap(),
                    b["base_sequence"].as_i64().unwrap(),
                );
                let roll = j.next() % 10;
                if roll == 0 {
                    return Some(Err(TransportError::Connect("refused".into())));
                }
                if roll == 1 {
                    return Some(api_error(ErrorCode::CoordinatorLoadInProgress));
                }
                let mut log = l.lock().unwrap();
                let records = b["records"].as_array().unwrap().len() as i64;
                let (base, duplicate) = match log.get(&key) {
                    Some((base, first)) => {
                        assert_eq!(first, &b, "a retry repeats its batch exactly");
                        (*base, true)
                    }
                    None => {
                        let base = n.fetch_add(records, Ordering::SeqCst);
                        log.insert(key, (base, b.clone()));
                        (base, false)
                    }
                };
                if roll == 2 {
                    // Appended, but the answer is lost.
                    return Some(Err(TransportError::Timeout(Duration::from_millis(1))));
                }
                Some(json(
                    200,
                    json!({"base_offset": base, "last_offset": base + records - 1, "duplicate": duplicate}),
                ))
            });
            let producer = Producer::new(
                Client::with_config(transport.clone(), config()),
                ProducerConfig {
                    linger_ms: 1,
                    max_batch_records: 7,
                    retry: RetryPolicy {
                        max_attempts: 50,
                        initial_backoff_ms: 1,
                        max_backoff_ms: 1,
                    },
                    ..ProducerConfig::default()
                },
            );
            let mut deliveries = Vec::new();
            for i in 0..100 {
                deliveries.push(
                    producer
                        .send("t", None, format!("{i}").into_bytes())
                        .await
                        .unwrap(),
                );
            }
            producer.flush().await.unwrap();
            let mut offsets = std::collections::BTreeSet::new();
            for d in deliveries {
                let (_, offset) = d.await.unwrap();
                assert!(offsets.insert(offset), "seed {seed}: offset {offset} twice");
            }
            assert_eq!(offsets.len(), 100);
            assert_eq!(
                next_offset.load(Ordering::SeqCst),
                100,
                "seed {seed}: nothing written twice"
            );
            // One producer id; sequences are contiguous over the batches appended.
            let log = log.lock().unwrap();
            let mut batches: Vec<_> = log
                .iter()
                .map(|((_, seq), (_, b))| (*seq, b["records"].as_array().unwrap().len() as i64))
                .collect();
            batches.sort();
            let mut expected = 0;
            for (seq, len) in batches {
                assert_eq!(seq, expected, "seed {seed}: a sequence gap");
                expected += len;
            }
        }
    }
}
