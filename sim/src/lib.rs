//! Deterministic simulation of all Kafdo cores and a history checker.
//!
//! - [`history`]: the JSON-lines history format (Jepsen style) and a [`history::Recorder`].
//! - [`checker`]: proves the exactly-once invariants on a history.
//!
//! See `design/simulation.md`.

#![warn(missing_docs)]

pub mod checker;
pub mod history;
