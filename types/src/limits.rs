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
