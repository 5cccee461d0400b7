//! Queue rules as tables: one small hall, many cases.

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};

use super::*;

/// Floor 1 (voice): services a (prefix A) and b (prefix B); windows w1
/// [a, b], w2 [b, a], wa [a]. Floor 2 (silent): service c, window wc [c].
pub(super) fn spec() -> Arc<HallSpec> {
    let svc = |id: &str, prefix: &str, floor| ServiceSpec {
        id: id.into(),
        name: id.into(),
        name_en: None,
        prefix: prefix.into(),
        floor,
        zone: "A".into(),
        avg_service_seconds: 600,
        appointments: None,
    };
    let win = |id: &str, floor, services: Vec<usize>| WindowSpec {
        id: id.into(),
        label: id.trim_start_matches('w').into(),
        floor,
        zone: "A".into(),
        services,
        token: format!("token-of-window-{id}"),
    };
    Arc::new(HallSpec {
        id: "h".into(),
        name: "Hall".into(),
        timezone: chrono_tz::Asia::Shanghai,
        admin_token: "admin-token-0123456".into(),
        floors: vec![
            FloorSpec {
                number: 1,
                name: "1F".into(),
                announce: Announce::Voice,
                languages: vec![Language::Zh],
            },
            FloorSpec {
                number: 2,
                name: "2F".into(),
                announce: Announce::Silent,
                languages: vec![Language::Zh],
            },
        ],
        services: vec![svc("a", "A", 1), svc("b", "B", 1), svc("c", "C", 2)],
        windows: vec![
            win("w1", 1, vec![0, 1]),
            win("w2", 1, vec![1, 0]),
            win("wa", 1, vec![0]),
            win("wc", 2, vec![2]),
        ],
        kiosks: vec![],
        hours: None,
        mobile_tickets: false,
        zones: Vec::new(),
        notify: None,
        ratings: crate::queue::RatingsSpec::default(),
        citizens: crate::queue::CitizenRules::default(),
    })
}

const W1: usize = 0;
const W2: usize = 1;
const WA: usize = 2;
const WC: usize = 3;

/// 10:00 in Shanghai on 2026-11-26.
pub(super) fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 2, 0, 0).unwrap()
}

struct Fixture {
    hall: Hall,
    now: DateTime<Utc>,
    tokens: u32,
}

impl Fixture {
    fn new() -> Self {
        Fixture {
            hall: Hall::new(spec()),
            now: t0(),
            tokens: 0,
        }
    }

    fn tick(&mut self, secs: i64) {
        self.now += Duration::seconds(secs);
    }

    fn issue_p(&mut self, service: &str, priority: Priority) -> String {
        self.tokens += 1;
        self.tick(1);
        let req = IssueRequest {
            service: service.into(),
            priority,
            channel: Channel::Kiosk,
            notify_phone: None,
            phone_token: None,
            origin: None,
            outside_hours: false,
            slot: None,
        };
        let out = self
            .hall
            .issue(req, format!("tok{}", self.tokens), self.now)
            .expect("issue succeeds");
        self.hall
            .ticket(out.ticket.unwrap())
            .unwrap()
            .number
            .clone()
    }

    fn issue(&mut self, service: &str) -> String {
        self.issue_p(service, Priority::Normal)
    }

    fn call(&mut self, w: usize) -> Option<String> {
        self.tick(1);
        let out = self.hall.call(w, None, self.now).expect("call succeeds");
        out.ticket
            .map(|id| self.hall.ticket(id).unwrap().number.clone())
    }

    fn status(&self, number: &str) -> Status {
        let day = self.hall.local_day(self.now);
        self.find(number, day).status
    }

    fn find(&self, number: &str, _day: chrono::NaiveDate) -> &Ticket {
        (1..=1000u64)
            .rev()
            .filter_map(|id| self.hall.ticket(id))
            .find(|t| t.number == number)
            .expect("ticket exists")
    }

    /// Applies a command; a refusal must leave the hall exactly as it was.
    fn try_cmd(
        &mut self,
        f: impl FnOnce(&mut Hall, DateTime<Utc>) -> Result<Outcome, QueueError>,
    ) -> Result<Outcome, QueueError> {
        self.tick(1);
        let before = self.hall.clone();
        let r = f(&mut self.hall, self.now);
        if r.is_err() {
            assert_eq!(before, self.hall, "a refused command changed the hall");
        }
        r
    }
}

#[test]
fn numbers_count_per_service_from_001() {
    let mut f = Fixture::new();
    let got: Vec<String> = ["a", "a", "b", "a", "c", "b"]
        .iter()
        .map(|s| f.issue(s))
        .collect();
    assert_eq!(got, ["A001", "A002", "B001", "A003", "C001", "B002"]);
}

#[test]
fn numbering_restarts_at_hall_local_midnight() {
    let mut f = Fixture::new();
    // 23:59:58 in Shanghai is 15:59:58 UTC.
    f.now = Utc.with_ymd_and_hms(2026, 11, 26, 15, 59, 57).unwrap();
    assert_eq!(f.issue("a"), "A001");
    assert_eq!(f.issue("a"), "A002"); // 23:59:59
    assert_eq!(f.issue("a"), "A001"); // 00:00:00 next day, local
    assert_eq!(f.issue("a"), "A002");
}

#[test]
fn numbers_grow_past_three_digits() {
    let mut f = Fixture::new();
    let mut last = String::new();
    for _ in 0..1000 {
        last = f.issue("a");
    }
    assert_eq!(last, "A1000");
}

/// (issued: (service, green channel)), window, expected call order.
#[test]
fn call_order_table() {
    type Case = (
        &'static [(&'static str, bool)],
        usize,
        &'static [&'static str],
    );
    let cases: &[Case] = &[
        // oldest first within a service
        (
            &[("a", false), ("a", false), ("a", false)],
            WA,
            &["A001", "A002", "A003"],
        ),
        // the window's order of services beats age
        (&[("b", false), ("a", false)], W1, &["A001", "B001"]),
        (&[("a", false), ("b", false)], W2, &["B001", "A001"]),
        // green channel beats the window's preference and age
        (&[("a", false), ("b", true)], W1, &["B001", "A001"]),
        (
            &[("a", false), ("a", true), ("a", true)],
            WA,
            &["A002", "A003", "A001"],
        ),
        // among green tickets, the window's order, then age
        (
            &[("b", true), ("a", true), ("a", false)],
            W1,
            &["A001", "B001", "A002"],
        ),
        // a window never calls a service it does not serve
        (&[("b", false), ("c", false)], WA, &[]),
    ];
    for (i, (issued, w, want)) in cases.iter().enumerate() {
        let mut f = Fixture::new();
        for (s, green) in issued.iter() {
            let p = if *green {
                Priority::Green
            } else {
                Priority::Normal
            };
            f.issue_p(s, p);
        }
        let mut got = Vec::new();
        while let Some(n) = f.call(*w) {
            got.push(n);
        }
        assert_eq!(&got, want, "case {i}");
    }
}

#[test]
fn call_finishes_the_previous_ticket_and_idle_call_reports_idle() {
    let mut f = Fixture::new();
    f.issue("a");
    f.issue("a");
    assert_eq!(f.call(WA).as_deref(), Some("A001"));
    assert_eq!(f.call(WA).as_deref(), Some("A002"));
    assert_eq!(f.status("A001"), Status::Done);
    let out = f.try_cmd(|h, now| h.call(WA, None, now)).unwrap();
    assert!(out.idle);
    assert_eq!(f.status("A002"), Status::Done);
    assert_eq!(f.hall.window(WA).current, None);
}

#[test]
fn call_by_number_table() {
    // (number asked, expected: Ok / NotFound / Conflict)
    let mut f = Fixture::new();
    f.issue("a"); // A001 waiting
    f.issue("b"); // B001 waiting, not served by wa
    f.issue("a"); // A002 → will be called by w1
    let _ = f.try_cmd(|h, now| h.call(W1, Some("A002"), now)).unwrap();
    let cases: &[(&str, &str)] = &[
        ("A009", "not_found"),
        ("B001", "conflict"), // wa does not serve b
        ("A002", "conflict"), // already called
        ("A001", "ok"),
    ];
    for (number, want) in cases {
        let got = match f.try_cmd(|h, now| h.call(WA, Some(number), now)) {
            Ok(_) => "ok",
            Err(QueueError::NotFound(_)) => "not_found",
            Err(QueueError::Conflict(_)) => "conflict",
            Err(QueueError::BadRequest(_)) => "bad_request",
            Err(QueueError::Closed { .. }) => "closed",
            Err(_) => "other",
        };
        assert_eq!(got, *want, "calling {number}");
    }
    assert_eq!(f.status("A001"), Status::Called);
}

#[test]
fn transitions_table() {
    // Each case: how far to bring the window's ticket, the action, and
    // whether it is accepted.
    #[derive(Clone, Copy, Debug)]
    enum At {
        Nothing,
        Called,
        Serving,
    }
    #[derive(Clone, Copy, Debug)]
    enum Act {
        Recall,
        Start,
        Complete,
        NoShow,
        Transfer,
    }
    let cases = [
        (At::Nothing, Act::Recall, false),
        (At::Nothing, Act::Start, false),
        (At::Nothing, Act::Complete, false),
        (At::Nothing, Act::NoShow, false),
        (At::Nothing, Act::Transfer, false),
        (At::Called, Act::Recall, true),
        (At::Called, Act::Start, true),
        (At::Called, Act::Complete, true),
        (At::Called, Act::NoShow, true),
        (At::Called, Act::Transfer, true),
        (At::Serving, Act::Recall, false),
        (At::Serving, Act::Start, false),
        (At::Serving, Act::Complete, true),
        (At::Serving, Act::NoShow, false),
        (At::Serving, Act::Transfer, true),
    ];
    for (at, act, ok) in cases {
        let mut f = Fixture::new();
        f.issue("a");
        match at {
            At::Nothing => {}
            At::Called => {
                f.call(W1);
            }
            At::Serving => {
                f.call(W1);
                f.try_cmd(|h, now| h.start(W1, now)).unwrap();
            }
        }
        let r = f.try_cmd(|h, now| match act {
            Act::Recall => h.recall(W1, now),
            Act::Start => h.start(W1, now),
            Act::Complete => h.complete(W1, now),
            Act::NoShow => h.no_show(W1, now),
            Act::Transfer => h.transfer(W1, "b", now),
        });
        assert_eq!(r.is_ok(), ok, "{act:?} at {at:?}: {r:?}");
        if let Err(e) = r {
            assert!(
                matches!(e, QueueError::Conflict(_)),
                "{act:?} at {at:?}: {e:?}"
            );
        }
    }
}

#[test]
fn recall_counts_and_start_complete_no_show_set_status() {
    let mut f = Fixture::new();
    f.issue("a");
    f.issue("a");
    f.call(WA);
    for n in 1..=3 {
        f.try_cmd(|h, now| h.recall(WA, now)).unwrap();
        assert_eq!(f.find("A001", f.hall.local_day(f.now)).recall, n);
    }
    f.try_cmd(|h, now| h.start(WA, now)).unwrap();
    assert_eq!(f.status("A001"), Status::Serving);
    f.try_cmd(|h, now| h.complete(WA, now)).unwrap();
    assert_eq!(f.status("A001"), Status::Done);
    f.call(WA);
    f.try_cmd(|h, now| h.no_show(WA, now)).unwrap();
    assert_eq!(f.status("A002"), Status::NoShow);
}

#[test]
fn transfer_keeps_the_number_and_the_place_by_age() {
    let mut f = Fixture::new();
    f.issue("a"); // A001, oldest
    f.issue("b"); // B001
    f.issue("b"); // B002
    assert_eq!(f.call(WA).as_deref(), Some("A001"));
    let out = f.try_cmd(|h, now| h.transfer(WA, "b", now)).unwrap();
    let t = f.hall.ticket(out.ticket.unwrap()).unwrap();
    assert_eq!(
        (t.number.as_str(), t.status, t.service),
        ("A001", Status::Waiting, 1)
    );
    assert_eq!(f.hall.window(WA).current, None);
    // A001 came before B001 and B002: it is first in b's line.
    assert_eq!(f.call(W2).as_deref(), Some("A001"));
    assert_eq!(f.call(W2).as_deref(), Some("B001"));
    // Transfer to the service it already has, or to an unknown one, is refused.
    assert!(matches!(
        f.try_cmd(|h, now| h.transfer(W2, "b", now)),
        Err(QueueError::Conflict(_))
    ));
    assert!(matches!(
        f.try_cmd(|h, now| h.transfer(W2, "zz", now)),
        Err(QueueError::NotFound(_))
    ));
}

#[test]
fn pause_blocks_calls_until_resume() {
    let mut f = Fixture::new();
    f.issue("a");
    f.try_cmd(|h, now| h.pause(WA, now)).unwrap();
    assert!(matches!(
        f.try_cmd(|h, now| h.pause(WA, now)),
        Err(QueueError::Conflict(_))
    ));
    assert!(matches!(
        f.try_cmd(|h, now| h.call(WA, None, now)),
        Err(QueueError::Conflict(_))
    ));
    f.try_cmd(|h, now| h.resume(WA, now)).unwrap();
    assert!(matches!(
        f.try_cmd(|h, now| h.resume(WA, now)),
        Err(QueueError::Conflict(_))
    ));
    assert_eq!(f.call(WA).as_deref(), Some("A001"));
}

#[test]
fn cancel_only_while_waiting() {
    let mut f = Fixture::new();
    f.issue("a"); // tok1
    f.issue("a"); // tok2
    f.try_cmd(|h, now| h.cancel("tok1", now)).unwrap();
    assert_eq!(f.status("A001"), Status::Cancelled);
    assert!(matches!(
        f.try_cmd(|h, now| h.cancel("tok1", now)),
        Err(QueueError::Conflict(_))
    ));
    assert!(matches!(
        f.try_cmd(|h, now| h.cancel("nope", now)),
        Err(QueueError::NotFound(_))
    ));
    assert_eq!(
        f.call(WA).as_deref(),
        Some("A002"),
        "a cancelled ticket is never called"
    );
    assert!(matches!(
        f.try_cmd(|h, now| h.cancel("tok2", now)),
        Err(QueueError::Conflict(_))
    ));
}

#[test]
fn ahead_and_eta_follow_the_line_and_open_windows() {
    let mut f = Fixture::new();
    for _ in 0..4 {
        f.issue("c");
    }
    let day = f.hall.local_day(f.now);
    let t = f.find("C004", day).clone();
    assert_eq!(f.hall.ahead(&t), 3);
    // one window serves c, 600 s each
    assert_eq!(f.hall.eta_seconds(&t, 3), 1800);
    f.call(WC);
    let t = f.find("C004", day).clone();
    assert_eq!(f.hall.ahead(&t), 2);
    // Green channel goes ahead of everyone normal.
    f.issue_p("c", Priority::Green);
    let t = f.find("C004", day).clone();
    assert_eq!(f.hall.ahead(&t), 3);
    let green = f.find("C005", day).clone();
    assert_eq!(f.hall.ahead(&green), 0);
}

#[test]
fn service_times_feed_the_estimate() {
    let mut f = Fixture::new();
    f.issue("c");
    f.call(WC);
    f.try_cmd(|h, now| h.start(WC, now)).unwrap();
    f.tick(120);
    f.try_cmd(|h, now| h.complete(WC, now)).unwrap();
    // (600 s × 7 + 121 s) / 8
    assert_eq!(f.hall.clock(2).avg_ms, (600_000 * 7 + 121_000) / 8);
}

#[test]
fn sequences_are_gapless_per_floor_and_per_hall() {
    let mut f = Fixture::new();
    let mut events = Vec::new();
    type Cmd<'a> = &'a dyn Fn(&mut Hall, DateTime<Utc>) -> Result<Outcome, QueueError>;
    let mut run = |f: &mut Fixture, cmd: Cmd<'_>| {
        if let Ok(out) = f.try_cmd(cmd) {
            events.extend(out.events);
        }
    };
    for i in 0..30 {
        let s = ["a", "b", "c"][i % 3].to_string();
        let tok = format!("t{i}");
        run(&mut f, &move |h, now| {
            h.issue(
                IssueRequest {
                    service: s.clone(),
                    priority: Priority::Normal,
                    channel: Channel::Kiosk,
                    notify_phone: None,
                    phone_token: None,
                    origin: None,
                    outside_hours: false,
                    slot: None,
                },
                tok.clone(),
                now,
            )
        });
        let w = [W1, W2, WA, WC][i % 4];
        run(&mut f, &move |h, now| h.call(w, None, now));
        run(&mut f, &move |h, now| h.recall(w, now));
        run(&mut f, &move |h, now| h.start(w, now)); // refused sometimes
        if i % 5 == 0 {
            run(&mut f, &move |h, now| h.pause(w, now));
            run(&mut f, &move |h, now| h.resume(w, now));
        }
    }
    assert!(events.len() > 100);
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.hall_seq, i as u64 + 1);
    }
    for floor in [1, 2] {
        let seqs: Vec<u64> = events
            .iter()
            .filter(|e| e.floor == floor)
            .map(|e| e.floor_seq)
            .collect();
        assert_eq!(
            seqs,
            (1..=seqs.len() as u64).collect::<Vec<_>>(),
            "floor {floor}"
        );
        assert_eq!(f.hall.floor_seq(floor), seqs.len() as u64);
    }
}

#[test]
fn events_of_a_call() {
    let mut f = Fixture::new();
    f.issue("a");
    f.issue("a");
    f.call(W1);
    let out = f.try_cmd(|h, now| h.call(W1, None, now)).unwrap();
    let kinds: Vec<String> = out
        .events
        .iter()
        .map(|e| match &e.kind {
            EventKind::Called {
                number,
                recall,
                voice,
                ..
            } => format!("called {number} {recall} {voice}"),
            EventKind::Ticket { number, status, .. } => {
                format!("ticket {number} {}", status.as_str())
            }
            EventKind::Waiting { service, count } => format!("waiting {service} {count}"),
            EventKind::Window { .. } => "window".into(),
        })
        .collect();
    assert_eq!(
        kinds,
        ["ticket A001 done", "called A002 0 true", "waiting 0 0"]
    );
    // Waiting counts go to every floor that shows the service: a is on
    // floor 1 only; a silent floor's call says so.
    f.issue("c");
    let out = f.try_cmd(|h, now| h.call(WC, None, now)).unwrap();
    assert!(out.events.iter().all(|e| e.floor == 2));
    assert!(matches!(
        out.events[0].kind,
        EventKind::Called { voice: false, .. }
    ));
}

#[test]
fn recent_calls_newest_first_one_per_number_at_most_ten() {
    let mut f = Fixture::new();
    for _ in 0..12 {
        f.issue("a");
    }
    for _ in 0..12 {
        f.call(WA);
    }
    f.try_cmd(|h, now| h.recall(WA, now)).unwrap(); // A012 again
    let recent: Vec<&str> = f.hall.recent(1).map(|c| c.number.as_str()).collect();
    assert_eq!(recent.len(), hall::RECENT_CALLS);
    assert_eq!(recent[0], "A012");
    assert_eq!(recent[1], "A011");
    assert_eq!(recent[9], "A003");
}

#[test]
fn restore_rebuilds_lines_windows_and_counters() {
    let mut f = Fixture::new();
    for s in ["a", "b", "a", "c"] {
        f.issue(s);
    }
    f.call(W1);
    f.try_cmd(|h, now| h.pause(W2, now)).unwrap();
    let day = f.hall.local_day(f.now);
    let tickets: Vec<Ticket> = (1..=4)
        .filter_map(|id| f.hall.ticket(id).cloned())
        .collect();
    let restored = Restored {
        tickets,
        windows: (0..4).map(|w| (w, f.hall.window(w).clone())).collect(),
        counters: (0..3)
            .map(|s| Counter {
                service: s,
                day,
                last: f.hall.counter(s, day),
            })
            .collect(),
        floor_seqs: vec![(1, f.hall.floor_seq(1)), (2, f.hall.floor_seq(2))],
        hall_seq: f.hall.hall_seq(),
        clocks: (0..3).map(|s| (s, f.hall.clock(s))).collect(),
        recent: f
            .hall
            .recent(1)
            .cloned()
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect(),
        max_ticket_id: 4,
        max_line_pos: 4,
        issued: Vec::new(),
        ..Restored::default()
    };
    let back = Hall::restore(spec(), restored);
    assert_eq!(back, f.hall);
}

#[test]
fn a_new_day_expires_yesterdays_line_and_frees_the_windows() {
    let mut f = Fixture::new();
    assert!(f.hall.day_is_due(f.now), "unchecked since the start");
    assert!(
        f.hall.advance(f.now).is_empty(),
        "nothing of an earlier day"
    );
    assert!(!f.hall.day_is_due(f.now));
    f.issue("a"); // A001 → called by w1
    f.issue("a"); // A002 → serving at wa
    f.issue("a"); // A003 waits
    f.issue("b"); // B001 waits
    f.call(W1);
    f.call(WA);
    f.hall.start(WA, f.now).unwrap();
    // 23:59 the same day: nothing due.
    let late = Utc.with_ymd_and_hms(2026, 11, 26, 15, 59, 0).unwrap();
    assert!(!f.hall.day_is_due(late));
    // Hall-local midnight (16:00 UTC).
    f.now = Utc.with_ymd_and_hms(2026, 11, 26, 16, 0, 1).unwrap();
    assert!(f.hall.day_is_due(f.now));
    let out = f.hall.advance(f.now);
    assert_eq!(
        out.day_end,
        Some(DayEnd {
            expired: 2,
            done: 2
        })
    );
    assert_eq!(f.hall.waiting_count(0) + f.hall.waiting_count(1), 0);
    assert!(f.hall.window(W1).current.is_none() && f.hall.window(WA).current.is_none());
    for (n, want) in [
        ("A001", Status::Done),
        ("A002", Status::Done),
        ("A003", Status::Expired),
        ("B001", Status::Expired),
    ] {
        assert_eq!(f.status(n), want, "{n}");
    }
    // Events: a done ticket event per window, then waiting counts; seq gapless.
    let kinds: Vec<&str> = out
        .events
        .iter()
        .map(|e| match e.kind {
            EventKind::Ticket { .. } => "ticket",
            EventKind::Waiting { .. } => "waiting",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["ticket", "ticket", "waiting", "waiting"]);
    let seqs: Vec<u64> = out.events.iter().map(|e| e.hall_seq).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1));
    // A second check the same day does nothing; the new day numbers from 1.
    assert!(f.hall.advance(f.now).is_empty());
    assert_eq!(f.issue("a"), "A001");
    assert_eq!(f.call(W1).as_deref(), Some("A001"));
}

#[test]
fn close_day_ends_todays_tickets_and_counts_them() {
    let mut f = Fixture::new();
    f.issue("a");
    f.issue("a");
    f.issue("c");
    f.call(W1);
    let out = f.hall.close_day(f.now);
    assert_eq!(
        out.day_end,
        Some(DayEnd {
            expired: 2,
            done: 1
        })
    );
    assert_eq!(f.hall.close_day(f.now).day_end, Some(DayEnd::default()));
    assert_eq!(f.issue("a"), "A003", "numbering goes on until midnight");
    assert_eq!(f.call(W1).as_deref(), Some("A003"));
}

#[test]
fn a_closed_hall_refuses_walk_ins_and_names_its_next_opening() {
    let mut spec = (*spec()).clone();
    let mut hours = Hours::default();
    for d in 0..5 {
        hours.week[d] = DayHours::parse("09:00-12:00").unwrap();
    }
    hours.last_ticket_minutes = 15;
    spec.hours = Some(hours);
    let mut hall = Hall::new(Arc::new(spec));
    let req = |outside_hours| IssueRequest {
        service: "a".into(),
        priority: Priority::Normal,
        channel: Channel::Kiosk,
        notify_phone: None,
        phone_token: None,
        origin: None,
        outside_hours,
        slot: None,
    };
    // Thursday 2026-11-26, 08:00 in Shanghai.
    let early = Utc.with_ymd_and_hms(2026, 11, 26, 0, 0, 0).unwrap();
    let before = hall.clone();
    match hall.issue(req(false), "t1".into(), early) {
        Err(QueueError::Closed { next_open, message }) => {
            let want = Utc.with_ymd_and_hms(2026, 11, 26, 1, 0, 0).unwrap();
            assert_eq!(next_open.map(|t| t.with_timezone(&Utc)), Some(want));
            assert!(message.contains("closed"), "{message}");
        }
        other => panic!("expected closed, got {other:?}"),
    }
    assert_eq!(hall, before, "a refusal changes nothing");
    hall.issue(req(true), "t2".into(), early)
        .expect("staff issue outside hours");
    // 11:50: inside the last 15 minutes; Friday's opening is not next, 09:00 Friday is.
    let last = Utc.with_ymd_and_hms(2026, 11, 26, 3, 50, 0).unwrap();
    match hall.issue(req(false), "t3".into(), last) {
        Err(QueueError::Closed { next_open, message }) => {
            let want = Utc.with_ymd_and_hms(2026, 11, 27, 1, 0, 0).unwrap();
            assert_eq!(next_open.map(|t| t.with_timezone(&Utc)), Some(want));
            assert!(message.contains("last 15 minutes"), "{message}");
        }
        other => panic!("expected closed, got {other:?}"),
    }
    let open = Utc.with_ymd_and_hms(2026, 11, 26, 2, 0, 0).unwrap();
    hall.issue(req(false), "t4".into(), open).expect("open");
}

mod properties {
    //! Random command sequences keep the invariants of ARCHITECTURE.md:
    //! numbers unique per day, one window per ticket, gapless seqs, lines
    //! that hold exactly the waiting tickets, and a refused command that
    //! changes nothing.

    use super::*;
    use proptest::prelude::*;
    use std::collections::{BTreeMap, HashSet};

    #[derive(Clone, Debug)]
    enum Cmd {
        Issue(usize, bool),
        Call(usize),
        CallNumber(usize, u32),
        Recall(usize),
        Start(usize),
        Complete(usize),
        NoShow(usize),
        Transfer(usize, usize),
        Pause(usize),
        Resume(usize),
        Cancel(u32),
        CloseDay,
        /// Books the n-th open slot of service a from now.
        Book(usize),
        CancelBooking(u32),
        CheckIn(u32),
        /// Minutes to step the clock (a few hours cross midnight).
        Wait(u32),
    }

    fn cmd() -> impl Strategy<Value = Cmd> {
        prop_oneof![
            4 => (0..3usize, any::<bool>()).prop_map(|(s, p)| Cmd::Issue(s, p)),
            3 => (0..4usize).prop_map(Cmd::Call),
            1 => (0..4usize, 1..12u32).prop_map(|(w, n)| Cmd::CallNumber(w, n)),
            1 => (0..4usize).prop_map(Cmd::Recall),
            1 => (0..4usize).prop_map(Cmd::Start),
            2 => (0..4usize).prop_map(Cmd::Complete),
            1 => (0..4usize).prop_map(Cmd::NoShow),
            1 => (0..4usize, 0..3usize).prop_map(|(w, s)| Cmd::Transfer(w, s)),
            1 => (0..4usize).prop_map(Cmd::Pause),
            1 => (0..4usize).prop_map(Cmd::Resume),
            1 => (1..30u32).prop_map(Cmd::Cancel),
            1 => Just(Cmd::CloseDay),
            2 => (0..2usize).prop_map(Cmd::Book),
            1 => (1..12u32).prop_map(Cmd::CancelBooking),
            3 => (1..12u32).prop_map(Cmd::CheckIn),
            2 => (1..400u32).prop_map(Cmd::Wait),
        ]
    }

    fn check(hall: &Hall, seqs: &mut (u64, BTreeMap<i32, u64>), out: &Outcome) {
        // Gapless: each event one more than the last, per hall and floor.
        for e in &out.events {
            assert_eq!(e.hall_seq, seqs.0 + 1, "hall seq gapless");
            seqs.0 = e.hall_seq;
            let f = seqs.1.entry(e.floor).or_insert(0);
            assert_eq!(e.floor_seq, *f + 1, "floor {} seq gapless", e.floor);
            *f = e.floor_seq;
        }
        // Numbers unique per day.
        let mut numbers = HashSet::new();
        for t in hall.tickets() {
            assert!(
                numbers.insert((t.day, t.number.clone())),
                "{} twice on {}",
                t.number,
                t.day
            );
        }
        // One window per ticket; a window's ticket is at that window.
        let mut at_window = HashSet::new();
        for w in 0..4 {
            if let Some(id) = hall.window(w).current {
                assert!(at_window.insert(id), "ticket {id} at two windows");
                let t = hall.ticket(id).unwrap();
                assert!(t.status.is_at_window() && t.window == Some(w), "{t:?}");
            }
        }
        for t in hall.tickets() {
            if t.status.is_at_window() {
                assert!(
                    at_window.contains(&t.id),
                    "{} at a window nobody holds",
                    t.number
                );
            }
        }
        // Lines hold exactly the waiting tickets.
        let waiting = hall
            .tickets()
            .filter(|t| t.status == Status::Waiting)
            .count();
        let lined: usize = (0..3).map(|s| hall.waiting_count(s)).sum();
        assert_eq!(waiting, lined);
        for s in 0..3 {
            assert!(hall
                .line(s)
                .all(|t| t.status == Status::Waiting && t.service == s));
            // `ahead` is the place in call order.
            for (i, t) in hall.line(s).enumerate() {
                assert_eq!(hall.ahead(t), i, "{} ahead in line {s}", t.number);
            }
        }
        // What a window shows next is what it calls next.
        for w in 0..4 {
            if hall.window(w).paused {
                continue;
            }
            let shown = hall.window_line(w, 1).first().map(|t| t.id);
            let mut probe = hall.clone();
            let called = probe
                .call(w, None, DateTime::<Utc>::MAX_UTC)
                .ok()
                .and_then(|o| o.ticket);
            assert_eq!(shown, called, "window {w}'s next");
        }
        // No slot holds more than its places.
        let mut held: BTreeMap<DateTime<Utc>, u32> = BTreeMap::new();
        for id in 1..200 {
            if let Some(a) = hall.appointment(id) {
                if a.status.holds_place() {
                    *held.entry(a.start).or_default() += 1;
                }
            }
        }
        assert!(held.values().all(|&n| n <= 2), "{held:?}");
    }

    /// The token of the n-th booking (made up when there is none).
    fn booking_token(hall: &Hall, n: u32) -> String {
        hall.appointment(n.into())
            .map_or_else(|| format!("none{n}"), |a| a.token.clone())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
        #[test]
        fn random_commands_keep_the_invariants(cmds in proptest::collection::vec(cmd(), 1..120)) {
            let mut hall = Hall::new(super::super::booking_tests::booking_spec());
            let mut now = t0();
            let mut seqs = (0u64, BTreeMap::new());
            let mut tokens = 0u32;
            let services = ["a", "b", "c"];
            for c in cmds {
                now += Duration::seconds(7);
                // What a command sees first: the end of an earlier day.
                let rolled = hall.advance(now);
                check(&hall, &mut seqs, &rolled);
                let before = hall.clone();
                let r = match c {
                    Cmd::Issue(s, green) => {
                        tokens += 1;
                        let req = IssueRequest {
                            service: services[s].into(),
                            priority: if green { Priority::Green } else { Priority::Normal },
                            channel: Channel::Kiosk,
                            notify_phone: None,
                            phone_token: None,
                            origin: None,
                            outside_hours: true,
                            slot: None,
                        };
                        hall.issue(req, format!("tok{tokens}"), now)
                    }
                    Cmd::Call(w) => hall.call(w, None, now),
                    Cmd::CallNumber(w, n) => {
                        let prefix = ["A", "B", "C"][n as usize % 3];
                        hall.call(w, Some(&format!("{prefix}{:03}", n)), now)
                    }
                    Cmd::Recall(w) => hall.recall(w, now),
                    Cmd::Start(w) => hall.start(w, now),
                    Cmd::Complete(w) => hall.complete(w, now),
                    Cmd::NoShow(w) => hall.no_show(w, now),
                    Cmd::Transfer(w, s) => hall.transfer(w, services[s], now),
                    Cmd::Pause(w) => hall.pause(w, now),
                    Cmd::Resume(w) => hall.resume(w, now),
                    Cmd::Cancel(n) => hall.cancel(&format!("tok{n}"), now),
                    Cmd::CloseDay => Ok(hall.close_day(now)),
                    Cmd::Book(k) => {
                        tokens += 1;
                        let day = hall.local_day(now);
                        let slot = (0..3)
                            .flat_map(|d| hall.slots(0, day + Duration::days(d), now).unwrap())
                            .nth(k);
                        match slot {
                            Some((slot, _)) => {
                                let req = BookRequest {
                                    service: "a".into(),
                                    start: slot.start,
                                    phone: None,
                                    phone_token: None,
                                    origin: None,
                                    holder: None,
                                    token: format!("book{tokens}"),
                                    codes: vec![format!("C{tokens:05}")],
                                };
                                hall.book(req, now)
                            }
                            None => Ok(Outcome::default()),
                        }
                    }
                    Cmd::CancelBooking(n) => {
                        let token = booking_token(&hall, n);
                        hall.cancel_booking(&token, now)
                    }
                    Cmd::CheckIn(n) => {
                        tokens += 1;
                        let token = booking_token(&hall, n);
                        hall.check_in(BookingRef::Token(token), format!("tok{tokens}"), now)
                    }
                    Cmd::Wait(m) => {
                        now += Duration::minutes(i64::from(m));
                        Ok(Outcome::default())
                    }
                };
                match r {
                    Ok(out) => check(&hall, &mut seqs, &out),
                    Err(_) => prop_assert_eq!(&hall, &before, "a refused command changed the hall"),
                }
            }
        }
    }
}

/// A command on a hall, as the tests run it.
type Command = dyn Fn(&mut Hall, DateTime<Utc>) -> Result<Outcome, QueueError>;

/// What a command wrote, as the store would hand it to another node.
fn images(hall: &Hall, out: &Outcome) -> Restored {
    let mut d = Restored {
        tickets: out
            .tickets
            .iter()
            .filter_map(|id| hall.ticket(*id).cloned())
            .collect(),
        windows: out
            .windows
            .iter()
            .map(|w| (*w, hall.window(*w).clone()))
            .collect(),
        counters: out.counter.into_iter().collect(),
        clocks: out.clocks.iter().map(|s| (*s, hall.clock(*s))).collect(),
        recent: out.recent.clone(),
        hall_seq: out.events.iter().map(|e| e.hall_seq).max().unwrap_or(0),
        ..Restored::default()
    };
    for e in &out.events {
        d.floor_seqs.push((e.floor, e.floor_seq));
    }
    d
}

#[test]
fn a_hall_that_absorbs_another_nodes_writes_is_that_node_s_hall() {
    // Node A runs the commands; node B started from the same state and
    // only takes in what A's commands wrote (contract §14).
    let mut a = Fixture::new();
    let mut b = a.hall.clone();
    let step = |a: &mut Fixture, b: &mut Hall, f: &Command| {
        a.tick(7);
        if let Ok(out) = f(&mut a.hall, a.now) {
            b.absorb(images(&a.hall, &out));
        }
        assert_eq!(*b, a.hall);
    };
    let issue = |service: &'static str, p: Priority, token: &'static str| {
        move |h: &mut Hall, now| {
            h.issue(
                IssueRequest {
                    service: service.into(),
                    priority: p,
                    channel: Channel::Kiosk,
                    notify_phone: None,
                    phone_token: None,
                    origin: None,
                    outside_hours: false,
                    slot: None,
                },
                token.into(),
                now,
            )
        }
    };
    step(&mut a, &mut b, &issue("a", Priority::Normal, "t1"));
    step(&mut a, &mut b, &issue("b", Priority::Normal, "t2"));
    step(&mut a, &mut b, &issue("a", Priority::Green, "t3"));
    step(&mut a, &mut b, &issue("c", Priority::Normal, "t4"));
    step(&mut a, &mut b, &|h, now| h.call(W1, None, now));
    step(&mut a, &mut b, &|h, now| h.start(W1, now));
    step(&mut a, &mut b, &|h, now| h.call(W2, None, now));
    step(&mut a, &mut b, &|h, now| h.transfer(W2, "a", now));
    step(&mut a, &mut b, &|h, now| h.call(W1, None, now));
    step(&mut a, &mut b, &|h, now| h.recall(W1, now));
    step(&mut a, &mut b, &|h, now| h.no_show(W1, now));
    step(&mut a, &mut b, &|h, now| h.pause(WA, now));
    step(&mut a, &mut b, &|h, now| h.call(WC, None, now));
    step(&mut a, &mut b, &|h, now| h.complete(WC, now));
    step(&mut a, &mut b, &|h, now| h.cancel("t2", now));
    step(&mut a, &mut b, &|h, now| h.resume(WA, now));
    step(&mut a, &mut b, &|h, now| h.call(WA, None, now));
}
