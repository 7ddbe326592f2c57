//! The benchmark's baseline (`POST /bench/bare-append/{n}`) and the SQL binding's self-test
//! (`POST /debug/sql-rollback`), over the bench objects.

use kafdo_broker::{ask, Runtime, OBJECT_CALL_TIMEOUT_MS};
use kafdo_types::api::PartitionProduceRequest;
use kafdo_types::rpc::{BareAppendRequest, Object, PanicRequest, SqlRollbackRequest};
use kafdo_types::ApiError;

use super::Context;
use crate::http::{Answer, HttpRequest};
use crate::routes::DebugRoute;

/// The bench object that panics on purpose when the debug panic is armed.
pub const PANIC_BENCH_OBJECT: u32 = 666;

/// The Worker variable that arms the deliberate panic (`wrangler dev --var
/// KAFDO_DEBUG_PANIC:1`). Without it no request can make the Worker panic on purpose: a panic
/// resets the isolate and fails every request in flight there.
pub const DEBUG_PANIC_VAR: &str = "KAFDO_DEBUG_PANIC";

/// Serves a bench or debug route.
pub async fn serve<R: Runtime>(
    cx: &Context<R>,
    route: DebugRoute,
    req: &HttpRequest,
) -> Result<Answer, ApiError> {
    let runtime = cx.broker.runtime();
    Ok(match route {
        DebugRoute::BareAppend(n) => {
            let produce: PartitionProduceRequest = req.body()?;
            kafdo_types::record::check_records(&produce.records, false)
                .map_err(|e| ApiError::new(e.code(), e.to_string()))?;
            let object = Object::Bench(format!("bench-{n}"));
            // Only with the variable set (by the robustness tests, never in wrangler.toml):
            // object 666 panics on purpose, to prove a panic answers 500 instead of hanging.
            if n == PANIC_BENCH_OBJECT && cx.debug_panic {
                ask(runtime, object, PanicRequest, OBJECT_CALL_TIMEOUT_MS).await?;
                return Err(ApiError::new(
                    kafdo_types::ErrorCode::UnknownServerError,
                    "the deliberate panic did not happen",
                ));
            }
            let append = BareAppendRequest {
                records: produce.records,
            };
            Answer::ok(
                cx.format,
                &ask(runtime, object, append, OBJECT_CALL_TIMEOUT_MS).await?,
            )
        }
        DebugRoute::SqlRollback => {
            let object = Object::Bench("debug-sql-rollback".into());
            let report = ask(runtime, object, SqlRollbackRequest, OBJECT_CALL_TIMEOUT_MS).await?;
            Answer::ok(cx.format, &report)
        }
    })
}
