//! Topics with retention ([`Observation::Retention`]). Where each partition's log start was
//! seen (its sightings, and the final log start the end-state checks count from), and what
//! retention promises: the log start only rises, stays within the last stable offset and the
//! high watermark, and no fetch is answered below a log start seen before it was sent
//! (`RetentionLogStart`); a record or marker below a sighted log start went only once it may
//! have expired (`RetentionExpired`) and once its transaction's marker had landed
//! (`RetentionStable`).

use std::collections::HashMap;

use super::ops::partition_states;
use super::{Checker, Invariant, Violation};
use crate::history::{Reply, Request, Tp};
// For the docs' links.
#[cfg(doc)]
use crate::history::Observation;

/// One sighting of a partition's log start offset: an observed partition state, or a
/// partition-offsets answer.
#[derive(Clone, Copy, Debug)]
pub(super) struct Sighting {
    /// The earliest event the state may be from: the observation, or the request's invoke.
    from: u64,
    /// The event that showed it: the observation, or the answer.
    at: u64,
    log_start_offset: i64,
    high_watermark: i64,
    last_stable_offset: i64,
}

impl<'a> Checker<'a> {
    /// The log start offset of `tp` when the final scans ran: the highest sighted (it only
    /// rises: `RetentionLogStart`), or 0 on a topic without retention.
    pub(super) fn final_log_start(&self, tp: &Tp) -> i64 {
        self.log_starts
            .get(tp)
            .and_then(|s| s.iter().map(|s| s.log_start_offset).max())
            .unwrap_or(0)
    }

    /// Collects the sightings of each retained partition's log start: every observed partition
    /// state and every partition-offsets answer.
    fn index_log_starts(&mut self) {
        let mut log_starts: HashMap<Tp, Vec<Sighting>> = HashMap::new();
        for state in partition_states(self.events) {
            if !self.retained.contains_key(state.tp.topic.as_str()) {
                continue;
            }
            log_starts.entry(state.tp).or_default().push(Sighting {
                from: state.index,
                at: state.index,
                log_start_offset: state.log_start_offset,
                high_watermark: state.high_watermark,
                last_stable_offset: state.last_stable_offset,
            });
        }
        for op in &self.ops {
            let (
                Request::PartitionOffsets { topic, partition },
                Some(Reply::PartitionOffsets {
                    log_start_offset,
                    high_watermark,
                    last_stable_offset,
                }),
            ) = (op.request, op.reply())
            else {
                continue;
            };
            if !self.retained.contains_key(topic.as_str()) {
                continue;
            }
            log_starts
                .entry(Tp::new(topic.clone(), *partition))
                .or_default()
                .push(Sighting {
                    from: op.invoke,
                    at: op.complete,
                    log_start_offset: *log_start_offset,
                    high_watermark: *high_watermark,
                    last_stable_offset: *last_stable_offset,
                });
        }
        for sightings in log_starts.values_mut() {
            sightings.sort_by_key(|s| s.at);
        }
        self.log_starts = log_starts;
    }

    pub(super) fn check_retention(&mut self) {
        if self.retained.is_empty() {
            return;
        }
        self.index_log_starts();
        let time_of = |index: u64| self.events[index as usize].time_ms;
        let mut first_sent: HashMap<&'a str, i64> = HashMap::new();
        for op in &self.ops {
            if let Request::Produce { topic, values, .. } = op.request {
                if self.retained.contains_key(topic.as_str()) {
                    for value in values {
                        first_sent
                            .entry(value.as_str())
                            .or_insert(time_of(op.invoke));
                    }
                }
            }
        }
        let mut violations = Vec::new();
        let mut tps: Vec<&Tp> = self.log_starts.keys().collect();
        tps.sort();
        for tp in tps {
            let sightings = &self.log_starts[tp];
            let retention_ms = self.retained[tp.topic.as_str()];
            // The highest log start among the first i sightings (by when they were seen).
            let mut highest = Vec::with_capacity(sightings.len() + 1);
            highest.push((i64::MIN, u64::MAX));
            for s in sightings {
                let &(before, at) = highest.last().expect("non-empty");
                highest.push(if s.log_start_offset > before {
                    (s.log_start_offset, s.at)
                } else {
                    (before, at)
                });
            }
            // The highest log start seen before event `index`, and where.
            let seen_before = |index: u64| highest[sightings.partition_point(|s| s.at < index)];
            for s in sightings {
                let (start, hw, lso) = (s.log_start_offset, s.high_watermark, s.last_stable_offset);
                if start > lso || lso > hw || start < 0 {
                    violations.push(Violation {
                        invariant: Invariant::RetentionLogStart,
                        message: format!(
                            "{tp}: log start {start} passes the last stable offset {lso} or the \
                             high watermark {hw} seen with it"
                        ),
                        events: vec![s.at],
                    });
                }
                let (before, at) = seen_before(s.from);
                if start < before {
                    violations.push(Violation {
                        invariant: Invariant::RetentionLogStart,
                        message: format!("{tp}: the log start went back from {before} to {start}"),
                        events: vec![at, s.at],
                    });
                }
            }
            for op in &self.ops {
                let (
                    Request::Fetch {
                        topic,
                        partition,
                        offset,
                        ..
                    },
                    Some(Reply::Fetch {
                        last_stable_offset, ..
                    }),
                ) = (op.request, op.reply())
                else {
                    continue;
                };
                if topic != &tp.topic || *partition != tp.partition {
                    continue;
                }
                let (before, at) = seen_before(op.invoke);
                if *offset < before {
                    violations.push(Violation {
                        invariant: Invariant::RetentionLogStart,
                        message: format!(
                            "a fetch of {tp} from {offset} was answered, but the log start had \
                             reached {before} before it was sent"
                        ),
                        events: vec![at, op.complete],
                    });
                } else if *last_stable_offset < before {
                    // The log start only rises, so it was at least `before` when the fetch was
                    // answered: the answer's last stable offset lies below it.
                    violations.push(Violation {
                        invariant: Invariant::RetentionLogStart,
                        message: format!(
                            "a fetch of {tp} answered the last stable offset \
                             {last_stable_offset}, below the log start {before} seen before it \
                             was sent"
                        ),
                        events: vec![at, op.complete],
                    });
                }
            }
            // When the log start first passed `offset`: (event, time), if it did.
            let deleted = |offset: i64| {
                let i = highest[1..].partition_point(|&(start, _)| start <= offset);
                let &(_, at) = highest.get(i + 1)?;
                Some((at, time_of(at)))
            };
            let mut gone: Vec<(i64, &str, u64, i64)> = self
                .placed
                .iter()
                .filter(|(_, (vtp, _, _))| vtp == tp)
                .filter_map(|(value, (_, offset, _))| {
                    deleted(*offset).map(|(at, ms)| (*offset, *value, at, ms))
                })
                .collect();
            gone.sort();
            for (offset, value, at, deleted_ms) in gone {
                let placed_at = self.placed[value].2;
                if let Some(&sent_ms) = first_sent.get(value) {
                    if sent_ms >= deleted_ms - retention_ms {
                        violations.push(Violation {
                            invariant: Invariant::RetentionExpired,
                            message: format!(
                                "{tp}: {value} at offset {offset}, first sent at {sent_ms} ms, \
                                 was gone by {deleted_ms} ms (the log start passed it), before \
                                 its retention of {retention_ms} ms could expire"
                            ),
                            events: vec![placed_at, at],
                        });
                    }
                }
                let Some(txn) = self.writes.get(value).and_then(|w| w.txn) else {
                    continue;
                };
                let marked = self
                    .markers_seen
                    .get(&(tp.clone(), txn))
                    .is_some_and(|m| *m < at);
                if !marked {
                    violations.push(Violation {
                        invariant: Invariant::RetentionStable,
                        message: format!(
                            "{tp}: {value} at offset {offset}, a record of transaction {txn:?}, \
                             was deleted by retention before the transaction's marker landed \
                             there"
                        ),
                        events: vec![placed_at, at],
                    });
                }
            }
            for (&offset, &(txn, written)) in self.marker_offsets.get(tp).into_iter().flatten() {
                let Some((at, deleted_ms)) = deleted(offset) else {
                    continue;
                };
                let written_ms = time_of(written);
                if written_ms >= deleted_ms - retention_ms {
                    violations.push(Violation {
                        invariant: Invariant::RetentionExpired,
                        message: format!(
                            "{tp}: the marker of {txn:?} at offset {offset}, written at \
                             {written_ms} ms, was gone by {deleted_ms} ms, before its retention \
                             of {retention_ms} ms could expire"
                        ),
                        events: vec![written, at],
                    });
                }
            }
        }
        self.violations.extend(violations);
    }
}
