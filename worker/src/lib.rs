//! The Kafdo Worker: the HTTP router of API v1 and the Durable Object classes.
//!
//! This is the only crate that depends on `worker`. It holds no protocol logic of its own:
//! every class is a thin adapter over a sans-IO core (`kafdo_partition`, `kafdo_metadata`),
//! and the router only decodes, routes and encodes.
//!
//! | module | runs on | what it is |
//! | --- | --- | --- |
//! | [`http`] | native and wasm | routes, JSON/CBOR bodies, query parsing, the produce plan |
//! | [`internal`] | native and wasm | the CBOR calls to the `Metadata` object |
//! | `sql` | wasm | `kafdo_sql::Sql` over the Durable Object's SQLite, bound by hand |
//! | `guard` | wasm | a panic becomes an error answer, not a request that never answers |
//! | `objects` | wasm | the classes `Partition`, `Metadata`, `BenchAppend`, `TxnCoordinator`, `IdempotencyKey` |
//! | `txn_routes` | wasm | producers, transactions, `Idempotency-Key` produce, the transaction admin |
//! | [`group_http`] | native and wasm | the group routes' calls, path and query parsing |
//! | `group_routes` | wasm | consumer groups (`/v1/groups`) over the `Group` objects |
//! | `router` | wasm | the `fetch` entry point: API v1 over the objects |
//!
//! The pure part builds and tests natively, so `cargo test --workspace` covers it without a
//! runtime; the wasm part is covered by the end-to-end tests in `tests/`.
//! See `design/worker.md` and `design/http-api.md`.

#![warn(missing_docs)]

pub mod group_http;
pub mod http;
pub mod internal;

#[cfg(target_arch = "wasm32")]
mod group_routes;
#[cfg(target_arch = "wasm32")]
mod guard;
#[cfg(target_arch = "wasm32")]
mod objects;
#[cfg(target_arch = "wasm32")]
mod router;
#[cfg(target_arch = "wasm32")]
pub mod sql;
#[cfg(target_arch = "wasm32")]
mod txn_routes;
