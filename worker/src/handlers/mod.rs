//! The handlers: each decodes what its route needs (body, query), calls the broker, and encodes
//! the answer. They are generic over the broker's [`Runtime`], so they build and test natively;
//! only the entry point knows the runtime is Cloudflare's.
//!
//! | module | routes |
//! | --- | --- |
//! | [`topics`] | `/v1/topics`, a topic, a partition's offsets |
//! | [`records`] | produce (by topic, by partition) and fetch |
//! | [`transactions`] | `/v1/producers`, `/v1/transactions/...`, `/v1/admin/transactions/...` |
//! | [`groups`] | `/v1/groups/...` |
//! | [`debug`] | `/bench/...` and `/debug/...` |

pub mod debug;
pub mod groups;
pub mod records;
pub mod topics;
pub mod transactions;

use kafdo_broker::{Broker, Runtime};
use kafdo_types::api::Health;
use kafdo_types::ApiError;

use crate::codec::Format;
use crate::http::{Answer, HttpRequest};
use crate::routes::Route;

/// What a handler works with.
pub struct Context<R> {
    /// The broker over the runtime.
    pub broker: Broker<R>,
    /// The answer's format (from `Accept`).
    pub format: Format,
    /// Whether the deliberate panic of the robustness tests is armed (the `KAFDO_DEBUG_PANIC`
    /// variable).
    pub debug_panic: bool,
}

/// Serves a routed request. An error becomes the error answer with its code's status.
pub async fn serve<R: Runtime>(cx: &Context<R>, route: Route, req: &HttpRequest) -> Answer {
    let answer = match route {
        Route::Health => Ok(Answer::ok(
            cx.format,
            &Health {
                status: "ok".into(),
            },
        )),
        Route::Topics(route) => topics::serve(cx, route, req).await,
        Route::Records(route) => records::serve(cx, route, req).await,
        Route::Transactions(route) => transactions::serve(cx, route, req).await,
        Route::Groups(route) => groups::serve(cx, route, req).await,
        Route::Debug(route) => debug::serve(cx, route, req).await,
    };
    answer.unwrap_or_else(|e: ApiError| Answer::error(cx.format, &e))
}

/// Shorthand for an `INVALID_REQUEST` error.
pub(crate) fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(kafdo_types::ErrorCode::InvalidRequest, message)
}
