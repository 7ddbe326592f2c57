//! The compact binary encodings the partition stores in BLOB columns.
//!
//! # Records of a log row
//!
//! A row of `batches` holds consecutive records; their offsets are implied (the row's
//! `base_offset` plus the position), so only the records' contents are stored, one after the
//! other:
//!
//! ```text
//! record  = timestamp_delta:zigzag-varint  key:optbytes  value:optbytes
//!           header_count:varint  { header_key:bytes  header_value:optbytes }
//! bytes    = len:varint  len × u8
//! optbytes = 0:varint (null)  |  (len + 1):varint  len × u8
//! ```
//!
//! `timestamp_delta` is the difference from the previous record's timestamp (the first record
//! counts from 0), so a batch of records stamped with the same time costs one byte per record.
//!
//! # Rows rewritten by compaction
//!
//! Compaction removes records from a row, so their offsets are no longer implied by position.
//! A rewritten row (flag 8 in `batches.flags`, see `crate::compaction`) stores each record with
//! its offset, as a delta from the row's `base_offset`, in front of the record:
//!
//! ```text
//! record_with_offset = offset_delta:varint  record
//! ```
//!
//! Only rewritten rows pay for it: an append writes the plain format, so the hot path is
//! unchanged. [`RecordReader::with_offsets`] reads the explicit form.
//!
//! # Producer batches
//!
//! The last batches of an idempotent producer ([`crate::producer::BatchMetadata`]) are stored as
//! fixed 32-byte little-endian entries: `first_sequence:i32 last_sequence:i32 base_offset:i64
//! last_offset:i64 timestamp_ms:i64`.
//!
//! A blob that does not decode is a bug (the partition wrote it), so decoding asserts rather
//! than returning an error.

use kafdo_types::record::{Header, Record};

use crate::producer::BatchMetadata;

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_zigzag(out: &mut Vec<u8>, v: i64) {
    put_varint(out, ((v << 1) ^ (v >> 63)) as u64);
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn put_opt_bytes(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        None => put_varint(out, 0),
        Some(b) => {
            put_varint(out, b.len() as u64 + 1);
            out.extend_from_slice(b);
        }
    }
}

/// The most bytes [`encode_record`] adds beyond the record's own key, value and headers, so a
/// caller can split rows before encoding.
pub fn record_overhead_bytes(header_count: usize) -> usize {
    // Timestamp (10), key and value lengths (10 each), header count (10), and per header two
    // lengths.
    40 + header_count * 20
}

/// Appends one record to a row's blob. `previous_timestamp` is the timestamp of the record
/// before it in the same row (0 for the first).
pub fn encode_record(
    out: &mut Vec<u8>,
    previous_timestamp: i64,
    timestamp: i64,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &[Header],
) {
    put_zigzag(out, timestamp.wrapping_sub(previous_timestamp));
    put_opt_bytes(out, key);
    put_opt_bytes(out, value);
    put_varint(out, headers.len() as u64);
    for h in headers {
        put_bytes(out, h.key.as_bytes());
        put_opt_bytes(out, h.value.as_deref());
    }
}

/// Appends one record of a rewritten row (see "Rows rewritten by compaction" above): its offset
/// as a delta from the row's `base_offset`, then the record as [`encode_record`] writes it.
pub fn encode_record_with_offset(
    out: &mut Vec<u8>,
    base_offset: i64,
    previous_timestamp: i64,
    record: &Record,
) {
    assert!(
        record.offset >= base_offset,
        "a record before its row's base offset"
    );
    put_varint(out, (record.offset - base_offset) as u64);
    encode_record(
        out,
        previous_timestamp,
        record.timestamp,
        record.key.as_deref(),
        record.value.as_deref(),
        &record.headers,
    );
}

/// Reads records out of a row's blob.
pub struct RecordReader<'a> {
    blob: &'a [u8],
    pos: usize,
    base_offset: i64,
    next_offset: i64,
    previous_timestamp: i64,
    /// Whether each record carries its offset (a row rewritten by compaction).
    explicit_offsets: bool,
}

impl<'a> RecordReader<'a> {
    /// A reader over the blob of the row whose first record has `base_offset` (offsets
    /// implied by position: a row as appended).
    pub fn new(blob: &'a [u8], base_offset: i64) -> Self {
        Self {
            blob,
            pos: 0,
            base_offset,
            next_offset: base_offset,
            previous_timestamp: 0,
            explicit_offsets: false,
        }
    }

    /// A reader over a row rewritten by compaction, whose records carry their offsets as
    /// deltas from `base_offset`.
    pub fn with_offsets(blob: &'a [u8], base_offset: i64) -> Self {
        Self {
            explicit_offsets: true,
            ..Self::new(blob, base_offset)
        }
    }

    fn varint(&mut self) -> u64 {
        let mut v = 0u64;
        let mut shift = 0;
        loop {
            let b = *self
                .blob
                .get(self.pos)
                .expect("a stored record blob is truncated");
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return v;
            }
            shift += 7;
            assert!(shift < 64, "a stored varint is too long");
        }
    }

    fn take(&mut self, len: usize) -> &'a [u8] {
        let end = self.pos + len;
        let b = self
            .blob
            .get(self.pos..end)
            .expect("a stored record blob is truncated");
        self.pos = end;
        b
    }

    fn opt_bytes(&mut self) -> Option<Vec<u8>> {
        match self.varint() {
            0 => None,
            n => Some(self.take(n as usize - 1).to_vec()),
        }
    }

    /// Skips or decodes the next record. Returns `None` at the end of the blob.
    pub fn next_record(&mut self) -> Option<Record> {
        if self.pos == self.blob.len() {
            return None;
        }
        if self.explicit_offsets {
            let offset = self.base_offset + self.varint() as i64;
            assert!(
                offset >= self.next_offset,
                "a rewritten row's offsets do not increase"
            );
            self.next_offset = offset;
        }
        let z = self.varint();
        let delta = ((z >> 1) as i64) ^ -((z & 1) as i64);
        let timestamp = self.previous_timestamp.wrapping_add(delta);
        self.previous_timestamp = timestamp;
        let key = self.opt_bytes();
        let value = self.opt_bytes();
        let header_count = self.varint() as usize;
        let mut headers = Vec::with_capacity(header_count.min(1024));
        for _ in 0..header_count {
            let len = self.varint() as usize;
            let key = String::from_utf8(self.take(len).to_vec())
                .expect("a stored header key is not UTF-8");
            let value = self.opt_bytes();
            headers.push(Header { key, value });
        }
        let offset = self.next_offset;
        self.next_offset += 1;
        Some(Record {
            offset,
            timestamp,
            key,
            value,
            headers,
        })
    }
}

/// The size of one stored producer batch entry.
const BATCH_ENTRY_BYTES: usize = 32;

/// Encodes a producer's remembered batches.
pub fn encode_batches<'a>(batches: impl IntoIterator<Item = &'a BatchMetadata>) -> Vec<u8> {
    let mut out = Vec::new();
    for b in batches {
        out.extend_from_slice(&b.first_sequence.to_le_bytes());
        out.extend_from_slice(&b.last_sequence.to_le_bytes());
        out.extend_from_slice(&b.base_offset.to_le_bytes());
        out.extend_from_slice(&b.last_offset.to_le_bytes());
        out.extend_from_slice(&b.timestamp_ms.to_le_bytes());
    }
    out
}

/// Decodes what [`encode_batches`] wrote.
pub fn decode_batches(blob: &[u8]) -> Vec<BatchMetadata> {
    assert!(
        blob.len().is_multiple_of(BATCH_ENTRY_BYTES),
        "a stored producer batch list has {} bytes",
        blob.len()
    );
    blob.chunks_exact(BATCH_ENTRY_BYTES)
        .map(|c| {
            let i32_at = |i: usize| i32::from_le_bytes(c[i..i + 4].try_into().expect("4 bytes"));
            let i64_at = |i: usize| i64::from_le_bytes(c[i..i + 8].try_into().expect("8 bytes"));
            BatchMetadata {
                first_sequence: i32_at(0),
                last_sequence: i32_at(4),
                base_offset: i64_at(8),
                last_offset: i64_at(16),
                timestamp_ms: i64_at(24),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn header() -> impl Strategy<Value = Header> {
        (
            "[a-z]{0,8}",
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..16)),
        )
            .prop_map(|(key, value)| Header { key, value })
    }

    fn record() -> impl Strategy<Value = Record> {
        (
            any::<i64>(),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..300)),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..300)),
            proptest::collection::vec(header(), 0..4),
        )
            .prop_map(|(timestamp, key, value, headers)| Record {
                offset: 0,
                timestamp,
                key,
                value,
                headers,
            })
    }

    proptest! {
        #[test]
        fn records_round_trip(records in proptest::collection::vec(record(), 0..20), base in 0i64..1 << 40) {
            let mut blob = Vec::new();
            let mut previous = 0;
            for r in &records {
                let before = blob.len();
                encode_record(&mut blob, previous, r.timestamp, r.key.as_deref(), r.value.as_deref(), &r.headers);
                prop_assert!(blob.len() - before <= r.size_bytes() + record_overhead_bytes(r.headers.len()));
                previous = r.timestamp;
            }
            let mut reader = RecordReader::new(&blob, base);
            for (i, r) in records.iter().enumerate() {
                let got = reader.next_record().expect("a record");
                prop_assert_eq!(got.offset, base + i as i64);
                prop_assert_eq!(&Record { offset: 0, ..got }, r);
            }
            prop_assert!(reader.next_record().is_none());
        }

        #[test]
        fn records_with_offsets_round_trip(
            records in proptest::collection::vec((record(), 1i64..1000), 0..20),
            base in 0i64..1 << 40,
        ) {
            let mut offset = base;
            let records: Vec<Record> = records
                .into_iter()
                .map(|(r, gap)| {
                    offset += gap;
                    Record { offset, ..r }
                })
                .collect();
            let mut blob = Vec::new();
            let mut previous = 0;
            for r in &records {
                encode_record_with_offset(&mut blob, base, previous, r);
                previous = r.timestamp;
            }
            let mut reader = RecordReader::with_offsets(&blob, base);
            for r in &records {
                prop_assert_eq!(&reader.next_record().expect("a record"), r);
            }
            prop_assert!(reader.next_record().is_none());
        }

        #[test]
        fn batches_round_trip(entries in proptest::collection::vec(
            (any::<i32>(), any::<i32>(), any::<i64>(), any::<i64>(), any::<i64>()), 0..6)) {
            let batches: Vec<BatchMetadata> = entries.iter().map(|&(a, b, c, d, e)| BatchMetadata {
                first_sequence: a, last_sequence: b, base_offset: c, last_offset: d, timestamp_ms: e,
            }).collect();
            prop_assert_eq!(decode_batches(&encode_batches(&batches)), batches);
        }
    }
}
