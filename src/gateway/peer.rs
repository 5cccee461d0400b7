//! A subscriber's socket, written by two hands: the fan-out thread writes
//! each delivery straight to it when nothing is queued ahead, and the
//! connection's task writes what had to wait (and control frames).
//!
//! The straight write is what makes fan-out cheap: a delivery is one
//! non-blocking `write` from the fan-out thread, with no task woken and no
//! per-connection copy. Only when the kernel's send buffer is full does
//! data queue here and the task take over, waiting for the socket; later
//! deliveries queue behind it, so bytes always leave in order. Both hands
//! write whole frames under one lock, so frames never interleave.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{ready, Context, Poll, Waker};

use bytes::{Buf, Bytes};
use tokio::net::TcpStream;

use crate::hub::{
    Closed, Frames, Member, MemberId, Payload, SubscriberGroup, SUBSCRIBER_QUEUE,
    SUBSCRIBER_QUEUE_BYTES,
};

/// Queued buffers written with one `writev` at most.
const MAX_IOVECS: usize = 64;

/// Peers per chunk of [`Peers`].
const CHUNK: usize = 64;

/// Catch-up framed and queued at a time. The page it comes from waits as
/// the messages themselves (those of the ring are shared with it, not
/// copied) and is framed as the socket drains: a subscriber that does not
/// read holds this much of it in the server, not all of it, and one that
/// does read is never closed as slow by its own catch-up.
const CATCHUP_CHUNK: usize = 32 * 1024;

/// What a subscription starts with.
pub struct Catchup {
    /// Ready now, each message with its seq, in order: a snapshot (at
    /// `skip_through`), or the first page of a replay.
    pub first: Vec<(u64, Payload)>,
    /// The seqs after `first` still to send, `(next, through)`: a cursor,
    /// not a copy. The connection's task fetches them a page at a time
    /// (from the ring, or the store) once the socket has taken the page
    /// before, so a subscriber that never reads pins one page, however far
    /// behind it asked to start.
    pub rest: Option<(u64, u64)>,
    /// Live messages with seq ≤ this are covered and left out.
    pub skip_through: u64,
}

impl Catchup {
    /// A catch-up that is all in `first`.
    pub fn whole(first: Vec<(u64, Payload)>, skip_through: u64) -> Catchup {
        Catchup {
            first,
            rest: None,
            skip_through,
        }
    }
}

/// Bytes waiting for room in the socket, with what they carry.
struct Entry {
    bytes: Bytes,
    /// Highest seq in `bytes` (0: none, e.g. a control frame).
    last_seq: u64,
    /// Messages in `bytes`, counted against [`SUBSCRIBER_QUEUE`].
    msgs: usize,
    /// Some of it is already written: it must be finished before anything
    /// else, even a close frame, or the stream is corrupt.
    started: bool,
}

struct State {
    /// The socket; taken (and so closed) when the connection ends, even
    /// while deliveries in flight still name this peer.
    stream: Option<TcpStream>,
    /// Until the connection has queued what it sends first (snapshot or
    /// replay), live batches wait here whole: those it covers are then
    /// left out by seq.
    held: Option<Vec<Arc<Frames>>>,
    /// Messages with seq ≤ this are covered by what was sent first.
    skip_through: u64,
    /// The page of the catch-up being sent, with each message's seq;
    /// framed [`CATCHUP_CHUNK`] at a time as the socket drains. Live
    /// batches stay `held` until it and `rest` are done.
    catchup: VecDeque<(u64, Payload)>,
    /// Seqs of the catch-up not fetched yet (see [`Catchup::rest`]).
    rest: Option<(u64, u64)>,
    pending: VecDeque<Entry>,
    pending_msgs: usize,
    /// Bytes of `pending` not yet written, counted against
    /// [`SUBSCRIBER_QUEUE_BYTES`].
    pending_bytes: usize,
    /// Highest seq fully handed to the kernel (once closed, also what is
    /// left to write before the close frame): where a client closed as
    /// slow should resume.
    sent_through: u64,
    closed: Closed,
    /// A write failed: the socket is unusable, nothing more is written.
    failed: bool,
    /// Something the connection's task must see happened (data queued:
    /// wait for the socket; or the peer closed) since it last looked.
    changed: bool,
    /// The task, waiting for `changed`. A waker here rather than a
    /// `Notify` in the slot: the task then waits with no future of its
    /// own, and an idle screen's task is most of what it costs.
    task: Option<Waker>,
    /// Our last ping's payload while its pong is awaited. Only a pong
    /// that answers it counts as life (contract §13): one that does not —
    /// which a client that never reads could send forever — changes
    /// nothing.
    pong_due: Option<u64>,
    /// Pings the client sent since our last.
    client_pings: u32,
}

impl State {
    fn new(stream: Option<TcpStream>) -> State {
        State {
            stream,
            held: Some(Vec::new()),
            skip_through: 0,
            catchup: VecDeque::new(),
            rest: None,
            pending: VecDeque::new(),
            pending_msgs: 0,
            pending_bytes: 0,
            sent_through: 0,
            closed: Closed::Open,
            failed: false,
            changed: false,
            task: None,
            pong_due: None,
            client_pings: 0,
        }
    }
}

/// A peer's state, in a slot of a chunk: the fan-out visits every
/// subscriber of a topic at every call, and on this machine each separate
/// page it touches costs microseconds (a cold object per socket, one per
/// page, made a bare write loop 40-60 % slower; packed side by side, not
/// measurably). A peer allocated on its own sits pages away from the next,
/// between its connection's buffers; 64 to a chunk, 10,000 peers' state
/// fits in a few hundred pages.
struct Slot {
    state: Mutex<State>,
    /// Which peer holds the slot (0: none); deliveries for another are
    /// refused. Written only under `state`'s lock, so checking it there
    /// is exact; read without the lock by the topic's prune.
    generation: AtomicU64,
    /// Mirrors `state.closed != Open`, read without the lock likewise.
    closed: AtomicBool,
    /// The pinger's round when the peer came: it is pinged every period
    /// from then on (read without the lock, so that the pinger's pass
    /// over every slot locks only those whose turn it is).
    born: AtomicU64,
}

/// Slots side by side; never freed, reused by later peers.
pub struct Chunk {
    slots: [Slot; CHUNK],
}

/// Every chunk, and the slots free for the next peer (the most recently
/// freed first: its memory is the likeliest to be warm).
struct Slots {
    chunks: Vec<Arc<Chunk>>,
    free: Vec<(usize, usize)>,
}

/// Every peer's slot, owned by the server (built in `server.rs` and
/// handed to the gateway), not by the process: two servers in one
/// process, or a test's, share nothing.
pub struct Peers {
    slots: Mutex<Slots>,
    /// Generations handed out so far; 0 is never one.
    generations: AtomicU64,
    /// Mixed into ping payloads, so that a client cannot answer a ping it
    /// never read.
    secret: u64,
    /// The pinger's last round (see [`super::pinger`]).
    round: AtomicU64,
}

impl Peers {
    pub fn new() -> Arc<Peers> {
        Arc::new(Peers {
            slots: Mutex::new(Slots {
                chunks: Vec::new(),
                free: Vec::new(),
            }),
            generations: AtomicU64::new(0),
            round: AtomicU64::new(0),
            // Seeded per process by the standard library; no more is needed.
            secret: {
                use std::hash::{BuildHasher, Hasher};
                std::collections::hash_map::RandomState::new()
                    .build_hasher()
                    .finish()
            },
        })
    }

    fn slots(&self) -> MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Round `round` of the pinger (see [`super::pinger`]), which has
    /// `per_period` rounds a ping period: pings the peers that came a
    /// whole number of periods ago, and closes those of them that did
    /// not answer their last ping.
    pub fn ping(&self, round: u64, per_period: u64) {
        self.round.store(round, Ordering::Relaxed);
        let chunks: Vec<Arc<Chunk>> = self.slots().chunks.clone();
        let salt = self.secret ^ round.wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
        for chunk in chunks {
            for slot in &chunk.slots {
                let born = slot.born.load(Ordering::Relaxed);
                if round > born && (round - born) % per_period.max(1) == 0 {
                    slot.ping(salt);
                }
            }
        }
    }
}

/// One connection's socket and its queue: the connection's handle on its
/// slot, which it frees when dropped.
pub struct Peer {
    peers: Arc<Peers>,
    chunk: Arc<Chunk>,
    chunk_no: usize,
    index: usize,
    generation: u64,
}

impl Peer {
    /// Wraps an upgraded socket. Deliveries are held until [`Peer::start`].
    pub fn new(peers: &Arc<Peers>, stream: TcpStream) -> Arc<Peer> {
        let (chunk, chunk_no, index) = {
            let mut slots = peers.slots();
            let (chunk_no, index) = match slots.free.pop() {
                Some(free) => free,
                None => {
                    let chunk_no = slots.chunks.len();
                    slots.chunks.push(Arc::new(Chunk {
                        slots: std::array::from_fn(|_| Slot {
                            state: Mutex::new(State::new(None)),
                            generation: AtomicU64::new(0),
                            closed: AtomicBool::new(true),
                            born: AtomicU64::new(0),
                        }),
                    }));
                    slots.free.extend((1..CHUNK).rev().map(|i| (chunk_no, i)));
                    (chunk_no, 0)
                }
            };
            (slots.chunks[chunk_no].clone(), chunk_no, index)
        };
        let generation = peers.generations.fetch_add(1, Ordering::Relaxed) + 1;
        let slot = &chunk.slots[index];
        {
            let mut st = slot.lock();
            *st = State::new(Some(stream));
            slot.born
                .store(peers.round.load(Ordering::Relaxed), Ordering::Relaxed);
            slot.generation.store(generation, Ordering::Release);
            slot.closed.store(false, Ordering::Release);
        }
        Arc::new(Peer {
            peers: peers.clone(),
            chunk,
            chunk_no,
            index,
            generation,
        })
    }

    fn slot(&self) -> &Slot {
        &self.chunk.slots[self.index]
    }

    /// How topics name this peer.
    pub fn member(&self) -> Member {
        let id = MemberId {
            index: self.index,
            generation: self.generation,
        };
        Member::new(self.chunk.clone(), id)
    }

    /// Sends what the subscription starts with, a chunk at a time as the
    /// socket drains (the connection's task fetching each further page
    /// when [`Peer::wants_page`] asks), then the live batches held
    /// meanwhile that it does not cover.
    pub fn start(&self, c: Catchup) {
        self.slot().start(c)
    }

    /// The seqs `(next, through)` of the catch-up still to fetch, once the
    /// page before is all handed to the kernel.
    pub fn wants_page(&self) -> Option<(u64, u64)> {
        let st = self.slot().lock();
        let idle = st.pending.is_empty() && st.catchup.is_empty();
        (idle && st.closed == Closed::Open && !st.failed)
            .then_some(st.rest)
            .flatten()
    }

    /// The next page of the catch-up, from [`Peer::wants_page`]'s `next`
    /// on, gapless. `None` (the history it needs is gone) closes the peer
    /// as slow: it resumes from what it got, and a resume that cannot be
    /// replayed gets a snapshot.
    pub fn add_page(&self, page: Option<Vec<(u64, Payload)>>) {
        let slot = self.slot();
        let mut st = slot.lock();
        let Some((next, through)) = st.rest else {
            return;
        };
        let fits = page.as_ref().is_some_and(|p| {
            !p.is_empty()
                && p.iter()
                    .enumerate()
                    .all(|(i, (s, _))| *s == next + i as u64 && *s <= through)
        });
        let Some(page) = page.filter(|_| fits) else {
            slot.close_locked(&mut st, Closed::Slow);
            return;
        };
        let last = page.last().map_or(next, |(s, _)| *s);
        st.rest = (last < through).then_some((last + 1, through));
        st.catchup.extend(page);
        slot.feed(&mut st);
    }

    /// Stops taking messages for `why`; the first reason given wins.
    pub fn close(&self, why: Closed) {
        let slot = self.slot();
        slot.close_locked(&mut slot.lock(), why);
    }

    /// Something is queued, and why the peer closed (`Open` if it has
    /// not; `Gone` once its socket failed).
    pub fn status(&self) -> (bool, Closed) {
        let st = self.slot().lock();
        let closed = if st.failed { Closed::Gone } else { st.closed };
        (!st.pending.is_empty(), closed)
    }

    /// Where a client closed now should resume: `?after=` this.
    pub fn sent_through(&self) -> u64 {
        self.slot().lock().sent_through
    }

    /// Ready when [`Peer::status`] may have changed since the last time
    /// it was.
    pub fn poll_changed(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut st = self.slot().lock();
        if std::mem::take(&mut st.changed) {
            return Poll::Ready(());
        }
        if !st.task.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            st.task = Some(cx.waker().clone());
        }
        Poll::Pending
    }

    /// The client's pong: life, if it answers our last ping.
    pub fn pong(&self, payload: &[u8]) {
        let mut st = self.slot().lock();
        if st.pong_due.is_some_and(|due| payload == due.to_be_bytes()) {
            st.pong_due = None;
        }
    }

    /// Counts a ping from the client: how many since our last.
    pub fn client_ping(&self) -> u32 {
        let mut st = self.slot().lock();
        st.client_pings += 1;
        st.client_pings
    }

    /// Writes what is queued, waiting for room in the socket; ready when
    /// nothing is left.
    pub fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let slot = self.slot();
        loop {
            let mut st = slot.lock();
            match write_pending(&mut st) {
                // Drained: the next piece of the catch-up, if any.
                Ok(()) if slot.feed(&mut st) => continue,
                Ok(()) => return Poll::Ready(Ok(())),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => {
                    slot.fail(&mut st);
                    return Poll::Ready(Err(e));
                }
            }
            let Some(stream) = &st.stream else {
                return Poll::Ready(Err(io::ErrorKind::NotConnected.into()));
            };
            ready!(stream.poll_write_ready(cx))?;
        }
    }

    /// Ready when the socket may have something to read (or has failed).
    pub fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let st = self.slot().lock();
        let Some(stream) = &st.stream else {
            return Poll::Ready(Err(io::ErrorKind::NotConnected.into()));
        };
        stream.poll_read_ready(cx)
    }

    /// Reads what the socket has, without waiting: `Ok(0)` at its end,
    /// `WouldBlock` when it has nothing now.
    pub fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let st = self.slot().lock();
        let Some(stream) = &st.stream else {
            return Err(io::ErrorKind::NotConnected.into());
        };
        stream.try_read(buf)
    }

    /// A frame of the connection's own (pong, ping, close): after whatever
    /// is queued, never refused for being behind.
    pub fn write_control(&self, frame: Bytes) -> io::Result<()> {
        let slot = self.slot();
        let mut st = slot.lock();
        if st.failed {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        slot.queue(&mut st, frame, 0, 0);
        Ok(())
    }

    /// Ends the connection: closes the socket now, so its descriptor is
    /// free at once, not when the peer is dropped (a reconnect storm near
    /// the descriptor limit needs it back).
    pub fn shutdown(&self) {
        let slot = self.slot();
        let mut st = slot.lock();
        slot.fail(&mut st);
        drop(st.stream.take());
    }
}

impl Drop for Peer {
    /// Frees the slot: topics still naming this peer find another
    /// generation there and drop it.
    fn drop(&mut self) {
        let slot = self.slot();
        let old = {
            let mut st = slot.lock();
            slot.closed.store(true, Ordering::Release);
            slot.generation.store(0, Ordering::Release);
            std::mem::replace(&mut *st, State::new(None))
        };
        // The socket and queues go outside the lock.
        drop(old);
        self.peers.slots().free.push((self.chunk_no, self.index));
    }
}

impl Slot {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn start(&self, c: Catchup) {
        let mut st = self.lock();
        st.skip_through = c.skip_through;
        if st.closed != Closed::Open {
            st.held = None;
            return;
        }
        st.catchup = c.first.into();
        st.rest = c.rest;
        self.feed(&mut st);
    }

    /// While nothing is queued: frames the next piece of the catch-up and
    /// writes what the socket takes (queuing the rest), and once the
    /// catch-up is all out, the live batches held meanwhile. `true` if
    /// something is left queued for the connection's task to write; with
    /// `rest` left and the page done it stops, and the task fetches the
    /// next page.
    fn feed(&self, st: &mut State) -> bool {
        loop {
            if !st.pending.is_empty() {
                return true;
            }
            if st.held.is_none() || st.closed != Closed::Open {
                return false;
            }
            if st.catchup.is_empty() && st.rest.is_some() {
                return false;
            }
            if st.catchup.is_empty() {
                let held = st.held.take().unwrap_or_default();
                for b in held {
                    let (bytes, msgs) = b.after(st.skip_through);
                    if !self.queue(st, bytes, b.last_seq(), msgs) {
                        break;
                    }
                }
                return !st.pending.is_empty();
            }
            let mut size = 0;
            let mut last = 0;
            let mut take = Vec::new();
            while let Some((seq, p)) = st.catchup.front() {
                if size > 0 && size + p.len() > CATCHUP_CHUNK {
                    break;
                }
                size += p.len();
                last = *seq;
                take.push(p.clone());
                st.catchup.pop_front();
            }
            let bytes = crate::hub::frames::text_frames(&take);
            // Nothing is ahead of the catch-up, so it may be written now;
            // the held batches stay held behind it.
            let held = st.held.take();
            let queued = self.queue(st, bytes, last, 0);
            st.held = held;
            if !queued {
                return false;
            }
        }
    }

    /// Writes `bytes` now if nothing is queued ahead, else queues them.
    /// `false` when the peer is closed (as slow, if this overflowed it).
    fn queue(&self, st: &mut State, mut bytes: Bytes, last_seq: u64, msgs: usize) -> bool {
        if bytes.is_empty() {
            if st.pending.is_empty() {
                st.sent_through = st.sent_through.max(last_seq);
            }
            return true;
        }
        let mut started = false;
        // Before `start`, nothing may overtake the first messages.
        if st.pending.is_empty() && st.held.is_none() {
            let Some(stream) = &st.stream else {
                return false;
            };
            match send_now(stream, &bytes) {
                Ok(n) if n == bytes.len() => {
                    st.sent_through = st.sent_through.max(last_seq);
                    return true;
                }
                Ok(n) => {
                    bytes.advance(n);
                    started = n > 0;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => {
                    self.fail(st);
                    return false;
                }
            }
        } else if st.pending_msgs + msgs > SUBSCRIBER_QUEUE {
            self.close_locked(st, Closed::Slow);
            return false;
        }
        // Control frames (ping, pong, close: no seq, no message) are a few
        // bytes and must always get through; everything else counts.
        let control = last_seq == 0 && msgs == 0;
        if !control && st.pending_bytes + bytes.len() > SUBSCRIBER_QUEUE_BYTES {
            // A frame the kernel took part of is still finished first, and
            // so counts in where the client resumes.
            if started {
                st.pending_bytes += bytes.len();
                st.pending_msgs += msgs;
                st.pending.push_back(Entry {
                    bytes,
                    last_seq,
                    msgs,
                    started,
                });
            }
            self.close_locked(st, Closed::Slow);
            return false;
        }
        let was_empty = st.pending.is_empty();
        st.pending_msgs += msgs;
        st.pending_bytes += bytes.len();
        st.pending.push_back(Entry {
            bytes,
            last_seq,
            msgs,
            started,
        });
        if was_empty {
            // The task now waits for room in the socket.
            Self::wake(st);
        }
        true
    }

    /// Tells the connection's task to look at the state.
    fn wake(st: &mut State) {
        st.changed = true;
        if let Some(task) = st.task.take() {
            task.wake();
        }
    }

    /// Pings the peer, or closes it if it did not answer the last ping.
    fn ping(&self, salt: u64) {
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        let mut st = self.lock();
        // Until started, nothing may overtake the first messages: the
        // next round pings it.
        if st.closed != Closed::Open || st.held.is_some() {
            return;
        }
        if st.pong_due.is_some() {
            tracing::debug!("no pong within a ping period; closing");
            self.close_locked(&mut st, Closed::Gone);
            return;
        }
        let generation = self.generation.load(Ordering::Relaxed);
        let token = salt ^ generation.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        st.pong_due = Some(token);
        st.client_pings = 0;
        self.queue(&mut st, super::connection::ping_frame(token), 0, 0);
    }

    fn close_locked(&self, st: &mut State, why: Closed) {
        if st.closed != Closed::Open {
            return;
        }
        st.closed = why;
        self.closed.store(true, Ordering::Release);
        if why == Closed::Slow {
            crate::metrics::slow_close();
        }
        // Pending messages are sent before "going away"; otherwise the
        // backlog is dropped, except a frame already begun, which must be
        // finished before the close frame.
        // What was never sent of a catch-up is not sent now: the client
        // resumes from what it got.
        st.catchup.clear();
        st.rest = None;
        if why != Closed::Shutdown {
            st.pending.retain(|e| e.started);
            st.pending_msgs = st.pending.iter().map(|e| e.msgs).sum();
            st.pending_bytes = st.pending.iter().map(|e| e.bytes.len()).sum();
        }
        // What is left goes out before the close frame, so the close's
        // `?after=` must count it: a begun frame's messages reach the
        // client whole, and naming an earlier seq would replay them.
        if let Some(last) = st.pending.iter().map(|e| e.last_seq).max() {
            st.sent_through = st.sent_through.max(last);
        }
        Self::wake(st);
    }

    fn fail(&self, st: &mut State) {
        st.failed = true;
        st.pending.clear();
        st.pending_msgs = 0;
        st.pending_bytes = 0;
        self.close_locked(st, Closed::Gone);
    }

    /// The slot's state if `generation` still holds it.
    fn lock_for(&self, generation: u64) -> Option<MutexGuard<'_, State>> {
        let st = self.lock();
        (self.generation.load(Ordering::Relaxed) == generation).then_some(st)
    }
}

/// Writes queued entries until none is left (`Ok`) or the socket is full
/// (`WouldBlock`).
fn write_pending(st: &mut State) -> io::Result<()> {
    if st.failed {
        return Err(io::ErrorKind::BrokenPipe.into());
    }
    let Some(stream) = &st.stream else {
        return Err(io::ErrorKind::NotConnected.into());
    };
    while !st.pending.is_empty() {
        let slices: Vec<IoSlice<'_>> = st
            .pending
            .iter()
            .take(MAX_IOVECS)
            .map(|e| IoSlice::new(&e.bytes))
            .collect();
        let mut n = stream.try_write_vectored(&slices)?;
        while n > 0 {
            let e = st.pending.front_mut().expect("written bytes were queued");
            if n < e.bytes.len() {
                e.bytes.advance(n);
                e.started = true;
                st.pending_bytes -= n;
                break;
            }
            n -= e.bytes.len();
            let e = st.pending.pop_front().expect("checked above");
            st.pending_bytes -= e.bytes.len();
            st.pending_msgs -= e.msgs;
            st.sent_through = st.sent_through.max(e.last_seq);
        }
    }
    Ok(())
}

/// One non-blocking `send` straight to the socket. tokio's `try_write`
/// would first read the socket's readiness, kept apart from the peer: one
/// more cold cache line per subscriber in a 10,000-socket pass. Skipping
/// it is harmless: readiness tokio has not seen only means that, after a
/// `WouldBlock` here, the task's flush meets the full socket itself before
/// it waits.
fn send_now(stream: &TcpStream, bytes: &[u8]) -> io::Result<usize> {
    socket2::SockRef::from(stream).send(bytes)
}

impl SubscriberGroup for Chunk {
    fn deliver(&self, id: MemberId, batch: &Arc<Frames>) -> bool {
        let slot = &self.slots[id.index];
        if slot.closed.load(Ordering::Acquire) {
            return false;
        }
        let Some(mut st) = slot.lock_for(id.generation) else {
            return false;
        };
        if st.closed != Closed::Open {
            return false;
        }
        if let Some(held) = st.held.as_mut() {
            held.push(batch.clone());
            let msgs: usize = held.iter().map(|b| b.len()).sum();
            if msgs > SUBSCRIBER_QUEUE {
                slot.close_locked(&mut st, Closed::Slow);
                return false;
            }
            return true;
        }
        let (bytes, msgs) = batch.after(st.skip_through);
        slot.queue(&mut st, bytes, batch.last_seq(), msgs)
    }

    fn close(&self, id: MemberId, why: Closed) {
        let slot = &self.slots[id.index];
        if let Some(mut st) = slot.lock_for(id.generation) {
            slot.close_locked(&mut st, why);
        }
    }

    fn is_closed(&self, id: MemberId) -> bool {
        let slot = &self.slots[id.index];
        slot.generation.load(Ordering::Acquire) != id.generation
            || slot.closed.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::Payload;
    use tokio::io::AsyncReadExt;

    /// A peer on a real loopback socket with small kernel buffers (so a
    /// client that does not read fills them quickly), and the client end.
    async fn pair() -> (Arc<Peer>, TcpStream) {
        pair_in(&Peers::new()).await
    }

    async fn pair_in(peers: &Arc<Peers>) -> (Arc<Peer>, TcpStream) {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_send_buffer_size(4096).unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = socket.listen(1).unwrap();
        let client = tokio::net::TcpSocket::new_v4().unwrap();
        client.set_recv_buffer_size(4096).unwrap();
        let client = client
            .connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (Peer::new(peers, server), client)
    }

    /// Messages whose text is their seq, zero-padded to `size` bytes.
    fn batch(seqs: std::ops::RangeInclusive<u64>, size: usize) -> Arc<Frames> {
        let msgs: Vec<(u64, Payload)> = seqs
            .map(|s| {
                let digits = s.to_string();
                let pad = "0".repeat(size.saturating_sub(digits.len()));
                (s, Payload::from(pad + &digits))
            })
            .collect();
        Arc::new(Frames::new(&msgs))
    }

    /// The seqs of the whole frames in `bytes`; panics on a torn frame.
    fn decode(bytes: &[u8]) -> Vec<u64> {
        crate::hub::frames::decode_text_frames(bytes)
            .iter()
            .map(|t| t.parse().unwrap())
            .collect()
    }

    /// Everything the client receives until the line is quiet.
    async fn read_available(client: &mut TcpStream) -> Vec<u8> {
        let mut got = Vec::new();
        let mut buf = [0u8; 65536];
        while let Ok(Ok(n)) =
            tokio::time::timeout(std::time::Duration::from_millis(200), client.read(&mut buf)).await
        {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        got
    }

    /// Drives the peer's queue out, as the connection's task does.
    fn flush_in_background(peer: &Arc<Peer>) -> tokio::task::JoinHandle<io::Result<()>> {
        let peer = peer.clone();
        tokio::spawn(async move { std::future::poll_fn(|cx| peer.poll_flush(cx)).await })
    }

    #[tokio::test]
    async fn what_the_first_messages_cover_is_left_out() {
        let (peer, mut client) = pair().await;
        // Published between registering and the snapshot: held.
        assert!(peer.member().deliver(&batch(4..=6, 1)));
        // The snapshot covers everything through 5.
        peer.start(Catchup::whole(vec![(5, Payload::from("5"))], 5));
        assert!(peer.member().deliver(&batch(7..=7, 1)));
        // Committed before the snapshot was read, published after: skipped.
        assert!(peer.member().deliver(&batch(5..=5, 1)));
        assert!(peer.member().deliver(&batch(8..=9, 1)));
        assert_eq!(decode(&read_available(&mut client).await), [5, 6, 7, 8, 9]);
        assert_eq!(peer.status(), (false, Closed::Open));
        assert_eq!(peer.sent_through(), 9);
    }

    #[tokio::test]
    async fn a_peer_overrun_before_it_started_resumes_from_what_it_was_sent() {
        let (peer, mut client) = pair().await;
        for s in 1..=(SUBSCRIBER_QUEUE as u64 + 1) {
            peer.member().deliver(&batch(s..=s, 1));
        }
        assert_eq!(peer.status().1, Closed::Slow);
        // The snapshot covers 5, but it is never sent.
        peer.start(Catchup::whole(vec![(5, Payload::from("5"))], 5));
        assert!(
            read_available(&mut client).await.is_empty(),
            "nothing is sent"
        );
        assert_eq!(peer.sent_through(), 0, "so ?after points before everything");
    }

    #[tokio::test]
    async fn a_full_socket_queues_in_order_and_the_flush_finishes_it() {
        let (peer, mut client) = pair().await;
        peer.start(Catchup::whole(Vec::new(), 0));
        // 200 messages of 300 bytes: far more than both kernel buffers.
        for s in 1..=200 {
            assert!(peer.member().deliver(&batch(s..=s, 300)));
        }
        assert!(peer.status().0, "the rest waits in the queue");
        let flusher = flush_in_background(&peer);
        let got = decode(&read_available(&mut client).await);
        flusher.await.unwrap().unwrap();
        assert_eq!(got, (1..=200).collect::<Vec<_>>());
        assert_eq!(peer.status(), (false, Closed::Open));
    }

    #[tokio::test]
    async fn a_peer_that_stops_reading_is_closed_as_slow_without_tearing_a_frame() {
        let (peer, mut client) = pair().await;
        peer.start(Catchup::whole(Vec::new(), 0));
        // Larger than the socket takes: the kernel has part of it.
        assert!(peer.member().deliver(&batch(1..=1, 100_000)));
        let mut taken = 1;
        for s in 2..=(SUBSCRIBER_QUEUE as u64 * 2) {
            if !peer.member().deliver(&batch(s..=s, 10)) {
                break;
            }
            taken = s;
        }
        assert_eq!(
            taken, SUBSCRIBER_QUEUE as u64,
            "the queue holds its limit, then closes"
        );
        assert_eq!(peer.status().1, Closed::Slow);
        assert_eq!(
            peer.sent_through(),
            1,
            "the close's ?after counts the begun frame, sent before it"
        );
        assert!(
            !peer.member().deliver(&batch(9999..=9999, 1)),
            "nothing more is taken"
        );
        // The connection's close frame follows what is left: only the frame
        // the socket had begun, which must be finished first.
        peer.write_control(Bytes::from_static(&[0x88, 0x00]))
            .unwrap();
        let flusher = flush_in_background(&peer);
        let got = read_available(&mut client).await;
        flusher.await.unwrap().unwrap();
        assert_eq!(
            &got[got.len() - 2..],
            &[0x88, 0x00],
            "the close frame comes last"
        );
        assert_eq!(decode(&got[..got.len() - 2]), [1]);
        assert_eq!(peer.sent_through(), 1);
    }

    /// A replay of `n` messages of `size` bytes whose seqs end at `last`.
    fn replay(last: u64, n: u64, size: usize) -> Vec<(u64, Payload)> {
        (last + 1 - n..=last)
            .map(|s| {
                let digits = s.to_string();
                let p = Payload::from("0".repeat(size.saturating_sub(digits.len())) + &digits);
                (s, p)
            })
            .collect()
    }

    /// What the connection's task does for a paged catch-up: fetches each
    /// page (here made up, `page` messages of `size` bytes) when asked,
    /// and flushes.
    fn serve_pages(
        peer: &Arc<Peer>,
        page: u64,
        size: usize,
    ) -> tokio::task::JoinHandle<io::Result<()>> {
        let peer = peer.clone();
        tokio::spawn(async move {
            loop {
                if let Some((next, through)) = peer.wants_page() {
                    let last = through.min(next + page - 1);
                    peer.add_page(Some(replay(last, last + 1 - next, size)));
                    continue;
                }
                std::future::poll_fn(|cx| peer.poll_flush(cx)).await?;
                if peer.wants_page().is_none() {
                    return Ok(());
                }
            }
        })
    }

    #[tokio::test]
    async fn a_paged_catch_up_reaches_a_reader_whole_and_in_order() {
        let (peer, mut client) = pair().await;
        peer.start(Catchup {
            first: replay(100, 100, 300),
            rest: Some((101, 2400)),
            skip_through: 2400,
        });
        assert!(peer.member().deliver(&batch(2400..=2402, 300)));
        let server = serve_pages(&peer, 64, 300);
        let got = decode(&read_available(&mut client).await);
        server.await.unwrap().unwrap();
        assert_eq!(got, (1..=2402).collect::<Vec<u64>>());
        assert_eq!(peer.sent_through(), 2402);
    }

    #[tokio::test]
    async fn a_peer_that_never_reads_a_paged_catch_up_pins_one_page() {
        let (peer, _client) = pair().await;
        peer.start(Catchup {
            first: replay(64, 64, 400),
            rest: Some((65, 5000)),
            skip_through: 5000,
        });
        let server = serve_pages(&peer, 64, 400);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        {
            let st = peer.slot().lock();
            let waiting: usize = st.catchup.iter().map(|(_, p)| p.len()).sum();
            assert!(
                st.pending_bytes <= CATCHUP_CHUNK + 500 && waiting <= 64 * 400,
                "queued {}, page left {waiting}",
                st.pending_bytes
            );
            let (next, _) = st.rest.expect("most of it is never fetched");
            assert!(next < 1000, "fetched through {next}");
        }
        server.abort();
    }

    #[tokio::test]
    async fn a_page_with_a_gap_closes_the_peer_as_slow_where_it_got_to() {
        let (peer, mut client) = pair().await;
        peer.start(Catchup {
            first: replay(10, 10, 10),
            rest: Some((11, 50)),
            skip_through: 50,
        });
        assert_eq!(peer.wants_page(), Some((11, 50)));
        // Seq 11 was pruned from the store meanwhile.
        peer.add_page(Some(replay(20, 9, 10)));
        assert_eq!(peer.status().1, Closed::Slow);
        assert_eq!(
            decode(&read_available(&mut client).await),
            (1..=10).collect::<Vec<_>>()
        );
        assert_eq!(peer.sent_through(), 10, "it resumes after what it got");
        assert_eq!(peer.wants_page(), None);
    }

    #[tokio::test]
    async fn a_big_catch_up_is_framed_as_the_socket_drains_and_reaches_a_reader_whole() {
        let (peer, mut client) = pair().await;
        // 3,000 messages of 500 bytes: 1.5 MB, more than a subscriber may
        // have queued; and live batches arriving meanwhile.
        peer.start(Catchup::whole(replay(3000, 3000, 500), 3000));
        assert_eq!(peer.status().1, Closed::Open, "a catch-up is not a backlog");
        {
            let st = peer.slot().lock();
            assert!(
                st.pending_bytes <= CATCHUP_CHUNK + 600,
                "one chunk queued, {}",
                st.pending_bytes
            );
        }
        assert!(peer.member().deliver(&batch(2999..=3001, 500)));
        assert!(peer.member().deliver(&batch(3002..=3002, 500)));
        let flusher = flush_in_background(&peer);
        // The flush runs on until all is written; the line is quiet then.
        let got = decode(&read_available(&mut client).await);
        flusher.await.unwrap().unwrap();
        assert_eq!(
            got,
            (1..=3002).collect::<Vec<u64>>(),
            "every message once, in order"
        );
        assert_eq!(peer.sent_through(), 3002);
    }

    #[tokio::test]
    async fn a_peer_that_never_reads_its_catch_up_holds_a_chunk_and_is_closed_by_live_ones() {
        let (peer, _client) = pair().await;
        peer.start(Catchup::whole(replay(5000, 5000, 400), 5000));
        let flusher = flush_in_background(&peer);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        {
            let st = peer.slot().lock();
            assert!(
                st.pending_bytes <= CATCHUP_CHUNK + 500,
                "{}",
                st.pending_bytes
            );
            assert_eq!(st.closed, Closed::Open);
        }
        // Live messages wait behind the catch-up, counted; too many: slow.
        let mut taken = 0;
        for s in 5001..=5001 + SUBSCRIBER_QUEUE as u64 {
            if !peer.member().deliver(&batch(s..=s, 10)) {
                break;
            }
            taken += 1;
        }
        assert_eq!(taken, SUBSCRIBER_QUEUE);
        assert_eq!(peer.status().1, Closed::Slow);
        assert!(peer.slot().lock().catchup.is_empty(), "the rest is dropped");
        flusher.abort();
    }

    #[tokio::test]
    async fn a_peer_is_closed_as_slow_past_a_mebibyte_queued() {
        let (peer, mut client) = pair().await;
        peer.start(Catchup::whole(Vec::new(), 0));
        // The kernel takes a little of a 900 KB message, the rest queues.
        assert!(peer.member().deliver(&batch(1..=1, 900_000)));
        for s in 2..=101 {
            assert!(peer.member().deliver(&batch(s..=s, 100)), "seq {s}");
        }
        // One of 200 KB no longer fits in the mebibyte.
        assert!(!peer.member().deliver(&batch(102..=102, 200_000)));
        assert_eq!(peer.status().1, Closed::Slow);
        assert_eq!(peer.sent_through(), 1, "the begun frame will be sent whole");
        peer.write_control(Bytes::from_static(&[0x88, 0x00]))
            .unwrap();
        let flusher = flush_in_background(&peer);
        let got = read_available(&mut client).await;
        flusher.await.unwrap().unwrap();
        assert_eq!(&got[got.len() - 2..], &[0x88, 0x00]);
        assert_eq!(decode(&got[..got.len() - 2]), [1], "only the begun frame");
    }

    #[tokio::test]
    async fn control_frames_keep_their_place_behind_queued_messages() {
        let (peer, mut client) = pair().await;
        peer.start(Catchup::whole(Vec::new(), 0));
        for s in 1..=100 {
            peer.member().deliver(&batch(s..=s, 300));
        }
        // A pong written now must not jump ahead of queued messages.
        peer.write_control(Bytes::from_static(&[0x8a, 0x00]))
            .unwrap();
        peer.member().deliver(&batch(101..=101, 300));
        let flusher = flush_in_background(&peer);
        let got = read_available(&mut client).await;
        flusher.await.unwrap().unwrap();
        let pong = got
            .windows(2)
            .position(|w| w == [0x8a, 0x00])
            .expect("the pong was sent");
        assert_eq!(decode(&got[..pong]), (1..=100).collect::<Vec<_>>());
        assert_eq!(decode(&got[pong + 2..]), [101]);
    }

    #[test]
    fn a_slot_stays_small() {
        // Every idle screen holds one, and the fan-out walks them: see
        // BENCHMARKS.md, "Footprint".
        let size = std::mem::size_of::<Slot>();
        assert!(size <= 256, "a slot is {size} bytes");
    }

    #[tokio::test]
    async fn a_peer_is_pinged_a_period_after_it_came_and_closed_if_it_does_not_answer() {
        let peers = Peers::new();
        // Three rounds a period; the peer comes at round 0.
        let (peer, mut client) = pair_in(&peers).await;
        let (quiet, mut quiet_client) = pair_in(&peers).await;
        peer.start(Catchup::whole(Vec::new(), 0));
        quiet.start(Catchup::whole(Vec::new(), 0));
        for round in 1..3 {
            peers.ping(round, 3);
        }
        assert!(
            read_available(&mut client).await.is_empty(),
            "not before a period"
        );
        peers.ping(3, 3);
        let ping = read_available(&mut client).await;
        assert_eq!(&ping[..2], &[0x89, 0x08], "a ping with an 8-byte payload");
        assert_eq!(&read_available(&mut quiet_client).await[..2], &[0x89, 0x08]);
        // An answer that is not to this ping does not count; the right one does.
        peer.pong(&[0; 8]);
        quiet.pong(&[0; 8]);
        peer.pong(&ping[2..10]);
        for round in 4..=6 {
            peers.ping(round, 3);
        }
        assert_eq!(peer.status(), (false, Closed::Open));
        assert_eq!(
            quiet.status(),
            (false, Closed::Gone),
            "no pong within a period"
        );
        let again = read_available(&mut client).await;
        assert_eq!(&again[..2], &[0x89, 0x08], "pinged again a period later");
        assert_ne!(again, ping, "a new payload: an old pong does not answer it");
    }

    #[tokio::test]
    async fn shutdown_closes_the_socket_while_others_still_hold_the_peer() {
        let (peer, mut client) = pair().await;
        peer.start(Catchup::whole(Vec::new(), 0));
        let held_by_a_topic = peer.member();
        peer.shutdown();
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), client.read(&mut buf))
            .await
            .expect("the client sees the end at once")
            .unwrap_or(0);
        assert_eq!(n, 0);
        assert!(held_by_a_topic.is_closed());
        assert!(!held_by_a_topic.deliver(&batch(1..=1, 1)));
    }

    #[tokio::test]
    async fn a_reused_slot_takes_nothing_meant_for_its_last_peer() {
        let peers = Peers::new();
        let (first, _client) = pair_in(&peers).await;
        let (_other, _other_client) = pair_in(&peers).await;
        first.start(Catchup::whole(Vec::new(), 0));
        let (chunk, index) = (first.chunk.clone(), first.index);
        let stale = first.member();
        drop(first);
        assert!(stale.is_closed());
        // The most recently freed slot is handed out first.
        let (next, mut client) = pair_in(&peers).await;
        assert!(Arc::ptr_eq(&next.chunk, &chunk) && next.index == index);
        next.start(Catchup::whole(Vec::new(), 0));
        assert!(stale.is_closed(), "still closed after reuse");
        assert!(!stale.deliver(&batch(1..=1, 1)));
        stale.close(Closed::Slow);
        assert_eq!(
            next.status(),
            (false, Closed::Open),
            "the close was not for it"
        );
        assert!(next.member().deliver(&batch(2..=2, 1)));
        assert_eq!(decode(&read_available(&mut client).await), [2]);
    }

    #[tokio::test]
    async fn a_broken_socket_closes_the_peer() {
        let (peer, client) = pair().await;
        peer.start(Catchup::whole(Vec::new(), 0));
        drop(client);
        // The first writes may still be accepted by the kernel; the reset
        // they provoke fails a later one.
        let mut alive = true;
        for s in 1..=50 {
            alive = peer.member().deliver(&batch(s..=s, 10));
            if !alive {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(!alive);
        assert_eq!(peer.status(), (false, Closed::Gone));
        assert!(peer
            .write_control(Bytes::from_static(&[0x88, 0x00]))
            .is_err());
    }
}
