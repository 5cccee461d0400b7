//! WebSocket channels of contract §4 against the real server.

mod common;

use std::time::Duration;

use common::{Client, End, Server, Ws, KIOSK};
use serde_json::Value;

fn seq(v: &Value) -> u64 {
    v["seq"].as_u64().unwrap_or_else(|| panic!("no seq in {v}"))
}

#[tokio::test]
async fn floor_channel_starts_with_a_snapshot_then_gapless_events() {
    let s = Server::start();
    let c = Client::new(&s);
    c.issue("business").await;
    let mut ws = Ws::connect(&s.ws("/ws/v1/halls/demo/floors/3")).await;
    let snap = ws.next().await;
    assert_eq!(snap["type"], "snapshot");
    assert_eq!(snap["hall"], "demo");
    assert_eq!(snap["floor"], 3);
    assert_eq!(snap["announce"], "voice");
    assert_eq!(
        snap,
        c.floor(3).await,
        "the channel's snapshot is the GET's"
    );
    let mut last = seq(&snap);
    assert!(last >= 1);

    c.issue("business").await;
    let called = c.window("3-01", "call", "{}").await;
    assert_eq!(called.status, 200);
    c.window("3-01", "recall", "").await;
    c.window("3-01", "start", "").await;
    c.window("3-01", "pause", "").await;
    c.window("3-01", "complete", "").await;
    let events = ws
        .until(|v| v["type"] == "ticket" && v["status"] == "done")
        .await;
    for e in &events {
        assert_eq!(seq(e), last + 1, "gapless: {e}");
        last = seq(e);
        assert!(
            e["at"].as_str().is_some_and(|a| a.ends_with("+08:00")),
            "{e}"
        );
    }
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        ["waiting", "called", "waiting", "called", "ticket", "window", "ticket"]
    );
    let call = &events[1];
    assert_eq!(call["number"], "A001");
    assert_eq!(call["window"], "3-01");
    assert_eq!(call["label"], "1");
    assert_eq!(call["zone"], "A");
    assert_eq!(call["service"], "business");
    assert_eq!(call["recall"], 0);
    assert!(call.as_object().unwrap().contains_key("announcement"));
    assert_eq!(events[3]["recall"], 1);
    assert_eq!(events[4]["status"], "serving");
    assert_eq!(events[5]["state"], "paused");
    assert_eq!(events[0]["service"], "business");
    assert_eq!(events[0]["count"], 2);
}

#[tokio::test]
async fn a_silent_floor_has_no_announcement() {
    let s = Server::start();
    let c = Client::new(&s);
    let mut ws = Ws::connect(&s.ws("/ws/v1/halls/demo/floors/5")).await;
    assert_eq!(ws.next().await["announce"], "silent");
    c.issue("tax").await;
    c.window("5-01", "call", "{}").await;
    let got = ws.until(|v| v["type"] == "called").await;
    assert!(got.last().unwrap()["announcement"].is_null());
}

#[tokio::test]
async fn resume_replays_exactly_the_missed_events() {
    let s = Server::start();
    let c = Client::new(&s);
    for _ in 0..5 {
        c.issue("social").await;
    }
    for w in ["2-01", "2-02"] {
        c.window(w, "call", "{}").await;
    }
    let now = c.floor(2).await;
    let head = seq(&now);
    // A screen that saw up to head-4 gets exactly the last four, in order.
    let mut ws =
        Ws::connect(&s.ws(&format!("/ws/v1/halls/demo/floors/2?after={}", head - 4))).await;
    for want in head - 3..=head {
        let e = ws.next().await;
        assert_eq!(seq(&e), want);
        assert_ne!(e["type"], "snapshot");
    }
    c.issue("social").await;
    assert_eq!(seq(&ws.next().await), head + 1, "then live, without a gap");
    // Up to date: nothing first.
    let mut ws =
        Ws::connect(&s.ws(&format!("/ws/v1/halls/demo/floors/2?after={}", head + 1))).await;
    assert!(ws.silent_for(Duration::from_millis(300)).await);
    // A seq the server never had gets a snapshot.
    let mut ws = Ws::connect(&s.ws("/ws/v1/halls/demo/floors/2?after=99999")).await;
    let snap = ws.next().await;
    assert_eq!(
        (snap["type"].as_str(), seq(&snap)),
        (Some("snapshot"), head + 1)
    );
}

#[tokio::test]
async fn the_hall_channel_carries_every_floor_with_its_own_seq() {
    let s = Server::start();
    let c = Client::new(&s);
    let mut ws = Ws::connect(&s.ws("/ws/v1/halls/demo")).await;
    let snap = ws.next().await;
    assert_eq!(snap["type"], "snapshot");
    assert_eq!(snap["floors"].as_array().unwrap().len(), 7);
    assert_eq!(snap["floors"][2]["type"], "snapshot");
    let mut last = seq(&snap);
    c.issue("tax").await;
    c.issue("pickup").await;
    c.window("1-01", "call", "{}").await;
    let events = ws.until(|v| v["type"] == "called").await;
    let mut floors = Vec::new();
    for e in &events {
        assert_eq!(seq(e), last + 1);
        last = seq(e);
        floors.push(e["floor"].as_i64().unwrap());
    }
    assert!(floors.contains(&5) && floors.contains(&1), "{floors:?}");
    // Resume on the hall channel too.
    let mut again = Ws::connect(&s.ws(&format!("/ws/v1/halls/demo?after={}", last - 1))).await;
    assert_eq!(seq(&again.next().await), last);
}

#[tokio::test]
async fn catch_up_older_than_the_ring_comes_from_the_store() {
    let s = Server::start();
    let c = Client::new(&s);
    // 1,100 waiting events on floor 7 (construction is shown there only).
    let tasks: Vec<_> = (0..1100)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { c.issue("construction").await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let mut ws = Ws::connect(&s.ws("/ws/v1/halls/demo/floors/7?after=2")).await;
    for want in 3..=1100 {
        let e = ws.next().await;
        assert_eq!(seq(&e), want, "{e}");
        assert_eq!(e["type"], "waiting");
        assert_eq!(e["count"], want, "the event itself, not a later one");
    }
    assert!(ws.silent_for(Duration::from_millis(200)).await);
}

#[tokio::test]
async fn too_far_behind_gets_a_snapshot() {
    let s = Server::start();
    let c = Client::new(&s);
    // More events than a catch-up replays: the screen starts over instead.
    let n = hallcast::gateway::channel::MAX_STORE_REPLAY + 30;
    let clients: Vec<_> = (0..32)
        .map(|i| {
            let c = c.clone();
            tokio::spawn(async move {
                for _ in (i..n).step_by(32) {
                    c.issue("construction").await;
                }
            })
        })
        .collect();
    for t in clients {
        t.await.unwrap();
    }
    let mut ws = Ws::connect(&s.ws("/ws/v1/halls/demo/floors/7?after=1")).await;
    let first = ws.next().await;
    assert_eq!(first["type"], "snapshot");
    assert_eq!(seq(&first), n as u64);
}

#[tokio::test]
async fn seq_continues_across_a_restart_and_screens_are_told_to_reconnect() {
    let mut s = Server::start();
    let c = Client::new(&s);
    c.issue("household").await;
    let mut ws = Ws::connect(&s.ws("/ws/v1/halls/demo/floors/6")).await;
    let snap = ws.next().await;
    c.window("6-01", "call", "{}").await;
    let last = seq(ws.until(|v| v["type"] == "called").await.last().unwrap());
    assert!(last > seq(&snap));

    // SIGTERM: the screen gets "going away" (1001).
    let stop = tokio::task::spawn_blocking(move || {
        let st = s.terminate();
        (s, st)
    });
    assert_eq!(
        ws.closed().await,
        End::Close(1001, "server restarting; reconnect with ?after".into())
    );
    let (mut s, status) = stop.await.unwrap();
    assert!(status.success());
    s.crash_and_restart(); // already stopped: just starts again
    let c = Client::new(&s);
    let mut ws = Ws::connect(&s.ws(&format!("/ws/v1/halls/demo/floors/6?after={last}"))).await;
    c.issue("household").await;
    let e = ws.next().await;
    assert_eq!(
        seq(&e),
        last + 1,
        "no gap, no repeat across the restart: {e}"
    );
    // And a screen that missed the call replays it from before the restart.
    let mut ws =
        Ws::connect(&s.ws(&format!("/ws/v1/halls/demo/floors/6?after={}", last - 1))).await;
    let e = ws.next().await;
    assert_eq!((seq(&e), e["type"].as_str()), (last, Some("called")));
}

#[tokio::test]
async fn public_channels_carry_no_personal_data() {
    let s = Server::start();
    let c = Client::new(&s);
    let mut floor = Ws::connect(&s.ws("/ws/v1/halls/demo/floors/3")).await;
    let mut hall = Ws::connect(&s.ws("/ws/v1/halls/demo")).await;
    let body = r#"{"service":"business","channel":"mobile","notify":{"phone":"13912345678"}}"#;
    let t = c.post("/api/v1/halls/demo/tickets", KIOSK, body).await.json;
    let token = t["token"].as_str().unwrap().to_string();
    c.window("3-07", "call", "{}").await;
    c.window("3-07", "transfer", r#"{"service":"tax"}"#).await;
    let mut seen = String::new();
    for v in floor
        .until(|v| v["type"] == "waiting" && v["service"] == "tax")
        .await
    {
        seen.push_str(&v.to_string());
    }
    for v in hall
        .until(|v| v["type"] == "waiting" && v["service"] == "tax")
        .await
    {
        seen.push_str(&v.to_string());
    }
    seen.push_str(&c.floor(3).await.to_string());
    assert!(seen.contains("A001"));
    assert!(
        !seen.contains("13912345678"),
        "phone number on a public channel"
    );
    assert!(!seen.contains(&token), "ticket token on a public channel");
}

#[tokio::test]
async fn the_ticket_channel_follows_one_citizen_from_waiting_to_called() {
    let s = Server::start();
    let c = Client::new(&s);
    c.issue("fund").await; // D001, ahead of ours
    let mine = c.issue("fund").await; // D002
    let token = mine["token"].as_str().unwrap();
    let mut ws = Ws::connect(&s.ws(&format!("/ws/v1/tickets/{token}"))).await;
    let first = ws.next().await;
    assert_eq!(first["type"], "ticket");
    assert_eq!(first["number"], "D002");
    assert_eq!(first["status"], "waiting");
    assert_eq!(first["ahead"], 1);

    c.window("2-03", "call", "{}").await; // D001 called: we move up
    let moved = ws.next().await;
    assert_eq!(
        (moved["type"].as_str(), moved["ahead"].as_u64()),
        (Some("ticket"), Some(0))
    );
    assert_eq!(moved["eta_seconds"], 0);

    c.window("2-03", "call", "{}").await; // D002 called
    let t = ws.next().await;
    assert_eq!(
        (t["type"].as_str(), t["status"].as_str()),
        (Some("ticket"), Some("called"))
    );
    let called = ws.next().await;
    assert_eq!(called["type"], "called");
    assert_eq!(called["number"], "D002");
    assert_eq!(called["window"]["id"], "2-03");
    assert_eq!(called["window"]["label"], "3");
    assert_eq!(
        (called["floor"].as_i64(), called["zone"].as_str()),
        (Some(2), Some("C"))
    );
    assert_eq!(called["recall"], 0);

    c.window("2-03", "recall", "").await;
    let t = ws.next().await;
    assert_eq!(t["recall"], 1);
    let again = ws.next().await;
    assert_eq!(
        (again["type"].as_str(), again["recall"].as_u64()),
        (Some("called"), Some(1))
    );

    c.window("2-03", "start", "").await;
    assert_eq!(ws.next().await["status"], "serving");
    c.window("2-03", "complete", "").await;
    assert_eq!(ws.next().await["status"], "done");
}

#[tokio::test]
async fn unknown_channels_are_refused_before_the_upgrade() {
    let s = Server::start();
    assert_eq!(Ws::refused(&s.ws("/ws/v1/halls/nope")).await, 404);
    assert_eq!(Ws::refused(&s.ws("/ws/v1/halls/demo/floors/42")).await, 404);
    assert_eq!(Ws::refused(&s.ws("/ws/v1/halls/demo/floors/x")).await, 404);
    assert_eq!(Ws::refused(&s.ws("/ws/v1/tickets/not-a-token")).await, 404);
    assert_eq!(
        Ws::refused(&s.ws("/ws/v1/halls/demo?after=yesterday")).await,
        400
    );
    let c = Client::new(&s);
    let plain = c.get("/ws/v1/halls/demo").await;
    assert_eq!((plain.status, plain.code()), (400, "bad_request"));
    let missing = c.get("/ws/v1/halls/nope").await;
    assert_eq!((missing.status, missing.code()), (404, "not_found"));
}

#[tokio::test]
async fn bad_input_closes_only_that_socket() {
    let s = Server::start();
    let c = Client::new(&s);
    let mut good = Ws::connect(&s.ws("/ws/v1/halls/demo/floors/3")).await;
    good.next().await;
    let cases: Vec<(&str, u16)> = vec![("text", 1008), ("binary", 1003), ("huge", 1009)];
    for (kind, code) in cases {
        let mut bad = Ws::connect(&s.ws("/ws/v1/halls/demo/floors/3")).await;
        bad.next().await;
        match kind {
            "text" => bad.send_text("hello?").await,
            "binary" => bad.send_binary(vec![0, 1, 2]).await,
            _ => bad.send_text(&"x".repeat(64 * 1024)).await,
        }
        match bad.closed().await {
            End::Close(got, reason) => {
                assert_eq!(got, code, "{kind}: {reason}");
                assert!(!reason.is_empty());
            }
            End::Eof => panic!("{kind}: closed without a reason"),
        }
    }
    c.issue("business").await;
    assert_eq!(
        good.next().await["type"],
        "waiting",
        "the others keep receiving"
    );
}

#[tokio::test]
async fn a_stalled_screen_is_closed_and_catches_up_while_others_keep_receiving() {
    use tokio::net::TcpSocket;
    let s = Server::start();
    let c = Client::new(&s);
    // A screen that stops reading, with a tiny receive window so the server
    // backs up quickly.
    let addr: std::net::SocketAddr = s.base.trim_start_matches("http://").parse().unwrap();
    let sock = TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(2048).unwrap();
    let tcp = sock.connect(addr).await.unwrap();
    let tcp = tokio_tungstenite::MaybeTlsStream::Plain(tcp);
    let (stalled, _) = tokio_tungstenite::client_async(s.ws("/ws/v1/halls/demo"), tcp)
        .await
        .unwrap();
    let mut healthy = Ws::connect(&s.ws("/ws/v1/halls/demo")).await;
    let snap = healthy.next().await;
    let start = seq(&snap);

    // Window pause/resume: one event each, about 150 bytes.
    let total = 6000u64;
    let driver = {
        let c = c.clone();
        tokio::spawn(async move {
            for i in 0..total / 2 {
                let w = format!("3-{:02}", i % 25 + 1);
                assert_eq!(c.window(&w, "pause", "").await.status, 200);
                assert_eq!(c.window(&w, "resume", "").await.status, 200);
            }
        })
    };
    let mut last = start;
    while last < start + total {
        let e = healthy.next().await;
        assert_eq!(seq(&e), last + 1, "the healthy screen misses nothing");
        last = seq(&e);
    }
    driver.await.unwrap();

    // The stalled screen now reads: what was buffered, then a close that
    // says why and where to resume.
    let mut stalled = Ws::from_stream(stalled);
    let mut seen = start;
    let end = loop {
        match stalled.next_or_end(Duration::from_secs(10)).await {
            Ok(v) => {
                if v["type"] != "snapshot" {
                    assert_eq!(seq(&v), seen + 1);
                    seen = seq(&v);
                }
            }
            Err(end) => break end,
        }
    };
    match end {
        End::Close(code, reason) => {
            assert_eq!(code, 4008, "{reason}");
            assert!(reason.contains(&format!("after={seen}")), "{reason}");
        }
        End::Eof => panic!("closed without a reason"),
    }
    assert!(seen < start + total, "it was cut off before the end");
    // It reconnects with ?after and gets every call it missed.
    let mut back = Ws::connect(&s.ws(&format!("/ws/v1/halls/demo?after={seen}"))).await;
    for want in seen + 1..=start + total {
        assert_eq!(seq(&back.next().await), want);
    }
}

#[tokio::test]
async fn dead_peers_are_found_by_ping_and_live_ones_stay() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let config = hallcast::demo::CONFIG.replace("[server]", "[server]\nping_seconds = 1");
    let s = Server::start_config(&config);
    let c = Client::new(&s);
    // A live screen answers pings (tungstenite does it while reading, so
    // it reads all along, as a browser would).
    let mut live = Ws::connect(&s.ws("/ws/v1/halls/demo/floors/2")).await;
    live.next().await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(v) = live.next_or_end(Duration::from_secs(60)).await {
            let _ = tx.send(v);
        }
    });

    // A dead peer: completes the handshake, then never answers a ping.
    let addr = s.base.trim_start_matches("http://").to_string();
    let mut raw = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let req = format!(
        "GET /ws/v1/halls/demo/floors/2 HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n"
    );
    raw.write_all(req.as_bytes()).await.unwrap();
    let started = std::time::Instant::now();
    let mut buf = vec![0u8; 65536];
    let mut got = Vec::new();
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), raw.read(&mut buf))
            .await
            .expect("the server drops a silent peer within a few ping periods")
            .unwrap_or(0);
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 101"));
    // A ping frame: FIN + opcode 9, carrying the ping's 8-byte number.
    assert!(got.windows(2).any(|w| w == [0x89, 0x08]), "it was pinged");
    assert!(started.elapsed() >= Duration::from_secs(1));

    // The live screen is still there and still receiving.
    c.issue("social").await;
    let e = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("the live screen still receives")
        .expect("the live screen is still connected");
    assert_eq!(e["type"], "waiting");
}

/// Reads a channel from its snapshot (`snap`, or the first message) to
/// `last`: every seq once, in order.
async fn read_through(ws: &mut Ws, snap: Option<Value>, last: u64) -> (u64, Vec<Value>) {
    let snap = match snap {
        Some(s) => s,
        None => ws.next().await,
    };
    assert_eq!(snap["type"], "snapshot");
    let start = seq(&snap);
    let mut at = start;
    let mut events = Vec::new();
    while at < last {
        let e = ws.next().await;
        assert_eq!(seq(&e), at + 1, "gapless and no repeats: {e}");
        at = seq(&e);
        events.push(e);
    }
    assert!(
        ws.silent_for(Duration::from_millis(20)).await,
        "nothing after the last seq"
    );
    (start, events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_reach_every_screen_once_in_order_even_screens_joining_meanwhile() {
    let s = Server::start();
    let c = Client::new(&s);
    futures_util::future::join_all((0..100).map(|_| c.issue("business"))).await;
    let floor = s.ws("/ws/v1/halls/demo/floors/3");
    let hall = s.ws("/ws/v1/halls/demo");
    let mut early = Vec::new();
    for i in 0..30 {
        let mut ws = Ws::connect(if i % 5 == 0 { &hall } else { &floor }).await;
        // Subscribed for sure before the calls: the upgrade's answer can
        // come before the server has registered the screen.
        let snap = ws.next().await;
        early.push((ws, Some(snap)));
    }
    // Eight windows call at once, ten times each, while more screens join.
    let calls = futures_util::future::join_all((1..=8).map(|w| {
        let c = &c;
        async move {
            for _ in 0..10 {
                assert_eq!(
                    c.window(&format!("3-{w:02}"), "call", "{}").await.status,
                    200
                );
            }
        }
    }));
    let joins = async {
        let mut late = Vec::new();
        for i in 0..20 {
            late.push((
                Ws::connect(if i % 5 == 0 { &hall } else { &floor }).await,
                None,
            ));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        late
    };
    let (_, late) = tokio::join!(calls, joins);
    let last_floor = seq(&c.floor(3).await);
    let last_hall = seq(&Ws::connect(&hall).await.next().await);
    let mut from_start: Vec<Vec<Value>> = Vec::new();
    for (i, (mut ws, snap)) in early.into_iter().chain(late).enumerate() {
        let last = if i % 5 == 0 { last_hall } else { last_floor };
        let (start, events) = read_through(&mut ws, snap, last).await;
        if i < 30 && i % 5 != 0 {
            assert_eq!(start, 100, "early floor screens start after the issues");
            from_start.push(events);
        }
    }
    assert!(
        from_start.windows(2).all(|w| w[0] == w[1]),
        "every early screen saw the same events"
    );
    let called = from_start[0]
        .iter()
        .filter(|e| e["type"] == "called")
        .count();
    assert_eq!(called, 80);
}

/// A screen's place in the server is reused by the next connection: a
/// topic still naming the one that left must not reach the one that came.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn screens_coming_and_going_never_get_another_channels_events() {
    let s = Server::start();
    let c = Client::new(&s);
    futures_util::future::join_all((0..30).map(|_| c.issue("business"))).await;
    futures_util::future::join_all((0..30).map(|_| c.issue("pickup"))).await;
    let (floor3, floor1) = (
        s.ws("/ws/v1/halls/demo/floors/3"),
        s.ws("/ws/v1/halls/demo/floors/1"),
    );
    let calls = async {
        for _ in 0..25 {
            assert_eq!(c.window("3-01", "call", "{}").await.status, 200);
            assert_eq!(c.window("1-01", "call", "{}").await.status, 200);
        }
    };
    // Screens join floor 3 and floor 1 by turns; most leave at once
    // (abruptly), so their places are taken by the next, of the other
    // floor, while calls are on their way.
    let churn = async {
        let mut kept = Vec::new();
        for i in 0..80 {
            let on3 = i % 2 == 0;
            let mut ws = Ws::connect(if on3 { &floor3 } else { &floor1 }).await;
            let snap = ws.next().await;
            if i % 5 == 4 {
                kept.push((on3, ws, snap));
            }
        }
        kept
    };
    let (_, kept) = tokio::join!(calls, churn);
    let (last3, last1) = (seq(&c.floor(3).await), seq(&c.floor(1).await));
    assert_eq!(kept.len(), 16);
    for (on3, mut ws, snap) in kept {
        let last = if on3 { last3 } else { last1 };
        let (_, events) = read_through(&mut ws, Some(snap), last).await;
        let prefix = if on3 { "3-" } else { "1-" };
        for e in events.iter().filter(|e| e["type"] == "called") {
            assert!(
                e["window"].as_str().unwrap().starts_with(prefix),
                "a floor-{} screen got {e}",
                &prefix[..1]
            );
        }
    }
}
