//! §14 on this machine's PostgreSQL (127.0.0.1:5432, a database per test)
//! and NATS with JetStream (127.0.0.1:4222, a cluster name per test, so
//! the tests never see each other's events): several nodes of the real
//! binary, each on its own port, one store and one bus.

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::own::{OwnNats, OwnPostgres};
use common::{eventually, Client, Db, Server, Ws};
use serde_json::Value;

const NATS: &str = "nats://127.0.0.1:4222";
const FLOOR_3: &str = "/ws/v1/halls/demo/floors/3";

/// `n` nodes of one cluster on `db`, over the bus at `bus`.
struct Cluster {
    nodes: Vec<Server>,
    _tmp: tempfile::TempDir,
}

impl Cluster {
    fn start(db: &Db, bus: &str, n: usize) -> Cluster {
        let tmp = tempfile::tempdir().unwrap();
        let secret = common::cluster_secret_file(tmp.path());
        let args = vec![
            "--store".to_string(),
            db.url(),
            "--bus".to_string(),
            bus.to_string(),
            "--cluster".to_string(),
            db.name.replace('_', "-"),
            "--cluster-secret-file".to_string(),
            secret.display().to_string(),
        ];
        let nodes = (0..n)
            .map(|i| Server::spawn_with(&tmp.path().join(format!("node{i}")), None, &[], &args))
            .collect();
        Cluster { nodes, _tmp: tmp }
    }

    fn client(&self, i: usize) -> Client {
        Client::new(&self.nodes[i % self.nodes.len()])
    }
}

/// Messages of a floor channel up to and including the `n`th `called`.
async fn calls(ws: &mut Ws, n: usize) -> Vec<Value> {
    let mut got = Vec::new();
    let mut seen = 0;
    while seen < n {
        let m = ws.next().await;
        if m["type"] == "called" {
            seen += 1;
        }
        got.push(m);
    }
    got
}

/// The called numbers among messages, in order.
fn numbers(msgs: &[Value]) -> Vec<String> {
    msgs.iter()
        .filter(|m| m["type"] == "called")
        .map(|m| m["number"].as_str().unwrap().to_string())
        .collect()
}

/// Each message's seq is one more than the one before.
fn assert_gapless(msgs: &[Value], after: u64) {
    for (expect, m) in (after + 1..).zip(msgs) {
        assert_eq!(m["seq"].as_u64(), Some(expect), "gap or repeat at {m}");
    }
}

/// A floor subscriber from its snapshot: the channel and the snapshot's seq.
async fn screen(node: &Server) -> (Ws, u64) {
    let mut ws = Ws::connect(&node.ws(FLOOR_3)).await;
    let snap = ws.next().await;
    assert_eq!(snap["type"], "snapshot");
    (ws, snap["seq"].as_u64().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_numbers_are_consecutive_and_every_node_shows_every_call_in_order() {
    let db = Db::new("rr");
    let c = Cluster::start(&db, NATS, 3);
    let mut screens = Vec::new();
    for n in &c.nodes {
        screens.push(screen(n).await);
    }
    for i in 0..9 {
        let t = c.client(i).issue("business").await;
        assert_eq!(
            t["number"],
            format!("A{:03}", i + 1),
            "issued on node {}",
            i % 3
        );
    }
    for i in 0..9 {
        let w = format!("3-{:02}", i + 1);
        let r = c.client(i).window(&w, "call", "{}").await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let mut seen: Vec<Vec<Value>> = Vec::new();
    for (ws, after) in &mut screens {
        let msgs = calls(ws, 9).await;
        assert_gapless(&msgs, *after);
        seen.push(msgs);
    }
    // The same messages, with the same seqs, on every node.
    assert_eq!(seen[0], seen[1]);
    assert_eq!(seen[0], seen[2]);
    let expect: Vec<String> = (1..=9).map(|i| format!("A{i:03}")).collect();
    assert_eq!(numbers(&seen[0]), expect);
    // Every node's board reads the same state.
    let mut boards: Vec<Value> = Vec::new();
    for i in 0..3 {
        boards.push(c.client(i).floor(3).await);
    }
    assert_eq!(boards[0]["seq"], boards[1]["seq"]);
    assert_eq!(boards[0]["seq"], boards[2]["seq"]);
    // A node took in the others' writes, not the whole hall each time.
    for n in &c.nodes {
        assert!(
            n.logs().contains("took in other nodes' changes"),
            "{}",
            n.logs()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_on_two_nodes_never_share_a_ticket() {
    let db = Db::new("calls");
    let c = Cluster::start(&db, NATS, 2);
    let mut issued = BTreeSet::new();
    for i in 0..24 {
        let t = c.client(i).issue("business").await;
        assert!(issued.insert(t["number"].as_str().unwrap().to_string()));
    }
    let answers = futures_util::future::join_all((0..24).map(|i| {
        let client = c.client(i);
        async move {
            client
                .window(&format!("3-{:02}", i + 1), "call", "{}")
                .await
        }
    }))
    .await;
    let mut called = BTreeSet::new();
    for r in &answers {
        assert_eq!(r.status, 200, "{}", r.text);
        let n = r.json["ticket"]["number"].as_str().unwrap().to_string();
        assert!(called.insert(n.clone()), "{n} was called by two windows");
    }
    assert_eq!(called, issued);
    let at_windows =
        db.one("SELECT count(DISTINCT \"window\") FROM tickets WHERE status = 'called'");
    assert_eq!(at_windows, 24);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_screen_resumes_on_another_node_and_a_phone_follows_from_any_node() {
    let db = Db::new("resume");
    let c = Cluster::start(&db, NATS, 3);
    let mine = c.client(0).issue("business").await;
    for i in 0..5 {
        c.client(i).issue("business").await;
    }
    // The citizen's phone is on node 2; the ticket was issued on node 0.
    let token = mine["token"].as_str().unwrap();
    let mut phone = Ws::connect(&c.nodes[2].ws(&format!("/ws/v1/tickets/{token}"))).await;
    assert_eq!(phone.next().await["status"], "waiting");

    let (mut ws, after) = screen(&c.nodes[0]).await;
    c.client(1).window("3-01", "call", "{}").await;
    c.client(2).window("3-02", "call", "{}").await;
    let first = calls(&mut ws, 2).await;
    assert_gapless(&first, after);
    let last = first.last().unwrap()["seq"].as_u64().unwrap();
    drop(ws);
    // Node 0's screen is gone; calls go on elsewhere.
    for i in 3..6 {
        c.client(i).window(&format!("3-0{i}"), "call", "{}").await;
    }
    let mut again = Ws::connect(&c.nodes[1].ws(&format!("{FLOOR_3}?after={last}"))).await;
    let rest = calls(&mut again, 3).await;
    assert_gapless(&rest, last);
    assert_eq!(
        numbers(&[first, rest].concat()),
        ["A001", "A002", "A003", "A004", "A005"]
    );
    // Called on node 1, told on node 2.
    let r = c.client(1).window("3-09", "call", "{}").await;
    assert_eq!(r.json["ticket"]["number"], "A006", "{}", r.text);
    let got = phone.until(|m| m["type"] == "called").await;
    assert_eq!(got.last().unwrap()["number"], mine["number"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_holds_across_nodes() {
    let db = Db::new("idem");
    let c = Cluster::start(&db, NATS, 2);
    let path = "/api/v1/halls/demo/tickets";
    let body = r#"{"service":"fund"}"#;
    let kiosk = "demo-kiosk-lobby-1-token";
    let first = c.client(0).keyed(path, kiosk, body, "k-1").await;
    assert_eq!(first.status, 201);
    let again = c.client(1).keyed(path, kiosk, body, "k-1").await;
    assert_eq!(again.status, 201);
    assert_eq!(again.json, first.json);
    let other = c
        .client(1)
        .keyed(path, kiosk, r#"{"service":"tax"}"#, "k-1")
        .await;
    assert_eq!(other.status, 422);
    assert_eq!(db.count("tickets"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_a_node_under_load_loses_no_call_on_any_screen() {
    let db = Db::new("kill");
    let mut c = Cluster::start(&db, NATS, 3);
    for i in 0..30 {
        c.client(i).issue("business").await;
    }
    let (mut on_c, after_c) = screen(&c.nodes[2]).await;
    let (mut on_a, after_a) = screen(&c.nodes[0]).await;
    // Calls through nodes 0 and 1; node 0 dies after ten of them.
    let mut answered = 0;
    for i in 0..30 {
        if i == 10 {
            c.nodes[0].kill9();
        }
        let node = if i < 10 { i % 2 } else { 1 };
        let w = format!("3-{:02}", i % 25 + 1);
        let r = c.client(node).window(&w, "call", "{}").await;
        assert_eq!(r.status, 200, "{}", r.text);
        answered += 1;
    }
    assert_eq!(answered, 30);
    let all = calls(&mut on_c, 30).await;
    assert_gapless(&all, after_c);
    // Node 0's screen saw some, and catches up on node 1 with ?after.
    let mut seen = Vec::new();
    while let Ok(m) = on_a.next_or_end(Duration::from_secs(2)).await {
        seen.push(m);
    }
    assert_gapless(&seen, after_a);
    let last = seen.last().map_or(after_a, |m| m["seq"].as_u64().unwrap());
    let mut back = Ws::connect(&c.nodes[1].ws(&format!("{FLOOR_3}?after={last}"))).await;
    let missed = numbers(&all).len() - numbers(&seen).len();
    let rest = calls(&mut back, missed).await;
    assert_gapless(&rest, last);
    assert_eq!(numbers(&[seen, rest].concat()), numbers(&all));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_nats_down_every_call_still_reaches_every_node_in_order() {
    let db = Db::new("natsdown");
    let mut nats = OwnNats::start();
    let c = Cluster::start(&db, &nats.url(), 2);
    for i in 0..6 {
        c.client(i).issue("business").await;
    }
    let (mut ws, after) = screen(&c.nodes[1]).await;
    c.client(0).window("3-01", "call", "{}").await;
    let before = calls(&mut ws, 1).await;

    nats.stop();
    for w in ["3-02", "3-03"] {
        let r = c.client(0).window(w, "call", "{}").await;
        assert_eq!(r.status, 200, "commands go on without the bus: {}", r.text);
    }
    let ready = c.client(1).get("/readyz").await;
    assert_eq!(ready.status, 200, "the bus is not the store");
    // Read from PostgreSQL by node 1 (at least once a second).
    let during = calls(&mut ws, 2).await;

    nats.resume();
    let back = c.client(0).window("3-04", "call", "{}").await;
    assert_eq!(back.status, 200);
    let after_back = calls(&mut ws, 1).await;
    let all = [before, during, after_back].concat();
    assert_gapless(&all, after);
    assert_eq!(numbers(&all), ["A001", "A002", "A003", "A004"]);
    // And the node reconnects to the bus: its own calls reach node 0 too.
    let (mut on_0, after_0) = screen(&c.nodes[0]).await;
    c.client(1).window("3-05", "call", "{}").await;
    let got = calls(&mut on_0, 1).await;
    assert_gapless(&got, after_0);
    eventually(10, "node 1 ready", || async {
        (Client::new(&c.nodes[1]).get("/readyz").await.status == 200).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_cluster_name_or_store_url_is_refused_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_hallcast"))
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(tmp.path())
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, err) = run(&[
        "--store",
        "postgres://postgres@127.0.0.1/test",
        "--cluster",
        "Bad_Name",
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("cluster") && err.contains("a-z"), "{err}");
    let (code, err) = run(&["--store", "mysql://x"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("postgres://"), "{err}");
    let (code, err) = run(&["--bus", NATS]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("store"), "{err}");
    // A8: a bus needs the cluster's secret, of 32 characters or more.
    let (code, err) = run(&[
        "--store",
        "postgres://postgres@127.0.0.1/test",
        "--bus",
        NATS,
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("cluster_secret"), "{err}");
    let short = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(short.path(), "too-short\n").unwrap();
    let (code, err) = run(&[
        "--store",
        "postgres://postgres@127.0.0.1/test",
        "--bus",
        NATS,
        "--cluster-secret-file",
        short.path().to_str().unwrap(),
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("32"), "{err}");
    // A URL with a password is never echoed.
    let (code, err) = run(&[
        "--store",
        "postgres://postgres@127.0.0.1/test",
        "--bus",
        "http://node:hunter2-secret@127.0.0.1:4222",
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("***@127.0.0.1:4222"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}

/// A8: the bus is a hint, never the truth. Made-up events on the
/// cluster's subject (the name is guessable), a version near `u64::MAX`,
/// and a message sealed with another secret change nothing any node
/// shows or does; each is counted, and logged once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rogue_publisher_on_nats_changes_nothing_a_node_shows() {
    let db = Db::new("rogue");
    let c = Cluster::start(&db, NATS, 2);
    let subject = format!("hallcast.{}.events.demo", db.name.replace('_', "-"));
    let (mut ws, after) = screen(&c.nodes[1]).await;
    let rogue = async_nats::connect(NATS).await.unwrap();
    let called = serde_json::json!({"type": "called", "seq": after + 1,
        "at": "2026-12-08T10:00:00.000+08:00", "number": "A999",
        "window": {"id": "3-01", "label": "1"}, "recall": 0,
        "announcement": "/api/v1/announcements/demo.3.A999.3-01.zh-en.wav"});
    for i in 0..20u64 {
        // The wire of before A8: events carried whole, a version taken as is.
        let msg = serde_json::json!({"node": "rogue", "hall": "demo", "version": u64::MAX - i,
            "events": [{"floor": 3, "floor_seq": after + 1 + i, "hall_seq": 1 + i,
                        "at_ms": 1_796_700_000_000i64, "floor_msg": called.to_string(),
                        "hall_msg": called.to_string()}]});
        rogue
            .publish(subject.clone(), msg.to_string().into())
            .await
            .unwrap();
    }
    let other = hallcast::seal::Seal::new("another-cluster-secret-32-chars-long");
    let msg = serde_json::json!({"node": "rogue", "hall": "demo", "version": u64::MAX});
    rogue
        .publish(
            subject.clone(),
            other.seal(&subject, msg.to_string().as_bytes()).into(),
        )
        .await
        .unwrap();
    rogue.flush().await.unwrap();
    assert!(
        ws.silent_for(Duration::from_millis(1500)).await,
        "nothing made up reaches a screen"
    );
    let wav = c
        .client(1)
        .get("/api/v1/announcements/demo.3.A999.3-01.zh-en.wav")
        .await;
    assert_eq!(wav.status, 404, "a made-up call is not composed");
    // Reads stay reads: no node reloads the hall for a version it was
    // told of by anyone but PostgreSQL.
    let reloads = |s: &Server| {
        s.logs().matches("took in other nodes' changes").count()
            + s.logs().matches("hall reloaded from the cluster").count()
    };
    let before = reloads(&c.nodes[1]);
    for _ in 0..30 {
        assert_eq!(
            c.client(1).get("/api/v1/halls/demo/floors/3").await.status,
            200
        );
    }
    assert_eq!(reloads(&c.nodes[1]), before, "GETs reloaded the hall");
    // A real call still reaches the screen, next in seq.
    c.client(0).issue("business").await;
    let r = c.client(0).window("3-02", "call", "{}").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let got = calls(&mut ws, 1).await;
    assert_gapless(&got, after);
    assert_eq!(numbers(&got), ["A001"]);
    // Counted and logged at most once a minute.
    for node in &c.nodes {
        let m = Client::new(node).get("/metrics").await.text;
        let n: f64 = m
            .lines()
            .find_map(|l| l.strip_prefix("hallcast_bus_rejected_total "))
            .expect("the counter")
            .trim()
            .parse()
            .unwrap();
        assert!(n >= 21.0, "{n} rejected");
        assert_eq!(
            node.logs()
                .matches("not sealed with this cluster's secret")
                .count(),
            1
        );
    }
}

/// A8: NATS with a user and a password (in the URL): the nodes talk over
/// it, and the password is never in a log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_with_a_password_carries_the_calls_and_the_password_is_never_logged() {
    let db = Db::new("natsauth");
    let nats = OwnNats::start_with(&["--user", "node", "--pass", "s3cret-nats-pass"]);
    let url = format!("nats://node:s3cret-nats-pass@127.0.0.1:{}", nats.port);
    let c = Cluster::start(&db, &url, 2);
    let (mut ws, after) = screen(&c.nodes[1]).await;
    c.client(0).issue("business").await;
    c.client(0).window("3-01", "call", "{}").await;
    let got = calls(&mut ws, 1).await;
    assert_gapless(&got, after);
    for n in &c.nodes {
        let logs = n.logs();
        assert!(logs.contains("connected to NATS"), "{logs}");
        assert!(!logs.contains("s3cret-nats-pass"), "{logs}");
    }
    // A wrong password: the node says so without the password.
    let tmp = tempfile::tempdir().unwrap();
    let secret = common::cluster_secret_file(tmp.path());
    let wrong = format!("nats://node:wr0ng-pass@127.0.0.1:{}", nats.port);
    let s = Server::spawn_with(
        &tmp.path().join("n"),
        None,
        &[],
        &[
            "--store".into(),
            db.url(),
            "--bus".into(),
            wrong,
            "--cluster".into(),
            db.name.replace('_', "-"),
            "--cluster-secret-file".into(),
            secret.display().to_string(),
        ],
    );
    eventually(10, "the refusal logged", || async {
        let l = s.logs();
        (l.contains("cannot use NATS") || l.contains("authorization")).then_some(())
    })
    .await;
    assert!(!s.logs().contains("wr0ng-pass"), "{}", s.logs());
}

/// One node on a PostgreSQL of the test's own (no bus), and its dir.
fn node_on_own_postgres() -> (OwnPostgres, tempfile::TempDir, Server) {
    let pg = OwnPostgres::start();
    let tmp = tempfile::tempdir().unwrap();
    let node = Server::spawn_with(
        &tmp.path().join("node"),
        None,
        &[],
        &["--store".into(), pg.url()],
    );
    (pg, tmp, node)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_means_not_ready_and_503_and_back_means_serving_without_a_restart() {
    let (pg, tmp, node) = node_on_own_postgres();
    let client = Client::new(&node);
    assert_eq!(client.issue("business").await["number"], "A001");
    common::blocking(|| pg.stop());

    eventually(10, "/readyz 503 with PostgreSQL down", || async {
        (client.get("/readyz").await.status == 503).then_some(())
    })
    .await;
    let kiosk = "demo-kiosk-lobby-1-token";
    for _ in 0..3 {
        let r = client
            .post(
                "/api/v1/halls/demo/tickets",
                kiosk,
                r#"{"service":"business"}"#,
            )
            .await;
        assert_eq!(r.status, 503, "{}", r.text);
        assert_eq!(r.code(), "unavailable");
    }

    // A node started while PostgreSQL is down waits for it, rather than
    // exit, and starts when it answers.
    let late_log = Arc::new(Mutex::new(String::new()));
    let late = {
        let (dir, url, log) = (tmp.path().join("late"), pg.url(), late_log.clone());
        std::thread::spawn(move || {
            Server::spawn_watched(&dir, None, &[], &["--store".into(), url], log)
        })
    };
    eventually(10, "the late node waiting for PostgreSQL", || async {
        late_log
            .lock()
            .unwrap()
            .contains("waiting for PostgreSQL")
            .then_some(())
    })
    .await;

    common::blocking(|| pg.resume());
    eventually(10, "/readyz 200 with PostgreSQL back", || async {
        (client.get("/readyz").await.status == 200).then_some(())
    })
    .await;
    let t = eventually(10, "a ticket with PostgreSQL back", || async {
        let r = client
            .post(
                "/api/v1/halls/demo/tickets",
                kiosk,
                r#"{"service":"business"}"#,
            )
            .await;
        (r.status == 201).then_some(r.json)
    })
    .await;
    // The refused commands changed nothing: numbering goes on.
    assert_eq!(t["number"], "A002");
    let late = common::blocking(|| late.join().expect("the late node started"));
    let t = Client::new(&late).issue("business").await;
    assert_eq!(t["number"], "A003");
}

/// A PostgreSQL restarted while a node was idle: the node's connections
/// are dead and it does not know yet. The first command after `/readyz`
/// says 200 again must work, not meet the dead connection (it met it in 3
/// runs of 4 before), and every command after too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_command_after_postgres_came_back_works() {
    let (pg, _tmp, node) = node_on_own_postgres();
    let client = Client::new(&node);
    assert_eq!(client.issue("business").await["number"], "A001");
    for round in 0..3 {
        common::blocking(|| {
            pg.stop();
            pg.resume();
        });
        eventually(10, "/readyz 200 with PostgreSQL back", || async {
            (client.get("/readyz").await.status == 200).then_some(())
        })
        .await;
        let r = client
            .post(
                "/api/v1/halls/demo/tickets",
                "demo-kiosk-lobby-1-token",
                r#"{"service":"business"}"#,
            )
            .await;
        assert_eq!(r.status, 201, "round {round}: {}", r.text);
        assert_eq!(r.json["number"], format!("A{:03}", round + 2));
        let r = client.window("3-01", "call", "{}").await;
        assert_eq!(r.status, 200, "round {round}: {}", r.text);
    }
}

/// A screen that resumes on a node that has not delivered yet what the
/// screen saw on another node (it reads it from PostgreSQL within a
/// second) gets what follows, not a snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_screen_resumes_on_a_node_that_lags_without_a_snapshot() {
    let db = Db::new("lagging");
    let tmp = tempfile::tempdir().unwrap();
    let secret = common::cluster_secret_file(tmp.path());
    let cluster = db.name.replace('_', "-");
    let fast = Server::spawn_with(
        &tmp.path().join("fast"),
        None,
        &[],
        &[
            "--store".into(),
            db.url(),
            "--bus".into(),
            NATS.into(),
            "--cluster".into(),
            cluster.clone(),
            "--cluster-secret-file".into(),
            secret.display().to_string(),
        ],
    );
    // No bus: it learns of the other node's commits by the poll alone.
    let slow = Server::spawn_with(
        &tmp.path().join("slow"),
        None,
        &[],
        &["--store".into(), db.url(), "--cluster".into(), cluster],
    );
    let c = Client::new(&fast);
    for _ in 0..3 {
        c.issue("business").await;
    }
    let mut snapshots = 0;
    for round in 0..5 {
        let (mut ws, _) = screen(&fast).await;
        let r = c.window("3-01", "call", "{}").await;
        assert_eq!(r.status, 200, "{}", r.text);
        let got = calls(&mut ws, 1).await;
        let seen = got.last().unwrap()["seq"].as_u64().unwrap();
        // At once to the other node, which most likely lags.
        let mut resumed = Ws::connect(&slow.ws(&format!("{FLOOR_3}?after={seen}"))).await;
        c.issue("business").await;
        let next = resumed.next().await;
        if next["type"] == "snapshot" {
            snapshots += 1;
        }
        assert_eq!(
            next["seq"].as_u64(),
            Some(seen + 1),
            "round {round}: {next}"
        );
    }
    assert_eq!(snapshots, 0);
}

/// A TCP proxy in front of PostgreSQL that, once armed, lets the next
/// `COMMIT` through to the database and then cuts that connection before
/// the answer comes back: the commit happened, the node cannot know.
struct CommitCutter {
    port: u16,
    armed: Arc<std::sync::atomic::AtomicBool>,
    cut: Arc<std::sync::atomic::AtomicUsize>,
}

impl CommitCutter {
    async fn start(upstream: u16) -> CommitCutter {
        use std::sync::atomic::Ordering;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let armed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let cut = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (a, k) = (armed.clone(), cut.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                else {
                    continue;
                };
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let stop = Arc::new(tokio::sync::Notify::new());
                let (a, k, stop2) = (a.clone(), k.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = match cr.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        let commit = buf[..n].windows(7).any(|w| w == b"COMMIT\0");
                        let cut = commit && a.swap(false, Ordering::SeqCst);
                        if cut {
                            // No answer goes back from here on.
                            k.fetch_add(1, Ordering::SeqCst);
                            stop2.notify_one();
                        }
                        if sw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                        if cut {
                            // Let the database take it, then cut the node off.
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            break;
                        }
                    }
                });
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        tokio::select! {
                            biased;
                            () = stop.notified() => break,
                            r = sr.read(&mut buf) => match r {
                                Ok(0) | Err(_) => break,
                                Ok(n) => if cw.write_all(&buf[..n]).await.is_err() { break },
                            },
                        }
                    }
                    // Dropping both halves closes the node's side.
                });
            }
        });
        CommitCutter { port, armed, cut }
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

/// A commit whose answer is lost (the connection cut after PostgreSQL took
/// the COMMIT) is answered as what happened, not as a failure: the node
/// tries again, finds its own commit, and answers 201; the command is
/// applied once. Before, it answered 503 for a ticket that existed (or,
/// with a retry, 409 for its own effect).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_whose_answer_is_lost_is_answered_as_what_happened() {
    use std::sync::atomic::Ordering;
    let pg = OwnPostgres::start();
    let proxy = CommitCutter::start(pg.port).await;
    let tmp = tempfile::tempdir().unwrap();
    let node = Server::spawn_with(
        &tmp.path().join("node"),
        None,
        &[],
        &["--store".into(), proxy.url()],
    );
    let c = Client::new(&node);
    assert_eq!(c.issue("business").await["number"], "A001");
    for (i, action) in ["issue", "call", "start", "complete"].iter().enumerate() {
        proxy.armed.store(true, Ordering::SeqCst);
        let r = match *action {
            "issue" => {
                c.post(
                    "/api/v1/halls/demo/tickets",
                    "demo-kiosk-lobby-1-token",
                    r#"{"service":"business"}"#,
                )
                .await
            }
            a => c.window("3-01", a, "{}").await,
        };
        assert!(
            r.status == 200 || r.status == 201,
            "{action}: answered {} {}",
            r.status,
            r.text
        );
        assert_eq!(proxy.cut.load(Ordering::SeqCst), i + 1, "the cut happened");
    }
    // Applied once each: A002 was issued once, A001 served once.
    let next = c.issue("business").await;
    assert_eq!(next["number"], "A003");
    let floor = c.floor(3).await;
    assert_eq!(
        floor["waiting"][0]["count"], 2,
        "A002 and A003 wait: {floor}"
    );
}

/// A phone follows its ticket on node 1 while node 1 is busy with its own
/// commands on the hall and node 0 calls: each phone gets its "called"
/// (node 1's memory, counting its own batches in flight, can be at node
/// 0's version without holding node 0's call).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_on_a_busy_node_is_told_of_its_call_made_on_another() {
    const N: usize = 40;
    let db = Db::new("phones");
    let c = Cluster::start(&db, NATS, 2);
    let mut tickets = Vec::new();
    for _ in 0..N {
        tickets.push(c.client(0).issue("business").await);
    }
    // A ticket issued on node 0 a moment ago is found on node 1 at once
    // (the request waits for it to arrive).
    let last = tickets[N - 1]["token"].as_str().unwrap().to_string();
    let r = c.client(1).get(&format!("/api/v1/tickets/{last}")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let mut phones = Vec::new();
    for t in &tickets {
        let token = t["token"].as_str().unwrap();
        let mut ws = Ws::connect(&c.nodes[1].ws(&format!("/ws/v1/tickets/{token}"))).await;
        assert_eq!(ws.next().await["type"], "ticket");
        phones.push((t["number"].as_str().unwrap().to_string(), ws));
    }
    let busy = {
        let client = c.client(1);
        tokio::spawn(async move {
            for _ in 0..25 {
                futures_util::future::join_all((0..8).map(|_| client.issue("social"))).await;
            }
        })
    };
    let caller = c.client(0);
    for (i, (number, _)) in phones.iter().enumerate() {
        // By number: the windows serve the busy node's tickets too.
        let body = format!(r#"{{"number":"{number}"}}"#);
        let r = caller
            .window(&format!("3-{:02}", i % 24 + 1), "call", &body)
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json["ticket"]["number"], *number);
    }
    busy.await.unwrap();
    let mut untold = Vec::new();
    for (number, ws) in &mut phones {
        let mut seen = Vec::new();
        loop {
            match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
                Ok(m) if m["type"] == "called" => {
                    assert_eq!(m["number"], *number);
                    break;
                }
                Ok(m) => seen.push(format!("{} {}", m["type"], m["status"])),
                Err(_) => {
                    untold.push(format!("{number}: {seen:?}"));
                    break;
                }
            }
        }
    }
    if !untold.is_empty() {
        let logs = c.nodes[1].logs();
        let tail: Vec<&str> = logs.lines().filter(|l| !l.contains("stale hall")).collect();
        eprintln!("{}", tail[tail.len().saturating_sub(150)..].join("\n"));
    }
    assert!(
        untold.is_empty(),
        "phones never told of their call: {untold:?}"
    );
}
