//! §10 好差评 on the real binary: the phone's rating and the window's pad,
//! once and only of a served ticket, within the days allowed; cases of bad
//! reviews moving only forward, overdue past their due date (the wall
//! clock stepped with libfaketime); the public summary with counts only;
//! all of it durable across `kill -9`.

mod common;

use common::{window_token, Client, Clock, Server, ADMIN};
use serde_json::Value;

fn token(t: &Value) -> String {
    t["token"].as_str().unwrap().to_string()
}

/// Issues a business ticket and serves it to the end at window 3-01.
async fn served(c: &Client) -> Value {
    let t = c.issue("business").await;
    assert_eq!(c.window("3-01", "call", "{}").await.status, 200);
    assert_eq!(c.window("3-01", "complete", "").await.status, 200);
    t
}

async fn rate(c: &Client, t: &Value, body: &str) -> common::Resp {
    rate_with(c, t, body, &[]).await
}

async fn rate_keyed(c: &Client, t: &Value, body: &str, key: &str) -> common::Resp {
    rate_with(c, t, body, &[("idempotency-key", key)]).await
}

/// The phone's rating: the ticket's token is the credential.
async fn rate_with(c: &Client, t: &Value, body: &str, headers: &[(&str, &str)]) -> common::Resp {
    c.send(
        "POST",
        &format!("/api/v1/tickets/{}/rating", token(t)),
        None,
        Some(body),
        headers,
    )
    .await
}

#[tokio::test]
async fn the_phone_rates_a_served_ticket_once_and_nothing_else() {
    let s = Server::start();
    let c = Client::new(&s);
    let waiting = c.issue("business").await;
    let r = rate(&c, &waiting, r#"{"level":5}"#).await;
    assert_eq!((r.status, r.code()), (409, "conflict"), "{}", r.text);
    assert!(r.text.contains("waiting"), "{}", r.text);

    // No-show is not served.
    c.window("3-01", "call", "{}").await;
    c.window("3-01", "no-show", "").await;
    let r = rate(&c, &waiting, r#"{"level":5}"#).await;
    assert_eq!(r.status, 409, "{}", r.text);

    // A citizen's token may post 5 times a second: the refusals are
    // spread over tickets of their own.
    let long = format!(r#"{{"level":4,"comment":"{}"}}"#, "慢".repeat(501));
    let bad = [
        r#"{"level":0}"#,
        r#"{"level":6}"#,
        r#"{"level":"5"}"#,
        r#"{}"#,
        r#"{"level":5,"stars":5}"#,
        "not json",
        long.as_str(),
    ];
    for chunk in bad.chunks(4) {
        let t = served(&c).await;
        for body in chunk {
            let r = rate(&c, &t, body).await;
            assert_eq!(
                (r.status, r.code()),
                (400, "bad_request"),
                "{body}: {}",
                r.text
            );
        }
        let view = c.get(&format!("/api/v1/tickets/{}", token(&t))).await;
        assert_eq!(
            view.json["rating"],
            Value::Null,
            "a refusal changes nothing"
        );
    }
    let t = served(&c).await;

    let r = rate_keyed(&c, &t, r#"{"level":4,"comment":"很快"}"#, "rate-1").await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(
        (r.json["level"].as_u64(), r.json["comment"].as_str()),
        (Some(4), Some("很快"))
    );
    assert!(r.json["at"].as_str().unwrap().ends_with("+08:00"));
    // The same request again is the same answer; another is refused.
    let again = rate_keyed(&c, &t, r#"{"level":4,"comment":"很快"}"#, "rate-1").await;
    assert_eq!((again.status, &again.json), (201, &r.json));
    let second = rate(&c, &t, r#"{"level":1}"#).await;
    assert_eq!(second.status, 409, "{}", second.text);
    assert!(second.text.contains("once"), "{}", second.text);

    // The ticket shows its rating to its owner; a good one opens no case.
    let view = c.get(&format!("/api/v1/tickets/{}", token(&t))).await;
    assert_eq!(view.json["rating"]["level"], 4);
    let cases = c.get_as("/api/v1/halls/demo/cases", ADMIN).await;
    assert_eq!(cases.json, serde_json::json!([]));
    let r = c
        .send(
            "POST",
            "/api/v1/tickets/nope/rating",
            None,
            Some(r#"{"level":5}"#),
            &[],
        )
        .await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn a_ticket_can_be_rated_for_seven_days_also_after_a_restart() {
    let clock = Clock::at("2026-12-01T10:00:00+08:00");
    let mut s = Server::start_on_clock(None, &clock);
    let c = Client::new(&s);
    let early = served(&c).await;
    let late = served(&c).await;
    // Days pass (each midnight ends a day) and the server restarts: the
    // tickets are still found and rateable until 7 × 24 h after done.
    clock.set("2026-12-05T10:00:00+08:00");
    s.stop_and_restart();
    let c = Client::new(&s);
    clock.set("2026-12-08T09:59:00+08:00");
    let r = rate(&c, &early, r#"{"level":5}"#).await;
    assert_eq!(r.status, 201, "{}", r.text);
    clock.set("2026-12-08T10:01:00+08:00");
    let r = rate(&c, &late, r#"{"level":5}"#).await;
    assert_eq!((r.status, r.code()), (409, "conflict"), "{}", r.text);
    assert!(r.text.contains("within 7 days"), "{}", r.text);
}

#[tokio::test]
async fn the_pad_rates_only_the_ticket_just_completed_and_the_citizens_word_replaces_it() {
    let clock = Clock::at("2026-12-01T10:00:00+08:00");
    let s = Server::start_on_clock(None, &clock);
    let c = Client::new(&s);
    let pad = "/api/v1/halls/demo/windows/3-01/rating";
    let r = c.post(pad, &window_token("3-01"), r#"{"level":5}"#).await;
    assert_eq!(r.status, 409, "nothing done yet: {}", r.text);
    let first = served(&c).await;
    let second = served(&c).await;
    // Another window's token may not use this window's pad.
    let r = c.post(pad, &window_token("3-02"), r#"{"level":5}"#).await;
    assert_eq!(r.status, 403, "{}", r.text);
    // Only the level: the pad has five buttons.
    let r = c
        .post(pad, &window_token("3-01"), r#"{"level":5,"comment":"x"}"#)
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    let r = c.post(pad, &window_token("3-01"), r#"{"level":5}"#).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json["comment"], Value::Null);
    assert_eq!(r.json["source"], "pad");
    let view = c.get(&format!("/api/v1/tickets/{}", token(&second))).await;
    assert_eq!(view.json["rating"]["level"], 5, "the ticket just completed");
    assert_eq!(view.json["rating"]["source"], "pad");
    // A second press never falls back on an older ticket (A5).
    let r = c.post(pad, &window_token("3-01"), r#"{"level":5}"#).await;
    assert_eq!(r.status, 409, "{}", r.text);
    let view = c.get(&format!("/api/v1/tickets/{}", token(&first))).await;
    assert_eq!(view.json["rating"], Value::Null);

    // The citizen's "1, 态度差" replaces the pad's 5, once, and opens a case.
    let r = rate(&c, &second, r#"{"level":1,"comment":"态度差"}"#).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json["source"], "phone");
    let view = c.get(&format!("/api/v1/tickets/{}", token(&second))).await;
    assert_eq!(
        (
            &view.json["rating"]["level"],
            &view.json["rating"]["source"]
        ),
        (&Value::from(1), &Value::from("phone"))
    );
    let cases = c.get_as("/api/v1/halls/demo/cases", ADMIN).await;
    assert_eq!(cases.json[0]["comment"], "态度差");
    let r = rate(&c, &second, r#"{"level":5}"#).await;
    assert_eq!(r.status, 409, "a second phone rating: {}", r.text);

    // More than 120 s after the window completed it, the pad may not rate.
    let third = served(&c).await;
    clock.set("2026-12-01T10:02:01+08:00");
    let r = c.post(pad, &window_token("3-01"), r#"{"level":5}"#).await;
    assert_eq!(r.status, 409, "{}", r.text);
    assert!(r.text.contains("120 s"), "{}", r.text);
    // The phone rates it, and then the pad cannot.
    assert_eq!(rate(&c, &third, r#"{"level":4}"#).await.status, 201);
    assert_eq!(rate(&c, &first, r#"{"level":5}"#).await.status, 201);
    let fourth = served(&c).await;
    assert_eq!(rate(&c, &fourth, r#"{"level":3}"#).await.status, 201);
    let r = c.post(pad, &window_token("3-01"), r#"{"level":5}"#).await;
    assert_eq!(r.status, 409, "the phone rated it first: {}", r.text);
    // Kept across a restart, with its source.
    drop(c);
    let mut s = s;
    s.stop_and_restart();
    let c = Client::new(&s);
    let view = c.get(&format!("/api/v1/tickets/{}", token(&second))).await;
    assert_eq!(view.json["rating"]["source"], "phone");
    let r = rate(&c, &second, r#"{"level":5}"#).await;
    assert_eq!(r.status, 409, "{}", r.text);
}

#[tokio::test]
async fn a_bad_review_opens_a_case_that_moves_only_forward_and_is_overdue_past_its_due_date() {
    let clock = Clock::at("2026-12-01T10:00:00+08:00");
    let s = Server::start_on_clock(None, &clock);
    let c = Client::new(&s);
    let t = served(&c).await;
    let r = rate(&c, &t, r#"{"level":1,"comment":"等太久"}"#).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let cases = "/api/v1/halls/demo/cases";
    let list = c.get_as(cases, ADMIN).await;
    assert_eq!(list.status, 200, "{}", list.text);
    let case = &list.json[0];
    assert_eq!(case["number"], t["number"]);
    assert_eq!(
        (case["service"].as_str(), case["window"].as_str()),
        (Some("business"), Some("3-01"))
    );
    assert_eq!(
        (case["level"].as_u64(), case["comment"].as_str()),
        (Some(1), Some("等太久"))
    );
    assert_eq!(case["status"], "open");
    assert_eq!(case["overdue"], false);
    assert_eq!(case["opened_at"], r.json["at"]);
    assert!(
        case["due_at"]
            .as_str()
            .unwrap()
            .starts_with("2026-12-06T10:00:00"),
        "{case}"
    );
    assert_eq!(
        case["history"],
        serde_json::json!([{"status": "open", "note": null, "at": case["opened_at"]}])
    );
    let id = case["id"].as_str().unwrap().to_string();
    let step = format!("{cases}/{id}");

    // Staff only.
    assert_eq!(c.get(cases).await.status, 401);
    assert_eq!(c.get_as(cases, &window_token("3-01")).await.status, 403);
    let r = c
        .post(&step, &window_token("3-01"), r#"{"status":"closed"}"#)
        .await;
    assert_eq!(r.status, 403);

    // Past the due date, still open: overdue.
    clock.set("2026-12-06T10:00:01+08:00");
    let list = c.get_as(&format!("{cases}?status=open"), ADMIN).await;
    assert_eq!(list.json[0]["overdue"], true, "{}", list.text);

    let r = c
        .post(
            &step,
            ADMIN,
            r#"{"status":"contacted","note":"已电话联系"}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        (r.json["status"].as_str(), r.json["overdue"].as_bool()),
        (Some("contacted"), Some(true))
    );
    for (body, code) in [
        (r#"{"status":"contacted"}"#, 409),
        (r#"{"status":"open"}"#, 400),
        (r#"{"status":"done"}"#, 400),
        (r#"{"note":"x"}"#, 400),
    ] {
        let r = c.post(&step, ADMIN, body).await;
        assert_eq!(r.status, code, "{body}: {}", r.text);
    }
    // Rectified may be skipped; closed is final and not overdue.
    let r = c
        .post(&step, ADMIN, r#"{"status":"closed","note":"已整改"}"#)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["overdue"], false);
    let steps: Vec<&str> = r.json["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["open", "contacted", "closed"]);
    let r = c.post(&step, ADMIN, r#"{"status":"rectified"}"#).await;
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(
        c.post(&format!("{cases}/999"), ADMIN, r#"{"status":"closed"}"#)
            .await
            .status,
        404
    );
    assert_eq!(
        c.post(&format!("{cases}/x"), ADMIN, r#"{"status":"closed"}"#)
            .await
            .status,
        404
    );

    let open = c.get_as(&format!("{cases}?status=open"), ADMIN).await;
    assert_eq!(open.json, serde_json::json!([]));
    let closed = c.get_as(&format!("{cases}?status=closed"), ADMIN).await;
    assert_eq!(closed.json.as_array().unwrap().len(), 1);
    let r = c.get_as(&format!("{cases}?status=late"), ADMIN).await;
    assert_eq!(r.status, 400);

    // Days later the closed case has left memory; a step is still refused
    // as for any closed case, and the listing still has it.
    clock.set("2026-12-20T10:00:00+08:00");
    common::eventually(10, "the day to end", || async {
        let r = c.post(&step, ADMIN, r#"{"status":"closed"}"#).await;
        (r.status == 409 && r.text.contains("final")).then_some(())
    })
    .await;
    let all = c.get_as(cases, ADMIN).await;
    assert_eq!(all.json[0]["status"], "closed");
}

#[tokio::test]
async fn ratings_and_cases_survive_kill_9() {
    let mut s = Server::start();
    let c = Client::new(&s);
    let t = served(&c).await;
    assert_eq!(
        rate(&c, &t, r#"{"level":2,"comment":"态度差"}"#)
            .await
            .status,
        201
    );
    let list = c.get_as("/api/v1/halls/demo/cases", ADMIN).await;
    let id = list.json[0]["id"].as_str().unwrap().to_string();
    let step = format!("/api/v1/halls/demo/cases/{id}");
    assert_eq!(
        c.post(&step, ADMIN, r#"{"status":"rectified","note":"培训"}"#)
            .await
            .status,
        200
    );
    s.kill9();
    s.respawn();
    let c = Client::new(&s);
    let r = rate(&c, &t, r#"{"level":5}"#).await;
    assert_eq!(r.status, 409, "the rating was kept: {}", r.text);
    let view = c.get(&format!("/api/v1/tickets/{}", token(&t))).await;
    assert_eq!(
        (
            view.json["rating"]["level"].as_u64(),
            view.json["rating"]["comment"].as_str()
        ),
        (Some(2), Some("态度差"))
    );
    let r = c.post(&step, ADMIN, r#"{"status":"contacted"}"#).await;
    assert_eq!(r.status, 409, "still rectified: {}", r.text);
    let r = c.post(&step, ADMIN, r#"{"status":"closed"}"#).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["history"][1]["note"], "培训");
    // A new bad review gets a new id.
    let t2 = served(&c).await;
    assert_eq!(rate(&c, &t2, r#"{"level":1}"#).await.status, 201);
    let list = c.get_as("/api/v1/halls/demo/cases", ADMIN).await;
    let ids: Vec<&str> = list
        .json
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2);
    assert_ne!(ids[0], ids[1]);
}

#[tokio::test]
async fn the_public_summary_counts_ratings_of_its_dates_and_nothing_personal() {
    let clock = Clock::at("2026-12-01T10:00:00+08:00");
    let s = Server::start_on_clock(None, &clock);
    let c = Client::new(&s);
    let phone = r#"{"service":"business","notify":{"phone":"13812345678"}}"#;
    let mut rated = Vec::new();
    for level in [5, 4, 3, 2, 1] {
        let t = c
            .post("/api/v1/halls/demo/tickets", common::KIOSK, phone)
            .await
            .json;
        c.window("3-01", "call", "{}").await;
        c.window("3-01", "complete", "").await;
        let r = rate(
            &c,
            &t,
            &format!(r#"{{"level":{level},"comment":"秘密{level}"}}"#),
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.text);
        rated.push(t);
    }
    // One more on the next day, at another window.
    clock.set("2026-12-02T10:00:00+08:00");
    let t = c.issue("property").await;
    let r = c.window("4-01", "call", "{}").await;
    assert_eq!(r.status, 200, "{}", r.text);
    c.window("4-01", "complete", "").await;
    assert_eq!(rate(&c, &t, r#"{"level":5}"#).await.status, 201);

    let day1 = c
        .get("/api/v1/halls/demo/ratings?from=2026-12-01&to=2026-12-01")
        .await;
    assert_eq!(day1.status, 200, "{}", day1.text);
    let j = &day1.json;
    assert_eq!(
        (j["from"].as_str(), j["to"].as_str()),
        (Some("2026-12-01"), Some("2026-12-01"))
    );
    assert_eq!(j["count"], 5);
    assert_eq!(j["positive_rate"], 0.6);
    assert_eq!(
        j["levels"],
        serde_json::json!({"1": 1, "2": 1, "3": 1, "4": 1, "5": 1})
    );
    let w = j["by_window"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["window"] == "3-01")
        .unwrap();
    assert_eq!(
        (
            w["count"].as_u64(),
            w["positive_rate"].as_f64(),
            w["label"].as_str()
        ),
        (Some(5), Some(0.6), Some("1"))
    );
    let idle = j["by_window"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["window"] == "4-01")
        .unwrap();
    assert_eq!(
        (idle["count"].as_u64(), &idle["positive_rate"]),
        (Some(0), &Value::Null)
    );
    let both = c
        .get("/api/v1/halls/demo/ratings?from=2026-12-01&to=2026-12-02")
        .await;
    assert_eq!(both.json["count"], 6);
    // A7: a public route reads a year at most.
    let year = c
        .get("/api/v1/halls/demo/ratings?from=2025-12-02&to=2026-12-02")
        .await;
    assert_eq!(year.status, 200, "366 dates: {}", year.text);
    for range in [
        "from=2025-12-01&to=2026-12-02",
        "from=1900-01-01&to=2999-12-31",
    ] {
        let r = c.get(&format!("/api/v1/halls/demo/ratings?{range}")).await;
        assert_eq!(r.status, 400, "{range}: {}", r.text);
        assert!(r.text.contains("366"), "{}", r.text);
    }
    let svc = both.json["by_service"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["service"] == "property")
        .unwrap();
    assert_eq!(
        (svc["count"].as_u64(), svc["positive_rate"].as_f64()),
        (Some(1), Some(1.0))
    );
    let none = c
        .get("/api/v1/halls/demo/ratings?from=2026-11-01&to=2026-11-30")
        .await;
    assert_eq!(
        (none.json["count"].as_u64(), &none.json["positive_rate"]),
        (Some(0), &Value::Null)
    );

    for text in [&day1.text, &both.text] {
        assert!(
            !text.contains("秘密") && !text.contains("13812345678"),
            "{text}"
        );
        for t in &rated {
            assert!(!text.contains(t["number"].as_str().unwrap()), "{text}");
            assert!(!text.contains(&token(t)));
        }
    }
    for bad in [
        "from=2026-13-01",
        "from=2026-12-02&to=2026-12-01",
        "day=2026-12-01",
    ] {
        let r = c.get(&format!("/api/v1/halls/demo/ratings?{bad}")).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text);
    }
    assert_eq!(c.get("/api/v1/halls/nope/ratings").await.status, 404);
}
