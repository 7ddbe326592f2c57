//! The Worker's entry point: HTTP API v1 on top of the Durable Objects.
//!
//! A request is matched to a [`Route`], its body decoded (JSON or CBOR), checked, and turned
//! into CBOR calls to the objects: the `Metadata` object named `cluster` for topics, and one
//! `Partition` object per topic partition, named `{topic_id}/{partition}`. Every failure
//! becomes an error answer `{"error": {"code", "message"}}` with the code's status: a thrown
//! stub call (an object that crashed) is `UNKNOWN_SERVER_ERROR` (500), never a hung request.
//!
//! # Topic metadata cache
//!
//! Produce and fetch need the topic's id and partition count. The isolate caches them for
//! [`TOPIC_CACHE_MS`] to spare a call to the metadata object on every request. A stale entry
//! is harmless: a deleted topic's partitions refuse every call with
//! `UNKNOWN_TOPIC_OR_PARTITION`, and on that answer the router drops the entry, asks the
//! metadata object again, and retries once if the topic now has another id (it was deleted
//! and created again). Records that a retried produce had written to the old incarnation are
//! gone with it: its partitions are being deleted.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::pin::pin;
use std::time::Duration;

use futures_util::future::{join_all, select, Either};
use js_sys::Promise;
use js_sys::Uint8Array;
use kafdo_types::api::{
    CreateTopicRequest, FetchResponse, Health, PartitionInfo, PartitionProduceRequest,
    PartitionProduceResponse, ProduceRequest, ProduceResponse, RecordOffset, TopicDescription,
    TopicList,
};
use kafdo_types::limits::MAX_REQUEST_BYTES;
use kafdo_types::rpc::{AppendRequest, PartitionCall, ProducerBatch, ReadRequest, TopicMetadata};
use kafdo_types::{ApiError, ErrorCode, ProduceRecord};
use serde::de::DeserializeOwned;
use serde::Serialize;
use wasm_bindgen::prelude::{wasm_bindgen, JsValue};
use worker::{
    web_sys, Delay, Env, Headers, Method, Request, RequestInit, Response, ResponseBuilder,
};

use crate::guard;

use crate::http::{
    check_records, decode, encode, error_body, from_cbor, invalid, parse_fetch_query, plan_produce,
    route, to_cbor, unknown_partition, Format, Route,
};
use crate::internal::{BareAppendResponse, SqlRollbackReport, TopicName, METADATA_OBJECT_NAME};

/// How long the router waits for a Durable Object to answer (plus a read's `wait_ms`) before
/// it answers `REQUEST_TIMED_OUT` (503: the outcome is unknown).
pub const OBJECT_CALL_TIMEOUT_MS: u32 = 15_000;

/// How long an isolate trusts its copy of a topic's metadata.
pub const TOPIC_CACHE_MS: f64 = 2_000.0;

/// The most topics one isolate caches (a limit on memory, far above what a Worker sees).
const TOPIC_CACHE_MAX_ENTRIES: usize = 10_000;

thread_local! {
    /// Topic name to (metadata, when it was fetched).
    static TOPICS: RefCell<HashMap<String, (TopicMetadata, f64)>> = RefCell::new(HashMap::new());
}

/// The Worker's `fetch` handler (bound by hand rather than with `#[event(fetch)]`, so that a
/// panic answers 500 instead of never answering: see `crate::guard`).
#[wasm_bindgen(js_name = fetch)]
pub fn fetch(req: web_sys::Request, env: Env, _ctx: JsValue) -> Promise {
    let format = Format::from_accept(req.headers().get("accept").ok().flatten().as_deref());
    let error = ApiError::new(
        ErrorCode::UnknownServerError,
        "the Worker panicked while serving this request (the panic is in the log)",
    );
    let panic_answer =
        web_sys::Response::from(Answer::error(format, 500, &error).into_response(format));
    guard::guarded(
        async move {
            let response = handle(worker::Request::from(req), &env).await;
            web_sys::Response::from(response).into()
        },
        panic_answer.into(),
    )
}

/// An answer ready to send.
pub(crate) struct Answer {
    status: u16,
    body: Option<Vec<u8>>,
    /// A `Retry-After` header, in seconds (a 409 `IDEMPOTENCY_KEY_IN_FLIGHT`).
    retry_after_s: Option<i64>,
}

impl Answer {
    pub(crate) fn ok<T: Serialize>(format: Format, value: &T) -> Self {
        Self::with_status(format, 200, value)
    }

    fn with_status<T: Serialize>(format: Format, status: u16, value: &T) -> Self {
        Self {
            status,
            body: Some(encode(format, value)),
            retry_after_s: None,
        }
    }

    fn no_content() -> Self {
        Self {
            status: 204,
            body: None,
            retry_after_s: None,
        }
    }

    fn error(format: Format, status: u16, error: &ApiError) -> Self {
        Self {
            status,
            body: Some(error_body(format, error)),
            retry_after_s: None,
        }
    }

    fn into_response(self, format: Format) -> Response {
        let headers = Headers::new();
        if let Some(s) = self.retry_after_s {
            let _ = headers.set("retry-after", &s.to_string());
        }
        let builder = ResponseBuilder::new().with_status(self.status);
        match self.body {
            Some(body) => {
                // A fixed, valid header name and value: this cannot fail.
                let _ = headers.set("content-type", format.content_type());
                builder.with_headers(headers).fixed(body)
            }
            None => builder.empty(),
        }
    }
}

/// Serves one request. Never fails: every error becomes an error answer.
pub async fn handle(mut req: Request, env: &Env) -> Response {
    let answer_format = Format::from_accept(req.headers().get("accept").ok().flatten().as_deref());
    let method = req.method().to_string();
    let path = req.path();
    let route = match route(&method, &path) {
        Ok(r) => r,
        Err(e) => {
            let (status, error) = e.to_api_error(&method, &path);
            return Answer::error(answer_format, status, &error).into_response(answer_format);
        }
    };
    let answer = match serve(&route, &mut req, env, answer_format).await {
        Ok(answer) => answer,
        Err(e) => Answer::error(answer_format, e.code.http_status(), &e),
    };
    answer.into_response(answer_format)
}

fn server_error(context: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::new(ErrorCode::UnknownServerError, format!("{context}: {e}"))
}

/// Reads and decodes the request body, refusing bodies over [`MAX_REQUEST_BYTES`].
pub(crate) async fn body<T: DeserializeOwned>(req: &mut Request) -> Result<T, ApiError> {
    let too_large = |n: usize| {
        ApiError::new(
            ErrorCode::MessageTooLarge,
            format!("the request body is {n} bytes, more than the limit of {MAX_REQUEST_BYTES}"),
        )
    };
    if let Some(n) = req
        .headers()
        .get("content-length")
        .ok()
        .flatten()
        .and_then(|v| v.parse::<usize>().ok())
    {
        if n > MAX_REQUEST_BYTES {
            return Err(too_large(n));
        }
    }
    let format =
        Format::from_content_type(req.headers().get("content-type").ok().flatten().as_deref());
    let bytes = req
        .bytes()
        .await
        .map_err(|e| invalid(format!("could not read the request body: {e}")))?;
    if bytes.len() > MAX_REQUEST_BYTES {
        return Err(too_large(bytes.len()));
    }
    decode(format, &bytes)
}

async fn serve(
    route: &Route,
    req: &mut Request,
    env: &Env,
    format: Format,
) -> Result<Answer, ApiError> {
    match route {
        Route::Health => Ok(Answer::ok(
            format,
            &Health {
                status: "ok".into(),
            },
        )),
        Route::CreateTopic => {
            let create: CreateTopicRequest = body(req).await?;
            let topic: TopicMetadata = metadata(env, "/metadata/create-topic", &create).await?;
            remember(&topic);
            Ok(Answer::with_status(format, 201, &describe(&topic)))
        }
        Route::ListTopics => {
            let topics: Vec<TopicMetadata> = metadata(env, "/metadata/list-topics", &()).await?;
            Ok(Answer::ok(
                format,
                &TopicList {
                    topics: topics.iter().map(describe).collect(),
                },
            ))
        }
        Route::DescribeTopic(name) => {
            let topic = topic(env, name, true).await?.0;
            Ok(Answer::ok(format, &describe(&topic)))
        }
        Route::DeleteTopic(name) => {
            delete_topic(env, name).await?;
            Ok(Answer::no_content())
        }
        Route::PartitionInfo(name, p) => {
            let p = *p;
            let info = with_topic(env, name, |topic| async move {
                check_partition(&topic, p)?;
                let call = PartitionCall {
                    partition: topic.partition(p),
                };
                partition::<_, PartitionInfo>(env, &topic, p, "/partition/info", &call).await
            })
            .await?;
            Ok(Answer::ok(format, &info))
        }
        Route::ProduceTopic(name) => {
            let key = req.headers().get("idempotency-key").ok().flatten();
            let produce: ProduceRequest = body(req).await?;
            let answer = match key {
                Some(key) => {
                    match crate::txn_routes::keyed_produce(env, name, &key, &produce).await? {
                        Ok(answer) => answer,
                        Err(lease_left_ms) => {
                            let e = ApiError::new(
                                ErrorCode::IdempotencyKeyInFlight,
                                format!(
                                    "a request with this Idempotency-Key is still in flight; \
                                     retry in a second (if it died, its lease ends in \
                                     {lease_left_ms} ms)"
                                ),
                            );
                            let mut answer = Answer::error(format, e.code.http_status(), &e);
                            // A live attempt ends within its own request (milliseconds); the
                            // lease only bounds one that died. Asking for the whole lease would
                            // make every concurrent retry wait up to 30 s for nothing.
                            answer.retry_after_s = Some(1);
                            return Ok(answer);
                        }
                    }
                }
                None => produce_topic(env, name, &produce.records).await?,
            };
            Ok(Answer::ok(format, &answer))
        }
        Route::InitProducer
        | Route::AddPartitionsToTxn(_)
        | Route::AddOffsetsToTxn(_)
        | Route::EndTxn(..)
        | Route::DescribeTxn(_)
        | Route::ListOpenTxns
        | Route::AdminAbortTxn(_) => crate::txn_routes::serve(route, req, env, format).await,
        Route::ProducePartition(name, p) => {
            let produce: PartitionProduceRequest = body(req).await?;
            let answer = produce_partition(env, name, *p, produce).await?;
            Ok(Answer::ok(format, &answer))
        }
        Route::Fetch(name, p) => {
            let p = *p;
            let url = req
                .url()
                .map_err(|e| invalid(format!("bad request URL: {e}")))?;
            let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
            let query = parse_fetch_query(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
            let answer = with_topic(env, name, |topic| async move {
                check_partition(&topic, p)?;
                let read = ReadRequest {
                    partition: topic.partition(p),
                    offset: query.offset,
                    max_records: query.max_records,
                    max_bytes: query.max_bytes,
                    isolation: query.isolation,
                    wait_ms: query.wait_ms,
                };
                let timeout_ms = OBJECT_CALL_TIMEOUT_MS + query.wait_ms;
                partition_with_timeout::<_, FetchResponse>(
                    env,
                    &topic,
                    p,
                    "/partition/read",
                    &read,
                    timeout_ms,
                )
                .await
            })
            .await?;
            Ok(Answer::ok(format, &answer))
        }
        Route::BenchBareAppend(n) => {
            let produce: PartitionProduceRequest = body(req).await?;
            check_records(&produce.records)?;
            // Only with the variable set (by the robustness tests, never in wrangler.toml):
            // object 666 panics on purpose, to prove a panic answers 500 instead of hanging.
            let path = if *n == PANIC_BENCH_OBJECT && debug_panic_enabled(env) {
                "/bench/panic"
            } else {
                "/bench/bare-append"
            };
            let answer: BareAppendResponse = call(
                env,
                "BENCH_APPEND",
                &format!("bench-{n}"),
                path,
                &produce.records,
                OBJECT_CALL_TIMEOUT_MS,
            )
            .await?;
            Ok(Answer::ok(format, &answer))
        }
        Route::DebugSqlRollback => {
            let report: SqlRollbackReport = call(
                env,
                "BENCH_APPEND",
                "debug-sql-rollback",
                "/bench/debug-sql-rollback",
                &(),
                OBJECT_CALL_TIMEOUT_MS,
            )
            .await?;
            Ok(Answer::ok(format, &report))
        }
        Route::Group(g) => {
            let mut answer = Answer::no_content();
            if let Some(bytes) = crate::group_routes::serve(g, req, env, format).await? {
                (answer.status, answer.body) = (200, Some(bytes));
            }
            Ok(answer)
        }
    }
}

/// The bench object that panics on purpose when [`DEBUG_PANIC_VAR`] is `"1"`.
pub const PANIC_BENCH_OBJECT: u32 = 666;

/// The Worker variable that arms the deliberate panic (`wrangler dev --var
/// KAFDO_DEBUG_PANIC:1`). Without it no request can make the Worker panic on purpose: a panic
/// resets the isolate and fails every request in flight there.
pub const DEBUG_PANIC_VAR: &str = "KAFDO_DEBUG_PANIC";

fn debug_panic_enabled(env: &Env) -> bool {
    env.var(DEBUG_PANIC_VAR)
        .map(|v| v.to_string() == "1")
        .unwrap_or(false)
}

fn describe(topic: &TopicMetadata) -> TopicDescription {
    TopicDescription {
        name: topic.name.clone(),
        partitions: topic.partitions,
        config: topic.config.clone(),
    }
}

fn check_partition(topic: &TopicMetadata, p: i32) -> Result<(), ApiError> {
    if (0..topic.partitions).contains(&p) {
        Ok(())
    } else {
        Err(unknown_partition(&topic.name, p))
    }
}

/// Calls a Durable Object (for the other modules of the Worker): see [`call`].
pub(crate) async fn call_object<Req: Serialize, Resp: DeserializeOwned>(
    env: &Env,
    binding: &str,
    name: &str,
    path: &str,
    req: &Req,
    timeout_ms: u32,
) -> Result<Resp, ApiError> {
    call(env, binding, name, path, req, timeout_ms).await
}

/// Calls a Durable Object: a `POST` of a CBOR body to `path`, a CBOR answer back.
async fn call<Req: Serialize, Resp: DeserializeOwned>(
    env: &Env,
    binding: &str,
    name: &str,
    path: &str,
    req: &Req,
    timeout_ms: u32,
) -> Result<Resp, ApiError> {
    let namespace = env
        .durable_object(binding)
        .map_err(|e| server_error(binding, e))?;
    let stub = namespace
        .get_by_name(name)
        .map_err(|e| server_error(binding, e))?;
    let body = to_cbor(req);
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_body(Some(Uint8Array::from(&body[..]).into()));
    let request = Request::new_with_init(&format!("https://kafdo.internal{path}"), &init)
        .map_err(|e| server_error(path, e))?;
    // A thrown call means the object failed (an exception, a reset); a call that does not
    // answer in time (an object that panicked may never settle its answer) times out. Either
    // way the outcome is unknown.
    let timeout = Delay::from(Duration::from_millis(timeout_ms.into()));
    let mut response = match select(pin!(stub.fetch_with_request(request)), pin!(timeout)).await {
        Either::Left((result, _)) => {
            result.map_err(|e| server_error(&format!("{binding} {name:?} {path} failed"), e))?
        }
        Either::Right(_) => {
            return Err(ApiError::new(
                ErrorCode::RequestTimedOut,
                format!("{binding} {name:?} {path} did not answer in {timeout_ms} ms"),
            ))
        }
    };
    let status = response.status_code();
    let bytes = response
        .bytes()
        .await
        .map_err(|e| server_error(&format!("{binding} {name:?} {path} answer"), e))?;
    if status == 200 {
        from_cbor(&bytes)
    } else {
        Err(from_cbor::<ApiError>(&bytes).unwrap_or_else(|_| {
            ApiError::new(
                ErrorCode::UnknownServerError,
                format!(
                    "{binding} {name:?} {path} answered {status}: {}",
                    String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
                ),
            )
        }))
    }
}

pub(crate) async fn metadata<Req: Serialize, Resp: DeserializeOwned>(
    env: &Env,
    path: &str,
    req: &Req,
) -> Result<Resp, ApiError> {
    call(
        env,
        "METADATA",
        METADATA_OBJECT_NAME,
        path,
        req,
        OBJECT_CALL_TIMEOUT_MS,
    )
    .await
}

async fn partition<Req: Serialize, Resp: DeserializeOwned>(
    env: &Env,
    topic: &TopicMetadata,
    p: i32,
    path: &str,
    req: &Req,
) -> Result<Resp, ApiError> {
    partition_with_timeout(env, topic, p, path, req, OBJECT_CALL_TIMEOUT_MS).await
}

async fn partition_with_timeout<Req: Serialize, Resp: DeserializeOwned>(
    env: &Env,
    topic: &TopicMetadata,
    p: i32,
    path: &str,
    req: &Req,
    timeout_ms: u32,
) -> Result<Resp, ApiError> {
    let name = topic.partition_object_name(p);
    call(env, "PARTITION", &name, path, req, timeout_ms).await
}

fn remember(topic: &TopicMetadata) {
    TOPICS.with(|cache| {
        let mut cache = cache.borrow_mut();
        if cache.len() >= TOPIC_CACHE_MAX_ENTRIES {
            cache.clear();
        }
        cache.insert(topic.name.clone(), (topic.clone(), js_sys::Date::now()));
    });
}

fn forget(name: &str) {
    TOPICS.with(|cache| cache.borrow_mut().remove(name));
}

/// A topic's metadata, from the isolate's cache when `fresh` is false and the entry is young.
/// The flag says whether it came from the cache.
pub(crate) async fn topic(
    env: &Env,
    name: &str,
    fresh: bool,
) -> Result<(TopicMetadata, bool), ApiError> {
    if !fresh {
        let now = js_sys::Date::now();
        let cached = TOPICS.with(|cache| {
            cache
                .borrow()
                .get(name)
                .filter(|(_, at)| now - at < TOPIC_CACHE_MS)
                .map(|(t, _)| t.clone())
        });
        if let Some(t) = cached {
            return Ok((t, true));
        }
    }
    let result: Result<TopicMetadata, ApiError> = metadata(
        env,
        "/metadata/topic",
        &TopicName {
            name: name.to_owned(),
        },
    )
    .await;
    match result {
        Ok(t) => {
            remember(&t);
            Ok((t, false))
        }
        Err(e) => {
            if e.code == ErrorCode::UnknownTopicOrPartition {
                forget(name);
            }
            Err(e)
        }
    }
}

/// Runs `f` on the topic's metadata; when the answer says the topic or partition is unknown
/// and the metadata came from the cache, retries once with fresh metadata if the topic changed.
async fn with_topic<T, F, Fut>(env: &Env, name: &str, f: F) -> Result<T, ApiError>
where
    F: Fn(TopicMetadata) -> Fut,
    Fut: Future<Output = Result<T, ApiError>>,
{
    let (cached, from_cache) = topic(env, name, false).await?;
    let old_id = cached.topic_id.clone();
    match f(cached).await {
        Err(e) if e.code == ErrorCode::UnknownTopicOrPartition && from_cache => {
            forget(name);
            let (fresh, _) = topic(env, name, true).await?;
            if fresh.topic_id == old_id {
                return Err(e);
            }
            f(fresh).await
        }
        result => result,
    }
}

async fn produce_topic(
    env: &Env,
    name: &str,
    records: &[ProduceRecord],
) -> Result<ProduceResponse, ApiError> {
    // Checked before anything else, so a bad request fails fast and writes nothing.
    check_records(records)?;
    with_topic(env, name, |topic| async move {
        // Null-key records without a partition all go to one random partition per request.
        let sticky = ((js_sys::Math::random() * f64::from(topic.partitions)) as i32)
            .clamp(0, topic.partitions - 1);
        let plan = plan_produce(&topic.name, records.to_vec(), topic.partitions, sticky)?;
        let partitions: Vec<i32> = plan.batches.iter().map(|(p, _)| *p).collect();
        let topic = &topic;
        let appends = plan.batches.into_iter().map(|(p, records)| async move {
            let append = AppendRequest {
                partition: topic.partition(p),
                producer: None,
                transactional: false,
                records,
            };
            partition::<_, PartitionProduceResponse>(env, topic, p, "/partition/append", &append)
                .await
        });
        let results = join_all(appends).await;
        // An unknown topic comes first, so that a stale cache entry leads to a retry.
        if let Some(e) = results.iter().find_map(|r| {
            r.as_ref()
                .err()
                .filter(|e| e.code == ErrorCode::UnknownTopicOrPartition)
        }) {
            return Err(e.clone());
        }
        let answers = results.into_iter().collect::<Result<Vec<_>, _>>()?;
        Ok(ProduceResponse {
            offsets: plan
                .slots
                .iter()
                .map(|&(b, i)| RecordOffset {
                    partition: partitions[b],
                    offset: answers[b].base_offset + i as i64,
                })
                .collect(),
        })
    })
    .await
}

async fn produce_partition(
    env: &Env,
    name: &str,
    p: i32,
    produce: PartitionProduceRequest,
) -> Result<PartitionProduceResponse, ApiError> {
    check_records(&produce.records)?;
    if let Some(i) = produce
        .records
        .iter()
        .position(|r| r.partition.is_some_and(|rp| rp != p))
    {
        return Err(invalid(format!(
            "record {i} names another partition than the path's {p}"
        )));
    }
    let producer = match (
        produce.producer_id,
        produce.producer_epoch,
        produce.base_sequence,
    ) {
        (None, None, None) => None,
        (Some(producer_id), Some(producer_epoch), Some(base_sequence)) => Some(ProducerBatch {
            producer_id,
            producer_epoch,
            base_sequence,
        }),
        _ => {
            return Err(invalid(
                "producer_id, producer_epoch and base_sequence come together or not at all",
            ))
        }
    };
    if produce.transactional && producer.is_none() {
        return Err(invalid("a transactional batch needs a producer_id"));
    }
    let produce = &produce;
    with_topic(env, name, |topic| async move {
        check_partition(&topic, p)?;
        let append = AppendRequest {
            partition: topic.partition(p),
            producer,
            transactional: produce.transactional,
            records: produce.records.clone(),
        };
        partition(env, &topic, p, "/partition/append", &append).await
    })
    .await
}

/// Deletes the topic from the metadata, then every partition's log. A partition that fails to
/// delete keeps its data, but nothing can reach it any more: its topic id is gone for ever.
async fn delete_topic(env: &Env, name: &str) -> Result<(), ApiError> {
    let topic: TopicMetadata = metadata(
        env,
        "/metadata/delete-topic",
        &TopicName {
            name: name.to_owned(),
        },
    )
    .await?;
    forget(name);
    let topic = &topic;
    let deletes = (0..topic.partitions).map(|p| async move {
        let call = PartitionCall {
            partition: topic.partition(p),
        };
        (
            p,
            partition::<_, ()>(env, topic, p, "/partition/delete", &call).await,
        )
    });
    for (p, result) in join_all(deletes).await {
        if let Err(e) = result {
            worker::console_error!(
                "deleting partition {p} of {}: {}",
                topic.topic_id,
                e.message
            );
        }
    }
    Ok(())
}
