//! Faults: every so often (about every `fault_interval_ms`) an object restarts, a client
//! crashes, or a Worker isolate dies with the requests it was serving.

use kafdo_types::rpc::{Kind, Object};

use super::{Event, World};
use crate::history::{Observation, Process};

impl World {
    pub(super) fn fault(&mut self) {
        if !self.faults_on() {
            return;
        }
        let of_kind = |world: &World, kind: Kind| -> Vec<Object> {
            world
                .objects
                .keys()
                .filter(|o| o.kind() == kind)
                .cloned()
                .collect()
        };
        match self.rng.below(13) {
            0..=3 => {
                let partitions = of_kind(self, Kind::Partition);
                let object = self.rng.pick(&partitions).clone();
                self.restart(&object);
            }
            4..=6 => {
                let coordinators = of_kind(self, Kind::Coordinator);
                if !coordinators.is_empty() {
                    let object = self.rng.pick(&coordinators).clone();
                    self.restart(&object);
                }
            }
            7 => {
                let groups = of_kind(self, Kind::Group);
                if groups.is_empty() || self.rng.chance(300) {
                    self.restart(&Object::Metadata);
                } else {
                    let object = self.rng.pick(&groups).clone();
                    self.restart(&object);
                }
            }
            8 | 9 => {
                let processes: Vec<Process> = self
                    .clients
                    .iter()
                    .filter(|(_, c)| !c.done)
                    .map(|(p, _)| *p)
                    .collect();
                if !processes.is_empty() {
                    let process = *self.rng.pick(&processes);
                    self.crash_client(process);
                }
            }
            10 | 11 => {
                let keys = of_kind(self, Kind::Key);
                if !keys.is_empty() {
                    let object = self.rng.pick(&keys).clone();
                    self.restart(&object);
                }
            }
            _ => self.kill_isolate(),
        }
        let next = self.rng.range(1, 2 * self.config.fault_interval_ms);
        self.schedule(next, Event::Fault);
    }

    fn crash_client(&mut self, process: Process) {
        let slot = self.clients.get_mut(&process).expect("client");
        self.rec.observe(
            self.now_ms,
            Observation::Note {
                text: format!("crash client p{process}"),
            },
        );
        if slot.outstanding.take().is_some() {
            self.rec.info(self.now_ms, process, "client crashed");
        }
        slot.client.crash();
        slot.wake_generation += 1;
        let generation = slot.wake_generation;
        let delay = self.rng.range(10, 1_000);
        self.schedule(
            delay,
            Event::Wake {
                process,
                generation,
            },
        );
    }
}
