//! Durable journal of hall state.
//!
//! The engine hands the writer one [`Batch`] per command: the after-images
//! of the records the command touched and the encoded events it emitted. The
//! writer commits many batches in one transaction (group commit) and only
//! then runs each batch's continuation, in order — so nothing is published
//! or answered before it is durable, and events leave in sequence order.
//!
//! [`Backend`] is the narrow interface a store implements: SQLite for one
//! machine (`sqlite.rs`), PostgreSQL for a cluster (`pg_backend.rs`, its
//! schema in `postgres.rs`). `digests.rs` keeps settled days' statistics
//! in a cache file of their own; `report.rs` holds the rows reports read.

mod batch;
mod checkpointer;
pub mod digests;
mod error;
mod marks;
pub mod pg_backend;
pub mod postgres;
mod report;
mod sqlite;
mod writer;

pub use batch::{
    Batch, BookingRow, Fence, IdempotencyRecord, OutboxRecord, OutboxStatus, OutboxUpdate,
    StoredEvent,
};
pub use digests::Digests;
pub use error::{StoreError, StoreErrorKind};
pub use pg_backend::Postgres;
pub use report::{CaseRow, RatingCount, TicketFact};
pub use sqlite::Sqlite;
pub use writer::{Job, Writer, WriterHandle, WRITE_QUEUE};

use chrono::{DateTime, Utc};

use crate::queue::{CaseStatus, HallSpec, Restored};

/// Idempotency keys are honoured for 24 hours (contract §3).
pub const IDEMPOTENCY_HOURS: i64 = 24;
/// Events kept in memory per floor and per hall for `?after` catch-up; the
/// contract asks for at least 1,000.
pub const EVENT_RING: usize = 1024;

/// A stored Unix-millisecond instant as a time (the epoch for one out of
/// range, which no row of ours holds).
pub fn from_ms(v: i64) -> DateTime<Utc> {
    use chrono::TimeZone;
    Utc.timestamp_millis_opt(v)
        .single()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

/// A booking's holder from its three stored columns (all or none).
fn holder_of(
    name: Option<String>,
    id_hash: Option<String>,
    id_masked: Option<String>,
) -> Option<crate::queue::Holder> {
    Some(crate::queue::Holder {
        name: name?,
        id_hash: id_hash?,
        id_masked: id_masked?,
    })
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
    /// The hall's version (a cluster's order of commits; 0 in SQLite).
    pub version: u64,
}

/// A durable home for hall state.
pub trait Backend: Send + 'static {
    /// Loads what is kept of a hall, as of `now`.
    fn load(&mut self, spec: &HallSpec, now: DateTime<Utc>) -> Result<Loaded, StoreError>;
    /// What other writers changed of a hall after `version`: the records
    /// they wrote (for `Hall::absorb`), the sequences and the version now;
    /// no events. `None` where the store cannot tell (then load it all).
    fn load_since(
        &mut self,
        _spec: &HallSpec,
        _version: u64,
    ) -> Result<Option<Loaded>, StoreError> {
        Ok(None)
    }
    /// Commits all batches atomically and durably, or none of them. Each
    /// batch carries the hall sequence it was computed from
    /// ([`Batch::expect_seq`]); if the store's differs, another writer got
    /// there first and the whole commit is refused as a
    /// [`StoreErrorKind::Conflict`] — never written over.
    fn commit(&mut self, batches: &[&Batch]) -> Result<(), StoreError>;
    /// [`Backend::commit`] and [`Backend::update_outbox`] together, in one
    /// transaction where the store can: deliveries recorded while commands
    /// queue up then cost no commit of their own. All or nothing, as
    /// `commit`.
    fn commit_with_deliveries(
        &mut self,
        batches: &[&Batch],
        deliveries: &[OutboxUpdate],
    ) -> Result<(), StoreError> {
        self.commit(batches)?;
        if deliveries.is_empty() {
            return Ok(());
        }
        self.update_outbox(deliveries)
    }
    /// Drops what is no longer needed (expired idempotency keys …).
    fn maintain(&mut self, now: DateTime<Utc>) -> Result<(), StoreError>;
    /// A small durable write, to learn whether the store takes writes
    /// (A7). Only the writer calls this.
    fn probe(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
    /// Events of a hall (`floor` None) or a floor with sequence > `after`,
    /// oldest first, at most `limit`.
    fn events_after(
        &mut self,
        hall: &str,
        floor: Option<i32>,
        after: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError>;
    /// Pending messages due by `now`, oldest first, at most `limit`.
    fn outbox_due(
        &mut self,
        _now: DateTime<Utc>,
        _limit: usize,
    ) -> Result<Vec<OutboxRecord>, StoreError> {
        Ok(Vec::new())
    }
    /// A hall's messages (of one status), newest first, at most `limit`.
    fn outbox_list(
        &mut self,
        _hall: &str,
        _status: Option<OutboxStatus>,
        _limit: usize,
    ) -> Result<Vec<OutboxRecord>, StoreError> {
        Ok(Vec::new())
    }
    /// A hall's bookings whose slot starts in [`from`, `to`), by start.
    fn appointments_between(
        &mut self,
        _hall: &str,
        _from: DateTime<Utc>,
        _to: DateTime<Utc>,
    ) -> Result<Vec<BookingRow>, StoreError> {
        Ok(Vec::new())
    }
    /// A hall's cases (of one status), newest first.
    fn cases(
        &mut self,
        _hall: &str,
        _status: Option<CaseStatus>,
    ) -> Result<Vec<CaseRow>, StoreError> {
        Ok(Vec::new())
    }
    /// One case of a hall, if the store has it.
    fn case(&mut self, _hall: &str, _id: u64) -> Result<Option<CaseRow>, StoreError> {
        Ok(None)
    }
    /// Ratings given in [`from`, `to`), counted by window, service, level.
    fn rating_counts(
        &mut self,
        _hall: &str,
        _from: DateTime<Utc>,
        _to: DateTime<Utc>,
    ) -> Result<Vec<RatingCount>, StoreError> {
        Ok(Vec::new())
    }
    /// Every ticket issued on the hall-local dates `from` through `to`
    /// (`YYYY-MM-DD`), by date and then issue order. Without `full`, the
    /// columns only the export shows (number, channel, priority) are left
    /// empty: statistics read a year of rows and need none of them.
    fn visit_tickets(
        &mut self,
        _hall: &str,
        _from: &str,
        _to: &str,
        _full: bool,
        _visit: &mut dyn FnMut(&TicketFact<'_>),
    ) -> Result<(), StoreError> {
        Ok(())
    }
    /// Outbox messages by hall and status (`/metrics`).
    fn outbox_counts(&mut self) -> Result<Vec<(String, String, u64)>, StoreError> {
        Ok(Vec::new())
    }
    /// One message of a hall.
    fn outbox_get(&mut self, _hall: &str, _id: &str) -> Result<Option<OutboxRecord>, StoreError> {
        Ok(None)
    }
    /// Records delivery attempts (only the writer calls this).
    fn update_outbox(&mut self, _updates: &[OutboxUpdate]) -> Result<(), StoreError> {
        Ok(())
    }
}
