//! Hall days and opening hours (contract §7), on the real binary with its
//! wall clock stepped by libfaketime: end of day at midnight and at
//! start-up, `close-day`, the opening hours and `closed`.

mod common;

use common::{eventually, window_token, Client, Clock, Server, Ws, ADMIN, KIOSK};
use serde_json::Value;

const TICKETS: &str = "/api/v1/halls/demo/tickets";

async fn ticket(c: &Client, token: &str) -> Value {
    let r = c.get(&format!("/api/v1/tickets/{token}")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json
}

fn token(t: &Value) -> String {
    t["token"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn at_midnight_yesterdays_line_expires_and_a_new_day_starts_clean() {
    let clock = Clock::at("2026-12-01T23:58:00+08:00");
    let s = Server::start_on_clock(None, &clock);
    let c = Client::new(&s);
    let a1 = c.issue("business").await;
    let a2 = c.issue("business").await;
    let a3 = c.issue("business").await;
    assert_eq!(a3["number"], "A003");
    c.window("3-01", "call", "{}").await; // A001 called
    c.window("3-02", "call", "{}").await; // A002 called …
    c.window("3-02", "start", "").await; // … and serving
    let mut floor = Ws::connect(&s.ws("/ws/v1/halls/demo/floors/3")).await;
    floor.next().await;
    let mut phone = Ws::connect(&s.ws(&format!("/ws/v1/tickets/{}", token(&a3)))).await;
    assert_eq!(phone.next().await["status"], "waiting");

    clock.set("2026-12-02T00:00:01+08:00");
    // The phone learns within the contract's 5 s (the test allows 10).
    let expired = phone.until(|m| m["status"] == "expired").await;
    assert_eq!(expired.last().unwrap()["number"], "A003");
    let events = floor
        .until(|m| m["type"] == "waiting" && m["service"] == "business" && m["count"] == 0)
        .await;
    let done: Vec<&Value> = events
        .iter()
        .filter(|m| m["type"] == "ticket" && m["status"] == "done")
        .collect();
    assert_eq!(done.len(), 2, "both windows' tickets are done: {events:?}");
    assert_eq!(ticket(&c, &token(&a1)).await["status"], "done");
    assert_eq!(ticket(&c, &token(&a2)).await["status"], "done");
    assert_eq!(ticket(&c, &token(&a3)).await["status"], "expired");
    let snap = c.floor(3).await;
    assert!(
        snap["windows"]
            .as_array()
            .unwrap()
            .iter()
            .all(|w| w["number"].is_null()),
        "no window holds yesterday's ticket: {snap}"
    );

    // Today's A001 is alone in line, and is what a call picks.
    let today = c.issue("business").await;
    assert_eq!(
        (today["number"].as_str(), today["ahead"].as_u64()),
        (Some("A001"), Some(0))
    );
    let r = c.window("3-01", "call", "{}").await;
    assert_eq!(r.json["ticket"]["number"], "A001");
    assert_eq!(
        r.json["ticket"]["token"],
        Value::Null,
        "windows never see tokens"
    );
    assert_eq!(ticket(&c, &token(&today)).await["status"], "called");
    // Calling yesterday's number by hand: no such ticket today.
    c.issue("business").await; // A002 of today waits
    let r = c.window("3-03", "call", r#"{"number":"A003"}"#).await;
    assert_eq!(r.status, 404, "{}", r.text);
}

#[tokio::test]
async fn tickets_of_days_that_ended_while_stopped_end_at_start_up() {
    let clock = Clock::at("2026-12-01T17:00:00+08:00");
    let mut s = Server::start_on_clock(None, &clock);
    let c = Client::new(&s);
    let waiting = c.issue("tax").await;
    let called = c.issue("tax").await;
    let r = c.window("3-01", "call", r#"{"number":"E002"}"#).await;
    assert_eq!(r.status, 200, "{}", r.text);
    s.terminate();
    clock.set("2026-12-03T08:30:00+08:00");
    s.respawn();
    let c = Client::new(&s);
    // Before anyone could see it: the first read already says so.
    assert_eq!(ticket(&c, &token(&waiting)).await["status"], "expired");
    assert_eq!(ticket(&c, &token(&called)).await["status"], "done");
    let fresh = c.issue("tax").await;
    assert_eq!(
        (fresh["number"].as_str(), fresh["ahead"].as_u64()),
        (Some("E001"), Some(0))
    );
    let w = c
        .send(
            "GET",
            "/api/v1/halls/demo/windows/3-01",
            Some(&window_token("3-01")),
            None,
            &[],
        )
        .await
        .json;
    assert!(w["ticket"].is_null(), "{w}");
}

#[tokio::test]
async fn close_day_ends_the_day_now_and_numbering_goes_on() {
    let s = Server::start();
    let c = Client::new(&s);
    let keep = c.issue("business").await;
    c.issue("business").await;
    c.issue("business").await;
    c.window("3-01", "call", "{}").await;
    let r = c.post("/api/v1/halls/demo/close-day", KIOSK, "").await;
    assert_eq!(r.status, 403, "{}", r.text);
    let r = c
        .post("/api/v1/halls/demo/close-day", &window_token("3-01"), "")
        .await;
    assert_eq!(r.status, 403);
    let r = c.post("/api/v1/halls/demo/close-day", ADMIN, "").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json, serde_json::json!({"expired": 2, "done": 1}));
    assert_eq!(ticket(&c, &token(&keep)).await["status"], "done");
    let again = c.post("/api/v1/halls/demo/close-day", ADMIN, "{}").await;
    assert_eq!(again.json, serde_json::json!({"expired": 0, "done": 0}));
    // Numbers still restart only at midnight; new tickets are taken.
    let next = c.issue("business").await;
    assert_eq!(
        (next["number"].as_str(), next["ahead"].as_u64()),
        (Some("A004"), Some(0))
    );
    let r = c
        .post("/api/v1/halls/demo/close-day", ADMIN, r#"{"now":true}"#)
        .await;
    assert_eq!((r.status, r.code()), (400, "bad_request"));
    assert!(r.text.contains("now"), "{}", r.text);
}

const HOURS_HALL: &str = r#"
[[halls]]
id = "laoshan"
name = "崂山区政务服务大厅"
timezone = "Asia/Shanghai"
admin_token = "laoshan-admin-token-1"
  [halls.hours]
  mon = "09:00-12:00,13:30-17:30"
  tue = "09:00-12:00,13:30-17:30"
  wed = "09:00-12:00,13:30-17:30"
  thu = "09:00-12:00,13:30-17:30"
  fri = "09:00-12:00,13:30-17:30"
  sat = "09:00-12:00"
  last_ticket_minutes = 30
  [[halls.hours.special]]
  date = "2026-12-04"
  hours = ""
  [[halls.hours.special]]
  date = "2026-12-06"
  hours = "09:00-17:00"
  [[halls.floors]]
  number = 1
  name = "1F"
  announce = "silent"
  [[halls.services]]
  id = "general"
  name = "综合"
  prefix = "A"
  floor = 1
  zone = "A"
  [[halls.windows]]
  id = "1-01"
  label = "1"
  floor = 1
  zone = "A"
  services = ["general"]
  token = "laoshan-window-1-01-tok"
  [[halls.kiosks]]
  id = "lobby"
  token = "laoshan-kiosk-lobby-tok"
"#;

const L_KIOSK: &str = "laoshan-kiosk-lobby-tok";
const L_ADMIN: &str = "laoshan-admin-token-1";
const L_TICKETS: &str = "/api/v1/halls/laoshan/tickets";
const GENERAL: &str = r#"{"service":"general"}"#;

#[tokio::test]
async fn opening_hours_decide_who_gets_a_number_and_the_board_says_so() {
    // Tuesday 2026-12-01, 08:00 in Qingdao.
    let clock = Clock::at("2026-12-01T08:00:00+08:00");
    let s = Server::start_on_clock(Some(HOURS_HALL), &clock);
    let c = Client::new(&s);
    let board = |c: Client| async move { c.get("/api/v1/halls/laoshan").await.json };

    let b = board(c.clone()).await;
    assert_eq!(b["open"], false);
    assert_eq!(b["hours_today"], "09:00-12:00,13:30-17:30");
    assert_eq!(b["next_change"], "2026-12-01T09:00:00.000+08:00");
    let r = c.post(L_TICKETS, L_KIOSK, GENERAL).await;
    assert_eq!((r.status, r.code()), (409, "closed"), "{}", r.text);
    assert_eq!(
        r.json["error"]["next_open"],
        "2026-12-01T09:00:00.000+08:00"
    );
    // Staff may still issue for a citizen who is already inside.
    let r = c.post(L_TICKETS, L_ADMIN, GENERAL).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json["number"], "A001");

    // Opening: within 5 s of the step the kiosk gets numbers.
    clock.set("2026-12-01T09:00:00+08:00");
    let r = c.post(L_TICKETS, L_KIOSK, GENERAL).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let b = board(c.clone()).await;
    assert_eq!(
        (b["open"].as_bool(), b["next_change"].as_str()),
        (Some(true), Some("2026-12-01T12:00:00.000+08:00"))
    );

    // The last 30 minutes before lunch: open, but no walk-in ticket.
    clock.set("2026-12-01T11:45:00+08:00");
    let r = c.post(L_TICKETS, L_KIOSK, GENERAL).await;
    assert_eq!((r.status, r.code()), (409, "closed"), "{}", r.text);
    assert_eq!(
        r.json["error"]["next_open"],
        "2026-12-01T13:30:00.000+08:00"
    );
    assert_eq!(
        board(c.clone()).await["open"],
        true,
        "last minutes do not close the hall"
    );
    // A refused request's window action still works: calls go on.
    let r = c
        .post(
            "/api/v1/halls/laoshan/windows/1-01/call",
            "laoshan-window-1-01-tok",
            "{}",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);

    // Friday 2026-12-04 is a holiday: closed, next open Saturday 09:00.
    clock.set("2026-12-04T10:00:00+08:00");
    let b = eventually(10, "the holiday on the board", || {
        let c = c.clone();
        async move {
            let b = c.get("/api/v1/halls/laoshan").await.json;
            (b["hours_today"] == "").then_some(b)
        }
    })
    .await;
    assert_eq!(b["open"], false);
    assert_eq!(b["next_change"], "2026-12-05T09:00:00.000+08:00");
    let r = c.post(L_TICKETS, L_KIOSK, GENERAL).await;
    assert_eq!(
        r.json["error"]["next_open"],
        "2026-12-05T09:00:00.000+08:00"
    );
    // The day changed twice since Tuesday: Tuesday's tickets ended.
    let list = c.get("/api/v1/halls/laoshan/floors/1").await.json;
    assert_eq!(list["waiting"][0]["count"], 0, "{list}");

    // Sunday 2026-12-06 is a make-up working day.
    clock.set("2026-12-06T16:00:00+08:00");
    let r = c.post(L_TICKETS, L_KIOSK, GENERAL).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json["number"], "A001", "a new day's numbering");
    assert_eq!(board(c.clone()).await["hours_today"], "09:00-17:00");
}

#[tokio::test]
async fn a_hall_without_hours_never_closes() {
    let clock = Clock::at("2026-12-06T03:00:00+08:00");
    let start = HOURS_HALL.find("  [halls.hours]").unwrap();
    let end = HOURS_HALL.find("  [[halls.floors]]").unwrap();
    let toml = format!("{}{}", &HOURS_HALL[..start], &HOURS_HALL[end..]);
    let s = Server::start_on_clock(Some(&toml), &clock);
    let c = Client::new(&s);
    let b = c.get("/api/v1/halls/laoshan").await.json;
    assert_eq!(b["open"], true);
    assert!(
        b["hours_today"].is_null() && b["next_change"].is_null(),
        "{b}"
    );
    let r = c.post(L_TICKETS, L_KIOSK, GENERAL).await;
    assert_eq!(r.status, 201);
}

#[tokio::test]
async fn the_demo_hall_is_open_around_the_clock() {
    let clock = Clock::at("2026-12-06T03:00:00+08:00");
    let s = Server::start_on_clock(None, &clock);
    let c = Client::new(&s);
    let b = c.get("/api/v1/halls/demo").await.json;
    assert_eq!(
        (b["open"].as_bool(), b["hours_today"].as_str()),
        (Some(true), Some("00:00-24:00"))
    );
    let r = c.post(TICKETS, KIOSK, r#"{"service":"business"}"#).await;
    assert_eq!(r.status, 201);
}
