//! End-to-end tests of hostile input: one test per class of input the Worker must refuse with a
//! clear error, each reading back to show that nothing changed. The harness fails any of them
//! in which the Worker panicked (`kafdo_e2e::Watch`).
//!
//! They run only with `KAFDO_E2E=1`; most share one `wrangler dev` (`kafdo_e2e::shared`), the
//! producer-id test starts its own, so that no other test's init takes the id it aims at.

use kafdo_e2e::{shared, unique_topic, Client, Format, Wrangler};
use kafdo_types::api::{
    InitProducerRequest, InitProducerResponse, PartitionInfo, PartitionProduceRequest,
    PartitionProduceResponse, TopicList,
};
use kafdo_types::group_list::GroupList;
use kafdo_types::limits::MAX_ERROR_MESSAGE_BYTES;
use kafdo_types::txn::{TransactionDescription, TransactionState};
use kafdo_types::{ErrorCode, ProduceRecord};

/// Everything an observer can read of a topic: its partitions' offsets and records.
fn snapshot(client: &Client, topic: &str, partitions: i32) -> Vec<(PartitionInfo, usize)> {
    (0..partitions)
        .map(|p| {
            let info = client.partition_info(topic, p);
            (info, client.read_all(topic, p).len())
        })
        .collect()
}

fn topic_exists(client: &Client, topic: &str) -> bool {
    let list: TopicList = client.get("/v1/topics").expect(200);
    list.topics.iter().any(|t| t.name == topic)
}

fn json(client: &Client, path: &str, body: &str) -> kafdo_e2e::Reply {
    client.post_raw(path, Format::Json, body.as_bytes(), &[])
}

#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn numbers_beyond_two_to_the_53_are_refused_and_create_nothing() {
    let client = shared().client();
    for n in [
        "9007199254740992",
        "18446744073709551616",
        "1e20",
        "-9007199254740993",
    ] {
        let topic = unique_topic("big");
        let body =
            format!(r#"{{"name":"{topic}","partitions":1,"config":{{"retention_ms":{n}}}}}"#);
        let e = json(&client, "/v1/topics", &body).expect_error(400, ErrorCode::InvalidRequest);
        assert!(e.message.contains("invalid JSON"), "{n}: {}", e.message);
        assert!(!topic_exists(&client, &topic), "{n} created {topic}");
    }
    // An offset in a query, too.
    let topic = unique_topic("big-offset");
    client.create_topic(&topic, 1);
    client
        .get(&format!(
            "/v1/topics/{topic}/partitions/0/records?offset=9007199254740992"
        ))
        .expect_error(400, ErrorCode::InvalidRequest);
}

#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn cbor_that_declares_what_it_does_not_hold_or_trails_bytes_writes_nothing() {
    let client = shared().client();
    let topic = unique_topic("cbor");
    client.create_topic(&topic, 1);
    let before = snapshot(&client, &topic, 1);
    let path = format!("/v1/topics/{topic}/records");
    // {"records": [{"value": <an array declared 2^32-1 elements long, then nothing>}]}
    let declared = [
        0xa1, 0x67, b'r', b'e', b'c', b'o', b'r', b'd', b's', 0x81, 0xa1, 0x65, b'v', b'a', b'l',
        b'u', b'e', 0x9a, 0xff, 0xff, 0xff, 0xff,
    ];
    let e = client
        .post_raw(&path, Format::Cbor, &declared, &[])
        .expect_error(400, ErrorCode::InvalidRequest);
    assert!(
        !e.message.contains("Syntax(") && !e.message.contains("Io("),
        "{}",
        e.message
    );
    // Two valid bodies back to back: neither is written.
    let one = Format::Cbor.encode(&kafdo_types::api::ProduceRequest {
        records: vec![ProduceRecord::value(b"first".to_vec())],
    });
    let two = [one.clone(), one].concat();
    client
        .post_raw(&path, Format::Cbor, &two, &[])
        .expect_error(400, ErrorCode::InvalidRequest);
    assert_eq!(snapshot(&client, &topic, 1), before);
}

#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn arrays_in_place_of_objects_fill_nothing_by_position() {
    let client = shared().client();
    let topic = unique_topic("positional");
    let body = format!(r#"["{topic}",1]"#);
    json(&client, "/v1/topics", &body).expect_error(400, ErrorCode::InvalidRequest);
    assert!(!topic_exists(&client, &topic));
    client.create_topic(&topic, 1);
    json(
        &client,
        &format!("/v1/topics/{topic}/records"),
        r#"{"records":[[]]}"#,
    )
    .expect_error(400, ErrorCode::InvalidRequest);
    assert_eq!(client.partition_info(&topic, 0).high_watermark, 0);
    // A commit given as [producer_id, epoch] commits nothing.
    let tid = unique_topic("positional-txn");
    let init = InitProducerRequest {
        transactional_id: Some(tid.clone()),
        transaction_timeout_ms: None,
    };
    let p: InitProducerResponse = client.post("/v1/producers", &init, &[]).expect(200);
    let add = format!(
        r#"{{"producer_id":{},"producer_epoch":{},"partitions":[{{"topic":"{topic}","partition":0}}]}}"#,
        p.producer_id, p.producer_epoch
    );
    json(&client, &format!("/v1/transactions/{tid}/partitions"), &add).expect_status(200);
    let commit = format!("[{},{}]", p.producer_id, p.producer_epoch);
    json(&client, &format!("/v1/transactions/{tid}/commit"), &commit)
        .expect_error(400, ErrorCode::InvalidRequest);
    let described: TransactionDescription =
        client.get(&format!("/v1/transactions/{tid}")).expect(200);
    assert_eq!(
        described.state,
        TransactionState::Ongoing,
        "still open, not committed"
    );
    let abort = format!(
        r#"{{"producer_id":{},"producer_epoch":{}}}"#,
        p.producer_id, p.producer_epoch
    );
    json(&client, &format!("/v1/transactions/{tid}/abort"), &abort).expect_status(200);
}

#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn a_producer_id_never_handed_out_is_refused_and_its_owner_loses_nothing() {
    let wrangler = Wrangler::start();
    let client = wrangler.client();
    let topic = unique_topic("claim");
    client.create_topic(&topic, 1);
    let batch = |producer_id: i64, value: &[u8]| PartitionProduceRequest {
        producer_id: Some(producer_id),
        producer_epoch: Some(0),
        base_sequence: Some(0),
        transactional: false,
        records: vec![ProduceRecord::value(value.to_vec())],
    };
    let path = format!("/v1/topics/{topic}/partitions/0/records");
    // The attacker learns the current id from its own init and claims the next one.
    let mine = client.init_producer();
    let next = mine.producer_id + 1;
    client
        .post(&path, &batch(next, b"claimed"), &[])
        .expect_error(422, ErrorCode::UnknownProducerId);
    assert_eq!(client.partition_info(&topic, 0).high_watermark, 0);
    // The id's owner gets it next, and its first batch is written, not taken for a duplicate.
    let owner = client.init_producer();
    assert_eq!(
        owner.producer_id, next,
        "this instance hands out ids in order"
    );
    let written: PartitionProduceResponse = client
        .post(&path, &batch(owner.producer_id, b"mine"), &[])
        .expect(200);
    assert!(!written.duplicate);
    let records = client.read_all(&topic, 0);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].value.as_deref(), Some(&b"mine"[..]));
    // Far-off ids and keyed produce's own id space are refused too.
    for claimed in [next + 1_000, 1 << 52, (1 << 53) - 1] {
        client
            .post(&path, &batch(claimed, b"claimed"), &[])
            .expect_error(422, ErrorCode::UnknownProducerId);
    }
    assert_eq!(client.read_all(&topic, 0).len(), 1);
}

#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn a_failed_join_registers_no_group() {
    let client = shared().client();
    let listed = |client: &Client, group: &str| {
        let list: GroupList = client.get("/v1/groups").expect(200);
        list.groups.iter().any(|g| g.group_id == group)
    };
    let group = unique_topic("no-such-topic-group");
    let join = format!(r#"{{"topics":["{}"]}}"#, unique_topic("absent"));
    json(&client, &format!("/v1/groups/{group}/members"), &join)
        .expect_error(404, ErrorCode::UnknownTopicOrPartition);
    assert!(!listed(&client, &group));
    let topic = unique_topic("join-topic");
    client.create_topic(&topic, 1);
    let bad_timeout = format!(r#"{{"topics":["{topic}"],"session_timeout_ms":1}}"#);
    json(
        &client,
        &format!("/v1/groups/{group}/members"),
        &bad_timeout,
    )
    .expect_error(400, ErrorCode::InvalidRequest);
    assert!(!listed(&client, &group));
    // One rule for every id: a group id holding NUL is refused like a transactional id.
    let join = format!(r#"{{"topics":["{topic}"]}}"#);
    json(&client, "/v1/groups/bad%00group/members", &join)
        .expect_error(400, ErrorCode::InvalidRequest);
    assert!(!listed(&client, "bad\0group"));
}

#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn error_answers_stay_small_and_read_as_words() {
    let client = shared().client();
    let topic = unique_topic("echo");
    client.create_topic(&topic, 1);
    let huge = "m".repeat(1 << 20);
    let join = format!(r#"{{"member_id":"{huge}","topics":["{topic}"]}}"#);
    let reply = json(
        &client,
        &format!("/v1/groups/{}/members", unique_topic("g")),
        &join,
    );
    let e = reply.expect_error(400, ErrorCode::InvalidRequest);
    assert!(
        reply.body.len() < 2 * MAX_ERROR_MESSAGE_BYTES,
        "{} bytes",
        reply.body.len()
    );
    assert!(e.message.len() <= MAX_ERROR_MESSAGE_BYTES);
    let unknown = format!(r#"{{"records":[{{"value":"eA==","{huge}":1}}]}}"#);
    let reply = json(&client, &format!("/v1/topics/{topic}/records"), &unknown);
    reply.expect_error(400, ErrorCode::InvalidRequest);
    assert!(
        reply.body.len() < 2 * MAX_ERROR_MESSAGE_BYTES,
        "{} bytes",
        reply.body.len()
    );
    for garbage in [&[0xff][..], &[0x1c, 0x00], &[0xa1, 0x01]] {
        let reply = client.post_raw(
            &format!("/v1/topics/{topic}/records"),
            Format::Cbor,
            garbage,
            &[],
        );
        let e = reply.expect_error(400, ErrorCode::InvalidRequest);
        assert!(
            !e.message.contains("Syntax(") && !e.message.contains("Semantic("),
            "{}",
            e.message
        );
    }
    assert_eq!(client.partition_info(&topic, 0).high_watermark, 0);
}

#[test]
#[cfg_attr(not(kafdo_e2e), ignore = "end-to-end: set KAFDO_E2E=1")]
fn numbers_in_paths_and_queries_have_one_spelling() {
    let client = shared().client();
    let topic = unique_topic("spelling");
    client.create_topic(&topic, 1);
    for p in ["00", "+0", "-0", "0x0", "1e0"] {
        client
            .get(&format!("/v1/topics/{topic}/partitions/{p}"))
            .expect_error(400, ErrorCode::InvalidRequest);
    }
    client
        .get(&format!("/v1/topics/{topic}/partitions/0"))
        .expect_status(200);
    for q in ["offset=+0", "offset=00", "max_records=010", "wait_ms=+1"] {
        client
            .get(&format!("/v1/topics/{topic}/partitions/0/records?{q}"))
            .expect_error(400, ErrorCode::InvalidRequest);
    }
}
