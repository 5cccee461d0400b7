//! hallcast: a real-time call-number broadcast server for government
//! service halls (政务服务大厅).
//!
//! Windows publish calls over HTTP; hallcast journals them and fans them out
//! over WebSockets to lobby screens and citizens' phones.
//!
//! # Layout
//!
//! - [`queue`]: the pure domain — halls, tickets, windows, call rules.
//! - [`config`]: config file → validated hall specs; [`demo`] is built in.
//! - [`store`]: durable journal (SQLite; PostgreSQL for a cluster) with a
//!   group-committing writer.
//! - [`engine`]: runs commands against the domain, journals them, publishes.
//! - [`bus`]: carries committed batches to the subscribers (the hub on
//!   one node); [`cluster`]: the bus between the nodes of a cluster.
//! - [`hub`]: topic fan-out with per-floor rings for catch-up.
//! - [`wire`]: the contract's shapes — every JSON body and message, the
//!   error body, the HTTP reply; [`api`] and [`gateway`] build on it.
//! - [`gateway`]: WebSocket and server-sent event channels.
//! - [`api`]: HTTP routes.
//! - [`listener`]: the accept loop, and the socket hyper serves (bounded).
//! - [`limits`]: what one caller may do (rates, streams, connections).
//! - [`notify`]: messages to citizens' phones and their delivery.
//! - [`report`]: statistics, the export, the public ratings summary.
//! - [`metrics`]: the Prometheus text of `GET /metrics`.
//! - [`seal`]: what the nodes say on the bus, sealed with their secret.
//! - [`announcer`]: spoken announcements.
//! - [`pages`]: the screens, phone page, console and kiosk (from `displays/`).
//! - [`cli`]: the command line; [`server`]: wiring and shutdown order;
//!   [`admin`]: `migrate` and `import`.
#![forbid(unsafe_code)]

pub mod admin;
pub mod announcer;
pub mod api;
pub mod bus;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod engine;
pub mod gateway;
pub mod hub;
pub mod limits;
pub mod listener;
pub mod metrics;
pub mod notify;
pub mod pages;
pub mod queue;
pub mod report;
pub mod seal;
pub mod server;
pub mod store;
pub mod wire;

/// The built-in demo hall: a complete example config.
pub mod demo {
    /// The demo hall's config text.
    pub const CONFIG: &str = include_str!("demo.toml");

    /// The demo hall, parsed (for unit tests).
    #[cfg(test)]
    pub(crate) fn spec() -> std::sync::Arc<crate::queue::HallSpec> {
        crate::config::parse("demo", CONFIG).unwrap().halls[0].clone()
    }
}

use std::future::Future;

/// Why `run` failed; the binary maps it to an exit code.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The config file breaks a rule (exit code 2).
    #[error("{0}")]
    Config(#[from] config::ConfigError),
    /// Anything else (exit code 1).
    #[error("{0:#}")]
    Other(#[from] anyhow::Error),
}

/// Loads the config the arguments name and serves it until `shutdown`.
pub async fn run(
    args: cli::Args,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let (mut config, demo) = match &args.config {
        Some(path) => (config::load(path)?, false),
        None => (config::parse("<built-in demo hall>", demo::CONFIG)?, true),
    };
    if let Some(l) = args.listen {
        config.listen = l;
    }
    if let Some(d) = args.data_dir {
        config.data_dir = d;
    }
    let source = match &args.config {
        Some(path) => path.display().to_string(),
        None => "<built-in demo hall>".to_string(),
    };
    let from_args = args.store.is_some()
        || args.bus.is_some()
        || args.cluster.is_some()
        || args.cluster_secret_file.is_some()
        || args.bus_creds.is_some();
    config.store = args.store.or(config.store);
    config.bus = args.bus.or(config.bus);
    config.cluster = args.cluster.or(config.cluster);
    config.bus_creds = args.bus_creds.or(config.bus_creds);
    if let Some(file) = &args.cluster_secret_file {
        config.cluster_secret = Some(config::read_secret_file(file)?);
    }
    let source = if from_args {
        format!("{source} and the command line")
    } else {
        source
    };
    config.check_cluster(&source)?;
    server::serve(config, demo, shutdown).await?;
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received");
}
