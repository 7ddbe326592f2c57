//! Idempotent producer state: the pure decision of what to do with a producer's batch.
//!
//! A partition remembers, per producer id, the current epoch and the last
//! [`MAX_REMEMBERED_BATCHES`] batches (first and last sequence, base and last offset, append
//! time). A batch of `n` records with `base_sequence` `s` covers sequences `s ..= s + n - 1`,
//! wrapping as Kafka does: after `i32::MAX` comes 0. Given the remembered state, a batch is:
//!
//! | state / batch | answer |
//! | --- | --- |
//! | no state, `base_sequence == 0` | appended; the producer is remembered from now on |
//! | no state, `base_sequence != 0` | `UNKNOWN_PRODUCER_ID` |
//! | epoch older than the remembered one | `PRODUCER_FENCED` |
//! | epoch newer, `base_sequence == 0` | appended; the old epoch's batches are forgotten |
//! | epoch newer, `base_sequence != 0` | `OUT_OF_ORDER_SEQUENCE_NUMBER` |
//! | same epoch, same first and last sequence as a remembered batch | a duplicate: its original offsets, `duplicate: true`, nothing written |
//! | same epoch, `base_sequence` = last sequence + 1 | appended |
//! | same epoch, anything else | `OUT_OF_ORDER_SEQUENCE_NUMBER` |
//!
//! A duplicate is never an error: Redpanda once answered a retried batch with an error, the
//! client then resent it as new, and Jepsen found duplicates. Answering the original offsets
//! lets the client complete the batch exactly once.
//!
//! "No state" also covers a producer whose state expired (idle longer than the partition's
//! `producer_expiry_ms`) or was evicted to keep at most `max_producers`: the partition cannot
//! tell those from a producer it never saw, and a retry of one of their batches can no longer
//! be recognised as a duplicate (see `design/partition.md`).

use std::collections::VecDeque;

use kafdo_types::rpc::ProducerBatch;

use crate::PartitionError;

/// How many of a producer's most recent batches a partition remembers (Kafka's 5 in-flight
/// requests per connection).
pub const MAX_REMEMBERED_BATCHES: usize = 5;

/// One remembered batch of a producer.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct BatchMetadata {
    /// The batch's `base_sequence`.
    pub first_sequence: i32,
    /// The sequence of its last record.
    pub last_sequence: i32,
    /// The offset of its first record.
    pub base_offset: i64,
    /// The offset of its last record.
    pub last_offset: i64,
    /// When it was appended.
    pub timestamp_ms: i64,
}

/// What a partition remembers about one producer id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProducerEntry {
    /// The newest epoch seen.
    pub producer_epoch: i32,
    /// The epoch's last batches, oldest first, at most [`MAX_REMEMBERED_BATCHES`].
    pub batches: VecDeque<BatchMetadata>,
    /// When the producer last appended (it expires when idle for too long).
    pub last_seen_ms: i64,
}

/// What to do with a producer's batch.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A retry of a remembered batch: answer its original offsets, write nothing.
    Duplicate(BatchMetadata),
    /// A new batch: append it, then record it with [`ProducerEntry::record`].
    Append,
}

/// The sequence `delta` after `sequence`, wrapping from `i32::MAX` to 0 as Kafka does.
pub fn add_sequence(sequence: i32, delta: i64) -> i32 {
    let wrapped = (i64::from(sequence) + delta).rem_euclid(i64::from(i32::MAX) + 1);
    i32::try_from(wrapped).expect("a wrapped sequence fits an i32")
}

/// The last sequence of a batch of `record_count` records starting at `base_sequence`.
pub fn last_sequence(base_sequence: i32, record_count: usize) -> i32 {
    assert!(record_count > 0, "a batch has at least one record");
    add_sequence(base_sequence, record_count as i64 - 1)
}

impl ProducerEntry {
    /// Decides what to do with a batch of `record_count` records from this producer, or from a
    /// producer with no state when `entry` is `None`.
    pub fn check(
        entry: Option<&ProducerEntry>,
        batch: &ProducerBatch,
        record_count: usize,
    ) -> Result<Verdict, PartitionError> {
        let producer_id = batch.producer_id;
        let first = batch.base_sequence;
        let last = last_sequence(first, record_count);
        let Some(entry) = entry else {
            if first != 0 {
                return Err(PartitionError::UnknownProducerId(format!(
                    "producer id {producer_id} has no state on this partition (never seen \
                     here, or its state expired or was evicted); its first batch here must \
                     have base_sequence 0, not {first}"
                )));
            }
            return Ok(Verdict::Append);
        };
        if batch.producer_epoch < entry.producer_epoch {
            return Err(PartitionError::ProducerFenced(format!(
                "producer id {producer_id}: epoch {} is older than the current epoch {}",
                batch.producer_epoch, entry.producer_epoch
            )));
        }
        if batch.producer_epoch > entry.producer_epoch {
            if first != 0 {
                return Err(PartitionError::OutOfOrderSequenceNumber(format!(
                    "producer id {producer_id}: a new epoch {} must start at base_sequence 0, \
                     not {first}",
                    batch.producer_epoch
                )));
            }
            return Ok(Verdict::Append);
        }
        if let Some(b) = entry
            .batches
            .iter()
            .find(|b| b.first_sequence == first && b.last_sequence == last)
        {
            return Ok(Verdict::Duplicate(*b));
        }
        let expected = entry
            .batches
            .back()
            .map_or(0, |b| add_sequence(b.last_sequence, 1));
        if first != expected {
            return Err(PartitionError::OutOfOrderSequenceNumber(format!(
                "producer id {producer_id} epoch {}: expected base_sequence {expected}, got \
                 {first} (a gap, or a retry older than the last {MAX_REMEMBERED_BATCHES} \
                 batches, or a retry with a different record count)",
                batch.producer_epoch
            )));
        }
        Ok(Verdict::Append)
    }

    /// The state after appending `batch` (which [`ProducerEntry::check`] allowed) at
    /// `base_offset ..= last_offset`.
    pub fn record(
        entry: Option<&ProducerEntry>,
        batch: &ProducerBatch,
        base_offset: i64,
        last_offset: i64,
        now_ms: i64,
    ) -> ProducerEntry {
        let record_count =
            usize::try_from(last_offset - base_offset + 1).expect("a positive count");
        let mut batches = match entry {
            Some(e) if e.producer_epoch == batch.producer_epoch => e.batches.clone(),
            _ => VecDeque::new(),
        };
        if batches.len() == MAX_REMEMBERED_BATCHES {
            batches.pop_front();
        }
        batches.push_back(BatchMetadata {
            first_sequence: batch.base_sequence,
            last_sequence: last_sequence(batch.base_sequence, record_count),
            base_offset,
            last_offset,
            timestamp_ms: now_ms,
        });
        ProducerEntry {
            producer_epoch: batch.producer_epoch,
            batches,
            last_seen_ms: now_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_wrap_as_in_kafka() {
        assert_eq!(add_sequence(i32::MAX, 1), 0);
        assert_eq!(add_sequence(i32::MAX - 1, 3), 1);
        assert_eq!(last_sequence(i32::MAX - 1, 3), 0);
        assert_eq!(last_sequence(5, 1), 5);
        assert_eq!(add_sequence(0, 0), 0);
    }
}
