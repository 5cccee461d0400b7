//! The WebSocket handshake done by hand inside warp, so that each
//! connection gets a small read buffer (warp's `ws()` fixes it at 128 KiB;
//! see shared/notes/websocket-facts.md).

use warp::http::{HeaderMap, Response, StatusCode};

use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Read buffer per connection. Clients send only pongs and close frames,
/// so 1 KiB is plenty; it is zero-filled and resident from the first read,
/// and it sets most of an idle connection's memory.
pub const READ_BUFFER: usize = 1024;

/// The largest frame or message a client may send: they have nothing to say
/// beyond control frames.
pub const MAX_CLIENT_FRAME: usize = 4 * 1024;

/// tungstenite writes only the connection's control frames (messages go
/// through the peer), and hands each to the peer at once.
pub const WRITE_BUFFER: usize = 0;

/// The per-connection WebSocket settings.
pub fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_message_size(Some(MAX_CLIENT_FRAME))
        .max_frame_size(Some(MAX_CLIENT_FRAME))
}

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
