//! Replays the committed corpus of every fuzz target on the stable
//! toolchain, without libFuzzer: each file must pass its target's checks.
//! Run by the test command; `cargo fuzz run <target>` grows the corpus.

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a corpus entry").path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{target} has a corpus");
    for f in &files {
        let data = std::fs::read(f).expect("read a corpus file");
        let outcome = std::panic::catch_unwind(|| run(&data));
        assert!(outcome.is_ok(), "{target}: {} fails", f.display());
    }
    eprintln!("{target}: {} inputs replayed", files.len());
}

#[test]
fn config_corpus() {
    replay("config", hallcast_fuzz::config);
}

#[test]
fn request_body_corpus() {
    replay("request_body", hallcast_fuzz::request_body);
}

#[test]
fn ws_frames_corpus() {
    replay("ws_frames", hallcast_fuzz::ws_frames);
}
