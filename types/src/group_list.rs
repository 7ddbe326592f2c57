//! `GET /v1/groups`: the consumer groups of the deployment, in pages.
//!
//! Every group registers its id with the cluster metadata before its first member joins (or
//! its first administrator commit), so the listing shows every group that was ever used. A
//! page holds at most `limit` ids (1,000 at most, the default) in byte order; when `next` is
//! present, `?after={next}` asks for the following page.

use serde::{Deserialize, Serialize};

/// The answer to `GET /v1/groups`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupList {
    /// The groups of this page, by group id.
    pub groups: Vec<GroupListing>,
    /// The cursor of the next page (`?after=`), present when this page is full.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// One group in a [`GroupList`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupListing {
    /// The group id.
    pub group_id: String,
}
