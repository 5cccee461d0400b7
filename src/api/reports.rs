//! Statistics (§11): the numbers over a range of dates, the CSV export
//! (streamed a day at a time), and the dashboard's charts.

use std::sync::Arc;

use bytes::Bytes;
use chrono::{NaiveDate, Utc};
use warp::http::HeaderMap;
use warp::Filter;

use super::auth::hall_admin;
use super::{Answer, Api, Request};
use crate::engine::HallEngine;
use crate::report::{chart, csv, Dates, Stats, MAX_DATES};
use crate::wire::{self, ApiError};

/// A range's dates from `?from=YYYY-MM-DD&to=YYYY-MM-DD` (hall-local, both
/// included; a missing `from` is today, a missing `to` is `from`), with
/// the other parameters a route takes (`extra`); anything else is refused.
pub fn dates(
    h: &HallEngine,
    query: &str,
    extra: &[&str],
    max: Option<i64>,
) -> Result<(Dates, Vec<(String, String)>), ApiError> {
    let day = |v: &str, name: &str| {
        NaiveDate::parse_from_str(v, "%Y-%m-%d").map_err(|_| {
            ApiError::bad_request(format!("'{name}' must be a date YYYY-MM-DD, not '{v}'"))
        })
    };
    let (mut from, mut to, mut rest) = (None, None, Vec::new());
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "from" => from = Some(day(v, "from")?),
            "to" => to = Some(day(v, "to")?),
            k if extra.contains(&k) => rest.push((k.to_string(), v.to_string())),
            k => {
                return Err(ApiError::bad_request(format!(
                    "unknown parameter '{k}'; this route takes from and to{}",
                    extra.iter().map(|e| format!(", {e}")).collect::<String>()
                )))
            }
        }
    }
    let from = match from {
        Some(f) => f,
        None => h.read(|hall| hall.local_day(Utc::now())),
    };
    let dates = Dates {
        from,
        to: to.unwrap_or(from),
    };
    if dates.to < dates.from {
        return Err(ApiError::bad_request(format!(
            "'to' ({}) is before 'from' ({})",
            dates.to, dates.from
        )));
    }
    if let Some(max) = max.filter(|&m| dates.len() > m) {
        return Err(ApiError::bad_request(format!(
            "a range holds at most {max} dates; {} to {} holds {}",
            dates.from,
            dates.to,
            dates.len()
        )));
    }
    Ok((dates, rest))
}

fn admin<'a>(api: &'a Api, req: &Request<'_>, hall: &str) -> Result<&'a HallEngine, ApiError> {
    hall_admin(
        &api.engine,
        hall,
        req.header("authorization"),
        "read the statistics",
    )
}

/// Gathers the statistics of a range from the store.
async fn gather(api: &Api, h: &HallEngine, dates: Dates) -> Result<Stats, ApiError> {
    Ok(api.engine.stats(h.spec.clone(), dates).await?)
}

/// `GET /halls/{hall}/stats?from=…&to=…`
pub async fn stats(api: &Api, req: &Request<'_>, hall: &str) -> Result<Answer, ApiError> {
    let h = admin(api, req, hall)?;
    let (dates, _) = dates(h, req.query, &[], Some(MAX_DATES))?;
    let mut stats = gather(api, h, dates).await?;
    Ok(wire::stats_body(dates, &mut stats).into())
}

/// `GET /halls/{hall}/stats/chart.svg?kind=issued|waits&from=…&to=…`: a
/// bar chart by hall-local hour of the tickets issued, or of the median
/// wait (minutes), for the dashboard.
pub async fn chart(api: &Api, req: &Request<'_>, hall: &str) -> Result<Answer, ApiError> {
    let h = admin(api, req, hall)?;
    let (dates, rest) = dates(h, req.query, &["kind"], Some(MAX_DATES))?;
    let kind = rest
        .iter()
        .find(|(k, _)| k == "kind")
        .map_or("issued", |(_, v)| v.as_str())
        .to_string();
    if !matches!(kind.as_str(), "issued" | "waits") {
        return Err(ApiError::bad_request("'kind' must be issued or waits"));
    }
    let mut stats = gather(api, h, dates).await?;
    let hours = stats.by_hour();
    let labels: Vec<String> = hours.iter().map(|(h, _, _)| format!("{h:02}")).collect();
    let svg = if kind == "issued" {
        let values: Vec<Option<f64>> = hours
            .iter()
            .map(|(_, g, _)| Some(g.issued as f64))
            .collect();
        chart::bars(
            "取号 Tickets issued by hour",
            "张 tickets",
            &labels,
            &values,
        )
    } else {
        let values: Vec<Option<f64>> = hours
            .iter()
            .map(|(_, _, p50)| p50.map(|s| (f64::from(s) / 6.0).round() / 10.0))
            .collect();
        chart::bars("等候 Median wait by hour", "分钟 minutes", &labels, &values)
    };
    Ok(Answer::Other {
        content_type: "image/svg+xml",
        cache: None,
        body: Bytes::from(svg),
    })
}

/// A day's rows are sent in pieces of about this size.
const CHUNK: usize = 64 * 1024;

/// `GET /api/v1/halls/{hall}/stats.csv?from=…&to=…` (admin): one row per
/// ticket, streamed. Each date is read on the reports' connection and
/// then sent while the connection is free for the next reader: a slow
/// download holds a day of rows in memory at most, never the store.
pub fn export_route(
    api: Arc<Api>,
) -> impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection> + Clone {
    warp::get()
        .and(warp::path!("api" / "v1" / "halls" / String / "stats.csv"))
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::header::headers_cloned())
        .map(move |hall: String, query: String, headers: HeaderMap| {
            match export(&api, &hall, &query, &headers) {
                Ok(r) => r,
                // Answered as every other route's refusal is.
                Err(e) => warp::Reply::into_response(super::respond(
                    e.into(),
                    "/api/v1/halls/{hall}/stats.csv",
                )),
            }
        })
}

fn export(
    api: &Api,
    hall: &str,
    query: &str,
    headers: &HeaderMap,
) -> Result<warp::reply::Response, ApiError> {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    let h = hall_admin(&api.engine, hall, auth, "export the statistics")?;
    let (dates, _) = dates(h, query, &[], Some(MAX_DATES))?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    let reports = api.engine.reports();
    let turns = api.engine.report_turns();
    let rt = tokio::runtime::Handle::current();
    let spec = h.spec.clone();
    tokio::task::spawn_blocking(move || {
        if tx
            .blocking_send(Bytes::from_static(csv::HEADER.as_bytes()))
            .is_err()
        {
            return;
        }
        for day in dates.days() {
            let d = day.to_string();
            let mut rows = String::new();
            // A turn per date (A7): a long export shares the store.
            let wait = tokio::time::timeout(
                crate::engine::REPORT_TURN_WAIT,
                turns.clone().acquire_owned(),
            );
            let Ok(Ok(turn)) = rt.block_on(wait) else {
                tracing::warn!(hall = %spec.id, "statistics export waited too long for a report reader; ended short");
                return;
            };
            let read = {
                let mut b = reports.lock().unwrap_or_else(|p| p.into_inner());
                b.visit_tickets(&spec.id, &d, &d, true, &mut |t| {
                    csv::row(&mut rows, spec.timezone, t)
                })
            };
            // Sending waits on the client: not with a turn held.
            drop(turn);
            if let Err(e) = read {
                // The status line is gone: end the body short, so the
                // client sees a broken download, not a short file.
                tracing::warn!(hall = %spec.id, error = %e, "statistics export failed");
                return;
            }
            let bytes = Bytes::from(rows);
            let mut at = 0;
            while at < bytes.len() {
                let end = (at + CHUNK).min(bytes.len());
                // A whole row per piece is not needed: a byte stream.
                if tx.blocking_send(bytes.slice(at..end)).is_err() {
                    return; // the client went away
                }
                at = end;
            }
        }
    });
    let stream = futures_util::stream::poll_fn(move |cx| {
        rx.poll_recv(cx).map(|o| o.map(Ok::<Bytes, std::io::Error>))
    });
    let mut r = warp::Reply::into_response(warp::reply::stream(stream));
    let hdrs = r.headers_mut();
    hdrs.insert(
        "content-type",
        "text/csv; charset=utf-8".parse().expect("a header value"),
    );
    hdrs.insert("cache-control", "no-store".parse().expect("a header value"));
    hdrs.insert(
        "content-disposition",
        format!(
            "attachment; filename=\"{}-{}-{}.csv\"",
            spec_file_name(hall),
            dates.from,
            dates.to
        )
        .parse()
        .expect("a header value"),
    );
    Ok(r)
}

/// A hall id as a file name part (ids are `[a-z0-9-]`, but the header
/// must hold whatever a config says).
fn spec_file_name(hall: &str) -> String {
    hall.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect()
}
