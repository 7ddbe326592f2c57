//! The cluster metadata core: topics and producer-id allocation.
