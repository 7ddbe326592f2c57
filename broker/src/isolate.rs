//! What one isolate remembers between requests: caches that spare object calls on the hot path.
//! Losing any of it (the isolate is evicted) costs only calls, never correctness.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::ops::Range;

use kafdo_types::rpc::{ProducerIdMarks, TopicMetadata, KEY_PRODUCER_ID_BASE};

/// How long an isolate trusts its copy of a topic's metadata.
pub const TOPIC_CACHE_MS: i64 = 2_000;

/// The most topics one isolate caches (a limit on memory, far above what a Worker sees).
pub const TOPIC_CACHE_MAX_ENTRIES: usize = 10_000;

/// The most group ids an isolate remembers as registered (cleared when full: forgetting only
/// costs one idempotent call).
pub const REGISTERED_GROUPS_MAX_ENTRIES: usize = 10_000;

/// One isolate's memory.
pub struct Isolate {
    /// Topic name to (metadata, when it was fetched).
    pub(crate) topics: RefCell<HashMap<String, (TopicMetadata, i64)>>,
    /// The rest of this isolate's block of key producer ids (`Idempotency-Key` produce).
    pub(crate) key_producer_ids: RefCell<Range<i64>>,
    /// The producer-id marks this isolate last learned: every id below each was handed out
    /// (marks only rise, so an old copy is still true, only short).
    pub(crate) producer_id_marks: Cell<ProducerIdMarks>,
    /// Group ids this isolate registered with the metadata object.
    pub(crate) registered_groups: RefCell<HashSet<String>>,
}

impl Default for Isolate {
    fn default() -> Self {
        Self {
            topics: RefCell::default(),
            key_producer_ids: RefCell::new(0..0),
            producer_id_marks: Cell::new(ProducerIdMarks {
                client_below: 0,
                key_below: KEY_PRODUCER_ID_BASE,
            }),
            registered_groups: RefCell::default(),
        }
    }
}

impl Isolate {
    /// A fresh isolate (nothing cached).
    pub fn new() -> Self {
        Self::default()
    }

    /// Raises the marks this isolate knows to at least `marks`.
    pub(crate) fn learn_marks(&self, marks: ProducerIdMarks) {
        let known = self.producer_id_marks.get();
        self.producer_id_marks.set(ProducerIdMarks {
            client_below: known.client_below.max(marks.client_below),
            key_below: known.key_below.max(marks.key_below),
        });
    }

    pub(crate) fn cached_topic(&self, name: &str, now_ms: i64) -> Option<TopicMetadata> {
        self.topics
            .borrow()
            .get(name)
            .filter(|(_, at)| now_ms - at < TOPIC_CACHE_MS)
            .map(|(t, _)| t.clone())
    }

    pub(crate) fn remember_topic(&self, topic: &TopicMetadata, now_ms: i64) {
        let mut topics = self.topics.borrow_mut();
        if topics.len() >= TOPIC_CACHE_MAX_ENTRIES {
            topics.clear();
        }
        topics.insert(topic.name.clone(), (topic.clone(), now_ms));
    }

    pub(crate) fn forget_topic(&self, name: &str) {
        self.topics.borrow_mut().remove(name);
    }

    pub(crate) fn group_registered(&self, group_id: &str) -> bool {
        self.registered_groups.borrow().contains(group_id)
    }

    pub(crate) fn remember_group(&self, group_id: &str) {
        let mut groups = self.registered_groups.borrow_mut();
        if groups.len() >= REGISTERED_GROUPS_MAX_ENTRIES {
            groups.clear();
        }
        groups.insert(group_id.to_owned());
    }
}
