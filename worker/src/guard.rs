//! Turning a panic into an error answer instead of a request that never answers.
//!
//! A panic in wasm32 aborts: the instance traps (`unreachable`) in the middle of polling a
//! future. wasm-bindgen's abort handling then resets the instance at the next call into it,
//! and every closure of the old instance refuses to run ("Cannot invoke closure from previous
//! WASM instance"). So no future of the isolate ever resumes: with worker's macros
//! (`#[event(fetch)]`, `#[durable_object]`), whose answers are promises driven by Rust futures,
//! the request that panicked and every other request in flight in the isolate (the router
//! waiting on that object, often in the same isolate) would never answer.
//!
//! The entry points therefore answer with promises built here ([`guarded`]): a plain JS
//! promise whose `resolve` function (a JS function, not a Rust closure) is kept in a registry
//! while the request's future runs as a task of its own. The panic hook, which runs before the
//! trap while the instance is still sound, resolves every registered promise with its error
//! answer (500 `UNKNOWN_SERVER_ERROR`). Those answers then travel in JS alone, so the reset
//! cannot lose them. Each error answer is built when its request starts, in that request's
//! context: the runtime refuses a response object that was created while serving another
//! request (the one that panicked), so the hook cannot build them itself, and they cannot
//! carry the panic message (it is in the log). Every request in flight in the isolate gets the
//! error, not only the one that panicked: they all lose their state with the reset anyway.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;

use js_sys::{Function, Promise};
use wasm_bindgen::JsValue;

/// A request in flight: how to answer it, and what to answer if the instance panics.
struct InFlight {
    resolve: Function,
    panic_answer: JsValue,
}

thread_local! {
    static IN_FLIGHT: RefCell<HashMap<u64, InFlight>> = RefCell::new(HashMap::new());
    static NEXT_ID: Cell<u64> = const { Cell::new(0) };
    static HOOK_INSTALLED: Cell<bool> = const { Cell::new(false) };
}

/// Installs the panic hook (once per instance): log the panic to the console, then answer
/// every guarded request in flight with its error answer.
pub fn install_panic_hook() {
    if HOOK_INSTALLED.with(|h| h.replace(true)) {
        return;
    }
    std::panic::set_hook(Box::new(|info| {
        console_error_panic_hook::hook(info);
        // try_with and try_borrow_mut: a panic inside the registry itself must not recurse.
        let drained: Vec<InFlight> = IN_FLIGHT
            .try_with(|in_flight| {
                in_flight
                    .try_borrow_mut()
                    .map(|mut m| m.drain().map(|(_, v)| v).collect())
                    .unwrap_or_default()
            })
            .unwrap_or_default();
        for request in drained {
            let _ = request
                .resolve
                .call1(&JsValue::UNDEFINED, &request.panic_answer);
        }
    }));
}

/// Runs `work` as a task of its own and answers a promise of its output; if any task of this
/// instance panics first, the promise resolves to `panic_answer` instead.
pub fn guarded(work: impl Future<Output = JsValue> + 'static, panic_answer: JsValue) -> Promise {
    install_panic_hook();
    let mut resolve = None;
    let promise = Promise::new(&mut |res, _rej| resolve = Some(res));
    let resolve = resolve.expect("the Promise executor runs synchronously");
    let id = NEXT_ID.with(|n| {
        let id = n.get();
        n.set(id + 1);
        id
    });
    IN_FLIGHT.with(|in_flight| {
        in_flight.borrow_mut().insert(
            id,
            InFlight {
                resolve,
                panic_answer,
            },
        )
    });
    wasm_bindgen_futures::spawn_local(async move {
        let answer = work.await;
        // Gone from the registry only if a panic already answered it.
        if let Some(request) = IN_FLIGHT.with(|in_flight| in_flight.borrow_mut().remove(&id)) {
            let _ = request.resolve.call1(&JsValue::UNDEFINED, &answer);
        }
    });
    promise
}
