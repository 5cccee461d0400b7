//! The cluster's store (contract §14): the same [`Backend`] over
//! PostgreSQL, the single source of truth of every node.
//!
//! The tables are the SQLite store's (`postgres.rs` creates them), read
//! and written with the same meaning. What a cluster adds is the order
//! between nodes: every batch carries the hall **version** its command
//! ran on (one more for each batch that wrote anything), and a commit
//! takes the hall's version row `FOR UPDATE` and refuses the whole group
//! as a [`StoreErrorKind::Conflict`] when another node moved it first. The
//! row lock orders the hall's commits across nodes; the version check
//! makes sure no command is journaled that was computed from a state the
//! database no longer has. The engine then reloads the hall and runs the
//! command again.
//!
//! The connection is opened lazily and opened again after it broke: a
//! database that was down is used again as soon as it answers, without a
//! restart.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use chrono::{DateTime, Duration, Utc};
use postgres::types::ToSql;
use postgres::{Client, GenericClient, NoTls, Statement, Transaction};

use super::sqlite::{
    day_str, floor_scope, ms, parse_day, RawTicket, APPOINTMENTS_LOADED_DAYS, EVENTS_KEPT,
    OUTBOX_KEPT_DAYS, PRUNE_BATCH, RECENT_KEPT,
};
use super::{from_ms, EVENT_RING, IDEMPOTENCY_HOURS};
use super::{
    Backend, Batch, BookingRow, CaseRow, IdempotencyRecord, Loaded, OutboxRecord, OutboxStatus,
    OutboxUpdate, RatingCount, StoreError, StoreErrorKind, StoredEvent, TicketFact,
};
use crate::queue::eta::ServiceClock;
use crate::queue::hall::CASES_KEPT_DAYS;
use crate::queue::{
    Appointment, BookingStatus, CallMark, Case, CaseStatus, CaseStep, Counter, HallSpec,
    RecentCall, Restored, WindowState,
};

/// How long a connection attempt may take: a node whose database is down
/// keeps retrying, and each try must end well inside the contract's 10 s.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// How long a node's claim on an outbox message it is sending lasts:
/// well past a delivery's 10 s timeout and the wait for a free sender.
const OUTBOX_LEASE: Duration = Duration::seconds(60);

/// The scope of the row in `sequences` that holds a hall's version.
const VERSION_SCOPE: &str = "version";

/// The scope of the row in `sequences` that holds the commit id of the
/// last batch that moved the hall's version.
const COMMIT_SCOPE: &str = "commit";

/// The halls among `batches` that a lost-answer try of this same group
/// committed already: the hall stands at the version its last batch here
/// would make, with that batch's commit id.
fn already_committed<'a>(
    tx: &mut Transaction<'_>,
    cache: &mut HashMap<String, Statement>,
    batches: &[&'a Batch],
    versions: &BTreeMap<&str, u64>,
) -> Result<std::collections::HashSet<&'a str>, StoreError> {
    let mut last: BTreeMap<&'a str, &'a Batch> = BTreeMap::new();
    for b in batches.iter().filter(|b| !b.is_empty()) {
        last.insert(b.hall.id.as_str(), b);
    }
    let mut done = std::collections::HashSet::new();
    let read = prepared(
        tx,
        cache,
        "SELECT seq FROM sequences WHERE hall=$1 AND scope='commit'",
    )?;
    for (hall, b) in last {
        let at = versions.get(hall).copied().unwrap_or(0);
        // Only a hall already past what this group expects can be done.
        if at != b.version + 1 {
            continue;
        }
        let id: Option<i64> = tx.query_opt(&read, &[&hall])?.map(|r| r.get(0));
        if id == Some(b.commit_id) {
            done.insert(hall);
        }
    }
    Ok(done)
}

/// One connection to the cluster's database.
pub struct Postgres {
    url: String,
    client: Option<Client>,
    /// Prepared statements of this connection, by their text.
    statements: HashMap<String, Statement>,
}

impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> Self {
        let code = e.code().map(|c| c.code().to_string());
        let kind = match code.as_deref() {
            // Serialization failure, deadlock, lock timeout: try again.
            Some("40001" | "40P01" | "55P03") => StoreErrorKind::Transient,
            Some(c) if c.starts_with("08") || c.starts_with("57P") => StoreErrorKind::Unavailable,
            Some(_) => StoreErrorKind::Unavailable,
            // No SQLSTATE: the connection itself failed.
            None => StoreErrorKind::Unavailable,
        };
        let message = match e.as_db_error() {
            Some(db) => format!("PostgreSQL: {}", db.message()),
            None => format!("PostgreSQL: {e}"),
        };
        StoreError::new(kind, message)
    }
}

/// The blocking client closes its connection on drop by blocking on a
/// runtime of its own, which may not start on an async thread (the engine
/// and its connections end on one at shutdown): such a connection is
/// closed on a thread of its own.
impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            if tokio::runtime::Handle::try_current().is_ok() {
                let _ = std::thread::Builder::new()
                    .name("hallcast-pg-close".into())
                    .spawn(move || drop(client));
            }
        }
    }
}

/// A Unix-millisecond column as a time.
fn at(v: i64) -> DateTime<Utc> {
    from_ms(v)
}

impl Postgres {
    /// A backend over `url`; connects now, so that a wrong URL or an
    /// unreachable database is said at start (the caller decides whether
    /// to wait for it).
    pub fn connect(url: &str) -> Result<Postgres, StoreError> {
        let mut p = Postgres::lazy(url)?;
        p.client()?;
        Ok(p)
    }

    /// A backend over `url` that connects on first use.
    pub fn lazy(url: &str) -> Result<Postgres, StoreError> {
        url.parse::<postgres::Config>().map_err(|e| {
            StoreError::unavailable(format!(
                "'{url}' is not a PostgreSQL URL ({e}); write postgres://USER@HOST:PORT/DATABASE"
            ))
        })?;
        Ok(Postgres {
            url: url.to_string(),
            client: None,
            statements: HashMap::new(),
        })
    }

    /// The open connection, opened again if it broke.
    fn client(&mut self) -> Result<&mut Client, StoreError> {
        if self.client.as_ref().is_some_and(|c| c.is_closed()) {
            self.client = None;
        }
        if self.client.is_none() {
            let mut config: postgres::Config = self
                .url
                .parse()
                .map_err(|e: postgres::Error| StoreError::unavailable(e.to_string()))?;
            config.connect_timeout(CONNECT_TIMEOUT);
            let client = config.connect(NoTls).map_err(|e| {
                StoreError::unavailable(format!(
                    "cannot connect to PostgreSQL: {}",
                    e.as_db_error()
                        .map(|d| d.message().to_string())
                        .unwrap_or_else(|| e.to_string())
                ))
            })?;
            self.statements.clear();
            self.client = Some(client);
        }
        Ok(self.client.as_mut().expect("connected above"))
    }

    /// Runs `f` on the connection; a failure that broke the connection
    /// drops it, so the next call connects afresh, and is transient: a
    /// database that restarted since the last use is met here first, and
    /// the writer's next try works on a new connection instead of failing
    /// the command.
    fn with<T>(
        &mut self,
        f: impl FnOnce(&mut Client, &mut HashMap<String, Statement>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.client()?;
        let client = self.client.as_mut().expect("connected above");
        let r = f(client, &mut self.statements);
        if r.is_err() && self.client.as_ref().is_some_and(|c| c.is_closed()) {
            self.client = None;
            return r.map_err(|mut e| {
                if e.kind != StoreErrorKind::Conflict {
                    e.kind = StoreErrorKind::Transient;
                }
                e
            });
        }
        r
    }

    /// One hall's version as the database has it now (0 before its first
    /// commit).
    pub fn version_of(&mut self, hall: &str) -> Result<u64, StoreError> {
        self.with(|c, _| {
            Ok(c.query_opt(
                "SELECT seq FROM sequences WHERE hall=$1 AND scope='version'",
                &[&hall],
            )?
            .map_or(0, |r| r.get::<_, i64>(0) as u64))
        })
    }

    /// Every hall's version and hall seq as the database has them now
    /// (the cluster's poll: one cheap query for all halls).
    pub fn heads(&mut self) -> Result<Vec<(String, u64, u64)>, StoreError> {
        self.with(|c, _| {
            let rows = c.query(
                "SELECT hall,
                        COALESCE(MAX(seq) FILTER (WHERE scope = 'version'), 0),
                        COALESCE(MAX(seq) FILTER (WHERE scope = 'hall'), 0)
                 FROM sequences GROUP BY hall",
                &[],
            )?;
            Ok(rows
                .iter()
                .map(|r| {
                    (
                        r.get::<_, String>(0),
                        r.get::<_, i64>(1) as u64,
                        r.get::<_, i64>(2) as u64,
                    )
                })
                .collect())
        })
    }
}

/// A statement of this connection, prepared once.
fn prepared(
    tx: &mut Transaction<'_>,
    cache: &mut HashMap<String, Statement>,
    sql: &str,
) -> Result<Statement, StoreError> {
    if let Some(s) = cache.get(sql) {
        return Ok(s.clone());
    }
    let s = tx.prepare(sql)?;
    cache.insert(sql.to_string(), s.clone());
    Ok(s)
}

/// One value of a row, as its column's type.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum V {
    I(Option<i64>),
    T(Option<String>),
    B(Option<Vec<u8>>),
}

fn int(v: impl Into<i64>) -> V {
    V::I(Some(v.into()))
}

fn text(v: impl Into<String>) -> V {
    V::T(Some(v.into()))
}

/// A column of a group's rows, sent as one array parameter.
enum Column {
    I(Vec<Option<i64>>),
    T(Vec<Option<String>>),
    B(Vec<Option<Vec<u8>>>),
}

impl Column {
    fn sql_type(&self) -> &'static str {
        match self {
            Column::I(_) => "BIGINT[]",
            Column::T(_) => "TEXT[]",
            Column::B(_) => "BYTEA[]",
        }
    }

    fn as_sql(&self) -> &(dyn ToSql + Sync) {
        match self {
            Column::I(v) => v,
            Column::T(v) => v,
            Column::B(v) => v,
        }
    }
}

/// What to do with a row whose key is already there.
#[derive(Clone, Copy)]
enum OnConflict {
    /// Write the new image over it (SQLite's `INSERT OR REPLACE`).
    Replace,
    /// Keep the row there (steps are only ever appended).
    Keep,
    /// There must be none (events, messages).
    Refuse,
}

/// A table's rows of one group: written with one statement of arrays
/// (`INSERT … SELECT * FROM UNNEST(…)`), so a group of hundreds of
/// commands costs a dozen round trips, not thousands. Several images of
/// one row in a group (a ticket issued and called) leave the last.
struct Rows {
    table: &'static str,
    /// Column names, the key's first.
    columns: &'static [&'static str],
    key: usize,
    conflict: OnConflict,
    rows: Vec<Vec<V>>,
}

impl Rows {
    fn new(
        table: &'static str,
        columns: &'static [&'static str],
        key: usize,
        conflict: OnConflict,
    ) -> Rows {
        Rows {
            table,
            columns,
            key,
            conflict,
            rows: Vec::new(),
        }
    }

    fn push(&mut self, row: Vec<V>) {
        debug_assert_eq!(row.len(), self.columns.len(), "a row of {}", self.table);
        self.rows.push(row);
    }

    fn write(
        self,
        tx: &mut Transaction<'_>,
        cache: &mut HashMap<String, Statement>,
    ) -> Result<(), StoreError> {
        let Some(first) = self.rows.first() else {
            return Ok(());
        };
        let mut columns: Vec<Column> = first
            .iter()
            .map(|v| match v {
                V::I(_) => Column::I(Vec::new()),
                V::T(_) => Column::T(Vec::new()),
                V::B(_) => Column::B(Vec::new()),
            })
            .collect();
        let mut seen = std::collections::HashSet::new();
        let mut kept: Vec<&Vec<V>> = self
            .rows
            .iter()
            .rev()
            .filter(|r| seen.insert(&r[..self.key]))
            .collect();
        kept.reverse();
        for row in kept {
            for (c, v) in columns.iter_mut().zip(row) {
                match (c, v) {
                    (Column::I(c), V::I(v)) => c.push(*v),
                    (Column::T(c), V::T(v)) => c.push(v.clone()),
                    (Column::B(c), V::B(v)) => c.push(v.clone()),
                    _ => {
                        return Err(StoreError::unavailable(format!(
                            "a row of {} mixes column types (a bug)",
                            self.table
                        )))
                    }
                }
            }
        }
        let quote = |c: &&str| {
            if matches!(*c, "window" | "end") {
                format!("\"{c}\"")
            } else {
                c.to_string()
            }
        };
        let names: Vec<String> = self.columns.iter().map(quote).collect();
        let arrays: Vec<String> = columns
            .iter()
            .enumerate()
            .map(|(i, c)| format!("${}::{}", i + 1, c.sql_type()))
            .collect();
        let key = names[..self.key].join(", ");
        let action = match self.conflict {
            OnConflict::Refuse => String::new(),
            OnConflict::Keep => format!(" ON CONFLICT ({key}) DO NOTHING"),
            OnConflict::Replace => {
                let sets: Vec<String> = names[self.key..]
                    .iter()
                    .map(|n| format!("{n} = EXCLUDED.{n}"))
                    .collect();
                format!(" ON CONFLICT ({key}) DO UPDATE SET {}", sets.join(", "))
            }
        };
        let sql = format!(
            "INSERT INTO {}({}) SELECT * FROM UNNEST({}){action}",
            self.table,
            names.join(", "),
            arrays.join(", ")
        );
        let st = prepared(tx, cache, &sql)?;
        let params: Vec<&(dyn ToSql + Sync)> = columns.iter().map(Column::as_sql).collect();
        tx.execute(&st, &params)?;
        Ok(())
    }
}

/// The after-images of a group of batches, table by table (the caller
/// checked their versions).
struct Group {
    tables: Vec<Rows>,
}

const TICKETS: usize = 0;
const APPOINTMENTS: usize = 1;
const CASES: usize = 2;
const CASE_STEPS: usize = 3;
const WINDOWS: usize = 4;
const COUNTERS: usize = 5;
const CLOCKS: usize = 6;
const RECENT: usize = 7;
const EVENTS: usize = 8;
const SEQUENCES: usize = 9;
const OUTBOX: usize = 10;
const IDEMPOTENCY: usize = 11;
const MARKS: usize = 12;

impl Group {
    fn new() -> Group {
        use OnConflict::*;
        Group {
            tables: vec![
                Rows::new(
                    "tickets",
                    &[
                        "hall",
                        "id",
                        "token",
                        "number",
                        "day",
                        "service",
                        "priority",
                        "channel",
                        "status",
                        "window",
                        "recall",
                        "line_pos",
                        "created_at",
                        "called_at",
                        "started_at",
                        "finished_at",
                        "call_floor",
                        "call_seq",
                        "call_at",
                        "notify_phone",
                        "slot_start",
                        "reminded",
                        "issued_service",
                        "first_called_at",
                        "rating",
                        "rating_comment",
                        "rated_at",
                        "rating_source",
                        "version",
                    ],
                    2,
                    Replace,
                ),
                Rows::new(
                    "appointments",
                    &[
                        "hall",
                        "id",
                        "code",
                        "token",
                        "service",
                        "start",
                        "end",
                        "status",
                        "phone",
                        "ticket",
                        "reminded",
                        "created_at",
                        "updated_at",
                        "holder_name",
                        "id_hash",
                        "id_masked",
                        "version",
                    ],
                    2,
                    Replace,
                ),
                Rows::new(
                    "cases",
                    &[
                        "hall",
                        "id",
                        "ticket",
                        "number",
                        "service",
                        "window",
                        "level",
                        "comment",
                        "status",
                        "opened_at",
                        "due_at",
                        "updated_at",
                        "version",
                    ],
                    2,
                    Replace,
                ),
                Rows::new(
                    "case_steps",
                    &["hall", "case_id", "n", "status", "note", "at"],
                    3,
                    Keep,
                ),
                Rows::new(
                    "windows",
                    &["hall", "id", "paused", "current", "version"],
                    2,
                    Replace,
                ),
                Rows::new(
                    "counters",
                    &["hall", "service", "day", "last", "version"],
                    3,
                    Replace,
                ),
                Rows::new(
                    "clocks",
                    &["hall", "service", "avg_ms", "version"],
                    2,
                    Replace,
                ),
                Rows::new(
                    "recent_calls",
                    &["hall", "floor", "seq", "number", "window", "at", "version"],
                    3,
                    Replace,
                ),
                Rows::new(
                    "events",
                    &[
                        "hall",
                        "hall_seq",
                        "floor",
                        "floor_seq",
                        "at",
                        "floor_msg",
                        "hall_msg",
                    ],
                    2,
                    Refuse,
                ),
                Rows::new("sequences", &["hall", "scope", "seq"], 2, Replace),
                Rows::new(
                    "outbox",
                    &[
                        "id",
                        "hall",
                        "kind",
                        "phone",
                        "ticket",
                        "body",
                        "status",
                        "attempts",
                        "last_error",
                        "created_at",
                        "next_attempt_at",
                        "appointment",
                    ],
                    1,
                    Refuse,
                ),
                Rows::new(
                    "idempotency",
                    &[
                        "hall",
                        "caller",
                        "key",
                        "created_at",
                        "status",
                        "body",
                        "request",
                        "version",
                    ],
                    3,
                    Replace,
                ),
                Rows::new(
                    "marks",
                    &["hall", "key", "data", "kept_until", "version"],
                    2,
                    Replace,
                ),
            ],
        }
    }

    /// Adds one batch's after-images.
    fn add(&mut self, b: &Batch) {
        let hall = || text(b.hall.id.as_str());
        let spec = &b.hall;
        // Every row says which of the hall's versions wrote it.
        let version = || int(b.version as i64 + 1);
        let service = |s: usize| text(spec.services[s].id.as_str());
        let window = |w: Option<usize>| V::T(w.map(|w| spec.windows[w].id.clone()));
        let t = &mut self.tables;
        for x in &b.tickets {
            t[TICKETS].push(vec![
                hall(),
                int(x.id as i64),
                text(x.token.as_str()),
                text(x.number.as_str()),
                text(day_str(x.day)),
                service(x.service),
                text(x.priority.as_str()),
                text(x.channel.as_str()),
                text(x.status.as_str()),
                window(x.window),
                int(x.recall),
                int(x.line_pos as i64),
                int(ms(x.created_at)),
                V::I(x.called_at.map(ms)),
                V::I(x.started_at.map(ms)),
                V::I(x.finished_at.map(ms)),
                V::I(x.last_call.map(|c| i64::from(c.floor))),
                V::I(x.last_call.map(|c| c.seq as i64)),
                V::I(x.last_call.map(|c| ms(c.at))),
                V::T(x.notify_phone.clone()),
                V::I(x.slot.map(ms)),
                int(x.reminded),
                service(x.issued_service),
                V::I(x.first_called_at.map(ms)),
                V::I(x.rating.as_ref().map(|r| i64::from(r.level))),
                V::T(x.rating.as_ref().and_then(|r| r.comment.clone())),
                V::I(x.rating.as_ref().map(|r| ms(r.at))),
                V::T(x.rating.as_ref().map(|r| r.source.as_str().to_string())),
                version(),
            ]);
        }
        for a in &b.appointments {
            t[APPOINTMENTS].push(vec![
                hall(),
                int(a.id as i64),
                text(a.code.as_str()),
                text(a.token.as_str()),
                service(a.service),
                int(ms(a.start)),
                int(ms(a.end)),
                text(a.status.as_str()),
                V::T(a.phone.clone()),
                V::I(a.ticket.map(|t| t as i64)),
                int(a.reminded),
                int(ms(a.created_at)),
                int(ms(a.updated_at)),
                V::T(a.holder.as_ref().map(|h| h.name.clone())),
                V::T(a.holder.as_ref().map(|h| h.id_hash.clone())),
                V::T(a.holder.as_ref().map(|h| h.id_masked.clone())),
                version(),
            ]);
        }
        for (key, m) in &b.marks {
            t[MARKS].push(vec![
                hall(),
                text(key.as_str()),
                text(super::marks::encode(m)),
                int(super::marks::kept_until_ms(m)),
                version(),
            ]);
        }
        for c in &b.cases {
            t[CASES].push(vec![
                hall(),
                int(c.id as i64),
                int(c.ticket as i64),
                text(c.number.as_str()),
                service(c.service),
                window(c.window),
                int(c.level),
                V::T(c.comment.clone()),
                text(c.status().as_str()),
                int(ms(c.opened_at)),
                int(ms(c.due_at)),
                int(ms(c.updated_at())),
                version(),
            ]);
            for (n, step) in c.history.iter().enumerate() {
                t[CASE_STEPS].push(vec![
                    hall(),
                    int(c.id as i64),
                    int(n as i64),
                    text(step.status.as_str()),
                    V::T(step.note.clone()),
                    int(ms(step.at)),
                ]);
            }
        }
        for (w, state) in &b.windows {
            t[WINDOWS].push(vec![
                hall(),
                text(spec.windows[*w].id.as_str()),
                int(state.paused),
                V::I(state.current.map(|c| c as i64)),
                version(),
            ]);
        }
        if let Some(c) = &b.counter {
            t[COUNTERS].push(vec![
                hall(),
                service(c.service),
                text(day_str(c.day)),
                int(c.last),
                version(),
            ]);
        }
        for (s, clock) in &b.clocks {
            t[CLOCKS].push(vec![
                hall(),
                service(*s),
                int(clock.avg_ms as i64),
                version(),
            ]);
        }
        for r in &b.recent {
            t[RECENT].push(vec![
                hall(),
                int(r.floor),
                int(r.seq as i64),
                text(r.number.as_str()),
                text(spec.windows[r.window].id.as_str()),
                int(ms(r.at)),
                version(),
            ]);
        }
        for e in &b.events {
            t[EVENTS].push(vec![
                hall(),
                int(e.hall_seq as i64),
                int(e.floor),
                int(e.floor_seq as i64),
                int(ms(e.at)),
                text(String::from_utf8_lossy(&e.floor_msg)),
                text(String::from_utf8_lossy(&e.hall_msg)),
            ]);
            t[SEQUENCES].push(vec![
                hall(),
                text(floor_scope(e.floor)),
                int(e.floor_seq as i64),
            ]);
        }
        if let Some(last) = b.events.last() {
            t[SEQUENCES].push(vec![hall(), text("hall"), int(last.hall_seq as i64)]);
        }
        for m in &b.outbox {
            t[OUTBOX].push(vec![
                text(m.id.as_str()),
                text(m.hall.as_str()),
                text(m.kind.as_str()),
                text(m.phone.as_str()),
                V::I(m.ticket.map(|t| t as i64)),
                V::B(Some(m.body.to_vec())),
                text(m.status.as_str()),
                int(m.attempts),
                V::T(m.last_error.clone()),
                int(ms(m.created_at)),
                int(ms(m.next_attempt_at)),
                V::I(m.appointment.map(|a| a as i64)),
            ]);
        }
        if let Some(i) = &b.idempotency {
            t[IDEMPOTENCY].push(vec![
                hall(),
                text(i.caller.as_str()),
                text(i.key.as_str()),
                int(ms(i.created_at)),
                int(i.status),
                V::B(Some(i.body.to_vec())),
                V::B(i.request.map(|r| r.to_vec())),
                version(),
            ]);
        }
    }

    fn write(
        self,
        tx: &mut Transaction<'_>,
        cache: &mut HashMap<String, Statement>,
    ) -> Result<(), StoreError> {
        for rows in self.tables {
            rows.write(tx, cache)?;
        }
        Ok(())
    }
}

/// Records what deliveries did, all in one statement.
fn record_deliveries(
    tx: &mut Transaction<'_>,
    cache: &mut HashMap<String, Statement>,
    updates: &[OutboxUpdate],
) -> Result<(), StoreError> {
    if updates.is_empty() {
        return Ok(());
    }
    let st = prepared(
        tx,
        cache,
        "UPDATE outbox o SET status = u.status, attempts = u.attempts,
           last_error = u.last_error, next_attempt_at = u.next_attempt_at
         FROM UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::BIGINT[], $5::TEXT[], $6::BIGINT[])
           AS u(hall, id, status, attempts, last_error, next_attempt_at)
         WHERE o.hall = u.hall AND o.id = u.id",
    )?;
    // The last record of a message wins, as when written one by one.
    let mut last: HashMap<(&str, &str), &OutboxUpdate> = HashMap::new();
    for u in updates {
        last.insert((u.hall.as_str(), u.id.as_str()), u);
    }
    let us: Vec<&OutboxUpdate> = last.into_values().collect();
    let halls: Vec<&str> = us.iter().map(|u| u.hall.as_str()).collect();
    let ids: Vec<&str> = us.iter().map(|u| u.id.as_str()).collect();
    let statuses: Vec<&str> = us.iter().map(|u| u.status.as_str()).collect();
    let attempts: Vec<i64> = us.iter().map(|u| i64::from(u.attempts)).collect();
    let errors: Vec<Option<&str>> = us.iter().map(|u| u.last_error.as_deref()).collect();
    let next: Vec<i64> = us.iter().map(|u| ms(u.next_attempt_at)).collect();
    tx.execute(&st, &[&halls, &ids, &statuses, &attempts, &errors, &next])?;
    Ok(())
}

const OUTBOX_COLUMNS: &str =
    "id, hall, kind, phone, ticket, body, status, attempts, last_error, created_at, next_attempt_at, \
     appointment";

/// An outbox row; an unknown status is corruption, named.
fn outbox_row(r: &postgres::Row) -> Result<OutboxRecord, StoreError> {
    let id: String = r.get(0);
    let status: String = r.get(6);
    let parsed = OutboxStatus::parse(&status).ok_or_else(|| {
        StoreError::corrupt(format!(
            "the store is corrupt: outbox row {id}: status '{status}' is not pending, delivered, dead or dropped"
        ))
    })?;
    Ok(OutboxRecord {
        id,
        hall: r.get(1),
        kind: r.get(2),
        phone: r.get(3),
        ticket: r.get::<_, Option<i64>>(4).map(|t| t as u64),
        body: Bytes::from(r.get::<_, Vec<u8>>(5)),
        status: parsed,
        attempts: r.get::<_, i64>(7) as u32,
        last_error: r.get(8),
        created_at: at(r.get(9)),
        next_attempt_at: at(r.get(10)),
        appointment: r.get::<_, Option<i64>>(11).map(|a| a as u64),
    })
}

fn event_row(r: &postgres::Row) -> StoredEvent {
    StoredEvent {
        floor: r.get::<_, i64>(0) as i32,
        floor_seq: r.get::<_, i64>(1) as u64,
        hall_seq: r.get::<_, i64>(2) as u64,
        at: at(r.get(3)),
        floor_msg: Bytes::from(r.get::<_, String>(4)),
        hall_msg: Bytes::from(r.get::<_, String>(5)),
    }
}

const EVENT_COLUMNS: &str = "floor, floor_seq, hall_seq, at, floor_msg, hall_msg";

fn corrupt_case(hall: &str, id: i64, value: &str) -> StoreError {
    StoreError::corrupt(format!(
        "the store is corrupt: case {id} of hall {hall}: status '{value}' is not open, contacted, \
         rectified or closed; correct the row"
    ))
}

/// A case's steps, in order.
fn case_steps(
    c: &mut impl GenericClient,
    hall: &str,
    id: i64,
) -> Result<Vec<CaseStep>, StoreError> {
    let mut history = Vec::new();
    for r in c.query(
        "SELECT status, note, at FROM case_steps WHERE hall=$1 AND case_id=$2 ORDER BY n",
        &[&hall, &id],
    )? {
        let s: String = r.get(0);
        history.push(CaseStep {
            status: CaseStatus::parse(&s).ok_or_else(|| corrupt_case(hall, id, &s))?,
            note: r.get(1),
            at: at(r.get(2)),
        });
    }
    Ok(history)
}

/// Which of a hall's rows a load reads.
#[derive(Clone, Copy)]
enum Scope {
    /// Everything the node keeps in memory, as of this instant.
    All(DateTime<Utc>),
    /// Only the rows other nodes wrote after this version of the hall
    /// (`Hall::absorb` takes them in).
    Since(u64),
}

/// A hall's state as the store has it (see [`Scope`]).
fn load_state(
    c: &mut impl GenericClient,
    spec: &HallSpec,
    scope: Scope,
) -> Result<Loaded, StoreError> {
    let hall = spec.id.as_str();
    let mut loaded = Loaded::default();
    let st: &mut Restored = &mut loaded.state;
    // Each query's second parameter and the condition that uses it.
    let since = |all: &'static str, v: i64| match scope {
        Scope::All(_) => (all, v),
        Scope::Since(version) => ("version > $2", version as i64),
    };
    let now = match scope {
        Scope::All(now) => now,
        Scope::Since(_) => DateTime::<Utc>::UNIX_EPOCH,
    };

    let (cond, p) = since(
        "(status IN ('waiting','called','serving') OR created_at >= $2)",
        ms(now - spec.ratings.finished_kept()),
    );
    let rows = c.query(
        &format!(
            "SELECT id, token, number, day, service, priority, channel, status, \"window\", recall,
                    line_pos, created_at, called_at, started_at, finished_at, call_floor,
                    call_seq, call_at, notify_phone, slot_start, reminded,
                    issued_service, first_called_at, rating, rating_comment, rated_at,
                    rating_source
             FROM tickets WHERE hall=$1 AND {cond} ORDER BY id"
        ),
        &[&hall, &p],
    )?;
    for r in &rows {
        let call: (Option<i64>, Option<i64>, Option<i64>) = (r.get(15), r.get(16), r.get(17));
        let raw = RawTicket {
            id: r.get(0),
            token: r.get(1),
            number: r.get(2),
            day: r.get(3),
            service: r.get(4),
            priority: r.get(5),
            channel: r.get(6),
            status: r.get(7),
            window: r.get(8),
            recall: r.get::<_, i64>(9) as u32,
            line_pos: r.get(10),
            created_at: r.get(11),
            called_at: r.get(12),
            started_at: r.get(13),
            finished_at: r.get(14),
            last_call: match call {
                (Some(floor), Some(seq), Some(t)) => Some(CallMark {
                    floor: floor as i32,
                    seq: seq as u64,
                    at: at(t),
                }),
                _ => None,
            },
            notify_phone: r.get(18),
            slot_start: r.get(19),
            reminded: r.get::<_, Option<i64>>(20).map(|v| v != 0),
            issued_service: r.get(21),
            first_called_at: r.get(22),
            rating: match (r.get::<_, Option<i64>>(23), r.get::<_, Option<i64>>(25)) {
                (Some(level), Some(t)) => {
                    Some((level.clamp(0, 255) as u8, r.get(24), t, r.get(26)))
                }
                _ => None,
            },
        };
        // A ticket of a service no longer configured stays in the store;
        // the single node ends it at load, and so does whichever node
        // commits next for the hall (a cluster shares one config).
        if let Some(t) = raw.into_ticket_of(spec, hall)? {
            st.tickets.push(t);
        }
    }
    if let Scope::All(_) = scope {
        let r = c.query_one(
            "SELECT COALESCE(MAX(id),0), COALESCE(MAX(line_pos),0) FROM tickets WHERE hall=$1",
            &[&hall],
        )?;
        st.max_ticket_id = r.get::<_, i64>(0) as u64;
        st.max_line_pos = r.get::<_, i64>(1) as u64;

        let recent = ms(now - Duration::days(3));
        for r in c.query(
            "SELECT day, number FROM tickets WHERE hall=$1 AND created_at >= $2",
            &[&hall, &recent],
        )? {
            if let Some(day) = parse_day(r.get(0)) {
                st.issued.push((day, r.get(1)));
            }
        }
    }

    let (cond, p) = since(
        "(status='booked' OR start >= $2)",
        ms(now - Duration::days(APPOINTMENTS_LOADED_DAYS)),
    );
    for r in c.query(
        &format!(
            "SELECT id, code, token, service, start, \"end\", status, phone, ticket, reminded,
                    created_at, updated_at, holder_name, id_hash, id_masked
             FROM appointments WHERE hall=$1 AND {cond} ORDER BY id"
        ),
        &[&hall, &p],
    )? {
        let id = r.get::<_, i64>(0) as u64;
        let status: String = r.get(6);
        let status = BookingStatus::parse(&status).ok_or_else(|| {
            StoreError::corrupt(format!(
                "the store is corrupt: appointments row (hall {hall}, id {id}): status '{status}' \
                 is not booked, checked_in, cancelled or missed; correct the row"
            ))
        })?;
        let Some(service) = spec.service_index(r.get(3)) else {
            continue;
        };
        st.appointments.push(Appointment {
            id,
            code: r.get(1),
            token: r.get(2),
            service,
            start: at(r.get(4)),
            end: at(r.get(5)),
            status,
            phone: r.get(7),
            holder: super::holder_of(r.get(12), r.get(13), r.get(14)),
            ticket: r.get::<_, Option<i64>>(8).map(|t| t as u64),
            reminded: r.get::<_, i64>(9) != 0,
            created_at: at(r.get(10)),
            updated_at: at(r.get(11)),
        });
    }
    st.max_appointment_id = c
        .query_one(
            "SELECT COALESCE(MAX(id),0) FROM appointments WHERE hall=$1",
            &[&hall],
        )?
        .get::<_, i64>(0) as u64;

    let (cond, p) = since(
        "(status != 'closed' OR updated_at >= $2)",
        ms(now - Duration::days(CASES_KEPT_DAYS)),
    );
    let cases = c.query(
        &format!(
            "SELECT id, ticket, number, service, \"window\", level, comment, opened_at, due_at
             FROM cases WHERE hall=$1 AND {cond} ORDER BY id"
        ),
        &[&hall, &p],
    )?;
    for r in &cases {
        let id: i64 = r.get(0);
        let Some(service) = spec.service_index(r.get(3)) else {
            continue;
        };
        let window: Option<String> = r.get(4);
        st.cases.push(Case {
            id: id as u64,
            ticket: r.get::<_, i64>(1) as u64,
            number: r.get(2),
            service,
            window: window.as_deref().and_then(|w| spec.window_index(w)),
            level: r.get::<_, i64>(5).clamp(0, 255) as u8,
            comment: r.get(6),
            opened_at: at(r.get(7)),
            due_at: at(r.get(8)),
            history: case_steps(c, hall, id)?,
        });
    }
    st.max_case_id = c
        .query_one(
            "SELECT COALESCE(MAX(id),0) FROM cases WHERE hall=$1",
            &[&hall],
        )?
        .get::<_, i64>(0) as u64;

    let (cond, p) = since("kept_until > $2", ms(now));
    for r in c.query(
        &format!("SELECT key, data FROM marks WHERE hall=$1 AND {cond}"),
        &[&hall, &p],
    )? {
        if let Some(m) = super::marks::decode(r.get(1)) {
            st.marks.push((r.get(0), m));
        }
    }

    let (cond, p) = since("$2::BIGINT = 0", 0);
    for r in c.query(
        &format!("SELECT id, paused, current FROM windows WHERE hall=$1 AND {cond}"),
        &[&hall, &p],
    )? {
        if let Some(w) = spec.window_index(r.get(0)) {
            st.windows.push((
                w,
                WindowState {
                    paused: r.get::<_, i64>(1) != 0,
                    current: r.get::<_, Option<i64>>(2).map(|c| c as u64),
                },
            ));
        }
    }

    let oldest_day = day_str((now - Duration::days(2)).date_naive());
    let counters = match scope {
        Scope::All(_) => c.query(
            "SELECT service, day, last FROM counters WHERE hall=$1 AND day >= $2",
            &[&hall, &oldest_day],
        )?,
        Scope::Since(v) => c.query(
            "SELECT service, day, last FROM counters WHERE hall=$1 AND version > $2",
            &[&hall, &(v as i64)],
        )?,
    };
    for r in counters {
        if let (Some(service), Some(day)) = (spec.service_index(r.get(0)), parse_day(r.get(1))) {
            st.counters.push(Counter {
                service,
                day,
                last: r.get::<_, i64>(2) as u32,
            });
        }
    }

    for r in c.query("SELECT scope, seq FROM sequences WHERE hall=$1", &[&hall])? {
        let scope: String = r.get(0);
        let seq = r.get::<_, i64>(1) as u64;
        if scope == "hall" {
            st.hall_seq = seq;
        } else if scope == VERSION_SCOPE {
            loaded.version = seq;
        } else if let Some(f) = scope.strip_prefix("floor:").and_then(|f| f.parse().ok()) {
            st.floor_seqs.push((f, seq));
        }
    }

    let (cond, p) = since("$2::BIGINT = 0", 0);
    for r in c.query(
        &format!("SELECT service, avg_ms FROM clocks WHERE hall=$1 AND {cond}"),
        &[&hall, &p],
    )? {
        if let Some(s) = spec.service_index(r.get(0)) {
            st.clocks.push((
                s,
                ServiceClock {
                    avg_ms: r.get::<_, i64>(1).max(1) as u64,
                },
            ));
        }
    }

    let (cond, p) = since("n <= $2", RECENT_KEPT);
    for r in c.query(
        &format!(
            "SELECT floor, seq, number, \"window\", at FROM (
               SELECT *, ROW_NUMBER() OVER (PARTITION BY floor ORDER BY seq DESC) AS n
               FROM recent_calls WHERE hall=$1) r WHERE {cond} ORDER BY seq"
        ),
        &[&hall, &p],
    )? {
        if let Some(window) = spec.window_index(r.get(3)) {
            st.recent.push(RecentCall {
                floor: r.get::<_, i64>(0) as i32,
                seq: r.get::<_, i64>(1) as u64,
                number: r.get(2),
                window,
                at: at(r.get(4)),
            });
        }
    }

    let (cond, p) = since(
        "created_at >= $2",
        ms(now - Duration::hours(IDEMPOTENCY_HOURS)),
    );
    for r in c.query(
        &format!(
            "SELECT caller, key, created_at, status, body, request FROM idempotency
             WHERE hall=$1 AND {cond}"
        ),
        &[&hall, &p],
    )? {
        let request: Option<Vec<u8>> = r.get(5);
        loaded.idempotency.push(IdempotencyRecord {
            caller: r.get(0),
            key: r.get(1),
            request: request.and_then(|v| <[u8; 32]>::try_from(v.as_slice()).ok()),
            created_at: at(r.get(2)),
            status: r.get::<_, i64>(3) as u16,
            body: Bytes::from(r.get::<_, Vec<u8>>(4)),
        });
    }
    if let Scope::Since(_) = scope {
        // The channels' events reach the node over the bus.
        return Ok(loaded);
    }

    // The newest events of the hall channel and of every floor channel.
    let st = &loaded.state;
    let ring = EVENT_RING as i64;
    let mut events = BTreeMap::new();
    for r in c.query(
        &format!("SELECT {EVENT_COLUMNS} FROM events WHERE hall=$1 AND hall_seq > $2"),
        &[&hall, &(st.hall_seq as i64 - ring)],
    )? {
        let e = event_row(&r);
        events.insert(e.hall_seq, e);
    }
    for &(floor, seq) in &st.floor_seqs {
        for r in c.query(
            &format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE hall=$1 AND floor=$2 AND floor_seq > $3"
            ),
            &[&hall, &i64::from(floor), &(seq as i64 - ring)],
        )? {
            let e = event_row(&r);
            events.insert(e.hall_seq, e);
        }
    }
    loaded.events = events.into_values().collect();
    Ok(loaded)
}

impl Backend for Postgres {
    fn load(&mut self, spec: &HallSpec, now: DateTime<Utc>) -> Result<Loaded, StoreError> {
        // One snapshot for the whole hall: a commit of another node in
        // the middle would otherwise give tickets of one version and
        // windows of the next.
        self.with(|c, _| {
            let mut tx = c
                .build_transaction()
                .isolation_level(postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()?;
            let loaded = load_state(&mut tx, spec, Scope::All(now))?;
            tx.commit()?;
            Ok(loaded)
        })
    }

    fn load_since(&mut self, spec: &HallSpec, version: u64) -> Result<Option<Loaded>, StoreError> {
        self.with(|c, _| {
            let mut tx = c
                .build_transaction()
                .isolation_level(postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()?;
            let loaded = load_state(&mut tx, spec, Scope::Since(version))?;
            tx.commit()?;
            Ok(Some(loaded))
        })
    }

    fn commit(&mut self, batches: &[&Batch]) -> Result<(), StoreError> {
        self.commit_with_deliveries(batches, &[])
    }

    fn commit_with_deliveries(
        &mut self,
        batches: &[&Batch],
        deliveries: &[OutboxUpdate],
    ) -> Result<(), StoreError> {
        self.with(|c, cache| {
            let mut tx = c.transaction()?;
            // The halls' version rows, locked in name order (two nodes
            // locking two halls never wait on each other in a circle).
            let mut versions: BTreeMap<&str, u64> = BTreeMap::new();
            for b in batches.iter().filter(|b| !b.is_empty()) {
                versions.insert(b.hall.id.as_str(), 0);
            }
            let lock = prepared(
                &mut tx,
                cache,
                "SELECT seq FROM sequences WHERE hall=$1 AND scope='version' FOR UPDATE",
            )?;
            for (hall, v) in versions.iter_mut() {
                *v = match tx.query_opt(&lock, &[hall])? {
                    Some(r) => r.get::<_, i64>(0) as u64,
                    None => {
                        // The hall's first commit: its row, then its lock.
                        let ensure = prepared(
                            &mut tx,
                            cache,
                            "INSERT INTO sequences(hall, scope, seq) VALUES($1, 'version', 0)
                             ON CONFLICT (hall, scope) DO NOTHING",
                        )?;
                        tx.execute(&ensure, &[hall])?;
                        tx.query_one(&lock, &[hall])?.get::<_, i64>(0) as u64
                    }
                };
            }
            // A hall whose batches this very group already wrote: a try
            // whose COMMIT's answer was lost (the connection broke) did
            // commit, and the hall is now at their last version with
            // their last commit id. Written once, never again, and never
            // mistaken for another node's conflict.
            let done = already_committed(&mut tx, cache, batches, &versions)?;
            let mut group = Group::new();
            let mut last_ids: BTreeMap<&str, i64> = BTreeMap::new();
            for b in batches.iter().filter(|b| !b.is_empty()) {
                if done.contains(b.hall.id.as_str()) {
                    continue;
                }
                let v = versions
                    .get_mut(b.hall.id.as_str())
                    .expect("every hall's version was read");
                if *v != b.version {
                    return Err(StoreError::conflict(format!(
                        "hall {} is at version {v} in PostgreSQL, but this node computed a command \
                         from version {}: another node changed the hall first; reloading",
                        b.hall.id, b.version
                    ))
                    .in_hall(&b.hall.id));
                }
                *v += 1;
                last_ids.insert(b.hall.id.as_str(), b.commit_id);
                group.add(b);
            }
            // The new versions ride with the sequences' rows, and so does
            // the id of each hall's last batch.
            for (hall, v) in versions.iter().filter(|(h, _)| !done.contains(*h)) {
                group.tables[SEQUENCES].push(vec![
                    text(*hall),
                    text(VERSION_SCOPE),
                    int(*v as i64),
                ]);
                group.tables[SEQUENCES].push(vec![
                    text(*hall),
                    text(COMMIT_SCOPE),
                    int(last_ids[hall]),
                ]);
            }
            group.write(&mut tx, cache)?;
            record_deliveries(&mut tx, cache, deliveries)?;
            if let Err(e) = tx.commit() {
                // The server's own refusal says it did not happen; no answer
                // at all (the connection broke) says nothing: it may have.
                let answered = e.code().is_some();
                let mut e = StoreError::from(e);
                if !answered {
                    e.kind = StoreErrorKind::Transient;
                    e.ambiguous = true;
                }
                return Err(e);
            }
            Ok(())
        })
    }

    fn outbox_due(
        &mut self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<OutboxRecord>, StoreError> {
        // Every node's worker reads the outbox: each message due is
        // claimed by one of them (its next try moved a lease ahead, rows
        // another node is claiming skipped), so it is sent once, and again
        // by any node if the claimer died before recording the try.
        self.with(|c, _| {
            let mut due: Vec<OutboxRecord> = c
                .query(
                    &format!(
                        "UPDATE outbox SET next_attempt_at = $3 WHERE id IN (
                           SELECT id FROM outbox WHERE status='pending' AND next_attempt_at <= $1
                           ORDER BY next_attempt_at LIMIT $2 FOR UPDATE SKIP LOCKED)
                         RETURNING {OUTBOX_COLUMNS}"
                    ),
                    &[&ms(now), &(limit as i64), &ms(now + OUTBOX_LEASE)],
                )?
                .iter()
                .map(outbox_row)
                .collect::<Result<_, _>>()?;
            due.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
            Ok(due)
        })
    }

    fn outbox_list(
        &mut self,
        hall: &str,
        status: Option<OutboxStatus>,
        limit: usize,
    ) -> Result<Vec<OutboxRecord>, StoreError> {
        self.with(|c, _| {
            c.query(
                &format!(
                    "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE hall=$1
                       AND ($2::TEXT IS NULL OR status=$2)
                     ORDER BY created_at DESC, id DESC LIMIT $3"
                ),
                &[&hall, &status.map(|s| s.as_str()), &(limit as i64)],
            )?
            .iter()
            .map(outbox_row)
            .collect()
        })
    }

    fn outbox_get(&mut self, hall: &str, id: &str) -> Result<Option<OutboxRecord>, StoreError> {
        self.with(|c, _| {
            c.query_opt(
                &format!("SELECT {OUTBOX_COLUMNS} FROM outbox WHERE hall=$1 AND id=$2"),
                &[&hall, &id],
            )?
            .as_ref()
            .map(outbox_row)
            .transpose()
        })
    }

    fn outbox_counts(&mut self) -> Result<Vec<(String, String, u64)>, StoreError> {
        self.with(|c, _| {
            Ok(c.query(
                "SELECT hall, status, COUNT(*) FROM outbox GROUP BY hall, status",
                &[],
            )?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get::<_, i64>(2) as u64))
            .collect())
        })
    }

    fn update_outbox(&mut self, updates: &[OutboxUpdate]) -> Result<(), StoreError> {
        self.with(|c, cache| {
            let mut tx = c.transaction()?;
            record_deliveries(&mut tx, cache, updates)?;
            tx.commit()?;
            Ok(())
        })
    }

    fn appointments_between(
        &mut self,
        hall: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<BookingRow>, StoreError> {
        self.with(|c, _| {
            Ok(c.query(
                "SELECT a.code, a.service, a.start, a.\"end\", a.status, t.number, a.phone,
                        a.holder_name, a.id_masked
                 FROM appointments a LEFT JOIN tickets t ON t.hall = a.hall AND t.id = a.ticket
                 WHERE a.hall=$1 AND a.start >= $2 AND a.start < $3 ORDER BY a.start, a.id",
                &[&hall, &ms(from), &ms(to)],
            )?
            .iter()
            .map(|r| BookingRow {
                code: r.get(0),
                service: r.get(1),
                start: at(r.get(2)),
                end: at(r.get(3)),
                status: r.get(4),
                number: r.get(5),
                phone: r.get(6),
                holder: r.get::<_, Option<String>>(7).zip(r.get(8)),
            })
            .collect())
        })
    }

    fn cases(
        &mut self,
        hall: &str,
        status: Option<CaseStatus>,
    ) -> Result<Vec<CaseRow>, StoreError> {
        let ids: Vec<i64> = self.with(|c, _| {
            Ok(c.query(
                "SELECT id FROM cases WHERE hall=$1 AND ($2::TEXT IS NULL OR status=$2)
                 ORDER BY opened_at DESC, id DESC",
                &[&hall, &status.map(|s| s.as_str())],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect())
        })?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(c) = self.case(hall, id as u64)? {
                out.push(c);
            }
        }
        Ok(out)
    }

    fn case(&mut self, hall: &str, id: u64) -> Result<Option<CaseRow>, StoreError> {
        self.with(|c, _| {
            let Some(r) = c.query_opt(
                "SELECT number, service, \"window\", level, comment, status, opened_at, due_at
                 FROM cases WHERE hall=$1 AND id=$2",
                &[&hall, &(id as i64)],
            )?
            else {
                return Ok(None);
            };
            let status: String = r.get(5);
            let status =
                CaseStatus::parse(&status).ok_or_else(|| corrupt_case(hall, id as i64, &status))?;
            Ok(Some(CaseRow {
                id,
                number: r.get(0),
                service: r.get(1),
                window: r.get(2),
                level: r.get::<_, i64>(3).clamp(0, 255) as u8,
                comment: r.get(4),
                status,
                opened_at: at(r.get(6)),
                due_at: at(r.get(7)),
                history: case_steps(c, hall, id as i64)?,
            }))
        })
    }

    fn rating_counts(
        &mut self,
        hall: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<RatingCount>, StoreError> {
        self.with(|c, _| {
            Ok(c.query(
                "SELECT \"window\", service, rating, COUNT(*) FROM tickets
                 WHERE hall=$1 AND rated_at >= $2 AND rated_at < $3 AND rating IS NOT NULL
                 GROUP BY \"window\", service, rating",
                &[&hall, &ms(from), &ms(to)],
            )?
            .iter()
            .map(|r| RatingCount {
                window: r.get(0),
                service: r.get(1),
                level: r.get::<_, i64>(2).clamp(0, 255) as u8,
                count: r.get::<_, i64>(3) as u64,
            })
            .collect())
        })
    }

    fn visit_tickets(
        &mut self,
        hall: &str,
        from: &str,
        to: &str,
        full: bool,
        visit: &mut dyn FnMut(&TicketFact<'_>),
    ) -> Result<(), StoreError> {
        let sql = if full {
            "SELECT day, id, number, service, COALESCE(issued_service, service), channel, priority,
                    status, \"window\", created_at, COALESCE(first_called_at, called_at), called_at,
                    started_at, finished_at, rating
             FROM tickets WHERE hall=$1 AND day >= $2 AND day <= $3 ORDER BY day, id"
        } else {
            "SELECT day, id, '', service, COALESCE(issued_service, service), '', '',
                    status, \"window\", created_at, COALESCE(first_called_at, called_at), called_at,
                    started_at, finished_at, rating
             FROM tickets WHERE hall=$1 AND day >= $2 AND day <= $3 ORDER BY day, id"
        };
        self.with(|c, _| {
            // Streamed: a year is 730,000 rows, never held at once.
            let params: [&(dyn ToSql + Sync); 3] = [&hall, &from, &to];
            let mut rows = c.query_raw(sql, params)?;
            while let Some(r) = postgres::fallible_iterator::FallibleIterator::next(&mut rows)? {
                visit(&TicketFact {
                    day: r.get(0),
                    id: r.get(1),
                    number: r.get(2),
                    service: r.get(3),
                    issued_service: r.get(4),
                    channel: r.get(5),
                    priority: r.get(6),
                    status: r.get(7),
                    window: r.get(8),
                    created_at: r.get(9),
                    first_called_at: r.get(10),
                    called_at: r.get(11),
                    started_at: r.get(12),
                    finished_at: r.get(13),
                    rating: r.get::<_, Option<i64>>(14).map(|v| v.clamp(0, 255) as u8),
                });
            }
            Ok(())
        })
    }

    fn probe(&mut self) -> Result<(), StoreError> {
        self.with(|c, _| {
            c.execute(
                "INSERT INTO meta(key, value) VALUES('probe', $1)
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                &[&Utc::now().timestamp_millis().to_string()],
            )?;
            Ok(())
        })
    }

    fn maintain(&mut self, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.with(|c, _| {
            let mut tx = c.transaction()?;
            let since = ms(now - Duration::hours(IDEMPOTENCY_HOURS));
            tx.execute("DELETE FROM idempotency WHERE created_at < $1", &[&since])?;
            tx.execute("DELETE FROM marks WHERE kept_until < $1", &[&ms(now)])?;
            tx.execute(
                "DELETE FROM outbox WHERE status != 'pending' AND created_at < $1",
                &[&ms(now - Duration::days(OUTBOX_KEPT_DAYS))],
            )?;
            tx.execute(
                "DELETE FROM recent_calls r USING (
                   SELECT hall, floor, seq,
                          ROW_NUMBER() OVER (PARTITION BY hall, floor ORDER BY seq DESC) AS n
                   FROM recent_calls) o
                 WHERE r.hall = o.hall AND r.floor = o.floor AND r.seq = o.seq AND o.n > $1",
                &[&RECENT_KEPT],
            )?;
            // Events older than any replay reaches, on both channels.
            let channels: Vec<(String, i64, i64, i64)> = tx
                .query(
                    "SELECT f.hall, CAST(substr(f.scope, 7) AS BIGINT), f.seq, h.seq
                     FROM sequences f JOIN sequences h ON h.hall = f.hall AND h.scope = 'hall'
                     WHERE f.scope LIKE 'floor:%'",
                    &[],
                )?
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
                .collect();
            for (hall, floor, floor_seq, hall_seq) in channels {
                tx.execute(
                    "DELETE FROM events WHERE (hall, hall_seq) IN (
                       SELECT hall, hall_seq FROM events
                       WHERE hall = $1 AND floor = $2 AND floor_seq <= $3 AND hall_seq <= $4
                       LIMIT $5)",
                    &[
                        &hall,
                        &floor,
                        &(floor_seq - EVENTS_KEPT),
                        &(hall_seq - EVENTS_KEPT),
                        &PRUNE_BATCH,
                    ],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    fn events_after(
        &mut self,
        hall: &str,
        floor: Option<i32>,
        after: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let (limit, after) = (limit as i64, after as i64);
        self.with(|c, _| {
            let rows = match floor {
                Some(f) => c.query(
                    &format!(
                        "SELECT {EVENT_COLUMNS} FROM events WHERE hall=$1 AND floor=$2 AND floor_seq > $3
                         ORDER BY floor_seq LIMIT $4"
                    ),
                    &[&hall, &i64::from(f), &after, &limit],
                )?,
                None => c.query(
                    &format!(
                        "SELECT {EVENT_COLUMNS} FROM events WHERE hall=$1 AND hall_seq > $2
                         ORDER BY hall_seq LIMIT $3"
                    ),
                    &[&hall, &after, &limit],
                )?,
            };
            Ok(rows.iter().map(event_row).collect())
        })
    }
}
