//! The end of a run: faults stop and clients finish what they started (settling), then the
//! final scans the checker needs: every partition read whole at both isolations from its log
//! start, after the partition's own consistency check, and every group's committed offsets.

use kafdo_broker::cbor::from_cbor;
use kafdo_types::api::Isolation;
use kafdo_types::group::{OffsetFetchQuery, OffsetFetchResponse};
use kafdo_types::rpc::{GroupCall, ReadRequest};

use super::clients::ClientAns;
use super::{Event, World, FINAL_PROCESS};
use crate::history::{Observation, Process, ReadRecord, Reply, Request, Tp};

impl World {
    pub(super) fn begin_settling(&mut self) {
        self.settling = true;
        self.config.faults = false;
        self.note("faults stop; clients finish what they started".into());
        let processes: Vec<Process> = self.clients.keys().copied().collect();
        for process in processes {
            let slot = self.clients.get_mut(&process).expect("client");
            if slot.outstanding.is_none() && !slot.done {
                slot.wake_generation += 1;
                let generation = slot.wake_generation;
                self.schedule(
                    0,
                    Event::Wake {
                        process,
                        generation,
                    },
                );
            }
        }
    }

    pub(super) fn final_scans(&mut self) {
        self.rec.observe(self.now_ms, Observation::Settled);
        let now_ms = self.now_ms;
        let tps: Vec<Tp> = self.partition_refs.keys().cloned().collect();
        for tp in tps {
            // The core's own consistency check of its storage (rows within the log, dense
            // offsets from the log start, indexes that match): it asserts.
            self.partition_slot(&tp)
                .host
                .core(now_ms)
                .expect("open a partition")
                .verify()
                .expect("verify a partition");
            for isolation in [Isolation::ReadUncommitted, Isolation::ReadCommitted] {
                self.rec.invoke(
                    self.now_ms,
                    FINAL_PROCESS,
                    Request::Scan {
                        topic: tp.topic.clone(),
                        partition: tp.partition,
                        isolation,
                    },
                );
                let reply = self.scan(&tp, isolation);
                self.rec.ok(self.now_ms, FINAL_PROCESS, reply);
            }
        }
        let groups: Vec<String> = self
            .objects
            .keys()
            .filter_map(|o| match o {
                kafdo_types::rpc::Object::Group(g) => Some(g.clone()),
                _ => None,
            })
            .collect();
        for group_id in groups {
            self.rec.invoke(
                self.now_ms,
                FINAL_PROCESS,
                Request::FetchOffsets {
                    group_id: group_id.clone(),
                    require_stable: true,
                },
            );
            let query = OffsetFetchQuery {
                require_stable: true,
                topic: None,
                partitions: None,
            };
            let served = self
                .group_host(&group_id)
                .serve(GroupCall::Offsets(query), now_ms);
            match served.answer {
                Ok(answer) => {
                    let offsets: OffsetFetchResponse = from_cbor(&answer).expect("offsets");
                    let reply = ClientAns::Offsets(offsets).history_reply();
                    self.rec.ok(self.now_ms, FINAL_PROCESS, reply);
                }
                Err(e) => {
                    self.rec.fail(self.now_ms, FINAL_PROCESS, e.code, e.message);
                }
            }
        }
    }

    fn scan(&mut self, tp: &Tp, isolation: Isolation) -> Reply {
        let pref = self.partition_refs[tp].clone();
        let now_ms = self.now_ms;
        let host = &mut self.partition_slot(tp).host;
        let mut records = Vec::new();
        // From the log start: below it a read is refused (retention moves it).
        let mut offset = host
            .core(now_ms)
            .and_then(|core| {
                core.info(&pref)
                    .map_err(|e| kafdo_types::ApiError::new(e.code(), e.to_string()))
            })
            .expect("partition info")
            .log_start_offset;
        loop {
            let request = ReadRequest {
                partition: pref.clone(),
                offset,
                max_records: 1_000,
                max_bytes: 1 << 24,
                isolation,
                wait_ms: 0,
            };
            let fetched = host.read(&request, now_ms).expect("a final scan");
            records.extend(fetched.records.iter().map(ReadRecord::from_record));
            let bound = match isolation {
                Isolation::ReadCommitted => fetched.last_stable_offset,
                Isolation::ReadUncommitted => fetched.high_watermark,
            };
            if fetched.next_offset >= bound || fetched.next_offset == offset {
                return Reply::Fetch {
                    records,
                    next_offset: fetched.next_offset,
                    high_watermark: fetched.high_watermark,
                    last_stable_offset: fetched.last_stable_offset,
                };
            }
            offset = fetched.next_offset;
        }
    }
}
