//! End-to-end tests of consumer groups (`/v1/groups`) on the real runtime: three members over
//! twelve partitions join, one dies silently (its session times out and the group's alarm, or
//! any later step, removes it), one leaves; offsets are committed and resumed by the new
//! owners; the answers never give one partition to two live members at once. Fencing errors,
//! `require_stable`, static membership, describe and list.
//!
//! The members are modelled as the client must behave (see `design/group.md`): a member
//! applies each answer (its assignment is exactly the answer's) before its next heartbeat,
//! which echoes the answer's generation; a member that stops heartbeating still believes it
//! owns its partitions until `session_timeout_ms` after it sent its last successful heartbeat.
//! After every answer the test checks that no partition is owned by two members that may
//! still believe they own it.
//!
//! All tests share one `wrangler dev` and use their own group and topic names. They run only
//! with `KAFDO_E2E=1`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use kafdo_e2e::{shared, unique_topic, Client};
use kafdo_types::group::{
    GroupDescription, GroupState, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest,
    JoinGroupResponse, OffsetCommitRequest, OffsetFetchResponse,
};
use kafdo_types::group_list::GroupList;
use kafdo_types::rpc::TopicPartitionOffset;
use kafdo_types::txn::TopicPartition;
use kafdo_types::ErrorCode;

/// One modelled consumer.
struct Member {
    name: &'static str,
    member_id: String,
    /// The generation of the last answer applied (echoed in the next heartbeat).
    generation_id: i32,
    /// The partitions of the last answer applied.
    owned: BTreeSet<i32>,
    session_timeout_ms: u64,
    /// When the last successful heartbeat (or the join) was sent.
    last_sent: Instant,
    /// Stopped heartbeating (dead or left).
    gone: bool,
}

impl Member {
    fn join(
        client: &Client,
        group: &str,
        topic: &str,
        name: &'static str,
        session_timeout_ms: u64,
        group_instance_id: Option<&str>,
    ) -> Member {
        let sent = Instant::now();
        let answer: JoinGroupResponse = client
            .post(
                &format!("/v1/groups/{group}/members"),
                &JoinGroupRequest {
                    topics: vec![topic.into()],
                    session_timeout_ms: Some(session_timeout_ms as i64),
                    group_instance_id: group_instance_id.map(String::from),
                    ..Default::default()
                },
                &[],
            )
            .expect(200);
        Member {
            name,
            member_id: answer.member_id,
            generation_id: answer.generation_id,
            owned: partitions(&answer.assignment),
            session_timeout_ms,
            last_sent: sent,
            gone: false,
        }
    }

    fn heartbeat(&mut self, client: &Client, group: &str) -> HeartbeatResponse {
        let sent = Instant::now();
        let answer: HeartbeatResponse = client
            .post(
                &format!("/v1/groups/{group}/members/{}/heartbeat", self.member_id),
                &HeartbeatRequest {
                    generation_id: self.generation_id,
                },
                &[],
            )
            .expect(200);
        self.generation_id = answer.generation_id;
        self.owned = partitions(&answer.assignment);
        self.last_sent = sent;
        answer
    }

    /// Whether the member may still believe it owns its partitions.
    fn may_own(&self) -> bool {
        !self.gone || self.last_sent.elapsed() < Duration::from_millis(self.session_timeout_ms)
    }
}

fn partitions(assignment: &[TopicPartition]) -> BTreeSet<i32> {
    assignment.iter().map(|tp| tp.partition).collect()
}

/// Panics if two members that may believe they own a partition both own it.
fn check_single_owner(members: &[&Member]) {
    let mut owners: BTreeMap<i32, &str> = BTreeMap::new();
    for m in members.iter().filter(|m| m.may_own()) {
        for &p in &m.owned {
            if let Some(other) = owners.insert(p, m.name) {
                panic!("partition {p} is owned by {other} and {} at once", m.name);
            }
        }
    }
}

/// Heartbeats every live member in rounds until `done` holds (checking single ownership after
/// every answer), or panics after `timeout`.
fn rounds_until(
    client: &Client,
    group: &str,
    members: &mut [&mut Member],
    timeout: Duration,
    what: &str,
    done: impl Fn(&[&mut Member], GroupState) -> bool,
) {
    let start = Instant::now();
    loop {
        let mut state = GroupState::Reconciling;
        for i in 0..members.len() {
            if members[i].gone {
                continue;
            }
            state = members[i].heartbeat(client, group).state;
            let view: Vec<&Member> = members.iter().map(|m| &**m).collect();
            check_single_owner(&view);
        }
        if done(members, state) {
            return;
        }
        assert!(
            start.elapsed() < timeout,
            "{what}: not reached in {timeout:?}; owned: {:?}",
            members
                .iter()
                .map(|m| (m.name, m.owned.clone()))
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn commit(
    client: &Client,
    group: &str,
    topic: &str,
    m: &Member,
    offsets: impl Fn(i32) -> i64,
) -> kafdo_e2e::Reply {
    client.post(
        &format!("/v1/groups/{group}/offsets"),
        &OffsetCommitRequest {
            generation_id: m.generation_id,
            member_id: m.member_id.clone(),
            offsets: m
                .owned
                .iter()
                .map(|&p| TopicPartitionOffset {
                    topic: topic.into(),
                    partition: p,
                    offset: offsets(p),
                    metadata: None,
                })
                .collect(),
        },
        &[],
    )
}

fn fetch_offsets(client: &Client, group: &str, query: &str) -> BTreeMap<i32, i64> {
    let answer: OffsetFetchResponse = client
        .get(&format!("/v1/groups/{group}/offsets{query}"))
        .expect(200);
    answer
        .offsets
        .into_iter()
        .map(|o| (o.partition, o.offset))
        .collect()
}

#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn three_members_join_one_dies_one_leaves_offsets_resume() {
    let client = shared().client();
    let topic = unique_topic("groups-t");
    let group = unique_topic("groups-g");
    client.create_topic(&topic, 12);

    let mut a = Member::join(&client, &group, &topic, "a", 10_000, None);
    let mut b = Member::join(&client, &group, &topic, "b", 10_000, None);
    // The one that will die: the shortest session the group allows.
    let mut c = Member::join(&client, &group, &topic, "c", 1_000, None);
    check_single_owner(&[&a, &b, &c]);

    rounds_until(
        &client,
        &group,
        &mut [&mut a, &mut b, &mut c],
        Duration::from_secs(20),
        "three members balanced",
        |ms, state| state == GroupState::Stable && ms.iter().all(|m| m.owned.len() == 4),
    );
    let all: BTreeSet<i32> = [&a, &b, &c].iter().flat_map(|m| m.owned.clone()).collect();
    assert_eq!(all, (0..12).collect());

    // Every member commits its partitions' positions.
    for m in [&a, &b, &c] {
        commit(&client, &group, &topic, m, |p| 100 + i64::from(p)).expect_status(200);
    }
    let c_partitions = c.owned.clone();

    // c dies silently: it stops heartbeating. Its session times out and the others get its
    // partitions, never while c may still believe it owns them.
    // The clock starts before c's last heartbeat is sent, so the server's 1 s session timeout,
    // counted from when that heartbeat arrives, is a lower bound on the time measured here.
    let died = Instant::now();
    client
        .post(
            &format!("/v1/groups/{group}/members/{}/heartbeat", c.member_id),
            &HeartbeatRequest {
                generation_id: c.generation_id,
            },
            &[],
        )
        .expect_status(200);
    c.gone = true;
    rounds_until(
        &client,
        &group,
        &mut [&mut a, &mut b, &mut c],
        Duration::from_secs(20),
        "c's partitions reassigned",
        |ms, state| state == GroupState::Stable && ms[0].owned.len() + ms[1].owned.len() == 12,
    );
    assert!(died.elapsed() >= Duration::from_millis(1_000));
    assert_eq!((a.owned.len(), b.owned.len()), (6, 6));
    client
        .post(
            &format!("/v1/groups/{group}/members/{}/heartbeat", c.member_id),
            &HeartbeatRequest {
                generation_id: c.generation_id,
            },
            &[],
        )
        .expect_error(409, ErrorCode::UnknownMemberId);

    // The new owners resume from what c committed.
    for m in [&a, &b] {
        let mine: Vec<String> = m
            .owned
            .iter()
            .filter(|p| c_partitions.contains(p))
            .map(i32::to_string)
            .collect();
        assert!(!mine.is_empty());
        let query = format!("?topic={topic}&partitions={}", mine.join(","));
        let offsets = fetch_offsets(&client, &group, &query);
        assert_eq!(offsets.len(), mine.len());
        for (p, offset) in offsets {
            assert!(c_partitions.contains(&p));
            assert_eq!(offset, 100 + i64::from(p), "partition {p}");
        }
    }
    // And commit further.
    for m in [&a, &b] {
        commit(&client, &group, &topic, m, |p| 200 + i64::from(p)).expect_status(200);
    }

    // b leaves: its partitions are free at once, and a ends up with all twelve.
    client
        .delete(&format!("/v1/groups/{group}/members/{}", b.member_id))
        .expect_status(204);
    b.gone = true;
    b.owned.clear();
    rounds_until(
        &client,
        &group,
        &mut [&mut a, &mut b, &mut c],
        Duration::from_secs(20),
        "a owns everything",
        |ms, state| state == GroupState::Stable && ms[0].owned.len() == 12,
    );
    let offsets = fetch_offsets(&client, &group, &format!("?topic={topic}"));
    assert_eq!(offsets, (0..12).map(|p| (p, 200 + i64::from(p))).collect());

    let description: GroupDescription = client.get(&format!("/v1/groups/{group}")).expect(200);
    assert_eq!(description.state, GroupState::Stable);
    assert_eq!(description.generation_id, a.generation_id);
    assert_eq!(description.members.len(), 1);
    assert_eq!(description.members[0].member_id, a.member_id);
    assert_eq!(partitions(&description.members[0].assignment), a.owned);

    // The group is listed.
    let mut found = false;
    let mut after = String::new();
    for _ in 0..1_000 {
        let page: GroupList = client
            .get(&format!("/v1/groups?limit=50{after}"))
            .expect(200);
        found |= page.groups.iter().any(|g| g.group_id == group);
        match page.next {
            Some(next) => after = format!("&after={next}"),
            None => break,
        }
    }
    assert!(found, "{group} is not in GET /v1/groups");

    // a leaves: the group is empty; its offsets stay.
    client
        .delete(&format!("/v1/groups/{group}/members/{}", a.member_id))
        .expect_status(204);
    let description: GroupDescription = client.get(&format!("/v1/groups/{group}")).expect(200);
    assert_eq!(description.state, GroupState::Empty);
    assert!(description.members.is_empty());
    assert_eq!(fetch_offsets(&client, &group, "").len(), 12);
}

#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn fencing_errors() {
    let client = shared().client();
    let topic = unique_topic("groups-fence-t");
    let group = unique_topic("groups-fence-g");
    client.create_topic(&topic, 4);

    // Unknown group: describe is 404, fetch finds nothing, members are unknown.
    client
        .get(&format!("/v1/groups/{group}"))
        .expect_error(404, ErrorCode::GroupIdNotFound);
    assert!(fetch_offsets(&client, &group, "").is_empty());
    client
        .post(
            &format!("/v1/groups/{group}/members/nobody/heartbeat"),
            &HeartbeatRequest { generation_id: 1 },
            &[],
        )
        .expect_error(409, ErrorCode::UnknownMemberId);
    client
        .delete(&format!("/v1/groups/{group}/members/nobody"))
        .expect_error(409, ErrorCode::UnknownMemberId);
    client
        .post(
            &format!("/v1/groups/{group}/offsets"),
            &OffsetCommitRequest {
                generation_id: 1,
                member_id: "nobody".into(),
                offsets: vec![TopicPartitionOffset {
                    topic: topic.clone(),
                    partition: 0,
                    offset: 1,
                    metadata: None,
                }],
            },
            &[],
        )
        .expect_error(409, ErrorCode::UnknownMemberId);
    // Probing left nothing behind.
    client
        .get(&format!("/v1/groups/{group}"))
        .expect_error(404, ErrorCode::GroupIdNotFound);

    // A join needs existing topics.
    client
        .post(
            &format!("/v1/groups/{group}/members"),
            &JoinGroupRequest {
                topics: vec![unique_topic("groups-missing")],
                ..Default::default()
            },
            &[],
        )
        .expect_error(404, ErrorCode::UnknownTopicOrPartition);

    let mut a = Member::join(&client, &group, &topic, "a", 10_000, None);
    assert_eq!(a.owned.len(), 4);
    let first_generation = a.generation_id;
    // A second member bumps the generation; a commit with a's old generation is stale once a
    // was told the new one.
    let mut b = Member::join(&client, &group, &topic, "b", 10_000, None);
    assert!(b.generation_id > first_generation);
    let stale = Member {
        name: "a-stale",
        member_id: a.member_id.clone(),
        generation_id: first_generation,
        owned: a.owned.clone(),
        session_timeout_ms: 0,
        last_sent: Instant::now(),
        gone: true,
    };
    a.heartbeat(&client, &group);
    assert!(a.generation_id > first_generation);
    commit(&client, &group, &topic, &stale, |_| 1)
        .expect_error(409, ErrorCode::RebalanceInProgress);
    // A generation the member was never told.
    client
        .post(
            &format!("/v1/groups/{group}/members/{}/heartbeat", a.member_id),
            &HeartbeatRequest {
                generation_id: a.generation_id + 10,
            },
            &[],
        )
        .expect_error(409, ErrorCode::IllegalGeneration);
    // An unknown member.
    let ghost = Member {
        name: "ghost",
        member_id: "member-9999999999".into(),
        ..stale
    };
    commit(&client, &group, &topic, &ghost, |_| 1).expect_error(409, ErrorCode::UnknownMemberId);
    client
        .post(
            &format!("/v1/groups/{group}/members/member-9999999999/heartbeat"),
            &HeartbeatRequest { generation_id: 1 },
            &[],
        )
        .expect_error(409, ErrorCode::UnknownMemberId);
    // A partition the member does not own (b owns nothing until a releases).
    rounds_until(
        &client,
        &group,
        &mut [&mut a, &mut b],
        Duration::from_secs(20),
        "two members balanced",
        |ms, state| state == GroupState::Stable && ms.iter().all(|m| m.owned.len() == 2),
    );
    let not_mine = *a.owned.iter().next().unwrap();
    let b_steals = Member {
        name: "b-steals",
        member_id: b.member_id.clone(),
        generation_id: b.generation_id,
        owned: [not_mine].into(),
        session_timeout_ms: 0,
        last_sent: Instant::now(),
        gone: true,
    };
    commit(&client, &group, &topic, &b_steals, |_| 1)
        .expect_error(409, ErrorCode::IllegalGeneration);
    // Nothing of the refused commits was stored.
    assert!(fetch_offsets(&client, &group, "").is_empty());
    // Malformed requests.
    client
        .get(&format!("/v1/groups/{group}/offsets?require_stable=maybe"))
        .expect_error(400, ErrorCode::InvalidRequest);
    client
        .get(&format!("/v1/groups/{group}/offsets?partitions=1"))
        .expect_error(400, ErrorCode::InvalidRequest);
    client
        .post(
            &format!("/v1/groups/{group}/members"),
            &serde_json::json!({"topics": [topic], "sesion_timeout_ms": 1000}),
            &[],
        )
        .expect_error(400, ErrorCode::InvalidRequest);
    for m in [&a, &b] {
        client
            .delete(&format!("/v1/groups/{group}/members/{}", m.member_id))
            .expect_status(204);
    }
}

#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn static_member_rejoins_without_rebalance() {
    let client = shared().client();
    let topic = unique_topic("groups-static-t");
    let group = unique_topic("groups-static-g");
    client.create_topic(&topic, 6);

    let mut a = Member::join(&client, &group, &topic, "a", 10_000, Some("instance-a"));
    let mut b = Member::join(&client, &group, &topic, "b", 10_000, Some("instance-b"));
    rounds_until(
        &client,
        &group,
        &mut [&mut a, &mut b],
        Duration::from_secs(20),
        "two static members balanced",
        |ms, state| state == GroupState::Stable && ms.iter().all(|m| m.owned.len() == 3),
    );
    let generation = a.generation_id;
    commit(&client, &group, &topic, &a, |p| 10 + i64::from(p)).expect_status(200);

    // a restarts: it joins again with its instance id and no member id. It gets a new member
    // id, the same partitions and generation; b sees no change.
    let a2 = Member::join(&client, &group, &topic, "a2", 10_000, Some("instance-a"));
    assert_ne!(a2.member_id, a.member_id);
    assert_eq!(a2.owned, a.owned);
    assert_eq!(a2.generation_id, generation);
    let answer = b.heartbeat(&client, &group);
    assert_eq!(answer.generation_id, generation);
    assert_eq!(answer.state, GroupState::Stable);
    assert_eq!(b.owned.len(), 3);
    // The old incarnation is fenced.
    client
        .post(
            &format!("/v1/groups/{group}/members/{}/heartbeat", a.member_id),
            &HeartbeatRequest {
                generation_id: a.generation_id,
            },
            &[],
        )
        .expect_error(409, ErrorCode::UnknownMemberId);
    commit(&client, &group, &topic, &a, |_| 1).expect_error(409, ErrorCode::UnknownMemberId);
    // The new one resumes from the old one's offsets and may commit.
    let query = format!("?topic={topic}");
    let offsets = fetch_offsets(&client, &group, &query);
    for p in &a2.owned {
        assert_eq!(offsets.get(p), Some(&(10 + i64::from(*p))));
    }
    commit(&client, &group, &topic, &a2, |p| 20 + i64::from(p)).expect_status(200);
    let description: GroupDescription = client.get(&format!("/v1/groups/{group}")).expect(200);
    assert_eq!(description.generation_id, generation);
    let ids: BTreeSet<String> = description
        .members
        .iter()
        .map(|m| m.member_id.clone())
        .collect();
    assert_eq!(ids, [a2.member_id.clone(), b.member_id.clone()].into());
}

/// `require_stable`: while a transaction holds offsets of the group, a fetch that asks for
/// stable offsets answers `UNSTABLE_OFFSET_COMMIT` (503); plain fetches see the last committed
/// offsets; the commit makes the transactional offsets visible.
#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn require_stable_waits_for_transactional_offsets() {
    let client = shared().client();
    let topic = unique_topic("groups-stable-t");
    let group = unique_topic("groups-stable-g");
    let txn_id = unique_topic("groups-stable-txn");
    client.create_topic(&topic, 2);
    let a = Member::join(&client, &group, &topic, "a", 10_000, None);
    assert_eq!(a.owned.len(), 2);
    commit(&client, &group, &topic, &a, |_| 5).expect_status(200);

    let producer: serde_json::Value = client
        .post(
            "/v1/producers",
            &serde_json::json!({"transactional_id": txn_id}),
            &[],
        )
        .expect(200);
    let (producer_id, producer_epoch) = (
        producer["producer_id"].as_i64().unwrap(),
        producer["producer_epoch"].as_i64().unwrap(),
    );
    client
        .post(
            &format!("/v1/transactions/{txn_id}/offsets"),
            &serde_json::json!({
                "producer_id": producer_id, "producer_epoch": producer_epoch,
                "group_id": group, "generation_id": a.generation_id, "member_id": a.member_id,
                "offsets": [{"topic": topic, "partition": 0, "offset": 42}],
            }),
            &[],
        )
        .expect_status(200);

    client
        .get(&format!("/v1/groups/{group}/offsets?require_stable=true"))
        .expect_error(503, ErrorCode::UnstableOffsetCommit);
    // Only partition 1: nothing pending there.
    let stable = fetch_offsets(
        &client,
        &group,
        &format!("?require_stable=true&topic={topic}&partitions=1"),
    );
    assert_eq!(stable, [(1, 5)].into());
    // Without require_stable the pending offset is invisible.
    assert_eq!(fetch_offsets(&client, &group, ""), [(0, 5), (1, 5)].into());

    client
        .post(
            &format!("/v1/transactions/{txn_id}/commit"),
            &serde_json::json!({"producer_id": producer_id, "producer_epoch": producer_epoch}),
            &[],
        )
        .expect_status(200);
    // The marker reaches the group during the commit or soon after (an alarm re-drives it).
    let start = Instant::now();
    loop {
        let reply = client.get(&format!("/v1/groups/{group}/offsets?require_stable=true"));
        if reply.status == 200 {
            let answer: OffsetFetchResponse = reply.decode();
            let offsets: BTreeMap<i32, i64> = answer
                .offsets
                .into_iter()
                .map(|o| (o.partition, o.offset))
                .collect();
            assert_eq!(offsets, [(0, 42), (1, 5)].into());
            break;
        }
        reply.expect_error(503, ErrorCode::UnstableOffsetCommit);
        assert!(start.elapsed() < Duration::from_secs(20), "still unstable");
        std::thread::sleep(Duration::from_millis(100));
    }
}
