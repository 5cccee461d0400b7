//! The seam between a committed command and the subscribers: the engine
//! hands each committed batch's events and ticket messages to a [`Bus`],
//! in commit order, and never to the hub directly.
//!
//! On one node the bus is the in-process [`Hub`]: publishing is fanning
//! out. With several nodes a bus carries the batch to every node (NATS,
//! say), and each node's hub feeds its own subscribers from it: which
//! floor, hall and ticket channels get what is decided from the committed
//! events where the subscriber is, so it works when the command ran on
//! another node. A bus must keep each hall's batches in order.

use crate::hub::Hub;
pub use crate::hub::TicketMessage;
use crate::store::StoredEvent;

/// What one committed command publishes.
#[derive(Clone, Debug, Default)]
pub struct Committed {
    pub hall: String,
    /// The hall's version once this batch committed (a cluster's order;
    /// 0 where the batch wrote nothing).
    pub version: u64,
    /// In seq order; each carries both channels' encodings, the bytes the
    /// store journaled, so a replay sends what the first delivery sent.
    pub events: Vec<StoredEvent>,
    pub tickets: Vec<TicketMessage>,
}

/// Carries committed batches to the subscribers.
pub trait Bus: Send + Sync + 'static {
    /// Publishes one committed batch. Called from the store writer's
    /// continuations, one at a time, in commit order: must not block.
    fn publish(&self, committed: &Committed);

    /// Tokens of the hall's tickets someone follows (on every node the
    /// bus reaches): only their ticket messages are rendered when their
    /// place in line moves.
    fn followed_tickets(&self, hall: &str) -> Vec<String>;
}

/// One node: the bus is the hub itself.
impl Bus for Hub {
    fn publish(&self, c: &Committed) {
        Hub::publish(self, &c.hall, &c.events, &c.tickets);
    }

    fn followed_tickets(&self, hall: &str) -> Vec<String> {
        Hub::followed_tickets(self, hall)
    }
}
