//! The WebSocket handshake done by hand inside warp: warp's `ws()` gives
//! each connection tungstenite's stream with a 128 KiB read buffer (see
//! shared/notes/websocket-facts.md), and a channel needs no stream at all
//! (see [`super::inbound`]).

use warp::http::{HeaderMap, Response, StatusCode};

use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

fn has_token(headers: &HeaderMap, name: &str, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.to_str()
            .map(|s| s.split(',').any(|p| p.trim().eq_ignore_ascii_case(token)))
            .unwrap_or(false)
    })
}

/// Checks the handshake headers; the `Sec-WebSocket-Accept` value, or why
/// this is not a WebSocket handshake.
pub fn accept_key(headers: &HeaderMap) -> Result<String, &'static str> {
    // hyper offers an upgrade for any `Upgrade` header, even without
    // `Connection: upgrade`; browsers send `Connection: keep-alive, Upgrade`.
    if !has_token(headers, "connection", "upgrade") || !has_token(headers, "upgrade", "websocket") {
        return Err("this is a WebSocket endpoint; connect with a WebSocket client");
    }
    if headers
        .get("sec-websocket-version")
        .and_then(|v| v.to_str().ok())
        != Some("13")
    {
        return Err("only WebSocket version 13 is supported");
    }
    let key = headers
        .get("sec-websocket-key")
        .ok_or("the Sec-WebSocket-Key header is missing")?;
    Ok(derive_accept_key(key.as_bytes()))
}

/// The 101 answer.
pub fn switching(accept: &str) -> Response<bytes::Bytes> {
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-accept", accept)
        .body(bytes::Bytes::new())
        .expect("static response builds")
}
