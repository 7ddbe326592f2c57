//! The read-process-write (consume-transform-produce) [`Processor`]: exactly-once pipelines.
//!
//! A processor is a [`GroupConsumer`] (auto-commit off, `read_committed`) and a
//! [`TransactionalProducer`]. Each step:
//!
//! 1. polls a batch of input records (applying any rebalance first, between transactions);
//! 2. begins a transaction, calls the user function on the batch and sends the output records
//!    it returns;
//! 3. adds the consumer's positions (the next input offsets) to the transaction, fenced by the
//!    group's generation and member id (KIP-447);
//! 4. commits. Outputs and input offsets become visible together or not at all.
//!
//! If anything before the commit fails (a rebalance fenced the offsets, a batch was rejected or
//! its outcome is unknown), the step aborts the transaction and rewinds the consumer to the
//! committed offsets, so the same inputs are processed again in a later transaction: nothing is
//! lost, and the aborted outputs are never visible to read_committed readers. A commit with an
//! unknown outcome is repeated as is, never turned into an abort (brief rule 8): if it keeps
//! timing out the step returns the error and the next step commits again before reading on. A
//! fatal error (another instance took the transactional id) ends the processor.
//!
//! A processor that crashes mid-transaction leaves it open; the next instance with the same
//! `transactional_id` fences it and the coordinator aborts it, and the group gives its
//! partitions to a live member, which starts at the committed offsets. So every input yields
//! its outputs exactly once in the committed output, whatever crashes.

use std::time::Duration;

use kafdo_types::ProduceRecord;

use crate::client::Client;
use crate::consumer::ConsumerRecord;
use crate::error::{Error, ErrorClass};
use crate::group::{GroupConsumer, GroupConsumerConfig};
use crate::producer::ProducerConfig;
use crate::txn::TransactionalProducer;

/// One output record of a step: where it goes and what it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputRecord {
    /// The output topic.
    pub topic: String,
    /// The record (its key picks the partition unless `partition` is set).
    pub record: ProduceRecord,
}

impl OutputRecord {
    /// An output record with a key and a value.
    pub fn keyed(topic: &str, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Self {
        Self {
            topic: topic.to_string(),
            record: ProduceRecord::keyed(key, value),
        }
    }
}

/// A processor's settings.
#[derive(Clone, Debug)]
pub struct ProcessorConfig {
    /// The group consumer (auto-commit is always off: offsets commit with the transaction).
    pub group: GroupConsumerConfig,
    /// The producer's batching.
    pub producer: ProducerConfig,
    /// How long a transaction may stay open before the coordinator aborts it.
    pub transaction_timeout_ms: Option<i64>,
    /// How long one step waits for input.
    pub poll_timeout_ms: u64,
    /// How many times one step repeats a commit with an unknown outcome before it returns the
    /// error (the transaction then stays open: the next step commits it again, or the
    /// coordinator aborts it at its timeout if no step comes).
    pub max_commit_attempts: u32,
}

impl Default for ProcessorConfig {
    fn default() -> Self {
        Self {
            group: GroupConsumerConfig::default(),
            producer: ProducerConfig::default(),
            transaction_timeout_ms: None,
            poll_timeout_ms: 1_000,
            max_commit_attempts: 20,
        }
    }
}

/// What one step did.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum StepOutcome {
    /// No input arrived within the poll timeout.
    Idle,
    /// A transaction with this many inputs committed.
    Committed(usize),
    /// The transaction was aborted and the inputs will be processed again.
    Aborted,
}

/// A consume-transform-produce loop with exactly-once results. See the module docs.
#[derive(Debug)]
pub struct Processor {
    consumer: GroupConsumer,
    producer: TransactionalProducer,
    config: ProcessorConfig,
    /// The inputs of a transaction whose commit had an unknown outcome, still open.
    unfinished: Option<usize>,
}

impl Processor {
    /// Joins `group_id` on `input_topics` and takes `transactional_id` (fencing any older
    /// instance with the same id).
    pub async fn new(
        client: Client,
        group_id: &str,
        input_topics: Vec<String>,
        transactional_id: &str,
        config: ProcessorConfig,
    ) -> Result<Self, Error> {
        let producer = TransactionalProducer::init(
            client.clone(),
            transactional_id,
            config.transaction_timeout_ms,
            config.producer.clone(),
        )
        .await?;
        let mut group = config.group.clone();
        group.enable_auto_commit = false;
        let consumer = GroupConsumer::join(client, group_id, input_topics, group).await?;
        Ok(Self {
            consumer,
            producer,
            config,
            unfinished: None,
        })
    }

    /// The group consumer (its assignment, positions, member id).
    pub fn consumer(&self) -> &GroupConsumer {
        &self.consumer
    }

    /// The transactional producer.
    pub fn producer(&self) -> &TransactionalProducer {
        &self.producer
    }

    /// Runs one step: poll, transform with `f`, commit outputs and offsets together.
    ///
    /// If the last step returned an error of class [`ErrorClass::UnknownOutcome`] or
    /// [`ErrorClass::Retriable`] from its commit (it kept timing out, or the coordinator kept
    /// answering "not now"), its transaction is still open with its outputs and offsets: this step
    /// only finishes it (commits again), before any new input is read. Likewise an abort that
    /// failed is tried again.
    pub async fn step<F>(&mut self, f: &mut F) -> Result<StepOutcome, Error>
    where
        F: FnMut(&[ConsumerRecord]) -> Vec<OutputRecord>,
    {
        if self.producer.in_transaction() {
            // The last step left its transaction open: its commit, or its abort, had an unknown
            // outcome. That is settled first, before any new input is read.
            return match self.unfinished.take() {
                Some(inputs) => self.finish(inputs).await,
                None => self.abort_and_rewind().await,
            };
        }
        let records = self
            .consumer
            .poll(Duration::from_millis(self.config.poll_timeout_ms))
            .await?;
        if records.is_empty() {
            return Ok(StepOutcome::Idle);
        }
        self.producer.begin_transaction()?;
        match self.send(&records, f).await {
            Ok(()) => self.finish(records.len()).await,
            Err(e) => self.failed(e).await,
        }
    }

    /// Sends the outputs of `records` and their offsets in the open transaction.
    async fn send<F>(&mut self, records: &[ConsumerRecord], f: &mut F) -> Result<(), Error>
    where
        F: FnMut(&[ConsumerRecord]) -> Vec<OutputRecord>,
    {
        for output in f(records) {
            self.producer
                .send_record(&output.topic, output.record)
                .await?;
        }
        self.producer
            .send_offsets_to_transaction(self.consumer.positions(), &self.consumer.group_metadata())
            .await
    }

    /// Commits the open transaction of `inputs` inputs, repeating a commit whose outcome is
    /// unknown or that was refused for now (with the same epoch: the coordinator answers a
    /// repeated commit with success).
    async fn finish(&mut self, inputs: usize) -> Result<StepOutcome, Error> {
        let mut attempt = 1;
        loop {
            match self.producer.commit_transaction().await {
                Ok(()) => return Ok(StepOutcome::Committed(inputs)),
                // Unknown, or refused for now (CONCURRENT_TRANSACTIONS while an earlier attempt
                // completes): never turned into an abort (brief rule 8).
                Err(e)
                    if matches!(
                        e.class(),
                        ErrorClass::UnknownOutcome | ErrorClass::Retriable
                    ) =>
                {
                    if attempt >= self.config.max_commit_attempts {
                        // The next step commits again.
                        self.unfinished = Some(inputs);
                        return Err(e);
                    }
                    attempt += 1;
                }
                Err(e) => return self.failed(e).await,
            }
        }
    }

    /// After a failed send or commit: a fenced instance stops; otherwise the transaction is
    /// aborted and the consumer rewound, so the same inputs are processed again.
    async fn failed(&mut self, error: Error) -> Result<StepOutcome, Error> {
        if error.class() == ErrorClass::Fatal && is_fatal_for_instance(&error) {
            return Err(error);
        }
        self.abort_and_rewind().await
    }

    async fn abort_and_rewind(&mut self) -> Result<StepOutcome, Error> {
        if self.producer.in_transaction() {
            self.producer.abort_transaction().await?;
        }
        self.consumer.rewind_to_committed().await?;
        Ok(StepOutcome::Aborted)
    }

    /// Runs steps until `keep_going` says stop; returns how many inputs were committed.
    pub async fn run<F>(
        &mut self,
        mut f: F,
        mut keep_going: impl FnMut() -> bool,
    ) -> Result<u64, Error>
    where
        F: FnMut(&[ConsumerRecord]) -> Vec<OutputRecord>,
    {
        let mut committed = 0u64;
        while keep_going() {
            if let StepOutcome::Committed(n) = self.step(&mut f).await? {
                committed += n as u64;
            }
        }
        Ok(committed)
    }

    /// Leaves the group (no open transaction remains after a step).
    pub async fn close(self) -> Result<(), Error> {
        self.consumer.close().await
    }
}

/// Whether an error means this instance must stop (fenced by a newer one).
fn is_fatal_for_instance(error: &Error) -> bool {
    use kafdo_types::ErrorCode::*;
    matches!(
        error.code(),
        ProducerFenced | InvalidProducerEpoch | TransactionTimedOut
    ) || matches!(error, Error::InvalidArgument(_) | Error::Closed(_))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::ClientConfig;
    use crate::retry::RetryPolicy;
    use crate::testing::{api_error, body, json, FakeTransport};
    use crate::transport::Method;
    use kafdo_types::ErrorCode;
    use serde_json::json;
    use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
    use std::sync::Arc;

    /// Input topic `in` (1 partition, offsets 0..3, `committed` its committed offset), output
    /// topic `out`, a group that assigns `in/0`, and a coordinator. With `fence_first_offsets`,
    /// the first transactional offset commit answers ILLEGAL_GENERATION; the first
    /// `lost_commits` commits time out (outcome unknown: not applied).
    fn server(
        fence_first_offsets: bool,
        committed: Option<i64>,
        lost_commits: usize,
    ) -> FakeTransport {
        let commits = Arc::new(AtomicUsize::new(0));
        let epoch = Arc::new(AtomicI64::new(0));
        let fenced = Arc::new(AtomicBool::new(!fence_first_offsets));
        let out_offset = Arc::new(AtomicI64::new(0));
        FakeTransport::new(move |request, _| {
            let path = request.path.as_str();
            match (request.method, path) {
                (Method::Post, "/v1/producers") => json(
                    200,
                    json!({"producer_id": 3, "producer_epoch": epoch.load(Ordering::SeqCst)}),
                ),
                (Method::Post, "/v1/groups/g/members") => json(
                    200,
                    json!({"member_id": "m", "generation_id": 4, "assignment": [{"topic": "in", "partition": 0}]}),
                ),
                (Method::Get, "/v1/groups/g/offsets") => {
                    let offsets: Vec<_> = committed
                        .iter()
                        .map(|o| json!({"topic": "in", "partition": 0, "offset": o}))
                        .collect();
                    json(200, json!({ "offsets": offsets }))
                }
                (Method::Get, "/v1/topics/in/partitions/0") => json(
                    200,
                    json!({"log_start_offset": 0, "high_watermark": 3, "last_stable_offset": 3}),
                ),
                (Method::Post, p) if p.ends_with("/heartbeat") => json(
                    200,
                    json!({"generation_id": 4, "assignment": [{"topic": "in", "partition": 0}], "state": "Stable"}),
                ),
                (Method::Get, "/v1/topics/out") => json(
                    200,
                    json!({"name": "out", "partitions": 1, "config": {"retention_ms": -1, "cleanup_policy": "delete"}}),
                ),
                (Method::Get, "/v1/topics/in/partitions/0/records") => {
                    let offset: i64 = request
                        .query
                        .iter()
                        .find(|(n, _)| *n == "offset")
                        .unwrap()
                        .1
                        .parse()
                        .unwrap();
                    let records: Vec<_> = (offset..3).map(|o| json!({"offset": o, "timestamp": 0, "key": null, "value": "aW4=", "headers": []})).collect();
                    json(
                        200,
                        json!({"records": records, "next_offset": 3.max(offset), "high_watermark": 3, "last_stable_offset": 3}),
                    )
                }
                (Method::Post, "/v1/topics/out/partitions/0/records") => {
                    let n = body(request)["records"].as_array().unwrap().len() as i64;
                    let base = out_offset.fetch_add(n, Ordering::SeqCst);
                    json(
                        200,
                        json!({"base_offset": base, "last_offset": base + n - 1, "duplicate": false}),
                    )
                }
                (Method::Post, "/v1/transactions/p-1/partitions") => json(200, json!({})),
                (Method::Post, "/v1/transactions/p-1/offsets") => {
                    if !fenced.swap(true, Ordering::SeqCst) {
                        return api_error(ErrorCode::IllegalGeneration);
                    }
                    json(200, json!({}))
                }
                (Method::Post, p)
                    if p.ends_with("/commit")
                        && commits.fetch_add(1, Ordering::SeqCst) < lost_commits =>
                {
                    Err(crate::transport::TransportError::Timeout(
                        Duration::from_millis(1),
                    ))
                }
                (Method::Post, p) if p.starts_with("/v1/transactions/p-1/") => {
                    let next = epoch.fetch_add(1, Ordering::SeqCst) + 1;
                    let state = if p.ends_with("/commit") {
                        "CompleteCommit"
                    } else {
                        "CompleteAbort"
                    };
                    json(
                        200,
                        json!({"state": state, "producer_id": 3, "producer_epoch": next}),
                    )
                }
                _ => api_error(ErrorCode::InvalidRequest),
            }
        })
    }

    fn config() -> ProcessorConfig {
        ProcessorConfig {
            poll_timeout_ms: 0,
            producer: ProducerConfig {
                linger_ms: 0,
                ..ProducerConfig::default()
            },
            ..ProcessorConfig::default()
        }
    }

    fn client(transport: &FakeTransport) -> Client {
        Client::with_config(
            transport.clone(),
            ClientConfig {
                retry: RetryPolicy {
                    max_attempts: 2,
                    initial_backoff_ms: 1,
                    max_backoff_ms: 1,
                },
                ..ClientConfig::default()
            },
        )
    }

    fn upper(records: &[ConsumerRecord]) -> Vec<OutputRecord> {
        records
            .iter()
            .map(|r| OutputRecord::keyed("out", r.offset.to_string(), b"OUT".to_vec()))
            .collect()
    }

    #[tokio::test]
    async fn a_step_commits_outputs_and_offsets_in_one_transaction() {
        let transport = server(false, Some(1), 0);
        let mut processor =
            Processor::new(client(&transport), "g", vec!["in".into()], "p-1", config())
                .await
                .unwrap();
        let mut f = upper;
        assert_eq!(
            processor.step(&mut f).await.unwrap(),
            StepOutcome::Committed(2)
        );
        let requests = transport.requests();
        let txn_calls: Vec<&str> = requests
            .iter()
            .map(|r| r.path.as_str())
            .filter(|p| {
                p.starts_with("/v1/transactions/") || p.starts_with("/v1/topics/out/partitions")
            })
            .collect();
        // The records go out in the background, so only the commit's place is fixed: last.
        assert_eq!(txn_calls.len(), 4, "{txn_calls:?}");
        assert_eq!(txn_calls[3], "/v1/transactions/p-1/commit");
        for call in [
            "/v1/transactions/p-1/partitions",
            "/v1/topics/out/partitions/0/records",
            "/v1/transactions/p-1/offsets",
        ] {
            assert!(txn_calls.contains(&call), "{call} missing: {txn_calls:?}");
        }
        let registration = txn_calls
            .iter()
            .position(|p| p.ends_with("/partitions"))
            .unwrap();
        let write = txn_calls
            .iter()
            .position(|p| p.ends_with("/records"))
            .unwrap();
        assert!(registration < write, "registered before the first write");
        let offsets = requests
            .iter()
            .find(|r| r.path.ends_with("/offsets") && r.path.starts_with("/v1/transactions"))
            .unwrap();
        let offsets = body(offsets);
        assert_eq!(
            offsets["offsets"],
            json!([{"topic": "in", "partition": 0, "offset": 3}])
        );
        assert_eq!(
            (
                offsets["generation_id"].clone(),
                offsets["member_id"].clone()
            ),
            (json!(4), json!("m"))
        );
        let produced = requests
            .iter()
            .find(|r| r.path == "/v1/topics/out/partitions/0/records")
            .unwrap();
        assert_eq!(
            body(produced)["records"].as_array().unwrap().len(),
            2,
            "inputs 1 and 2"
        );
        assert_eq!(processor.step(&mut f).await.unwrap(), StepOutcome::Idle);
    }

    /// With `committed`, the first step's offset commit is fenced: the step aborts, rewinds to
    /// `rewound_to` and the next step commits the same inputs.
    async fn fenced_first_step(committed: Option<i64>, rewound_to: i64) {
        let transport = server(true, committed, 0);
        let mut config = config();
        config.group.consumer.auto_offset_reset = crate::OffsetReset::Earliest;
        let mut processor =
            Processor::new(client(&transport), "g", vec!["in".into()], "p-1", config)
                .await
                .unwrap();
        let mut f = upper;
        assert_eq!(processor.step(&mut f).await.unwrap(), StepOutcome::Aborted);
        assert!(transport
            .requests()
            .iter()
            .any(|r| r.path == "/v1/transactions/p-1/abort"));
        let tp = kafdo_types::txn::TopicPartition {
            topic: "in".into(),
            partition: 0,
        };
        assert_eq!(processor.consumer().position(&tp), Some(rewound_to));
        // The same inputs again, in a new transaction with the next epoch.
        assert_eq!(
            processor.step(&mut f).await.unwrap(),
            StepOutcome::Committed((3 - rewound_to) as usize)
        );
        assert_eq!(processor.producer().identity().producer_epoch, 2);
    }

    #[tokio::test]
    async fn a_fenced_offset_commit_aborts_and_rewinds_to_the_committed_offset() {
        fenced_first_step(Some(1), 1).await;
    }

    /// A partition's first transaction aborted: no committed offset to go back to, yet its
    /// inputs must be read again (not skipped by a fresh `auto_offset_reset`).
    #[tokio::test]
    async fn a_fenced_first_commit_rewinds_to_where_the_member_started() {
        fenced_first_step(None, 0).await;
    }

    /// A commit that keeps timing out is never turned into an abort: the step returns the
    /// unknown outcome, and the next step commits the same transaction before reading on.
    #[tokio::test]
    async fn a_commit_of_unknown_outcome_is_finished_by_the_next_step() {
        // Two attempts of the step, each sent twice by the client's retries.
        let transport = server(false, Some(1), 4);
        let mut config = config();
        config.max_commit_attempts = 2;
        let mut processor =
            Processor::new(client(&transport), "g", vec!["in".into()], "p-1", config)
                .await
                .unwrap();
        let mut f = upper;
        let error = processor.step(&mut f).await.unwrap_err();
        assert_eq!(error.class(), ErrorClass::UnknownOutcome, "{error}");
        assert!(processor.producer().in_transaction());
        let fetches = |t: &FakeTransport| {
            t.requests()
                .iter()
                .filter(|r| r.path.ends_with("/in/partitions/0/records"))
                .count()
        };
        let read = fetches(&transport);
        assert_eq!(
            processor.step(&mut f).await.unwrap(),
            StepOutcome::Committed(2)
        );
        assert_eq!(fetches(&transport), read, "no input read before the commit");
        assert!(!transport
            .requests()
            .iter()
            .any(|r| r.path.ends_with("/abort")));
        assert_eq!(processor.step(&mut f).await.unwrap(), StepOutcome::Idle);
    }
}
