//! Compacted topics ([`Observation::Compacted`]). Every record read carries the key and
//! tombstone flag its value was declared with, and within one read_committed reader session the
//! offsets read of one key strictly rise (`CompactedRead`); the log start never moves
//! (`LogStartFixed`); a fetch lacks a committed record of its range only when a non-aborted
//! write of the same key, at a higher offset or at one nobody saw, was sent before the fetch
//! completed, or the record is a tombstone past its delete retention (`CompactedSkipped`); and
//! after settling the final read_committed scan holds each key's latest committed write
//! (`CompactedLatest`).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use kafdo_types::rpc::TxnResult;

use super::ops::{answered_read, is_committed_isolation, partition_states, Read, ReadOp};
use super::{Checker, Invariant};
use crate::history::{Request, Tp};
// For the docs' links.
#[cfg(doc)]
use crate::history::Observation;

/// A write of a compacted topic at a known offset: (offset, value, committed for sure, first
/// invoke).
type KeyedWrite<'a> = (i64, &'a str, bool, u64);

impl<'a> Checker<'a> {
    pub(super) fn check_compacted_reads(&mut self) {
        if self.compacted.is_empty() {
            return;
        }
        let ops = self.ops.clone();
        // The last offset each read_committed reader session read of each key.
        let mut sessions: HashMap<(&str, Tp, &str), (i64, u64)> = HashMap::new();
        for op in &ops {
            let Some(Read {
                op:
                    ReadOp {
                        tp,
                        isolation,
                        reader,
                        ..
                    },
                records,
                ..
            }) = answered_read(op)
            else {
                continue;
            };
            if !self.compacted.contains_key(tp.topic.as_str()) {
                continue;
            }
            for record in records {
                let Some(&(key, tombstone)) = self.keys.get(record.value.as_str()) else {
                    // Nobody produced it, or its key was never declared: `OneValuePerOffset`
                    // says the former; a record of a compacted topic always has a key.
                    if self.writes.contains_key(record.value.as_str()) {
                        self.violation(
                            Invariant::CompactedRead,
                            format!(
                                "{tp} offset {} returned {}, whose key was never declared",
                                record.offset, record.value
                            ),
                            vec![op.complete],
                        );
                    }
                    continue;
                };
                if record.key.as_deref() != Some(key) || record.tombstone != tombstone {
                    self.violation(
                        Invariant::CompactedRead,
                        format!(
                            "{tp} offset {} returned {} with key {:?}{}, but it was written \
                             with key {key}{}",
                            record.offset,
                            record.value,
                            record.key,
                            if record.tombstone {
                                " as a tombstone"
                            } else {
                                ""
                            },
                            if tombstone { " as a tombstone" } else { "" },
                        ),
                        vec![op.complete],
                    );
                }
                let Some(reader) = reader else { continue };
                if !is_committed_isolation(isolation) {
                    continue;
                }
                let last = sessions.insert((reader, tp.clone(), key), (record.offset, op.complete));
                if let Some((before, at)) = last {
                    if before >= record.offset {
                        self.violation(
                            Invariant::CompactedRead,
                            format!(
                                "reader {reader} read key {key} of {tp} at offset {} after \
                                 reading it at offset {before}",
                                record.offset
                            ),
                            vec![at, op.complete],
                        );
                    }
                }
            }
        }
        self.check_compacted_skips();
        let mut log_start: HashMap<Tp, (i64, u64)> = HashMap::new();
        for state in partition_states(self.events) {
            if !self.compacted.contains_key(state.tp.topic.as_str()) {
                continue;
            }
            let (tp, log_start_offset) = (state.tp, state.log_start_offset);
            let (first, at) = *log_start
                .entry(tp.clone())
                .or_insert((log_start_offset, state.index));
            if first != log_start_offset {
                self.violation(
                    Invariant::LogStartFixed,
                    format!("{tp}: the log start offset moved from {first} to {log_start_offset}"),
                    vec![at, state.index],
                );
            }
        }
    }

    /// The first invoke (index, time) that carried each value produced to a compacted topic:
    /// its record's timestamp is no earlier.
    fn compacted_first_sent(&self) -> HashMap<&'a str, (u64, i64)> {
        let time_of: HashMap<u64, i64> = self.events.iter().map(|e| (e.index, e.time_ms)).collect();
        let mut first_sent = HashMap::new();
        for op in &self.ops {
            if let Request::Produce { topic, values, .. } = op.request {
                if self.compacted.contains_key(topic.as_str()) {
                    for value in values {
                        first_sent
                            .entry(value.as_str())
                            .or_insert((op.invoke, time_of[&op.invoke]));
                    }
                }
            }
        }
        first_sent
    }

    fn check_compacted_skips(&mut self) {
        let first_sent = self.compacted_first_sent();
        // Per (partition, key): the writes placed at a known offset and not aborted, as
        // (offset, value, committed for sure, first invoke); and the writes nobody saw placed
        // that did not abort, as their first invoke.
        let mut placed: HashMap<(Tp, &str), Vec<KeyedWrite<'a>>> = HashMap::new();
        let mut unplaced: HashMap<(Tp, &str), Vec<u64>> = HashMap::new();
        for (&value, &(key, _)) in &self.keys {
            let Some(&(sent, _)) = first_sent.get(value) else {
                continue;
            };
            let Some(write) = self.writes.get(value) else {
                continue;
            };
            let committed = match write.txn {
                None => true,
                Some(txn) => match self.outcome(txn) {
                    Some(TxnResult::Abort) => continue,
                    Some(TxnResult::Commit) => true,
                    None => false,
                },
            };
            match self.placed.get(value) {
                Some((tp, offset, _)) => placed
                    .entry((tp.clone(), key))
                    .or_default()
                    .push((*offset, value, committed, sent)),
                None => unplaced
                    .entry((write.tp.clone(), key))
                    .or_default()
                    .push(sent),
            }
        }
        let ops = self.ops.clone();
        for op in &ops {
            let Some(Read {
                op: ReadOp { tp, offset, .. },
                records,
                next_offset,
                ..
            }) = answered_read(op)
            else {
                continue;
            };
            let Some(&retention_ms) = self.compacted.get(tp.topic.as_str()) else {
                continue;
            };
            let done_ms = self.events[op.complete as usize].time_ms;
            let got: HashSet<i64> = records.iter().map(|r| r.offset).collect();
            for ((wtp, key), writes) in &placed {
                if *wtp != tp {
                    continue;
                }
                let excused_by_unplaced = unplaced
                    .get(&(tp.clone(), *key))
                    .is_some_and(|sent| sent.iter().any(|s| *s < op.complete));
                if excused_by_unplaced {
                    continue;
                }
                for &(at, value, committed, _) in writes {
                    if !committed || at < offset || at >= next_offset || got.contains(&at) {
                        continue;
                    }
                    // A later write whose transaction's outcome is unknown excuses too.
                    let superseded = writes
                        .iter()
                        .any(|&(later, _, _, sent)| later > at && sent < op.complete);
                    let (tombstone, sent_ms) = (self.keys[value].1, first_sent[value].1);
                    let expired = tombstone && done_ms > sent_ms.saturating_add(retention_ms);
                    if superseded || expired {
                        continue;
                    }
                    let placed_at = self.placed[value].2;
                    self.violation(
                        Invariant::CompactedSkipped,
                        format!(
                            "a fetch of {tp} covering [{offset}, {next_offset}) lacks {value} \
                             (key {key}) at offset {at}, committed and not superseded by any \
                             committed write sent before the fetch completed"
                        ),
                        vec![placed_at, op.complete],
                    );
                }
            }
        }
    }

    pub(super) fn check_compacted_end_state(&mut self) {
        if self.compacted.is_empty() {
            return;
        }
        let settled = self.settled.expect("settled");
        let settled_ms = self.events[settled as usize].time_ms;
        let first_sent = self.compacted_first_sent();
        // Per compacted partition and key: the committed write at the highest known offset.
        // A write is committed when outside a transaction, or its transaction committed; when
        // the highest non-aborted write's transaction has no known outcome the key is skipped
        // (nothing to compare with).
        let mut latest: BTreeMap<(Tp, &str), (i64, &str, bool)> = BTreeMap::new();
        for (value, (tp, offset, _)) in &self.placed {
            if !self.compacted.contains_key(tp.topic.as_str()) {
                continue;
            }
            let Some(&(key, _)) = self.keys.get(value) else {
                continue;
            };
            let write = &self.writes[value];
            let committed = match write.txn {
                None => Some(true),
                Some(txn) => match self.outcome(txn) {
                    Some(TxnResult::Commit) => Some(true),
                    Some(TxnResult::Abort) => continue,
                    None => None,
                },
            };
            let entry =
                latest
                    .entry((tp.clone(), key))
                    .or_insert((*offset, value, committed.is_some()));
            if *offset > entry.0 {
                *entry = (*offset, value, committed.is_some());
            }
        }
        // A key with a write nobody saw placed (not aborted, outcome unknown) cannot be judged:
        // that write may have landed above the latest known one, superseded it, and (a
        // tombstone) gone with its delete retention.
        let unplaced: BTreeSet<(Tp, &str)> = self
            .writes
            .iter()
            .filter(|(value, w)| {
                self.compacted.contains_key(w.tp.topic.as_str())
                    && !self.placed.contains_key(*value)
                    && w.txn
                        .is_none_or(|txn| self.outcome(txn) != Some(TxnResult::Abort))
            })
            .filter_map(|(value, w)| self.keys.get(value).map(|&(key, _)| (w.tp.clone(), key)))
            .collect();
        for ((tp, key), (offset, value, known)) in latest {
            if !known || unplaced.contains(&(tp.clone(), key)) {
                continue;
            }
            let Some(rc) = self.final_scans.get(&(tp.clone(), true)).copied() else {
                continue;
            };
            let records = self.final_records(&tp, true).unwrap_or(&[]);
            if records.iter().any(|r| r.offset == offset) {
                // `OneValuePerOffset` judges which value sits there.
                continue;
            }
            let tombstone = self.keys[value].1;
            let retention_ms = self.compacted[tp.topic.as_str()];
            let expired = first_sent
                .get(value)
                .is_some_and(|(_, sent_ms)| settled_ms > sent_ms.saturating_add(retention_ms));
            if tombstone && expired {
                let left: Vec<String> = records
                    .iter()
                    .filter(|r| r.key.as_deref() == Some(key))
                    .map(ToString::to_string)
                    .collect();
                if !left.is_empty() {
                    self.violation(
                        Invariant::CompactedLatest,
                        format!(
                            "{tp}: key {key}'s latest committed write, tombstone {value} at \
                             {offset}, is gone, but older records of the key remain: {}",
                            left.join(", ")
                        ),
                        vec![rc.complete],
                    );
                }
                continue;
            }
            let at = self.placed[value].2;
            self.violation(
                Invariant::CompactedLatest,
                format!(
                    "{tp}: key {key}'s latest committed write {value}{} at offset {offset} is \
                     missing from the final read_committed scan",
                    if tombstone {
                        " (a tombstone within its delete retention)"
                    } else {
                        ""
                    }
                ),
                vec![at, rc.complete],
            );
        }
    }
}
