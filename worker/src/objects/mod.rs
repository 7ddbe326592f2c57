//! The Durable Object classes: thin adapters that decode a call, run one step of a core, and
//! encode the answer.
//!
//! Every call is a `POST` with a CBOR body to a path named after the step
//! (`/partition/append`); every answer is CBOR, an error as an `ApiError` with the code's HTTP
//! status. A handler keeps its state in `RefCell`s and never holds a borrow across an
//! `.await`, so a step of a core runs synchronously from its first read to its last write and
//! no other request can interleave with it.

pub mod bench;
pub mod group;
pub mod ingest;
pub mod metadata;
pub mod partition;
pub mod txn;

use std::cell::Cell;
use std::future::Future;
use std::rc::Rc;

use js_sys::Promise;
use kafdo_types::{ApiError, ErrorCode};
use serde::Serialize;
use wasm_bindgen::JsValue;
use worker::{web_sys, Response, ResponseBuilder, State};

use crate::guard::guarded;
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

/// Serves one call to an object: reads the path and body, runs `call` as a guarded task (see
/// [`crate::guard`]), and answers a promise of the response. A failure to read the request,
/// an `Err` from `call`, or a panic anywhere in the instance becomes an
/// `UNKNOWN_SERVER_ERROR` answer, never a call that does not answer.
pub fn serve<O, F, Fut>(object: &Rc<O>, req: web_sys::Request, call: F) -> Promise
where
    O: 'static,
    F: FnOnce(Rc<O>, String, Vec<u8>) -> Fut + 'static,
    Fut: Future<Output = worker::Result<Response>> + 'static,
{
    let object = Rc::clone(object);
    guarded(
        async move {
            let mut req = worker::Request::from(req);
            let path = req.path();
            let answer = match req.bytes().await {
                Ok(body) => call(object, path, body).await,
                Err(e) => Err(e),
            };
            let response = answer.unwrap_or_else(|e| server_error_answer(&e.to_string()));
            web_sys::Response::from(response).into()
        },
        web_sys::Response::from(server_error_answer(
            "the object panicked while serving this call (the panic is in the log)",
        ))
        .into(),
    )
}

/// Runs an object's alarm as a guarded task (see [`crate::guard`]): a panic is logged and the
/// runtime's promise still resolves.
pub fn serve_alarm<O, F, Fut>(object: &Rc<O>, alarm: F) -> Promise
where
    O: 'static,
    F: FnOnce(Rc<O>) -> Fut + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let object = Rc::clone(object);
    guarded(
        async move {
            alarm(object).await;
            JsValue::UNDEFINED
        },
        JsValue::UNDEFINED,
    )
}

fn server_error_answer(message: &str) -> Response {
    let error = ApiError::new(ErrorCode::UnknownServerError, message);
    ResponseBuilder::new()
        .with_status(500)
        .fixed(to_cbor(&error))
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

/// The alarm time an object instance armed last, so it re-arms only for an earlier deadline
/// (`None` after a restart, once the alarm fired, or after arming failed: then the next step
/// arms again).
#[derive(Default)]
pub struct ArmedAlarm(Cell<Option<i64>>);

impl ArmedAlarm {
    /// Arms the object's alarm for `at_ms` unless an alarm at or before it is armed already.
    /// An error is logged (`what` names the object); the next step arms again.
    pub async fn arm(&self, state: &State, at_ms: i64, what: &str) {
        if self.0.get().is_some_and(|armed| armed <= at_ms) {
            return;
        }
        self.0.set(Some(at_ms));
        // A relative offset; `set_alarm` calls into the runtime before its first await, so no
        // other call runs between reading the deadline and arming it.
        let offset_ms = (at_ms - now_ms()).max(0);
        if let Err(e) = state.storage().set_alarm(offset_ms).await {
            self.0.set(None);
            worker::console_error!("{what} alarm: setting it failed: {e}");
        }
    }

    /// The alarm fired: nothing is armed any more.
    pub fn fired(&self) {
        self.0.set(None);
    }
}
