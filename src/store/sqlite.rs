//! The embedded store: one SQLite file in WAL mode with `synchronous=FULL`,
//! so a commit survives `kill -9` and power loss.

use std::path::Path;

use bytes::Bytes;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use rusqlite::{params, Connection, OptionalExtension, Transaction};

use super::checkpointer::Checkpointer;
use super::{from_ms, EVENT_RING, IDEMPOTENCY_HOURS};
use super::{
    Backend, Batch, BookingRow, CaseRow, IdempotencyRecord, Loaded, OutboxRecord, OutboxStatus,
    OutboxUpdate, RatingCount, StoreError, StoredEvent, TicketFact,
};
use crate::queue::eta::ServiceClock;
use crate::queue::hall::CASES_KEPT_DAYS;
use crate::queue::rating::RatingSource;
use crate::queue::{
    Appointment, BookingStatus, CallMark, Case, CaseStatus, CaseStep, Channel, Counter, HallSpec,
    Priority, Rating, RecentCall, Restored, Status, Ticket, WindowState,
};

/// Bumped when the schema changes; an older binary refuses a newer file.
/// 2: `idempotency.request`, the digest of the request a key names.
/// 3: `outbox`, messages to citizens' phones (a new table: nothing to
/// migrate, but an older binary must not run on it and drop them).
/// 4: `appointments`; `tickets.slot_start` and `reminded`, `outbox.appointment`.
/// 5: ratings on `tickets` (with `issued_service`, `first_called_at`),
/// `cases` and `case_steps`.
/// 6: `marks` (citizens' phones, addresses, phone tokens: A2–A4), a
/// booking's holder (`appointments.holder_name`, `id_hash`, `id_masked`),
/// `tickets.rating_source` (A5).
pub(crate) const SCHEMA_VERSION: i64 = 6;

/// Delivered and dropped messages are kept this long (the admin listing);
/// dead ones until retried or as long.
pub(super) const OUTBOX_KEPT_DAYS: i64 = 30;

/// Bookings whose slot started this long ago are still loaded (with every
/// open one): the citizen's link to last week's booking still answers.
pub(super) const APPOINTMENTS_LOADED_DAYS: i64 = 7;

/// How much of the file the reports' connection maps (SQLite maps what it
/// reads, up to this).
const REPORT_MMAP: i64 = 1 << 30;

/// Recent calls kept per floor in the store: enough to rebuild the list of
/// ten even when the newest entries repeat numbers (recalls).
pub(super) const RECENT_KEPT: i64 = 100;

/// Events kept per channel (hall and floor) beyond the newest: what the
/// longest store replay asks for (`gateway::channel::MAX_STORE_REPLAY`).
pub(super) const EVENTS_KEPT: i64 = 10_000;

/// Events deleted per maintenance pass at most (one pass every ten
/// minutes keeps up with 80 events a second).
pub(super) const PRUNE_BATCH: i64 = 50_000;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tickets(
  hall TEXT NOT NULL, id INTEGER NOT NULL, token TEXT NOT NULL,
  number TEXT NOT NULL, day TEXT NOT NULL, service TEXT NOT NULL,
  priority TEXT NOT NULL, channel TEXT NOT NULL, status TEXT NOT NULL,
  window TEXT, recall INTEGER NOT NULL, line_pos INTEGER NOT NULL,
  created_at INTEGER NOT NULL, called_at INTEGER, started_at INTEGER,
  finished_at INTEGER, call_floor INTEGER, call_seq INTEGER, call_at INTEGER,
  notify_phone TEXT, slot_start INTEGER, reminded INTEGER,
  issued_service TEXT, first_called_at INTEGER,
  rating INTEGER, rating_comment TEXT, rated_at INTEGER, rating_source TEXT,
  PRIMARY KEY(hall, id));
CREATE UNIQUE INDEX IF NOT EXISTS tickets_token ON tickets(token);
CREATE INDEX IF NOT EXISTS tickets_status ON tickets(hall, status);
CREATE INDEX IF NOT EXISTS tickets_created ON tickets(hall, created_at);
CREATE TABLE IF NOT EXISTS windows(
  hall TEXT NOT NULL, id TEXT NOT NULL, paused INTEGER NOT NULL, current INTEGER,
  PRIMARY KEY(hall, id));
CREATE TABLE IF NOT EXISTS counters(
  hall TEXT NOT NULL, service TEXT NOT NULL, day TEXT NOT NULL, last INTEGER NOT NULL,
  PRIMARY KEY(hall, service, day));
CREATE TABLE IF NOT EXISTS sequences(
  hall TEXT NOT NULL, scope TEXT NOT NULL, seq INTEGER NOT NULL,
  PRIMARY KEY(hall, scope));
CREATE TABLE IF NOT EXISTS clocks(
  hall TEXT NOT NULL, service TEXT NOT NULL, avg_ms INTEGER NOT NULL,
  PRIMARY KEY(hall, service));
CREATE TABLE IF NOT EXISTS recent_calls(
  hall TEXT NOT NULL, floor INTEGER NOT NULL, seq INTEGER NOT NULL,
  number TEXT NOT NULL, window TEXT NOT NULL, at INTEGER NOT NULL,
  PRIMARY KEY(hall, floor, seq));
CREATE TABLE IF NOT EXISTS events(
  hall TEXT NOT NULL, hall_seq INTEGER NOT NULL, floor INTEGER NOT NULL,
  floor_seq INTEGER NOT NULL, at INTEGER NOT NULL,
  floor_msg TEXT NOT NULL, hall_msg TEXT NOT NULL,
  PRIMARY KEY(hall, hall_seq));
CREATE UNIQUE INDEX IF NOT EXISTS events_floor ON events(hall, floor, floor_seq);
CREATE TABLE IF NOT EXISTS idempotency(
  hall TEXT NOT NULL, caller TEXT NOT NULL, key TEXT NOT NULL,
  created_at INTEGER NOT NULL, status INTEGER NOT NULL, body BLOB NOT NULL,
  request BLOB,
  PRIMARY KEY(hall, caller, key));
CREATE INDEX IF NOT EXISTS idempotency_created ON idempotency(created_at);
CREATE TABLE IF NOT EXISTS outbox(
  id TEXT PRIMARY KEY, hall TEXT NOT NULL, kind TEXT NOT NULL, phone TEXT NOT NULL,
  ticket INTEGER, appointment INTEGER, body BLOB NOT NULL, status TEXT NOT NULL, attempts INTEGER NOT NULL,
  last_error TEXT, created_at INTEGER NOT NULL, next_attempt_at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox(status, next_attempt_at);
CREATE INDEX IF NOT EXISTS outbox_hall ON outbox(hall, created_at);
CREATE INDEX IF NOT EXISTS outbox_status ON outbox(hall, status);
CREATE TABLE IF NOT EXISTS appointments(
  hall TEXT NOT NULL, id INTEGER NOT NULL, code TEXT NOT NULL, token TEXT NOT NULL,
  service TEXT NOT NULL, start INTEGER NOT NULL, end INTEGER NOT NULL,
  status TEXT NOT NULL, phone TEXT, ticket INTEGER, reminded INTEGER NOT NULL,
  created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
  holder_name TEXT, id_hash TEXT, id_masked TEXT,
  PRIMARY KEY(hall, id));
CREATE UNIQUE INDEX IF NOT EXISTS appointments_token ON appointments(token);
CREATE INDEX IF NOT EXISTS appointments_start ON appointments(hall, start);
CREATE INDEX IF NOT EXISTS appointments_open ON appointments(hall, status);
CREATE TABLE IF NOT EXISTS cases(
  hall TEXT NOT NULL, id INTEGER NOT NULL, ticket INTEGER NOT NULL, number TEXT NOT NULL,
  service TEXT NOT NULL, window TEXT, level INTEGER NOT NULL, comment TEXT,
  status TEXT NOT NULL, opened_at INTEGER NOT NULL, due_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY(hall, id));
CREATE INDEX IF NOT EXISTS cases_status ON cases(hall, status);
CREATE TABLE IF NOT EXISTS case_steps(
  hall TEXT NOT NULL, case_id INTEGER NOT NULL, n INTEGER NOT NULL,
  status TEXT NOT NULL, note TEXT, at INTEGER NOT NULL,
  PRIMARY KEY(hall, case_id, n));
CREATE TABLE IF NOT EXISTS marks(
  hall TEXT NOT NULL, key TEXT NOT NULL, data TEXT NOT NULL, kept_until INTEGER NOT NULL,
  PRIMARY KEY(hall, key));
CREATE INDEX IF NOT EXISTS marks_kept ON marks(kept_until);
";

/// Indexes over columns a migration may have just added: created after
/// [`ADDED_COLUMNS`]. Statistics read a hall's days from `tickets_stats`,
/// which holds every column they need: a year is 730,000 rows, read in
/// order from the index alone instead of a table lookup for each. The
/// public ratings summary reads by the time of the rating.
const LATE_INDEXES: &str = "
DROP INDEX IF EXISTS tickets_day;
CREATE INDEX IF NOT EXISTS tickets_stats ON tickets(hall, day, id, service, issued_service,
  status, window, created_at, first_called_at, called_at, started_at, finished_at, rating);
CREATE INDEX IF NOT EXISTS tickets_rated ON tickets(hall, rated_at) WHERE rated_at IS NOT NULL;
";

/// Columns later schemas added to tables an older file already has
/// (`CREATE TABLE IF NOT EXISTS` keeps the old shape).
const ADDED_COLUMNS: &[(&str, &str, &str)] = &[
    ("idempotency", "request", "BLOB"),
    ("tickets", "slot_start", "INTEGER"),
    ("tickets", "reminded", "INTEGER"),
    ("outbox", "appointment", "INTEGER"),
    ("tickets", "issued_service", "TEXT"),
    ("tickets", "first_called_at", "INTEGER"),
    ("tickets", "rating", "INTEGER"),
    ("tickets", "rating_comment", "TEXT"),
    ("tickets", "rated_at", "INTEGER"),
    ("tickets", "rating_source", "TEXT"),
    ("appointments", "holder_name", "TEXT"),
    ("appointments", "id_hash", "TEXT"),
    ("appointments", "id_masked", "TEXT"),
];

/// The SQLite backend.
pub struct Sqlite {
    conn: Connection,
    /// The writer's: checkpoints off its thread (see `super::checkpointer`).
    checkpointer: Option<Checkpointer>,
}

impl Sqlite {
    /// Opens (creating if needed) `hallcast.db` in `dir`.
    pub fn open(dir: &Path) -> Result<Sqlite, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::unavailable(format!(
                "cannot create data dir {}: {e}; check the path and its permissions",
                dir.display()
            ))
        })?;
        let path = dir.join("hallcast.db");
        let conn = Connection::open(&path)
            .map_err(|e| StoreError::unavailable(format!("cannot open {}: {e}", path.display())))?;
        // WAL lets readers run beside the one writer; FULL syncs the WAL on
        // every commit, which is what makes an answered command survive
        // power loss. Group commit pays for the fsync once per batch group.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "OFF")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        let version: Option<String> = conn
            .query_row("SELECT value FROM meta WHERE key='schema'", [], |r| {
                r.get(0)
            })
            .optional()?;
        match version.and_then(|v| v.parse::<i64>().ok()) {
            None => {
                conn.execute(
                    "INSERT OR REPLACE INTO meta(key, value) VALUES('schema', ?1)",
                    [SCHEMA_VERSION.to_string()],
                )?;
            }
            Some(v) if v > SCHEMA_VERSION => {
                return Err(StoreError::unavailable(format!(
                    "{} was written by a newer hallcast (schema {v}); run that version",
                    path.display()
                )))
            }
            Some(v) if v < SCHEMA_VERSION => {
                for (table, column, decl) in ADDED_COLUMNS {
                    let has: bool = conn
                        .prepare("SELECT 1 FROM pragma_table_info(?1) WHERE name=?2")?
                        .exists(params![table, column])?;
                    if !has {
                        conn.execute_batch(&format!(
                            "ALTER TABLE {table} ADD COLUMN {column} {decl}"
                        ))?;
                    }
                }
                conn.execute(
                    "UPDATE meta SET value=?1 WHERE key='schema'",
                    [SCHEMA_VERSION.to_string()],
                )?;
            }
            Some(_) => {}
        }
        conn.execute_batch(LATE_INDEXES)?;
        Ok(Sqlite {
            conn,
            checkpointer: None,
        })
    }

    /// A write transaction that takes the write lock at once (`BEGIN
    /// IMMEDIATE`). One that read first and wrote later would find its
    /// snapshot stale whenever the checkpointer restarted the WAL
    /// meanwhile, and that `SQLITE_BUSY` is not one the busy timeout waits
    /// out: the commit would fail and be retried.
    fn write_tx(&mut self) -> Result<Transaction<'_>, StoreError> {
        Ok(self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?)
    }

    /// Something was written: the checkpointer's turn, soon.
    fn committed(&self) {
        if let Some(c) = &self.checkpointer {
            c.committed();
            if c.writer_turn() {
                super::checkpointer::checkpoint(&self.conn);
            }
        }
    }

    /// The writer's connection: as [`Sqlite::open`], with the WAL's
    /// checkpoints moved out of its commits to a thread of their own.
    pub fn open_writer(dir: &Path) -> Result<Sqlite, StoreError> {
        let mut s = Sqlite::open(dir)?;
        s.conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        s.checkpointer = Some(Checkpointer::start(&dir.join("hallcast.db"))?);
        Ok(s)
    }

    /// A connection for reports: it only reads, maps the file instead of
    /// copying each page through `read` (a year's statistics read every
    /// page of the tickets), and caches more pages.
    pub fn open_reader(dir: &Path) -> Result<Sqlite, StoreError> {
        let s = Sqlite::open(dir)?;
        s.conn.pragma_update(None, "query_only", true)?;
        s.conn.pragma_update(None, "mmap_size", REPORT_MMAP)?;
        s.conn.pragma_update(None, "cache_size", -32_768)?;
        Ok(s)
    }
}

pub(super) fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub(super) fn day_str(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

pub(super) fn parse_day(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
}

pub(super) fn floor_scope(floor: i32) -> String {
    format!("floor:{floor}")
}

fn write_batch(tx: &Transaction<'_>, b: &Batch) -> Result<(), StoreError> {
    let hall = &b.hall.id;
    let spec = &b.hall;
    if b.is_empty() {
        return Ok(());
    }
    // The hall must be where this process last left it: a second writer
    // on the same file would otherwise be overwritten silently.
    let stored: i64 = tx
        .prepare_cached("SELECT seq FROM sequences WHERE hall=?1 AND scope='hall'")?
        .query_row(params![hall], |r| r.get(0))
        .optional()?
        .unwrap_or(0);
    if stored != b.expect_seq as i64 {
        return Err(StoreError::conflict(format!(
            "hall {hall} is at seq {stored} in the store, but this process computed the command \
             from seq {}: another process writes to the same store; reloading",
            b.expect_seq
        )));
    }
    if !b.tickets.is_empty() {
        let mut st = tx.prepare_cached(
            "INSERT OR REPLACE INTO tickets(hall, id, token, number, day, service, priority,
               channel, status, window, recall, line_pos, created_at, called_at, started_at,
               finished_at, call_floor, call_seq, call_at, notify_phone, slot_start, reminded,
               issued_service, first_called_at, rating, rating_comment, rated_at, rating_source)
             VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19,?20,?21,?22,
               ?23,?24,?25,?26,?27,?28)",
        )?;
        for t in &b.tickets {
            st.execute(params![
                hall,
                t.id as i64,
                t.token,
                t.number,
                day_str(t.day),
                spec.services[t.service].id,
                t.priority.as_str(),
                t.channel.as_str(),
                t.status.as_str(),
                t.window.map(|w| spec.windows[w].id.as_str()),
                t.recall,
                t.line_pos as i64,
                ms(t.created_at),
                t.called_at.map(ms),
                t.started_at.map(ms),
                t.finished_at.map(ms),
                t.last_call.map(|c| c.floor),
                t.last_call.map(|c| c.seq as i64),
                t.last_call.map(|c| ms(c.at)),
                t.notify_phone,
                t.slot.map(ms),
                t.reminded,
                spec.services[t.issued_service].id,
                t.first_called_at.map(ms),
                t.rating.as_ref().map(|r| r.level),
                t.rating.as_ref().and_then(|r| r.comment.as_deref()),
                t.rating.as_ref().map(|r| ms(r.at)),
                t.rating.as_ref().map(|r| r.source.as_str()),
            ])?;
        }
    }
    if !b.appointments.is_empty() {
        let mut st = tx.prepare_cached(
            "INSERT OR REPLACE INTO appointments(hall, id, code, token, service, start, end,
               status, phone, ticket, reminded, created_at, updated_at,
               holder_name, id_hash, id_masked)
             VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16)",
        )?;
        for a in &b.appointments {
            st.execute(params![
                hall,
                a.id as i64,
                a.code,
                a.token,
                spec.services[a.service].id,
                ms(a.start),
                ms(a.end),
                a.status.as_str(),
                a.phone,
                a.ticket.map(|t| t as i64),
                a.reminded,
                ms(a.created_at),
                ms(a.updated_at),
                a.holder.as_ref().map(|h| &h.name),
                a.holder.as_ref().map(|h| &h.id_hash),
                a.holder.as_ref().map(|h| &h.id_masked),
            ])?;
        }
    }
    for (key, m) in &b.marks {
        tx.prepare_cached(
            "INSERT OR REPLACE INTO marks(hall, key, data, kept_until) VALUES(?1,?2,?3,?4)",
        )?
        .execute(params![
            hall,
            key,
            super::marks::encode(m),
            super::marks::kept_until_ms(m)
        ])?;
    }
    for c in &b.cases {
        tx.prepare_cached(
            "INSERT OR REPLACE INTO cases(hall, id, ticket, number, service, window, level,
               comment, status, opened_at, due_at, updated_at)
             VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12)",
        )?
        .execute(params![
            hall,
            c.id as i64,
            c.ticket as i64,
            c.number,
            spec.services[c.service].id,
            c.window.map(|w| spec.windows[w].id.as_str()),
            c.level,
            c.comment,
            c.status().as_str(),
            ms(c.opened_at),
            ms(c.due_at),
            ms(c.updated_at()),
        ])?;
        // Steps are only ever appended: those already written stay.
        let mut st = tx.prepare_cached(
            "INSERT OR IGNORE INTO case_steps(hall, case_id, n, status, note, at)
             VALUES(?1,?2,?3,?4,?5,?6)",
        )?;
        for (n, step) in c.history.iter().enumerate() {
            st.execute(params![
                hall,
                c.id as i64,
                n as i64,
                step.status.as_str(),
                step.note,
                ms(step.at)
            ])?;
        }
    }
    for (w, state) in &b.windows {
        tx.prepare_cached(
            "INSERT OR REPLACE INTO windows(hall, id, paused, current) VALUES(?1,?2,?3,?4)",
        )?
        .execute(params![
            hall,
            spec.windows[*w].id,
            state.paused,
            state.current.map(|c| c as i64)
        ])?;
    }
    if let Some(c) = &b.counter {
        tx.prepare_cached(
            "INSERT OR REPLACE INTO counters(hall, service, day, last) VALUES(?1,?2,?3,?4)",
        )?
        .execute(params![
            hall,
            spec.services[c.service].id,
            day_str(c.day),
            c.last
        ])?;
    }
    for (s, clock) in &b.clocks {
        tx.prepare_cached("INSERT OR REPLACE INTO clocks(hall, service, avg_ms) VALUES(?1,?2,?3)")?
            .execute(params![hall, spec.services[*s].id, clock.avg_ms as i64])?;
    }
    for r in &b.recent {
        tx.prepare_cached(
            "INSERT OR REPLACE INTO recent_calls(hall, floor, seq, number, window, at)
             VALUES(?1,?2,?3,?4,?5,?6)",
        )?
        .execute(params![
            hall,
            r.floor,
            r.seq as i64,
            r.number,
            spec.windows[r.window].id,
            ms(r.at)
        ])?;
    }
    if !b.events.is_empty() {
        let mut ev = tx.prepare_cached(
            "INSERT INTO events(hall, hall_seq, floor, floor_seq, at, floor_msg, hall_msg)
             VALUES(?1,?2,?3,?4,?5,?6,?7)",
        )?;
        let mut seq = tx.prepare_cached(
            "INSERT OR REPLACE INTO sequences(hall, scope, seq) VALUES(?1,?2,?3)",
        )?;
        for e in &b.events {
            ev.execute(params![
                hall,
                e.hall_seq as i64,
                e.floor,
                e.floor_seq as i64,
                ms(e.at),
                std::str::from_utf8(&e.floor_msg).unwrap_or_default(),
                std::str::from_utf8(&e.hall_msg).unwrap_or_default(),
            ])?;
            seq.execute(params![hall, floor_scope(e.floor), e.floor_seq as i64])?;
        }
        let last = b.events.last().map(|e| e.hall_seq as i64);
        seq.execute(params![hall, "hall", last])?;
    }
    for m in &b.outbox {
        tx.prepare_cached(
            "INSERT INTO outbox(id, hall, kind, phone, ticket, body, status, attempts, last_error,
               created_at, next_attempt_at, appointment)
             VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12)",
        )?
        .execute(params![
            m.id,
            m.hall,
            m.kind,
            m.phone,
            m.ticket.map(|t| t as i64),
            &m.body[..],
            m.status.as_str(),
            m.attempts,
            m.last_error,
            ms(m.created_at),
            ms(m.next_attempt_at),
            m.appointment.map(|a| a as i64),
        ])?;
    }
    if let Some(i) = &b.idempotency {
        tx.prepare_cached(
            "INSERT OR REPLACE INTO idempotency(hall, caller, key, created_at, status, body, request)
             VALUES(?1,?2,?3,?4,?5,?6,?7)",
        )?
        .execute(params![
            hall,
            i.caller,
            i.key,
            ms(i.created_at),
            i.status,
            &i.body[..],
            i.request.as_ref().map(|r| &r[..]),
        ])?;
    }
    Ok(())
}

fn record_deliveries(tx: &Transaction<'_>, updates: &[OutboxUpdate]) -> Result<(), StoreError> {
    for u in updates {
        tx.prepare_cached(
            "UPDATE outbox SET status=?3, attempts=?4, last_error=?5, next_attempt_at=?6
             WHERE hall=?1 AND id=?2",
        )?
        .execute(params![
            u.hall,
            u.id,
            u.status.as_str(),
            u.attempts,
            u.last_error,
            ms(u.next_attempt_at)
        ])?;
    }
    Ok(())
}

const OUTBOX_COLUMNS: &str =
    "id, hall, kind, phone, ticket, body, status, attempts, last_error, created_at, next_attempt_at, \
     appointment";

/// An outbox row; an unknown status is corruption, named.
fn outbox_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<OutboxRecord, StoreError>> {
    let id: String = r.get(0)?;
    let status: String = r.get(6)?;
    let Some(parsed) = OutboxStatus::parse(&status) else {
        return Ok(Err(StoreError::corrupt(format!(
            "the store is corrupt: outbox row {id}: status '{status}' is not pending, delivered, dead or dropped"
        ))));
    };
    let body: Vec<u8> = r.get(5)?;
    Ok(Ok(OutboxRecord {
        id,
        hall: r.get(1)?,
        kind: r.get(2)?,
        phone: r.get(3)?,
        ticket: r.get::<_, Option<i64>>(4)?.map(|t| t as u64),
        body: bytes::Bytes::from(body),
        status: parsed,
        attempts: r.get(7)?,
        last_error: r.get(8)?,
        created_at: from_ms(r.get(9)?),
        next_attempt_at: from_ms(r.get(10)?),
        appointment: r.get::<_, Option<i64>>(11)?.map(|a| a as u64),
    }))
}

/// A ticket row as stored, checked by [`RawTicket::into_ticket`]: a value
/// the program does not know is corruption, refused with its table, row
/// and value, never read as a default (an unknown status read as
/// `waiting` would be called).
pub(super) struct RawTicket {
    pub(super) id: i64,
    pub(super) token: String,
    pub(super) number: String,
    pub(super) day: String,
    pub(super) service: String,
    pub(super) priority: String,
    pub(super) channel: String,
    pub(super) status: String,
    /// Resolved against the config by the caller.
    pub(super) window: Option<String>,
    pub(super) recall: u32,
    pub(super) line_pos: i64,
    pub(super) created_at: i64,
    pub(super) called_at: Option<i64>,
    pub(super) started_at: Option<i64>,
    pub(super) finished_at: Option<i64>,
    pub(super) last_call: Option<CallMark>,
    pub(super) notify_phone: Option<String>,
    pub(super) slot_start: Option<i64>,
    /// NULL in rows written before schema 4: not reminded.
    pub(super) reminded: Option<bool>,
    /// NULL in rows written before schema 5: the current service.
    pub(super) issued_service: Option<String>,
    pub(super) first_called_at: Option<i64>,
    /// Level, comment, when, and who gave it (`pad`, `phone`; none before
    /// schema 6, read as the phone's so that an old rating is never
    /// replaced).
    pub(super) rating: Option<(u8, Option<String>, i64, Option<String>)>,
}

impl RawTicket {
    /// The ticket with its service, first service and window as indices
    /// of `spec`; `None` when its service is no longer configured (the
    /// caller decides what becomes of it).
    pub(super) fn into_ticket_of(
        self,
        spec: &HallSpec,
        hall: &str,
    ) -> Result<Option<Ticket>, StoreError> {
        let Some(s) = spec.service_index(&self.service) else {
            return Ok(None);
        };
        let window = self.window.as_deref().and_then(|w| spec.window_index(w));
        let issued = self
            .issued_service
            .as_deref()
            .and_then(|i| spec.service_index(i))
            .unwrap_or(s);
        let mut t = self.into_ticket(hall)?;
        t.service = s;
        t.issued_service = issued;
        t.window = window;
        Ok(Some(t))
    }

    pub(super) fn into_ticket(self, hall: &str) -> Result<Ticket, StoreError> {
        let bad = |column: &str, value: &str, what: &str| {
            StoreError::corrupt(format!(
                "the store is corrupt: tickets row (hall {hall}, id {}): {column} '{value}' is not {what}; \
                 restore the data dir from a backup or correct the row",
                self.id
            ))
        };
        let day = parse_day(&self.day).ok_or_else(|| bad("day", &self.day, "a date YYYY-MM-DD"))?;
        let priority = Priority::parse(&self.priority)
            .ok_or_else(|| bad("priority", &self.priority, "a priority (normal, priority)"))?;
        let channel = Channel::parse(&self.channel).ok_or_else(|| {
            bad(
                "channel",
                &self.channel,
                "a channel (kiosk, mobile, appointment)",
            )
        })?;
        let status = Status::parse(&self.status).ok_or_else(|| {
            bad(
                "status",
                &self.status,
                "a ticket status (waiting, called, serving, done, no_show, cancelled, expired)",
            )
        })?;
        if self.id <= 0 || self.line_pos < 0 {
            return Err(bad(
                "id or line_pos",
                &format!("{}/{}", self.id, self.line_pos),
                "positive",
            ));
        }
        Ok(Ticket {
            id: self.id as u64,
            token: self.token,
            number: self.number,
            day,
            service: 0,
            priority,
            channel,
            status,
            window: None,
            recall: self.recall,
            line_pos: self.line_pos as u64,
            created_at: from_ms(self.created_at),
            called_at: self.called_at.map(from_ms),
            started_at: self.started_at.map(from_ms),
            finished_at: self.finished_at.map(from_ms),
            last_call: self.last_call,
            notify_phone: self.notify_phone,
            slot: self.slot_start.map(from_ms),
            reminded: self.reminded.unwrap_or(false),
            issued_service: 0,
            // Before schema 5 only the latest call was kept.
            first_called_at: self.first_called_at.or(self.called_at).map(from_ms),
            rating: match self.rating {
                Some((level, ..)) if !(1..=5).contains(&level) => {
                    return Err(bad("rating", &level.to_string(), "a level 1 to 5"))
                }
                Some((level, comment, at, source)) => Some(Rating {
                    level,
                    comment,
                    at: from_ms(at),
                    source: match source.as_deref() {
                        None => RatingSource::Phone,
                        Some(s) => RatingSource::parse(s)
                            .ok_or_else(|| bad("rating_source", s, "pad or phone"))?,
                    },
                }),
                None => None,
            },
        })
    }
}

/// Cases not closed, and those closed lately, with their steps; and the
/// highest id ever used.
fn load_cases(
    c: &Connection,
    spec: &HallSpec,
    now: DateTime<Utc>,
    st: &mut Restored,
) -> Result<(), StoreError> {
    let hall = spec.id.as_str();
    let since = ms(now - Duration::days(CASES_KEPT_DAYS));
    let mut q = c.prepare(
        "SELECT id, ticket, number, service, window, level, comment, opened_at, due_at
         FROM cases WHERE hall=?1 AND (status != 'closed' OR updated_at >= ?2) ORDER BY id",
    )?;
    let mut steps = c.prepare_cached(
        "SELECT status, note, at FROM case_steps WHERE hall=?1 AND case_id=?2 ORDER BY n",
    )?;
    let rows = q.query_map(params![hall, since], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, Option<String>>(4)?,
            r.get::<_, u8>(5)?,
            r.get::<_, Option<String>>(6)?,
            r.get::<_, i64>(7)?,
            r.get::<_, i64>(8)?,
        ))
    })?;
    for row in rows {
        let (id, ticket, number, service, window, level, comment, opened, due) = row?;
        // A case of a service no longer configured stays in the store
        // (the listing shows it) but cannot be stepped here.
        let Some(service) = spec.service_index(&service) else {
            continue;
        };
        let mut history = Vec::new();
        for step in steps.query_map(params![hall, id], |r| {
            Ok((r.get::<_, String>(0)?, r.get(1)?, r.get::<_, i64>(2)?))
        })? {
            let (status, note, at) = step?;
            let status = CaseStatus::parse(&status).ok_or_else(|| {
                StoreError::corrupt(format!(
                    "the store is corrupt: case_steps row (hall {hall}, case {id}): status '{status}' \
                     is not open, contacted, rectified or closed; restore the data dir from a backup"
                ))
            })?;
            history.push(CaseStep {
                status,
                note,
                at: from_ms(at),
            });
        }
        st.cases.push(Case {
            id: id as u64,
            ticket: ticket as u64,
            number,
            service,
            window: window.as_deref().and_then(|w| spec.window_index(w)),
            level,
            comment,
            opened_at: from_ms(opened),
            due_at: from_ms(due),
            history,
        });
    }
    st.max_case_id = c.query_row(
        "SELECT COALESCE(MAX(id),0) FROM cases WHERE hall=?1",
        [hall],
        |r| r.get::<_, i64>(0),
    )? as u64;
    Ok(())
}

fn event_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredEvent> {
    Ok(StoredEvent {
        floor: r.get(0)?,
        floor_seq: r.get::<_, i64>(1)? as u64,
        hall_seq: r.get::<_, i64>(2)? as u64,
        at: from_ms(r.get(3)?),
        floor_msg: Bytes::from(r.get::<_, String>(4)?),
        hall_msg: Bytes::from(r.get::<_, String>(5)?),
    })
}

const EVENT_COLUMNS: &str = "floor, floor_seq, hall_seq, at, floor_msg, hall_msg";

impl Backend for Sqlite {
    fn load(&mut self, spec: &HallSpec, now: DateTime<Utc>) -> Result<Loaded, StoreError> {
        let hall = spec.id.as_str();
        let c = &self.conn;
        let mut loaded = Loaded::default();
        let st = &mut loaded.state;

        // Finished tickets are loaded as long as the hall keeps them in
        // memory (they stay in the store for good).
        let cutoff = ms(now - spec.ratings.finished_kept());
        let mut q = c.prepare(
            "SELECT id, token, number, day, service, priority, channel, status, window, recall,
                    line_pos, created_at, called_at, started_at, finished_at, call_floor,
                    call_seq, call_at, notify_phone, slot_start, reminded,
                    issued_service, first_called_at, rating, rating_comment, rated_at,
                    rating_source
             FROM tickets WHERE hall=?1
               AND (status IN ('waiting','called','serving') OR created_at >= ?2)
             ORDER BY id",
        )?;
        let rows = q.query_map(params![hall, cutoff], |r| {
            let call_floor: Option<i32> = r.get(15)?;
            let call_seq: Option<i64> = r.get(16)?;
            let call_at: Option<i64> = r.get(17)?;
            Ok(RawTicket {
                id: r.get(0)?,
                token: r.get(1)?,
                number: r.get(2)?,
                day: r.get(3)?,
                service: r.get(4)?,
                priority: r.get(5)?,
                channel: r.get(6)?,
                status: r.get(7)?,
                window: r.get(8)?,
                recall: r.get(9)?,
                line_pos: r.get(10)?,
                created_at: r.get(11)?,
                called_at: r.get(12)?,
                started_at: r.get(13)?,
                finished_at: r.get(14)?,
                last_call: match (call_floor, call_seq, call_at) {
                    (Some(floor), Some(seq), Some(at)) => Some(CallMark {
                        floor,
                        seq: seq as u64,
                        at: from_ms(at),
                    }),
                    _ => None,
                },
                notify_phone: r.get(18)?,
                slot_start: r.get(19)?,
                reminded: r.get(20)?,
                issued_service: r.get(21)?,
                first_called_at: r.get(22)?,
                rating: match (r.get::<_, Option<u8>>(23)?, r.get::<_, Option<i64>>(25)?) {
                    (Some(level), Some(at)) => Some((level, r.get(24)?, at, r.get(26)?)),
                    _ => None,
                },
            })
        })?;
        let mut orphans = Vec::new();
        for row in rows {
            let raw = row?;
            let (id, open) = (
                raw.id,
                Status::parse(&raw.status).is_some_and(|st| !st.is_final()),
            );
            match raw.into_ticket_of(spec, hall)? {
                Some(t) => st.tickets.push(t),
                None if open => orphans.push(id),
                None => {}
            }
        }
        drop(q);
        if !orphans.is_empty() {
            // Their service left the config: nothing can call or finish
            // them now. They end as a day's end would (waiting → expired,
            // at a window → done) and stay in the store for statistics.
            let at = ms(now);
            let mut up = c.prepare(
                "UPDATE tickets SET finished_at=?3,
                   status = CASE status WHEN 'waiting' THEN 'expired' ELSE 'done' END
                 WHERE hall=?1 AND id=?2",
            )?;
            for id in &orphans {
                up.execute(params![hall, id, at])?;
            }
            tracing::warn!(
                hall,
                tickets = orphans.len(),
                "tickets of services no longer configured were ended"
            );
        }
        let (max_id, max_pos): (i64, i64) = c.query_row(
            "SELECT COALESCE(MAX(id),0), COALESCE(MAX(line_pos),0) FROM tickets WHERE hall=?1",
            [hall],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        st.max_ticket_id = max_id as u64;
        st.max_line_pos = max_pos as u64;

        // Every number of the last days, whatever its service (by the
        // created_at index: a day is at most a few days of rows).
        let mut q =
            c.prepare("SELECT day, number FROM tickets WHERE hall=?1 AND created_at >= ?2")?;
        let recent = ms(now - Duration::days(3));
        for row in q.query_map(params![hall, recent], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })? {
            let (day, number) = row?;
            if let Some(day) = parse_day(&day) {
                st.issued.push((day, number));
            }
        }

        // Open bookings, and those of the last week (a citizen's link).
        let mut q = c.prepare(
            "SELECT id, code, token, service, start, end, status, phone, ticket, reminded,
                    created_at, updated_at, holder_name, id_hash, id_masked
             FROM appointments WHERE hall=?1 AND (status='booked' OR start >= ?2) ORDER BY id",
        )?;
        let since = ms(now - Duration::days(APPOINTMENTS_LOADED_DAYS));
        let rows = q.query_map(params![hall, since], |r| {
            Ok((
                r.get::<_, String>(3)?,
                r.get::<_, String>(6)?,
                Appointment {
                    id: r.get::<_, i64>(0)? as u64,
                    code: r.get(1)?,
                    token: r.get(2)?,
                    service: 0,
                    start: from_ms(r.get(4)?),
                    end: from_ms(r.get(5)?),
                    status: BookingStatus::Booked,
                    phone: r.get(7)?,
                    holder: super::holder_of(r.get(12)?, r.get(13)?, r.get(14)?),
                    ticket: r.get::<_, Option<i64>>(8)?.map(|t| t as u64),
                    reminded: r.get(9)?,
                    created_at: from_ms(r.get(10)?),
                    updated_at: from_ms(r.get(11)?),
                },
            ))
        })?;
        for row in rows {
            let (service, status, mut a) = row?;
            a.status = BookingStatus::parse(&status).ok_or_else(|| {
                StoreError::corrupt(format!(
                    "the store is corrupt: appointments row (hall {hall}, id {}): status '{status}' \
                     is not booked, checked_in, cancelled or missed; restore the data dir from a backup \
                     or correct the row",
                    a.id
                ))
            })?;
            // A booking of a service no longer configured stays in the
            // store (the day listing shows it) but not in the hall.
            if let Some(s) = spec.service_index(&service) {
                a.service = s;
                st.appointments.push(a);
            }
        }
        drop(q);
        st.max_appointment_id = c.query_row(
            "SELECT COALESCE(MAX(id),0) FROM appointments WHERE hall=?1",
            [hall],
            |r| r.get::<_, i64>(0),
        )? as u64;

        load_cases(c, spec, now, st)?;

        let mut q = c.prepare("SELECT key, data FROM marks WHERE hall=?1 AND kept_until > ?2")?;
        for row in q.query_map(params![hall, ms(now)], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })? {
            let (key, data) = row?;
            if let Some(m) = super::marks::decode(&data) {
                st.marks.push((key, m));
            }
        }
        drop(q);

        let mut q = c.prepare("SELECT id, paused, current FROM windows WHERE hall=?1")?;
        for row in q.query_map([hall], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, bool>(1)?,
                r.get::<_, Option<i64>>(2)?,
            ))
        })? {
            let (id, paused, current) = row?;
            if let Some(w) = spec.window_index(&id) {
                st.windows.push((
                    w,
                    WindowState {
                        paused,
                        current: current.map(|c| c as u64),
                    },
                ));
            }
        }

        let mut q =
            c.prepare("SELECT service, day, last FROM counters WHERE hall=?1 AND day >= ?2")?;
        let oldest_day = day_str((now - Duration::days(2)).date_naive());
        for row in q.query_map(params![hall, oldest_day], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, u32>(2)?,
            ))
        })? {
            let (service, day, last) = row?;
            if let (Some(service), Some(day)) = (spec.service_index(&service), parse_day(&day)) {
                st.counters.push(Counter { service, day, last });
            }
        }

        let mut q = c.prepare("SELECT scope, seq FROM sequences WHERE hall=?1")?;
        for row in q.query_map([hall], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })? {
            let (scope, seq) = row?;
            if scope == "hall" {
                st.hall_seq = seq as u64;
            } else if let Some(f) = scope.strip_prefix("floor:").and_then(|f| f.parse().ok()) {
                st.floor_seqs.push((f, seq as u64));
            }
        }

        let mut q = c.prepare("SELECT service, avg_ms FROM clocks WHERE hall=?1")?;
        for row in q.query_map([hall], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })? {
            let (service, avg) = row?;
            if let Some(s) = spec.service_index(&service) {
                st.clocks.push((
                    s,
                    ServiceClock {
                        avg_ms: avg.max(1) as u64,
                    },
                ));
            }
        }

        let mut q = c.prepare(
            "SELECT floor, seq, number, window, at FROM (
               SELECT *, ROW_NUMBER() OVER (PARTITION BY floor ORDER BY seq DESC) AS n
               FROM recent_calls WHERE hall=?1) WHERE n <= ?2 ORDER BY floor, seq",
        )?;
        for row in q.query_map(params![hall, RECENT_KEPT], |r| {
            Ok((
                r.get::<_, i32>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, i64>(4)?,
            ))
        })? {
            let (floor, seq, number, window, at) = row?;
            if let Some(window) = spec.window_index(&window) {
                st.recent.push(RecentCall {
                    floor,
                    seq: seq as u64,
                    number,
                    window,
                    at: from_ms(at),
                });
            }
        }

        // The newest events of the hall channel and of every floor channel;
        // the union, in hall order. Each query walks an index range.
        let ring = EVENT_RING as i64;
        let mut events = std::collections::BTreeMap::new();
        let mut q = c.prepare(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE hall=?1 AND hall_seq > ?2"
        ))?;
        for e in q.query_map(params![hall, st.hall_seq as i64 - ring], event_row)? {
            let e = e?;
            events.insert(e.hall_seq, e);
        }
        let mut q = c.prepare(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE hall=?1 AND floor=?2 AND floor_seq > ?3"
        ))?;
        for &(floor, seq) in &st.floor_seqs {
            for e in q.query_map(params![hall, floor, seq as i64 - ring], event_row)? {
                let e = e?;
                events.insert(e.hall_seq, e);
            }
        }
        loaded.events = events.into_values().collect();

        let since = ms(now - Duration::hours(IDEMPOTENCY_HOURS));
        let mut q = c.prepare(
            "SELECT caller, key, created_at, status, body, request FROM idempotency
             WHERE hall=?1 AND created_at >= ?2",
        )?;
        for row in q.query_map(params![hall, since], |r| {
            let request: Option<Vec<u8>> = r.get(5)?;
            Ok(IdempotencyRecord {
                caller: r.get(0)?,
                key: r.get(1)?,
                request: request.and_then(|v| <[u8; 32]>::try_from(v.as_slice()).ok()),
                created_at: from_ms(r.get(2)?),
                status: r.get(3)?,
                body: Bytes::from(r.get::<_, Vec<u8>>(4)?),
            })
        })? {
            loaded.idempotency.push(row?);
        }
        Ok(loaded)
    }

    fn commit(&mut self, batches: &[&Batch]) -> Result<(), StoreError> {
        self.commit_with_deliveries(batches, &[])
    }

    fn commit_with_deliveries(
        &mut self,
        batches: &[&Batch],
        deliveries: &[OutboxUpdate],
    ) -> Result<(), StoreError> {
        let tx = self.write_tx()?;
        for b in batches {
            write_batch(&tx, b)?;
        }
        record_deliveries(&tx, deliveries)?;
        tx.commit()?;
        self.committed();
        Ok(())
    }

    fn outbox_due(
        &mut self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<OutboxRecord>, StoreError> {
        let mut q = self.conn.prepare_cached(&format!(
            "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE status='pending' AND next_attempt_at <= ?1
             ORDER BY next_attempt_at LIMIT ?2"
        ))?;
        let rows = q.query_map(params![ms(now), limit as i64], outbox_row)?;
        rows.map(|r| r?).collect()
    }

    fn outbox_list(
        &mut self,
        hall: &str,
        status: Option<OutboxStatus>,
        limit: usize,
    ) -> Result<Vec<OutboxRecord>, StoreError> {
        let mut q = self.conn.prepare_cached(&format!(
            "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE hall=?1 AND (?2 IS NULL OR status=?2)
             ORDER BY created_at DESC, rowid DESC LIMIT ?3"
        ))?;
        let rows = q.query_map(
            params![hall, status.map(|s| s.as_str()), limit as i64],
            outbox_row,
        )?;
        rows.map(|r| r?).collect()
    }

    fn appointments_between(
        &mut self,
        hall: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<BookingRow>, StoreError> {
        let mut q = self.conn.prepare_cached(
            "SELECT a.code, a.service, a.start, a.end, a.status, t.number, a.phone,
                    a.holder_name, a.id_masked
             FROM appointments a LEFT JOIN tickets t ON t.hall = a.hall AND t.id = a.ticket
             WHERE a.hall=?1 AND a.start >= ?2 AND a.start < ?3 ORDER BY a.start, a.id",
        )?;
        let rows = q.query_map(params![hall, ms(from), ms(to)], |r| {
            Ok(BookingRow {
                code: r.get(0)?,
                service: r.get(1)?,
                start: from_ms(r.get(2)?),
                end: from_ms(r.get(3)?),
                status: r.get(4)?,
                number: r.get(5)?,
                phone: r.get(6)?,
                holder: r.get::<_, Option<String>>(7)?.zip(r.get(8)?),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn cases(
        &mut self,
        hall: &str,
        status: Option<CaseStatus>,
    ) -> Result<Vec<CaseRow>, StoreError> {
        let ids: Vec<i64> = {
            let mut q = self.conn.prepare_cached(
                "SELECT id FROM cases WHERE hall=?1 AND (?2 IS NULL OR status=?2)
                 ORDER BY opened_at DESC, id DESC",
            )?;
            let rows = q.query_map(params![hall, status.map(|s| s.as_str())], |r| r.get(0))?;
            rows.collect::<Result<_, _>>()?
        };
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(c) = self.case(hall, id as u64)? {
                out.push(c);
            }
        }
        Ok(out)
    }

    fn case(&mut self, hall: &str, id: u64) -> Result<Option<CaseRow>, StoreError> {
        let row = self
            .conn
            .prepare_cached(
                "SELECT number, service, window, level, comment, status, opened_at, due_at
                 FROM cases WHERE hall=?1 AND id=?2",
            )?
            .query_row(params![hall, id as i64], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, u8>(3)?,
                    r.get::<_, Option<String>>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, i64>(6)?,
                    r.get::<_, i64>(7)?,
                ))
            })
            .optional()?;
        let Some((number, service, window, level, comment, status, opened, due)) = row else {
            return Ok(None);
        };
        let corrupt = |what: &str, value: &str| {
            StoreError::corrupt(format!(
                "the store is corrupt: {what} of case {id} in hall {hall}: status '{value}' is not \
                 open, contacted, rectified or closed; restore the data dir from a backup"
            ))
        };
        let status = CaseStatus::parse(&status).ok_or_else(|| corrupt("cases row", &status))?;
        let mut history = Vec::new();
        let mut q = self.conn.prepare_cached(
            "SELECT status, note, at FROM case_steps WHERE hall=?1 AND case_id=?2 ORDER BY n",
        )?;
        for step in q.query_map(params![hall, id as i64], |r| {
            Ok((r.get::<_, String>(0)?, r.get(1)?, r.get::<_, i64>(2)?))
        })? {
            let (s, note, at) = step?;
            history.push(CaseStep {
                status: CaseStatus::parse(&s).ok_or_else(|| corrupt("a step", &s))?,
                note,
                at: from_ms(at),
            });
        }
        Ok(Some(CaseRow {
            id,
            number,
            service,
            window,
            level,
            comment,
            status,
            opened_at: from_ms(opened),
            due_at: from_ms(due),
            history,
        }))
    }

    fn rating_counts(
        &mut self,
        hall: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<RatingCount>, StoreError> {
        let mut q = self.conn.prepare_cached(
            "SELECT window, service, rating, COUNT(*) FROM tickets
             WHERE hall=?1 AND rated_at >= ?2 AND rated_at < ?3 AND rating IS NOT NULL
             GROUP BY window, service, rating",
        )?;
        let rows = q.query_map(params![hall, ms(from), ms(to)], |r| {
            Ok(RatingCount {
                window: r.get(0)?,
                service: r.get(1)?,
                level: r.get(2)?,
                count: r.get::<_, i64>(3)? as u64,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn visit_tickets(
        &mut self,
        hall: &str,
        from: &str,
        to: &str,
        full: bool,
        visit: &mut dyn FnMut(&TicketFact<'_>),
    ) -> Result<(), StoreError> {
        // By the `tickets_stats` index: a range scan in the order asked,
        // and without `full` nothing but the index is read.
        let sql = if full {
            "SELECT day, id, number, service, COALESCE(issued_service, service), channel, priority,
                    status, window, created_at, COALESCE(first_called_at, called_at), called_at,
                    started_at, finished_at, rating
             FROM tickets WHERE hall=?1 AND day >= ?2 AND day <= ?3 ORDER BY day, id"
        } else {
            "SELECT day, id, '', service, COALESCE(issued_service, service), '', '',
                    status, window, created_at, COALESCE(first_called_at, called_at), called_at,
                    started_at, finished_at, rating
             FROM tickets WHERE hall=?1 AND day >= ?2 AND day <= ?3 ORDER BY day, id"
        };
        let mut q = self.conn.prepare_cached(sql)?;
        let mut rows = q.query(params![hall, from, to])?;
        while let Some(r) = rows.next()? {
            let text = |i: usize| -> rusqlite::Result<&str> {
                r.get_ref(i)?.as_str().map_err(|e| {
                    rusqlite::Error::FromSqlConversionFailure(
                        i,
                        rusqlite::types::Type::Text,
                        Box::new(e),
                    )
                })
            };
            let window = match r.get_ref(8)? {
                rusqlite::types::ValueRef::Null => None,
                _ => Some(text(8)?),
            };
            visit(&TicketFact {
                day: text(0)?,
                id: r.get(1)?,
                number: text(2)?,
                service: text(3)?,
                issued_service: text(4)?,
                channel: text(5)?,
                priority: text(6)?,
                status: text(7)?,
                window,
                created_at: r.get(9)?,
                first_called_at: r.get(10)?,
                called_at: r.get(11)?,
                started_at: r.get(12)?,
                finished_at: r.get(13)?,
                rating: r.get(14)?,
            });
        }
        Ok(())
    }

    fn outbox_counts(&mut self) -> Result<Vec<(String, String, u64)>, StoreError> {
        let mut q = self
            .conn
            .prepare_cached("SELECT hall, status, COUNT(*) FROM outbox GROUP BY hall, status")?;
        let rows = q.query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as u64))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn outbox_get(&mut self, hall: &str, id: &str) -> Result<Option<OutboxRecord>, StoreError> {
        let mut q = self.conn.prepare_cached(&format!(
            "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE hall=?1 AND id=?2"
        ))?;
        let row = q.query_row(params![hall, id], outbox_row).optional()?;
        row.transpose()
    }

    fn update_outbox(&mut self, updates: &[OutboxUpdate]) -> Result<(), StoreError> {
        let tx = self.write_tx()?;
        record_deliveries(&tx, updates)?;
        tx.commit()?;
        self.committed();
        Ok(())
    }

    fn probe(&mut self) -> Result<(), StoreError> {
        // Through the journal and its fsync, as every commit: a full disk
        // refuses it.
        let tx = self.write_tx()?;
        tx.execute(
            "INSERT OR REPLACE INTO meta(key, value) VALUES('probe', ?1)",
            [Utc::now().timestamp_millis().to_string()],
        )?;
        tx.commit()?;
        self.committed();
        Ok(())
    }

    fn maintain(&mut self, now: DateTime<Utc>) -> Result<(), StoreError> {
        let tx = self.write_tx()?;
        let since = ms(now - Duration::hours(IDEMPOTENCY_HOURS));
        tx.execute("DELETE FROM idempotency WHERE created_at < ?1", [since])?;
        tx.execute("DELETE FROM marks WHERE kept_until < ?1", [ms(now)])?;
        tx.execute(
            "DELETE FROM outbox WHERE status != 'pending' AND created_at < ?1",
            [ms(now - Duration::days(OUTBOX_KEPT_DAYS))],
        )?;
        tx.execute(
            "DELETE FROM recent_calls WHERE rowid IN (
               SELECT rowid FROM (
                 SELECT rowid, ROW_NUMBER() OVER (PARTITION BY hall, floor ORDER BY seq DESC) AS n
                 FROM recent_calls) WHERE n > ?1)",
            [RECENT_KEPT],
        )?;
        // Events older than any replay reaches, on both the hall's and
        // their floor's channel: the store replays at most
        // MAX_STORE_REPLAY (the contract asks for 1,000). Finished tickets
        // are kept (statistics need them); events are only the channels'.
        // A bounded batch per pass, so the writer is never held long.
        // Per floor, a range of the (hall, floor, floor_seq) index: only
        // the rows it may delete are visited, not the whole table.
        let channels: Vec<(String, i32, i64, i64)> = {
            let mut q = tx.prepare(
                "SELECT f.hall, CAST(substr(f.scope, 7) AS INTEGER), f.seq, h.seq
                 FROM sequences f JOIN sequences h ON h.hall = f.hall AND h.scope = 'hall'
                 WHERE f.scope LIKE 'floor:%'",
            )?;
            let rows = q.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
            rows.collect::<Result<_, _>>()?
        };
        for (hall, floor, floor_seq, hall_seq) in channels {
            tx.execute(
                "DELETE FROM events WHERE rowid IN (
                   SELECT rowid FROM events
                   WHERE hall = ?1 AND floor = ?2 AND floor_seq <= ?3 AND hall_seq <= ?4
                   LIMIT ?5)",
                params![
                    hall,
                    floor,
                    floor_seq - EVENTS_KEPT,
                    hall_seq - EVENTS_KEPT,
                    PRUNE_BATCH
                ],
            )?;
        }
        tx.commit()?;
        self.committed();
        Ok(())
    }

    fn events_after(
        &mut self,
        hall: &str,
        floor: Option<i32>,
        after: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let limit = limit as i64;
        let after = after as i64;
        let rows = match floor {
            Some(f) => {
                let mut q = self.conn.prepare_cached(&format!(
                    "SELECT {EVENT_COLUMNS} FROM events WHERE hall=?1 AND floor=?2 AND floor_seq > ?3
                     ORDER BY floor_seq LIMIT ?4"
                ))?;
                let v = q
                    .query_map(params![hall, f, after, limit], event_row)?
                    .collect::<Result<Vec<_>, _>>()?;
                v
            }
            None => {
                let mut q = self.conn.prepare_cached(&format!(
                    "SELECT {EVENT_COLUMNS} FROM events WHERE hall=?1 AND hall_seq > ?2
                     ORDER BY hall_seq LIMIT ?3"
                ))?;
                let v = q
                    .query_map(params![hall, after, limit], event_row)?
                    .collect::<Result<Vec<_>, _>>()?;
                v
            }
        };
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A batch of one event at `seq` on floor 3, computed from `expect`.
    fn one_event(spec: &std::sync::Arc<HallSpec>, expect: u64, seq: u64) -> Batch {
        let mut b = Batch::new(spec.clone(), expect);
        b.events.push(StoredEvent {
            floor: 3,
            floor_seq: seq,
            hall_seq: seq,
            at: Utc::now(),
            floor_msg: bytes::Bytes::from_static(b"{}"),
            hall_msg: bytes::Bytes::from_static(b"{}"),
        });
        b
    }

    #[test]
    fn the_writer_never_checkpoints_in_its_commits_and_its_thread_does_soon_after() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = Sqlite::open_writer(dir.path()).unwrap();
        let file = dir.path().join("hallcast.db");
        let size = || std::fs::metadata(&file).unwrap().len();
        let before = size();
        // 8 MiB in commits of 256 KiB: SQLite's own checkpoint would have
        // run inside the commit that took the WAL past 1,000 pages.
        db.conn
            .execute_batch("CREATE TABLE filler(b BLOB)")
            .unwrap();
        for _ in 0..32 {
            let tx = db.conn.transaction().unwrap();
            tx.execute("INSERT INTO filler VALUES(randomblob(262144))", [])
                .unwrap();
            tx.commit().unwrap();
            db.committed();
        }
        assert!(
            size() < before + (1 << 20),
            "the commits wrote only the WAL: {} → {} bytes",
            before,
            size()
        );
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while size() < 8 << 20 {
            assert!(
                std::time::Instant::now() < deadline,
                "the checkpoint thread moved the pages into the file"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        drop(db);
        // Nothing lost on the way.
        let check = Connection::open(&file).unwrap();
        let n: i64 = check
            .query_row("SELECT count(*) FROM filler", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 32);
    }

    /// A pending message of the demo hall made at `at`.
    fn message(at: DateTime<Utc>) -> OutboxRecord {
        OutboxRecord {
            id: crate::notify::message_id(at),
            hall: "demo".into(),
            kind: "issued".into(),
            phone: "13800000000".into(),
            ticket: Some(1),
            appointment: None,
            body: bytes::Bytes::from_static(b"{}"),
            status: OutboxStatus::Pending,
            attempts: 0,
            last_error: None,
            created_at: at,
            next_attempt_at: at,
        }
    }

    fn update(m: &OutboxRecord, status: OutboxStatus) -> OutboxUpdate {
        OutboxUpdate {
            hall: m.hall.clone(),
            id: m.id.clone(),
            status,
            attempts: m.attempts + 1,
            last_error: None,
            next_attempt_at: m.next_attempt_at,
        }
    }

    fn counts(db: &mut Sqlite) -> Vec<(String, u64)> {
        let mut c: Vec<(String, u64)> = db
            .outbox_counts()
            .unwrap()
            .into_iter()
            .filter(|(_, _, n)| *n > 0)
            .map(|(h, s, n)| (format!("{h}/{s}"), n))
            .collect();
        c.sort();
        c
    }

    #[test]
    fn the_outbox_lists_counts_and_prunes_its_messages() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = Sqlite::open(dir.path()).unwrap();
        let spec = crate::demo::spec();
        let now = Utc::now();
        let days = |d: i64| now - Duration::days(d);
        // Made 40 and 35 days ago (one delivered, one dead), yesterday
        // (delivered) and now (pending); one 31 days old still pending.
        let m: Vec<OutboxRecord> = [40, 35, 31, 1, 0]
            .iter()
            .map(|d| message(days(*d)))
            .collect();
        let mut b = one_event(&spec, 0, 1);
        b.outbox = m.clone();
        db.commit(&[&b]).unwrap();
        db.update_outbox(&[
            update(&m[0], OutboxStatus::Delivered),
            update(&m[1], OutboxStatus::Dead),
            update(&m[3], OutboxStatus::Delivered),
        ])
        .unwrap();
        // A delivery recorded twice (a crash between the answer and the
        // record sends again) is counted once.
        db.update_outbox(&[update(&m[3], OutboxStatus::Delivered)])
            .unwrap();
        let c = |v: &[(&str, u64)]| -> Vec<(String, u64)> {
            v.iter().map(|(k, n)| (k.to_string(), *n)).collect()
        };
        assert_eq!(
            counts(&mut db),
            c(&[("demo/dead", 1), ("demo/delivered", 2), ("demo/pending", 2)])
        );
        let ids = |v: Vec<OutboxRecord>| v.into_iter().map(|r| r.id).collect::<Vec<_>>();
        let all = ids(db.outbox_list("demo", None, 10).unwrap());
        let newest_first: Vec<String> = m.iter().rev().map(|r| r.id.clone()).collect();
        assert_eq!(all, newest_first);
        assert_eq!(
            ids(db
                .outbox_list("demo", Some(OutboxStatus::Delivered), 10)
                .unwrap()),
            vec![m[3].id.clone(), m[0].id.clone()]
        );
        assert_eq!(
            ids(db
                .outbox_list("demo", Some(OutboxStatus::Dead), 10)
                .unwrap()),
            vec![m[1].id.clone()]
        );
        assert_eq!(
            ids(db
                .outbox_list("demo", Some(OutboxStatus::Pending), 1)
                .unwrap()),
            vec![m[4].id.clone()],
            "newest first, up to the limit"
        );
        assert!(db.outbox_list("other", None, 10).unwrap().is_empty());
        assert_eq!(
            ids(db.outbox_due(now, 10).unwrap()),
            vec![m[2].id.clone(), m[4].id.clone()],
            "the pending ones, the longest due first"
        );
        // An admin's retry makes the dead one pending again.
        db.update_outbox(&[update(&m[1], OutboxStatus::Pending)])
            .unwrap();
        db.update_outbox(&[update(&m[1], OutboxStatus::Dead)])
            .unwrap();
        // Kept 30 days unless pending.
        db.maintain(now).unwrap();
        assert_eq!(
            counts(&mut db),
            c(&[("demo/delivered", 1), ("demo/pending", 2)])
        );
        assert_eq!(
            ids(db.outbox_list("demo", None, 10).unwrap()),
            vec![m[4].id.clone(), m[3].id.clone(), m[2].id.clone()]
        );
        assert_eq!(
            db.outbox_get("demo", &m[3].id).unwrap().map(|r| r.status),
            Some(OutboxStatus::Delivered)
        );
    }

    #[test]
    fn a_schema_3_file_is_upgraded_in_place_and_keeps_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let spec = crate::demo::spec();
        {
            // What a schema 3 binary left: no bookings, no slot, no
            // outbox link; one event already written.
            let mut db = Sqlite::open(dir.path()).unwrap();
            db.commit(&[&one_event(&spec, 0, 1)]).unwrap();
            db.conn
                .execute_batch(
                    "ALTER TABLE tickets DROP COLUMN slot_start;
                     ALTER TABLE outbox DROP COLUMN appointment;
                     ALTER TABLE tickets DROP COLUMN reminded;
                     DROP TABLE appointments;
                     UPDATE meta SET value='3' WHERE key='schema';",
                )
                .unwrap();
        }
        let mut db = Sqlite::open(dir.path()).unwrap();
        let schema: String = db
            .conn
            .query_row("SELECT value FROM meta WHERE key='schema'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(schema, SCHEMA_VERSION.to_string());
        for (table, column, _) in ADDED_COLUMNS {
            let has = db
                .conn
                .prepare("SELECT 1 FROM pragma_table_info(?1) WHERE name=?2")
                .unwrap()
                .exists(params![table, column])
                .unwrap();
            assert!(has, "{table}.{column}");
        }
        let loaded = db.load(&spec, Utc::now()).unwrap();
        assert_eq!(loaded.state.hall_seq, 1, "the old rows are kept");
        assert!(loaded.state.appointments.is_empty());
        db.commit(&[&one_event(&spec, 1, 2)])
            .expect("the upgraded file takes writes");
    }

    #[test]
    fn a_commit_computed_from_a_stale_seq_is_a_conflict_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = Sqlite::open(dir.path()).unwrap();
        let spec = crate::demo::spec();
        db.commit(&[&one_event(&spec, 0, 1), &one_event(&spec, 1, 2)])
            .expect("a group of consecutive batches commits");
        // Another writer's view: it still thinks the hall is at seq 1.
        let stale = one_event(&spec, 1, 2);
        let fresh = one_event(&spec, 2, 3);
        let e = db.commit(&[&fresh, &stale]).unwrap_err();
        assert_eq!(e.kind, crate::store::StoreErrorKind::Conflict, "{e}");
        assert!(e.message.contains("another process"), "{e}");
        let events: i64 = db
            .conn
            .query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))
            .unwrap();
        assert_eq!(events, 2, "the whole group is refused, the good batch too");
        db.commit(&[&fresh]).expect("the right seq still commits");
    }

    #[test]
    fn maintenance_prunes_events_no_replay_reaches_on_either_channel() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = Sqlite::open(dir.path()).unwrap();
        // Hall h: 25,000 events on floor 1, then 100 on floor 2 (whose
        // floor channel is short: all of them stay).
        let tx = db.conn.transaction().unwrap();
        for i in 1..=25_100i64 {
            let (floor, fseq) = if i <= 25_000 { (1, i) } else { (2, i - 25_000) };
            tx.execute(
                "INSERT INTO events VALUES('h', ?1, ?2, ?3, 0, '{}', '{}')",
                params![i, floor, fseq],
            )
            .unwrap();
        }
        tx.execute_batch(
            "INSERT INTO sequences VALUES('h','hall',25100),('h','floor:1',25000),('h','floor:2',100)",
        )
        .unwrap();
        tx.commit().unwrap();
        db.maintain(Utc::now()).unwrap();
        let count = |db: &Sqlite, floor: i32| -> i64 {
            db.conn
                .query_row("SELECT COUNT(*) FROM events WHERE floor=?1", [floor], |r| {
                    r.get(0)
                })
                .unwrap()
        };
        // Floor 1 keeps its newest 10,000 (and the hall's newest 10,000
        // include them); floor 2 keeps everything.
        assert_eq!(count(&db, 1), 10_000);
        assert_eq!(count(&db, 2), 100);
        let oldest: i64 = db
            .conn
            .query_row("SELECT MIN(floor_seq) FROM events WHERE floor=1", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(oldest, 15_001);
        // Replays still find what they ask for.
        let got = db.events_after("h", Some(1), 15_000, 5).unwrap();
        assert_eq!(got.first().map(|e| e.floor_seq), Some(15_001));
    }
}
