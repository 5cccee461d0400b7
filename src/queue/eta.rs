//! Service-time estimate per service: an exponentially weighted moving
//! average of recent real service times, seeded from the config.

/// Weight of each new sample is 1/EWMA_WEIGHT: about the last 8 services
/// dominate, so the estimate follows a slow afternoon within half an hour
/// without jumping on one long case.
const EWMA_WEIGHT: u64 = 8;

/// Samples outside this range are clamped: a window left "serving" over lunch
/// or a mis-click of complete must not wreck the estimate for the day.
const MIN_SAMPLE_MS: u64 = 30_000;
const MAX_SAMPLE_MS: u64 = 2 * 3600 * 1000;

/// Average service time of one service, in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServiceClock {
    pub avg_ms: u64,
}

impl ServiceClock {
    /// Starts from the configured estimate.
    pub fn seeded(avg_service_seconds: u32) -> Self {
        ServiceClock {
            avg_ms: u64::from(avg_service_seconds.max(1)) * 1000,
        }
    }

    /// Folds one observed service time into the average.
    pub fn observe(&mut self, sample_ms: u64) {
        let x = sample_ms.clamp(MIN_SAMPLE_MS, MAX_SAMPLE_MS);
        // Integer EWMA; avg stays within [MIN, MAX] once samples come in.
        self.avg_ms = (self.avg_ms * (EWMA_WEIGHT - 1) + x) / EWMA_WEIGHT;
    }

    /// Seconds until a ticket with `ahead` tickets before it is called, when
    /// `windows` windows take from this line.
    pub fn eta_seconds(&self, ahead: usize, windows: usize) -> u64 {
        let windows = windows.max(1) as u64;
        (ahead as u64 * self.avg_ms / windows).div_ceil(1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eta_matches_contract_example() {
        // §3: ahead 4, 900 s per service, 5 windows → 720 s.
        assert_eq!(ServiceClock::seeded(900).eta_seconds(4, 5), 720);
    }

    #[test]
    fn eta_table() {
        let cases = [
            (600, 0, 1, 0),
            (600, 1, 1, 600),
            (600, 3, 2, 900),
            (600, 3, 0, 1800), // no open window: as if one
            (1, 1, 3, 1),      // rounds up
        ];
        for (avg, ahead, windows, want) in cases {
            assert_eq!(
                ServiceClock::seeded(avg).eta_seconds(ahead, windows),
                want,
                "avg {avg} ahead {ahead} windows {windows}"
            );
        }
    }

    #[test]
    fn observe_moves_towards_samples_and_clamps() {
        let mut c = ServiceClock::seeded(900);
        for _ in 0..100 {
            c.observe(300_000);
        }
        assert!((299_000..=301_000).contains(&c.avg_ms), "{}", c.avg_ms);
        let mut c = ServiceClock::seeded(900);
        c.observe(u64::MAX / 16);
        assert!(c.avg_ms <= (900_000 * 7 + MAX_SAMPLE_MS) / 8);
        c.observe(0);
        assert!(c.avg_ms >= MIN_SAMPLE_MS);
    }
}
