//! The long run of Kafdo's fuzz targets (`make fuzz`): every target of
//! `kafdo_fuzz::targets::TARGETS` (or those named) for a share of `--seconds` by its weight
//! (`request` five times the others), in batches of fresh random cases, reporting cases per
//! second per target. A failure is shrunk, printed and
//! persisted under `fuzz/proptest-regressions/`; the run goes on with the other targets and
//! exits 1 at the end.
//!
//! ```text
//! cargo run --release -p kafdo-fuzz --bin fuzz -- [--seconds 600] [--target NAME]...
//! ```

use std::process::ExitCode;
use std::time::{Duration, Instant};

use kafdo_fuzz::targets::{runner, target, Target, TARGETS};

fn usage() -> ! {
    eprintln!("usage: fuzz [--seconds N] [--target NAME]...");
    eprintln!("targets:");
    for t in TARGETS {
        eprintln!("  {:<14} {}", t.name, t.about);
    }
    std::process::exit(2)
}

/// Runs `target` for about `budget`, in batches sized to take about a second each.
fn soak(target: &Target, budget: Duration) -> (u64, Duration, Option<String>) {
    let start = Instant::now();
    let mut cases = 0u64;
    let mut batch = 16u32;
    while start.elapsed() < budget {
        let began = Instant::now();
        if let Err(failure) = (target.run)(&mut runner(target, batch)) {
            return (cases, start.elapsed(), Some(failure));
        }
        cases += u64::from(batch);
        let took = began.elapsed().as_secs_f64().max(1e-3);
        let left = budget.saturating_sub(start.elapsed()).as_secs_f64();
        // Aim at one second a batch, never past the budget by much.
        let next = (f64::from(batch) / took).min(f64::from(batch) * 4.0) * left.min(1.0);
        batch = next.clamp(1.0, 1_000_000.0) as u32;
    }
    (cases, start.elapsed(), None)
}

fn main() -> ExitCode {
    let mut seconds = 600u64;
    let mut chosen: Vec<&'static Target> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => {
                seconds = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| usage())
            }
            "--target" => {
                let name = args.next().unwrap_or_else(|| usage());
                chosen.push(target(&name).unwrap_or_else(|| usage()));
            }
            _ => usage(),
        }
    }
    if chosen.is_empty() {
        chosen = TARGETS.iter().collect();
    }
    let weights: u32 = chosen.iter().map(|t| t.weight).sum();
    let share = |t: &Target| Duration::from_secs(seconds) * t.weight / weights;
    println!("fuzzing {} targets for {seconds} s in all", chosen.len());
    let mut failed = 0;
    let mut rows = Vec::new();
    for t in &chosen {
        let (cases, took, failure) = soak(t, share(t));
        let rate = cases as f64 / took.as_secs_f64();
        println!(
            "{:<14} {cases:>10} cases in {:>6.1} s  {rate:>10.1} cases/s{}",
            t.name,
            took.as_secs_f64(),
            if failure.is_some() { "  FAILED" } else { "" }
        );
        if let Some(failure) = failure {
            failed += 1;
            println!("  {failure}");
            println!("  (seed persisted in {})", t.persistence);
        }
        rows.push((t.name, cases, took, rate));
    }
    println!();
    println!("| target | cases | s | cases/s |");
    println!("| --- | ---: | ---: | ---: |");
    for (name, cases, took, rate) in rows {
        println!(
            "| {name} | {cases} | {:.0} | {rate:.1} |",
            took.as_secs_f64()
        );
    }
    if failed > 0 {
        println!("{failed} target(s) failed");
        ExitCode::FAILURE
    } else {
        println!("no failures");
        ExitCode::SUCCESS
    }
}
