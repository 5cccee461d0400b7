//! What the nodes of a cluster say to each other on the bus, sealed with
//! the cluster's shared secret (contract v1.2 A8): HMAC-SHA256 over the
//! subject and the payload, so a message made up by anyone who can reach
//! NATS, or one moved to another hall's subject, is refused.
//!
//! A sealed message is still only a hint: a node that accepts one reads
//! the store before it delivers anything (`cluster.rs`), so even a node
//! whose secret leaked cannot show a call PostgreSQL does not hold.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Bytes of the MAC in front of every sealed payload.
const MAC_LEN: usize = 32;

/// The cluster's key.
#[derive(Clone)]
pub struct Seal {
    key: Vec<u8>,
}

impl std::fmt::Debug for Seal {
    // A secret never reaches a log, even a debug one.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Seal(…)")
    }
}

impl Seal {
    pub fn new(secret: &str) -> Seal {
        Seal {
            key: secret.as_bytes().to_vec(),
        }
    }

    fn mac(&self, subject: &str, payload: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key");
        mac.update(subject.as_bytes());
        mac.update(b"\n");
        mac.update(payload);
        mac
    }

    /// The MAC, then the payload.
    pub fn seal(&self, subject: &str, payload: &[u8]) -> Vec<u8> {
        let mut out = self.mac(subject, payload).finalize().into_bytes().to_vec();
        out.extend_from_slice(payload);
        out
    }

    /// The payload of a message sealed with this key for this subject;
    /// `None` for anything else (compared in constant time).
    pub fn open<'a>(&self, subject: &str, msg: &'a [u8]) -> Option<&'a [u8]> {
        if msg.len() < MAC_LEN {
            return None;
        }
        let (tag, payload) = msg.split_at(MAC_LEN);
        self.mac(subject, payload).verify_slice(tag).ok()?;
        Some(payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_message_sealed_with_the_key_for_its_subject_opens() {
        let a = Seal::new("a-cluster-secret-of-32-characters");
        let b = Seal::new("another-secret-of-32-characters!!");
        let msg = a.seal("hallcast.c.events.demo", b"{\"hall\":\"demo\"}");
        assert_eq!(
            a.open("hallcast.c.events.demo", &msg),
            Some(&b"{\"hall\":\"demo\"}"[..])
        );
        assert_eq!(b.open("hallcast.c.events.demo", &msg), None, "another key");
        assert_eq!(
            a.open("hallcast.c.events.other", &msg),
            None,
            "another subject"
        );
        let mut bent = msg.clone();
        *bent.last_mut().unwrap() ^= 1;
        assert_eq!(a.open("hallcast.c.events.demo", &bent), None, "changed");
        assert_eq!(
            a.open("hallcast.c.events.demo", b"{\"hall\":\"demo\"}"),
            None
        );
        assert_eq!(a.open("hallcast.c.events.demo", b""), None);
        assert!(!format!("{a:?}").contains("secret"));
    }
}
