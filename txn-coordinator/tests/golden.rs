//! Golden scenarios of the coordinator core (toydb style), in `tests/scripts/*.txt`, run by the
//! `kafdo-golden` harness (its docs describe the format: commands, `---`, their output, a
//! blank line). Each command's output is what the coordinator did: the calls it asked for,
//! the replies it gave, and its state when that changed. Every script runs on a fresh
//! coordinator over real in-memory SQLite; `UPDATE_GOLDEN=1 cargo test -p
//! kafdo-txn-coordinator --test golden` rewrites the files with what the code does now (then
//! read the diff).
//!
//! Commands (`client=X` picks which producer instance speaks; the harness remembers the producer
//! id and epoch each client last learned from a reply, and `pid=`/`epoch=` override them):
//!
//! - `init [client=A] [timeout=MS] [id=OTHER]`: `POST /v1/producers`.
//! - `add T/P... [client=A]`: add partitions (topic `T`, partition `P`).
//! - `offsets group=G gen=N member=M T/P=OFFSET... [client=A]`: add offsets.
//! - `commit [client=A] [keep-epoch]`, `abort [client=A] [keep-epoch]` (`keep-epoch`: transaction
//!   version 1), `admin-abort`, `describe`.
//! - `ack CALL...|all [pid=N] [offset=N]`: the calls succeeded (`all`: every outstanding call).
//! - `refuse CALL...|all code=CODE`: the object answered an error.
//! - `fail CALL...|all`: no answer (failure, timeout or reset).
//! - `tick MS`: time passes. `alarm`: fire the alarm now. `run-alarm`: move time to the next
//!   alarm and fire it.
//! - `restart`: drop the core and open it again on the same SQLite.
//! - `config roll=N`: reopen with `CoordinatorConfig::roll_epoch` N (first line of a script).
//! - `state`: the stored rows.

use std::collections::BTreeMap;
use std::path::Path;

use kafdo_golden::{Command, Runner};
use kafdo_sql::{Sql, Sqlite, Value};
use kafdo_txn_coordinator::{
    Answer, Call, CallError, CallId, CallReply, CoordinatorConfig, Output, RequestId,
    TxnCoordinator,
};
use kafdo_types::api::{InitProducerRequest, TopicConfig};
use kafdo_types::rpc::{MarkerAck, PartitionRef, TopicPartitionOffset, TxnResult};
use kafdo_types::txn::{AddOffsetsRequest, CoordinatorAddPartitions, EndTxnRequest};
use kafdo_types::{ApiError, ErrorCode};

const TXN_ID: &str = "txn-1";

#[derive(Default, Clone, Copy)]
struct Client {
    producer_id: i64,
    producer_epoch: i32,
}

struct Harness {
    core: Option<TxnCoordinator<Sqlite>>,
    config: CoordinatorConfig,
    now_ms: i64,
    next_request: u64,
    /// Calls asked for and not yet resolved by the script.
    outstanding: BTreeMap<CallId, Call>,
    /// Calls already resolved (resolving one again is a duplicate delivery).
    resolved: BTreeMap<CallId, Call>,
    /// Which client sent which request, and what it was.
    requests: BTreeMap<RequestId, (String, &'static str)>,
    clients: BTreeMap<String, Client>,
    last_status: String,
}

fn error_code(name: &str) -> Result<ErrorCode, String> {
    let json = format!("\"{name}\"");
    serde_json::from_str(&json).map_err(|_| format!("unknown error code {name}"))
}

/// The partition `T/P` of topic `T` (whose topic id is `T-id`).
fn partition_ref(spec: &str) -> Result<PartitionRef, String> {
    let (topic, partition) = kafdo_golden::topic_partition(spec)?;
    Ok(PartitionRef {
        topic: topic.to_owned(),
        topic_id: format!("{topic}-id"),
        partition,
        config: TopicConfig::default(),
    })
}

fn format_call(call: &Call) -> String {
    let result = |r: TxnResult| match r {
        TxnResult::Commit => "commit",
        TxnResult::Abort => "abort",
    };
    match call {
        Call::AllocateProducerId => "AllocateProducerId".into(),
        Call::RegisterTxn(r) => format!(
            "RegisterTxn {}/{} pid={} epoch={} num={}",
            r.partition.topic, r.partition.partition, r.producer_id, r.producer_epoch, r.txn_seq
        ),
        Call::WriteMarker(r) => format!(
            "WriteMarker {}/{} pid={} epoch={} num={} {}",
            r.partition.topic,
            r.partition.partition,
            r.producer_id,
            r.producer_epoch,
            r.txn_seq,
            result(r.result)
        ),
        Call::TxnOffsetCommit(r) => {
            let offsets: Vec<String> = r
                .offsets
                .iter()
                .map(|o| format!("{}/{}={}", o.topic, o.partition, o.offset))
                .collect();
            format!(
                "TxnOffsetCommit {} pid={} epoch={} gen={} member={} seq={} {}",
                r.group_id,
                r.producer_id,
                r.producer_epoch,
                r.generation_id,
                r.member_id,
                r.sequence,
                offsets.join(" ")
            )
        }
        Call::GroupTxnMarker(r) => format!(
            "GroupTxnMarker {} pid={} epoch={} {}",
            r.group_id,
            r.producer_id,
            r.producer_epoch,
            result(r.result)
        ),
    }
}

impl Harness {
    fn new() -> Self {
        let core = TxnCoordinator::open(Sqlite::memory(), TXN_ID, 0).unwrap();
        let mut h = Self {
            core: Some(core),
            config: CoordinatorConfig::default(),
            now_ms: 0,
            next_request: 1,
            outstanding: BTreeMap::new(),
            resolved: BTreeMap::new(),
            requests: BTreeMap::new(),
            clients: BTreeMap::new(),
            last_status: String::new(),
        };
        h.last_status = h.status();
        h
    }

    fn core(&mut self) -> &mut TxnCoordinator<Sqlite> {
        self.core.as_mut().unwrap()
    }

    fn status(&self) -> String {
        let core = self.core.as_ref().unwrap();
        let d = core.describe(self.now_ms);
        let alarm = core
            .next_alarm_ms()
            .map_or("none".to_owned(), |t| t.to_string());
        let pid = core
            .producer_id()
            .map_or("none".to_owned(), |p| p.to_string());
        format!(
            "= {} pid={pid} epoch={} alarm={alarm}",
            d.state, d.producer_epoch
        )
    }

    fn request(&mut self, client: &str, op: &'static str) -> RequestId {
        let id = RequestId(self.next_request);
        self.next_request += 1;
        self.requests.insert(id, (client.to_owned(), op));
        id
    }

    fn record(&mut self, outputs: Vec<Output>, lines: &mut Vec<String>) {
        for output in outputs {
            match output {
                Output::Call { id, call } => {
                    lines.push(format!("call {id} {}", format_call(&call)));
                    self.outstanding.insert(id, call);
                }
                Output::Reply { request, result } => {
                    let (client, op) = self.requests.remove(&request).expect("one reply");
                    let text = match result {
                        Ok(Answer::Producer(r)) => {
                            self.clients.insert(
                                client.clone(),
                                Client {
                                    producer_id: r.producer_id,
                                    producer_epoch: r.producer_epoch,
                                },
                            );
                            format!(
                                "ok producer_id={} producer_epoch={}",
                                r.producer_id, r.producer_epoch
                            )
                        }
                        Ok(Answer::PartitionsAdded) | Ok(Answer::OffsetsAdded) => "ok".into(),
                        Ok(Answer::Ended(r)) => {
                            if op != "admin-abort" {
                                let known = self.clients.entry(client.clone()).or_default();
                                known.producer_id = r.producer_id;
                                known.producer_epoch = r.producer_epoch;
                            }
                            format!(
                                "ok state={} producer_id={} producer_epoch={}",
                                r.state, r.producer_id, r.producer_epoch
                            )
                        }
                        Err(e) => format!("{}: {e}", e.code()),
                    };
                    lines.push(format!("reply {request} {client} {op}: {text}"));
                }
            }
        }
    }

    /// `ack`, `refuse` or `fail`: resolves the calls named (or `all` outstanding ones).
    fn resolve(&mut self, command: &Command) -> Result<Vec<Output>, String> {
        let named: Vec<&str> = command.positional().collect();
        let ids: Vec<CallId> = if named == ["all"] {
            self.outstanding.keys().copied().collect()
        } else {
            named
                .iter()
                .map(|a| {
                    self.outstanding
                        .keys()
                        .chain(self.resolved.keys())
                        .find(|id| id.to_string() == *a)
                        .copied()
                        .ok_or_else(|| format!("no call {a}"))
                })
                .collect::<Result<_, _>>()?
        };
        let now = self.now_ms;
        let mut outputs = Vec::new();
        for id in ids {
            let call = match self.outstanding.remove(&id) {
                Some(call) => call,
                None => self.resolved[&id].clone(),
            };
            self.resolved.insert(id, call.clone());
            let result = match command.name.as_str() {
                "ack" => Ok(match call {
                    Call::AllocateProducerId => {
                        CallReply::ProducerId(command.value_or("pid", 1000)?)
                    }
                    Call::RegisterTxn(_) | Call::TxnOffsetCommit(_) => CallReply::Done,
                    Call::WriteMarker(_) => CallReply::Marker(MarkerAck {
                        marker_offset: Some(command.value_or("offset", 10)?),
                    }),
                    Call::GroupTxnMarker(_) => CallReply::Marker(MarkerAck {
                        marker_offset: None,
                    }),
                }),
                "refuse" => {
                    let code = error_code(command.get("code").ok_or("`refuse` needs code=")?)?;
                    Err(CallError::Refused(ApiError::new(
                        code,
                        "refused by the test",
                    )))
                }
                _ => Err(CallError::NoAnswer("failed by the test".into())),
            };
            outputs.extend(self.core().on_call_result(id, result, now).unwrap());
        }
        Ok(outputs)
    }

    /// The stored rows, one line each.
    fn state(&self) -> Vec<String> {
        let sql = self.core.as_ref().unwrap().sql();
        let mut lines = Vec::new();
        for table in ["txn_coordinator", "txn_participant"] {
            let rows = sql
                .exec(&format!("SELECT * FROM {table} ORDER BY 1, 2"), &[])
                .unwrap();
            for row in rows {
                let values: Vec<String> = row
                    .0
                    .iter()
                    .map(|v| match v {
                        Value::Null => "NULL".into(),
                        Value::Integer(i) => i.to_string(),
                        Value::Real(r) => r.to_string(),
                        Value::Text(t) => t.clone(),
                        Value::Blob(b) => format!("<{} bytes>", b.len()),
                    })
                    .collect();
                lines.push(format!("{table}: {}", values.join(" | ")));
            }
        }
        lines
    }
}

impl Runner for Harness {
    fn run(&mut self, command: &Command) -> Result<String, String> {
        let client = command.get("client").unwrap_or("A").to_owned();
        let known = self.clients.get(&client).copied().unwrap_or(Client {
            producer_id: -1,
            producer_epoch: -1,
        });
        let producer_id = command.value_or("pid", known.producer_id)?;
        let producer_epoch = command.value_or("epoch", known.producer_epoch)?;
        let now = self.now_ms;
        let mut lines = Vec::new();
        let outputs = match command.name.as_str() {
            "init" => {
                let request = self.request(&client, "init");
                let req = InitProducerRequest {
                    transactional_id: Some(command.get("id").unwrap_or(TXN_ID).to_owned()),
                    transaction_timeout_ms: command.value("timeout")?,
                };
                self.core().init_producer(request, &req, now).unwrap()
            }
            "add" => {
                let request = self.request(&client, "add");
                let req = CoordinatorAddPartitions {
                    producer_id,
                    producer_epoch,
                    partitions: command
                        .positional()
                        .map(partition_ref)
                        .collect::<Result<_, _>>()?,
                };
                self.core().add_partitions(request, &req, now).unwrap()
            }
            "offsets" => {
                let request = self.request(&client, "offsets");
                let offsets = command
                    .partition_values()?
                    .into_iter()
                    .map(|(topic, partition, offset)| {
                        Ok(TopicPartitionOffset {
                            topic: topic.to_owned(),
                            partition,
                            offset: kafdo_golden::parse(offset, "offset")?,
                            metadata: None,
                        })
                    })
                    .collect::<Result<_, String>>()?;
                let req = AddOffsetsRequest {
                    producer_id,
                    producer_epoch,
                    group_id: command.required("group")?,
                    generation_id: command.required("gen")?,
                    member_id: command.required("member")?,
                    offsets,
                };
                self.core().add_offsets(request, &req, now).unwrap()
            }
            "commit" | "abort" => {
                let (op, result) = if command.name == "commit" {
                    ("commit", TxnResult::Commit)
                } else {
                    ("abort", TxnResult::Abort)
                };
                let request = self.request(&client, op);
                let req = EndTxnRequest {
                    producer_id,
                    producer_epoch,
                    keep_epoch: command.flag("keep-epoch"),
                };
                self.core().end_txn(request, &req, result, now).unwrap()
            }
            "admin-abort" => {
                let request = self.request("admin", "admin-abort");
                self.core().admin_abort(request, now).unwrap()
            }
            "describe" => {
                let d = self.core().describe(now);
                lines.push(serde_json::to_string(&d).unwrap());
                if let Some(open) = self.core().open_transaction(now) {
                    lines.push(format!("open: {}", serde_json::to_string(&open).unwrap()));
                }
                Vec::new()
            }
            "ack" | "refuse" | "fail" => self.resolve(command)?,
            "tick" => {
                self.now_ms += command.pos_parse::<i64>(0, "MS")?;
                lines.push(format!("now={}", self.now_ms));
                Vec::new()
            }
            "alarm" => self.core().on_alarm(now).unwrap(),
            "run-alarm" => {
                let at = self.core().next_alarm_ms().ok_or("no alarm is set")?;
                self.now_ms = self.now_ms.max(at);
                lines.push(format!("now={}", self.now_ms));
                let now = self.now_ms;
                self.core().on_alarm(now).unwrap()
            }
            "config" => {
                self.config.roll_epoch = command.required("roll")?;
                let core =
                    TxnCoordinator::open_with_config(Sqlite::memory(), TXN_ID, 0, self.config);
                self.core = Some(core.unwrap());
                Vec::new()
            }
            "restart" => {
                let sql = self.core.take().unwrap().into_sql();
                let core = TxnCoordinator::open_with_config(sql, TXN_ID, now, self.config);
                self.core = Some(core.unwrap());
                // The clients' requests died with the object.
                for (id, (client, op)) in std::mem::take(&mut self.requests) {
                    lines.push(format!("lost {id} {client} {op}"));
                }
                Vec::new()
            }
            "state" => {
                lines.extend(self.state());
                Vec::new()
            }
            other => return Err(format!("unknown command {other:?}")),
        };
        self.record(outputs, &mut lines);
        let status = self.status();
        if status != self.last_status {
            lines.push(status.clone());
            self.last_status = status;
        }
        Ok(lines.join("\n"))
    }
}

#[test]
fn golden_scripts() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scripts");
    let scripts = kafdo_golden::run_scripts(dir, Harness::new);
    assert!(scripts >= 8, "the scenarios are missing");
}
