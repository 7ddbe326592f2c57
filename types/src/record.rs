//! Records as producers send them and as consumers read them.

use serde::{Deserialize, Serialize};

use crate::limits::{MAX_RECORDS_PER_REQUEST, MAX_RECORD_BYTES, MAX_SAFE_INTEGER};
use crate::ErrorCode;

/// A record header: a string key and an optional binary value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// The header name.
    pub key: String,
    /// The header value (base64 in JSON); null is allowed, as in Kafka.
    #[serde(with = "crate::bytes::option", default)]
    pub value: Option<Vec<u8>>,
}

/// A record in a produce request.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProduceRecord {
    /// The key; it picks the partition (Kafka's murmur2) unless `partition` is given.
    #[serde(
        with = "crate::bytes::option",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub key: Option<Vec<u8>>,
    /// The value; null is a tombstone (it deletes the key under compaction).
    #[serde(with = "crate::bytes::option", default)]
    pub value: Option<Vec<u8>>,
    /// Headers, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<Header>,
    /// An explicit partition (topic produce only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<i32>,
    /// The record's create time in ms since the epoch; the partition's clock when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<i64>,
}

impl ProduceRecord {
    /// A record with just a value.
    pub fn value(value: impl Into<Vec<u8>>) -> Self {
        Self {
            value: Some(value.into()),
            ..Self::default()
        }
    }

    /// A record with a key and a value.
    pub fn keyed(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Self {
        Self {
            key: Some(key.into()),
            value: Some(value.into()),
            ..Self::default()
        }
    }

    /// The bytes the record counts against [`crate::limits::MAX_RECORD_BYTES`]: key, value and
    /// headers.
    pub fn size_bytes(&self) -> usize {
        record_size(&self.key, &self.value, &self.headers)
    }
}

/// Why records are refused before anything is written: one rule, checked by the broker over a
/// whole produce request before it splits it by partition, and by each partition over its
/// batch. A request whose batches go to several partitions is so refused whole, before any of
/// them appends (a partition that refused alone would leave the others' batches written under
/// a 400, which a client does not retry as sent).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecordsError {
    /// No records, or more than [`MAX_RECORDS_PER_REQUEST`].
    #[error("a produce request holds 1 to {MAX_RECORDS_PER_REQUEST} records, not {0}")]
    Count(usize),
    /// A record larger than [`MAX_RECORD_BYTES`].
    #[error("record {index} is {size_bytes} bytes, more than the limit of {MAX_RECORD_BYTES}")]
    TooLarge {
        /// Its position.
        index: usize,
        /// Its size ([`ProduceRecord::size_bytes`]).
        size_bytes: usize,
    },
    /// A timestamp outside 0..=2^53-1 (SQLite and JavaScript both hold those exactly).
    #[error("record {index} has timestamp {timestamp}, outside 0..=2^53-1")]
    Timestamp {
        /// Its position.
        index: usize,
        /// The timestamp.
        timestamp: i64,
    },
    /// A record without a key for a compacted topic, which keeps the latest record per key
    /// (Kafka refuses it the same way).
    #[error("record {0} has no key: a compacted topic needs a key on every record")]
    NoKey(usize),
}

impl RecordsError {
    /// The protocol error code for the answer.
    pub fn code(&self) -> ErrorCode {
        match self {
            RecordsError::Count(_) | RecordsError::Timestamp { .. } => ErrorCode::InvalidRequest,
            RecordsError::TooLarge { .. } => ErrorCode::MessageTooLarge,
            RecordsError::NoKey(_) => ErrorCode::InvalidRecord,
        }
    }
}

/// Checks records for a topic (`compact`: its cleanup policy is compact) as
/// [`RecordsError`] says. An absent timestamp is the partition's clock, always in range.
pub fn check_records(records: &[ProduceRecord], compact: bool) -> Result<(), RecordsError> {
    if records.is_empty() || records.len() > MAX_RECORDS_PER_REQUEST {
        return Err(RecordsError::Count(records.len()));
    }
    for (index, record) in records.iter().enumerate() {
        let size_bytes = record.size_bytes();
        if size_bytes > MAX_RECORD_BYTES {
            return Err(RecordsError::TooLarge { index, size_bytes });
        }
        if let Some(timestamp) = record.timestamp {
            if !(0..=MAX_SAFE_INTEGER).contains(&timestamp) {
                return Err(RecordsError::Timestamp { index, timestamp });
            }
        }
        if compact && record.key.is_none() {
            return Err(RecordsError::NoKey(index));
        }
    }
    Ok(())
}

/// A record as read back from a partition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Its offset in the partition.
    pub offset: i64,
    /// Create time (given by the producer) or append time, in ms since the epoch.
    pub timestamp: i64,
    /// The key, or null.
    #[serde(with = "crate::bytes::option", default)]
    pub key: Option<Vec<u8>>,
    /// The value, or null for a tombstone.
    #[serde(with = "crate::bytes::option", default)]
    pub value: Option<Vec<u8>>,
    /// Headers, in order.
    #[serde(default)]
    pub headers: Vec<Header>,
}

impl Record {
    /// The bytes the record counts against fetch `max_bytes`.
    pub fn size_bytes(&self) -> usize {
        record_size(&self.key, &self.value, &self.headers)
    }
}

fn record_size(key: &Option<Vec<u8>>, value: &Option<Vec<u8>>, headers: &[Header]) -> usize {
    key.as_ref().map_or(0, Vec::len)
        + value.as_ref().map_or(0, Vec::len)
        + headers
            .iter()
            .map(|h| h.key.len() + h.value.as_ref().map_or(0, Vec::len))
            .sum::<usize>()
}
