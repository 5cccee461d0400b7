//! Messages to citizens' phones (contract §9): which a command makes, and
//! their delivery (`worker`).
//!
//! What a command makes is decided under the hall's lock from the hall
//! before and after it, and written to the outbox in the same commit as
//! the change: a crash after the answer loses none, a refused command makes
//! none. Delivery happens after, off the command's path.

pub mod sender;
pub mod worker;

use chrono::{DateTime, Utc};

use crate::queue::{BookingNotice, EventKind, Hall, HallSpec, Outcome, SentCode, Status};
use crate::store::{OutboxRecord, OutboxStatus};
use crate::wire::{self, Notice};

/// A new message's id: when it was made (milliseconds, 12 hex digits, so
/// ids sort in the order they were made) and 96 random bits. In that
/// order a new message goes to the end of the outbox's id index, and so
/// do the deliveries that record it soon after; a wholly random id
/// dirtied a page anywhere in that index for every message and every
/// delivery, and the writer wrote each such page to the journal.
pub fn message_id(now: DateTime<Utc>) -> String {
    use base64::Engine as _;
    use rand::RngCore;
    let mut b = [0u8; 12];
    rand::rng().fill_bytes(&mut b);
    format!(
        "{:012x}{}",
        now.timestamp_millis().max(0),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
    )
}

/// The messages a command makes, from the hall after it ran; `reminders`
/// are the tickets [`Hall::take_reminders`] named for it.
pub fn messages(
    hall: &Hall,
    out: &Outcome,
    reminders: &[u64],
    now: DateTime<Utc>,
) -> Vec<OutboxRecord> {
    let spec = hall.spec();
    let Some(n) = &spec.notify else {
        return Vec::new();
    };
    let remind = n.remind_ahead as usize;
    let mut msgs = Vec::new();
    let record =
        |kind: &str, phone: &str, id: String, body| pending(&spec.id, kind, phone, id, body, now);
    for (a, notice) in &out.notices {
        let Some(a) = hall.appointment(*a) else {
            continue;
        };
        let Some(phone) = &a.phone else { continue };
        let kind = match notice {
            BookingNotice::Booked => "booked",
            BookingNotice::Reminder => "appointment_reminder",
            BookingNotice::Missed => "missed",
        };
        let id = message_id(now);
        let body = wire::booking_body(spec, a, &id, kind, phone, *notice, now);
        msgs.push(OutboxRecord {
            appointment: Some(a.id),
            ..record(kind, phone, id, body)
        });
    }
    let mut make = |kind: &'static str, t: &crate::queue::Ticket, notice: Notice| {
        let Some(phone) = &t.notify_phone else {
            return;
        };
        let id = message_id(now);
        let body = wire::ticket_draft(spec, t, &notice);
        msgs.push(OutboxRecord {
            ticket: Some(t.id),
            ..record(kind, phone, id, body)
        });
    };
    for id in &out.tickets {
        let Some(t) = hall.ticket(*id) else { continue };
        if t.notify_phone.is_none() {
            continue;
        }
        // Events name tickets by number; a number is unique within a day,
        // and the status tells today's ticket from an earlier day's that
        // ended in the same command.
        for e in &out.events {
            match &e.kind {
                EventKind::Called { number, recall, .. }
                    if *number == t.number && t.status == Status::Called =>
                {
                    make("called", t, Notice::Called { recall: *recall });
                }
                EventKind::Ticket {
                    number,
                    transferred_to: Some(_),
                    ..
                } if *number == t.number && t.status == Status::Waiting => {
                    make("transferred", t, Notice::Transferred)
                }
                _ => {}
            }
        }
        // Issued by this command (a transfer keeps its first instant).
        let issued = t.status == Status::Waiting && t.created_at == now;
        if issued {
            let ahead = hall.ahead(t);
            make(
                "issued",
                t,
                Notice::Issued {
                    ahead,
                    reminded_at: (remind > 0 && ahead > remind).then_some(remind),
                },
            );
        }
        if t.status == Status::Expired {
            make("expired", t, Notice::Expired);
        }
    }
    for id in reminders {
        if let Some(t) = hall.ticket(*id) {
            make(
                "reminder",
                t,
                Notice::Reminder {
                    ahead: hall.ahead(t),
                },
            );
        }
    }
    msgs
}

/// A new message, pending from `now`, about no ticket or booking yet.
fn pending(
    hall: &str,
    kind: &str,
    phone: &str,
    id: String,
    body: bytes::Bytes,
    now: DateTime<Utc>,
) -> OutboxRecord {
    OutboxRecord {
        id,
        hall: hall.to_string(),
        kind: kind.to_string(),
        phone: phone.to_string(),
        ticket: None,
        appointment: None,
        body,
        status: OutboxStatus::Pending,
        attempts: 0,
        last_error: None,
        created_at: now,
        next_attempt_at: now,
    }
}

/// Counts each message to a phone against its hall-local day (A2:
/// `messages_per_phone_per_day`); those over the cap are kept as
/// `dropped`, with the reason, and never sent.
pub fn cap_per_phone(
    hall: &mut Hall,
    msgs: &mut [OutboxRecord],
    out: &mut Outcome,
    now: DateTime<Utc>,
) {
    let cap = hall.spec().citizens.messages_per_phone_per_day;
    for m in msgs.iter_mut() {
        if !hall.count_message(&m.phone, now, out) {
            m.status = OutboxStatus::Dropped;
            m.last_error = Some(format!(
                "messages_per_phone_per_day: this phone has had {cap} messages today, the most the hall sends"
            ));
        }
    }
}

/// The `verify` message that carries a phone's code (A2). Not counted
/// against the phone's day: the code caps are its own.
pub fn verify_message(spec: &HallSpec, code: &SentCode, now: DateTime<Utc>) -> OutboxRecord {
    let id = message_id(now);
    let body = wire::verify_body(spec, &id, code, now);
    pending(&spec.id, "verify", &code.phone, id, body, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_sort_in_the_order_they_were_made_and_do_not_repeat() {
        let t = |ms: i64| DateTime::from_timestamp_millis(ms).unwrap();
        let a = message_id(t(1_796_173_200_000));
        let b = message_id(t(1_796_173_200_001));
        let c = message_id(t(1_796_173_260_000));
        assert!(a < b && b < c, "{a} {b} {c}");
        assert_eq!(a.len(), 28);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        let same: std::collections::HashSet<String> = (0..1000)
            .map(|_| message_id(t(1_796_173_200_000)))
            .collect();
        assert_eq!(same.len(), 1000, "96 random bits within one millisecond");
    }
}
