//! Messages as the server sends them: WebSocket text frames, encoded once
//! per publish and shared by every subscriber.
//!
//! Server frames are never masked (RFC 6455 §5.1), so a frame's bytes are
//! the same for every connection: the fan-out hands each socket the same
//! buffer, and a subscriber costs a reference count and one write.

use bytes::{BufMut, Bytes, BytesMut};

use super::Payload;

/// Opcode 0x1 (text) with FIN set: every message is a single frame.
const TEXT_FIN: u8 = 0x81;

/// Appends one unmasked text frame carrying `payload`.
pub fn put_text_frame(out: &mut BytesMut, payload: &[u8]) {
    out.reserve(payload.len() + 10);
    out.put_u8(TEXT_FIN);
    match payload.len() {
        n if n < 126 => out.put_u8(n as u8),
        n if n <= usize::from(u16::MAX) => {
            out.put_u8(126);
            out.put_u16(n as u16);
        }
        n => {
            out.put_u8(127);
            out.put_u64(n as u64);
        }
    }
    out.put_slice(payload);
}

/// Frames of several messages back to back, written as one.
pub fn text_frames<'a>(payloads: impl IntoIterator<Item = &'a Payload>) -> Bytes {
    let mut out = BytesMut::new();
    for p in payloads {
        put_text_frame(&mut out, p.as_bytes());
    }
    out.freeze()
}

/// One publish on one topic: its messages in seq order, framed.
///
/// A message's seq is the channel's `seq` (floors, halls) or the hall seq
/// of the command that made it (tickets); seq 0 means "not covered by any
/// snapshot" and is never skipped.
#[derive(Debug)]
pub struct Frames {
    /// Each message's seq and the end of its frame in `bytes`.
    ends: Vec<(u64, usize)>,
    bytes: Bytes,
}

impl Frames {
    /// Frames `msgs` (in seq order).
    pub fn new(msgs: &[(u64, Payload)]) -> Frames {
        let mut out = BytesMut::new();
        let mut ends = Vec::with_capacity(msgs.len());
        for (seq, m) in msgs {
            put_text_frame(&mut out, m.as_bytes());
            ends.push((*seq, out.len()));
        }
        Frames {
            ends,
            bytes: out.freeze(),
        }
    }

    /// Several publishes of one topic as one, so a subscriber gets them in
    /// one write. Copies the frames once for all subscribers.
    pub fn concat(parts: &[&Frames]) -> Frames {
        let mut out = BytesMut::with_capacity(parts.iter().map(|b| b.bytes.len()).sum());
        let mut ends = Vec::with_capacity(parts.iter().map(|b| b.ends.len()).sum());
        for b in parts {
            let base = out.len();
            out.extend_from_slice(&b.bytes);
            ends.extend(b.ends.iter().map(|&(s, e)| (s, base + e)));
        }
        Frames {
            ends,
            bytes: out.freeze(),
        }
    }

    /// Messages in the batch.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Bytes of all frames.
    pub fn size(&self) -> usize {
        self.bytes.len()
    }

    /// Highest seq in the batch (0 when it has only unsequenced messages).
    pub fn last_seq(&self) -> u64 {
        self.ends.iter().map(|&(s, _)| s).max().unwrap_or(0)
    }

    /// Each message's seq and text, in order: the frames' payloads, for a
    /// transport that is not WebSocket (server-sent events).
    pub fn messages(&self) -> impl Iterator<Item = (u64, &[u8])> + '_ {
        let mut start = 0;
        self.ends.iter().map(move |&(seq, end)| {
            let frame = &self.bytes[start..end];
            start = end;
            // A server frame's header: 2 bytes, then a 16- or 64-bit
            // length when the 7-bit one says so; never a mask.
            let header = match frame[1] & 0x7f {
                126 => 4,
                127 => 10,
                _ => 2,
            };
            (seq, &frame[header..])
        })
    }

    /// The frames a subscriber still needs when everything through
    /// `skip_through` is already covered by what it was sent first, and how
    /// many messages they hold. Shares the batch's buffer unless messages
    /// in the middle must be left out.
    pub fn after(&self, skip_through: u64) -> (Bytes, usize) {
        let keep = |s: u64| s == 0 || s > skip_through;
        if self.ends.iter().all(|&(s, _)| keep(s)) {
            return (self.bytes.clone(), self.ends.len());
        }
        let mut start = 0;
        let mut kept: Vec<(usize, usize)> = Vec::new();
        for &(s, end) in &self.ends {
            if keep(s) {
                kept.push((start, end));
            }
            start = end;
        }
        match kept.as_slice() {
            [] => (Bytes::new(), 0),
            // A tail of the batch: share it.
            [(first, _), ..] if kept.windows(2).all(|w| w[0].1 == w[1].0) => {
                let end = kept.last().map_or(*first, |k| k.1);
                (self.bytes.slice(*first..end), kept.len())
            }
            _ => {
                let mut out = BytesMut::new();
                for (a, b) in &kept {
                    out.extend_from_slice(&self.bytes[*a..*b]);
                }
                (out.freeze(), kept.len())
            }
        }
    }
}

/// The texts of the whole server frames in `bytes`, decoded with
/// tungstenite itself so the encoding is checked against an independent
/// implementation; panics on a torn or masked frame.
#[cfg(test)]
pub fn decode_text_frames(bytes: &[u8]) -> Vec<String> {
    use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;
    let mut out = Vec::new();
    let mut cur = std::io::Cursor::new(bytes);
    while (cur.position() as usize) < bytes.len() {
        let (h, len) = FrameHeader::parse(&mut cur)
            .unwrap()
            .expect("a whole header");
        assert!(h.is_final && h.mask.is_none());
        let at = cur.position() as usize;
        let body = bytes.get(at..at + len as usize).expect("a whole frame");
        out.push(String::from_utf8(body.to_vec()).unwrap());
        cur.set_position((at + len as usize) as u64);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_the_frames_payloads_with_their_seqs() {
        let long = "x".repeat(70_000);
        let b = Frames::new(&[(1, msg("a")), (0, msg(&"y".repeat(300))), (3, msg(&long))]);
        let got: Vec<(u64, usize)> = b.messages().map(|(s, m)| (s, m.len())).collect();
        assert_eq!(got, [(1, 1), (0, 300), (3, 70_000)]);
        assert_eq!(b.messages().next().unwrap().1, b"a");
    }

    fn msg(s: &str) -> Payload {
        Payload::from(s.to_string())
    }

    use super::decode_text_frames as decode;

    #[test]
    fn frames_decode_at_every_length_class() {
        for n in [0, 1, 125, 126, 127, 65535, 65536, 70000] {
            let body = "x".repeat(n);
            let b = Frames::new(&[(1, msg(&body)), (2, msg("tail"))]);
            assert_eq!(decode(&b.after(0).0), vec![body, "tail".to_string()]);
        }
    }

    #[test]
    fn after_leaves_out_what_the_first_messages_covered() {
        let b = Frames::new(&[(4, msg("d")), (5, msg("e")), (6, msg("f"))]);
        assert_eq!(decode(&b.after(0).0), ["d", "e", "f"]);
        assert_eq!(decode(&b.after(4).0), ["e", "f"]);
        assert_eq!(b.after(5).1, 1);
        assert_eq!(b.after(6), (Bytes::new(), 0));
        let unsequenced = Frames::new(&[(3, msg("a")), (0, msg("z")), (7, msg("b"))]);
        assert_eq!(decode(&unsequenced.after(5).0), ["z", "b"]);
        assert_eq!(decode(&unsequenced.after(9).0), ["z"]);
        let gap = Frames::new(&[(0, msg("z")), (3, msg("a")), (8, msg("b"))]);
        assert_eq!(decode(&gap.after(5).0), ["z", "b"]);
    }

    #[test]
    fn concat_keeps_order_and_seqs() {
        let a = Frames::new(&[(1, msg("a"))]);
        let b = Frames::new(&[(2, msg("b")), (3, msg("c"))]);
        let c = Frames::concat(&[&a, &b]);
        assert_eq!((c.len(), c.last_seq()), (3, 3));
        assert_eq!(decode(&c.after(1).0), ["b", "c"]);
    }
}
