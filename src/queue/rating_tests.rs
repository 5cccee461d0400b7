//! Rating rules (contract §10): who may rate what, once; the pad's ticket;
//! cases opened by bad reviews and moved only forward; what a day's end
//! forgets.

use chrono::{DateTime, Duration, Utc};

use super::tests::{spec, t0};
use super::*;

const WA: usize = 2;

/// A kiosk's ticket of service "a".
fn walk_in() -> IssueRequest {
    IssueRequest {
        service: "a".into(),
        priority: Priority::Normal,
        channel: Channel::Kiosk,
        notify_phone: None,
        phone_token: None,
        origin: None,
        outside_hours: false,
        slot: None,
    }
}

/// A hall with one ticket of "a" served to the end at window A.
fn served() -> (Hall, DateTime<Utc>, u64) {
    let mut hall = Hall::new(spec());
    let mut now = t0();
    let req = walk_in();
    let id = hall.issue(req, "tok".into(), now).unwrap().ticket.unwrap();
    now += Duration::minutes(10);
    hall.call(WA, None, now).unwrap();
    now += Duration::minutes(5);
    hall.complete(WA, now).unwrap();
    (hall, now, id)
}

/// Rates the served ticket 1; the case it opened.
fn bad_review(hall: &mut Hall, now: DateTime<Utc>) -> u64 {
    hall.rate(RatingFrom::Token("tok".into()), 1, None, now)
        .unwrap()
        .case
        .expect("a bad rating opens a case")
}

fn refused(
    hall: &mut Hall,
    f: impl FnOnce(&mut Hall) -> Result<Outcome, QueueError>,
) -> QueueError {
    let before = hall.clone();
    let e = f(hall).expect_err("refused");
    assert_eq!(*hall, before, "a refusal changes nothing");
    e
}

#[test]
fn a_done_ticket_is_rated_once_and_a_bad_rating_opens_a_case_due_in_followup_days() {
    let (mut hall, now, id) = served();
    let out = hall
        .rate(RatingFrom::Token("tok".into()), 2, Some("太慢".into()), now)
        .unwrap();
    assert_eq!(out.tickets, vec![id]);
    let case = hall
        .case(out.case.expect("a bad rating opens a case"))
        .unwrap();
    assert_eq!((case.level, case.number.as_str()), (2, "A001"));
    assert_eq!(case.window, Some(WA));
    assert_eq!(case.due_at, now + Duration::days(5));
    assert_eq!(case.status(), CaseStatus::Open);
    assert_eq!(case.history.len(), 1);
    let e = refused(&mut hall, |h| {
        h.rate(RatingFrom::Token("tok".into()), 5, None, now)
    });
    assert!(matches!(e, QueueError::Conflict(m) if m.contains("already rated")));
}

#[test]
fn a_good_rating_opens_no_case_and_bad_levels_and_long_comments_are_refused() {
    let (mut hall, now, _) = served();
    for level in [0, 6] {
        let e = refused(&mut hall, |h| {
            h.rate(RatingFrom::Token("tok".into()), level, None, now)
        });
        assert!(matches!(e, QueueError::BadRequest(_)));
    }
    let long = "很".repeat(501);
    let e = refused(&mut hall, |h| {
        h.rate(RatingFrom::Token("tok".into()), 3, Some(long), now)
    });
    assert!(matches!(e, QueueError::BadRequest(_)));
    let out = hall
        .rate(RatingFrom::Token("tok".into()), 3, None, now)
        .unwrap();
    assert!(out.case.is_none() && out.cases.is_empty());
}

#[test]
fn only_a_served_ticket_within_the_days_allowed_can_be_rated() {
    let (mut hall, now, _) = served();
    let late = now + Duration::days(7) + Duration::seconds(1);
    let e = refused(&mut hall, |h| {
        h.rate(RatingFrom::Token("tok".into()), 4, None, late)
    });
    assert!(matches!(e, QueueError::Conflict(m) if m.contains("within 7 days")));
    hall.rate(
        RatingFrom::Token("tok".into()),
        4,
        None,
        now + Duration::days(7),
    )
    .expect("the last moment still counts");

    // Waiting, and no-show: not served.
    let req = walk_in();
    hall.issue(req, "tok2".into(), now).unwrap();
    let e = refused(&mut hall, |h| {
        h.rate(RatingFrom::Token("tok2".into()), 4, None, now)
    });
    assert!(matches!(e, QueueError::Conflict(m) if m.contains("waiting")));
    hall.call(WA, None, now).unwrap();
    hall.no_show(WA, now).unwrap();
    let e = refused(&mut hall, |h| {
        h.rate(RatingFrom::Token("tok2".into()), 4, None, now)
    });
    assert!(matches!(e, QueueError::Conflict(m) if m.contains("no_show")));
    let e = refused(&mut hall, |h| {
        h.rate(RatingFrom::Token("nope".into()), 4, None, now)
    });
    assert!(matches!(e, QueueError::NotFound(_)));
}

#[test]
fn the_pad_rates_only_the_ticket_its_window_completed_last_within_120_s() {
    let (mut hall, now, first) = served();
    // Another window's ticket does not count for window A.
    let e = refused(&mut hall, |h| h.rate(RatingFrom::Window(0), 5, None, now));
    assert!(matches!(e, QueueError::Conflict(_)));
    let out = hall.rate(RatingFrom::Window(WA), 5, None, now).unwrap();
    assert_eq!(out.ticket, Some(first));
    let r = hall.ticket(first).unwrap().rating.clone().unwrap();
    assert_eq!(r.source, crate::queue::rating::RatingSource::Pad);
    // Rated: a second press is refused (it never falls back on an older
    // ticket).
    let e = refused(&mut hall, |h| h.rate(RatingFrom::Window(WA), 4, None, now));
    assert!(matches!(e, QueueError::Conflict(m) if m.contains("already rated")));

    let (mut hall, now, _) = served();
    let e = refused(&mut hall, |h| {
        h.rate(
            RatingFrom::Window(WA),
            5,
            None,
            now + Duration::seconds(121),
        )
    });
    assert!(matches!(e, QueueError::Conflict(m) if m.contains("120 s")));
    hall.rate(
        RatingFrom::Window(WA),
        5,
        None,
        now + Duration::seconds(120),
    )
    .expect("within 120 s");
}

#[test]
fn the_citizens_word_replaces_the_pads_once_and_the_pad_never_replaces_it() {
    use crate::queue::rating::RatingSource;
    // The pad said 5; the citizen says 1: the phone's rating stands and
    // opens a case.
    let (mut hall, now, id) = served();
    hall.rate(RatingFrom::Window(WA), 5, None, now).unwrap();
    let out = hall
        .rate(
            RatingFrom::Token("tok".into()),
            1,
            Some("态度差".into()),
            now + Duration::minutes(30),
        )
        .unwrap();
    let r = hall.ticket(id).unwrap().rating.clone().unwrap();
    assert_eq!((r.level, r.source), (1, RatingSource::Phone));
    let case = out.case.expect("the citizen's bad word opens a case");
    assert_eq!(hall.case(case).unwrap().comment.as_deref(), Some("态度差"));
    // Once: a second phone rating is refused.
    let e = refused(&mut hall, |h| {
        h.rate(
            RatingFrom::Token("tok".into()),
            5,
            None,
            now + Duration::hours(1),
        )
    });
    assert!(matches!(e, QueueError::Conflict(m) if m.contains("already rated")));

    // The phone first: the pad cannot replace it.
    let (mut hall, now, _) = served();
    hall.rate(RatingFrom::Token("tok".into()), 2, None, now)
        .unwrap();
    let e = refused(&mut hall, |h| h.rate(RatingFrom::Window(WA), 5, None, now));
    assert!(matches!(e, QueueError::Conflict(_)));

    // A bad pad rating's case takes the citizen's bad word, not a second case.
    let (mut hall, now, _) = served();
    let pad_case = hall
        .rate(RatingFrom::Window(WA), 2, None, now)
        .unwrap()
        .case
        .unwrap();
    let out = hall
        .rate(
            RatingFrom::Token("tok".into()),
            1,
            Some("等太久".into()),
            now,
        )
        .unwrap();
    assert_eq!(out.case, Some(pad_case));
    assert_eq!(hall.cases().count(), 1);
    let c = hall.case(pad_case).unwrap();
    assert_eq!((c.level, c.comment.as_deref()), (1, Some("等太久")));
}

#[test]
fn a_case_moves_only_forward_and_closed_is_final() {
    let (mut hall, now, _) = served();
    let id = bad_review(&mut hall, now);
    let later = now + Duration::hours(1);
    hall.step_case(id, CaseStatus::Rectified, Some("改进流程".into()), later)
        .expect("contacted may be skipped");
    for back in [
        CaseStatus::Open,
        CaseStatus::Contacted,
        CaseStatus::Rectified,
    ] {
        let e = refused(&mut hall, |h| h.step_case(id, back, None, later));
        assert!(matches!(e, QueueError::Conflict(m) if m.contains("only forward")));
    }
    let out = hall.step_case(id, CaseStatus::Closed, None, later).unwrap();
    assert_eq!(out.cases, vec![id]);
    let e = refused(&mut hall, |h| {
        h.step_case(id, CaseStatus::Closed, None, later)
    });
    assert!(matches!(e, QueueError::Conflict(m) if m.contains("closed is final")));
    let c = hall.case(id).unwrap();
    let steps: Vec<_> = c.history.iter().map(|s| s.status).collect();
    assert_eq!(
        steps,
        [CaseStatus::Open, CaseStatus::Rectified, CaseStatus::Closed]
    );
    assert_eq!(c.history[1].note.as_deref(), Some("改进流程"));
    assert!(
        !c.is_overdue(now + Duration::days(30)),
        "a closed case is never overdue"
    );
    let e = refused(&mut hall, |h| {
        h.step_case(99, CaseStatus::Closed, None, later)
    });
    assert!(matches!(e, QueueError::NotFound(_)));
}

#[test]
fn a_case_is_overdue_past_its_due_date_until_closed() {
    let (mut hall, now, _) = served();
    let id = bad_review(&mut hall, now);
    let c = hall.case(id).unwrap();
    assert!(!c.is_overdue(c.due_at));
    assert!(c.is_overdue(c.due_at + Duration::seconds(1)));
}

#[test]
fn a_day_end_forgets_tickets_too_old_to_rate_and_cases_closed_days_ago() {
    let (mut hall, now, id) = served();
    let case = bad_review(&mut hall, now);
    hall.step_case(case, CaseStatus::Closed, None, now).unwrap();
    hall.advance(now + Duration::days(1));
    assert!(hall.ticket(id).is_some(), "still rateable");
    assert!(hall.case(case).is_some(), "closed a day ago");
    hall.advance(now + Duration::days(9));
    assert!(hall.ticket(id).is_none() && hall.ticket_by_token("tok").is_none());
    assert!(hall.case(case).is_none());
    // Ids are never reused.
    let req = walk_in();
    let next = hall
        .issue(req, "tok3".into(), now + Duration::days(9))
        .unwrap();
    assert!(next.ticket.unwrap() > id);
}
