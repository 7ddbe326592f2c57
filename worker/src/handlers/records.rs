//! Produce (by topic, with or without an `Idempotency-Key`, by partition, and to many
//! partitions at once), fetch (one partition, or many at once) and deleting records.

use kafdo_broker::topics::FetchOptions;
use kafdo_broker::Runtime;
use kafdo_types::api::{
    Isolation, MultiFetchRequest, MultiProduceRequest, PartitionProduceRequest, ProduceRequest,
};
use kafdo_types::limits::{
    parse_canonical, quoted, DEFAULT_FETCH_MAX_BYTES, DEFAULT_FETCH_MAX_RECORDS,
    MAX_FETCH_MAX_BYTES, MAX_FETCH_MAX_RECORDS, MAX_FETCH_WAIT_MS, MAX_SAFE_INTEGER,
};
use kafdo_types::{ApiError, ErrorCode};

use super::{invalid, Context};
use crate::http::{Answer, HttpRequest};
use crate::routes::RecordsRoute;

/// Serves a produce or fetch route.
pub async fn serve<R: Runtime>(
    cx: &Context<R>,
    route: RecordsRoute,
    req: &HttpRequest,
) -> Result<Answer, ApiError> {
    let broker = &cx.broker;
    Ok(match route {
        RecordsRoute::ProduceTopic(name) => {
            let produce: ProduceRequest = req.body()?;
            let key = req.idempotency_key.as_deref();
            Answer::ok(cx.format, &broker.produce(&name, key, &produce).await?)
        }
        RecordsRoute::ProducePartition(name, p) => {
            let produce: PartitionProduceRequest = req.body()?;
            Answer::ok(
                cx.format,
                &broker.produce_partition(&name, p, produce).await?,
            )
        }
        RecordsRoute::Fetch(name, p) => {
            let options = parse_fetch_query(req.query_pairs())?;
            Answer::ok(cx.format, &broker.fetch(&name, p, options).await?)
        }
        RecordsRoute::DeleteRecords(name, p) => {
            let before = parse_delete_query(req.query_pairs())?;
            Answer::ok(cx.format, &broker.delete_records(&name, p, before).await?)
        }
        RecordsRoute::ProduceMany => {
            let produce: MultiProduceRequest = req.body()?;
            Answer::ok(cx.format, &broker.produce_many(produce).await?)
        }
        RecordsRoute::FetchMany => {
            let fetch: MultiFetchRequest = req.body()?;
            Answer::ok(cx.format, &broker.fetch_many(fetch).await?)
        }
    })
}

/// Parses a fetch query (`offset`, `max_records`, `max_bytes`, `isolation`, `wait_ms`), with
/// the defaults and limits of `kafdo_types::limits`. Unknown parameters are refused, so a typo
/// is an error rather than a silently ignored option; a negative offset is
/// `OFFSET_OUT_OF_RANGE`.
pub fn parse_fetch_query<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<FetchOptions, ApiError> {
    let mut q = FetchOptions {
        offset: 0,
        max_records: DEFAULT_FETCH_MAX_RECORDS,
        max_bytes: DEFAULT_FETCH_MAX_BYTES,
        isolation: Isolation::ReadCommitted,
        wait_ms: 0,
    };
    for (name, value) in pairs {
        match name {
            "offset" => {
                q.offset = parse_canonical::<i64>(value)
                    .filter(|o| *o <= MAX_SAFE_INTEGER)
                    .ok_or_else(|| {
                        invalid(format!(
                            "offset {} is not an integer from 0 to {MAX_SAFE_INTEGER}",
                            quoted(value)
                        ))
                    })?;
                if q.offset < 0 {
                    return Err(ApiError::new(
                        ErrorCode::OffsetOutOfRange,
                        format!("offset {} is negative", q.offset),
                    ));
                }
            }
            "max_records" => {
                q.max_records = positive(name, value)?.min(MAX_FETCH_MAX_RECORDS);
            }
            "max_bytes" => q.max_bytes = positive(name, value)?.min(MAX_FETCH_MAX_BYTES),
            "wait_ms" => {
                q.wait_ms = parse_canonical::<u32>(value)
                    .ok_or_else(|| {
                        invalid(format!("wait_ms {} is not a whole number", quoted(value)))
                    })?
                    .min(MAX_FETCH_WAIT_MS);
            }
            "isolation" => q.isolation = parse_isolation(value)?,
            _ => return Err(invalid(format!("unknown query parameter {}", quoted(name)))),
        }
    }
    Ok(q)
}

/// Parses the query of `DELETE /v1/topics/{t}/partitions/{p}/records`: `before` (required, 0
/// to 2^53 - 1), the offset every record before which is deleted. Unknown parameters are
/// refused.
pub fn parse_delete_query<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<i64, ApiError> {
    let mut before = None;
    for (name, value) in pairs {
        match name {
            "before" => before = Some(non_negative(name, value)?),
            _ => return Err(invalid(format!("unknown query parameter {}", quoted(name)))),
        }
    }
    before.ok_or_else(|| invalid("the query needs `before`, the offset to delete up to"))
}

/// The `isolation` query parameter: `read_committed` or `read_uncommitted`.
pub(crate) fn parse_isolation(value: &str) -> Result<Isolation, ApiError> {
    match value {
        "read_committed" => Ok(Isolation::ReadCommitted),
        "read_uncommitted" => Ok(Isolation::ReadUncommitted),
        _ => Err(invalid(format!(
            "isolation {} is neither read_committed nor read_uncommitted",
            quoted(value)
        ))),
    }
}

/// A query parameter that is an integer from 0 to 2^53 - 1 (an offset, a timestamp).
pub(crate) fn non_negative(name: &str, value: &str) -> Result<i64, ApiError> {
    parse_canonical::<i64>(value)
        .filter(|v| (0..=MAX_SAFE_INTEGER).contains(v))
        .ok_or_else(|| {
            invalid(format!(
                "{name} {} is not an integer from 0 to {MAX_SAFE_INTEGER}",
                quoted(value)
            ))
        })
}

fn positive(name: &str, value: &str) -> Result<u32, ApiError> {
    match parse_canonical::<u32>(value) {
        Some(v) if v > 0 => Ok(v),
        _ => Err(invalid(format!(
            "{name} {} is not a positive integer",
            quoted(value)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delete_query_needs_before_and_nothing_else() {
        assert_eq!(parse_delete_query([("before", "7")]).unwrap(), 7);
        for bad in [
            &[][..],
            &[("before", "-1")],
            &[("before", "x")],
            &[("before", "07")],
            &[("before", "9007199254740992")],
            &[("before", "1"), ("offset", "1")],
        ] {
            let e = parse_delete_query(bad.iter().copied()).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidRequest, "{bad:?}");
        }
    }

    #[test]
    fn fetch_query_defaults_and_limits() {
        let q = parse_fetch_query([]).unwrap();
        assert_eq!(q.offset, 0);
        assert_eq!(q.max_records, DEFAULT_FETCH_MAX_RECORDS);
        assert_eq!(q.max_bytes, DEFAULT_FETCH_MAX_BYTES);
        assert_eq!(q.isolation, Isolation::ReadCommitted);
        assert_eq!(q.wait_ms, 0);
        let q = parse_fetch_query([
            ("offset", "7"),
            ("max_records", "99999"),
            ("wait_ms", "100000"),
            ("isolation", "read_uncommitted"),
        ])
        .unwrap();
        assert_eq!(
            (q.offset, q.max_records, q.wait_ms, q.isolation),
            (
                7,
                MAX_FETCH_MAX_RECORDS,
                MAX_FETCH_WAIT_MS,
                Isolation::ReadUncommitted
            )
        );
        let code =
            |pairs: &[(&str, &str)]| parse_fetch_query(pairs.iter().copied()).unwrap_err().code;
        assert_eq!(code(&[("offset", "-1")]), ErrorCode::OffsetOutOfRange);
        assert_eq!(code(&[("offset", "x")]), ErrorCode::InvalidRequest);
        assert_eq!(code(&[("max_records", "0")]), ErrorCode::InvalidRequest);
        assert_eq!(code(&[("isolation", "dirty")]), ErrorCode::InvalidRequest);
        assert_eq!(code(&[("ofset", "1")]), ErrorCode::InvalidRequest);
        assert_eq!(code(&[("offset", "+1")]), ErrorCode::InvalidRequest);
        assert_eq!(code(&[("offset", "01")]), ErrorCode::InvalidRequest);
        assert_eq!(
            code(&[("offset", "9007199254740992")]),
            ErrorCode::InvalidRequest
        );
        assert!(parse_fetch_query([("offset", "9007199254740991")]).is_ok());
        assert_eq!(code(&[("max_records", "010")]), ErrorCode::InvalidRequest);
        assert_eq!(code(&[("wait_ms", "+5")]), ErrorCode::InvalidRequest);
    }
}
