//! Whole requests, in one process: strategies for a few steps (requests, and now and then the
//! clock moving on) against a fresh [`World`], and the request property ([`check_steps`]).

use kafdo_types::limits::MAX_ERROR_MESSAGE_BYTES;
use kafdo_types::{ErrorBody, ErrorCode};
use kafdo_worker::codec::Format;
use kafdo_worker::http::Answer;
use kafdo_worker::routes::{self, DebugRoute, GroupRoute, Route};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;

use crate::bodies::{any_body, body, mutated, BodyType, Pools};
use crate::paths::{capture, encode_segment, method, number, rows};
use crate::queries;
use crate::schema::shaped;
use crate::tree::{hostile_string, tree};
use crate::world::{Snapshot, WireRequest, World};

/// One step of a run.
#[derive(Clone, Debug)]
pub enum Step {
    /// A request.
    Request(WireRequest),
    /// The clock moves on by this many ms (alarms fire: transaction and session timeouts).
    Advance(i64),
}

/// The body a handler reads on a row, if any.
pub fn body_type(method: &str, pattern: &str) -> Option<BodyType> {
    if method != "POST" {
        return None;
    }
    Some(match pattern {
        "/v1/topics" => BodyType::CreateTopic,
        "/v1/topics/{topic}/records" => BodyType::Produce,
        "/v1/topics/{topic}/partitions" => BodyType::CreatePartitions,
        "/v1/topics/{topic}/partitions/{partition}/records" | "/bench/bare-append/{n}" => {
            BodyType::PartitionProduce
        }
        "/v1/producers" => BodyType::InitProducer,
        "/v1/transactions/{txn}/partitions" => BodyType::AddPartitions,
        "/v1/transactions/{txn}/offsets" => BodyType::AddOffsets,
        "/v1/transactions/{txn}/commit" | "/v1/transactions/{txn}/abort" => BodyType::EndTxn,
        "/v1/groups/{group}/members" => BodyType::JoinGroup,
        "/v1/groups/{group}/members/{member}/heartbeat" => BodyType::Heartbeat,
        "/v1/groups/{group}/offsets" => BodyType::OffsetCommit,
        "/v1/produce" => BodyType::MultiProduce,
        "/v1/fetch" => BodyType::MultiFetch,
        _ => return None,
    })
}

fn pick(pool: &[String]) -> BoxedStrategy<String> {
    select(pool.to_vec()).boxed()
}

/// A path of `pattern` whose captures name the world's objects most of the time (a topic
/// and partition that exist, together).
fn world_path(pattern: &'static str, pools: &Pools) -> BoxedStrategy<String> {
    let mut topics = pools.topics.clone();
    // Topics a create in the same run may have made.
    topics.extend(["n1".to_owned(), "n2".to_owned()]);
    let members: Vec<String> = pools
        .members
        .iter()
        .filter(|m| !m.is_empty())
        .cloned()
        .collect();
    let topic_partition = prop_oneof![
        8 => pick_pair(&pools.partitions),
        1 => (pick(&topics), (0i32..3).prop_map(|p| p.to_string())),
        1 => (capture("topic"), capture("partition")),
    ];
    let parts: Vec<BoxedStrategy<String>> = pattern
        .split('/')
        .skip(1)
        .map(|part| {
            let Some(name) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) else {
                return Just(part.to_owned()).boxed();
            };
            let good = match name {
                // Filled in below, from one pair.
                "topic" | "partition" => return Just(part.to_owned()).boxed(),
                "txn" => pick(&pools.txn_ids)
                    .prop_map(|s| encode_segment(&s))
                    .boxed(),
                "group" => pick(&pools.groups).prop_map(|s| encode_segment(&s)).boxed(),
                "member" => pick(&members).prop_map(|s| encode_segment(&s)).boxed(),
                _ => number(),
            };
            prop_oneof![10 => good, 1 => capture(name)].boxed()
        })
        .collect();
    (parts, topic_partition, proptest::bool::weighted(0.05))
        .prop_map(|(parts, (topic, partition), slash)| {
            let parts: Vec<String> = parts
                .into_iter()
                .map(|part| match part.as_str() {
                    "{topic}" => topic.clone(),
                    "{partition}" => partition.clone(),
                    _ => part,
                })
                .collect();
            let path = format!("/{}", parts.join("/"));
            if slash {
                format!("{path}/")
            } else {
                path
            }
        })
        .boxed()
}

fn pick_pair(pool: &[(String, i32)]) -> BoxedStrategy<(String, String)> {
    select(pool.to_vec())
        .prop_map(|(t, p)| (t, p.to_string()))
        .boxed()
}

/// A query for the row: the parameters its parser knows, mostly with good values.
fn query(pattern: &str, method: &str, pools: &Pools) -> BoxedStrategy<Vec<(String, String)>> {
    let pair = |name: &'static str, value: BoxedStrategy<String>| {
        value.prop_map(move |v| (name.to_owned(), v)).boxed()
    };
    let good = match (method, pattern) {
        ("GET", "/v1/topics/{topic}/partitions/{partition}/records") => vec(
            prop_oneof![
                pair(
                    "offset",
                    prop_oneof![3 => (0i64..6).prop_map(|o| o.to_string()), 1 => number()].boxed()
                ),
                pair(
                    "isolation",
                    select(&["read_committed", "read_uncommitted"][..])
                        .prop_map(str::to_owned)
                        .boxed()
                ),
                pair("max_records", (1u32..4).prop_map(|n| n.to_string()).boxed()),
                pair(
                    "max_bytes",
                    select(&["1", "100", "1048576"][..])
                        .prop_map(str::to_owned)
                        .boxed()
                ),
                pair(
                    "wait_ms",
                    select(&["0", "100"][..]).prop_map(str::to_owned).boxed()
                ),
            ],
            0..3,
        )
        .boxed(),
        ("GET", "/v1/groups/{group}/offsets") => vec(
            prop_oneof![
                pair(
                    "require_stable",
                    select(&["true", "false"][..])
                        .prop_map(str::to_owned)
                        .boxed()
                ),
                pair("topic", pick(&pools.topics)),
                pair(
                    "partitions",
                    select(&["0", "1", "0,1"][..])
                        .prop_map(str::to_owned)
                        .boxed()
                ),
            ],
            0..3,
        )
        .boxed(),
        ("GET", "/v1/topics/{topic}/partitions/{partition}/offsets") => vec(
            prop_oneof![
                pair(
                    "timestamp",
                    select(&["0", "1", "1700000000000", "9007199254740991"][..])
                        .prop_map(str::to_owned)
                        .boxed()
                ),
                pair(
                    "isolation",
                    select(&["read_committed", "read_uncommitted"][..])
                        .prop_map(str::to_owned)
                        .boxed()
                ),
            ],
            1..3,
        )
        .boxed(),
        ("DELETE", "/v1/topics/{topic}/partitions/{partition}/records") => vec(
            pair(
                "before",
                select(&["0", "1", "2", "5", "100"][..])
                    .prop_map(str::to_owned)
                    .boxed(),
            ),
            1..2,
        )
        .boxed(),
        ("GET", "/v1/groups") => vec(
            prop_oneof![
                pair("after", pick(&pools.groups)),
                pair("limit", (1u32..3).prop_map(|n| n.to_string()).boxed()),
            ],
            0..2,
        )
        .boxed(),
        _ => return prop_oneof![12 => Just(vec![]), 1 => queries::pairs()].boxed(),
    };
    prop_oneof![6 => good, 1 => queries::pairs(), 2 => Just(vec![])].boxed()
}

/// A `Content-Type` for a body in `format`, now and then one that names the other format.
fn content_type(format: Format) -> BoxedStrategy<Option<String>> {
    let s = |v: &'static str| Just(Some(v.to_owned()));
    match format {
        Format::Json => prop_oneof![
            3 => Just(None),
            3 => s("application/json"),
            1 => s("application/json; charset=utf-8"),
            1 => s("text/plain"),
            1 => s("application/cbor"),
        ]
        .boxed(),
        Format::Cbor => prop_oneof![
            8 => s("application/cbor"),
            1 => s("APPLICATION/CBOR; q=1"),
            1 => s("text/html, application/cbor"),
            1 => Just(None),
        ]
        .boxed(),
    }
}

/// A body for a row whose handler reads `ty`: mostly a typed body of the world, else
/// mutated, tree-shaped, of another type, random or empty.
fn request_body(ty: Option<BodyType>, format: Format, pools: &Pools) -> BoxedStrategy<Vec<u8>> {
    let encoded = move |b: crate::bodies::Body| b.encode(format);
    let raw = vec(any::<u8>(), 0..64);
    match ty {
        Some(ty) => prop_oneof![
            16 => body(ty, pools).prop_map(encoded),
            4 => mutated(ty, format, pools),
            2 => shaped(ty, format).prop_map(move |t| t.render(format)),
            1 => tree(format).prop_map(move |t| t.render(format)),
            1 => any_body(pools).prop_map(encoded),
            1 => raw,
            1 => Just(vec![]),
        ]
        .boxed(),
        None => prop_oneof![
            8 => Just(vec![]),
            1 => any_body(pools).prop_map(encoded),
            1 => raw,
        ]
        .boxed(),
    }
}

/// A request to the world: a row of the table (its own method nearly always), one of the
/// world's producers in focus (its transactional id in the path, its id, epoch and sequence
/// in the body, most of the time), captures naming the world's objects, a query its parser
/// knows, a body of its type in either format, `Accept` and `Idempotency-Key` of every kind.
pub fn request(pools: &'static Pools) -> BoxedStrategy<WireRequest> {
    (0..rows().len(), 0..pools.producers.len())
        .prop_flat_map(move |(row, focus)| {
            let pools = &pools.focus(focus);
            let (row_method, pattern) = rows()[row];
            let method = prop_oneof![16 => Just(row_method.to_owned()), 1 => method()];
            let ty = body_type(row_method, pattern);
            let body = prop_oneof![
                (Just(Format::Json), request_body(ty, Format::Json, pools)),
                (Just(Format::Cbor), request_body(ty, Format::Cbor, pools)),
            ]
            .prop_flat_map(|(format, body)| (content_type(format), Just(body)));
            let accept = prop_oneof![
                4 => Just(None),
                2 => Just(Some("application/cbor".to_owned())),
                1 => Just(Some("application/json".to_owned())),
                1 => Just(Some("*/*".to_owned())),
                1 => hostile_string().prop_map(Some),
            ];
            let key = if pattern == "/v1/topics/{topic}/records" {
                prop_oneof![
                    5 => Just(None),
                    3 => pick(&pools.keys).prop_map(Some),
                    1 => hostile_string().prop_map(Some),
                ]
                .boxed()
            } else {
                prop_oneof![16 => Just(None), 1 => pick(&pools.keys).prop_map(Some)].boxed()
            };
            (
                method,
                world_path(pattern, pools),
                query(pattern, row_method, pools),
                body,
                accept,
                key,
            )
                .prop_map(
                    |(method, path, query, (content_type, body), accept, idempotency_key)| {
                        WireRequest {
                            method,
                            path,
                            query,
                            content_type,
                            accept,
                            idempotency_key,
                            body,
                        }
                    },
                )
        })
        .boxed()
}

/// One to four steps, mostly requests.
pub fn steps(pools: &'static Pools) -> BoxedStrategy<Vec<Step>> {
    let advance =
        select(&[1i64, 1_000, 30_000, 46_000, 61_000, 3_600_000][..]).prop_map(Step::Advance);
    vec(
        prop_oneof![12 => request(pools).prop_map(Step::Request), 1 => advance],
        1..5,
    )
    .boxed()
}

/// Whether a 5xx is an answer the protocol gives, not a failure: 503
/// `UNSTABLE_OFFSET_COMMIT` (retriable, while a transaction holds the asked offsets), and the
/// bench and debug objects, which do not exist in one process.
fn expected_server_error(req: &WireRequest, error: &ErrorBody) -> bool {
    let route = routes::route(&req.method, &req.path);
    match (route, error.error.code) {
        (Ok(Route::Groups(GroupRoute::FetchOffsets(_))), ErrorCode::UnstableOffsetCommit) => true,
        (
            Ok(Route::Debug(DebugRoute::BareAppend(_) | DebugRoute::SqlRollback)),
            ErrorCode::UnknownServerError,
        ) => error
            .error
            .message
            .contains("does not exist in one process"),
        _ => false,
    }
}

/// What every answer must be: a status the API uses, a body in the format the request
/// accepted (none for 204), an error body whose code goes with the status, a bounded
/// message, `Retry-After` only with `IDEMPOTENCY_KEY_IN_FLIGHT`, and no 5xx but the expected
/// ones.
fn check_answer(req: &WireRequest, answer: &Answer) -> Result<(), TestCaseError> {
    let format = Format::from_accept(req.accept.as_deref());
    let status = answer.status;
    let body = match (&answer.body, status) {
        (None, 204) => return Ok(()),
        (None, _) => return Err(TestCaseError::fail(format!("{status} without a body"))),
        (Some(_), 204) => return Err(TestCaseError::fail("204 with a body")),
        (Some(body), _) => body,
    };
    if status < 400 {
        prop_assert!(matches!(status, 200 | 201), "answered {}", status);
        let parses = match format {
            Format::Json => serde_json::from_slice::<serde_json::Value>(body).is_ok(),
            Format::Cbor => ciborium::de::from_reader::<ciborium::Value, _>(&body[..]).is_ok(),
        };
        prop_assert!(parses, "a {} answer not in {:?}", status, format);
        prop_assert!(answer.retry_after_s.is_none());
        return Ok(());
    }
    let error: ErrorBody = match format {
        Format::Json => serde_json::from_slice(body).map_err(|e| e.to_string()),
        Format::Cbor => ciborium::de::from_reader(&body[..]).map_err(|e| e.to_string()),
    }
    .map_err(|e| TestCaseError::fail(format!("a {status} error body not in {format:?}: {e}")))?;
    let routed = routes::route(&req.method, &req.path).is_ok();
    if routed {
        prop_assert_eq!(
            error.error.code.http_status(),
            status,
            "{:?} answered {}",
            error.error.code,
            status
        );
    }
    prop_assert!(error.error.message.len() <= MAX_ERROR_MESSAGE_BYTES);
    prop_assert_eq!(
        answer.retry_after_s.is_some(),
        error.error.code == ErrorCode::IdempotencyKeyInFlight
    );
    prop_assert!(
        status < 500 || expected_server_error(req, &error),
        "answered {} {:?}: {}",
        status,
        error.error.code,
        error.error.message
    );
    Ok(())
}

/// The first few differences between two snapshots.
fn differences(before: &Snapshot, after: &Snapshot) -> Vec<String> {
    let mut keys: Vec<&String> = before.keys().chain(after.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| before.get(*k) != after.get(*k))
        .take(4)
        .map(|k| {
            format!(
                "{k}:\n  before: {}\n  after:  {}",
                before.get(k).map_or("(nothing)", String::as_str),
                after.get(k).map_or("(nothing)", String::as_str)
            )
        })
        .collect()
}

/// The request property, on a fresh [`World`]: every request is answered at once without a
/// panic, its answer is well formed (see `check_answer`) and never a 5xx but the expected
/// ones, and a refused request (any 4xx) changes nothing an observer can read: the snapshot
/// after it is the snapshot before it, and any object it brought into being reads as one never
/// used.
pub fn check_steps(steps: &[Step]) -> Result<(), TestCaseError> {
    let world = World::new();
    for (i, step) in steps.iter().enumerate() {
        let req = match step {
            Step::Advance(ms) => {
                world.runtime().advance(*ms);
                continue;
            }
            Step::Request(req) => req,
        };
        let names = world.names(req);
        let before = world.snapshot(&names);
        let objects = world.runtime().objects();
        let Some(answer) = world.serve(req) else {
            return Err(TestCaseError::fail(format!(
                "step {i}: the request did not answer at once"
            )));
        };
        let shown = || {
            answer
                .body
                .as_deref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default()
        };
        check_answer(req, &answer).map_err(|e| {
            TestCaseError::fail(format!(
                "step {i}: {e}; answered {} {}",
                answer.status,
                shown()
            ))
        })?;
        if (400..500).contains(&answer.status) {
            let after = world.snapshot(&names);
            let changed = differences(&before, &after);
            prop_assert!(
                changed.is_empty(),
                "step {}: refused with {} {}, and yet changed:\n{}",
                i,
                answer.status,
                shown(),
                changed.join("\n")
            );
            let left = world.new_objects_read_as_unknown(&objects);
            prop_assert!(
                left.is_empty(),
                "step {}: refused with {} {}, and yet left:\n{}",
                i,
                answer.status,
                shown(),
                left.join("\n")
            );
        }
    }
    Ok(())
}
