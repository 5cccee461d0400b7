//! Test harness: the real `hallcast` binary on port 0 in a fresh data dir,
//! driven over real sockets.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod openapi;
pub mod own;
pub mod proxy;
pub mod receiver;

pub const KIOSK: &str = "demo-kiosk-lobby-1-token";
pub const ADMIN: &str = "demo-admin-token-0000";

/// A window's demo token.
pub fn window_token(id: &str) -> String {
    format!("demo-window-{id}-token")
}

/// A running server.
pub struct Server {
    child: Option<Child>,
    pub base: String,
    pub dir: PathBuf,
    config: Option<PathBuf>,
    /// Everything the server wrote to stderr (its logs).
    pub stderr: Arc<Mutex<String>>,
    _tmp: Option<Arc<tempfile::TempDir>>,
    /// Environment the binary was started with, kept for restarts.
    env: Vec<(String, String)>,
    /// Further arguments (a cluster's `--store`, `--bus`), kept for restarts.
    args: Vec<String>,
    /// The PostgreSQL database of a suite run on PostgreSQL (see
    /// [`Server::spawn_with`]), kept for restarts.
    db: Option<Arc<Db>>,
}

impl Server {
    /// The demo hall in a fresh data dir.
    pub fn start() -> Server {
        let tmp = Arc::new(tempfile::tempdir().expect("temp dir"));
        let dir = tmp.path().join("data");
        let mut s = Server::spawn(&dir, None, &[]);
        s._tmp = Some(tmp);
        s
    }

    /// A config file's halls in a fresh data dir.
    pub fn start_config(toml: &str) -> Server {
        let tmp = Arc::new(tempfile::tempdir().expect("temp dir"));
        let cfg = tmp.path().join("hallcast.toml");
        std::fs::write(&cfg, toml).expect("write config");
        let dir = tmp.path().join("data");
        let mut s = Server::spawn(&dir, Some(&cfg), &[]);
        s._tmp = Some(tmp);
        s
    }

    /// Starts the binary; waits for its "listening on" line.
    pub fn spawn(dir: &Path, config: Option<&Path>, env: &[(&str, &str)]) -> Server {
        Server::spawn_with(dir, config, env, &[])
    }

    /// [`Server::spawn`] with further arguments.
    pub fn spawn_with(
        dir: &Path,
        config: Option<&Path>,
        env: &[(&str, &str)],
        args: &[String],
    ) -> Server {
        Server::spawn_watched(dir, config, env, args, Arc::default())
    }

    /// [`Server::spawn_with`], its stderr into `stderr` from the start: a
    /// test can read the logs of a server that has not started listening
    /// yet (one waiting for its database, say).
    pub fn spawn_watched(
        dir: &Path,
        config: Option<&Path>,
        env: &[(&str, &str)],
        args: &[String],
        stderr: Arc<Mutex<String>>,
    ) -> Server {
        // `HALLCAST_TEST_STORE=postgres` runs a suite's servers on this
        // machine's PostgreSQL, a database each (contract §14: the two
        // stores pass the same tests; tests/run does it for the suites
        // about the store's contents).
        let mut args = args.to_vec();
        let mut db = None;
        if std::env::var("HALLCAST_TEST_STORE").as_deref() == Ok("postgres")
            && !args.iter().any(|a| a == "--store")
        {
            let d = Arc::new(Db::new("suite"));
            args.extend(["--store".to_string(), d.url()]);
            db = Some(d);
        }
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hallcast"));
        cmd.args(["--listen", "127.0.0.1:0", "--data-dir"]).arg(dir);
        cmd.args(&args);
        if let Some(c) = config {
            cmd.arg("--config").arg(c);
        }
        cmd.env("RUST_LOG", "hallcast=debug,warn");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start hallcast");
        {
            let mut err = child.stderr.take().expect("stderr");
            let sink = stderr.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = err.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    sink.lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
        }
        let out = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(out).lines();
            let mut sent = false;
            while let Some(Ok(line)) = lines.next() {
                if !sent {
                    if let Some(url) = line.strip_prefix("listening on ") {
                        let _ = tx.send(url.to_string());
                        sent = true;
                    }
                }
            }
        });
        let base = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(b) => b,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "hallcast did not print 'listening on'; stderr:\n{}",
                    stderr.lock().unwrap()
                );
            }
        };
        Server {
            child: Some(child),
            base,
            dir: dir.to_path_buf(),
            config: config.map(Path::to_path_buf),
            stderr,
            _tmp: None,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            args,
            db,
        }
    }

    /// `kill -9`, then start again on the same data dir (new port).
    pub fn crash_and_restart(&mut self) {
        self.kill9();
        self.respawn();
    }

    /// Starts again on the same data dir, config and environment.
    pub fn respawn(&mut self) {
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let mut next = Server::spawn_with(&self.dir, self.config.as_deref(), &env, &self.args);
        next._tmp = self._tmp.take();
        next.db = self.db.take();
        *self = next;
    }

    /// SIGTERM and restart on the same data dir.
    pub fn stop_and_restart(&mut self) {
        let status = self.terminate();
        assert!(status.success(), "graceful stop exits 0, got {status:?}");
        self.respawn();
    }

    /// Sends SIGKILL and reaps.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends SIGTERM; waits for the exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut c = self.child.take().expect("server running");
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(s) = c.try_wait().expect("wait") {
                return s;
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                panic!("hallcast did not exit within 30 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// `ws://` URL of a path.
    pub fn ws(&self, path: &str) -> String {
        format!("{}{}", self.base.replacen("http://", "ws://", 1), path)
    }

    pub fn logs(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A small HTTP client for the API.
#[derive(Clone)]
pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
}

/// A response: status and parsed JSON (Null for an empty body).
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub json: Value,
    pub text: String,
}

impl Resp {
    /// The contract error code.
    pub fn code(&self) -> &str {
        self.json["error"]["code"].as_str().unwrap_or("")
    }
}

impl Client {
    pub fn new(server: &Server) -> Client {
        Client {
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(64)
                .build()
                .unwrap(),
            base: server.base.clone(),
        }
    }

    pub async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut rb = self.http.request(m, format!("{}{}", self.base, path));
        if let Some(t) = token {
            rb = rb.header("authorization", format!("Bearer {t}"));
        }
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        if let Some(b) = body {
            rb = rb
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let r = rb.send().await.expect("request");
        let status = r.status().as_u16();
        let content_type = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let text = r.text().await.unwrap_or_default();
        openapi::check(method, path, status, &content_type, &text);
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::Null)
        };
        Resp { status, json, text }
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.send("GET", path, None, None, &[]).await
    }

    /// A GET with a token (staff's routes).
    pub async fn get_as(&self, path: &str, token: &str) -> Resp {
        self.send("GET", path, Some(token), None, &[]).await
    }

    pub async fn post(&self, path: &str, token: &str, body: &str) -> Resp {
        self.send("POST", path, Some(token), Some(body), &[]).await
    }

    /// A POST with an Idempotency-Key.
    pub async fn keyed(&self, path: &str, token: &str, body: &str, key: &str) -> Resp {
        self.send(
            "POST",
            path,
            Some(token),
            Some(body),
            &[("idempotency-key", key)],
        )
        .await
    }

    /// Issues a demo ticket; panics unless 201.
    pub async fn issue(&self, service: &str) -> Value {
        self.issue_in("demo", KIOSK, service).await
    }

    /// Issues a ticket of `hall` with `token`; panics unless 201.
    pub async fn issue_in(&self, hall: &str, token: &str, service: &str) -> Value {
        let r = self
            .post(
                &format!("/api/v1/halls/{hall}/tickets"),
                token,
                &format!(r#"{{"service":"{service}"}}"#),
            )
            .await;
        assert_eq!(r.status, 201, "issue: {}", r.text);
        r.json
    }

    /// A window action on the demo hall with that window's token.
    pub async fn window(&self, window: &str, action: &str, body: &str) -> Resp {
        self.post(
            &format!("/api/v1/halls/demo/windows/{window}/{action}"),
            &window_token(window),
            body,
        )
        .await
    }

    /// The floor snapshot.
    pub async fn floor(&self, floor: i32) -> Value {
        let r = self
            .get(&format!("/api/v1/halls/demo/floors/{floor}"))
            .await;
        assert_eq!(r.status, 200);
        r.json
    }
}

/// A WebSocket client for the channels.
pub struct Ws {
    pub inner: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    /// Messages received but not yet taken (arrays are flattened).
    pending: std::collections::VecDeque<Value>,
}

/// How a channel ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    Close(u16, String),
    Eof,
}

impl Ws {
    pub async fn connect(url: &str) -> Ws {
        let (inner, _) = tokio_tungstenite::connect_async(url)
            .await
            .unwrap_or_else(|e| panic!("connect {url}: {e}"));
        Ws {
            inner,
            pending: Default::default(),
        }
    }

    /// The HTTP status a refused upgrade answered with.
    pub async fn refused(url: &str) -> u16 {
        match tokio_tungstenite::connect_async(url).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => r.status().as_u16(),
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("{url} was accepted"),
        }
    }

    /// The next JSON message, within 10 s.
    pub async fn next(&mut self) -> Value {
        match self.next_or_end(Duration::from_secs(10)).await {
            Ok(v) => v,
            Err(end) => panic!("channel ended: {end:?}"),
        }
    }

    /// The next message, or how the channel ended.
    pub async fn next_or_end(&mut self, within: Duration) -> Result<Value, End> {
        use futures_util::StreamExt;
        use tokio_tungstenite::tungstenite::Message;
        loop {
            if let Some(v) = self.pending.pop_front() {
                return Ok(v);
            }
            let frame = tokio::time::timeout(within, self.inner.next())
                .await
                .expect("a message within the timeout");
            match frame {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(&t).expect("JSON text frame");
                    match v {
                        Value::Array(items) => self.pending.extend(items),
                        other => self.pending.push_back(other),
                    }
                }
                Some(Ok(Message::Close(f))) => {
                    return Err(f.map_or(End::Eof, |f| {
                        End::Close(f.code.into(), f.reason.to_string())
                    }))
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return Err(End::Eof),
            }
        }
    }

    /// Takes messages until one satisfies `pred`; returns all taken.
    pub async fn until(&mut self, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
        let mut got = Vec::new();
        loop {
            let v = self.next().await;
            let done = pred(&v);
            got.push(v);
            if done {
                return got;
            }
        }
    }

    /// Nothing arrives within `d`.
    pub async fn silent_for(&mut self, d: Duration) -> bool {
        use futures_util::StreamExt;
        if !self.pending.is_empty() {
            return false;
        }
        tokio::time::timeout(d, self.inner.next()).await.is_err()
    }

    pub async fn send_text(&mut self, s: &str) {
        use futures_util::SinkExt;
        let _ = self
            .inner
            .send(tokio_tungstenite::tungstenite::Message::Text(s.into()))
            .await;
    }

    pub async fn send_binary(&mut self, b: Vec<u8>) {
        use futures_util::SinkExt;
        let _ = self
            .inner
            .send(tokio_tungstenite::tungstenite::Message::Binary(b.into()))
            .await;
    }

    /// Reads until the server closes; returns the close code and reason.
    pub async fn closed(&mut self) -> End {
        loop {
            match self.next_or_end(Duration::from_secs(10)).await {
                Ok(_) => continue,
                Err(end) => return end,
            }
        }
    }
}

impl Ws {
    /// Wraps an already connected stream.
    pub fn from_stream(
        inner: tokio_tungstenite::WebSocketStream<
            tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
        >,
    ) -> Ws {
        Ws {
            inner,
            pending: Default::default(),
        }
    }
}

/// libfaketime, from Debian's `faketime` package (tests/run installs it).
pub const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// A wall clock the server reads through libfaketime: stands still at the
/// time written to its file, and steps when the file changes (the server
/// re-reads it on every clock read). Timers run on the real monotonic
/// clock, so nothing in the server waits for a frozen clock.
pub struct Clock {
    file: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Clock {
    /// A clock standing at `at` (RFC 3339, any offset).
    pub fn at(at: &str) -> Clock {
        assert!(
            Path::new(LIBFAKETIME).exists(),
            "{LIBFAKETIME} is missing: apt-get install faketime (tests/run does)"
        );
        let tmp = tempfile::tempdir().expect("temp dir");
        let c = Clock {
            file: tmp.path().join("faketime"),
            _tmp: tmp,
        };
        c.set(at);
        c
    }

    /// Steps the clock to `at` (RFC 3339).
    pub fn set(&self, at: &str) {
        let t = chrono::DateTime::parse_from_rfc3339(at).expect("RFC 3339 time");
        let utc = t.with_timezone(&chrono::Utc);
        // Written whole and renamed, so the server never reads half a line.
        let tmp = self.file.with_extension("new");
        std::fs::write(&tmp, utc.format("%Y-%m-%d %H:%M:%S\n").to_string()).unwrap();
        std::fs::rename(&tmp, &self.file).unwrap();
    }

    /// The environment that makes the binary read this clock.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("LD_PRELOAD", LIBFAKETIME.to_string()),
            ("FAKETIME_TIMESTAMP_FILE", self.file.display().to_string()),
            ("FAKETIME_NO_CACHE", "1".into()),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1".into()),
            ("TZ", "UTC".into()),
        ]
    }
}

impl Server {
    /// A config (or the demo hall, `None`) in a fresh data dir, on a clock.
    pub fn start_on_clock(toml: Option<&str>, clock: &Clock) -> Server {
        let tmp = Arc::new(tempfile::tempdir().expect("temp dir"));
        let cfg = toml.map(|t| {
            let cfg = tmp.path().join("hallcast.toml");
            std::fs::write(&cfg, t).expect("write config");
            cfg
        });
        let dir = tmp.path().join("data");
        let env = clock.env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut s = Server::spawn(&dir, cfg.as_deref(), &env);
        s._tmp = Some(tmp);
        s.env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        s
    }
}

/// Polls `f` every 50 ms until it returns `Some`, for at most `secs`.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// This machine's PostgreSQL (127.0.0.1:5432, trust auth): the database
/// every test database is made from.
pub const ADMIN_DB: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Runs PostgreSQL's blocking client on a thread of its own: inside a
/// test's async runtime it may not start the runtime it blocks on.
pub fn blocking<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| s.spawn(f).join().expect("a PostgreSQL call panicked"))
}

/// A fresh database on this machine's PostgreSQL, dropped (with its last
/// connections) when this goes.
pub struct Db {
    pub name: String,
}

impl Db {
    pub fn new(tag: &str) -> Db {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!("hallcast_{tag}_{}_{nanos}", std::process::id());
        blocking(|| {
            let mut admin = postgres::Client::connect(ADMIN_DB, postgres::NoTls)
                .expect("this machine's PostgreSQL at 127.0.0.1:5432");
            admin
                .batch_execute(&format!("CREATE DATABASE {name}"))
                .unwrap();
        });
        Db { name }
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.name)
    }

    /// A connection; use it inside [`blocking`] in an async test.
    pub fn client(&self) -> postgres::Client {
        postgres::Client::connect(&self.url(), postgres::NoTls).unwrap()
    }

    /// The first column of the first row of a query.
    pub fn one(&self, sql: &str) -> i64 {
        blocking(|| self.client().query_one(sql, &[]).unwrap().get(0))
    }

    pub fn count(&self, table: &str) -> i64 {
        self.one(&format!("SELECT count(*) FROM {table}"))
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        blocking(|| {
            if let Ok(mut admin) = postgres::Client::connect(ADMIN_DB, postgres::NoTls) {
                let _ = admin.batch_execute(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                ));
            }
        })
    }
}

/// A cluster's shared secret in a file of `dir` (A8), for
/// `--cluster-secret-file`: every node of one cluster is given the same.
pub fn cluster_secret_file(dir: &Path) -> PathBuf {
    let f = dir.join("cluster-secret");
    std::fs::write(&f, "a-cluster-secret-of-at-least-32-characters\n").unwrap();
    f
}

/// Proves a phone to a hall the way a citizen does (A2): asks for a code,
/// reads it from the `verify` message the receiver got, and trades it for
/// a phone token.
pub async fn verify_phone(c: &Client, rx: &receiver::Receiver, hall: &str, phone: &str) -> String {
    let before = rx.got().len();
    let r = c
        .send(
            "POST",
            &format!("/api/v1/halls/{hall}/phone-codes"),
            None,
            Some(&format!(r#"{{"phone":"{phone}"}}"#)),
            &[],
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let code = eventually(10, "the verify message", || async {
        rx.got()
            .into_iter()
            .skip(before)
            .map(|g| g.json())
            .find(|m| m["kind"] == "verify" && m["phone"] == phone)
            .map(|m| m["code"].as_str().unwrap().to_string())
    })
    .await;
    let r = c
        .send(
            "POST",
            &format!("/api/v1/halls/{hall}/phone-codes/verify"),
            None,
            Some(&format!(r#"{{"phone":"{phone}","code":"{code}"}}"#)),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json["phone_token"].as_str().unwrap().to_string()
}
