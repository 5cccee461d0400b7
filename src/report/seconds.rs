//! Whole seconds counted by value: the waits or service times of a group
//! of tickets, from which exact percentiles are read.
//!
//! Counted by value rather than kept one per ticket so that a day's
//! times can be stored once (`digest`) and a year of days added up
//! without a value per ticket again: a day has a few thousand distinct
//! seconds, a year hardly more.

use super::digest::{put_varint, take_varint};

/// Exact percentiles of a list of seconds; `None` over nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Percentiles {
    pub p50: Option<u32>,
    pub p90: Option<u32>,
    pub max: Option<u32>,
}

/// Seconds and how often each occurred.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Seconds {
    /// `(value, count)`, sorted by value and one per value in the first
    /// `settled`, in arrival order after them.
    runs: Vec<(u32, u32)>,
    settled: usize,
}

/// Past this many unsorted runs beyond twice the settled ones, adding
/// parts sorts them in: memory stays near the distinct values, and
/// each sort is over a few parts' worth.
const UNSETTLED_SLACK: usize = 4096;

impl Seconds {
    pub fn add(&mut self, value: u32) {
        self.runs.push((value, 1));
    }

    /// Adds another group's seconds.
    pub fn absorb(&mut self, other: Seconds) {
        if self.runs.is_empty() {
            *self = other;
            return;
        }
        self.runs.extend(other.runs);
        if self.runs.len() > 2 * self.settled + UNSETTLED_SLACK {
            self.settle();
        }
    }

    /// Sorts by value and merges equal values.
    fn settle(&mut self) {
        if self.settled == self.runs.len() {
            return;
        }
        self.runs.sort_unstable_by_key(|r| r.0);
        self.runs.dedup_by(|later, kept| {
            let same = later.0 == kept.0;
            if same {
                kept.1 = kept.1.saturating_add(later.1);
            }
            same
        });
        self.settled = self.runs.len();
    }

    /// How many seconds were counted.
    pub fn count(&self) -> u64 {
        self.runs.iter().map(|r| u64::from(r.1)).sum()
    }

    /// Nearest-rank percentiles.
    pub fn percentiles(&mut self) -> Percentiles {
        self.settle();
        let n = self.count();
        let rank = |p: f64| -> Option<u32> {
            if n == 0 {
                return None;
            }
            let k = ((p * n as f64).ceil() as u64).clamp(1, n);
            let mut seen = 0u64;
            self.runs.iter().find_map(|&(v, c)| {
                seen += u64::from(c);
                (seen >= k).then_some(v)
            })
        };
        Percentiles {
            p50: rank(0.5),
            p90: rank(0.9),
            max: self.runs.last().map(|r| r.0),
        }
    }

    /// Appends the seconds in a compact form: how many values, then each
    /// as its distance from the one before and its count, as varints.
    pub fn write(&mut self, out: &mut Vec<u8>) {
        self.settle();
        put_varint(out, self.runs.len() as u64);
        let mut last = 0u32;
        for &(v, c) in &self.runs {
            put_varint(out, u64::from(v - last));
            put_varint(out, u64::from(c));
            last = v;
        }
    }

    /// Reads what [`Seconds::write`] wrote; `None` when it is not that.
    pub fn read(input: &mut &[u8]) -> Option<Seconds> {
        let n = usize::try_from(take_varint(input)?).ok()?;
        // Each run takes at least two bytes: a length beyond that is a
        // corrupt digest, not an allocation to make.
        if n > input.len() / 2 {
            return None;
        }
        let mut runs = Vec::with_capacity(n);
        let mut last = 0u32;
        for i in 0..n {
            let gap = u32::try_from(take_varint(input)?).ok()?;
            if i > 0 && gap == 0 {
                return None;
            }
            let v = last.checked_add(gap)?;
            let c = u32::try_from(take_varint(input)?).ok()?;
            runs.push((v, c));
            last = v;
        }
        Some(Seconds { runs, settled: n })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(values: &[u32]) -> Seconds {
        let mut s = Seconds::default();
        values.iter().for_each(|&v| s.add(v));
        s
    }

    #[test]
    fn nearest_rank_percentiles_are_exact_and_none_over_nothing() {
        let v: Vec<u32> = (1..=10).rev().collect();
        let p = of(&v).percentiles();
        assert_eq!((p.p50, p.p90, p.max), (Some(5), Some(9), Some(10)));
        assert_eq!(of(&[7]).percentiles().p90, Some(7));
        assert_eq!(of(&[]).percentiles(), Percentiles::default());
        // Repeated values count as often as they occur.
        let p = of(&[3, 3, 3, 3, 3, 3, 3, 3, 3, 100]).percentiles();
        assert_eq!((p.p50, p.p90, p.max), (Some(3), Some(3), Some(100)));
    }

    #[test]
    fn parts_absorbed_give_the_percentiles_of_the_whole() {
        // Enough parts that absorbing settles them on the way.
        let values: Vec<u32> = (0..50_000u32).map(|i| (i * 7919) % 3_601).collect();
        let mut whole = of(&values);
        let mut merged = Seconds::default();
        for part in values.chunks(333) {
            merged.absorb(of(part));
        }
        assert!(merged.runs.len() < 2 * 3_601 + UNSETTLED_SLACK);
        assert_eq!(merged.percentiles(), whole.percentiles());
        assert_eq!(merged.count(), 50_000);
    }

    #[test]
    fn written_seconds_read_back_the_same_and_garbage_is_refused() {
        let mut s = of(&[0, 5, 5, 86_400, 12, 0]);
        let mut out = Vec::new();
        s.write(&mut out);
        let mut input = &out[..];
        let mut back = Seconds::read(&mut input).unwrap();
        assert!(input.is_empty());
        assert_eq!(back.percentiles(), s.percentiles());
        assert_eq!(back, s);
        assert_eq!(Seconds::read(&mut &[0xff, 0xff, 0xff][..]), None);
        assert_eq!(
            Seconds::read(&mut &[200, 1, 1][..]),
            None,
            "length past the end"
        );
        assert_eq!(
            Seconds::read(&mut &[2, 1, 1, 0, 1][..]),
            None,
            "a value twice"
        );
    }
}
