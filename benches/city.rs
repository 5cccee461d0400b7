//! A city's day: 10 halls (three floors of eight windows, floors spoken
//! in Chinese) and 50 community stations (one silent floor, two windows)
//! in one config, on one node or several; lobby screens on every floor
//! channel and every hall channel, and phones each following its ticket on
//! the ticket channel; calls at a steady rate over every window of the
//! city, through the nodes in turn.
//!
//!     cargo bench --bench city                              # one node, SQLite
//!     benches/scripts/cluster.sh city --nodes 3             # three nodes on PostgreSQL + NATS
//!     cargo bench --bench city -- --minutes 10 --rate 50 --phones 10000
//!
//! Reports, per call, the time until the last of its receivers (the
//! floor's screens, the hall's screens, the phone of the ticket when one
//! follows it) had it, calls missed by any receiver, seq gaps, the answer
//! time of the calls, and every node's RSS each minute (flat, or not).
//! Every subscriber runs on the generator's runtime (at this rate a call
//! reaches about 150 receivers, not thousands: one task each is light).

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use hdrhistogram::Histogram;
use serde_json::Value;
use tokio::net::TcpSocket;

mod common;

const HALLS: usize = 10;
const STATIONS: usize = 50;
const HALL_FLOORS: usize = 3;
const HALL_WINDOWS: usize = 8;
const STATION_WINDOWS: usize = 2;
const SOURCE_IPS: usize = 200;

struct Opts {
    nodes: usize,
    minutes: f64,
    rate: f64,
    phones: usize,
    /// Screens per floor channel (halls; stations have half).
    floor_screens: usize,
    /// Screens per hall channel (entrances).
    hall_screens: usize,
}

fn opts() -> Opts {
    let mut o = Opts {
        nodes: 1,
        minutes: 10.0,
        rate: 50.0,
        phones: 10_000,
        floor_screens: 40,
        hall_screens: 10,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for w in args.windows(2) {
        let v = &w[1];
        match w[0].as_str() {
            "--nodes" => o.nodes = v.parse().expect("--nodes K"),
            "--minutes" => o.minutes = v.parse().expect("--minutes M"),
            "--rate" => o.rate = v.parse().expect("--rate CALLS_PER_S"),
            "--phones" => o.phones = v.parse().expect("--phones N"),
            "--floor-screens" => o.floor_screens = v.parse().expect("--floor-screens N"),
            "--hall-screens" => o.hall_screens = v.parse().expect("--hall-screens N"),
            _ => {}
        }
    }
    o
}

/// One site of the city: a hall or a station.
struct Site {
    id: String,
    admin: String,
    floors: Vec<i32>,
    /// (window, floor, service)
    windows: Vec<(String, i32, String)>,
}

fn sites() -> Vec<Site> {
    let mut v = Vec::new();
    for h in 0..HALLS + STATIONS {
        let hall = h < HALLS;
        let id = if hall {
            format!("hall-{h:02}")
        } else {
            format!("station-{:02}", h - HALLS)
        };
        let floors: Vec<i32> = (1..=if hall { HALL_FLOORS } else { 1 } as i32).collect();
        let per = if hall { HALL_WINDOWS } else { STATION_WINDOWS };
        let windows = floors
            .iter()
            .flat_map(|&f| (1..=per).map(move |w| (format!("{f}-{w:02}"), f, format!("s{f}"))))
            .collect();
        v.push(Site {
            admin: format!("{id}-admin-token-0000"),
            id,
            floors,
            windows,
        });
    }
    v
}

fn config(sites: &[Site]) -> String {
    let mut c = format!(
        "[server]\nping_seconds = {}\n\n[server.limits]\nstreams_per_ip = 0\n\n",
        common::PING_SECONDS
    );
    let days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    for s in sites {
        let hall = s.floors.len() > 1;
        c += &format!(
            "[[halls]]\nid = \"{}\"\nname = \"{}\"\ntimezone = \"Asia/Shanghai\"\nadmin_token = \"{}\"\n",
            s.id,
            if hall { "区政务服务大厅" } else { "社区便民服务站" },
            s.admin
        );
        c += "  [halls.hours]\n";
        for d in days {
            c += &format!("  {d} = \"00:00-24:00\"\n");
        }
        for &f in &s.floors {
            c += &format!(
                "  [[halls.floors]]\n  number = {f}\n  name = \"{f}F\"\n  announce = \"{}\"\n  languages = [\"zh\"]\n",
                if hall { "voice" } else { "silent" }
            );
            c += &format!(
                "  [[halls.services]]\n  id = \"s{f}\"\n  name = \"综合受理{f}\"\n  prefix = \"{}\"\n  floor = {f}\n  zone = \"A\"\n",
                (b'A' + f as u8 - 1) as char
            );
        }
        for (w, f, svc) in &s.windows {
            c += &format!(
                "  [[halls.windows]]\n  id = \"{w}\"\n  label = \"{w}\"\n  floor = {f}\n  zone = \"A\"\n  services = [\"{svc}\"]\n  token = \"{}-{w}-window-token\"\n",
                s.id
            );
        }
        c += &format!(
            "  [[halls.kiosks]]\n  id = \"lobby\"\n  token = \"{}-kiosk-token-0000\"\n\n",
            s.id
        );
    }
    c
}

/// A call: its site, and its number as `letter × 100,000 + digits`.
type CallKey = (u16, u32);

/// A call's key: site, then the number ("B017" → 2 × 100,000 + 17).
fn key(site: usize, number: &str) -> CallKey {
    let letter = number.bytes().next().unwrap_or(b'A') - b'A' + 1;
    let n: u32 = number[1..].parse().unwrap_or(0);
    (site as u16, letter as u32 * 100_000 + n)
}

/// What every subscriber saw.
#[derive(Default)]
struct Seen {
    /// (call key, when) of every `called` received, with the receiver.
    receipts: Mutex<Vec<(CallKey, Instant)>>,
    messages: AtomicU64,
    gaps: AtomicU64,
    ended: AtomicU64,
}

/// What a subscriber listens to.
#[derive(Clone)]
enum Channel {
    Floor(usize, i32),
    Hall(usize),
    Phone(usize, String),
}

async fn subscribe(
    addr: SocketAddr,
    i: usize,
    sites: Arc<Vec<Site>>,
    ch: Channel,
    seen: Arc<Seen>,
) {
    let path = match &ch {
        Channel::Floor(s, f) => format!("/ws/v1/halls/{}/floors/{f}", sites[*s].id),
        Channel::Hall(s) => format!("/ws/v1/halls/{}", sites[*s].id),
        Channel::Phone(_, token) => format!("/ws/v1/tickets/{token}"),
    };
    let src = Ipv4Addr::new(127, 0, 0, 2 + (i % SOURCE_IPS) as u8);
    let mut ws = None;
    for attempt in 0..20u64 {
        let sock = TcpSocket::new_v4().unwrap();
        sock.bind(SocketAddr::new(src.into(), 0)).unwrap();
        if let Ok(tcp) = sock.connect(addr).await {
            if let Ok((s, _)) =
                tokio_tungstenite::client_async(format!("ws://{addr}{path}"), tcp).await
            {
                ws = Some(s);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50 * (attempt + 1))).await;
    }
    let mut ws = ws.unwrap_or_else(|| panic!("subscriber {i} cannot connect to {path}"));
    let site = match &ch {
        Channel::Floor(s, _) | Channel::Hall(s) | Channel::Phone(s, _) => *s,
    };
    let mut last: Option<u64> = None;
    while let Some(Ok(m)) = ws.next().await {
        let now = Instant::now();
        let tokio_tungstenite::tungstenite::Message::Text(t) = m else {
            continue;
        };
        let v: Value = serde_json::from_str(&t).expect("JSON");
        let list = match v {
            Value::Array(a) => a,
            one => vec![one],
        };
        for e in list {
            seen.messages.fetch_add(1, Ordering::Relaxed);
            let kind = e["type"].as_str().unwrap_or("");
            if !matches!(ch, Channel::Phone(..)) {
                let seq = e["seq"].as_u64().unwrap_or(0);
                if kind != "snapshot" && last.is_some_and(|l| seq != l + 1) {
                    seen.gaps.fetch_add(1, Ordering::Relaxed);
                }
                last = Some(seq);
            }
            if kind == "called" {
                if let Some(n) = e["number"].as_str() {
                    seen.receipts.lock().unwrap().push((key(site, n), now));
                }
            }
        }
    }
    seen.ended.fetch_add(1, Ordering::Relaxed);
}

async fn post(http: &reqwest::Client, url: String, auth: &str, body: String) -> Option<Value> {
    let r = http
        .post(url)
        .header("authorization", format!("Bearer {auth}"))
        .body(body)
        .send()
        .await
        .ok()?;
    if !r.status().is_success() {
        let status = r.status();
        eprintln!("{status}: {}", r.text().await.unwrap_or_default());
        return None;
    }
    r.json().await.ok()
}

async fn run(o: Opts) {
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let t0 = Instant::now();
    let phase = |name: &str| eprintln!("[{:6.1} s] {name}", t0.elapsed().as_secs_f64());
    let sites = Arc::new(sites());
    let cfg = config(&sites);
    let servers: Vec<common::Server> = (0..o.nodes.max(1))
        .map(|_| {
            let cfg = cfg.clone();
            common::start_server_with(None, common::bench_dir(), move |_| cfg)
        })
        .collect();
    let bases: Vec<String> = servers.iter().map(|s| s.base.clone()).collect();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()
        .unwrap();

    // Every window of the city in turn; tickets enough for its share.
    let windows: Vec<(usize, usize)> = sites
        .iter()
        .enumerate()
        .flat_map(|(s, site)| (0..site.windows.len()).map(move |w| (s, w)))
        .collect();
    let total = (o.minutes * 60.0 * o.rate) as usize;
    let per_window = total.div_ceil(windows.len());
    // (site, service) → tickets to issue.
    let mut need: Vec<(usize, String, usize)> = Vec::new();
    for (s, site) in sites.iter().enumerate() {
        for &f in &site.floors {
            let n = site.windows.iter().filter(|w| w.1 == f).count();
            need.push((s, format!("s{f}"), n * per_window + 5));
        }
    }
    let tickets: usize = need.iter().map(|n| n.2).sum();
    // Every `every`-th ticket has a phone following it.
    let every = (tickets / o.phones.max(1)).max(1);
    let followed: Arc<Mutex<Vec<(usize, String, String)>>> = Arc::default();
    // Each site's tickets through one node, as behind the README's
    // balancer that hashes the API by hall: numbers issued flat out into
    // one hall from several nodes at once would measure their contention
    // (README, "Several nodes"), not the city's day.
    let issue: Vec<_> = need
        .into_iter()
        .map(|(s, service, n)| {
            let (http, sites, followed) = (http.clone(), sites.clone(), followed.clone());
            let base = bases[s % bases.len()].clone();
            tokio::spawn(async move {
                let site = &sites[s];
                for j in 0..n {
                    let t = post(
                        &http,
                        format!("{base}/api/v1/halls/{}/tickets", site.id),
                        &site.admin,
                        format!(r#"{{"service":"{service}"}}"#),
                    )
                    .await
                    .expect("a ticket");
                    if j % every == 0 {
                        followed.lock().unwrap().push((
                            s,
                            t["number"].as_str().unwrap().to_string(),
                            t["token"].as_str().unwrap().to_string(),
                        ));
                    }
                }
            })
        })
        .collect();
    for t in issue {
        t.await.unwrap();
    }
    phase(&format!("{tickets} tickets issued"));

    // The subscribers, spread over the nodes.
    let seen = Arc::new(Seen::default());
    let mut channels: Vec<Channel> = Vec::new();
    // Expected receivers per call: (site, floor) → screens, site → screens.
    let mut floor_screens: HashMap<(usize, i32), u64> = HashMap::new();
    let mut hall_screens: HashMap<usize, u64> = HashMap::new();
    for (s, site) in sites.iter().enumerate() {
        let hall = site.floors.len() > 1;
        for &f in &site.floors {
            let n = if hall {
                o.floor_screens
            } else {
                o.floor_screens / 2
            };
            floor_screens.insert((s, f), n as u64);
            channels.extend((0..n).map(|_| Channel::Floor(s, f)));
        }
        let n = if hall {
            o.hall_screens
        } else {
            o.hall_screens / 2
        };
        hall_screens.insert(s, n as u64);
        channels.extend((0..n).map(|_| Channel::Hall(s)));
    }
    let phones: HashSet<CallKey> = followed
        .lock()
        .unwrap()
        .iter()
        .map(|(s, n, _)| key(*s, n))
        .collect();
    channels.extend(
        followed
            .lock()
            .unwrap()
            .iter()
            .map(|(s, _, token)| Channel::Phone(*s, token.clone())),
    );
    let addrs: Vec<SocketAddr> = servers.iter().map(|s| s.addr).collect();
    let n_subs = channels.len();
    for (chunk_no, chunk) in channels.chunks(500).enumerate() {
        for (j, ch) in chunk.iter().enumerate() {
            let i = chunk_no * 500 + j;
            tokio::spawn(subscribe(
                addrs[i % addrs.len()],
                i,
                sites.clone(),
                ch.clone(),
                seen.clone(),
            ));
        }
        // Let a wave connect before the next (the accept queue is not
        // what this measures).
        while seen.messages.load(Ordering::Relaxed)
            < ((chunk_no * 500 + chunk.len()) * 9 / 10) as u64
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    phase(&format!(
        "{n_subs} subscribers connected ({} phones)",
        phones.len()
    ));
    seen.receipts.lock().unwrap().clear();
    let messages0 = seen.messages.load(Ordering::Relaxed);

    // RSS of every node each minute.
    let pids: Vec<u32> = servers.iter().map(|s| s.child.id()).collect();
    let rss: Arc<Mutex<Vec<Vec<u64>>>> = Arc::default();
    {
        let (rss, pids) = (rss.clone(), pids.clone());
        rss.lock()
            .unwrap()
            .push(pids.iter().map(|&p| common::rss_kib(p)).collect());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(60)).await;
                rss.lock()
                    .unwrap()
                    .push(pids.iter().map(|&p| common::rss_kib(p)).collect());
            }
        });
    }

    // The calls: one every 1/rate s, each on its own task so that a slow
    // answer does not slow the rate; through the nodes in turn.
    let published: Arc<Mutex<Vec<(CallKey, Instant)>>> = Arc::default();
    let answers = Arc::new(Mutex::new(Histogram::<u64>::new(3).unwrap()));
    let refused = Arc::new(AtomicU64::new(0));
    let gap = Duration::from_secs_f64(1.0 / o.rate);
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(total);
    for c in 0..total {
        tokio::time::sleep_until((start + gap * c as u32).into()).await;
        let (s, w) = windows[c % windows.len()];
        let site = &sites[s];
        let url = format!(
            "{}/api/v1/halls/{}/windows/{}/call",
            bases[c % bases.len()],
            site.id,
            site.windows[w].0
        );
        let (http, admin) = (http.clone(), site.admin.clone());
        let (published, answers, refused) = (published.clone(), answers.clone(), refused.clone());
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            match post(&http, url, &admin, "{}".into()).await {
                Some(v) => {
                    let number = v["ticket"]["number"].as_str().unwrap_or("").to_string();
                    published.lock().unwrap().push((key(s, &number), t));
                    answers
                        .lock()
                        .unwrap()
                        .record(t.elapsed().as_micros() as u64)
                        .unwrap();
                }
                None => {
                    refused.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
        if c > 0 && c % (60 * o.rate as usize) == 0 {
            phase(&format!("{c} calls"));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = start.elapsed().as_secs_f64();
    // Until deliveries stop.
    let mut last = u64::MAX;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = seen.messages.load(Ordering::Relaxed);
        if now == last {
            break;
        }
        last = now;
    }
    phase("delivered");
    rss.lock()
        .unwrap()
        .push(pids.iter().map(|&p| common::rss_kib(p)).collect());

    // Time to last, and what was missed.
    let mut by_call: HashMap<(u16, u32), (u64, Instant)> = HashMap::new();
    for &(k, at) in seen.receipts.lock().unwrap().iter() {
        let e = by_call.entry(k).or_insert((0, at));
        e.0 += 1;
        e.1 = e.1.max(at);
    }
    let mut to_last = Histogram::<u64>::new(3).unwrap();
    let (mut missed, mut expected_all) = (0u64, 0u64);
    for &(k, t) in published.lock().unwrap().iter() {
        let s = k.0 as usize;
        let floor = (k.1 / 100_000) as i32;
        let expected =
            floor_screens[&(s, floor)] + hall_screens[&s] + u64::from(phones.contains(&k));
        expected_all += expected;
        match by_call.get(&k) {
            Some(&(n, l)) => {
                missed += expected.saturating_sub(n);
                to_last
                    .record(l.saturating_duration_since(t).as_micros() as u64)
                    .unwrap();
            }
            None => missed += expected,
        }
    }
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    let calls = published.lock().unwrap().len();
    println!(
        "== city: {} halls and {} stations on {} node(s); {} subscribers ({} phones); {} calls in {:.0} s ({:.1}/s), {} refused",
        HALLS,
        STATIONS,
        servers.len(),
        n_subs,
        phones.len(),
        calls,
        elapsed,
        calls as f64 / elapsed,
        refused.load(Ordering::Relaxed)
    );
    println!(
        "time to last receiver ms: p50 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
        ms(&to_last, 0.5),
        ms(&to_last, 0.99),
        ms(&to_last, 0.999),
        to_last.max() as f64 / 1000.0
    );
    let a = answers.lock().unwrap();
    println!(
        "call answered ms: p50 {:.2}  p99 {:.2}  max {:.2}",
        ms(&a, 0.5),
        ms(&a, 0.99),
        a.max() as f64 / 1000.0
    );
    println!(
        "receipts of calls expected {}, missed {}; seq gaps {}; sockets ended {}; messages {}",
        expected_all,
        missed,
        seen.gaps.load(Ordering::Relaxed),
        seen.ended.load(Ordering::Relaxed),
        seen.messages.load(Ordering::Relaxed) - messages0
    );
    for (m, row) in rss.lock().unwrap().iter().enumerate() {
        let kib: Vec<String> = row.iter().map(|k| format!("{} MiB", k / 1024)).collect();
        println!("RSS at minute {m}: {}", kib.join(", "));
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(opts()));
}
