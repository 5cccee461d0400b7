//! §12 server-sent events: the floor, hall and ticket channels as
//! `text/event-stream`, with the WebSocket channels' messages, order,
//! snapshot and resume rules.

mod common;

use std::time::{Duration, Instant};

use common::{Client, Server};
use serde_json::Value;

/// One event: its id (if any) and its data as JSON.
#[derive(Debug)]
struct Event {
    id: Option<u64>,
    data: Value,
}

/// Reads a stream's events as they come.
struct Sse {
    resp: reqwest::Response,
    buf: String,
    /// Comment lines seen so far.
    comments: usize,
}

impl Sse {
    async fn open(c: &Client, path: &str, headers: &[(&str, &str)]) -> Sse {
        let mut rb = c.http.get(format!("{}{}", c.base, path));
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        let resp = rb.send().await.expect("request");
        assert_eq!(resp.status(), 200, "{path}");
        let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
        assert!(ct.starts_with("text/event-stream"), "{ct}");
        Sse {
            resp,
            buf: String::new(),
            comments: 0,
        }
    }

    /// The next event, or `None` when the stream ended.
    async fn next(&mut self) -> Option<Event> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut id = None;
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = Some(v.trim().parse().expect("a numeric id"));
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.strip_prefix(' ').unwrap_or(v));
                    }
                }
                if data.is_empty() {
                    // A keep-alive comment.
                    self.comments += block.lines().filter(|l| l.starts_with(':')).count();
                    continue;
                }
                let data = serde_json::from_str(&data).expect("each event is one JSON message");
                return Some(Event { id, data });
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.resp.chunk()).await {
                Ok(Ok(Some(b))) => self.buf.push_str(std::str::from_utf8(&b).unwrap()),
                Ok(_) => return None,
                Err(_) => panic!("no event within 10 s; have {:?}", self.buf),
            }
        }
    }
}

#[tokio::test]
async fn a_floor_stream_starts_with_the_snapshot_then_every_event_with_its_seq() {
    let s = Server::start();
    let c = Client::new(&s);
    let mut sse = Sse::open(&c, "/sse/v1/halls/demo/floors/3", &[]).await;
    let first = sse.next().await.unwrap();
    assert_eq!(first.data["type"], "snapshot");
    assert_eq!(first.data["seq"], 0);
    // A9: the snapshot has its id too, also at seq 0.
    assert_eq!(first.id, Some(0), "the snapshot's id is its seq");
    c.issue("business").await;
    assert_eq!(c.window("3-01", "call", "{}").await.status, 200);
    let mut seqs = Vec::new();
    let mut types = Vec::new();
    while seqs.len() < 3 {
        let e = sse.next().await.unwrap();
        assert_eq!(
            e.id,
            e.data["seq"].as_u64(),
            "the event id is the message's seq"
        );
        seqs.push(e.id.unwrap());
        types.push(e.data["type"].as_str().unwrap().to_string());
    }
    assert_eq!(seqs, [1, 2, 3], "one event per message, in order");
    assert!(types.contains(&"called".to_string()), "{types:?}");
    // A later snapshot carries the seq it stands at.
    let mut again = Sse::open(&c, "/sse/v1/halls/demo/floors/3", &[]).await;
    let snap = again.next().await.unwrap();
    assert_eq!(snap.data["type"], "snapshot");
    assert_eq!(snap.id, Some(3));
    let mut hall = Sse::open(&c, "/sse/v1/halls/demo", &[]).await;
    let snap = hall.next().await.unwrap();
    assert_eq!(snap.id, snap.data["seq"].as_u64());
}

#[tokio::test]
async fn last_event_id_and_after_resume_without_a_gap() {
    let s = Server::start();
    let c = Client::new(&s);
    for _ in 0..3 {
        c.issue("business").await;
    }
    // Events 1..=3 are the waiting counts. A client that had 1 resumes.
    for headers in [vec![("last-event-id", "1")], vec![]] {
        let path = if headers.is_empty() {
            "/sse/v1/halls/demo/floors/3?after=1"
        } else {
            "/sse/v1/halls/demo/floors/3"
        };
        let mut sse = Sse::open(&c, path, &headers).await;
        let a = sse.next().await.unwrap();
        let b = sse.next().await.unwrap();
        assert_eq!((a.id, b.id), (Some(2), Some(3)), "{path}");
        assert_eq!(a.data["type"], "waiting");
        assert_eq!(b.data["count"], 3);
    }
    let bad = c
        .http
        .get(s.url("/sse/v1/halls/demo/floors/3"))
        .header("last-event-id", "yesterday")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn the_hall_and_ticket_streams() {
    let s = Server::start();
    let c = Client::new(&s);
    let t = c.issue("fund").await;
    let token = t["token"].as_str().unwrap();
    let mut hall = Sse::open(&c, "/sse/v1/halls/demo?after=0", &[]).await;
    let e = hall.next().await.unwrap();
    assert_eq!(
        (e.id, e.data["floor"].as_i64()),
        (Some(1), Some(2)),
        "{:?}",
        e.data
    );
    let mut phone = Sse::open(&c, &format!("/sse/v1/tickets/{token}"), &[]).await;
    let first = phone.next().await.unwrap();
    assert_eq!(first.data["type"], "ticket");
    assert_eq!(first.id, None, "ticket messages are no resume point");
    assert_eq!(c.window("2-02", "call", "{}").await.status, 200);
    let mut got = Vec::new();
    while !got.contains(&"called".to_string()) {
        got.push(
            phone.next().await.unwrap().data["type"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(
        got[0], "ticket",
        "the status change, then the call: {got:?}"
    );
}

#[tokio::test]
async fn unknown_channels_are_404_and_shutdown_ends_the_streams() {
    let mut s = Server::start();
    let c = Client::new(&s);
    for path in [
        "/sse/v1/halls/nope",
        "/sse/v1/halls/demo/floors/99",
        "/sse/v1/tickets/nope",
    ] {
        let r = c.http.get(s.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], "not_found");
    }
    let mut sse = Sse::open(&c, "/sse/v1/halls/demo/floors/3", &[]).await;
    assert_eq!(sse.next().await.unwrap().data["type"], "snapshot");
    let status = tokio::task::spawn_blocking(move || {
        let st = s.terminate();
        (st, s)
    });
    assert!(
        sse.next().await.is_none(),
        "the stream ends when the server stops"
    );
    let (st, _s) = status.await.unwrap();
    assert!(st.success(), "{st:?}");
}

#[tokio::test]
async fn a_quiet_stream_gets_a_comment_line_every_ping_period() {
    let config = hallcast::demo::CONFIG.replace("[server]", "[server]\nping_seconds = 1");
    let s = Server::start_config(&config);
    let c = Client::new(&s);
    let mut sse = Sse::open(&c, "/sse/v1/halls/demo/floors/3", &[]).await;
    assert_eq!(sse.next().await.unwrap().data["type"], "snapshot");
    // Nothing happens on the floor; the stream still speaks, and the next
    // event still comes through after the comments.
    let deadline = Instant::now() + Duration::from_secs(10);
    while sse.comments < 2 {
        assert!(
            Instant::now() < deadline,
            "no keep-alive comment: {:?}",
            sse.buf
        );
        match tokio::time::timeout(Duration::from_millis(200), sse.resp.chunk()).await {
            Ok(Ok(Some(b))) => sse.buf.push_str(std::str::from_utf8(&b).unwrap()),
            Ok(_) => panic!("the stream ended"),
            Err(_) => {}
        }
        while let Some(end) = sse.buf.find("\n\n") {
            let block: String = sse.buf.drain(..end + 2).collect();
            let lines = block.lines().filter(|l| !l.is_empty());
            assert!(
                lines.clone().all(|l| l.starts_with(':')),
                "only comments: {block}"
            );
            sse.comments += 1;
        }
    }
    c.issue("business").await;
    assert_eq!(sse.next().await.unwrap().data["type"], "waiting");
}
