//! The fan-out threads: write every publish to its subscribers.
//!
//! Publishing (in the store writer, after the commit) only updates the
//! topic's ring and hands the batch over; the fan-out threads then offer it
//! to each subscriber, which writes it straight to its socket when the
//! socket has room. A connection's task is not woken for a delivery at all,
//! so a call to 10,000 screens costs 10,000 write syscalls and little else;
//! the hand-over keeps a window's answer from waiting on those writes.
//!
//! There is one thread per core: the writes are nearly all kernel work, so
//! they spread over the cores there are. Each subscriber belongs to one
//! thread for its whole life, which keeps its messages in order.
//!
//! Whatever piled up while a thread was busy is coalesced per topic, so
//! under load each subscriber still gets one write per pass, however many
//! calls it holds.

use std::collections::HashMap;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};

use super::frames::Frames;
use super::topic::{Delivery, Subscribers};

/// Publishes taken per pass at most, so one pass's buffers stay small.
const MAX_PASS: usize = 1024;

/// Coalesced batches grow to about this many bytes: well inside a
/// connection's 64 KiB kernel send buffer, so one write takes it all.
const MAX_MERGED_BYTES: usize = 32 * 1024;

/// Fan-out threads at most, however many cores.
const MAX_THREADS: usize = 8;

/// Hands deliveries to the fan-out threads. Dropping it ends the threads
/// once they have delivered what they were given.
pub struct Fanout {
    threads: Vec<Mutex<Sender<Vec<Delivery>>>>,
}

impl Fanout {
    /// Starts one thread per core this process may use.
    pub fn start() -> Fanout {
        let n = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(MAX_THREADS);
        let threads = (0..n)
            .map(|k| {
                let (tx, rx) = mpsc::channel();
                std::thread::Builder::new()
                    .name(format!("hallcast-fanout-{k}"))
                    .spawn(move || run(rx, k))
                    .expect("a fan-out thread starts");
                Mutex::new(tx)
            })
            .collect();
        Fanout { threads }
    }

    /// Fan-out threads: each topic splits its subscribers this many ways.
    pub fn threads(&self) -> usize {
        self.threads.len()
    }

    /// Queues one command's deliveries; never waits on a subscriber.
    pub fn send(&self, deliveries: Vec<Delivery>) {
        for (k, tx) in self.threads.iter().enumerate() {
            let mine: Vec<Delivery> = deliveries
                .iter()
                .filter(|d| !d.subs.shard(k).is_empty())
                .cloned()
                .collect();
            if !mine.is_empty() {
                // A thread only ends when its sender is dropped.
                let _ = super::lock(tx).send(mine);
            }
        }
    }
}

/// Thread `k`: delivers to the subscribers of list `k` of each topic.
fn run(rx: Receiver<Vec<Delivery>>, k: usize) {
    while let Ok(mut pass) = rx.recv() {
        while pass.len() < MAX_PASS {
            match rx.try_recv() {
                Ok(more) => pass.extend(more),
                Err(_) => break,
            }
        }
        // Counted once a pass: one shared counter per subscriber would be
        // a contended write on every delivery.
        let mut delivered = 0;
        for d in coalesce(pass) {
            delivered += d.subs.deliver(k, &d.batch);
        }
        crate::metrics::delivered(delivered);
    }
}

/// Merges deliveries to the same subscriber list (the same topic, nobody
/// joined or left in between) into fewer, larger batches. Keeps each
/// topic's order; different topics have different subscribers, so their
/// relative order does not matter.
pub fn coalesce(pass: Vec<Delivery>) -> Vec<Delivery> {
    if pass.len() < 2 {
        return pass;
    }
    let mut groups: Vec<(Subscribers, Vec<Arc<Frames>>)> = Vec::new();
    // A pass can hold hundreds of ticket topics: find groups by address
    // (every list is alive until the pass ends, so an address names one).
    let mut index: HashMap<*const (), usize> = HashMap::new();
    for d in pass {
        let key = Arc::as_ptr(&d.subs) as *const ();
        match index.get(&key) {
            Some(&i) => groups[i].1.push(d.batch),
            None => {
                index.insert(key, groups.len());
                groups.push((d.subs, vec![d.batch]));
            }
        }
    }
    let mut out = Vec::new();
    for (subs, batches) in groups {
        let mut run: Vec<Arc<Frames>> = Vec::new();
        let mut size = 0;
        for b in batches {
            if !run.is_empty() && size + b.size() > MAX_MERGED_BYTES {
                out.push(merged(&subs, std::mem::take(&mut run)));
                size = 0;
            }
            size += b.size();
            run.push(b);
        }
        if !run.is_empty() {
            out.push(merged(&subs, run));
        }
    }
    out
}

fn merged(subs: &Subscribers, mut run: Vec<Arc<Frames>>) -> Delivery {
    let batch = if run.len() == 1 {
        run.pop().expect("one batch")
    } else {
        Arc::new(Frames::concat(
            &run.iter().map(|b| &**b).collect::<Vec<_>>(),
        ))
    };
    Delivery {
        subs: subs.clone(),
        batch,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::subscriber::{Closed, Member, MemberId, SubscriberGroup};
    use crate::hub::topic::SubscriberList;
    use crate::hub::Payload;

    struct Nobody;
    impl SubscriberGroup for Nobody {
        fn deliver(&self, _: MemberId, _: &Arc<Frames>) -> bool {
            true
        }
        fn close(&self, _: MemberId, _: Closed) {}
        fn is_closed(&self, _: MemberId) -> bool {
            false
        }
    }

    fn list() -> Subscribers {
        let s = Member::new(Arc::new(Nobody), MemberId::default());
        SubscriberList::new(vec![vec![s]])
    }

    fn batch(seq: u64, bytes: usize) -> Arc<Frames> {
        Arc::new(Frames::new(&[(seq, Payload::from("x".repeat(bytes)))]))
    }

    fn seqs(d: &Delivery) -> (u64, usize) {
        (d.batch.last_seq(), d.batch.len())
    }

    #[test]
    fn merges_per_topic_keeping_order() {
        let (floor, hall) = (list(), list());
        let d = |subs: &Subscribers, seq| Delivery {
            subs: subs.clone(),
            batch: batch(seq, 10),
        };
        let out = coalesce(vec![
            d(&floor, 1),
            d(&hall, 7),
            d(&floor, 2),
            d(&hall, 8),
            d(&floor, 3),
        ]);
        let got: Vec<_> = out.iter().map(seqs).collect();
        assert_eq!(got, vec![(3, 3), (8, 2)]);
        assert_eq!(out[0].batch.after(1).1, 2, "seqs survive the merge");
    }

    #[test]
    fn a_changed_subscriber_list_is_not_merged_across() {
        let (old, new) = (list(), list());
        let out = coalesce(vec![
            Delivery {
                subs: old.clone(),
                batch: batch(1, 10),
            },
            Delivery {
                subs: new.clone(),
                batch: batch(2, 10),
            },
            Delivery {
                subs: new.clone(),
                batch: batch(3, 10),
            },
        ]);
        let got: Vec<_> = out.iter().map(seqs).collect();
        assert_eq!(got, vec![(1, 1), (3, 2)]);
    }

    #[test]
    fn merged_batches_stay_under_the_byte_cap() {
        let subs = list();
        let pass = (1..=10)
            .map(|s| Delivery {
                subs: subs.clone(),
                batch: batch(s, 10_000),
            })
            .collect();
        let out = coalesce(pass);
        assert!(out.len() >= 3);
        assert!(out
            .iter()
            .all(|d| d.batch.size() <= MAX_MERGED_BYTES + 10_100));
        assert_eq!(out.iter().map(|d| d.batch.len()).sum::<usize>(), 10);
        assert_eq!(out.last().unwrap().batch.last_seq(), 10);
    }
}
