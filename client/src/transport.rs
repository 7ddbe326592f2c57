//! The one seam between the SDK and the network: [`Transport`].
//!
//! Everything above this module (the [`crate::Client`], producers, consumers) speaks HTTP API v1
//! through a `Transport`, so the same SDK runs natively (tokio + reqwest, [`native`]) and inside
//! a Worker (`worker::Fetch` or a service binding, `worker` module behind the `worker` feature).
//!
//! A transport also carries the few runtime services the SDK needs and that differ between the
//! two worlds: a timer ([`Transport::sleep`]) for backoff and `linger_ms`, and a way to run a
//! background task ([`Transport::spawn`]) for the producer's per-partition senders. Nothing else
//! in the SDK touches tokio or the Workers runtime.
//!
//! # What a transport error means
//!
//! The retry policy depends on knowing whether a request may have reached the server:
//!
//! - [`TransportError::Connect`]: the request was certainly not sent (no connection could be
//!   made). Retrying is safe for every request.
//! - [`TransportError::Timeout`] and [`TransportError::Io`]: the request may or may not have been
//!   executed. This is an *unknown outcome*; only idempotent requests may be retried.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

#[cfg(feature = "native")]
pub mod native;
#[cfg(all(feature = "worker", target_arch = "wasm32"))]
pub mod worker;

/// A boxed future; `Send` natively, not in a Worker (JavaScript values are not `Send`).
#[cfg(not(target_arch = "wasm32"))]
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
/// A boxed future; `Send` natively, not in a Worker (JavaScript values are not `Send`).
#[cfg(target_arch = "wasm32")]
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// `Send` natively, nothing on wasm32 (where everything runs on one thread).
#[cfg(not(target_arch = "wasm32"))]
pub trait MaybeSend: Send + Sync {}
#[cfg(not(target_arch = "wasm32"))]
impl<T: Send + Sync> MaybeSend for T {}
/// `Send` natively, nothing on wasm32 (where everything runs on one thread).
#[cfg(target_arch = "wasm32")]
pub trait MaybeSend {}
#[cfg(target_arch = "wasm32")]
impl<T> MaybeSend for T {}

/// The HTTP methods API v1 uses.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Method {
    /// `GET`
    Get,
    /// `POST`
    Post,
    /// `DELETE`
    Delete,
}

impl Method {
    /// The method's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Delete => "DELETE",
        }
    }
}

/// One HTTP request as the SDK builds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpRequest {
    /// The method.
    pub method: Method,
    /// The path, starting with `/` and already percent-encoded (`/v1/topics/orders`).
    pub path: String,
    /// Query parameters (names and values are encoded by the transport).
    pub query: Vec<(&'static str, String)>,
    /// The body (empty for none).
    pub body: Vec<u8>,
    /// `Content-Type` of the body, when there is one.
    pub content_type: Option<&'static str>,
    /// `Accept`: the encoding the answer should use.
    pub accept: &'static str,
    /// The `Idempotency-Key` header.
    pub idempotency_key: Option<String>,
    /// How long to wait for the whole answer before giving up with an unknown outcome.
    pub timeout: Duration,
}

/// One HTTP answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The `Content-Type`, if any.
    pub content_type: Option<String>,
    /// The body.
    pub body: Vec<u8>,
}

/// Why a request got no HTTP answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// No connection could be made: the request was certainly not sent.
    #[error("cannot connect: {0}")]
    Connect(String),
    /// No answer within the request's timeout: the request may have been executed.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The connection broke after the request was sent: it may have been executed.
    #[error("connection lost: {0}")]
    Io(String),
    /// The request could not be built (a bad URL, a bad header value).
    #[error("invalid request: {0}")]
    Invalid(String),
}

/// Sends HTTP requests to one Kafdo deployment, and runs the SDK's timers and background tasks.
///
/// Implementations must reuse connections: the producer sends many small requests.
pub trait Transport: MaybeSend + 'static {
    /// Sends one request and waits for its whole answer (or `request.timeout`).
    fn send(&self, request: HttpRequest) -> BoxFuture<'_, Result<HttpResponse, TransportError>>;

    /// Waits for `duration` on the transport's runtime.
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()>;

    /// Runs `task` in the background on the transport's runtime.
    fn spawn(&self, task: BoxFuture<'static, ()>);
}

/// Percent-encodes one path segment (a topic name, a transactional id, a group id).
///
/// Topic names are `[a-zA-Z0-9._-]` and need no encoding, but transactional and group ids may
/// hold any printable character.
pub fn encode_path_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Percent-encodes one query value. Like [`encode_path_segment`], but a `,` stays as it is:
/// lists such as `partitions=0,3,7` read as lists in logs and to every URL parser.
pub fn encode_query_value(value: &str) -> String {
    encode_path_segment(value).replace("%2C", ",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(encode_path_segment("orders-1.v2_x"), "orders-1.v2_x");
        assert_eq!(encode_path_segment("a b/c%"), "a%20b%2Fc%25");
        assert_eq!(encode_path_segment("é"), "%C3%A9");
        assert_eq!(encode_query_value("0,3,7"), "0,3,7");
        assert_eq!(encode_query_value("a&b=c"), "a%26b%3Dc");
    }
}
