use std::rc::Rc;

use kafdo_sql::Sqlite;

use super::*;

fn req(fingerprint: &[u8], producer_id: i64) -> BeginRequest {
    BeginRequest {
        fingerprint: fingerprint.to_vec(),
        producer_id,
        lease_ms: 1_000,
        ttl_ms: 100_000,
        partitions: 3,
    }
}

fn offsets(n: i64) -> Vec<RecordOffset> {
    (0..n)
        .map(|i| RecordOffset {
            partition: (i % 3) as i32,
            offset: i,
        })
        .collect()
}

#[test]
fn first_use_proceeds_and_retry_gets_the_answer() {
    let mut key = IdempotencyKey::open(Sqlite::memory()).unwrap();
    let begin = key.begin(&req(b"f", 7), 0).unwrap();
    assert_eq!(
        begin,
        Begin::Proceed {
            producer_id: 7,
            attempt: 1,
            partitions: 3,
        }
    );
    key.complete(7, 1, &offsets(5), 10).unwrap();
    assert_eq!(
        key.begin(&req(b"f", 8), 20).unwrap(),
        Begin::Done {
            offsets: offsets(5)
        }
    );
}

#[test]
fn an_empty_answer_is_still_an_answer() {
    let mut key = IdempotencyKey::open(Sqlite::memory()).unwrap();
    key.begin(&req(b"f", 7), 0).unwrap();
    key.complete(7, 1, &[], 1).unwrap();
    assert_eq!(
        key.begin(&req(b"f", 7), 2).unwrap(),
        Begin::Done { offsets: vec![] }
    );
}

#[test]
fn another_body_is_refused() {
    let mut key = IdempotencyKey::open(Sqlite::memory()).unwrap();
    key.begin(&req(b"f", 7), 0).unwrap();
    let err = key.begin(&req(b"g", 8), 1).unwrap_err();
    assert_eq!(err.code(), ErrorCode::IdempotencyKeyReused);
    key.complete(7, 1, &offsets(1), 2).unwrap();
    let err = key.begin(&req(b"g", 8), 3).unwrap_err();
    assert_eq!(err.code(), ErrorCode::IdempotencyKeyReused);
}

#[test]
fn concurrent_retry_is_in_flight_until_the_lease_ends() {
    let mut key = IdempotencyKey::open(Sqlite::memory()).unwrap();
    key.begin(&req(b"f", 7), 0).unwrap();
    let err = key.begin(&req(b"f", 8), 500).unwrap_err();
    assert_eq!(err.code(), ErrorCode::IdempotencyKeyInFlight);
    assert!(matches!(
        err,
        IngestError::InFlight {
            retry_after_ms: 500
        }
    ));
    // The lease ran out: the retry takes over with the key's own producer id, not its own.
    assert_eq!(
        key.begin(&req(b"f", 8), 1_000).unwrap(),
        Begin::Proceed {
            producer_id: 7,
            attempt: 2,
            partitions: 3,
        }
    );
}

#[test]
fn release_lets_a_retry_in_at_once_but_only_for_the_current_attempt() {
    let mut key = IdempotencyKey::open(Sqlite::memory()).unwrap();
    key.begin(&req(b"f", 7), 0).unwrap();
    key.release(7, 1, 10).unwrap();
    assert_eq!(
        key.begin(&req(b"f", 9), 11).unwrap(),
        Begin::Proceed {
            producer_id: 7,
            attempt: 2,
            partitions: 3,
        }
    );
    // A late release from attempt 1 must not open the key while attempt 2 runs.
    key.release(7, 1, 12).unwrap();
    assert_eq!(
        key.begin(&req(b"f", 9), 13).unwrap_err().code(),
        ErrorCode::IdempotencyKeyInFlight
    );
}

#[test]
fn state_survives_a_restart() {
    let sql = Rc::new(Sqlite::memory());
    let mut key = IdempotencyKey::open(sql.clone()).unwrap();
    key.begin(&req(b"f", 7), 0).unwrap();
    drop(key);
    let mut key = IdempotencyKey::open(sql.clone()).unwrap();
    assert_eq!(
        key.begin(&req(b"f", 8), 2_000).unwrap(),
        Begin::Proceed {
            producer_id: 7,
            attempt: 2,
            partitions: 3,
        }
    );
    key.complete(7, 2, &offsets(3), 2_001).unwrap();
    // A late completion of attempt 1 with the same offsets is harmless.
    key.complete(7, 1, &offsets(3), 2_002).unwrap();
    drop(key);
    let mut key = IdempotencyKey::open(sql).unwrap();
    assert_eq!(
        key.begin(&req(b"f", 8), 3_000).unwrap(),
        Begin::Done {
            offsets: offsets(3)
        }
    );
}

#[test]
fn keys_expire() {
    let mut key = IdempotencyKey::open(Sqlite::memory()).unwrap();
    key.begin(&req(b"f", 7), 0).unwrap();
    key.complete(7, 1, &offsets(2), 1).unwrap();
    assert_eq!(key.next_alarm_ms().unwrap(), Some(100_000));
    // An early alarm changes nothing.
    assert!(!key.on_alarm(99_999).unwrap());
    assert!(matches!(
        key.begin(&req(b"f", 7), 99_999).unwrap(),
        Begin::Done { .. }
    ));
    // Used after expiry but before the alarm: a new request, even with another body.
    assert_eq!(
        key.begin(&req(b"g", 9), 100_000).unwrap(),
        Begin::Proceed {
            producer_id: 9,
            attempt: 1,
            partitions: 3,
        }
    );
    // The old life's late completion must not answer for the new one.
    key.complete(7, 1, &offsets(2), 100_001).unwrap();
    assert_eq!(
        key.begin(&req(b"g", 10), 100_002).unwrap_err().code(),
        ErrorCode::IdempotencyKeyInFlight
    );
    assert!(key.on_alarm(200_000).unwrap());
    assert_eq!(key.next_alarm_ms().unwrap(), None);
}

#[test]
#[should_panic(expected = "different offsets")]
fn diverging_answers_are_a_bug() {
    let mut key = IdempotencyKey::open(Sqlite::memory()).unwrap();
    key.begin(&req(b"f", 7), 0).unwrap();
    key.complete(7, 1, &offsets(2), 1).unwrap();
    key.complete(7, 1, &offsets(3), 2).unwrap();
}

#[test]
fn keys_are_validated() {
    assert!(validate_key("order-42").is_ok());
    assert!(validate_key("").is_err());
    assert!(validate_key(&"k".repeat(256)).is_err());
    assert!(validate_key("tab\tkey").is_err());
    assert!(validate_key("é").is_err());
}

#[test]
fn a_resumed_attempt_routes_with_the_first_attempts_partition_count() {
    let mut key = IdempotencyKey::open(Sqlite::memory()).unwrap();
    key.begin(&req(b"f", 7), 0).unwrap();
    // The first attempt died; partitions were added meanwhile (3 -> 8).
    let resumed = key
        .begin(
            &BeginRequest {
                partitions: 8,
                ..req(b"f", 9)
            },
            5_000,
        )
        .unwrap();
    assert_eq!(
        resumed,
        Begin::Proceed {
            producer_id: 7,
            attempt: 2,
            partitions: 3
        }
    );
}
