//! Zone guides (`[[halls.zones]]`): where a citizen is sent, the ticket,
//! the phone's called message and the hall's board say how to find it.

mod common;

use common::{Client, Server, Ws};

#[tokio::test]
async fn the_ticket_the_board_and_the_called_message_carry_the_zone_guide() {
    let s = Server::start();
    let c = Client::new(&s);
    let board = c.get("/api/v1/halls/demo").await.json;
    let guide = board["zones"]
        .as_array()
        .unwrap()
        .iter()
        .find(|z| z["floor"] == 3 && z["id"] == "A")
        .expect("3F zone A has a guide")
        .clone();
    assert_eq!(guide["where"], "出电梯直行");
    // The ticket says how to find the zone to wait in (fund: 2F C).
    let t = c.issue("fund").await;
    assert_eq!(
        (t["floor"].as_i64(), t["zone"].as_str()),
        (Some(2), Some("C"))
    );
    assert_eq!(t["where"], "出电梯左转");
    let token = t["token"].as_str().unwrap();
    let mut phone = Ws::connect(&s.ws(&format!("/ws/v1/tickets/{token}"))).await;
    assert_eq!(phone.next().await["type"], "ticket");
    // Window 3-01 (3F zone A) calls it: the called message says how to get there.
    assert_eq!(c.window("3-01", "call", "{}").await.status, 200);
    let called = phone.until(|m| m["type"] == "called").await.pop().unwrap();
    assert_eq!(called["zone"], "A");
    assert_eq!(called["where"], "出电梯直行");
    assert_eq!(called["window"]["where"], "出电梯直行");
    let seen = c.get(&format!("/api/v1/tickets/{token}")).await.json;
    assert_eq!(seen["window"]["where"], "出电梯直行");
}

#[tokio::test]
async fn without_guides_nothing_is_added() {
    let base = hallcast::demo::CONFIG;
    let at = base.find("  [[halls.zones]]").unwrap();
    let end = base.find("  [[halls.kiosks]]").unwrap();
    let config = format!("{}{}", &base[..at], &base[end..]);
    let s = Server::start_config(&config);
    let c = Client::new(&s);
    assert_eq!(
        c.get("/api/v1/halls/demo").await.json["zones"],
        serde_json::json!([])
    );
    let t = c.issue("fund").await;
    assert!(t.get("where").is_none(), "{t}");
}
