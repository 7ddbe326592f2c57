//! `kafdo`: the command-line tool for a Kafdo deployment.
//!
//! Scripts rely on these forms exactly:
//!
//! ```text
//! kafdo topics create NAME --partitions N
//! kafdo produce TOPIC < lines.txt             # one record per line, value = the line
//! kafdo consume TOPIC --from-beginning --max-records N
//! kafdo perf produce TOPIC --records N --record-size BYTES
//! ```
//!
//! See `kafdo --help` and `design/client.md` for the rest.

mod perf;

use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use futures_util::stream::{FuturesUnordered, StreamExt};
use kafdo_client::{
    Client, ClientConfig, Consumer, ConsumerConfig, ConsumerRecord, DeliveryFuture, Error, Format,
    GroupConsumer, GroupConsumerConfig, Isolation, OffsetReset, ProduceRecord, Producer,
    ProducerConfig, TopicConfig, TopicPartition,
};
use kafdo_types::api::CleanupPolicy;
use kafdo_types::limits::MAX_RECORDS_PER_REQUEST;
use tokio::sync::mpsc;

/// The command-line tool for Kafdo, Kafka's semantics on Cloudflare Workers.
#[derive(Parser, Debug)]
#[command(name = "kafdo", version, about, long_about = None)]
struct Cli {
    /// The Kafdo Worker's URL.
    #[arg(
        long,
        global = true,
        env = "KAFDO_URL",
        default_value = "http://127.0.0.1:8787"
    )]
    url: String,

    /// The encoding of request and answer bodies [default: json; cbor for perf].
    #[arg(long, global = true, value_enum)]
    wire: Option<Wire>,

    /// How long one request may take before its outcome counts as unknown, in ms.
    #[arg(long, global = true, default_value_t = 30_000)]
    request_timeout_ms: u64,

    #[command(subcommand)]
    command: Command,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum Wire {
    Json,
    Cbor,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create, list, describe and delete topics.
    #[command(subcommand)]
    Topics(TopicsCommand),
    /// Produce stdin's lines to a topic, one record per line (value = the line).
    Produce(ProduceArgs),
    /// Print a topic's records, one per line.
    Consume(ConsumeArgs),
    /// Measure produce or consume throughput and latency.
    #[command(subcommand)]
    Perf(perf::PerfCommand),
    /// Inspect consumer groups.
    #[command(subcommand)]
    Groups(GroupsCommand),
    /// Inspect and abort transactions.
    #[command(subcommand)]
    Txn(TxnCommand),
}

#[derive(Subcommand, Debug)]
enum GroupsCommand {
    /// The ids of every consumer group, one per line.
    List,
    /// A group's state, generation, members, their partitions, and its committed offsets.
    Describe {
        /// The group id.
        group: String,
    },
}

#[derive(Subcommand, Debug)]
enum TxnCommand {
    /// The open transactions, oldest first, with the partitions they hold back.
    List,
    /// The current or last transaction of a transactional id.
    Describe {
        /// The transactional id.
        transactional_id: String,
    },
    /// Aborts a transactional id's open transaction (`POST /v1/admin/transactions/{id}/abort`),
    /// which also fences its producer: its next call gets PRODUCER_FENCED. A transaction already
    /// past its commit point completes instead.
    Abort {
        /// The transactional id.
        transactional_id: String,
    },
}

#[derive(Subcommand, Debug)]
enum TopicsCommand {
    /// Create a topic.
    Create {
        /// The topic name ([a-zA-Z0-9._-], 1 to 249 characters).
        name: String,
        /// The number of partitions (1 to 256).
        #[arg(long, default_value_t = 1)]
        partitions: i32,
        /// How long records are kept, in ms (-1: for ever).
        #[arg(long)]
        retention_ms: Option<i64>,
        /// `delete` old records, or `compact` to the latest record per key.
        #[arg(long, value_enum)]
        cleanup_policy: Option<Cleanup>,
    },
    /// List the topics, one per line: name, partitions, config.
    List,
    /// Describe a topic and each partition's offsets.
    Describe {
        /// The topic name.
        name: String,
    },
    /// Delete a topic and its records.
    Delete {
        /// The topic name.
        name: String,
    },
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum Cleanup {
    Delete,
    Compact,
}

#[derive(Args, Debug)]
struct ProduceArgs {
    /// The topic.
    topic: String,
    /// Split each line at the first SEP into key and value (a line without SEP has no key).
    #[arg(long, value_name = "SEP")]
    key_separator: Option<String>,
    /// Send all lines as one request with this `Idempotency-Key`: running the same command
    /// again writes nothing new. More than 10,000 lines go in requests keyed KEY:0, KEY:1, ...
    #[arg(long, value_name = "KEY")]
    idempotency_key: Option<String>,
    /// Write every record to this partition (default: by key, else sticky).
    #[arg(long)]
    partition: Option<i32>,
    /// How long a batch waits for more records, in ms.
    #[arg(long, default_value_t = 5)]
    linger_ms: u64,
    /// Produce without a producer id (retries may then duplicate; not recommended).
    #[arg(long)]
    no_idempotence: bool,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum IsolationArg {
    ReadCommitted,
    ReadUncommitted,
}

impl From<IsolationArg> for Isolation {
    fn from(value: IsolationArg) -> Self {
        match value {
            IsolationArg::ReadCommitted => Isolation::ReadCommitted,
            IsolationArg::ReadUncommitted => Isolation::ReadUncommitted,
        }
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum OutputFormat {
    /// The value alone, one record per line.
    Text,
    /// One JSON object per line: topic, partition, offset, timestamp, key, value, headers.
    Json,
}

#[derive(Args, Debug)]
#[command(
    after_help = "Order: the records that exist when the command starts are printed \
partition by partition (partition 0 first), each partition in offset order; records that \
arrive later are printed as they come. A single-partition topic is printed in offset order."
)]
struct ConsumeArgs {
    /// The topic.
    topic: String,
    /// Start at each partition's first record (default: only new records).
    #[arg(long, conflicts_with = "offset")]
    from_beginning: bool,
    /// Start at this offset (in each partition read).
    #[arg(long)]
    offset: Option<i64>,
    /// Read only this partition.
    #[arg(long, conflicts_with = "group")]
    partition: Option<i32>,
    /// Consume as a member of this group: its partitions, from its committed offsets
    /// (auto-committed), rebalancing with the other members.
    #[arg(long, conflicts_with = "offset")]
    group: Option<String>,
    /// Exit after printing N records.
    #[arg(long, value_name = "N")]
    max_records: Option<u64>,
    /// Exit when no record arrives for this long, in ms (default: wait for ever).
    #[arg(long)]
    timeout_ms: Option<u64>,
    /// Which records to read.
    #[arg(long, value_enum, default_value_t = IsolationArg::ReadCommitted)]
    isolation: IsolationArg,
    /// How to print records.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    format: OutputFormat,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kafdo: {e}");
            ExitCode::FAILURE
        }
    }
}

fn client(cli: &Cli) -> Result<Client, Error> {
    // perf measures the server, so it defaults to the cheaper encoding.
    let default = match cli.command {
        Command::Perf(_) => Wire::Cbor,
        _ => Wire::Json,
    };
    let format = match cli.wire.unwrap_or(default) {
        Wire::Json => Format::Json,
        Wire::Cbor => Format::Cbor,
    };
    Client::connect_with(
        &cli.url,
        ClientConfig {
            format,
            request_timeout_ms: cli.request_timeout_ms,
            ..ClientConfig::default()
        },
    )
}

async fn run(cli: Cli) -> Result<(), Error> {
    let client = client(&cli)?;
    match cli.command {
        Command::Topics(command) => topics(&client, command).await,
        Command::Produce(args) => produce(&client, args).await,
        Command::Consume(args) => consume(&client, args).await,
        Command::Perf(command) => perf::run(&client, command).await,
        Command::Groups(command) => groups(&client, command).await,
        Command::Txn(command) => txn(&client, command).await,
    }
}

async fn topics(client: &Client, command: TopicsCommand) -> Result<(), Error> {
    match command {
        TopicsCommand::Create {
            name,
            partitions,
            retention_ms,
            cleanup_policy,
        } => {
            let mut config = TopicConfig::default();
            if let Some(ms) = retention_ms {
                config.retention_ms = ms;
            }
            if let Some(policy) = cleanup_policy {
                config.cleanup_policy = match policy {
                    Cleanup::Delete => CleanupPolicy::Delete,
                    Cleanup::Compact => CleanupPolicy::Compact,
                };
            }
            let topic = client.create_topic(&name, partitions, config).await?;
            println!(
                "created topic {} with {} partitions",
                topic.name, topic.partitions
            );
        }
        TopicsCommand::List => {
            for topic in client.list_topics().await? {
                println!(
                    "{}\tpartitions={}\tretention_ms={}\tcleanup_policy={}",
                    topic.name,
                    topic.partitions,
                    topic.config.retention_ms,
                    cleanup_name(topic.config.cleanup_policy)
                );
            }
        }
        TopicsCommand::Describe { name } => {
            let topic = client.describe_topic(&name).await?;
            println!(
                "topic {}\tpartitions={}\tretention_ms={}\tcleanup_policy={}",
                topic.name,
                topic.partitions,
                topic.config.retention_ms,
                cleanup_name(topic.config.cleanup_policy)
            );
            for p in 0..topic.partitions {
                let info = client.partition_info(&name, p).await?;
                println!(
                    "partition {p}\tlog_start_offset={}\thigh_watermark={}\tlast_stable_offset={}",
                    info.log_start_offset, info.high_watermark, info.last_stable_offset
                );
            }
        }
        TopicsCommand::Delete { name } => {
            client.delete_topic(&name).await?;
            println!("deleted topic {name}");
        }
    }
    Ok(())
}

fn cleanup_name(policy: CleanupPolicy) -> &'static str {
    match policy {
        CleanupPolicy::Delete => "delete",
        CleanupPolicy::Compact => "compact",
    }
}

fn record(line: &[u8], separator: Option<&[u8]>, partition: Option<i32>) -> ProduceRecord {
    let (key, value) = match separator {
        Some(sep) if !sep.is_empty() => match line.windows(sep.len()).position(|w| w == sep) {
            Some(at) => (Some(line[..at].to_vec()), line[at + sep.len()..].to_vec()),
            None => (None, line.to_vec()),
        },
        _ => (None, line.to_vec()),
    };
    ProduceRecord {
        key,
        value: Some(value),
        partition,
        ..ProduceRecord::default()
    }
}

/// Reads stdin on its own thread, one line at a time, into a bounded channel (so a large file
/// streams through the producer's back-pressure instead of being read whole).
fn stdin_lines() -> mpsc::Receiver<std::io::Result<Vec<u8>>> {
    let (lines, receiver) = mpsc::channel(10_000);
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        for_each_line(stdin.lock(), |line| lines.blocking_send(line).is_ok());
    });
    receiver
}

/// Calls `each` with every line of `reader` without its `\n` (a `\r` before it stays, so a
/// file round-trips byte for byte; a last line without `\n` is a line too); stops early when
/// `each` returns false.
fn for_each_line(mut reader: impl BufRead, mut each: impl FnMut(std::io::Result<Vec<u8>>) -> bool) {
    loop {
        let mut line = Vec::new();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) => return,
            Ok(_) => {
                if line.last() == Some(&b'\n') {
                    line.pop();
                }
                if !each(Ok(line)) {
                    return;
                }
            }
            Err(e) => {
                each(Err(e));
                return;
            }
        }
    }
}

async fn produce(client: &Client, args: ProduceArgs) -> Result<(), Error> {
    let separator = args.key_separator.clone().map(String::into_bytes);
    let mut input = stdin_lines();
    let read_error = |e: std::io::Error| Error::InvalidArgument(format!("reading stdin: {e}"));
    let mut count: u64 = 0;

    if let Some(key) = &args.idempotency_key {
        // One request per 10,000 lines; the key alone when one request holds everything, so
        // `--idempotency-key K` means exactly the header `Idempotency-Key: K` for small inputs.
        let mut chunks: Vec<Vec<ProduceRecord>> = vec![Vec::new()];
        let mut sent_chunks = 0usize;
        while let Some(line) = input.recv().await {
            let line = line.map_err(read_error)?;
            count += 1;
            if chunks.last().expect("one chunk").len() == MAX_RECORDS_PER_REQUEST {
                // There is more than one chunk: send every full one under KEY:i.
                for chunk in chunks.drain(..) {
                    let chunk_key = format!("{key}:{sent_chunks}");
                    client.produce(&args.topic, chunk, Some(&chunk_key)).await?;
                    sent_chunks += 1;
                }
                chunks.push(Vec::new());
            }
            chunks.last_mut().expect("one chunk").push(record(
                &line,
                separator.as_deref(),
                args.partition,
            ));
        }
        let last = chunks.pop().expect("one chunk");
        if !last.is_empty() {
            let chunk_key = if sent_chunks == 0 {
                key.clone()
            } else {
                format!("{key}:{sent_chunks}")
            };
            client.produce(&args.topic, last, Some(&chunk_key)).await?;
        }
        eprintln!("produced {count} records to {}", args.topic);
        return Ok(());
    }

    let producer = Producer::new(
        client.clone(),
        ProducerConfig {
            linger_ms: args.linger_ms,
            enable_idempotence: !args.no_idempotence,
            ..ProducerConfig::default()
        },
    );
    // Deliveries are awaited as they complete, so memory stays bounded by the producer's
    // buffer however long the input is.
    let (deliveries, mut acks) = mpsc::unbounded_channel::<DeliveryFuture>();
    let collector = tokio::spawn(async move {
        let mut pending = FuturesUnordered::new();
        let mut failed: u64 = 0;
        let mut first_error = None;
        let mut open = true;
        while open || !pending.is_empty() {
            tokio::select! {
                next = acks.recv(), if open => match next {
                    Some(delivery) => pending.push(delivery),
                    None => open = false,
                },
                Some(result) = pending.next(), if !pending.is_empty() => {
                    if let Err(e) = result {
                        failed += 1;
                        first_error.get_or_insert(e);
                    }
                }
            }
        }
        (failed, first_error)
    });
    while let Some(line) = input.recv().await {
        let line = line.map_err(read_error)?;
        count += 1;
        let delivery = producer
            .send_record(
                &args.topic,
                record(&line, separator.as_deref(), args.partition),
            )
            .await?;
        let _ = deliveries.send(delivery);
    }
    drop(deliveries);
    producer.flush().await?;
    let (failed, first_error) = collector
        .await
        .map_err(|e| Error::Closed(format!("the delivery collector failed: {e}")))?;
    match first_error {
        None => {
            eprintln!("produced {count} records to {}", args.topic);
            Ok(())
        }
        Some(e) => {
            eprintln!("{failed} of {count} records failed");
            Err(e)
        }
    }
}

async fn groups(client: &Client, command: GroupsCommand) -> Result<(), Error> {
    match command {
        GroupsCommand::List => {
            for group in client.list_groups().await? {
                println!("{group}");
            }
        }
        GroupsCommand::Describe { group } => {
            let description = client.describe_group(&group).await?;
            println!(
                "group {group}\tstate={}\tgeneration_id={}\tassignor={}",
                description.state.name(),
                description.generation_id,
                description.assignor.name()
            );
            for member in &description.members {
                let partitions: Vec<String> = member
                    .assignment
                    .iter()
                    .map(|tp| format!("{}/{}", tp.topic, tp.partition))
                    .collect();
                println!(
                    "member {}\ttopics={}\tassignment={}",
                    member.member_id,
                    member.topics.join(","),
                    partitions.join(",")
                );
            }
            for offset in client.fetch_offsets(&group, None, None, false).await? {
                println!(
                    "offset {}/{}\t{}",
                    offset.topic, offset.partition, offset.offset
                );
            }
        }
    }
    Ok(())
}

async fn txn(client: &Client, command: TxnCommand) -> Result<(), Error> {
    match command {
        TxnCommand::List => {
            for t in client.list_transactions().await?.transactions {
                let partitions: Vec<String> = t
                    .partitions
                    .iter()
                    .map(|p| match p.first_offset {
                        Some(o) => format!("{}/{}@{o}", p.topic, p.partition),
                        None => format!("{}/{}", p.topic, p.partition),
                    })
                    .collect();
                println!(
                    "{}\tproducer_id={}\tproducer_epoch={}\tstate={}\tage_ms={}\tpartitions={}",
                    t.transactional_id,
                    t.producer_id,
                    t.producer_epoch,
                    t.state,
                    t.age_ms,
                    partitions.join(",")
                );
            }
        }
        TxnCommand::Describe { transactional_id } => {
            let t = client.describe_transaction(&transactional_id).await?;
            println!(
                "{}\tstate={}\tproducer_id={}\tproducer_epoch={}\ttransaction_timeout_ms={}",
                t.transactional_id,
                t.state,
                t.producer_id,
                t.producer_epoch,
                t.transaction_timeout_ms
            );
            for p in &t.partitions {
                println!("partition {}/{}", p.topic, p.partition);
            }
            for g in &t.groups {
                println!("group {g}");
            }
        }
        TxnCommand::Abort { transactional_id } => {
            match client.admin_abort_transaction(&transactional_id).await {
                Ok(answer) => println!(
                    "{transactional_id}: {} (producer_epoch={})",
                    answer.state, answer.producer_epoch
                ),
                // A Worker without the admin route: fence the id as a new instance would,
                // which aborts an ongoing transaction too.
                Err(Error::Api {
                    status: 404, code, ..
                }) if code != kafdo_client::ErrorCode::UnknownTopicOrPartition => {
                    let answer = client
                        .init_producer(&kafdo_types::api::InitProducerRequest {
                            transactional_id: Some(transactional_id.clone()),
                            transaction_timeout_ms: None,
                        })
                        .await?;
                    println!(
                        "fenced {transactional_id}: producer_id={} producer_epoch={}",
                        answer.producer_id, answer.producer_epoch
                    );
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

async fn consume_group(client: &Client, args: ConsumeArgs, group: &str) -> Result<(), Error> {
    let config = GroupConsumerConfig {
        consumer: ConsumerConfig {
            isolation: args.isolation.into(),
            auto_offset_reset: if args.from_beginning {
                OffsetReset::Earliest
            } else {
                OffsetReset::Latest
            },
            ..ConsumerConfig::default()
        },
        ..GroupConsumerConfig::default()
    };
    let mut consumer =
        GroupConsumer::join(client.clone(), group, vec![args.topic.clone()], config).await?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let max = args.max_records.unwrap_or(u64::MAX);
    let timeout = args.timeout_ms.map(Duration::from_millis);
    let mut printed = 0;
    let mut idle = Duration::ZERO;
    while printed < max {
        let started = std::time::Instant::now();
        let records = consumer.poll(Duration::from_millis(1_000)).await?;
        if records.is_empty() {
            idle += started.elapsed();
            if timeout.is_some_and(|t| idle >= t) {
                break;
            }
            continue;
        }
        idle = Duration::ZERO;
        let n = print(&mut out, &records, args.format, max - printed)?;
        printed += n;
        if n < records.len() as u64 {
            // Rewind what was fetched but not printed, so that close commits only what was
            // printed: the first unprinted record of each partition is its next position.
            let mut rewind: Vec<(TopicPartition, i64)> = Vec::new();
            for r in &records[n as usize..] {
                let tp = TopicPartition {
                    topic: r.topic.clone(),
                    partition: r.partition,
                };
                if !rewind.iter().any(|(t, _)| *t == tp) {
                    rewind.push((tp, r.offset));
                }
            }
            for (tp, offset) in rewind {
                consumer.seek(&tp, offset)?;
            }
        }
    }
    consumer.close().await
}

async fn consume(client: &Client, args: ConsumeArgs) -> Result<(), Error> {
    if let Some(group) = args.group.clone() {
        return consume_group(client, args, &group).await;
    }
    let description = client.describe_topic(&args.topic).await?;
    let partitions: Vec<TopicPartition> = match args.partition {
        Some(p) => vec![TopicPartition {
            topic: args.topic.clone(),
            partition: p,
        }],
        None => (0..description.partitions)
            .map(|partition| TopicPartition {
                topic: args.topic.clone(),
                partition,
            })
            .collect(),
    };
    let isolation: Isolation = args.isolation.into();
    let config = ConsumerConfig {
        isolation,
        auto_offset_reset: if args.from_beginning {
            OffsetReset::Earliest
        } else {
            OffsetReset::Latest
        },
        ..ConsumerConfig::default()
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let max = args.max_records.unwrap_or(u64::MAX);
    let mut printed: u64 = 0;
    let timeout = args.timeout_ms.map(Duration::from_millis);

    // The history: partition by partition, each up to its end when the command started.
    let mut positions = Vec::new();
    for tp in &partitions {
        let mut consumer = Consumer::new(client.clone(), config.clone());
        consumer.assign([tp.clone()]);
        if let Some(offset) = args.offset {
            consumer.seek(tp, offset)?;
        }
        if args.from_beginning || args.offset.is_some() {
            let info = client.partition_info(&tp.topic, tp.partition).await?;
            let end = match isolation {
                Isolation::ReadCommitted => info.last_stable_offset,
                Isolation::ReadUncommitted => info.high_watermark,
            };
            while printed < max && consumer.position(tp).is_none_or(|p| p < end) {
                let before = consumer.position(tp);
                let records = consumer.poll(Duration::ZERO).await?;
                if records.is_empty() && consumer.position(tp) == before {
                    // The partition ends earlier than it said (records deleted meanwhile):
                    // the live phase below takes it from here.
                    break;
                }
                printed += print(&mut out, &records, args.format, max - printed)?;
            }
        } else {
            consumer.seek_to_end().await?;
        }
        positions.push(
            consumer
                .position(tp)
                .expect("a polled partition has a position"),
        );
        if printed >= max {
            return Ok(());
        }
    }

    // Then the records that arrive, as they arrive.
    let mut consumer = Consumer::new(client.clone(), config);
    consumer.assign(partitions.iter().cloned());
    for (tp, position) in partitions.iter().zip(positions) {
        consumer.seek(tp, position)?;
    }
    let mut idle = Duration::ZERO;
    let poll_wait = Duration::from_millis(1_000);
    while printed < max {
        let started = std::time::Instant::now();
        let records = consumer.poll(poll_wait).await?;
        if records.is_empty() {
            idle += started.elapsed();
            if timeout.is_some_and(|t| idle >= t) {
                break;
            }
            continue;
        }
        idle = Duration::ZERO;
        printed += print(&mut out, &records, args.format, max - printed)?;
    }
    Ok(())
}

/// Prints up to `limit` records; returns how many it printed.
fn print(
    out: &mut impl Write,
    records: &[ConsumerRecord],
    format: OutputFormat,
    limit: u64,
) -> Result<u64, Error> {
    let io = |e: std::io::Error| Error::Closed(format!("writing stdout: {e}"));
    let mut n = 0;
    for record in records
        .iter()
        .take(usize::try_from(limit).unwrap_or(usize::MAX))
    {
        match format {
            OutputFormat::Text => {
                out.write_all(record.value.as_deref().unwrap_or_default())
                    .map_err(io)?;
                out.write_all(b"\n").map_err(io)?;
            }
            OutputFormat::Json => {
                let line = serde_json::to_string(&json_record(record)).expect("JSON values");
                out.write_all(line.as_bytes()).map_err(io)?;
                out.write_all(b"\n").map_err(io)?;
            }
        }
        n += 1;
    }
    out.flush().map_err(io)?;
    Ok(n)
}

/// A record as one JSON object: key and value as strings when they are UTF-8, otherwise as
/// `key_base64` / `value_base64`.
fn json_record(record: &ConsumerRecord) -> serde_json::Value {
    use base64_lite::encode;
    let mut object = serde_json::Map::new();
    object.insert("topic".into(), record.topic.clone().into());
    object.insert("partition".into(), record.partition.into());
    object.insert("offset".into(), record.offset.into());
    object.insert("timestamp".into(), record.timestamp.into());
    for (name, bytes) in [("key", &record.key), ("value", &record.value)] {
        match bytes {
            None => {
                object.insert(name.into(), serde_json::Value::Null);
            }
            Some(b) => match std::str::from_utf8(b) {
                Ok(s) => {
                    object.insert(name.into(), s.into());
                }
                Err(_) => {
                    object.insert(format!("{name}_base64"), encode(b).into());
                }
            },
        }
    }
    let headers: Vec<serde_json::Value> = record
        .headers
        .iter()
        .map(|h| {
            serde_json::json!({
                "key": h.key,
                "value": h.value.as_deref().map(|v| String::from_utf8_lossy(v).into_owned()),
            })
        })
        .collect();
    object.insert("headers".into(), headers.into());
    serde_json::Value::Object(object)
}

/// Base64 through the wire types' serde helper, so the CLI needs no base64 crate of its own.
mod base64_lite {
    pub fn encode(bytes: &[u8]) -> String {
        #[derive(serde::Serialize)]
        struct Wrap<'a>(#[serde(with = "kafdo_types::bytes")] &'a [u8]);
        match serde_json::to_value(Wrap(bytes)) {
            Ok(serde_json::Value::String(s)) => s,
            _ => unreachable!("bytes serialize as a base64 string in JSON"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_keep_everything_but_the_newline() {
        let lines = |input: &[u8]| {
            let mut out = Vec::new();
            for_each_line(input, |line| {
                out.push(line.unwrap());
                true
            });
            out
        };
        assert_eq!(
            lines(b"a\n\nb\r\nc"),
            vec![b"a".to_vec(), vec![], b"b\r".to_vec(), b"c".to_vec()]
        );
        assert_eq!(lines(b"a\n"), vec![b"a".to_vec()]);
        assert!(lines(b"").is_empty());
    }

    #[test]
    fn key_separator_splits_at_the_first() {
        let r = record(b"k1:v:1", Some(b":"), None);
        assert_eq!(r.key.as_deref(), Some(&b"k1"[..]));
        assert_eq!(r.value.as_deref(), Some(&b"v:1"[..]));
        let r = record(b"novalue", Some(b"::"), Some(2));
        assert_eq!(r.key, None);
        assert_eq!(r.partition, Some(2));
    }

    #[test]
    fn json_output_is_text_or_base64() {
        let record = ConsumerRecord {
            topic: "t".into(),
            partition: 1,
            offset: 2,
            timestamp: 3,
            key: Some(vec![0xff]),
            value: Some(b"hi".to_vec()),
            headers: vec![],
        };
        let v = json_record(&record);
        assert_eq!(v["value"], "hi");
        assert_eq!(v["key_base64"], "/w==");
    }

    #[test]
    fn the_cli_parses_the_scripted_forms() {
        Cli::command_for_tests();
        let cli =
            Cli::try_parse_from(["kafdo", "topics", "create", "t", "--partitions", "4"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Topics(TopicsCommand::Create { partitions: 4, .. })
        ));
        assert_eq!(cli.url, "http://127.0.0.1:8787");
        Cli::try_parse_from(["kafdo", "produce", "t"]).unwrap();
        Cli::try_parse_from([
            "kafdo",
            "consume",
            "t",
            "--from-beginning",
            "--max-records",
            "5",
        ])
        .unwrap();
        Cli::try_parse_from([
            "kafdo",
            "perf",
            "produce",
            "t",
            "--records",
            "10",
            "--record-size",
            "100",
        ])
        .unwrap();
        assert!(Cli::try_parse_from([
            "kafdo",
            "consume",
            "t",
            "--from-beginning",
            "--offset",
            "3"
        ])
        .is_err());
    }

    impl Cli {
        fn command_for_tests() {
            use clap::CommandFactory;
            Cli::command().debug_assert();
        }
    }
}
