//! A ticket as its owner, or the staff serving it, sees it (§3), and the
//! ticket channel's messages (§4).

use bytes::Bytes;
use serde::Serialize;

use super::{encode, time, Tagged};
use crate::queue::{Hall, HallSpec, Ticket};

/// Where a called ticket should go.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct WindowRef<'a> {
    pub id: &'a str,
    pub label: &'a str,
    pub floor: i32,
    pub zone: &'a str,
    /// How to find the window's zone, where the config says.
    #[serde(rename = "where", skip_serializing_if = "Option::is_none")]
    pub where_: Option<&'a str>,
}

/// The guide of a floor's zone.
pub(super) fn guide<'a>(spec: &'a HallSpec, floor: i32, zone: &str) -> Option<&'a str> {
    spec.zone(floor, zone).and_then(|z| z.where_.as_deref())
}

impl<'a> WindowRef<'a> {
    fn of(spec: &'a HallSpec, w: usize) -> Self {
        let w = &spec.windows[w];
        WindowRef {
            id: &w.id,
            label: &w.label,
            floor: w.floor,
            zone: &w.zone,
            where_: guide(spec, w.floor, &w.zone),
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
    /// How to find the zone to wait in, where the config says.
    #[serde(rename = "where", skip_serializing_if = "Option::is_none")]
    pub where_: Option<&'a str>,
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
    /// The citizen's rating of a done ticket; `null` until rated (§10).
    pub rating: Option<super::RatingView<'a>>,
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
        where_: guide(spec, s.floor, &s.zone),
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
        rating: t.rating.as_ref().map(|r| super::RatingView::of(spec, r)),
    }
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
        #[serde(rename = "where", skip_serializing_if = "Option::is_none")]
        where_: Option<&'a str>,
        recall: u32,
    }
    let w = WindowRef::of(hall.spec(), t.window?);
    Some(encode(&Tagged {
        kind: "called",
        body: Called {
            number: &t.number,
            floor: w.floor,
            zone: w.zone,
            where_: w.where_,
            window: w,
            recall: t.recall,
        },
    }))
}
