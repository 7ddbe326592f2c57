//! The Durable Object classes: thin adapters over the hosts of `kafdo_broker::host`. Each
//! decodes a call, lets its host run one step, carries out the step's effects (arming the
//! alarm, waking long polls, deleting storage) and sends the answer.
//!
//! Every call is a `POST` with the CBOR of a `kafdo_types::rpc::ObjectCall` in its body; every
//! answer is CBOR, an error as an `ApiError` with the code's HTTP status. A handler keeps its
//! host in a `RefCell` and never holds a borrow across an `.await`, so a step of a core runs
//! synchronously from its first read to its last write and no other request can interleave
//! with it.

pub mod bench;
pub mod group;
pub mod ingest;
pub mod metadata;
pub mod partition;
pub mod txn;

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;

use js_sys::Promise;
use kafdo_broker::cbor::{from_cbor, to_cbor};
use kafdo_broker::host::storage_error;
use kafdo_types::rpc::ObjectCall;
use kafdo_types::{ApiError, ErrorCode};
use wasm_bindgen::JsValue;
use worker::{web_sys, Response, ResponseBuilder, State};

use crate::codec::CBOR;
use crate::guard::guarded;
use crate::sql::DoSql;

/// The response to an internal call: the answer's CBOR, or the error with its status.
pub fn cbor_answer(answer: Result<Vec<u8>, ApiError>) -> worker::Result<Response> {
    let (status, body) = match answer {
        Ok(body) => (200, body),
        Err(e) => (e.code.http_status(), to_cbor(&e)),
    };
    Ok(ResponseBuilder::new()
        .with_status(status)
        .with_header("content-type", CBOR)?
        .fixed(body))
}

/// Serves one call to an object: reads and decodes the body, runs `call` as a guarded task (see
/// [`crate::guard`]), and answers a promise of the response. A failure to read or decode the
/// request, an `Err` from `call`, or a panic anywhere in the instance becomes an error answer,
/// never a call that does not answer.
pub fn serve<O, F, Fut>(object: &Rc<O>, req: web_sys::Request, call: F) -> Promise
where
    O: 'static,
    F: FnOnce(Rc<O>, ObjectCall) -> Fut + 'static,
    Fut: Future<Output = Result<Vec<u8>, ApiError>> + 'static,
{
    let object = Rc::clone(object);
    guarded(
        async move {
            let mut req = worker::Request::from(req);
            let answer = match req.bytes().await {
                Ok(body) => match from_cbor::<ObjectCall>(&body) {
                    Ok(c) => call(object, c).await,
                    Err(e) => Err(e),
                },
                Err(e) => Err(server_error(&e.to_string())),
            };
            let response =
                cbor_answer(answer).unwrap_or_else(|e| server_error_response(&e.to_string()));
            web_sys::Response::from(response).into()
        },
        web_sys::Response::from(server_error_response(
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

fn server_error(message: &str) -> ApiError {
    ApiError::new(ErrorCode::UnknownServerError, message)
}

fn server_error_response(message: &str) -> Response {
    ResponseBuilder::new()
        .with_status(500)
        .fixed(to_cbor(&server_error(message)))
}

/// Now, in ms since the epoch: the only clock the adapters read, passed into the hosts.
pub fn now_ms() -> i64 {
    js_sys::Date::now() as i64
}

/// A host created on the object's first call (its storage is bound then).
pub struct Hosted<H> {
    state: State,
    host: RefCell<Option<H>>,
    make: Box<dyn Fn(DoSql) -> H>,
}

impl<H> Hosted<H> {
    /// A host made by `make` on first use.
    pub fn new(state: State, make: impl Fn(DoSql) -> H + 'static) -> Self {
        Self {
            state,
            host: RefCell::new(None),
            make: Box::new(make),
        }
    }

    /// The object's state.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Runs `f` on the host (made if it is not). Synchronous: no borrow outlives it.
    pub fn with<T>(&self, f: impl FnOnce(&mut H) -> T) -> Result<T, ApiError> {
        let mut host = self.host.borrow_mut();
        if host.is_none() {
            let sql = DoSql::new(&self.state).map_err(storage_error)?;
            *host = Some((self.make)(sql));
        }
        Ok(f(host.as_mut().expect("made above")))
    }

    /// Sets the alarm to `at_ms`; `on_failure` runs on the host when that fails, so its next
    /// step arms again. `set_alarm` calls into the runtime before its first await, so no other
    /// call runs between the step that chose the time and the arming.
    pub async fn set_alarm(&self, at_ms: i64, what: &str, on_failure: fn(&mut H)) {
        let offset_ms = (at_ms - now_ms()).max(0);
        if let Err(e) = self.state.storage().set_alarm(offset_ms).await {
            worker::console_error!("{what} alarm: setting it failed: {e}");
            let _ = self.with(on_failure);
        }
    }
}

/// The error for a call of another object's kind.
pub fn wrong_kind(call: &ObjectCall, host: &str) -> ApiError {
    kafdo_broker::host::wrong_kind(call.path(), host)
}
