//! Accepts HTTP connections and serves them with hyper, the routes being
//! warp filters.
//!
//! warp's own `serve` wraps every connection in a private type (to sniff
//! for HTTP/2), so an upgraded WebSocket could not be taken back as the
//! `TcpStream` it is. The fan-out writes to that socket from its own
//! thread, so we accept here and hand hyper the plain socket: HTTP/1.1
//! with upgrades, the same graceful shutdown warp does.

use std::future::Future;
use std::time::Duration;

use hyper::body::{Body, Incoming};
use hyper::service::Service;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A client must send a whole request head within this long of connecting
/// (or, on a kept-alive connection, of starting the next request), or the
/// connection is closed: half-sent requests cannot pile up open sockets.
/// Kiosks and phones send a head in one packet; ten seconds is generous
/// even on a poor mobile link.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// On shutdown, requests in flight get this long to finish (contract §13);
/// then their connections are dropped and the server goes on stopping.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The address a connection came from, put into every request's
/// extensions for the rate limits (hyper serves the plain socket here, so
/// warp's own `addr::remote()` has nothing to report).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerAddr(pub std::net::SocketAddr);

/// After an accept error other than a refused connection (most likely the
/// file-descriptor limit), wait this long: connections closing meanwhile
/// free descriptors, and the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves `service` (warp's routes, as `TowerToHyperService::new(
/// warp::service(routes))`) until `shutdown` resolves, then stops accepting
/// and waits for in-flight HTTP requests. Upgraded connections are no
/// longer HTTP and are not waited for here.
pub async fn serve<S, B>(listener: TcpListener, service: S, shutdown: impl Future<Output = ()>)
where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    // hyper-util's GracefulShutdown does not take HTTP/1 connections with
    // upgrades, so the same thing by hand: on shutdown every connection
    // finishes its request in flight and closes.
    let stopping = CancellationToken::new();
    let conns = TaskTracker::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot accept a connection; retrying");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let inner = service.clone();
        let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
            req.extensions_mut().insert(PeerAddr(addr));
            inner.call(req)
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        let stopping = stopping.clone();
        conns.spawn(async move {
            let mut conn = std::pin::pin!(conn);
            let ended = tokio::select! {
                ended = conn.as_mut() => ended,
                () = stopping.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = ended {
                tracing::debug!(error = %e, "HTTP connection ended with an error");
            }
        });
    }
    drop(listener);
    stopping.cancel();
    conns.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, conns.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            open = conns.len(),
            "some HTTP requests did not finish within the shutdown grace; dropping them"
        );
    }
}

fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    )
}
