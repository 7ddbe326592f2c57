//! The registry of consumer groups, for `GET /v1/groups`.
//!
//! A group is one Durable Object of its own, and no object can enumerate the others; so each
//! group registers its id here before its first join (or first administrator commit). The
//! registry holds one row per group id: it grows with the number of groups, never with the
//! messages or commits of a group. Registering is idempotent (the group object registers again
//! after each restart of its instance, which costs one call per restart and per group), and a
//! listing pages through the ids in order with a cursor (`after`), so no answer is unbounded.
//!
//! ```sql
//! consumer_groups(group_id TEXT PRIMARY KEY, created_ms)
//! ```

use kafdo_sql::{Param, Sql};

use crate::{Metadata, MetadataError};

/// The most groups one deployment registers (a limit on the registry, not on a group).
pub const MAX_GROUPS: i64 = 1_000_000;

/// The most group ids one listing answers.
pub const MAX_GROUPS_PER_LISTING: u32 = 1_000;

/// The longest group id, in bytes.
pub const MAX_GROUP_ID_LEN: usize = 255;

impl<S: Sql> Metadata<S> {
    /// Registers a group id so that [`Metadata::list_groups`] shows it. Registering a group
    /// that is registered already changes nothing.
    pub fn register_group(&mut self, group_id: &str, now_ms: i64) -> Result<(), MetadataError> {
        if group_id.is_empty() || group_id.len() > MAX_GROUP_ID_LEN {
            return Err(MetadataError::InvalidRequest(format!(
                "a group id has 1 to {MAX_GROUP_ID_LEN} bytes, not {}",
                group_id.len()
            )));
        }
        self.sql.transaction(|| {
            let known = self.sql.first(
                "SELECT 1 FROM consumer_groups WHERE group_id = ?",
                &[Param::Text(group_id)],
            )?;
            if known.is_some() {
                return Ok(());
            }
            let count = self
                .sql
                .first("SELECT COUNT(*) FROM consumer_groups", &[])?
                .expect("COUNT(*) always answers one row")
                .int(0);
            if count >= MAX_GROUPS {
                return Err(MetadataError::InvalidRequest(format!(
                    "this deployment has {MAX_GROUPS} consumer groups, the most it registers"
                )));
            }
            self.sql.run(
                "INSERT INTO consumer_groups (group_id, created_ms) VALUES (?, ?)",
                &[Param::Text(group_id), now_ms.into()],
            )?;
            Ok(())
        })
    }

    /// Registered group ids in order, those after `after` (all when `None`), at most `limit`
    /// (capped at [`MAX_GROUPS_PER_LISTING`]). A caller pages on by passing the last id it got.
    pub fn list_groups(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, MetadataError> {
        let limit = limit.clamp(1, MAX_GROUPS_PER_LISTING);
        let rows = self.sql.exec(
            "SELECT group_id FROM consumer_groups WHERE ? IS NULL OR group_id > ?
             ORDER BY group_id LIMIT ?",
            &[after.into(), after.into(), i64::from(limit).into()],
        )?;
        Ok(rows.iter().map(|r| r.text(0).to_owned()).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafdo_sql::Sqlite;
    use kafdo_types::ErrorCode;

    #[test]
    fn register_is_idempotent_and_listing_pages_in_order() {
        let mut md = Metadata::open(Sqlite::memory()).unwrap();
        assert!(md.list_groups(None, 10).unwrap().is_empty());
        for g in ["b", "a", "c", "a"] {
            md.register_group(g, 1).unwrap();
        }
        assert_eq!(md.list_groups(None, 10).unwrap(), ["a", "b", "c"]);
        assert_eq!(md.list_groups(None, 2).unwrap(), ["a", "b"]);
        assert_eq!(md.list_groups(Some("b"), 2).unwrap(), ["c"]);
        assert!(md.list_groups(Some("c"), 2).unwrap().is_empty());
        // A limit of 0 still answers one id, so a caller paging on always progresses.
        assert_eq!(md.list_groups(None, 0).unwrap(), ["a"]);
    }

    #[test]
    fn group_ids_are_checked() {
        let mut md = Metadata::open(Sqlite::memory()).unwrap();
        let err = md.register_group("", 1).unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidRequest);
        let err = md
            .register_group(&"g".repeat(MAX_GROUP_ID_LEN + 1), 1)
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidRequest);
        md.register_group(&"g".repeat(MAX_GROUP_ID_LEN), 1).unwrap();
        assert_eq!(md.list_groups(None, 10).unwrap().len(), 1);
    }
}
