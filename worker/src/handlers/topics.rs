//! `/v1/topics`, a topic, and a partition's offsets.

use kafdo_broker::Runtime;
use kafdo_types::api::{
    canonical_topic_id, CreatePartitionsRequest, CreateTopicRequest, Isolation,
};
use kafdo_types::limits::quoted;
use kafdo_types::ApiError;

use super::records::{non_negative, parse_isolation};
use super::{invalid, Context};
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
            let topic_id = parse_delete_topic_query(req.query_pairs())?;
            broker.delete_topic(&name, topic_id.as_deref()).await?;
            Answer::no_content()
        }
        TopicsRoute::AddPartitions(name) => {
            let add: CreatePartitionsRequest = req.body()?;
            Answer::ok(cx.format, &broker.add_partitions(&name, add.count).await?)
        }
        TopicsRoute::PartitionInfo(name, p) => {
            Answer::ok(cx.format, &broker.partition_info(&name, p).await?)
        }
        TopicsRoute::Producers(name, p) => {
            Answer::ok(cx.format, &broker.partition_producers(&name, p).await?)
        }
        TopicsRoute::OffsetForTimestamp(name, p) => {
            let (timestamp, isolation) = parse_timestamp_query(req.query_pairs())?;
            Answer::ok(
                cx.format,
                &broker
                    .offset_for_timestamp(&name, p, timestamp, isolation)
                    .await?,
            )
        }
    })
}

/// Parses the query of `DELETE /v1/topics/{t}`: `topic_id` (optional, a UUID) deletes only that
/// incarnation. Unknown parameters are refused.
pub fn parse_delete_topic_query<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<Option<String>, ApiError> {
    let mut topic_id = None;
    for (name, value) in pairs {
        match name {
            "topic_id" => {
                topic_id =
                    Some(canonical_topic_id(value).ok_or_else(|| {
                        invalid(format!("topic_id {} is not a UUID", quoted(value)))
                    })?)
            }
            _ => return Err(invalid(format!("unknown query parameter {}", quoted(name)))),
        }
    }
    Ok(topic_id)
}

/// Parses the query of `GET /v1/topics/{t}/partitions/{p}/offsets`: `timestamp` (required, ms
/// since the epoch, 0 to 2^53 - 1) and `isolation` (read_committed by default, as for fetch).
/// Unknown parameters are refused.
pub fn parse_timestamp_query<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<(i64, Isolation), ApiError> {
    let (mut timestamp, mut isolation) = (None, Isolation::ReadCommitted);
    for (name, value) in pairs {
        match name {
            "timestamp" => timestamp = Some(non_negative(name, value)?),
            "isolation" => isolation = parse_isolation(value)?,
            _ => return Err(invalid(format!("unknown query parameter {}", quoted(name)))),
        }
    }
    let timestamp = timestamp.ok_or_else(|| invalid("the query needs a timestamp"))?;
    Ok((timestamp, isolation))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafdo_types::ErrorCode;

    #[test]
    fn delete_topic_query_takes_a_uuid_only() {
        assert_eq!(parse_delete_topic_query([]).unwrap(), None);
        assert_eq!(
            parse_delete_topic_query([("topic_id", "6B61666D-6F00-4C0B-9A55-7E5070696373")])
                .unwrap()
                .as_deref(),
            Some("6b61666d-6f00-4c0b-9a55-7e5070696373")
        );
        for bad in [&[("topic_id", "3-orders")][..], &[("name", "x")]] {
            let e = parse_delete_topic_query(bad.iter().copied()).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidRequest, "{bad:?}");
        }
    }

    #[test]
    fn timestamp_query_needs_a_timestamp_and_refuses_the_rest() {
        assert_eq!(
            parse_timestamp_query([("timestamp", "5")]).unwrap(),
            (5, Isolation::ReadCommitted)
        );
        assert_eq!(
            parse_timestamp_query([("isolation", "read_uncommitted"), ("timestamp", "0")]).unwrap(),
            (0, Isolation::ReadUncommitted)
        );
        for bad in [
            &[][..],
            &[("timestamp", "-1")],
            &[("timestamp", "1.5")],
            &[("timestamp", "9007199254740992")],
            &[("timestamp", "05")],
            &[("timestamp", "5"), ("isolation", "dirty")],
            &[("timestamp", "5"), ("offset", "0")],
        ] {
            let e = parse_timestamp_query(bad.iter().copied()).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidRequest, "{bad:?}");
        }
    }
}
