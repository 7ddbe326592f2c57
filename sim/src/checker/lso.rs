//! The last stable offset (`LsoBound`): at most the high watermark in every fetch answer and
//! observed partition state (and at least the log start in a state), neither going back (per
//! process in answer order, per partition in observation order), and no fetch reading past its
//! isolation's bound.

use std::collections::HashMap;

use super::ops::{answered_read, is_committed_isolation, partition_states, Read, ReadOp};
use super::{Checker, Invariant};
use crate::history::{Process, Tp};

impl<'a> Checker<'a> {
    pub(super) fn check_lso(&mut self) {
        let ops = self.ops.clone();
        let mut last_seen: HashMap<(Process, Tp), (i64, i64, u64)> = HashMap::new();
        for op in &ops {
            let Some(Read {
                op:
                    ReadOp {
                        tp,
                        offset: request_offset,
                        isolation,
                        ..
                    },
                records,
                next_offset,
                high_watermark: hw,
                last_stable_offset: lso,
            }) = answered_read(op)
            else {
                continue;
            };
            if lso > hw || lso < 0 {
                self.violation(
                    Invariant::LsoBound,
                    format!("{tp}: last stable offset {lso}, high watermark {hw}"),
                    vec![op.complete],
                );
            }
            let bound = if is_committed_isolation(isolation) {
                lso
            } else {
                hw
            };
            if records.iter().any(|r| r.offset >= bound) || next_offset > bound.max(request_offset)
            {
                self.violation(
                    Invariant::LsoBound,
                    format!(
                        "a {isolation:?} fetch of {tp} read up to {next_offset}, past its bound \
                         {bound} (hw {hw}, lso {lso})"
                    ),
                    vec![op.complete],
                );
            }
            let key = (op.process, tp.clone());
            if let Some((old_hw, old_lso, at)) = last_seen.get(&key).copied() {
                if hw < old_hw || lso < old_lso {
                    self.violation(
                        Invariant::LsoBound,
                        format!(
                            "p{} saw {tp} go back from hw {old_hw} lso {old_lso} to hw {hw} \
                             lso {lso}",
                            op.process
                        ),
                        vec![at, op.complete],
                    );
                }
            }
            last_seen.insert(key, (hw, lso, op.complete));
        }
        let mut states: HashMap<Tp, (i64, i64, u64)> = HashMap::new();
        for state in partition_states(self.events) {
            let (tp, log_start_offset) = (state.tp, state.log_start_offset);
            let (hw, lso) = (state.high_watermark, state.last_stable_offset);
            if lso > hw || lso < log_start_offset {
                self.violation(
                    Invariant::LsoBound,
                    format!(
                        "{tp}: log start {log_start_offset}, last stable offset {lso}, high \
                         watermark {hw}"
                    ),
                    vec![state.index],
                );
            }
            if let Some((old_hw, old_lso, at)) = states.get(&tp).copied() {
                if hw < old_hw || lso < old_lso {
                    self.violation(
                        Invariant::LsoBound,
                        format!(
                            "{tp} went back from hw {old_hw} lso {old_lso} to hw {hw} lso {lso}"
                        ),
                        vec![at, state.index],
                    );
                }
            }
            states.insert(tp, (hw, lso, state.index));
        }
    }
}
