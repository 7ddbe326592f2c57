//! The end state, checked once the history settled: a final read_uncommitted and read_committed
//! scan of every partition written or scanned (`LostWrite` when one is missing); no hanging
//! transaction (`Hanging`); every offset from the final log start to the high watermark holds a
//! record or a marker, observed or owed by a registered transaction (`DenseOffsets`, not on a
//! compacted topic); and every acknowledged write is in the final read_uncommitted scan at its
//! offset, and outside a transaction in the read_committed one (`LostWrite`, not on a compacted
//! topic nor below the final log start).

use std::collections::{BTreeSet, HashMap, HashSet};

use super::{Checker, Invariant, TxnKey};
use crate::history::{Reply, Request, Tp};

impl<'a> Checker<'a> {
    pub(super) fn check_end_state(&mut self) {
        let ops = self.ops.clone();
        let tps: BTreeSet<Tp> = self
            .writes
            .values()
            .map(|w| w.tp.clone())
            .chain(self.final_scans.keys().map(|(tp, _)| tp.clone()))
            .collect();
        let settled = self.settled.unwrap_or(0);
        for tp in &tps {
            for committed in [false, true] {
                if !self.final_scans.contains_key(&(tp.clone(), committed)) {
                    self.violation(
                        Invariant::LostWrite,
                        format!(
                            "the history settled but has no final {} scan of {tp}",
                            if committed {
                                "read_committed"
                            } else {
                                "read_uncommitted"
                            }
                        ),
                        vec![settled],
                    );
                }
            }
        }
        // Registered transactions per partition, for the markers owed.
        let mut registered: HashMap<Tp, BTreeSet<TxnKey>> = HashMap::new();
        for op in &ops {
            if let Request::AddPartitions {
                producer_id,
                producer_epoch,
                partitions,
                ..
            } = op.request
            {
                for tp in partitions {
                    registered
                        .entry(tp.clone())
                        .or_default()
                        .insert((*producer_id, *producer_epoch));
                }
            }
            if let Request::Produce {
                producer_id: Some(id),
                producer_epoch: Some(epoch),
                transactional_id: Some(_),
                topic,
                partition,
                ..
            } = op.request
            {
                registered
                    .entry(Tp::new(topic.clone(), *partition))
                    .or_default()
                    .insert((*id, *epoch));
            }
        }
        for tp in &tps {
            let Some(ru) = self.final_scans.get(&(tp.clone(), false)).copied() else {
                continue;
            };
            let compacted = self.compacted.contains_key(tp.topic.as_str());
            let log_start = self.final_log_start(tp);
            let Some(Reply::Fetch {
                records,
                high_watermark,
                last_stable_offset,
                ..
            }) = ru.reply()
            else {
                continue;
            };
            if last_stable_offset < high_watermark {
                self.violation(
                    Invariant::Hanging,
                    format!(
                        "{tp}: after settling, the last stable offset {last_stable_offset} is \
                         still below the high watermark {high_watermark}"
                    ),
                    vec![ru.complete],
                );
            }
            // Dense offsets: every gap is a marker, observed or owed.
            let held: HashSet<i64> = records.iter().map(|r| r.offset).collect();
            let markers = self.marker_offsets.get(tp).cloned().unwrap_or_default();
            let observed_txns: HashSet<TxnKey> = markers.values().map(|(t, _)| *t).collect();
            let owed = registered
                .get(tp)
                .map_or(0, |txns| txns.difference_count(&observed_txns));
            // Retention deleted everything below the log start (`RetentionExpired` judges it).
            let gaps: Vec<i64> = (log_start..*high_watermark)
                .filter(|o| !held.contains(o) && !markers.contains_key(o))
                .collect();
            // Compaction leaves gaps by design (`CompactedLatest` judges what must remain).
            if gaps.len() > owed && !compacted {
                let shown: Vec<String> = gaps.iter().take(10).map(ToString::to_string).collect();
                self.violation(
                    Invariant::DenseOffsets,
                    format!(
                        "{tp} has {} offsets below the high watermark {high_watermark} holding \
                         neither a record nor a marker (at most {owed} markers are unobserved): \
                         {}",
                        gaps.len(),
                        shown.join(", ")
                    ),
                    vec![ru.complete],
                );
            }
        }
        // Every acknowledged write is readable at its acknowledged offset.
        for op in &ops {
            let (
                Request::Produce {
                    topic,
                    partition,
                    values,
                    transactional_id,
                    ..
                },
                Some(Reply::Produce { base_offset, .. }),
            ) = (op.request, op.reply())
            else {
                continue;
            };
            let tp = Tp::new(topic.clone(), *partition);
            if self.compacted.contains_key(topic.as_str()) {
                // A superseded write is rightly gone: `CompactedLatest` judges compacted topics.
                continue;
            }
            let Some(all) = self.final_records(&tp, false) else {
                continue;
            };
            let committed = self.final_records(&tp, true).unwrap_or(&[]);
            let log_start = self.final_log_start(&tp);
            for (i, value) in values.iter().enumerate() {
                let offset = base_offset + i as i64;
                if offset < log_start {
                    // Retention deleted it: `RetentionExpired` judges whether it could.
                    continue;
                }
                let found = all.iter().find(|r| r.offset == offset);
                if found.map(|r| r.value.as_str()) != Some(value.as_str()) {
                    self.violation(
                        Invariant::LostWrite,
                        format!(
                            "{value} was acknowledged at {tp} offset {offset}, but the final scan \
                             has {} there",
                            found.map_or("nothing".to_string(), |r| r.value.clone())
                        ),
                        vec![op.complete],
                    );
                } else if transactional_id.is_none() && !committed.iter().any(|r| r.value == *value)
                {
                    self.violation(
                        Invariant::LostWrite,
                        format!(
                            "{value} was acknowledged at {tp} offset {offset} outside any \
                             transaction, but read_committed readers never see it"
                        ),
                        vec![op.complete],
                    );
                }
            }
        }
    }
}

trait DifferenceCount {
    fn difference_count(&self, other: &HashSet<TxnKey>) -> usize;
}

impl DifferenceCount for BTreeSet<TxnKey> {
    fn difference_count(&self, other: &HashSet<TxnKey>) -> usize {
        self.iter().filter(|t| !other.contains(t)).count()
    }
}
