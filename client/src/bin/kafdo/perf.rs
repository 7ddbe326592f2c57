//! `kafdo perf produce|consume`: throughput and latency, in the spirit of Kafka's
//! `kafka-producer-perf-test` and `kafka-consumer-perf-test`.
//!
//! `perf produce` sends `--records` keyless records of `--record-size` bytes through the
//! batching idempotent [`Producer`] as fast as it accepts them, measures each record's latency
//! from `send` to acknowledgement, prints a progress line every 5 seconds, and ends with one
//! summary line such as
//!
//! ```text
//! 100000 records sent, 123456.7 records/s (11.77 MB/s), 45.1 ms avg latency, 120.0 ms max latency, 40 ms p50, 90 ms p95, 110 ms p99, 118 ms p99.9
//! ```
//!
//! `perf consume` reads `--records` records from the beginning of every partition and ends with
//! a line giving MB, MB/s, records and records/s.

use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use futures_util::stream::{FuturesUnordered, StreamExt};
use kafdo_client::{
    Client, Consumer, ConsumerConfig, DeliveryFuture, Error, OffsetReset, Producer, ProducerConfig,
};
use tokio::sync::mpsc;

/// How often a long run prints a progress line.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(5);

#[derive(Subcommand, Debug)]
pub enum PerfCommand {
    /// Produce N records of a given size and report throughput and latency percentiles.
    Produce(ProduceArgs),
    /// Consume N records from the beginning and report throughput.
    Consume(ConsumeArgs),
}

#[derive(Args, Debug)]
pub struct ProduceArgs {
    /// The topic (it must exist).
    topic: String,
    /// How many records to send.
    #[arg(long)]
    records: u64,
    /// The size of each record's value, in bytes.
    #[arg(long, value_name = "BYTES")]
    record_size: usize,
    /// How long a batch waits for more records, in ms.
    #[arg(long, default_value_t = 5)]
    linger_ms: u64,
    /// The most bytes in one batch.
    #[arg(long, default_value_t = 1024 * 1024)]
    batch_size: usize,
    /// The most records in one batch (at most 10,000).
    #[arg(long, default_value_t = 10_000)]
    max_batch_records: usize,
    /// The most records sent and not yet acknowledged.
    #[arg(long, default_value_t = 200_000)]
    max_buffered_records: usize,
    /// Produce without a producer id.
    #[arg(long)]
    no_idempotence: bool,
    /// Send at most this many records per second (-1: as fast as possible), to measure
    /// latency at a given load.
    #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
    throughput: i64,
}

#[derive(Args, Debug)]
pub struct ConsumeArgs {
    /// The topic.
    topic: String,
    /// How many records to read.
    #[arg(long)]
    records: u64,
    /// The most records one fetch of one partition returns.
    #[arg(long, default_value_t = 10_000)]
    fetch_max_records: u32,
    /// Give up when no record arrives for this long, in ms.
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
}

pub async fn run(client: &Client, command: PerfCommand) -> Result<(), Error> {
    match command {
        PerfCommand::Produce(args) => produce(client, args).await,
        PerfCommand::Consume(args) => consume(client, args).await,
    }
}

/// Latencies and counts of a run, in microseconds.
struct Stats {
    started: Instant,
    latencies_us: Vec<u32>,
    bytes: u64,
    errors: u64,
    window_started: Instant,
    window_records: u64,
    window_latency_us: u64,
    window_max_us: u32,
}

impl Stats {
    fn new(records: u64) -> Self {
        let now = Instant::now();
        Self {
            started: now,
            latencies_us: Vec::with_capacity(usize::try_from(records).unwrap_or(0)),
            bytes: 0,
            errors: 0,
            window_started: now,
            window_records: 0,
            window_latency_us: 0,
            window_max_us: 0,
        }
    }

    fn record(&mut self, latency: Duration, bytes: usize) {
        let us = u32::try_from(latency.as_micros()).unwrap_or(u32::MAX);
        self.latencies_us.push(us);
        self.bytes += bytes as u64;
        self.window_records += 1;
        self.window_latency_us += u64::from(us);
        self.window_max_us = self.window_max_us.max(us);
        if self.window_started.elapsed() >= PROGRESS_INTERVAL {
            let secs = self.window_started.elapsed().as_secs_f64();
            eprintln!(
                "{} records sent, {:.1} records/s ({:.2} MB/s), {:.1} ms avg latency, {:.1} ms max latency.",
                self.window_records,
                self.window_records as f64 / secs,
                (self.window_records as f64 * bytes as f64) / secs / 1e6,
                self.window_latency_us as f64 / self.window_records as f64 / 1e3,
                f64::from(self.window_max_us) / 1e3,
            );
            self.window_started = Instant::now();
            self.window_records = 0;
            self.window_latency_us = 0;
            self.window_max_us = 0;
        }
    }

    fn summary(&mut self) -> String {
        let secs = self.started.elapsed().as_secs_f64();
        let n = self.latencies_us.len();
        self.latencies_us.sort_unstable();
        let pct = |p: f64| -> f64 {
            if n == 0 {
                return 0.0;
            }
            let i = ((p * n as f64).ceil() as usize).clamp(1, n) - 1;
            f64::from(self.latencies_us[i]) / 1e3
        };
        let avg = if n == 0 {
            0.0
        } else {
            self.latencies_us.iter().map(|&l| u64::from(l)).sum::<u64>() as f64 / n as f64 / 1e3
        };
        format!(
            "{n} records sent, {:.1} records/s ({:.2} MB/s), {avg:.1} ms avg latency, {:.1} ms max latency, {:.0} ms p50, {:.0} ms p95, {:.0} ms p99, {:.0} ms p99.9",
            n as f64 / secs,
            self.bytes as f64 / secs / 1e6,
            self.latencies_us.last().map_or(0.0, |&l| f64::from(l) / 1e3),
            pct(0.50),
            pct(0.95),
            pct(0.99),
            pct(0.999),
        )
    }
}

async fn produce(client: &Client, args: ProduceArgs) -> Result<(), Error> {
    let producer = Producer::new(
        client.clone(),
        ProducerConfig {
            linger_ms: args.linger_ms,
            batch_size: args.batch_size,
            max_batch_records: args.max_batch_records,
            max_buffered_records: args.max_buffered_records,
            enable_idempotence: !args.no_idempotence,
            ..ProducerConfig::default()
        },
    );
    // Learn the topic and the producer id before the clock starts.
    producer.partition_count(&args.topic).await?;
    producer.identity().await?;

    let value: Vec<u8> = (0..args.record_size)
        .map(|i| b'a' + (i % 26) as u8)
        .collect();
    let (deliveries, mut acks) = mpsc::unbounded_channel::<(Instant, DeliveryFuture)>();
    let record_size = args.record_size;
    let total = args.records;
    // Acknowledgements are awaited concurrently, so each latency is measured when its own
    // batch is answered.
    let collector = tokio::spawn(async move {
        let mut stats = Stats::new(total);
        let mut pending = FuturesUnordered::new();
        let mut first_error = None;
        let mut open = true;
        while open || !pending.is_empty() {
            tokio::select! {
                next = acks.recv(), if open => match next {
                    Some((sent, delivery)) => pending.push(async move { (sent, delivery.await) }),
                    None => open = false,
                },
                Some((sent, result)) = pending.next(), if !pending.is_empty() => match result {
                    Ok(_) => stats.record(sent.elapsed(), record_size),
                    Err(e) => {
                        stats.errors += 1;
                        first_error.get_or_insert(e);
                    }
                },
            }
        }
        (stats, first_error)
    });
    let sending = Instant::now();
    for sent in 0..args.records {
        if args.throughput > 0 {
            // Kafka's throttle: stay on the line `sent = throughput * elapsed`.
            let due = Duration::from_secs_f64(sent as f64 / args.throughput as f64);
            let elapsed = sending.elapsed();
            if due > elapsed {
                tokio::time::sleep(due - elapsed).await;
            }
        }
        let delivery = producer.send(&args.topic, None, value.clone()).await?;
        if deliveries.send((Instant::now(), delivery)).is_err() {
            break;
        }
    }
    drop(deliveries);
    producer.flush().await?;
    let (mut stats, first_error) = collector
        .await
        .map_err(|e| Error::Closed(format!("the collector failed: {e}")))?;
    if let Some(e) = first_error {
        eprintln!("{} records failed; the first: {e}", stats.errors);
    }
    println!("{}", stats.summary());
    Ok(())
}

async fn consume(client: &Client, args: ConsumeArgs) -> Result<(), Error> {
    let mut consumer = Consumer::new(
        client.clone(),
        ConsumerConfig {
            auto_offset_reset: OffsetReset::Earliest,
            max_partition_fetch_records: args.fetch_max_records,
            max_partition_fetch_bytes: kafdo_types::limits::MAX_FETCH_MAX_BYTES,
            ..ConsumerConfig::default()
        },
    );
    consumer.assign_topic(&args.topic).await?;
    let started = Instant::now();
    let mut records: u64 = 0;
    let mut bytes: u64 = 0;
    let mut last_progress = Instant::now();
    let mut last_record = Instant::now();
    while records < args.records {
        let batch = consumer.poll(Duration::from_millis(500)).await?;
        if batch.is_empty() {
            if last_record.elapsed() >= Duration::from_millis(args.timeout_ms) {
                eprintln!("no record for {} ms; stopping", args.timeout_ms);
                break;
            }
            continue;
        }
        last_record = Instant::now();
        // Count exactly the records asked for, as Kafka's tool does.
        let wanted = usize::try_from(args.records - records).unwrap_or(usize::MAX);
        for record in batch.iter().take(wanted) {
            records += 1;
            bytes += (record.value.as_ref().map_or(0, Vec::len)
                + record.key.as_ref().map_or(0, Vec::len)) as u64;
        }
        if last_progress.elapsed() >= PROGRESS_INTERVAL {
            let secs = started.elapsed().as_secs_f64();
            eprintln!(
                "{records} records consumed, {:.1} records/s ({:.2} MB/s)",
                records as f64 / secs,
                bytes as f64 / secs / 1e6
            );
            last_progress = Instant::now();
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{records} records consumed, {:.2} MB, {:.1} records/s ({:.2} MB/s), {:.3} s",
        bytes as f64 / 1e6,
        records as f64 / secs,
        bytes as f64 / secs / 1e6,
        secs
    );
    Ok(())
}
