//! What readers got: offsets strictly rise within one fetch (`DuplicateWrite`); a read_committed
//! reader never gets a record of an aborted transaction (`ReadAborted`) or of one not yet asked
//! to commit, or before its commit marker landed (`ReadOpen`), nor one value twice in a reader
//! session (`ReadTwice`); and a fetch returns every record the final scan of its isolation
//! holds in the range it covers (`SkippedRecord`).

use std::collections::{HashMap, HashSet};

use kafdo_types::rpc::TxnResult;

use super::ops::{answered_read, is_committed_isolation, Op, Read, ReadOp};
use super::{Checker, Invariant};
use crate::history::{ReadRecord, Tp};

impl<'a> Checker<'a> {
    pub(super) fn check_reads(&mut self) {
        let ops = self.ops.clone();
        // Values seen by each reader session of each partition.
        let mut sessions: HashMap<(&str, Tp), HashMap<&str, u64>> = HashMap::new();
        for op in &ops {
            let Some(Read {
                op:
                    ReadOp {
                        tp,
                        offset,
                        isolation,
                        reader,
                    },
                records,
                next_offset,
                ..
            }) = answered_read(op)
            else {
                continue;
            };
            let committed_only = is_committed_isolation(isolation);
            let mut last = offset - 1;
            for record in records {
                if record.offset <= last {
                    self.violation(
                        Invariant::DuplicateWrite,
                        format!(
                            "a fetch of {tp} from {offset} returned offset {} after offset {last}",
                            record.offset
                        ),
                        vec![op.complete],
                    );
                }
                last = record.offset;
            }
            if committed_only {
                for record in records {
                    self.check_committed_read(op, &tp, record);
                }
                if let Some(reader) = reader {
                    let seen = sessions.entry((reader, tp.clone())).or_default();
                    let mut twice = Vec::new();
                    for record in records {
                        if let Some(at) = seen.insert(record.value.as_str(), op.complete) {
                            twice.push((record.value.clone(), at));
                        }
                    }
                    for (value, at) in twice {
                        self.violation(
                            Invariant::ReadTwice,
                            format!("reader {reader} read {value} from {tp} twice"),
                            vec![at, op.complete],
                        );
                    }
                }
            }
            // Everything the final scan of this isolation holds in [offset, next_offset) must
            // have been returned.
            if let Some(expected) = self.final_records(&tp, committed_only) {
                let got: HashSet<i64> = records.iter().map(|r| r.offset).collect();
                let skipped: Vec<String> = expected
                    .iter()
                    .filter(|r| r.offset >= offset && r.offset < next_offset)
                    .filter(|r| !got.contains(&r.offset))
                    .map(ToString::to_string)
                    .collect();
                if !skipped.is_empty() {
                    self.violation(
                        Invariant::SkippedRecord,
                        format!(
                            "a fetch of {tp} covering [{offset}, {next_offset}) skipped {}",
                            skipped.join(", ")
                        ),
                        vec![op.complete],
                    );
                }
            }
        }
    }

    fn check_committed_read(&mut self, op: &Op<'a>, tp: &Tp, record: &ReadRecord) {
        let Some(write) = self.writes.get(record.value.as_str()) else {
            return;
        };
        let Some(txn) = write.txn else { return };
        if self.outcome(txn) == Some(TxnResult::Abort) {
            self.violation(
                Invariant::ReadAborted,
                format!(
                    "read_committed read {} from {tp}, a record of aborted transaction {txn:?}",
                    record
                ),
                vec![op.complete],
            );
            return;
        }
        match self.commit_requested.get(&txn) {
            Some(at) if *at < op.complete => {}
            _ => {
                self.violation(
                    Invariant::ReadOpen,
                    format!(
                        "read_committed read {record} from {tp} before its transaction {txn:?} \
                         was asked to commit"
                    ),
                    vec![op.complete],
                );
                return;
            }
        }
        if let Some(at) = self.commit_markers.get(&(tp.clone(), txn)) {
            if *at > op.complete {
                let at = *at;
                self.violation(
                    Invariant::ReadOpen,
                    format!(
                        "read_committed read {record} from {tp} before the commit marker of \
                         {txn:?} landed there"
                    ),
                    vec![op.complete, at],
                );
            }
        }
    }
}
