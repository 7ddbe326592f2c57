//! The body formats of API v1: JSON unless `Content-Type: application/cbor`; answers are JSON
//! unless the request has `Accept: application/cbor`. One serde type serves both encodings:
//! binary fields are base64 strings in JSON and byte strings in CBOR (`kafdo_types::bytes`).

use kafdo_types::{ApiError, ErrorBody, ErrorCode};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The media type of CBOR bodies.
pub const CBOR: &str = "application/cbor";
/// The media type of JSON bodies.
pub const JSON: &str = "application/json";

/// A body encoding.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Format {
    /// JSON, the default.
    Json,
    /// CBOR.
    Cbor,
}

impl Format {
    /// The format of a request body, from its `Content-Type` header.
    pub fn from_content_type(content_type: Option<&str>) -> Format {
        Self::from_media_type(content_type)
    }

    /// The format of the answer, from the request's `Accept` header.
    pub fn from_accept(accept: Option<&str>) -> Format {
        Self::from_media_type(accept)
    }

    fn from_media_type(header: Option<&str>) -> Format {
        // Only an explicit CBOR media type selects CBOR; anything else (absent, */*, JSON)
        // gets the default.
        match header {
            Some(h)
                if h.split(',').any(|part| {
                    part.split(';')
                        .next()
                        .is_some_and(|t| t.trim().eq_ignore_ascii_case(CBOR))
                }) =>
            {
                Format::Cbor
            }
            _ => Format::Json,
        }
    }

    /// The `Content-Type` of a body in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => JSON,
            Format::Cbor => CBOR,
        }
    }
}

/// Decodes a request body, totally ([`crate::body`]): malformed or out-of-bounds input is
/// `INVALID_REQUEST` with a message that says what is wrong.
pub fn decode<T: DeserializeOwned>(format: Format, body: &[u8]) -> Result<T, ApiError> {
    let (decoded, name) = match format {
        Format::Json => (crate::body::from_json(body), "JSON"),
        Format::Cbor => (crate::body::from_cbor(body), "CBOR"),
    };
    decoded.map_err(|e| ApiError::new(ErrorCode::InvalidRequest, format!("invalid {name}: {e}")))
}

/// Encodes an answer body.
pub fn encode<T: Serialize>(format: Format, value: &T) -> Vec<u8> {
    match format {
        Format::Json => serde_json::to_vec(value).expect("API types serialize to JSON"),
        Format::Cbor => kafdo_broker::cbor::to_cbor(value),
    }
}

/// The body of an error answer.
pub fn error_body(format: Format, error: &ApiError) -> Vec<u8> {
    encode(
        format,
        &ErrorBody {
            error: error.clone(),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafdo_types::api::{CreateTopicRequest, ProduceRequest};
    use kafdo_types::ProduceRecord;

    #[test]
    fn formats() {
        assert_eq!(Format::from_content_type(None), Format::Json);
        assert_eq!(
            Format::from_content_type(Some("application/json")),
            Format::Json
        );
        assert_eq!(
            Format::from_content_type(Some("application/cbor")),
            Format::Cbor
        );
        assert_eq!(
            Format::from_accept(Some("text/html, application/CBOR;q=0.9")),
            Format::Cbor
        );
        assert_eq!(Format::from_accept(Some("*/*")), Format::Json);
    }

    #[test]
    fn bodies_decode_in_both_formats() {
        let req = ProduceRequest {
            records: vec![ProduceRecord::keyed(b"k".to_vec(), vec![0, 255])],
        };
        let json = encode(Format::Json, &req);
        assert_eq!(
            String::from_utf8(json.clone()).unwrap(),
            r#"{"records":[{"key":"aw==","value":"AP8="}]}"#
        );
        assert_eq!(decode::<ProduceRequest>(Format::Json, &json).unwrap(), req);
        let cbor = encode(Format::Cbor, &req);
        assert_eq!(decode::<ProduceRequest>(Format::Cbor, &cbor).unwrap(), req);
        let e = decode::<CreateTopicRequest>(Format::Json, b"{\"name\":").unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRequest);
        let e = decode::<CreateTopicRequest>(Format::Cbor, b"\xff\x00").unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRequest);
    }

    /// Every request body type, with every field set (enums included), decodes through the
    /// checking decoder as plain serde decodes it, in both formats.
    #[test]
    fn every_request_body_decodes_in_both_formats() {
        fn both<T>(json: &str)
        where
            T: serde::de::DeserializeOwned + Serialize + PartialEq + std::fmt::Debug,
        {
            let expected: T = serde_json::from_str(json).expect("a valid example");
            for format in [Format::Json, Format::Cbor] {
                let body = encode(format, &expected);
                let decoded: T = decode(format, &body)
                    .unwrap_or_else(|e| panic!("{format:?} {json}: {}", e.message));
                assert_eq!(decoded, expected, "{format:?} {json}");
            }
        }
        use kafdo_types::api::*;
        use kafdo_types::group::*;
        use kafdo_types::txn::*;
        both::<CreateTopicRequest>(
            r#"{"name":"t","partitions":3,"config":{"retention_ms":60000,"cleanup_policy":"compact"}}"#,
        );
        both::<ProduceRequest>(
            r#"{"records":[{"key":"aw==","value":"AP8=","headers":[{"key":"h","value":"eA=="},{"key":"n","value":null}],"partition":1,"timestamp":1700000000000},{"value":null,"key":"aw=="}]}"#,
        );
        both::<PartitionProduceRequest>(
            r#"{"producer_id":7,"producer_epoch":2,"base_sequence":5,"transactional":true,"records":[{"value":"eA=="}]}"#,
        );
        both::<InitProducerRequest>(r#"{"transactional_id":"tx","transaction_timeout_ms":60000}"#);
        both::<AddPartitionsRequest>(
            r#"{"producer_id":7,"producer_epoch":2,"partitions":[{"topic":"t","partition":0}]}"#,
        );
        both::<AddOffsetsRequest>(
            r#"{"producer_id":7,"producer_epoch":2,"group_id":"g","generation_id":3,"member_id":"m","offsets":[{"topic":"t","partition":0,"offset":12,"metadata":"x"}]}"#,
        );
        both::<EndTxnRequest>(r#"{"producer_id":7,"producer_epoch":2}"#);
        both::<JoinGroupRequest>(
            r#"{"member_id":"m","group_instance_id":"i","topics":["a","b"],"session_timeout_ms":10000,"assignor":"sticky"}"#,
        );
        both::<HeartbeatRequest>(r#"{"generation_id":4}"#);
        both::<OffsetCommitRequest>(
            r#"{"generation_id":4,"member_id":"m","offsets":[{"topic":"t","partition":1,"offset":9}]}"#,
        );
    }
}
