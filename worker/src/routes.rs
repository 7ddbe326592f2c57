//! The route table of API v1: every method and path the Worker serves, and what each becomes.
//!
//! A row is a method, a path pattern and a function that builds the [`Route`] from the
//! pattern's captures. Literal segments must match exactly; a capture takes one segment:
//!
//! | capture | what it takes |
//! | --- | --- |
//! | `{topic}` | a topic name, as it is (topic names are checked by the metadata object) |
//! | `{partition}` | a partition number (`i32`) written canonically (`0`, `7`, `-1`; not `00`, `+7`); anything else is 400 |
//! | `{txn}` | a transactional id, percent-decoded (it may hold any character but controls) |
//! | `{group}`, `{member}` | a group or member id, percent-decoded, not empty |
//! | `{n}` | a bench object's number (`u32`), canonically |
//!
//! Ids are checked by the broker (one rule for every id, `kafdo_types::limits::valid_id`), so
//! every door refuses the same ones. A trailing `/` is ignored. A path that matches no row is 404; one that matches a row only
//! with another method is 405 (or 400 if a capture is malformed). Adding a route is a row here,
//! a variant of its area's enum, and its handler in that area's file under `handlers/`.

use std::fmt;

use kafdo_types::limits::{parse_canonical, quoted};
use kafdo_types::rpc::TxnResult;
use kafdo_types::{ApiError, ErrorCode};

/// One route of API v1 (plus the benchmark and debug routes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// `GET /health`.
    Health,
    /// `/v1/topics` and a topic's partitions (`handlers/topics.rs`).
    Topics(TopicsRoute),
    /// Produce and fetch (`handlers/records.rs`).
    Records(RecordsRoute),
    /// Producers, transactions and their admin (`handlers/transactions.rs`).
    Transactions(TxnRoute),
    /// `/v1/groups` (`handlers/groups.rs`).
    Groups(GroupRoute),
    /// The benchmark's baseline and the SQL binding's self-test (`handlers/debug.rs`).
    Debug(DebugRoute),
}

/// The topic routes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TopicsRoute {
    /// `POST /v1/topics`.
    Create,
    /// `GET /v1/topics`.
    List,
    /// `GET /v1/topics/{t}`.
    Describe(String),
    /// `DELETE /v1/topics/{t}`.
    Delete(String),
    /// `POST /v1/topics/{t}/partitions`: adds partitions.
    AddPartitions(String),
    /// `GET /v1/topics/{t}/partitions/{p}`.
    PartitionInfo(String, i32),
    /// `GET /v1/topics/{t}/partitions/{p}/offsets?timestamp=T`.
    OffsetForTimestamp(String, i32),
    /// `GET /v1/topics/{t}/partitions/{p}/producers`.
    Producers(String, i32),
}

/// The produce and fetch routes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordsRoute {
    /// `POST /v1/topics/{t}/records`.
    ProduceTopic(String),
    /// `POST /v1/topics/{t}/partitions/{p}/records`.
    ProducePartition(String, i32),
    /// `GET /v1/topics/{t}/partitions/{p}/records`.
    Fetch(String, i32),
    /// `DELETE /v1/topics/{t}/partitions/{p}/records?before=N`.
    DeleteRecords(String, i32),
    /// `POST /v1/produce`: batches for many partitions.
    ProduceMany,
    /// `POST /v1/fetch`: many partitions, one wait.
    FetchMany,
}

/// The producer and transaction routes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxnRoute {
    /// `POST /v1/producers`.
    InitProducer,
    /// `POST /v1/transactions/{id}/partitions`.
    AddPartitions(String),
    /// `POST /v1/transactions/{id}/offsets`.
    AddOffsets(String),
    /// `POST /v1/transactions/{id}/commit` or `/abort`.
    End(String, TxnResult),
    /// `GET /v1/transactions/{id}`.
    Describe(String),
    /// `GET /v1/admin/transactions`: the open transactions.
    ListOpen,
    /// `POST /v1/admin/transactions/{id}/abort`.
    AdminAbort(String),
}

/// The group routes (ids percent-decoded).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupRoute {
    /// `GET /v1/groups`.
    List,
    /// `GET /v1/groups/{g}`.
    Describe(String),
    /// `POST /v1/groups/{g}/members`.
    Join(String),
    /// `POST /v1/groups/{g}/members/{m}/heartbeat`.
    Heartbeat(String, String),
    /// `DELETE /v1/groups/{g}/members/{m}`.
    Leave(String, String),
    /// `POST /v1/groups/{g}/offsets`.
    CommitOffsets(String),
    /// `GET /v1/groups/{g}/offsets`.
    FetchOffsets(String),
}

/// The benchmark and debug routes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DebugRoute {
    /// `POST /bench/bare-append/{n}`: the benchmark's baseline, a bare multi-row INSERT.
    BareAppend(u32),
    /// `POST /debug/sql-rollback`: proves on the real runtime that a failed
    /// `Sql::transaction` leaves nothing behind.
    SqlRollback,
}

/// A short description for logs.
impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

/// The captures of a matched row.
pub struct Captures<'a> {
    names: Vec<&'static str>,
    values: Vec<&'a str>,
}

impl Captures<'_> {
    fn raw(&self, name: &str) -> &str {
        let i = self
            .names
            .iter()
            .position(|n| *n == name)
            .unwrap_or_else(|| panic!("the row's pattern has no {{{name}}}"));
        self.values[i]
    }

    fn topic(&self) -> String {
        self.raw("topic").to_owned()
    }

    fn partition(&self) -> Result<i32, ApiError> {
        let segment = self.raw("partition");
        parse_canonical::<i32>(segment)
            .ok_or_else(|| invalid(format!("partition {} is not a number", quoted(segment))))
    }

    fn txn(&self) -> Result<String, ApiError> {
        path_segment(self.raw("txn"))
    }

    fn id(&self, name: &str) -> Result<String, ApiError> {
        decode_id(self.raw(name))
    }

    fn number(&self) -> Result<u32, ApiError> {
        let n = self.raw("n");
        parse_canonical::<u32>(n)
            .ok_or_else(|| invalid(format!("bench object {} is not a number", quoted(n))))
    }
}

type Build = fn(&Captures<'_>) -> Result<Route, ApiError>;

/// Every route's method and pattern (`/v1/topics/{topic}`), in the table's order: for the fuzz
/// harness, which builds paths from them.
pub fn patterns() -> impl Iterator<Item = (&'static str, &'static str)> {
    TABLE.iter().map(|(method, pattern, _)| (*method, *pattern))
}

/// Every route: method, pattern, builder.
const TABLE: &[(&str, &str, Build)] = &[
    ("GET", "/health", |_| Ok(Route::Health)),
    // Topics.
    ("POST", "/v1/topics", |_| {
        Ok(Route::Topics(TopicsRoute::Create))
    }),
    ("GET", "/v1/topics", |_| {
        Ok(Route::Topics(TopicsRoute::List))
    }),
    ("GET", "/v1/topics/{topic}", |c| {
        Ok(Route::Topics(TopicsRoute::Describe(c.topic())))
    }),
    ("DELETE", "/v1/topics/{topic}", |c| {
        Ok(Route::Topics(TopicsRoute::Delete(c.topic())))
    }),
    ("POST", "/v1/topics/{topic}/partitions", |c| {
        Ok(Route::Topics(TopicsRoute::AddPartitions(c.topic())))
    }),
    ("GET", "/v1/topics/{topic}/partitions/{partition}", |c| {
        Ok(Route::Topics(TopicsRoute::PartitionInfo(
            c.topic(),
            c.partition()?,
        )))
    }),
    (
        "GET",
        "/v1/topics/{topic}/partitions/{partition}/offsets",
        |c| {
            Ok(Route::Topics(TopicsRoute::OffsetForTimestamp(
                c.topic(),
                c.partition()?,
            )))
        },
    ),
    (
        "GET",
        "/v1/topics/{topic}/partitions/{partition}/producers",
        |c| {
            Ok(Route::Topics(TopicsRoute::Producers(
                c.topic(),
                c.partition()?,
            )))
        },
    ),
    // Records.
    ("POST", "/v1/topics/{topic}/records", |c| {
        Ok(Route::Records(RecordsRoute::ProduceTopic(c.topic())))
    }),
    (
        "POST",
        "/v1/topics/{topic}/partitions/{partition}/records",
        |c| {
            Ok(Route::Records(RecordsRoute::ProducePartition(
                c.topic(),
                c.partition()?,
            )))
        },
    ),
    (
        "GET",
        "/v1/topics/{topic}/partitions/{partition}/records",
        |c| {
            Ok(Route::Records(RecordsRoute::Fetch(
                c.topic(),
                c.partition()?,
            )))
        },
    ),
    (
        "DELETE",
        "/v1/topics/{topic}/partitions/{partition}/records",
        |c| {
            Ok(Route::Records(RecordsRoute::DeleteRecords(
                c.topic(),
                c.partition()?,
            )))
        },
    ),
    ("POST", "/v1/produce", |_| {
        Ok(Route::Records(RecordsRoute::ProduceMany))
    }),
    ("POST", "/v1/fetch", |_| {
        Ok(Route::Records(RecordsRoute::FetchMany))
    }),
    // Producers and transactions.
    ("POST", "/v1/producers", |_| {
        Ok(Route::Transactions(TxnRoute::InitProducer))
    }),
    ("GET", "/v1/transactions/{txn}", |c| {
        Ok(Route::Transactions(TxnRoute::Describe(c.txn()?)))
    }),
    ("POST", "/v1/transactions/{txn}/partitions", |c| {
        Ok(Route::Transactions(TxnRoute::AddPartitions(c.txn()?)))
    }),
    ("POST", "/v1/transactions/{txn}/offsets", |c| {
        Ok(Route::Transactions(TxnRoute::AddOffsets(c.txn()?)))
    }),
    ("POST", "/v1/transactions/{txn}/commit", |c| {
        Ok(Route::Transactions(TxnRoute::End(
            c.txn()?,
            TxnResult::Commit,
        )))
    }),
    ("POST", "/v1/transactions/{txn}/abort", |c| {
        Ok(Route::Transactions(TxnRoute::End(
            c.txn()?,
            TxnResult::Abort,
        )))
    }),
    ("GET", "/v1/admin/transactions", |_| {
        Ok(Route::Transactions(TxnRoute::ListOpen))
    }),
    ("POST", "/v1/admin/transactions/{txn}/abort", |c| {
        Ok(Route::Transactions(TxnRoute::AdminAbort(c.txn()?)))
    }),
    // Groups.
    ("GET", "/v1/groups", |_| Ok(Route::Groups(GroupRoute::List))),
    ("GET", "/v1/groups/{group}", |c| {
        Ok(Route::Groups(GroupRoute::Describe(c.id("group")?)))
    }),
    ("POST", "/v1/groups/{group}/members", |c| {
        Ok(Route::Groups(GroupRoute::Join(c.id("group")?)))
    }),
    ("DELETE", "/v1/groups/{group}/members/{member}", |c| {
        Ok(Route::Groups(GroupRoute::Leave(
            c.id("group")?,
            c.id("member")?,
        )))
    }),
    (
        "POST",
        "/v1/groups/{group}/members/{member}/heartbeat",
        |c| {
            Ok(Route::Groups(GroupRoute::Heartbeat(
                c.id("group")?,
                c.id("member")?,
            )))
        },
    ),
    ("POST", "/v1/groups/{group}/offsets", |c| {
        Ok(Route::Groups(GroupRoute::CommitOffsets(c.id("group")?)))
    }),
    ("GET", "/v1/groups/{group}/offsets", |c| {
        Ok(Route::Groups(GroupRoute::FetchOffsets(c.id("group")?)))
    }),
    // Benchmark and debug.
    ("POST", "/bench/bare-append/{n}", |c| {
        Ok(Route::Debug(DebugRoute::BareAppend(c.number()?)))
    }),
    ("POST", "/debug/sql-rollback", |_| {
        Ok(Route::Debug(DebugRoute::SqlRollback))
    }),
];

/// Why a path did not match a route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteError {
    /// No route has this path: HTTP 404.
    NotFound,
    /// The path exists but not with this method: HTTP 405.
    MethodNotAllowed,
    /// A path segment is malformed (a partition that is not a number): HTTP 400.
    Invalid(ApiError),
}

impl RouteError {
    /// The error answer and its HTTP status.
    pub fn to_api_error(&self, method: &str, path: &str) -> (u16, ApiError) {
        match self {
            RouteError::NotFound => (
                404,
                invalid(format!("no route for {} {}", quoted(method), quoted(path))),
            ),
            RouteError::MethodNotAllowed => (
                405,
                invalid(format!(
                    "method {} is not allowed on {}",
                    quoted(method),
                    quoted(path)
                )),
            ),
            RouteError::Invalid(e) => (e.code.http_status(), e.clone()),
        }
    }
}

/// The captures of `pattern` in `segments`, if the literal segments match.
fn matches<'a>(pattern: &'static str, segments: &[&'a str]) -> Option<Captures<'a>> {
    let parts: Vec<&'static str> = pattern.split('/').skip(1).collect();
    if parts.len() != segments.len() {
        return None;
    }
    let mut captures = Captures {
        names: Vec::new(),
        values: Vec::new(),
    };
    for (part, segment) in parts.iter().zip(segments) {
        match part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            Some(name) => {
                captures.names.push(name);
                captures.values.push(segment);
            }
            None if part == segment => {}
            None => return None,
        }
    }
    Some(captures)
}

/// Matches a method and path to a route.
pub fn route(method: &str, path: &str) -> Result<Route, RouteError> {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let mut other_method = None;
    for (row_method, pattern, build) in TABLE {
        let Some(captures) = matches(pattern, &segments) else {
            continue;
        };
        if *row_method == method {
            return build(&captures).map_err(RouteError::Invalid);
        }
        other_method.get_or_insert((captures, *build));
    }
    match other_method {
        // A malformed segment is the answer even with another method.
        Some((captures, build)) => match build(&captures) {
            Ok(_) => Err(RouteError::MethodNotAllowed),
            Err(e) => Err(RouteError::Invalid(e)),
        },
        None => Err(RouteError::NotFound),
    }
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidRequest, message)
}

/// Percent-decodes a path segment. A malformed escape or invalid UTF-8 is `INVALID_REQUEST`.
pub fn path_segment(segment: &str) -> Result<String, ApiError> {
    let bad = || invalid(format!("malformed path segment {}", quoted(segment)));
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or_else(bad)?;
            let hex = std::str::from_utf8(hex).map_err(|_| bad())?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}

/// Decodes a percent-encoded group or member id (the client encodes them with
/// `encode_path_segment`); an empty id is `INVALID_REQUEST` too.
pub fn decode_id(segment: &str) -> Result<String, ApiError> {
    let decoded = path_segment(segment)?;
    if decoded.is_empty() {
        return Err(invalid(format!(
            "malformed path segment {}: an id cannot be empty",
            quoted(segment)
        )));
    }
    Ok(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topics(r: TopicsRoute) -> Result<Route, RouteError> {
        Ok(Route::Topics(r))
    }

    fn records(r: RecordsRoute) -> Result<Route, RouteError> {
        Ok(Route::Records(r))
    }

    fn txn(r: TxnRoute) -> Result<Route, RouteError> {
        Ok(Route::Transactions(r))
    }

    fn group(r: GroupRoute) -> Result<Route, RouteError> {
        Ok(Route::Groups(r))
    }

    #[test]
    fn routes() {
        assert_eq!(route("GET", "/health"), Ok(Route::Health));
        assert_eq!(route("POST", "/v1/topics"), topics(TopicsRoute::Create));
        assert_eq!(route("GET", "/v1/topics/"), topics(TopicsRoute::List));
        assert_eq!(
            route("GET", "/v1/topics/a"),
            topics(TopicsRoute::Describe("a".into()))
        );
        assert_eq!(
            route("DELETE", "/v1/topics/a"),
            topics(TopicsRoute::Delete("a".into()))
        );
        assert_eq!(
            route("GET", "/v1/topics/a/partitions/3"),
            topics(TopicsRoute::PartitionInfo("a".into(), 3))
        );
        assert_eq!(
            route("GET", "/v1/topics/a/partitions/3/offsets"),
            topics(TopicsRoute::OffsetForTimestamp("a".into(), 3))
        );
        assert_eq!(
            route("POST", "/v1/topics/a/records"),
            records(RecordsRoute::ProduceTopic("a".into()))
        );
        assert_eq!(
            route("POST", "/v1/topics/a/partitions/0/records"),
            records(RecordsRoute::ProducePartition("a".into(), 0))
        );
        assert_eq!(
            route("GET", "/v1/topics/a/partitions/-1/records"),
            records(RecordsRoute::Fetch("a".into(), -1))
        );
        assert_eq!(
            route("POST", "/v1/topics/a/partitions"),
            topics(TopicsRoute::AddPartitions("a".into()))
        );
        assert_eq!(
            route("GET", "/v1/topics/a/partitions/2/producers"),
            topics(TopicsRoute::Producers("a".into(), 2))
        );
        assert_eq!(
            route("DELETE", "/v1/topics/a/partitions/1/records"),
            records(RecordsRoute::DeleteRecords("a".into(), 1))
        );
        assert_eq!(
            route("POST", "/v1/produce"),
            records(RecordsRoute::ProduceMany)
        );
        assert_eq!(
            route("POST", "/v1/fetch/"),
            records(RecordsRoute::FetchMany)
        );
        assert_eq!(route("GET", "/v1/fetch"), Err(RouteError::MethodNotAllowed));
        assert_eq!(
            route("POST", "/bench/bare-append/2"),
            Ok(Route::Debug(DebugRoute::BareAppend(2)))
        );
        assert_eq!(route("GET", "/nope"), Err(RouteError::NotFound));
        assert_eq!(
            route("PUT", "/v1/topics"),
            Err(RouteError::MethodNotAllowed)
        );
        assert!(matches!(
            route("GET", "/v1/topics/a/partitions/x"),
            Err(RouteError::Invalid(_))
        ));
        // A malformed segment is 400 with any method, as before the table.
        assert!(matches!(
            route("DELETE", "/v1/topics/a/partitions/x"),
            Err(RouteError::Invalid(_))
        ));
        assert_eq!(
            route("DELETE", "/v1/topics/a/partitions/1"),
            Err(RouteError::MethodNotAllowed)
        );
        // One spelling per number.
        for bad in ["00", "+0", "01", "-0", "1e1", "0x1", " 1"] {
            let path = format!("/v1/topics/a/partitions/{bad}/records");
            assert!(
                matches!(route("GET", &path), Err(RouteError::Invalid(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            route("POST", "/bench/bare-append/02"),
            Err(RouteError::Invalid(_))
        ));
    }

    #[test]
    fn transaction_routes() {
        assert_eq!(route("POST", "/v1/producers"), txn(TxnRoute::InitProducer));
        assert_eq!(
            route("POST", "/v1/transactions/a%2Fb%20c/commit"),
            txn(TxnRoute::End("a/b c".into(), TxnResult::Commit))
        );
        assert_eq!(
            route("POST", "/v1/transactions/t/abort"),
            txn(TxnRoute::End("t".into(), TxnResult::Abort))
        );
        assert_eq!(
            route("POST", "/v1/transactions/t/partitions"),
            txn(TxnRoute::AddPartitions("t".into()))
        );
        assert_eq!(
            route("POST", "/v1/transactions/t/offsets"),
            txn(TxnRoute::AddOffsets("t".into()))
        );
        assert_eq!(
            route("GET", "/v1/transactions/t"),
            txn(TxnRoute::Describe("t".into()))
        );
        assert_eq!(
            route("GET", "/v1/admin/transactions"),
            txn(TxnRoute::ListOpen)
        );
        assert_eq!(
            route("POST", "/v1/admin/transactions/t/abort"),
            txn(TxnRoute::AdminAbort("t".into()))
        );
        assert_eq!(
            route("GET", "/v1/transactions/t/commit"),
            Err(RouteError::MethodNotAllowed)
        );
        assert_eq!(
            route("POST", "/v1/transactions/t/nope"),
            Err(RouteError::NotFound)
        );
        assert!(matches!(
            route("GET", "/v1/transactions/%zz"),
            Err(RouteError::Invalid(_))
        ));
        assert!(matches!(
            route("GET", "/v1/transactions/%ff"),
            Err(RouteError::Invalid(_))
        ));
    }

    #[test]
    fn group_routes() {
        assert_eq!(route("GET", "/v1/groups"), group(GroupRoute::List));
        assert_eq!(
            route("POST", "/v1/groups"),
            Err(RouteError::MethodNotAllowed)
        );
        assert_eq!(
            route("GET", "/v1/groups/g%201"),
            group(GroupRoute::Describe("g 1".into()))
        );
        assert_eq!(
            route("POST", "/v1/groups/g/members"),
            group(GroupRoute::Join("g".into()))
        );
        assert_eq!(
            route("DELETE", "/v1/groups/g/members/m"),
            group(GroupRoute::Leave("g".into(), "m".into()))
        );
        assert_eq!(
            route("POST", "/v1/groups/g/members/m/heartbeat"),
            group(GroupRoute::Heartbeat("g".into(), "m".into()))
        );
        assert_eq!(
            route("POST", "/v1/groups/g/offsets"),
            group(GroupRoute::CommitOffsets("g".into()))
        );
        assert_eq!(
            route("GET", "/v1/groups/g/offsets"),
            group(GroupRoute::FetchOffsets("g".into()))
        );
        assert_eq!(
            route("PUT", "/v1/groups/g/offsets"),
            Err(RouteError::MethodNotAllowed)
        );
        assert_eq!(route("GET", "/v1/groups/g/nope"), Err(RouteError::NotFound));
        assert!(matches!(
            route("GET", "/v1/groups/%zz"),
            Err(RouteError::Invalid(_))
        ));
    }

    #[test]
    fn segments_decode_as_the_client_encodes_them() {
        assert_eq!(decode_id("orders-1.v2_x").unwrap(), "orders-1.v2_x");
        assert_eq!(decode_id("a%20b%2Fc%25").unwrap(), "a b/c%");
        assert_eq!(decode_id("%C3%A9").unwrap(), "é");
        for bad in ["%", "%2", "%zz", "%FF", ""] {
            assert_eq!(
                decode_id(bad).unwrap_err().code,
                ErrorCode::InvalidRequest,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn every_row_builds_from_its_own_pattern() {
        // Each pattern, with its captures filled with valid values, routes to its own row.
        for (method, pattern, _) in TABLE {
            let path: String = pattern
                .split('/')
                .map(|part| match part {
                    "{partition}" | "{n}" => "1",
                    p if p.starts_with('{') => "x",
                    p => p,
                })
                .collect::<Vec<_>>()
                .join("/");
            assert!(route(method, &path).is_ok(), "{method} {pattern}");
        }
    }
}
