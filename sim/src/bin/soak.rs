//! The soak: many seeds with all faults on, reporting seeds per second.
//!
//! ```text
//! cargo run --release -p kafdo-sim --bin soak -- --seeds 10000 [--from 0] [--bug NAME]
//! ```
//!
//! `--bug` plants one of `skip-duplicate-check`, `markers-before-prepare`, `no-epoch-fence`,
//! `ingest-forgets-reservation`, `compaction-ignores-delete-retention`, `compaction-ignores-lso`,
//! `retention-ignores-time`, `retention-ignores-lso`, or one of the bugs planted in the shared
//! orchestration, `keyed-produce-ignores-reservation` and `produce-offsets-reversed`, or
//! `partition-accepts-unallocated-producer`, and
//! reports how many seeds the checker needed to catch it. A failing seed is printed with its
//! violations; replay it with `SEED=<n> cargo test -p kafdo-sim --test seeds -- --nocapture`.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::ExitCode;
use std::time::Instant;

use kafdo_sim::{run_seed, Bugs};

fn main() -> ExitCode {
    let mut seeds: u64 = 1_000;
    let mut from: u64 = 0;
    let mut bugs = Bugs::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().expect("a value after the flag");
        match arg.as_str() {
            "--seeds" => seeds = value().parse().expect("--seeds N"),
            "--from" => from = value().parse().expect("--from N"),
            "--bug" => match value().as_str() {
                "skip-duplicate-check" => bugs.skip_duplicate_check = true,
                "markers-before-prepare" => bugs.markers_before_prepare = true,
                "no-epoch-fence" => bugs.no_epoch_fence = true,
                "ingest-forgets-reservation" => bugs.ingest_forgets_reservation = true,
                "compaction-ignores-delete-retention" => {
                    bugs.compaction_ignores_delete_retention = true
                }
                "compaction-ignores-lso" => bugs.compaction_ignores_lso = true,
                "retention-ignores-time" => bugs.retention_ignores_time = true,
                "retention-ignores-lso" => bugs.retention_ignores_lso = true,
                "keyed-produce-ignores-reservation" => {
                    bugs.keyed_produce_ignores_reservation = true
                }
                "produce-offsets-reversed" => bugs.produce_offsets_reversed = true,
                "partition-accepts-unallocated-producer" => {
                    bugs.partition_accepts_unallocated_producer = true
                }
                other => panic!("unknown bug {other}"),
            },
            other => panic!("unknown argument {other}"),
        }
    }
    let planted = bugs != Bugs::default();
    let start = Instant::now();
    let mut failures = 0u64;
    let mut steps = 0u64;
    let mut ops = 0usize;
    let (mut committed, mut aborted, mut run) = (0usize, 0usize, 0u64);
    let (mut compacted_seeds, mut compaction) = (0u64, kafdo_sim::sim::CompactionStats::default());
    let (mut retained_seeds, mut retention) = (0u64, kafdo_sim::sim::RetentionStats::default());
    for seed in from..from + seeds {
        run += 1;
        match catch_unwind(AssertUnwindSafe(|| run_seed(seed, bugs))) {
            Ok(outcome) => {
                steps += outcome.steps;
                ops += outcome.report.ops;
                committed += outcome.report.committed_txns;
                aborted += outcome.report.aborted_txns;
                if outcome.config.compaction.is_some() {
                    compacted_seeds += 1;
                }
                compaction.steps += outcome.compaction.steps;
                compaction.rounds += outcome.compaction.rounds;
                compaction.records_removed += outcome.compaction.records_removed;
                if outcome.config.retention.is_some() {
                    retained_seeds += 1;
                }
                retention.steps += outcome.retention.steps;
                retention.offsets_removed += outcome.retention.offsets_removed;
                if !outcome.report.is_valid() {
                    failures += 1;
                    println!("seed {seed}: {}", outcome.report);
                    if planted {
                        println!("caught after {} seeds", seed - from + 1);
                        break;
                    }
                }
            }
            Err(_) => {
                failures += 1;
                println!("seed {seed}: panicked");
                if planted {
                    println!("caught (a core assertion) after {} seeds", seed - from + 1);
                    break;
                }
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{run} seeds from {from}: {failures} failed; {:.1} seeds/s; {steps} events, {ops} ops, \
         {committed} committed and {aborted} aborted transactions checked; {secs:.1} s",
        run as f64 / secs
    );
    println!(
        "compaction: {compacted_seeds} seeds with a compacted topic, {} steps, {} rounds, {} \
         records removed",
        compaction.steps, compaction.rounds, compaction.records_removed
    );
    println!(
        "retention: {retained_seeds} seeds with a retained topic, {} steps raised a log start, \
         {} offsets removed",
        retention.steps, retention.offsets_removed
    );
    if failures > 0 && !planted {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
