//! [`Client`]: typed calls to HTTP API v1 over a [`Transport`], with safe retries.
//!
//! Every call of the API is one method here (topics in [`crate::admin`], records and producers
//! below, transactions in [`crate::txn`]), each declaring whether a retry is safe
//! ([`Safety`]). [`Client::call`] then runs the retry loop of [`crate::retry`]: it retries only
//! what the table there allows, sleeps a jittered exponential backoff between attempts, and
//! turns an error answer `{"error":{"code","message"}}` into [`Error::Api`] with the Kafka code.
//!
//! Bodies are JSON by default. With the `cbor` feature, [`Format::Cbor`] sends and accepts the
//! same shapes in CBOR (binary fields as byte strings rather than base64: smaller and cheaper to
//! encode, which matters for the producer's large batches).
//!
//! A `Client` is cheap to clone: clones share the transport (and its connection pool).

use std::sync::Arc;
use std::time::Duration;

use kafdo_types::api::{
    FetchResponse, InitProducerRequest, InitProducerResponse, Isolation, MultiFetchRequest,
    MultiFetchResponse, MultiProduceRequest, MultiProduceResponse, PartitionProduceRequest,
    PartitionProduceResponse, ProduceRequest, ProduceResponse,
};
use kafdo_types::{ErrorBody, ErrorCode, ProduceRecord};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::Error;
use crate::retry::{Jitter, RetryPolicy, Safety};
use crate::transport::{encode_path_segment, HttpRequest, Method, Transport};

/// The encoding of request and answer bodies.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum Format {
    /// JSON, binary fields as base64 (the default).
    #[default]
    Json,
    /// CBOR, binary fields as byte strings.
    #[cfg(feature = "cbor")]
    Cbor,
}

impl Format {
    /// The media type.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            #[cfg(feature = "cbor")]
            Format::Cbor => "application/cbor",
        }
    }
}

/// How a [`Client`] talks to the server.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// The body encoding.
    pub format: Format,
    /// Retries of safe requests.
    pub retry: RetryPolicy,
    /// How long one attempt may take before its outcome counts as unknown, in ms (a long-poll
    /// fetch adds its `wait_ms`).
    pub request_timeout_ms: u64,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            format: Format::Json,
            retry: RetryPolicy::default(),
            request_timeout_ms: 30_000,
        }
    }
}

/// Options of one fetch (`GET /v1/topics/{t}/partitions/{p}/records`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct FetchOptions {
    /// The first offset wanted.
    pub offset: i64,
    /// The most records to return.
    pub max_records: u32,
    /// The byte budget (the first record is returned even when larger).
    pub max_bytes: u32,
    /// Which records may be returned.
    pub isolation: Isolation,
    /// How long the server may wait for records when there are none yet (a long poll).
    pub wait_ms: u32,
}

impl FetchOptions {
    /// Defaults (read_committed, no wait) from `offset`.
    pub fn at(offset: i64) -> Self {
        Self {
            offset,
            max_records: kafdo_types::limits::DEFAULT_FETCH_MAX_RECORDS,
            max_bytes: kafdo_types::limits::DEFAULT_FETCH_MAX_BYTES,
            isolation: Isolation::ReadCommitted,
            wait_ms: 0,
        }
    }
}

/// One call of the API, before encoding.
pub(crate) struct Call {
    pub method: Method,
    pub path: String,
    pub query: Vec<(&'static str, String)>,
    pub body: Option<Vec<u8>>,
    pub safety: Safety,
    pub idempotency_key: Option<String>,
    pub extra_timeout: Duration,
}

impl Call {
    pub fn new(method: Method, path: String, safety: Safety) -> Self {
        Self {
            method,
            path,
            query: Vec::new(),
            body: None,
            safety,
            idempotency_key: None,
            extra_timeout: Duration::ZERO,
        }
    }
}

struct Inner {
    transport: Arc<dyn Transport>,
    config: ClientConfig,
    jitter: Jitter,
}

/// A handle on one Kafdo deployment.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// The path of a topic: `/v1/topics/{t}`.
pub(crate) fn topic_path(topic: &str) -> String {
    format!("/v1/topics/{}", encode_path_segment(topic))
}

impl Client {
    /// A client over `transport` with the default configuration.
    pub fn new(transport: impl Transport) -> Self {
        Self::with_config(transport, ClientConfig::default())
    }

    /// A client over `transport`.
    pub fn with_config(transport: impl Transport, config: ClientConfig) -> Self {
        Self::from_shared(Arc::new(transport), config)
    }

    /// A client over a shared transport.
    pub fn from_shared(transport: Arc<dyn Transport>, config: ClientConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                transport,
                config,
                jitter: Jitter::new(),
            }),
        }
    }

    /// A native client for `url` (for instance `http://127.0.0.1:8787`).
    #[cfg(feature = "native")]
    pub fn connect(url: &str) -> Result<Self, Error> {
        let transport =
            crate::transport::native::NativeTransport::new(url).map_err(Error::from_transport)?;
        Ok(Self::new(transport))
    }

    /// A native client for `url` with a configuration.
    #[cfg(feature = "native")]
    pub fn connect_with(url: &str, config: ClientConfig) -> Result<Self, Error> {
        let transport =
            crate::transport::native::NativeTransport::new(url).map_err(Error::from_transport)?;
        Ok(Self::with_config(transport, config))
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// The transport (for its timer and task spawner).
    pub(crate) fn transport(&self) -> &Arc<dyn Transport> {
        &self.inner.transport
    }

    /// Waits on the transport's runtime.
    pub(crate) async fn sleep(&self, duration: Duration) {
        self.inner.transport.sleep(duration).await
    }

    /// Encodes a body in the client's format.
    pub(crate) fn encode<T: Serialize>(&self, value: &T) -> Vec<u8> {
        match self.inner.config.format {
            Format::Json => serde_json::to_vec(value).expect("API bodies always serialize to JSON"),
            #[cfg(feature = "cbor")]
            Format::Cbor => {
                let mut out = Vec::new();
                ciborium::into_writer(value, &mut out).expect("API bodies always serialize");
                out
            }
        }
    }

    /// Runs a call with the retry policy and decodes its answer (`()` for an empty one).
    pub(crate) async fn call<T: DeserializeOwned>(&self, call: Call) -> Result<T, Error> {
        let policy = &self.inner.config.retry;
        let mut attempt = 1;
        loop {
            let result = self.attempt(&call).await;
            match result {
                Ok(value) => return Ok(value),
                Err(error) if policy.should_retry(&error, call.safety, attempt) => {
                    let wait = policy.backoff(attempt - 1, self.inner.jitter.next());
                    self.sleep(wait).await;
                    attempt += 1;
                }
                Err(error) => return Err(error),
            }
        }
    }

    async fn attempt<T: DeserializeOwned>(&self, call: &Call) -> Result<T, Error> {
        let format = self.inner.config.format;
        let request = HttpRequest {
            method: call.method,
            path: call.path.clone(),
            query: call.query.clone(),
            body: call.body.clone().unwrap_or_default(),
            content_type: call.body.as_ref().map(|_| format.content_type()),
            accept: format.content_type(),
            idempotency_key: call.idempotency_key.clone(),
            timeout: Duration::from_millis(self.inner.config.request_timeout_ms)
                + call.extra_timeout,
        };
        let response = self
            .inner
            .transport
            .send(request)
            .await
            .map_err(Error::from_transport)?;
        let cbor = response
            .content_type
            .as_deref()
            .is_some_and(|t| t.starts_with("application/cbor"));
        if (200..300).contains(&response.status) {
            let body: &[u8] = if response.body.is_empty() {
                // 204 and other empty answers decode as `()`.
                b"null"
            } else {
                &response.body
            };
            return decode(body, cbor && !response.body.is_empty()).map_err(|message| {
                Error::Protocol {
                    status: response.status,
                    message,
                }
            });
        }
        match decode::<ErrorBody>(&response.body, cbor) {
            Ok(ErrorBody { error }) => Err(Error::Api {
                status: response.status,
                code: error.code,
                message: error.message,
            }),
            Err(_) => Err(Error::Protocol {
                status: response.status,
                message: String::from_utf8_lossy(&response.body[..response.body.len().min(500)])
                    .into_owned(),
            }),
        }
    }

    /// `GET /health`: whether the deployment answers.
    pub async fn health(&self) -> Result<(), Error> {
        let _: kafdo_types::api::Health = self
            .call(Call::new(Method::Get, "/health".into(), Safety::Idempotent))
            .await?;
        Ok(())
    }

    /// `POST /v1/topics/{t}/records`: the server routes each record (its `partition`, else its
    /// key, else one sticky partition). With an `idempotency_key`, a retry (by the SDK or by
    /// the caller) returns the first answer and writes nothing new; without one, an unknown
    /// outcome is returned to the caller rather than risking a duplicate.
    pub async fn produce(
        &self,
        topic: &str,
        records: Vec<ProduceRecord>,
        idempotency_key: Option<&str>,
    ) -> Result<ProduceResponse, Error> {
        let safety = if idempotency_key.is_some() {
            Safety::Idempotent
        } else {
            Safety::NotIdempotent
        };
        let mut call = Call::new(
            Method::Post,
            format!("{}/records", topic_path(topic)),
            safety,
        );
        call.body = Some(self.encode(&ProduceRequest { records }));
        call.idempotency_key = idempotency_key.map(str::to_string);
        self.call(call).await
    }

    /// `POST /v1/topics/{t}/partitions/{p}/records`: one batch to one partition. Retried only
    /// when it carries a producer id and a base_sequence (the partition deduplicates it).
    pub async fn produce_to_partition(
        &self,
        topic: &str,
        partition: i32,
        request: &PartitionProduceRequest,
    ) -> Result<PartitionProduceResponse, Error> {
        let safety = if request.producer_id.is_some() && request.base_sequence.is_some() {
            Safety::Idempotent
        } else {
            Safety::NotIdempotent
        };
        let mut call = Call::new(
            Method::Post,
            format!("{}/partitions/{partition}/records", topic_path(topic)),
            safety,
        );
        call.body = Some(self.encode(request));
        self.call(call).await
    }

    /// One attempt of a partition produce, without the client's retry loop (the producer runs
    /// its own, which keeps the batch's base_sequence across attempts).
    pub(crate) async fn produce_to_partition_once(
        &self,
        topic: &str,
        partition: i32,
        body: Vec<u8>,
    ) -> Result<PartitionProduceResponse, Error> {
        let mut call = Call::new(
            Method::Post,
            format!("{}/partitions/{partition}/records", topic_path(topic)),
            Safety::NotIdempotent,
        );
        call.body = Some(body);
        self.attempt(&call).await
    }

    /// `GET /v1/topics/{t}/partitions/{p}/records`.
    pub async fn fetch(
        &self,
        topic: &str,
        partition: i32,
        options: FetchOptions,
    ) -> Result<FetchResponse, Error> {
        let mut call = Call::new(
            Method::Get,
            format!("{}/partitions/{partition}/records", topic_path(topic)),
            Safety::Idempotent,
        );
        call.query = vec![
            ("offset", options.offset.to_string()),
            ("max_records", options.max_records.to_string()),
            ("max_bytes", options.max_bytes.to_string()),
            ("isolation", options.isolation.as_str().to_string()),
        ];
        if options.wait_ms > 0 {
            call.query.push(("wait_ms", options.wait_ms.to_string()));
            call.extra_timeout = Duration::from_millis(u64::from(options.wait_ms));
        }
        self.call(call).await
    }

    /// `POST /v1/produce`: one batch for each of many partitions in one request; each
    /// partition's outcome (its offsets, or its error) in request order. Retried only when
    /// every batch carries a producer id and a base_sequence (each partition deduplicates).
    pub async fn produce_many(
        &self,
        request: &MultiProduceRequest,
    ) -> Result<MultiProduceResponse, Error> {
        let idempotent = request
            .partitions
            .iter()
            .all(|p| p.batch.producer_id.is_some() && p.batch.base_sequence.is_some());
        let safety = if idempotent {
            Safety::Idempotent
        } else {
            Safety::NotIdempotent
        };
        let mut call = Call::new(Method::Post, "/v1/produce".into(), safety);
        call.body = Some(self.encode(request));
        self.call(call).await
    }

    /// `POST /v1/fetch`: many partitions read in one request that waits once (up to
    /// `wait_ms`) for `min_bytes`; each partition's outcome in request order.
    pub async fn fetch_many(
        &self,
        request: &MultiFetchRequest,
    ) -> Result<MultiFetchResponse, Error> {
        let mut call = Call::new(Method::Post, "/v1/fetch".into(), Safety::Idempotent);
        call.body = Some(self.encode(request));
        call.extra_timeout = Duration::from_millis(u64::from(request.wait_ms));
        self.call(call).await
    }

    /// `POST /v1/producers`: a producer id and epoch (for a transactional id: the stable id and
    /// a new epoch, fencing older instances). Retrying is harmless: a lost answer only leaves an
    /// unused id, or an epoch the retry's answer supersedes.
    pub async fn init_producer(
        &self,
        request: &InitProducerRequest,
    ) -> Result<InitProducerResponse, Error> {
        let mut call = Call::new(Method::Post, "/v1/producers".into(), Safety::Idempotent);
        call.body = Some(self.encode(request));
        self.call(call).await
    }
}

/// Decodes a body in JSON or CBOR.
fn decode<T: DeserializeOwned>(body: &[u8], cbor: bool) -> Result<T, String> {
    if cbor {
        #[cfg(feature = "cbor")]
        return ciborium::from_reader(body).map_err(|e| format!("invalid CBOR: {e}"));
        #[cfg(not(feature = "cbor"))]
        return Err("a CBOR answer, but the `cbor` feature is off".into());
    }
    serde_json::from_slice(body).map_err(|e| {
        format!(
            "invalid JSON ({e}): {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        )
    })
}

/// Whether an error means the server does not have a route (an older Worker).
pub(crate) fn is_missing_route(error: &Error) -> bool {
    match error {
        Error::Protocol { status, .. } => *status == 404 || *status == 405 || *status == 501,
        Error::Api { status, code, .. } => {
            (*status == 404 && *code != ErrorCode::UnknownTopicOrPartition) || *status == 405
        }
        _ => false,
    }
}
