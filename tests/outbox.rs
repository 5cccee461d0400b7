//! §9 the outbox: messages to citizens' phones written with the change
//! that makes them and delivered, signed, to a real HTTP receiver started
//! here on port 0, which fails on purpose; retried with backoff, dead after
//! the limit, retried by the admin, delivered after `kill -9`.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::receiver::{Got, Mode, Receiver};
use common::{eventually, Client, Server, ADMIN, KIOSK};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

const SECRET: &str = "a-test-secret-of-32-characters!!";

fn config(url: &str, extra: &str) -> String {
    hallcast::demo::CONFIG.replacen(
        "  [[halls.floors]]",
        &format!(
            "  [halls.notify]\n  webhook_url = \"{url}\"\n  secret = \"{SECRET}\"\n{extra}\n\n  [[halls.floors]]"
        ),
        1,
    )
}

async fn issue_with_phone(c: &Client, service: &str) -> Value {
    let r = c
        .post(
            "/api/v1/halls/demo/tickets",
            KIOSK,
            &format!(r#"{{"service":"{service}","notify":{{"phone":"13812345678"}}}}"#),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.json
}

async fn outbox(c: &Client, query: &str) -> Vec<Value> {
    let r = c
        .send(
            "GET",
            &format!("/api/v1/halls/demo/outbox{query}"),
            Some(ADMIN),
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json.as_array().unwrap().clone()
}

#[tokio::test]
async fn messages_are_signed_delivered_and_listed_with_masked_phones() {
    let rx = Receiver::start(Mode::Ok).await;
    let s = Server::start_config(&config(&rx.url, "  remind_ahead = 0"));
    let c = Client::new(&s);
    let t = issue_with_phone(&c, "business").await;
    eventually(10, "the issued message", || async {
        (rx.got().len() == 1).then_some(())
    })
    .await;
    // Window 3-01 (3F, which speaks Chinese and English) calls it.
    assert_eq!(c.window("3-01", "call", "{}").await.status, 200);
    eventually(10, "the called message", || async {
        (rx.got().len() == 2).then_some(())
    })
    .await;
    let got = rx.got();
    for g in &got {
        let ts: i64 = g.header("x-hallcast-timestamp").parse().unwrap();
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(format!("{ts}.{}", g.body).as_bytes());
        let want: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(g.header("x-hallcast-signature"), format!("sha256={want}"));
        assert_eq!(
            g.header("idempotency-key"),
            g.json()["id"].as_str().unwrap()
        );
        assert!(g.header("content-type").starts_with("application/json"));
        assert_eq!(
            g.json()["phone"],
            "13812345678",
            "the full number, only here"
        );
        assert_eq!(g.json()["hall"], "demo");
    }
    let issued = got[0].json();
    assert_eq!(issued["kind"], "issued");
    assert_eq!(issued["ticket"]["number"], t["number"]);
    let called = got[1].json();
    assert_eq!(called["kind"], "called");
    assert_eq!(called["recall"], 0);
    let text = called["text"].as_str().unwrap();
    assert!(
        text.contains(t["number"].as_str().unwrap()) && text.contains("窗口"),
        "{text}"
    );
    assert!(
        called["text_en"].as_str().unwrap().contains("window"),
        "{called}"
    );
    // A floor without English gets no English text.
    let fund = issue_with_phone(&c, "fund").await;
    assert_eq!(fund["floor"], 2);
    eventually(10, "the fund's issued message", || async {
        (rx.got().len() == 3).then_some(())
    })
    .await;
    assert!(
        rx.got()[2].json()["text_en"].is_null(),
        "{}",
        rx.got()[2].body
    );
    assert_eq!(called["ticket"]["window"]["id"], "3-01");
    // A recall is called again, with its count.
    assert_eq!(c.window("3-01", "recall", "{}").await.status, 200);
    eventually(10, "the recall", || async {
        (rx.got().len() == 4).then_some(())
    })
    .await;
    assert_eq!(rx.got()[3].json()["recall"], 1);
    // The listing: masked phones, delivered.
    let list = eventually(10, "all delivered", || async {
        let l = outbox(&c, "?status=delivered").await;
        (l.len() == 4).then_some(l)
    })
    .await;
    for m in &list {
        assert_eq!(m["phone"], "138****5678");
    }
    assert!(!s.logs().contains("13812345678"), "no phone in the logs");
    let r = c
        .send("GET", "/api/v1/halls/demo/outbox", Some(KIOSK), None, &[])
        .await;
    assert_eq!(r.status, 403);
    let r = c
        .send(
            "GET",
            "/api/v1/halls/demo/outbox?status=lost",
            Some(ADMIN),
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn failures_are_retried_apart_then_the_message_is_dead_until_the_admin_retries() {
    let rx = Receiver::start(Mode::Fail500).await;
    let s = Server::start_config(&config(&rx.url, "  remind_ahead = 0\n  max_attempts = 3"));
    let c = Client::new(&s);
    issue_with_phone(&c, "business").await;
    let dead = eventually(20, "dead after 3 tries", || async {
        let l = outbox(&c, "?status=dead").await;
        (l.len() == 1).then_some(l)
    })
    .await;
    assert_eq!(dead[0]["attempts"], 3);
    assert!(
        dead[0]["last_error"].as_str().unwrap().contains("500"),
        "{}",
        dead[0]
    );
    let got = rx.got();
    assert_eq!(got.len(), 3, "exactly max_attempts tries");
    let gap1 = got[1].at - got[0].at;
    let gap2 = got[2].at - got[1].at;
    assert!(
        gap1 >= Duration::from_millis(700),
        "about 1 s before the 2nd try: {gap1:?}"
    );
    assert!(
        gap2 >= Duration::from_millis(1500),
        "about 2 s before the 3rd: {gap2:?}"
    );
    assert!(
        got.iter().all(|g| g.json()["id"] == got[0].json()["id"]),
        "the same message"
    );
    // Fixed on the receiver's side; the admin retries the dead message.
    *rx.mode.lock().unwrap() = Mode::Ok;
    let id = dead[0]["id"].as_str().unwrap();
    let r = c
        .post(
            &format!("/api/v1/halls/demo/outbox/{id}/retry"),
            ADMIN,
            "{}",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["status"], "pending");
    assert_eq!(r.json["attempts"], 0);
    eventually(10, "delivered after the retry", || async {
        (outbox(&c, "?status=delivered").await.len() == 1).then_some(())
    })
    .await;
    let again = c
        .post(
            &format!("/api/v1/halls/demo/outbox/{id}/retry"),
            ADMIN,
            "{}",
        )
        .await;
    assert_eq!((again.status, again.code()), (409, "conflict"));
    let none = c
        .post("/api/v1/halls/demo/outbox/nope/retry", ADMIN, "{}")
        .await;
    assert_eq!(none.status, 404);
}

#[tokio::test]
async fn a_refused_command_makes_no_message_and_resets_are_retried() {
    let rx = Receiver::start(Mode::Ok).await;
    rx.fail_first.store(0, Ordering::SeqCst);
    *rx.mode.lock().unwrap() = Mode::Reset;
    let s = Server::start_config(&config(&rx.url, "  remind_ahead = 0\n  max_attempts = 2"));
    let c = Client::new(&s);
    let r = c
        .post(
            "/api/v1/halls/demo/tickets",
            KIOSK,
            r#"{"service":"nope","notify":{"phone":"13812345678"}}"#,
        )
        .await;
    assert_eq!(r.status, 404);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(rx.got().is_empty(), "a refused command makes none");
    assert!(outbox(&c, "").await.is_empty());
    // A receiver that resets the connection: retried, then dead.
    issue_with_phone(&c, "business").await;
    let dead = eventually(10, "dead after resets", || async {
        let l = outbox(&c, "?status=dead").await;
        (l.len() == 1).then_some(l)
    })
    .await;
    assert_eq!(dead[0]["attempts"], 2);
}

#[tokio::test]
async fn a_pending_message_is_delivered_after_kill_9_and_restart() {
    let rx = Receiver::start(Mode::Fail500).await;
    let mut s = Server::start_config(&config(&rx.url, "  remind_ahead = 0"));
    let c = Client::new(&s);
    issue_with_phone(&c, "business").await;
    eventually(10, "a failed try", || async {
        (!rx.got().is_empty()).then_some(())
    })
    .await;
    s.kill9();
    *rx.mode.lock().unwrap() = Mode::Ok;
    s.respawn();
    let c = Client::new(&s);
    eventually(20, "delivered after the restart", || async {
        (outbox(&c, "?status=delivered").await.len() == 1).then_some(())
    })
    .await;
    assert_eq!(rx.kinds().last().unwrap(), "issued");
}

#[tokio::test]
async fn a_reminder_comes_once_when_few_are_ahead_and_not_to_who_was_close_already() {
    let rx = Receiver::start(Mode::Ok).await;
    let s = Server::start_config(&config(&rx.url, "  remind_ahead = 1"));
    let c = Client::new(&s);
    let a = issue_with_phone(&c, "construction").await; // 0 ahead
    let b = issue_with_phone(&c, "construction").await; // 1 ahead: close already
    let d = issue_with_phone(&c, "construction").await; // 2 ahead: will be reminded
    eventually(10, "three issued", || async {
        (rx.got().len() == 3).then_some(())
    })
    .await;
    // Deliveries run side by side: find each ticket's message by number.
    let text_of = |t: &Value| {
        rx.got()
            .iter()
            .map(Got::json)
            .find(|m| m["ticket"]["number"] == t["number"])
            .map(|m| m["text"].as_str().unwrap().to_string())
            .unwrap()
    };
    assert!(text_of(&b).contains("不再另行提醒"), "{}", text_of(&b));
    assert!(text_of(&d).contains("提醒您"), "{}", text_of(&d));
    // 7-01 calls A's: B now has 0 ahead (no reminder: it was close), D 1.
    assert_eq!(c.window("7-01", "call", "{}").await.status, 200);
    eventually(10, "called and a reminder", || async {
        (rx.got().len() == 5).then_some(())
    })
    .await;
    let later: Vec<Value> = rx.got()[3..].iter().map(Got::json).collect();
    let reminder = later
        .iter()
        .find(|m| m["kind"] == "reminder")
        .expect("a reminder");
    assert_eq!(reminder["ticket"]["number"], d["number"]);
    assert!(later
        .iter()
        .any(|m| m["kind"] == "called" && m["ticket"]["number"] == a["number"]));
    // Another call: B called, D at 0 ahead — no second reminder.
    assert_eq!(c.window("7-01", "call", "{}").await.status, 200);
    eventually(10, "B called", || async {
        (rx.got().len() == 6).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let kinds = rx.kinds();
    assert_eq!(
        kinds.iter().filter(|k| *k == "reminder").count(),
        1,
        "{kinds:?}"
    );
    assert_eq!(rx.got()[5].json()["ticket"]["number"], b["number"]);
}

#[tokio::test]
async fn many_messages_at_once_are_each_delivered_once() {
    let rx = Receiver::start(Mode::Ok).await;
    // One phone gets all 400: no cap on its day's messages here (A2's cap
    // has its own test in tests/citizens.rs).
    let s = Server::start_config(&config(
        &rx.url,
        "  remind_ahead = 0

  [halls.citizens]
  messages_per_phone_per_day = 0",
    ));
    let c = Client::new(&s);
    // Deliveries finish while the worker reads the next due ones: none may
    // be sent twice (a read that began before a delivery was recorded
    // still sees it pending).
    let tasks: Vec<_> = (0..400)
        .map(|i| {
            let c = c.clone();
            let service = ["business", "tax", "fund", "social"][i % 4];
            tokio::spawn(async move { issue_with_phone(&c, service).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    eventually(30, "400 delivered", || async {
        (rx.got().len() >= 400).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = rx.got();
    let ids: std::collections::HashSet<String> = got
        .iter()
        .map(|g| g.json()["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!((got.len(), ids.len()), (400, 400), "each message once");
}

#[tokio::test]
async fn transfers_and_day_ends_are_told_and_a_late_reminder_is_dropped() {
    let rx = Receiver::start(Mode::Ok).await;
    let s = Server::start_config(&config(&rx.url, "  remind_ahead = 1"));
    let c = Client::new(&s);
    // Transferred: 3-01 calls a business ticket and sends it on to tax.
    let t = issue_with_phone(&c, "business").await;
    assert_eq!(c.window("3-01", "call", "{}").await.status, 200);
    let r = c.window("3-01", "transfer", r#"{"service":"tax"}"#).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let moved = eventually(10, "the transfer message", || async {
        rx.got()
            .into_iter()
            .map(|g| g.json())
            .find(|m| m["kind"] == "transferred")
    })
    .await;
    assert_eq!(
        moved["ticket"]["number"], t["number"],
        "one number through the visit"
    );
    assert_eq!(moved["ticket"]["service"], "tax", "the new service");
    assert!(
        moved["text"].as_str().unwrap().contains("号码不变"),
        "{moved}"
    );
    // Expired: the day ends with a phone ticket still waiting.
    let w = issue_with_phone(&c, "fund").await;
    let r = c.post("/api/v1/halls/demo/close-day", ADMIN, "{}").await;
    assert_eq!(r.status, 200);
    // Both waiting tickets end: the fund one, and the one sent on to tax.
    let expired = eventually(10, "the expired messages", || async {
        let mut numbers: Vec<String> = rx
            .got()
            .into_iter()
            .map(|g| g.json())
            .filter(|m| m["kind"] == "expired")
            .map(|m| m["ticket"]["number"].as_str().unwrap().to_string())
            .collect();
        numbers.sort();
        (numbers.len() == 2).then_some(numbers)
    })
    .await;
    let mut want = vec![
        t["number"].as_str().unwrap().to_string(),
        w["number"].as_str().unwrap().to_string(),
    ];
    want.sort();
    assert_eq!(expired, want);
    // A reminder that could not be delivered before its ticket was called
    // is dropped, not sent late.
    *rx.mode.lock().unwrap() = Mode::Fail500;
    for _ in 0..3 {
        issue_with_phone(&c, "construction").await;
    }
    assert_eq!(c.window("7-01", "call", "{}").await.status, 200); // the third: 1 ahead
    assert_eq!(c.window("7-01", "call", "{}").await.status, 200);
    assert_eq!(c.window("7-01", "call", "{}").await.status, 200); // the third is called
    let dropped = eventually(15, "the reminder dropped", || async {
        let l = outbox(&c, "?status=dropped").await;
        (!l.is_empty()).then_some(l)
    })
    .await;
    assert_eq!(dropped[0]["kind"], "reminder");
    assert!(
        dropped[0]["last_error"]
            .as_str()
            .unwrap()
            .contains("called"),
        "{}",
        dropped[0]
    );
}
