//! The routes of producers, transactions, idempotent ingestion and the transaction admin, on
//! top of the `Metadata`, `Partition`, `IdempotencyKey` and `TxnCoordinator` objects.
//!
//! # Producer ids
//!
//! `POST /v1/producers` without a `transactional_id` hands out a producer id with epoch 0.
//! Ids come from the metadata object in blocks of [`PRODUCER_ID_BLOCK`]; each isolate keeps
//! the rest of its block and serves the next requests from it without a hop. An id is never
//! handed out twice: the metadata object's counter only rises, and ids an isolate still held
//! when it died are simply never used. With a `transactional_id` the request goes to the
//! coordinator object named by the id, which owns a stable producer id and bumps the epoch.
//!
//! # Keyed produce (`Idempotency-Key`)
//!
//! See `design/ingest.md`. The fingerprint is SHA-256 of the CBOR encoding of the decoded
//! [`ProduceRequest`], so JSON and CBOR, or JSON with other whitespace or field order, of the
//! same records have the same fingerprint. Routing is deterministic: explicit partitions and
//! keys as usual, null-key records to the partition the fingerprint picks (never a random
//! one), so every attempt sends the same batches.
//!
//! # The admin list of open transactions
//!
//! No registry is kept on the hot path. `GET /v1/admin/transactions` asks every partition of
//! every topic for the transactions registered with it and still open
//! (`/partition/open-transactions`, which carries the transactional id and the first offset,
//! the LSO it holds back), then asks each of those coordinators for its open transaction (state
//! and age). A transaction that registered no partition yet holds back no LSO and is not
//! listed. The cost is one call per partition, paid only by the admin.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ops::Range;

use futures_util::future::join_all;
use kafdo_partition::PartitionOpenTransaction;
use kafdo_types::api::{
    InitProducerRequest, InitProducerResponse, PartitionProduceResponse, ProduceRequest,
    ProduceResponse, RecordOffset,
};
use kafdo_types::rpc::{AppendRequest, PartitionCall, TopicMetadata, TxnResult};
use kafdo_types::txn::{
    valid_transactional_id, AddOffsetsRequest, AddPartitionsRequest, CoordinatorAddPartitions,
    EndTxnRequest, EndTxnResponse, HeldPartition, OpenTransaction, OpenTransactionList,
    TransactionDescription, MAX_PARTITIONS_PER_ADD,
};
use kafdo_types::{ApiError, ErrorCode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};
use worker::{Env, Request};

use crate::http::{
    check_records, invalid, plan_produce, to_cbor, unknown_partition, Format, Route,
};
use crate::internal::{AllocateProducerIds, ProducerIdBlock};
use crate::objects::ingest::{KeyBegin, KeyBeginAnswer, KeyComplete, KeyRelease};
use crate::objects::txn::TxnEnd;
use crate::router::{body, call_object, metadata, topic, Answer, OBJECT_CALL_TIMEOUT_MS};

/// How many producer ids an isolate takes from the metadata object at a time.
pub const PRODUCER_ID_BLOCK: u32 = 100;

/// The Worker variable with the key TTL in ms (`[vars]` in `wrangler.toml`).
pub const IDEMPOTENCY_KEY_TTL_VAR: &str = "IDEMPOTENCY_KEY_TTL_MS";

thread_local! {
    /// The rest of this isolate's block of producer ids.
    static PRODUCER_IDS: RefCell<Range<i64>> = const { RefCell::new(0..0) };
}

/// A producer id never handed out before.
async fn next_producer_id(env: &Env) -> Result<i64, ApiError> {
    if let Some(id) = PRODUCER_IDS.with(|ids| ids.borrow_mut().next()) {
        return Ok(id);
    }
    let block: ProducerIdBlock = metadata(
        env,
        "/metadata/allocate-producer-ids",
        &AllocateProducerIds {
            count: PRODUCER_ID_BLOCK,
        },
    )
    .await?;
    assert!(block.start < block.end, "an empty producer id block");
    // Another request of this isolate may have refilled the cache meanwhile; keep whichever
    // block is there (the other's ids are then never used, which is harmless).
    PRODUCER_IDS.with(|ids| {
        let mut ids = ids.borrow_mut();
        if ids.is_empty() {
            *ids = block.start + 1..block.end;
        }
    });
    Ok(block.start)
}

fn coordinator_name(transactional_id: &str) -> Result<String, ApiError> {
    if valid_transactional_id(transactional_id) {
        Ok(transactional_id.to_owned())
    } else {
        Err(invalid(format!(
            "invalid transactional_id {transactional_id:?}: 1 to 249 bytes, no control characters"
        )))
    }
}

async fn coordinator<Req: Serialize, Resp: DeserializeOwned>(
    env: &Env,
    transactional_id: &str,
    path: &str,
    req: &Req,
) -> Result<Resp, ApiError> {
    let name = coordinator_name(transactional_id)?;
    // A commit waits for every marker; a fencing init for the abort of the open transaction.
    call_object(
        env,
        "TXN_COORDINATOR",
        &name,
        path,
        req,
        OBJECT_CALL_TIMEOUT_MS * 2,
    )
    .await
}

/// Serves the routes of this module.
pub async fn serve(
    route: &Route,
    req: &mut Request,
    env: &Env,
    format: Format,
) -> Result<Answer, ApiError> {
    match route {
        Route::InitProducer => {
            let init: InitProducerRequest = body(req).await?;
            let answer: InitProducerResponse = match &init.transactional_id {
                Some(id) => coordinator(env, id, "/txn/init", &init).await?,
                None => {
                    if init.transaction_timeout_ms.is_some() {
                        return Err(invalid("transaction_timeout_ms needs a transactional_id"));
                    }
                    InitProducerResponse {
                        producer_id: next_producer_id(env).await?,
                        producer_epoch: 0,
                    }
                }
            };
            Ok(Answer::ok(format, &answer))
        }
        Route::AddPartitionsToTxn(id) => {
            let add: AddPartitionsRequest = body(req).await?;
            if add.partitions.is_empty() || add.partitions.len() > MAX_PARTITIONS_PER_ADD {
                return Err(invalid(format!(
                    "add 1 to {MAX_PARTITIONS_PER_ADD} partitions at a time, not {}",
                    add.partitions.len()
                )));
            }
            let mut topics: BTreeMap<&str, TopicMetadata> = BTreeMap::new();
            let mut partitions = Vec::with_capacity(add.partitions.len());
            for tp in &add.partitions {
                if !topics.contains_key(tp.topic.as_str()) {
                    // Fresh metadata: a stale cache entry would register the old incarnation.
                    let (t, _) = topic(env, &tp.topic, true).await?;
                    topics.insert(&tp.topic, t);
                }
                let t = &topics[tp.topic.as_str()];
                if !(0..t.partitions).contains(&tp.partition) {
                    return Err(unknown_partition(&t.name, tp.partition));
                }
                partitions.push(t.partition(tp.partition));
            }
            let call = CoordinatorAddPartitions {
                producer_id: add.producer_id,
                producer_epoch: add.producer_epoch,
                partitions,
            };
            let () = coordinator(env, id, "/txn/add-partitions", &call).await?;
            Ok(Answer::ok(format, &serde_json::Map::new()))
        }
        Route::AddOffsetsToTxn(id) => {
            let add: AddOffsetsRequest = body(req).await?;
            let () = coordinator(env, id, "/txn/add-offsets", &add).await?;
            Ok(Answer::ok(format, &serde_json::Map::new()))
        }
        Route::EndTxn(id, commit) => {
            let end: EndTxnRequest = body(req).await?;
            let call = TxnEnd {
                request: end,
                result: if *commit {
                    TxnResult::Commit
                } else {
                    TxnResult::Abort
                },
            };
            let answer: EndTxnResponse = coordinator(env, id, "/txn/end", &call).await?;
            Ok(Answer::ok(format, &answer))
        }
        Route::DescribeTxn(id) => {
            let answer: TransactionDescription = coordinator(env, id, "/txn/describe", &()).await?;
            Ok(Answer::ok(format, &answer))
        }
        Route::AdminAbortTxn(id) => {
            let answer: EndTxnResponse = coordinator(env, id, "/txn/admin-abort", &()).await?;
            Ok(Answer::ok(format, &answer))
        }
        Route::ListOpenTxns => Ok(Answer::ok(format, &open_transactions(env).await?)),
        _ => unreachable!("the router sends only this module's routes here"),
    }
}

/// `GET /v1/admin/transactions`: see the module docs.
async fn open_transactions(env: &Env) -> Result<OpenTransactionList, ApiError> {
    let topics: Vec<TopicMetadata> = metadata(env, "/metadata/list-topics", &()).await?;
    let calls = topics.iter().flat_map(|t| {
        (0..t.partitions).map(move |p| async move {
            let call = PartitionCall {
                partition: t.partition(p),
            };
            let open: Result<Vec<PartitionOpenTransaction>, ApiError> = call_object(
                env,
                "PARTITION",
                &t.partition_object_name(p),
                "/partition/open-transactions",
                &call,
                OBJECT_CALL_TIMEOUT_MS,
            )
            .await;
            (t.name.clone(), p, open)
        })
    });
    // Transactional id -> the partitions it holds, with the first offset there.
    let mut held: BTreeMap<String, Vec<HeldPartition>> = BTreeMap::new();
    for (topic, partition, open) in join_all(calls).await {
        let open = match open {
            Ok(open) => open,
            // A topic deleted meanwhile holds nothing back any more.
            Err(e) if e.code == ErrorCode::UnknownTopicOrPartition => continue,
            Err(e) => return Err(e),
        };
        for t in open {
            held.entry(t.transactional_id)
                .or_default()
                .push(HeldPartition {
                    topic: topic.clone(),
                    partition,
                    first_offset: t.first_offset,
                });
        }
    }
    let asks = held.into_iter().map(|(id, partitions)| async move {
        let open: Result<Option<OpenTransaction>, ApiError> =
            coordinator(env, &id, "/txn/open-transaction", &()).await;
        open.map(|o| {
            o.map(|mut o| {
                // The partitions' view carries the first offsets (the LSO each is held at).
                let mut partitions = partitions;
                partitions.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
                o.partitions = partitions;
                o
            })
        })
    });
    let mut transactions = Vec::new();
    for open in join_all(asks).await {
        // A registration whose marker is on its way is no longer open at its coordinator.
        if let Some(o) = open? {
            transactions.push(o);
        }
    }
    transactions.sort_by_key(|t| std::cmp::Reverse(t.age_ms));
    Ok(OpenTransactionList { transactions })
}

/// The key TTL: the `IDEMPOTENCY_KEY_TTL_MS` variable, else 24 hours.
fn key_ttl_ms(env: &Env) -> i64 {
    env.var(IDEMPOTENCY_KEY_TTL_VAR)
        .ok()
        .and_then(|v| v.to_string().parse::<i64>().ok())
        .filter(|&ttl| ttl > kafdo_ingest::DEFAULT_LEASE_MS)
        .unwrap_or(kafdo_ingest::DEFAULT_KEY_TTL_MS)
}

/// The fingerprint of a keyed request: SHA-256 over the topic and the canonical (CBOR)
/// encoding of the decoded request.
pub fn fingerprint(topic: &str, produce: &ProduceRequest) -> Vec<u8> {
    let mut digest = Sha256::new();
    digest.update(topic.as_bytes());
    digest.update([0]);
    digest.update(to_cbor(produce));
    digest.finalize().to_vec()
}

/// `POST /v1/topics/{t}/records` with an `Idempotency-Key`. `Ok(Err(ms))` is the 409 of a
/// key in flight, with how long its current attempt may still hold it.
pub async fn keyed_produce(
    env: &Env,
    name: &str,
    key: &str,
    produce: &ProduceRequest,
) -> Result<Result<ProduceResponse, i64>, ApiError> {
    kafdo_ingest::validate_key(key).map_err(|e| ApiError::new(e.code(), e.to_string()))?;
    check_records(&produce.records)?;
    let (topic, _) = topic(env, name, false).await?;
    let fingerprint = fingerprint(&topic.name, produce);
    let object = format!("{}/{key}", topic.name);
    let begin = KeyBegin {
        fingerprint: fingerprint.clone(),
        producer_id: next_producer_id(env).await?,
        lease_ms: kafdo_ingest::DEFAULT_LEASE_MS,
        ttl_ms: key_ttl_ms(env),
    };
    let answer: KeyBeginAnswer = call_object(
        env,
        "IDEMPOTENCY_KEY",
        &object,
        "/ingest/begin",
        &begin,
        OBJECT_CALL_TIMEOUT_MS,
    )
    .await?;
    let (producer_id, attempt) = match answer {
        KeyBeginAnswer::Done { offsets } => return Ok(Ok(ProduceResponse { offsets })),
        KeyBeginAnswer::InFlight { retry_after_ms } => return Ok(Err(retry_after_ms)),
        KeyBeginAnswer::Proceed {
            producer_id,
            attempt,
        } => (producer_id, attempt),
    };
    let appended = match append_keyed(env, &topic, &fingerprint, produce, producer_id).await {
        Ok(offsets) => {
            let complete = KeyComplete {
                producer_id,
                attempt,
                offsets: offsets.clone(),
            };
            call_object(
                env,
                "IDEMPOTENCY_KEY",
                &object,
                "/ingest/complete",
                &complete,
                OBJECT_CALL_TIMEOUT_MS,
            )
            .await
            .map(|()| offsets)
        }
        Err(e) => Err(e),
    };
    match appended {
        Ok(offsets) => Ok(Ok(ProduceResponse { offsets })),
        Err(e) => {
            // Give the key back so the client's retry need not wait for the lease (after a
            // failed complete too: if it landed, the stored answer wins over the lease); if
            // this fails too, the lease runs out by itself.
            let release = KeyRelease {
                producer_id,
                attempt,
            };
            let released: Result<(), ApiError> = call_object(
                env,
                "IDEMPOTENCY_KEY",
                &object,
                "/ingest/release",
                &release,
                OBJECT_CALL_TIMEOUT_MS,
            )
            .await;
            if let Err(r) = released {
                worker::console_error!("releasing idempotency key {object:?}: {}", r.message);
            }
            Err(e)
        }
    }
}

/// Appends a keyed request: one idempotent batch per partition, producer id the key's, epoch
/// 0, base sequence 0, routed deterministically.
async fn append_keyed(
    env: &Env,
    topic: &TopicMetadata,
    fingerprint: &[u8],
    produce: &ProduceRequest,
    producer_id: i64,
) -> Result<Vec<RecordOffset>, ApiError> {
    let sticky = kafdo_ingest::sticky_partition(fingerprint, topic.partitions);
    let plan = plan_produce(
        &topic.name,
        produce.records.clone(),
        topic.partitions,
        sticky,
    )?;
    let partitions: Vec<i32> = plan.batches.iter().map(|(p, _)| *p).collect();
    let appends = plan.batches.into_iter().map(|(p, records)| async move {
        let append = AppendRequest {
            partition: topic.partition(p),
            producer: Some(kafdo_ingest::producer_batch(producer_id)),
            transactional: false,
            records,
        };
        call_object::<_, PartitionProduceResponse>(
            env,
            "PARTITION",
            &topic.partition_object_name(p),
            "/partition/append",
            &append,
            OBJECT_CALL_TIMEOUT_MS,
        )
        .await
    });
    let answers = join_all(appends)
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    Ok(plan
        .slots
        .iter()
        .map(|&(b, i)| RecordOffset {
            partition: partitions[b],
            offset: answers[b].base_offset + i as i64,
        })
        .collect())
}
