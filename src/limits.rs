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
    /// Open TCP connections of one address, streams included (A7); a
    /// trusted proxy's own connections are not capped (its clients are,
    /// by their streams).
    pub connections_per_ip: u32,
    /// Peers whose right-most `X-Forwarded-For` entry is the client.
    pub trusted_proxies: Vec<IpAddr>,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            citizen_per_second: 5,
            public_per_ip_per_second: 50,
            staff_per_second: 0,
            streams_per_ip: 1000,
            connections_per_ip: 2000,
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
    open: Arc<Mutex<HashMap<IpAddr, Open>>>,
}

/// What one address has open.
#[derive(Clone, Copy, Debug, Default)]
struct Open {
    streams: u32,
    connections: u32,
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

/// An open stream (and, for a WebSocket, the connection it took over
/// from HTTP) counted against its address; uncounted when dropped.
pub struct StreamGuard {
    ip: IpAddr,
    connection: bool,
    open: Arc<Mutex<HashMap<IpAddr, Open>>>,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        uncount(&self.open, self.ip, |o| {
            o.streams -= 1;
            if self.connection {
                o.connections -= 1;
            }
        });
    }
}

/// An address already has `connections_per_ip` open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooMany;

/// An open HTTP connection counted against its address (A7).
pub struct ConnectionGuard {
    ip: IpAddr,
    open: Arc<Mutex<HashMap<IpAddr, Open>>>,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        uncount(&self.open, self.ip, |o| o.connections -= 1);
    }
}

fn uncount(open: &Mutex<HashMap<IpAddr, Open>>, ip: IpAddr, f: impl FnOnce(&mut Open)) {
    let mut m = open.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(o) = m.get_mut(&ip) {
        f(o);
        if o.streams == 0 && o.connections == 0 {
            m.remove(&ip);
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
            open: Arc::new(Mutex::new(HashMap::new())),
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

    /// Counts a new stream from `ip`, or says to retry when it has too
    /// many open. A WebSocket (`connection`) also counts as a connection
    /// from here on: its HTTP connection's count ends at the upgrade.
    pub fn open_stream(
        &self,
        ip: Option<IpAddr>,
        connection: bool,
    ) -> Result<Option<StreamGuard>, RetryAfter> {
        let (Some(ip), max) = (ip.map(address_key), self.config.streams_per_ip) else {
            return Ok(None);
        };
        let mut m = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let o = m.entry(ip).or_default();
        if max != 0 && o.streams >= max {
            return Err(RetryAfter(1));
        }
        o.streams += 1;
        if connection {
            o.connections += 1;
        }
        Ok(Some(StreamGuard {
            ip,
            connection,
            open: self.open.clone(),
        }))
    }

    /// Counts a new TCP connection from `peer` (A7): `Err` when its
    /// address has `connections_per_ip` open, and it must be closed at
    /// once. A trusted proxy's connections are not counted.
    pub fn open_connection(&self, peer: IpAddr) -> Result<Option<ConnectionGuard>, TooMany> {
        let max = self.config.connections_per_ip;
        if max == 0 || self.config.trusted_proxies.contains(&peer) {
            return Ok(None);
        }
        let ip = address_key(peer);
        let mut m = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let o = m.entry(ip).or_default();
        if o.connections >= max {
            return Err(TooMany);
        }
        o.connections += 1;
        Ok(Some(ConnectionGuard {
            ip,
            open: self.open.clone(),
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
        let g1 = l.open_stream(Some(a), false).unwrap();
        let _g2 = l.open_stream(Some(a), false).unwrap();
        assert!(l.open_stream(Some(a), false).is_err());
        assert!(l.open_stream(Some(b), false).is_ok());
        drop(g1);
        assert!(l.open_stream(Some(a), false).is_ok());
    }

    #[test]
    fn connections_are_counted_per_address_with_websockets_and_not_for_a_proxy() {
        let l = Limits::new(LimitsConfig {
            connections_per_ip: 2,
            trusted_proxies: vec!["127.0.0.1".parse().unwrap()],
            ..LimitsConfig::default()
        });
        let a: IpAddr = "10.1.1.1".parse().unwrap();
        let c1 = l.open_connection(a).unwrap();
        // A WebSocket keeps its connection counted after the upgrade.
        let ws = l.open_stream(Some(a), true).unwrap();
        drop(c1);
        let _c2 = l.open_connection(a).unwrap();
        assert!(l.open_connection(a).is_err(), "two open: the stream and c2");
        drop(ws);
        let _c3 = l.open_connection(a).unwrap();
        let proxy: IpAddr = "127.0.0.1".parse().unwrap();
        for _ in 0..5 {
            assert!(l.open_connection(proxy).unwrap().is_none());
        }
        assert!(
            l.open.lock().unwrap().len() == 1,
            "nothing kept for the proxy"
        );
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
