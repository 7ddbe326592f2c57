//! The `Group` class: one consumer group (named by the group id), over
//! [`kafdo_broker::host::group::GroupHost`], which says when to arm the alarm.

use std::rc::Rc;

use js_sys::Promise;
use kafdo_broker::host::group::GroupHost;
use kafdo_broker::host::Effects;
use kafdo_types::rpc::ObjectCall;
use wasm_bindgen::prelude::wasm_bindgen;
use worker::worker_sys::DurableObjectState;
use worker::{web_sys, Env, State};

use super::{now_ms, serve, serve_alarm, wrong_kind, Hosted};
use crate::sql::DoSql;

/// A consumer group object.
#[wasm_bindgen]
pub struct Group {
    /// Shared with the task that serves each request (see `crate::guard`).
    inner: Rc<Hosted<GroupHost<DoSql>>>,
}

async fn apply(inner: &Hosted<GroupHost<DoSql>>, effects: Effects) {
    if let Some(at_ms) = effects.set_alarm_ms {
        inner
            .set_alarm(at_ms, "group", GroupHost::alarm_failed)
            .await;
    }
}

#[wasm_bindgen]
impl Group {
    /// Called by the runtime when the object starts.
    #[wasm_bindgen(constructor)]
    pub fn new(state: DurableObjectState, _env: Env) -> Self {
        Self {
            inner: Rc::new(Hosted::new(State::from(state), GroupHost::new)),
        }
    }

    /// Serves one call.
    pub fn fetch(&self, req: web_sys::Request) -> Promise {
        serve(&self.inner, req, |inner, call| async move {
            let ObjectCall::Group(call) = call else {
                return Err(wrong_kind(&call, "group"));
            };
            let served = inner.with(|host| host.serve(call, now_ms()))?;
            apply(&inner, served.effects).await;
            served.answer
        })
    }

    /// Called by the runtime when the alarm fires: session timeouts.
    pub fn alarm(&self) -> Promise {
        serve_alarm(&self.inner, |inner| async move {
            match inner.with(|host| host.on_alarm(now_ms())) {
                Ok(effects) => apply(&inner, effects).await,
                Err(e) => worker::console_error!("group alarm: {}", e.message),
            }
        })
    }
}
