//! The single writer: group commit on a dedicated thread.
//!
//! Commands queue their batches here. The thread takes everything queued
//! (up to [`MAX_GROUP`]), commits it in one transaction — one fsync for
//! the whole group — and then runs each batch's continuation in queue
//! order. Under load, groups grow and the cost of durability per command
//! falls; when idle, a lone command commits at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use super::{Backend, Batch, StoreError};

/// Batches that may wait for the writer. At a few thousand commands per
/// second this is about a second of work: past it the disk is not keeping
/// up, and new commands are refused (503) rather than queued without bound.
pub const WRITE_QUEUE: usize = 4096;

/// Batches committed in one transaction at most, so that one commit — and
/// the latency of the first command in it — stays bounded.
const MAX_GROUP: usize = 512;

/// A transient failure (busy, an I/O hiccup, a full disk) is retried this
/// many times in all before the group is refused.
const COMMIT_TRIES: u32 = 4;

/// Pause before the first retry; doubled before each next one (20, 40,
/// 80 ms: 140 ms in all, within a screen's patience and a command's).
const RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(20);

/// A commit whose answer was lost (`StoreError::ambiguous`) is tried again
/// this long, the pauses growing to [`AMBIGUOUS_PAUSE_MAX`]: until then the
/// store may come back and say whether it happened, which the command's
/// answer must tell truly.
const AMBIGUOUS_BUDGET: std::time::Duration = std::time::Duration::from_secs(10);
const AMBIGUOUS_PAUSE_MAX: std::time::Duration = std::time::Duration::from_millis(500);

/// Told once an outbox update is recorded.
type OutboxDone = tokio::sync::oneshot::Sender<Result<(), StoreError>>;

/// Runs after the batch's commit, on the writer thread: must not block.
pub type Continuation = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// Work for the writer.
pub enum Job {
    /// Commit a batch, then run the continuation.
    Commit(Box<Batch>, Continuation),
    /// Housekeeping (expired idempotency keys …).
    Maintain(DateTime<Utc>),
    /// What deliveries of the outbox did (§9); answered once recorded.
    Outbox(Vec<super::OutboxUpdate>, OutboxDone),
    /// Commit what is queued before this, then end the thread.
    Stop,
    /// Take writes again after a failed commit: everything queued before
    /// this has been refused, and the engine has reloaded its memory
    /// from the store. Answered once the flag is cleared.
    Reset(std::sync::mpsc::SyncSender<()>),
    /// Try a small write, to learn whether the store takes writes again
    /// (A7: `/readyz` says so while it does not).
    Probe,
}

/// Starts and owns the writer thread.
pub struct Writer {
    thread: JoinHandle<()>,
}

/// A cloneable handle to queue work for the writer.
#[derive(Clone)]
pub struct WriterHandle {
    tx: mpsc::Sender<Job>,
    failed: Arc<AtomicBool>,
    /// The last write of any kind (a commit, deliveries, a probe) was
    /// refused by the store for other reasons than another node's
    /// conflict; cleared by the next that succeeds.
    refusing: Arc<AtomicBool>,
}

impl Writer {
    /// Starts the writer thread over `backend`.
    pub fn start(mut backend: Box<dyn Backend>) -> (Writer, WriterHandle) {
        let (tx, mut rx) = mpsc::channel::<Job>(WRITE_QUEUE);
        let failed = Arc::new(AtomicBool::new(false));
        let flag = failed.clone();
        let refusing = Arc::new(AtomicBool::new(false));
        let refuses = refusing.clone();
        let thread = std::thread::Builder::new()
            .name("hallcast-writer".into())
            .spawn(move || {
                let mut group: Vec<(Batch, Continuation)> = Vec::with_capacity(MAX_GROUP);
                // Deliveries recorded together, one transaction (and one
                // fsync) for all that piled up, as commands are.
                let mut deliveries: Vec<(Vec<super::OutboxUpdate>, OutboxDone)> = Vec::new();
                let mut stopping = false;
                while let Some(job) = rx.blocking_recv() {
                    let mut next = Some(job);
                    while let Some(job) = next.take() {
                        match job {
                            Job::Commit(b, k) => group.push((*b, k)),
                            Job::Stop => {
                                stopping = true;
                                break;
                            }
                            Job::Reset(ack) => {
                                // Refuse what came before the reset first.
                                if !group.is_empty() {
                                    Self::commit(&mut *backend, &flag, &mut group, &mut Vec::new());
                                }
                                flag.store(false, Ordering::Release);
                                tracing::info!("store writes resumed after a reload");
                                let _ = ack.send(());
                            }
                            Job::Outbox(updates, done) => deliveries.push((updates, done)),
                            Job::Probe => {
                                let ok = backend.probe().is_ok();
                                if ok && refuses.swap(false, Ordering::AcqRel) {
                                    tracing::info!("the store takes writes again");
                                }
                            }
                            Job::Maintain(now) => {
                                if let Err(e) = backend.maintain(now) {
                                    tracing::warn!(error = %e, "store maintenance failed");
                                }
                            }
                        }
                        if group.len() < MAX_GROUP {
                            next = rx.try_recv().ok();
                        }
                    }
                    if !group.is_empty() || !deliveries.is_empty() {
                        let wrote = Self::commit(&mut *backend, &flag, &mut group, &mut deliveries);
                        if let Some(ok) = wrote {
                            refuses.store(!ok, Ordering::Release);
                        }
                    }
                    if stopping {
                        break;
                    }
                }
            })
            .expect("spawning the writer thread");
        (
            Writer { thread },
            WriterHandle {
                tx,
                failed,
                refusing,
            },
        )
    }

    /// Commits a group and runs its continuations in order; with it, in
    /// the same transaction, the deliveries recorded meanwhile (a commit
    /// of their own wrote the outbox's pages a second time). Says whether
    /// the store took what was written (`None`: nothing was tried, or only
    /// another node's conflict refused it).
    fn commit(
        backend: &mut dyn Backend,
        flag: &AtomicBool,
        group: &mut Vec<(Batch, Continuation)>,
        deliveries: &mut Vec<(Vec<super::OutboxUpdate>, OutboxDone)>,
    ) -> Option<bool> {
        let updates: Vec<super::OutboxUpdate> = deliveries
            .iter()
            .flat_map(|(u, _)| u.iter().cloned())
            .collect();
        let refused = flag.load(Ordering::Acquire);
        // A cluster's batches computed from memory that an earlier refusal
        // made stale never reach the database (`Fence`).
        let (stale, fresh): (Vec<_>, Vec<_>) = std::mem::take(group)
            .into_iter()
            .partition(|(b, _)| b.fence.as_ref().is_some_and(|(f, g)| *g < f.floor()));
        *group = fresh;
        for (b, k) in stale {
            k(Err(StoreError::conflict(format!(
                "hall {} changed on another node while this command waited; running it again",
                b.hall.id
            ))));
        }
        let result = if group.is_empty() {
            Ok(())
        } else if refused {
            Err(StoreError::unavailable(
                "an earlier commit failed; hallcast is reloading its state from the store, retry in a moment",
            ))
        } else {
            let mut pause = RETRY_PAUSE;
            let mut tries = 1;
            let started = std::time::Instant::now();
            loop {
                let refs: Vec<&Batch> = group.iter().map(|(b, _)| b).collect();
                match backend.commit_with_deliveries(&refs, &updates) {
                    Ok(()) => {
                        crate::metrics::commit(started);
                        break Ok(());
                    }
                    Err(e)
                        if e.is_transient()
                            && (tries < COMMIT_TRIES
                                || (e.ambiguous && started.elapsed() < AMBIGUOUS_BUDGET)) =>
                    {
                        tracing::warn!(error = %e, tries, ambiguous = e.ambiguous, "store commit failed; retrying");
                        std::thread::sleep(pause);
                        pause = (pause * 2).min(AMBIGUOUS_PAUSE_MAX);
                        tries += 1;
                    }
                    Err(e) => match Self::without_conflicted(group, &e) {
                        // Only one hall of the group was moved by another
                        // node: its batches go back to their commands, the
                        // other halls' are written (one hall's contention
                        // must not stall a city's).
                        Some(lost) => {
                            for (b, k) in lost {
                                b.fence_off();
                                k(Err(e.clone()));
                            }
                        }
                        None => break Err(e),
                    },
                }
            }
        };
        let clustered = !group.is_empty() && group.iter().all(|(b, _)| b.fence.is_some());
        if let (Err(e), true) = (&result, clustered) {
            if e.kind == super::StoreErrorKind::Conflict {
                // Another node moved a hall first: only the halls of this
                // group are stale. Their fences refuse what was computed
                // after these batches; the engine reloads them and runs
                // the commands again. Other halls write on.
                for (b, _) in group.iter() {
                    b.fence_off();
                }
            }
        }
        let conflict_only = clustered
            && result
                .as_ref()
                .is_err_and(|e| e.kind == super::StoreErrorKind::Conflict);
        if let (Err(e), false) = (&result, conflict_only) {
            // Memory now holds changes the disk does not: refuse every
            // further write until the engine has reloaded the truth from
            // the store and sent `Job::Reset`.
            if !flag.swap(true, Ordering::AcqRel) {
                tracing::error!(error = %e, "store commit failed; refusing writes until the state is reloaded");
            }
        }
        let recorded = if group.is_empty() || refused {
            // Nothing of the commands' to ride with (or they are refused
            // while the engine reloads): the deliveries alone.
            if updates.is_empty() {
                Ok(())
            } else {
                backend.update_outbox(&updates)
            }
        } else {
            result.clone()
        };
        if let (Err(e), false) = (&recorded, updates.is_empty()) {
            tracing::debug!(error = %e, "recording outbox deliveries failed; they will be retried after their backoff");
        }
        let tried_commit = !group.is_empty() && !refused;
        let refused_by_store = |r: &Result<(), StoreError>| {
            r.as_ref()
                .is_err_and(|e| e.kind != super::StoreErrorKind::Conflict)
        };
        let verdict = match (tried_commit, updates.is_empty()) {
            (false, true) => None,
            (true, _) if conflict_only => None,
            (true, true) => Some(!refused_by_store(&result)),
            (_, false) => {
                Some(!(refused_by_store(&recorded) || tried_commit && refused_by_store(&result)))
            }
        };
        for (_, k) in group.drain(..) {
            k(result.clone());
        }
        for (_, done) in deliveries.drain(..) {
            let _ = done.send(recorded.clone());
        }
        verdict
    }

    /// After a conflict that names its hall, in a cluster's group that
    /// also holds other halls' batches: takes that hall's batches out of
    /// the group and returns them. `None` when the whole group failed.
    fn without_conflicted(
        group: &mut Vec<(Batch, Continuation)>,
        e: &StoreError,
    ) -> Option<Vec<(Batch, Continuation)>> {
        let hall = e.hall.as_deref()?;
        let clustered = group.iter().all(|(b, _)| b.fence.is_some());
        let others = group.iter().any(|(b, _)| b.hall.id != hall);
        if e.kind != super::StoreErrorKind::Conflict || !clustered || !others {
            return None;
        }
        let (lost, kept): (Vec<_>, Vec<_>) = std::mem::take(group)
            .into_iter()
            .partition(|(b, _)| b.hall.id == hall);
        *group = kept;
        Some(lost)
    }

    /// Waits until every queued batch is committed and the thread ended.
    pub fn join(self) {
        if self.thread.join().is_err() {
            tracing::error!("store writer thread panicked");
        }
    }
}

impl WriterHandle {
    /// Reserves a place in the queue before a command mutates state, so a
    /// command that cannot be journaled is refused before it changes
    /// anything.
    pub fn reserve(&self) -> Result<mpsc::Permit<'_, Job>, StoreError> {
        if self.is_failed() {
            return Err(StoreError::unavailable(
                "the store failed to commit; hallcast is reloading its state, retry in a moment",
            ));
        }
        self.tx.try_reserve().map_err(|e| match e {
            mpsc::error::TrySendError::Full(()) => {
                StoreError::unavailable("the store is falling behind; retry in a moment")
            }
            mpsc::error::TrySendError::Closed(()) => {
                StoreError::unavailable("hallcast is shutting down")
            }
        })
    }

    /// Records outbox deliveries; resolves once they are written.
    pub async fn outbox(&self, updates: Vec<super::OutboxUpdate>) -> Result<(), StoreError> {
        let (done, recorded) = tokio::sync::oneshot::channel();
        self.tx
            .send(Job::Outbox(updates, done))
            .await
            .map_err(|_| StoreError::unavailable("hallcast is shutting down"))?;
        recorded
            .await
            .map_err(|_| StoreError::unavailable("the store writer stopped"))?
    }

    /// Queues housekeeping; skipped when the queue is busy.
    pub fn maintain(&self, now: DateTime<Utc>) {
        let _ = self.tx.try_send(Job::Maintain(now));
    }

    /// Asks the writer to finish what is queued and stop.
    pub async fn stop(&self) {
        let _ = self.tx.send(Job::Stop).await;
    }

    /// After the engine reloaded its state: takes writes again once
    /// everything queued so far has been refused. Blocks; call it off the
    /// async threads.
    pub fn reset_blocking(&self) -> Result<(), StoreError> {
        let (ack, done) = std::sync::mpsc::sync_channel(1);
        self.tx
            .blocking_send(Job::Reset(ack))
            .map_err(|_| StoreError::unavailable("hallcast is shutting down"))?;
        done.recv()
            .map_err(|_| StoreError::unavailable("the store writer stopped"))
    }

    /// A commit failed and the state was not reloaded yet.
    pub fn is_failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// The store refused the last write (a full disk, say).
    pub fn is_refusing(&self) -> bool {
        self.refusing.load(Ordering::Acquire)
    }

    /// Queues a probe write; skipped when the queue is busy (then real
    /// writes will tell).
    pub fn probe(&self) {
        let _ = self.tx.try_send(Job::Probe);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Mutex;

    use super::*;
    use crate::queue::HallSpec;
    use crate::store::{Loaded, StoreErrorKind, StoredEvent};

    /// A backend whose commits answer from a script (then succeed), and
    /// that counts them.
    struct Scripted {
        /// `None`: that commit succeeds.
        answers: Arc<Mutex<VecDeque<Option<StoreError>>>>,
        commits: Arc<Mutex<u32>>,
        /// Each write as (batches, delivery records) it carried.
        writes: Arc<Mutex<Vec<(usize, usize)>>>,
        /// The first commit says it began on the first, then waits for
        /// the second, if set.
        gate: Option<(std::sync::mpsc::Sender<()>, std::sync::mpsc::Receiver<()>)>,
    }

    impl Backend for Scripted {
        fn load(&mut self, _: &HallSpec, _: DateTime<Utc>) -> Result<Loaded, StoreError> {
            Ok(Loaded::default())
        }
        fn commit(&mut self, _: &[&Batch]) -> Result<(), StoreError> {
            if let Some((began, open)) = self.gate.take() {
                let _ = began.send(());
                let _ = open.recv();
            }
            *self.commits.lock().unwrap() += 1;
            match self.answers.lock().unwrap().pop_front().flatten() {
                Some(e) => Err(e),
                None => Ok(()),
            }
        }
        fn commit_with_deliveries(
            &mut self,
            batches: &[&Batch],
            deliveries: &[crate::store::OutboxUpdate],
        ) -> Result<(), StoreError> {
            let r = self.commit(batches);
            self.writes
                .lock()
                .unwrap()
                .push((batches.len(), deliveries.len()));
            r
        }
        fn update_outbox(&mut self, u: &[crate::store::OutboxUpdate]) -> Result<(), StoreError> {
            self.writes.lock().unwrap().push((0, u.len()));
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
    }

    fn writer(script: Vec<StoreError>) -> (Writer, WriterHandle, Arc<Mutex<u32>>) {
        let commits = Arc::new(Mutex::new(0));
        let backend = Scripted {
            answers: Arc::new(Mutex::new(script.into_iter().map(Some).collect())),
            commits: commits.clone(),
            writes: Arc::default(),
            gate: None,
        };
        let (w, h) = Writer::start(Box::new(backend));
        (w, h, commits)
    }

    fn commit(h: &WriterHandle) -> Result<(), StoreError> {
        commit_later(h).recv().unwrap()
    }

    fn delivery() -> crate::store::OutboxUpdate {
        crate::store::OutboxUpdate {
            hall: "demo".into(),
            id: "m1".into(),
            status: crate::store::OutboxStatus::Delivered,
            attempts: 1,
            last_error: None,
            next_attempt_at: Utc::now(),
        }
    }

    #[tokio::test]
    async fn deliveries_recorded_while_commands_queue_ride_in_their_commit() {
        let (open, gate) = std::sync::mpsc::channel();
        let (began, at_gate) = std::sync::mpsc::channel();
        let writes: Arc<Mutex<Vec<(usize, usize)>>> = Arc::default();
        let (_w, h) = Writer::start(Box::new(Scripted {
            answers: Arc::default(),
            commits: Arc::default(),
            writes: writes.clone(),
            gate: Some((began, gate)),
        }));
        // The writer holds the first command at the gate while a
        // delivery and a second command queue behind it.
        let first = commit_later(&h);
        at_gate.recv().unwrap();
        let recorded = {
            let h = h.clone();
            tokio::spawn(async move { h.outbox(vec![delivery(), delivery()]).await })
        };
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let second = commit_later(&h);
        open.send(()).unwrap();
        first.recv().unwrap().unwrap();
        second.recv().unwrap().unwrap();
        recorded.await.unwrap().unwrap();
        assert_eq!(*writes.lock().unwrap(), [(1, 0), (1, 2)]);

        // Deliveries alone are recorded alone.
        h.outbox(vec![delivery()]).await.unwrap();
        assert_eq!(writes.lock().unwrap().last(), Some(&(0, 1)));
    }

    #[tokio::test]
    async fn while_commands_are_refused_deliveries_are_still_recorded() {
        let (_w, h, _) = writer(vec![StoreError::conflict("hall demo moved on")]);
        let h2 = h.clone();
        tokio::task::spawn_blocking(move || commit(&h2).unwrap_err())
            .await
            .unwrap();
        assert!(h.is_failed());
        h.outbox(vec![delivery()])
            .await
            .expect("a delivery's record does not wait for the reload");
    }

    fn commit_later(h: &WriterHandle) -> std::sync::mpsc::Receiver<Result<(), StoreError>> {
        commit_of(h, "demo", None)
    }

    /// A batch of hall `hall`, a cluster's when `fence` is given.
    fn commit_of(
        h: &WriterHandle,
        hall: &str,
        fence: Option<&Arc<crate::store::Fence>>,
    ) -> std::sync::mpsc::Receiver<Result<(), StoreError>> {
        let mut spec = (*crate::demo::spec()).clone();
        spec.id = hall.into();
        let mut b = Batch::new(Arc::new(spec), 0);
        b.fence = fence.map(|f| (f.clone(), 0));
        b.counter = Some(crate::queue::Counter {
            service: 0,
            day: chrono::NaiveDate::from_ymd_opt(2026, 12, 2).unwrap(),
            last: 1,
        });
        let (tx, rx) = std::sync::mpsc::channel();
        match h.reserve() {
            Ok(permit) => permit.send(Job::Commit(
                Box::new(b),
                Box::new(move |r| {
                    let _ = tx.send(r);
                }),
            )),
            Err(e) => {
                let _ = tx.send(Err(e));
            }
        }
        rx
    }

    #[test]
    fn a_transient_failure_is_retried_and_the_command_commits() {
        let busy = || StoreError::transient("database is locked");
        let (_w, h, commits) = writer(vec![busy(), busy()]);
        commit(&h).expect("the third try commits");
        assert_eq!(*commits.lock().unwrap(), 3);
        assert!(!h.is_failed());
    }

    #[test]
    fn a_transient_failure_that_lasts_refuses_the_group_and_then_all_writes() {
        let busy = || StoreError::transient("disk I/O error");
        let (_w, h, commits) = writer((0..COMMIT_TRIES).map(|_| busy()).collect());
        assert_eq!(commit(&h).unwrap_err().kind, StoreErrorKind::Transient);
        assert_eq!(*commits.lock().unwrap(), COMMIT_TRIES);
        assert!(h.is_failed(), "memory may be ahead of the disk now");
        assert_eq!(commit(&h).unwrap_err().kind, StoreErrorKind::Unavailable);
    }

    #[test]
    fn a_conflict_is_not_retried_and_writes_wait_for_the_reload() {
        let (_w, h, commits) = writer(vec![StoreError::conflict("hall demo moved on")]);
        let e = commit(&h).unwrap_err();
        assert_eq!(e.kind, StoreErrorKind::Conflict);
        assert_eq!(
            *commits.lock().unwrap(),
            1,
            "retrying cannot fix a conflict"
        );
        assert!(h.is_failed());
        let refused = commit(&h).unwrap_err();
        assert!(refused.message.contains("reloading"), "{refused}");
        // The engine reloaded its memory: writes go on.
        h.reset_blocking().unwrap();
        commit(&h).expect("after the reset");
        assert_eq!(*commits.lock().unwrap(), 2);
    }

    #[tokio::test]
    async fn a_conflict_of_one_hall_of_a_cluster_s_group_leaves_the_other_halls_written() {
        let (open, gate) = std::sync::mpsc::channel();
        let (began, at_gate) = std::sync::mpsc::channel();
        let writes: Arc<Mutex<Vec<(usize, usize)>>> = Arc::default();
        let moved = StoreError::conflict("hall a is at version 3").in_hall("a");
        let (_w, h) = Writer::start(Box::new(Scripted {
            // The held commit, then the group of a and b, then b alone.
            answers: Arc::new(Mutex::new([None, Some(moved), None].into())),
            commits: Arc::default(),
            writes: writes.clone(),
            gate: Some((began, gate)),
        }));
        let fences: Vec<Arc<crate::store::Fence>> = (0..3).map(|_| Arc::default()).collect();
        let held = commit_of(&h, "c", Some(&fences[2]));
        at_gate.recv().unwrap();
        let a = commit_of(&h, "a", Some(&fences[0]));
        let b = commit_of(&h, "b", Some(&fences[1]));
        open.send(()).unwrap();
        held.recv().unwrap().unwrap();
        let e = a.recv().unwrap().unwrap_err();
        assert_eq!(e.kind, StoreErrorKind::Conflict);
        b.recv()
            .unwrap()
            .expect("hall b was not moved: it is written");
        assert_eq!(*writes.lock().unwrap(), [(1, 0), (2, 0), (1, 0)]);
        assert_eq!(
            fences[0].floor(),
            1,
            "hall a's memory is refused until reloaded"
        );
        assert_eq!(fences[1].floor(), 0);
        assert!(!h.is_failed(), "a cluster's conflict refuses only its hall");
    }
}
