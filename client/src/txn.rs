//! Transactions: [`TransactionalProducer`] and the `/v1/transactions` calls.
//!
//! A transactional producer is the batching [`Producer`] with three differences:
//!
//! 1. Its identity comes from `POST /v1/producers {"transactional_id"}`: the stable producer id
//!    of the transactional id and a new epoch, which fences every older instance (a zombie's
//!    writes then fail with `PRODUCER_FENCED`) and finishes their open transaction first.
//! 2. Before a partition's first batch in a transaction, its sender asks the coordinator to
//!    register the partition (`POST /v1/transactions/{id}/partitions`, KIP-890 part 1: a
//!    partition accepts transactional writes only from a registered (producer id, epoch)).
//!    Its batches carry `"transactional": true`.
//! 3. Every commit or abort answers a new epoch (KIP-890 part 2); the senders see it and
//!    restart their sequence numbers at 0, as a partition expects from a new epoch.
//!
//! ```text
//!  init ─► Ready ─begin─► InTransaction ─commit/abort ok─► Ready
//!                           │   ▲  commit with an unknown outcome: stays, commit again
//!                           ▼   │
//!                         (a batch or an offsets call failed: commit refuses, abort)
//!  any state ─ PRODUCER_FENCED / INVALID_PRODUCER_EPOCH / TRANSACTION_TIMED_OUT ─► Fatal
//! ```
//!
//! Error classes ([`crate::ErrorClass`]) decide what a caller does: `Fatal` (fenced: close
//! this instance), `Abortable` (abort and start again), `Retriable` (the SDK already retried;
//! try later), `UnknownOutcome` (a commit that timed out: call commit again with the same
//! epoch, never turn it into an abort; the coordinator answers a repeated commit with success).
//!
//! Consumer offsets join the transaction with [`TransactionalProducer::send_offsets_to_transaction`]
//! (KIP-447: fenced by the group's generation and member id), so the output records and the
//! input offsets of a consume-transform-produce step become visible together or not at all.

use std::collections::HashSet;
use std::sync::Mutex;

use kafdo_types::api::InitProducerRequest;
use kafdo_types::rpc::TopicPartitionOffset;
use kafdo_types::txn::{
    AddOffsetsRequest, AddPartitionsRequest, EndTxnRequest, EndTxnResponse, OpenTransactionList,
    TopicPartition, TransactionDescription,
};
use kafdo_types::{ErrorCode, ProduceRecord};
use serde::de::IgnoredAny;

use crate::client::{Call, Client};
use crate::error::{Error, ErrorClass};
use crate::producer::{DeliveryFuture, Producer, ProducerConfig, ProducerIdentity};
use crate::retry::Safety;
use crate::transport::{encode_path_segment, Method};

fn txn_path(transactional_id: &str, rest: &str) -> String {
    format!(
        "/v1/transactions/{}{rest}",
        encode_path_segment(transactional_id)
    )
}

impl Client {
    /// `POST /v1/transactions/{id}/partitions`: registers partitions with the open transaction.
    pub async fn add_partitions_to_txn(
        &self,
        transactional_id: &str,
        request: &AddPartitionsRequest,
    ) -> Result<(), Error> {
        let mut call = Call::new(
            Method::Post,
            txn_path(transactional_id, "/partitions"),
            Safety::Idempotent,
        );
        call.body = Some(self.encode(request));
        let _: IgnoredAny = self.call(call).await?;
        Ok(())
    }

    /// `POST /v1/transactions/{id}/offsets`: consumer offsets committed with the transaction.
    pub async fn add_offsets_to_txn(
        &self,
        transactional_id: &str,
        request: &AddOffsetsRequest,
    ) -> Result<(), Error> {
        let mut call = Call::new(
            Method::Post,
            txn_path(transactional_id, "/offsets"),
            Safety::Idempotent,
        );
        call.body = Some(self.encode(request));
        let _: IgnoredAny = self.call(call).await?;
        Ok(())
    }

    /// `POST /v1/transactions/{id}/commit` (or `/abort` when `commit` is false). Retried on an
    /// unknown outcome with the same epoch: ending a transaction twice answers the same.
    pub async fn end_transaction(
        &self,
        transactional_id: &str,
        commit: bool,
        request: &EndTxnRequest,
    ) -> Result<EndTxnResponse, Error> {
        let mut call = Call::new(
            Method::Post,
            txn_path(transactional_id, if commit { "/commit" } else { "/abort" }),
            Safety::Idempotent,
        );
        call.body = Some(self.encode(request));
        self.call(call).await
    }

    /// `GET /v1/transactions/{id}`: the current or last transaction of a transactional id.
    pub async fn describe_transaction(
        &self,
        transactional_id: &str,
    ) -> Result<TransactionDescription, Error> {
        self.call(Call::new(
            Method::Get,
            txn_path(transactional_id, ""),
            Safety::Idempotent,
        ))
        .await
    }

    /// `POST /v1/admin/transactions/{id}/abort`: an administrator aborts the open transaction
    /// of a transactional id (which fences its producer too). Answers the new epoch.
    pub async fn admin_abort_transaction(
        &self,
        transactional_id: &str,
    ) -> Result<EndTxnResponse, Error> {
        self.call(Call::new(
            Method::Post,
            format!(
                "/v1/admin/transactions/{}/abort",
                encode_path_segment(transactional_id)
            ),
            Safety::Idempotent,
        ))
        .await
    }

    /// `GET /v1/admin/transactions`: the open transactions, oldest first.
    pub async fn list_transactions(&self) -> Result<OpenTransactionList, Error> {
        self.call(Call::new(
            Method::Get,
            "/v1/admin/transactions".into(),
            Safety::Idempotent,
        ))
        .await
    }
}

/// A consumer's place in its group, for offsets committed inside a transaction (KIP-447).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupMetadata {
    /// The group.
    pub group_id: String,
    /// The consumer's generation.
    pub generation_id: i32,
    /// The consumer's member id.
    pub member_id: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Phase {
    Ready,
    InTransaction,
    Fatal(Error),
}

struct TxnState {
    identity: ProducerIdentity,
    registered: HashSet<(String, i32)>,
    /// The first failure inside the current transaction: commit refuses while it is set.
    failure: Option<Error>,
    phase: Phase,
}

/// The transaction shared by a transactional producer's partition senders.
pub(crate) struct TxnShared {
    transactional_id: String,
    state: Mutex<TxnState>,
}

impl TxnShared {
    /// The current producer id and epoch.
    pub(crate) fn identity(&self) -> ProducerIdentity {
        self.state.lock().unwrap().identity
    }

    /// Registers a partition with the current transaction unless it already is.
    pub(crate) async fn register(
        &self,
        client: &Client,
        topic: &str,
        partition: i32,
    ) -> Result<(), Error> {
        let identity = {
            let state = self.state.lock().unwrap();
            if state.registered.contains(&(topic.to_string(), partition)) {
                return Ok(());
            }
            state.identity
        };
        client
            .add_partitions_to_txn(
                &self.transactional_id,
                &AddPartitionsRequest {
                    producer_id: identity.producer_id,
                    producer_epoch: identity.producer_epoch,
                    partitions: vec![TopicPartition {
                        topic: topic.to_string(),
                        partition,
                    }],
                },
            )
            .await?;
        let mut state = self.state.lock().unwrap();
        // A registration for an epoch that ended meanwhile must not count for the next one.
        if state.identity == identity {
            state.registered.insert((topic.to_string(), partition));
        }
        Ok(())
    }

    /// Records a failure inside the current transaction.
    pub(crate) fn fail(&self, error: Error) {
        let mut state = self.state.lock().unwrap();
        if error.class() == ErrorClass::Fatal && is_fencing(&error) {
            state.phase = Phase::Fatal(error.clone());
        }
        state.failure.get_or_insert(error);
    }
}

/// Whether an error means another instance (or the coordinator) took the transactional id.
fn is_fencing(error: &Error) -> bool {
    use kafdo_types::ErrorCode::*;
    matches!(
        error.code(),
        ProducerFenced | InvalidProducerEpoch | TransactionTimedOut
    )
}

/// A producer whose records are written in transactions. See the module docs.
#[derive(Clone, Debug)]
pub struct TransactionalProducer {
    producer: Producer,
    client: Client,
}

impl TransactionalProducer {
    /// `init_transactions`: takes the transactional id (fencing older instances) and returns a
    /// producer ready to begin a transaction. `transaction_timeout_ms` defaults to 60 s.
    pub async fn init(
        client: Client,
        transactional_id: &str,
        transaction_timeout_ms: Option<i64>,
        config: ProducerConfig,
    ) -> Result<Self, Error> {
        if !kafdo_types::txn::valid_transactional_id(transactional_id) {
            return Err(Error::InvalidArgument(format!(
                "invalid transactional_id {transactional_id:?}"
            )));
        }
        let answer = client
            .init_producer(&InitProducerRequest {
                transactional_id: Some(transactional_id.to_string()),
                transaction_timeout_ms,
            })
            .await?;
        let txn = TxnShared {
            transactional_id: transactional_id.to_string(),
            state: Mutex::new(TxnState {
                identity: ProducerIdentity {
                    producer_id: answer.producer_id,
                    producer_epoch: answer.producer_epoch,
                },
                registered: HashSet::new(),
                failure: None,
                phase: Phase::Ready,
            }),
        };
        let config = ProducerConfig {
            enable_idempotence: true,
            ..config
        };
        Ok(Self {
            producer: Producer::build(client.clone(), config, Some(txn)),
            client,
        })
    }

    fn txn(&self) -> &TxnShared {
        self.producer
            .context()
            .txn
            .as_ref()
            .expect("a transactional producer has a transaction")
    }

    /// The transactional id.
    pub fn transactional_id(&self) -> &str {
        &self.txn().transactional_id
    }

    /// The current producer id and epoch.
    pub fn identity(&self) -> ProducerIdentity {
        self.txn().identity()
    }

    /// Whether a transaction is open.
    pub fn in_transaction(&self) -> bool {
        self.txn().state.lock().unwrap().phase == Phase::InTransaction
    }

    /// Checks the phase: `Ok` when it is `expected`, the fatal error if fenced.
    fn expect_phase(&self, expected: Phase, action: &str) -> Result<(), Error> {
        let state = self.txn().state.lock().unwrap();
        match &state.phase {
            Phase::Fatal(e) => Err(e.clone()),
            phase if *phase == expected => Ok(()),
            phase => Err(Error::InvalidArgument(format!(
                "cannot {action}: the producer is {phase:?}"
            ))),
        }
    }

    /// Starts a transaction (local: the coordinator learns of it with the first partition).
    pub fn begin_transaction(&self) -> Result<(), Error> {
        self.expect_phase(Phase::Ready, "begin a transaction")?;
        let mut state = self.txn().state.lock().unwrap();
        state.phase = Phase::InTransaction;
        state.failure = None;
        state.registered.clear();
        Ok(())
    }

    /// Sends a record inside the open transaction.
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

    /// Sends a record inside the open transaction.
    pub async fn send_record(
        &self,
        topic: &str,
        record: ProduceRecord,
    ) -> Result<DeliveryFuture, Error> {
        self.expect_phase(Phase::InTransaction, "send")?;
        self.producer.send_record(topic, record).await
    }

    /// Commits consumer offsets (the next offsets to consume) with the open transaction.
    pub async fn send_offsets_to_transaction(
        &self,
        offsets: Vec<TopicPartitionOffset>,
        group: &GroupMetadata,
    ) -> Result<(), Error> {
        self.expect_phase(Phase::InTransaction, "send offsets")?;
        if offsets.is_empty() {
            return Ok(());
        }
        let identity = self.identity();
        for chunk in offsets.chunks(kafdo_types::txn::MAX_OFFSETS_PER_ADD) {
            let result = self
                .client
                .add_offsets_to_txn(
                    self.transactional_id(),
                    &AddOffsetsRequest {
                        producer_id: identity.producer_id,
                        producer_epoch: identity.producer_epoch,
                        group_id: group.group_id.clone(),
                        generation_id: group.generation_id,
                        member_id: group.member_id.clone(),
                        offsets: chunk.to_vec(),
                    },
                )
                .await;
            if let Err(e) = result {
                self.txn().fail(e.clone());
                return Err(e);
            }
        }
        Ok(())
    }

    /// Sends every record of the transaction, then commits it. On
    /// [`ErrorClass::UnknownOutcome`] call `commit_transaction` again; on `Abortable` call
    /// [`TransactionalProducer::abort_transaction`]; on `Fatal` drop this producer. If a batch
    /// or an offsets call of the transaction failed (its outcome unknown included), the commit
    /// is refused with `INVALID_TXN_STATE` (abortable) before the coordinator is asked.
    pub async fn commit_transaction(&self) -> Result<(), Error> {
        self.expect_phase(Phase::InTransaction, "commit")?;
        self.producer.flush().await?;
        if let Some(failure) = self.txn().state.lock().unwrap().failure.clone() {
            // Committing could make the outputs visible without a failed batch or offsets: the
            // transaction must abort. Only a fencing stays what it is (fatal).
            return Err(match failure.class() {
                ErrorClass::Fatal => failure,
                _ => Error::Api {
                    status: ErrorCode::InvalidTxnState.http_status(),
                    code: ErrorCode::InvalidTxnState,
                    message: format!("the transaction must abort: {failure}"),
                },
            });
        }
        self.end(true).await
    }

    /// Waits for the transaction's batches in flight, then aborts it: none of its records or
    /// offsets will ever be visible to read_committed readers.
    pub async fn abort_transaction(&self) -> Result<(), Error> {
        self.expect_phase(Phase::InTransaction, "abort")?;
        self.producer.flush().await?;
        self.end(false).await
    }

    async fn end(&self, commit: bool) -> Result<(), Error> {
        let identity = self.identity();
        let result = self
            .client
            .end_transaction(
                self.transactional_id(),
                commit,
                &EndTxnRequest {
                    keep_epoch: false,
                    producer_id: identity.producer_id,
                    producer_epoch: identity.producer_epoch,
                },
            )
            .await;
        let mut state = self.txn().state.lock().unwrap();
        match result {
            Ok(answer) => {
                // A new producer id (at epoch 0) once the old one's epochs are spent.
                state.identity.producer_id = answer.producer_id;
                state.identity.producer_epoch = answer.producer_epoch;
                state.registered.clear();
                state.failure = None;
                state.phase = Phase::Ready;
                Ok(())
            }
            Err(e) => {
                if is_fencing(&e) {
                    state.phase = Phase::Fatal(e.clone());
                }
                // Otherwise the transaction stays open: commit again after an unknown outcome,
                // or abort.
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::ClientConfig;
    use crate::retry::RetryPolicy;
    use crate::testing::{api_error, body, json, FakeTransport};
    use kafdo_types::ErrorCode;
    use serde_json::json;
    use std::sync::atomic::{AtomicI64, Ordering};
    use std::sync::Arc;

    /// A coordinator and partitions as the API describes them; a batch whose first value is
    /// `fail_value` is refused.
    fn server(fail_value: Option<&'static str>) -> FakeTransport {
        server_with_roll(fail_value, None)
    }

    /// [`server`], whose producer id 7 moves to 8 (epoch 0) when an end reaches `roll_epoch`.
    fn server_with_roll(
        fail_value: Option<&'static str>,
        roll_epoch: Option<i64>,
    ) -> FakeTransport {
        let producer_id = Arc::new(AtomicI64::new(7));
        let epoch = Arc::new(AtomicI64::new(0));
        let offset = Arc::new(AtomicI64::new(0));
        FakeTransport::new(move |request, _| {
            let path = request.path.as_str();
            if path == "/v1/topics/out" {
                return json(
                    200,
                    json!({"name":"out","partitions":2,"config":{"retention_ms":-1,"cleanup_policy":"delete"}}),
                );
            }
            if path == "/v1/producers" {
                assert_eq!(body(request)["transactional_id"], json!("tx-1"));
                return json(
                    200,
                    json!({"producer_id": 7, "producer_epoch": epoch.load(Ordering::SeqCst)}),
                );
            }
            if path.ends_with("/commit") || path.ends_with("/abort") {
                let b = body(request);
                if b["producer_epoch"].as_i64().unwrap() != epoch.load(Ordering::SeqCst)
                    || b["producer_id"].as_i64().unwrap() != producer_id.load(Ordering::SeqCst)
                {
                    return api_error(ErrorCode::ProducerFenced);
                }
                let mut next = epoch.fetch_add(1, Ordering::SeqCst) + 1;
                if Some(next) == roll_epoch && producer_id.load(Ordering::SeqCst) == 7 {
                    producer_id.store(8, Ordering::SeqCst);
                    epoch.store(0, Ordering::SeqCst);
                    next = 0;
                }
                let producer_id = producer_id.load(Ordering::SeqCst);
                let state = if path.ends_with("/commit") {
                    "CompleteCommit"
                } else {
                    "CompleteAbort"
                };
                return json(
                    200,
                    json!({"state": state, "producer_id": producer_id, "producer_epoch": next}),
                );
            }
            if path.starts_with("/v1/transactions/tx-1/") {
                return json(200, json!({}));
            }
            if path.starts_with("/v1/topics/out/partitions/") {
                let b = body(request);
                assert_eq!(b["transactional"], json!(true));
                if let Some(bad) = fail_value {
                    if b["records"][0]["value"] == json!(bad) {
                        return api_error(ErrorCode::InvalidTxnRegistration);
                    }
                }
                // "lost": the batch's outcome is unknown, every time it is sent.
                if b["records"][0]["value"] == json!("bG9zdA==") {
                    return Err(crate::transport::TransportError::Timeout(
                        std::time::Duration::from_millis(1),
                    ));
                }
                let n = b["records"].as_array().unwrap().len() as i64;
                let base = offset.fetch_add(n, Ordering::SeqCst);
                return json(
                    200,
                    json!({"base_offset": base, "last_offset": base + n - 1, "duplicate": false}),
                );
            }
            api_error(ErrorCode::InvalidRequest)
        })
    }

    fn client(transport: &FakeTransport) -> Client {
        Client::with_config(
            transport.clone(),
            ClientConfig {
                retry: RetryPolicy {
                    max_attempts: 3,
                    initial_backoff_ms: 1,
                    max_backoff_ms: 1,
                },
                ..ClientConfig::default()
            },
        )
    }

    fn config() -> ProducerConfig {
        ProducerConfig {
            linger_ms: 0,
            retry: RetryPolicy {
                max_attempts: 3,
                initial_backoff_ms: 1,
                max_backoff_ms: 1,
            },
            ..ProducerConfig::default()
        }
    }

    fn paths(transport: &FakeTransport) -> Vec<String> {
        transport
            .requests()
            .iter()
            .map(|r| r.path.clone())
            .collect()
    }

    #[tokio::test]
    async fn registers_partitions_then_commits_and_bumps_the_epoch() {
        let transport = server(None);
        let producer = TransactionalProducer::init(client(&transport), "tx-1", None, config())
            .await
            .unwrap();
        assert!(
            producer.send("out", None, b"x".to_vec()).await.is_err(),
            "no transaction yet"
        );
        producer.begin_transaction().unwrap();
        let a = producer
            .send_record(
                "out",
                ProduceRecord {
                    partition: Some(1),
                    ..ProduceRecord::value(b"a".to_vec())
                },
            )
            .await
            .unwrap();
        let b = producer
            .send_record(
                "out",
                ProduceRecord {
                    partition: Some(1),
                    ..ProduceRecord::value(b"b".to_vec())
                },
            )
            .await
            .unwrap();
        producer
            .send_offsets_to_transaction(
                vec![TopicPartitionOffset {
                    topic: "in".into(),
                    partition: 0,
                    offset: 5,
                    metadata: None,
                }],
                &GroupMetadata {
                    group_id: "g".into(),
                    generation_id: 3,
                    member_id: "m".into(),
                },
            )
            .await
            .unwrap();
        producer.commit_transaction().await.unwrap();
        assert_eq!(a.await.unwrap(), (1, 0));
        assert_eq!(b.await.unwrap(), (1, 1));
        assert_eq!(
            producer.identity(),
            ProducerIdentity {
                producer_id: 7,
                producer_epoch: 1
            }
        );
        let requests = transport.requests();
        let registrations: Vec<_> = requests
            .iter()
            .filter(|r| r.path.ends_with("/partitions"))
            .collect();
        assert_eq!(
            registrations.len(),
            1,
            "one registration per partition and transaction"
        );
        assert_eq!(
            body(registrations[0])["partitions"],
            json!([{"topic":"out","partition":1}])
        );
        let first_produce = paths(&transport)
            .iter()
            .position(|p| p.starts_with("/v1/topics/out/partitions/"))
            .unwrap();
        let registration = paths(&transport)
            .iter()
            .position(|p| p.ends_with("/partitions"))
            .unwrap();
        assert!(
            registration < first_produce,
            "registered before the first write"
        );
        let offsets = requests
            .iter()
            .find(|r| r.path.ends_with("/offsets"))
            .unwrap();
        assert_eq!(body(offsets)["generation_id"], json!(3));

        // The next transaction: a new epoch, sequences from 0, registration again.
        producer.begin_transaction().unwrap();
        producer
            .send_record(
                "out",
                ProduceRecord {
                    partition: Some(1),
                    ..ProduceRecord::value(b"c".to_vec())
                },
            )
            .await
            .unwrap();
        producer.commit_transaction().await.unwrap();
        let produces: Vec<_> = transport
            .requests()
            .into_iter()
            .filter(|r| r.path.starts_with("/v1/topics/out/partitions/"))
            .map(|r| body(&r))
            .collect();
        let seen: Vec<(i64, i64)> = produces
            .iter()
            .map(|b| {
                (
                    b["producer_epoch"].as_i64().unwrap(),
                    b["base_sequence"].as_i64().unwrap(),
                )
            })
            .collect();
        assert_eq!(seen.last(), Some(&(1, 0)));
        assert_eq!(
            transport
                .requests()
                .iter()
                .filter(|r| r.path.ends_with("/partitions"))
                .count(),
            2
        );
        assert_eq!(producer.identity().producer_epoch, 2);
    }

    #[tokio::test]
    async fn a_new_producer_id_from_a_commit_is_used_from_the_next_transaction() {
        let transport = server_with_roll(None, Some(1));
        let producer = TransactionalProducer::init(client(&transport), "tx-1", None, config())
            .await
            .unwrap();
        for value in [b"a", b"b"] {
            producer.begin_transaction().unwrap();
            let record = ProduceRecord {
                partition: Some(0),
                ..ProduceRecord::value(value.to_vec())
            };
            producer.send_record("out", record).await.unwrap();
            producer.commit_transaction().await.unwrap();
        }
        // The first commit spent the epochs of 7: the second transaction ran as 8, epoch 0,
        // its sequences from 0.
        let produces: Vec<(i64, i64, i64)> = transport
            .requests()
            .iter()
            .filter(|r| r.path.starts_with("/v1/topics/out/partitions/"))
            .map(|r| {
                let b = body(r);
                (
                    b["producer_id"].as_i64().unwrap(),
                    b["producer_epoch"].as_i64().unwrap(),
                    b["base_sequence"].as_i64().unwrap(),
                )
            })
            .collect();
        assert_eq!(produces, [(7, 0, 0), (8, 0, 0)]);
        assert_eq!(
            producer.identity(),
            ProducerIdentity {
                producer_id: 8,
                producer_epoch: 1
            }
        );
    }

    /// A transaction with a batch of value `bad` that fails: its commit is refused (abortable,
    /// the coordinator is not asked) until it is aborted; the next transaction commits.
    async fn commit_refused_until_abort(bad: &[u8]) {
        let transport = server(Some("YmFk"));
        let producer = TransactionalProducer::init(client(&transport), "tx-1", None, config())
            .await
            .unwrap();
        producer.begin_transaction().unwrap();
        let bad = producer.send("out", None, bad.to_vec()).await.unwrap();
        let error = producer.commit_transaction().await.unwrap_err();
        assert_eq!(error.class(), ErrorClass::Abortable);
        assert!(bad.await.is_err());
        assert!(!transport
            .requests()
            .iter()
            .any(|r| r.path.ends_with("/commit")));
        producer.abort_transaction().await.unwrap();
        assert_eq!(producer.identity().producer_epoch, 1);
        producer.begin_transaction().unwrap();
        producer.send("out", None, b"good".to_vec()).await.unwrap();
        producer.commit_transaction().await.unwrap();
    }

    #[tokio::test]
    async fn a_failed_batch_makes_commit_refuse_until_abort() {
        commit_refused_until_abort(b"bad").await;
    }

    /// A batch whose outcome is unknown may be missing: committing is never right.
    #[tokio::test]
    async fn a_batch_of_unknown_outcome_makes_commit_refuse_until_abort() {
        commit_refused_until_abort(b"lost").await;
    }

    #[tokio::test]
    async fn a_fenced_producer_is_fatal() {
        let transport = server(None);
        let zombie = TransactionalProducer::init(client(&transport), "tx-1", None, config())
            .await
            .unwrap();
        let newer = TransactionalProducer::init(client(&transport), "tx-1", None, config())
            .await
            .unwrap();
        // The newer instance commits first: the epoch moves past the zombie's.
        newer.begin_transaction().unwrap();
        newer.commit_transaction().await.unwrap();
        zombie.begin_transaction().unwrap();
        let error = zombie.commit_transaction().await.unwrap_err();
        assert_eq!(error.code(), ErrorCode::ProducerFenced);
        assert_eq!(error.class(), ErrorClass::Fatal);
        assert_eq!(
            zombie.begin_transaction().unwrap_err().code(),
            ErrorCode::ProducerFenced
        );
    }
}
