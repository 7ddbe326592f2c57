//! Idempotent HTTP ingestion: the core of the `IdempotencyKey` object.
//!
//! `POST /v1/topics/{t}/records` with an `Idempotency-Key` header must create its records
//! exactly once, however often the client retries, whether the records span one partition or
//! many, and whether the Worker or any object restarts between the attempts. The IETF draft
//! (`draft-ietf-httpapi-idempotency-key-header`) fixes the answers: the same key with the same
//! body returns the first answer; the same key with another body is an error (422 here,
//! `IDEMPOTENCY_KEY_REUSED`); a retry while the first request is still being processed is a
//! conflict (409, `IDEMPOTENCY_KEY_IN_FLIGHT`).
//!
//! # Where the key lives, and why nothing can be duplicated or lost
//!
//! Each (topic, key) is its own Durable Object, so keys never contend with each other and
//! nothing global grows with them. The object holds one row: the request's fingerprint, a
//! **producer id reserved for this key**, the attempt number and lease, and, once known, the
//! answer. The Worker drives a keyed request like this:
//!
//! 1. [`IdempotencyKey::begin`]: the first call stores the fingerprint and the producer id the
//!    Worker proposes (taken from a block the metadata object handed out, so unique for ever).
//!    A later call with the same fingerprint gets the *stored* producer id back, or the stored
//!    answer if there is one.
//! 2. The Worker routes the records deterministically (the key's partition, or for null keys a
//!    partition derived from the fingerprint, never a random one) and appends one batch per
//!    partition as an idempotent producer: `producer_id` = the key's, epoch 0, base sequence 0.
//! 3. [`IdempotencyKey::complete`] stores the answer (the offsets).
//!
//! Every attempt sends *the same batches with the same producer id and sequences*. A partition
//! that already holds a batch answers a retry with the original offsets (`duplicate: true`) and
//! writes nothing; a partition that never got it appends it. So whichever step a crash
//! interrupts — before any append, after some of them, after all of them but before
//! `complete` — the next attempt finishes the job with exactly one copy of every record, and
//! the answer it stores is the same one the first attempt would have stored. Nothing is lost
//! either: an attempt that acknowledged the client had stored the answer first.
//!
//! The lease only serves the draft's 409: while an attempt is in flight (lease not expired) a
//! concurrent one is refused. A Worker that fails cleanly releases the lease at once; one that
//! dies leaves it to expire after [`DEFAULT_LEASE_MS`]. Even two attempts running at once would
//! be safe, since both drive the same idempotent batches.
//!
//! The limit of the argument: partitions keep producer state for a bounded time and number of
//! producers (see `design/partition.md`). A crashed attempt retried after the partition evicted
//! the key's producer would append again. Retries inside the lease window are far inside both
//! bounds; the answer, once stored, is served from here and never touches partitions again.
//!
//! Keys expire [`DEFAULT_KEY_TTL_MS`] (24 h) after their first use: an alarm deletes the row,
//! and a key used after expiry starts afresh.

#![warn(missing_docs)]

use kafdo_sql::{Param, Sql, SqlError};
use kafdo_types::api::RecordOffset;
use kafdo_types::rpc::ProducerBatch;
use kafdo_types::ErrorCode;

/// How long a key is remembered after its first use: 24 hours, the draft's usual choice.
pub const DEFAULT_KEY_TTL_MS: i64 = 24 * 60 * 60 * 1000;

/// How long an attempt holds the key before another may take over.
pub const DEFAULT_LEASE_MS: i64 = 30_000;

/// The longest key accepted, in bytes.
pub const MAX_KEY_BYTES: usize = 255;

/// The most offsets one stored answer holds (one per record of the request).
pub const MAX_ANSWER_OFFSETS: usize = kafdo_types::limits::MAX_RECORDS_PER_REQUEST;

/// Why a keyed request was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IngestError {
    /// The key was used before with a different request body.
    #[error("the Idempotency-Key was already used with a different request body")]
    KeyReused,
    /// The first request with this key is still being processed.
    #[error(
        "a request with this Idempotency-Key is still in flight; retry after {retry_after_ms} ms"
    )]
    InFlight {
        /// When the current attempt's lease ends.
        retry_after_ms: i64,
    },
    /// The key is empty, too long or not printable ASCII.
    #[error("invalid Idempotency-Key: {0}")]
    InvalidKey(String),
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] SqlError),
}

impl IngestError {
    /// The protocol error code for the answer.
    pub fn code(&self) -> ErrorCode {
        match self {
            IngestError::KeyReused => ErrorCode::IdempotencyKeyReused,
            IngestError::InFlight { .. } => ErrorCode::IdempotencyKeyInFlight,
            IngestError::InvalidKey(_) => ErrorCode::InvalidRequest,
            IngestError::Storage(_) => ErrorCode::UnknownServerError,
        }
    }
}

/// The partition a keyed request's records with neither a partition nor a key go to: picked by
/// the request's fingerprint (its first four bytes), so every retry routes them to the same
/// partition and its batches are recognised as duplicates.
pub fn sticky_partition(fingerprint: &[u8], partitions: i32) -> i32 {
    assert!(partitions > 0, "a topic has at least one partition");
    let seed = u32::from_be_bytes(fingerprint[..4].try_into().expect("a digest"));
    (seed % partitions as u32) as i32
}

/// The producer fields of a keyed request's batch to one partition: the key's producer id,
/// epoch 0, base sequence 0 (one batch per partition and attempt, so a retry of the same
/// attempt, or a later attempt with the same producer id, is the same batch: a duplicate).
pub fn producer_batch(producer_id: i64) -> ProducerBatch {
    ProducerBatch {
        producer_id,
        producer_epoch: 0,
        base_sequence: 0,
    }
}

/// Checks an `Idempotency-Key` header value: 1 to 255 bytes of visible ASCII.
pub fn validate_key(key: &str) -> Result<(), IngestError> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(IngestError::InvalidKey(format!(
            "a key has 1 to {MAX_KEY_BYTES} bytes, this one has {}",
            key.len()
        )));
    }
    if !key.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
        return Err(IngestError::InvalidKey(
            "a key holds visible ASCII characters only".into(),
        ));
    }
    Ok(())
}

/// A keyed request as the Worker presents it to [`IdempotencyKey::begin`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BeginRequest {
    /// A digest of the decoded request (so JSON and CBOR, or re-serialized JSON, of the same
    /// records match).
    pub fingerprint: Vec<u8>,
    /// A fresh producer id the Worker proposes; kept only if the key is new.
    pub producer_id: i64,
    /// How long this attempt holds the key.
    pub lease_ms: i64,
    /// How long the key is remembered.
    pub ttl_ms: i64,
    /// The topic's partition count as this attempt sees it; the key keeps the first attempt's,
    /// so every attempt routes the same records to the same partitions even if partitions were
    /// added in between.
    pub partitions: i32,
}

/// What the Worker does next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Begin {
    /// Drive the request: append with this producer id (epoch 0, sequence 0 per partition),
    /// then call [`IdempotencyKey::complete`] with this attempt number.
    Proceed {
        /// The key's producer id.
        producer_id: i64,
        /// This attempt's number, for `complete` and `release`.
        attempt: i64,
        /// The partition count to route with: the first attempt's.
        partitions: i32,
    },
    /// The request was answered before: answer the same.
    Done {
        /// The stored offsets, in request order.
        offsets: Vec<RecordOffset>,
    },
}

const MIGRATIONS: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS idempotency_key (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    fingerprint BLOB NOT NULL,
    producer_id INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    lease_until_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    answer BLOB
)",
    // The partition count the first attempt routed with (0: a key from before, which then
    // routes with the count of the attempt that resumes it).
    "ALTER TABLE idempotency_key ADD COLUMN partitions INTEGER NOT NULL DEFAULT 0",
];

/// One key's state: the single row of its object.
pub struct IdempotencyKey<S: Sql> {
    sql: S,
}

impl<S: Sql> IdempotencyKey<S> {
    /// Opens the key's storage.
    pub fn open(sql: S) -> Result<Self, IngestError> {
        kafdo_sql::migrate(&sql, MIGRATIONS)?;
        Ok(Self { sql })
    }

    /// Starts or resumes an attempt. See the module docs for the protocol.
    pub fn begin(&mut self, req: &BeginRequest, now_ms: i64) -> Result<Begin, IngestError> {
        assert!(req.lease_ms > 0 && req.ttl_ms > req.lease_ms && req.partitions > 0);
        self.sql.transaction(|| {
            let row = self.sql.first(
                "SELECT fingerprint, producer_id, attempt, lease_until_ms, expires_ms, answer,
                        partitions
                 FROM idempotency_key WHERE id = 1",
                &[],
            )?;
            let row = match row {
                Some(row) if row.int(4) > now_ms => row,
                expired_or_none => {
                    // A new key, or one past its expiry that the alarm has not removed yet.
                    if expired_or_none.is_some() {
                        self.sql.run("DELETE FROM idempotency_key", &[])?;
                    }
                    self.sql.run(
                        "INSERT INTO idempotency_key
                         (id, fingerprint, producer_id, attempt, lease_until_ms, expires_ms,
                          partitions)
                         VALUES (1, ?, ?, 1, ?, ?, ?)",
                        &[
                            Param::Blob(&req.fingerprint),
                            req.producer_id.into(),
                            (now_ms + req.lease_ms).into(),
                            (now_ms + req.ttl_ms).into(),
                            req.partitions.into(),
                        ],
                    )?;
                    return Ok(Begin::Proceed {
                        producer_id: req.producer_id,
                        attempt: 1,
                        partitions: req.partitions,
                    });
                }
            };
            if row.blob(0) != req.fingerprint.as_slice() {
                return Err(IngestError::KeyReused);
            }
            if !row.blob(5).is_empty() {
                return Ok(Begin::Done {
                    offsets: decode_offsets(row.blob(5)),
                });
            }
            let lease_until_ms = row.int(3);
            if lease_until_ms > now_ms {
                return Err(IngestError::InFlight {
                    retry_after_ms: lease_until_ms - now_ms,
                });
            }
            // The previous attempt failed or died: take over with the same producer id, so
            // whatever it appended is recognised as a duplicate.
            let attempt = row.int(2) + 1;
            let partitions = match i32::try_from(row.int(6)).expect("a stored partition count") {
                0 => req.partitions,
                pinned => pinned,
            };
            self.sql.run(
                "UPDATE idempotency_key SET attempt = ?, lease_until_ms = ?, partitions = ?
                 WHERE id = 1",
                &[
                    attempt.into(),
                    (now_ms + req.lease_ms).into(),
                    partitions.into(),
                ],
            )?;
            Ok(Begin::Proceed {
                producer_id: row.int(1),
                attempt,
                partitions,
            })
        })
    }

    /// Stores the answer of a finished attempt. Any attempt may complete: all of them drive the
    /// same batches, so all of them compute the same offsets. `producer_id` names the key's
    /// incarnation: a late completion from before an expiry must not answer for the key's next
    /// life.
    pub fn complete(
        &mut self,
        producer_id: i64,
        attempt: i64,
        offsets: &[RecordOffset],
        now_ms: i64,
    ) -> Result<(), IngestError> {
        assert!(offsets.len() <= MAX_ANSWER_OFFSETS);
        let _ = now_ms;
        let answer = encode_offsets(offsets);
        self.sql.transaction(|| {
            let row = self.sql.first(
                "SELECT attempt, answer FROM idempotency_key WHERE id = 1 AND producer_id = ?",
                &[producer_id.into()],
            )?;
            let Some(row) = row else {
                // The key expired while the attempt ran; its records are written, and a retry
                // now is a new request by the draft's rules. Nothing to store.
                return Ok(());
            };
            assert!(attempt <= row.int(0), "an attempt the key never started");
            if !row.blob(1).is_empty() {
                assert_eq!(
                    row.blob(1),
                    answer.as_slice(),
                    "two attempts of one key computed different offsets"
                );
                return Ok(());
            }
            self.sql.run(
                "UPDATE idempotency_key SET answer = ? WHERE id = 1",
                &[Param::Blob(&answer)],
            )?;
            Ok(())
        })
    }

    /// Gives the key back after a failed attempt, so a retry need not wait for the lease.
    /// A release from an older attempt than the current one changes nothing.
    pub fn release(
        &mut self,
        producer_id: i64,
        attempt: i64,
        now_ms: i64,
    ) -> Result<(), IngestError> {
        self.sql.run(
            "UPDATE idempotency_key SET lease_until_ms = ?
             WHERE id = 1 AND producer_id = ? AND attempt = ?",
            &[now_ms.into(), producer_id.into(), attempt.into()],
        )?;
        Ok(())
    }

    /// When the key expires (the adapter sets its alarm here), if it exists.
    pub fn next_alarm_ms(&self) -> Result<Option<i64>, IngestError> {
        let row = self
            .sql
            .first("SELECT expires_ms FROM idempotency_key WHERE id = 1", &[])?;
        Ok(row.map(|r| r.int(0)))
    }

    /// Forgets the key once expired. Returns whether the object is now empty (the adapter may
    /// then delete its storage). An alarm fired early changes nothing.
    pub fn on_alarm(&mut self, now_ms: i64) -> Result<bool, IngestError> {
        self.sql.run(
            "DELETE FROM idempotency_key WHERE expires_ms <= ?",
            &[now_ms.into()],
        )?;
        Ok(self.next_alarm_ms()?.is_none())
    }
}

/// Answers are stored as (partition i32, offset i64) pairs, little-endian: compact, and no
/// serialization format to keep compatible.
fn encode_offsets(offsets: &[RecordOffset]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + offsets.len() * 12);
    // A leading version byte, so an empty answer is still a non-empty blob.
    out.push(1);
    for o in offsets {
        out.extend_from_slice(&o.partition.to_le_bytes());
        out.extend_from_slice(&o.offset.to_le_bytes());
    }
    out
}

fn decode_offsets(blob: &[u8]) -> Vec<RecordOffset> {
    assert_eq!(blob.first(), Some(&1), "unknown answer encoding");
    let body = &blob[1..];
    assert_eq!(body.len() % 12, 0, "a torn answer");
    body.chunks_exact(12)
        .map(|c| RecordOffset {
            partition: i32::from_le_bytes(c[..4].try_into().unwrap()),
            offset: i64::from_le_bytes(c[4..].try_into().unwrap()),
        })
        .collect()
}

#[cfg(test)]
mod tests;
