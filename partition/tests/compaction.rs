//! Compaction scenarios on real SQLite: keyless records refused, reads across every kind of
//! gap, the high watermark kept through an emptied last row and a restart, tombstones and the
//! delete retention, bounded steps that continue after a restart, idempotent retries of
//! compacted batches, open transactions left alone, and when compaction is due.

use std::rc::Rc;

use kafdo_partition::compaction::MAX_COMPACTION_ROWS_PER_STEP;
use kafdo_partition::{Partition, PartitionConfig};
use kafdo_sql::Sqlite;
use kafdo_types::api::{CleanupPolicy, FetchResponse, Isolation, TopicConfig};
use kafdo_types::record::ProduceRecord;
use kafdo_types::rpc::{
    AppendRequest, PartitionRef, ProducerBatch, ReadRequest, RegisterTxnRequest, TxnResult,
    WriteMarkerRequest,
};
use kafdo_types::ErrorCode;

const NOW: i64 = 1_700_000_000_000;
const DELETE_RETENTION_MS: i64 = 60_000;

type Core = Partition<Rc<Sqlite>>;

fn pref(policy: CleanupPolicy) -> PartitionRef {
    PartitionRef {
        topic: "t".into(),
        topic_id: "1-t".into(),
        partition: 0,
        config: TopicConfig {
            cleanup_policy: policy,
            ..TopicConfig::default()
        },
    }
}

fn config() -> PartitionConfig {
    PartitionConfig {
        delete_retention_ms: DELETE_RETENTION_MS,
        compaction_interval_ms: 1_000,
        ..PartitionConfig::default()
    }
}

fn open(db: &Rc<Sqlite>) -> Core {
    Partition::open_with_config(db.clone(), NOW, config()).unwrap()
}

fn rec(key: &str, value: Option<&str>) -> ProduceRecord {
    ProduceRecord {
        key: Some(key.into()),
        value: value.map(Into::into),
        ..ProduceRecord::default()
    }
}

fn append(core: &mut Core, records: Vec<ProduceRecord>, now_ms: i64) -> (i64, i64) {
    let r = core
        .append(
            &AppendRequest {
                partition: pref(CleanupPolicy::Compact),
                producer: None,
                transactional: false,
                producer_ids_below: kafdo_types::rpc::ANY_PRODUCER_ID,
                records,
            },
            now_ms,
        )
        .unwrap();
    (r.base_offset, r.last_offset)
}

fn read_at(core: &mut Core, offset: i64, max_records: u32, isolation: Isolation) -> FetchResponse {
    core.read(
        &ReadRequest {
            partition: pref(CleanupPolicy::Compact),
            offset,
            max_records,
            max_bytes: 1 << 20,
            isolation,
            wait_ms: 0,
        },
        NOW,
    )
    .unwrap()
}

/// (offset, key, value) of every record from `offset`, read `max_records` at a time.
fn scan(core: &mut Core, offset: i64, max_records: u32) -> Vec<(i64, String, Option<String>)> {
    let mut out = Vec::new();
    let mut offset = offset;
    loop {
        let r = read_at(core, offset, max_records, Isolation::ReadCommitted);
        out.extend(r.records.iter().map(|r| {
            (
                r.offset,
                String::from_utf8(r.key.clone().unwrap()).unwrap(),
                r.value.clone().map(|v| String::from_utf8(v).unwrap()),
            )
        }));
        if r.next_offset == r.last_stable_offset {
            return out;
        }
        assert!(r.next_offset > offset);
        offset = r.next_offset;
    }
}

fn compact_all(core: &mut Core, now_ms: i64) {
    loop {
        let step = core.compact(now_ms).unwrap();
        core.verify().unwrap();
        if step.rows_read == 0 && !step.round_finished {
            return;
        }
    }
}

fn owned(v: &[(i64, &str, Option<&str>)]) -> Vec<(i64, String, Option<String>)> {
    v.iter()
        .map(|&(o, k, v)| (o, k.to_owned(), v.map(str::to_owned)))
        .collect()
}

#[test]
fn a_compacted_topic_refuses_records_without_a_key() {
    let db = Rc::new(Sqlite::memory());
    let mut core = open(&db);
    let batch = vec![rec("a", Some("1")), ProduceRecord::value("no key")];
    let err = core
        .append(
            &AppendRequest {
                partition: pref(CleanupPolicy::Compact),
                producer: None,
                transactional: false,
                producer_ids_below: kafdo_types::rpc::ANY_PRODUCER_ID,
                records: batch.clone(),
            },
            NOW,
        )
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidRecord);
    assert_eq!(err.code().http_status(), 400);
    assert!(err.to_string().contains("record 1 has no key"), "{err}");
    // Nothing of the batch was written.
    let info = core.info(&pref(CleanupPolicy::Compact)).unwrap();
    assert_eq!(info.high_watermark, 0);
    // After the first keyed append binds the partition, the stored policy decides.
    append(&mut core, vec![rec("a", Some("1"))], NOW);
    let mut restarted = open(&db);
    let err = restarted
        .append(
            &AppendRequest {
                partition: pref(CleanupPolicy::Compact),
                producer: None,
                transactional: false,
                producer_ids_below: kafdo_types::rpc::ANY_PRODUCER_ID,
                records: vec![ProduceRecord::value("x")],
            },
            NOW,
        )
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidRecord);

    // A delete topic takes records without keys, and compaction does nothing there.
    let db = Rc::new(Sqlite::memory());
    let mut plain = open(&db);
    let req = AppendRequest {
        partition: pref(CleanupPolicy::Delete),
        producer: None,
        transactional: false,
        producer_ids_below: kafdo_types::rpc::ANY_PRODUCER_ID,
        records: vec![ProduceRecord::value("v"), ProduceRecord::value("v")],
    };
    plain.append(&req, NOW).unwrap();
    plain.append(&req, NOW).unwrap();
    assert_eq!(plain.next_compaction_ms(NOW), None);
    let step = plain.compact(NOW).unwrap();
    assert_eq!((step.rows_read, step.round_finished), (0, false));
    plain.verify().unwrap();
}

#[test]
fn reads_cross_gaps_at_the_start_inside_rows_and_between_rows() {
    let db = Rc::new(Sqlite::memory());
    let mut core = open(&db);
    // Rows: [0..=3] a1 b1 a2 c1, [4..=5] b2 b3, [6..=7] a3 d1, [8] c2 (the last row).
    append(
        &mut core,
        vec![
            rec("a", Some("a1")),
            rec("b", Some("b1")),
            rec("a", Some("a2")),
            rec("c", Some("c1")),
        ],
        NOW,
    );
    append(
        &mut core,
        vec![rec("b", Some("b2")), rec("b", Some("b3"))],
        NOW,
    );
    append(
        &mut core,
        vec![rec("a", Some("a3")), rec("d", Some("d1"))],
        NOW,
    );
    append(&mut core, vec![rec("c", Some("c2"))], NOW);
    compact_all(&mut core, NOW);
    assert_eq!(core.cleaned_offset(), 9);
    let latest = owned(&[
        (5, "b", Some("b3")),
        (6, "a", Some("a3")),
        (7, "d", Some("d1")),
        (8, "c", Some("c2")),
    ]);
    // The first row lost every record and is gone; the second keeps only offset 5.
    for max_records in 1..=5 {
        assert_eq!(scan(&mut core, 0, max_records), latest, "{max_records}");
    }
    // From inside the deleted row, from the gap at the start of a rewritten row, from a
    // record.
    for from in 0..=9 {
        let expected: Vec<_> = latest.iter().filter(|r| r.0 >= from).cloned().collect();
        assert_eq!(scan(&mut core, from, 1), expected, "from {from}");
    }
    // A read of one record inside a gap jumps to the next record.
    let r = read_at(&mut core, 1, 1, Isolation::ReadCommitted);
    assert_eq!(r.records[0].offset, 5);
    assert_eq!(r.next_offset, 6);
    let r = read_at(&mut core, 9, 1, Isolation::ReadCommitted);
    assert!(r.records.is_empty());
    assert_eq!(r.next_offset, 9);
    let info = core.info(&pref(CleanupPolicy::Compact)).unwrap();
    assert_eq!((info.log_start_offset, info.high_watermark), (0, 9));
}

#[test]
fn the_high_watermark_survives_an_emptied_last_row_and_a_restart() {
    let db = Rc::new(Sqlite::memory());
    let mut core = open(&db);
    append(&mut core, vec![rec("a", Some("1"))], NOW);
    // The last row holds only a tombstone of `a`; once both go, the row stays, empty.
    append(&mut core, vec![rec("a", None)], NOW);
    let later = NOW + DELETE_RETENTION_MS + 1;
    compact_all(&mut core, later);
    assert!(scan(&mut core, 0, 10).is_empty());
    let mut core = open(&db);
    core.verify().unwrap();
    let info = core.info(&pref(CleanupPolicy::Compact)).unwrap();
    assert_eq!((info.log_start_offset, info.high_watermark), (0, 2));
    let r = read_at(&mut core, 0, 10, Isolation::ReadUncommitted);
    assert_eq!((r.records.len(), r.next_offset), (0, 2));
    // The next append continues at 2; the next round deletes the empty row.
    assert_eq!(append(&mut core, vec![rec("b", Some("1"))], later), (2, 2));
    compact_all(&mut core, later);
    assert_eq!(scan(&mut core, 0, 10), owned(&[(2, "b", Some("1"))]));
}

#[test]
fn tombstones_stay_for_the_delete_retention() {
    let db = Rc::new(Sqlite::memory());
    let mut core = open(&db);
    append(
        &mut core,
        vec![rec("a", Some("1")), rec("b", Some("1"))],
        NOW,
    );
    append(&mut core, vec![rec("a", None)], NOW + 10);
    append(&mut core, vec![rec("c", Some("1"))], NOW + 20);
    compact_all(&mut core, NOW + 1_000);
    // The tombstone deletes `a` but stays readable.
    assert_eq!(
        scan(&mut core, 0, 10),
        owned(&[(1, "b", Some("1")), (2, "a", None), (3, "c", Some("1"))])
    );
    // Compaction knows when the tombstone expires and runs again then, without new data.
    let due = core.next_compaction_ms(NOW + 1_000).unwrap();
    assert_eq!(due, NOW + 10 + DELETE_RETENTION_MS + 1);
    compact_all(&mut core, due - 1);
    assert_eq!(scan(&mut core, 0, 10).len(), 3, "not yet expired");
    compact_all(&mut core, due);
    assert_eq!(
        scan(&mut core, 0, 10),
        owned(&[(1, "b", Some("1")), (3, "c", Some("1"))])
    );
    assert_eq!(core.next_compaction_ms(due), None);
}

#[test]
fn steps_are_bounded_and_continue_after_a_restart() {
    let db = Rc::new(Sqlite::memory());
    let mut core = open(&db);
    let rows = 2 * MAX_COMPACTION_ROWS_PER_STEP + 500;
    for i in 0..rows {
        append(
            &mut core,
            vec![rec(&format!("k{}", i % 10), Some(&format!("v{i}")))],
            NOW,
        );
    }
    let first = core.compact(NOW).unwrap();
    assert_eq!(first.rows_read as i64, MAX_COMPACTION_ROWS_PER_STEP);
    assert!(!first.round_finished);
    assert_eq!(first.rows_deleted as i64, MAX_COMPACTION_ROWS_PER_STEP);
    core.verify().unwrap();
    // In the middle of a round, the rows not yet rewritten are read as they were.
    let record = |i: i64| (i, format!("k{}", i % 10), Some(format!("v{i}")));
    let step = MAX_COMPACTION_ROWS_PER_STEP;
    let middle: Vec<_> = (step..rows).map(record).collect();
    assert_eq!(scan(&mut core, 0, 7), middle);
    let expected: Vec<_> = (rows - 10..rows).map(record).collect();
    // A restart continues the round where it stopped.
    let mut core = open(&db);
    assert_eq!(
        core.next_compaction_ms(NOW),
        Some(NOW),
        "a round in progress goes on"
    );
    let second = core.compact(NOW).unwrap();
    assert_eq!(second.rows_read as i64, MAX_COMPACTION_ROWS_PER_STEP);
    let third = core.compact(NOW).unwrap();
    assert_eq!(third.rows_read, 500);
    assert!(third.round_finished);
    assert_eq!(third.cleaned_offset, rows);
    core.verify().unwrap();
    assert_eq!(scan(&mut core, 0, 3), expected);
    assert_eq!(
        core.compact(NOW).unwrap().rows_read,
        0,
        "nothing left to do"
    );
}

#[test]
fn a_retry_of_a_compacted_batch_answers_its_original_offsets() {
    let db = Rc::new(Sqlite::memory());
    let mut core = open(&db);
    let batch = |seq| AppendRequest {
        partition: pref(CleanupPolicy::Compact),
        producer: Some(ProducerBatch {
            producer_id: 3,
            producer_epoch: 0,
            base_sequence: seq,
        }),
        transactional: false,
        producer_ids_below: kafdo_types::rpc::ANY_PRODUCER_ID,
        records: vec![rec("a", Some(&format!("v{seq}"))), rec("a", Some("x"))],
    };
    for seq in [0, 2, 4] {
        core.append(&batch(seq), NOW).unwrap();
    }
    compact_all(&mut core, NOW);
    assert_eq!(scan(&mut core, 0, 10), owned(&[(5, "a", Some("x"))]));
    let mut core = open(&db);
    let r = core.append(&batch(0), NOW).unwrap();
    assert!(r.duplicate);
    assert_eq!((r.base_offset, r.last_offset), (0, 1));
    assert_eq!(
        core.info(&pref(CleanupPolicy::Compact))
            .unwrap()
            .high_watermark,
        6
    );
}

#[test]
fn open_transactions_stop_compaction_and_aborted_records_go() {
    let db = Rc::new(Sqlite::memory());
    let mut core = open(&db);
    let register = |core: &mut Core, epoch| {
        core.register_txn(
            &RegisterTxnRequest {
                txn_seq: 0,
                partition: pref(CleanupPolicy::Compact),
                transactional_id: "tx".into(),
                producer_id: 9,
                producer_epoch: epoch,
            },
            NOW,
        )
        .unwrap();
    };
    let txn_write = |core: &mut Core, epoch, seq, value: &str| {
        core.append(
            &AppendRequest {
                partition: pref(CleanupPolicy::Compact),
                producer: Some(ProducerBatch {
                    producer_id: 9,
                    producer_epoch: epoch,
                    base_sequence: seq,
                }),
                transactional: true,
                producer_ids_below: kafdo_types::rpc::ANY_PRODUCER_ID,
                records: vec![rec("a", Some(value))],
            },
            NOW,
        )
        .unwrap()
    };
    let end = |core: &mut Core, epoch, result| {
        core.write_marker(
            &WriteMarkerRequest {
                txn_seq: 0,
                partition: pref(CleanupPolicy::Compact),
                producer_id: 9,
                producer_epoch: epoch,
                result,
            },
            NOW,
        )
        .unwrap()
    };
    append(&mut core, vec![rec("a", Some("committed"))], NOW); // 0
    register(&mut core, 0);
    txn_write(&mut core, 0, 0, "aborted"); // 1, marker 2
    end(&mut core, 0, TxnResult::Abort);
    register(&mut core, 1);
    txn_write(&mut core, 1, 0, "open"); // 3
    append(&mut core, vec![rec("a", Some("after"))], NOW); // 4
    compact_all(&mut core, NOW);
    // Only what lies below the open transaction's first offset is cleaned.
    assert_eq!(core.cleaned_offset(), 3);
    assert_eq!(
        scan(&mut core, 0, 10),
        owned(&[(0, "a", Some("committed"))])
    );
    let r = read_at(&mut core, 0, 10, Isolation::ReadUncommitted);
    let offsets: Vec<i64> = r.records.iter().map(|r| r.offset).collect();
    assert_eq!(
        offsets,
        [0, 3, 4],
        "the aborted record and its marker are gone"
    );
    end(&mut core, 1, TxnResult::Commit); // marker 5
    compact_all(&mut core, NOW);
    assert_eq!(core.cleaned_offset(), 6);
    assert_eq!(scan(&mut core, 0, 10), owned(&[(4, "a", Some("after"))]));
    // The commit marker holds the high watermark: it stays as the last row.
    let info = core.info(&pref(CleanupPolicy::Compact)).unwrap();
    assert_eq!((info.high_watermark, info.last_stable_offset), (6, 6));
    let core = open(&db);
    assert_eq!(
        core.info(&pref(CleanupPolicy::Compact))
            .unwrap()
            .high_watermark,
        6
    );
    core.verify().unwrap();
}

#[test]
fn compaction_is_due_by_the_dirty_ratio_the_interval_and_the_lag() {
    let db = Rc::new(Sqlite::memory());
    let mut core = open(&db);
    assert_eq!(core.next_compaction_ms(NOW), None, "an empty log");
    for i in 0..10 {
        append(&mut core, vec![rec(&format!("k{i}"), Some("v"))], NOW);
    }
    // Nothing cleaned yet: due at once.
    assert!(core.next_compaction_ms(NOW).unwrap() <= NOW);
    compact_all(&mut core, NOW);
    assert_eq!(core.next_compaction_ms(NOW), None, "all clean");
    // 10 clean records: 4 dirty offsets are under half of them, so only the lag makes a
    // round due (10 intervals after the last one started); 5 are enough, and the next round
    // waits for the interval after the last one started.
    for i in 0..4 {
        append(&mut core, vec![rec(&format!("k{i}"), Some("w"))], NOW);
    }
    let lag_ms = 1_000 * kafdo_partition::compaction::MAX_COMPACTION_LAG_INTERVALS;
    assert_eq!(core.next_compaction_ms(NOW), Some(NOW + lag_ms));
    append(&mut core, vec![rec("k5", Some("w"))], NOW);
    assert_eq!(core.next_compaction_ms(NOW), Some(NOW + 1_000));
    // After the lag, the small dirty tail is cleaned too: nothing is left to do.
    compact_all(&mut core, NOW + lag_ms);
    assert_eq!(core.next_compaction_ms(NOW + lag_ms), None, "all clean");
}
