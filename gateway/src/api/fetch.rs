//! Fetch: each partition a Kafdo fetch, answered as one record batch per partition.
//!
//! A first pass fetches every partition at once without waiting. If that brings fewer than
//! `min_bytes` and the client allows a wait, a second pass long-polls every partition at once
//! and answers as soon as one of them has records (the others are answered from the first
//! pass: their offsets did not move, so the client asks again). Kafdo filters what the
//! isolation level hides itself, so `aborted_transactions` stays empty.
//!
//! Kafdo's answer says where the next fetch starts (`next_offset`), which is past offsets the
//! fetch skipped: transaction markers, aborted records under read_committed, compacted keys.
//! The batch is stretched over them (`last_offset_delta` reaches `next_offset - 1`) and a
//! fetch that skipped offsets and found no record is answered with an empty stretched batch:
//! consumers move to `base_offset + last_offset_delta + 1` whatever the batch carries, and
//! otherwise would ask for the same skipped offset for ever (`design/gateway.md`).

use bytes::{Bytes, BytesMut};
use futures_util::future::join_all;
use futures_util::stream::{FuturesUnordered, StreamExt};
use kafdo_client::{Error as ClientError, FetchOptions};
use kafdo_types::api::{FetchResponse as KafdoFetch, Isolation};
use kafdo_types::limits;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{ApiKey, FetchRequest, FetchResponse};

use super::Gateway;
use crate::errors;
use crate::records::{self, Batch, BatchRecord, Compression, RecordHeader};

/// One partition of a Fetch, in request order.
struct Wanted {
    topic: usize,
    partition: i32,
    offset: i64,
    max_bytes: u32,
}

type Fetched = Result<KafdoFetch, ClientError>;

impl Gateway {
    pub(super) async fn fetch(&self, request: FetchRequest, version: i16) -> FetchResponse {
        let isolation = if request.isolation_level == 1 {
            Isolation::ReadCommitted
        } else {
            Isolation::ReadUncommitted
        };
        let total_max = u32::try_from(request.max_bytes)
            .unwrap_or(limits::MAX_FETCH_MAX_BYTES)
            .clamp(1, limits::MAX_FETCH_MAX_BYTES);
        let wanted: Vec<Wanted> = request
            .topics
            .iter()
            .enumerate()
            .flat_map(|(topic, t)| {
                t.partitions.iter().map(move |p| Wanted {
                    topic,
                    partition: p.partition,
                    offset: p.fetch_offset,
                    max_bytes: u32::try_from(p.partition_max_bytes)
                        .unwrap_or(0)
                        .clamp(1, total_max),
                })
            })
            .collect();
        let name = |w: &Wanted| request.topics[w.topic].topic.0.as_str();
        let options = |w: &Wanted, wait_ms: u32| FetchOptions {
            offset: w.offset,
            max_records: limits::MAX_FETCH_MAX_RECORDS,
            max_bytes: w.max_bytes,
            isolation,
            wait_ms,
        };
        let mut results: Vec<Fetched> = join_all(
            wanted
                .iter()
                .map(|w| self.kafdo.fetch(name(w), w.partition, options(w, 0))),
        )
        .await;

        let bytes: usize = results.iter().map(fetched_bytes).sum();
        let errored = results.iter().any(Result::is_err);
        let wait_ms = u32::try_from(request.max_wait_ms)
            .unwrap_or(0)
            .min(limits::MAX_FETCH_WAIT_MS);
        if !errored && wait_ms > 0 && bytes < usize::try_from(request.min_bytes).unwrap_or(0) {
            // Long-poll every partition; the first with records answers the request.
            let mut waits: FuturesUnordered<_> = wanted
                .iter()
                .enumerate()
                .map(|(i, w)| {
                    let call = self.kafdo.fetch(name(w), w.partition, options(w, wait_ms));
                    async move { (i, call.await) }
                })
                .collect();
            while let Some((i, result)) = waits.next().await {
                if let Ok(answer) = result {
                    let found = !answer.records.is_empty();
                    results[i] = Ok(answer);
                    if found {
                        break;
                    }
                }
            }
        }

        // Whole partitions until the request's `max_bytes`; the first partition with records
        // always goes, as Kafka sends it however large.
        let mut budget = total_max as usize;
        let mut responses: Vec<FetchableTopicResponse> = request
            .topics
            .iter()
            .map(|t| FetchableTopicResponse::default().with_topic(t.topic.clone()))
            .collect();
        let mut sent_any = false;
        for (w, result) in wanted.iter().zip(results) {
            let size = fetched_bytes(&result);
            let partition = match result {
                Ok(answer) if sent_any && size > budget => {
                    // Over the budget: no records this time, offsets unchanged.
                    PartitionData::default()
                        .with_partition_index(w.partition)
                        .with_high_watermark(answer.high_watermark)
                        .with_last_stable_offset(answer.last_stable_offset)
                }
                Ok(answer) => {
                    budget = budget.saturating_sub(size);
                    sent_any |= size > 0;
                    partition_answer(w.partition, w.offset, answer)
                }
                Err(error) => {
                    let (code, message) = errors::from_client(&error);
                    let code = errors::for_version(ApiKey::Fetch, version, code);
                    tracing::debug!(?code, %message, "Fetch: a partition failed");
                    PartitionData::default()
                        .with_partition_index(w.partition)
                        .with_error_code(code.code())
                        .with_high_watermark(-1)
                }
            };
            responses[w.topic].partitions.push(partition);
        }
        FetchResponse::default()
            .with_session_id(0)
            .with_responses(responses)
    }
}

fn fetched_bytes(result: &Fetched) -> usize {
    result.as_ref().map_or(0, |answer| {
        answer.records.iter().map(|r| r.size_bytes()).sum()
    })
}

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
