//! Where the clients go: a seed's producers, transactional producers, consumers, ingestion
//! clients and pipeline, each a process of the history.

use std::rc::Rc;

use kafdo_types::rpc::Object;

use super::clients::{
    self, Client, Consumer, IdempotentProducer, IngestClient, Processor, ProcessorSetup,
    TransactionalProducer,
};
use super::config::{CompactionSetup, RetentionSetup};
use super::{
    scripts, World, COMPACTED_TOPIC, INPUT_TOPIC, OUTPUT_TOPIC, PIPELINE_GROUP, RETAINED_TOPIC,
    TOPIC,
};
use crate::history::{Observation, Process, Tp};

impl World {
    pub(super) fn place_clients(&mut self) {
        let tps: Vec<Tp> = self
            .partition_refs
            .keys()
            .filter(|tp| tp.topic == TOPIC)
            .cloned()
            .collect();
        let ops = self.config.ops_per_client;
        let mut process: Process = 1;
        for _ in 0..self.config.idempotent_producers {
            let c = IdempotentProducer::new(process, tps.clone(), ops);
            self.add_client(process, Client::Idempotent(c));
            process += 1;
        }
        for t in 0..self.config.transactional_ids {
            let tid = format!("txn-{t}");
            for _ in 0..self.config.instances_per_id {
                let c = TransactionalProducer::new(
                    process,
                    tid.clone(),
                    self.config.transaction_timeout_ms,
                    tps.clone(),
                    ops,
                );
                self.add_client(process, Client::Transactional(c));
                process += 1;
            }
        }
        for i in 0..self.config.consumers {
            let tp = tps[i as usize % tps.len()].clone();
            let c = Consumer::new(process, tp, ops * 4);
            self.add_client(process, Client::Consumer(c));
            process += 1;
        }
        for i in 0..self.config.ingest_clients {
            let ttl_ms = self.config.ingest_ttl_ms;
            let script =
                scripts::script(&mut self.rng, i, TOPIC, self.config.partitions, ops, ttl_ms);
            let script = Rc::new(script);
            let first_sent = clients::FirstSent::default();
            for _ in 0..self.config.ingest_processes {
                let c = IngestClient::new(
                    TOPIC.into(),
                    script.clone(),
                    first_sent.clone(),
                    ttl_ms - scripts::MAX_BEGIN_LATENCY_MS,
                );
                self.add_client(process, Client::Ingest(c));
                process += 1;
            }
        }
        if let Some(c) = self.config.compaction {
            process = self.place_compaction_clients(process, c);
        }
        if let Some(r) = self.config.retention {
            process = self.place_retention_clients(process, r);
        }
        if self.config.impostor {
            let c = clients::Impostor::new(process, tps.clone(), ops);
            self.add_client(process, Client::Impostor(c));
            process += 1;
        }
        if self.config.processors == 0 {
            return;
        }
        self.rec.observe(
            0,
            Observation::Pipeline {
                group_id: PIPELINE_GROUP.into(),
                input_topic: INPUT_TOPIC.into(),
                output_topic: OUTPUT_TOPIC.into(),
            },
        );
        // Made now, so the final scans read its offsets even if no processor reached it.
        self.slot(&Object::Group(PIPELINE_GROUP.into()));
        let inputs: Vec<Tp> = self
            .partition_refs
            .keys()
            .filter(|tp| tp.topic == INPUT_TOPIC)
            .cloned()
            .collect();
        for _ in 0..self.config.input_producers {
            let c = IdempotentProducer::new(process, inputs.clone(), ops * 2);
            self.add_client(process, Client::Idempotent(c));
            process += 1;
        }
        for k in 0..self.config.processors {
            let tid = format!("proc-{k}");
            let setup = ProcessorSetup {
                transactional_id: tid,
                group_id: PIPELINE_GROUP.into(),
                input_topic: INPUT_TOPIC.into(),
                output: (OUTPUT_TOPIC.into(), self.config.pipeline_partitions.1),
                transaction_timeout_ms: self.config.transaction_timeout_ms,
                session_timeout_ms: self.config.session_timeout_ms,
                txns: ops,
            };
            let c = Processor::new(process, setup);
            self.add_client(process, Client::Processor(Box::new(c)));
            process += 1;
        }
    }

    /// The compacted topic's keyed writers (idempotent and transactional, one process per
    /// transactional id) and read_committed consumers; returns the next free process.
    fn place_compaction_clients(&mut self, mut process: Process, c: CompactionSetup) -> Process {
        self.rec.observe(
            0,
            Observation::Compacted {
                topic: COMPACTED_TOPIC.into(),
                delete_retention_ms: c.delete_retention_ms,
            },
        );
        let tps: Vec<Tp> = (0..c.partitions)
            .map(|p| Tp::new(COMPACTED_TOPIC, p))
            .collect();
        // Three keys (`clients::COMPACTED_KEYS`) for all writers: each key gets many versions.
        let ops = self.config.ops_per_client;
        for _ in 0..c.idempotent_producers {
            let producer = IdempotentProducer::new(process, tps.clone(), ops);
            self.add_client(process, Client::Idempotent(producer));
            process += 1;
        }
        for t in 0..c.transactional_ids {
            let tid = format!("table-txn-{t}");
            let producer = TransactionalProducer::new(
                process,
                tid,
                self.config.transaction_timeout_ms,
                tps.clone(),
                ops,
            )
            // Many aborts: aborted records must leave the key map and the log, and a round
            // must stop at an open transaction that may still abort.
            .with_aborts(400);
            self.add_client(process, Client::Transactional(producer));
            process += 1;
        }
        for i in 0..c.consumers {
            let tp = tps[i as usize % tps.len()].clone();
            let consumer = Consumer::new(process, tp, ops * 4);
            self.add_client(process, Client::Consumer(consumer));
            process += 1;
        }
        process
    }

    /// The retained topic's writers (idempotent and transactional, one process per
    /// transactional id) and read_committed consumers; returns the next free process.
    fn place_retention_clients(&mut self, mut process: Process, r: RetentionSetup) -> Process {
        self.rec.observe(
            0,
            Observation::Retention {
                topic: RETAINED_TOPIC.into(),
                retention_ms: r.retention_ms,
            },
        );
        let tps: Vec<Tp> = (0..r.partitions)
            .map(|p| Tp::new(RETAINED_TOPIC, p))
            .collect();
        // Twice the usual work, so that appends go on long enough for retention to run more
        // than once per partition incarnation.
        let ops = 2 * self.config.ops_per_client;
        for _ in 0..r.idempotent_producers {
            let producer = IdempotentProducer::new(process, tps.clone(), ops);
            self.add_client(process, Client::Idempotent(producer));
            process += 1;
        }
        for t in 0..r.transactional_ids {
            let tid = format!("logs-txn-{t}");
            let producer = TransactionalProducer::new(
                process,
                tid,
                self.config.transaction_timeout_ms,
                tps.clone(),
                ops,
            );
            self.add_client(process, Client::Transactional(producer));
            process += 1;
        }
        for i in 0..r.consumers {
            let tp = tps[i as usize % tps.len()].clone();
            let consumer = Consumer::new(process, tp, ops * 4);
            self.add_client(process, Client::Consumer(consumer));
            process += 1;
        }
        process
    }
}
