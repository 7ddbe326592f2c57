//! The Kafdo Worker: the HTTP API v1 door and the Durable Object classes, as thin transports
//! over `kafdo_broker` (the orchestration) and its hosts (what each object does).
//!
//! This is the only crate that depends on `worker`. Everything that decides anything is in the
//! broker, which the simulator runs too; what is here only moves bytes between Cloudflare and
//! it. The native part builds and tests without a runtime; the wasm part is covered by the
//! end-to-end tests in `tests/`.
//!
//! | module | runs on | what it is |
//! | --- | --- | --- |
//! | [`routes`] | native and wasm | the route table: method and path to a [`routes::Route`] |
//! | [`body`] | native and wasm | total decoding of request bodies: limits, structs only from maps |
//! | [`codec`] | native and wasm | JSON and CBOR bodies, error bodies |
//! | [`http`] | native and wasm | a request read whole, an answer ready to send |
//! | [`handlers`] | native and wasm | one module per area: decode, call the broker, encode |
//! | `entry` | wasm | the `fetch` entry point: request in, route, handler, response out |
//! | `stubs` | wasm | the broker's `Runtime` over Durable Object stubs (every object call) |
//! | `objects` | wasm | the classes `Partition`, `Metadata`, `TxnCoordinator`, `Group`, `IdempotencyKey`, `BenchAppend` |
//! | `sql` | wasm | `kafdo_sql::Sql` over the Durable Object's SQLite, bound by hand |
//! | `guard` | wasm | a panic becomes an error answer, not a request that never answers |
//! | `logging` | wasm | `tracing` events to the Workers console |
//!
//! Nothing imports `entry`: the handlers know the broker and the HTTP types only, so there is
//! no import circle. See `design/worker.md` and `design/http-api.md`.

#![warn(missing_docs)]

pub mod body;
pub mod codec;
pub mod handlers;
pub mod http;
pub mod routes;

#[cfg(target_arch = "wasm32")]
mod entry;
#[cfg(target_arch = "wasm32")]
mod guard;
#[cfg(target_arch = "wasm32")]
mod logging;
#[cfg(target_arch = "wasm32")]
mod objects;
#[cfg(target_arch = "wasm32")]
pub mod sql;
#[cfg(target_arch = "wasm32")]
mod stubs;
