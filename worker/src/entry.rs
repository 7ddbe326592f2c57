//! The Worker's `fetch` entry: the runtime's request in, [`routes::route`], the request read
//! whole into an [`HttpRequest`], [`handlers::serve`] over a [`Broker`] on [`DoRuntime`], the
//! answer out. Bound by hand rather than with `#[event(fetch)]`, so that a panic answers 500
//! instead of never answering (`crate::guard`).

use std::cell::OnceCell;
use std::rc::Rc;

use js_sys::Promise;
use kafdo_broker::{Broker, Config, Isolate};
use kafdo_types::limits::MAX_REQUEST_BYTES;
use kafdo_types::{ApiError, ErrorCode};
use wasm_bindgen::prelude::{wasm_bindgen, JsValue};
use worker::{web_sys, Env, Headers, Request, Response, ResponseBuilder};

use crate::codec::Format;
use crate::handlers::debug::DEBUG_PANIC_VAR;
use crate::handlers::{self, Context};
use crate::http::{body_too_large, Answer, HttpRequest};
use crate::routes;
use crate::stubs::DoRuntime;
use crate::{guard, logging};

/// The Worker variable with the `Idempotency-Key` TTL in ms (`[vars]` in `wrangler.toml`).
pub const IDEMPOTENCY_KEY_TTL_VAR: &str = "IDEMPOTENCY_KEY_TTL_MS";

thread_local! {
    /// This isolate's caches (topics, producer ids, registered groups).
    static ISOLATE: Rc<Isolate> = Rc::new(Isolate::new());
    /// The deployment's settings and whether the debug panic is armed: the variables do not
    /// change within an isolate, so they are read once.
    static SETTINGS: OnceCell<(Config, bool)> = const { OnceCell::new() };
}

/// The Worker's `fetch` handler.
#[wasm_bindgen(js_name = fetch)]
pub fn fetch(req: web_sys::Request, env: Env, _ctx: JsValue) -> Promise {
    let format = Format::from_accept(req.headers().get("accept").ok().flatten().as_deref());
    let error = ApiError::new(
        ErrorCode::UnknownServerError,
        "the Worker panicked while serving this request (the panic is in the log)",
    );
    let panic_answer = web_sys::Response::from(respond(format, Answer::error(format, &error)));
    guard::guarded(
        async move {
            let response = handle(Request::from(req), env, format).await;
            web_sys::Response::from(response).into()
        },
        panic_answer.into(),
    )
}

/// The deployment's settings, from the Worker's variables.
fn config(env: &Env) -> Config {
    let mut config = Config::default();
    if let Some(ttl_ms) = env
        .var(IDEMPOTENCY_KEY_TTL_VAR)
        .ok()
        .and_then(|v| v.to_string().parse::<i64>().ok())
        .filter(|&ttl| ttl > config.idempotency_key_lease_ms)
    {
        config.idempotency_key_ttl_ms = ttl_ms;
    }
    config
}

fn debug_panic(env: &Env) -> bool {
    env.var(DEBUG_PANIC_VAR)
        .map(|v| v.to_string() == "1")
        .unwrap_or(false)
}

/// Serves one request. Never fails: every error becomes an error answer.
async fn handle(mut req: Request, env: Env, format: Format) -> Response {
    logging::install();
    let method = req.method().to_string();
    let path = req.path();
    let route = match routes::route(&method, &path) {
        Ok(route) => route,
        Err(e) => {
            let (status, error) = e.to_api_error(&method, &path);
            return respond(format, Answer::error_with_status(format, status, &error));
        }
    };
    let http = match read(&mut req).await {
        Ok(http) => http,
        Err(e) => return respond(format, Answer::error(format, &e)),
    };
    let (config, debug_panic) =
        SETTINGS.with(|s| s.get_or_init(|| (config(&env), debug_panic(&env))).clone());
    let runtime = DoRuntime::new(env);
    let isolate = ISOLATE.with(Rc::clone);
    let cx = Context {
        broker: Broker::new(runtime, isolate, config),
        format,
        debug_panic,
    };
    respond(format, handlers::serve(&cx, route, &http).await)
}

/// Reads the request whole, refusing bodies over [`MAX_REQUEST_BYTES`] (by their
/// `Content-Length` before reading, and by what arrived).
async fn read(req: &mut Request) -> Result<HttpRequest, ApiError> {
    let header = |name: &str| req.headers().get(name).ok().flatten();
    if let Some(n) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        if n > MAX_REQUEST_BYTES {
            return Err(body_too_large(n));
        }
    }
    let url = req
        .url()
        .map_err(|e| handlers::invalid(format!("bad request URL: {e}")))?;
    let mut http = HttpRequest {
        query: url.query_pairs().into_owned().collect(),
        content_type: header("content-type"),
        idempotency_key: header("idempotency-key"),
        body: Vec::new(),
    };
    http.body = req
        .bytes()
        .await
        .map_err(|e| handlers::invalid(format!("could not read the request body: {e}")))?;
    if http.body.len() > MAX_REQUEST_BYTES {
        return Err(body_too_large(http.body.len()));
    }
    Ok(http)
}

/// The runtime's response for an answer.
fn respond(format: Format, answer: Answer) -> Response {
    let headers = Headers::new();
    if let Some(s) = answer.retry_after_s {
        let _ = headers.set("retry-after", &s.to_string());
    }
    let builder = ResponseBuilder::new().with_status(answer.status);
    match answer.body {
        Some(body) => {
            // A fixed, valid header name and value: this cannot fail.
            let _ = headers.set("content-type", format.content_type());
            builder.with_headers(headers).fixed(body)
        }
        None => builder.empty(),
    }
}
