//! Kafka's default partitioner, so a key lands on the same partition as it would in Kafka.

use crate::ProduceRecord;

/// Kafka's murmur2 (`org.apache.kafka.common.utils.Utils.murmur2`), seed `0x9747b28c`.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let length = data.len() as u32;
    let mut h: u32 = SEED ^ length;
    let chunks = data.chunks_exact(4);
    let tail = chunks.remainder();
    for chunk in chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    // Java sign-extends each byte before masking, which the `& 0xff` undoes: same as u8.
    match tail.len() {
        3 => {
            h ^= u32::from(tail[2]) << 16;
            h ^= u32::from(tail[1]) << 8;
            h ^= u32::from(tail[0]);
            h = h.wrapping_mul(M);
        }
        2 => {
            h ^= u32::from(tail[1]) << 8;
            h ^= u32::from(tail[0]);
            h = h.wrapping_mul(M);
        }
        1 => {
            h ^= u32::from(tail[0]);
            h = h.wrapping_mul(M);
        }
        _ => {}
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// Kafka's `Utils.toPositive`: clears the sign bit (not `abs`, which overflows on `i32::MIN`).
pub fn to_positive(n: i32) -> i32 {
    n & 0x7fff_ffff
}

/// The partition Kafka's default partitioner picks for a non-null key.
pub fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    assert!(partitions > 0, "a topic has at least one partition");
    to_positive(murmur2(key)) % partitions
}

/// A topic produce split into one batch per partition.
#[derive(Debug, PartialEq, Eq)]
pub struct ProducePlan {
    /// One batch per partition, in order of first appearance.
    pub batches: Vec<(i32, Vec<ProduceRecord>)>,
    /// For each record of the request, in request order: its batch and its index in the batch.
    pub slots: Vec<(usize, usize)>,
}

/// Splits a topic produce by partition: a record's explicit `partition`, else its key's
/// partition ([`partition_for_key`]), else `sticky` (the caller's pick for records with
/// neither, once per request). `Err(p)`: the explicit partition `p` is out of range.
pub fn plan_produce(
    records: Vec<ProduceRecord>,
    partitions: i32,
    sticky: i32,
) -> Result<ProducePlan, i32> {
    assert!(
        (0..partitions).contains(&sticky),
        "sticky partition out of range"
    );
    let mut targets = Vec::with_capacity(records.len());
    for record in &records {
        let p = match (record.partition, &record.key) {
            (Some(p), _) if !(0..partitions).contains(&p) => return Err(p),
            (Some(p), _) => p,
            (None, Some(key)) => partition_for_key(key, partitions),
            (None, None) => sticky,
        };
        targets.push(p);
    }
    // A small table from partition to batch index: at most 256 partitions.
    let mut batch_of = vec![usize::MAX; partitions as usize];
    let mut plan = ProducePlan {
        batches: Vec::new(),
        slots: Vec::with_capacity(records.len()),
    };
    for (record, p) in records.into_iter().zip(targets) {
        let b = &mut batch_of[p as usize];
        if *b == usize::MAX {
            *b = plan.batches.len();
            plan.batches.push((p, Vec::new()));
        }
        let batch = &mut plan.batches[*b].1;
        plan.slots.push((*b, batch.len()));
        batch.push(record);
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vectors of Kafka's `UtilsTest.testMurmur2`.
    #[test]
    fn matches_kafka() {
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (input, expected) in cases {
            assert_eq!(
                murmur2(input),
                expected,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn partition_is_in_range() {
        for i in 0..1000u32 {
            let p = partition_for_key(&i.to_be_bytes(), 7);
            assert!((0..7).contains(&p));
        }
    }
}
