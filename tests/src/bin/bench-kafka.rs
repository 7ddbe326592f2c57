//! The Kafka benchmark: librdkafka through the gateway beside Kafdo's own HTTP CBOR produce of
//! the same records, in one run.
//!
//! ```text
//! cargo run --release -p kafdo-e2e --bin bench-kafka [-- --seconds 5 --rounds 3]
//! ```
//!
//! It starts the Worker without the inspector (as `bench-produce` does) and a `kafdo-gateway`
//! in front of it (`KAFDO_GATEWAY_BIN`; `make bench` builds the release one), both on free
//! loopback ports, and measures 100-byte records on topics of 4 partitions:
//!
//! 1. Produce, records/s: HTTP CBOR partition produce (4 client threads, batches of 1,000, one
//!    partition each) against confluent-kafka's librdkafka producer through the gateway
//!    (`tests/kafka/bench.py`: linger 5 ms, batching on), plain, idempotent and transactional
//!    (committing every 100 ms; the records of committed transactions count). The cells take
//!    turns, `--rounds` times `--seconds` each, so the drifting load of a shared machine hits
//!    them alike; the ratios are to the HTTP cell and to plain.
//! 2. Consume, records/s: librdkafka reading everything the plain cells wrote.
//! 3. Produce-to-consume latency through the gateway: one record every 10 ms, p50 and p99.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use kafdo_e2e::{Format, Gateway, Launcher, Tool, Wrangler};
use kafdo_types::api::{PartitionProduceRequest, PartitionProduceResponse};
use kafdo_types::ProduceRecord;
use serde_json::{json, Value};

/// How often the transactional producer commits.
const COMMIT_MS: u64 = 100;
const PARTITIONS: i32 = 4;
const BATCH: usize = 1_000;
const RECORD_BYTES: usize = 100;

fn main() {
    let (mut seconds, mut rounds) = (5.0_f64, 3_usize);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args
            .next()
            .unwrap_or_else(|| usage(&format!("{arg} needs a value")));
        match arg.as_str() {
            "--seconds" => seconds = value.parse().unwrap_or_else(|_| usage("bad --seconds")),
            "--rounds" => rounds = value.parse().unwrap_or_else(|_| usage("bad --rounds")),
            other => usage(&format!("unknown argument {other}")),
        }
    }
    if !(0.5..=60.0).contains(&seconds) || !(1..=10).contains(&rounds) {
        usage("--seconds must be 0.5..=60 and --rounds 1..=10");
    }
    let wrangler = Wrangler::start_with(Launcher::NoInspector);
    let gateway = Gateway::start(wrangler.url());
    let client = wrangler.client();
    let http_topic = kafdo_e2e::unique_topic("bench-http");
    let plain_topic = kafdo_e2e::unique_topic("bench-kafka");
    let idempotent_topic = kafdo_e2e::unique_topic("bench-kafka-idem");
    let txn_topic = kafdo_e2e::unique_topic("bench-kafka-txn");
    let latency_topic = kafdo_e2e::unique_topic("bench-latency");
    for topic in [
        &http_topic,
        &plain_topic,
        &idempotent_topic,
        &txn_topic,
        &latency_topic,
    ] {
        client.create_topic(topic, PARTITIONS);
    }

    let mut http = (0u64, 0f64);
    let mut plain = (0u64, 0f64);
    let mut idempotent = (0u64, 0f64);
    let mut transactional = (0u64, 0f64);
    for round in 0..rounds {
        let m = http_produce(&wrangler, &http_topic, seconds);
        http = (http.0 + m.0, http.1 + m.1);
        let m = kafka_produce(&gateway, &plain_topic, seconds, Mode::Plain);
        plain = (plain.0 + m.0, plain.1 + m.1);
        let m = kafka_produce(&gateway, &idempotent_topic, seconds, Mode::Idempotent);
        idempotent = (idempotent.0 + m.0, idempotent.1 + m.1);
        let m = kafka_produce(&gateway, &txn_topic, seconds, Mode::Transactional);
        transactional = (transactional.0 + m.0, transactional.1 + m.1);
        eprintln!("round {}/{rounds} done", round + 1);
    }
    let rate = |(records, seconds): (u64, f64)| records as f64 / seconds;
    println!("produce, 100-byte records, {PARTITIONS} partitions, {rounds} x {seconds} s each:");
    println!(
        "  HTTP CBOR partition produce (batches of {BATCH}): {:>9.0} records/s",
        rate(http)
    );
    for (name, m) in [
        ("librdkafka via gateway, plain", plain),
        ("librdkafka via gateway, idempotent", idempotent),
        ("librdkafka via gateway, transactional", transactional),
    ] {
        println!(
            "  {name:<40} {:>9.0} records/s  ratio to HTTP {:.2}, to plain {:.2}",
            rate(m),
            rate(m) / rate(http),
            rate(m) / rate(plain)
        );
    }

    let consumed: Value = Tool::python("bench.py")
        .json_stdin(
            &json!({"bootstrap": gateway.bootstrap(), "topic": plain_topic,
            "mode": "consume", "partitions": PARTITIONS, "records": plain.0}),
        )
        .timeout(Duration::from_secs(180))
        .run_json();
    let consumed_rate =
        consumed["records"].as_f64().unwrap_or(0.0) / consumed["seconds"].as_f64().unwrap_or(1.0);
    println!(
        "consume: librdkafka via gateway {:>9.0} records/s ({} records)",
        consumed_rate, consumed["records"]
    );

    let latency: Value = Tool::python("bench.py")
        .json_stdin(
            &json!({"bootstrap": gateway.bootstrap(), "topic": latency_topic,
            "mode": "latency", "count": 500, "interval_ms": 10}),
        )
        .timeout(Duration::from_secs(180))
        .run_json();
    println!(
        "produce-to-consume latency via gateway: p50 {:.1} ms, p99 {:.1} ms ({} records)",
        latency["p50_ms"].as_f64().unwrap_or(f64::NAN),
        latency["p99_ms"].as_f64().unwrap_or(f64::NAN),
        latency["received"]
    );
}

fn usage(problem: &str) -> ! {
    eprintln!("bench-kafka: {problem}\nusage: bench-kafka [--seconds S] [--rounds N]");
    std::process::exit(2)
}

/// Four threads, each posting CBOR batches of [`BATCH`] records to its own partition for
/// `seconds` after a short warm-up; records acknowledged inside the window, and the window.
fn http_produce(wrangler: &Wrangler, topic: &str, seconds: f64) -> (u64, f64) {
    let client = wrangler.client();
    let body = Format::Cbor.encode(&PartitionProduceRequest {
        records: (0..BATCH)
            .map(|_| ProduceRecord {
                value: Some(vec![7u8; RECORD_BYTES]),
                ..ProduceRecord::default()
            })
            .collect(),
        ..PartitionProduceRequest::default()
    });
    let stop = AtomicBool::new(false);
    let counting = AtomicBool::new(false);
    let records = AtomicU64::new(0);
    let window = std::thread::scope(|scope| {
        for partition in 0..PARTITIONS {
            let (client, body, stop, counting, records) =
                (client.clone(), &body, &stop, &counting, &records);
            let path = format!("/v1/topics/{topic}/partitions/{partition}/records");
            scope.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let answer: PartitionProduceResponse =
                        client.post_raw(&path, Format::Cbor, body, &[]).expect(200);
                    assert_eq!(answer.last_offset - answer.base_offset + 1, BATCH as i64);
                    if counting.load(Ordering::Relaxed) {
                        records.fetch_add(BATCH as u64, Ordering::Relaxed);
                    }
                }
            });
        }
        std::thread::sleep(Duration::from_millis(500));
        counting.store(true, Ordering::Relaxed);
        let started = Instant::now();
        std::thread::sleep(Duration::from_secs_f64(seconds));
        counting.store(false, Ordering::Relaxed);
        let window = started.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        window
    });
    (records.load(Ordering::Relaxed), window)
}

/// How librdkafka produces in a benchmark run.
#[derive(Copy, Clone)]
enum Mode {
    Plain,
    Idempotent,
    /// Transactional, committing every 100 ms.
    Transactional,
}

fn kafka_produce(gateway: &Gateway, topic: &str, seconds: f64, mode: Mode) -> (u64, f64) {
    let mut spec = json!({"bootstrap": gateway.bootstrap(), "topic": topic, "mode": "produce",
        "seconds": seconds, "partitions": PARTITIONS});
    match mode {
        Mode::Plain => {}
        Mode::Idempotent => spec["idempotent"] = json!(true),
        Mode::Transactional => {
            spec["transactional_id"] = json!(format!("{topic}-txn"));
            spec["commit_ms"] = json!(COMMIT_MS);
        }
    }
    let result: Value = Tool::python("bench.py")
        .json_stdin(&spec)
        .timeout(Duration::from_secs_f64(seconds + 120.0))
        .run_json();
    (
        result["records"].as_u64().expect("records"),
        result["seconds"].as_f64().expect("seconds"),
    )
}
