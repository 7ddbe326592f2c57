//! Consumer groups: the HTTP API v1 bodies of `/v1/groups/...` and the calls the Worker makes to a
//! group object.
//!
//! The group coordinator itself lives in `kafdo-group` (see `design/group.md`). A consumer talks
//! to it in this order:
//!
//! 1. `POST /v1/groups/{g}/members` ([`JoinGroupRequest`]): the answer ([`JoinGroupResponse`])
//!    carries the member id, the group's generation and the partitions the member owns now.
//! 2. `POST /v1/groups/{g}/members/{m}/heartbeat` ([`HeartbeatRequest`]) well within the session
//!    timeout, echoing the `generation_id` of the last answer it *applied*. The answer
//!    ([`HeartbeatResponse`]) carries the member's current assignment: partitions are added as
//!    others release them, and removed when the member must release them. A member applies an
//!    answer (stops consuming released partitions, commits their offsets) before sending the
//!    next heartbeat, because that heartbeat's `generation_id` is what tells the group the
//!    partitions are free to give to another member.
//! 3. `POST /v1/groups/{g}/offsets` ([`OffsetCommitRequest`]) and
//!    `GET /v1/groups/{g}/offsets` ([`OffsetFetchQuery`], [`OffsetFetchResponse`]).
//! 4. `DELETE /v1/groups/{g}/members/{m}` to leave: its partitions are released at once.
//!
//! `GET /v1/groups/{g}` answers a [`GroupDescription`].

use serde::{Deserialize, Serialize};

use crate::rpc::TopicPartitionOffset;
use crate::txn::TopicPartition;

/// The session timeout when a join does not give one (Kafka's default since 3.0).
pub const DEFAULT_SESSION_TIMEOUT_MS: i64 = 45_000;
/// The shortest session timeout a member may ask for.
pub const MIN_SESSION_TIMEOUT_MS: i64 = 1_000;
/// The longest session timeout a member may ask for (Kafka's `group.max.session.timeout.ms`).
pub const MAX_SESSION_TIMEOUT_MS: i64 = 30 * 60 * 1000;
/// The most members one group may have.
pub const MAX_GROUP_MEMBERS: usize = 1_000;
/// The most topics one member may subscribe to.
pub const MAX_TOPICS_PER_MEMBER: usize = 100;
/// The most partitions one group may cover (the sum over its subscribed topics).
pub const MAX_GROUP_PARTITIONS: usize = 10_000;
/// The most offsets one commit may carry.
pub const MAX_OFFSETS_PER_COMMIT: usize = 1_000;
/// The longest metadata string stored with an offset (Kafka's `offset.metadata.max.bytes`).
pub const MAX_OFFSET_METADATA_BYTES: usize = 4_096;
/// The longest `member_id` or `group_instance_id`, in bytes.
pub const MAX_MEMBER_ID_LEN: usize = 255;

/// How the group spreads partitions over its members.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Assignor {
    /// Per topic, contiguous ranges of partitions to the subscribed members in order.
    Range,
    /// All partitions dealt out one by one to the subscribed members in turn.
    RoundRobin,
    /// Balanced, and moves as few partitions as possible when members come and go.
    #[default]
    Sticky,
}

impl Assignor {
    /// The name on the wire and in storage.
    pub fn name(self) -> &'static str {
        match self {
            Assignor::Range => "range",
            Assignor::RoundRobin => "roundrobin",
            Assignor::Sticky => "sticky",
        }
    }

    /// The assignor of a name, the inverse of [`Assignor::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "range" => Assignor::Range,
            "roundrobin" => Assignor::RoundRobin,
            "sticky" => Assignor::Sticky,
            _ => return None,
        })
    }
}

/// The state of a group, named as KIP-848 names the states of a consumer group.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum GroupState {
    /// No members.
    Empty,
    /// Some partitions are moving: a member has yet to release a partition, or a member has yet
    /// to be told about a partition that is waiting for it.
    Reconciling,
    /// Every partition is owned by the member the assignor chose for it.
    Stable,
}

impl GroupState {
    /// The name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::Reconciling => "Reconciling",
            GroupState::Stable => "Stable",
        }
    }
}

/// `POST /v1/groups/{g}/members`: join the group (or rejoin with a known `member_id`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinGroupRequest {
    /// The member's id when it rejoins; absent for a new member (the group makes one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_id: Option<String>,
    /// A static member's stable identity (KIP-345): a member that joins again with the same
    /// instance id after a restart takes over the previous member's partitions without a
    /// rebalance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_instance_id: Option<String>,
    /// The topics the member subscribes to (1 to [`MAX_TOPICS_PER_MEMBER`]).
    pub topics: Vec<String>,
    /// How long the group waits for a heartbeat before it removes the member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_timeout_ms: Option<i64>,
    /// The assignor; only an empty group may change it. Defaults to sticky.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignor: Option<Assignor>,
}

/// The answer to a join.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinGroupResponse {
    /// The member's id: send it with every heartbeat and commit.
    pub member_id: String,
    /// The group's generation: echo it in the next heartbeat.
    pub generation_id: i32,
    /// The partitions the member owns now.
    pub assignment: Vec<TopicPartition>,
}

/// `POST /v1/groups/{g}/members/{m}/heartbeat`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatRequest {
    /// The `generation_id` of the last answer the member received and applied. It acknowledges
    /// that the member released every partition that answer left out.
    pub generation_id: i32,
}

/// The answer to a heartbeat.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatResponse {
    /// The group's generation: echo it in the next heartbeat once this answer is applied.
    pub generation_id: i32,
    /// The partitions the member owns now (it must release any it had that are not here).
    pub assignment: Vec<TopicPartition>,
    /// The group's state.
    pub state: GroupState,
}

/// `POST /v1/groups/{g}/offsets`: commit offsets, fenced by generation and member id.
///
/// A group without members also accepts `generation_id: -1` with an empty `member_id` (an
/// administrator resetting offsets), as Kafka does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OffsetCommitRequest {
    /// The member's current generation.
    pub generation_id: i32,
    /// The member.
    pub member_id: String,
    /// The offsets (1 to [`MAX_OFFSETS_PER_COMMIT`]), each for a partition the member owns.
    pub offsets: Vec<TopicPartitionOffset>,
}

/// The query of `GET /v1/groups/{g}/offsets`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OffsetFetchQuery {
    /// Answer `UNSTABLE_OFFSET_COMMIT` (retriable) while any of the asked partitions has
    /// transactional offsets waiting for their transaction's outcome.
    #[serde(default)]
    pub require_stable: bool,
    /// Only this topic's partitions (all committed offsets when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// Only these partitions of `topic`, comma-separated (for example `0,3,7`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions: Option<String>,
}

/// The partitions an offset fetch asks for (see [`OffsetFetchQuery::filter`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffsetFilter {
    /// Only this topic.
    pub topic: String,
    /// Only these partitions of it; every partition when `None`.
    pub partitions: Option<Vec<i32>>,
}

impl OffsetFilter {
    /// Whether the filter takes this partition.
    pub fn contains(&self, topic: &str, partition: i32) -> bool {
        self.topic == topic
            && self
                .partitions
                .as_ref()
                .is_none_or(|p| p.contains(&partition))
    }
}

impl OffsetFetchQuery {
    /// The partitions asked for: `Ok(None)` for every partition. An unparsable list, or
    /// partitions without a topic, is an error message.
    pub fn filter(&self) -> Result<Option<OffsetFilter>, String> {
        let Some(topic) = &self.topic else {
            if self.partitions.is_some() {
                return Err("partitions given without a topic".into());
            }
            return Ok(None);
        };
        let partitions = match &self.partitions {
            None => None,
            Some(list) => Some(
                list.split(',')
                    .map(|p| {
                        crate::limits::parse_canonical::<i32>(p)
                            .filter(|p| *p >= 0)
                            .ok_or_else(|| {
                                format!("not a partition number: {}", crate::limits::quoted(p))
                            })
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        };
        Ok(Some(OffsetFilter {
            topic: topic.clone(),
            partitions,
        }))
    }
}

/// The answer to `GET /v1/groups/{g}/offsets`: the committed offsets, by topic and partition.
/// A partition without a committed offset is absent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffsetFetchResponse {
    /// The committed offsets.
    pub offsets: Vec<TopicPartitionOffset>,
}

/// `GET /v1/groups/{g}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupDescription {
    /// The group's state.
    pub state: GroupState,
    /// The current generation (0 before the first member ever joined).
    pub generation_id: i32,
    /// The assignor in use.
    pub assignor: Assignor,
    /// The members, by member id.
    pub members: Vec<MemberDescription>,
}

/// One member in a [`GroupDescription`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberDescription {
    /// The member id.
    pub member_id: String,
    /// The static member's instance id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_instance_id: Option<String>,
    /// The subscribed topics.
    pub topics: Vec<String>,
    /// The partitions the member owns and keeps.
    pub assignment: Vec<TopicPartition>,
    /// Partitions the member was told to release and has not yet acknowledged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub revoking: Vec<TopicPartition>,
    /// Partitions chosen for the member that it does not own yet (another member still holds
    /// them, or the member has not heartbeated since they became free).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<TopicPartition>,
}

/// A topic's partition count, as the Worker looked it up in the metadata object. The group does
/// not call out: the Worker passes the counts of the topics a join subscribes to (and, when it
/// has them, of the member's topics on a heartbeat, so a grown topic is noticed).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicPartitionCount {
    /// The topic.
    pub topic: String,
    /// Its partition count; 0 when the topic no longer exists.
    pub partitions: i32,
}

/// `POST /group/join`: the Worker's call to a group object for `POST /v1/groups/{g}/members`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupJoinCall {
    /// The client's request.
    pub request: JoinGroupRequest,
    /// The partition count of every topic in `request.topics`.
    pub partition_counts: Vec<TopicPartitionCount>,
}

/// `POST /group/heartbeat`: the Worker's call for `POST /v1/groups/{g}/members/{m}/heartbeat`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupHeartbeatCall {
    /// The member id from the path.
    pub member_id: String,
    /// The client's request.
    pub request: HeartbeatRequest,
    /// Fresh partition counts of the member's topics, if the Worker has them (may be empty).
    #[serde(default)]
    pub partition_counts: Vec<TopicPartitionCount>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_bodies_parse_as_the_brief_writes_them() {
        let join: JoinGroupRequest =
            serde_json::from_str(r#"{"topics":["a","b"],"session_timeout_ms":10000}"#).unwrap();
        assert_eq!(join.member_id, None);
        assert_eq!(join.session_timeout_ms, Some(10_000));
        assert!(serde_json::from_str::<JoinGroupRequest>(r#"{"topics":[],"x":1}"#).is_err());
        let join: JoinGroupRequest = serde_json::from_str(
            r#"{"member_id":"m","group_instance_id":"i","topics":["a"],"assignor":"roundrobin"}"#,
        )
        .unwrap();
        assert_eq!(join.assignor, Some(Assignor::RoundRobin));

        let hb: HeartbeatRequest = serde_json::from_str(r#"{"generation_id":3}"#).unwrap();
        assert_eq!(hb.generation_id, 3);
        assert!(serde_json::from_str::<HeartbeatRequest>(r#"{}"#).is_err());

        let answer = serde_json::to_string(&HeartbeatResponse {
            generation_id: 3,
            assignment: vec![TopicPartition {
                topic: "a".into(),
                partition: 1,
            }],
            state: GroupState::Stable,
        })
        .unwrap();
        assert_eq!(
            answer,
            r#"{"generation_id":3,"assignment":[{"topic":"a","partition":1}],"state":"Stable"}"#
        );

        let commit: OffsetCommitRequest = serde_json::from_str(
            r#"{"generation_id":1,"member_id":"m","offsets":[{"topic":"a","partition":0,"offset":5}]}"#,
        )
        .unwrap();
        assert_eq!(commit.offsets[0].offset, 5);
    }

    #[test]
    fn names_round_trip() {
        for a in [Assignor::Range, Assignor::RoundRobin, Assignor::Sticky] {
            assert_eq!(Assignor::from_name(a.name()), Some(a));
            assert_eq!(
                serde_json::to_string(&a).unwrap(),
                format!("\"{}\"", a.name())
            );
        }
        for s in [
            GroupState::Empty,
            GroupState::Reconciling,
            GroupState::Stable,
        ] {
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.name())
            );
        }
    }

    #[test]
    fn fetch_filters_parse() {
        let q = OffsetFetchQuery::default();
        assert_eq!(q.filter(), Ok(None));
        let q = OffsetFetchQuery {
            require_stable: true,
            topic: Some("a".into()),
            partitions: Some("0,3,7".into()),
        };
        let filter = q.filter().unwrap().unwrap();
        assert_eq!(filter.partitions, Some(vec![0, 3, 7]));
        assert!(filter.contains("a", 3) && !filter.contains("a", 1) && !filter.contains("b", 3));
        let q = OffsetFetchQuery {
            partitions: Some("1".into()),
            ..Default::default()
        };
        assert!(q.filter().is_err());
        // Each number is written the one way it prints.
        for list in ["0, 3", "+1", "01", "-0", " 1"] {
            let q = OffsetFetchQuery {
                topic: Some("a".into()),
                partitions: Some(list.into()),
                ..Default::default()
            };
            assert!(q.filter().is_err(), "{list:?}");
        }
        let q = OffsetFetchQuery {
            topic: Some("a".into()),
            partitions: Some("x".into()),
            ..Default::default()
        };
        assert!(q.filter().is_err());
    }
}
