//! Deterministic simulation of all Kafdo cores and a history checker.
//!
//! - [`history`]: the JSON-lines history format (Jepsen style) and a [`history::Recorder`].
//! - [`checker`]: proves the exactly-once invariants on a history.
//! - [`e2e`]: records end-to-end runs (against `wrangler dev`) in the same format.
//! - `sim` (feature `simulator`, on by default): the simulator: the real cores on real SQLite, simulated clients, a faulty
//!   network, restarts and alarm chaos, all driven by one seed ([`rng`]).
//! - `run_seed`: one seed, simulated and checked.
//!
//! See `design/simulation.md`.

#![warn(missing_docs)]

pub mod checker;
pub mod e2e;
pub mod history;
pub mod rng;
#[cfg(feature = "simulator")]
pub mod sim;

#[cfg(feature = "simulator")]
pub use sim::{Bugs, Config};

/// One seed, simulated and checked.
#[cfg(feature = "simulator")]
pub struct SeedOutcome {
    /// The configuration the seed drew.
    pub config: Config,
    /// What the checker found.
    pub report: checker::Report,
    /// The history.
    pub history: history::History,
    /// Events the simulator processed.
    pub steps: u64,
    /// Logical time at the end.
    pub end_ms: i64,
    /// What compaction did.
    pub compaction: sim::CompactionStats,
    /// What retention did.
    pub retention: sim::RetentionStats,
}

/// Simulates `seed` with the given planted bugs and checks the history.
///
/// Panics if a core asserts (a broken invariant inside a core is a bug too) or if the history
/// is malformed (a simulator bug).
#[cfg(feature = "simulator")]
pub fn run_seed(seed: u64, bugs: Bugs) -> SeedOutcome {
    let mut config = Config::for_seed(seed);
    config.bugs = bugs;
    let out = sim::World::new(config.clone()).run();
    let report = checker::check(&out.history).expect("the simulator writes well-formed histories");
    SeedOutcome {
        config,
        report,
        history: out.history,
        steps: out.steps,
        end_ms: out.end_ms,
        compaction: out.compaction,
        retention: out.retention,
    }
}
