//! The boards and consoles the API answers (§3, §7): the list of halls,
//! a hall's layout and hours, a window's state and console, the end of a
//! day.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{json, ticket_view, time, Reply, TicketView};
use crate::queue::{Hall, HallSpec};

#[derive(Serialize)]
struct HallItem<'a> {
    id: &'a str,
    name: &'a str,
    floors: Vec<i32>,
}

/// `GET /halls`
pub fn hall_list<'a>(specs: impl Iterator<Item = &'a HallSpec>) -> Reply {
    let items: Vec<HallItem<'_>> = specs
        .map(|spec| HallItem {
            id: &spec.id,
            name: &spec.name,
            floors: spec.floors.iter().map(|f| f.number).collect(),
        })
        .collect();
    json(200, &items)
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
    /// How the service takes bookings (§8), when it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    appointments: Option<BookingRules>,
}

#[derive(Serialize)]
struct BookingRules {
    slot_minutes: u32,
    per_slot: u32,
    days_ahead: u32,
    early_minutes: u32,
    late_minutes: u32,
    /// Booked by real name: a booking names its holder (A4).
    require_id: bool,
}

/// A window as the hall's board lists it; the console adds to it.
#[derive(Serialize)]
struct WindowItem<'a> {
    id: &'a str,
    label: &'a str,
    floor: i32,
    zone: &'a str,
    services: Vec<&'a str>,
    state: &'static str,
}

fn window_item(hall: &Hall, w: usize) -> WindowItem<'_> {
    let spec = hall.spec();
    let ws = &spec.windows[w];
    WindowItem {
        id: &ws.id,
        label: &ws.label,
        floor: ws.floor,
        zone: &ws.zone,
        services: ws
            .services
            .iter()
            .map(|&s| spec.services[s].id.as_str())
            .collect(),
        state: if hall.window(w).paused {
            "paused"
        } else {
            "open"
        },
    }
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
    /// A phone may take a number here without a token (§8).
    mobile_tickets: bool,
    zones: Vec<ZoneItem<'a>>,
    /// The "N ahead of you" reminder (§9), also shown on the phone page;
    /// `null` without `[halls.notify]`.
    remind_ahead: Option<u32>,
    /// A phone named without a token must be verified by a code (A2):
    /// what `/join` and `/book` ask for.
    verify_phones: bool,
}

#[derive(Serialize)]
struct ZoneItem<'a> {
    floor: i32,
    id: &'a str,
    name: &'a str,
    #[serde(rename = "where", skip_serializing_if = "Option::is_none")]
    where_: Option<&'a str>,
}

/// `GET /halls/{hall}`: the layout with the config's field names, no
/// tokens, and the hours as of `now`.
pub fn hall_board(hall: &Hall, now: DateTime<Utc>) -> Reply {
    let spec = hall.spec();
    let tz = spec.timezone;
    let hours = spec.hours.as_ref();
    let today = hours.map(|hr| hr.on(now.with_timezone(&tz).date_naive()));
    {
        let board = HallBoard {
            open: hours.is_none_or(|hr| hr.is_open(tz, now)),
            hours_today: today.map(|d| d.text.as_str()),
            next_change: hours
                .and_then(|hr| hr.next_change(tz, now))
                .map(|t| time(spec, t)),
            takes_tickets: hours.is_none_or(|hr| hr.takes_tickets(tz, now)),
            mobile_tickets: spec.mobile_tickets,
            remind_ahead: spec.notify.as_ref().map(|n| n.remind_ahead),
            verify_phones: hall.verifies_phones(),
            zones: spec
                .zones
                .iter()
                .map(|z| ZoneItem {
                    floor: z.floor,
                    id: &z.id,
                    name: &z.name,
                    where_: z.where_.as_deref(),
                })
                .collect(),
            next_open: hours
                .and_then(|hr| hr.next_open(tz, now))
                .map(|t| time(spec, t)),
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
                    appointments: s.appointments.map(|a| BookingRules {
                        slot_minutes: a.slot_minutes,
                        per_slot: a.per_slot,
                        days_ahead: a.days_ahead,
                        early_minutes: a.early_minutes,
                        late_minutes: a.late_minutes,
                        require_id: a.require_id,
                    }),
                })
                .collect(),
            windows: (0..spec.windows.len())
                .map(|w| window_item(hall, w))
                .collect(),
        };
        json(200, &board)
    }
}

#[derive(Serialize)]
struct Current<'a> {
    number: &'a str,
    status: &'static str,
}

#[derive(Serialize)]
struct WindowView<'a> {
    #[serde(flatten)]
    item: WindowItem<'a>,
    current: Option<Current<'a>>,
    /// Tickets this window could call now.
    waiting: usize,
}

fn window_view(hall: &Hall, w: usize) -> WindowView<'_> {
    let ws = &hall.spec().windows[w];
    let st = hall.window(w);
    WindowView {
        item: window_item(hall, w),
        current: st.current.and_then(|id| hall.ticket(id)).map(|t| Current {
            number: &t.number,
            status: t.status.as_str(),
        }),
        waiting: ws.services.iter().map(|&s| hall.waiting_count(s)).sum(),
    }
}

#[derive(Serialize)]
struct WindowReply<'a> {
    window: WindowView<'a>,
    ticket: Option<TicketView<'a>>,
}

pub fn window_reply(hall: &Hall, w: usize, ticket: Option<u64>) -> Reply {
    let ticket = ticket
        .and_then(|id| hall.ticket(id))
        .map(|t| ticket_view(hall, t, false));
    json(
        200,
        &WindowReply {
            window: window_view(hall, w),
            ticket,
        },
    )
}

#[derive(Serialize)]
struct LineItem<'a> {
    number: &'a str,
    service: &'a str,
    priority: &'static str,
    created_at: String,
}

#[derive(Serialize)]
struct Console<'a> {
    window: WindowView<'a>,
    ticket: Option<TicketView<'a>>,
    line: Vec<LineItem<'a>>,
}

/// `GET /halls/{hall}/windows/{window}`: the window, its current ticket
/// and the next `line_len` tickets it would call, in order.
pub fn window_console(hall: &Hall, w: usize, line_len: usize) -> Reply {
    {
        let spec = hall.spec();
        let line = hall
            .window_line(w, line_len)
            .into_iter()
            .map(|t| LineItem {
                number: &t.number,
                service: &spec.services[t.service].id,
                priority: t.priority.as_str(),
                created_at: time(spec, t.created_at),
            })
            .collect();
        let ticket = hall
            .window(w)
            .current
            .and_then(|id| hall.ticket(id))
            .map(|t| ticket_view(hall, t, false));
        json(
            200,
            &Console {
                window: window_view(hall, w),
                ticket,
                line,
            },
        )
    }
}

#[derive(Serialize)]
struct DayClosed {
    expired: usize,
    done: usize,
}

/// `POST /halls/{hall}/close-day`: how many tickets the day's end ended.
pub fn day_closed(expired: usize, done: usize) -> Reply {
    json(200, &DayClosed { expired, done })
}
