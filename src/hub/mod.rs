//! Topic fan-out: every floor channel, hall channel and ticket channel is a
//! topic with a list of subscribers and, for floors and halls, a ring of
//! the newest events for `?after` catch-up.
//!
//! The store writer publishes here after each commit, in sequence order.
//! Publishing never waits: it keeps the messages in the ring and hands the
//! batch to the fan-out threads ([`fanout`]), which offer it to each
//! subscriber; a subscriber whose socket is full queues it, and one that
//! falls [`SUBSCRIBER_QUEUE`] messages behind is dropped and told why, so a
//! slow screen never delays a window's call or another screen.

mod fanout;
pub mod frames;
mod subscriber;
mod topic;

pub use fanout::Fanout;
pub use frames::Frames;
pub use subscriber::{Closed, Member, MemberId, SubscriberGroup};
pub use topic::{Delivery, Sequenced, Spread, Topic};

/// A message as sent: text already checked as UTF-8 once at publish, so
/// every delivery only bumps a reference count.
pub type Payload = tokio_tungstenite::tungstenite::Utf8Bytes;

/// Wraps encoded JSON for sending; JSON from `serde_json` is UTF-8.
pub fn payload(bytes: &bytes::Bytes) -> Payload {
    Payload::try_from(bytes.clone()).unwrap_or_else(|_| Payload::from("{}"))
}

use std::collections::HashMap;
use std::sync::Mutex;

use crate::queue::HallSpec;
use crate::store::StoredEvent;

/// Messages a subscriber may have queued before it is dropped as slow. A
/// lobby screen sees a few events a second; 1,024 is minutes of a busy
/// hall — a screen that far behind is stalled, and resumes with `?after`.
pub const SUBSCRIBER_QUEUE: usize = 1024;

/// Bytes a subscriber may have queued in the server (its catch-up
/// included) before it is dropped as slow (contract §13: 1 MiB). What the
/// kernel already took does not count: the socket's send buffer is fixed
/// (`server::SEND_BUFFER`).
pub const SUBSCRIBER_QUEUE_BYTES: usize = 1 << 20;

/// A ticket channel's message, for whoever follows `token`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TicketMessage {
    pub token: String,
    /// The hall seq the message reflects: a phone that connected later
    /// has it in its first message and skips it.
    pub seq: u64,
    pub msg: bytes::Bytes,
}

/// The topics of one hall.
pub struct HallTopics {
    pub hall: Mutex<Topic>,
    pub floors: HashMap<i32, Mutex<Topic>>,
    tickets: Mutex<HashMap<String, Topic>>,
}

/// All topics of all halls. Halls and floors are fixed at start.
pub struct Hub {
    halls: HashMap<String, HallTopics>,
    fanout: Fanout,
    spread: Spread,
}

impl Hub {
    /// Topics for every hall and floor.
    pub fn new<'a>(halls: impl IntoIterator<Item = &'a HallSpec>) -> Hub {
        let fanout = Fanout::start();
        let spread = Spread::new(fanout.threads());
        let halls = halls
            .into_iter()
            .map(|h| {
                let floors = h
                    .floors
                    .iter()
                    .map(|f| (f.number, Mutex::new(Topic::with_ring(spread.clone()))))
                    .collect();
                (
                    h.id.clone(),
                    HallTopics {
                        hall: Mutex::new(Topic::with_ring(spread.clone())),
                        floors,
                        tickets: Mutex::new(HashMap::new()),
                    },
                )
            })
            .collect();
        Hub {
            halls,
            fanout,
            spread,
        }
    }

    /// A hall's topics.
    pub fn hall(&self, hall: &str) -> Option<&HallTopics> {
        self.halls.get(hall)
    }

    /// Fills the rings from the store at start, without subscribers yet.
    pub fn preload(&self, hall: &str, events: &[StoredEvent]) {
        self.publish(hall, events, &[]);
    }

    /// Delivers committed events (in sequence order) and ticket-channel
    /// messages. Called only by the store writer's continuations, one at a
    /// time: so the fan-out gets each topic's batches in ring order.
    pub fn publish(&self, hall: &str, events: &[StoredEvent], tickets: &[TicketMessage]) {
        let Some(t) = self.halls.get(hall) else {
            return;
        };
        let mut out: Vec<Delivery> = Vec::new();
        if !events.is_empty() {
            let all: Vec<Sequenced> = events
                .iter()
                .map(|e| (e.hall_seq, payload(&e.hall_msg)))
                .collect();
            out.extend(lock(&t.hall).publish_all(&all));
        }
        // Per floor, in seq order, all of the command's events at once.
        let mut floors: Vec<i32> = events.iter().map(|e| e.floor).collect();
        floors.sort_unstable();
        floors.dedup();
        for floor in floors {
            let Some(topic) = t.floors.get(&floor) else {
                continue;
            };
            let mine: Vec<Sequenced> = events
                .iter()
                .filter(|e| e.floor == floor)
                .map(|e| (e.floor_seq, payload(&e.floor_msg)))
                .collect();
            out.extend(lock(topic).publish_all(&mine));
        }
        if !tickets.is_empty() {
            let mut map = lock(&t.tickets);
            for t in tickets {
                if let Some(topic) = map.get_mut(&t.token) {
                    out.extend(topic.publish(t.seq, &payload(&t.msg)));
                    if topic.is_idle() {
                        map.remove(&t.token);
                    }
                }
            }
        }
        self.fanout.send(out);
    }

    /// Tokens of the hall's tickets that someone follows right now.
    pub fn followed_tickets(&self, hall: &str) -> Vec<String> {
        let Some(t) = self.halls.get(hall) else {
            return Vec::new();
        };
        lock(&t.tickets)
            .iter()
            .filter(|(_, topic)| !topic.is_idle())
            .map(|(token, _)| token.clone())
            .collect()
    }

    /// Follows a ticket. The caller then reads the ticket's state and
    /// sends it first, skipping messages it already reflects.
    pub fn subscribe_ticket(&self, hall: &str, token: &str, sub: Member) -> Option<()> {
        let t = self.halls.get(hall)?;
        let mut map = lock(&t.tickets);
        map.entry(token.to_string())
            .or_insert_with(|| Topic::without_ring(self.spread.clone()))
            .subscribe(sub);
        Some(())
    }

    /// Ends every subscription: connections close with "going away".
    pub fn close_all(&self) {
        for t in self.halls.values() {
            lock(&t.hall).close_all();
            for f in t.floors.values() {
                lock(f).close_all();
            }
            let mut tickets = lock(&t.tickets);
            for topic in tickets.values_mut() {
                topic.close_all();
            }
            tickets.clear();
        }
    }

    /// Forgets ticket topics whose subscribers all left.
    pub fn prune(&self) {
        for t in self.halls.values() {
            lock(&t.tickets).retain(|_, topic| !topic.is_idle());
            for f in t.floors.values() {
                lock(f).prune();
            }
            lock(&t.hall).prune();
        }
    }
}

/// A poisoned topic lock means a panic mid-publish; the ring and list are
/// still structurally sound, so keep serving rather than cascade the panic.
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
