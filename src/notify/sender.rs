//! The outbox's thread: the whole delivery loop (reading due messages,
//! signing, the HTTP, the records it asks the writer for) runs on a
//! runtime of its own, on a thread the kernel runs after the commands'
//! threads when the CPU is short.
//!
//! A delivery costs the server about as much CPU as a command (the due
//! read, the signed POST through the HTTP client, the loopback or network
//! stack, the answer, its bookkeeping). On the async threads that cost
//! came out of the commands' share whenever the CPU was full: a fifth
//! fewer commands a second with the outbox on. Here it runs at nice
//! [`NICE`], so under load a command goes first and the outbox catches
//! up when the load falls; with the CPU free, deliveries are as fast as
//! before. What looks at a hall (and takes its lock) is sent back to the
//! async threads ([`Sender::on_commands_side`]), so a preempted
//! low-priority thread never holds a lock a command waits for.

use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::oneshot;

/// The outbox thread's nice value: a nice-19 thread weighs about 1.5 %
/// of a nice-0 one when they compete for a core, so it never starves
/// (a few hundred deliveries a second on a full core) yet takes almost
/// nothing from the commands.
pub const NICE: i32 = 19;

/// One signed POST of a message.
pub struct Post {
    pub url: String,
    pub id: String,
    pub timestamp: i64,
    pub signature: String,
    pub body: Bytes,
}

/// Why a POST got no answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    Timeout,
    Connect,
    Other,
}

/// The outbox thread and its runtime.
pub struct Sender {
    /// The outbox thread's runtime: the delivery loop is spawned on it.
    pub handle: tokio::runtime::Handle,
    /// The commands' runtime, for what must not run at a low priority.
    commands: tokio::runtime::Handle,
    client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Sender {
    /// Starts the thread; `timeout` bounds each POST. Called on the
    /// commands' runtime.
    pub fn start(timeout: Duration) -> std::io::Result<Sender> {
        let commands = tokio::runtime::Handle::current();
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(std::io::Error::other)?;
        let (stop, stopped) = oneshot::channel::<()>();
        let (ready, handle) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("hallcast-outbox".into())
            .spawn(move || {
                lower_priority();
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready.send(Err(e));
                        return;
                    }
                };
                let _ = ready.send(Ok(rt.handle().clone()));
                // Runs the posts spawned onto it until told to stop.
                rt.block_on(async {
                    let _ = stopped.await;
                });
            })?;
        let handle = handle
            .recv()
            .map_err(|_| std::io::Error::other("the outbox thread ended at start"))??;
        Ok(Sender {
            handle,
            commands,
            client,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Sends `post` (on whichever runtime awaits it: the delivery loop
    /// runs on the outbox thread's); its status, or why none came.
    pub async fn post(&self, post: Post) -> Result<reqwest::StatusCode, Failure> {
        let answer = async {
            let r = self
                .client
                .post(&post.url)
                .header("content-type", "application/json")
                .header("idempotency-key", &post.id)
                .header("x-hallcast-timestamp", post.timestamp.to_string())
                .header("x-hallcast-signature", format!("sha256={}", post.signature))
                .body(post.body)
                .send()
                .await?;
            let status = r.status();
            // Read the answer so the connection can be reused.
            let _ = r.bytes().await;
            Ok::<_, reqwest::Error>(status)
        };
        match answer.await {
            Ok(status) => Ok(status),
            Err(e) if e.is_timeout() => Err(Failure::Timeout),
            Err(e) if e.is_connect() => Err(Failure::Connect),
            Err(_) => Err(Failure::Other),
        }
    }

    /// Runs `f` on the commands' threads and waits for it: for what takes
    /// a hall's lock, which a preempted low-priority thread must never
    /// hold while a command waits for it.
    pub async fn on_commands_side<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        self.commands.spawn(async move { f() }).await.ok()
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Lowers this thread's priority (Linux keeps a nice value per thread;
/// threads it starts inherit it). Elsewhere, or refused, it stays as is.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        // On Linux a thread id names the thread alone here.
        let me = Some(rustix::thread::gettid());
        if let Err(e) = rustix::process::setpriority_process(me, NICE) {
            tracing::debug!(error = %e, "the outbox thread keeps the normal priority");
        }
    }
}

/// This thread's nice value.
#[cfg(all(test, target_os = "linux"))]
fn nice() -> i32 {
    rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn the_outbox_thread_runs_at_a_lower_priority_and_hands_hall_work_back() {
        let s = std::sync::Arc::new(Sender::start(Duration::from_secs(1)).unwrap());
        let here = nice();
        let s2 = s.clone();
        let (theirs, back) = s
            .handle
            .spawn(async move {
                let theirs = nice();
                (theirs, s2.on_commands_side(nice).await)
            })
            .await
            .unwrap();
        assert!(theirs >= NICE, "nice {theirs}");
        if here < NICE {
            assert!(here < theirs, "only the outbox thread");
        }
        assert_eq!(back, Some(here), "hall work runs at the commands' priority");
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_connect_failure() {
        let s = Sender::start(Duration::from_secs(2)).unwrap();
        // A port nobody listens on: bound, then freed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let r = s
            .post(Post {
                url: format!("http://127.0.0.1:{port}/hook"),
                id: "m1".into(),
                timestamp: 1,
                signature: "00".into(),
                body: Bytes::from_static(b"{}"),
            })
            .await;
        assert_eq!(r, Err(Failure::Connect));
    }
}
