//! [`Sql`] on rusqlite: the same statements as a Durable Object, on bundled SQLite.

use std::cell::Cell;

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, ToSql};

use crate::{check_params, Param, Row, Sql, SqlError, Value};

/// A SQLite database for native tests and the simulator.
///
/// A fresh in-memory database stands in for a new Durable Object; keeping the `Sqlite` and
/// dropping the core stands in for an object restart (memory lost, SQLite kept).
pub struct Sqlite {
    conn: Connection,
    depth: Cell<u32>,
}

impl std::fmt::Debug for Sqlite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sqlite").finish_non_exhaustive()
    }
}

impl Sqlite {
    /// A new, empty in-memory database.
    pub fn memory() -> Self {
        Self::from_connection(Connection::open_in_memory().expect("open in-memory sqlite"))
    }

    /// A database in a file (benchmarks use this to pay for real writes).
    pub fn file(path: &std::path::Path) -> Result<Self, SqlError> {
        let conn = Connection::open(path).map_err(|e| err(e, "open"))?;
        Ok(Self::from_connection(conn))
    }

    fn from_connection(conn: Connection) -> Self {
        Self {
            conn,
            depth: Cell::new(0),
        }
    }
}

fn err(e: rusqlite::Error, statement: &str) -> SqlError {
    SqlError::Statement {
        message: e.to_string(),
        statement: statement.to_owned(),
    }
}

impl ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match *self {
            Param::Null => ValueRef::Null,
            Param::Integer(v) => ValueRef::Integer(v),
            Param::Real(v) => ValueRef::Real(v),
            Param::Text(v) => ValueRef::Text(v.as_bytes()),
            Param::Blob(v) => ValueRef::Blob(v),
        }))
    }
}

impl Sql for Sqlite {
    fn exec(&self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>, SqlError> {
        check_params(params)?;
        let mut stmt = self.conn.prepare_cached(sql).map_err(|e| err(e, sql))?;
        let columns = stmt.column_count();
        let mut rows = stmt
            .query(rusqlite::params_from_iter(params.iter()))
            .map_err(|e| err(e, sql))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(|e| err(e, sql))? {
            let mut values = Vec::with_capacity(columns);
            for i in 0..columns {
                values.push(match row.get_ref(i).map_err(|e| err(e, sql))? {
                    ValueRef::Null => Value::Null,
                    ValueRef::Integer(v) => Value::Integer(v),
                    ValueRef::Real(v) => Value::Real(v),
                    ValueRef::Text(v) => Value::Text(String::from_utf8_lossy(v).into_owned()),
                    ValueRef::Blob(v) => Value::Blob(v.to_vec()),
                });
            }
            out.push(Row(values));
        }
        Ok(out)
    }

    fn transaction<T, E: From<SqlError>>(&self, f: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
        // Savepoints nest, as storage.transactionSync does on a Durable Object.
        let depth = self.depth.get();
        let name = format!("kafdo_sp{depth}");
        self.conn
            .execute_batch(&format!("SAVEPOINT {name}"))
            .map_err(|e| err(e, "SAVEPOINT"))?;
        self.depth.set(depth + 1);
        let result = f();
        self.depth.set(depth);
        match result {
            Ok(v) => {
                self.conn
                    .execute_batch(&format!("RELEASE {name}"))
                    .map_err(|e| err(e, "RELEASE"))?;
                Ok(v)
            }
            Err(e) => {
                self.conn
                    .execute_batch(&format!("ROLLBACK TO {name}; RELEASE {name}"))
                    .map_err(|e| err(e, "ROLLBACK"))?;
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MAX_SAFE_INTEGER;

    #[test]
    fn transaction_rolls_back_on_error() {
        let db = Sqlite::memory();
        db.run("CREATE TABLE t (k INTEGER PRIMARY KEY)", &[])
            .unwrap();
        let r: Result<(), SqlError> = db.transaction(|| {
            db.run("INSERT INTO t VALUES (1)", &[])?;
            db.run("INSERT INTO t VALUES (1)", &[])?;
            Ok(())
        });
        assert!(r.is_err());
        let n = db
            .first("SELECT count(*) FROM t", &[])
            .unwrap()
            .unwrap()
            .int(0);
        assert_eq!(n, 0, "the first insert must have been rolled back");
    }

    #[test]
    fn nested_transactions_commit_together() {
        let db = Sqlite::memory();
        db.run("CREATE TABLE t (k INTEGER PRIMARY KEY)", &[])
            .unwrap();
        db.transaction(|| {
            db.run("INSERT INTO t VALUES (1)", &[])?;
            db.transaction(|| db.run("INSERT INTO t VALUES (2)", &[]))
        })
        .unwrap();
        let n = db
            .first("SELECT count(*) FROM t", &[])
            .unwrap()
            .unwrap()
            .int(0);
        assert_eq!(n, 2);
    }

    #[test]
    fn too_many_params_is_refused() {
        let db = Sqlite::memory();
        let params = vec![Param::Integer(1); 101];
        assert_eq!(
            db.exec("SELECT 1", &params),
            Err(SqlError::TooManyParams(101))
        );
    }

    #[test]
    fn integers_a_javascript_number_cannot_hold_are_refused() {
        let db = Sqlite::memory();
        for v in [
            MAX_SAFE_INTEGER + 1,
            -MAX_SAFE_INTEGER - 1,
            i64::MAX,
            i64::MIN,
        ] {
            assert_eq!(
                db.exec("SELECT ?", &[Param::Integer(v)]),
                Err(SqlError::UnsafeInteger(v))
            );
        }
        let row = db
            .first("SELECT ?", &[Param::Integer(MAX_SAFE_INTEGER)])
            .unwrap()
            .unwrap();
        assert_eq!(row.int(0), MAX_SAFE_INTEGER);
    }

    #[test]
    fn blobs_round_trip() {
        let db = Sqlite::memory();
        db.run("CREATE TABLE t (b BLOB)", &[]).unwrap();
        let bytes = vec![0u8, 1, 2, 255];
        db.run("INSERT INTO t VALUES (?)", &[Param::Blob(&bytes)])
            .unwrap();
        let row = db.first("SELECT b FROM t", &[]).unwrap().unwrap();
        assert_eq!(row.blob(0), &bytes[..]);
    }
}
