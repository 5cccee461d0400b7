//! Composed announcements, least recently used first out, bounded by bytes.

use bytes::Bytes;
use lru::LruCache;

/// Bytes of composed audio kept. One announcement is about 4–8 s of 16 kHz
/// 16-bit mono, 130–260 KB; 64 MiB keeps the last few hundred calls of a
/// whole city's halls, which covers every screen fetching a call and its
/// recalls, for the memory of a few hundred idle screens' connections.
pub const CACHE_BYTES: usize = 64 * 1024 * 1024;

/// The cache.
pub struct Cache {
    lru: LruCache<String, Bytes>,
    bytes: usize,
    limit: usize,
}

impl Cache {
    /// An empty cache holding at most `limit` bytes.
    pub fn new(limit: usize) -> Cache {
        Cache {
            lru: LruCache::unbounded(),
            bytes: 0,
            limit,
        }
    }

    /// A cached announcement, marking it recently used.
    pub fn get(&mut self, id: &str) -> Option<Bytes> {
        self.lru.get(id).cloned()
    }

    /// Keeps an announcement, dropping the least recently used past the
    /// limit. One larger than the whole limit is not kept.
    pub fn put(&mut self, id: String, wav: Bytes) {
        if wav.len() > self.limit {
            return;
        }
        self.bytes += wav.len();
        if let Some(old) = self.lru.put(id, wav) {
            self.bytes -= old.len();
        }
        while self.bytes > self.limit {
            match self.lru.pop_lru() {
                Some((_, old)) => self.bytes -= old.len(),
                None => break,
            }
        }
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Entries held.
    pub fn entries(&self) -> usize {
        self.lru.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_by_bytes_least_recent_out() {
        let mut c = Cache::new(100);
        c.put("a".into(), Bytes::from(vec![0; 40]));
        c.put("b".into(), Bytes::from(vec![0; 40]));
        assert!(c.get("a").is_some()); // a is now the most recent
        c.put("c".into(), Bytes::from(vec![0; 40]));
        assert!(c.get("b").is_none(), "b was least recently used");
        assert!(c.get("a").is_some() && c.get("c").is_some());
        assert_eq!(c.bytes(), 80);
        c.put("huge".into(), Bytes::from(vec![0; 101]));
        assert!(c.get("huge").is_none());
        c.put("a".into(), Bytes::from(vec![0; 10]));
        assert_eq!(c.bytes(), 50, "replacing counts the new size only");
    }
}
