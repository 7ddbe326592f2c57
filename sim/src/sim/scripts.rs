//! The ingestion clients' scripts: keyed (`Idempotency-Key`) produce requests, some reusing the
//! previous key at once (refused: the key is taken) or after its TTL (a new request). Each entry
//! names where its records will land, as the broker routes them
//! ([`kafdo_broker::ingest::keyed_plan`]), so the history can say which records each request
//! wrote.

use kafdo_broker::ingest::{fingerprint, keyed_plan};
use kafdo_types::api::ProduceRequest;
use kafdo_types::ProduceRecord;

use super::clients::IngestEntry;
use crate::history::IngestRecord;
use crate::rng::Rng;

/// The longest a keyed request can take to reach its key's object after the client sent it:
/// the client's request to the Worker (delayed at most 5 s), the broker's topic lookup and its
/// producer-id block (each a call whose answer, when it comes in time, took at most 5 s each
/// way), and the `begin` (at most 5 s), plus a margin. A client retries a key only while it is
/// younger than the key's TTL minus this.
pub const MAX_BEGIN_LATENCY_MS: i64 = 32_000;

/// A script of `count` keyed requests for ingestion client `client` to `topic`: 1 to 4
/// records each, routed by explicit partition, record key or the sticky partition; now and then
/// the previous key again with a new body, at once (refused: the key is taken) or after the
/// key's TTL (a new request).
pub fn script(
    rng: &mut Rng,
    client: u32,
    topic: &str,
    partitions: i32,
    count: u32,
    ttl_ms: i64,
) -> Vec<IngestEntry> {
    let mut entries: Vec<IngestEntry> = Vec::new();
    for n in 0..count {
        let (key, wait_ms) = match entries.last() {
            Some(last) if rng.chance(100) => (last.key.clone(), 0),
            Some(last) if rng.chance(100) => (last.key.clone(), ttl_ms + rng.range(100, 3_000)),
            _ => (format!("key-{client}-{n}"), 0),
        };
        let records: Vec<ProduceRecord> = (0..rng.range(1, 4))
            .map(|j| {
                let mut record = ProduceRecord::value(format!("i{client}.{n}.{j}").into_bytes());
                match rng.below(10) {
                    0..=4 => {
                        record.partition = Some(rng.range(0, i64::from(partitions) - 1) as i32)
                    }
                    5..=7 => record.key = Some(format!("rk{}", rng.below(100)).into_bytes()),
                    _ => {}
                }
                record
            })
            .collect();
        let request = ProduceRequest { records };
        let plan = keyed_plan(
            &fingerprint(topic, &request),
            topic,
            request.records.clone(),
            partitions,
        )
        .expect("scripts name partitions of the topic");
        let routed = request
            .records
            .iter()
            .zip(&plan.slots)
            .map(|(r, (b, _))| IngestRecord {
                partition: plan.batches[*b].0,
                value: String::from_utf8(r.value.clone().expect("a value")).expect("utf-8"),
            })
            .collect();
        entries.push(IngestEntry {
            key,
            request,
            routed,
            wait_ms,
        });
    }
    entries
}
