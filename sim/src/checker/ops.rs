//! The history as operations: every invoke paired with its completion ([`pair`], which
//! refuses a history whose completions do not fit its invokes), and the views the checks read
//! through: a fetch or scan with its answer ([`answered_read`]) and every observed partition
//! state ([`partition_states`]).

use std::collections::HashMap;

use kafdo_types::api::Isolation;

use super::Malformed;
use crate::history::{Entry, Event, History, Observation, Process, ReadRecord, Reply, Request, Tp};

/// How an operation completed.
#[derive(Clone, Copy, Debug)]
enum Outcome<'a> {
    Ok(&'a Reply),
    Fail,
    Unknown,
}

/// An invoke paired with its completion.
#[derive(Clone, Copy, Debug)]
pub(super) struct Op<'a> {
    pub(super) process: Process,
    pub(super) request: &'a Request,
    pub(super) invoke: u64,
    /// The completion's index; `u64::MAX` for an operation that never completed.
    pub(super) complete: u64,
    outcome: Outcome<'a>,
}

impl<'a> Op<'a> {
    pub(super) fn reply(&self) -> Option<&'a Reply> {
        match self.outcome {
            Outcome::Ok(reply) => Some(reply),
            _ => None,
        }
    }
}

pub(super) fn pair(history: &History) -> Result<Vec<Op<'_>>, Malformed> {
    let mut ops: Vec<Op<'_>> = Vec::new();
    let mut open: HashMap<Process, usize> = HashMap::new();
    for (i, event) in history.events.iter().enumerate() {
        if event.index != i as u64 {
            return Err(Malformed {
                index: event.index,
                message: format!("event at position {i} has index {}", event.index),
            });
        }
        let (process, outcome) = match &event.entry {
            Entry::Invoke { process, op } => {
                if open.contains_key(process) {
                    return Err(Malformed {
                        index: event.index,
                        message: format!("p{process} invoked with an operation outstanding"),
                    });
                }
                open.insert(*process, ops.len());
                ops.push(Op {
                    process: *process,
                    request: op,
                    invoke: event.index,
                    complete: u64::MAX,
                    outcome: Outcome::Unknown,
                });
                continue;
            }
            Entry::Ok { process, reply } => (*process, Outcome::Ok(reply)),
            Entry::Fail { process, .. } => (*process, Outcome::Fail),
            Entry::Info { process, .. } => (*process, Outcome::Unknown),
            Entry::Observe { .. } => continue,
        };
        let Some(at) = open.remove(&process) else {
            return Err(Malformed {
                index: event.index,
                message: format!("p{process} completed with no operation outstanding"),
            });
        };
        let op = &mut ops[at];
        if let Outcome::Ok(reply) = outcome {
            if !reply_fits(op.request, reply) {
                return Err(Malformed {
                    index: event.index,
                    message: format!("reply `{reply}` does not answer `{}`", op.request),
                });
            }
        }
        op.complete = event.index;
        op.outcome = outcome;
    }
    Ok(ops)
}

fn reply_fits(request: &Request, reply: &Reply) -> bool {
    matches!(
        (request, reply),
        (Request::Produce { .. }, Reply::Produce { .. })
            | (
                Request::Fetch { .. } | Request::Scan { .. },
                Reply::Fetch { .. }
            )
            | (Request::InitProducer { .. }, Reply::Producer { .. })
            | (
                Request::AddPartitions { .. }
                    | Request::AddOffsets { .. }
                    | Request::CommitOffsets { .. }
                    | Request::LeaveGroup { .. },
                Reply::Done
            )
            | (Request::EndTxn { .. }, Reply::EndTxn { .. })
            | (Request::FetchOffsets { .. }, Reply::Offsets { .. })
            | (
                Request::JoinGroup { .. } | Request::Heartbeat { .. },
                Reply::Member { .. }
            )
            | (Request::Ingest { .. }, Reply::Ingest { .. })
            | (
                Request::PartitionOffsets { .. },
                Reply::PartitionOffsets { .. }
            )
    )
}

/// What a read request asked for: a fetch, or a scan (a full read from the log start, no
/// reader session; its offset is taken as 0, since the scan is compared only with itself).
pub(super) struct ReadOp<'a> {
    pub(super) tp: Tp,
    pub(super) offset: i64,
    pub(super) isolation: Isolation,
    pub(super) reader: Option<&'a str>,
}

pub(super) fn read_op(request: &Request) -> Option<ReadOp<'_>> {
    match request {
        Request::Fetch {
            topic,
            partition,
            offset,
            isolation,
            reader,
        } => Some(ReadOp {
            tp: Tp::new(topic.clone(), *partition),
            offset: *offset,
            isolation: *isolation,
            reader: Some(reader.as_str()),
        }),
        Request::Scan {
            topic,
            partition,
            isolation,
        } => Some(ReadOp {
            tp: Tp::new(topic.clone(), *partition),
            offset: 0,
            isolation: *isolation,
            reader: None,
        }),
        _ => None,
    }
}

/// A read that answered: what it asked for ([`read_op`]) and the fetch answer.
pub(super) struct Read<'a> {
    pub(super) op: ReadOp<'a>,
    pub(super) records: &'a [ReadRecord],
    pub(super) next_offset: i64,
    pub(super) high_watermark: i64,
    pub(super) last_stable_offset: i64,
}

pub(super) fn answered_read<'a>(op: &Op<'a>) -> Option<Read<'a>> {
    let read = read_op(op.request)?;
    let Some(Reply::Fetch {
        records,
        next_offset,
        high_watermark,
        last_stable_offset,
    }) = op.reply()
    else {
        return None;
    };
    Some(Read {
        op: read,
        records,
        next_offset: *next_offset,
        high_watermark: *high_watermark,
        last_stable_offset: *last_stable_offset,
    })
}

pub(super) fn values_of(records: &[ReadRecord]) -> impl Iterator<Item = (i64, &str)> {
    records.iter().map(|r| (r.offset, r.value.as_str()))
}

pub(super) fn is_committed_isolation(isolation: Isolation) -> bool {
    isolation == Isolation::ReadCommitted
}

/// A partition's state as an observation recorded it.
pub(super) struct PartitionStateSeen {
    /// The observation's event.
    pub(super) index: u64,
    pub(super) tp: Tp,
    pub(super) log_start_offset: i64,
    pub(super) high_watermark: i64,
    pub(super) last_stable_offset: i64,
}

/// Every [`Observation::PartitionState`] of the history, in order.
pub(super) fn partition_states(events: &[Event]) -> impl Iterator<Item = PartitionStateSeen> + '_ {
    events.iter().filter_map(|event| match &event.entry {
        Entry::Observe {
            observation:
                Observation::PartitionState {
                    topic,
                    partition,
                    log_start_offset,
                    high_watermark,
                    last_stable_offset,
                },
        } => Some(PartitionStateSeen {
            index: event.index,
            tp: Tp::new(topic.clone(), *partition),
            log_start_offset: *log_start_offset,
            high_watermark: *high_watermark,
            last_stable_offset: *last_stable_offset,
        }),
        _ => None,
    })
}
