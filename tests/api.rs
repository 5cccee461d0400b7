//! The HTTP API of contract §3 against the real server.

mod common;

use std::collections::HashSet;

use common::{window_token, Client, Server, ADMIN, KIOSK};
use serde_json::Value;

#[tokio::test]
async fn health_and_readiness() {
    let s = Server::start();
    let c = Client::new(&s);
    let r = c.get("/healthz").await;
    assert_eq!((r.status, r.text.as_str()), (200, "ok"));
    assert_eq!(c.get("/readyz").await.status, 200);
}

#[tokio::test]
async fn boards_describe_the_demo_hall_without_tokens() {
    let s = Server::start();
    let c = Client::new(&s);
    let halls = c.get("/api/v1/halls").await;
    assert_eq!(halls.status, 200);
    assert_eq!(halls.json[0]["id"], "demo");
    assert_eq!(halls.json[0]["floors"].as_array().unwrap().len(), 7);

    let hall = c.get("/api/v1/halls/demo").await;
    assert_eq!(hall.status, 200);
    assert_eq!(hall.json["timezone"], "Asia/Shanghai");
    let services = hall.json["services"].as_array().unwrap();
    assert!(services.len() >= 8);
    for s in services {
        for k in ["id", "name", "name_en", "prefix", "floor", "zone"] {
            assert!(!s[k].is_null(), "service lacks {k}: {s}");
        }
    }
    let floor3 = hall.json["windows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["floor"] == 3)
        .count();
    assert_eq!(floor3, 25, "25 comprehensive windows on floor 3");
    assert!(hall.json["floors"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["announce"] == "silent"));
    assert!(
        !hall.text.contains("token"),
        "tokens are left out: {}",
        hall.text
    );

    let snap = c.floor(3).await;
    assert_eq!(snap["type"], "snapshot");
    assert_eq!(snap["seq"], 0);
    assert_eq!(snap["hall"], "demo");
    assert_eq!(snap["floor"], 3);
    assert_eq!(snap["announce"], "voice");
    assert_eq!(snap["windows"].as_array().unwrap().len(), 25);
    assert!(snap["recent"].as_array().unwrap().is_empty());
    assert!(!snap["waiting"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn issue_read_qr_and_cancel_a_ticket() {
    let s = Server::start();
    let c = Client::new(&s);
    let t = c.issue("business").await;
    assert_eq!(t["number"], "A001");
    assert_eq!(t["hall"], "demo");
    assert_eq!(t["service"], "business");
    assert_eq!(
        (t["floor"].as_i64(), t["zone"].as_str()),
        (Some(3), Some("A"))
    );
    assert_eq!(t["status"], "waiting");
    assert_eq!(t["priority"], "normal");
    assert_eq!(t["channel"], "kiosk");
    assert_eq!(t["ahead"], 0);
    let created = t["created_at"].as_str().unwrap();
    assert!(
        created.ends_with("+08:00"),
        "RFC 3339 with the hall's offset: {created}"
    );
    let token = t["token"].as_str().unwrap();
    assert!(token.len() >= 22, "at least 128 bits");
    assert!(token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    assert_eq!(t["ticket_url"], format!("/t/{token}"));
    assert_eq!(t["qr_svg"], format!("/api/v1/tickets/{token}/qr.svg"));

    let second = c.issue("business").await;
    assert_eq!(second["number"], "A002");
    assert_eq!(second["ahead"], 1);
    assert!(second["eta_seconds"].as_u64().unwrap() > 0);

    let got = c.get(&format!("/api/v1/tickets/{token}")).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.json["number"], "A001");

    let qr = c
        .http
        .get(s.url(&format!("/api/v1/tickets/{token}/qr.svg")))
        .send()
        .await
        .unwrap();
    assert_eq!(qr.status(), 200);
    assert_eq!(qr.headers()["content-type"], "image/svg+xml");
    let svg = qr.text().await.unwrap();
    assert!(svg.contains("<svg") && svg.contains("</svg>"));

    let cancel = c
        .send(
            "POST",
            &format!("/api/v1/tickets/{token}/cancel"),
            None,
            None,
            &[],
        )
        .await;
    assert_eq!(cancel.status, 200, "{}", cancel.text);
    assert_eq!(cancel.json["status"], "cancelled");
    let again = c
        .send(
            "POST",
            &format!("/api/v1/tickets/{token}/cancel"),
            None,
            None,
            &[],
        )
        .await;
    assert_eq!((again.status, again.code()), (409, "conflict"));
    let after = c
        .get(&format!(
            "/api/v1/tickets/{}",
            second["token"].as_str().unwrap()
        ))
        .await;
    assert_eq!(after.json["ahead"], 0, "the cancelled ticket left the line");

    assert_eq!(c.get("/api/v1/tickets/nope").await.status, 404);
    assert_eq!(c.get("/api/v1/tickets/nope/qr.svg").await.status, 404);
}

#[tokio::test]
async fn priority_and_channel_and_notify_are_accepted() {
    let s = Server::start();
    let c = Client::new(&s);
    let body = r#"{"service":"tax","priority":"priority","channel":"mobile","notify":{"phone":"13800000000"}}"#;
    let r = c.post("/api/v1/halls/demo/tickets", KIOSK, body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json["priority"], "priority");
    assert_eq!(r.json["channel"], "mobile");
    assert!(
        !r.text.contains("13800000000"),
        "the phone number is not echoed"
    );
    let snap = c.floor(5).await.to_string();
    assert!(!snap.contains("13800000000"));
    // A number where text is expected is refused without quoting it.
    let r = c
        .post(
            "/api/v1/halls/demo/tickets",
            KIOSK,
            r#"{"service":"tax","notify":{"phone":13911112222}}"#,
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "bad_request"));
    assert!(!r.text.contains("13911112222"), "{}", r.text);
    assert!(!s.logs().contains("13911112222"));
    assert!(
        !s.logs().contains("13800000000"),
        "the phone number is never logged"
    );
}

/// Every refusal: status, code, and nothing changed.
#[tokio::test]
async fn errors_have_contract_codes_and_change_nothing() {
    let s = Server::start();
    let c = Client::new(&s);
    c.issue("business").await;
    let before = c.floor(3).await;
    let big = format!(
        r#"{{"service":"business","x":"{}"}}"#,
        "x".repeat(70 * 1024)
    );
    let w1 = window_token("3-01");
    /// method, path, bearer token, body, status, code
    type Case<'a> = (
        &'a str,
        &'a str,
        Option<&'a str>,
        Option<&'a str>,
        u16,
        &'a str,
    );
    let cases: Vec<Case<'_>> = vec![
        (
            "POST",
            "/api/v1/halls/demo/tickets",
            Some(KIOSK),
            Some("{not json"),
            400,
            "bad_request",
        ),
        (
            "POST",
            "/api/v1/halls/demo/tickets",
            Some(KIOSK),
            Some("{}"),
            400,
            "bad_request",
        ),
        (
            "POST",
            "/api/v1/halls/demo/tickets",
            Some(KIOSK),
            Some("[1,2]"),
            400,
            "bad_request",
        ),
        (
            "POST",
            "/api/v1/halls/demo/tickets",
            Some(KIOSK),
            Some(r#"{"service":"business","priority":"vip"}"#),
            400,
            "bad_request",
        ),
        (
            "POST",
            "/api/v1/halls/demo/tickets",
            Some(KIOSK),
            Some(r#"{"service":"business","channel":"fax"}"#),
            400,
            "bad_request",
        ),
        (
            "POST",
            "/api/v1/halls/demo/tickets",
            Some(KIOSK),
            Some(r#"{"service":"business","notify":{"phone":"call me"}}"#),
            400,
            "bad_request",
        ),
        (
            "POST",
            "/api/v1/halls/demo/tickets",
            Some(KIOSK),
            Some(r#"{"service":"nope"}"#),
            404,
            "not_found",
        ),
        (
            "POST",
            "/api/v1/halls/nope/tickets",
            Some(KIOSK),
            Some(r#"{"service":"business"}"#),
            404,
            "not_found",
        ),
        (
            "POST",
            "/api/v1/halls/demo/tickets",
            None,
            Some(r#"{"service":"business"}"#),
            401,
            "unauthorized",
        ),
        (
            "POST",
            "/api/v1/halls/demo/tickets",
            Some("not-a-real-token-at-all"),
            Some(r#"{"service":"business"}"#),
            401,
            "unauthorized",
        ),
        (
            "POST",
            "/api/v1/halls/demo/tickets",
            Some(&w1),
            Some(r#"{"service":"business"}"#),
            403,
            "forbidden",
        ),
        (
            "POST",
            "/api/v1/halls/demo/tickets",
            Some(KIOSK),
            Some(&big),
            413,
            "payload_too_large",
        ),
        (
            "POST",
            "/api/v1/halls/demo/windows/3-01/call",
            Some(KIOSK),
            Some("{}"),
            403,
            "forbidden",
        ),
        (
            "POST",
            "/api/v1/halls/demo/windows/3-02/call",
            Some(&w1),
            Some("{}"),
            403,
            "forbidden",
        ),
        (
            "POST",
            "/api/v1/halls/demo/windows/9-99/call",
            Some(ADMIN),
            Some("{}"),
            404,
            "not_found",
        ),
        (
            "POST",
            "/api/v1/halls/demo/windows/3-01/dance",
            Some(&w1),
            Some("{}"),
            404,
            "not_found",
        ),
        (
            "POST",
            "/api/v1/halls/demo/windows/3-01/call",
            Some(&w1),
            Some(r#"{"number":"A-1"}"#),
            400,
            "bad_request",
        ),
        (
            "POST",
            "/api/v1/halls/demo/windows/3-01/call",
            Some(&w1),
            Some(r#"{"number":"A999"}"#),
            404,
            "not_found",
        ),
        (
            "POST",
            "/api/v1/halls/demo/windows/3-01/recall",
            Some(&w1),
            Some("{}"),
            409,
            "conflict",
        ),
        (
            "POST",
            "/api/v1/halls/demo/windows/3-01/start",
            Some(&w1),
            None,
            409,
            "conflict",
        ),
        (
            "POST",
            "/api/v1/halls/demo/windows/3-01/complete",
            Some(&w1),
            None,
            409,
            "conflict",
        ),
        (
            "POST",
            "/api/v1/halls/demo/windows/3-01/no-show",
            Some(&w1),
            None,
            409,
            "conflict",
        ),
        (
            "POST",
            "/api/v1/halls/demo/windows/3-01/transfer",
            Some(&w1),
            Some(r#"{"service":"tax"}"#),
            409,
            "conflict",
        ),
        (
            "POST",
            "/api/v1/halls/demo/windows/3-01/transfer",
            Some(&w1),
            Some("{}"),
            400,
            "bad_request",
        ),
        (
            "POST",
            "/api/v1/halls/demo/windows/3-01/resume",
            Some(&w1),
            None,
            409,
            "conflict",
        ),
        ("GET", "/api/v1/halls/nope", None, None, 404, "not_found"),
        (
            "GET",
            "/api/v1/halls/demo/floors/99",
            None,
            None,
            404,
            "not_found",
        ),
        (
            "GET",
            "/api/v1/halls/demo/floors/three",
            None,
            None,
            404,
            "not_found",
        ),
        ("GET", "/api/v1/nothing/here", None, None, 404, "not_found"),
        (
            "DELETE",
            "/api/v1/halls/demo",
            None,
            None,
            405,
            "method_not_allowed",
        ),
        (
            "POST",
            "/api/v1/halls/demo/tickets",
            Some(KIOSK),
            Some(r#"{"service":"business"}"#),
            400,
            "bad_request",
        ), // bad idempotency key below
    ];
    for (i, (method, path, token, body, status, code)) in cases.iter().enumerate() {
        let headers: &[(&str, &str)] = if i == cases.len() - 1 {
            &[("idempotency-key", "spaces are not visible")]
        } else {
            &[]
        };
        let r = c.send(method, path, *token, *body, headers).await;
        assert_eq!(r.status, *status, "case {i} {method} {path}: {}", r.text);
        assert_eq!(r.code(), *code, "case {i}: {}", r.text);
        assert!(
            r.json["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "case {i} has a message: {}",
            r.text
        );
    }
    assert_eq!(c.floor(3).await, before, "refusals changed nothing");
    assert_eq!(c.issue("business").await["number"], "A002");
}

#[tokio::test]
async fn a_window_drives_a_ticket_through_its_life() {
    let s = Server::start();
    let c = Client::new(&s);
    let a1 = c.issue("business").await;
    let a2 = c.issue("business").await;
    let b1 = c.issue("tax").await;

    let r = c.window("3-01", "call", "{}").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["ticket"]["number"], "A001");
    assert_eq!(r.json["ticket"]["status"], "called");
    assert_eq!(r.json["ticket"]["window"]["id"], "3-01");
    assert_eq!(r.json["ticket"]["window"]["label"], "1");
    assert_eq!(r.json["window"]["current"]["number"], "A001");
    assert!(
        r.json["ticket"]["token"].is_null(),
        "window answers carry no citizen token"
    );

    let mine = c
        .get(&format!(
            "/api/v1/tickets/{}",
            a1["token"].as_str().unwrap()
        ))
        .await;
    assert_eq!(mine.json["status"], "called");
    assert_eq!(
        mine.json["window"],
        // `where` is the demo's zone guide for 3F zone A.
        serde_json::json!({"id": "3-01", "label": "1", "floor": 3, "zone": "A", "where": "出电梯直行"})
    );

    let r = c.window("3-01", "recall", "").await;
    assert_eq!(
        (r.status, r.json["ticket"]["recall"].as_u64()),
        (200, Some(1))
    );
    let r = c.window("3-01", "start", "").await;
    assert_eq!(r.json["ticket"]["status"], "serving");
    let r = c.window("3-01", "complete", "").await;
    assert_eq!(r.json["ticket"]["status"], "done");
    assert!(r.json["window"]["current"].is_null());

    // Call a chosen number; then no-show it.
    let r = c.window("3-01", "call", r#"{"number":"E001"}"#).await;
    assert_eq!(r.json["ticket"]["number"], "E001", "{}", r.text);
    let r = c.window("3-01", "no-show", "").await;
    assert_eq!(r.json["ticket"]["status"], "no_show");

    // Transfer keeps the number; the tax window then calls it.
    let r = c.window("3-01", "call", "{}").await;
    assert_eq!(r.json["ticket"]["number"], "A002");
    let r = c.window("3-01", "transfer", r#"{"service":"tax"}"#).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["ticket"]["number"], "A002");
    assert_eq!(r.json["ticket"]["status"], "waiting");
    assert_eq!(r.json["ticket"]["service"], "tax");
    let r = c.window("5-01", "call", "{}").await;
    assert_eq!(r.json["ticket"]["number"], "A002");
    let t = c
        .get(&format!(
            "/api/v1/tickets/{}",
            a2["token"].as_str().unwrap()
        ))
        .await;
    assert_eq!(
        (t.json["number"].as_str(), t.json["service"].as_str()),
        (Some("A002"), Some("tax"))
    );

    // Pause: calls refused, screens told; resume.
    let r = c.window("3-02", "pause", "").await;
    assert_eq!(r.json["window"]["state"], "paused");
    let r = c.window("3-02", "call", "{}").await;
    assert_eq!((r.status, r.code()), (409, "conflict"));
    let r = c.window("3-02", "resume", "").await;
    assert_eq!(r.json["window"]["state"], "open");
    let snap = c.floor(3).await;
    assert_eq!(snap["windows"][1]["state"], "open");

    // Nothing this window serves is waiting: 204 (E001 was no-show, B: none).
    let r = c.window("4-01", "call", "{}").await;
    assert_eq!((r.status, r.text.as_str()), (204, ""));
    let _ = b1;

    // Calling a number that is not waiting is a conflict.
    let r = c.window("3-03", "call", r#"{"number":"A001"}"#).await;
    assert_eq!((r.status, r.code()), (409, "conflict"));
    // Calling a number another window's services do not include: conflict.
    c.issue("business").await; // A003
    let r = c.window("5-02", "call", r#"{"number":"A003"}"#).await;
    assert_eq!((r.status, r.code()), (409, "conflict"));

    // The admin may act for any window.
    let r = c
        .post("/api/v1/halls/demo/windows/3-05/call", ADMIN, "{}")
        .await;
    assert_eq!(r.json["ticket"]["number"], "A003");

    // The floor shows recent calls, newest first.
    let snap = c.floor(3).await;
    let recent: Vec<&str> = snap["recent"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["number"].as_str().unwrap())
        .collect();
    assert_eq!(recent[0], "A003");
    assert!(recent.contains(&"A001"));
}

#[tokio::test]
async fn the_console_view_lists_the_windows_line() {
    let s = Server::start();
    let c = Client::new(&s);
    c.issue("property").await;
    c.issue("business").await;
    let r = c
        .send(
            "GET",
            "/api/v1/halls/demo/windows/3-02",
            Some(&window_token("3-02")),
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // 3-02 prefers property.
    let line: Vec<&str> = r.json["line"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["number"].as_str().unwrap())
        .collect();
    assert_eq!(line, ["B001", "A001"]);
    let r = c
        .send(
            "GET",
            "/api/v1/halls/demo/windows/3-02",
            Some(KIOSK),
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, 403);
}

#[tokio::test]
async fn concurrent_issues_get_consecutive_numbers() {
    let s = Server::start();
    let c = Client::new(&s);
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move {
                c.issue("social").await["number"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
        })
        .collect();
    let mut got = HashSet::new();
    for t in tasks {
        assert!(got.insert(t.await.unwrap()), "a number was given twice");
    }
    let want: HashSet<String> = (1..=200).map(|i| format!("C{i:03}")).collect();
    assert_eq!(got, want);
}

#[tokio::test]
async fn concurrent_calls_never_share_a_ticket() {
    let s = Server::start();
    let c = Client::new(&s);
    for _ in 0..120 {
        c.issue("business").await;
    }
    let windows: Vec<String> = (1..=12).map(|i| format!("3-{i:02}")).collect();
    let tasks: Vec<_> = windows
        .into_iter()
        .map(|w| {
            let c = c.clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let r = c.window(&w, "call", "{}").await;
                    match r.status {
                        200 => mine.push(r.json["ticket"]["number"].as_str().unwrap().to_string()),
                        204 => return mine,
                        other => panic!("call answered {other}: {}", r.text),
                    }
                }
            })
        })
        .collect();
    let mut all = HashSet::new();
    for t in tasks {
        for n in t.await.unwrap() {
            assert!(all.insert(n.clone()), "{n} was called by two windows");
        }
    }
    assert_eq!(all.len(), 120);
}

#[tokio::test]
async fn idempotent_repeats_return_the_first_answer_even_after_a_crash() {
    const TICKETS: &str = "/api/v1/halls/demo/tickets";
    const FUND: &str = r#"{"service":"fund"}"#;
    const KEY: &str = "kiosk-7f3a-0001";
    let mut s = Server::start();
    let c = Client::new(&s);
    let first = c.keyed(TICKETS, KIOSK, FUND, KEY).await;
    assert_eq!(first.status, 201);
    let again = c.keyed(TICKETS, KIOSK, FUND, KEY).await;
    assert_eq!(
        (again.status, &again.text),
        (201, &first.text),
        "same answer"
    );
    // Another caller with the same key is another request.
    let admin = c.keyed(TICKETS, ADMIN, FUND, KEY).await;
    assert_eq!(admin.json["number"], "D002");
    // Window actions too: a repeated call does not call the next ticket.
    let w = window_token("3-01");
    let call = "/api/v1/halls/demo/windows/3-01/call";
    let c1 = c.keyed(call, &w, "{}", "win-3-01-call-1").await;
    let c2 = c.keyed(call, &w, "{}", "win-3-01-call-1").await;
    assert_eq!(c1.text, c2.text);
    assert_eq!(
        c.floor(2).await["waiting"][1]["count"],
        1,
        "only one fund ticket was called"
    );

    s.crash_and_restart();
    let c = Client::new(&s);
    let after = c.keyed(TICKETS, KIOSK, FUND, KEY).await;
    assert_eq!(
        (after.status, &after.text),
        (201, &first.text),
        "same answer after kill -9"
    );
    assert_eq!(c.issue("fund").await["number"], "D003");
}

#[tokio::test]
async fn kill_9_loses_nothing_that_was_answered() {
    let mut s = Server::start();
    let c = Client::new(&s);
    let mut tokens = Vec::new();
    for svc in ["business", "business", "business", "tax", "social"] {
        tokens.push(c.issue(svc).await["token"].as_str().unwrap().to_string());
    }
    c.window("3-01", "call", "{}").await; // A001 called
    c.window("3-01", "start", "").await; // serving
    c.window("3-02", "call", r#"{"number":"A003"}"#).await;
    c.window("3-03", "pause", "").await;
    c.post(
        "/api/v1/halls/demo/tickets",
        KIOSK,
        r#"{"service":"business","priority":"priority"}"#,
    )
    .await; // A004 green
    let floor3 = c.floor(3).await;
    let floor2 = c.floor(2).await;
    let hall = c.get("/api/v1/halls/demo").await.json;
    let before: Vec<Value> = futures_collect(&c, &tokens).await;

    s.crash_and_restart();
    let c = Client::new(&s);
    assert_eq!(c.floor(3).await, floor3, "floor 3 comes back exactly");
    assert_eq!(c.floor(2).await, floor2);
    assert_eq!(c.get("/api/v1/halls/demo").await.json, hall);
    assert_eq!(
        futures_collect(&c, &tokens).await,
        before,
        "every ticket comes back"
    );
    // Lines continue: the green A004 goes first, then A002.
    let r = c.window("3-04", "call", "{}").await;
    assert_eq!(r.json["ticket"]["number"], "A004");
    let r = c.window("3-04", "call", "{}").await;
    assert_eq!(r.json["ticket"]["number"], "A002");
    // Numbering continues; the paused window stays paused.
    assert_eq!(c.issue("business").await["number"], "A005");
    assert_eq!(c.window("3-03", "call", "{}").await.status, 409);
    // Sequences continue without a gap.
    let seq = c.floor(3).await["seq"].as_u64().unwrap();
    assert!(seq > floor3["seq"].as_u64().unwrap());
}

async fn futures_collect(c: &Client, tokens: &[String]) -> Vec<Value> {
    let mut v = Vec::new();
    for t in tokens {
        let r = c.get(&format!("/api/v1/tickets/{t}")).await;
        assert_eq!(r.status, 200);
        v.push(r.json);
    }
    v
}

#[tokio::test]
async fn sigterm_exits_zero_and_keeps_everything() {
    let mut s = Server::start();
    let c = Client::new(&s);
    c.issue("household").await;
    c.window("6-01", "call", "{}").await;
    let snap = c.floor(6).await;
    s.stop_and_restart();
    let c = Client::new(&s);
    assert_eq!(c.floor(6).await, snap);
}

const TWO_HALLS: &str = r#"
[[halls]]
id = "east"
name = "East hall"
timezone = "Asia/Shanghai"
admin_token = "east-admin-token-123"
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
  id = "1"
  label = "1"
  floor = 1
  zone = "A"
  services = ["general"]
  token = "east-window-1-token"
  [[halls.kiosks]]
  id = "k"
  token = "east-kiosk-token-00"

[[halls]]
id = "west"
name = "West hall"
timezone = "Europe/Berlin"
admin_token = "west-admin-token-123"
  [[halls.floors]]
  number = 1
  name = "1F"
  announce = "voice"
  languages = ["en", "zh"]
  [[halls.services]]
  id = "general"
  name = "综合"
  prefix = "A"
  floor = 1
  zone = "A"
  [[halls.windows]]
  id = "1"
  label = "1"
  floor = 1
  zone = "A"
  services = ["general"]
  token = "west-window-1-token"
"#;

#[tokio::test]
async fn tokens_act_only_in_their_own_hall() {
    let s = Server::start_config(TWO_HALLS);
    let c = Client::new(&s);
    let list = c.get("/api/v1/halls").await;
    assert_eq!(list.json.as_array().unwrap().len(), 2);
    let r = c
        .post(
            "/api/v1/halls/east/tickets",
            "east-kiosk-token-00",
            r#"{"service":"general"}"#,
        )
        .await;
    assert_eq!(r.status, 201);
    let r = c
        .post(
            "/api/v1/halls/west/tickets",
            "east-kiosk-token-00",
            r#"{"service":"general"}"#,
        )
        .await;
    assert_eq!((r.status, r.code()), (403, "forbidden"));
    let r = c
        .post(
            "/api/v1/halls/west/tickets",
            "east-admin-token-123",
            r#"{"service":"general"}"#,
        )
        .await;
    assert_eq!((r.status, r.code()), (403, "forbidden"));
    let r = c
        .post(
            "/api/v1/halls/west/windows/1/call",
            "east-window-1-token",
            "{}",
        )
        .await;
    assert_eq!((r.status, r.code()), (403, "forbidden"));
    let r = c
        .post(
            "/api/v1/halls/west/tickets",
            "west-admin-token-123",
            r#"{"service":"general"}"#,
        )
        .await;
    assert_eq!(r.json["number"], "A001", "numbering is per hall");
    assert!(
        r.json["created_at"].as_str().unwrap().ends_with("+01:00"),
        "Berlin time in November"
    );
}

#[tokio::test]
async fn a_half_sent_request_is_dropped_and_others_are_served_meanwhile() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = Server::start();
    let c = Client::new(&s);
    let addr = s.base.trim_start_matches("http://").to_string();
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET /api/v1/halls/demo HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    assert_eq!(c.get("/healthz").await.status, 200, "others are served");
    // The server closes it once the header-read timeout (10 s) passes.
    let mut buf = [0u8; 512];
    let n = tokio::time::timeout(std::time::Duration::from_secs(30), slow.read(&mut buf))
        .await
        .expect("closed within 30 s")
        .unwrap_or(0);
    let answer = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(n == 0 || answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(started.elapsed() >= std::time::Duration::from_secs(9));
}
