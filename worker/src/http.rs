//! The HTTP layer of API v1 that does not need the runtime: routes, body formats, query
//! parameters, errors and the produce plan. It builds and tests natively; the wasm-only
//! router (`router.rs`) wires it to Durable Object stubs.
//!
//! # Formats
//!
//! Requests are JSON unless `Content-Type: application/cbor`; answers are JSON unless the
//! request has `Accept: application/cbor`. One serde type serves both encodings: binary
//! fields are base64 strings in JSON and byte strings in CBOR (`kafdo_types::bytes`).
//!
//! # Produce routing
//!
//! A topic produce routes each record by its `partition` field, else by Kafka's murmur2 on the
//! key, else to one "sticky" partition picked at random for the whole request (Kafka's sticky
//! partitioner sends null-key records to one partition per batch, for the same reason: fewer,
//! larger appends). [`plan_produce`] validates every record first, so a request with one bad
//! record writes nothing, then groups the records into one batch per partition and remembers
//! where each record went, so the answer lists offsets in request order.

use std::fmt;

use kafdo_types::api::Isolation;
use kafdo_types::limits::{
    DEFAULT_FETCH_MAX_BYTES, DEFAULT_FETCH_MAX_RECORDS, MAX_FETCH_MAX_BYTES, MAX_FETCH_MAX_RECORDS,
    MAX_FETCH_WAIT_MS, MAX_RECORDS_PER_REQUEST, MAX_RECORD_BYTES,
};
use kafdo_types::partitioner;
pub use kafdo_types::partitioner::ProducePlan;
use kafdo_types::{ApiError, ErrorBody, ErrorCode, ProduceRecord};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The media type of CBOR bodies.
pub const CBOR: &str = "application/cbor";
/// The media type of JSON bodies.
pub const JSON: &str = "application/json";

/// A body encoding.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Format {
    /// JSON, the default.
    Json,
    /// CBOR.
    Cbor,
}

impl Format {
    /// The format of a request body, from its `Content-Type` header.
    pub fn from_content_type(content_type: Option<&str>) -> Format {
        Self::from_media_type(content_type)
    }

    /// The format of the answer, from the request's `Accept` header.
    pub fn from_accept(accept: Option<&str>) -> Format {
        Self::from_media_type(accept)
    }

    fn from_media_type(header: Option<&str>) -> Format {
        // Only an explicit CBOR media type selects CBOR; anything else (absent, */*, JSON)
        // gets the default.
        match header {
            Some(h)
                if h.split(',').any(|part| {
                    part.split(';')
                        .next()
                        .is_some_and(|t| t.trim().eq_ignore_ascii_case(CBOR))
                }) =>
            {
                Format::Cbor
            }
            _ => Format::Json,
        }
    }

    /// The `Content-Type` of a body in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => JSON,
            Format::Cbor => CBOR,
        }
    }
}

/// Decodes a request body. Malformed input is `INVALID_REQUEST` with the decoder's message.
pub fn decode<T: DeserializeOwned>(format: Format, body: &[u8]) -> Result<T, ApiError> {
    match format {
        Format::Json => serde_json::from_slice(body)
            .map_err(|e| ApiError::new(ErrorCode::InvalidRequest, format!("invalid JSON: {e}"))),
        Format::Cbor => ciborium::from_reader(body)
            .map_err(|e| ApiError::new(ErrorCode::InvalidRequest, format!("invalid CBOR: {e}"))),
    }
}

/// Encodes an answer body.
pub fn encode<T: Serialize>(format: Format, value: &T) -> Vec<u8> {
    match format {
        Format::Json => serde_json::to_vec(value).expect("API types serialize to JSON"),
        Format::Cbor => to_cbor(value),
    }
}

/// Encodes a value as CBOR (internal calls and CBOR answers).
pub fn to_cbor<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(value, &mut out).expect("writing CBOR to a Vec cannot fail");
    out
}

/// Decodes CBOR from an internal call; a failure is a bug in one of the two ends.
pub fn from_cbor<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    ciborium::from_reader(body).map_err(|e| {
        ApiError::new(
            ErrorCode::UnknownServerError,
            format!("undecodable internal message: {e}"),
        )
    })
}

/// The body of an error answer.
pub fn error_body(format: Format, error: &ApiError) -> Vec<u8> {
    encode(
        format,
        &ErrorBody {
            error: error.clone(),
        },
    )
}

/// Shorthand for an `INVALID_REQUEST` error.
pub fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidRequest, message)
}

/// Shorthand for an `UNKNOWN_TOPIC_OR_PARTITION` error.
pub fn unknown_partition(topic: &str, partition: i32) -> ApiError {
    ApiError::new(
        ErrorCode::UnknownTopicOrPartition,
        format!("topic {topic:?} has no partition {partition}"),
    )
}

/// One route of API v1 (plus the benchmark and debug routes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// `GET /health`.
    Health,
    /// `POST /v1/topics`.
    CreateTopic,
    /// `GET /v1/topics`.
    ListTopics,
    /// `GET /v1/topics/{t}`.
    DescribeTopic(String),
    /// `DELETE /v1/topics/{t}`.
    DeleteTopic(String),
    /// `GET /v1/topics/{t}/partitions/{p}`.
    PartitionInfo(String, i32),
    /// `POST /v1/topics/{t}/records`.
    ProduceTopic(String),
    /// `POST /v1/topics/{t}/partitions/{p}/records`.
    ProducePartition(String, i32),
    /// `GET /v1/topics/{t}/partitions/{p}/records`.
    Fetch(String, i32),
    /// `POST /v1/producers`.
    InitProducer,
    /// `POST /v1/transactions/{id}/partitions` (the id percent-decoded).
    AddPartitionsToTxn(String),
    /// `POST /v1/transactions/{id}/offsets`.
    AddOffsetsToTxn(String),
    /// `POST /v1/transactions/{id}/commit` (true) or `/abort` (false).
    EndTxn(String, bool),
    /// `GET /v1/transactions/{id}`.
    DescribeTxn(String),
    /// `GET /v1/admin/transactions`: the open transactions.
    ListOpenTxns,
    /// `POST /v1/admin/transactions/{id}/abort`.
    AdminAbortTxn(String),
    /// `POST /bench/bare-append/{n}`: the benchmark's baseline, a bare multi-row INSERT.
    BenchBareAppend(u32),
    /// `POST /debug/sql-rollback`: proves on the real runtime that a failed
    /// `Sql::transaction` leaves nothing behind.
    DebugSqlRollback,
    /// A route under `/v1/groups` (see `crate::group_http`).
    Group(crate::group_http::GroupRoute),
}

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
            RouteError::NotFound => (404, invalid(format!("no route for {method} {path}"))),
            RouteError::MethodNotAllowed => (
                405,
                invalid(format!("method {method} is not allowed on {path}")),
            ),
            RouteError::Invalid(e) => (e.code.http_status(), e.clone()),
        }
    }
}

fn partition_number(segment: &str) -> Result<i32, RouteError> {
    segment
        .parse::<i32>()
        .map_err(|_| RouteError::Invalid(invalid(format!("partition {segment:?} is not a number"))))
}

/// Percent-decodes a path segment (a transactional id may hold any character but controls).
pub fn path_segment(segment: &str) -> Result<String, RouteError> {
    let bad = || RouteError::Invalid(invalid(format!("malformed path segment {segment:?}")));
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

/// Matches a method and path to a route.
pub fn route(method: &str, path: &str) -> Result<Route, RouteError> {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let (route, allowed) = match segments.as_slice() {
        ["health"] => (Route::Health, method == "GET"),
        ["v1", "topics"] => match method {
            "POST" => (Route::CreateTopic, true),
            _ => (Route::ListTopics, method == "GET"),
        },
        ["v1", "topics", t] => match method {
            "DELETE" => (Route::DeleteTopic(t.to_string()), true),
            _ => (Route::DescribeTopic(t.to_string()), method == "GET"),
        },
        ["v1", "topics", t, "records"] => (Route::ProduceTopic(t.to_string()), method == "POST"),
        ["v1", "topics", t, "partitions", p] => (
            Route::PartitionInfo(t.to_string(), partition_number(p)?),
            method == "GET",
        ),
        ["v1", "topics", t, "partitions", p, "records"] => {
            let p = partition_number(p)?;
            match method {
                "POST" => (Route::ProducePartition(t.to_string(), p), true),
                _ => (Route::Fetch(t.to_string(), p), method == "GET"),
            }
        }
        ["v1", "producers"] => (Route::InitProducer, method == "POST"),
        ["v1", "transactions", id] => (Route::DescribeTxn(path_segment(id)?), method == "GET"),
        ["v1", "transactions", id, step] => {
            let id = path_segment(id)?;
            let route = match *step {
                "partitions" => Route::AddPartitionsToTxn(id),
                "offsets" => Route::AddOffsetsToTxn(id),
                "commit" => Route::EndTxn(id, true),
                "abort" => Route::EndTxn(id, false),
                _ => return Err(RouteError::NotFound),
            };
            (route, method == "POST")
        }
        ["v1", "admin", "transactions"] => (Route::ListOpenTxns, method == "GET"),
        ["v1", "admin", "transactions", id, "abort"] => {
            (Route::AdminAbortTxn(path_segment(id)?), method == "POST")
        }
        ["bench", "bare-append", n] => {
            let n = n.parse::<u32>().map_err(|_| {
                RouteError::Invalid(invalid(format!("bench object {n:?} is not a number")))
            })?;
            (Route::BenchBareAppend(n), method == "POST")
        }
        ["debug", "sql-rollback"] => (Route::DebugSqlRollback, method == "POST"),
        ["v1", "groups", rest @ ..] => match crate::group_http::group_route(method, rest) {
            Ok(Some((g, allowed))) => (Route::Group(g), allowed),
            Ok(None) => return Err(RouteError::NotFound),
            Err(e) => return Err(RouteError::Invalid(e)),
        },
        _ => return Err(RouteError::NotFound),
    };
    if allowed {
        Ok(route)
    } else {
        Err(RouteError::MethodNotAllowed)
    }
}

/// The query of `GET /v1/topics/{t}/partitions/{p}/records`, checked and defaulted.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct FetchQuery {
    /// The first offset wanted (default 0).
    pub offset: i64,
    /// At most this many records (default 1000, capped at 10,000).
    pub max_records: u32,
    /// About this many bytes (default 1 MiB, capped at 16 MiB).
    pub max_bytes: u32,
    /// read_committed (default) or read_uncommitted.
    pub isolation: Isolation,
    /// How long to wait when there are no records yet (default 0, capped at 30,000).
    pub wait_ms: u32,
}

/// Parses a fetch query. Unknown parameters are refused, so a typo is an error rather than a
/// silently ignored option; a negative offset is `OFFSET_OUT_OF_RANGE`.
pub fn parse_fetch_query<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<FetchQuery, ApiError> {
    let mut q = FetchQuery {
        offset: 0,
        max_records: DEFAULT_FETCH_MAX_RECORDS,
        max_bytes: DEFAULT_FETCH_MAX_BYTES,
        isolation: Isolation::ReadCommitted,
        wait_ms: 0,
    };
    for (name, value) in pairs {
        match name {
            "offset" => {
                q.offset = value
                    .parse()
                    .map_err(|_| invalid(format!("offset {value:?} is not an integer")))?;
                if q.offset < 0 {
                    return Err(ApiError::new(
                        ErrorCode::OffsetOutOfRange,
                        format!("offset {} is negative", q.offset),
                    ));
                }
            }
            "max_records" => {
                q.max_records = positive(name, value)?.min(MAX_FETCH_MAX_RECORDS);
            }
            "max_bytes" => q.max_bytes = positive(name, value)?.min(MAX_FETCH_MAX_BYTES),
            "wait_ms" => {
                q.wait_ms = value
                    .parse::<u32>()
                    .map_err(|_| invalid(format!("wait_ms {value:?} is not a whole number")))?
                    .min(MAX_FETCH_WAIT_MS);
            }
            "isolation" => {
                q.isolation = match value {
                    "read_committed" => Isolation::ReadCommitted,
                    "read_uncommitted" => Isolation::ReadUncommitted,
                    _ => {
                        return Err(invalid(format!(
                            "isolation {value:?} is neither read_committed nor read_uncommitted"
                        )))
                    }
                }
            }
            _ => return Err(invalid(format!("unknown query parameter {name:?}"))),
        }
    }
    Ok(q)
}

fn positive(name: &str, value: &str) -> Result<u32, ApiError> {
    match value.parse::<u32>() {
        Ok(v) if v > 0 => Ok(v),
        _ => Err(invalid(format!(
            "{name} {value:?} is not a positive integer"
        ))),
    }
}

/// Checks the records of one produce request: at least one, at most
/// [`MAX_RECORDS_PER_REQUEST`], each at most [`MAX_RECORD_BYTES`].
pub fn check_records(records: &[ProduceRecord]) -> Result<(), ApiError> {
    if records.is_empty() {
        return Err(invalid("a produce request needs at least one record"));
    }
    if records.len() > MAX_RECORDS_PER_REQUEST {
        return Err(invalid(format!(
            "{} records in one request, more than the limit of {MAX_RECORDS_PER_REQUEST}",
            records.len()
        )));
    }
    for (index, record) in records.iter().enumerate() {
        let size_bytes = record.size_bytes();
        if size_bytes > MAX_RECORD_BYTES {
            return Err(ApiError::new(
                ErrorCode::MessageTooLarge,
                format!(
                    "record {index} is {size_bytes} bytes, more than the limit of \
                     {MAX_RECORD_BYTES}"
                ),
            ));
        }
    }
    Ok(())
}

/// Validates a topic produce and splits it by partition
/// ([`kafdo_types::partitioner::plan_produce`]).
///
/// `sticky` is the partition for records with neither a partition nor a key; the caller picks
/// it at random, once per request.
pub fn plan_produce(
    topic: &str,
    records: Vec<ProduceRecord>,
    partitions: i32,
    sticky: i32,
) -> Result<ProducePlan, ApiError> {
    check_records(&records)?;
    partitioner::plan_produce(records, partitions, sticky).map_err(|p| unknown_partition(topic, p))
}

/// A short description for logs.
impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafdo_types::api::{CreateTopicRequest, ProduceRequest};
    use kafdo_types::partitioner::partition_for_key;

    #[test]
    fn routes() {
        assert_eq!(route("GET", "/health"), Ok(Route::Health));
        assert_eq!(route("POST", "/v1/topics"), Ok(Route::CreateTopic));
        assert_eq!(route("GET", "/v1/topics/"), Ok(Route::ListTopics));
        assert_eq!(
            route("GET", "/v1/topics/a"),
            Ok(Route::DescribeTopic("a".into()))
        );
        assert_eq!(
            route("DELETE", "/v1/topics/a"),
            Ok(Route::DeleteTopic("a".into()))
        );
        assert_eq!(
            route("GET", "/v1/topics/a/partitions/3"),
            Ok(Route::PartitionInfo("a".into(), 3))
        );
        assert_eq!(
            route("POST", "/v1/topics/a/records"),
            Ok(Route::ProduceTopic("a".into()))
        );
        assert_eq!(
            route("POST", "/v1/topics/a/partitions/0/records"),
            Ok(Route::ProducePartition("a".into(), 0))
        );
        assert_eq!(
            route("GET", "/v1/topics/a/partitions/-1/records"),
            Ok(Route::Fetch("a".into(), -1))
        );
        assert_eq!(
            route("POST", "/bench/bare-append/2"),
            Ok(Route::BenchBareAppend(2))
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
    }

    #[test]
    fn formats() {
        assert_eq!(Format::from_content_type(None), Format::Json);
        assert_eq!(
            Format::from_content_type(Some("application/json")),
            Format::Json
        );
        assert_eq!(
            Format::from_content_type(Some("application/cbor")),
            Format::Cbor
        );
        assert_eq!(
            Format::from_accept(Some("text/html, application/CBOR;q=0.9")),
            Format::Cbor
        );
        assert_eq!(Format::from_accept(Some("*/*")), Format::Json);
    }

    #[test]
    fn bodies_decode_in_both_formats() {
        let req = ProduceRequest {
            records: vec![ProduceRecord::keyed(b"k".to_vec(), vec![0, 255])],
        };
        let json = encode(Format::Json, &req);
        assert_eq!(
            String::from_utf8(json.clone()).unwrap(),
            r#"{"records":[{"key":"aw==","value":"AP8="}]}"#
        );
        assert_eq!(decode::<ProduceRequest>(Format::Json, &json).unwrap(), req);
        let cbor = encode(Format::Cbor, &req);
        assert_eq!(decode::<ProduceRequest>(Format::Cbor, &cbor).unwrap(), req);
        let e = decode::<CreateTopicRequest>(Format::Json, b"{\"name\":").unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRequest);
        let e = decode::<CreateTopicRequest>(Format::Cbor, b"\xff\x00").unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRequest);
    }

    #[test]
    fn fetch_query_defaults_and_limits() {
        let q = parse_fetch_query([]).unwrap();
        assert_eq!(q.offset, 0);
        assert_eq!(q.max_records, DEFAULT_FETCH_MAX_RECORDS);
        assert_eq!(q.max_bytes, DEFAULT_FETCH_MAX_BYTES);
        assert_eq!(q.isolation, Isolation::ReadCommitted);
        assert_eq!(q.wait_ms, 0);
        let q = parse_fetch_query([
            ("offset", "7"),
            ("max_records", "99999"),
            ("wait_ms", "100000"),
            ("isolation", "read_uncommitted"),
        ])
        .unwrap();
        assert_eq!(
            (q.offset, q.max_records, q.wait_ms, q.isolation),
            (
                7,
                MAX_FETCH_MAX_RECORDS,
                MAX_FETCH_WAIT_MS,
                Isolation::ReadUncommitted
            )
        );
        let code =
            |pairs: &[(&str, &str)]| parse_fetch_query(pairs.iter().copied()).unwrap_err().code;
        assert_eq!(code(&[("offset", "-1")]), ErrorCode::OffsetOutOfRange);
        assert_eq!(code(&[("offset", "x")]), ErrorCode::InvalidRequest);
        assert_eq!(code(&[("max_records", "0")]), ErrorCode::InvalidRequest);
        assert_eq!(code(&[("isolation", "dirty")]), ErrorCode::InvalidRequest);
        assert_eq!(code(&[("ofset", "1")]), ErrorCode::InvalidRequest);
    }

    #[test]
    fn produce_plan_routes_and_keeps_request_order() {
        let records = vec![
            ProduceRecord::keyed(b"a".to_vec(), b"1".to_vec()),
            ProduceRecord::value(b"2".to_vec()),
            ProduceRecord {
                partition: Some(3),
                ..ProduceRecord::value(b"3".to_vec())
            },
            ProduceRecord::keyed(b"a".to_vec(), b"4".to_vec()),
            ProduceRecord::value(b"5".to_vec()),
        ];
        let plan = plan_produce("t", records, 4, 1).unwrap();
        let pa = partition_for_key(b"a", 4);
        let p_of = |slot: usize| plan.batches[plan.slots[slot].0].0;
        assert_eq!(p_of(0), pa);
        assert_eq!(p_of(1), 1);
        assert_eq!(p_of(2), 3);
        assert_eq!(p_of(3), pa);
        assert_eq!(p_of(4), 1);
        // Every record sits where its slot says, and each partition has one batch.
        for (i, v) in [b"1", b"2", b"3", b"4", b"5"].iter().enumerate() {
            let (b, j) = plan.slots[i];
            assert_eq!(plan.batches[b].1[j].value.as_deref(), Some(&v[..]));
        }
        let mut ps: Vec<i32> = plan.batches.iter().map(|b| b.0).collect();
        ps.sort();
        ps.dedup();
        assert_eq!(ps.len(), plan.batches.len());
    }

    #[test]
    fn produce_plan_refuses_bad_requests_whole() {
        let big = ProduceRecord::value(vec![0u8; MAX_RECORD_BYTES + 1]);
        let ok = ProduceRecord::value(b"x".to_vec());
        let e = plan_produce("t", vec![ok.clone(), big], 2, 0).unwrap_err();
        assert_eq!(e.code, ErrorCode::MessageTooLarge);
        let exact = ProduceRecord::value(vec![0u8; MAX_RECORD_BYTES]);
        assert!(plan_produce("t", vec![exact], 2, 0).is_ok());
        let e = plan_produce("t", vec![], 2, 0).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRequest);
        let out_of_range = ProduceRecord {
            partition: Some(2),
            ..ok.clone()
        };
        let e = plan_produce("t", vec![ok, out_of_range], 2, 0).unwrap_err();
        assert_eq!(e.code, ErrorCode::UnknownTopicOrPartition);
    }

    #[test]
    fn transaction_routes() {
        assert_eq!(route("POST", "/v1/producers"), Ok(Route::InitProducer));
        assert_eq!(
            route("POST", "/v1/transactions/a%2Fb%20c/commit"),
            Ok(Route::EndTxn("a/b c".into(), true))
        );
        assert_eq!(
            route("POST", "/v1/transactions/t/abort"),
            Ok(Route::EndTxn("t".into(), false))
        );
        assert_eq!(
            route("POST", "/v1/transactions/t/partitions"),
            Ok(Route::AddPartitionsToTxn("t".into()))
        );
        assert_eq!(
            route("POST", "/v1/transactions/t/offsets"),
            Ok(Route::AddOffsetsToTxn("t".into()))
        );
        assert_eq!(
            route("GET", "/v1/transactions/t"),
            Ok(Route::DescribeTxn("t".into()))
        );
        assert_eq!(
            route("GET", "/v1/admin/transactions"),
            Ok(Route::ListOpenTxns)
        );
        assert_eq!(
            route("POST", "/v1/admin/transactions/t/abort"),
            Ok(Route::AdminAbortTxn("t".into()))
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
}
