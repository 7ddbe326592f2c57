//! The fuzz targets, one list for the bounded run (`tests/fuzz.rs`) and the long run
//! (`src/bin/fuzz.rs`): each a strategy, a property, its bounded case count and its failure
//! persistence file under `fuzz/proptest-regressions/`.

use kafdo_worker::codec::Format;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config, FileFailurePersistence, TestRunner};

use crate::bodies::{check_body, mutated, BodyInput, BodyType, Pools};
use crate::paths::{check_route, route_input};
use crate::queries::{check_query, query_input};
use crate::requests::{check_steps, steps};
use crate::schema::shaped;
use crate::tree::tree;
use crate::world::pools;

/// One fuzz target.
pub struct Target {
    /// Its name (`--target` of the long run, the persistence file's stem).
    pub name: &'static str,
    /// What it throws and what it checks, in a few words.
    pub about: &'static str,
    /// How many cases the bounded run (`cargo test`) runs.
    pub bounded_cases: u32,
    /// Its weight in the long run's time: the `request` target, a fresh world per case and
    /// the one that reaches the broker and every core, is by far the slowest and the most
    /// likely to find what the others cannot.
    pub weight: u32,
    /// The file proptest keeps the seeds of failing cases in, replayed first by every run.
    pub persistence: &'static str,
    /// Runs the target's property over `runner`'s cases: `Err` with the minimal failing
    /// input.
    pub run: fn(&mut TestRunner) -> Result<(), String>,
}

macro_rules! regressions {
    ($name:literal) => {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/proptest-regressions/",
            $name,
            ".txt"
        )
    };
}

/// Every target, in the order the long run reports them.
pub const TARGETS: &[Target] = &[
    Target {
        name: "route",
        about: "methods and paths through routes::route",
        bounded_cases: 20_000,
        weight: 1,
        persistence: regressions!("route"),
        run: |runner| {
            runner
                .run(&route_input(), |input| check_route(&input))
                .map_err(|e| e.to_string())
        },
    },
    Target {
        name: "body-bytes",
        about: "arbitrary bytes decoded as every body type, JSON and CBOR",
        bounded_cases: 20_000,
        weight: 1,
        persistence: regressions!("body-bytes"),
        run: |runner| {
            runner
                .run(&body_bytes(), |input| check_body(&input))
                .map_err(|e| e.to_string())
        },
    },
    Target {
        name: "body-tree",
        about: "arbitrary and body-shaped JSON/CBOR trees decoded as every body type",
        bounded_cases: 4_000,
        weight: 1,
        persistence: regressions!("body-tree"),
        run: |runner| {
            runner
                .run(&body_tree(), |input| check_body(&input))
                .map_err(|e| e.to_string())
        },
    },
    Target {
        name: "body-mutation",
        about: "valid bodies with bytes flipped, cut, inserted, deleted, spliced",
        bounded_cases: 4_000,
        weight: 1,
        persistence: regressions!("body-mutation"),
        run: |runner| {
            runner
                .run(&body_mutation(), |input| check_body(&input))
                .map_err(|e| e.to_string())
        },
    },
    Target {
        name: "query",
        about: "query pairs through the fetch, offsets and group-list parsers",
        bounded_cases: 20_000,
        weight: 1,
        persistence: regressions!("query"),
        run: |runner| {
            runner
                .run(&query_input(), |input| check_query(&input))
                .map_err(|e| e.to_string())
        },
    },
    Target {
        name: "request",
        about: "whole requests through route and handlers::serve on Kafdo in one process",
        bounded_cases: 150,
        weight: 5,
        persistence: regressions!("request"),
        run: |runner| {
            runner
                .run(&steps(pools()), |steps| check_steps(&steps))
                .map_err(|e| e.to_string())
        },
    },
];

/// The target called `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

/// A runner for `cases` cases of `target`, with its persistence file and a fresh random seed
/// (`PROPTEST_RNG_SEED` fixes one, as proptest's own variable).
pub fn runner(target: &Target, cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(target.persistence))),
        max_shrink_iters: 4_096,
        max_shrink_time: 120_000,
        ..Config::default()
    })
}

/// Runs `target`'s bounded run (`PROPTEST_CASES` overrides its case count).
pub fn bounded(name: &str) -> Result<(), String> {
    let target = target(name).unwrap_or_else(|| panic!("no target {name}"));
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(target.bounded_cases);
    (target.run)(&mut runner(target, cases))
}

fn format() -> BoxedStrategy<Format> {
    prop_oneof![Just(Format::Json), Just(Format::Cbor)].boxed()
}

fn body_type() -> BoxedStrategy<BodyType> {
    select(&BodyType::ALL[..]).boxed()
}

/// Bytes the formats' parsers treat as structure, so random bytes are more often nearly a
/// body.
const STRUCTURAL: &[u8] =
    b"{}[]\":,-0123456789.eE truenlfasr\\u\x00\xff\x9f\xbf\xa1\x81\x61\x1b\xc2\xf6";

/// Arbitrary bytes: uniform, or drawn from the formats' structural bytes.
pub fn body_bytes() -> BoxedStrategy<BodyInput> {
    let bytes = prop_oneof![vec(any::<u8>(), 0..96), vec(select(STRUCTURAL), 0..96),];
    (body_type(), format(), bytes)
        .prop_map(|(ty, format, bytes)| BodyInput { ty, format, bytes })
        .boxed()
}

/// Trees in the body's own shape (mostly) or any shape, rendered in one format.
pub fn body_tree() -> BoxedStrategy<BodyInput> {
    (body_type(), format())
        .prop_flat_map(|(ty, format)| {
            prop_oneof![3 => shaped(ty, format), 1 => tree(format)].prop_map(move |t| BodyInput {
                ty,
                format,
                bytes: t.render(format),
            })
        })
        .boxed()
}

/// Valid-looking bodies, mutated, decoded as their own type (nine times in ten) or another.
pub fn body_mutation() -> BoxedStrategy<BodyInput> {
    (
        body_type(),
        body_type(),
        proptest::bool::weighted(0.9),
        format(),
    )
        .prop_flat_map(|(ty, other, own, format)| {
            mutated(ty, format, &Pools::fixed()).prop_map(move |bytes| BodyInput {
                ty: if own { ty } else { other },
                format,
                bytes,
            })
        })
        .boxed()
}
