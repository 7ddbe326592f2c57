//! The `IdempotencyKey` class: one `Idempotency-Key` of one topic (named `{topic}/{key}`), over
//! [`kafdo_broker::host::key::KeyHost`]. Its alarm forgets the expired key and, when nothing is
//! left, deletes all of the object's storage.

use std::rc::Rc;

use js_sys::Promise;
use kafdo_broker::host::key::KeyHost;
use kafdo_broker::host::Effects;
use kafdo_types::rpc::ObjectCall;
use wasm_bindgen::prelude::wasm_bindgen;
use worker::worker_sys::DurableObjectState;
use worker::{web_sys, Env, State};

use super::{now_ms, serve, serve_alarm, wrong_kind, Hosted};
use crate::sql::DoSql;

/// An idempotency-key object.
#[wasm_bindgen]
pub struct IdempotencyKey {
    inner: Rc<Hosted<KeyHost<DoSql>>>,
}

async fn apply(inner: &Hosted<KeyHost<DoSql>>, effects: Effects) {
    if effects.delete_storage {
        // Nothing is left: drop the storage (and the alarm) so an expired key costs nothing.
        if let Err(e) = inner.state().storage().delete_all().await {
            worker::console_error!("idempotency key: deleting its storage failed: {e}");
        }
    } else if let Some(at_ms) = effects.set_alarm_ms {
        inner
            .set_alarm(at_ms, "idempotency key", KeyHost::alarm_failed)
            .await;
    }
}

#[wasm_bindgen]
impl IdempotencyKey {
    /// Called by the runtime when the object starts.
    #[wasm_bindgen(constructor)]
    pub fn new(state: DurableObjectState, _env: Env) -> Self {
        Self {
            inner: Rc::new(Hosted::new(State::from(state), KeyHost::new)),
        }
    }

    /// Serves one call.
    pub fn fetch(&self, req: web_sys::Request) -> Promise {
        serve(&self.inner, req, |inner, call| async move {
            let ObjectCall::Key(call) = call else {
                return Err(wrong_kind(&call, "idempotency key"));
            };
            let served = inner.with(|host| host.serve(call, now_ms()))?;
            apply(&inner, served.effects).await;
            served.answer
        })
    }

    /// The key's expiry: forget it.
    pub fn alarm(&self) -> Promise {
        serve_alarm(&self.inner, |inner| async move {
            match inner.with(|host| host.on_alarm(now_ms())) {
                Ok(effects) => apply(&inner, effects).await,
                Err(e) => worker::console_error!("idempotency key alarm: {}", e.message),
            }
        })
    }
}
