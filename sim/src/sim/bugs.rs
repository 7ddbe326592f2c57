//! The planted bugs' hooks ([`super::Bugs`]). Those of the cores are planted from outside them,
//! on the calls that reach an object and on its storage, so the production code carries no
//! test-only paths; those of the shared orchestration are switches of `kafdo_broker` (its
//! `planted-bugs` feature, which only the simulator turns on).

use kafdo_sql::{Param, Sql};
use kafdo_types::rpc::{
    CoordinatorCall, Object, ObjectCall, PartitionCall, TxnResult, WriteMarkerRequest,
    ANY_PRODUCER_ID,
};
use kafdo_types::txn::TransactionState;

use super::objects::{Db, Slot};
use super::{Msg, Target, World, RETAINED_TOPIC};
use crate::history::Tp;
use kafdo_broker::host::partition::PartitionHost;

impl World {
    /// Before a call reaches a partition.
    pub(super) fn before_partition_call(&mut self, tp: &Tp, call: &mut PartitionCall) {
        let bugs = self.config.bugs;
        if bugs.retention_ignores_time && tp.topic == RETAINED_TOPIC {
            // The Worker hands the retained topic's partitions a config with no retention time.
            let pref = match call {
                PartitionCall::Append(r) => &mut r.partition,
                PartitionCall::Read(r) => &mut r.partition,
                PartitionCall::Info(r) => &mut r.partition,
                PartitionCall::OffsetForTimestamp(r) => &mut r.partition,
                PartitionCall::DeleteRecords(r) => &mut r.partition,
                PartitionCall::Producers(r) => &mut r.partition,
                PartitionCall::RegisterTxn(r) => &mut r.partition,
                PartitionCall::WriteMarker(r) => &mut r.partition,
                PartitionCall::OpenTransactions(r) => &mut r.partition,
                PartitionCall::Delete(r) => &mut r.partition,
            };
            pref.config.retention_ms = 0;
        }
        let PartitionCall::Append(req) = call else {
            return;
        };
        if bugs.partition_accepts_unallocated_producer {
            req.producer_ids_below = ANY_PRODUCER_ID;
        }
        let Some(producer) = req.producer.as_mut() else {
            return;
        };
        if bugs.skip_duplicate_check {
            let slot = self.partition_slot(tp);
            let row = slot
                .db
                .first(
                    "SELECT producer_id, producer_epoch, last_seen_ms, batches FROM producers \
                     WHERE producer_id = ?",
                    &[Param::Integer(producer.producer_id)],
                )
                .ok()
                .flatten();
            slot.stale_producers.insert(producer.producer_id, row);
        }
        if bugs.no_epoch_fence && req.transactional {
            let now_ms = self.now_ms;
            let current = self
                .partition_slot(tp)
                .host
                .core(now_ms)
                .expect("open a partition")
                .open_transactions()
                .into_iter()
                .find(|t| t.producer_id == producer.producer_id)
                .map(|t| t.producer_epoch);
            if let Some(epoch) = current {
                if producer.producer_epoch < epoch {
                    producer.producer_epoch = epoch;
                }
            }
        }
    }

    /// The planted `compaction_ignores_lso` and `retention_ignores_lso` bugs: `f` (an alarm
    /// step, or an append) runs on a core that sees no open transaction (their first offsets
    /// hidden), so its last stable offset is the high watermark; then the rows are put back and
    /// the next call reopens a correct core.
    pub(super) fn with_lso_hidden<T>(
        &mut self,
        tp: &Tp,
        f: impl FnOnce(&mut PartitionHost<Db>) -> T,
    ) -> T {
        let now_ms = self.now_ms;
        let slot = self.partition_slot(tp);
        // Opening the core creates the schema on a partition's first call.
        slot.host.core(now_ms).expect("open a partition");
        slot.host.restart();
        let db = slot.db.clone();
        let open = db
            .exec(
                "SELECT producer_id, first_offset FROM transactions \
                 WHERE open = 1 AND first_offset IS NOT NULL",
                &[],
            )
            .expect("open transactions");
        db.run(
            "UPDATE transactions SET first_offset = NULL WHERE open = 1",
            &[],
        )
        .expect("hide open transactions");
        let result = f(&mut slot.host);
        slot.host.restart();
        // Raised to the log start, which only `retention_ignores_lso` moves, so that the
        // partition opens again (its last stable offset may not be below its log start).
        for row in open.iter() {
            db.run(
                "UPDATE transactions SET first_offset = \
                 MAX(?, (SELECT log_start_offset FROM partition_meta WHERE id = 1)) \
                 WHERE producer_id = ?",
                &[Param::Integer(row.int(1)), Param::Integer(row.int(0))],
            )
            .expect("restore an open transaction");
        }
        result
    }

    /// What the planted `skip_duplicate_check` and `ingest_forgets_reservation` bugs lose of an
    /// object's storage when it restarts.
    pub(super) fn bugs_after_restart(&mut self, object: &Object) {
        let bugs = self.config.bugs;
        match self.slot(object) {
            Slot::Partition(slot) if bugs.skip_duplicate_check => {
                // The producer state of the latest append did not survive.
                for (producer_id, row) in std::mem::take(&mut slot.stale_producers) {
                    restore_producer_row(&slot.db, producer_id, row.as_ref());
                }
            }
            Slot::Key(key) if bugs.ingest_forgets_reservation => forget_reservation(&key.db),
            _ => {}
        }
    }

    /// Before a call reaches a coordinator: the planted `no_epoch_fence` takes an old epoch
    /// for the current one.
    pub(super) fn before_coordinator_call(&mut self, tid: &str, call: &mut CoordinatorCall) {
        if !self.config.bugs.no_epoch_fence {
            return;
        }
        let now_ms = self.now_ms;
        let Some(current) = self.coordinator_epoch(tid, now_ms) else {
            return;
        };
        let epoch = match call {
            CoordinatorCall::AddPartitions(req) => &mut req.producer_epoch,
            CoordinatorCall::End(req) => &mut req.request.producer_epoch,
            _ => return,
        };
        if *epoch < current {
            *epoch = current;
        }
    }

    fn coordinator_epoch(&mut self, tid: &str, now_ms: i64) -> Option<i32> {
        let Slot::Coordinator(slot) = self.slot(&Object::Coordinator(tid.to_owned())) else {
            unreachable!("a coordinator's slot")
        };
        slot.host
            .core(now_ms)
            .ok()
            .map(|core| core.producer_epoch())
    }

    /// The planted `markers_before_prepare` bug: on a commit of an open transaction, write the
    /// commit markers first, and sometimes restart before PrepareCommit is persisted. Returns
    /// true when the request died with the restart.
    pub(super) fn bug_markers_before_prepare(&mut self, tid: &str, call: &CoordinatorCall) -> bool {
        if !self.config.bugs.markers_before_prepare {
            return false;
        }
        let CoordinatorCall::End(end) = call else {
            return false;
        };
        if end.result != TxnResult::Commit {
            return false;
        }
        let now_ms = self.now_ms;
        let object = Object::Coordinator(tid.to_owned());
        let Slot::Coordinator(slot) = self.slot(&object) else {
            unreachable!("a coordinator's slot")
        };
        let Ok(core) = slot.host.core(now_ms) else {
            return false;
        };
        if core.state() != TransactionState::Ongoing
            || core.producer_epoch() != end.request.producer_epoch
        {
            return false;
        }
        let description = core.describe(now_ms);
        for p in description.partitions {
            let tp = Tp::new(p.topic, p.partition);
            let partition = self.partition_refs[&tp].clone();
            let call = WriteMarkerRequest {
                txn_seq: 0,
                partition: partition.clone(),
                producer_id: end.request.producer_id,
                producer_epoch: end.request.producer_epoch,
                result: TxnResult::Commit,
            };
            // Slot 0 is no call's: its answer is ignored.
            self.send(
                Target::Object(Object::partition(&partition)),
                Msg::Call {
                    slot: 0,
                    call: ObjectCall::from(call),
                },
            );
        }
        if self.faults_on() && self.rng.chance(300) {
            self.restart(&object);
            return true;
        }
        false
    }
}

/// Puts a producer's state row back as it was (the `skip_duplicate_check` bug).
fn restore_producer_row(db: &Db, producer_id: i64, row: Option<&kafdo_sql::Row>) {
    db.run(
        "DELETE FROM producers WHERE producer_id = ?",
        &[Param::Integer(producer_id)],
    )
    .expect("delete a producer row");
    if let Some(row) = row {
        db.run(
            "INSERT INTO producers (producer_id, producer_epoch, last_seen_ms, batches) \
             VALUES (?, ?, ?, ?)",
            &[
                Param::Integer(row.int(0)),
                Param::Integer(row.int(1)),
                Param::Integer(row.int(2)),
                Param::Blob(row.blob(3)),
            ],
        )
        .expect("restore a producer row");
    }
}

/// The `ingest_forgets_reservation` bug: a key's object restarted forgets an unanswered key.
fn forget_reservation(db: &Db) {
    let created = db
        .first(
            "SELECT 1 FROM sqlite_master WHERE name = 'idempotency_key'",
            &[],
        )
        .expect("read the schema")
        .is_some();
    // An object whose storage was deleted after expiry has nothing to forget.
    if created {
        db.run("DELETE FROM idempotency_key WHERE answer IS NULL", &[])
            .expect("forget a reservation");
    }
}
