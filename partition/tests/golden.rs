//! Golden scenario tests, toydb style: each `tests/scripts/*.txt` is a readable scenario of
//! commands, each followed by its expected output on lines starting with `→`. The runner
//! executes the commands against a real partition core on in-memory SQLite and compares the
//! whole transcript with the file. `UPDATE_GOLDEN=1 cargo test -p kafdo-partition --test
//! golden` rewrites the files with the actual output (review the diff before committing).
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

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::rc::Rc;

use kafdo_partition::{Partition, PartitionConfig, PartitionError};
use kafdo_sql::Sqlite;
use kafdo_types::api::{CleanupPolicy, Isolation, TopicConfig};
use kafdo_types::record::ProduceRecord;
use kafdo_types::rpc::{
    AppendRequest, PartitionRef, ProducerBatch, ReadRequest, RegisterTxnRequest, TxnResult,
    WriteMarkerRequest,
};

struct Runner {
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

fn pref(topic_id: Option<&str>, retention_ms: i64, cleanup_policy: CleanupPolicy) -> PartitionRef {
    PartitionRef {
        topic: "t".into(),
        topic_id: topic_id.unwrap_or("1-t").into(),
        partition: 0,
        config: TopicConfig {
            retention_ms,
            cleanup_policy,
        },
    }
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

impl Runner {
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

    fn run(&mut self, line: &str) -> String {
        let mut words = line.split_whitespace();
        let command = words.next().expect("a command");
        let mut args: BTreeMap<&str, &str> = BTreeMap::new();
        let mut flags: Vec<&str> = Vec::new();
        for w in words {
            match w.split_once('=') {
                Some((k, v)) => {
                    args.insert(k, v);
                }
                None => flags.push(w),
            }
        }
        let int = |k: &str| args.get(k).map(|v| v.parse::<i64>().expect("an integer"));
        let topic_id = args.get("topic_id").copied();
        match command {
            "append" => {
                let mut records: Vec<ProduceRecord> = if let Some(v) = args.get("values") {
                    v.split(',')
                        .map(|v| ProduceRecord {
                            value: (v != "null").then(|| v.as_bytes().to_vec()),
                            ..ProduceRecord::default()
                        })
                        .collect()
                } else {
                    let n = int("records").unwrap_or(1) as usize;
                    (0..n)
                        .map(|_| {
                            let mut value = format!("r{}", self.generated).into_bytes();
                            self.generated += 1;
                            if let Some(size) = int("size") {
                                value.resize(size as usize, b'.');
                            }
                            ProduceRecord::value(value)
                        })
                        .collect()
                };
                if let Some(keys) = args.get("keys") {
                    for (r, k) in records.iter_mut().zip(keys.split(',')) {
                        r.key = Some(k.as_bytes().to_vec());
                    }
                }
                if let Some(ts) = int("ts") {
                    for r in &mut records {
                        r.timestamp = Some(ts);
                    }
                }
                let producer = int("pid").map(|pid| ProducerBatch {
                    producer_id: pid,
                    producer_epoch: int("epoch").unwrap_or(0) as i32,
                    base_sequence: int("seq").unwrap_or(0) as i32,
                });
                let req = AppendRequest {
                    partition: pref(topic_id, self.retention_ms, self.policy),
                    producer,
                    transactional: flags.contains(&"txn"),
                    records,
                };
                match self.core.append(&req, self.now_ms) {
                    Ok(r) => format!(
                        "ok base_offset={} last_offset={} duplicate={}",
                        r.base_offset, r.last_offset, r.duplicate
                    ),
                    Err(e) => error(e),
                }
            }
            "read" => {
                let isolation = match args.get("isolation").copied() {
                    None | Some("committed") => Isolation::ReadCommitted,
                    Some("uncommitted") => Isolation::ReadUncommitted,
                    Some(other) => panic!("unknown isolation {other}"),
                };
                let req = ReadRequest {
                    partition: pref(topic_id, self.retention_ms, self.policy),
                    offset: int("offset").unwrap_or(0),
                    max_records: int("max_records").unwrap_or(100) as u32,
                    max_bytes: int("max_bytes").unwrap_or(1 << 20) as u32,
                    isolation,
                    wait_ms: 0,
                };
                match self.core.read(&req, self.now_ms) {
                    Ok(r) => {
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
                        out
                    }
                    Err(e) => error(e),
                }
            }
            "info" => match self
                .core
                .info(&pref(topic_id, self.retention_ms, self.policy))
            {
                Ok(i) => format!(
                    "log_start_offset={} high_watermark={} last_stable_offset={}",
                    i.log_start_offset, i.high_watermark, i.last_stable_offset
                ),
                Err(e) => error(e),
            },
            "delete" => match self
                .core
                .delete(&pref(topic_id, self.retention_ms, self.policy))
            {
                Ok(()) => "ok".into(),
                Err(e) => error(e),
            },
            "register" => {
                let req = RegisterTxnRequest {
                    partition: pref(topic_id, self.retention_ms, self.policy),
                    transactional_id: args.get("tid").unwrap_or(&"tx").to_string(),
                    producer_id: int("pid").expect("pid="),
                    producer_epoch: int("epoch").expect("epoch=") as i32,
                };
                match self.core.register_txn(&req, self.now_ms) {
                    Ok(()) => "ok".into(),
                    Err(e) => error(e),
                }
            }
            "marker" => {
                let result = if flags.contains(&"commit") {
                    TxnResult::Commit
                } else {
                    assert!(flags.contains(&"abort"), "marker needs commit or abort");
                    TxnResult::Abort
                };
                let req = WriteMarkerRequest {
                    partition: pref(topic_id, self.retention_ms, self.policy),
                    producer_id: int("pid").expect("pid="),
                    producer_epoch: int("epoch").expect("epoch=") as i32,
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
            "open_txns" => {
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
            "producers" => format!("{}", self.core.producer_count()),
            "retention" => {
                self.retention_ms = flags.first().expect("retention MS").parse().expect("ms");
                "ok".into()
            }
            "policy" => {
                self.policy = match *flags.first().expect("policy compact|delete") {
                    "compact" => CleanupPolicy::Compact,
                    "delete" => CleanupPolicy::Delete,
                    other => panic!("unknown policy {other}"),
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
                let ms: i64 = flags.first().expect("tick MS").parse().expect("ms");
                self.now_ms += ms;
                format!("now_ms={}", self.now_ms)
            }
            "restart" => self.reopen(),
            "config" => {
                if let Some(n) = int("max_producers") {
                    self.config.max_producers = n as usize;
                }
                if let Some(ms) = int("expiry_ms") {
                    self.config.producer_expiry_ms = ms;
                }
                if let Some(ms) = int("delete_retention_ms") {
                    self.config.delete_retention_ms = ms;
                }
                if let Some(ms) = int("compaction_interval_ms") {
                    self.config.compaction_interval_ms = ms;
                }
                self.reopen()
            }
            other => panic!("unknown command {other:?}"),
        }
    }
}

fn run_script(text: &str) -> String {
    let mut runner = Runner::new();
    let mut out = String::new();
    for line in text.lines().filter(|l| !l.starts_with('→')) {
        out.push_str(line);
        out.push('\n');
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        for result_line in runner.run(trimmed).lines() {
            out.push_str("→ ");
            out.push_str(result_line);
            out.push('\n');
        }
        runner.core.verify().expect("the log's invariants hold");
    }
    out
}

#[test]
fn golden_scripts() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scripts");
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/scripts exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no scripts in {}", dir.display());
    let mut failed = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(&path).unwrap();
        let actual = run_script(&text);
        if actual == text {
            continue;
        }
        if update {
            std::fs::write(&path, &actual).unwrap();
            continue;
        }
        let first_diff = text
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(text.lines().count().min(actual.lines().count()));
        eprintln!(
            "{}: first difference at line {}:\n  expected: {:?}\n  actual:   {:?}",
            path.display(),
            first_diff + 1,
            text.lines().nth(first_diff),
            actual.lines().nth(first_diff)
        );
        failed.push(path.file_name().unwrap().to_string_lossy().into_owned());
    }
    assert!(
        failed.is_empty(),
        "golden scripts differ (rerun with UPDATE_GOLDEN=1 and review the diff): {failed:?}"
    );
}
