//! The assignors: pure functions from (members, subscriptions, partition counts, previous
//! assignment) to the target assignment, one member per partition.
//!
//! # The contract every assignor keeps
//!
//! Every partition of every topic that at least one member subscribes to goes to exactly one
//! member subscribed to its topic; partitions of topics nobody subscribes to go to nobody. The
//! result depends only on the inputs (members in the order given, `BTreeMap`s everywhere), so
//! the same group state always yields the same assignment, on any replica and in the simulator.
//!
//! # Range
//!
//! Kafka's `RangeAssignor`: per topic, the subscribed members in order each get a contiguous
//! range; the first `partitions % members` get one more. Co-partitioned topics line up (partition
//! `p` of every topic goes to the same member), which joins need, but a group with many topics
//! of few partitions piles them onto the first members.
//!
//! # Round-robin
//!
//! Kafka's `RoundRobinAssignor`: every partition, in (topic, partition) order, goes to the next
//! member in circular order that subscribes to its topic. Balanced across topics.
//!
//! # Sticky
//!
//! Balanced like round-robin, but starting from the previous assignment so that a membership
//! change moves as few partitions as possible (Kafka's `StickyAssignor` / KIP-848's uniform
//! assignor). In three steps:
//!
//! 1. **Keep**: every partition stays with its previous member if that member is still here and
//!    still subscribes to the topic.
//! 2. **Fill**: each partition left over goes to the least loaded member that subscribes to its
//!    topic (partitions with the fewest candidates first, so constrained ones are placed while
//!    there is still room).
//! 3. **Balance**: while some member holds a partition that a member with at least two fewer
//!    partitions could take, move it there, always from the most loaded member. Each move
//!    lowers the sum of squared loads, so this ends; it ends balanced as far as subscriptions
//!    allow.
//!
//! Why the moves are minimal when every member subscribes to the same topics (`n` partitions,
//! `m` members, so each member ends with `n / m` or `n / m + 1`, and `n % m` members get the
//! extra one): a member keeping `r` partitions must give up at least `r` minus its final count.
//! The fill step never raises a member above `n / m + 1`, since it always feeds the least loaded
//! one, and the balance step only takes from the most loaded member, so the `n % m` members that
//! end with the extra partition are the ones that kept the most. The number of partitions taken
//! from surviving members is then exactly the lower bound
//! `sum(max(0, kept_i - final_i))` with the larger quotas given to the largest `kept_i`; the
//! property test `sticky_moves_are_minimal` checks this on random inputs.

use std::collections::{BTreeMap, BTreeSet};

use kafdo_types::group::Assignor;
use kafdo_types::txn::TopicPartition;

/// One member as the assignors see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssignMember {
    /// The member id.
    pub member_id: String,
    /// The topics it subscribes to.
    pub topics: BTreeSet<String>,
}

/// A target assignment: each assigned partition and its member.
pub type Assignment = BTreeMap<TopicPartition, String>;

/// Computes the target assignment. `members` is in the group's order (the order range and
/// round-robin deal in); `partition_counts` holds each subscribed topic's partition count
/// (topics absent or with 0 partitions have none); `previous` is the last target assignment
/// (only the sticky assignor reads it).
pub fn assign(
    assignor: Assignor,
    members: &[AssignMember],
    partition_counts: &BTreeMap<String, i32>,
    previous: &Assignment,
) -> Assignment {
    let out = match assignor {
        Assignor::Range => range(members, partition_counts),
        Assignor::RoundRobin => round_robin(members, partition_counts),
        Assignor::Sticky => sticky(members, partition_counts, previous),
    };
    debug_assert_eq!(
        out.keys().cloned().collect::<Vec<_>>(),
        subscribed_partitions(members, partition_counts),
        "an assignor must place every subscribed partition exactly once"
    );
    out
}

/// Every partition of every topic some member subscribes to, in (topic, partition) order.
pub fn subscribed_partitions(
    members: &[AssignMember],
    partition_counts: &BTreeMap<String, i32>,
) -> Vec<TopicPartition> {
    let topics: BTreeSet<&String> = members.iter().flat_map(|m| &m.topics).collect();
    topics
        .into_iter()
        .flat_map(|topic| {
            let count = partition_counts.get(topic).copied().unwrap_or(0).max(0);
            (0..count).map(move |partition| TopicPartition {
                topic: topic.clone(),
                partition,
            })
        })
        .collect()
}

fn range(members: &[AssignMember], partition_counts: &BTreeMap<String, i32>) -> Assignment {
    let mut out = Assignment::new();
    let topics: BTreeSet<&String> = members.iter().flat_map(|m| &m.topics).collect();
    for topic in topics {
        let count = partition_counts.get(topic).copied().unwrap_or(0).max(0) as usize;
        let subscribers: Vec<&AssignMember> = members
            .iter()
            .filter(|m| m.topics.contains(topic))
            .collect();
        let (quota, extra) = (count / subscribers.len(), count % subscribers.len());
        let mut next = 0;
        for (i, member) in subscribers.iter().enumerate() {
            let take = quota + usize::from(i < extra);
            for partition in next..next + take {
                let tp = TopicPartition {
                    topic: topic.clone(),
                    partition: partition as i32,
                };
                out.insert(tp, member.member_id.clone());
            }
            next += take;
        }
        assert_eq!(next, count);
    }
    out
}

fn round_robin(members: &[AssignMember], partition_counts: &BTreeMap<String, i32>) -> Assignment {
    let mut out = Assignment::new();
    let mut cursor = 0;
    for tp in subscribed_partitions(members, partition_counts) {
        // Some member subscribes to the topic (that is why the partition is listed), so this
        // search ends within one turn of the circle.
        while !members[cursor % members.len()].topics.contains(&tp.topic) {
            cursor += 1;
        }
        out.insert(tp, members[cursor % members.len()].member_id.clone());
        cursor += 1;
    }
    out
}

fn sticky(
    members: &[AssignMember],
    partition_counts: &BTreeMap<String, i32>,
    previous: &Assignment,
) -> Assignment {
    let index: BTreeMap<&str, usize> = members
        .iter()
        .enumerate()
        .map(|(i, m)| (m.member_id.as_str(), i))
        .collect();
    let partitions = subscribed_partitions(members, partition_counts);
    // Candidates per topic: the indexes of the members subscribed to it.
    let mut candidates: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for tp in &partitions {
        candidates.entry(tp.topic.as_str()).or_insert_with(|| {
            (0..members.len())
                .filter(|&i| members[i].topics.contains(&tp.topic))
                .collect()
        });
    }
    let mut owner: BTreeMap<&TopicPartition, usize> = BTreeMap::new();
    let mut held: Vec<BTreeSet<&TopicPartition>> = vec![BTreeSet::new(); members.len()];

    // 1. Keep.
    let mut leftover = Vec::new();
    for tp in &partitions {
        let kept = previous
            .get(tp)
            .and_then(|m| index.get(m.as_str()).copied())
            .filter(|&i| members[i].topics.contains(&tp.topic));
        match kept {
            Some(i) => {
                owner.insert(tp, i);
                held[i].insert(tp);
            }
            None => leftover.push(tp),
        }
    }

    // 2. Fill: the most constrained partitions first, each to its least loaded candidate.
    leftover.sort_by_key(|tp| (candidates[tp.topic.as_str()].len(), *tp));
    for tp in leftover {
        let i = *candidates[tp.topic.as_str()]
            .iter()
            .min_by_key(|&&i| (held[i].len(), i))
            .expect("a listed partition has a subscriber");
        owner.insert(tp, i);
        held[i].insert(tp);
    }

    // 3. Balance: move from the most loaded member to a candidate with two or more fewer.
    loop {
        let mut order: Vec<usize> = (0..members.len()).collect();
        order.sort_by_key(|&i| (std::cmp::Reverse(held[i].len()), i));
        // No candidate can have fewer than the least loaded member: once `from` is within one
        // of it, so is every member after it in the order, and the assignment is final.
        let min_load = held.iter().map(BTreeSet::len).min().unwrap_or(0);
        let mut moved = false;
        'search: for &from in &order {
            if held[from].len() <= min_load + 1 {
                break;
            }
            for &tp in &held[from] {
                let to = candidates[tp.topic.as_str()]
                    .iter()
                    .copied()
                    .filter(|&j| held[j].len() + 1 < held[from].len())
                    .min_by_key(|&j| (held[j].len(), j));
                if let Some(to) = to {
                    held[from].remove(tp);
                    held[to].insert(tp);
                    owner.insert(tp, to);
                    moved = true;
                    break 'search;
                }
            }
        }
        if !moved {
            break;
        }
    }

    owner
        .into_iter()
        .map(|(tp, i)| (tp.clone(), members[i].member_id.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn member(id: &str, topics: &[&str]) -> AssignMember {
        AssignMember {
            member_id: id.into(),
            topics: topics.iter().map(|t| t.to_string()).collect(),
        }
    }

    fn tp(topic: &str, partition: i32) -> TopicPartition {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }

    fn counts(list: &[(&str, i32)]) -> BTreeMap<String, i32> {
        list.iter().map(|(t, n)| (t.to_string(), *n)).collect()
    }

    fn loads(a: &Assignment) -> BTreeMap<&str, usize> {
        let mut out = BTreeMap::new();
        for m in a.values() {
            *out.entry(m.as_str()).or_default() += 1;
        }
        out
    }

    #[test]
    fn range_gives_contiguous_ranges_per_topic() {
        let members = [member("a", &["t", "u"]), member("b", &["t", "u"])];
        let out = assign(
            Assignor::Range,
            &members,
            &counts(&[("t", 3), ("u", 2)]),
            &Assignment::new(),
        );
        assert_eq!(out[&tp("t", 0)], "a");
        assert_eq!(out[&tp("t", 1)], "a");
        assert_eq!(out[&tp("t", 2)], "b");
        assert_eq!(out[&tp("u", 0)], "a");
        assert_eq!(out[&tp("u", 1)], "b");
    }

    #[test]
    fn round_robin_skips_members_not_subscribed() {
        let members = [member("a", &["t"]), member("b", &["t", "u"])];
        let out = assign(
            Assignor::RoundRobin,
            &members,
            &counts(&[("t", 2), ("u", 2)]),
            &Assignment::new(),
        );
        assert_eq!(out[&tp("t", 0)], "a");
        assert_eq!(out[&tp("t", 1)], "b");
        assert_eq!(out[&tp("u", 0)], "b");
        assert_eq!(out[&tp("u", 1)], "b");
    }

    #[test]
    fn sticky_keeps_survivors_and_spreads_the_dead_members_partitions() {
        let three = [
            member("a", &["t"]),
            member("b", &["t"]),
            member("c", &["t"]),
        ];
        let c = counts(&[("t", 12)]);
        let first = assign(Assignor::Sticky, &three, &c, &Assignment::new());
        assert!(loads(&first).values().all(|&n| n == 4));
        let two = [member("a", &["t"]), member("c", &["t"])];
        let second = assign(Assignor::Sticky, &two, &c, &first);
        assert!(loads(&second).values().all(|&n| n == 6));
        for (tp, m) in &first {
            if m != "b" {
                assert_eq!(&second[tp], m, "{tp:?} moved between survivors");
            }
        }
    }

    #[test]
    fn no_members_no_assignment() {
        for a in [Assignor::Range, Assignor::RoundRobin, Assignor::Sticky] {
            assert!(assign(a, &[], &counts(&[("t", 3)]), &Assignment::new()).is_empty());
        }
    }

    /// Random members (ids `m0..`), each subscribed to a random non-empty subset of topics
    /// `t0..t3` with random partition counts.
    fn group_strategy() -> impl Strategy<Value = (Vec<AssignMember>, BTreeMap<String, i32>)> {
        (
            proptest::collection::vec(proptest::collection::btree_set(0..4usize, 1..=4), 0..8),
            proptest::collection::vec(0..20i32, 4),
        )
            .prop_map(|(subs, parts)| {
                let members = subs
                    .iter()
                    .enumerate()
                    .map(|(i, s)| AssignMember {
                        member_id: format!("m{i}"),
                        topics: s.iter().map(|t| format!("t{t}")).collect(),
                    })
                    .collect();
                let counts = parts
                    .iter()
                    .enumerate()
                    .map(|(i, n)| (format!("t{i}"), *n))
                    .collect();
                (members, counts)
            })
    }

    fn check_covers_exactly_once(
        members: &[AssignMember],
        counts: &BTreeMap<String, i32>,
        out: &Assignment,
    ) {
        let expected = subscribed_partitions(members, counts);
        assert_eq!(out.keys().cloned().collect::<Vec<_>>(), expected);
        for (tp, m) in out {
            let member = members.iter().find(|x| &x.member_id == m).unwrap();
            assert!(member.topics.contains(&tp.topic), "{m} got {tp:?}");
        }
    }

    /// The lower bound on partitions taken from surviving members when every member subscribes
    /// to the same topics: the largest quotas go to the members that kept the most.
    fn minimal_moves(kept: &[usize], total: usize) -> usize {
        let m = kept.len();
        let (quota, extra) = (total / m, total % m);
        let mut sorted = kept.to_vec();
        sorted.sort_unstable_by(|a, b| b.cmp(a));
        sorted
            .iter()
            .enumerate()
            .map(|(i, &k)| k.saturating_sub(quota + usize::from(i < extra)))
            .sum()
    }

    proptest! {
        #[test]
        fn every_assignor_covers_every_partition_exactly_once(
            (members, counts) in group_strategy(),
            (prev_members, prev_counts) in group_strategy(),
        ) {
            for a in [Assignor::Range, Assignor::RoundRobin, Assignor::Sticky] {
                // A previous assignment from another random group exercises stale entries:
                // members gone, topics unsubscribed, partitions beyond the current count.
                let previous = assign(a, &prev_members, &prev_counts, &Assignment::new());
                let out = assign(a, &members, &counts, &previous);
                check_covers_exactly_once(&members, &counts, &out);
            }
        }

        #[test]
        fn sticky_is_stable_when_nothing_changed(
            (members, counts) in group_strategy(),
            (prev_members, prev_counts) in group_strategy(),
        ) {
            // Whatever the sticky assignor produced, recomputing it with the same members and
            // counts moves nothing, so refreshing partition counts never causes a rebalance.
            let previous = assign(Assignor::Sticky, &prev_members, &prev_counts, &Assignment::new());
            let once = assign(Assignor::Sticky, &members, &counts, &previous);
            let twice = assign(Assignor::Sticky, &members, &counts, &once);
            prop_assert_eq!(once, twice);
        }

        #[test]
        fn balanced_assignors_are_balanced_for_equal_subscriptions(
            n_members in 1..10usize,
            partitions in proptest::collection::vec(0..30i32, 1..4),
        ) {
            let topics: Vec<String> = (0..partitions.len()).map(|i| format!("t{i}")).collect();
            let members: Vec<AssignMember> = (0..n_members)
                .map(|i| AssignMember {
                    member_id: format!("m{i}"),
                    topics: topics.iter().cloned().collect(),
                })
                .collect();
            let counts: BTreeMap<String, i32> =
                topics.iter().cloned().zip(partitions.iter().copied()).collect();
            for a in [Assignor::RoundRobin, Assignor::Sticky] {
                let out = assign(a, &members, &counts, &Assignment::new());
                let l = loads(&out);
                let max = l.values().copied().max().unwrap_or(0);
                let min = if l.len() < n_members { 0 } else { l.values().copied().min().unwrap_or(0) };
                prop_assert!(max - min <= 1, "{a:?} unbalanced: {l:?}");
            }
        }

        #[test]
        fn sticky_moves_are_minimal(
            before in 1..10usize,
            partitions in proptest::collection::vec(0..30i32, 1..4),
            leave in proptest::collection::btree_set(0..10usize, 0..5),
            join in 0..5usize,
        ) {
            let topics: Vec<String> = (0..partitions.len()).map(|i| format!("t{i}")).collect();
            let counts: BTreeMap<String, i32> =
                topics.iter().cloned().zip(partitions.iter().copied()).collect();
            let all = |ids: &[usize]| -> Vec<AssignMember> {
                ids.iter()
                    .map(|i| AssignMember {
                        member_id: format!("m{i:02}"),
                        topics: topics.iter().cloned().collect(),
                    })
                    .collect()
            };
            let old_ids: Vec<usize> = (0..before).collect();
            let old = assign(Assignor::Sticky, &all(&old_ids), &counts, &Assignment::new());
            // Survivors, then newcomers with fresh ids.
            let mut new_ids: Vec<usize> =
                old_ids.iter().copied().filter(|i| !leave.contains(i)).collect();
            new_ids.extend(before..before + join);
            prop_assume!(!new_ids.is_empty());
            let members = all(&new_ids);
            let new = assign(Assignor::Sticky, &members, &counts, &old);
            check_covers_exactly_once(&members, &counts, &new);

            let survivors: BTreeSet<String> =
                members.iter().map(|m| m.member_id.clone()).collect();
            let kept: Vec<usize> = members
                .iter()
                .map(|m| old.values().filter(|x| **x == m.member_id).count())
                .collect();
            let moved_from_survivors = old
                .iter()
                .filter(|(tp, m)| survivors.contains(*m) && &new[*tp] != *m)
                .count();
            prop_assert_eq!(moved_from_survivors, minimal_moves(&kept, new.len()));
            let l = loads(&new);
            let max = l.values().copied().max().unwrap_or(0);
            let min = if l.len() < members.len() { 0 } else { l.values().copied().min().unwrap_or(0) };
            prop_assert!(max - min <= 1, "unbalanced: {l:?}");
        }
    }
}
