//! `/metrics` (contract §11): the server's own numbers in the Prometheus
//! text format, through the `metrics` facade and its Prometheus exporter.
//!
//! Counters are bumped where things happen (a connection opens, a pass of
//! the fan-out delivers, a command commits); the gauges of the halls'
//! lines and of the outbox are read at scrape time from memory and the
//! store. Every family is described and given its zero samples at start,
//! so a scrape shows all of them before anything happened. Labels are
//! hall, service and window ids from the config, channel kinds, command
//! names and outbox statuses: never a phone, token or number.

use std::sync::OnceLock;
use std::time::Instant;

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::queue::HallSpec;

const CONNECTIONS: &str = "hallcast_connections";
const DELIVERIES: &str = "hallcast_deliveries_total";
const SLOW_CLOSES: &str = "hallcast_slow_consumer_closes_total";
const COMMANDS: &str = "hallcast_commands_total";
const COMMIT: &str = "hallcast_commit_seconds";
const WAITING: &str = "hallcast_waiting";
const OUTBOX: &str = "hallcast_outbox";
const BUILD: &str = "hallcast_build_info";
const BUS_REJECTED: &str = "hallcast_bus_rejected_total";

/// The channels a connection can be on.
pub const CHANNELS: [&str; 3] = ["floor", "hall", "ticket"];

/// The outbox's statuses, as the store spells them.
pub const OUTBOX_STATUSES: [&str; 4] = ["pending", "delivered", "dead", "dropped"];

/// Commands counted per hall: every POST that changes a hall.
pub const COMMANDS_KNOWN: [&str; 21] = [
    "issue",
    "phone_code",
    "phone_verify",
    "call",
    "recall",
    "start",
    "complete",
    "no_show",
    "transfer",
    "pause",
    "resume",
    "cancel",
    "close_day",
    "book",
    "cancel_booking",
    "check_in",
    "rate",
    "rate_pad",
    "case_step",
    "outbox_retry",
    "other",
];

/// Commit times from a fraction of a millisecond (tmpfs) to a stalled disk.
const COMMIT_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.25, 0.5, 1.0, 2.5, 5.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the recorder (once per process) and describes every family.
pub fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(COMMIT.into()), &COMMIT_BUCKETS)
            .expect("the buckets are not empty")
            .build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics shows only its own");
        }
        describe_gauge!(
            CONNECTIONS,
            "Open WebSocket and SSE connections, by channel."
        );
        describe_counter!(
            DELIVERIES,
            "Publishes handed to a subscriber's socket or queue."
        );
        describe_counter!(
            SLOW_CLOSES,
            "Subscribers closed because they fell too far behind."
        );
        describe_counter!(COMMANDS, "Commands that took effect, by hall and command.");
        describe_histogram!(
            COMMIT,
            metrics::Unit::Seconds,
            "Store commit time of a group of batches."
        );
        describe_gauge!(WAITING, "Tickets waiting, by hall and service.");
        describe_gauge!(
            OUTBOX,
            "Messages to citizens' phones in the store, by hall and status."
        );
        describe_gauge!(BUILD, "The running build.");
        describe_counter!(
            BUS_REJECTED,
            "Messages on the cluster's bus dropped: not sealed with this cluster's secret, or not readable (A8)."
        );
        for ch in CHANNELS {
            gauge!(CONNECTIONS, "channel" => ch).set(0.0);
        }
        counter!(DELIVERIES).absolute(0);
        counter!(SLOW_CLOSES).absolute(0);
        counter!(BUS_REJECTED).absolute(0);
        // Registered (with no sample) so the family shows from the start.
        let _ = histogram!(COMMIT);
        gauge!(BUILD, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
        handle
    })
}

/// Gives every hall's labelled families their zero samples.
pub fn register_halls(halls: &[std::sync::Arc<HallSpec>]) {
    for h in halls {
        for c in COMMANDS_KNOWN {
            counter!(COMMANDS, "hall" => h.id.clone(), "command" => c).absolute(0);
        }
        for s in &h.services {
            gauge!(WAITING, "hall" => h.id.clone(), "service" => s.id.clone()).set(0.0);
        }
        for st in OUTBOX_STATUSES {
            gauge!(OUTBOX, "hall" => h.id.clone(), "status" => st).set(0.0);
        }
    }
}

/// Counts an open connection until dropped.
pub struct Connection(&'static str);

impl Connection {
    /// A connection on `channel` ("floor", "hall" or "ticket").
    pub fn open(channel: &'static str) -> Connection {
        gauge!(CONNECTIONS, "channel" => channel).increment(1.0);
        Connection(channel)
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        gauge!(CONNECTIONS, "channel" => self.0).decrement(1.0);
    }
}

/// A pass of a fan-out thread handed `n` publishes to subscribers.
pub fn delivered(n: u64) {
    if n > 0 {
        counter!(DELIVERIES).increment(n);
    }
}

/// A subscriber was closed as slow.
pub fn slow_close() {
    counter!(SLOW_CLOSES).increment(1);
}

/// A message on the cluster's bus was refused (A8).
pub fn bus_rejected() {
    counter!(BUS_REJECTED).increment(1);
}

/// A command took effect.
pub fn command(hall: &str, command: &'static str) {
    counter!(COMMANDS, "hall" => hall.to_string(), "command" => command).increment(1);
}

/// A commit of a group took from `started` until now.
pub fn commit(started: Instant) {
    histogram!(COMMIT).record(started.elapsed().as_secs_f64());
}

/// Sets a line's waiting count.
pub fn waiting(hall: &str, service: &str, count: usize) {
    gauge!(WAITING, "hall" => hall.to_string(), "service" => service.to_string()).set(count as f64);
}

/// Sets the outbox's count of one status.
pub fn outbox(hall: &str, status: &str, count: u64) {
    gauge!(OUTBOX, "hall" => hall.to_string(), "status" => status.to_string()).set(count as f64);
}

/// The text of a scrape.
pub fn render() -> String {
    install().render()
}

/// Drains what histograms buffered: without a scrape they would grow.
pub fn upkeep() {
    install().run_upkeep();
}

/// The command a POST route stands for, for [`command`].
pub fn command_of(route: &str) -> &'static str {
    match route {
        "/api/v1/halls/{hall}/tickets" => "issue",
        "/api/v1/halls/{hall}/close-day" => "close_day",
        "/api/v1/halls/{hall}/appointments" => "book",
        "/api/v1/halls/{hall}/phone-codes" => "phone_code",
        "/api/v1/halls/{hall}/phone-codes/verify" => "phone_verify",
        "/api/v1/halls/{hall}/check-in" | "/api/v1/appointments/{token}/check-in" => "check_in",
        "/api/v1/halls/{hall}/outbox/{id}/retry" => "outbox_retry",
        "/api/v1/halls/{hall}/cases/{id}" => "case_step",
        "/api/v1/halls/{hall}/windows/{window}/rating" => "rate_pad",
        "/api/v1/tickets/{token}/cancel" => "cancel",
        "/api/v1/tickets/{token}/rating" => "rate",
        "/api/v1/appointments/{token}/cancel" => "cancel_booking",
        r => match r.rsplit('/').next() {
            Some("call") => "call",
            Some("recall") => "recall",
            Some("start") => "start",
            Some("complete") => "complete",
            Some("no-show") => "no_show",
            Some("transfer") => "transfer",
            Some("pause") => "pause",
            Some("resume") => "resume",
            _ => "other",
        },
    }
}
