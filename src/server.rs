//! Wiring: builds the parts, serves, and owns the shutdown order.
//!
//! Shutdown order: stop accepting and finish in-flight HTTP requests
//! (hyper's graceful shutdown, see `listener`); close every WebSocket with "going away"; let the
//! writer commit what is queued; exit.

use std::future::Future;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use tokio_util::task::TaskTracker;
use warp::Filter;

use crate::announcer::clips::ClipBank;
use crate::announcer::Announcer;
use crate::api::{self, Api};
use crate::cluster::{self, ClusterBus};
use crate::config::Config;
use crate::engine::Engine;
use crate::gateway;
use crate::hub::Hub;
use crate::limits::Limits;
use crate::listener;
use crate::pages;
use crate::store::{Backend, Digests, Postgres, Sqlite, Writer};

/// How often expired idempotency keys and idle topics are dropped. Keys
/// live 24 h; ten minutes of slack costs nothing.
const MAINTENANCE_EVERY: Duration = Duration::from_secs(600);

/// How often the wall clock is read for day changes (contract §7: a
/// stepped clock is noticed within 5 s). The first tick, at start, ends
/// the tickets of earlier days that a stopped server left waiting.
const DAY_CHECK_EVERY: Duration = Duration::from_secs(1);

/// How long shutdown waits for WebSockets to finish their closing
/// handshake; a peer that stopped reading must not hold the exit.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// When the settled days' statistics are first cut after a start, and
/// how often again (`Engine::warm_digests`).
const DIGESTS_FIRST: Duration = Duration::from_secs(5);
const DIGESTS_EVERY: Duration = Duration::from_secs(3600);

/// Serves `config` until `shutdown` resolves. `demo` prints the demo hall's
/// tokens for a newcomer.
pub async fn serve(
    config: Config,
    demo: bool,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let dir = &config.data_dir;
    crate::metrics::install();
    crate::metrics::register_halls(&config.halls);
    // Three connections: one loads (and later reads history for
    // catch-up), one belongs to the writer thread, one reads reports.
    // PostgreSQL's client blocks: the opening and the first load run off
    // the async threads' turn.
    let stores = tokio::task::block_in_place(|| Stores::open(&config))?;
    let (writer, writer_handle) = Writer::start(stores.writer);
    let hub = Arc::new(Hub::new(config.halls.iter().map(|h| &**h)));
    let bank = match &config.sounds_dir {
        Some(dir) => ClipBank::from_dir(dir)?,
        None => ClipBank::built_in()?,
    };
    let announcer = Announcer::new(bank, config.halls.clone());
    #[cfg(feature = "playback")]
    let announcer = if config.playback {
        announcer.with_playback().map_err(anyhow::Error::msg)?
    } else {
        announcer
    };
    #[cfg(not(feature = "playback"))]
    if config.playback {
        anyhow::bail!("playback = true needs hallcast built with --features playback");
    }
    let announcer = Arc::new(announcer);
    let engine = tokio::task::block_in_place(|| {
        Engine::load(
            &config.halls,
            stores.reader,
            writer_handle,
            hub.clone(),
            announcer,
            Utc::now(),
        )
    })?
    .with_reports(stores.reports)
    .with_digests(Digests::open(dir)?);
    let engine = match &config.store {
        None => Arc::new(engine),
        Some(url) => join_cluster(&config, url, engine, &hub).await?,
    };

    let listener = listen(config.listen).with_context(|| {
        format!(
            "cannot listen on {}; is another server using it? Choose another with --listen",
            config.listen
        )
    })?;
    let addr = listener.local_addr()?;
    let limits = Arc::new(Limits::new(config.limits.clone()));
    let api = Arc::new(Api::new(
        engine.clone(),
        limits.clone(),
        config.public_url(addr),
    ));
    let tasks = TaskTracker::new();
    let peers = gateway::peer::Peers::new();
    tokio::spawn(gateway::pinger::run(
        Arc::downgrade(&peers),
        config.ping_every,
    ));
    // Server-sent event streams end when shutdown begins: the HTTP
    // shutdown waits for requests in flight, and a stream never finishes.
    let streams_stop = tokio_util::sync::CancellationToken::new();
    let sse = gateway::sse::routes(
        engine.clone(),
        limits.clone(),
        streams_stop.clone(),
        config.ping_every,
    );
    let routes = gateway::routes(engine.clone(), tasks.clone(), limits.clone(), peers)
        .or(api::routes(api.clone()))
        .unify()
        .map(warp::Reply::into_response);
    // The export streams its body; before the API, which answers every
    // other path under /api/v1.
    let routes = api::export_route(api)
        .or(routes)
        .unify()
        // Before the pages, which answer every other GET.
        .or(sse)
        .unify()
        .or(pages::routes(engine.clone()).map(warp::Reply::into_response))
        .unify()
        .or(warp::any().map(|| warp::Reply::into_response(not_found())))
        .unify()
        .with(warp::log::custom(|info| {
            tracing::trace!(
                status = info.status().as_u16(),
                elapsed_us = info.elapsed().as_micros() as u64,
                "http"
            );
        }));

    // Tickets of days that ended while the server was down end before
    // anyone can see them (contract §7, "also at start-up").
    engine.tick().await;

    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on http://{addr}")?;
        if demo {
            print_demo(&mut out, addr)?;
        }
        out.flush()?;
    }
    tracing::info!(%addr, data_dir = %dir.display(), halls = config.halls.len(), "serving");

    let maintenance = {
        let engine = engine.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(MAINTENANCE_EVERY);
            loop {
                tick.tick().await;
                engine.maintain(Utc::now());
            }
        })
    };

    let days = {
        let engine = engine.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(DAY_CHECK_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                engine.tick().await;
                crate::metrics::upkeep();
            }
        })
    };

    let digests = {
        let engine = engine.clone();
        tokio::spawn(async move {
            // Not in the start's first seconds, which belong to screens
            // reconnecting.
            tokio::time::sleep(DIGESTS_FIRST).await;
            let mut tick = tokio::time::interval(DIGESTS_EVERY);
            loop {
                tick.tick().await;
                engine.warm_digests().await;
            }
        })
    };

    let service = hyper_util::service::TowerToHyperService::new(warp::service(routes));
    // The outbox's deliveries (§9), until the writer stops.
    let outbox_stop = tokio_util::sync::CancellationToken::new();
    let outbox = tokio::spawn(crate::notify::worker::run(
        engine.clone(),
        outbox_stop.clone(),
    ));
    let shutdown = async move {
        shutdown.await;
        streams_stop.cancel();
    };
    listener::serve(listener, service, limits, shutdown).await;
    tracing::info!("stopped accepting; closing channels and flushing the store");
    maintenance.abort();
    days.abort();
    digests.abort();
    hub.close_all();
    tasks.close();
    if tokio::time::timeout(CLOSE_GRACE, tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            open = tasks.len(),
            "some WebSocket connections did not close in time"
        );
    }
    // Deliveries in flight finish and are recorded before the writer stops;
    // what is still pending is sent after the restart.
    outbox_stop.cancel();
    let _ = outbox.await;
    engine.stop_writer().await;
    tokio::task::spawn_blocking(move || writer.join())
        .await
        .context("waiting for the store writer")?;
    tracing::info!("stopped");
    Ok(())
}

/// The store's connections: SQLite in the data dir, or the cluster's
/// PostgreSQL (contract §14).
struct Stores {
    /// Loads, then reads history for catch-up (and, in a cluster,
    /// reloads a hall another node changed).
    reader: Box<dyn Backend>,
    /// The writer thread's.
    writer: Box<dyn Backend>,
    /// One per core (at most four): a year's statistics read their parts
    /// at once.
    reports: Vec<Box<dyn Backend>>,
}

impl Stores {
    fn open(config: &Config) -> anyhow::Result<Stores> {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
        let dir = &config.data_dir;
        let Some(url) = &config.store else {
            let mut reports: Vec<Box<dyn Backend>> = Vec::with_capacity(n);
            for _ in 0..n {
                reports.push(Box::new(Sqlite::open_reader(dir)?));
            }
            return Ok(Stores {
                reader: Box::new(Sqlite::open(dir)?),
                writer: Box::new(Sqlite::open_writer(dir)?),
                reports,
            });
        };
        // The data dir keeps only the statistics' cache here.
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the data dir {}", dir.display()))?;
        let mut client = crate::store::postgres::connect_waiting(url)?;
        crate::store::postgres::migrate(&mut client)?;
        let mut reports: Vec<Box<dyn Backend>> = Vec::with_capacity(n);
        for _ in 0..n {
            reports.push(Box::new(Postgres::lazy(url)?));
        }
        Ok(Stores {
            reader: Box::new(Postgres::connect(url)?),
            writer: Box::new(Postgres::connect(url)?),
            reports,
        })
    }
}

/// Makes the engine one node of the cluster on `url`: reloads of halls
/// other nodes changed, fenced batches, and the bus between the nodes
/// (NATS when `[server] bus` is set, and PostgreSQL's heads every second
/// in any case).
async fn join_cluster(
    config: &Config,
    url: &str,
    engine: Engine,
    hub: &Arc<Hub>,
) -> anyhow::Result<Arc<Engine>> {
    let name = config.cluster.as_deref().unwrap_or("hallcast");
    let wake = Arc::new(tokio::sync::Notify::new());
    let nats = match &config.bus {
        Some(bus) => Some(
            cluster::connect_nats(bus, config.bus_creds.as_deref(), wake.clone())
                .await
                .map_err(anyhow::Error::msg)?,
        ),
        None => None,
    };
    // Required with a bus (config checks it); without one nothing is said
    // on a bus, and a key of this process alone seals nothing anyone reads.
    let seal = crate::seal::Seal::new(
        &config
            .cluster_secret
            .clone()
            .unwrap_or_else(crate::engine::new_token),
    );
    let bus = ClusterBus::new(hub.clone(), name, &config.halls, nats.as_ref(), wake, seal);
    let engine = Arc::new(engine.clustered().with_bus(bus.clone()));
    bus.start(&engine, nats, Postgres::lazy(url)?, Postgres::lazy(url)?);
    tracing::info!(
        cluster = name,
        nats = config.bus.is_some(),
        "joined the cluster"
    );
    Ok(engine)
}

/// Kernel send buffer of every connection. Fixed rather than autotuned (up
/// to 4 MiB here): a stalled screen then backs up into its hub outbox within
/// a bounded number of bytes and is closed as slow, instead of parking
/// megabytes in the kernel per dead connection. 64 KiB carries a burst of
/// hundreds of events; the kernel doubles it for bookkeeping.
pub const SEND_BUFFER: u32 = 64 * 1024;

/// Connections waiting to be accepted: a reconnect storm of thousands of
/// screens must not see refused connections.
const BACKLOG: u32 = 4096;

/// Binds the listener. Accepted sockets inherit its send buffer and
/// TCP_NODELAY (calls are small and latency-bound; batching is ours).
fn listen(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_send_buffer_size(SEND_BUFFER)?;
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Anything no route takes (a POST to a page, say): the contract's error.
fn not_found() -> warp::http::Response<bytes::Bytes> {
    let r = crate::wire::ApiError::not_found("nothing is served here; see the contract").reply();
    warp::http::Response::builder()
        .status(r.status)
        .header("content-type", "application/json")
        .body(r.body)
        .expect("static response builds")
}

fn print_demo(out: &mut impl Write, addr: std::net::SocketAddr) -> std::io::Result<()> {
    let base = format!("http://{addr}");
    writeln!(
        out,
        "demo hall 'demo' — tokens (public, for trying hallcast only):"
    )?;
    writeln!(out, "  admin         demo-admin-token-0000")?;
    writeln!(out, "  kiosk         demo-kiosk-lobby-1-token")?;
    writeln!(
        out,
        "  window 3-01   demo-window-3-01-token   (every window: demo-window-<id>-token)"
    )?;
    writeln!(
        out,
        "pages: {base}/ (floor screens, entrance screen, kiosk, window consoles)"
    )?;
    writeln!(out, "take a number:")?;
    writeln!(
        out,
        "  curl -s -X POST {base}/api/v1/halls/demo/tickets -H 'Authorization: Bearer demo-kiosk-lobby-1-token' -d '{{\"service\":\"business\"}}'"
    )?;
    writeln!(out, "call it at window 3-01:")?;
    writeln!(
        out,
        "  curl -s -X POST {base}/api/v1/halls/demo/windows/3-01/call -H 'Authorization: Bearer demo-window-3-01-token' -d '{{}}'"
    )?;
    Ok(())
}
