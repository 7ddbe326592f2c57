//! What one isolate remembers between requests: caches that spare object calls on the hot path.
//! Losing any of it (the isolate is evicted) costs only calls, never correctness.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::ops::Range;

use kafdo_types::rpc::TopicMetadata;

/// How long an isolate trusts its copy of a topic's metadata.
pub const TOPIC_CACHE_MS: i64 = 2_000;

/// The most topics one isolate caches (a limit on memory, far above what a Worker sees).
pub const TOPIC_CACHE_MAX_ENTRIES: usize = 10_000;

/// The most group ids an isolate remembers as registered (cleared when full: forgetting only
/// costs one idempotent call).
pub const REGISTERED_GROUPS_MAX_ENTRIES: usize = 10_000;

/// One isolate's memory.
#[derive(Default)]
pub struct Isolate {
    /// Topic name to (metadata, when it was fetched).
    pub(crate) topics: RefCell<HashMap<String, (TopicMetadata, i64)>>,
    /// The rest of this isolate's block of producer ids.
    pub(crate) producer_ids: RefCell<Range<i64>>,
    /// Group ids this isolate registered with the metadata object.
    pub(crate) registered_groups: RefCell<HashSet<String>>,
}

impl Isolate {
    /// A fresh isolate (nothing cached).
    pub fn new() -> Self {
        Self::default()
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
