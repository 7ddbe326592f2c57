//! Consumer groups over the group objects (one per group id).
//!
//! Each call is one call to the group's object. The broker adds only what the group cannot
//! know:
//!
//! - **Partition counts.** A join carries the partition count of every topic it subscribes
//!   to, looked up here with the cached topic lookup and passed in; a topic that does not exist
//!   is left out, and the group answers `UNKNOWN_TOPIC_OR_PARTITION`. Heartbeats carry no
//!   counts (a topic's partition count never changes; a topic deleted and created again is
//!   noticed at the next join).
//! - **The registry** behind `GET /v1/groups`. Before a group's first join (a join without a
//!   `member_id`; a rejoin names a member only a first join made) or an administrator's
//!   commit (`member_id` empty, `generation_id` -1) the broker registers the group id with the
//!   metadata object; each isolate remembers the ids it registered, so this is one extra call
//!   per group and isolate, never per heartbeat or commit. Registering before the join means
//!   a group that has members is always listed. A join bound to fail (an invalid request, a
//!   topic that does not exist: what any group, new or not, would refuse) is refused before
//!   the registration, so a failed join adds no name to the list; the registry grows only by
//!   groups that got a member.
//! - **Ids**: a group id and a member id follow the one id rule
//!   (`kafdo_types::limits::valid_id`); a call with another is refused before any object sees
//!   it.

use kafdo_types::group::{
    GroupDescription, GroupHeartbeatCall, GroupJoinCall, HeartbeatRequest, HeartbeatResponse,
    JoinGroupRequest, JoinGroupResponse, OffsetCommitRequest, OffsetFetchQuery,
    OffsetFetchResponse, TopicPartitionCount, MAX_MEMBER_ID_LEN, MAX_TOPICS_PER_MEMBER,
};
use kafdo_types::group_list::{GroupList, GroupListing};
use kafdo_types::limits::{quoted, valid_id};
use kafdo_types::rpc::{
    DescribeGroupRequest, LeaveGroupRequest, ListGroupsRequest, Object, RegisterGroupRequest,
};
use kafdo_types::txn::{valid_group_id, MAX_GROUP_ID_LEN};
use kafdo_types::{ApiError, ErrorCode};

use crate::{invalid, Broker, Runtime};

/// The default and largest page of `GET /v1/groups`.
pub const MAX_GROUPS_PER_PAGE: u32 = 1_000;

/// The group's object, once its id is checked.
fn group(group_id: &str) -> Result<Object, ApiError> {
    if valid_group_id(group_id) {
        Ok(Object::Group(group_id.to_owned()))
    } else {
        Err(invalid(format!(
            "invalid group id {}: 1 to {MAX_GROUP_ID_LEN} bytes, no control characters",
            quoted(group_id)
        )))
    }
}

/// Checks a member id from a path.
fn member(member_id: &str) -> Result<(), ApiError> {
    if valid_id(member_id, MAX_MEMBER_ID_LEN) {
        Ok(())
    } else {
        Err(invalid(format!(
            "invalid member id {}: 1 to {MAX_MEMBER_ID_LEN} bytes, no control characters",
            quoted(member_id)
        )))
    }
}

impl<R: Runtime> Broker<R> {
    /// `GET /v1/groups`: a page of the registry.
    pub async fn list_groups(&self, request: ListGroupsRequest) -> Result<GroupList, ApiError> {
        let limit = request.limit as usize;
        let ids = self.ask(Object::Metadata, request).await?;
        let next = (ids.len() >= limit).then(|| ids.last().cloned()).flatten();
        let groups = ids
            .into_iter()
            .map(|group_id| GroupListing { group_id })
            .collect();
        Ok(GroupList { groups, next })
    }

    /// `GET /v1/groups/{g}`.
    pub async fn describe_group(&self, group_id: &str) -> Result<GroupDescription, ApiError> {
        self.ask(group(group_id)?, DescribeGroupRequest).await
    }

    /// `POST /v1/groups/{g}/members`.
    pub async fn join_group(
        &self,
        group_id: &str,
        request: JoinGroupRequest,
    ) -> Result<JoinGroupResponse, ApiError> {
        let object = group(group_id)?;
        // What any group would refuse is refused before the group is registered.
        kafdo_group::validate_join(&request).map_err(|e| ApiError::new(e.code(), e.to_string()))?;
        let partition_counts = self.partition_counts(&request.topics).await?;
        if let Some(missing) = request
            .topics
            .iter()
            .find(|t| !partition_counts.iter().any(|c| &&c.topic == t))
        {
            return Err(ApiError::new(
                ErrorCode::UnknownTopicOrPartition,
                format!("unknown topic {}", quoted(missing)),
            ));
        }
        // A rejoin names a member only a first join can have made, and that join registered
        // the group (the registry forgets nothing); to a group without it, it is refused.
        if request.member_id.is_none() {
            self.register_group(group_id).await?;
        }
        let call = GroupJoinCall {
            request,
            partition_counts,
        };
        self.ask(object, call).await
    }

    /// `POST /v1/groups/{g}/members/{m}/heartbeat`.
    pub async fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        request: HeartbeatRequest,
    ) -> Result<HeartbeatResponse, ApiError> {
        member(member_id)?;
        let call = GroupHeartbeatCall {
            member_id: member_id.to_owned(),
            request,
            partition_counts: Vec::new(),
        };
        self.ask(group(group_id)?, call).await
    }

    /// `DELETE /v1/groups/{g}/members/{m}`.
    pub async fn leave_group(&self, group_id: &str, member_id: &str) -> Result<(), ApiError> {
        member(member_id)?;
        let call = LeaveGroupRequest {
            member_id: member_id.to_owned(),
        };
        self.ask(group(group_id)?, call).await
    }

    /// `POST /v1/groups/{g}/offsets`.
    pub async fn commit_offsets(
        &self,
        group_id: &str,
        request: OffsetCommitRequest,
    ) -> Result<(), ApiError> {
        let object = group(group_id)?;
        if request.member_id.is_empty() && request.generation_id == -1 {
            // An administrator's commit may be the first thing a group ever sees; one any
            // group would refuse registers nothing.
            kafdo_group::validate_offsets(&request.offsets)
                .map_err(|e| ApiError::new(e.code(), e.to_string()))?;
            self.register_group(group_id).await?;
        } else if !request.member_id.is_empty() {
            member(&request.member_id)?;
        }
        // An empty member id at another generation is neither: the group refuses it as an
        // unknown member, and it registers nothing.
        self.ask(object, request).await
    }

    /// `GET /v1/groups/{g}/offsets`.
    pub async fn fetch_offsets(
        &self,
        group_id: &str,
        query: OffsetFetchQuery,
    ) -> Result<OffsetFetchResponse, ApiError> {
        self.ask(group(group_id)?, query).await
    }

    /// The partition count of each subscribed topic that exists, looked up concurrently.
    async fn partition_counts(
        &self,
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
            match self.topic(name, false).await {
                Ok((t, _)) => Ok(Some(TopicPartitionCount {
                    topic: t.name,
                    partitions: t.partitions,
                })),
                Err(e) if e.code == ErrorCode::UnknownTopicOrPartition => Ok(None),
                Err(e) => Err(e),
            }
        });
        let counts = futures_util::future::join_all(lookups)
            .await
            .into_iter()
            .collect::<Result<Vec<_>, ApiError>>()?;
        Ok(counts.into_iter().flatten().collect())
    }

    /// Registers the group id with the metadata object, once per isolate.
    async fn register_group(&self, group_id: &str) -> Result<(), ApiError> {
        if self.isolate.group_registered(group_id) {
            return Ok(());
        }
        let call = RegisterGroupRequest {
            group_id: group_id.to_owned(),
        };
        self.ask(Object::Metadata, call).await?;
        self.isolate.remember_group(group_id);
        Ok(())
    }
}
