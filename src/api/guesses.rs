//! Check-in codes are not guessed (contract v1.2 A6): a kiosk or admin
//! credential that sends more than 10 unknown codes within 10 minutes is
//! refused (429) until those 10 minutes have passed.
//!
//! Kept in this node's memory, per credential: a kiosk is a device of the
//! hall, not an anonymous client, so what matters is that one stolen
//! kiosk token cannot try a booking code a millisecond; a restart or a
//! second node gives it at most another 10 tries, and a code space of
//! 31⁶ makes that worthless.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};

/// Unknown codes a credential may send within [`WINDOW_MINUTES`].
pub const UNKNOWN_CODES: usize = 10;
/// The window the count covers, and how long a refusal lasts.
pub const WINDOW_MINUTES: i64 = 10;

/// Unknown codes per credential, newest last.
#[derive(Default)]
pub struct Guesses {
    misses: Mutex<HashMap<String, VecDeque<DateTime<Utc>>>>,
}

impl Guesses {
    /// `Err(seconds)` while `who` may not try: it sent more than
    /// [`UNKNOWN_CODES`] unknown codes in the last [`WINDOW_MINUTES`].
    pub fn check(&self, who: &str, now: DateTime<Utc>) -> Result<(), u64> {
        let mut m = self.misses.lock().unwrap_or_else(|p| p.into_inner());
        let Some(q) = m.get_mut(who) else {
            return Ok(());
        };
        let since = now - Duration::minutes(WINDOW_MINUTES);
        while q.front().is_some_and(|t| *t <= since) {
            q.pop_front();
        }
        if q.is_empty() {
            m.remove(who);
            return Ok(());
        }
        if q.len() >= UNKNOWN_CODES {
            // Until the tenth-newest miss leaves the window: the 10
            // minutes after the misses that filled it.
            let free = q[q.len() - UNKNOWN_CODES] + Duration::minutes(WINDOW_MINUTES);
            let secs = (free - now).num_milliseconds().max(0) as u64;
            return Err(secs.div_ceil(1000).max(1));
        }
        Ok(())
    }

    /// `who` sent a code no booking has.
    pub fn missed(&self, who: &str, now: DateTime<Utc>) {
        let mut m = self.misses.lock().unwrap_or_else(|p| p.into_inner());
        let q = m.entry(who.to_string()).or_default();
        q.push_back(now);
        // A credential refused meanwhile adds nothing: only the newest
        // UNKNOWN_CODES decide.
        while q.len() > UNKNOWN_CODES {
            q.pop_front();
        }
        // Bounded by the hall's credentials; nothing else keys this map.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_unknown_codes_in_ten_minutes_lock_the_credential_for_the_rest_of_them() {
        let g = Guesses::default();
        let t0 = DateTime::parse_from_rfc3339("2026-12-08T01:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        for i in 0..10 {
            assert_eq!(g.check("kiosk:a", t0 + Duration::seconds(i)), Ok(()));
            g.missed("kiosk:a", t0 + Duration::seconds(i));
        }
        assert_eq!(g.check("kiosk:a", t0 + Duration::seconds(10)), Err(590));
        assert_eq!(g.check("kiosk:b", t0 + Duration::seconds(10)), Ok(()));
        assert_eq!(g.check("kiosk:a", t0 + Duration::seconds(599)), Err(1));
        assert_eq!(g.check("kiosk:a", t0 + Duration::seconds(601)), Ok(()));
        assert_eq!(g.check("kiosk:a", t0 + Duration::minutes(30)), Ok(()));
    }
}
