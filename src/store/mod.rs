//! Durable journal of hall state.
//!
//! The engine hands the writer one [`Batch`] per command: the after-images
//! of the records the command touched and the encoded events it emitted. The
//! writer commits many batches in one transaction (group commit) and only
//! then runs each batch's continuation, in order — so nothing is published
//! or answered before it is durable, and events leave in sequence order.
//!
//! [`Backend`] is the narrow interface a store implements: SQLite for one
//! machine now; PostgreSQL for a cluster later implements the same trait.

mod batch;
mod sqlite;
mod writer;

pub use batch::{Batch, IdempotencyRecord, StoredEvent};
pub use sqlite::Sqlite;
pub use writer::{Job, Writer, WriterHandle, WRITE_QUEUE};

use chrono::{DateTime, Utc};

use crate::queue::{HallSpec, Restored};

/// Tickets older than this that are finished are not loaded into memory on
/// start (they stay in the store); two days covers "yesterday's ticket" on
/// a citizen's phone.
pub const LOAD_FINISHED_HOURS: i64 = 48;
/// Idempotency keys are honoured for 24 hours (contract §3).
pub const IDEMPOTENCY_HOURS: i64 = 24;
/// Events kept in memory per floor and per hall for `?after` catch-up; the
/// contract asks for at least 1,000.
pub const EVENT_RING: usize = 1024;

/// A store failure. The message says what to check.
#[derive(Debug, Clone, thiserror::Error)]
#[error("store: {0}")]
pub struct StoreError(pub String);

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError(e.to_string())
    }
}

/// A commit that did not happen; `transient` when trying again may work
/// (the database was busy, the disk hiccupped or was full).
#[derive(Debug, Clone)]
pub struct CommitError {
    pub transient: bool,
    pub error: StoreError,
}

impl From<rusqlite::Error> for CommitError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode::*;
        let transient = matches!(
            e.sqlite_error_code(),
            Some(DatabaseBusy | DatabaseLocked | SystemIoFailure | DiskFull)
        );
        CommitError {
            transient,
            error: e.into(),
        }
    }
}

impl From<StoreError> for CommitError {
    fn from(error: StoreError) -> Self {
        CommitError {
            transient: false,
            error,
        }
    }
}

/// What the store kept of one hall.
#[derive(Debug, Default)]
pub struct Loaded {
    pub state: Restored,
    /// The newest events of the hall (up to [`EVENT_RING`] for the hall
    /// channel and for each floor), oldest first.
    pub events: Vec<StoredEvent>,
    /// Idempotency records younger than [`IDEMPOTENCY_HOURS`].
    pub idempotency: Vec<IdempotencyRecord>,
}

/// A durable home for hall state.
pub trait Backend: Send + 'static {
    /// Loads what is kept of a hall, as of `now`.
    fn load(&mut self, spec: &HallSpec, now: DateTime<Utc>) -> Result<Loaded, StoreError>;
    /// Commits all batches atomically and durably, or none of them.
    fn commit(&mut self, batches: &[&Batch]) -> Result<(), CommitError>;
    /// Drops what is no longer needed (expired idempotency keys …).
    fn maintain(&mut self, now: DateTime<Utc>) -> Result<(), StoreError>;
    /// Events of a hall (`floor` None) or a floor with sequence > `after`,
    /// oldest first, at most `limit`.
    fn events_after(
        &mut self,
        hall: &str,
        floor: Option<i32>,
        after: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError>;
}
