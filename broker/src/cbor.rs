//! CBOR, the encoding of every call to an object and of its answer.

use kafdo_types::{ApiError, ErrorCode};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Encodes a value as CBOR.
pub fn to_cbor<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(value, &mut out).expect("writing CBOR to a Vec cannot fail");
    out
}

/// Decodes an internal message; a failure is a bug in one of the two ends (or a call of one
/// build answered by another), so it is `UNKNOWN_SERVER_ERROR`.
pub fn from_cbor<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    ciborium::from_reader(body).map_err(|e| {
        ApiError::new(
            ErrorCode::UnknownServerError,
            format!("undecodable internal message: {e}"),
        )
    })
}
