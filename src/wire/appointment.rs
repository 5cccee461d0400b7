//! Bookings as the contract shows them (§8): a service's slots, a booking
//! as its citizen sees it, and the admin's day listing.

use serde::Serialize;

use super::notify::masked_phone;
use super::ticket::{guide, ticket_view, TicketView};
use super::{json, time, Reply};
use crate::queue::{Appointment, Hall, HallSpec, Slot};
use crate::store::BookingRow;

#[derive(Serialize)]
struct SlotView {
    start: String,
    end: String,
    capacity: u32,
    available: u32,
}

/// `GET …/services/{service}/slots`: the slots in order.
pub fn slot_list(spec: &HallSpec, capacity: u32, slots: &[(Slot, u32)]) -> Reply {
    let items: Vec<SlotView> = slots
        .iter()
        .map(|(s, available)| SlotView {
            start: time(spec, s.start),
            end: time(spec, s.end),
            capacity,
            available: *available,
        })
        .collect();
    json(200, &items)
}

/// A booking as its citizen sees it.
#[derive(Serialize)]
struct AppointmentView<'a> {
    code: &'a str,
    token: &'a str,
    hall: &'a str,
    service: &'a str,
    service_name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    service_name_en: Option<&'a str>,
    floor: i32,
    zone: &'a str,
    /// How to find the zone, where the config says.
    #[serde(rename = "where", skip_serializing_if = "Option::is_none")]
    where_: Option<&'a str>,
    start: String,
    end: String,
    status: &'static str,
    /// When a check-in is taken: from `early_minutes` before the slot to
    /// `late_minutes` after it.
    #[serde(skip_serializing_if = "Option::is_none")]
    check_in_opens: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    check_in_closes: Option<String>,
    appointment_url: String,
    qr_svg: String,
    /// The ticket of the check-in, with its token: it is the same
    /// citizen's.
    #[serde(skip_serializing_if = "Option::is_none")]
    ticket: Option<TicketView<'a>>,
}

/// `GET /appointments/{token}` and the answers of booking and cancelling.
pub fn appointment_view(hall: &Hall, a: &Appointment, status: u16) -> Reply {
    let spec = hall.spec();
    let s = &spec.services[a.service];
    let rules = s.appointments;
    json(
        status,
        &AppointmentView {
            code: &a.code,
            token: &a.token,
            hall: &spec.id,
            service: &s.id,
            service_name: &s.name,
            service_name_en: s.name_en.as_deref(),
            floor: s.floor,
            zone: &s.zone,
            where_: guide(spec, s.floor, &s.zone),
            start: time(spec, a.start),
            end: time(spec, a.end),
            status: a.status.as_str(),
            check_in_opens: rules.map(|r| time(spec, a.check_in_opens(&r))),
            check_in_closes: rules.map(|r| time(spec, a.check_in_closes(&r))),
            appointment_url: format!("/a/{}", a.token),
            qr_svg: format!("/api/v1/appointments/{}/qr.svg", a.token),
            ticket: a
                .ticket
                .and_then(|t| hall.ticket(t))
                .map(|t| ticket_view(hall, t, true)),
        },
    )
}

#[derive(Serialize)]
struct DayItem<'a> {
    code: &'a str,
    service: &'a str,
    start: String,
    end: String,
    status: &'a str,
    number: Option<&'a str>,
    phone: Option<String>,
    /// A real-name booking's holder (A4), for staff: never the whole ID.
    holder: Option<HolderItem<'a>>,
}

#[derive(Serialize)]
struct HolderItem<'a> {
    name: &'a str,
    id_number: &'a str,
}

/// `GET /halls/{hall}/appointments?date=`: the day's bookings, phones masked.
pub fn appointment_day(spec: &HallSpec, rows: &[BookingRow]) -> Reply {
    let items: Vec<DayItem<'_>> = rows
        .iter()
        .map(|r| DayItem {
            code: &r.code,
            service: &r.service,
            start: time(spec, r.start),
            end: time(spec, r.end),
            status: &r.status,
            number: r.number.as_deref(),
            phone: r.phone.as_deref().map(masked_phone),
            holder: r.holder.as_ref().map(|(name, id)| HolderItem {
                name,
                id_number: id,
            }),
        })
        .collect();
    json(200, &items)
}
