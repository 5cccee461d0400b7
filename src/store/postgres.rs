//! PostgreSQL for a cluster (contract §14): its schema, `hallcast migrate`
//! and `hallcast import`.
//!
//! The tables are the SQLite store's, column for column, so that a single
//! node's data dir can be copied over as it is (`import`) and the
//! cluster's backend reads the same rows the single node wrote. Schema
//! changes take an advisory lock inside their transaction: nodes that
//! start at once migrate one after another, and the second finds nothing
//! left to do.

use std::path::Path;

use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::{ToSql, Type};
use postgres::{Client, NoTls};
use rusqlite::OpenFlags;

/// Bumped when the PostgreSQL schema changes; a node refuses a newer one.
/// 2: a `version` column on every table a command writes a hall's state
/// to: the hall's version that wrote the row, so a node reads only what
/// other nodes changed since it last looked (`Backend::load_since`).
/// 3: `marks` (citizens' phones, addresses, phone tokens: A2–A4), a
/// booking's holder, `tickets.rating_source` (A5).
pub const SCHEMA_VERSION: i64 = 3;

/// The advisory lock every schema change holds ("hallcast" in ASCII).
const MIGRATE_LOCK: i64 = 0x6861_6c6c_6361_7374;

/// The hallcast tables, in the order an import fills them.
pub const TABLES: &[&str] = &[
    "tickets",
    "windows",
    "counters",
    "sequences",
    "clocks",
    "recent_calls",
    "events",
    "idempotency",
    "outbox",
    "appointments",
    "cases",
    "case_steps",
    "marks",
];

/// The SQLite schema's tables in PostgreSQL's types (INTEGER → BIGINT,
/// BLOB → BYTEA); `window` and `end` are quoted, being keywords here.
const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tickets(
  hall TEXT NOT NULL, id BIGINT NOT NULL, token TEXT NOT NULL,
  number TEXT NOT NULL, day TEXT NOT NULL, service TEXT NOT NULL,
  priority TEXT NOT NULL, channel TEXT NOT NULL, status TEXT NOT NULL,
  "window" TEXT, recall BIGINT NOT NULL, line_pos BIGINT NOT NULL,
  created_at BIGINT NOT NULL, called_at BIGINT, started_at BIGINT,
  finished_at BIGINT, call_floor BIGINT, call_seq BIGINT, call_at BIGINT,
  notify_phone TEXT, slot_start BIGINT, reminded BIGINT,
  issued_service TEXT, first_called_at BIGINT,
  rating BIGINT, rating_comment TEXT, rated_at BIGINT,
  PRIMARY KEY(hall, id));
CREATE UNIQUE INDEX IF NOT EXISTS tickets_token ON tickets(token);
CREATE INDEX IF NOT EXISTS tickets_status ON tickets(hall, status);
CREATE INDEX IF NOT EXISTS tickets_created ON tickets(hall, created_at);
CREATE INDEX IF NOT EXISTS tickets_day ON tickets(hall, day, id);
CREATE INDEX IF NOT EXISTS tickets_rated ON tickets(hall, rated_at) WHERE rated_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS windows(
  hall TEXT NOT NULL, id TEXT NOT NULL, paused BIGINT NOT NULL, current BIGINT,
  PRIMARY KEY(hall, id));
CREATE TABLE IF NOT EXISTS counters(
  hall TEXT NOT NULL, service TEXT NOT NULL, day TEXT NOT NULL, last BIGINT NOT NULL,
  PRIMARY KEY(hall, service, day));
CREATE TABLE IF NOT EXISTS sequences(
  hall TEXT NOT NULL, scope TEXT NOT NULL, seq BIGINT NOT NULL,
  PRIMARY KEY(hall, scope));
CREATE TABLE IF NOT EXISTS clocks(
  hall TEXT NOT NULL, service TEXT NOT NULL, avg_ms BIGINT NOT NULL,
  PRIMARY KEY(hall, service));
CREATE TABLE IF NOT EXISTS recent_calls(
  hall TEXT NOT NULL, floor BIGINT NOT NULL, seq BIGINT NOT NULL,
  number TEXT NOT NULL, "window" TEXT NOT NULL, at BIGINT NOT NULL,
  PRIMARY KEY(hall, floor, seq));
CREATE TABLE IF NOT EXISTS events(
  hall TEXT NOT NULL, hall_seq BIGINT NOT NULL, floor BIGINT NOT NULL,
  floor_seq BIGINT NOT NULL, at BIGINT NOT NULL,
  floor_msg TEXT NOT NULL, hall_msg TEXT NOT NULL,
  PRIMARY KEY(hall, hall_seq));
CREATE UNIQUE INDEX IF NOT EXISTS events_floor ON events(hall, floor, floor_seq);
CREATE TABLE IF NOT EXISTS idempotency(
  hall TEXT NOT NULL, caller TEXT NOT NULL, key TEXT NOT NULL,
  created_at BIGINT NOT NULL, status BIGINT NOT NULL, body BYTEA NOT NULL,
  request BYTEA,
  PRIMARY KEY(hall, caller, key));
CREATE INDEX IF NOT EXISTS idempotency_created ON idempotency(created_at);
CREATE TABLE IF NOT EXISTS outbox(
  id TEXT PRIMARY KEY, hall TEXT NOT NULL, kind TEXT NOT NULL, phone TEXT NOT NULL,
  ticket BIGINT, appointment BIGINT, body BYTEA NOT NULL, status TEXT NOT NULL,
  attempts BIGINT NOT NULL, last_error TEXT, created_at BIGINT NOT NULL,
  next_attempt_at BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox(next_attempt_at) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS outbox_hall ON outbox(hall, created_at);
CREATE INDEX IF NOT EXISTS outbox_status ON outbox(hall, status);
CREATE TABLE IF NOT EXISTS appointments(
  hall TEXT NOT NULL, id BIGINT NOT NULL, code TEXT NOT NULL, token TEXT NOT NULL,
  service TEXT NOT NULL, start BIGINT NOT NULL, "end" BIGINT NOT NULL,
  status TEXT NOT NULL, phone TEXT, ticket BIGINT, reminded BIGINT NOT NULL,
  created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL,
  PRIMARY KEY(hall, id));
CREATE UNIQUE INDEX IF NOT EXISTS appointments_token ON appointments(token);
CREATE INDEX IF NOT EXISTS appointments_start ON appointments(hall, start);
CREATE INDEX IF NOT EXISTS appointments_open ON appointments(hall, status);
CREATE TABLE IF NOT EXISTS cases(
  hall TEXT NOT NULL, id BIGINT NOT NULL, ticket BIGINT NOT NULL, number TEXT NOT NULL,
  service TEXT NOT NULL, "window" TEXT, level BIGINT NOT NULL, comment TEXT,
  status TEXT NOT NULL, opened_at BIGINT NOT NULL, due_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  PRIMARY KEY(hall, id));
CREATE INDEX IF NOT EXISTS cases_status ON cases(hall, status);
CREATE TABLE IF NOT EXISTS case_steps(
  hall TEXT NOT NULL, case_id BIGINT NOT NULL, n BIGINT NOT NULL,
  status TEXT NOT NULL, note TEXT, at BIGINT NOT NULL,
  PRIMARY KEY(hall, case_id, n));
ALTER TABLE tickets ADD COLUMN IF NOT EXISTS version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE appointments ADD COLUMN IF NOT EXISTS version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE cases ADD COLUMN IF NOT EXISTS version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE windows ADD COLUMN IF NOT EXISTS version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE counters ADD COLUMN IF NOT EXISTS version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE clocks ADD COLUMN IF NOT EXISTS version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE recent_calls ADD COLUMN IF NOT EXISTS version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE idempotency ADD COLUMN IF NOT EXISTS version BIGINT NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS tickets_version ON tickets(hall, version);
CREATE INDEX IF NOT EXISTS appointments_version ON appointments(hall, version);
CREATE INDEX IF NOT EXISTS cases_version ON cases(hall, version);
CREATE INDEX IF NOT EXISTS idempotency_version ON idempotency(hall, version);
ALTER TABLE tickets ADD COLUMN IF NOT EXISTS rating_source TEXT;
ALTER TABLE appointments ADD COLUMN IF NOT EXISTS holder_name TEXT;
ALTER TABLE appointments ADD COLUMN IF NOT EXISTS id_hash TEXT;
ALTER TABLE appointments ADD COLUMN IF NOT EXISTS id_masked TEXT;
CREATE TABLE IF NOT EXISTS marks(
  hall TEXT NOT NULL, key TEXT NOT NULL, data TEXT NOT NULL, kept_until BIGINT NOT NULL,
  version BIGINT NOT NULL DEFAULT 0,
  PRIMARY KEY(hall, key));
CREATE INDEX IF NOT EXISTS marks_kept ON marks(kept_until);
CREATE INDEX IF NOT EXISTS marks_version ON marks(hall, version);
"#;

/// Why a `migrate` or an `import` did not happen.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// It could not be done (exit 1): unreachable, refused, not ours.
    #[error("{0}")]
    Failed(String),
    /// An import into a store that already holds hallcast data (exit 2).
    #[error("{0}")]
    HasData(String),
}

fn failed(what: &str) -> impl Fn(postgres::Error) -> AdminError + '_ {
    move |e| AdminError::Failed(format!("{what}: {}", describe(&e)))
}

/// The server's own message where there is one (a refused login, a
/// missing database), else the client's.
fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => db.message().to_string(),
        None => e.to_string(),
    }
}

/// A connection to `url`, with the reason it failed named.
pub fn connect(url: &str) -> Result<Client, AdminError> {
    try_connect(url).map_err(|(e, _)| e)
}

/// [`connect`], waiting while PostgreSQL is not there yet (down, starting
/// up, restarting, out of connections): a node started before its
/// database comes up when the database does. What waiting cannot mend (a
/// refused login, no such database, a URL that does not read) fails at
/// once.
pub fn connect_waiting(url: &str) -> Result<Client, AdminError> {
    const EVERY: std::time::Duration = std::time::Duration::from_secs(1);
    let mut tries = 0u32;
    loop {
        match try_connect(url) {
            Ok(client) => {
                if tries > 0 {
                    tracing::info!(url = %redact(url), "PostgreSQL is reachable; starting");
                }
                return Ok(client);
            }
            Err((e, true)) => {
                // Every ten seconds is enough to be seen in the log.
                if tries % 10 == 0 {
                    tracing::warn!(error = %e, "waiting for PostgreSQL; this node starts when it answers");
                }
                tries += 1;
                std::thread::sleep(EVERY);
            }
            Err((e, false)) => return Err(e),
        }
    }
}

/// A connection, or why not and whether trying again later may do.
fn try_connect(url: &str) -> Result<Client, (AdminError, bool)> {
    let config: postgres::Config = url.parse().map_err(|e: postgres::Error| {
        let e = AdminError::Failed(format!(
            "'{url}' is not a PostgreSQL URL ({}); write postgres://USER@HOST:PORT/DATABASE",
            describe(&e)
        ));
        (e, false)
    })?;
    let mut config = config;
    config.connect_timeout(std::time::Duration::from_secs(10));
    config.connect(NoTls).map_err(|e| {
        // No answer from the server (refused, unreachable, timed out), or
        // one that says later: 08 connection exception, 53 insufficient
        // resources, 57 (starting up, shutting down).
        let transient = e.as_db_error().is_none_or(|db| {
            let code = db.code().code();
            ["08", "53", "57"].iter().any(|c| code.starts_with(c))
        });
        let msg = format!(
            "cannot connect to PostgreSQL at {}: {}",
            redact(url),
            describe(&e)
        );
        (AdminError::Failed(msg), transient)
    })
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let user = &url[scheme + 3..at];
            let user = user.split(':').next().unwrap_or("");
            format!("{}{user}@{}", &url[..scheme + 3], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

/// Creates or upgrades the schema; the version it is at now.
pub fn migrate(client: &mut Client) -> Result<i64, AdminError> {
    let mut tx = client
        .transaction()
        .map_err(failed("cannot begin the migration"))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATE_LOCK])
        .map_err(failed("cannot take the migration lock"))?;
    tx.batch_execute(SCHEMA)
        .map_err(failed("cannot create the schema"))?;
    let stored: Option<String> = tx
        .query_opt("SELECT value FROM meta WHERE key = 'schema'", &[])
        .map_err(failed("cannot read the schema version"))?
        .map(|r| r.get(0));
    match stored.as_deref().map(str::parse::<i64>) {
        Some(Ok(v)) if v > SCHEMA_VERSION => {
            return Err(AdminError::Failed(format!(
                "the schema is at version {v}, newer than this hallcast's {SCHEMA_VERSION}; \
                 upgrade hallcast"
            )))
        }
        Some(Ok(_)) | None => {}
        Some(Err(_)) => {
            return Err(AdminError::Failed(format!(
                "meta.schema holds '{}', not a version: this database was not made by hallcast",
                stored.unwrap_or_default()
            )))
        }
    }
    tx.execute(
        "INSERT INTO meta(key, value) VALUES ('schema', $1)
         ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
        &[&SCHEMA_VERSION.to_string()],
    )
    .map_err(failed("cannot record the schema version"))?;
    tx.commit().map_err(failed("cannot commit the migration"))?;
    Ok(SCHEMA_VERSION)
}

/// Rows a table of the store holds, by table, the empty ones left out.
pub fn holdings(client: &mut Client) -> Result<Vec<(String, i64)>, AdminError> {
    let mut held = Vec::new();
    for t in TABLES {
        let n: i64 = client
            .query_one(&format!("SELECT count(*) FROM {t}"), &[])
            .map_err(failed("cannot count the store's rows"))?
            .get(0);
        if n > 0 {
            held.push((t.to_string(), n));
        }
    }
    Ok(held)
}

/// A column of a SQLite table and how it travels.
struct Column {
    name: String,
    ty: Type,
}

/// What one SQLite value becomes.
enum Value {
    Int(Option<i64>),
    Text(Option<String>),
    Bytes(Option<Vec<u8>>),
}

impl Value {
    fn as_sql(&self) -> &(dyn ToSql + Sync) {
        match self {
            Value::Int(v) => v,
            Value::Text(v) => v,
            Value::Bytes(v) => v,
        }
    }
}

/// Copies a single node's data dir into an empty, migrated store, in one
/// transaction; the rows copied by table.
pub fn import(client: &mut Client, from: &Path) -> Result<Vec<(String, u64)>, AdminError> {
    let file = from.join("hallcast.db");
    if !file.is_file() {
        return Err(AdminError::Failed(format!(
            "{} holds no hallcast store (no hallcast.db); name the data dir of a hallcast node",
            from.display()
        )));
    }
    let lite = rusqlite::Connection::open_with_flags(&file, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| AdminError::Failed(format!("cannot open {}: {e}", file.display())))?;
    let version: Option<String> = lite
        .query_row("SELECT value FROM meta WHERE key='schema'", [], |r| {
            r.get(0)
        })
        .ok();
    let current = super::sqlite::SCHEMA_VERSION.to_string();
    if version.as_deref() != Some(current.as_str()) {
        return Err(AdminError::Failed(format!(
            "{} is at schema {}, not {current}: start this hallcast on it once (it upgrades the \
             file), stop it, then import",
            file.display(),
            version.as_deref().unwrap_or("unknown")
        )));
    }
    migrate(client)?;
    let held = holdings(client)?;
    if !held.is_empty() {
        let what: Vec<String> = held.iter().map(|(t, n)| format!("{n} in {t}")).collect();
        return Err(AdminError::HasData(format!(
            "the store already holds hallcast data ({} rows); import only into an empty store",
            what.join(", ")
        )));
    }
    let mut tx = client
        .transaction()
        .map_err(failed("cannot begin the import"))?;
    // One read transaction over every table: a node still running on the
    // dir cannot make the copy of one table newer than another's.
    lite.execute_batch("BEGIN")
        .map_err(lite_error("the store"))?;
    let mut copied = Vec::new();
    for table in TABLES {
        let n = copy_table(&lite, &mut tx, table)?;
        copied.push((table.to_string(), n));
    }
    lite.execute_batch("COMMIT")
        .map_err(lite_error("the store"))?;
    tx.commit().map_err(failed("cannot commit the import"))?;
    Ok(copied)
}

fn lite_error(table: &str) -> impl Fn(rusqlite::Error) -> AdminError + '_ {
    move |e| AdminError::Failed(format!("cannot read {table} from the SQLite store: {e}"))
}

/// The columns of a SQLite table, as declared.
fn columns(lite: &rusqlite::Connection, table: &str) -> Result<Vec<Column>, AdminError> {
    let mut q = lite
        .prepare("SELECT name, type FROM pragma_table_info(?1) ORDER BY cid")
        .map_err(lite_error(table))?;
    let rows = q
        .query_map([table], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })
        .map_err(lite_error(table))?;
    let mut cols = Vec::new();
    for row in rows {
        let (name, decl) = row.map_err(lite_error(table))?;
        let ty = match decl.to_ascii_uppercase().as_str() {
            "INTEGER" => Type::INT8,
            "TEXT" => Type::TEXT,
            "BLOB" => Type::BYTEA,
            other => {
                return Err(AdminError::Failed(format!(
                    "{table}.{name} is declared {other}, which an import does not know"
                )))
            }
        };
        cols.push(Column { name, ty });
    }
    Ok(cols)
}

/// Copies one table with `COPY … FROM STDIN BINARY`; how many rows.
fn copy_table(
    lite: &rusqlite::Connection,
    tx: &mut postgres::Transaction<'_>,
    table: &str,
) -> Result<u64, AdminError> {
    let cols = columns(lite, table)?;
    let names: Vec<String> = cols.iter().map(|c| format!("\"{}\"", c.name)).collect();
    let types: Vec<Type> = cols.iter().map(|c| c.ty.clone()).collect();
    let sink = tx
        .copy_in(&format!(
            "COPY {table} ({}) FROM STDIN BINARY",
            names.join(", ")
        ))
        .map_err(failed("cannot copy into PostgreSQL"))?;
    let mut writer = BinaryCopyInWriter::new(sink, &types);
    let mut q = lite
        .prepare(&format!("SELECT {} FROM {table}", names.join(", ")))
        .map_err(lite_error(table))?;
    let mut rows = q.query([]).map_err(lite_error(table))?;
    let mut n = 0u64;
    while let Some(r) = rows.next().map_err(lite_error(table))? {
        let mut values = Vec::with_capacity(cols.len());
        for (i, c) in cols.iter().enumerate() {
            let v = if c.ty == Type::INT8 {
                Value::Int(r.get(i).map_err(lite_error(table))?)
            } else if c.ty == Type::TEXT {
                Value::Text(r.get(i).map_err(lite_error(table))?)
            } else {
                Value::Bytes(r.get(i).map_err(lite_error(table))?)
            };
            values.push(v);
        }
        let refs: Vec<&(dyn ToSql + Sync)> = values.iter().map(Value::as_sql).collect();
        writer
            .write(&refs)
            .map_err(failed("cannot copy a row into PostgreSQL"))?;
        n += 1;
    }
    writer
        .finish()
        .map_err(failed("cannot finish copying into PostgreSQL"))?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_never_appears_in_a_message() {
        assert_eq!(
            redact("postgres://hall:s3cret@db.example:5432/city"),
            "postgres://hall@db.example:5432/city"
        );
        assert_eq!(
            redact("postgres://hall@127.0.0.1/test"),
            "postgres://hall@127.0.0.1/test"
        );
        assert_eq!(
            redact("postgres://127.0.0.1/test"),
            "postgres://127.0.0.1/test"
        );
    }

    #[test]
    fn every_table_is_in_the_schema() {
        for t in TABLES {
            assert!(
                SCHEMA.contains(&format!("CREATE TABLE IF NOT EXISTS {t}(")),
                "{t}"
            );
        }
    }
}
