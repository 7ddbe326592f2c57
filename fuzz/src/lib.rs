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
//! | target | input | property |
//! | --- | --- | --- |
//! | `route` | methods and paths: from the table's rows with captures of every shape (empty, 100,000 bytes, good and bad percent escapes, `00`/`+0`/`-0`/overflowing numbers, NUL and controls, unicode), from its segments in any order, anything | [`paths::check_route`]: no panic; 404/405/400 as `RouteError::to_api_error` says, all `INVALID_REQUEST`; a trailing `/` changes nothing; a route is reached only with its own method and its captures route back to it |
//! | `body-bytes` | arbitrary bytes, uniform or structural, as each of the ten body types, JSON and CBOR | [`bodies::check_body`] (below) |
//! | `body-tree` | value trees ([`tree::Tree`]): arbitrary, and shaped like each body ([`schema`]); integers around ±2^53 and ±2^64, floats, arrays for objects, 48 levels deep, 500,000 values, CBOR tags, simple values, huge declared lengths, trailing bytes, duplicate and integer keys | [`bodies::check_body`] |
//! | `body-mutation` | valid bodies, each byte-flipped, set, cut, inserted into, deleted from, duplicated or spliced with another body 1-4 times | [`bodies::check_body`] |
//! | `query` | query pairs for the fetch, offsets and group-list parsers | [`queries::check_query`]: no panic; `INVALID_REQUEST` (or `OFFSET_OUT_OF_RANGE` for a negative offset); accepted offsets in 0..=2^53-1 and written canonically; caps applied |
//! | `request` | 1-4 steps on a fresh [`world::World`]: requests (any row, its method nearly always, captures naming the world's objects, queries, `Content-Type`, `Accept`, `Idempotency-Key`, bodies typed, mutated, shaped or random) and clock moves | [`requests::check_steps`]: answered at once, no panic, no 5xx but `UNSTABLE_OFFSET_COMMIT` (and the bench objects, which one process has not), answers in the accepted format with the code's status; **a refused request (4xx) changes nothing**: a [`world::Snapshot`] of topics, every partition's offsets and records at both isolations, groups, members, offsets, transactions and open transactions is the same after, and any coordinator or group it brought into being reads as never used |
//!
//! The body property: decoding never panics; an error is `INVALID_REQUEST` (or
//! `MESSAGE_TOO_LARGE`) with a message of at most 1 KiB; a decoded value holds no integer
//! beyond ±(2^53-1), re-encodes in both formats to bytes that decode to itself, and equals what
//! the format's own decoder makes of the same bytes (the checking decoder only refuses more,
//! it never reads differently).
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
