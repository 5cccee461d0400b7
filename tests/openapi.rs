//! `GET /api/v1/openapi.json` (issue "Day after day"): the document names
//! exactly the router's routes, each of them is served, and the checker
//! that every other integration test runs on every answer
//! (`common::openapi`) refuses a shape that does not fit.

mod common;

use std::collections::BTreeSet;

use common::{openapi, Client, Server, Ws, ADMIN};
use serde_json::Value;

#[tokio::test]
async fn the_document_names_every_route_of_the_router_and_nothing_else() {
    let s = Server::start();
    let c = Client::new(&s);
    let r = c.get("/api/v1/openapi.json").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text, hallcast::api::OPENAPI, "served as committed");
    let doc = r.json;
    assert_eq!(doc["openapi"], "3.1.0");
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| (m.to_uppercase(), path.clone()))
        })
        .collect();
    let routed: BTreeSet<(String, String)> = hallcast::api::ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(documented, routed);
    // Every reference resolves, and every operation says what it answers.
    fn refs(v: &Value, doc: &Value) {
        match v {
            Value::Object(o) => {
                if let Some(Value::String(r)) = o.get("$ref") {
                    let p = r.strip_prefix('#').expect("a local reference");
                    assert!(doc.pointer(p).is_some(), "{r} resolves");
                }
                o.values().for_each(|v| refs(v, doc));
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, doc)),
            _ => {}
        }
    }
    refs(&doc, &doc);
    for (method, path) in &routed {
        let op = &doc["paths"][path][method.to_lowercase()];
        assert!(
            op["responses"].as_object().is_some_and(|r| !r.is_empty()),
            "{method} {path}"
        );
        // Every `{param}` of the path is described.
        for name in path.split('{').skip(1).filter_map(|p| p.split('}').next()) {
            let described = op["parameters"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|p| p["name"] == name && p["in"] == "path"));
            assert!(described, "{method} {path}: parameter {name}");
        }
    }
}

#[tokio::test]
async fn every_documented_route_is_served() {
    let s = Server::start();
    let c = Client::new(&s);
    // Real ids for every parameter: a ticket, and an announcement of a call.
    let mut floor = Ws::connect(&s.ws("/ws/v1/halls/demo/floors/3")).await;
    assert_eq!(floor.next().await["type"], "snapshot");
    let ticket = c.issue("business").await;
    let token = ticket["token"].as_str().unwrap().to_string();
    assert_eq!(c.window("3-01", "call", "{}").await.status, 200);
    let called = floor.until(|e| e["type"] == "called").await.pop().unwrap();
    let audio = called["announcement"]["audio"].as_str().unwrap();
    let id = audio
        .strip_prefix("/api/v1/announcements/")
        .and_then(|a| a.strip_suffix(".wav"))
        .unwrap()
        .to_string();
    let fill = |t: &str| {
        t.replace("{hall}", "demo")
            .replace("{floor}", "3")
            .replace("{window}", "3-01")
            .replace("{token}", &token)
            .replace("{id}", &id)
    };
    for (method, template) in hallcast::api::ROUTES {
        let path = fill(template);
        if template.starts_with("/sse/") {
            // A stream that never ends: its head and first event are enough.
            let mut r = c.http.get(s.url(&path)).send().await.unwrap();
            assert_eq!(r.status(), 200, "{path}");
            let ct = r.headers()["content-type"].to_str().unwrap().to_string();
            assert!(ct.starts_with("text/event-stream"), "{path}: {ct}");
            let chunk = r.chunk().await.unwrap().unwrap();
            assert!(
                std::str::from_utf8(&chunk).unwrap().contains("data:"),
                "{path}"
            );
            continue;
        }
        if template.starts_with("/ws/") {
            // The upgrade is answered 101, or `connect` panics.
            let mut ws = Ws::connect(&s.ws(&path)).await;
            let first = if path.contains("/tickets/") {
                "ticket"
            } else {
                "snapshot"
            };
            assert_eq!(ws.next().await["type"], first, "{path}");
            continue;
        }
        let body = match *template {
            t if t.ends_with("/transfer") => Some(r#"{"service":"tax"}"#),
            t if t.ends_with("/tickets") => Some(r#"{"service":"business"}"#),
            _ if *method == "POST" => Some("{}"),
            _ => None,
        };
        let r = c.send(method, &path, Some(ADMIN), body, &[]).await;
        let unrouted = r.status == 405 || (r.status == 404 && r.text.contains("no such API route"));
        assert!(
            !unrouted,
            "{method} {template} is not routed: {} {}",
            r.status, r.text
        );
    }
}

#[test]
fn the_checker_refuses_what_the_document_does_not_say() {
    let fits = |status: u16, ct: &str, body: &str| {
        std::panic::catch_unwind(|| openapi::check("GET", "/api/v1/halls", status, ct, body))
            .is_ok()
    };
    assert!(fits(
        200,
        "application/json",
        r#"[{"id":"demo","name":"x","floors":[1,3]}]"#
    ));
    assert!(
        !fits(200, "application/json", r#"[{"id":"demo","name":"x"}]"#),
        "a missing field"
    );
    assert!(
        !fits(
            200,
            "application/json",
            r#"[{"id":"demo","name":"x","floors":[1],"extra":1}]"#
        ),
        "an undocumented field"
    );
    assert!(
        !fits(
            200,
            "application/json",
            r#"[{"id":"demo","name":"x","floors":["1"]}]"#
        ),
        "a wrong type"
    );
    assert!(!fits(200, "text/html", "<p>"), "a wrong content type");
    assert!(
        !fits(418, "application/json", "{}"),
        "an undocumented status"
    );
    let error = r#"{"error":{"code":"rate_limited","message":"slow down"}}"#;
    assert!(fits(429, "application/json", error));
    assert!(
        !fits(
            429,
            "application/json",
            r#"{"error":{"code":"nope","message":"x"}}"#
        ),
        "an unknown code"
    );
    let hall = |body: &str| {
        std::panic::catch_unwind(|| {
            openapi::check("GET", "/api/v1/tickets/abc", 200, "application/json", body)
        })
        .is_ok()
    };
    assert!(!hall(r#"{"number":"A001"}"#), "a ticket needs its fields");
}
