//! The simulator's checker judging a real run: concurrent idempotent producers that retry every
//! batch, a transactional producer that commits and aborts, a zombie fenced by a new instance,
//! a read_committed reader, and a read-process-write pipeline that crashes once and is resumed
//! by a successor, all against `wrangler dev`, every call recorded with
//! [`kafdo_sim::e2e::HistoryFile`] in the simulator's history format. After the run settles,
//! one read_uncommitted and one read_committed scan of every partition close the history, and
//! [`kafdo_sim::checker::check`] proves the same invariants it proves for simulated runs: no
//! acknowledged record lost or duplicated, nothing aborted or open seen by read_committed,
//! each transaction all-or-nothing, dense offsets with one value each, epochs only rising,
//! LSO <= high watermark, and every committed input of the pipeline with exactly one committed
//! output.
//!
//! The history is written to `target/tmp/e2e-history-<run>.jsonl` as it happens, so a failure
//! (or a run that dies) leaves the evidence (it is removed when the test passes); the failure
//! message prints the report and the readable trace too.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

use kafdo_e2e::{rng, shared, unique_topic, Client, FetchParams, Reply};
use kafdo_sim::e2e::{self, HistoryFile, Outcome};
use kafdo_sim::history::{self as h, Process, Request, Tp};
use kafdo_types::api::{
    FetchResponse, InitProducerRequest, InitProducerResponse, Isolation, PartitionProduceRequest,
};
use kafdo_types::group::{JoinGroupRequest, JoinGroupResponse, OffsetFetchResponse};
use kafdo_types::rpc::TopicPartitionOffset;
use kafdo_types::txn::{AddOffsetsRequest, AddPartitionsRequest, EndTxnRequest, TopicPartition};
use kafdo_types::{ErrorBody, ErrorCode, ProduceRecord};
use serde::de::DeserializeOwned;

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

    /// Commits or aborts; the producer id and epoch to go on with, when it ended.
    fn end(
        &self,
        id: &str,
        producer: &InitProducerResponse,
        commit: bool,
    ) -> Option<InitProducerResponse> {
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
                keep_epoch: false,
                producer_id: producer.producer_id,
                producer_epoch: producer.producer_epoch,
            },
            &[],
        );
        self.history
            .complete(self.process, outcome(&reply, e2e::end_txn_reply));
        (reply.status == 200).then(|| {
            let end: kafdo_types::txn::EndTxnResponse = reply.decode();
            InitProducerResponse {
                producer_id: end.producer_id,
                producer_epoch: end.producer_epoch,
            }
        })
    }

    /// Joins `group` (or rejoins as `member_id`) for `topic`; the member's view.
    fn join(&self, group: &str, topic: &str, member_id: Option<&str>) -> JoinGroupResponse {
        self.history.invoke(
            self.process,
            Request::JoinGroup {
                group_id: group.to_owned(),
                member_id: member_id.map(str::to_owned),
                topics: vec![topic.to_owned()],
            },
        );
        let reply = self.client.post(
            &format!("/v1/groups/{group}/members"),
            &JoinGroupRequest {
                member_id: member_id.map(str::to_owned),
                topics: vec![topic.to_owned()],
                session_timeout_ms: Some(120_000),
                ..Default::default()
            },
            &[],
        );
        self.history.complete(
            self.process,
            outcome(&reply, |m: &JoinGroupResponse| h::Reply::Member {
                member_id: m.member_id.clone(),
                generation_id: m.generation_id,
                assignment: m
                    .assignment
                    .iter()
                    .map(|tp| Tp::new(tp.topic.clone(), tp.partition))
                    .collect(),
            }),
        );
        reply.expect(200)
    }

    /// Adds the consumed offsets to the open transaction; the answer's status.
    fn add_offsets(
        &self,
        id: &str,
        producer: &InitProducerResponse,
        member: &JoinGroupResponse,
        group: &str,
        offsets: &[h::GroupOffset],
    ) -> u16 {
        self.history.invoke(
            self.process,
            Request::AddOffsets {
                transactional_id: id.to_owned(),
                producer_id: producer.producer_id,
                producer_epoch: producer.producer_epoch,
                group_id: group.to_owned(),
                generation_id: member.generation_id,
                member_id: member.member_id.clone(),
                offsets: offsets.to_vec(),
            },
        );
        let reply = self.client.post(
            &format!("/v1/transactions/{id}/offsets"),
            &AddOffsetsRequest {
                producer_id: producer.producer_id,
                producer_epoch: producer.producer_epoch,
                group_id: group.to_owned(),
                generation_id: member.generation_id,
                member_id: member.member_id.clone(),
                offsets: offsets
                    .iter()
                    .map(|o| TopicPartitionOffset {
                        topic: o.topic.clone(),
                        partition: o.partition,
                        offset: o.offset,
                        metadata: None,
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

    /// The group's committed offsets, waiting out pending transactional ones
    /// (`require_stable`, retried while `UNSTABLE_OFFSET_COMMIT`).
    fn stable_offsets(&self, group: &str) -> Vec<h::GroupOffset> {
        loop {
            self.history.invoke(
                self.process,
                Request::FetchOffsets {
                    group_id: group.to_owned(),
                    require_stable: true,
                },
            );
            let reply = self
                .client
                .get(&format!("/v1/groups/{group}/offsets?require_stable=true"));
            let offsets = |answer: &OffsetFetchResponse| -> Vec<h::GroupOffset> {
                answer
                    .offsets
                    .iter()
                    .map(|o| h::GroupOffset {
                        topic: o.topic.clone(),
                        partition: o.partition,
                        offset: o.offset,
                    })
                    .collect()
            };
            self.history.complete(
                self.process,
                outcome(&reply, |a| h::Reply::Offsets {
                    offsets: offsets(a),
                }),
            );
            if reply.status == 200 {
                return offsets(&reply.decode());
            }
            assert_eq!(
                reply.error().code,
                ErrorCode::UnstableOffsetCommit,
                "{}",
                reply.describe_body()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// One fetch from `offset`; the page when it answered.
    fn fetch(
        &self,
        tp: &Tp,
        offset: i64,
        isolation: Isolation,
        reader: &str,
    ) -> Option<FetchResponse> {
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
        (reply.status == 200).then(|| reply.decode())
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
        let mut all: Option<FetchResponse> = None;
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
        // Small pages, so readers and the pipeline take many steps.
        max_records: Some(7),
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
        producer = p.end(id, &producer, commit).expect("the transaction ended");
    }
}

/// A read_committed reader following every partition until `done`, then to the end.
fn reader(p: &Proc, tps: &[Tp], done: &AtomicBool) {
    let mut offsets = vec![0i64; tps.len()];
    loop {
        let finished = done.load(Ordering::Acquire);
        for (tp, offset) in tps.iter().zip(offsets.iter_mut()) {
            let reader = format!("r{}-{}", p.process, tp.partition);
            if let Some(page) = p.fetch(tp, *offset, Isolation::ReadCommitted, &reader) {
                *offset = page.next_offset;
            }
        }
        if finished {
            return;
        }
    }
}

/// A read-process-write pipeline: consumes `input` as the only member of `group`, writes one
/// output record per input record (`out-<input>-e<epoch>`, unique per attempt, to the same
/// partition number of `output`) and commits the consumed offsets in the same transaction;
/// about a third of the transactions
/// abort, after which it rewinds to the group's committed offsets (a new reader session). Once,
/// it crashes with a transaction open: a new instance inits the same transactional id (which
/// aborts it), rejoins as the same member, resumes from the committed offsets, and the old
/// instance's late offset commit is refused.
fn pipeline(
    p: &Proc,
    successor: &Proc,
    id: &str,
    group: &str,
    input: &[Tp],
    output: &str,
    rng: &mut fastrand::Rng,
) {
    let topic = &input[0].topic;
    let mut producer = p.init(Some(id)).expect("the pipeline's producer id");
    let mut member = p.join(group, topic, None);
    assert_eq!(
        member.assignment.len(),
        input.len(),
        "the only member owns every partition"
    );
    let mut current = p;
    let mut crash_at = Some(rng.usize(1..4));
    let mut pass = 0;
    'rewind: loop {
        pass += 1;
        let committed = current.stable_offsets(group);
        let mut offsets: Vec<i64> = input
            .iter()
            .map(|tp| {
                committed
                    .iter()
                    .find(|o| o.topic == tp.topic && o.partition == tp.partition)
                    .map_or(0, |o| o.offset)
            })
            .collect();
        loop {
            // One transaction: whatever one fetch per partition returns.
            let mut consumed: Vec<(usize, Vec<String>, i64)> = Vec::new();
            for (i, tp) in input.iter().enumerate() {
                let reader = format!("pipe{}-{pass}-{}", current.process, tp.partition);
                let page = current
                    .fetch(tp, offsets[i], Isolation::ReadCommitted, &reader)
                    .expect("the pipeline's fetch answered");
                if page.next_offset > offsets[i] {
                    let values = page
                        .records
                        .iter()
                        .map(|r| {
                            String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into()
                        })
                        .collect();
                    consumed.push((i, values, page.next_offset));
                }
            }
            if consumed.is_empty() {
                assert!(
                    crash_at.is_none(),
                    "the input ran out before the planned crash"
                );
                return;
            }
            let written: Vec<Tp> = consumed
                .iter()
                .filter(|(_, values, _)| !values.is_empty())
                .map(|(i, _, _)| Tp::new(output, input[*i].partition))
                .collect();
            if !written.is_empty() {
                assert_eq!(current.add_partitions(id, &producer, &written), 200);
            }
            for (i, values, _) in &consumed {
                if values.is_empty() {
                    continue;
                }
                let outputs: Vec<String> = values
                    .iter()
                    .map(|v| format!("out-{v}-e{}", producer.producer_epoch))
                    .collect();
                current.history.invoke(
                    current.process,
                    Request::Produce {
                        topic: output.to_owned(),
                        partition: input[*i].partition,
                        producer_id: Some(producer.producer_id),
                        producer_epoch: Some(producer.producer_epoch),
                        base_sequence: Some(0),
                        transactional_id: Some(id.to_owned()),
                        values: outputs.clone(),
                        sources: values.clone(),
                    },
                );
                let reply = current.client.produce_partition_reply(
                    output,
                    input[*i].partition,
                    &PartitionProduceRequest {
                        producer_id: Some(producer.producer_id),
                        producer_epoch: Some(producer.producer_epoch),
                        base_sequence: Some(0),
                        transactional: true,
                        records: outputs
                            .iter()
                            .map(|v| ProduceRecord::value(v.as_bytes().to_vec()))
                            .collect(),
                    },
                );
                current
                    .history
                    .complete(current.process, outcome(&reply, e2e::produce_reply));
                reply.expect_status(200);
            }
            let next: Vec<h::GroupOffset> = consumed
                .iter()
                .map(|(i, _, next)| h::GroupOffset {
                    topic: input[*i].topic.clone(),
                    partition: input[*i].partition,
                    offset: *next,
                })
                .collect();
            assert_eq!(
                current.add_offsets(id, &producer, &member, group, &next),
                200
            );
            if crash_at.is_some_and(|n| n == 0) {
                crash_at = None;
                // The crash: this instance stops with its transaction open. Its successor
                // takes over the transactional id and the membership.
                let zombie = (current.process, producer);
                current = successor;
                producer = current.init(Some(id)).expect("the successor's producer id");
                member = current.join(group, topic, Some(&member.member_id));
                let late = Proc {
                    client: current.client.clone(),
                    history: current.history,
                    process: zombie.0,
                };
                assert_ne!(late.add_offsets(id, &zombie.1, &member, group, &next), 200);
                continue 'rewind;
            }
            crash_at = crash_at.map(|n| n - 1);
            let commit = rng.u8(..3) != 0;
            producer = current
                .end(id, &producer, commit)
                .expect("the transaction ended");
            if commit {
                for (i, _, next) in &consumed {
                    offsets[*i] = *next;
                }
            } else {
                continue 'rewind;
            }
        }
    }
}

#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn the_checker_judges_a_real_run() {
    let client = shared().client();
    let mut rng = rng("the_checker_judges_a_real_run");
    let topic = unique_topic("history");
    client.create_topic(&topic, 3);
    let tps: Vec<Tp> = (0..3).map(|p| Tp::new(topic.clone(), p)).collect();
    let (input, output) = (unique_topic("history-in"), unique_topic("history-out"));
    client.create_topic(&input, 2);
    client.create_topic(&output, 2);
    let input_tps: Vec<Tp> = (0..2).map(|p| Tp::new(input.clone(), p)).collect();
    let output_tps: Vec<Tp> = (0..2).map(|p| Tp::new(output.clone(), p)).collect();
    let group = unique_topic("history-group");
    // Cargo's scratch directory for integration tests, inside the target directory.
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("e2e-history-{}-{topic}.jsonl", std::process::id()));
    let history = HistoryFile::create(&path).expect("the history file");
    let proc = |process| Proc {
        client: client.clone(),
        history: &history,
        process,
    };
    history.observe(h::Observation::Pipeline {
        group_id: group.clone(),
        input_topic: input.clone(),
        output_topic: output.clone(),
    });
    let seeds: Vec<u64> = (0..6).map(|_| rng.u64(..)).collect();
    let pipeline_id = unique_topic("history-pipeline");
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
            s.spawn(|| {
                let mut rng = fastrand::Rng::with_seed(seeds[4]);
                idempotent_producer(&proc(10), &input_tps, 25, &mut rng);
                pipeline(
                    &proc(8),
                    &proc(9),
                    &pipeline_id,
                    &group,
                    &input_tps,
                    &output,
                    &mut rng,
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
    for tp in tps.iter().chain(&input_tps).chain(&output_tps) {
        scanner.scan(tp, Isolation::ReadUncommitted);
        scanner.scan(tp, Isolation::ReadCommitted);
    }
    let offsets = scanner.stable_offsets(&group);

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
    // The pipeline consumed its whole input: its committed offsets are the input's ends.
    for tp in &input_tps {
        let end = client
            .partition_info(&tp.topic, tp.partition)
            .high_watermark;
        assert!(
            end == 0
                || offsets
                    .iter()
                    .any(|o| o.partition == tp.partition && o.offset == end),
            "the pipeline's offsets {offsets:?} must reach {tp}'s end {end}"
        );
    }
    eprintln!("the_checker_judges_a_real_run: {report}; {duplicates} duplicates");
    // Kept only when the test fails (for reading or replaying through the checker).
    let _ = std::fs::remove_file(&path);
}
