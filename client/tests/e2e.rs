//! End-to-end tests of the SDK and the `kafdo` binary against the real Worker (workerd through
//! `wrangler dev`, started by the kafdo-e2e harness). They run only when the crate is built
//! with `KAFDO_E2E=1` (`make test` sets it; `build.rs` turns it into `cfg(kafdo_e2e)`) after
//! `make build`; plain `cargo test` reports them as ignored.
//!
//! Each test holds `let worker = shared().watch();` for its whole length and connects to
//! `worker.url()`: when the watch is dropped, the harness searches the Worker's output for a
//! Rust panic and fails the test if one appeared.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use kafdo_client::{
    Client, ClientConfig, Consumer, ConsumerConfig, ErrorCode, Format, Isolation, OffsetReset,
    Producer, ProducerConfig, TopicConfig, TopicPartition,
};
use kafdo_e2e::{shared, unique_topic};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Runs `kafdo ARGS` with `stdin`; returns stdout, panicking with stderr on failure.
fn kafdo(url: &str, args: &[&str], stdin: &[u8]) -> Vec<u8> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kafdo"))
        .arg("--url")
        .arg(url)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kafdo");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "kafdo {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn admin_calls_and_typed_errors() {
    let worker = shared().watch();
    let url = worker.url();
    runtime().block_on(async {
        let client = Client::connect(&url).unwrap();
        client.health().await.unwrap();
        let topic = unique_topic("client-admin");
        let created = client
            .create_topic(&topic, 3, TopicConfig::default())
            .await
            .unwrap();
        assert_eq!(created.partitions, 3);
        assert!(client
            .list_topics()
            .await
            .unwrap()
            .iter()
            .any(|t| t.name == topic));
        assert_eq!(client.describe_topic(&topic).await.unwrap().partitions, 3);
        let info = client.partition_info(&topic, 2).await.unwrap();
        assert_eq!((info.log_start_offset, info.high_watermark), (0, 0));

        let again = client
            .create_topic(&topic, 3, TopicConfig::default())
            .await
            .unwrap_err();
        assert_eq!(again.code(), ErrorCode::TopicAlreadyExists);
        let missing = client.partition_info(&topic, 3).await.unwrap_err();
        assert_eq!(missing.code(), ErrorCode::UnknownTopicOrPartition);

        client.delete_topic(&topic).await.unwrap();
        let gone = client.describe_topic(&topic).await.unwrap_err();
        assert_eq!(gone.code(), ErrorCode::UnknownTopicOrPartition);
    });
}

/// Keyed records land on Kafka's partition for their key, in order, each exactly once, in both
/// encodings.
#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn producer_and_consumer_round_trip() {
    let worker = shared().watch();
    let url = worker.url();
    for format in [Format::Json, Format::Cbor] {
        runtime().block_on(async {
            let client = Client::connect_with(
                &url,
                ClientConfig {
                    format,
                    ..ClientConfig::default()
                },
            )
            .unwrap();
            let topic = unique_topic("client-roundtrip");
            client
                .create_topic(&topic, 4, TopicConfig::default())
                .await
                .unwrap();
            let producer = Producer::new(
                client.clone(),
                ProducerConfig {
                    max_batch_records: 50,
                    ..ProducerConfig::default()
                },
            );
            let mut deliveries = Vec::new();
            for i in 0..500u32 {
                let key = format!("key-{}", i % 37);
                let value = format!("value-{i}");
                let delivery = producer
                    .send(&topic, Some(key.clone().into_bytes()), value.into_bytes())
                    .await
                    .unwrap();
                deliveries.push((key, i, delivery));
            }
            producer.flush().await.unwrap();
            let mut sent: BTreeMap<i32, Vec<(i64, String)>> = BTreeMap::new();
            for (key, i, delivery) in deliveries {
                let (partition, offset) = delivery.await.unwrap();
                assert_eq!(
                    partition,
                    kafdo_types::partitioner::partition_for_key(key.as_bytes(), 4)
                );
                sent.entry(partition)
                    .or_default()
                    .push((offset, format!("value-{i}")));
            }

            let mut consumer = Consumer::new(
                client.clone(),
                ConsumerConfig {
                    auto_offset_reset: OffsetReset::Earliest,
                    ..ConsumerConfig::default()
                },
            );
            consumer.assign_topic(&topic).await.unwrap();
            let mut read: BTreeMap<i32, Vec<(i64, String)>> = BTreeMap::new();
            let mut count = 0;
            while count < 500 {
                let records = consumer.poll(Duration::from_millis(500)).await.unwrap();
                assert!(!records.is_empty(), "records stopped after {count}");
                for r in records {
                    count += 1;
                    read.entry(r.partition)
                        .or_default()
                        .push((r.offset, String::from_utf8(r.value.unwrap()).unwrap()));
                }
            }
            for offsets in sent.values_mut() {
                offsets.sort();
            }
            assert_eq!(read, sent, "every record once, in offset order");
            // Offsets are dense from 0 in every partition.
            for records in read.values() {
                for (i, (offset, _)) in records.iter().enumerate() {
                    assert_eq!(*offset, i as i64);
                }
            }
            // Nothing more arrives.
            assert!(consumer
                .poll(Duration::from_millis(200))
                .await
                .unwrap()
                .is_empty());
        });
    }
}

/// A long poll returns as soon as a record is produced.
#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn long_poll_wakes_on_produce() {
    let worker = shared().watch();
    let url = worker.url();
    runtime().block_on(async {
        let client = Client::connect(&url).unwrap();
        let topic = unique_topic("client-longpoll");
        client
            .create_topic(&topic, 1, TopicConfig::default())
            .await
            .unwrap();
        let mut consumer = Consumer::new(client.clone(), ConsumerConfig::default());
        consumer.assign([TopicPartition {
            topic: topic.clone(),
            partition: 0,
        }]);
        assert!(consumer.poll(Duration::ZERO).await.unwrap().is_empty());
        let producer_client = client.clone();
        let producer_topic = topic.clone();
        let producer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            producer_client
                .produce(
                    &producer_topic,
                    vec![kafdo_client::ProduceRecord::value(b"late".to_vec())],
                    None,
                )
                .await
                .unwrap();
        });
        let started = std::time::Instant::now();
        let records = consumer.poll(Duration::from_secs(10)).await.unwrap();
        producer.await.unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].value.as_deref(), Some(&b"late"[..]));
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(consumer.config().isolation, Isolation::ReadCommitted);
    });
}

/// `kafdo produce` piped into `kafdo consume` round-trips a file exactly.
#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn cli_round_trips_a_file() {
    let worker = shared().watch();
    let url = worker.url();
    let topic = unique_topic("client-cli");
    let out = kafdo(
        &url,
        &["topics", "create", &topic, "--partitions", "1"],
        b"",
    );
    assert!(String::from_utf8_lossy(&out).contains(&topic));
    let mut file = Vec::new();
    for i in 0..3_000 {
        writeln!(file, "line {i} with some text, ünïcödé and a tab\there").unwrap();
    }
    file.extend_from_slice(b"\n\r\nlast line\n");
    let lines = file.iter().filter(|b| **b == b'\n').count();
    kafdo(&url, &["produce", &topic], &file);
    let printed = kafdo(
        &url,
        &[
            "consume",
            &topic,
            "--from-beginning",
            "--max-records",
            &lines.to_string(),
        ],
        b"",
    );
    assert!(printed == file, "the file did not round-trip");

    // Four partitions: every line exactly once, partition by partition.
    let topic4 = unique_topic("client-cli4");
    kafdo(
        &url,
        &["topics", "create", &topic4, "--partitions", "4"],
        b"",
    );
    let keyed: Vec<u8> = (0..400)
        .flat_map(|i| format!("k{}:v{i}\n", i % 13).into_bytes())
        .collect();
    kafdo(&url, &["produce", &topic4, "--key-separator", ":"], &keyed);
    let printed = kafdo(
        &url,
        &[
            "consume",
            &topic4,
            "--from-beginning",
            "--max-records",
            "400",
            "--format",
            "json",
        ],
        b"",
    );
    let records: Vec<serde_json::Value> = printed
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    assert_eq!(records.len(), 400);
    let order: Vec<(i64, i64)> = records
        .iter()
        .map(|r| {
            (
                r["partition"].as_i64().unwrap(),
                r["offset"].as_i64().unwrap(),
            )
        })
        .collect();
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted, "partition by partition, offsets in order");
    let mut values: Vec<String> = records
        .iter()
        .map(|r| r["value"].as_str().unwrap().to_string())
        .collect();
    values.sort();
    let mut expected: Vec<String> = (0..400).map(|i| format!("v{i}")).collect();
    expected.sort();
    assert_eq!(values, expected);
    for r in &records {
        let key = r["key"].as_str().unwrap();
        assert_eq!(
            r["partition"].as_i64().unwrap() as i32,
            kafdo_types::partitioner::partition_for_key(key.as_bytes(), 4)
        );
    }

    let described = String::from_utf8(kafdo(&url, &["topics", "describe", &topic4], b"")).unwrap();
    assert_eq!(described.lines().count(), 5, "{described}");
    kafdo(&url, &["topics", "delete", &topic4], b"");
}

/// `kafdo perf produce` ends with a line giving records/s.
#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn cli_perf_produce_reports_records_per_second() {
    let worker = shared().watch();
    let url = worker.url();
    let topic = unique_topic("client-perf");
    kafdo(
        &url,
        &["topics", "create", &topic, "--partitions", "4"],
        b"",
    );
    let out = kafdo(
        &url,
        &[
            "perf",
            "produce",
            &topic,
            "--records",
            "20000",
            "--record-size",
            "100",
        ],
        b"",
    );
    let out = String::from_utf8(out).unwrap();
    let last = out.lines().last().unwrap();
    assert!(last.starts_with("20000 records sent, "), "{last}");
    let rate: f64 = last
        .split(" records/s")
        .next()
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(rate > 0.0, "{last}");
    let consumed = String::from_utf8(kafdo(
        &url,
        &["perf", "consume", &topic, "--records", "20000"],
        b"",
    ))
    .unwrap();
    assert!(consumed.starts_with("20000 records consumed"), "{consumed}");
}

/// `kafdo produce --idempotency-key` twice writes the lines once.
#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn cli_idempotency_key_writes_once() {
    let worker = shared().watch();
    let url = worker.url();
    let topic = unique_topic("client-idem");
    kafdo(
        &url,
        &["topics", "create", &topic, "--partitions", "2"],
        b"",
    );
    for _ in 0..3 {
        kafdo(
            &url,
            &["produce", &topic, "--idempotency-key", "batch-1"],
            b"a\nb\nc\n",
        );
    }
    runtime().block_on(async {
        let client = Client::connect(&url).unwrap();
        let mut total = 0;
        for p in 0..2 {
            total += client
                .partition_info(&topic, p)
                .await
                .unwrap()
                .high_watermark;
        }
        assert_eq!(total, 3);
    });
}

/// With producer ids, the producer writes idempotently.
#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn producer_is_idempotent_when_the_server_has_producer_ids() {
    let worker = shared().watch();
    let url = worker.url();
    runtime().block_on(async {
        let client = Client::connect(&url).unwrap();
        let topic = unique_topic("client-idempotent");
        client
            .create_topic(&topic, 2, TopicConfig::default())
            .await
            .unwrap();
        let producer = Producer::new(client.clone(), ProducerConfig::default());
        assert!(producer.is_idempotent().await.unwrap());
        let d = producer.send(&topic, None, b"x".to_vec()).await.unwrap();
        producer.flush().await.unwrap();
        d.await.unwrap();
    });
}

/// The read-process-write promise: processors killed mid-transaction and restarted, yet every
/// input yields exactly one output in the committed output topic.
#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn processor_is_exactly_once_across_kills() {
    use kafdo_client::{OutputRecord, Processor, ProcessorConfig};
    let worker = shared().watch();
    let url = worker.url();
    runtime().block_on(async {
        let client = Client::connect(&url).unwrap();
        let input = unique_topic("rpw-in");
        let output = unique_topic("rpw-out");
        let group = unique_topic("rpw-group");
        client
            .create_topic(&input, 4, TopicConfig::default())
            .await
            .unwrap();
        client
            .create_topic(&output, 4, TopicConfig::default())
            .await
            .unwrap();
        const INPUTS: usize = 2_000;
        let producer = Producer::new(client.clone(), ProducerConfig::default());
        for i in 0..INPUTS {
            producer
                .send(
                    &input,
                    Some(format!("k{i}").into_bytes()),
                    format!("v{i}").into_bytes(),
                )
                .await
                .unwrap();
        }
        producer.flush().await.unwrap();

        let config = ProcessorConfig {
            poll_timeout_ms: 200,
            group: kafdo_client::GroupConsumerConfig {
                session_timeout_ms: Some(3_000),
                heartbeat_interval_ms: 300,
                consumer: ConsumerConfig {
                    auto_offset_reset: OffsetReset::Earliest,
                    max_partition_fetch_records: 50,
                    ..ConsumerConfig::default()
                },
                ..Default::default()
            },
            ..ProcessorConfig::default()
        };
        let out_topic = output.clone();
        let transform = move |records: &[kafdo_client::ConsumerRecord]| -> Vec<OutputRecord> {
            records
                .iter()
                .map(|r| {
                    OutputRecord::keyed(
                        &out_topic,
                        r.key.clone().unwrap(),
                        r.value.clone().unwrap(),
                    )
                })
                .collect()
        };
        // Two instances; each round kills one mid-run (its task is dropped wherever it is,
        // transaction open or not) and starts it again under the same transactional id.
        let mut kills = 0;
        for round in 0..6 {
            let mut tasks = Vec::new();
            for instance in ["a", "b"] {
                let client = client.clone();
                let (group, input, config, transform) = (
                    group.clone(),
                    input.clone(),
                    config.clone(),
                    transform.clone(),
                );
                tasks.push(tokio::spawn(async move {
                    let mut processor = Processor::new(
                        client,
                        &group,
                        vec![input],
                        &format!("rpw-{instance}"),
                        config,
                    )
                    .await
                    .unwrap();
                    let mut f = transform;
                    loop {
                        processor.step(&mut f).await.unwrap();
                    }
                }));
            }
            tokio::time::sleep(Duration::from_millis(700 + 300 * round)).await;
            for task in &tasks {
                task.abort();
                kills += 1;
            }
            for task in tasks {
                let _ = task.await;
            }
        }
        // Restart both instances (each init fences its killed predecessor and aborts its open
        // transaction, as a restarted service does) and run them until the group's committed
        // offsets reach the end of the input.
        let mut tasks = Vec::new();
        for instance in ["a", "b"] {
            let client = client.clone();
            let (group, input, config, transform) = (
                group.clone(),
                input.clone(),
                config.clone(),
                transform.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let mut processor = Processor::new(
                    client,
                    &group,
                    vec![input],
                    &format!("rpw-{instance}"),
                    config,
                )
                .await
                .unwrap();
                let mut f = transform;
                loop {
                    processor.step(&mut f).await.unwrap();
                }
            }));
        }
        let mut ends = BTreeMap::new();
        for p in 0..4 {
            ends.insert(
                p,
                client
                    .partition_info(&input, p)
                    .await
                    .unwrap()
                    .high_watermark,
            );
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        loop {
            let committed: BTreeMap<i32, i64> = client
                .fetch_offsets(&group, Some(&input), None, true)
                .await
                .map(|offsets| {
                    offsets
                        .into_iter()
                        .map(|o| (o.partition, o.offset))
                        .collect()
                })
                .unwrap_or_default();
            if committed == ends {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the processors did not finish: committed {committed:?}, ends {ends:?}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        // Both are idle now (no input, so no open transaction): stopping them loses nothing.
        for task in &tasks {
            task.abort();
        }
        for task in tasks {
            let _ = task.await;
        }
        assert!(kills > 0);

        let mut consumer = Consumer::new(
            client.clone(),
            ConsumerConfig {
                auto_offset_reset: OffsetReset::Earliest,
                ..ConsumerConfig::default()
            },
        );
        consumer.assign_topic(&output).await.unwrap();
        // Read to each output partition's end, once no transaction is open there (its last
        // stable offset is its high watermark). An empty poll proves nothing: a fetch may skip
        // only aborted records.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let mut output_ends = Vec::new();
        for p in 0..4 {
            let info = loop {
                let info = client.partition_info(&output, p).await.unwrap();
                if info.last_stable_offset == info.high_watermark {
                    break info;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "p{p} keeps a transaction open: {info:?}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            };
            let tp = TopicPartition {
                topic: output.clone(),
                partition: p,
            };
            output_ends.push((tp, info.high_watermark));
        }
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        while output_ends
            .iter()
            .any(|(tp, end)| consumer.position(tp) < Some(*end))
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the output was not read to its end"
            );
            for r in consumer.poll(Duration::from_millis(500)).await.unwrap() {
                *seen
                    .entry(String::from_utf8(r.value.unwrap()).unwrap())
                    .or_default() += 1;
            }
        }
        assert_eq!(seen.len(), INPUTS, "every input has an output");
        assert!(seen.values().all(|&n| n == 1), "no input has two outputs");
    });
}

/// Two group members split a topic's partitions and together read every record once.
#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn group_members_share_partitions() {
    use kafdo_client::{GroupConsumer, GroupConsumerConfig};
    let worker = shared().watch();
    let url = worker.url();
    runtime().block_on(async {
        let client = Client::connect(&url).unwrap();
        let topic = unique_topic("client-group");
        let group = unique_topic("client-group-g");
        client
            .create_topic(&topic, 4, TopicConfig::default())
            .await
            .unwrap();
        let config = GroupConsumerConfig {
            heartbeat_interval_ms: 200,
            consumer: ConsumerConfig {
                auto_offset_reset: OffsetReset::Earliest,
                ..ConsumerConfig::default()
            },
            ..GroupConsumerConfig::default()
        };
        let mut a =
            GroupConsumer::join(client.clone(), &group, vec![topic.clone()], config.clone())
                .await
                .unwrap();
        let mut b = GroupConsumer::join(client.clone(), &group, vec![topic.clone()], config)
            .await
            .unwrap();
        // Bounded by time, not by rounds: a loaded machine answers heartbeats late.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while std::time::Instant::now() < deadline {
            a.poll(Duration::from_millis(100)).await.unwrap();
            b.poll(Duration::from_millis(100)).await.unwrap();
            if a.assignment().len() == 2 && b.assignment().len() == 2 {
                break;
            }
        }
        assert_eq!(a.assignment().len() + b.assignment().len(), 4);
        assert_eq!(a.assignment().len(), 2);
        let records: Vec<_> = (0..200)
            .map(|i| kafdo_client::ProduceRecord::keyed(format!("k{i}"), format!("v{i}")))
            .collect();
        client.produce(&topic, records, None).await.unwrap();
        let mut values = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while std::time::Instant::now() < deadline {
            for consumer in [&mut a, &mut b] {
                for r in consumer.poll(Duration::from_millis(100)).await.unwrap() {
                    values.push(String::from_utf8(r.value.unwrap()).unwrap());
                }
            }
            if values.len() >= 200 {
                break;
            }
        }
        values.sort();
        values.dedup();
        assert_eq!(values.len(), 200);
        a.close().await.unwrap();
        b.close().await.unwrap();
        // The group is listed, by the SDK and by `kafdo groups list`.
        assert!(client.list_groups().await.unwrap().contains(&group));
        let listed = String::from_utf8(kafdo(&url, &["groups", "list"], b"")).unwrap();
        assert!(listed.lines().any(|line| line == group), "{listed}");
    });
}

/// Committed transactions are visible to read_committed readers, aborted ones never, and a
/// newer instance fences the older one.
#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn transactions_commit_abort_and_fence() {
    use kafdo_client::{ErrorClass, TransactionalProducer};
    let worker = shared().watch();
    let url = worker.url();
    runtime().block_on(async {
        let client = Client::connect(&url).unwrap();
        let topic = unique_topic("client-txn");
        client
            .create_topic(&topic, 2, TopicConfig::default())
            .await
            .unwrap();
        let tid = unique_topic("client-txn-id");
        let producer =
            TransactionalProducer::init(client.clone(), &tid, None, ProducerConfig::default())
                .await
                .unwrap();
        producer.begin_transaction().unwrap();
        for i in 0..10 {
            producer
                .send(
                    &topic,
                    Some(format!("k{i}").into_bytes()),
                    b"committed".to_vec(),
                )
                .await
                .unwrap();
        }
        producer.commit_transaction().await.unwrap();
        producer.begin_transaction().unwrap();
        for i in 0..10 {
            producer
                .send(
                    &topic,
                    Some(format!("k{i}").into_bytes()),
                    b"aborted".to_vec(),
                )
                .await
                .unwrap();
        }
        producer.abort_transaction().await.unwrap();

        // A newer instance fences this one.
        let newer =
            TransactionalProducer::init(client.clone(), &tid, None, ProducerConfig::default())
                .await
                .unwrap();
        producer.begin_transaction().unwrap();
        let zombie = async {
            producer
                .send(&topic, None, b"zombie".to_vec())
                .await?
                .await?;
            producer.commit_transaction().await
        };
        let error = zombie.await.unwrap_err();
        assert_eq!(error.class(), ErrorClass::Fatal, "{error}");
        newer.begin_transaction().unwrap();
        newer.send(&topic, None, b"newer".to_vec()).await.unwrap();
        newer.commit_transaction().await.unwrap();

        for (isolation, expected) in [
            (Isolation::ReadCommitted, 11),
            (Isolation::ReadUncommitted, 21),
        ] {
            let mut consumer = Consumer::new(
                client.clone(),
                ConsumerConfig {
                    isolation,
                    auto_offset_reset: OffsetReset::Earliest,
                    ..ConsumerConfig::default()
                },
            );
            consumer.assign_topic(&topic).await.unwrap();
            let mut values = Vec::new();
            loop {
                let records = consumer.poll(Duration::from_millis(300)).await.unwrap();
                if records.is_empty() {
                    break;
                }
                values.extend(
                    records
                        .into_iter()
                        .map(|r| String::from_utf8(r.value.unwrap()).unwrap()),
                );
            }
            if isolation == Isolation::ReadCommitted {
                assert_eq!(values.len(), expected, "{values:?}");
                assert!(
                    values.iter().all(|v| v == "committed" || v == "newer"),
                    "{values:?}"
                );
            } else {
                assert!(values.len() >= expected, "{values:?}");
            }
        }
    });
}
