//! The cluster under faults (contract §14, v1.2 A7–A8): three nodes, each
//! reaching a PostgreSQL and a NATS of the test's own through TCP proxies
//! the test controls, under a steady load of issues and calls through
//! every node and a floor screen on every node. A schedule cuts nodes
//! from NATS, from PostgreSQL and from both, slows and disturbs links,
//! kills a node with SIGKILL and starts it again, and restarts PostgreSQL
//! and NATS. Every command carries an Idempotency-Key, so the store says
//! afterwards which commands took effect; a checker over the recorded
//! history then asserts:
//!
//! - no number twice in a day;
//! - every command answered as done took effect (its key is in the store,
//!   its ticket exists), every one refused took none, and no ticket exists
//!   that no command took;
//! - every screen's seqs are gapless across its resumes, and every screen
//!   ends at PostgreSQL's seq having seen every call;
//! - `/readyz` says 503 while a node cannot reach PostgreSQL, and 200
//!   again once it can.
//!
//! It prints the schedule and the counts; a failing run keeps its history
//! (a JSON file under the target dir, named in the failure).
//! `CLUSTER_FAULTS_LOGS=DIR` also writes every node's log and the commands
//! there, for a look at a passing run.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::own::{OwnNats, OwnPostgres};
use common::proxy::{Link, Proxy};
use common::Server;
use futures_util::StreamExt;
use serde_json::{json, Value};

const KIOSK: &str = "demo-kiosk-lobby-1-token";
const WINDOWS: [&str; 4] = ["3-01", "3-02", "3-03", "3-04"];
const FLOOR: &str = "/ws/v1/halls/demo/floors/3";

/// One command as the client saw it.
#[derive(Clone, Debug, serde::Serialize)]
struct Op {
    key: String,
    what: String,
    node: usize,
    at_ms: u128,
    /// The HTTP status, or 0 when no answer came (timeout, reset).
    status: u16,
    body: String,
}

/// One message a screen got.
#[derive(Clone, Debug, serde::Serialize)]
struct Seen {
    screen: usize,
    node: usize,
    seq: u64,
    kind: String,
    number: Option<String>,
}

/// A `/readyz` sample.
#[derive(Clone, Debug, serde::Serialize)]
struct Ready {
    node: usize,
    at_ms: u128,
    status: u16,
}

#[derive(Default)]
struct History {
    ops: Mutex<Vec<Op>>,
    seen: Mutex<Vec<Seen>>,
    ready: Mutex<Vec<Ready>>,
    /// Screens that met a snapshot when they resumed with `?after`.
    resume_snapshots: Mutex<Vec<usize>>,
    resumes: Mutex<usize>,
}

struct Node {
    server: Server,
    pg: Proxy,
    nats: Proxy,
}

/// The nodes' current base URLs (a restarted node listens elsewhere).
type Bases = Arc<Mutex<Vec<Option<String>>>>;

fn ms(start: Instant) -> u128 {
    start.elapsed().as_millis()
}

async fn post(
    http: &reqwest::Client,
    base: &str,
    path: &str,
    token: &str,
    key: &str,
    body: &str,
) -> (u16, String) {
    let r = http
        .post(format!("{base}{path}"))
        .header("authorization", format!("Bearer {token}"))
        .header("idempotency-key", key)
        .header("content-type", "application/json")
        .body(body.to_string())
        .timeout(Duration::from_secs(15))
        .send()
        .await;
    match r {
        Ok(r) => {
            let s = r.status().as_u16();
            (s, r.text().await.unwrap_or_default())
        }
        Err(e) => (0, e.to_string()),
    }
}

/// Issues and calls through every node in turn until `stop`.
async fn load(bases: Bases, history: Arc<History>, start: Instant, stop: Arc<tokio::sync::Notify>) {
    let http = reqwest::Client::new();
    let mut n = 0usize;
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            () = stop.notified() => break,
            () = tokio::time::sleep(Duration::from_millis(120)) => {}
        }
        n += 1;
        let node = n % 3;
        let Some(base) = bases.lock().unwrap()[node].clone() else {
            continue;
        };
        let (http, history) = (http.clone(), history.clone());
        // Two issues for each call: lines grow, calls find someone.
        let (what, key, path, token, body) = if n % 3 != 0 {
            (
                "issue".to_string(),
                format!("i-{n}"),
                "/api/v1/halls/demo/tickets".to_string(),
                KIOSK.to_string(),
                r#"{"service":"business"}"#.to_string(),
            )
        } else {
            let w = WINDOWS[(n / 3) % WINDOWS.len()];
            (
                format!("call {w}"),
                format!("c-{n}"),
                format!("/api/v1/halls/demo/windows/{w}/call"),
                format!("demo-window-{w}-token"),
                "{}".to_string(),
            )
        };
        tasks.spawn(async move {
            let at_ms = ms(start);
            let (status, body) = post(&http, &base, &path, &token, &key, &body).await;
            history.ops.lock().unwrap().push(Op {
                key,
                what,
                node,
                at_ms,
                status,
                body,
            });
        });
    }
    while tasks.join_next().await.is_some() {}
}

/// A floor screen that starts on node `first` and, whenever its channel
/// ends, resumes with `?after` on the next node that is up.
async fn screen(
    id: usize,
    first: usize,
    bases: Bases,
    history: Arc<History>,
    stop: Arc<tokio::sync::Notify>,
) {
    let mut node = first;
    let mut last: Option<u64> = None;
    loop {
        let base = bases.lock().unwrap()[node].clone();
        let Some(base) = base else {
            node = (node + 1) % 3;
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let url = format!(
            "{}{}{}",
            base.replacen("http://", "ws://", 1),
            FLOOR,
            last.map(|s| format!("?after={s}")).unwrap_or_default()
        );
        let ws = tokio::select! {
            () = stop.notified() => return,
            r = tokio_tungstenite::connect_async(&url) => r,
        };
        let Ok((mut ws, _)) = ws else {
            node = (node + 1) % 3;
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        if last.is_some() {
            *history.resumes.lock().unwrap() += 1;
        }
        loop {
            let m = tokio::select! {
                () = stop.notified() => return,
                m = ws.next() => m,
            };
            let Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t))) = m else {
                match m {
                    Some(Ok(_)) => continue,
                    _ => break,
                }
            };
            let v: Value = serde_json::from_str(&t).unwrap();
            let seq = v["seq"].as_u64().unwrap_or(0);
            let kind = v["type"].as_str().unwrap_or("").to_string();
            if kind == "snapshot" && last.is_some() {
                history.resume_snapshots.lock().unwrap().push(id);
            }
            last = Some(seq);
            history.seen.lock().unwrap().push(Seen {
                screen: id,
                node,
                seq,
                kind,
                number: v["number"].as_str().map(str::to_string),
            });
        }
        // The channel ended (the node died, or closed it): resume on the
        // next node.
        node = (node + 1) % 3;
    }
}

/// Samples every node's `/readyz` twice a second.
async fn readiness(
    bases: Bases,
    history: Arc<History>,
    start: Instant,
    stop: Arc<tokio::sync::Notify>,
) {
    let http = reqwest::Client::new();
    loop {
        tokio::select! {
            () = stop.notified() => return,
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        for node in 0..3 {
            let Some(base) = bases.lock().unwrap()[node].clone() else {
                continue;
            };
            let status = match http
                .get(format!("{base}/readyz"))
                .timeout(Duration::from_secs(2))
                .send()
                .await
            {
                Ok(r) => r.status().as_u16(),
                Err(_) => 0,
            };
            history.ready.lock().unwrap().push(Ready {
                node,
                at_ms: ms(start),
                status,
            });
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_tells_the_truth_under_faults() {
    let start = Instant::now();
    let pg = OwnPostgres::start();
    let mut nats = OwnNats::start();
    let tmp = tempfile::tempdir().unwrap();
    let secret = common::cluster_secret_file(tmp.path());
    let mut nodes = Vec::new();
    for i in 0..3 {
        let pg_link = Proxy::start(pg.port).await;
        let nats_link = Proxy::start(nats.port).await;
        let args = vec![
            "--store".to_string(),
            format!("postgres://postgres@127.0.0.1:{}/postgres", pg_link.port),
            "--bus".to_string(),
            format!("nats://127.0.0.1:{}", nats_link.port),
            "--cluster".to_string(),
            "faults".to_string(),
            "--cluster-secret-file".to_string(),
            secret.display().to_string(),
        ];
        let server = Server::spawn_with(&tmp.path().join(format!("node{i}")), None, &[], &args);
        nodes.push(Node {
            server,
            pg: pg_link,
            nats: nats_link,
        });
    }
    let bases: Bases = Arc::new(Mutex::new(
        nodes.iter().map(|n| Some(n.server.base.clone())).collect(),
    ));
    let history = Arc::new(History::default());
    let stop_load = Arc::new(tokio::sync::Notify::new());
    let stop_watch = Arc::new(tokio::sync::Notify::new());
    let loader = tokio::spawn(load(
        bases.clone(),
        history.clone(),
        start,
        stop_load.clone(),
    ));
    let screens: Vec<_> = (0..3)
        .map(|i| {
            tokio::spawn(screen(
                i,
                i,
                bases.clone(),
                history.clone(),
                stop_watch.clone(),
            ))
        })
        .collect();
    let watcher = tokio::spawn(readiness(
        bases.clone(),
        history.clone(),
        start,
        stop_watch.clone(),
    ));

    // The schedule: (name, from, to) in ms since the start, for the report
    // and the readiness rules.
    let mut schedule: Vec<(String, u128, u128)> = Vec::new();
    let mut phase = |name: &str, from: u128| schedule.push((name.to_string(), from, ms(start)));
    let sleep = |s: u64| tokio::time::sleep(Duration::from_secs(s));

    let t = ms(start);
    sleep(5).await;
    phase("steady", t);

    let t = ms(start);
    nodes[0].nats.set(Link::Cut);
    sleep(6).await;
    nodes[0].nats.set(Link::Up);
    phase("node 0 cut from NATS", t);

    let t = ms(start);
    nodes[1].pg.set(Link::Cut);
    sleep(8).await;
    nodes[1].pg.set(Link::Up);
    phase("node 1 cut from PostgreSQL", t);
    sleep(3).await;

    let t = ms(start);
    nodes[2].pg.set(Link::Cut);
    nodes[2].nats.set(Link::Cut);
    sleep(8).await;
    nodes[2].pg.set(Link::Up);
    nodes[2].nats.set(Link::Up);
    phase("node 2 cut from both", t);
    sleep(3).await;

    let t = ms(start);
    nodes[0].pg.set(Link::Slow(Duration::from_millis(150)));
    nodes[1].nats.set(Link::Lossy);
    nodes[2].pg.set(Link::Lossy);
    sleep(8).await;
    for n in &nodes {
        n.pg.set(Link::Up);
        n.nats.set(Link::Up);
    }
    phase("slow and lossy links", t);

    let t = ms(start);
    bases.lock().unwrap()[1] = None;
    nodes[1].server.kill9();
    sleep(5).await;
    common::blocking(|| nodes[1].server.respawn());
    bases.lock().unwrap()[1] = Some(nodes[1].server.base.clone());
    phase("node 1 killed (SIGKILL) and started again", t);
    sleep(4).await;

    let t = ms(start);
    common::blocking(|| pg.stop());
    sleep(3).await;
    common::blocking(|| pg.resume());
    phase("PostgreSQL restarted", t);
    sleep(5).await;

    let t = ms(start);
    nats.stop();
    sleep(3).await;
    nats.resume();
    phase("NATS restarted", t);
    sleep(4).await;

    // Settle: the load stops, every link is up; the screens catch up.
    stop_load.notify_waiters();
    loader.await.unwrap();
    let t = ms(start);
    let final_seq = common::eventually(30, "every screen at PostgreSQL's seq", || {
        let (history, pg_url) = (history.clone(), pg.url());
        async move {
            let db = common::blocking(|| {
                let mut c = postgres::Client::connect(&pg_url, postgres::NoTls).ok()?;
                c.query_one(
                    "SELECT seq FROM sequences WHERE hall='demo' AND scope='floor:3'",
                    &[],
                )
                .ok()
                .map(|r| r.get::<_, i64>(0) as u64)
            })?;
            let seen = history.seen.lock().unwrap();
            let at: Vec<u64> = (0..3)
                .map(|s| {
                    seen.iter()
                        .filter(|m| m.screen == s)
                        .map(|m| m.seq)
                        .max()
                        .unwrap_or(0)
                })
                .collect();
            at.iter().all(|&a| a == db).then_some(db)
        }
    })
    .await;
    phase("settle", t);
    stop_watch.notify_waiters();
    for s in screens {
        let _ = s.await;
    }
    let _ = watcher.await;

    let anomalies = check(&history, &pg.url(), &schedule, final_seq);
    if let Ok(dir) = std::env::var("CLUSTER_FAULTS_LOGS") {
        for (i, n) in nodes.iter().enumerate() {
            std::fs::write(format!("{dir}/node{i}.log"), n.server.logs()).unwrap();
        }
        let ops = history.ops.lock().unwrap().clone();
        std::fs::write(
            format!("{dir}/ops.json"),
            serde_json::to_vec(&json!({"schedule": schedule, "ops": ops})).unwrap(),
        )
        .unwrap();
    }
    let ops = history.ops.lock().unwrap().clone();
    let count = |f: &dyn Fn(&Op) -> bool| ops.iter().filter(|o| f(o)).count();
    println!("schedule (s since start):");
    for (name, from, to) in &schedule {
        println!(
            "  {:>6.1} - {:>6.1}  {name}",
            *from as f64 / 1e3,
            *to as f64 / 1e3
        );
    }
    println!(
        "commands: {} ({} issues, {} calls); answered 2xx {}, refused {}, no answer {}",
        ops.len(),
        count(&|o| o.what == "issue"),
        count(&|o| o.what.starts_with("call")),
        count(&|o| (200..300).contains(&o.status)),
        count(&|o| o.status >= 300),
        count(&|o| o.status == 0),
    );
    let mut by_status: BTreeMap<u16, usize> = BTreeMap::new();
    for o in &ops {
        *by_status.entry(o.status).or_default() += 1;
    }
    println!("answers by status (0: none): {by_status:?}");
    let mut refusals: BTreeMap<String, usize> = BTreeMap::new();
    for o in ops.iter().filter(|o| o.status >= 300) {
        let m = serde_json::from_str::<Value>(&o.body)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
            .unwrap_or_else(|| o.body.clone());
        let m: String = m.chars().take(70).collect();
        *refusals
            .entry(format!("node {} {}: {m}", o.node, o.status))
            .or_default() += 1;
    }
    for (m, n) in &refusals {
        println!("  {n:>4} × {m}");
    }
    println!(
        "screens: {} messages, {} resumes, final seq {final_seq}; readiness samples {}",
        history.seen.lock().unwrap().len(),
        history.resumes.lock().unwrap(),
        history.ready.lock().unwrap().len()
    );
    println!("anomalies: {}", anomalies.len());
    if !anomalies.is_empty() {
        let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "cluster-faults-history-{}.json",
            std::process::id()
        ));
        let dump = json!({
            "schedule": schedule,
            "anomalies": anomalies,
            "ops": ops,
            "seen": *history.seen.lock().unwrap(),
            "ready": *history.ready.lock().unwrap(),
        });
        std::fs::write(&path, serde_json::to_vec_pretty(&dump).unwrap()).unwrap();
        panic!(
            "{} anomalies, the first: {:?}; the history is kept in {}",
            anomalies.len(),
            &anomalies[..anomalies.len().min(5)],
            path.display()
        );
    }
}

/// The checker: every anomaly found in the history against the store.
fn check(
    history: &History,
    pg_url: &str,
    schedule: &[(String, u128, u128)],
    final_seq: u64,
) -> Vec<String> {
    let mut bad = Vec::new();
    let (tickets, keys, called_events) = common::blocking(|| {
        let mut c = postgres::Client::connect(pg_url, postgres::NoTls).unwrap();
        let tickets: Vec<(String, String, String)> = c
            .query(
                "SELECT day, number, token FROM tickets WHERE hall='demo'",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        let keys: HashMap<String, (i64, Vec<u8>)> = c
            .query(
                "SELECT key, status, body FROM idempotency WHERE hall='demo'",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| (r.get(0), (r.get(1), r.get(2))))
            .collect();
        let called: HashSet<u64> = c
            .query(
                "SELECT floor_seq, floor_msg FROM events WHERE hall='demo' AND floor=3",
                &[],
            )
            .unwrap()
            .iter()
            .filter(|r| r.get::<_, String>(1).contains("\"type\":\"called\""))
            .map(|r| r.get::<_, i64>(0) as u64)
            .collect();
        (tickets, keys, called)
    });

    // No number twice in a day.
    let mut numbers = HashSet::new();
    for (day, number, _) in &tickets {
        if !numbers.insert((day.clone(), number.clone())) {
            bad.push(format!("number {number} twice on {day}"));
        }
    }
    // Commands: answered done → in the store; refused → not.
    let tokens: HashSet<&str> = tickets.iter().map(|t| t.2.as_str()).collect();
    let mut issued_keys = 0;
    for op in history.ops.lock().unwrap().iter() {
        let stored = keys.get(&op.key);
        match op.status {
            200..=299 => {
                if stored.is_none() {
                    bad.push(format!(
                        "{} {} answered {} but not applied",
                        op.what, op.key, op.status
                    ));
                }
                if op.what == "issue" {
                    let token = serde_json::from_str::<Value>(&op.body)
                        .ok()
                        .and_then(|v| v["token"].as_str().map(str::to_string));
                    if !token.as_deref().is_some_and(|t| tokens.contains(t)) {
                        bad.push(format!(
                            "issue {} answered 201, its ticket is not in the store",
                            op.key
                        ));
                    }
                }
            }
            0 => {} // no answer: either way is true; counted below
            s => {
                if stored.is_some() {
                    bad.push(format!(
                        "{} {} answered {s} ({}) but applied",
                        op.what, op.key, op.body
                    ));
                }
            }
        }
        if op.what == "issue" && stored.is_some() {
            issued_keys += 1;
        }
    }
    // Every ticket was made by exactly one command that took effect.
    if tickets.len() != issued_keys {
        bad.push(format!(
            "{} tickets in the store, {issued_keys} issue commands took effect",
            tickets.len()
        ));
    }
    // Screens: gapless across resumes, and every call seen.
    let seen = history.seen.lock().unwrap();
    for s in 0..3 {
        let mine: Vec<&Seen> = seen.iter().filter(|m| m.screen == s).collect();
        let mut last: Option<u64> = None;
        let mut calls = HashSet::new();
        for m in &mine {
            match (last, m.kind.as_str()) {
                (None, "snapshot") => last = Some(m.seq),
                (Some(l), _) if m.seq == l + 1 => last = Some(m.seq),
                (Some(l), "snapshot") if m.seq == l => {}
                (l, _) => {
                    bad.push(format!(
                        "screen {s}: seq {} after {l:?} ({})",
                        m.seq, m.kind
                    ));
                    last = Some(m.seq);
                }
            }
            if m.kind == "called" {
                calls.insert(m.seq);
            }
        }
        let first = mine.first().map_or(0, |m| m.seq);
        let missed: Vec<u64> = called_events
            .iter()
            .filter(|&&seq| seq > first && !calls.contains(&seq))
            .copied()
            .collect();
        if !missed.is_empty() {
            bad.push(format!("screen {s} missed the calls of seq {missed:?}"));
        }
        if last != Some(final_seq) {
            bad.push(format!(
                "screen {s} ended at {last:?}, the store at {final_seq}"
            ));
        }
    }
    for s in history.resume_snapshots.lock().unwrap().iter() {
        bad.push(format!(
            "screen {s} got a snapshot on resume instead of the events it missed"
        ));
    }
    // /readyz: 503 while a node cannot reach PostgreSQL (from 3 s into the
    // cut, the poll's second plus slack), 200 within 10 s of it back, and
    // 200 in the steady phase.
    let ready = history.ready.lock().unwrap();
    let phase = |name: &str| schedule.iter().find(|p| p.0.starts_with(name)).cloned();
    let mut rules: BTreeMap<usize, Vec<(u128, u128, bool)>> = BTreeMap::new();
    if let Some((_, from, to)) = phase("steady") {
        for n in 0..3 {
            rules.entry(n).or_default().push((from + 1000, to, true));
        }
    }
    for (name, node) in [
        ("node 1 cut from PostgreSQL", 1),
        ("node 2 cut from both", 2),
    ] {
        if let Some((_, from, to)) = phase(name) {
            rules
                .entry(node)
                .or_default()
                .push((from + 3000, to, false));
            if !ready
                .iter()
                .any(|r| r.node == node && r.status == 200 && r.at_ms > to && r.at_ms < to + 10_000)
            {
                bad.push(format!(
                    "node {node}: /readyz not 200 within 10 s after '{name}'"
                ));
            }
        }
    }
    for r in ready.iter() {
        for &(from, to, up) in rules.get(&r.node).into_iter().flatten() {
            if r.at_ms >= from && r.at_ms + 500 <= to && (r.status == 200) != up {
                bad.push(format!(
                    "node {}: /readyz {} at {} ms (expected {})",
                    r.node,
                    r.status,
                    r.at_ms,
                    if up { 200 } else { 503 }
                ));
            }
        }
    }
    bad
}
