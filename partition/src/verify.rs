//! The full check of a partition's invariants against its storage, for tests and the
//! simulator: [`Partition::verify`] reads every row.

use std::collections::BTreeSet;

use kafdo_sql::Sql;

use crate::codec::RecordReader;
use crate::compaction::{self, FLAG_OFFSETS};
use crate::schema::{FLAG_CONTROL, FLAG_TRANSACTIONAL};
use crate::{Partition, PartitionError};

impl<S: Sql> Partition<S> {
    /// Scans the whole log and asserts its invariants: rows in order from the log start offset
    /// (the first may begin before it, cut by a delete_records; rows wholly before it only
    /// while a trim is due) to the high watermark, each row's blob holding exactly its records, the cache equal to
    /// storage. Offsets are dense except where compaction removed records: on a compacted
    /// topic, gaps (between rows and inside rewritten rows) lie only below the compaction
    /// frontier, and the cleaned part holds each key at most once and no aborted record. For
    /// tests and the simulator; it reads every row.
    pub fn verify(&self) -> Result<(), PartitionError> {
        if self.deleted {
            let left = self.sql.first("SELECT count(*) FROM batches", &[])?;
            assert_eq!(
                left.map_or(0, |r| r.int(0)),
                0,
                "a deleted log still has rows"
            );
            return Ok(());
        }
        let rows = self.sql.exec(
            "SELECT base_offset, last_offset, flags, records, producer_id, size_bytes,
                    max_timestamp
             FROM batches ORDER BY base_offset",
            &[],
        )?;
        let aborted: Vec<(i64, i64, i64)> = self
            .sql
            .exec(
                "SELECT producer_id, first_offset, last_offset FROM aborted_transactions",
                &[],
            )?
            .iter()
            .map(|r| (r.int(0), r.int(1), r.int(2)))
            .collect();
        let compacted = self.is_compacted();
        // Below this offset compaction may have removed records (rounds rewrite rows in
        // order, from the log start up to the round's cursor).
        let frontier = self.compaction.frontier();
        assert!(
            compacted || frontier <= self.log_start_offset,
            "a topic that is not compacted was compacted"
        );
        let mut clean_keys: BTreeSet<Vec<u8>> = BTreeSet::new();
        let mut next = self.log_start_offset;
        for r in &rows {
            let (base, last, flags) = (r.int(0), r.int(1), r.int(2));
            assert!(base <= last, "a log row ends before it starts");
            if last < self.log_start_offset {
                // Left by a delete_records, for the alarm to delete.
                assert!(
                    self.untrimmed,
                    "a row before the log start, and no trim due"
                );
                continue;
            }
            if base < self.log_start_offset {
                // A row the log start cuts (delete_records): the first one only.
                assert_eq!(next, self.log_start_offset, "two rows cut by the log start");
                assert!(!compacted, "a compacted log cut by delete_records");
                next = base;
            }
            assert!(base >= next, "log rows overlap or start before the log");
            assert!(
                base == next || base <= frontier,
                "a gap before offset {base} above the compaction frontier {frontier}"
            );
            let explicit = flags & FLAG_OFFSETS != 0;
            assert!(
                !explicit || base < frontier,
                "a rewritten row at {base} above the compaction frontier {frontier}"
            );
            let is_aborted = flags & FLAG_TRANSACTIONAL != 0
                && aborted.iter().any(|&(id, first, end)| {
                    Some(id) == r.opt_int(4) && first <= base && base <= end
                });
            if flags & FLAG_CONTROL == 0 {
                let mut reader = if explicit {
                    RecordReader::with_offsets(r.blob(3), base)
                } else {
                    RecordReader::new(r.blob(3), base)
                };
                let (mut n, mut previous, mut size, mut max_ts) = (0, base - 1, 0, None);
                while let Some(record) = reader.next_record() {
                    assert!(
                        record.offset > previous && record.offset <= last,
                        "a row's records are out of order or outside its offsets"
                    );
                    previous = record.offset;
                    n += 1;
                    size += record.size_bytes() as i64;
                    max_ts = max_ts.max(Some(record.timestamp));
                    if compacted && record.offset < self.compaction.cleaned_offset {
                        assert!(!is_aborted, "an aborted record in the cleaned log");
                        if let Some(key) = record.key {
                            assert!(
                                clean_keys.insert(key),
                                "a key twice in the cleaned log (offset {})",
                                record.offset
                            );
                        }
                    }
                }
                if explicit {
                    assert_eq!(size, r.int(5), "a rewritten row's size_bytes is wrong");
                    if let Some(ts) = max_ts {
                        assert_eq!(ts, r.int(6), "a rewritten row's max_timestamp is wrong");
                    }
                } else {
                    assert_eq!(
                        n,
                        last - base + 1,
                        "a row's blob disagrees with its offsets"
                    );
                }
            } else {
                assert_eq!(base, last, "a control batch spans one offset");
            }
            next = last + 1;
        }
        assert_eq!(
            next, self.high_watermark,
            "the cached high watermark is wrong"
        );
        if compacted {
            assert!(
                aborted
                    .iter()
                    .all(|&(_, _, end)| end >= self.compaction.cleaned_offset),
                "an aborted-index entry below the cleaned offset"
            );
        }
        if compacted {
            // (Retention moves the log start of other topics, and with it the initial state.)
            let stored = compaction::load_state(&self.sql, self.log_start_offset)?;
            assert_eq!(
                stored, self.compaction,
                "the cached compaction state is wrong"
            );
        }
        let idle: BTreeSet<(i64, i64)> = self
            .producers
            .iter()
            .map(|(&id, e)| (e.last_seen_ms, id))
            .collect();
        assert_eq!(
            idle, self.idle,
            "the idle index disagrees with the producers"
        );
        self.assert_offsets();
        Ok(())
    }
}
