//! Methods and paths: the route table's rows as the harness knows them, strategies for paths
//! built from their literal segments and for captures of every shape, and the route property
//! ([`check_route`]).

use kafdo_types::limits::MAX_ERROR_MESSAGE_BYTES;
use kafdo_types::rpc::TxnResult;
use kafdo_types::ErrorCode;
use kafdo_worker::routes::{
    self, DebugRoute, GroupRoute, RecordsRoute, Route, RouteError, TopicsRoute, TxnRoute,
};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;

use crate::tree::hostile_string;

/// The rows of `kafdo_worker::routes`' table: method and pattern.
pub fn rows() -> &'static [(&'static str, &'static str)] {
    static ROWS: std::sync::OnceLock<Vec<(&str, &str)>> = std::sync::OnceLock::new();
    ROWS.get_or_init(|| routes::patterns().collect())
}

/// The methods a client may send, and some no client should.
const METHODS: &[&str] = &[
    "GET", "POST", "DELETE", "PUT", "PATCH", "HEAD", "OPTIONS", "get", "Post", "", "GET ",
    "CONNECT", "TRACE", "G\0T",
];

/// A method: one the API uses (GET, POST, DELETE and a few others), or any string.
pub fn method() -> BoxedStrategy<String> {
    prop_oneof![
        8 => select(METHODS).prop_map(str::to_owned),
        1 => ".{0,8}",
    ]
    .boxed()
}

/// Numbers as text, every spelling: canonical ones, `00`, `+0`, `-0`, overflowing ones.
pub fn number() -> BoxedStrategy<String> {
    prop_oneof![
        3 => (-3i32..300).prop_map(|n| n.to_string()),
        3 => select(&[
            "0", "1", "-1", "00", "+0", "-0", "01", "007", "+1", "2147483647", "2147483648",
            "-2147483648", "-2147483649", "4294967295", "4294967296", "9007199254740991",
            "9007199254740992", "-9007199254740992", "18446744073709551616",
            "99999999999999999999999999", "1e3", "0x1", " 1", "1 ", "١", "1_000", "", "-", "+",
            "1.0", "%31",
        ][..])
        .prop_map(str::to_owned),
        1 => any::<i32>().prop_map(|n| n.to_string()),
        1 => any::<i64>().prop_map(|n| n.to_string()),
        1 => any::<u64>().prop_map(|n| n.to_string()),
    ]
    .boxed()
}

/// Text with percent escapes, good (`%20`, `%C3%A9`, `%00`) and bad (`%`, `%zz`, `%FF`, a
/// cut UTF-8 sequence, an encoded surrogate).
pub fn escaped() -> BoxedStrategy<String> {
    let piece = prop_oneof![
        4 => "[a-zA-Z0-9._~-]{1,4}",
        3 => select(&[
            "%20", "%2F", "%2f", "%25", "%C3%A9", "%00", "%0A", "%7F", "%E2%80%AE",
            "%F0%9F%98%80", "%3F", "%23",
        ][..])
        .prop_map(str::to_owned),
        2 => select(&[
            "%", "%2", "%zz", "%FF", "%C3", "%e9", "%%", "%G0", "%+1", "% 1", "%C0%AF",
            "%ED%A0%80", "%F4%90%80%80", "%é",
        ][..])
        .prop_map(str::to_owned),
    ];
    vec(piece, 0..5).prop_map(|p| p.concat()).boxed()
}

/// A capture of `name`: a good value of its kind most of the time, else any shape.
pub fn capture(name: &str) -> BoxedStrategy<String> {
    let good = match name {
        "partition" | "n" => number(),
        "topic" => prop_oneof![
            3 => select(&["t1", "t2", "compacted", "missing"][..]).prop_map(str::to_owned),
            1 => "[a-zA-Z0-9._-]{1,12}",
        ]
        .boxed(),
        _ => prop_oneof![
            3 => select(&["tx-open", "tx-done", "g-live", "g-admin", "m-1", "x"][..])
                .prop_map(str::to_owned),
            2 => escaped(),
        ]
        .boxed(),
    };
    prop_oneof![
        6 => good,
        1 => hostile_string(),
        1 => escaped(),
        1 => number(),
        1 => select(&[1_000usize, 100_000][..]).prop_map(|n| "a".repeat(n)),
    ]
    .boxed()
}

/// A literal segment, mostly as it is, sometimes nearly.
fn literal(segment: &'static str) -> BoxedStrategy<String> {
    prop_oneof![
        12 => Just(segment.to_owned()),
        1 => Just(segment.to_uppercase()),
        1 => Just(format!("{segment}x")),
        1 => Just(String::new()),
        1 => Just(
            segment
                .bytes()
                .map(|b| format!("%{b:02X}"))
                .collect::<String>()
        ),
    ]
    .boxed()
}

/// A path built from a pattern of the table: its literals (mostly intact) and captures.
pub fn patterned(pattern: &'static str) -> BoxedStrategy<String> {
    let parts: Vec<BoxedStrategy<String>> = pattern
        .split('/')
        .skip(1)
        .map(
            |part| match part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                Some(name) => capture(name),
                None => literal(part),
            },
        )
        .collect();
    let decoration = prop_oneof![
        12 => Just(0u8),
        1 => Just(1),
        1 => Just(2),
        1 => Just(3),
        1 => Just(4),
    ];
    (parts, decoration, capture("x"))
        .prop_map(|(parts, decoration, extra)| {
            let path = format!("/{}", parts.join("/"));
            match decoration {
                1 => format!("{path}/"),
                2 => format!("{path}/{extra}"),
                3 => path.trim_start_matches('/').to_owned(),
                4 => path.replacen('/', "//", 1),
                _ => path,
            }
        })
        .boxed()
}

/// One input of the route target.
#[derive(Clone, Debug)]
pub struct RouteInput {
    /// The method.
    pub method: String,
    /// The path.
    pub path: String,
}

/// Methods and paths: from the table's rows (with their own method or another), from its
/// segments in any order, and anything at all.
pub fn route_input() -> BoxedStrategy<RouteInput> {
    let from_rows = (0..rows().len(), any::<bool>(), method())
        .prop_flat_map(|(row, own, other)| {
            let (row_method, pattern) = rows()[row];
            let method = if own { row_method.to_owned() } else { other };
            patterned(pattern).prop_map(move |path| RouteInput {
                method: method.clone(),
                path,
            })
        })
        .boxed();
    let segment = prop_oneof![
        3 => select(&[
            "v1", "topics", "partitions", "records", "producers", "transactions", "commit",
            "abort", "offsets", "admin", "groups", "members", "heartbeat", "bench",
            "bare-append", "debug", "sql-rollback", "health", "",
        ][..])
        .prop_map(str::to_owned),
        1 => capture("x"),
    ];
    let from_segments = (method(), vec(segment, 0..8)).prop_map(|(method, segments)| RouteInput {
        method,
        path: format!("/{}", segments.join("/")),
    });
    let anything = (method(), ".{0,40}").prop_map(|(method, path)| RouteInput { method, path });
    prop_oneof![6 => from_rows, 2 => from_segments, 1 => anything].boxed()
}

/// Percent-encodes every byte but the unreserved ones, as a client encodes an id.
pub fn encode_segment(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The method and path that name `route`, captures encoded as a client encodes them. The
/// match is exhaustive on purpose: a new route does not compile here until it is added.
pub fn request_of(route: &Route) -> (&'static str, String) {
    let e = encode_segment;
    match route {
        Route::Health => ("GET", "/health".into()),
        Route::Topics(r) => match r {
            TopicsRoute::Create => ("POST", "/v1/topics".into()),
            TopicsRoute::List => ("GET", "/v1/topics".into()),
            TopicsRoute::Describe(t) => ("GET", format!("/v1/topics/{t}")),
            TopicsRoute::Delete(t) => ("DELETE", format!("/v1/topics/{t}")),
            TopicsRoute::AddPartitions(t) => ("POST", format!("/v1/topics/{t}/partitions")),
            TopicsRoute::PartitionInfo(t, p) => ("GET", format!("/v1/topics/{t}/partitions/{p}")),
            TopicsRoute::OffsetForTimestamp(t, p) => {
                ("GET", format!("/v1/topics/{t}/partitions/{p}/offsets"))
            }
            TopicsRoute::Producers(t, p) => {
                ("GET", format!("/v1/topics/{t}/partitions/{p}/producers"))
            }
        },
        Route::Records(r) => match r {
            RecordsRoute::ProduceTopic(t) => ("POST", format!("/v1/topics/{t}/records")),
            RecordsRoute::ProducePartition(t, p) => {
                ("POST", format!("/v1/topics/{t}/partitions/{p}/records"))
            }
            RecordsRoute::Fetch(t, p) => ("GET", format!("/v1/topics/{t}/partitions/{p}/records")),
            RecordsRoute::DeleteRecords(t, p) => {
                ("DELETE", format!("/v1/topics/{t}/partitions/{p}/records"))
            }
            RecordsRoute::ProduceMany => ("POST", "/v1/produce".into()),
            RecordsRoute::FetchMany => ("POST", "/v1/fetch".into()),
        },
        Route::Transactions(r) => match r {
            TxnRoute::InitProducer => ("POST", "/v1/producers".into()),
            TxnRoute::AddPartitions(id) => {
                ("POST", format!("/v1/transactions/{}/partitions", e(id)))
            }
            TxnRoute::AddOffsets(id) => ("POST", format!("/v1/transactions/{}/offsets", e(id))),
            TxnRoute::End(id, TxnResult::Commit) => {
                ("POST", format!("/v1/transactions/{}/commit", e(id)))
            }
            TxnRoute::End(id, TxnResult::Abort) => {
                ("POST", format!("/v1/transactions/{}/abort", e(id)))
            }
            TxnRoute::Describe(id) => ("GET", format!("/v1/transactions/{}", e(id))),
            TxnRoute::ListOpen => ("GET", "/v1/admin/transactions".into()),
            TxnRoute::AdminAbort(id) => ("POST", format!("/v1/admin/transactions/{}/abort", e(id))),
        },
        Route::Groups(r) => match r {
            GroupRoute::List => ("GET", "/v1/groups".into()),
            GroupRoute::Describe(g) => ("GET", format!("/v1/groups/{}", e(g))),
            GroupRoute::Join(g) => ("POST", format!("/v1/groups/{}/members", e(g))),
            GroupRoute::Heartbeat(g, m) => (
                "POST",
                format!("/v1/groups/{}/members/{}/heartbeat", e(g), e(m)),
            ),
            GroupRoute::Leave(g, m) => ("DELETE", format!("/v1/groups/{}/members/{}", e(g), e(m))),
            GroupRoute::CommitOffsets(g) => ("POST", format!("/v1/groups/{}/offsets", e(g))),
            GroupRoute::FetchOffsets(g) => ("GET", format!("/v1/groups/{}/offsets", e(g))),
        },
        Route::Debug(DebugRoute::BareAppend(n)) => ("POST", format!("/bench/bare-append/{n}")),
        Route::Debug(DebugRoute::SqlRollback) => ("POST", "/debug/sql-rollback".into()),
    }
}

/// The route property: routing never panics; a refusal is 404 or 405 (`INVALID_REQUEST`) or
/// 400 `INVALID_REQUEST` for a malformed capture, as `RouteError::to_api_error` says, with a
/// bounded message; trailing slashes change nothing; a route is reached only with its own
/// method, and its captures, encoded as a client encodes them, route to it again.
pub fn check_route(input: &RouteInput) -> Result<(), TestCaseError> {
    let RouteInput { method, path } = input;
    let routed = routes::route(method, path);
    prop_assert_eq!(
        &routes::route(method, &format!("{path}/")),
        &routed,
        "a trailing slash changed the route"
    );
    match &routed {
        Err(e) => {
            let (status, error) = e.to_api_error(method, path);
            let expected = match e {
                RouteError::NotFound => 404,
                RouteError::MethodNotAllowed => 405,
                RouteError::Invalid(_) => 400,
            };
            prop_assert_eq!(status, expected, "{:?} answered {}", e, status);
            prop_assert_eq!(error.code, ErrorCode::InvalidRequest);
            prop_assert!(
                error.message.len() <= MAX_ERROR_MESSAGE_BYTES,
                "a {}-byte message",
                error.message.len()
            );
        }
        Ok(route) => {
            let (own, again) = request_of(route);
            prop_assert_eq!(
                own,
                method.as_str(),
                "{:?} reached with another method",
                route
            );
            let rerouted = routes::route(own, &again);
            prop_assert_eq!(
                rerouted.as_ref(),
                Ok(route),
                "{:?} written as {} routes elsewhere",
                route,
                again
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_of_inverts_every_row() {
        for (method, pattern) in rows() {
            let path = pattern
                .split('/')
                .map(|part| match part {
                    "{partition}" | "{n}" => "1",
                    p if p.starts_with('{') => "x",
                    p => p,
                })
                .collect::<Vec<_>>()
                .join("/");
            let route = routes::route(method, &path);
            assert!(route.is_ok(), "{method} {pattern}: {route:?}");
            assert_eq!(request_of(&route.unwrap()), (*method, path));
        }
    }
}
