//! End-to-end tests of issue 4: transactions on `wrangler dev` (real workerd, real Durable
//! Objects).
//!
//! A transactional producer inits (`POST /v1/producers {"transactional_id"}`), registers the
//! partitions it writes to (`POST /v1/transactions/{id}/partitions`), writes transactional
//! batches (partition produce with `"transactional": true`), and commits or aborts; every end
//! bumps the epoch. The tests read back with both isolations and check what a read_committed
//! reader may see: committed records exactly once, in order; never an aborted or open one.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kafdo_e2e::{rng, shared, unique_topic, Client, FetchParams, Reply};
use kafdo_types::api::{
    InitProducerRequest, InitProducerResponse, Isolation, PartitionProduceRequest,
    PartitionProduceResponse,
};
use kafdo_types::txn::{
    AddPartitionsRequest, EndTxnRequest, EndTxnResponse, OpenTransactionList, TopicPartition,
    TransactionDescription, TransactionState,
};
use kafdo_types::{ErrorCode, ProduceRecord};

/// A transactional producer as the tests drive it.
struct Txn<'a> {
    client: &'a Client,
    id: String,
    producer_id: i64,
    producer_epoch: i32,
    /// The next sequence number per (topic, partition) in the current epoch.
    sequences: BTreeMap<(String, i32), i32>,
}

fn init_reply(client: &Client, id: &str, timeout_ms: Option<i64>) -> Reply {
    client.post(
        "/v1/producers",
        &InitProducerRequest {
            transactional_id: Some(id.to_owned()),
            transaction_timeout_ms: timeout_ms,
        },
        &[],
    )
}

impl<'a> Txn<'a> {
    fn init(client: &'a Client, id: &str, timeout_ms: Option<i64>) -> Txn<'a> {
        let p: InitProducerResponse = init_reply(client, id, timeout_ms).expect(200);
        Txn {
            client,
            id: id.to_owned(),
            producer_id: p.producer_id,
            producer_epoch: p.producer_epoch,
            sequences: BTreeMap::new(),
        }
    }

    /// A producer that already holds an id and epoch (a client that outlived a restart).
    fn init_from(client: &'a Client, id: &str, producer_id: i64, producer_epoch: i32) -> Txn<'a> {
        Txn {
            client,
            id: id.to_owned(),
            producer_id,
            producer_epoch,
            sequences: BTreeMap::new(),
        }
    }

    fn path(&self, rest: &str) -> String {
        format!("/v1/transactions/{}{rest}", self.id)
    }

    fn add_reply(&self, partitions: &[(&str, i32)]) -> Reply {
        self.client.post(
            &self.path("/partitions"),
            &AddPartitionsRequest {
                producer_id: self.producer_id,
                producer_epoch: self.producer_epoch,
                partitions: partitions
                    .iter()
                    .map(|(t, p)| TopicPartition {
                        topic: t.to_string(),
                        partition: *p,
                    })
                    .collect(),
            },
            &[],
        )
    }

    fn add(&self, partitions: &[(&str, i32)]) {
        self.add_reply(partitions).expect_status(200);
    }

    fn produce_reply(&mut self, topic: &str, partition: i32, values: &[Vec<u8>]) -> Reply {
        let key = (topic.to_owned(), partition);
        let base_sequence = *self.sequences.get(&key).unwrap_or(&0);
        let reply = self.client.produce_partition_reply(
            topic,
            partition,
            &PartitionProduceRequest {
                producer_id: Some(self.producer_id),
                producer_epoch: Some(self.producer_epoch),
                base_sequence: Some(base_sequence),
                transactional: true,
                records: values
                    .iter()
                    .map(|v| ProduceRecord::value(v.clone()))
                    .collect(),
            },
        );
        if reply.status == 200 {
            self.sequences
                .insert(key, base_sequence + values.len() as i32);
        }
        reply
    }

    fn produce(&mut self, topic: &str, partition: i32, values: &[Vec<u8>]) {
        let _: PartitionProduceResponse = self.produce_reply(topic, partition, values).expect(200);
    }

    fn end_reply(&self, commit: bool) -> Reply {
        self.client.post(
            &self.path(if commit { "/commit" } else { "/abort" }),
            &EndTxnRequest {
                keep_epoch: false,
                producer_id: self.producer_id,
                producer_epoch: self.producer_epoch,
            },
            &[],
        )
    }

    fn end(&mut self, commit: bool) -> EndTxnResponse {
        let answer: EndTxnResponse = self.end_reply(commit).expect(200);
        let state = if commit {
            TransactionState::CompleteCommit
        } else {
            TransactionState::CompleteAbort
        };
        assert_eq!(answer.state, state);
        // The Worker moves to a new producer id only after about 2^31 epochs.
        assert_eq!(answer.producer_id, self.producer_id);
        assert_eq!(
            answer.producer_epoch,
            self.producer_epoch + 1,
            "bumped once"
        );
        self.producer_epoch = answer.producer_epoch;
        self.sequences.clear();
        answer
    }

    fn describe(&self) -> TransactionDescription {
        self.client.get(&self.path("")).expect(200)
    }
}

fn values(tag: &str, n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| format!("{tag}-{i}").into_bytes()).collect()
}

fn read(client: &Client, topic: &str, partition: i32, isolation: Isolation) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let page = client.fetch(
            topic,
            partition,
            &FetchParams {
                isolation: Some(match isolation {
                    Isolation::ReadCommitted => "read_committed",
                    Isolation::ReadUncommitted => "read_uncommitted",
                }),
                ..FetchParams::at(offset)
            },
        );
        let stop = match isolation {
            Isolation::ReadCommitted => page.last_stable_offset,
            Isolation::ReadUncommitted => page.high_watermark,
        };
        out.extend(
            page.records
                .into_iter()
                .map(|r| r.value.unwrap_or_default()),
        );
        if page.next_offset >= stop || page.next_offset == offset {
            return out;
        }
        offset = page.next_offset;
    }
}

fn committed(client: &Client, topic: &str, partition: i32) -> Vec<Vec<u8>> {
    read(client, topic, partition, Isolation::ReadCommitted)
}

#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn commit_across_three_partitions_of_two_topics() {
    let client = shared().client();
    let (a, b) = (unique_topic("txn-a"), unique_topic("txn-b"));
    client.create_topic(&a, 2);
    client.create_topic(&b, 1);
    let mut txn = Txn::init(&client, &unique_topic("tx-commit"), None);
    let first_epoch = txn.producer_epoch;
    txn.add(&[(&a, 0), (&a, 1), (&b, 0)]);
    txn.produce(&a, 0, &values("a0", 3));
    txn.produce(&a, 1, &values("a1", 2));
    txn.produce(&b, 0, &values("b0", 4));
    txn.produce(&a, 0, &values("a0-more", 1));

    // Open: read_committed sees nothing, read_uncommitted everything, the LSO is held back.
    assert!(committed(&client, &a, 0).is_empty());
    assert_eq!(read(&client, &a, 0, Isolation::ReadUncommitted).len(), 4);
    let info = client.partition_info(&a, 0);
    assert_eq!(info.last_stable_offset, 0);
    assert_eq!(info.high_watermark, 4);
    let d = txn.describe();
    assert_eq!(d.state, TransactionState::Ongoing);
    assert_eq!(d.partitions.len(), 3);

    // The admin list shows it, with the LSO it holds back.
    let list: OpenTransactionList = client.get("/v1/admin/transactions").expect(200);
    let open = list
        .transactions
        .iter()
        .find(|t| t.transactional_id == txn.id)
        .expect("the open transaction is listed");
    assert_eq!(open.state, TransactionState::Ongoing);
    assert_eq!(open.partitions.len(), 3);
    assert!(open
        .partitions
        .iter()
        .any(|p| p.topic == a && p.partition == 0 && p.first_offset == Some(0)));

    let answer = txn.end(true);
    assert_eq!(answer.producer_epoch, first_epoch + 1);
    let mut a0 = values("a0", 3);
    a0.extend(values("a0-more", 1));
    assert_eq!(committed(&client, &a, 0), a0);
    assert_eq!(committed(&client, &a, 1), values("a1", 2));
    assert_eq!(committed(&client, &b, 0), values("b0", 4));
    let info = client.partition_info(&a, 0);
    assert_eq!(
        info.last_stable_offset, info.high_watermark,
        "the marker is in"
    );
    assert_eq!(txn.describe().state, TransactionState::CompleteCommit);

    // A commit retried with the old epoch answers the same (an unknown outcome is retried).
    let retry: EndTxnResponse = txn
        .client
        .post(
            &txn.path("/commit"),
            &EndTxnRequest {
                keep_epoch: false,
                producer_id: txn.producer_id,
                producer_epoch: first_epoch,
            },
            &[],
        )
        .expect(200);
    assert_eq!(retry.producer_epoch, first_epoch + 1);
    let list: OpenTransactionList = client.get("/v1/admin/transactions").expect(200);
    assert!(list
        .transactions
        .iter()
        .all(|t| t.transactional_id != txn.id));
}

#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn abort_hides_the_records_from_read_committed() {
    let client = shared().client();
    let topic = unique_topic("txn-abort");
    client.create_topic(&topic, 1);
    let mut txn = Txn::init(&client, &unique_topic("tx-abort"), None);
    txn.add(&[(&topic, 0)]);
    txn.produce(&topic, 0, &values("aborted", 5));
    txn.end(false);
    assert!(committed(&client, &topic, 0).is_empty());
    assert_eq!(
        read(&client, &topic, 0, Isolation::ReadUncommitted).len(),
        5
    );
    // The next transaction with the bumped epoch commits; only it is seen.
    txn.add(&[(&topic, 0)]);
    txn.produce(&topic, 0, &values("kept", 2));
    txn.end(true);
    assert_eq!(committed(&client, &topic, 0), values("kept", 2));
    // A write without registration is refused (KIP-890 part 1).
    let reply = txn.produce_reply(&topic, 0, &values("unregistered", 1));
    assert_eq!(reply.status, 409, "{}", reply.describe_body());
}

#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn a_new_init_fences_the_old_instance() {
    let client = shared().client();
    let topic = unique_topic("txn-zombie");
    client.create_topic(&topic, 2);
    let id = unique_topic("tx-zombie");
    let mut zombie = Txn::init(&client, &id, None);
    zombie.add(&[(&topic, 0)]);
    zombie.produce(&topic, 0, &values("zombie", 3));

    // The new instance: same producer id, a higher epoch; the zombie's transaction is aborted.
    let mut fresh = Txn::init(&client, &id, None);
    assert_eq!(fresh.producer_id, zombie.producer_id);
    assert!(fresh.producer_epoch > zombie.producer_epoch);

    // Every request of the zombie is refused: produce, add, offsets, commit.
    let reply = zombie.produce_reply(&topic, 0, &values("zombie-more", 1));
    assert_eq!(reply.error().code, ErrorCode::ProducerFenced, "produce");
    let reply = zombie.add_reply(&[(&topic, 1)]);
    assert_eq!(
        reply.error().code,
        ErrorCode::ProducerFenced,
        "add partitions"
    );
    let reply = client.post(
        &zombie.path("/offsets"),
        &kafdo_types::txn::AddOffsetsRequest {
            producer_id: zombie.producer_id,
            producer_epoch: zombie.producer_epoch,
            group_id: "g".into(),
            generation_id: 1,
            member_id: "m".into(),
            offsets: vec![kafdo_types::rpc::TopicPartitionOffset {
                topic: topic.clone(),
                partition: 0,
                offset: 1,
                metadata: None,
            }],
        },
        &[],
    );
    assert_eq!(reply.error().code, ErrorCode::ProducerFenced, "offsets");
    let reply = zombie.end_reply(true);
    assert_eq!(reply.error().code, ErrorCode::ProducerFenced, "commit");

    // Nothing of the zombie is ever visible; the new instance commits normally.
    fresh.add(&[(&topic, 0)]);
    fresh.produce(&topic, 0, &values("fresh", 2));
    fresh.end(true);
    assert_eq!(committed(&client, &topic, 0), values("fresh", 2));
}

#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn a_transaction_past_its_timeout_is_aborted() {
    let client = shared().client();
    let topic = unique_topic("txn-timeout");
    client.create_topic(&topic, 1);
    let mut txn = Txn::init(&client, &unique_topic("tx-timeout"), Some(500));
    txn.add(&[(&topic, 0)]);
    txn.produce(&topic, 0, &values("late", 3));
    // The alarm aborts it; the LSO moves past the aborted records.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let d = txn.describe();
        if d.state == TransactionState::CompleteAbort {
            break;
        }
        assert!(Instant::now() < deadline, "still {:?}", d.state);
        std::thread::sleep(Duration::from_millis(100));
    }
    let info = client.partition_info(&topic, 0);
    assert_eq!(info.last_stable_offset, info.high_watermark);
    assert!(committed(&client, &topic, 0).is_empty());
    let reply = txn.end_reply(true);
    assert_eq!(reply.error().code, ErrorCode::TransactionTimedOut);
    // Aborting tells the producer the epoch to continue with.
    let answer: EndTxnResponse = txn.end_reply(false).expect(200);
    txn.producer_id = answer.producer_id;
    txn.producer_epoch = answer.producer_epoch;
    txn.sequences.clear();
    txn.add(&[(&topic, 0)]);
    txn.produce(&topic, 0, &values("after", 1));
    txn.end(true);
    assert_eq!(committed(&client, &topic, 0), values("after", 1));
}

#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn admin_abort_ends_a_hanging_transaction() {
    let client = shared().client();
    let topic = unique_topic("txn-admin");
    client.create_topic(&topic, 1);
    let mut txn = Txn::init(&client, &unique_topic("tx-admin"), None);
    txn.add(&[(&topic, 0)]);
    txn.produce(&topic, 0, &values("hanging", 2));
    assert_eq!(client.partition_info(&topic, 0).last_stable_offset, 0);
    let answer: EndTxnResponse = client
        .post(
            &format!("/v1/admin/transactions/{}/abort", txn.id),
            &(),
            &[],
        )
        .expect(200);
    assert_eq!(answer.state, TransactionState::CompleteAbort);
    let info = client.partition_info(&topic, 0);
    assert_eq!(info.last_stable_offset, info.high_watermark);
    // The instance is fenced.
    assert_eq!(txn.end_reply(true).error().code, ErrorCode::ProducerFenced);
}

/// Reads a partition as a read_committed consumer does, from `offset` on, and returns what it
/// saw and where to continue.
fn poll(client: &Client, topic: &str, partition: i32, offset: i64) -> (Vec<Vec<u8>>, i64) {
    let page = client.fetch(topic, partition, &FetchParams::at(offset));
    assert!(page.last_stable_offset <= page.high_watermark);
    (
        page.records
            .into_iter()
            .map(|r| r.value.unwrap_or_default())
            .collect(),
        page.next_offset,
    )
}

/// One transactional writer that commits or aborts at random. Returns the committed values per
/// partition, in order.
fn random_writer(
    client: &Client,
    topic: &str,
    partitions: i32,
    id: &str,
    transactions: usize,
    seed: u64,
    stop: &AtomicBool,
) -> Vec<Vec<Vec<u8>>> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut txn = Txn::init(client, id, None);
    let mut expected = vec![Vec::new(); partitions as usize];
    for t in 0..transactions {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let chosen: Vec<i32> = (0..partitions).filter(|_| rng.bool()).collect();
        let chosen = if chosen.is_empty() {
            vec![rng.i32(0..partitions)]
        } else {
            chosen
        };
        let adds: Vec<(&str, i32)> = chosen.iter().map(|&p| (topic, p)).collect();
        txn.add(&adds);
        let mut written = Vec::new();
        for &p in &chosen {
            let vals = values(&format!("{id}-t{t}-p{p}"), rng.usize(1..=3));
            txn.produce(topic, p, &vals);
            written.push((p, vals));
        }
        let commit = rng.bool();
        txn.end(commit);
        if commit {
            for (p, vals) in written {
                expected[p as usize].extend(vals);
            }
        }
    }
    expected
}

#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn read_committed_never_sees_aborted_or_open_records() {
    let client = shared().client();
    let mut rng = rng("read_committed_never_sees_aborted_or_open_records");
    let topic = unique_topic("txn-concurrent");
    let partitions = 2;
    client.create_topic(&topic, partitions);
    let stop = Arc::new(AtomicBool::new(false));
    let seen: Arc<Mutex<Vec<Vec<Vec<u8>>>>> = Arc::new(Mutex::new(vec![Vec::new(); 2]));
    let writer = {
        let (client, topic, stop) = (client.clone(), topic.clone(), Arc::clone(&stop));
        let seed = rng.u64(..);
        std::thread::spawn(move || {
            let id = unique_topic("tx-concurrent");
            random_writer(&client, &topic, partitions, &id, 60, seed, &stop)
        })
    };
    // Readers poll while the writer runs; they must only ever see committed records.
    let readers: Vec<_> = (0..partitions)
        .map(|p| {
            let (client, topic, stop, seen) = (
                client.clone(),
                topic.clone(),
                Arc::clone(&stop),
                Arc::clone(&seen),
            );
            std::thread::spawn(move || {
                let mut offset = 0;
                while !stop.load(Ordering::Relaxed) {
                    let (vals, next) = poll(&client, &topic, p, offset);
                    offset = next;
                    seen.lock().unwrap()[p as usize].extend(vals);
                    std::thread::sleep(Duration::from_millis(20));
                }
                offset
            })
        })
        .collect();
    let expected = writer.join().unwrap();
    stop.store(true, Ordering::Relaxed);
    let offsets: Vec<i64> = readers.into_iter().map(|r| r.join().unwrap()).collect();
    let mut seen = seen.lock().unwrap().clone();
    for p in 0..partitions as usize {
        // Drain what the readers had not reached yet.
        let mut offset = offsets[p];
        loop {
            let (vals, next) = poll(&client, &topic, p as i32, offset);
            if vals.is_empty() && next == offset {
                break;
            }
            seen[p].extend(vals);
            offset = next;
        }
        assert_eq!(
            seen[p].len(),
            expected[p].len(),
            "partition {p}: read_committed saw {} records, {} were committed",
            seen[p].len(),
            expected[p].len()
        );
        assert!(
            seen[p] == expected[p],
            "partition {p}: not exactly the committed records"
        );
    }
}

#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn a_thousand_random_transactions_leave_exactly_the_committed_records() {
    let client = shared().client();
    let mut rng = rng("a_thousand_random_transactions_leave_exactly_the_committed_records");
    let topic = unique_topic("txn-thousand");
    let partitions = 3;
    client.create_topic(&topic, partitions);
    let started = Instant::now();
    // Eight writers of 125 transactions each, concurrently, on the same partitions.
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let (client, topic, stop) = (client.clone(), topic.clone(), Arc::clone(&stop));
            let seed = rng.u64(..);
            std::thread::spawn(move || {
                let id = format!("{}-w{w}", unique_topic("tx-thousand"));
                random_writer(&client, &topic, partitions, &id, 125, seed, &stop)
            })
        })
        .collect();
    let per_writer: Vec<Vec<Vec<Vec<u8>>>> =
        writers.into_iter().map(|w| w.join().unwrap()).collect();
    eprintln!("1,000 transactions in {:?}", started.elapsed());
    for p in 0..partitions as usize {
        let seen = committed(&client, &topic, p as i32);
        let mut want: Vec<Vec<u8>> = per_writer.iter().flat_map(|w| w[p].clone()).collect();
        assert_eq!(
            seen.len(),
            want.len(),
            "partition {p}: each committed record once"
        );
        // Each writer's records appear in its own order; writers interleave.
        for w in &per_writer {
            let mine: Vec<&Vec<u8>> = seen.iter().filter(|v| w[p].contains(v)).collect();
            assert_eq!(mine.len(), w[p].len());
            assert!(
                mine.iter().zip(&w[p]).all(|(a, b)| *a == b),
                "partition {p}: order"
            );
        }
        let mut seen_sorted = seen.clone();
        seen_sorted.sort();
        want.sort();
        assert!(
            seen_sorted == want,
            "partition {p}: exactly the committed records"
        );
    }
}

fn group_offsets(client: &Client, group: &str) -> Vec<(String, i32, i64)> {
    let answer: kafdo_types::group::OffsetFetchResponse = client
        .get(&format!("/v1/groups/{group}/offsets"))
        .expect(200);
    answer
        .offsets
        .into_iter()
        .map(|o| (o.topic, o.partition, o.offset))
        .collect()
}

fn add_offsets_reply(
    txn: &Txn,
    group: &str,
    member: &kafdo_types::group::JoinGroupResponse,
    topic: &str,
    offset: i64,
) -> Reply {
    txn.client.post(
        &txn.path("/offsets"),
        &kafdo_types::txn::AddOffsetsRequest {
            producer_id: txn.producer_id,
            producer_epoch: txn.producer_epoch,
            group_id: group.to_owned(),
            generation_id: member.generation_id,
            member_id: member.member_id.clone(),
            offsets: vec![kafdo_types::rpc::TopicPartitionOffset {
                topic: topic.to_owned(),
                partition: 0,
                offset,
                metadata: None,
            }],
        },
        &[],
    )
}

#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn offsets_commit_with_the_transaction_and_vanish_on_abort() {
    let client = shared().client();
    let (input, output) = (unique_topic("txn-in"), unique_topic("txn-out"));
    client.create_topic(&input, 1);
    client.create_topic(&output, 2);
    let group = unique_topic("txn-group");
    let member: kafdo_types::group::JoinGroupResponse = client
        .post(
            &format!("/v1/groups/{group}/members"),
            &serde_json::json!({ "topics": [input] }),
            &[],
        )
        .expect(200);
    let mut txn = Txn::init(&client, &unique_topic("tx-offsets"), None);

    // Commit: records in two partitions of the output topic and the input offset, together.
    txn.add(&[(&output, 0), (&output, 1)]);
    txn.produce(&output, 0, &values("out0", 2));
    txn.produce(&output, 1, &values("out1", 1));
    add_offsets_reply(&txn, &group, &member, &input, 5).expect_status(200);
    assert!(
        group_offsets(&client, &group).is_empty(),
        "pending until the marker"
    );
    let stable = client.get(&format!("/v1/groups/{group}/offsets?require_stable=true"));
    assert!(
        stable.status == 503 || stable.status == 200,
        "require_stable waits or answers a retriable error: {}",
        stable.describe_body()
    );
    txn.end(true);
    assert_eq!(group_offsets(&client, &group), vec![(input.clone(), 0, 5)]);
    assert_eq!(committed(&client, &output, 0), values("out0", 2));
    assert_eq!(committed(&client, &output, 1), values("out1", 1));

    // Abort: neither the records nor the offset.
    txn.add(&[(&output, 0)]);
    txn.produce(&output, 0, &values("dropped", 2));
    add_offsets_reply(&txn, &group, &member, &input, 9).expect_status(200);
    txn.end(false);
    assert_eq!(group_offsets(&client, &group), vec![(input.clone(), 0, 5)]);
    assert_eq!(committed(&client, &output, 0), values("out0", 2));

    // A stale generation is refused (KIP-447 fencing) and the group keeps its offsets.
    let stale = kafdo_types::group::JoinGroupResponse {
        generation_id: member.generation_id + 100,
        ..member.clone()
    };
    let reply = add_offsets_reply(&txn, &group, &stale, &input, 7);
    assert_eq!(reply.error().code, ErrorCode::IllegalGeneration);
}

/// The runtime restarts (every object loses its memory, SQLite is kept) with transactions
/// open: one is committed after the restart, the other is aborted by a fencing init. Owns its
/// instance because it restarts it.
#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn transactions_survive_a_restart_of_every_object() {
    let mut wrangler = kafdo_e2e::Wrangler::start();
    let client = wrangler.client();
    let topic = unique_topic("txn-restart");
    client.create_topic(&topic, 2);
    let (kept_id, fenced_id) = (unique_topic("tx-kept"), unique_topic("tx-fenced"));
    let mut kept = Txn::init(&client, &kept_id, None);
    kept.add(&[(&topic, 0), (&topic, 1)]);
    kept.produce(&topic, 0, &values("kept0", 2));
    kept.produce(&topic, 1, &values("kept1", 1));
    let mut fenced = Txn::init(&client, &fenced_id, None);
    fenced.add(&[(&topic, 0)]);
    fenced.produce(&topic, 0, &values("fenced", 3));
    let (kept_pid, kept_epoch) = (kept.producer_id, kept.producer_epoch);

    wrangler.restart();
    let client = wrangler.client();
    let mut kept = Txn::init_from(&client, &kept_id, kept_pid, kept_epoch);
    kept.end(true);
    let fresh = Txn::init(&client, &fenced_id, None);
    assert_eq!(fresh.producer_id, fenced.producer_id);
    fenced.client = &client;
    assert_eq!(
        fenced.end_reply(true).error().code,
        ErrorCode::ProducerFenced
    );
    assert_eq!(committed(&client, &topic, 0), values("kept0", 2));
    assert_eq!(committed(&client, &topic, 1), values("kept1", 1));
    let info = client.partition_info(&topic, 0);
    assert_eq!(
        info.last_stable_offset, info.high_watermark,
        "nothing left open"
    );
}
