//! Golden scenario tests of the partition core (toydb style), in `tests/scripts/*.txt`, run by
//! the `kafdo-golden` harness (its docs describe the format: commands, `---`, their output, a
//! blank line). Every script runs against a real partition core on in-memory SQLite, which
//! checks the log's invariants (`Partition::verify`) after every command. `UPDATE_GOLDEN=1
//! cargo test -p kafdo-partition --test golden` rewrites the files with the actual output
//! (review the diff before committing).
//!
//! Commands (`key=value` arguments, all optional unless noted):
//!
//! - `append [pid= epoch= seq=] [txn] [values=a,b | records=N [size=BYTES]] [keys=k1,k2]
//!   [ts=T] [topic_id=ID]`: a batch; `records=N` makes values `r0`, `r1`, ... numbered across
//!   the script, `size` pads them to that many bytes.
//! - `read [offset=0] [max_records=100] [max_bytes=1048576] [isolation=committed|uncommitted]`
//! - `info [topic_id=ID]`, `delete [topic_id=ID]`
//! - `register pid= epoch= [tid=ID]`, `marker pid= epoch= commit|abort`, `open_txns`
//! - `retention MS` (the topic's `retention_ms` in later calls; the first call binds it),
//!   `retain` (apply retention now)
//! - `tick MS` (advance the clock), `restart` (drop the core, reopen on the same SQLite),
//!   `config max_producers=N expiry_ms=MS delete_retention_ms=MS compaction_interval_ms=MS`
//!   (reopen with other bounds), `producers`
//! - `policy compact|delete` (the topic's `cleanup_policy` in later calls; the first call
//!   binds it), `compact` (one compaction step), `next_compaction` (when one is due); in
//!   `values=`, `null` is a null value (a tombstone when keyed)

use std::fmt::Write as _;
use std::rc::Rc;

use kafdo_golden::{Command, Runner};
use kafdo_partition::{Partition, PartitionConfig, PartitionError};
use kafdo_sql::Sqlite;
use kafdo_types::api::{CleanupPolicy, Isolation, TopicConfig};
use kafdo_types::record::ProduceRecord;
use kafdo_types::rpc::{
    AppendRequest, DeleteRecordsRequest, OffsetForTimestampRequest, PartitionRef, ProducerBatch,
    ReadRequest, RegisterTxnRequest, TxnResult, WriteMarkerRequest,
};

struct Harness {
    db: Rc<Sqlite>,
    core: Partition<Rc<Sqlite>>,
    config: PartitionConfig,
    now_ms: i64,
    generated: usize,
    /// The topic's `retention_ms` the calls carry.
    retention_ms: i64,
    /// The topic's `cleanup_policy` the calls carry.
    policy: CleanupPolicy,
}

fn show_bytes(b: &Option<Vec<u8>>) -> String {
    match b {
        None => "null".into(),
        Some(b) if b.len() <= 24 && b.iter().all(|c| c.is_ascii_graphic()) => {
            String::from_utf8(b.clone()).expect("ascii")
        }
        Some(b) => format!("<{} bytes>", b.len()),
    }
}

fn error(e: PartitionError) -> String {
    format!("error {}: {e}", e.code())
}

impl Harness {
    fn new() -> Self {
        let db = Rc::new(Sqlite::memory());
        let now_ms = 1_000_000;
        let config = PartitionConfig::default();
        let core = Partition::open_with_config(db.clone(), now_ms, config).unwrap();
        Self {
            db,
            core,
            config,
            now_ms,
            generated: 0,
            retention_ms: TopicConfig::default().retention_ms,
            policy: CleanupPolicy::Delete,
        }
    }

    fn reopen(&mut self) -> String {
        match Partition::open_with_config(self.db.clone(), self.now_ms, self.config) {
            Ok(core) => {
                self.core = core;
                "ok".into()
            }
            Err(e) => error(e),
        }
    }

    /// The partition as the calls name it: `topic_id=` or the partition's own.
    fn pref(&self, command: &Command) -> PartitionRef {
        PartitionRef {
            topic: "t".into(),
            topic_id: command.get("topic_id").unwrap_or("1-t").into(),
            partition: 0,
            config: TopicConfig {
                retention_ms: self.retention_ms,
                cleanup_policy: self.policy,
            },
        }
    }

    fn append(&mut self, command: &Command) -> Result<String, String> {
        let mut records: Vec<ProduceRecord> = if let Some(values) = command.list("values") {
            values
                .into_iter()
                .map(|v| ProduceRecord {
                    value: (v != "null").then(|| v.as_bytes().to_vec()),
                    ..ProduceRecord::default()
                })
                .collect()
        } else {
            let size: Option<usize> = command.value("size")?;
            (0..command.value_or("records", 1)?)
                .map(|_| {
                    let mut value = format!("r{}", self.generated).into_bytes();
                    self.generated += 1;
                    if let Some(size) = size {
                        value.resize(size, b'.');
                    }
                    ProduceRecord::value(value)
                })
                .collect()
        };
        if let Some(keys) = command.list("keys") {
            for (r, k) in records.iter_mut().zip(keys) {
                r.key = Some(k.as_bytes().to_vec());
            }
        }
        // `ts=T` for every record, or `ts=T1,T2,...` one per record.
        if let Some(ts) = command.list("ts") {
            let ts: Vec<i64> = ts
                .iter()
                .map(|t| t.parse().map_err(|_| format!("bad ts {t:?}")))
                .collect::<Result<_, _>>()?;
            for (i, r) in records.iter_mut().enumerate() {
                r.timestamp = Some(if ts.len() == 1 { ts[0] } else { ts[i] });
            }
        }
        let producer = match command.value("pid")? {
            Some(producer_id) => Some(ProducerBatch {
                producer_id,
                producer_epoch: command.value_or("epoch", 0)?,
                base_sequence: command.value_or("seq", 0)?,
            }),
            None => None,
        };
        let req = AppendRequest {
            partition: self.pref(command),
            producer,
            transactional: command.flag("txn"),
            producer_ids_below: kafdo_types::rpc::ANY_PRODUCER_ID,
            records,
        };
        Ok(match self.core.append(&req, self.now_ms) {
            Ok(r) => format!(
                "ok base_offset={} last_offset={} duplicate={}",
                r.base_offset, r.last_offset, r.duplicate
            ),
            Err(e) => error(e),
        })
    }

    fn read(&mut self, command: &Command) -> Result<String, String> {
        let isolation = match command.get("isolation") {
            None | Some("committed") => Isolation::ReadCommitted,
            Some("uncommitted") => Isolation::ReadUncommitted,
            Some(other) => return Err(format!("unknown isolation {other:?}")),
        };
        let req = ReadRequest {
            partition: self.pref(command),
            offset: command.value_or("offset", 0)?,
            max_records: command.value_or("max_records", 100)?,
            max_bytes: command.value_or("max_bytes", 1 << 20)?,
            isolation,
            wait_ms: 0,
        };
        let r = match self.core.read(&req, self.now_ms) {
            Ok(r) => r,
            Err(e) => return Ok(error(e)),
        };
        let mut out = String::new();
        for rec in &r.records {
            write!(out, "offset={} ts={}", rec.offset, rec.timestamp).unwrap();
            if rec.key.is_some() {
                write!(out, " key={}", show_bytes(&rec.key)).unwrap();
            }
            writeln!(out, " value={}", show_bytes(&rec.value)).unwrap();
        }
        write!(
            out,
            "next_offset={} high_watermark={} last_stable_offset={}",
            r.next_offset, r.high_watermark, r.last_stable_offset
        )
        .unwrap();
        Ok(out)
    }

    fn open_txns(&self) -> String {
        let open = self.core.open_transactions();
        if open.is_empty() {
            return "none".into();
        }
        open.iter()
            .map(|t| {
                format!(
                    "{} pid={} epoch={} first_offset={} start_ms={}",
                    t.transactional_id,
                    t.producer_id,
                    t.producer_epoch,
                    t.first_offset.map_or("none".into(), |o| o.to_string()),
                    t.start_ms
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Runner for Harness {
    fn run(&mut self, command: &Command) -> Result<String, String> {
        let output = match command.name.as_str() {
            "append" => self.append(command)?,
            "read" => self.read(command)?,
            "info" => match self.core.info(&self.pref(command)) {
                Ok(i) => format!(
                    "log_start_offset={} high_watermark={} last_stable_offset={}",
                    i.log_start_offset, i.high_watermark, i.last_stable_offset
                ),
                Err(e) => error(e),
            },
            "offset_for" => {
                let isolation = match command.get("isolation") {
                    None | Some("committed") => Isolation::ReadCommitted,
                    Some("uncommitted") => Isolation::ReadUncommitted,
                    Some(other) => return Err(format!("unknown isolation {other:?}")),
                };
                let req = OffsetForTimestampRequest {
                    partition: self.pref(command),
                    timestamp: command.required("ts")?,
                    isolation,
                };
                match self.core.offset_for_timestamp(&req) {
                    Ok(found) => match (found.offset, found.timestamp) {
                        (Some(o), Some(t)) => format!("offset={o} ts={t}"),
                        _ => "none".into(),
                    },
                    Err(e) => error(e),
                }
            }
            "delete_records" => {
                let req = DeleteRecordsRequest {
                    partition: self.pref(command),
                    before: command.required("before")?,
                };
                match self.core.delete_records(&req) {
                    Ok(start) => format!("log_start_offset={start}"),
                    Err(e) => error(e),
                }
            }
            "next_alarm" => match self.core.next_alarm_ms(self.now_ms) {
                Ok(Some(ms)) if ms <= self.now_ms => "due now".into(),
                Ok(Some(ms)) => format!("due in {} ms", ms - self.now_ms),
                Ok(None) => "none".into(),
                Err(e) => error(e),
            },
            "delete" => match self.core.delete(&self.pref(command)) {
                Ok(()) => "ok".into(),
                Err(e) => error(e),
            },
            "register" => {
                let req = RegisterTxnRequest {
                    partition: self.pref(command),
                    transactional_id: command.get("tid").unwrap_or("tx").to_owned(),
                    producer_id: command.required("pid")?,
                    producer_epoch: command.required("epoch")?,
                    txn_seq: command.value("num")?.unwrap_or(0),
                };
                match self.core.register_txn(&req, self.now_ms) {
                    Ok(()) => "ok".into(),
                    Err(e) => error(e),
                }
            }
            "marker" => {
                let result = if command.flag("commit") {
                    TxnResult::Commit
                } else if command.flag("abort") {
                    TxnResult::Abort
                } else {
                    return Err("`marker` needs commit or abort".into());
                };
                let req = WriteMarkerRequest {
                    partition: self.pref(command),
                    producer_id: command.required("pid")?,
                    producer_epoch: command.required("epoch")?,
                    txn_seq: command.value("num")?.unwrap_or(0),
                    result,
                };
                match self.core.write_marker(&req, self.now_ms) {
                    Ok(ack) => match ack.marker_offset {
                        Some(o) => format!("ok marker_offset={o}"),
                        None => "ok marker_offset=none".into(),
                    },
                    Err(e) => error(e),
                }
            }
            "open_txns" => self.open_txns(),
            "producers" => format!("{}", self.core.producer_count()),
            "retention" => {
                self.retention_ms = command.pos_parse(0, "MS")?;
                "ok".into()
            }
            "policy" => {
                self.policy = match command.pos(0, "compact or delete")? {
                    "compact" => CleanupPolicy::Compact,
                    "delete" => CleanupPolicy::Delete,
                    other => return Err(format!("unknown policy {other:?}")),
                };
                "ok".into()
            }
            "compact" => match self.core.compact(self.now_ms) {
                Ok(s) => format!(
                    "rows_read={} records_read={} records_removed={} rows_rewritten={} \
                     rows_deleted={} round_finished={} cleaned_offset={}",
                    s.rows_read,
                    s.records_read,
                    s.records_removed,
                    s.rows_rewritten,
                    s.rows_deleted,
                    s.round_finished,
                    s.cleaned_offset
                ),
                Err(e) => error(e),
            },
            "next_compaction" => match self.core.next_compaction_ms(self.now_ms) {
                Some(ms) if ms <= self.now_ms => "due now".into(),
                Some(ms) => format!("due in {} ms", ms - self.now_ms),
                None => "none".into(),
            },
            "retain" => match self.core.enforce_retention(self.now_ms) {
                Ok(start) => format!("log_start_offset={start}"),
                Err(e) => error(e),
            },
            "tick" => {
                self.now_ms += command.pos_parse::<i64>(0, "MS")?;
                format!("now_ms={}", self.now_ms)
            }
            "restart" => self.reopen(),
            "config" => {
                if let Some(n) = command.value("max_producers")? {
                    self.config.max_producers = n;
                }
                if let Some(ms) = command.value("expiry_ms")? {
                    self.config.producer_expiry_ms = ms;
                }
                if let Some(ms) = command.value("delete_retention_ms")? {
                    self.config.delete_retention_ms = ms;
                }
                if let Some(ms) = command.value("compaction_interval_ms")? {
                    self.config.compaction_interval_ms = ms;
                }
                self.reopen()
            }
            other => return Err(format!("unknown command {other:?}")),
        };
        self.core.verify().expect("the log's invariants hold");
        Ok(output)
    }
}

#[test]
fn golden_scripts() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scripts");
    kafdo_golden::run_scripts(dir, Harness::new);
}
