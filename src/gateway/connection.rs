//! One WebSocket connection's task. Deliveries do not pass through here
//! (the fan-out writes them to the socket, see [`super::peer`]); the task
//! writes what had to queue, reads the socket all the time (pongs, pings,
//! close), pings, and closes with a reason.

use std::future::poll_fn;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use super::channel::Pager;
use super::peer::{Peer, PeerIo};
use crate::hub::Closed;

/// The server pings this often unless `[server] ping_seconds` says
/// otherwise (the contract asks for at least every 30 s); a peer that has
/// not answered by the next ping is dead and is dropped.
pub const PING_EVERY: Duration = Duration::from_secs(25);

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

/// Serves one connection until either side ends it. The peer has been
/// started (its first messages are queued); `pager` fetches the rest of
/// its catch-up.
pub async fn serve(
    peer: Arc<Peer>,
    mut ws: WebSocketStream<PeerIo>,
    ping_every: Duration,
    pager: Option<Pager>,
) {
    let reason = run(&peer, &mut ws, ping_every, pager.as_ref()).await;
    if let Some((code, reason)) = reason {
        tracing::debug!(code = u16::from(code), %reason, "closing connection");
        let wait = if code == CloseCode::Library(CLOSE_SLOW) {
            SLOW_CLOSE_WAIT
        } else {
            CLOSE_WAIT
        };
        // Stop deliveries first: nothing may follow the close frame.
        peer.close(Closed::Gone);
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        let _ = tokio::time::timeout(wait, async {
            if ws.close(Some(frame)).await.is_err() {
                return;
            }
            if poll_fn(|cx| peer.poll_flush(cx)).await.is_err() {
                return;
            }
            // Read until the peer answers the close (or goes).
            while let Some(Ok(_)) = ws.next().await {}
        })
        .await;
    }
    peer.shutdown();
}

/// The connection's loop; the close frame to send, if any.
async fn run(
    peer: &Peer,
    ws: &mut WebSocketStream<PeerIo>,
    ping_every: Duration,
    pager: Option<&Pager>,
) -> Option<(CloseCode, String)> {
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
    // Only a pong that answers our own last ping counts as life (contract
    // §13): each ping carries its number, and an unsolicited pong — which
    // a client that never reads could send forever — changes nothing.
    let mut pings_sent = 0u64;
    let mut pong_due: Option<[u8; 8]> = None;
    let mut client_pings = 0u32;
    loop {
        // The page before is all with the kernel: fetch the next. Reading
        // the socket waits meanwhile (a store read of one page).
        if let Some((next, through)) = peer.wants_page() {
            let page = match pager {
                Some(p) => p.page(next, through).await,
                None => None,
            };
            peer.add_page(page);
            continue;
        }
        let (pending, closed) = peer.status();
        match closed {
            Closed::Open => {}
            Closed::Gone => return None,
            Closed::Slow => {
                return Some((
                    CloseCode::Library(CLOSE_SLOW),
                    format!(
                        "slow consumer: too far behind; reconnect with ?after={}",
                        peer.sent_through()
                    ),
                ))
            }
            // Pending messages go out before "going away".
            Closed::Shutdown if !pending => {
                return Some((
                    CloseCode::Away,
                    "server restarting; reconnect with ?after".into(),
                ))
            }
            Closed::Shutdown => {}
        }
        tokio::select! {
            biased;
            r = poll_fn(|cx| peer.poll_flush(cx)), if pending => {
                if r.is_err() {
                    return None;
                }
            }
            _ = peer.changed(), if !pending => {}
            frame = ws.next() => match frame {
                None => return None,
                Some(Ok(Message::Pong(p))) => {
                    if pong_due.is_some_and(|want| p[..] == want[..]) {
                        pong_due = None;
                    }
                }
                Some(Ok(Message::Ping(_))) => {
                    client_pings += 1;
                    if client_pings > MAX_CLIENT_PINGS {
                        return Some((CloseCode::Policy, "too many pings".to_string()));
                    }
                    // tungstenite queued the pong; hand it to the peer.
                    if ws.flush().await.is_err() {
                        return None;
                    }
                }
                Some(Ok(Message::Close(_))) => {
                    // Send the queued close reply so the client sees a clean
                    // closing handshake.
                    peer.close(Closed::Gone);
                    let _ = ws.close(None).await;
                    let _ = tokio::time::timeout(CLOSE_WAIT, poll_fn(|cx| peer.poll_flush(cx))).await;
                    return None;
                }
                Some(Ok(Message::Text(_))) => {
                    return Some((CloseCode::Policy, "this channel does not accept messages".into()));
                }
                Some(Ok(Message::Binary(_))) => {
                    return Some((CloseCode::Unsupported, "binary frames are not accepted".into()));
                }
                Some(Ok(Message::Frame(_))) => {}
                Some(Err(WsError::Capacity(_))) => {
                    return Some((CloseCode::Size, "frame too large".into()));
                }
                Some(Err(WsError::Protocol(_))) | Some(Err(WsError::Utf8(_))) => {
                    return Some((CloseCode::Protocol, "protocol error".into()));
                }
                Some(Err(_)) => return None,
            },
            _ = ping.tick() => {
                if pong_due.is_some() {
                    tracing::debug!("no pong within a ping period; closing");
                    return None;
                }
                pings_sent += 1;
                let payload = pings_sent.to_be_bytes();
                pong_due = Some(payload);
                client_pings = 0;
                let ping = Message::Ping(bytes::Bytes::copy_from_slice(&payload));
                if ws.send(ping).await.is_err() {
                    return None;
                }
            }
        }
    }
}
