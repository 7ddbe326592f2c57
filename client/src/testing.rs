//! A test double for the network: a [`Transport`] that answers from a closure and records every
//! request, for the unit tests of the SDK's own logic (retries, batching, sequences). It stands
//! in for the wire, not for Kafdo: the end-to-end tests in `tests/` run against the real Worker.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::transport::{BoxFuture, HttpRequest, HttpResponse, Transport, TransportError};

type Handler = dyn Fn(&HttpRequest, usize) -> Result<HttpResponse, TransportError> + Send + Sync;

/// Answers each request with `handler(request, index)`, where `index` counts requests from 0.
#[derive(Clone)]
pub struct FakeTransport {
    handler: Arc<Handler>,
    pub requests: Arc<Mutex<Vec<HttpRequest>>>,
}

impl FakeTransport {
    pub fn new(
        handler: impl Fn(&HttpRequest, usize) -> Result<HttpResponse, TransportError>
            + Send
            + Sync
            + 'static,
    ) -> Self {
        Self {
            handler: Arc::new(handler),
            requests: Arc::new(Mutex::new(Vec::new())),
        }
    }

    pub fn requests(&self) -> Vec<HttpRequest> {
        self.requests.lock().unwrap().clone()
    }
}

impl Transport for FakeTransport {
    fn send(&self, request: HttpRequest) -> BoxFuture<'_, Result<HttpResponse, TransportError>> {
        let index = {
            let mut requests = self.requests.lock().unwrap();
            requests.push(request.clone());
            requests.len() - 1
        };
        let answer = (self.handler)(&request, index);
        Box::pin(async move {
            // Yield once so concurrent senders interleave as they would on a network.
            tokio::task::yield_now().await;
            answer
        })
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(duration))
    }

    fn spawn(&self, task: BoxFuture<'static, ()>) {
        tokio::spawn(task);
    }
}

/// A JSON answer.
pub fn json(status: u16, body: serde_json::Value) -> Result<HttpResponse, TransportError> {
    Ok(HttpResponse {
        status,
        content_type: Some("application/json".into()),
        body: serde_json::to_vec(&body).unwrap(),
    })
}

/// An error answer with a Kafka code.
pub fn api_error(code: kafdo_types::ErrorCode) -> Result<HttpResponse, TransportError> {
    json(
        code.http_status(),
        serde_json::json!({"error": {"code": code.name(), "message": "test"}}),
    )
}

/// The JSON body of a request.
pub fn body(request: &HttpRequest) -> serde_json::Value {
    serde_json::from_slice(&request.body).unwrap()
}
