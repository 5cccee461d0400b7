//! One timer pings every connection (contract §13: at least every 30 s),
//! instead of a timer in each connection's task: an idle screen then
//! costs no timer, and its task wakes only for what the client sends.
//!
//! A period is cut into rounds of about a second. Each round pings the
//! peers that came a whole number of periods ago (to the round), so each
//! is pinged once a period, the first time a period after it came, as
//! with a timer of its own; and pings are spread as the connections
//! came, not written in one burst that would hold a thread (and the
//! deliveries behind it) for tens of milliseconds. A peer that has not
//! answered by its next ping is closed (see `Slot::ping`). A round reads
//! one word per slot and locks only the slots it pings.

use std::sync::Weak;
use std::time::Duration;

use super::peer::Peers;

/// Pings the peers every `every` until the server (which owns `peers`)
/// is gone.
pub async fn run(peers: Weak<Peers>, every: Duration) {
    let per_period = every.as_secs().max(1);
    let mut tick = tokio::time::interval(every / per_period as u32);
    // Late ticks (a stalled runtime) are not made up in a burst.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is at once, before any peer came.
    tick.tick().await;
    for round in 1u64.. {
        tick.tick().await;
        let Some(peers) = peers.upgrade() else {
            return;
        };
        peers.ping(round, per_period);
    }
}
