//! Citizens who are someone (contract v1.2, A2–A4): what a hall remembers
//! of a phone, a client address and a verified phone's token, and the caps
//! of `[halls.citizens]`.
//!
//! These are rules of the hall, so they live with its state: every cap is
//! checked under the hall's lock by the command it limits, the marks it
//! counts are journaled in the command's batch, a restart loads them and
//! the other nodes of a cluster take them in like any record. A scalper
//! who spreads requests over three nodes meets the same counts as on one.

use chrono::{DateTime, Duration, NaiveDate, Utc};

/// A phone gets at most one code this often.
pub const CODE_EVERY_SECONDS: i64 = 60;
/// Codes a phone gets per hall-local day.
pub const CODES_PER_DAY: u32 = 5;
/// A code is valid this long.
pub const CODE_MINUTES: i64 = 5;
/// Wrong tries that kill a code.
pub const CODE_TRIES: u32 = 3;
/// A phone token (what a right code buys) is valid this long.
pub const PHONE_TOKEN_HOURS: i64 = 24;
/// A day's marks of a phone or an address are kept this long after their
/// last change (then only yesterday's counts could be lost, which no cap
/// reads).
const MARK_KEPT_HOURS: i64 = 48;

/// `[halls.citizens]`: the caps on what one phone or one address may take.
/// `0` means no cap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CitizenRules {
    /// A request without a token that names a phone must prove it (A2),
    /// where the hall sends messages at all.
    pub verify_phones: bool,
    pub open_bookings_per_phone: u32,
    pub bookings_per_phone_per_date: u32,
    pub bookings_per_address_per_day: u32,
    pub waiting_mobile_per_phone: u32,
    pub mobile_per_address_per_day: u32,
    pub messages_per_phone_per_day: u32,
}

impl Default for CitizenRules {
    fn default() -> Self {
        CitizenRules {
            verify_phones: true,
            open_bookings_per_phone: 2,
            bookings_per_phone_per_date: 1,
            bookings_per_address_per_day: 20,
            waiting_mobile_per_phone: 1,
            mobile_per_address_per_day: 300,
            messages_per_phone_per_day: 30,
        }
    }
}

/// `n` more would pass cap `cap` (0: no cap) after `used`.
pub fn over(cap: u32, used: u32) -> bool {
    cap != 0 && used >= cap
}

/// A code sent to a phone and not yet used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingCode {
    pub code: String,
    pub expires: DateTime<Utc>,
    pub tries_left: u32,
}

/// What the hall remembers of one phone on one hall-local day.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PhoneMark {
    pub day: NaiveDate,
    /// Codes sent that day.
    pub codes: u32,
    pub last_code_at: Option<DateTime<Utc>>,
    pub pending: Option<PendingCode>,
    /// Messages other than `verify` made for it that day.
    pub messages: u32,
    pub updated_at: DateTime<Utc>,
}

impl PhoneMark {
    /// The mark as of `day`: a new day starts the counts again.
    pub fn on(mark: Option<&PhoneMark>, day: NaiveDate, now: DateTime<Utc>) -> PhoneMark {
        match mark {
            Some(m) if m.day == day => m.clone(),
            // A code sent just before midnight stays usable after it.
            Some(m) => PhoneMark {
                day,
                codes: 0,
                last_code_at: m.last_code_at,
                pending: m.pending.clone(),
                messages: 0,
                updated_at: now,
            },
            None => PhoneMark {
                day,
                codes: 0,
                last_code_at: None,
                pending: None,
                messages: 0,
                updated_at: now,
            },
        }
    }
}

/// What the hall remembers of one client address (an IPv6 one by its /64)
/// on one hall-local day.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddressMark {
    pub day: NaiveDate,
    pub bookings: u32,
    pub mobile: u32,
    pub updated_at: DateTime<Utc>,
}

impl AddressMark {
    /// The mark as of `day`.
    pub fn on(mark: Option<&AddressMark>, day: NaiveDate, now: DateTime<Utc>) -> AddressMark {
        match mark {
            Some(m) if m.day == day => m.clone(),
            _ => AddressMark {
                day,
                bookings: 0,
                mobile: 0,
                updated_at: now,
            },
        }
    }
}

/// A verified phone: what a right code buys, named by the hash of the
/// token the citizen holds (the token itself is never kept).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PhoneToken {
    pub phone: String,
    pub expires: DateTime<Utc>,
}

/// One thing the hall remembers of its citizens, stored under its key
/// ([`Mark::phone_key`], [`Mark::address_key`], [`Mark::token_key`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mark {
    Phone(PhoneMark),
    Address(AddressMark),
    Token(PhoneToken),
    /// The hall's key for hashing ID numbers (A4), made once.
    Key(Vec<u8>),
}

impl Mark {
    pub fn phone_key(phone: &str) -> String {
        format!("phone:{phone}")
    }
    pub fn address_key(address: &str) -> String {
        format!("addr:{address}")
    }
    pub fn token_key(hash: &str) -> String {
        format!("token:{hash}")
    }
    pub const ID_KEY: &'static str = "key:id";

    /// When the mark can be forgotten, by memory and by the store.
    pub fn kept_until(&self) -> DateTime<Utc> {
        match self {
            Mark::Phone(m) => m.updated_at + Duration::hours(MARK_KEPT_HOURS),
            Mark::Address(m) => m.updated_at + Duration::hours(MARK_KEPT_HOURS),
            Mark::Token(t) => t.expires,
            Mark::Key(_) => DateTime::<Utc>::MAX_UTC,
        }
    }
}

/// A real-name booking's holder (A4), as the caller gives it. The ID
/// number is only hashed (with the hall's key) and masked, never kept.
#[derive(Clone)]
pub struct HolderRequest {
    pub name: String,
    pub id_number: String,
    /// The hall's ID key if it has none yet (drawn by the caller).
    pub new_key: Vec<u8>,
}

impl std::fmt::Debug for HolderRequest {
    // Never an ID number in a log, even a debug one.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HolderRequest")
            .field("id_number", &masked_id(&self.id_number))
            .finish_non_exhaustive()
    }
}

/// A booking's holder as kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    pub name: String,
    /// HMAC-SHA256 of the ID number under the hall's key, hex.
    pub id_hash: String,
    /// `110105********1234`.
    pub id_masked: String,
}

/// An ID number as listings show it: the first 6 and the last 4 characters.
pub fn masked_id(id: &str) -> String {
    let chars: Vec<char> = id.chars().collect();
    if chars.len() < 10 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..6].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 10))
}

/// The keyed hash of an ID number: HMAC-SHA256 under the hall's key, hex.
pub fn id_hash(key: &[u8], id: &str) -> String {
    use hmac::Mac;
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(id.to_ascii_uppercase().as_bytes());
    hex(&mac.finalize().into_bytes())
}

/// Bytes as lowercase hex, as digests and keys are kept and signed.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// A PRC resident ID number (GB 11643): 17 digits and a check character
/// (ISO 7064 MOD 11-2: `0`–`9` or `X`) that matches them.
pub fn valid_id_number(id: &str) -> bool {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const CHECK: &[u8; 11] = b"10X98765432";
    let b = id.as_bytes();
    if b.len() != 18 || !b[..17].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let sum: u32 = b[..17]
        .iter()
        .zip(WEIGHTS)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    b[17].to_ascii_uppercase() == CHECK[(sum % 11) as usize]
}

/// How a phone token is kept and looked up: SHA-256, hex (the token has
/// 128+ random bits, so a plain hash is enough).
pub fn token_hash(token: &str) -> String {
    use sha2::Digest;
    hex(&sha2::Sha256::digest(token.as_bytes()))
}

/// A mainland mobile number: 11 digits starting with 1 (A2).
pub fn is_mainland_mobile(p: &str) -> bool {
    p.len() == 11 && p.starts_with('1') && p.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_numbers_are_checked_by_gb_11643() {
        // The standard's own example, and one ending in X.
        assert!(valid_id_number("11010519491231002X"));
        assert!(valid_id_number("11010519491231002x"));
        assert!(valid_id_number("440524188001010014"));
        assert!(
            !valid_id_number("110105194912310021"),
            "wrong check character"
        );
        assert!(!valid_id_number("440524188001010015"));
        assert!(!valid_id_number("44052418800101001"), "17 characters");
        assert!(!valid_id_number("4405241880010100X4"), "X inside");
    }

    #[test]
    fn an_id_number_is_masked_and_hashed_with_the_key() {
        assert_eq!(masked_id("110105194912311234"), "110105********1234");
        let a = id_hash(b"key one", "11010519491231002x");
        assert_eq!(a, id_hash(b"key one", "11010519491231002X"), "case of X");
        assert_ne!(a, id_hash(b"key two", "11010519491231002X"));
        assert_eq!(a.len(), 64);
        assert!(!a.contains("110105"));
        let h = HolderRequest {
            name: "张三".into(),
            id_number: "110105194912311234".into(),
            new_key: vec![1; 32],
        };
        assert!(!format!("{h:?}").contains("19491231"));
    }

    #[test]
    fn mainland_mobiles() {
        assert!(is_mainland_mobile("13800000000"));
        assert!(!is_mainland_mobile("23800000000"));
        assert!(!is_mainland_mobile("1380000000"));
        assert!(!is_mainland_mobile("+8613800000000"));
    }

    #[test]
    fn a_new_day_starts_the_counts_again_but_keeps_a_live_code() {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let d1 = NaiveDate::from_ymd_opt(2026, 12, 7).unwrap();
        let d2 = d1.succ_opt().unwrap();
        let m = PhoneMark {
            day: d1,
            codes: 5,
            last_code_at: Some(t("2026-12-07T15:59:30Z")),
            pending: Some(PendingCode {
                code: "123456".into(),
                expires: t("2026-12-07T16:04:30Z"),
                tries_left: 3,
            }),
            messages: 30,
            updated_at: t("2026-12-07T15:59:30Z"),
        };
        let next = PhoneMark::on(Some(&m), d2, t("2026-12-07T16:00:10Z"));
        assert_eq!((next.codes, next.messages), (0, 0));
        assert!(next.pending.is_some());
        assert_eq!(PhoneMark::on(Some(&m), d1, t("2026-12-07T15:59:40Z")), m);
        assert!(over(2, 2) && !over(2, 1) && !over(0, 1000));
    }
}
