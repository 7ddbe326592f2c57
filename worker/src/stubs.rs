//! The broker's [`Runtime`] on Cloudflare: calls to Durable Objects through their stubs, with a
//! deadline; `Date.now()`; `Math.random()`. This is the one place the Worker calls an object.
//!
//! A call is a `POST` of the CBOR of its [`ObjectCall`] to `https://kafdo.internal{path}` on the
//! stub of the object's binding and name (`kafdo_types::rpc::Object`); a 200 answer's body is
//! the CBOR of the call's answer, any other status carries a CBOR `ApiError`. A thrown call (an
//! object that crashed or reset) is `UNKNOWN_SERVER_ERROR`, one that does not answer in time
//! (an object that panicked may never settle its answer) `REQUEST_TIMED_OUT`: either way the
//! outcome is unknown.

use std::pin::pin;
use std::time::Duration;

use futures_util::future::{select, Either};
use js_sys::Uint8Array;
use kafdo_broker::cbor::{from_cbor, to_cbor};
use kafdo_broker::Runtime;
use kafdo_types::rpc::{Object, ObjectCall};
use kafdo_types::{ApiError, ErrorCode};
use worker::{Delay, Env, Method, Request, RequestInit};

/// Durable Object stubs, the clock and the random generator of this isolate.
#[derive(Clone)]
pub struct DoRuntime {
    env: Env,
}

impl DoRuntime {
    /// The runtime of a request (or an object) with this environment.
    pub fn new(env: Env) -> Self {
        Self { env }
    }
}

fn server_error(context: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::new(ErrorCode::UnknownServerError, format!("{context}: {e}"))
}

impl Runtime for DoRuntime {
    async fn call(
        &self,
        object: Object,
        call: ObjectCall,
        timeout_ms: u32,
    ) -> Result<Vec<u8>, ApiError> {
        let binding = object.kind().binding();
        let path = call.path();
        // Named in errors only: built when one happens, not on every call.
        let what = || format!("{object} {path}");
        let namespace = self
            .env
            .durable_object(binding)
            .map_err(|e| server_error(binding, e))?;
        let stub = namespace
            .get_by_name(&object.name())
            .map_err(|e| server_error(&what(), e))?;
        let body = to_cbor(&call);
        let mut init = RequestInit::new();
        init.with_method(Method::Post)
            .with_body(Some(Uint8Array::from(&body[..]).into()));
        let request = Request::new_with_init(&format!("https://kafdo.internal{path}"), &init)
            .map_err(|e| server_error(&what(), e))?;
        let timeout = Delay::from(Duration::from_millis(timeout_ms.into()));
        let mut response = match select(pin!(stub.fetch_with_request(request)), pin!(timeout)).await
        {
            Either::Left((result, _)) => {
                result.map_err(|e| server_error(&format!("{} failed", what()), e))?
            }
            Either::Right(_) => {
                return Err(ApiError::new(
                    ErrorCode::RequestTimedOut,
                    format!("{} did not answer in {timeout_ms} ms", what()),
                ))
            }
        };
        let status = response.status_code();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| server_error(&format!("{} answer", what()), e))?;
        if status == 200 {
            Ok(bytes)
        } else {
            Err(from_cbor::<ApiError>(&bytes).unwrap_or_else(|_| {
                ApiError::new(
                    ErrorCode::UnknownServerError,
                    format!(
                        "{} answered {status}: {}",
                        what(),
                        String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
                    ),
                )
            }))
        }
    }

    fn now_ms(&self) -> i64 {
        js_sys::Date::now() as i64
    }

    fn random_below(&self, n: u32) -> u32 {
        ((js_sys::Math::random() * f64::from(n)) as u32).min(n.saturating_sub(1))
    }
}
