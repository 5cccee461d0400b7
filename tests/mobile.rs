//! §8 mobile tickets: a phone takes a number without a token where the
//! hall allows it, only as a mobile ticket, within the hours; the join page
//! and its poster QR.

mod common;

use common::{Client, Server};

const MOBILE: &str = r#"{"service":"business","channel":"mobile"}"#;

/// The demo hall with phones behind a trusted proxy, so each request can
/// say which phone's address it comes from.
fn behind_proxy() -> String {
    hallcast::demo::CONFIG.replacen(
        "[server]\n",
        "[server.limits]\ntrusted_proxies = [\"127.0.0.1\"]\n\n[server]\n",
        1,
    )
}

async fn anonymous(c: &Client, body: &str, headers: &[(&str, &str)]) -> common::Resp {
    c.send(
        "POST",
        "/api/v1/halls/demo/tickets",
        None,
        Some(body),
        headers,
    )
    .await
}

#[tokio::test]
async fn a_phone_takes_a_number_without_a_token_where_the_hall_allows_it() {
    let s = Server::start_config(&behind_proxy());
    let c = Client::new(&s);
    let board = c.get("/api/v1/halls/demo").await;
    assert_eq!(board.json["mobile_tickets"], true);
    let r = anonymous(&c, MOBILE, &[]).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json["channel"], "mobile");
    assert_eq!(r.json["number"], "A001");
    let token = r.json["token"].as_str().unwrap();
    assert_eq!(r.json["ticket_url"], format!("/t/{token}"));
    assert_eq!(c.get(&format!("/api/v1/tickets/{token}")).await.status, 200);
    // A1: the green channel needs a person; a phone asking for it is
    // refused and nothing is issued.
    let green = anonymous(
        &c,
        r#"{"service":"business","channel":"mobile","priority":"priority"}"#,
        &[],
    )
    .await;
    assert_eq!(
        (green.status, green.code()),
        (403, "forbidden"),
        "{}",
        green.text
    );
    assert!(green.text.contains("staff"), "{}", green.text);
    // A kiosk's token still gives it.
    let kiosk = c
        .post(
            "/api/v1/halls/demo/tickets",
            common::KIOSK,
            r#"{"service":"business","priority":"priority"}"#,
        )
        .await;
    assert_eq!(kiosk.json["priority"], "priority");
    // Without a token only a mobile ticket: a kiosk's needs its token.
    for body in [
        r#"{"service":"business"}"#,
        r#"{"service":"business","channel":"kiosk"}"#,
        r#"{"service":"business","channel":"appointment"}"#,
    ] {
        let r = anonymous(&c, body, &[]).await;
        assert_eq!(
            (r.status, r.code()),
            (401, "unauthorized"),
            "{body}: {}",
            r.text
        );
    }
    // A broken body says what is wrong, as for anyone.
    let r = anonymous(
        &c,
        r#"{"service":"business","channel":"mobile","priorty":"x"}"#,
        &[],
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.text.contains("priorty"), "{}", r.text);
    let r = anonymous(&c, r#"{"service":"nope","channel":"mobile"}"#, &[]).await;
    assert_eq!(r.status, 404);
    assert_eq!(
        c.floor(3).await["waiting"][0]["count"],
        2,
        "only the phone's and the kiosk's tickets"
    );
}

#[tokio::test]
async fn a_phones_idempotency_key_is_its_own() {
    let s = Server::start_config(&behind_proxy());
    let c = Client::new(&s);
    let phone = |ip: &'static str| [("idempotency-key", "same-key"), ("x-forwarded-for", ip)];
    let first = anonymous(&c, MOBILE, &phone("10.0.0.7")).await;
    assert_eq!(first.status, 201);
    let again = anonymous(&c, MOBILE, &phone("10.0.0.7")).await;
    assert_eq!(
        again.text, first.text,
        "the same phone's repeat gets its first answer"
    );
    // Another phone that happens to use the same key gets its own ticket,
    // never the first phone's token.
    let other = anonymous(&c, MOBILE, &phone("10.0.0.8")).await;
    assert_eq!(other.status, 201);
    assert_ne!(other.json["token"], first.json["token"]);
    assert_eq!(other.json["number"], "A002");
}

#[tokio::test]
async fn a_hall_without_mobile_tickets_refuses_phones_and_has_no_poster() {
    let config = hallcast::demo::CONFIG.replace("mobile_tickets = true", "mobile_tickets = false");
    let s = Server::start_config(&config);
    let c = Client::new(&s);
    assert_eq!(
        c.get("/api/v1/halls/demo").await.json["mobile_tickets"],
        false
    );
    let r = anonymous(&c, MOBILE, &[]).await;
    assert_eq!((r.status, r.code()), (401, "unauthorized"));
    let qr = c.get("/api/v1/halls/demo/join-qr.svg").await;
    assert_eq!(qr.status, 404);
    assert!(qr.text.contains("mobile_tickets"), "{}", qr.text);
}

#[tokio::test]
async fn the_join_page_and_its_poster_qr() {
    let s = Server::start();
    let c = Client::new(&s);
    let page = c.http.get(s.url("/join/demo")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("/assets/join.js"));
    let qr = c.get("/api/v1/halls/demo/join-qr.svg").await;
    assert_eq!(qr.status, 200);
    assert!(
        qr.text.starts_with("<?xml") || qr.text.contains("<svg"),
        "{}",
        &qr.text[..60]
    );
    assert_eq!(c.get("/api/v1/halls/nope/join-qr.svg").await.status, 404);
    let nope = c.http.get(s.url("/join/nope")).send().await.unwrap();
    assert_eq!(nope.status(), 404);
}

#[tokio::test]
async fn a_phone_gets_no_number_while_the_hall_is_closed() {
    // Open only on a day far ahead: closed now, without stepping a clock.
    let demo = hallcast::demo::CONFIG;
    let (start, end) = (
        demo.find("  [halls.hours]").unwrap(),
        demo.find("  [[halls.floors]]").unwrap(),
    );
    let config = format!(
        "{}  [halls.hours]\n  [[halls.hours.special]]\n  date = \"2099-01-02\"\n  hours = \"09:00-17:00\"\n\n{}",
        &demo[..start],
        &demo[end..]
    );
    let s = Server::start_config(&config);
    let c = Client::new(&s);
    let r = anonymous(&c, MOBILE, &[]).await;
    assert_eq!((r.status, r.code()), (409, "closed"), "{}", r.text);
    assert!(r.json["error"]["next_open"]
        .as_str()
        .unwrap()
        .starts_with("2099-01-02T09:00"));
}
