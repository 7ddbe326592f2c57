//! Keyed ingestion (`Idempotency-Key`): every acknowledged attempt of one ingestion answers the
//! same offsets (`IngestAnswer`), and after settling no ingested value sits twice in the final
//! read_uncommitted scan, and every record of an acknowledged ingestion sits there once, at its
//! acknowledged offset, visible to read_committed readers (`IngestExactlyOnce`).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::{Checker, IngestKey, Invariant};
use crate::history::{Reply, Request, Tp};

impl<'a> Checker<'a> {
    /// The acknowledged answers of each keyed ingestion, in history order.
    fn ingest_answers(&self) -> BTreeMap<IngestKey<'a>, Vec<(&'a Reply, u64)>> {
        let mut answers: BTreeMap<IngestKey<'a>, Vec<(&'a Reply, u64)>> = BTreeMap::new();
        for op in &self.ops {
            if let (
                Request::Ingest {
                    topic,
                    key,
                    records,
                },
                Some(reply),
            ) = (op.request, op.reply())
            {
                answers
                    .entry((topic.as_str(), key.as_str(), records.as_slice()))
                    .or_default()
                    .push((reply, op.complete));
            }
        }
        answers
    }

    /// Every acknowledged attempt of one keyed ingestion answers the same offsets. (The answer's
    /// shape, one offset per record on the record's partition, is checked with the claims.)
    pub(super) fn check_ingest_answers(&mut self) {
        for ((topic, key, _), answers) in self.ingest_answers() {
            let (first, at) = answers[0];
            if let Some((other, other_at)) = answers.iter().find(|(r, _)| *r != first) {
                self.violation(
                    Invariant::IngestAnswer,
                    format!(
                        "two acknowledged attempts of ingestion {topic} key={key} answered \
                         different offsets: {first} and {other}"
                    ),
                    vec![at, *other_at],
                );
            }
        }
    }

    /// In the final read_uncommitted scan, no ingested record appears twice, and every record
    /// of an acknowledged ingestion appears exactly once, at its acknowledged offset, and in
    /// the read_committed scan too.
    pub(super) fn check_ingest_end_state(&mut self) {
        // Where each ingested value sits in the final scans: value -> offsets (ru), and
        // whether read_committed readers see it.
        let mut found: HashMap<&'a str, (Vec<i64>, bool, u64)> = HashMap::new();
        let tps: BTreeSet<Tp> = self.final_scans.keys().map(|(tp, _)| tp.clone()).collect();
        for tp in &tps {
            // A partition without a final read_uncommitted scan is `check_end_state`'s
            // `LostWrite`; there is nothing to look at here.
            let Some(ru_scan) = self.final_scans.get(&(tp.clone(), false)) else {
                continue;
            };
            let ru_event = ru_scan.complete;
            for record in self.final_records(tp, false).unwrap_or(&[]) {
                if self.ingested.contains_key(record.value.as_str()) {
                    let entry =
                        found
                            .entry(record.value.as_str())
                            .or_insert((Vec::new(), false, ru_event));
                    entry.0.push(record.offset);
                }
            }
            for record in self.final_records(tp, true).unwrap_or(&[]) {
                if let Some(entry) = found.get_mut(record.value.as_str()) {
                    entry.1 = true;
                }
            }
        }
        let mut twice: Vec<(&str, &Vec<i64>, u64)> = found
            .iter()
            .filter(|(_, (offsets, _, _))| offsets.len() > 1)
            .map(|(value, (offsets, _, at))| (*value, offsets, *at))
            .collect();
        twice.sort();
        for (value, offsets, at) in twice {
            let (topic, key, _) = self.ingested[value];
            self.violation(
                Invariant::IngestExactlyOnce,
                format!(
                    "{value} of ingestion {topic} key={key} was appended {} times (offsets {})",
                    offsets.len(),
                    offsets
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                vec![at],
            );
        }
        for ((topic, key, records), answers) in self.ingest_answers() {
            let (Reply::Ingest { offsets }, at) = answers[0] else {
                continue;
            };
            for (record, o) in records.iter().zip(offsets) {
                let value = record.value.as_str();
                let (where_, visible) = match found.get(value) {
                    Some((offsets, visible, _)) => (offsets.clone(), *visible),
                    None => (Vec::new(), false),
                };
                if where_ != [o.offset] || !visible {
                    self.violation(
                        Invariant::IngestExactlyOnce,
                        format!(
                            "{value} of ingestion {topic} key={key} was acknowledged at \
                             {topic}/{} offset {}, but the final scan has it at [{}]{}",
                            o.partition,
                            o.offset,
                            where_
                                .iter()
                                .map(ToString::to_string)
                                .collect::<Vec<_>>()
                                .join(", "),
                            if visible {
                                ""
                            } else {
                                " and read_committed readers never see it"
                            }
                        ),
                        vec![at],
                    );
                }
            }
        }
    }
}
