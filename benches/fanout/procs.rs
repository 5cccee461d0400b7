//! Subscribers held in child processes of the generator (`--procs`).
//!
//! This machine lets a process open about 19,900 sockets, so 59,700
//! subscribers take three generators. Each child is this same binary run
//! with `--child FROM..TO`: it connects its subscribers (subscriber `k` of
//! the run on server `k % servers`, as in one process), says `ready`,
//! and on `collect` (its stdin) waits for the deliveries to settle and
//! prints what it saw, receipts stamped on the wall clock ([`wall_ns`]) so
//! that the parent can set them against its calls.
//!
//! In the failover scenario a child also puts back every subscriber whose
//! socket ended: with `?after` its last seq, on the next server that
//! answers, as a screen's reconnect loop does.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Lines, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::*;

/// The child's side: runs until the parent has what it saw.
pub async fn child(o: Opts) {
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let (from, to) = o.child.expect("--child FROM..TO");
    let f = fleet(&o.addrs, &o, from, to - from, None).await;
    settle(&f).await;
    for s in f.seen().iter_mut() {
        s.messages = 0;
    }
    f.shared.receipts.lock().unwrap().clear();
    let own0 = cpu_seconds("self");
    // (subscribers moved, wall_ns of the last move)
    let moved = Arc::new(Mutex::new((0usize, 0u64)));
    if o.scenario == "failover" {
        tokio::spawn(rejoin(
            o.addrs.clone(),
            from,
            o.floor,
            f.shared.clone(),
            f.joined.clone(),
            moved.clone(),
        ));
    }
    say("ready");
    tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        while std::io::stdin().read_line(&mut line).unwrap_or(0) > 0 {
            if line.trim() == "collect" {
                return;
            }
            line.clear();
        }
    })
    .await
    .unwrap();
    settle(&f).await;
    let g = Gathered::of(&f);
    let (moved, moved_by) = *moved.lock().unwrap();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    writeln!(
        out,
        "summary {} {} {} {} {} {}",
        g.messages,
        g.gaps,
        g.ended,
        cpu_seconds("self") - own0,
        moved,
        moved_by
    )
    .unwrap();
    for (i, n, at) in &g.receipts {
        writeln!(out, "{} {n} {at}", from + *i as usize).unwrap();
    }
    writeln!(out, "end").unwrap();
    out.flush().unwrap();
    drop(out);
    f.stop();
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").unwrap();
    out.flush().unwrap();
}

/// Every 50 ms: subscribers whose socket ended go to the next server
/// after theirs that takes them, resuming after the last seq they had.
async fn rejoin(
    addrs: Vec<SocketAddr>,
    from: usize,
    floor: i32,
    shared: Arc<reader::Shared>,
    joined: std::sync::mpsc::Sender<reader::Joined>,
    moved: Arc<Mutex<(usize, u64)>>,
) {
    let pending = Arc::new(Mutex::new(HashSet::<usize>::new()));
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let ended: Vec<(usize, u64)> = {
            let seen = shared.seen.lock().unwrap();
            let mut p = pending.lock().unwrap();
            // Back with the reader: no longer pending.
            p.retain(|&i| seen[i].ended);
            seen.iter()
                .enumerate()
                .filter(|(i, s)| s.ended && !s.closed_slow && p.insert(*i))
                .map(|(i, s)| (i, s.last_seq))
                .collect()
        };
        for (i, last) in ended {
            let (addrs, joined, moved, pending) = (
                addrs.clone(),
                joined.clone(),
                moved.clone(),
                pending.clone(),
            );
            tokio::spawn(async move {
                let k = from + i;
                let path = format!("/ws/v1/halls/demo/floors/{floor}?after={last}");
                // As a load balancer would: the others in turn, the first
                // of them by subscriber (a dead node's subscribers spread
                // evenly), its own node last.
                let n = addrs.len();
                let others = n.saturating_sub(1).max(1);
                let first = (k / n) % others;
                let steps = (0..others).map(|j| 1 + (first + j) % others).chain([n]);
                for step in steps {
                    if let Some(mut j) = try_join(addrs[(k + step) % n], k, &path).await {
                        j.index = i;
                        let mut m = moved.lock().unwrap();
                        m.0 += 1;
                        m.1 = m.1.max(wall_ns(Instant::now()));
                        let _ = joined.send(j);
                        return;
                    }
                }
                // Nobody took it: the next round tries again.
                pending.lock().unwrap().remove(&i);
            });
        }
    }
}

/// The parent's side: the children, each with its share of subscribers.
pub struct Kids(Vec<Kid>);

struct Kid {
    child: Child,
    from: usize,
    out: Lines<BufReader<ChildStdout>>,
    stdin: ChildStdin,
}

impl Kids {
    /// Starts `o.procs` children over `addrs` and waits until every one
    /// has its subscribers connected and settled (blocking).
    pub fn spawn(o: &Opts, addrs: &[SocketAddr]) -> Kids {
        let exe = std::env::current_exe().expect("the generator's own path");
        let list: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
        let p = o.procs.max(1);
        let mut kids: Vec<Kid> = (0..p)
            .map(|k| {
                let (from, to) = (k * o.subs / p, (k + 1) * o.subs / p);
                let mut cmd = Command::new(&exe);
                cmd.args(["--child", &format!("{from}..{to}")])
                    .args(["--addrs", &list.join(",")])
                    .args(["--floor", &o.floor.to_string()])
                    .args(["--scenario", &o.scenario])
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::inherit());
                if o.spin {
                    cmd.arg("--spin");
                }
                let mut child = cmd.spawn().expect("start a generator child");
                let out = BufReader::new(child.stdout.take().unwrap()).lines();
                let stdin = child.stdin.take().unwrap();
                Kid {
                    child,
                    from,
                    out,
                    stdin,
                }
            })
            .collect();
        for kid in &mut kids {
            let line = kid.out.next().expect("a child's output").unwrap();
            assert_eq!(line, "ready", "child from {} did not start", kid.from);
        }
        Kids(kids)
    }

    /// Asks every child for what it saw, once the calls are made
    /// (blocking); the children end.
    pub fn gather(mut self) -> Gathered {
        for kid in &mut self.0 {
            writeln!(kid.stdin, "collect").unwrap();
            kid.stdin.flush().unwrap();
        }
        let mut g = Gathered::default();
        for kid in &mut self.0 {
            let summary = kid.out.next().expect("a child's summary").unwrap();
            let f: Vec<&str> = summary.split_whitespace().collect();
            assert_eq!(f.first(), Some(&"summary"), "{summary}");
            g.messages += f[1].parse::<u64>().unwrap();
            g.gaps += f[2].parse::<u64>().unwrap();
            g.ended += f[3].parse::<usize>().unwrap();
            g.own_cpu += f[4].parse::<f64>().unwrap();
            g.moved += f[5].parse::<usize>().unwrap();
            g.moved_by = g.moved_by.max(f[6].parse().unwrap());
            for line in kid.out.by_ref() {
                let line = line.unwrap();
                if line == "end" {
                    break;
                }
                let mut r = line.split(' ').map(|v| v.parse::<u64>().unwrap());
                let (i, n, at) = (r.next().unwrap(), r.next().unwrap(), r.next().unwrap());
                g.receipts.push((i as u32, n as u32, at));
            }
        }
        for kid in &mut self.0 {
            let _ = kid.child.wait();
        }
        g
    }
}

/// The latency and failover scenarios with the subscribers in children.
pub async fn run(o: &Opts, servers: &[Server], http: &reqwest::Client) {
    let t0 = Instant::now();
    let phase = |name: &str| eprintln!("[{:6.1} s] {name}", t0.elapsed().as_secs_f64());
    let addrs: Vec<SocketAddr> = servers.iter().map(|s| s.addr).collect();
    let kids = tokio::task::block_in_place(|| Kids::spawn(o, &addrs));
    phase("subscribers connected and settled");
    for s in servers {
        println!(
            "server {} RSS {} KiB",
            s.addr,
            common::rss_kib(server_pid(s))
        );
    }
    let failover = o.scenario == "failover";
    // The killed node is the last; the CPU is of the others.
    let counted = &servers[..servers.len() - usize::from(failover)];
    let cpu0 = servers_cpu(counted);
    let victim = failover.then(|| servers.last().unwrap());
    let (calls, published, elapsed, killed) =
        publish_phase(o, &servers[0], http, true, victim).await;
    phase("published");
    let server_cpu = servers_cpu(counted) - cpu0;
    let g = tokio::task::block_in_place(|| kids.gather());
    phase("gathered");
    let published = published.lock().unwrap().clone();
    let c = collect(&g, &published, &calls, &[], o.subs, servers.len());
    report(
        &o.scenario,
        o,
        &Report {
            deliveries: g.messages,
            elapsed,
            latency: c.latency,
            to_last: c.to_last,
            nodes: if failover { Vec::new() } else { c.nodes },
            lost: c.lost,
            gaps: g.gaps,
            server_cpu,
            own_cpu: g.own_cpu,
            slow_closed: 0,
        },
    );
    println!(
        "calls published: {}; sockets ended and not back: {}",
        calls.len(),
        g.ended
    );
    if let Some(killed) = killed {
        println!(
            "failover: node {} killed (SIGKILL) after call {} of {}; {} subscribers reconnected to the other nodes with ?after, the last {:.2} s after the kill; lost {}, seq gaps {}",
            servers.len() - 1,
            calls.len() / 2,
            calls.len(),
            g.moved,
            g.moved_by.saturating_sub(killed) as f64 / 1e9,
            c.lost,
            g.gaps
        );
        for s in &servers[..servers.len() - 1] {
            println!(
                "server {} RSS {} KiB after the failover",
                s.addr,
                common::rss_kib(server_pid(s))
            );
        }
    }
}
