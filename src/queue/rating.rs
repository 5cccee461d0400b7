//! 好差评: a citizen's rating of a finished ticket, and the follow-up case
//! a bad one opens (contract §10).

use chrono::{DateTime, Utc};

/// Levels 1 and 2 are 差评: each opens a case.
pub const BAD_AT_MOST: u8 = 2;

/// The levels that count as positive in a 好评率 (基本满意 and better).
pub const POSITIVE_FROM: u8 = 3;

/// A window's pad rates the ticket the window completed last, within this
/// of its completion (A5).
pub const PAD_SECONDS: i64 = 120;

/// Who gave a rating (A5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RatingSource {
    /// The window's rating pad, on the counter.
    Pad,
    /// The citizen's phone, by the ticket's secret.
    Phone,
}

impl RatingSource {
    /// The wire and store spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RatingSource::Pad => "pad",
            RatingSource::Phone => "phone",
        }
    }

    /// Parses the store spelling.
    pub fn parse(s: &str) -> Option<RatingSource> {
        match s {
            "pad" => Some(RatingSource::Pad),
            "phone" => Some(RatingSource::Phone),
            _ => None,
        }
    }
}

/// A comment is kept up to this many characters (§10).
pub const MAX_COMMENT: usize = 500;

/// The word on a finished ticket: the pad's at the counter, or the
/// citizen's from the phone, which may replace the pad's once (A5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rating {
    /// 1 非常不满意 … 5 非常满意.
    pub level: u8,
    pub comment: Option<String>,
    pub at: DateTime<Utc>,
    pub source: RatingSource,
}

impl Rating {
    /// 差评.
    pub fn is_bad(&self) -> bool {
        self.level <= BAD_AT_MOST
    }
}

/// Where a case stands. Steps go forward only; any may be skipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CaseStatus {
    Open,
    Contacted,
    Rectified,
    /// Final.
    Closed,
}

impl CaseStatus {
    /// The wire and store spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            CaseStatus::Open => "open",
            CaseStatus::Contacted => "contacted",
            CaseStatus::Rectified => "rectified",
            CaseStatus::Closed => "closed",
        }
    }

    /// Parses the wire and store spelling.
    pub fn parse(s: &str) -> Option<CaseStatus> {
        Some(match s {
            "open" => CaseStatus::Open,
            "contacted" => CaseStatus::Contacted,
            "rectified" => CaseStatus::Rectified,
            "closed" => CaseStatus::Closed,
            _ => return None,
        })
    }
}

/// One step of a case's history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaseStep {
    pub status: CaseStatus,
    pub note: Option<String>,
    pub at: DateTime<Utc>,
}

/// The follow-up of one bad review: who it was about, and what staff did.
/// `service` and `window` are indices into the hall's spec, as on the
/// ticket when it was rated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Case {
    pub id: u64,
    pub ticket: u64,
    pub number: String,
    pub service: usize,
    pub window: Option<usize>,
    pub level: u8,
    pub comment: Option<String>,
    pub opened_at: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
    /// Oldest first; starts with the opening, so never empty.
    pub history: Vec<CaseStep>,
}

impl Case {
    /// The latest step.
    pub fn status(&self) -> CaseStatus {
        self.history
            .last()
            .map_or(CaseStatus::Open, |step| step.status)
    }

    /// Not closed, and past its due date.
    pub fn is_overdue(&self, now: DateTime<Utc>) -> bool {
        self.status() != CaseStatus::Closed && now > self.due_at
    }

    /// When the case last moved.
    pub fn updated_at(&self) -> DateTime<Utc> {
        self.history.last().map_or(self.opened_at, |s| s.at)
    }
}
