//! Ratings of finished tickets and the follow-up of bad ones (contract
//! §10). A rating is given once; a case only moves forward.

use chrono::{DateTime, Duration, Utc};

use super::{Hall, Outcome};
use crate::queue::error::QueueError;
use crate::queue::rating::{
    Case, CaseStatus, CaseStep, Rating, RatingSource, MAX_COMMENT, PAD_SECONDS,
};
use crate::queue::ticket::Status;

/// Who rates.
#[derive(Clone, Debug)]
pub enum RatingFrom {
    /// The citizen's phone, by the ticket's secret.
    Token(String),
    /// The window's rating pad: the ticket it completed last, within
    /// [`PAD_SECONDS`] (A5).
    Window(usize),
}

impl Hall {
    /// A case by id, while in memory (not closed, or closed lately).
    pub fn case(&self, id: u64) -> Option<&Case> {
        self.cases.get(&id)
    }

    /// The cases in memory, oldest first.
    pub fn cases(&self) -> impl Iterator<Item = &Case> + '_ {
        self.cases.values()
    }

    /// Rates a done ticket; a bad rating opens a case due in the hall's
    /// `followup_days`.
    pub fn rate(
        &mut self,
        from: RatingFrom,
        level: u8,
        comment: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<Outcome, QueueError> {
        if !(1..=5).contains(&level) {
            return Err(QueueError::BadRequest(
                "'level' must be 1 (非常不满意) to 5 (非常满意)".into(),
            ));
        }
        if comment
            .as_ref()
            .is_some_and(|c| c.chars().count() > MAX_COMMENT)
        {
            return Err(QueueError::BadRequest(format!(
                "'comment' must be at most {MAX_COMMENT} characters"
            )));
        }
        let (id, source) = match from {
            RatingFrom::Token(token) => (
                *self
                    .by_token
                    .get(&token)
                    .ok_or_else(|| QueueError::NotFound("no ticket has this token".into()))?,
                RatingSource::Phone,
            ),
            RatingFrom::Window(w) => (self.pad_ticket(w, now)?, RatingSource::Pad),
        };
        let within = self.spec.ratings.rate_within_days;
        let t = &self.tickets[&id];
        if t.status != Status::Done {
            return Err(QueueError::Conflict(format!(
                "ticket {} is {}; only a ticket that was served (done) can be rated",
                t.number,
                t.status.as_str()
            )));
        }
        // The citizen's word replaces the pad's, once; nothing replaces
        // the citizen's.
        let replaces = match &t.rating {
            None => None,
            Some(r) if r.source == RatingSource::Pad && source == RatingSource::Phone => {
                Some(r.clone())
            }
            Some(r) => {
                return Err(QueueError::Conflict(format!(
                    "ticket {} was already rated {}at {}; a rating is given once",
                    t.number,
                    if r.source == RatingSource::Phone {
                        "by the citizen "
                    } else {
                        ""
                    },
                    self.local_time(r.at)
                )))
            }
        };
        let done = t.finished_at.unwrap_or(t.created_at);
        if now - done > Duration::days(i64::from(within)) {
            return Err(QueueError::Conflict(format!(
                "ticket {} was done at {}; a ticket can be rated within {within} days",
                t.number,
                self.local_time(done)
            )));
        }
        let rating = Rating {
            level,
            comment: comment.filter(|c| !c.trim().is_empty()),
            at: now,
            source,
        };
        let mut out = Outcome {
            ticket: Some(id),
            tickets: vec![id],
            ..Outcome::default()
        };
        // A bad pad rating opened a case already: the citizen's bad word
        // becomes the case's (a good one leaves it for staff to close).
        let open_case = replaces
            .filter(|r| r.is_bad())
            .and_then(|_| self.cases.values().find(|c| c.ticket == id).map(|c| c.id));
        if let (Some(case_id), true) = (open_case, rating.is_bad()) {
            let case = self.cases.get_mut(&case_id).expect("found above");
            case.level = level;
            case.comment = rating.comment.clone();
            out.case = Some(case_id);
            out.cases.push(case_id);
        } else if rating.is_bad() && open_case.is_none() {
            let case_id = self.next_case_id;
            self.next_case_id += 1;
            let case = Case {
                id: case_id,
                ticket: id,
                number: t.number.clone(),
                service: t.service,
                window: t.window,
                level,
                comment: rating.comment.clone(),
                opened_at: now,
                due_at: now + Duration::days(i64::from(self.spec.ratings.followup_days)),
                history: vec![CaseStep {
                    status: CaseStatus::Open,
                    note: None,
                    at: now,
                }],
            };
            self.cases.insert(case_id, case);
            out.case = Some(case_id);
            out.cases.push(case_id);
        }
        self.tickets.get_mut(&id).expect("a rated ticket").rating = Some(rating);
        Ok(out)
    }

    /// Moves a case forward (steps may be skipped; `closed` is final).
    pub fn step_case(
        &mut self,
        id: u64,
        to: CaseStatus,
        note: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<Outcome, QueueError> {
        if note
            .as_ref()
            .is_some_and(|n| n.chars().count() > MAX_COMMENT)
        {
            return Err(QueueError::BadRequest(format!(
                "'note' must be at most {MAX_COMMENT} characters"
            )));
        }
        let case = self.cases.get_mut(&id).ok_or_else(|| {
            QueueError::NotFound(format!("no case '{id}' in hall {}", self.spec.id))
        })?;
        let from = case.status();
        if to <= from {
            let why = if from == CaseStatus::Closed {
                "closed is final".to_string()
            } else {
                format!("it can move on to {}", later_than(from))
            };
            return Err(QueueError::Conflict(format!(
                "case {id} is {}; a case moves only forward (open → contacted → rectified → closed): {why}",
                from.as_str()
            )));
        }
        case.history.push(CaseStep {
            status: to,
            note: note.filter(|n| !n.trim().is_empty()),
            at: now,
        });
        Ok(Outcome {
            case: Some(id),
            cases: vec![id],
            ..Outcome::default()
        })
    }

    /// The ticket a window's pad rates now: the one the window completed
    /// last, if that was within [`PAD_SECONDS`] (A5). An older one is the
    /// citizen's to rate, from the phone.
    fn pad_ticket(&self, w: usize, now: DateTime<Utc>) -> Result<u64, QueueError> {
        let wid = &self.spec.windows[w].id;
        let (done, id) = self
            .tickets
            .values()
            .filter(|t| t.window == Some(w) && t.status == Status::Done)
            .filter_map(|t| t.finished_at.map(|f| (f, t.id)))
            .max()
            .ok_or_else(|| {
                QueueError::Conflict(format!("window {wid} has completed no ticket to rate"))
            })?;
        if now - done > Duration::seconds(PAD_SECONDS) {
            return Err(QueueError::Conflict(format!(
                "window {wid} completed its last ticket more than {PAD_SECONDS} s ago; the pad rates only the ticket just served"
            )));
        }
        Ok(id)
    }
}

/// The steps after `from`, as a refusal names them.
fn later_than(from: CaseStatus) -> &'static str {
    match from {
        CaseStatus::Open => "contacted, rectified or closed",
        CaseStatus::Contacted => "rectified or closed",
        CaseStatus::Rectified | CaseStatus::Closed => "closed",
    }
}
