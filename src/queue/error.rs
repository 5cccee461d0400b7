//! Why a command was refused. Each variant maps to one contract error code;
//! the message tells the caller what to do.

use std::fmt;

use chrono::DateTime;
use chrono_tz::Tz;

/// A refused command. Refusal changes nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QueueError {
    /// Unknown hall, floor, service, window or ticket (404).
    NotFound(String),
    /// The action does not fit the current state (409).
    Conflict(String),
    /// A field has a value the domain cannot accept (400).
    BadRequest(String),
    /// The hall takes no walk-in tickets now (409 `closed`, contract §7);
    /// `next_open` is the next opening, if the hall has one, in the hall's
    /// time zone.
    Closed {
        message: String,
        next_open: Option<DateTime<Tz>>,
    },
    /// A cap of `[halls.citizens]` (409 `limit_reached`); the message
    /// starts with the cap's config key.
    LimitReached(String),
    /// A phone that had to be proven was not (422 `phone_unverified`).
    PhoneUnverified(String),
    /// Too many of something in too short a time (429, `Retry-After`).
    TooMany { message: String, retry_after: u64 },
}

impl fmt::Display for QueueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueueError::NotFound(m)
            | QueueError::Conflict(m)
            | QueueError::BadRequest(m)
            | QueueError::Closed { message: m, .. }
            | QueueError::LimitReached(m)
            | QueueError::PhoneUnverified(m)
            | QueueError::TooMany { message: m, .. } => f.write_str(m),
        }
    }
}

impl std::error::Error for QueueError {}
