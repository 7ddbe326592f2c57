//! The `BenchAppend` class: the benchmark's baseline, and the SQL binding's self-test.
//!
//! `POST /bench/bare-append` appends a request's records to a plain table with multi-row
//! INSERTs of 33 rows (3 bound parameters a row, 99 a statement, under the limit of 100): no
//! producer state, no batch index, no transaction. The benchmark runs Kafdo's produce and this
//! in the same run and prints the ratio, so the cost of Kafdo's bookkeeping is visible apart
//! from the machine's speed.
//!
//! `POST /bench/debug-sql-rollback` exercises [`crate::sql::DoSql`] on the real runtime: a
//! committed transaction, a failing one that must leave nothing behind, an error raised while a
//! cursor is read, and too many bound parameters. It writes only to its own table.

use std::cell::Cell;
use std::rc::Rc;

use js_sys::Promise;
use kafdo_broker::host::{reply, storage_error};
use kafdo_sql::{Param, Sql, SqlError};
use kafdo_types::rpc::{
    BareAppendRequest, BareAppendResponse, BenchCall, ObjectCall, SqlRollbackReport,
    SqlRollbackRequest,
};
use kafdo_types::{ApiError, ProduceRecord};
use wasm_bindgen::prelude::wasm_bindgen;
use worker::worker_sys::DurableObjectState;
use worker::{web_sys, Env, State};

use super::{now_ms, serve, wrong_kind};
use crate::sql::DoSql;

/// Rows per INSERT statement.
const ROWS_PER_INSERT: usize = 33;

/// A bare append log.
#[wasm_bindgen]
pub struct BenchAppend {
    /// Shared with the task that serves each request (see `crate::guard`).
    inner: Rc<BenchObject>,
}

/// The state of a bench object.
pub struct BenchObject {
    state: State,
    /// The next offset, loaded on the first append.
    next_offset: Cell<Option<i64>>,
}

impl BenchObject {
    fn append(&self, records: &[ProduceRecord]) -> Result<BareAppendResponse, SqlError> {
        let sql = DoSql::new(&self.state)?;
        let next = match self.next_offset.get() {
            Some(n) => n,
            None => {
                sql.run(
                    "CREATE TABLE IF NOT EXISTS records (
                        offset INTEGER PRIMARY KEY, timestamp INTEGER NOT NULL,
                        key BLOB, value BLOB)",
                    &[],
                )?;
                sql.first("SELECT coalesce(max(offset) + 1, 0) FROM records", &[])?
                    .expect("an aggregate returns one row")
                    .int(0)
            }
        };
        let now = now_ms();
        // The offset is the rowid, assigned densely by SQLite since rows are never deleted.
        for chunk in records.chunks(ROWS_PER_INSERT) {
            let mut statement = String::from("INSERT INTO records (timestamp, key, value) VALUES ");
            let mut params = Vec::with_capacity(chunk.len() * 3);
            for (i, r) in chunk.iter().enumerate() {
                statement.push_str(if i == 0 { "(?, ?, ?)" } else { ", (?, ?, ?)" });
                params.push(Param::Integer(r.timestamp.unwrap_or(now)));
                params.push(r.key.as_deref().map_or(Param::Null, Param::Blob));
                params.push(r.value.as_deref().map_or(Param::Null, Param::Blob));
            }
            sql.run(&statement, &params)?;
        }
        let count = records.len() as i64;
        self.next_offset.set(Some(next + count));
        Ok(BareAppendResponse {
            base_offset: next,
            last_offset: next + count - 1,
        })
    }

    fn sql_self_test(&self) -> Result<SqlRollbackReport, SqlError> {
        let sql = DoSql::new(&self.state)?;
        sql.run(
            "CREATE TABLE IF NOT EXISTS rollback_test (k INTEGER PRIMARY KEY)",
            &[],
        )?;
        sql.run("DELETE FROM rollback_test", &[])?;
        sql.transaction(|| sql.run("INSERT INTO rollback_test VALUES (1)", &[]))?;
        let count = |sql: &DoSql| -> Result<i64, SqlError> {
            Ok(sql
                .first("SELECT count(*) FROM rollback_test", &[])?
                .expect("an aggregate returns one row")
                .int(0))
        };
        let rows_after_commit = count(&sql)?;
        let failed: Result<(), SqlError> = sql.transaction(|| {
            sql.run("INSERT INTO rollback_test VALUES (2)", &[])?;
            sql.run("INSERT INTO rollback_test VALUES (3)", &[])?;
            // A key conflict: the two inserts above must be undone.
            sql.run("INSERT INTO rollback_test VALUES (1)", &[])
        });
        let rows_after_rollback = count(&sql)?;
        sql.transaction(|| {
            sql.run("INSERT INTO rollback_test VALUES (10)", &[])?;
            let inner: Result<(), SqlError> = sql.transaction(|| {
                sql.run("INSERT INTO rollback_test VALUES (11)", &[])?;
                sql.run("INSERT INTO rollback_test VALUES (1)", &[])
            });
            assert!(inner.is_err(), "the inner transaction hit a key conflict");
            Ok::<(), SqlError>(())
        })?;
        let has = |k: i64| -> Result<bool, SqlError> {
            Ok(sql
                .first(
                    "SELECT 1 FROM rollback_test WHERE k = ?",
                    &[Param::Integer(k)],
                )?
                .is_some())
        };
        let nested_rows_10_11 = [has(10)?, has(11)?];
        // The second row makes json() fail while the cursor is being read, not at exec.
        let cursor_error = sql
            .exec(
                "SELECT json(v) FROM (SELECT '1' AS v UNION ALL SELECT 'not json')",
                &[],
            )
            .err()
            .map(|e| e.to_string());
        let params = vec![Param::Integer(1); 101];
        let too_many_params_error = sql.exec("SELECT 1", &params).err().map(|e| e.to_string());
        Ok(SqlRollbackReport {
            rows_after_commit,
            failed_transaction_returned_error: failed.is_err(),
            rows_after_rollback,
            nested_rows_10_11,
            cursor_error,
            too_many_params_error,
        })
    }
}

impl BenchObject {
    fn call(&self, call: ObjectCall) -> Result<Vec<u8>, ApiError> {
        let ObjectCall::Bench(call) = call else {
            return Err(wrong_kind(&call, "bench"));
        };
        match call {
            // Reached only when the Worker's KAFDO_DEBUG_PANIC variable is set: objects are not
            // reachable from outside the Worker.
            BenchCall::Panic(_) => panic!("deliberate panic (KAFDO_DEBUG_PANIC)"),
            BenchCall::BareAppend(req) => {
                reply::<BareAppendRequest>(self.append(&req.records).map_err(storage_error))
            }
            BenchCall::SqlRollback(_) => {
                reply::<SqlRollbackRequest>(self.sql_self_test().map_err(storage_error))
            }
        }
    }
}

#[wasm_bindgen]
impl BenchAppend {
    /// Called by the runtime when the object starts.
    #[wasm_bindgen(constructor)]
    pub fn new(state: DurableObjectState, _env: Env) -> Self {
        let state = State::from(state);
        Self {
            inner: Rc::new(BenchObject {
                state,
                next_offset: Cell::new(None),
            }),
        }
    }

    /// Serves one call.
    pub fn fetch(&self, req: web_sys::Request) -> Promise {
        serve(
            &self.inner,
            req,
            |inner, call| async move { inner.call(call) },
        )
    }
}
