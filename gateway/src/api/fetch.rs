//! Fetch: one Kafdo multi-partition fetch (`POST /v1/fetch`, which waits once for `min_bytes`
//! up to `max_wait_ms`), answered as one record batch per partition. Kafdo filters what the
//! isolation level hides itself, so `aborted_transactions` stays empty.
//!
//! Kafdo's answer says where the next fetch starts (`next_offset`), which is past offsets the
//! fetch skipped: transaction markers, aborted records under read_committed, compacted keys.
//! The batch is stretched over them (`last_offset_delta` reaches `next_offset - 1`) and a
//! fetch that skipped offsets and found no record is answered with an empty stretched batch:
//! consumers move to `base_offset + last_offset_delta + 1` whatever the batch carries, and
//! otherwise would ask for the same skipped offset for ever (`design/gateway.md`).

use std::collections::HashSet;

use bytes::{Bytes, BytesMut};
use futures_util::future::join_all;
use kafdo_types::api::{FetchResponse as KafdoFetch, Isolation, MultiFetchRequest, PartitionFetch};
use kafdo_types::limits;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{ApiKey, FetchRequest, FetchResponse};
use kafka_protocol::ResponseError;

use super::Gateway;
use crate::errors;
use crate::records::{self, Batch, BatchRecord, Compression, RecordHeader};

impl Gateway {
    pub(super) async fn fetch(&self, request: FetchRequest, version: i16) -> FetchResponse {
        let isolation = if request.isolation_level == 1 {
            Isolation::ReadCommitted
        } else {
            Isolation::ReadUncommitted
        };
        let max_bytes = u32::try_from(request.max_bytes)
            .unwrap_or(limits::MAX_FETCH_MAX_BYTES)
            .clamp(1, limits::MAX_FETCH_MAX_BYTES);
        // Every partition in request order (by its slot in `results`); a partition named
        // twice is fetched once and the repetition answered with an error.
        let mut wanted: Vec<(usize, PartitionFetch)> = Vec::new();
        let mut results: Vec<Option<Fetched>> = Vec::new();
        let mut seen = HashSet::new();
        for t in &request.topics {
            for p in &t.partitions {
                let name = t.topic.0.as_str();
                if seen.insert((name, p.partition)) {
                    results.push(None);
                    wanted.push((
                        results.len() - 1,
                        PartitionFetch {
                            topic: name.to_string(),
                            partition: p.partition,
                            offset: p.fetch_offset,
                            max_bytes: Some(
                                u32::try_from(p.partition_max_bytes)
                                    .unwrap_or(0)
                                    .clamp(1, max_bytes),
                            ),
                            max_records: Some(limits::MAX_FETCH_MAX_RECORDS),
                        },
                    ));
                } else {
                    results.push(Some(Err((
                        ResponseError::InvalidRequest,
                        format!("partition {} of {name} is named twice", p.partition),
                    ))));
                }
            }
        }
        let wait_ms = u32::try_from(request.max_wait_ms)
            .unwrap_or(0)
            .min(limits::MAX_FETCH_WAIT_MS);
        let min_bytes = u32::try_from(request.min_bytes).unwrap_or(0);
        // One `POST /v1/fetch` (one wait) per `MAX_PARTITIONS_PER_REQUEST` partitions.
        let chunks = wanted
            .chunks(limits::MAX_PARTITIONS_PER_REQUEST)
            .map(|chunk| async move {
                let multi = MultiFetchRequest {
                    partitions: chunk.iter().map(|(_, p)| p.clone()).collect(),
                    isolation,
                    wait_ms,
                    min_bytes,
                    max_bytes,
                };
                let answer = self.kafdo.fetch_many(&multi).await;
                let outcomes = errors::outcomes(answer.map(|a| a.partitions), chunk.len());
                chunk
                    .iter()
                    .map(|(slot, p)| (*slot, p.offset))
                    .zip(outcomes)
            });
        let mut offsets = vec![0; results.len()];
        for ((slot, offset), outcome) in join_all(chunks).await.into_iter().flatten() {
            results[slot] = Some(outcome);
            offsets[slot] = offset;
        }

        let mut responses: Vec<FetchableTopicResponse> = request
            .topics
            .iter()
            .map(|t| FetchableTopicResponse::default().with_topic(t.topic.clone()))
            .collect();
        let mut results = results.into_iter().zip(offsets);
        for (topic, t) in request.topics.iter().enumerate() {
            for p in &t.partitions {
                let (result, offset) = results.next().expect("one result per partition");
                let result = result.unwrap_or_else(|| {
                    Err((
                        ResponseError::UnknownServerError,
                        "Kafdo answered fewer partitions than asked".into(),
                    ))
                });
                let partition = match result {
                    Ok(answer) => partition_answer(p.partition, offset, answer),
                    Err((code, message)) => {
                        let code = errors::for_version(ApiKey::Fetch, version, code);
                        tracing::debug!(?code, %message, "Fetch: a partition failed");
                        PartitionData::default()
                            .with_partition_index(p.partition)
                            .with_error_code(code.code())
                            .with_high_watermark(-1)
                    }
                };
                responses[topic].partitions.push(partition);
            }
        }
        FetchResponse::default()
            .with_session_id(0)
            .with_responses(responses)
    }
}

/// A partition's Kafdo fetch, or Kafka's error for it.
type Fetched = Result<KafdoFetch, (ResponseError, String)>;

/// One partition's answer: its records as one batch stretched to `next_offset`.
fn partition_answer(partition: i32, fetch_offset: i64, answer: KafdoFetch) -> PartitionData {
    PartitionData::default()
        .with_partition_index(partition)
        .with_high_watermark(answer.high_watermark)
        .with_last_stable_offset(answer.last_stable_offset)
        .with_records(Some(stretched_batch(fetch_offset, &answer)))
}

/// The records of `answer` as one batch from `fetch_offset` (or its first record, if later)
/// that spans every offset up to `answer.next_offset`; no bytes when nothing was passed over.
pub fn stretched_batch(fetch_offset: i64, answer: &KafdoFetch) -> Bytes {
    // The batch starts at the fetch offset, so that skipped offsets before the first record are
    // spanned too; never after the first record.
    let base = match answer.records.first() {
        Some(first) => fetch_offset.clamp(0, first.offset.max(0)),
        None => fetch_offset.max(0),
    };
    let end = answer.next_offset;
    if end <= base {
        return Bytes::new();
    }
    let mut out = BytesMut::new();
    // A span longer than an i32 (a far jump over a compacted log) is cut: the next fetch goes on.
    let last_offset_delta = i32::try_from(end - 1 - base).unwrap_or(i32::MAX);
    let base_timestamp = answer.records.first().map_or(-1, |r| r.timestamp);
    let max_timestamp = answer
        .records
        .iter()
        .map(|r| r.timestamp)
        .max()
        .unwrap_or(-1);
    let records = answer
        .records
        .iter()
        .take_while(|r| r.offset - base <= i64::from(last_offset_delta))
        .map(|r| BatchRecord {
            offset_delta: (r.offset - base) as i32,
            timestamp_delta: r.timestamp - base_timestamp,
            key: r.key.clone(),
            value: r.value.clone(),
            headers: r
                .headers
                .iter()
                .map(|h| RecordHeader {
                    key: h.key.clone(),
                    value: h.value.clone(),
                })
                .collect(),
        })
        .collect();
    records::write_batch(
        &mut out,
        &Batch {
            base_offset: base,
            partition_leader_epoch: 0,
            compression: Compression::None,
            timestamp_type_log_append: false,
            transactional: false,
            control: false,
            last_offset_delta,
            base_timestamp,
            max_timestamp,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            records,
        },
    );
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafdo_types::record::{Header, Record};
    use kafka_protocol::protocol::Encodable;

    fn record(offset: i64) -> Record {
        Record {
            offset,
            timestamp: 1_000 + offset,
            key: Some(b"k".to_vec()),
            value: Some(format!("v{offset}").into_bytes()),
            headers: vec![
                Header {
                    key: "h".into(),
                    value: Some(b"1".to_vec()),
                },
                Header {
                    key: "h".into(),
                    value: None,
                },
            ],
        }
    }

    fn answer(records: Vec<Record>, next_offset: i64) -> KafdoFetch {
        KafdoFetch {
            records,
            next_offset,
            high_watermark: next_offset,
            last_stable_offset: next_offset,
        }
    }

    fn read(bytes: &[u8]) -> Batch {
        let mut batches = records::read_batches(bytes, 1 << 20).unwrap();
        assert_eq!(batches.len(), 1);
        batches.remove(0)
    }

    #[test]
    fn a_batch_spans_the_offsets_a_fetch_skipped() {
        // Fetch at 10: offsets 10 and 11 are a marker and an aborted record, 12 and 14 are
        // records, 13 and 15..=19 hidden; the next fetch starts at 20.
        let batch = read(&stretched_batch(
            10,
            &answer(vec![record(12), record(14)], 20),
        ));
        assert_eq!(batch.base_offset, 10);
        assert_eq!(batch.last_offset_delta, 9, "the consumer moves to 20");
        let deltas: Vec<_> = batch.records.iter().map(|r| r.offset_delta).collect();
        assert_eq!(deltas, vec![2, 4]);
        assert_eq!(batch.base_timestamp, 1_012);
        assert_eq!(batch.records[1].timestamp_delta, 2);
        assert_eq!(batch.max_timestamp, 1_014);
        assert_eq!(
            batch.records[0].headers.len(),
            2,
            "duplicate header keys kept"
        );
    }

    #[test]
    fn only_skipped_offsets_give_an_empty_stretched_batch() {
        let batch = read(&stretched_batch(7, &answer(vec![], 9)));
        assert!(batch.records.is_empty());
        assert_eq!((batch.base_offset, batch.last_offset_delta), (7, 1));
        // At the end of the log: no batch at all.
        assert!(stretched_batch(9, &answer(vec![], 9)).is_empty());
    }

    #[test]
    fn records_before_the_fetch_offset_start_the_batch() {
        // Kafdo never answers below the fetch offset, but a batch never starts after its
        // first record either.
        let batch = read(&stretched_batch(5, &answer(vec![record(3), record(4)], 5)));
        assert_eq!((batch.base_offset, batch.last_offset_delta), (3, 1));
    }

    #[test]
    fn every_offered_version_encodes() {
        let (low, high) = super::super::offered(ApiKey::Fetch).unwrap();
        for version in low..=high {
            let answer =
                FetchResponse::default().with_responses(vec![FetchableTopicResponse::default()
                    .with_partitions(vec![
                        partition_answer(0, 0, answer(vec![record(0)], 1)),
                        PartitionData::default().with_error_code(3),
                    ])]);
            answer
                .encode(&mut BytesMut::new(), version)
                .unwrap_or_else(|e| panic!("v{version}: {e}"));
        }
    }
}
