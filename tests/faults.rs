//! A store that fails: a commit refused by a full disk answers 503 and
//! changes nothing; once there is room again the server reloads its state
//! from the store and serves, without a restart, with nothing lost and
//! every seq gapless.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{eventually, Client, Server, Ws, KIOSK};

/// A small tmpfs of our own (the tests run as root, as CI does), so the
/// disk can really fill up; unmounted when dropped, also on a failure.
struct SmallDisk {
    at: PathBuf,
    _tmp: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(mib: u32) -> SmallDisk {
        let tmp = tempfile::tempdir().unwrap();
        let at = tmp.path().join("disk");
        std::fs::create_dir(&at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(&at)
            .status()
            .expect("run mount");
        assert!(
            ok.success(),
            "mounting a tmpfs failed: this test needs root (tests/run runs as root, as CI does)"
        );
        SmallDisk { at, _tmp: tmp }
    }

    /// Fills every free byte with a file of its own.
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let path = self.at.join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let block = vec![0u8; 64 * 1024];
        while f.write_all(&block).is_ok() {}
        let small = [0u8; 512];
        while f.write_all(&small).is_ok() {}
        let _ = f.flush();
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.at).status();
    }
}

async fn readyz(c: &Client) -> u16 {
    c.get("/readyz").await.status
}

fn data_of(disk: &Path) -> PathBuf {
    disk.join("data")
}

#[tokio::test]
async fn a_full_disk_refuses_commands_then_the_server_reloads_and_serves_again() {
    let disk = SmallDisk::mount(16);
    let dir = data_of(&disk.at);
    let s = Server::spawn(&dir, None, &[]);
    let c = Client::new(&s);
    let mut screen = Ws::connect(&s.ws("/ws/v1/halls/demo/floors/3")).await;
    let snap = screen.next().await;
    let mut seq = snap["seq"].as_u64().unwrap();
    let first = c.issue("business").await;
    assert_eq!(first["number"], "A001");

    let filler = disk.fill();
    let r = c
        .post(
            "/api/v1/halls/demo/tickets",
            KIOSK,
            r#"{"service":"business"}"#,
        )
        .await;
    assert_eq!((r.status, r.code()), (503, "unavailable"), "{}", r.text);
    assert_eq!(
        readyz(&c).await,
        503,
        "not ready while the store cannot commit"
    );
    // Refused meanwhile, and nothing of it shows anywhere.
    let r = c
        .post(
            "/api/v1/halls/demo/tickets",
            KIOSK,
            r#"{"service":"business"}"#,
        )
        .await;
    assert_eq!(r.status, 503);

    std::fs::remove_file(filler).unwrap();
    eventually(10, "ready again", || async {
        (readyz(&c).await == 200).then_some(())
    })
    .await;
    // The refused A002s never happened: this is A002, and A001 is intact.
    let next = c.issue("business").await;
    assert_eq!(
        (next["number"].as_str(), next["ahead"].as_u64()),
        (Some("A002"), Some(1))
    );
    let t = c
        .get(&format!(
            "/api/v1/tickets/{}",
            first["token"].as_str().unwrap()
        ))
        .await;
    assert_eq!(t.json["status"], "waiting");
    let r = c.window("3-01", "call", "{}").await;
    assert_eq!(r.json["ticket"]["number"], "A001");

    // The screen that stayed connected saw every committed event, gapless.
    let got = screen
        .until(|m| m["type"] == "called" && m["number"] == "A001")
        .await;
    for m in &got {
        let s = m["seq"].as_u64().unwrap();
        assert_eq!(s, seq + 1, "gapless: {got:?}");
        seq = s;
    }
    // And a restart finds exactly that.
    drop(screen);
    let seq = c.floor(3).await["seq"].as_u64();
    let mut s = s;
    s.stop_and_restart();
    let c = Client::new(&s);
    assert_eq!(c.floor(3).await["seq"].as_u64(), seq);
    assert_eq!(c.issue("business").await["number"], "A003");
    drop(s);
}

/// A7: with the disk full, a delivery whose outcome cannot be recorded is
/// not tried again before its backoff (no tight loop of POSTs or of log
/// lines), `/readyz` says the store refuses writes, and once there is
/// room again every message is delivered and recorded.
#[tokio::test]
async fn a_full_disk_does_not_make_the_outbox_send_in_a_loop_and_readyz_says_so() {
    use common::receiver::{Mode, Receiver};
    let disk = SmallDisk::mount(16);
    let rx = Receiver::start(Mode::Fail500).await;
    let cfg = disk.at.join("hallcast.toml");
    std::fs::write(
        &cfg,
        hallcast::demo::CONFIG.replacen(
            "  [[halls.floors]]",
            &format!(
                "  [halls.notify]\n  webhook_url = \"{}\"\n  secret = \"a-test-secret-of-32-characters!!\"\n  remind_ahead = 0\n\n  [[halls.floors]]",
                rx.url
            ),
            1,
        ),
    )
    .unwrap();
    let s = Server::spawn(&data_of(&disk.at), Some(&cfg), &[]);
    let c = Client::new(&s);
    for i in 0..5 {
        let r = c
            .post(
                "/api/v1/halls/demo/tickets",
                KIOSK,
                &format!(r#"{{"service":"business","notify":{{"phone":"1381234567{i}"}}}}"#),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    // Each tried once, refused by the receiver: pending, with a backoff.
    eventually(10, "five first tries", || async {
        (rx.got().len() >= 5).then_some(())
    })
    .await;
    let filler = disk.fill();
    *rx.mode.lock().unwrap() = Mode::Ok;
    let before = rx.got().len();
    eventually(10, "not ready while the store refuses writes", || async {
        (readyz(&c).await == 503).then_some(())
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_secs(8)).await;
    let posts = rx.got().len() - before;
    // Each message at most once per backoff (about 2, then 4 s): a few
    // tries each, never thousands.
    assert!(posts <= 25, "{posts} POSTs in about 10 s for 5 messages");
    // The server logs at debug here: count the warnings a hall's people see.
    let warnings = s
        .logs()
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("recording outbox deliveries failed"))
        .count();
    assert!(warnings <= 2, "{warnings} warnings");
    assert_eq!(readyz(&c).await, 503, "still full");

    std::fs::remove_file(filler).unwrap();
    eventually(10, "ready again without a command", || async {
        (readyz(&c).await == 200).then_some(())
    })
    .await;
    eventually(30, "all five delivered and recorded", || async {
        let r = c
            .get_as("/api/v1/halls/demo/outbox?status=delivered", common::ADMIN)
            .await;
        (r.json.as_array().map_or(0, |a| a.len()) == 5).then_some(())
    })
    .await;
    let ids: std::collections::HashSet<String> = rx
        .got()
        .iter()
        .map(|g| g.json()["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 5);
}
