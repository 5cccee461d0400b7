//! Accepts HTTP connections and serves them with hyper, the routes being
//! warp filters.
//!
//! warp's own `serve` wraps every connection in a private type (to sniff
//! for HTTP/2), so an upgraded WebSocket could not be taken back as the
//! `TcpStream` it is. The fan-out writes to that socket from its own
//! thread, so we accept here and hand hyper the plain socket: HTTP/1.1
//! with upgrades, the same graceful shutdown warp does.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Incoming};
use hyper::service::Service;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
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

/// A connection whose writes make no progress this long (the client takes
/// none of an answer or of an event stream) is closed and its resources
/// freed (contract v1.2 A7), as a WebSocket that does not read is.
pub const WRITE_STALL: Duration = Duration::from_secs(30);

/// A client's socket as hyper sees it: writes that stall for
/// [`WRITE_STALL`] fail (hyper then drops the connection, its answer or
/// SSE stream with it), and while it is open it counts against its
/// address (`connections_per_ip`). An upgrade to a WebSocket takes the
/// socket back out ([`Watched::into_stream`]); the stream's own guard
/// counts it from then on.
pub struct Watched {
    stream: TcpStream,
    /// Since the first write that found the socket full.
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
    _counted: Option<crate::limits::ConnectionGuard>,
}

impl Watched {
    /// The plain socket, for a WebSocket's fan-out.
    pub fn into_stream(self) -> TcpStream {
        self.stream
    }

    /// A write found the socket full: fails once that has lasted
    /// [`WRITE_STALL`] (the timer wakes the task to find out).
    fn stall(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let timer = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(WRITE_STALL)));
        if timer.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client took nothing for 30 s",
            )));
        }
        Poll::Pending
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stream).poll_write(cx, buf) {
            Poll::Pending => this.stall(cx),
            done => {
                this.stalled = None;
                done
            }
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stream).poll_write_vectored(cx, bufs) {
            Poll::Pending => this.stall(cx),
            done => {
                this.stalled = None;
                done
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// After an accept error other than a refused connection (most likely the
/// file-descriptor limit), wait this long: connections closing meanwhile
/// free descriptors, and the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves `service` (warp's routes, as `TowerToHyperService::new(
/// warp::service(routes))`) until `shutdown` resolves, then stops accepting
/// and waits for in-flight HTTP requests. Upgraded connections are no
/// longer HTTP and are not waited for here. A connection from an address
/// that has `connections_per_ip` open is closed at once.
pub async fn serve<S, B>(
    listener: TcpListener,
    service: S,
    limits: Arc<crate::limits::Limits>,
    shutdown: impl Future<Output = ()>,
) where
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
        let counted = match limits.open_connection(addr.ip()) {
            Ok(c) => c,
            Err(crate::limits::TooMany) => {
                // Closed unanswered: one client cannot take the
                // descriptors every screen needs.
                tracing::debug!(peer = %addr.ip(), "too many connections from this address; closed");
                drop(stream);
                continue;
            }
        };
        let stream = Watched {
            stream,
            stalled: None,
            _counted: counted,
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
