//! The partition's storage: the tables as append-only migrations ([`kafdo_sql::migrate`]),
//! the row-size limit and the meaning of `batches.flags`. The crate docs describe the tables;
//! `design/partition.md` the choices behind them.
//!
//! A released migration is never edited, only followed by new ones, so a stored partition
//! keeps its log across upgrades.

use kafdo_types::api::CleanupPolicy;

/// The largest records blob one log row holds. A Durable Object row holds at most 2 MB; the
/// margin covers the other columns and the encoding of the largest single record (1 MiB of
/// key, value and headers plus a few bytes of lengths).
pub const MAX_ROW_BYTES: usize = 1_500_000;

/// `batches.flags`: a transactional batch (the row has a producer id and epoch).
pub(crate) const FLAG_TRANSACTIONAL: i64 = 1;
/// `batches.flags`: a control batch, one transaction marker at one offset.
pub(crate) const FLAG_CONTROL: i64 = 2;
/// `batches.flags`: with [`FLAG_CONTROL`], the marker commits (it aborts without).
pub(crate) const FLAG_COMMIT: i64 = 4;

/// The schema, in order. Appended to, never edited (see the module docs).
pub(crate) const MIGRATIONS: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS partition_meta (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        topic_name TEXT NOT NULL,
        topic_id TEXT NOT NULL,
        partition_index INTEGER NOT NULL,
        retention_ms INTEGER NOT NULL,
        cleanup_policy TEXT NOT NULL,
        log_start_offset INTEGER NOT NULL,
        deleted INTEGER NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS batches (
        base_offset INTEGER PRIMARY KEY,
        last_offset INTEGER NOT NULL,
        max_timestamp INTEGER NOT NULL,
        producer_id INTEGER,
        producer_epoch INTEGER,
        flags INTEGER NOT NULL,
        size_bytes INTEGER NOT NULL,
        records BLOB NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS producers (
        producer_id INTEGER PRIMARY KEY,
        producer_epoch INTEGER NOT NULL,
        last_seen_ms INTEGER NOT NULL,
        batches BLOB NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS transactions (
        producer_id INTEGER PRIMARY KEY,
        producer_epoch INTEGER NOT NULL,
        transactional_id TEXT NOT NULL,
        open INTEGER NOT NULL,
        first_offset INTEGER,
        start_ms INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS aborted_transactions (
        producer_id INTEGER NOT NULL,
        first_offset INTEGER NOT NULL,
        last_offset INTEGER NOT NULL,
        PRIMARY KEY (producer_id, first_offset)
    )",
    "CREATE INDEX IF NOT EXISTS aborted_transactions_by_last_offset
        ON aborted_transactions (last_offset)",
    "CREATE TABLE IF NOT EXISTS compaction (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        cleaned_offset INTEGER NOT NULL,
        round_end_offset INTEGER,
        cursor_offset INTEGER NOT NULL,
        round_kept_records INTEGER NOT NULL,
        round_min_tombstone_ms INTEGER,
        clean_records INTEGER NOT NULL,
        min_tombstone_ms INTEGER,
        last_round_ms INTEGER NOT NULL
    )",
    // The coordinator's number of the transaction (transaction version 1 keeps the epoch
    // across transactions: the number tells them apart).
    "ALTER TABLE transactions ADD COLUMN txn_seq INTEGER NOT NULL DEFAULT 0",
];

/// How `partition_meta.cleanup_policy` stores a topic's policy.
pub(crate) fn policy_name(policy: CleanupPolicy) -> &'static str {
    match policy {
        CleanupPolicy::Delete => "delete",
        CleanupPolicy::Compact => "compact",
    }
}
