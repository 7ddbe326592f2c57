//! Consumer groups: an offset fetch shows only offsets committed plainly before it, or by a
//! transaction that did not abort, was asked to commit before the fetch completed and whose
//! group marker (if observed) had landed (`OffsetVisibility`); and no partition has two owners
//! in one generation of a group (`GroupOwnership`).

use std::collections::HashMap;

use kafdo_types::rpc::TxnResult;

use super::{Checker, Invariant, TxnKey};
use crate::history::{GroupOffset, Reply, Request, Tp};

/// A group's offset for a partition: (group, partition, offset).
type GroupOffsetKey<'a> = (&'a str, Tp, i64);

impl<'a> Checker<'a> {
    pub(super) fn check_offsets(&mut self) {
        let ops = self.ops.clone();
        // (group, tp, offset) -> how it was committed: plain commits, or transactions.
        let mut plain: HashMap<(&str, Tp, i64), u64> = HashMap::new();
        let mut txns: HashMap<GroupOffsetKey<'_>, Vec<(TxnKey, u64)>> = HashMap::new();
        for op in &ops {
            match op.request {
                Request::CommitOffsets {
                    group_id, offsets, ..
                } => {
                    for o in offsets {
                        plain
                            .entry((group_id, Tp::new(o.topic.clone(), o.partition), o.offset))
                            .or_insert(op.invoke);
                    }
                }
                Request::AddOffsets {
                    group_id,
                    producer_id,
                    producer_epoch,
                    offsets,
                    ..
                } => {
                    for o in offsets {
                        txns.entry((group_id, Tp::new(o.topic.clone(), o.partition), o.offset))
                            .or_default()
                            .push(((*producer_id, *producer_epoch), op.invoke));
                    }
                }
                _ => {}
            }
        }
        for op in &ops {
            let (Request::FetchOffsets { group_id, .. }, Some(Reply::Offsets { offsets })) =
                (op.request, op.reply())
            else {
                continue;
            };
            for GroupOffset {
                topic,
                partition,
                offset,
            } in offsets
            {
                let key = (
                    group_id.as_str(),
                    Tp::new(topic.clone(), *partition),
                    *offset,
                );
                if plain.get(&key).is_some_and(|at| *at < op.complete) {
                    continue;
                }
                let candidates = txns.get(&key).cloned().unwrap_or_default();
                let mut why_not = Vec::new();
                let explained = candidates.iter().any(|(txn, at)| {
                    if *at > op.complete {
                        return false;
                    }
                    if self.outcome(*txn) == Some(TxnResult::Abort) {
                        why_not.push(format!("transaction {txn:?} aborted"));
                        return false;
                    }
                    match self.commit_requested.get(txn) {
                        Some(c) if *c < op.complete => {}
                        _ => {
                            why_not.push(format!("transaction {txn:?} was still open"));
                            return false;
                        }
                    }
                    if let Some(m) = self.group_commit_markers.get(&(group_id.as_str(), *txn)) {
                        if *m > op.complete {
                            why_not.push(format!(
                                "transaction {txn:?}'s commit marker had not reached the group"
                            ));
                            return false;
                        }
                    }
                    true
                });
                if !explained {
                    let why = if why_not.is_empty() {
                        "nobody committed it".to_string()
                    } else {
                        why_not.join("; ")
                    };
                    self.violation(
                        Invariant::OffsetVisibility,
                        format!(
                            "group {group_id} showed offset {offset} for {topic}/{partition}: {why}"
                        ),
                        vec![op.complete],
                    );
                }
            }
        }
    }

    pub(super) fn check_groups(&mut self) {
        let ops = self.ops.clone();
        let mut owners: HashMap<(&str, i32, Tp), (&str, u64)> = HashMap::new();
        for op in &ops {
            let (group_id, asked_member) = match op.request {
                Request::JoinGroup { group_id, .. } => (group_id.as_str(), None),
                Request::Heartbeat {
                    group_id,
                    member_id,
                    ..
                } => (group_id.as_str(), Some(member_id.as_str())),
                _ => continue,
            };
            let Some(Reply::Member {
                member_id,
                generation_id,
                assignment,
            }) = op.reply()
            else {
                continue;
            };
            // A heartbeat's answer is about the member that sent it.
            let member_id = asked_member.unwrap_or(member_id.as_str());
            for tp in assignment {
                let key = (group_id, *generation_id, tp.clone());
                match owners.get(&key) {
                    Some((other, at)) if *other != member_id => {
                        let (other, at) = (other.to_string(), *at);
                        self.violation(
                            Invariant::GroupOwnership,
                            format!(
                                "group {group_id} generation {generation_id} gave {tp} to both \
                                 {other} and {member_id}"
                            ),
                            vec![at, op.complete],
                        );
                    }
                    Some(_) => {}
                    None => {
                        owners.insert(key, (member_id, op.complete));
                    }
                }
            }
        }
    }
}
