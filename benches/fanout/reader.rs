//! The generator's subscribers: one thread reading every socket.
//!
//! A task, a tungstenite stream, a read buffer and a record per subscriber
//! put each message on several pages of their own, and on this VM every
//! separate page touched costs microseconds: with one task per subscriber
//! the generator spent as long reading a call as the server spent sending
//! it, and the time-to-last measured the generator. Here a subscriber is a
//! few dozen bytes in one array, every read lands in one shared buffer, and
//! frames are parsed in place (server frames are unmasked), so the reader
//! stays well ahead of the server it measures.

use std::io::{ErrorKind, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

/// What one subscriber has seen.
#[derive(Default, Clone)]
pub struct Seen {
    pub messages: u64,
    pub last_seq: u64,
    pub gaps: u64,
    /// Its snapshot arrived.
    pub started: bool,
    /// Closed by the server with 4008 (slow consumer).
    pub closed_slow: bool,
    /// The socket ended.
    pub ended: bool,
}

/// One `called` event received: by which subscriber, which number, when.
pub type Receipt = (u32, u32, Instant);

/// Shared with the rest of the generator.
#[derive(Default)]
pub struct Shared {
    pub seen: Mutex<Vec<Seen>>,
    /// Appended in arrival order; cleared between phases.
    pub receipts: Mutex<Vec<Receipt>>,
}

/// A connected subscriber, handed to the reader: its socket (past the
/// upgrade) and whatever arrived with the upgrade's answer.
pub struct Joined {
    pub index: usize,
    pub socket: std::net::TcpStream,
    pub early: Vec<u8>,
}

struct Conn {
    socket: TcpStream,
    /// An incomplete frame carried to the next read (rare: messages are
    /// small).
    partial: Vec<u8>,
    stalls: bool,
    /// Readable while stalled: read it when the stall ends.
    dirty: bool,
    ended: bool,
}

/// Reads until `stop` is set. `stall`: while set, subscribers that
/// `stalls(index)` are not read (their sockets stay open). `spin`: never
/// sleep in `poll`.
pub fn run(
    joined: Receiver<Joined>,
    shared: Arc<Shared>,
    stall: Arc<AtomicBool>,
    stalls: impl Fn(usize) -> bool,
    stop: Arc<AtomicBool>,
    spin: bool,
) {
    let mut poll = Poll::new().expect("epoll");
    let mut events = Events::with_capacity(4096);
    let mut conns: Vec<Option<Conn>> = Vec::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut was_stalled = false;
    let timeout = if spin {
        Some(Duration::ZERO)
    } else {
        Some(Duration::from_millis(20))
    };
    while !stop.load(Ordering::Relaxed) {
        while let Ok(j) = joined.try_recv() {
            j.socket.set_nonblocking(true).unwrap();
            let mut socket = TcpStream::from_std(j.socket);
            poll.registry()
                .register(&mut socket, Token(j.index), Interest::READABLE)
                .unwrap();
            if conns.len() <= j.index {
                conns.resize_with(j.index + 1, || None);
            }
            // A socket replacing an ended one (a failover's): the old
            // one was dropped and left the poll with it.
            shared.seen.lock().unwrap()[j.index].ended = false;
            let c = conns[j.index].insert(Conn {
                socket,
                partial: j.early,
                stalls: stalls(j.index),
                dirty: false,
                ended: false,
            });
            // What came with the upgrade's answer has no event.
            read_conn(j.index, c, &mut buf, &shared);
        }
        if poll.poll(&mut events, timeout).is_err() {
            continue;
        }
        let stalled = stall.load(Ordering::Relaxed);
        for ev in events.iter() {
            let i = ev.token().0;
            let Some(Some(c)) = conns.get_mut(i) else {
                continue;
            };
            if c.ended {
                continue;
            }
            if stalled && c.stalls {
                c.dirty = true;
                continue;
            }
            read_conn(i, c, &mut buf, &shared);
        }
        if was_stalled && !stalled {
            for (i, c) in conns.iter_mut().enumerate() {
                if let Some(c) = c.as_mut().filter(|c| c.dirty && !c.ended) {
                    c.dirty = false;
                    read_conn(i, c, &mut buf, &shared);
                }
            }
        }
        was_stalled = stalled;
    }
}

/// Reads everything the socket has and handles every whole frame.
fn read_conn(i: usize, c: &mut Conn, buf: &mut Vec<u8>, shared: &Shared) {
    loop {
        let have = c.partial.len();
        // Room for a read after the carried part, however large a
        // snapshot's frame is.
        if buf.len() < have + 64 * 1024 {
            buf.resize(have + 64 * 1024, 0);
        }
        buf[..have].copy_from_slice(&c.partial);
        let n = match c.socket.read(&mut buf[have..]) {
            Ok(0) => {
                end(i, c, shared);
                return;
            }
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                if have > 0 {
                    // Frames that came with the upgrade's answer.
                    c.partial.clear();
                    let used = frames(i, c, &buf[..have], shared);
                    c.partial.extend_from_slice(&buf[used..have]);
                }
                return;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => {
                end(i, c, shared);
                return;
            }
        };
        c.partial.clear();
        let total = have + n;
        let used = frames(i, c, &buf[..total], shared);
        c.partial.extend_from_slice(&buf[used..total]);
        if c.ended {
            return;
        }
    }
}

fn end(i: usize, c: &mut Conn, shared: &Shared) {
    c.ended = true;
    shared.seen.lock().unwrap()[i].ended = true;
}

/// Handles the whole frames at the start of `data`; returns the bytes used.
fn frames(i: usize, c: &mut Conn, data: &[u8], shared: &Shared) -> usize {
    let now = Instant::now();
    let mut at = 0;
    while let Some((opcode, payload, len)) = frame(&data[at..]) {
        match opcode {
            0x1 => {
                let text = std::str::from_utf8(payload).expect("text frames are UTF-8");
                let mut seen = shared.seen.lock().unwrap();
                scan(text, &mut seen[i], |n| {
                    shared.receipts.lock().unwrap().push((i as u32, n, now))
                });
            }
            0x9 => {
                // A client's pong is masked; a zero key leaves the payload
                // as it is.
                let mut pong = vec![0x8a, 0x80 | payload.len() as u8, 0, 0, 0, 0];
                pong.extend_from_slice(payload);
                let _ = c.socket.write_all(&pong);
            }
            0x8 => {
                let code = payload.get(..2).map(|b| u16::from_be_bytes([b[0], b[1]]));
                if code == Some(4008) {
                    shared.seen.lock().unwrap()[i].closed_slow = true;
                }
                end(i, c, shared);
                return at + len;
            }
            _ => {}
        }
        at += len;
    }
    at
}

/// The first frame in `data`, if whole: opcode, payload, bytes it takes.
fn frame(data: &[u8]) -> Option<(u8, &[u8], usize)> {
    let (&b0, &b1) = (data.first()?, data.get(1)?);
    assert_eq!(b1 & 0x80, 0, "server frames are unmasked");
    assert_eq!(b0 & 0x80, 0x80, "the server sends whole messages");
    let (len, head) = match b1 & 0x7f {
        126 => (
            u16::from_be_bytes([*data.get(2)?, *data.get(3)?]) as usize,
            4,
        ),
        127 => (
            u64::from_be_bytes(data.get(2..10)?.try_into().ok()?) as usize,
            10,
        ),
        n => (n as usize, 2),
    };
    let payload = data.get(head..head + len)?;
    Some((b0 & 0x0f, payload, head + len))
}

pub fn find_u64(s: &str, key: &str) -> Option<u64> {
    let i = s.find(key)? + key.len();
    let end = s[i..]
        .find(|c: char| !c.is_ascii_digit())
        .map_or(s.len(), |e| i + e);
    s[i..end].parse().ok()
}

/// Scans one message (an object, or an array of objects) without a full
/// JSON parse; `called` gets each number called.
pub fn scan(text: &str, seen: &mut Seen, mut called: impl FnMut(u32)) {
    let objects = text.trim_start_matches('[').split("},{");
    for o in objects {
        if o.contains("\"type\":\"snapshot\"") {
            seen.last_seq = find_u64(o, "\"seq\":").unwrap_or(0);
            seen.started = true;
            continue;
        }
        seen.messages += 1;
        if let Some(seq) = find_u64(o, "\"seq\":") {
            if seen.started && seq != seen.last_seq + 1 {
                seen.gaps += 1;
            }
            seen.last_seq = seq;
        }
        if o.contains("\"type\":\"called\"") {
            if let Some(n) = find_u64(o, "\"number\":\"A") {
                called(n as u32);
            }
        }
    }
}
