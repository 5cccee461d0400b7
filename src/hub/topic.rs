//! One topic: a ring of recent messages and the subscribers' queues.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::SUBSCRIBER_QUEUE;
use crate::store::EVENT_RING;

/// Why the hub stopped feeding a subscriber.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kick {
    /// Not kicked: the topic was closed (server shutting down).
    None = 0,
    /// Fell more than [`SUBSCRIBER_QUEUE`] messages behind.
    Slow = 1,
}

/// A message and its sequence number: the channel's `seq` for floors and
/// halls, the hall sequence of the command that made it for tickets.
pub type Sequenced = (u64, Bytes);

struct Subscriber {
    tx: mpsc::Sender<Sequenced>,
    kick: Arc<AtomicU8>,
}

/// What a connection reads from.
pub struct Subscription {
    /// Messages to send before anything from `rx`: a snapshot or a replay.
    pub first: Vec<Bytes>,
    /// Live messages. Those with seq ≤ `skip_through` are already covered
    /// by `first` (the subscriber registers before its snapshot is taken,
    /// so nothing falls between the two) and must be skipped.
    pub rx: mpsc::Receiver<Sequenced>,
    pub skip_through: u64,
    kick: Arc<AtomicU8>,
}

impl Subscription {
    /// Why `rx` ended.
    pub fn kick(&self) -> Kick {
        match self.kick.load(Ordering::Acquire) {
            1 => Kick::Slow,
            _ => Kick::None,
        }
    }
}

/// A topic's ring and subscribers.
pub struct Topic {
    /// Newest messages with their seq, oldest first.
    ring: VecDeque<Sequenced>,
    /// Ring capacity; 0 for ticket topics, which need no replay.
    ring_cap: usize,
    last: u64,
    subs: Vec<Subscriber>,
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
    pub fn replay(&self, after: u64) -> Option<Vec<Bytes>> {
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
    pub fn subscribe(&mut self, first: Vec<Bytes>, skip_through: u64) -> Subscription {
        self.prune();
        let (tx, rx) = mpsc::channel(SUBSCRIBER_QUEUE);
        let kick = Arc::new(AtomicU8::new(Kick::None as u8));
        self.subs.push(Subscriber {
            tx,
            kick: kick.clone(),
        });
        Subscription {
            first,
            rx,
            skip_through,
            kick,
        }
    }

    /// Keeps the message in the ring and queues it to every subscriber.
    pub fn publish(&mut self, seq: u64, msg: &Bytes) {
        if self.ring_cap > 0 {
            if seq <= self.last {
                // Already kept (start-up preload overlaps); never send twice.
                return;
            }
            self.ring.push_back((seq, msg.clone()));
            if self.ring.len() > self.ring_cap {
                self.ring.pop_front();
            }
        }
        self.last = self.last.max(seq);
        self.subs
            .retain(|s| match s.tx.try_send((seq, msg.clone())) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    s.kick.store(Kick::Slow as u8, Ordering::Release);
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            });
    }

    /// No live subscriber.
    pub fn is_idle(&self) -> bool {
        self.subs.iter().all(|s| s.tx.is_closed())
    }

    /// Drops subscribers whose connection ended.
    pub fn prune(&mut self) {
        self.subs.retain(|s| !s.tx.is_closed());
    }

    /// Drops every subscriber: their connections see the end of `rx`.
    pub fn close_all(&mut self) {
        self.subs.clear();
    }

    /// Live subscribers.
    pub fn subscribers(&self) -> usize {
        self.subs.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(s: u64) -> Bytes {
        Bytes::from(format!("m{s}"))
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

    #[test]
    fn duplicate_publish_is_ignored() {
        let mut t = Topic::with_ring();
        let mut sub = t.subscribe(vec![], 0);
        t.publish(1, &msg(1));
        t.publish(1, &msg(1));
        t.publish(2, &msg(2));
        assert_eq!(sub.rx.try_recv().unwrap().0, 1);
        assert_eq!(sub.rx.try_recv().unwrap().0, 2);
        assert!(sub.rx.try_recv().is_err());
    }

    #[test]
    fn slow_subscriber_is_kicked_and_others_keep_receiving() {
        let mut t = Topic::with_ring();
        let slow = t.subscribe(vec![], 0);
        let mut fast = t.subscribe(vec![], 0);
        for s in 1..=(SUBSCRIBER_QUEUE as u64 + 1) {
            t.publish(s, &msg(s));
            assert_eq!(fast.rx.try_recv().unwrap().0, s);
        }
        assert_eq!(slow.kick(), Kick::Slow);
        assert_eq!(fast.kick(), Kick::None);
        assert_eq!(t.subscribers(), 1);
    }
}
