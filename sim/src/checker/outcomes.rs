//! How each transaction ended. The evidence (the final scans, partition and group markers, the
//! coordinator's commit and abort answers) must agree on one outcome, a transaction's records on
//! one partition are all visible or all hidden, and a transaction commits only if a commit was
//! asked for (`TxnAtomicity`). The agreed outcomes are what the read, offset, compaction and
//! retention checks judge records by, so they are decided first.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use kafdo_types::rpc::TxnResult;
use kafdo_types::txn::TransactionState;

use super::{Checker, Invariant, TxnKey, Violation};
use crate::history::{Entry, Observation, Reply, Request, Tp};

impl<'a> Checker<'a> {
    pub(super) fn decide_outcomes(&mut self) {
        // Evidence, in the order it is trusted: the final scans (what readers will see for
        // ever), then markers, then the coordinator's answers.
        let mut evidence: BTreeMap<TxnKey, Vec<(TxnResult, String, u64)>> = BTreeMap::new();
        let tps: BTreeSet<Tp> = self.final_scans.keys().map(|(tp, _)| tp.clone()).collect();
        for tp in &tps {
            let (Some(all), Some(committed)) =
                (self.final_records(tp, false), self.final_records(tp, true))
            else {
                continue;
            };
            let visible: HashSet<&str> = committed.iter().map(|r| r.value.as_str()).collect();
            let ru_event = self.final_scans[&(tp.clone(), false)].complete;
            let rc_event = self.final_scans[&(tp.clone(), true)].complete;
            let mut seen: BTreeMap<TxnKey, (bool, bool)> = BTreeMap::new();
            for record in all {
                let Some(write) = self.writes.get(record.value.as_str()) else {
                    continue;
                };
                let Some(txn) = write.txn else { continue };
                let entry = seen.entry(txn).or_default();
                if visible.contains(record.value.as_str()) {
                    entry.0 = true;
                } else {
                    entry.1 = true;
                }
            }
            for (txn, (shown, hidden)) in seen {
                if shown && hidden {
                    self.violation(
                        Invariant::TxnAtomicity,
                        format!(
                            "transaction {txn:?}: some of its records on {tp} are visible to \
                             read_committed readers and some are not"
                        ),
                        vec![ru_event, rc_event],
                    );
                }
                let result = if shown {
                    TxnResult::Commit
                } else {
                    TxnResult::Abort
                };
                evidence.entry(txn).or_default().push((
                    result,
                    format!(
                        "its records on {tp} are {}",
                        if shown { "visible" } else { "hidden" }
                    ),
                    rc_event,
                ));
            }
        }
        for event in self.events {
            if let Entry::Observe { observation } = &event.entry {
                match observation {
                    Observation::Marker {
                        topic,
                        partition,
                        producer_id,
                        producer_epoch,
                        result,
                        ..
                    } => evidence
                        .entry((*producer_id, *producer_epoch))
                        .or_default()
                        .push((
                            *result,
                            format!("a {result:?} marker on {topic}/{partition}"),
                            event.index,
                        )),
                    Observation::GroupMarker {
                        group_id,
                        producer_id,
                        producer_epoch,
                        result,
                    } => evidence
                        .entry((*producer_id, *producer_epoch))
                        .or_default()
                        .push((
                            *result,
                            format!("a {result:?} marker on group {group_id}"),
                            event.index,
                        )),
                    _ => {}
                }
            }
        }
        for op in &self.ops {
            if let (
                Request::EndTxn {
                    producer_id,
                    producer_epoch,
                    ..
                },
                Some(Reply::EndTxn {
                    state,
                    producer_id: next_id,
                    producer_epoch: next,
                }),
            ) = (op.request, op.reply())
            {
                if next_id.unwrap_or(*producer_id) == *producer_id && next == producer_epoch {
                    // Ending a transaction that never began changes nothing and keeps the
                    // epoch: it is no evidence about the next transaction of that epoch.
                    continue;
                }
                let result = match state {
                    TransactionState::CompleteCommit => TxnResult::Commit,
                    TransactionState::CompleteAbort => TxnResult::Abort,
                    other => {
                        self.violations.push(Violation {
                            invariant: Invariant::TxnAtomicity,
                            message: format!("a commit or abort answered the state {other}"),
                            events: vec![op.complete],
                        });
                        continue;
                    }
                };
                evidence
                    .entry((*producer_id, *producer_epoch))
                    .or_default()
                    .push((
                        result,
                        format!("the coordinator answered {state}"),
                        op.complete,
                    ));
            }
        }
        for (txn, pieces) in evidence {
            let (first, why, at) = pieces[0].clone();
            if let Some((_, other_why, other_at)) = pieces.iter().find(|p| p.0 != first) {
                self.violation(
                    Invariant::TxnAtomicity,
                    format!(
                        "transaction {txn:?} both committed and aborted: {why}, but {other_why}"
                    ),
                    vec![at, *other_at],
                );
            }
            if first == TxnResult::Commit && !self.commit_requested.contains_key(&txn) {
                self.violation(
                    Invariant::TxnAtomicity,
                    format!("transaction {txn:?} committed ({why}) but nobody asked to commit it"),
                    vec![at],
                );
            }
            self.outcomes.insert(txn, first);
        }
    }

    pub(super) fn outcome(&self, txn: TxnKey) -> Option<TxnResult> {
        self.outcomes.get(&txn).copied()
    }
}
