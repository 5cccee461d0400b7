//! The queue domain: halls, tickets, windows and the rules of calling.
//!
//! Pure code: no I/O, no clock (time is an argument), no JSON, no
//! randomness (tokens come from the caller). Everything here is tested by
//! fast unit tests; see `tests.rs`.

pub mod appointment;
pub mod citizen;
pub mod error;
pub mod eta;
pub mod event;
pub mod hall;
pub mod hours;
pub mod rating;
pub mod spec;
pub mod ticket;

#[cfg(test)]
mod booking_tests;
#[cfg(test)]
mod citizen_tests;
#[cfg(test)]
mod rating_tests;
#[cfg(test)]
mod tests;

pub use appointment::{Appointment, BookingNotice, BookingStatus, Slot};
pub use citizen::{CitizenRules, Holder, HolderRequest, Mark};
pub use error::QueueError;
pub use event::{Event, EventKind};
pub use hall::{
    BookRequest, BookingRef, CodeCheck, Counter, DayEnd, Hall, IssueRequest, Outcome, PhoneClaim,
    RatingFrom, RecentCall, Restored, SentCode, WindowState,
};
pub use hours::{DayHours, Hours};
pub use rating::{Case, CaseStatus, CaseStep, Rating};
pub use spec::{
    Announce, AppointmentSpec, FloorSpec, HallSpec, KioskSpec, Language, NotifySpec, RatingsSpec,
    ServiceSpec, WindowSpec, ZoneSpec,
};
pub use ticket::{CallMark, Channel, Priority, Status, Ticket};
