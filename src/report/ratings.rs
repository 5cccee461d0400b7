//! The public ratings summary (§10): how many, the 好评率, by window and
//! by service. Counts only: no comment, number or phone ever reaches it.

use super::positive_rate;
use crate::queue::rating::POSITIVE_FROM;
use crate::queue::HallSpec;
use crate::store::RatingCount;

/// Ratings of one window or service.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tally {
    pub count: u64,
    positive: u64,
}

impl Tally {
    fn add(&mut self, level: u8, n: u64) {
        self.count += n;
        if level >= POSITIVE_FROM {
            self.positive += n;
        }
    }

    /// Levels 3–5 of all; `None` with no ratings.
    pub fn positive_rate(&self) -> Option<f64> {
        positive_rate(self.positive, self.count)
    }
}

/// The summary of a range.
#[derive(Clone, Debug, PartialEq)]
pub struct RatingSummary {
    pub all: Tally,
    /// Count per level, 1 to 5.
    pub levels: [u64; 5],
    /// Window id, its label and its ratings; configured windows in config
    /// order, then any the history names that the config no longer has.
    pub by_window: Vec<(String, String, Tally)>,
    pub by_service: Vec<(String, Tally)>,
}

impl RatingSummary {
    /// Sums the store's counts.
    pub fn new(spec: &HallSpec, counts: &[RatingCount]) -> RatingSummary {
        let mut s = RatingSummary {
            all: Tally::default(),
            levels: [0; 5],
            by_window: spec
                .windows
                .iter()
                .map(|w| (w.id.clone(), w.label.clone(), Tally::default()))
                .collect(),
            by_service: spec
                .services
                .iter()
                .map(|s| (s.id.clone(), Tally::default()))
                .collect(),
        };
        for c in counts.iter().filter(|c| (1..=5).contains(&c.level)) {
            s.all.add(c.level, c.count);
            s.levels[usize::from(c.level) - 1] += c.count;
            if let Some(w) = &c.window {
                let i = match s.by_window.iter().position(|(id, _, _)| id == w) {
                    Some(i) => i,
                    None => {
                        s.by_window.push((w.clone(), w.clone(), Tally::default()));
                        s.by_window.len() - 1
                    }
                };
                s.by_window[i].2.add(c.level, c.count);
            }
            let i = match s.by_service.iter().position(|(id, _)| *id == c.service) {
                Some(i) => i,
                None => {
                    s.by_service.push((c.service.clone(), Tally::default()));
                    s.by_service.len() - 1
                }
            };
            s.by_service[i].1.add(c.level, c.count);
        }
        s
    }
}
