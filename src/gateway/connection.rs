//! One WebSocket connection: sends what the subscription starts with, then
//! every live message, batched per wake; reads the socket all the time
//! (pings and close are handled only while reading); closes with a reason.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use crate::hub::{Closed, Payload, Subscription};

/// The server pings this often unless `[server] ping_seconds` says
/// otherwise (the contract asks for at least every 30 s); a peer that has
/// not answered by the next ping is dead and is dropped.
pub const PING_EVERY: Duration = Duration::from_secs(25);

/// Messages written per wake at most, so one connection's burst (a long
/// replay) cannot hold a worker for long nor grow the write buffer without
/// bound; the rest goes out on the next turn.
pub const MAX_BATCH: usize = 256;

/// Pings a client may send per ping period before it is closed as a flood.
pub const MAX_CLIENT_PINGS: u32 = 60;

/// Close code for a subscriber that fell too far behind (private range).
pub const CLOSE_SLOW: u16 = 4008;

/// Serves one connection until either side ends it.
pub async fn serve<S>(mut ws: WebSocketStream<S>, mut sub: Subscription, ping_every: Duration)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // A replay can be thousands of events: write it a batch at a time, so
    // the write buffer stays within one batch like every later write.
    let first = std::mem::take(&mut sub.first);
    for chunk in first.chunks(MAX_BATCH) {
        for m in chunk {
            if ws.feed(Message::Text(m.clone())).await.is_err() {
                return;
            }
        }
        if ws.flush().await.is_err() {
            return;
        }
    }
    let skip = sub.skip_through;
    let mut batch: Vec<(u64, Payload)> = Vec::new();
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
    let mut pong_due = false;
    let mut client_pings = 0u32;
    let mut last_sent = skip;
    let reason = loop {
        tokio::select! {
            biased;
            why = sub.outbox.drain(&mut batch, MAX_BATCH) => {
                if why != Closed::Open {
                    break close_reason(why, last_sent);
                }
                let mut ok = true;
                for (seq, m) in batch.drain(..) {
                    if seq != 0 && seq <= skip {
                        continue;
                    }
                    last_sent = last_sent.max(seq);
                    if ws.feed(Message::Text(m)).await.is_err() {
                        ok = false;
                        break;
                    }
                }
                if !ok || ws.flush().await.is_err() {
                    return;
                }
            }
            frame = ws.next() => match frame {
                None => return,
                Some(Ok(Message::Pong(_))) => pong_due = false,
                Some(Ok(Message::Ping(_))) => {
                    client_pings += 1;
                    if client_pings > MAX_CLIENT_PINGS {
                        break Some((CloseCode::Policy, "too many pings".to_string()));
                    }
                    // tungstenite queued the pong; send it now.
                    if ws.flush().await.is_err() {
                        return;
                    }
                }
                Some(Ok(Message::Close(_))) => {
                    // Flush the queued close reply so the client sees a clean
                    // closing handshake.
                    let _ = ws.close(None).await;
                    return;
                }
                Some(Ok(Message::Text(_))) => {
                    break Some((CloseCode::Policy, "this channel does not accept messages".into()));
                }
                Some(Ok(Message::Binary(_))) => {
                    break Some((CloseCode::Unsupported, "binary frames are not accepted".into()));
                }
                Some(Ok(Message::Frame(_))) => {}
                Some(Err(WsError::Capacity(_))) => {
                    break Some((CloseCode::Size, "frame too large".into()));
                }
                Some(Err(WsError::Protocol(_))) | Some(Err(WsError::Utf8(_))) => {
                    break Some((CloseCode::Protocol, "protocol error".into()));
                }
                Some(Err(_)) => return,
            },
            _ = ping.tick() => {
                if pong_due {
                    tracing::debug!("no pong within a ping period; closing");
                    return;
                }
                pong_due = true;
                client_pings = 0;
                if ws.send(Message::Ping(Default::default())).await.is_err() {
                    return;
                }
            }
        }
    };
    if let Some((code, reason)) = reason {
        tracing::debug!(code = u16::from(code), %reason, "closing connection");
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        // Bounded: a peer that stopped reading must not keep this task.
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            let _ = ws.close(Some(frame)).await;
            // Read until the peer answers the close (or goes).
            while let Some(Ok(_)) = ws.next().await {}
        })
        .await;
    }
}

fn close_reason(why: Closed, last_sent: u64) -> Option<(CloseCode, String)> {
    match why {
        Closed::Open | Closed::Gone => None,
        Closed::Shutdown => Some((
            CloseCode::Away,
            "server restarting; reconnect with ?after".into(),
        )),
        Closed::Slow => Some((
            CloseCode::Library(CLOSE_SLOW),
            format!("slow consumer: too far behind; reconnect with ?after={last_sent}"),
        )),
    }
}
