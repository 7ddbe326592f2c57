//! Persistence across a restart of `wrangler dev` on the same state directory: topics, their
//! configs, every record byte for byte and the partitions' offsets come back from the Durable
//! Objects' SQLite files, and new records continue the old offsets. The restart stops the whole
//! process group (node and both workerd processes), so nothing can survive in memory.
//!
//! This test owns its instance (a restart would disturb tests sharing one).

use std::collections::BTreeMap;

use kafdo_e2e::{random_bytes, rng, unique_topic, Wrangler};
use kafdo_types::api::{CleanupPolicy, TopicConfig, TopicDescription, TopicList};
use kafdo_types::{ErrorCode, Header, ProduceRecord, Record};

#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn topics_and_records_survive_a_restart() {
    let mut rng = rng("topics_and_records_survive_a_restart");
    let mut wrangler = Wrangler::start();
    let client = wrangler.client();

    let kept = unique_topic("kept");
    let config = TopicConfig {
        retention_ms: -1,
        cleanup_policy: CleanupPolicy::Compact,
    };
    let kept_description: TopicDescription = client
        .create_topic_with(&kept, 3, config.clone())
        .expect(201);
    let gone = unique_topic("gone");
    client.create_topic(&gone, 1);
    client.produce(&gone, vec![ProduceRecord::value("short-lived")]);
    client
        .delete(&format!("/v1/topics/{gone}"))
        .expect_status(204);

    // Random binary records by key across the three partitions, one 1 MiB among them. Every
    // key once: the topic is compacted (its partitions compact themselves), and this test is
    // about every record surviving restarts.
    let mut records: Vec<ProduceRecord> = (0..300)
        .map(|i| ProduceRecord {
            key: Some(format!("key-{i}").into_bytes()),
            value: Some(random_bytes(&mut rng, 1 + i * 7 % 500)),
            headers: vec![Header {
                key: "n".into(),
                value: Some(i.to_string().into_bytes()),
            }],
            ..ProduceRecord::default()
        })
        .collect();
    records.push(ProduceRecord {
        key: Some(b"big".to_vec()),
        value: Some(random_bytes(&mut rng, 1024 * 1024 - 3)),
        ..ProduceRecord::default()
    });
    for chunk in records.chunks(50) {
        client.produce(&kept, chunk.to_vec());
    }
    let before: BTreeMap<i32, Vec<Record>> =
        (0..3).map(|p| (p, client.read_all(&kept, p))).collect();
    assert_eq!(before.values().map(Vec::len).sum::<usize>(), records.len());
    let infos_before: Vec<_> = (0..3).map(|p| client.partition_info(&kept, p)).collect();

    for restart in 1..=2 {
        wrangler.restart();
        let client = wrangler.client();
        client.health();

        let described: TopicDescription = client.get(&format!("/v1/topics/{kept}")).expect(200);
        assert_eq!(described, kept_description, "restart {restart}");
        assert_eq!(described.config, config);
        let list: TopicList = client.get("/v1/topics").expect(200);
        assert!(list.topics.contains(&kept_description), "{list:?}");
        assert!(
            list.topics.iter().all(|t| t.name != gone),
            "a topic deleted before the restart came back: {list:?}"
        );
        client
            .get(&format!("/v1/topics/{gone}"))
            .expect_error(404, ErrorCode::UnknownTopicOrPartition);

        for partition in 0..3 {
            let info = client.partition_info(&kept, partition);
            let read = client.read_all(&kept, partition);
            if restart == 1 {
                assert_eq!(info, infos_before[partition as usize]);
                assert_eq!(
                    read, before[&partition],
                    "partition {partition} after restart"
                );
            } else {
                // The second restart also keeps what was appended after the first.
                assert_eq!(&read[..before[&partition].len()], &before[&partition][..]);
                assert_eq!(read.len() as i64, info.high_watermark);
            }
        }

        // New records continue the offsets of the old ones.
        let answer = client.produce(&kept, vec![ProduceRecord::keyed("key-0", "after")]);
        let at = answer.offsets[0];
        let high_watermark_before = client.partition_info(&kept, at.partition).high_watermark - 1;
        assert_eq!(at.offset, high_watermark_before);
        let last = client.read_all(&kept, at.partition).pop().unwrap();
        assert_eq!(last.offset, at.offset);
        assert_eq!(last.value.as_deref(), Some(&b"after"[..]));
        if restart == 1 {
            assert_eq!(
                at.offset, infos_before[at.partition as usize].high_watermark,
                "the first record after the restart follows the last one before it"
            );
        }
    }
}
