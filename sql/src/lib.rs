//! The storage trait under every Kafdo core.
//!
//! A core (partition, transaction coordinator, group, metadata) owns its state as SQL tables and
//! talks to storage only through [`Sql`]. Production runs the statements on a Durable Object's
//! SQLite (the Worker crate implements [`Sql`] over `ctx.storage.sql`); native tests and the
//! simulator run the very same statements on rusqlite with bundled SQLite (`Sqlite`, behind
//! the `rusqlite` feature).
//!
//! # Rules the trait encodes
//!
//! - Statements are synchronous. A core never awaits between its first read and its last write,
//!   so no other request can interleave with a step.
//! - [`Sql::transaction`] runs a closure all or nothing: if the closure returns `Err`, every
//!   statement it ran is rolled back. On a Durable Object an error in the middle of a synchronous
//!   run does *not* roll back by itself, so every multi-statement write goes through it.
//! - Keep every statement under [`MAX_BOUND_PARAMS`] bound parameters (a Durable Object limit).
//! - Integers cross the JavaScript boundary as `f64`: values above 2^53 lose precision, so ids
//!   are kept below [`MAX_SAFE_INTEGER`].

#![warn(missing_docs)]

use std::fmt;

/// The most bound parameters one statement may carry on a Durable Object.
pub const MAX_BOUND_PARAMS: usize = 100;

/// The largest integer that survives the trip through a JavaScript number.
pub const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

/// A parameter bound to a statement. Borrowed, so large blobs are not copied to be bound.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Param<'a> {
    /// SQL NULL.
    Null,
    /// A 64-bit integer (keep it within [`MAX_SAFE_INTEGER`]).
    Integer(i64),
    /// A double.
    Real(f64),
    /// UTF-8 text.
    Text(&'a str),
    /// Bytes.
    Blob(&'a [u8]),
}

impl From<i64> for Param<'_> {
    fn from(v: i64) -> Self {
        Param::Integer(v)
    }
}
impl From<i32> for Param<'_> {
    fn from(v: i32) -> Self {
        Param::Integer(v.into())
    }
}
impl From<u32> for Param<'_> {
    fn from(v: u32) -> Self {
        Param::Integer(v.into())
    }
}
impl From<bool> for Param<'_> {
    fn from(v: bool) -> Self {
        Param::Integer(v.into())
    }
}
impl<'a> From<&'a str> for Param<'a> {
    fn from(v: &'a str) -> Self {
        Param::Text(v)
    }
}
impl<'a> From<&'a String> for Param<'a> {
    fn from(v: &'a String) -> Self {
        Param::Text(v)
    }
}
impl<'a> From<&'a [u8]> for Param<'a> {
    fn from(v: &'a [u8]) -> Self {
        Param::Blob(v)
    }
}
impl<'a> From<&'a Vec<u8>> for Param<'a> {
    fn from(v: &'a Vec<u8>) -> Self {
        Param::Blob(v)
    }
}
impl<'a, T: Into<Param<'a>>> From<Option<T>> for Param<'a> {
    fn from(v: Option<T>) -> Self {
        v.map_or(Param::Null, Into::into)
    }
}

/// A value read back from a row.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// An integer. On a Durable Object every whole-numbered JavaScript number reads as one.
    Integer(i64),
    /// A double.
    Real(f64),
    /// UTF-8 text.
    Text(String),
    /// Bytes.
    Blob(Vec<u8>),
}

/// One result row, read by column position.
///
/// The getters panic on a type the schema cannot produce: the tables belong to the core that
/// reads them, so a mismatch is a bug, not an input error.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Row(pub Vec<Value>);

impl Row {
    /// The integer in column `i`. A whole-numbered real is accepted, since that is how a
    /// Durable Object may hand integers back.
    pub fn int(&self, i: usize) -> i64 {
        match &self.0[i] {
            Value::Integer(v) => *v,
            Value::Real(v) if v.fract() == 0.0 => *v as i64,
            other => panic!("column {i}: expected an integer, found {other:?}"),
        }
    }

    /// The integer in column `i`, or `None` for NULL.
    pub fn opt_int(&self, i: usize) -> Option<i64> {
        match &self.0[i] {
            Value::Null => None,
            _ => Some(self.int(i)),
        }
    }

    /// The real in column `i`.
    pub fn real(&self, i: usize) -> f64 {
        match &self.0[i] {
            Value::Integer(v) => *v as f64,
            Value::Real(v) => *v,
            other => panic!("column {i}: expected a real, found {other:?}"),
        }
    }

    /// The text in column `i`.
    pub fn text(&self, i: usize) -> &str {
        match &self.0[i] {
            Value::Text(v) => v,
            other => panic!("column {i}: expected text, found {other:?}"),
        }
    }

    /// The text in column `i`, or `None` for NULL.
    pub fn opt_text(&self, i: usize) -> Option<&str> {
        match &self.0[i] {
            Value::Null => None,
            _ => Some(self.text(i)),
        }
    }

    /// The bytes in column `i`. An empty blob may come back as NULL or empty text from some
    /// drivers; both read as empty.
    pub fn blob(&self, i: usize) -> &[u8] {
        match &self.0[i] {
            Value::Blob(v) => v,
            Value::Null => &[],
            Value::Text(t) if t.is_empty() => &[],
            other => panic!("column {i}: expected a blob, found {other:?}"),
        }
    }

    /// Takes the bytes out of column `i`, leaving NULL behind (saves a copy of large blobs).
    pub fn take_blob(&mut self, i: usize) -> Vec<u8> {
        match std::mem::replace(&mut self.0[i], Value::Null) {
            Value::Blob(v) => v,
            Value::Null => Vec::new(),
            Value::Text(t) if t.is_empty() => Vec::new(),
            other => panic!("column {i}: expected a blob, found {other:?}"),
        }
    }
}

/// A storage error: the statement failed (constraint, syntax, limits, I/O).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SqlError {
    /// SQLite refused or failed the statement.
    #[error("sql error: {message} (in `{statement}`)")]
    Statement {
        /// What SQLite said.
        message: String,
        /// The statement, for the log.
        statement: String,
    },
    /// A statement bound more parameters than a Durable Object allows.
    #[error("statement binds {0} parameters, more than the limit of {MAX_BOUND_PARAMS}")]
    TooManyParams(usize),
    /// A statement bound an integer that a JavaScript number cannot hold exactly.
    #[error("statement binds the integer {0}, beyond ±{MAX_SAFE_INTEGER}")]
    UnsafeInteger(i64),
    /// The database ran more schema migrations than this build knows: a newer build wrote it.
    #[error("the database is at schema version {version}, newer than this build's {known}")]
    SchemaTooNew {
        /// The migrations the database ran.
        version: i64,
        /// The migrations this build knows.
        known: i64,
    },
}

/// Storage for one object: a private SQLite database.
pub trait Sql {
    /// Runs one statement and returns every row it produced.
    fn exec(&self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>, SqlError>;

    /// Runs `f` all or nothing: when `f` returns `Err`, every statement it ran is undone.
    fn transaction<T, E: From<SqlError>>(&self, f: impl FnOnce() -> Result<T, E>) -> Result<T, E>;

    /// Runs a statement that returns no rows.
    fn run(&self, sql: &str, params: &[Param<'_>]) -> Result<(), SqlError> {
        self.exec(sql, params).map(drop)
    }

    /// Runs a statement and returns its first row, if any.
    fn first(&self, sql: &str, params: &[Param<'_>]) -> Result<Option<Row>, SqlError> {
        Ok(self.exec(sql, params)?.into_iter().next())
    }
}

/// A shared handle is storage too: the simulator and the tests keep one database and open
/// successive cores on it, as a Durable Object's SQLite outlives its memory across a restart.
impl<T: Sql> Sql for std::rc::Rc<T> {
    fn exec(&self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>, SqlError> {
        (**self).exec(sql, params)
    }

    fn transaction<R, E: From<SqlError>>(&self, f: impl FnOnce() -> Result<R, E>) -> Result<R, E> {
        (**self).transaction(f)
    }
}

impl<T: Sql> Sql for &T {
    fn exec(&self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>, SqlError> {
        (**self).exec(sql, params)
    }

    fn transaction<R, E: From<SqlError>>(&self, f: impl FnOnce() -> Result<R, E>) -> Result<R, E> {
        (**self).transaction(f)
    }
}

/// Checks the bound-parameter limit and the integers' range before a statement reaches
/// storage, so native tests catch what would fail on a Durable Object.
pub fn check_params(params: &[Param<'_>]) -> Result<(), SqlError> {
    if params.len() > MAX_BOUND_PARAMS {
        return Err(SqlError::TooManyParams(params.len()));
    }
    // Refused as an error on every implementation, so the rusqlite one (the simulator's) finds
    // what would break on a Durable Object, and neither can be made to panic by a value.
    for param in params {
        if let Param::Integer(v) = *param {
            if !(-MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER).contains(&v) {
                return Err(SqlError::UnsafeInteger(v));
            }
        }
    }
    Ok(())
}

impl fmt::Display for Param<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Param::Null => f.write_str("NULL"),
            Param::Integer(v) => write!(f, "{v}"),
            Param::Real(v) => write!(f, "{v}"),
            Param::Text(v) => write!(f, "{v:?}"),
            Param::Blob(v) => write!(f, "<{} bytes>", v.len()),
        }
    }
}

mod migrate;
pub use migrate::migrate;

#[cfg(feature = "rusqlite")]
mod sqlite;
#[cfg(feature = "rusqlite")]
pub use sqlite::Sqlite;
