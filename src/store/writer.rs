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

/// Runs after the batch's commit, on the writer thread: must not block.
pub type Continuation = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// Work for the writer.
pub enum Job {
    /// Commit a batch, then run the continuation.
    Commit(Box<Batch>, Continuation),
    /// Housekeeping (expired idempotency keys …).
    Maintain(DateTime<Utc>),
    /// Commit what is queued before this, then end the thread.
    Stop,
    /// Take writes again after a failed commit: everything queued before
    /// this has been refused, and the engine has reloaded its memory
    /// from the store. Answered once the flag is cleared.
    Reset(std::sync::mpsc::SyncSender<()>),
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
}

impl Writer {
    /// Starts the writer thread over `backend`.
    pub fn start(mut backend: Box<dyn Backend>) -> (Writer, WriterHandle) {
        let (tx, mut rx) = mpsc::channel::<Job>(WRITE_QUEUE);
        let failed = Arc::new(AtomicBool::new(false));
        let flag = failed.clone();
        let thread = std::thread::Builder::new()
            .name("hallcast-writer".into())
            .spawn(move || {
                let mut group: Vec<(Batch, Continuation)> = Vec::with_capacity(MAX_GROUP);
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
                                    Self::commit(&mut *backend, &flag, &mut group);
                                }
                                flag.store(false, Ordering::Release);
                                tracing::info!("store writes resumed after a reload");
                                let _ = ack.send(());
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
                    if !group.is_empty() {
                        Self::commit(&mut *backend, &flag, &mut group);
                    }
                    if stopping {
                        break;
                    }
                }
            })
            .expect("spawning the writer thread");
        (Writer { thread }, WriterHandle { tx, failed })
    }

    /// Commits a group and runs its continuations in order.
    fn commit(
        backend: &mut dyn Backend,
        flag: &AtomicBool,
        group: &mut Vec<(Batch, Continuation)>,
    ) {
        let result = if flag.load(Ordering::Acquire) {
            Err(StoreError(
                "an earlier commit failed; hallcast is reloading its state from the store, retry in a moment".into(),
            ))
        } else {
            let refs: Vec<&Batch> = group.iter().map(|(b, _)| b).collect();
            let mut pause = RETRY_PAUSE;
            let mut tries = 1;
            loop {
                match backend.commit(&refs) {
                    Ok(()) => break Ok(()),
                    Err(e) if e.transient && tries < COMMIT_TRIES => {
                        tracing::warn!(error = %e.error, tries, "store commit failed; retrying");
                        std::thread::sleep(pause);
                        pause *= 2;
                        tries += 1;
                    }
                    Err(e) => break Err(e.error),
                }
            }
        };
        if let Err(e) = &result {
            // Memory now holds changes the disk does not: refuse every
            // further write until the engine has reloaded the truth from
            // the store and sent `Job::Reset`.
            if !flag.swap(true, Ordering::AcqRel) {
                tracing::error!(error = %e, "store commit failed; refusing writes until the state is reloaded");
            }
        }
        for (_, k) in group.drain(..) {
            k(result.clone());
        }
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
            return Err(StoreError(
                "the store failed to commit; hallcast is reloading its state, retry in a moment"
                    .into(),
            ));
        }
        self.tx.try_reserve().map_err(|e| match e {
            mpsc::error::TrySendError::Full(()) => {
                StoreError("the store is falling behind; retry in a moment".into())
            }
            mpsc::error::TrySendError::Closed(()) => StoreError("hallcast is shutting down".into()),
        })
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
            .map_err(|_| StoreError("hallcast is shutting down".into()))?;
        done.recv()
            .map_err(|_| StoreError("the store writer stopped".into()))
    }

    /// A commit failed and the state was not reloaded yet.
    pub fn is_failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }
}
