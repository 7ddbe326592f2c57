//! The native transport: reqwest (hyper, HTTP/1.1 with a keep-alive connection pool) on tokio.
//!
//! Plain `http://` by default; the `rustls` feature adds `https://`. Connections are reused
//! across requests by reqwest's pool, and `TCP_NODELAY` is on because the SDK's requests are
//! small and latency-bound.

use std::time::Duration;

use super::{
    encode_query_value, BoxFuture, HttpRequest, HttpResponse, Method, Transport, TransportError,
};

/// A [`Transport`] over reqwest, for native programs running on a tokio runtime.
#[derive(Clone, Debug)]
pub struct NativeTransport {
    base_url: String,
    http: reqwest::Client,
}

impl NativeTransport {
    /// A transport to the deployment at `base_url` (for instance `http://127.0.0.1:8787`).
    pub fn new(base_url: &str) -> Result<Self, TransportError> {
        let base_url = base_url.trim_end_matches('/').to_string();
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(TransportError::Invalid(format!(
                "the URL must start with http:// or https://: {base_url}"
            )));
        }
        let http = reqwest::Client::builder()
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(64)
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| TransportError::Invalid(e.to_string()))?;
        Ok(Self { base_url, http })
    }

    /// The deployment's base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    fn url(&self, request: &HttpRequest) -> String {
        let mut url = format!("{}{}", self.base_url, request.path);
        for (i, (name, value)) in request.query.iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.push_str(name);
            url.push('=');
            url.push_str(&encode_query_value(value));
        }
        url
    }
}

impl Transport for NativeTransport {
    fn send(&self, request: HttpRequest) -> BoxFuture<'_, Result<HttpResponse, TransportError>> {
        Box::pin(async move {
            let method = match request.method {
                Method::Get => reqwest::Method::GET,
                Method::Post => reqwest::Method::POST,
                Method::Delete => reqwest::Method::DELETE,
            };
            let mut builder = self
                .http
                .request(method, self.url(&request))
                .timeout(request.timeout)
                .header("accept", request.accept);
            if let Some(content_type) = request.content_type {
                builder = builder.header("content-type", content_type);
            }
            if let Some(key) = &request.idempotency_key {
                builder = builder.header("idempotency-key", key.as_str());
            }
            if !request.body.is_empty() || request.method == Method::Post {
                builder = builder.body(request.body);
            }
            let response = builder
                .send()
                .await
                .map_err(|e| classify(e, request.timeout))?;
            let status = response.status().as_u16();
            let content_type = response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let body = response
                .bytes()
                .await
                .map_err(|e| classify(e, request.timeout))?;
            Ok(HttpResponse {
                status,
                content_type,
                body: body.to_vec(),
            })
        })
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(duration))
    }

    fn spawn(&self, task: BoxFuture<'static, ()>) {
        tokio::spawn(task);
    }
}

/// Sorts a reqwest error into "certainly not sent" and "unknown outcome".
fn classify(e: reqwest::Error, timeout: Duration) -> TransportError {
    if e.is_connect() {
        TransportError::Connect(error_chain(&e))
    } else if e.is_timeout() {
        TransportError::Timeout(timeout)
    } else if e.is_builder() {
        TransportError::Invalid(error_chain(&e))
    } else {
        TransportError::Io(error_chain(&e))
    }
}

/// reqwest's top-level message is terse ("error sending request"); the causes say why.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}
