//! Opening hours (contract §7): weekly ranges, special dates that replace
//! a weekday's (holidays, make-up working days), and the last minutes of a
//! range in which no walk-in ticket is issued. Pure: every question takes
//! the instant it is asked about.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

/// Minutes in a day: a range may end at 24:00.
pub const DAY_MINUTES: u32 = 24 * 60;

/// How far ahead `next_open` and `next_change` look past the last special
/// date: a weekly schedule repeats within a week, so a year is only reached
/// by a hall closed for a long stretch of special dates.
const LOOK_AHEAD_DAYS: i64 = 400;

/// One opening range of a day, in minutes after local midnight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    pub start: u32,
    pub end: u32,
}

/// A day's hours: its ranges in order, and the config string they came from
/// (what the hall board shows as `hours_today`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DayHours {
    pub ranges: Vec<Range>,
    pub text: String,
}

impl DayHours {
    /// Parses "09:00-12:00,13:30-17:30" ("" is closed all day). The error
    /// says what is wrong, for the config's message.
    pub fn parse(s: &str) -> Result<DayHours, String> {
        let text = s.trim();
        let mut ranges: Vec<Range> = Vec::new();
        if text.is_empty() {
            return Ok(DayHours::default());
        }
        for part in text.split(',') {
            let part = part.trim();
            let (a, b) = part
                .split_once('-')
                .ok_or_else(|| format!("'{part}' is not a range HH:MM-HH:MM"))?;
            let start = minutes(a.trim(), false)
                .ok_or_else(|| format!("'{}' in '{part}' is not a time HH:MM", a.trim()))?;
            let end = minutes(b.trim(), true)
                .ok_or_else(|| format!("'{}' in '{part}' is not a time HH:MM", b.trim()))?;
            if end <= start {
                return Err(format!("the range '{part}' must end after it starts"));
            }
            if let Some(prev) = ranges.last() {
                if start < prev.end {
                    return Err(format!(
                        "the range '{part}' overlaps or comes before the one before it; list ranges in order"
                    ));
                }
            }
            ranges.push(Range { start, end });
        }
        Ok(DayHours {
            ranges,
            text: text.to_string(),
        })
    }
}

/// "HH:MM" as minutes after midnight; "24:00" only as an end.
fn minutes(s: &str, end: bool) -> Option<u32> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    let v = h * 60 + m;
    let fits = (h < 24 && m < 60) || (end && v == DAY_MINUTES);
    fits.then_some(v)
}

/// A hall's opening hours.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Hours {
    /// Monday first.
    pub week: [DayHours; 7],
    pub special: BTreeMap<NaiveDate, DayHours>,
    /// No walk-in ticket in the last this many minutes of a range.
    pub last_ticket_minutes: u32,
}

impl Hours {
    /// The hours in effect on a hall-local date.
    pub fn on(&self, date: NaiveDate) -> &DayHours {
        self.special
            .get(&date)
            .unwrap_or(&self.week[date.weekday().num_days_from_monday() as usize])
    }

    /// Inside an opening range at `now`.
    pub fn is_open(&self, tz: Tz, now: DateTime<Utc>) -> bool {
        let (date, m) = local(tz, now);
        self.on(date)
            .ranges
            .iter()
            .any(|r| r.start <= m && m < r.end)
    }

    /// A walk-in ticket may be issued at `now`: open, and not within the
    /// last minutes of the range.
    pub fn takes_tickets(&self, tz: Tz, now: DateTime<Utc>) -> bool {
        let (date, m) = local(tz, now);
        self.on(date)
            .ranges
            .iter()
            .any(|r| r.start <= m && m + self.last_ticket_minutes < r.end)
    }

    /// The first range start after `now`, if any within the look-ahead.
    pub fn next_open(&self, tz: Tz, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.next_edge(tz, now, |r| vec![r.start])
    }

    /// The next opening or closing after `now`. A range that ends at 24:00
    /// and one that starts at 00:00 the next day do not close the hall.
    pub fn next_change(&self, tz: Tz, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let open = self.is_open(tz, now);
        let mut after = now;
        // Skip edges that change nothing (24:00 → 00:00 of the next day).
        for _ in 0..4 {
            let edge = self.next_edge(tz, after, |r| vec![r.start, r.end])?;
            if self.is_open(tz, edge) != open {
                return Some(edge);
            }
            after = edge;
        }
        None
    }

    /// The first instant after `now` that `edges` of a range name.
    fn next_edge(
        &self,
        tz: Tz,
        now: DateTime<Utc>,
        edges: impl Fn(&Range) -> Vec<u32>,
    ) -> Option<DateTime<Utc>> {
        let (today, _) = local(tz, now);
        let last_special = self.special.keys().next_back().copied();
        let horizon = last_special
            .filter(|d| *d > today)
            .unwrap_or(today)
            .max(today)
            + Duration::days(LOOK_AHEAD_DAYS);
        let mut date = today;
        while date <= horizon {
            for r in &self.on(date).ranges {
                for m in edges(r) {
                    if let Some(t) = instant(tz, date, m) {
                        if t > now {
                            return Some(t);
                        }
                    }
                }
            }
            // A week of closed weekdays with no special date left means
            // never: stop early instead of walking the whole horizon.
            if self.week.iter().all(|d| d.ranges.is_empty())
                && last_special.is_none_or(|l| date >= l)
            {
                return None;
            }
            date += Duration::days(1);
        }
        None
    }
}

/// The hall-local date and minute of an instant.
pub fn local(tz: Tz, now: DateTime<Utc>) -> (NaiveDate, u32) {
    let l = now.with_timezone(&tz).naive_local();
    (l.date(), l.hour() * 60 + l.minute())
}

/// The instant of a hall-local date and minute (24:00 is the next
/// midnight); the earlier one when a clock change repeats it, the first
/// minute after a gap when it skips it.
pub fn instant(tz: Tz, date: NaiveDate, minute: u32) -> Option<DateTime<Utc>> {
    let (date, minute) = if minute >= DAY_MINUTES {
        (date + Duration::days(1), minute - DAY_MINUTES)
    } else {
        (date, minute)
    };
    let time = NaiveTime::from_hms_opt(minute / 60, minute % 60, 0)?;
    let mut naive = date.and_time(time);
    for _ in 0..180 {
        if let Some(t) = tz.from_local_datetime(&naive).earliest() {
            return Some(t.with_timezone(&Utc));
        }
        naive += Duration::minutes(1);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shanghai() -> Tz {
        "Asia/Shanghai".parse().unwrap()
    }

    /// A hall-local time on a date, as UTC.
    fn at(date: &str, hm: &str) -> DateTime<Utc> {
        let d = NaiveDate::parse_from_str(date, "%Y-%m-%d").unwrap();
        instant(shanghai(), d, minutes(hm, true).unwrap()).unwrap()
    }

    fn hall_hours() -> Hours {
        let week_day = DayHours::parse("09:00-12:00,13:30-17:30").unwrap();
        let mut h = Hours {
            last_ticket_minutes: 30,
            ..Hours::default()
        };
        for d in 0..5 {
            h.week[d] = week_day.clone();
        }
        h.week[5] = DayHours::parse("09:00-12:00").unwrap();
        // 2026-10-01 is a Thursday holiday; 2026-09-27 a Sunday make-up day.
        h.special.insert(
            NaiveDate::from_ymd_opt(2026, 10, 1).unwrap(),
            DayHours::parse("").unwrap(),
        );
        h.special.insert(
            NaiveDate::from_ymd_opt(2026, 9, 27).unwrap(),
            DayHours::parse("09:00-17:00").unwrap(),
        );
        h
    }

    #[test]
    fn ranges_parse_and_bad_ones_say_why() {
        let d = DayHours::parse(" 09:00-12:00, 13:30-24:00 ").unwrap();
        assert_eq!(
            d.ranges,
            [
                Range {
                    start: 540,
                    end: 720
                },
                Range {
                    start: 810,
                    end: 1440
                }
            ]
        );
        assert_eq!(d.text, "09:00-12:00, 13:30-24:00");
        for (bad, why) in [
            ("9-12", "not a time"),
            ("09:00", "not a range"),
            ("12:00-09:00", "end after it starts"),
            ("09:00-09:00", "end after it starts"),
            ("25:00-26:00", "not a time"),
            ("24:00-24:00", "not a time"),
            ("09:00-12:00,11:00-13:00", "overlaps"),
            ("13:00-14:00,09:00-10:00", "overlaps"),
            ("09:60-10:00", "not a time"),
        ] {
            let e = DayHours::parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn open_and_ticket_taking_follow_ranges_specials_and_last_minutes() {
        let h = hall_hours();
        let tz = shanghai();
        let cases = [
            // Tuesday 2026-12-01.
            ("2026-12-01", "08:59", false, false),
            ("2026-12-01", "09:00", true, true),
            ("2026-12-01", "11:29", true, true),
            ("2026-12-01", "11:30", true, false), // last 30 minutes
            ("2026-12-01", "12:00", false, false),
            ("2026-12-01", "13:30", true, true),
            ("2026-12-01", "17:29", true, false),
            ("2026-12-01", "17:30", false, false),
            // Saturday, morning only; Sunday closed.
            ("2026-12-05", "10:00", true, true),
            ("2026-12-05", "14:00", false, false),
            ("2026-12-06", "10:00", false, false),
            // A Thursday holiday, a Sunday make-up day.
            ("2026-10-01", "10:00", false, false),
            ("2026-09-27", "12:30", true, true),
        ];
        for (d, t, open, takes) in cases {
            let now = at(d, t);
            assert_eq!(
                (h.is_open(tz, now), h.takes_tickets(tz, now)),
                (open, takes),
                "{d} {t}"
            );
        }
        assert_eq!(h.on(NaiveDate::from_ymd_opt(2026, 10, 1).unwrap()).text, "");
    }

    #[test]
    fn next_open_and_next_change() {
        let h = hall_hours();
        let tz = shanghai();
        // Tuesday lunch: opens again at 13:30, which is also the next change.
        let lunch = at("2026-12-01", "12:10");
        assert_eq!(h.next_open(tz, lunch), Some(at("2026-12-01", "13:30")));
        assert_eq!(h.next_change(tz, lunch), Some(at("2026-12-01", "13:30")));
        // Open: the next change is the close.
        assert_eq!(
            h.next_change(tz, at("2026-12-01", "10:00")),
            Some(at("2026-12-01", "12:00"))
        );
        // Saturday afternoon → Monday 09:00.
        assert_eq!(
            h.next_open(tz, at("2026-12-05", "13:00")),
            Some(at("2026-12-07", "09:00"))
        );
        // The evening before a holiday → the day after it.
        assert_eq!(
            h.next_open(tz, at("2026-09-30", "18:00")),
            Some(at("2026-10-02", "09:00"))
        );
        // Hours that never open: no next opening.
        let never = Hours::default();
        assert_eq!(never.next_open(tz, lunch), None);
        assert_eq!(never.next_change(tz, lunch), None);
        // Round the clock: 00:00-24:00 every day never changes.
        let mut always = Hours::default();
        for d in 0..7 {
            always.week[d] = DayHours::parse("00:00-24:00").unwrap();
        }
        assert!(always.is_open(tz, lunch));
        assert_eq!(always.next_change(tz, lunch), None);
        // Only a special date in the far future.
        let mut once = Hours::default();
        once.special.insert(
            NaiveDate::from_ymd_opt(2027, 6, 1).unwrap(),
            DayHours::parse("10:00-11:00").unwrap(),
        );
        assert_eq!(once.next_open(tz, lunch), Some(at("2027-06-01", "10:00")));
    }
}
