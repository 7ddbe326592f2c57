//! Keyed produce: `POST /v1/topics/{t}/records` with an `Idempotency-Key` (`design/ingest.md`).
//!
//! A keyed produce is not one object call but a protocol driven through the key's object,
//! named `{topic}/{key}` (`kafdo_ingest` says why nothing can be duplicated or lost):
//!
//! 1. `begin` ([`KeyBegin`]) with the request's fingerprint and a fresh producer id: the key's
//!    object keeps the id if the key is new and answers the one it keeps ([`KeyBeginAnswer`]),
//!    or the stored offsets of a finished attempt, or that another attempt holds the key.
//! 2. One idempotent batch per partition with the key's producer id, epoch 0, base sequence 0,
//!    routed deterministically (explicit partitions and keys as usual, null-key records to the
//!    partition the fingerprint picks, never a random one), so every attempt sends the same
//!    batches and a retry's are duplicates of the first's.
//! 3. `complete` ([`KeyComplete`]) stores the offsets; on any failure `release` ([`KeyRelease`])
//!    gives the key back so a retry need not wait for the lease.
//!
//! The fingerprint is SHA-256 of the topic and the CBOR encoding of the decoded
//! [`ProduceRequest`], so JSON and CBOR, or JSON with other whitespace or field order, of the
//! same records have the same fingerprint.

use kafdo_types::api::{ProduceRequest, ProduceResponse, RecordOffset};
use kafdo_types::partitioner::{self, ProducePlan};
use kafdo_types::rpc::{KeyBegin, KeyBeginAnswer, KeyComplete, KeyRelease, Object, TopicMetadata};
use kafdo_types::{ApiError, ErrorCode, ProduceRecord};
use sha2::{Digest, Sha256};

use crate::cbor::to_cbor;
use crate::produce::check_records;
use crate::topics::unknown_partition;
use crate::txn::ProducerIdSpace;
use crate::{Broker, Runtime};

/// The fingerprint of a keyed request: SHA-256 over the topic and the canonical (CBOR)
/// encoding of the decoded request.
pub fn fingerprint(topic: &str, produce: &ProduceRequest) -> Vec<u8> {
    let mut digest = Sha256::new();
    digest.update(topic.as_bytes());
    digest.update([0]);
    digest.update(to_cbor(produce));
    digest.finalize().to_vec()
}

/// How a keyed request is routed: explicit partitions and keys as usual, null-key records to
/// the partition the fingerprint picks, so every attempt of the same request sends the same
/// batches.
pub fn keyed_plan(
    fingerprint: &[u8],
    topic: &str,
    records: Vec<ProduceRecord>,
    partitions: i32,
) -> Result<ProducePlan, ApiError> {
    let sticky = kafdo_ingest::sticky_partition(fingerprint, partitions);
    partitioner::plan_produce(records, partitions, sticky).map_err(|p| unknown_partition(topic, p))
}

/// The 409 of a key another attempt holds.
fn in_flight(lease_left_ms: i64) -> ApiError {
    ApiError::new(
        ErrorCode::IdempotencyKeyInFlight,
        format!(
            "a request with this Idempotency-Key is still in flight; retry in a second (if it \
             died, its lease ends in {lease_left_ms} ms)"
        ),
    )
}

impl<R: Runtime> Broker<R> {
    /// `POST /v1/topics/{t}/records` with an `Idempotency-Key`: see the module docs. A key that
    /// another attempt holds is `IDEMPOTENCY_KEY_IN_FLIGHT` (409, retriable).
    pub async fn keyed_produce(
        &self,
        name: &str,
        key: &str,
        produce: &ProduceRequest,
    ) -> Result<ProduceResponse, ApiError> {
        kafdo_ingest::validate_key(key).map_err(|e| ApiError::new(e.code(), e.to_string()))?;
        let (topic, _) = self.topic(name, false).await?;
        // Before the key is taken: a request any partition would refuse leaves no trace.
        check_records(&topic, &produce.records)?;
        let fingerprint = fingerprint(&topic.name, produce);
        let object = Object::Key {
            topic: topic.name.clone(),
            key: key.to_owned(),
        };
        let proposed = self.next_key_producer_id().await?;
        let begin = KeyBegin {
            fingerprint: fingerprint.clone(),
            producer_id: proposed,
            lease_ms: self.config.idempotency_key_lease_ms,
            ttl_ms: self.config.idempotency_key_ttl_ms,
            partitions: topic.partitions,
        };
        let (producer_id, attempt, partitions) = match self.ask(object.clone(), begin).await? {
            KeyBeginAnswer::Done { offsets } => return Ok(ProduceResponse { offsets }),
            KeyBeginAnswer::InFlight { retry_after_ms } => return Err(in_flight(retry_after_ms)),
            KeyBeginAnswer::Proceed {
                producer_id,
                attempt,
                partitions,
            } => (self.reserved(producer_id, proposed), attempt, partitions),
        };
        let appended = match self
            .append_keyed(&topic, &fingerprint, produce, producer_id, partitions)
            .await
        {
            Ok(offsets) => {
                let complete = KeyComplete {
                    producer_id,
                    attempt,
                    offsets: offsets.clone(),
                };
                self.ask(object.clone(), complete).await.map(|()| offsets)
            }
            Err(e) => Err(e),
        };
        match appended {
            Ok(offsets) => Ok(ProduceResponse { offsets }),
            Err(e) => {
                // Give the key back so the client's retry need not wait for the lease (after a
                // failed complete too: if it landed, the stored answer wins over the lease); if
                // this fails too, the lease runs out by itself.
                let release = KeyRelease {
                    producer_id,
                    attempt,
                };
                if let Err(r) = self.ask(object.clone(), release).await {
                    tracing::error!("releasing idempotency key {object}: {}", r.message);
                }
                Err(e)
            }
        }
    }

    /// The producer id a keyed produce appends with: the one the key reserved.
    fn reserved(&self, reserved: i64, _proposed: i64) -> i64 {
        #[cfg(feature = "planted-bugs")]
        if self.config.bugs.keyed_produce_ignores_reservation {
            return _proposed;
        }
        reserved
    }

    /// Appends a keyed request: one idempotent batch per partition, producer id the key's,
    /// epoch 0, base sequence 0, routed deterministically over `partitions`, the count the
    /// key's first attempt saw (partitions added since do not move its records).
    async fn append_keyed(
        &self,
        topic: &TopicMetadata,
        fingerprint: &[u8],
        produce: &ProduceRequest,
        producer_id: i64,
        partitions: i32,
    ) -> Result<Vec<RecordOffset>, ApiError> {
        let plan = keyed_plan(
            fingerprint,
            &topic.name,
            produce.records.clone(),
            partitions,
        )?;
        let batch = kafdo_ingest::producer_batch(producer_id);
        let below = self
            .producer_ids_below(producer_id, ProducerIdSpace::Key)
            .await?;
        self.append_plan(topic, plan, Some((batch, below))).await
    }
}
