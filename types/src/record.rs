//! Records as producers send them and as consumers read them.

use serde::{Deserialize, Serialize};

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
