//! The transport inside a Worker: the global `fetch`, or a service binding to the Kafdo Worker.
//!
//! A service binding (`[[services]]` in `wrangler.toml`) calls the Kafdo Worker without leaving
//! Cloudflare's network; the global `fetch` reaches it by URL. The runtime owns the connections,
//! so reuse is the runtime's. Timers are `worker::Delay` (a JavaScript `setTimeout`), background
//! tasks `spawn_local`: a Worker runs on one thread, so nothing here is `Send`.
//!
//! The runtime reports every failed `fetch` the same way, so this transport cannot tell a request
//! that never left from one that was lost on the way back: every failure is an unknown outcome
//! ([`TransportError::Io`]), the conservative choice for the retry policy.

use std::time::Duration;

use futures_util::future::{select, Either};
use worker::js_sys;
use worker::wasm_bindgen::{JsCast, JsValue};

use super::{
    encode_query_value, BoxFuture, HttpRequest, HttpResponse, Method, Transport, TransportError,
};

/// Where requests go.
#[derive(Clone, Debug)]
enum Target {
    /// The global `fetch` to a URL.
    Url,
    /// A service binding's `fetch` (the URL's host is then only a label).
    Service(worker::Fetcher),
}

/// A [`Transport`] for code running inside a Worker.
#[derive(Clone, Debug)]
pub struct WorkerTransport {
    base_url: String,
    target: Target,
}

impl WorkerTransport {
    /// A transport that calls `base_url` with the global `fetch`.
    pub fn fetch(base_url: &str) -> Self {
        Self {
            base_url: base_url.trim_end_matches('/').to_string(),
            target: Target::Url,
        }
    }

    /// A transport over a service binding (`env.service("KAFDO")?`). Requests carry
    /// `https://kafdo` as their URL; the binding ignores the host.
    pub fn service(binding: worker::Fetcher) -> Self {
        Self {
            base_url: "https://kafdo".to_string(),
            target: Target::Service(binding),
        }
    }

    fn build(&self, request: &HttpRequest) -> Result<worker::Request, TransportError> {
        let mut url = format!("{}{}", self.base_url, request.path);
        for (i, (name, value)) in request.query.iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.push_str(name);
            url.push('=');
            url.push_str(&encode_query_value(value));
        }
        let invalid = |e: worker::Error| TransportError::Invalid(e.to_string());
        let headers = worker::Headers::new();
        headers.set("accept", request.accept).map_err(invalid)?;
        if let Some(content_type) = request.content_type {
            headers.set("content-type", content_type).map_err(invalid)?;
        }
        if let Some(key) = &request.idempotency_key {
            headers.set("idempotency-key", key).map_err(invalid)?;
        }
        let mut init = worker::RequestInit::new();
        init.with_method(match request.method {
            Method::Get => worker::Method::Get,
            Method::Post => worker::Method::Post,
            Method::Delete => worker::Method::Delete,
        })
        .with_headers(headers);
        if !request.body.is_empty() {
            let body: JsValue = js_sys::Uint8Array::from(request.body.as_slice()).into();
            init.with_body(Some(body));
        }
        worker::Request::new_with_init(&url, &init).map_err(invalid)
    }

    async fn call(&self, request: worker::Request) -> worker::Result<worker::Response> {
        match &self.target {
            Target::Url => worker::Fetch::Request(request).send().await,
            Target::Service(binding) => {
                // `Fetcher::fetch_request` changes its answer type with the `http` feature of
                // the worker crate; calling the binding's `fetch` directly does not.
                let this: &JsValue = binding.as_ref();
                let fetch: js_sys::Function =
                    js_sys::Reflect::get(this, &JsValue::from_str("fetch"))?.dyn_into()?;
                let promise: js_sys::Promise =
                    fetch.call1(this, request.inner().as_ref())?.dyn_into()?;
                let answer = worker::wasm_bindgen_futures::JsFuture::from(promise).await?;
                let answer: worker::web_sys::Response = answer.dyn_into()?;
                Ok(worker::Response::from(answer))
            }
        }
    }
}

impl Transport for WorkerTransport {
    fn send(&self, request: HttpRequest) -> BoxFuture<'_, Result<HttpResponse, TransportError>> {
        Box::pin(async move {
            let timeout = request.timeout;
            let js_request = self.build(&request)?;
            let exchange = Box::pin(async move {
                let mut response = self
                    .call(js_request)
                    .await
                    .map_err(|e| TransportError::Io(e.to_string()))?;
                let status = response.status_code();
                let content_type = response.headers().get("content-type").ok().flatten();
                let body = response
                    .bytes()
                    .await
                    .map_err(|e| TransportError::Io(e.to_string()))?;
                Ok(HttpResponse {
                    status,
                    content_type,
                    body,
                })
            });
            match select(exchange, worker::Delay::from(timeout)).await {
                Either::Left((answer, _)) => answer,
                Either::Right(((), _)) => Err(TransportError::Timeout(timeout)),
            }
        })
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(worker::Delay::from(duration))
    }

    fn spawn(&self, task: BoxFuture<'static, ()>) {
        worker::wasm_bindgen_futures::spawn_local(task);
    }
}
