//! The floor and hall channels' event messages (§4).

use bytes::Bytes;
use serde::Serialize;

use super::{encode, time};
use crate::queue::{Event, EventKind, HallSpec};

/// The announcement id a stored floor message names, if it is a spoken
/// call: the id between `/api/v1/announcements/` and `.wav`.
pub fn announcement_id(floor_msg: &[u8]) -> Option<String> {
    const START: &[u8] = b"/api/v1/announcements/";
    let at = floor_msg.windows(START.len()).position(|w| w == START)? + START.len();
    let rest = &floor_msg[at..];
    let end = rest.windows(5).position(|w| w == b".wav\"")?;
    String::from_utf8(rest[..end].to_vec()).ok()
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

/// `GET /announcements/stats`: the announcement cache's counters.
pub fn announcement_stats(s: &crate::announcer::Stats) -> super::Reply {
    #[derive(Serialize)]
    struct Stats {
        hits: u64,
        misses: u64,
        entries: usize,
        bytes: usize,
    }
    super::json(
        200,
        &Stats {
            hits: s.hits,
            misses: s.misses,
            entries: s.entries,
            bytes: s.bytes,
        },
    )
}
