//! Every object of the simulated deployment: its `kafdo_broker::host` over in-memory SQLite,
//! its calls (with the planted bugs' hooks), the effects of its steps, its restarts, and what
//! the history observes of it.

use std::rc::Rc;

use kafdo_broker::cbor::from_cbor;
use kafdo_broker::host::coordinator::{perform, CoordinatorHost, CoordinatorStep, Reception};
use kafdo_broker::host::group::GroupHost;
use kafdo_broker::host::key::KeyHost;
use kafdo_broker::host::metadata::MetadataHost;
use kafdo_broker::host::partition::PartitionHost;
use kafdo_broker::host::Effects;
use kafdo_partition::PartitionConfig;
use kafdo_sql::Sqlite;
use kafdo_txn_coordinator::{CallError, CallId, CallReply, CoordinatorConfig};
use kafdo_types::api::{CleanupPolicy, CreateTopicRequest};
use kafdo_types::rpc::{
    CoordinatorCall, GroupCall, KeyBeginAnswer, KeyCall, MarkerAck, MetadataCall, Object,
    ObjectCall, PartitionCall, PartitionRef, ProducerIdBlock, TopicMetadata,
};
use kafdo_types::txn::TransactionState;
use kafdo_types::ApiError;

use super::executor::{Owner, SlotId};
use super::{Msg, Target, TaskDone, World, COMPACTED_TOPIC, RETAINED_TOPIC};
use crate::history::{Observation, Tp};

/// An object's database, shared by its host and the planted bugs' hooks.
pub(super) type Db = Rc<Sqlite>;

/// A partition object.
pub(super) struct PartitionSlot {
    pub(super) db: Db,
    pub(super) host: PartitionHost<Db>,
    /// The offsets last observed (log start, high watermark, LSO).
    last_observed: Option<(i64, i64, i64)>,
    /// For the planted `skip_duplicate_check` bug: each producer's state row before its latest
    /// append, restored when the partition restarts.
    pub(super) stale_producers: std::collections::BTreeMap<i64, Option<kafdo_sql::Row>>,
}

/// A coordinator object.
pub(super) struct CoordinatorSlot {
    pub(super) host: CoordinatorHost<Db>,
    /// The producer id, epoch and state last observed.
    last_observed: Option<(i64, i32, TransactionState)>,
}

/// An `Idempotency-Key` object.
pub(super) struct KeySlot {
    pub(super) db: Db,
    pub(super) host: KeyHost<Db>,
}

/// One object.
pub(super) enum Slot {
    Metadata(MetadataHost<Db>),
    Partition(Box<PartitionSlot>),
    Coordinator(Box<CoordinatorSlot>),
    Group(GroupHost<Db>),
    Key(KeySlot),
}

impl World {
    /// Creates a topic in the metadata object (the run's setup, as an administrator would).
    pub(super) fn create_topic(&mut self, request: CreateTopicRequest) -> TopicMetadata {
        let now_ms = self.now_ms;
        let served = self
            .metadata_host()
            .serve(MetadataCall::CreateTopic(request), now_ms);
        from_cbor(&served.answer.expect("create a topic")).expect("a topic")
    }

    fn metadata_host(&mut self) -> &mut MetadataHost<Db> {
        let slot = self
            .objects
            .entry(Object::Metadata)
            .or_insert_with(|| Slot::Metadata(MetadataHost::new(Rc::new(Sqlite::memory()))));
        match slot {
            Slot::Metadata(host) => host,
            _ => unreachable!("the metadata object's slot"),
        }
    }

    /// A partition object of a topic the setup created, with the core's bounds for its topic
    /// (compacted partitions get the seed's short intervals).
    pub(super) fn add_partition(&mut self, pref: &PartitionRef) {
        let mut config = PartitionConfig::default();
        if let (Some(c), CleanupPolicy::Compact) =
            (self.config.compaction, pref.config.cleanup_policy)
        {
            config.delete_retention_ms = if self.config.bugs.compaction_ignores_delete_retention {
                0
            } else {
                c.delete_retention_ms
            };
            config.compaction_interval_ms = c.compaction_interval_ms;
        }
        let db: Db = Rc::new(Sqlite::memory());
        let slot = PartitionSlot {
            host: PartitionHost::new(db.clone(), config),
            db,
            last_observed: None,
            stale_producers: Default::default(),
        };
        self.objects
            .insert(Object::partition(pref), Slot::Partition(Box::new(slot)));
    }

    /// The object's slot, made on first use for the objects a run names as it goes
    /// (coordinators, groups, keys).
    pub(super) fn slot(&mut self, object: &Object) -> &mut Slot {
        self.objects
            .entry(object.clone())
            .or_insert_with(|| match object {
                Object::Coordinator(id) => {
                    let config = CoordinatorConfig {
                        roll_epoch: self.config.roll_epoch,
                    };
                    let db: Db = Rc::new(Sqlite::memory());
                    Slot::Coordinator(Box::new(CoordinatorSlot {
                        host: CoordinatorHost::new(db, Some(id.clone()), config),
                        last_observed: None,
                    }))
                }
                Object::Group(_) => Slot::Group(GroupHost::new(Rc::new(Sqlite::memory()))),
                Object::Key { .. } => {
                    let db: Db = Rc::new(Sqlite::memory());
                    Slot::Key(KeySlot {
                        host: KeyHost::new(db.clone()),
                        db,
                    })
                }
                other => panic!("{other} does not exist in this run"),
            })
    }

    pub(super) fn partition_slot(&mut self, tp: &Tp) -> &mut PartitionSlot {
        let object = Object::partition(&self.partition_refs[tp]);
        match self.slot(&object) {
            Slot::Partition(slot) => slot,
            _ => unreachable!("a partition's slot"),
        }
    }

    fn coordinator_slot(&mut self, transactional_id: &str) -> &mut CoordinatorSlot {
        match self.slot(&Object::Coordinator(transactional_id.to_owned())) {
            Slot::Coordinator(slot) => slot,
            _ => unreachable!("a coordinator's slot"),
        }
    }

    pub(super) fn group_host(&mut self, group_id: &str) -> &mut GroupHost<Db> {
        match self.slot(&Object::Group(group_id.to_owned())) {
            Slot::Group(host) => host,
            _ => unreachable!("a group's slot"),
        }
    }

    /// The topic partition of a partition object.
    pub(super) fn tp_of(&self, object: &Object) -> Tp {
        match object {
            Object::Partition {
                topic_id,
                partition,
            } => Tp::new(self.topic_names[topic_id].clone(), *partition),
            other => panic!("{other} is not a partition"),
        }
    }

    /// A call reaches an object: its host serves it. `None` when there is no answer to send
    /// (the object died after its step, or a coordinator parked the caller).
    pub(super) fn serve(
        &mut self,
        object: &Object,
        slot: SlotId,
        call: ObjectCall,
    ) -> Option<Result<Vec<u8>, ApiError>> {
        assert_eq!(
            object.kind(),
            call.kind(),
            "{} sent to {object}",
            call.path()
        );
        let answer = match call {
            ObjectCall::Metadata(call) => Some(self.serve_metadata(call)),
            ObjectCall::Partition(call) => Some(self.serve_partition(object, call)),
            ObjectCall::Coordinator(call) => self.serve_coordinator(object, slot, call),
            ObjectCall::Group(call) => Some(self.serve_group(object, call)),
            ObjectCall::Key(call) => Some(self.serve_key(object, call)),
            ObjectCall::Bench(_) => panic!("the simulator has no bench objects"),
        };
        if answer.is_some() && self.faults_on() && self.rng.chance(20) {
            // The object dies after its step, before its answer leaves.
            self.restart(object);
            return None;
        }
        answer
    }

    fn serve_partition(
        &mut self,
        object: &Object,
        mut call: PartitionCall,
    ) -> Result<Vec<u8>, ApiError> {
        let tp = self.tp_of(object);
        let now_ms = self.now_ms;
        self.before_partition_call(&tp, &mut call);
        let marker = match &call {
            PartitionCall::WriteMarker(req) => {
                Some((req.producer_id, req.producer_epoch, req.result))
            }
            _ => None,
        };
        let observe = !matches!(call, PartitionCall::Read(_) | PartitionCall::Info(_));
        let hide_lso = self.config.bugs.retention_ignores_lso
            && tp.topic == RETAINED_TOPIC
            && matches!(call, PartitionCall::Append(_));
        let served = if hide_lso {
            self.with_lso_hidden(&tp, |host| host.serve(call, now_ms))
        } else {
            self.partition_slot(&tp).host.serve(call, now_ms)
        };
        if let (Some((producer_id, producer_epoch, result)), Ok(answer)) = (marker, &served.answer)
        {
            let ack: MarkerAck = from_cbor(answer).expect("a marker's answer");
            self.rec.observe(
                now_ms,
                Observation::Marker {
                    topic: tp.topic.clone(),
                    partition: tp.partition,
                    producer_id,
                    producer_epoch,
                    result,
                    offset: ack.marker_offset,
                },
            );
        }
        if observe {
            self.observe_partition(&tp);
        }
        self.apply(object, served.effects);
        served.answer
    }

    fn serve_metadata(&mut self, call: MetadataCall) -> Result<Vec<u8>, ApiError> {
        let now_ms = self.now_ms;
        let allocates = matches!(call, MetadataCall::AllocateProducerIds(_));
        let answer = self.metadata_host().serve(call, now_ms).answer;
        if let (true, Ok(answer)) = (allocates, &answer) {
            let block: ProducerIdBlock = from_cbor(answer).expect("a block's answer");
            self.rec
                .observe(now_ms, Observation::ProducerIds { below: block.end });
        }
        answer
    }

    /// The next client producer id the metadata object will hand out (the impostor's aim).
    pub(super) fn next_client_producer_id(&mut self) -> i64 {
        self.metadata_host()
            .core()
            .and_then(|core| {
                core.producer_id_marks()
                    .map_err(|e| ApiError::new(e.code(), e.to_string()))
            })
            .expect("the producer id marks")
            .client_below
    }

    fn serve_group(&mut self, object: &Object, call: GroupCall) -> Result<Vec<u8>, ApiError> {
        let Object::Group(group_id) = object else {
            unreachable!("a group call goes to a group")
        };
        let now_ms = self.now_ms;
        let marker = match &call {
            GroupCall::TxnMarker(req) => Some((req.producer_id, req.producer_epoch, req.result)),
            _ => None,
        };
        let served = self.group_host(group_id).serve(call, now_ms);
        if let (Some((producer_id, producer_epoch, result)), Ok(_)) = (marker, &served.answer) {
            self.rec.observe(
                now_ms,
                Observation::GroupMarker {
                    group_id: group_id.clone(),
                    producer_id,
                    producer_epoch,
                    result,
                },
            );
        }
        self.apply(object, served.effects);
        served.answer
    }

    fn serve_key(&mut self, object: &Object, call: KeyCall) -> Result<Vec<u8>, ApiError> {
        let now_ms = self.now_ms;
        let completes = match &call {
            KeyCall::Complete(c) => Some((c.producer_id, c.attempt)),
            _ => None,
        };
        let is_begin = matches!(call, KeyCall::Begin(_));
        let Slot::Key(key) = self.slot(object) else {
            unreachable!("a key's slot")
        };
        let served = key.host.serve(call, now_ms);
        if let Ok(answer) = &served.answer {
            if is_begin {
                if let Ok(KeyBeginAnswer::Proceed {
                    producer_id,
                    attempt,
                    ..
                }) = from_cbor(answer)
                {
                    self.note(format!(
                        "key {}: attempt {attempt} proceeds with pid={producer_id}",
                        object.name()
                    ));
                }
            }
            if let Some((producer_id, attempt)) = completes {
                self.note(format!(
                    "key {}: attempt {attempt} of pid={producer_id} completes",
                    object.name()
                ));
            }
        }
        self.apply(object, served.effects);
        served.answer
    }

    fn serve_coordinator(
        &mut self,
        object: &Object,
        slot: SlotId,
        mut call: CoordinatorCall,
    ) -> Option<Result<Vec<u8>, ApiError>> {
        let Object::Coordinator(tid) = object else {
            unreachable!("a coordinator call goes to a coordinator")
        };
        self.before_coordinator_call(tid, &mut call);
        if self.bug_markers_before_prepare(tid, &call) {
            // The request died with the coordinator.
            return None;
        }
        let now_ms = self.now_ms;
        let (reception, step) = self.coordinator_slot(tid).host.call(call, now_ms);
        let answer = match reception {
            Reception::Answered(answer) => Some(answer),
            Reception::Waiting(request) => {
                self.parked.insert((tid.clone(), request), slot);
                None
            }
        };
        self.carry_out(tid, step);
        answer
    }

    /// A coordinator's call to another object came back (its task finished).
    pub(super) fn coordinator_call_result(
        &mut self,
        tid: &str,
        id: CallId,
        result: Result<CallReply, CallError>,
    ) {
        let now_ms = self.now_ms;
        let step = self
            .coordinator_slot(tid)
            .host
            .on_call_result(id, result, now_ms);
        self.carry_out(tid, step);
    }

    /// Carries out a coordinator's step, as the Durable Object class does: answers to the
    /// callers it parked, its calls as tasks of its own, its alarm.
    pub(super) fn carry_out(&mut self, tid: &str, step: CoordinatorStep) {
        if let Some(e) = &step.failed {
            let parked: Vec<(String, kafdo_txn_coordinator::RequestId)> = self
                .parked
                .keys()
                .filter(|(t, _)| t == tid)
                .cloned()
                .collect();
            for key in parked {
                let slot = self.parked.remove(&key).expect("parked");
                self.send(
                    Target::Caller,
                    Msg::Answer {
                        slot,
                        answer: Err(e.clone()),
                    },
                );
            }
        }
        for (request, answer) in step.replies {
            let Some(slot) = self.parked.remove(&(tid.to_owned(), request)) else {
                panic!("coordinator {tid} answered unknown request {request}");
            };
            self.send(Target::Caller, Msg::Answer { slot, answer });
        }
        let object = Object::Coordinator(tid.to_owned());
        for (id, call) in step.calls {
            let runtime = self.executor.runtime();
            let transactional_id = tid.to_owned();
            self.executor
                .spawn(Owner::Object(object.clone()), async move {
                    let result = perform(&runtime, call).await;
                    TaskDone::CallResult {
                        transactional_id,
                        id,
                        result,
                    }
                });
        }
        if let Some(at_ms) = step.set_alarm_ms {
            self.arm(&object, at_ms);
        }
        self.observe_coordinator(tid);
    }

    /// Carries out a host's effects. Long polls are the Durable Object's (`wake_readers`):
    /// the simulated clients read without waiting.
    pub(super) fn apply(&mut self, object: &Object, effects: Effects) {
        if effects.delete_storage {
            assert!(
                matches!(object, Object::Key { .. }),
                "only a key object deletes its storage, not {object}"
            );
            // The object holds nothing more: its storage goes, and its alarm with it.
            let db: Db = Rc::new(Sqlite::memory());
            self.objects.insert(
                object.clone(),
                Slot::Key(KeySlot {
                    host: KeyHost::new(db.clone()),
                    db,
                }),
            );
            self.disarm(object);
            self.note(format!("key {} expired", object.name()));
        } else if let Some(at_ms) = effects.set_alarm_ms {
            self.arm(object, at_ms);
        }
    }

    /// An object's alarm fires.
    pub(super) fn fire(&mut self, object: &Object) {
        let now_ms = self.now_ms;
        match object {
            Object::Metadata | Object::Bench(_) => {}
            Object::Partition { .. } => self.partition_alarm(object),
            Object::Coordinator(tid) => {
                let step = self.coordinator_slot(tid).host.on_alarm(now_ms);
                self.carry_out(tid, step);
            }
            Object::Group(group_id) => {
                let effects = self.group_host(group_id).on_alarm(now_ms);
                self.apply(object, effects);
            }
            Object::Key { .. } => {
                let Slot::Key(key) = self.slot(object) else {
                    unreachable!("a key's slot")
                };
                let effects = key.host.on_alarm(now_ms);
                self.apply(object, effects);
            }
        }
    }

    /// The partition's alarm: retention and one compaction step. With faults on the partition
    /// sometimes restarts right after it, so restarts land between the steps and rounds of
    /// compaction.
    fn partition_alarm(&mut self, object: &Object) {
        let tp = self.tp_of(object);
        let now_ms = self.now_ms;
        // Each bug hides the last stable offset on its own topic only: on_alarm runs retention
        // and compaction both, and only one of them does anything on either topic.
        let hide_lso = (self.config.bugs.compaction_ignores_lso && tp.topic == COMPACTED_TOPIC)
            || (self.config.bugs.retention_ignores_lso && tp.topic == RETAINED_TOPIC);
        let (effects, step) = if hide_lso {
            self.with_lso_hidden(&tp, |host| host.on_alarm(now_ms))
        } else {
            self.partition_slot(&tp).host.on_alarm(now_ms)
        };
        let step = step.expect("an alarm step on in-memory SQLite");
        let compacted = self.partition_refs[&tp].config.cleanup_policy == CleanupPolicy::Compact;
        let c = &step.compaction;
        self.compaction_stats.steps += u64::from(compacted);
        self.compaction_stats.rounds += u64::from(c.round_finished);
        self.compaction_stats.records_removed += c.records_removed as u64;
        if c.records_removed > 0 || c.round_finished {
            self.note(format!(
                "compact {tp}: {} rows read, {} records removed, cleaned to {}",
                c.rows_read, c.records_removed, c.cleaned_offset
            ));
        }
        self.observe_partition(&tp);
        self.apply(object, effects);
        if self.faults_on() && self.rng.chance(50) {
            self.restart(object);
        }
    }

    /// Restarts an object: memory lost (and its tasks, and the callers it held), storage
    /// kept. The planted `skip_duplicate_check` and `ingest_forgets_reservation` bugs lose
    /// some storage too.
    pub(super) fn restart(&mut self, object: &Object) {
        self.note(format!("restart {object}"));
        self.kill_tasks(&Owner::Object(object.clone()));
        match self.slot(object) {
            Slot::Metadata(host) => host.restart(),
            Slot::Partition(slot) => slot.host.restart(),
            Slot::Coordinator(slot) => slot.host.restart(),
            Slot::Group(host) => host.restart(),
            Slot::Key(key) => key.host.restart(),
        }
        self.bugs_after_restart(object);
        if let Object::Coordinator(tid) = object {
            self.parked.retain(|(t, _), _| t != tid);
        }
    }

    pub(super) fn observe_partition(&mut self, tp: &Tp) {
        let pref = self.partition_refs[tp].clone();
        let now_ms = self.now_ms;
        let info = self
            .partition_slot(tp)
            .host
            .core(now_ms)
            .and_then(|core| {
                core.info(&pref)
                    .map_err(|e| ApiError::new(e.code(), e.to_string()))
            })
            .expect("partition info");
        let state = (
            info.log_start_offset,
            info.high_watermark,
            info.last_stable_offset,
        );
        let slot = self.partition_slot(tp);
        if slot.last_observed == Some(state) {
            return;
        }
        let before = slot.last_observed.map_or(0, |(start, _, _)| start);
        slot.last_observed = Some(state);
        if state.0 > before {
            self.retention_stats.steps += 1;
            self.retention_stats.offsets_removed += (state.0 - before) as u64;
        }
        self.rec.observe(
            now_ms,
            Observation::PartitionState {
                topic: tp.topic.clone(),
                partition: tp.partition,
                log_start_offset: info.log_start_offset,
                high_watermark: info.high_watermark,
                last_stable_offset: info.last_stable_offset,
            },
        );
    }

    fn observe_coordinator(&mut self, tid: &str) {
        let now_ms = self.now_ms;
        let slot = self.coordinator_slot(tid);
        // A step that failed dropped the core: nothing to observe until it opens again.
        let Ok(core) = slot.host.core(now_ms) else {
            return;
        };
        let state = (
            core.producer_id().unwrap_or(-1),
            core.producer_epoch(),
            core.state(),
        );
        if slot.last_observed == Some(state) {
            return;
        }
        slot.last_observed = Some(state);
        self.rec.observe(
            now_ms,
            Observation::Coordinator {
                transactional_id: tid.to_owned(),
                producer_id: state.0,
                producer_epoch: state.1,
                state: state.2,
            },
        );
    }
}
