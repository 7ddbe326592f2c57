//! [`Sql`] over a Durable Object's SQLite (`ctx.storage.sql`), bound by hand.
//!
//! # Why not worker's `SqlStorage`
//!
//! worker 0.8.7 binds only `SqlStorage::exec` with `catch`. The cursor's `one`, `toArray`,
//! `next` and `raw` are bound without it, and SQLite reports many errors only when the cursor
//! is read (too many bound variables, a constraint hit by an `INSERT ... RETURNING`). A JS
//! exception in an import without `catch` aborts the wasm instance: the request never answers
//! and every object of the isolate loses its memory. So this module binds the few JS calls it
//! needs itself, every one that can throw with `catch`, and turns exceptions into
//! [`SqlError`]s:
//!
//! - `storage.sql.exec(query, ...bindings)`: `catch`;
//! - `cursor.raw()`: `catch`; it yields rows as arrays, by position;
//! - the iterator's `next()`: `js_sys::Iterator::next`, which is `catch`;
//! - `storage.transactionSync(fn)`: `catch`.
//!
//! # Transactions
//!
//! On a Durable Object, statements of one synchronous run are committed together, but an error
//! in the middle does not undo the earlier ones. `storage.transactionSync(fn)` does: when `fn`
//! throws, SQLite rolls back to where it began and the exception comes out of
//! `transactionSync`. [`DoSql::transaction`] runs the Rust closure inside a JS callback; when
//! the closure returns `Err`, the callback stashes the Rust error and throws, and the Rust
//! error is handed back to the caller once the rollback is done. `transactionSync` nests (a
//! savepoint), like the savepoints of `kafdo_sql::Sqlite`.
//!
//! # Values
//!
//! Bound: `Integer` as a JS number (within 2^53, beyond which a number loses precision:
//! `kafdo_sql::check_params` refuses the statement otherwise), `Real` as a number, `Text` as a string, `Blob` as a `Uint8Array`, `Null` as
//! null. Read: a whole JS number is `Integer`, any other number `Real` (SQLite's integers come
//! back as numbers, so a `REAL` column holding 2.0 also reads as `Integer`; [`kafdo_sql::Row`]
//! accepts both), a string is `Text`, an `ArrayBuffer` (or typed array) is `Blob`, null is
//! `Null`.

use std::cell::RefCell;

use js_sys::{Array, ArrayBuffer, Reflect, Uint8Array};
use kafdo_sql::{check_params, Param, Row, Sql, SqlError, Value, MAX_SAFE_INTEGER};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

#[wasm_bindgen]
extern "C" {
    /// `ctx.storage` (only the one method used here).
    #[derive(Clone, Debug)]
    type JsStorage;

    #[wasm_bindgen(method, catch, js_name = transactionSync)]
    fn transaction_sync(
        this: &JsStorage,
        f: &mut dyn FnMut() -> Result<JsValue, JsValue>,
    ) -> Result<JsValue, JsValue>;

    /// `ctx.storage.sql`.
    #[derive(Clone, Debug)]
    type JsSqlStorage;

    #[wasm_bindgen(method, catch, variadic, js_name = exec)]
    fn exec(this: &JsSqlStorage, query: &str, bindings: Array) -> Result<JsSqlCursor, JsValue>;

    /// The cursor `exec` returns.
    type JsSqlCursor;

    #[wasm_bindgen(method, catch)]
    fn raw(this: &JsSqlCursor) -> Result<js_sys::Iterator, JsValue>;
}

/// A Durable Object's SQLite.
#[derive(Clone, Debug)]
pub struct DoSql {
    storage: JsStorage,
    sql: JsSqlStorage,
}

impl DoSql {
    /// The SQL storage of the object whose state this is.
    pub fn new(state: &worker::State) -> Result<Self, SqlError> {
        let state: &JsValue = state.as_raw().as_ref();
        let storage = Reflect::get(state, &JsValue::from_str("storage"))
            .map_err(|e| js_error(e, "ctx.storage"))?;
        let sql = Reflect::get(&storage, &JsValue::from_str("sql"))
            .map_err(|e| js_error(e, "ctx.storage.sql"))?;
        if sql.is_undefined() {
            return Err(SqlError::Statement {
                message: "this Durable Object class has no SQLite storage (new_sqlite_classes)"
                    .into(),
                statement: "ctx.storage.sql".into(),
            });
        }
        Ok(Self {
            storage: storage.unchecked_into(),
            sql: sql.unchecked_into(),
        })
    }
}

/// The message of a JS exception, for the error.
fn js_message(e: &JsValue) -> String {
    if let Some(err) = e.dyn_ref::<js_sys::Error>() {
        String::from(err.message())
    } else if let Some(s) = e.as_string() {
        s
    } else {
        format!("{e:?}")
    }
}

fn js_error(e: JsValue, statement: &str) -> SqlError {
    SqlError::Statement {
        message: js_message(&e),
        statement: statement.to_owned(),
    }
}

fn bind(param: &Param<'_>) -> JsValue {
    match *param {
        Param::Null => JsValue::NULL,
        // Within ±2^53: `check_params` refused the statement otherwise.
        Param::Integer(v) => JsValue::from_f64(v as f64),
        Param::Real(v) => JsValue::from_f64(v),
        Param::Text(v) => JsValue::from_str(v),
        Param::Blob(v) => Uint8Array::from(v).into(),
    }
}

fn read_value(v: JsValue) -> Value {
    if v.is_null() || v.is_undefined() {
        Value::Null
    } else if let Some(n) = v.as_f64() {
        // Whole numbers within the safe range are SQLite integers as far as we can know.
        if n.fract() == 0.0 && n.abs() <= MAX_SAFE_INTEGER as f64 {
            Value::Integer(n as i64)
        } else {
            Value::Real(n)
        }
    } else if let Some(s) = v.as_string() {
        Value::Text(s)
    } else if let Some(buf) = v.dyn_ref::<ArrayBuffer>() {
        Value::Blob(Uint8Array::new(buf).to_vec())
    } else if let Some(arr) = v.dyn_ref::<Uint8Array>() {
        Value::Blob(arr.to_vec())
    } else if let Some(b) = v.as_bool() {
        Value::Integer(b.into())
    } else {
        // SQLite has no other storage class; anything else is a runtime change we must see.
        panic!("unexpected SQL value from the runtime: {v:?}")
    }
}

impl Sql for DoSql {
    fn exec(&self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>, SqlError> {
        check_params(params)?;
        let bindings: Array = params.iter().map(bind).collect();
        let cursor = self.sql.exec(sql, bindings).map_err(|e| js_error(e, sql))?;
        let rows = cursor.raw().map_err(|e| js_error(e, sql))?;
        let mut out = Vec::new();
        loop {
            let next = rows.next().map_err(|e| js_error(e, sql))?;
            if next.done() {
                break;
            }
            let row: Array = next.value().unchecked_into();
            out.push(Row(row.iter().map(read_value).collect()));
        }
        Ok(out)
    }

    fn transaction<T, E: From<SqlError>>(&self, f: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
        // The closure's result travels beside the JS call: Ok out of the callback, Err stashed
        // here while the callback throws so that SQLite rolls back.
        let result: RefCell<Option<Result<T, E>>> = RefCell::new(None);
        let mut f = Some(f);
        let mut callback = || -> Result<JsValue, JsValue> {
            let f = f.take().expect("transactionSync calls its callback once");
            let r = f();
            let failed = r.is_err();
            *result.borrow_mut() = Some(r);
            if failed {
                Err(JsValue::from_str("kafdo: rolled back"))
            } else {
                Ok(JsValue::UNDEFINED)
            }
        };
        let outcome = self.storage.transaction_sync(&mut callback);
        match (outcome, result.into_inner()) {
            (Ok(_), Some(Ok(v))) => Ok(v),
            (Err(_), Some(Err(e))) => Err(e),
            // The commit itself failed after the closure succeeded: nothing was written.
            (Err(e), Some(Ok(_))) => Err(js_error(e, "transactionSync commit").into()),
            // The runtime refused before calling the closure.
            (Err(e), None) => Err(js_error(e, "transactionSync").into()),
            (Ok(_), r) => unreachable!(
                "transactionSync returned normally after the callback {}",
                if r.is_none() { "never ran" } else { "threw" }
            ),
        }
    }
}
