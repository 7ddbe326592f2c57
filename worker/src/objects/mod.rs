//! The Durable Object classes: thin adapters that decode a call, run one step of a core, and
//! encode the answer.
//!
//! Every call is a `POST` with a CBOR body to a path named after the step
//! (`/partition/append`); every answer is CBOR, an error as an `ApiError` with the code's HTTP
//! status. A handler keeps its state in `RefCell`s and never holds a borrow across an
//! `.await`, so a step of a core runs synchronously from its first read to its last write and
//! no other request can interleave with it.

pub mod bench;
pub mod metadata;
pub mod partition;

use kafdo_types::{ApiError, ErrorCode};
use serde::Serialize;
use worker::{Response, ResponseBuilder};

use crate::http::{to_cbor, CBOR};

/// The answer to an internal call: the value, or the error with its status.
pub fn cbor_answer<T: Serialize>(result: Result<T, ApiError>) -> worker::Result<Response> {
    let (status, body) = match result {
        Ok(v) => (200, to_cbor(&v)),
        Err(e) => (e.code.http_status(), to_cbor(&e)),
    };
    Ok(ResponseBuilder::new()
        .with_status(status)
        .with_header("content-type", CBOR)?
        .fixed(body))
}

/// The error for a path this object does not serve.
pub fn no_such_call(path: &str) -> ApiError {
    ApiError::new(
        ErrorCode::InvalidRequest,
        format!("this object has no call {path}"),
    )
}

/// Now, in ms since the epoch: the only clock the adapters read, passed into the cores.
pub fn now_ms() -> i64 {
    js_sys::Date::now() as i64
}

/// Turns a storage failure outside a core into an error answer.
pub fn storage_error(e: kafdo_sql::SqlError) -> ApiError {
    ApiError::new(ErrorCode::UnknownServerError, e.to_string())
}
