//! Which channel a request asks for, and how a subscriber starts: replay
//! from the ring, then from the store, else a snapshot.

use std::sync::Arc;

use crate::engine::{Engine, HallEngine};
use crate::hub::{lock, payload, Member, Payload, Topic};
use crate::store::StoredEvent;

use super::wire;

/// Events fetched from the store for one catch-up, at most. A screen
/// further behind than this gets a snapshot instead: replaying more would
/// take longer than starting over.
pub const MAX_STORE_REPLAY: usize = 10_000;

/// A channel of contract §4.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Channel {
    Floor { hall: String, floor: i32 },
    Hall { hall: String },
    Ticket { hall: String, token: String },
}

impl Channel {
    /// Resolves a path under `/ws/v1/`; `Err` is the 404 message.
    pub fn resolve(engine: &Engine, segs: &[&str]) -> Result<Channel, String> {
        match segs {
            ["halls", hall] => {
                engine
                    .hall(hall)
                    .ok_or_else(|| format!("no hall '{hall}'"))?;
                Ok(Channel::Hall {
                    hall: hall.to_string(),
                })
            }
            ["halls", hall, "floors", floor] => {
                let h = engine
                    .hall(hall)
                    .ok_or_else(|| format!("no hall '{hall}'"))?;
                let n: i32 = floor
                    .parse()
                    .map_err(|_| format!("no floor '{floor}' in hall {hall}"))?;
                h.spec
                    .floor(n)
                    .ok_or_else(|| format!("no floor {n} in hall {hall}"))?;
                Ok(Channel::Floor {
                    hall: hall.to_string(),
                    floor: n,
                })
            }
            ["tickets", token] => {
                let h = engine
                    .hall_of_token(token)
                    .ok_or_else(|| "no ticket has this token".to_string())?;
                Ok(Channel::Ticket {
                    hall: h.spec.id.clone(),
                    token: token.to_string(),
                })
            }
            _ => Err("no such channel; see the contract, section 4".into()),
        }
    }

    /// A short name for logs (never the token).
    pub fn kind(&self) -> &'static str {
        match self {
            Channel::Floor { .. } => "floor",
            Channel::Hall { .. } => "hall",
            Channel::Ticket { .. } => "ticket",
        }
    }
}

/// What a new subscriber is sent before live messages.
pub struct Start {
    /// A snapshot, or the replay of what it missed.
    pub first: Vec<Payload>,
    /// Live messages with seq ≤ this are covered by `first` and skipped.
    pub skip_through: u64,
}

/// Registers `sub` for the channel and prepares what it gets first.
pub async fn subscribe(
    engine: &Arc<Engine>,
    ch: &Channel,
    after: Option<u64>,
    sub: Member,
) -> Option<Start> {
    let hub = engine.hub();
    match ch {
        Channel::Ticket { hall, token } => {
            let h = engine.hall(hall)?;
            hub.subscribe_ticket(hall, token, sub)?;
            let (first, seq) = h.read(|hall| {
                hall.ticket_by_token(token)
                    .map(|t| (payload(&wire::ticket_message(hall, t)), hall.hall_seq()))
            })?;
            Some(Start {
                first: vec![first],
                skip_through: seq,
            })
        }
        Channel::Floor { hall, floor } => {
            let h = engine.hall(hall)?;
            let topic = hub.hall(hall)?.floors.get(floor)?;
            let snapshot = |hall: &crate::queue::Hall| {
                wire::floor_snapshot_message(hall, *floor)
                    .map(|m| (payload(&m), hall.floor_seq(*floor)))
            };
            start(engine, h, topic, Some(*floor), after, sub, snapshot).await
        }
        Channel::Hall { hall } => {
            let h = engine.hall(hall)?;
            let topic = &hub.hall(hall)?.hall;
            let snapshot = |hall: &crate::queue::Hall| {
                Some((payload(&wire::hall_snapshot_message(hall)), hall.hall_seq()))
            };
            start(engine, h, topic, None, after, sub, snapshot).await
        }
    }
}

async fn start(
    engine: &Arc<Engine>,
    h: &HallEngine,
    topic: &std::sync::Mutex<Topic>,
    floor: Option<i32>,
    after: Option<u64>,
    sub: Member,
    snapshot: impl Fn(&crate::queue::Hall) -> Option<(Payload, u64)>,
) -> Option<Start> {
    if let Some(after) = after {
        let (first_kept, last) = {
            let t = lock(topic);
            (t.first_seq(), t.last_seq())
        };
        // Further behind than a replay may go: start over from a snapshot.
        if after <= last && last - after <= MAX_STORE_REPLAY as u64 {
            let older_than_ring = first_kept.is_some_and(|f| after + 1 < f);
            // Older than the ring: fetch the gap from the store first, off
            // the lock, then splice it with the ring under the lock.
            let fetched: Vec<StoredEvent> = if older_than_ring {
                engine
                    .history(&h.spec.id, floor, after, MAX_STORE_REPLAY)
                    .await
                    .unwrap_or_default()
            } else {
                Vec::new()
            };
            let mut t = lock(topic);
            let seq_of = |e: &StoredEvent| {
                if floor.is_some() {
                    e.floor_seq
                } else {
                    e.hall_seq
                }
            };
            let through = fetched.last().map_or(after, seq_of);
            let contiguous = fetched
                .iter()
                .enumerate()
                .all(|(i, e)| seq_of(e) == after + 1 + i as u64);
            if contiguous {
                if let Some(rest) = t.replay(through) {
                    let mut first: Vec<Payload> = fetched
                        .iter()
                        .map(|e| {
                            payload(if floor.is_some() {
                                &e.floor_msg
                            } else {
                                &e.hall_msg
                            })
                        })
                        .collect();
                    first.extend(rest);
                    t.subscribe(sub);
                    return Some(Start {
                        first,
                        skip_through: t.last_seq(),
                    });
                }
            }
        }
    }
    // Register first, then take the snapshot: anything published in between
    // reaches the subscriber with a seq the snapshot covers, and is skipped.
    lock(topic).subscribe(sub);
    let (first, seq) = h.read(|hall| snapshot(hall))?;
    Some(Start {
        first: vec![first],
        skip_through: seq,
    })
}
