//! A state-machine property test of membership: random joins, changes of subscription,
//! heartbeats, lost answers, delayed old heartbeats, commits, crashes (found by session
//! timeouts), leaves, restarts of the group object and topic growth.
//!
//! Each consumer process is modelled as a client would behave: it owns exactly the partitions
//! of the last answer it received, echoes that answer's generation, drops everything when it
//! crashes or leaves, and stops consuming (self-fences) once `session_timeout_ms` passed since
//! its last successful heartbeat. After every step the test checks that
//!
//! - no partition is owned by two live processes (what each was told and acknowledged), and
//! - whatever a live process believes it owns, the group records that member as its owner (so
//!   a commit for it is accepted);
//!
//! and at the end, after a few quiet heartbeat rounds, that every partition of the subscribed
//! topics has exactly one owner and the group is Stable.

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use kafdo_group::{GroupCoordinator, GroupError};
use kafdo_sql::Sqlite;
use kafdo_types::group::{
    Assignor, GroupState, HeartbeatRequest, JoinGroupRequest, OffsetCommitRequest,
    TopicPartitionCount,
};
use kafdo_types::rpc::TopicPartitionOffset;
use kafdo_types::txn::TopicPartition;
use proptest::prelude::*;

const SESSION_TIMEOUT_MS: i64 = 10_000;
const PROCESSES: usize = 6;

#[derive(Clone, Debug)]
enum Op {
    Join {
        p: usize,
        topics: u8,
    },
    Resubscribe {
        p: usize,
        topics: u8,
    },
    Heartbeat {
        p: usize,
    },
    HeartbeatLost {
        p: usize,
    },
    /// A delayed copy of an old heartbeat (an older generation) reaches the group; the client
    /// has moved on and ignores the answer.
    HeartbeatStale {
        p: usize,
    },
    Commit {
        p: usize,
    },
    Crash {
        p: usize,
    },
    Leave {
        p: usize,
    },
    Advance {
        ms: i64,
    },
    Restart,
    Grow,
}

fn op() -> impl Strategy<Value = Op> {
    let p = 0..PROCESSES;
    prop_oneof![
        3 => (p.clone(), 1..4u8).prop_map(|(p, topics)| Op::Join { p, topics }),
        1 => (p.clone(), 1..4u8).prop_map(|(p, topics)| Op::Resubscribe { p, topics }),
        8 => p.clone().prop_map(|p| Op::Heartbeat { p }),
        2 => p.clone().prop_map(|p| Op::HeartbeatLost { p }),
        1 => p.clone().prop_map(|p| Op::HeartbeatStale { p }),
        2 => p.clone().prop_map(|p| Op::Commit { p }),
        1 => p.clone().prop_map(|p| Op::Crash { p }),
        1 => p.clone().prop_map(|p| Op::Leave { p }),
        2 => (100..6_000i64).prop_map(|ms| Op::Advance { ms }),
        1 => Just(Op::Restart),
        1 => Just(Op::Grow),
    ]
}

/// A live consumer process.
#[derive(Clone, Debug)]
struct Process {
    member_id: String,
    generation_id: i32,
    owned: BTreeSet<TopicPartition>,
    last_ok_ms: i64,
}

struct World {
    sql: Rc<Sqlite>,
    group: GroupCoordinator<Rc<Sqlite>>,
    assignor: Assignor,
    now_ms: i64,
    counts: BTreeMap<String, i32>,
    processes: Vec<Option<Process>>,
}

impl World {
    fn new(assignor: Assignor) -> Self {
        let sql = Rc::new(Sqlite::memory());
        World {
            group: GroupCoordinator::open(sql.clone()).unwrap(),
            sql,
            assignor,
            now_ms: 0,
            counts: [("a".to_string(), 4), ("b".to_string(), 3)].into(),
            processes: vec![None; PROCESSES],
        }
    }

    fn counts(&self) -> Vec<TopicPartitionCount> {
        self.counts
            .iter()
            .map(|(t, n)| TopicPartitionCount {
                topic: t.clone(),
                partitions: *n,
            })
            .collect()
    }

    /// Even processes are static members (instance `host-p`): they rejoin after a crash by
    /// taking over their old place.
    fn instance(p: usize) -> Option<String> {
        p.is_multiple_of(2).then(|| format!("host-{p}"))
    }

    fn step(&mut self, op: &Op) {
        match *op {
            Op::Join { p, topics } | Op::Resubscribe { p, topics } => {
                let rejoin = matches!(op, Op::Resubscribe { .. });
                if self.processes[p].is_some() != rejoin {
                    return;
                }
                let topics = match topics {
                    1 => vec!["a".to_string()],
                    2 => vec!["b".to_string()],
                    _ => vec!["a".to_string(), "b".to_string()],
                };
                let req = JoinGroupRequest {
                    member_id: self.processes[p].as_ref().map(|p| p.member_id.clone()),
                    group_instance_id: Self::instance(p),
                    topics,
                    session_timeout_ms: Some(SESSION_TIMEOUT_MS),
                    assignor: Some(self.assignor),
                };
                let r = match self.group.join(&req, &self.counts(), self.now_ms) {
                    Ok(r) => r,
                    Err(GroupError::UnknownMemberId(_)) if rejoin => {
                        self.processes[p] = None;
                        return;
                    }
                    Err(e) => panic!("join failed: {e}"),
                };
                self.processes[p] = Some(Process {
                    member_id: r.member_id,
                    generation_id: r.generation_id,
                    owned: r.assignment.into_iter().collect(),
                    last_ok_ms: self.now_ms,
                });
            }
            Op::Heartbeat { p } | Op::HeartbeatLost { p } | Op::HeartbeatStale { p } => {
                let Some(process) = self.processes[p].as_mut() else {
                    return;
                };
                let req = HeartbeatRequest {
                    generation_id: if matches!(op, Op::HeartbeatStale { .. }) {
                        process.generation_id / 2
                    } else {
                        process.generation_id
                    },
                };
                let counts: Vec<TopicPartitionCount> = self
                    .counts
                    .iter()
                    .map(|(t, n)| TopicPartitionCount {
                        topic: t.clone(),
                        partitions: *n,
                    })
                    .collect();
                match self
                    .group
                    .heartbeat(&process.member_id, &req, &counts, self.now_ms)
                {
                    Ok(r) => {
                        if matches!(op, Op::Heartbeat { .. }) {
                            process.generation_id = r.generation_id;
                            process.owned = r.assignment.into_iter().collect();
                            process.last_ok_ms = self.now_ms;
                        }
                    }
                    Err(GroupError::UnknownMemberId(_)) => {
                        // Removed (its session expired): a client drops everything and
                        // rejoins later.
                        self.processes[p] = None;
                    }
                    Err(e) => panic!("heartbeat failed: {e}"),
                }
            }
            Op::Commit { p } => {
                let Some(process) = self.processes[p].as_ref() else {
                    return;
                };
                if process.owned.is_empty() {
                    return;
                }
                let req = OffsetCommitRequest {
                    generation_id: process.generation_id,
                    member_id: process.member_id.clone(),
                    offsets: process
                        .owned
                        .iter()
                        .map(|tp| TopicPartitionOffset {
                            topic: tp.topic.clone(),
                            partition: tp.partition,
                            offset: self.now_ms,
                            metadata: None,
                        })
                        .collect(),
                };
                match self.group.commit_offsets(&req, self.now_ms) {
                    // A lost answer moved the member on without it knowing.
                    Ok(()) | Err(GroupError::RebalanceInProgress { .. }) => {}
                    Err(e) => panic!("a member's commit of what it owns failed: {e}"),
                }
            }
            Op::Crash { p } => self.processes[p] = None,
            Op::Leave { p } => {
                if let Some(process) = self.processes[p].take() {
                    match self.group.leave(&process.member_id, self.now_ms) {
                        Ok(()) | Err(GroupError::UnknownMemberId(_)) => {}
                        Err(e) => panic!("leave failed: {e}"),
                    }
                }
            }
            Op::Advance { ms } => {
                self.now_ms += ms;
                // The client rule: no successful heartbeat for a session timeout, stop.
                for slot in &mut self.processes {
                    if slot
                        .as_ref()
                        .is_some_and(|p| p.last_ok_ms + SESSION_TIMEOUT_MS <= self.now_ms)
                    {
                        *slot = None;
                    }
                }
                if let Some(alarm) = self.group.next_alarm_ms().unwrap() {
                    if alarm <= self.now_ms {
                        self.group.on_alarm(self.now_ms).unwrap();
                    }
                }
            }
            Op::Restart => self.group = GroupCoordinator::open(self.sql.clone()).unwrap(),
            Op::Grow => {
                let n = self.counts.get_mut("b").unwrap();
                *n = (*n + 1).min(8);
            }
        }
    }

    fn check(&mut self) {
        let mut seen: BTreeMap<&TopicPartition, &str> = BTreeMap::new();
        for process in self.processes.iter().flatten() {
            for tp in &process.owned {
                if let Some(other) = seen.insert(tp, &process.member_id) {
                    panic!("{tp:?} owned by {other} and {} at once", process.member_id);
                }
            }
        }
        let description = self.group.describe(self.now_ms).unwrap();
        for process in self.processes.iter().flatten() {
            let member = description
                .members
                .iter()
                .find(|m| m.member_id == process.member_id)
                .unwrap_or_else(|| panic!("live process {} not a member", process.member_id));
            let recorded: BTreeSet<&TopicPartition> =
                member.assignment.iter().chain(&member.revoking).collect();
            for tp in &process.owned {
                assert!(
                    recorded.contains(tp),
                    "{} believes it owns {tp:?}, the group disagrees",
                    process.member_id
                );
            }
        }
    }

    /// Quiet rounds: every live process heartbeats; the group must settle with every subscribed partition owned exactly once.
    fn settle(&mut self) {
        // First past every session timeout, so members whose process crashed are removed,
        // then a few quick rounds for the releases and grants to go through.
        for ms in [3_000, 3_000, 3_000, 3_000, 100, 100, 100, 100] {
            self.step(&Op::Advance { ms });
            self.check();
            for p in 0..PROCESSES {
                self.step(&Op::Heartbeat { p });
                self.check();
            }
        }
        let description = self.group.describe(self.now_ms).unwrap();
        let live: Vec<&Process> = self.processes.iter().flatten().collect();
        if live.is_empty() {
            assert_eq!(description.state, GroupState::Empty);
            return;
        }
        assert_eq!(description.state, GroupState::Stable, "{description:?}");
        let subscribed: BTreeSet<&String> =
            description.members.iter().flat_map(|m| &m.topics).collect();
        let mut owners: BTreeMap<TopicPartition, usize> = BTreeMap::new();
        for process in &live {
            for tp in &process.owned {
                *owners.entry(tp.clone()).or_default() += 1;
            }
        }
        for topic in subscribed {
            for partition in 0..self.counts[topic] {
                let tp = TopicPartition {
                    topic: topic.clone(),
                    partition,
                };
                assert_eq!(owners.get(&tp), Some(&1), "{tp:?} after settling");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn no_partition_ever_has_two_owners(
        assignor in prop_oneof![
            Just(Assignor::Range),
            Just(Assignor::RoundRobin),
            Just(Assignor::Sticky)
        ],
        ops in proptest::collection::vec(op(), 1..60),
    ) {
        let mut world = World::new(assignor);
        for op in &ops {
            world.step(op);
            world.check();
        }
        world.settle();
    }
}
