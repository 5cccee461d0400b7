//! Spoken announcements (contract §6): "叮咚～ 请 A023 号 到 1 号窗口 办理"
//! then "Number A 0 2 3, please go to window 1", in the floor's languages.
//!
//! An announcement's id names what it says — hall, floor, number, window —
//! so any screen can fetch it at any time (also after a restart) and the
//! same call always yields the same bytes. Composed WAVs are cached.

mod cache;
pub mod clips;
mod embedded;
pub mod mix;
#[cfg(feature = "playback")]
pub mod playback;
pub mod script;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use crate::queue::{Announce, HallSpec, Language};
use crate::wire::Announcement;
use cache::Cache;
pub use cache::CACHE_BYTES;
use clips::ClipBank;

/// Cache counters, for operators and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub hits: u64,
    pub misses: u64,
    pub entries: usize,
    pub bytes: usize,
}

/// Composes, caches and (with the `playback` feature) plays announcements.
pub struct Announcer {
    bank: ClipBank,
    halls: Vec<Arc<HallSpec>>,
    cache: Mutex<Cache>,
    hits: AtomicU64,
    misses: AtomicU64,
    #[cfg(feature = "playback")]
    player: Option<playback::Player>,
}

/// What an announcement id resolves to.
struct Target<'a> {
    number: &'a str,
    label: &'a str,
    languages: Vec<Language>,
}

/// The id's last part: the languages spoken, in order ("zh-yue-en"). It is
/// in the id so that a floor whose languages change between restarts gets
/// new URLs: screens cache a WAV for a day, and the server's cache is
/// keyed by the id.
fn languages_tag(languages: &[Language]) -> String {
    languages
        .iter()
        .map(|l| l.as_str())
        .collect::<Vec<_>>()
        .join("-")
}

fn parse_languages(tag: &str) -> Option<Vec<Language>> {
    let mut out = Vec::new();
    for part in tag.split('-') {
        let l = Language::parse(part)?;
        if out.contains(&l) {
            return None;
        }
        out.push(l);
    }
    Some(out)
}

fn valid_number(n: &str) -> bool {
    let letters = n.chars().take_while(|c| c.is_ascii_uppercase()).count();
    let digits = n.len() - letters;
    (1..=2).contains(&letters)
        && (3..=6).contains(&digits)
        && n[letters..].bytes().all(|b| b.is_ascii_digit())
}

impl Announcer {
    /// An announcer for these halls with these clips.
    pub fn new(bank: ClipBank, halls: Vec<Arc<HallSpec>>) -> Announcer {
        Announcer {
            bank,
            halls,
            cache: Mutex::new(Cache::new(CACHE_BYTES)),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            #[cfg(feature = "playback")]
            player: None,
        }
    }

    /// Plays every composed call on the default sound device.
    #[cfg(feature = "playback")]
    pub fn with_playback(mut self) -> Result<Announcer, String> {
        self.player = Some(playback::Player::start()?);
        Ok(self)
    }

    /// The announcement of `number` called to `window` on a voice floor,
    /// with its id; `None` on a silent floor.
    pub fn announce(
        &self,
        spec: &HallSpec,
        floor: i32,
        number: &str,
        window: usize,
    ) -> Option<(String, Announcement)> {
        let f = spec.floor(floor)?;
        if f.announce != Announce::Voice {
            return None;
        }
        let label = &spec.windows[window].label;
        let text = script::parts(number, label, &f.languages)
            .into_iter()
            .map(|p| p.text)
            .collect::<Vec<_>>()
            .join(" ");
        let id = format!(
            "{}.{}.{}.{}.{}",
            spec.id,
            floor,
            number,
            spec.windows[window].id,
            languages_tag(&f.languages)
        );
        let audio = format!("/api/v1/announcements/{id}.wav");
        Some((id, Announcement { text, audio }))
    }

    fn resolve<'a>(&'a self, id: &'a str) -> Option<Target<'a>> {
        let mut it = id.split('.');
        let (hall, floor, number, window) = (it.next()?, it.next()?, it.next()?, it.next()?);
        // Ids made before the languages were part of them have four parts;
        // they speak the floor's languages of today.
        let languages = it.next().map(parse_languages);
        if it.next().is_some() || !valid_number(number) {
            return None;
        }
        let spec = self.halls.iter().find(|h| h.id == hall)?;
        let floor: i32 = floor.parse().ok()?;
        let f = spec.floor(floor)?;
        let window = spec.window_index(window)?;
        let w = &spec.windows[window];
        let languages = match languages {
            None => f.languages.clone(),
            Some(l) => l?,
        };
        (f.announce == Announce::Voice && w.floor == floor).then_some(Target {
            number,
            label: &w.label,
            languages,
        })
    }

    /// A composed WAV if the cache has it (counted as a hit); cheap, for
    /// the async threads: only a miss needs [`Announcer::wav`]'s work.
    pub fn cached(&self, id: &str) -> Option<Bytes> {
        let w = self.lock().get(id)?;
        self.hits.fetch_add(1, Ordering::Relaxed);
        Some(w)
    }

    /// The WAV of an announcement id, and whether it came from the cache;
    /// `None` when the id names no voice floor, window or valid number.
    pub fn wav(&self, id: &str) -> Option<(Bytes, bool)> {
        let t = self.resolve(id)?;
        if let Some(w) = self.cached(id) {
            return Some((w, true));
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let wav = self.compose(t.number, t.label, &t.languages);
        self.lock().put(id.to_string(), wav.clone());
        Some((wav, false))
    }

    /// Composes an announcement (no cache).
    pub fn compose(&self, number: &str, label: &str, languages: &[Language]) -> Bytes {
        let parts = script::parts(number, label, languages);
        let plan = mix::plan(&self.bank, &parts);
        Bytes::from(mix::render_wav(&self.bank, &plan))
    }

    /// The timeline a composition follows (for tests and tools).
    pub fn plan(&self, number: &str, label: &str, languages: &[Language]) -> mix::Plan {
        mix::plan(&self.bank, &script::parts(number, label, languages))
    }

    /// A clip's length in samples at the output rate.
    pub fn clip_len(&self, name: &str) -> usize {
        self.bank.get(name).len()
    }

    /// Cache counters.
    pub fn stats(&self) -> Stats {
        let c = self.lock();
        Stats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            entries: c.entries(),
            bytes: c.bytes(),
        }
    }

    /// Queues a call for the sound device, in call order (no-op without
    /// the `playback` feature or when playback is off).
    pub fn play(&self, id: &str) {
        #[cfg(feature = "playback")]
        if let Some(p) = &self.player {
            if let Some((wav, _)) = self.wav(id) {
                p.enqueue(wav);
            }
        }
        #[cfg(not(feature = "playback"))]
        let _ = id;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }
}
