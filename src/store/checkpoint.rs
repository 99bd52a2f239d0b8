//! The checkpointer: a thread with its own connection that copies the WAL back into the
//! database twenty times a second, so no commit (and no request waiting on one) ever runs a
//! checkpoint itself.
//!
//! A passive checkpoint never blocks a writer. Under steady writes it may never catch the
//! WAL's end, so once the WAL is large a restarting checkpoint (which makes new writers wait
//! while it finishes the last frames) lets the next commit start the WAL from its beginning.
//! Passive passes run back to back before it, until the writer has added little since the
//! last one: the writer then waits for a megabyte of frames to be copied, not tens of megabytes
//! (tens of milliseconds under a steady 10,000 calls a second). Before the restart the
//! database file and the WAL are synced with no SQLite lock held, so the restart's own syncs,
//! made while the writer waits, flush only the last few frames (a restart took 30 to 66 ms
//! under steady load, and 8 to 25 ms after this; in `scripts/bench.sh` the p99 at 32
//! concurrent calls fell from 30.6 to 16.8 ms).

use std::fs::File;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

/// How often the WAL is copied back while it grows. Each pass's fsync of the WAL makes a
/// commit that meets it wait for the disk (an append needs the inode's journal block, which
/// the fsync's journal commit is writing), and a larger fsync makes a longer wait: at one
/// call in flight, passes every 200 ms held some calls 2 to 5 ms; every 50 ms, under 2 ms.
/// With nothing to copy a pass costs a few system calls. (Waiting longer while idle let the
/// first second of writes after it pile up for one large fsync, and the calls of that second
/// had a p99 of 12 ms.)
const INTERVAL: Duration = Duration::from_millis(50);
/// WAL size past which a restarting checkpoint runs.
const RESTART_BYTES: i64 = 64 * 1024 * 1024;
/// What is left to copy, below which a restarting checkpoint may make the writer wait.
const CAUGHT_UP_BYTES: i64 = 1024 * 1024;
/// Passive passes at most, before a restart waits for whatever is left.
const MAX_CATCH_UP_PASSES: usize = 8;
/// Bytes a WAL file is cut back to when it restarts: twice what it holds when a restart is
/// due, so only a burst well past that is cut. A cut is made by the first commit after the
/// restart, and on a loaded disk it takes milliseconds that a caller would wait for.
pub const WAL_SIZE_LIMIT: i64 = 2 * RESTART_BYTES;

/// The byte limits above in WAL frames (one page each) of this database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Frames {
    restart: i64,
    caught_up: i64,
}

impl Frames {
    fn of(conn: &Connection) -> Frames {
        let page: i64 = conn
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .unwrap_or(4096)
            .max(512);
        Frames {
            restart: RESTART_BYTES / page,
            caught_up: CAUGHT_UP_BYTES / page,
        }
    }
}

/// Runs until dropped; dropping waits for a checkpoint under way to finish.
pub struct Checkpointer {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    pub fn start(conn: Connection) -> Checkpointer {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let signal = stop.clone();
        let thread = std::thread::Builder::new()
            .name("checkpointer".into())
            .spawn(move || run(&conn, &signal))
            .map_err(|e| tracing::error!(error = %e, "the checkpointer could not start"))
            .ok();
        Checkpointer { stop, thread }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        let (stopped, wake) = &*self.stop;
        *stopped.lock().unwrap_or_else(|p| p.into_inner()) = true;
        wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(conn: &Connection, stop: &(Mutex<bool>, Condvar)) {
    let (stopped, wake) = stop;
    let mut passes = Passes::new(conn);
    let mut guard = stopped.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        let (next, _) = wake
            .wait_timeout(guard, INTERVAL)
            .unwrap_or_else(|p| p.into_inner());
        guard = next;
        if *guard {
            break;
        }
        drop(guard);
        if let Err(e) = passes.checkpoint(conn) {
            tracing::warn!(error = %e, "WAL checkpoint failed; will retry");
        }
        guard = stopped.lock().unwrap_or_else(|p| p.into_inner());
    }
    // A last full copy, so a Hub that stops leaves a small WAL behind.
    drop(guard);
    let _ = passive(conn);
}

/// What the checkpointer keeps from one pass to the next.
struct Passes {
    limits: Frames,
    /// The database file and the WAL, opened once for the early syncs (none in memory).
    db: Option<File>,
    wal: Option<File>,
    /// Frames the last pass left copied: the database file is synced only when a pass
    /// copied more.
    copied: i64,
}

impl Passes {
    fn new(conn: &Connection) -> Passes {
        let path = conn.path().filter(|p| !p.is_empty());
        let open = |suffix: &str| {
            let path = format!("{}{suffix}", path?);
            File::open(&path)
                .map_err(|e| tracing::debug!(error = %e, path, "no early syncs for this file"))
                .ok()
        };
        Passes {
            limits: Frames::of(conn),
            db: open(""),
            wal: open("-wal"),
            copied: 0,
        }
    }

    /// One passive checkpoint, and a restarting one when the WAL has grown large. The
    /// restart makes the writer wait while it copies what is left, so passive passes first
    /// catch up with the writer until little is left, and the wait is short.
    fn checkpoint(&mut self, conn: &Connection) -> rusqlite::Result<()> {
        let (mut frames, mut copied) = passive(conn)?;
        if copied != self.copied {
            early_sync(self.db.as_ref());
        }
        self.copied = copied;
        if frames <= self.limits.restart {
            return Ok(());
        }
        for _ in 0..MAX_CATCH_UP_PASSES {
            if frames - copied <= self.limits.caught_up {
                break;
            }
            (frames, copied) = passive(conn)?;
        }
        early_sync(self.db.as_ref());
        early_sync(self.wal.as_ref());
        conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(()))?;
        self.copied = 0;
        Ok(())
    }
}

/// Flushes a file to disk with no SQLite lock held. After each pass the database's new pages
/// go, a few at a time, instead of all at once before a restart (a sync of 100 ms, after
/// which the restart's own sync under its lock still had the pages copied meanwhile); before
/// a restart the WAL goes too, so the syncs it makes while the writer waits find little left
/// to write. Only ever an extra sync: if one fails, SQLite's own syncs still make each copy
/// durable.
fn early_sync(file: Option<&File>) {
    if let Some(Err(e)) = file.map(File::sync_data) {
        tracing::debug!(error = %e, "an early sync failed");
    }
}

/// A passive checkpoint: the WAL's frames, and how many of them are now in the database.
fn passive(conn: &Connection) -> rusqlite::Result<(i64, i64)> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok((r.get(1)?, r.get(2)?))
    })
}
