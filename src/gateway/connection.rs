//! One WebSocket connection's task. Deliveries do not pass through here
//! (the fan-out writes them to the socket, see [`super::peer`]), and nor
//! do pings (one timer pings every connection, see [`super::pinger`]); the
//! task writes what had to queue, reads the socket all the time (pongs,
//! pings, close: see [`super::inbound`]), and closes with a reason.
//!
//! The task is most of what an idle screen costs, so it keeps nothing
//! across an await beyond its peer, what it has read of a frame not yet
//! whole and the pager of its catch-up: reads go to a buffer on the
//! thread's stack, and it waits with a waker in the peer's slot, not a
//! future or a timer of its own.

use std::future::{poll_fn, Future};
use std::io;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::frame::Frame as WsFrame;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

use super::channel::Pager;
use super::inbound::{Frame, Inbound, Refusal};
use super::peer::Peer;
use crate::hub::Closed;

/// Pings a client may send per ping period before it is closed as a flood.
pub const MAX_CLIENT_PINGS: u32 = 60;

/// Close code for a subscriber that fell too far behind (private range).
pub const CLOSE_SLOW: u16 = 4008;

/// How long a closing connection may take to send its close frame and
/// hear the answer: a peer that stopped reading must not keep the task.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// The same for a connection closed as slow, whose kernel buffer is full
/// by definition: its close frame goes out only once it reads again. A
/// screen that froze for a while (a stuck tab, a suspended laptop) should
/// still learn why it was dropped and where to resume when it wakes; a
/// minute of that costs one full kernel send buffer per stalled socket,
/// and bounds what a dead one holds.
const SLOW_CLOSE_WAIT: Duration = Duration::from_secs(60);

/// Read from the socket at a time, into the stack of the thread running
/// the task: clients send only control frames, a few bytes each.
const READ_CHUNK: usize = 2048;

/// Reads per wake before the task lets the others run: a client that
/// floods pings is handled in turns, not in one long loop.
const READS_PER_WAKE: usize = 16;

/// How a connection ends.
enum End {
    /// The socket ended or failed: nothing more to say.
    Quiet,
    /// The client closed and its close was answered: send the answer.
    Answered,
    /// The server closes, with this code and reason.
    Close(CloseCode, String),
}

impl From<Refusal> for End {
    fn from(r: Refusal) -> End {
        End::Close(r.code, r.reason.to_string())
    }
}

/// A control frame of the server's, as bytes.
fn control(frame: WsFrame) -> Bytes {
    let mut v = Vec::with_capacity(frame.len());
    frame.format(&mut v).expect("a Vec takes any write");
    v.into()
}

/// The server's ping, carrying `token`: the pong must carry it back.
pub fn ping_frame(token: u64) -> Bytes {
    control(WsFrame::ping(token.to_be_bytes().to_vec()))
}

/// Serves one connection until either side ends it. The peer has been
/// started (its first messages are queued); `prefix` is what arrived past
/// the handshake, answered before the task is spawned so that it is not
/// kept; `pager` fetches the rest of its catch-up.
pub fn serve(peer: Arc<Peer>, prefix: &[u8], pager: Option<Pager>) -> impl Future<Output = ()> {
    let mut inbound = Inbound::default();
    let first = take(&peer, &mut inbound, &mut prefix.to_vec());
    async move {
        let end = match first {
            ControlFlow::Break(end) => end,
            ControlFlow::Continue(()) => run(&peer, &mut inbound, pager.as_ref()).await,
        };
        // Boxed: its timers are larger than the rest of the task, and
        // only a closing connection needs them.
        Box::pin(finish(&peer, inbound, end)).await;
        peer.shutdown();
    }
}

/// The connection's loop, until it ends.
async fn run(peer: &Peer, inbound: &mut Inbound, pager: Option<&Pager>) -> End {
    loop {
        // The page before is all with the kernel: fetch the next. Reading
        // the socket waits meanwhile (a store read of one page).
        if let Some((next, through)) = peer.wants_page() {
            // Boxed, as the opening is (see `gateway::routes`): a store
            // read is a large future, and inline it would size the task
            // for the whole life of the connection.
            let page = match pager {
                Some(p) => Box::pin(p.page(next, through)).await,
                None => None,
            };
            peer.add_page(page);
            continue;
        }
        if let Some(end) = poll_fn(|cx| look(peer, inbound, cx)).await {
            return end;
        }
    }
}

/// One look at the connection: how it ends, `None` when something moved
/// and the loop must look again, or pending until something does.
fn look(peer: &Peer, inbound: &mut Inbound, cx: &mut Context<'_>) -> Poll<Option<End>> {
    let (pending, closed) = peer.status();
    match closed {
        Closed::Open => {}
        Closed::Gone => return Poll::Ready(Some(End::Quiet)),
        Closed::Slow => {
            return Poll::Ready(Some(End::Close(
                CloseCode::Library(CLOSE_SLOW),
                format!(
                    "slow consumer: too far behind; reconnect with ?after={}",
                    peer.sent_through()
                ),
            )))
        }
        // Pending messages go out before "going away".
        Closed::Shutdown if !pending => {
            return Poll::Ready(Some(End::Close(
                CloseCode::Away,
                "server restarting; reconnect with ?after".into(),
            )))
        }
        Closed::Shutdown => {}
    }
    if pending {
        match peer.poll_flush(cx) {
            Poll::Ready(Err(_)) => return Poll::Ready(Some(End::Quiet)),
            Poll::Ready(Ok(())) => return Poll::Ready(None),
            Poll::Pending => {}
        }
    }
    // Also while flushing: a close meanwhile (as slow, say) must not wait
    // for a socket that may never drain.
    if peer.poll_changed(cx).is_ready() {
        return Poll::Ready(None);
    }
    match peer.poll_readable(cx) {
        Poll::Ready(Err(_)) => Poll::Ready(Some(End::Quiet)),
        Poll::Ready(Ok(())) => match read(peer, inbound) {
            ControlFlow::Break(end) => Poll::Ready(Some(end)),
            ControlFlow::Continue(()) => Poll::Ready(None),
        },
        Poll::Pending => Poll::Pending,
    }
}

/// Ends the connection as `end` says: the close frame and its answer,
/// within a bounded wait.
async fn finish(peer: &Peer, mut inbound: Inbound, end: End) {
    match end {
        End::Quiet => {}
        End::Answered => {
            let _ = tokio::time::timeout(CLOSE_WAIT, poll_fn(|cx| peer.poll_flush(cx))).await;
        }
        End::Close(code, reason) => {
            tracing::debug!(code = u16::from(code), %reason, "closing connection");
            let wait = if code == CloseCode::Library(CLOSE_SLOW) {
                SLOW_CLOSE_WAIT
            } else {
                CLOSE_WAIT
            };
            // Stop deliveries first: nothing may follow the close frame.
            peer.close(Closed::Gone);
            let frame = control(WsFrame::close(Some(CloseFrame {
                code,
                reason: reason.into(),
            })));
            let _ = tokio::time::timeout(wait, async {
                if peer.write_control(frame).is_err() {
                    return;
                }
                if poll_fn(|cx| peer.poll_flush(cx)).await.is_err() {
                    return;
                }
                // Read until the client answers the close (or goes).
                while poll_fn(|cx| peer.poll_readable(cx)).await.is_ok() {
                    if until_close(peer, &mut inbound).is_break() {
                        return;
                    }
                }
            })
            .await;
        }
    }
}

/// Reads what the socket has and answers it.
fn read(peer: &Peer, inbound: &mut Inbound) -> ControlFlow<End> {
    reads(peer, |data| take(peer, inbound, data)).map_break(|end| end.unwrap_or(End::Quiet))
}

/// Hands what the socket has to `on`, a read at a time (at most
/// [`READS_PER_WAKE`]), until it has nothing now (`Continue`), `on` breaks
/// (`Break(Some)`), or the socket ends or fails (`Break(None)`).
fn reads<B>(
    peer: &Peer,
    mut on: impl FnMut(&mut [u8]) -> ControlFlow<B>,
) -> ControlFlow<Option<B>> {
    let mut buf = [0u8; READ_CHUNK];
    for _ in 0..READS_PER_WAKE {
        match peer.try_read(&mut buf) {
            Ok(0) => return ControlFlow::Break(None),
            Ok(n) => on(&mut buf[..n]).map_break(Some)?,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(_) => return ControlFlow::Break(None),
        }
    }
    ControlFlow::Continue(())
}

/// Answers the frames in `data`.
fn take(peer: &Peer, inbound: &mut Inbound, data: &mut [u8]) -> ControlFlow<End> {
    let heard = inbound.feed(data, |frame| match frame {
        Frame::Pong(p) => {
            peer.pong(p);
            ControlFlow::Continue(())
        }
        Frame::Ping(p) => {
            if peer.client_ping() > MAX_CLIENT_PINGS {
                return ControlFlow::Break(End::Close(CloseCode::Policy, "too many pings".into()));
            }
            match peer.write_control(control(WsFrame::pong(p.to_vec()))) {
                Ok(()) => ControlFlow::Continue(()),
                Err(_) => ControlFlow::Break(End::Quiet),
            }
        }
        Frame::Close(code) => {
            // Nothing more is delivered; the answer (RFC 6455 §5.5.1: the
            // client's code, echoed) follows what the kernel has begun, so
            // the client sees a clean closing handshake.
            peer.close(Closed::Gone);
            let answer = code.map(|c| CloseFrame {
                code: CloseCode::from(c),
                reason: "".into(),
            });
            match peer.write_control(control(WsFrame::close(answer))) {
                Ok(()) => ControlFlow::Break(End::Answered),
                Err(_) => ControlFlow::Break(End::Quiet),
            }
        }
    });
    match heard {
        Ok(flow) => flow,
        Err(refusal) => ControlFlow::Break(refusal.into()),
    }
}

/// After the server's close: reads until the client's answering close
/// (`Break`), ignoring anything else, or until the socket ends.
fn until_close(peer: &Peer, inbound: &mut Inbound) -> ControlFlow<()> {
    reads(peer, |data| {
        let heard = inbound.feed(data, |frame| match frame {
            Frame::Close(_) => ControlFlow::Break(()),
            _ => ControlFlow::Continue(()),
        });
        match heard {
            Ok(ControlFlow::Continue(())) => ControlFlow::Continue(()),
            _ => ControlFlow::Break(()),
        }
    })
    .map_break(|_| ())
}
