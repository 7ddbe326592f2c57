//! What the checker reports: the [`Invariant`]s it proves (each variant documents what it
//! forbids and how it is detected), a [`Violation`] of one, the [`Report`] on a whole history,
//! and [`Malformed`] for a history the checker cannot judge.

use std::fmt;

// For the docs' links.
#[cfg(doc)]
use crate::history::Observation;

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
    /// A partition accepts a producer id only once the deployment handed it out: every
    /// acknowledged produce with a producer id is answered after an allocation of that id was
    /// observed (`producer_ids` observations; a history without any is not judged on this).
    ProducerIdHandedOut,
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
