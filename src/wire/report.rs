//! Ratings, cases, the ratings summary and the statistics (§10, §11).

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{json, time, Reply};
use crate::queue::{Case, CaseStep, HallSpec, Rating};
use crate::report::stats::{Group, HourGroup, Percentiles, WindowGroup};
use crate::report::{Dates, RatingSummary, Stats, Summary};
use crate::store::CaseRow;

/// A rating as answered (201).
pub fn rating_reply(spec: &HallSpec, r: &Rating) -> Reply {
    json(201, &RatingView::of(spec, r))
}

/// A ticket's rating inside its view: the citizen's own.
#[derive(Serialize, Debug)]
pub struct RatingView<'a> {
    pub level: u8,
    pub comment: Option<&'a str>,
    pub at: String,
    /// `pad` or `phone` (A5).
    pub source: &'static str,
}

impl<'a> RatingView<'a> {
    pub fn of(spec: &HallSpec, r: &'a Rating) -> Self {
        RatingView {
            level: r.level,
            comment: r.comment.as_deref(),
            at: time(spec, r.at),
            source: r.source.as_str(),
        }
    }
}

/// A case in memory as the store would list it.
pub fn case_row(spec: &HallSpec, c: &Case) -> CaseRow {
    CaseRow {
        id: c.id,
        number: c.number.clone(),
        service: spec.services[c.service].id.clone(),
        window: c.window.map(|w| spec.windows[w].id.clone()),
        level: c.level,
        comment: c.comment.clone(),
        status: c.status(),
        opened_at: c.opened_at,
        due_at: c.due_at,
        history: c.history.clone(),
    }
}

#[derive(Serialize)]
struct StepView<'a> {
    status: &'static str,
    note: Option<&'a str>,
    at: String,
}

#[derive(Serialize)]
struct CaseView<'a> {
    id: String,
    number: &'a str,
    service: &'a str,
    window: Option<&'a str>,
    level: u8,
    comment: Option<&'a str>,
    status: &'static str,
    opened_at: String,
    due_at: String,
    overdue: bool,
    history: Vec<StepView<'a>>,
}

fn case_view<'a>(spec: &HallSpec, c: &'a CaseRow, now: DateTime<Utc>) -> CaseView<'a> {
    let step = |s: &'a CaseStep| StepView {
        status: s.status.as_str(),
        note: s.note.as_deref(),
        at: time(spec, s.at),
    };
    CaseView {
        id: c.id.to_string(),
        number: &c.number,
        service: &c.service,
        window: c.window.as_deref(),
        level: c.level,
        comment: c.comment.as_deref(),
        status: c.status.as_str(),
        opened_at: time(spec, c.opened_at),
        due_at: time(spec, c.due_at),
        overdue: c.status != crate::queue::CaseStatus::Closed && now > c.due_at,
        history: c.history.iter().map(step).collect(),
    }
}

/// One case (200), as a step answers it.
pub fn case_reply(spec: &HallSpec, c: &CaseRow, now: DateTime<Utc>) -> Reply {
    json(200, &case_view(spec, c, now))
}

/// The case listing, newest first as given.
pub fn case_list(spec: &HallSpec, cases: &[CaseRow], now: DateTime<Utc>) -> Reply {
    let list: Vec<CaseView<'_>> = cases.iter().map(|c| case_view(spec, c, now)).collect();
    json(200, &list)
}

/// The public ratings summary: counts and rates only.
pub fn ratings_summary(dates: Dates, s: &RatingSummary) -> Reply {
    #[derive(Serialize)]
    struct WindowRate<'a> {
        window: &'a str,
        label: &'a str,
        count: u64,
        positive_rate: Option<f64>,
    }
    #[derive(Serialize)]
    struct ServiceRate<'a> {
        service: &'a str,
        count: u64,
        positive_rate: Option<f64>,
    }
    #[derive(Serialize)]
    struct View<'a> {
        from: String,
        to: String,
        count: u64,
        positive_rate: Option<f64>,
        levels: std::collections::BTreeMap<String, u64>,
        by_window: Vec<WindowRate<'a>>,
        by_service: Vec<ServiceRate<'a>>,
    }
    json(
        200,
        &View {
            from: dates.from.to_string(),
            to: dates.to.to_string(),
            count: s.all.count,
            positive_rate: s.all.positive_rate(),
            levels: (1..=5).map(|l| (l.to_string(), s.levels[l - 1])).collect(),
            by_window: s
                .by_window
                .iter()
                .map(|(w, label, t)| WindowRate {
                    window: w,
                    label,
                    count: t.count,
                    positive_rate: t.positive_rate(),
                })
                .collect(),
            by_service: s
                .by_service
                .iter()
                .map(|(id, t)| ServiceRate {
                    service: id,
                    count: t.count,
                    positive_rate: t.positive_rate(),
                })
                .collect(),
        },
    )
}

#[derive(Serialize)]
struct Waits {
    p50: Option<u32>,
    p90: Option<u32>,
    max: Option<u32>,
}

#[derive(Serialize)]
struct Times {
    p50: Option<u32>,
    p90: Option<u32>,
}

#[derive(Serialize)]
struct Counts {
    issued: u64,
    served: u64,
    no_show: u64,
    cancelled: u64,
    expired: u64,
    wait_seconds: Waits,
    service_seconds: Times,
    ratings: u64,
    positive_rate: Option<f64>,
}

fn counts(s: &Summary<&Group>) -> Counts {
    let g = s.group;
    Counts {
        issued: g.issued,
        served: g.served,
        no_show: g.no_show,
        cancelled: g.cancelled,
        expired: g.expired,
        wait_seconds: waits(s.wait),
        service_seconds: times(s.service),
        ratings: g.ratings,
        positive_rate: s.positive_rate,
    }
}

fn waits(p: Percentiles) -> Waits {
    Waits {
        p50: p.p50,
        p90: p.p90,
        max: p.max,
    }
}

fn times(p: Percentiles) -> Times {
    Times {
        p50: p.p50,
        p90: p.p90,
    }
}

/// §11's statistics body.
pub fn stats_body(dates: Dates, stats: &mut Stats) -> Reply {
    #[derive(Serialize)]
    struct ServiceCounts {
        service: String,
        #[serde(flatten)]
        counts: Counts,
    }
    #[derive(Serialize)]
    struct WindowCounts {
        window: String,
        served: u64,
        service_seconds: Times,
        ratings: u64,
        positive_rate: Option<f64>,
    }
    #[derive(Serialize)]
    struct Hour {
        hour: u32,
        issued: u64,
        called: u64,
        wait_seconds_p50: Option<u32>,
    }
    #[derive(Serialize)]
    struct View {
        from: String,
        to: String,
        totals: Counts,
        by_service: Vec<ServiceCounts>,
        by_window: Vec<WindowCounts>,
        by_hour: Vec<Hour>,
    }
    let window = |s: Summary<&WindowGroup>| WindowCounts {
        window: s.name,
        served: s.group.served,
        service_seconds: times(s.service),
        ratings: s.group.ratings,
        positive_rate: s.positive_rate,
    };
    let hour = |(hour, g, p50): (u32, &HourGroup, Option<u32>)| Hour {
        hour,
        issued: g.issued,
        called: g.called,
        wait_seconds_p50: p50,
    };
    let totals = counts(&stats.totals());
    let by_service = stats
        .by_service()
        .into_iter()
        .map(|s| ServiceCounts {
            counts: counts(&s),
            service: s.name,
        })
        .collect();
    let by_window = stats.by_window().into_iter().map(window).collect();
    let by_hour = stats.by_hour().into_iter().map(hour).collect();
    json(
        200,
        &View {
            from: dates.from.to_string(),
            to: dates.to.to_string(),
            totals,
            by_service,
            by_window,
            by_hour,
        },
    )
}
