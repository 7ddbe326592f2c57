//! Schema versions: how a core's tables change without losing what they hold.
//!
//! A core declares its schema as a list of migrations: statements that each run once per
//! database, in order, for ever. The first ones create the tables; a later change (a new
//! column, a new index) is a statement appended to the list (`ALTER TABLE ... ADD COLUMN ...`),
//! never an edit of one already released, since databases out there have run the old text.
//!
//! [`migrate`] keeps how many migrations a database has run in the one-row table
//! `schema_version` and runs the ones it has not, all in one transaction with the new count:
//! an object that wakes up after an upgrade carries its data to the new schema, or (if a
//! statement fails) stays as it was. A database that ran more migrations than the code knows
//! was written by a newer build; an older build refuses it ([`SqlError::SchemaTooNew`]) rather
//! than misread it.
//!
//! A database from before schema versions has no `schema_version` and counts as version 0:
//! every migration runs, and `CREATE TABLE IF NOT EXISTS` leaves its tables as they are.

use crate::{Sql, SqlError};

/// Brings the database to the schema `migrations` describe (see the module docs).
pub fn migrate(sql: &impl Sql, migrations: &[&str]) -> Result<(), SqlError> {
    sql.transaction(|| {
        sql.run(
            "CREATE TABLE IF NOT EXISTS schema_version (
                id INTEGER PRIMARY KEY CHECK (id = 1),
                version INTEGER NOT NULL
            )",
            &[],
        )?;
        let version = sql
            .first("SELECT version FROM schema_version WHERE id = 1", &[])?
            .map_or(0, |row| row.int(0));
        let known = migrations.len() as i64;
        if version > known {
            return Err(SqlError::SchemaTooNew { version, known });
        }
        if version == known {
            return Ok(());
        }
        for statement in &migrations[version as usize..] {
            sql.run(statement, &[])?;
        }
        sql.run(
            "INSERT INTO schema_version (id, version) VALUES (1, ?)
             ON CONFLICT (id) DO UPDATE SET version = excluded.version",
            &[known.into()],
        )
    })
}

#[cfg(all(test, feature = "rusqlite"))]
mod tests {
    use super::*;
    use crate::Sqlite;

    const V1: &[&str] = &["CREATE TABLE IF NOT EXISTS t (k INTEGER PRIMARY KEY, a TEXT)"];
    const V2: &[&str] = &[
        "CREATE TABLE IF NOT EXISTS t (k INTEGER PRIMARY KEY, a TEXT)",
        "ALTER TABLE t ADD COLUMN b INTEGER NOT NULL DEFAULT 7",
    ];

    fn version(db: &Sqlite) -> i64 {
        db.first("SELECT version FROM schema_version", &[])
            .unwrap()
            .unwrap()
            .int(0)
    }

    #[test]
    fn an_upgrade_keeps_the_rows_and_runs_each_migration_once() {
        let db = Sqlite::memory();
        migrate(&db, V1).unwrap();
        db.run("INSERT INTO t (k, a) VALUES (1, 'x')", &[]).unwrap();
        migrate(&db, V1).unwrap();
        assert_eq!(version(&db), 1);
        migrate(&db, V2).unwrap();
        // A second run would fail on the duplicate column: it does not happen.
        migrate(&db, V2).unwrap();
        assert_eq!(version(&db), 2);
        let row = db.first("SELECT a, b FROM t WHERE k = 1", &[]).unwrap();
        let row = row.unwrap();
        assert_eq!((row.text(0), row.int(1)), ("x", 7));
    }

    #[test]
    fn a_database_from_before_schema_versions_runs_every_migration() {
        let db = Sqlite::memory();
        db.run(V1[0], &[]).unwrap();
        db.run("INSERT INTO t (k, a) VALUES (1, 'x')", &[]).unwrap();
        migrate(&db, V2).unwrap();
        assert_eq!(version(&db), 2);
        let row = db.first("SELECT b FROM t WHERE k = 1", &[]).unwrap();
        assert_eq!(row.unwrap().int(0), 7);
    }

    #[test]
    fn a_failed_migration_changes_nothing() {
        let db = Sqlite::memory();
        migrate(&db, V1).unwrap();
        let broken = [
            V1[0],
            "ALTER TABLE t ADD COLUMN c",
            "ALTER TABLE nowhere ADD x",
        ];
        assert!(matches!(
            migrate(&db, &broken),
            Err(SqlError::Statement { .. })
        ));
        assert_eq!(version(&db), 1);
        // Column c was rolled back with the rest: the fixed list adds it.
        migrate(&db, &broken[..2]).unwrap();
        db.run("UPDATE t SET c = 1", &[]).unwrap();
    }

    #[test]
    fn an_older_build_refuses_a_newer_database() {
        let db = Sqlite::memory();
        migrate(&db, V2).unwrap();
        assert_eq!(
            migrate(&db, V1),
            Err(SqlError::SchemaTooNew {
                version: 2,
                known: 1
            })
        );
    }
}
