//! The engine against stores that fail (issue "seams"): a second writer on
//! the same store is detected as a conflict instead of being overwritten,
//! the command answers 503, the engine reloads the hall from the store,
//! and the next command succeeds on the truth.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use hallcast::announcer::clips::ClipBank;
use hallcast::announcer::Announcer;
use hallcast::bus::{Bus, Committed};
use hallcast::engine::{new_token, Engine};
use hallcast::hub::Hub;
use hallcast::queue::{Channel, HallSpec, IssueRequest, Priority};
use hallcast::store::{Backend, Batch, Loaded, Sqlite, StoreError, StoredEvent, Writer};
use hallcast::wire::{self, ApiError, Reply};

/// The real SQLite store, whose next commit can be made to answer that
/// another writer got there first.
struct Refusing {
    inner: Sqlite,
    refuse_next: Arc<AtomicBool>,
}

impl Backend for Refusing {
    fn load(&mut self, spec: &HallSpec, now: DateTime<Utc>) -> Result<Loaded, StoreError> {
        self.inner.load(spec, now)
    }
    fn commit(&mut self, batches: &[&Batch]) -> Result<(), StoreError> {
        if self.refuse_next.swap(false, Ordering::SeqCst) {
            return Err(StoreError::conflict(
                "hall demo was changed by another writer",
            ));
        }
        self.inner.commit(batches)
    }
    fn maintain(&mut self, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.inner.maintain(now)
    }
    fn events_after(
        &mut self,
        hall: &str,
        floor: Option<i32>,
        after: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.inner.events_after(hall, floor, after, limit)
    }
}

/// A bus that keeps what it is given, and says every ticket is followed.
#[derive(Default)]
struct Recording {
    got: std::sync::Mutex<Vec<Committed>>,
}

impl Bus for Recording {
    fn publish(&self, c: &Committed) {
        self.got.lock().unwrap().push(c.clone());
    }
    fn followed_tickets(&self, _: &str) -> Vec<String> {
        Vec::new()
    }
}

/// An engine over the demo hall in `dir`, committing through `backend`.
fn engine(dir: &Path, backend: Box<dyn Backend>) -> (Arc<Engine>, Writer) {
    let config = hallcast::config::parse("demo", hallcast::demo::CONFIG).unwrap();
    let hub = Arc::new(Hub::new(config.halls.iter().map(|h| &**h)));
    let announcer = Arc::new(Announcer::new(
        ClipBank::built_in().unwrap(),
        config.halls.clone(),
    ));
    let (writer, handle) = Writer::start(backend);
    let reader = Box::new(Sqlite::open(dir).unwrap());
    let e = Engine::load(&config.halls, reader, handle, hub, announcer, Utc::now()).unwrap();
    (Arc::new(e), writer)
}

/// An engine whose next commit is refused when the flag is set.
fn refusing_engine(dir: &Path) -> (Arc<Engine>, Writer, Arc<AtomicBool>) {
    let refuse = Arc::new(AtomicBool::new(false));
    let backend = Refusing {
        inner: Sqlite::open(dir).unwrap(),
        refuse_next: refuse.clone(),
    };
    let (e, w) = engine(dir, Box::new(backend));
    (e, w, refuse)
}

/// Issues a business ticket; the answer as the API would send it.
async fn issue(e: &Engine) -> Reply {
    issue_of(e, "business").await
}

async fn issue_of(e: &Engine, service: &str) -> Reply {
    let h = e.hall("demo").unwrap();
    let req = IssueRequest {
        service: service.into(),
        priority: Priority::Normal,
        channel: Channel::Kiosk,
        notify_phone: None,
        phone_token: None,
        origin: None,
        outside_hours: true,
        slot: None,
    };
    let token = new_token();
    let r = e
        .execute(
            h,
            "admin",
            None,
            move |hall, now| hall.issue(req.clone(), token.clone(), now),
            |hall, result| match result {
                Ok(out) => {
                    let t = hall.ticket(out.ticket.unwrap()).unwrap();
                    wire::json(201, &wire::ticket_view(hall, t, true))
                }
                Err(e) => ApiError::from(e.clone()).reply(),
            },
        )
        .await;
    r.unwrap_or_else(|e| ApiError::from(e).reply())
}

fn number(r: &Reply) -> String {
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    v["number"].as_str().unwrap_or_default().to_string()
}

/// Reloads as the server's 1 s ticker does after a failed commit.
async fn until_reloaded(e: &Arc<Engine>) {
    for _ in 0..50 {
        e.tick().await;
        if e.is_ready() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the engine did not reload");
}

#[tokio::test]
async fn a_refused_commit_answers_503_reloads_and_the_next_command_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let (e, _w, refuse) = refusing_engine(dir.path());
    assert_eq!(number(&issue(&e).await), "A001");
    refuse.store(true, Ordering::SeqCst);
    let refused = issue(&e).await;
    assert_eq!(
        refused.status,
        503,
        "{}",
        String::from_utf8_lossy(&refused.body)
    );
    // Memory had A002 before the commit failed; the reload drops it.
    until_reloaded(&e).await;
    let waiting = e.hall("demo").unwrap().read(|h| h.waiting_count(0));
    let next = issue(&e).await;
    assert_eq!(next.status, 201);
    assert_eq!(number(&next), "A002", "the refused ticket never existed");
    assert_eq!(waiting, 1, "only A001 waited after the reload");
}

#[tokio::test]
async fn a_second_writer_on_the_same_store_is_detected_not_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _wa) = engine(dir.path(), Box::new(Sqlite::open(dir.path()).unwrap()));
    let (b, _wb) = engine(dir.path(), Box::new(Sqlite::open(dir.path()).unwrap()));
    assert_eq!(number(&issue(&a).await), "A001");
    // b computed its command from seq 0: the store is at 1.
    let refused = issue(&b).await;
    assert_eq!(refused.status, 503);
    let v: serde_json::Value = serde_json::from_slice(&refused.body).unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("another process"),
        "{v}"
    );
    until_reloaded(&b).await;
    assert_eq!(
        number(&issue(&b).await),
        "A002",
        "b now numbers after a's A001"
    );
    // And a, now behind b, is refused in turn rather than reusing A002.
    assert_eq!(issue(&a).await.status, 503);
    until_reloaded(&a).await;
    assert_eq!(number(&issue(&a).await), "A003");
}

#[tokio::test]
async fn committed_batches_reach_the_bus_in_order_and_nothing_else_does() {
    let dir = tempfile::tempdir().unwrap();
    let (e, _w, refuse) = refusing_engine(dir.path());
    let bus = Arc::new(Recording::default());
    let e = Arc::new(Arc::into_inner(e).unwrap().with_bus(bus.clone()));
    assert_eq!(issue(&e).await.status, 201);
    assert_eq!(issue(&e).await.status, 201);
    // A refused command and a failed commit publish nothing.
    assert_eq!(issue_of(&e, "no-such-service").await.status, 404);
    refuse.store(true, Ordering::SeqCst);
    assert_eq!(issue(&e).await.status, 503);
    until_reloaded(&e).await;
    assert_eq!(issue(&e).await.status, 201);
    let got = bus.got.lock().unwrap();
    assert_eq!(got.len(), 3, "one publish per committed command");
    assert!(got.iter().all(|c| c.hall == "demo"));
    let seqs: Vec<u64> = got
        .iter()
        .flat_map(|c| c.events.iter().map(|e| e.hall_seq))
        .collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "gapless, in order"
    );
    let floors: Vec<u64> = got
        .iter()
        .flat_map(|c| {
            c.events
                .iter()
                .filter(|e| e.floor == 3)
                .map(|e| e.floor_seq)
        })
        .collect();
    assert_eq!(floors, (1..=floors.len() as u64).collect::<Vec<_>>());
}

/// A report connection whose rating reads take a while and count how many
/// run at once.
struct SlowReports {
    running: Arc<std::sync::atomic::AtomicUsize>,
    most: Arc<std::sync::atomic::AtomicUsize>,
}

impl Backend for SlowReports {
    fn load(&mut self, _: &HallSpec, _: DateTime<Utc>) -> Result<Loaded, StoreError> {
        Ok(Loaded::default())
    }
    fn commit(&mut self, _: &[&Batch]) -> Result<(), StoreError> {
        Ok(())
    }
    fn maintain(&mut self, _: DateTime<Utc>) -> Result<(), StoreError> {
        Ok(())
    }
    fn events_after(
        &mut self,
        _: &str,
        _: Option<i32>,
        _: u64,
        _: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        Ok(Vec::new())
    }
    fn rating_counts(
        &mut self,
        _: &str,
        _: DateTime<Utc>,
        _: DateTime<Utc>,
    ) -> Result<Vec<hallcast::store::RatingCount>, StoreError> {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        std::thread::sleep(std::time::Duration::from_millis(
            (hallcast::engine::REPORT_TURN_WAIT.as_millis() + 2_000) as u64,
        ));
        self.running.fetch_sub(1, Ordering::SeqCst);
        Ok(Vec::new())
    }
}

/// A7: at most four report reads run at once in a node, each on a free
/// connection, and one that waits longer than its turn allows is 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_reads_take_turns_and_a_long_wait_is_unavailable() {
    let tmp = tempfile::tempdir().unwrap();
    let (e, _w) = engine(tmp.path(), Box::new(Sqlite::open(tmp.path()).unwrap()));
    let running = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let most = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let reports: Vec<Box<dyn Backend>> = (0..6)
        .map(|_| {
            Box::new(SlowReports {
                running: running.clone(),
                most: most.clone(),
            }) as Box<dyn Backend>
        })
        .collect();
    let e = Arc::new(Arc::try_unwrap(e).ok().unwrap().with_reports(reports));
    let started = std::time::Instant::now();
    let reads: Vec<_> = (0..5)
        .map(|_| {
            let e = e.clone();
            tokio::spawn(async move {
                let now = Utc::now();
                e.read_reports("ratings", move |b| b.rating_counts("demo", now, now))
                    .await
            })
        })
        .collect();
    let mut ok = 0;
    let mut unavailable = 0;
    for r in reads {
        match r.await.unwrap() {
            Ok(_) => ok += 1,
            Err(e) => {
                assert!(e.message.contains("busy"), "{}", e.message);
                unavailable += 1;
            }
        }
    }
    assert_eq!((ok, unavailable), (4, 1));
    assert_eq!(
        most.load(Ordering::SeqCst),
        4,
        "four at once, each on its own connection"
    );
    assert!(started.elapsed() >= hallcast::engine::REPORT_TURN_WAIT);
}
