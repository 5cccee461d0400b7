//! Limits and hardening (contract §13) on the real binary: idempotency
//! keys bound to their request, refusals that store no key, unknown
//! fields, a corrupt store refused at start.

mod common;

use common::{window_token, Client, Server, ADMIN, KIOSK};

const TICKETS: &str = "/api/v1/halls/demo/tickets";

/// Rows in the store's idempotency table (the server keeps running: WAL
/// lets a reader in beside it).
fn idempotency_rows(s: &Server) -> i64 {
    let db = rusqlite::Connection::open(s.dir.join("hallcast.db")).unwrap();
    db.query_row("SELECT COUNT(*) FROM idempotency", [], |r| r.get(0))
        .unwrap()
}

#[tokio::test]
async fn a_key_names_one_request_and_refusals_store_no_key() {
    // No limit on citizens' POSTs: this test sends hundreds with one token.
    let s = limited("citizen_per_second = 0");
    let c = Client::new(&s);
    let body = r#"{"service":"business"}"#;
    let first = c.keyed(TICKETS, KIOSK, body, "k-1").await;
    assert_eq!(first.status, 201);
    // Same key, another body, byte for byte: 422 and no effect.
    let other = c
        .keyed(TICKETS, KIOSK, r#"{"service":"business" }"#, "k-1")
        .await;
    assert_eq!(
        (other.status, other.code()),
        (422, "idempotency_mismatch"),
        "{}",
        other.text
    );
    // Same key, another path: an admin call on 3-02 with a key first used
    // on 3-01 is refused, and nothing is called on 3-02.
    let on_301 = c
        .keyed("/api/v1/halls/demo/windows/3-01/call", ADMIN, "{}", "adm-1")
        .await;
    assert_eq!(on_301.status, 200);
    let on_302 = c
        .keyed("/api/v1/halls/demo/windows/3-02/call", ADMIN, "{}", "adm-1")
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
    let again = c.keyed(TICKETS, KIOSK, body, "k-1").await;
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
    let bad = c
        .keyed(TICKETS, KIOSK, r#"{"service":"nope"}"#, "k-2")
        .await;
    assert_eq!(bad.status, 404);
    let good = c.keyed(TICKETS, KIOSK, r#"{"service":"tax"}"#, "k-2").await;
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

/// The demo hall with small limits, behind a "proxy" at 127.0.0.1 (the
/// test itself), so each test client names its address in X-Forwarded-For.
fn limited(limits: &str) -> Server {
    let demo = hallcast::demo::CONFIG.replacen(
        "[server]\n",
        &format!("[server.limits]\n{limits}\ntrusted_proxies = [\"127.0.0.1\"]\n\n[server]\n"),
        1,
    );
    Server::start_config(&demo)
}

async fn post_from(
    c: &Client,
    ip: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> common::Resp {
    c.send("POST", path, token, Some(body), &[("x-forwarded-for", ip)])
        .await
}

#[tokio::test]
async fn posts_over_a_limit_get_429_with_retry_after_and_have_no_effect() {
    let s = limited("staff_per_second = 1\ncitizen_per_second = 1\npublic_per_ip_per_second = 1");
    let c = Client::new(&s);
    let body = r#"{"service":"business"}"#;
    // A ticket for the citizens' part, before the kiosk's bucket is spent.
    let t = c.issue("tax").await;
    // Staff: one a second per token; ten at once get one through (two if a
    // second passed), the rest 429 with Retry-After and issue nothing.
    let http = reqwest::Client::new();
    let all = futures_util::future::join_all((0..10).map(|_| {
        http.post(s.url(TICKETS))
            .header("authorization", format!("Bearer {ADMIN}"))
            .header("x-forwarded-for", "10.0.0.1")
            .body(body)
            .send()
    }))
    .await;
    let mut ok = 0;
    let mut refused = 0;
    for r in all {
        let r = r.unwrap();
        match r.status().as_u16() {
            201 => ok += 1,
            429 => {
                refused += 1;
                let after: u64 = r.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!((1..=2).contains(&after), "Retry-After {after}");
                let e: serde_json::Value = r.json().await.unwrap();
                assert_eq!(e["error"]["code"], "rate_limited");
            }
            other => panic!("status {other}"),
        }
    }
    assert_eq!(ok + refused, 10);
    assert!((1..=2).contains(&ok), "{ok} issued");
    let hall = c.get("/api/v1/halls/demo").await.json;
    let waiting = hall["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "business")
        .unwrap()["waiting"]
        .as_u64();
    assert_eq!(waiting, Some(ok as u64), "refused posts issued nothing");

    // Citizens: per ticket token.
    let cancel = format!("/api/v1/tickets/{}/cancel", t["token"].as_str().unwrap());
    let all = futures_util::future::join_all(
        (0..5).map(|_| post_from(&c, "10.0.0.9", &cancel, None, "")),
    )
    .await;
    assert!(
        all.iter().any(|r| r.status == 429),
        "{:?}",
        all.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert!(all.iter().all(|r| [200, 409, 429].contains(&r.status)));

    // Made-up ticket tokens share their address's bucket, not one each.
    let made_up = futures_util::future::join_all((0..5).map(|i| {
        let c = c.clone();
        async move {
            post_from(
                &c,
                "10.0.2.1",
                &format!("/api/v1/tickets/nope{i}/cancel"),
                None,
                "",
            )
            .await
            .status
        }
    }))
    .await;
    assert!(
        made_up.contains(&429) && made_up.contains(&404),
        "{made_up:?}"
    );

    // Public: per address, as the trusted proxy names it.
    let from = |ip: &'static str| {
        let c = c.clone();
        async move { post_from(&c, ip, TICKETS, None, body).await.status }
    };
    let a = futures_util::future::join_all((0..5).map(|_| from("10.0.1.1"))).await;
    assert!(a.contains(&429) && a.contains(&401), "{a:?}");
    assert_eq!(
        from("10.0.1.2").await,
        401,
        "another address has its own bucket"
    );
    // Reads are never limited.
    for _ in 0..30 {
        assert_eq!(c.get("/api/v1/halls/demo/floors/3").await.status, 200);
    }
}

#[tokio::test]
async fn streams_per_address_are_capped_before_the_upgrade() {
    let s = limited("streams_per_ip = 2");
    let url = s.ws("/ws/v1/halls/demo/floors/3");
    let mut a = common::Ws::connect(&url).await;
    a.next().await;
    let mut b = common::Ws::connect(&url).await;
    b.next().await;
    assert_eq!(common::Ws::refused(&url).await, 429);
    drop(a);
    // Once the server has seen the close, the address has room again.
    let mut c = common::eventually(10, "a free stream", || {
        let url = url.clone();
        async move {
            match tokio_tungstenite::connect_async(&url).await {
                Ok((ws, _)) => Some(ws),
                Err(_) => None,
            }
        }
    })
    .await;
    use futures_util::StreamExt;
    assert!(c.next().await.is_some(), "the new stream gets its snapshot");
    drop(b);
}

#[tokio::test]
async fn a_body_that_never_finishes_is_cut_at_30_s_and_does_not_hold_the_shutdown() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = Server::start();
    let c = Client::new(&s);
    let addr = s.base.trim_start_matches("http://").to_string();
    let head = format!(
        "POST /api/v1/halls/demo/tickets HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KIOSK}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"service\":"
    );
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(head.as_bytes()).await.unwrap();
    let started = std::time::Instant::now();
    assert_eq!(
        c.issue("business").await["number"],
        "A001",
        "others are served"
    );
    let mut buf = [0u8; 1024];
    let n = tokio::time::timeout(std::time::Duration::from_secs(45), slow.read(&mut buf))
        .await
        .expect("answered within 45 s")
        .unwrap_or(0);
    let answer = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    assert!(started.elapsed() >= std::time::Duration::from_secs(29));
    // Nothing was issued by it.
    assert_eq!(c.issue("business").await["number"], "A002");
}

#[tokio::test]
async fn sigterm_with_a_stalled_request_in_flight_exits_within_the_grace() {
    use tokio::io::AsyncWriteExt;
    let mut s = Server::start();
    let addr = s.base.trim_start_matches("http://").to_string();
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(
        format!(
            "POST /api/v1/halls/demo/tickets HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KIOSK}\r\n\
             Content-Length: 100\r\n\r\n{{"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    // Let the server read the head, so the request is in flight.
    let c = Client::new(&s);
    assert_eq!(c.get("/healthz").await.status, 200);
    let started = std::time::Instant::now();
    let status = tokio::task::spawn_blocking(move || s.terminate())
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");
    let took = started.elapsed();
    assert!(
        took < std::time::Duration::from_secs(20),
        "stopped in {took:?}"
    );
    drop(slow);
}

#[tokio::test]
async fn unsolicited_pongs_do_not_keep_a_silent_peer_alive() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let demo = hallcast::demo::CONFIG.replacen("[server]\n", "[server]\nping_seconds = 1\n", 1);
    let s = Server::start_config(&demo);
    let url = s.ws("/ws/v1/halls/demo/floors/3");
    // A client that never reads (so never answers a ping) but sends pongs
    // of its own: closed after a ping period all the same.
    let (mut liar, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    // One that reads, and so answers every ping: stays.
    let mut honest = common::Ws::connect(&url).await;
    honest.next().await;
    let honest = tokio::spawn(async move {
        // Reading answers the pings; the first ticket's count ends it.
        honest
            .until(|m| m["type"] == "waiting" && m["service"] == "business")
            .await
    });
    let started = std::time::Instant::now();
    while started.elapsed() < std::time::Duration::from_secs(4) {
        liar.send(Message::Pong(bytes::Bytes::from_static(b"alive")))
            .await
            .ok();
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // Now read what the liar was sent: snapshot, pings, then the end.
    let ended = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while let Some(Ok(m)) = liar.next().await {
            if let Message::Close(_) = m {
                return true;
            }
        }
        true
    })
    .await
    .expect("the silent peer was closed");
    assert!(ended);
    // The honest screen, after the same pings, still gets live events.
    Client::new(&s).issue("business").await;
    let got = honest.await.expect("the honest screen stayed open");
    assert_eq!(got.last().unwrap()["count"], 1);
}

/// A socket to the server whose receive buffer is as small as the kernel
/// allows, so a client that does not read fills it at once.
async fn deaf(s: &Server) -> tokio::net::TcpStream {
    let addr: std::net::SocketAddr = s.base.trim_start_matches("http://").parse().unwrap();
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(1024).unwrap();
    sock.connect(&addr.into()).unwrap();
    sock.set_nonblocking(true).unwrap();
    tokio::net::TcpStream::from_std(sock.into()).unwrap()
}

/// Reads what a connection still gives until it ends (the server closed
/// it) or stays silent for 3 s: the bytes, and whether it ended.
async fn drain(stream: &mut tokio::net::TcpStream) -> (usize, bool) {
    use tokio::io::AsyncReadExt;
    let mut got = 0;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match tokio::time::timeout(std::time::Duration::from_secs(3), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (got, true),
            Ok(Ok(n)) => got += n,
            Err(_) => return (got, false),
        }
    }
}

fn gauge(metrics: &str, line: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(line))
        .unwrap_or("0")
        .trim()
        .parse()
        .unwrap()
}

/// A7: an answer or an SSE stream the client takes nothing of is closed
/// after 30 s, and its descriptor and memory freed; others are served
/// meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_or_a_stream_never_read_is_closed_after_30_s() {
    use tokio::io::AsyncWriteExt;
    let s = Server::start();
    let c = Client::new(&s);
    // Five large answers asked for at once, none read.
    let mut answers = deaf(&s).await;
    let ask = "GET /api/v1/openapi.json HTTP/1.1\r\nHost: x\r\n\r\n".repeat(5);
    answers.write_all(ask.as_bytes()).await.unwrap();
    // Three hall streams, never read.
    let mut streams = Vec::new();
    for _ in 0..3 {
        let mut sse = deaf(&s).await;
        sse.write_all(b"GET /sse/v1/halls/demo HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        streams.push(sse);
    }
    let hall_streams = "hallcast_connections{channel=\"hall\"} ";
    common::eventually(10, "three streams open", || async {
        let m = c.get("/metrics").await.text;
        (gauge(&m, hall_streams) == 3.0).then_some(())
    })
    .await;
    // Events enough to fill what the kernel holds for each stream.
    let started = std::time::Instant::now();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move {
                for _ in 0..80 {
                    c.issue("business").await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    // Still served meanwhile.
    assert_eq!(c.get("/readyz").await.status, 200);
    common::eventually(60, "the unread streams closed", || async {
        let m = c.get("/metrics").await.text;
        (gauge(&m, hall_streams) == 0.0).then_some(())
    })
    .await;
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(25),
        "not before they stalled for 30 s"
    );
    for mut sse in streams {
        assert!(drain(&mut sse).await.1, "the stream's connection ended");
    }
    let (got, ended) = drain(&mut answers).await;
    assert!(ended, "the unread answers' connection ended");
    assert!(
        got < 5 * 149_000 / 2,
        "closed mid-answer, not served whole: {got} bytes"
    );
}

/// A7: one address holds at most `connections_per_ip` connections, a
/// WebSocket among them; beyond it a new one is closed at once.
#[tokio::test]
async fn one_address_holds_at_most_connections_per_ip() {
    use tokio::io::AsyncReadExt;
    let s = Server::start_config(&hallcast::demo::CONFIG.replacen(
        "[server]\n",
        "[server.limits]\nconnections_per_ip = 3\n\n[server]\n",
        1,
    ));
    let addr = s.base.trim_start_matches("http://").to_string();
    let mut ws = common::Ws::connect(&s.ws("/ws/v1/halls/demo/floors/3")).await;
    ws.next().await;
    let idle1 = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let _idle2 = tokio::net::TcpStream::connect(&addr).await.unwrap();
    // The fourth is closed unanswered, at once.
    let mut over = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut b = [0u8; 16];
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), over.read(&mut b))
        .await
        .expect("closed at once")
        .unwrap_or(0);
    assert_eq!(n, 0, "closed without an answer");
    // One closed: room for the next, which is served.
    drop(idle1);
    common::eventually(10, "room again", || async {
        let r = reqwest::get(s.url("/healthz")).await.ok()?;
        (r.status() == 200).then_some(())
    })
    .await;
    // The WebSocket kept its place all along.
    assert!(ws.silent_for(std::time::Duration::from_millis(100)).await);
}
