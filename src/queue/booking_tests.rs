//! Booking rules (contract §8): slots, places, check-in windows, missed
//! bookings, reminders and the call order of started slots.

use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};

use super::tests::{spec, t0};
use super::*;

const WA: usize = 2;

/// The test hall with weekday hours 09:00-12:00 and 13:30-17:30, service
/// "a" taking bookings (30-minute slots of 2, a week ahead, check-in from
/// 30 minutes before to 15 after), and reminders an hour before.
pub(super) fn booking_spec() -> Arc<HallSpec> {
    let mut s = (*spec()).clone();
    let mut hours = Hours::default();
    for d in 0..5 {
        hours.week[d] = DayHours::parse("09:00-12:00,13:30-17:30").unwrap();
    }
    s.hours = Some(hours);
    s.services[0].appointments = Some(AppointmentSpec {
        slot_minutes: 30,
        per_slot: 2,
        days_ahead: 7,
        early_minutes: 30,
        late_minutes: 15,
        require_id: false,
    });
    s.notify = Some(NotifySpec {
        webhook_url: "http://127.0.0.1:9/hook".into(),
        secret: "0123456789abcdef".into(),
        remind_ahead: 3,
        remind_before_minutes: 60,
        max_attempts: 3,
    });
    Arc::new(s)
}

/// Shanghai wall time on the test's Thursday, 2026-11-26.
fn at(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, h, m, 0).unwrap() - Duration::hours(8)
}

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 26).unwrap()
}

struct Desk {
    hall: Hall,
    n: u32,
}

impl Desk {
    fn new() -> Desk {
        Desk {
            hall: Hall::new(booking_spec()),
            n: 0,
        }
    }

    fn token(&mut self) -> String {
        self.n += 1;
        format!("tok{}", self.n)
    }

    /// Runs a command; a refusal must change nothing.
    fn run(
        &mut self,
        now: DateTime<Utc>,
        f: impl FnOnce(&mut Hall, DateTime<Utc>) -> Result<Outcome, QueueError>,
    ) -> Result<Outcome, QueueError> {
        let before = self.hall.clone();
        let r = f(&mut self.hall, now);
        if r.is_err() {
            assert_eq!(before, self.hall, "a refused command changed the hall");
        }
        r
    }

    fn book(&mut self, start: DateTime<Utc>, now: DateTime<Utc>) -> Result<String, QueueError> {
        let req = BookRequest {
            service: "a".into(),
            start,
            // A phone of its own per booking: the caps of A3 have tests
            // of their own.
            phone: Some(format!("1380000{:04}", self.n)),
            phone_token: None,
            origin: None,
            holder: None,
            token: self.token(),
            codes: vec![format!("CODE{:02}", self.n)],
        };
        let out = self.run(now, |h, now| h.book(req, now))?;
        Ok(self
            .hall
            .appointment(out.appointment.unwrap())
            .unwrap()
            .token
            .clone())
    }

    fn check_in(&mut self, token: &str, now: DateTime<Utc>) -> Result<String, QueueError> {
        let t = self.token();
        let which = BookingRef::Token(token.into());
        let out = self.run(now, |h, now| h.check_in(which, t, now))?;
        Ok(self.number(out.ticket.unwrap()))
    }

    fn walk_in(&mut self, priority: Priority, now: DateTime<Utc>) -> String {
        let req = IssueRequest {
            service: "a".into(),
            priority,
            channel: Channel::Kiosk,
            notify_phone: None,
            phone_token: None,
            origin: None,
            outside_hours: false,
            slot: None,
        };
        let t = self.token();
        let out = self.hall.issue(req, t, now).unwrap();
        self.number(out.ticket.unwrap())
    }

    fn number(&self, id: u64) -> String {
        self.hall.ticket(id).unwrap().number.clone()
    }

    fn status(&self, token: &str) -> BookingStatus {
        self.hall.appointment_by_token(token).unwrap().status
    }

    /// The service's line in call order, by number.
    fn line(&self) -> Vec<String> {
        self.hall.line(0).map(|t| t.number.clone()).collect()
    }
}

#[test]
fn slots_are_cut_from_each_opening_range_and_started_ones_are_left_out() {
    let d = Desk::new();
    let starts = |date, now| -> Vec<String> {
        d.hall
            .slots(0, date, now)
            .unwrap()
            .iter()
            .map(|(s, _)| {
                s.start
                    .with_timezone(&chrono_tz::Asia::Shanghai)
                    .format("%H:%M")
                    .to_string()
            })
            .collect()
    };
    // At 10:00 the 10:00 slot has started.
    assert_eq!(
        starts(today(), at(10, 0)),
        [
            "10:30", "11:00", "11:30", "13:30", "14:00", "14:30", "15:00", "15:30", "16:00",
            "16:30", "17:00"
        ]
    );
    let tomorrow = today().succ_opt().unwrap();
    assert_eq!(starts(tomorrow, at(10, 0)).len(), 6 + 8);
    // Saturday is closed; a week and a day ahead, and yesterday, are out.
    assert!(starts(today() + Duration::days(2), at(10, 0)).is_empty());
    assert!(starts(today() + Duration::days(8), at(10, 0)).is_empty());
    assert!(starts(today().pred_opt().unwrap(), at(10, 0)).is_empty());
    assert_eq!(starts(today() + Duration::days(7), at(10, 0)).len(), 14);
    assert!(matches!(
        d.hall.slots(1, today(), at(10, 0)),
        Err(QueueError::NotFound(_))
    ));
}

#[test]
fn a_slot_takes_per_slot_bookings_and_a_cancel_frees_a_place() {
    let mut d = Desk::new();
    let now = at(10, 0);
    let free = |d: &Desk| {
        d.hall.slots(0, today(), now).unwrap()[0].1 // the 10:30 slot
    };
    assert_eq!(free(&d), 2);
    let first = d.book(at(10, 30), now).unwrap();
    d.book(at(10, 30), now).unwrap();
    assert_eq!(free(&d), 0);
    assert!(matches!(d.book(at(10, 30), now), Err(QueueError::Conflict(m)) if m.contains("full")));
    // Not a slot's start; started; beyond the days ahead.
    assert!(matches!(
        d.book(at(10, 45), now),
        Err(QueueError::BadRequest(_))
    ));
    assert!(
        matches!(d.book(at(10, 0), now), Err(QueueError::Conflict(m)) if m.contains("started"))
    );
    assert!(matches!(
        d.book(at(10, 30) + Duration::days(8), now),
        Err(QueueError::Conflict(_))
    ));
    d.run(now, |h, now| h.cancel_booking(&first, now)).unwrap();
    assert_eq!(d.status(&first), BookingStatus::Cancelled);
    assert_eq!(free(&d), 1);
    assert!(d.run(now, |h, now| h.cancel_booking(&first, now)).is_err());
    d.book(at(10, 30), now).unwrap();
    assert_eq!(free(&d), 0);
}

#[test]
fn check_in_opens_early_minutes_before_and_numbers_like_a_walk_in() {
    let mut d = Desk::new();
    let a = d.book(at(11, 30), at(10, 0)).unwrap();
    assert_eq!(d.walk_in(Priority::Normal, at(10, 1)), "A001");
    match d.check_in(&a, at(10, 59)) {
        Err(QueueError::Conflict(m)) => assert!(m.contains("11:00"), "{m}"),
        other => panic!("too early: {other:?}"),
    }
    assert_eq!(d.check_in(&a, at(11, 0)).unwrap(), "A002");
    assert_eq!(d.status(&a), BookingStatus::CheckedIn);
    let t = d.hall.ticket_by_token("tok4").unwrap();
    assert_eq!(t.channel, Channel::Appointment);
    assert_eq!(t.slot, Some(at(11, 30)));
    assert_eq!(t.notify_phone.as_deref(), Some("13800000000"));
    assert!(
        matches!(d.check_in(&a, at(11, 1)), Err(QueueError::Conflict(m)) if m.contains("A002"))
    );
    // By code, at a kiosk: the same booking, so the same refusal.
    let code = d.hall.appointment_by_token(&a).unwrap().code.clone();
    let t = d.token();
    assert!(d
        .run(at(11, 2), |h, now| h.check_in(
            BookingRef::Code(code),
            t,
            now
        ))
        .is_err());
    let t = d.token();
    assert!(matches!(
        d.run(at(11, 2), |h, now| h.check_in(
            BookingRef::Code("ZZZZZZ".into()),
            t,
            now
        )),
        Err(QueueError::NotFound(_))
    ));
}

#[test]
fn a_booking_not_checked_in_by_its_deadline_is_missed() {
    let mut d = Desk::new();
    let a = d.book(at(10, 30), at(10, 0)).unwrap();
    let out = d.hall.advance(at(11, 14));
    assert!(out.notices.is_empty());
    assert_eq!(d.status(&a), BookingStatus::Booked);
    assert!(d.hall.is_due(at(11, 15)));
    let out = d.hall.advance(at(11, 15));
    assert_eq!(d.status(&a), BookingStatus::Missed);
    let id = d.hall.appointment_by_token(&a).unwrap().id;
    assert_eq!(out.notices, vec![(id, BookingNotice::Missed)]);
    assert_eq!(out.appointments, vec![id]);
    assert!(d.hall.advance(at(11, 16)).notices.is_empty(), "once");
    assert!(
        matches!(d.check_in(&a, at(11, 16)), Err(QueueError::Conflict(m)) if m.contains("missed"))
    );
}

#[test]
fn the_reminder_comes_once_remind_before_minutes_ahead_of_the_slot() {
    let mut d = Desk::new();
    let later = d.book(at(13, 30), at(10, 0)).unwrap();
    // Inside the reminder's lead already: the booking message says it all.
    let soon = d.book(at(10, 30), at(10, 0)).unwrap();
    assert!(d.hall.appointment_by_token(&soon).unwrap().reminded);
    let missed = d.hall.advance(at(11, 15));
    assert_eq!(
        missed.notices.len(),
        1,
        "the 10:30 booking missed, no reminder"
    );
    assert!(d.hall.advance(at(12, 29)).notices.is_empty());
    let out = d.hall.advance(at(12, 30));
    let id = d.hall.appointment_by_token(&later).unwrap().id;
    assert_eq!(out.notices, vec![(id, BookingNotice::Reminder)]);
    assert!(d.hall.advance(at(12, 31)).notices.is_empty());
    assert!(!d.hall.is_due(at(12, 31)));
}

#[test]
fn a_started_slot_goes_ahead_of_walk_ins_but_after_the_green_channel() {
    let mut d = Desk::new();
    let a = d.book(at(10, 30), at(9, 0)).unwrap();
    let b = d.book(at(11, 0), at(9, 0)).unwrap();
    assert_eq!(d.walk_in(Priority::Normal, at(10, 0)), "A001");
    assert_eq!(d.walk_in(Priority::Normal, at(10, 1)), "A002");
    d.hall.advance(at(10, 5));
    // Checked in before its slot: waits like anyone, by age.
    assert_eq!(d.check_in(&a, at(10, 6)).unwrap(), "A003");
    assert_eq!(d.walk_in(Priority::Green, at(10, 7)), "A004");
    assert_eq!(d.line(), ["A004", "A001", "A002", "A003"]);
    // 10:30: A003's slot started.
    let out = d.hall.advance(at(10, 30));
    assert_eq!(out.lines, vec![0], "phones of the line are told");
    assert_eq!(d.line(), ["A004", "A003", "A001", "A002"]);
    assert_eq!(d.check_in(&b, at(10, 31)).unwrap(), "A005");
    assert_eq!(d.line(), ["A004", "A003", "A001", "A002", "A005"]);
    for (i, t) in d.hall.line(0).enumerate() {
        assert_eq!(d.hall.ahead(t), i, "{} ahead", t.number);
    }
    let shown: Vec<String> = d
        .hall
        .window_line(WA, 10)
        .iter()
        .map(|t| t.number.clone())
        .collect();
    assert_eq!(shown, d.line());
    // 11:00: both slots started; the older slot first.
    d.hall.advance(at(11, 0));
    assert_eq!(d.line(), ["A004", "A003", "A005", "A001", "A002"]);
    for (i, t) in d.hall.line(0).enumerate() {
        assert_eq!(d.hall.ahead(t), i, "{} ahead", t.number);
    }
    let mut called = Vec::new();
    for m in 1..=5 {
        let out = d.hall.call(WA, None, at(11, m)).unwrap();
        called.push(d.number(out.ticket.unwrap()));
    }
    assert_eq!(called, ["A004", "A003", "A005", "A001", "A002"]);
}

#[test]
fn bookings_survive_a_restore_with_their_places_and_order() {
    let mut d = Desk::new();
    let a = d.book(at(10, 30), at(9, 0)).unwrap();
    d.book(at(10, 30), at(9, 0)).unwrap();
    d.walk_in(Priority::Normal, at(10, 0));
    d.check_in(&a, at(10, 10)).unwrap();
    let restored = Restored {
        tickets: d.hall.tickets().cloned().collect(),
        appointments: ["tok1", "tok2"]
            .iter()
            .map(|t| d.hall.appointment_by_token(t).unwrap().clone())
            .collect(),
        max_appointment_id: 2,
        max_ticket_id: 2,
        max_line_pos: 2,
        counters: vec![Counter {
            service: 0,
            day: today(),
            last: 2,
        }],
        ..Restored::default()
    };
    let mut back = Hall::restore(booking_spec(), restored);
    back.advance(at(10, 30));
    assert_eq!(back.slots(0, today(), at(10, 0)).unwrap()[0].1, 0, "full");
    let first: Vec<&str> = back.line(0).map(|t| t.number.as_str()).collect();
    assert_eq!(first, ["A002", "A001"]);
}

#[test]
fn t0_is_inside_the_test_hours() {
    assert_eq!(t0(), at(10, 0));
}

#[test]
fn a_reminder_is_taken_once_when_a_ticket_comes_within_remind_ahead() {
    let mut d = Desk::new();
    let mut ids = Vec::new();
    for i in 0..6 {
        let req = IssueRequest {
            service: "a".into(),
            priority: Priority::Normal,
            channel: Channel::Kiosk,
            notify_phone: Some("13800000000".into()),
            phone_token: None,
            origin: None,
            outside_hours: false,
            slot: None,
        };
        let out = d.hall.issue(req, format!("r{i}"), at(10, i)).unwrap();
        ids.push(out.ticket.unwrap());
    }
    // The first four joined within 3 ahead: none for them, ever.
    assert!(d.hall.take_reminders(&[0]).is_empty());
    d.hall.call(WA, None, at(10, 10)).unwrap();
    assert_eq!(d.hall.take_reminders(&[0]), vec![ids[4]]);
    assert!(d.hall.take_reminders(&[0]).is_empty(), "once");
    // A green-channel arrival pushes it back; falling again is not a
    // second reminder.
    d.walk_in(Priority::Green, at(10, 11));
    d.hall.call(WA, None, at(10, 12)).unwrap();
    d.hall.call(WA, None, at(10, 13)).unwrap();
    assert_eq!(d.hall.take_reminders(&[0]), vec![ids[5]]);
    assert!(d.hall.take_reminders(&[0, 1, 2]).is_empty());
}
