//! Seeds: the simulator with all faults on, judged by the checker.
//!
//! `cargo test -p kafdo-sim --test seeds` runs `SIM_SEEDS` seeds (default 300) from
//! `SIM_FROM` (default 0). `SEED=<n>` replays one seed and prints its whole trace. A failing
//! seed prints its violations, the events they cite, and the command that replays it.

use std::panic::{catch_unwind, AssertUnwindSafe};

use kafdo_sim::history::{Entry, Observation, Reply};
use kafdo_sim::{run_seed, Bugs, SeedOutcome};
use kafdo_types::ErrorCode;

/// What a batch of seeds exercised, so a simulator that silently stops doing something fails.
#[derive(Debug, Default)]
struct Coverage {
    committed: usize,
    aborted: usize,
    duplicates_answered: usize,
    fenced: usize,
    unknown_outcomes: usize,
    restarts: usize,
    pipeline_offsets_committed: usize,
    ingested: usize,
    ingest_in_flight: usize,
    ingest_key_reused: usize,
    keys_expired: usize,
    runs_killed: usize,
    ingest_takeovers: usize,
    /// Ends answered with epoch 0: the transactional id moved to a new producer id.
    producer_id_moves: usize,
    /// Retention steps that raised a log start offset.
    retention_steps: u64,
    /// Fetches refused with `OFFSET_OUT_OF_RANGE` (the offset was deleted by retention).
    out_of_range: usize,
    /// Consumers that went on from the log start after one.
    resets: usize,
    /// Batches refused for a producer id nobody was handed out (the impostors').
    unallocated_refused: usize,
}

impl Coverage {
    fn add(&mut self, outcome: &SeedOutcome) {
        self.committed += outcome.report.committed_txns;
        self.aborted += outcome.report.aborted_txns;
        self.retention_steps += outcome.retention.steps;
        for event in &outcome.history.events {
            match &event.entry {
                Entry::Ok {
                    reply:
                        Reply::Produce {
                            duplicate: true, ..
                        },
                    ..
                } => self.duplicates_answered += 1,
                Entry::Ok {
                    process: 0,
                    reply: Reply::Offsets { offsets },
                } => self.pipeline_offsets_committed += offsets.len(),
                Entry::Fail {
                    code: ErrorCode::ProducerFenced,
                    ..
                } => self.fenced += 1,
                Entry::Ok {
                    reply: Reply::Ingest { .. },
                    ..
                } => self.ingested += 1,
                Entry::Fail {
                    code: ErrorCode::IdempotencyKeyInFlight,
                    ..
                } => self.ingest_in_flight += 1,
                Entry::Fail {
                    code: ErrorCode::IdempotencyKeyReused,
                    ..
                } => self.ingest_key_reused += 1,
                Entry::Observe {
                    observation: Observation::Note { text },
                } if text.starts_with("key ") && text.ends_with("expired") => {
                    self.keys_expired += 1
                }
                Entry::Observe {
                    observation: Observation::Note { text },
                } if text.starts_with("kill the Worker run") => self.runs_killed += 1,
                // A later attempt of a key took over its producer id (after a failure or an
                // expired lease).
                Entry::Observe {
                    observation: Observation::Note { text },
                } if text.contains(" proceeds ") && !text.contains(": attempt 1 ") => {
                    self.ingest_takeovers += 1
                }
                Entry::Ok {
                    reply:
                        Reply::EndTxn {
                            producer_id: Some(_),
                            producer_epoch: 0,
                            ..
                        },
                    ..
                } => self.producer_id_moves += 1,
                Entry::Fail {
                    code: ErrorCode::OffsetOutOfRange,
                    ..
                } => self.out_of_range += 1,
                Entry::Fail {
                    code: ErrorCode::UnknownProducerId,
                    ..
                } => self.unallocated_refused += 1,
                Entry::Ok {
                    reply: Reply::PartitionOffsets { .. },
                    ..
                } => self.resets += 1,
                Entry::Info { .. } => self.unknown_outcomes += 1,
                Entry::Observe {
                    observation: Observation::Note { text },
                } if text.starts_with("restart") => self.restarts += 1,
                _ => {}
            }
        }
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name} must be a number"))
    })
}

/// The violations of a failed seed, each followed by the events it cites.
fn explain(outcome: &SeedOutcome) -> String {
    let mut out = format!("{}", outcome.report);
    for v in &outcome.report.violations {
        out.push_str(&format!("\n{v}\n"));
        for e in &v.events {
            if let Some(event) = outcome.history.events.get(*e as usize) {
                out.push_str(&format!("    {event}\n"));
            }
        }
    }
    out
}

#[test]
fn seeds_pass_with_all_faults_on() {
    if let Some(seed) = env_u64("SEED") {
        let outcome = run_seed(seed, Bugs::default());
        println!("{:?}", outcome.config);
        println!("{}", outcome.history.trace());
        println!("{}", explain(&outcome));
        assert!(outcome.report.is_valid(), "seed {seed} failed");
        return;
    }
    let from = env_u64("SIM_FROM").unwrap_or(0);
    let count = env_u64("SIM_SEEDS").unwrap_or(300);
    let mut ops = 0;
    let mut coverage = Coverage::default();
    for seed in from..from + count {
        let outcome = catch_unwind(AssertUnwindSafe(|| run_seed(seed, Bugs::default())));
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(_) => panic!(
                "seed {seed} panicked (a core assertion or a simulator bug); replay with \
                 SEED={seed} cargo test -p kafdo-sim --test seeds -- --nocapture"
            ),
        };
        assert!(
            outcome.report.is_valid(),
            "seed {seed} failed: {}\nreplay with SEED={seed} cargo test -p kafdo-sim --test \
             seeds -- --nocapture",
            explain(&outcome)
        );
        ops += outcome.report.ops;
        coverage.add(&outcome);
    }
    println!("{count} seeds from {from}: all valid, {ops} operations checked; {coverage:?}");
    if count >= 100 {
        assert!(
            coverage.committed > 0
                && coverage.aborted > 0
                && coverage.duplicates_answered > 0
                && coverage.fenced > 0
                && coverage.unknown_outcomes > 0
                && coverage.restarts > 0
                && coverage.pipeline_offsets_committed > 0
                && coverage.ingested > 0
                && coverage.ingest_in_flight > 0
                && coverage.ingest_key_reused > 0
                && coverage.keys_expired > 0
                && coverage.runs_killed > 0
                && coverage.ingest_takeovers > 0
                && coverage.producer_id_moves > 0
                && coverage.retention_steps > 0
                && coverage.out_of_range > 0
                && coverage.resets > 0
                && coverage.unallocated_refused > 0,
            "the seeds did not exercise everything: {coverage:?}"
        );
    }
}

#[test]
fn a_seed_replays_exactly() {
    for seed in [3, 17] {
        let a = run_seed(seed, Bugs::default());
        let b = run_seed(seed, Bugs::default());
        assert_eq!(a.history, b.history, "seed {seed} did not replay");
        assert!(a.history.events.len() > 50, "seed {seed} did too little");
    }
}
