//! What a topic delivers to: in the server, a WebSocket connection's socket
//! (`gateway::Peer`); in tests, anything that records.

use std::sync::Arc;

use super::frames::Batch;

/// Why a subscriber stopped taking messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Closed {
    /// Still open.
    Open,
    /// The server is shutting down: send what is pending, then close
    /// "going away".
    Shutdown,
    /// The subscriber fell more than [`super::SUBSCRIBER_QUEUE`] messages
    /// behind.
    Slow,
    /// The connection ended or failed.
    Gone,
}

/// One subscriber of one topic.
///
/// `deliver` is called by the fan-out for every subscriber of a topic in
/// turn, so it must never wait: a subscriber that cannot take a batch now
/// queues it (bounded) or closes itself.
pub trait Subscriber: Send + Sync {
    /// Takes one publish, in seq order after the previous one. `false` when
    /// the subscriber is closed (now or before) and should be dropped.
    fn deliver(&self, batch: &Arc<Batch>) -> bool;

    /// Stops taking messages for `why`; the first reason given wins.
    fn close(&self, why: Closed);

    /// Cheap: checked for every subscriber at every publish.
    fn is_closed(&self) -> bool;
}
