//! Produce: each partition's record batch becomes one batch of a Kafdo multi-partition produce
//! (`POST /v1/produce`), so one Kafka request is one HTTP request.
//!
//! The batch's producer fields go through unchanged (`producer_id`, `producer_epoch`,
//! `base_sequence`, the transactional bit), so Kafdo's partition does what a Kafka partition
//! does with them: deduplicates a retried batch (answering its original offsets), refuses a
//! sequence gap or a fenced epoch. Nothing of it is kept here: a gateway restarted between a
//! client's attempt and its retry changes nothing.

use std::collections::HashSet;

use futures_util::future::join_all;
use kafdo_types::api::{MultiProduceRequest, PartitionBatch, PartitionProduceRequest};
use kafdo_types::limits::{MAX_PARTITIONS_PER_REQUEST, MAX_REQUEST_BYTES};
use kafdo_types::record::{Header, ProduceRecord};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::Gateway;
use crate::errors;
use crate::records::{self, Batch};

impl Gateway {
    pub(super) async fn produce(
        &self,
        request: ProduceRequest,
        version: i16,
    ) -> Option<ProduceResponse> {
        // Every partition's batch decoded here; those that decode go to Kafdo in one
        // `POST /v1/produce` per `MAX_PARTITIONS_PER_REQUEST` of them, the rest are answered
        // with their own error. A partition named twice is refused (Kafka's request has no
        // order between the two).
        let mut results: Vec<Option<Outcome>> = Vec::new();
        let mut batches: Vec<(usize, PartitionBatch)> = Vec::new();
        let mut seen = HashSet::new();
        for topic in &request.topic_data {
            for partition in &topic.partition_data {
                let slot = results.len();
                let name = topic.name.0.as_str();
                if !seen.insert((name, partition.index)) {
                    results.push(Some(Err((
                        ResponseError::InvalidRequest,
                        format!("partition {} of {name} is named twice", partition.index),
                    ))));
                    continue;
                }
                match partition_request(partition.records.as_deref().unwrap_or_default()) {
                    Ok(batch) => {
                        results.push(None);
                        batches.push((
                            slot,
                            PartitionBatch {
                                topic: name.to_string(),
                                partition: partition.index,
                                batch,
                            },
                        ));
                    }
                    Err(refused) => results.push(Some(Err(refused))),
                }
            }
        }
        let chunks = batches
            .chunks(MAX_PARTITIONS_PER_REQUEST)
            .map(|chunk| async move {
                let request = MultiProduceRequest {
                    partitions: chunk.iter().map(|(_, b)| b.clone()).collect(),
                };
                let answer = self.kafdo.produce_many(&request).await;
                let outcomes: Vec<Outcome> =
                    errors::outcomes(answer.map(|a| a.partitions), chunk.len())
                        .into_iter()
                        .map(|o| o.map(|a| a.base_offset))
                        .collect();
                chunk.iter().map(|(slot, _)| *slot).zip(outcomes)
            });
        for (slot, outcome) in join_all(chunks).await.into_iter().flatten() {
            results[slot] = Some(outcome);
        }
        if request.acks == 0 {
            // acks=0: the client reads no answer, so none is written.
            return None;
        }
        let mut results = results.into_iter();
        let responses = request
            .topic_data
            .iter()
            .map(|topic| {
                let partition_responses = topic
                    .partition_data
                    .iter()
                    .map(|partition| {
                        let result = results.next().flatten().unwrap_or_else(|| {
                            Err((
                                ResponseError::UnknownServerError,
                                "Kafdo answered fewer partitions than asked".into(),
                            ))
                        });
                        partition_answer(version, partition.index, result)
                    })
                    .collect();
                TopicProduceResponse::default()
                    .with_name(topic.name.clone())
                    .with_partition_responses(partition_responses)
            })
            .collect();
        Some(ProduceResponse::default().with_responses(responses))
    }
}

/// A partition's base offset, or Kafka's error for it.
type Outcome = Result<i64, (ResponseError, String)>;

/// The Kafdo partition produce for a Produce's `records` field: exactly one v2 batch, as
/// Kafka requires from Produce v3 on.
pub fn partition_request(bytes: &[u8]) -> Result<PartitionProduceRequest, (ResponseError, String)> {
    let mut batches = records::read_batches(bytes, MAX_REQUEST_BYTES)
        .map_err(|e| (ResponseError::CorruptMessage, e.to_string()))?;
    if batches.len() != 1 {
        return Err((
            ResponseError::InvalidRecord,
            format!("a partition's records are one batch, not {}", batches.len()),
        ));
    }
    let batch: Batch = batches.remove(0);
    if batch.control {
        return Err((
            ResponseError::InvalidRecord,
            "a producer cannot write control batches".into(),
        ));
    }
    let records = batch
        .records
        .into_iter()
        .map(|r| {
            let timestamp = batch.base_timestamp.checked_add(r.timestamp_delta);
            ProduceRecord {
                key: r.key,
                value: r.value,
                headers: r
                    .headers
                    .into_iter()
                    .map(|h| Header {
                        key: h.key,
                        value: h.value,
                    })
                    .collect(),
                partition: None,
                // A negative timestamp is Kafka's "none" (-1): Kafdo's clock then.
                timestamp: timestamp.filter(|t| *t >= 0),
            }
        })
        .collect();
    let idempotent = batch.producer_id >= 0;
    Ok(PartitionProduceRequest {
        producer_id: idempotent.then_some(batch.producer_id),
        producer_epoch: idempotent.then_some(i32::from(batch.producer_epoch)),
        base_sequence: idempotent.then_some(batch.base_sequence),
        transactional: batch.transactional,
        records,
    })
}

fn partition_answer(version: i16, index: i32, result: Outcome) -> PartitionProduceResponse {
    let answer = PartitionProduceResponse::default().with_index(index);
    match result {
        Ok(base_offset) => answer.with_base_offset(base_offset),
        Err((error, message)) => {
            let error = errors::for_version(ApiKey::Produce, version, error);
            tracing::debug!(code = ?error, %message, "Produce: a partition refused");
            let mut answer = answer.with_error_code(error.code()).with_base_offset(-1);
            if version >= 8 {
                answer.error_message = Some(StrBytes::from_string(message));
            }
            answer
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::protocol::Encodable;

    #[test]
    fn every_offered_version_encodes() {
        let (low, high) = super::super::offered(ApiKey::Produce).unwrap();
        for version in low..=high {
            let partitions = vec![
                partition_answer(version, 0, Ok(7)),
                partition_answer(
                    version,
                    1,
                    Err((ResponseError::ProducerFenced, "fenced".into())),
                ),
            ];
            assert_eq!(
                partitions[1].error_code,
                ResponseError::InvalidProducerEpoch.code()
            );
            let answer = ProduceResponse::default().with_responses(vec![
                TopicProduceResponse::default().with_partition_responses(partitions),
            ]);
            answer
                .encode(&mut BytesMut::new(), version)
                .unwrap_or_else(|e| panic!("v{version}: {e}"));
        }
    }

    #[test]
    fn a_batch_keeps_its_producer_fields_and_records() {
        let mut out = BytesMut::new();
        let batch = Batch {
            base_offset: 0,
            partition_leader_epoch: -1,
            compression: records::Compression::None,
            timestamp_type_log_append: false,
            transactional: false,
            control: false,
            last_offset_delta: 1,
            base_timestamp: 1_000,
            max_timestamp: 1_005,
            producer_id: 42,
            producer_epoch: 3,
            base_sequence: 10,
            records: vec![
                records::BatchRecord {
                    offset_delta: 0,
                    timestamp_delta: 0,
                    key: Some(b"k".to_vec()),
                    value: Some(b"v".to_vec()),
                    headers: vec![
                        records::RecordHeader {
                            key: "h".into(),
                            value: Some(b"1".to_vec()),
                        },
                        records::RecordHeader {
                            key: "h".into(),
                            value: None,
                        },
                    ],
                },
                records::BatchRecord {
                    offset_delta: 1,
                    timestamp_delta: 5,
                    key: None,
                    value: None,
                    headers: vec![],
                },
            ],
        };
        records::write_batch(&mut out, &batch);
        let request = partition_request(&out).unwrap();
        assert_eq!(request.producer_id, Some(42));
        assert_eq!(request.producer_epoch, Some(3));
        assert_eq!(request.base_sequence, Some(10));
        assert_eq!(request.records.len(), 2);
        assert_eq!(
            request.records[0].headers.len(),
            2,
            "duplicate header keys kept"
        );
        assert_eq!(request.records[1].timestamp, Some(1_005));
        assert_eq!(request.records[1].value, None);
        // Two batches, or a control batch, are refused.
        let mut two = out.clone();
        two.extend_from_slice(&out);
        assert_eq!(
            partition_request(&two).unwrap_err().0,
            ResponseError::InvalidRecord
        );
        assert_eq!(
            partition_request(&out[..out.len() - 1]).unwrap_err().0,
            ResponseError::CorruptMessage
        );
    }
}
