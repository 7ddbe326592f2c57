//! The `IdempotencyKey` class: one `Idempotency-Key` of one topic, over
//! [`kafdo_ingest::IdempotencyKey`].
//!
//! The object is named `{topic}/{key}`. The router drives a keyed produce through it (see
//! `design/ingest.md` and the `kafdo_ingest` module docs for why nothing can be duplicated or
//! lost):
//!
//! 1. `/ingest/begin` ([`KeyBegin`]): stores the fingerprint and the proposed producer id, or
//!    answers the stored producer id (a retry of an unfinished attempt), the stored offsets (a
//!    finished one), `IDEMPOTENCY_KEY_REUSED` or [`KeyBeginAnswer::InFlight`].
//! 2. The router appends one idempotent batch per partition with the key's producer id.
//! 3. `/ingest/complete` ([`KeyComplete`]) stores the offsets; on a failure the router calls
//!    `/ingest/release` ([`KeyRelease`]) so a retry need not wait for the lease.
//!
//! Expiry: after every step the alarm is set to the key's expiry (`next_alarm_ms`); the alarm
//! deletes the expired row and, when the object holds nothing more, all of its storage.

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::Promise;
use kafdo_ingest::{Begin, BeginRequest, IdempotencyKey as KeyCore, IngestError};
use kafdo_types::api::RecordOffset;
use kafdo_types::{ApiError, ErrorCode};
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::{wasm_bindgen, JsValue};
use worker::worker_sys::DurableObjectState;
use worker::{web_sys, Env, Response, ScheduledTime, State};

use super::{cbor_answer, no_such_call, now_ms, serve, serve_alarm, storage_error};
use crate::http::from_cbor;
use crate::sql::DoSql;

/// `/ingest/begin`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KeyBegin {
    /// The digest of the decoded request.
    pub fingerprint: Vec<u8>,
    /// A fresh producer id, kept only if the key is new.
    pub producer_id: i64,
    /// How long this attempt holds the key.
    pub lease_ms: i64,
    /// How long the key is remembered.
    pub ttl_ms: i64,
}

/// The answer to `/ingest/begin`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum KeyBeginAnswer {
    /// Append with this producer id, then complete with this attempt.
    Proceed {
        /// The key's producer id.
        producer_id: i64,
        /// The attempt number.
        attempt: i64,
    },
    /// Answered before: these offsets.
    Done {
        /// The stored offsets, in request order.
        offsets: Vec<RecordOffset>,
    },
    /// Another attempt holds the key for this long still.
    InFlight {
        /// Until its lease ends.
        retry_after_ms: i64,
    },
}

/// `/ingest/complete`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KeyComplete {
    /// The key's producer id (names the key's incarnation).
    pub producer_id: i64,
    /// The attempt.
    pub attempt: i64,
    /// The offsets, in request order.
    pub offsets: Vec<RecordOffset>,
}

/// `/ingest/release`.
#[derive(Copy, Clone, Debug, Serialize, Deserialize)]
pub struct KeyRelease {
    /// The key's producer id.
    pub producer_id: i64,
    /// The attempt that failed.
    pub attempt: i64,
}

/// An idempotency-key object.
#[wasm_bindgen]
pub struct IdempotencyKey {
    inner: Rc<KeyObject>,
}

/// The state of an idempotency-key object.
pub struct KeyObject {
    state: State,
    core: RefCell<Option<KeyCore<DoSql>>>,
}

fn server_error(e: worker::Error) -> ApiError {
    ApiError::new(ErrorCode::UnknownServerError, e.to_string())
}

fn api_error(e: IngestError) -> ApiError {
    ApiError::new(e.code(), e.to_string())
}

impl KeyObject {
    fn with_core<T>(
        &self,
        f: impl FnOnce(&mut KeyCore<DoSql>) -> Result<T, IngestError>,
    ) -> Result<T, ApiError> {
        let mut core = self.core.borrow_mut();
        if core.is_none() {
            let sql = DoSql::new(&self.state).map_err(storage_error)?;
            *core = Some(KeyCore::open(sql).map_err(api_error)?);
        }
        f(core.as_mut().expect("opened above")).map_err(api_error)
    }

    /// Sets the alarm to the key's expiry (or removes it when the key is gone).
    async fn rearm(&self) -> Result<(), ApiError> {
        let next = self.with_core(|core| core.next_alarm_ms())?;
        let storage = self.state.storage();
        let result = match next {
            Some(at) => {
                let date = js_sys::Date::new(&JsValue::from_f64(at as f64));
                storage.set_alarm(ScheduledTime::new(date)).await
            }
            None => storage.delete_alarm().await,
        };
        result.map_err(server_error)
    }

    async fn call(&self, path: &str, body: &[u8]) -> worker::Result<Response> {
        match path {
            "/ingest/begin" => {
                let result = from_cbor::<KeyBegin>(body).and_then(|req| {
                    let begin = BeginRequest {
                        fingerprint: req.fingerprint,
                        producer_id: req.producer_id,
                        lease_ms: req.lease_ms,
                        ttl_ms: req.ttl_ms,
                    };
                    // The in-flight conflict travels as a value, not an error: the router turns
                    // it into a 409 with a Retry-After header.
                    self.with_core(|core| match core.begin(&begin, now_ms()) {
                        Ok(Begin::Proceed {
                            producer_id,
                            attempt,
                        }) => Ok(KeyBeginAnswer::Proceed {
                            producer_id,
                            attempt,
                        }),
                        Ok(Begin::Done { offsets }) => Ok(KeyBeginAnswer::Done { offsets }),
                        Err(IngestError::InFlight { retry_after_ms }) => {
                            Ok(KeyBeginAnswer::InFlight { retry_after_ms })
                        }
                        Err(e) => Err(e),
                    })
                });
                if matches!(result, Ok(KeyBeginAnswer::Proceed { .. })) {
                    if let Err(e) = self.rearm().await {
                        return cbor_answer::<()>(Err(e));
                    }
                }
                cbor_answer(result)
            }
            "/ingest/complete" => cbor_answer(from_cbor::<KeyComplete>(body).and_then(|req| {
                self.with_core(|core| {
                    core.complete(req.producer_id, req.attempt, &req.offsets, now_ms())
                })
            })),
            "/ingest/release" => cbor_answer(from_cbor::<KeyRelease>(body).and_then(|req| {
                self.with_core(|core| core.release(req.producer_id, req.attempt, now_ms()))
            })),
            _ => cbor_answer::<()>(Err(no_such_call(path))),
        }
    }

    async fn alarm(&self) -> Result<(), ApiError> {
        let empty = self.with_core(|core| core.on_alarm(now_ms()))?;
        if empty {
            // Nothing is left: drop the storage (and the alarm) so an expired key costs nothing.
            self.core.borrow_mut().take();
            self.state
                .storage()
                .delete_all()
                .await
                .map_err(server_error)
        } else {
            self.rearm().await
        }
    }
}

#[wasm_bindgen]
impl IdempotencyKey {
    /// Called by the runtime when the object starts.
    #[wasm_bindgen(constructor)]
    pub fn new(state: DurableObjectState, _env: Env) -> Self {
        Self {
            inner: Rc::new(KeyObject {
                state: State::from(state),
                core: RefCell::new(None),
            }),
        }
    }

    /// Serves one call.
    pub fn fetch(&self, req: web_sys::Request) -> Promise {
        serve(&self.inner, req, |inner, path, body| async move {
            inner.call(&path, &body).await
        })
    }

    /// The key's expiry: forget it.
    pub fn alarm(&self) -> Promise {
        serve_alarm(&self.inner, |inner| async move {
            if let Err(e) = inner.alarm().await {
                worker::console_error!("idempotency key alarm: {}", e.message);
            }
        })
    }
}
