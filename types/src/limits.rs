//! Limits on everything, in one place (TigerBeetle's habit: every queue and batch is bounded).

/// The largest record (key + value + headers) a partition accepts: 1 MiB.
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;

/// The most records one produce request may carry.
pub const MAX_RECORDS_PER_REQUEST: usize = 10_000;

/// The largest produce request body the Worker reads (records, JSON overhead included).
pub const MAX_REQUEST_BYTES: usize = 32 * 1024 * 1024;

/// The fewest and most partitions a topic may have.
pub const MIN_PARTITIONS: i32 = 1;
/// See [`MIN_PARTITIONS`].
pub const MAX_PARTITIONS: i32 = 256;

/// The longest topic name (Kafka's limit).
pub const MAX_TOPIC_NAME_LEN: usize = 249;

/// Fetch defaults and caps.
pub const DEFAULT_FETCH_MAX_RECORDS: u32 = 1_000;
/// See [`DEFAULT_FETCH_MAX_RECORDS`].
pub const MAX_FETCH_MAX_RECORDS: u32 = 10_000;
/// The default byte budget of one fetch (the first record is returned even when larger).
pub const DEFAULT_FETCH_MAX_BYTES: u32 = 1024 * 1024;
/// See [`DEFAULT_FETCH_MAX_BYTES`].
pub const MAX_FETCH_MAX_BYTES: u32 = 16 * 1024 * 1024;
/// The longest a fetch may wait for new records.
pub const MAX_FETCH_WAIT_MS: u32 = 30_000;

/// The most partitions one multi-partition call (`POST /v1/produce`, `POST /v1/fetch`) may
/// name: each is one call to a partition object (two for a fetch that waits), and a Worker's
/// subrequests per request are bounded.
pub const MAX_PARTITIONS_PER_REQUEST: usize = 256;

/// The floor of one partition's share of a multi-partition fetch's `max_bytes` (see
/// `design/http-api.md`): many partitions still each bring a useful amount.
pub const MIN_FETCH_SHARE_BYTES: u32 = 64 * 1024;

/// The largest integer a request may carry anywhere: every number crosses into JavaScript (a
/// Durable Object's SQLite binds numbers) and would lose precision beyond it. The same bound as
/// `kafdo_sql::MAX_SAFE_INTEGER`, which refuses what slips past the edge.
pub const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

/// The deepest a request body may nest (an API body nests 4 deep at most).
pub const MAX_BODY_DEPTH: usize = 16;

/// The most values (numbers, strings, arrays, maps, ...) one request body may hold, counted as it
/// is decoded, so a body of millions of tiny values cannot exhaust an isolate's memory. A
/// produce of [`MAX_RECORDS_PER_REQUEST`] records with a key, a value and a few headers each
/// holds about 100,000.
pub const MAX_BODY_VALUES: usize = 500_000;

/// The longest error message an answer carries; longer ones are cut (an error that echoes a
/// 1 MB id must not answer 1 MB).
pub const MAX_ERROR_MESSAGE_BYTES: usize = 1_024;

/// The most bytes of a request's own input an error message quotes.
pub const MAX_QUOTED_INPUT_BYTES: usize = 64;

/// Checks an id (a transactional id, a group id, a member id, a group instance id): 1 to
/// `max_len` bytes, no control characters. One rule for every id: they name Durable Objects,
/// appear in URL paths and in logs. (Topic names follow Kafka's stricter alphabet,
/// [`valid_topic_name`]; an `Idempotency-Key` is visible ASCII, as its draft standard says.)
pub fn valid_id(id: &str, max_len: usize) -> bool {
    !id.is_empty() && id.len() <= max_len && !id.chars().any(char::is_control)
}

/// `text` as an error message may quote it: at most [`MAX_QUOTED_INPUT_BYTES`], cut at a
/// character boundary and marked, in Rust's debug quotes.
pub fn quoted(text: &str) -> String {
    if text.len() <= MAX_QUOTED_INPUT_BYTES {
        return format!("{text:?}");
    }
    let mut end = MAX_QUOTED_INPUT_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{:?}… ({} bytes)", &text[..end], text.len())
}

/// Parses a number written the one way it prints (`7`, `-1`; not `07`, `+7`, ` 7`), so that one
/// value has one spelling in paths and queries.
pub fn parse_canonical<T: std::str::FromStr + ToString>(text: &str) -> Option<T> {
    text.parse::<T>().ok().filter(|n| n.to_string() == text)
}

/// Checks a topic name: Kafka's alphabet (`[a-zA-Z0-9._-]`), 1 to 249 characters, not `.` or `..`.
pub fn valid_topic_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_TOPIC_NAME_LEN
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_have_one_spelling() {
        assert_eq!(parse_canonical::<i32>("0"), Some(0));
        assert_eq!(parse_canonical::<i32>("-1"), Some(-1));
        assert_eq!(
            parse_canonical::<i64>("9007199254740991"),
            Some(MAX_SAFE_INTEGER)
        );
        for bad in ["00", "+0", "07", "-0", " 1", "1 ", "", "1e3", "0x1"] {
            assert_eq!(parse_canonical::<i32>(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn ids_follow_one_rule() {
        assert!(valid_id("orders-1/é", 249));
        assert!(!valid_id("", 249));
        assert!(!valid_id("a\0b", 249));
        assert!(!valid_id("line\nbreak", 249));
        assert!(!valid_id(&"x".repeat(250), 249));
    }

    #[test]
    fn quoting_bounds_what_an_error_repeats() {
        assert_eq!(quoted("ab"), "\"ab\"");
        let long = quoted(&"é".repeat(1_000));
        assert!(long.len() < 200, "{long}");
        assert!(long.ends_with("(2000 bytes)"), "{long}");
    }
}
