//! A request and its answer as the handlers see them: plain data, so every handler builds and
//! tests natively. The entry point (`entry.rs`) fills an [`HttpRequest`] from the runtime's
//! request and turns an [`Answer`] into its response.

use kafdo_types::limits::MAX_REQUEST_BYTES;
use kafdo_types::{ApiError, ErrorCode};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::codec::{decode, encode, error_body, Format};

/// A request, read whole.
#[derive(Clone, Debug, Default)]
pub struct HttpRequest {
    /// The query's pairs, percent-decoded, in order.
    pub query: Vec<(String, String)>,
    /// The `Content-Type` header.
    pub content_type: Option<String>,
    /// The `Idempotency-Key` header.
    pub idempotency_key: Option<String>,
    /// The body (at most [`MAX_REQUEST_BYTES`]: the entry point refuses longer ones).
    pub body: Vec<u8>,
}

/// The error for a body over [`MAX_REQUEST_BYTES`].
pub fn body_too_large(n: usize) -> ApiError {
    ApiError::new(
        ErrorCode::MessageTooLarge,
        format!("the request body is {n} bytes, more than the limit of {MAX_REQUEST_BYTES}"),
    )
}

impl HttpRequest {
    /// Decodes the body in the format its `Content-Type` names.
    pub fn body<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        decode(
            Format::from_content_type(self.content_type.as_deref()),
            &self.body,
        )
    }

    /// The query's pairs, borrowed.
    pub fn query_pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.query.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// An answer ready to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The body, in the answer's format; `None` for 204.
    pub body: Option<Vec<u8>>,
    /// A `Retry-After` header, in seconds (a 409 `IDEMPOTENCY_KEY_IN_FLIGHT`).
    pub retry_after_s: Option<i64>,
}

impl Answer {
    /// 200 with `value`.
    pub fn ok<T: Serialize>(format: Format, value: &T) -> Self {
        Self::with_status(format, 200, value)
    }

    /// `status` with `value`.
    pub fn with_status<T: Serialize>(format: Format, status: u16, value: &T) -> Self {
        Self {
            status,
            body: Some(encode(format, value)),
            retry_after_s: None,
        }
    }

    /// 204, no body.
    pub fn no_content() -> Self {
        Self {
            status: 204,
            body: None,
            retry_after_s: None,
        }
    }

    /// The error's answer, with the status its code has.
    pub fn error(format: Format, error: &ApiError) -> Self {
        Self::error_with_status(format, error.code.http_status(), error)
    }

    /// An error answer with a status of its own (404 and 405 for paths).
    pub fn error_with_status(format: Format, status: u16, error: &ApiError) -> Self {
        // A live attempt ends within its own request (milliseconds); the lease only bounds one
        // that died. Asking for the whole lease would make every concurrent retry wait up to
        // 30 s for nothing.
        let retry_after_s = (error.code == ErrorCode::IdempotencyKeyInFlight).then_some(1);
        Self {
            status,
            body: Some(error_body(format, error)),
            retry_after_s,
        }
    }
}
