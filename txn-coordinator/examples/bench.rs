//! How much a transaction costs the coordinator: steps, storage writes and wall time for
//! transactions of 3 partitions plus one offset commit, on in-memory and on-disk SQLite.
//!
//! `cargo run --release -p kafdo-txn-coordinator --example bench [transactions]`

use std::cell::Cell;
use std::time::Instant;

use kafdo_sql::{Param, Row, Sql, SqlError, Sqlite};
use kafdo_txn_coordinator::{Answer, Call, CallReply, Output, RequestId, TxnCoordinator};
use kafdo_types::api::{InitProducerRequest, TopicConfig};
use kafdo_types::rpc::{MarkerAck, PartitionRef, TopicPartitionOffset, TxnResult};
use kafdo_types::txn::{AddOffsetsRequest, CoordinatorAddPartitions, EndTxnRequest};

/// Counts statements that write, and storage transactions.
struct Counting<S> {
    inner: S,
    writes: Cell<u64>,
    transactions: Cell<u64>,
}

impl<S: Sql> Sql for Counting<S> {
    fn exec(&self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>, SqlError> {
        if !sql.trim_start().starts_with("SELECT") {
            self.writes.set(self.writes.get() + 1);
        }
        self.inner.exec(sql, params)
    }

    fn transaction<T, E: From<SqlError>>(&self, f: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
        self.transactions.set(self.transactions.get() + 1);
        self.inner.transaction(f)
    }
}

fn run<S: Sql>(name: &str, sql: S, transactions: u32) {
    let sql = Counting {
        inner: sql,
        writes: Cell::new(0),
        transactions: Cell::new(0),
    };
    let mut core = TxnCoordinator::open(sql, "bench", 0).unwrap();
    let steps = Cell::new(0u64);
    let mut request = 0u64;
    let mut now_ms = 0i64;
    let drive = |core: &mut TxnCoordinator<Counting<S>>, mut outputs: Vec<Output>, now_ms| {
        let mut answers = Vec::new();
        while !outputs.is_empty() {
            let mut next = Vec::new();
            for output in outputs {
                match output {
                    Output::Call { id, call } => {
                        let reply = match call {
                            Call::AllocateProducerId => CallReply::ProducerId(1),
                            Call::RegisterTxn(_) | Call::TxnOffsetCommit(_) => CallReply::Done,
                            Call::WriteMarker(_) | Call::GroupTxnMarker(_) => {
                                CallReply::Marker(MarkerAck {
                                    marker_offset: None,
                                })
                            }
                        };
                        steps.set(steps.get() + 1);
                        next.extend(core.on_call_result(id, Ok(reply), now_ms).unwrap());
                    }
                    Output::Reply { result, .. } => answers.push(result.unwrap()),
                }
            }
            outputs = next;
        }
        answers
    };
    let init = InitProducerRequest {
        transactional_id: Some("bench".into()),
        transaction_timeout_ms: None,
    };
    let out = core.init_producer(RequestId(0), &init, now_ms).unwrap();
    let Answer::Producer(producer) = drive(&mut core, out, now_ms).remove(0) else {
        panic!()
    };
    let mut epoch = producer.producer_epoch;
    let partitions: Vec<PartitionRef> = (0..3)
        .map(|p| PartitionRef {
            topic: "t".into(),
            topic_id: "t-id".into(),
            partition: p,
            config: TopicConfig::default(),
        })
        .collect();
    let (writes0, txns0) = (core.sql().writes.get(), core.sql().transactions.get());
    let start = Instant::now();
    for i in 0..transactions {
        now_ms += 100;
        request += 1;
        let add = CoordinatorAddPartitions {
            producer_id: producer.producer_id,
            producer_epoch: epoch,
            partitions: partitions.clone(),
        };
        let out = core
            .add_partitions(RequestId(request), &add, now_ms)
            .unwrap();
        drive(&mut core, out, now_ms);
        request += 1;
        let offsets = AddOffsetsRequest {
            producer_id: producer.producer_id,
            producer_epoch: epoch,
            group_id: "g".into(),
            generation_id: 1,
            member_id: "m".into(),
            offsets: vec![TopicPartitionOffset {
                topic: "in".into(),
                partition: 0,
                offset: i64::from(i),
                metadata: None,
            }],
        };
        let out = core
            .add_offsets(RequestId(request), &offsets, now_ms)
            .unwrap();
        drive(&mut core, out, now_ms);
        request += 1;
        let end = EndTxnRequest {
            keep_epoch: false,
            producer_id: producer.producer_id,
            producer_epoch: epoch,
        };
        let out = core
            .end_txn(RequestId(request), &end, TxnResult::Commit, now_ms)
            .unwrap();
        let Answer::Ended(r) = drive(&mut core, out, now_ms).remove(0) else {
            panic!()
        };
        epoch = r.producer_epoch;
        steps.set(steps.get() + 3);
    }
    let elapsed = start.elapsed();
    let n = f64::from(transactions);
    println!(
        "{name}: {transactions} transactions in {:.2?}: {:.0} transactions/s, {:.1} µs each; \
         per transaction {:.1} steps, {:.1} write statements, {:.1} storage transactions",
        elapsed,
        n / elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e6 / n,
        steps.get() as f64 / (n + 1.0),
        (core.sql().writes.get() - writes0) as f64 / n,
        (core.sql().transactions.get() - txns0) as f64 / n,
    );
}

fn main() {
    let transactions: u32 = std::env::args()
        .nth(1)
        .map_or(2_000, |a| a.parse().expect("a number of transactions"));
    run("in-memory SQLite", Sqlite::memory(), transactions);
    let dir = std::env::temp_dir().join(format!("kafdo-txn-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("coordinator.sqlite");
    run(
        "file SQLite",
        Sqlite::file(&path).unwrap(),
        transactions / 10,
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
