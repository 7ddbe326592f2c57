//! Inputs the fuzz targets (or reading their code) found, each an explicit test saying what it
//! found and where it was fixed. A bug not yet fixed in the product would be
//! `#[ignore = "bug: ..."]` until its fix; none is.

use kafdo_fuzz::bodies::Body;
use kafdo_fuzz::requests::{check_steps, Step};
use kafdo_fuzz::world::{run, WireRequest, World};
use kafdo_types::rpc::TopicPartitionOffset;
use kafdo_types::txn::{AddOffsetsRequest, TransactionState};
use kafdo_worker::codec::Format;

fn post(path: &str, body: &Body) -> WireRequest {
    WireRequest {
        method: "POST".into(),
        path: path.into(),
        content_type: Some("application/json".into()),
        body: body.encode(Format::Json),
        ..WireRequest::default()
    }
}

/// Offsets for `group` from a member it does not know, by one of the world's producers.
fn offsets_from_a_stranger(world: &World, producer: usize, group: &str) -> Body {
    let p = &world.pools().producers[producer];
    Body::AddOffsets(AddOffsetsRequest {
        producer_id: p.producer_id,
        producer_epoch: p.producer_epoch,
        group_id: group.into(),
        generation_id: 1,
        member_id: "member-unknown".into(),
        offsets: vec![TopicPartitionOffset {
            topic: "t1".into(),
            partition: 0,
            offset: 0,
            metadata: None,
        }],
    })
}

/// Found by the `request` target in its first long run (minimal input as it printed it):
/// `POST /v1/transactions/tx-open/offsets` naming a group whose member id is unknown is
/// refused 409 `UNKNOWN_MEMBER_ID`, yet `GET /v1/transactions/tx-open` lists the group among
/// the transaction's groups afterwards. The coordinator persists the group as a participant
/// before it calls the group (so that a call of unknown outcome still gets its marker) and
/// keeps it when the group refuses, though a refusal means nothing was written there.
/// Fixed: a refused call takes back what it added (`OffsetsUndo` in
/// `txn-coordinator/src/coordinator.rs`).
#[test]
fn a_refused_add_offsets_leaves_its_group_in_the_transaction() {
    let steps = [Step::Request(WireRequest {
        method: "POST".into(),
        path: "/v1/transactions/tx-open/offsets".into(),
        content_type: Some("application/cbor".into()),
        body: b"\xa6kproducer_id\x02nproducer_epoch\x00hgroup_idgg-adminmgeneration_id\x01imember_idqmember-0000000001goffsets\x81\xa3etopicbt1ipartition\x00foffset\x00".to_vec(),
        ..WireRequest::default()
    })];
    check_steps(&steps).unwrap();
}

/// The same refusal on a transactional id with no open transaction begins one: `tx-done`,
/// committed, is `Ongoing` after a refused add-offsets, and stays so until it is ended or
/// times out (holding nothing back, so the admin list does not show it), when the timeout
/// bumps the epoch and fences the producer. Fixed with the above: the begin is taken back too.
#[test]
fn a_refused_add_offsets_begins_a_transaction() {
    let world = World::new();
    let body = offsets_from_a_stranger(&world, 2, "g-live");
    let answer = world
        .serve(&post("/v1/transactions/tx-done/offsets", &body))
        .unwrap();
    assert_eq!(answer.status, 409, "refused");
    let b = kafdo_broker::Broker::new(
        world.runtime().clone(),
        std::rc::Rc::new(kafdo_broker::Isolate::new()),
        kafdo_broker::Config::default(),
    );
    let txn = run(b.describe_txn("tx-done")).unwrap();
    assert_eq!(txn.state, TransactionState::CompleteCommit, "{txn:?}");
}

/// What it costs: a transaction takes offsets of at most 16 groups, and refused add-offsets
/// count, so 15 of them (`tx-open` has `g-live` already; a member id gone stale, say) leave
/// the transaction unable to add the offsets of `g-admin`, which would take them. Fixed with
/// the above.
#[test]
fn refused_add_offsets_do_not_count_against_the_group_limit() {
    let world = World::new();
    for i in 0..15 {
        let body = offsets_from_a_stranger(&world, 1, &format!("g-stale-{i}"));
        let answer = world
            .serve(&post("/v1/transactions/tx-open/offsets", &body))
            .unwrap();
        assert_eq!(answer.status, 409, "refused");
    }
    let p = &world.pools().producers[1];
    let good = Body::AddOffsets(AddOffsetsRequest {
        producer_id: p.producer_id,
        producer_epoch: p.producer_epoch,
        group_id: "g-admin".into(),
        generation_id: -1,
        member_id: String::new(),
        offsets: vec![TopicPartitionOffset {
            topic: "t1".into(),
            partition: 0,
            offset: 1,
            metadata: None,
        }],
    });
    let answer = world
        .serve(&post("/v1/transactions/tx-open/offsets", &good))
        .unwrap();
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(answer.body.as_deref().unwrap_or_default())
    );
}

/// Found by the `request` target (minimal input as it printed it): an offset commit with an
/// empty `member_id` but a `generation_id` other than -1 to a group that never existed is
/// refused 409 `UNKNOWN_MEMBER_ID`, yet the group is listed by `GET /v1/groups` afterwards.
/// The broker takes any empty `member_id` for an administrator's commit and registers the
/// group first; the group core fences on both (`member_id` empty *and* `generation_id` -1),
/// so a commit it refuses registers a name, which `design/broker.md` says cannot happen.
/// Fixed in `Broker::commit_offsets`: only `member_id` empty at generation -1 registers.
#[test]
fn a_refused_commit_registers_no_group() {
    let steps = [Step::Request(WireRequest {
        method: "POST".into(),
        path: "/v1/groups/g-new/offsets".into(),
        body: br#"{"generation_id":1,"member_id":"","offsets":[{"topic":"t1","partition":0,"offset":0}]}"#.to_vec(),
        ..WireRequest::default()
    })];
    check_steps(&steps).unwrap();
}

/// Found by reading `OffsetFetchQuery::filter` while writing the query target, and shown by
/// the target run strictly: `GET /v1/groups/{g}/offsets?topic=t&partitions=...` reads each
/// partition with `trim` and `parse`, so `+1`, `01`, ` 1` and `-0` are taken, where
/// `design/http-api.md` says a number in a query is written the one way it prints (400
/// otherwise), as the fetch query and the paths already insist. Fixed:
/// `OffsetFetchQuery::filter` reads them with `limits::parse_canonical`.
#[test]
fn offset_partitions_are_written_one_way() {
    use kafdo_fuzz::queries::{check_query, QueryInput, QueryKind};
    for list in ["+1", "01", " 1", "-0", "0, 1"] {
        let input = QueryInput {
            kind: QueryKind::Offsets,
            pairs: vec![
                ("topic".into(), "t1".into()),
                ("partitions".into(), list.into()),
            ],
        };
        check_query(&input).unwrap_or_else(|e| panic!("{list:?}: {e}"));
    }
}

/// Found by the `request` target (minimal input as it printed it): a join naming a
/// `member_id` (a rejoin) to a group that never existed is refused 409 `UNKNOWN_MEMBER_ID`,
/// yet the group is listed by `GET /v1/groups` afterwards. The broker registers a group
/// before its first join once `validate_join` passes, and a rejoin is valid; the group then
/// refuses the member it never had. `design/broker.md`: "the registry grows only by groups
/// that got a member". Fixed in `Broker::join_group`: a rejoin registers nothing (its member
/// could only come from a first join, which registered the group).
#[test]
fn a_refused_join_registers_no_group() {
    let steps = [Step::Request(WireRequest {
        method: "POST".into(),
        path: "/v1/groups/g-new/members".into(),
        content_type: Some("application/cbor".into()),
        body: b"\xa2imember_idqmember-0000000001ftopics\x81bt1".to_vec(),
        ..WireRequest::default()
    })];
    check_steps(&steps).unwrap();
}

/// Found by the `request` target (minimal input as it printed it): a topic produce of a keyed
/// record (to `t2/1` by murmur2) and a null-key record with a timestamp of -(2^53-1) (to the
/// sticky partition) is refused 400 `INVALID_REQUEST` ("record 0 has timestamp ..., outside
/// 0..=2^53-1", the index within that partition's batch, not the request), yet the keyed
/// record is in `t2/1` afterwards. `check_records` checks count and size before the fan-out;
/// the timestamp (and, on a compacted topic, the key) only each partition checks, so the
/// batches of the other partitions land. A client told 400 does not retry a bad request, and
/// one that fixes and resends it writes the keyed record twice. Fixed: the broker checks
/// every record as a partition would (`kafdo_types::record::check_records`, with the topic's
/// cleanup policy) before any append.
#[test]
fn a_refused_topic_produce_appends_nothing() {
    let steps = [Step::Request(WireRequest {
        method: "POST".into(),
        path: "/v1/topics/t2/records".into(),
        body: br#"{"records":[{"key":"azE=","value":null},{"value":null,"timestamp":-9007199254740991}]}"#.to_vec(),
        ..WireRequest::default()
    })];
    check_steps(&steps).unwrap();
}
