//! The `Metadata` class: the one object (named `cluster`) that owns the topic list and the
//! producer-id counter, over [`kafdo_metadata::Metadata`].

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::Promise;
use kafdo_metadata::{Metadata as MetadataCore, MetadataError};
use kafdo_types::api::CreateTopicRequest;
use kafdo_types::ApiError;
use wasm_bindgen::prelude::wasm_bindgen;
use worker::worker_sys::DurableObjectState;
use worker::{web_sys, Env, Response, State};

use super::{cbor_answer, no_such_call, now_ms, serve, storage_error};
use crate::group_http::{GroupIdCall, ListGroupsCall};
use crate::http::from_cbor;
use crate::internal::{AllocateProducerIds, ProducerIdBlock, TopicName};
use crate::sql::DoSql;

/// The cluster metadata object.
#[wasm_bindgen]
pub struct Metadata {
    /// Shared with the task that serves each request (see `crate::guard`).
    inner: Rc<MetadataObject>,
}

/// The state of the metadata object.
pub struct MetadataObject {
    state: State,
    /// Opened on the first call (opening creates the schema).
    core: RefCell<Option<MetadataCore<DoSql>>>,
}

fn api_error(e: MetadataError) -> ApiError {
    ApiError::new(e.code(), e.to_string())
}

impl MetadataObject {
    fn with_core<T>(
        &self,
        f: impl FnOnce(&mut MetadataCore<DoSql>) -> Result<T, MetadataError>,
    ) -> Result<T, ApiError> {
        let mut core = self.core.borrow_mut();
        if core.is_none() {
            let sql = DoSql::new(&self.state).map_err(storage_error)?;
            *core = Some(MetadataCore::open(sql).map_err(api_error)?);
        }
        f(core.as_mut().expect("opened above")).map_err(api_error)
    }

    fn call(&self, path: &str, body: &[u8]) -> worker::Result<Response> {
        match path {
            "/metadata/create-topic" => cbor_answer(
                from_cbor::<CreateTopicRequest>(body)
                    .and_then(|req| self.with_core(|core| core.create_topic(&req, now_ms()))),
            ),
            "/metadata/topic" => cbor_answer(
                from_cbor::<TopicName>(body)
                    .and_then(|req| self.with_core(|core| core.topic(&req.name))),
            ),
            "/metadata/list-topics" => cbor_answer(self.with_core(|core| core.list_topics())),
            "/metadata/delete-topic" => cbor_answer(
                from_cbor::<TopicName>(body)
                    .and_then(|req| self.with_core(|core| core.delete_topic(&req.name))),
            ),
            "/metadata/allocate-producer-ids" => {
                cbor_answer(from_cbor::<AllocateProducerIds>(body).and_then(|req| {
                    self.with_core(|core| core.allocate_producer_ids(req.count))
                        .map(|ids| ProducerIdBlock {
                            start: ids.start,
                            end: ids.end,
                        })
                }))
            }
            // The registry of consumer groups (`crate::group_http`, `kafdo_metadata::groups`).
            "/metadata/register-group" => {
                cbor_answer(from_cbor::<GroupIdCall>(body).and_then(|req| {
                    self.with_core(|core| core.register_group(&req.group_id, now_ms()))
                }))
            }
            "/metadata/list-groups" => {
                cbor_answer(from_cbor::<ListGroupsCall>(body).and_then(|req| {
                    self.with_core(|core| core.list_groups(req.after.as_deref(), req.limit))
                }))
            }
            _ => cbor_answer::<()>(Err(no_such_call(path))),
        }
    }
}

#[wasm_bindgen]
impl Metadata {
    /// Called by the runtime when the object starts.
    #[wasm_bindgen(constructor)]
    pub fn new(state: DurableObjectState, _env: Env) -> Self {
        let state = State::from(state);
        Self {
            inner: Rc::new(MetadataObject {
                state,
                core: RefCell::new(None),
            }),
        }
    }

    /// Serves one call.
    pub fn fetch(&self, req: web_sys::Request) -> Promise {
        serve(&self.inner, req, |inner, path, body| async move {
            inner.call(&path, &body)
        })
    }
}
