//! Frames that must close a connection, and the ones that must not, through
//! `server::serve_frame` with the gateway's own allocator (no Kafdo is reached: none of these
//! requests calls it).

use bytes::{BufMut, Bytes, BytesMut};
use kafdo_client::Client;
use kafdo_gateway::api::{Gateway, Node};
use kafdo_gateway::server::{self, FrameError};
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

#[global_allocator]
static ALLOCATOR: kafdo_gateway::alloc::Allocator = kafdo_gateway::alloc::Allocator;

fn gateway() -> Gateway {
    Gateway {
        // Nothing listens there: a request that called Kafdo would fail, not hang.
        kafdo: Client::connect("http://127.0.0.1:9").unwrap(),
        node: Node {
            id: 0,
            host: "127.0.0.1".into(),
            port: 9092,
        },
    }
}

fn header(key: ApiKey, version: i16) -> BytesMut {
    let mut out = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(42)
        .with_client_id(Some(StrBytes::from_static_str("test")))
        .encode(&mut out, key.request_header_version(version))
        .unwrap();
    out
}

fn serve(frame: BytesMut) -> Result<Option<Bytes>, FrameError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(server::serve_frame(frame.freeze(), &gateway()))
}

fn api_versions_answer(mut frame: Bytes) -> ApiVersionsResponse {
    let _size = i32::from_be_bytes(frame.split_to(4)[..].try_into().unwrap());
    let header = ResponseHeader::decode(&mut frame, 0).unwrap();
    assert_eq!(header.correlation_id, 42);
    ApiVersionsResponse::decode(&mut frame, 0).unwrap()
}

#[test]
fn api_versions_answers_at_every_offered_version() {
    for version in 0..=3 {
        let mut frame = header(ApiKey::ApiVersions, version);
        kafka_protocol::messages::ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("t"))
            .with_client_software_version(StrBytes::from_static_str("1"))
            .encode(&mut frame, version)
            .unwrap();
        let answer = serve(frame).unwrap().expect("an answer");
        assert!(answer.len() > 8, "v{version}");
    }
}

#[test]
fn a_newer_api_versions_is_answered_at_v0_with_the_table() {
    let mut frame = BytesMut::new();
    frame.put_i16(ApiKey::ApiVersions as i16);
    frame.put_i16(99);
    frame.put_i32(42);
    frame.put_i16(-1);
    let answer = api_versions_answer(serve(frame).unwrap().unwrap());
    assert_eq!(answer.error_code, 35, "UNSUPPORTED_VERSION");
    let produce = answer
        .api_keys
        .iter()
        .find(|k| k.api_key == ApiKey::Produce as i16)
        .unwrap();
    assert_eq!((produce.min_version, produce.max_version), (3, 9));
}

#[test]
fn unknown_and_unoffered_apis_close_the_connection() {
    let mut unknown = BytesMut::new();
    unknown.put_i16(9999);
    unknown.put_i16(0);
    unknown.put_i32(1);
    unknown.put_i16(-1);
    assert!(matches!(serve(unknown), Err(FrameError::UnknownApi(9999))));
    // JoinGroup is a real API the gateway does not offer yet.
    let frame = header(ApiKey::JoinGroup, 5);
    assert!(matches!(
        serve(frame),
        Err(FrameError::Unsupported(ApiKey::JoinGroup, 5))
    ));
    // An offered API at a version outside the range.
    let frame = header(ApiKey::Produce, 2);
    assert!(matches!(
        serve(frame),
        Err(FrameError::Unsupported(ApiKey::Produce, 2))
    ));
}

#[test]
fn malformed_bodies_close_the_connection() {
    // A Metadata v12 with its topic array cut off.
    let mut cut = header(ApiKey::Metadata, 12);
    cut.put_u8(5);
    assert!(matches!(serve(cut), Err(FrameError::Malformed(..))));
    // Bytes after a whole request are ignored, as Kafka's broker ignores them (librdkafka 2.16
    // sends 3 stray bytes after its all-topics Metadata v12).
    let mut trailing = header(ApiKey::ApiVersions, 0);
    trailing.put_u32(0xdead_beef);
    let answer = api_versions_answer(serve(trailing).unwrap().unwrap());
    assert_eq!(answer.error_code, 0);
    // A frame shorter than a header.
    assert!(matches!(
        serve(BytesMut::from(&[0u8, 18, 0][..])),
        Err(FrameError::Size(..))
    ));
}

#[test]
fn a_declared_length_larger_than_memory_is_malformed_not_an_abort() {
    // A Produce v3 that declares 2^31-1 topics, then ends: the decoder reserves the vector
    // before it finds the bytes missing.
    let mut frame = header(ApiKey::Produce, 3);
    frame.put_i16(-1); // transactional_id: null
    frame.put_i16(1); // acks
    frame.put_i32(30_000); // timeout
    frame.put_i32(i32::MAX); // topic count
    assert!(matches!(serve(frame), Err(FrameError::Malformed(..))));
    // The same in a flexible version (a compact array length).
    let mut frame = header(ApiKey::Metadata, 9);
    frame.put_slice(&[0xff, 0xff, 0xff, 0xff, 0x07]);
    assert!(matches!(serve(frame), Err(FrameError::Malformed(..))));
}
