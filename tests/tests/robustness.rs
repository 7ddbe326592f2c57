//! The Worker on the real runtime when things go wrong inside it: a Rust panic in a Durable
//! Object, and the storage binding's all-or-nothing transactions (the toolchain facts say an
//! error in the middle of a synchronous run does NOT roll back by itself, and a SQL error
//! raised while a cursor is read can abort the wasm instance).
//!
//! A panic may reset the whole wasm instance, which fails requests of other tests in flight
//! ("Your worker restarted mid-request"), so these tests own their instance. The deliberate
//! panic is made inside `Wrangler::expect_panic`, which exempts it (and only it) from the
//! harness's search of the output for panics, and fails if it does not appear.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use kafdo_e2e::{unique_topic, Wrangler};
use kafdo_types::{ErrorCode, ProduceRecord};

/// This binary's own instance (not the one other test binaries share), with the Worker's
/// deliberate panic armed (`--var KAFDO_DEBUG_PANIC:1`: bench object 666 panics).
fn instance() -> &'static Wrangler {
    static OWN: OnceLock<Wrangler> = OnceLock::new();
    OWN.get_or_init(|| Wrangler::start_for_static_with(&["--var", "KAFDO_DEBUG_PANIC:1"]))
}

#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn storage_transactions_roll_back_on_the_runtime() {
    let wrangler = instance();
    let client = wrangler.client();
    let report: serde_json::Value = client
        .post_raw("/debug/sql-rollback", kafdo_e2e::Format::Json, b"{}", &[])
        .expect(200);
    assert_eq!(report["rows_after_commit"], 1, "{report}");
    assert_eq!(
        report["failed_transaction_returned_error"], true,
        "{report}"
    );
    assert_eq!(
        report["rows_after_rollback"], 1,
        "a failed transaction left rows behind: {report}"
    );
    assert!(
        report["cursor_error"].is_string(),
        "an error while reading a cursor was not reported: {report}"
    );
    assert!(
        report["too_many_params_error"].is_string(),
        "101 bound parameters were not refused: {report}"
    );
    // The instance still serves after the cursor error.
    client.health();
}

#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn a_panicking_object_answers_an_error_and_the_worker_keeps_serving() {
    let wrangler = instance();
    let client = wrangler.client();
    let topic = unique_topic("after-panic");
    client.create_topic(&topic, 1);
    client.produce_partition(&topic, 0, vec![ProduceRecord::value("before")]);

    // Object 666 of the benchmark's class panics on purpose: that panic, and only that one,
    // is exempt from the harness's search of the output for panics.
    let started = Instant::now();
    let reply = wrangler.expect_panic("deliberate panic (KAFDO_DEBUG_PANIC)", || {
        client.post_raw(
            "/bench/bare-append/666",
            kafdo_e2e::Format::Json,
            br#"{"records":[{"value":"aGk="}]}"#,
            &[],
        )
    });
    let error = reply.error();
    assert!(
        matches!(
            (reply.status, error.code),
            (500, ErrorCode::UnknownServerError) | (503, ErrorCode::RequestTimedOut)
        ),
        "a panic must answer 500 UNKNOWN_SERVER_ERROR (or 503 REQUEST_TIMED_OUT), got {} {error}",
        reply.status
    );
    assert!(
        started.elapsed() < Duration::from_secs(35),
        "the panic took {:?} to answer",
        started.elapsed()
    );

    // Everything else still works, and nothing written before is lost.
    client.health();
    client.produce_partition(&topic, 0, vec![ProduceRecord::value("after")]);
    let values: Vec<Vec<u8>> = client
        .read_all(&topic, 0)
        .into_iter()
        .map(|r| r.value.unwrap())
        .collect();
    assert_eq!(values, vec![b"before".to_vec(), b"after".to_vec()]);
}
