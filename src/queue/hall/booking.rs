//! The hall's bookings (contract §8): slots, booking, cancelling, check-in,
//! and what time does to them (missed bookings, reminders, started slots).
//!
//! A slot never takes more than `per_slot` bookings: every booking runs
//! under the hall's lock, and `places` counts those holding a place.

use std::collections::BTreeMap;
use std::ops::Bound::{Excluded, Unbounded};

use chrono::{DateTime, Duration, NaiveDate, Utc};

use super::citizen::PhoneClaim;
use super::{Hall, IssueRequest, Outcome};
use crate::queue::appointment::{
    slots_of, Appointment, BookingNotice, BookingStatus, Slot, CODE_LEN,
};
use crate::queue::citizen::{id_hash, masked_id, over, Holder, HolderRequest, Mark};
use crate::queue::error::QueueError;
use crate::queue::spec::AppointmentSpec;
use crate::queue::ticket::{Channel, Priority};

/// A booking's fields chosen by the caller.
#[derive(Clone, Debug)]
pub struct BookRequest {
    pub service: String,
    pub start: DateTime<Utc>,
    pub phone: Option<String>,
    /// The hash of a phone token naming the phone instead (A2).
    pub phone_token: Option<String>,
    /// The client address of a booking made without a token (see
    /// [`IssueRequest::origin`]).
    pub origin: Option<String>,
    /// The holder of a real-name booking (A4).
    pub holder: Option<HolderRequest>,
    pub token: String,
    /// Codes to choose from, in order: the first the hall does not hold
    /// is taken (the caller draws them at random).
    pub codes: Vec<String>,
}

/// Which booking a check-in names.
#[derive(Clone, Debug)]
pub enum BookingRef {
    /// The citizen's phone, by its secret.
    Token(String),
    /// A kiosk or staff, by the code the citizen shows.
    Code(String),
}

/// A check-in of `line` has a slot that started in (`after`, `now`].
fn started_between(
    line: &BTreeMap<(DateTime<Utc>, u64), u64>,
    after: DateTime<Utc>,
    now: DateTime<Utc>,
) -> bool {
    line.range((Excluded((after, u64::MAX)), Unbounded))
        .next()
        .is_some_and(|((slot, _), _)| *slot <= now)
}

impl Hall {
    /// A booking by internal id.
    pub fn appointment(&self, id: u64) -> Option<&Appointment> {
        self.appointments.get(&id)
    }

    /// A booking by its citizen token.
    pub fn appointment_by_token(&self, token: &str) -> Option<&Appointment> {
        self.appointment_by_token
            .get(token)
            .and_then(|id| self.appointments.get(id))
    }

    /// How a service takes bookings; an error names the service that
    /// takes none.
    pub fn booking_rules(&self, service: usize) -> Result<AppointmentSpec, QueueError> {
        let s = &self.spec.services[service];
        s.appointments.ok_or_else(|| {
            QueueError::NotFound(format!(
                "service '{}' of hall {} takes no appointments",
                s.id, self.spec.id
            ))
        })
    }

    /// The slots of a service on a hall-local date not yet started, each
    /// with the places left; none outside today .. today + `days_ahead`.
    pub fn slots(
        &self,
        service: usize,
        date: NaiveDate,
        now: DateTime<Utc>,
    ) -> Result<Vec<(Slot, u32)>, QueueError> {
        let rules = self.booking_rules(service)?;
        let today = self.local_day(now);
        let last = today + Duration::days(rules.days_ahead.into());
        let Some(hours) = &self.spec.hours else {
            return Ok(Vec::new());
        };
        if date < today || date > last {
            return Ok(Vec::new());
        }
        Ok(slots_of(hours, self.spec.timezone, &rules, date)
            .into_iter()
            .filter(|s| s.start > now)
            .map(|s| {
                (
                    s,
                    rules.per_slot.saturating_sub(self.taken(service, s.start)),
                )
            })
            .collect())
    }

    fn taken(&self, service: usize, start: DateTime<Utc>) -> u32 {
        self.places.get(&(service, start)).copied().unwrap_or(0)
    }

    /// Books a place in a slot.
    pub fn book(&mut self, req: BookRequest, now: DateTime<Utc>) -> Result<Outcome, QueueError> {
        let service = self.service_by_id(&req.service)?;
        let rules = self.booking_rules(service)?;
        let tz = self.spec.timezone;
        let date = req.start.with_timezone(&tz).date_naive();
        let slot = self
            .spec
            .hours
            .as_ref()
            .map(|h| slots_of(h, tz, &rules, date))
            .unwrap_or_default()
            .into_iter()
            .find(|s| s.start == req.start)
            .ok_or_else(|| {
                QueueError::BadRequest(format!(
                    "{} is not the start of a slot of '{}'; GET /api/v1/halls/{}/services/{}/slots?date={} lists them",
                    self.local_time(req.start),
                    req.service,
                    self.spec.id,
                    req.service,
                    date
                ))
            })?;
        if slot.start <= now {
            return Err(QueueError::Conflict(format!(
                "the slot at {} has already started; choose a later one",
                self.local_time(slot.start)
            )));
        }
        let last = self.local_day(now) + Duration::days(rules.days_ahead.into());
        if date > last {
            return Err(QueueError::Conflict(format!(
                "'{}' takes bookings up to {} days ahead (until {last}); book this slot later",
                req.service, rules.days_ahead
            )));
        }
        if self.taken(service, slot.start) >= rules.per_slot {
            return Err(QueueError::Conflict(format!(
                "the slot at {} is full; choose another",
                self.local_time(slot.start)
            )));
        }
        if self.appointment_by_token.contains_key(&req.token) {
            return Err(QueueError::Conflict(
                "booking token collision; retry the request".into(),
            ));
        }
        let claim = PhoneClaim {
            phone: req.phone.clone(),
            token_hash: req.phone_token.clone(),
        };
        let phone = self.claimed_phone(&claim, req.origin.is_some(), now)?;
        if phone.is_none() && req.origin.is_some() && self.verifies_phones() {
            return Err(QueueError::PhoneUnverified(format!(
                "hall {} takes bookings only from a verified phone: POST …/phone-codes, then …/phone-codes/verify, and send \"notify\": {{\"phone_token\": …}}",
                self.spec.id
            )));
        }
        let (holder, new_key) = self.holder_of(service, &rules, req.holder)?;
        self.check_booking_caps(
            service,
            date,
            phone.as_deref(),
            req.origin.as_deref(),
            &holder,
            now,
        )?;
        let code = req
            .codes
            .into_iter()
            .find(|c| c.len() == CODE_LEN && !self.appointment_by_code.contains_key(c))
            .ok_or_else(|| {
                QueueError::Conflict("no free booking code; retry the request".into())
            })?;
        let remind = self
            .spec
            .notify
            .as_ref()
            .map_or(0, |n| n.remind_before_minutes);
        let id = self.next_appointment_id;
        self.next_appointment_id += 1;
        let a = Appointment {
            id,
            code,
            token: req.token,
            service,
            start: slot.start,
            end: slot.end,
            status: BookingStatus::Booked,
            phone,
            holder,
            ticket: None,
            // Booked inside the reminder's lead: the booking message says
            // it all, there is no reminder to make.
            reminded: now >= slot.start - Duration::minutes(remind.into()),
            created_at: now,
            updated_at: now,
        };
        let notice = a.phone.is_some();
        self.index_appointment(a);
        let mut out = Outcome {
            appointment: Some(id),
            appointments: vec![id],
            ..Outcome::default()
        };
        if notice {
            out.notices.push((id, BookingNotice::Booked));
        }
        if let Some(key) = new_key {
            self.set_mark(Mark::ID_KEY.to_string(), Mark::Key(key), &mut out);
        }
        let origin = req.origin.as_deref();
        self.note_address(origin, |m| m.bookings += 1, now, &mut out);
        Ok(out)
    }

    /// A real-name booking's holder as kept (the ID number hashed with the
    /// hall's key and masked), and the key when this booking makes it.
    fn holder_of(
        &self,
        service: usize,
        rules: &AppointmentSpec,
        holder: Option<HolderRequest>,
    ) -> Result<(Option<Holder>, Option<Vec<u8>>), QueueError> {
        let id = &self.spec.services[service].id;
        match (rules.require_id, holder) {
            (false, None) => Ok((None, None)),
            (false, Some(_)) => Err(QueueError::BadRequest(format!(
                "'{id}' is not booked by real name; leave out 'holder'"
            ))),
            (true, None) => Err(QueueError::BadRequest(format!(
                "'{id}' is booked by real name (实名预约): send \"holder\": {{\"name\", \"id_number\"}}"
            ))),
            (true, Some(h)) => {
                let (key, new_key) = match self.id_key() {
                    Some(k) => (k.to_vec(), None),
                    None => (h.new_key.clone(), Some(h.new_key)),
                };
                let holder = Holder {
                    name: h.name,
                    id_hash: id_hash(&key, &h.id_number),
                    id_masked: masked_id(&h.id_number),
                };
                Ok((Some(holder), new_key))
            }
        }
    }

    /// The caps of `[halls.citizens]` on bookings (A3, A4).
    fn check_booking_caps(
        &self,
        service: usize,
        date: NaiveDate,
        phone: Option<&str>,
        origin: Option<&str>,
        holder: &Option<Holder>,
        now: DateTime<Utc>,
    ) -> Result<(), QueueError> {
        let caps = self.spec.citizens;
        let tz = self.spec.timezone;
        let sid = &self.spec.services[service].id;
        if let Some(p) = phone {
            let mine = || {
                self.appointments
                    .values()
                    .filter(move |a| a.phone.as_deref() == Some(p))
            };
            let open = mine().filter(|a| a.status == BookingStatus::Booked).count() as u32;
            if over(caps.open_bookings_per_phone, open) {
                return Err(QueueError::LimitReached(format!(
                    "open_bookings_per_phone: this phone holds {open} open booking(s), the most hall {} allows; check in or cancel one first",
                    self.spec.id
                )));
            }
            let that_day = mine()
                .filter(|a| {
                    a.service == service
                        && a.status != BookingStatus::Cancelled
                        && a.start.with_timezone(&tz).date_naive() == date
                })
                .count() as u32;
            if over(caps.bookings_per_phone_per_date, that_day) {
                return Err(QueueError::LimitReached(format!(
                    "bookings_per_phone_per_date: this phone already booked '{sid}' on {date}; one booking a day per service"
                )));
            }
        }
        self.check_address(
            origin,
            caps.bookings_per_address_per_day,
            "bookings_per_address_per_day",
            |m| m.bookings,
            now,
        )?;
        if let Some(h) = holder {
            let held = self.appointments.values().any(|a| {
                a.service == service
                    && a.status == BookingStatus::Booked
                    && a.holder.as_ref().is_some_and(|x| x.id_hash == h.id_hash)
            });
            if held {
                return Err(QueueError::LimitReached(format!(
                    "require_id: this ID number already holds an open booking of '{sid}'; one per person and service"
                )));
            }
        }
        Ok(())
    }

    /// The citizen gives the place up; only a booking not yet checked in.
    pub fn cancel_booking(
        &mut self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<Outcome, QueueError> {
        let id = *self
            .appointment_by_token
            .get(token)
            .ok_or_else(|| QueueError::NotFound("no booking has this token".into()))?;
        let a = &self.appointments[&id];
        if a.status != BookingStatus::Booked {
            return Err(QueueError::Conflict(format!(
                "booking {} is {}; only a booking not yet checked in can be cancelled",
                a.code,
                a.status.as_str()
            )));
        }
        self.set_booking(id, BookingStatus::Cancelled, now);
        Ok(Outcome {
            appointment: Some(id),
            appointments: vec![id],
            ..Outcome::default()
        })
    }

    /// Turns a booking into a ticket of its service, numbered like any
    /// other, from `early_minutes` before its slot to `late_minutes` after.
    pub fn check_in(
        &mut self,
        which: BookingRef,
        ticket_token: String,
        now: DateTime<Utc>,
    ) -> Result<Outcome, QueueError> {
        let id = match &which {
            BookingRef::Token(t) => self.appointment_by_token.get(t),
            BookingRef::Code(c) => self.appointment_by_code.get(c),
        }
        .copied()
        .ok_or_else(|| {
            QueueError::NotFound(match which {
                BookingRef::Token(_) => "no booking has this token".into(),
                BookingRef::Code(c) => format!(
                    "no booking has code {c} in hall {}; check the code on the booking",
                    self.spec.id
                ),
            })
        })?;
        let a = &self.appointments[&id];
        let rules = self.booking_rules(a.service)?;
        match a.status {
            BookingStatus::Booked => {}
            BookingStatus::CheckedIn => {
                let number = a
                    .ticket
                    .and_then(|t| self.tickets.get(&t))
                    .map_or("", |t| t.number.as_str());
                return Err(QueueError::Conflict(format!(
                    "booking {} is already checked in as number {number}",
                    a.code
                )));
            }
            BookingStatus::Cancelled | BookingStatus::Missed => {
                return Err(QueueError::Conflict(format!(
                    "booking {} is {}; book again or take a number",
                    a.code,
                    a.status.as_str()
                )));
            }
        }
        if now < a.check_in_opens(&rules) {
            return Err(QueueError::Conflict(format!(
                "check-in for booking {} opens at {}, {} minutes before its slot",
                a.code,
                self.local_time(a.check_in_opens(&rules)),
                rules.early_minutes
            )));
        }
        if now >= a.check_in_closes(&rules) {
            // `advance` marks it missed before any command runs.
            return Err(QueueError::Conflict(format!(
                "check-in for booking {} closed at {}; it is missed",
                a.code,
                self.local_time(a.check_in_closes(&rules))
            )));
        }
        let issue = IssueRequest {
            service: self.spec.services[a.service].id.clone(),
            priority: Priority::Normal,
            channel: Channel::Appointment,
            notify_phone: a.phone.clone(),
            phone_token: None,
            origin: None,
            // The booking is the right to be served in its slot, whatever
            // the walk-in rules of the hour.
            outside_hours: true,
            slot: Some(a.start),
        };
        let mut out = self.issue(issue, ticket_token, now)?;
        let ticket = out.ticket;
        self.set_booking(id, BookingStatus::CheckedIn, now);
        self.appointments
            .get_mut(&id)
            .expect("checked-in booking is live")
            .ticket = ticket;
        out.appointment = Some(id);
        out.appointments.push(id);
        Ok(out)
    }

    /// Adds a booking to the hall's indexes.
    pub(super) fn index_appointment(&mut self, a: Appointment) {
        if a.status.holds_place() {
            *self.places.entry((a.service, a.start)).or_insert(0) += 1;
        }
        self.appointment_by_token.insert(a.token.clone(), a.id);
        // Codes are unique among the bookings held; of two that met after a
        // restart (the older forgotten meanwhile), the open one answers.
        let keep = self
            .appointment_by_code
            .get(&a.code)
            .and_then(|o| self.appointments.get(o))
            .is_some_and(|o| o.status == BookingStatus::Booked);
        if !keep {
            self.appointment_by_code.insert(a.code.clone(), a.id);
        }
        self.appointments.insert(a.id, a);
    }

    fn set_booking(&mut self, id: u64, status: BookingStatus, now: DateTime<Utc>) {
        let a = self.appointments.get_mut(&id).expect("booking is live");
        if a.status.holds_place() && !status.holds_place() {
            if let Some(n) = self.places.get_mut(&(a.service, a.start)) {
                *n = n.saturating_sub(1);
            }
        }
        a.status = status;
        a.updated_at = now;
    }

    fn remind_before(&self) -> Option<Duration> {
        self.spec
            .notify
            .as_ref()
            .map(|n| n.remind_before_minutes)
            .filter(|&m| m > 0)
            .map(|m| Duration::minutes(m.into()))
    }

    /// What time does to a booking at `now`, if anything.
    fn booking_due(&self, a: &Appointment, now: DateTime<Utc>) -> Option<BookingNotice> {
        if a.status != BookingStatus::Booked {
            return None;
        }
        let rules = self.spec.services[a.service].appointments?;
        if now >= a.check_in_closes(&rules) {
            return Some(BookingNotice::Missed);
        }
        let lead = self.remind_before()?;
        (!a.reminded && now >= a.start - lead).then_some(BookingNotice::Reminder)
    }

    /// A slot with a waiting check-in started since the last look, or a
    /// booking is due.
    pub(super) fn bookings_due(&self, now: DateTime<Utc>) -> bool {
        let after = self.slots_through;
        self.booked_lines
            .iter()
            .any(|l| started_between(l, after, now))
            || self
                .appointments
                .values()
                .any(|a| self.booking_due(a, now).is_some())
    }

    /// Brings bookings and the call order up to `now` (see [`Hall::advance`]).
    pub(super) fn advance_bookings(&mut self, out: &mut Outcome, now: DateTime<Utc>) {
        let after = self.slots_through;
        for (s, line) in self.booked_lines.iter().enumerate() {
            if started_between(line, after, now) && !out.lines.contains(&s) {
                out.lines.push(s);
            }
        }
        self.slots_through = now;
        let mut due: Vec<(u64, BookingNotice)> = self
            .appointments
            .values()
            .filter_map(|a| self.booking_due(a, now).map(|n| (a.id, n)))
            .collect();
        due.sort_unstable_by_key(|(id, _)| *id);
        for (id, notice) in due {
            match notice {
                BookingNotice::Missed => self.set_booking(id, BookingStatus::Missed, now),
                _ => {
                    let a = self.appointments.get_mut(&id).expect("due booking is live");
                    a.reminded = true;
                    a.updated_at = now;
                }
            }
            out.appointments.push(id);
            if self.appointments[&id].phone.is_some() {
                out.notices.push((id, notice));
            }
        }
    }
}
