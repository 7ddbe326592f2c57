//! Kafdo in one process: a [`Runtime`] whose objects are the hosts of [`crate::host`] over
//! in-memory SQLite, each call served at once, with no network, no faults and a clock the
//! caller moves. The fuzz harness drives whole requests through it (routes, handlers, broker,
//! hosts, cores) and reads the state back; any native test that wants a real Kafdo without
//! `wrangler dev` can use it. The simulator is the faulty, seeded version of the same idea.
//!
//! Calls answer at once, so their futures are ready when first polled: a coordinator's calls
//! to partitions and groups ([`crate::host::coordinator::perform`]) run to their end inside the
//! call that caused them, and a client's commit answers once its markers are in, as on the
//! Worker. Alarms are kept per object (the one each object armed last) and fire when
//! [`LocalRuntime::advance`] moves the clock past them.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::future::{ready, Future};
use std::rc::Rc;

use futures_util::FutureExt;
use kafdo_partition::PartitionConfig;
use kafdo_sql::Sqlite;
use kafdo_txn_coordinator::CoordinatorConfig;
use kafdo_types::rpc::{Object, ObjectCall};
use kafdo_types::{ApiError, ErrorCode};

use crate::host::coordinator::{perform, CoordinatorHost, CoordinatorStep, Reception};
use crate::host::group::GroupHost;
use crate::host::key::KeyHost;
use crate::host::metadata::MetadataHost;
use crate::host::partition::PartitionHost;
use crate::host::Effects;
use crate::Runtime;

type Db = Rc<Sqlite>;

/// One object's host.
enum Host {
    Metadata(MetadataHost<Db>),
    Partition(PartitionHost<Db>),
    Coordinator(CoordinatorHost<Db>),
    Group(GroupHost<Db>),
    Key(KeyHost<Db>),
}

impl Host {
    fn new(object: &Object) -> Option<Host> {
        let db: Db = Rc::new(Sqlite::memory());
        Some(match object {
            Object::Metadata => Host::Metadata(MetadataHost::new(db)),
            Object::Partition { .. } => {
                Host::Partition(PartitionHost::new(db, PartitionConfig::default()))
            }
            Object::Coordinator(id) => Host::Coordinator(CoordinatorHost::new(
                db,
                Some(id.clone()),
                CoordinatorConfig::default(),
            )),
            Object::Group(_) => Host::Group(GroupHost::new(db)),
            Object::Key { .. } => Host::Key(KeyHost::new(db)),
            Object::Bench(_) => return None,
        })
    }
}

struct Local {
    now_ms: Cell<i64>,
    seed: Cell<u64>,
    objects: RefCell<BTreeMap<Object, Rc<RefCell<Host>>>>,
    /// The alarm each object armed last.
    alarms: RefCell<BTreeMap<Object, i64>>,
}

/// Kafdo in one process (see the module docs). Clones share the same objects.
#[derive(Clone)]
pub struct LocalRuntime {
    local: Rc<Local>,
}

impl LocalRuntime {
    /// A deployment with no objects yet, its clock at `now_ms`, its random draws from `seed`.
    pub fn new(now_ms: i64, seed: u64) -> Self {
        Self {
            local: Rc::new(Local {
                now_ms: Cell::new(now_ms),
                seed: Cell::new(seed),
                objects: RefCell::new(BTreeMap::new()),
                alarms: RefCell::new(BTreeMap::new()),
            }),
        }
    }

    /// Moves the clock on by `ms` and fires every alarm now due, in time order.
    pub fn advance(&self, ms: i64) {
        let now = self.local.now_ms.get() + ms;
        self.local.now_ms.set(now);
        loop {
            let due = {
                let alarms = self.local.alarms.borrow();
                alarms
                    .iter()
                    .filter(|(_, at)| **at <= now)
                    .min_by_key(|(_, at)| **at)
                    .map(|(object, _)| object.clone())
            };
            let Some(object) = due else { return };
            self.local.alarms.borrow_mut().remove(&object);
            self.fire(&object);
        }
    }

    /// The objects that exist (some call reached them).
    pub fn objects(&self) -> Vec<Object> {
        self.local.objects.borrow().keys().cloned().collect()
    }

    fn host(&self, object: &Object) -> Option<Rc<RefCell<Host>>> {
        let mut objects = self.local.objects.borrow_mut();
        if let Some(host) = objects.get(object) {
            return Some(Rc::clone(host));
        }
        let host = Rc::new(RefCell::new(Host::new(object)?));
        objects.insert(object.clone(), Rc::clone(&host));
        Some(host)
    }

    fn apply(&self, object: &Object, effects: Effects) {
        if effects.delete_storage {
            // The object holds nothing more: its storage and its alarm go.
            self.local.objects.borrow_mut().remove(object);
            self.local.alarms.borrow_mut().remove(object);
        } else if let Some(at_ms) = effects.set_alarm_ms {
            self.local.alarms.borrow_mut().insert(object.clone(), at_ms);
        }
    }

    fn fire(&self, object: &Object) {
        let Some(host) = self.host(object) else {
            return;
        };
        let now = self.local.now_ms.get();
        let effects = {
            let mut host = host.borrow_mut();
            match &mut *host {
                Host::Metadata(_) => Effects::default(),
                Host::Partition(h) => h.on_alarm(now).0,
                Host::Group(h) => h.on_alarm(now),
                Host::Key(h) => h.on_alarm(now),
                Host::Coordinator(h) => {
                    let step = h.on_alarm(now);
                    drop(host);
                    self.drive(object, step, None);
                    return;
                }
            }
        };
        self.apply(object, effects);
    }

    /// Serves one call at once.
    fn serve(&self, object: &Object, call: ObjectCall) -> Result<Vec<u8>, ApiError> {
        assert_eq!(
            object.kind(),
            call.kind(),
            "{} sent to {object}",
            call.path()
        );
        let host = self
            .host(object)
            .ok_or_else(|| server_error(format!("{object} does not exist in one process")))?;
        let now = self.local.now_ms.get();
        let served = {
            // The borrow ends with this block: a coordinator's step is driven after it, since
            // driving calls other objects and comes back to this one.
            let mut host = host.borrow_mut();
            match (call, &mut *host) {
                (ObjectCall::Metadata(c), Host::Metadata(h)) => h.serve(c, now),
                (ObjectCall::Partition(c), Host::Partition(h)) => h.serve(c, now),
                (ObjectCall::Group(c), Host::Group(h)) => h.serve(c, now),
                (ObjectCall::Key(c), Host::Key(h)) => h.serve(c, now),
                (ObjectCall::Coordinator(c), Host::Coordinator(h)) => {
                    let (reception, step) = h.call(c, now);
                    drop(host);
                    return match reception {
                        Reception::Answered(answer) => {
                            self.drive(object, step, None);
                            answer
                        }
                        Reception::Waiting(request) => {
                            self.drive(object, step, Some(request)).unwrap_or_else(|| {
                                Err(ApiError::new(
                                    ErrorCode::RequestTimedOut,
                                    "the coordinator holds the call until an alarm: outcome \
                                     unknown",
                                ))
                            })
                        }
                    };
                }
                (call, _) => return Err(server_error(format!("{} sent to {object}", call.path()))),
            }
        };
        self.apply(object, served.effects);
        served.answer
    }

    /// Carries out a coordinator's step and every step it leads to: its calls performed at
    /// once and their results fed back. Answers `waiting`'s reply if one came.
    fn drive(
        &self,
        object: &Object,
        step: CoordinatorStep,
        waiting: Option<kafdo_txn_coordinator::RequestId>,
    ) -> Option<Result<Vec<u8>, ApiError>> {
        let mut answer = None;
        let mut steps = VecDeque::from([step]);
        while let Some(step) = steps.pop_front() {
            if let (Some(e), Some(_)) = (step.failed, waiting) {
                answer.get_or_insert(Err(e));
            }
            for (request, reply) in step.replies {
                if Some(request) == waiting {
                    answer = Some(reply);
                }
            }
            if let Some(at_ms) = step.set_alarm_ms {
                self.local.alarms.borrow_mut().insert(object.clone(), at_ms);
            }
            for (id, call) in step.calls {
                let result = perform(self, call)
                    .now_or_never()
                    .expect("a call in one process answers at once");
                let now = self.local.now_ms.get();
                let host = self.host(object).expect("the coordinator exists");
                let mut host = host.borrow_mut();
                let Host::Coordinator(h) = &mut *host else {
                    unreachable!("a coordinator's host")
                };
                steps.push_back(h.on_call_result(id, result, now));
            }
        }
        answer
    }
}

fn server_error(message: String) -> ApiError {
    ApiError::new(ErrorCode::UnknownServerError, message)
}

impl Runtime for LocalRuntime {
    fn call(
        &self,
        object: Object,
        call: ObjectCall,
        _timeout_ms: u32,
    ) -> impl Future<Output = Result<Vec<u8>, ApiError>> {
        ready(self.serve(&object, call))
    }

    fn now_ms(&self) -> i64 {
        self.local.now_ms.get()
    }

    fn random_below(&self, n: u32) -> u32 {
        // SplitMix64: a seed gives one sequence of draws.
        let mut z = self.local.seed.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        self.local.seed.set(z);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) % u64::from(n.max(1))) as u32
    }
}

#[cfg(test)]
mod tests {
    use kafdo_types::api::{
        CreateTopicRequest, InitProducerRequest, Isolation, PartitionProduceRequest, TopicConfig,
    };
    use kafdo_types::rpc::TxnResult;
    use kafdo_types::txn::{AddPartitionsRequest, EndTxnRequest, TopicPartition};
    use kafdo_types::ProduceRecord;

    use super::*;
    use crate::topics::FetchOptions;
    use crate::{Broker, Config, Isolate};

    fn run<T>(f: impl Future<Output = T>) -> T {
        f.now_or_never().expect("one process answers at once")
    }

    #[test]
    fn a_transaction_commits_in_one_process() {
        let broker = Broker::new(
            LocalRuntime::new(1_000_000, 7),
            Rc::new(Isolate::new()),
            Config::default(),
        );
        run(broker.create_topic(CreateTopicRequest {
            name: "t".into(),
            partitions: 2,
            config: TopicConfig::default(),
        }))
        .unwrap();
        let init = InitProducerRequest {
            transactional_id: Some("tx".into()),
            transaction_timeout_ms: None,
        };
        let producer = run(broker.init_producer(init)).unwrap();
        let add = AddPartitionsRequest {
            producer_id: producer.producer_id,
            producer_epoch: producer.producer_epoch,
            partitions: vec![TopicPartition {
                topic: "t".into(),
                partition: 1,
            }],
        };
        run(broker.add_partitions_to_txn("tx", add)).unwrap();
        let batch = PartitionProduceRequest {
            producer_id: Some(producer.producer_id),
            producer_epoch: Some(producer.producer_epoch),
            base_sequence: Some(0),
            transactional: true,
            records: vec![ProduceRecord::value(b"v".to_vec())],
        };
        run(broker.produce_partition("t", 1, batch)).unwrap();
        let read = |isolation| FetchOptions {
            offset: 0,
            max_records: 10,
            max_bytes: 1 << 20,
            isolation,
            wait_ms: 0,
        };
        let before = run(broker.fetch("t", 1, read(Isolation::ReadCommitted))).unwrap();
        assert!(before.records.is_empty(), "open: not visible");
        let end = EndTxnRequest {
            keep_epoch: false,
            producer_id: producer.producer_id,
            producer_epoch: producer.producer_epoch,
        };
        run(broker.end_txn("tx", end, TxnResult::Commit)).unwrap();
        let after = run(broker.fetch("t", 1, read(Isolation::ReadCommitted))).unwrap();
        assert_eq!(after.records.len(), 1);
    }
}
