//! §11's statistics: counts, waits and service times over a range of
//! dates, by service, window and hour.
//!
//! What counts where (the contract's rules): a ticket counts once, on the
//! date it was issued; its `issued` under the service it was issued for,
//! everything else under the service that has it now (that finished it,
//! after a transfer). The wait runs from issue (or check-in) to the first
//! call; the service from the start (or, never started, the call) to
//! done. Percentiles are nearest-rank over whole seconds.

use chrono::Timelike;
use chrono_tz::Tz;

use super::{from_ms, positive_rate, seconds_between};
use crate::queue::rating::POSITIVE_FROM;
use crate::queue::HallSpec;
use crate::store::TicketFact;

/// Counts and times of one group of tickets.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Group {
    pub issued: u64,
    pub served: u64,
    pub no_show: u64,
    pub cancelled: u64,
    pub expired: u64,
    waits: Vec<u32>,
    services: Vec<u32>,
    pub ratings: u64,
    positive: u64,
}

/// A window's part: what it finished.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WindowGroup {
    pub served: u64,
    services: Vec<u32>,
    pub ratings: u64,
    positive: u64,
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
    waits: Vec<u32>,
}

/// Exact percentiles of a list of seconds; `None` over nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Percentiles {
    pub p50: Option<u32>,
    pub p90: Option<u32>,
    pub max: Option<u32>,
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
    totals: Group,
    by_service: Vec<(String, Group)>,
    by_window: Vec<(String, WindowGroup)>,
    by_hour: Vec<HourGroup>,
}

/// The percentiles of `values` (sorted here).
fn percentiles(values: &mut [u32]) -> Percentiles {
    values.sort_unstable();
    let rank = |p: f64| {
        let n = values.len();
        (n > 0).then(|| values[((p * n as f64).ceil() as usize).clamp(1, n) - 1])
    };
    Percentiles {
        p50: rank(0.5),
        p90: rank(0.9),
        max: values.last().copied(),
    }
}

/// The entry of `name`, added at the end on first sight (a service or
/// window of the history that the config no longer has).
fn entry<'a, G: Default>(list: &'a mut Vec<(String, G)>, name: &str) -> &'a mut G {
    let i = match list.iter().position(|(n, _)| n == name) {
        Some(i) => i,
        None => {
            list.push((name.to_string(), G::default()));
            list.len() - 1
        }
    };
    &mut list[i].1
}

impl Stats {
    /// Empty statistics with every configured service and window listed,
    /// in config order.
    pub fn new(spec: &HallSpec) -> Stats {
        Stats {
            tz: spec.timezone,
            totals: Group::default(),
            by_service: spec
                .services
                .iter()
                .map(|s| (s.id.clone(), Group::default()))
                .collect(),
            by_window: spec
                .windows
                .iter()
                .map(|w| (w.id.clone(), WindowGroup::default()))
                .collect(),
            by_hour: vec![HourGroup::default(); 24],
        }
    }

    fn hour(&self, ms: i64) -> usize {
        from_ms(ms).with_timezone(&self.tz).hour() as usize
    }

    /// Counts one ticket.
    pub fn add(&mut self, t: &TicketFact<'_>) {
        let wait = t.first_called_at.map(|c| seconds_between(t.created_at, c));
        let done = t.status == "done";
        let service = match (done, t.started_at.or(t.called_at), t.finished_at) {
            (true, Some(from), Some(to)) => Some(seconds_between(from, to)),
            _ => None,
        };
        let positive = t.rating.is_some_and(|l| l >= POSITIVE_FROM);
        let (issued_hour, called_hour) = (
            self.hour(t.created_at),
            t.first_called_at.map(|c| self.hour(c)),
        );

        let count = |g: &mut Group| {
            match t.status {
                "done" => g.served += 1,
                "no_show" => g.no_show += 1,
                "cancelled" => g.cancelled += 1,
                "expired" => g.expired += 1,
                _ => {}
            }
            g.waits.extend(wait);
            g.services.extend(service);
            if t.rating.is_some() {
                g.ratings += 1;
                g.positive += u64::from(positive);
            }
        };
        self.totals.issued += 1;
        count(&mut self.totals);
        entry(&mut self.by_service, t.issued_service).issued += 1;
        count(entry(&mut self.by_service, t.service));
        if let (true, Some(w)) = (done, t.window) {
            let g = entry(&mut self.by_window, w);
            g.served += 1;
            g.services.extend(service);
            if t.rating.is_some() {
                g.ratings += 1;
                g.positive += u64::from(positive);
            }
        }
        let h = &mut self.by_hour[issued_hour];
        h.issued += 1;
        h.waits.extend(wait);
        if let Some(c) = called_hour {
            self.by_hour[c].called += 1;
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
                service: percentiles(&mut g.services),
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
                let p50 = percentiles(&mut g.waits).p50;
                (h as u32, &*g, p50)
            })
            .collect()
    }
}

fn summarize<'a>(name: &str, g: &'a mut Group) -> Summary<&'a Group> {
    Summary {
        name: name.to_string(),
        wait: percentiles(&mut g.waits),
        service: percentiles(&mut g.services),
        positive_rate: positive_rate(g.positive, g.ratings),
        group: &*g,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> std::sync::Arc<HallSpec> {
        crate::config::parse("demo", crate::demo::CONFIG)
            .unwrap()
            .halls[0]
            .clone()
    }

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
    fn nearest_rank_percentiles_are_exact_and_none_over_nothing() {
        let mut v: Vec<u32> = (1..=10).rev().collect();
        let p = percentiles(&mut v);
        assert_eq!((p.p50, p.p90, p.max), (Some(5), Some(9), Some(10)));
        assert_eq!(percentiles(&mut [7]).p90, Some(7));
        assert_eq!(percentiles(&mut []), Percentiles::default());
    }

    #[test]
    fn a_transferred_ticket_is_issued_under_its_first_service_and_served_under_its_last() {
        let spec = spec();
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
    fn only_a_done_ticket_has_a_service_time_and_unknown_names_are_kept() {
        let spec = spec();
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
