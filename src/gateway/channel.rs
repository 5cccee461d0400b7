//! Which channel a request asks for, and how a subscriber starts: replay
//! from the ring, then from the store, else a snapshot.

use std::sync::Arc;

use crate::engine::{Engine, HallEngine};
use std::sync::Mutex;

use crate::hub::{lock, payload, Member, Payload, Topic};

use super::peer::Catchup;
use crate::wire;

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

/// Messages of a catch-up fetched at a time: about [`super::peer`]'s
/// chunk of floor messages, so a subscriber that never reads pins one
/// page, and one that reads costs a store read per page.
pub const PAGE: usize = 64;

/// Registers `sub` for the channel and prepares what it gets first.
pub async fn subscribe(
    engine: &Arc<Engine>,
    ch: &Channel,
    after: Option<u64>,
    sub: Member,
) -> Option<Catchup> {
    let hub = engine.hub();
    match ch {
        Channel::Ticket { hall, token } => {
            let h = engine.hall(hall)?;
            hub.subscribe_ticket(hall, token, sub)?;
            let (first, seq) = h.read(|hall| {
                hall.ticket_by_token(token)
                    .map(|t| (payload(&wire::ticket_message(hall, t)), hall.hall_seq()))
            })?;
            Some(Catchup::whole(vec![(seq, first)], seq))
        }
        Channel::Floor { hall, floor } => {
            let h = engine.hall(hall)?;
            let snapshot = |hall: &crate::queue::Hall| {
                wire::floor_snapshot_message(hall, *floor)
                    .map(|m| (payload(&m), hall.floor_seq(*floor)))
            };
            let pager = Pager::new(engine, ch)?;
            start(&pager, h, after, sub, snapshot).await
        }
        Channel::Hall { hall } => {
            let h = engine.hall(hall)?;
            let snapshot = |hall: &crate::queue::Hall| {
                Some((payload(&wire::hall_snapshot_message(hall)), hall.hall_seq()))
            };
            let pager = Pager::new(engine, ch)?;
            start(&pager, h, after, sub, snapshot).await
        }
    }
}

async fn start(
    pager: &Pager,
    h: &HallEngine,
    after: Option<u64>,
    sub: Member,
    snapshot: impl Fn(&crate::queue::Hall) -> Option<(Payload, u64)>,
) -> Option<Catchup> {
    let topic = pager.topic()?;
    if let Some(after) = after {
        // In a cluster a screen may resume here with a seq another node
        // committed and showed it, which this node has not delivered yet
        // (it reads it from PostgreSQL within a second): when the store
        // holds that seq, what follows it comes live, nothing is sent
        // first. A seq the store never had still gets a snapshot.
        let behind = lock(topic).last_seq() < after;
        if behind
            && pager
                .stored_page(after, after)
                .await
                .is_some_and(|p| p.first().is_some_and(|(s, _)| *s == after))
        {
            let mut t = lock(topic);
            if t.last_seq() <= after {
                t.subscribe(sub);
                return Some(Catchup::whole(Vec::new(), after));
            }
            // It caught up meanwhile: replayed from the ring below.
        }
        let (first_kept, last) = {
            let t = lock(topic);
            (t.first_seq(), t.last_seq())
        };
        // Further behind than a replay may go: start over from a snapshot.
        if after <= last && last - after <= MAX_STORE_REPLAY as u64 {
            // Older than the ring: the first page comes from the store, off
            // the lock, and must start right after `after` (else the store
            // has pruned it: a snapshot).
            let from_store = if after + 1 < first_kept.unwrap_or(last + 1) {
                pager.stored_page(after + 1, last).await
            } else {
                None
            };
            let mut t = lock(topic);
            let page = from_store.or_else(|| t.range(after, PAGE));
            if let Some(mut first) = page {
                // The store may hold events the topic has not published
                // yet; those come live.
                let through = t.last_seq();
                first.retain(|(s, _)| *s <= through);
                t.subscribe(sub);
                let next = first.last().map_or(after, |(s, _)| *s) + 1;
                return Some(Catchup {
                    first,
                    rest: (next <= through).then_some((next, through)),
                    skip_through: through,
                });
            }
        }
    }
    // Register first, then take the snapshot: anything published in between
    // reaches the subscriber with a seq the snapshot covers, and is skipped.
    lock(topic).subscribe(sub);
    let (first, seq) = h.read(|hall| snapshot(hall))?;
    Some(Catchup::whole(vec![(seq, first)], seq))
}

/// Messages in the page from `next` through at most `through`.
fn page_len(next: u64, through: u64) -> usize {
    PAGE.min((through + 1).saturating_sub(next) as usize)
}

/// Fetches the pages of a replay after its first (see [`Catchup::rest`]):
/// from the ring while it still holds them, else from the store.
pub struct Pager {
    engine: Arc<Engine>,
    hall: String,
    floor: Option<i32>,
}

impl Pager {
    /// For a floor or hall channel; a ticket channel has no replay.
    pub fn new(engine: &Arc<Engine>, ch: &Channel) -> Option<Pager> {
        let (hall, floor) = match ch {
            Channel::Floor { hall, floor } => (hall, Some(*floor)),
            Channel::Hall { hall } => (hall, None),
            Channel::Ticket { .. } => return None,
        };
        let pager = Pager {
            engine: engine.clone(),
            hall: hall.clone(),
            floor,
        };
        pager.topic()?;
        Some(pager)
    }

    fn topic(&self) -> Option<&Mutex<Topic>> {
        let h = self.engine.hub().hall(&self.hall)?;
        match self.floor {
            Some(f) => h.floors.get(&f),
            None => Some(&h.hall),
        }
    }

    /// Up to [`PAGE`] messages from `next` on (none past `through`),
    /// gapless; `None` if neither the ring nor the store still has `next`.
    pub async fn page(&self, next: u64, through: u64) -> Option<Vec<(u64, Payload)>> {
        let ring = lock(self.topic()?).range(next - 1, page_len(next, through));
        match ring {
            Some(p) if !p.is_empty() => Some(p),
            _ => self.stored_page(next, through).await,
        }
    }

    /// The same from the store alone.
    async fn stored_page(&self, next: u64, through: u64) -> Option<Vec<(u64, Payload)>> {
        let events = self
            .engine
            .history(&self.hall, self.floor, next - 1, page_len(next, through))
            .await
            .ok()?;
        let floor = self.floor.is_some();
        let page: Vec<(u64, Payload)> = events
            .iter()
            .map(|e| {
                if floor {
                    (e.floor_seq, payload(&e.floor_msg))
                } else {
                    (e.hall_seq, payload(&e.hall_msg))
                }
            })
            .collect();
        let gapless = !page.is_empty()
            && page
                .iter()
                .enumerate()
                .all(|(i, (s, _))| *s == next + i as u64);
        gapless.then_some(page)
    }
}
