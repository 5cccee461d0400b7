//! Durable commands per second against the real server.
//!
//! Starts the release `hallcast` binary on the demo hall (data dir on the
//! real disk, so every answer waited for an fsync), then runs N concurrent
//! clients for a few seconds each. A client loops: issue a ticket at the
//! kiosk, call it at "its" window (admin token). Both are durable commands.
//!
//!     cargo bench --bench commands                 # 1, 16, 64 clients
//!     cargo bench --bench commands -- 64 10        # 64 clients, 10 s
//!
//! Pin the server to core 0 and the clients to core 1 by running this under
//! `taskset -c 1` and setting HALLCAST_TASKSET=0.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

mod common;

const KIOSK: &str = "Bearer demo-kiosk-lobby-1-token";
const ADMIN: &str = "Bearer demo-admin-token-0000";

async fn run(clients: usize, secs: u64) {
    let server = common::start_server(std::env::var("HALLCAST_TASKSET").ok().as_deref());
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()
        .unwrap();
    let base = Arc::new(server.base.clone());
    let deadline = Instant::now() + Duration::from_secs(secs);
    let tasks: Vec<_> = (0..clients)
        .map(|i| {
            let http = http.clone();
            let base = base.clone();
            tokio::spawn(async move {
                let mut h = Histogram::<u64>::new(3).unwrap();
                let window = format!("3-{:02}", i % 25 + 1);
                let issue_url = format!("{base}/api/v1/halls/demo/tickets");
                let call_url = format!("{base}/api/v1/halls/demo/windows/{window}/call");
                while Instant::now() < deadline {
                    for (url, auth, body) in [
                        (&issue_url, KIOSK, r#"{"service":"business"}"#),
                        (&call_url, ADMIN, "{}"),
                    ] {
                        let t = Instant::now();
                        let r = http
                            .post(url)
                            .header("authorization", auth)
                            .body(body)
                            .send()
                            .await
                            .expect("request");
                        let status = r.status().as_u16();
                        let _ = r.bytes().await;
                        assert!(matches!(status, 200 | 201 | 204), "status {status}");
                        h.record(t.elapsed().as_micros() as u64).unwrap();
                    }
                }
                h
            })
        })
        .collect();
    let start = Instant::now();
    let mut all = Histogram::<u64>::new(3).unwrap();
    for t in tasks {
        all.add(t.await.unwrap()).unwrap();
    }
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "{clients:>3} clients: {:>7.0} durable commands/s  latency p50 {:>6.2} ms  p99 {:>6.2} ms  p99.9 {:>6.2} ms  max {:>6.2} ms  ({} commands)",
        all.len() as f64 / elapsed,
        all.value_at_quantile(0.50) as f64 / 1000.0,
        all.value_at_quantile(0.99) as f64 / 1000.0,
        all.value_at_quantile(0.999) as f64 / 1000.0,
        all.max() as f64 / 1000.0,
        all.len()
    );
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let secs: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(5);
    let counts: Vec<usize> = match args.first().and_then(|s| s.parse().ok()) {
        Some(n) => vec![n],
        None => vec![1, 16, 64],
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    for n in counts {
        rt.block_on(run(n, secs));
    }
}
