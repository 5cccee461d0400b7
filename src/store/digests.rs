//! The day digests (`report::digest`) on disk, and statistics of a range
//! read from them where a day is settled and from its tickets where not.
//!
//! A file of their own (`stats-cache.db` beside the journal), not a
//! table of it: a digest is written by whichever report read cut it, and
//! in the journal's file that write would take the writer's lock between
//! two commits. Nothing in it is the only copy of anything: a day whose
//! digest is missing, stale or unreadable is cut again from its tickets,
//! so a damaged file is set aside and started over, and a failed write
//! costs time, never a wrong answer. Nor does it need to survive a power
//! cut, so it is written without fsync.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{params, Connection};

use super::{from_ms, Backend, StoreError};
use crate::queue::HallSpec;
use crate::report::digest::Day;
use crate::report::{Dates, Stats};

/// The cache's file name in the data dir.
pub const FILE: &str = "stats-cache.db";

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS digests (
        hall TEXT NOT NULL,
        day TEXT NOT NULL,
        made_at INTEGER NOT NULL,
        body BLOB NOT NULL,
        PRIMARY KEY (hall, day)
    ) WITHOUT ROWID;
";

/// The digests' file.
pub struct Digests {
    conn: Mutex<Connection>,
    path: PathBuf,
}

impl Digests {
    /// Opens (or makes) the file in `dir`. One that cannot be read as
    /// ours is renamed aside (`.broken`) and a new one begun.
    pub fn open(dir: &Path) -> Result<Digests, StoreError> {
        let path = dir.join(FILE);
        let conn = match open_at(&path) {
            Ok(c) => c,
            Err(e) => {
                let aside = path.with_extension("db.broken");
                tracing::warn!(
                    error = %e,
                    path = %path.display(),
                    "the statistics cache is unreadable; set aside as {} and begun again",
                    aside.display()
                );
                std::fs::rename(&path, &aside).map_err(|e| {
                    StoreError::unavailable(format!(
                        "cannot move the broken statistics cache {} aside: {e}; delete it",
                        path.display()
                    ))
                })?;
                for side in ["-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{side}", path.display()));
                }
                open_at(&path)?
            }
        };
        Ok(Digests {
            conn: Mutex::new(conn),
            path,
        })
    }

    /// Digests of `hall` from `from` to `to` (both included): day →
    /// (made at, bytes). A read that fails is an empty one.
    fn get(&self, hall: &str, from: &str, to: &str) -> HashMap<String, (i64, Vec<u8>)> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let read = || -> rusqlite::Result<HashMap<String, (i64, Vec<u8>)>> {
            let mut q = conn.prepare_cached(
                "SELECT day, made_at, body FROM digests WHERE hall=?1 AND day >= ?2 AND day <= ?3",
            )?;
            let rows = q.query_map(params![hall, from, to], |r| {
                Ok((r.get(0)?, (r.get(1)?, r.get(2)?)))
            })?;
            rows.collect()
        };
        read().unwrap_or_else(|e| {
            tracing::warn!(error = %e, path = %self.path.display(), "statistics cache read failed; counting from the tickets");
            HashMap::new()
        })
    }

    /// Keeps digests of `hall`, in one transaction.
    fn put(&self, hall: &str, made_at: i64, days: &[(String, Vec<u8>)]) {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let mut write = || -> rusqlite::Result<()> {
            let tx = conn.transaction()?;
            {
                let mut q = tx.prepare_cached(
                    "INSERT OR REPLACE INTO digests (hall, day, made_at, body) VALUES (?1, ?2, ?3, ?4)",
                )?;
                for (day, body) in days {
                    q.execute(params![hall, day, made_at, body])?;
                }
            }
            tx.commit()
        };
        if let Err(e) = write() {
            tracing::warn!(error = %e, path = %self.path.display(), "statistics cache write failed; those days are counted from their tickets again next time");
        }
    }
}

fn open_at(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "OFF")?;
    conn.execute_batch(SCHEMA)?;
    // A file that opens but is not ours fails here, not at the first read.
    conn.query_row("SELECT count(*) FROM digests", [], |r| r.get::<_, i64>(0))?;
    Ok(conn)
}

/// The statistics of `dates` as of `now`: a settled day from its digest
/// when there is one that still holds, every other day from its tickets
/// (and its digest kept, if it is settled now).
pub fn stats_between(
    store: &mut dyn Backend,
    digests: Option<&Digests>,
    spec: &HallSpec,
    dates: Dates,
    now: DateTime<Utc>,
) -> Result<Stats, StoreError> {
    let mut stats = Stats::new(spec);
    let (from, to) = (dates.from.to_string(), dates.to.to_string());
    let Some(digests) = digests else {
        store.visit_tickets(&spec.id, &from, &to, false, &mut |t| stats.add(t))?;
        return Ok(stats);
    };
    let kept = digests.get(&spec.id, &from, &to);
    let mut fresh = Vec::new();
    for date in dates.days() {
        let d = date.to_string();
        match settled(spec, &kept, &d, date, now) {
            Some(day) => stats.merge(day.stats),
            None => {
                let mut day = Day::new(spec);
                store.visit_tickets(&spec.id, &d, &d, false, &mut |t| day.add(t))?;
                if day.settles_at(spec, date).is_some_and(|s| s <= now) {
                    fresh.push((d, day.encode(spec)));
                }
                stats.merge(day.stats);
            }
        }
    }
    if !fresh.is_empty() {
        digests.put(&spec.id, now.timestamp_millis(), &fresh);
    }
    Ok(stats)
}

/// The kept digest of `date`, if it still stands for the day.
fn settled(
    spec: &HallSpec,
    kept: &HashMap<String, (i64, Vec<u8>)>,
    d: &str,
    date: NaiveDate,
    now: DateTime<Utc>,
) -> Option<Day> {
    let (made, body) = kept.get(d)?;
    Day::decode(spec, body).filter(|day| day.reusable(spec, date, from_ms(*made), now))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Batch, Loaded, StoredEvent, TicketFact};

    /// A store of a few done tickets a day that counts the days read.
    struct Days {
        days: Vec<&'static str>,
        read: Vec<String>,
    }

    impl Backend for Days {
        fn load(&mut self, _: &HallSpec, _: DateTime<Utc>) -> Result<Loaded, StoreError> {
            unreachable!()
        }
        fn commit(&mut self, _: &[&Batch]) -> Result<(), StoreError> {
            unreachable!()
        }
        fn maintain(&mut self, _: DateTime<Utc>) -> Result<(), StoreError> {
            unreachable!()
        }
        fn events_after(
            &mut self,
            _: &str,
            _: Option<i32>,
            _: u64,
            _: usize,
        ) -> Result<Vec<StoredEvent>, StoreError> {
            unreachable!()
        }
        fn visit_tickets(
            &mut self,
            _hall: &str,
            from: &str,
            to: &str,
            _full: bool,
            visit: &mut dyn FnMut(&TicketFact<'_>),
        ) -> Result<(), StoreError> {
            for day in self.days.iter().filter(|d| **d >= from && **d <= to) {
                self.read.push(day.to_string());
                let date = NaiveDate::parse_from_str(day, "%Y-%m-%d").unwrap();
                // 01:00 UTC, 09:00 in Shanghai.
                let at = date
                    .and_hms_opt(1, 0, 0)
                    .unwrap()
                    .and_utc()
                    .timestamp_millis();
                for i in 0..20i64 {
                    visit(&TicketFact {
                        day,
                        id: i,
                        number: "",
                        service: ["business", "social"][i as usize % 2],
                        issued_service: "business",
                        channel: "",
                        priority: "",
                        status: ["done", "no_show"][i as usize % 2],
                        window: Some("3-01"),
                        created_at: at + i * 60_000,
                        first_called_at: Some(at + i * 97_000),
                        called_at: Some(at + i * 97_000),
                        started_at: Some(at + i * 98_000),
                        finished_at: Some(at + i * 130_000),
                        rating: (i % 4 == 0).then_some(i as u8 % 5 + 1),
                    });
                }
            }
            Ok(())
        }
    }

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn settled_days_are_read_once_and_then_come_from_their_digests() {
        let spec = crate::demo::spec();
        let dir = tempfile::tempdir().unwrap();
        let cache = Digests::open(dir.path()).unwrap();
        let mut store = Days {
            days: vec!["2026-11-01", "2026-11-02", "2026-12-01"],
            read: Vec::new(),
        };
        let range = Dates {
            from: d("2026-10-30"),
            to: d("2026-12-03"),
        };
        let now = t("2026-12-03T02:00:00Z");
        let mut plain = Stats::new(&spec);
        store
            .visit_tickets("demo", "2026-10-30", "2026-12-03", false, &mut |f| {
                plain.add(f)
            })
            .unwrap();
        store.read.clear();
        let mut first = stats_between(&mut store, Some(&cache), &spec, range, now).unwrap();
        assert_eq!(store.read, ["2026-11-01", "2026-11-02", "2026-12-01"]);
        store.read.clear();
        let mut second = stats_between(&mut store, Some(&cache), &spec, range, now).unwrap();
        assert_eq!(
            store.read,
            ["2026-12-01"],
            "the settled days from their digests"
        );
        for s in [&mut first, &mut second] {
            crate::report::stats::assert_same(s, &mut plain);
        }

        // A longer rating window unsettles them: read again, not kept.
        let mut longer = (*spec).clone();
        longer.ratings.rate_within_days = 60;
        store.read.clear();
        stats_between(&mut store, Some(&cache), &longer, range, now).unwrap();
        assert_eq!(store.read.len(), 3);

        // A digest that does not read back is cut again, and replaced.
        cache.put(
            "demo",
            now.timestamp_millis(),
            &[("2026-11-01".into(), vec![1, 2])],
        );
        store.read.clear();
        let mut again = stats_between(&mut store, Some(&cache), &spec, range, now).unwrap();
        assert_eq!(store.read, ["2026-11-01", "2026-12-01"]);
        crate::report::stats::assert_same(&mut again, &mut plain);
        store.read.clear();
        stats_between(&mut store, Some(&cache), &spec, range, now).unwrap();
        assert_eq!(store.read, ["2026-12-01"]);

        // Without a cache, one read of the range.
        store.read.clear();
        let mut none = stats_between(&mut store, None, &spec, range, now).unwrap();
        crate::report::stats::assert_same(&mut none, &mut plain);
    }

    #[test]
    fn a_file_that_is_not_a_cache_is_set_aside_and_begun_again() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE), b"not a database at all, not at all").unwrap();
        let d = Digests::open(dir.path()).unwrap();
        d.put("demo", 5, &[("2026-12-01".into(), vec![1, 2, 3])]);
        let got = d.get("demo", "2026-12-01", "2026-12-31");
        assert_eq!(got["2026-12-01"], (5, vec![1, 2, 3]));
        assert!(dir.path().join("stats-cache.db.broken").exists());
        assert!(d.get("other", "2026-12-01", "2026-12-31").is_empty());
    }
}
