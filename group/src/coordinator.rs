//! The group coordinator: one instance per group id, a state machine over [`Sql`].
//!
//! See the crate docs for the protocol. Every public step runs inside one
//! [`Sql::transaction`]: it first removes members whose session expired (so an alarm that fires
//! late changes nothing), then does its work, all or nothing.

use std::collections::{BTreeMap, BTreeSet};

use kafdo_sql::{Param, Row, Sql, SqlError, MAX_SAFE_INTEGER};
use kafdo_types::group::{
    Assignor, GroupDescription, GroupState, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest,
    JoinGroupResponse, MemberDescription, OffsetCommitRequest, OffsetFetchQuery,
    OffsetFetchResponse, TopicPartitionCount, DEFAULT_SESSION_TIMEOUT_MS, MAX_GROUP_MEMBERS,
    MAX_GROUP_PARTITIONS, MAX_MEMBER_ID_LEN, MAX_OFFSETS_PER_COMMIT, MAX_OFFSET_METADATA_BYTES,
    MAX_SESSION_TIMEOUT_MS, MAX_TOPICS_PER_MEMBER, MIN_SESSION_TIMEOUT_MS,
};
use kafdo_types::limits::{quoted, valid_id, valid_topic_name, MAX_PARTITIONS};
use kafdo_types::rpc::{
    GroupTxnMarkerRequest, MarkerAck, TopicPartitionOffset, TxnOffsetCommitRequest, TxnResult,
};
use kafdo_types::txn::TopicPartition;

use crate::assignor::{assign, subscribed_partitions, AssignMember, Assignment};
use crate::GroupError;

/// How long the group remembers the last ended epoch of a producer that committed offsets
/// through it (Kafka's `transactional.id.expiration.ms` default, 7 days). The memory refuses a
/// late, duplicated transactional offset commit for a transaction already ended, which would
/// otherwise hang as pending for ever.
pub const TXN_PRODUCER_RETENTION_MS: i64 = 7 * 24 * 60 * 60 * 1000;

/// The most producers that may hold pending transactional offsets in one group at once.
pub const MAX_PENDING_PRODUCERS: usize = 1_000;

/// The most committed offsets one group keeps.
pub const MAX_COMMITTED_OFFSETS: usize = 100_000;

/// One statement per entry: the Durable Object's `exec` would take them together, rusqlite's
/// prepared statements take one at a time.
const MIGRATIONS: &[&str] = &[
    // The group's single row. `next_member_seq` makes member ids deterministic.
    "CREATE TABLE IF NOT EXISTS group_state (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        generation_id INTEGER NOT NULL,
        next_member_seq INTEGER NOT NULL,
        assignor TEXT NOT NULL
    )",
    "INSERT OR IGNORE INTO group_state (id, generation_id, next_member_seq, assignor)
     VALUES (1, 0, 1, 'sticky')",
    // `told_generation`: the generation of the last answer sent to the member.
    // `acked_generation`: the highest generation the member echoed back, proving it applied an
    // answer of that generation.
    "CREATE TABLE IF NOT EXISTS member (
        member_id TEXT PRIMARY KEY,
        group_instance_id TEXT UNIQUE,
        topics TEXT NOT NULL,
        session_timeout_ms INTEGER NOT NULL,
        expires_ms INTEGER NOT NULL,
        told_generation INTEGER NOT NULL,
        acked_generation INTEGER NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS member_expires ON member (expires_ms)",
    // Partition counts of the subscribed topics, as the Worker last passed them in.
    "CREATE TABLE IF NOT EXISTS topic (
        name TEXT PRIMARY KEY,
        partitions INTEGER NOT NULL
    )",
    // One row per partition that has a target member or an owner. `target`: the member the
    // assignor chose. `owner`: the member that may believe it owns the partition (told so and
    // not yet acknowledged a release). `revoke_generation`: set while owner <> target, the
    // generation from which every answer to the owner has left the partition out.
    "CREATE TABLE IF NOT EXISTS partition_assignment (
        topic TEXT NOT NULL,
        partition INTEGER NOT NULL,
        target TEXT,
        owner TEXT,
        revoke_generation INTEGER,
        PRIMARY KEY (topic, partition)
    )",
    "CREATE INDEX IF NOT EXISTS partition_assignment_owner ON partition_assignment (owner)",
    "CREATE INDEX IF NOT EXISTS partition_assignment_target ON partition_assignment (target)",
    "CREATE INDEX IF NOT EXISTS partition_assignment_revoke
     ON partition_assignment (revoke_generation)",
    "CREATE TABLE IF NOT EXISTS committed_offset (
        topic TEXT NOT NULL,
        partition INTEGER NOT NULL,
        committed_offset INTEGER NOT NULL,
        metadata TEXT,
        commit_ms INTEGER NOT NULL,
        PRIMARY KEY (topic, partition)
    )",
    // Offsets of open transactions (KIP-447). One producer has at most one open transaction, so
    // the epoch is a column, not part of the key.
    "CREATE TABLE IF NOT EXISTS pending_offset (
        producer_id INTEGER NOT NULL,
        topic TEXT NOT NULL,
        partition INTEGER NOT NULL,
        producer_epoch INTEGER NOT NULL,
        committed_offset INTEGER NOT NULL,
        metadata TEXT,
        sequence INTEGER NOT NULL,
        PRIMARY KEY (producer_id, topic, partition)
    )",
    "CREATE INDEX IF NOT EXISTS pending_offset_partition ON pending_offset (topic, partition)",
    // The last epoch of each producer whose transaction ended here (see
    // TXN_PRODUCER_RETENTION_MS).
    "CREATE TABLE IF NOT EXISTS txn_producer (
        producer_id INTEGER PRIMARY KEY,
        last_ended_epoch INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL
    )",
];

/// A member row.
#[derive(Clone, Debug)]
struct Member {
    member_id: String,
    group_instance_id: Option<String>,
    topics: BTreeSet<String>,
    session_timeout_ms: i64,
    told_generation: i32,
    acked_generation: i32,
}

const MEMBER_COLUMNS: &str =
    "member_id, group_instance_id, topics, session_timeout_ms, told_generation, acked_generation";

impl Member {
    fn from_row(row: &Row) -> Self {
        Member {
            member_id: row.text(0).to_owned(),
            group_instance_id: row.opt_text(1).map(str::to_owned),
            topics: split_topics(row.text(2)),
            session_timeout_ms: row.int(3),
            told_generation: to_i32(row.int(4)),
            acked_generation: to_i32(row.int(5)),
        }
    }
}

/// Topic names never contain a comma (Kafka's alphabet is `[a-zA-Z0-9._-]`), so a subscription
/// is stored as one comma-joined text.
fn join_topics(topics: &BTreeSet<String>) -> String {
    topics
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(",")
}

fn split_topics(text: &str) -> BTreeSet<String> {
    text.split(',')
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

fn to_i32(v: i64) -> i32 {
    i32::try_from(v).expect("a stored 32-bit value")
}

/// A partition row: who the assignor chose, who may still hold it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Slot {
    target: Option<String>,
    owner: Option<String>,
    revoke_generation: Option<i32>,
}

/// The group's single row.
struct GroupRow {
    generation_id: i32,
    next_member_seq: i64,
    assignor: Assignor,
}

/// The consumer group coordinator of one group. See the crate docs.
pub struct GroupCoordinator<S: Sql> {
    sql: S,
}

impl<S: Sql> GroupCoordinator<S> {
    /// Opens the group's storage (creating the tables on first use). Everything lives in SQL,
    /// so reopening after a restart resumes exactly where the group was.
    pub fn open(sql: S) -> Result<Self, GroupError> {
        kafdo_sql::migrate(&sql, MIGRATIONS)?;
        Ok(Self { sql })
    }

    /// Joins the group, or rejoins with a known `member_id` (to change the subscription), or
    /// takes over a static member's place with a known `group_instance_id`.
    ///
    /// `partition_counts` must hold the partition count of every topic in `req.topics`.
    pub fn join(
        &mut self,
        req: &JoinGroupRequest,
        partition_counts: &[TopicPartitionCount],
        now_ms: i64,
    ) -> Result<JoinGroupResponse, GroupError> {
        let topics = validate_join(req)?;
        let session_timeout_ms = req.session_timeout_ms.unwrap_or(DEFAULT_SESSION_TIMEOUT_MS);
        self.sql.transaction(|| {
            self.expire(now_ms)?;
            let counts_changed = self.apply_counts(partition_counts, Some(&topics))?;
            let mut group = self.group_row()?;
            let by_instance = match &req.group_instance_id {
                Some(instance) => self.member_by_instance(instance)?,
                None => None,
            };
            // The member this join replaces or updates, if any: it does not count as "another
            // member" for the assignor rule below.
            let existing = match &req.member_id {
                Some(member_id) => {
                    let member = self
                        .member(member_id)?
                        .ok_or_else(|| GroupError::UnknownMemberId(member_id.clone()))?;
                    if req.group_instance_id.is_some()
                        && member.group_instance_id != req.group_instance_id
                    {
                        return Err(GroupError::InvalidRequest(format!(
                            "member {member_id:?} has another group_instance_id"
                        )));
                    }
                    Some(member)
                }
                None => by_instance,
            };
            let others = self.member_count()? - usize::from(existing.is_some());
            let mut assignor_changed = false;
            if let Some(assignor) = req.assignor {
                if assignor != group.assignor {
                    if others > 0 {
                        return Err(GroupError::InvalidRequest(format!(
                            "the group uses the {} assignor; only an empty group may change it",
                            group.assignor.name()
                        )));
                    }
                    group.assignor = assignor;
                    assignor_changed = true;
                    self.sql.run(
                        "UPDATE group_state SET assignor = ? WHERE id = 1",
                        &[assignor.name().into()],
                    )?;
                }
            }
            let expires_ms = now_ms + session_timeout_ms;
            let member_id = match (&req.member_id, existing) {
                (Some(_), Some(member)) => {
                    // A rejoin: the subscription or session timeout may change.
                    self.sql.run(
                        "UPDATE member SET topics = ?, session_timeout_ms = ?, expires_ms = ?
                         WHERE member_id = ?",
                        &[
                            join_topics(&topics).as_str().into(),
                            session_timeout_ms.into(),
                            expires_ms.into(),
                            member.member_id.as_str().into(),
                        ],
                    )?;
                    let resubscribed = member.topics != topics;
                    if resubscribed {
                        self.check_partition_limit()?;
                    }
                    if resubscribed || counts_changed || assignor_changed {
                        self.rebalance(false)?;
                    }
                    member.member_id
                }
                (None, Some(old)) => {
                    // A static member restarted: the new incarnation takes over the old one's
                    // place, partitions and progress under a fresh member id, which fences the
                    // old id (its commits now fail with UNKNOWN_MEMBER_ID). No rebalance
                    // unless the subscription changed.
                    let member_id = self.next_member_id(&mut group)?;
                    self.sql.run(
                        "DELETE FROM member WHERE member_id = ?",
                        &[old.member_id.as_str().into()],
                    )?;
                    self.insert_member(
                        &member_id,
                        req.group_instance_id.as_deref(),
                        &topics,
                        session_timeout_ms,
                        expires_ms,
                        old.told_generation,
                        old.acked_generation,
                    )?;
                    for column in ["owner", "target"] {
                        self.sql.run(
                            &format!(
                                "UPDATE partition_assignment SET {column} = ? WHERE {column} = ?"
                            ),
                            &[member_id.as_str().into(), old.member_id.as_str().into()],
                        )?;
                    }
                    if old.topics != topics {
                        self.check_partition_limit()?;
                    }
                    if old.topics != topics || counts_changed || assignor_changed {
                        self.rebalance(false)?;
                    }
                    member_id
                }
                (None, None) => {
                    if others >= MAX_GROUP_MEMBERS {
                        return Err(GroupError::InvalidRequest(format!(
                            "the group has {MAX_GROUP_MEMBERS} members, the most it may have"
                        )));
                    }
                    let member_id = self.next_member_id(&mut group)?;
                    // A new member owns nothing, so it has nothing to acknowledge: generation 0
                    // is below every revocation.
                    self.insert_member(
                        &member_id,
                        req.group_instance_id.as_deref(),
                        &topics,
                        session_timeout_ms,
                        expires_ms,
                        0,
                        0,
                    )?;
                    self.check_partition_limit()?;
                    self.rebalance(true)?;
                    member_id
                }
                (Some(_), None) => unreachable!("a given member id was looked up above"),
            };
            let (generation_id, assignment) = self.answer(&member_id)?;
            Ok(JoinGroupResponse {
                member_id,
                generation_id,
                assignment,
            })
        })
    }

    /// A member's heartbeat. `req.generation_id` acknowledges the last answer the member
    /// applied: partitions that answer (or any earlier one of the same or a later generation)
    /// left out are released, so the group may give them to their new member. The answer is the
    /// member's current assignment.
    ///
    /// `partition_counts` may be empty; counts given for the group's topics replace the stored
    /// ones (a grown topic triggers a rebalance).
    pub fn heartbeat(
        &mut self,
        member_id: &str,
        req: &HeartbeatRequest,
        partition_counts: &[TopicPartitionCount],
        now_ms: i64,
    ) -> Result<HeartbeatResponse, GroupError> {
        self.sql.transaction(|| {
            self.expire(now_ms)?;
            let member = self
                .member(member_id)?
                .ok_or_else(|| GroupError::UnknownMemberId(member_id.to_owned()))?;
            if req.generation_id < 0 || req.generation_id > member.told_generation {
                return Err(GroupError::IllegalGeneration {
                    member_id: member_id.to_owned(),
                    generation_id: req.generation_id,
                    current: member.told_generation,
                });
            }
            // An older generation than the member's latest ack is a delayed or repeated
            // heartbeat: it proves nothing new, and lowering the ack would be harmless but
            // meaningless.
            let acked_generation = member.acked_generation.max(req.generation_id);
            self.sql.run(
                "UPDATE member SET expires_ms = ?, acked_generation = ? WHERE member_id = ?",
                &[
                    (now_ms + member.session_timeout_ms).into(),
                    acked_generation.into(),
                    member_id.into(),
                ],
            )?;
            if self.apply_counts(partition_counts, None)? {
                self.rebalance(false)?;
            }
            self.release(member_id, acked_generation)?;
            let (generation_id, assignment) = self.answer(member_id)?;
            Ok(HeartbeatResponse {
                generation_id,
                assignment,
                state: self.state()?,
            })
        })
    }

    /// A member leaves: it promises to have stopped consuming, so its partitions are free at
    /// once and go to the others.
    pub fn leave(&mut self, member_id: &str, now_ms: i64) -> Result<(), GroupError> {
        self.sql.transaction(|| {
            self.expire(now_ms)?;
            if self.member(member_id)?.is_none() {
                return Err(GroupError::UnknownMemberId(member_id.to_owned()));
            }
            self.remove_member(member_id)?;
            self.rebalance(true)
        })
    }

    /// Commits offsets, fenced by generation and member id: the member must be current
    /// (`generation_id` equal to the generation of the last answer it was sent) and own every
    /// partition it commits (a partition it was told to release counts until it acknowledges).
    pub fn commit_offsets(
        &mut self,
        req: &OffsetCommitRequest,
        now_ms: i64,
    ) -> Result<(), GroupError> {
        validate_offsets(&req.offsets)?;
        self.sql.transaction(|| {
            self.expire(now_ms)?;
            let admin = self.fence(&req.member_id, req.generation_id, &req.offsets)?;
            if admin {
                self.check_offset_room(&req.offsets)?;
            }
            for o in &req.offsets {
                self.sql.run(
                    "INSERT INTO committed_offset
                     (topic, partition, committed_offset, metadata, commit_ms)
                     VALUES (?, ?, ?, ?, ?)
                     ON CONFLICT (topic, partition) DO UPDATE SET
                     committed_offset = excluded.committed_offset,
                     metadata = excluded.metadata, commit_ms = excluded.commit_ms",
                    &[
                        o.topic.as_str().into(),
                        o.partition.into(),
                        o.offset.into(),
                        o.metadata.as_deref().into(),
                        now_ms.into(),
                    ],
                )?;
            }
            Ok(())
        })
    }

    /// The committed offsets, all of them or those `query` asks for. With `require_stable`, a
    /// partition asked for that has pending transactional offsets makes the answer
    /// `UNSTABLE_OFFSET_COMMIT` (retriable); without it, pending offsets are invisible.
    pub fn fetch_offsets(
        &self,
        query: &OffsetFetchQuery,
    ) -> Result<OffsetFetchResponse, GroupError> {
        let filter = query.filter().map_err(GroupError::InvalidRequest)?;
        let wanted = |topic: &str, partition: i32| {
            filter.as_ref().is_none_or(|f| f.contains(topic, partition))
        };
        let topic_param: Param = filter.as_ref().map(|f| f.topic.as_str()).into();
        if query.require_stable {
            let pending = self.sql.exec(
                "SELECT DISTINCT topic, partition FROM pending_offset
                 WHERE ? IS NULL OR topic = ? ORDER BY topic, partition",
                &[topic_param, topic_param],
            )?;
            if let Some(row) = pending.iter().find(|r| wanted(r.text(0), to_i32(r.int(1)))) {
                return Err(GroupError::UnstableOffsetCommit {
                    topic: row.text(0).to_owned(),
                    partition: to_i32(row.int(1)),
                });
            }
        }
        let rows = self.sql.exec(
            "SELECT topic, partition, committed_offset, metadata FROM committed_offset
             WHERE ? IS NULL OR topic = ? ORDER BY topic, partition",
            &[topic_param, topic_param],
        )?;
        let offsets = rows
            .iter()
            .filter(|r| wanted(r.text(0), to_i32(r.int(1))))
            .map(|r| TopicPartitionOffset {
                topic: r.text(0).to_owned(),
                partition: to_i32(r.int(1)),
                offset: r.int(2),
                metadata: r.opt_text(3).map(str::to_owned),
            })
            .collect();
        Ok(OffsetFetchResponse { offsets })
    }

    /// Stores offsets of an open transaction as pending for (producer_id, producer_epoch)
    /// (KIP-447), fenced by generation and member id like a plain commit. They become committed
    /// only with the commit marker ([`GroupCoordinator::txn_marker`]). Per partition, the
    /// offset of the highest `sequence` wins: a late or duplicated earlier call is accepted and
    /// changes nothing there.
    pub fn txn_offset_commit(
        &mut self,
        req: &TxnOffsetCommitRequest,
        now_ms: i64,
    ) -> Result<(), GroupError> {
        validate_offsets(&req.offsets)?;
        if !(0..=MAX_SAFE_INTEGER).contains(&req.producer_id) || req.producer_epoch < 0 {
            return Err(GroupError::InvalidRequest(
                "producer_id and producer_epoch must be non-negative".into(),
            ));
        }
        if !(1..=MAX_SAFE_INTEGER).contains(&req.sequence) {
            return Err(GroupError::InvalidRequest(format!(
                "sequence must be positive, got {}",
                req.sequence
            )));
        }
        self.sql.transaction(|| {
            self.expire(now_ms)?;
            let ended = self.sql.first(
                "SELECT last_ended_epoch FROM txn_producer WHERE producer_id = ?",
                &[req.producer_id.into()],
            )?;
            if let Some(ended) = ended.map(|r| to_i32(r.int(0))) {
                if req.producer_epoch <= ended {
                    // A late or duplicated request of a transaction whose marker already came:
                    // storing it would leave offsets pending for ever.
                    return Err(GroupError::InvalidProducerEpoch {
                        producer_id: req.producer_id,
                        producer_epoch: req.producer_epoch,
                    });
                }
            }
            let newest = self.sql.first(
                "SELECT MAX(producer_epoch) FROM pending_offset WHERE producer_id = ?",
                &[req.producer_id.into()],
            )?;
            if let Some(newest) = newest.and_then(|r| r.opt_int(0)).map(to_i32) {
                if newest > req.producer_epoch {
                    return Err(GroupError::ProducerFenced {
                        producer_id: req.producer_id,
                        producer_epoch: req.producer_epoch,
                    });
                }
                if newest < req.producer_epoch {
                    // The coordinator starts a transaction only after every participant
                    // acknowledged the previous one's marker, so offsets of an older epoch
                    // still here arrived after their marker: drop them.
                    self.sql.run(
                        "DELETE FROM pending_offset WHERE producer_id = ? AND producer_epoch < ?",
                        &[req.producer_id.into(), req.producer_epoch.into()],
                    )?;
                }
            } else {
                let producers = self
                    .sql
                    .first(
                        "SELECT COUNT(DISTINCT producer_id) FROM pending_offset",
                        &[],
                    )?
                    .map_or(0, |r| r.int(0));
                if producers as usize >= MAX_PENDING_PRODUCERS {
                    return Err(GroupError::TooManyPendingTransactions);
                }
            }
            let admin = self.fence(&req.member_id, req.generation_id, &req.offsets)?;
            if admin {
                self.check_offset_room(&req.offsets)?;
            }
            for o in &req.offsets {
                self.sql.run(
                    "INSERT INTO pending_offset
                     (producer_id, topic, partition, producer_epoch, committed_offset, metadata,
                      sequence)
                     VALUES (?, ?, ?, ?, ?, ?, ?)
                     ON CONFLICT (producer_id, topic, partition) DO UPDATE SET
                     producer_epoch = excluded.producer_epoch,
                     committed_offset = excluded.committed_offset,
                     metadata = excluded.metadata,
                     sequence = excluded.sequence
                     WHERE excluded.sequence >= pending_offset.sequence",
                    &[
                        req.producer_id.into(),
                        o.topic.as_str().into(),
                        o.partition.into(),
                        req.producer_epoch.into(),
                        o.offset.into(),
                        o.metadata.as_deref().into(),
                        req.sequence.into(),
                    ],
                )?;
            }
            Ok(())
        })
    }

    /// Ends a transaction's offsets: commit makes the pending offsets of (producer_id,
    /// producer_epoch) committed, abort drops them. Idempotent: a duplicate or late marker finds
    /// nothing pending for that epoch and changes nothing.
    pub fn txn_marker(
        &mut self,
        req: &GroupTxnMarkerRequest,
        now_ms: i64,
    ) -> Result<MarkerAck, GroupError> {
        self.sql.transaction(|| {
            let pid_epoch = [req.producer_id.into(), req.producer_epoch.into()];
            if req.result == TxnResult::Commit {
                self.sql.run(
                    "INSERT INTO committed_offset
                     (topic, partition, committed_offset, metadata, commit_ms)
                     SELECT topic, partition, committed_offset, metadata, ? FROM pending_offset
                     WHERE producer_id = ? AND producer_epoch = ?
                     ON CONFLICT (topic, partition) DO UPDATE SET
                     committed_offset = excluded.committed_offset,
                     metadata = excluded.metadata, commit_ms = excluded.commit_ms",
                    &[now_ms.into(), pid_epoch[0], pid_epoch[1]],
                )?;
            }
            // Offsets of this epoch are settled. Any of an older epoch still here arrived after
            // their own marker (the coordinator ends a transaction only once every participant
            // acknowledged it): they are leftovers and go too.
            self.sql.run(
                "DELETE FROM pending_offset WHERE producer_id = ? AND producer_epoch <= ?",
                &pid_epoch,
            )?;
            self.sql.run(
                "INSERT INTO txn_producer (producer_id, last_ended_epoch, updated_ms)
                 VALUES (?, ?, ?)
                 ON CONFLICT (producer_id) DO UPDATE SET
                 last_ended_epoch = MAX(last_ended_epoch, excluded.last_ended_epoch),
                 updated_ms = excluded.updated_ms",
                &[pid_epoch[0], pid_epoch[1], now_ms.into()],
            )?;
            Ok(MarkerAck {
                marker_offset: None,
            })
        })
    }

    /// The group as `GET /v1/groups/{g}` shows it.
    pub fn describe(&mut self, now_ms: i64) -> Result<GroupDescription, GroupError> {
        self.sql.transaction(|| {
            self.expire(now_ms)?;
            let group = self.group_row()?;
            let rows = self.sql.exec(
                "SELECT topic, partition, target, owner FROM partition_assignment
                 ORDER BY topic, partition",
                &[],
            )?;
            let mut members = Vec::new();
            for member in self.members()? {
                let id = Some(member.member_id.as_str());
                let mut description = MemberDescription {
                    member_id: member.member_id.clone(),
                    group_instance_id: member.group_instance_id.clone(),
                    topics: member.topics.iter().cloned().collect(),
                    assignment: Vec::new(),
                    revoking: Vec::new(),
                    pending: Vec::new(),
                };
                for r in &rows {
                    let tp = TopicPartition {
                        topic: r.text(0).to_owned(),
                        partition: to_i32(r.int(1)),
                    };
                    let (target, owner) = (r.opt_text(2), r.opt_text(3));
                    if owner == id && target == id {
                        description.assignment.push(tp);
                    } else if owner == id {
                        description.revoking.push(tp);
                    } else if target == id {
                        description.pending.push(tp);
                    }
                }
                members.push(description);
            }
            members.sort_by(|a, b| a.member_id.cmp(&b.member_id));
            Ok(GroupDescription {
                state: self.state()?,
                generation_id: group.generation_id,
                assignor: group.assignor,
                members,
            })
        })
    }

    /// Whether the group was ever used: it has members, a generation, or offsets. The Worker
    /// answers `GROUP_ID_NOT_FOUND` for a group that was not (a Durable Object exists as soon
    /// as it is named).
    pub fn exists(&self) -> Result<bool, GroupError> {
        let row = self.sql.first(
            "SELECT 1 WHERE EXISTS (SELECT 1 FROM group_state WHERE generation_id > 0)
             OR EXISTS (SELECT 1 FROM member)
             OR EXISTS (SELECT 1 FROM committed_offset)
             OR EXISTS (SELECT 1 FROM pending_offset)",
            &[],
        )?;
        Ok(row.is_some())
    }

    /// The topics the members subscribe to, so the Worker can look up fresh partition counts
    /// for heartbeats.
    pub fn subscribed_topics(&self) -> Result<Vec<String>, GroupError> {
        let rows = self.sql.exec("SELECT name FROM topic ORDER BY name", &[])?;
        Ok(rows.iter().map(|r| r.text(0).to_owned()).collect())
    }

    /// When the adapter must call [`GroupCoordinator::on_alarm`]: the earliest session expiry,
    /// or when a producer's ended epoch may be forgotten. `None` when nothing is due ever.
    pub fn next_alarm_ms(&self) -> Result<Option<i64>, GroupError> {
        let row = self.sql.first(
            "SELECT MIN(t) FROM (
                SELECT MIN(expires_ms) AS t FROM member
                UNION ALL
                SELECT MIN(updated_ms) + ? AS t FROM txn_producer
                WHERE producer_id NOT IN (SELECT producer_id FROM pending_offset)
             )",
            &[TXN_PRODUCER_RETENTION_MS.into()],
        )?;
        Ok(row.and_then(|r| r.opt_int(0)))
    }

    /// The alarm: removes members whose session expired (their partitions go to the others)
    /// and forgets producers idle for [`TXN_PRODUCER_RETENTION_MS`]. Early, late or repeated
    /// alarms are harmless: only what is due is done.
    pub fn on_alarm(&mut self, now_ms: i64) -> Result<(), GroupError> {
        self.sql.transaction(|| {
            self.expire(now_ms)?;
            self.sql.run(
                "DELETE FROM txn_producer WHERE updated_ms + ? <= ?
                 AND producer_id NOT IN (SELECT producer_id FROM pending_offset)",
                &[TXN_PRODUCER_RETENTION_MS.into(), now_ms.into()],
            )?;
            Ok(())
        })
    }

    // ---- Membership internals ----

    fn group_row(&self) -> Result<GroupRow, GroupError> {
        let row = self
            .sql
            .first(
                "SELECT generation_id, next_member_seq, assignor FROM group_state WHERE id = 1",
                &[],
            )?
            .expect("open() inserts the group row");
        Ok(GroupRow {
            generation_id: to_i32(row.int(0)),
            next_member_seq: row.int(1),
            assignor: Assignor::from_name(row.text(2)).expect("a stored assignor name"),
        })
    }

    fn next_member_id(&self, group: &mut GroupRow) -> Result<String, GroupError> {
        let seq = group.next_member_seq;
        assert!(seq < MAX_SAFE_INTEGER);
        group.next_member_seq += 1;
        self.sql.run(
            "UPDATE group_state SET next_member_seq = ? WHERE id = 1",
            &[group.next_member_seq.into()],
        )?;
        // Zero-padded so that ids sort in join order.
        Ok(format!("member-{seq:010}"))
    }

    fn member(&self, member_id: &str) -> Result<Option<Member>, GroupError> {
        let row = self.sql.first(
            &format!("SELECT {MEMBER_COLUMNS} FROM member WHERE member_id = ?"),
            &[member_id.into()],
        )?;
        Ok(row.as_ref().map(Member::from_row))
    }

    fn member_by_instance(&self, instance: &str) -> Result<Option<Member>, GroupError> {
        let row = self.sql.first(
            &format!("SELECT {MEMBER_COLUMNS} FROM member WHERE group_instance_id = ?"),
            &[instance.into()],
        )?;
        Ok(row.as_ref().map(Member::from_row))
    }

    /// The members in the order the assignors deal in: static members by instance id first (so
    /// a restarted static member keeps its place), then dynamic members by id (join order).
    fn members(&self) -> Result<Vec<Member>, GroupError> {
        let rows = self.sql.exec(
            &format!(
                "SELECT {MEMBER_COLUMNS} FROM member
                 ORDER BY group_instance_id IS NULL, group_instance_id, member_id"
            ),
            &[],
        )?;
        Ok(rows.iter().map(Member::from_row).collect())
    }

    fn member_count(&self) -> Result<usize, GroupError> {
        let row = self.sql.first("SELECT COUNT(*) FROM member", &[])?;
        Ok(row.map_or(0, |r| r.int(0) as usize))
    }

    #[allow(clippy::too_many_arguments)]
    fn insert_member(
        &self,
        member_id: &str,
        group_instance_id: Option<&str>,
        topics: &BTreeSet<String>,
        session_timeout_ms: i64,
        expires_ms: i64,
        told_generation: i32,
        acked_generation: i32,
    ) -> Result<(), GroupError> {
        self.sql.run(
            "INSERT INTO member (member_id, group_instance_id, topics, session_timeout_ms,
             expires_ms, told_generation, acked_generation) VALUES (?, ?, ?, ?, ?, ?, ?)",
            &[
                member_id.into(),
                group_instance_id.into(),
                join_topics(topics).as_str().into(),
                session_timeout_ms.into(),
                expires_ms.into(),
                told_generation.into(),
                acked_generation.into(),
            ],
        )?;
        Ok(())
    }

    /// Removes every member whose session expired at `now_ms`, and rebalances once if any did.
    fn expire(&self, now_ms: i64) -> Result<(), GroupError> {
        let expired = self.sql.exec(
            "SELECT member_id FROM member WHERE expires_ms <= ? ORDER BY member_id",
            &[now_ms.into()],
        )?;
        if expired.is_empty() {
            return Ok(());
        }
        for row in &expired {
            self.remove_member(row.text(0))?;
        }
        self.rebalance(true)
    }

    /// Forgets a member and frees what it owned. For a member that left this is its own
    /// promise; for one whose session expired it rests on the client rule that a consumer stops
    /// consuming once `session_timeout_ms` passed since its last successful heartbeat, which is
    /// before the group's deadline (measured from when the group received that heartbeat).
    fn remove_member(&self, member_id: &str) -> Result<(), GroupError> {
        self.sql.run(
            "UPDATE partition_assignment SET owner = NULL, revoke_generation = NULL
             WHERE owner = ?",
            &[member_id.into()],
        )?;
        self.sql.run(
            "DELETE FROM member WHERE member_id = ?",
            &[member_id.into()],
        )?;
        self.drop_empty_rows()
    }

    /// Stores the partition counts given. With `required`, every topic in it must have a
    /// count (a join); otherwise counts only update topics the group already tracks. Returns
    /// whether any stored count changed.
    fn apply_counts(
        &self,
        counts: &[TopicPartitionCount],
        required: Option<&BTreeSet<String>>,
    ) -> Result<bool, GroupError> {
        let mut given = BTreeMap::new();
        for c in counts {
            if !(0..=MAX_PARTITIONS).contains(&c.partitions) {
                return Err(GroupError::InvalidRequest(format!(
                    "topic {:?} has {} partitions, outside 0..={MAX_PARTITIONS}",
                    c.topic, c.partitions
                )));
            }
            given.insert(c.topic.as_str(), c.partitions);
        }
        if let Some(required) = required {
            if let Some(missing) = required.iter().find(|t| !given.contains_key(t.as_str())) {
                return Err(GroupError::UnknownTopicOrPartition(missing.clone()));
            }
        }
        let mut changed = false;
        for (topic, partitions) in given {
            let stored = self
                .sql
                .first(
                    "SELECT partitions FROM topic WHERE name = ?",
                    &[topic.into()],
                )?
                .map(|r| to_i32(r.int(0)));
            let tracked = stored.is_some() || required.is_some_and(|r| r.contains(topic));
            if tracked && stored != Some(partitions) {
                self.sql.run(
                    "INSERT INTO topic (name, partitions) VALUES (?, ?)
                     ON CONFLICT (name) DO UPDATE SET partitions = excluded.partitions",
                    &[topic.into(), partitions.into()],
                )?;
                changed = true;
            }
        }
        Ok(changed)
    }

    /// Refuses a join that would make the group cover more than [`MAX_GROUP_PARTITIONS`].
    fn check_partition_limit(&self) -> Result<(), GroupError> {
        let subscribed: BTreeSet<String> =
            self.members()?.into_iter().flat_map(|m| m.topics).collect();
        let mut total = 0usize;
        for row in self.sql.exec("SELECT name, partitions FROM topic", &[])? {
            if subscribed.contains(row.text(0)) {
                total += row.int(1) as usize;
            }
        }
        if total > MAX_GROUP_PARTITIONS {
            return Err(GroupError::InvalidRequest(format!(
                "the group would cover {total} partitions, more than {MAX_GROUP_PARTITIONS}"
            )));
        }
        Ok(())
    }

    /// Recomputes the target assignment from the members, their subscriptions and the
    /// partition counts, starting from the current target (the sticky assignor keeps what it
    /// can). Bumps the generation when the target changed or the membership did. Owners are
    /// never changed here: a partition whose target moved away from its owner gets
    /// `revoke_generation` = the new generation, and stays owned until the owner acknowledges.
    fn rebalance(&self, membership_changed: bool) -> Result<(), GroupError> {
        let group = self.group_row()?;
        let members = self.members()?;
        let assign_members: Vec<AssignMember> = members
            .iter()
            .map(|m| AssignMember {
                member_id: m.member_id.clone(),
                topics: m.topics.clone(),
            })
            .collect();
        let subscribed: BTreeSet<&String> = members.iter().flat_map(|m| &m.topics).collect();
        let mut counts = BTreeMap::new();
        for row in self.sql.exec("SELECT name, partitions FROM topic", &[])? {
            let name = row.text(0).to_owned();
            if subscribed.contains(&name) {
                counts.insert(name, to_i32(row.int(1)));
            } else {
                // Nobody subscribes to it any more: forget its count.
                self.sql
                    .run("DELETE FROM topic WHERE name = ?", &[name.as_str().into()])?;
            }
        }
        let mut slots: BTreeMap<TopicPartition, Slot> = BTreeMap::new();
        for row in self.sql.exec(
            "SELECT topic, partition, target, owner, revoke_generation
             FROM partition_assignment",
            &[],
        )? {
            let slot = Slot {
                target: row.opt_text(2).map(str::to_owned),
                owner: row.opt_text(3).map(str::to_owned),
                revoke_generation: row.opt_int(4).map(to_i32),
            };
            assert!(
                slot.target.is_some() || slot.owner.is_some(),
                "a partition row with neither target nor owner is deleted"
            );
            assert_eq!(
                slot.revoke_generation.is_some(),
                slot.owner.is_some() && slot.owner != slot.target,
                "revoke_generation is set exactly while an owner holds a partition it must release"
            );
            let tp = TopicPartition {
                topic: row.text(0).to_owned(),
                partition: to_i32(row.int(1)),
            };
            slots.insert(tp, slot);
        }
        let previous: Assignment = slots
            .iter()
            .filter_map(|(tp, s)| s.target.clone().map(|t| (tp.clone(), t)))
            .collect();
        let target = assign(group.assignor, &assign_members, &counts, &previous);
        assert_eq!(
            target.len(),
            subscribed_partitions(&assign_members, &counts).len()
        );
        if target == previous && !membership_changed {
            return Ok(());
        }
        assert!(group.generation_id < i32::MAX, "generation overflow");
        let generation_id = group.generation_id + 1;
        self.sql.run(
            "UPDATE group_state SET generation_id = ? WHERE id = 1",
            &[generation_id.into()],
        )?;
        let all: BTreeSet<&TopicPartition> = slots.keys().chain(target.keys()).collect();
        for tp in all {
            let old = slots.get(tp).cloned().unwrap_or(Slot {
                target: None,
                owner: None,
                revoke_generation: None,
            });
            let new_target = target.get(tp).cloned();
            // The earliest generation since which answers to the owner leave the partition out
            // is kept: any answer from then on proves the owner was told.
            let revoke_generation = match &old.owner {
                None => None,
                Some(owner) if Some(owner) == new_target.as_ref() => None,
                Some(_) => old.revoke_generation.or(Some(generation_id)),
            };
            let new = Slot {
                target: new_target,
                owner: old.owner.clone(),
                revoke_generation,
            };
            if new.target.is_none() && new.owner.is_none() {
                if slots.contains_key(tp) {
                    self.sql.run(
                        "DELETE FROM partition_assignment WHERE topic = ? AND partition = ?",
                        &[tp.topic.as_str().into(), tp.partition.into()],
                    )?;
                }
            } else if new != old {
                self.sql.run(
                    "INSERT INTO partition_assignment
                     (topic, partition, target, owner, revoke_generation) VALUES (?, ?, ?, ?, ?)
                     ON CONFLICT (topic, partition) DO UPDATE SET target = excluded.target,
                     owner = excluded.owner, revoke_generation = excluded.revoke_generation",
                    &[
                        tp.topic.as_str().into(),
                        tp.partition.into(),
                        new.target.as_deref().into(),
                        new.owner.as_deref().into(),
                        new.revoke_generation.into(),
                    ],
                )?;
            }
        }
        Ok(())
    }

    /// Frees the partitions `member_id` was told to release in an answer of generation
    /// `acked_generation` or earlier: the member has applied that answer, so it no longer
    /// consumes them.
    fn release(&self, member_id: &str, acked_generation: i32) -> Result<(), GroupError> {
        self.sql.run(
            "UPDATE partition_assignment SET owner = NULL, revoke_generation = NULL
             WHERE owner = ? AND revoke_generation <= ?",
            &[member_id.into(), acked_generation.into()],
        )?;
        self.drop_empty_rows()
    }

    /// A released partition that nobody is to get (its topic shrank or lost its last
    /// subscriber) leaves no row behind.
    fn drop_empty_rows(&self) -> Result<(), GroupError> {
        self.sql.run(
            "DELETE FROM partition_assignment WHERE owner IS NULL AND target IS NULL",
            &[],
        )?;
        Ok(())
    }

    /// The answer to `member_id`: grants it every free partition targeted at it, and returns
    /// the current generation and what it owns and keeps. Partitions it must release are left
    /// out, which is how it is told to release them.
    fn answer(&self, member_id: &str) -> Result<(i32, Vec<TopicPartition>), GroupError> {
        let generation_id = self.group_row()?.generation_id;
        self.sql.run(
            "UPDATE partition_assignment SET owner = ? WHERE target = ? AND owner IS NULL",
            &[member_id.into(), member_id.into()],
        )?;
        let rows = self.sql.exec(
            "SELECT topic, partition FROM partition_assignment
             WHERE owner = ? AND target = ? ORDER BY topic, partition",
            &[member_id.into(), member_id.into()],
        )?;
        self.sql.run(
            "UPDATE member SET told_generation = ? WHERE member_id = ?",
            &[generation_id.into(), member_id.into()],
        )?;
        let assignment = rows
            .iter()
            .map(|r| TopicPartition {
                topic: r.text(0).to_owned(),
                partition: to_i32(r.int(1)),
            })
            .collect();
        Ok((generation_id, assignment))
    }

    fn state(&self) -> Result<GroupState, GroupError> {
        if self
            .sql
            .first("SELECT 1 FROM member LIMIT 1", &[])?
            .is_none()
        {
            return Ok(GroupState::Empty);
        }
        // A row's owner differs from its target exactly when it has no owner yet (rows with
        // neither are deleted) or its owner must release it (`revoke_generation` is set): two
        // index probes instead of a scan of every partition.
        let moving = self.sql.first(
            "SELECT 1 WHERE EXISTS (SELECT 1 FROM partition_assignment WHERE owner IS NULL)
             OR EXISTS (SELECT 1 FROM partition_assignment WHERE revoke_generation IS NOT NULL)",
            &[],
        )?;
        Ok(if moving.is_some() {
            GroupState::Reconciling
        } else {
            GroupState::Stable
        })
    }

    // ---- Offset internals ----

    /// Checks that `member_id` at `generation_id` may commit offsets for these partitions.
    /// Returns true for an administrator's commit (generation -1, no member id), which only an
    /// empty group accepts.
    fn fence(
        &self,
        member_id: &str,
        generation_id: i32,
        offsets: &[TopicPartitionOffset],
    ) -> Result<bool, GroupError> {
        if member_id.is_empty() && generation_id == -1 {
            if self.member_count()? > 0 {
                return Err(GroupError::UnknownMemberId(String::new()));
            }
            return Ok(true);
        }
        let member = self
            .member(member_id)?
            .ok_or_else(|| GroupError::UnknownMemberId(member_id.to_owned()))?;
        if generation_id > member.told_generation || generation_id < 0 {
            return Err(GroupError::IllegalGeneration {
                member_id: member_id.to_owned(),
                generation_id,
                current: member.told_generation,
            });
        }
        if generation_id < member.told_generation {
            return Err(GroupError::RebalanceInProgress {
                generation_id,
                current: member.told_generation,
            });
        }
        for o in offsets {
            let owner = self.sql.first(
                "SELECT owner FROM partition_assignment WHERE topic = ? AND partition = ?",
                &[o.topic.as_str().into(), o.partition.into()],
            )?;
            if owner.as_ref().and_then(|r| r.opt_text(0)) != Some(member_id) {
                return Err(GroupError::NotAssigned {
                    member_id: member_id.to_owned(),
                    topic: o.topic.clone(),
                    partition: o.partition,
                });
            }
        }
        Ok(false)
    }

    /// Refuses an administrator's commit that would grow the committed offsets past
    /// [`MAX_COMMITTED_OFFSETS`] (a member's commits are bounded by its assignment).
    fn check_offset_room(&self, offsets: &[TopicPartitionOffset]) -> Result<(), GroupError> {
        let row = self
            .sql
            .first("SELECT COUNT(*) FROM committed_offset", &[])?;
        let stored = row.map_or(0, |r| r.int(0)) as usize;
        if stored + offsets.len() > MAX_COMMITTED_OFFSETS {
            return Err(GroupError::InvalidRequest(format!(
                "the group keeps at most {MAX_COMMITTED_OFFSETS} committed offsets"
            )));
        }
        Ok(())
    }
}

/// Checks a join that any group would refuse, whatever its state: the subscription, the session
/// timeout, the member and instance ids. The Worker runs it before it registers a new group,
/// so a join bound to fail leaves nothing behind; [`GroupCoordinator::join`] runs it again.
pub fn validate_join(req: &JoinGroupRequest) -> Result<BTreeSet<String>, GroupError> {
    let invalid = |m: String| Err(GroupError::InvalidRequest(m));
    if let Some(id) = &req.member_id {
        if !valid_id(id, MAX_MEMBER_ID_LEN) {
            return invalid(format!(
                "member_id {} must have 1 to {MAX_MEMBER_ID_LEN} bytes, no control characters",
                quoted(id)
            ));
        }
    }
    if req.topics.is_empty() || req.topics.len() > MAX_TOPICS_PER_MEMBER {
        return invalid(format!(
            "a member subscribes to 1 to {MAX_TOPICS_PER_MEMBER} topics"
        ));
    }
    if let Some(t) = req.topics.iter().find(|t| !valid_topic_name(t)) {
        return invalid(format!("invalid topic name {}", quoted(t)));
    }
    if let Some(ms) = req.session_timeout_ms {
        if !(MIN_SESSION_TIMEOUT_MS..=MAX_SESSION_TIMEOUT_MS).contains(&ms) {
            return invalid(format!(
                "session_timeout_ms must be within {MIN_SESSION_TIMEOUT_MS}..={MAX_SESSION_TIMEOUT_MS}"
            ));
        }
    }
    if let Some(id) = &req.group_instance_id {
        if !valid_id(id, MAX_MEMBER_ID_LEN) {
            return invalid(format!(
                "group_instance_id must have 1 to {MAX_MEMBER_ID_LEN} bytes, no control characters"
            ));
        }
    }
    Ok(req.topics.iter().cloned().collect())
}

/// Checks offsets that any group would refuse (count, partitions, offsets, metadata). The Worker
/// runs it before an administrator's commit registers a new group.
pub fn validate_offsets(offsets: &[TopicPartitionOffset]) -> Result<(), GroupError> {
    let invalid = |m: String| Err(GroupError::InvalidRequest(m));
    if offsets.is_empty() || offsets.len() > MAX_OFFSETS_PER_COMMIT {
        return invalid(format!(
            "a commit carries 1 to {MAX_OFFSETS_PER_COMMIT} offsets"
        ));
    }
    let mut seen = BTreeSet::new();
    for o in offsets {
        if !valid_topic_name(&o.topic) || o.partition < 0 || o.partition >= MAX_PARTITIONS {
            return invalid(format!("invalid partition {}-{}", o.topic, o.partition));
        }
        if !(0..=MAX_SAFE_INTEGER).contains(&o.offset) {
            return invalid(format!("invalid offset {}", o.offset));
        }
        if o.metadata
            .as_ref()
            .is_some_and(|m| m.len() > MAX_OFFSET_METADATA_BYTES)
        {
            return invalid(format!(
                "offset metadata is limited to {MAX_OFFSET_METADATA_BYTES} bytes"
            ));
        }
        if !seen.insert((&o.topic, o.partition)) {
            return invalid(format!("{}-{} appears twice", o.topic, o.partition));
        }
    }
    Ok(())
}

impl From<SqlError> for GroupError {
    fn from(e: SqlError) -> Self {
        GroupError::Storage(e)
    }
}
