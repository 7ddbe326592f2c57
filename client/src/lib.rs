//! The Kafdo Rust SDK: a client for Kafdo's HTTP API v1, with Kafka's producer and consumer
//! semantics on top.
//!
//! # Layers
//!
//! - [`transport`]: one trait, [`Transport`], that sends an HTTP request and returns the answer,
//!   with a native implementation (`NativeTransport`, reqwest on tokio, feature `native`, on by
//!   default) and one for code running inside a Worker (`WorkerTransport`, feature `worker`).
//! - [`Client`]: one typed method per API call, retries with jittered exponential backoff where
//!   a retry cannot duplicate anything ([`retry`]), and typed errors carrying Kafka's error codes
//!   ([`Error`]).
//! - [`Producer`]: client-side batching per partition (`linger_ms`, `batch_size`), Kafka's
//!   partitioner (murmur2 for keys, sticky for null keys), idempotence on by default (producer
//!   id + per-partition sequence numbers, so retries never duplicate), a delivery future per
//!   record.
//! - [`TransactionalProducer`]: `init`, `begin_transaction`, `send`,
//!   `send_offsets_to_transaction`, `commit_transaction`, `abort_transaction`, with Kafka's error
//!   classes ([`ErrorClass`]).
//! - [`GroupConsumer`]: group membership with background heartbeats, incremental rebalances
//!   with [`RebalanceListener`] callbacks, committed offsets, auto-commit.
//! - [`Processor`]: read-process-write with exactly-once results (consume as a group,
//!   transform, commit outputs and input offsets in one transaction).
//! - [`Consumer`]: assigned partitions, `seek`, long-poll `poll`, a `Stream` of records,
//!   `read_committed` by default.
//!
//! Architecture invariant: this crate sees Kafdo only through the HTTP API. It depends on
//! `kafdo-types` for the wire shapes and on no core.
//!
//! ```no_run
//! # async fn example() -> Result<(), kafdo_client::Error> {
//! use kafdo_client::{Client, Producer, ProducerConfig};
//! let client = Client::connect("http://127.0.0.1:8787")?;
//! client.create_topic("orders", 4, Default::default()).await?;
//! let producer = Producer::new(client.clone(), ProducerConfig::default());
//! let delivery = producer.send("orders", Some(b"key".to_vec()), b"value".to_vec()).await?;
//! producer.flush().await?;
//! let (partition, offset) = delivery.await?;
//! # let _ = (partition, offset);
//! # Ok(()) }
//! ```

#![warn(missing_docs)]
// On wasm32 the transport's futures and handles are not `Send` (JavaScript values), so the
// `Arc`s that make the SDK shareable across threads natively hold non-`Send` values there. A
// Worker runs on one thread: the `Arc` is merely a reference count, and one code path serves
// both targets.
#![cfg_attr(target_arch = "wasm32", allow(clippy::arc_with_non_send_sync))]

mod admin;
mod client;
pub mod consumer;
mod error;
pub mod group;
pub mod partitioner;
pub mod processor;
pub mod producer;
pub mod retry;
pub mod transport;
pub mod txn;

#[cfg(test)]
mod testing;

pub use client::{Client, ClientConfig, FetchOptions, Format};
pub use consumer::{Consumer, ConsumerConfig, ConsumerRecord, OffsetReset};
pub use error::{Error, ErrorClass};
pub use group::{GroupConsumer, GroupConsumerConfig, RebalanceListener};
pub use kafdo_types::api::{Isolation, PartitionInfo, TopicConfig, TopicDescription};
pub use kafdo_types::txn::TopicPartition;
pub use kafdo_types::{ErrorCode, Header, ProduceRecord, Record};
pub use processor::{OutputRecord, Processor, ProcessorConfig, StepOutcome};
pub use producer::{DeliveryFuture, Producer, ProducerConfig, ProducerIdentity};
pub use transport::{HttpRequest, HttpResponse, Transport, TransportError};
pub use txn::{GroupMetadata, TransactionalProducer};

#[cfg(feature = "native")]
pub use transport::native::NativeTransport;
#[cfg(all(feature = "worker", target_arch = "wasm32"))]
pub use transport::worker::WorkerTransport;
