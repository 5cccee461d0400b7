//! What one command writes.

use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::queue::eta::ServiceClock;
use crate::queue::{Appointment, Case, Counter, HallSpec, Mark, RecentCall, Ticket, WindowState};

/// An event as journaled: both encodings, so a replay after a restart sends
/// exactly the bytes the first delivery sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredEvent {
    pub floor: i32,
    pub floor_seq: u64,
    pub hall_seq: u64,
    pub at: DateTime<Utc>,
    /// The floor channel's message (carries `floor_seq`).
    pub floor_msg: Bytes,
    /// The hall channel's message (carries `hall_seq` and `floor`).
    pub hall_msg: Bytes,
}

/// The first answer to a request with an `Idempotency-Key`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyRecord {
    /// Who asked: "admin", "window:3-01", "kiosk:lobby-1" or "ticket:…".
    pub caller: String,
    pub key: String,
    /// Digest of the method, path and body the key was first used with;
    /// `None` for records written before requests were fingerprinted.
    pub request: Option<[u8; 32]>,
    pub created_at: DateTime<Utc>,
    pub status: u16,
    pub body: Bytes,
}

/// After-images of everything one command changed in one hall.
#[derive(Clone, Debug)]
pub struct Batch {
    pub hall: Arc<HallSpec>,
    /// The hall's seq the command ran on: the store's must still be this
    /// when the batch commits, or another writer changed the hall
    /// meanwhile (a conflict, see [`super::Backend::commit`]).
    pub expect_seq: u64,
    /// The hall's version the command ran on, in a cluster: one more for
    /// every batch that writes anything. PostgreSQL refuses the batch as
    /// a conflict when another node moved the hall first (SQLite, a
    /// single writer, leaves it alone).
    pub version: u64,
    /// In a cluster: the hall's fence and the generation of the memory
    /// this batch was computed from. A batch of a generation below the
    /// fence is refused unwritten: an earlier batch of that memory was
    /// refused, so this one builds on a change the database never got.
    pub fence: Option<(Arc<Fence>, u64)>,
    pub tickets: Vec<Ticket>,
    pub appointments: Vec<Appointment>,
    /// Follow-up cases opened or stepped (§10).
    pub cases: Vec<Case>,
    pub windows: Vec<(usize, WindowState)>,
    pub counter: Option<Counter>,
    pub clocks: Vec<(usize, ServiceClock)>,
    pub recent: Vec<RecentCall>,
    pub events: Vec<StoredEvent>,
    pub idempotency: Option<IdempotencyRecord>,
    /// Messages to citizens' phones this change makes (§9).
    pub outbox: Vec<OutboxRecord>,
    /// Citizens' marks (phones, addresses, phone tokens) by key (A2–A4).
    pub marks: Vec<(String, Mark)>,
    /// Names this batch's commit, whatever tries it takes: a store that
    /// lost the answer to a commit finds out whether it happened (A8).
    pub commit_id: i64,
}

impl Batch {
    /// An empty batch for a command that ran on `expect_seq`.
    pub fn new(hall: Arc<HallSpec>, expect_seq: u64) -> Batch {
        Batch {
            hall,
            expect_seq,
            version: 0,
            fence: None,
            tickets: Vec::new(),
            appointments: Vec::new(),
            cases: Vec::new(),
            windows: Vec::new(),
            counter: None,
            clocks: Vec::new(),
            recent: Vec::new(),
            events: Vec::new(),
            idempotency: None,
            outbox: Vec::new(),
            marks: Vec::new(),
            commit_id: rand::random::<i64>(),
        }
    }

    /// A cluster's batch the store refused: every later batch of the same
    /// memory is refused too, and the engine reloads the hall (`Fence`).
    pub fn fence_off(&self) {
        if let Some((fence, generation)) = &self.fence {
            fence.refuse_through(*generation);
        }
    }

    /// Writes nothing: committing it only waits for earlier batches.
    pub fn is_empty(&self) -> bool {
        self.tickets.is_empty()
            && self.appointments.is_empty()
            && self.cases.is_empty()
            && self.windows.is_empty()
            && self.counter.is_none()
            && self.clocks.is_empty()
            && self.recent.is_empty()
            && self.events.is_empty()
            && self.idempotency.is_none()
            && self.outbox.is_empty()
            && self.marks.is_empty()
    }
}

/// A hall's lowest generation of memory whose batches may still commit
/// (contract §14): raised by the writer when a batch of the hall was
/// refused, so that every batch computed after it from the same memory
/// is refused too, and the engine reloads the hall before it runs
/// another command.
#[derive(Debug, Default)]
pub struct Fence(std::sync::atomic::AtomicU64);

impl Fence {
    /// The lowest generation that may commit.
    pub fn floor(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Refuses every generation up to and including `generation`.
    pub fn refuse_through(&self, generation: u64) {
        self.0
            .fetch_max(generation + 1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// Where a message to a citizen's phone is (§9).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutboxStatus {
    Pending,
    Delivered,
    Dead,
    /// Not sent: too late to matter (a reminder once its ticket was called).
    Dropped,
}

impl OutboxStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxStatus::Pending => "pending",
            OutboxStatus::Delivered => "delivered",
            OutboxStatus::Dead => "dead",
            OutboxStatus::Dropped => "dropped",
        }
    }

    pub fn parse(s: &str) -> Option<OutboxStatus> {
        Some(match s {
            "pending" => OutboxStatus::Pending,
            "delivered" => OutboxStatus::Delivered,
            "dead" => OutboxStatus::Dead,
            "dropped" => OutboxStatus::Dropped,
            _ => return None,
        })
    }
}

/// A message to a citizen's phone as the outbox keeps it: written in the
/// same commit as the change that made it, delivered after.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxRecord {
    /// Random, URL-safe; also the delivery's `Idempotency-Key`.
    pub id: String,
    pub hall: String,
    pub kind: String,
    /// The full number: only the webhook body carries it anywhere else.
    pub phone: String,
    /// The ticket it is about, if any.
    pub ticket: Option<u64>,
    /// The booking it is about, if any.
    pub appointment: Option<u64>,
    /// What the webhook body is made from: a ticket's message holds its
    /// facts, rendered at delivery (`wire::rendered`); a booking's holds
    /// the body itself.
    pub body: Bytes,
    pub status: OutboxStatus,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub next_attempt_at: DateTime<Utc>,
}

/// What a delivery attempt (or an admin's retry) changed of a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxUpdate {
    pub hall: String,
    pub id: String,
    pub status: OutboxStatus,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub next_attempt_at: DateTime<Utc>,
}

/// A booking as the admin's day listing shows it (§8), read from the store
/// so that any day can be listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BookingRow {
    pub code: String,
    /// The service's id, also of a service no longer configured.
    pub service: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub status: String,
    /// The number of its ticket, once checked in.
    pub number: Option<String>,
    /// The full number: the listing masks it.
    pub phone: Option<String>,
    /// A real-name booking's holder: the name and the masked ID number
    /// (the only forms the store has).
    pub holder: Option<(String, String)>,
}
