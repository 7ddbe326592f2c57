//! Query strings: strategies for their pairs, and the query property ([`check_query`]) over
//! the three parsers the handlers use.

use kafdo_broker::groups::MAX_GROUPS_PER_PAGE;
use kafdo_types::limits::{
    parse_canonical, MAX_ERROR_MESSAGE_BYTES, MAX_FETCH_MAX_BYTES, MAX_FETCH_MAX_RECORDS,
    MAX_FETCH_WAIT_MS, MAX_SAFE_INTEGER,
};
use kafdo_types::ErrorCode;
use kafdo_worker::handlers::groups::{parse_list_query, parse_offsets_query};
use kafdo_worker::handlers::records::parse_fetch_query;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;

use crate::paths::number;
use crate::tree::hostile_string;

/// The parser a query goes to.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum QueryKind {
    /// `GET /v1/topics/{t}/partitions/{p}/records`.
    Fetch,
    /// `GET /v1/groups/{g}/offsets`.
    Offsets,
    /// `GET /v1/groups`.
    List,
}

/// Every parameter name the parsers know, and near misses.
const NAMES: &[&str] = &[
    "offset",
    "max_records",
    "max_bytes",
    "isolation",
    "wait_ms",
    "require_stable",
    "topic",
    "partitions",
    "after",
    "limit",
    "Offset",
    "offset ",
    "ofset",
    "",
];

/// A value: numbers of every spelling, the parsers' words, partition lists, anything.
pub fn value() -> BoxedStrategy<String> {
    prop_oneof![
        4 => number(),
        2 => select(&[
            "read_committed", "read_uncommitted", "READ_COMMITTED", "true", "false", "1", "0",
            "yes", "", "t1", "g-live",
        ][..])
        .prop_map(str::to_owned),
        2 => select(&[
            "0,1", "0, 1", ",", "-1", "1,,2", "2147483648", "+1", "01", " 1", "0,-0", "1e1",
            "0x1", "١",
        ][..])
        .prop_map(str::to_owned),
        1 => vec(number(), 1..4).prop_map(|n| n.join(",")),
        1 => hostile_string(),
    ]
    .boxed()
}

/// A query's pairs: known names mostly, sometimes repeated, sometimes unknown.
pub fn pairs() -> BoxedStrategy<Vec<(String, String)>> {
    let name = prop_oneof![
        6 => select(NAMES).prop_map(str::to_owned),
        1 => hostile_string(),
    ];
    vec((name, value()), 0..6).boxed()
}

/// One input of the query target.
#[derive(Clone, Debug)]
pub struct QueryInput {
    /// Which parser.
    pub kind: QueryKind,
    /// The pairs, percent-decoded as the entry point gives them.
    pub pairs: Vec<(String, String)>,
}

/// Queries for each parser.
pub fn query_input() -> BoxedStrategy<QueryInput> {
    (
        prop_oneof![
            Just(QueryKind::Fetch),
            Just(QueryKind::Offsets),
            Just(QueryKind::List)
        ],
        pairs(),
    )
        .prop_map(|(kind, pairs)| QueryInput { kind, pairs })
        .boxed()
}

/// The query property: parsing never panics; a refusal is `INVALID_REQUEST` (a negative fetch
/// offset `OFFSET_OUT_OF_RANGE`) with a bounded message; what is accepted is within the
/// limits: a fetch offset from 0 to 2^53-1 written canonically, the caps applied, an offset
/// filter that parses with every partition written the one way it prints, a page size from 1
/// to 1,000.
pub fn check_query(input: &QueryInput) -> Result<(), TestCaseError> {
    let pairs = || input.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    let last = |name: &str| {
        input
            .pairs
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let refusal = match input.kind {
        QueryKind::Fetch => match parse_fetch_query(pairs()) {
            Ok(q) => {
                prop_assert!(
                    (0..=MAX_SAFE_INTEGER).contains(&q.offset),
                    "offset {}",
                    q.offset
                );
                if let Some(v) = last("offset") {
                    prop_assert_eq!(
                        parse_canonical::<i64>(v),
                        Some(q.offset),
                        "offset {:?} read as {}",
                        v,
                        q.offset
                    );
                }
                prop_assert!((1..=MAX_FETCH_MAX_RECORDS).contains(&q.max_records));
                prop_assert!((1..=MAX_FETCH_MAX_BYTES).contains(&q.max_bytes));
                prop_assert!(q.wait_ms <= MAX_FETCH_WAIT_MS);
                None
            }
            Err(e) => Some(e),
        },
        QueryKind::Offsets => match parse_offsets_query(pairs()) {
            Ok(q) => {
                match q.filter() {
                    Ok(filter) => {
                        let partitions = filter.and_then(|f| f.partitions).unwrap_or_default();
                        prop_assert!(partitions.iter().all(|p| *p >= 0), "{:?}", partitions);
                    }
                    Err(e) => prop_assert!(false, "accepted, but its filter is refused: {e}"),
                }
                // Every number in a query is written the one way it prints.
                if let Some(list) = &q.partitions {
                    prop_assert!(
                        partitions_are_canonical(list),
                        "partitions={:?} accepted",
                        list
                    );
                }
                None
            }
            Err(e) => Some(e),
        },
        QueryKind::List => match parse_list_query(pairs()) {
            Ok(q) => {
                prop_assert!(
                    (1..=MAX_GROUPS_PER_PAGE).contains(&q.limit),
                    "limit {}",
                    q.limit
                );
                None
            }
            Err(e) => Some(e),
        },
    };
    if let Some(e) = refusal {
        let negative_offset =
            input.kind == QueryKind::Fetch && e.code == ErrorCode::OffsetOutOfRange;
        prop_assert!(
            e.code == ErrorCode::InvalidRequest || negative_offset,
            "refused with {:?}: {}",
            e.code,
            e.message
        );
        prop_assert!(e.message.len() <= MAX_ERROR_MESSAGE_BYTES);
    }
    Ok(())
}

/// Whether every number of a `partitions` list is written the one way it prints.
fn partitions_are_canonical(list: &str) -> bool {
    list.split(',').all(|p| parse_canonical::<i32>(p).is_some())
}
