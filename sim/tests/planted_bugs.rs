//! Planted bugs: each must be caught by the checker within a bounded number of seeds.
//!
//! The bugs are planted from outside the cores (see `kafdo_sim::Bugs`): the production code
//! carries no test-only paths.

use std::panic::{catch_unwind, AssertUnwindSafe};

use kafdo_sim::checker::Invariant;
use kafdo_sim::{run_seed, Bugs};

/// How many seeds a planted bug may take to be caught. The seeds are fixed, so each test is
/// deterministic; the bound only says how rare a bug's trigger may be. Compaction past the LSO
/// needs a compacted topic, an open transaction on it and a compaction round at once: from
/// eight starting points its seeds to catch were 1 to 95 (73 from seed 0).
const BOUND: u64 = 100;

/// Runs seeds from 0 until the checker (or a core assertion) catches the bug; returns how many
/// seeds it took and what caught it.
fn seeds_to_catch(bugs: Bugs) -> (u64, Vec<Invariant>) {
    for seed in 0..BOUND {
        match catch_unwind(AssertUnwindSafe(|| run_seed(seed, bugs))) {
            Ok(outcome) if outcome.report.is_valid() => {}
            Ok(outcome) => {
                let mut caught: Vec<Invariant> = outcome
                    .report
                    .violations
                    .iter()
                    .map(|v| v.invariant)
                    .collect();
                caught.dedup();
                println!("{bugs:?}: seed {seed}: {}", outcome.report);
                return (seed + 1, caught);
            }
            Err(_) => return (seed + 1, Vec::new()),
        }
    }
    panic!("{bugs:?} was not caught within {BOUND} seeds");
}

#[test]
fn skipping_the_duplicate_check_is_caught() {
    let (seeds, caught) = seeds_to_catch(Bugs {
        skip_duplicate_check: true,
        ..Bugs::default()
    });
    println!("caught after {seeds} seeds by {caught:?}");
    assert!(caught.contains(&Invariant::DuplicateWrite), "{caught:?}");
}

#[test]
fn markers_before_prepare_commit_are_caught() {
    let (seeds, caught) = seeds_to_catch(Bugs {
        markers_before_prepare: true,
        ..Bugs::default()
    });
    println!("caught after {seeds} seeds by {caught:?}");
    assert!(caught.contains(&Invariant::TxnAtomicity), "{caught:?}");
}

#[test]
fn forgetting_to_fence_an_old_epoch_is_caught() {
    let (seeds, caught) = seeds_to_catch(Bugs {
        no_epoch_fence: true,
        ..Bugs::default()
    });
    println!("caught after {seeds} seeds by {caught:?}");
    assert!(
        caught.contains(&Invariant::Fencing) || caught.contains(&Invariant::TxnAtomicity),
        "{caught:?}"
    );
}

#[test]
fn an_ingest_object_forgetting_its_reservation_is_caught() {
    let (seeds, caught) = seeds_to_catch(Bugs {
        ingest_forgets_reservation: true,
        ..Bugs::default()
    });
    println!("caught after {seeds} seeds by {caught:?}");
    assert!(caught.contains(&Invariant::IngestExactlyOnce), "{caught:?}");
}

#[test]
fn compaction_past_the_last_stable_offset_is_caught() {
    let (seeds, caught) = seeds_to_catch(Bugs {
        compaction_ignores_lso: true,
        ..Bugs::default()
    });
    println!("caught after {seeds} seeds by {caught:?}");
    assert!(
        caught.contains(&Invariant::CompactedSkipped)
            || caught.contains(&Invariant::CompactedLatest)
            || caught.contains(&Invariant::ReadAborted),
        "{caught:?}"
    );
}

#[test]
fn compaction_without_the_delete_retention_is_caught() {
    let (seeds, caught) = seeds_to_catch(Bugs {
        compaction_ignores_delete_retention: true,
        ..Bugs::default()
    });
    println!("caught after {seeds} seeds by {caught:?}");
    assert!(
        caught.contains(&Invariant::CompactedSkipped)
            || caught.contains(&Invariant::CompactedLatest),
        "{caught:?}"
    );
}

#[test]
fn retention_that_ignores_time_is_caught() {
    let (seeds, caught) = seeds_to_catch(Bugs {
        retention_ignores_time: true,
        ..Bugs::default()
    });
    println!("caught after {seeds} seeds by {caught:?}");
    assert!(caught.contains(&Invariant::RetentionExpired), "{caught:?}");
}

#[test]
fn retention_past_the_last_stable_offset_is_caught() {
    let (seeds, caught) = seeds_to_catch(Bugs {
        retention_ignores_lso: true,
        ..Bugs::default()
    });
    println!("caught after {seeds} seeds by {caught:?}");
    assert!(caught.contains(&Invariant::RetentionStable), "{caught:?}");
}

#[test]
fn a_keyed_produce_ignoring_its_reservation_is_caught() {
    // Planted in the shared orchestration (`kafdo_broker`), which the Worker runs too.
    let (seeds, caught) = seeds_to_catch(Bugs {
        keyed_produce_ignores_reservation: true,
        ..Bugs::default()
    });
    println!("caught after {seeds} seeds by {caught:?}");
    assert!(caught.contains(&Invariant::IngestExactlyOnce), "{caught:?}");
}

#[test]
fn a_produce_answering_offsets_out_of_order_is_caught() {
    // Planted in the shared orchestration (`kafdo_broker`), which the Worker runs too.
    let (seeds, caught) = seeds_to_catch(Bugs {
        produce_offsets_reversed: true,
        ..Bugs::default()
    });
    println!("caught after {seeds} seeds by {caught:?}");
    // An answered offset names another record's offset (a keyed produce's answer is checked
    // against where its records are).
    assert!(
        caught.contains(&Invariant::OneValuePerOffset) || caught.contains(&Invariant::IngestAnswer),
        "{caught:?}"
    );
}

#[test]
fn a_partition_accepting_an_id_never_handed_out_is_caught() {
    let (seeds, caught) = seeds_to_catch(Bugs {
        partition_accepts_unallocated_producer: true,
        ..Bugs::default()
    });
    println!("caught after {seeds} seeds by {caught:?}");
    assert!(
        caught.contains(&Invariant::ProducerIdHandedOut),
        "{caught:?}"
    );
}
