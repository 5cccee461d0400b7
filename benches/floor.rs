//! The kernel's floor for fan-out on this machine, with no server at all:
//! one thread pinned to core 0 writes one prepared WebSocket frame to each
//! of N loopback sockets (non-blocking, one `write` each, the server's
//! socket settings), and the fan-out generator's reader (`fanout/reader.rs`)
//! pinned to core 1 reads them. Whatever a server that makes one write per
//! subscriber per call does, it cannot beat this; the difference between
//! this and `fanout` is the server's own cost.
//!
//!     cargo bench --bench floor -- --subs 9900 --passes 30 --size 700 [--spin]
//!
//! Reports the writer's time per pass (≈ its CPU: it never waits) and the
//! time until the last socket has each pass.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use socket2::{Domain, Socket, Type};

#[path = "fanout/reader.rs"]
mod reader;
use reader::{Joined, Seen, Shared};

fn pin_to(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; the calls only read
    // and write that set and this thread's affinity.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            eprintln!("cannot pin to cpu {cpu}; running unpinned");
        }
    }
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(default)
}

/// A listener with hallcast's socket settings (64 KiB send buffer,
/// TCP_NODELAY), inherited by accepted sockets.
fn listener() -> TcpListener {
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    s.set_reuse_address(true).unwrap();
    s.set_send_buffer_size(hallcast::server::SEND_BUFFER as usize)
        .unwrap();
    s.set_tcp_nodelay(true).unwrap();
    s.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())
        .unwrap();
    s.listen(4096).unwrap();
    s.into()
}

/// Client and server ends of `n` connections; clients bind rotating
/// 127.0.0.x sources like the fan-out generator.
fn pairs(n: usize) -> (Vec<TcpStream>, Vec<TcpStream>) {
    let l = listener();
    let addr = l.local_addr().unwrap();
    let (mut clients, mut servers) = (Vec::new(), Vec::new());
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        for &i in chunk {
            let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
            let src = Ipv4Addr::new(127, 0, 0, 2 + (i % 200) as u8);
            s.bind(&SocketAddr::from((src, 0)).into()).unwrap();
            s.connect(&addr.into()).unwrap();
            clients.push(TcpStream::from(s));
        }
        for _ in chunk {
            let (s, _) = l.accept().unwrap();
            s.set_nonblocking(true).unwrap();
            servers.push(s);
        }
    }
    (clients, servers)
}

fn main() {
    let (subs, passes, size) = (
        arg("--subs", 10_000),
        arg("--passes", 30),
        arg("--size", 700),
    );
    let spin = std::env::args().any(|a| a == "--spin");
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let (clients, mut servers) = pairs(subs);
    // One unmasked text frame per pass, as a server sends it; the reader
    // records each pass as a call of that number.
    let messages: Vec<Vec<u8>> = (0..passes)
        .map(|pass| {
            let text = format!(
                "{{\"type\":\"called\",\"seq\":{},\"number\":\"A{pass}\",\"pad\":\"{}\"}}",
                pass + 1,
                "x".repeat(size.saturating_sub(60))
            );
            hallcast::hub::frames::text_frames(&[hallcast::hub::Payload::from(text)]).to_vec()
        })
        .collect();
    let shared = Arc::new(Shared::default());
    *shared.seen.lock().unwrap() = vec![Seen::default(); subs];
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = std::sync::mpsc::channel();
    for (index, socket) in clients.into_iter().enumerate() {
        tx.send(Joined {
            index,
            socket,
            early: Vec::new(),
        })
        .unwrap();
    }
    let reader = {
        let (shared, stop) = (shared.clone(), stop.clone());
        std::thread::spawn(move || {
            pin_to(1);
            let never = Arc::new(AtomicBool::new(false));
            reader::run(rx, shared, never, |_| false, stop, spin)
        })
    };
    pin_to(0);
    std::thread::sleep(Duration::from_millis(500));
    let mut write_time = Histogram::<u64>::new(3).unwrap();
    let mut starts = Vec::new();
    let begin = Instant::now();
    for (pass, message) in messages.iter().enumerate() {
        sleep_until(begin + Duration::from_millis(500) * pass as u32);
        let t0 = Instant::now();
        starts.push(t0);
        for s in servers.iter_mut() {
            // Fits: 64 KiB of send buffer, read within milliseconds.
            s.write_all(message).unwrap();
        }
        write_time.record(t0.elapsed().as_micros() as u64).unwrap();
    }
    std::thread::sleep(Duration::from_secs(1));
    let mut last: Vec<Option<Instant>> = vec![None; passes];
    let mut got = vec![0usize; passes];
    for &(_, pass, at) in shared.receipts.lock().unwrap().iter() {
        let pass = pass as usize;
        got[pass] += 1;
        last[pass] = last[pass].max(Some(at));
    }
    assert!(
        got.iter().all(|&n| n == subs),
        "every socket got every pass"
    );
    let mut to_last = Histogram::<u64>::new(3).unwrap();
    for (pass, at) in last.iter().enumerate() {
        to_last
            .record(at.unwrap().duration_since(starts[pass]).as_micros() as u64)
            .unwrap();
    }
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    println!("== floor: {subs} loopback sockets, {size}-byte writes, {passes} passes");
    println!(
        "writer per pass ms: p50 {:.2}  p99 {:.2} = {:.2} µs per write",
        ms(&write_time, 0.5),
        ms(&write_time, 0.99),
        ms(&write_time, 0.5) * 1000.0 / subs as f64
    );
    println!(
        "time to last socket ms: p50 {:.2}  p99 {:.2}",
        ms(&to_last, 0.5),
        ms(&to_last, 0.99)
    );
    stop.store(true, Ordering::Relaxed);
    let _ = reader.join();
    drop(servers);
}

/// Sleeps until `t` (not at all if it has passed).
fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        std::thread::sleep(t - now);
    }
}
