//! §11's statistics: counts, waits and service times over a range of
//! dates, by service, window and hour.
//!
//! What counts where (the contract's rules): a ticket counts once, on the
//! date it was issued; its `issued` under the service it was issued for,
//! everything else under the service that has it now (that finished it,
//! after a transfer). The wait runs from issue (or check-in) to the first
//! call; the service from the start (or, never started, the call) to
//! done. Percentiles are nearest-rank over whole seconds.

use std::collections::HashMap;

use chrono::Offset;
use chrono::TimeZone;
use chrono_tz::Tz;

pub use super::seconds::Percentiles;
use super::seconds::Seconds;
use super::{positive_rate, service_seconds, wait_seconds};
use crate::queue::rating::POSITIVE_FROM;
use crate::queue::HallSpec;
use crate::store::from_ms;
use crate::store::TicketFact;

/// Counts and times of one group of tickets.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Group {
    pub issued: u64,
    pub served: u64,
    pub no_show: u64,
    pub cancelled: u64,
    pub expired: u64,
    pub(super) waits: Seconds,
    pub(super) services: Seconds,
    pub ratings: u64,
    pub(super) positive: u64,
}

impl Group {
    fn absorb(&mut self, g: Group) {
        self.issued += g.issued;
        self.served += g.served;
        self.no_show += g.no_show;
        self.cancelled += g.cancelled;
        self.expired += g.expired;
        self.waits.absorb(g.waits);
        self.services.absorb(g.services);
        self.ratings += g.ratings;
        self.positive += g.positive;
    }
}

/// A window's part: what it finished.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WindowGroup {
    pub served: u64,
    pub(super) services: Seconds,
    pub ratings: u64,
    pub(super) positive: u64,
}

/// One hall-local hour of the range's days.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HourGroup {
    /// Tickets issued in this hour.
    pub issued: u64,
    /// Tickets first called in this hour (recalls and calls after a
    /// transfer not counted).
    pub called: u64,
    /// Waits of the tickets issued in this hour.
    pub(super) waits: Seconds,
}

/// The statistics as answered.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary<G> {
    pub name: String,
    pub group: G,
    pub wait: Percentiles,
    pub service: Percentiles,
    pub positive_rate: Option<f64>,
}

/// Statistics being gathered, one ticket at a time.
#[derive(Clone, Debug)]
pub struct Stats {
    tz: Tz,
    pub(super) totals: Group,
    pub(super) by_service: Vec<(String, Group)>,
    pub(super) by_window: Vec<(String, WindowGroup)>,
    pub(super) by_hour: Vec<HourGroup>,
    /// Positions in `by_service` and `by_window` by id: a year is
    /// 730,000 lookups of each.
    service_at: HashMap<String, usize>,
    window_at: HashMap<String, usize>,
    /// The hall's UTC offset (ms) of the quarter hour last asked, which
    /// is the next row's too (rows come in time order); every real
    /// clock change falls on a quarter hour.
    offset: Option<(i64, i64)>,
}

/// The entry of `name`, added at the end on first sight (a service or
/// window of the history that the config no longer has).
fn entry<'a, G: Default>(
    list: &'a mut Vec<(String, G)>,
    at: &mut HashMap<String, usize>,
    name: &str,
) -> &'a mut G {
    let i = match at.get(name) {
        Some(&i) => i,
        None => {
            list.push((name.to_string(), G::default()));
            at.insert(name.to_string(), list.len() - 1);
            list.len() - 1
        }
    };
    &mut list[i].1
}

/// Where each name of a list is.
fn positions<G>(list: &[(String, G)]) -> HashMap<String, usize> {
    list.iter()
        .enumerate()
        .map(|(i, (n, _))| (n.clone(), i))
        .collect()
}

impl Stats {
    /// Empty statistics with every configured service and window listed,
    /// in config order.
    pub fn new(spec: &HallSpec) -> Stats {
        let mut stats = Stats::empty(spec.timezone);
        stats.by_service = spec
            .services
            .iter()
            .map(|s| (s.id.clone(), Group::default()))
            .collect();
        stats.by_window = spec
            .windows
            .iter()
            .map(|w| (w.id.clone(), WindowGroup::default()))
            .collect();
        stats.service_at = positions(&stats.by_service);
        stats.window_at = positions(&stats.by_window);
        stats
    }

    /// Empty statistics listing no service or window yet.
    pub(super) fn empty(tz: Tz) -> Stats {
        Stats {
            tz,
            totals: Group::default(),
            by_service: Vec::new(),
            by_window: Vec::new(),
            by_hour: vec![HourGroup::default(); 24],
            service_at: HashMap::new(),
            window_at: HashMap::new(),
            offset: None,
        }
    }

    /// Sets a service's or window's group read back from a digest.
    pub(super) fn set_service(&mut self, name: &str, g: Group) {
        *entry(&mut self.by_service, &mut self.service_at, name) = g;
    }

    pub(super) fn set_window(&mut self, name: &str, g: WindowGroup) {
        *entry(&mut self.by_window, &mut self.window_at, name) = g;
    }

    /// The hall-local hour of an instant.
    fn hour(&mut self, ms: i64) -> usize {
        const QUARTER: i64 = 15 * 60 * 1000;
        let quarter = ms.div_euclid(QUARTER);
        let offset = match self.offset {
            Some((q, off)) if q == quarter => off,
            _ => {
                let off = self
                    .tz
                    .offset_from_utc_datetime(&from_ms(ms).naive_utc())
                    .fix()
                    .local_minus_utc() as i64
                    * 1000;
                self.offset = Some((quarter, off));
                off
            }
        };
        (ms + offset).div_euclid(3_600_000).rem_euclid(24) as usize
    }

    /// Counts one ticket.
    pub fn add(&mut self, t: &TicketFact<'_>) {
        let wait = wait_seconds(t);
        let done = t.status == "done";
        let service = service_seconds(t);
        let positive = t.rating.is_some_and(|l| l >= POSITIVE_FROM);
        let issued_hour = self.hour(t.created_at);
        let called_hour = t.first_called_at.map(|c| self.hour(c));

        let count = |g: &mut Group| {
            match t.status {
                "done" => g.served += 1,
                "no_show" => g.no_show += 1,
                "cancelled" => g.cancelled += 1,
                "expired" => g.expired += 1,
                _ => {}
            }
            if let Some(w) = wait {
                g.waits.add(w);
            }
            if let Some(s) = service {
                g.services.add(s);
            }
            if t.rating.is_some() {
                g.ratings += 1;
                g.positive += u64::from(positive);
            }
        };
        self.totals.issued += 1;
        count(&mut self.totals);
        entry(&mut self.by_service, &mut self.service_at, t.issued_service).issued += 1;
        count(entry(&mut self.by_service, &mut self.service_at, t.service));
        if let (true, Some(w)) = (done, t.window) {
            let g = entry(&mut self.by_window, &mut self.window_at, w);
            g.served += 1;
            if let Some(s) = service {
                g.services.add(s);
            }
            if t.rating.is_some() {
                g.ratings += 1;
                g.positive += u64::from(positive);
            }
        }
        let h = &mut self.by_hour[issued_hour];
        h.issued += 1;
        if let Some(w) = wait {
            h.waits.add(w);
        }
        if let Some(c) = called_hour {
            self.by_hour[c].called += 1;
        }
    }

    /// Adds another part's statistics (of other dates) to these.
    pub fn merge(&mut self, other: Stats) {
        self.totals.absorb(other.totals);
        for (name, g) in other.by_service {
            entry(&mut self.by_service, &mut self.service_at, &name).absorb(g);
        }
        for (name, g) in other.by_window {
            let mine = entry(&mut self.by_window, &mut self.window_at, &name);
            mine.served += g.served;
            mine.services.absorb(g.services);
            mine.ratings += g.ratings;
            mine.positive += g.positive;
        }
        for (mine, h) in self.by_hour.iter_mut().zip(other.by_hour) {
            mine.issued += h.issued;
            mine.called += h.called;
            mine.waits.absorb(h.waits);
        }
    }

    /// The totals.
    pub fn totals(&mut self) -> Summary<&Group> {
        summarize("total", &mut self.totals)
    }

    /// Per service, config order first.
    pub fn by_service(&mut self) -> Vec<Summary<&Group>> {
        self.by_service
            .iter_mut()
            .map(|(name, g)| summarize(name, g))
            .collect()
    }

    /// Per window, config order first.
    pub fn by_window(&mut self) -> Vec<Summary<&WindowGroup>> {
        self.by_window
            .iter_mut()
            .map(|(name, g)| Summary {
                name: name.clone(),
                wait: Percentiles::default(),
                service: g.services.percentiles(),
                positive_rate: positive_rate(g.positive, g.ratings),
                group: &*g,
            })
            .collect()
    }

    /// The 24 hall-local hours in order, with the median wait of each.
    pub fn by_hour(&mut self) -> Vec<(u32, &HourGroup, Option<u32>)> {
        self.by_hour
            .iter_mut()
            .enumerate()
            .map(|(h, g)| {
                let p50 = g.waits.percentiles().p50;
                (h as u32, &*g, p50)
            })
            .collect()
    }
}

/// Asserts that two statistics answer the same in every view.
#[cfg(test)]
pub(crate) fn assert_same(a: &mut Stats, b: &mut Stats) {
    assert_eq!(a.totals(), b.totals());
    assert_eq!(a.by_service(), b.by_service());
    assert_eq!(a.by_window(), b.by_window());
    assert_eq!(a.by_hour(), b.by_hour());
}

fn summarize<'a>(name: &str, g: &'a mut Group) -> Summary<&'a Group> {
    Summary {
        name: name.to_string(),
        wait: g.waits.percentiles(),
        service: g.services.percentiles(),
        positive_rate: positive_rate(g.positive, g.ratings),
        group: &*g,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fact<'a>(status: &'a str, service: &'a str, issued: &'a str) -> TicketFact<'a> {
        TicketFact {
            day: "2026-12-02",
            id: 1,
            number: "A001",
            service,
            issued_service: issued,
            channel: "kiosk",
            priority: "normal",
            status,
            window: Some("3-01"),
            // 09:00 in Shanghai.
            created_at: 1_764_637_200_000,
            first_called_at: Some(1_764_637_200_000 + 600_000),
            called_at: Some(1_764_637_200_000 + 900_000),
            started_at: Some(1_764_637_200_000 + 960_000),
            finished_at: Some(1_764_637_200_000 + 1_260_000),
            rating: None,
        }
    }

    #[test]
    fn a_transferred_ticket_is_issued_under_its_first_service_and_served_under_its_last() {
        let spec = crate::demo::spec();
        let mut s = Stats::new(&spec);
        let mut t = fact("done", "social", "business");
        t.rating = Some(2);
        s.add(&t);
        let services = s.by_service();
        let business = services.iter().find(|g| g.name == "business").unwrap();
        assert_eq!((business.group.issued, business.group.served), (1, 0));
        let social = services.iter().find(|g| g.name == "social").unwrap();
        assert_eq!((social.group.issued, social.group.served), (0, 1));
        // The wait to the first call (10 min), the service from the start
        // (5 min), a bad rating.
        assert_eq!(social.wait.p50, Some(600));
        assert_eq!(social.service.p50, Some(300));
        assert_eq!(social.positive_rate, Some(0.0));
        let totals = s.totals();
        assert_eq!(
            (
                totals.group.issued,
                totals.group.served,
                totals.group.ratings
            ),
            (1, 1, 1)
        );
        let hours = s.by_hour();
        assert_eq!(hours[9].1.issued, 1, "issued at 09:00 hall time");
        assert_eq!(hours[9].1.called, 1);
        assert_eq!(hours[9].2, Some(600));
    }

    #[test]
    fn statistics_read_in_parts_and_merged_are_those_read_whole() {
        let spec = crate::demo::spec();
        let facts: Vec<TicketFact<'_>> = [("done", "a"), ("no_show", "business"), ("done", "gone")]
            .iter()
            .enumerate()
            .map(|(i, (status, service))| {
                let mut f = fact(status, service, service);
                f.created_at += i as i64 * 3_600_000;
                f.rating = Some(i as u8 + 2);
                f
            })
            .collect();
        let mut whole = Stats::new(&spec);
        facts.iter().for_each(|f| whole.add(f));
        let mut first = Stats::new(&spec);
        let mut second = Stats::new(&spec);
        first.add(&facts[0]);
        facts[1..].iter().for_each(|f| second.add(f));
        first.merge(second);
        assert_same(&mut first, &mut whole);
    }

    #[test]
    fn only_a_done_ticket_has_a_service_time_and_unknown_names_are_kept() {
        let spec = crate::demo::spec();
        let mut s = Stats::new(&spec);
        s.add(&fact("no_show", "gone", "gone"));
        let services = s.by_service();
        let gone = services.last().unwrap();
        assert_eq!(gone.name, "gone");
        assert_eq!((gone.group.issued, gone.group.no_show), (1, 1));
        assert_eq!(gone.service.p50, None);
        assert_eq!(gone.wait.p50, Some(600));
        assert_eq!(s.by_window()[0].group.served, 0);
    }
}
