//! Moves the WAL's pages into the database file on a thread of its own,
//! off the writer.
//!
//! SQLite's automatic checkpoint runs inside the commit that takes the WAL
//! past 1,000 pages: that command's answer — and every command queued
//! behind it — waits while a few MB are written to the database file and
//! it is fsynced (on this machine, every 22 s at 2 calls/s; see
//! BENCHMARKS.md, "Tail"). The writer's connection turns it off, and this
//! thread, with its own connection, checkpoints instead once a second
//! after commits. A passive checkpoint takes no lock a writer waits for:
//! commits go on appending to the WAL meanwhile.
//!
//! Durability is unchanged: a commit is durable once its WAL frames are
//! synced (`synchronous=FULL`, on the writer's connection); a checkpoint
//! only copies what is already durable, and syncs the WAL before and the
//! database file after.

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

use super::StoreError;

/// Commits are checkpointed together at most this often: each checkpoint
/// syncs the database file once, and the disk is the writer's too.
const PAUSE: Duration = Duration::from_secs(1);

/// A WAL longer than this (in pages: 64 MiB) after a passive checkpoint
/// means commits never paused long enough for the WAL to start over: the
/// next checkpoint then waits for the writer (`RESTART`), which briefly
/// holds commits but bounds the file. Far beyond what a city's halls
/// write in a second.
const MAX_WAL_PAGES: i64 = 16_384;

#[derive(Default)]
struct Signal {
    /// Commits happened since the last checkpoint.
    dirty: bool,
    stop: bool,
}

/// The checkpoint thread; stopped (after a last checkpoint) when dropped.
pub struct Checkpointer {
    signal: Arc<(Mutex<Signal>, Condvar)>,
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
        let thread = std::thread::Builder::new()
            .name("hallcast-checkpoint".into())
            .spawn(move || run(&conn, &theirs))
            .map_err(|e| {
                StoreError::unavailable(format!("cannot start the checkpoint thread: {e}"))
            })?;
        Ok(Checkpointer {
            signal,
            thread: Some(thread),
        })
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

fn run(conn: &Connection, signal: &(Mutex<Signal>, Condvar)) {
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
        checkpoint(conn);
        s = lock.lock().unwrap_or_else(|p| p.into_inner());
    }
    drop(s);
    // What the last commits wrote; SQLite also checkpoints when the last
    // connection closes, but that may be a reader's, later.
    checkpoint(conn);
}

/// One passive checkpoint, and a waiting one if the WAL stays too long.
/// A failure is logged and retried at the next commit: until then the
/// pages stay in the WAL, durable, and readers see them there.
fn checkpoint(conn: &Connection) {
    let run = |mode: &str| -> rusqlite::Result<(i64, i64, i64)> {
        conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
    };
    match run("PASSIVE") {
        Ok((_, log, _)) if log > MAX_WAL_PAGES => {
            tracing::info!(
                pages = log,
                "the WAL kept growing under load; checkpointing it whole"
            );
            if let Err(e) = run("RESTART") {
                tracing::warn!(error = %e, "WAL checkpoint failed; it is retried after the next commit");
            }
        }
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(error = %e, "WAL checkpoint failed; it is retried after the next commit")
        }
    }
}
