//! One topic: a ring of recent messages and the list of subscribers.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use super::frames::Frames;
use super::subscriber::{Closed, Member};
use super::Payload;
use crate::store::EVENT_RING;

/// A message and its sequence number: the channel's `seq` for floors and
/// halls, the hall sequence of the command that made it for tickets.
pub type Sequenced = (u64, Payload);

/// A topic's subscribers as handed to the fan-out: a snapshot, so the
/// fan-out writes without holding the topic's lock.
pub type Subscribers = Arc<SubscriberList>;

/// The snapshot: one list per fan-out thread, and whether a delivery found
/// someone gone.
pub struct SubscriberList {
    shards: Box<[Vec<Member>]>,
    /// Set by the fan-out when a subscriber refused a delivery because it
    /// closed; the topic prunes at its next publish. Finding the closed ones
    /// any other way means touching every subscriber, and between calls
    /// 10,000 subscribers' memory is cold: a pass just to check them cost
    /// 20-40 ms here, all of it before the call's fan-out could start.
    refused: AtomicBool,
}

impl SubscriberList {
    /// The lists of each fan-out thread, in thread order.
    pub fn new(shards: Vec<Vec<Member>>) -> Subscribers {
        Arc::new(SubscriberList {
            shards: shards.into(),
            refused: AtomicBool::new(false),
        })
    }

    /// Offers `batch` to fan-out thread `shard`'s subscribers.
    /// Returns how many subscribers took it.
    pub fn deliver(&self, shard: usize, batch: &Arc<Frames>) -> u64 {
        let mut refused = false;
        let mut took = 0;
        for s in self.shard(shard) {
            let ok = s.deliver(batch);
            took += u64::from(ok);
            refused |= !ok;
        }
        if refused {
            self.refused.store(true, Ordering::Relaxed);
        }
        took
    }

    /// Fan-out thread `shard`'s subscribers.
    pub fn shard(&self, shard: usize) -> &[Member] {
        self.shards.get(shard).map_or(&[], |l| l.as_slice())
    }

    fn refused(&self) -> bool {
        self.refused.load(Ordering::Relaxed)
    }
}

/// Spreads subscribers over the fan-out threads, across all the topics
/// of one hub (a hall's many one-phone ticket topics should not all land
/// on one thread): every topic of a hub holds a clone.
#[derive(Clone, Debug)]
pub struct Spread {
    threads: usize,
    next: Arc<AtomicUsize>,
}

impl Spread {
    /// Over `threads` fan-out threads.
    pub fn new(threads: usize) -> Spread {
        Spread {
            threads: threads.max(1),
            next: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn next(&self) -> usize {
        self.next.fetch_add(1, Ordering::Relaxed) % self.threads
    }

    fn threads(&self) -> usize {
        self.threads
    }
}

/// One publish to deliver: the batch and who gets it. Whoever subscribes
/// after the batch entered the ring gets it from the ring instead.
#[derive(Clone)]
pub struct Delivery {
    pub subs: Subscribers,
    pub batch: Arc<Frames>,
}

/// A topic's ring and subscribers.
pub struct Topic {
    /// Newest messages with their seq, oldest first.
    ring: VecDeque<Sequenced>,
    /// Ring capacity; 0 for ticket topics, which need no replay.
    ring_cap: usize,
    last: u64,
    /// Each subscriber with the fan-out thread that serves it, for its
    /// whole life: one thread per subscriber keeps its messages in order.
    subs: Vec<(usize, Member)>,
    /// Fan-out threads, and which serves the next subscriber.
    spread: Spread,
    /// `subs` as last handed out; rebuilt only after the list changed, so
    /// a publish to 10,000 subscribers costs one reference count here.
    shared: Option<Subscribers>,
    /// `subscribe` prunes when the list reaches this length: closed
    /// subscribers a publish has not found yet (no call for a while, many
    /// reconnects) stay at most as many as the live ones, and a reconnect
    /// storm does not check the whole list at every join.
    prune_at: usize,
}

/// A list shorter than this is never pruned on `subscribe`.
const PRUNE_AT_LEAST: usize = 64;

impl Topic {
    /// A floor or hall topic, keeping [`EVENT_RING`] messages, delivered
    /// by the fan-out threads `spread` names.
    pub fn with_ring(spread: Spread) -> Topic {
        Topic {
            ring: VecDeque::new(),
            ring_cap: EVENT_RING,
            last: 0,
            subs: Vec::new(),
            spread,
            shared: None,
            prune_at: PRUNE_AT_LEAST,
        }
    }

    /// A ticket topic.
    pub fn without_ring(spread: Spread) -> Topic {
        Topic {
            ring_cap: 0,
            ..Topic::with_ring(spread)
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

    /// Up to `limit` messages with seq > `after`, each with its seq, if
    /// the ring still holds the first of them (or `after` is the last).
    pub fn range(&self, after: u64, limit: usize) -> Option<Vec<(u64, Payload)>> {
        if after > self.last {
            return None;
        }
        let first = self.first_seq().unwrap_or(self.last + 1);
        if after + 1 < first {
            return None;
        }
        // The ring's seqs are consecutive.
        let skip = (after + 1 - first) as usize;
        Some(self.ring.iter().skip(skip).take(limit).cloned().collect())
    }

    /// Adds a subscriber. It gets every publish from now on; what came
    /// before (through [`Topic::last_seq`]) is the caller's to send first.
    pub fn subscribe(&mut self, sub: Member) {
        if self.subs.len() >= self.prune_at {
            self.prune();
        }
        let shard = self.spread.next();
        self.subs.push((shard, sub));
        self.shared = None;
    }

    /// Keeps the message in the ring; who should get it.
    pub fn publish(&mut self, seq: u64, msg: &Payload) -> Option<Delivery> {
        self.publish_all(&[(seq, msg.clone())])
    }

    /// Publishes one command's messages (in seq order) together: each
    /// subscriber gets all of them in one write.
    pub fn publish_all(&mut self, msgs: &[Sequenced]) -> Option<Delivery> {
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
        let (last, _) = fresh.last()?;
        self.last = self.last.max(*last);
        if self.shared.as_ref().is_some_and(|s| s.refused()) {
            self.prune();
        }
        if self.subs.is_empty() {
            return None;
        }
        let (subs, shards) = (&self.subs, self.spread.threads());
        let subs = self
            .shared
            .get_or_insert_with(|| {
                let mut lists = vec![Vec::new(); shards];
                for (k, s) in subs {
                    lists[*k].push(s.clone());
                }
                SubscriberList::new(lists)
            })
            .clone();
        Some(Delivery {
            subs,
            batch: Arc::new(Frames::new(fresh)),
        })
    }

    /// No live subscriber.
    pub fn is_idle(&self) -> bool {
        self.subs.iter().all(|(_, s)| s.is_closed())
    }

    /// Drops subscribers that closed.
    pub fn prune(&mut self) {
        let before = self.subs.len();
        self.subs.retain(|(_, s)| !s.is_closed());
        if self.subs.len() != before || self.shared.as_ref().is_some_and(|s| s.refused()) {
            self.shared = None;
        }
        self.prune_at = (2 * self.subs.len()).max(PRUNE_AT_LEAST);
    }

    /// Closes every subscriber: connections close "going away".
    pub fn close_all(&mut self) {
        for (_, s) in self.subs.drain(..) {
            s.close(Closed::Shutdown);
        }
        self.shared = None;
    }

    /// Live subscribers.
    pub fn subscribers(&self) -> usize {
        self.subs.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::subscriber::{MemberId, SubscriberGroup};
    use std::sync::Mutex;

    fn msg(s: u64) -> Payload {
        Payload::from(format!("m{s}"))
    }

    /// Records the seqs it was given, and how often it was asked whether
    /// it closed.
    #[derive(Default)]
    struct Recorder {
        got: Mutex<Vec<u64>>,
        closed: Mutex<Option<Closed>>,
        asked: AtomicUsize,
    }

    impl SubscriberGroup for Recorder {
        fn deliver(&self, _: MemberId, batch: &Arc<Frames>) -> bool {
            if self.closed.lock().unwrap().is_some() {
                return false;
            }
            self.got.lock().unwrap().push(batch.last_seq());
            true
        }
        fn close(&self, _: MemberId, why: Closed) {
            self.closed.lock().unwrap().get_or_insert(why);
        }
        fn is_closed(&self, _: MemberId) -> bool {
            self.asked.fetch_add(1, Ordering::Relaxed);
            self.closed.lock().unwrap().is_some()
        }
    }

    fn member(r: &Arc<Recorder>) -> Member {
        Member::new(r.clone(), MemberId::default())
    }

    /// `n` new recorders, subscribed.
    fn join(t: &mut Topic, n: usize) -> Vec<Arc<Recorder>> {
        let subs: Vec<Arc<Recorder>> = (0..n).map(|_| Arc::new(Recorder::default())).collect();
        for s in &subs {
            t.subscribe(member(s));
        }
        subs
    }

    /// What the fan-out threads do.
    fn deliver(d: Option<Delivery>) {
        if let Some(d) = d {
            for k in 0..d.subs.shards.len() {
                d.subs.deliver(k, &d.batch);
            }
        }
    }

    fn count(subs: &Subscribers) -> usize {
        subs.shards.iter().map(Vec::len).sum()
    }

    #[test]
    fn range_covers_exactly_what_the_ring_holds() {
        let mut t = Topic::with_ring(Spread::new(2));
        for s in 1..=(EVENT_RING as u64 + 10) {
            assert!(t.publish(s, &msg(s)).is_none(), "nobody to deliver to");
        }
        let last = EVENT_RING as u64 + 10;
        let all = usize::MAX;
        assert_eq!(t.range(last, all).unwrap().len(), 0);
        assert_eq!(
            t.range(last - 3, all).unwrap(),
            vec![
                (last - 2, msg(last - 2)),
                (last - 1, msg(last - 1)),
                (last, msg(last))
            ]
        );
        assert_eq!(t.range(10, all).unwrap().len(), EVENT_RING);
        assert_eq!(
            t.range(100, 2).unwrap(),
            vec![(101, msg(101)), (102, msg(102))],
            "a page"
        );
        assert!(t.range(9, all).is_none(), "event 10 fell out of the ring");
        assert!(
            t.range(last + 1, all).is_none(),
            "a future seq gets a snapshot"
        );
    }

    #[test]
    fn duplicate_publish_is_ignored() {
        let mut t = Topic::with_ring(Spread::new(2));
        let r = Arc::new(Recorder::default());
        t.subscribe(member(&r));
        deliver(t.publish(1, &msg(1)));
        deliver(t.publish(1, &msg(1)));
        deliver(t.publish(2, &msg(2)));
        assert_eq!(*r.got.lock().unwrap(), vec![1, 2]);
    }

    #[test]
    fn the_subscriber_list_is_shared_until_it_changes() {
        let mut t = Topic::with_ring(Spread::new(2));
        t.subscribe(member(&Arc::new(Recorder::default())));
        let a = t.publish(1, &msg(1)).unwrap().subs;
        let b = t.publish(2, &msg(2)).unwrap().subs;
        assert!(Arc::ptr_eq(&a, &b));
        let late = Arc::new(Recorder::default());
        t.subscribe(member(&late));
        let c = t.publish(3, &msg(3)).unwrap().subs;
        assert_eq!((count(&a), count(&c)), (1, 2));
        late.close(MemberId::default(), Closed::Gone);
        deliver(Some(Delivery {
            subs: c,
            batch: Arc::new(Frames::new(&[(3, msg(3))])),
        }));
        let d = t.publish(4, &msg(4)).unwrap().subs;
        assert_eq!(count(&d), 1, "the refused delivery dropped it");
    }

    #[test]
    fn publishing_does_not_visit_subscribers_until_one_refuses() {
        let mut t = Topic::with_ring(Spread::new(2));
        let subs = join(&mut t, 4);
        let asked = || {
            subs.iter()
                .map(|s| s.asked.load(Ordering::Relaxed))
                .sum::<usize>()
        };
        for seq in 1..=5 {
            deliver(t.publish(seq, &msg(seq)));
        }
        assert_eq!(asked(), 0, "five publishes asked nobody");
        subs[1].close(MemberId::default(), Closed::Gone);
        deliver(t.publish(6, &msg(6)));
        assert_eq!(asked(), 0, "the refusal is only noted");
        let next = t.publish(7, &msg(7)).unwrap().subs;
        assert_eq!(count(&next), 3);
        assert_eq!(asked(), 4, "one prune");
        deliver(Some(Delivery {
            subs: next,
            batch: Arc::new(Frames::new(&[(7, msg(7))])),
        }));
        deliver(t.publish(8, &msg(8)));
        assert_eq!(asked(), 4, "nobody refused since");
        assert_eq!(*subs[0].got.lock().unwrap(), vec![1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(*subs[1].got.lock().unwrap(), vec![1, 2, 3, 4, 5]);
    }

    #[test]
    fn closed_subscribers_never_outnumber_the_live_ones_for_long() {
        let mut t = Topic::with_ring(Spread::new(2));
        let live = join(&mut t, 100);
        // Reconnects with no publish in between: nothing refuses a
        // delivery, so only joining can find the ones that left.
        for _ in 0..1000 {
            let r = Arc::new(Recorder::default());
            t.subscribe(member(&r));
            r.close(MemberId::default(), Closed::Gone);
            assert!(t.subscribers() <= 2 * live.len().max(PRUNE_AT_LEAST) + 1);
        }
        let checks: usize = live.iter().map(|s| s.asked.load(Ordering::Relaxed)).sum();
        assert!(
            checks < 1000 * live.len() / 10,
            "joins prune now and then, not each time ({checks} checks)"
        );
    }

    #[test]
    fn subscribers_spread_over_the_fan_out_threads_and_stay_on_theirs() {
        let mut t = Topic::with_ring(Spread::new(2));
        let subs = join(&mut t, 6);
        let before = t.publish(1, &msg(1)).unwrap().subs;
        assert_eq!((before.shard(0).len(), before.shard(1).len()), (3, 3));
        let shard_of = |l: &Subscribers, r: &Arc<Recorder>| {
            let r = member(r);
            l.shards.iter().position(|v| v.iter().any(|s| s.same(&r)))
        };
        subs[0].close(MemberId::default(), Closed::Gone);
        let after = t.publish(2, &msg(2)).unwrap().subs;
        for s in &subs[1..] {
            assert_eq!(shard_of(&before, s), shard_of(&after, s));
        }
    }

    #[test]
    fn close_all_closes_as_shutdown() {
        let mut t = Topic::with_ring(Spread::new(2));
        let r = Arc::new(Recorder::default());
        t.subscribe(member(&r));
        t.close_all();
        assert_eq!(*r.closed.lock().unwrap(), Some(Closed::Shutdown));
        assert!(t.publish(1, &msg(1)).is_none());
    }

    #[test]
    fn a_closed_subscriber_is_pruned() {
        let mut t = Topic::with_ring(Spread::new(2));
        let r = Arc::new(Recorder::default());
        t.subscribe(member(&r));
        assert!(!t.is_idle());
        r.close(MemberId::default(), Closed::Gone);
        assert!(t.is_idle());
        t.prune();
        assert_eq!(t.subscribers(), 0);
    }
}
