//! WebSocket channels (contract §4): floor, hall and ticket.
//!
//! The upgrade is answered by a warp route with our own `WebSocketConfig`;
//! the socket becomes a [`peer::Peer`] that the hub's fan-out writes to
//! directly, and a task per connection reads it and writes what queued.

pub mod channel;
pub mod connection;
pub mod inbound;
pub mod peer;
pub mod pinger;
pub mod sse;
pub mod upgrade;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio_util::task::TaskTracker;
use tracing::Instrument;
use warp::http::{HeaderMap, Response};
use warp::Filter;

use crate::engine::Engine;
use crate::limits::Limits;
use crate::listener::PeerAddr;
use crate::wire::ApiError;
use channel::Channel;
use peer::{Peer, Peers};

fn error(e: ApiError) -> Response<Bytes> {
    let r = e.reply();
    Response::builder()
        .status(r.status)
        .header("content-type", "application/json")
        .body(r.body)
        .expect("error response builds")
}

/// `GET /ws/v1/…` routes. Connection tasks are spawned on `tasks`, so the
/// server can wait for their close frames at shutdown.
pub fn routes(
    engine: Arc<Engine>,
    tasks: TaskTracker,
    limits: Arc<Limits>,
    peers: Arc<Peers>,
) -> impl Filter<Extract = (Response<Bytes>,), Error = warp::Rejection> + Clone {
    // Numbers connections in the logs.
    let next_conn = Arc::new(AtomicU64::new(1));
    warp::path("ws")
        .and(warp::path("v1"))
        .and(warp::get())
        .and(warp::path::tail())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::header::headers_cloned())
        .and(warp::ext::optional::<OnUpgrade>())
        .and(warp::ext::optional::<PeerAddr>())
        .map(
            move |tail: warp::path::Tail,
                  query: String,
                  headers: HeaderMap,
                  on_upgrade: Option<OnUpgrade>,
                  peer: Option<PeerAddr>| {
                let segs: Vec<&str> = tail.as_str().split('/').filter(|s| !s.is_empty()).collect();
                let ch = match Channel::resolve(&engine, &segs) {
                    Ok(ch) => ch,
                    Err(m) => return error(ApiError::not_found(m)),
                };
                let after = match parse_after(&query) {
                    Ok(a) => a,
                    Err(m) => return error(ApiError::bad_request(m)),
                };
                let accept = match upgrade::accept_key(&headers) {
                    Ok(k) => k,
                    Err(m) => return error(ApiError::bad_request(m)),
                };
                let Some(on_upgrade) = on_upgrade else {
                    return error(ApiError::bad_request(
                        "this connection cannot be upgraded (HTTP/1.1 is needed)",
                    ));
                };
                // Counted from before the upgrade until the task ends.
                let stream = match stream_slot(&limits, peer, &headers, true) {
                    Ok(g) => g,
                    Err(r) => return *r,
                };
                let id = next_conn.fetch_add(1, Ordering::Relaxed);
                let kind = ch.kind();
                let span = tracing::debug_span!("ws", conn = id, channel = kind);
                // The upgrade and the subscription, boxed: their futures
                // (a store read among them) are larger than all the rest,
                // and inline they would size the task of every idle
                // screen; boxed, the box is freed once they are done.
                let opening = Box::pin(open(engine.clone(), ch, after, on_upgrade, peers.clone()));
                tasks.spawn(
                    async move {
                        let _stream = stream;
                        let _counted = crate::metrics::Connection::open(kind);
                        let Some((peer, prefix, pager)) = opening.await else {
                            return;
                        };
                        // `prefix` is answered here and not kept.
                        let serving = connection::serve(peer, &prefix, pager);
                        drop(prefix);
                        serving.await;
                        tracing::debug!("closed");
                    }
                    .instrument(span),
                );
                upgrade::switching(&accept)
            },
        )
}

/// Takes the upgraded socket and subscribes it to `ch`: the peer, what
/// arrived past the handshake, and the pager of its catch-up.
async fn open(
    engine: Arc<Engine>,
    ch: Channel,
    after: Option<u64>,
    on_upgrade: OnUpgrade,
    peers: Arc<Peers>,
) -> Option<(Arc<Peer>, Bytes, Option<channel::Pager>)> {
    let upgraded = match on_upgrade.await {
        Ok(u) => u,
        Err(e) => {
            tracing::debug!(error = %e, "upgrade failed");
            return None;
        }
    };
    // `listener` gives hyper the plain TcpStream, so that is what the
    // upgrade hands back; the fan-out needs the socket itself to write to
    // it from its threads.
    let Ok(parts) = upgraded.downcast::<TokioIo<crate::listener::Watched>>() else {
        tracing::error!("upgraded connection is not a TCP socket");
        return None;
    };
    let peer = Peer::new(&peers, parts.io.into_inner().into_stream());
    // What hyper read past the handshake (usually nothing); copied and
    // dropped now, because it pins hyper's whole read buffer.
    let prefix = Bytes::copy_from_slice(&parts.read_buf);
    drop(parts.read_buf);
    let Some(start) = channel::subscribe(&engine, &ch, after, peer.member()).await else {
        peer.shutdown();
        return None;
    };
    tracing::debug!(after, "subscribed");
    peer.start(start);
    let pager = channel::Pager::new(&engine, &ch);
    Some((peer, prefix, pager))
}

/// Counts a stream (WebSocket or SSE) against its address's limit (§13),
/// or the 429 to answer instead.
pub(crate) fn stream_slot(
    limits: &Limits,
    peer: Option<PeerAddr>,
    headers: &HeaderMap,
    websocket: bool,
) -> Result<Option<crate::limits::StreamGuard>, Box<Response<Bytes>>> {
    let ip = limits.client_ip(peer.map(|p| p.0), headers);
    // A WebSocket's connection leaves HTTP (and its count there) at the
    // upgrade, so its stream counts it from here; an SSE stream stays an
    // HTTP connection, counted as one.
    let direct = peer.is_some_and(|p| Some(p.0.ip()) == ip);
    limits.open_stream(ip, websocket && direct).map_err(|wait| {
        let mut r = error(ApiError::rate_limited(
            "too many open streams from this address; close some first",
        ));
        wait.set_on(&mut r);
        Box::new(r)
    })
}

pub(crate) fn parse_after(query: &str) -> Result<Option<u64>, String> {
    for pair in query.split('&') {
        if let Some(v) = pair.strip_prefix("after=") {
            return v
                .parse()
                .map(Some)
                .map_err(|_| format!("after={v} is not a sequence number"));
        }
    }
    Ok(None)
}
