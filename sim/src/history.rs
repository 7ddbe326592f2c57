//! The history: what clients saw (and what the simulator could observe inside objects), as
//! JSON lines, in Jepsen's style.
//!
//! # Operations
//!
//! A *process* is one logical client thread: it has at most one operation outstanding. Each
//! operation is an [`Entry::Invoke`] carrying the [`Request`], followed later by exactly one
//! completion from the same process:
//!
//! - [`Entry::Ok`]: the request succeeded, with its [`Reply`];
//! - [`Entry::Fail`]: the request was refused with an error code. A refusal is definite for
//!   that answer only: an earlier attempt of the same batch may still have landed, so the
//!   checker never concludes "not written" from a failure;
//! - [`Entry::Info`]: the outcome is unknown (a timeout, a lost answer, a crashed client).
//!
//! An invoke with no completion at the end of the history counts as `info`.
//!
//! # Observations
//!
//! [`Entry::Observe`] lines are not client operations: they record what the simulator sees
//! inside objects (a partition's high watermark and last stable offset after each step, the
//! coordinator's epoch and state, where each transaction marker landed), declare how the
//! workload is set up (which group reads which topic into which other topic), mark the moment
//! the system settled before the final scans, and note faults so a trace reads as a story.
//! An end-to-end run records few or none of the internal ones; the checker uses whatever is
//! there.
//!
//! # Values
//!
//! Every record value a client produces is unique across the whole history (`"p3-17"`): a retry
//! sends the same batch with the same values, so a value seen at two offsets is a duplicate and
//! an offset seen with two values is a corrupted log. A read-process-write processor's output
//! record names its input value in [`Request::Produce::sources`]. A keyed produce
//! ([`Request::Ingest`], `Idempotency-Key`) names each record's partition and value; its values
//! belong to that one (topic, key, body), which two processes may both send.
//!
//! One line per event:
//!
//! ```json
//! {"index":4,"time_ms":120,"type":"invoke","process":2,"op":{"f":"produce","topic":"in","partition":0,"producer_id":7,"producer_epoch":0,"base_sequence":0,"values":["p2-0","p2-1"]}}
//! {"index":9,"time_ms":135,"type":"ok","process":2,"reply":{"f":"produce","base_offset":0,"last_offset":1,"duplicate":false}}
//! ```

use std::fmt;
use std::io::{BufRead, Write};

use kafdo_types::api::{Isolation, RecordOffset};
use kafdo_types::rpc::TxnResult;
use kafdo_types::txn::TransactionState;
use kafdo_types::ErrorCode;
use serde::{Deserialize, Serialize};

/// A client thread's number.
pub type Process = u32;

/// One line of the history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Its position in the history, from 0.
    pub index: u64,
    /// Logical time in the simulator; wall-clock ms in an end-to-end run.
    pub time_ms: i64,
    /// What happened.
    #[serde(flatten)]
    pub entry: Entry,
}

/// What one line records.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Entry {
    /// A process sent a request.
    Invoke {
        /// Who.
        process: Process,
        /// What.
        op: Request,
    },
    /// The process's outstanding request succeeded.
    Ok {
        /// Who.
        process: Process,
        /// The answer.
        reply: Reply,
    },
    /// The process's outstanding request was refused.
    Fail {
        /// Who.
        process: Process,
        /// The protocol error code.
        code: ErrorCode,
        /// Details for a person.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        message: String,
    },
    /// The process's outstanding request has an unknown outcome.
    Info {
        /// Who.
        process: Process,
        /// Why the outcome is unknown (timeout, crash).
        reason: String,
    },
    /// Something seen inside the system, or a note about the run.
    Observe {
        /// What was seen.
        observation: Observation,
    },
}

/// A topic partition.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Tp {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
}

impl Tp {
    /// A topic partition.
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        Self {
            topic: topic.into(),
            partition,
        }
    }
}

impl fmt::Display for Tp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.topic, self.partition)
    }
}

/// An offset of a group for one topic partition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupOffset {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The next offset to consume.
    pub offset: i64,
}

/// A record as a reader saw it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadRecord {
    /// Its offset.
    pub offset: i64,
    /// Its value (values are unique strings in a checked workload). For a tombstone (a null
    /// value) the value the workload named it by, carried in its [`TOMBSTONE_HEADER`] header.
    pub value: String,
    /// Its key, on a compacted topic (the workload writes keyless records elsewhere).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Whether it is a tombstone (its value is null).
    #[serde(default, skip_serializing_if = "is_false")]
    pub tombstone: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The header naming a tombstone: a tombstone has no value, so the workload carries the unique
/// name it records in the history (`p3-17`) in this header, which compaction keeps with it.
pub const TOMBSTONE_HEADER: &str = "sim-value";

impl ReadRecord {
    /// The history's view of a record read from a partition: its value as UTF-8, or for a
    /// tombstone the name in its [`TOMBSTONE_HEADER`] header; its key only when it has one.
    pub fn from_record(r: &kafdo_types::Record) -> Self {
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let (value, tombstone) = match &r.value {
            Some(v) => (text(v), false),
            None => (
                r.headers
                    .iter()
                    .find(|h| h.key == TOMBSTONE_HEADER)
                    .and_then(|h| h.value.as_deref())
                    .map(text)
                    .unwrap_or_default(),
                true,
            ),
        };
        Self {
            offset: r.offset,
            value,
            key: r.key.as_deref().map(text),
            tombstone,
        }
    }
}

/// The key of one produced value on a compacted topic (see [`Observation::Keys`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyedValue {
    /// The value (the record's name in the history).
    pub value: String,
    /// The record's key.
    pub key: String,
    /// Whether the record is a tombstone (written with a null value).
    #[serde(default, skip_serializing_if = "is_false")]
    pub tombstone: bool,
}

/// A client request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "f", rename_all = "snake_case")]
pub enum Request {
    /// A batch of records to one partition.
    Produce {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The idempotent or transactional producer.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        producer_id: Option<i64>,
        /// Its epoch.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        producer_epoch: Option<i32>,
        /// The batch's first sequence number.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        base_sequence: Option<i32>,
        /// The transactional id, for a batch inside a transaction.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        transactional_id: Option<String>,
        /// The record values, in order.
        values: Vec<String>,
        /// For a read-process-write output: the input value each record was made from (empty,
        /// or one per value).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        sources: Vec<String>,
    },
    /// A fetch from one partition.
    Fetch {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The first offset wanted.
        offset: i64,
        /// Committed only, or everything.
        isolation: Isolation,
        /// The reader session: one sequential pass over the partition. A consumer that rewinds
        /// (restarts from its committed offset) starts a new session.
        reader: String,
    },
    /// A full read of one partition from the log start to the high watermark (the final scans
    /// after the system settled).
    Scan {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// Committed only, or everything.
        isolation: Isolation,
    },
    /// `GET /v1/topics/{t}/partitions/{p}`: the partition's offsets (a consumer asks for the
    /// log start offset after `OFFSET_OUT_OF_RANGE`, as `auto_offset_reset = earliest` does).
    PartitionOffsets {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
    },
    /// `POST /v1/producers`.
    InitProducer {
        /// For a transactional producer.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        transactional_id: Option<String>,
    },
    /// `POST /v1/transactions/{id}/partitions`.
    AddPartitions {
        /// The transactional id.
        transactional_id: String,
        /// The producer id.
        producer_id: i64,
        /// The epoch.
        producer_epoch: i32,
        /// The partitions.
        partitions: Vec<Tp>,
    },
    /// `POST /v1/transactions/{id}/offsets`.
    AddOffsets {
        /// The transactional id.
        transactional_id: String,
        /// The producer id.
        producer_id: i64,
        /// The epoch.
        producer_epoch: i32,
        /// The group.
        group_id: String,
        /// The member's generation.
        generation_id: i32,
        /// The member.
        member_id: String,
        /// The offsets.
        offsets: Vec<GroupOffset>,
    },
    /// `POST /v1/transactions/{id}/commit` or `/abort`.
    EndTxn {
        /// The transactional id.
        transactional_id: String,
        /// The producer id.
        producer_id: i64,
        /// The epoch of the transaction to end.
        producer_epoch: i32,
        /// Commit (true) or abort.
        commit: bool,
    },
    /// `POST /v1/groups/{g}/offsets` (outside a transaction).
    CommitOffsets {
        /// The group.
        group_id: String,
        /// The member's generation.
        generation_id: i32,
        /// The member.
        member_id: String,
        /// The offsets.
        offsets: Vec<GroupOffset>,
    },
    /// `GET /v1/groups/{g}/offsets`.
    FetchOffsets {
        /// The group.
        group_id: String,
        /// Wait for (or refuse while) transactional offsets are pending.
        require_stable: bool,
    },
    /// `POST /v1/groups/{g}/members` (join).
    JoinGroup {
        /// The group.
        group_id: String,
        /// The member id when rejoining.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        member_id: Option<String>,
        /// The topics to consume.
        topics: Vec<String>,
    },
    /// `POST /v1/groups/{g}/members/{m}/heartbeat`.
    Heartbeat {
        /// The group.
        group_id: String,
        /// The member.
        member_id: String,
        /// The member's generation.
        generation_id: i32,
    },
    /// `DELETE /v1/groups/{g}/members/{m}`.
    LeaveGroup {
        /// The group.
        group_id: String,
        /// The member.
        member_id: String,
    },
    /// `POST /v1/topics/{t}/records` with an `Idempotency-Key` header: records to possibly
    /// several partitions, appended at most once however often the same key and body are sent.
    Ingest {
        /// The topic.
        topic: String,
        /// The `Idempotency-Key`.
        key: String,
        /// The records in request order, each with the partition it is routed to.
        records: Vec<IngestRecord>,
    },
}

/// One record of a keyed ingestion ([`Request::Ingest`]).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct IngestRecord {
    /// The partition the record goes to (explicit, by its key, or the request's sticky one).
    pub partition: i32,
    /// Its value (unique across the history, like every produced value).
    pub value: String,
}

/// A successful answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "f", rename_all = "snake_case")]
pub enum Reply {
    /// Where the batch landed.
    Produce {
        /// The first record's offset.
        base_offset: i64,
        /// The last record's offset.
        last_offset: i64,
        /// Whether the partition recognised a retry.
        duplicate: bool,
    },
    /// Records read by a fetch or a scan.
    Fetch {
        /// The records, in offset order.
        records: Vec<ReadRecord>,
        /// Where the next fetch starts.
        next_offset: i64,
        /// The high watermark the partition reported.
        high_watermark: i64,
        /// The last stable offset the partition reported.
        last_stable_offset: i64,
    },
    /// A partition's offsets.
    PartitionOffsets {
        /// The first offset still in the log.
        log_start_offset: i64,
        /// The offset the next record will get.
        high_watermark: i64,
        /// The last stable offset.
        last_stable_offset: i64,
    },
    /// A producer id and epoch.
    Producer {
        /// The producer id.
        producer_id: i64,
        /// The epoch.
        producer_epoch: i32,
    },
    /// The request took effect (add partitions, add offsets, commit offsets, leave).
    Done,
    /// A transaction ended.
    EndTxn {
        /// `CompleteCommit` or `CompleteAbort`.
        state: TransactionState,
        /// The producer id for the next transaction: the request's, or a new one once its
        /// epochs were spent. `None` (hand-written histories) means the request's.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        producer_id: Option<i64>,
        /// The epoch for the next transaction.
        producer_epoch: i32,
    },
    /// A group's committed offsets.
    Offsets {
        /// The offsets.
        offsets: Vec<GroupOffset>,
    },
    /// A member's view of its group.
    Member {
        /// The member.
        member_id: String,
        /// The generation.
        generation_id: i32,
        /// The partitions it owns in that generation.
        assignment: Vec<Tp>,
    },
    /// Where the records of a keyed ingestion landed, one per record in request order.
    Ingest {
        /// The partitions and offsets.
        offsets: Vec<RecordOffset>,
    },
}

/// Something seen inside the system, or a note about the run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "what", rename_all = "snake_case")]
pub enum Observation {
    /// A partition's offsets after a step.
    PartitionState {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The first offset in the log.
        log_start_offset: i64,
        /// The next offset to be written.
        high_watermark: i64,
        /// The last stable offset.
        last_stable_offset: i64,
    },
    /// A coordinator's persisted producer id, epoch and state after a step.
    Coordinator {
        /// The transactional id.
        transactional_id: String,
        /// The producer id (`-1` before the first init).
        producer_id: i64,
        /// The epoch (`-1` before the first init).
        producer_epoch: i32,
        /// The state.
        state: TransactionState,
    },
    /// A partition acknowledged a transaction marker.
    Marker {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The producer id.
        producer_id: i64,
        /// The epoch of the ended transaction.
        producer_epoch: i32,
        /// Commit or abort.
        result: TxnResult,
        /// Where it landed, `None` when the partition had it already.
        offset: Option<i64>,
    },
    /// A group acknowledged a transaction marker.
    GroupMarker {
        /// The group.
        group_id: String,
        /// The producer id.
        producer_id: i64,
        /// The epoch of the ended transaction.
        producer_epoch: i32,
        /// Commit or abort.
        result: TxnResult,
    },
    /// Declares a read-process-write pipeline: `group_id` consumes `input_topic` and writes one
    /// output record per input record to `output_topic`, committing offsets in the same
    /// transaction.
    Pipeline {
        /// The consumer group.
        group_id: String,
        /// The topic read.
        input_topic: String,
        /// The topic written.
        output_topic: String,
    },
    /// Faults stopped and every transaction settled: the final scans follow.
    Settled,
    /// Declares a compacted topic (`cleanup_policy = compact`) and the delete retention its
    /// partitions keep tombstones for: offsets may have gaps and superseded records go.
    Compacted {
        /// The topic.
        topic: String,
        /// How long a tombstone is kept after its timestamp (at least).
        delete_retention_ms: i64,
    },
    /// Declares a topic with time-based retention (`cleanup_policy = delete` and a finite
    /// `retention_ms`): its partitions delete whole rows from the front of the log once their
    /// newest record is older than `retention_ms`, so the log start offset rises (never past
    /// the last stable offset) and records below it are gone.
    Retention {
        /// The topic.
        topic: String,
        /// How long a record is kept after its timestamp (at least).
        retention_ms: i64,
    },
    /// Declares the key of each value a produce to a compacted topic writes, and which values
    /// are tombstones; recorded just before the produce's invoke (every attempt).
    Keys {
        /// One per value of the produce, in order.
        records: Vec<KeyedValue>,
    },
    /// The metadata object handed out client producer ids: every id below `below` is now
    /// someone's (recorded as the allocation is made).
    ProducerIds {
        /// One past the highest id handed out.
        below: i64,
    },
    /// A fault or a notable step, for the reader of a trace.
    Note {
        /// What happened.
        text: String,
    },
}

/// A history: the events in order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct History {
    /// The events; `events[i].index == i`.
    pub events: Vec<Event>,
}

/// A history file that could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The file could not be read.
    #[error("reading the history: {0}")]
    Io(#[from] std::io::Error),
    /// A line is not an event.
    #[error("line {line}: {error}")]
    Parse {
        /// The line number, from 1.
        line: usize,
        /// What serde said.
        error: serde_json::Error,
    },
}

impl History {
    /// Reads JSON lines (blank lines are skipped). Events are renumbered in file order.
    pub fn read_jsonl(reader: impl BufRead) -> Result<Self, ReadError> {
        let mut events = Vec::new();
        for (i, line) in reader.lines().enumerate() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            let mut event: Event = serde_json::from_str(&line)
                .map_err(|error| ReadError::Parse { line: i + 1, error })?;
            event.index = events.len() as u64;
            events.push(event);
        }
        Ok(Self { events })
    }

    /// Writes JSON lines.
    pub fn write_jsonl(&self, mut writer: impl Write) -> std::io::Result<()> {
        for event in &self.events {
            serde_json::to_writer(&mut writer, event)?;
            writer.write_all(b"\n")?;
        }
        Ok(())
    }

    /// The readable trace: one line per event.
    pub fn trace(&self) -> String {
        let mut out = String::new();
        for event in &self.events {
            out.push_str(&event.to_string());
            out.push('\n');
        }
        out
    }
}

/// Builds a history as a run goes: the simulator records with logical time, an end-to-end run
/// with the wall clock (see [`crate::e2e`]).
#[derive(Debug, Default)]
pub struct Recorder {
    history: History,
}

impl Recorder {
    /// An empty history.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends an entry; returns its index.
    pub fn record(&mut self, time_ms: i64, entry: Entry) -> u64 {
        let index = self.history.events.len() as u64;
        self.history.events.push(Event {
            index,
            time_ms,
            entry,
        });
        index
    }

    /// `process` sends `op`.
    pub fn invoke(&mut self, time_ms: i64, process: Process, op: Request) -> u64 {
        self.record(time_ms, Entry::Invoke { process, op })
    }

    /// `process`'s request succeeded.
    pub fn ok(&mut self, time_ms: i64, process: Process, reply: Reply) -> u64 {
        self.record(time_ms, Entry::Ok { process, reply })
    }

    /// `process`'s request was refused.
    pub fn fail(
        &mut self,
        time_ms: i64,
        process: Process,
        code: ErrorCode,
        message: impl Into<String>,
    ) -> u64 {
        let message = message.into();
        self.record(
            time_ms,
            Entry::Fail {
                process,
                code,
                message,
            },
        )
    }

    /// `process`'s request has an unknown outcome.
    pub fn info(&mut self, time_ms: i64, process: Process, reason: impl Into<String>) -> u64 {
        let reason = reason.into();
        self.record(time_ms, Entry::Info { process, reason })
    }

    /// Something seen inside the system.
    pub fn observe(&mut self, time_ms: i64, observation: Observation) -> u64 {
        self.record(time_ms, Entry::Observe { observation })
    }

    /// The history so far.
    pub fn history(&self) -> &History {
        &self.history
    }

    /// The history.
    pub fn into_history(self) -> History {
        self.history
    }
}

fn isolation_name(isolation: Isolation) -> &'static str {
    match isolation {
        Isolation::ReadCommitted => "rc",
        Isolation::ReadUncommitted => "ru",
    }
}

fn list<T: fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

impl fmt::Display for GroupOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}@{}", self.topic, self.partition, self.offset)
    }
}

impl fmt::Display for ReadRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.offset, self.value)?;
        if let Some(key) = &self.key {
            write!(
                f,
                "[{key}{}]",
                if self.tombstone { " tombstone" } else { "" }
            )?;
        }
        Ok(())
    }
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Request::Produce {
                topic,
                partition,
                producer_id,
                producer_epoch,
                base_sequence,
                transactional_id,
                values,
                sources,
            } => {
                write!(f, "produce {topic}/{partition}")?;
                if let (Some(id), Some(epoch)) = (producer_id, producer_epoch) {
                    write!(f, " pid={id}.{epoch}")?;
                }
                if let Some(seq) = base_sequence {
                    write!(f, " seq={seq}")?;
                }
                if let Some(tid) = transactional_id {
                    write!(f, " txn={tid}")?;
                }
                write!(f, " [{}]", values.join(","))?;
                if !sources.is_empty() {
                    write!(f, " from [{}]", sources.join(","))?;
                }
                Ok(())
            }
            Request::Fetch {
                topic,
                partition,
                offset,
                isolation,
                reader,
            } => write!(
                f,
                "fetch {topic}/{partition}@{offset} {} reader={reader}",
                isolation_name(*isolation)
            ),
            Request::Scan {
                topic,
                partition,
                isolation,
            } => write!(f, "scan {topic}/{partition} {}", isolation_name(*isolation)),
            Request::PartitionOffsets { topic, partition } => {
                write!(f, "partition-offsets {topic}/{partition}")
            }
            Request::InitProducer { transactional_id } => match transactional_id {
                Some(tid) => write!(f, "init-producer txn={tid}"),
                None => write!(f, "init-producer"),
            },
            Request::AddPartitions {
                transactional_id,
                producer_id,
                producer_epoch,
                partitions,
            } => write!(
                f,
                "add-partitions txn={transactional_id} pid={producer_id}.{producer_epoch} [{}]",
                list(partitions)
            ),
            Request::AddOffsets {
                transactional_id,
                producer_id,
                producer_epoch,
                group_id,
                generation_id,
                member_id,
                offsets,
            } => write!(
                f,
                "add-offsets txn={transactional_id} pid={producer_id}.{producer_epoch} \
                 group={group_id} gen={generation_id} member={member_id} [{}]",
                list(offsets)
            ),
            Request::EndTxn {
                transactional_id,
                producer_id,
                producer_epoch,
                commit,
            } => write!(
                f,
                "{} txn={transactional_id} pid={producer_id}.{producer_epoch}",
                if *commit { "commit" } else { "abort" }
            ),
            Request::CommitOffsets {
                group_id,
                generation_id,
                member_id,
                offsets,
            } => write!(
                f,
                "commit-offsets group={group_id} gen={generation_id} member={member_id} [{}]",
                list(offsets)
            ),
            Request::FetchOffsets {
                group_id,
                require_stable,
            } => write!(
                f,
                "fetch-offsets group={group_id}{}",
                if *require_stable { " stable" } else { "" }
            ),
            Request::JoinGroup {
                group_id,
                member_id,
                topics,
            } => write!(
                f,
                "join group={group_id} member={} topics={}",
                member_id.as_deref().unwrap_or("-"),
                topics.join(",")
            ),
            Request::Heartbeat {
                group_id,
                member_id,
                generation_id,
            } => write!(
                f,
                "heartbeat group={group_id} member={member_id} gen={generation_id}"
            ),
            Request::LeaveGroup {
                group_id,
                member_id,
            } => write!(f, "leave group={group_id} member={member_id}"),
            Request::Ingest {
                topic,
                key,
                records,
            } => {
                let records: Vec<String> = records
                    .iter()
                    .map(|r| format!("{}:{}", r.partition, r.value))
                    .collect();
                write!(f, "ingest {topic} key={key} [{}]", records.join(","))
            }
        }
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reply::Produce {
                base_offset,
                last_offset,
                duplicate,
            } => write!(
                f,
                "offsets {base_offset}..={last_offset}{}",
                if *duplicate { " duplicate" } else { "" }
            ),
            Reply::Fetch {
                records,
                next_offset,
                high_watermark,
                last_stable_offset,
            } => write!(
                f,
                "[{}] next={next_offset} hw={high_watermark} lso={last_stable_offset}",
                list(records)
            ),
            Reply::PartitionOffsets {
                log_start_offset,
                high_watermark,
                last_stable_offset,
            } => write!(
                f,
                "start={log_start_offset} hw={high_watermark} lso={last_stable_offset}"
            ),
            Reply::Producer {
                producer_id,
                producer_epoch,
            } => write!(f, "pid={producer_id}.{producer_epoch}"),
            Reply::Done => write!(f, "done"),
            Reply::EndTxn {
                state,
                producer_id: Some(producer_id),
                producer_epoch,
            } => write!(f, "{state} next=pid={producer_id}.{producer_epoch}"),
            Reply::EndTxn {
                state,
                producer_id: None,
                producer_epoch,
            } => write!(f, "{state} next-epoch={producer_epoch}"),
            Reply::Offsets { offsets } => write!(f, "[{}]", list(offsets)),
            Reply::Member {
                member_id,
                generation_id,
                assignment,
            } => write!(
                f,
                "member={member_id} gen={generation_id} owns [{}]",
                list(assignment)
            ),
            Reply::Ingest { offsets } => {
                let offsets: Vec<String> = offsets
                    .iter()
                    .map(|o| format!("{}@{}", o.partition, o.offset))
                    .collect();
                write!(f, "offsets [{}]", offsets.join(","))
            }
        }
    }
}

impl fmt::Display for Observation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Observation::PartitionState {
                topic,
                partition,
                log_start_offset,
                high_watermark,
                last_stable_offset,
            } => write!(
                f,
                "{topic}/{partition} start={log_start_offset} hw={high_watermark} \
                 lso={last_stable_offset}"
            ),
            Observation::Coordinator {
                transactional_id,
                producer_id,
                producer_epoch,
                state,
            } => write!(
                f,
                "coordinator {transactional_id} pid={producer_id}.{producer_epoch} {state}"
            ),
            Observation::Marker {
                topic,
                partition,
                producer_id,
                producer_epoch,
                result,
                offset,
            } => write!(
                f,
                "{result:?} marker pid={producer_id}.{producer_epoch} on {topic}/{partition} at {}",
                offset.map_or("(duplicate)".to_string(), |o| o.to_string())
            ),
            Observation::GroupMarker {
                group_id,
                producer_id,
                producer_epoch,
                result,
            } => write!(
                f,
                "{result:?} marker pid={producer_id}.{producer_epoch} on group {group_id}"
            ),
            Observation::Pipeline {
                group_id,
                input_topic,
                output_topic,
            } => write!(
                f,
                "pipeline group={group_id}: {input_topic} -> {output_topic}"
            ),
            Observation::Settled => write!(f, "settled: final scans follow"),
            Observation::Compacted {
                topic,
                delete_retention_ms,
            } => write!(
                f,
                "compacted topic {topic}: tombstones kept {delete_retention_ms} ms"
            ),
            Observation::Retention {
                topic,
                retention_ms,
            } => write!(f, "topic {topic}: records kept {retention_ms} ms"),
            Observation::Keys { records } => {
                let shown: Vec<String> = records
                    .iter()
                    .map(|r| {
                        let t = if r.tombstone { " (tombstone)" } else { "" };
                        format!("{}={}{t}", r.key, r.value)
                    })
                    .collect();
                write!(f, "keys {}", shown.join(", "))
            }
            Observation::ProducerIds { below } => {
                write!(f, "producer ids below {below} handed out")
            }
            Observation::Note { text } => f.write_str(text),
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{:<5} t={:<7} ", self.index, self.time_ms)?;
        match &self.entry {
            Entry::Invoke { process, op } => write!(f, "p{process:<3} invoke {op}"),
            Entry::Ok { process, reply } => write!(f, "p{process:<3} ok     {reply}"),
            Entry::Fail {
                process,
                code,
                message,
            } => write!(f, "p{process:<3} fail   {code} {message}"),
            Entry::Info { process, reason } => write!(f, "p{process:<3} info   {reason}"),
            Entry::Observe { observation } => write!(f, "     .. {observation}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonl_round_trips() {
        let mut r = Recorder::new();
        r.invoke(
            1,
            2,
            Request::Produce {
                topic: "in".into(),
                partition: 0,
                producer_id: Some(7),
                producer_epoch: Some(0),
                base_sequence: Some(0),
                transactional_id: None,
                values: vec!["p2-0".into(), "p2-1".into()],
                sources: vec![],
            },
        );
        r.ok(
            3,
            2,
            Reply::Produce {
                base_offset: 0,
                last_offset: 1,
                duplicate: false,
            },
        );
        r.fail(4, 2, ErrorCode::ProducerFenced, "old epoch");
        r.info(5, 2, "timeout");
        r.observe(
            6,
            Observation::Marker {
                topic: "in".into(),
                partition: 0,
                producer_id: 7,
                producer_epoch: 0,
                result: TxnResult::Commit,
                offset: Some(2),
            },
        );
        r.observe(7, Observation::Settled);
        let history = r.into_history();
        let mut bytes = Vec::new();
        history.write_jsonl(&mut bytes).unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.starts_with(r#"{"index":0,"time_ms":1,"type":"invoke","process":2,"op":{"f":"produce","topic":"in""#), "{text}");
        let back = History::read_jsonl(&bytes[..]).unwrap();
        assert_eq!(back, history);
        assert!(history
            .trace()
            .contains("p2   fail   PRODUCER_FENCED old epoch"));
    }

    #[test]
    fn a_bad_line_is_reported_with_its_number() {
        let text = "{\"index\":0,\"time_ms\":0,\"type\":\"observe\",\"observation\":{\"what\":\"settled\"}}\n\nnot json\n";
        match History::read_jsonl(text.as_bytes()) {
            Err(ReadError::Parse { line, .. }) => assert_eq!(line, 3),
            other => panic!("expected a parse error, got {other:?}"),
        }
    }
}
