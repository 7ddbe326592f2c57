//! Producers and transactions: producer ids, the coordinator calls, and the admin's list of
//! open transactions.
//!
//! # Producer ids
//!
//! `POST /v1/producers` without a `transactional_id` hands out a producer id with epoch 0,
//! asked of the metadata object one at a time: every client id below its counter was handed
//! out to someone, which is what lets partitions refuse an id nobody has yet
//! ([`Broker::producer_ids_below`]). With a `transactional_id` the request goes to the
//! coordinator object named by the id, which owns a stable producer id (asked of the metadata
//! object the same way) and bumps the epoch. A keyed produce's producer ids, which no client
//! sees, come from the key space in blocks of [`PRODUCER_ID_BLOCK`] that each isolate keeps,
//! serving the next requests from it without a hop (`kafdo_metadata` has the two spaces).
//!
//! # The evidence a partition is shown
//!
//! Every producer batch the broker sends carries `producer_ids_below`: the mark below which
//! every id of its space was handed out, as this isolate last learned it (from an allocation's
//! answer, or `MetadataCall::ProducerIdMarks`). When a batch names an id at or past the
//! known mark, the isolate asks the metadata object once for the current marks: an id another
//! isolate handed out since. So the call happens once per newer producer and isolate, never per
//! batch, and an id nobody was handed out is refused by the partition (`UNKNOWN_PRODUCER_ID`)
//! before it can leave any state there. A client batch is always shown the client mark, so it
//! cannot name a key id.
//!
//! # The admin list of open transactions
//!
//! No registry is kept on the hot path. `GET /v1/admin/transactions` asks every partition of
//! every topic for the transactions registered with it and still open (carrying the
//! transactional id and the first offset, the LSO it holds back), then asks each of those
//! coordinators for its open transaction (state and age). A transaction that registered no
//! partition yet holds back no LSO and is not listed. The cost is one call per partition, paid
//! only by the admin, and at most [`fan_out::MAX_CONCURRENT_CALLS`] at a time.

use std::collections::BTreeMap;

use kafdo_types::api::{InitProducerRequest, InitProducerResponse};
use kafdo_types::rpc::{
    AdminAbortRequest, AllocateKeyProducerIds, AllocateProducerIds, Call, DescribeTxnRequest,
    EndTxnCall, ListTopicsRequest, Object, OpenTransactionRequest, OpenTransactionsRequest,
    PartitionOpenTransaction, ProducerIdMarks, ProducerIdMarksRequest, TopicMetadata, TxnResult,
    KEY_PRODUCER_ID_BASE,
};
use kafdo_types::txn::{
    valid_transactional_id, AddOffsetsRequest, AddPartitionsRequest, CoordinatorAddPartitions,
    EndTxnRequest, EndTxnResponse, HeldPartition, OpenTransactionList, TransactionDescription,
    MAX_PARTITIONS_PER_ADD,
};
use kafdo_types::{ApiError, ErrorCode};

use crate::topics::{partition_object, unknown_partition};
use crate::{fan_out, invalid, Broker, Runtime, OBJECT_CALL_TIMEOUT_MS};

/// How many key producer ids an isolate takes from the metadata object at a time.
pub const PRODUCER_ID_BLOCK: u32 = 100;

/// Which producer-id space a batch's producer belongs to.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ProducerIdSpace {
    /// Ids clients were handed (`POST /v1/producers`, transactional ids).
    Client,
    /// Ids of `Idempotency-Key` produce, which no client sees.
    Key,
}

/// The coordinator's object, once the transactional id is checked.
fn coordinator(transactional_id: &str) -> Result<Object, ApiError> {
    if valid_transactional_id(transactional_id) {
        Ok(Object::Coordinator(transactional_id.to_owned()))
    } else {
        Err(invalid(format!(
            "invalid transactional_id {transactional_id:?}: 1 to 249 bytes, no control characters"
        )))
    }
}

impl<R: Runtime> Broker<R> {
    /// A client producer id never handed out before, handed out now.
    pub async fn next_producer_id(&self) -> Result<i64, ApiError> {
        let block = self
            .ask(Object::Metadata, AllocateProducerIds { count: 1 })
            .await?;
        assert_eq!(block.end - block.start, 1, "one client id at a time");
        self.isolate.learn_marks(ProducerIdMarks {
            client_below: block.end,
            key_below: KEY_PRODUCER_ID_BASE,
        });
        Ok(block.start)
    }

    /// A key producer id (for an `Idempotency-Key`) never handed out before, from this
    /// isolate's block.
    pub async fn next_key_producer_id(&self) -> Result<i64, ApiError> {
        if let Some(id) = self.isolate.key_producer_ids.borrow_mut().next() {
            return Ok(id);
        }
        let request = AllocateKeyProducerIds {
            count: PRODUCER_ID_BLOCK,
        };
        let block = self.ask(Object::Metadata, request).await?;
        assert!(block.start < block.end, "an empty producer id block");
        self.isolate.learn_marks(ProducerIdMarks {
            client_below: 0,
            key_below: block.end,
        });
        // Another request of this isolate may have refilled the cache meanwhile; keep whichever
        // block is there (the other's ids are then never used, which is harmless).
        let mut ids = self.isolate.key_producer_ids.borrow_mut();
        if ids.is_empty() {
            *ids = block.start + 1..block.end;
        }
        Ok(block.start)
    }

    /// The evidence shown to a partition with a batch of `producer_id` (see the module docs):
    /// the mark of its space, learned afresh when the id is at or past the known one.
    pub async fn producer_ids_below(
        &self,
        producer_id: i64,
        space: ProducerIdSpace,
    ) -> Result<i64, ApiError> {
        let mark = |m: ProducerIdMarks| match space {
            ProducerIdSpace::Client => m.client_below,
            ProducerIdSpace::Key => m.key_below,
        };
        let known = mark(self.isolate.producer_id_marks.get());
        // A client batch naming a key id cannot be helped by a fresher mark.
        let in_space = match space {
            ProducerIdSpace::Client => producer_id < KEY_PRODUCER_ID_BASE,
            ProducerIdSpace::Key => producer_id >= KEY_PRODUCER_ID_BASE,
        };
        if producer_id < known || !in_space {
            return Ok(known);
        }
        let marks = self.ask(Object::Metadata, ProducerIdMarksRequest).await?;
        self.isolate.learn_marks(marks);
        Ok(mark(self.isolate.producer_id_marks.get()))
    }

    /// A call to the coordinator of `transactional_id`. A commit waits for every marker, a
    /// fencing init for the abort of the open transaction: twice the usual deadline.
    async fn coordinator<C: Call>(
        &self,
        transactional_id: &str,
        call: C,
    ) -> Result<C::Answer, ApiError> {
        let object = coordinator(transactional_id)?;
        self.ask_within(object, call, OBJECT_CALL_TIMEOUT_MS * 2)
            .await
    }

    /// `POST /v1/producers`.
    pub async fn init_producer(
        &self,
        init: InitProducerRequest,
    ) -> Result<InitProducerResponse, ApiError> {
        match &init.transactional_id {
            Some(id) => {
                let id = id.clone();
                self.coordinator(&id, init).await
            }
            None => {
                if init.transaction_timeout_ms.is_some() {
                    return Err(invalid("transaction_timeout_ms needs a transactional_id"));
                }
                Ok(InitProducerResponse {
                    producer_id: self.next_producer_id().await?,
                    producer_epoch: 0,
                })
            }
        }
    }

    /// `POST /v1/transactions/{id}/partitions`: the topics resolved to their current
    /// incarnations (fresh metadata: a stale cache entry would register the old one).
    pub async fn add_partitions_to_txn(
        &self,
        transactional_id: &str,
        add: AddPartitionsRequest,
    ) -> Result<(), ApiError> {
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
                let (t, _) = self.topic(&tp.topic, true).await?;
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
        self.coordinator(transactional_id, call).await
    }

    /// `POST /v1/transactions/{id}/offsets`.
    pub async fn add_offsets_to_txn(
        &self,
        transactional_id: &str,
        add: AddOffsetsRequest,
    ) -> Result<(), ApiError> {
        self.coordinator(transactional_id, add).await
    }

    /// `POST /v1/transactions/{id}/commit` and `.../abort`.
    pub async fn end_txn(
        &self,
        transactional_id: &str,
        request: EndTxnRequest,
        result: TxnResult,
    ) -> Result<EndTxnResponse, ApiError> {
        self.coordinator(transactional_id, EndTxnCall { request, result })
            .await
    }

    /// `GET /v1/transactions/{id}`.
    pub async fn describe_txn(
        &self,
        transactional_id: &str,
    ) -> Result<TransactionDescription, ApiError> {
        self.coordinator(transactional_id, DescribeTxnRequest).await
    }

    /// `POST /v1/admin/transactions/{id}/abort`.
    pub async fn admin_abort_txn(
        &self,
        transactional_id: &str,
    ) -> Result<EndTxnResponse, ApiError> {
        self.coordinator(transactional_id, AdminAbortRequest).await
    }

    /// `GET /v1/admin/transactions`: see the module docs.
    pub async fn open_transactions(&self) -> Result<OpenTransactionList, ApiError> {
        let topics = self.ask(Object::Metadata, ListTopicsRequest).await?;
        let calls = topics.iter().flat_map(|t| {
            (0..t.partitions).map(move |p| async move {
                let request = OpenTransactionsRequest {
                    partition: t.partition(p),
                };
                let open: Result<Vec<PartitionOpenTransaction>, ApiError> =
                    self.ask(partition_object(t, p), request).await;
                (t.name.clone(), p, open)
            })
        });
        // Transactional id -> the partitions it holds, with the first offset there.
        let mut held: BTreeMap<String, Vec<HeldPartition>> = BTreeMap::new();
        for (topic, partition, open) in fan_out::bounded(calls).await {
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
        let asks = held.into_iter().map(|(id, mut partitions)| async move {
            let open = self.coordinator(&id, OpenTransactionRequest).await?;
            Ok::<_, ApiError>(open.map(|mut o| {
                // The partitions' view carries the first offsets (the LSO each is held at).
                partitions.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
                o.partitions = partitions;
                o
            }))
        });
        let mut transactions = Vec::new();
        for open in fan_out::bounded(asks).await {
            // A registration whose marker is on its way is no longer open at its coordinator.
            if let Some(o) = open? {
                transactions.push(o);
            }
        }
        transactions.sort_by_key(|t| std::cmp::Reverse(t.age_ms));
        Ok(OpenTransactionList { transactions })
    }
}
