//! §8 appointments on the real binary, its wall clock stepped by
//! libfaketime: slots from the opening hours, booking without overbooking
//! under concurrent requests, cancel, check-in by phone and by code at a
//! kiosk within its window, missed bookings, the call order of started
//! slots, the admin's day listing, the booking messages of §9, and a
//! `kill -9`.

mod common;

use common::receiver::{Mode, Receiver};
use common::{eventually, Client, Clock, Server, Ws};
use serde_json::Value;

const ADMIN: &str = "laoshan-admin-token-1";
const KIOSK: &str = "laoshan-kiosk-lobby-tok";
const WINDOW: &str = "laoshan-window-1-01-tok";
const SECRET: &str = "a-test-secret-of-32-characters!!";
const PHONE: &str = "13812345678";

/// A hall open on weekdays 09:00-12:00 and 13:30-17:30 with "property"
/// (prefix B) taking bookings of two per 30-minute slot, a week ahead,
/// check-in from 30 minutes before to 15 after; "general" (A) takes none.
/// `notify` is appended to the hall (a `[halls.notify]` table, or "").
fn config(notify: &str) -> String {
    format!(
        r#"
[[halls]]
id = "laoshan"
name = "崂山区政务服务大厅"
timezone = "Asia/Shanghai"
admin_token = "{ADMIN}"
  [halls.hours]
  mon = "09:00-12:00,13:30-17:30"
  tue = "09:00-12:00,13:30-17:30"
  wed = "09:00-12:00,13:30-17:30"
  thu = "09:00-12:00,13:30-17:30"
  fri = "09:00-12:00,13:30-17:30"
{notify}
  [[halls.floors]]
  number = 1
  name = "1F"
  announce = "silent"
  languages = ["zh", "en"]
  [[halls.services]]
  id = "general"
  name = "综合"
  prefix = "A"
  floor = 1
  zone = "A"
  [[halls.services]]
  id = "property"
  name = "不动产登记"
  name_en = "Real estate"
  prefix = "B"
  floor = 1
  zone = "B"
    [halls.services.appointments]
    slot_minutes = 30
    per_slot = 2
    days_ahead = 7
    early_minutes = 30
    late_minutes = 15
  [[halls.windows]]
  id = "1-01"
  label = "1"
  floor = 1
  zone = "B"
  services = ["property", "general"]
  token = "{WINDOW}"
  [[halls.kiosks]]
  id = "lobby"
  token = "{KIOSK}"
"#
    )
}

fn notify(url: &str) -> String {
    format!(
        "  [halls.notify]\n  webhook_url = \"{url}\"\n  secret = \"{SECRET}\"\n  remind_before_minutes = 60\n"
    )
}

const APPOINTMENTS: &str = "/api/v1/halls/laoshan/appointments";

fn slots_path(service: &str, date: &str) -> String {
    format!("/api/v1/halls/laoshan/services/{service}/slots?date={date}")
}

async fn book(c: &Client, start: &str, phone: Option<&str>) -> common::Resp {
    let body = match phone {
        Some(p) => {
            format!(r#"{{"service":"property","start":"{start}","notify":{{"phone":"{p}"}}}}"#)
        }
        None => format!(r#"{{"service":"property","start":"{start}"}}"#),
    };
    c.send("POST", APPOINTMENTS, None, Some(&body), &[]).await
}

async fn booked(c: &Client, start: &str, phone: Option<&str>) -> Value {
    let r = book(c, start, phone).await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.json
}

fn token(v: &Value) -> &str {
    v["token"].as_str().unwrap()
}

async fn appointment(c: &Client, a: &Value) -> Value {
    let r = c.get(&format!("/api/v1/appointments/{}", token(a))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json
}

async fn phone_check_in(c: &Client, a: &Value) -> common::Resp {
    let path = format!("/api/v1/appointments/{}/check-in", token(a));
    c.send("POST", &path, None, Some("{}"), &[]).await
}

async fn kiosk_check_in(c: &Client, code: &str) -> common::Resp {
    let body = format!(r#"{{"code":"{code}"}}"#);
    c.post("/api/v1/halls/laoshan/check-in", KIOSK, &body).await
}

async fn slots(c: &Client, date: &str) -> Vec<Value> {
    let r = c.get(&slots_path("property", date)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json.as_array().unwrap().clone()
}

async fn call(c: &Client) -> String {
    let r = c
        .post("/api/v1/halls/laoshan/windows/1-01/call", WINDOW, "{}")
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json["ticket"]["number"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

#[tokio::test]
async fn slots_come_from_the_hours_and_concurrent_bookings_never_overfill_one() {
    // Tuesday 2026-12-01, 08:00 in Qingdao.
    let clock = Clock::at("2026-12-01T08:00:00+08:00");
    let s = Server::start_on_clock(Some(&config("")), &clock);
    let c = Client::new(&s);
    let today = slots(&c, "2026-12-01").await;
    let starts: Vec<&str> = today
        .iter()
        .map(|s| &s["start"].as_str().unwrap()[11..16])
        .collect();
    assert_eq!(
        starts,
        [
            "09:00", "09:30", "10:00", "10:30", "11:00", "11:30", "13:30", "14:00", "14:30",
            "15:00", "15:30", "16:00", "16:30", "17:00"
        ]
    );
    assert_eq!(today[0]["start"], "2026-12-01T09:00:00.000+08:00");
    assert_eq!(today[0]["end"], "2026-12-01T09:30:00.000+08:00");
    assert_eq!(
        (
            today[0]["capacity"].as_u64(),
            today[0]["available"].as_u64()
        ),
        (Some(2), Some(2))
    );
    // Saturday closed; a week ahead in, eight days out; yesterday out.
    assert!(slots(&c, "2026-12-05").await.is_empty());
    assert_eq!(slots(&c, "2026-12-08").await.len(), 14);
    assert!(slots(&c, "2026-12-09").await.is_empty());
    assert!(slots(&c, "2026-11-30").await.is_empty());
    let r = c.get(&slots_path("general", "2026-12-01")).await;
    assert_eq!((r.status, r.code()), (404, "not_found"), "{}", r.text);
    let r = c.get(&slots_path("nope", "2026-12-01")).await;
    assert_eq!(r.status, 404);
    let r = c.get(&slots_path("property", "12/01/2026")).await;
    assert_eq!((r.status, r.code()), (400, "bad_request"));

    // Twenty citizens at once for the 09:00 slot: two get it.
    let start = "2026-12-01T09:00:00+08:00";
    let all = futures_util::future::join_all((0..20).map(|_| book(&c, start, None))).await;
    let won: Vec<&common::Resp> = all.iter().filter(|r| r.status == 201).collect();
    assert_eq!(
        won.len(),
        2,
        "{:?}",
        all.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert!(all
        .iter()
        .filter(|r| r.status != 201)
        .all(|r| (r.status, r.code()) == (409, "conflict")));
    assert_eq!(slots(&c, "2026-12-01").await[0]["available"], 0);
    let a = &won[0].json;
    assert_eq!(a["status"], "booked");
    assert_eq!(a["hall"], "laoshan");
    assert_eq!(a["service"], "property");
    assert_eq!(a["start"], "2026-12-01T09:00:00.000+08:00");
    assert_eq!(a["end"], "2026-12-01T09:30:00.000+08:00");
    assert_ne!(won[0].json["code"], won[1].json["code"]);
    let code = a["code"].as_str().unwrap();
    assert!(
        code.len() == 6
            && code
                .chars()
                .all(|c| "ABCDEFGHJKMNPQRSTUVWXYZ23456789".contains(c))
    );
    assert_eq!(a["appointment_url"], format!("/a/{}", token(a)));
    let qr = reqwest::get(s.url(a["qr_svg"].as_str().unwrap()))
        .await
        .unwrap();
    assert_eq!(qr.headers()["content-type"], "image/svg+xml");
    assert_eq!(appointment(&c, a).await["code"], code);

    // A time that is no slot's start; a started slot; too far ahead.
    let r = book(&c, "2026-12-01T09:10:00+08:00", None).await;
    assert_eq!((r.status, r.code()), (400, "bad_request"), "{}", r.text);
    let r = book(&c, "2026-12-09T09:00:00+08:00", None).await;
    assert_eq!(r.status, 409, "{}", r.text);
    clock.set("2026-12-01T09:40:00+08:00");
    let r = eventually(10, "the 09:30 slot to have started", || async {
        let r = book(&c, "2026-12-01T09:30:00+08:00", None).await;
        (r.status == 409).then_some(r)
    })
    .await;
    assert!(r.text.contains("started"), "{}", r.text);
    assert_eq!(
        slots(&c, "2026-12-01").await[0]["start"],
        "2026-12-01T10:00:00.000+08:00"
    );
    // Bad bodies change nothing.
    for body in [
        r#"{"service":"property"}"#,
        r#"{"service":"property","start":"soon"}"#,
        r#"{"service":"property","start":"2026-12-01T10:00:00+08:00","seat":1}"#,
        r#"{"service":"property","start":"2026-12-01T10:00:00+08:00","notify":{"phone":"call me"}}"#,
    ] {
        let r = c.send("POST", APPOINTMENTS, None, Some(body), &[]).await;
        assert_eq!(
            (r.status, r.code()),
            (400, "bad_request"),
            "{body}: {}",
            r.text
        );
        assert!(!r.text.contains("call me"), "{}", r.text);
    }
    assert_eq!(slots(&c, "2026-12-01").await[0]["available"], 2);
}

#[tokio::test]
async fn a_cancel_frees_the_place_and_a_booking_is_kept_through_kill_9() {
    let clock = Clock::at("2026-12-01T08:00:00+08:00");
    let mut s = Server::start_on_clock(Some(&config("")), &clock);
    let c = Client::new(&s);
    let start = "2026-12-01T10:00:00+08:00";
    let a = booked(&c, start, Some(PHONE)).await;
    let b = booked(&c, start, None).await;
    assert_eq!(book(&c, start, None).await.status, 409);
    let cancel = format!("/api/v1/appointments/{}/cancel", token(&a));
    let r = c.send("POST", &cancel, None, None, &[]).await;
    assert_eq!(
        (r.status, r.json["status"].as_str()),
        (200, Some("cancelled")),
        "{}",
        r.text
    );
    let r = c.send("POST", &cancel, None, None, &[]).await;
    assert_eq!((r.status, r.code()), (409, "conflict"));
    assert_eq!(phone_check_in(&c, &a).await.status, 409);
    let r = c.get("/api/v1/appointments/not-a-token").await;
    assert_eq!(r.status, 404);
    let free = |v: Vec<Value>| {
        v.iter()
            .find(|s| s["start"] == "2026-12-01T10:00:00.000+08:00")
            .unwrap()["available"]
            .clone()
    };
    assert_eq!(free(slots(&c, "2026-12-01").await), 1);

    s.kill9();
    s.respawn();
    let c = Client::new(&s);
    assert_eq!(appointment(&c, &a).await["status"], "cancelled");
    assert_eq!(appointment(&c, &b).await["status"], "booked");
    assert_eq!(free(slots(&c, "2026-12-01").await), 1);
    booked(&c, start, None).await;
    assert_eq!(free(slots(&c, "2026-12-01").await), 0);
    assert_eq!(book(&c, start, None).await.status, 409);
}

#[tokio::test]
async fn check_in_opens_early_and_a_started_slot_is_called_before_walk_ins() {
    let clock = Clock::at("2026-12-01T08:00:00+08:00");
    let s = Server::start_on_clock(Some(&config("")), &clock);
    let c = Client::new(&s);
    let nine = booked(&c, "2026-12-01T09:00:00+08:00", None).await;
    let half = booked(&c, "2026-12-01T09:30:00+08:00", None).await;

    let r = phone_check_in(&c, &nine).await;
    assert_eq!((r.status, r.code()), (409, "conflict"));
    assert!(r.text.contains("08:30"), "says when it opens: {}", r.text);
    clock.set("2026-12-01T08:30:00+08:00");
    let first = eventually(10, "check-in to open", || async {
        let r = phone_check_in(&c, &nine).await;
        (r.status == 201).then_some(r.json)
    })
    .await;
    assert_eq!(first["number"], "B001");
    assert_eq!(first["channel"], "appointment");
    assert_eq!(first["service"], "property");
    let again = phone_check_in(&c, &nine).await;
    assert_eq!(again.status, 409);
    assert!(again.text.contains("B001"), "{}", again.text);
    let shown = appointment(&c, &nine).await;
    assert_eq!(shown["status"], "checked_in");
    assert_eq!(shown["ticket"]["number"], "B001");
    assert_eq!(shown["ticket"]["token"], first["token"]);

    // A walk-in of the same service, numbered on the same counter (staff
    // issue before the hall opens).
    let walk_in = c.issue_in("laoshan", ADMIN, "property").await;
    assert_eq!(walk_in["number"], "B002");
    // The kiosk checks the 09:30 booking in by its code, typed loosely.
    let code = half["code"].as_str().unwrap().to_lowercase();
    let loose = format!("{} {}", &code[..3], &code[3..]);
    let r = kiosk_check_in(&c, &loose).await;
    assert_eq!(r.status, 409, "opens at 09:00: {}", r.text);
    clock.set("2026-12-01T09:00:05+08:00");
    let third = eventually(10, "the kiosk check-in", || async {
        let r = kiosk_check_in(&c, &loose).await;
        (r.status == 201).then_some(r.json)
    })
    .await;
    assert_eq!(
        (third["number"].as_str(), third["channel"].as_str()),
        (Some("B003"), Some("appointment"))
    );
    assert!(
        third["token"].is_string() && third["qr_svg"].is_string(),
        "the kiosk prints it"
    );
    assert_eq!(kiosk_check_in(&c, &loose).await.status, 409);
    let r = kiosk_check_in(&c, "ZZZZZZ").await;
    assert_eq!(r.status, 404);
    let r = kiosk_check_in(&c, "no").await;
    assert_eq!((r.status, r.code()), (400, "bad_request"));
    let r = c
        .post(
            "/api/v1/halls/laoshan/check-in",
            WINDOW,
            r#"{"code":"ZZZZZZ"}"#,
        )
        .await;
    assert_eq!(r.status, 403, "a window is no kiosk");
    let r = c
        .send(
            "POST",
            "/api/v1/halls/laoshan/check-in",
            None,
            Some(r#"{"code":"ZZZZZZ"}"#),
            &[],
        )
        .await;
    assert_eq!(r.status, 401);

    // 09:00: B001's slot has started, B003's (09:30) not: B001, then the
    // older walk-in B002, B003 waits.
    let mut phone = Ws::connect(&s.ws(&format!("/ws/v1/tickets/{}", token(&third)))).await;
    assert_eq!(phone.next().await["ahead"], 2);
    assert_eq!(call(&c).await, "B001");
    let m = phone
        .until(|m| m["type"] == "ticket" && m["ahead"] == 1)
        .await;
    assert_eq!(m.last().unwrap()["number"], "B003");
    // 09:30: B003's slot starts and it moves ahead of the walk-in; its
    // phone is told without any command.
    clock.set("2026-12-01T09:30:00+08:00");
    let m = phone
        .until(|m| m["type"] == "ticket" && m["ahead"] == 0)
        .await;
    assert_eq!(m.last().unwrap()["status"], "waiting");
    assert_eq!(call(&c).await, "B003");
    assert_eq!(call(&c).await, "B002");
}

#[tokio::test]
async fn a_booking_not_checked_in_in_time_is_missed_and_the_day_lists_masked_phones() {
    let clock = Clock::at("2026-12-01T08:00:00+08:00");
    let s = Server::start_on_clock(Some(&config("")), &clock);
    let c = Client::new(&s);
    let late = booked(&c, "2026-12-01T09:00:00+08:00", Some(PHONE)).await;
    let kept = booked(&c, "2026-12-01T09:30:00+08:00", None).await;
    let tomorrow = booked(&c, "2026-12-02T09:00:00+08:00", Some(PHONE)).await;
    // 09:44: 09:00-09:30 + 15 minutes is 09:45.
    clock.set("2026-12-01T09:44:00+08:00");
    eventually(10, "the clock step", || async {
        (phone_check_in(&c, &kept).await.status == 201).then_some(())
    })
    .await;
    assert_eq!(appointment(&c, &late).await["status"], "booked");
    clock.set("2026-12-01T09:45:00+08:00");
    eventually(10, "the booking to be missed", || async {
        (appointment(&c, &late).await["status"] == "missed").then_some(())
    })
    .await;
    let r = phone_check_in(&c, &late).await;
    assert_eq!(r.status, 409);
    assert!(r.text.contains("missed"), "{}", r.text);

    let day = c
        .send(
            "GET",
            &format!("{APPOINTMENTS}?date=2026-12-01"),
            Some(ADMIN),
            None,
            &[],
        )
        .await;
    assert_eq!(day.status, 200, "{}", day.text);
    let rows = day.json.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["code"], late["code"]);
    assert_eq!(
        (rows[0]["status"].as_str(), rows[0]["number"].as_str()),
        (Some("missed"), None)
    );
    assert_eq!(rows[0]["phone"], "138****5678");
    assert_eq!(
        (rows[1]["status"].as_str(), rows[1]["number"].as_str()),
        (Some("checked_in"), Some("B001"))
    );
    assert!(rows[1]["phone"].is_null());
    assert!(!day.text.contains(PHONE) && !day.text.contains(token(&late)));
    let next = c
        .send(
            "GET",
            &format!("{APPOINTMENTS}?date=2026-12-02"),
            Some(ADMIN),
            None,
            &[],
        )
        .await;
    assert_eq!(next.json.as_array().unwrap().len(), 1);
    assert_eq!(next.json[0]["code"], tomorrow["code"]);
    let r = c.send("GET", APPOINTMENTS, Some(KIOSK), None, &[]).await;
    assert_eq!(r.status, 403);
    let r = c.send("GET", APPOINTMENTS, None, None, &[]).await;
    assert_eq!(r.status, 401);
    // No phone in the server's own log either.
    assert!(!s.logs().contains(PHONE));
}

#[tokio::test]
async fn bookings_send_booked_reminder_and_missed_messages_and_a_stale_reminder_is_dropped() {
    let rx = Receiver::start(Mode::Ok).await;
    let clock = Clock::at("2026-12-01T08:00:00+08:00");
    // One phone books three slots of a day here: the caps of A3 are off
    // (they have their own tests in tests/citizens.rs); the phone is
    // verified first, as the hall asks (A2).
    let caps =
        "  [halls.citizens]\n  open_bookings_per_phone = 0\n  bookings_per_phone_per_date = 0\n";
    let s = Server::start_on_clock(Some(&config(&format!("{}{caps}", notify(&rx.url)))), &clock);
    let c = Client::new(&s);
    let phone = common::verify_phone(&c, &rx, "laoshan", PHONE).await;
    let book_verified = |start: &'static str| {
        let c = c.clone();
        let body = format!(
            r#"{{"service":"property","start":"{start}","notify":{{"phone_token":"{phone}"}}}}"#
        );
        async move {
            let r = c.send("POST", APPOINTMENTS, None, Some(&body), &[]).await;
            assert_eq!(r.status, 201, "{}", r.text);
            r.json
        }
    };
    // 09:00 is inside the hour's lead already: no reminder for it.
    let soon = book_verified("2026-12-01T09:00:00+08:00").await;
    let later = book_verified("2026-12-01T10:00:00+08:00").await;
    let gone = book_verified("2026-12-01T10:30:00+08:00").await;
    // No phone, no message (staff book it: a citizen without a token must
    // name a verified phone in this hall).
    let r = c
        .post(
            APPOINTMENTS,
            KIOSK,
            r#"{"service":"property","start":"2026-12-01T10:30:00+08:00"}"#,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let booked_only = || {
        rx.got()
            .into_iter()
            .filter(|g| g.json()["kind"] != "verify")
            .collect::<Vec<_>>()
    };
    let got = eventually(10, "three booked messages", || async {
        let g = booked_only();
        (g.len() >= 3).then_some(g)
    })
    .await;
    assert_eq!(got.len(), 3);
    for g in &got {
        let m = g.json();
        assert_eq!(m["kind"], "booked");
        assert_eq!(m["phone"], PHONE);
        assert!(m["ticket"].is_null());
        assert_eq!(m["appointment"]["service"], "property");
        let code = m["appointment"]["code"].as_str().unwrap();
        assert!(m["text"].as_str().unwrap().contains(code), "{m}");
        assert!(m["text_en"].as_str().unwrap().contains(code), "{m}");
    }
    let codes: Vec<&str> = [&soon, &later, &gone]
        .iter()
        .map(|a| a["code"].as_str().unwrap())
        .collect();
    for code in &codes {
        assert!(got.iter().any(|g| g.json()["appointment"]["code"] == *code));
    }
    let first = got
        .iter()
        .find(|g| g.json()["appointment"]["code"] == codes[1])
        .unwrap()
        .json();
    assert_eq!(
        first["appointment"]["start"],
        "2026-12-01T10:00:00.000+08:00"
    );
    assert_eq!(first["appointment"]["end"], "2026-12-01T10:30:00.000+08:00");
    assert!(
        first["text"].as_str().unwrap().contains("09:30"),
        "check-in opens: {first}"
    );

    // 09:00: the reminder of the 10:00 booking.
    clock.set("2026-12-01T09:00:00+08:00");
    let reminder = eventually(10, "the appointment reminder", || async {
        rx.got()
            .into_iter()
            .find(|g| g.json()["kind"] == "appointment_reminder")
    })
    .await
    .json();
    assert_eq!(reminder["appointment"]["code"], codes[1]);
    // 09:30 (the 10:30 booking's reminder): the receiver fails it once, the
    // citizen cancels before the retry, so it is dropped, not sent late.
    *rx.mode.lock().unwrap() = Mode::Fail500;
    clock.set("2026-12-01T09:30:00+08:00");
    eventually(10, "the second reminder's first try", || async {
        let n = rx
            .got()
            .iter()
            .filter(|g| g.json()["kind"] == "appointment_reminder")
            .count();
        (n == 2).then_some(())
    })
    .await;
    let cancel = format!("/api/v1/appointments/{}/cancel", token(&gone));
    assert_eq!(c.send("POST", &cancel, None, None, &[]).await.status, 200);
    *rx.mode.lock().unwrap() = Mode::Ok;
    // The clock stands still between steps: step it past the retry's time.
    clock.set("2026-12-01T09:30:05+08:00");
    let dropped = eventually(15, "the stale reminder dropped", || async {
        let r = c
            .send(
                "GET",
                "/api/v1/halls/laoshan/outbox?status=dropped",
                Some(ADMIN),
                None,
                &[],
            )
            .await;
        r.json.as_array().and_then(|a| a.first().cloned())
    })
    .await;
    assert_eq!(dropped["kind"], "appointment_reminder");
    assert_eq!(dropped["phone"], "138****5678");
    // 09:45: the 09:00 booking, never checked in, is missed.
    clock.set("2026-12-01T09:45:00+08:00");
    let missed = eventually(10, "the missed message", || async {
        rx.got().into_iter().find(|g| g.json()["kind"] == "missed")
    })
    .await
    .json();
    assert_eq!(missed["appointment"]["code"], codes[0]);
    // A check-in makes its ticket's "issued" message, with the number.
    let t = phone_check_in(&c, &later).await;
    assert_eq!(t.status, 201, "{}", t.text);
    let issued = eventually(10, "the issued message", || async {
        rx.got().into_iter().find(|g| g.json()["kind"] == "issued")
    })
    .await
    .json();
    assert_eq!(issued["ticket"]["number"], t.json["number"]);
    let kinds = rx.kinds();
    assert_eq!(
        kinds.iter().filter(|k| *k == "missed").count(),
        1,
        "{kinds:?}"
    );
}
