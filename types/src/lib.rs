//! Kafdo's wire types.
//!
//! Everything that crosses a boundary lives here: the HTTP API v1 bodies ([`api`]), the records
//! they carry ([`record`]), the calls the Worker and the cores make to Durable Objects ([`rpc`]),
//! the protocol error codes as Kafka names them ([`ErrorCode`]), and Kafka's partitioner
//! ([`partitioner`]).
//!
//! Architecture invariant: this crate depends on nothing of ours, so the client, the Worker, the
//! cores and the simulator all agree on one definition of every message.
//!
//! Binary fields (record keys, values, header values) serialize as standard base64 strings in
//! human-readable formats (JSON) and as byte strings in binary ones (CBOR): one type serves both
//! encodings of the API.

#![warn(missing_docs)]

pub mod api;
pub mod bytes;
mod error;
pub mod group;
pub mod group_list;
pub mod limits;
pub mod partitioner;
pub mod record;
pub mod rpc;
pub mod txn;

pub use error::{ApiError, ErrorBody, ErrorCode};
pub use record::{Header, ProduceRecord, Record};
