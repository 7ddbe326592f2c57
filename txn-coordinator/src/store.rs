//! The coordinator's tables and the statements that read and write them.
//!
//! Two tables, both small:
//!
//! - `txn_coordinator`: one row (`id = 1`) with the producer id, the epochs, the state of the
//!   current or last transaction and when it started. Every state change rewrites this row.
//! - `txn_participant`: the partitions and groups of the current or last transaction, and for
//!   groups whether an offset commit is in flight or of unknown outcome ([`OffsetsCall`]).
//!
//! Deliberately absent: which partitions acknowledged their registration and which participants
//! acknowledged their marker. Both are kept in memory only. After a restart a retried add
//! registers again and every marker is sent again; both are idempotent at the participants, and
//! not writing them halves the storage commits of a transaction (5 instead of 11 for three
//! partitions and one group). The rows are deleted when the
//!   next transaction begins (or an init resets an ended one).
//!
//! Every statement binds fewer than 15 parameters and every integer stays below 2^53
//! (producer ids are asserted to, epochs are `i32`, times are ms since the epoch).

use kafdo_sql::{Param, Row, Sql, SqlError, MAX_SAFE_INTEGER};
use kafdo_types::api::{CleanupPolicy, TopicConfig};
use kafdo_types::rpc::{partition_object_name, PartitionRef};
use kafdo_types::txn::TransactionState;

/// Why the last transaction ended; it picks the answer to a late commit or abort.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum EndReason {
    /// The producer asked (commit or abort).
    Client,
    /// The transaction ran past its timeout; the alarm aborted it.
    Timeout,
    /// A new instance initialized and fenced the old one.
    Fence,
    /// An administrator aborted it by hand (which fences the instance too).
    Admin,
}

impl EndReason {
    fn name(self) -> &'static str {
        match self {
            EndReason::Client => "client",
            EndReason::Timeout => "timeout",
            EndReason::Fence => "fence",
            EndReason::Admin => "admin",
        }
    }

    fn from_name(name: &str) -> Self {
        match name {
            "client" => EndReason::Client,
            "timeout" => EndReason::Timeout,
            "fence" => EndReason::Fence,
            "admin" => EndReason::Admin,
            other => panic!("unknown end reason {other:?} in storage"),
        }
    }
}

impl std::fmt::Display for EndReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The `txn_coordinator` row.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct TxnRow {
    pub transactional_id: String,
    /// Allocated once, by the metadata object, at the first init.
    pub producer_id: Option<i64>,
    /// The epoch a client uses now: the open transaction's, or the next one's.
    pub producer_epoch: i32,
    /// The epoch the last init (or admin abort) returned: every lower epoch is fenced.
    pub fence_epoch: i32,
    pub state: TransactionState,
    /// The epoch of the open, ending or last ended transaction (-1 before the first).
    pub txn_epoch: i32,
    /// Why the last transaction ended (`None` while none has).
    pub end_reason: Option<EndReason>,
    pub transaction_timeout_ms: i64,
    /// When the open transaction began (its first added partition or offsets).
    pub txn_start_ms: Option<i64>,
    /// When the state last changed.
    pub state_ms: i64,
    /// How many times the object has been opened; it makes call ids unique across restarts.
    pub incarnation: u32,
    /// Set once the epochs of `producer_id` are spent (see `CoordinatorConfig::roll_epoch`) and
    /// the last transaction completed: the new producer id the owner of the current epoch goes
    /// on with, at epoch 0. The next transaction or init moves to it (and clears this).
    pub next_producer_id: Option<i64>,
    /// The producer id this transactional id had before its last move, so requests that still
    /// carry it are answered `PRODUCER_FENCED`, not as an unknown id.
    pub previous_producer_id: Option<i64>,
    /// The number of the open, ending or last ended transaction (0 before the first): one
    /// more at every transaction's first add. With the producer id and epoch it names the
    /// transaction at the partitions, where a transaction-version-1 producer's consecutive
    /// transactions share an epoch.
    pub txn_seq: i64,
}

/// Who takes part in a transaction.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Key {
    /// A partition object (a topic incarnation and a partition number).
    Partition { topic_id: String, partition: i32 },
    /// A consumer group object.
    Group(String),
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Key::Partition {
                topic_id,
                partition,
            } => write!(
                f,
                "partition {}",
                partition_object_name(topic_id, *partition)
            ),
            Key::Group(group_id) => write!(f, "group {group_id}"),
        }
    }
}

/// Where a group's transactional offset commits stand.
///
/// Calls to a group are numbered ([`Participant::offsets_sequence`]) and the group keeps the
/// offsets of the highest number, so a call that lands late never overwrites newer offsets.
/// The coordinator sends one at a time per group; once the outcome of the latest is unknown (no
/// answer, or the coordinator restarted while it was in flight) the transaction cannot commit
/// until a new offset commit to that group is answered (the client re-sends its offsets), since
/// the unknown one may never land.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum OffsetsCall {
    /// No offset commit in flight; every one sent was answered.
    Settled,
    /// One offset commit is in flight.
    InFlight,
    /// The latest offset commit got no answer: it may land later, or never.
    Unknown,
}

impl OffsetsCall {
    fn to_int(self) -> i64 {
        match self {
            OffsetsCall::Settled => 0,
            OffsetsCall::InFlight => 1,
            OffsetsCall::Unknown => 2,
        }
    }

    fn from_int(v: i64) -> Self {
        match v {
            0 => OffsetsCall::Settled,
            1 => OffsetsCall::InFlight,
            2 => OffsetsCall::Unknown,
            other => panic!("unknown offsets call state {other} in storage"),
        }
    }
}

/// A `txn_participant` row.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Participant {
    /// The partition, for partition participants (markers need the whole reference).
    pub partition: Option<PartitionRef>,
    /// Groups only: the transactional offset commits.
    pub offsets: OffsetsCall,
    /// Groups only: the number of the latest offset commit sent in this transaction (0 before
    /// the first). Persisted before the call goes out, so numbers only rise across restarts.
    pub offsets_sequence: i64,
}

impl Participant {
    pub fn key_of(partition: &PartitionRef) -> Key {
        Key::Partition {
            topic_id: partition.topic_id.clone(),
            partition: partition.partition,
        }
    }
}

/// The schema, as migrations (see `kafdo_sql::migrate`): append, never edit.
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS txn_coordinator (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        transactional_id TEXT NOT NULL,
        producer_id INTEGER,
        producer_epoch INTEGER NOT NULL,
        fence_epoch INTEGER NOT NULL,
        state TEXT NOT NULL,
        txn_epoch INTEGER NOT NULL,
        end_reason TEXT,
        transaction_timeout_ms INTEGER NOT NULL,
        txn_start_ms INTEGER,
        state_ms INTEGER NOT NULL,
        incarnation INTEGER NOT NULL,
        next_producer_id INTEGER
    )",
    "CREATE TABLE IF NOT EXISTS txn_participant (
        kind TEXT NOT NULL,
        name TEXT NOT NULL,
        topic TEXT,
        topic_id TEXT,
        partition INTEGER,
        retention_ms INTEGER,
        cleanup_policy TEXT,
        offsets_call INTEGER NOT NULL,
        offsets_sequence INTEGER NOT NULL,
        PRIMARY KEY (kind, name)
    )",
    "ALTER TABLE txn_coordinator ADD COLUMN previous_producer_id INTEGER",
    "ALTER TABLE txn_coordinator ADD COLUMN txn_seq INTEGER NOT NULL DEFAULT 0",
];

pub(crate) fn create_schema(sql: &impl Sql) -> Result<(), SqlError> {
    kafdo_sql::migrate(sql, MIGRATIONS)
}

pub(crate) fn load_row(sql: &impl Sql) -> Result<Option<TxnRow>, SqlError> {
    let Some(row) = sql.first(
        "SELECT transactional_id, producer_id, producer_epoch, fence_epoch, state, txn_epoch,
                end_reason, transaction_timeout_ms, txn_start_ms, state_ms, incarnation,
                next_producer_id, previous_producer_id, txn_seq
         FROM txn_coordinator WHERE id = 1",
        &[],
    )?
    else {
        return Ok(None);
    };
    let state = row.text(4);
    Ok(Some(TxnRow {
        transactional_id: row.text(0).to_owned(),
        producer_id: row.opt_int(1),
        producer_epoch: epoch(&row, 2),
        fence_epoch: epoch(&row, 3),
        state: TransactionState::from_name(state)
            .unwrap_or_else(|| panic!("unknown transaction state {state:?} in storage")),
        txn_epoch: epoch(&row, 5),
        end_reason: row.opt_text(6).map(EndReason::from_name),
        transaction_timeout_ms: row.int(7),
        txn_start_ms: row.opt_int(8),
        state_ms: row.int(9),
        incarnation: u32::try_from(row.int(10)).expect("incarnation fits in u32"),
        next_producer_id: row.opt_int(11),
        previous_producer_id: row.opt_int(12),
        txn_seq: row.int(13),
    }))
}

fn epoch(row: &Row, i: usize) -> i32 {
    i32::try_from(row.int(i)).expect("a stored epoch fits in i32")
}

pub(crate) fn save_row(sql: &impl Sql, row: &TxnRow) -> Result<(), SqlError> {
    for producer_id in [
        row.producer_id,
        row.next_producer_id,
        row.previous_producer_id,
    ]
    .into_iter()
    .flatten()
    {
        assert!((0..=MAX_SAFE_INTEGER).contains(&producer_id));
    }
    sql.run(
        "INSERT OR REPLACE INTO txn_coordinator (id, transactional_id, producer_id,
             producer_epoch, fence_epoch, state, txn_epoch, end_reason, transaction_timeout_ms,
             txn_start_ms, state_ms, incarnation, next_producer_id, previous_producer_id,
             txn_seq)
         VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        &[
            Param::from(&row.transactional_id),
            row.producer_id.into(),
            row.producer_epoch.into(),
            row.fence_epoch.into(),
            row.state.name().into(),
            row.txn_epoch.into(),
            row.end_reason.map(EndReason::name).into(),
            row.transaction_timeout_ms.into(),
            row.txn_start_ms.into(),
            row.state_ms.into(),
            row.incarnation.into(),
            row.next_producer_id.into(),
            row.previous_producer_id.into(),
            row.txn_seq.into(),
        ],
    )
}

pub(crate) fn load_participants(sql: &impl Sql) -> Result<Vec<(Key, Participant)>, SqlError> {
    let rows = sql.exec(
        "SELECT kind, name, topic, topic_id, partition, retention_ms, cleanup_policy,
                offsets_call, offsets_sequence
         FROM txn_participant ORDER BY kind, name",
        &[],
    )?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let offsets = OffsetsCall::from_int(row.int(7));
            let offsets_sequence = row.int(8);
            match row.text(0) {
                "partition" => {
                    let partition = PartitionRef {
                        topic: row.text(2).to_owned(),
                        topic_id: row.text(3).to_owned(),
                        partition: i32::try_from(row.int(4)).expect("partition fits in i32"),
                        config: TopicConfig {
                            retention_ms: row.int(5),
                            cleanup_policy: match row.text(6) {
                                "compact" => CleanupPolicy::Compact,
                                "delete" => CleanupPolicy::Delete,
                                other => panic!("unknown cleanup policy {other:?} in storage"),
                            },
                        },
                    };
                    let key = Participant::key_of(&partition);
                    let participant = Participant {
                        partition: Some(partition),
                        offsets,
                        offsets_sequence,
                    };
                    (key, participant)
                }
                "group" => (
                    Key::Group(row.text(1).to_owned()),
                    Participant {
                        partition: None,
                        offsets,
                        offsets_sequence,
                    },
                ),
                other => panic!("unknown participant kind {other:?} in storage"),
            }
        })
        .collect())
}

pub(crate) fn save_participant(
    sql: &impl Sql,
    key: &Key,
    participant: &Participant,
) -> Result<(), SqlError> {
    let (kind, name) = participant_row_key(key);
    let p = participant.partition.as_ref();
    sql.run(
        "INSERT OR REPLACE INTO txn_participant (kind, name, topic, topic_id, partition,
             retention_ms, cleanup_policy, offsets_call, offsets_sequence)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        &[
            kind.into(),
            Param::from(&name),
            p.map(|p| p.topic.as_str()).into(),
            p.map(|p| p.topic_id.as_str()).into(),
            p.map(|p| p.partition).into(),
            p.map(|p| p.config.retention_ms).into(),
            p.map(|p| match p.config.cleanup_policy {
                CleanupPolicy::Delete => "delete",
                CleanupPolicy::Compact => "compact",
            })
            .into(),
            participant.offsets.to_int().into(),
            participant.offsets_sequence.into(),
        ],
    )
}

/// The `(kind, name)` a participant's row is stored under.
fn participant_row_key(key: &Key) -> (&'static str, String) {
    match key {
        Key::Partition {
            topic_id,
            partition,
        } => ("partition", partition_object_name(topic_id, *partition)),
        Key::Group(group_id) => ("group", group_id.clone()),
    }
}

pub(crate) fn delete_participant(sql: &impl Sql, key: &Key) -> Result<(), SqlError> {
    let (kind, name) = participant_row_key(key);
    sql.run(
        "DELETE FROM txn_participant WHERE kind = ? AND name = ?",
        &[kind.into(), Param::from(&name)],
    )
}

pub(crate) fn delete_participants(sql: &impl Sql) -> Result<(), SqlError> {
    sql.run("DELETE FROM txn_participant", &[])
}
