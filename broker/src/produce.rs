//! Produce: checking a request, planning it by partition, fanning the appends out, and
//! answering each record's offset in request order.
//!
//! A topic produce routes each record by its `partition` field, else by Kafka's murmur2 on the
//! key, else to one "sticky" partition for the whole request (Kafka's sticky partitioner sends
//! null-key records to one partition per batch, for the same reason: fewer, larger appends).
//! [`plan_produce`] validates every record first, so a request with one bad record writes
//! nothing, then groups the records into one batch per partition and remembers where each
//! record went; `Broker::append_plan` sends one append per partition, all at once, and maps
//! the answers back to request order. A keyed produce ([`crate::ingest`]) runs the same plan and
//! fan-out with the key's producer id.

use kafdo_types::api::{
    CleanupPolicy, PartitionProduceRequest, PartitionProduceResponse, ProduceRequest,
    ProduceResponse, RecordOffset,
};
use kafdo_types::partitioner::{self, ProducePlan};
use kafdo_types::rpc::{AppendRequest, ProducerBatch, TopicMetadata};
use kafdo_types::{record, ApiError, ErrorCode, ProduceRecord};

use crate::topics::{check_partition, partition_object, unknown_partition};
use crate::txn::ProducerIdSpace;
use crate::{invalid, Broker, Runtime};

/// Checks the records of one produce request for `topic` as
/// [`kafdo_types::record::check_records`] does (what each partition checks again of its
/// batch), so that a request one partition would refuse is refused before any appends.
pub fn check_records(topic: &TopicMetadata, records: &[ProduceRecord]) -> Result<(), ApiError> {
    let compact = topic.config.cleanup_policy == CleanupPolicy::Compact;
    record::check_records(records, compact).map_err(|e| ApiError::new(e.code(), e.to_string()))
}

/// Validates a topic produce and splits it by partition
/// ([`kafdo_types::partitioner::plan_produce`]).
///
/// `sticky` is the partition for records with neither a partition nor a key: the caller picks
/// it once per request.
pub fn plan_produce(
    topic: &TopicMetadata,
    records: Vec<ProduceRecord>,
    sticky: i32,
) -> Result<ProducePlan, ApiError> {
    check_records(topic, &records)?;
    partitioner::plan_produce(records, topic.partitions, sticky)
        .map_err(|p| unknown_partition(&topic.name, p))
}

impl<R: Runtime> Broker<R> {
    /// `POST /v1/topics/{t}/records` (without an `Idempotency-Key`; see [`Broker::produce`]).
    pub async fn produce_topic(
        &self,
        name: &str,
        records: &[ProduceRecord],
    ) -> Result<ProduceResponse, ApiError> {
        self.with_topic(name, |topic| async move {
            // Null-key records without a partition all go to one random partition per request.
            let sticky = self.runtime.random_below(topic.partitions as u32) as i32;
            // Checked whole before any append, so a bad request writes nothing.
            let plan = plan_produce(&topic, records.to_vec(), sticky)?;
            let offsets = self.append_plan(&topic, plan, None).await?;
            Ok(ProduceResponse { offsets })
        })
        .await
    }

    /// `POST /v1/topics/{t}/records`, with or without an `Idempotency-Key`.
    pub async fn produce(
        &self,
        name: &str,
        idempotency_key: Option<&str>,
        produce: &ProduceRequest,
    ) -> Result<ProduceResponse, ApiError> {
        match idempotency_key {
            Some(key) => self.keyed_produce(name, key, produce).await,
            None => self.produce_topic(name, &produce.records).await,
        }
    }

    /// Sends one append per partition of `plan`, all at once, each with `producer`'s batch
    /// identity and the evidence shown for it (the same for every partition: a keyed produce's
    /// sequences start at 0 on each),
    /// and answers each record's offset in request order. An unknown topic comes first among
    /// the failures, so that a stale cache entry leads to [`Broker::with_topic`]'s retry.
    pub(crate) async fn append_plan(
        &self,
        topic: &TopicMetadata,
        plan: ProducePlan,
        producer: Option<(ProducerBatch, i64)>,
    ) -> Result<Vec<RecordOffset>, ApiError> {
        let (producer, producer_ids_below) = match producer {
            Some((batch, below)) => (Some(batch), below),
            None => (None, 0),
        };
        let partitions: Vec<i32> = plan.batches.iter().map(|(p, _)| *p).collect();
        let appends = plan.batches.into_iter().map(|(p, records)| async move {
            let append = AppendRequest {
                partition: topic.partition(p),
                producer,
                transactional: false,
                producer_ids_below,
                records,
            };
            self.ask(partition_object(topic, p), append).await
        });
        let results: Vec<Result<PartitionProduceResponse, ApiError>> =
            futures_util::future::join_all(appends).await;
        if let Some(e) = results.iter().find_map(|r| {
            r.as_ref()
                .err()
                .filter(|e| e.code == ErrorCode::UnknownTopicOrPartition)
        }) {
            return Err(e.clone());
        }
        let answers = results.into_iter().collect::<Result<Vec<_>, _>>()?;
        Ok(plan
            .slots
            .iter()
            .map(|&(b, i)| RecordOffset {
                partition: partitions[b],
                offset: answers[b].base_offset + self.index_in_batch(&answers[b], i),
            })
            .collect())
    }

    /// The offset of a batch's `i`th record relative to its first.
    fn index_in_batch(&self, _answer: &PartitionProduceResponse, i: usize) -> i64 {
        #[cfg(feature = "planted-bugs")]
        if self.config.bugs.produce_offsets_reversed {
            return _answer.last_offset - _answer.base_offset - i as i64;
        }
        i as i64
    }

    /// `POST /v1/topics/{t}/partitions/{p}/records`.
    pub async fn produce_partition(
        &self,
        name: &str,
        p: i32,
        produce: PartitionProduceRequest,
    ) -> Result<PartitionProduceResponse, ApiError> {
        if let Some(i) = produce
            .records
            .iter()
            .position(|r| r.partition.is_some_and(|rp| rp != p))
        {
            return Err(invalid(format!(
                "record {i} names another partition than the path's {p}"
            )));
        }
        let producer = match (
            produce.producer_id,
            produce.producer_epoch,
            produce.base_sequence,
        ) {
            (None, None, None) => None,
            (Some(producer_id), Some(producer_epoch), Some(base_sequence)) => Some(ProducerBatch {
                producer_id,
                producer_epoch,
                base_sequence,
            }),
            _ => {
                return Err(invalid(
                    "producer_id, producer_epoch and base_sequence come together or not at all",
                ))
            }
        };
        if produce.transactional && producer.is_none() {
            return Err(invalid("a transactional batch needs a producer_id"));
        }
        let producer_ids_below = match &producer {
            Some(p) => {
                self.producer_ids_below(p.producer_id, ProducerIdSpace::Client)
                    .await?
            }
            None => 0,
        };
        let produce = &produce;
        self.with_topic(name, |topic| async move {
            check_partition(&topic, p)?;
            check_records(&topic, &produce.records)?;
            let append = AppendRequest {
                partition: topic.partition(p),
                producer,
                transactional: produce.transactional,
                producer_ids_below,
                records: produce.records.clone(),
            };
            self.ask(partition_object(&topic, p), append).await
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafdo_types::api::TopicConfig;
    use kafdo_types::limits::MAX_RECORD_BYTES;
    use kafdo_types::partitioner::partition_for_key;

    fn topic(partitions: i32, cleanup_policy: CleanupPolicy) -> TopicMetadata {
        TopicMetadata {
            name: "t".into(),
            topic_id: "t-1".into(),
            partitions,
            config: TopicConfig {
                cleanup_policy,
                ..TopicConfig::default()
            },
            created_ms: 0,
        }
    }

    #[test]
    fn produce_plan_routes_and_keeps_request_order() {
        let records = vec![
            ProduceRecord::keyed(b"a".to_vec(), b"1".to_vec()),
            ProduceRecord::value(b"2".to_vec()),
            ProduceRecord {
                partition: Some(3),
                ..ProduceRecord::value(b"3".to_vec())
            },
            ProduceRecord::keyed(b"a".to_vec(), b"4".to_vec()),
            ProduceRecord::value(b"5".to_vec()),
        ];
        let plan = plan_produce(&topic(4, CleanupPolicy::Delete), records, 1).unwrap();
        let pa = partition_for_key(b"a", 4);
        let p_of = |slot: usize| plan.batches[plan.slots[slot].0].0;
        assert_eq!(p_of(0), pa);
        assert_eq!(p_of(1), 1);
        assert_eq!(p_of(2), 3);
        assert_eq!(p_of(3), pa);
        assert_eq!(p_of(4), 1);
        // Every record sits where its slot says, and each partition has one batch.
        for (i, v) in [b"1", b"2", b"3", b"4", b"5"].iter().enumerate() {
            let (b, j) = plan.slots[i];
            assert_eq!(plan.batches[b].1[j].value.as_deref(), Some(&v[..]));
        }
        let mut ps: Vec<i32> = plan.batches.iter().map(|b| b.0).collect();
        ps.sort();
        ps.dedup();
        assert_eq!(ps.len(), plan.batches.len());
    }

    #[test]
    fn produce_plan_refuses_bad_requests_whole() {
        let t = topic(2, CleanupPolicy::Delete);
        let big = ProduceRecord::value(vec![0u8; MAX_RECORD_BYTES + 1]);
        let ok = ProduceRecord::value(b"x".to_vec());
        let e = plan_produce(&t, vec![ok.clone(), big], 0).unwrap_err();
        assert_eq!(e.code, ErrorCode::MessageTooLarge);
        let exact = ProduceRecord::value(vec![0u8; MAX_RECORD_BYTES]);
        assert!(plan_produce(&t, vec![exact], 0).is_ok());
        let e = plan_produce(&t, vec![], 0).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRequest);
        let out_of_range = ProduceRecord {
            partition: Some(2),
            ..ok.clone()
        };
        let e = plan_produce(&t, vec![ok, out_of_range], 0).unwrap_err();
        assert_eq!(e.code, ErrorCode::UnknownTopicOrPartition);
    }

    /// What a partition would refuse of its batch is refused of the whole request first, so
    /// that no other partition's batch is appended under a 400.
    #[test]
    fn produce_plan_refuses_what_a_partition_would() {
        let t = topic(2, CleanupPolicy::Delete);
        let keyed = ProduceRecord::keyed(b"k".to_vec(), b"v".to_vec());
        let early = ProduceRecord {
            timestamp: Some(-1),
            ..ProduceRecord::value(b"v".to_vec())
        };
        let e = plan_produce(&t, vec![keyed.clone(), early], 0).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRequest);
        assert!(e.message.contains("record 1 has timestamp -1"), "{e}");
        let compacted = topic(2, CleanupPolicy::Compact);
        let keyless = ProduceRecord::value(b"v".to_vec());
        let e = plan_produce(&compacted, vec![keyed.clone(), keyless.clone()], 0).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRecord);
        assert!(plan_produce(&t, vec![keyed, keyless], 0).is_ok());
    }
}
