//! The checker: proves Kafdo's exactly-once invariants on a [`History`].
//!
//! It works the way Jepsen's checkers do: pair every invoke with its completion, build what the
//! system claimed (which value sits at which offset, which transaction ended how), and look for
//! any two claims that cannot both be true. Every invariant is a safety property of the history,
//! except the end-state ones, which are checked only when the history contains
//! [`Observation::Settled`] followed by the final scans: one read_uncommitted and one
//! read_committed [`Request::Scan`] of every partition, and a `require_stable` offset fetch of
//! every pipeline group.
//!
//! # What the checker assumes of the workload
//!
//! Every produced value is unique across the history (a retry resends the same values). The
//! log starts at offset 0 and nothing disappears, except on a topic declared with retention or
//! declared compacted.
//!
//! On a topic declared with retention ([`Observation::Retention`]) the partitions delete whole
//! rows from the front of the log, so the log start offset rises and everything below it is
//! gone. The checker learns where the log start is from its *sightings*: every observed
//! [`Observation::PartitionState`] and every [`Request::PartitionOffsets`] answer; the final
//! scans read from the last one. What retention promises (`RetentionLogStart`,
//! `RetentionExpired`, `RetentionStable`): the log start only rises and never passes the last
//! stable offset or the high watermark seen with it, no fetch is answered below a log start
//! seen before it was sent, and a record (or marker) below the log start went only once it
//! may have expired (first sent, or written, more than `retention_ms` before the log start was
//! first seen past it) and only once it was stable (its transaction's marker had landed).
//! Everything at or above the final log start keeps every other invariant: dense offsets from
//! the log start, one value per offset, no aborted or open record for read_committed, no
//! record skipped within a fetch's range, and `LostWrite` for an acknowledged write the final
//! scans lack there. A consumer refused with `OFFSET_OUT_OF_RANGE` goes on from the log start
//! in a new reader session, which is not a skip.
//!
//! On a topic declared compacted ([`Observation::Compacted`]) superseded records, aborted records
//! and markers go, leaving gaps, so dense offsets and "every acknowledged write stays readable"
//! give way to what compaction promises (`CompactedRead`, `CompactedSkipped`,
//! `CompactedLatest`, `LogStartFixed`): what is read is what was written (key and tombstone
//! included, declared by [`Observation::Keys`]), a committed record goes only once a
//! non-aborted write of its key sent earlier supersedes it (or as an expired tombstone), each
//! key's latest committed write survives, and the log start never moves.
//! A transaction is named by its (producer id, epoch): epochs are bumped after every commit or
//! abort (KIP-890 part 2), so one pair never names two transactions.
//!
//! # The invariants
//!
//! See [`Invariant`]: each variant documents what it forbids and how it is detected.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;

use kafdo_types::api::Isolation;
use kafdo_types::rpc::TxnResult;
use kafdo_types::txn::TransactionState;

use crate::history::{
    Entry, Event, GroupOffset, History, IngestRecord, Observation, Process, ReadRecord, Reply,
    Request, Tp,
};

/// An invariant the checker proves. Each names one promise of the brief.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Invariant {
    /// No committed record is read twice by one read_committed reader of a partition: within
    /// one reader session (a sequential pass) a value appears at most once.
    ReadTwice,
    /// No aborted record is ever returned to a read_committed reader: the record's transaction
    /// must not have aborted (as the final scans, a marker or the coordinator's answer show).
    ReadAborted,
    /// No still-open record is returned to a read_committed reader: the fetch must complete
    /// after the transaction's commit was requested, and after its commit marker landed on that
    /// partition when the marker was observed.
    ReadOpen,
    /// A fetch covers `[offset, next_offset)`: it must return every record of that range that
    /// its isolation allows (the final scans say which), or a reader would silently skip one.
    SkippedRecord,
    /// Every acknowledged write is readable at its acknowledged offset once everything settled
    /// (and, outside a transaction, by read_committed readers too).
    LostWrite,
    /// A value is written once: it never appears at two offsets (no duplicate from a retry).
    DuplicateWrite,
    /// Each offset holds one value for ever: no two reads, acknowledgements or markers disagree
    /// about an offset; and nothing is read that nobody produced.
    OneValuePerOffset,
    /// Offsets are dense per partition: every offset below the high watermark holds a record or
    /// a transaction marker (observed, or owed by a transaction that registered there).
    DenseOffsets,
    /// All records and offsets of one transaction become visible together or never: the final
    /// scans, the partition and group markers and the coordinator's answers agree on one
    /// outcome; a transaction commits only if its producer asked to; an acknowledged commit is
    /// never lost.
    TxnAtomicity,
    /// Consumer offsets of an aborted or still-open transaction are never visible to an offset
    /// fetch, and no offset appears that nobody committed.
    OffsetVisibility,
    /// Epochs only rise: the coordinator's epoch never goes back, two inits never get the same
    /// epoch, the producer id of a transactional id never changes, and a commit or abort
    /// answers a higher epoch than it ended.
    EpochsRise,
    /// A fenced producer is fenced: a transactional write, partition or offset registration
    /// with an epoch older than one already handed out must be refused.
    Fencing,
    /// The last stable offset never exceeds the high watermark, neither goes backwards, and a
    /// read_committed fetch returns nothing at or past the last stable offset.
    LsoBound,
    /// After everything settled no transaction hangs: every partition's last stable offset
    /// equals its high watermark.
    Hanging,
    /// Each input of a read-process-write pipeline yields exactly one committed output: at most
    /// one for every input, and exactly one for every committed input below the group's final
    /// committed offset.
    PipelineExactlyOnce,
    /// No partition has two owners in one generation of a group.
    GroupOwnership,
    /// Every acknowledged attempt of one keyed ingestion (same topic, `Idempotency-Key` and
    /// records) answers the same offsets, one per record, each on the record's partition.
    IngestAnswer,
    /// A keyed ingestion appends each of its records at most once, however often it is retried
    /// and even if never acknowledged; once acknowledged, each record sits exactly once in the
    /// final read_uncommitted scan, at its acknowledged offset, and is visible to read_committed.
    IngestExactlyOnce,
    /// On a compacted topic, what a reader gets is what was written: every record read carries
    /// the key and tombstone flag its value was written with (its offset and value are judged
    /// by `OneValuePerOffset` and `DuplicateWrite` as everywhere), and within one read_committed
    /// reader session the offsets read of one key only rise, so a reader never sees a key's
    /// older value after a newer one.
    CompactedRead,
    /// On a compacted topic, compaction removes a committed record only once it is superseded:
    /// a fetch covering `[offset, next_offset)` returns every committed record there, unless a
    /// committed write of the same key at a higher offset (or one whose offset nobody saw and
    /// that did not abort) had been sent before the fetch completed, or the record is a
    /// tombstone whose delete retention may have passed. A record superseded only by a write
    /// that later aborted, or by nothing, must still be there.
    CompactedSkipped,
    /// On a compacted topic, compaction keeps each key's latest committed write: after
    /// settling, the final read_committed scan holds, for every key, the record at the highest
    /// offset known to hold a committed write of that key (acknowledged, read, or scanned);
    /// only a tombstone may be missing, and only once its delete retention may have passed
    /// (counted from the first invoke that carried it, no later than its timestamp), and then
    /// nothing of its key may be left.
    CompactedLatest,
    /// On a compacted topic the log start offset never moves (compaction leaves gaps and never
    /// cuts the log; retention deletes nothing on a compacted topic): every observed partition
    /// state
    /// has the first one's log start offset.
    LogStartFixed,
    /// On a topic with retention ([`Observation::Retention`]) the log start offset only rises
    /// and stays within the log: every sighting of it (an observed partition state, a
    /// partition-offsets answer) is at most the last stable offset and the high watermark seen
    /// with it, and no smaller than any sighting that came before it (for an answer: that
    /// completed before it was sent); and no fetch is answered from an offset below a log start
    /// seen before the fetch was sent (the partition must refuse it with
    /// `OFFSET_OUT_OF_RANGE`), nor with a last stable offset below it.
    RetentionLogStart,
    /// On a topic with retention a record (or marker) goes only once it may have expired: when
    /// the log start is first seen above its offset (at time `t`; the final scans run after
    /// the last sighting), its timestamp must be older than `t - retention_ms`. The timestamp
    /// is bounded from below by the first invoke that carried the value (a marker's by the
    /// moment it was written), so a record first sent at or after `t - retention_ms` cannot
    /// have expired and its deletion is a violation.
    RetentionExpired,
    /// On a topic with retention a record goes only once it is stable: a transactional record
    /// below a sighted log start must have had its transaction's marker land on its partition
    /// before that sighting (retention never passes the last stable offset, so an open
    /// transaction's records stay until it ends).
    RetentionStable,
}

/// One broken promise.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Which invariant.
    pub invariant: Invariant,
    /// What was seen, for a person.
    pub message: String,
    /// The events that show it.
    pub events: Vec<u64>,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.invariant, self.message)?;
        if !self.events.is_empty() {
            let events: Vec<String> = self.events.iter().map(|e| format!("#{e}")).collect();
            write!(f, " (events {})", events.join(" "))?;
        }
        Ok(())
    }
}

/// A history the checker cannot judge: the workload broke its own rules.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed history at event #{index}: {message}")]
pub struct Malformed {
    /// The offending event.
    pub index: u64,
    /// What is wrong.
    pub message: String,
}

/// What the checker found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Every violation (empty when the history is good).
    pub violations: Vec<Violation>,
    /// Operations checked.
    pub ops: usize,
    /// Whether the end-state invariants were checked (the history had settled).
    pub settled: bool,
    /// Transactions whose outcome was established, by result.
    pub committed_txns: usize,
    /// See [`Report::committed_txns`].
    pub aborted_txns: usize,
}

impl Report {
    /// Whether every invariant held.
    pub fn is_valid(&self) -> bool {
        self.violations.is_empty()
    }

    /// Whether some violation of `invariant` was found.
    pub fn has(&self, invariant: Invariant) -> bool {
        self.violations.iter().any(|v| v.invariant == invariant)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.violations.is_empty() {
            return write!(
                f,
                "valid: {} ops, {} committed and {} aborted transactions{}",
                self.ops,
                self.committed_txns,
                self.aborted_txns,
                if self.settled {
                    ""
                } else {
                    " (not settled: end state unchecked)"
                }
            );
        }
        writeln!(f, "{} violations:", self.violations.len())?;
        for v in &self.violations {
            writeln!(f, "  {v}")?;
        }
        Ok(())
    }
}

/// How an operation completed.
#[derive(Clone, Copy, Debug)]
enum Outcome<'a> {
    Ok(&'a Reply),
    Fail,
    Unknown,
}

/// An invoke paired with its completion.
#[derive(Clone, Copy, Debug)]
struct Op<'a> {
    process: Process,
    request: &'a Request,
    invoke: u64,
    /// The completion's index; `u64::MAX` for an operation that never completed.
    complete: u64,
    outcome: Outcome<'a>,
}

impl<'a> Op<'a> {
    fn reply(&self) -> Option<&'a Reply> {
        match self.outcome {
            Outcome::Ok(reply) => Some(reply),
            _ => None,
        }
    }
}

/// A transaction: (producer id, epoch).
type TxnKey = (i64, i32);

/// A group's offset for a partition: (group, partition, offset).
type GroupOffsetKey<'a> = (&'a str, Tp, i64);

/// What the history says about one produced value.
#[derive(Clone, Debug)]
struct Write {
    tp: Tp,
    txn: Option<TxnKey>,
    source: Option<String>,
}

/// Judges a history.
pub fn check(history: &History) -> Result<Report, Malformed> {
    let ops = pair(history)?;
    let mut c = Checker::new(history, ops)?;
    c.run();
    let mut report = Report {
        violations: std::mem::take(&mut c.violations),
        ops: c.ops.len(),
        settled: c.settled.is_some(),
        committed_txns: 0,
        aborted_txns: 0,
    };
    for outcome in c.outcomes.values() {
        match outcome {
            TxnResult::Commit => report.committed_txns += 1,
            TxnResult::Abort => report.aborted_txns += 1,
        }
    }
    Ok(report)
}

fn pair(history: &History) -> Result<Vec<Op<'_>>, Malformed> {
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

struct Checker<'a> {
    events: &'a [Event],
    ops: Vec<Op<'a>>,
    violations: Vec<Violation>,
    writes: HashMap<&'a str, Write>,
    /// The index of the `Settled` observation.
    settled: Option<u64>,
    /// Final scans: (tp, isolation) -> the scan's op.
    final_scans: BTreeMap<(Tp, bool), Op<'a>>,
    /// Final stable offset fetches: group -> the latest one.
    final_offsets: HashMap<&'a str, Op<'a>>,
    /// What each offset holds, as first claimed: tp -> offset -> (value, event).
    log: BTreeMap<Tp, BTreeMap<i64, (&'a str, u64)>>,
    /// Where each value sits, as first claimed.
    placed: HashMap<&'a str, (Tp, i64, u64)>,
    /// Marker offsets: tp -> offset -> (txn, event).
    marker_offsets: BTreeMap<Tp, BTreeMap<i64, (TxnKey, u64)>>,
    /// Commit markers seen: (tp, txn) -> first event.
    commit_markers: HashMap<(Tp, TxnKey), u64>,
    /// Group commit markers seen: (group, txn) -> first event.
    group_commit_markers: HashMap<(&'a str, TxnKey), u64>,
    /// The first commit request of each transaction.
    commit_requested: HashMap<TxnKey, u64>,
    /// How each transaction ended, as the evidence agrees (the most trusted piece when not).
    outcomes: HashMap<TxnKey, TxnResult>,
    /// Declared pipelines: (group, input topic, output topic, declaration event).
    pipelines: Vec<(&'a str, &'a str, &'a str, u64)>,
    /// The keyed ingestion each ingested value belongs to: (topic, key, records).
    ingested: HashMap<&'a str, IngestKey<'a>>,
    /// Compacted topics and their delete retention.
    compacted: HashMap<&'a str, i64>,
    /// Topics with retention and their `retention_ms`.
    retained: HashMap<&'a str, i64>,
    /// Sightings of the log start offset of each partition of a retained topic, sorted by
    /// when they were seen.
    log_starts: HashMap<Tp, Vec<Sighting>>,
    /// The first marker (either result) of each transaction seen on each partition.
    markers_seen: HashMap<(Tp, TxnKey), u64>,
    /// The key of each value written to a compacted topic, and whether it is a tombstone.
    keys: HashMap<&'a str, (&'a str, bool)>,
}

/// One sighting of a partition's log start offset: an observed partition state, or a
/// partition-offsets answer.
#[derive(Clone, Copy, Debug)]
struct Sighting {
    /// The earliest event the state may be from: the observation, or the request's invoke.
    from: u64,
    /// The event that showed it: the observation, or the answer.
    at: u64,
    log_start_offset: i64,
    high_watermark: i64,
    last_stable_offset: i64,
}

/// A write of a compacted topic at a known offset: (offset, value, committed for sure, first
/// invoke).
type KeyedWrite<'a> = (i64, &'a str, bool, u64);

/// One keyed ingestion: its topic, `Idempotency-Key` and records (the request body).
type IngestKey<'a> = (&'a str, &'a str, &'a [IngestRecord]);

/// What a read request asked for: a fetch, or a scan (a full read from the log start, no
/// reader session; its offset is taken as 0, since the scan is compared only with itself).
struct ReadOp<'a> {
    tp: Tp,
    offset: i64,
    isolation: Isolation,
    reader: Option<&'a str>,
}

fn read_op(request: &Request) -> Option<ReadOp<'_>> {
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
struct Read<'a> {
    op: ReadOp<'a>,
    records: &'a [ReadRecord],
    next_offset: i64,
    high_watermark: i64,
    last_stable_offset: i64,
}

fn answered_read<'a>(op: &Op<'a>) -> Option<Read<'a>> {
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

fn values_of(records: &[ReadRecord]) -> impl Iterator<Item = (i64, &str)> {
    records.iter().map(|r| (r.offset, r.value.as_str()))
}

fn is_committed_isolation(isolation: Isolation) -> bool {
    isolation == Isolation::ReadCommitted
}

impl<'a> Checker<'a> {
    fn new(history: &'a History, ops: Vec<Op<'a>>) -> Result<Self, Malformed> {
        let mut c = Checker {
            events: &history.events,
            ops,
            violations: Vec::new(),
            writes: HashMap::new(),
            settled: None,
            final_scans: BTreeMap::new(),
            final_offsets: HashMap::new(),
            log: BTreeMap::new(),
            placed: HashMap::new(),
            marker_offsets: BTreeMap::new(),
            commit_markers: HashMap::new(),
            group_commit_markers: HashMap::new(),
            commit_requested: HashMap::new(),
            outcomes: HashMap::new(),
            pipelines: Vec::new(),
            ingested: HashMap::new(),
            compacted: HashMap::new(),
            retained: HashMap::new(),
            log_starts: HashMap::new(),
            markers_seen: HashMap::new(),
            keys: HashMap::new(),
        };
        c.index_writes()?;
        c.index_observations();
        c.index_final();
        Ok(c)
    }

    fn violation(&mut self, invariant: Invariant, message: String, events: Vec<u64>) {
        self.violations.push(Violation {
            invariant,
            message,
            events,
        });
    }

    fn run(&mut self) {
        self.check_claims();
        self.decide_outcomes();
        self.check_reads();
        self.check_lso();
        self.check_epochs_and_fencing();
        self.check_offsets();
        self.check_groups();
        self.check_ingest_answers();
        self.check_compacted_reads();
        self.check_retention();
        if self.settled.is_some() {
            self.check_compacted_end_state();
            self.check_end_state();
            self.check_pipelines();
            self.check_ingest_end_state();
        }
        self.violations.sort_by_key(|v| v.invariant);
    }

    // ---- indexing -------------------------------------------------------------------------

    fn index_writes(&mut self) -> Result<(), Malformed> {
        for op in &self.ops {
            match op.request {
                Request::Produce {
                    topic,
                    partition,
                    producer_id,
                    producer_epoch,
                    transactional_id,
                    values,
                    sources,
                    ..
                } => {
                    if !sources.is_empty() && sources.len() != values.len() {
                        return Err(Malformed {
                            index: op.invoke,
                            message: "sources must be empty or one per value".into(),
                        });
                    }
                    let txn = match (transactional_id, producer_id, producer_epoch) {
                        (Some(_), Some(id), Some(epoch)) => Some((*id, *epoch)),
                        (Some(_), _, _) => {
                            return Err(Malformed {
                                index: op.invoke,
                                message: "a transactional produce needs a producer id and epoch"
                                    .into(),
                            })
                        }
                        _ => None,
                    };
                    let tp = Tp::new(topic.clone(), *partition);
                    for (i, value) in values.iter().enumerate() {
                        let source = sources.get(i).cloned();
                        match self.writes.get(value.as_str()) {
                            Some(w) if w.tp != tp || w.txn != txn || w.source != source => {
                                return Err(Malformed {
                                    index: op.invoke,
                                    message: format!(
                                        "value {value} produced again with another partition, \
                                         transaction or source (values must be unique)"
                                    ),
                                });
                            }
                            Some(_) => {}
                            None => {
                                self.writes.insert(
                                    value,
                                    Write {
                                        tp: tp.clone(),
                                        txn,
                                        source,
                                    },
                                );
                            }
                        }
                    }
                }
                Request::Ingest {
                    topic,
                    key,
                    records,
                } => {
                    let body: IngestKey<'a> = (topic.as_str(), key.as_str(), records.as_slice());
                    for record in records.iter() {
                        let value = record.value.as_str();
                        let tp = Tp::new(topic.clone(), record.partition);
                        let same_body = self.ingested.get(value).map(|b| *b == body);
                        let same_write = self
                            .writes
                            .get(value)
                            .map(|w| w.tp == tp && w.txn.is_none() && w.source.is_none());
                        if same_body == Some(false)
                            || (same_body.is_none() && same_write.is_some())
                            || same_write == Some(false)
                        {
                            return Err(Malformed {
                                index: op.invoke,
                                message: format!(
                                    "value {value} sent again with another key, body or \
                                     partition (values must be unique)"
                                ),
                            });
                        }
                        self.ingested.insert(value, body);
                        self.writes.entry(value).or_insert(Write {
                            tp,
                            txn: None,
                            source: None,
                        });
                    }
                }
                Request::EndTxn {
                    producer_id,
                    producer_epoch,
                    commit: true,
                    ..
                } => {
                    self.commit_requested
                        .entry((*producer_id, *producer_epoch))
                        .or_insert(op.invoke);
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn index_observations(&mut self) {
        for event in self.events {
            let Entry::Observe { observation } = &event.entry else {
                continue;
            };
            match observation {
                Observation::Marker {
                    topic,
                    partition,
                    producer_id,
                    producer_epoch,
                    result,
                    offset,
                } => {
                    let tp = Tp::new(topic.clone(), *partition);
                    let txn = (*producer_id, *producer_epoch);
                    if let Some(offset) = offset {
                        let markers = self.marker_offsets.entry(tp.clone()).or_default();
                        if let Some((other, at)) = markers.get(offset) {
                            if *other != txn {
                                let (other, at) = (*other, *at);
                                self.violation(
                                    Invariant::OneValuePerOffset,
                                    format!(
                                        "{tp} offset {offset} holds markers of two transactions \
                                         {other:?} and {txn:?}"
                                    ),
                                    vec![at, event.index],
                                );
                            }
                        } else {
                            markers.insert(*offset, (txn, event.index));
                        }
                    }
                    self.markers_seen
                        .entry((tp.clone(), txn))
                        .or_insert(event.index);
                    if *result == TxnResult::Commit {
                        self.commit_markers.entry((tp, txn)).or_insert(event.index);
                    }
                }
                Observation::GroupMarker {
                    group_id,
                    producer_id,
                    producer_epoch,
                    result: TxnResult::Commit,
                } => {
                    self.group_commit_markers
                        .entry((group_id.as_str(), (*producer_id, *producer_epoch)))
                        .or_insert(event.index);
                }
                Observation::Pipeline {
                    group_id,
                    input_topic,
                    output_topic,
                } => self.pipelines.push((
                    group_id.as_str(),
                    input_topic.as_str(),
                    output_topic.as_str(),
                    event.index,
                )),
                Observation::Settled => {
                    self.settled.get_or_insert(event.index);
                }
                Observation::Compacted {
                    topic,
                    delete_retention_ms,
                } => {
                    self.compacted.insert(topic, *delete_retention_ms);
                }
                Observation::Retention {
                    topic,
                    retention_ms,
                } => {
                    self.retained.insert(topic, *retention_ms);
                }
                Observation::Keys { records } => {
                    for r in records {
                        self.keys
                            .insert(r.value.as_str(), (r.key.as_str(), r.tombstone));
                    }
                }
                _ => {}
            }
        }
    }

    fn index_final(&mut self) {
        let Some(settled) = self.settled else { return };
        for op in &self.ops {
            if op.invoke < settled || op.reply().is_none() {
                continue;
            }
            match op.request {
                Request::Scan {
                    topic,
                    partition,
                    isolation,
                } => {
                    let key = (
                        Tp::new(topic.clone(), *partition),
                        is_committed_isolation(*isolation),
                    );
                    self.final_scans.insert(key, *op);
                }
                Request::FetchOffsets {
                    group_id,
                    require_stable: true,
                } => {
                    self.final_offsets.insert(group_id, *op);
                }
                _ => {}
            }
        }
    }

    fn final_records(&self, tp: &Tp, committed: bool) -> Option<&'a [ReadRecord]> {
        let op = self.final_scans.get(&(tp.clone(), committed))?;
        match op.reply() {
            Some(Reply::Fetch { records, .. }) => Some(records),
            _ => None,
        }
    }

    // ---- what each offset holds -----------------------------------------------------------

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

    fn check_claims(&mut self) {
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

    // ---- transaction outcomes ----------------------------------------------------------------

    fn decide_outcomes(&mut self) {
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

    fn outcome(&self, txn: TxnKey) -> Option<TxnResult> {
        self.outcomes.get(&txn).copied()
    }

    // ---- reads ----------------------------------------------------------------------------

    fn check_reads(&mut self) {
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

    // ---- last stable offset -----------------------------------------------------------------

    fn check_lso(&mut self) {
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

    // ---- epochs and fencing -----------------------------------------------------------------

    fn check_epochs_and_fencing(&mut self) {
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

    // ---- consumer offsets ---------------------------------------------------------------------

    fn check_offsets(&mut self) {
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

    // ---- groups -----------------------------------------------------------------------------

    fn check_groups(&mut self) {
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

    // ---- the end state ----------------------------------------------------------------------

    fn check_end_state(&mut self) {
        let ops = self.ops.clone();
        let tps: BTreeSet<Tp> = self
            .writes
            .values()
            .map(|w| w.tp.clone())
            .chain(self.final_scans.keys().map(|(tp, _)| tp.clone()))
            .collect();
        let settled = self.settled.unwrap_or(0);
        for tp in &tps {
            for committed in [false, true] {
                if !self.final_scans.contains_key(&(tp.clone(), committed)) {
                    self.violation(
                        Invariant::LostWrite,
                        format!(
                            "the history settled but has no final {} scan of {tp}",
                            if committed {
                                "read_committed"
                            } else {
                                "read_uncommitted"
                            }
                        ),
                        vec![settled],
                    );
                }
            }
        }
        // Registered transactions per partition, for the markers owed.
        let mut registered: HashMap<Tp, BTreeSet<TxnKey>> = HashMap::new();
        for op in &ops {
            if let Request::AddPartitions {
                producer_id,
                producer_epoch,
                partitions,
                ..
            } = op.request
            {
                for tp in partitions {
                    registered
                        .entry(tp.clone())
                        .or_default()
                        .insert((*producer_id, *producer_epoch));
                }
            }
            if let Request::Produce {
                producer_id: Some(id),
                producer_epoch: Some(epoch),
                transactional_id: Some(_),
                topic,
                partition,
                ..
            } = op.request
            {
                registered
                    .entry(Tp::new(topic.clone(), *partition))
                    .or_default()
                    .insert((*id, *epoch));
            }
        }
        for tp in &tps {
            let Some(ru) = self.final_scans.get(&(tp.clone(), false)).copied() else {
                continue;
            };
            let compacted = self.compacted.contains_key(tp.topic.as_str());
            let log_start = self.final_log_start(tp);
            let Some(Reply::Fetch {
                records,
                high_watermark,
                last_stable_offset,
                ..
            }) = ru.reply()
            else {
                continue;
            };
            if last_stable_offset < high_watermark {
                self.violation(
                    Invariant::Hanging,
                    format!(
                        "{tp}: after settling, the last stable offset {last_stable_offset} is \
                         still below the high watermark {high_watermark}"
                    ),
                    vec![ru.complete],
                );
            }
            // Dense offsets: every gap is a marker, observed or owed.
            let held: HashSet<i64> = records.iter().map(|r| r.offset).collect();
            let markers = self.marker_offsets.get(tp).cloned().unwrap_or_default();
            let observed_txns: HashSet<TxnKey> = markers.values().map(|(t, _)| *t).collect();
            let owed = registered
                .get(tp)
                .map_or(0, |txns| txns.difference_count(&observed_txns));
            // Retention deleted everything below the log start (`RetentionExpired` judges it).
            let gaps: Vec<i64> = (log_start..*high_watermark)
                .filter(|o| !held.contains(o) && !markers.contains_key(o))
                .collect();
            // Compaction leaves gaps by design (`CompactedLatest` judges what must remain).
            if gaps.len() > owed && !compacted {
                let shown: Vec<String> = gaps.iter().take(10).map(ToString::to_string).collect();
                self.violation(
                    Invariant::DenseOffsets,
                    format!(
                        "{tp} has {} offsets below the high watermark {high_watermark} holding \
                         neither a record nor a marker (at most {owed} markers are unobserved): \
                         {}",
                        gaps.len(),
                        shown.join(", ")
                    ),
                    vec![ru.complete],
                );
            }
        }
        // Every acknowledged write is readable at its acknowledged offset.
        for op in &ops {
            let (
                Request::Produce {
                    topic,
                    partition,
                    values,
                    transactional_id,
                    ..
                },
                Some(Reply::Produce { base_offset, .. }),
            ) = (op.request, op.reply())
            else {
                continue;
            };
            let tp = Tp::new(topic.clone(), *partition);
            if self.compacted.contains_key(topic.as_str()) {
                // A superseded write is rightly gone: `CompactedLatest` judges compacted topics.
                continue;
            }
            let Some(all) = self.final_records(&tp, false) else {
                continue;
            };
            let committed = self.final_records(&tp, true).unwrap_or(&[]);
            let log_start = self.final_log_start(&tp);
            for (i, value) in values.iter().enumerate() {
                let offset = base_offset + i as i64;
                if offset < log_start {
                    // Retention deleted it: `RetentionExpired` judges whether it could.
                    continue;
                }
                let found = all.iter().find(|r| r.offset == offset);
                if found.map(|r| r.value.as_str()) != Some(value.as_str()) {
                    self.violation(
                        Invariant::LostWrite,
                        format!(
                            "{value} was acknowledged at {tp} offset {offset}, but the final scan \
                             has {} there",
                            found.map_or("nothing".to_string(), |r| r.value.clone())
                        ),
                        vec![op.complete],
                    );
                } else if transactional_id.is_none() && !committed.iter().any(|r| r.value == *value)
                {
                    self.violation(
                        Invariant::LostWrite,
                        format!(
                            "{value} was acknowledged at {tp} offset {offset} outside any \
                             transaction, but read_committed readers never see it"
                        ),
                        vec![op.complete],
                    );
                }
            }
        }
    }

    // ---- compacted topics ------------------------------------------------------------------

    fn check_compacted_reads(&mut self) {
        if self.compacted.is_empty() {
            return;
        }
        let ops = self.ops.clone();
        // The last offset each read_committed reader session read of each key.
        let mut sessions: HashMap<(&str, Tp, &str), (i64, u64)> = HashMap::new();
        for op in &ops {
            let Some(Read {
                op:
                    ReadOp {
                        tp,
                        isolation,
                        reader,
                        ..
                    },
                records,
                ..
            }) = answered_read(op)
            else {
                continue;
            };
            if !self.compacted.contains_key(tp.topic.as_str()) {
                continue;
            }
            for record in records {
                let Some(&(key, tombstone)) = self.keys.get(record.value.as_str()) else {
                    // Nobody produced it, or its key was never declared: `OneValuePerOffset`
                    // says the former; a record of a compacted topic always has a key.
                    if self.writes.contains_key(record.value.as_str()) {
                        self.violation(
                            Invariant::CompactedRead,
                            format!(
                                "{tp} offset {} returned {}, whose key was never declared",
                                record.offset, record.value
                            ),
                            vec![op.complete],
                        );
                    }
                    continue;
                };
                if record.key.as_deref() != Some(key) || record.tombstone != tombstone {
                    self.violation(
                        Invariant::CompactedRead,
                        format!(
                            "{tp} offset {} returned {} with key {:?}{}, but it was written \
                             with key {key}{}",
                            record.offset,
                            record.value,
                            record.key,
                            if record.tombstone {
                                " as a tombstone"
                            } else {
                                ""
                            },
                            if tombstone { " as a tombstone" } else { "" },
                        ),
                        vec![op.complete],
                    );
                }
                let Some(reader) = reader else { continue };
                if !is_committed_isolation(isolation) {
                    continue;
                }
                let last = sessions.insert((reader, tp.clone(), key), (record.offset, op.complete));
                if let Some((before, at)) = last {
                    if before >= record.offset {
                        self.violation(
                            Invariant::CompactedRead,
                            format!(
                                "reader {reader} read key {key} of {tp} at offset {} after \
                                 reading it at offset {before}",
                                record.offset
                            ),
                            vec![at, op.complete],
                        );
                    }
                }
            }
        }
        self.check_compacted_skips();
        let mut log_start: HashMap<Tp, (i64, u64)> = HashMap::new();
        for state in partition_states(self.events) {
            if !self.compacted.contains_key(state.tp.topic.as_str()) {
                continue;
            }
            let (tp, log_start_offset) = (state.tp, state.log_start_offset);
            let (first, at) = *log_start
                .entry(tp.clone())
                .or_insert((log_start_offset, state.index));
            if first != log_start_offset {
                self.violation(
                    Invariant::LogStartFixed,
                    format!("{tp}: the log start offset moved from {first} to {log_start_offset}"),
                    vec![at, state.index],
                );
            }
        }
    }

    // ---- retained topics --------------------------------------------------------------------

    /// The log start offset of `tp` when the final scans ran: the highest sighted (it only
    /// rises: `RetentionLogStart`), or 0 on a topic without retention.
    fn final_log_start(&self, tp: &Tp) -> i64 {
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

    fn check_retention(&mut self) {
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

    /// The first invoke (index, time) that carried each value produced to a compacted topic:
    /// its record's timestamp is no earlier.
    fn compacted_first_sent(&self) -> HashMap<&'a str, (u64, i64)> {
        let time_of: HashMap<u64, i64> = self.events.iter().map(|e| (e.index, e.time_ms)).collect();
        let mut first_sent = HashMap::new();
        for op in &self.ops {
            if let Request::Produce { topic, values, .. } = op.request {
                if self.compacted.contains_key(topic.as_str()) {
                    for value in values {
                        first_sent
                            .entry(value.as_str())
                            .or_insert((op.invoke, time_of[&op.invoke]));
                    }
                }
            }
        }
        first_sent
    }

    fn check_compacted_skips(&mut self) {
        let first_sent = self.compacted_first_sent();
        // Per (partition, key): the writes placed at a known offset and not aborted, as
        // (offset, value, committed for sure, first invoke); and the writes nobody saw placed
        // that did not abort, as their first invoke.
        let mut placed: HashMap<(Tp, &str), Vec<KeyedWrite<'a>>> = HashMap::new();
        let mut unplaced: HashMap<(Tp, &str), Vec<u64>> = HashMap::new();
        for (&value, &(key, _)) in &self.keys {
            let Some(&(sent, _)) = first_sent.get(value) else {
                continue;
            };
            let Some(write) = self.writes.get(value) else {
                continue;
            };
            let committed = match write.txn {
                None => true,
                Some(txn) => match self.outcome(txn) {
                    Some(TxnResult::Abort) => continue,
                    Some(TxnResult::Commit) => true,
                    None => false,
                },
            };
            match self.placed.get(value) {
                Some((tp, offset, _)) => placed
                    .entry((tp.clone(), key))
                    .or_default()
                    .push((*offset, value, committed, sent)),
                None => unplaced
                    .entry((write.tp.clone(), key))
                    .or_default()
                    .push(sent),
            }
        }
        let ops = self.ops.clone();
        for op in &ops {
            let Some(Read {
                op: ReadOp { tp, offset, .. },
                records,
                next_offset,
                ..
            }) = answered_read(op)
            else {
                continue;
            };
            let Some(&retention_ms) = self.compacted.get(tp.topic.as_str()) else {
                continue;
            };
            let done_ms = self.events[op.complete as usize].time_ms;
            let got: HashSet<i64> = records.iter().map(|r| r.offset).collect();
            for ((wtp, key), writes) in &placed {
                if *wtp != tp {
                    continue;
                }
                let excused_by_unplaced = unplaced
                    .get(&(tp.clone(), *key))
                    .is_some_and(|sent| sent.iter().any(|s| *s < op.complete));
                if excused_by_unplaced {
                    continue;
                }
                for &(at, value, committed, _) in writes {
                    if !committed || at < offset || at >= next_offset || got.contains(&at) {
                        continue;
                    }
                    // A later write whose transaction's outcome is unknown excuses too.
                    let superseded = writes
                        .iter()
                        .any(|&(later, _, _, sent)| later > at && sent < op.complete);
                    let (tombstone, sent_ms) = (self.keys[value].1, first_sent[value].1);
                    let expired = tombstone && done_ms > sent_ms.saturating_add(retention_ms);
                    if superseded || expired {
                        continue;
                    }
                    let placed_at = self.placed[value].2;
                    self.violation(
                        Invariant::CompactedSkipped,
                        format!(
                            "a fetch of {tp} covering [{offset}, {next_offset}) lacks {value} \
                             (key {key}) at offset {at}, committed and not superseded by any \
                             committed write sent before the fetch completed"
                        ),
                        vec![placed_at, op.complete],
                    );
                }
            }
        }
    }

    fn check_compacted_end_state(&mut self) {
        if self.compacted.is_empty() {
            return;
        }
        let settled = self.settled.expect("settled");
        let settled_ms = self.events[settled as usize].time_ms;
        let first_sent = self.compacted_first_sent();
        // Per compacted partition and key: the committed write at the highest known offset.
        // A write is committed when outside a transaction, or its transaction committed; when
        // the highest non-aborted write's transaction has no known outcome the key is skipped
        // (nothing to compare with).
        let mut latest: BTreeMap<(Tp, &str), (i64, &str, bool)> = BTreeMap::new();
        for (value, (tp, offset, _)) in &self.placed {
            if !self.compacted.contains_key(tp.topic.as_str()) {
                continue;
            }
            let Some(&(key, _)) = self.keys.get(value) else {
                continue;
            };
            let write = &self.writes[value];
            let committed = match write.txn {
                None => Some(true),
                Some(txn) => match self.outcome(txn) {
                    Some(TxnResult::Commit) => Some(true),
                    Some(TxnResult::Abort) => continue,
                    None => None,
                },
            };
            let entry =
                latest
                    .entry((tp.clone(), key))
                    .or_insert((*offset, value, committed.is_some()));
            if *offset > entry.0 {
                *entry = (*offset, value, committed.is_some());
            }
        }
        for ((tp, key), (offset, value, known)) in latest {
            if !known {
                continue;
            }
            let Some(rc) = self.final_scans.get(&(tp.clone(), true)).copied() else {
                continue;
            };
            let records = self.final_records(&tp, true).unwrap_or(&[]);
            if records.iter().any(|r| r.offset == offset) {
                // `OneValuePerOffset` judges which value sits there.
                continue;
            }
            let tombstone = self.keys[value].1;
            let retention_ms = self.compacted[tp.topic.as_str()];
            let expired = first_sent
                .get(value)
                .is_some_and(|(_, sent_ms)| settled_ms > sent_ms.saturating_add(retention_ms));
            if tombstone && expired {
                let left: Vec<String> = records
                    .iter()
                    .filter(|r| r.key.as_deref() == Some(key))
                    .map(ToString::to_string)
                    .collect();
                if !left.is_empty() {
                    self.violation(
                        Invariant::CompactedLatest,
                        format!(
                            "{tp}: key {key}'s latest committed write, tombstone {value} at \
                             {offset}, is gone, but older records of the key remain: {}",
                            left.join(", ")
                        ),
                        vec![rc.complete],
                    );
                }
                continue;
            }
            let at = self.placed[value].2;
            self.violation(
                Invariant::CompactedLatest,
                format!(
                    "{tp}: key {key}'s latest committed write {value}{} at offset {offset} is \
                     missing from the final read_committed scan",
                    if tombstone {
                        " (a tombstone within its delete retention)"
                    } else {
                        ""
                    }
                ),
                vec![at, rc.complete],
            );
        }
    }

    fn check_pipelines(&mut self) {
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

impl<'a> Checker<'a> {
    // ---- keyed ingestion ---------------------------------------------------------------------

    /// The acknowledged answers of each keyed ingestion, in history order.
    fn ingest_answers(&self) -> BTreeMap<IngestKey<'a>, Vec<(&'a Reply, u64)>> {
        let mut answers: BTreeMap<IngestKey<'a>, Vec<(&'a Reply, u64)>> = BTreeMap::new();
        for op in &self.ops {
            if let (
                Request::Ingest {
                    topic,
                    key,
                    records,
                },
                Some(reply),
            ) = (op.request, op.reply())
            {
                answers
                    .entry((topic.as_str(), key.as_str(), records.as_slice()))
                    .or_default()
                    .push((reply, op.complete));
            }
        }
        answers
    }

    /// Every acknowledged attempt of one keyed ingestion answers the same offsets. (The answer's
    /// shape, one offset per record on the record's partition, is checked with the claims.)
    fn check_ingest_answers(&mut self) {
        for ((topic, key, _), answers) in self.ingest_answers() {
            let (first, at) = answers[0];
            if let Some((other, other_at)) = answers.iter().find(|(r, _)| *r != first) {
                self.violation(
                    Invariant::IngestAnswer,
                    format!(
                        "two acknowledged attempts of ingestion {topic} key={key} answered \
                         different offsets: {first} and {other}"
                    ),
                    vec![at, *other_at],
                );
            }
        }
    }

    /// In the final read_uncommitted scan, no ingested record appears twice, and every record
    /// of an acknowledged ingestion appears exactly once, at its acknowledged offset, and in
    /// the read_committed scan too.
    fn check_ingest_end_state(&mut self) {
        // Where each ingested value sits in the final scans: value -> offsets (ru), and
        // whether read_committed readers see it.
        let mut found: HashMap<&'a str, (Vec<i64>, bool, u64)> = HashMap::new();
        let tps: BTreeSet<Tp> = self.final_scans.keys().map(|(tp, _)| tp.clone()).collect();
        for tp in &tps {
            let ru_event = self.final_scans[&(tp.clone(), false)].complete;
            for record in self.final_records(tp, false).unwrap_or(&[]) {
                if self.ingested.contains_key(record.value.as_str()) {
                    let entry =
                        found
                            .entry(record.value.as_str())
                            .or_insert((Vec::new(), false, ru_event));
                    entry.0.push(record.offset);
                }
            }
            for record in self.final_records(tp, true).unwrap_or(&[]) {
                if let Some(entry) = found.get_mut(record.value.as_str()) {
                    entry.1 = true;
                }
            }
        }
        let mut twice: Vec<(&str, &Vec<i64>, u64)> = found
            .iter()
            .filter(|(_, (offsets, _, _))| offsets.len() > 1)
            .map(|(value, (offsets, _, at))| (*value, offsets, *at))
            .collect();
        twice.sort();
        for (value, offsets, at) in twice {
            let (topic, key, _) = self.ingested[value];
            self.violation(
                Invariant::IngestExactlyOnce,
                format!(
                    "{value} of ingestion {topic} key={key} was appended {} times (offsets {})",
                    offsets.len(),
                    offsets
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                vec![at],
            );
        }
        for ((topic, key, records), answers) in self.ingest_answers() {
            let (Reply::Ingest { offsets }, at) = answers[0] else {
                continue;
            };
            for (record, o) in records.iter().zip(offsets) {
                let value = record.value.as_str();
                let (where_, visible) = match found.get(value) {
                    Some((offsets, visible, _)) => (offsets.clone(), *visible),
                    None => (Vec::new(), false),
                };
                if where_ != [o.offset] || !visible {
                    self.violation(
                        Invariant::IngestExactlyOnce,
                        format!(
                            "{value} of ingestion {topic} key={key} was acknowledged at \
                             {topic}/{} offset {}, but the final scan has it at [{}]{}",
                            o.partition,
                            o.offset,
                            where_
                                .iter()
                                .map(ToString::to_string)
                                .collect::<Vec<_>>()
                                .join(", "),
                            if visible {
                                ""
                            } else {
                                " and read_committed readers never see it"
                            }
                        ),
                        vec![at],
                    );
                }
            }
        }
    }
}

trait DifferenceCount {
    fn difference_count(&self, other: &HashSet<TxnKey>) -> usize;
}

impl DifferenceCount for BTreeSet<TxnKey> {
    fn difference_count(&self, other: &HashSet<TxnKey>) -> usize {
        self.iter().filter(|t| !other.contains(t)).count()
    }
}

/// A partition's state as an observation recorded it.
struct PartitionStateSeen {
    /// The observation's event.
    index: u64,
    tp: Tp,
    log_start_offset: i64,
    high_watermark: i64,
    last_stable_offset: i64,
}

/// Every [`Observation::PartitionState`] of the history, in order.
fn partition_states(events: &[Event]) -> impl Iterator<Item = PartitionStateSeen> + '_ {
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
