//! One topic: a ring of recent messages and the subscribers' outboxes.

use std::collections::VecDeque;
use std::sync::Arc;

use super::outbox::{Closed, Outbox, Pushed};
use super::Payload;
use crate::store::EVENT_RING;

/// A message and its sequence number: the channel's `seq` for floors and
/// halls, the hall sequence of the command that made it for tickets.
pub type Sequenced = (u64, Payload);

/// What a connection reads from.
pub struct Subscription {
    /// Messages to send before anything from the outbox: a snapshot or a
    /// replay.
    pub first: Vec<Payload>,
    /// Live messages. Those with seq ≤ `skip_through` are already covered
    /// by `first` (the subscriber registers before its snapshot is taken,
    /// so nothing falls between the two) and must be skipped.
    pub outbox: Arc<Outbox>,
    pub skip_through: u64,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        // Lets the hub drop this subscriber at its next publish or prune.
        self.outbox.close(Closed::Gone);
    }
}

/// A topic's ring and subscribers.
pub struct Topic {
    /// Newest messages with their seq, oldest first.
    ring: VecDeque<Sequenced>,
    /// Ring capacity; 0 for ticket topics, which need no replay.
    ring_cap: usize,
    last: u64,
    subs: Vec<Arc<Outbox>>,
}

impl Topic {
    /// A floor or hall topic, keeping [`EVENT_RING`] messages.
    pub fn with_ring() -> Topic {
        Topic {
            ring: VecDeque::new(),
            ring_cap: EVENT_RING,
            last: 0,
            subs: Vec::new(),
        }
    }

    /// A ticket topic.
    pub fn without_ring() -> Topic {
        Topic {
            ring_cap: 0,
            ..Topic::with_ring()
        }
    }

    /// Last published seq.
    pub fn last_seq(&self) -> u64 {
        self.last
    }

    /// Seq of the oldest message in the ring.
    pub fn first_seq(&self) -> Option<u64> {
        self.ring.front().map(|(s, _)| *s)
    }

    /// Messages with seq > `after`, if the ring still holds all of them.
    pub fn replay(&self, after: u64) -> Option<Vec<Payload>> {
        if after > self.last {
            return None;
        }
        let first = self.first_seq().unwrap_or(self.last + 1);
        if after + 1 < first {
            return None;
        }
        Some(
            self.ring
                .iter()
                .filter(|(s, _)| *s > after)
                .map(|(_, m)| m.clone())
                .collect(),
        )
    }

    /// Adds a subscriber.
    pub fn subscribe(&mut self, first: Vec<Payload>, skip_through: u64) -> Subscription {
        self.prune();
        let outbox = Arc::new(Outbox::default());
        self.subs.push(outbox.clone());
        Subscription {
            first,
            outbox,
            skip_through,
        }
    }

    /// Keeps the message in the ring and queues it to every subscriber.
    pub fn publish(&mut self, seq: u64, msg: &Payload) {
        self.publish_all(&[(seq, msg.clone())]);
    }

    /// Publishes one command's messages (in seq order) together: each
    /// subscriber gets all of them in one push and one wake, so its
    /// connection writes them with one syscall.
    pub fn publish_all(&mut self, msgs: &[Sequenced]) {
        let mut fresh = msgs;
        if self.ring_cap > 0 {
            // Already kept (start-up preload overlaps): never send twice.
            let skip = msgs.iter().take_while(|(s, _)| *s <= self.last).count();
            fresh = &msgs[skip..];
            for m in fresh {
                self.ring.push_back(m.clone());
            }
            while self.ring.len() > self.ring_cap {
                self.ring.pop_front();
            }
        }
        let Some((last, _)) = fresh.last() else {
            return;
        };
        self.last = self.last.max(*last);
        self.subs.retain(|s| s.push_all(fresh) == Pushed::Queued);
    }

    /// No live subscriber.
    pub fn is_idle(&self) -> bool {
        self.subs.iter().all(|s| s.is_closed())
    }

    /// Drops subscribers whose connection ended.
    pub fn prune(&mut self) {
        self.subs.retain(|s| !s.is_closed());
    }

    /// Closes every subscriber's outbox: connections close "going away".
    pub fn close_all(&mut self) {
        for s in self.subs.drain(..) {
            s.close(Closed::Shutdown);
        }
    }

    /// Live subscribers.
    pub fn subscribers(&self) -> usize {
        self.subs.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::SUBSCRIBER_QUEUE;

    fn msg(s: u64) -> Payload {
        Payload::from(format!("m{s}"))
    }

    async fn drain(sub: &Subscription) -> (Vec<u64>, Closed) {
        let mut out = Vec::new();
        let why = sub.outbox.drain(&mut out, usize::MAX).await;
        (out.into_iter().map(|(s, _)| s).collect(), why)
    }

    #[test]
    fn replay_covers_exactly_what_the_ring_holds() {
        let mut t = Topic::with_ring();
        for s in 1..=(EVENT_RING as u64 + 10) {
            t.publish(s, &msg(s));
        }
        let last = EVENT_RING as u64 + 10;
        assert_eq!(t.replay(last).unwrap().len(), 0);
        assert_eq!(
            t.replay(last - 3).unwrap(),
            vec![msg(last - 2), msg(last - 1), msg(last)]
        );
        assert_eq!(t.replay(10).unwrap().len(), EVENT_RING);
        assert!(t.replay(9).is_none(), "event 10 fell out of the ring");
        assert!(t.replay(last + 1).is_none(), "a future seq gets a snapshot");
    }

    #[tokio::test]
    async fn duplicate_publish_is_ignored() {
        let mut t = Topic::with_ring();
        let sub = t.subscribe(vec![], 0);
        t.publish(1, &msg(1));
        t.publish(1, &msg(1));
        t.publish(2, &msg(2));
        assert_eq!(drain(&sub).await, (vec![1, 2], Closed::Open));
    }

    #[tokio::test]
    async fn slow_subscriber_is_kicked_and_others_keep_receiving() {
        let mut t = Topic::with_ring();
        let slow = t.subscribe(vec![], 0);
        let fast = t.subscribe(vec![], 0);
        for s in 1..=(SUBSCRIBER_QUEUE as u64 + 1) {
            t.publish(s, &msg(s));
            assert_eq!(drain(&fast).await.0, vec![s]);
        }
        assert_eq!(drain(&slow).await, (vec![], Closed::Slow));
        assert_eq!(t.subscribers(), 1);
    }

    #[tokio::test]
    async fn close_all_ends_subscriptions_as_shutdown_after_pending() {
        let mut t = Topic::with_ring();
        let sub = t.subscribe(vec![], 0);
        t.publish(1, &msg(1));
        t.close_all();
        assert_eq!(drain(&sub).await, (vec![1], Closed::Open));
        assert_eq!(drain(&sub).await, (vec![], Closed::Shutdown));
    }

    #[test]
    fn a_dropped_subscription_is_pruned() {
        let mut t = Topic::with_ring();
        let sub = t.subscribe(vec![], 0);
        assert!(!t.is_idle());
        drop(sub);
        assert!(t.is_idle());
        t.prune();
        assert_eq!(t.subscribers(), 0);
    }
}
