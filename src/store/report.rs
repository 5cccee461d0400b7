//! What the store reads back for reports: statistics, the CSV export,
//! the ratings summary and the case listing (§10, §11). Names of
//! services and windows stay as stored: a report covers days when the
//! config may have been another.

use chrono::{DateTime, Utc};

use crate::queue::{CaseStatus, CaseStep};

/// One ticket as statistics and the export see it, borrowed from the
/// row being read (a year is 730,000 of them: no copy per row). Times are
/// Unix milliseconds.
#[derive(Clone, Copy, Debug)]
pub struct TicketFact<'a> {
    /// The hall-local date it was issued, `YYYY-MM-DD`.
    pub day: &'a str,
    pub id: i64,
    pub number: &'a str,
    /// The service that has it now, or finished it.
    pub service: &'a str,
    pub issued_service: &'a str,
    pub channel: &'a str,
    pub priority: &'a str,
    pub status: &'a str,
    pub window: Option<&'a str>,
    pub created_at: i64,
    pub first_called_at: Option<i64>,
    pub called_at: Option<i64>,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub rating: Option<u8>,
}

/// Ratings given in a range, counted by window, service and level.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RatingCount {
    pub window: Option<String>,
    pub service: String,
    pub level: u8,
    pub count: u64,
}

/// A follow-up case as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaseRow {
    pub id: u64,
    pub number: String,
    pub service: String,
    pub window: Option<String>,
    pub level: u8,
    pub comment: Option<String>,
    pub status: CaseStatus,
    pub opened_at: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
    pub history: Vec<CaseStep>,
}
