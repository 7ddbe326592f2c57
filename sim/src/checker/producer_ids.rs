//! Producer ids: a partition accepts only ids the deployment handed out
//! (`ProducerIdHandedOut`). The simulator observes every allocation of client producer ids as
//! it is made (`Observation::ProducerIds`); an acknowledged produce naming an id that no
//! allocation observed before its answer covered was accepted before the id was anyone's, so a
//! client could have claimed it ahead of its owner. A history with no such observation (one
//! recorded on `wrangler dev`) is not judged on this.

use super::{Checker, Invariant};
use crate::history::{Entry, Observation, Reply, Request};

impl Checker<'_> {
    pub(super) fn check_producer_ids_handed_out(&mut self) {
        // (event, below), in history order: the marks only rise.
        let allocations: Vec<(u64, i64)> = self
            .events
            .iter()
            .filter_map(|e| match &e.entry {
                Entry::Observe {
                    observation: Observation::ProducerIds { below },
                } => Some((e.index, *below)),
                _ => None,
            })
            .collect();
        if allocations.is_empty() {
            return;
        }
        let mut found = Vec::new();
        for op in &self.ops {
            let Request::Produce {
                producer_id: Some(producer_id),
                topic,
                partition,
                ..
            } = op.request
            else {
                continue;
            };
            if !matches!(op.reply(), Some(Reply::Produce { .. })) {
                continue;
            }
            // The highest mark observed before the answer.
            let seen = allocations.partition_point(|(at, _)| *at < op.complete);
            let below = allocations[..seen].iter().map(|(_, b)| *b).max();
            if below.is_none_or(|b| *producer_id >= b) {
                found.push((
                    format!(
                        "produce to {topic}/{partition} with producer id {producer_id} was \
                         accepted, but only ids below {} had been handed out by its answer",
                        below.unwrap_or(0)
                    ),
                    vec![op.invoke, op.complete],
                ));
            }
        }
        for (message, events) in found {
            self.violation(Invariant::ProducerIdHandedOut, message, events);
        }
    }
}
