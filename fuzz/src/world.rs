//! A small Kafdo in one process, set up the same way every time, to throw whole requests at:
//! [`World::serve`] turns a request into an answer exactly as the Worker's entry point does,
//! and [`World::snapshot`] reads back everything an observer can read.
//!
//! The world ([`World::new`]), on `kafdo_broker::local::LocalRuntime` with its clock at
//! [`NOW_MS`] and a fixed seed:
//!
//! | what | state |
//! | --- | --- |
//! | `t1` (1 partition) | keyed records, an idempotent producer's batch, a committed transaction's record |
//! | `t2` (2 partitions) | a keyed produce under `Idempotency-Key: key-1`; `t2/1` held back by `tx-open` |
//! | `compacted` (1 partition, compact) | two keyed records |
//! | `tx-done` | a committed transaction (epoch bumped) |
//! | `tx-open` | an open transaction: a record in `t2/1`, pending offsets for `g-live` |
//! | `g-live` | one member on `t1` and `t2`, an offset committed |
//! | `g-admin` | no members, an administrator's offset |
//!
//! Setup is deterministic (one seed, one clock), so every world has the same producer ids,
//! epochs, member id and generation; [`pools`] records them once for the strategies, which
//! refer to them by value.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::future::Future;
use std::rc::Rc;
use std::sync::OnceLock;

use futures_util::FutureExt;
use kafdo_broker::local::LocalRuntime;
use kafdo_broker::topics::FetchOptions;
use kafdo_broker::{Broker, Config, Isolate, Runtime};
use kafdo_types::api::{
    CleanupPolicy, CreateTopicRequest, InitProducerRequest, Isolation, PartitionProduceRequest,
    ProduceRequest, TopicConfig,
};
use kafdo_types::group::{JoinGroupRequest, OffsetCommitRequest, OffsetFetchQuery};
use kafdo_types::limits::{MAX_FETCH_MAX_BYTES, MAX_FETCH_MAX_RECORDS, MAX_REQUEST_BYTES};
use kafdo_types::rpc::{ListGroupsRequest, Object, TopicPartitionOffset, TxnResult};
use kafdo_types::txn::{AddOffsetsRequest, AddPartitionsRequest, EndTxnRequest, TopicPartition};
use kafdo_types::ProduceRecord;
use kafdo_worker::codec::Format;
use kafdo_worker::handlers::{self, Context};
use kafdo_worker::http::{body_too_large, Answer, HttpRequest};
use kafdo_worker::routes::{self, GroupRoute, RecordsRoute, Route, TopicsRoute, TxnRoute};

use crate::bodies::{Pools, Producer};

/// The world's clock when it is made (ms since the epoch).
pub const NOW_MS: i64 = 1_700_000_000_000;

/// The seed of the world's random draws.
const SEED: u64 = 7;

/// The most partitions of one topic a snapshot reads (plus any the request names): a topic
/// of 256 partitions would make every snapshot read 256 logs.
pub const SNAPSHOT_PARTITIONS: i32 = 8;

/// Runs a future of the one-process runtime, which is ready when first polled.
pub fn run<T>(future: impl Future<Output = T>) -> T {
    future
        .now_or_never()
        .expect("Kafdo in one process answers at once")
}

/// A request as the entry point reads it from the runtime.
#[derive(Clone, Default)]
pub struct WireRequest {
    /// The method.
    pub method: String,
    /// The path (percent-encoded, as the URL has it).
    pub path: String,
    /// The query's pairs, percent-decoded.
    pub query: Vec<(String, String)>,
    /// `Content-Type`.
    pub content_type: Option<String>,
    /// `Accept`.
    pub accept: Option<String>,
    /// `Idempotency-Key`.
    pub idempotency_key: Option<String>,
    /// The body.
    pub body: Vec<u8>,
}

/// Written so a failing request can be pasted into a regression test (`b"..."`), long bodies
/// cut.
impl Debug for WireRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const SHOWN: usize = 4_096;
        let body = &self.body[..self.body.len().min(SHOWN)];
        let more = if self.body.len() > SHOWN {
            format!("… ({} bytes)", self.body.len())
        } else {
            String::new()
        };
        f.debug_struct("WireRequest")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("query", &self.query)
            .field("content_type", &self.content_type)
            .field("accept", &self.accept)
            .field("idempotency_key", &self.idempotency_key)
            .field("body", &format_args!("b\"{}\"{more}", body.escape_ascii()))
            .finish()
    }
}

/// What a snapshot reads: names beyond those the world lists itself.
#[derive(Clone, Debug, Default)]
pub struct Names {
    /// Topic names.
    pub topics: BTreeSet<String>,
    /// Partitions named by a request.
    pub partitions: BTreeSet<(String, i32)>,
    /// Transactional ids.
    pub txns: BTreeSet<String>,
    /// Group ids.
    pub groups: BTreeSet<String>,
}

/// What an observer reads, by what it read (`"t1/0 read_committed"`), in Debug form: the
/// topics, every partition's offsets and records at both isolations, the groups, their
/// members and offsets, the transactions and the open ones.
pub type Snapshot = BTreeMap<String, String>;

/// Kafdo in one process (see the module docs).
pub struct World {
    runtime: LocalRuntime,
    /// The Worker's isolate: its caches persist across requests, as on the Worker.
    isolate: Rc<Isolate>,
    pools: Pools,
}

impl Default for World {
    fn default() -> Self {
        Self::new()
    }
}

impl World {
    /// A world set up as the module docs say.
    pub fn new() -> World {
        let mut world = World {
            runtime: LocalRuntime::new(NOW_MS, SEED),
            isolate: Rc::new(Isolate::new()),
            pools: Pools::fixed(),
        };
        world.pools = world.set_up();
        world
    }

    /// The names and numbers the world was set up with.
    pub fn pools(&self) -> &Pools {
        &self.pools
    }

    /// The runtime (to move the clock).
    pub fn runtime(&self) -> &LocalRuntime {
        &self.runtime
    }

    fn broker(&self) -> Broker<LocalRuntime> {
        Broker::new(
            self.runtime.clone(),
            Rc::clone(&self.isolate),
            Config::default(),
        )
    }

    /// A broker with an isolate of its own: an observer reads what is true, not a cache.
    fn observer(&self) -> Broker<LocalRuntime> {
        Broker::new(
            self.runtime.clone(),
            Rc::new(Isolate::new()),
            Config::default(),
        )
    }

    fn set_up(&self) -> Pools {
        let b = self.broker();
        let ok = |what: &str, e: kafdo_types::ApiError| -> ! { panic!("set-up: {what}: {e}") };
        for (name, partitions, cleanup_policy) in [
            ("t1", 1, CleanupPolicy::Delete),
            ("t2", 2, CleanupPolicy::Delete),
            ("compacted", 1, CleanupPolicy::Compact),
        ] {
            let create = CreateTopicRequest {
                name: name.into(),
                partitions,
                config: TopicConfig {
                    cleanup_policy,
                    ..TopicConfig::default()
                },
            };
            run(b.create_topic(create)).unwrap_or_else(|e| ok("create", e));
        }
        let keyed = |keys: &[&str]| ProduceRequest {
            records: keys
                .iter()
                .map(|k| ProduceRecord::keyed(k.as_bytes().to_vec(), b"v".to_vec()))
                .collect(),
        };
        // t1 has one partition, so keyed records all land there.
        run(b.produce("t1", None, &keyed(&["a", "b"]))).unwrap_or_else(|e| ok("t1", e));
        run(b.produce("compacted", None, &keyed(&["a", "a"])))
            .unwrap_or_else(|e| ok("compacted", e));
        run(b.produce("t2", Some("key-1"), &keyed(&["k"]))).unwrap_or_else(|e| ok("keyed", e));

        let idempotent =
            run(b.init_producer(InitProducerRequest::default())).unwrap_or_else(|e| ok("init", e));
        let batch = |pid: i64, epoch: i32, transactional: bool, n: usize| PartitionProduceRequest {
            producer_id: Some(pid),
            producer_epoch: Some(epoch),
            base_sequence: Some(0),
            transactional,
            records: vec![ProduceRecord::value(b"p".to_vec()); n],
        };
        run(b.produce_partition(
            "t1",
            0,
            batch(idempotent.producer_id, idempotent.producer_epoch, false, 2),
        ))
        .unwrap_or_else(|e| ok("idempotent batch", e));

        let join = JoinGroupRequest {
            topics: vec!["t1".into(), "t2".into()],
            ..JoinGroupRequest::default()
        };
        let member = run(b.join_group("g-live", join)).unwrap_or_else(|e| ok("join", e));
        let offset = |topic: &str, partition: i32, offset: i64| TopicPartitionOffset {
            topic: topic.into(),
            partition,
            offset,
            metadata: None,
        };
        let commit = OffsetCommitRequest {
            generation_id: member.generation_id,
            member_id: member.member_id.clone(),
            offsets: vec![offset("t1", 0, 1)],
        };
        run(b.commit_offsets("g-live", commit)).unwrap_or_else(|e| ok("commit", e));
        let admin = OffsetCommitRequest {
            generation_id: -1,
            member_id: String::new(),
            offsets: vec![offset("t2", 0, 1)],
        };
        run(b.commit_offsets("g-admin", admin)).unwrap_or_else(|e| ok("admin commit", e));

        let transactional = |id: &str| InitProducerRequest {
            transactional_id: Some(id.into()),
            transaction_timeout_ms: None,
        };
        let add = |pid: i64, epoch: i32, topic: &str, partition: i32| AddPartitionsRequest {
            producer_id: pid,
            producer_epoch: epoch,
            partitions: vec![TopicPartition {
                topic: topic.into(),
                partition,
            }],
        };
        let done = run(b.init_producer(transactional("tx-done")))
            .unwrap_or_else(|e| ok("init tx-done", e));
        run(b.add_partitions_to_txn(
            "tx-done",
            add(done.producer_id, done.producer_epoch, "t1", 0),
        ))
        .unwrap_or_else(|e| ok("add tx-done", e));
        run(b.produce_partition(
            "t1",
            0,
            batch(done.producer_id, done.producer_epoch, true, 1),
        ))
        .unwrap_or_else(|e| ok("write tx-done", e));
        let end = EndTxnRequest {
            keep_epoch: false,
            producer_id: done.producer_id,
            producer_epoch: done.producer_epoch,
        };
        let ended = run(b.end_txn("tx-done", end, TxnResult::Commit))
            .unwrap_or_else(|e| ok("commit tx-done", e));

        let open = run(b.init_producer(transactional("tx-open")))
            .unwrap_or_else(|e| ok("init tx-open", e));
        run(b.add_partitions_to_txn(
            "tx-open",
            add(open.producer_id, open.producer_epoch, "t2", 1),
        ))
        .unwrap_or_else(|e| ok("add tx-open", e));
        run(b.produce_partition(
            "t2",
            1,
            batch(open.producer_id, open.producer_epoch, true, 1),
        ))
        .unwrap_or_else(|e| ok("write tx-open", e));
        let offsets = AddOffsetsRequest {
            producer_id: open.producer_id,
            producer_epoch: open.producer_epoch,
            group_id: "g-live".into(),
            generation_id: member.generation_id,
            member_id: member.member_id.clone(),
            offsets: vec![offset("t2", 0, 1)],
        };
        run(b.add_offsets_to_txn("tx-open", offsets)).unwrap_or_else(|e| ok("offsets", e));

        let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        let producer = |id: Option<&str>, producer_id, producer_epoch, next_sequence| Producer {
            transactional_id: id.map(str::to_owned),
            producer_id,
            producer_epoch,
            next_sequence,
        };
        Pools {
            topics: strings(&["t1", "t2", "compacted", "missing"]),
            partitions: vec![
                ("t1".into(), 0),
                ("t2".into(), 0),
                ("t2".into(), 1),
                ("compacted".into(), 0),
            ],
            producers: vec![
                producer(None, idempotent.producer_id, idempotent.producer_epoch, 2),
                producer(Some("tx-open"), open.producer_id, open.producer_epoch, 1),
                // A new epoch starts its sequence again.
                producer(Some("tx-done"), ended.producer_id, ended.producer_epoch, 0),
            ],
            txn_ids: strings(&["tx-open", "tx-done", "tx-new"]),
            groups: strings(&["g-live", "g-admin", "g-new"]),
            members: vec![member.member_id, String::new(), "m-unknown".into()],
            producer_ids: vec![
                idempotent.producer_id,
                open.producer_id,
                ended.producer_id,
                999,
            ],
            epochs: vec![0, open.producer_epoch, ended.producer_epoch, 7],
            sequences: vec![0, 1, 2, 3],
            generations: vec![member.generation_id, member.generation_id + 1, 0, -1],
            keys: strings(&["key-1", "key-2"]),
            now_ms: NOW_MS,
        }
    }

    /// Serves one request as `entry.rs` does: route (a refusal answered with its own status),
    /// the body limit, then the handlers over a broker sharing the isolate. `None` if the
    /// answer did not come at once.
    pub fn serve(&self, req: &WireRequest) -> Option<Answer> {
        let format = Format::from_accept(req.accept.as_deref());
        let route = match routes::route(&req.method, &req.path) {
            Ok(route) => route,
            Err(e) => {
                let (status, error) = e.to_api_error(&req.method, &req.path);
                return Some(Answer::error_with_status(format, status, &error));
            }
        };
        if req.body.len() > MAX_REQUEST_BYTES {
            return Some(Answer::error(format, &body_too_large(req.body.len())));
        }
        let http = HttpRequest {
            query: req.query.clone(),
            content_type: req.content_type.clone(),
            idempotency_key: req.idempotency_key.clone(),
            body: req.body.clone(),
        };
        let cx = Context {
            broker: self.broker(),
            format,
            debug_panic: false,
        };
        handlers::serve(&cx, route, &http).now_or_never()
    }

    /// What a snapshot around `req` reads: the world's own names, the objects that exist, and
    /// whatever the request's path names.
    pub fn names(&self, req: &WireRequest) -> Names {
        let mut names = Names {
            topics: self.pools.topics.iter().cloned().collect(),
            txns: self.pools.txn_ids.iter().cloned().collect(),
            groups: self.pools.groups.iter().cloned().collect(),
            ..Names::default()
        };
        for object in self.runtime.objects() {
            match object {
                Object::Coordinator(id) => {
                    names.txns.insert(id);
                }
                Object::Group(id) => {
                    names.groups.insert(id);
                }
                _ => {}
            }
        }
        let Ok(route) = routes::route(&req.method, &req.path) else {
            return names;
        };
        let mut partition = |t: &String, p: &i32| {
            names.topics.insert(t.clone());
            names.partitions.insert((t.clone(), *p));
        };
        match &route {
            Route::Topics(
                TopicsRoute::Describe(t) | TopicsRoute::Delete(t) | TopicsRoute::AddPartitions(t),
            )
            | Route::Records(RecordsRoute::ProduceTopic(t)) => {
                names.topics.insert(t.clone());
            }
            Route::Topics(
                TopicsRoute::PartitionInfo(t, p)
                | TopicsRoute::OffsetForTimestamp(t, p)
                | TopicsRoute::Producers(t, p),
            )
            | Route::Records(
                RecordsRoute::ProducePartition(t, p)
                | RecordsRoute::Fetch(t, p)
                | RecordsRoute::DeleteRecords(t, p),
            ) => partition(t, p),
            Route::Transactions(
                TxnRoute::AddPartitions(id)
                | TxnRoute::AddOffsets(id)
                | TxnRoute::End(id, _)
                | TxnRoute::Describe(id)
                | TxnRoute::AdminAbort(id),
            ) => {
                names.txns.insert(id.clone());
            }
            Route::Groups(
                GroupRoute::Describe(g)
                | GroupRoute::Join(g)
                | GroupRoute::Heartbeat(g, _)
                | GroupRoute::Leave(g, _)
                | GroupRoute::CommitOffsets(g)
                | GroupRoute::FetchOffsets(g),
            ) => {
                names.groups.insert(g.clone());
            }
            _ => {}
        }
        names
    }

    /// Everything an observer can read of the names (see [`Snapshot`]).
    pub fn snapshot(&self, names: &Names) -> Snapshot {
        let b = self.observer();
        let mut s = Snapshot::new();
        let mut put = |key: String, value: &dyn Debug| {
            s.insert(key, format!("{value:?}"));
        };

        let list = run(b.list_topics());
        put("topics".into(), &list);
        let mut topics = names.topics.clone();
        if let Ok(list) = &list {
            topics.extend(list.topics.iter().map(|t| t.name.clone()));
        }
        for topic in &topics {
            let described = run(b.describe_topic(topic));
            put(format!("topic {topic:?}"), &described);
            let Ok(described) = described else { continue };
            let mut partitions: BTreeSet<i32> =
                (0..described.partitions.min(SNAPSHOT_PARTITIONS)).collect();
            partitions.extend(
                names
                    .partitions
                    .iter()
                    .filter(|(t, p)| t == topic && (0..described.partitions).contains(p))
                    .map(|(_, p)| *p),
            );
            for p in partitions {
                let info = run(b.partition_info(topic, p));
                put(format!("{topic:?}/{p} info"), &info);
                let Ok(info) = info else { continue };
                for isolation in [Isolation::ReadCommitted, Isolation::ReadUncommitted] {
                    let pages = read_all(&b, topic, p, info.log_start_offset, isolation);
                    put(format!("{topic:?}/{p} {isolation:?}"), &pages);
                }
            }
        }

        let mut groups = names.groups.clone();
        let mut after = None;
        let mut pages = Vec::new();
        for _ in 0..16 {
            let page = run(b.list_groups(ListGroupsRequest {
                after: after.clone(),
                limit: 1_000,
            }));
            let next = page.as_ref().ok().and_then(|p| p.next.clone());
            if let Ok(page) = &page {
                groups.extend(page.groups.iter().map(|g| g.group_id.clone()));
            }
            pages.push(page);
            match next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        put("groups".into(), &pages);
        for group in &groups {
            put(format!("group {group:?}"), &run(b.describe_group(group)));
            for require_stable in [false, true] {
                let query = OffsetFetchQuery {
                    require_stable,
                    ..OffsetFetchQuery::default()
                };
                put(
                    format!("group {group:?} offsets require_stable={require_stable}"),
                    &run(b.fetch_offsets(group, query)),
                );
            }
        }

        for txn in &names.txns {
            put(format!("txn {txn:?}"), &run(b.describe_txn(txn)));
        }
        put("open transactions".into(), &run(b.open_transactions()));
        s
    }

    /// The coordinators and groups that exist now and not in `before`, each as an observer
    /// reads it here and as it reads in a deployment that never heard of it: a refused request
    /// may leave an empty object behind (a host with no storage), nothing more.
    pub fn new_objects_read_as_unknown(&self, before: &[Object]) -> Vec<String> {
        let fresh = World {
            runtime: LocalRuntime::new(self.runtime.now_ms(), SEED),
            isolate: Rc::new(Isolate::new()),
            pools: Pools::fixed(),
        };
        let read = |world: &World, object: &Object| -> Option<String> {
            let b = world.observer();
            Some(match object {
                Object::Coordinator(id) => format!("{:?}", run(b.describe_txn(id))),
                Object::Group(id) => format!(
                    "{:?} {:?}",
                    run(b.describe_group(id)),
                    run(b.fetch_offsets(id, OffsetFetchQuery::default()))
                ),
                _ => return None,
            })
        };
        let mut differences = Vec::new();
        for object in self.runtime.objects() {
            if before.contains(&object) {
                continue;
            }
            let (Some(here), Some(unknown)) = (read(self, &object), read(&fresh, &object)) else {
                continue;
            };
            if here != unknown {
                differences.push(format!("{object}: {here}\n  never used: {unknown}"));
            }
        }
        differences
    }
}

/// Every record of a partition from `from` on at one isolation, page by page (at most 64).
fn read_all(
    b: &Broker<LocalRuntime>,
    topic: &str,
    p: i32,
    from: i64,
    isolation: Isolation,
) -> Vec<Result<kafdo_types::api::FetchResponse, kafdo_types::ApiError>> {
    let mut pages = Vec::new();
    let mut offset = from;
    for _ in 0..64 {
        let options = FetchOptions {
            offset,
            max_records: MAX_FETCH_MAX_RECORDS,
            max_bytes: MAX_FETCH_MAX_BYTES,
            isolation,
            wait_ms: 0,
        };
        let page = run(b.fetch(topic, p, options));
        let next = match &page {
            Ok(page) if !page.records.is_empty() && page.next_offset > offset => {
                Some(page.next_offset)
            }
            _ => None,
        };
        pages.push(page);
        match next {
            Some(next) => offset = next,
            None => break,
        }
    }
    pages
}

/// The pools of every world, recorded from one (setup is deterministic).
pub fn pools() -> &'static Pools {
    static POOLS: OnceLock<Pools> = OnceLock::new();
    POOLS.get_or_init(|| World::new().pools().clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worlds_are_the_same_every_time() {
        let (a, b) = (World::new(), World::new());
        assert_eq!(a.pools(), b.pools());
        let names = a.names(&WireRequest::default());
        assert_eq!(a.snapshot(&names), b.snapshot(&names));
        let s = a.snapshot(&names);
        // The open transaction holds t2/1 back, and its offsets are pending in g-live.
        assert!(s["open transactions"].contains("tx-open"), "{s:#?}");
        assert!(
            s["group \"g-live\" offsets require_stable=true"].contains("UnstableOffsetCommit"),
            "{s:#?}"
        );
        assert!(s["txn \"tx-done\""].contains("CompleteCommit"), "{s:#?}");
    }
}
