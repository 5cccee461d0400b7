//! Delivers the outbox (contract §9): `POST` each pending message to its
//! hall's webhook, signed, and records what happened. Runs beside the
//! commands and never delays one: it reads due messages through the
//! engine's read connection and records attempts through the writer,
//! all on [`Sender`]'s thread, below the commands' priority.
//!
//! At least once: a message is marked delivered only after a 2xx, so a
//! crash between the answer and the record sends it again (the receiver
//! deduplicates by `id`, also our `Idempotency-Key`).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::Sha256;
use tokio_util::sync::CancellationToken;

use super::sender::{Failure, Post, Sender};
use crate::engine::Engine;
use crate::queue::{BookingStatus, Status};
use crate::store::{OutboxRecord, OutboxStatus, OutboxUpdate};

/// Due messages are looked for at least this often (retries come due by
/// time, new messages wake the worker at once).
const POLL: Duration = Duration::from_secs(1);

/// A delivery answered after this is a failure (contract §9: 10 s).
const TIMEOUT: Duration = Duration::from_secs(10);

/// Deliveries in flight at once at most.
const IN_FLIGHT: usize = 32;

/// Due messages read from the store at a time.
const READ_AT_ONCE: usize = 256;

/// The longest wait between two tries (contract §9: 10 min).
const MAX_BACKOFF_SECS: f64 = 600.0;

/// The webhook's signature of `body` sent at `timestamp` (unix seconds):
/// hex HMAC-SHA256 of `"{timestamp}.{body}"` under the hall's secret.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    crate::queue::citizen::hex(&mac.finalize().into_bytes())
}

/// Seconds before try `attempts + 1`: about 1, 2, 4 … capped, with ±20 %
/// jitter so a receiver that was down is not hit by everything at once.
fn backoff(attempts: u32) -> Duration {
    let base = 2f64
        .powi(attempts.saturating_sub(1).min(20) as i32)
        .min(MAX_BACKOFF_SECS);
    let jitter = rand::rng().random_range(0.8..1.2);
    Duration::from_secs_f64(base * jitter)
}

/// Runs until `stop` is cancelled (the loop itself on the outbox thread).
pub async fn run(engine: Arc<Engine>, stop: CancellationToken) {
    let client = match Sender::start(TIMEOUT) {
        Ok(c) => Arc::new(c),
        Err(e) => {
            tracing::error!(error = %e, "cannot start the webhook client; no messages are delivered");
            return;
        }
    };
    let deliveries = client
        .handle
        .spawn(deliver_until_stopped(engine, client.clone(), stop));
    if let Err(e) = deliveries.await {
        tracing::error!(error = %e, "the outbox delivery loop ended abnormally");
    }
    // The last handle on the outbox thread is dropped here, off it: the
    // thread is stopped and joined.
    drop(client);
}

async fn deliver_until_stopped(engine: Arc<Engine>, client: Arc<Sender>, stop: CancellationToken) {
    // Each message taken from the store: `None` until its delivery is
    // recorded, then the read generation during which it was. A read that
    // began before a delivery was recorded may still return its message
    // as pending; only reads that began after it may forget it.
    let taken: Arc<Mutex<HashMap<String, Option<u64>>>> = Arc::default();
    // Tried, but the store refused the record (A7: a full disk): not
    // tried again before this, though the store still says pending —
    // else it would be sent again in a tight loop.
    let held: Arc<Mutex<HashMap<String, chrono::DateTime<Utc>>>> = Arc::default();
    let unrecorded = Arc::new(Unrecorded::default());
    let reads = Arc::new(AtomicU64::new(0));
    let running = Arc::new(AtomicUsize::new(0));
    // Read but not yet handed to a delivery: the store is read again only
    // once these are out, not for every delivery that finishes.
    let mut queue: VecDeque<OutboxRecord> = VecDeque::new();
    let tasks = tokio_util::task::TaskTracker::new();
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            () = engine.outbox_written() => {}
            () = tokio::time::sleep(POLL) => {}
        }
        if queue.is_empty() {
            let read = reads.fetch_add(1, Ordering::SeqCst) + 1;
            match engine.outbox_due(Utc::now(), READ_AT_ONCE).await {
                Ok(due) => {
                    let mut map = lock(&taken);
                    // Recorded before this read began: it saw them as they are.
                    map.retain(|_, s| s.is_none_or(|done| done >= read));
                    let now = Utc::now();
                    let mut held = lock(&held);
                    held.retain(|_, until| *until > now);
                    for m in due {
                        if !map.contains_key(&m.id) && !held.contains_key(&m.id) {
                            map.insert(m.id.clone(), None);
                            queue.push_back(m);
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "reading the outbox failed; retrying"),
            }
        }
        while running.load(Ordering::SeqCst) < IN_FLIGHT {
            let Some(m) = queue.pop_front() else { break };
            running.fetch_add(1, Ordering::SeqCst);
            let (engine, client, taken, reads, running, held, unrecorded) = (
                engine.clone(),
                client.clone(),
                taken.clone(),
                reads.clone(),
                running.clone(),
                held.clone(),
                unrecorded.clone(),
            );
            tasks.spawn(async move {
                let id = m.id.clone();
                let update = deliver(&engine, &client, m).await;
                // Its backoff, also for an outcome the store did not take
                // (a delivered one included: it is sent again, once).
                let until = update
                    .next_attempt_at
                    .max(Utc::now() + backoff_of(update.attempts));
                if let Err(e) = engine.outbox_update(vec![update]).await {
                    lock(&held).insert(id.clone(), until);
                    unrecorded.failed(&e);
                }
                let now = reads.load(Ordering::SeqCst);
                lock(&taken).insert(id, Some(now));
                running.fetch_sub(1, Ordering::SeqCst);
                // A place is free: hand out the next message now, not at
                // the next poll.
                engine.wake_outbox();
            });
        }
    }
    // What is in flight finishes (or times out) and is recorded.
    tasks.close();
    tasks.wait().await;
}

/// Records the store refused, logged at most once a minute with their
/// count (a full disk must not fill the log too).
#[derive(Default)]
struct Unrecorded {
    since_logged: Mutex<(Option<std::time::Instant>, u64)>,
}

impl Unrecorded {
    fn failed(&self, e: &crate::store::StoreError) {
        let mut s = lock(&self.since_logged);
        s.1 += 1;
        if s.0.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
            tracing::warn!(error = %e, failed = s.1, "recording outbox deliveries failed; each is tried again after its backoff");
            *s = (Some(std::time::Instant::now()), 0);
        }
    }
}

/// [`backoff`] as a time span.
fn backoff_of(attempts: u32) -> chrono::Duration {
    chrono::Duration::from_std(backoff(attempts.max(1))).unwrap_or_default()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One try of one message, and what it changed.
async fn deliver(engine: &Arc<Engine>, client: &Sender, m: OutboxRecord) -> OutboxUpdate {
    let now = Utc::now();
    let mut update = OutboxUpdate {
        hall: m.hall.clone(),
        id: m.id.clone(),
        status: OutboxStatus::Pending,
        attempts: m.attempts,
        last_error: m.last_error.clone(),
        next_attempt_at: now,
    };
    let Some(h) = engine.hall(&m.hall) else {
        update.status = OutboxStatus::Dead;
        update.last_error = Some(format!("hall {} is no longer in the config", m.hall));
        return update;
    };
    let Some(notify) = h.spec.notify.clone() else {
        update.status = OutboxStatus::Dead;
        update.last_error = Some("the hall's [halls.notify] was removed from the config".into());
        return update;
    };
    // A reminder that comes after the call is noise: drop it. So is one
    // before a slot the citizen no longer holds. The look at the hall
    // runs on the commands' side (it takes the hall's lock).
    if m.kind == "reminder" || m.kind == "appointment_reminder" {
        let (kind, ticket, appointment) = (m.kind.clone(), m.ticket, m.appointment);
        let (engine, hall) = (engine.clone(), m.hall.clone());
        let still = client
            .on_commands_side(move || {
                let Some(h) = engine.hall(&hall) else {
                    return true;
                };
                if kind == "reminder" {
                    ticket.is_some_and(|id| {
                        h.read(|hall| hall.ticket(id).is_some_and(|t| t.status == Status::Waiting))
                    })
                } else {
                    appointment.is_some_and(|id| {
                        h.read(|hall| {
                            hall.appointment(id)
                                .is_some_and(|a| a.status == BookingStatus::Booked)
                        })
                    })
                }
            })
            .await
            .unwrap_or(true);
        if !still {
            update.status = OutboxStatus::Dropped;
            update.last_error = Some(if m.kind == "reminder" {
                "its ticket was called (or left the line) first".into()
            } else {
                "its booking was checked in, cancelled or missed first".into()
            });
            return update;
        }
    }
    let body = match crate::wire::rendered(&h.spec, &m) {
        Ok(body) => body,
        Err(e) => {
            tracing::warn!(hall = %m.hall, id = %m.id, kind = %m.kind, error = %e, "outbox message cannot be rendered; dead");
            update.status = OutboxStatus::Dead;
            update.last_error = Some(format!("cannot render the message: {e}"));
            return update;
        }
    };
    let timestamp = now.timestamp();
    let sent = client
        .post(Post {
            url: notify.webhook_url.clone(),
            id: m.id.clone(),
            timestamp,
            signature: signature(&notify.secret, timestamp, &body),
            body,
        })
        .await;
    update.attempts = m.attempts + 1;
    let error = match sent {
        Ok(status) if status.is_success() => None,
        Ok(status) => Some(format!("the webhook answered {status}")),
        // The error names the cause, never the body (phone).
        Err(Failure::Timeout) => Some("the webhook did not answer within 10 s".to_string()),
        Err(Failure::Connect) => Some("cannot connect to the webhook".to_string()),
        Err(Failure::Other) => Some("the webhook connection failed".to_string()),
    };
    match error {
        None => {
            update.status = OutboxStatus::Delivered;
            update.last_error = None;
        }
        Some(e) if update.attempts >= notify.max_attempts => {
            tracing::warn!(hall = %m.hall, id = %m.id, kind = %m.kind, attempts = update.attempts, error = %e, "outbox message dead");
            update.status = OutboxStatus::Dead;
            update.last_error = Some(e);
        }
        Some(e) => {
            update.last_error = Some(e);
            update.next_attempt_at =
                now + chrono::Duration::from_std(backoff(update.attempts)).unwrap_or_default();
        }
    }
    update
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
        // RFC 4231 test case 2 is over "what do ya want for nothing?" with
        // key "Jefe"; here the message is "1700000000.{}".
        let s = signature("Jefe", 1_700_000_000, b"{}");
        assert_eq!(s.len(), 64);
        assert_eq!(s, signature("Jefe", 1_700_000_000, b"{}"), "deterministic");
        assert_ne!(
            s,
            signature("Jefe", 1_700_000_001, b"{}"),
            "the timestamp is signed"
        );
        assert_ne!(
            s,
            signature("Jefe", 1_700_000_000, b"{ }"),
            "the body is signed"
        );
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn backoff_doubles_from_a_second_up_to_ten_minutes() {
        for (attempts, base) in [
            (1, 1.0),
            (2, 2.0),
            (3, 4.0),
            (10, 512.0),
            (11, 600.0),
            (40, 600.0),
        ] {
            let d = backoff(attempts).as_secs_f64();
            assert!(d >= base * 0.8 && d <= base * 1.2, "after {attempts}: {d}");
        }
    }
}
