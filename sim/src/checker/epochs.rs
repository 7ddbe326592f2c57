//! Producer epochs and fencing. A transactional id's identity (producer id, epoch) only rises:
//! two inits never get the same one, an init sent after another was answered gets a higher
//! one, ending a transaction answers no older one, and the coordinator's observed identity
//! never goes back (`EpochsRise`). A transactional write, partition registration or offset
//! registration with an identity older than one already handed out must not succeed
//! (`Fencing`).

use std::collections::HashMap;

use super::{Checker, Invariant};
use crate::history::{Entry, Observation, Reply, Request};

impl<'a> Checker<'a> {
    pub(super) fn check_epochs_and_fencing(&mut self) {
        let ops = self.ops.clone();
        // A transactional id's identities, (producer id, epoch), only rise: epochs rise within a
        // producer id, and a transactional id moves to a new, higher producer id (allocated
        // rising) only when its epochs are spent, starting its epochs again.
        type Identity = (i64, i32);
        // Per transactional id: the inits' (invoke, answer, identity), and the identities
        // inits handed out.
        let mut inits_of: HashMap<&str, Vec<(u64, u64, Identity)>> = HashMap::new();
        let mut init_identities: HashMap<&str, HashMap<Identity, u64>> = HashMap::new();
        // Per transactional id: (answer event, identity) of every answer revealing one.
        let mut revealed: HashMap<&str, Vec<(u64, Identity)>> = HashMap::new();
        for op in &ops {
            match (op.request, op.reply()) {
                (
                    Request::InitProducer {
                        transactional_id: Some(tid),
                    },
                    Some(Reply::Producer {
                        producer_id,
                        producer_epoch,
                    }),
                ) => {
                    let identity = (*producer_id, *producer_epoch);
                    inits_of
                        .entry(tid)
                        .or_default()
                        .push((op.invoke, op.complete, identity));
                    let inits = init_identities.entry(tid).or_default();
                    if let Some(at) = inits.insert(identity, op.complete) {
                        self.violation(
                            Invariant::EpochsRise,
                            format!(
                                "two inits of {tid} both got {producer_id}.{producer_epoch}: two \
                                 live instances share an epoch"
                            ),
                            vec![at, op.complete],
                        );
                    }
                    revealed
                        .entry(tid)
                        .or_default()
                        .push((op.complete, identity));
                }
                (
                    Request::EndTxn {
                        transactional_id,
                        producer_id,
                        producer_epoch,
                        ..
                    },
                    Some(Reply::EndTxn {
                        producer_id: next_id,
                        producer_epoch: next,
                        ..
                    }),
                ) => {
                    let ended = (*producer_id, *producer_epoch);
                    let next = (next_id.unwrap_or(*producer_id), *next);
                    if next < ended {
                        self.violation(
                            Invariant::EpochsRise,
                            format!(
                                "ending transaction {ended:?} answered the older {}.{}",
                                next.0, next.1
                            ),
                            vec![op.complete],
                        );
                    }
                    revealed
                        .entry(transactional_id)
                        .or_default()
                        .push((op.complete, next));
                }
                _ => {}
            }
        }
        // An init sent after another was answered gets a higher identity (concurrent inits may
        // be answered in any order).
        for (tid, inits) in &inits_of {
            for (_, answered, before) in inits {
                for (sent, at, after) in inits {
                    if answered < sent && after <= before {
                        self.violation(
                            Invariant::EpochsRise,
                            format!(
                                "an init of {tid} got {}.{} after an earlier one got {}.{}",
                                after.0, after.1, before.0, before.1
                            ),
                            vec![*answered, *at],
                        );
                    }
                }
            }
        }
        let mut coordinator: HashMap<&str, (Identity, u64)> = HashMap::new();
        for event in self.events {
            let Entry::Observe {
                observation:
                    Observation::Coordinator {
                        transactional_id,
                        producer_id,
                        producer_epoch,
                        ..
                    },
            } = &event.entry
            else {
                continue;
            };
            let now = (*producer_id, *producer_epoch);
            if let Some((before, at)) = coordinator.get(transactional_id.as_str()).copied() {
                if now < before {
                    self.violation(
                        Invariant::EpochsRise,
                        format!(
                            "coordinator {transactional_id} went from {}.{} to {}.{}",
                            before.0, before.1, now.0, now.1
                        ),
                        vec![at, event.index],
                    );
                }
            }
            coordinator.insert(transactional_id, (now, event.index));
        }
        for op in &ops {
            let (tid, producer_id, producer_epoch, what) = match op.request {
                Request::Produce {
                    producer_id: Some(id),
                    producer_epoch: Some(epoch),
                    transactional_id: Some(tid),
                    ..
                } => {
                    if matches!(
                        op.reply(),
                        Some(Reply::Produce {
                            duplicate: true,
                            ..
                        })
                    ) {
                        // A retry of a batch written before the fence changes nothing.
                        continue;
                    }
                    (tid, *id, *epoch, "transactional write")
                }
                Request::AddPartitions {
                    transactional_id,
                    producer_id,
                    producer_epoch,
                    ..
                } => (
                    transactional_id,
                    *producer_id,
                    *producer_epoch,
                    "partition registration",
                ),
                Request::AddOffsets {
                    transactional_id,
                    producer_id,
                    producer_epoch,
                    ..
                } => (
                    transactional_id,
                    *producer_id,
                    *producer_epoch,
                    "offset registration",
                ),
                _ => continue,
            };
            if op.reply().is_none() {
                continue;
            }
            let used = (producer_id, producer_epoch);
            let newer = revealed.get(tid.as_str()).and_then(|answers| {
                answers
                    .iter()
                    .find(|(at, identity)| *at < op.invoke && *identity > used)
                    .copied()
            });
            if let Some((at, (id, epoch))) = newer {
                self.violation(
                    Invariant::Fencing,
                    format!(
                        "a {what} with {producer_id}.{producer_epoch} succeeded after {id}.{epoch} \
                         was handed out"
                    ),
                    vec![at, op.invoke, op.complete],
                );
            }
        }
    }
}
