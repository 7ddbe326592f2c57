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

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use futures_util::future::poll_fn;

    use super::*;

    #[test]
    fn at_most_the_bound_in_flight_and_answers_in_order() {
        let in_flight = Cell::new(0usize);
        let most = Cell::new(0usize);
        let calls = (0..100).map(|i| {
            let (in_flight, most) = (&in_flight, &most);
            async move {
                in_flight.set(in_flight.get() + 1);
                most.set(most.get().max(in_flight.get()));
                // Pending once, so the calls overlap as far as the bound lets them.
                let mut polled = false;
                poll_fn(|cx| {
                    if polled {
                        std::task::Poll::Ready(())
                    } else {
                        polled = true;
                        cx.waker().wake_by_ref();
                        std::task::Poll::Pending
                    }
                })
                .await;
                in_flight.set(in_flight.get() - 1);
                i
            }
        });
        let answers = futures_executor::block_on(bounded(calls));
        assert_eq!(answers, (0..100).collect::<Vec<_>>());
        assert_eq!(most.get(), MAX_CONCURRENT_CALLS);
    }
}
