//! The deterministic simulator: every core in one process, one seed, logical time.
//!
//! # The event loop
//!
//! The world is a queue of events ordered by (logical time, sequence number). Popping one
//! advances the clock to its time and runs it to completion: deliver a message to an object or
//! a client, fire an object's alarm, wake a client (to act, or to give up on its request), or
//! inject a fault. Nothing else moves time, nothing reads a clock, and the only randomness is
//! the seeded [`Rng`], so one seed is one run, bit for bit.
//!
//! # Objects
//!
//! Each object (the metadata object, every partition, every transaction coordinator) is a core
//! over its own in-memory SQLite database, shared through an `Rc<Sqlite>`. A restart drops the
//! core (memory lost) and keeps the database; the next event for the object opens a new core on
//! it, exactly as a Durable Object is constructed again on its storage. Requests a restarted
//! coordinator was holding are never answered: their clients time out.
//!
//! # The network
//!
//! Every request, answer, call and call result travels through `World::send`: with faults on
//! it may be dropped, delayed (usually a few ms, sometimes seconds: reordering comes from
//! random delays), or duplicated. Clients give up on a request after a timeout (an `info`
//! completion: unknown outcome) and behave as real clients must.
//!
//! # Alarms
//!
//! After every step of a coordinator the world sets its alarm to `next_alarm_ms`, as the
//! Durable Object adapter does. A partition arms its alarm for the earlier of
//! `next_compaction_ms` and `next_retention_ms` after appends and markers (only when earlier
//! than the one it armed) and runs `enforce_retention` and one `compact` step when it fires, as
//! worker/src/objects/partition.rs does. With faults on an alarm may fire late, early, or twice.
//!
//! # Retention
//!
//! A retained topic (`cleanup_policy = delete` with a short `retention_ms`, in about a
//! quarter of the seeds) is cut as in the Worker: inside `Partition::append`, at the first
//! append of each core incarnation and then at most once per `RETENTION_INTERVAL_MS` (so the
//! partition restarts among the faults make it run often), and by the partition's alarm when
//! its oldest row expires (so a partition no longer written to is cut too). Records carry the append's simulated time as their timestamp. A consumer whose
//! offset was deleted is refused with `OFFSET_OUT_OF_RANGE`, asks the partition for its
//! offsets and goes on from the log start; the final scans read from the log start too.
//!
//! # Phases
//!
//! Clients run their workload with faults on. Then faults stop, clients finish what they
//! started, and the loop runs until nothing is left to do (coordinators finish or time out
//! their transactions). Then the world records [`Observation::Settled`] and the final scans the
//! checker needs.

pub mod clients;
mod ingest;

use std::collections::BTreeMap;
use std::rc::Rc;

use kafdo_group::GroupCoordinator;
use kafdo_metadata::Metadata;
use kafdo_partition::Partition;
use kafdo_sql::{Param, Sql, Sqlite};
use kafdo_txn_coordinator::{
    Answer, Call, CallError, CallId, CallReply, CoordinatorConfig, Output, RequestId,
    TxnCoordinator,
};
use kafdo_types::api::{
    CleanupPolicy, CreateTopicRequest, InitProducerRequest, Isolation, TopicConfig,
};
use kafdo_types::group::{OffsetFetchQuery, TopicPartitionCount};
use kafdo_types::rpc::{PartitionRef, ReadRequest, TxnResult, WriteMarkerRequest};
use kafdo_types::txn::TransactionState;
use kafdo_types::ApiError;

use crate::history::{
    GroupOffset, History, KeyedValue, Observation, Process, ReadRecord, Recorder, Reply, Request,
    Tp,
};
use crate::rng::Rng;
use clients::{
    Action, Answered, Client, ClientAns, ClientReq, Consumer, Env, IdempotentProducer,
    IngestClient, Processor, ProcessorSetup, TransactionalProducer,
};

/// Bugs the simulator can plant from outside the cores, to show the checker catches them.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Bugs {
    /// The partition loses the producer state of its latest append when it restarts (as if the
    /// sequence numbers were not written in the same transaction as the records), so a retry
    /// after a restart is not recognised as a duplicate.
    pub skip_duplicate_check: bool,
    /// The coordinator writes commit markers before it persists PrepareCommit, and may restart
    /// in between.
    pub markers_before_prepare: bool,
    /// Old epochs are not fenced: a request with an older epoch is taken as the current one by
    /// the coordinator and the partitions.
    pub no_epoch_fence: bool,
    /// The `IdempotencyKey` object keeps a key's reservation (its producer id and attempt) in
    /// memory only until the answer is stored: a restart forgets an unfinished key, so the
    /// next attempt reserves a new producer id and its batches are no longer duplicates.
    pub ingest_forgets_reservation: bool,
    /// The partition adapter builds the compacted topic's `PartitionConfig` without the
    /// topic's delete retention (0 instead), so tombstones go at the first compaction round
    /// that reaches them instead of after the retention.
    pub compaction_ignores_delete_retention: bool,
    /// Compaction ignores the last stable offset: a step plans its round up to the high
    /// watermark, so an open transaction's records enter the key map and supersede committed
    /// records of their keys (planted by hiding the open transactions' first offsets from the
    /// core for the step: the simulator reopens the core without them and puts them back).
    pub compaction_ignores_lso: bool,
    /// Retention ignores time: the Worker hands the retained topic's partitions a topic config
    /// with `retention_ms = 0`, so every append that applies retention deletes every row older
    /// than the current millisecond instead of only the expired ones.
    pub retention_ignores_time: bool,
    /// Retention ignores the last stable offset: an append to a retained partition runs on a
    /// core that sees no open transaction (their first offsets hidden, as for
    /// `compaction_ignores_lso`), so retention may delete an open transaction's rows; the
    /// simulator then puts the first offsets back, raised to the new log start so the
    /// partition opens again. (The step runs on a freshly opened core, so in this mode every
    /// append to a retained partition applies retention.)
    pub retention_ignores_lso: bool,
}

/// The compacted topic of a seed that has one: its own keyed writers and readers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompactionSetup {
    /// Partitions of [`COMPACTED_TOPIC`].
    pub partitions: i32,
    /// Idempotent producers writing keyed records to it.
    pub idempotent_producers: u32,
    /// Transactional ids writing keyed records to it (one process each).
    pub transactional_ids: u32,
    /// read_committed consumers of it.
    pub consumers: u32,
    /// Its partitions' `PartitionConfig::delete_retention_ms`.
    pub delete_retention_ms: i64,
    /// Its partitions' `PartitionConfig::compaction_interval_ms`.
    pub compaction_interval_ms: i64,
}

/// The retained topic of a seed that has one (`cleanup_policy = delete` with a finite
/// `retention_ms`): its own writers and readers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetentionSetup {
    /// Partitions of [`RETAINED_TOPIC`].
    pub partitions: i32,
    /// Idempotent producers writing to it.
    pub idempotent_producers: u32,
    /// Transactional ids writing to it (one process each).
    pub transactional_ids: u32,
    /// read_committed consumers of it.
    pub consumers: u32,
    /// The topic's `retention_ms`.
    pub retention_ms: i64,
}

/// One simulated run's shape. [`Config::for_seed`] varies it by seed (swarm testing).
#[derive(Clone, Debug)]
pub struct Config {
    /// The seed.
    pub seed: u64,
    /// Faults on (drops, duplicates, delays, restarts, alarm chaos, client crashes).
    pub faults: bool,
    /// Partitions of the topic producers write to.
    pub partitions: i32,
    /// Idempotent producers.
    pub idempotent_producers: u32,
    /// Transactional ids, and processes per transactional id (more than one makes zombies).
    pub transactional_ids: u32,
    /// See [`Config::transactional_ids`].
    pub instances_per_id: u32,
    /// read_committed consumers (one per partition, round robin).
    pub consumers: u32,
    /// Read-process-write processors (each its own transactional id, one group), and the
    /// idempotent producers that feed their input.
    pub processors: u32,
    /// See [`Config::processors`].
    pub input_producers: u32,
    /// Partitions of the pipeline's input and output topics.
    pub pipeline_partitions: (i32, i32),
    /// The processors' group session timeout.
    pub session_timeout_ms: i64,
    /// Batches per idempotent producer, transactions per transactional producer.
    pub ops_per_client: u32,
    /// Per mille chance a message is dropped.
    pub drop_per_mille: u32,
    /// Per mille chance a message is duplicated.
    pub duplicate_per_mille: u32,
    /// Per mille chance a message is delayed by up to seconds.
    pub slow_per_mille: u32,
    /// Mean ms between fault ticks (restarts, client crashes).
    pub fault_interval_ms: i64,
    /// How long a client waits for an answer.
    pub client_timeout_ms: i64,
    /// Transaction timeout of the transactional producers.
    pub transaction_timeout_ms: i64,
    /// Keyed-ingestion clients (each runs a script of `Idempotency-Key` requests).
    pub ingest_clients: u32,
    /// Processes per ingestion client: two run the same script concurrently, as a client that
    /// thinks its first attempt died does.
    pub ingest_processes: u32,
    /// The lease of an ingestion attempt.
    pub ingest_lease_ms: i64,
    /// How long an `Idempotency-Key` is remembered.
    pub ingest_ttl_ms: i64,
    /// The coordinators' `roll_epoch`: low values make transactional ids move to new producer
    /// ids often.
    pub roll_epoch: i32,
    /// A compacted topic with its own keyed writers, or none.
    pub compaction: Option<CompactionSetup>,
    /// A topic with time-based retention and its own writers and readers, or none.
    pub retention: Option<RetentionSetup>,
    /// Planted bugs.
    pub bugs: Bugs,
}

impl Config {
    /// A configuration drawn from the seed: fault rates and workload sizes vary from seed to
    /// seed so that some runs are gentle and some brutal.
    pub fn for_seed(seed: u64) -> Self {
        let mut rng = Rng::new(seed ^ 0x5eed_c0ff_ee00_0000);
        Self {
            seed,
            faults: true,
            partitions: rng.range(1, 3) as i32,
            idempotent_producers: rng.range(0, 2) as u32,
            transactional_ids: rng.range(1, 2) as u32,
            instances_per_id: rng.range(1, 2) as u32,
            consumers: rng.range(1, 3) as u32,
            processors: rng.range(0, 3) as u32,
            input_producers: rng.range(1, 2) as u32,
            pipeline_partitions: (rng.range(1, 3) as i32, rng.range(1, 2) as i32),
            session_timeout_ms: *rng.pick(&[1_000, 3_000, 10_000]),
            ops_per_client: rng.range(2, 8) as u32,
            drop_per_mille: *rng.pick(&[0, 10, 50, 100]),
            duplicate_per_mille: *rng.pick(&[0, 20, 100]),
            slow_per_mille: *rng.pick(&[0, 20, 100]),
            fault_interval_ms: *rng.pick(&[200, 1_000, 5_000]),
            client_timeout_ms: *rng.pick(&[500, 1_500, 3_000]),
            transaction_timeout_ms: *rng.pick(&[2_000, 5_000, 20_000]),
            // Drawn last, so the rest of a seed's configuration is what it was before ingestion
            // was simulated.
            ingest_clients: rng.range(0, 2) as u32,
            ingest_processes: rng.range(1, 2) as u32,
            ingest_lease_ms: *rng.pick(&[1_000, 5_000, kafdo_ingest::DEFAULT_LEASE_MS]),
            ingest_ttl_ms: *rng.pick(&[40_000, 120_000]),
            roll_epoch: *rng.pick(&[kafdo_txn_coordinator::DEFAULT_ROLL_EPOCH, 2, 3, 6]),
            // Drawn last of all, so every other part of a seed's configuration is what it was
            // before compaction was simulated; seeds without it run exactly as before.
            compaction: Self::draw_compaction(&mut rng),
            // Drawn after compaction, for the same reason.
            retention: Self::draw_retention(&mut rng),
            bugs: Bugs::default(),
        }
    }

    fn draw_retention(rng: &mut Rng) -> Option<RetentionSetup> {
        if !rng.chance(250) {
            return None;
        }
        Some(RetentionSetup {
            partitions: rng.range(1, 2) as i32,
            idempotent_producers: rng.range(1, 2) as u32,
            transactional_ids: rng.range(1, 2) as u32,
            consumers: rng.range(1, 2) as u32,
            // Short enough that records expire within a run, long enough that some appends
            // find rows that have not.
            retention_ms: *rng.pick(&[200, 1_000, 3_000, 10_000]),
        })
    }

    fn draw_compaction(rng: &mut Rng) -> Option<CompactionSetup> {
        if !rng.chance(300) {
            return None;
        }
        Some(CompactionSetup {
            partitions: rng.range(1, 2) as i32,
            idempotent_producers: rng.range(0, 2) as u32,
            transactional_ids: rng.range(1, 2) as u32,
            consumers: rng.range(1, 2) as u32,
            // An hour outlives every run (`MAX_RUN_MS`), so its tombstones stay; the short ones
            // expire within a run.
            delete_retention_ms: *rng.pick(&[300, 3_000, 3_600_000, 3_600_000]),
            compaction_interval_ms: *rng.pick(&[0, 200, 1_000]),
        })
    }
}

/// What one run produced.
pub struct RunOutput {
    /// The history.
    pub history: History,
    /// Events processed.
    pub steps: u64,
    /// Logical time at the end.
    pub end_ms: i64,
    /// What compaction did.
    pub compaction: CompactionStats,
    /// What retention did.
    pub retention: RetentionStats,
}

/// What retention did in one run (on the retained topic).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct RetentionStats {
    /// Steps that raised a partition's log start offset.
    pub steps: u64,
    /// Offsets (records and markers) deleted.
    pub offsets_removed: u64,
}

/// What compaction did in one run.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct CompactionStats {
    /// Compaction steps run (alarm firings on compacted partitions).
    pub steps: u64,
    /// Rounds finished.
    pub rounds: u64,
    /// Records removed (superseded, expired tombstones, aborted records and markers).
    pub records_removed: u64,
}

/// Where a message goes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Target {
    Metadata,
    Partition(Tp),
    Coordinator(String),
    Group(String),
    Client(Process),
    /// The Worker, receiving a keyed produce (each delivery starts a run).
    Worker,
    /// An `IdempotencyKey` object, named `{topic}/{key}`.
    Key(String),
    /// A run of the Worker, receiving the answers to its calls.
    Run(u64),
}

/// A message on the simulated network.
#[derive(Clone, Debug)]
enum Msg {
    /// A client's request to an object.
    Request {
        from: Process,
        id: u64,
        req: ClientReq,
    },
    /// A coordinator's call to another object.
    Call {
        from: String,
        id: CallId,
        call: Call,
    },
    /// An object's answer to a client.
    Reply {
        id: u64,
        result: Result<ClientAns, ApiError>,
    },
    /// An object's answer to a coordinator's call.
    CallResult {
        id: CallId,
        result: Result<CallReply, CallError>,
    },
    /// A Worker run's call to a key object or a partition.
    RunCall {
        run: u64,
        call_id: u32,
        call: ingest::RunCall,
    },
    /// The answer to a run's call.
    RunResult {
        call_id: u32,
        result: Result<ingest::RunAns, ApiError>,
    },
}

#[derive(Clone, Debug)]
enum Event {
    Deliver {
        to: Target,
        msg: Msg,
    },
    Alarm {
        tid: String,
        generation: u64,
    },
    /// A partition's alarm (compaction and retention).
    PartitionAlarm {
        tp: Tp,
        generation: u64,
    },
    GroupAlarm {
        group_id: String,
        generation: u64,
    },
    Wake {
        process: Process,
        generation: u64,
    },
    Fault,
    /// A run's call passed the Worker's deadline.
    RunTimeout {
        run: u64,
        call_id: u32,
    },
    KeyAlarm {
        object: String,
        generation: u64,
    },
}

type Db = Rc<Sqlite>;

struct CoordinatorSlot {
    db: Db,
    core: Option<TxnCoordinator<Db>>,
    /// Client requests the core holds: who to answer.
    waiting: BTreeMap<RequestId, (Process, u64)>,
    /// The alarm generation: an alarm event of an older generation was replaced (a spurious
    /// early or duplicate firing carries `u64::MAX`).
    alarm_generation: u64,
    last_observed: Option<(i64, i32, TransactionState)>,
}

struct PartitionSlot {
    db: Db,
    core: Option<Partition<Db>>,
    last_observed: Option<(i64, i64, i64)>,
    /// For the planted `skip_duplicate_check` bug: each producer's state row before its latest
    /// append, restored when the partition restarts.
    stale_producers: BTreeMap<i64, Option<kafdo_sql::Row>>,
    /// The core's configuration (compacted partitions get short intervals).
    config: kafdo_partition::PartitionConfig,
    /// The alarm the adapter believes it armed (`ArmedAlarm`: memory only, lost on restart).
    armed_ms: Option<i64>,
    /// The alarm generation: the Durable Object keeps one alarm, a new `set_alarm` replaces it
    /// (a spurious early or duplicate firing carries `u64::MAX`).
    alarm_generation: u64,
}

struct GroupSlot {
    db: Db,
    core: Option<GroupCoordinator<Db>>,
    alarm_generation: u64,
}

struct ClientSlot {
    client: Client,
    outstanding: Option<u64>,
    wake_generation: u64,
    done: bool,
}

/// The simulated world.
pub struct World {
    config: Config,
    rng: Rng,
    now_ms: i64,
    next_seq: u64,
    queue: BTreeMap<(i64, u64), Event>,
    rec: Recorder,
    settling: bool,
    steps: u64,
    partition_refs: BTreeMap<Tp, PartitionRef>,
    metadata_db: Db,
    metadata: Option<Metadata<Db>>,
    partitions: BTreeMap<Tp, PartitionSlot>,
    coordinators: BTreeMap<String, CoordinatorSlot>,
    groups: BTreeMap<String, GroupSlot>,
    partition_counts: BTreeMap<String, i32>,
    clients: BTreeMap<Process, ClientSlot>,
    next_request: u64,
    next_fake_call: u32,
    keys: BTreeMap<String, ingest::KeySlot>,
    runs: BTreeMap<u64, ingest::Run>,
    next_run: u64,
    compaction_stats: CompactionStats,
    retention_stats: RetentionStats,
}

/// The process that records the final scans.
pub const FINAL_PROCESS: Process = 0;

/// The topic producers write to.
pub const TOPIC: &str = "events";
/// The pipeline's input topic.
pub const INPUT_TOPIC: &str = "in";
/// The pipeline's output topic.
pub const OUTPUT_TOPIC: &str = "out";
/// The pipeline's group.
pub const PIPELINE_GROUP: &str = "pipeline";
/// The compacted topic (`cleanup_policy = compact`), when the seed has one.
pub const COMPACTED_TOPIC: &str = "table";
/// The retained topic (`cleanup_policy = delete`, finite `retention_ms`), when the seed has one.
pub const RETAINED_TOPIC: &str = "logs";

/// Logical time the run may take before the world stops waiting for it to settle.
const MAX_RUN_MS: i64 = 30 * 60 * 1000;

impl World {
    /// A world for one configuration: topics created, clients placed.
    pub fn new(config: Config) -> Self {
        let rng = Rng::new(config.seed);
        let metadata_db: Db = Rc::new(Sqlite::memory());
        let mut metadata = Metadata::open(metadata_db.clone()).expect("open metadata");
        let mut topics = vec![(TOPIC, config.partitions, CleanupPolicy::Delete)];
        if config.processors > 0 {
            topics.push((
                INPUT_TOPIC,
                config.pipeline_partitions.0,
                CleanupPolicy::Delete,
            ));
            topics.push((
                OUTPUT_TOPIC,
                config.pipeline_partitions.1,
                CleanupPolicy::Delete,
            ));
        }
        if let Some(c) = config.compaction {
            topics.push((COMPACTED_TOPIC, c.partitions, CleanupPolicy::Compact));
        }
        if let Some(r) = config.retention {
            topics.push((RETAINED_TOPIC, r.partitions, CleanupPolicy::Delete));
        }
        let mut partition_refs = BTreeMap::new();
        let mut partitions = BTreeMap::new();
        let mut partition_counts = BTreeMap::new();
        for (name, count, cleanup_policy) in topics {
            let topic = metadata
                .create_topic(
                    &CreateTopicRequest {
                        name: name.into(),
                        partitions: count,
                        config: TopicConfig {
                            retention_ms: match config.retention {
                                Some(r) if name == RETAINED_TOPIC => r.retention_ms,
                                _ => -1,
                            },
                            cleanup_policy,
                        },
                    },
                    0,
                )
                .expect("create a topic");
            partition_counts.insert(name.to_owned(), count);
            let mut partition_config = kafdo_partition::PartitionConfig::default();
            if let (Some(c), CleanupPolicy::Compact) = (config.compaction, cleanup_policy) {
                partition_config.delete_retention_ms =
                    if config.bugs.compaction_ignores_delete_retention {
                        0
                    } else {
                        c.delete_retention_ms
                    };
                partition_config.compaction_interval_ms = c.compaction_interval_ms;
            }
            for p in 0..count {
                let tp = Tp::new(name, p);
                let mut pref = topic.partition(p);
                if name == RETAINED_TOPIC && config.bugs.retention_ignores_time {
                    pref.config.retention_ms = 0;
                }
                partition_refs.insert(tp.clone(), pref);
                partitions.insert(
                    tp,
                    PartitionSlot {
                        db: Rc::new(Sqlite::memory()),
                        core: None,
                        last_observed: None,
                        stale_producers: BTreeMap::new(),
                        config: partition_config,
                        armed_ms: None,
                        alarm_generation: 0,
                    },
                );
            }
        }
        let mut world = Self {
            rng,
            now_ms: 0,
            next_seq: 0,
            queue: BTreeMap::new(),
            rec: Recorder::new(),
            settling: false,
            steps: 0,
            partition_refs,
            metadata_db,
            metadata: Some(metadata),
            partitions,
            coordinators: BTreeMap::new(),
            groups: BTreeMap::new(),
            partition_counts,
            clients: BTreeMap::new(),
            next_request: 0,
            next_fake_call: 0,
            keys: BTreeMap::new(),
            runs: BTreeMap::new(),
            next_run: 0,
            compaction_stats: CompactionStats::default(),
            retention_stats: RetentionStats::default(),
            config,
        };
        world.place_clients();
        world
    }

    fn place_clients(&mut self) {
        let tps: Vec<Tp> = self
            .partition_refs
            .keys()
            .filter(|tp| tp.topic == TOPIC)
            .cloned()
            .collect();
        let ops = self.config.ops_per_client;
        let mut process: Process = 1;
        for _ in 0..self.config.idempotent_producers {
            let c = IdempotentProducer::new(process, tps.clone(), ops);
            self.add_client(process, Client::Idempotent(c));
            process += 1;
        }
        for t in 0..self.config.transactional_ids {
            let tid = format!("txn-{t}");
            self.add_coordinator(&tid);
            for _ in 0..self.config.instances_per_id {
                let c = TransactionalProducer::new(
                    process,
                    tid.clone(),
                    self.config.transaction_timeout_ms,
                    tps.clone(),
                    ops,
                );
                self.add_client(process, Client::Transactional(c));
                process += 1;
            }
        }
        for i in 0..self.config.consumers {
            let tp = tps[i as usize % tps.len()].clone();
            let c = Consumer::new(process, tp, ops * 4);
            self.add_client(process, Client::Consumer(c));
            process += 1;
        }
        for i in 0..self.config.ingest_clients {
            let ttl_ms = self.config.ingest_ttl_ms;
            let script =
                ingest::script(&mut self.rng, i, TOPIC, self.config.partitions, ops, ttl_ms);
            let script = Rc::new(script);
            let first_sent = clients::FirstSent::default();
            for _ in 0..self.config.ingest_processes {
                let c = IngestClient::new(
                    TOPIC.into(),
                    script.clone(),
                    first_sent.clone(),
                    ttl_ms - ingest::MAX_BEGIN_LATENCY_MS,
                );
                self.add_client(process, Client::Ingest(c));
                process += 1;
            }
        }
        if let Some(c) = self.config.compaction {
            process = self.place_compaction_clients(process, c);
        }
        if let Some(r) = self.config.retention {
            process = self.place_retention_clients(process, r);
        }
        if self.config.processors == 0 {
            return;
        }
        self.rec.observe(
            0,
            Observation::Pipeline {
                group_id: PIPELINE_GROUP.into(),
                input_topic: INPUT_TOPIC.into(),
                output_topic: OUTPUT_TOPIC.into(),
            },
        );
        self.groups.insert(
            PIPELINE_GROUP.into(),
            GroupSlot {
                db: Rc::new(Sqlite::memory()),
                core: None,
                alarm_generation: 0,
            },
        );
        let inputs: Vec<Tp> = self
            .partition_refs
            .keys()
            .filter(|tp| tp.topic == INPUT_TOPIC)
            .cloned()
            .collect();
        for _ in 0..self.config.input_producers {
            let c = IdempotentProducer::new(process, inputs.clone(), ops * 2);
            self.add_client(process, Client::Idempotent(c));
            process += 1;
        }
        for k in 0..self.config.processors {
            let tid = format!("proc-{k}");
            self.add_coordinator(&tid);
            let setup = ProcessorSetup {
                transactional_id: tid,
                group_id: PIPELINE_GROUP.into(),
                input_topic: INPUT_TOPIC.into(),
                output: (OUTPUT_TOPIC.into(), self.config.pipeline_partitions.1),
                transaction_timeout_ms: self.config.transaction_timeout_ms,
                session_timeout_ms: self.config.session_timeout_ms,
                txns: ops,
            };
            let c = Processor::new(process, setup);
            self.add_client(process, Client::Processor(Box::new(c)));
            process += 1;
        }
    }

    /// The compacted topic's keyed writers (idempotent and transactional, one process per
    /// transactional id) and read_committed consumers; returns the next free process.
    fn place_compaction_clients(&mut self, mut process: Process, c: CompactionSetup) -> Process {
        self.rec.observe(
            0,
            Observation::Compacted {
                topic: COMPACTED_TOPIC.into(),
                delete_retention_ms: c.delete_retention_ms,
            },
        );
        let tps: Vec<Tp> = (0..c.partitions)
            .map(|p| Tp::new(COMPACTED_TOPIC, p))
            .collect();
        // Three keys (`clients::COMPACTED_KEYS`) for all writers: each key gets many versions.
        let ops = self.config.ops_per_client;
        for _ in 0..c.idempotent_producers {
            let producer = IdempotentProducer::new(process, tps.clone(), ops);
            self.add_client(process, Client::Idempotent(producer));
            process += 1;
        }
        for t in 0..c.transactional_ids {
            let tid = format!("table-txn-{t}");
            self.add_coordinator(&tid);
            let producer = TransactionalProducer::new(
                process,
                tid,
                self.config.transaction_timeout_ms,
                tps.clone(),
                ops,
            )
            // Many aborts: aborted records must leave the key map and the log, and a round
            // must stop at an open transaction that may still abort.
            .with_aborts(400);
            self.add_client(process, Client::Transactional(producer));
            process += 1;
        }
        for i in 0..c.consumers {
            let tp = tps[i as usize % tps.len()].clone();
            let consumer = Consumer::new(process, tp, ops * 4);
            self.add_client(process, Client::Consumer(consumer));
            process += 1;
        }
        process
    }

    /// The retained topic's writers (idempotent and transactional, one process per
    /// transactional id) and read_committed consumers; returns the next free process.
    fn place_retention_clients(&mut self, mut process: Process, r: RetentionSetup) -> Process {
        self.rec.observe(
            0,
            Observation::Retention {
                topic: RETAINED_TOPIC.into(),
                retention_ms: r.retention_ms,
            },
        );
        let tps: Vec<Tp> = (0..r.partitions)
            .map(|p| Tp::new(RETAINED_TOPIC, p))
            .collect();
        // Twice the usual work, so that appends go on long enough for retention to run more
        // than once per partition incarnation.
        let ops = 2 * self.config.ops_per_client;
        for _ in 0..r.idempotent_producers {
            let producer = IdempotentProducer::new(process, tps.clone(), ops);
            self.add_client(process, Client::Idempotent(producer));
            process += 1;
        }
        for t in 0..r.transactional_ids {
            let tid = format!("logs-txn-{t}");
            self.add_coordinator(&tid);
            let producer = TransactionalProducer::new(
                process,
                tid,
                self.config.transaction_timeout_ms,
                tps.clone(),
                ops,
            );
            self.add_client(process, Client::Transactional(producer));
            process += 1;
        }
        for i in 0..r.consumers {
            let tp = tps[i as usize % tps.len()].clone();
            let consumer = Consumer::new(process, tp, ops * 4);
            self.add_client(process, Client::Consumer(consumer));
            process += 1;
        }
        process
    }

    fn add_coordinator(&mut self, tid: &str) {
        self.coordinators.insert(
            tid.to_owned(),
            CoordinatorSlot {
                db: Rc::new(Sqlite::memory()),
                core: None,
                waiting: BTreeMap::new(),
                alarm_generation: 0,
                last_observed: None,
            },
        );
    }

    fn add_client(&mut self, process: Process, client: Client) {
        self.clients.insert(
            process,
            ClientSlot {
                client,
                outstanding: None,
                wake_generation: 0,
                done: false,
            },
        );
        let at = self.rng.range(0, 100);
        self.schedule(
            at,
            Event::Wake {
                process,
                generation: 0,
            },
        );
    }

    fn schedule(&mut self, delay_ms: i64, event: Event) {
        let at = self.now_ms + delay_ms.max(0);
        self.next_seq += 1;
        self.queue.insert((at, self.next_seq), event);
    }

    fn note(&mut self, text: String) {
        self.rec.observe(self.now_ms, Observation::Note { text });
    }

    /// Runs the whole simulation and returns the history.
    pub fn run(mut self) -> RunOutput {
        if self.config.faults {
            let at = self.rng.range(0, self.config.fault_interval_ms);
            self.schedule(at, Event::Fault);
        }
        while let Some(((at, _), event)) = self.queue.pop_first() {
            if at > MAX_RUN_MS {
                // What is left is housekeeping far in the future (a group forgetting ended
                // producer epochs after days); an open transaction would have timed out long
                // before, and the final scans show any that did not.
                break;
            }
            self.now_ms = at;
            self.steps += 1;
            self.step(event);
            if !self.settling && self.clients.values().all(|c| c.done) {
                self.begin_settling();
            }
        }
        if !self.settling {
            self.begin_settling();
        }
        self.final_scans();
        RunOutput {
            history: self.rec.into_history(),
            steps: self.steps,
            end_ms: self.now_ms,
            compaction: self.compaction_stats,
            retention: self.retention_stats,
        }
    }

    fn begin_settling(&mut self) {
        self.settling = true;
        self.config.faults = false;
        self.note("faults stop; clients finish what they started".into());
        let processes: Vec<Process> = self.clients.keys().copied().collect();
        for process in processes {
            let slot = self.clients.get_mut(&process).expect("client");
            if slot.outstanding.is_none() && !slot.done {
                slot.wake_generation += 1;
                let generation = slot.wake_generation;
                self.schedule(
                    0,
                    Event::Wake {
                        process,
                        generation,
                    },
                );
            }
        }
    }

    fn faults_on(&self) -> bool {
        self.config.faults && !self.settling
    }

    fn step(&mut self, event: Event) {
        match event {
            Event::Deliver { to, msg } => self.deliver(to, msg),
            Event::Alarm { tid, generation } => {
                let slot = &self.coordinators[&tid];
                if generation == slot.alarm_generation || generation == u64::MAX {
                    self.coordinator_step(&tid, |core, now| core.on_alarm(now));
                }
            }
            Event::GroupAlarm {
                group_id,
                generation,
            } => {
                let slot = &self.groups[&group_id];
                if generation == slot.alarm_generation || generation == u64::MAX {
                    let now_ms = self.now_ms;
                    self.group(&group_id).on_alarm(now_ms).expect("group alarm");
                    self.set_group_alarm(&group_id);
                }
            }
            Event::Wake {
                process,
                generation,
            } => self.wake(process, generation),
            Event::PartitionAlarm { tp, generation } => {
                let slot = &self.partitions[&tp];
                if generation == slot.alarm_generation || generation == u64::MAX {
                    self.partition_alarm(&tp);
                }
            }
            Event::Fault => self.fault(),
            Event::RunTimeout { run, call_id } => self.run_timeout(run, call_id),
            Event::KeyAlarm { object, generation } => self.key_alarm(&object, generation),
        }
    }

    // ---- the network ----------------------------------------------------------------------

    fn send(&mut self, to: Target, msg: Msg) {
        if self.faults_on() && self.rng.chance(self.config.drop_per_mille) {
            return;
        }
        let copies = if self.faults_on() && self.rng.chance(self.config.duplicate_per_mille) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let delay = if self.faults_on() && self.rng.chance(self.config.slow_per_mille) {
                self.rng.range(100, 5_000)
            } else {
                self.rng.range(1, 20)
            };
            self.schedule(
                delay,
                Event::Deliver {
                    to: to.clone(),
                    msg: msg.clone(),
                },
            );
        }
    }

    fn deliver(&mut self, to: Target, msg: Msg) {
        match (to, msg) {
            (Target::Client(process), Msg::Reply { id, result }) => {
                self.client_answer(process, id, result)
            }
            (Target::Coordinator(tid), Msg::CallResult { id, result }) => {
                self.coordinator_step(&tid, |core, now| core.on_call_result(id, result, now));
            }
            (Target::Coordinator(tid), Msg::Request { from, id, req }) => {
                self.coordinator_request(&tid, from, id, req)
            }
            (Target::Worker, Msg::Request { from, id, req }) => self.start_run(from, id, req),
            (Target::Run(run), Msg::RunResult { call_id, result }) => {
                self.run_result(run, call_id, result)
            }
            (Target::Key(object), Msg::RunCall { run, call_id, call }) => {
                if let Some(result) = self.key_call(&object, call) {
                    self.send(Target::Run(run), Msg::RunResult { call_id, result });
                }
            }
            (
                Target::Partition(tp),
                Msg::RunCall {
                    run,
                    call_id,
                    call: ingest::RunCall::Append(req),
                },
            ) => {
                if let Some(result) = self.run_append(&tp, req) {
                    self.send(Target::Run(run), Msg::RunResult { call_id, result });
                }
            }
            (target, Msg::Request { from, id, req }) => {
                let result = self.object_request(&target, req);
                self.send(Target::Client(from), Msg::Reply { id, result });
            }
            (target, Msg::Call { from, id, call }) => {
                let result = self.object_call(&target, call);
                self.send(Target::Coordinator(from), Msg::CallResult { id, result });
            }
            (to, msg) => panic!("misrouted message {msg:?} to {to:?}"),
        }
    }

    // ---- metadata and partitions ---------------------------------------------------------

    fn metadata(&mut self) -> &mut Metadata<Db> {
        if self.metadata.is_none() {
            self.metadata = Some(Metadata::open(self.metadata_db.clone()).expect("open metadata"));
        }
        self.metadata.as_mut().expect("open")
    }

    fn allocate_producer_id(&mut self) -> i64 {
        let ids = self
            .metadata()
            .allocate_producer_ids(1)
            .expect("allocate a producer id");
        ids.start
    }

    fn partition(&mut self, tp: &Tp) -> &mut Partition<Db> {
        let now_ms = self.now_ms;
        let slot = self.partitions.get_mut(tp).expect("a known partition");
        if slot.core.is_none() {
            let core = Partition::open_with_config(slot.db.clone(), now_ms, slot.config);
            slot.core = Some(core.expect("open a partition"));
        }
        slot.core.as_mut().expect("open")
    }

    fn observe_partition(&mut self, tp: &Tp) {
        let pref = self.partition_refs[tp].clone();
        let info = self.partition(tp).info(&pref).expect("partition info");
        let state = (
            info.log_start_offset,
            info.high_watermark,
            info.last_stable_offset,
        );
        let slot = self.partitions.get_mut(tp).expect("partition");
        if slot.last_observed != Some(state) {
            let before = slot.last_observed.map_or(0, |(start, _, _)| start);
            if state.0 > before {
                self.retention_stats.steps += 1;
                self.retention_stats.offsets_removed += (state.0 - before) as u64;
            }
            slot.last_observed = Some(state);
            self.rec.observe(
                self.now_ms,
                Observation::PartitionState {
                    topic: tp.topic.clone(),
                    partition: tp.partition,
                    log_start_offset: info.log_start_offset,
                    high_watermark: info.high_watermark,
                    last_stable_offset: info.last_stable_offset,
                },
            );
        }
    }

    /// Arms the partition's compaction alarm for the core's next step, as the Durable Object's
    /// `ArmedAlarm` does: only when it is earlier than the one this incarnation armed (a
    /// restarted adapter remembers none, so its first arm replaces the stored alarm). With
    /// faults on the alarm may fire late, and a spurious firing may come early or twice.
    fn arm_partition_alarm(&mut self, tp: &Tp) {
        let now_ms = self.now_ms;
        let compaction = if self.config.bugs.compaction_ignores_lso {
            self.with_lso_hidden(tp, |core| core.next_compaction_ms(now_ms))
        } else {
            self.partition(tp).next_compaction_ms(now_ms)
        };
        let retention = self
            .partition(tp)
            .next_retention_ms()
            .expect("the next retention step");
        let Some(at_ms) = [compaction, retention].into_iter().flatten().min() else {
            return;
        };
        let faults = self.faults_on();
        let slot = self.partitions.get_mut(tp).expect("partition");
        if slot.armed_ms.is_some_and(|armed| armed <= at_ms) {
            return;
        }
        slot.armed_ms = Some(at_ms);
        slot.alarm_generation += 1;
        let generation = slot.alarm_generation;
        let mut delay = (at_ms - now_ms).max(0);
        if faults && self.rng.chance(100) {
            delay += self.rng.range(1, 3_000);
        }
        self.schedule(
            delay,
            Event::PartitionAlarm {
                tp: tp.clone(),
                generation,
            },
        );
        if faults && self.rng.chance(100) {
            let at = self.rng.range(0, delay + 1_000);
            self.schedule(
                at,
                Event::PartitionAlarm {
                    tp: tp.clone(),
                    generation: u64::MAX,
                },
            );
        }
    }

    /// The partition's alarm: retention and one compaction step, then the alarm for the next
    /// one (the adapter's `alarm`). With faults on the partition sometimes restarts right
    /// after the step, so restarts land between the steps and rounds of compaction.
    fn partition_alarm(&mut self, tp: &Tp) {
        let now_ms = self.now_ms;
        self.partitions.get_mut(tp).expect("partition").armed_ms = None;
        let start = if self.config.bugs.retention_ignores_lso && tp.topic == RETAINED_TOPIC {
            self.with_lso_hidden(tp, |core| core.enforce_retention(now_ms))
        } else {
            self.partition(tp).enforce_retention(now_ms)
        };
        start.expect("a retention step");
        let step = if self.config.bugs.compaction_ignores_lso {
            self.with_lso_hidden(tp, |core| core.compact(now_ms).expect("a compaction step"))
        } else {
            self.partition(tp)
                .compact(now_ms)
                .expect("a compaction step")
        };
        let compacted = self.partition_refs[tp].config.cleanup_policy == CleanupPolicy::Compact;
        self.compaction_stats.steps += u64::from(compacted);
        self.compaction_stats.rounds += u64::from(step.round_finished);
        self.compaction_stats.records_removed += step.records_removed as u64;
        if step.records_removed > 0 || step.round_finished {
            self.note(format!(
                "compact {tp}: {} rows read, {} records removed, cleaned to {}",
                step.rows_read, step.records_removed, step.cleaned_offset
            ));
        }
        self.observe_partition(tp);
        if self.faults_on() && self.rng.chance(50) {
            self.restart_partition(tp);
        }
        self.arm_partition_alarm(tp);
    }

    fn object_request(&mut self, target: &Target, req: ClientReq) -> Result<ClientAns, ApiError> {
        let now_ms = self.now_ms;
        match (target, req) {
            (Target::Metadata, ClientReq::AllocateProducerId) => {
                Ok(ClientAns::ProducerId(self.allocate_producer_id()))
            }
            (Target::Partition(tp), ClientReq::Append(mut req)) => {
                self.before_append(tp, &mut req);
                // An append applies retention (at most once per `RETENTION_INTERVAL_MS` of a
                // core's life), as it does in the Worker; the alarm does for idle partitions.
                let result = if self.config.bugs.retention_ignores_lso && tp.topic == RETAINED_TOPIC
                {
                    self.with_lso_hidden(tp, |core| core.append(&req, now_ms))
                } else {
                    self.partition(tp).append(&req, now_ms)
                };
                let result = result
                    .map(ClientAns::Produced)
                    .map_err(|e| ApiError::new(e.code(), e.to_string()));
                self.observe_partition(tp);
                if result.is_ok() {
                    self.arm_partition_alarm(tp);
                }
                result
            }
            (Target::Partition(tp), ClientReq::Read(req)) => self
                .partition(tp)
                .read(&req, now_ms)
                .map(ClientAns::Fetched)
                .map_err(|e| ApiError::new(e.code(), e.to_string())),
            (Target::Partition(tp), ClientReq::PartitionOffsets(pref)) => self
                .partition(tp)
                .info(&pref)
                .map(ClientAns::PartitionOffsets)
                .map_err(|e| ApiError::new(e.code(), e.to_string())),
            (Target::Group(group_id), req) => {
                let result = self.group_request(group_id, req);
                self.set_group_alarm(group_id);
                result
            }
            (target, req) => panic!("{req:?} cannot go to {target:?}"),
        }
    }

    fn group(&mut self, group_id: &str) -> &mut GroupCoordinator<Db> {
        let slot = self.groups.get_mut(group_id).expect("a known group");
        if slot.core.is_none() {
            slot.core = Some(GroupCoordinator::open(slot.db.clone()).expect("open a group"));
        }
        slot.core.as_mut().expect("open")
    }

    fn counts(&self) -> Vec<TopicPartitionCount> {
        self.partition_counts
            .iter()
            .map(|(topic, partitions)| TopicPartitionCount {
                topic: topic.clone(),
                partitions: *partitions,
            })
            .collect()
    }

    fn group_request(&mut self, group_id: &str, req: ClientReq) -> Result<ClientAns, ApiError> {
        let now_ms = self.now_ms;
        let counts = self.counts();
        let group = self.group(group_id);
        let err = |e: kafdo_group::GroupError| ApiError::new(e.code(), e.to_string());
        match req {
            ClientReq::Join { req, .. } => group
                .join(&req, &counts, now_ms)
                .map(ClientAns::Joined)
                .map_err(err),
            ClientReq::Heartbeat { member_id, req, .. } => group
                .heartbeat(&member_id, &req, &counts, now_ms)
                .map(ClientAns::Heartbeat)
                .map_err(err),
            ClientReq::FetchOffsets { query, .. } => group
                .fetch_offsets(&query)
                .map(ClientAns::Offsets)
                .map_err(err),
            other => panic!("{other:?} is not a group request"),
        }
    }

    fn set_group_alarm(&mut self, group_id: &str) {
        let next = self.group(group_id).next_alarm_ms().expect("group alarm");
        let slot = self.groups.get_mut(group_id).expect("group");
        slot.alarm_generation += 1;
        let generation = slot.alarm_generation;
        if let Some(at_ms) = next {
            let mut delay = (at_ms - self.now_ms).max(0);
            if self.faults_on() && self.rng.chance(100) {
                delay += self.rng.range(1, 3_000);
            }
            self.schedule(
                delay,
                Event::GroupAlarm {
                    group_id: group_id.to_owned(),
                    generation,
                },
            );
        }
    }

    fn object_call(&mut self, target: &Target, call: Call) -> Result<CallReply, CallError> {
        let now_ms = self.now_ms;
        let refused = |e: kafdo_partition::PartitionError| {
            CallError::Refused(ApiError::new(e.code(), e.to_string()))
        };
        match (target, call) {
            (Target::Metadata, Call::AllocateProducerId) => {
                Ok(CallReply::ProducerId(self.allocate_producer_id()))
            }
            (Target::Partition(tp), Call::RegisterTxn(req)) => {
                let result = self
                    .partition(tp)
                    .register_txn(&req, now_ms)
                    .map(|()| CallReply::Done)
                    .map_err(refused);
                self.observe_partition(tp);
                result
            }
            (Target::Partition(tp), Call::WriteMarker(req)) => {
                let result = self.partition(tp).write_marker(&req, now_ms);
                if let Ok(ack) = &result {
                    self.rec.observe(
                        now_ms,
                        Observation::Marker {
                            topic: tp.topic.clone(),
                            partition: tp.partition,
                            producer_id: req.producer_id,
                            producer_epoch: req.producer_epoch,
                            result: req.result,
                            offset: ack.marker_offset,
                        },
                    );
                }
                self.observe_partition(tp);
                if result.is_ok() {
                    self.arm_partition_alarm(tp);
                }
                result.map(CallReply::Marker).map_err(refused)
            }
            (Target::Group(group_id), Call::TxnOffsetCommit(req)) => {
                let result = self
                    .group(group_id)
                    .txn_offset_commit(&req, now_ms)
                    .map(|()| CallReply::Done)
                    .map_err(|e| CallError::Refused(ApiError::new(e.code(), e.to_string())));
                self.set_group_alarm(group_id);
                result
            }
            (Target::Group(group_id), Call::GroupTxnMarker(req)) => {
                let result = self.group(group_id).txn_marker(&req, now_ms);
                if result.is_ok() {
                    self.rec.observe(
                        now_ms,
                        Observation::GroupMarker {
                            group_id: group_id.clone(),
                            producer_id: req.producer_id,
                            producer_epoch: req.producer_epoch,
                            result: req.result,
                        },
                    );
                }
                self.set_group_alarm(group_id);
                result
                    .map(CallReply::Marker)
                    .map_err(|e| CallError::Refused(ApiError::new(e.code(), e.to_string())))
            }
            (target, call) => panic!("{call:?} cannot go to {target:?}"),
        }
    }

    fn target_of_call(&self, call: &Call) -> Target {
        let tp_of = |p: &PartitionRef| Tp::new(p.topic.clone(), p.partition);
        match call {
            Call::AllocateProducerId => Target::Metadata,
            Call::RegisterTxn(r) => Target::Partition(tp_of(&r.partition)),
            Call::WriteMarker(r) => Target::Partition(tp_of(&r.partition)),
            Call::TxnOffsetCommit(r) => Target::Group(r.group_id.clone()),
            Call::GroupTxnMarker(r) => Target::Group(r.group_id.clone()),
        }
    }

    // ---- coordinators ----------------------------------------------------------------------

    fn coordinator(&mut self, tid: &str) -> &mut TxnCoordinator<Db> {
        let now_ms = self.now_ms;
        let slot = self.coordinators.get_mut(tid).expect("a known coordinator");
        if slot.core.is_none() {
            let config = CoordinatorConfig {
                roll_epoch: self.config.roll_epoch,
            };
            let core = TxnCoordinator::open_with_config(slot.db.clone(), tid, now_ms, config);
            slot.core = Some(core.expect("open coordinator"));
        }
        slot.core.as_mut().expect("open")
    }

    fn coordinator_request(&mut self, tid: &str, from: Process, id: u64, req: ClientReq) {
        self.next_request += 1;
        let request = RequestId(self.next_request);
        let mut req = req;
        self.before_coordinator_request(tid, &mut req);
        if self.bug_markers_before_prepare(tid, &req) {
            return;
        }
        self.coordinators
            .get_mut(tid)
            .expect("coordinator")
            .waiting
            .insert(request, (from, id));
        self.coordinator_step(tid, move |core, now| match &req {
            ClientReq::InitProducer {
                transactional_id,
                transaction_timeout_ms,
            } => core.init_producer(
                request,
                &InitProducerRequest {
                    transactional_id: Some(transactional_id.clone()),
                    transaction_timeout_ms: Some(*transaction_timeout_ms),
                },
                now,
            ),
            ClientReq::AddPartitions { req, .. } => core.add_partitions(request, req, now),
            ClientReq::EndTxn { req, result, .. } => core.end_txn(request, req, *result, now),
            ClientReq::AddOffsets { req, .. } => core.add_offsets(request, req, now),
            other => panic!("{other:?} is not a coordinator request"),
        });
    }

    /// Runs one step of a coordinator, carries out its outputs, and resets its alarm.
    fn coordinator_step(
        &mut self,
        tid: &str,
        f: impl FnOnce(
            &mut TxnCoordinator<Db>,
            i64,
        ) -> Result<Vec<Output>, kafdo_txn_coordinator::TxnError>,
    ) {
        let now_ms = self.now_ms;
        let outputs = f(self.coordinator(tid), now_ms).expect("coordinator storage");
        for output in outputs {
            match output {
                Output::Call { id, call } => {
                    let to = self.target_of_call(&call);
                    self.send(
                        to,
                        Msg::Call {
                            from: tid.to_owned(),
                            id,
                            call,
                        },
                    );
                }
                Output::Reply { request, result } => {
                    let slot = self.coordinators.get_mut(tid).expect("coordinator");
                    let Some((process, id)) = slot.waiting.remove(&request) else {
                        panic!("coordinator {tid} answered unknown request {request}");
                    };
                    let result = result
                        .map(ClientAns::Coordinator)
                        .map_err(|e| e.to_api_error());
                    self.send(Target::Client(process), Msg::Reply { id, result });
                }
            }
        }
        self.observe_coordinator(tid);
        self.set_alarm(tid);
    }

    fn observe_coordinator(&mut self, tid: &str) {
        let core = self.coordinator(tid);
        let state = (
            core.producer_id().unwrap_or(-1),
            core.producer_epoch(),
            core.state(),
        );
        let slot = self.coordinators.get_mut(tid).expect("coordinator");
        if slot.last_observed != Some(state) {
            slot.last_observed = Some(state);
            self.rec.observe(
                self.now_ms,
                Observation::Coordinator {
                    transactional_id: tid.to_owned(),
                    producer_id: state.0,
                    producer_epoch: state.1,
                    state: state.2,
                },
            );
        }
    }

    fn set_alarm(&mut self, tid: &str) {
        let next = self.coordinator(tid).next_alarm_ms();
        let faults = self.faults_on();
        let slot = self.coordinators.get_mut(tid).expect("coordinator");
        slot.alarm_generation += 1;
        let generation = slot.alarm_generation;
        let Some(at_ms) = next else { return };
        let delay = (at_ms - self.now_ms).max(0);
        if faults && self.rng.chance(100) {
            // Late.
            let late = self.rng.range(1, 3_000);
            self.schedule(
                delay + late,
                Event::Alarm {
                    tid: tid.to_owned(),
                    generation,
                },
            );
        } else {
            self.schedule(
                delay,
                Event::Alarm {
                    tid: tid.to_owned(),
                    generation,
                },
            );
        }
        if faults && self.rng.chance(100) {
            // Early or twice: a spurious firing that nothing replaces.
            let at = self.rng.range(0, delay + 1_000);
            self.schedule(
                at,
                Event::Alarm {
                    tid: tid.to_owned(),
                    generation: u64::MAX,
                },
            );
        }
    }

    // ---- clients ---------------------------------------------------------------------------

    fn wake(&mut self, process: Process, generation: u64) {
        let slot = self.clients.get_mut(&process).expect("client");
        if slot.done || generation != slot.wake_generation {
            return;
        }
        if slot.outstanding.take().is_some() {
            self.rec.info(self.now_ms, process, "timeout");
            let slot = self.clients.get_mut(&process).expect("client");
            slot.client.on_result(Answered::Timeout, &mut self.rng);
        }
        self.act(process);
    }

    fn act(&mut self, process: Process) {
        let env = Env {
            partitions: &self.partition_refs,
            settling: self.settling,
            now_ms: self.now_ms,
        };
        let slot = self.clients.get_mut(&process).expect("client");
        let action = slot.client.next(&mut self.rng, &env);
        slot.wake_generation += 1;
        let generation = slot.wake_generation;
        match action {
            Action::Done => slot.done = true,
            Action::Sleep(ms) => self.schedule(
                ms,
                Event::Wake {
                    process,
                    generation,
                },
            ),
            Action::Send(send) => {
                let (req, op) = *send;
                self.next_request += 1;
                let id = self.next_request;
                slot.outstanding = Some(id);
                if let ClientReq::Append(r) = &req {
                    if r.partition.topic == COMPACTED_TOPIC {
                        let records = r.records.iter().map(keyed_value).collect();
                        self.rec.observe(self.now_ms, Observation::Keys { records });
                    }
                }
                self.rec.invoke(self.now_ms, process, op);
                let target = match &req {
                    ClientReq::AllocateProducerId => Target::Metadata,
                    ClientReq::Append(r) => {
                        Target::Partition(Tp::new(r.partition.topic.clone(), r.partition.partition))
                    }
                    ClientReq::Read(r) => {
                        Target::Partition(Tp::new(r.partition.topic.clone(), r.partition.partition))
                    }
                    ClientReq::PartitionOffsets(p) => {
                        Target::Partition(Tp::new(p.topic.clone(), p.partition))
                    }
                    ClientReq::InitProducer {
                        transactional_id, ..
                    }
                    | ClientReq::AddPartitions {
                        transactional_id, ..
                    }
                    | ClientReq::EndTxn {
                        transactional_id, ..
                    }
                    | ClientReq::AddOffsets {
                        transactional_id, ..
                    } => Target::Coordinator(transactional_id.clone()),
                    ClientReq::Join { group_id, .. }
                    | ClientReq::Heartbeat { group_id, .. }
                    | ClientReq::FetchOffsets { group_id, .. } => Target::Group(group_id.clone()),
                    ClientReq::Ingest { .. } => Target::Worker,
                };
                let timeout = self.config.client_timeout_ms;
                self.schedule(
                    timeout,
                    Event::Wake {
                        process,
                        generation,
                    },
                );
                self.send(
                    target,
                    Msg::Request {
                        from: process,
                        id,
                        req,
                    },
                );
            }
        }
    }

    fn client_answer(&mut self, process: Process, id: u64, result: Result<ClientAns, ApiError>) {
        let slot = self.clients.get_mut(&process).expect("client");
        if slot.outstanding != Some(id) {
            // A late or duplicate answer to a request the client gave up on.
            return;
        }
        slot.outstanding = None;
        match &result {
            Ok(ans) => {
                let reply = history_reply(ans);
                self.rec.ok(self.now_ms, process, reply);
            }
            Err(e) => {
                self.rec
                    .fail(self.now_ms, process, e.code, e.message.clone());
            }
        }
        let slot = self.clients.get_mut(&process).expect("client");
        let answered = match &result {
            Ok(ans) => Answered::Ok(ans),
            Err(e) => Answered::Fail(e),
        };
        slot.client.on_result(answered, &mut self.rng);
        // Back off a little after a retriable refusal, think briefly otherwise.
        let pause = match &result {
            Err(e) if e.code.is_retriable() => self.rng.range(50, 300),
            _ => self.rng.range(0, 30),
        };
        slot.wake_generation += 1;
        let generation = slot.wake_generation;
        self.schedule(
            pause,
            Event::Wake {
                process,
                generation,
            },
        );
    }

    // ---- faults ----------------------------------------------------------------------------

    fn fault(&mut self) {
        if !self.faults_on() {
            return;
        }
        // Ingestion adds key objects and Worker runs to what may fail; seeds without it draw
        // their faults as before.
        let choices = if self.config.ingest_clients > 0 {
            13
        } else {
            10
        };
        match self.rng.below(choices) {
            10 | 11 => {
                let objects: Vec<String> = self.keys.keys().cloned().collect();
                if !objects.is_empty() {
                    let object = self.rng.pick(&objects).clone();
                    self.restart_key(&object);
                }
            }
            12 => self.kill_run(),
            0..=3 => {
                let tps: Vec<Tp> = self.partitions.keys().cloned().collect();
                let tp = self.rng.pick(&tps).clone();
                self.restart_partition(&tp);
            }
            4..=6 => {
                let tids: Vec<String> = self.coordinators.keys().cloned().collect();
                if !tids.is_empty() {
                    let tid = self.rng.pick(&tids).clone();
                    self.restart_coordinator(&tid);
                }
            }
            7 => {
                let groups: Vec<String> = self.groups.keys().cloned().collect();
                if groups.is_empty() || self.rng.chance(300) {
                    self.metadata = None;
                    self.note("restart metadata".into());
                } else {
                    let group_id = self.rng.pick(&groups).clone();
                    self.groups.get_mut(&group_id).expect("group").core = None;
                    self.note(format!("restart group {group_id}"));
                }
            }
            _ => {
                // 8 and 9: a client crashes.
                let processes: Vec<Process> = self
                    .clients
                    .iter()
                    .filter(|(_, c)| !c.done)
                    .map(|(p, _)| *p)
                    .collect();
                if !processes.is_empty() {
                    let process = *self.rng.pick(&processes);
                    self.crash_client(process);
                }
            }
        }
        let next = self.rng.range(1, 2 * self.config.fault_interval_ms);
        self.schedule(next, Event::Fault);
    }

    fn restart_partition(&mut self, tp: &Tp) {
        self.note(format!("restart partition {tp}"));
        let bug = self.config.bugs.skip_duplicate_check;
        let slot = self.partitions.get_mut(tp).expect("partition");
        slot.core = None;
        slot.armed_ms = None;
        if bug {
            // The planted bug: the producer state of the latest append did not survive.
            for (producer_id, row) in std::mem::take(&mut slot.stale_producers) {
                restore_producer_row(&slot.db, producer_id, row.as_ref());
            }
        }
    }

    fn restart_coordinator(&mut self, tid: &str) {
        self.note(format!("restart coordinator {tid}"));
        let slot = self.coordinators.get_mut(tid).expect("coordinator");
        slot.core = None;
        slot.waiting.clear();
    }

    fn crash_client(&mut self, process: Process) {
        let slot = self.clients.get_mut(&process).expect("client");
        self.rec.observe(
            self.now_ms,
            Observation::Note {
                text: format!("crash client p{process}"),
            },
        );
        if slot.outstanding.take().is_some() {
            self.rec.info(self.now_ms, process, "client crashed");
        }
        slot.client.crash();
        slot.wake_generation += 1;
        let generation = slot.wake_generation;
        let delay = self.rng.range(10, 1_000);
        self.schedule(
            delay,
            Event::Wake {
                process,
                generation,
            },
        );
    }

    // ---- planted bugs ------------------------------------------------------------------------

    fn before_append(&mut self, tp: &Tp, req: &mut kafdo_types::rpc::AppendRequest) {
        let bugs = self.config.bugs;
        let Some(producer) = req.producer.as_mut() else {
            return;
        };
        if bugs.skip_duplicate_check {
            let slot = self.partitions.get(tp).expect("partition");
            let row = slot
                .db
                .first(
                    "SELECT producer_id, producer_epoch, last_seen_ms, batches FROM producers \
                     WHERE producer_id = ?",
                    &[Param::Integer(producer.producer_id)],
                )
                .ok()
                .flatten();
            let slot = self.partitions.get_mut(tp).expect("partition");
            slot.stale_producers.insert(producer.producer_id, row);
        }
        if bugs.no_epoch_fence && req.transactional {
            let current = self
                .partition(tp)
                .open_transactions()
                .into_iter()
                .find(|t| t.producer_id == producer.producer_id)
                .map(|t| t.producer_epoch);
            if let Some(epoch) = current {
                if producer.producer_epoch < epoch {
                    producer.producer_epoch = epoch;
                }
            }
        }
    }

    /// The planted `compaction_ignores_lso` and `retention_ignores_lso` bugs: `f` (a
    /// compaction step, the question when the next is due, or an append) runs on a core that sees no open transaction (their first offsets
    /// hidden), so its last stable offset is the high watermark; then the rows are put back
    /// and the next event reopens a correct core.
    fn with_lso_hidden<T>(&mut self, tp: &Tp, f: impl FnOnce(&mut Partition<Db>) -> T) -> T {
        // Opening the core creates the schema on a partition's first call.
        self.partition(tp);
        let slot = self.partitions.get_mut(tp).expect("partition");
        slot.core = None;
        let db = slot.db.clone();
        let open = db
            .exec(
                "SELECT producer_id, first_offset FROM transactions \
                 WHERE open = 1 AND first_offset IS NOT NULL",
                &[],
            )
            .expect("open transactions");
        db.run(
            "UPDATE transactions SET first_offset = NULL WHERE open = 1",
            &[],
        )
        .expect("hide open transactions");
        let result = f(self.partition(tp));
        self.partitions.get_mut(tp).expect("partition").core = None;
        // Raised to the log start, which only `retention_ignores_lso` moves, so that the
        // partition opens again (its last stable offset may not be below its log start).
        for row in open.iter() {
            db.run(
                "UPDATE transactions SET first_offset = \
                 MAX(?, (SELECT log_start_offset FROM partition_meta WHERE id = 1)) \
                 WHERE producer_id = ?",
                &[Param::Integer(row.int(1)), Param::Integer(row.int(0))],
            )
            .expect("restore an open transaction");
        }
        result
    }

    fn before_coordinator_request(&mut self, tid: &str, req: &mut ClientReq) {
        if !self.config.bugs.no_epoch_fence {
            return;
        }
        let core = self.coordinator(tid);
        let current = core.producer_epoch();
        let epoch = match req {
            ClientReq::AddPartitions { req, .. } => &mut req.producer_epoch,
            ClientReq::EndTxn { req, .. } => &mut req.producer_epoch,
            _ => return,
        };
        if *epoch < current {
            *epoch = current;
        }
    }

    /// The planted `markers_before_prepare` bug: on a commit of an open transaction, write the
    /// commit markers first, and sometimes restart before PrepareCommit is persisted. Returns
    /// true when the request died with the restart.
    fn bug_markers_before_prepare(&mut self, tid: &str, req: &ClientReq) -> bool {
        if !self.config.bugs.markers_before_prepare {
            return false;
        }
        let ClientReq::EndTxn {
            req,
            result: TxnResult::Commit,
            ..
        } = req
        else {
            return false;
        };
        let now_ms = self.now_ms;
        let core = self.coordinator(tid);
        if core.state() != TransactionState::Ongoing || core.producer_epoch() != req.producer_epoch
        {
            return false;
        }
        let description = core.describe(now_ms);
        for p in description.partitions {
            let tp = Tp::new(p.topic, p.partition);
            let partition = self.partition_refs[&tp].clone();
            self.next_fake_call += 1;
            let call = Call::WriteMarker(WriteMarkerRequest {
                partition,
                producer_id: req.producer_id,
                producer_epoch: req.producer_epoch,
                result: TxnResult::Commit,
            });
            // A call id no incarnation ever uses, so its result is ignored.
            let id = CallId {
                incarnation: u32::MAX,
                seq: self.next_fake_call,
            };
            self.send(
                Target::Partition(tp),
                Msg::Call {
                    from: tid.to_owned(),
                    id,
                    call,
                },
            );
        }
        if self.faults_on() && self.rng.chance(300) {
            self.restart_coordinator(tid);
            return true;
        }
        false
    }

    // ---- the end ------------------------------------------------------------------------------

    fn final_scans(&mut self) {
        self.rec.observe(self.now_ms, Observation::Settled);
        let tps: Vec<Tp> = self.partition_refs.keys().cloned().collect();
        for tp in tps {
            // The core's own consistency check of its storage (rows within the log, dense
            // offsets from the log start, indexes that match): it asserts.
            self.partition(&tp).verify().expect("verify a partition");
            for isolation in [Isolation::ReadUncommitted, Isolation::ReadCommitted] {
                self.rec.invoke(
                    self.now_ms,
                    FINAL_PROCESS,
                    Request::Scan {
                        topic: tp.topic.clone(),
                        partition: tp.partition,
                        isolation,
                    },
                );
                let reply = self.scan(&tp, isolation);
                self.rec.ok(self.now_ms, FINAL_PROCESS, reply);
            }
        }
        let groups: Vec<String> = self.groups.keys().cloned().collect();
        for group_id in groups {
            self.rec.invoke(
                self.now_ms,
                FINAL_PROCESS,
                Request::FetchOffsets {
                    group_id: group_id.clone(),
                    require_stable: true,
                },
            );
            let query = OffsetFetchQuery {
                require_stable: true,
                topic: None,
                partitions: None,
            };
            match self.group_request(
                &group_id,
                ClientReq::FetchOffsets {
                    group_id: group_id.clone(),
                    query,
                },
            ) {
                Ok(ans) => {
                    let reply = history_reply(&ans);
                    self.rec.ok(self.now_ms, FINAL_PROCESS, reply);
                }
                Err(e) => {
                    self.rec.fail(self.now_ms, FINAL_PROCESS, e.code, e.message);
                }
            }
        }
    }

    fn scan(&mut self, tp: &Tp, isolation: Isolation) -> Reply {
        let pref = self.partition_refs[tp].clone();
        let now_ms = self.now_ms;
        let mut records = Vec::new();
        // From the log start: below it a read is refused (retention moves it).
        let mut offset = self
            .partition(tp)
            .info(&pref)
            .expect("partition info")
            .log_start_offset;
        loop {
            let fetched = self
                .partition(tp)
                .read(
                    &ReadRequest {
                        partition: pref.clone(),
                        offset,
                        max_records: 1_000,
                        max_bytes: 1 << 24,
                        isolation,
                        wait_ms: 0,
                    },
                    now_ms,
                )
                .expect("a final scan");
            records.extend(fetched.records.iter().map(ReadRecord::from_record));
            let bound = match isolation {
                Isolation::ReadCommitted => fetched.last_stable_offset,
                Isolation::ReadUncommitted => fetched.high_watermark,
            };
            if fetched.next_offset >= bound || fetched.next_offset == offset {
                return Reply::Fetch {
                    records,
                    next_offset: fetched.next_offset,
                    high_watermark: fetched.high_watermark,
                    last_stable_offset: fetched.last_stable_offset,
                };
            }
            offset = fetched.next_offset;
        }
    }
}

fn history_reply(ans: &ClientAns) -> Reply {
    match ans {
        ClientAns::ProducerId(producer_id) => Reply::Producer {
            producer_id: *producer_id,
            producer_epoch: 0,
        },
        ClientAns::Produced(p) => Reply::Produce {
            base_offset: p.base_offset,
            last_offset: p.last_offset,
            duplicate: p.duplicate,
        },
        ClientAns::PartitionOffsets(info) => Reply::PartitionOffsets {
            log_start_offset: info.log_start_offset,
            high_watermark: info.high_watermark,
            last_stable_offset: info.last_stable_offset,
        },
        ClientAns::Fetched(f) => Reply::Fetch {
            records: f.records.iter().map(ReadRecord::from_record).collect(),
            next_offset: f.next_offset,
            high_watermark: f.high_watermark,
            last_stable_offset: f.last_stable_offset,
        },
        ClientAns::Coordinator(Answer::Producer(p)) => Reply::Producer {
            producer_id: p.producer_id,
            producer_epoch: p.producer_epoch,
        },
        ClientAns::Coordinator(Answer::PartitionsAdded | Answer::OffsetsAdded) => Reply::Done,
        ClientAns::Coordinator(Answer::Ended(e)) => Reply::EndTxn {
            state: e.state,
            producer_id: Some(e.producer_id),
            producer_epoch: e.producer_epoch,
        },
        ClientAns::Joined(j) => Reply::Member {
            member_id: j.member_id.clone(),
            generation_id: j.generation_id,
            assignment: tps(&j.assignment),
        },
        ClientAns::Heartbeat(h) => Reply::Member {
            // The heartbeat's member id is the request's; the checker reads it from there.
            member_id: String::new(),
            generation_id: h.generation_id,
            assignment: tps(&h.assignment),
        },
        ClientAns::Ingested(offsets) => Reply::Ingest {
            offsets: offsets.clone(),
        },
        ClientAns::Offsets(o) => Reply::Offsets {
            offsets: o
                .offsets
                .iter()
                .map(|o| GroupOffset {
                    topic: o.topic.clone(),
                    partition: o.partition,
                    offset: o.offset,
                })
                .collect(),
        },
    }
}

/// The history's declaration of a keyed record's key (its value named as [`ReadRecord`] does).
fn keyed_value(r: &kafdo_types::ProduceRecord) -> KeyedValue {
    let read = ReadRecord::from_record(&kafdo_types::Record {
        offset: 0,
        timestamp: 0,
        key: r.key.clone(),
        value: r.value.clone(),
        headers: r.headers.clone(),
    });
    KeyedValue {
        value: read.value,
        key: read.key.expect("a keyed record"),
        tombstone: read.tombstone,
    }
}

fn tps(assignment: &[kafdo_types::txn::TopicPartition]) -> Vec<Tp> {
    assignment
        .iter()
        .map(|tp| Tp::new(tp.topic.clone(), tp.partition))
        .collect()
}

/// Puts a producer's state row back as it was (the `skip_duplicate_check` bug).
fn restore_producer_row(db: &Db, producer_id: i64, row: Option<&kafdo_sql::Row>) {
    db.run(
        "DELETE FROM producers WHERE producer_id = ?",
        &[Param::Integer(producer_id)],
    )
    .expect("delete a producer row");
    if let Some(row) = row {
        db.run(
            "INSERT INTO producers (producer_id, producer_epoch, last_seen_ms, batches) \
             VALUES (?, ?, ?, ?)",
            &[
                Param::Integer(row.int(0)),
                Param::Integer(row.int(1)),
                Param::Integer(row.int(2)),
                Param::Blob(row.blob(3)),
            ],
        )
        .expect("restore a producer row");
    }
}
