//! What the fuzz targets do with an input, shared by the libFuzzer binaries
//! (`cargo fuzz run <target>`) and the corpus replay (`cargo test -p
//! hallcast-fuzz`, which the test command runs).
//!
//! The request and frame targets drive one real server, started in this
//! process on a loopback port, over real sockets, as a client would. A
//! panic anywhere in it aborts the process (libFuzzer's panic hook), so a
//! crash in a handler or a connection task is found, not swallowed by the
//! task that ran it. Beyond "does not crash", each target checks what the
//! contract promises for bad input: a clear error and no change.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The config parser: any text is either a config or an error naming the
/// file; never a panic.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = hallcast::config::parse("fuzz.toml", text) {
        let m = e.to_string();
        assert!(m.contains("fuzz.toml"), "an error names the file: {m}");
    }
}

/// The routes a body is sent to, chosen by the input's first byte.
const POSTS: &[(&str, &str)] = &[
    ("/api/v1/halls/demo/tickets", "demo-kiosk-lobby-1-token"),
    (
        "/api/v1/halls/demo/windows/3-01/call",
        "demo-window-3-01-token",
    ),
    (
        "/api/v1/halls/demo/windows/3-01/transfer",
        "demo-window-3-01-token",
    ),
    (
        "/api/v1/halls/demo/windows/3-01/recall",
        "demo-window-3-01-token",
    ),
    (
        "/api/v1/halls/demo/windows/3-01/start",
        "demo-window-3-01-token",
    ),
    (
        "/api/v1/halls/demo/windows/3-01/complete",
        "demo-window-3-01-token",
    ),
    (
        "/api/v1/halls/demo/windows/3-01/no-show",
        "demo-window-3-01-token",
    ),
    (
        "/api/v1/halls/demo/windows/3-01/pause",
        "demo-window-3-01-token",
    ),
    (
        "/api/v1/halls/demo/windows/3-01/resume",
        "demo-window-3-01-token",
    ),
    ("/api/v1/halls/demo/close-day", "demo-admin-token-0000"),
    ("/api/v1/halls/demo/tickets", "demo-admin-token-0000"),
    ("/api/v1/tickets/{token}/cancel", ""),
];

/// A request body: the first byte picks the route (and whether an
/// `Idempotency-Key` goes with it), the rest is the body. Every answer is
/// a documented status with the contract's body; a refusal changes no
/// floor's seq; the server serves on.
pub fn request_body(data: &[u8]) {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let s = server();
    let (path, token) = POSTS[pick as usize % POSTS.len()];
    let path = path.replace("{token}", &s.ticket_token);
    let key = (pick & 0x80 != 0).then(|| format!("fuzz-{}", body.len() % 4));
    let before = seqs(s.addr);
    let (status, answer) = http(s.addr, "POST", &path, token, key.as_deref(), body);
    let after = seqs(s.addr);
    match status {
        200 | 201 => {
            serde_json::from_slice::<Value>(&answer).expect("a success is JSON");
        }
        204 => assert!(answer.is_empty(), "204 has no body"),
        400..=499 => {
            let v: Value = serde_json::from_slice(&answer).expect("an error is JSON");
            let code = v["error"]["code"].as_str().expect("an error has a code");
            assert!(v["error"]["message"].is_string(), "and a message");
            // 409 `closed` and the like are answers about state, yet also
            // change nothing; only another key's first answer could.
            if code != "idempotency_mismatch" {
                assert_eq!(before, after, "{status} {code} changed the floors");
            }
        }
        _ => panic!(
            "POST {path} answered {status}: {}",
            String::from_utf8_lossy(&answer)
        ),
    }
}

/// Client WebSocket frames on a floor channel, built from the input (see
/// [`frames`]); whatever they are, the server answers only with valid
/// frames, JSON texts and a close code of the contract, and serves on.
pub fn ws_frames(data: &[u8]) {
    let s = server();
    let mut c = TcpStream::connect(s.addr).expect("the server is up");
    c.set_read_timeout(Some(Duration::from_millis(300))).ok();
    c.write_all(
        b"GET /ws/v1/halls/demo/floors/3?after=1 HTTP/1.1\r\nHost: fuzz\r\nUpgrade: websocket\r\n\
          Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
          Sec-WebSocket-Version: 13\r\n\r\n",
    )
    .expect("send the upgrade");
    let mut out = frames(data);
    // A clean close after them, so a well-formed exchange ends at once.
    out.extend_from_slice(&mask_frame(0x88, &1000u16.to_be_bytes()));
    // The server may close before it has read everything: that is fine.
    let _ = c.write_all(&out);
    // Then end our side: a frame the input left unfinished ends there,
    // instead of the server waiting for the rest until the read times out.
    let _ = c.shutdown(std::net::Shutdown::Write);
    let got = read_until_quiet(&mut c);
    let head_end = got
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("the upgrade is answered");
    assert!(got.starts_with(b"HTTP/1.1 101"), "upgraded");
    check_server_frames(&got[head_end + 4..]);
    // And it still serves.
    let (status, _) = http(s.addr, "GET", "/healthz", "", None, b"");
    assert_eq!(status, 200);
}

/// Frames from the input: each takes a first byte (sent as is: FIN, RSV
/// and opcode), a length byte (254: a 16-bit length follows in the input,
/// 255: a 64-bit one — a claim, not the data), then up to that many
/// payload bytes. Frames are masked as a client's must be, except those
/// with an odd length and RSV3 clear, which test the refusal.
pub fn frames(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i + 2 <= data.len() {
        let b0 = data[i];
        let n = data[i + 1];
        i += 2;
        let len: u64 = match n {
            254 if i + 2 <= data.len() => {
                let l = u16::from_be_bytes([data[i], data[i + 1]]) as u64;
                i += 2;
                l
            }
            255 if i + 8 <= data.len() => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&data[i..i + 8]);
                i += 8;
                u64::from_be_bytes(b)
            }
            n => n as u64,
        };
        let take = (len as usize).min(data.len() - i);
        let payload = &data[i..i + take];
        i += take;
        let masked = b0 & 0x10 != 0 || len.is_multiple_of(2);
        out.push(b0);
        push_len(&mut out, len, masked);
        if masked {
            let key = [0x37, 0xfa, 0x21, 0x3d];
            out.extend_from_slice(&key);
            out.extend(payload.iter().enumerate().map(|(j, b)| b ^ key[j % 4]));
        } else {
            out.extend_from_slice(payload);
        }
    }
    out
}

fn push_len(out: &mut Vec<u8>, len: u64, masked: bool) {
    let m = if masked { 0x80 } else { 0 };
    if len < 126 {
        out.push(m | len as u8);
    } else if len <= u16::MAX as u64 {
        out.push(m | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(m | 127);
        out.extend_from_slice(&len.to_be_bytes());
    }
}

fn mask_frame(b0: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![b0];
    push_len(&mut out, payload.len() as u64, true);
    let key = [1, 2, 3, 4];
    out.extend_from_slice(&key);
    out.extend(payload.iter().enumerate().map(|(j, b)| b ^ key[j % 4]));
    out
}

/// What the server may send: unmasked, final text frames of JSON (the
/// catch-up and live events), pings and pongs, and one close frame with a
/// code of the contract, after which no data frame (RFC 6455 §5.5.1; a
/// pong answering a ping that was already on its way may follow).
fn check_server_frames(mut b: &[u8]) {
    let mut closed = false;
    while b.len() >= 2 {
        let (b0, b1) = (b[0], b[1]);
        let op = b0 & 0x0f;
        assert!(!closed || op >= 0x9, "opcode {op:#x} after the close frame");
        assert_eq!(b1 & 0x80, 0, "server frames are not masked");
        let (len, at) = match b1 & 0x7f {
            126 => (u16::from_be_bytes([b[2], b[3]]) as usize, 4),
            127 => (
                u64::from_be_bytes(b[2..10].try_into().expect("8 bytes")) as usize,
                10,
            ),
            n => (n as usize, 2),
        };
        if b.len() < at + len {
            // Cut off by the read timeout: a partial last frame.
            return;
        }
        let payload = &b[at..at + len];
        assert_eq!(b0 & 0x70, 0, "no RSV bits");
        match b0 & 0x0f {
            0x1 => {
                assert!(b0 & 0x80 != 0, "texts are not fragmented");
                serde_json::from_slice::<Value>(payload).expect("a text frame is JSON");
            }
            0x9 | 0xa => {}
            0x8 => {
                assert!(!closed, "one close frame");
                closed = true;
                if payload.len() >= 2 {
                    let code = u16::from_be_bytes([payload[0], payload[1]]);
                    assert!(
                        matches!(code, 1000 | 1001 | 1002 | 1003 | 1007 | 1008 | 1009 | 4008),
                        "close code {code}"
                    );
                    assert!(std::str::from_utf8(&payload[2..]).is_ok(), "a text reason");
                }
            }
            op => panic!("the server sent opcode {op:#x}"),
        }
        b = &b[at + len..];
    }
}

fn read_until_quiet(c: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        match c.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    got
}

/// One HTTP/1.1 request on its own connection; the status and body.
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: &str,
    key: Option<&str>,
    body: &[u8],
) -> (u16, Vec<u8>) {
    let mut c = TcpStream::connect(addr).expect("the server is up");
    c.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\n");
    if !token.is_empty() {
        req += &format!("Authorization: Bearer {token}\r\n");
    }
    if let Some(k) = key {
        req += &format!("Idempotency-Key: {k}\r\n");
    }
    req += &format!(
        "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    c.write_all(&bytes).expect("send the request");
    let mut got = Vec::new();
    c.read_to_end(&mut got).expect("read the answer");
    let end = got
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("{method} {path}: no answer head"));
    let head = String::from_utf8_lossy(&got[..end]);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{method} {path}: a status line, got {head}"));
    (status, got[end + 4..].to_vec())
}

/// Every floor's seq: what any change moves.
fn seqs(addr: SocketAddr) -> Vec<u64> {
    [1, 3, 7]
        .iter()
        .map(|f| {
            let (status, body) = http(
                addr,
                "GET",
                &format!("/api/v1/halls/demo/floors/{f}"),
                "",
                None,
                b"",
            );
            assert_eq!(status, 200);
            let v: Value = serde_json::from_slice(&body).expect("a snapshot");
            v["seq"].as_u64().expect("a seq")
        })
        .collect()
}

struct Live {
    addr: SocketAddr,
    /// A real ticket's token, for the citizen's own routes.
    ticket_token: String,
    _dir: tempfile::TempDir,
}

/// The server of this process, started on first use: the demo hall with
/// no rate limits (every request comes from one address, and a 429 would
/// hide the handlers from the fuzzer).
fn server() -> &'static Live {
    static LIVE: OnceLock<Live> = OnceLock::new();
    LIVE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temp dir");
        let config = dir.path().join("fuzz.toml");
        let text = hallcast::demo::CONFIG.replacen(
            "[server]\n",
            "[server.limits]\ncitizen_per_second = 0\npublic_per_ip_per_second = 0\nstreams_per_ip = 0\n\n[server]\n",
            1,
        );
        std::fs::write(&config, text).expect("write the config");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let args = <hallcast::cli::Args as clap::Parser>::parse_from([
            "hallcast".as_ref(),
            "--listen".as_ref(),
            addr.to_string().as_ref(),
            "--config".as_ref(),
            config.as_os_str(),
            "--data-dir".as_ref(),
            dir.path().join("data").as_os_str(),
        ] as [&std::ffi::OsStr; 7]);
        std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().expect("a runtime");
            rt.block_on(hallcast::run(args, std::future::pending()))
                .expect("the server runs");
        });
        let up = Instant::now();
        while TcpStream::connect(addr).is_err() {
            assert!(up.elapsed() < Duration::from_secs(30), "the server starts");
            std::thread::sleep(Duration::from_millis(20));
        }
        // The admin issues even outside the demo's hours.
        let (status, body) = http(
            addr,
            "POST",
            "/api/v1/halls/demo/tickets",
            "demo-admin-token-0000",
            None,
            br#"{"service":"business"}"#,
        );
        assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
        let v: Value = serde_json::from_slice(&body).expect("a ticket");
        Live {
            addr,
            ticket_token: v["token"].as_str().expect("a token").to_string(),
            _dir: dir,
        }
    })
}
