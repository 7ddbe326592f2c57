//! Which partition a record goes to: Kafka's default partitioner, on the client.
//!
//! 1. A record with an explicit partition goes there.
//! 2. A record with a key goes to `toPositive(murmur2(key)) % partitions`
//!    ([`kafdo_types::partitioner`]), so a key lands where it would in Kafka.
//! 3. A record without a key goes to the topic's *sticky* partition (KIP-480 / KIP-794): the
//!    producer keeps filling one partition's batch, and moves to another partition, chosen at
//!    random, once it has sent a batch's worth of bytes or records there. Sticky batches are
//!    full batches, which is where throughput comes from; the random switch spreads load.

use kafdo_types::partitioner::partition_for_key;

/// The sticky-partition state of one topic.
#[derive(Clone, Debug)]
pub struct StickyPartitioner {
    partitions: i32,
    current: Option<i32>,
    bytes: usize,
    records: usize,
    batch_bytes: usize,
    batch_records: usize,
}

impl StickyPartitioner {
    /// A partitioner for a topic of `partitions` partitions; keyless records switch partitions
    /// after `batch_bytes` bytes or `batch_records` records.
    pub fn new(partitions: i32, batch_bytes: usize, batch_records: usize) -> Self {
        assert!(partitions > 0, "a topic has at least one partition");
        Self {
            partitions,
            current: None,
            bytes: 0,
            records: 0,
            batch_bytes: batch_bytes.max(1),
            batch_records: batch_records.max(1),
        }
    }

    /// The topic's partition count.
    pub fn partitions(&self) -> i32 {
        self.partitions
    }

    /// The partition for a record; `random` is a fresh uniform random number.
    pub fn partition(
        &mut self,
        explicit: Option<i32>,
        key: Option<&[u8]>,
        size_bytes: usize,
        random: u64,
    ) -> i32 {
        if let Some(p) = explicit {
            return p;
        }
        if let Some(key) = key {
            return partition_for_key(key, self.partitions);
        }
        let full = self.bytes >= self.batch_bytes || self.records >= self.batch_records;
        let current = match self.current {
            Some(p) if !full => p,
            previous => {
                // Pick another partition than the one just filled, when there is one.
                let n = self.partitions as u64;
                let p = match previous {
                    Some(prev) if n > 1 => ((prev as u64 + 1 + random % (n - 1)) % n) as i32,
                    _ => (random % n) as i32,
                };
                self.current = Some(p);
                self.bytes = 0;
                self.records = 0;
                p
            }
        };
        self.bytes += size_bytes;
        self.records += 1;
        current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_explicit_partitions() {
        let mut p = StickyPartitioner::new(8, 1000, 100);
        assert_eq!(p.partition(Some(3), Some(b"k"), 1, 0), 3);
        assert_eq!(
            p.partition(None, Some(b"foobar"), 1, 0),
            partition_for_key(b"foobar", 8)
        );
        // The same key, the same partition, whatever the random input.
        assert_eq!(
            p.partition(None, Some(b"foobar"), 1, 99),
            partition_for_key(b"foobar", 8)
        );
    }

    #[test]
    fn null_keys_stick_until_a_batch_is_full() {
        let mut p = StickyPartitioner::new(4, 250, 1000);
        let first = p.partition(None, None, 100, 2);
        assert_eq!(p.partition(None, None, 100, 5), first);
        assert_eq!(p.partition(None, None, 100, 7), first);
        // 300 bytes sent there: the next record moves, and never to the same partition.
        let second = p.partition(None, None, 100, 1);
        assert_ne!(second, first);
        let mut seen = std::collections::BTreeSet::new();
        let jitter = crate::retry::Jitter::with_seed(1);
        for _ in 0..400 {
            seen.insert(p.partition(None, None, 100, jitter.next()));
        }
        assert_eq!(seen.len(), 4, "every partition gets batches");
        let mut single = StickyPartitioner::new(1, 1, 1);
        for i in 0..10 {
            assert_eq!(single.partition(None, None, 10, i), 0);
        }
    }
}
