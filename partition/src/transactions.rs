//! Transactions on this partition (KIP-98 with KIP-890 part 1): registrations from the
//! coordinator (a transaction named by producer id, epoch and the coordinator's number), the check of a producer's batch against its transaction, markers that end a
//! transaction (an abort also enters the aborted index), the last stable offset and the admin
//! view of open transactions. The crate docs explain the rules; the partition never times a
//! transaction out.

use kafdo_sql::{Param, Sql, SqlError};
use kafdo_types::rpc::{
    MarkerAck, PartitionOpenTransaction, PartitionRef, ProducerBatch, RegisterTxnRequest,
    TxnResult, WriteMarkerRequest,
};
use kafdo_types::txn::valid_transactional_id;

use crate::append::NewRow;
use crate::schema::{FLAG_COMMIT, FLAG_CONTROL, FLAG_TRANSACTIONAL};
use crate::{check_producer_ids, Partition, PartitionError};

/// A producer's transaction on this partition: open, or the last one that ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TxnEntry {
    pub(crate) transactional_id: String,
    /// The open transaction's epoch, or the last ended epoch.
    pub(crate) producer_epoch: i32,
    pub(crate) open: bool,
    pub(crate) first_offset: Option<i64>,
    pub(crate) start_ms: i64,
    pub(crate) updated_ms: i64,
    /// The coordinator's number of the transaction: with the epoch, its identity (a
    /// transaction-version-1 producer keeps its epoch across transactions).
    pub(crate) txn_seq: i64,
}

impl TxnEntry {
    /// The transaction's identity, in the order transactions of one producer id come:
    /// (epoch, number).
    fn id(&self) -> (i32, i64) {
        (self.producer_epoch, self.txn_seq)
    }
}

impl<S: Sql> Partition<S> {
    /// The first offset of the oldest open transaction, or the high watermark.
    pub(crate) fn last_stable_offset(&self) -> i64 {
        self.transactions
            .values()
            .filter(|t| t.open)
            .filter_map(|t| t.first_offset)
            .min()
            .unwrap_or(self.high_watermark)
    }

    /// Whether the producer has an open transaction here. Its idempotence state is then kept
    /// however idle it is: forgetting it would refuse the transaction's next batch
    /// (`UNKNOWN_PRODUCER_ID`) and leave it unable to finish.
    pub(crate) fn in_open_transaction(&self, producer_id: i64) -> bool {
        self.transactions.get(&producer_id).is_some_and(|t| t.open)
    }

    /// Checks a producer's batch against its transaction on this partition. Returns whether
    /// it is the first transactional batch of the open transaction (its first offset is then
    /// recorded).
    pub(crate) fn check_transaction(
        &self,
        p: &ProducerBatch,
        transactional: bool,
    ) -> Result<bool, PartitionError> {
        let (id, epoch) = (p.producer_id, p.producer_epoch);
        match self.transactions.get(&id) {
            Some(t) if t.open => {
                if epoch < t.producer_epoch {
                    return Err(PartitionError::ProducerFenced(format!(
                        "producer id {id}: epoch {epoch} is older than the open transaction's \
                         epoch {}",
                        t.producer_epoch
                    )));
                }
                if epoch > t.producer_epoch {
                    return Err(PartitionError::ConcurrentTransactions(format!(
                        "producer id {id}: the transaction of epoch {} is still open on this \
                         partition; epoch {epoch} may write once its marker has arrived",
                        t.producer_epoch
                    )));
                }
                if !transactional {
                    return Err(PartitionError::InvalidTxnState(format!(
                        "producer id {id} epoch {epoch} has an open transaction on this \
                         partition; its batches must be transactional"
                    )));
                }
                Ok(t.first_offset.is_none())
            }
            Some(t) if transactional && epoch <= t.producer_epoch => {
                Err(PartitionError::ProducerFenced(format!(
                    "producer id {id}: the transaction of epoch {} already ended on this \
                     partition; epoch {epoch} may not write transactionally again",
                    t.producer_epoch
                )))
            }
            _ if transactional => Err(PartitionError::InvalidTxnRegistration(format!(
                "producer id {id} epoch {epoch} is not registered for a transaction on this \
                 partition: add the partition to the transaction first"
            ))),
            _ => Ok(false),
        }
    }

    /// Registers a transaction, named by (producer id, epoch, the coordinator's number), on
    /// this partition (KIP-890 part 1): from now on the producer's transactional batches of
    /// that epoch are accepted.
    ///
    /// Transactions of one producer id are ordered by (epoch, number): a
    /// transaction-version-1 producer keeps its epoch, and the number goes on rising.
    /// Registering the open transaction again is a no-op. Refused: an older transaction than
    /// the open one (`PRODUCER_FENCED`), a newer one while the older is still open here
    /// (`CONCURRENT_TRANSACTIONS`: its marker must come first), and one at or before a
    /// transaction that already ended here (`PRODUCER_FENCED`: a delayed registration must not
    /// reopen it).
    pub fn register_txn(
        &mut self,
        req: &RegisterTxnRequest,
        now_ms: i64,
    ) -> Result<(), PartitionError> {
        let bind = self.check_ref(&req.partition)?;
        let (id, epoch) = (req.producer_id, req.producer_epoch);
        check_producer_ids(id, epoch)?;
        if !valid_transactional_id(&req.transactional_id) {
            return Err(PartitionError::InvalidRequest(format!(
                "invalid transactional_id {:?}",
                req.transactional_id
            )));
        }
        let txn = (epoch, req.txn_seq);
        match self.transactions.get(&id) {
            Some(t) if t.open && t.id() == txn => return Ok(()),
            Some(t) if t.open && t.id() < txn => {
                return Err(PartitionError::ConcurrentTransactions(format!(
                    "producer id {id}: the transaction {:?} (epoch, number) is still open on \
                     this partition; {txn:?} can be registered once its marker has arrived",
                    t.id()
                )))
            }
            Some(t) if txn < t.id() || (!t.open && txn == t.id()) => {
                return Err(PartitionError::ProducerFenced(format!(
                    "producer id {id}: transaction {txn:?} (epoch, number) is not newer than \
                     {:?}, which is {} on this partition",
                    t.id(),
                    if t.open { "open" } else { "ended" }
                )))
            }
            _ => {}
        }
        let forget = self.transactions_to_forget(id)?;
        let entry = TxnEntry {
            transactional_id: req.transactional_id.clone(),
            producer_epoch: epoch,
            open: true,
            first_offset: None,
            start_ms: now_ms,
            updated_ms: now_ms,
            txn_seq: req.txn_seq,
        };
        self.store_txn_entry(&req.partition, bind, forget, id, entry)?;
        self.assert_offsets();
        Ok(())
    }

    /// Stores a producer's transaction row (binding the partition first if this is its first
    /// call, and dropping the row `forget` to stay under the cap) in one storage transaction,
    /// then mirrors it in memory once committed.
    fn store_txn_entry(
        &mut self,
        partition: &PartitionRef,
        bind: bool,
        forget: Option<i64>,
        id: i64,
        entry: TxnEntry,
    ) -> Result<(), PartitionError> {
        self.sql.transaction(|| {
            if bind {
                self.bind_sql(partition, false)?;
            }
            if let Some(f) = forget {
                self.sql.run(
                    "DELETE FROM transactions WHERE producer_id = ?",
                    &[f.into()],
                )?;
            }
            self.upsert_txn(id, &entry)
        })?;
        if bind {
            self.bind_memory(partition);
        }
        if let Some(f) = forget {
            self.transactions.remove(&f);
        }
        self.transactions.insert(id, entry);
        Ok(())
    }

    /// Which ended transaction row to drop so a new producer's row fits under
    /// [`PartitionConfig::max_producers`](crate::PartitionConfig::max_producers). Open
    /// transactions are never dropped: when every row is open, the registration is refused
    /// until some end.
    fn transactions_to_forget(&self, producer_id: i64) -> Result<Option<i64>, PartitionError> {
        if self.transactions.contains_key(&producer_id)
            || self.transactions.len() < self.config.max_producers
        {
            return Ok(None);
        }
        self.transactions
            .iter()
            .filter(|(_, t)| !t.open)
            .min_by_key(|(&id, t)| (t.updated_ms, id))
            .map(|(&id, _)| Some(id))
            .ok_or_else(|| {
                PartitionError::ConcurrentTransactions(format!(
                    "this partition already has {} open transactions, its limit",
                    self.transactions.len()
                ))
            })
    }

    fn upsert_txn(&self, producer_id: i64, t: &TxnEntry) -> Result<(), SqlError> {
        self.sql.run(
            "INSERT INTO transactions (producer_id, producer_epoch, transactional_id, open,
                 first_offset, start_ms, updated_ms, txn_seq)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (producer_id) DO UPDATE SET
                 producer_epoch = excluded.producer_epoch,
                 transactional_id = excluded.transactional_id,
                 open = excluded.open,
                 first_offset = excluded.first_offset,
                 start_ms = excluded.start_ms,
                 updated_ms = excluded.updated_ms,
                 txn_seq = excluded.txn_seq",
            &[
                producer_id.into(),
                t.producer_epoch.into(),
                Param::Text(&t.transactional_id),
                t.open.into(),
                t.first_offset.into(),
                t.start_ms.into(),
                t.updated_ms.into(),
                t.txn_seq.into(),
            ],
        )
    }

    /// Ends the producer's open transaction on this partition: appends a control batch (one
    /// offset) and, for an abort, adds the transaction to the aborted index.
    ///
    /// A marker for the open transaction, or a later one by (epoch, number), ends it. A
    /// marker for an older transaction, or with no transaction open, is acknowledged with
    /// `marker_offset: None` and changes nothing, except that the partition remembers the
    /// transaction as ended so a registration of it arriving later is refused. (A late marker
    /// of the previous transaction of a transaction-version-1 producer, with the same epoch,
    /// is older by its number and cannot end the next one.) A registered transaction that wrote
    /// nothing here ends without a control batch (`marker_offset: None` too): there is nothing
    /// for a reader to skip.
    pub fn write_marker(
        &mut self,
        req: &WriteMarkerRequest,
        now_ms: i64,
    ) -> Result<MarkerAck, PartitionError> {
        let bind = self.check_ref(&req.partition)?;
        let (id, epoch) = (req.producer_id, req.producer_epoch);
        check_producer_ids(id, epoch)?;
        let txn = (epoch, req.txn_seq);
        let existing = self.transactions.get(&id);
        let ends_open = existing.is_some_and(|t| t.open && txn >= t.id());
        if !ends_open {
            // Nothing open to end: a duplicate or late marker, or one that overtook its
            // registration. Remember the transaction as ended if it is newer than any known.
            let newer = existing.is_none_or(|t| !t.open && txn > t.id());
            if !newer {
                return Ok(MarkerAck {
                    marker_offset: None,
                });
            }
            let Ok(forget) = self.transactions_to_forget(id) else {
                // Every row is an open transaction: the epoch goes unremembered, which only
                // loses the protection against a registration that is delayed beyond it.
                return Ok(MarkerAck {
                    marker_offset: None,
                });
            };
            let entry = TxnEntry {
                transactional_id: existing
                    .map(|t| t.transactional_id.clone())
                    .unwrap_or_default(),
                producer_epoch: epoch,
                open: false,
                first_offset: None,
                start_ms: now_ms,
                updated_ms: now_ms,
                txn_seq: req.txn_seq,
            };
            self.store_txn_entry(&req.partition, bind, forget, id, entry)?;
            return Ok(MarkerAck {
                marker_offset: None,
            });
        }
        let open = existing.expect("checked above").clone();
        assert!(!bind, "an open transaction means the partition is bound");
        let ended = TxnEntry {
            producer_epoch: epoch,
            open: false,
            first_offset: None,
            updated_ms: now_ms,
            txn_seq: req.txn_seq,
            ..open.clone()
        };
        let marker_offset = open.first_offset.map(|_| self.high_watermark);
        self.sql.transaction(|| {
            if let (Some(first), Some(marker)) = (open.first_offset, marker_offset) {
                let commit = req.result == TxnResult::Commit;
                let row = NewRow {
                    base_offset: marker,
                    last_offset: marker,
                    max_timestamp: now_ms,
                    size_bytes: 0,
                    blob: vec![u8::from(commit)],
                };
                let producer = ProducerBatch {
                    producer_id: id,
                    producer_epoch: epoch,
                    base_sequence: 0,
                };
                let flags =
                    FLAG_TRANSACTIONAL | FLAG_CONTROL | if commit { FLAG_COMMIT } else { 0 };
                self.insert_row(&row, Some(&producer), flags)?;
                if !commit {
                    self.sql.run(
                        "INSERT INTO aborted_transactions (producer_id, first_offset, last_offset)
                         VALUES (?, ?, ?)",
                        &[id.into(), first.into(), marker.into()],
                    )?;
                }
            }
            self.upsert_txn(id, &ended)
        })?;
        if marker_offset.is_some() {
            self.high_watermark += 1;
        }
        self.transactions.insert(id, ended);
        self.assert_offsets();
        Ok(MarkerAck { marker_offset })
    }

    /// The transactions open on this partition, oldest first offset first (those that have
    /// not written yet last), for the admin view.
    pub fn open_transactions(&self) -> Vec<PartitionOpenTransaction> {
        let mut open: Vec<PartitionOpenTransaction> = self
            .transactions
            .iter()
            .filter(|(_, t)| t.open)
            .map(|(&id, t)| PartitionOpenTransaction {
                transactional_id: t.transactional_id.clone(),
                producer_id: id,
                producer_epoch: t.producer_epoch,
                first_offset: t.first_offset,
                start_ms: t.start_ms,
            })
            .collect();
        open.sort_by_key(|t| (t.first_offset.is_none(), t.first_offset, t.producer_id));
        open
    }
}
