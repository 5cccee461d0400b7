//! Public boards: the list of halls, a hall's layout, a floor's snapshot.

use serde::Serialize;

use super::error::ApiError;
use super::{json, Answer, Api};
use crate::gateway::wire;

#[derive(Serialize)]
struct HallItem<'a> {
    id: &'a str,
    name: &'a str,
    floors: Vec<i32>,
}

/// `GET /halls`
pub fn list(api: &Api) -> Answer {
    let items: Vec<HallItem<'_>> = api
        .engine
        .halls()
        .iter()
        .map(|h| HallItem {
            id: &h.spec.id,
            name: &h.spec.name,
            floors: h.spec.floors.iter().map(|f| f.number).collect(),
        })
        .collect();
    json(200, &items).into()
}

#[derive(Serialize)]
struct FloorItem<'a> {
    number: i32,
    name: &'a str,
    announce: &'static str,
    languages: Vec<&'static str>,
}

#[derive(Serialize)]
struct ServiceItem<'a> {
    id: &'a str,
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name_en: Option<&'a str>,
    prefix: &'a str,
    floor: i32,
    zone: &'a str,
    avg_service_seconds: u32,
    waiting: usize,
}

#[derive(Serialize)]
struct WindowItem<'a> {
    id: &'a str,
    label: &'a str,
    floor: i32,
    zone: &'a str,
    services: Vec<&'a str>,
    state: &'static str,
}

#[derive(Serialize)]
struct HallBoard<'a> {
    id: &'a str,
    name: &'a str,
    timezone: &'a str,
    floors: Vec<FloorItem<'a>>,
    services: Vec<ServiceItem<'a>>,
    windows: Vec<WindowItem<'a>>,
    /// Inside an opening range now (contract §7).
    open: bool,
    /// The hours string in effect today; `null` without hours.
    hours_today: Option<&'a str>,
    /// The next opening or closing; `null` without hours or with none ahead.
    next_change: Option<String>,
    /// Beyond the contract: a walk-in ticket would be issued now (open,
    /// and not in the last minutes), and when the hall next opens — what
    /// the kiosk and the screens show.
    takes_tickets: bool,
    next_open: Option<String>,
}

/// `GET /halls/{hall}`: the layout with the config's field names, no tokens.
pub fn hall(api: &Api, id: &str) -> Result<Answer, ApiError> {
    let h = api
        .engine
        .hall(id)
        .ok_or_else(|| ApiError::not_found(format!("no hall '{id}'")))?;
    let spec = &h.spec;
    let now = chrono::Utc::now();
    let tz = spec.timezone;
    let hours = spec.hours.as_ref();
    let today = hours.map(|hr| hr.on(now.with_timezone(&tz).date_naive()));
    Ok(h.read(|hall| {
        let board = HallBoard {
            open: hours.is_none_or(|hr| hr.is_open(tz, now)),
            hours_today: today.map(|d| d.text.as_str()),
            next_change: hours
                .and_then(|hr| hr.next_change(tz, now))
                .map(|t| wire::time(spec, t)),
            takes_tickets: hours.is_none_or(|hr| hr.takes_tickets(tz, now)),
            next_open: hours
                .and_then(|hr| hr.next_open(tz, now))
                .map(|t| wire::time(spec, t)),
            id: &spec.id,
            name: &spec.name,
            timezone: spec.timezone.name(),
            floors: spec
                .floors
                .iter()
                .map(|f| FloorItem {
                    number: f.number,
                    name: &f.name,
                    announce: f.announce.as_str(),
                    languages: f.languages.iter().map(|l| l.as_str()).collect(),
                })
                .collect(),
            services: spec
                .services
                .iter()
                .enumerate()
                .map(|(i, s)| ServiceItem {
                    id: &s.id,
                    name: &s.name,
                    name_en: s.name_en.as_deref(),
                    prefix: &s.prefix,
                    floor: s.floor,
                    zone: &s.zone,
                    avg_service_seconds: s.avg_service_seconds,
                    waiting: hall.waiting_count(i),
                })
                .collect(),
            windows: spec
                .windows
                .iter()
                .enumerate()
                .map(|(i, w)| WindowItem {
                    id: &w.id,
                    label: &w.label,
                    floor: w.floor,
                    zone: &w.zone,
                    services: w
                        .services
                        .iter()
                        .map(|&s| spec.services[s].id.as_str())
                        .collect(),
                    state: if hall.window(i).paused {
                        "paused"
                    } else {
                        "open"
                    },
                })
                .collect(),
        };
        json(200, &board).into()
    }))
}

/// `GET /halls/{hall}/floors/{floor}`: the floor channel's snapshot.
pub fn floor(api: &Api, id: &str, floor: &str) -> Result<Answer, ApiError> {
    let h = api
        .engine
        .hall(id)
        .ok_or_else(|| ApiError::not_found(format!("no hall '{id}'")))?;
    let n: i32 = floor
        .parse()
        .map_err(|_| ApiError::not_found(format!("no floor '{floor}' in hall {id}")))?;
    h.read(|hall| {
        let body = wire::floor_snapshot_message(hall, n)
            .ok_or_else(|| ApiError::not_found(format!("no floor {n} in hall {id}")))?;
        Ok(Answer::Json(crate::engine::Reply { status: 200, body }))
    })
}
