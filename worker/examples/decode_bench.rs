//! What total decoding costs: a produce body of 1,000 (and 10,000) 100-byte records decoded
//! by `kafdo_worker::codec::decode` (parse to a bounded value tree, then to the API type) and
//! directly by serde_json / ciborium (one pass, no limits), alternating in rounds, in one run.
//!
//! ```text
//! cargo run --release -p kafdo-worker --example decode_bench
//! ```

use std::time::{Duration, Instant};

use kafdo_types::api::ProduceRequest;
use kafdo_types::ProduceRecord;
use kafdo_worker::codec::{decode, encode, Format};

fn body(records: usize) -> ProduceRequest {
    ProduceRequest {
        records: (0..records)
            .map(|i| ProduceRecord::keyed(format!("key-{i}").into_bytes(), vec![b'v'; 100]))
            .collect(),
    }
}

/// Decodes per second over `for_ms` of repeated runs.
fn rate(for_ms: u64, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_millis(for_ms) {
        f();
        n += 1;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    for records in [1_000, 10_000] {
        let request = body(records);
        let json = encode(Format::Json, &request);
        let cbor = encode(Format::Cbor, &request);
        let (mut total_json, mut direct_json, mut total_cbor, mut direct_cbor) =
            (0.0, 0.0, 0.0, 0.0);
        let rounds = 5;
        for _ in 0..rounds {
            total_json += rate(400, || {
                let r: ProduceRequest = decode(Format::Json, &json).unwrap();
                assert_eq!(r.records.len(), records);
            });
            direct_json += rate(400, || {
                let r: ProduceRequest = serde_json::from_slice(&json).unwrap();
                assert_eq!(r.records.len(), records);
            });
            total_cbor += rate(400, || {
                let r: ProduceRequest = decode(Format::Cbor, &cbor).unwrap();
                assert_eq!(r.records.len(), records);
            });
            direct_cbor += rate(400, || {
                let r: ProduceRequest = ciborium::from_reader(&cbor[..]).unwrap();
                assert_eq!(r.records.len(), records);
            });
        }
        let per = |rate: f64| 1_000.0 * rounds as f64 / rate;
        println!(
            "{records} records: JSON ({} KiB) total {:.2} ms, direct {:.2} ms, total/direct {:.2}; \
             CBOR ({} KiB) total {:.2} ms, direct {:.2} ms, total/direct {:.2}",
            json.len() / 1024,
            per(total_json),
            per(direct_json),
            direct_json / total_json,
            cbor.len() / 1024,
            per(total_cbor),
            per(direct_cbor),
            direct_cbor / total_cbor,
        );
    }
}
