//! What a client may send on a channel: control frames (ping, pong,
//! close) and nothing else.
//!
//! Channels only speak to the client, so a connection needs no message
//! reader of its own: tungstenite's `WebSocketStream` keeps a read buffer,
//! a write buffer and two wakers per connection, most of an idle screen's
//! memory (see BENCHMARKS.md, "Footprint"). The connection's task instead
//! reads into a buffer on its thread's stack and hands the bytes here;
//! only the tail of a frame split across reads stays with the connection
//! (at most one control frame, 131 bytes). Headers are parsed by
//! tungstenite's `FrameHeader`; a data frame is refused on its header,
//! before its payload arrives.

use std::io::Cursor;
use std::ops::ControlFlow;

use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Control, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;

/// The largest frame a client may send: they have nothing to say beyond
/// control frames.
pub const MAX_CLIENT_FRAME: usize = 4 * 1024;

/// RFC 6455 §5.5: a control frame's payload is at most 125 bytes.
const MAX_CONTROL_PAYLOAD: usize = 125;

/// A whole control frame from the client, unmasked.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    Ping(&'a [u8]),
    Pong(&'a [u8]),
    /// The client closes, with its status code if it gave one.
    Close(Option<u16>),
}

/// Why the connection is closed on what the client sent: the close frame
/// to answer with.
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal {
    pub code: CloseCode,
    pub reason: &'static str,
}

fn refuse<T>(code: CloseCode, reason: &'static str) -> Result<T, Refusal> {
    Err(Refusal { code, reason })
}

/// A connection's inbound side: the bytes of a frame not yet whole.
#[derive(Default)]
pub struct Inbound {
    partial: Vec<u8>,
}

impl Inbound {
    /// Takes bytes read from the socket (unmasked in place) and hands each
    /// whole frame to `on`, in order, until `on` breaks. A frame the
    /// channel does not take is refused.
    pub fn feed<B>(
        &mut self,
        data: &mut [u8],
        mut on: impl FnMut(Frame<'_>) -> ControlFlow<B>,
    ) -> Result<ControlFlow<B>, Refusal> {
        if self.partial.is_empty() {
            let (used, flow) = frames(data, &mut on)?;
            if flow.is_continue() {
                self.partial.extend_from_slice(&data[used..]);
            }
            return Ok(flow);
        }
        let mut buf = std::mem::take(&mut self.partial);
        buf.extend_from_slice(data);
        let (used, flow) = frames(&mut buf, &mut on)?;
        buf.drain(..used);
        // Most reads hold whole frames: a carried tail is rare and small,
        // so its allocation goes once it is used up.
        if buf.is_empty() {
            buf = Vec::new();
        }
        self.partial = buf;
        Ok(flow)
    }
}

/// The whole frames at the start of `buf`: how many bytes they took, and
/// whether `on` broke off.
fn frames<B>(
    buf: &mut [u8],
    on: &mut impl FnMut(Frame<'_>) -> ControlFlow<B>,
) -> Result<(usize, ControlFlow<B>), Refusal> {
    let mut at = 0;
    loop {
        let mut cursor = Cursor::new(&buf[at..]);
        let (header, len) = match FrameHeader::parse(&mut cursor) {
            Ok(Some(h)) => h,
            Ok(None) => return Ok((at, ControlFlow::Continue(()))),
            Err(_) => return refuse(CloseCode::Protocol, "protocol error"),
        };
        let head = cursor.position() as usize;
        let control = check(&header, len)?;
        let len = len as usize;
        if buf.len() - at - head < len {
            return Ok((at, ControlFlow::Continue(())));
        }
        let payload = &mut buf[at + head..at + head + len];
        let mask = header.mask.expect("checked: masked");
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= mask[i % 4];
        }
        let frame = match control {
            Control::Ping => Frame::Ping(payload),
            Control::Pong => Frame::Pong(payload),
            Control::Close => Frame::Close(close_code(payload)?),
            Control::Reserved(_) => unreachable!("refused by check"),
        };
        at += head + len;
        if let ControlFlow::Break(b) = on(frame) {
            return Ok((at, ControlFlow::Break(b)));
        }
    }
}

/// The control opcode of a frame the channel takes, or why not. Only the
/// header is needed: a data frame is refused before its payload is read.
fn check(header: &FrameHeader, len: u64) -> Result<Control, Refusal> {
    if len > MAX_CLIENT_FRAME as u64 {
        return refuse(CloseCode::Size, "frame too large");
    }
    if header.rsv1 || header.rsv2 || header.rsv3 {
        return refuse(CloseCode::Protocol, "protocol error: reserved bits set");
    }
    // RFC 6455 §5.1: a server closes on a frame the client did not mask.
    if header.mask.is_none() {
        return refuse(CloseCode::Protocol, "protocol error: frame not masked");
    }
    match header.opcode {
        OpCode::Data(Data::Text) => {
            refuse(CloseCode::Policy, "this channel does not accept messages")
        }
        OpCode::Data(Data::Binary) => {
            refuse(CloseCode::Unsupported, "binary frames are not accepted")
        }
        OpCode::Data(_) => refuse(
            CloseCode::Protocol,
            "protocol error: unexpected continuation",
        ),
        OpCode::Control(Control::Reserved(_)) => {
            refuse(CloseCode::Protocol, "protocol error: unknown opcode")
        }
        OpCode::Control(_) if !header.is_final || len > MAX_CONTROL_PAYLOAD as u64 => refuse(
            CloseCode::Protocol,
            "protocol error: malformed control frame",
        ),
        OpCode::Control(c) => Ok(c),
    }
}

/// A close frame's status code (RFC 6455 §5.5.1: none, or two bytes and a
/// UTF-8 reason).
fn close_code(payload: &[u8]) -> Result<Option<u16>, Refusal> {
    match payload {
        [] => Ok(None),
        [_] => refuse(CloseCode::Protocol, "protocol error: malformed close frame"),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            if !CloseCode::from(code).is_allowed() {
                return refuse(CloseCode::Protocol, "protocol error: invalid close code");
            }
            if std::str::from_utf8(reason).is_err() {
                return refuse(CloseCode::Invalid, "close reason is not UTF-8");
            }
            Ok(Some(code))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client frame: masked with a key that is not all zero, so a missed
    /// unmask shows.
    fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
        let key = [0x11, 0x22, 0x33, 0x44];
        let mut v = vec![first];
        match payload.len() {
            n if n < 126 => v.push(0x80 | n as u8),
            n if n <= 0xffff => {
                v.push(0x80 | 126);
                v.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                v.push(0x80 | 127);
                v.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        v.extend_from_slice(&key);
        v.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        v
    }

    #[derive(Debug, PartialEq)]
    enum Got {
        Ping(Vec<u8>),
        Pong(Vec<u8>),
        Close(Option<u16>),
    }

    /// Feeds `chunks` one read at a time; every frame seen, or the refusal.
    fn feed_all(chunks: &[&[u8]]) -> Result<Vec<Got>, Refusal> {
        let mut inbound = Inbound::default();
        let mut got = Vec::new();
        for c in chunks {
            let mut c = c.to_vec();
            let flow = inbound.feed(&mut c, |f| {
                got.push(match f {
                    Frame::Ping(p) => Got::Ping(p.to_vec()),
                    Frame::Pong(p) => Got::Pong(p.to_vec()),
                    Frame::Close(c) => Got::Close(c),
                });
                ControlFlow::<()>::Continue(())
            })?;
            assert!(flow.is_continue());
        }
        Ok(got)
    }

    #[test]
    fn control_frames_are_unmasked_in_order_even_split_across_reads() {
        let mut bytes = frame(0x89, b"hello");
        bytes.extend(frame(0x8a, &7u64.to_be_bytes()));
        bytes.extend(frame(0x88, &[0x03, 0xe8, b'b', b'y', b'e']));
        let want = vec![
            Got::Ping(b"hello".to_vec()),
            Got::Pong(7u64.to_be_bytes().to_vec()),
            Got::Close(Some(1000)),
        ];
        assert_eq!(feed_all(&[&bytes]).unwrap(), want);
        // Every split point, including inside a header and inside the key.
        for cut in 1..bytes.len() {
            let (a, b) = bytes.split_at(cut);
            assert_eq!(feed_all(&[a, b]).unwrap(), want, "cut at {cut}");
        }
        // A byte at a time.
        let singles: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(feed_all(&singles).unwrap(), want);
    }

    #[test]
    fn a_break_stops_at_that_frame() {
        let mut bytes = frame(0x88, &[]);
        bytes.extend(frame(0x89, b"after"));
        let mut inbound = Inbound::default();
        let mut seen = 0;
        let flow = inbound
            .feed(&mut bytes, |_| {
                seen += 1;
                ControlFlow::Break(())
            })
            .unwrap();
        assert_eq!((flow, seen), (ControlFlow::Break(()), 1));
    }

    #[test]
    fn data_frames_are_refused_on_their_header() {
        let refused = |bytes: &[u8]| feed_all(&[bytes]).unwrap_err().code;
        // Only the header and key of a text frame: refused before its text.
        let text = frame(0x81, b"hello?");
        assert_eq!(refused(&text[..6]), CloseCode::Policy);
        assert_eq!(refused(&frame(0x82, &[0, 1, 2])), CloseCode::Unsupported);
        let huge = frame(0x81, &vec![b'x'; 64 * 1024]);
        assert_eq!(refused(&huge[..14]), CloseCode::Size);
        assert_eq!(refused(&frame(0x80, b"x")), CloseCode::Protocol);
    }

    #[test]
    fn malformed_frames_are_protocol_errors() {
        let refused = |bytes: Vec<u8>| feed_all(&[&bytes]).unwrap_err().code;
        // Unmasked.
        assert_eq!(refused(vec![0x89, 0x00]), CloseCode::Protocol);
        // Reserved bit, reserved opcode, fragmented ping, long ping.
        assert_eq!(refused(frame(0xc9, b"")), CloseCode::Protocol);
        assert_eq!(refused(frame(0x8b, b"")), CloseCode::Protocol);
        assert_eq!(refused(frame(0x09, b"")), CloseCode::Protocol);
        assert_eq!(refused(frame(0x89, &[0; 126])), CloseCode::Protocol);
        // Close: one byte, a reserved code, a reason that is not UTF-8.
        assert_eq!(refused(frame(0x88, &[3])), CloseCode::Protocol);
        assert_eq!(refused(frame(0x88, &[0x03, 0xed])), CloseCode::Protocol);
        assert_eq!(
            refused(frame(0x88, &[0x03, 0xe8, 0xff])),
            CloseCode::Invalid
        );
    }

    #[test]
    fn a_frame_split_across_reads_leaves_only_its_tail_behind() {
        let bytes = frame(0x89, &[7; 125]);
        let mut inbound = Inbound::default();
        let mut first = bytes[..50].to_vec();
        let _ = inbound.feed(&mut first, |_| ControlFlow::<()>::Continue(()));
        assert_eq!(inbound.partial.len(), 50);
        let mut rest = bytes[50..].to_vec();
        let _ = inbound.feed(&mut rest, |_| ControlFlow::<()>::Continue(()));
        assert_eq!(inbound.partial.capacity(), 0, "nothing is kept once used");
    }
}
