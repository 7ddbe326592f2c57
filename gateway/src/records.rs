//! Kafka's RecordBatch v2 ("magic 2"), read and written record by record.
//!
//! The `kafka-protocol` crate has a batch codec, but it keeps headers in a map (duplicate keys
//! collapse), drops `lastOffsetDelta` and `maxTimestamp`, and cannot write a batch whose offsets
//! skip (`../design/gateway.md`, "Record batches"). Both directions are here instead:
//!
//! - [`read_batches`] takes a Produce's `records` bytes: every batch's CRC-32C checked, its
//!   records decompressed (gzip, snappy raw or in xerial's framing, lz4 frames, zstd) up to a
//!   cap, every length checked against the bytes that are there.
//! - [`write_batch`] writes a Fetch answer's batch. Its `last_offset_delta` is the caller's: a
//!   batch may name fewer records than it spans, which is how a fetch tells a consumer to step
//!   over offsets it will never see (markers, aborted records, compacted keys).
//!
//! The layout (all big-endian; the CRC covers `attributes` to the end):
//!
//! ```text
//! 0  base_offset i64        27 base_timestamp i64      53 base_sequence i32
//! 8  batch_length i32       35 max_timestamp i64       57 record count i32
//! 12 partition_leader_epoch 43 producer_id i64         61 records (maybe compressed)
//! 16 magic i8 (2)           51 producer_epoch i16
//! 17 crc u32
//! 21 attributes i16: bits 0-2 compression, 3 log-append time, 4 transactional, 5 control
//! 23 last_offset_delta i32
//! ```
//!
//! A record: length (varint), attributes (i8, unused), timestamp delta (varlong), offset delta
//! (varint), key and value (varint length, -1 for null, bytes), header count (varint), headers
//! (key: varint length and UTF-8; value: varint length, -1 for null, bytes).

use std::io::Read;

use bytes::{BufMut, BytesMut};

/// Bytes of a batch before its records.
pub const BATCH_HEADER_BYTES: usize = 61;
/// Bytes from the start of a batch to the end of `batch_length`: where `batch_length` counts from.
const LOG_OVERHEAD: usize = 12;
/// Where the CRC-32C starts to count (the `attributes` field).
const CRC_START: usize = 21;

/// The compression of a batch's records.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Compression {
    /// None.
    None,
    /// gzip.
    Gzip,
    /// snappy: raw, or xerial's framing (what the Java client writes).
    Snappy,
    /// LZ4 frames.
    Lz4,
    /// zstd.
    Zstd,
}

impl Compression {
    fn from_attributes(attributes: i16) -> Result<Compression, RecordsError> {
        Ok(match attributes & 0x07 {
            0 => Compression::None,
            1 => Compression::Gzip,
            2 => Compression::Snappy,
            3 => Compression::Lz4,
            4 => Compression::Zstd,
            other => return Err(RecordsError::Compression(other)),
        })
    }

    fn bits(self) -> i16 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }
}

/// A record batch, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    /// The offset of the batch's first offset (records carry deltas from it).
    pub base_offset: i64,
    /// The leader epoch (-1: none).
    pub partition_leader_epoch: i32,
    /// How the records are (or are to be) compressed.
    pub compression: Compression,
    /// Timestamps are the log's append time, not the producer's create time.
    pub timestamp_type_log_append: bool,
    /// The batch belongs to a transaction.
    pub transactional: bool,
    /// A control batch (a transaction marker).
    pub control: bool,
    /// The offset delta of the batch's last offset: the batch spans `base_offset ..=
    /// base_offset + last_offset_delta`, whatever records it carries.
    pub last_offset_delta: i32,
    /// The first record's timestamp, which the others are deltas from.
    pub base_timestamp: i64,
    /// The largest timestamp of the batch.
    pub max_timestamp: i64,
    /// The producer id (-1: none).
    pub producer_id: i64,
    /// The producer epoch (-1: none).
    pub producer_epoch: i16,
    /// The sequence number of the first record (-1: none).
    pub base_sequence: i32,
    /// The records.
    pub records: Vec<BatchRecord>,
}

/// One record of a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchRecord {
    /// Its offset minus the batch's base offset.
    pub offset_delta: i32,
    /// Its timestamp minus the batch's base timestamp.
    pub timestamp_delta: i64,
    /// The key, or null.
    pub key: Option<Vec<u8>>,
    /// The value, or null.
    pub value: Option<Vec<u8>>,
    /// Headers in order, duplicate keys kept.
    pub headers: Vec<RecordHeader>,
}

/// A record header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordHeader {
    /// The header key (UTF-8, never null).
    pub key: String,
    /// The value, or null.
    pub value: Option<Vec<u8>>,
}

/// Why bytes are not record batches.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordsError {
    /// The bytes end inside a batch or a record.
    #[error("the records end early: {0}")]
    Truncated(&'static str),
    /// A magic other than 2 (Kafka's old message sets are not accepted).
    #[error("magic {0}: only RecordBatch v2 (magic 2) is accepted")]
    Magic(i8),
    /// The stored CRC is not the CRC-32C of the batch.
    #[error("CRC mismatch: the batch says {stored:#010x}, its bytes give {computed:#010x}")]
    Crc {
        /// In the batch.
        stored: u32,
        /// Of the bytes.
        computed: u32,
    },
    /// A length that cannot be.
    #[error("invalid length {1} for {0}")]
    Length(&'static str, i64),
    /// A varint longer than its type.
    #[error("a varint that does not end")]
    Varint,
    /// Compression bits Kafka does not define.
    #[error("unknown compression codec {0}")]
    Compression(i16),
    /// The compressed records do not decompress.
    #[error("{0:?} records do not decompress: {1}")]
    Decompress(Compression, String),
    /// More decompressed bytes than allowed.
    #[error("the records decompress to more than {0} bytes")]
    TooLarge(usize),
    /// The record count disagrees with the records.
    #[error("the batch declares {declared} records but holds {found}")]
    Count {
        /// In the batch header.
        declared: i32,
        /// Decoded.
        found: usize,
    },
    /// A header key that is not UTF-8.
    #[error("a header key is not UTF-8")]
    HeaderKey,
}

/// Every batch in `bytes` (a Produce's `records` field). `max_decompressed` caps what each
/// batch's records may decompress to: a small compressed batch cannot take the gateway's memory.
pub fn read_batches(bytes: &[u8], max_decompressed: usize) -> Result<Vec<Batch>, RecordsError> {
    let mut batches = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        if rest.len() < LOG_OVERHEAD {
            return Err(RecordsError::Truncated("a batch header"));
        }
        let length = i32::from_be_bytes(rest[8..12].try_into().expect("4 bytes"));
        let total = usize::try_from(length)
            .ok()
            .filter(|l| *l >= BATCH_HEADER_BYTES - LOG_OVERHEAD)
            .ok_or(RecordsError::Length("batch_length", i64::from(length)))?
            + LOG_OVERHEAD;
        if rest.len() < total {
            return Err(RecordsError::Truncated("a batch"));
        }
        batches.push(read_batch(&rest[..total], max_decompressed)?);
        rest = &rest[total..];
    }
    Ok(batches)
}

/// One whole batch (`bytes` is exactly its length).
fn read_batch(bytes: &[u8], max_decompressed: usize) -> Result<Batch, RecordsError> {
    let mut r = Reader(bytes);
    let base_offset = r.i64()?;
    let _length = r.i32()?;
    let partition_leader_epoch = r.i32()?;
    let magic = r.i8()?;
    if magic != 2 {
        return Err(RecordsError::Magic(magic));
    }
    let stored = r.u32()?;
    let computed = crc32c::crc32c(&bytes[CRC_START..]);
    if stored != computed {
        return Err(RecordsError::Crc { stored, computed });
    }
    let attributes = r.i16()?;
    let compression = Compression::from_attributes(attributes)?;
    let last_offset_delta = r.i32()?;
    let base_timestamp = r.i64()?;
    let max_timestamp = r.i64()?;
    let producer_id = r.i64()?;
    let producer_epoch = r.i16()?;
    let base_sequence = r.i32()?;
    let declared = r.i32()?;
    if declared < 0 {
        return Err(RecordsError::Length("record count", i64::from(declared)));
    }
    let body = &bytes[BATCH_HEADER_BYTES..];
    let decompressed;
    let body = match compression {
        Compression::None => body,
        codec => {
            decompressed = decompress(codec, body, max_decompressed)?;
            &decompressed[..]
        }
    };
    let mut r = Reader(body);
    // Every record takes at least 7 bytes: a count larger than the bytes allow is a lie, not a
    // reason to reserve memory.
    let mut records = Vec::with_capacity((declared as usize).min(body.len() / 7));
    while !r.0.is_empty() {
        records.push(read_record(&mut r)?);
    }
    if records.len() != declared as usize {
        return Err(RecordsError::Count {
            declared,
            found: records.len(),
        });
    }
    Ok(Batch {
        base_offset,
        partition_leader_epoch,
        compression,
        timestamp_type_log_append: attributes & 0x08 != 0,
        transactional: attributes & 0x10 != 0,
        control: attributes & 0x20 != 0,
        last_offset_delta,
        base_timestamp,
        max_timestamp,
        producer_id,
        producer_epoch,
        base_sequence,
        records,
    })
}

fn read_record(r: &mut Reader<'_>) -> Result<BatchRecord, RecordsError> {
    let length = r.varint()?;
    let length =
        usize::try_from(length).map_err(|_| RecordsError::Length("a record", i64::from(length)))?;
    let mut body = Reader(r.take(length, "a record")?);
    let _attributes = body.i8()?;
    let timestamp_delta = body.varlong()?;
    let offset_delta = body.varint()?;
    let key = body.nullable_bytes("a record key")?;
    let value = body.nullable_bytes("a record value")?;
    let count = body.varint()?;
    let count = usize::try_from(count)
        .map_err(|_| RecordsError::Length("header count", i64::from(count)))?;
    let mut headers = Vec::with_capacity(count.min(body.0.len() / 2));
    for _ in 0..count {
        let key = body
            .nullable_bytes("a header key")?
            .ok_or(RecordsError::Length("a header key", -1))?;
        let key = String::from_utf8(key).map_err(|_| RecordsError::HeaderKey)?;
        let value = body.nullable_bytes("a header value")?;
        headers.push(RecordHeader { key, value });
    }
    if !body.0.is_empty() {
        return Err(RecordsError::Length(
            "a record (bytes after its headers)",
            length as i64,
        ));
    }
    Ok(BatchRecord {
        offset_delta,
        timestamp_delta,
        key,
        value,
        headers,
    })
}

/// The xerial snappy stream header: the Java client's `SnappyOutputStream`.
const XERIAL_MAGIC: &[u8] = b"\x82SNAPPY\x00";

fn decompress(codec: Compression, body: &[u8], max: usize) -> Result<Vec<u8>, RecordsError> {
    let fail = |e: &dyn std::fmt::Display| RecordsError::Decompress(codec, e.to_string());
    let mut out = Vec::new();
    match codec {
        Compression::None => out.extend_from_slice(body),
        Compression::Gzip => {
            read_capped(flate2::read::GzDecoder::new(body), max, &mut out).map_err(|e| fail(&e))?
        }
        Compression::Lz4 => read_capped(lz4_flex::frame::FrameDecoder::new(body), max, &mut out)
            .map_err(|e| fail(&e))?,
        Compression::Zstd => {
            let decoder = zstd::stream::read::Decoder::new(body).map_err(|e| fail(&e))?;
            read_capped(decoder, max, &mut out).map_err(|e| fail(&e))?
        }
        Compression::Snappy if body.starts_with(XERIAL_MAGIC) => {
            // Magic, version and compatible version, then blocks: a 4-byte length and one raw
            // snappy block.
            let mut r = Reader(body.get(16..).ok_or(fail(&"a short xerial header"))?);
            while !r.0.is_empty() {
                let length = r.i32()?;
                let length = usize::try_from(length)
                    .map_err(|_| RecordsError::Length("a snappy block", i64::from(length)))?;
                snappy_block(r.take(length, "a snappy block")?, max, &mut out)?;
            }
        }
        Compression::Snappy => snappy_block(body, max, &mut out)?,
    }
    if out.len() > max {
        return Err(RecordsError::TooLarge(max));
    }
    Ok(out)
}

fn snappy_block(block: &[u8], max: usize, out: &mut Vec<u8>) -> Result<(), RecordsError> {
    let fail = |e: snap::Error| RecordsError::Decompress(Compression::Snappy, e.to_string());
    let length = snap::raw::decompress_len(block).map_err(fail)?;
    if out.len() + length > max {
        return Err(RecordsError::TooLarge(max));
    }
    let start = out.len();
    out.resize(start + length, 0);
    snap::raw::Decoder::new()
        .decompress(block, &mut out[start..])
        .map_err(fail)?;
    Ok(())
}

/// Reads `reader` to its end into `out`, failing past `max` bytes.
fn read_capped(reader: impl Read, max: usize, out: &mut Vec<u8>) -> std::io::Result<()> {
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    reader.take(limit).read_to_end(out)?;
    if out.len() > max {
        return Err(std::io::Error::other(format!(
            "more than {max} bytes decompressed"
        )));
    }
    Ok(())
}

/// Appends `batch` to `out`: its records compressed by `batch.compression`, its length and CRC
/// computed. The record count written is `batch.records.len()`.
pub fn write_batch(out: &mut BytesMut, batch: &Batch) {
    let start = out.len();
    out.put_i64(batch.base_offset);
    out.put_i32(0); // batch_length, below
    out.put_i32(batch.partition_leader_epoch);
    out.put_i8(2);
    out.put_u32(0); // crc, below
    let mut attributes = batch.compression.bits();
    if batch.timestamp_type_log_append {
        attributes |= 0x08;
    }
    if batch.transactional {
        attributes |= 0x10;
    }
    if batch.control {
        attributes |= 0x20;
    }
    out.put_i16(attributes);
    out.put_i32(batch.last_offset_delta);
    out.put_i64(batch.base_timestamp);
    out.put_i64(batch.max_timestamp);
    out.put_i64(batch.producer_id);
    out.put_i16(batch.producer_epoch);
    out.put_i32(batch.base_sequence);
    out.put_i32(batch.records.len() as i32);
    let mut records = BytesMut::new();
    let mut record = BytesMut::new();
    for r in &batch.records {
        record.clear();
        record.put_i8(0);
        put_varlong(&mut record, r.timestamp_delta);
        put_varint(&mut record, r.offset_delta);
        put_nullable(&mut record, r.key.as_deref());
        put_nullable(&mut record, r.value.as_deref());
        put_varint(&mut record, r.headers.len() as i32);
        for h in &r.headers {
            put_nullable(&mut record, Some(h.key.as_bytes()));
            put_nullable(&mut record, h.value.as_deref());
        }
        put_varint(&mut records, record.len() as i32);
        records.extend_from_slice(&record);
    }
    match batch.compression {
        Compression::None => out.extend_from_slice(&records),
        codec => out.extend_from_slice(&compress(codec, &records)),
    }
    let length = (out.len() - start - LOG_OVERHEAD) as i32;
    out[start + 8..start + 12].copy_from_slice(&length.to_be_bytes());
    let crc = crc32c::crc32c(&out[start + CRC_START..]);
    out[start + 17..start + 21].copy_from_slice(&crc.to_be_bytes());
}

/// `records` compressed as Kafka's clients do (snappy in xerial's framing, as Java writes it).
fn compress(codec: Compression, records: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let written = "writing to a Vec does not fail";
    match codec {
        Compression::None => records.to_vec(),
        Compression::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(records).expect(written);
            e.finish().expect(written)
        }
        Compression::Lz4 => {
            let mut e = lz4_flex::frame::FrameEncoder::new(Vec::new());
            e.write_all(records).expect(written);
            e.finish().expect(written)
        }
        Compression::Zstd => zstd::bulk::compress(records, 1).expect(written),
        Compression::Snappy => {
            let mut out = XERIAL_MAGIC.to_vec();
            out.extend_from_slice(&1i32.to_be_bytes());
            out.extend_from_slice(&1i32.to_be_bytes());
            let mut encoder = snap::raw::Encoder::new();
            for chunk in records.chunks(32 * 1024) {
                let block = encoder.compress_vec(chunk).expect(written);
                out.extend_from_slice(&(block.len() as i32).to_be_bytes());
                out.extend_from_slice(&block);
            }
            out
        }
    }
}

fn put_varint(out: &mut BytesMut, value: i32) {
    put_unsigned(out, ((value << 1) ^ (value >> 31)) as u32 as u64);
}

fn put_varlong(out: &mut BytesMut, value: i64) {
    put_unsigned(out, ((value << 1) ^ (value >> 63)) as u64);
}

fn put_unsigned(out: &mut BytesMut, mut value: u64) {
    while value >= 0x80 {
        out.put_u8((value as u8) | 0x80);
        value >>= 7;
    }
    out.put_u8(value as u8);
}

fn put_nullable(out: &mut BytesMut, bytes: Option<&[u8]>) {
    match bytes {
        None => put_varint(out, -1),
        Some(b) => {
            put_varint(out, b.len() as i32);
            out.extend_from_slice(b);
        }
    }
}

/// A cursor over bytes whose every read checks that the bytes are there.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], RecordsError> {
        if self.0.len() < n {
            return Err(RecordsError::Truncated(what));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], RecordsError> {
        Ok(self.take(N, "a batch header")?.try_into().expect("N bytes"))
    }

    fn i8(&mut self) -> Result<i8, RecordsError> {
        Ok(i8::from_be_bytes(self.array()?))
    }

    fn i16(&mut self) -> Result<i16, RecordsError> {
        Ok(i16::from_be_bytes(self.array()?))
    }

    fn i32(&mut self) -> Result<i32, RecordsError> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, RecordsError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64, RecordsError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    fn unsigned(&mut self, max_bytes: usize) -> Result<u64, RecordsError> {
        let mut value = 0u64;
        for i in 0..max_bytes {
            let byte = self.take(1, "a varint")?[0];
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(RecordsError::Varint)
    }

    fn varint(&mut self) -> Result<i32, RecordsError> {
        let raw = u32::try_from(self.unsigned(5)?).map_err(|_| RecordsError::Varint)?;
        Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32))
    }

    fn varlong(&mut self) -> Result<i64, RecordsError> {
        let raw = self.unsigned(10)?;
        Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
    }

    fn nullable_bytes(&mut self, what: &'static str) -> Result<Option<Vec<u8>>, RecordsError> {
        let length = self.varint()?;
        match length {
            -1 => Ok(None),
            n if n < 0 => Err(RecordsError::Length(what, i64::from(n))),
            n => Ok(Some(self.take(n as usize, what)?.to_vec())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn record(offset_delta: i32, key: &str, value: &str) -> BatchRecord {
        BatchRecord {
            offset_delta,
            timestamp_delta: i64::from(offset_delta),
            key: Some(key.as_bytes().to_vec()),
            value: Some(value.as_bytes().to_vec()),
            headers: vec![],
        }
    }

    fn batch(records: Vec<BatchRecord>, compression: Compression) -> Batch {
        Batch {
            base_offset: 0,
            partition_leader_epoch: -1,
            compression,
            timestamp_type_log_append: false,
            transactional: false,
            control: false,
            last_offset_delta: records.len() as i32 - 1,
            base_timestamp: 1_700_000_000_000,
            max_timestamp: 1_700_000_000_000 + records.len() as i64 - 1,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            records,
        }
    }

    fn written(batch: &Batch) -> Vec<u8> {
        let mut out = BytesMut::new();
        write_batch(&mut out, batch);
        out.to_vec()
    }

    /// Batches kafka-python 3.0.12's `DefaultRecordBatchBuilder` wrote, one per codec
    /// (`gateway/tests/golden/make_golden.py`): producer id 1000, epoch 0, base sequence 0;
    /// `(b"k1", b"v1", [("h", b"1"), ("h", b"2")])` at 1700000000000, `(None, b"v2", [])` at
    /// 1700000000005, and (compressed ones) eight more `key-i` records.
    const GOLDEN: [(Compression, &[u8]); 5] = [
        (
            Compression::None,
            include_bytes!("../tests/golden/golden-none.bin"),
        ),
        (
            Compression::Gzip,
            include_bytes!("../tests/golden/golden-gzip.bin"),
        ),
        (
            Compression::Snappy,
            include_bytes!("../tests/golden/golden-snappy.bin"),
        ),
        (
            Compression::Lz4,
            include_bytes!("../tests/golden/golden-lz4.bin"),
        ),
        (
            Compression::Zstd,
            include_bytes!("../tests/golden/golden-zstd.bin"),
        ),
    ];

    #[test]
    fn kafka_python_batches_of_every_codec_read() {
        for (codec, bytes) in GOLDEN {
            let batches = read_batches(bytes, 1 << 20).unwrap_or_else(|e| panic!("{codec:?}: {e}"));
            assert_eq!(batches.len(), 1);
            let b = &batches[0];
            assert_eq!(b.compression, codec);
            assert_eq!(
                (b.producer_id, b.producer_epoch, b.base_sequence),
                (1000, 0, 0)
            );
            let count = if codec == Compression::None { 2 } else { 10 };
            assert_eq!(b.records.len(), count);
            assert_eq!(b.last_offset_delta, count as i32 - 1);
            assert_eq!(b.base_timestamp, 1_700_000_000_000);
            assert_eq!(b.records[0].key.as_deref(), Some(&b"k1"[..]));
            let headers: Vec<_> = b.records[0]
                .headers
                .iter()
                .map(|h| (h.key.as_str(), h.value.clone()))
                .collect();
            assert_eq!(
                headers,
                vec![("h", Some(b"1".to_vec())), ("h", Some(b"2".to_vec()))],
                "duplicate header keys kept in order"
            );
            assert_eq!(b.records[1].key, None);
            assert_eq!(b.records[1].value.as_deref(), Some(&b"v2"[..]));
            assert_eq!(b.records[1].timestamp_delta, 5);
            if codec == Compression::None {
                assert_eq!(written(b), bytes, "the writer writes what the client wrote");
            } else {
                // Compressed bytes differ by library; what they hold must not.
                assert_eq!(read_batches(&written(b), 1 << 20).unwrap(), batches);
            }
        }
    }

    #[test]
    fn every_codec_round_trips() {
        let records: Vec<_> = (0..500)
            .map(|i| record(i, &format!("key-{i}"), &"value ".repeat(i as usize % 40)))
            .collect();
        for codec in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let b = batch(records.clone(), codec);
            let bytes = written(&b);
            assert_eq!(read_batches(&bytes, 1 << 20).unwrap(), vec![b], "{codec:?}");
        }
    }

    #[test]
    fn raw_snappy_is_read_too() {
        // librdkafka writes snappy without xerial's framing.
        let b = batch(
            vec![record(0, "k", "v"), record(1, "k", "w")],
            Compression::None,
        );
        let plain = written(&b);
        let raw = snap::raw::Encoder::new()
            .compress_vec(&plain[BATCH_HEADER_BYTES..])
            .unwrap();
        let mut bytes = plain[..BATCH_HEADER_BYTES].to_vec();
        bytes.extend_from_slice(&raw);
        bytes[21..23].copy_from_slice(&2i16.to_be_bytes());
        let length = (bytes.len() - LOG_OVERHEAD) as i32;
        bytes[8..12].copy_from_slice(&length.to_be_bytes());
        let crc = crc32c::crc32c(&bytes[CRC_START..]);
        bytes[17..21].copy_from_slice(&crc.to_be_bytes());
        let read = read_batches(&bytes, 1 << 20).unwrap();
        assert_eq!(read[0].records, b.records);
        assert_eq!(read[0].compression, Compression::Snappy);
    }

    #[test]
    fn a_stretched_batch_spans_offsets_it_does_not_carry() {
        // Offsets 10..=19: records at 12 and 15 only, the rest markers or aborted.
        let mut b = batch(
            vec![record(2, "a", "x"), record(5, "b", "y")],
            Compression::None,
        );
        b.base_offset = 10;
        b.last_offset_delta = 9;
        let bytes = written(&b);
        assert_eq!(i32::from_be_bytes(bytes[23..27].try_into().unwrap()), 9);
        assert_eq!(read_batches(&bytes, 1 << 20).unwrap(), vec![b.clone()]);
        // And an empty one.
        b.records.clear();
        let bytes = written(&b);
        assert_eq!(bytes.len(), BATCH_HEADER_BYTES);
        assert_eq!(read_batches(&bytes, 1 << 20).unwrap(), vec![b]);
    }

    #[test]
    fn bad_bytes_are_refused_with_a_reason() {
        let good = written(&batch(vec![record(0, "k", "v")], Compression::None));
        let mut crc = good.clone();
        *crc.last_mut().unwrap() ^= 1;
        assert!(matches!(
            read_batches(&crc, 1 << 20),
            Err(RecordsError::Crc { .. })
        ));
        let mut magic = good.clone();
        magic[16] = 1;
        assert_eq!(read_batches(&magic, 1 << 20), Err(RecordsError::Magic(1)));
        assert_eq!(
            read_batches(&good[..good.len() - 1], 1 << 20),
            Err(RecordsError::Truncated("a batch"))
        );
        assert_eq!(
            read_batches(&good[..5], 1 << 20),
            Err(RecordsError::Truncated("a batch header"))
        );
        let mut count = good.clone();
        count[57..61].copy_from_slice(&2i32.to_be_bytes());
        let crc = crc32c::crc32c(&count[CRC_START..]);
        count[17..21].copy_from_slice(&crc.to_be_bytes());
        assert_eq!(
            read_batches(&count, 1 << 20),
            Err(RecordsError::Count {
                declared: 2,
                found: 1
            })
        );
        let mut codec = good.clone();
        codec[22] = 7;
        let crc = crc32c::crc32c(&codec[CRC_START..]);
        codec[17..21].copy_from_slice(&crc.to_be_bytes());
        assert_eq!(
            read_batches(&codec, 1 << 20),
            Err(RecordsError::Compression(7))
        );
    }

    #[test]
    fn a_compression_bomb_stops_at_the_cap() {
        let big = vec![record(0, "k", &"a".repeat(1 << 20))];
        for codec in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let bytes = written(&batch(big.clone(), codec));
            assert!(bytes.len() < 64 * 1024, "{codec:?} compresses");
            let error = read_batches(&bytes, 64 * 1024).unwrap_err();
            assert!(
                matches!(
                    error,
                    RecordsError::TooLarge(_) | RecordsError::Decompress(..)
                ),
                "{codec:?}: {error}"
            );
        }
    }

    fn any_record() -> impl Strategy<Value = BatchRecord> {
        let bytes = || proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40));
        (
            any::<i32>(),
            any::<i64>(),
            bytes(),
            bytes(),
            proptest::collection::vec(("[a-z]{0,3}", bytes()), 0..4),
        )
            .prop_map(
                |(offset_delta, timestamp_delta, key, value, headers)| BatchRecord {
                    offset_delta,
                    timestamp_delta,
                    key,
                    value,
                    headers: headers
                        .into_iter()
                        .map(|(key, value)| RecordHeader { key, value })
                        .collect(),
                },
            )
    }

    proptest! {
        #[test]
        fn any_batch_round_trips(
            records in proptest::collection::vec(any_record(), 0..20),
            codec in 0i16..5,
            base_offset in any::<i64>(),
            last_offset_delta in any::<i32>(),
            flags in any::<u8>(),
        ) {
            let mut b = batch(records, Compression::from_attributes(codec).unwrap());
            b.base_offset = base_offset;
            b.last_offset_delta = last_offset_delta;
            b.transactional = flags & 1 != 0;
            b.control = flags & 2 != 0;
            b.timestamp_type_log_append = flags & 4 != 0;
            let bytes = written(&b);
            prop_assert_eq!(read_batches(&bytes, 1 << 24).unwrap(), vec![b]);
        }

        #[test]
        fn any_bytes_give_batches_or_an_error(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = read_batches(&bytes, 1 << 16);
        }

        #[test]
        fn any_corruption_of_a_batch_is_an_error_or_the_same_batch(
            position in any::<prop::sample::Index>(),
            flip in 1u8..,
        ) {
            let b = batch(vec![record(0, "k", "v"), record(1, "k2", "v2")], Compression::Gzip);
            let mut bytes = written(&b);
            let i = position.index(bytes.len());
            bytes[i] ^= flip;
            if let Ok(read) = read_batches(&bytes, 1 << 16) {
                // Only the bytes the CRC does not cover can change unnoticed.
                prop_assert!(i < CRC_START, "a flip at {} went unnoticed", i);
                prop_assert_eq!(read[0].records.clone(), b.records);
            }
        }
    }
}
