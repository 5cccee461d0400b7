//! Domain events: what screens and phones are told. Each carries its floor's
//! and its hall's sequence number, assigned by the hall in order.

use chrono::{DateTime, Utc};

use super::ticket::Status;

/// One state change as seen from a floor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub floor: i32,
    /// Per hall and floor, gapless from 1.
    pub floor_seq: u64,
    /// Per hall, gapless from 1.
    pub hall_seq: u64,
    pub at: DateTime<Utc>,
    pub kind: EventKind,
}

/// What happened. Indices refer to the hall's spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// A window called (or re-announced) a number.
    Called {
        number: String,
        window: usize,
        service: usize,
        recall: u32,
        /// The floor speaks its calls.
        voice: bool,
    },
    /// A window paused or resumed.
    Window { window: usize, paused: bool },
    /// The ticket at a window changed status. `transferred_to` is set when the
    /// window's part of the visit ended by a transfer (status is then `Done`).
    Ticket {
        number: String,
        window: usize,
        status: Status,
        transferred_to: Option<usize>,
    },
    /// A service's waiting count changed.
    Waiting { service: usize, count: usize },
}
