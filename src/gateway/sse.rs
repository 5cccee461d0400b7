//! Server-sent events (contract §12): the floor, hall and ticket channels
//! for networks and browsers where a WebSocket cannot connect. The same
//! messages, order, snapshot and resume rules as the WebSocket channels:
//! the subscriber starts as a WebSocket one does ([`channel::subscribe`]),
//! each message is one event (`id: {seq}` on floors and halls), and
//! `Last-Event-ID` (what a browser's `EventSource` sends when it
//! reconnects) or `?after=` resumes.
//!
//! SSE is the fallback, not the fast path: the connection's task turns each
//! delivered batch into events, and the response body takes them as the
//! client reads (a bounded channel), so a client that stops reading holds
//! a page of its catch-up and at most [`LIVE_QUEUE`] shared batches, then
//! is dropped as slow and resumes from its last event id.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use warp::http::HeaderMap;
use warp::sse::Event;
use warp::{Filter, Reply};

use super::channel::{self, Channel, Pager};
use crate::engine::Engine;
use crate::hub::{Closed, Frames, Member, MemberId, SubscriberGroup};
use crate::limits::Limits;
use crate::listener::PeerAddr;
use crate::wire::ApiError;

/// Live batches that may wait for a client that is still catching up or
/// reading slowly; past it the stream ends and the client resumes.
pub const LIVE_QUEUE: usize = 1024;

/// Events handed to the response body ahead of the client's reading.
const OUT_QUEUE: usize = 64;

/// One SSE client as the topics see it: a queue of shared batches.
struct Sink {
    /// Taken (and so the queue closed) when the subscriber is closed.
    tx: Mutex<Option<mpsc::Sender<Arc<Frames>>>>,
    closed: AtomicBool,
}

impl Sink {
    fn end(&self) {
        self.closed.store(true, Ordering::Release);
        self.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
    }
}

impl SubscriberGroup for Sink {
    fn deliver(&self, _: MemberId, batch: &Arc<Frames>) -> bool {
        if self.closed.load(Ordering::Acquire) {
            return false;
        }
        let sent = match &*self.tx.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(tx) => match tx.try_send(batch.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    crate::metrics::slow_close();
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            },
            None => false,
        };
        if !sent {
            // Full (too far behind) or gone: either way it resumes.
            self.end();
        }
        sent
    }

    fn close(&self, _: MemberId, _: Closed) {
        self.end();
    }

    fn is_closed(&self, _: MemberId) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

fn error(e: ApiError) -> warp::reply::Response {
    super::error(e).into_response()
}

/// `GET /sse/v1/…` routes. Every stream ends when `stop` is cancelled (the
/// server is shutting down), so the HTTP shutdown does not wait for them.
/// A comment line every `keep_alive` (the WebSocket's ping period, at most
/// the contract's 30 s) keeps proxies from closing a quiet stream.
pub fn routes(
    engine: Arc<Engine>,
    limits: Arc<Limits>,
    stop: CancellationToken,
    keep_alive: Duration,
) -> impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection> + Clone {
    warp::path("sse")
        .and(warp::path("v1"))
        .and(warp::get())
        .and(warp::path::tail())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::header::headers_cloned())
        .and(warp::ext::optional::<PeerAddr>())
        .map(
            move |tail: warp::path::Tail,
                  query: String,
                  headers: HeaderMap,
                  peer: Option<PeerAddr>| {
                let segs: Vec<&str> = tail.as_str().split('/').filter(|s| !s.is_empty()).collect();
                let ch = match Channel::resolve(&engine, &segs) {
                    Ok(ch) => ch,
                    Err(m) => return error(ApiError::not_found(m)),
                };
                let after = match resume_point(&query, &headers) {
                    Ok(a) => a,
                    Err(m) => return error(ApiError::bad_request(m)),
                };
                let guard = match super::stream_slot(&limits, peer, &headers, false) {
                    Ok(g) => g,
                    Err(r) => return r.into_response(),
                };
                let (out, events) = mpsc::channel::<Event>(OUT_QUEUE);
                let engine = engine.clone();
                let stop = stop.clone();
                let kind = ch.kind();
                tokio::spawn(async move {
                    let _guard = guard;
                    let _counted = crate::metrics::Connection::open(kind);
                    tokio::select! {
                        () = feed(&engine, ch, after, &out) => {}
                        () = stop.cancelled() => {}
                        () = out.closed() => {}
                    }
                });
                let stream = futures_util::stream::unfold(events, |mut rx| async move {
                    rx.recv().await.map(|e| (Ok::<_, Infallible>(e), rx))
                });
                let body = warp::sse::keep_alive().interval(keep_alive).stream(stream);
                let mut r = warp::sse::reply(body).into_response();
                // Proxies must pass each event on at once.
                r.headers_mut()
                    .insert("cache-control", "no-store".parse().expect("a header value"));
                r.headers_mut()
                    .insert("x-accel-buffering", "no".parse().expect("a header value"));
                r
            },
        )
}

/// `?after=` or, from a reconnecting `EventSource`, `Last-Event-ID`.
fn resume_point(query: &str, headers: &HeaderMap) -> Result<Option<u64>, String> {
    if let Some(a) = super::parse_after(query)? {
        return Ok(Some(a));
    }
    match headers
        .get("last-event-id")
        .map(|v| v.to_str().unwrap_or(""))
    {
        None => Ok(None),
        Some("") => Ok(None),
        Some(v) => v
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| format!("Last-Event-ID {v} is not a sequence number")),
    }
}

/// Subscribes and sends: the catch-up (a page at a time, as the client
/// reads), then every live message it does not cover, until the client
/// goes or falls too far behind.
async fn feed(engine: &Arc<Engine>, ch: Channel, after: Option<u64>, out: &mpsc::Sender<Event>) {
    let (tx, live) = mpsc::channel(LIVE_QUEUE);
    let sink = Arc::new(Sink {
        tx: Mutex::new(Some(tx)),
        closed: AtomicBool::new(false),
    });
    let member = Member::new(sink.clone(), MemberId::default());
    send(engine, &ch, after, member, live, out).await;
    // However it ended (the client went, the history it needs is gone, or
    // the topic closed it), the topics drop it at their next delivery.
    sink.end();
}

/// The events of one subscription, until one cannot be sent (`None`).
async fn send(
    engine: &Arc<Engine>,
    ch: &Channel,
    after: Option<u64>,
    member: Member,
    mut live: mpsc::Receiver<Arc<Frames>>,
    out: &mpsc::Sender<Event>,
) -> Option<()> {
    // Ticket messages carry the hall seq, which is no resume point.
    let ids = !matches!(ch, Channel::Ticket { .. });
    let event = |seq: u64, text: &[u8], first: bool| {
        let e = Event::default().data(String::from_utf8_lossy(text));
        // A9: every message of a floor or hall has its id, the snapshot
        // too (its seq, 0 on a channel that has had no event yet: a
        // resume from 0 replays everything). A live message of seq 0 is
        // no event of the channel's.
        if ids && (seq > 0 || first) {
            e.id(seq.to_string())
        } else {
            e
        }
    };
    let start = channel::subscribe(engine, ch, after, member).await?;
    let skip = start.skip_through;
    for (seq, p) in &start.first {
        out.send(event(*seq, p.as_bytes(), true)).await.ok()?;
    }
    let pager = Pager::new(engine, ch);
    let mut rest = start.rest;
    while let Some((next, through)) = rest {
        // The history it needs is gone: end; it resumes with a snapshot.
        let page = pager.as_ref()?.page(next, through).await?;
        if page.first().is_none_or(|(s, _)| *s != next) {
            return None;
        }
        let last = page.last().map_or(next, |(s, _)| *s);
        for (seq, p) in &page {
            out.send(event(*seq, p.as_bytes(), false)).await.ok()?;
        }
        rest = (last < through).then_some((last + 1, through));
    }
    while let Some(batch) = live.recv().await {
        for (seq, text) in batch.messages() {
            if seq == 0 || seq > skip {
                out.send(event(seq, text, false)).await.ok()?;
            }
        }
    }
    None
}
