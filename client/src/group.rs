//! Consumer groups: [`GroupConsumer`] and the `/v1/groups` calls.
//!
//! # The protocol (see `kafdo_types::group` and `design/group.md`)
//!
//! The group assigns partitions on the server. A member joins (`POST /v1/groups/{g}/members`)
//! and gets its member id, the group's generation and the partitions it owns now. It then
//! heartbeats (`POST .../members/{m}/heartbeat`) well within its session timeout, echoing the
//! `generation_id` of the last answer it has **applied**; each answer carries the member's
//! current assignment. Partitions move incrementally: a member first *releases* a partition
//! (the answer leaves it out; the member stops reading it, commits its offset, and says so by
//! echoing that answer's generation), and only then is it given to another member.
//!
//! # How the SDK does it
//!
//! A background task (spawned through the transport) heartbeats every `heartbeat_interval_ms`
//! with the generation the consumer has applied, and keeps the newest answer. The consumer
//! applies that answer at its next [`GroupConsumer::poll`], between two polls, where no record
//! of a released partition is in flight in the SDK: it commits the released partitions'
//! positions (with auto-commit), calls the [`RebalanceListener`], reassigns, starts new
//! partitions at their committed offsets (`require_stable`, so a pending transactional commit
//! is waited for), and wakes the heartbeat task so the release is acknowledged at once. So a
//! slow poll loop delays rebalances but never loses the session, and a partition is never read
//! by two members of one generation.
//!
//! If the group forgets the member (`UNKNOWN_MEMBER_ID`: its session expired) or fences its
//! generation (`ILLEGAL_GENERATION`), the next poll reports the partitions as lost
//! (`on_partitions_lost`: no commit, another member may own them already) and joins again.
//!
//! Auto-commit (on by default, as in Kafka) commits the positions at poll time at most once per
//! heartbeat interval, before partitions are released, and on close. A consumer that commits
//! inside transactions (the read-process-write processor) turns it off.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::select;
use kafdo_types::group::{
    Assignor, GroupDescription, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest,
    JoinGroupResponse, OffsetCommitRequest, OffsetFetchResponse, MAX_OFFSETS_PER_COMMIT,
};
use kafdo_types::rpc::TopicPartitionOffset;
use kafdo_types::txn::TopicPartition;
use kafdo_types::ErrorCode;
use serde::de::IgnoredAny;
use tokio::sync::Notify;

use crate::client::{Call, Client};
use crate::consumer::{Consumer, ConsumerConfig, ConsumerRecord};
use crate::error::Error;
use crate::retry::Safety;
use crate::transport::{encode_path_segment, Method};
use crate::txn::GroupMetadata;

fn group_path(group_id: &str, rest: &str) -> String {
    format!("/v1/groups/{}{rest}", encode_path_segment(group_id))
}

impl Client {
    /// `POST /v1/groups/{g}/members`: joins (or, with a `member_id`, rejoins) a group.
    pub async fn join_group(
        &self,
        group_id: &str,
        request: &JoinGroupRequest,
    ) -> Result<JoinGroupResponse, Error> {
        // A retried first join could leave a second member behind until its session times
        // out; a rejoin names its member and is harmless to repeat.
        let safety = if request.member_id.is_some() || request.group_instance_id.is_some() {
            Safety::Idempotent
        } else {
            Safety::NotIdempotent
        };
        let mut call = Call::new(Method::Post, group_path(group_id, "/members"), safety);
        call.body = Some(self.encode(request));
        self.call(call).await
    }

    /// `POST /v1/groups/{g}/members/{m}/heartbeat`.
    pub async fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        generation_id: i32,
    ) -> Result<HeartbeatResponse, Error> {
        let mut call = Call::new(
            Method::Post,
            group_path(
                group_id,
                &format!("/members/{}/heartbeat", encode_path_segment(member_id)),
            ),
            Safety::Idempotent,
        );
        call.body = Some(self.encode(&HeartbeatRequest { generation_id }));
        self.call(call).await
    }

    /// `DELETE /v1/groups/{g}/members/{m}`: leaves the group; its partitions are released.
    pub async fn leave_group(&self, group_id: &str, member_id: &str) -> Result<(), Error> {
        self.call(Call::new(
            Method::Delete,
            group_path(
                group_id,
                &format!("/members/{}", encode_path_segment(member_id)),
            ),
            Safety::Idempotent,
        ))
        .await
    }

    /// `POST /v1/groups/{g}/offsets`: commits offsets (the next offsets to consume).
    pub async fn commit_offsets(
        &self,
        group_id: &str,
        request: &OffsetCommitRequest,
    ) -> Result<(), Error> {
        let mut call = Call::new(
            Method::Post,
            group_path(group_id, "/offsets"),
            Safety::Idempotent,
        );
        call.body = Some(self.encode(request));
        let _: IgnoredAny = self.call(call).await?;
        Ok(())
    }

    /// `GET /v1/groups/{g}/offsets`: committed offsets, optionally of one topic's partitions.
    /// With `require_stable`, waits (retrying `UNSTABLE_OFFSET_COMMIT`) while a transaction
    /// that commits offsets of these partitions is pending.
    pub async fn fetch_offsets(
        &self,
        group_id: &str,
        topic: Option<&str>,
        partitions: Option<&[i32]>,
        require_stable: bool,
    ) -> Result<Vec<TopicPartitionOffset>, Error> {
        let mut call = Call::new(
            Method::Get,
            group_path(group_id, "/offsets"),
            Safety::Idempotent,
        );
        if require_stable {
            call.query.push(("require_stable", "true".into()));
        }
        if let Some(topic) = topic {
            call.query.push(("topic", topic.to_string()));
        }
        if let Some(partitions) = partitions {
            let list: Vec<String> = partitions.iter().map(i32::to_string).collect();
            call.query.push(("partitions", list.join(",")));
        }
        let answer: OffsetFetchResponse = self.call(call).await?;
        Ok(answer.offsets)
    }

    /// `GET /v1/groups`, every page: the ids of every group ever used, in byte order.
    pub async fn list_groups(&self) -> Result<Vec<String>, Error> {
        let mut ids = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut call = Call::new(Method::Get, "/v1/groups".into(), Safety::Idempotent);
            if let Some(after) = after.take() {
                call.query.push(("after", after));
            }
            let page: kafdo_types::group_list::GroupList = self.call(call).await?;
            ids.extend(page.groups.into_iter().map(|g| g.group_id));
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(ids),
            }
        }
    }

    /// `GET /v1/groups/{g}`: state, generation, members and their partitions.
    pub async fn describe_group(&self, group_id: &str) -> Result<GroupDescription, Error> {
        self.call(Call::new(
            Method::Get,
            group_path(group_id, ""),
            Safety::Idempotent,
        ))
        .await
    }
}

/// Told when the group moves partitions; called inside [`GroupConsumer::poll`].
pub trait RebalanceListener: Send {
    /// These partitions are being released (their positions were committed with auto-commit).
    fn on_partitions_revoked(&mut self, _partitions: &[TopicPartition]) {}
    /// These partitions are now this member's.
    fn on_partitions_assigned(&mut self, _partitions: &[TopicPartition]) {}
    /// The group forgot this member: these partitions may already be another member's.
    fn on_partitions_lost(&mut self, _partitions: &[TopicPartition]) {}
}

/// A group consumer's settings.
#[derive(Clone, Debug)]
pub struct GroupConsumerConfig {
    /// Fetching: isolation (`read_committed` by default), `auto_offset_reset` for partitions
    /// without a committed offset, fetch sizes.
    pub consumer: ConsumerConfig,
    /// How long the group waits for a heartbeat before removing the member (server default
    /// 45 s when `None`).
    pub session_timeout_ms: Option<i64>,
    /// How often the background task heartbeats (Kafka's default is 3 s).
    pub heartbeat_interval_ms: u64,
    /// Commit positions automatically (at poll, at most once per heartbeat interval; before a
    /// release; on close).
    pub enable_auto_commit: bool,
    /// A static member's stable identity (KIP-345).
    pub group_instance_id: Option<String>,
    /// The assignor, when this member is the first of the group.
    pub assignor: Option<Assignor>,
}

impl Default for GroupConsumerConfig {
    fn default() -> Self {
        Self {
            consumer: ConsumerConfig::default(),
            session_timeout_ms: None,
            heartbeat_interval_ms: 3_000,
            enable_auto_commit: true,
            group_instance_id: None,
            assignor: None,
        }
    }
}

/// What the heartbeat task and the consumer share.
struct Membership {
    member_id: String,
    /// The generation of the last answer the consumer applied (echoed by heartbeats).
    applied_generation: i32,
    /// The newest heartbeat answer, until the consumer applies it.
    latest: Option<HeartbeatResponse>,
    /// Set when the group forgot or fenced the member: the consumer must rejoin.
    error: Option<Error>,
    /// Heartbeats answered so far: the consumer's clock for auto-commit.
    ticks: u64,
    closed: bool,
}

struct Shared {
    state: Mutex<Membership>,
    wake: Notify,
}

/// A consumer that reads the partitions its group assigns it. See the module docs.
pub struct GroupConsumer {
    consumer: Consumer,
    group_id: String,
    topics: Vec<String>,
    config: GroupConsumerConfig,
    shared: Arc<Shared>,
    listener: Option<Box<dyn RebalanceListener>>,
    /// The positions last committed, so auto-commit sends only what moved.
    committed: HashMap<TopicPartition, i64>,
    /// Where this member started reading each assigned partition that had no committed offset
    /// (`auto_offset_reset`, resolved once): a rewind returns there.
    starts: HashMap<TopicPartition, i64>,
    last_commit_tick: u64,
}

impl std::fmt::Debug for GroupConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupConsumer")
            .field("group_id", &self.group_id)
            .field("topics", &self.topics)
            .field("assignment", &self.consumer.assignment())
            .finish_non_exhaustive()
    }
}

impl GroupConsumer {
    /// Joins `group_id` subscribed to `topics`, starts heartbeating, and takes the partitions
    /// the group assigns (starting at their committed offsets).
    pub async fn join(
        client: Client,
        group_id: &str,
        topics: Vec<String>,
        config: GroupConsumerConfig,
    ) -> Result<Self, Error> {
        if !kafdo_types::txn::valid_group_id(group_id) {
            return Err(Error::InvalidArgument(format!(
                "invalid group_id {group_id:?}"
            )));
        }
        let answer = client
            .join_group(
                group_id,
                &JoinGroupRequest {
                    member_id: None,
                    group_instance_id: config.group_instance_id.clone(),
                    topics: topics.clone(),
                    session_timeout_ms: config.session_timeout_ms,
                    assignor: config.assignor,
                },
            )
            .await?;
        let shared = Arc::new(Shared {
            state: Mutex::new(Membership {
                member_id: answer.member_id.clone(),
                applied_generation: -1,
                latest: None,
                error: None,
                ticks: 0,
                closed: false,
            }),
            wake: Notify::new(),
        });
        let mut consumer = Self {
            consumer: Consumer::new(client.clone(), config.consumer.clone()),
            group_id: group_id.to_string(),
            topics,
            config,
            shared: shared.clone(),
            listener: None,
            committed: HashMap::new(),
            starts: HashMap::new(),
            last_commit_tick: 0,
        };
        consumer
            .apply(answer.generation_id, answer.assignment)
            .await?;
        let task = heartbeat_loop(
            client.clone(),
            consumer.group_id.clone(),
            Duration::from_millis(consumer.config.heartbeat_interval_ms.max(10)),
            shared,
        );
        client.transport().spawn(Box::pin(task));
        Ok(consumer)
    }

    /// Calls `listener` on every rebalance from now on.
    pub fn set_rebalance_listener(&mut self, listener: impl RebalanceListener + 'static) {
        self.listener = Some(Box::new(listener));
    }

    /// The member id.
    pub fn member_id(&self) -> String {
        self.shared.state.lock().unwrap().member_id.clone()
    }

    /// The generation this consumer has applied.
    pub fn generation_id(&self) -> i32 {
        self.shared.state.lock().unwrap().applied_generation
    }

    /// What a transactional producer needs to commit offsets for this consumer (KIP-447).
    pub fn group_metadata(&self) -> GroupMetadata {
        let state = self.shared.state.lock().unwrap();
        GroupMetadata {
            group_id: self.group_id.clone(),
            generation_id: state.applied_generation,
            member_id: state.member_id.clone(),
        }
    }

    /// The partitions this member reads now.
    pub fn assignment(&self) -> &[TopicPartition] {
        self.consumer.assignment()
    }

    /// The next offset this consumer returns from `tp`.
    pub fn position(&self, tp: &TopicPartition) -> Option<i64> {
        self.consumer.position(tp)
    }

    /// Makes `offset` the next offset to read from an assigned partition.
    pub fn seek(&mut self, tp: &TopicPartition, offset: i64) -> Result<(), Error> {
        self.consumer.seek(tp, offset)
    }

    /// The positions of every assigned partition that has one, as offsets to commit.
    pub fn positions(&self) -> Vec<TopicPartitionOffset> {
        self.consumer
            .assignment()
            .iter()
            .filter_map(|tp| {
                self.consumer
                    .position(tp)
                    .map(|offset| TopicPartitionOffset {
                        topic: tp.topic.clone(),
                        partition: tp.partition,
                        offset,
                        metadata: None,
                    })
            })
            .collect()
    }

    /// Applies any rebalance, auto-commits, then polls the assigned partitions.
    pub async fn poll(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>, Error> {
        self.maintain().await?;
        self.consumer.poll(timeout).await
    }

    /// Rewinds every assigned partition to its committed offset (a partition without one to
    /// where this member started reading it): what a read-process-write loop does after an
    /// aborted transaction.
    pub async fn rewind_to_committed(&mut self) -> Result<(), Error> {
        let assignment = self.consumer.assignment().to_vec();
        self.start_at_committed(&assignment).await
    }

    /// Commits the positions of every assigned partition.
    pub async fn commit_sync(&mut self) -> Result<(), Error> {
        let offsets = self.positions();
        self.commit(offsets).await
    }

    /// Commits these offsets (the next offsets to consume) for partitions this member owns.
    pub async fn commit(&mut self, offsets: Vec<TopicPartitionOffset>) -> Result<(), Error> {
        let metadata = self.group_metadata();
        for chunk in offsets.chunks(MAX_OFFSETS_PER_COMMIT) {
            self.consumer
                .client()
                .commit_offsets(
                    &self.group_id,
                    &OffsetCommitRequest {
                        generation_id: metadata.generation_id,
                        member_id: metadata.member_id.clone(),
                        offsets: chunk.to_vec(),
                    },
                )
                .await?;
        }
        for o in offsets {
            self.committed.insert(
                TopicPartition {
                    topic: o.topic,
                    partition: o.partition,
                },
                o.offset,
            );
        }
        Ok(())
    }

    /// Commits (with auto-commit), leaves the group and stops heartbeating.
    pub async fn close(mut self) -> Result<(), Error> {
        if self.config.enable_auto_commit {
            self.auto_commit(true).await;
        }
        let member_id = self.member_id();
        self.stop();
        self.consumer
            .client()
            .leave_group(&self.group_id, &member_id)
            .await
    }

    fn stop(&self) {
        self.shared.state.lock().unwrap().closed = true;
        self.shared.wake.notify_one();
    }

    /// Rejoins after the group forgot the member, or applies the newest heartbeat answer.
    async fn maintain(&mut self) -> Result<(), Error> {
        let (error, latest) = {
            let mut state = self.shared.state.lock().unwrap();
            (state.error.take(), state.latest.take())
        };
        if let Some(error) = error {
            let lost = self.consumer.assignment().to_vec();
            self.consumer.assign(Vec::new());
            self.committed.clear();
            self.starts.clear();
            if let Some(listener) = &mut self.listener {
                listener.on_partitions_lost(&lost);
            }
            return self.rejoin(error).await;
        }
        if let Some(answer) = latest {
            let current: HashSet<&TopicPartition> = self.consumer.assignment().iter().collect();
            let new: HashSet<&TopicPartition> = answer.assignment.iter().collect();
            if current != new || answer.generation_id != self.generation_id() {
                self.apply(answer.generation_id, answer.assignment).await?;
            }
        }
        if self.config.enable_auto_commit {
            self.auto_commit(false).await;
        }
        Ok(())
    }

    async fn rejoin(&mut self, cause: Error) -> Result<(), Error> {
        let member_id = self.member_id();
        let mut request = JoinGroupRequest {
            member_id: Some(member_id),
            group_instance_id: self.config.group_instance_id.clone(),
            topics: self.topics.clone(),
            session_timeout_ms: self.config.session_timeout_ms,
            assignor: self.config.assignor,
        };
        let client = self.consumer.client().clone();
        let answer = match client.join_group(&self.group_id, &request).await {
            Err(e) if e.code() == ErrorCode::UnknownMemberId => {
                // The group has forgotten the id entirely: join as a new member.
                request.member_id = None;
                client.join_group(&self.group_id, &request).await?
            }
            other => {
                other.map_err(|e| Error::Closed(format!("rejoining after {cause} failed: {e}")))?
            }
        };
        self.shared.state.lock().unwrap().member_id = answer.member_id;
        self.apply(answer.generation_id, answer.assignment).await
    }

    /// Makes `assignment` this member's, then acknowledges `generation_id`.
    async fn apply(
        &mut self,
        generation_id: i32,
        assignment: Vec<TopicPartition>,
    ) -> Result<(), Error> {
        let current: Vec<TopicPartition> = self.consumer.assignment().to_vec();
        let revoked: Vec<TopicPartition> = current
            .iter()
            .filter(|tp| !assignment.contains(tp))
            .cloned()
            .collect();
        let added: Vec<TopicPartition> = assignment
            .iter()
            .filter(|tp| !current.contains(tp))
            .cloned()
            .collect();
        if !revoked.is_empty() {
            if self.config.enable_auto_commit {
                let offsets: Vec<TopicPartitionOffset> = self
                    .positions()
                    .into_iter()
                    .filter(|o| {
                        revoked
                            .iter()
                            .any(|tp| tp.topic == o.topic && tp.partition == o.partition)
                    })
                    .collect();
                // A failed commit here means re-delivery to the next owner (at least once),
                // never a loss; the release must go ahead either way.
                let _ = self.commit(offsets).await;
            }
            if let Some(listener) = &mut self.listener {
                listener.on_partitions_revoked(&revoked);
            }
            for tp in &revoked {
                self.committed.remove(tp);
                self.starts.remove(tp);
            }
        }
        self.consumer.assign(assignment);
        self.start_at_committed(&added).await?;
        if !added.is_empty() {
            if let Some(listener) = &mut self.listener {
                listener.on_partitions_assigned(&added);
            }
        }
        self.shared.state.lock().unwrap().applied_generation = generation_id;
        // Acknowledge at once: another member may be waiting for the released partitions.
        self.shared.wake.notify_one();
        Ok(())
    }

    /// Seeks partitions to their committed offsets (`require_stable`). A partition without one
    /// goes back to where this member started reading it or, the first time, to where
    /// `auto_offset_reset` says. That start is remembered: a rewind after an aborted transaction
    /// must read the aborted inputs again, not reset past them.
    async fn start_at_committed(&mut self, partitions: &[TopicPartition]) -> Result<(), Error> {
        let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for tp in partitions {
            by_topic.entry(&tp.topic).or_default().push(tp.partition);
        }
        let client = self.consumer.client().clone();
        let mut found: HashMap<TopicPartition, i64> = HashMap::new();
        for (topic, list) in by_topic {
            let offsets = loop {
                match client
                    .fetch_offsets(&self.group_id, Some(topic), Some(&list), true)
                    .await
                {
                    // A transaction with offsets for these partitions is still ending.
                    Err(e) if e.code() == ErrorCode::UnstableOffsetCommit => {
                        client.sleep(Duration::from_millis(100)).await;
                    }
                    other => break other?,
                }
            };
            found.extend(offsets.into_iter().map(|o| {
                let tp = TopicPartition {
                    topic: o.topic,
                    partition: o.partition,
                };
                (tp, o.offset)
            }));
        }
        for tp in partitions {
            let offset = match (found.get(tp), self.starts.get(tp)) {
                (Some(&committed), _) => {
                    self.committed.insert(tp.clone(), committed);
                    committed
                }
                (None, Some(&start)) => start,
                (None, None) => {
                    let start = self
                        .consumer
                        .reset_offset(tp, self.consumer.config().auto_offset_reset)
                        .await?;
                    self.starts.insert(tp.clone(), start);
                    start
                }
            };
            self.consumer.seek(tp, offset)?;
        }
        Ok(())
    }

    /// Commits the positions that moved, at most once per heartbeat (unless `now`).
    async fn auto_commit(&mut self, now: bool) {
        let ticks = self.shared.state.lock().unwrap().ticks;
        if !now && ticks == self.last_commit_tick {
            return;
        }
        self.last_commit_tick = ticks;
        let moved: Vec<TopicPartitionOffset> = self
            .positions()
            .into_iter()
            .filter(|o| {
                self.committed.get(&TopicPartition {
                    topic: o.topic.clone(),
                    partition: o.partition,
                }) != Some(&o.offset)
            })
            .collect();
        if !moved.is_empty() {
            // Auto-commit is best effort, as in Kafka: the next one carries the same positions.
            let _ = self.commit(moved).await;
        }
    }
}

impl Drop for GroupConsumer {
    fn drop(&mut self) {
        // The heartbeat task ends; the group removes the member when its session times out.
        self.stop();
    }
}

/// Heartbeats until the consumer closes; keeps the newest answer or the error that means
/// "rejoin".
async fn heartbeat_loop(client: Client, group_id: String, interval: Duration, shared: Arc<Shared>) {
    loop {
        {
            let wake = Box::pin(shared.wake.notified());
            let _ = select(wake, client.transport().sleep(interval)).await;
        }
        let (member_id, generation_id) = {
            let state = shared.state.lock().unwrap();
            if state.closed {
                return;
            }
            if state.error.is_some() {
                // Nothing to heartbeat for until the consumer has rejoined.
                continue;
            }
            (state.member_id.clone(), state.applied_generation)
        };
        let answer = client.heartbeat(&group_id, &member_id, generation_id).await;
        let mut state = shared.state.lock().unwrap();
        if state.member_id != member_id {
            continue;
        }
        match answer {
            Ok(answer) => {
                state.ticks += 1;
                state.latest = Some(answer);
            }
            Err(e)
                if matches!(
                    e.code(),
                    ErrorCode::UnknownMemberId
                        | ErrorCode::IllegalGeneration
                        | ErrorCode::GroupIdNotFound
                ) =>
            {
                state.error = Some(e);
            }
            // Anything else (the SDK already retried what it safely could): try again at the
            // next interval; the session outlasts a few missed heartbeats.
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{api_error, body, json, FakeTransport};
    use serde_json::json;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Default, Clone)]
    struct Events(Arc<Mutex<Vec<String>>>);

    impl RebalanceListener for Events {
        fn on_partitions_revoked(&mut self, partitions: &[TopicPartition]) {
            self.0
                .lock()
                .unwrap()
                .push(format!("revoked {}", partitions.len()));
        }
        fn on_partitions_assigned(&mut self, partitions: &[TopicPartition]) {
            self.0
                .lock()
                .unwrap()
                .push(format!("assigned {}", partitions.len()));
        }
        fn on_partitions_lost(&mut self, partitions: &[TopicPartition]) {
            self.0
                .lock()
                .unwrap()
                .push(format!("lost {}", partitions.len()));
        }
    }

    /// A group that assigns partitions 0 and 1, then (after the first heartbeat) only 1, and
    /// forgets the member after `forget_after` heartbeats. Partition 0 has offset 5 committed.
    fn server(forget_after: usize) -> FakeTransport {
        let heartbeats = Arc::new(AtomicUsize::new(0));
        FakeTransport::new(move |request, _| {
            let path = request.path.as_str();
            let tp = |p: i32| json!({"topic": "in", "partition": p});
            if path == "/v1/groups/g/members" {
                let rejoin = body(request).get("member_id").is_some();
                return json(
                    200,
                    json!({"member_id": "m1", "generation_id": if rejoin { 9 } else { 1 }, "assignment": [tp(0), tp(1)]}),
                );
            }
            if path.ends_with("/heartbeat") {
                let n = heartbeats.fetch_add(1, Ordering::SeqCst) + 1;
                if n > forget_after {
                    return api_error(ErrorCode::UnknownMemberId);
                }
                return json(
                    200,
                    json!({"generation_id": 2, "assignment": [tp(1)], "state": "Reconciling"}),
                );
            }
            if path == "/v1/groups/g/offsets" && request.method == Method::Get {
                return json(
                    200,
                    json!({"offsets": [{"topic": "in", "partition": 0, "offset": 5}]}),
                );
            }
            if path == "/v1/groups/g/offsets" {
                return json(200, json!({}));
            }
            if path.starts_with("/v1/topics/in/partitions/") {
                if path.ends_with("/records") {
                    let offset: i64 = request
                        .query
                        .iter()
                        .find(|(n, _)| *n == "offset")
                        .unwrap()
                        .1
                        .parse()
                        .unwrap();
                    return json(
                        200,
                        json!({"records": [{"offset": offset, "timestamp": 0, "key": null, "value": "eA==", "headers": []}], "next_offset": offset + 1, "high_watermark": 100, "last_stable_offset": 100}),
                    );
                }
                return json(
                    200,
                    json!({"log_start_offset": 0, "high_watermark": 100, "last_stable_offset": 100}),
                );
            }
            if request.method == Method::Delete {
                return Ok(crate::HttpResponse {
                    status: 204,
                    content_type: None,
                    body: vec![],
                });
            }
            api_error(ErrorCode::InvalidRequest)
        })
    }

    fn config() -> GroupConsumerConfig {
        GroupConsumerConfig {
            heartbeat_interval_ms: 10,
            consumer: ConsumerConfig {
                auto_offset_reset: crate::OffsetReset::Earliest,
                ..ConsumerConfig::default()
            },
            ..GroupConsumerConfig::default()
        }
    }

    async fn join(transport: &FakeTransport) -> GroupConsumer {
        GroupConsumer::join(
            Client::new(transport.clone()),
            "g",
            vec!["in".into()],
            config(),
        )
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn joins_starts_at_committed_offsets_and_releases_with_a_commit() {
        let transport = server(usize::MAX);
        let mut consumer = join(&transport).await;
        let events = Events::default();
        consumer.set_rebalance_listener(events.clone());
        let tp0 = TopicPartition {
            topic: "in".into(),
            partition: 0,
        };
        assert_eq!(consumer.position(&tp0), Some(5), "the committed offset");
        assert_eq!(consumer.generation_id(), 1);
        let records = consumer.poll(Duration::ZERO).await.unwrap();
        assert!(records.iter().any(|r| r.partition == 0 && r.offset == 5));
        // Poll until a heartbeat answer releases partition 0 (bounded: 5 s).
        for _ in 0..500 {
            if consumer.generation_id() == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
            consumer.poll(Duration::ZERO).await.unwrap();
        }
        assert_eq!(
            consumer.assignment(),
            &[TopicPartition {
                topic: "in".into(),
                partition: 1
            }]
        );
        assert_eq!(consumer.generation_id(), 2);
        assert_eq!(events.0.lock().unwrap().as_slice(), ["revoked 1"]);
        // The released partition's position was committed before the release.
        let commits: Vec<serde_json::Value> = transport
            .requests()
            .iter()
            .filter(|r| r.path == "/v1/groups/g/offsets" && r.method == Method::Post)
            .map(body)
            .collect();
        assert!(commits.iter().any(|c| c["offsets"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["partition"] == json!(0) && o["offset"] == json!(6))
            && c["generation_id"] == json!(1)));
        // Later heartbeats echo the applied generation.
        let echoed = |transport: &FakeTransport| {
            transport
                .requests()
                .into_iter()
                .rfind(|r| r.path.ends_with("/heartbeat"))
                .map(|r| body(&r)["generation_id"].clone())
        };
        for _ in 0..500 {
            if echoed(&transport) == Some(json!(2)) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(echoed(&transport), Some(json!(2)));
        consumer.close().await.unwrap();
        assert!(transport
            .requests()
            .iter()
            .any(|r| r.method == Method::Delete && r.path == "/v1/groups/g/members/m1"));
    }

    #[tokio::test]
    async fn a_rewind_returns_a_partition_without_a_committed_offset_to_its_start() {
        let transport = server(usize::MAX);
        let mut consumer = join(&transport).await;
        let tp = |partition| TopicPartition {
            topic: "in".into(),
            partition,
        };
        assert_eq!(consumer.position(&tp(1)), Some(0), "auto_offset_reset");
        // What a poll of a transaction's inputs does to the positions.
        consumer.seek(&tp(0), 8).unwrap();
        consumer.seek(&tp(1), 3).unwrap();
        consumer.rewind_to_committed().await.unwrap();
        assert_eq!(consumer.position(&tp(0)), Some(5), "the committed offset");
        assert_eq!(
            consumer.position(&tp(1)),
            Some(0),
            "where this member started: the inputs it read are read again"
        );
    }

    #[tokio::test]
    async fn a_forgotten_member_loses_its_partitions_and_rejoins() {
        let transport = server(0);
        let mut consumer = join(&transport).await;
        let events = Events::default();
        consumer.set_rebalance_listener(events.clone());
        for _ in 0..500 {
            if consumer.generation_id() == 9 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
            consumer.poll(Duration::ZERO).await.unwrap();
        }
        assert_eq!(consumer.generation_id(), 9, "rejoined");
        assert_eq!(
            events.0.lock().unwrap().as_slice(),
            ["lost 2", "assigned 2"]
        );
    }
}
