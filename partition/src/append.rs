//! Appends: the checks a batch must pass (its size, timestamps, keys on a compacted topic,
//! the producer's sequence and transaction), its rows of at most [`MAX_ROW_BYTES`], and the
//! one storage transaction that writes them with the producer state, a due retention step and
//! the transaction's first offset. Also the bounds on producer state an append applies
//! (expiry and the cap, [`PartitionConfig`]).

use std::collections::BTreeSet;

use kafdo_sql::{Param, Sql, SqlError};
use kafdo_types::api::{CleanupPolicy, PartitionProduceResponse};
use kafdo_types::record::check_records;
use kafdo_types::rpc::{AppendRequest, ProducerBatch};

use crate::codec;
use crate::producer::{ProducerEntry, Verdict};
use crate::schema::{FLAG_TRANSACTIONAL, MAX_ROW_BYTES};
use crate::{check_producer_ids, Partition, PartitionError};

/// How often an append also deletes expired producer state from storage.
pub const EXPIRY_SWEEP_INTERVAL_MS: i64 = 60_000;

/// A row about to be written.
pub(crate) struct NewRow {
    pub(crate) base_offset: i64,
    pub(crate) last_offset: i64,
    pub(crate) max_timestamp: i64,
    pub(crate) size_bytes: usize,
    pub(crate) blob: Vec<u8>,
}

impl<S: Sql> Partition<S> {
    /// A producer's state, unless it expired.
    fn live_producer(&self, producer_id: i64, now_ms: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id).filter(|e| {
            now_ms - e.last_seen_ms <= self.config.producer_expiry_ms
                || self.in_open_transaction(producer_id)
        })
    }

    /// Producers to forget before `producer_id` is stored: the expired ones (every
    /// [`EXPIRY_SWEEP_INTERVAL_MS`]), then, when a new producer would pass
    /// [`PartitionConfig::max_producers`](crate::PartitionConfig::max_producers), the idlest.
    fn producers_to_forget(&self, producer_id: i64, now_ms: i64) -> (BTreeSet<i64>, bool) {
        let mut forget: BTreeSet<i64> = BTreeSet::new();
        let sweep = now_ms - self.last_sweep_ms >= EXPIRY_SWEEP_INTERVAL_MS;
        if sweep {
            // Expired means `last_seen_ms < now_ms - producer_expiry_ms`: a prefix of `idle`.
            let cutoff = now_ms.saturating_sub(self.config.producer_expiry_ms);
            forget.extend(
                self.idle
                    .range(..(cutoff, i64::MIN))
                    .map(|&(_, id)| id)
                    .filter(|&id| id != producer_id && !self.in_open_transaction(id)),
            );
        }
        if !self.producers.contains_key(&producer_id) {
            let excess =
                (self.producers.len() - forget.len() + 1).saturating_sub(self.config.max_producers);
            // The idlest first; producers with open transactions stay, so when only they are
            // left the cap is passed by at most their number (which `max_producers` bounds).
            let victims: Vec<i64> = self
                .idle
                .iter()
                .map(|&(_, id)| id)
                .filter(|&id| {
                    id != producer_id && !forget.contains(&id) && !self.in_open_transaction(id)
                })
                .take(excess)
                .collect();
            forget.extend(victims);
        }
        (forget, sweep)
    }

    /// Appends a batch. Runs as one storage transaction: all records and the producer state, or
    /// nothing.
    pub fn append(
        &mut self,
        req: &AppendRequest,
        now_ms: i64,
    ) -> Result<PartitionProduceResponse, PartitionError> {
        let bind = self.check_ref(&req.partition)?;
        let records = &req.records;
        // A compacted topic keeps the latest record per key, so every record needs one. The
        // binding decides once the partition is bound; the first call's topic config before
        // that.
        let compact = match &self.binding {
            Some(b) => b.compact,
            None => req.partition.config.cleanup_policy == CleanupPolicy::Compact,
        };
        check_records(records, compact)?;
        if req.transactional && req.producer.is_none() {
            return Err(PartitionError::InvalidRequest(
                "a transactional batch needs producer_id, producer_epoch and base_sequence".into(),
            ));
        }
        let count = records.len() as i64;
        let base_offset = self.high_watermark;
        let last_offset = base_offset + count - 1;

        // The producer's verdict first: a retry of a remembered batch is answered before any
        // other check, since its records are already in the log.
        let mut new_producer = None;
        let mut txn_first_write = false;
        if let Some(p) = &req.producer {
            check_producer_ids(p.producer_id, p.producer_epoch)?;
            // Before anything else about the producer, a retry included: an id nobody was
            // handed out yet must leave no state here, or its owner's first batch would be
            // answered as a duplicate of the claimant's and never written.
            if p.producer_id >= req.producer_ids_below {
                return Err(PartitionError::UnknownProducerId(format!(
                    "producer id {} was never handed out (ids below {} were)",
                    p.producer_id, req.producer_ids_below
                )));
            }
            if p.base_sequence < 0 {
                return Err(PartitionError::InvalidRequest(format!(
                    "base_sequence must be non-negative, got {}",
                    p.base_sequence
                )));
            }
            let entry = self.live_producer(p.producer_id, now_ms);
            match ProducerEntry::check(entry, p, records.len())? {
                Verdict::Duplicate(b) => {
                    return Ok(PartitionProduceResponse {
                        base_offset: b.base_offset,
                        last_offset: b.last_offset,
                        duplicate: true,
                    })
                }
                Verdict::Append => {}
            }
            txn_first_write = self.check_transaction(p, req.transactional)?;
            new_producer = Some((
                p.producer_id,
                ProducerEntry::record(entry, p, base_offset, last_offset, now_ms),
            ));
        }
        let (forget, swept) = match &new_producer {
            Some((id, _)) => self.producers_to_forget(*id, now_ms),
            None => (BTreeSet::new(), false),
        };

        let retention = if now_ms - self.last_retention_ms >= self.config.retention_interval_ms {
            Some(self.retention_plan(now_ms)?)
        } else {
            None
        };
        let rows = split_rows(req, base_offset, now_ms);
        let flags = if req.transactional {
            FLAG_TRANSACTIONAL
        } else {
            0
        };
        self.sql.transaction(|| {
            if bind {
                self.bind_sql(&req.partition, false)?;
            }
            if let Some((Some(start), _)) = retention {
                self.retention_sql(start)?;
            }
            for row in &rows {
                self.insert_row(row, req.producer.as_ref(), flags)?;
            }
            for id in &forget {
                self.sql
                    .run("DELETE FROM producers WHERE producer_id = ?", &[(*id).into()])?;
            }
            if let Some((id, entry)) = &new_producer {
                self.sql.run(
                    "INSERT INTO producers (producer_id, producer_epoch, last_seen_ms, batches)
                     VALUES (?, ?, ?, ?)
                     ON CONFLICT (producer_id) DO UPDATE SET
                         producer_epoch = excluded.producer_epoch,
                         last_seen_ms = excluded.last_seen_ms,
                         batches = excluded.batches",
                    &[
                        (*id).into(),
                        entry.producer_epoch.into(),
                        entry.last_seen_ms.into(),
                        Param::Blob(&codec::encode_batches(&entry.batches)),
                    ],
                )?;
            }
            if txn_first_write {
                self.sql.run(
                    "UPDATE transactions SET first_offset = ?, updated_ms = ? WHERE producer_id = ?",
                    &[
                        base_offset.into(),
                        now_ms.into(),
                        req.producer.expect("checked").producer_id.into(),
                    ],
                )?;
            }
            Ok::<_, PartitionError>(())
        })?;

        // Committed: now memory follows.
        if bind {
            self.bind_memory(&req.partition);
        }
        self.high_watermark = last_offset + 1;
        for id in &forget {
            let entry = self.producers.remove(id).expect("a producer to forget");
            self.idle.remove(&(entry.last_seen_ms, *id));
        }
        if swept {
            self.last_sweep_ms = now_ms;
        }
        if let Some((plan, behind)) = retention {
            // A step cut short by its row limit goes on at the next append: waiting a whole
            // interval would let a busy partition outgrow its retention for ever.
            self.last_retention_ms = if behind { i64::MIN / 2 } else { now_ms };
            if let Some(start) = plan {
                self.log_start_offset = start;
            }
        }
        if let Some((id, entry)) = new_producer {
            let last_seen_ms = entry.last_seen_ms;
            if let Some(old) = self.producers.insert(id, entry) {
                self.idle.remove(&(old.last_seen_ms, id));
            }
            self.idle.insert((last_seen_ms, id));
            if txn_first_write {
                let txn = self.transactions.get_mut(&id).expect("an open transaction");
                txn.first_offset = Some(base_offset);
                txn.updated_ms = now_ms;
            }
        }
        self.assert_offsets();
        Ok(PartitionProduceResponse {
            base_offset,
            last_offset,
            duplicate: false,
        })
    }

    pub(crate) fn insert_row(
        &self,
        row: &NewRow,
        producer: Option<&ProducerBatch>,
        flags: i64,
    ) -> Result<(), SqlError> {
        assert!(row.blob.len() <= MAX_ROW_BYTES || row.base_offset == row.last_offset);
        self.sql.run(
            "INSERT INTO batches (base_offset, last_offset, max_timestamp, producer_id,
                 producer_epoch, flags, size_bytes, records)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            &[
                row.base_offset.into(),
                row.last_offset.into(),
                row.max_timestamp.into(),
                producer.map(|p| p.producer_id).into(),
                producer.map(|p| p.producer_epoch).into(),
                flags.into(),
                (row.size_bytes as i64).into(),
                Param::Blob(&row.blob),
            ],
        )
    }
}

/// Encodes a batch's records into rows of at most [`MAX_ROW_BYTES`] (a single record larger
/// than that, at most 1 MiB plus its lengths, gets a row of its own and still fits 2 MB).
fn split_rows(req: &AppendRequest, base_offset: i64, now_ms: i64) -> Vec<NewRow> {
    let mut rows = Vec::new();
    let mut row: Option<NewRow> = None;
    let mut previous_timestamp = 0;
    for (i, r) in req.records.iter().enumerate() {
        let offset = base_offset + i as i64;
        let timestamp = r.timestamp.unwrap_or(now_ms);
        let size = r.size_bytes();
        let encoded_bound = size + codec::record_overhead_bytes(r.headers.len());
        if let Some(current) = &row {
            if current.blob.len() + encoded_bound > MAX_ROW_BYTES {
                rows.push(row.take().expect("a row"));
            }
        }
        let current = row.get_or_insert_with(|| {
            previous_timestamp = 0;
            NewRow {
                base_offset: offset,
                last_offset: offset,
                max_timestamp: timestamp,
                size_bytes: 0,
                blob: Vec::new(),
            }
        });
        codec::encode_record(
            &mut current.blob,
            previous_timestamp,
            timestamp,
            r.key.as_deref(),
            r.value.as_deref(),
            &r.headers,
        );
        previous_timestamp = timestamp;
        current.last_offset = offset;
        current.max_timestamp = current.max_timestamp.max(timestamp);
        current.size_bytes += size;
    }
    rows.extend(row);
    rows
}
