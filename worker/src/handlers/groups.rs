//! `/v1/groups`: consumer groups over the group objects.

use kafdo_broker::groups::MAX_GROUPS_PER_PAGE;
use kafdo_broker::Runtime;
use kafdo_types::group::{
    HeartbeatRequest, JoinGroupRequest, OffsetCommitRequest, OffsetFetchQuery,
};
use kafdo_types::limits::{parse_canonical, quoted};
use kafdo_types::rpc::ListGroupsRequest;
use kafdo_types::ApiError;

use super::{invalid, Context};
use crate::http::{Answer, HttpRequest};
use crate::routes::GroupRoute;

/// Serves a group route.
pub async fn serve<R: Runtime>(
    cx: &Context<R>,
    route: GroupRoute,
    req: &HttpRequest,
) -> Result<Answer, ApiError> {
    let broker = &cx.broker;
    Ok(match route {
        GroupRoute::List => {
            let list = parse_list_query(req.query_pairs())?;
            Answer::ok(cx.format, &broker.list_groups(list).await?)
        }
        GroupRoute::Describe(g) => Answer::ok(cx.format, &broker.describe_group(&g).await?),
        GroupRoute::Join(g) => {
            let request: JoinGroupRequest = req.body()?;
            Answer::ok(cx.format, &broker.join_group(&g, request).await?)
        }
        GroupRoute::Heartbeat(g, m) => {
            let request: HeartbeatRequest = req.body()?;
            Answer::ok(cx.format, &broker.heartbeat(&g, &m, request).await?)
        }
        GroupRoute::Leave(g, m) => {
            broker.leave_group(&g, &m).await?;
            Answer::no_content()
        }
        GroupRoute::CommitOffsets(g) => {
            let request: OffsetCommitRequest = req.body()?;
            broker.commit_offsets(&g, request).await?;
            Answer::ok(cx.format, &serde_json::Map::new())
        }
        GroupRoute::FetchOffsets(g) => {
            let query = parse_offsets_query(req.query_pairs())?;
            Answer::ok(cx.format, &broker.fetch_offsets(&g, query).await?)
        }
    })
}

/// The query of `GET /v1/groups/{g}/offsets`: `require_stable`, `topic`, `partitions`.
/// An unknown parameter is 400, as for fetch, so a typo is not silently ignored.
pub fn parse_offsets_query<'a>(
    pairs: impl Iterator<Item = (&'a str, &'a str)>,
) -> Result<OffsetFetchQuery, ApiError> {
    let mut query = OffsetFetchQuery::default();
    for (key, value) in pairs {
        match key {
            "require_stable" => {
                query.require_stable = match value {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => {
                        return Err(invalid(format!(
                            "require_stable={} is not a boolean",
                            quoted(value)
                        )))
                    }
                }
            }
            "topic" => query.topic = Some(value.to_owned()),
            "partitions" => query.partitions = Some(value.to_owned()),
            _ => return Err(invalid(format!("unknown query parameter {}", quoted(key)))),
        }
    }
    query.filter().map_err(invalid)?;
    Ok(query)
}

/// The query of `GET /v1/groups`: `after` (a cursor) and `limit` (1 to 1,000).
pub fn parse_list_query<'a>(
    pairs: impl Iterator<Item = (&'a str, &'a str)>,
) -> Result<ListGroupsRequest, ApiError> {
    let mut call = ListGroupsRequest {
        after: None,
        limit: MAX_GROUPS_PER_PAGE,
    };
    for (key, value) in pairs {
        match key {
            "after" => call.after = Some(value.to_owned()),
            "limit" => {
                call.limit = parse_canonical::<u32>(value)
                    .filter(|n| (1..=MAX_GROUPS_PER_PAGE).contains(n))
                    .ok_or_else(|| {
                        invalid(format!(
                            "limit={} is not a number from 1 to {MAX_GROUPS_PER_PAGE}",
                            quoted(value)
                        ))
                    })?
            }
            _ => return Err(invalid(format!("unknown query parameter {}", quoted(key)))),
        }
    }
    Ok(call)
}

#[cfg(test)]
mod tests {
    use super::*;

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
            ("limit", "02"),
            ("x", "1"),
        ] {
            assert!(parse_list_query([bad].into_iter()).is_err(), "{bad:?}");
        }
    }
}
