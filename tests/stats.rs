//! §11 on the real binary: exact statistics of a scripted day (waits and
//! service times of known length, the wall clock stepped with
//! libfaketime), read from the store also once memory has forgotten the
//! day; the CSV export's columns and rows without personal data; the
//! chart; `/metrics` with every family from the start.

mod common;

use common::{window_token, Client, Clock, Server, Ws, ADMIN, KIOSK};
use serde_json::Value;

const PHONE: &str = "13812345678";

fn token(t: &Value) -> String {
    t["token"].as_str().unwrap().to_string()
}

async fn act(c: &Client, clock: &Clock, at: &str, window: &str, action: &str, body: &str) {
    clock.set(&format!("2026-12-01T{at}+08:00"));
    let r = c.window(window, action, body).await;
    assert_eq!(r.status, 200, "{window} {action} at {at}: {}", r.text);
}

async fn issue_at(c: &Client, clock: &Clock, at: &str, service: &str) -> Value {
    clock.set(&format!("2026-12-01T{at}+08:00"));
    let body = format!(r#"{{"service":"{service}","notify":{{"phone":"{PHONE}"}}}}"#);
    let r = c.post("/api/v1/halls/demo/tickets", KIOSK, &body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.json
}

async fn rate(c: &Client, t: &Value, level: u8) {
    let r = c
        .send(
            "POST",
            &format!("/api/v1/tickets/{}/rating", token(t)),
            None,
            Some(&format!(r#"{{"level":{level},"comment":"私密意见"}}"#)),
            &[],
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
}

/// The day of 2026-12-01 in hall time: five tickets, each ending another way.
async fn scripted_day(c: &Client, clock: &Clock) -> Vec<Value> {
    let t1 = issue_at(c, clock, "09:00:00", "business").await;
    let t2 = issue_at(c, clock, "09:00:00", "business").await;
    let n1 = t1["number"].as_str().unwrap();
    let n2 = t2["number"].as_str().unwrap();
    // t1: waits 5 min, served 10 min from the start, rated 5.
    act(
        c,
        clock,
        "09:05:00",
        "3-01",
        "call",
        &format!(r#"{{"number":"{n1}"}}"#),
    )
    .await;
    act(c, clock, "09:06:00", "3-01", "start", "").await;
    act(c, clock, "09:16:00", "3-01", "complete", "").await;
    rate(c, &t1, 5).await;
    // t2: waits 10 min, is sent on to social, called again and served
    // there 5 min from its second start, rated 1.
    act(
        c,
        clock,
        "09:10:00",
        "3-02",
        "call",
        &format!(r#"{{"number":"{n2}"}}"#),
    )
    .await;
    act(
        c,
        clock,
        "09:12:00",
        "3-02",
        "transfer",
        r#"{"service":"social"}"#,
    )
    .await;
    let t3 = issue_at(c, clock, "09:30:00", "social").await;
    act(
        c,
        clock,
        "09:40:00",
        "3-02",
        "call",
        &format!(r#"{{"number":"{n2}"}}"#),
    )
    .await;
    act(c, clock, "09:41:00", "3-02", "start", "").await;
    act(c, clock, "09:46:00", "3-02", "complete", "").await;
    rate(c, &t2, 1).await;
    // t3: waits 30 min and does not come.
    let n3 = t3["number"].as_str().unwrap();
    act(
        c,
        clock,
        "10:00:00",
        "3-03",
        "call",
        &format!(r#"{{"number":"{n3}"}}"#),
    )
    .await;
    act(c, clock, "10:01:00", "3-03", "no-show", "").await;
    // t4 leaves the line; t5 is still waiting at midnight.
    let t4 = issue_at(c, clock, "10:00:00", "business").await;
    let r = c
        .send(
            "POST",
            &format!("/api/v1/tickets/{}/cancel", token(&t4)),
            None,
            Some("{}"),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let t5 = issue_at(c, clock, "10:20:00", "business").await;
    clock.set("2026-12-02T00:00:05+08:00");
    common::eventually(10, "the day to end", || async {
        let r = c.get(&format!("/api/v1/tickets/{}", token(&t5))).await;
        (r.json["status"] == "expired").then_some(())
    })
    .await;
    vec![t1, t2, t3, t4, t5]
}

fn find<'a>(list: &'a Value, key: &str, id: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|e| e[key] == id)
        .unwrap_or_else(|| panic!("no {key} {id} in {list}"))
}

fn check_day(j: &Value) {
    let totals = &j["totals"];
    let counts = |g: &Value| {
        [
            "issued",
            "served",
            "no_show",
            "cancelled",
            "expired",
            "ratings",
        ]
        .map(|k| g[k].as_u64().unwrap())
    };
    assert_eq!(counts(totals), [5, 2, 1, 1, 1, 2], "{totals}");
    // Waits 300, 600, 1800 s (nearest rank); services 600 and 300 s.
    assert_eq!(
        totals["wait_seconds"],
        serde_json::json!({"p50": 600, "p90": 1800, "max": 1800})
    );
    assert_eq!(
        totals["service_seconds"],
        serde_json::json!({"p50": 300, "p90": 600})
    );
    assert_eq!(totals["positive_rate"], 0.5);

    // Issued under the service it was issued for, the rest under the one
    // that finished it.
    let business = find(&j["by_service"], "service", "business");
    assert_eq!(counts(business), [4, 1, 0, 1, 1, 1], "{business}");
    assert_eq!(business["wait_seconds"]["p50"], 300);
    assert_eq!(business["positive_rate"], 1.0);
    let social = find(&j["by_service"], "service", "social");
    assert_eq!(counts(social), [1, 1, 1, 0, 0, 1], "{social}");
    assert_eq!(
        social["wait_seconds"],
        serde_json::json!({"p50": 600, "p90": 1800, "max": 1800})
    );
    assert_eq!(
        social["service_seconds"],
        serde_json::json!({"p50": 300, "p90": 300})
    );
    assert_eq!(social["positive_rate"], 0.0);
    let fund = find(&j["by_service"], "service", "fund");
    assert_eq!(counts(fund), [0; 6]);
    assert_eq!(
        fund["wait_seconds"],
        serde_json::json!({"p50": null, "p90": null, "max": null})
    );
    assert_eq!(fund["positive_rate"], Value::Null);

    let w1 = find(&j["by_window"], "window", "3-01");
    assert_eq!(
        (
            w1["served"].as_u64(),
            w1["ratings"].as_u64(),
            w1["positive_rate"].as_f64()
        ),
        (Some(1), Some(1), Some(1.0))
    );
    assert_eq!(
        w1["service_seconds"],
        serde_json::json!({"p50": 600, "p90": 600})
    );
    let w2 = find(&j["by_window"], "window", "3-02");
    assert_eq!(
        (w2["served"].as_u64(), w2["positive_rate"].as_f64()),
        (Some(1), Some(0.0))
    );
    let w3 = find(&j["by_window"], "window", "3-03");
    assert_eq!(
        (w3["served"].as_u64(), &w3["service_seconds"]["p50"]),
        (Some(0), &Value::Null)
    );

    let hours = j["by_hour"].as_array().unwrap();
    assert_eq!(hours.len(), 24);
    assert!(hours.iter().enumerate().all(|(i, h)| h["hour"] == i));
    assert_eq!(
        hours[9],
        serde_json::json!({"hour": 9, "issued": 3, "called": 2, "wait_seconds_p50": 600})
    );
    // t3 was first called at 10:00; recalls and second calls do not count.
    assert_eq!(
        hours[10],
        serde_json::json!({"hour": 10, "issued": 2, "called": 1, "wait_seconds_p50": null})
    );
    let issued: u64 = hours.iter().map(|h| h["issued"].as_u64().unwrap()).sum();
    assert_eq!(issued, 5);
}

#[tokio::test]
async fn a_scripted_day_gives_exact_counts_and_percentiles_also_from_the_store_alone() {
    let clock = Clock::at("2026-12-01T08:55:00+08:00");
    let mut s = Server::start_on_clock(None, &clock);
    let c = Client::new(&s);
    let tickets = scripted_day(&c, &clock).await;
    let day = "/api/v1/halls/demo/stats?from=2026-12-01&to=2026-12-01";
    let r = c.get_as(day, ADMIN).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        (r.json["from"].as_str(), r.json["to"].as_str()),
        (Some("2026-12-01"), Some("2026-12-01"))
    );
    check_day(&r.json);
    for t in &tickets {
        assert!(!r.text.contains(&token(t)));
    }
    assert!(!r.text.contains(PHONE) && !r.text.contains("私密"));

    // Weeks later, after a restart: the day is out of memory and the
    // numbers are the same, from the store.
    clock.set("2026-12-25T10:00:00+08:00");
    s.stop_and_restart();
    let c = Client::new(&s);
    let gone = c
        .get(&format!("/api/v1/tickets/{}", token(&tickets[0])))
        .await;
    assert_eq!(gone.status, 404, "memory forgot the day");
    let r = c.get_as(day, ADMIN).await;
    check_day(&r.json);
    // A range around it counts the same; one without it counts nothing.
    let r = c
        .get_as(
            "/api/v1/halls/demo/stats?from=2026-01-01&to=2026-12-31",
            ADMIN,
        )
        .await;
    assert_eq!(r.status, 200, "366 dates are allowed: {}", r.text);
    check_day(&r.json);
    let r = c
        .get_as(
            "/api/v1/halls/demo/stats?from=2026-12-02&to=2026-12-24",
            ADMIN,
        )
        .await;
    assert_eq!(r.json["totals"]["issued"], 0);
    assert_eq!(r.json["totals"]["wait_seconds"]["p50"], Value::Null);
}

#[tokio::test]
async fn a_range_is_checked_and_the_stats_are_for_the_admin() {
    let s = Server::start();
    let c = Client::new(&s);
    let base = "/api/v1/halls/demo/stats";
    for q in [
        "from=2025-01-01&to=2026-01-02",
        "from=2026-12-02&to=2026-12-01",
        "from=2026-02-30",
        "from=yesterday",
        "when=today",
    ] {
        let r = c.get_as(&format!("{base}?{q}"), ADMIN).await;
        assert_eq!(
            (r.status, r.code()),
            (400, "bad_request"),
            "{q}: {}",
            r.text
        );
    }
    let r = c
        .get_as(&format!("{base}?from=2025-01-01&to=2026-01-01"), ADMIN)
        .await;
    assert_eq!(r.status, 200, "366 dates: {}", r.text);
    assert_eq!(c.get(base).await.status, 401);
    assert_eq!(c.get_as(base, KIOSK).await.status, 403);
    assert_eq!(c.get_as(base, &window_token("3-01")).await.status, 403);
    let csv = format!("{base}.csv");
    assert_eq!(c.get(&csv).await.status, 401);
    assert_eq!(c.get_as(&csv, KIOSK).await.status, 403);
    let r = c
        .get_as(&format!("{csv}?from=2026-12-02&to=2026-12-01"), ADMIN)
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        c.send("POST", &csv, Some(ADMIN), Some("{}"), &[])
            .await
            .status,
        405
    );
    assert_eq!(
        c.get_as("/api/v1/halls/nope/stats", ADMIN).await.status,
        404
    );
    // Today by default.
    c.issue("business").await;
    let r = c.get_as(base, ADMIN).await;
    assert_eq!(r.json["totals"]["issued"], 1, "{}", r.text);
    assert_eq!(r.json["from"], r.json["to"]);
}

#[tokio::test]
async fn the_export_has_a_row_per_ticket_with_the_contracts_columns_and_nothing_personal() {
    let clock = Clock::at("2026-12-01T08:55:00+08:00");
    let s = Server::start_on_clock(None, &clock);
    let c = Client::new(&s);
    let tickets = scripted_day(&c, &clock).await;
    let r = c
        .get_as(
            "/api/v1/halls/demo/stats.csv?from=2026-11-30&to=2026-12-02",
            ADMIN,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let lines: Vec<&str> = r.text.lines().collect();
    assert_eq!(
        lines[0],
        "date,number,service,channel,priority,status,issued_at,called_at,window,started_at,finished_at,wait_seconds,service_seconds,rating"
    );
    assert_eq!(lines.len(), 6, "a row per ticket: {}", r.text);
    let row = |n: &Value| -> Vec<String> {
        let number = n["number"].as_str().unwrap();
        lines
            .iter()
            .find(|l| l.split(',').nth(1) == Some(number))
            .unwrap_or_else(|| panic!("no row for {number}"))
            .split(',')
            .map(String::from)
            .collect()
    };
    let t2 = row(&tickets[1]);
    assert_eq!(t2.len(), 14);
    assert_eq!(
        t2,
        [
            "2026-12-01",
            tickets[1]["number"].as_str().unwrap(),
            "social",
            "kiosk",
            "normal",
            "done",
            "2026-12-01T09:00:00+08:00",
            "2026-12-01T09:10:00+08:00",
            "3-02",
            "2026-12-01T09:41:00+08:00",
            "2026-12-01T09:46:00+08:00",
            "600",
            "300",
            "1",
        ]
    );
    let t4 = row(&tickets[3]);
    assert_eq!(
        (
            t4[5].as_str(),
            t4[7].as_str(),
            t4[11].as_str(),
            t4[13].as_str()
        ),
        ("cancelled", "", "", "")
    );
    let t5 = row(&tickets[4]);
    assert_eq!(t5[5], "expired");
    assert_eq!(t5[10], "2026-12-02T00:00:05+08:00");
    for t in &tickets {
        assert!(!r.text.contains(&token(t)));
    }
    assert!(
        !r.text.contains(PHONE) && !r.text.contains("私密"),
        "{}",
        r.text
    );

    // The dashboard's charts: SVG of the hours.
    for kind in ["issued", "waits"] {
        let r = c
            .get_as(
                &format!("/api/v1/halls/demo/stats/chart.svg?kind={kind}&from=2026-12-01"),
                ADMIN,
            )
            .await;
        assert_eq!(r.status, 200);
        assert!(
            r.text.starts_with("<svg") && r.text.contains(">09</text>"),
            "{}",
            r.text
        );
    }
    let r = c
        .get_as("/api/v1/halls/demo/stats/chart.svg?kind=pie", ADMIN)
        .await;
    assert_eq!(r.status, 400);
}

/// The value of a sample line of a scrape.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[tokio::test]
async fn metrics_show_every_family_from_the_start_and_count_what_happens() {
    let s = Server::start();
    let c = Client::new(&s);
    let r = c.get("/metrics").await;
    assert_eq!(r.status, 200);
    for family in [
        "hallcast_connections",
        "hallcast_deliveries_total",
        "hallcast_slow_consumer_closes_total",
        "hallcast_commands_total",
        "hallcast_commit_seconds",
        "hallcast_waiting",
        "hallcast_outbox",
        "hallcast_build_info",
    ] {
        assert!(
            r.text.contains(&format!("# HELP {family} ")),
            "{family} has no HELP:\n{}",
            r.text
        );
        assert!(
            r.text.contains(&format!("# TYPE {family} ")),
            "{family} has no TYPE"
        );
    }
    assert_eq!(
        sample(&r.text, r#"hallcast_connections{channel="floor"}"#),
        Some(0.0)
    );
    assert_eq!(sample(&r.text, "hallcast_deliveries_total"), Some(0.0));
    assert_eq!(
        sample(
            &r.text,
            r#"hallcast_commands_total{hall="demo",command="issue"}"#
        ),
        Some(0.0)
    );
    assert!(r.text.contains(&format!(
        "hallcast_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    )));

    let mut floor = Ws::connect(&s.ws("/ws/v1/halls/demo/floors/3")).await;
    floor.next().await;
    let body = format!(r#"{{"service":"business","notify":{{"phone":"{PHONE}"}}}}"#);
    let t = c
        .post("/api/v1/halls/demo/tickets", KIOSK, &body)
        .await
        .json;
    c.issue("business").await;
    floor
        .until(|m| m["type"] == "waiting" && m["count"] == 2)
        .await;
    let r = c.get("/metrics").await;
    assert_eq!(
        sample(&r.text, r#"hallcast_connections{channel="floor"}"#),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &r.text,
            r#"hallcast_commands_total{hall="demo",command="issue"}"#
        ),
        Some(2.0)
    );
    assert_eq!(
        sample(
            &r.text,
            r#"hallcast_waiting{hall="demo",service="business"}"#
        ),
        Some(2.0)
    );
    assert!(
        sample(&r.text, "hallcast_deliveries_total").unwrap() >= 2.0,
        "{}",
        r.text
    );
    assert!(sample(&r.text, "hallcast_commit_seconds_count").unwrap() >= 2.0);
    // A refused command is not counted.
    c.window("3-01", "complete", "").await;
    let r = c.get("/metrics").await;
    assert_eq!(
        sample(
            &r.text,
            r#"hallcast_commands_total{hall="demo",command="complete"}"#
        ),
        Some(0.0)
    );
    assert!(!r.text.contains(PHONE) && !r.text.contains(&token(&t)));
    assert!(!r.text.contains(t["number"].as_str().unwrap()));
    drop(floor);
    common::eventually(10, "the connection to be counted out", || async {
        let r = c.get("/metrics").await;
        (sample(&r.text, r#"hallcast_connections{channel="floor"}"#) == Some(0.0)).then_some(())
    })
    .await;
}

/// The demo hall, its tickets rated within `days` days.
fn rated_within(days: u32) -> String {
    hallcast::demo::CONFIG.replacen(
        "mobile_tickets = true\n",
        &format!("mobile_tickets = true\n  [halls.ratings]\n  rate_within_days = {days}\n"),
        1,
    )
}

/// The days of the statistics cache: (hall, day) with a digest.
fn digested(s: &Server) -> Vec<(String, String)> {
    let db = rusqlite::Connection::open(s.dir.join("stats-cache.db")).unwrap();
    let mut q = db
        .prepare("SELECT hall, day FROM digests ORDER BY hall, day")
        .unwrap();
    let rows = q.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
    rows.map(Result::unwrap).collect()
}

#[tokio::test]
async fn a_settled_day_is_kept_digested_until_a_longer_rating_window_opens_it_again() {
    let clock = Clock::at("2026-12-01T08:55:00+08:00");
    let mut s = Server::start_on_clock(Some(&rated_within(2)), &clock);
    let c = Client::new(&s);
    let t = issue_at(&c, &clock, "09:00:00", "business").await;
    let n = t["number"].as_str().unwrap();
    act(
        &c,
        &clock,
        "09:05:00",
        "3-01",
        "call",
        &format!(r#"{{"number":"{n}"}}"#),
    )
    .await;
    act(&c, &clock, "09:06:00", "3-01", "start", "").await;
    act(&c, &clock, "09:16:00", "3-01", "complete", "").await;
    let day = "/api/v1/halls/demo/stats?from=2026-12-01&to=2026-12-01";
    let served = |j: &Value| {
        (
            j["totals"]["served"].as_u64(),
            j["totals"]["ratings"].as_u64(),
            j["totals"]["wait_seconds"]["p50"].as_u64(),
            j["totals"]["service_seconds"]["p50"].as_u64(),
        )
    };
    let r = c.get_as(day, ADMIN).await;
    assert_eq!(served(&r.json), (Some(1), Some(0), Some(300), Some(600)));
    assert!(
        digested(&s).is_empty(),
        "a day that can still change is not kept"
    );

    // Three days after its end nothing can change it (rated within two
    // days, kept in memory a day longer): counted once, then kept.
    clock.set("2026-12-05T00:00:01+08:00");
    let r = c.get_as(day, ADMIN).await;
    assert_eq!(served(&r.json), (Some(1), Some(0), Some(300), Some(600)));
    assert_eq!(
        digested(&s),
        [("demo".to_string(), "2026-12-01".to_string())]
    );
    let r = c.get_as(day, ADMIN).await;
    assert_eq!(served(&r.json), (Some(1), Some(0), Some(300), Some(600)));
    let rate_now = c
        .send(
            "POST",
            &format!("/api/v1/tickets/{}/rating", token(&t)),
            None,
            Some(r#"{"level":5}"#),
            &[],
        )
        .await;
    assert_eq!(rate_now.status, 404, "out of memory: {}", rate_now.text);

    // The config now lets tickets be rated for 30 days: the ticket is
    // back in memory, its rating counts, the digest is not believed.
    s.terminate();
    std::fs::write(
        s.dir.parent().unwrap().join("hallcast.toml"),
        rated_within(30),
    )
    .unwrap();
    s.respawn();
    let c = Client::new(&s);
    rate(&c, &t, 5).await;
    let r = c.get_as(day, ADMIN).await;
    assert_eq!(served(&r.json), (Some(1), Some(1), Some(300), Some(600)));
    assert_eq!(r.json["totals"]["positive_rate"], 1.0);

    // A cache file that is not one is set aside; the answer is the same.
    s.terminate();
    std::fs::write(s.dir.join("stats-cache.db"), b"garbage, not a database").unwrap();
    for side in ["stats-cache.db-wal", "stats-cache.db-shm"] {
        let _ = std::fs::remove_file(s.dir.join(side));
    }
    clock.set("2027-01-10T09:00:00+08:00");
    s.respawn();
    let c = Client::new(&s);
    for _ in 0..2 {
        let r = c.get_as(day, ADMIN).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(served(&r.json), (Some(1), Some(1), Some(300), Some(600)));
    }
    assert!(s.dir.join("stats-cache.db.broken").exists());
    assert!(s.logs().contains("statistics cache is unreadable"));
    assert!(digested(&s).contains(&("demo".to_string(), "2026-12-01".to_string())));
}
