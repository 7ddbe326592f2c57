//! `/v1/topics`, a topic, and a partition's offsets.

use kafdo_broker::Runtime;
use kafdo_types::api::CreateTopicRequest;
use kafdo_types::ApiError;

use super::Context;
use crate::http::{Answer, HttpRequest};
use crate::routes::TopicsRoute;

/// Serves a topic route.
pub async fn serve<R: Runtime>(
    cx: &Context<R>,
    route: TopicsRoute,
    req: &HttpRequest,
) -> Result<Answer, ApiError> {
    let broker = &cx.broker;
    Ok(match route {
        TopicsRoute::Create => {
            let create: CreateTopicRequest = req.body()?;
            Answer::with_status(cx.format, 201, &broker.create_topic(create).await?)
        }
        TopicsRoute::List => Answer::ok(cx.format, &broker.list_topics().await?),
        TopicsRoute::Describe(name) => Answer::ok(cx.format, &broker.describe_topic(&name).await?),
        TopicsRoute::Delete(name) => {
            broker.delete_topic(&name).await?;
            Answer::no_content()
        }
        TopicsRoute::PartitionInfo(name, p) => {
            Answer::ok(cx.format, &broker.partition_info(&name, p).await?)
        }
    })
}
