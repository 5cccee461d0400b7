//! Wiring: builds the parts, serves, and owns the shutdown order.
//!
//! Shutdown order: stop accepting and finish in-flight HTTP requests (warp's
//! graceful shutdown); close every WebSocket with "going away"; let the
//! writer commit what is queued; exit.

use std::future::Future;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use warp::Filter;

use crate::announcer::Announcer;
use crate::api::{self, Api};
use crate::config::Config;
use crate::engine::Engine;
use crate::hub::Hub;
use crate::store::{Sqlite, Writer};

/// How often expired idempotency keys and idle topics are dropped. Keys
/// live 24 h; ten minutes of slack costs nothing.
const MAINTENANCE_EVERY: Duration = Duration::from_secs(600);

/// Serves `config` until `shutdown` resolves. `demo` prints the demo hall's
/// tokens for a newcomer.
pub async fn serve(
    config: Config,
    demo: bool,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let dir = &config.data_dir;
    // Two connections: one loads (and later reads history for catch-up),
    // the other belongs to the writer thread.
    let mut reader = Sqlite::open(dir)?;
    let (writer, writer_handle) = Writer::start(Box::new(Sqlite::open(dir)?));
    let hub = Arc::new(Hub::new(config.halls.iter().map(|h| &**h)));
    let announcer = Arc::new(Announcer::default());
    let engine = Arc::new(Engine::load(
        &config.halls,
        &mut reader,
        writer_handle,
        hub.clone(),
        announcer,
        Utc::now(),
    )?);

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {}; is another server using it? Choose another with --listen",
                config.listen
            )
        })?;
    let addr = listener.local_addr()?;
    let api = Arc::new(Api {
        engine: engine.clone(),
        public_url: config.public_url(addr),
    });
    let routes = api::routes(api).with(warp::log::custom(|info| {
        tracing::trace!(
            status = info.status().as_u16(),
            elapsed_us = info.elapsed().as_micros() as u64,
            "http"
        );
    }));

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

    warp::serve(routes)
        .incoming(listener)
        .graceful(shutdown)
        .run()
        .await;
    tracing::info!("stopped accepting; closing channels and flushing the store");
    maintenance.abort();
    hub.close_all();
    engine.stop_writer().await;
    tokio::task::spawn_blocking(move || writer.join())
        .await
        .context("waiting for the store writer")?;
    tracing::info!("stopped");
    Ok(())
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
