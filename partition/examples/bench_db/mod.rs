//! The file-backed SQLite databases the partition benchmarks write to (shared by the examples
//! that `mod bench_db;` it; a directory without `main.rs` is not an example of its own).

use std::path::{Path, PathBuf};

use kafdo_sql::{Sql, Sqlite};

/// A fresh database file `kafdo-{bench}-bench-{pid}-{name}.sqlite` in the temp directory; with
/// `fsync` off, `synchronous = OFF` (measures the layout, not the disk).
pub fn temp_db(bench: &str, name: &str, fsync: bool) -> (Sqlite, PathBuf) {
    let path = std::env::temp_dir().join(format!(
        "kafdo-{bench}-bench-{}-{name}.sqlite",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&path);
    let db = Sqlite::file(&path).expect("open the database file");
    if !fsync {
        db.run("PRAGMA synchronous = OFF", &[]).unwrap();
    }
    (db, path)
}

/// Removes a database file and its journal.
pub fn cleanup(path: &Path) {
    let _ = std::fs::remove_file(path);
    let _ = std::fs::remove_file(path.with_extension("sqlite-journal"));
}
