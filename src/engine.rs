//! The hall engine: where a command meets the journal and the hub.
//!
//! A command runs against a hall's in-memory state under that hall's lock
//! (microseconds: the domain is pure), is rendered into its HTTP answer,
//! and its batch is queued to the store writer while the lock is still
//! held, so batches — and so events — reach the writer in sequence order.
//! The caller gets its answer only after the commit; subscribers get the
//! events only after the commit, from the writer thread, in order.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use base64::Engine as _;
use bytes::Bytes;
use chrono::{DateTime, Duration, Utc};
use rand::RngCore;
use tokio::sync::oneshot;

use crate::announcer::Announcer;
use crate::bus::{Bus, Committed, TicketMessage};
use crate::hub::Hub;
use crate::notify;
use crate::queue::{EventKind, Hall, HallSpec, Outcome, QueueError, Status};
use crate::report::{Dates, Stats, MAX_DATES};
use crate::store::digests::{self, Digests};
use crate::store::Job;
use crate::store::{
    Backend, Batch, Fence, IdempotencyRecord, StoreError, StoreErrorKind, StoredEvent,
    WriterHandle, IDEMPOTENCY_HOURS,
};
use crate::store::{OutboxRecord, OutboxStatus, OutboxUpdate};
use crate::wire::{self, ApiError, Reply};

/// Who sent a command, for idempotency scoping.
pub type CallerId = String;

/// A request's `Idempotency-Key` and what it names: a digest of the
/// method, path and body, so one key cannot stand for two requests
/// (contract §13).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Idempotency {
    pub key: String,
    pub request: [u8; 32],
}

impl Idempotency {
    /// The key of a request with this method, path and body.
    pub fn new(key: &str, method: &str, path: &str, body: &[u8]) -> Idempotency {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        // Lengths first, so no two (method, path, body) share a digest.
        for part in [method.as_bytes(), path.as_bytes(), body] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part);
        }
        Idempotency {
            key: key.to_string(),
            request: h.finalize().into(),
        }
    }
}

/// Why a command got no answer of its own.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CommandError {
    /// The store cannot take it now (503).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The key was first used for another request (422).
    #[error("this Idempotency-Key was already used for another request (method, path or body differ); use a new key")]
    IdempotencyMismatch,
}

/// A command's own refusals as the contract's errors.
impl From<CommandError> for ApiError {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::Store(e) => e.into(),
            m @ CommandError::IdempotencyMismatch => {
                ApiError::new_status(422, "idempotency_mismatch", m.to_string())
            }
        }
    }
}

/// One hall's live state and its idempotency memory.
pub struct HallCell {
    pub hall: Hall,
    idempotency: HashMap<(CallerId, String), IdempotencyRecord>,
    /// The hall's version this memory is at, its own queued batches
    /// counted (a cluster's order of commits; see `store::Batch::version`).
    version: u64,
    /// Which memory this is: raised at every reload, so that a refusal
    /// of a batch of the memory before (`store::Fence`) leaves this one be.
    generation: u64,
}

/// Whether `hall` holds event `e`, as far as a phone can tell: a `called`
/// event is held when a ticket's latest call is that one (floor, seq and
/// time to the millisecond, as the bus carries it); other events always.
fn holds_call(hall: &Hall, e: &StoredEvent) -> bool {
    const CALLED: &[u8] = br#""type":"called""#;
    if !e.floor_msg.windows(CALLED.len()).any(|w| w == CALLED) {
        return true;
    }
    let ms = e.at.timestamp_millis();
    hall.tickets().any(|t| {
        t.last_call.is_some_and(|c| {
            c.floor == e.floor && c.seq == e.floor_seq && c.at.timestamp_millis() == ms
        })
    })
}

/// How long a request about a ticket token this node does not know waits
/// for another node's commit to arrive (the poll's period and some).
const TOKEN_WAIT: std::time::Duration = std::time::Duration::from_millis(1500);

/// How long a command in a cluster keeps trying: each conflict means
/// another node committed to the hall first, and each retry runs on its
/// state. Nodes that keep writing one hall at once would otherwise take
/// turns losing: after a conflict a node waits a random while, longer
/// each time (full jitter), so that one of them gets through.
const CONFLICT_BUDGET: std::time::Duration = std::time::Duration::from_secs(5);

/// The longest of those waits, in milliseconds.
const CONFLICT_PAUSE_MAX_MS: u64 = 64;

/// After a reload from the cluster's store failed, the next is tried
/// no sooner than this: a database that is down must not be asked again
/// by every read.
const RELOAD_BACKOFF: std::time::Duration = std::time::Duration::from_secs(1);

/// What tells a node in a cluster that its memory of a hall is behind
/// the database.
struct Freshness {
    /// The newest version of the hall the database is known to have (the
    /// bus and the poll raise it).
    known: std::sync::atomic::AtomicU64,
    /// Raised by the writer when a batch of the hall was refused.
    fence: Arc<Fence>,
    /// Where the hall is reloaded from (the history connection).
    store: Arc<Mutex<Box<dyn Backend>>>,
    /// When a reload last failed.
    failed_at: Mutex<Option<std::time::Instant>>,
}

/// Announcement ids are served for this long after their call (contract
/// §13: calls of today, or still in a floor's ring): screens fetch a
/// call's audio when it arrives, and never speak one two minutes old.
const CALLS_KEPT_HOURS: i64 = 48;

/// One hall.
pub struct HallEngine {
    pub spec: Arc<HallSpec>,
    cell: Mutex<HallCell>,
    /// Ids of the announcements this hall's calls made, with when: only
    /// these are composed for `GET /announcements/{id}.wav`, so a loop of
    /// made-up ids can neither burn CPU nor evict the cache.
    calls: Mutex<HashMap<String, DateTime<Utc>>>,
    /// In a cluster: when this node's memory of the hall is behind.
    cluster: Option<Freshness>,
    /// This node's batches of the hall queued and not yet committed or
    /// refused: while there are any, memory is ahead of the store, and
    /// only a whole reload brings it to what the store has.
    in_flight: Arc<std::sync::atomic::AtomicU64>,
}

impl HallEngine {
    /// Locks the hall's state. A poisoned lock means a panic inside a
    /// command; the domain mutates only after its checks, so the state is
    /// still whole and serving goes on. In a cluster the state is first
    /// brought up to what the database has, when another node changed it:
    /// every command and every read sees the cluster's latest state.
    pub fn lock(&self) -> MutexGuard<'_, HallCell> {
        let mut cell = self.cell.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = &self.cluster {
            let behind = f.known.load(std::sync::atomic::Ordering::Acquire) > cell.version;
            if behind || f.fence.floor() > cell.generation {
                self.reload(f, &mut cell);
            }
        }
        cell
    }

    /// [`HallEngine::lock`], reloading as well when memory lacks a call of
    /// `events` (committed, by another node when memory lacks it). Memory
    /// with batches of its own in flight counts them in its version, so it
    /// can be at another node's version without holding that node's
    /// commit: then every batch in flight was computed on a stale hall and
    /// is refused before it reaches the store, and the hall is read again.
    pub fn lock_holding(&self, events: &[StoredEvent]) -> MutexGuard<'_, HallCell> {
        let mut cell = self.lock();
        if let Some(f) = &self.cluster {
            if events.iter().any(|e| !holds_call(&cell.hall, e)) {
                f.fence.refuse_through(cell.generation);
                self.reload(f, &mut cell);
            }
        }
        cell
    }

    /// Reloads the hall from the cluster's store (blocking: off the async
    /// threads' turn where there is a runtime).
    fn reload(&self, f: &Freshness, cell: &mut HallCell) {
        {
            let failed = f.failed_at.lock().unwrap_or_else(|p| p.into_inner());
            if failed.is_some_and(|t| t.elapsed() < RELOAD_BACKOFF) {
                return;
            }
        }
        let now = Utc::now();
        // Only what other nodes wrote since, when memory is exactly the
        // store at its version (nothing of its own in flight, no refusal
        // since): a line of thousands of tickets is not read again for
        // each call another node makes.
        let delta = f.fence.floor() <= cell.generation
            && self.in_flight.load(std::sync::atomic::Ordering::Acquire) == 0;
        let since = cell.version;
        let load = || {
            let mut store = f.store.lock().unwrap_or_else(|p| p.into_inner());
            if delta {
                if let Some(d) = store.load_since(&self.spec, since)? {
                    return Ok((d, true));
                }
            }
            store.load(&self.spec, now).map(|l| (l, false))
        };
        let loaded = match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(load)
            }
            _ => load(),
        };
        match loaded {
            Ok((d, true)) => {
                cell.hall.absorb(d.state);
                for r in d.idempotency {
                    cell.idempotency
                        .insert((r.caller.clone(), r.key.clone()), r);
                }
                cell.version = cell.version.max(d.version);
                *f.failed_at.lock().unwrap_or_else(|p| p.into_inner()) = None;
                tracing::debug!(hall = %self.spec.id, version = cell.version, "took in other nodes' changes");
            }
            Ok((loaded, false)) => {
                for e in &loaded.events {
                    if let Some(id) = wire::announcement_id(&e.floor_msg) {
                        self.note_call(id, e.at);
                    }
                }
                cell.hall = Hall::restore(self.spec.clone(), loaded.state);
                cell.idempotency = idempotency_map(loaded.idempotency);
                cell.version = loaded.version;
                cell.generation = (cell.generation + 1).max(f.fence.floor());
                *f.failed_at.lock().unwrap_or_else(|p| p.into_inner()) = None;
                tracing::debug!(hall = %self.spec.id, version = cell.version, "hall reloaded from the cluster's store");
            }
            Err(e) => {
                *f.failed_at.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some(std::time::Instant::now());
                tracing::warn!(hall = %self.spec.id, error = %e, "cannot reload the hall from the cluster's store; serving what this node has");
            }
        }
    }

    /// Another node committed the hall at `version` (the bus or the poll
    /// said so): the next lock reloads it.
    pub fn saw_version(&self, version: u64) {
        if let Some(f) = &self.cluster {
            f.known
                .fetch_max(version, std::sync::atomic::Ordering::AcqRel);
        }
    }

    /// Remembers the calls among events committed on another node, so
    /// their announcements are served here too.
    pub fn note_calls(&self, events: &[StoredEvent]) {
        for e in events {
            if let Some(id) = wire::announcement_id(&e.floor_msg) {
                self.note_call(id, e.at);
            }
        }
    }

    /// This hall made a call announced with this id (and not too long ago).
    pub fn made_call(&self, id: &str) -> bool {
        self.calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(id)
    }

    fn note_call(&self, id: String, at: DateTime<Utc>) {
        self.calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, at);
    }

    /// Reads the hall's state.
    pub fn read<R>(&self, f: impl FnOnce(&Hall) -> R) -> R {
        f(&self.lock().hall)
    }
}

/// Every hall, the writer, the bus and the hub.
pub struct Engine {
    halls: Vec<HallEngine>,
    /// A read connection for catch-up beyond the hub's rings.
    history: Arc<Mutex<Box<dyn Backend>>>,
    /// Read connections for reports (statistics, exports, listings): a
    /// year's statistics take the better part of a second, and a screen's
    /// catch-up must not wait behind them. Several, so one year's
    /// statistics can read its parts at once.
    reports: Vec<Arc<Mutex<Box<dyn Backend>>>>,
    /// Settled days' statistics, when the store has a place for them.
    digests: Option<Arc<Digests>>,
    writer: WriterHandle,
    /// Where committed batches go; the local hub on one node.
    bus: Arc<dyn Bus>,
    /// This node's subscribers (rings, topics), for the gateway.
    hub: Arc<Hub>,
    /// Told when a commit wrote messages to the outbox.
    outbox_wake: Arc<tokio::sync::Notify>,
    announcer: Arc<Announcer>,
    /// In a cluster: the last look at PostgreSQL failed (contract §14:
    /// `/readyz` is 503 while it is unreachable, commands or not).
    store_unreachable: std::sync::atomic::AtomicBool,
    /// Turns for report reads (A7): public summaries, statistics, exports
    /// and listings together never hold more than this node's share of the
    /// store, and never starve each other past a 503.
    report_turns: Arc<tokio::sync::Semaphore>,
}

/// Report reads that run at once in a node (A7).
pub const REPORT_READS_AT_ONCE: usize = 4;

/// A report read waits this long for its turn, then is answered 503.
pub const REPORT_TURN_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Idempotency records as the engine looks them up: by caller and key.
fn idempotency_map(
    records: Vec<IdempotencyRecord>,
) -> HashMap<(CallerId, String), IdempotencyRecord> {
    records
        .into_iter()
        .map(|r| ((r.caller.clone(), r.key.clone()), r))
        .collect()
}

/// A new ticket token: 144 random bits, URL-safe.
pub fn new_token() -> String {
    let mut b = [0u8; 18];
    rand::rng().fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// A hall's new key for hashing ID numbers (A4): 256 random bits, made
/// once per hall and kept in its state.
pub fn new_key() -> Vec<u8> {
    let mut b = vec![0u8; 32];
    rand::rng().fill_bytes(&mut b);
    b
}

/// A phone's new code (A2): 6 random digits.
pub fn new_phone_code() -> String {
    use rand::Rng;
    format!("{:06}", rand::rng().random_range(0..1_000_000u32))
}

/// A new booking code: 6 characters without look-alikes (§8).
pub fn new_code() -> String {
    use rand::Rng;
    let alphabet = crate::queue::appointment::CODE_ALPHABET;
    let mut rng = rand::rng();
    (0..crate::queue::appointment::CODE_LEN)
        .map(|_| alphabet[rng.random_range(0..alphabet.len())] as char)
        .collect()
}

impl Engine {
    /// Loads every hall from the store and fills the hub's rings. The hub
    /// is also the bus until [`Engine::with_bus`] says otherwise.
    pub fn load(
        specs: &[Arc<HallSpec>],
        mut backend: Box<dyn Backend>,
        writer: WriterHandle,
        hub: Arc<Hub>,
        announcer: Arc<Announcer>,
        now: DateTime<Utc>,
    ) -> Result<Engine, StoreError> {
        let mut halls = Vec::new();
        for spec in specs {
            let loaded = backend.load(spec, now)?;
            hub.preload(&spec.id, &loaded.events);
            let idempotency = idempotency_map(loaded.idempotency);
            let hall = Hall::restore(spec.clone(), loaded.state);
            // The calls still in the rings, and today's calls (older
            // than the rings on a busy floor) as their tickets remember them.
            let mut calls = HashMap::new();
            for e in &loaded.events {
                if let Some(id) = wire::announcement_id(&e.floor_msg) {
                    calls.insert(id, e.at);
                }
            }
            let today = hall.local_day(now);
            for t in hall.tickets() {
                if let (Some(w), Some(at)) = (t.window, t.called_at) {
                    let floor = spec.windows[w].floor;
                    if t.day == today {
                        if let Some((id, _)) = announcer.announce(spec, floor, &t.number, w) {
                            calls.insert(id, at);
                        }
                    }
                }
            }
            tracing::info!(
                hall = %spec.id,
                hall_seq = hall.hall_seq(),
                "hall state loaded"
            );
            halls.push(HallEngine {
                spec: spec.clone(),
                cell: Mutex::new(HallCell {
                    hall,
                    idempotency,
                    version: loaded.version,
                    generation: 0,
                }),
                calls: Mutex::new(calls),
                cluster: None,
                in_flight: Arc::default(),
            });
        }
        let history = Arc::new(Mutex::new(backend));
        Ok(Engine {
            halls,
            reports: vec![history.clone()],
            digests: None,
            history,
            writer,
            bus: hub.clone(),
            hub,
            outbox_wake: Arc::new(tokio::sync::Notify::new()),
            announcer,
            store_unreachable: std::sync::atomic::AtomicBool::new(false),
            report_turns: Arc::new(tokio::sync::Semaphore::new(REPORT_READS_AT_ONCE)),
        })
    }

    /// One node of a cluster (contract §14): every hall is reloaded from
    /// the store whenever another node committed to it since, and its
    /// batches are fenced (see `store::Fence`).
    pub fn clustered(mut self) -> Engine {
        for h in &mut self.halls {
            let version = h.cell.get_mut().map(|c| c.version).unwrap_or(0);
            h.cluster = Some(Freshness {
                known: std::sync::atomic::AtomicU64::new(version),
                fence: Arc::new(Fence::default()),
                store: self.history.clone(),
                failed_at: Mutex::new(None),
            });
        }
        self
    }

    /// Publishes committed batches to `bus` instead of the local hub (a
    /// bus between nodes, or a test's recorder).
    pub fn with_bus(mut self, bus: Arc<dyn Bus>) -> Engine {
        self.bus = bus;
        self
    }

    /// Reads reports on connections of their own instead of the
    /// history's (at least one).
    pub fn with_reports(mut self, reports: Vec<Box<dyn Backend>>) -> Engine {
        if !reports.is_empty() {
            self.reports = reports
                .into_iter()
                .map(|b| Arc::new(Mutex::new(b)))
                .collect();
        }
        self
    }

    /// Keeps settled days' statistics in `digests` (else every range is
    /// counted from its tickets).
    pub fn with_digests(mut self, digests: Digests) -> Engine {
        self.digests = Some(Arc::new(digests));
        self
    }

    /// The statistics of `dates` for a hall, from the store: settled days
    /// from their digests, the others from their tickets. A range longer
    /// than a month is read in parts at once, one per report connection
    /// (a year of tickets is about a second of one core; its digests a
    /// small part of that).
    pub async fn stats(&self, spec: Arc<HallSpec>, dates: Dates) -> Result<Stats, StoreError> {
        const SPLIT_OVER_DATES: i64 = 31;
        let parts = if dates.len() > SPLIT_OVER_DATES {
            dates.split(self.reports.len())
        } else {
            vec![dates]
        };
        let now = Utc::now();
        let reads = parts.into_iter().enumerate().map(|(i, part)| {
            let spec = spec.clone();
            let digests = self.digests.clone();
            self.read_reports_on(i, "statistics", move |b| {
                digests::stats_between(b, digests.as_deref(), &spec, part, now)
            })
        });
        let mut all = Stats::new(&spec);
        for part in futures_util::future::join_all(reads).await {
            all.merge(part?);
        }
        Ok(all)
    }

    /// Cuts the digests of every hall's settled days of the last year
    /// that have none yet, so that the first year asked for is not the
    /// one that cuts them. Run at start and then hourly: a day settles
    /// about a week after it ends.
    pub async fn warm_digests(&self) {
        if self.digests.is_none() {
            return;
        }
        for h in &self.halls {
            let today = Utc::now().with_timezone(&h.spec.timezone).date_naive();
            let dates = Dates {
                from: today - Duration::days(MAX_DATES - 1),
                to: today,
            };
            if let Err(e) = self.stats(h.spec.clone(), dates).await {
                tracing::warn!(hall = %h.spec.id, error = %e, "could not cut the statistics of settled days; retried in an hour");
            }
        }
    }

    /// A hall by id.
    pub fn hall(&self, id: &str) -> Option<&HallEngine> {
        self.halls.iter().find(|h| h.spec.id == id)
    }

    /// Every hall, in config order.
    pub fn halls(&self) -> &[HallEngine] {
        &self.halls
    }

    /// The hub that fans events out.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// The announcer that voices calls.
    pub fn announcer(&self) -> &Arc<Announcer> {
        &self.announcer
    }

    /// State is loaded and the store takes writes.
    pub fn is_ready(&self) -> bool {
        !self.writer.is_failed()
            && !self.writer.is_refusing()
            && !self
                .store_unreachable
                .load(std::sync::atomic::Ordering::Acquire)
    }

    /// What the cluster's last look at its store found.
    pub fn store_reachable(&self, reachable: bool) {
        self.store_unreachable
            .store(!reachable, std::sync::atomic::Ordering::Release);
    }

    /// Has the outbox looked at now (a message was made pending again).
    pub fn wake_outbox(&self) {
        self.outbox_wake.notify_one();
    }

    /// Resolves when a commit wrote messages to the outbox.
    pub async fn outbox_written(&self) {
        self.outbox_wake.notified().await
    }

    /// Runs `read` on the read connection, off the async threads.
    async fn read_store<T: Send + 'static>(
        &self,
        what: &'static str,
        read: impl FnOnce(&mut dyn Backend) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let history = self.history.clone();
        tokio::task::spawn_blocking(move || {
            let mut b = history.lock().unwrap_or_else(|p| p.into_inner());
            read(&mut **b)
        })
        .await
        .map_err(|e| StoreError::unavailable(format!("{what} read failed: {e}")))?
    }

    /// Runs `read` on the reports' connection, off the async threads.
    pub async fn read_reports<T: Send + 'static>(
        &self,
        what: &'static str,
        read: impl FnOnce(&mut dyn Backend) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.read_reports_on(0, what, read).await
    }

    /// [`Engine::read_reports`] preferring report connection `i` (modulo
    /// their number): it waits for a turn ([`REPORT_READS_AT_ONCE`], 503
    /// after [`REPORT_TURN_WAIT`]), then takes the first free connection
    /// from `i` on, so a public summary does not queue behind an admin's
    /// year of statistics while another connection idles.
    pub async fn read_reports_on<T: Send + 'static>(
        &self,
        i: usize,
        what: &'static str,
        read: impl FnOnce(&mut dyn Backend) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let turn = self.report_turn(what).await?;
        let n = self.reports.len();
        let reports: Vec<_> = (0..n).map(|k| self.reports[(i + k) % n].clone()).collect();
        tokio::task::spawn_blocking(move || {
            let _turn = turn;
            let free = reports.iter().find_map(|r| r.try_lock().ok());
            let mut b = match free {
                Some(b) => b,
                None => reports[0].lock().unwrap_or_else(|p| p.into_inner()),
            };
            read(&mut **b)
        })
        .await
        .map_err(|e| StoreError::unavailable(format!("{what} read failed: {e}")))?
    }

    /// A turn for a report read, or 503 after [`REPORT_TURN_WAIT`].
    pub async fn report_turn(
        &self,
        what: &str,
    ) -> Result<tokio::sync::OwnedSemaphorePermit, StoreError> {
        match tokio::time::timeout(REPORT_TURN_WAIT, self.report_turns.clone().acquire_owned())
            .await
        {
            Ok(Ok(p)) => Ok(p),
            _ => Err(StoreError::unavailable(format!(
                "{what}: every report reader is busy; retry in a moment"
            ))),
        }
    }

    /// The turns of report reads, for a reader that takes them a piece at
    /// a time (an export, a day at a time).
    pub fn report_turns(&self) -> Arc<tokio::sync::Semaphore> {
        self.report_turns.clone()
    }

    /// The reports' last connection, for a reader that takes it in turns
    /// (an export, a day at a time): the first ones serve the summaries
    /// and statistics first. Blocking: call it off the async threads.
    pub fn reports(&self) -> Arc<Mutex<Box<dyn Backend>>> {
        self.reports[self.reports.len() - 1].clone()
    }

    /// Pending outbox messages due by `now`.
    pub async fn outbox_due(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<OutboxRecord>, StoreError> {
        self.read_store("outbox", move |b| b.outbox_due(now, limit))
            .await
    }

    /// A hall's outbox messages, newest first.
    pub async fn outbox_list(
        &self,
        hall: &str,
        status: Option<OutboxStatus>,
        limit: usize,
    ) -> Result<Vec<OutboxRecord>, StoreError> {
        let hall = hall.to_string();
        self.read_store("outbox", move |b| b.outbox_list(&hall, status, limit))
            .await
    }

    /// One outbox message of a hall.
    pub async fn outbox_get(
        &self,
        hall: &str,
        id: &str,
    ) -> Result<Option<OutboxRecord>, StoreError> {
        let (hall, id) = (hall.to_string(), id.to_string());
        self.read_store("outbox", move |b| b.outbox_get(&hall, &id))
            .await
    }

    /// Records what deliveries (or a retry) changed.
    pub async fn outbox_update(&self, updates: Vec<OutboxUpdate>) -> Result<(), StoreError> {
        self.writer.outbox(updates).await
    }

    /// Journaled events of a hall (`floor` None) or floor after `after`.
    pub async fn history(
        &self,
        hall: &str,
        floor: Option<i32>,
        after: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let hall = hall.to_string();
        self.read_store("history", move |b| {
            b.events_after(&hall, floor, after, limit)
        })
        .await
    }

    /// The hall that issued a ticket token.
    pub fn hall_of_token(&self, token: &str) -> Option<&HallEngine> {
        self.halls
            .iter()
            .find(|h| h.lock().hall.ticket_by_token(token).is_some())
    }

    /// In a cluster, waits (at most [`TOKEN_WAIT`]) until a ticket token
    /// unknown here is known: one issued on another node reaches this one
    /// over NATS within milliseconds, or by the poll within a second. At
    /// once on a single node, and for a token this node knows.
    pub async fn await_token(&self, token: &str) {
        if self.halls.iter().all(|h| h.cluster.is_none()) {
            return;
        }
        let until = std::time::Instant::now() + TOKEN_WAIT;
        while self.hall_of_token(token).is_none() && std::time::Instant::now() < until {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// The hall that holds a booking token.
    pub fn hall_of_appointment(&self, token: &str) -> Option<&HallEngine> {
        self.halls
            .iter()
            .find(|h| h.lock().hall.appointment_by_token(token).is_some())
    }

    /// A hall's bookings whose slot starts in [`from`, `to`), from the store.
    pub async fn appointments_between(
        &self,
        hall: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<crate::store::BookingRow>, StoreError> {
        let hall = hall.to_string();
        self.read_store("appointments", move |b| {
            b.appointments_between(&hall, from, to)
        })
        .await
    }

    /// Runs one command: `apply` changes the hall, `render` makes the
    /// answer from the result. With an idempotency key, a repeat by the same
    /// caller gets the first answer and changes nothing. In a cluster a
    /// command that another node's commit made stale runs again on the
    /// reloaded hall (so `apply` and `render` may run more than once; only
    /// the last run's effect is ever journaled).
    pub async fn execute(
        &self,
        h: &HallEngine,
        caller: &str,
        key: Option<&Idempotency>,
        mut apply: impl FnMut(&mut Hall, DateTime<Utc>) -> Result<Outcome, QueueError>,
        mut render: impl FnMut(&Hall, &Result<Outcome, QueueError>) -> Reply,
    ) -> Result<Reply, CommandError> {
        let started = std::time::Instant::now();
        let mut tries = 1u32;
        loop {
            match self
                .execute_once(h, caller, key, &mut apply, &mut render)
                .await
            {
                Err(CommandError::Store(e))
                    if e.kind == StoreErrorKind::Conflict
                        && h.cluster.is_some()
                        && started.elapsed() < CONFLICT_BUDGET =>
                {
                    tracing::debug!(hall = %h.spec.id, tries, "command ran on a stale hall; again");
                    let most = CONFLICT_PAUSE_MAX_MS.min(1 << tries.min(6));
                    let pause = rand::random_range(0..=most);
                    tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
                    tries += 1;
                }
                r => return r,
            }
        }
    }

    async fn execute_once(
        &self,
        h: &HallEngine,
        caller: &str,
        key: Option<&Idempotency>,
        apply: &mut impl FnMut(&mut Hall, DateTime<Utc>) -> Result<Outcome, QueueError>,
        render: &mut impl FnMut(&Hall, &Result<Outcome, QueueError>) -> Reply,
    ) -> Result<Reply, CommandError> {
        let (tx, rx) = oneshot::channel();
        let reply = {
            let permit = self.writer.reserve()?;
            let mut cell = h.lock();
            let now = Utc::now();
            let id = key.map(|k| (caller.to_string(), k.key.clone()));
            let fresh = now - Duration::hours(IDEMPOTENCY_HOURS);
            let seen = id.as_ref().and_then(|id| cell.idempotency.get(id));
            if let Some(rec) = seen.filter(|r| r.created_at >= fresh) {
                // Records written before requests were fingerprinted
                // carry none, and match as they always did.
                if rec
                    .request
                    .is_some_and(|r| Some(r) != key.map(|k| k.request))
                {
                    return Err(CommandError::IdempotencyMismatch);
                }
                // The first answer may still be on its way to the disk: an
                // empty batch commits after it, so waiting for this one
                // waits for that.
                let reply = Reply::new(rec.status, rec.body.clone());
                permit.send(Job::Commit(
                    Box::new(Batch::new(h.spec.clone(), cell.hall.hall_seq())),
                    Box::new(move |r| {
                        let _ = tx.send(r);
                    }),
                ));
                reply
            } else {
                let expect_seq = cell.hall.hall_seq();
                // A day that ended since the last command ends first, in
                // the same batch: no command ever sees yesterday's line.
                let rolled = cell.hall.advance(now);
                let result = apply(&mut cell.hall, now);
                let reply = render(&cell.hall, &result);
                let mut done = match result {
                    Ok(out) => Some(rolled.then(out)),
                    Err(_) => (!rolled.is_empty()).then_some(rolled),
                };
                // "N ahead of you": marked on the tickets, so stored with them.
                let mut reminders = Vec::new();
                if let Some(out) = &mut done {
                    reminders = cell.hall.take_reminders(&out.lines);
                    for id in &reminders {
                        if !out.tickets.contains(id) {
                            out.tickets.push(*id);
                        }
                    }
                }
                let mut batch = Batch::new(h.spec.clone(), expect_seq);
                batch.version = cell.version;
                batch.fence = h
                    .cluster
                    .as_ref()
                    .map(|f| (f.fence.clone(), cell.generation));
                let mut tickets = Vec::new();
                let mut spoken = Vec::new();
                if let Some(out) = &mut done {
                    // Made first: counting them against a phone's day
                    // (A2) changes marks the batch then carries.
                    let mut outbox = notify::messages(&cell.hall, out, &reminders, now);
                    notify::cap_per_phone(&mut cell.hall, &mut outbox, out, now);
                    if let Some(code) = &out.sent_code {
                        outbox.push(notify::verify_message(cell.hall.spec(), code, now));
                    }
                    spoken = self.fill_batch(&cell.hall, out, &mut batch);
                    for id in &spoken {
                        h.note_call(id.clone(), now);
                    }
                    tickets = self.ticket_messages(&cell.hall, out);
                    batch.outbox = outbox;
                }
                // A refusal stores no key (contract §13): a caller cannot
                // grow the store with refused requests, and a retry after
                // fixing the request is a new request.
                let id = id.filter(|_| reply.status < 400);
                if let Some((caller, key_name)) = id {
                    let rec = IdempotencyRecord {
                        caller: caller.clone(),
                        key: key_name.clone(),
                        request: key.map(|k| k.request),
                        created_at: now,
                        status: reply.status,
                        body: reply.body.clone(),
                    };
                    cell.idempotency.insert((caller, key_name), rec.clone());
                    batch.idempotency = Some(rec);
                }
                if batch.is_empty() && tickets.is_empty() {
                    // A refusal without a key writes nothing, waits for nothing.
                    return Ok(reply);
                }
                let in_flight = (!batch.is_empty()).then(|| {
                    cell.version += 1;
                    h.in_flight
                        .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
                    h.in_flight.clone()
                });
                let bus = self.bus.clone();
                let committed = Committed {
                    hall: h.spec.id.clone(),
                    version: if batch.is_empty() {
                        0
                    } else {
                        batch.version + 1
                    },
                    events: batch.events.clone(),
                    tickets,
                };
                let announcer = self.announcer.clone();
                let wake = (!batch.outbox.is_empty()).then(|| self.outbox_wake.clone());
                permit.send(Job::Commit(
                    Box::new(batch),
                    Box::new(move |r| {
                        if let Some(n) = in_flight {
                            n.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
                        }
                        if r.is_ok() {
                            bus.publish(&committed);
                            if let Some(w) = &wake {
                                w.notify_one();
                            }
                            for id in spoken {
                                announcer.play(&id);
                            }
                        }
                        let _ = tx.send(r);
                    }),
                ));
                reply
            }
        };
        match rx.await {
            Ok(Ok(())) => Ok(reply),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(StoreError::unavailable("hallcast is shutting down").into()),
        }
    }

    /// Fills the batch from an outcome; returns the ids of the
    /// announcements the command's calls speak.
    fn fill_batch(&self, hall: &Hall, out: &Outcome, batch: &mut Batch) -> Vec<String> {
        let mut spoken = Vec::new();
        let spec = hall.spec();
        batch.tickets = out
            .tickets
            .iter()
            .filter_map(|id| hall.ticket(*id).cloned())
            .collect();
        let mut appointments = out.appointments.clone();
        appointments.sort_unstable();
        appointments.dedup();
        batch.appointments = appointments
            .into_iter()
            .filter_map(|id| hall.appointment(id).cloned())
            .collect();
        let mut cases = out.cases.clone();
        cases.sort_unstable();
        cases.dedup();
        batch.cases = cases
            .into_iter()
            .filter_map(|id| hall.case(id).cloned())
            .collect();
        let mut marks = out.marks.clone();
        marks.sort_unstable();
        marks.dedup();
        batch.marks = marks
            .into_iter()
            .filter_map(|k| hall.mark(&k).cloned().map(|m| (k, m)))
            .collect();
        let mut windows = out.windows.clone();
        windows.sort_unstable();
        windows.dedup();
        batch.windows = windows
            .into_iter()
            .map(|w| (w, hall.window(w).clone()))
            .collect();
        batch.counter = out.counter;
        batch.clocks = out.clocks.iter().map(|&s| (s, hall.clock(s))).collect();
        batch.recent = out.recent.clone();
        batch.events = out
            .events
            .iter()
            .map(|e| {
                let announcement = match &e.kind {
                    EventKind::Called {
                        number,
                        window,
                        voice: true,
                        ..
                    } => self
                        .announcer
                        .announce(spec, e.floor, number, *window)
                        .map(|(id, a)| {
                            spoken.push(id);
                            a
                        }),
                    _ => None,
                };
                let (floor_msg, hall_msg) = wire::event_messages(spec, e, announcement.as_ref());
                StoredEvent {
                    floor: e.floor,
                    floor_seq: e.floor_seq,
                    hall_seq: e.hall_seq,
                    at: e.at,
                    floor_msg,
                    hall_msg,
                }
            })
            .collect();
        spoken
    }

    /// Ticket-channel messages for the tickets this command touched and for
    /// followed tickets whose place in line or ETA moved.
    fn ticket_messages(&self, hall: &Hall, out: &Outcome) -> Vec<TicketMessage> {
        let seq = hall.hall_seq();
        let spec_id = &hall.spec().id;
        let mut msgs = Vec::new();
        // Only followed tickets matter: walk those (a handful of phones per
        // line), not the lines (possibly thousands of tickets per command).
        let followed = self.bus.followed_tickets(spec_id);
        if followed.is_empty() {
            return msgs;
        }
        let called: HashSet<&str> = out
            .events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::Called { number, .. } => Some(number.as_str()),
                _ => None,
            })
            .collect();
        let touched: HashSet<u64> = out.tickets.iter().copied().collect();
        for token in followed {
            let Some(t) = hall.ticket_by_token(&token) else {
                continue;
            };
            let moved = t.status == Status::Waiting && out.lines.contains(&t.service);
            if !touched.contains(&t.id) && !moved {
                continue;
            }
            msgs.push(TicketMessage {
                token: token.clone(),
                seq,
                msg: wire::ticket_message(hall, t),
            });
            if t.status == Status::Called && called.contains(t.number.as_str()) {
                if let Some(msg) = wire::ticket_called_message(hall, t) {
                    msgs.push(TicketMessage { token, seq, msg });
                }
            }
        }
        msgs
    }

    /// Ends the day of every hall whose hall-local date changed (contract
    /// §7). Called about every second, so a stepped clock is noticed
    /// within the contract's 5 s; a hall with nothing due costs a lock.
    pub async fn tick(self: &Arc<Self>) {
        if self.writer.is_refusing() {
            // Learn when the store takes writes again, commands or not.
            self.writer.probe();
        }
        if self.writer.is_failed() {
            let engine = self.clone();
            match tokio::task::spawn_blocking(move || engine.recover(Utc::now())).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "reloading after a failed commit failed; retrying")
                }
                Err(e) => tracing::error!(error = %e, "the reload task failed"),
            }
            return;
        }
        for h in &self.halls {
            if !h.read(|hall| hall.is_due(Utc::now())) {
                continue;
            }
            let r = self
                .execute(
                    h,
                    "system",
                    None,
                    |_, _| Ok(Outcome::default()),
                    |_, _| Reply::new(200, Bytes::new()),
                )
                .await;
            if let Err(e) = r {
                tracing::warn!(hall = %h.spec.id, error = %e, "ending the day failed; retrying");
            }
        }
    }

    /// After a failed commit: memory may hold changes the disk does not.
    /// With every hall locked (no command runs), reloads each hall from the
    /// store, then lets the writer take writes again once everything
    /// queued before has been refused — so memory is never ahead of the
    /// disk when it serves again. Blocks: run it on the blocking pool.
    pub fn recover(&self, now: DateTime<Utc>) -> Result<(), StoreError> {
        let mut cells: Vec<_> = self
            .halls
            .iter()
            .map(|h| h.cell.lock().unwrap_or_else(|p| p.into_inner()))
            .collect();
        let mut fresh = Vec::new();
        {
            let mut b = self.history.lock().unwrap_or_else(|p| p.into_inner());
            for h in &self.halls {
                fresh.push(b.load(&h.spec, now)?);
            }
        }
        self.writer.reset_blocking()?;
        for ((h, cell), loaded) in self.halls.iter().zip(cells.iter_mut()).zip(fresh) {
            cell.hall = Hall::restore(h.spec.clone(), loaded.state);
            cell.idempotency = idempotency_map(loaded.idempotency);
            cell.version = loaded.version;
            cell.generation += 1;
            tracing::info!(hall = %h.spec.id, hall_seq = cell.hall.hall_seq(), "hall reloaded from the store");
        }
        Ok(())
    }

    /// Housekeeping: expired idempotency keys, empty ticket topics.
    pub fn maintain(&self, now: DateTime<Utc>) {
        let cutoff = now - Duration::hours(IDEMPOTENCY_HOURS);
        let calls_cutoff = now - Duration::hours(CALLS_KEPT_HOURS);
        for h in &self.halls {
            h.lock().idempotency.retain(|_, r| r.created_at >= cutoff);
            h.calls
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .retain(|_, at| *at >= calls_cutoff);
        }
        self.hub.prune();
        self.writer.maintain(now);
    }

    /// Stops the writer after everything queued so far is committed.
    pub async fn stop_writer(&self) {
        self.writer.stop().await;
    }
}
