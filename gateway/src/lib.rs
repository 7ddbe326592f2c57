//! The Kafka gateway: a stateless process that speaks the Kafka wire protocol on TCP and calls
//! Kafdo's HTTP API (`design/gateway.md`).
//!
//! - [`server`]: connections and frames (sizes, headers, what closes a connection).
//! - [`api`]: the offered APIs and their versions, each translated into Kafdo calls.
//! - [`records`]: Kafka's RecordBatch v2, read (every codec) and written (stretched batches).
//! - [`errors`]: Kafdo's error names as Kafka's codes, per request version.
//! - [`alloc`]: the allocator that keeps a hostile length from aborting the process.

pub mod alloc;
pub mod api;
pub mod errors;
pub mod records;
pub mod server;
