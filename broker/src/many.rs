//! Calls that name many partitions at once (`POST /v1/produce`, `POST /v1/fetch`), so that one
//! Kafka Produce or Fetch request is one HTTP request.
//!
//! Each partition's part is the single-partition call ([`Broker::produce_partition`],
//! [`Broker::fetch`]), all of them concurrently; each partition succeeds or fails on its own,
//! as in Kafka, and the outcomes come back in request order. What the request as a whole must
//! satisfy (1 to [`MAX_PARTITIONS_PER_REQUEST`] partitions, none twice) is checked before any
//! call, so a malformed request changes nothing.
//!
//! A fetch waits once for all its partitions: a first pass reads every partition without
//! waiting; if that brought fewer than `min_bytes`, no partition failed, and the request
//! allows a wait, every
//! partition that had nothing is long-polled at once from where the first pass left it, and the
//! answer goes as soon as the records gathered reach `min_bytes` or every poll has answered
//! (at the end of the wait). A partition that answered its poll is not polled again.

use std::collections::HashSet;

use futures_util::future::join_all;
use futures_util::stream::{FuturesUnordered, StreamExt};
use kafdo_types::api::{
    FetchResponse, MultiFetchRequest, MultiFetchResponse, MultiProduceRequest,
    MultiProduceResponse, PartitionOutcome,
};
use kafdo_types::limits::{
    DEFAULT_FETCH_MAX_BYTES, DEFAULT_FETCH_MAX_RECORDS, MAX_FETCH_MAX_BYTES, MAX_FETCH_MAX_RECORDS,
    MAX_FETCH_WAIT_MS, MAX_PARTITIONS_PER_REQUEST, MAX_SAFE_INTEGER, MIN_FETCH_SHARE_BYTES,
};
use kafdo_types::{ApiError, ErrorCode};

use crate::topics::FetchOptions;
use crate::{invalid, Broker, Runtime};

/// Checks the partitions a multi-partition call names: 1 to [`MAX_PARTITIONS_PER_REQUEST`],
/// none twice.
fn check_partitions<'a>(
    names: impl ExactSizeIterator<Item = (&'a str, i32)>,
) -> Result<(), ApiError> {
    let n = names.len();
    if n == 0 || n > MAX_PARTITIONS_PER_REQUEST {
        return Err(invalid(format!(
            "a request names 1 to {MAX_PARTITIONS_PER_REQUEST} partitions, not {n}"
        )));
    }
    let mut seen = HashSet::with_capacity(n);
    for (topic, partition) in names {
        if !seen.insert((topic, partition)) {
            return Err(invalid(format!(
                "partition {partition} of topic {} is named twice",
                kafdo_types::limits::quoted(topic)
            )));
        }
    }
    Ok(())
}

/// The options of one partition of a multi-partition fetch: its own limits, its share of the
/// request's `max_bytes` (so that the answer stays near the request's budget however many
/// partitions it names), no wait yet.
fn partition_options(
    request: &MultiFetchRequest,
    p: &kafdo_types::api::PartitionFetch,
) -> Result<FetchOptions, ApiError> {
    let positive = |name: &str, value: Option<u32>, default: u32, cap: u32| match value {
        Some(0) => Err(invalid(format!(
            "{name} of partition {} of {} is 0",
            p.partition,
            kafdo_types::limits::quoted(&p.topic)
        ))),
        Some(v) => Ok(v.min(cap)),
        None => Ok(default),
    };
    if p.offset > MAX_SAFE_INTEGER {
        return Err(invalid(format!(
            "offset {} is above {MAX_SAFE_INTEGER}",
            p.offset
        )));
    }
    let own = positive(
        "max_bytes",
        p.max_bytes,
        DEFAULT_FETCH_MAX_BYTES,
        MAX_FETCH_MAX_BYTES,
    )?;
    let total = request.max_bytes.min(MAX_FETCH_MAX_BYTES);
    let share = (total / request.partitions.len() as u32).max(MIN_FETCH_SHARE_BYTES);
    Ok(FetchOptions {
        offset: p.offset,
        max_records: positive(
            "max_records",
            p.max_records,
            DEFAULT_FETCH_MAX_RECORDS,
            MAX_FETCH_MAX_RECORDS,
        )?,
        max_bytes: own.min(share),
        isolation: request.isolation,
        wait_ms: 0,
    })
}

/// The record bytes (keys, values, headers) of a partition's answer.
fn record_bytes(answer: &FetchResponse) -> u64 {
    answer.records.iter().map(|r| r.size_bytes() as u64).sum()
}

impl<R: Runtime> Broker<R> {
    /// `POST /v1/produce`: each batch appended to its partition as
    /// [`Broker::produce_partition`] does, all at once.
    pub async fn produce_many(
        &self,
        request: MultiProduceRequest,
    ) -> Result<MultiProduceResponse, ApiError> {
        check_partitions(
            request
                .partitions
                .iter()
                .map(|p| (p.topic.as_str(), p.partition)),
        )?;
        let calls = request.partitions.into_iter().map(|p| async move {
            let result = self.produce_partition(&p.topic, p.partition, p.batch).await;
            PartitionOutcome::new(&p.topic, p.partition, result)
        });
        Ok(MultiProduceResponse {
            partitions: join_all(calls).await,
        })
    }

    /// `POST /v1/fetch`: every partition read at once, with one wait for `min_bytes`.
    pub async fn fetch_many(
        &self,
        request: MultiFetchRequest,
    ) -> Result<MultiFetchResponse, ApiError> {
        check_partitions(
            request
                .partitions
                .iter()
                .map(|p| (p.topic.as_str(), p.partition)),
        )?;
        let options = request
            .partitions
            .iter()
            .map(|p| partition_options(&request, p))
            .collect::<Result<Vec<_>, _>>()?;
        let read = |i: usize, options: FetchOptions| {
            let p = &request.partitions[i];
            async move {
                if options.offset < 0 {
                    return Err(ApiError::new(
                        ErrorCode::OffsetOutOfRange,
                        format!("offset {} is negative", options.offset),
                    ));
                }
                self.fetch(&p.topic, p.partition, options).await
            }
        };
        let mut results: Vec<Result<FetchResponse, ApiError>> =
            join_all(options.iter().enumerate().map(|(i, o)| read(i, *o))).await;

        let mut gathered: u64 = results.iter().flatten().map(record_bytes).sum();
        let wait_ms = request.wait_ms.min(MAX_FETCH_WAIT_MS);
        let min_bytes = u64::from(request.min_bytes);
        // A partition that failed answers at once, as Kafka's fetch does: the client learns it
        // (an offset out of range, a deleted topic) without waiting.
        let failed = results.iter().any(Result::is_err);
        if wait_ms > 0 && gathered < min_bytes && !failed {
            // Long-poll, from where the first pass stopped, every partition that answered
            // nothing; the first pass's answer stands for the others and for any poll that fails.
            let mut polls: FuturesUnordered<_> = results
                .iter()
                .enumerate()
                .filter_map(|(i, result)| {
                    let answer = result.as_ref().ok().filter(|a| a.records.is_empty())?;
                    let options = FetchOptions {
                        offset: answer.next_offset,
                        wait_ms,
                        ..options[i]
                    };
                    let poll = read(i, options);
                    Some(async move { (i, poll.await) })
                })
                .collect();
            while let Some((i, polled)) = polls.next().await {
                if let Ok(answer) = polled {
                    gathered += record_bytes(&answer);
                    results[i] = Ok(answer);
                    if gathered >= min_bytes {
                        break;
                    }
                }
            }
        }
        Ok(MultiFetchResponse {
            partitions: request
                .partitions
                .iter()
                .zip(results)
                .map(|(p, result)| PartitionOutcome::new(&p.topic, p.partition, result))
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafdo_types::api::PartitionFetch;

    fn fetch_of(n: usize, max_bytes: u32) -> MultiFetchRequest {
        MultiFetchRequest {
            partitions: (0..n)
                .map(|p| PartitionFetch {
                    topic: "t".into(),
                    partition: p as i32,
                    ..PartitionFetch::default()
                })
                .collect(),
            max_bytes,
            min_bytes: 1,
            ..MultiFetchRequest::default()
        }
    }

    #[test]
    fn partitions_are_bounded_and_named_once() {
        let names = |v: &[(&'static str, i32)]| check_partitions(v.iter().copied());
        assert!(names(&[("a", 0), ("a", 1), ("b", 0)]).is_ok());
        assert_eq!(names(&[]).unwrap_err().code, ErrorCode::InvalidRequest);
        assert_eq!(
            names(&[("a", 0), ("b", 1), ("a", 0)]).unwrap_err().code,
            ErrorCode::InvalidRequest
        );
        let many: Vec<(&str, i32)> = (0..=MAX_PARTITIONS_PER_REQUEST as i32)
            .map(|p| ("a", p))
            .collect();
        assert!(check_partitions(many[..MAX_PARTITIONS_PER_REQUEST].iter().copied()).is_ok());
        assert_eq!(
            check_partitions(many.into_iter()).unwrap_err().code,
            ErrorCode::InvalidRequest
        );
    }

    #[test]
    fn each_partition_brings_its_share_of_the_budget() {
        // Four partitions of a 16 MiB request: each its own 1 MiB default.
        let r = fetch_of(4, MAX_FETCH_MAX_BYTES);
        let o = partition_options(&r, &r.partitions[0]).unwrap();
        assert_eq!(o.max_bytes, DEFAULT_FETCH_MAX_BYTES);
        assert_eq!(o.max_records, DEFAULT_FETCH_MAX_RECORDS);
        // 200 partitions: 16 MiB / 200 each.
        let r = fetch_of(200, MAX_FETCH_MAX_BYTES);
        let o = partition_options(&r, &r.partitions[0]).unwrap();
        assert_eq!(o.max_bytes, MAX_FETCH_MAX_BYTES / 200);
        // A tiny budget still lets each bring the floor.
        let r = fetch_of(2, 10);
        let o = partition_options(&r, &r.partitions[1]).unwrap();
        assert_eq!(o.max_bytes, MIN_FETCH_SHARE_BYTES);
        // Zero limits and offsets past 2^53 are refused; large limits are capped.
        let mut r = fetch_of(1, MAX_FETCH_MAX_BYTES);
        r.partitions[0].max_records = Some(0);
        assert!(partition_options(&r, &r.partitions[0]).is_err());
        r.partitions[0].max_records = Some(u32::MAX);
        r.partitions[0].max_bytes = Some(u32::MAX);
        let o = partition_options(&r, &r.partitions[0]).unwrap();
        assert_eq!(
            (o.max_records, o.max_bytes),
            (MAX_FETCH_MAX_RECORDS, MAX_FETCH_MAX_BYTES)
        );
        r.partitions[0].offset = MAX_SAFE_INTEGER + 1;
        assert!(partition_options(&r, &r.partitions[0]).is_err());
    }
}
