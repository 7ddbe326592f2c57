//! The produce benchmark: Kafdo's produce against a bare append, side by side in one run.
//!
//! ```text
//! cargo run --release -p kafdo-e2e --bin bench-produce [-- --seconds 5 --threads 4 --cbor --url URL]
//! ```
//!
//! It starts the Worker without the inspector (`tests/bench/start-worker.mjs`, wrangler's
//! `unstable_startWorker`; `wrangler dev`'s inspector makes Durable Object calls 2-3x slower)
//! on a free loopback port with a fresh state directory, unless `--url` names a running one,
//! and measures records/s of 100-byte records:
//!
//! 1. One client thread, batches of 1, 100 and 1,000: a partition produce
//!    (`POST /v1/topics/{t}/partitions/0/records`) against the bare append
//!    (`POST /bench/bare-append/{n}`, a multi-row INSERT into a plain table with no producer
//!    state and no batch index) with the same JSON body. The ratio is the cost of Kafdo's
//!    bookkeeping, apart from the machine's speed.
//! 2. Several client threads, batches of 1,000, across 4 partitions: partition produce (thread
//!    i to partition i mod 4) against 4 bare objects, and topic produce
//!    (`POST /v1/topics/{t}/records`) with keyed records (the router splits each request over
//!    the 4 partitions) and with null keys (sticky: one partition per request). The issue's
//!    target is at least 100,000 records/s here.
//!
//! Each cell runs for a bounded time (`--seconds`, 5 by default) after a short warm-up, on a
//! fresh topic or object, and only to 127.0.0.1. Request bodies are encoded once per cell, so
//! the client's cost is sending bytes. Bodies are JSON (values in base64), or CBOR with `--cbor`
//! (values as byte strings: less to parse in the Worker).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use kafdo_e2e::{Client, Format, Launcher, Wrangler};
use kafdo_types::api::{PartitionProduceResponse, ProduceRequest, ProduceResponse};
use kafdo_types::ProduceRecord;
use serde::Deserialize;

/// The bytes of each record's value.
const RECORD_BYTES: usize = 100;
/// Partitions of the concurrent cells.
const PARTITIONS: i32 = 4;
/// Warm-up time of each cell, not counted.
const WARM_UP: Duration = Duration::from_millis(500);

/// `POST /bench/bare-append/{n}`'s answer.
#[derive(Deserialize)]
struct BareAppendResponse {
    base_offset: i64,
    last_offset: i64,
}

struct Options {
    seconds: f64,
    threads: usize,
    url: Option<String>,
    format: Format,
}

fn options() -> Options {
    let mut options = Options {
        seconds: 5.0,
        threads: 4,
        url: None,
        format: Format::Json,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| usage(&format!("{arg} needs a value")))
        };
        match arg.as_str() {
            "--seconds" => {
                options.seconds = value().parse().unwrap_or_else(|_| usage("bad --seconds"))
            }
            "--threads" => {
                options.threads = value().parse().unwrap_or_else(|_| usage("bad --threads"))
            }
            "--url" => options.url = Some(value()),
            "--cbor" => options.format = Format::Cbor,
            "-h" | "--help" => usage(""),
            other => usage(&format!("unknown argument {other}")),
        }
    }
    if !(0.5..=60.0).contains(&options.seconds) || !(1..=64).contains(&options.threads) {
        usage("--seconds must be 0.5..=60 and --threads 1..=64");
    }
    if let Some(url) = &options.url {
        if !url.starts_with("http://127.0.0.1:") && !url.starts_with("http://localhost:") {
            usage("--url must be a loopback address (http://127.0.0.1:PORT)");
        }
    }
    options
}

fn usage(problem: &str) -> ! {
    if !problem.is_empty() {
        eprintln!("bench-produce: {problem}");
    }
    eprintln!(
        "usage: bench-produce [--seconds S] [--threads N] [--cbor] [--url http://127.0.0.1:PORT]"
    );
    std::process::exit(2)
}

/// A produce body of `n` records of 100 bytes; keyed records get distinct keys.
fn body(format: Format, n: usize, keyed: bool, salt: u64) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(salt);
    let records = (0..n)
        .map(|i| {
            let mut value = vec![0u8; RECORD_BYTES];
            rng.fill(&mut value);
            ProduceRecord {
                key: keyed.then(|| format!("key-{salt}-{i}").into_bytes()),
                value: Some(value),
                ..ProduceRecord::default()
            }
        })
        .collect();
    format.encode(&ProduceRequest { records })
}

/// What one cell measured.
#[derive(Copy, Clone)]
struct Measure {
    records_per_s: f64,
    requests: u64,
    mean_latency_ms: f64,
}

/// Runs `threads` clients, each sending its own request again and again for `seconds`; each
/// answer is checked by `check`, which returns how many records it acknowledged.
fn run_cell(
    client: &Client,
    format: Format,
    seconds: f64,
    requests: Vec<(String, Vec<u8>)>,
    check: fn(&kafdo_e2e::Reply, usize) -> u64,
    batch: usize,
) -> Measure {
    let stop = AtomicBool::new(false);
    let counting = AtomicBool::new(false);
    let records = AtomicU64::new(0);
    let sent = AtomicU64::new(0);
    let busy_ns = AtomicU64::new(0);
    let started = std::thread::scope(|scope| {
        for (path, bytes) in &requests {
            let client = client.clone();
            let (stop, counting, records, sent, busy_ns) =
                (&stop, &counting, &records, &sent, &busy_ns);
            scope.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let began = Instant::now();
                    let reply = client.post_raw(path, format, bytes, &[]);
                    let acknowledged = check(&reply, batch);
                    if counting.load(Ordering::Relaxed) {
                        records.fetch_add(acknowledged, Ordering::Relaxed);
                        sent.fetch_add(1, Ordering::Relaxed);
                        busy_ns.fetch_add(began.elapsed().as_nanos() as u64, Ordering::Relaxed);
                    }
                }
            });
        }
        std::thread::sleep(WARM_UP);
        counting.store(true, Ordering::Relaxed);
        let started = Instant::now();
        std::thread::sleep(Duration::from_secs_f64(seconds));
        counting.store(false, Ordering::Relaxed);
        stop.store(true, Ordering::Relaxed);
        started
    });
    // Requests in flight at the end are not counted; the window is the counting time.
    let window = started.elapsed().as_secs_f64().min(seconds + 0.05);
    let requests = sent.load(Ordering::Relaxed);
    Measure {
        records_per_s: records.load(Ordering::Relaxed) as f64 / window,
        requests,
        mean_latency_ms: if requests == 0 {
            f64::NAN
        } else {
            busy_ns.load(Ordering::Relaxed) as f64 / requests as f64 / 1e6
        },
    }
}

fn check_partition(reply: &kafdo_e2e::Reply, batch: usize) -> u64 {
    let answer: PartitionProduceResponse = reply.expect(200);
    assert_eq!(answer.last_offset - answer.base_offset + 1, batch as i64);
    batch as u64
}

fn check_bare(reply: &kafdo_e2e::Reply, batch: usize) -> u64 {
    let answer: BareAppendResponse = reply.expect(200);
    assert_eq!(answer.last_offset - answer.base_offset + 1, batch as i64);
    batch as u64
}

fn check_topic(reply: &kafdo_e2e::Reply, batch: usize) -> u64 {
    let answer: ProduceResponse = reply.expect(200);
    assert_eq!(answer.offsets.len(), batch);
    batch as u64
}

fn rate(m: Measure) -> String {
    format!("{:>10.0}", m.records_per_s)
}

fn main() {
    let options = options();
    let owned;
    let base_url = match &options.url {
        Some(url) => url.clone(),
        None => {
            eprintln!("starting the Worker without the inspector ...");
            owned = Wrangler::start_with(Launcher::NoInspector);
            owned.url().to_string()
        }
    };
    let client = Client::new(&base_url);
    client.health();
    let run_id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let mut object = 0u64;
    let mut next_object = || {
        object += 1;
        // Fresh in every run, and far above the small numbers other tools use (666 is the
        // Worker's panic self-test).
        1_000_000 + (run_id % 10_000) as u64 * 100 + object
    };

    println!(
        "Kafdo produce benchmark: {RECORD_BYTES}-byte records, {}, {:.1} s per cell, {base_url}",
        options.format.media_type(),
        options.seconds
    );
    println!();
    println!("One client thread, one partition vs one bare-append object:");
    println!(
        "| batch | kafdo partition produce rec/s | bare append rec/s | kafdo / bare | kafdo ms/request | bare ms/request |"
    );
    println!("|------:|------------------------------:|------------------:|-------------:|-----------------:|----------------:|");
    for batch in [1usize, 100, 1000] {
        let topic = format!("bench-{run_id}-b{batch}");
        client.create_topic(&topic, 1);
        let bytes = body(options.format, batch, false, batch as u64);
        let kafdo = run_cell(
            &client,
            options.format,
            options.seconds,
            vec![(
                format!("/v1/topics/{topic}/partitions/0/records"),
                bytes.clone(),
            )],
            check_partition,
            batch,
        );
        let bare = run_cell(
            &client,
            options.format,
            options.seconds,
            vec![(format!("/bench/bare-append/{}", next_object()), bytes)],
            check_bare,
            batch,
        );
        println!(
            "| {batch:>5} | {} | {} | {:>12.2} | {:>16.2} | {:>15.2} |",
            rate(kafdo),
            rate(bare),
            kafdo.records_per_s / bare.records_per_s,
            kafdo.mean_latency_ms,
            bare.mean_latency_ms
        );
    }

    let threads = options.threads;
    let batch = 1000;
    println!();
    println!(
        "{threads} client threads, batches of {batch}, {PARTITIONS} partitions vs {PARTITIONS} bare-append objects:"
    );
    println!("| what | rec/s | requests | ms/request | kafdo / bare |");
    println!("|------|------:|---------:|-----------:|-------------:|");
    let topic = format!("bench-{run_id}-concurrent");
    client.create_topic(&topic, PARTITIONS);
    let bare_objects: Vec<u64> = (0..PARTITIONS).map(|_| next_object()).collect();
    let bare = run_cell(
        &client,
        options.format,
        options.seconds,
        (0..threads)
            .map(|t| {
                (
                    format!(
                        "/bench/bare-append/{}",
                        bare_objects[t % PARTITIONS as usize]
                    ),
                    body(options.format, batch, false, t as u64),
                )
            })
            .collect(),
        check_bare,
        batch,
    );
    let partition = run_cell(
        &client,
        options.format,
        options.seconds,
        (0..threads)
            .map(|t| {
                (
                    format!(
                        "/v1/topics/{topic}/partitions/{}/records",
                        t % PARTITIONS as usize
                    ),
                    body(options.format, batch, false, t as u64),
                )
            })
            .collect(),
        check_partition,
        batch,
    );
    let keyed = run_cell(
        &client,
        options.format,
        options.seconds,
        (0..threads)
            .map(|t| {
                (
                    format!("/v1/topics/{topic}/records"),
                    body(options.format, batch, true, t as u64),
                )
            })
            .collect(),
        check_topic,
        batch,
    );
    let sticky = run_cell(
        &client,
        options.format,
        options.seconds,
        (0..threads)
            .map(|t| {
                (
                    format!("/v1/topics/{topic}/records"),
                    body(options.format, batch, false, t as u64),
                )
            })
            .collect(),
        check_topic,
        batch,
    );
    for (what, m) in [
        ("bare append, 4 objects", bare),
        ("kafdo partition produce, 4 partitions", partition),
        ("kafdo topic produce, keyed (split over 4)", keyed),
        ("kafdo topic produce, null keys (sticky)", sticky),
    ] {
        println!(
            "| {what} | {} | {:>8} | {:>10.2} | {:>12.2} |",
            rate(m),
            m.requests,
            m.mean_latency_ms,
            m.records_per_s / bare.records_per_s
        );
    }
    let best = partition
        .records_per_s
        .max(keyed.records_per_s)
        .max(sticky.records_per_s);
    println!();
    println!(
        "target >= 100,000 rec/s of 100-byte records across 4 partitions with batches of 1,000: {} (best Kafdo cell {best:.0} rec/s)",
        if best >= 100_000.0 { "met" } else { "NOT met" }
    );
}
