//! One alarm helper for every object. A Durable Object has one alarm, and setting it replaces
//! the one before: the world keeps a generation per object, so an alarm event of an older
//! generation is ignored. Objects arm only when their host says so (`Effects::set_alarm_ms`,
//! `CoordinatorStep::set_alarm_ms`), which is the same policy the Durable Object classes follow.
//! With faults on, an alarm may fire late (by up to 3 s), and a spurious firing, which nothing
//! replaces, may come early or twice: every host must tolerate both.

use kafdo_types::rpc::Object;

use super::{Event, World};

impl World {
    /// Sets `object`'s alarm to `at_ms`, replacing the one it had.
    pub(super) fn arm(&mut self, object: &Object, at_ms: i64) {
        let faults = self.faults_on();
        let generation = self.alarm_generations.entry(object.clone()).or_default();
        *generation += 1;
        let generation = *generation;
        let mut delay = (at_ms - self.now_ms).max(0);
        if faults && self.rng.chance(100) {
            // Late.
            delay += self.rng.range(1, 3_000);
        }
        self.schedule(
            delay,
            Event::Alarm {
                object: object.clone(),
                generation,
            },
        );
        if faults && self.rng.chance(100) {
            // Early, or twice.
            let at = self.rng.range(0, delay + 1_000);
            self.schedule(
                at,
                Event::Alarm {
                    object: object.clone(),
                    generation: u64::MAX,
                },
            );
        }
    }

    /// Deletes `object`'s alarm (its storage was deleted).
    pub(super) fn disarm(&mut self, object: &Object) {
        *self.alarm_generations.entry(object.clone()).or_default() += 1;
    }

    /// An alarm event: fires the object's alarm unless a later `arm` replaced it.
    pub(super) fn alarm(&mut self, object: &Object, generation: u64) {
        let current = self.alarm_generations.get(object).copied().unwrap_or(0);
        if generation == current || generation == u64::MAX {
            self.fire(object);
        }
    }
}
