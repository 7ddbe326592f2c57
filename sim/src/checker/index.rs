//! Indexing the history before any check: every produced or ingested value's partition,
//! transaction and source, and every commit request ([`Checker::index_writes`], which refuses a
//! reused value or an ill-formed produce as [`Malformed`]); the observations: markers and their
//! offsets, group markers, pipelines, compacted and retained topics, keys
//! ([`Checker::index_observations`], which finds two transactions' markers at one offset,
//! `OneValuePerOffset`); and the final scans and stable offset fetches after
//! [`Observation::Settled`] ([`Checker::index_final`]).

use kafdo_types::rpc::TxnResult;

use super::ops::is_committed_isolation;
use super::{Checker, IngestKey, Invariant, Malformed, Write};
use crate::history::{Entry, Observation, ReadRecord, Reply, Request, Tp};

impl<'a> Checker<'a> {
    pub(super) fn index_writes(&mut self) -> Result<(), Malformed> {
        for op in &self.ops {
            match op.request {
                Request::Produce {
                    topic,
                    partition,
                    producer_id,
                    producer_epoch,
                    transactional_id,
                    values,
                    sources,
                    ..
                } => {
                    if !sources.is_empty() && sources.len() != values.len() {
                        return Err(Malformed {
                            index: op.invoke,
                            message: "sources must be empty or one per value".into(),
                        });
                    }
                    let txn = match (transactional_id, producer_id, producer_epoch) {
                        (Some(_), Some(id), Some(epoch)) => Some((*id, *epoch)),
                        (Some(_), _, _) => {
                            return Err(Malformed {
                                index: op.invoke,
                                message: "a transactional produce needs a producer id and epoch"
                                    .into(),
                            })
                        }
                        _ => None,
                    };
                    let tp = Tp::new(topic.clone(), *partition);
                    for (i, value) in values.iter().enumerate() {
                        let source = sources.get(i).cloned();
                        match self.writes.get(value.as_str()) {
                            Some(w) if w.tp != tp || w.txn != txn || w.source != source => {
                                return Err(Malformed {
                                    index: op.invoke,
                                    message: format!(
                                        "value {value} produced again with another partition, \
                                         transaction or source (values must be unique)"
                                    ),
                                });
                            }
                            Some(_) => {}
                            None => {
                                self.writes.insert(
                                    value,
                                    Write {
                                        tp: tp.clone(),
                                        txn,
                                        source,
                                    },
                                );
                            }
                        }
                    }
                }
                Request::Ingest {
                    topic,
                    key,
                    records,
                } => {
                    let body: IngestKey<'a> = (topic.as_str(), key.as_str(), records.as_slice());
                    for record in records.iter() {
                        let value = record.value.as_str();
                        let tp = Tp::new(topic.clone(), record.partition);
                        let same_body = self.ingested.get(value).map(|b| *b == body);
                        let same_write = self
                            .writes
                            .get(value)
                            .map(|w| w.tp == tp && w.txn.is_none() && w.source.is_none());
                        if same_body == Some(false)
                            || (same_body.is_none() && same_write.is_some())
                            || same_write == Some(false)
                        {
                            return Err(Malformed {
                                index: op.invoke,
                                message: format!(
                                    "value {value} sent again with another key, body or \
                                     partition (values must be unique)"
                                ),
                            });
                        }
                        self.ingested.insert(value, body);
                        self.writes.entry(value).or_insert(Write {
                            tp,
                            txn: None,
                            source: None,
                        });
                    }
                }
                Request::EndTxn {
                    producer_id,
                    producer_epoch,
                    commit: true,
                    ..
                } => {
                    self.commit_requested
                        .entry((*producer_id, *producer_epoch))
                        .or_insert(op.invoke);
                }
                _ => {}
            }
        }
        Ok(())
    }

    pub(super) fn index_observations(&mut self) {
        for event in self.events {
            let Entry::Observe { observation } = &event.entry else {
                continue;
            };
            match observation {
                Observation::Marker {
                    topic,
                    partition,
                    producer_id,
                    producer_epoch,
                    result,
                    offset,
                } => {
                    let tp = Tp::new(topic.clone(), *partition);
                    let txn = (*producer_id, *producer_epoch);
                    if let Some(offset) = offset {
                        let markers = self.marker_offsets.entry(tp.clone()).or_default();
                        if let Some((other, at)) = markers.get(offset) {
                            if *other != txn {
                                let (other, at) = (*other, *at);
                                self.violation(
                                    Invariant::OneValuePerOffset,
                                    format!(
                                        "{tp} offset {offset} holds markers of two transactions \
                                         {other:?} and {txn:?}"
                                    ),
                                    vec![at, event.index],
                                );
                            }
                        } else {
                            markers.insert(*offset, (txn, event.index));
                        }
                    }
                    self.markers_seen
                        .entry((tp.clone(), txn))
                        .or_insert(event.index);
                    if *result == TxnResult::Commit {
                        self.commit_markers.entry((tp, txn)).or_insert(event.index);
                    }
                }
                Observation::GroupMarker {
                    group_id,
                    producer_id,
                    producer_epoch,
                    result: TxnResult::Commit,
                } => {
                    self.group_commit_markers
                        .entry((group_id.as_str(), (*producer_id, *producer_epoch)))
                        .or_insert(event.index);
                }
                Observation::Pipeline {
                    group_id,
                    input_topic,
                    output_topic,
                } => self.pipelines.push((
                    group_id.as_str(),
                    input_topic.as_str(),
                    output_topic.as_str(),
                    event.index,
                )),
                Observation::Settled => {
                    self.settled.get_or_insert(event.index);
                }
                Observation::Compacted {
                    topic,
                    delete_retention_ms,
                } => {
                    self.compacted.insert(topic, *delete_retention_ms);
                }
                Observation::Retention {
                    topic,
                    retention_ms,
                } => {
                    self.retained.insert(topic, *retention_ms);
                }
                Observation::Keys { records } => {
                    for r in records {
                        self.keys
                            .insert(r.value.as_str(), (r.key.as_str(), r.tombstone));
                    }
                }
                _ => {}
            }
        }
    }

    pub(super) fn index_final(&mut self) {
        let Some(settled) = self.settled else { return };
        for op in &self.ops {
            if op.invoke < settled || op.reply().is_none() {
                continue;
            }
            match op.request {
                Request::Scan {
                    topic,
                    partition,
                    isolation,
                } => {
                    let key = (
                        Tp::new(topic.clone(), *partition),
                        is_committed_isolation(*isolation),
                    );
                    self.final_scans.insert(key, *op);
                }
                Request::FetchOffsets {
                    group_id,
                    require_stable: true,
                } => {
                    self.final_offsets.insert(group_id, *op);
                }
                _ => {}
            }
        }
    }

    pub(super) fn final_records(&self, tp: &Tp, committed: bool) -> Option<&'a [ReadRecord]> {
        let op = self.final_scans.get(&(tp.clone(), committed))?;
        match op.reply() {
            Some(Reply::Fetch { records, .. }) => Some(records),
            _ => None,
        }
    }
}
