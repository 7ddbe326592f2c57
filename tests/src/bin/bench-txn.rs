//! The benchmark of issues 3 and 4: idempotent produce against plain produce, and transactional
//! produce against non-transactional produce, each pair in one run, as ratios.
//!
//! ```text
//! cargo run --release -p kafdo-e2e --bin bench-txn [-- --seconds 6 --url URL]
//! ```
//!
//! Like `bench-produce`, it starts the Worker without the inspector on a free loopback port
//! with a fresh state directory, unless `--url` names a running one. One client thread, records
//! of 100 bytes, JSON bodies encoded once per cell. The two cells of a pair take turns in
//! 1-second slices, so the drifting load of a shared machine hits them alike.
//!
//! 1. **Idempotent vs plain**, batches of 100 and of 1,000: the partition produce with
//!    `producer_id`/`producer_epoch`/`base_sequence` (sequences advancing) against the same
//!    body without them.
//! 2. **Transactional vs non-transactional**, batches of 1,000: a transactional producer that
//!    registers the partition, writes batches, and commits every 100 ms, against plain batches
//!    of 1,000. Counted: records acknowledged (for the transactional cell, only those of
//!    committed transactions).

use std::time::{Duration, Instant};

use kafdo_e2e::{Client, Format, Launcher, Wrangler};
use kafdo_types::api::{InitProducerRequest, InitProducerResponse, PartitionProduceRequest};
use kafdo_types::txn::{AddPartitionsRequest, EndTxnRequest, EndTxnResponse, TopicPartition};
use kafdo_types::ProduceRecord;

const RECORD_BYTES: usize = 100;
const COMMIT_EVERY: Duration = Duration::from_millis(100);

fn records(n: usize, salt: u64) -> Vec<ProduceRecord> {
    let mut rng = fastrand::Rng::with_seed(salt);
    (0..n)
        .map(|_| {
            let mut value = vec![0u8; RECORD_BYTES];
            rng.fill(&mut value);
            ProduceRecord::value(value)
        })
        .collect()
}

/// A cell that runs for one slice and returns the records it got acknowledged.
trait Cell {
    fn slice(&mut self, client: &Client, until: Instant) -> u64;
}

/// Partition produce, with or without an idempotent producer.
struct Produce {
    topic: String,
    batch: usize,
    producer: Option<(i64, i32)>,
    sequence: i32,
    records: Vec<ProduceRecord>,
}

impl Cell for Produce {
    fn slice(&mut self, client: &Client, until: Instant) -> u64 {
        let mut acked = 0;
        while Instant::now() < until {
            let req = PartitionProduceRequest {
                producer_id: self.producer.map(|p| p.0),
                producer_epoch: self.producer.map(|p| p.1),
                base_sequence: self.producer.map(|_| self.sequence),
                transactional: false,
                records: self.records.clone(),
            };
            let body = Format::Json.encode(&req);
            let reply = client.post_raw(
                &format!("/v1/topics/{}/partitions/0/records", self.topic),
                Format::Json,
                &body,
                &[],
            );
            reply.expect_status(200);
            self.sequence = self.sequence.wrapping_add(self.batch as i32);
            acked += self.batch as u64;
        }
        acked
    }
}

/// A transactional producer committing every 100 ms.
struct Transactional {
    topic: String,
    id: String,
    producer_id: i64,
    producer_epoch: i32,
    records: Vec<ProduceRecord>,
    commits: u64,
}

impl Cell for Transactional {
    fn slice(&mut self, client: &Client, until: Instant) -> u64 {
        let mut acked = 0;
        while Instant::now() < until {
            let started = Instant::now();
            client
                .post(
                    &format!("/v1/transactions/{}/partitions", self.id),
                    &AddPartitionsRequest {
                        producer_id: self.producer_id,
                        producer_epoch: self.producer_epoch,
                        partitions: vec![TopicPartition {
                            topic: self.topic.clone(),
                            partition: 0,
                        }],
                    },
                    &[],
                )
                .expect_status(200);
            let mut sequence = 0;
            let mut written = 0;
            while started.elapsed() < COMMIT_EVERY {
                let req = PartitionProduceRequest {
                    producer_id: Some(self.producer_id),
                    producer_epoch: Some(self.producer_epoch),
                    base_sequence: Some(sequence),
                    transactional: true,
                    records: self.records.clone(),
                };
                client
                    .post_raw(
                        &format!("/v1/topics/{}/partitions/0/records", self.topic),
                        Format::Json,
                        &Format::Json.encode(&req),
                        &[],
                    )
                    .expect_status(200);
                sequence += self.records.len() as i32;
                written += self.records.len() as u64;
            }
            let end: EndTxnResponse = client
                .post(
                    &format!("/v1/transactions/{}/commit", self.id),
                    &EndTxnRequest {
                        keep_epoch: false,
                        producer_id: self.producer_id,
                        producer_epoch: self.producer_epoch,
                    },
                    &[],
                )
                .expect(200);
            self.producer_id = end.producer_id;
            self.producer_epoch = end.producer_epoch;
            self.commits += 1;
            acked += written;
        }
        acked
    }
}

/// Runs two cells in turns of 1-second slices for `seconds` each; records/s of each.
fn compare(client: &Client, seconds: u64, a: &mut dyn Cell, b: &mut dyn Cell) -> (f64, f64) {
    // Warm-up: objects created, code paths hot.
    a.slice(client, Instant::now() + Duration::from_millis(300));
    b.slice(client, Instant::now() + Duration::from_millis(300));
    let (mut records, mut time) = ([0u64; 2], [0f64; 2]);
    for _ in 0..seconds {
        for (i, cell) in [a as &mut dyn Cell, b].into_iter().enumerate() {
            let started = Instant::now();
            records[i] += cell.slice(client, started + Duration::from_secs(1));
            time[i] += started.elapsed().as_secs_f64();
        }
    }
    (records[0] as f64 / time[0], records[1] as f64 / time[1])
}

fn main() {
    let mut seconds = 6;
    let mut url = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => {
                seconds = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .expect("--seconds N")
            }
            "--url" => url = args.next(),
            _ => {
                eprintln!("usage: bench-txn [--seconds N] [--url http://127.0.0.1:PORT]");
                std::process::exit(2);
            }
        }
    }
    let wrangler = url
        .is_none()
        .then(|| Wrangler::start_with(Launcher::NoInspector));
    let client = match (&url, &wrangler) {
        (Some(url), _) => Client::new(url),
        (None, Some(w)) => w.client(),
        _ => unreachable!(),
    };
    let run = fastrand::u64(..);
    println!("bench-txn: {seconds} s per cell, 1 client thread, 100-byte records");

    for batch in [100, 1_000] {
        let (plain_topic, idem_topic) = (
            format!("plain-{run}-{batch}"),
            format!("idem-{run}-{batch}"),
        );
        client.create_topic(&plain_topic, 1);
        client.create_topic(&idem_topic, 1);
        let p = client.init_producer();
        let mut plain = Produce {
            topic: plain_topic,
            batch,
            producer: None,
            sequence: 0,
            records: records(batch, 1),
        };
        let mut idem = Produce {
            topic: idem_topic,
            batch,
            producer: Some((p.producer_id, p.producer_epoch)),
            sequence: 0,
            records: records(batch, 2),
        };
        let (a, b) = compare(&client, seconds, &mut plain, &mut idem);
        println!(
            "batches of {batch:>5}: plain {a:>9.0} records/s, idempotent {b:>9.0} records/s, \
             idempotent/plain = {:.2}",
            b / a
        );
    }

    let (plain_topic, txn_topic) = (format!("plain-{run}-txn"), format!("txn-{run}"));
    client.create_topic(&plain_topic, 1);
    client.create_topic(&txn_topic, 1);
    let id = format!("bench-{run}");
    let init: InitProducerResponse = client
        .post(
            "/v1/producers",
            &InitProducerRequest {
                transactional_id: Some(id.clone()),
                transaction_timeout_ms: None,
            },
            &[],
        )
        .expect(200);
    let mut plain = Produce {
        topic: plain_topic,
        batch: 1_000,
        producer: None,
        sequence: 0,
        records: records(1_000, 3),
    };
    let mut txn = Transactional {
        topic: txn_topic,
        id,
        producer_id: init.producer_id,
        producer_epoch: init.producer_epoch,
        records: records(1_000, 4),
        commits: 0,
    };
    let (a, b) = compare(&client, seconds, &mut plain, &mut txn);
    println!(
        "batches of  1000: non-transactional {a:>9.0} records/s, transactional (commit every \
         100 ms) {b:>9.0} records/s, transactional/non-transactional = {:.2} ({} commits)",
        b / a,
        txn.commits
    );
}
