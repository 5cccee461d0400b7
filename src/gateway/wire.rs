//! The JSON shapes of tickets, floor snapshots and channel events
//! (contract §3 and §4). Every message a screen or phone receives is
//! encoded here, once, and the bytes are shared by every subscriber.

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use crate::queue::{Event, EventKind, Hall, HallSpec, Ticket};

/// RFC 3339 in the hall's own time zone, as the contract asks.
pub fn time(spec: &HallSpec, t: DateTime<Utc>) -> String {
    t.with_timezone(&spec.timezone)
        .to_rfc3339_opts(SecondsFormat::Millis, false)
}

/// The announcement id a stored floor message names, if it is a spoken
/// call: the id between `/api/v1/announcements/` and `.wav`.
pub fn announcement_id(floor_msg: &[u8]) -> Option<String> {
    const START: &[u8] = b"/api/v1/announcements/";
    let at = floor_msg.windows(START.len()).position(|w| w == START)? + START.len();
    let rest = &floor_msg[at..];
    let end = rest.windows(5).position(|w| w == b".wav\"")?;
    String::from_utf8(rest[..end].to_vec()).ok()
}

/// Where a called ticket should go.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct WindowRef<'a> {
    pub id: &'a str,
    pub label: &'a str,
    pub floor: i32,
    pub zone: &'a str,
}

impl<'a> WindowRef<'a> {
    fn of(spec: &'a HallSpec, w: usize) -> Self {
        let w = &spec.windows[w];
        WindowRef {
            id: &w.id,
            label: &w.label,
            floor: w.floor,
            zone: &w.zone,
        }
    }
}

/// A ticket as its owner (or the staff serving it) sees it.
#[derive(Serialize, Debug)]
pub struct TicketView<'a> {
    pub number: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<&'a str>,
    pub hall: &'a str,
    pub service: &'a str,
    pub service_name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_name_en: Option<&'a str>,
    pub floor: i32,
    pub zone: &'a str,
    pub status: &'static str,
    pub priority: &'static str,
    pub channel: &'static str,
    pub ahead: usize,
    pub eta_seconds: u64,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub called_at: Option<String>,
    pub recall: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ticket_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qr_svg: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<WindowRef<'a>>,
}

/// Builds the view of a ticket. `private` adds the token and the links that
/// carry it: only for the citizen, never for a window or a screen.
pub fn ticket_view<'a>(hall: &'a Hall, t: &'a Ticket, private: bool) -> TicketView<'a> {
    let spec = hall.spec();
    let s = &spec.services[t.service];
    let ahead = hall.ahead(t);
    TicketView {
        number: &t.number,
        token: private.then_some(t.token.as_str()),
        hall: &spec.id,
        service: &s.id,
        service_name: &s.name,
        service_name_en: s.name_en.as_deref(),
        floor: s.floor,
        zone: &s.zone,
        status: t.status.as_str(),
        priority: t.priority.as_str(),
        channel: t.channel.as_str(),
        ahead,
        eta_seconds: hall.eta_seconds(t, ahead),
        created_at: time(spec, t.created_at),
        called_at: t.called_at.map(|c| time(spec, c)),
        recall: t.recall,
        ticket_url: private.then(|| format!("/t/{}", t.token)),
        qr_svg: private.then(|| format!("/api/v1/tickets/{}/qr.svg", t.token)),
        window: match (t.status.is_at_window(), t.window) {
            (true, Some(w)) => Some(WindowRef::of(spec, w)),
            _ => None,
        },
    }
}

#[derive(Serialize)]
struct Tagged<'a, T: Serialize> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(flatten)]
    body: T,
}

fn encode<T: Serialize>(v: &T) -> Bytes {
    Bytes::from(serde_json::to_vec(v).expect("wire types always serialize"))
}

/// `{"type":"ticket", …ticket…}` for the ticket channel.
pub fn ticket_message(hall: &Hall, t: &Ticket) -> Bytes {
    encode(&Tagged {
        kind: "ticket",
        body: ticket_view(hall, t, true),
    })
}

/// `{"type":"called", …}` for the ticket channel, when the ticket is called
/// or re-announced.
pub fn ticket_called_message(hall: &Hall, t: &Ticket) -> Option<Bytes> {
    #[derive(Serialize)]
    struct Called<'a> {
        number: &'a str,
        window: WindowRef<'a>,
        floor: i32,
        zone: &'a str,
        recall: u32,
    }
    let w = WindowRef::of(hall.spec(), t.window?);
    Some(encode(&Tagged {
        kind: "called",
        body: Called {
            number: &t.number,
            floor: w.floor,
            zone: w.zone,
            window: w,
            recall: t.recall,
        },
    }))
}

/// An announcement attached to a `called` event on a voice floor.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    pub text: String,
    pub audio: String,
}

#[derive(Serialize)]
struct EventBody<'a> {
    seq: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    floor: Option<i32>,
    at: String,
    #[serde(flatten)]
    kind: KindBody<'a>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum KindBody<'a> {
    Called {
        number: &'a str,
        window: &'a str,
        label: &'a str,
        zone: &'a str,
        service: &'a str,
        recall: u32,
        announcement: Option<&'a Announcement>,
    },
    Window {
        window: &'a str,
        state: &'static str,
    },
    Ticket {
        number: &'a str,
        window: &'a str,
        status: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        transferred_to: Option<&'a str>,
    },
    Waiting {
        service: &'a str,
        count: usize,
    },
}

fn kind_body<'a>(
    spec: &'a HallSpec,
    kind: &'a EventKind,
    announcement: Option<&'a Announcement>,
) -> KindBody<'a> {
    match kind {
        EventKind::Called {
            number,
            window,
            service,
            recall,
            ..
        } => {
            let w = &spec.windows[*window];
            KindBody::Called {
                number,
                window: &w.id,
                label: &w.label,
                zone: &w.zone,
                service: &spec.services[*service].id,
                recall: *recall,
                announcement,
            }
        }
        EventKind::Window { window, paused } => KindBody::Window {
            window: &spec.windows[*window].id,
            state: if *paused { "paused" } else { "open" },
        },
        EventKind::Ticket {
            number,
            window,
            status,
            transferred_to,
        } => KindBody::Ticket {
            number,
            window: &spec.windows[*window].id,
            status: status.as_str(),
            transferred_to: transferred_to.map(|s| spec.services[s].id.as_str()),
        },
        EventKind::Waiting { service, count } => KindBody::Waiting {
            service: &spec.services[*service].id,
            count: *count,
        },
    }
}

/// The floor channel's and the hall channel's encodings of one event.
pub fn event_messages(
    spec: &HallSpec,
    e: &Event,
    announcement: Option<&Announcement>,
) -> (Bytes, Bytes) {
    let at = time(spec, e.at);
    let floor = encode(&EventBody {
        seq: e.floor_seq,
        floor: None,
        at: at.clone(),
        kind: kind_body(spec, &e.kind, announcement),
    });
    let hall = encode(&EventBody {
        seq: e.hall_seq,
        floor: Some(e.floor),
        at,
        kind: kind_body(spec, &e.kind, announcement),
    });
    (floor, hall)
}

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
