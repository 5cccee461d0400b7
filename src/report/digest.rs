//! A day's statistics, kept once nothing can change the day any more: a
//! year's statistics add up 365 of these instead of reading 730,000
//! tickets again.
//!
//! When a day is settled: every ticket of it is final, and the last one
//! finished longer ago than the hall keeps finished tickets in memory
//! (`RatingsSpec::finished_kept`, more than `rate_within_days`). A command
//! only changes tickets in memory, and a ticket in memory is only rated
//! within `rate_within_days` of being done; so after that instant no
//! command reaches the day. A digest stands for its day only while that
//! holds under today's config (a raised `rate_within_days` unsettles days
//! again), in the time zone it was cut in (the hours), and for this
//! `VERSION` of the rules.

use chrono::{DateTime, NaiveDate, Utc};

use super::stats::{Group, HourGroup, Stats, WindowGroup};
use super::Seconds;
use crate::queue::hours::{instant, DAY_MINUTES};
use crate::queue::HallSpec;
use crate::store::{from_ms, TicketFact};

/// Raised whenever what a digest holds or how statistics count changes:
/// digests of another version are cut again from the tickets.
pub const VERSION: u8 = 1;

/// The statistics of one date and whether it can still change.
#[derive(Clone, Debug)]
pub struct Day {
    pub stats: Stats,
    /// Some ticket of the day is not final yet.
    open: bool,
    /// When its last ticket became final (Unix ms).
    last_finished: Option<i64>,
}

impl Day {
    pub fn new(spec: &HallSpec) -> Day {
        Day {
            stats: Stats::empty(spec.timezone),
            open: false,
            last_finished: None,
        }
    }

    /// Counts one ticket of the day.
    pub fn add(&mut self, t: &TicketFact<'_>) {
        self.stats.add(t);
        if matches!(t.status, "done" | "no_show" | "cancelled" | "expired") {
            let at = t.finished_at.unwrap_or(t.created_at);
            self.last_finished = Some(self.last_finished.map_or(at, |l| l.max(at)));
        } else {
            self.open = true;
        }
    }

    /// From when no command can change `date`'s tickets; `None` while one
    /// of them is still open.
    pub fn settles_at(&self, spec: &HallSpec, date: NaiveDate) -> Option<DateTime<Utc>> {
        if self.open {
            return None;
        }
        let end = instant(spec.timezone, date, DAY_MINUTES)?;
        let last = self.last_finished.map_or(end, |f| from_ms(f).max(end));
        Some(last + spec.ratings.finished_kept())
    }

    /// Whether this digest, made at `made`, may stand for `date` at `now`.
    /// One made "later" than now (the clock was set back) is not trusted.
    pub fn reusable(
        &self,
        spec: &HallSpec,
        date: NaiveDate,
        made: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> bool {
        made <= now && self.settles_at(spec, date).is_some_and(|s| s <= made)
    }

    /// The digest's bytes.
    pub fn encode(&mut self, spec: &HallSpec) -> Vec<u8> {
        let mut out = vec![VERSION];
        put_str(&mut out, spec.timezone.name());
        out.push(u8::from(self.open));
        put_varint(
            &mut out,
            self.last_finished.map_or(0, |l| l.max(0) as u64 + 1),
        );
        let s = &mut self.stats;
        put_group(&mut out, &mut s.totals);
        put_varint(&mut out, s.by_service.len() as u64);
        for (name, g) in &mut s.by_service {
            put_str(&mut out, name);
            put_group(&mut out, g);
        }
        put_varint(&mut out, s.by_window.len() as u64);
        for (name, g) in &mut s.by_window {
            put_str(&mut out, name);
            put_varint(&mut out, g.served);
            put_varint(&mut out, g.ratings);
            put_varint(&mut out, g.positive);
            g.services.write(&mut out);
        }
        for h in &mut s.by_hour {
            put_varint(&mut out, h.issued);
            put_varint(&mut out, h.called);
            h.waits.write(&mut out);
        }
        out
    }

    /// Reads a digest back; `None` for another version, another time
    /// zone than the hall's now, or bytes that are not a digest.
    pub fn decode(spec: &HallSpec, bytes: &[u8]) -> Option<Day> {
        let (&version, mut input) = bytes.split_first()?;
        if version != VERSION || take_str(&mut input)? != spec.timezone.name() {
            return None;
        }
        let input = &mut input;
        let open = match take_byte(input)? {
            0 => false,
            1 => true,
            _ => return None,
        };
        let last_finished = match take_varint(input)? {
            0 => None,
            l => Some(i64::try_from(l - 1).ok()?),
        };
        let mut stats = Stats::empty(spec.timezone);
        stats.totals = take_group(input)?;
        for _ in 0..take_count(input)? {
            let name = take_str(input)?;
            let g = take_group(input)?;
            stats.set_service(name, g);
        }
        for _ in 0..take_count(input)? {
            let name = take_str(input)?;
            let g = WindowGroup {
                served: take_varint(input)?,
                ratings: take_varint(input)?,
                positive: take_varint(input)?,
                services: Seconds::read(input)?,
            };
            stats.set_window(name, g);
        }
        for h in &mut stats.by_hour {
            *h = HourGroup {
                issued: take_varint(input)?,
                called: take_varint(input)?,
                waits: Seconds::read(input)?,
            };
        }
        input.is_empty().then_some(Day {
            stats,
            open,
            last_finished,
        })
    }
}

fn put_group(out: &mut Vec<u8>, g: &mut Group) {
    for n in [
        g.issued,
        g.served,
        g.no_show,
        g.cancelled,
        g.expired,
        g.ratings,
        g.positive,
    ] {
        put_varint(out, n);
    }
    g.waits.write(out);
    g.services.write(out);
}

fn take_group(input: &mut &[u8]) -> Option<Group> {
    Some(Group {
        issued: take_varint(input)?,
        served: take_varint(input)?,
        no_show: take_varint(input)?,
        cancelled: take_varint(input)?,
        expired: take_varint(input)?,
        ratings: take_varint(input)?,
        positive: take_varint(input)?,
        waits: Seconds::read(input)?,
        services: Seconds::read(input)?,
    })
}

/// Appends `v` as a LEB128 varint: seven bits a byte, low first.
pub(super) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Takes a varint off the front of `input`.
pub(super) fn take_varint(input: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = take_byte(input)?;
        v |= u64::from(b & 0x7f).checked_shl(shift)?;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

fn take_byte(input: &mut &[u8]) -> Option<u8> {
    let (&b, rest) = input.split_first()?;
    *input = rest;
    Some(b)
}

/// A count of entries, each of which takes at least a byte.
fn take_count(input: &mut &[u8]) -> Option<usize> {
    usize::try_from(take_varint(input)?)
        .ok()
        .filter(|&n| n <= input.len())
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn take_str<'a>(input: &mut &'a [u8]) -> Option<&'a str> {
    let n = take_count(input)?;
    let (s, rest) = input.split_at(n);
    *input = rest;
    std::str::from_utf8(s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ticket of 2026-12-02 in Shanghai, issued at 09:00 plus `minutes`.
    fn fact(status: &'static str, service: &'static str, minutes: i64) -> TicketFact<'static> {
        let at = 1_796_173_200_000 + minutes * 60_000;
        TicketFact {
            day: "2026-12-02",
            id: minutes,
            number: "A001",
            service,
            issued_service: service,
            channel: "kiosk",
            priority: "normal",
            status,
            window: Some("3-01"),
            created_at: at,
            first_called_at: Some(at + 600_000 + minutes * 1000),
            called_at: Some(at + 900_000),
            started_at: Some(at + 960_000),
            finished_at: (status != "waiting").then_some(at + 1_260_000 + minutes * 7000),
            rating: (minutes % 3 == 0).then_some((minutes % 5) as u8 + 1),
        }
    }

    fn date() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 12, 2).unwrap()
    }

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    #[test]
    fn a_digest_read_back_counts_what_its_tickets_count() {
        let spec = crate::demo::spec();
        let mut day = Day::new(&spec);
        let mut whole = Stats::new(&spec);
        for m in 0..400 {
            let f = fact(
                ["done", "no_show", "cancelled"][m as usize % 3],
                ["business", "gone"][m as usize % 2],
                m,
            );
            day.add(&f);
            whole.add(&f);
        }
        let bytes = day.encode(&spec);
        let back = Day::decode(&spec, &bytes).expect("a digest");
        assert_eq!(
            back.settles_at(&spec, date()),
            day.settles_at(&spec, date())
        );
        let mut merged = Stats::new(&spec);
        merged.merge(back.stats);
        crate::report::stats::assert_same(&mut merged, &mut whole);
    }

    #[test]
    fn a_day_settles_once_its_last_ticket_is_out_of_memory_and_not_while_one_is_open() {
        let spec = crate::demo::spec();
        let mut day = Day::new(&spec);
        day.add(&fact("done", "business", 0));
        // The day ends at midnight in Shanghai; tickets stay in memory 8
        // days (rated within 7, and a day's slack).
        let settles = t("2026-12-10T16:00:00Z");
        assert_eq!(day.settles_at(&spec, date()), Some(settles));
        assert!(day.reusable(&spec, date(), settles, settles));
        assert!(!day.reusable(
            &spec,
            date(),
            settles - chrono::Duration::seconds(1),
            settles
        ));
        assert!(
            !day.reusable(
                &spec,
                date(),
                settles,
                settles - chrono::Duration::seconds(1)
            ),
            "made after now: the clock was set back"
        );

        // A ticket that ended days later (the server was down at midnight)
        // keeps the day open for as long after that.
        let mut late = fact("expired", "business", 1);
        late.finished_at = Some(t("2026-12-05T02:00:00Z").timestamp_millis());
        day.add(&late);
        assert_eq!(
            day.settles_at(&spec, date()),
            Some(t("2026-12-13T02:00:00Z"))
        );

        // A raised rate_within_days unsettles it again.
        let mut longer = (*spec).clone();
        longer.ratings.rate_within_days = 30;
        assert!(day.reusable(
            &spec,
            date(),
            t("2026-12-14T00:00:00Z"),
            t("2026-12-20T00:00:00Z")
        ));
        assert!(!day.reusable(
            &longer,
            date(),
            t("2026-12-14T00:00:00Z"),
            t("2026-12-20T00:00:00Z")
        ));

        day.add(&fact("waiting", "business", 2));
        assert_eq!(day.settles_at(&spec, date()), None);
        let back = Day::decode(&spec, &day.encode(&spec)).unwrap();
        assert_eq!(back.settles_at(&spec, date()), None);
    }

    #[test]
    fn another_version_time_zone_or_broken_bytes_are_no_digest() {
        let spec = crate::demo::spec();
        let mut day = Day::new(&spec);
        day.add(&fact("done", "business", 0));
        let bytes = day.encode(&spec);
        let mut other = bytes.clone();
        other[0] = VERSION + 1;
        assert!(Day::decode(&spec, &other).is_none());
        let mut elsewhere = (*spec).clone();
        elsewhere.timezone = chrono_tz::Asia::Hong_Kong;
        assert!(Day::decode(&elsewhere, &bytes).is_none());
        for cut in 0..bytes.len() {
            assert!(Day::decode(&spec, &bytes[..cut]).is_none(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Day::decode(&spec, &longer).is_none());
        assert!(Day::decode(&spec, &bytes).is_some());
    }

    #[test]
    fn varints_round_trip_and_overlong_ones_are_refused() {
        for v in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            let mut input = &out[..];
            assert_eq!(take_varint(&mut input), Some(v));
            assert!(input.is_empty());
        }
        assert_eq!(take_varint(&mut &[0x80u8; 11][..]), None);
        assert_eq!(take_varint(&mut &[0x80u8][..]), None);
    }
}
