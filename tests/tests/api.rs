//! End-to-end tests of HTTP API v1 as issue 2 delivers it: health, topics, produce (by key, by
//! explicit partition, null keys, to a partition), partition info and fetch (limits and long
//! polling), byte-exact round trips of records up to 1 MiB in JSON and CBOR, and every error the
//! contract names for bad input, each checked by HTTP status and by the code in
//! `{"error": {"code", "message"}}`.
//!
//! All tests share one `wrangler dev` (see `kafdo_e2e::shared`) and use their own topic names.
//! They run only with `KAFDO_E2E=1`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kafdo_e2e::{random_bytes, rng, shared, unique_topic, Client, FetchParams, Format, Reply};
use kafdo_types::api::{
    CleanupPolicy, DeleteRecordsResponse, MultiFetchRequest, MultiFetchResponse,
    MultiProduceRequest, MultiProduceResponse, PartitionBatch, PartitionFetch,
    PartitionProduceRequest, ProducerList, TimestampOffset, TopicConfig, TopicDescription,
    TopicList,
};
use kafdo_types::limits::MAX_RECORD_BYTES;
use kafdo_types::partitioner::partition_for_key;
use kafdo_types::{ErrorCode, Header, ProduceRecord, Record};

/// Asserts that a record read back is byte for byte the one produced.
fn assert_same_record(produced: &ProduceRecord, read: &Record, context: &str) {
    assert!(
        produced.key == read.key,
        "{context}: key differs at offset {} ({:?} vs {:?} bytes)",
        read.offset,
        produced.key.as_ref().map(Vec::len),
        read.key.as_ref().map(Vec::len)
    );
    assert!(
        produced.value == read.value,
        "{context}: value differs at offset {} ({:?} vs {:?} bytes)",
        read.offset,
        produced.value.as_ref().map(Vec::len),
        read.value.as_ref().map(Vec::len)
    );
    assert_eq!(
        produced.headers, read.headers,
        "{context}: headers differ at offset {}",
        read.offset
    );
    if let Some(timestamp) = produced.timestamp {
        assert_eq!(
            timestamp, read.timestamp,
            "{context}: timestamp at offset {}",
            read.offset
        );
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn hwm(client: &Client, topic: &str, partition: i32) -> i64 {
    client.partition_info(topic, partition).high_watermark
}

#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn health_answers_ok() {
    let client = shared().client();
    let reply = client.get("/health");
    reply.expect_status(200);
    let body: serde_json::Value = reply.decode();
    assert_eq!(body, serde_json::json!({"status": "ok"}));
}

#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn topic_create_list_describe_delete() {
    let client = shared().client();
    let name = unique_topic("lifecycle");
    let config = TopicConfig {
        retention_ms: 3_600_000,
        cleanup_policy: CleanupPolicy::Compact,
    };
    let created: TopicDescription = client
        .create_topic_with(&name, 3, config.clone())
        .expect(201);
    let expected = TopicDescription {
        name: name.clone(),
        topic_id: created.topic_id.clone(),
        partitions: 3,
        config,
    };
    assert_eq!(created, expected);
    // A Kafka topic id: a UUID, hyphenated, never the nil one.
    assert_eq!(created.topic_id.len(), 36, "{}", created.topic_id);
    assert_eq!(created.topic_id.matches('-').count(), 4);
    assert_ne!(created.topic_id, "00000000-0000-0000-0000-000000000000");

    let described: TopicDescription = client.get(&format!("/v1/topics/{name}")).expect(200);
    assert_eq!(described, expected);

    let list: TopicList = client.get("/v1/topics").expect(200);
    assert!(
        list.topics.contains(&expected),
        "GET /v1/topics lacks {name}: {list:?}"
    );

    // The config defaults as in Kafka when absent.
    let plain = unique_topic("lifecycle-defaults");
    let raw = client.post_raw(
        "/v1/topics",
        Format::Json,
        format!(r#"{{"name":"{plain}","partitions":1}}"#).as_bytes(),
        &[],
    );
    let described: TopicDescription = raw.expect(201);
    assert_eq!(described.config, TopicConfig::default());

    // Creating it again is a conflict, whatever the partition count.
    client
        .create_topic_with(&name, 3, TopicConfig::default())
        .expect_error(409, ErrorCode::TopicAlreadyExists);
    client
        .create_topic_with(&name, 5, TopicConfig::default())
        .expect_error(409, ErrorCode::TopicAlreadyExists);

    // Deleting by topic id: another id (or not a UUID) leaves the topic where it is.
    client
        .delete(&format!(
            "/v1/topics/{name}?topic_id=6b61666d-6f00-4c0b-9a55-7e5070696373"
        ))
        .expect_error(404, ErrorCode::UnknownTopicOrPartition);
    client
        .delete(&format!("/v1/topics/{name}?topic_id=nope"))
        .expect_error(400, ErrorCode::InvalidRequest);
    assert_eq!(
        client
            .get(&format!("/v1/topics/{name}"))
            .expect::<TopicDescription>(200),
        expected
    );
    client
        .delete(&format!("/v1/topics/{name}?topic_id={}", created.topic_id))
        .expect_status(204);
    client
        .get(&format!("/v1/topics/{name}"))
        .expect_error(404, ErrorCode::UnknownTopicOrPartition);
    // The same name again is another incarnation, with another id.
    let again: TopicDescription = client
        .create_topic_with(&name, 1, TopicConfig::default())
        .expect(201);
    assert_ne!(again.topic_id, created.topic_id);
    client
        .delete(&format!("/v1/topics/{name}"))
        .expect_status(204);
    let list: TopicList = client.get("/v1/topics").expect(200);
    assert!(
        list.topics.iter().all(|t| t.name != name),
        "a deleted topic is still listed: {list:?}"
    );
    client
        .delete(&format!("/v1/topics/{name}"))
        .expect_error(404, ErrorCode::UnknownTopicOrPartition);
}

#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn topic_partition_count_limits() {
    let client = shared().client();
    for partitions in [0, -1, 257, 100_000] {
        let name = unique_topic("bad-count");
        client
            .create_topic_with(&name, partitions, TopicConfig::default())
            .expect_error(400, ErrorCode::InvalidPartitions);
        client
            .get(&format!("/v1/topics/{name}"))
            .expect_error(404, ErrorCode::UnknownTopicOrPartition);
    }
    // Both ends of the range are allowed.
    for partitions in [1, 256] {
        let name = unique_topic("count");
        let created = client.create_topic(&name, partitions);
        assert_eq!(created.partitions, partitions);
        // The last partition exists, the one after it does not.
        let info = client.partition_info(&name, partitions - 1);
        assert_eq!(
            (
                info.log_start_offset,
                info.high_watermark,
                info.last_stable_offset
            ),
            (0, 0, 0)
        );
        client
            .get(&format!("/v1/topics/{name}/partitions/{partitions}"))
            .expect_error(404, ErrorCode::UnknownTopicOrPartition);
    }
}

#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn topic_names_outside_kafkas_alphabet_are_rejected() {
    let client = shared().client();
    let too_long = "x".repeat(250);
    for name in [
        "",
        ".",
        "..",
        "has space",
        "slash/inside",
        "bang!",
        "ünïcode",
        too_long.as_str(),
    ] {
        client
            .create_topic_with(name, 1, TopicConfig::default())
            .expect_error(400, ErrorCode::InvalidTopicException);
    }
    // The longest legal name, and every legal character.
    let longest = format!("{}-{}", unique_topic("long"), "y".repeat(249))[..249].to_string();
    assert_eq!(client.create_topic(&longest, 1).name, longest);
    let alphabet = unique_topic("Az09._-");
    assert_eq!(client.create_topic(&alphabet, 1).name, alphabet);
}

#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn produce_by_key_uses_kafkas_murmur2_partitioner() {
    let client = shared().client();
    let mut rng = rng("produce_by_key_uses_kafkas_murmur2_partitioner");
    let topic = unique_topic("by-key");
    let partitions = 6;
    client.create_topic(&topic, partitions);

    // Text keys (Kafka's test vectors among them) and random binary keys.
    let mut keys: Vec<Vec<u8>> = ["21", "foobar", "abc", "a-little-bit-long-string", ""]
        .iter()
        .map(|k| k.as_bytes().to_vec())
        .collect();
    for _ in 0..100 {
        let len = rng.usize(1..40);
        keys.push(random_bytes(&mut rng, len));
    }
    let round = |round: u8| -> Vec<ProduceRecord> {
        keys.iter()
            .map(|k| ProduceRecord::keyed(k.clone(), vec![round]))
            .collect()
    };
    let first = client.produce(&topic, round(1));
    let second = client.produce(&topic, round(2));
    let mut expected: BTreeMap<i32, Vec<(Vec<u8>, u8)>> = BTreeMap::new();
    for (i, key) in keys.iter().enumerate() {
        let want = partition_for_key(key, partitions);
        assert_eq!(first.offsets[i].partition, want, "key {key:?}");
        assert_eq!(
            second.offsets[i].partition, want,
            "the same key moved: {key:?}"
        );
    }
    // Read back: every record sits on its key's partition, in produce order.
    for round_no in [1u8, 2] {
        for key in &keys {
            expected
                .entry(partition_for_key(key, partitions))
                .or_default()
                .push((key.clone(), round_no));
        }
    }
    for partition in 0..partitions {
        let read: Vec<(Vec<u8>, u8)> = client
            .read_all(&topic, partition)
            .into_iter()
            .map(|r| (r.key.unwrap(), r.value.unwrap()[0]))
            .collect();
        assert_eq!(
            read,
            expected.remove(&partition).unwrap_or_default(),
            "partition {partition}"
        );
    }
}

#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn produce_to_an_explicit_partition() {
    let client = shared().client();
    let topic = unique_topic("explicit");
    client.create_topic(&topic, 4);
    let records: Vec<ProduceRecord> = (0..12)
        .map(|i| ProduceRecord {
            // The explicit partition wins over the key.
            key: Some(b"same-key".to_vec()),
            value: Some(format!("v{i}").into_bytes()),
            partition: Some(i % 4),
            ..ProduceRecord::default()
        })
        .collect();
    let answer = client.produce(&topic, records);
    for (i, offset) in answer.offsets.iter().enumerate() {
        assert_eq!(offset.partition, i as i32 % 4);
        assert_eq!(offset.offset, i as i64 / 4, "dense offsets per partition");
    }
    for partition in 0..4 {
        let values: Vec<String> = client
            .read_all(&topic, partition)
            .into_iter()
            .map(|r| String::from_utf8(r.value.unwrap()).unwrap())
            .collect();
        let want: Vec<String> = (0..12)
            .filter(|i| i % 4 == partition)
            .map(|i| format!("v{i}"))
            .collect();
        assert_eq!(values, want, "partition {partition}");
    }

    // An explicit partition outside the topic fails the whole request: nothing is written.
    for bad in [4, 1000, -1] {
        let records = vec![
            ProduceRecord::value("fine"),
            ProduceRecord {
                value: Some(b"bad".to_vec()),
                partition: Some(bad),
                ..ProduceRecord::default()
            },
        ];
        client
            .produce_reply(&topic, records, &[])
            .expect_error(404, ErrorCode::UnknownTopicOrPartition);
    }
    for partition in 0..4 {
        assert_eq!(hwm(&client, &topic, partition), 3, "partition {partition}");
    }
}

#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn produce_with_null_keys_spreads_and_reads_back() {
    let client = shared().client();
    let topic = unique_topic("null-keys");
    client.create_topic(&topic, 4);
    let mut placed: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for i in 0..40 {
        let answer = client.produce(&topic, vec![ProduceRecord::value(format!("n{i}"))]);
        let at = answer.offsets[0];
        assert!((0..4).contains(&at.partition), "{at:?}");
        placed.entry(at.partition).or_default().push(at.offset);
    }
    // Round-robin or sticky per request: over 40 requests more than one partition is used
    // (all on one partition by chance has probability 4^-39).
    assert!(
        placed.len() > 1,
        "every null-key request went to one partition: {placed:?}"
    );
    // A multi-record null-key request lands somewhere valid, with one offset per record.
    let batch: Vec<ProduceRecord> = (0..10)
        .map(|i| ProduceRecord::value(format!("b{i}")))
        .collect();
    for at in client.produce(&topic, batch).offsets {
        assert!((0..4).contains(&at.partition), "{at:?}");
        placed.entry(at.partition).or_default().push(at.offset);
    }
    let mut total = 0;
    for (partition, offsets) in placed {
        let mut sorted = offsets.clone();
        sorted.sort();
        assert_eq!(
            sorted,
            (0..offsets.len() as i64).collect::<Vec<_>>(),
            "dense offsets on partition {partition}"
        );
        let read = client.read_all(&topic, partition);
        assert_eq!(read.len(), offsets.len());
        assert!(read.iter().all(|r| r.key.is_none()));
        total += read.len();
    }
    assert_eq!(total, 50);
}

#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn partition_produce_appends_dense_batches() {
    let client = shared().client();
    let topic = unique_topic("partition-produce");
    client.create_topic(&topic, 2);
    let batch = |from: usize, n: usize| -> Vec<ProduceRecord> {
        (from..from + n)
            .map(|i| ProduceRecord::keyed(format!("k{i}"), format!("v{i}")))
            .collect()
    };
    let first = client.produce_partition(&topic, 1, batch(0, 5));
    assert_eq!((first.base_offset, first.last_offset), (0, 4));
    assert!(!first.duplicate);
    let second = client.produce_partition(&topic, 1, batch(5, 1));
    assert_eq!((second.base_offset, second.last_offset), (5, 5));
    let third = client.produce_partition(&topic, 1, batch(6, 3));
    assert_eq!((third.base_offset, third.last_offset), (6, 8));

    let read = client.read_all(&topic, 1);
    let all = batch(0, 9);
    assert_eq!(read.len(), 9);
    for (i, record) in read.iter().enumerate() {
        assert_eq!(record.offset, i as i64);
        assert_same_record(&all[i], record, "partition produce");
    }
    // The key does not move a record away from the partition in the path.
    assert_eq!(hwm(&client, &topic, 0), 0);
    let info = client.partition_info(&topic, 1);
    assert_eq!(
        (
            info.log_start_offset,
            info.high_watermark,
            info.last_stable_offset
        ),
        (0, 9, 9)
    );

    // A record whose `partition` field names another partition is a bad request.
    let mismatched = PartitionProduceRequest {
        records: vec![ProduceRecord {
            value: Some(b"x".to_vec()),
            partition: Some(0),
            ..ProduceRecord::default()
        }],
        ..PartitionProduceRequest::default()
    };
    client
        .produce_partition_reply(&topic, 1, &mismatched)
        .expect_error(400, ErrorCode::InvalidRequest);
    assert_eq!(hwm(&client, &topic, 1), 9);
    assert_eq!(hwm(&client, &topic, 0), 0);
}

#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn fetch_honours_offset_max_records_and_max_bytes() {
    let client = shared().client();
    let topic = unique_topic("fetch-limits");
    client.create_topic(&topic, 1);
    let records: Vec<ProduceRecord> = (0..10u8)
        .map(|i| ProduceRecord::value(vec![i; 1000]))
        .collect();
    client.produce_partition(&topic, 0, records);

    let page = client.fetch(
        &topic,
        0,
        &FetchParams {
            offset: 3,
            max_records: Some(4),
            ..FetchParams::default()
        },
    );
    let offsets: Vec<i64> = page.records.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, vec![3, 4, 5, 6]);
    assert_eq!(page.next_offset, 7);
    assert_eq!((page.high_watermark, page.last_stable_offset), (10, 10));
    assert_eq!(page.records[0].value.as_deref(), Some(&[3u8; 1000][..]));

    // 2,500 bytes hold two 1,000-byte records, not three.
    let page = client.fetch(
        &topic,
        0,
        &FetchParams {
            offset: 0,
            max_bytes: Some(2500),
            ..FetchParams::default()
        },
    );
    assert_eq!(page.records.len(), 2, "max_bytes=2500");
    assert_eq!(page.next_offset, 2);

    // The first record is returned even when it alone exceeds max_bytes (Kafka's rule, so a
    // consumer can always make progress).
    let page = client.fetch(
        &topic,
        0,
        &FetchParams {
            offset: 5,
            max_bytes: Some(1),
            ..FetchParams::default()
        },
    );
    assert_eq!(page.records.len(), 1, "max_bytes=1");
    assert_eq!(page.records[0].offset, 5);
    assert_eq!(page.next_offset, 6);

    // Without limits everything comes back; both isolation levels see all of it (no
    // transactions here).
    for isolation in [None, Some("read_committed"), Some("read_uncommitted")] {
        let page = client.fetch(
            &topic,
            0,
            &FetchParams {
                offset: 0,
                isolation,
                ..FetchParams::default()
            },
        );
        assert_eq!(page.records.len(), 10, "isolation {isolation:?}");
        assert_eq!(page.next_offset, 10);
    }

    // At the high watermark: an empty answer (not an error) that stays at the high watermark.
    let page = client.fetch(&topic, 0, &FetchParams::at(10));
    assert!(page.records.is_empty());
    assert_eq!(page.next_offset, 10);
}

#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn long_poll_is_answered_by_a_concurrent_produce() {
    let client = shared().client();
    let topic = unique_topic("long-poll");
    client.create_topic(&topic, 1);
    client.produce_partition(&topic, 0, vec![ProduceRecord::value("before")]);

    // Two pollers wait on the same partition; one produce wakes both.
    let pollers: Vec<_> = (0..2)
        .map(|_| {
            let client = client.clone();
            let topic = topic.clone();
            std::thread::spawn(move || {
                let started = Instant::now();
                let page = client.fetch(
                    &topic,
                    0,
                    &FetchParams {
                        offset: 1,
                        wait_ms: Some(20_000),
                        ..FetchParams::default()
                    },
                );
                (page, started.elapsed())
            })
        })
        .collect();
    // Time for both polls to reach the partition and wait there. (Had a poll arrived after
    // the produce, it would still get the record, so there is no lower bound on its wait to
    // assert; a server without long polling answers the polls empty, which fails below.)
    std::thread::sleep(Duration::from_millis(1500));
    client.produce_partition(&topic, 0, vec![ProduceRecord::value("after")]);
    for poller in pollers {
        let (page, waited) = poller.join().expect("the long poll");
        assert_eq!(page.records.len(), 1, "the poll returns the new record");
        assert_eq!(page.records[0].offset, 1);
        assert_eq!(page.records[0].value.as_deref(), Some(&b"after"[..]));
        assert_eq!(page.next_offset, 2);
        assert!(
            waited < Duration::from_secs(10),
            "the poll was not woken by the produce: {waited:?}"
        );
    }
}

#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn long_poll_times_out_empty() {
    let client = shared().client();
    let topic = unique_topic("long-poll-timeout");
    client.create_topic(&topic, 1);
    client.produce_partition(&topic, 0, vec![ProduceRecord::value("only")]);
    let started = Instant::now();
    let page = client.fetch(
        &topic,
        0,
        &FetchParams {
            offset: 1,
            wait_ms: Some(1500),
            ..FetchParams::default()
        },
    );
    let waited = started.elapsed();
    assert!(page.records.is_empty());
    assert_eq!((page.next_offset, page.high_watermark), (1, 1));
    assert!(
        waited >= Duration::from_millis(1300),
        "answered before wait_ms: {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(10),
        "waited far too long: {waited:?}"
    );

    // Records already there are answered at once, whatever wait_ms says.
    let started = Instant::now();
    let page = client.fetch(
        &topic,
        0,
        &FetchParams {
            offset: 0,
            wait_ms: Some(20_000),
            ..FetchParams::default()
        },
    );
    assert_eq!(page.records.len(), 1);
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// Random records of many shapes, the largest exactly 1 MiB (key + value + headers).
fn assorted_records(rng: &mut fastrand::Rng) -> Vec<ProduceRecord> {
    let mut records = Vec::new();
    let header = |rng: &mut fastrand::Rng, len: usize| Header {
        key: format!("h-{}", rng.u32(..)),
        value: Some(random_bytes(rng, len)),
    };
    // Empty and null parts: a tombstone, an empty value, a null header value.
    records.push(ProduceRecord {
        key: Some(random_bytes(rng, 8)),
        value: None,
        ..ProduceRecord::default()
    });
    // Repeated header keys keep their order and values, as in Kafka.
    records.push(ProduceRecord {
        key: Some(b"headers".to_vec()),
        value: Some(b"v".to_vec()),
        headers: vec![
            Header {
                key: "dup".into(),
                value: Some(vec![1]),
            },
            Header {
                key: "dup".into(),
                value: Some(vec![2]),
            },
            Header {
                key: "".into(),
                value: None,
            },
            Header {
                key: "dup".into(),
                value: Some(Vec::new()),
            },
        ],
        ..ProduceRecord::default()
    });
    records.push(ProduceRecord {
        key: Some(Vec::new()),
        value: Some(Vec::new()),
        headers: vec![Header {
            key: "null".into(),
            value: None,
        }],
        ..ProduceRecord::default()
    });
    for len in [1, 100, 4096, 65_537, 300_000] {
        let key_len = rng.usize(0..64);
        records.push(ProduceRecord {
            key: Some(random_bytes(rng, key_len)),
            value: Some(random_bytes(rng, len)),
            headers: (0..rng.usize(0..4)).map(|_| header(rng, 16)).collect(),
            timestamp: Some(1_700_000_000_000 + rng.i64(0..1_000_000)),
            ..ProduceRecord::default()
        });
    }
    // Exactly the limit: a key, two headers and the value fill 1 MiB.
    let key = random_bytes(rng, 37);
    let headers = vec![header(rng, 1000), header(rng, 0)];
    let used = key.len()
        + headers
            .iter()
            .map(|h| h.key.len() + h.value.as_ref().map_or(0, Vec::len))
            .sum::<usize>();
    let value = random_bytes(rng, MAX_RECORD_BYTES - used);
    let full = ProduceRecord {
        key: Some(key),
        value: Some(value),
        headers,
        ..ProduceRecord::default()
    };
    assert_eq!(full.size_bytes(), MAX_RECORD_BYTES);
    records.push(full);
    records
}

fn round_trip(format: Format, test: &str) {
    let client = shared().client().with_format(format);
    let mut rng = rng(test);
    let topic = unique_topic(test);
    client.create_topic(&topic, 2);
    let records = assorted_records(&mut rng);
    let before = now_ms();

    // Through the partition route, one record per request (a 1 MiB record and a batch of
    // small ones), then through the topic route to an explicit partition.
    let mut produced = Vec::new();
    for record in &records {
        client.produce_partition(&topic, 0, vec![record.clone()]);
        produced.push(record.clone());
    }
    let small: Vec<ProduceRecord> = records
        .iter()
        .filter(|r| r.size_bytes() < 100_000)
        .cloned()
        .collect();
    client.produce_partition(&topic, 0, small.clone());
    produced.extend(small);
    let routed: Vec<ProduceRecord> = records
        .iter()
        .map(|r| ProduceRecord {
            partition: Some(1),
            ..r.clone()
        })
        .collect();
    for record in &routed {
        let answer = client.produce(&topic, vec![record.clone()]);
        assert_eq!(answer.offsets[0].partition, 1);
    }

    let read0 = client.read_all(&topic, 0);
    assert_eq!(read0.len(), produced.len());
    for (p, r) in produced.iter().zip(&read0) {
        assert_same_record(p, r, test);
        if p.timestamp.is_none() {
            // The partition's clock stamps records without a create time.
            assert!(
                r.timestamp >= before - 60_000 && r.timestamp <= now_ms() + 60_000,
                "append time {} is not now",
                r.timestamp
            );
        }
    }
    let read1 = client.read_all(&topic, 1);
    assert_eq!(read1.len(), routed.len());
    for (p, r) in routed.iter().zip(&read1) {
        assert_same_record(p, r, test);
    }

    // A fetch of one record exactly 1 MiB large, asked for alone.
    let last = produced
        .iter()
        .position(|r| r.size_bytes() == MAX_RECORD_BYTES)
        .unwrap() as i64;
    let page = client.fetch(
        &topic,
        0,
        &FetchParams {
            offset: last,
            max_records: Some(1),
            ..FetchParams::default()
        },
    );
    assert_eq!(page.records.len(), 1);
    assert_same_record(&produced[last as usize], &page.records[0], test);
}

#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn records_up_to_1_mib_round_trip_in_json() {
    round_trip(Format::Json, "records_up_to_1_mib_round_trip_in_json");
}

#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn records_up_to_1_mib_round_trip_in_cbor() {
    round_trip(Format::Cbor, "records_up_to_1_mib_round_trip_in_cbor");
}

#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn a_record_over_1_mib_is_message_too_large_and_writes_nothing() {
    let test = "a_record_over_1_mib_is_message_too_large_and_writes_nothing";
    let base = shared().client();
    let mut rng = rng(test);
    for format in [Format::Json, Format::Cbor] {
        let client = base.with_format(format);
        let topic = unique_topic("too-large");
        client.create_topic(&topic, 2);
        // One byte over, counted over the value alone and over key + value + headers.
        let over_in_value = ProduceRecord::value(random_bytes(&mut rng, MAX_RECORD_BYTES + 1));
        let over_in_total = ProduceRecord {
            key: Some(random_bytes(&mut rng, 100)),
            value: Some(random_bytes(&mut rng, MAX_RECORD_BYTES - 150)),
            headers: vec![Header {
                key: "h".into(),
                value: Some(random_bytes(&mut rng, 50)),
            }],
            ..ProduceRecord::default()
        };
        assert_eq!(over_in_total.size_bytes(), MAX_RECORD_BYTES + 1);
        for big in [over_in_value, over_in_total] {
            // Alone and behind a small record in the same batch: all or nothing.
            let batch = vec![ProduceRecord::value("small"), big.clone()];
            client
                .produce_partition_reply(
                    &topic,
                    0,
                    &PartitionProduceRequest {
                        records: batch.clone(),
                        ..PartitionProduceRequest::default()
                    },
                )
                .expect_error(413, ErrorCode::MessageTooLarge);
            client
                .produce_reply(&topic, vec![big.clone()], &[])
                .expect_error(413, ErrorCode::MessageTooLarge);
            let routed: Vec<ProduceRecord> = batch
                .into_iter()
                .map(|r| ProduceRecord {
                    partition: Some(1),
                    ..r
                })
                .collect();
            client
                .produce_reply(&topic, routed, &[])
                .expect_error(413, ErrorCode::MessageTooLarge);
        }
        for partition in 0..2 {
            let info = client.partition_info(&topic, partition);
            assert_eq!(
                info.high_watermark, 0,
                "{format:?}: a rejected record was written to partition {partition}"
            );
        }
    }
}

#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn malformed_json_is_invalid_request() {
    let client = shared().client();
    let topic = unique_topic("bad-json");
    client.create_topic(&topic, 1);
    let produce = format!("/v1/topics/{topic}/records");
    let partition = format!("/v1/topics/{topic}/partitions/0/records");
    let cases: Vec<(&str, &str)> = vec![
        ("/v1/topics", "{"),
        ("/v1/topics", "not json"),
        ("/v1/topics", r#"{"name":"x"}"#),
        ("/v1/topics", r#"{"name":"x","partitions":"two"}"#),
        (
            "/v1/topics",
            r#"{"name":"x","partitions":1,"surprise":true}"#,
        ),
        (
            "/v1/topics",
            r#"{"name":"x","partitions":1,"config":{"cleanup_policy":"shred"}}"#,
        ),
        (&produce, ""),
        (&produce, "{"),
        (&produce, r#"{"records":"x"}"#),
        (&produce, r#"{"records":[{"value":"@@not base64@@"}]}"#),
        (&produce, r#"{"records":[{"value":"aGk=","colour":"red"}]}"#),
        (
            &produce,
            r#"{"records":[{"value":"aGk=","headers":[{"value":"aGk="}]}]}"#,
        ),
        (&produce, r#"[1,2,3]"#),
        (&partition, "{"),
        (&partition, r#"{"records":[{"value":12}]}"#),
        (&partition, r#"{"records":[],"producer_id":"one"}"#),
    ];
    for (path, body) in cases {
        let reply = client.post_raw(path, Format::Json, body.as_bytes(), &[]);
        let error = reply.expect_error(400, ErrorCode::InvalidRequest);
        assert!(!error.message.is_empty(), "{path} {body}: an empty message");
    }
    assert_eq!(
        hwm(&client, &topic, 0),
        0,
        "a malformed request wrote records"
    );
    client
        .get("/v1/topics/x")
        .expect_error(404, ErrorCode::UnknownTopicOrPartition);

    // Malformed query parameters of a fetch.
    for query in [
        "offset=abc",
        "offset=0&max_records=many",
        "offset=0&isolation=dirty",
        "offset=0&wait_ms=-5",
    ] {
        client
            .get(&format!("/v1/topics/{topic}/partitions/0/records?{query}"))
            .expect_error(400, ErrorCode::InvalidRequest);
    }
}

#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn malformed_cbor_is_invalid_request() {
    let client = shared().client().with_format(Format::Cbor);
    let topic = unique_topic("bad-cbor");
    client.create_topic(&topic, 1);
    let good = Format::Cbor.encode(&kafdo_types::api::ProduceRequest {
        records: vec![ProduceRecord::value("hello")],
    });
    let truncated = good[..good.len() - 3].to_vec();
    let wrong_shape = Format::Cbor.encode(&42u32);
    let text_value = Format::Cbor.encode(&serde_json::json!({"records": [{"value": 7}]}));
    let cases: Vec<(String, Vec<u8>)> = vec![
        ("/v1/topics".into(), vec![0xff, 0x00, 0x13]),
        ("/v1/topics".into(), wrong_shape.clone()),
        (format!("/v1/topics/{topic}/records"), truncated.clone()),
        (format!("/v1/topics/{topic}/records"), vec![0xbf]),
        (format!("/v1/topics/{topic}/records"), wrong_shape),
        (format!("/v1/topics/{topic}/records"), text_value.clone()),
        (
            format!("/v1/topics/{topic}/partitions/0/records"),
            truncated,
        ),
        (
            format!("/v1/topics/{topic}/partitions/0/records"),
            text_value,
        ),
        // JSON sent as CBOR is not CBOR.
        (
            format!("/v1/topics/{topic}/records"),
            br#"{"records":[]}"#.to_vec(),
        ),
    ];
    for (path, body) in cases {
        let reply = client.post_raw(&path, Format::Cbor, &body, &[]);
        reply.expect_error(400, ErrorCode::InvalidRequest);
        assert_eq!(
            reply.format(),
            Format::Cbor,
            "{path}: the error is CBOR when asked"
        );
    }
    assert_eq!(hwm(&client, &topic, 0), 0);
    // The well-formed body is accepted, to show the cases above failed for their bytes.
    let answer: kafdo_types::api::ProduceResponse = client
        .post_raw(
            &format!("/v1/topics/{topic}/records"),
            Format::Cbor,
            &good,
            &[],
        )
        .expect(200);
    assert_eq!(answer.offsets.len(), 1);
}

#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn unknown_topic_is_404_everywhere() {
    let client = shared().client();
    let topic = unique_topic("never-created");
    let replies: Vec<Reply> = vec![
        client.get(&format!("/v1/topics/{topic}")),
        client.delete(&format!("/v1/topics/{topic}")),
        client.get(&format!("/v1/topics/{topic}/partitions/0")),
        client.produce_reply(&topic, vec![ProduceRecord::value("x")], &[]),
        client.produce_partition_reply(
            &topic,
            0,
            &PartitionProduceRequest {
                records: vec![ProduceRecord::value("x")],
                ..PartitionProduceRequest::default()
            },
        ),
        client.fetch_reply(&topic, 0, &FetchParams::at(0)),
    ];
    for reply in replies {
        reply.expect_error(404, ErrorCode::UnknownTopicOrPartition);
    }
    // Nothing was created by asking.
    let list: TopicList = client.get("/v1/topics").expect(200);
    assert!(list.topics.iter().all(|t| t.name != topic));
}

#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn partition_out_of_range_is_404() {
    let client = shared().client();
    let topic = unique_topic("out-of-range");
    client.create_topic(&topic, 3);
    for partition in [3, 4, 255, 1000, -1] {
        let replies: Vec<Reply> = vec![
            client.get(&format!("/v1/topics/{topic}/partitions/{partition}")),
            client.produce_partition_reply(
                &topic,
                partition,
                &PartitionProduceRequest {
                    records: vec![ProduceRecord::value("x")],
                    ..PartitionProduceRequest::default()
                },
            ),
            client.fetch_reply(&topic, partition, &FetchParams::at(0)),
        ];
        for reply in replies {
            reply.expect_error(404, ErrorCode::UnknownTopicOrPartition);
        }
    }
    for partition in 0..3 {
        assert_eq!(hwm(&client, &topic, partition), 0);
    }
}

#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn negative_and_future_offsets_are_out_of_range() {
    let client = shared().client();
    let topic = unique_topic("offsets");
    client.create_topic(&topic, 1);
    client.produce_partition(
        &topic,
        0,
        (0..5).map(|i| ProduceRecord::value(vec![i])).collect(),
    );
    for offset in [-1, -1000, 6, 7, 1_000_000, (1 << 53) - 1] {
        client
            .fetch_reply(&topic, 0, &FetchParams::at(offset))
            .expect_code(ErrorCode::OffsetOutOfRange);
        // A long poll past the end is also out of range at once, not a wait.
        let started = Instant::now();
        client
            .fetch_reply(
                &topic,
                0,
                &FetchParams {
                    offset,
                    wait_ms: Some(5000),
                    ..FetchParams::default()
                },
            )
            .expect_code(ErrorCode::OffsetOutOfRange);
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "offset {offset}"
        );
    }
    // The edges that are fine: the first record and the high watermark.
    assert_eq!(
        client.fetch(&topic, 0, &FetchParams::at(0)).records.len(),
        5
    );
    assert!(client
        .fetch(&topic, 0, &FetchParams::at(5))
        .records
        .is_empty());
}

#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn delete_then_recreate_gives_an_empty_log() {
    let client = shared().client();
    let topic = unique_topic("recreate");
    client.create_topic(&topic, 2);
    client.produce(
        &topic,
        (0..20)
            .map(|i| ProduceRecord::keyed(format!("k{i}"), "old"))
            .collect(),
    );
    assert!(hwm(&client, &topic, 0) + hwm(&client, &topic, 1) == 20);
    client
        .delete(&format!("/v1/topics/{topic}"))
        .expect_status(204);
    client
        .fetch_reply(&topic, 0, &FetchParams::at(0))
        .expect_error(404, ErrorCode::UnknownTopicOrPartition);
    client
        .produce_reply(&topic, vec![ProduceRecord::value("x")], &[])
        .expect_error(404, ErrorCode::UnknownTopicOrPartition);

    // Recreated with a different partition count: every partition starts empty.
    let created = client.create_topic(&topic, 3);
    assert_eq!(created.partitions, 3);
    for partition in 0..3 {
        let info = client.partition_info(&topic, partition);
        assert_eq!(
            (
                info.log_start_offset,
                info.high_watermark,
                info.last_stable_offset
            ),
            (0, 0, 0),
            "partition {partition} of the recreated topic"
        );
        assert!(client
            .fetch(&topic, partition, &FetchParams::at(0))
            .records
            .is_empty());
    }
    let answer = client.produce(&topic, vec![ProduceRecord::keyed("k0", "new")]);
    assert_eq!(answer.offsets[0].offset, 0);
    let read = client.read_all(&topic, answer.offsets[0].partition);
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].value.as_deref(), Some(&b"new"[..]));
}

/// Issue 2's "done when": a topic with 4 partitions, 10,000 records produced by key, all read
/// back in order per partition.
#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn ten_thousand_records_by_key_read_back_in_order() {
    let client = shared().client();
    let topic = unique_topic("ten-thousand");
    client.create_topic(&topic, 4);
    let total = 10_000;
    let mut expected: BTreeMap<i32, Vec<(String, String)>> = BTreeMap::new();
    for chunk in (0..total).collect::<Vec<_>>().chunks(500) {
        let records: Vec<ProduceRecord> = chunk
            .iter()
            .map(|i| ProduceRecord::keyed(format!("user-{}", i % 113), format!("event-{i}")))
            .collect();
        let answer = client.produce(&topic, records);
        for (i, at) in chunk.iter().zip(&answer.offsets) {
            let key = format!("user-{}", i % 113);
            assert_eq!(at.partition, partition_for_key(key.as_bytes(), 4));
            let on_partition = expected.entry(at.partition).or_default();
            assert_eq!(at.offset, on_partition.len() as i64, "dense offsets");
            on_partition.push((key, format!("event-{i}")));
        }
    }
    let mut read_total = 0;
    for partition in 0..4 {
        let read: Vec<(String, String)> = client
            .read_all(&topic, partition)
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                assert_eq!(r.offset, i as i64);
                (
                    String::from_utf8(r.key.unwrap()).unwrap(),
                    String::from_utf8(r.value.unwrap()).unwrap(),
                )
            })
            .collect();
        read_total += read.len();
        assert_eq!(
            read,
            expected.remove(&partition).unwrap_or_default(),
            "partition {partition}"
        );
    }
    assert_eq!(read_total, total);
}

#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn request_limits_on_records_and_body_size() {
    let client = shared().client();
    let topic = unique_topic("limits");
    client.create_topic(&topic, 2);
    // The most records one request may carry, in one partition batch: read back in full.
    let most: Vec<ProduceRecord> = (0..kafdo_types::limits::MAX_RECORDS_PER_REQUEST)
        .map(|i| ProduceRecord::value(format!("{i:05}")))
        .collect();
    let answer = client.produce_partition(&topic, 0, most.clone());
    assert_eq!(
        (answer.base_offset, answer.last_offset),
        (0, most.len() as i64 - 1)
    );
    let read = client.read_all(&topic, 0);
    assert_eq!(read.len(), most.len());
    for (produced, read) in most.iter().zip(&read) {
        assert_same_record(produced, read, "10,000 records in one request");
    }

    // One more, or none, is a bad request that writes nothing.
    let mut too_many = most;
    too_many.push(ProduceRecord::value("one too many"));
    client
        .produce_reply(&topic, too_many.clone(), &[])
        .expect_error(400, ErrorCode::InvalidRequest);
    client
        .produce_partition_reply(
            &topic,
            1,
            &PartitionProduceRequest {
                records: too_many,
                ..PartitionProduceRequest::default()
            },
        )
        .expect_error(400, ErrorCode::InvalidRequest);
    client
        .produce_reply(&topic, Vec::new(), &[])
        .expect_error(400, ErrorCode::InvalidRequest);
    client
        .produce_partition_reply(&topic, 1, &PartitionProduceRequest::default())
        .expect_error(400, ErrorCode::InvalidRequest);

    // A body over the request limit is refused before it is decoded.
    let mut huge = br#"{"records":[{"value":""#.to_vec();
    huge.resize(kafdo_types::limits::MAX_REQUEST_BYTES + 1024, b'A');
    huge.extend_from_slice(br#""}]}"#);
    client
        .post_raw(
            &format!("/v1/topics/{topic}/records"),
            Format::Json,
            &huge,
            &[],
        )
        .expect_error(413, ErrorCode::MessageTooLarge);
    assert_eq!(hwm(&client, &topic, 0), 10_000);
    assert_eq!(hwm(&client, &topic, 1), 0);
}

#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn concurrent_produces_get_distinct_dense_offsets() {
    let client = shared().client();
    let topic = unique_topic("concurrent");
    client.create_topic(&topic, 2);
    let threads = 4;
    let requests = 25;
    // Each thread sends small batches to partition 0 and keyed records over the topic.
    let answers: Vec<Vec<(i32, i64, String)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let client = client.clone();
                let topic = &topic;
                scope.spawn(move || {
                    let mut placed = Vec::new();
                    for r in 0..requests {
                        let values: Vec<String> =
                            (0..3).map(|i| format!("t{t}-r{r}-{i}")).collect();
                        let batch = client.produce_partition(
                            topic,
                            0,
                            values
                                .iter()
                                .map(|v| ProduceRecord::value(v.clone()))
                                .collect(),
                        );
                        for (i, v) in values.into_iter().enumerate() {
                            placed.push((0, batch.base_offset + i as i64, v));
                        }
                        let value = format!("t{t}-r{r}-keyed");
                        let answer = client.produce(
                            topic,
                            vec![ProduceRecord::keyed(format!("k{r}"), value.clone())],
                        );
                        placed.push((answer.offsets[0].partition, answer.offsets[0].offset, value));
                    }
                    placed
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut by_partition: BTreeMap<i32, BTreeMap<i64, String>> = BTreeMap::new();
    for (partition, offset, value) in answers.into_iter().flatten() {
        let previous = by_partition
            .entry(partition)
            .or_default()
            .insert(offset, value.clone());
        assert!(
            previous.is_none(),
            "offset {offset} of partition {partition} given twice ({previous:?}, {value})"
        );
    }
    let mut total = 0;
    for (partition, placed) in by_partition {
        let read = client.read_all(&topic, partition);
        assert_eq!(read.len(), placed.len(), "partition {partition}");
        for (record, (offset, value)) in read.iter().zip(placed) {
            assert_eq!(
                record.offset, offset,
                "dense offsets on partition {partition}"
            );
            assert_eq!(record.value.as_deref(), Some(value.as_bytes()));
        }
        total += read.len();
    }
    assert_eq!(total, threads * requests * 4);
}

#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn offsets_by_timestamp_find_the_first_record_at_or_after() {
    let client = shared().client();
    let topic = unique_topic("timestamps");
    client.create_topic(&topic, 2);
    let at = |ts: i64| ProduceRecord {
        timestamp: Some(ts),
        ..ProduceRecord::value(format!("at-{ts}"))
    };
    // Timestamps need not rise with offsets.
    client.produce_partition(&topic, 0, vec![at(1000), at(3000), at(2000)]);
    client.produce_partition(&topic, 0, vec![at(1500), at(5000)]);
    let path = |p: i32, query: &str| format!("/v1/topics/{topic}/partitions/{p}/offsets?{query}");
    let found = |query: &str| -> TimestampOffset { client.get(&path(0, query)).expect(200) };
    let some = |offset, timestamp| TimestampOffset {
        offset: Some(offset),
        timestamp: Some(timestamp),
    };
    assert_eq!(found("timestamp=0"), some(0, 1000));
    assert_eq!(found("timestamp=2500"), some(1, 3000));
    assert_eq!(found("timestamp=3001"), some(4, 5000));
    assert_eq!(
        found("timestamp=4000&isolation=read_uncommitted"),
        some(4, 5000)
    );
    let none = TimestampOffset {
        offset: None,
        timestamp: None,
    };
    assert_eq!(found("timestamp=5001"), none);
    // An empty partition has none; in CBOR too.
    let cbor = client.with_format(Format::Cbor);
    let empty: TimestampOffset = cbor.get(&path(1, "timestamp=0")).expect(200);
    assert_eq!(empty, none);
    // Bad queries are 400 and change nothing; unknown topics and partitions are 404.
    let before = client.read_all(&topic, 0);
    for query in [
        "",
        "timestamp=-1",
        "timestamp=abc",
        "timestamp=9007199254740992",
        "timestamp=1&isolation=dirty",
        "timestamp=1&offset=0",
    ] {
        client
            .get(&path(0, query))
            .expect_error(400, ErrorCode::InvalidRequest);
    }
    client
        .get(&path(2, "timestamp=0"))
        .expect_code(ErrorCode::UnknownTopicOrPartition);
    client
        .get(&format!(
            "/v1/topics/{topic}-nope/partitions/0/offsets?timestamp=0"
        ))
        .expect_code(ErrorCode::UnknownTopicOrPartition);
    assert_eq!(client.read_all(&topic, 0), before);
    assert_eq!(client.partition_info(&topic, 0).high_watermark, 5);
}

#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn many_partitions_in_one_produce_and_one_fetch() {
    let client = shared().client();
    let (a, b) = (unique_topic("many-a"), unique_topic("many-b"));
    client.create_topic(&a, 2);
    client.create_topic(&b, 1);
    let producer = client.init_producer();
    let batch = |values: &[&str]| PartitionProduceRequest {
        records: values.iter().map(|v| ProduceRecord::value(*v)).collect(),
        ..PartitionProduceRequest::default()
    };
    let idempotent = |values: &[&str], base_sequence| PartitionProduceRequest {
        producer_id: Some(producer.producer_id),
        producer_epoch: Some(producer.producer_epoch),
        base_sequence: Some(base_sequence),
        ..batch(values)
    };
    let to = |topic: &str, partition, batch| PartitionBatch {
        topic: topic.to_string(),
        partition,
        batch,
    };
    let request = MultiProduceRequest {
        partitions: vec![
            to(&a, 1, idempotent(&["a1-0", "a1-1"], 0)),
            to(&a, 0, batch(&["a0-0"])),
            to(&b, 0, batch(&["b0-0", "b0-1", "b0-2"])),
            // Each partition on its own: these fail, the others are appended.
            to(&a, 2, batch(&["out of range"])),
            to(&format!("{a}-nope"), 0, batch(&["no such topic"])),
        ],
    };
    for format in [Format::Json, Format::Cbor] {
        let client = client.with_format(format);
        let answer: MultiProduceResponse = client.post("/v1/produce", &request, &[]).expect(200);
        let outcomes: Vec<_> = answer
            .partitions
            .iter()
            .map(|o| {
                (
                    o.topic.as_str(),
                    o.partition,
                    o.answer.map(|a| (a.base_offset, a.duplicate)),
                    o.error.as_ref().map(|e| e.code),
                )
            })
            .collect();
        let second = format == Format::Cbor;
        assert_eq!(
            outcomes,
            vec![
                // The idempotent batch sent twice is a duplicate the second time.
                (a.as_str(), 1, Some((0, second)), None),
                (a.as_str(), 0, Some((i64::from(second), false)), None),
                (
                    b.as_str(),
                    0,
                    Some((if second { 3 } else { 0 }, false)),
                    None
                ),
                (
                    a.as_str(),
                    2,
                    None,
                    Some(ErrorCode::UnknownTopicOrPartition)
                ),
                (
                    &*format!("{a}-nope"),
                    0,
                    None,
                    Some(ErrorCode::UnknownTopicOrPartition)
                ),
            ],
            "{format:?}"
        );
    }
    assert_eq!(client.read_all(&a, 1).len(), 2);
    assert_eq!(client.read_all(&a, 0).len(), 2);
    assert_eq!(client.read_all(&b, 0).len(), 6);

    // One fetch over every partition; per-partition limits and errors.
    let at = |topic: &str, partition, offset| PartitionFetch {
        topic: topic.to_string(),
        partition,
        offset,
        ..PartitionFetch::default()
    };
    let fetch = MultiFetchRequest {
        partitions: vec![
            at(&a, 0, 1),
            at(&a, 1, 99),
            PartitionFetch {
                max_records: Some(2),
                ..at(&b, 0, 1)
            },
            at(&a, 5, 0),
        ],
        ..MultiFetchRequest::default()
    };
    for format in [Format::Json, Format::Cbor] {
        let answer: MultiFetchResponse = client
            .with_format(format)
            .post("/v1/fetch", &fetch, &[])
            .expect(200);
        let p = &answer.partitions;
        assert_eq!(p.len(), 4);
        let values = |i: usize| -> Vec<String> {
            let answer = p[i].answer.as_ref().expect("an answer");
            answer
                .records
                .iter()
                .map(|r| String::from_utf8(r.value.clone().unwrap()).unwrap())
                .collect()
        };
        assert_eq!(values(0), ["a0-0"], "{format:?}");
        assert_eq!(p[0].answer.as_ref().unwrap().next_offset, 2);
        assert_eq!(
            p[1].error.as_ref().map(|e| e.code),
            Some(ErrorCode::OffsetOutOfRange)
        );
        assert_eq!(values(2), ["b0-1", "b0-2"]);
        assert_eq!(p[2].answer.as_ref().unwrap().high_watermark, 6);
        assert_eq!(
            p[3].error.as_ref().map(|e| e.code),
            Some(ErrorCode::UnknownTopicOrPartition)
        );
    }

    // Malformed requests are 400 and change nothing.
    let before: Vec<_> = [(&a, 0), (&a, 1), (&b, 0)]
        .iter()
        .map(|(t, p)| client.read_all(t, *p))
        .collect();
    let too_many = MultiProduceRequest {
        partitions: (0..257).map(|p| to(&a, p, batch(&["x"]))).collect(),
    };
    let twice = MultiProduceRequest {
        partitions: vec![to(&a, 0, batch(&["x"])), to(&a, 0, batch(&["y"]))],
    };
    for body in [MultiProduceRequest::default(), too_many, twice] {
        client
            .post("/v1/produce", &body, &[])
            .expect_error(400, ErrorCode::InvalidRequest);
    }
    let twice = MultiFetchRequest {
        partitions: vec![at(&a, 0, 0), at(&a, 0, 1)],
        ..MultiFetchRequest::default()
    };
    let zero = MultiFetchRequest {
        partitions: vec![PartitionFetch {
            max_bytes: Some(0),
            ..at(&a, 0, 0)
        }],
        ..MultiFetchRequest::default()
    };
    for body in [MultiFetchRequest::default(), twice, zero] {
        client
            .post("/v1/fetch", &body, &[])
            .expect_error(400, ErrorCode::InvalidRequest);
    }
    for raw in [
        &br#"{"partitions":[{"topic":"t","partition":0,"batch":{"records":[]},"extra":1}]}"#[..],
        br#"{"partitions":[{"topic":"t","partition":0,"records":[{"value":"eA=="}]}]}"#,
    ] {
        client
            .post_raw("/v1/produce", Format::Json, raw, &[])
            .expect_error(400, ErrorCode::InvalidRequest);
    }
    let after: Vec<_> = [(&a, 0), (&a, 1), (&b, 0)]
        .iter()
        .map(|(t, p)| client.read_all(t, *p))
        .collect();
    assert_eq!(before, after);
}

#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn a_many_partition_fetch_waits_once_for_min_bytes() {
    let client = shared().client();
    let topic = unique_topic("many-wait");
    client.create_topic(&topic, 2);
    let both = |wait_ms, min_bytes| MultiFetchRequest {
        partitions: (0..2)
            .map(|partition| PartitionFetch {
                topic: topic.clone(),
                partition,
                offset: 0,
                ..PartitionFetch::default()
            })
            .collect(),
        wait_ms,
        min_bytes,
        ..MultiFetchRequest::default()
    };
    let produce_later = |partition: i32| {
        let client = client.clone();
        let topic = topic.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            client.produce_partition(&topic, partition, vec![ProduceRecord::value("late")]);
        })
    };
    // A record on either partition answers a wait for one byte long before the wait ends.
    let producer = produce_later(1);
    let start = Instant::now();
    let answer: MultiFetchResponse = client.post("/v1/fetch", &both(20_000, 1), &[]).expect(200);
    let waited = start.elapsed();
    producer.join().unwrap();
    assert!(
        waited < Duration::from_secs(15),
        "answered after {waited:?}"
    );
    let p1 = answer.partitions[1].answer.as_ref().unwrap();
    assert_eq!(p1.records.len(), 1);
    assert!(answer.partitions[0]
        .answer
        .as_ref()
        .unwrap()
        .records
        .is_empty());
    // Wanting more bytes than arrive, it waits the whole time and answers what came.
    let producer = produce_later(1);
    let start = Instant::now();
    let mut request = both(2_000, 1_000_000);
    request.partitions[1].offset = 1;
    let answer: MultiFetchResponse = client.post("/v1/fetch", &request, &[]).expect(200);
    let waited = start.elapsed();
    producer.join().unwrap();
    assert!(
        waited >= Duration::from_millis(2_000),
        "answered after {waited:?}"
    );
    assert_eq!(
        answer.partitions[1].answer.as_ref().unwrap().records.len(),
        1
    );
    // A partition that fails answers at once, as in Kafka: no wait for the others.
    let mut request = both(20_000, 1);
    request.partitions[0].offset = 99;
    request.partitions[1].offset = 2;
    let start = Instant::now();
    let answer: MultiFetchResponse = client.post("/v1/fetch", &request, &[]).expect(200);
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(
        answer.partitions[0].error.as_ref().map(|e| e.code),
        Some(ErrorCode::OffsetOutOfRange)
    );
    // Nothing new at all: empty answers at the end of the wait.
    let mut request = both(500, 1);
    request.partitions[1].offset = 2;
    let start = Instant::now();
    let answer: MultiFetchResponse = client.post("/v1/fetch", &request, &[]).expect(200);
    assert!(start.elapsed() >= Duration::from_millis(500));
    assert!(answer
        .partitions
        .iter()
        .all(|p| p.answer.as_ref().is_some_and(|a| a.records.is_empty())));
}

#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn delete_records_moves_the_log_start_and_bad_requests_change_nothing() {
    let client = shared().client();
    let topic = unique_topic("delete-records");
    client.create_topic(&topic, 1);
    client.produce_partition(
        &topic,
        0,
        (0..3)
            .map(|i| ProduceRecord::value(format!("a{i}")))
            .collect(),
    );
    client.produce_partition(
        &topic,
        0,
        (0..3)
            .map(|i| ProduceRecord::value(format!("b{i}")))
            .collect(),
    );
    let path = |query: &str| format!("/v1/topics/{topic}/partitions/0/records?{query}");
    // Bad requests first: 400, 404, 416, and the log is unchanged.
    let before = client.read_all(&topic, 0);
    for query in [
        "",
        "before=-1",
        "before=x",
        "before=01",
        "before=1&offset=2",
    ] {
        client
            .delete(&path(query))
            .expect_error(400, ErrorCode::InvalidRequest);
    }
    client
        .delete(&path("before=7"))
        .expect_error(416, ErrorCode::OffsetOutOfRange);
    client
        .delete(&format!("/v1/topics/{topic}/partitions/1/records?before=0"))
        .expect_code(ErrorCode::UnknownTopicOrPartition);
    client
        .delete(&format!(
            "/v1/topics/{topic}-nope/partitions/0/records?before=0"
        ))
        .expect_code(ErrorCode::UnknownTopicOrPartition);
    assert_eq!(client.read_all(&topic, 0), before);
    // Inside the second batch, in JSON and (a repeat, which changes nothing) in CBOR.
    let deleted: DeleteRecordsResponse = client.delete(&path("before=4")).expect(200);
    assert_eq!(deleted.log_start_offset, 4);
    let again: DeleteRecordsResponse = client
        .with_format(Format::Cbor)
        .delete(&path("before=2"))
        .expect(200);
    assert_eq!(again.log_start_offset, 4);
    let info = client.partition_info(&topic, 0);
    assert_eq!((info.log_start_offset, info.high_watermark), (4, 6));
    let left: Vec<Vec<u8>> = client
        .read_all(&topic, 0)
        .into_iter()
        .map(|r| r.value.unwrap())
        .collect();
    assert_eq!(left, [b"b1".to_vec(), b"b2".to_vec()]);
    client
        .fetch_reply(&topic, 0, &FetchParams::at(3))
        .expect_error(416, ErrorCode::OffsetOutOfRange);
    // A compacted topic refuses, as Kafka does.
    let compacted = unique_topic("delete-records-compacted");
    client
        .create_topic_with(
            &compacted,
            1,
            TopicConfig {
                cleanup_policy: CleanupPolicy::Compact,
                ..TopicConfig::default()
            },
        )
        .expect_status(201);
    client.produce_partition(&compacted, 0, vec![ProduceRecord::keyed("k", "v")]);
    client
        .delete(&format!(
            "/v1/topics/{compacted}/partitions/0/records?before=1"
        ))
        .expect_error(400, ErrorCode::PolicyViolation);
    assert_eq!(client.read_all(&compacted, 0).len(), 1);
}

#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn a_partition_lists_its_producers() {
    let client = shared().client();
    let topic = unique_topic("producers");
    client.create_topic(&topic, 1);
    let path = |p: i32| format!("/v1/topics/{topic}/partitions/{p}/producers");
    let empty: ProducerList = client.get(&path(0)).expect(200);
    assert!(empty.producers.is_empty());
    let producer = client.init_producer();
    for base_sequence in [0, 2] {
        let batch = PartitionProduceRequest {
            producer_id: Some(producer.producer_id),
            producer_epoch: Some(producer.producer_epoch),
            base_sequence: Some(base_sequence),
            records: vec![ProduceRecord::value("a"), ProduceRecord::value("b")],
            ..PartitionProduceRequest::default()
        };
        client
            .produce_partition_reply(&topic, 0, &batch)
            .expect_status(200);
    }
    client.produce_partition(&topic, 0, vec![ProduceRecord::value("plain")]);
    for format in [Format::Json, Format::Cbor] {
        let listed: ProducerList = client.with_format(format).get(&path(0)).expect(200);
        assert_eq!(listed.producers.len(), 1, "{format:?}: {listed:?}");
        let state = listed.producers[0];
        assert_eq!(state.producer_id, producer.producer_id);
        assert_eq!(state.last_sequence, 3);
        assert_eq!(state.current_txn_start_offset, None);
        assert!(state.last_timestamp > 0);
    }
    client
        .get(&path(1))
        .expect_error(404, ErrorCode::UnknownTopicOrPartition);
    client
        .get(&format!("/v1/topics/{topic}-nope/partitions/0/producers"))
        .expect_error(404, ErrorCode::UnknownTopicOrPartition);
}

#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn partitions_are_added_never_removed() {
    use serde_json::json;
    let client = shared().client();
    let topic = unique_topic("add-partitions");
    let created = client.create_topic(&topic, 2);
    client.produce_partition(&topic, 0, vec![ProduceRecord::value("kept")]);
    let path = format!("/v1/topics/{topic}/partitions");
    // Refused, nothing changes: not higher, past 256, malformed, an unknown topic.
    for (body, status, code) in [
        (json!({"count": 2}), 400, ErrorCode::InvalidPartitions),
        (json!({"count": 1}), 400, ErrorCode::InvalidPartitions),
        (json!({"count": 257}), 400, ErrorCode::InvalidPartitions),
        (json!({"count": "3"}), 400, ErrorCode::InvalidRequest),
        (
            json!({"count": 3, "extra": 1}),
            400,
            ErrorCode::InvalidRequest,
        ),
    ] {
        client.post(&path, &body, &[]).expect_error(status, code);
    }
    client
        .post(
            &format!("/v1/topics/{topic}-nope/partitions"),
            &json!({"count": 3}),
            &[],
        )
        .expect_error(404, ErrorCode::UnknownTopicOrPartition);
    let unchanged: TopicDescription = client.get(&format!("/v1/topics/{topic}")).expect(200);
    assert_eq!(unchanged, created);
    // Raised, in CBOR: the same incarnation (topic id), the old records kept, the new
    // partitions empty and writable at once.
    let grown: TopicDescription = client
        .with_format(Format::Cbor)
        .post(&path, &json!({"count": 4}), &[])
        .expect(200);
    assert_eq!((grown.partitions, &grown.topic_id), (4, &created.topic_id));
    assert_eq!(client.read_all(&topic, 0).len(), 1);
    assert_eq!(client.partition_info(&topic, 3).high_watermark, 0);
    client.produce_partition(&topic, 3, vec![ProduceRecord::value("new")]);
    // Keyed records go where Kafka's partitioner sends them with the new count.
    let key = (0..100)
        .map(|i| format!("k{i}"))
        .find(|k| partition_for_key(k.as_bytes(), 4) >= 2)
        .unwrap();
    let offsets = client.produce(&topic, vec![ProduceRecord::keyed(key.clone(), "v")]);
    assert_eq!(
        offsets.offsets[0].partition,
        partition_for_key(key.as_bytes(), 4)
    );
}
