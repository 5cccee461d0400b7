//! Bookings (预约, contract §8): a citizen reserves a place in a slot of a
//! service and later checks in, which turns the booking into a ticket.
//! Slots are cut from the opening hours; this file holds the booking and
//! the arithmetic of slots, the commands are in `hall::booking`.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use chrono_tz::Tz;

use super::hours::{instant, Hours};
use super::spec::AppointmentSpec;

/// Where a booking is in its life. Only `Booked` changes again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BookingStatus {
    Booked,
    /// Turned into a ticket (`Appointment::ticket`).
    CheckedIn,
    Cancelled,
    /// Not checked in by the slot's end + `late_minutes`.
    Missed,
}

impl BookingStatus {
    /// The wire and store spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            BookingStatus::Booked => "booked",
            BookingStatus::CheckedIn => "checked_in",
            BookingStatus::Cancelled => "cancelled",
            BookingStatus::Missed => "missed",
        }
    }

    /// Parses the store spelling.
    pub fn parse(s: &str) -> Option<BookingStatus> {
        Some(match s {
            "booked" => BookingStatus::Booked,
            "checked_in" => BookingStatus::CheckedIn,
            "cancelled" => BookingStatus::Cancelled,
            "missed" => BookingStatus::Missed,
            _ => return None,
        })
    }

    /// The booking holds a place in its slot.
    pub fn holds_place(self) -> bool {
        matches!(self, BookingStatus::Booked | BookingStatus::CheckedIn)
    }
}

/// What a message to the booking's phone is about (§9).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BookingNotice {
    Booked,
    /// `remind_before_minutes` before the slot.
    Reminder,
    Missed,
}

/// One booking. `service` is an index into the hall's spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Appointment {
    /// Internal id, unique in the hall for the life of the data dir.
    pub id: u64,
    /// What the citizen tells staff or types at a kiosk: 6 characters of
    /// [`CODE_ALPHABET`], unique among the bookings the hall holds.
    pub code: String,
    /// The citizen's secret, as for tickets.
    pub token: String,
    pub service: usize,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub status: BookingStatus,
    /// Personal data: for messages only, never on a public channel or in a log.
    pub phone: Option<String>,
    /// The holder of a real-name booking (A4): a name, the ID number's
    /// keyed hash and masked form. Personal data, as `phone`.
    pub holder: Option<crate::queue::citizen::Holder>,
    /// The ticket check-in made.
    pub ticket: Option<u64>,
    /// The reminder before the slot was made (so it is made once).
    pub reminded: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Appointment {
    /// Check-in opens: `early_minutes` before the slot starts.
    pub fn check_in_opens(&self, a: &AppointmentSpec) -> DateTime<Utc> {
        self.start - Duration::minutes(a.early_minutes.into())
    }

    /// Check-in closes, and an unchecked booking is missed, at this instant:
    /// `late_minutes` after the slot ends.
    pub fn check_in_closes(&self, a: &AppointmentSpec) -> DateTime<Utc> {
        self.end + Duration::minutes(a.late_minutes.into())
    }
}

/// Characters of a booking code: no 0/O, 1/I/L look-alikes.
pub const CODE_ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";
/// Characters in a booking code.
pub const CODE_LEN: usize = 6;

/// A string is shaped like a booking code (and so is worth looking up).
pub fn is_code(s: &str) -> bool {
    s.len() == CODE_LEN && s.bytes().all(|b| CODE_ALPHABET.contains(&b))
}

/// A slot of a service on a day.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// Every slot of a hall-local date, in order: from each opening range's
/// start, `slot_minutes` long, each wholly inside its range.
pub fn slots_of(hours: &Hours, tz: Tz, a: &AppointmentSpec, date: NaiveDate) -> Vec<Slot> {
    let mut slots = Vec::new();
    for r in &hours.on(date).ranges {
        let mut m = r.start;
        while m + a.slot_minutes <= r.end {
            if let (Some(start), Some(end)) =
                (instant(tz, date, m), instant(tz, date, m + a.slot_minutes))
            {
                // A slot the clock change skipped (its start and end fall
                // on the same instant) is no slot.
                if end > start {
                    slots.push(Slot { start, end });
                }
            }
            m += a.slot_minutes;
        }
    }
    slots
}
