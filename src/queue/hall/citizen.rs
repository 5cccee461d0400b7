//! Verified phones and the caps on what one phone or one address may take
//! (contract v1.2, A2–A4). The marks these count are hall state: journaled
//! with the command, loaded at start, taken in from other nodes.

use chrono::{DateTime, Duration, Utc};

use super::{Hall, Outcome};
use crate::queue::citizen::{
    over, AddressMark, Mark, PendingCode, PhoneMark, PhoneToken, CODES_PER_DAY, CODE_EVERY_SECONDS,
    CODE_MINUTES, CODE_TRIES, PHONE_TOKEN_HOURS,
};
use crate::queue::error::QueueError;

/// A code a command made, to go out as a `verify` message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentCode {
    pub phone: String,
    pub code: String,
    pub expires: DateTime<Utc>,
}

/// How a try of a code ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CodeCheck {
    /// Right: the phone token (its hash is kept) is valid until then.
    Verified { expires: DateTime<Utc> },
    /// Wrong: a try is used up (journaled), the answer is 422.
    Wrong { tries_left: u32 },
}

/// How a request names the phone its messages go to.
#[derive(Clone, Debug, Default)]
pub struct PhoneClaim {
    /// Given as a number: a staff credential vouches for it, or the hall
    /// does not ask for proof.
    pub phone: Option<String>,
    /// The hash of a phone token a right code bought.
    pub token_hash: Option<String>,
}

impl Hall {
    /// The hall asks a request without a token to prove the phone it names
    /// (A2): it sends messages, and `verify_phones` is on.
    pub fn verifies_phones(&self) -> bool {
        self.spec.notify.is_some() && self.spec.citizens.verify_phones
    }

    fn phone_mark(&self, phone: &str) -> Option<&PhoneMark> {
        match self.marks.get(&Mark::phone_key(phone)) {
            Some(Mark::Phone(m)) => Some(m),
            _ => None,
        }
    }

    fn address_mark(&self, address: &str) -> Option<&AddressMark> {
        match self.marks.get(&Mark::address_key(address)) {
            Some(Mark::Address(m)) => Some(m),
            _ => None,
        }
    }

    /// A mark by its store key (for the journal).
    pub fn mark(&self, key: &str) -> Option<&Mark> {
        self.marks.get(key)
    }

    /// Every mark, for the unit tests.
    #[cfg(test)]
    pub fn marks_for_test(&self) -> impl Iterator<Item = (&String, &Mark)> + '_ {
        self.marks.iter()
    }

    /// The hall's key for ID numbers, if made.
    pub(super) fn id_key(&self) -> Option<&[u8]> {
        match self.marks.get(Mark::ID_KEY) {
            Some(Mark::Key(k)) => Some(k),
            _ => None,
        }
    }

    pub(super) fn set_mark(&mut self, key: String, mark: Mark, out: &mut Outcome) {
        self.marks.insert(key.clone(), mark);
        out.marks.push(key);
    }

    /// Sends a code to a phone: at most one a minute and
    /// [`CODES_PER_DAY`] a hall-local day (429 beyond, with when to retry).
    /// The code (drawn by the caller) replaces any earlier one.
    pub fn send_phone_code(
        &mut self,
        phone: &str,
        code: String,
        now: DateTime<Utc>,
    ) -> Result<Outcome, QueueError> {
        if self.spec.notify.is_none() {
            return Err(QueueError::NotFound(format!(
                "hall {} sends no messages to phones, so it has no codes to send",
                self.spec.id
            )));
        }
        let day = self.local_day(now);
        let mut m = PhoneMark::on(self.phone_mark(phone), day, now);
        if let Some(last) = m.last_code_at {
            let next = last + Duration::seconds(CODE_EVERY_SECONDS);
            if next > now {
                return Err(QueueError::TooMany {
                    message: format!(
                        "a code was sent to this phone less than {CODE_EVERY_SECONDS} s ago; wait for it, or ask for another after that"
                    ),
                    retry_after: whole_seconds(next - now),
                });
            }
        }
        if m.codes >= CODES_PER_DAY {
            let tomorrow = day
                .succ_opt()
                .and_then(|d| crate::queue::hours::instant(self.spec.timezone, d, 0))
                .unwrap_or(now + Duration::days(1));
            return Err(QueueError::TooMany {
                message: format!(
                    "this phone has had {CODES_PER_DAY} codes today, the most a day; try again tomorrow or ask staff"
                ),
                retry_after: whole_seconds(tomorrow - now),
            });
        }
        let expires = now + Duration::minutes(CODE_MINUTES);
        m.codes += 1;
        m.last_code_at = Some(now);
        m.pending = Some(PendingCode {
            code: code.clone(),
            expires,
            tries_left: CODE_TRIES,
        });
        m.updated_at = now;
        let mut out = Outcome::default();
        self.set_mark(Mark::phone_key(phone), Mark::Phone(m), &mut out);
        out.sent_code = Some(SentCode {
            phone: phone.to_string(),
            code,
            expires,
        });
        Ok(out)
    }

    /// Tries a code. A right one is used up and buys a phone token valid
    /// [`PHONE_TOKEN_HOURS`] (`token_hash` names it); a wrong one uses a
    /// try, and the third kills the code. No code, a used or an expired
    /// one is refused and changes nothing.
    pub fn verify_phone(
        &mut self,
        phone: &str,
        code: &str,
        token_hash: String,
        now: DateTime<Utc>,
    ) -> Result<Outcome, QueueError> {
        let unverified = || {
            QueueError::PhoneUnverified(
                "this code is not valid for this phone (wrong, used or expired); ask for a new code"
                    .into(),
            )
        };
        let mut m = self.phone_mark(phone).cloned().ok_or_else(unverified)?;
        let Some(pending) = m.pending.as_mut() else {
            return Err(unverified());
        };
        if pending.expires <= now || pending.tries_left == 0 {
            return Err(unverified());
        }
        let mut out = Outcome::default();
        // Compared in full whatever the first difference: the time taken
        // does not tell how much of a guess was right.
        let right = {
            use subtle::ConstantTimeEq;
            bool::from(pending.code.as_bytes().ct_eq(code.as_bytes()))
        };
        if right {
            m.pending = None;
            m.updated_at = now;
            let expires = now + Duration::hours(PHONE_TOKEN_HOURS);
            self.set_mark(Mark::phone_key(phone), Mark::Phone(m), &mut out);
            self.set_mark(
                Mark::token_key(&token_hash),
                Mark::Token(PhoneToken {
                    phone: phone.to_string(),
                    expires,
                }),
                &mut out,
            );
            out.code_check = Some(CodeCheck::Verified { expires });
        } else {
            pending.tries_left -= 1;
            let tries_left = pending.tries_left;
            if tries_left == 0 {
                m.pending = None;
            }
            m.updated_at = now;
            self.set_mark(Mark::phone_key(phone), Mark::Phone(m), &mut out);
            out.code_check = Some(CodeCheck::Wrong { tries_left });
        }
        Ok(out)
    }

    /// The phone a live phone token (by its hash) proves.
    pub fn verified_phone(&self, token_hash: &str, now: DateTime<Utc>) -> Option<&str> {
        match self.marks.get(&Mark::token_key(token_hash)) {
            Some(Mark::Token(t)) if t.expires > now => Some(&t.phone),
            _ => None,
        }
    }

    /// The phone a request's messages go to. `anonymous`: made without a
    /// token, so in a hall that verifies phones a number must come as a
    /// phone token.
    pub(super) fn claimed_phone(
        &self,
        claim: &PhoneClaim,
        anonymous: bool,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, QueueError> {
        if let Some(hash) = &claim.token_hash {
            return self
                .verified_phone(hash, now)
                .map(|p| Some(p.to_string()))
                .ok_or_else(|| {
                    QueueError::PhoneUnverified(
                        "the phone token is unknown or expired (they last 24 h); verify the phone again"
                            .into(),
                    )
                });
        }
        if claim.phone.is_some() && anonymous && self.verifies_phones() {
            return Err(QueueError::PhoneUnverified(format!(
                "hall {} sends messages only to verified phones: POST …/phone-codes, then …/phone-codes/verify, and send \"notify\": {{\"phone_token\": …}}",
                self.spec.id
            )));
        }
        Ok(claim.phone.clone())
    }

    /// Counts a message (not `verify`) to a phone against
    /// `messages_per_phone_per_day`; false when it is over, and must be
    /// dropped.
    pub fn count_message(&mut self, phone: &str, now: DateTime<Utc>, out: &mut Outcome) -> bool {
        let cap = self.spec.citizens.messages_per_phone_per_day;
        let day = self.local_day(now);
        let mut m = PhoneMark::on(self.phone_mark(phone), day, now);
        if over(cap, m.messages) {
            return false;
        }
        m.messages += 1;
        m.updated_at = now;
        self.set_mark(Mark::phone_key(phone), Mark::Phone(m), out);
        true
    }

    /// Checks an address's day count against a cap (`pick` chooses which).
    pub(super) fn check_address(
        &self,
        origin: Option<&str>,
        cap: u32,
        key: &str,
        pick: fn(&AddressMark) -> u32,
        now: DateTime<Utc>,
    ) -> Result<(), QueueError> {
        let Some(addr) = origin else { return Ok(()) };
        let day = self.local_day(now);
        let used = self
            .address_mark(addr)
            .filter(|m| m.day == day)
            .map_or(0, pick);
        if over(cap, used) {
            return Err(QueueError::LimitReached(format!(
                "{key}: this address has made {used} today, the most hall {} allows; try again tomorrow or ask staff",
                self.spec.id
            )));
        }
        Ok(())
    }

    /// Counts one more for an address today (after the command's checks).
    pub(super) fn note_address(
        &mut self,
        origin: Option<&str>,
        bump: fn(&mut AddressMark),
        now: DateTime<Utc>,
        out: &mut Outcome,
    ) {
        let Some(addr) = origin else { return };
        let day = self.local_day(now);
        let mut m = AddressMark::on(self.address_mark(addr), day, now);
        bump(&mut m);
        m.updated_at = now;
        self.set_mark(Mark::address_key(addr), Mark::Address(m), out);
    }

    /// Forgets marks past their time (memory only: the store prunes its
    /// own), so a server that runs for months holds only recent ones.
    pub(super) fn forget_marks(&mut self, now: DateTime<Utc>) {
        self.marks.retain(|_, m| m.kept_until() > now);
    }
}

fn whole_seconds(d: Duration) -> u64 {
    let ms = d.num_milliseconds().max(0) as u64;
    ms.div_ceil(1000).max(1)
}
