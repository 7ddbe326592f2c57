//! Read-process-write pipelines ([`Observation::Pipeline`]), checked once the history settled:
//! in the final read_committed scans every committed output names a committed input, no input
//! has two committed outputs, and every committed input below the group's final stable offset
//! has one (`PipelineExactlyOnce`).

use std::collections::HashMap;

use super::{Checker, Invariant, Violation};
use crate::history::{ReadRecord, Reply, Tp};
// For the docs' links.
#[cfg(doc)]
use crate::history::Observation;

impl<'a> Checker<'a> {
    pub(super) fn check_pipelines(&mut self) {
        let pipelines = self.pipelines.clone();
        for (group_id, input_topic, output_topic, declared) in pipelines {
            // Committed inputs, by value and by partition.
            let mut inputs: HashMap<&str, (Tp, i64)> = HashMap::new();
            let mut outputs: HashMap<String, Vec<&str>> = HashMap::new();
            let scans: Vec<(Tp, &'a [ReadRecord])> = self
                .final_scans
                .iter()
                .filter(|((_, committed), _)| *committed)
                .filter_map(|((tp, _), op)| match op.reply() {
                    Some(Reply::Fetch { records, .. }) => Some((tp.clone(), &records[..])),
                    _ => None,
                })
                .collect();
            for (tp, records) in &scans {
                if tp.topic == input_topic {
                    for r in *records {
                        inputs.insert(r.value.as_str(), (tp.clone(), r.offset));
                    }
                }
                if tp.topic == output_topic {
                    for r in *records {
                        let source = self
                            .writes
                            .get(r.value.as_str())
                            .and_then(|w| w.source.clone());
                        match source {
                            Some(s) => outputs.entry(s).or_default().push(r.value.as_str()),
                            None => self.violations.push(Violation {
                                invariant: Invariant::PipelineExactlyOnce,
                                message: format!(
                                    "output {} of pipeline {group_id} names no input",
                                    r.value
                                ),
                                events: vec![declared],
                            }),
                        }
                    }
                }
            }
            for (source, outs) in &outputs {
                if !inputs.contains_key(source.as_str()) {
                    self.violation(
                        Invariant::PipelineExactlyOnce,
                        format!(
                            "pipeline {group_id} committed output {} from {source}, which is \
                             not a committed input",
                            outs.join(",")
                        ),
                        vec![declared],
                    );
                } else if outs.len() > 1 {
                    self.violation(
                        Invariant::PipelineExactlyOnce,
                        format!(
                            "pipeline {group_id} committed {} outputs from input {source}: {}",
                            outs.len(),
                            outs.join(",")
                        ),
                        vec![declared],
                    );
                }
            }
            let Some(final_offsets) = self.final_offsets.get(group_id).copied() else {
                self.violation(
                    Invariant::PipelineExactlyOnce,
                    format!("pipeline {group_id}: no final stable offset fetch after settling"),
                    vec![declared],
                );
                continue;
            };
            let Some(Reply::Offsets { offsets }) = final_offsets.reply() else {
                continue;
            };
            let committed_to: HashMap<Tp, i64> = offsets
                .iter()
                .map(|o| (Tp::new(o.topic.clone(), o.partition), o.offset))
                .collect();
            let mut lost: Vec<String> = inputs
                .iter()
                .filter(|(_, (tp, offset))| committed_to.get(tp).is_some_and(|c| offset < c))
                .filter(|(value, _)| !outputs.contains_key(**value))
                .map(|(value, (tp, offset))| format!("{value} ({tp}@{offset})"))
                .collect();
            lost.sort();
            if !lost.is_empty() {
                self.violation(
                    Invariant::PipelineExactlyOnce,
                    format!(
                        "pipeline {group_id} committed its offsets past inputs that have no \
                         committed output: {}",
                        lost.join(", ")
                    ),
                    vec![final_offsets.complete],
                );
            }
        }
    }
}
