//! What each offset holds, as acknowledgements, fetches and scans claim it: one value per
//! offset, no record where a marker sits, nothing read that nobody produced, and as many
//! offsets acknowledged as values sent (`OneValuePerOffset`); a value at one offset only
//! (`DuplicateWrite`). An ingestion answered with offsets that do not match its records'
//! partitions breaks `IngestAnswer` here. The claims fill `log` and `placed`, which the
//! compaction and retention checks read.

use super::ops::{read_op, values_of};
use super::{Checker, Invariant};
use crate::history::{Reply, Request, Tp};

impl<'a> Checker<'a> {
    /// Records one claim that `value` sits at `offset` of `tp`.
    fn claim(&mut self, tp: &Tp, offset: i64, value: &'a str, event: u64) {
        if !self.writes.contains_key(value) {
            self.violation(
                Invariant::OneValuePerOffset,
                format!("{tp} offset {offset} returned {value}, which nobody produced"),
                vec![event],
            );
            return;
        }
        if self.writes[value].tp != *tp {
            self.violation(
                Invariant::OneValuePerOffset,
                format!(
                    "{value} was produced to {} but read from {tp}",
                    self.writes[value].tp
                ),
                vec![event],
            );
            return;
        }
        let log = self.log.entry(tp.clone()).or_default();
        match log.get(&offset) {
            Some((other, at)) if *other != value => {
                let (other, at) = (*other, *at);
                self.violation(
                    Invariant::OneValuePerOffset,
                    format!("{tp} offset {offset} holds {other} and {value}"),
                    vec![at, event],
                );
            }
            Some(_) => {}
            None => {
                log.insert(offset, (value, event));
            }
        }
        match self.placed.get(value) {
            Some((_, other, at)) if *other != offset => {
                let (other, at) = (*other, *at);
                self.violation(
                    Invariant::DuplicateWrite,
                    format!("{value} sits at both offset {other} and offset {offset} of {tp}"),
                    vec![at, event],
                );
            }
            Some(_) => {}
            None => {
                self.placed.insert(value, (tp.clone(), offset, event));
            }
        }
        if let Some((txn, at)) = self
            .marker_offsets
            .get(tp)
            .and_then(|m| m.get(&offset))
            .copied()
        {
            self.violation(
                Invariant::OneValuePerOffset,
                format!("{tp} offset {offset} holds {value} and a marker of {txn:?}"),
                vec![at, event],
            );
        }
    }

    pub(super) fn check_claims(&mut self) {
        let ops = self.ops.clone();
        for op in &ops {
            let Some(reply) = op.reply() else { continue };
            match (op.request, reply) {
                (
                    Request::Produce {
                        topic,
                        partition,
                        values,
                        ..
                    },
                    Reply::Produce {
                        base_offset,
                        last_offset,
                        ..
                    },
                ) => {
                    let tp = Tp::new(topic.clone(), *partition);
                    if last_offset - base_offset + 1 != values.len() as i64 {
                        self.violation(
                            Invariant::OneValuePerOffset,
                            format!(
                                "{} values acknowledged at offsets {base_offset}..={last_offset}",
                                values.len()
                            ),
                            vec![op.complete],
                        );
                        continue;
                    }
                    for (i, value) in values.iter().enumerate() {
                        self.claim(&tp, base_offset + i as i64, value, op.complete);
                    }
                }
                (
                    Request::Ingest {
                        topic,
                        key,
                        records,
                    },
                    Reply::Ingest { offsets },
                ) => {
                    let routed = offsets.len() == records.len()
                        && records
                            .iter()
                            .zip(offsets)
                            .all(|(r, o)| r.partition == o.partition);
                    if !routed {
                        self.violation(
                            Invariant::IngestAnswer,
                            format!(
                                "ingestion {topic} key={key} of {} records answered offsets \
                                 that do not match its records' partitions: {reply}",
                                records.len()
                            ),
                            vec![op.complete],
                        );
                        continue;
                    }
                    for (record, o) in records.iter().zip(offsets) {
                        let tp = Tp::new(topic.clone(), o.partition);
                        self.claim(&tp, o.offset, &record.value, op.complete);
                    }
                }
                (request, Reply::Fetch { records, .. }) => {
                    // Only reads are answered with records.
                    let Some(read) = read_op(request) else {
                        continue;
                    };
                    for (offset, value) in values_of(records) {
                        self.claim(&read.tp, offset, value, op.complete);
                    }
                }
                _ => {}
            }
        }
    }
}
