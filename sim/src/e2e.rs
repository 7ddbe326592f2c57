//! Recording end-to-end runs (against `wrangler dev`) in the simulator's history format, so the
//! same [`crate::checker`] judges real runs.
//!
//! A test creates one [`HistoryFile`], shares it between its client threads (it is `Sync`),
//! and wraps every call it makes:
//!
//! ```no_run
//! use kafdo_sim::e2e::{self, HistoryFile, Outcome};
//! use kafdo_sim::history::Request;
//!
//! let history = HistoryFile::create("target/e2e-history.jsonl").unwrap();
//! let op = Request::InitProducer { transactional_id: Some("t1".into()) };
//! let answer = history.call(1, op, || -> Result<kafdo_types::api::InitProducerResponse, String> {
//!     unimplemented!("the HTTP call")
//! }, |r| match r {
//!     Ok(p) => Outcome::Ok(e2e::producer_reply(p)),
//!     Err(e) => Outcome::Info(e.clone()),
//! });
//! // ... at the end, once every transaction is settled: the final scans, then the check.
//! history.settled();
//! let report = history.check().unwrap();
//! assert!(report.is_valid(), "{report}");
//! ```
//!
//! What to record, for the checker to prove the most:
//!
//! - Every produced value unique across the run (`"p3-17"`), the same values on a retry.
//! - A keyed topic produce (`Idempotency-Key`) as one [`Request::Ingest`] naming each record's
//!   partition (explicit or by its key), answered with [`ingest_reply`]; a retry of the key
//!   sends the same records, and only within the key's TTL.
//! - An HTTP error answer with a code is a [`Outcome::Fail`]; a timeout, a connection error, a
//!   5xx without a body, or a crash is [`Outcome::Info`] (unknown outcome).
//! - After the run: [`HistoryFile::settled`], then a full read of every partition touched,
//!   once `read_uncommitted` and once `read_committed`, each recorded as one
//!   [`Request::Scan`] (concatenate the pages), then a `require_stable` offset fetch of every
//!   pipeline group. A run that skips them is still checked for every safety invariant.
//!
//! Events are written as they happen (one JSON line each, flushed), so a run that dies still
//! leaves its history on disk.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use kafdo_types::api::{
    FetchResponse, InitProducerResponse, PartitionProduceResponse, ProduceResponse,
};
use kafdo_types::txn::EndTxnResponse;
use kafdo_types::ErrorCode;

use crate::checker::{self, Malformed, Report};
use crate::history::{Entry, History, Observation, Process, ReadRecord, Recorder, Reply, Request};

/// How a recorded call ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// It succeeded with this answer.
    Ok(Reply),
    /// The server refused it with this code.
    Fail(ErrorCode, String),
    /// Unknown outcome: why.
    Info(String),
}

/// A history being recorded by an end-to-end run, shared by its client threads.
pub struct HistoryFile {
    inner: Mutex<Inner>,
    start: Instant,
}

struct Inner {
    recorder: Recorder,
    out: Option<BufWriter<File>>,
}

impl HistoryFile {
    /// Records into memory and into `path` (JSON lines, created or truncated).
    pub fn create(path: impl AsRef<Path>) -> std::io::Result<Self> {
        let out = BufWriter::new(File::create(path)?);
        Ok(Self::with_output(Some(out)))
    }

    /// Records into memory only.
    pub fn in_memory() -> Self {
        Self::with_output(None)
    }

    fn with_output(out: Option<BufWriter<File>>) -> Self {
        Self {
            inner: Mutex::new(Inner {
                recorder: Recorder::new(),
                out,
            }),
            start: Instant::now(),
        }
    }

    fn record(&self, entry: Entry) -> u64 {
        let time_ms = self.start.elapsed().as_millis() as i64;
        let mut inner = self.inner.lock().expect("history lock");
        let index = inner.recorder.record(time_ms, entry);
        let event = inner.recorder.history().events[index as usize].clone();
        if let Some(out) = inner.out.as_mut() {
            // Writing the history must not fail a test run; a broken file shows on reading.
            let _ = serde_json::to_writer(&mut *out, &event);
            let _ = out.write_all(b"\n");
            let _ = out.flush();
        }
        index
    }

    /// `process` sends `op`. Each process must wait for its completion before the next invoke.
    pub fn invoke(&self, process: Process, op: Request) -> u64 {
        self.record(Entry::Invoke { process, op })
    }

    /// `process`'s outstanding call ended.
    pub fn complete(&self, process: Process, outcome: Outcome) -> u64 {
        self.record(match outcome {
            Outcome::Ok(reply) => Entry::Ok { process, reply },
            Outcome::Fail(code, message) => Entry::Fail {
                process,
                code,
                message,
            },
            Outcome::Info(reason) => Entry::Info { process, reason },
        })
    }

    /// Invokes `op`, runs `f` (the real call), records how it ended with `judge`, and returns
    /// what `f` returned.
    pub fn call<T, E>(
        &self,
        process: Process,
        op: Request,
        f: impl FnOnce() -> Result<T, E>,
        judge: impl FnOnce(&Result<T, E>) -> Outcome,
    ) -> Result<T, E> {
        self.invoke(process, op);
        let result = f();
        self.complete(process, judge(&result));
        result
    }

    /// Something seen (a note, a pipeline declaration).
    pub fn observe(&self, observation: Observation) -> u64 {
        self.record(Entry::Observe { observation })
    }

    /// Marks the end of the workload: every transaction has ended; the final scans follow.
    pub fn settled(&self) -> u64 {
        self.observe(Observation::Settled)
    }

    /// The history so far.
    pub fn history(&self) -> History {
        self.inner
            .lock()
            .expect("history lock")
            .recorder
            .history()
            .clone()
    }

    /// Checks the history so far.
    pub fn check(&self) -> Result<Report, Malformed> {
        checker::check(&self.history())
    }
}

/// The history reply of a partition produce.
pub fn produce_reply(answer: &PartitionProduceResponse) -> Reply {
    Reply::Produce {
        base_offset: answer.base_offset,
        last_offset: answer.last_offset,
        duplicate: answer.duplicate,
    }
}

/// The history reply of a fetch (values read as UTF-8, as the workload writes them).
pub fn fetch_reply(answer: &FetchResponse) -> Reply {
    Reply::Fetch {
        records: answer.records.iter().map(ReadRecord::from_record).collect(),
        next_offset: answer.next_offset,
        high_watermark: answer.high_watermark,
        last_stable_offset: answer.last_stable_offset,
    }
}

/// The history reply of `POST /v1/producers`.
pub fn producer_reply(answer: &InitProducerResponse) -> Reply {
    Reply::Producer {
        producer_id: answer.producer_id,
        producer_epoch: answer.producer_epoch,
    }
}

/// The history reply of a keyed topic produce (`Idempotency-Key`, [`Request::Ingest`]).
pub fn ingest_reply(answer: &ProduceResponse) -> Reply {
    Reply::Ingest {
        offsets: answer.offsets.clone(),
    }
}

/// The history reply of a commit or an abort.
pub fn end_txn_reply(answer: &EndTxnResponse) -> Reply {
    Reply::EndTxn {
        state: answer.state,
        producer_id: Some(answer.producer_id),
        producer_epoch: answer.producer_epoch,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafdo_types::api::Isolation;

    #[test]
    fn threads_record_one_history_and_the_file_reads_back() {
        let dir = std::env::temp_dir().join(format!("kafdo-e2e-history-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("history.jsonl");
        let history = HistoryFile::create(&path).unwrap();
        std::thread::scope(|s| {
            for process in 1..=4u32 {
                let history = &history;
                s.spawn(move || {
                    let value = format!("p{process}-1");
                    let op = Request::Produce {
                        topic: "t".into(),
                        partition: 0,
                        producer_id: Some(i64::from(process)),
                        producer_epoch: Some(0),
                        base_sequence: Some(0),
                        transactional_id: None,
                        values: vec![value],
                        sources: vec![],
                    };
                    history.invoke(process, op);
                    history.complete(process, Outcome::Info("timeout".into()));
                });
            }
        });
        history.settled();
        let scan = |isolation| Request::Scan {
            topic: "t".into(),
            partition: 0,
            isolation,
        };
        let all = FetchResponse {
            records: (1..=4)
                .map(|p| kafdo_types::Record {
                    offset: p - 1,
                    timestamp: 0,
                    key: None,
                    value: Some(format!("p{p}-1").into_bytes()),
                    headers: vec![],
                })
                .collect(),
            next_offset: 4,
            high_watermark: 4,
            last_stable_offset: 4,
        };
        for isolation in [Isolation::ReadUncommitted, Isolation::ReadCommitted] {
            history
                .call(
                    0,
                    scan(isolation),
                    || Ok::<_, ()>(all.clone()),
                    |r| Outcome::Ok(fetch_reply(r.as_ref().unwrap())),
                )
                .unwrap();
        }
        let report = history.check().unwrap();
        assert!(report.is_valid(), "{report}");
        assert!(report.settled);
        let back =
            History::read_jsonl(std::io::BufReader::new(File::open(&path).unwrap())).unwrap();
        assert_eq!(back, history.history());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
