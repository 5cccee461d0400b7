//! What the benchmarks share: the real server as a separate process.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

/// A running `hallcast` on a fresh data dir under target/ (a real disk, so
/// commits really wait for fsync).
pub struct Server {
    pub child: Child,
    pub base: String,
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the release binary on port 0, pinned to `cpus` with `taskset`
/// when given; waits for its "listening on" line.
///
/// `HALLCAST_BENCH_SERVER` replaces the binary with another command (split
/// on spaces) that takes the same arguments: a reference server, to
/// compare on the same machine at the same moment. `HALLCAST_BENCH_ARGS`
/// adds arguments (split on spaces) to hallcast's: `--store
/// postgres://…` benches a cluster's node on PostgreSQL.
/// The bench server pings every this many seconds (the default is 25), so
/// a bench sees the ping path within its run.
pub const PING_SECONDS: u64 = 5;

pub fn start_server(cpus: Option<&str>) -> Server {
    start_server_in(cpus, bench_dir())
}

/// A fresh directory for a server's config and data (its `data` below):
/// a bench may fill the data before the server starts. It is under
/// target/, on the disk, unless `HALLCAST_BENCH_DIR` names another parent
/// (`/dev/shm` to compare the same run on tmpfs).
pub fn bench_dir() -> tempfile::TempDir {
    let parent = std::env::var_os("HALLCAST_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_TARGET_TMPDIR").into());
    tempfile::Builder::new()
        .prefix("bench-data-")
        .tempdir_in(&parent)
        .unwrap_or_else(|e| panic!("cannot make a bench dir in {}: {e}", parent.display()))
}

/// [`start_server`] on a directory from [`bench_dir`].
pub fn start_server_in(cpus: Option<&str>, dir: tempfile::TempDir) -> Server {
    start_server_with(cpus, dir, |c| c)
}

/// [`start_server_in`] with the bench config changed by `edit` first.
pub fn start_server_with(
    cpus: Option<&str>,
    dir: tempfile::TempDir,
    edit: impl FnOnce(String) -> String,
) -> Server {
    let program: Vec<String> = match std::env::var("HALLCAST_BENCH_SERVER") {
        Ok(p) => p.split_whitespace().map(String::from).collect(),
        Err(_) => vec![env!("CARGO_BIN_EXE_hallcast").to_string()],
    };
    let mut cmd = match cpus {
        Some(cpus) => {
            let mut c = Command::new("taskset");
            c.args(["-c", cpus]).args(&program);
            c
        }
        None => {
            let mut c = Command::new(&program[0]);
            c.args(&program[1..]);
            c
        }
    };
    // The demo hall, with no limit on streams per address: every simulated
    // screen connects from 127.0.0.1 (the contract's default is 5,000).
    let config = dir.path().join("bench.toml");
    let demo = hallcast::demo::CONFIG.replacen(
        "[server]\n",
        &format!(
            "[server.limits]\nstreams_per_ip = 0\n\n[server]\nping_seconds = {PING_SECONDS}\n"
        ),
        1,
    );
    std::fs::write(&config, edit(demo)).expect("write the bench config");
    cmd.args(["--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(
            std::env::var("HALLCAST_BENCH_ARGS")
                .unwrap_or_default()
                .split_whitespace(),
        )
        // `HALLCAST_BENCH_LOG` sets the servers' RUST_LOG (a bench that
        // fails can say why).
        .env(
            "RUST_LOG",
            std::env::var("HALLCAST_BENCH_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = cmd.spawn().expect("start hallcast");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let base = loop {
        let line = lines.next().expect("server output").expect("read");
        if let Some(u) = line.strip_prefix("listening on ") {
            break u.to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let addr = base.trim_start_matches("http://").parse().expect("address");
    Server {
        child,
        base,
        addr,
        _dir: dir,
    }
}

/// A process's resident memory in KiB, from /proc (0 when it is gone).
pub fn rss_kib(pid: impl std::fmt::Display) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}
