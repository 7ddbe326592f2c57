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
//! - **The registry** behind `GET /v1/groups`. Before a group's first join (or an
//!   administrator's commit, `member_id` empty) the broker registers the group id with the
//!   metadata object; each isolate remembers the ids it registered, so this is one extra call
//!   per group and isolate, never per heartbeat or commit. Registering before the join means
//!   a group that has members is always listed. The registry grows per group only.

use kafdo_types::group::{
    GroupDescription, GroupHeartbeatCall, GroupJoinCall, HeartbeatRequest, HeartbeatResponse,
    JoinGroupRequest, JoinGroupResponse, OffsetCommitRequest, OffsetFetchQuery,
    OffsetFetchResponse, TopicPartitionCount, MAX_TOPICS_PER_MEMBER,
};
use kafdo_types::group_list::{GroupList, GroupListing};
use kafdo_types::rpc::{
    DescribeGroupRequest, LeaveGroupRequest, ListGroupsRequest, Object, RegisterGroupRequest,
};
use kafdo_types::{ApiError, ErrorCode};

use crate::{invalid, Broker, Runtime};

/// The default and largest page of `GET /v1/groups`.
pub const MAX_GROUPS_PER_PAGE: u32 = 1_000;

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
        self.ask(Object::Group(group_id.to_owned()), DescribeGroupRequest)
            .await
    }

    /// `POST /v1/groups/{g}/members`.
    pub async fn join_group(
        &self,
        group_id: &str,
        request: JoinGroupRequest,
    ) -> Result<JoinGroupResponse, ApiError> {
        let partition_counts = self.partition_counts(&request.topics).await?;
        self.register_group(group_id).await?;
        let call = GroupJoinCall {
            request,
            partition_counts,
        };
        self.ask(Object::Group(group_id.to_owned()), call).await
    }

    /// `POST /v1/groups/{g}/members/{m}/heartbeat`.
    pub async fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        request: HeartbeatRequest,
    ) -> Result<HeartbeatResponse, ApiError> {
        let call = GroupHeartbeatCall {
            member_id: member_id.to_owned(),
            request,
            partition_counts: Vec::new(),
        };
        self.ask(Object::Group(group_id.to_owned()), call).await
    }

    /// `DELETE /v1/groups/{g}/members/{m}`.
    pub async fn leave_group(&self, group_id: &str, member_id: &str) -> Result<(), ApiError> {
        let call = LeaveGroupRequest {
            member_id: member_id.to_owned(),
        };
        self.ask(Object::Group(group_id.to_owned()), call).await
    }

    /// `POST /v1/groups/{g}/offsets`.
    pub async fn commit_offsets(
        &self,
        group_id: &str,
        request: OffsetCommitRequest,
    ) -> Result<(), ApiError> {
        if request.member_id.is_empty() {
            // An administrator's commit may be the first thing a group ever sees.
            self.register_group(group_id).await?;
        }
        self.ask(Object::Group(group_id.to_owned()), request).await
    }

    /// `GET /v1/groups/{g}/offsets`.
    pub async fn fetch_offsets(
        &self,
        group_id: &str,
        query: OffsetFetchQuery,
    ) -> Result<OffsetFetchResponse, ApiError> {
        self.ask(Object::Group(group_id.to_owned()), query).await
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
