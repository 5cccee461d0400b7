//! Announcement composition: a cold composition, and serving a cached one.
//!
//!     cargo bench --bench announce

use std::time::Instant;

use hallcast::announcer::clips::ClipBank;
use hallcast::announcer::Announcer;
use hallcast::queue::Language;

fn main() {
    let config = hallcast::config::parse("demo", hallcast::demo::CONFIG).unwrap();
    let t = Instant::now();
    let bank = ClipBank::built_in().unwrap();
    println!(
        "clip bank decoded in {:.1} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    let a = Announcer::new(bank, config.halls.clone());

    // Cold: every id distinct, so every call composes (floor 3: zh + en).
    let n = 2000;
    let ids: Vec<String> = (1..=n)
        .map(|i| format!("demo.3.A{i:03}.3-{:02}", i % 25 + 1))
        .collect();
    let mut cold = hdrhistogram::Histogram::<u64>::new(3).unwrap();
    for id in &ids {
        let t = Instant::now();
        let (_, hit) = a.wav(id).unwrap();
        cold.record(t.elapsed().as_nanos() as u64).unwrap();
        assert!(!hit);
    }
    // Cached: the newest ids again (the cache keeps the newest ~64 MiB).
    let size = a.wav(&ids[n - 1]).unwrap().0.len();
    let kept = (hallcast::announcer::CACHE_BYTES / size).min(n) / 2;
    let mut warm = hdrhistogram::Histogram::<u64>::new(3).unwrap();
    for _ in 0..10 {
        for id in ids.iter().rev().take(kept) {
            let t = Instant::now();
            let (_, hit) = a.wav(id).unwrap();
            warm.record(t.elapsed().as_nanos() as u64).unwrap();
            assert!(hit);
        }
    }
    let us = |h: &hdrhistogram::Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "cold composition (zh+en, ~{} KB WAV): p50 {:.0} µs  p99 {:.0} µs  max {:.0} µs",
        size / 1024,
        us(&cold, 0.5),
        us(&cold, 0.99),
        cold.max() as f64 / 1000.0
    );
    println!(
        "cached announcement: p50 {:.2} µs  p99 {:.2} µs  max {:.2} µs",
        us(&warm, 0.5),
        us(&warm, 0.99),
        warm.max() as f64 / 1000.0
    );
    println!("cache: {:?}", a.stats());

    // A Guangdong floor: Mandarin, Cantonese and English (target: 5 ms cold).
    let three = [Language::Zh, Language::Yue, Language::En];
    let mut cold3 = hdrhistogram::Histogram::<u64>::new(3).unwrap();
    let mut bytes = 0;
    for i in 1..=n {
        let t = Instant::now();
        let wav = a.compose(&format!("A{i:03}"), &format!("{}", i % 25 + 1), &three);
        cold3.record(t.elapsed().as_nanos() as u64).unwrap();
        bytes = wav.len();
    }
    println!(
        "cold composition (zh+yue+en, ~{} KB WAV): p50 {:.0} µs  p99 {:.0} µs  max {:.0} µs",
        bytes / 1024,
        us(&cold3, 0.5),
        us(&cold3, 0.99),
        cold3.max() as f64 / 1000.0
    );
}
