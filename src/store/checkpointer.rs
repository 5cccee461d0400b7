//! Moves the WAL's pages into the database file on a thread of its own,
//! off the writer.
//!
//! SQLite's automatic checkpoint runs inside the commit that takes the WAL
//! past 1,000 pages: that command's answer — and every command queued
//! behind it — waits while a few MB are written to the database file and
//! it is fsynced (on this machine, every 22 s at 2 calls/s; see
//! BENCHMARKS.md, "Tail: disk against tmpfs"). The writer's connection
//! turns it off, and this thread, with its own connection, checkpoints
//! instead once a second after commits. A passive checkpoint takes no
//! lock a writer waits for: commits go on appending to the WAL meanwhile.
//! Only under sustained load does the writer checkpoint, once in a while
//! and briefly (see [`MAX_WAL_PAGES`]).
//!
//! Durability is unchanged: a commit is durable once its WAL frames are
//! synced (`synchronous=FULL`, on the writer's connection); a checkpoint
//! only copies what is already durable, and syncs the WAL before and the
//! database file after.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

use super::StoreError;

/// Commits are checkpointed together at most this often: each checkpoint
/// syncs the database file once, and the disk is the writer's too.
const PAUSE: Duration = Duration::from_secs(1);

/// A WAL longer than this (in pages: 16 MiB) after a passive checkpoint
/// means commits never paused long enough for the WAL to start over: it
/// starts over only at a write that finds every frame copied, and under
/// sustained load the writer always has new ones. The writer is then
/// asked to checkpoint once itself, between two commits: the frames since
/// this thread's pass are few, so that is quick, and the next commit
/// starts the WAL over. (A `RESTART` checkpoint from here would do the
/// same by locking the writer out, and SQLite's busy handler then sleeps
/// it for tens of milliseconds: measured, p99.9 17 → 30–43 ms.)
const MAX_WAL_PAGES: i64 = 4_096;

#[derive(Default)]
struct Signal {
    /// Commits happened since the last checkpoint.
    dirty: bool,
    stop: bool,
}

/// The checkpoint thread; stopped (after a last checkpoint) when dropped.
pub struct Checkpointer {
    signal: Arc<(Mutex<Signal>, Condvar)>,
    /// Set when the writer should checkpoint once (see [`MAX_WAL_PAGES`]).
    writer_turn: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts checkpointing the database at `path`, which is in WAL mode.
    pub fn start(path: &Path) -> Result<Checkpointer, StoreError> {
        let conn = Connection::open(path).map_err(|e| {
            StoreError::unavailable(format!("cannot open {} to checkpoint: {e}", path.display()))
        })?;
        // The checkpoint syncs as the connection running it is set to.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(Duration::from_secs(5))?;
        let signal = Arc::new((Mutex::new(Signal::default()), Condvar::new()));
        let theirs = signal.clone();
        let writer_turn = Arc::new(AtomicBool::new(false));
        let turn = writer_turn.clone();
        let thread = std::thread::Builder::new()
            .name("hallcast-checkpoint".into())
            .spawn(move || run(&conn, &theirs, &turn))
            .map_err(|e| {
                StoreError::unavailable(format!("cannot start the checkpoint thread: {e}"))
            })?;
        Ok(Checkpointer {
            signal,
            writer_turn,
            thread: Some(thread),
        })
    }

    /// Whether the writer should checkpoint now, once.
    pub fn writer_turn(&self) -> bool {
        self.writer_turn.swap(false, Ordering::AcqRel)
    }

    /// Tells the thread that a commit landed. Never waits for it.
    pub fn committed(&self) {
        let (lock, wake) = &*self.signal;
        let mut s = lock.lock().unwrap_or_else(|p| p.into_inner());
        if !s.dirty {
            s.dirty = true;
            wake.notify_one();
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        {
            let (lock, wake) = &*self.signal;
            lock.lock().unwrap_or_else(|p| p.into_inner()).stop = true;
            wake.notify_one();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(conn: &Connection, signal: &(Mutex<Signal>, Condvar), writer_turn: &AtomicBool) {
    let (lock, wake) = signal;
    let mut s = lock.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        while !s.dirty && !s.stop {
            s = wake.wait(s).unwrap_or_else(|p| p.into_inner());
        }
        if s.stop {
            break;
        }
        // Let the commits of the next moment join this checkpoint.
        s = wake
            .wait_timeout_while(s, PAUSE, |s| !s.stop)
            .unwrap_or_else(|p| p.into_inner())
            .0;
        s.dirty = false;
        drop(s);
        if checkpoint(conn).is_some_and(|pages| pages > MAX_WAL_PAGES) {
            writer_turn.store(true, Ordering::Release);
        }
        s = lock.lock().unwrap_or_else(|p| p.into_inner());
    }
    drop(s);
    // What the last commits wrote; SQLite also checkpoints when the last
    // connection closes, but that may be a reader's, later.
    checkpoint(conn);
}

/// One passive checkpoint on `conn`: the WAL's length in pages. A
/// failure is logged and retried after the next commit: until then the
/// pages stay in the WAL, durable, and readers see them there.
pub fn checkpoint(conn: &Connection) -> Option<i64> {
    let pages = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get(1));
    match pages {
        Ok(pages) => Some(pages),
        Err(e) => {
            tracing::warn!(error = %e, "WAL checkpoint failed; it is retried after the next commit");
            None
        }
    }
}
