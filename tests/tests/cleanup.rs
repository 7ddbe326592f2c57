//! End-to-end tests of log cleanup against the real runtime, both driven by the partition
//! object's alarm (nobody asks):
//!
//! - log compaction (`cleanup_policy: "compact"`): a read then shows only the latest value of
//!   every key at its original offset, tombstones stay (the delete retention is 24 h), the
//!   offsets a client saw do not move, and a record without a key is refused with
//!   `INVALID_RECORD`;
//! - retention (`retention_ms`) of a partition no longer written to: its log start reaches its
//!   high watermark once every record expired, and reads of the deleted offsets are refused
//!   with `OFFSET_OUT_OF_RANGE`.
//!
//! This binary runs its own `wrangler dev` with `--var COMPACTION_INTERVAL_MS:500` and
//! `--var RETENTION_INTERVAL_MS:500`, so compaction rounds follow each other within half a
//! second instead of the production 15 s (and a dirty tail too small for the dirty ratio, the
//! order of writes and rounds depending on the machine's speed, is cleaned within the
//! 10-interval lag, 5 s), and retention steps within half a second instead of a minute. Runs
//! only with `KAFDO_E2E=1`.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use kafdo_e2e::{unique_topic, FetchParams, Wrangler};
use kafdo_types::api::{
    CleanupPolicy, PartitionProduceRequest, ProduceRequest, TopicConfig, TopicDescription,
};
use kafdo_types::{ErrorCode, ProduceRecord, Record};

/// This binary's own instance, with short compaction and retention intervals.
fn instance() -> &'static Wrangler {
    static OWN: OnceLock<Wrangler> = OnceLock::new();
    OWN.get_or_init(|| {
        Wrangler::start_for_static_with(&[
            "--var",
            "COMPACTION_INTERVAL_MS:500",
            "--var",
            "RETENTION_INTERVAL_MS:500",
        ])
    })
}

fn compact_topic() -> TopicConfig {
    TopicConfig {
        cleanup_policy: CleanupPolicy::Compact,
        ..TopicConfig::default()
    }
}

fn keyed(key: &str, value: Option<&str>) -> ProduceRecord {
    ProduceRecord {
        key: Some(key.as_bytes().to_vec()),
        value: value.map(|v| v.as_bytes().to_vec()),
        ..ProduceRecord::default()
    }
}

#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn a_compacted_topic_keeps_the_latest_value_of_every_key_at_its_offset() {
    let wrangler = instance();
    let client = wrangler.client();
    let topic = unique_topic("compacted");
    let _: TopicDescription = client
        .create_topic_with(&topic, 1, compact_topic())
        .expect(201);

    // 40 batches of 5 records over three keys, then a key written and deleted (tombstone).
    let mut latest: BTreeMap<String, (i64, Option<String>)> = BTreeMap::new();
    for batch in 0..40 {
        let records: Vec<ProduceRecord> = (0..5)
            .map(|i| {
                let key = format!("k{}", (batch * 5 + i) % 3);
                keyed(&key, Some(&format!("{key}-v{batch}-{i}")))
            })
            .collect();
        let answer = client.produce_partition(&topic, 0, records.clone());
        for (i, r) in records.iter().enumerate() {
            let key = String::from_utf8(r.key.clone().unwrap()).unwrap();
            let value = String::from_utf8(r.value.clone().unwrap()).unwrap();
            latest.insert(key, (answer.base_offset + i as i64, Some(value)));
        }
    }
    client.produce_partition(&topic, 0, vec![keyed("gone", Some("here"))]);
    let tombstone = client.produce_partition(&topic, 0, vec![keyed("gone", None)]);
    latest.insert("gone".into(), (tombstone.base_offset, None));
    // One more append after the tombstone, so the records above are not all in the last row.
    let last = client.produce_partition(&topic, 0, vec![keyed("k0", Some("k0-last"))]);
    latest.insert("k0".into(), (last.base_offset, Some("k0-last".into())));
    let high_watermark = last.last_offset + 1;
    assert_eq!(high_watermark, 203);

    // The partition's alarm compacts it; wait until the read shows one record per key.
    let expected: Vec<(i64, String, Option<String>)> = {
        let mut v: Vec<_> = latest
            .iter()
            .map(|(k, (o, v))| (*o, k.clone(), v.clone()))
            .collect();
        v.sort();
        v
    };
    let show = |records: &[Record]| -> Vec<(i64, String, Option<String>)> {
        records
            .iter()
            .map(|r| {
                (
                    r.offset,
                    String::from_utf8(r.key.clone().unwrap()).unwrap(),
                    r.value.clone().map(|v| String::from_utf8(v).unwrap()),
                )
            })
            .collect()
    };
    let started = Instant::now();
    let mut seen = show(&client.read_all(&topic, 0));
    while seen != expected {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "not compacted after 60 s: {} records read, {:?}...",
            seen.len(),
            &seen[..seen.len().min(8)]
        );
        // Every read in between is a valid log: increasing offsets, each record as written
        // (an older value of a key only where compaction has not reached yet).
        assert!(seen.windows(2).all(|w| w[0].0 < w[1].0));
        std::thread::sleep(Duration::from_millis(200));
        seen = show(&client.read_all(&topic, 0));
    }
    eprintln!(
        "compacted 203 offsets to 4 records in {:?}",
        started.elapsed()
    );

    // Offsets did not move, and neither did the log start or the high watermark.
    let info = client.partition_info(&topic, 0);
    assert_eq!(info.log_start_offset, 0);
    assert_eq!(info.high_watermark, high_watermark);
    assert_eq!(info.last_stable_offset, high_watermark);
    // A read from inside a gap starts at the next surviving record.
    let page = client.fetch(
        &topic,
        0,
        &FetchParams {
            max_records: Some(1),
            ..FetchParams::at(1)
        },
    );
    assert_eq!(page.records.len(), 1);
    assert_eq!(page.records[0].offset, expected[0].0);
    assert_eq!(page.next_offset, expected[0].0 + 1);
    // read_uncommitted sees the same (no transactions here).
    let uncommitted = client.fetch(
        &topic,
        0,
        &FetchParams {
            isolation: Some("read_uncommitted"),
            ..FetchParams::at(0)
        },
    );
    assert_eq!(show(&uncommitted.records), expected);

    // New versions keep being compacted.
    let again = client.produce_partition(
        &topic,
        0,
        vec![keyed("k1", Some("k1-new")), keyed("k2", Some("k2-new"))],
    );
    let started = Instant::now();
    loop {
        let seen = show(&client.read_all(&topic, 0));
        if seen.len() == 4 {
            assert_eq!(
                seen[2],
                (again.base_offset, "k1".into(), Some("k1-new".into()))
            );
            assert_eq!(
                seen[3],
                (again.last_offset, "k2".into(), Some("k2-new".into()))
            );
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{seen:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn a_compacted_topic_refuses_records_without_a_key() {
    let wrangler = instance();
    let client = wrangler.client();
    let topic = unique_topic("compacted-keyless");
    let _: TopicDescription = client
        .create_topic_with(&topic, 2, compact_topic())
        .expect(201);
    // To a partition: the whole batch is refused.
    let error = client
        .produce_partition_reply(
            &topic,
            0,
            &PartitionProduceRequest {
                records: vec![keyed("a", Some("1")), ProduceRecord::value("no key")],
                ..PartitionProduceRequest::default()
            },
        )
        .expect_error(400, ErrorCode::InvalidRecord);
    assert!(error.message.contains("no key"), "{}", error.message);
    assert_eq!(client.partition_info(&topic, 0).high_watermark, 0);
    // To the topic (a keyless record goes to a sticky partition, which refuses it).
    let error = client
        .post(
            &format!("/v1/topics/{topic}/records"),
            &ProduceRequest {
                records: vec![ProduceRecord::value("no key")],
            },
            &[],
        )
        .expect_error(400, ErrorCode::InvalidRecord);
    assert!(error.message.contains("no key"), "{}", error.message);
    // Keyed records are taken.
    client.produce(&topic, vec![keyed("a", Some("1")), keyed("b", None)]);
}

#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn retention_cuts_a_partition_no_longer_written_to() {
    let wrangler = instance();
    let client = wrangler.client();
    let topic = unique_topic("retained");
    let _: TopicDescription = client
        .create_topic_with(
            &topic,
            1,
            TopicConfig {
                retention_ms: 1_000,
                ..TopicConfig::default()
            },
        )
        .expect(201);
    for i in 0..3 {
        client.produce_partition(&topic, 0, vec![ProduceRecord::value(format!("r{i}"))]);
    }
    let info = client.partition_info(&topic, 0);
    assert_eq!((info.log_start_offset, info.high_watermark), (0, 3));
    // No append comes any more: only the alarm can cut the log.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let info = client.partition_info(&topic, 0);
        if info.log_start_offset == 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the idle partition was not cut: {info:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let error = client
        .fetch_reply(&topic, 0, &FetchParams::at(0))
        .expect_error(416, ErrorCode::OffsetOutOfRange);
    assert!(error.message.contains("outside"), "{}", error.message);
}
