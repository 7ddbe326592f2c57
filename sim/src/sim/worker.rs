//! The simulated Worker: each request that reaches it becomes a task on one of its isolates,
//! running the broker for that request, exactly as the Worker's `fetch` handler does
//! (`worker/src/handlers/`), minus the HTTP decoding. An isolate killed by a fault loses its
//! tasks (nothing more is sent for them) and its caches.

use std::rc::Rc;

use kafdo_broker::{Broker, Isolate};
use kafdo_types::ApiError;

use super::clients::{ClientAns, ClientReq};
use super::executor::{Owner, SimRuntime};
use super::{TaskDone, World};
use crate::history::Process;

/// Runs one client request on the broker: the call the Worker's handler for its route makes.
async fn execute(broker: &Broker<SimRuntime>, req: ClientReq) -> Result<ClientAns, ApiError> {
    Ok(match req {
        ClientReq::InitProducer(init) => ClientAns::Producer(broker.init_producer(init).await?),
        ClientReq::ProducePartition {
            topic,
            partition,
            request,
        } => ClientAns::Produced(broker.produce_partition(&topic, partition, request).await?),
        ClientReq::Fetch {
            topic,
            partition,
            options,
        } => ClientAns::Fetched(broker.fetch(&topic, partition, options).await?),
        ClientReq::PartitionOffsets { topic, partition } => {
            ClientAns::PartitionOffsets(broker.partition_info(&topic, partition).await?)
        }
        ClientReq::AddPartitions {
            transactional_id,
            request,
        } => {
            broker
                .add_partitions_to_txn(&transactional_id, request)
                .await?;
            ClientAns::Done
        }
        ClientReq::AddOffsets {
            transactional_id,
            request,
        } => {
            broker
                .add_offsets_to_txn(&transactional_id, request)
                .await?;
            ClientAns::Done
        }
        ClientReq::EndTxn {
            transactional_id,
            request,
            result,
        } => ClientAns::Ended(broker.end_txn(&transactional_id, request, result).await?),
        ClientReq::Join { group_id, request } => {
            ClientAns::Joined(broker.join_group(&group_id, request).await?)
        }
        ClientReq::Heartbeat {
            group_id,
            member_id,
            request,
        } => ClientAns::Heartbeat(broker.heartbeat(&group_id, &member_id, request).await?),
        ClientReq::FetchOffsets { group_id, query } => {
            ClientAns::Offsets(broker.fetch_offsets(&group_id, query).await?)
        }
        ClientReq::Ingest {
            topic,
            key,
            request,
        } => ClientAns::Ingested(broker.produce(&topic, Some(&key), &request).await?.offsets),
    })
}

impl World {
    /// A request reached the Worker: a task on a random isolate serves it.
    pub(super) fn start_request(&mut self, from: Process, id: u64, req: ClientReq) {
        let isolate = self.rng.below(self.isolates.len() as u64) as u32;
        let broker = Broker::new(
            self.executor.runtime(),
            Rc::clone(&self.isolates[isolate as usize]),
            self.broker_config.clone(),
        );
        self.executor.spawn(Owner::Isolate(isolate), async move {
            let result = execute(&broker, req).await;
            TaskDone::Reply {
                process: from,
                id,
                result,
            }
        });
    }

    /// An isolate with requests in flight dies: nothing more is sent for them, and its caches
    /// (topics, producer ids, registered groups) are gone.
    pub(super) fn kill_isolate(&mut self) {
        let busy: Vec<u32> = self
            .executor
            .owners()
            .into_iter()
            .filter_map(|o| match o {
                Owner::Isolate(i) => Some(i),
                Owner::Object(_) => None,
            })
            .collect();
        if busy.is_empty() {
            return;
        }
        let isolate = *self.rng.pick(&busy);
        let killed = self.kill_tasks(&Owner::Isolate(isolate));
        self.isolates[isolate as usize] = Rc::new(Isolate::new());
        self.note(format!(
            "kill the Worker runs of isolate {isolate} ({killed} requests)"
        ));
    }
}
