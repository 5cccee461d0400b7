//! A config changed between restarts never breaks a day: a service
//! renamed, prefixes swapped, a window removed with a called ticket, a
//! service removed with tickets waiting. Numbers never repeat within the
//! day, orphaned tickets end cleanly, nothing panics.

mod common;

use common::{Client, Server};
use serde_json::Value;

const BEFORE: &str = r#"
[[halls]]
id = "east"
name = "East hall"
timezone = "Asia/Shanghai"
admin_token = "east-admin-token-123"
  [[halls.floors]]
  number = 1
  name = "1F"
  announce = "voice"
  [[halls.services]]
  id = "business"
  name = "企业开办"
  prefix = "A"
  floor = 1
  zone = "A"
  [[halls.services]]
  id = "tax"
  name = "税务"
  prefix = "B"
  floor = 1
  zone = "B"
  [[halls.services]]
  id = "seal"
  name = "刻章"
  prefix = "C"
  floor = 1
  zone = "C"
  [[halls.windows]]
  id = "1-01"
  label = "1"
  floor = 1
  zone = "A"
  services = ["business", "tax", "seal"]
  token = "east-window-1-01-tok"
  [[halls.windows]]
  id = "1-02"
  label = "2"
  floor = 1
  zone = "A"
  services = ["business", "tax"]
  token = "east-window-1-02-tok"
"#;

const ADMIN: &str = "east-admin-token-123";

async fn status(c: &Client, t: &Value) -> (u16, Value) {
    let r = c
        .get(&format!("/api/v1/tickets/{}", t["token"].as_str().unwrap()))
        .await;
    (r.status, r.json["status"].clone())
}

#[tokio::test]
async fn renamed_services_swapped_prefixes_and_removed_windows_keep_the_day_whole() {
    let mut s = Server::start_config(BEFORE);
    let c = Client::new(&s);
    let a1 = c.issue_in("east", ADMIN, "business").await; // A001 waits
    let a2 = c.issue_in("east", ADMIN, "business").await; // A002 waits
    let b1 = c.issue_in("east", ADMIN, "tax").await; // B001 → called at 1-02, which goes away
    let c1 = c.issue_in("east", ADMIN, "seal").await; // C001 waits; its service goes away
    let r = c
        .post(
            "/api/v1/halls/east/windows/1-02/call",
            ADMIN,
            r#"{"number":"B001"}"#,
        )
        .await;
    assert_eq!(r.json["ticket"]["number"], "B001");

    // The hall renames "business" to "company" and gives it prefix B, gives
    // "tax" prefix A, drops "seal" and window 1-02.
    let after = BEFORE
        .replacen("id = \"business\"", "id = \"company\"", 1)
        .replacen("prefix = \"A\"", "prefix = \"X\"", 1)
        .replacen("prefix = \"B\"", "prefix = \"A\"", 1)
        .replacen("prefix = \"X\"", "prefix = \"B\"", 1)
        .replacen(
            "services = [\"business\", \"tax\", \"seal\"]",
            "services = [\"company\", \"tax\"]",
            1,
        );
    let seal_at = after.find("  [[halls.services]]\n  id = \"seal\"").unwrap();
    let seal_end = after[seal_at..].find("  [[halls.windows]]").unwrap() + seal_at;
    let mut after = format!("{}{}", &after[..seal_at], &after[seal_end..]);
    let w2 = after.find("  [[halls.windows]]\n  id = \"1-02\"").unwrap();
    after.truncate(w2);
    let cfg = s.dir.parent().unwrap().join("hallcast.toml");
    std::fs::write(&cfg, &after).unwrap();
    s.stop_and_restart();
    let c = Client::new(&s);

    // Numbers never repeat within the day: the renamed service (now B)
    // counts on after B001, tax (now A) after A002.
    let company = c.issue_in("east", ADMIN, "company").await;
    assert_eq!(company["number"], "B002");
    let tax = c.issue_in("east", ADMIN, "tax").await;
    assert_eq!(tax["number"], "A003");
    // The ticket called at the removed window ended cleanly.
    assert_eq!(status(&c, &b1).await, (200, "done".into()));
    // Tickets of a renamed or removed service cannot be called any more:
    // ended as a day's end would, never shown again, numbers kept.
    for t in [&a1, &a2, &c1] {
        assert_eq!(status(&c, t).await.0, 404);
    }
    let db = rusqlite::Connection::open(s.dir.join("hallcast.db")).unwrap();
    let ended: Vec<(String, String)> = db
        .prepare("SELECT number, status FROM tickets WHERE hall='east' AND number IN ('A001','A002','C001') ORDER BY number")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        ended,
        [
            ("A001".into(), "expired".into()),
            ("A002".into(), "expired".into()),
            ("C001".into(), "expired".into())
        ]
    );
    // The remaining window serves on: the two new tickets, then nothing.
    let mut called = Vec::new();
    for _ in 0..2 {
        let r = c
            .post("/api/v1/halls/east/windows/1-01/call", ADMIN, "{}")
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        called.push(r.json["ticket"]["number"].as_str().unwrap().to_string());
    }
    assert_eq!(
        called,
        ["B002", "A003"],
        "in the window's order of services"
    );
    let r = c
        .post("/api/v1/halls/east/windows/1-01/call", ADMIN, "{}")
        .await;
    assert_eq!(r.status, 204);
    // And one more restart with the same config changes nothing.
    s.stop_and_restart();
    let c = Client::new(&s);
    assert_eq!(c.issue_in("east", ADMIN, "company").await["number"], "B003");
}
