//! A year of history: statistics and the export over 365 days × 2,000
//! tickets, and `/metrics` with 10,000 screens connected (§11).
//!
//! Writes the year through the store's own commit path (the SQLite
//! backend, batches of a day), starts the release server on it, and
//! times the answers over HTTP:
//!
//!     cargo bench --bench history                # 365 days × 2,000
//!     cargo bench --bench history -- 30 2000     # a month only
//!
//! Figures: p50/p99 of stats for a day, a month and the year (20 tries
//! each, after a first one, shown apart, that warms the page cache and
//! cuts the settled days' digests, unless the server's own warm-up five
//! seconds after its start did); the CSV export of a month in
//! MB/s; the scrape time of /metrics, idle and with 10,000 WebSockets.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{Days, NaiveDate, TimeZone, Utc};
use hallcast::queue::{Channel, HallSpec, Priority, Rating, Status, Ticket};
use hallcast::store::{Backend, Batch, Sqlite};
use hdrhistogram::Histogram;

mod common;

const ADMIN: &str = "Bearer demo-admin-token-0000";

/// A small deterministic generator (xorshift): the same year every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Writes `days` days of `per_day` finished tickets, ending yesterday.
fn fill(spec: &Arc<HallSpec>, dir: &std::path::Path, days: u64, per_day: u64) -> NaiveDate {
    let mut store = Sqlite::open(dir).expect("open the store");
    let tz = spec.timezone;
    let today = Utc::now().with_timezone(&tz).date_naive();
    let first = today - Days::new(days);
    let windows_of: Vec<Vec<usize>> = (0..spec.services.len())
        .map(|s| {
            (0..spec.windows.len())
                .filter(|&w| spec.windows[w].services.contains(&s))
                .collect()
        })
        .collect();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut id = 0u64;
    let started = Instant::now();
    for d in 0..days {
        let day = first + Days::new(d);
        let opening = tz
            .from_local_datetime(&day.and_hms_opt(9, 0, 0).unwrap())
            .earliest()
            .unwrap()
            .with_timezone(&Utc);
        let mut counters = vec![0u32; spec.services.len()];
        let mut batch = Batch::new(spec.clone(), 0);
        for i in 0..per_day {
            id += 1;
            let service = rng.below(spec.services.len() as u64) as usize;
            counters[service] += 1;
            // Spread over the day's eight hours, waits up to an hour,
            // services of one to twenty minutes.
            let created = opening + chrono::Duration::seconds((i * 8 * 3600 / per_day) as i64);
            let roll = rng.below(100);
            let status = match roll {
                0..=84 => Status::Done,
                85..=89 => Status::NoShow,
                90..=94 => Status::Cancelled,
                _ => Status::Expired,
            };
            let called = matches!(status, Status::Done | Status::NoShow)
                .then(|| created + chrono::Duration::seconds(rng.below(3600) as i64));
            let started_at = called
                .filter(|_| status == Status::Done)
                .map(|c| c + chrono::Duration::seconds(rng.below(120) as i64));
            let finished = match started_at {
                Some(s) => s + chrono::Duration::seconds(60 + rng.below(1140) as i64),
                None => called.unwrap_or(created) + chrono::Duration::seconds(300),
            };
            let windows = &windows_of[service];
            let window = called.map(|_| windows[rng.below(windows.len() as u64) as usize]);
            let rating = (status == Status::Done && rng.below(10) < 3).then(|| Rating {
                level: [5, 5, 5, 4, 4, 3, 2, 1][rng.below(8) as usize],
                comment: None,
                at: finished + chrono::Duration::seconds(30),
                source: hallcast::queue::rating::RatingSource::Phone,
            });
            batch.tickets.push(Ticket {
                id,
                token: format!("bench-{id}"),
                number: format!("{}{:03}", spec.services[service].prefix, counters[service]),
                day,
                service,
                issued_service: service,
                priority: if rng.below(20) == 0 {
                    Priority::Green
                } else {
                    Priority::Normal
                },
                channel: Channel::Kiosk,
                status,
                window,
                recall: 0,
                line_pos: id,
                created_at: created,
                called_at: called,
                first_called_at: called,
                started_at,
                finished_at: Some(finished),
                last_call: None,
                notify_phone: None,
                slot: None,
                reminded: true,
                rating,
            });
        }
        store.commit(&[&batch]).expect("commit a day");
    }
    eprintln!(
        "wrote {days} days × {per_day} tickets ({id}) in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    first
}

/// `tries` timed answers after a first one (returned apart, in ms: it
/// warms the page cache and cuts the settled days' digests).
async fn timed(http: &reqwest::Client, url: &str, tries: usize) -> (Histogram<u64>, usize, f64) {
    let mut h = Histogram::<u64>::new(3).unwrap();
    let mut bytes = 0;
    let mut first = 0.0;
    for i in 0..=tries {
        let t = Instant::now();
        let r = http
            .get(url)
            .header("authorization", ADMIN)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{url}: {}", r.status());
        bytes = r.bytes().await.unwrap().len();
        if i > 0 {
            h.record(t.elapsed().as_micros() as u64).unwrap();
        } else {
            first = t.elapsed().as_secs_f64() * 1000.0;
        }
    }
    (h, bytes, first)
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

#[tokio::main]
async fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let days = args.first().copied().unwrap_or(365);
    let per_day = args.get(1).copied().unwrap_or(2000);
    let spec = hallcast::config::parse("demo", hallcast::demo::CONFIG)
        .unwrap()
        .halls[0]
        .clone();
    let dir = common::bench_dir();
    let first = fill(&spec, &dir.path().join("data"), days, per_day);
    let last = first + Days::new(days - 1);
    let cache = dir.path().join("data").join("stats-cache.db");
    let server = common::start_server_in(std::env::var("HALLCAST_TASKSET").ok().as_deref(), dir);
    let http = reqwest::Client::new();
    let stats = |from: NaiveDate, to: NaiveDate| {
        format!(
            "{}/api/v1/halls/demo/stats?from={from}&to={to}",
            server.base
        )
    };
    println!("stats over {per_day} tickets a day (20 tries each, ms):");
    let month_from = last - Days::new(days.min(30) - 1);
    for (name, from) in [("day", last), ("month", month_from), ("year", first)] {
        let (h, bytes, first) = timed(&http, &stats(from, last), 20).await;
        println!(
            "  {name:<5} {from}..{last}: first {first:.1}  p50 {:.1}  p99 {:.1}  max {:.1}  ({bytes} B)",
            ms(&h, 0.5),
            ms(&h, 0.99),
            h.max() as f64 / 1000.0
        );
    }
    let cache_bytes = ["", "-wal"]
        .iter()
        .filter_map(|side| std::fs::metadata(format!("{}{side}", cache.display())).ok())
        .map(|m| m.len())
        .sum::<u64>();
    println!(
        "settled days' digests: {:.1} MB on disk",
        cache_bytes as f64 / 1e6
    );
    let csv = format!(
        "{}/api/v1/halls/demo/stats.csv?from={month_from}&to={last}",
        server.base
    );
    let (h, bytes, _) = timed(&http, &csv, 5).await;
    let secs = h.value_at_quantile(0.5) as f64 / 1e6;
    println!(
        "csv of a month: {:.1} MB in {:.0} ms (p50 of 5): {:.1} MB/s",
        bytes as f64 / 1e6,
        secs * 1000.0,
        bytes as f64 / 1e6 / secs
    );

    let metrics = format!("{}/metrics", server.base);
    let (h, _, _) = timed(&http, &metrics, 50).await;
    println!(
        "/metrics idle: p50 {:.2} ms  p99 {:.2} ms",
        ms(&h, 0.5),
        ms(&h, 0.99)
    );
    let screens = std::env::var("HALLCAST_SCREENS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000usize);
    let ws = format!("ws://{}/ws/v1/halls/demo/floors/3", server.addr);
    let mut open = Vec::with_capacity(screens);
    let t = Instant::now();
    while open.len() < screens {
        let batch: Vec<_> = (0..200.min(screens - open.len()))
            .map(|_| tokio_tungstenite::connect_async(ws.clone()))
            .collect();
        for r in futures_util::future::join_all(batch).await {
            open.push(r.expect("connect a screen").0);
        }
    }
    println!(
        "{screens} screens connected in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (h, bytes, _) = timed(&http, &metrics, 50).await;
    let body = http
        .get(&metrics)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = body
        .lines()
        .find(|l| l.starts_with("hallcast_connections{channel=\"floor\"}"))
        .unwrap_or("");
    println!(
        "/metrics at {screens} connections: p50 {:.2} ms  p99 {:.2} ms  ({bytes} B; {line})",
        ms(&h, 0.5),
        ms(&h, 0.99)
    );
    drop(open);
}
