//! The deterministic simulator: the code the Worker runs, every object in one process, one
//! seed, logical time.
//!
//! # What runs
//!
//! Not a model of Kafdo but Kafdo: a client's request goes to a simulated Worker, which runs
//! `kafdo_broker`'s orchestration for it (topic lookup and its cache, produce fan-out, the
//! `Idempotency-Key` protocol, transactions, groups) on one of a few simulated isolates; every
//! object call that orchestration makes is a message to an object, which runs its
//! `kafdo_broker::host` (the same host the Durable Object class runs) over the real core on
//! in-memory SQLite. The coordinator's calls to partitions and groups go through the same host
//! and `kafdo_broker::host::coordinator::perform`. Nothing of the Worker's logic is written
//! again here: what the simulator adds is the world around it.
//!
//! | file | what it is |
//! | --- | --- |
//! | `mod.rs` | the world: events, the network, the loop, the clients' requests and answers |
//! | [`config`] | what a seed draws, and the planted bugs |
//! | [`executor`] | the broker's async code as tasks only the event loop polls; its `Runtime` |
//! | `worker` | the simulated Worker: isolates, one task per request |
//! | `objects` | every object: its host over SQLite, its calls, restarts, observations |
//! | `alarms` | one alarm helper for every object: armed as the host says, fired late, early or twice |
//! | `faults` | restarts, crashes, isolates killed |
//! | `bugs` | the planted bugs' hooks |
//! | `end` | settling and the final scans |
//! | [`clients`] | simulated clients (producers, transactional producers, consumers, processors, ingestion) |
//! | [`scripts`] | the ingestion clients' scripts |
//!
//! # The event loop
//!
//! The world is a queue of events ordered by (logical time, sequence number). Popping one
//! advances the clock to its time and runs it to completion: deliver a message, fire an
//! object's alarm, pass a call's deadline, wake a client (to act, or to give up on its
//! request), or inject a fault. Then every task the event made ready is polled, and the calls
//! they made are sent. Nothing else moves time, nothing reads a clock, and the only randomness
//! is the seeded [`Rng`] (and a second one, from the same seed, that the tasks draw from), so
//! one seed is one run, bit for bit.
//!
//! # The network
//!
//! Every request, answer and object call travels through `World::send`: with faults on it may
//! be dropped, delayed (usually a few ms, sometimes seconds: reordering comes from random
//! delays), or duplicated. An object call has the broker's deadline (an event); clients give up
//! on a request after their own timeout (an `info` completion: unknown outcome) and behave as
//! real clients must.
//!
//! # Objects and restarts
//!
//! Each object is a host over its own in-memory SQLite database. A restart drops the host's
//! memory (core and armed alarm) and keeps the database, as a Durable Object is constructed
//! again on its storage; its tasks die with it, and the calls a coordinator held are never
//! answered (their callers time out). An object may also die right after a step, before its
//! answer leaves.
//!
//! # Phases
//!
//! Clients run their workload with faults on. Then faults stop, clients finish what they
//! started, and the loop runs until nothing is left to do (coordinators finish or time out
//! their transactions). Then the world records [`Observation::Settled`] and the final scans the
//! checker needs.

mod alarms;
mod bugs;
pub mod clients;
pub mod config;
mod end;
pub mod executor;
mod faults;
mod objects;
mod placement;
pub mod scripts;
mod worker;

use std::collections::BTreeMap;
use std::rc::Rc;

use kafdo_broker::Isolate;
use kafdo_txn_coordinator::{CallError, CallId, CallReply, RequestId};
use kafdo_types::api::{CleanupPolicy, CreateTopicRequest, TopicConfig};
use kafdo_types::rpc::{Object, ObjectCall, PartitionRef};
use kafdo_types::{ApiError, ErrorCode};

use crate::history::{History, Observation, Process, Recorder, Tp};
use crate::rng::Rng;
use clients::{Action, Answered, Client, ClientAns, ClientReq, ClientSlot, Env};
pub use config::{Bugs, CompactionSetup, Config, RetentionSetup};
use executor::{Executor, Owner, SlotId};
use objects::Slot;

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
#[derive(Clone, Debug)]
enum Target {
    /// A client process.
    Client(Process),
    /// The Worker (each request delivered starts a task).
    Worker,
    /// An object.
    Object(Object),
    /// The task that made a call (its slot names it).
    Caller,
}

/// A message on the simulated network.
#[derive(Clone, Debug)]
enum Msg {
    /// A client's request to the Worker.
    Request {
        from: Process,
        id: u64,
        req: ClientReq,
    },
    /// The Worker's answer to a client.
    Reply {
        id: u64,
        result: Result<ClientAns, ApiError>,
    },
    /// A call to an object (from a Worker task or a coordinator's).
    Call { slot: SlotId, call: ObjectCall },
    /// An object's answer to a call.
    Answer {
        slot: SlotId,
        answer: Result<Vec<u8>, ApiError>,
    },
}

#[derive(Clone, Debug)]
enum Event {
    Deliver {
        to: Target,
        msg: Msg,
    },
    /// An object's alarm fires (`generation` `u64::MAX`: a spurious firing).
    Alarm {
        object: Object,
        generation: u64,
    },
    /// A call's deadline passed.
    CallDeadline {
        slot: SlotId,
    },
    Wake {
        process: Process,
        generation: u64,
    },
    Fault,
}

/// What a task ends with.
enum TaskDone {
    /// A Worker request's answer, for its client.
    Reply {
        process: Process,
        id: u64,
        result: Result<ClientAns, ApiError>,
    },
    /// A coordinator's call to another object, carried out.
    CallResult {
        transactional_id: String,
        id: CallId,
        result: Result<CallReply, CallError>,
    },
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
    /// Every partition's reference, by topic partition (for observations and final scans).
    partition_refs: BTreeMap<Tp, PartitionRef>,
    /// Topic ids to names (a partition object is named by its topic's id).
    topic_names: BTreeMap<String, String>,
    objects: BTreeMap<Object, Slot>,
    /// Each object's alarm generation: an alarm event of an older one was replaced.
    alarm_generations: BTreeMap<Object, u64>,
    /// Callers a coordinator holds: (transactional id, request) to the call to answer.
    parked: BTreeMap<(String, RequestId), SlotId>,
    clients: BTreeMap<Process, ClientSlot>,
    next_request: u64,
    executor: Executor<TaskDone>,
    /// The Worker's isolates: each request runs on one, with its caches.
    isolates: Vec<Rc<Isolate>>,
    broker_config: kafdo_broker::Config,
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

/// How many isolates the simulated Worker runs requests on.
const ISOLATES: u32 = 2;

/// Logical time the run may take before the world stops waiting for it to settle.
const MAX_RUN_MS: i64 = 30 * 60 * 1000;

/// Logical time after which faults stop even if some client has not finished: a client that
/// faults keep knocking back (crashed again before each transaction ends) would otherwise keep
/// them going until `MAX_RUN_MS` cut the run short with a transaction still open.
const MAX_FAULTS_MS: i64 = 10 * 60 * 1000;

impl World {
    /// A world for one configuration: topics created, clients placed.
    pub fn new(config: Config) -> Self {
        let rng = Rng::new(config.seed);
        let broker_config = kafdo_broker::Config {
            idempotency_key_ttl_ms: config.ingest_ttl_ms,
            idempotency_key_lease_ms: config.ingest_lease_ms,
            bugs: kafdo_broker::PlantedBugs {
                keyed_produce_ignores_reservation: config.bugs.keyed_produce_ignores_reservation,
                produce_offsets_reversed: config.bugs.produce_offsets_reversed,
            },
        };
        let mut world = Self {
            rng,
            now_ms: 0,
            next_seq: 0,
            queue: BTreeMap::new(),
            rec: Recorder::new(),
            settling: false,
            steps: 0,
            partition_refs: BTreeMap::new(),
            topic_names: BTreeMap::new(),
            objects: BTreeMap::new(),
            alarm_generations: BTreeMap::new(),
            parked: BTreeMap::new(),
            clients: BTreeMap::new(),
            next_request: 0,
            // The tasks' draws come from a generator of their own, so that the world's draws
            // do not depend on how many the broker makes.
            executor: Executor::new(Rng::new(config.seed ^ 0x7a5c_0000_0000_0001)),
            isolates: (0..ISOLATES).map(|_| Rc::new(Isolate::new())).collect(),
            broker_config,
            compaction_stats: CompactionStats::default(),
            retention_stats: RetentionStats::default(),
            config,
        };
        world.create_topics();
        world.place_clients();
        world
    }

    /// The seed's topics, created in the metadata object before the run (as an administrator
    /// would), and their partition objects.
    fn create_topics(&mut self) {
        let config = self.config.clone();
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
        for (name, count, cleanup_policy) in topics {
            let request = CreateTopicRequest {
                name: name.into(),
                partitions: count,
                config: TopicConfig {
                    retention_ms: match config.retention {
                        Some(r) if name == RETAINED_TOPIC => r.retention_ms,
                        _ => -1,
                    },
                    cleanup_policy,
                },
            };
            let topic = self.create_topic(request);
            self.topic_names
                .insert(topic.topic_id.clone(), topic.name.clone());
            for p in 0..count {
                let pref = topic.partition(p);
                self.add_partition(&pref);
                self.partition_refs.insert(Tp::new(name, p), pref);
            }
        }
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
            self.executor.set_now(at);
            self.steps += 1;
            self.step(event);
            self.run_tasks();
            if !self.settling
                && (self.clients.values().all(|c| c.done) || self.now_ms >= MAX_FAULTS_MS)
            {
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

    fn faults_on(&self) -> bool {
        self.config.faults && !self.settling
    }

    fn step(&mut self, event: Event) {
        match event {
            Event::Deliver { to, msg } => self.deliver(to, msg),
            Event::Alarm { object, generation } => self.alarm(&object, generation),
            Event::CallDeadline { slot } => {
                if self.executor.is_pending(slot) {
                    let e = ApiError::new(
                        ErrorCode::RequestTimedOut,
                        "the object did not answer in time",
                    );
                    self.executor.resolve(slot, Err(e));
                }
            }
            Event::Wake {
                process,
                generation,
            } => self.wake(process, generation),
            Event::Fault => self.fault(),
        }
    }

    /// Polls the tasks the last event made ready, sends the calls they made, and handles the
    /// tasks that finished, until nothing is left to do at this instant.
    fn run_tasks(&mut self) {
        loop {
            let finished = self.executor.poll_ready();
            let outbox = self.executor.take_outbox();
            if finished.is_empty() && outbox.is_empty() {
                return;
            }
            for call in outbox {
                self.schedule(
                    i64::from(call.timeout_ms),
                    Event::CallDeadline { slot: call.slot },
                );
                self.send(
                    Target::Object(call.object),
                    Msg::Call {
                        slot: call.slot,
                        call: call.call,
                    },
                );
            }
            for (_, done) in finished {
                match done {
                    TaskDone::Reply {
                        process,
                        id,
                        result,
                    } => self.send(Target::Client(process), Msg::Reply { id, result }),
                    TaskDone::CallResult {
                        transactional_id,
                        id,
                        result,
                    } => self.coordinator_call_result(&transactional_id, id, result),
                }
            }
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
            (Target::Worker, Msg::Request { from, id, req }) => self.start_request(from, id, req),
            (Target::Object(object), Msg::Call { slot, call }) => {
                if let Some(answer) = self.serve(&object, slot, call) {
                    self.send(Target::Caller, Msg::Answer { slot, answer });
                }
            }
            (Target::Caller, Msg::Answer { slot, answer }) => self.executor.resolve(slot, answer),
            (to, msg) => panic!("misrouted message {msg:?} to {to:?}"),
        }
    }

    // ---- clients ---------------------------------------------------------------------------

    fn add_client(&mut self, process: Process, client: Client) {
        self.clients.insert(process, ClientSlot::new(client));
        let at = self.rng.range(0, 100);
        self.schedule(
            at,
            Event::Wake {
                process,
                generation: 0,
            },
        );
    }

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
        // Only the impostor looks at the allocator (as an attacker would, from its own inits).
        let impostor = matches!(self.clients[&process].client, Client::Impostor(_));
        let env = Env {
            settling: self.settling,
            now_ms: self.now_ms,
            next_producer_id: impostor.then(|| self.next_client_producer_id()),
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
                if let Some(records) = req.compacted_keys() {
                    self.rec.observe(self.now_ms, Observation::Keys { records });
                }
                self.rec.invoke(self.now_ms, process, op);
                let timeout = self.config.client_timeout_ms;
                self.schedule(
                    timeout,
                    Event::Wake {
                        process,
                        generation,
                    },
                );
                self.send(
                    Target::Worker,
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
                let reply = ans.history_reply();
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

    /// Kills every task of `owner` (an isolate reset, an object restart).
    fn kill_tasks(&mut self, owner: &Owner) -> usize {
        self.executor.kill(owner)
    }
}
