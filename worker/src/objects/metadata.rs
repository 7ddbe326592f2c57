//! The `Metadata` class: the one object (named `cluster`), over
//! [`kafdo_broker::host::metadata::MetadataHost`].

use std::rc::Rc;

use js_sys::Promise;
use kafdo_broker::host::metadata::MetadataHost;
use kafdo_types::rpc::ObjectCall;
use wasm_bindgen::prelude::wasm_bindgen;
use worker::worker_sys::DurableObjectState;
use worker::{web_sys, Env, State};

use super::{now_ms, serve, wrong_kind, Hosted};
use crate::sql::DoSql;

/// The cluster metadata object.
#[wasm_bindgen]
pub struct Metadata {
    /// Shared with the task that serves each request (see `crate::guard`).
    inner: Rc<Hosted<MetadataHost<DoSql>>>,
}

#[wasm_bindgen]
impl Metadata {
    /// Called by the runtime when the object starts.
    #[wasm_bindgen(constructor)]
    pub fn new(state: DurableObjectState, _env: Env) -> Self {
        Self {
            inner: Rc::new(Hosted::new(State::from(state), |sql| {
                MetadataHost::new(sql)
            })),
        }
    }

    /// Serves one call.
    pub fn fetch(&self, req: web_sys::Request) -> Promise {
        serve(&self.inner, req, |inner, call| async move {
            let ObjectCall::Metadata(call) = call else {
                return Err(wrong_kind(&call, "metadata"));
            };
            inner.with(|host| host.serve(call, now_ms()).answer)?
        })
    }
}
