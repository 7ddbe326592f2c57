//! The simulator's checker judging a real run: concurrent idempotent producers that retry every
//! batch, a transactional producer that commits and aborts, a zombie fenced by a new instance,
//! and a read_committed reader, all against `wrangler dev`, every call recorded with
//! [`kafdo_sim::e2e::HistoryFile`] in the simulator's history format. After the run settles,
//! one read_uncommitted and one read_committed scan of every partition close the history, and
//! [`kafdo_sim::checker::check`] proves the same invariants it proves for simulated runs: no
//! acknowledged record lost or duplicated, nothing aborted or open seen by read_committed,
//! each transaction all-or-nothing, dense offsets with one value each, epochs only rising,
//! LSO <= high watermark.
//!
//! The history is written to `target/tmp/e2e-history-<run>.jsonl` as it happens, so a failure (or a
//! run that dies) leaves the evidence (it is removed when the test passes); the failure message
//! prints the report and the readable trace too.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

use kafdo_e2e::{rng, shared, unique_topic, Client, FetchParams, Reply};
use kafdo_sim::e2e::{self, HistoryFile, Outcome};
use kafdo_sim::history::{self as h, Process, Request, Tp};
use kafdo_types::api::{
    InitProducerRequest, InitProducerResponse, Isolation, PartitionProduceRequest,
};
use kafdo_types::txn::{AddPartitionsRequest, EndTxnRequest, TopicPartition};
use kafdo_types::{ErrorBody, ProduceRecord};
use serde::de::DeserializeOwned;

macro_rules! client {
    ($test:expr) => {
        match shared($test) {
            Some(wrangler) => wrangler.client(),
            None => return,
        }
    };
}

/// How an HTTP answer goes into the history: 200 is the answer `ok` makes of the body; an error
/// body with a Kafka code is a refusal; anything else (a 5xx without a body, a broken body) is
/// an unknown outcome, which the checker treats as "may or may not have happened".
fn outcome<T: DeserializeOwned>(reply: &Reply, ok: impl FnOnce(&T) -> h::Reply) -> Outcome {
    if reply.status == 200 {
        return match reply.try_decode() {
            Ok(answer) => Outcome::Ok(ok(&answer)),
            Err(e) => Outcome::Info(format!(
                "undecodable 200 body ({e}): {}",
                reply.describe_body()
            )),
        };
    }
    match reply.try_decode::<ErrorBody>() {
        Ok(body) => Outcome::Fail(body.error.code, body.error.message),
        Err(_) => Outcome::Info(format!("HTTP {}: {}", reply.status, reply.describe_body())),
    }
}

/// One client process of the recorded run: at most one call outstanding, as the history format
/// requires.
struct Proc<'a> {
    client: Client,
    history: &'a HistoryFile,
    process: Process,
}

impl Proc<'_> {
    fn init(&self, transactional_id: Option<&str>) -> Option<InitProducerResponse> {
        self.history.invoke(
            self.process,
            Request::InitProducer {
                transactional_id: transactional_id.map(str::to_owned),
            },
        );
        let reply = self.client.post(
            "/v1/producers",
            &InitProducerRequest {
                transactional_id: transactional_id.map(str::to_owned),
                transaction_timeout_ms: None,
            },
            &[],
        );
        self.history
            .complete(self.process, outcome(&reply, e2e::producer_reply));
        (reply.status == 200).then(|| reply.decode())
    }

    /// One partition produce; the answer's status.
    fn produce(
        &self,
        tp: &Tp,
        producer: &InitProducerResponse,
        base_sequence: i32,
        transactional_id: Option<&str>,
        values: &[String],
    ) -> u16 {
        self.history.invoke(
            self.process,
            Request::Produce {
                topic: tp.topic.clone(),
                partition: tp.partition,
                producer_id: Some(producer.producer_id),
                producer_epoch: Some(producer.producer_epoch),
                base_sequence: Some(base_sequence),
                transactional_id: transactional_id.map(str::to_owned),
                values: values.to_vec(),
                sources: vec![],
            },
        );
        let reply = self.client.produce_partition_reply(
            &tp.topic,
            tp.partition,
            &PartitionProduceRequest {
                producer_id: Some(producer.producer_id),
                producer_epoch: Some(producer.producer_epoch),
                base_sequence: Some(base_sequence),
                transactional: transactional_id.is_some(),
                records: values
                    .iter()
                    .map(|v| ProduceRecord::value(v.as_bytes().to_vec()))
                    .collect(),
            },
        );
        self.history
            .complete(self.process, outcome(&reply, e2e::produce_reply));
        reply.status
    }

    fn add_partitions(&self, id: &str, producer: &InitProducerResponse, tps: &[Tp]) -> u16 {
        self.history.invoke(
            self.process,
            Request::AddPartitions {
                transactional_id: id.to_owned(),
                producer_id: producer.producer_id,
                producer_epoch: producer.producer_epoch,
                partitions: tps.to_vec(),
            },
        );
        let reply = self.client.post(
            &format!("/v1/transactions/{id}/partitions"),
            &AddPartitionsRequest {
                producer_id: producer.producer_id,
                producer_epoch: producer.producer_epoch,
                partitions: tps
                    .iter()
                    .map(|tp| TopicPartition {
                        topic: tp.topic.clone(),
                        partition: tp.partition,
                    })
                    .collect(),
            },
            &[],
        );
        self.history.complete(
            self.process,
            outcome(&reply, |_: &serde_json::Value| h::Reply::Done),
        );
        reply.status
    }

    /// Commits or aborts; the next epoch when it ended.
    fn end(&self, id: &str, producer: &InitProducerResponse, commit: bool) -> Option<i32> {
        self.history.invoke(
            self.process,
            Request::EndTxn {
                transactional_id: id.to_owned(),
                producer_id: producer.producer_id,
                producer_epoch: producer.producer_epoch,
                commit,
            },
        );
        let reply = self.client.post(
            &format!(
                "/v1/transactions/{id}/{}",
                if commit { "commit" } else { "abort" }
            ),
            &EndTxnRequest {
                producer_id: producer.producer_id,
                producer_epoch: producer.producer_epoch,
            },
            &[],
        );
        self.history
            .complete(self.process, outcome(&reply, e2e::end_txn_reply));
        (reply.status == 200).then(|| {
            reply
                .decode::<kafdo_types::txn::EndTxnResponse>()
                .producer_epoch
        })
    }

    /// One fetch from `offset`; the next offset when it answered.
    fn fetch(&self, tp: &Tp, offset: i64, isolation: Isolation, reader: &str) -> Option<i64> {
        self.history.invoke(
            self.process,
            Request::Fetch {
                topic: tp.topic.clone(),
                partition: tp.partition,
                offset,
                isolation,
                reader: reader.to_owned(),
            },
        );
        let reply =
            self.client
                .fetch_reply(&tp.topic, tp.partition, &fetch_params(offset, isolation));
        self.history
            .complete(self.process, outcome(&reply, e2e::fetch_reply));
        (reply.status == 200).then(|| {
            reply
                .decode::<kafdo_types::api::FetchResponse>()
                .next_offset
        })
    }

    /// A full read of `tp` from offset 0, page by page, recorded as one scan.
    fn scan(&self, tp: &Tp, isolation: Isolation) {
        self.history.invoke(
            self.process,
            Request::Scan {
                topic: tp.topic.clone(),
                partition: tp.partition,
                isolation,
            },
        );
        let mut offset = 0;
        let mut all: Option<kafdo_types::api::FetchResponse> = None;
        loop {
            let page = self
                .client
                .fetch(&tp.topic, tp.partition, &fetch_params(offset, isolation));
            let end = match isolation {
                Isolation::ReadCommitted => page.last_stable_offset,
                Isolation::ReadUncommitted => page.high_watermark,
            };
            let progressed = page.next_offset > offset;
            offset = page.next_offset;
            match all.as_mut() {
                None => all = Some(page),
                Some(all) => {
                    all.records.extend(page.records);
                    all.next_offset = page.next_offset;
                    all.high_watermark = page.high_watermark;
                    all.last_stable_offset = page.last_stable_offset;
                }
            }
            if offset >= end || !progressed {
                break;
            }
        }
        let all = all.expect("at least one page");
        self.history
            .complete(self.process, Outcome::Ok(e2e::fetch_reply(&all)));
    }
}

fn fetch_params(offset: i64, isolation: Isolation) -> FetchParams {
    FetchParams {
        isolation: Some(match isolation {
            Isolation::ReadCommitted => "read_committed",
            Isolation::ReadUncommitted => "read_uncommitted",
        }),
        ..FetchParams::at(offset)
    }
}

/// An idempotent producer: `batches` batches of 1 to 5 values to random partitions, each sent 1
/// to 3 times (a client retrying an answer it did not trust). Every send is its own call, so
/// the retries come back as duplicates with the original offsets.
fn idempotent_producer(p: &Proc, tps: &[Tp], batches: usize, rng: &mut fastrand::Rng) {
    let producer = p.init(None).expect("an idempotent producer id");
    let mut sequences: BTreeMap<i32, i32> = BTreeMap::new();
    for batch in 0..batches {
        let tp = &tps[rng.usize(..tps.len())];
        let values: Vec<String> = (0..rng.usize(1..=5))
            .map(|i| format!("p{}-b{batch}-{i}", p.process))
            .collect();
        let sequence = sequences.entry(tp.partition).or_insert(0);
        let mut acknowledged = false;
        for _ in 0..rng.usize(1..=3) {
            acknowledged |= p.produce(tp, &producer, *sequence, None, &values) == 200;
        }
        assert!(
            acknowledged,
            "batch {batch} of process {} was refused",
            p.process
        );
        *sequence += values.len() as i32;
    }
}

/// A transactional producer: `txns` transactions over random partitions, each committed or
/// aborted at random; every end bumps the epoch and restarts the sequences.
fn transactional_producer(p: &Proc, id: &str, tps: &[Tp], txns: usize, rng: &mut fastrand::Rng) {
    let mut producer = p.init(Some(id)).expect("a transactional producer id");
    for txn in 0..txns {
        let written: Vec<Tp> = tps
            .iter()
            .filter(|_| rng.bool())
            .cloned()
            .collect::<Vec<_>>();
        let written = if written.is_empty() {
            vec![tps[rng.usize(..tps.len())].clone()]
        } else {
            written
        };
        assert_eq!(p.add_partitions(id, &producer, &written), 200);
        for tp in &written {
            let mut sequence = 0;
            for batch in 0..rng.usize(1..=2) {
                let values: Vec<String> = (0..rng.usize(1..=4))
                    .map(|i| format!("{id}-t{txn}-{}-{batch}-{i}", tp.partition))
                    .collect();
                // A retried transactional batch is a duplicate too.
                for _ in 0..rng.usize(1..=2) {
                    assert_eq!(p.produce(tp, &producer, sequence, Some(id), &values), 200);
                }
                sequence += values.len() as i32;
            }
        }
        let commit = rng.u8(..3) != 0;
        producer.producer_epoch = p.end(id, &producer, commit).expect("the transaction ended");
    }
}

/// A read_committed reader following every partition until `done`, then to the end.
fn reader(p: &Proc, tps: &[Tp], done: &AtomicBool) {
    let mut offsets = vec![0i64; tps.len()];
    loop {
        let finished = done.load(Ordering::Acquire);
        for (tp, offset) in tps.iter().zip(offsets.iter_mut()) {
            let reader = format!("r{}-{}", p.process, tp.partition);
            if let Some(next) = p.fetch(tp, *offset, Isolation::ReadCommitted, &reader) {
                *offset = next;
            }
        }
        if finished {
            return;
        }
    }
}

#[test]
fn the_checker_judges_a_real_run() {
    let client = client!("the_checker_judges_a_real_run");
    let mut rng = rng("the_checker_judges_a_real_run");
    let topic = unique_topic("history");
    client.create_topic(&topic, 3);
    let tps: Vec<Tp> = (0..3).map(|p| Tp::new(topic.clone(), p)).collect();
    // Cargo's scratch directory for integration tests, inside the target directory.
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("e2e-history-{}-{topic}.jsonl", std::process::id()));
    let history = HistoryFile::create(&path).expect("the history file");
    let proc = |process| Proc {
        client: client.clone(),
        history: &history,
        process,
    };
    let seeds: Vec<u64> = (0..5).map(|_| rng.u64(..)).collect();
    let txn_id = unique_topic("history-txn");
    let zombie_id = unique_topic("history-zombie");
    let done = AtomicBool::new(false);

    std::thread::scope(|s| {
        let readers = s.spawn(|| reader(&proc(1), &tps, &done));
        let workers = [
            s.spawn(|| {
                idempotent_producer(&proc(2), &tps, 40, &mut fastrand::Rng::with_seed(seeds[0]))
            }),
            s.spawn(|| {
                idempotent_producer(&proc(3), &tps, 40, &mut fastrand::Rng::with_seed(seeds[1]))
            }),
            s.spawn(|| {
                transactional_producer(
                    &proc(4),
                    &txn_id,
                    &tps,
                    20,
                    &mut fastrand::Rng::with_seed(seeds[2]),
                )
            }),
            s.spawn(|| {
                // A zombie: its open transaction is aborted when a new instance inits the
                // same transactional id, and its next write is fenced.
                let zombie = proc(5);
                let old = zombie.init(Some(&zombie_id)).expect("zombie init");
                assert_eq!(zombie.add_partitions(&zombie_id, &old, &tps[..1]), 200);
                let open = vec![format!("{zombie_id}-open")];
                assert_eq!(
                    zombie.produce(&tps[0], &old, 0, Some(&zombie_id), &open),
                    200
                );
                transactional_producer(
                    &proc(6),
                    &zombie_id,
                    &tps,
                    5,
                    &mut fastrand::Rng::with_seed(seeds[3]),
                );
                let late = vec![format!("{zombie_id}-late")];
                assert_ne!(
                    zombie.produce(&tps[0], &old, 1, Some(&zombie_id), &late),
                    200
                );
            }),
        ];
        for worker in workers {
            worker.join().expect("a producer failed");
        }
        done.store(true, Ordering::Release);
        readers.join().expect("the reader failed");
    });

    history.settled();
    let scanner = proc(7);
    for tp in &tps {
        scanner.scan(tp, Isolation::ReadUncommitted);
        scanner.scan(tp, Isolation::ReadCommitted);
    }

    let report = history.check().expect("a well-formed history");
    let trace = || history.history().trace();
    assert!(report.is_valid(), "{report}\n\n{}", trace());
    assert!(report.settled, "{report}");
    assert!(
        report.committed_txns > 0 && report.aborted_txns > 0,
        "the run must exercise both outcomes: {report}"
    );
    let duplicates = history
        .history()
        .events
        .iter()
        .filter(|e| {
            matches!(
                e.entry,
                h::Entry::Ok {
                    reply: h::Reply::Produce {
                        duplicate: true,
                        ..
                    },
                    ..
                }
            )
        })
        .count();
    assert!(duplicates > 0, "the retries must come back as duplicates");
    eprintln!("the_checker_judges_a_real_run: {report}; {duplicates} duplicates");
    // Kept only when the test fails (for reading or replaying through the checker).
    let _ = std::fs::remove_file(&path);
}
