//! When a request may be retried, and how long to wait first.
//!
//! A retry is safe only when a second execution cannot change the result:
//!
//! | the error | a [`Safety::Idempotent`] request | a [`Safety::NotIdempotent`] one |
//! | --- | --- | --- |
//! | [`Error::Connect`] (never sent) | retry | retry |
//! | a retriable code (`503`, `CONCURRENT_TRANSACTIONS`, ...) | retry | no |
//! | [`Error::UnknownOutcome`] (timeout, lost connection) | retry | no |
//! | anything else | no | no |
//!
//! Idempotent requests are reads, deletes, and the writes the server deduplicates: a partition
//! produce with a producer id and a base_sequence (the partition answers a retry of one of the
//! last 5 batches with the original offsets), a topic produce with an `Idempotency-Key`, and the
//! transactional calls keyed by (producer id, epoch). A plain produce is not: retrying it after
//! a timeout may write the records twice, so the SDK hands that unknown outcome to the caller.
//!
//! Backoff is exponential with "equal jitter": attempt `n` waits a random time between half and
//! all of `min(max_backoff_ms, initial_backoff_ms * 2^n)`, so many clients retrying after one
//! outage do not arrive in lockstep, and none retries sooner than half its schedule.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::error::Error;

/// Whether a second execution of a request is harmless.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Safety {
    /// A second execution changes nothing (reads, deletes, deduplicated writes).
    Idempotent,
    /// A second execution may repeat a side effect (a plain produce, a topic creation).
    NotIdempotent,
}

/// How many times and how patiently to retry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The most attempts per request, the first included (1 = never retry).
    pub max_attempts: u32,
    /// The backoff before the first retry, in ms.
    pub initial_backoff_ms: u64,
    /// The longest backoff, in ms.
    pub max_backoff_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 10,
            initial_backoff_ms: 50,
            max_backoff_ms: 2_000,
        }
    }
}

impl RetryPolicy {
    /// A policy that never retries.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// Whether attempt number `attempt` (1 = the first) that failed with `error` should be
    /// followed by another.
    pub fn should_retry(&self, error: &Error, safety: Safety, attempt: u32) -> bool {
        if attempt >= self.max_attempts {
            return false;
        }
        match error {
            Error::Connect(_) => true,
            Error::UnknownOutcome(_) => safety == Safety::Idempotent,
            Error::Api { code, .. } => code.is_retriable() && safety == Safety::Idempotent,
            // A 5xx without a Kafdo error body (a proxy, a crashed instance) says nothing
            // about whether the request ran.
            Error::Protocol { status, .. } => *status >= 500 && safety == Safety::Idempotent,
            Error::InvalidArgument(_) | Error::Closed(_) => false,
        }
    }

    /// The wait before retry number `retry` (0 = the first retry); `random` is uniform in u64.
    pub fn backoff(&self, retry: u32, random: u64) -> Duration {
        let base = self
            .initial_backoff_ms
            .saturating_mul(1u64 << retry.min(32))
            .min(self.max_backoff_ms);
        let half = base / 2;
        let jitter = if base - half == 0 {
            0
        } else {
            random % (base - half + 1)
        };
        Duration::from_millis(half + jitter)
    }
}

/// A small lock-free random source for jitter (SplitMix64). Jitter needs spread, not secrecy,
/// and this keeps the SDK free of an RNG dependency that would need a wasm entropy source.
#[derive(Debug)]
pub struct Jitter(AtomicU64);

impl Jitter {
    /// A source seeded from std's per-process hash keys and the source's own address.
    pub fn new() -> Self {
        use std::hash::{BuildHasher, Hasher};
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_usize(&hasher as *const _ as usize);
        Self(AtomicU64::new(hasher.finish()))
    }

    /// A source with a fixed seed (tests).
    pub fn with_seed(seed: u64) -> Self {
        Self(AtomicU64::new(seed))
    }

    /// The next random number.
    pub fn next(&self) -> u64 {
        let mut z = self
            .0
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

impl Default for Jitter {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafdo_types::ErrorCode;

    fn api(code: ErrorCode) -> Error {
        Error::Api {
            status: code.http_status(),
            code,
            message: String::new(),
        }
    }

    #[test]
    fn only_safe_retries() {
        let policy = RetryPolicy::default();
        use Safety::*;
        let timeout = Error::UnknownOutcome("timeout".into());
        assert!(policy.should_retry(&timeout, Idempotent, 1));
        assert!(!policy.should_retry(&timeout, NotIdempotent, 1));
        let refused = Error::Connect("refused".into());
        assert!(policy.should_retry(&refused, NotIdempotent, 1));
        let busy = api(ErrorCode::CoordinatorLoadInProgress);
        assert!(policy.should_retry(&busy, Idempotent, 1));
        assert!(!policy.should_retry(&busy, NotIdempotent, 1));
        assert!(!policy.should_retry(&api(ErrorCode::ProducerFenced), Idempotent, 1));
        assert!(!policy.should_retry(&api(ErrorCode::OutOfOrderSequenceNumber), Idempotent, 1));
        // The attempt budget is respected.
        assert!(!policy.should_retry(&refused, Idempotent, policy.max_attempts));
        assert!(!RetryPolicy::none().should_retry(&refused, Idempotent, 1));
    }

    #[test]
    fn backoff_grows_with_jitter_and_a_cap() {
        let policy = RetryPolicy {
            max_attempts: 20,
            initial_backoff_ms: 100,
            max_backoff_ms: 1_000,
        };
        let jitter = Jitter::with_seed(7);
        let mut seen = std::collections::BTreeSet::new();
        for retry in 0..12 {
            let base = (100u64 << retry).min(1_000);
            for _ in 0..50 {
                let d = policy.backoff(retry, jitter.next()).as_millis() as u64;
                assert!(d >= base / 2 && d <= base, "retry {retry}: {d} ms");
                seen.insert(d);
            }
        }
        // Jitter spreads the waits.
        assert!(seen.len() > 100, "{} distinct waits", seen.len());
        assert_eq!(policy.backoff(0, 0), Duration::from_millis(50));
        assert!(policy.backoff(40, u64::MAX - 1).as_millis() <= 1_000);
    }
}
