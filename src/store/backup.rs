//! Backups: a consistent copy of the database made with `VACUUM INTO` (secrets stay sealed,
//! as they are in the live file), and putting one back in place of the database.
//!
//! Both write under a temporary name in the destination's directory and rename when the copy
//! is complete and checked, so a crash never leaves a partial file under the final name.

use std::fs;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

use super::{DB_FILE, Result, SCHEMA_VERSION, StoreError, prepare_data_dir};

/// What a finished backup or restore wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    pub path: PathBuf,
    pub bytes: u64,
}

/// Writes a consistent copy of the database at `db` to `dest` (mode 0600). Safe while a Hub
/// uses the database: the copy is one read transaction on a connection of its own.
pub fn backup(db: &Path, dest: &Path) -> Result<Copied> {
    if !db.exists() {
        return Err(StoreError::Conflict(format!(
            "there is no database at {}: check --data-dir",
            db.display()
        )));
    }
    let partial = partial_name(dest);
    let _ = fs::remove_file(&partial);
    create_empty_private(&partial)?;
    let result = vacuum_into(db, &partial).and_then(|()| {
        check_integrity(&partial)?;
        finish(&partial, dest)
    });
    if result.is_err() {
        let _ = fs::remove_file(&partial);
    }
    result
}

/// Puts the backup `from` in place of the database in `data_dir`. An existing database is
/// only replaced with `force`, and then moved aside (with its WAL) rather than deleted.
/// Returns where the old database went, if there was one. Stop the Hub first.
pub fn restore(from: &Path, data_dir: &Path, force: bool) -> Result<(Copied, Option<PathBuf>)> {
    check_backup(from)?;
    let db = data_dir.join(DB_FILE);
    if db.exists() && !force {
        return Err(StoreError::Conflict(format!(
            "{} already holds a Hub's database; add --force to replace it (the current one is \
             moved aside, not deleted)",
            data_dir.display()
        )));
    }
    prepare_data_dir(data_dir)?;
    let partial = partial_name(&db);
    let _ = fs::remove_file(&partial);
    create_empty_private(&partial)?;
    fs::copy(from, &partial).map_err(|source| io(&partial, source))?;
    sync(&partial)?;
    let aside = if db.exists() {
        Some(move_aside(&db)?)
    } else {
        remove_sidecars(&db);
        None
    };
    let copied = finish(&partial, &db)?;
    Ok((copied, aside))
}

/// Refuses a file that is damaged or is not a Workshop Hub database this version can open.
pub fn check_backup(path: &Path) -> Result<()> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| not_a_backup(path, &e.to_string()))?;
    let verdict: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(|e| not_a_backup(path, &e.to_string()))?;
    if verdict != "ok" {
        return Err(not_a_backup(path, &verdict));
    }
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let has_vault: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'vault')",
        [],
        |r| r.get(0),
    )?;
    if version == 0 || !has_vault {
        return Err(not_a_backup(path, "it is not a Workshop Hub database"));
    }
    if version > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            path: path.to_path_buf(),
            found: version,
            known: SCHEMA_VERSION,
        });
    }
    Ok(())
}

fn vacuum_into(db: &Path, partial: &Path) -> Result<()> {
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_WRITE)
        .map_err(|e| StoreError::Conflict(format!("cannot open {}: {e}", db.display())))?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    let target = partial.to_str().ok_or_else(|| {
        StoreError::Conflict(format!(
            "the backup path {} is not valid UTF-8",
            partial.display()
        ))
    })?;
    conn.execute("VACUUM INTO ?1", [target])?;
    Ok(())
}

fn check_integrity(path: &Path) -> Result<()> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let verdict: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    if verdict == "ok" {
        Ok(())
    } else {
        Err(not_a_backup(path, &verdict))
    }
}

/// Flushes `partial`, renames it to `dest` and flushes the directory entry.
fn finish(partial: &Path, dest: &Path) -> Result<Copied> {
    fs::set_permissions(partial, fs::Permissions::from_mode(0o600))
        .map_err(|source| io(partial, source))?;
    sync(partial)?;
    fs::rename(partial, dest).map_err(|source| io(dest, source))?;
    if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    let bytes = fs::metadata(dest).map_err(|source| io(dest, source))?.len();
    Ok(Copied {
        path: dest.to_path_buf(),
        bytes,
    })
}

/// `.NAME.partial` beside `dest`: never mistaken for a finished backup.
pub fn partial_name(dest: &Path) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "backup".to_string());
    dest.with_file_name(format!(".{name}.partial"))
}

fn move_aside(db: &Path) -> Result<PathBuf> {
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    let aside = db.with_file_name(format!("{DB_FILE}.before-restore-{stamp}"));
    fs::rename(db, &aside).map_err(|source| io(db, source))?;
    for suffix in ["-wal", "-shm"] {
        let from = sidecar(db, suffix);
        if from.exists() {
            let _ = fs::rename(&from, sidecar(&aside, suffix));
        }
    }
    Ok(aside)
}

/// A WAL left by another database must never be replayed into the restored one.
fn remove_sidecars(db: &Path) {
    for suffix in ["-wal", "-shm"] {
        let _ = fs::remove_file(sidecar(db, suffix));
    }
}

fn sidecar(db: &Path, suffix: &str) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn create_empty_private(path: &Path) -> Result<()> {
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|source| io(path, source))?;
    Ok(())
}

fn sync(path: &Path) -> Result<()> {
    fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|source| io(path, source))
}

fn io(path: &Path, source: std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn not_a_backup(path: &Path, detail: &str) -> StoreError {
    StoreError::Damaged {
        path: path.to_path_buf(),
        detail: detail.to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[test]
    fn a_backup_is_private_checked_and_restores_only_with_force() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("live");
        let store = Store::open(&live).unwrap();
        let dest = dir.path().join("copy.db");
        let copied = backup(store.path(), &dest).unwrap();
        assert!(copied.bytes > 0);
        assert_eq!(
            fs::metadata(&dest).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(!partial_name(&dest).exists());
        check_backup(&dest).unwrap();

        let err = restore(&dest, &live, false).unwrap_err().to_string();
        assert!(err.contains("--force"), "{err}");
        drop(store);
        let (_, aside) = restore(&dest, &live, true).unwrap();
        assert!(aside.unwrap().exists(), "the old database is kept aside");
        Store::open(&live).unwrap();

        let fresh = dir.path().join("fresh");
        let (_, aside) = restore(&dest, &fresh, false).unwrap();
        assert!(aside.is_none());
        Store::open(&fresh).unwrap();
    }

    #[test]
    fn damaged_or_foreign_files_are_not_restored() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.db");
        fs::write(&junk, vec![0x42u8; 8192]).unwrap();
        assert!(restore(&junk, &dir.path().join("a"), false).is_err());
        let other = dir.path().join("other.db");
        Connection::open(&other)
            .unwrap()
            .execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1);")
            .unwrap();
        let err = restore(&other, &dir.path().join("b"), false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a Workshop Hub database"), "{err}");
        assert!(!dir.path().join("b").join(DB_FILE).exists());
    }
}
