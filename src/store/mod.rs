//! SQLite storage: the only place with SQL. WAL mode, foreign keys, secure delete, ordered
//! append-only migrations, and file modes that keep the data to its owner.
//!
//! Usage records have a connection of their own, so the gateway's commits never wait behind
//! a page's query; and no commit ever runs a checkpoint: a background thread does, so the
//! WAL's copy back into the database (and its fsync) is off every request's path.

mod apps;
pub mod backup;
mod checkpoint;
mod connections;
mod filter;
mod migrations;
mod reports;
mod usage;
mod vault;

use std::fs;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, TransactionBehavior};

pub use apps::{AppChanges, AppRow};
pub use connections::{ConnectionRow, Outcome};
pub use filter::{StatusFilter, UsageFilter};
pub use migrations::SCHEMA_VERSION;
pub use reports::{
    ConnectionReach, DayRange, GroupBy, LedgerEntry, MonthSpend, UsageAggregate, UsageTotals,
};
pub use usage::SealedBodies;

pub const DB_FILE: &str = "hub.db";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Conflict(String),
    #[error(
        "the database at {path} is damaged ({detail}). Move it aside and restore a backup, or \
         move it aside to start a new Hub"
    )]
    Damaged { path: PathBuf, detail: String },
    #[error(
        "the database at {path} was written by a newer Workshop Hub (schema {found}, this \
         version knows {known}); upgrade Workshop Hub"
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("cannot prepare the data directory {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The Hub's database. One connection behind a mutex for everything but usage records,
/// which the gateway's writer commits on a second one; SQLite serialises the writers, and
/// every call is short. Callers on async workers run store calls on blocking threads.
pub struct Store {
    conn: Mutex<Connection>,
    usage: Mutex<Connection>,
    _checkpointer: checkpoint::Checkpointer,
    path: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Opens (creating if needed) the database in `data_dir`, checks it and migrates it.
    pub fn open(data_dir: &Path) -> Result<Store> {
        prepare_data_dir(data_dir)?;
        let path = data_dir.join(DB_FILE);
        create_private_file(&path)?;
        let mut conn = Connection::open(&path).map_err(|e| damaged(&path, &e.to_string()))?;
        configure(&mut conn).map_err(|e| damaged(&path, &e.to_string()))?;
        quick_check(&conn, &path)?;
        migrations::apply(&conn, &path)?;
        tighten_sidecar_files(&path);
        let usage = open_more(&path)?;
        let checkpointer = checkpoint::Checkpointer::start(open_more(&path)?);
        Ok(Store {
            conn: Mutex::new(conn),
            usage: Mutex::new(usage),
            _checkpointer: checkpointer,
            path,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A consistent copy of this database at `dest` (see [`backup::backup`]).
    pub fn backup_to(&self, dest: &Path) -> Result<backup::Copied> {
        backup::backup(&self.path, dest)
    }

    pub(crate) fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent (transactions roll
        // back on drop), so a poisoned lock is still safe to use.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The connection usage records and their bodies are written on.
    pub(crate) fn usage_conn(&self) -> MutexGuard<'_, Connection> {
        self.usage.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Moves the WAL back into the database and truncates it, so deleted secrets do not
    /// linger in the log.
    pub fn checkpoint_truncate(&self) -> Result<()> {
        self.conn()
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }
}

fn configure(conn: &mut Connection) -> rusqlite::Result<()> {
    conn.busy_handler(Some(short_waits))?;
    // A transaction takes the write lock when it begins, where a busy lock is waited for.
    // A deferred one that reads first and then writes fails at once, without waiting, when
    // another connection (the usage writer's) committed in between.
    conn.set_transaction_behavior(TransactionBehavior::Immediate);
    // Only a new, empty database takes it (before the WAL is on); an existing one keeps its own.
    conn.pragma_update(None, "page_size", PAGE_SIZE)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "secure_delete", "ON")?;
    // Commits never checkpoint; the checkpointer thread does (see `checkpoint`).
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    conn.pragma_update(None, "journal_size_limit", checkpoint::WAL_SIZE_LIMIT)?;
    Ok(())
}

/// Bytes per database page for a new database. A commit writes every page it changed to
/// the WAL whole, and a call's record changes a few (its row, two index leaves, the day's
/// rollup, its bodies): with 4 KiB pages a call wrote about 19 KiB to the WAL, which the
/// checkpointer's fsyncs then had to flush, and a commit that met one waited for the disk
/// (at one call in flight, stalls of 5 to 20 ms five times a second). 1 KiB pages write a
/// quarter of that; rows and index keys are far smaller than a page, and bodies past a page
/// go to overflow pages as before.
const PAGE_SIZE: i64 = 1024;

/// How long a statement waits for another connection's lock before giving up.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// Retries this far apart for the first [`SHORT_WAIT_TRIES`], then [`LONG_WAIT`] apart.
const SHORT_WAIT: std::time::Duration = std::time::Duration::from_micros(100);
const SHORT_WAIT_TRIES: u32 = 100;
const LONG_WAIT: std::time::Duration = std::time::Duration::from_millis(5);

/// The wait between tries for a lock another connection holds (the checkpointer's restart,
/// a page's write): SQLite's own sleeps 1, 2, 5, 10, 15 ms… in turn, so a commit that met a
/// lock held for a millisecond waited tens of them. This one retries every 100 µs for the
/// first 10 ms, then every 5 ms, up to [`BUSY_TIMEOUT`]. `tries` is how many came before.
fn short_waits(tries: i32) -> bool {
    let tries = u32::try_from(tries).unwrap_or(0);
    let short = tries.min(SHORT_WAIT_TRIES);
    let waited = SHORT_WAIT * short + LONG_WAIT * (tries - short);
    if waited >= BUSY_TIMEOUT {
        return false;
    }
    std::thread::sleep(if tries < SHORT_WAIT_TRIES {
        SHORT_WAIT
    } else {
        LONG_WAIT
    });
    true
}

/// Another connection to the already opened and migrated database.
fn open_more(path: &Path) -> Result<Connection> {
    let mut conn = Connection::open(path).map_err(|e| damaged(path, &e.to_string()))?;
    configure(&mut conn)?;
    Ok(conn)
}

fn quick_check(conn: &Connection, path: &Path) -> Result<()> {
    let verdict: String = conn
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .map_err(|e| damaged(path, &e.to_string()))?;
    if verdict == "ok" {
        Ok(())
    } else {
        Err(damaged(path, &verdict))
    }
}

fn damaged(path: &Path, detail: &str) -> StoreError {
    StoreError::Damaged {
        path: path.to_path_buf(),
        detail: detail.to_string(),
    }
}

/// Creates the data directory with mode 0700, tightening an existing one.
pub(crate) fn prepare_data_dir(dir: &Path) -> Result<()> {
    let io = |source| StoreError::Io {
        path: dir.to_path_buf(),
        source,
    };
    fs::create_dir_all(dir).map_err(io)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io)?;
    Ok(())
}

/// Creates the database file with mode 0600 before SQLite opens it; SQLite gives the WAL
/// and shared-memory files the same mode.
fn create_private_file(path: &Path) -> Result<()> {
    let io = |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    };
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(io)?;
    Ok(())
}

fn tighten_sidecar_files(db: &Path) {
    for suffix in ["-wal", "-shm"] {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        let _ = fs::set_permissions(PathBuf::from(name), fs::Permissions::from_mode(0o600));
    }
}

/// Current time as RFC 3339 UTC with second precision, the form every timestamp is kept in.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_connection_retries_often_at_first_and_gives_up_after_the_timeout() {
        assert!(short_waits(0), "the first retry waits");
        // 100 short tries (10 ms), then 5 ms apart: the try that would pass 5 s is refused.
        assert!(short_waits(1097));
        assert!(!short_waits(1098));
        assert!(!short_waits(i32::MAX));
    }

    #[test]
    fn opens_with_private_modes_and_wal() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("hub");
        let store = Store::open(&data).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(store.path()), 0o600);
        let mode_name: String = store
            .conn()
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode_name, "wal");
        let fk: i64 = store
            .conn()
            .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
            .unwrap();
        assert_eq!(fk, 1);
        let sd: i64 = store
            .conn()
            .query_row("PRAGMA secure_delete", [], |r| r.get(0))
            .unwrap();
        assert_eq!(sd, 1);
        for suffix in ["-wal", "-shm"] {
            let p = PathBuf::from(format!("{}{suffix}", store.path().display()));
            if p.exists() {
                assert_eq!(mode(&p), 0o600, "{suffix}");
            }
        }
    }

    #[test]
    fn a_new_database_has_small_pages_and_an_old_one_keeps_its_own() {
        let page_size = |store: &Store| -> i64 {
            store
                .conn()
                .query_row("PRAGMA page_size", [], |r| r.get(0))
                .unwrap()
        };
        let dir = tempfile::tempdir().unwrap();
        let fresh = dir.path().join("fresh");
        assert_eq!(page_size(&Store::open(&fresh).unwrap()), PAGE_SIZE);

        // A database made before pages were small: 4 KiB, already in WAL mode, with a row.
        let old = dir.path().join("old");
        fs::create_dir_all(&old).unwrap();
        {
            let conn = Connection::open(old.join(DB_FILE)).unwrap();
            conn.pragma_update(None, "page_size", 4096).unwrap();
            conn.pragma_update(None, "journal_mode", "WAL").unwrap();
            conn.execute_batch(
                "CREATE TABLE kept (v TEXT); INSERT INTO kept VALUES ('still here');",
            )
            .unwrap();
        }
        let store = Store::open(&old).unwrap();
        assert_eq!(page_size(&store), 4096);
        let kept: String = store
            .conn()
            .query_row("SELECT v FROM kept", [], |r| r.get(0))
            .unwrap();
        assert_eq!(kept, "still here");
    }

    #[test]
    fn commits_never_checkpoint_and_the_checkpointer_does() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for conn in [store.conn(), store.usage_conn()] {
            let auto: i64 = conn
                .query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0))
                .unwrap();
            assert_eq!(auto, 0, "a commit would run a checkpoint");
        }
        let db_bytes = || fs::metadata(store.path()).unwrap().len();
        let before = db_bytes();
        {
            let conn = store.usage_conn();
            conn.execute_batch("CREATE TABLE filler (x BLOB);").unwrap();
            for _ in 0..64 {
                conn.execute("INSERT INTO filler VALUES (randomblob(4096))", [])
                    .unwrap();
            }
        }
        // Only a checkpoint moves pages from the WAL into the database file.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while db_bytes() < before + 64 * 4096 {
            assert!(
                std::time::Instant::now() < deadline,
                "the checkpointer never copied the WAL back"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    #[test]
    fn a_transaction_that_reads_then_writes_outlasts_another_connections_commit() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .conn()
            .execute_batch("CREATE TABLE t (x INTEGER)")
            .unwrap();
        std::thread::scope(|s| {
            let mut conn = store.conn();
            let tx = conn.transaction().unwrap();
            let seen: i64 = tx
                .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
                .unwrap();
            // The usage writer commits while this transaction is between its read and write.
            let other = s.spawn(|| store.usage_conn().execute("INSERT INTO t VALUES (0)", []));
            std::thread::sleep(std::time::Duration::from_millis(50));
            tx.execute("INSERT INTO t VALUES (?1)", [seen + 1]).unwrap();
            tx.commit().unwrap();
            drop(conn);
            other.join().unwrap().unwrap();
        });
        let rows: i64 = store
            .conn()
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 2, "both writes are kept");
    }

    #[test]
    fn reopening_keeps_the_schema_version() {
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path()).unwrap());
        let store = Store::open(dir.path()).unwrap();
        let v: i64 = store
            .conn()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
    }

    #[test]
    fn a_damaged_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(DB_FILE), vec![0x42u8; 8192]).unwrap();
        let err = Store::open(dir.path()).unwrap_err();
        assert!(matches!(err, StoreError::Damaged { .. }), "{err}");
        assert!(err.to_string().contains("damaged"));
    }
}
