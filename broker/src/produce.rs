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
    PartitionProduceRequest, PartitionProduceResponse, ProduceRequest, ProduceResponse,
    RecordOffset,
};
use kafdo_types::limits::{MAX_RECORDS_PER_REQUEST, MAX_RECORD_BYTES};
use kafdo_types::partitioner::{self, ProducePlan};
use kafdo_types::rpc::{AppendRequest, ProducerBatch, TopicMetadata};
use kafdo_types::{ApiError, ErrorCode, ProduceRecord};

use crate::topics::{check_partition, partition_object, unknown_partition};
use crate::txn::ProducerIdSpace;
use crate::{invalid, Broker, Runtime};

/// Checks the records of one produce request: at least one, at most
/// [`MAX_RECORDS_PER_REQUEST`], each at most [`MAX_RECORD_BYTES`].
pub fn check_records(records: &[ProduceRecord]) -> Result<(), ApiError> {
    if records.is_empty() {
        return Err(invalid("a produce request needs at least one record"));
    }
    if records.len() > MAX_RECORDS_PER_REQUEST {
        return Err(invalid(format!(
            "{} records in one request, more than the limit of {MAX_RECORDS_PER_REQUEST}",
            records.len()
        )));
    }
    for (index, record) in records.iter().enumerate() {
        let size_bytes = record.size_bytes();
        if size_bytes > MAX_RECORD_BYTES {
            return Err(ApiError::new(
                ErrorCode::MessageTooLarge,
                format!(
                    "record {index} is {size_bytes} bytes, more than the limit of \
                     {MAX_RECORD_BYTES}"
                ),
            ));
        }
    }
    Ok(())
}

/// Validates a topic produce and splits it by partition
/// ([`kafdo_types::partitioner::plan_produce`]).
///
/// `sticky` is the partition for records with neither a partition nor a key: the caller picks
/// it once per request.
pub fn plan_produce(
    topic: &str,
    records: Vec<ProduceRecord>,
    partitions: i32,
    sticky: i32,
) -> Result<ProducePlan, ApiError> {
    check_records(&records)?;
    partitioner::plan_produce(records, partitions, sticky).map_err(|p| unknown_partition(topic, p))
}

impl<R: Runtime> Broker<R> {
    /// `POST /v1/topics/{t}/records` (without an `Idempotency-Key`; see [`Broker::produce`]).
    pub async fn produce_topic(
        &self,
        name: &str,
        records: &[ProduceRecord],
    ) -> Result<ProduceResponse, ApiError> {
        // Checked before anything else, so a bad request fails fast and writes nothing.
        check_records(records)?;
        self.with_topic(name, |topic| async move {
            // Null-key records without a partition all go to one random partition per request.
            let sticky = self.runtime.random_below(topic.partitions as u32) as i32;
            let plan = plan_produce(&topic.name, records.to_vec(), topic.partitions, sticky)?;
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
        check_records(&produce.records)?;
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
    use kafdo_types::partitioner::partition_for_key;

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
        let plan = plan_produce("t", records, 4, 1).unwrap();
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
        let big = ProduceRecord::value(vec![0u8; MAX_RECORD_BYTES + 1]);
        let ok = ProduceRecord::value(b"x".to_vec());
        let e = plan_produce("t", vec![ok.clone(), big], 2, 0).unwrap_err();
        assert_eq!(e.code, ErrorCode::MessageTooLarge);
        let exact = ProduceRecord::value(vec![0u8; MAX_RECORD_BYTES]);
        assert!(plan_produce("t", vec![exact], 2, 0).is_ok());
        let e = plan_produce("t", vec![], 2, 0).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRequest);
        let out_of_range = ProduceRecord {
            partition: Some(2),
            ..ok.clone()
        };
        let e = plan_produce("t", vec![ok, out_of_range], 2, 0).unwrap_err();
        assert_eq!(e.code, ErrorCode::UnknownTopicOrPartition);
    }
}
