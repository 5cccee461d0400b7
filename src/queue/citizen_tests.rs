//! Citizens who are someone (A2–A4): phone codes, phone tokens, the caps
//! of `[halls.citizens]`, real-name bookings. Every refusal must leave the
//! hall as it was.

use chrono::{DateTime, Duration, TimeZone, Utc};

use super::booking_tests::booking_spec;
use super::citizen::{id_hash, token_hash, CitizenRules};
use super::*;

/// Shanghai wall time on Thursday 2026-11-26.
fn at(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, h, m, 0).unwrap() - Duration::hours(8)
}

const PHONE: &str = "13800000000";

struct Hall2 {
    hall: Hall,
    n: u32,
}

impl Hall2 {
    fn new(rules: CitizenRules) -> Hall2 {
        let mut spec = (*booking_spec()).clone();
        spec.citizens = rules;
        spec.mobile_tickets = true;
        Hall2 {
            hall: Hall::new(std::sync::Arc::new(spec)),
            n: 0,
        }
    }

    fn run(
        &mut self,
        f: impl FnOnce(&mut Hall) -> Result<Outcome, QueueError>,
    ) -> Result<Outcome, QueueError> {
        let before = self.hall.clone();
        let r = f(&mut self.hall);
        if r.is_err() {
            assert_eq!(before, self.hall, "a refused command changed the hall");
        }
        r
    }

    fn send(&mut self, phone: &str, code: &str, now: DateTime<Utc>) -> Result<Outcome, QueueError> {
        let code = code.to_string();
        self.run(|h| h.send_phone_code(phone, code, now))
    }

    fn verify(
        &mut self,
        phone: &str,
        code: &str,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<Outcome, QueueError> {
        self.run(|h| h.verify_phone(phone, code, token_hash(token), now))
    }

    /// A verified phone's token.
    fn token_for(&mut self, phone: &str, now: DateTime<Utc>) -> String {
        self.send(phone, "424242", now).unwrap();
        self.n += 1;
        let token = format!("ptok{}", self.n);
        let out = self.verify(phone, "424242", &token, now).unwrap();
        assert!(matches!(out.code_check, Some(CodeCheck::Verified { .. })));
        token
    }

    fn mobile(
        &mut self,
        phone: Option<&str>,
        token: Option<&str>,
        origin: &str,
        now: DateTime<Utc>,
    ) -> Result<Outcome, QueueError> {
        self.n += 1;
        let req = IssueRequest {
            service: "a".into(),
            priority: Priority::Normal,
            channel: Channel::Mobile,
            notify_phone: phone.map(str::to_string),
            phone_token: token.map(token_hash),
            origin: Some(origin.to_string()),
            outside_hours: false,
            slot: None,
        };
        let t = format!("t{}", self.n);
        self.run(|h| h.issue(req, t, now))
    }

    fn book(
        &mut self,
        start: DateTime<Utc>,
        token: Option<&str>,
        origin: Option<&str>,
        holder: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Outcome, QueueError> {
        self.n += 1;
        let req = BookRequest {
            service: "a".into(),
            start,
            phone: None,
            phone_token: token.map(token_hash),
            origin: origin.map(str::to_string),
            holder: holder.map(|id| HolderRequest {
                name: "张三".into(),
                id_number: id.into(),
                new_key: vec![7; 32],
            }),
            token: format!("b{}", self.n),
            codes: vec![format!("K{:05}", self.n)],
        };
        self.run(|h| h.book(req, now))
    }
}

#[test]
fn a_phone_gets_one_code_a_minute_and_five_a_day() {
    let mut h = Hall2::new(CitizenRules::default());
    let out = h.send(PHONE, "111111", at(9, 0)).unwrap();
    let sent = out.sent_code.unwrap();
    assert_eq!(sent.code, "111111");
    assert_eq!(sent.expires, at(9, 5));
    match h.send(PHONE, "222222", at(9, 0) + Duration::seconds(30)) {
        Err(QueueError::TooMany { retry_after, .. }) => assert_eq!(retry_after, 30),
        other => panic!("{other:?}"),
    }
    // Another phone is not held up.
    h.send("13900000000", "333333", at(9, 0)).unwrap();
    for i in 1..5 {
        h.send(PHONE, "444444", at(9, i)).unwrap();
    }
    match h.send(PHONE, "555555", at(10, 0)) {
        Err(QueueError::TooMany { retry_after, .. }) => {
            // Until hall-local midnight.
            assert_eq!(retry_after, 14 * 3600);
        }
        other => panic!("{other:?}"),
    }
    // A new hall-local day starts the count again.
    let tomorrow = at(9, 0) + Duration::days(1);
    h.send(PHONE, "666666", tomorrow).unwrap();
}

#[test]
fn a_code_dies_after_three_wrong_tries_or_five_minutes_and_is_used_once() {
    let mut h = Hall2::new(CitizenRules::default());
    h.send(PHONE, "123456", at(9, 0)).unwrap();
    for left in [2, 1, 0] {
        let out = h.verify(PHONE, "000000", "x", at(9, 1)).unwrap();
        assert_eq!(out.code_check, Some(CodeCheck::Wrong { tries_left: left }));
        assert!(!out.marks.is_empty(), "the try is journaled");
    }
    // Dead: even the right code is refused now.
    assert!(matches!(
        h.verify(PHONE, "123456", "x", at(9, 2)),
        Err(QueueError::PhoneUnverified(_))
    ));

    h.send(PHONE, "654321", at(9, 3)).unwrap();
    assert!(matches!(
        h.verify(PHONE, "654321", "x", at(9, 8)),
        Err(QueueError::PhoneUnverified(_))
    ));

    h.send(PHONE, "777777", at(9, 10)).unwrap();
    let out = h.verify(PHONE, "777777", "tok", at(9, 11)).unwrap();
    assert_eq!(
        out.code_check,
        Some(CodeCheck::Verified {
            expires: at(9, 11) + Duration::hours(24)
        })
    );
    assert_eq!(
        h.hall.verified_phone(&token_hash("tok"), at(9, 12)),
        Some(PHONE)
    );
    assert_eq!(
        h.hall
            .verified_phone(&token_hash("tok"), at(9, 11) + Duration::hours(24)),
        None,
        "a phone token lasts 24 h"
    );
    assert!(
        matches!(
            h.verify(PHONE, "777777", "tok2", at(9, 12)),
            Err(QueueError::PhoneUnverified(_))
        ),
        "a used code is refused"
    );
    assert!(matches!(
        h.verify("13999999999", "777777", "tok3", at(9, 12)),
        Err(QueueError::PhoneUnverified(_))
    ));
}

#[test]
fn a_hall_that_verifies_takes_a_phone_from_a_stranger_only_as_a_token() {
    let mut h = Hall2::new(CitizenRules::default());
    assert!(matches!(
        h.mobile(Some(PHONE), None, "10.0.0.1", at(9, 0)),
        Err(QueueError::PhoneUnverified(_))
    ));
    assert!(matches!(
        h.mobile(None, Some("made-up"), "10.0.0.1", at(9, 0)),
        Err(QueueError::PhoneUnverified(_))
    ));
    let token = h.token_for(PHONE, at(9, 0));
    let out = h.mobile(None, Some(&token), "10.0.0.1", at(9, 1)).unwrap();
    let t = h.hall.ticket(out.ticket.unwrap()).unwrap();
    assert_eq!(t.notify_phone.as_deref(), Some(PHONE));
    // Without a phone a mobile ticket needs no proof.
    h.mobile(None, None, "10.0.0.1", at(9, 2)).unwrap();

    // A hall that does not verify takes the number as given.
    let mut h = Hall2::new(CitizenRules {
        verify_phones: false,
        ..CitizenRules::default()
    });
    h.mobile(Some(PHONE), None, "10.0.0.1", at(9, 0)).unwrap();
}

#[test]
fn one_waiting_mobile_ticket_per_phone_and_service_and_a_cap_per_address() {
    let mut h = Hall2::new(CitizenRules {
        mobile_per_address_per_day: 3,
        ..CitizenRules::default()
    });
    let token = h.token_for(PHONE, at(9, 0));
    let first = h.mobile(None, Some(&token), "10.0.0.1", at(9, 1)).unwrap();
    match h.mobile(None, Some(&token), "10.0.0.2", at(9, 2)) {
        Err(QueueError::LimitReached(m)) => assert!(m.starts_with("waiting_mobile_per_phone")),
        other => panic!("{other:?}"),
    }
    // Once it is called, the phone may take another.
    let id = first.ticket.unwrap();
    h.hall.call(2, None, at(9, 3)).unwrap();
    assert_ne!(h.hall.ticket(id).unwrap().status, Status::Waiting);
    h.mobile(None, Some(&token), "10.0.0.2", at(9, 4)).unwrap();

    h.mobile(None, None, "10.0.0.1", at(9, 5)).unwrap();
    h.mobile(None, None, "10.0.0.1", at(9, 6)).unwrap();
    match h.mobile(None, None, "10.0.0.1", at(9, 7)) {
        Err(QueueError::LimitReached(m)) => assert!(m.starts_with("mobile_per_address_per_day")),
        other => panic!("{other:?}"),
    }
    h.mobile(None, None, "10.0.0.9", at(9, 7)).unwrap();
    // The next hall-local day counts again.
    h.mobile(None, None, "10.0.0.1", at(9, 7) + Duration::days(1))
        .unwrap();
}

#[test]
fn booking_caps_per_phone_per_date_per_address_and_per_id() {
    let mut h = Hall2::new(CitizenRules {
        bookings_per_address_per_day: 4,
        ..CitizenRules::default()
    });
    let now = at(8, 0);
    let slot = |d: i64, hh: u32| at(hh, 0) + Duration::days(d);
    // Without a token a booking needs a verified phone at all.
    assert!(matches!(
        h.book(slot(0, 10), None, Some("10.0.0.1"), None, now),
        Err(QueueError::PhoneUnverified(_))
    ));
    let token = h.token_for(PHONE, now);
    h.book(slot(0, 10), Some(&token), Some("10.0.0.1"), None, now)
        .unwrap();
    match h.book(slot(0, 11), Some(&token), Some("10.0.0.1"), None, now) {
        Err(QueueError::LimitReached(m)) => assert!(m.starts_with("bookings_per_phone_per_date")),
        other => panic!("{other:?}"),
    }
    h.book(slot(1, 10), Some(&token), Some("10.0.0.1"), None, now)
        .unwrap();
    match h.book(slot(6, 10), Some(&token), Some("10.0.0.1"), None, now) {
        Err(QueueError::LimitReached(m)) => assert!(m.starts_with("open_bookings_per_phone")),
        other => panic!("{other:?}"),
    }
    // Staff book without the address or proof (origin None, a phone given).
    let mut staff_side = h.hall.clone();
    let staff = BookRequest {
        service: "a".into(),
        start: slot(4, 10),
        phone: Some("13700000000".into()),
        phone_token: None,
        origin: None,
        holder: None,
        token: "staffbook".into(),
        codes: vec!["STAFF1".into()],
    };
    staff_side.book(staff, now).unwrap();

    // Many phones from one address: the address cap holds.
    for i in 0..2 {
        let t = h.token_for(&format!("1360000000{i}"), now);
        h.book(slot(4, 10), Some(&t), Some("10.0.0.1"), None, now)
            .unwrap();
    }
    let t = h.token_for("13600000009", now);
    match h.book(slot(4, 11), Some(&t), Some("10.0.0.1"), None, now) {
        Err(QueueError::LimitReached(m)) => {
            assert!(m.starts_with("bookings_per_address_per_day"), "{m}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_real_name_booking_keeps_a_hash_and_a_mask_and_one_open_booking_per_id() {
    let mut spec = (*booking_spec()).clone();
    spec.services[0].appointments.as_mut().unwrap().require_id = true;
    spec.citizens = CitizenRules {
        verify_phones: false,
        ..CitizenRules::default()
    };
    let mut h = Hall2 {
        hall: Hall::new(std::sync::Arc::new(spec)),
        n: 0,
    };
    let now = at(8, 0);
    assert!(matches!(
        h.book(at(10, 0), None, None, None, now),
        Err(QueueError::BadRequest(_))
    ));
    let id = "11010519491231002X";
    let out = h.book(at(10, 0), None, None, Some(id), now).unwrap();
    let a = h.hall.appointment(out.appointment.unwrap()).unwrap();
    let holder = a.holder.clone().unwrap();
    assert_eq!(holder.id_masked, "110105********002X");
    assert_eq!(holder.id_hash, id_hash(&[7; 32], id));
    assert!(!format!("{a:?}").contains("19491231"));
    assert!(
        out.marks.contains(&Mark::ID_KEY.to_string()),
        "the key is made once"
    );
    match h.book(at(11, 0), None, None, Some(id), now) {
        Err(QueueError::LimitReached(m)) => assert!(m.starts_with("require_id")),
        other => panic!("{other:?}"),
    }
    let out = h
        .book(at(11, 0), None, None, Some("440524188001010014"), now)
        .unwrap();
    assert!(!out.marks.contains(&Mark::ID_KEY.to_string()));
}

#[test]
fn messages_to_a_phone_are_capped_per_day() {
    let mut h = Hall2::new(CitizenRules {
        messages_per_phone_per_day: 2,
        ..CitizenRules::default()
    });
    let mut out = Outcome::default();
    assert!(h.hall.count_message(PHONE, at(9, 0), &mut out));
    assert!(h.hall.count_message(PHONE, at(9, 1), &mut out));
    assert!(!h.hall.count_message(PHONE, at(9, 2), &mut out));
    assert!(h.hall.count_message("13900000000", at(9, 2), &mut out));
    assert!(h
        .hall
        .count_message(PHONE, at(9, 0) + Duration::days(1), &mut out));
}

#[test]
fn marks_survive_a_restore_and_are_taken_in_by_another_node() {
    let mut h = Hall2::new(CitizenRules::default());
    let token = h.token_for(PHONE, at(9, 0));
    let marks: Vec<(String, Mark)> = h
        .hall
        .marks_for_test()
        .map(|(k, m)| (k.clone(), m.clone()))
        .collect();
    let restored = Hall::restore(
        h.hall.spec().clone(),
        Restored {
            marks: marks.clone(),
            ..Restored::default()
        },
    );
    assert_eq!(
        restored.verified_phone(&token_hash(&token), at(9, 1)),
        Some(PHONE)
    );
    let mut other = Hall::new(h.hall.spec().clone());
    other.absorb(Restored {
        marks,
        ..Restored::default()
    });
    assert_eq!(
        other.verified_phone(&token_hash(&token), at(9, 1)),
        Some(PHONE)
    );
    // The code's one-a-minute holds on the other node too.
    assert!(matches!(
        other.send_phone_code(PHONE, "1".into(), at(9, 0) + Duration::seconds(10)),
        Err(QueueError::TooMany { .. })
    ));
}
