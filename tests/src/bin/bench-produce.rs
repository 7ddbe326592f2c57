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
//! fresh topic or object, and only to 127.0.0.1. The cells of one comparison take turns in
//! 1-second slices, so the drifting load of a shared machine hits them alike. Request bodies are encoded once per cell, so
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

/// One cell: the requests its client threads send (one thread per request, each sending its
/// own again and again), and how an answer is checked (it returns the records acknowledged).
struct Cell {
    requests: Vec<(String, Vec<u8>)>,
    check: fn(&kafdo_e2e::Reply, usize) -> u64,
    batch: usize,
}

/// What one cell measured, summed over its slices.
#[derive(Copy, Clone, Default)]
struct Measure {
    records: u64,
    requests: u64,
    busy_ns: u64,
    window_s: f64,
}

impl Measure {
    fn records_per_s(&self) -> f64 {
        self.records as f64 / self.window_s
    }

    fn mean_latency_ms(&self) -> f64 {
        if self.requests == 0 {
            f64::NAN
        } else {
            self.busy_ns as f64 / self.requests as f64 / 1e6
        }
    }
}

/// Runs the cells that are compared with each other in 1-second slices, taking turns, for
/// `seconds` each: this machine is shared and its load drifts, and taking turns spreads the
/// drift over every cell instead of favouring the one that ran in a quiet moment.
fn compare(client: &Client, format: Format, seconds: f64, cells: &[Cell]) -> Vec<Measure> {
    let slices = seconds.ceil().max(1.0) as usize;
    let slice_s = seconds / slices as f64;
    let mut measures = vec![Measure::default(); cells.len()];
    for slice in 0..slices {
        for (cell, measure) in cells.iter().zip(measures.iter_mut()) {
            // Only the first slice of a cell warms up (fresh object, first wasm calls).
            let warm_up = if slice == 0 { WARM_UP } else { Duration::ZERO };
            let m = run_slice(client, format, slice_s, warm_up, cell);
            measure.records += m.records;
            measure.requests += m.requests;
            measure.busy_ns += m.busy_ns;
            measure.window_s += m.window_s;
        }
    }
    measures
}

/// One slice of a cell: its threads send for `seconds` after `warm_up`; requests answered
/// inside the window are counted.
fn run_slice(
    client: &Client,
    format: Format,
    seconds: f64,
    warm_up: Duration,
    cell: &Cell,
) -> Measure {
    let stop = AtomicBool::new(false);
    let counting = AtomicBool::new(false);
    let records = AtomicU64::new(0);
    let sent = AtomicU64::new(0);
    let busy_ns = AtomicU64::new(0);
    let window = std::thread::scope(|scope| {
        for (path, bytes) in &cell.requests {
            let client = client.clone();
            let (stop, counting, records, sent, busy_ns) =
                (&stop, &counting, &records, &sent, &busy_ns);
            let (check, batch) = (cell.check, cell.batch);
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
        std::thread::sleep(warm_up);
        counting.store(true, Ordering::Relaxed);
        let started = Instant::now();
        std::thread::sleep(Duration::from_secs_f64(seconds));
        counting.store(false, Ordering::Relaxed);
        let window = started.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        window
    });
    Measure {
        records: records.load(Ordering::Relaxed),
        requests: sent.load(Ordering::Relaxed),
        busy_ns: busy_ns.load(Ordering::Relaxed),
        window_s: window,
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
    format!("{:>10.0}", m.records_per_s())
}

fn main() {
    let options = options();
    let owned = options.url.is_none().then(|| {
        eprintln!("starting the Worker without the inspector ...");
        Wrangler::start_with(Launcher::NoInspector)
    });
    let base_url = match (&options.url, &owned) {
        (Some(url), _) => url.clone(),
        (None, Some(wrangler)) => wrangler.url().to_string(),
        (None, None) => unreachable!("started above"),
    };
    let measured = std::panic::catch_unwind(|| run(&options, &base_url));
    if measured.is_err() {
        if let Some(wrangler) = &owned {
            eprintln!(
                "the benchmark failed; the Worker's output:\n{}",
                wrangler.output_tail()
            );
        }
        drop(owned);
        std::process::exit(1);
    }
}

fn run(options: &Options, base_url: &str) {
    let client = Client::new(base_url);
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
        let cells = [
            Cell {
                requests: vec![(
                    format!("/v1/topics/{topic}/partitions/0/records"),
                    bytes.clone(),
                )],
                check: check_partition,
                batch,
            },
            Cell {
                requests: vec![(format!("/bench/bare-append/{}", next_object()), bytes)],
                check: check_bare,
                batch,
            },
        ];
        let [kafdo, bare] = compare(&client, options.format, options.seconds, &cells)[..] else {
            unreachable!("two cells measured")
        };
        println!(
            "| {batch:>5} | {} | {} | {:>12.2} | {:>16.2} | {:>15.2} |",
            rate(kafdo),
            rate(bare),
            kafdo.records_per_s() / bare.records_per_s(),
            kafdo.mean_latency_ms(),
            bare.mean_latency_ms()
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
    let per_thread = |path: &dyn Fn(usize) -> String, keyed: bool| -> Vec<(String, Vec<u8>)> {
        (0..threads)
            .map(|t| (path(t), body(options.format, batch, keyed, t as u64)))
            .collect()
    };
    let cells = [
        Cell {
            requests: per_thread(
                &|t| {
                    format!(
                        "/bench/bare-append/{}",
                        bare_objects[t % PARTITIONS as usize]
                    )
                },
                false,
            ),
            check: check_bare,
            batch,
        },
        Cell {
            requests: per_thread(
                &|t| {
                    format!(
                        "/v1/topics/{topic}/partitions/{}/records",
                        t % PARTITIONS as usize
                    )
                },
                false,
            ),
            check: check_partition,
            batch,
        },
        Cell {
            requests: per_thread(&|_| format!("/v1/topics/{topic}/records"), true),
            check: check_topic,
            batch,
        },
        Cell {
            requests: per_thread(&|_| format!("/v1/topics/{topic}/records"), false),
            check: check_topic,
            batch,
        },
    ];
    let measures = compare(&client, options.format, options.seconds, &cells);
    let bare = measures[0];
    let names = [
        "bare append, 4 objects",
        "kafdo partition produce, 4 partitions",
        "kafdo topic produce, keyed (split over 4)",
        "kafdo topic produce, null keys (sticky)",
    ];
    for (what, m) in names.iter().zip(&measures) {
        println!(
            "| {what} | {} | {:>8} | {:>10.2} | {:>12.2} |",
            rate(*m),
            m.requests,
            m.mean_latency_ms(),
            m.records_per_s() / bare.records_per_s()
        );
    }
    let best = measures[1..]
        .iter()
        .map(Measure::records_per_s)
        .fold(0.0, f64::max);
    println!();
    println!(
        "target >= 100,000 rec/s of 100-byte records across 4 partitions with batches of 1,000: {} (best Kafdo cell {best:.0} rec/s)",
        if best >= 100_000.0 { "met" } else { "NOT met" }
    );
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        println!(
            "load average at the end (1, 5, 15 min): {} (the machine has {} cores)",
            load.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" "),
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
    }
}
