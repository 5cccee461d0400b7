//! Snapshots of a floor and of a hall (§4), also `GET …/floors/{floor}`.

use bytes::Bytes;
use serde::Serialize;

use super::{encode, time, Tagged};
use crate::queue::Hall;

#[derive(Serialize)]
struct WindowOnFloor<'a> {
    id: &'a str,
    label: &'a str,
    zone: &'a str,
    state: &'static str,
    number: Option<&'a str>,
    status: Option<&'static str>,
}

#[derive(Serialize)]
struct RecentView<'a> {
    seq: u64,
    number: &'a str,
    window: &'a str,
    label: &'a str,
    zone: &'a str,
    at: String,
}

#[derive(Serialize)]
struct WaitingView<'a> {
    service: &'a str,
    count: usize,
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name_en: Option<&'a str>,
    prefix: &'a str,
    eta_seconds: u64,
}

/// The body of a floor snapshot (without `type`), shared by the floor
/// channel, the hall channel's `floors` and `GET …/floors/{floor}`.
#[derive(Serialize)]
pub struct FloorSnapshot<'a> {
    seq: u64,
    hall: &'a str,
    floor: i32,
    name: &'a str,
    announce: &'static str,
    languages: Vec<&'static str>,
    windows: Vec<WindowOnFloor<'a>>,
    recent: Vec<RecentView<'a>>,
    waiting: Vec<WaitingView<'a>>,
}

/// Builds a floor's snapshot; `None` when the hall has no such floor.
pub fn floor_snapshot(hall: &Hall, floor: i32) -> Option<FloorSnapshot<'_>> {
    let spec = hall.spec();
    let f = spec.floor(floor)?;
    let windows = spec
        .windows
        .iter()
        .enumerate()
        .filter(|(_, w)| w.floor == floor)
        .map(|(i, w)| {
            let st = hall.window(i);
            let current = st.current.and_then(|id| hall.ticket(id));
            WindowOnFloor {
                id: &w.id,
                label: &w.label,
                zone: &w.zone,
                state: if st.paused { "paused" } else { "open" },
                number: current.map(|t| t.number.as_str()),
                status: current.map(|t| t.status.as_str()),
            }
        })
        .collect();
    let recent = hall
        .recent(floor)
        .map(|c| {
            let w = &spec.windows[c.window];
            RecentView {
                seq: c.seq,
                number: &c.number,
                window: &w.id,
                label: &w.label,
                zone: &w.zone,
                at: time(spec, c.at),
            }
        })
        .collect();
    let waiting = hall
        .floor_services(floor)
        .iter()
        .map(|&s| {
            let svc = &spec.services[s];
            let count = hall.waiting_count(s);
            WaitingView {
                service: &svc.id,
                count,
                name: &svc.name,
                name_en: svc.name_en.as_deref(),
                prefix: &svc.prefix,
                eta_seconds: hall.clock(s).eta_seconds(count, hall.open_windows(s)),
            }
        })
        .collect();
    Some(FloorSnapshot {
        seq: hall.floor_seq(floor),
        hall: &spec.id,
        floor,
        name: &f.name,
        announce: f.announce.as_str(),
        languages: f.languages.iter().map(|l| l.as_str()).collect(),
        windows,
        recent,
        waiting,
    })
}

/// `{"type":"snapshot", …}` of a floor.
pub fn floor_snapshot_message(hall: &Hall, floor: i32) -> Option<Bytes> {
    Some(encode(&Tagged {
        kind: "snapshot",
        body: floor_snapshot(hall, floor)?,
    }))
}

/// `{"type":"snapshot","seq","hall","floors":[…]}` of a whole hall.
pub fn hall_snapshot_message(hall: &Hall) -> Bytes {
    #[derive(Serialize)]
    struct HallSnapshot<'a> {
        seq: u64,
        hall: &'a str,
        name: &'a str,
        floors: Vec<Tagged<'a, FloorSnapshot<'a>>>,
    }
    let spec = hall.spec();
    let floors = spec
        .floors
        .iter()
        .filter_map(|f| floor_snapshot(hall, f.number))
        .map(|body| Tagged {
            kind: "snapshot",
            body,
        })
        .collect();
    encode(&Tagged {
        kind: "snapshot",
        body: HallSnapshot {
            seq: hall.hall_seq(),
            hall: &spec.id,
            name: &spec.name,
            floors,
        },
    })
}
