//! The `/v1/groups` routes: consumer groups over the `Group` objects (one per group id).
//!
//! Each route decodes the request, makes one call to the group's object (`crate::group_http`
//! lists them) and encodes its answer. The router adds only what the group cannot know:
//!
//! - **Partition counts.** A join carries the partition count of every topic it subscribes
//!   to, looked up here with the router's cached topic lookup (2 s) and passed in; a topic
//!   that does not exist is left out, and the group answers `UNKNOWN_TOPIC_OR_PARTITION`.
//!   Heartbeats carry no counts (a topic's partition count never changes; a topic deleted and
//!   created again is noticed at the next join).
//! - **The registry** behind `GET /v1/groups`. Before a group's first join (or an
//!   administrator's commit, `member_id` empty) the router registers the group id with the
//!   metadata object; each isolate remembers the ids it registered, so this is one extra call
//!   per group and isolate, never per heartbeat or commit. Registering before the join means
//!   a group that has members is always listed. The registry grows per group only.

use std::cell::RefCell;
use std::collections::HashSet;

use futures_util::future::join_all;
use kafdo_types::group::{
    GroupDescription, GroupHeartbeatCall, GroupJoinCall, HeartbeatRequest, HeartbeatResponse,
    JoinGroupRequest, JoinGroupResponse, OffsetCommitRequest, OffsetFetchResponse,
    TopicPartitionCount, MAX_TOPICS_PER_MEMBER,
};
use kafdo_types::group_list::{GroupList, GroupListing};
use kafdo_types::{ApiError, ErrorCode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use worker::{Env, Request};

use crate::group_http::{
    parse_list_query, parse_offsets_query, GroupIdCall, GroupRoute, MemberCall, GROUP_BINDING,
};
use crate::http::{encode, invalid, Format};
use crate::router::{body, call_object, metadata, topic, OBJECT_CALL_TIMEOUT_MS};

/// The most group ids an isolate remembers as registered (cleared when full: forgetting only
/// costs one idempotent call).
const REGISTERED_CACHE_MAX_ENTRIES: usize = 10_000;

thread_local! {
    /// Group ids this isolate registered with the metadata object.
    static REGISTERED: RefCell<HashSet<String>> = RefCell::new(HashSet::new());
}

/// Serves a group route: `Some(body)` for a 200 answer, `None` for 204.
pub async fn serve(
    route: &GroupRoute,
    req: &mut Request,
    env: &Env,
    format: Format,
) -> Result<Option<Vec<u8>>, ApiError> {
    match route {
        GroupRoute::List => {
            let list = parse_list_query(query_pairs(req)?.iter().map(pair))?;
            let limit = list.limit as usize;
            let ids: Vec<String> = metadata(env, "/metadata/list-groups", &list).await?;
            let next = (ids.len() >= limit).then(|| ids.last().cloned()).flatten();
            let groups = ids
                .into_iter()
                .map(|group_id| GroupListing { group_id })
                .collect();
            Ok(Some(encode(format, &GroupList { groups, next })))
        }
        GroupRoute::Describe(g) => {
            let description: GroupDescription = group(env, g, "/group/describe", &()).await?;
            Ok(Some(encode(format, &description)))
        }
        GroupRoute::Join(g) => {
            let request: JoinGroupRequest = body(req).await?;
            let partition_counts = partition_counts(env, &request.topics).await?;
            register(env, g).await?;
            let call = GroupJoinCall {
                request,
                partition_counts,
            };
            let answer: JoinGroupResponse = group(env, g, "/group/join", &call).await?;
            Ok(Some(encode(format, &answer)))
        }
        GroupRoute::Heartbeat(g, m) => {
            let request: HeartbeatRequest = body(req).await?;
            let call = GroupHeartbeatCall {
                member_id: m.clone(),
                request,
                partition_counts: Vec::new(),
            };
            let answer: HeartbeatResponse = group(env, g, "/group/heartbeat", &call).await?;
            Ok(Some(encode(format, &answer)))
        }
        GroupRoute::Leave(g, m) => {
            let call = MemberCall {
                member_id: m.clone(),
            };
            group::<_, ()>(env, g, "/group/leave", &call).await?;
            Ok(None)
        }
        GroupRoute::CommitOffsets(g) => {
            let request: OffsetCommitRequest = body(req).await?;
            if request.member_id.is_empty() {
                // An administrator's commit may be the first thing a group ever sees.
                register(env, g).await?;
            }
            group::<_, ()>(env, g, "/group/commit", &request).await?;
            Ok(Some(encode(format, &serde_json::Map::new())))
        }
        GroupRoute::FetchOffsets(g) => {
            let query = parse_offsets_query(query_pairs(req)?.iter().map(pair))?;
            let answer: OffsetFetchResponse = group(env, g, "/group/offsets", &query).await?;
            Ok(Some(encode(format, &answer)))
        }
    }
}

fn query_pairs(req: &Request) -> Result<Vec<(String, String)>, ApiError> {
    let url = req
        .url()
        .map_err(|e| invalid(format!("bad request URL: {e}")))?;
    Ok(url.query_pairs().into_owned().collect())
}

fn pair((k, v): &(String, String)) -> (&str, &str) {
    (k.as_str(), v.as_str())
}

async fn group<Req: Serialize, Resp: DeserializeOwned>(
    env: &Env,
    group_id: &str,
    path: &str,
    req: &Req,
) -> Result<Resp, ApiError> {
    call_object(
        env,
        GROUP_BINDING,
        group_id,
        path,
        req,
        OBJECT_CALL_TIMEOUT_MS,
    )
    .await
}

/// The partition count of each subscribed topic that exists, looked up concurrently.
async fn partition_counts(
    env: &Env,
    topics: &[String],
) -> Result<Vec<TopicPartitionCount>, ApiError> {
    // The group refuses more, but the lookups come first: bound them here.
    if topics.len() > MAX_TOPICS_PER_MEMBER {
        return Err(invalid(format!(
            "a member subscribes to at most {MAX_TOPICS_PER_MEMBER} topics, not {}",
            topics.len()
        )));
    }
    let mut names: Vec<&String> = topics.iter().collect();
    names.sort();
    names.dedup();
    let lookups = names.into_iter().map(|name| async move {
        match topic(env, name, false).await {
            Ok((t, _)) => Ok(Some(TopicPartitionCount {
                topic: t.name,
                partitions: t.partitions,
            })),
            Err(e) if e.code == ErrorCode::UnknownTopicOrPartition => Ok(None),
            Err(e) => Err(e),
        }
    });
    let counts = join_all(lookups)
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    Ok(counts.into_iter().flatten().collect())
}

/// Registers the group id with the metadata object, once per isolate.
async fn register(env: &Env, group_id: &str) -> Result<(), ApiError> {
    if REGISTERED.with(|r| r.borrow().contains(group_id)) {
        return Ok(());
    }
    let call = GroupIdCall {
        group_id: group_id.to_owned(),
    };
    metadata::<_, ()>(env, "/metadata/register-group", &call).await?;
    REGISTERED.with(|r| {
        let mut r = r.borrow_mut();
        if r.len() >= REGISTERED_CACHE_MAX_ENTRIES {
            r.clear();
        }
        r.insert(group_id.to_owned());
    });
    Ok(())
}
