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
    /// drops it, so the next call connects afresh.
    fn with<T>(
        &mut self,
        f: impl FnOnce(&mut Client, &mut HashMap<String, Statement>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.client()?;
        let client = self.client.as_mut().expect("connected above");
        let r = f(client, &mut self.statements);
        if r.is_err() && self.client.as_ref().is_some_and(|c| c.is_closed()) {
            self.client = None;
        }
        r
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

/// `INSERT … ON CONFLICT (key) DO UPDATE` of every other column: the
/// SQLite store's `INSERT OR REPLACE`.
fn upsert(table: &str, columns: &[&str], key: &[&str]) -> String {
    let quote = |c: &&str| {
        if matches!(*c, "window" | "end") {
            format!("\"{c}\"")
        } else {
            c.to_string()
        }
    };
    let cols: Vec<String> = columns.iter().map(quote).collect();
    let params: Vec<String> = (1..=columns.len()).map(|i| format!("${i}")).collect();
    let keys: Vec<String> = key.iter().map(quote).collect();
    let sets: Vec<String> = columns
        .iter()
        .filter(|c| !key.contains(c))
        .map(|c| {
            let q = quote(c);
            format!("{q} = EXCLUDED.{q}")
        })
        .collect();
    let action = if sets.is_empty() {
        "DO NOTHING".to_string()
    } else {
        format!("DO UPDATE SET {}", sets.join(", "))
    };
    format!(
        "INSERT INTO {table}({}) VALUES({}) ON CONFLICT ({}) {action}",
        cols.join(", "),
        params.join(", "),
        keys.join(", ")
    )
}

const TICKET_COLUMNS: &[&str] = &[
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
    "version",
];

/// Writes one batch's after-images (the caller checked its version).
fn write_batch(
    tx: &mut Transaction<'_>,
    cache: &mut HashMap<String, Statement>,
    b: &Batch,
) -> Result<(), StoreError> {
    let hall = &b.hall.id;
    let spec = &b.hall;
    // Every row says which of the hall's versions wrote it.
    let version = &(b.version as i64 + 1);
    if !b.tickets.is_empty() {
        let st = prepared(
            tx,
            cache,
            &upsert("tickets", TICKET_COLUMNS, &["hall", "id"]),
        )?;
        for t in &b.tickets {
            let values: [&(dyn ToSql + Sync); 28] = [
                hall,
                &(t.id as i64),
                &t.token,
                &t.number,
                &day_str(t.day),
                &spec.services[t.service].id,
                &t.priority.as_str(),
                &t.channel.as_str(),
                &t.status.as_str(),
                &t.window.map(|w| spec.windows[w].id.as_str()),
                &i64::from(t.recall),
                &(t.line_pos as i64),
                &ms(t.created_at),
                &t.called_at.map(ms),
                &t.started_at.map(ms),
                &t.finished_at.map(ms),
                &t.last_call.map(|c| i64::from(c.floor)),
                &t.last_call.map(|c| c.seq as i64),
                &t.last_call.map(|c| ms(c.at)),
                &t.notify_phone,
                &t.slot.map(ms),
                &i64::from(t.reminded),
                &spec.services[t.issued_service].id,
                &t.first_called_at.map(ms),
                &t.rating.as_ref().map(|r| i64::from(r.level)),
                &t.rating.as_ref().and_then(|r| r.comment.as_deref()),
                &t.rating.as_ref().map(|r| ms(r.at)),
                version,
            ];
            tx.execute(&st, &values)?;
        }
    }
    if !b.appointments.is_empty() {
        let st = prepared(
            tx,
            cache,
            &upsert(
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
                    "version",
                ],
                &["hall", "id"],
            ),
        )?;
        for a in &b.appointments {
            tx.execute(
                &st,
                &[
                    hall,
                    &(a.id as i64),
                    &a.code,
                    &a.token,
                    &spec.services[a.service].id,
                    &ms(a.start),
                    &ms(a.end),
                    &a.status.as_str(),
                    &a.phone,
                    &a.ticket.map(|t| t as i64),
                    &i64::from(a.reminded),
                    &ms(a.created_at),
                    &ms(a.updated_at),
                    version,
                ],
            )?;
        }
    }
    for c in &b.cases {
        let st = prepared(
            tx,
            cache,
            &upsert(
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
                &["hall", "id"],
            ),
        )?;
        tx.execute(
            &st,
            &[
                hall,
                &(c.id as i64),
                &(c.ticket as i64),
                &c.number,
                &spec.services[c.service].id,
                &c.window.map(|w| spec.windows[w].id.as_str()),
                &i64::from(c.level),
                &c.comment,
                &c.status().as_str(),
                &ms(c.opened_at),
                &ms(c.due_at),
                &ms(c.updated_at()),
                version,
            ],
        )?;
        // Steps are only ever appended: those already written stay.
        let st = prepared(
            tx,
            cache,
            &upsert(
                "case_steps",
                &["hall", "case_id", "n", "status", "note", "at"],
                &["hall", "case_id", "n", "status", "note", "at"],
            )
            .replace(
                "ON CONFLICT (hall, case_id, n, status, note, at)",
                "ON CONFLICT (hall, case_id, n)",
            ),
        )?;
        for (n, step) in c.history.iter().enumerate() {
            tx.execute(
                &st,
                &[
                    hall,
                    &(c.id as i64),
                    &(n as i64),
                    &step.status.as_str(),
                    &step.note,
                    &ms(step.at),
                ],
            )?;
        }
    }
    for (w, state) in &b.windows {
        let st = prepared(
            tx,
            cache,
            &upsert(
                "windows",
                &["hall", "id", "paused", "current", "version"],
                &["hall", "id"],
            ),
        )?;
        tx.execute(
            &st,
            &[
                hall,
                &spec.windows[*w].id,
                &i64::from(state.paused),
                &state.current.map(|c| c as i64),
                version,
            ],
        )?;
    }
    if let Some(c) = &b.counter {
        let st = prepared(
            tx,
            cache,
            &upsert(
                "counters",
                &["hall", "service", "day", "last", "version"],
                &["hall", "service", "day"],
            ),
        )?;
        tx.execute(
            &st,
            &[
                hall,
                &spec.services[c.service].id,
                &day_str(c.day),
                &i64::from(c.last),
                version,
            ],
        )?;
    }
    for (s, clock) in &b.clocks {
        let st = prepared(
            tx,
            cache,
            &upsert(
                "clocks",
                &["hall", "service", "avg_ms", "version"],
                &["hall", "service"],
            ),
        )?;
        tx.execute(
            &st,
            &[hall, &spec.services[*s].id, &(clock.avg_ms as i64), version],
        )?;
    }
    for r in &b.recent {
        let st = prepared(
            tx,
            cache,
            &upsert(
                "recent_calls",
                &["hall", "floor", "seq", "number", "window", "at", "version"],
                &["hall", "floor", "seq"],
            ),
        )?;
        tx.execute(
            &st,
            &[
                hall,
                &i64::from(r.floor),
                &(r.seq as i64),
                &r.number,
                &spec.windows[r.window].id,
                &ms(r.at),
                version,
            ],
        )?;
    }
    if !b.events.is_empty() {
        let ev = prepared(
            tx,
            cache,
            "INSERT INTO events(hall, hall_seq, floor, floor_seq, at, floor_msg, hall_msg)
             VALUES($1,$2,$3,$4,$5,$6,$7)",
        )?;
        let seq = prepared(
            tx,
            cache,
            &upsert("sequences", &["hall", "scope", "seq"], &["hall", "scope"]),
        )?;
        for e in &b.events {
            tx.execute(
                &ev,
                &[
                    hall,
                    &(e.hall_seq as i64),
                    &i64::from(e.floor),
                    &(e.floor_seq as i64),
                    &ms(e.at),
                    &std::str::from_utf8(&e.floor_msg).unwrap_or_default(),
                    &std::str::from_utf8(&e.hall_msg).unwrap_or_default(),
                ],
            )?;
            tx.execute(&seq, &[hall, &floor_scope(e.floor), &(e.floor_seq as i64)])?;
        }
        let last = b.events.last().map(|e| e.hall_seq as i64);
        tx.execute(&seq, &[hall, &"hall", &last])?;
    }
    for m in &b.outbox {
        let st = prepared(
            tx,
            cache,
            "INSERT INTO outbox(id, hall, kind, phone, ticket, body, status, attempts, last_error,
               created_at, next_attempt_at, appointment)
             VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)",
        )?;
        tx.execute(
            &st,
            &[
                &m.id,
                &m.hall,
                &m.kind,
                &m.phone,
                &m.ticket.map(|t| t as i64),
                &&m.body[..],
                &m.status.as_str(),
                &i64::from(m.attempts),
                &m.last_error,
                &ms(m.created_at),
                &ms(m.next_attempt_at),
                &m.appointment.map(|a| a as i64),
            ],
        )?;
    }
    if let Some(i) = &b.idempotency {
        let st = prepared(
            tx,
            cache,
            &upsert(
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
                &["hall", "caller", "key"],
            ),
        )?;
        tx.execute(
            &st,
            &[
                hall,
                &i.caller,
                &i.key,
                &ms(i.created_at),
                &i64::from(i.status),
                &&i.body[..],
                &i.request.as_ref().map(|r| &r[..]),
                version,
            ],
        )?;
    }
    Ok(())
}

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
        "UPDATE outbox SET status=$3, attempts=$4, last_error=$5, next_attempt_at=$6
         WHERE hall=$1 AND id=$2",
    )?;
    for u in updates {
        tx.execute(
            &st,
            &[
                &u.hall,
                &u.id,
                &u.status.as_str(),
                &i64::from(u.attempts),
                &u.last_error,
                &ms(u.next_attempt_at),
            ],
        )?;
    }
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
                    issued_service, first_called_at, rating, rating_comment, rated_at
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
                (Some(level), Some(t)) => Some((level.clamp(0, 255) as u8, r.get(24), t)),
                _ => None,
            },
        };
        // A ticket of a service no longer configured stays in the store;
        // the single node ends it at load, and so does whichever node
        // commits next for the hall (a cluster shares one config).
        let Some(s) = spec.service_index(&raw.service) else {
            continue;
        };
        let window = raw.window.as_deref().and_then(|w| spec.window_index(w));
        let issued = raw
            .issued_service
            .as_deref()
            .and_then(|i| spec.service_index(i))
            .unwrap_or(s);
        let mut t = raw.into_ticket(hall)?;
        t.service = s;
        t.issued_service = issued;
        t.window = window;
        st.tickets.push(t);
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
                    created_at, updated_at
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
            let ensure = prepared(
                &mut tx,
                cache,
                "INSERT INTO sequences(hall, scope, seq) VALUES($1, 'version', 0)
                 ON CONFLICT (hall, scope) DO NOTHING",
            )?;
            let lock = prepared(
                &mut tx,
                cache,
                "SELECT seq FROM sequences WHERE hall=$1 AND scope='version' FOR UPDATE",
            )?;
            for (hall, v) in versions.iter_mut() {
                tx.execute(&ensure, &[hall])?;
                *v = tx.query_one(&lock, &[hall])?.get::<_, i64>(0) as u64;
            }
            for b in batches.iter().filter(|b| !b.is_empty()) {
                let v = versions
                    .get_mut(b.hall.id.as_str())
                    .expect("every hall's version was read");
                if *v != b.version {
                    return Err(StoreError::conflict(format!(
                        "hall {} is at version {v} in PostgreSQL, but this node computed a command \
                         from version {}: another node changed the hall first; reloading",
                        b.hall.id, b.version
                    )));
                }
                *v += 1;
                write_batch(&mut tx, cache, b)?;
            }
            let set = prepared(
                &mut tx,
                cache,
                "UPDATE sequences SET seq=$2 WHERE hall=$1 AND scope='version'",
            )?;
            for (hall, v) in &versions {
                tx.execute(&set, &[hall, &(*v as i64)])?;
            }
            record_deliveries(&mut tx, cache, deliveries)?;
            tx.commit()?;
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
                "SELECT a.code, a.service, a.start, a.\"end\", a.status, t.number, a.phone
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

    fn maintain(&mut self, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.with(|c, _| {
            let mut tx = c.transaction()?;
            let since = ms(now - Duration::hours(IDEMPOTENCY_HOURS));
            tx.execute("DELETE FROM idempotency WHERE created_at < $1", &[&since])?;
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
