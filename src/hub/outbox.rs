//! A subscriber's bounded outbound queue.
//!
//! Lighter than a channel for this job: an idle subscriber costs one small
//! allocation (no pre-allocated slots), pushing never waits, and the reader
//! takes everything pending at once so the connection writes it with one
//! flush.

use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::sync::Notify;

use super::{Payload, SUBSCRIBER_QUEUE};

/// Why an outbox stopped taking messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Closed {
    /// Still open.
    Open,
    /// The topic closed: the server is shutting down.
    Shutdown,
    /// The subscriber fell more than [`SUBSCRIBER_QUEUE`] messages behind.
    Slow,
    /// The connection ended.
    Gone,
}

struct State {
    queue: VecDeque<(u64, Payload)>,
    closed: Closed,
}

/// What a push did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pushed {
    Queued,
    /// The outbox is closed (now or before): drop the subscriber.
    Closed,
}

/// After a burst the queue's capacity is given back once it drains, so a
/// screen that once lagged does not hold that memory for weeks.
const KEEP_CAPACITY: usize = 16;

/// One subscriber's queue, shared by the hub (pushing) and the connection
/// (draining).
pub struct Outbox {
    state: Mutex<State>,
    ready: Notify,
}

impl Default for Outbox {
    fn default() -> Self {
        Outbox {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                closed: Closed::Open,
            }),
            ready: Notify::new(),
        }
    }
}

impl Outbox {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues messages; closes the outbox as slow when they do not fit.
    pub fn push_all(&self, msgs: &[(u64, Payload)]) -> Pushed {
        let mut st = self.state();
        if st.closed != Closed::Open {
            return Pushed::Closed;
        }
        if st.queue.len() + msgs.len() > SUBSCRIBER_QUEUE {
            st.closed = Closed::Slow;
            st.queue.clear();
            drop(st);
            self.ready.notify_one();
            return Pushed::Closed;
        }
        let first = st.queue.is_empty();
        st.queue.extend(msgs.iter().cloned());
        drop(st);
        // One wake per batch: later pushes find the reader already due.
        if first {
            self.ready.notify_one();
        }
        Pushed::Queued
    }

    /// Closes the outbox; the reader sees `why` after draining.
    pub fn close(&self, why: Closed) {
        let mut st = self.state();
        if st.closed == Closed::Open {
            st.closed = why;
        }
        drop(st);
        self.ready.notify_one();
    }

    /// The outbox no longer takes messages.
    pub fn is_closed(&self) -> bool {
        self.state().closed != Closed::Open
    }

    /// Waits until there is something to send, then moves up to `max`
    /// messages into `out`. Returns why the outbox closed once it is empty
    /// and closed; `Closed::Open` otherwise.
    pub async fn drain(&self, out: &mut Vec<(u64, Payload)>, max: usize) -> Closed {
        loop {
            {
                let mut st = self.state();
                if !st.queue.is_empty() {
                    let n = st.queue.len().min(max);
                    out.extend(st.queue.drain(..n));
                    if st.queue.is_empty() && st.queue.capacity() > KEEP_CAPACITY {
                        st.queue.shrink_to(KEEP_CAPACITY);
                    }
                    return Closed::Open;
                }
                if st.closed != Closed::Open {
                    return st.closed;
                }
            }
            self.ready.notified().await;
        }
    }
}
