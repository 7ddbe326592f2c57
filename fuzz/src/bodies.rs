//! The request bodies: their types, typed strategies for each, byte mutations, and the body
//! property ([`check_body`]).
//!
//! Typed bodies are drawn from [`Pools`]: names and numbers that mean something in a world
//! (`crate::world`: its topics, producer ids and epochs, groups, member ids), mixed with
//! numbers at every bound and hostile strings, so a body is often valid and often almost so.

use std::fmt;

use kafdo_types::api::{
    CleanupPolicy, CreatePartitionsRequest, CreateTopicRequest, InitProducerRequest, Isolation,
    MultiFetchRequest, MultiProduceRequest, PartitionBatch, PartitionFetch,
    PartitionProduceRequest, ProduceRequest, TopicConfig,
};
use kafdo_types::group::{Assignor, HeartbeatRequest, JoinGroupRequest, OffsetCommitRequest};
use kafdo_types::limits::{MAX_ERROR_MESSAGE_BYTES, MAX_RECORD_BYTES, MAX_SAFE_INTEGER};
use kafdo_types::rpc::TopicPartitionOffset;
use kafdo_types::txn::{AddOffsetsRequest, AddPartitionsRequest, EndTxnRequest, TopicPartition};
use kafdo_types::{ErrorCode, Header, ProduceRecord};
use kafdo_worker::codec::{self, Format};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::{select, Index};
use proptest::strategy::LazyJust;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::tree::hostile_string;

/// A producer a body may name: its transactional id (if any), id, epoch and next sequence
/// number in the partition it wrote to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Producer {
    /// The transactional id, for a transactional producer.
    pub transactional_id: Option<String>,
    /// The producer id.
    pub producer_id: i64,
    /// The current epoch.
    pub producer_epoch: i32,
    /// The next base sequence of its one partition.
    pub next_sequence: i32,
}

/// Names and numbers a body may refer to (a world's, or [`Pools::fixed`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pools {
    /// Topic names (existing ones and one that is not).
    pub topics: Vec<String>,
    /// Partitions that exist.
    pub partitions: Vec<(String, i32)>,
    /// Transactional ids.
    pub txn_ids: Vec<String>,
    /// Group ids.
    pub groups: Vec<String>,
    /// Member ids.
    pub members: Vec<String>,
    /// The producers.
    pub producers: Vec<Producer>,
    /// Producer ids.
    pub producer_ids: Vec<i64>,
    /// Producer epochs.
    pub epochs: Vec<i32>,
    /// Base sequences (the next one of each producer, and neighbours).
    pub sequences: Vec<i32>,
    /// Generation ids.
    pub generations: Vec<i32>,
    /// `Idempotency-Key` values.
    pub keys: Vec<String>,
    /// A timestamp near the world's clock.
    pub now_ms: i64,
}

impl Pools {
    /// Pools that name no world (for the decoding targets).
    pub fn fixed() -> Pools {
        let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        let producer = |id: Option<&str>, producer_id, producer_epoch| Producer {
            transactional_id: id.map(str::to_owned),
            producer_id,
            producer_epoch,
            next_sequence: 1,
        };
        Pools {
            topics: strings(&["t1", "t2", "compacted", "missing"]),
            partitions: vec![
                ("t1".into(), 0),
                ("t2".into(), 0),
                ("t2".into(), 1),
                ("compacted".into(), 0),
            ],
            txn_ids: strings(&["tx-open", "tx-done", "tx-new"]),
            groups: strings(&["g-live", "g-admin", "g-new"]),
            members: strings(&["m-1", ""]),
            producers: vec![
                producer(None, 0, 0),
                producer(Some("tx-open"), 1, 0),
                producer(Some("tx-done"), 2, 1),
            ],
            producer_ids: vec![0, 1, 2, 3],
            epochs: vec![0, 1],
            sequences: vec![0, 1, 2],
            generations: vec![-1, 0, 1, 2],
            keys: strings(&["key-1", "key-2"]),
            now_ms: 1_700_000_000_000,
        }
    }

    /// The same pools with one producer's names and numbers four times as likely as any
    /// other, so that a path's transactional id and a body's producer often belong together.
    pub fn focus(&self, producer: usize) -> Pools {
        fn first<T: Clone>(focus: T, all: &[T]) -> Vec<T> {
            let mut v = vec![focus; 4];
            v.extend_from_slice(all);
            v
        }
        let p = &self.producers[producer % self.producers.len()];
        let mut pools = self.clone();
        if let Some(id) = &p.transactional_id {
            pools.txn_ids = first(id.clone(), &self.txn_ids);
        }
        pools.producer_ids = first(p.producer_id, &self.producer_ids);
        pools.epochs = first(p.producer_epoch, &self.epochs);
        pools.sequences = first(p.next_sequence, &self.sequences);
        pools
    }
}

/// Every request body type a handler reads.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum BodyType {
    /// `POST /v1/topics`.
    CreateTopic,
    /// `POST /v1/topics/{t}/records`.
    Produce,
    /// `POST /v1/topics/{t}/partitions/{p}/records` (and the bench append).
    PartitionProduce,
    /// `POST /v1/producers`.
    InitProducer,
    /// `POST /v1/transactions/{id}/partitions`.
    AddPartitions,
    /// `POST /v1/transactions/{id}/offsets`.
    AddOffsets,
    /// `POST /v1/transactions/{id}/commit` and `/abort`.
    EndTxn,
    /// `POST /v1/groups/{g}/members`.
    JoinGroup,
    /// `POST /v1/groups/{g}/members/{m}/heartbeat`.
    Heartbeat,
    /// `POST /v1/groups/{g}/offsets`.
    OffsetCommit,
    /// `POST /v1/produce`.
    MultiProduce,
    /// `POST /v1/fetch`.
    MultiFetch,
    /// `POST /v1/topics/{t}/partitions`.
    CreatePartitions,
}

impl BodyType {
    /// All of them.
    pub const ALL: [BodyType; 13] = [
        BodyType::CreateTopic,
        BodyType::Produce,
        BodyType::PartitionProduce,
        BodyType::InitProducer,
        BodyType::AddPartitions,
        BodyType::AddOffsets,
        BodyType::EndTxn,
        BodyType::JoinGroup,
        BodyType::Heartbeat,
        BodyType::OffsetCommit,
        BodyType::MultiProduce,
        BodyType::MultiFetch,
        BodyType::CreatePartitions,
    ];
}

/// Runs `$e` with `$t` the Rust type of the [`BodyType`] `$ty`.
macro_rules! with_type {
    ($ty:expr, $t:ident => $e:expr) => {
        match $ty {
            BodyType::CreateTopic => {
                type $t = CreateTopicRequest;
                $e
            }
            BodyType::Produce => {
                type $t = ProduceRequest;
                $e
            }
            BodyType::PartitionProduce => {
                type $t = PartitionProduceRequest;
                $e
            }
            BodyType::InitProducer => {
                type $t = InitProducerRequest;
                $e
            }
            BodyType::AddPartitions => {
                type $t = AddPartitionsRequest;
                $e
            }
            BodyType::AddOffsets => {
                type $t = AddOffsetsRequest;
                $e
            }
            BodyType::EndTxn => {
                type $t = EndTxnRequest;
                $e
            }
            BodyType::JoinGroup => {
                type $t = JoinGroupRequest;
                $e
            }
            BodyType::Heartbeat => {
                type $t = HeartbeatRequest;
                $e
            }
            BodyType::OffsetCommit => {
                type $t = OffsetCommitRequest;
                $e
            }
            BodyType::MultiProduce => {
                type $t = MultiProduceRequest;
                $e
            }
            BodyType::MultiFetch => {
                type $t = MultiFetchRequest;
                $e
            }
            BodyType::CreatePartitions => {
                type $t = CreatePartitionsRequest;
                $e
            }
        }
    };
}

/// A typed request body.
#[derive(Clone, Debug, PartialEq)]
#[allow(missing_docs)]
pub enum Body {
    CreateTopic(CreateTopicRequest),
    Produce(ProduceRequest),
    PartitionProduce(PartitionProduceRequest),
    InitProducer(InitProducerRequest),
    AddPartitions(AddPartitionsRequest),
    AddOffsets(AddOffsetsRequest),
    EndTxn(EndTxnRequest),
    JoinGroup(JoinGroupRequest),
    Heartbeat(HeartbeatRequest),
    OffsetCommit(OffsetCommitRequest),
    MultiProduce(MultiProduceRequest),
    MultiFetch(MultiFetchRequest),
    CreatePartitions(CreatePartitionsRequest),
}

impl Body {
    /// The body as the Worker's codec writes it.
    pub fn encode(&self, format: Format) -> Vec<u8> {
        match self {
            Body::CreateTopic(b) => codec::encode(format, b),
            Body::Produce(b) => codec::encode(format, b),
            Body::PartitionProduce(b) => codec::encode(format, b),
            Body::InitProducer(b) => codec::encode(format, b),
            Body::AddPartitions(b) => codec::encode(format, b),
            Body::AddOffsets(b) => codec::encode(format, b),
            Body::EndTxn(b) => codec::encode(format, b),
            Body::JoinGroup(b) => codec::encode(format, b),
            Body::Heartbeat(b) => codec::encode(format, b),
            Body::OffsetCommit(b) => codec::encode(format, b),
            Body::MultiProduce(b) => codec::encode(format, b),
            Body::MultiFetch(b) => codec::encode(format, b),
            Body::CreatePartitions(b) => codec::encode(format, b),
        }
    }

    /// Its type.
    pub fn ty(&self) -> BodyType {
        match self {
            Body::CreateTopic(_) => BodyType::CreateTopic,
            Body::Produce(_) => BodyType::Produce,
            Body::PartitionProduce(_) => BodyType::PartitionProduce,
            Body::InitProducer(_) => BodyType::InitProducer,
            Body::AddPartitions(_) => BodyType::AddPartitions,
            Body::AddOffsets(_) => BodyType::AddOffsets,
            Body::EndTxn(_) => BodyType::EndTxn,
            Body::JoinGroup(_) => BodyType::JoinGroup,
            Body::Heartbeat(_) => BodyType::Heartbeat,
            Body::OffsetCommit(_) => BodyType::OffsetCommit,
            Body::MultiProduce(_) => BodyType::MultiProduce,
            Body::MultiFetch(_) => BodyType::MultiFetch,
            Body::CreatePartitions(_) => BodyType::CreatePartitions,
        }
    }
}

/// One input of the body targets: bytes to decode as a type in a format.
#[derive(Clone)]
pub struct BodyInput {
    /// The type the handler would decode.
    pub ty: BodyType,
    /// The format its `Content-Type` names.
    pub format: Format,
    /// The body.
    pub bytes: Vec<u8>,
}

/// Written so a failing input can be pasted into a regression test (`b"..."`).
impl fmt::Debug for BodyInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "BodyInput {{ ty: {:?}, format: {:?}, bytes: b\"{}\" ({} bytes) }}",
            self.ty,
            self.format,
            self.bytes.escape_ascii(),
            self.bytes.len()
        )
    }
}

/// The body property: decoding never panics; an error is `INVALID_REQUEST` (or
/// `MESSAGE_TOO_LARGE`) with a bounded message; a decoded value holds no integer beyond
/// ±(2^53-1), re-encodes in both formats to bytes that decode to itself, and is what the
/// format's own decoder makes of the same bytes (the checking decoder only ever refuses more).
pub fn check_body(input: &BodyInput) -> Result<(), TestCaseError> {
    with_type!(input.ty, T => check_typed::<T>(input.format, &input.bytes))
}

fn check_typed<T>(format: Format, bytes: &[u8]) -> Result<(), TestCaseError>
where
    T: DeserializeOwned + Serialize + PartialEq + fmt::Debug,
{
    let value = match codec::decode::<T>(format, bytes) {
        Ok(value) => value,
        Err(e) => {
            prop_assert!(
                matches!(
                    e.code,
                    ErrorCode::InvalidRequest | ErrorCode::MessageTooLarge
                ),
                "refused with {:?}: {}",
                e.code,
                e.message
            );
            prop_assert!(
                e.message.len() <= MAX_ERROR_MESSAGE_BYTES,
                "a {}-byte message",
                e.message.len()
            );
            return Ok(());
        }
    };
    let tree = serde_json::to_value(&value).expect("a decoded body serializes");
    check_integers(&tree)?;
    for again in [Format::Json, Format::Cbor] {
        let encoded = codec::encode(again, &value);
        match codec::decode::<T>(again, &encoded) {
            Ok(decoded) => prop_assert_eq!(&decoded, &value, "{:?} round trip", again),
            Err(e) => prop_assert!(false, "{again:?} round trip refused: {}", e.message),
        }
    }
    let plain: Option<T> = match format {
        Format::Json => serde_json::from_slice(bytes).ok(),
        Format::Cbor => ciborium::de::from_reader(bytes).ok(),
    };
    prop_assert_eq!(
        plain.as_ref(),
        Some(&value),
        "the format's own decoder disagrees"
    );
    Ok(())
}

/// No number in a decoded value lies beyond ±(2^53-1).
pub fn check_integers(value: &serde_json::Value) -> Result<(), TestCaseError> {
    match value {
        serde_json::Value::Number(n) => {
            let ok = match (n.as_i64(), n.as_u64()) {
                (Some(i), _) => (-MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER).contains(&i),
                (None, Some(u)) => u <= MAX_SAFE_INTEGER as u64,
                (None, None) => false,
            };
            prop_assert!(ok, "the decoded value holds {}", n);
        }
        serde_json::Value::Array(items) => {
            for item in items {
                check_integers(item)?;
            }
        }
        serde_json::Value::Object(entries) => {
            for item in entries.values() {
                check_integers(item)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// 64-bit integers at every bound a body crosses.
const I64_EDGES: &[i64] = &[
    i64::MIN,
    -(1 << 53),
    -(1 << 53) + 1,
    -2,
    -1,
    0,
    (1 << 53) - 1,
    1 << 53,
    i64::MAX,
    i32::MAX as i64 + 1,
];

/// 32-bit integers at every bound a body crosses.
const I32_EDGES: &[i32] = &[i32::MIN, -2, -1, 0, 255, 256, 257, 32_767, 32_768, i32::MAX];

fn pick<T: Clone + fmt::Debug + 'static>(pool: &[T]) -> BoxedStrategy<T> {
    select(pool.to_vec()).boxed()
}

fn name(pool: &[String]) -> BoxedStrategy<String> {
    prop_oneof![6 => pick(pool), 1 => hostile_string()].boxed()
}

fn i64_from(pool: &[i64]) -> BoxedStrategy<i64> {
    prop_oneof![5 => pick(pool), 2 => -2i64..10, 1 => pick(I64_EDGES)].boxed()
}

fn i32_from(pool: &[i32]) -> BoxedStrategy<i32> {
    prop_oneof![5 => pick(pool), 2 => -2i32..10, 1 => pick(I32_EDGES)].boxed()
}

fn small_partition() -> BoxedStrategy<i32> {
    i32_from(&[0, 1, 2])
}

/// A topic and partition: one that exists most of the time.
fn topic_partition(pools: &Pools) -> BoxedStrategy<(String, i32)> {
    prop_oneof![
        4 => pick(&pools.partitions),
        1 => (name(&pools.topics), small_partition()),
    ]
    .boxed()
}

/// One to three items, now and then none.
fn some<T: Clone + fmt::Debug + 'static>(item: BoxedStrategy<T>) -> BoxedStrategy<Vec<T>> {
    prop_oneof![1 => Just(vec![]), 8 => vec(item, 1..4)].boxed()
}

/// Record keys that collide (one partition of `t2`, one key of `compacted`).
const KEYS: &[&[u8]] = &[b"a", b"b", b"k1", b"k2", b""];

fn key_bytes() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        4 => select(KEYS).prop_map(<[u8]>::to_vec),
        1 => vec(any::<u8>(), 0..12),
    ]
    .boxed()
}

fn value_bytes() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        200 => vec(any::<u8>(), 0..24),
        // Made when drawn, not when the strategy is built (it is built for every request).
        1 => LazyJust::new(|| vec![7u8; MAX_RECORD_BYTES]),
        1 => LazyJust::new(|| vec![7u8; MAX_RECORD_BYTES + 1]),
    ]
    .boxed()
}

fn header() -> BoxedStrategy<Header> {
    (
        prop_oneof![3 => Just("h".to_owned()), 1 => hostile_string()],
        option::weighted(0.8, vec(any::<u8>(), 0..8)),
    )
        .prop_map(|(key, value)| Header { key, value })
        .boxed()
}

fn record(pools: &Pools) -> BoxedStrategy<ProduceRecord> {
    let now = pools.now_ms;
    (
        option::weighted(0.7, key_bytes()),
        option::weighted(0.9, value_bytes()),
        prop_oneof![4 => Just(vec![]), 1 => vec(header(), 1..3)],
        option::weighted(0.2, small_partition()),
        option::weighted(0.2, prop_oneof![Just(now), Just(0), pick(I64_EDGES)]),
    )
        .prop_map(
            |(key, value, headers, partition, timestamp)| ProduceRecord {
                key,
                value,
                headers,
                partition,
                timestamp,
            },
        )
        .boxed()
}

fn records(pools: &Pools) -> BoxedStrategy<Vec<ProduceRecord>> {
    some(record(pools))
}

fn offsets(pools: &Pools) -> BoxedStrategy<Vec<TopicPartitionOffset>> {
    let offset = (
        topic_partition(pools),
        i64_from(&[0, 1, 2, 5]),
        option::weighted(
            0.2,
            prop_oneof![
                4 => ".{0,8}",
                1 => LazyJust::new(|| "m".repeat(4_097)),
            ],
        ),
    )
        .prop_map(
            |((topic, partition), offset, metadata)| TopicPartitionOffset {
                topic,
                partition,
                offset,
                metadata,
            },
        );
    some(offset.boxed())
}

/// A body of type `ty`, valid or nearly so, naming what `pools` holds.
pub fn body(ty: BodyType, pools: &Pools) -> BoxedStrategy<Body> {
    let pids = i64_from(&pools.producer_ids);
    let epochs = i32_from(&pools.epochs);
    match ty {
        BodyType::CreateTopic => {
            let names = prop_oneof![
                2 => pick(&pools.topics),
                3 => select(&["n1", "n2", "n3"][..]).prop_map(str::to_owned),
                1 => hostile_string(),
            ];
            let config = (
                prop_oneof![
                    3 => pick(&[-1i64, 1_000, 60_000, kafdo_types::api::DEFAULT_RETENTION_MS]),
                    1 => pick(I64_EDGES),
                ],
                prop_oneof![Just(CleanupPolicy::Delete), Just(CleanupPolicy::Compact)],
            )
                .prop_map(|(retention_ms, cleanup_policy)| TopicConfig {
                    retention_ms,
                    cleanup_policy,
                });
            (names, i32_from(&[1, 2, 3, 0, 256, 257]), config)
                .prop_map(|(name, partitions, config)| {
                    Body::CreateTopic(CreateTopicRequest {
                        name,
                        partitions,
                        config,
                    })
                })
                .boxed()
        }
        BodyType::Produce => records(pools)
            .prop_map(|records| Body::Produce(ProduceRequest { records }))
            .boxed(),
        BodyType::PartitionProduce => (
            prop_oneof![
                // The three fields come together or not at all; now and then not.
                6 => option::weighted(0.7, (pids.clone(), epochs.clone(), i32_from(&pools.sequences)))
                    .prop_map(|p| (p.map(|p| p.0), p.map(|p| p.1), p.map(|p| p.2))),
                1 => (
                    option::of(pids),
                    option::of(epochs),
                    option::of(i32_from(&pools.sequences)),
                ),
            ],
            proptest::bool::weighted(0.3),
            records(pools),
        )
            .prop_map(
                |((producer_id, producer_epoch, base_sequence), transactional, records)| {
                    Body::PartitionProduce(PartitionProduceRequest {
                        producer_id,
                        producer_epoch,
                        base_sequence,
                        transactional,
                        records,
                    })
                },
            )
            .boxed(),
        BodyType::InitProducer => (
            option::weighted(0.7, name(&pools.txn_ids)),
            option::weighted(
                0.3,
                i64_from(&[1, 1_000, 60_000, 15 * 60 * 1000, 15 * 60 * 1000 + 1]),
            ),
        )
            .prop_map(|(transactional_id, transaction_timeout_ms)| {
                Body::InitProducer(InitProducerRequest {
                    transactional_id,
                    transaction_timeout_ms,
                })
            })
            .boxed(),
        BodyType::AddPartitions => {
            let partition = topic_partition(pools)
                .prop_map(|(topic, partition)| TopicPartition { topic, partition })
                .boxed();
            (pids, epochs, some(partition))
                .prop_map(|(producer_id, producer_epoch, partitions)| {
                    Body::AddPartitions(AddPartitionsRequest {
                        producer_id,
                        producer_epoch,
                        partitions,
                    })
                })
                .boxed()
        }
        BodyType::AddOffsets => (
            pids,
            epochs,
            name(&pools.groups),
            i32_from(&pools.generations),
            name(&pools.members),
            offsets(pools),
        )
            .prop_map(
                |(producer_id, producer_epoch, group_id, generation_id, member_id, offsets)| {
                    Body::AddOffsets(AddOffsetsRequest {
                        producer_id,
                        producer_epoch,
                        group_id,
                        generation_id,
                        member_id,
                        offsets,
                    })
                },
            )
            .boxed(),
        BodyType::EndTxn => (pids, epochs)
            .prop_map(|(producer_id, producer_epoch)| {
                Body::EndTxn(EndTxnRequest {
                    keep_epoch: false,
                    producer_id,
                    producer_epoch,
                })
            })
            .boxed(),
        BodyType::JoinGroup => (
            option::weighted(0.3, name(&pools.members)),
            option::weighted(0.2, prop_oneof![Just("i-1".to_owned()), hostile_string()]),
            some(name(&pools.topics)),
            option::weighted(
                0.3,
                i64_from(&[999, 1_000, 45_000, 30 * 60 * 1000, 30 * 60 * 1000 + 1]),
            ),
            option::of(prop_oneof![
                Just(Assignor::Range),
                Just(Assignor::RoundRobin),
                Just(Assignor::Sticky),
            ]),
        )
            .prop_map(
                |(member_id, group_instance_id, topics, session_timeout_ms, assignor)| {
                    Body::JoinGroup(JoinGroupRequest {
                        member_id,
                        group_instance_id,
                        topics,
                        session_timeout_ms,
                        assignor,
                    })
                },
            )
            .boxed(),
        BodyType::Heartbeat => i32_from(&pools.generations)
            .prop_map(|generation_id| Body::Heartbeat(HeartbeatRequest { generation_id }))
            .boxed(),
        BodyType::MultiProduce | BodyType::MultiFetch => multi_body(ty, pools),
        BodyType::CreatePartitions => i32_from(&[0, 1, 2, 3, 4, 256, 257, -1])
            .prop_map(|count| Body::CreatePartitions(CreatePartitionsRequest { count }))
            .boxed(),
        BodyType::OffsetCommit => (
            i32_from(&pools.generations),
            name(&pools.members),
            offsets(pools),
        )
            .prop_map(|(generation_id, member_id, offsets)| {
                Body::OffsetCommit(OffsetCommitRequest {
                    generation_id,
                    member_id,
                    offsets,
                })
            })
            .boxed(),
    }
}

/// The body of a multi-partition call: one to three partitions (now and then none, or one twice).
fn multi_body(ty: BodyType, pools: &Pools) -> BoxedStrategy<Body> {
    let twice = |mut v: Vec<(String, i32)>, dup: bool| {
        if dup && !v.is_empty() {
            v.push(v[0].clone());
        }
        v
    };
    let partitions = (some(topic_partition(pools)), proptest::bool::weighted(0.1))
        .prop_map(move |(v, dup)| twice(v, dup))
        .boxed();
    if ty == BodyType::MultiProduce {
        let batch = body(BodyType::PartitionProduce, pools);
        return (partitions, vec(batch, 3))
            .prop_map(|(names, batches)| {
                let partitions = names
                    .into_iter()
                    .zip(batches)
                    .map(|((topic, partition), batch)| PartitionBatch {
                        topic,
                        partition,
                        batch: match batch {
                            Body::PartitionProduce(b) => b,
                            other => unreachable!("a partition produce body, not {other:?}"),
                        },
                    })
                    .collect();
                Body::MultiProduce(MultiProduceRequest { partitions })
            })
            .boxed();
    }
    let limit = || option::weighted(0.3, i32_from(&[0, 1, 100, 1 << 20, i32::MAX]));
    let partition = (
        i64_from(&[0, 1, 2, -1, MAX_SAFE_INTEGER, MAX_SAFE_INTEGER + 1]),
        limit(),
        limit(),
    );
    (
        partitions,
        vec(partition, 4),
        proptest::bool::ANY,
        select(&[0u32, 100][..]),
        select(&[0u32, 1, 1_000_000][..]),
        select(&[1u32, 100, 16 << 20][..]),
    )
        .prop_map(
            |(names, limits, committed, wait_ms, min_bytes, max_bytes)| {
                let partitions = names
                    .into_iter()
                    .zip(limits)
                    .map(
                        |((topic, partition), (offset, max_bytes, max_records))| PartitionFetch {
                            topic,
                            partition,
                            offset,
                            max_bytes: max_bytes.map(|b| b as u32),
                            max_records: max_records.map(|r| r as u32),
                        },
                    )
                    .collect();
                Body::MultiFetch(MultiFetchRequest {
                    partitions,
                    isolation: if committed {
                        Isolation::ReadCommitted
                    } else {
                        Isolation::ReadUncommitted
                    },
                    wait_ms,
                    min_bytes,
                    max_bytes,
                })
            },
        )
        .boxed()
}

/// A body of any type.
pub fn any_body(pools: &Pools) -> BoxedStrategy<Body> {
    let all: Vec<_> = BodyType::ALL.iter().map(|ty| body(*ty, pools)).collect();
    proptest::strategy::Union::new(all).boxed()
}

/// Bytes a mutation inserts: the formats' structural tokens, and any.
const TOKENS: &[&[u8]] = &[
    b"\"",
    b"\\",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"-",
    b"0",
    b"e",
    b"null",
    b"\\u0000",
    &[0xff],
    &[0x9f],
    &[0xbf],
    &[0x1b],
    &[0xc2],
    &[0xf7],
    &[0x00],
    &[0x7f],
    &[0x5b],
];

/// A change to an encoded body.
#[derive(Clone, Debug)]
pub enum Mutation {
    /// Flips one bit.
    Flip {
        /// Where.
        at: Index,
        /// Which bit.
        bit: u8,
    },
    /// Sets one byte.
    Set {
        /// Where.
        at: Index,
        /// To what.
        byte: u8,
    },
    /// Cuts the body short.
    Truncate(Index),
    /// Inserts bytes.
    Insert {
        /// Where.
        at: Index,
        /// What.
        bytes: Vec<u8>,
    },
    /// Deletes a run of bytes.
    Delete {
        /// Where it starts.
        at: Index,
        /// How long it is at most.
        len: usize,
    },
    /// Repeats a run of bytes right after itself.
    Duplicate {
        /// Where it starts.
        at: Index,
        /// How long it is at most.
        len: usize,
    },
    /// Inserts a run of another body's bytes.
    Splice {
        /// Where.
        at: Index,
        /// The other body.
        donor: Vec<u8>,
        /// Where the run starts in it.
        from: Index,
        /// How long it is at most.
        len: usize,
    },
}

impl Mutation {
    /// Applies the mutation (an empty body only takes insertions).
    pub fn apply(&self, bytes: &mut Vec<u8>) {
        let n = bytes.len();
        let at = |i: &Index| if n == 0 { 0 } else { i.index(n) };
        match self {
            Mutation::Flip { at: i, bit } if n > 0 => bytes[at(i)] ^= 1 << (bit % 8),
            Mutation::Set { at: i, byte } if n > 0 => bytes[at(i)] = *byte,
            Mutation::Truncate(i) if n > 0 => bytes.truncate(at(i)),
            Mutation::Insert { at: i, bytes: b } => {
                let i = at(i);
                bytes.splice(i..i, b.iter().copied());
            }
            Mutation::Delete { at: i, len } if n > 0 => {
                let i = at(i);
                bytes.drain(i..(i + len).min(n));
            }
            Mutation::Duplicate { at: i, len } if n > 0 => {
                let i = at(i);
                let run: Vec<u8> = bytes[i..(i + len).min(n)].to_vec();
                let end = i + run.len();
                bytes.splice(end..end, run);
            }
            Mutation::Splice {
                at: i,
                donor,
                from,
                len,
            } if !donor.is_empty() => {
                let i = at(i);
                let start = from.index(donor.len());
                let run = &donor[start..(start + len).min(donor.len())];
                bytes.splice(i..i, run.iter().copied());
            }
            _ => {}
        }
    }
}

/// One mutation, any kind.
pub fn mutation(pools: &Pools) -> BoxedStrategy<Mutation> {
    let donor = (any_body(pools), any::<bool>())
        .prop_map(|(body, cbor)| body.encode(if cbor { Format::Cbor } else { Format::Json }));
    prop_oneof![
        3 => (any::<Index>(), any::<u8>()).prop_map(|(at, bit)| Mutation::Flip { at, bit }),
        2 => (
            any::<Index>(),
            prop_oneof![any::<u8>(), select(&[0x00, 0xff, 0x7f, 0x80, b'"', b'\\', 0x1b, 0x9b, 0xbb][..])],
        )
            .prop_map(|(at, byte)| Mutation::Set { at, byte }),
        2 => any::<Index>().prop_map(Mutation::Truncate),
        3 => (
            any::<Index>(),
            prop_oneof![select(TOKENS).prop_map(<[u8]>::to_vec), vec(any::<u8>(), 1..4)],
        )
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        2 => (any::<Index>(), 1usize..8).prop_map(|(at, len)| Mutation::Delete { at, len }),
        1 => (any::<Index>(), 1usize..16).prop_map(|(at, len)| Mutation::Duplicate { at, len }),
        1 => (any::<Index>(), donor, any::<Index>(), 1usize..32).prop_map(
            |(at, donor, from, len)| Mutation::Splice { at, donor, from, len }
        ),
    ]
    .boxed()
}

/// A valid-looking body of `ty` in `format` with 1 to 4 mutations applied.
pub fn mutated(ty: BodyType, format: Format, pools: &Pools) -> BoxedStrategy<Vec<u8>> {
    (body(ty, pools), vec(mutation(pools), 1..5))
        .prop_map(move |(body, mutations)| {
            let mut bytes = body.encode(format);
            for m in &mutations {
                m.apply(&mut bytes);
            }
            bytes
        })
        .boxed()
}

#[cfg(test)]
mod tests {
    use proptest::strategy::ValueTree;

    use super::*;

    #[test]
    fn mutations_stay_in_bounds() {
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let pools = Pools::fixed();
        let strategy = (vec(any::<u8>(), 0..8), vec(mutation(&pools), 1..8));
        for _ in 0..2_000 {
            let (mut bytes, mutations) = strategy.new_tree(&mut runner).expect("a value").current();
            for m in &mutations {
                m.apply(&mut bytes);
            }
        }
    }

    #[test]
    fn every_type_has_a_valid_body_sometimes() {
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let pools = Pools::fixed();
        for ty in BodyType::ALL {
            let strategy = body(ty, &pools);
            let valid = (0..200)
                .filter(|_| {
                    let body = strategy.new_tree(&mut runner).expect("a value").current();
                    let bytes = body.encode(Format::Json);
                    with_type!(ty, T => codec::decode::<T>(Format::Json, &bytes).is_ok())
                })
                .count();
            assert!(valid > 20, "{ty:?}: {valid} of 200 decode");
        }
    }
}
