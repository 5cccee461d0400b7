//! Durable commands per second against the real server.
//!
//! Starts the release `hallcast` binary on the demo hall (data dir on the
//! real disk, so every answer waited for an fsync), then runs N concurrent
//! clients for a few seconds each. A client loops: issue a ticket at the
//! kiosk, call it at "its" window (admin token). Both are durable commands.
//!
//!     cargo bench --bench commands                 # 1, 16, 64 clients
//!     cargo bench --bench commands -- 64 10        # 64 clients, 10 s
//!     cargo bench --bench commands -- 64 10 --phones            # tickets with phones, no [halls.notify]
//!     cargo bench --bench commands -- 64 10 --phones --outbox   # the same, messages to a receiver
//!     cargo bench --bench commands -- 64 10 --outbox --stalled  # a receiver that never answers
//!
//! With `--outbox` every ticket has a phone and the hall a webhook: each
//! issue and call also writes an outbox message in its commit (§9), which
//! the server then delivers to a receiver in this process (hyper, 200 at
//! once, counting). `--phones` without it sends the same bodies to a hall
//! without `[halls.notify]`: the figure to compare with. With `--stalled`
//! the receiver takes connections and never answers, so the messages are
//! written but hardly sent: the cost of the outbox in the commit alone.
//!
//! Pin the server to core 0 and the clients to core 1 by running this under
//! `taskset -c 1` and setting HALLCAST_TASKSET=0.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

mod common;

const KIOSK: &str = "Bearer demo-kiosk-lobby-1-token";
const ADMIN: &str = "Bearer demo-admin-token-0000";

/// A webhook receiver that answers 200 at once and counts what it got
/// (or, `stalled`, holds every connection and never answers).
async fn receiver(stalled: bool) -> (String, Arc<AtomicU64>) {
    use hyper::service::service_fn;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let got = Arc::new(AtomicU64::new(0));
    let count = got.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            if stalled {
                tokio::spawn(async move {
                    let _held = stream;
                    std::future::pending::<()>().await
                });
                continue;
            }
            let count = count.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let count = count.clone();
                    async move {
                        use http_body_util::BodyExt;
                        let _ = req.into_body().collect().await;
                        count.fetch_add(1, Ordering::Relaxed);
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(
                            http_body_util::Empty::<bytes::Bytes>::new(),
                        ))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (url, got)
}

#[derive(Clone, Copy)]
struct Mode {
    /// Tickets carry a phone number.
    phones: bool,
    /// The hall has a webhook: messages are written and delivered.
    outbox: bool,
    /// The webhook never answers.
    stalled: bool,
}

async fn run(clients: usize, secs: u64, mode: Mode) {
    let cpus = std::env::var("HALLCAST_TASKSET").ok();
    let hook = if mode.outbox {
        Some(receiver(mode.stalled).await)
    } else {
        None
    };
    let server = match &hook {
        Some((url, _)) => common::start_server_with(cpus.as_deref(), common::bench_dir(), |c| {
            c.replacen(
                "  [[halls.floors]]",
                &format!(
                    "  [halls.notify]\n  webhook_url = \"{url}\"\n  secret = \"bench-secret-0123456789\"\n  remind_ahead = 0\n\n  [[halls.floors]]"
                ),
                1,
            )
        }),
        None => common::start_server(cpus.as_deref()),
    };
    let issue_body = if mode.phones {
        r#"{"service":"business","notify":{"phone":"13800000000"}}"#
    } else {
        r#"{"service":"business"}"#
    };
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
                    for (url, auth, body) in
                        [(&issue_url, KIOSK, issue_body), (&call_url, ADMIN, "{}")]
                    {
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
    let delivered = hook.as_ref().map(|(_, got)| got.load(Ordering::Relaxed));
    println!(
        "{clients:>3} clients{}: {:>7.0} durable commands/s  latency p50 {:>6.2} ms  p99 {:>6.2} ms  p99.9 {:>6.2} ms  max {:>6.2} ms  ({} commands)",
        match (mode.phones, mode.outbox) {
            (_, true) if mode.stalled => ", phones, outbox on, receiver stalled",
            (_, true) => ", phones, outbox on",
            (true, false) => ", phones, no outbox",
            _ => "",
        },
        all.len() as f64 / elapsed,
        all.value_at_quantile(0.50) as f64 / 1000.0,
        all.value_at_quantile(0.99) as f64 / 1000.0,
        all.value_at_quantile(0.999) as f64 / 1000.0,
        all.max() as f64 / 1000.0,
        all.len()
    );
    if let Some(n) = delivered {
        println!(
            "    outbox: {n} messages delivered while the commands ran ({:.0}/s)",
            n as f64 / elapsed
        );
    }
    if let (Some((_, got)), false) = (&hook, mode.stalled) {
        // The outbox runs below the commands' priority: what a full CPU
        // left behind is sent once the commands stop, as fast as the
        // server can when nothing competes. Done when nothing came for 2 s.
        let (stopped, from) = (Instant::now(), got.load(Ordering::Relaxed));
        let (mut last, mut last_at) = (from, stopped);
        while last_at.elapsed() < Duration::from_secs(2) {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let now = got.load(Ordering::Relaxed);
            if now != last {
                (last, last_at) = (now, Instant::now());
            }
        }
        let drained = (last_at - stopped).as_secs_f64();
        println!(
            "    outbox: then {} more in {drained:.2} s with the commands stopped ({:.0}/s); {last} in all",
            last - from,
            (last - from) as f64 / drained.max(1e-3)
        );
    }
}

fn main() {
    let flag = |f: &str| std::env::args().any(|a| a == f);
    let mode = Mode {
        phones: flag("--phones") || flag("--outbox"),
        outbox: flag("--outbox"),
        stalled: flag("--stalled"),
    };
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
        rt.block_on(run(n, secs, mode));
    }
}
