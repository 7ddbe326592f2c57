//! `Idempotency-Key` ingestion on the real runtime, the parts that need time or a race: a key
//! in flight answers 409 `IDEMPOTENCY_KEY_IN_FLIGHT` with a `Retry-After` header, and a key is
//! forgotten once its TTL passes (the key object's alarm, or the next request finding it
//! expired), after which the same key names a new request.
//!
//! These tests own their instance, started with `--var IDEMPOTENCY_KEY_TTL_MS:31000` (the
//! smallest TTL the Worker accepts is just over the 30 s attempt lease), so the expiry test
//! waits about half a minute; the in-flight test runs meanwhile.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use kafdo_e2e::{unique_topic, Client, Reply, Wrangler};
use kafdo_types::api::ProduceResponse;
use kafdo_types::{ErrorCode, ProduceRecord};

/// The key TTL this binary's instance runs with.
const TTL_MS: u64 = 31_000;

/// This binary's own instance, with a short key TTL.
fn instance() -> &'static Wrangler {
    static OWN: OnceLock<Wrangler> = OnceLock::new();
    OWN.get_or_init(|| {
        Wrangler::start_for_static_with(&["--var", &format!("IDEMPOTENCY_KEY_TTL_MS:{TTL_MS}")])
    })
}

fn keyed(client: &Client, topic: &str, key: &str, records: &[ProduceRecord]) -> Reply {
    client.produce_reply(topic, records.to_vec(), &[("idempotency-key", key)])
}

fn records(tag: &str, n: usize, value_bytes: usize) -> Vec<ProduceRecord> {
    (0..n)
        .map(|i| {
            let mut value = format!("{tag}-{i}-").into_bytes();
            value.resize(value_bytes.max(value.len()), b'.');
            ProduceRecord::value(value)
        })
        .collect()
}

#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn an_expired_key_is_forgotten_and_names_a_new_request() {
    let wrangler = instance();
    let client = wrangler.client();
    let topic = unique_topic("key-expiry");
    client.create_topic(&topic, 1);
    let (first, second) = (records("first", 2, 0), records("second", 3, 0));

    let stored = Instant::now();
    let answer: ProduceResponse = keyed(&client, &topic, "k", &first).expect(200);
    assert_eq!(answer.offsets.len(), 2);
    // Within the TTL the key stands for the first body: a retry answers the same, another body
    // is refused, and neither writes anything.
    assert_eq!(
        keyed(&client, &topic, "k", &first).expect::<ProduceResponse>(200),
        answer
    );
    keyed(&client, &topic, "k", &second).expect_code(ErrorCode::IdempotencyKeyReused);
    assert_eq!(client.partition_info(&topic, 0).high_watermark, 2);

    // After the TTL the key is forgotten: the other body is a new request. Asked once a second
    // (a refusal must not keep the key alive), and never later than the TTL plus 20 s.
    let deadline = stored + Duration::from_millis(TTL_MS) + Duration::from_secs(20);
    let renewed: ProduceResponse = loop {
        let reply = keyed(&client, &topic, "k", &second);
        if reply.status == 200 {
            assert!(
                stored.elapsed() >= Duration::from_millis(TTL_MS),
                "the key was forgotten after {:?}, before its TTL",
                stored.elapsed()
            );
            break reply.decode();
        }
        reply.expect_code(ErrorCode::IdempotencyKeyReused);
        assert!(
            Instant::now() < deadline,
            "the key was not forgotten within its TTL plus 20 s"
        );
        std::thread::sleep(Duration::from_secs(1));
    };
    assert_eq!(renewed.offsets.len(), 3);
    assert_eq!(renewed.offsets[0].offset, 2, "appended after the first");
    // The key now stands for the second body.
    assert_eq!(
        keyed(&client, &topic, "k", &second).expect::<ProduceResponse>(200),
        renewed
    );
    keyed(&client, &topic, "k", &first).expect_code(ErrorCode::IdempotencyKeyReused);
    let values: Vec<Vec<u8>> = client
        .read_all(&topic, 0)
        .into_iter()
        .map(|r| r.value.unwrap_or_default())
        .collect();
    let expected: Vec<Vec<u8>> = first
        .iter()
        .chain(&second)
        .map(|r| r.value.clone().unwrap_or_default())
        .collect();
    assert_eq!(values, expected);
}

#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn a_key_in_flight_answers_409_with_retry_after() {
    let test = "a_key_in_flight_answers_409_with_retry_after";
    let wrangler = instance();
    let client = wrangler.client();
    let topic = unique_topic("key-in-flight");
    client.create_topic(&topic, 4);
    // Four senders of one key at once, with a body big enough (2,000 records of 200 bytes over
    // four partitions) that the first attempt is still appending when the others arrive.
    // Rounds with fresh keys until one sees the 409; a round without one is not a failure.
    let mut seen_409 = None;
    let mut appended = 0;
    for round in 0..20 {
        let key = format!("race-{round}");
        let body = records(&key, 2_000, 200);
        let replies: Vec<Reply> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| s.spawn(|| keyed(&client, &topic, &key, &body)))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        appended += body.len() as i64;
        let mut answers = Vec::new();
        for reply in replies {
            if reply.status == 409 {
                reply.expect_code(ErrorCode::IdempotencyKeyInFlight);
                let seconds: u64 = reply
                    .retry_after
                    .as_deref()
                    .expect("a 409 IDEMPOTENCY_KEY_IN_FLIGHT has a Retry-After header")
                    .parse()
                    .expect("Retry-After in whole seconds");
                // A live attempt ends in milliseconds; the 30 s lease only bounds a dead one.
                assert_eq!(seconds, 1, "Retry-After");
                seen_409 = Some(seconds);
                // The retry the header asks for answers as the first attempt did.
                let retried = loop {
                    let again = keyed(&client, &topic, &key, &body);
                    if again.status != 409 {
                        break again;
                    }
                    std::thread::sleep(Duration::from_secs(seconds));
                };
                answers.push(retried.expect::<ProduceResponse>(200));
            } else {
                answers.push(reply.expect::<ProduceResponse>(200));
            }
        }
        assert!(
            answers.windows(2).all(|w| w[0] == w[1]),
            "every sender of {key} gets the same answer"
        );
        if seen_409.is_some() {
            break;
        }
    }
    let seconds = seen_409.expect("20 rounds of 4 concurrent senders never met a key in flight");
    eprintln!("{test}: Retry-After {seconds} s");
    // Every round's body was appended exactly once.
    let total: i64 = (0..4)
        .map(|p| client.partition_info(&topic, p).high_watermark)
        .sum();
    assert_eq!(total, appended, "each key's records exactly once");
}
