//! Fan-out load generator: N WebSocket subscribers on one floor channel of
//! a real hallcast process, calls published through the real HTTP API.
//!
//!     cargo bench --bench fanout -- --subs 10000 --scenario latency
//!     cargo bench --bench fanout -- --subs 10000 --scenario saturation
//!     cargo bench --bench fanout -- --subs 10000 --scenario saturation --max-rate 50
//!     cargo bench --bench fanout -- --subs 10000 --scenario stall
//!     cargo bench --bench fanout -- --subs 10000 --scenario storm
//!     cargo bench --bench fanout -- --subs 19900 --scenario idle
//!
//! `--nodes K` starts K servers (give them one cluster with
//! `HALLCAST_BENCH_ARGS="--store postgres://… --bus nats://…"`), spreads
//! the subscribers over them round-robin and publishes through the first:
//! time-to-last is then across every node of the cluster, and each node's
//! own figures follow.
//!
//! `--procs P` holds the subscribers in P child processes of the generator
//! (each process may open about 19,900 sockets here): 59,700 subscribers
//! over three nodes is `--nodes 3 --procs 3 --subs 59700`. Children stamp
//! receipts on the wall clock, as the parent does its calls. With
//! `--scenario failover` (needs `--procs`) the last node is killed with
//! SIGKILL halfway through the calls; its subscribers reconnect with
//! `?after` to the next live node, and the report says how long that took
//! and what was missed.
//!
//! `--spin` keeps the reader thread polling without ever sleeping (on
//! loopback the sender's core pays for waking a sleeping receiver, a cost
//! remote screens never put on the server; the generator then shows 100 %
//! CPU by design); `--max-rate N` caps the saturation scenario at N calls/s
//! so the generator is not the bottleneck.
//!
//! Pinning: `--server-cpu 0` starts the server under `taskset -c 0`; run the
//! generator itself under `taskset -c 1 cargo bench …` (or
//! `taskset -c 1 target/release/deps/fanout-* …`).
//!
//! Reports deliveries/s, publish→receipt latency (p50/p99/p99.9/max), the
//! time until the last subscriber has each call, lost messages, seq gaps,
//! server CPU per delivery, server RSS per idle connection, and the
//! generator's own CPU, flagging when the generator is the bottleneck.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;

mod common;
#[path = "fanout/procs.rs"]
mod procs;
#[path = "fanout/reader.rs"]
mod reader;
use common::Server;
use reader::{find_u64, scan, Joined, Seen, Shared};

const ADMIN: &str = "Bearer demo-admin-token-0000";
const KIOSK: &str = "Bearer demo-kiosk-lobby-1-token";
/// Source addresses rotate over 127.0.0.2..=127.0.0.201 so that ephemeral
/// ports never run out, whatever N.
const SOURCE_IPS: u8 = 200;

#[derive(Clone, Debug)]
struct Opts {
    subs: usize,
    scenario: String,
    calls: usize,
    rate: f64,
    publishers: usize,
    seconds: u64,
    server_cpu: Option<String>,
    floor: i32,
    /// Saturation: all publishers together call at most this often
    /// (0: as fast as the server answers).
    max_rate: f64,
    /// Keep the generator's thread from ever sleeping (see `--spin`).
    spin: bool,
    /// Servers started (one cluster: see `--nodes`).
    nodes: usize,
    /// Generator processes holding the subscribers (see `--procs`).
    procs: usize,
    /// Set in a generator's child: the subscribers it holds.
    child: Option<(usize, usize)>,
    /// A child's servers.
    addrs: Vec<SocketAddr>,
}

fn opts() -> Opts {
    let mut o = Opts {
        subs: 1000,
        scenario: "latency".into(),
        calls: 40,
        rate: 2.0,
        publishers: 16,
        seconds: 10,
        server_cpu: None,
        floor: 3,
        max_rate: 0.0,
        spin: false,
        nodes: 1,
        procs: 1,
        child: None,
        addrs: Vec::new(),
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let v = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--subs" => o.subs = v.parse().expect("--subs N"),
            "--scenario" => o.scenario = v,
            "--calls" => o.calls = v.parse().expect("--calls N"),
            "--rate" => o.rate = v.parse().expect("--rate CALLS_PER_S"),
            "--publishers" => o.publishers = v.parse().expect("--publishers N"),
            "--seconds" => o.seconds = v.parse().expect("--seconds N"),
            "--server-cpu" => o.server_cpu = Some(v),
            "--floor" => o.floor = v.parse().expect("--floor N"),
            "--max-rate" => o.max_rate = v.parse().expect("--max-rate CALLS_PER_S"),
            "--nodes" => o.nodes = v.parse().expect("--nodes K"),
            "--procs" => o.procs = v.parse().expect("--procs P"),
            "--addrs" => {
                o.addrs = v
                    .split(',')
                    .map(|a| a.parse().expect("--addrs A,B"))
                    .collect()
            }
            "--child" => {
                let (a, b) = v.split_once("..").expect("--child FROM..TO");
                o.child = Some((a.parse().unwrap(), b.parse().unwrap()));
            }
            "--spin" => {
                o.spin = true;
                i += 1;
                continue;
            }
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    o
}

// ----- the server process -----

/// utime + stime of a process in seconds, from /proc.
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields 14 and 15 (1-based) are utime and stime; `after` starts at 3.
    (ticks(11) + ticks(12)) / 100.0
}

/// The server's pid: the child itself, or taskset's exec'd child (same pid).
fn server_pid(s: &Server) -> String {
    s.child.id().to_string()
}

/// CPU seconds of every server of the run.
fn servers_cpu(servers: &[Server]) -> f64 {
    servers.iter().map(|s| cpu_seconds(&server_pid(s))).sum()
}

// ----- subscribers -----

type Socket = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// A subscriber read on its own (a stalled one resuming, the storm), as a
/// tungstenite stream over the same handshake as the fleet's.
async fn connect(addr: SocketAddr, i: usize, path: &str) -> Socket {
    let j = join(addr, i, path).await;
    let tcp = tokio::net::TcpStream::from_std(j.socket).unwrap();
    let cfg = WebSocketConfig::default().read_buffer_size(4096);
    Socket::from_partially_read(tcp, j.early, Role::Client, Some(cfg)).await
}

/// The subscribers, read by one thread (see `reader`).
struct Fleet {
    shared: Arc<Shared>,
    /// While set, every hundredth subscriber (in the stall scenario) is
    /// not read.
    stall: Arc<AtomicBool>,
    stalled: Vec<usize>,
    stop: Arc<AtomicBool>,
    reader: std::thread::JoinHandle<()>,
    /// To the reader: sockets that replace ended ones.
    joined: std::sync::mpsc::Sender<Joined>,
}

impl Fleet {
    fn seen(&self) -> std::sync::MutexGuard<'_, Vec<Seen>> {
        self.shared.seen.lock().unwrap()
    }

    /// Closes every subscriber's socket.
    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        self.reader.join().unwrap();
    }
}

/// Connects and upgrades; the socket comes back past the upgrade's answer,
/// with whatever arrived after it.
async fn join(addr: SocketAddr, i: usize, path: &str) -> Joined {
    for attempt in 0..20 {
        if let Some(j) = try_join(addr, i, path).await {
            return j;
        }
        tokio::time::sleep(Duration::from_millis(50 * (attempt + 1))).await;
    }
    panic!("subscriber {i} cannot connect");
}

/// One attempt of [`join`]: `None` when the server is not there or the
/// connection broke before the upgrade's answer.
async fn try_join(addr: SocketAddr, i: usize, path: &str) -> Option<Joined> {
    let src = Ipv4Addr::new(127, 0, 0, 2 + (i % SOURCE_IPS as usize) as u8);
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    let sock = TcpSocket::new_v4().unwrap();
    sock.bind(SocketAddr::new(src.into(), 0)).unwrap();
    let mut tcp = sock.connect(addr).await.ok()?;
    tcp.write_all(request.as_bytes()).await.ok()?;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tcp.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        got.extend_from_slice(&buf[..n]);
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            assert!(got.starts_with(b"HTTP/1.1 101"), "upgrade refused");
            return Some(Joined {
                index: i,
                socket: tcp.into_std().unwrap(),
                early: got[end + 4..].to_vec(),
            });
        }
    }
}

/// `n` subscribers, the `first`-th of the run's first: subscriber `k` of the
/// run is on server `k % addrs.len()`.
async fn fleet(
    addrs: &[SocketAddr],
    o: &Opts,
    first: usize,
    n: usize,
    stalled_every: Option<usize>,
) -> Fleet {
    let shared = Arc::new(Shared::default());
    *shared.seen.lock().unwrap() = vec![Seen::default(); n];
    let stall = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = {
        let (shared, stall, stop, spin) = (shared.clone(), stall.clone(), stop.clone(), o.spin);
        std::thread::spawn(move || {
            let stalls = move |i: usize| stalled_every.is_some_and(|e| i % e == 0);
            reader::run(rx, shared, stall, stalls, stop, spin)
        })
    };
    let stalled = (0..n)
        .filter(|i| stalled_every.is_some_and(|e| i % e == 0))
        .collect();
    let path = format!("/ws/v1/halls/demo/floors/{}", o.floor);
    // Connect in waves of 500 so the accept queue is never the test.
    for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
        let joined = futures_util::future::join_all(chunk.iter().map(|&i| {
            let k = first + i;
            join(addrs[k % addrs.len()], k, &path)
        }))
        .await;
        for (mut j, &i) in joined.into_iter().zip(chunk) {
            j.index = i;
            tx.send(j).unwrap();
        }
    }
    let f = Fleet {
        shared,
        stall,
        stalled,
        stop,
        reader,
        joined: tx,
    };
    // Every subscriber has its snapshot before anything is published.
    while f.seen().iter().filter(|s| s.started).count() < n {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    f
}

// ----- one clock for every process -----

/// Nanoseconds since the Unix epoch at `at`: the generator's children and
/// the parent stamp on this one timeline (the wall clock, read once per
/// process and advanced by the monotonic clock, so a step of the wall
/// clock during a run does not bend it).
fn wall_ns(at: Instant) -> u64 {
    static ANCHOR: std::sync::OnceLock<(Instant, u64)> = std::sync::OnceLock::new();
    let (i0, w0) = *ANCHOR.get_or_init(|| {
        let w = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        (Instant::now(), w.as_nanos() as u64)
    });
    match at.checked_duration_since(i0) {
        Some(d) => w0 + d.as_nanos() as u64,
        None => w0 - i0.duration_since(at).as_nanos() as u64,
    }
}

/// What the subscribers saw, wherever they were held.
#[derive(Default)]
struct Gathered {
    /// (subscriber, number, [`wall_ns`]) of every `called` received.
    receipts: Vec<(u32, u32, u64)>,
    messages: u64,
    gaps: u64,
    /// Subscribers whose socket ended and stayed ended.
    ended: usize,
    own_cpu: f64,
    /// Failover: subscribers moved to another node, the [`wall_ns`] of
    /// the last one's upgrade answer.
    moved: usize,
    moved_by: u64,
}

impl Gathered {
    fn of(f: &Fleet) -> Gathered {
        let seen = f.seen();
        Gathered {
            receipts: f
                .shared
                .receipts
                .lock()
                .unwrap()
                .iter()
                .map(|&(i, n, at)| (i, n, wall_ns(at)))
                .collect(),
            messages: seen.iter().map(|s| s.messages).sum(),
            gaps: seen.iter().map(|s| s.gaps).sum(),
            ended: seen.iter().filter(|s| s.ended).count(),
            ..Gathered::default()
        }
    }
}

// ----- publishing -----

async fn issue_tickets(http: &reqwest::Client, base: &str, n: usize) {
    let url = format!("{base}/api/v1/halls/demo/tickets");
    let per = n.div_ceil(32);
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let http = http.clone();
            let url = url.clone();
            tokio::spawn(async move {
                for _ in 0..per {
                    let r = http
                        .post(&url)
                        .header("authorization", KIOSK)
                        .body(r#"{"service":"business"}"#)
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 201);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

/// Calls the next ticket at a window; returns the number called.
async fn call(
    http: &reqwest::Client,
    base: &str,
    window: &str,
    published: &Mutex<Vec<Option<u64>>>,
) -> Option<u32> {
    let t = wall_ns(Instant::now());
    let r = http
        .post(format!("{base}/api/v1/halls/demo/windows/{window}/call"))
        .header("authorization", ADMIN)
        .body("{}")
        .send()
        .await
        .ok()?;
    if r.status() != 200 {
        return None;
    }
    let body = r.text().await.ok()?;
    let n = find_u64(&body, "\"number\":\"A")? as u32;
    let mut p = published.lock().unwrap();
    if p.len() <= n as usize {
        p.resize(n as usize + 1, None);
    }
    p[n as usize] = Some(t);
    Some(n)
}

// ----- reporting -----

struct Report {
    deliveries: u64,
    elapsed: f64,
    latency: Histogram<u64>,
    to_last: Histogram<u64>,
    /// Per node (only printed for several).
    nodes: Vec<(Histogram<u64>, Histogram<u64>)>,
    lost: u64,
    gaps: u64,
    server_cpu: f64,
    own_cpu: f64,
    slow_closed: usize,
}

fn report(name: &str, o: &Opts, r: &Report) {
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    println!("== {name}: {} subscribers on floor {}", o.subs, o.floor);
    println!(
        "deliveries {} in {:.2} s = {:.0}/s; lost {}; seq gaps {}; closed as slow {}",
        r.deliveries,
        r.elapsed,
        r.deliveries as f64 / r.elapsed,
        r.lost,
        r.gaps,
        r.slow_closed
    );
    println!(
        "latency publish→receipt ms: p50 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
        ms(&r.latency, 0.5),
        ms(&r.latency, 0.99),
        ms(&r.latency, 0.999),
        r.latency.max() as f64 / 1000.0
    );
    println!(
        "time to last subscriber ms: p50 {:.2}  p99 {:.2}  max {:.2}",
        ms(&r.to_last, 0.5),
        ms(&r.to_last, 0.99),
        r.to_last.max() as f64 / 1000.0
    );
    if r.nodes.len() > 1 {
        for (k, (lat, last)) in r.nodes.iter().enumerate() {
            println!(
                "  node {k}{}: latency p50 {:.2} p99 {:.2}; time to last p50 {:.2} p99 {:.2} ms ({} receipts)",
                if k == 0 { " (publishes)" } else { "" },
                ms(lat, 0.5),
                ms(lat, 0.99),
                ms(last, 0.5),
                ms(last, 0.99),
                lat.len()
            );
        }
    }
    let per = if r.deliveries > 0 {
        r.server_cpu * 1e6 / r.deliveries as f64
    } else {
        0.0
    };
    // A call is one write per subscriber however many events it carries,
    // so this is the figure to compare across servers whose calls differ
    // in events (hallcast: 2-3; the Node reference: 1).
    let per_receipt = if !r.latency.is_empty() {
        r.server_cpu * 1e6 / r.latency.len() as f64
    } else {
        0.0
    };
    println!(
        "server CPU {:.2} s = {:.2} µs per delivery, {:.2} µs per call per subscriber; generator CPU {:.2} s ({:.0}% of the wall time)",
        r.server_cpu,
        per,
        per_receipt,
        r.own_cpu,
        100.0 * r.own_cpu / r.elapsed
    );
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    if r.own_cpu / r.elapsed > 0.9 * cores {
        println!("WARNING: the generator used ~all of its CPUs; it may be the bottleneck");
    }
    // One call at a time: the generator reads a call in a burst, so its
    // average is low even when the burst takes as long as the server's
    // writes; then the last receipt is the generator's, not the server's.
    let calls = r.to_last.len() as f64;
    let own_per_call_ms = if calls > 0.0 {
        r.own_cpu * 1e3 / calls
    } else {
        0.0
    };
    if o.scenario == "latency" {
        println!("generator CPU per call {own_per_call_ms:.1} ms");
    }
    if o.scenario == "latency" && own_per_call_ms > 0.7 * ms(&r.to_last, 0.5) {
        println!(
            "WARNING: the generator spent {own_per_call_ms:.1} ms of CPU per call, near the time-to-last; it may be what is measured"
        );
    }
}

/// Latency and time-to-last, over all and per node.
struct Collected {
    latency: Histogram<u64>,
    to_last: Histogram<u64>,
    /// Per node: latency, time-to-last of that node's subscribers.
    nodes: Vec<(Histogram<u64>, Histogram<u64>)>,
    lost: u64,
}

/// `skip[i]`: subscriber `i` is not expected to have every call; `subs`
/// of the run, subscriber `i` on node `i % nodes`.
fn collect(
    g: &Gathered,
    published: &[Option<u64>],
    calls: &[u32],
    skip: &[bool],
    subs: usize,
    nodes: usize,
) -> Collected {
    let hist = || Histogram::<u64>::new(3).unwrap();
    let mut c = Collected {
        latency: hist(),
        to_last: hist(),
        nodes: (0..nodes).map(|_| (hist(), hist())).collect(),
        lost: 0,
    };
    // Per node, per call: the last receipt.
    let mut last_rx: Vec<Vec<Option<u64>>> = vec![vec![None; published.len()]; nodes];
    let mut received: Vec<u64> = vec![0; published.len()];
    for &(i, n, at) in &g.receipts {
        if skip.get(i as usize).copied().unwrap_or(false) {
            continue;
        }
        let n = n as usize;
        if let Some(Some(p)) = published.get(n) {
            let us = at.saturating_sub(*p) / 1000;
            c.latency.record(us).unwrap();
            let node = i as usize % nodes;
            c.nodes[node].0.record(us).unwrap();
            received[n] += 1;
            let l = &mut last_rx[node][n];
            if l.is_none_or(|l| at > l) {
                *l = Some(at);
            }
        }
    }
    let healthy = (subs - skip.iter().filter(|s| **s).count()) as u64;
    for &n in calls {
        let n = n as usize;
        c.lost += healthy.saturating_sub(received[n]);
        let Some(Some(p)) = published.get(n) else {
            continue;
        };
        let mut last = None;
        for (node, rx) in last_rx.iter().enumerate() {
            if let Some(l) = rx[n] {
                c.nodes[node].1.record(l.saturating_sub(*p) / 1000).unwrap();
                last = last.max(Some(l));
            }
        }
        if let Some(l) = last {
            c.to_last.record(l.saturating_sub(*p) / 1000).unwrap();
        }
    }
    c
}

// ----- scenarios -----

async fn publish_phase(
    o: &Opts,
    s: &Server,
    http: &reqwest::Client,
    steady: bool,
    victim: Option<&Server>,
) -> (Vec<u32>, Arc<Mutex<Vec<Option<u64>>>>, f64, Option<u64>) {
    let mut killed = None;
    let published = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    let mut calls = Vec::new();
    if steady {
        let gap = Duration::from_secs_f64(1.0 / o.rate);
        for i in 0..o.calls {
            let window = format!("3-{:02}", i % 25 + 1);
            if let Some(n) = call(http, &s.base, &window, &published).await {
                calls.push(n);
            }
            if let Some(v) = victim.filter(|_| i + 1 == o.calls / 2) {
                // SIGKILL: no goodbye to its subscribers, as a power cut.
                let pid = server_pid(v);
                killed = Some(wall_ns(Instant::now()));
                Command::new("kill").args(["-9", &pid]).status().unwrap();
            }
            tokio::time::sleep_until((start + gap * (i as u32 + 1)).into()).await;
        }
    } else {
        let deadline = start + Duration::from_secs(o.seconds);
        // Each publisher's own pace when the total rate is capped.
        let every =
            (o.max_rate > 0.0).then(|| Duration::from_secs_f64(o.publishers as f64 / o.max_rate));
        let tasks: Vec<_> = (0..o.publishers)
            .map(|p| {
                let http = http.clone();
                let base = s.base.clone();
                let published = published.clone();
                tokio::spawn(async move {
                    let window = format!("3-{:02}", p % 25 + 1);
                    let mut mine = Vec::new();
                    let mut next = start;
                    while Instant::now() < deadline {
                        if let Some(every) = every {
                            next += every;
                            tokio::time::sleep_until(next.into()).await;
                        }
                        if let Some(n) = call(&http, &base, &window, &published).await {
                            mine.push(n);
                        }
                    }
                    mine
                })
            })
            .collect();
        for t in tasks {
            calls.extend(t.await.unwrap());
        }
    }
    (calls, published, start.elapsed().as_secs_f64(), killed)
}

/// Waits until deliveries stop growing (everyone caught up).
async fn settle(f: &Fleet) {
    let mut last = u64::MAX;
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now: u64 = f.seen().iter().map(|s| s.messages).sum();
        if now == last {
            return;
        }
        last = now;
    }
}

async fn run(o: Opts) {
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let t0 = Instant::now();
    let phase = |name: &str| eprintln!("[{:6.1} s] {name}", t0.elapsed().as_secs_f64());
    let servers: Vec<Server> = (0..o.nodes.max(1))
        .map(|_| common::start_server(o.server_cpu.as_deref()))
        .collect();
    let addrs: Vec<SocketAddr> = servers.iter().map(|s| s.addr).collect();
    let s = &servers[0];
    let pid = server_pid(s);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    // Tickets first: issuing with 10k screens connected would itself be a
    // fan-out of one waiting event per ticket.
    let need = match o.scenario.as_str() {
        "latency" | "storm" | "failover" => o.calls + 40,
        // Enough for the calls made while they idle.
        "idle" => 8,
        _ => 20_000,
    };
    issue_tickets(&http, &s.base, need).await;
    phase("tickets issued");
    if o.procs > 1 || o.scenario == "failover" {
        assert!(
            matches!(o.scenario.as_str(), "latency" | "failover"),
            "--procs runs the latency and failover scenarios"
        );
        assert!(
            o.scenario != "failover" || o.nodes > 1,
            "a failover needs --nodes 2 or more"
        );
        return procs::run(&o, &servers, &http).await;
    }
    let rss_before = common::rss_kib(&pid);
    let stalled_every = (o.scenario == "stall").then_some(100);
    let f = fleet(&addrs, &o, 0, o.subs, stalled_every).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_after = common::rss_kib(&pid);
    println!(
        "server RSS {} KiB before, {} KiB with {} idle subscribers: {:.2} KiB per connection",
        rss_before,
        rss_after,
        o.subs,
        (rss_after as f64 - rss_before as f64) / o.subs as f64
    );
    if o.scenario == "idle" {
        // At connect is not all an idle screen costs: a first delivery and
        // a ping and its pong each go through paths not taken yet (buffers
        // grown on first use, a frame read). The bench server pings every
        // `common::PING_SECONDS`, so two of its periods see every
        // connection pinged.
        let published = Mutex::new(Vec::new());
        for w in ["3-01", "3-02"] {
            call(&http, &s.base, w, &published).await;
        }
        settle(&f).await;
        tokio::time::sleep(Duration::from_secs(2 * common::PING_SECONDS + 1)).await;
        let rss_settled = common::rss_kib(&pid);
        let alive = f.seen().iter().filter(|s| !s.ended).count();
        println!(
            "server RSS {} KiB after two calls and two ping rounds ({} of {} subscribers open): {:.2} KiB per connection",
            rss_settled,
            alive,
            o.subs,
            (rss_settled as f64 - rss_before as f64) / o.subs as f64
        );
        return;
    }
    phase("subscribers connected");
    settle(&f).await;
    phase("settled");
    for s in f.seen().iter_mut() {
        s.messages = 0;
    }
    f.shared.receipts.lock().unwrap().clear();

    if o.scenario == "stall" {
        f.stall.store(true, Ordering::Relaxed);
    }
    let cpu0 = servers_cpu(&servers);
    let own0 = cpu_seconds("self");
    let steady = o.scenario == "latency";
    let (calls, published, elapsed, _) = publish_phase(&o, s, &http, steady, None).await;
    phase("published");
    settle(&f).await;
    phase("delivered");
    let server_cpu = servers_cpu(&servers) - cpu0;
    let own_cpu = cpu_seconds("self") - own0;
    let published = published.lock().unwrap().clone();
    let skip: Vec<bool> = (0..o.subs)
        .map(|i| stalled_every.is_some_and(|e| i % e == 0))
        .collect();
    let g = Gathered::of(&f);
    let c = collect(&g, &published, &calls, &skip, o.subs, servers.len());
    let slow_closed = f.seen().iter().filter(|s| s.closed_slow).count();
    let healthy_elapsed = if steady { elapsed } else { elapsed.max(1e-9) };
    report(
        &o.scenario,
        &o,
        &Report {
            deliveries: g.messages,
            elapsed: healthy_elapsed,
            latency: c.latency,
            to_last: c.to_last,
            nodes: c.nodes,
            lost: c.lost,
            gaps: g.gaps,
            server_cpu,
            own_cpu,
            slow_closed,
        },
    );
    println!("calls published: {}", calls.len());

    if o.scenario == "stall" {
        // Resume the stalled ones; those the server closed reconnect with
        // ?after and must end up with every call.
        f.stall.store(false, Ordering::Relaxed);
        settle(&f).await;
        let mut missing = 0u64;
        let mut resumed = 0;
        for &i in &f.stalled {
            let (last, closed) = {
                let s = &f.seen()[i];
                (s.last_seq, s.closed_slow)
            };
            let mut all: std::collections::HashSet<u32> = f
                .shared
                .receipts
                .lock()
                .unwrap()
                .iter()
                .filter(|r| r.0 as usize == i)
                .map(|r| r.1)
                .collect();
            if closed {
                resumed += 1;
                let path = format!("/ws/v1/halls/demo/floors/{}?after={last}", o.floor);
                let mut ws = connect(s.addr, i, &path).await;
                let mut seen = Seen {
                    last_seq: last,
                    started: true,
                    ..Seen::default()
                };
                while let Ok(Some(Ok(Message::Text(t)))) =
                    tokio::time::timeout(Duration::from_millis(500), ws.next()).await
                {
                    scan(&t, &mut seen, |n| {
                        all.insert(n);
                    });
                }
                missing += seen.gaps;
            }
            missing += calls.iter().filter(|n| !all.contains(n)).count() as u64;
        }
        println!(
            "stalled subscribers: {} of {} were closed as slow (code 4008, read once they resumed) and came back with ?after; calls still missing after that: {}",
            resumed,
            f.stalled.len(),
            missing
        );
        println!("server RSS after the stall: {} KiB", common::rss_kib(&pid));
    }

    if o.scenario == "storm" {
        // Everyone drops and reconnects at once with ?after.
        let lasts: Vec<u64> = f.seen().iter().map(|s| s.last_seq).collect();
        f.stop();
        // Calls made while everyone is away.
        let away = Arc::new(Mutex::new(published.clone()));
        for i in 0..20 {
            call(&http, &s.base, &format!("3-{:02}", i % 25 + 1), &away).await;
        }
        let t0 = Instant::now();
        let counter = Arc::new(AtomicU64::new(0));
        let conns: Vec<_> = (0..o.subs)
            .map(|i| {
                let addr = s.addr;
                let floor = o.floor;
                let after = lasts[i];
                let counter = counter.clone();
                tokio::spawn(async move {
                    let path = format!("/ws/v1/halls/demo/floors/{floor}?after={after}");
                    let mut ws = connect(addr, i, &path).await;
                    let mut seen = Seen {
                        last_seq: after,
                        started: true,
                        ..Seen::default()
                    };
                    let mut dup = 0u64;
                    while let Ok(Some(Ok(Message::Text(t)))) =
                        tokio::time::timeout(Duration::from_millis(1500), ws.next()).await
                    {
                        if t.contains("\"type\":\"snapshot\"") {
                            dup += 1000; // a snapshot means the replay failed
                        }
                        let before = seen.last_seq;
                        scan(&t, &mut seen, |_| {});
                        if seen.last_seq <= before {
                            dup += 1;
                        }
                    }
                    counter.fetch_add(1, Ordering::Relaxed);
                    (seen.gaps, dup, seen.last_seq)
                })
            })
            .collect();
        let mut gaps = 0;
        let mut dups = 0;
        let mut lasts_after = std::collections::HashSet::new();
        for c in conns {
            let (g, d, l) = c.await.unwrap();
            gaps += g;
            dups += d;
            lasts_after.insert(l);
        }
        println!(
            "reconnect storm: {} subscribers back in {:.2} s (incl. 1.5 s idle wait); gaps {}, duplicates {}, distinct final seqs {:?}",
            o.subs,
            t0.elapsed().as_secs_f64(),
            gaps,
            dups,
            lasts_after
        );
    }
}

fn main() {
    let o = opts();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    if o.child.is_some() {
        rt.block_on(procs::child(o));
    } else {
        rt.block_on(run(o));
    }
}
