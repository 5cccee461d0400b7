//! What a topic delivers to: in the server, a WebSocket connection's socket
//! (`gateway::Peer`); in tests, anything that records.

use std::sync::Arc;

use super::frames::Frames;

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

/// Subscribers whose state is kept together, each named by a
/// [`MemberId`]: in the server, the slots of connections' sockets
/// (`gateway::Peer`), in tests anything that records.
///
/// The grouping is for speed: the fan-out visits every subscriber of a
/// topic at every call, and what it touches of each should share pages
/// with the others (see `gateway::peer`).
///
/// `deliver` is called by the fan-out for every subscriber of a topic in
/// turn, so it must never wait: a subscriber that cannot take a batch now
/// queues it (bounded) or closes itself.
pub trait SubscriberGroup: Send + Sync {
    /// Takes one publish, in seq order after the previous one. `false` when
    /// the subscriber is closed (now or before, or long gone) and should be
    /// dropped.
    fn deliver(&self, id: MemberId, batch: &Arc<Frames>) -> bool;

    /// Stops taking messages for `why`; the first reason given wins.
    fn close(&self, id: MemberId, why: Closed);

    /// Cheap, without waiting on the subscriber.
    fn is_closed(&self, id: MemberId) -> bool;
}

/// Which member of a group: its place and the generation of whoever held
/// the place when it subscribed (places are reused; a stale id is closed).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemberId {
    pub index: usize,
    pub generation: u64,
}

/// One subscriber of one topic, as the topic keeps it.
#[derive(Clone)]
pub struct Member {
    group: Arc<dyn SubscriberGroup>,
    id: MemberId,
}

impl Member {
    pub fn new(group: Arc<dyn SubscriberGroup>, id: MemberId) -> Member {
        Member { group, id }
    }

    /// See [`SubscriberGroup::deliver`].
    pub fn deliver(&self, batch: &Arc<Frames>) -> bool {
        self.group.deliver(self.id, batch)
    }

    /// See [`SubscriberGroup::close`].
    pub fn close(&self, why: Closed) {
        self.group.close(self.id, why)
    }

    /// See [`SubscriberGroup::is_closed`].
    pub fn is_closed(&self) -> bool {
        self.group.is_closed(self.id)
    }

    /// The same subscriber (same group, same member).
    pub fn same(&self, other: &Member) -> bool {
        Arc::ptr_eq(&self.group, &other.group) && self.id == other.id
    }
}
