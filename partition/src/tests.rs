//! Unit tests of the partition core on real SQLite (in memory). Scenario tests live in
//! `tests/scripts/`, the producer-state and transaction models in `tests/`.

use std::rc::Rc;

use kafdo_sql::{Param, Sql, Sqlite};
use kafdo_types::api::{CleanupPolicy, FetchResponse, Isolation, TopicConfig};
use kafdo_types::limits::MAX_RECORD_BYTES;
use kafdo_types::record::{Header, ProduceRecord};
use kafdo_types::rpc::{
    AppendRequest, DeleteRecordsRequest, PartitionRef, ProducerBatch, ReadRequest,
};

use super::*;
use crate::producer::BatchMetadata;

const NOW: i64 = 1_700_000_000_000;

fn pref() -> PartitionRef {
    PartitionRef {
        topic: "t".into(),
        topic_id: "1-t".into(),
        partition: 0,
        config: TopicConfig::default(),
    }
}

fn plain(records: Vec<ProduceRecord>) -> AppendRequest {
    AppendRequest {
        partition: pref(),
        producer: None,
        transactional: false,
        producer_ids_below: kafdo_types::rpc::ANY_PRODUCER_ID,
        records,
    }
}

fn values(n: usize, prefix: &str) -> Vec<ProduceRecord> {
    (0..n)
        .map(|i| ProduceRecord::value(format!("{prefix}{i}")))
        .collect()
}

fn read(
    p: &mut Partition<Rc<Sqlite>>,
    offset: i64,
    max_records: u32,
    max_bytes: u32,
) -> FetchResponse {
    p.read(
        &ReadRequest {
            partition: pref(),
            offset,
            max_records,
            max_bytes,
            isolation: Isolation::ReadCommitted,
            wait_ms: 0,
        },
        NOW,
    )
    .unwrap()
}

fn open() -> (Rc<Sqlite>, Partition<Rc<Sqlite>>) {
    let db = Rc::new(Sqlite::memory());
    let p = Partition::open(db.clone(), NOW).unwrap();
    (db, p)
}

#[test]
fn records_round_trip_with_keys_headers_and_timestamps() {
    let (_db, mut p) = open();
    let records = vec![
        ProduceRecord {
            key: Some(b"k".to_vec()),
            value: Some(vec![0, 1, 255]),
            headers: vec![
                Header {
                    key: "h".into(),
                    value: Some(b"x".to_vec()),
                },
                Header {
                    key: "null".into(),
                    value: None,
                },
            ],
            partition: None,
            timestamp: Some(42),
        },
        ProduceRecord {
            key: None,
            value: None,
            ..ProduceRecord::default()
        },
    ];
    let r = p.append(&plain(records.clone()), NOW).unwrap();
    assert_eq!((r.base_offset, r.last_offset, r.duplicate), (0, 1, false));
    let got = read(&mut p, 0, 10, 1 << 20);
    assert_eq!(got.records.len(), 2);
    assert_eq!(got.records[0].timestamp, 42);
    assert_eq!(got.records[0].key, records[0].key);
    assert_eq!(got.records[0].value, records[0].value);
    assert_eq!(got.records[0].headers, records[0].headers);
    assert_eq!(
        got.records[1].timestamp, NOW,
        "absent timestamps are the append time"
    );
    assert_eq!(got.records[1].value, None, "a tombstone stays null");
    assert_eq!((got.next_offset, got.high_watermark), (2, 2));
    p.verify().unwrap();
}

#[test]
fn large_batches_split_into_rows_under_the_row_limit() {
    let (db, mut p) = open();
    let big = vec![9u8; MAX_RECORD_BYTES];
    let records: Vec<ProduceRecord> = (0..3).map(|_| ProduceRecord::value(big.clone())).collect();
    p.append(&plain(records), NOW).unwrap();
    p.append(&plain(values(20_000 / 2, "small")), NOW).unwrap();
    let rows = db
        .exec(
            "SELECT length(records) FROM batches ORDER BY base_offset",
            &[],
        )
        .unwrap();
    assert!(
        rows.len() >= 4,
        "three 1 MiB records need three rows, got {}",
        rows.len()
    );
    assert!(rows.iter().all(|r| r.int(0) as usize <= MAX_ROW_BYTES + 64));
    p.verify().unwrap();

    // The first record always comes back, even larger than max_bytes; then the budget holds.
    let got = read(&mut p, 0, 100, 10);
    assert_eq!(got.records.len(), 1);
    assert_eq!(got.records[0].value.as_deref(), Some(&big[..]));
    assert_eq!(got.next_offset, 1);
    let got = read(&mut p, 1, 100, (2 * MAX_RECORD_BYTES) as u32);
    assert_eq!(got.records.len(), 2);
    let got = read(&mut p, 3, 10_000, 1 << 24);
    assert_eq!(got.records.len(), 10_000);
    assert_eq!(got.next_offset, 10_003);
}

#[test]
fn a_too_large_record_refuses_the_whole_batch() {
    let (_db, mut p) = open();
    let mut records = values(3, "v");
    records.push(ProduceRecord::value(vec![0u8; MAX_RECORD_BYTES + 1]));
    let e = p.append(&plain(records), NOW).unwrap_err();
    assert_eq!(e.code(), ErrorCode::MessageTooLarge);
    assert_eq!(p.info(&pref()).unwrap().high_watermark, 0);
    p.verify().unwrap();
}

#[test]
fn restart_recomputes_the_cache_from_storage() {
    let (db, mut p) = open();
    p.append(&plain(values(5, "a")), NOW).unwrap();
    let batch = ProducerBatch {
        producer_id: 7,
        producer_epoch: 0,
        base_sequence: 0,
    };
    let req = AppendRequest {
        producer: Some(batch),
        ..plain(values(2, "b"))
    };
    p.append(&req, NOW).unwrap();
    drop(p);
    let mut p = Partition::open(db.clone(), NOW).unwrap();
    assert_eq!(p.info(&pref()).unwrap().high_watermark, 7);
    let dup = p.append(&req, NOW).unwrap();
    assert_eq!(
        (dup.base_offset, dup.last_offset, dup.duplicate),
        (5, 6, true)
    );
    let other = PartitionRef {
        topic_id: "2-t".into(),
        ..pref()
    };
    assert_eq!(
        p.info(&other).unwrap_err().code(),
        ErrorCode::UnknownTopicOrPartition,
        "the binding survives a restart"
    );
    p.verify().unwrap();
}

#[test]
fn sequences_wrap_after_i32_max() {
    let (db, p) = open();
    drop(p);
    // Reaching i32::MAX by appending would take 2^31 records: plant the state instead.
    let near_max = BatchMetadata {
        first_sequence: i32::MAX - 10,
        last_sequence: i32::MAX - 1,
        base_offset: 0,
        last_offset: 9,
        timestamp_ms: NOW,
    };
    db.run(
        "INSERT INTO producers (producer_id, producer_epoch, last_seen_ms, batches) VALUES (3, 0, ?, ?)",
        &[NOW.into(), Param::Blob(&codec::encode_batches([&near_max]))],
    )
    .unwrap();
    let mut p = Partition::open(db.clone(), NOW).unwrap();
    let req = |seq, n| AppendRequest {
        producer: Some(ProducerBatch {
            producer_id: 3,
            producer_epoch: 0,
            base_sequence: seq,
        }),
        ..plain(values(n, "w"))
    };
    let r = p.append(&req(i32::MAX, 3), NOW).unwrap();
    assert!(!r.duplicate);
    let again = p.append(&req(i32::MAX, 3), NOW).unwrap();
    assert!(
        again.duplicate,
        "a retry of the wrapping batch is recognised"
    );
    assert!(
        !p.append(&req(2, 1), NOW).unwrap().duplicate,
        "after i32::MAX, 0, 1 comes 2"
    );
    assert_eq!(
        p.append(&req(4, 1), NOW).unwrap_err().code(),
        ErrorCode::OutOfOrderSequenceNumber
    );
}

#[test]
fn storage_failure_leaves_memory_unchanged() {
    let (db, mut p) = open();
    p.append(&plain(values(1, "a")), NOW).unwrap();
    // Make the producer upsert fail after the batch row was written: the whole append must
    // roll back and the cache must not move.
    db.run("DROP TABLE producers", &[]).unwrap();
    let req = AppendRequest {
        producer: Some(ProducerBatch {
            producer_id: 1,
            producer_epoch: 0,
            base_sequence: 0,
        }),
        ..plain(values(2, "b"))
    };
    assert_eq!(
        p.append(&req, NOW).unwrap_err().code(),
        ErrorCode::UnknownServerError
    );
    assert_eq!(p.info(&pref()).unwrap().high_watermark, 1);
    p.verify().unwrap();
}

#[test]
fn producers_expire_and_the_idlest_are_evicted_at_the_cap() {
    let db = Rc::new(Sqlite::memory());
    let config = PartitionConfig {
        producer_expiry_ms: 1_000,
        max_producers: 2,
        ..PartitionConfig::default()
    };
    let mut p = Partition::open_with_config(db.clone(), 0, config).unwrap();
    let req = |id, seq| AppendRequest {
        producer: Some(ProducerBatch {
            producer_id: id,
            producer_epoch: 0,
            base_sequence: seq,
        }),
        ..plain(values(1, "p"))
    };
    p.append(&req(1, 0), 0).unwrap();
    p.append(&req(2, 0), 10).unwrap();
    p.append(&req(1, 1), 20).unwrap();
    // A third producer evicts the idlest, producer 2.
    p.append(&req(3, 0), 30).unwrap();
    assert_eq!(p.producer_count(), 2);
    assert_eq!(
        p.append(&req(2, 1), 40).unwrap_err().code(),
        ErrorCode::UnknownProducerId
    );
    // A retry of producer 2's batch can no longer be recognised: it is appended again.
    assert!(!p.append(&req(2, 0), 40).unwrap().duplicate);
    // Producer 1 idles past the expiry.
    assert_eq!(
        p.append(&req(1, 2), 1_021).unwrap_err().code(),
        ErrorCode::UnknownProducerId
    );
    // The sweep deletes expired state from storage too.
    p.append(&req(9, 0), 100_000).unwrap();
    let stored = db
        .first("SELECT count(*) FROM producers", &[])
        .unwrap()
        .unwrap()
        .int(0);
    assert_eq!(stored, 1);
    drop(p);
    let p = Partition::open_with_config(db, 100_000, config).unwrap();
    assert_eq!(p.producer_count(), 1);
}

mod read_limits {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Any read returns the longest run of records from its offset that fits the limits:
        /// consecutive offsets, at most `max_records`, at most `max_bytes` unless it is the
        /// single first record, and stopping only at a limit or the high watermark.
        #[test]
        fn reads_return_the_longest_run_that_fits(
            batches in proptest::collection::vec(
                proptest::collection::vec(prop_oneof![8 => 0usize..300, 1 => 20_000usize..60_000], 1..40),
                1..12),
            reads in proptest::collection::vec((any::<prop::sample::Index>(), 1u32..60, 0u32..100_000), 1..20),
        ) {
            let (_db, mut p) = open();
            let mut sizes = Vec::new();
            for batch in &batches {
                let records = batch.iter().map(|&n| ProduceRecord::value(vec![b'x'; n])).collect();
                p.append(&plain(records), NOW).unwrap();
                sizes.extend(batch.iter().copied());
            }
            let hw = sizes.len() as i64;
            for (at, max_records, max_bytes) in reads {
                let offset = at.index(sizes.len() + 1) as i64;
                let r = read(&mut p, offset, max_records, max_bytes);
                let n = r.records.len();
                for (i, rec) in r.records.iter().enumerate() {
                    prop_assert_eq!(rec.offset, offset + i as i64);
                    prop_assert_eq!(rec.size_bytes(), sizes[rec.offset as usize]);
                }
                prop_assert_eq!(r.next_offset, offset + n as i64);
                prop_assert!(n <= max_records as usize);
                let bytes: usize = r.records.iter().map(|rec| rec.size_bytes()).sum();
                prop_assert!(n <= 1 || bytes <= max_bytes as usize);
                if offset < hw {
                    prop_assert!(n >= 1, "a read below the high watermark always progresses");
                }
                let stopped_at_limit = n == max_records as usize
                    || (r.next_offset < hw && bytes + sizes[r.next_offset as usize] > max_bytes as usize);
                prop_assert!(stopped_at_limit || r.next_offset == hw,
                    "read at {} stopped at {} with room left", offset, r.next_offset);
            }
        }
    }
}

/// A retention step cut short by [`MAX_RETENTION_ROWS_PER_STEP`] goes on at the next append
/// instead of waiting [`RETENTION_INTERVAL_MS`]: otherwise a partition taking more than 1,000
/// appends a minute (17 a second) would delete at most 1,000 rows a minute and grow for ever.
#[test]
fn retention_behind_goes_on_at_the_next_append() {
    let (_db, mut p) = open();
    let mut first = plain(values(1, "a"));
    first.partition.config.retention_ms = 1_000;
    // The first append binds the topic (with its retention) and applies retention: nothing yet.
    p.append(&first, NOW).unwrap();
    let rows = 2 * MAX_RETENTION_ROWS_PER_STEP + 500;
    for i in 1..rows {
        p.append(&plain(values(1, "b")), NOW + i / 100).unwrap();
    }
    assert_eq!(p.info(&pref()).unwrap().log_start_offset, 0);
    // Much later every one of those rows has expired: three appends in a row delete them all,
    // 1,000 rows a step, although they come well within one retention interval.
    let later = NOW + RETENTION_INTERVAL_MS + 10_000;
    let mut starts = Vec::new();
    for i in 0..4 {
        p.append(&plain(values(1, "c")), later + i).unwrap();
        starts.push(p.info(&pref()).unwrap().log_start_offset);
    }
    assert_eq!(starts, [1_000, 2_000, rows, rows]);
    assert_eq!(read(&mut p, rows, 10, 1 << 20).records.len(), 4);
    p.verify().unwrap();
}

/// A partition that stopped receiving writes is cut too: `next_retention_ms` tells the
/// adapter's alarm when its oldest row expires (no sooner than a retention interval after the
/// last step), and `enforce_retention` from the alarm deletes it.
#[test]
fn an_idle_partition_is_cut_when_its_oldest_row_expires() {
    let (db, mut p) = open();
    assert_eq!(p.next_retention_ms().unwrap(), None, "no topic bound yet");
    let mut first = plain(values(1, "a"));
    first.partition.config.retention_ms = 40_000;
    // The first append binds the topic and applies retention (nothing expired).
    p.append(&first, NOW).unwrap();
    p.append(&plain(values(1, "b")), NOW + 30_000).unwrap();
    // Row a expires at NOW + 40_001, but retention ran at NOW.
    assert_eq!(
        p.next_retention_ms().unwrap(),
        Some(NOW + RETENTION_INTERVAL_MS)
    );
    assert_eq!(p.enforce_retention(NOW + RETENTION_INTERVAL_MS).unwrap(), 1);
    // Row b expires at NOW + 70_001; the next step waits for the interval again.
    assert_eq!(
        p.next_retention_ms().unwrap(),
        Some(NOW + 2 * RETENTION_INTERVAL_MS)
    );
    // A restarted object forgets when retention last ran: the expiry alone decides.
    let mut p = Partition::open(db, NOW + RETENTION_INTERVAL_MS).unwrap();
    assert_eq!(p.next_retention_ms().unwrap(), Some(NOW + 70_001));
    assert_eq!(p.enforce_retention(NOW + 70_001).unwrap(), 2);
    assert_eq!(
        p.next_retention_ms().unwrap(),
        None,
        "nothing left to expire"
    );
    p.verify().unwrap();
}

/// A compacted topic is never cut by retention, so its alarm never asks for it.
#[test]
fn a_compacted_partition_never_asks_for_retention() {
    let (_db, mut p) = open();
    let mut first = plain(vec![ProduceRecord::keyed("k", "v")]);
    first.partition.config.retention_ms = 0;
    first.partition.config.cleanup_policy = CleanupPolicy::Compact;
    p.append(&first, NOW).unwrap();
    assert_eq!(p.next_retention_ms().unwrap(), None);
}

/// The object's alarm ([`Partition::next_alarm_ms`], [`Partition::on_alarm`]): retention of an
/// idle partition, a compaction step, nothing due, and firings at the wrong time.
mod alarm {
    use super::*;

    /// A record for a compacted topic.
    fn keyed(key: &str, value: &str) -> ProduceRecord {
        ProduceRecord::keyed(key, value)
    }

    /// An append to a partition of the given policy and retention (the first one binds both).
    fn to(policy: CleanupPolicy, retention_ms: i64, records: Vec<ProduceRecord>) -> AppendRequest {
        let mut req = plain(records);
        req.partition.config.cleanup_policy = policy;
        req.partition.config.retention_ms = retention_ms;
        req
    }

    fn stored_rows(db: &Sqlite) -> i64 {
        db.first("SELECT count(*) FROM batches", &[])
            .unwrap()
            .unwrap()
            .int(0)
    }

    #[test]
    fn an_idle_retained_partition_is_cut_by_its_alarm() {
        let (db, mut p) = open();
        // Two rows that expire at NOW + 40_001 and NOW + 70_001; the first append ran
        // retention at NOW, so the alarm waits a retention interval from there.
        p.append(&to(CleanupPolicy::Delete, 40_000, values(1, "a")), NOW)
            .unwrap();
        p.append(&plain(values(1, "b")), NOW + 30_000).unwrap();
        let at = NOW + RETENTION_INTERVAL_MS;
        assert_eq!(p.next_alarm_ms(NOW + 30_000).unwrap(), Some(at));

        let step = p.on_alarm(at).unwrap();
        assert_eq!(step.log_start_offset, 1, "row a expired");
        assert_eq!(
            step.compaction,
            CompactionStep {
                cleaned_offset: p.cleaned_offset(),
                ..CompactionStep::default()
            },
            "a delete topic is never compacted"
        );
        assert_eq!(stored_rows(&db), 1);
        assert_eq!(
            p.read(
                &ReadRequest {
                    partition: pref(),
                    offset: 0,
                    max_records: 10,
                    max_bytes: 1 << 20,
                    isolation: Isolation::ReadCommitted,
                    wait_ms: 0,
                },
                at
            )
            .unwrap_err()
            .code(),
            ErrorCode::OffsetOutOfRange
        );

        // Row b is due at NOW + 70_001, but not before an interval after this step.
        let next = at + RETENTION_INTERVAL_MS;
        assert_eq!(p.next_alarm_ms(at).unwrap(), Some(next));
        assert_eq!(p.on_alarm(next).unwrap().log_start_offset, 2);
        assert_eq!(p.next_alarm_ms(next).unwrap(), None, "nothing left");
        assert_eq!(stored_rows(&db), 0);
        p.verify().unwrap();
    }

    #[test]
    fn a_compacted_partition_runs_a_compaction_step_from_its_alarm() {
        let (_db, mut p) = open();
        let versions = vec![keyed("k", "v1"), keyed("k", "v2"), keyed("j", "w")];
        p.append(&to(CleanupPolicy::Compact, 0, versions), NOW)
            .unwrap();
        p.append(&plain(vec![keyed("k", "v3")]), NOW).unwrap();
        // Retention 0 would expire everything at once on a delete topic: a compacted topic
        // asks only for compaction, due at once (no round ran yet, all of it is dirty).
        assert_eq!(p.next_retention_ms().unwrap(), None);
        assert_eq!(p.next_alarm_ms(NOW).unwrap(), p.next_compaction_ms(NOW));
        let at = p.next_alarm_ms(NOW).unwrap().expect("a step is due");
        assert!(at <= NOW);

        let step = p.on_alarm(NOW).unwrap();
        assert_eq!(step.log_start_offset, 0, "a compacted topic is not cut");
        assert!(step.compaction.round_finished);
        assert_eq!(step.compaction.records_removed, 2, "k's v1 and v2");
        assert_eq!(step.compaction.cleaned_offset, 4);
        let got = read(&mut p, 0, 10, 1 << 20);
        let kept: Vec<(i64, Option<Vec<u8>>)> = got
            .records
            .into_iter()
            .map(|r| (r.offset, r.value))
            .collect();
        assert_eq!(kept, [(2, Some(b"w".to_vec())), (3, Some(b"v3".to_vec()))]);
        assert_eq!(p.next_alarm_ms(NOW).unwrap(), None, "nothing dirty left");
        p.verify().unwrap();
    }

    #[test]
    fn no_alarm_is_due_when_nothing_can_expire_or_be_cleaned() {
        let (_db, mut p) = open();
        assert_eq!(p.next_alarm_ms(NOW).unwrap(), None, "no topic bound yet");
        // Retention -1 keeps everything.
        p.append(&to(CleanupPolicy::Delete, -1, values(3, "a")), NOW)
            .unwrap();
        assert_eq!(p.next_alarm_ms(NOW).unwrap(), None);
        let step = p.on_alarm(NOW + 365 * 24 * 3_600_000).unwrap();
        assert_eq!(step.log_start_offset, 0);
        assert_eq!(read(&mut p, 0, 10, 1 << 20).records.len(), 3);
        // A deleted partition has nothing left to do.
        let (_db, mut p) = open();
        p.append(&to(CleanupPolicy::Delete, 1_000, values(1, "a")), NOW)
            .unwrap();
        assert!(p.next_alarm_ms(NOW).unwrap().is_some());
        p.delete(&pref()).unwrap();
        assert_eq!(p.next_alarm_ms(NOW).unwrap(), None);
        assert_eq!(p.on_alarm(NOW + 10_000).unwrap().log_start_offset, 0);
        p.verify().unwrap();
    }

    #[test]
    fn early_and_repeated_alarms_change_nothing() {
        let (db, mut p) = open();
        p.append(&to(CleanupPolicy::Delete, 40_000, values(2, "a")), NOW)
            .unwrap();
        let due = p.next_alarm_ms(NOW).unwrap().expect("retention is due");
        // Early: nothing has expired, so nothing is deleted, however often it fires.
        for early in [NOW, NOW + 1, NOW + 39_999, NOW + 40_000] {
            assert_eq!(p.on_alarm(early).unwrap().log_start_offset, 0);
            assert_eq!(stored_rows(&db), 1);
            assert_eq!(read(&mut p, 0, 10, 1 << 20).records.len(), 2);
            p.verify().unwrap();
        }
        // The early firings counted as retention steps: the next one waits an interval after
        // the last of them, never less than the expiry.
        let next = p.next_alarm_ms(NOW + 40_000).unwrap().expect("still due");
        assert!(next >= due && next == NOW + 40_000 + RETENTION_INTERVAL_MS);
        // On time, then again and again at the same moment and later: cut once, then nothing.
        assert_eq!(p.on_alarm(next).unwrap().log_start_offset, 2);
        for again in [next, next, next + 1, next + RETENTION_INTERVAL_MS] {
            let step = p.on_alarm(again).unwrap();
            assert_eq!(step.log_start_offset, 2);
            assert_eq!(step.compaction.rows_read, 0);
            assert_eq!(p.info(&pref()).unwrap().high_watermark, 2);
        }

        // A compacted partition whose round finished: repeated alarms find nothing to clean.
        let (db, mut p) = open();
        let records = vec![keyed("k", "v1"), keyed("k", "v2")];
        p.append(&to(CleanupPolicy::Compact, -1, records), NOW)
            .unwrap();
        assert!(p.on_alarm(NOW).unwrap().compaction.round_finished);
        let rows = stored_rows(&db);
        let before = read(&mut p, 0, 10, 1 << 20).records;
        for again in [NOW, NOW + 1, NOW + 3_600_000] {
            let step = p.on_alarm(again).unwrap();
            assert_eq!(
                step.compaction,
                CompactionStep {
                    cleaned_offset: 2,
                    ..CompactionStep::default()
                }
            );
            assert_eq!(stored_rows(&db), rows);
            assert_eq!(read(&mut p, 0, 10, 1 << 20).records, before);
            p.verify().unwrap();
        }
    }

    #[test]
    fn a_storage_error_in_either_step_is_returned() {
        let (db, mut p) = open();
        p.append(&to(CleanupPolicy::Delete, 1_000, values(1, "a")), NOW)
            .unwrap();
        db.run("DROP TABLE batches", &[]).unwrap();
        let later = NOW + RETENTION_INTERVAL_MS;
        assert_eq!(
            p.next_alarm_ms(later).unwrap_err().code(),
            ErrorCode::UnknownServerError
        );
        assert_eq!(
            p.on_alarm(later).unwrap_err().code(),
            ErrorCode::UnknownServerError
        );
        assert_eq!(p.info(&pref()).unwrap().log_start_offset, 0);

        // Compaction's state cannot be stored: the step fails and its round is not recorded.
        let (db, mut p) = open();
        let records = vec![keyed("k", "v1"), keyed("k", "v2")];
        p.append(&to(CleanupPolicy::Compact, -1, records), NOW)
            .unwrap();
        db.run("DROP TABLE compaction", &[]).unwrap();
        assert_eq!(
            p.on_alarm(NOW).unwrap_err().code(),
            ErrorCode::UnknownServerError
        );
        assert_eq!(p.cleaned_offset(), 0);
        assert_eq!(p.next_alarm_ms(NOW).unwrap(), p.next_compaction_ms(NOW));
    }

    /// A delete_records far past one step's rows: the log start moves at once, the rows
    /// before it go a bounded number per step, the alarm due at once until all are gone.
    #[test]
    fn delete_records_trims_in_bounded_steps() {
        let (db, mut p) = open();
        let rows = MAX_RETENTION_ROWS_PER_STEP + 500;
        for i in 0..rows {
            p.append(
                &to(CleanupPolicy::Delete, -1, values(1, &format!("r{i}"))),
                NOW,
            )
            .unwrap();
        }
        let req = |before| DeleteRecordsRequest {
            partition: pref(),
            before,
        };
        assert_eq!(p.delete_records(&req(rows - 1)).unwrap(), rows - 1);
        assert_eq!(p.info(&pref()).unwrap().log_start_offset, rows - 1);
        assert_eq!(
            stored_rows(&db),
            500,
            "one step deleted the first 1,000 rows"
        );
        p.verify().unwrap();
        assert!(p.next_alarm_ms(NOW).unwrap().is_some_and(|at| at <= NOW));
        // Reopened, it still knows a trim is due.
        drop(p);
        let mut p = Partition::open(db.clone(), NOW).unwrap();
        assert!(p.next_alarm_ms(NOW).unwrap().is_some_and(|at| at <= NOW));
        p.on_alarm(NOW).unwrap();
        assert_eq!(stored_rows(&db), 1);
        assert_eq!(
            p.next_alarm_ms(NOW).unwrap(),
            None,
            "retention -1: nothing more"
        );
        let got = read(&mut p, rows - 1, 10, 1 << 20);
        assert_eq!(got.records.len(), 1);
        assert_eq!(got.records[0].value.as_deref(), Some(&b"r14990"[..]));
        p.verify().unwrap();
    }

    #[test]
    fn delete_records_is_refused_on_a_compacted_topic() {
        let (db, mut p) = open();
        p.append(&to(CleanupPolicy::Compact, -1, vec![keyed("k", "v")]), NOW)
            .unwrap();
        let mut partition = pref();
        partition.config.cleanup_policy = CleanupPolicy::Compact;
        let e = p
            .delete_records(&DeleteRecordsRequest {
                partition,
                before: 1,
            })
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::PolicyViolation);
        assert_eq!(p.info(&pref()).unwrap().log_start_offset, 0);
        assert_eq!(stored_rows(&db), 1);
    }
}

#[test]
fn a_producer_id_never_handed_out_is_refused_and_leaves_nothing() {
    let (_db, mut p) = open();
    let claim = |producer_id, producer_ids_below| AppendRequest {
        producer: Some(ProducerBatch {
            producer_id,
            producer_epoch: 0,
            base_sequence: 0,
        }),
        producer_ids_below,
        ..plain(values(1, "claim"))
    };
    // Ids 0..7 were handed out: 7, the next one, is not anyone's yet.
    let e = p.append(&claim(7, 7), NOW).unwrap_err();
    assert_eq!(e.code(), ErrorCode::UnknownProducerId);
    assert_eq!(p.producer_count(), 0, "no state for the claimed id");
    assert_eq!(p.info(&pref()).unwrap().high_watermark, 0);
    // Once 7 is handed out, its owner's first batch is written, not taken for a duplicate.
    let first = p.append(&claim(7, 8), NOW).unwrap();
    assert!(!first.duplicate);
    assert_eq!(p.info(&pref()).unwrap().high_watermark, 1);
    // A retry of that batch with stale evidence is still refused, never answered as done.
    assert_eq!(
        p.append(&claim(7, 7), NOW).unwrap_err().code(),
        ErrorCode::UnknownProducerId
    );
    p.verify().unwrap();
}

#[test]
fn producers_lists_each_producer_with_its_last_sequence_and_open_transaction() {
    let (_db, mut p) = open();
    assert!(p.producers(&pref()).unwrap().producers.is_empty());
    let batch = |producer_id, base_sequence| AppendRequest {
        producer: Some(ProducerBatch {
            producer_id,
            producer_epoch: 2,
            base_sequence,
        }),
        ..plain(values(3, "v"))
    };
    p.append(&batch(7, 0), NOW).unwrap();
    p.append(&batch(7, 3), NOW + 5).unwrap();
    p.register_txn(
        &kafdo_types::rpc::RegisterTxnRequest {
            partition: pref(),
            transactional_id: "tx".into(),
            producer_id: 9,
            producer_epoch: 2,
            txn_seq: 1,
        },
        NOW,
    )
    .unwrap();
    let mut txn = batch(9, 0);
    txn.transactional = true;
    p.append(&txn, NOW + 9).unwrap();
    let listed = p.producers(&pref()).unwrap().producers;
    assert_eq!(
        listed,
        vec![
            kafdo_types::api::ProducerState {
                producer_id: 7,
                producer_epoch: 2,
                last_sequence: 5,
                last_timestamp: NOW + 5,
                current_txn_start_offset: None,
            },
            kafdo_types::api::ProducerState {
                producer_id: 9,
                producer_epoch: 2,
                last_sequence: 2,
                last_timestamp: NOW + 9,
                current_txn_start_offset: Some(6),
            },
        ]
    );
    let mut other = pref();
    other.topic_id = "2-t".into();
    assert_eq!(
        p.producers(&other).unwrap_err().code(),
        ErrorCode::UnknownTopicOrPartition
    );
}
