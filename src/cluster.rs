//! One node of a cluster (contract §14): the bus between nodes.
//!
//! PostgreSQL orders every hall's commits (`store::pg_backend`); this
//! module carries what each node committed to the others and feeds this
//! node's hub, in hall-seq order, without a gap:
//!
//! - a node's own commits are handed over by the writer as on a single
//!   node, and announced on NATS (`hallcast.{cluster}.events.{hall}`)
//!   from a task of their own, so the writer never waits for the network;
//! - the bus is a hint, never the truth (A8): an announcement sealed with
//!   the cluster's secret (`seal.rs`) only makes the node read that
//!   hall's new events from PostgreSQL (on a connection of its own, so
//!   it does not queue behind the poll) and deliver those. Nothing read
//!   from NATS is delivered, and no version is taken from it: a rogue
//!   publisher, or a node whose secret leaked, can at most make the
//!   others read PostgreSQL sooner;
//! - every hall has an [`Order`]: the hall seq delivered so far and what
//!   arrived ahead of a gap. Events are delivered to the hub only in
//!   order; one ahead of a gap waits while the gap is read from
//!   PostgreSQL (it was committed before, or its seq would not be lower);
//! - once a second, and whenever a gap opens or NATS reconnects, the
//!   heads of every hall are read from PostgreSQL (one query): a node
//!   whose bus is down still delivers every call, in order, within about
//!   a second, and learns which halls another node changed;
//! - a hall another node committed to is reloaded by the engine the next
//!   time it is locked (`HallEngine::saw_version`); a phone followed on
//!   this node gets its ticket's messages rendered here, from the
//!   reloaded hall, since the node that ran the command does not know it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, Notify};

use crate::bus::{Bus, Committed, TicketMessage};
use crate::engine::{Engine, HallEngine};
use crate::hub::Hub;
use crate::seal::Seal;
use crate::store::{Backend, Postgres, StoredEvent};
use crate::wire;

/// How often the heads of every hall are read from PostgreSQL: the
/// contract's "at least once a second" while the bus is down, and the
/// safety net while it is up.
const POLL_EVERY: Duration = Duration::from_secs(1);

/// Events read from PostgreSQL per hall per pass at most; a longer gap
/// takes further passes (at once, not a second later).
const FILL_PAGE: usize = 1000;

/// Batches waiting to be published on NATS. A publish is a few
/// microseconds while NATS is up; this is seconds of calls. When NATS is
/// down and the client's own buffer is full, further batches are dropped
/// here: the other nodes read them from PostgreSQL within a second.
const OUTGOING: usize = 4096;

/// A hall's delivery order on this node.
#[derive(Default)]
struct Order {
    /// The hall seq delivered to the hub so far.
    last: u64,
    /// Events that arrived ahead of a gap, by hall seq.
    pending: BTreeMap<u64, StoredEvent>,
}

/// What a node announces of its commit (not the contract: only hallcast
/// nodes read it): which hall moved. The events themselves are read from
/// PostgreSQL by whoever is told.
#[derive(Serialize, Deserialize)]
struct Wire {
    node: String,
    hall: String,
    version: u64,
}

/// A refused message on the bus is logged at most this often.
const REJECT_LOG_EVERY: Duration = Duration::from_secs(60);

/// The bus of one node of a cluster.
pub struct ClusterBus {
    hub: Arc<Hub>,
    /// This node, so that it skips its own batches coming back from NATS.
    node: String,
    /// The cluster's NATS subject prefix: `hallcast.{cluster}.events`.
    subjects: String,
    engine: OnceLock<Weak<Engine>>,
    orders: HashMap<String, Mutex<Order>>,
    outgoing: Option<mpsc::Sender<(String, Bytes)>>,
    /// Wakes the poller (a gap opened, NATS reconnected).
    wake: Arc<Notify>,
    /// The last ticket message rendered here per followed token: a
    /// message is sent again only when it changed.
    sent: Mutex<HashMap<String, Bytes>>,
    /// Other nodes' events that this node's own commit let through (they
    /// waited behind it in the order): their phones are told off the
    /// writer's thread, which must not wait on a reload.
    released: mpsc::UnboundedSender<Released>,
    released_rx: Mutex<Option<mpsc::UnboundedReceiver<Released>>>,
    /// Signs what this node says and checks what it hears (A8).
    seal: Seal,
    /// When a refused message was last logged.
    rejected_logged: Mutex<Option<std::time::Instant>>,
}

/// A hall's events another node committed, let through by this node's
/// own commit.
type Released = (String, Vec<StoredEvent>);

impl ClusterBus {
    /// A bus for the cluster `name`, publishing on NATS when `nats` is
    /// given (else the nodes learn of each other's commits from the poll
    /// alone). Call [`ClusterBus::start`] once the engine exists.
    pub fn new(
        hub: Arc<Hub>,
        name: &str,
        halls: &[Arc<crate::queue::HallSpec>],
        nats: Option<&async_nats::Client>,
        wake: Arc<Notify>,
        seal: Seal,
    ) -> Arc<ClusterBus> {
        let outgoing = nats.map(|client| {
            let (tx, mut rx) = mpsc::channel::<(String, Bytes)>(OUTGOING);
            let client = client.clone();
            tokio::spawn(async move {
                while let Some((subject, payload)) = rx.recv().await {
                    if let Err(e) = client.publish(subject, payload).await {
                        tracing::debug!(error = %e, "publishing on NATS failed; the others poll");
                    }
                }
            });
            tx
        });
        let (released, released_rx) = mpsc::unbounded_channel();
        Arc::new(ClusterBus {
            released,
            released_rx: Mutex::new(Some(released_rx)),
            hub,
            node: crate::engine::new_token(),
            subjects: format!("hallcast.{name}.events"),
            engine: OnceLock::new(),
            orders: halls
                .iter()
                .map(|h| (h.id.clone(), Mutex::new(Order::default())))
                .collect(),
            outgoing,
            wake,
            sent: Mutex::new(HashMap::new()),
            seal,
            rejected_logged: Mutex::new(None),
        })
    }

    /// Starts delivering: every hall from the seq the engine loaded, the
    /// NATS subscription (if any) and the poller over `store`.
    pub fn start(
        self: &Arc<Self>,
        engine: &Arc<Engine>,
        nats: Option<async_nats::Client>,
        store: Postgres,
        hints: Postgres,
    ) {
        let _ = self.engine.set(Arc::downgrade(engine));
        for h in engine.halls() {
            if let Some(o) = self.orders.get(&h.spec.id) {
                lock(o).last = h.read(|hall| hall.hall_seq());
            }
        }
        if let Some(client) = nats {
            let bus = self.clone();
            tokio::spawn(async move { bus.listen(client, hints).await });
        }
        if let Some(mut rx) = lock(&self.released_rx).take() {
            let bus = self.clone();
            tokio::spawn(async move {
                while let Some((hall, events)) = rx.recv().await {
                    let bus = bus.clone();
                    let _ = tokio::task::spawn_blocking(move || bus.tell(&hall, &events)).await;
                }
            });
        }
        let bus = self.clone();
        tokio::spawn(async move { bus.poll(store).await });
    }

    fn engine(&self) -> Option<Arc<Engine>> {
        self.engine.get().and_then(Weak::upgrade)
    }

    /// Delivers a hall's events in seq order, each once; what is ahead
    /// of a gap waits for it. Returns what was delivered.
    fn deliver(
        &self,
        hall: &str,
        events: &[StoredEvent],
        tickets: &[TicketMessage],
    ) -> Vec<StoredEvent> {
        let Some(o) = self.orders.get(hall) else {
            return Vec::new();
        };
        let mut o = lock(o);
        for e in events {
            if e.hall_seq > o.last {
                o.pending.insert(e.hall_seq, e.clone());
            }
        }
        let mut out = Vec::new();
        loop {
            let next = o.last + 1;
            let Some(e) = o.pending.remove(&next) else {
                break;
            };
            o.last = next;
            out.push(e);
        }
        // Under the order's lock: the hub gets each hall's batches in
        // order whichever thread delivers them.
        if !out.is_empty() || !tickets.is_empty() {
            self.hub.publish(hall, &out, tickets);
        }
        if !o.pending.is_empty() {
            self.wake.notify_one();
        }
        out
    }

    /// Events another node committed (from NATS or PostgreSQL): the hall
    /// is marked behind, the events delivered, their calls made
    /// servable here, and this node's phones of the hall told.
    fn arrived(&self, hall: &str, version: u64, events: &[StoredEvent]) {
        let Some(engine) = self.engine() else {
            return;
        };
        let Some(h) = engine.hall(hall) else {
            return;
        };
        h.saw_version(version);
        let delivered = self.deliver(hall, events, &[]);
        self.tell(hall, &delivered);
    }

    /// Other nodes' events just delivered: their calls made servable here,
    /// and this node's phones of the hall told.
    fn tell(&self, hall: &str, delivered: &[StoredEvent]) {
        if delivered.is_empty() {
            return;
        }
        let Some(engine) = self.engine() else {
            return;
        };
        let Some(h) = engine.hall(hall) else {
            return;
        };
        h.note_calls(delivered);
        self.tell_phones(h, delivered);
    }

    /// Ticket messages for the phones that follow a hall's tickets on
    /// this node, rendered from the hall as the database has it now.
    fn tell_phones(&self, h: &HallEngine, delivered: &[StoredEvent]) {
        let followed = self.hub.followed_tickets(&h.spec.id);
        if followed.is_empty() {
            return;
        }
        let msgs = {
            // Memory must hold the calls it tells of ("called" is sent
            // only now, when they arrive).
            let cell = h.lock_holding(delivered);
            let hall = &cell.hall;
            let seq = hall.hall_seq();
            let mut sent = lock(&self.sent);
            sent.retain(|token, _| followed.contains(token));
            let mut msgs = Vec::new();
            for token in followed {
                let Some(t) = hall.ticket_by_token(&token) else {
                    continue;
                };
                let msg = wire::ticket_message(hall, t);
                if sent.get(&token) != Some(&msg) {
                    sent.insert(token.clone(), msg.clone());
                    msgs.push(TicketMessage {
                        token: token.clone(),
                        seq,
                        msg,
                    });
                }
                let called_now = t.last_call.is_some_and(|c| {
                    delivered
                        .iter()
                        .any(|e| e.floor == c.floor && e.floor_seq == c.seq)
                });
                if called_now {
                    if let Some(msg) = wire::ticket_called_message(hall, t) {
                        msgs.push(TicketMessage { token, seq, msg });
                    }
                }
            }
            tracing::debug!(
                hall = %h.spec.id,
                seq,
                events = ?delivered.iter().map(|e| e.hall_seq).collect::<Vec<_>>(),
                messages = msgs.len(),
                "told the phones"
            );
            msgs
        };
        if !msgs.is_empty() {
            self.deliver(&h.spec.id, &[], &msgs);
        }
    }

    /// Hears other nodes' announcements on NATS until the process ends
    /// (the client reconnects by itself). Each sealed one wakes the poll;
    /// anything else is counted and dropped.
    async fn listen(self: Arc<Self>, client: async_nats::Client, store: Postgres) {
        let store = Arc::new(Mutex::new(store));
        let subject = format!("{}.*", self.subjects);
        let mut sub = match client.subscribe(subject.clone()).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, %subject, "cannot subscribe on NATS; this node learns of other nodes' calls from PostgreSQL only");
                return;
            }
        };
        while let Some(msg) = sub.next().await {
            let heard = self
                .seal
                .open(msg.subject.as_str(), &msg.payload)
                .and_then(|p| serde_json::from_slice::<Wire>(p).ok())
                .filter(|w| msg.subject.as_str() == format!("{}.{}", self.subjects, w.hall));
            let Some(w) = heard else {
                self.rejected(msg.subject.as_str());
                continue;
            };
            if w.node != self.node && self.orders.contains_key(&w.hall) {
                // A hint: what PostgreSQL holds of that hall, now.
                let (bus, store) = (self.clone(), store.clone());
                let read = tokio::task::spawn_blocking(move || {
                    bus.catch_up_hall(&mut lock(&store), &w.hall)
                })
                .await;
                if !matches!(read, Ok(Ok(()))) {
                    // The poll will, within a second.
                    self.wake.notify_one();
                }
            }
        }
    }

    /// A message on the cluster's subjects that is not a node's: counted,
    /// and logged at most once a minute (a flood must not fill the log).
    fn rejected(&self, subject: &str) {
        crate::metrics::bus_rejected();
        let mut last = lock(&self.rejected_logged);
        if last.is_none_or(|t| t.elapsed() >= REJECT_LOG_EVERY) {
            *last = Some(std::time::Instant::now());
            tracing::warn!(
                %subject,
                "a message on the cluster's bus is not sealed with this cluster's secret (or does not read); dropped. Another cluster with the same name, a node with another cluster_secret, or someone else publishing there (hallcast_bus_rejected_total counts them)"
            );
        }
    }

    /// Once a second (and when woken): every hall's head from PostgreSQL;
    /// what this node has not delivered yet is read and delivered.
    async fn poll(self: Arc<Self>, store: Postgres) {
        let store = Arc::new(Mutex::new(store));
        loop {
            tokio::select! {
                _ = tokio::time::sleep(POLL_EVERY) => {}
                _ = self.wake.notified() => {}
            }
            let bus = self.clone();
            let store = store.clone();
            let pass = tokio::task::spawn_blocking(move || bus.catch_up(&mut lock(&store))).await;
            let reachable = !matches!(pass, Ok(Err(_)));
            if let Ok(Err(e)) = pass {
                tracing::warn!(error = %e, "cannot read the cluster's heads from PostgreSQL; trying again in a second");
            }
            if let Some(engine) = self.engine() {
                engine.store_reachable(reachable);
            }
        }
    }

    /// Delivers what PostgreSQL holds of `hall` beyond what this node
    /// delivered, and marks the hall at the store's version (blocking).
    fn catch_up_hall(
        &self,
        store: &mut Postgres,
        hall: &str,
    ) -> Result<(), crate::store::StoreError> {
        let Some(o) = self.orders.get(hall) else {
            return Ok(());
        };
        // Read first: the events below are then at least as new.
        let version = store.version_of(hall)?;
        if let Some(h) = self.engine().as_ref().and_then(|e| e.hall(hall)) {
            h.saw_version(version);
        }
        loop {
            let last = lock(o).last;
            let events = store.events_after(hall, None, last, FILL_PAGE)?;
            if events.is_empty() {
                return Ok(());
            }
            let delivered = self.deliver(hall, &events, &[]);
            self.tell(hall, &delivered);
            if lock(o).last == last || events.len() < FILL_PAGE {
                return Ok(());
            }
        }
    }

    /// One pass of the poll (blocking).
    fn catch_up(&self, store: &mut Postgres) -> Result<(), crate::store::StoreError> {
        for (hall, version, head) in store.heads()? {
            let Some(o) = self.orders.get(&hall) else {
                continue;
            };
            loop {
                let last = lock(o).last;
                if head <= last {
                    break;
                }
                let events = store.events_after(&hall, None, last, FILL_PAGE)?;
                if events.is_empty() {
                    break;
                }
                self.arrived(&hall, version, &events);
                if lock(o).last == last {
                    break;
                }
            }
            if let Some(h) = self.engine().as_ref().and_then(|e| e.hall(&hall)) {
                h.saw_version(version);
            }
        }
        Ok(())
    }
}

impl Bus for ClusterBus {
    fn publish(&self, c: &Committed) {
        // To the other nodes first: their fan-out then runs while this
        // node writes to its own subscribers, not after.
        self.send(c);
        let out = self.deliver(&c.hall, &c.events, &c.tickets);
        let theirs: Vec<StoredEvent> = out
            .into_iter()
            .filter(|e| !c.events.iter().any(|o| o.hall_seq == e.hall_seq))
            .collect();
        if !theirs.is_empty() {
            let _ = self.released.send((c.hall.clone(), theirs));
        }
    }

    fn followed_tickets(&self, hall: &str) -> Vec<String> {
        self.hub.followed_tickets(hall)
    }
}

impl ClusterBus {
    /// Announces a commit on NATS to the other nodes, never waiting: when
    /// the sending task is behind, they find it in PostgreSQL by the poll.
    fn send(&self, c: &Committed) {
        let (Some(out), false) = (&self.outgoing, c.events.is_empty() && c.version == 0) else {
            return;
        };
        let w = Wire {
            node: self.node.clone(),
            hall: c.hall.clone(),
            version: c.version,
        };
        let Ok(payload) = serde_json::to_vec(&w) else {
            return;
        };
        let subject = format!("{}.{}", self.subjects, c.hall);
        let sealed = self.seal.seal(&subject, &payload);
        if out.try_send((subject, Bytes::from(sealed))).is_err() {
            tracing::debug!(hall = %c.hall, "NATS is behind; the other nodes read this batch from PostgreSQL");
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Connects to NATS at `url` (`nats://` or `tls://`, credentials in it as
/// `USER:PASSWORD@` or `TOKEN@`, or a `.creds` file), retrying in the
/// background while it is down; `reconnected` is woken at every
/// (re)connection, so the node reads what it missed from PostgreSQL at
/// once. Neither the URL's credentials nor the file's reach a log or an
/// error.
pub async fn connect_nats(
    url: &str,
    creds: Option<&std::path::Path>,
    reconnected: Arc<Notify>,
) -> Result<async_nats::Client, String> {
    let shown = crate::config::redacted_url(url);
    let (bare, auth) = split_credentials(url);
    let mut options = async_nats::ConnectOptions::new();
    match auth {
        Some((user, Some(pass))) => options = options.user_and_password(user, pass),
        Some((token, None)) => options = options.token(token),
        None => {}
    }
    if let Some(file) = creds {
        options = options.credentials_file(file).await.map_err(|e| {
            format!(
                "cannot read the NATS credentials file {}: {e}",
                file.display()
            )
        })?;
    }
    options
        .retry_on_initial_connect()
        .event_callback(move |event| {
            let reconnected = reconnected.clone();
            async move {
                match event {
                    async_nats::Event::Connected => {
                        tracing::info!("connected to NATS");
                        reconnected.notify_one();
                    }
                    async_nats::Event::Disconnected => {
                        tracing::warn!("NATS disconnected; reading other nodes' calls from PostgreSQL every second until it is back")
                    }
                    async_nats::Event::ClientError(e) => {
                        tracing::warn!(error = %e, "cannot use NATS (unreachable, or these credentials are refused); reading other nodes' calls from PostgreSQL every second")
                    }
                    _ => {}
                }
            }
        })
        .connect(bare.as_str())
        .await
        .map_err(|e| format!("cannot connect to NATS at {shown}: {e}"))
}

/// A NATS URL without its user info, and that user info: `(user,
/// Some(password))`, or `(token, None)`; percent-escapes decoded.
fn split_credentials(url: &str) -> (String, Option<(String, Option<String>)>) {
    let Some((scheme, rest)) = url.split_once("://") else {
        return (url.to_string(), None);
    };
    let host_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(host_end);
    let Some((info, host)) = authority.rsplit_once('@') else {
        return (url.to_string(), None);
    };
    let auth = match info.split_once(':') {
        Some((u, p)) => (unescape(u), Some(unescape(p))),
        None => (unescape(info), None),
    };
    (format!("{scheme}://{host}{path}"), Some(auth))
}

fn unescape(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::split_credentials;

    #[test]
    fn credentials_are_taken_out_of_a_nats_url() {
        assert_eq!(
            split_credentials("nats://127.0.0.1:4222"),
            ("nats://127.0.0.1:4222".to_string(), None)
        );
        assert_eq!(
            split_credentials("nats://node:p%40ss@nats.local:4222"),
            (
                "nats://nats.local:4222".to_string(),
                Some(("node".to_string(), Some("p@ss".to_string())))
            )
        );
        assert_eq!(
            split_credentials("tls://s3cr3t-token@nats.local"),
            (
                "tls://nats.local".to_string(),
                Some(("s3cr3t-token".to_string(), None))
            )
        );
        assert_eq!(
            crate::config::redacted_url("nats://node:p%40ss@nats.local:4222?x=1"),
            "nats://***@nats.local:4222"
        );
    }
}
