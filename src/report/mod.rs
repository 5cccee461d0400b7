//! Reports over a hall's history (contract §10, §11): statistics, the CSV
//! export, the public ratings summary and the dashboard's charts.
//!
//! Pure code over what the store reads back: no I/O, no clock. Counts and
//! percentiles are exact — every ticket of the range is looked at once,
//! in the store's order, and nothing is sampled.

pub mod chart;
pub mod csv;
pub mod digest;
pub mod ratings;
pub mod seconds;
pub mod stats;

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;

use crate::queue::hours::{instant, DAY_MINUTES};
use crate::store::TicketFact;

pub use ratings::RatingSummary;
pub use seconds::Seconds;
pub use stats::{Stats, Summary};

/// At most this many dates in one statistics range (§11).
pub const MAX_DATES: i64 = 366;

/// A range of hall-local dates, both included.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dates {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

impl Dates {
    /// How many dates the range holds.
    pub fn len(&self) -> i64 {
        (self.to - self.from).num_days() + 1
    }

    /// The range cut into at most `n` consecutive parts of about equal
    /// length, in order.
    pub fn split(&self, n: usize) -> Vec<Dates> {
        let n = (n.max(1) as i64).min(self.len());
        let per = (self.len() + n - 1) / n;
        let mut parts = Vec::new();
        let mut from = self.from;
        while from <= self.to {
            let to = (from + chrono::Duration::days(per - 1)).min(self.to);
            parts.push(Dates { from, to });
            match to.succ_opt() {
                Some(next) => from = next,
                None => break,
            }
        }
        parts
    }

    /// The range's dates in order.
    pub fn days(&self) -> impl Iterator<Item = NaiveDate> {
        let to = self.to;
        self.from.iter_days().take_while(move |d| *d <= to)
    }

    /// Never: a range holds its first date.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The range as instants: from the first date's local midnight to
    /// the local midnight after the last; `None` past chrono's calendar.
    pub fn instants(&self, tz: Tz) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        Some((
            instant(tz, self.from, 0)?,
            instant(tz, self.to, DAY_MINUTES)?,
        ))
    }
}

/// §11's wait: from issue (or check-in) to the first call.
pub fn wait_seconds(t: &TicketFact<'_>) -> Option<u32> {
    t.first_called_at.map(|c| seconds_between(t.created_at, c))
}

/// §11's service time of a done ticket: from the start (or, never
/// started, the call) to done.
pub fn service_seconds(t: &TicketFact<'_>) -> Option<u32> {
    match (
        t.status == "done",
        t.started_at.or(t.called_at),
        t.finished_at,
    ) {
        (true, Some(from), Some(to)) => Some(seconds_between(from, to)),
        _ => None,
    }
}

/// Whole seconds from `a` to `b` (milliseconds), never negative.
pub fn seconds_between(a: i64, b: i64) -> u32 {
    ((b - a).max(0) / 1000).min(i64::from(u32::MAX)) as u32
}

/// The share of ratings that are positive (levels 3–5), `None` with none.
pub fn positive_rate(positive: u64, count: u64) -> Option<f64> {
    (count > 0).then(|| positive as f64 / count as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_range_splits_into_consecutive_parts_that_cover_it() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let year = Dates {
            from: d("2026-01-01"),
            to: d("2026-12-31"),
        };
        let parts = year.split(2);
        assert_eq!(parts.len(), 2);
        assert_eq!((parts[0].from, parts[1].to), (year.from, year.to));
        assert_eq!(parts[0].to.succ_opt(), Some(parts[1].from));
        assert_eq!(parts.iter().map(Dates::len).sum::<i64>(), 365);
        assert_eq!(year.days().count(), 365);
        assert_eq!(year.days().last(), Some(year.to));
        let day = Dates {
            from: year.from,
            to: year.from,
        };
        assert_eq!(day.split(4), vec![day]);
        assert_eq!(year.split(0), vec![year]);
    }
}
