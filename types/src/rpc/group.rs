//! Calls to a consumer group object ([`Object::Group`](super::Object::Group), named by the group
//! id).

use serde::{Deserialize, Serialize};

use super::{MarkerAck, TxnResult};
use crate::group::{
    GroupDescription, GroupHeartbeatCall, GroupJoinCall, HeartbeatResponse, JoinGroupResponse,
    OffsetCommitRequest, OffsetFetchQuery, OffsetFetchResponse,
};

object_calls! {
    /// A call to a group object (`kafdo_group::GroupCoordinator`).
    pub enum GroupCall: Group {
        /// `POST /v1/groups/{g}/members`, with the subscribed topics' partition counts.
        Join(GroupJoinCall) -> JoinGroupResponse = "/group/join",
        /// `POST /v1/groups/{g}/members/{m}/heartbeat`.
        Heartbeat(GroupHeartbeatCall) -> HeartbeatResponse = "/group/heartbeat",
        /// `DELETE /v1/groups/{g}/members/{m}`.
        Leave(LeaveGroupRequest) -> () = "/group/leave",
        /// `POST /v1/groups/{g}/offsets`.
        Commit(OffsetCommitRequest) -> () = "/group/commit",
        /// `GET /v1/groups/{g}/offsets`.
        Offsets(OffsetFetchQuery) -> OffsetFetchResponse = "/group/offsets",
        /// `GET /v1/groups/{g}`, or `GROUP_ID_NOT_FOUND`.
        Describe(DescribeGroupRequest) -> GroupDescription = "/group/describe",
        /// From a coordinator: offsets pending in a transaction.
        TxnOffsets(TxnOffsetCommitRequest) -> () = "/group/txn-offsets",
        /// From a coordinator: the transaction's pending offsets commit or go.
        TxnMarker(GroupTxnMarkerRequest) -> MarkerAck = "/group/txn-marker",
    }
}

/// [`GroupCall::Leave`]: the member id from the path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaveGroupRequest {
    /// The member that leaves.
    pub member_id: String,
}

/// [`GroupCall::Describe`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DescribeGroupRequest;

/// One offset to commit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicPartitionOffset {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The next offset to consume.
    pub offset: i64,
    /// Free-form metadata stored with the offset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<String>,
}

/// [`GroupCall::TxnOffsets`]: offsets written inside a transaction; pending until the marker
/// (KIP-447: fenced by generation and member id).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnOffsetCommitRequest {
    /// The group.
    pub group_id: String,
    /// The transactional id.
    pub transactional_id: String,
    /// The producer id.
    pub producer_id: i64,
    /// The producer epoch.
    pub producer_epoch: i32,
    /// The member's generation.
    pub generation_id: i32,
    /// The member.
    pub member_id: String,
    /// The offsets.
    pub offsets: Vec<TopicPartitionOffset>,
    /// This call's number among the transaction's offset commits to this group, from 1. The
    /// group keeps, per partition, the offset of the highest number it received, so a late or
    /// duplicated earlier call never overwrites newer offsets, and a call of unknown outcome
    /// can be followed by a new one.
    pub sequence: i64,
}

/// [`GroupCall::TxnMarker`]: makes the producer's pending offsets committed, or drops them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupTxnMarkerRequest {
    /// The group.
    pub group_id: String,
    /// The producer id.
    pub producer_id: i64,
    /// The epoch of the transaction being ended.
    pub producer_epoch: i32,
    /// Commit or abort.
    pub result: TxnResult,
}
