//! Producers, transactions and the transaction admin.

use kafdo_broker::Runtime;
use kafdo_types::api::InitProducerRequest;
use kafdo_types::txn::{AddOffsetsRequest, AddPartitionsRequest, EndTxnRequest};
use kafdo_types::ApiError;

use super::Context;
use crate::http::{Answer, HttpRequest};
use crate::routes::TxnRoute;

/// The answer of a call that answers nothing but success: `{}`.
fn done<R>(cx: &Context<R>) -> Answer {
    Answer::ok(cx.format, &serde_json::Map::new())
}

/// Serves a producer or transaction route.
pub async fn serve<R: Runtime>(
    cx: &Context<R>,
    route: TxnRoute,
    req: &HttpRequest,
) -> Result<Answer, ApiError> {
    let broker = &cx.broker;
    Ok(match route {
        TxnRoute::InitProducer => {
            let init: InitProducerRequest = req.body()?;
            Answer::ok(cx.format, &broker.init_producer(init).await?)
        }
        TxnRoute::AddPartitions(id) => {
            let add: AddPartitionsRequest = req.body()?;
            broker.add_partitions_to_txn(&id, add).await?;
            done(cx)
        }
        TxnRoute::AddOffsets(id) => {
            let add: AddOffsetsRequest = req.body()?;
            broker.add_offsets_to_txn(&id, add).await?;
            done(cx)
        }
        TxnRoute::End(id, result) => {
            let end: EndTxnRequest = req.body()?;
            Answer::ok(cx.format, &broker.end_txn(&id, end, result).await?)
        }
        TxnRoute::Describe(id) => Answer::ok(cx.format, &broker.describe_txn(&id).await?),
        TxnRoute::AdminAbort(id) => Answer::ok(cx.format, &broker.admin_abort_txn(&id).await?),
        TxnRoute::ListOpen => Answer::ok(cx.format, &broker.open_transactions().await?),
    })
}
