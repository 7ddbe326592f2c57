//! Calls to many objects at once, bounded.
//!
//! An admin request may concern every partition of every topic (the list of open
//! transactions) or every partition of one (a topic's deletion). Sending all of those calls
//! at once would open thousands of subrequests from one request, so they go out at most
//! [`MAX_CONCURRENT_CALLS`] at a time, and the answers come back in the order of the calls.
//! The produce fan-out is not bounded here: it sends one append per partition of a topic
//! (at most `MAX_PARTITIONS`), all at once, because its latency is the hot path's.

use std::future::Future;

use futures_util::stream::{self, StreamExt};

/// The most calls one admin request has in flight at a time.
pub const MAX_CONCURRENT_CALLS: usize = 16;

/// Runs `calls` at most [`MAX_CONCURRENT_CALLS`] at a time; the outputs in the calls' order.
pub async fn bounded<F: Future>(calls: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    stream::iter(calls)
        .buffered(MAX_CONCURRENT_CALLS)
        .collect()
        .await
}
