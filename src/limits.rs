//! Limits on what one caller may do (contract §13): token buckets for
//! POSTs per ticket token, per address without a token, and per staff
//! token; a count of open streams per address. A public lobby's pages are
//! reachable by anyone: these keep one client from taking the server.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use lru::LruCache;
use warp::http::HeaderMap;

/// `[server.limits]`, validated. A rate of 0 means no limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitsConfig {
    pub citizen_per_second: u32,
    pub public_per_ip_per_second: u32,
    pub staff_per_second: u32,
    pub streams_per_ip: u32,
    /// Peers whose right-most `X-Forwarded-For` entry is the client.
    pub trusted_proxies: Vec<IpAddr>,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            citizen_per_second: 5,
            public_per_ip_per_second: 50,
            staff_per_second: 0,
            streams_per_ip: 5000,
            trusted_proxies: Vec::new(),
        }
    }
}

/// Buckets kept at most. Each is a few dozen bytes; past this the least
/// recently used is forgotten (it starts full again), so a flood of
/// distinct keys costs bounded memory.
const BUCKETS: usize = 100_000;

/// Whose POST it is, for its bucket.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Poster {
    /// A citizen's ticket or appointment token.
    Citizen(String),
    /// No token: the client's address.
    Public(IpAddr),
    /// A window, kiosk or admin token.
    Staff(String),
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The address a per-address limit counts by (contract A3: an IPv6
/// client by its /64, which one subscriber's devices share and can
/// change at will within; an IPv4-mapped IPv6 address as the IPv4 one).
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// The server's limits and their state.
pub struct Limits {
    config: LimitsConfig,
    buckets: Mutex<LruCache<Poster, Bucket>>,
    streams: Arc<Mutex<HashMap<IpAddr, u32>>>,
}

/// A refusal: retry after this many whole seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryAfter(pub u64);

impl RetryAfter {
    /// Says so on the 429 answer, as `Retry-After` (contract §13).
    pub fn set_on<B>(self, response: &mut warp::http::Response<B>) {
        response
            .headers_mut()
            .insert("retry-after", warp::http::HeaderValue::from(self.0));
    }
}

/// An open stream counted against its address; uncounted when dropped.
pub struct StreamGuard {
    ip: IpAddr,
    streams: Arc<Mutex<HashMap<IpAddr, u32>>>,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let mut s = self.streams.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = s.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                s.remove(&self.ip);
            }
        }
    }
}

impl Limits {
    pub fn new(config: LimitsConfig) -> Limits {
        Limits {
            config,
            buckets: Mutex::new(LruCache::new(
                NonZeroUsize::new(BUCKETS).expect("bucket count is not zero"),
            )),
            streams: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The client's address: the peer, or behind a trusted proxy the
    /// right-most `X-Forwarded-For` entry (the one that proxy added; those
    /// left of it are the client's own claims).
    pub fn client_ip(&self, peer: Option<SocketAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = peer?.ip();
        if !self.config.trusted_proxies.contains(&peer) {
            return Some(peer);
        }
        // Only the right-most entry: if it does not parse, an earlier one
        // (the client's own claim) must not stand in for it.
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .next_back()
            .and_then(|v| v.trim().parse::<IpAddr>().ok());
        Some(forwarded.unwrap_or(peer))
    }

    /// Takes one POST from the poster's bucket, or says when to retry.
    pub fn post(&self, who: Poster, now: Instant) -> Result<(), RetryAfter> {
        let who = match who {
            Poster::Public(ip) => Poster::Public(address_key(ip)),
            other => other,
        };
        let rate = match who {
            Poster::Citizen(_) => self.config.citizen_per_second,
            Poster::Public(_) => self.config.public_per_ip_per_second,
            Poster::Staff(_) => self.config.staff_per_second,
        };
        if rate == 0 {
            return Ok(());
        }
        let rate = f64::from(rate);
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        // A bucket holds one second's worth and starts full.
        let b = buckets.get_or_insert_mut(who, || Bucket {
            tokens: rate,
            at: now,
        });
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate).min(rate);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(RetryAfter(((1.0 - b.tokens) / rate).ceil().max(1.0) as u64))
        }
    }

    /// Counts a new stream from `ip`; `None` when it has too many open.
    pub fn open_stream(&self, ip: Option<IpAddr>) -> Result<Option<StreamGuard>, RetryAfter> {
        let (Some(ip), max) = (ip.map(address_key), self.config.streams_per_ip) else {
            return Ok(None);
        };
        let mut s = self.streams.lock().unwrap_or_else(|p| p.into_inner());
        let n = s.entry(ip).or_insert(0);
        if max != 0 && *n >= max {
            return Err(RetryAfter(1));
        }
        *n += 1;
        Ok(Some(StreamGuard {
            ip,
            streams: self.streams.clone(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn an_ipv6_client_is_counted_by_its_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        assert_ne!(address_key(a), address_key(c));
        let mapped: IpAddr = "::ffff:10.1.1.1".parse().unwrap();
        assert_eq!(address_key(mapped), "10.1.1.1".parse::<IpAddr>().unwrap());
        let l = Limits::new(LimitsConfig {
            public_per_ip_per_second: 1,
            ..LimitsConfig::default()
        });
        let now = Instant::now();
        assert!(l.post(Poster::Public(a), now).is_ok());
        assert!(
            l.post(Poster::Public(b), now).is_err(),
            "same /64, same bucket"
        );
        assert!(l.post(Poster::Public(c), now).is_ok());
    }

    #[test]
    fn a_bucket_holds_one_second_and_refills() {
        let l = Limits::new(LimitsConfig {
            citizen_per_second: 2,
            ..LimitsConfig::default()
        });
        let t = Instant::now();
        let who = || Poster::Citizen("tok".into());
        assert!(l.post(who(), t).is_ok());
        assert!(l.post(who(), t).is_ok());
        assert_eq!(l.post(who(), t), Err(RetryAfter(1)));
        // Another token has its own bucket.
        assert!(l.post(Poster::Citizen("other".into()), t).is_ok());
        // Half a second refills one.
        assert!(l.post(who(), t + Duration::from_millis(500)).is_ok());
        assert!(l.post(who(), t + Duration::from_millis(500)).is_err());
        // Never more than a second's worth, however long it rested.
        let later = t + Duration::from_secs(60);
        assert!(l.post(who(), later).is_ok());
        assert!(l.post(who(), later).is_ok());
        assert!(l.post(who(), later).is_err());
        // Staff are unlimited by default.
        for _ in 0..1000 {
            assert!(l.post(Poster::Staff("admin".into()), t).is_ok());
        }
    }

    #[test]
    fn streams_are_counted_per_address_until_dropped() {
        let l = Limits::new(LimitsConfig {
            streams_per_ip: 2,
            ..LimitsConfig::default()
        });
        let a: IpAddr = "10.1.1.1".parse().unwrap();
        let b: IpAddr = "10.1.1.2".parse().unwrap();
        let g1 = l.open_stream(Some(a)).unwrap();
        let _g2 = l.open_stream(Some(a)).unwrap();
        assert!(l.open_stream(Some(a)).is_err());
        assert!(l.open_stream(Some(b)).is_ok());
        drop(g1);
        assert!(l.open_stream(Some(a)).is_ok());
    }

    #[test]
    fn only_a_trusted_proxy_names_the_client() {
        let l = Limits::new(LimitsConfig {
            trusted_proxies: vec!["127.0.0.1".parse().unwrap()],
            ..LimitsConfig::default()
        });
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "1.2.3.4, 5.6.7.8".parse().unwrap());
        let proxy: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let other: SocketAddr = "127.0.0.2:5000".parse().unwrap();
        assert_eq!(
            l.client_ip(Some(proxy), &h),
            Some("5.6.7.8".parse().unwrap())
        );
        assert_eq!(
            l.client_ip(Some(other), &h),
            Some("127.0.0.2".parse().unwrap())
        );
        assert_eq!(
            l.client_ip(Some(proxy), &HeaderMap::new()),
            Some("127.0.0.1".parse().unwrap())
        );
    }
}
