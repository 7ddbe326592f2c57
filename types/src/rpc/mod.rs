//! Calls to Durable Objects: every message the Worker, the gateway's doors and the cores send to
//! an object, and what each answers. One table per kind of object; nothing else in Kafdo names
//! an object, a binding or a call path.
//!
//! These are not part of the public API and change with the Worker.
//!
//! # The shape of a call
//!
//! An [`Object`] names one object: its [`Kind`] (which class, which `wrangler.toml` binding) and
//! its name. A call is a value of one of the per-kind enums ([`MetadataCall`],
//! [`PartitionCall`], [`CoordinatorCall`], [`GroupCall`], [`KeyCall`], [`BenchCall`]), wrapped
//! in an [`ObjectCall`]. Each variant carries one payload type, and each payload type
//! implements [`Call`], whose `Answer` is the type the object answers: the caller gets a
//! `C::Answer` back, and the object's handler is written against the same pairing, so a caller
//! and an object cannot disagree on a call's answer without a compile error on one side.
//!
//! On the Worker a call travels as the CBOR of its [`ObjectCall`] in the body of a `POST` to
//! `https://kafdo.internal{path}` (the path, e.g. `/partition/append`, is there for logs and
//! traces; an object refuses a call of another kind); the answer is the CBOR of `C::Answer`, or
//! of an `ApiError` with the code's HTTP status. The simulator carries the same values through its simulated network.
//!
//! | kind | binding | object name | calls |
//! | --- | --- | --- | --- |
//! | [`Kind::Metadata`] | `METADATA` | `cluster` | [`MetadataCall`] |
//! | [`Kind::Partition`] | `PARTITION` | `{topic_id}/{partition}` | [`PartitionCall`] |
//! | [`Kind::Coordinator`] | `TXN_COORDINATOR` | the transactional id | [`CoordinatorCall`] |
//! | [`Kind::Group`] | `GROUP` | the group id | [`GroupCall`] |
//! | [`Kind::Key`] | `IDEMPOTENCY_KEY` | `{topic}/{key}` | [`KeyCall`] |
//! | [`Kind::Bench`] | `BENCH_APPEND` | `bench-{n}`, `debug-sql-rollback` | [`BenchCall`] |

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Declares one kind's call enum: each variant's payload, the payload's answer and the call's
/// path, with the [`Call`] impls and `path()` that go with them.
macro_rules! object_calls {
    (
        $(#[$meta:meta])*
        pub enum $name:ident : $kind:ident {
            $( $(#[$vmeta:meta])* $variant:ident ( $payload:ty ) -> $answer:ty = $path:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $( $(#[$vmeta])* $variant($payload), )+
        }

        impl $name {
            /// The call's path (for logs and traces).
            pub fn path(&self) -> &'static str {
                match self {
                    $( $name::$variant(_) => $path, )+
                }
            }
        }

        impl From<$name> for $crate::rpc::ObjectCall {
            fn from(call: $name) -> Self {
                $crate::rpc::ObjectCall::$kind(call)
            }
        }

        $(
            impl From<$payload> for $crate::rpc::ObjectCall {
                fn from(payload: $payload) -> Self {
                    $crate::rpc::ObjectCall::$kind($name::$variant(payload))
                }
            }

            impl $crate::rpc::Call for $payload {
                type Answer = $answer;
            }
        )+
    };
}

/// A kind of Durable Object: one class, one binding in `wrangler.toml`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// The one metadata object (topics, producer-id blocks, the group registry).
    Metadata,
    /// One topic partition.
    Partition,
    /// One transaction coordinator, per transactional id.
    Coordinator,
    /// One consumer group.
    Group,
    /// One `Idempotency-Key` of one topic.
    Key,
    /// The benchmark's bare append and the SQL binding's self-test.
    Bench,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 6] = [
        Kind::Metadata,
        Kind::Partition,
        Kind::Coordinator,
        Kind::Group,
        Kind::Key,
        Kind::Bench,
    ];

    /// The binding's name in `wrangler.toml`.
    pub fn binding(self) -> &'static str {
        match self {
            Kind::Metadata => "METADATA",
            Kind::Partition => "PARTITION",
            Kind::Coordinator => "TXN_COORDINATOR",
            Kind::Group => "GROUP",
            Kind::Key => "IDEMPOTENCY_KEY",
            Kind::Bench => "BENCH_APPEND",
        }
    }

    /// The Durable Object class's name (`class_name` in `wrangler.toml`).
    pub fn class(self) -> &'static str {
        match self {
            Kind::Metadata => "Metadata",
            Kind::Partition => "Partition",
            Kind::Coordinator => "TxnCoordinator",
            Kind::Group => "Group",
            Kind::Key => "IdempotencyKey",
            Kind::Bench => "BenchAppend",
        }
    }
}

/// The name of the one metadata object.
pub const METADATA_OBJECT_NAME: &str = "cluster";

/// One Durable Object.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Object {
    /// The metadata object.
    Metadata,
    /// A partition of one topic incarnation.
    Partition {
        /// The topic's id (a topic created again gets a new one, so new objects).
        topic_id: String,
        /// The partition number.
        partition: i32,
    },
    /// The coordinator of a transactional id.
    Coordinator(String),
    /// A consumer group.
    Group(String),
    /// An `Idempotency-Key` of a topic.
    Key {
        /// The topic's name.
        topic: String,
        /// The key.
        key: String,
    },
    /// A bench object, by its name.
    Bench(String),
}

impl Object {
    /// The object of a partition reference.
    pub fn partition(partition: &PartitionRef) -> Self {
        Object::Partition {
            topic_id: partition.topic_id.clone(),
            partition: partition.partition,
        }
    }

    /// Its kind.
    pub fn kind(&self) -> Kind {
        match self {
            Object::Metadata => Kind::Metadata,
            Object::Partition { .. } => Kind::Partition,
            Object::Coordinator(_) => Kind::Coordinator,
            Object::Group(_) => Kind::Group,
            Object::Key { .. } => Kind::Key,
            Object::Bench(_) => Kind::Bench,
        }
    }

    /// Its Durable Object name (`idFromName`).
    pub fn name(&self) -> String {
        match self {
            Object::Metadata => METADATA_OBJECT_NAME.to_owned(),
            Object::Partition {
                topic_id,
                partition,
            } => partition_object_name(topic_id, *partition),
            Object::Coordinator(id) | Object::Group(id) | Object::Bench(id) => id.clone(),
            Object::Key { topic, key } => format!("{topic}/{key}"),
        }
    }
}

impl std::fmt::Display for Object {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {:?}", self.kind().class(), self.name())
    }
}

/// The Durable Object name of a partition: its topic id and number.
pub fn partition_object_name(topic_id: &str, partition: i32) -> String {
    format!("{topic_id}/{partition}")
}

/// A call's payload, paired with the type of its answer.
pub trait Call: Into<ObjectCall> {
    /// What the object answers.
    type Answer: Serialize + DeserializeOwned;
}

/// Any call to any object.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ObjectCall {
    /// To the metadata object.
    Metadata(MetadataCall),
    /// To a partition.
    Partition(PartitionCall),
    /// To a transaction coordinator.
    Coordinator(CoordinatorCall),
    /// To a consumer group.
    Group(GroupCall),
    /// To an `Idempotency-Key` object.
    Key(KeyCall),
    /// To a bench object.
    Bench(BenchCall),
}

impl ObjectCall {
    /// The kind of object that serves it.
    pub fn kind(&self) -> Kind {
        match self {
            ObjectCall::Metadata(_) => Kind::Metadata,
            ObjectCall::Partition(_) => Kind::Partition,
            ObjectCall::Coordinator(_) => Kind::Coordinator,
            ObjectCall::Group(_) => Kind::Group,
            ObjectCall::Key(_) => Kind::Key,
            ObjectCall::Bench(_) => Kind::Bench,
        }
    }

    /// The call's path, `/{kind}/{call}`: for logs and traces only (the body says what it is).
    pub fn path(&self) -> &'static str {
        match self {
            ObjectCall::Metadata(c) => c.path(),
            ObjectCall::Partition(c) => c.path(),
            ObjectCall::Coordinator(c) => c.path(),
            ObjectCall::Group(c) => c.path(),
            ObjectCall::Key(c) => c.path(),
            ObjectCall::Bench(c) => c.path(),
        }
    }
}

/// How a transaction ended.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TxnResult {
    /// The transaction committed: its records and offsets become visible.
    Commit,
    /// The transaction aborted: its records are hidden from read_committed readers for ever.
    Abort,
}

/// A partition's or group's acknowledgement of a marker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarkerAck {
    /// Where the marker landed in the log (partitions only; `None` when it was a duplicate).
    pub marker_offset: Option<i64>,
}

mod bench;
mod coordinator;
mod group;
mod ingest;
mod metadata;
mod partition;

pub use bench::*;
pub use coordinator::*;
pub use group::*;
pub use ingest::*;
pub use metadata::*;
pub use partition::*;
