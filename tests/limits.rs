//! Limits and hardening (contract §13) on the real binary: idempotency
//! keys bound to their request, refusals that store no key, unknown
//! fields, a corrupt store refused at start.

mod common;

use common::{window_token, Client, Server, ADMIN, KIOSK};

const TICKETS: &str = "/api/v1/halls/demo/tickets";

async fn keyed(c: &Client, path: &str, token: &str, body: &str, key: &str) -> common::Resp {
    c.send(
        "POST",
        path,
        Some(token),
        Some(body),
        &[("idempotency-key", key)],
    )
    .await
}

/// Rows in the store's idempotency table (the server keeps running: WAL
/// lets a reader in beside it).
fn idempotency_rows(s: &Server) -> i64 {
    let db = rusqlite::Connection::open(s.dir.join("hallcast.db")).unwrap();
    db.query_row("SELECT COUNT(*) FROM idempotency", [], |r| r.get(0))
        .unwrap()
}

#[tokio::test]
async fn a_key_names_one_request_and_refusals_store_no_key() {
    let s = Server::start();
    let c = Client::new(&s);
    let body = r#"{"service":"business"}"#;
    let first = keyed(&c, TICKETS, KIOSK, body, "k-1").await;
    assert_eq!(first.status, 201);
    // Same key, another body, byte for byte: 422 and no effect.
    let other = keyed(&c, TICKETS, KIOSK, r#"{"service":"business" }"#, "k-1").await;
    assert_eq!(
        (other.status, other.code()),
        (422, "idempotency_mismatch"),
        "{}",
        other.text
    );
    // Same key, another path: an admin call on 3-02 with a key first used
    // on 3-01 is refused, and nothing is called on 3-02.
    let on_301 = keyed(
        &c,
        "/api/v1/halls/demo/windows/3-01/call",
        ADMIN,
        "{}",
        "adm-1",
    )
    .await;
    assert_eq!(on_301.status, 200);
    let on_302 = keyed(
        &c,
        "/api/v1/halls/demo/windows/3-02/call",
        ADMIN,
        "{}",
        "adm-1",
    )
    .await;
    assert_eq!(
        (on_302.status, on_302.code()),
        (422, "idempotency_mismatch")
    );
    let w = c
        .send(
            "GET",
            "/api/v1/halls/demo/windows/3-02",
            Some(ADMIN),
            None,
            &[],
        )
        .await;
    assert!(
        w.json["ticket"].is_null(),
        "3-02 called nothing: {}",
        w.text
    );
    // The same request again still gets its first answer.
    let again = keyed(&c, TICKETS, KIOSK, body, "k-1").await;
    assert_eq!((again.status, again.text), (201, first.text));
    assert_eq!(c.issue("business").await["number"], "A002");

    // Refusals store no key: 500 refused cancels with fresh keys leave the
    // table as it was, and each answers 409 the same.
    let token = c.issue("tax").await["token"].as_str().unwrap().to_string();
    let cancel = format!("/api/v1/tickets/{token}/cancel");
    assert_eq!(c.post(&cancel, "", "").await.status, 200);
    let rows = idempotency_rows(&s);
    for i in 0..500 {
        let r = c
            .send(
                "POST",
                &cancel,
                None,
                None,
                &[("idempotency-key", &format!("c-{i}"))],
            )
            .await;
        assert_eq!(r.status, 409);
    }
    assert_eq!(idempotency_rows(&s), rows, "no refused request left a key");
    // A refused request may be retried with the same key once fixed.
    let bad = keyed(&c, TICKETS, KIOSK, r#"{"service":"nope"}"#, "k-2").await;
    assert_eq!(bad.status, 404);
    let good = keyed(&c, TICKETS, KIOSK, r#"{"service":"tax"}"#, "k-2").await;
    assert_eq!(good.status, 201, "{}", good.text);
}

#[tokio::test]
async fn unknown_fields_are_refused_naming_the_field_and_change_nothing() {
    let s = Server::start();
    let c = Client::new(&s);
    let before = c.floor(3).await;
    let cases = [
        (
            TICKETS.to_string(),
            KIOSK.to_string(),
            r#"{"service":"business","priorty":"priority"}"#,
            "priorty",
        ),
        (
            TICKETS.into(),
            KIOSK.into(),
            r#"{"service":"business","notify":{"phone":"13800000000","name":"x"}}"#,
            "name",
        ),
        (
            "/api/v1/halls/demo/windows/3-01/call".into(),
            window_token("3-01"),
            r#"{"numbr":"A001"}"#,
            "numbr",
        ),
        (
            "/api/v1/halls/demo/windows/3-01/pause".into(),
            window_token("3-01"),
            r#"{"why":"lunch"}"#,
            "why",
        ),
        (
            "/api/v1/halls/demo/windows/3-01/transfer".into(),
            window_token("3-01"),
            r#"{"service":"tax","to":"x"}"#,
            "to",
        ),
    ];
    for (path, token, body, field) in cases {
        let r = c.post(&path, &token, body).await;
        assert_eq!(
            (r.status, r.code()),
            (400, "bad_request"),
            "{path} {body}: {}",
            r.text
        );
        let msg = r.json["error"]["message"].as_str().unwrap();
        assert!(msg.contains(&format!("`{field}`")), "names {field}: {msg}");
        assert!(!msg.contains("13800000000"), "never echoes a phone: {msg}");
    }
    assert_eq!(c.floor(3).await, before);
    let hall = c.get("/api/v1/halls/demo").await.json;
    assert_eq!(hall["windows"][0]["state"], "open", "the pause was refused");
}

#[tokio::test]
async fn a_corrupt_store_is_refused_at_start_naming_table_row_and_value() {
    let mut s = Server::start();
    let c = Client::new(&s);
    c.issue("business").await;
    s.terminate();
    let db = s.dir.join("hallcast.db");
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute(
            "UPDATE tickets SET status='wandering' WHERE number='A001'",
            [],
        )
        .unwrap();
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_hallcast"))
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&s.dir)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success(), "a corrupt store must not be served");
    for word in ["tickets", "'wandering'", "status", "id 1"] {
        assert!(err.contains(word), "names {word}: {err}");
    }
}
