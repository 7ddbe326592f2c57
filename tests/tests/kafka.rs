//! End-to-end tests of issue 13: unmodified Kafka clients against `wrangler dev` through the
//! Kafka wire gateway (`kafdo-gateway`).
//!
//! Every test runs real clients, installed by `make tools`: kcat (the Debian package),
//! confluent-kafka (librdkafka) and kafka-python from `.venv`, kafkajs from `node_modules`; the
//! scripts are in `tests/kafka/`. What a client wrote is read back twice: by a Kafka client
//! through the gateway, and by Kafdo's HTTP API (`Client::read_all`), which is the truth: each
//! record exactly once, in order per key, headers with their duplicate keys in order.
//!
//! Hostile input over raw TCP (a garbage frame, a frame over the limit, a corrupt batch, a
//! produce to a topic that does not exist) gets a clear answer or closes that one connection,
//! and a read back shows nothing changed.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafdo_e2e::{rng, shared, unique_topic, Client, Gateway, Tool};
use kafdo_gateway::records::{write_batch, Batch, BatchRecord, Compression, RecordHeader};
use kafdo_types::limits::MAX_RECORD_BYTES;
use kafdo_types::{Header, ProduceRecord, Record};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
    DescribeProducersRequest, DescribeProducersResponse, DescribeTransactionsRequest,
    DescribeTransactionsResponse, ListTransactionsRequest, ListTransactionsResponse,
    MetadataRequest, MetadataResponse, ProduceRequest, ProduceResponse, RequestHeader,
    ResponseHeader, TopicName, TransactionalId,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use serde::Deserialize;
use serde_json::{json, Value};

/// A record as the scripts of `tests/kafka/` take and give it (Kafdo's JSON form).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
struct Consumed {
    partition: i32,
    offset: i64,
    #[serde(default)]
    timestamp: i64,
    key: Option<String>,
    value: Option<String>,
    headers: Vec<JsonHeader>,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
struct JsonHeader {
    key: String,
    value: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Delivery {
    partition: i32,
    offset: Option<i64>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Produced {
    deliveries: Vec<Option<Delivery>>,
    #[serde(default)]
    not_flushed: i64,
    #[serde(default)]
    errors: Vec<Value>,
}

#[derive(Debug, Deserialize)]
struct ConsumedAll {
    records: Vec<Consumed>,
}

fn b64(bytes: &[u8]) -> String {
    // The scripts decode with Python's base64 / Node's Buffer: standard alphabet, padded.
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// One test record: a key of `keys` kinds, a value naming it, two headers with the same key
/// (and a null one), so order and duplicates are checked on every read back.
struct Sample {
    key: Vec<u8>,
    value: Vec<u8>,
    headers: Vec<Header>,
}

fn samples(prefix: &str, count: usize, keys: usize) -> Vec<Sample> {
    (0..count)
        .map(|i| Sample {
            key: format!("key-{}", i % keys).into_bytes(),
            value: format!("{prefix}-{i}").into_bytes(),
            headers: vec![
                Header {
                    key: "dup".into(),
                    value: Some(format!("first-{i}").into_bytes()),
                },
                Header {
                    key: "dup".into(),
                    value: Some(format!("second-{i}").into_bytes()),
                },
                Header {
                    key: "nothing".into(),
                    value: None,
                },
            ],
        })
        .collect()
}

/// [`samples`] without the null-valued header, which kafka-python and kafkajs cannot send.
fn samples_without_null_headers(prefix: &str, count: usize, keys: usize) -> Vec<Sample> {
    let mut samples = samples(prefix, count, keys);
    for sample in &mut samples {
        sample.headers.retain(|h| h.value.is_some());
    }
    samples
}

fn as_json(samples: &[Sample]) -> Vec<Value> {
    samples
        .iter()
        .map(|s| {
            json!({
                "key": b64(&s.key),
                "value": b64(&s.value),
                "headers": s.headers.iter().map(|h| json!({
                    "key": h.key,
                    "value": h.value.as_deref().map(b64),
                })).collect::<Vec<_>>(),
            })
        })
        .collect()
}

/// Every partition of `topic` read over HTTP.
fn read_back(client: &Client, topic: &str, partitions: i32) -> BTreeMap<i32, Vec<Record>> {
    (0..partitions)
        .map(|p| (p, client.read_all(topic, p)))
        .collect()
}

/// Asserts that `log` holds each sample exactly once, that all of one key sit in one partition
/// in the order they were sent, and that the headers came back as sent.
fn assert_exactly_once(log: &BTreeMap<i32, Vec<Record>>, samples: &[Sample], check_headers: bool) {
    let mut seen: BTreeMap<Vec<u8>, (i32, i64)> = BTreeMap::new();
    let mut by_key: BTreeMap<Vec<u8>, (i32, usize)> = BTreeMap::new();
    let index: BTreeMap<&[u8], usize> = samples
        .iter()
        .enumerate()
        .map(|(i, s)| (s.value.as_slice(), i))
        .collect();
    for (partition, records) in log {
        for record in records {
            let value = record.value.clone().expect("a value");
            let Some(&i) = index.get(value.as_slice()) else {
                panic!(
                    "partition {partition} offset {} holds a record nobody sent: {:?}",
                    record.offset,
                    String::from_utf8_lossy(&value)
                );
            };
            if let Some(first) = seen.insert(value.clone(), (*partition, record.offset)) {
                panic!(
                    "{:?} is written twice: at {first:?} and at ({partition}, {})",
                    String::from_utf8_lossy(&value),
                    record.offset
                );
            }
            let sample = &samples[i];
            assert_eq!(record.key.as_deref(), Some(sample.key.as_slice()));
            if check_headers {
                assert_eq!(record.headers, sample.headers, "headers of record {i}");
            }
            if let Some((p, last)) = by_key.insert(sample.key.clone(), (*partition, i)) {
                assert_eq!(p, *partition, "one key, two partitions");
                assert!(last < i, "key order broken: record {i} after record {last}");
            }
        }
    }
    let missing: Vec<String> = samples
        .iter()
        .filter(|s| !seen.contains_key(&s.value))
        .map(|s| String::from_utf8_lossy(&s.value).into_owned())
        .take(5)
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} records are lost, e.g. {missing:?}",
        samples.len() - seen.len(),
        samples.len()
    );
}

/// Asserts that what a Kafka client consumed is exactly the HTTP read back (offsets, keys,
/// values, headers).
fn assert_consumed_matches(consumed: &[Consumed], log: &BTreeMap<i32, Vec<Record>>) {
    let mut consumed: Vec<&Consumed> = consumed.iter().collect();
    consumed.sort_by_key(|c| (c.partition, c.offset));
    let expected: Vec<(i32, &Record)> = log
        .iter()
        .flat_map(|(p, records)| records.iter().map(move |r| (*p, r)))
        .collect();
    assert_eq!(
        consumed.len(),
        expected.len(),
        "records consumed vs in the log"
    );
    for (c, (partition, r)) in consumed.iter().zip(expected) {
        assert_eq!((c.partition, c.offset), (partition, r.offset));
        assert_eq!(c.key, r.key.as_deref().map(b64));
        assert_eq!(c.value, r.value.as_deref().map(b64));
        let headers: Vec<JsonHeader> = r
            .headers
            .iter()
            .map(|h| JsonHeader {
                key: h.key.clone(),
                value: h.value.as_deref().map(b64),
            })
            .collect();
        assert_eq!(c.headers, headers, "headers at ({partition}, {})", r.offset);
    }
}

fn assert_all_delivered(produced: &Produced, count: usize) {
    assert_eq!(produced.not_flushed, 0, "records still queued");
    assert!(produced.errors.is_empty(), "errors: {:?}", produced.errors);
    assert_eq!(produced.deliveries.len(), count);
    for (i, delivery) in produced.deliveries.iter().enumerate() {
        let delivery = delivery
            .as_ref()
            .unwrap_or_else(|| panic!("record {i} has no delivery report"));
        assert!(delivery.error.is_none(), "record {i}: {:?}", delivery.error);
        assert!(delivery.offset.is_some_and(|o| o >= 0) && delivery.partition >= 0);
    }
}

fn confluent_produce(
    gateway: &Gateway,
    topic: &str,
    config: Value,
    records: &[Sample],
) -> Produced {
    let mut config = config;
    config["bootstrap.servers"] = json!(gateway.bootstrap());
    Tool::python("confluent_produce.py")
        .json_stdin(&json!({"config": config, "topic": topic, "records": as_json(records)}))
        .run_json()
}

fn confluent_consume(
    gateway: &Gateway,
    topic: &str,
    partitions: i32,
    config: Value,
) -> Vec<Consumed> {
    let mut config = config;
    config["bootstrap.servers"] = json!(gateway.bootstrap());
    let all: ConsumedAll = Tool::python("confluent_consume.py")
        .json_stdin(&json!({"config": config, "topic": topic, "partitions": partitions}))
        .run_json();
    all.records
}

#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn kcat_lists_produces_and_consumes() {
    let wrangler = shared();
    let client = wrangler.client();
    let gateway = Gateway::start(wrangler.url());
    let topic = unique_topic("kcat");
    client.create_topic(&topic, 3);

    let listing: Value = serde_json::from_str(
        &Tool::kcat()
            .args(["-b", &gateway.bootstrap(), "-L", "-J", "-t", &topic])
            .run(),
    )
    .expect("kcat -L -J prints JSON");
    let brokers = listing["brokers"].as_array().expect("brokers");
    assert_eq!(brokers.len(), 1, "{listing}");
    assert_eq!(brokers[0]["name"], json!(gateway.bootstrap()), "{listing}");
    let topics = listing["topics"].as_array().expect("topics");
    assert_eq!(topics.len(), 1, "{listing}");
    assert_eq!(topics[0]["topic"], json!(topic));
    assert_eq!(topics[0]["partitions"].as_array().unwrap().len(), 3);

    // Keyed lines: kcat partitions by key (murmur2-random, like the Java client).
    let lines: String = (0..60).map(|i| format!("k{}:v{i}\n", i % 7)).collect();
    Tool::kcat()
        .args([
            "-b",
            &gateway.bootstrap(),
            "-P",
            "-t",
            &topic,
            "-K:",
            "-z",
            "gzip",
        ])
        .args(["-X", "partitioner=murmur2_random"])
        .stdin(lines)
        .run();
    // And some to a chosen partition.
    Tool::kcat()
        .args(["-b", &gateway.bootstrap(), "-P", "-t", &topic, "-p", "2"])
        .stdin("p2-a\np2-b\n")
        .run();

    let log = read_back(&client, &topic, 3);
    let total: usize = log.values().map(Vec::len).sum();
    assert_eq!(total, 62);
    let p2: Vec<Vec<u8>> = log[&2].iter().filter_map(|r| r.value.clone()).collect();
    assert!(
        p2.ends_with(&[b"p2-a".to_vec(), b"p2-b".to_vec()]),
        "{p2:?}"
    );
    let mut partition_of_key = BTreeMap::new();
    for (p, records) in &log {
        let mut last_per_key = BTreeMap::new();
        for r in records.iter().filter(|r| r.key.is_some()) {
            let key = r.key.clone().unwrap();
            assert_eq!(*partition_of_key.entry(key.clone()).or_insert(*p), *p);
            let value = String::from_utf8(r.value.clone().unwrap()).unwrap();
            let n: u32 = value[1..].parse().unwrap();
            if let Some(last) = last_per_key.insert(key, n) {
                assert!(last < n, "key order in partition {p}");
            }
        }
    }

    let out = Tool::kcat()
        .args(["-b", &gateway.bootstrap(), "-C", "-t", &topic, "-e", "-J"])
        .args(["-o", "beginning"])
        .run();
    let mut consumed = 0;
    for line in out.lines().filter(|l| !l.trim().is_empty()) {
        let message: Value = serde_json::from_str(line).expect("kcat -J prints JSON lines");
        let partition = message["partition"].as_i64().unwrap() as i32;
        let offset = message["offset"].as_i64().unwrap();
        let record = log[&partition]
            .iter()
            .find(|r| r.offset == offset)
            .unwrap_or_else(|| panic!("kcat read ({partition}, {offset}), not in the log"));
        let payload = message["payload"].as_str().unwrap().as_bytes().to_vec();
        assert_eq!(record.value.as_ref(), Some(&payload));
        consumed += 1;
    }
    assert_eq!(consumed, 62, "kcat -C -e read every record once:\n{out}");

    // ListOffsets by timestamp (`kcat -Q`): the first offset whose timestamp is at or after.
    let p2_a = log[&2]
        .iter()
        .find(|r| r.value.as_deref() == Some(b"p2-a"))
        .unwrap();
    let first_at = |t: i64| {
        log[&2]
            .iter()
            .find(|r| r.timestamp >= t)
            .map_or(-1, |r| r.offset)
    };
    let last_ts = log[&2].iter().map(|r| r.timestamp).max().unwrap();
    for t in [0, p2_a.timestamp, last_ts + 1] {
        let out = Tool::kcat()
            .args([
                "-b",
                &gateway.bootstrap(),
                "-Q",
                "-t",
                &format!("{topic}:2:{t}"),
            ])
            .run();
        assert!(
            out.contains(&format!("[2] offset {}", first_at(t))),
            "timestamp {t}: {out}"
        );
    }
}

#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn confluent_idempotent_producer_every_codec_and_duplicate_headers() {
    let wrangler = shared();
    let client = wrangler.client();
    let gateway = Gateway::start(wrangler.url());
    let topic = unique_topic("confluent-codecs");
    client.create_topic(&topic, 4);
    let mut all = Vec::new();
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let records = samples(codec, 400, 13);
        let produced = confluent_produce(
            &gateway,
            &topic,
            json!({"enable.idempotence": true, "compression.codec": codec,
                   "linger.ms": 5, "batch.num.messages": 50}),
            &records,
        );
        assert_all_delivered(&produced, records.len());
        all.extend(records);
    }
    let log = read_back(&client, &topic, 4);
    assert_exactly_once(&log, &all, true);
    for p in 0..4 {
        for records in [&log[&p]] {
            for r in records {
                assert!(
                    r.timestamp > 1_600_000_000_000,
                    "a create time: {}",
                    r.timestamp
                );
            }
        }
    }
    let consumed = confluent_consume(&gateway, &topic, 4, json!({}));
    assert_consumed_matches(&consumed, &log);
}

#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn confluent_one_mebibyte_records() {
    let wrangler = shared();
    let client = wrangler.client();
    let gateway = Gateway::start(wrangler.url());
    let topic = unique_topic("confluent-large");
    client.create_topic(&topic, 1);
    let mut rng = rng("confluent_one_mebibyte_records");
    // Key and value of `size` bytes in all: printable, so each stays unique and debuggable.
    let mut large = |i: usize, size: usize| {
        let key = format!("large-{i}").into_bytes();
        let mut value = format!("large-{i}-").into_bytes();
        value.extend((key.len() + value.len()..size).map(|_| b'a' + rng.u8(..26)));
        Sample {
            key,
            value,
            headers: Vec::new(),
        }
    };
    // Kafdo's record limit is 1 MiB of key, value and headers (Kafka's default
    // `max.message.bytes` is 1 MiB and 12 bytes for a whole batch).
    let records: Vec<Sample> = (0..3).map(|i| large(i, MAX_RECORD_BYTES)).collect();
    let too_large = large(3, MAX_RECORD_BYTES + 1);
    let produced = confluent_produce(
        &gateway,
        &topic,
        json!({"enable.idempotence": true, "message.max.bytes": 4_000_000,
               "compression.codec": "none"}),
        &records,
    );
    assert_all_delivered(&produced, records.len());
    let log = read_back(&client, &topic, 1);
    assert_exactly_once(&log, &records, true);
    // One byte more is refused with the Kafka error and writes nothing.
    let refused = confluent_produce(
        &gateway,
        &topic,
        json!({"message.max.bytes": 4_000_000, "compression.codec": "none", "retries": 0}),
        std::slice::from_ref(&too_large),
    );
    let error = refused.deliveries[0].as_ref().and_then(|d| d.error.clone());
    assert!(
        error
            .as_deref()
            .is_some_and(|e| e.starts_with("MSG_SIZE_TOO_LARGE")),
        "{error:?}"
    );
    assert_eq!(
        read_back(&client, &topic, 1),
        log,
        "the refused record changed the log"
    );
    let consumed = confluent_consume(
        &gateway,
        &topic,
        1,
        json!({"fetch.max.bytes": 8_000_000, "max.partition.fetch.bytes": 4_000_000}),
    );
    assert_consumed_matches(&consumed, &log);
}

#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn confluent_admin_creates_and_deletes_topics() {
    let wrangler = shared();
    let client = wrangler.client();
    let gateway = Gateway::start(wrangler.url());
    let (a, b) = (unique_topic("admin-a"), unique_topic("admin-b"));
    let existing = unique_topic("admin-existing");
    client.create_topic(&existing, 1);
    let answer: Value = Tool::python("confluent_admin.py")
        .json_stdin(&json!({
            "bootstrap": gateway.bootstrap(),
            "create": [{"name": a, "partitions": 3}, {"name": b, "partitions": 1},
                       {"name": existing, "partitions": 2}],
            "delete": [b, unique_topic("admin-never")],
        }))
        .run_json();
    assert_eq!(answer["created"][&a], Value::Null, "{answer}");
    assert_eq!(answer["created"][&b], Value::Null, "{answer}");
    assert_eq!(answer["created"][&existing], json!("TOPIC_ALREADY_EXISTS"));
    assert_eq!(answer["deleted"][&b], Value::Null, "{answer}");
    let never = answer["deleted"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(name, _)| name.starts_with("admin-never"))
        .unwrap()
        .1
        .clone();
    // librdkafka's name for UNKNOWN_TOPIC_OR_PARTITION (code 3).
    assert_eq!(never, json!("UNKNOWN_TOPIC_OR_PART"));
    assert_eq!(answer["topics"][&a], json!(3), "{answer}");
    assert!(answer["topics"].get(&b).is_none(), "{answer}");
    // The truth: HTTP sees the same, and the topic that existed is untouched.
    assert_eq!(client.partition_info(&a, 2).high_watermark, 0);
    let names: Vec<String> = client
        .list_topics()
        .topics
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert!(names.contains(&a) && names.contains(&existing) && !names.contains(&b));
    assert_eq!(
        client
            .get(&format!("/v1/topics/{existing}"))
            .expect::<kafdo_types::api::TopicDescription>(200)
            .partitions,
        1
    );
}

#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn confluent_admin_deletes_records() {
    let wrangler = shared();
    let client = wrangler.client();
    let gateway = Gateway::start(wrangler.url());
    let topic = unique_topic("delete-records");
    client.create_topic(&topic, 3);
    for p in 0..3 {
        let values: Vec<ProduceRecord> = (0..5)
            .map(|i| ProduceRecord::value(format!("{p}-{i}")))
            .collect();
        client.produce_partition(&topic, p, values);
    }
    let answer: Value = Tool::python("confluent_admin.py")
        .json_stdin(&json!({
            "bootstrap": gateway.bootstrap(),
            "delete_records": [
                {"topic": topic, "partition": 0, "before": 3},
                // -1: everything up to the high watermark.
                {"topic": topic, "partition": 1, "before": -1},
                {"topic": topic, "partition": 2, "before": 6},
            ],
        }))
        .run_json();
    let deleted = &answer["records_deleted"];
    assert_eq!(deleted[format!("{topic}/0")], json!(3), "{answer}");
    assert_eq!(deleted[format!("{topic}/1")], json!(5), "{answer}");
    assert_eq!(
        deleted[format!("{topic}/2")],
        json!("OFFSET_OUT_OF_RANGE"),
        "{answer}"
    );
    // What HTTP reads: partition 0 from offset 3, partition 1 empty, partition 2 untouched.
    let values = |p: i32| -> Vec<String> {
        client
            .read_all(&topic, p)
            .into_iter()
            .map(|r| String::from_utf8(r.value.unwrap()).unwrap())
            .collect()
    };
    assert_eq!(values(0), ["0-3", "0-4"]);
    assert_eq!(client.partition_info(&topic, 0).log_start_offset, 3);
    assert!(values(1).is_empty());
    assert_eq!(client.partition_info(&topic, 1).log_start_offset, 5);
    assert_eq!(values(2).len(), 5);
    assert_eq!(client.partition_info(&topic, 2).log_start_offset, 0);
}

#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn confluent_admin_creates_partitions() {
    let wrangler = shared();
    let client = wrangler.client();
    let gateway = Gateway::start(wrangler.url());
    let (grown, kept) = (
        unique_topic("partitions-grown"),
        unique_topic("partitions-kept"),
    );
    client.create_topic(&grown, 2);
    client.create_topic(&kept, 3);
    client.produce_partition(&grown, 1, vec![ProduceRecord::value("before")]);
    let answer: Value = Tool::python("confluent_admin.py")
        .json_stdin(&json!({
            "bootstrap": gateway.bootstrap(),
            "create_partitions": [{"topic": grown, "count": 5}, {"topic": kept, "count": 2}],
        }))
        .run_json();
    assert_eq!(
        answer["partitions_created"][&grown],
        Value::Null,
        "{answer}"
    );
    assert_eq!(
        answer["partitions_created"][&kept],
        json!("INVALID_PARTITIONS"),
        "{answer}"
    );
    assert_eq!(answer["topics"][&grown], json!(5), "{answer}");
    assert_eq!(answer["topics"][&kept], json!(3), "{answer}");
    // The old partitions keep their records; the new ones take writes.
    assert_eq!(client.read_all(&grown, 1).len(), 1);
    client.produce_partition(&grown, 4, vec![ProduceRecord::value("after")]);
    assert_eq!(client.partition_info(&grown, 4).high_watermark, 1);
}

/// The transactions a script runs: one per entry of `commits` (committed or aborted), each of
/// `records` values `t{i}-{j}` spread over three partitions (`j % 3`).
fn transaction_specs(commits: &[bool], records: i32) -> Vec<Value> {
    commits
        .iter()
        .enumerate()
        .map(|(i, commit)| {
            let records: Vec<Value> = (0..records)
                .map(|j| json!({"partition": j % 3, "value": format!("t{i}-{j}")}))
                .collect();
            json!({"commit": commit, "records": records})
        })
        .collect()
}

/// What a read_committed reader sees of [`transaction_specs`]: the committed transactions'
/// values (base64, as the scripts print them), by partition in offset order.
fn committed_values(commits: &[bool], records: i32) -> BTreeMap<i32, Vec<String>> {
    let mut expected: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    for (i, _) in commits.iter().enumerate().filter(|(_, c)| **c) {
        for j in 0..records {
            expected
                .entry(j % 3)
                .or_default()
                .push(b64(format!("t{i}-{j}").as_bytes()));
        }
    }
    expected
}

/// The values (base64, as the scripts print them) a consumer read, by partition in the order
/// read.
fn values_by_partition(consumed: &[Consumed]) -> BTreeMap<i32, Vec<String>> {
    let mut by_partition: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    for c in consumed {
        let value = c.value.clone().expect("a value");
        by_partition.entry(c.partition).or_default().push(value);
    }
    by_partition
}

#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn confluent_transactions_commit_and_abort_across_three_partitions() {
    let wrangler = shared();
    let client = wrangler.client();
    let gateway = Gateway::start(wrangler.url());
    let topic = unique_topic("txn-confluent");
    client.create_topic(&topic, 3);
    // Six transactions of nine records over three partitions; the second and fifth aborted.
    let commits = [true, false, true, true, false, true];
    let transactions = transaction_specs(&commits, 9);
    let answer: Value = Tool::python("confluent_txn.py")
        .json_stdin(&json!({
            "bootstrap": gateway.bootstrap(),
            "topic": topic,
            "transactional_id": unique_topic("txn-confluent-id"),
            "transactions": transactions,
            "zombie": true,
        }))
        .run_json();
    assert_eq!(
        answer["ended"],
        json!([null, null, null, null, null, null]),
        "{answer}"
    );
    // The fenced instance's commit fails: librdkafka's fatal "_FENCED" (from
    // PRODUCER_FENCED / INVALID_PRODUCER_EPOCH).
    assert_eq!(answer["zombie"], json!("_FENCED"), "{answer}");
    // Exactly the committed records, once each, in order, for a read_committed consumer.
    let expected = committed_values(&commits, 9);
    let committed = confluent_consume(
        &gateway,
        &topic,
        3,
        json!({"isolation.level": "read_committed"}),
    );
    assert_eq!(values_by_partition(&committed), expected);
    let http: BTreeMap<i32, Vec<String>> = (0..3)
        .map(|p| {
            let values = client
                .read_all(&topic, p)
                .into_iter()
                .map(|r| b64(&r.value.unwrap()))
                .collect();
            (p, values)
        })
        .collect();
    assert_eq!(http, expected, "HTTP read_committed sees the same");
    // read_uncommitted sees the aborted transactions and the zombie's records too.
    let everything = confluent_consume(
        &gateway,
        &topic,
        3,
        json!({"isolation.level": "read_uncommitted"}),
    );
    let all = values_by_partition(&everything);
    assert_eq!(all.values().map(Vec::len).sum::<usize>(), 6 * 9 + 2);
    assert!(all[&0].contains(&b64(b"zombie-0")));
    assert!(all[&1].contains(&b64(b"t1-1")));
    // Nothing is left open: the last stable offset is the high watermark everywhere.
    for p in 0..3 {
        let info = client.partition_info(&topic, p);
        assert_eq!(
            info.last_stable_offset, info.high_watermark,
            "partition {p}"
        );
    }
}

/// Runs `tool` (kafka-python's or kafkajs's script, op `transactions`): three transactions over
/// three partitions, the second aborted; a read_committed read sees exactly the committed ones.
/// Returns the gateway, the topic and the committed values, for a read by the client itself.
fn transactions_with(tool: Tool, prefix: &str) -> (Gateway, String, BTreeMap<i32, Vec<String>>) {
    let wrangler = shared();
    let client = wrangler.client();
    let gateway = Gateway::start(wrangler.url());
    let topic = unique_topic(prefix);
    client.create_topic(&topic, 3);
    let commits = [true, false, true];
    let transactions = transaction_specs(&commits, 6);
    let answer: Value = tool
        .json_stdin(&json!({
            "op": "transactions",
            "bootstrap": gateway.bootstrap(),
            "topic": topic,
            "transactional_id": unique_topic(&format!("{prefix}-id")),
            "transactions": transactions,
        }))
        .run_json();
    assert_eq!(answer["ended"], json!([null, null, null]), "{answer}");
    let expected = committed_values(&commits, 6);
    for p in 0..3 {
        let read: Vec<String> = client
            .read_all(&topic, p)
            .into_iter()
            .map(|r| b64(&r.value.unwrap()))
            .collect();
        assert_eq!(read, expected[&p], "partition {p}");
        let info = client.partition_info(&topic, p);
        assert_eq!(info.last_stable_offset, info.high_watermark);
    }
    (gateway, topic, expected)
}

#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn kafka_python_transactions_commit_and_abort() {
    let (gateway, topic, expected) =
        transactions_with(Tool::python("kafka_python_client.py"), "txn-kafka-python");
    // kafka-python's own read_committed consumer sees the first and third transactions only.
    let consumed: ConsumedAll = Tool::python("kafka_python_client.py")
        .json_stdin(
            &json!({"op": "consume", "bootstrap": gateway.bootstrap(), "topic": topic,
                            "partitions": 3, "isolation": "read_committed"}),
        )
        .run_json();
    assert_eq!(values_by_partition(&consumed.records), expected);
}

#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn kafkajs_transactions_commit_and_abort() {
    // (kafkajs reads only through a consumer group: part 2; HTTP reads read_committed here.)
    transactions_with(Tool::node("kafkajs_client.mjs"), "txn-kafkajs");
}

#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn gateway_killed_mid_stream_loses_and_doubles_nothing() {
    let wrangler = shared();
    let client = wrangler.client();
    let mut gateway = Gateway::start(wrangler.url());
    let topic = unique_topic("gateway-kill");
    client.create_topic(&topic, 3);
    let records = samples("kill", 3000, 31);
    let config = json!({
        "bootstrap.servers": gateway.bootstrap(),
        "enable.idempotence": true,
        "linger.ms": 2,
        "batch.num.messages": 20,
        "message.timeout.ms": 150_000,
        "reconnect.backoff.ms": 50,
        "reconnect.backoff.max.ms": 500,
    });
    let running = Tool::python("confluent_produce.py")
        .json_stdin(&json!({
            "config": config, "topic": topic, "records": as_json(&records),
            "pace": {"every": 100, "sleep_ms": 60},
        }))
        .spawn();
    // Twice, while the producer is mid-stream: the gateway dies with requests in flight.
    for _ in 0..2 {
        std::thread::sleep(Duration::from_millis(600));
        gateway.kill();
        std::thread::sleep(Duration::from_millis(400));
        gateway.restart();
    }
    let mut produced: Produced = serde_json::from_str(&running.finish()).expect("a JSON result");
    // librdkafka reports each outage (`_TRANSPORT`, `_ALL_BROKERS_DOWN`) and retries; anything
    // else, and any fatal error, is a failure.
    produced.errors.retain(|e| {
        e["fatal"] != json!(false)
            || !["_TRANSPORT", "_ALL_BROKERS_DOWN"].contains(&e["name"].as_str().unwrap_or(""))
    });
    assert_all_delivered(&produced, records.len());
    let log = read_back(&client, &topic, 3);
    assert_exactly_once(&log, &records, true);
    let consumed = confluent_consume(&gateway, &topic, 3, json!({}));
    assert_consumed_matches(&consumed, &log);
    checker_judges(&client, &topic, 3, &records, &produced);
}

/// The simulator's checker judges a Kafka client's run, as `tests/tests/history.rs` has it
/// judge HTTP runs: every record's produce as one call of its own process (librdkafka had them
/// in flight together), answered with the offset its delivery report gave (or unknown), then
/// the final scans of every partition in both isolations. The checker proves what it proves of
/// simulated runs: no acknowledged record lost or written twice, one value per offset, dense
/// offsets, the acknowledged offsets where the records are.
fn checker_judges(
    client: &Client,
    topic: &str,
    partitions: i32,
    records: &[Sample],
    produced: &Produced,
) {
    use kafdo_e2e::FetchParams;
    use kafdo_sim::e2e::{self, HistoryFile, Outcome};
    use kafdo_sim::history::{Reply, Request};
    use kafdo_types::api::Isolation;

    let history = HistoryFile::in_memory();
    let delivered: Vec<(i32, Option<i64>)> = produced
        .deliveries
        .iter()
        .map(|d| d.as_ref().map_or((0, None), |d| (d.partition, d.offset)))
        .collect();
    for (i, (sample, (partition, _))) in records.iter().zip(&delivered).enumerate() {
        history.invoke(
            i as u32,
            Request::Produce {
                topic: topic.to_string(),
                partition: *partition,
                producer_id: None,
                producer_epoch: None,
                base_sequence: None,
                transactional_id: None,
                values: vec![String::from_utf8(sample.value.clone()).unwrap()],
                sources: vec![],
            },
        );
    }
    for (i, (_, offset)) in delivered.iter().enumerate() {
        let outcome = match offset {
            Some(o) => Outcome::Ok(Reply::Produce {
                base_offset: *o,
                last_offset: *o,
                duplicate: false,
            }),
            None => Outcome::Info("no delivery report".into()),
        };
        history.complete(i as u32, outcome);
    }
    history.settled();
    let reader = records.len() as u32;
    for p in 0..partitions {
        for isolation in [Isolation::ReadUncommitted, Isolation::ReadCommitted] {
            history.invoke(
                reader,
                Request::Scan {
                    topic: topic.to_string(),
                    partition: p,
                    isolation,
                },
            );
            let params = |offset| FetchParams {
                isolation: Some(isolation.as_str()),
                ..FetchParams::at(offset)
            };
            let mut all = client.fetch(topic, p, &params(0));
            while all.next_offset < all.high_watermark {
                let page = client.fetch(topic, p, &params(all.next_offset));
                assert!(
                    page.next_offset > all.next_offset,
                    "a scan made no progress"
                );
                all.records.extend(page.records);
                all.next_offset = page.next_offset;
                all.last_stable_offset = page.last_stable_offset;
            }
            history.complete(reader, Outcome::Ok(e2e::fetch_reply(&all)));
        }
    }
    let report = history.check().expect("a well-formed history");
    assert!(report.is_valid(), "{report}");
}

#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn kafka_python_produces_consumes_and_administers() {
    let wrangler = shared();
    let client = wrangler.client();
    let gateway = Gateway::start(wrangler.url());
    let topic = unique_topic("kafka-python");
    let admin: Value = Tool::python("kafka_python_client.py")
        .json_stdin(&json!({"op": "admin", "bootstrap": gateway.bootstrap(),
                            "create": [{"name": topic, "partitions": 3}]}))
        .run_json();
    assert_eq!(admin["created"][&topic], Value::Null, "{admin}");
    assert!(admin["topics"].as_array().unwrap().contains(&json!(topic)));
    let mut all = Vec::new();
    for (compression, idempotent) in [
        (Value::Null, false),
        (json!("gzip"), true),
        (json!("lz4"), true),
        (json!("zstd"), true),
    ] {
        let records = samples_without_null_headers(&format!("kp-{compression}"), 300, 11);
        let produced: Value = Tool::python("kafka_python_client.py")
            .json_stdin(&json!({"op": "produce", "bootstrap": gateway.bootstrap(),
                                "topic": topic, "idempotent": idempotent,
                                "compression": compression, "records": as_json(&records)}))
            .run_json();
        assert_eq!(
            produced["deliveries"].as_array().unwrap().len(),
            records.len()
        );
        all.extend(records);
    }
    let log = read_back(&client, &topic, 3);
    assert_exactly_once(&log, &all, true);
    for isolation in ["read_uncommitted", "read_committed"] {
        let consumed: ConsumedAll = Tool::python("kafka_python_client.py")
            .json_stdin(&json!({"op": "consume", "bootstrap": gateway.bootstrap(),
                                "topic": topic, "partitions": 3, "isolation": isolation}))
            .run_json();
        assert_consumed_matches(&consumed.records, &log);
    }
    let admin: Value = Tool::python("kafka_python_client.py")
        .json_stdin(&json!({"op": "admin", "bootstrap": gateway.bootstrap(), "delete": [topic]}))
        .run_json();
    assert_eq!(admin["deleted"][&topic], Value::Null, "{admin}");
    assert!(!admin["topics"].as_array().unwrap().contains(&json!(topic)));
    client
        .get(&format!("/v1/topics/{topic}"))
        .expect_code(kafdo_types::ErrorCode::UnknownTopicOrPartition);
}

#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn kafkajs_produces_and_administers() {
    let wrangler = shared();
    let client = wrangler.client();
    let gateway = Gateway::start(wrangler.url());
    let topic = unique_topic("kafkajs");
    let admin: Value = Tool::node("kafkajs_client.mjs")
        .json_stdin(&json!({"op": "admin", "bootstrap": gateway.bootstrap(),
                            "create": [{"name": topic, "partitions": 2}]}))
        .run_json();
    assert_eq!(admin["created"][&topic], Value::Null, "{admin}");
    assert_eq!(
        admin["offsets"][&topic],
        json!([{"partition": 0, "low": 0, "high": 0}, {"partition": 1, "low": 0, "high": 0}]),
        "{admin}"
    );
    let mut all = Vec::new();
    for (gzip, idempotent) in [(false, false), (true, true)] {
        let records = samples_without_null_headers(&format!("js-{gzip}-{idempotent}"), 300, 9);
        let produced: Value = Tool::node("kafkajs_client.mjs")
            .json_stdin(&json!({"op": "produce", "bootstrap": gateway.bootstrap(),
                                "topic": topic, "idempotent": idempotent, "gzip": gzip,
                                "records": as_json(&records)}))
            .run_json();
        assert!(!produced["deliveries"].as_array().unwrap().is_empty());
        all.extend(records);
    }
    let log = read_back(&client, &topic, 2);
    assert_exactly_once(&log, &all, true);
    let consumed = confluent_consume(&gateway, &topic, 2, json!({}));
    assert_consumed_matches(&consumed, &log);
    let admin: Value = Tool::node("kafkajs_client.mjs")
        .json_stdin(&json!({"op": "admin", "bootstrap": gateway.bootstrap(), "delete": [topic]}))
        .run_json();
    assert_eq!(admin["deleted"][&topic], Value::Null, "{admin}");
    assert!(!admin["topics"].as_array().unwrap().contains(&json!(topic)));
}

// ---- hostile input over raw TCP ----

fn connect(gateway: &Gateway) -> TcpStream {
    let stream = TcpStream::connect(gateway.bootstrap()).expect("connect to the gateway");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
}

fn request_frame<R: Encodable>(
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &R,
) -> Vec<u8> {
    let mut payload = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("kafdo-e2e-hostile")))
        .encode(&mut payload, key.request_header_version(version))
        .unwrap();
    body.encode(&mut payload, version).unwrap();
    let mut frame = (payload.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&payload);
    frame
}

/// Reads one answer frame; `None` when the gateway closed the connection.
fn read_answer(stream: &mut TcpStream) -> Option<Bytes> {
    let mut length = [0u8; 4];
    if stream.read_exact(&mut length).is_err() {
        return None;
    }
    let mut body = vec![0u8; i32::from_be_bytes(length) as usize];
    stream.read_exact(&mut body).ok()?;
    Some(Bytes::from(body))
}

fn call<R: Encodable, A: Decodable>(
    stream: &mut TcpStream,
    key: ApiKey,
    version: i16,
    body: &R,
) -> A {
    stream
        .write_all(&request_frame(key, version, 7, body))
        .unwrap();
    let mut answer = read_answer(stream).expect("an answer, not a closed connection");
    let header = ResponseHeader::decode(&mut answer, key.response_header_version(version)).unwrap();
    assert_eq!(header.correlation_id, 7);
    A::decode(&mut answer, version).unwrap()
}

fn assert_closed(stream: &mut TcpStream) {
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) | Err(_) => {}
        Ok(_) => panic!("the gateway answered a frame that should close the connection"),
    }
}

fn api_versions_still_served(gateway: &Gateway) {
    let mut stream = connect(gateway);
    let answer: ApiVersionsResponse = call(
        &mut stream,
        ApiKey::ApiVersions,
        3,
        &ApiVersionsRequest::default(),
    );
    assert_eq!(answer.error_code, 0);
    assert!(!answer.api_keys.is_empty());
}

fn produce_request(topic: &str, partition: i32, records: Bytes) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(records))])])
}

fn one_batch(values: &[&str]) -> BytesMut {
    let mut out = BytesMut::new();
    write_batch(
        &mut out,
        &Batch {
            base_offset: 0,
            partition_leader_epoch: -1,
            compression: Compression::None,
            timestamp_type_log_append: false,
            transactional: false,
            control: false,
            last_offset_delta: values.len() as i32 - 1,
            base_timestamp: 1_700_000_000_000,
            max_timestamp: 1_700_000_000_000,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            records: values
                .iter()
                .enumerate()
                .map(|(i, v)| BatchRecord {
                    offset_delta: i as i32,
                    timestamp_delta: 0,
                    key: None,
                    value: Some(v.as_bytes().to_vec()),
                    headers: vec![RecordHeader {
                        key: "h".into(),
                        value: None,
                    }],
                })
                .collect(),
        },
    );
    out
}

fn produce_error(answer: &ProduceResponse) -> i16 {
    answer.responses[0].partition_responses[0].error_code
}

#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn hostile_frames_close_one_connection_and_change_nothing() {
    let wrangler = shared();
    let client = wrangler.client();
    let gateway = Gateway::start(wrangler.url());
    let topic = unique_topic("hostile-kafka");
    client.create_topic(&topic, 1);
    // A good produce first, so there is something that must stay as it is.
    let mut good = connect(&gateway);
    let answer: ProduceResponse = call(
        &mut good,
        ApiKey::Produce,
        9,
        &produce_request(&topic, 0, one_batch(&["kept-0", "kept-1"]).freeze()),
    );
    assert_eq!(produce_error(&answer), 0);
    let before = client.read_all(&topic, 0);
    assert_eq!(before.len(), 2);

    // Garbage after a plausible length: that connection closes, the other keeps working.
    let mut stream = connect(&gateway);
    stream
        .write_all(&[0, 0, 0, 12, 0xff, 0xff, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
        .unwrap();
    assert_closed(&mut stream);
    // A frame over the limit, declared and never sent.
    let mut stream = connect(&gateway);
    stream.write_all(&i32::MAX.to_be_bytes()).unwrap();
    assert_closed(&mut stream);
    // A negative length.
    let mut stream = connect(&gateway);
    stream.write_all(&(-5i32).to_be_bytes()).unwrap();
    assert_closed(&mut stream);
    // A truncated Produce body: the header is right, the body stops short.
    let mut stream = connect(&gateway);
    let mut frame = request_frame(
        ApiKey::Produce,
        9,
        1,
        &produce_request(&topic, 0, one_batch(&["never"]).freeze()),
    );
    frame.truncate(frame.len() - 20);
    let length = (frame.len() - 4) as i32;
    frame[..4].copy_from_slice(&length.to_be_bytes());
    stream.write_all(&frame).unwrap();
    assert_closed(&mut stream);

    // Well-formed frames with bad contents get Kafka's error per partition, connection kept.
    let mut corrupt = one_batch(&["corrupt"]);
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0x55; // the CRC covers it
    let answer: ProduceResponse = call(
        &mut good,
        ApiKey::Produce,
        9,
        &produce_request(&topic, 0, corrupt.freeze()),
    );
    assert_eq!(produce_error(&answer), 2, "CORRUPT_MESSAGE");
    let mut short = one_batch(&["short-a", "short-b"]);
    short.truncate(short.len() - 3);
    let answer: ProduceResponse = call(
        &mut good,
        ApiKey::Produce,
        9,
        &produce_request(&topic, 0, short.freeze()),
    );
    assert_ne!(
        produce_error(&answer),
        0,
        "a batch cut short is not written"
    );
    let mut not_records = BytesMut::new();
    not_records.put_slice(b"this is not a record batch at all, but it is long enough......");
    let answer: ProduceResponse = call(
        &mut good,
        ApiKey::Produce,
        9,
        &produce_request(&topic, 0, not_records.freeze()),
    );
    assert_ne!(produce_error(&answer), 0);
    let missing = unique_topic("hostile-never-created");
    let answer: ProduceResponse = call(
        &mut good,
        ApiKey::Produce,
        9,
        &produce_request(&missing, 0, one_batch(&["lost"]).freeze()),
    );
    assert_eq!(produce_error(&answer), 3, "UNKNOWN_TOPIC_OR_PARTITION");
    let answer: ProduceResponse = call(
        &mut good,
        ApiKey::Produce,
        9,
        &produce_request(&topic, 7, one_batch(&["lost"]).freeze()),
    );
    assert_eq!(produce_error(&answer), 3, "UNKNOWN_TOPIC_OR_PARTITION");

    // Nothing changed, and the gateway still serves everyone.
    assert_eq!(client.read_all(&topic, 0), before);
    client
        .get(&format!("/v1/topics/{missing}"))
        .expect_code(kafdo_types::ErrorCode::UnknownTopicOrPartition);
    api_versions_still_served(&gateway);
    let log = gateway.log_tail();
    assert!(
        log.contains("WARN"),
        "a closed connection leaves a log line:\n{log}"
    );
}

#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn topic_ids_in_metadata_and_delete_topics_by_id() {
    let wrangler = shared();
    let client = wrangler.client();
    let gateway = Gateway::start(wrangler.url());
    let topic = unique_topic("topic-ids");
    let described = client.create_topic(&topic, 2);
    let id = uuid::Uuid::parse_str(&described.topic_id).unwrap();
    let mut stream = connect(&gateway);
    let by = |name: Option<&str>, topic_id| {
        MetadataRequest::default().with_topics(Some(vec![MetadataRequestTopic::default()
            .with_name(name.map(|n| TopicName(StrBytes::from_string(n.to_string()))))
            .with_topic_id(topic_id)]))
    };
    // By name: Metadata v12 carries the id HTTP shows.
    let answer: MetadataResponse = call(
        &mut stream,
        ApiKey::Metadata,
        12,
        &by(Some(&topic), uuid::Uuid::nil()),
    );
    assert_eq!(answer.topics[0].error_code, 0);
    assert_eq!(answer.topics[0].topic_id, id);
    // By id: the topic, by name; an id no topic has is UNKNOWN_TOPIC_ID (100).
    let answer: MetadataResponse = call(&mut stream, ApiKey::Metadata, 12, &by(None, id));
    let found = &answer.topics[0];
    assert_eq!(
        found.name.as_ref().map(|n| n.0.to_string()),
        Some(topic.clone())
    );
    assert_eq!(found.partitions.len(), 2);
    let stranger = uuid::Uuid::from_u128(42);
    let answer: MetadataResponse = call(&mut stream, ApiKey::Metadata, 12, &by(None, stranger));
    assert_eq!(answer.topics[0].error_code, 100);
    // DeleteTopics v6 by id: a stranger's id deletes nothing; the topic's own deletes it.
    let delete = |topic_id| {
        DeleteTopicsRequest::default()
            .with_topics(vec![DeleteTopicState::default().with_topic_id(topic_id)])
            .with_timeout_ms(30_000)
    };
    let answer: DeleteTopicsResponse =
        call(&mut stream, ApiKey::DeleteTopics, 6, &delete(stranger));
    assert_eq!(answer.responses[0].error_code, 100);
    let still: kafdo_types::api::TopicDescription =
        client.get(&format!("/v1/topics/{topic}")).expect(200);
    assert_eq!(still.topic_id, described.topic_id);
    let answer: DeleteTopicsResponse = call(&mut stream, ApiKey::DeleteTopics, 6, &delete(id));
    assert_eq!(answer.responses[0].error_code, 0, "{answer:?}");
    client
        .get(&format!("/v1/topics/{topic}"))
        .expect_code(kafdo_types::ErrorCode::UnknownTopicOrPartition);
}

#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn list_and_describe_transactions() {
    let wrangler = shared();
    let client = wrangler.client();
    let gateway = Gateway::start(wrangler.url());
    let topic = unique_topic("txn-admin");
    client.create_topic(&topic, 2);
    // A transaction left open over HTTP: registered on both partitions, one record on each.
    let id = unique_topic("txn-admin-id");
    let producer: kafdo_types::api::InitProducerResponse = client
        .post(
            "/v1/producers",
            &json!({"transactional_id": id, "transaction_timeout_ms": 600_000}),
            &[],
        )
        .expect(200);
    let (pid, epoch) = (producer.producer_id, producer.producer_epoch);
    client
        .post(
            &format!("/v1/transactions/{id}/partitions"),
            &json!({"producer_id": pid, "producer_epoch": epoch,
                    "partitions": [{"topic": topic, "partition": 0},
                                   {"topic": topic, "partition": 1}]}),
            &[],
        )
        .expect_status(200);
    // One transactional record on partition 1, so the partition holds the open transaction.
    let written: kafdo_types::api::PartitionProduceResponse = client
        .post(
            &format!("/v1/topics/{topic}/partitions/1/records"),
            &json!({"producer_id": pid, "producer_epoch": epoch, "base_sequence": 0,
                    "transactional": true, "records": [{"value": "b3Blbg=="}]}),
            &[],
        )
        .expect(200);
    let mut stream = connect(&gateway);
    // DescribeProducers: partition 1 knows the producer and its open transaction's first offset;
    // partition 0 (registered, nothing written) no producer; partition 5 does not exist.
    let request = DescribeProducersRequest::default().with_topics(vec![
        kafka_protocol::messages::describe_producers_request::TopicRequest::default()
            .with_name(TopicName(StrBytes::from_string(topic.clone())))
            .with_partition_indexes(vec![0, 1, 5]),
    ]);
    let producers: DescribeProducersResponse =
        call(&mut stream, ApiKey::DescribeProducers, 0, &request);
    let partitions = &producers.topics[0].partitions;
    assert!(partitions[0].active_producers.is_empty());
    let state = &partitions[1].active_producers[0];
    assert_eq!((state.producer_id.0, state.producer_epoch), (pid, epoch));
    assert_eq!(state.last_sequence, 0);
    assert_eq!(state.current_txn_start_offset, written.base_offset);
    assert_eq!(partitions[2].error_code, 3, "UNKNOWN_TOPIC_OR_PARTITION");
    let txn_id = |id: &str| TransactionalId(StrBytes::from_string(id.to_string()));
    let list = |stream: &mut TcpStream, states: &[&'static str]| -> ListTransactionsResponse {
        let request = ListTransactionsRequest::default()
            .with_state_filters(
                states
                    .iter()
                    .map(|s| StrBytes::from_static_str(s))
                    .collect(),
            )
            .with_duration_filter(-1);
        call(stream, ApiKey::ListTransactions, 1, &request)
    };
    let listed = list(&mut stream, &[]);
    let ours: Vec<_> = listed
        .transaction_states
        .iter()
        .filter(|t| t.transactional_id.0.as_str() == id)
        .collect();
    assert_eq!(ours.len(), 1, "{listed:?}");
    assert_eq!(ours[0].producer_id.0, pid);
    assert_eq!(ours[0].transaction_state.as_str(), "Ongoing");
    // State filters: a known state that does not match, and an unknown one reported back.
    let listed = list(&mut stream, &["PrepareCommit", "Bogus"]);
    assert!(listed
        .transaction_states
        .iter()
        .all(|t| t.transactional_id.0.as_str() != id));
    assert_eq!(
        listed.unknown_state_filters,
        vec![StrBytes::from_static_str("Bogus")]
    );
    let describe = |stream: &mut TcpStream| -> DescribeTransactionsResponse {
        let request = DescribeTransactionsRequest::default()
            .with_transactional_ids(vec![txn_id(&id), txn_id(&format!("{id}-never"))]);
        call(stream, ApiKey::DescribeTransactions, 0, &request)
    };
    let described = describe(&mut stream);
    let open = &described.transaction_states[0];
    assert_eq!(open.error_code, 0);
    assert_eq!(open.transaction_state.as_str(), "Ongoing");
    assert_eq!(
        (open.producer_id.0, i32::from(open.producer_epoch)),
        (pid, epoch)
    );
    assert_eq!(open.transaction_timeout_ms, 600_000);
    assert!(open.transaction_start_time_ms > 0);
    assert_eq!(open.topics.len(), 1);
    assert_eq!(open.topics[0].partitions, vec![0, 1]);
    // TRANSACTIONAL_ID_NOT_FOUND (105) for an id that never had a producer.
    assert_eq!(described.transaction_states[1].error_code, 105);
    // Committed, it is no longer listed and describes as CompleteCommit.
    client
        .post(
            &format!("/v1/transactions/{id}/commit"),
            &json!({"producer_id": pid, "producer_epoch": epoch}),
            &[],
        )
        .expect_status(200);
    assert!(list(&mut stream, &[]).transaction_states.iter().all(|t| t
        .transactional_id
        .0
        .as_str()
        != id));
    let described = describe(&mut stream);
    assert_eq!(
        described.transaction_states[0].transaction_state.as_str(),
        "CompleteCommit"
    );
    assert_eq!(
        described.transaction_states[0].transaction_start_time_ms,
        -1
    );
    let producers: DescribeProducersResponse =
        call(&mut stream, ApiKey::DescribeProducers, 0, &request);
    let state = &producers.topics[0].partitions[1].active_producers[0];
    assert_eq!(
        state.current_txn_start_offset, -1,
        "no transaction open any more"
    );
}
