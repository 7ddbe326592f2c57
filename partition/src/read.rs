//! Reads: plan rows from their metadata (no blobs), fetch the planned blobs in one range
//! query, decode, and repeat for a bounded number of rounds until the limits are met. The
//! end is the last stable offset for `read_committed` and the high watermark otherwise;
//! markers, aborted ranges (`read_committed`) and compaction's gaps are skipped.

use std::collections::BTreeMap;

use kafdo_sql::{Row, Sql};
use kafdo_types::api::{
    FetchResponse, Isolation, PartitionInfo, ProducerList, ProducerState, TimestampOffset,
};
use kafdo_types::limits::{MAX_FETCH_MAX_BYTES, MAX_FETCH_MAX_RECORDS};
use kafdo_types::rpc::{OffsetForTimestampRequest, PartitionRef, ReadRequest};

use crate::codec::RecordReader;
use crate::compaction::FLAG_OFFSETS;
use crate::schema::{FLAG_CONTROL, FLAG_TRANSACTIONAL};
use crate::{Partition, PartitionError};

/// The most plan-fetch-decode rounds one read runs (each decodes at least one row).
const MAX_READ_ROUNDS: usize = 8;

/// One row of the log as a read plans it (everything but the blob).
#[derive(Clone, Debug)]
struct RowMeta {
    base_offset: i64,
    last_offset: i64,
    producer_id: Option<i64>,
    flags: i64,
    size_bytes: i64,
}

impl<S: Sql> Partition<S> {
    /// Reads from an offset. Never waits: long polling is the adapter's job (it re-reads when
    /// [`Partition::info`] shows new records).
    ///
    /// Returns up to `max_records` records and about `max_bytes` bytes of keys, values and
    /// headers (the first record always, however large, so a reader always progresses).
    /// `read_committed` stops at the last stable offset and skips aborted records;
    /// both isolations skip transaction markers. `next_offset` is where the next read should
    /// start: after the last record returned, or after the markers and aborted records
    /// skipped.
    pub fn read(
        &mut self,
        req: &ReadRequest,
        now_ms: i64,
    ) -> Result<FetchResponse, PartitionError> {
        let _ = now_ms;
        self.check_and_bind(&req.partition)?;
        if req.max_records == 0 {
            return Err(PartitionError::InvalidRequest(
                "max_records must be at least 1".into(),
            ));
        }
        let offset = req.offset;
        if offset < self.log_start_offset || offset > self.high_watermark {
            return Err(PartitionError::OffsetOutOfRange {
                offset,
                log_start_offset: self.log_start_offset,
                high_watermark: self.high_watermark,
            });
        }
        let last_stable_offset = self.last_stable_offset();
        let end = match req.isolation {
            Isolation::ReadCommitted => last_stable_offset,
            Isolation::ReadUncommitted => self.high_watermark,
        };
        let max_records = req.max_records.min(MAX_FETCH_MAX_RECORDS) as usize;
        let max_bytes = req.max_bytes.min(MAX_FETCH_MAX_BYTES) as usize;
        let mut response = FetchResponse {
            records: Vec::new(),
            next_offset: offset,
            high_watermark: self.high_watermark,
            last_stable_offset,
        };
        if offset >= end {
            return Ok(response);
        }

        // Rounds of plan, fetch, decode. The plan estimates the first row's share of bytes, so a
        // round may stop short of the limits; the next round goes on from there. Each round
        // decodes at least one row or hits a limit, and the rounds are capped, so a read is a
        // bounded number of statements.
        let mut bytes = 0usize;
        for _ in 0..MAX_READ_ROUNDS {
            if response.next_offset >= end || response.records.len() >= max_records {
                break;
            }
            let full = self.read_round(
                response.next_offset,
                end,
                req.isolation,
                (max_records, max_bytes),
                &mut bytes,
                &mut response,
            )?;
            if full {
                break;
            }
        }
        assert!(response.next_offset <= end && response.next_offset >= offset);
        assert!(response
            .records
            .windows(2)
            .all(|w| w[0].offset < w[1].offset));
        Ok(response)
    }

    /// One round of a read from `from` (see [`Partition::read`]): plans rows from their
    /// metadata, fetches their blobs and appends records to `response` until a limit
    /// (`(max_records, max_bytes)`, with `bytes` already used) is reached, which it returns.
    fn read_round(
        &self,
        from: i64,
        end: i64,
        isolation: Isolation,
        limits: (usize, usize),
        bytes: &mut usize,
        response: &mut FetchResponse,
    ) -> Result<bool, PartitionError> {
        // Plan: the rows' metadata, without blobs, decides which rows are needed.
        let offset = from;
        let (max_records, max_bytes) = limits;
        // One row more than records wanted: after a compaction gap, the first row found may
        // end before `offset` and hold nothing for this read.
        let row_limit = max_records - response.records.len() + 1;
        let metas: Vec<RowMeta> = self
            .sql
            .exec(
                "SELECT base_offset, last_offset, producer_id, flags, size_bytes FROM batches
                 WHERE base_offset >= coalesce(
                           (SELECT max(base_offset) FROM batches WHERE base_offset <= ?), ?)
                   AND base_offset < ?
                 ORDER BY base_offset LIMIT ?",
                &[
                    offset.into(),
                    offset.into(),
                    end.into(),
                    (row_limit as i64).into(),
                ],
            )?
            .iter()
            .map(|r| RowMeta {
                base_offset: r.int(0),
                last_offset: r.int(1),
                producer_id: r.opt_int(2),
                flags: r.int(3),
                size_bytes: r.int(4),
            })
            .collect();
        // Fewer rows than asked for: every row below `end` is in the plan, so once they are
        // read the reader may go on to `end` (compaction may have removed all that follows).
        let exhausted = metas.len() < row_limit;
        let compacted = self.is_compacted();
        let Some(scan_start) = metas.first().map(|m| m.base_offset) else {
            // Compaction removed every row from `offset` to `end`; anywhere else the log is
            // dense and some row holds `offset`.
            assert!(
                compacted,
                "no log row holds offset {offset} below {end}: offsets are not dense"
            );
            response.next_offset = end;
            return Ok(false);
        };
        assert!(
            scan_start <= offset || compacted,
            "the log has a hole before offset {offset}"
        );
        let aborted: Vec<(i64, i64, i64)> = if isolation == Isolation::ReadCommitted {
            self.sql
                .exec(
                    "SELECT producer_id, first_offset, last_offset FROM aborted_transactions
                     WHERE last_offset >= ? AND first_offset < ?",
                    &[scan_start.into(), end.into()],
                )?
                .iter()
                .map(|r| (r.int(0), r.int(1), r.int(2)))
                .collect()
        } else {
            Vec::new()
        };
        let visible = |m: &RowMeta| {
            if m.flags & FLAG_CONTROL != 0 {
                return false;
            }
            if m.flags & FLAG_TRANSACTIONAL == 0 {
                return true;
            }
            let id = m.producer_id.expect("a transactional row has a producer");
            // A transaction's rows all lie between its first offset and its marker, so a row
            // is either wholly inside an aborted range of its producer or wholly outside.
            !aborted
                .iter()
                .any(|&(a, first, last)| a == id && first <= m.base_offset && m.base_offset <= last)
        };
        let mut planned_records = response.records.len();
        let mut planned_bytes = *bytes;
        let mut last_needed = scan_start;
        for m in &metas {
            last_needed = m.base_offset;
            // A row wholly before `offset` is only the scan's start before a compaction gap.
            if !visible(m) || m.last_offset < offset {
                continue;
            }
            if m.flags & FLAG_OFFSETS != 0 {
                // A rewritten row holds an unknown share of its offsets: count it as one
                // record and all its bytes, so the plan never fetches more bytes than allowed
                // (the record limit still stops the decoding below).
                planned_records += 1;
                planned_bytes += m.size_bytes as usize;
            } else {
                let from = m.base_offset.max(offset);
                let row_records = (m.last_offset - m.base_offset + 1) as usize;
                let used = (m.last_offset - from + 1) as usize;
                planned_records += used;
                planned_bytes += m.size_bytes as usize * used / row_records;
            }
            if planned_records >= max_records || planned_bytes >= max_bytes {
                break;
            }
        }

        // Fetch the blobs of the planned rows (markers carry none worth reading).
        let blobs = self.sql.exec(
            "SELECT base_offset, records FROM batches
             WHERE base_offset >= ? AND base_offset <= ? AND flags & 2 = 0
             ORDER BY base_offset",
            &[scan_start.into(), last_needed.into()],
        )?;
        let mut blobs: BTreeMap<i64, Row> = blobs.into_iter().map(|r| (r.int(0), r)).collect();
        let mut full = false;
        'rows: for m in metas.iter().take_while(|m| m.base_offset <= last_needed) {
            if !visible(m) || m.last_offset < offset {
                response.next_offset = response.next_offset.max(m.last_offset + 1);
                continue;
            }
            let mut row = blobs.remove(&m.base_offset).expect("a planned row's blob");
            let blob = row.take_blob(1);
            let explicit = m.flags & FLAG_OFFSETS != 0;
            let mut reader = if explicit {
                RecordReader::with_offsets(&blob, m.base_offset)
            } else {
                RecordReader::new(&blob, m.base_offset)
            };
            let mut last_decoded = m.base_offset - 1;
            while let Some(record) = reader.next_record() {
                last_decoded = record.offset;
                if record.offset < offset {
                    continue;
                }
                let size = record.size_bytes();
                full = response.records.len() >= max_records
                    || (!response.records.is_empty() && *bytes + size > max_bytes);
                if full {
                    break 'rows;
                }
                *bytes += size;
                response.next_offset = record.offset + 1;
                response.records.push(record);
            }
            assert!(
                last_decoded <= m.last_offset && (explicit || last_decoded == m.last_offset),
                "a log row holds other records than its offsets say"
            );
            // A rewritten row may end in a gap: the reader goes past it.
            response.next_offset = response.next_offset.max(m.last_offset + 1);
        }
        if !full && exhausted && metas.last().is_some_and(|m| m.base_offset == last_needed) {
            // Every row below `end` was read: nothing is left before `end`, not even a gap.
            response.next_offset = response.next_offset.max(end);
        }
        Ok(full)
    }

    /// The first offset at or after `req.timestamp` (Kafka's ListOffsets by timestamp): the
    /// first row, in offset order, whose `max_timestamp` reaches it, then the first record in
    /// it that does, as Kafka searches its time index and then the batch. Offsets at or past
    /// the end of the isolation (the last stable offset, or the high watermark) are not
    /// answered, nor are markers; aborted records are, as in Kafka (a read_committed reader
    /// that starts there skips them). One statement finds the row from the rows' metadata:
    /// it reads no blob but the one row it decodes.
    pub fn offset_for_timestamp(
        &mut self,
        req: &OffsetForTimestampRequest,
    ) -> Result<TimestampOffset, PartitionError> {
        self.check_and_bind(&req.partition)?;
        if req.timestamp < 0 {
            return Err(PartitionError::InvalidRequest(format!(
                "timestamp {} is negative",
                req.timestamp
            )));
        }
        let end = match req.isolation {
            Isolation::ReadCommitted => self.last_stable_offset(),
            Isolation::ReadUncommitted => self.high_watermark,
        };
        let mut after = self.log_start_offset - 1;
        // A row whose only records at or after the timestamp lie past `end` (or before the log
        // start) sends the search on to the next row; every later row starts past `end`.
        loop {
            let rows = self.sql.exec(
                "SELECT base_offset, last_offset, flags, records FROM batches
                 WHERE last_offset > ? AND base_offset < ? AND max_timestamp >= ?
                   AND flags & 2 = 0
                 ORDER BY base_offset LIMIT 1",
                &[after.into(), end.into(), req.timestamp.into()],
            )?;
            let Some(mut row) = rows.into_iter().next() else {
                return Ok(TimestampOffset {
                    offset: None,
                    timestamp: None,
                });
            };
            let (base_offset, last_offset, flags) = (row.int(0), row.int(1), row.int(2));
            let blob = row.take_blob(3);
            let mut reader = if flags & FLAG_OFFSETS != 0 {
                RecordReader::with_offsets(&blob, base_offset)
            } else {
                RecordReader::new(&blob, base_offset)
            };
            while let Some(record) = reader.next_record() {
                if record.offset > after && record.offset < end && record.timestamp >= req.timestamp
                {
                    return Ok(TimestampOffset {
                        offset: Some(record.offset),
                        timestamp: Some(record.timestamp),
                    });
                }
            }
            after = last_offset;
        }
    }

    /// Every producer this partition remembers, by producer id: its epoch, the sequence of its
    /// last record and when it appended, and the first offset of its open transaction (Kafka's
    /// DescribeProducers). Bounded by `max_producers`; read from memory.
    pub fn producers(&self, partition: &PartitionRef) -> Result<ProducerList, PartitionError> {
        self.check_ref(partition)?;
        let producers = self
            .producers
            .iter()
            .map(|(&producer_id, entry)| ProducerState {
                producer_id,
                producer_epoch: entry.producer_epoch,
                last_sequence: entry.batches.back().map_or(-1, |b| b.last_sequence),
                last_timestamp: entry.last_seen_ms,
                current_txn_start_offset: self
                    .transactions
                    .get(&producer_id)
                    .filter(|t| t.open)
                    .and_then(|t| t.first_offset),
            })
            .collect();
        Ok(ProducerList { producers })
    }

    /// The offsets a client sees.
    pub fn info(&self, partition: &PartitionRef) -> Result<PartitionInfo, PartitionError> {
        self.check_ref(partition)?;
        Ok(PartitionInfo {
            log_start_offset: self.log_start_offset,
            high_watermark: self.high_watermark,
            last_stable_offset: self.last_stable_offset(),
        })
    }
}
