//! Golden scenarios of the group coordinator (toydb style), in `tests/scripts/*.txt`, run by
//! the `kafdo-golden` harness (its docs describe the format: commands, `---`, their output, a
//! blank line). Every command runs against a real [`GroupCoordinator`] on in-memory SQLite;
//! `UPDATE_GOLDEN=1 cargo test -p kafdo-group --test scripts` rewrites the outputs.
//!
//! Commands (members are named by aliases; `c1` stands for whatever member id the group gave):
//!
//! - `topics a=4 b=2`: the partition counts the "Worker" passes with joins and heartbeats.
//! - `time 1000`, `advance 500`: set or move the clock.
//! - `join c1 topics=a,b [session=ms] [instance=i] [assignor=range] [rejoin]`: join (with
//!   `rejoin`, send c1's member id).
//! - `heartbeat c1 [gen=N] [lost]`: heartbeat echoing c1's last generation (or N); `lost`
//!   drops the answer, so c1 does not learn it.
//! - `leave c1`, `alarm` (prints the next alarm, then runs it), `restart` (reopen the core on
//!   the same SQLite), `describe`, `exists`.
//! - `commit c1 a/0=10 a/1=7@meta [gen=N]` (`@` adds offset metadata; `commit admin ...` sends
//!   generation -1 and no member id), `fetch [stable] [topic=a] [partitions=0,1]`.
//! - `txn-commit c1 pid=7 epoch=0 a/0=12 [gen=N] [seq=1]`, `marker pid=7 epoch=0 commit|abort`.

use std::collections::BTreeMap;
use std::rc::Rc;

use kafdo_golden::{Command, Runner};
use kafdo_group::{GroupCoordinator, GroupError};
use kafdo_sql::Sqlite;
use kafdo_types::group::{
    Assignor, HeartbeatRequest, JoinGroupRequest, OffsetCommitRequest, OffsetFetchQuery,
    TopicPartitionCount,
};
use kafdo_types::rpc::{
    GroupTxnMarkerRequest, TopicPartitionOffset, TxnOffsetCommitRequest, TxnResult,
};
use kafdo_types::txn::TopicPartition;

struct Harness {
    sql: Rc<Sqlite>,
    group: GroupCoordinator<Rc<Sqlite>>,
    now_ms: i64,
    counts: BTreeMap<String, i32>,
    /// alias -> (member id, generation of the last answer the member received).
    members: BTreeMap<String, (String, i32)>,
}

fn fmt_assignment(a: &[TopicPartition]) -> String {
    let parts: Vec<String> = a
        .iter()
        .map(|tp| format!("{}/{}", tp.topic, tp.partition))
        .collect();
    format!("[{}]", parts.join(" "))
}

fn fmt_error(e: &GroupError) -> String {
    format!("error: {}: {e}", e.code())
}

/// The `T/P=OFFSET[@metadata]` arguments.
fn offsets(command: &Command) -> Result<Vec<TopicPartitionOffset>, String> {
    command
        .partition_values()?
        .into_iter()
        .map(|(topic, partition, value)| {
            let (offset, metadata) = match value.split_once('@') {
                Some((offset, m)) => (offset, Some(m.to_owned())),
                None => (value, None),
            };
            Ok(TopicPartitionOffset {
                topic: topic.into(),
                partition,
                offset: kafdo_golden::parse(offset, "offset")?,
                metadata,
            })
        })
        .collect()
}

impl Harness {
    fn new() -> Self {
        let sql = Rc::new(Sqlite::memory());
        let group = GroupCoordinator::open(sql.clone()).unwrap();
        Harness {
            sql,
            group,
            now_ms: 0,
            counts: BTreeMap::new(),
            members: BTreeMap::new(),
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

    /// The alias of a member id, or the id itself.
    fn alias(&self, member_id: &str) -> String {
        self.members
            .iter()
            .filter(|(_, (id, _))| id == member_id)
            .map(|(a, _)| a.clone())
            .next_back()
            .unwrap_or_else(|| member_id.to_owned())
    }

    fn id(&self, alias: &str) -> String {
        self.members
            .get(alias)
            .map(|(id, _)| id.clone())
            .unwrap_or_else(|| alias.to_owned())
    }

    /// `gen=N`, else the generation of the last answer `alias` received.
    fn generation(&self, alias: &str, command: &Command) -> Result<i32, String> {
        let last = self.members.get(alias).map_or(0, |(_, g)| *g);
        command.value_or("gen", last)
    }

    fn describe(&mut self) -> String {
        let d = match self.group.describe(self.now_ms) {
            Ok(d) => d,
            Err(e) => return fmt_error(&e),
        };
        let mut out = format!(
            "state={:?} gen={} assignor={}",
            d.state,
            d.generation_id,
            d.assignor.name()
        );
        for m in &d.members {
            out.push_str(&format!(
                "\n  {} {}{} topics={} {}",
                self.alias(&m.member_id),
                m.member_id,
                m.group_instance_id
                    .as_ref()
                    .map_or(String::new(), |i| format!(" instance={i}")),
                m.topics.join(","),
                fmt_assignment(&m.assignment)
            ));
            if !m.revoking.is_empty() {
                out.push_str(&format!(" revoking={}", fmt_assignment(&m.revoking)));
            }
            if !m.pending.is_empty() {
                out.push_str(&format!(" pending={}", fmt_assignment(&m.pending)));
            }
        }
        out
    }
}

impl Runner for Harness {
    fn run(&mut self, command: &Command) -> Result<String, String> {
        let ok_or_error = |r: Result<(), GroupError>| match r {
            Ok(()) => "ok".to_owned(),
            Err(e) => fmt_error(&e),
        };
        Ok(match command.name.as_str() {
            "topics" => {
                for (t, n) in command.keyed() {
                    self.counts.insert(t.to_owned(), kafdo_golden::parse(n, t)?);
                }
                String::new()
            }
            "time" => {
                self.now_ms = command.pos_parse(0, "MS")?;
                String::new()
            }
            "advance" => {
                self.now_ms += command.pos_parse::<i64>(0, "MS")?;
                format!("now {}", self.now_ms)
            }
            "restart" => {
                self.group = GroupCoordinator::open(self.sql.clone()).unwrap();
                "restarted".into()
            }
            "join" => {
                let alias = command.pos(0, "a member alias")?;
                let topics = command.list("topics").ok_or("`join` needs topics=")?;
                let assignor = match command.get("assignor") {
                    Some(name) => Some(Assignor::from_name(name).ok_or("unknown assignor")?),
                    None => None,
                };
                let req = JoinGroupRequest {
                    member_id: command.flag("rejoin").then(|| self.id(alias)),
                    group_instance_id: command.get("instance").map(str::to_owned),
                    topics: topics.into_iter().map(str::to_owned).collect(),
                    session_timeout_ms: command.value("session")?,
                    assignor,
                };
                match self.group.join(&req, &self.counts(), self.now_ms) {
                    Ok(r) => {
                        self.members
                            .insert(alias.into(), (r.member_id.clone(), r.generation_id));
                        format!(
                            "{alias} {} gen={} {}",
                            r.member_id,
                            r.generation_id,
                            fmt_assignment(&r.assignment)
                        )
                    }
                    Err(e) => fmt_error(&e),
                }
            }
            "heartbeat" => {
                let alias = command.pos(0, "a member alias")?;
                let req = HeartbeatRequest {
                    generation_id: self.generation(alias, command)?,
                };
                let counts = self.counts();
                match self
                    .group
                    .heartbeat(&self.id(alias), &req, &counts, self.now_ms)
                {
                    Ok(r) => {
                        let lost = command.flag("lost");
                        if !lost {
                            let member = self.members.get_mut(alias).ok_or("no such member")?;
                            member.1 = r.generation_id;
                        }
                        format!(
                            "{alias} gen={} {:?} {}{}",
                            r.generation_id,
                            r.state,
                            fmt_assignment(&r.assignment),
                            if lost { " (lost)" } else { "" }
                        )
                    }
                    Err(e) => fmt_error(&e),
                }
            }
            "leave" => {
                let id = self.id(command.pos(0, "a member alias")?);
                ok_or_error(self.group.leave(&id, self.now_ms))
            }
            "alarm" => {
                let next = self.group.next_alarm_ms().unwrap();
                match self.group.on_alarm(self.now_ms) {
                    Ok(()) => format!(
                        "next alarm was {next:?}, now {:?}",
                        self.group.next_alarm_ms().unwrap()
                    ),
                    Err(e) => fmt_error(&e),
                }
            }
            "exists" => format!("exists={}", self.group.exists().unwrap()),
            "describe" => self.describe(),
            "commit" => {
                let alias = command.pos(0, "a member alias or admin")?;
                let req = if alias == "admin" {
                    OffsetCommitRequest {
                        generation_id: -1,
                        member_id: String::new(),
                        offsets: offsets(command)?,
                    }
                } else {
                    OffsetCommitRequest {
                        generation_id: self.generation(alias, command)?,
                        member_id: self.id(alias),
                        offsets: offsets(command)?,
                    }
                };
                ok_or_error(self.group.commit_offsets(&req, self.now_ms))
            }
            "fetch" => {
                let query = OffsetFetchQuery {
                    require_stable: command.flag("stable"),
                    topic: command.get("topic").map(str::to_owned),
                    partitions: command.get("partitions").map(str::to_owned),
                };
                match self.group.fetch_offsets(&query) {
                    Ok(r) => {
                        let parts: Vec<String> = r
                            .offsets
                            .iter()
                            .map(|o| {
                                let metadata = o.metadata.as_ref();
                                let metadata = metadata.map_or(String::new(), |m| format!("@{m}"));
                                format!("{}/{}={}{metadata}", o.topic, o.partition, o.offset)
                            })
                            .collect();
                        format!("offsets [{}]", parts.join(" "))
                    }
                    Err(e) => fmt_error(&e),
                }
            }
            "txn-commit" => {
                let alias = command.pos(0, "a member alias")?;
                let req = TxnOffsetCommitRequest {
                    group_id: "g".into(),
                    transactional_id: "t".into(),
                    producer_id: command.required("pid")?,
                    producer_epoch: command.required("epoch")?,
                    generation_id: self.generation(alias, command)?,
                    member_id: self.id(alias),
                    offsets: offsets(command)?,
                    sequence: command.value_or("seq", 1)?,
                };
                ok_or_error(self.group.txn_offset_commit(&req, self.now_ms))
            }
            "marker" => {
                let req = GroupTxnMarkerRequest {
                    group_id: "g".into(),
                    producer_id: command.required("pid")?,
                    producer_epoch: command.required("epoch")?,
                    result: match command.pos(0, "commit or abort")? {
                        "commit" => TxnResult::Commit,
                        "abort" => TxnResult::Abort,
                        other => return Err(format!("unknown marker result {other:?}")),
                    },
                };
                match self.group.txn_marker(&req, self.now_ms) {
                    Ok(_) => "ok".into(),
                    Err(e) => fmt_error(&e),
                }
            }
            other => return Err(format!("unknown command {other:?}")),
        })
    }
}

#[test]
fn scripts() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scripts");
    kafdo_golden::run_scripts(dir, Harness::new);
}
