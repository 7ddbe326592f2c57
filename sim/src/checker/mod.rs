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
//!
//! # Where each invariant is checked
//!
//! [`check`] pairs every invoke with its completion, indexes the history, then runs the checks,
//! one file per concern:
//!
//! - `report.rs`: what the checker answers: [`Invariant`], [`Violation`], [`Report`] and
//!   [`Malformed`].
//! - `ops.rs`: invokes paired with their completions ([`Malformed`] when a completion does not
//!   fit), and the views of reads and of observed partition states that the checks share.
//! - `index.rs`: every value's partition, transaction and source, the observations, and the
//!   final scans ([`Malformed`] for a reused value or an ill-formed produce;
//!   `OneValuePerOffset` for two transactions' markers at one offset).
//! - `log.rs`: what each offset holds, from acknowledgements, fetches and scans:
//!   `OneValuePerOffset`, `DuplicateWrite` (and `IngestAnswer` for an answer whose offsets do
//!   not match its records' partitions).
//! - `outcomes.rs`: how each transaction ended: `TxnAtomicity`.
//! - `reads.rs`: `ReadTwice`, `ReadAborted`, `ReadOpen`, `SkippedRecord`, and `DuplicateWrite`
//!   within one fetch.
//! - `lso.rs`: `LsoBound`.
//! - `epochs.rs`: `EpochsRise`, `Fencing`.
//! - `groups.rs`: `OffsetVisibility`, `GroupOwnership`.
//! - `ingest.rs`: `IngestAnswer`, and after settling `IngestExactlyOnce`.
//! - `compaction.rs`: `CompactedRead`, `CompactedSkipped`, `LogStartFixed`, and after settling
//!   `CompactedLatest`.
//! - `retention.rs`: the sightings of each partition's log start, `RetentionLogStart`,
//!   `RetentionExpired`, `RetentionStable`.
//! - `end_state.rs`, after settling: `Hanging`, `DenseOffsets`, `LostWrite`.
//! - `pipelines.rs`, after settling: `PipelineExactlyOnce`.
//! - `producer_ids.rs`: `ProducerIdHandedOut`.
//!
//! The checks share what earlier ones built, so their order matters: the claims (`log.rs`)
//! fill the offsets the compaction and retention checks read, the transactions' outcomes
//! (`outcomes.rs`) are decided before any check judges a record by its transaction, and the
//! retention check collects the log start sightings the end-state checks count from.

mod compaction;
mod end_state;
mod epochs;
mod groups;
mod index;
mod ingest;
mod log;
mod lso;
mod ops;
mod outcomes;
mod pipelines;
mod producer_ids;
mod reads;
mod report;
mod retention;

use std::collections::{BTreeMap, HashMap};

use kafdo_types::rpc::TxnResult;

use crate::history::{Event, History, IngestRecord, Tp};
// For the docs' links.
#[cfg(doc)]
use crate::history::{Observation, Request};

use ops::{pair, Op};
pub use report::{Invariant, Malformed, Report, Violation};
use retention::Sighting;

/// A transaction: (producer id, epoch).
type TxnKey = (i64, i32);

/// What the history says about one produced value.
#[derive(Clone, Debug)]
struct Write {
    tp: Tp,
    txn: Option<TxnKey>,
    source: Option<String>,
}

/// One keyed ingestion: its topic, `Idempotency-Key` and records (the request body).
type IngestKey<'a> = (&'a str, &'a str, &'a [IngestRecord]);

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
        self.check_producer_ids_handed_out();
        if self.settled.is_some() {
            self.check_compacted_end_state();
            self.check_end_state();
            self.check_pipelines();
            self.check_ingest_end_state();
        }
        // A total order: some checks walk hash maps, so without the events and message in the
        // key one history's report would list its violations in another order on every run.
        self.violations.sort_by(|a, b| {
            (a.invariant, &a.events, &a.message).cmp(&(b.invariant, &b.events, &b.message))
        });
    }
}
