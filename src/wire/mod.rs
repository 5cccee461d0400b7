//! The contract's shapes (API.md §3, §4, §7): every JSON body the HTTP API
//! answers or takes, every message a screen or phone receives, the error
//! body and the HTTP reply. Only this module knows serde for the
//! contract; `api` and `gateway` both build on it and never on each other.
//! Messages are encoded here once, and the bytes are shared by every
//! subscriber.

mod appointment;
mod board;
mod error;
mod event;
mod notify;
mod report;
mod request;
mod snapshot;
mod ticket;

pub use appointment::{appointment_day, appointment_view, slot_list};
pub use board::{day_closed, hall_board, hall_list, window_console, window_reply};
pub use error::ApiError;
pub use event::{announcement_id, announcement_stats, event_messages, Announcement};
pub use notify::{
    booking_body, masked_phone, outbox_list, outbox_message, rendered, ticket_draft, verify_body,
    Notice,
};
pub use report::{
    case_list, case_reply, case_row, rating_reply, ratings_summary, stats_body, RatingView,
};
pub use request::{
    book_request, issue_request, parse_body, BookBody, CallBody, CaseStepBody, CheckInBody, Empty,
    IssueBody, PhoneCodeBody, RatingBody, TransferBody,
};
pub use snapshot::{floor_snapshot, floor_snapshot_message, hall_snapshot_message, FloorSnapshot};
pub use ticket::{ticket_called_message, ticket_message, ticket_view, TicketView, WindowRef};

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use crate::queue::HallSpec;

/// An HTTP answer: a status and a JSON body, kept verbatim for idempotent
/// repeats.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub body: Bytes,
    /// A 429's `Retry-After`, in whole seconds (never kept: a refusal
    /// stores no idempotency key).
    pub retry_after: Option<u64>,
}

impl Reply {
    /// A status and a body, no header of its own.
    pub fn new(status: u16, body: Bytes) -> Reply {
        Reply {
            status,
            body,
            retry_after: None,
        }
    }
}

/// Serializes a JSON body with a status.
pub fn json<T: Serialize>(status: u16, v: &T) -> Reply {
    Reply::new(
        status,
        Bytes::from(serde_json::to_vec(v).expect("contract types serialize")),
    )
}

/// RFC 3339 in the hall's own time zone, as the contract asks.
pub fn time(spec: &HallSpec, t: DateTime<Utc>) -> String {
    t.with_timezone(&spec.timezone)
        .to_rfc3339_opts(SecondsFormat::Millis, false)
}

#[derive(Serialize)]
pub(crate) struct Tagged<'a, T: Serialize> {
    #[serde(rename = "type")]
    pub kind: &'a str,
    #[serde(flatten)]
    pub body: T,
}

pub(crate) fn encode<T: Serialize>(v: &T) -> Bytes {
    Bytes::from(serde_json::to_vec(v).expect("wire types always serialize"))
}
