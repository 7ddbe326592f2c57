//! Kafdo's fuzz harness: every decoder a request reaches is total, and no request can make
//! the Worker panic, answer a 5xx, or change anything when it is refused.
//!
//! Built on proptest, on stable Rust, natively. The properties run over the Worker's own
//! native code (`kafdo_worker::routes`, `codec`, `handlers`) and, for whole requests, over
//! Kafdo in one process (`kafdo_broker::local::LocalRuntime`: every object's host over
//! in-memory SQLite), driven exactly as `worker/src/entry.rs` drives a real request.
//!
//! # Targets
//!
//! `route` ([`paths::check_route`]), `body-bytes`, `body-tree` and `body-mutation`
//! ([`bodies::check_body`]), `query` ([`queries::check_query`]) and `request`
//! ([`requests::check_steps`]: whole requests on a [`world::World`], and a refused request
//! changes nothing a [`world::Snapshot`] reads). Their inputs and properties are tabled in
//! `design/testing.md`, "The fuzz harness".
//!
//! # Running
//!
//! ```text
//! cargo test -p kafdo-fuzz                      # the bounded run (part of make test)
//! PROPTEST_CASES=100000 cargo test -p kafdo-fuzz --test fuzz route   # more cases of one
//! make fuzz                                     # every target for FUZZ_SECONDS (600), release
//! cargo run --release -p kafdo-fuzz --bin fuzz -- --seconds 60 --target request
//! ```
//!
//! Both runs take their targets from [`targets::TARGETS`]: one strategy and one property each,
//! shared. A failure is shrunk to a minimal input, printed (bodies as `b"..."`, ready to paste)
//! and its seed appended to `fuzz/proptest-regressions/<target>.txt`, which every later run of
//! that target replays first. Commit that file; once the bug is understood, add the input as an
//! explicit test in `tests/regressions.rs` with a comment saying what it found (a bug not yet
//! fixed: `#[ignore = "bug: ..."]`, and fix it in the product, not here).
//!
//! What a snapshot does not see: state only a later write reveals (a producer's sequence
//! number, the producer-id counter, an `Idempotency-Key`'s stored answer), and partitions
//! beyond the first [`world::SNAPSHOT_PARTITIONS`] of a topic that the request does not name.

#![warn(missing_docs)]

pub mod bodies;
pub mod paths;
pub mod queries;
pub mod requests;
pub mod schema;
pub mod targets;
pub mod tree;
pub mod world;
