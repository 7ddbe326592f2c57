//! Golden scenarios of the group coordinator (toydb style).
//!
//! Each file in `tests/scripts/` is a list of blocks: one or more commands, a `---` line, and
//! the output they produced, then a blank line. Lines starting with `#` are comments (also
//! between the commands of a block). The test
//! runs every command against a real [`GroupCoordinator`] on in-memory SQLite and compares the
//! whole file; `UPDATE_GOLDEN=1 cargo test -p kafdo-group --test scripts` rewrites the outputs.
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
//! - `commit c1 a/0=10 a/1=7@meta [gen=N]` (`@` adds offset metadata; `commit admin ...` sends generation -1 and no member id),
//!   `fetch [stable] [topic=a] [partitions=0,1]`.
//! - `txn-commit c1 pid=7 epoch=0 a/0=12 [gen=N]`, `marker pid=7 epoch=0 commit|abort`.

use std::collections::BTreeMap;
use std::rc::Rc;

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

    fn generation(&self, alias: &str) -> i32 {
        self.members.get(alias).map_or(0, |(_, g)| *g)
    }

    fn run(&mut self, line: &str) -> String {
        let words: Vec<&str> = line.split_whitespace().collect();
        let (cmd, args) = (words[0], &words[1..]);
        let opts: BTreeMap<&str, &str> = args.iter().filter_map(|a| a.split_once('=')).collect();
        let flags: Vec<&str> = args.iter().copied().filter(|a| !a.contains('=')).collect();
        let gen_opt = |alias: &str, h: &Harness| {
            opts.get("gen")
                .map_or(h.generation(alias), |g| g.parse().unwrap())
        };
        let offsets = || -> Vec<TopicPartitionOffset> {
            args.iter()
                .filter_map(|a| {
                    let (tp, off) = a.split_once('=')?;
                    let (t, p) = tp.split_once('/')?;
                    let (off, metadata) = match off.split_once('@') {
                        Some((off, m)) => (off, Some(m.to_owned())),
                        None => (off, None),
                    };
                    Some(TopicPartitionOffset {
                        topic: t.into(),
                        partition: p.parse().unwrap(),
                        offset: off.parse().unwrap(),
                        metadata,
                    })
                })
                .collect()
        };
        match cmd {
            "topics" => {
                for (t, n) in &opts {
                    self.counts.insert(t.to_string(), n.parse().unwrap());
                }
                String::new()
            }
            "time" => {
                self.now_ms = args[0].parse().unwrap();
                String::new()
            }
            "advance" => {
                self.now_ms += args[0].parse::<i64>().unwrap();
                format!("now {}", self.now_ms)
            }
            "restart" => {
                self.group = GroupCoordinator::open(self.sql.clone()).unwrap();
                "restarted".into()
            }
            "join" => {
                let alias = flags[0];
                let req = JoinGroupRequest {
                    member_id: flags.contains(&"rejoin").then(|| self.id(alias)),
                    group_instance_id: opts.get("instance").map(|s| s.to_string()),
                    topics: opts["topics"].split(',').map(str::to_owned).collect(),
                    session_timeout_ms: opts.get("session").map(|s| s.parse().unwrap()),
                    assignor: opts
                        .get("assignor")
                        .map(|a| Assignor::from_name(a).unwrap()),
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
                let alias = flags[0];
                let req = HeartbeatRequest {
                    generation_id: gen_opt(alias, self),
                };
                let counts = self.counts();
                match self
                    .group
                    .heartbeat(&self.id(alias), &req, &counts, self.now_ms)
                {
                    Ok(r) => {
                        let lost = flags.contains(&"lost");
                        if !lost {
                            self.members.get_mut(alias).unwrap().1 = r.generation_id;
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
            "leave" => match self.group.leave(&self.id(flags[0]), self.now_ms) {
                Ok(()) => "ok".into(),
                Err(e) => fmt_error(&e),
            },
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
            "describe" => match self.group.describe(self.now_ms) {
                Ok(d) => {
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
                Err(e) => fmt_error(&e),
            },
            "commit" => {
                let alias = flags[0];
                let req = if alias == "admin" {
                    OffsetCommitRequest {
                        generation_id: -1,
                        member_id: String::new(),
                        offsets: offsets(),
                    }
                } else {
                    OffsetCommitRequest {
                        generation_id: gen_opt(alias, self),
                        member_id: self.id(alias),
                        offsets: offsets(),
                    }
                };
                match self.group.commit_offsets(&req, self.now_ms) {
                    Ok(()) => "ok".into(),
                    Err(e) => fmt_error(&e),
                }
            }
            "fetch" => {
                let query = OffsetFetchQuery {
                    require_stable: flags.contains(&"stable"),
                    topic: opts.get("topic").map(|s| s.to_string()),
                    partitions: opts.get("partitions").map(|s| s.to_string()),
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
                let alias = flags[0];
                let req = TxnOffsetCommitRequest {
                    group_id: "g".into(),
                    transactional_id: "t".into(),
                    producer_id: opts["pid"].parse().unwrap(),
                    producer_epoch: opts["epoch"].parse().unwrap(),
                    generation_id: gen_opt(alias, self),
                    member_id: self.id(alias),
                    offsets: offsets(),
                    sequence: opts.get("seq").map_or(1, |s| s.parse().unwrap()),
                };
                match self.group.txn_offset_commit(&req, self.now_ms) {
                    Ok(()) => "ok".into(),
                    Err(e) => fmt_error(&e),
                }
            }
            "marker" => {
                let req = GroupTxnMarkerRequest {
                    group_id: "g".into(),
                    producer_id: opts["pid"].parse().unwrap(),
                    producer_epoch: opts["epoch"].parse().unwrap(),
                    result: match flags[0] {
                        "commit" => TxnResult::Commit,
                        "abort" => TxnResult::Abort,
                        other => panic!("unknown marker result {other}"),
                    },
                };
                match self.group.txn_marker(&req, self.now_ms) {
                    Ok(_) => "ok".into(),
                    Err(e) => fmt_error(&e),
                }
            }
            other => panic!("unknown command {other:?}"),
        }
    }
}

/// Runs one script and returns the file as it should read.
fn run_script(text: &str) -> String {
    let mut harness = Harness::new();
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if line.trim().is_empty() || line.starts_with('#') {
            out.push_str(line);
            out.push('\n');
            continue;
        }
        // A block: commands up to `---`, then the old output up to a blank line.
        let mut commands = vec![line];
        for next in lines.by_ref() {
            if next == "---" {
                break;
            }
            commands.push(next);
        }
        while lines.peek().is_some_and(|l| !l.trim().is_empty()) {
            lines.next();
        }
        let mut results = Vec::new();
        for command in &commands {
            out.push_str(command);
            out.push('\n');
            if command.starts_with('#') {
                continue;
            }
            let result = harness.run(command);
            if !result.is_empty() {
                results.push(result);
            }
        }
        out.push_str("---\n");
        for r in results {
            out.push_str(&r);
            out.push('\n');
        }
    }
    out
}

#[test]
fn scripts() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scripts");
    let update = std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no scripts in {}", dir.display());
    let mut failed = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(&path).unwrap();
        let actual = run_script(&text);
        if actual != text {
            if update {
                std::fs::write(&path, &actual).unwrap();
            } else {
                eprintln!("--- {} differs; expected:\n{actual}", path.display());
                failed.push(path);
            }
        }
    }
    assert!(
        failed.is_empty(),
        "golden scripts differ (rerun with UPDATE_GOLDEN=1 and review the diff): {failed:?}"
    );
}
