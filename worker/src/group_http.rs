//! The part of the group routes that needs no runtime: the Worker's calls to a `Group` object,
//! the metadata registry calls, path-segment decoding and the list query. Unit-tested natively;
//! the handlers are in `group_routes.rs` (wasm).
//!
//! # Calls to a `Group` object (one per group id, named by the group id)
//!
//! | path | body | answer |
//! | --- | --- | --- |
//! | `/group/join` | `GroupJoinCall` | `JoinGroupResponse` |
//! | `/group/heartbeat` | `GroupHeartbeatCall` | `HeartbeatResponse` |
//! | `/group/leave` | [`MemberCall`] | `()` |
//! | `/group/commit` | `OffsetCommitRequest` | `()` |
//! | `/group/offsets` | `OffsetFetchQuery` | `OffsetFetchResponse` |
//! | `/group/describe` | `()` | `GroupDescription`, or `GROUP_ID_NOT_FOUND` |
//! | `/group/txn-offsets` | `TxnOffsetCommitRequest` | `()` (from the transaction coordinator) |
//! | `/group/txn-marker` | `GroupTxnMarkerRequest` | `MarkerAck` (from the transaction coordinator) |
//!
//! # Calls to the `Metadata` object
//!
//! | path | body | answer |
//! | --- | --- | --- |
//! | `/metadata/register-group` | [`GroupIdCall`] | `()` |
//! | `/metadata/list-groups` | [`ListGroupsCall`] | `Vec<String>` |

use kafdo_types::{ApiError, ErrorCode};
use serde::{Deserialize, Serialize};

/// The binding of the `Group` class in `wrangler.toml`.
pub const GROUP_BINDING: &str = "GROUP";

/// The default and largest page of `GET /v1/groups`.
pub const MAX_GROUPS_PER_PAGE: u32 = 1_000;

/// A route under `/v1/groups` (ids percent-decoded).
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

/// Matches the segments after `/v1/groups`: `Ok(None)` when no group route has this path,
/// else the route and whether the method is allowed on it.
pub fn group_route(method: &str, rest: &[&str]) -> Result<Option<(GroupRoute, bool)>, ApiError> {
    Ok(Some(match rest {
        [] => (GroupRoute::List, method == "GET"),
        [g] => (GroupRoute::Describe(decode_segment(g)?), method == "GET"),
        [g, "members"] => (GroupRoute::Join(decode_segment(g)?), method == "POST"),
        [g, "members", m] => (
            GroupRoute::Leave(decode_segment(g)?, decode_segment(m)?),
            method == "DELETE",
        ),
        [g, "members", m, "heartbeat"] => (
            GroupRoute::Heartbeat(decode_segment(g)?, decode_segment(m)?),
            method == "POST",
        ),
        [g, "offsets"] => {
            let g = decode_segment(g)?;
            match method {
                "POST" => (GroupRoute::CommitOffsets(g), true),
                _ => (GroupRoute::FetchOffsets(g), method == "GET"),
            }
        }
        _ => return Ok(None),
    }))
}

/// `/group/leave`: the member id from the path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberCall {
    /// The member that leaves.
    pub member_id: String,
}

/// `/metadata/register-group`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupIdCall {
    /// The group id.
    pub group_id: String,
}

/// `/metadata/list-groups`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListGroupsCall {
    /// Only ids after this one (the previous page's last).
    pub after: Option<String>,
    /// At most this many.
    pub limit: u32,
}

/// Decodes a percent-encoded path segment (the client encodes group and member ids with
/// `encode_path_segment`). A malformed escape or invalid UTF-8 is `INVALID_REQUEST`; an empty
/// id too.
pub fn decode_segment(segment: &str) -> Result<String, ApiError> {
    let decoded = crate::http::path_segment(segment).map_err(|e| match e {
        crate::http::RouteError::Invalid(e) => e,
        other => unreachable!("path_segment only fails as invalid input, not {other:?}"),
    })?;
    if decoded.is_empty() {
        return Err(ApiError::new(
            ErrorCode::InvalidRequest,
            format!("malformed path segment {segment:?}: an id cannot be empty"),
        ));
    }
    Ok(decoded)
}

/// The query of `GET /v1/groups/{g}/offsets`: `require_stable`, `topic`, `partitions`.
/// An unknown parameter is 400, as for fetch, so a typo is not silently ignored.
pub fn parse_offsets_query<'a>(
    pairs: impl Iterator<Item = (&'a str, &'a str)>,
) -> Result<kafdo_types::group::OffsetFetchQuery, ApiError> {
    let mut query = kafdo_types::group::OffsetFetchQuery::default();
    for (key, value) in pairs {
        match key {
            "require_stable" => {
                query.require_stable = match value {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => {
                        return Err(invalid(format!(
                            "require_stable={value:?} is not a boolean"
                        )))
                    }
                }
            }
            "topic" => query.topic = Some(value.to_owned()),
            "partitions" => query.partitions = Some(value.to_owned()),
            _ => return Err(invalid(format!("unknown query parameter {key:?}"))),
        }
    }
    query.filter().map_err(invalid)?;
    Ok(query)
}

/// The query of `GET /v1/groups`: `after` (a cursor) and `limit` (1 to 1,000).
pub fn parse_list_query<'a>(
    pairs: impl Iterator<Item = (&'a str, &'a str)>,
) -> Result<ListGroupsCall, ApiError> {
    let mut call = ListGroupsCall {
        after: None,
        limit: MAX_GROUPS_PER_PAGE,
    };
    for (key, value) in pairs {
        match key {
            "after" => call.after = Some(value.to_owned()),
            "limit" => {
                call.limit = value
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=MAX_GROUPS_PER_PAGE).contains(n))
                    .ok_or_else(|| {
                        invalid(format!(
                            "limit={value:?} is not a number from 1 to {MAX_GROUPS_PER_PAGE}"
                        ))
                    })?
            }
            _ => return Err(invalid(format!("unknown query parameter {key:?}"))),
        }
    }
    Ok(call)
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidRequest, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let r = |method: &str, rest: &[&str]| group_route(method, rest).unwrap();
        assert_eq!(r("GET", &[]), Some((GroupRoute::List, true)));
        assert_eq!(r("POST", &[]), Some((GroupRoute::List, false)));
        assert_eq!(
            r("GET", &["g%201"]),
            Some((GroupRoute::Describe("g 1".into()), true))
        );
        assert_eq!(
            r("POST", &["g", "members"]),
            Some((GroupRoute::Join("g".into()), true))
        );
        assert_eq!(
            r("DELETE", &["g", "members", "m"]),
            Some((GroupRoute::Leave("g".into(), "m".into()), true))
        );
        assert_eq!(
            r("POST", &["g", "members", "m", "heartbeat"]),
            Some((GroupRoute::Heartbeat("g".into(), "m".into()), true))
        );
        assert_eq!(
            r("POST", &["g", "offsets"]),
            Some((GroupRoute::CommitOffsets("g".into()), true))
        );
        assert_eq!(
            r("GET", &["g", "offsets"]),
            Some((GroupRoute::FetchOffsets("g".into()), true))
        );
        assert_eq!(
            r("PUT", &["g", "offsets"]),
            Some((GroupRoute::FetchOffsets("g".into()), false))
        );
        assert_eq!(r("GET", &["g", "nope"]), None);
        assert!(group_route("GET", &["%zz"]).is_err());
    }

    #[test]
    fn segments_decode_as_the_client_encodes_them() {
        assert_eq!(decode_segment("orders-1.v2_x").unwrap(), "orders-1.v2_x");
        assert_eq!(decode_segment("a%20b%2Fc%25").unwrap(), "a b/c%");
        assert_eq!(decode_segment("%C3%A9").unwrap(), "é");
        for bad in ["%", "%2", "%zz", "%FF", ""] {
            assert_eq!(
                decode_segment(bad).unwrap_err().code,
                ErrorCode::InvalidRequest,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn offsets_query() {
        let q =
            parse_offsets_query([("require_stable", "true"), ("topic", "t")].into_iter()).unwrap();
        assert!(q.require_stable);
        assert_eq!(q.topic.as_deref(), Some("t"));
        let q = parse_offsets_query(std::iter::empty()).unwrap();
        assert!(!q.require_stable);
        for bad in [
            vec![("require_stable", "yes")],
            vec![("partitions", "1")],
            vec![("topic", "t"), ("partitions", "x")],
            vec![("requre_stable", "true")],
        ] {
            assert!(
                parse_offsets_query(bad.clone().into_iter()).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn list_query() {
        let call = parse_list_query(std::iter::empty()).unwrap();
        assert_eq!((call.after, call.limit), (None, MAX_GROUPS_PER_PAGE));
        let call = parse_list_query([("after", "g"), ("limit", "2")].into_iter()).unwrap();
        assert_eq!((call.after.as_deref(), call.limit), (Some("g"), 2));
        for bad in [
            ("limit", "0"),
            ("limit", "1001"),
            ("limit", "x"),
            ("x", "1"),
        ] {
            assert!(parse_list_query([bad].into_iter()).is_err(), "{bad:?}");
        }
    }
}
