//! One citizen's place in line.

use chrono::{DateTime, NaiveDate, Utc};

use super::rating::Rating;

/// Where a ticket is in its life. `Waiting` may follow `Called`/`Serving`
/// again after a transfer; `Done`, `NoShow`, `Cancelled` and `Expired` are
/// final.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    Waiting,
    Called,
    Serving,
    Done,
    NoShow,
    Cancelled,
    /// Still waiting when its hall-local day ended (contract §7).
    Expired,
}

impl Status {
    /// The wire and store spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Waiting => "waiting",
            Status::Called => "called",
            Status::Serving => "serving",
            Status::Done => "done",
            Status::NoShow => "no_show",
            Status::Cancelled => "cancelled",
            Status::Expired => "expired",
        }
    }

    /// Parses the store spelling.
    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "waiting" => Status::Waiting,
            "called" => Status::Called,
            "serving" => Status::Serving,
            "done" => Status::Done,
            "no_show" => Status::NoShow,
            "cancelled" => Status::Cancelled,
            "expired" => Status::Expired,
            _ => return None,
        })
    }

    /// At a window right now.
    pub fn is_at_window(self) -> bool {
        matches!(self, Status::Called | Status::Serving)
    }

    /// Nothing more will happen to this ticket.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Status::Done | Status::NoShow | Status::Cancelled | Status::Expired
        )
    }
}

/// Green channel (elderly, disabled, veterans) or normal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    /// The green channel (绿色通道: the elderly, the disabled, veterans),
    /// spelled "priority" on the wire. Sorts first: called before every
    /// normal ticket a window serves.
    Green,
    Normal,
}

impl Priority {
    /// The wire and store spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Green => "priority",
            Priority::Normal => "normal",
        }
    }

    /// Parses the wire spelling.
    pub fn parse(s: &str) -> Option<Priority> {
        match s {
            "priority" => Some(Priority::Green),
            "normal" => Some(Priority::Normal),
            _ => None,
        }
    }
}

/// How the citizen took the number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Channel {
    Kiosk,
    Mobile,
    Appointment,
}

impl Channel {
    /// The wire and store spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Kiosk => "kiosk",
            Channel::Mobile => "mobile",
            Channel::Appointment => "appointment",
        }
    }

    /// Parses the wire spelling.
    pub fn parse(s: &str) -> Option<Channel> {
        match s {
            "kiosk" => Some(Channel::Kiosk),
            "mobile" => Some(Channel::Mobile),
            "appointment" => Some(Channel::Appointment),
            _ => None,
        }
    }
}

/// The latest call of a ticket, kept so that a floor's "recent calls" can be
/// rebuilt exactly after a restart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallMark {
    pub floor: i32,
    pub seq: u64,
    pub at: DateTime<Utc>,
}

/// A ticket. `service` and `window` are indices into the hall's spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ticket {
    /// Internal id, unique in the hall for the life of the data dir.
    pub id: u64,
    /// The citizen's private key to this ticket (≥128 random bits).
    pub token: String,
    /// What screens show, e.g. `A023`. Kept through transfers.
    pub number: String,
    /// Hall-local day the number belongs to.
    pub day: NaiveDate,
    /// The service the ticket waits for or is served for now.
    pub service: usize,
    /// The service it was issued for (statistics count it there as issued,
    /// and under the one that finished it as served).
    pub issued_service: usize,
    pub priority: Priority,
    pub channel: Channel,
    pub status: Status,
    /// The window that called it, while called or serving (and after, for
    /// history).
    pub window: Option<usize>,
    /// How many times the current call was re-announced.
    pub recall: u32,
    /// Place in line: smaller is older. Kept through transfers, so a citizen
    /// who already waited is not sent to the back of the next line.
    pub line_pos: u64,
    pub created_at: DateTime<Utc>,
    /// The latest call to the current service's window; reset by a transfer.
    pub called_at: Option<DateTime<Utc>>,
    /// The first call of the visit, kept through transfers: the citizen's
    /// wait ends here.
    pub first_called_at: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub last_call: Option<CallMark>,
    /// Personal data: stored for notifications, never shown on a public
    /// channel and never logged.
    pub notify_phone: Option<String>,
    /// The start of the booked slot, for a ticket of a check-in (§8): once
    /// it has started, the ticket is called before walk-ins.
    pub slot: Option<DateTime<Utc>>,
    /// The "N ahead of you" reminder of its current service was made, or
    /// is not to be made (it was that close already when it joined).
    pub reminded: bool,
    /// The citizen's rating, once given (§10).
    pub rating: Option<Rating>,
}

impl Ticket {
    /// The key that orders a service's line: green channel first, then oldest.
    pub fn line_key(&self) -> (Priority, u64) {
        (self.priority, self.line_pos)
    }
}
