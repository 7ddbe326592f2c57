//! Which topic: the first call binds the object to its [`PartitionRef`] (topic name, topic
//! id, number and the topic config that retention and compaction follow), later calls must
//! name the same one, and [`Partition::delete`] ends the binding for good.

use kafdo_sql::{Param, Sql, SqlError};
use kafdo_types::api::CleanupPolicy;
use kafdo_types::rpc::PartitionRef;

use crate::compaction::CompactionState;
use crate::schema::policy_name;
use crate::{Partition, PartitionError};

/// The topic incarnation this object serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Binding {
    pub(crate) topic: String,
    pub(crate) topic_id: String,
    pub(crate) partition: i32,
    /// How long records are kept (`-1`: for ever), from the topic config at the first call.
    pub(crate) retention_ms: i64,
    /// Whether the topic's `cleanup_policy` is `compact` (from the first call too).
    pub(crate) compact: bool,
}

impl<S: Sql> Partition<S> {
    /// Checks that a call names this partition. Returns whether the object is not yet bound
    /// (the caller then binds it in its storage transaction with [`Partition::bind_sql`]).
    pub(crate) fn check_ref(&self, partition: &PartitionRef) -> Result<bool, PartitionError> {
        match &self.binding {
            Some(b) if b.topic_id != partition.topic_id || b.partition != partition.partition => {
                Err(PartitionError::UnknownTopicOrPartition(format!(
                    "this object is partition {} of topic id {:?}, not partition {} of topic \
                     id {:?}",
                    b.partition, b.topic_id, partition.partition, partition.topic_id
                )))
            }
            Some(b) if self.deleted => Err(PartitionError::UnknownTopicOrPartition(format!(
                "partition {} of topic {:?} was deleted",
                b.partition, b.topic
            ))),
            Some(_) => Ok(false),
            None if self.deleted => unreachable!("a deleted partition is always bound"),
            None => Ok(true),
        }
    }

    pub(crate) fn bind_sql(&self, partition: &PartitionRef, deleted: bool) -> Result<(), SqlError> {
        self.sql.run(
            "INSERT INTO partition_meta (id, topic_name, topic_id, partition_index,
                 retention_ms, cleanup_policy, log_start_offset, deleted)
             VALUES (1, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (id) DO UPDATE SET deleted = excluded.deleted",
            &[
                Param::Text(&partition.topic),
                Param::Text(&partition.topic_id),
                partition.partition.into(),
                partition.config.retention_ms.into(),
                Param::Text(policy_name(partition.config.cleanup_policy)),
                self.log_start_offset.into(),
                deleted.into(),
            ],
        )
    }

    /// [`Partition::check_ref`], then binds the partition if this is its first call (a call
    /// that writes nothing else: a read, a lookup by time, a deletion of records). A call that
    /// writes binds inside its own storage transaction instead.
    pub(crate) fn check_and_bind(
        &mut self,
        partition: &PartitionRef,
    ) -> Result<(), PartitionError> {
        if self.check_ref(partition)? {
            self.sql.transaction(|| self.bind_sql(partition, false))?;
            self.bind_memory(partition);
        }
        Ok(())
    }

    pub(crate) fn bind_memory(&mut self, partition: &PartitionRef) {
        self.binding = Some(Binding {
            topic: partition.topic.clone(),
            topic_id: partition.topic_id.clone(),
            partition: partition.partition,
            retention_ms: partition.config.retention_ms,
            compact: partition.config.cleanup_policy == CleanupPolicy::Compact,
        });
    }

    /// Whether this partition's topic is compacted (`cleanup_policy = compact`).
    pub(crate) fn is_compacted(&self) -> bool {
        self.binding.as_ref().is_some_and(|b| b.compact)
    }

    /// Deletes the whole log (the topic was deleted); later calls get
    /// `UNKNOWN_TOPIC_OR_PARTITION`. Deleting again answers success, so the metadata object
    /// may retry.
    pub fn delete(&mut self, partition: &PartitionRef) -> Result<(), PartitionError> {
        let same = self.binding.as_ref().is_some_and(|b| {
            b.topic_id == partition.topic_id && b.partition == partition.partition
        });
        if self.deleted && same {
            return Ok(());
        }
        self.check_ref(partition)?;
        self.sql.transaction(|| {
            for table in [
                "batches",
                "producers",
                "transactions",
                "aborted_transactions",
                "compaction",
            ] {
                self.sql.run(&format!("DELETE FROM {table}"), &[])?;
            }
            self.bind_sql(partition, true)
        })?;
        self.bind_memory(partition);
        self.deleted = true;
        self.compaction = CompactionState::new(self.log_start_offset);
        self.compaction_map = None;
        self.producers.clear();
        self.idle.clear();
        self.transactions.clear();
        Ok(())
    }
}
