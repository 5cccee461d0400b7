//! Citizens' marks (A2–A4) as both stores keep them: a row per key, the
//! mark's fields as a small JSON text, and the instant it can be forgotten
//! (so loading and pruning read one indexed column). The marks are few and
//! change rarely; one generic row spares both dialects a table per kind.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::from_ms;
use crate::queue::citizen::{AddressMark, PendingCode, PhoneMark, PhoneToken};
use crate::queue::Mark;

#[derive(Serialize, Deserialize)]
#[serde(tag = "k")]
enum Stored {
    #[serde(rename = "phone")]
    Phone {
        day: String,
        codes: u32,
        last: Option<i64>,
        code: Option<String>,
        expires: Option<i64>,
        tries: u32,
        messages: u32,
        at: i64,
    },
    #[serde(rename = "addr")]
    Address {
        day: String,
        bookings: u32,
        mobile: u32,
        at: i64,
    },
    #[serde(rename = "token")]
    Token { phone: String, expires: i64 },
    #[serde(rename = "key")]
    Key { hex: String },
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// The stored text of a mark.
pub fn encode(m: &Mark) -> String {
    let s = match m {
        Mark::Phone(p) => Stored::Phone {
            day: p.day.to_string(),
            codes: p.codes,
            last: p.last_code_at.map(ms),
            code: p.pending.as_ref().map(|c| c.code.clone()),
            expires: p.pending.as_ref().map(|c| ms(c.expires)),
            tries: p.pending.as_ref().map_or(0, |c| c.tries_left),
            messages: p.messages,
            at: ms(p.updated_at),
        },
        Mark::Address(a) => Stored::Address {
            day: a.day.to_string(),
            bookings: a.bookings,
            mobile: a.mobile,
            at: ms(a.updated_at),
        },
        Mark::Token(t) => Stored::Token {
            phone: t.phone.clone(),
            expires: ms(t.expires),
        },
        Mark::Key(k) => Stored::Key {
            hex: crate::queue::citizen::hex(k),
        },
    };
    serde_json::to_string(&s).expect("a mark serializes")
}

/// The instant a mark can be forgotten, as stored (ms; `i64::MAX` never).
pub fn kept_until_ms(m: &Mark) -> i64 {
    let t = m.kept_until();
    if t == DateTime::<Utc>::MAX_UTC {
        i64::MAX
    } else {
        ms(t)
    }
}

fn date(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
}

/// A mark from its stored text; `None` for one this binary cannot read
/// (a newer binary's kind), which is then left out rather than failing
/// the load.
pub fn decode(text: &str) -> Option<Mark> {
    Some(match serde_json::from_str::<Stored>(text).ok()? {
        Stored::Phone {
            day,
            codes,
            last,
            code,
            expires,
            tries,
            messages,
            at,
        } => Mark::Phone(PhoneMark {
            day: date(&day)?,
            codes,
            last_code_at: last.map(from_ms),
            pending: match (code, expires) {
                (Some(code), Some(e)) => Some(PendingCode {
                    code,
                    expires: from_ms(e),
                    tries_left: tries,
                }),
                _ => None,
            },
            messages,
            updated_at: from_ms(at),
        }),
        Stored::Address {
            day,
            bookings,
            mobile,
            at,
        } => Mark::Address(AddressMark {
            day: date(&day)?,
            bookings,
            mobile,
            updated_at: from_ms(at),
        }),
        Stored::Token { phone, expires } => Mark::Token(PhoneToken {
            phone,
            expires: from_ms(expires),
        }),
        Stored::Key { hex } => Mark::Key(
            (0..hex.len() / 2)
                .map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok())
                .collect::<Option<Vec<u8>>>()?,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_mark_reads_back_as_written() {
        let t = from_ms(1_796_173_200_123);
        let day = NaiveDate::from_ymd_opt(2026, 12, 8).unwrap();
        for m in [
            Mark::Phone(PhoneMark {
                day,
                codes: 2,
                last_code_at: Some(t),
                pending: Some(PendingCode {
                    code: "012345".into(),
                    expires: t,
                    tries_left: 2,
                }),
                messages: 7,
                updated_at: t,
            }),
            Mark::Phone(PhoneMark {
                day,
                codes: 0,
                last_code_at: None,
                pending: None,
                messages: 1,
                updated_at: t,
            }),
            Mark::Address(AddressMark {
                day,
                bookings: 3,
                mobile: 4,
                updated_at: t,
            }),
            Mark::Token(PhoneToken {
                phone: "13800000000".into(),
                expires: t,
            }),
            Mark::Key(vec![0, 1, 254, 255]),
        ] {
            assert_eq!(decode(&encode(&m)), Some(m));
        }
        assert_eq!(decode(r#"{"k":"later-kind"}"#), None);
    }
}
