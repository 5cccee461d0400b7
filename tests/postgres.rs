//! §14's `hallcast migrate` and `hallcast import` on this machine's
//! PostgreSQL (127.0.0.1:5432, trust auth): each test in a database of its
//! own, made from `test` and dropped afterwards.

mod common;

use std::process::Command;

use common::{Client, Db, Server};

/// Runs the binary with `args`: exit code, stdout, stderr.
fn hallcast(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hallcast"))
        .args(args)
        .output()
        .expect("run hallcast");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn migrate_twice_makes_the_schema_once_and_a_newer_schema_is_refused() {
    let db = Db::new("migrate");
    for _ in 0..2 {
        let (code, out, err) = hallcast(&["migrate", "--store", &db.url()]);
        assert_eq!(code, 0, "{out}{err}");
        assert!(out.contains("version 3"), "{out}");
    }
    let mut c = db.client();
    let tables: Vec<String> = c
        .query(
            "SELECT table_name::text FROM information_schema.tables
             WHERE table_schema = 'public' ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut want: Vec<&str> = hallcast::store::postgres::TABLES.to_vec();
    want.push("meta");
    want.sort_unstable();
    assert_eq!(tables, want);
    let v: String = c
        .query_one("SELECT value FROM meta WHERE key = 'schema'", &[])
        .unwrap()
        .get(0);
    assert_eq!(v, "3");
    // Schema 2: every table a hall's state is written to says which
    // version of the hall wrote each row (schema 3 adds `marks`).
    let versioned: i64 = c
        .query_one(
            "SELECT count(*) FROM information_schema.columns
             WHERE table_schema = 'public' AND column_name = 'version'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(versioned, 9);

    // Several nodes migrating at once wait for each other; all succeed.
    let url = db.url();
    let runs: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || hallcast(&["migrate", "--store", &url]).0)
        })
        .collect();
    for r in runs {
        assert_eq!(r.join().unwrap(), 0);
    }

    c.execute("UPDATE meta SET value = '99' WHERE key = 'schema'", &[])
        .unwrap();
    let (code, _, err) = hallcast(&["migrate", "--store", &db.url()]);
    assert_eq!(code, 1);
    assert!(
        err.contains("version 99") && err.contains("upgrade hallcast"),
        "{err}"
    );
}

#[test]
fn a_store_that_is_not_there_or_not_postgres_is_named_in_the_error() {
    let (code, _, err) = hallcast(&["migrate", "--store", "/var/lib/hallcast"]);
    assert_eq!(code, 1);
    assert!(err.contains("must be a postgres:// URL"), "{err}");

    let (code, _, err) = hallcast(&[
        "migrate",
        "--store",
        "postgres://postgres:secret-pw@127.0.0.1:1/test",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot connect to PostgreSQL"), "{err}");
    assert!(!err.contains("secret-pw"), "no password in messages: {err}");

    let (code, _, err) = hallcast(&[
        "migrate",
        "--store",
        "postgres://postgres@127.0.0.1:5432/hallcast_no_such_database",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("does not exist"), "{err}");
}

#[test]
fn import_copies_a_nodes_data_dir_and_refuses_a_store_that_has_data() {
    // A node's day so far, on SQLite; the server is kept (it owns the
    // data dir) but stopped.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (mut s, tokens) = rt.block_on(async {
        let s = Server::start();
        let c = Client::new(&s);
        let mut tokens = Vec::new();
        for _ in 0..3 {
            let t = c.issue("business").await;
            tokens.push(t["token"].as_str().unwrap().to_string());
        }
        let r = c.window("3-01", "call", "{}").await;
        assert_eq!(r.status, 200, "{}", r.text);
        (s, tokens)
    });
    drop(rt);
    let dir = s.dir.clone();
    assert!(s.terminate().success());

    let db = Db::new("import");
    let dir_arg = dir.to_string_lossy().into_owned();
    let (code, out, err) = hallcast(&["import", "--from", &dir_arg, "--store", &db.url()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("imported"), "{out}");

    // Every table of the SQLite store is imported (but its own meta).
    let lite = rusqlite::Connection::open(dir.join("hallcast.db")).unwrap();
    let mut lite_tables: Vec<String> = lite
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name != 'meta'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    lite_tables.sort_unstable();
    let mut imported: Vec<&str> = hallcast::store::postgres::TABLES.to_vec();
    imported.sort_unstable();
    assert_eq!(lite_tables, imported);

    // Every table's rows, the same in both.
    for t in hallcast::store::postgres::TABLES {
        let n: i64 = lite
            .query_row(&format!("SELECT count(*) FROM {t}"), [], |r| r.get(0))
            .unwrap();
        assert_eq!(db.count(t), n, "{t}");
    }
    assert_eq!(db.count("tickets"), 3);
    assert!(db.count("events") > 0, "events, so ?after keeps working");
    let mut pg = db.client();
    let row = pg
        .query_one(
            "SELECT number, status, \"window\" FROM tickets WHERE token = $1",
            &[&tokens[0]],
        )
        .unwrap();
    let (number, status, window): (String, String, Option<String>) =
        (row.get(0), row.get(1), row.get(2));
    assert_eq!(
        (status.as_str(), window.as_deref()),
        ("called", Some("3-01"))
    );
    let lite_number: String = lite
        .query_row(
            "SELECT number FROM tickets WHERE token = ?1",
            [&tokens[0]],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(number, lite_number);
    let seq = |sql: &str| -> i64 { lite.query_row(sql, [], |r| r.get(0)).unwrap() };
    let pg_seq: i64 = pg
        .query_one("SELECT max(hall_seq) FROM events", &[])
        .unwrap()
        .get(0);
    assert_eq!(pg_seq, seq("SELECT max(hall_seq) FROM events"));

    // A second import finds data and changes nothing.
    let (code, _, err) = hallcast(&["import", "--from", &dir_arg, "--store", &db.url()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("already holds hallcast data"), "{err}");
    assert_eq!(db.count("tickets"), 3);

    // A directory that is no data dir.
    let empty = tempfile::tempdir().unwrap();
    let other = Db::new("import_empty");
    let (code, _, err) = hallcast(&[
        "import",
        "--from",
        &empty.path().to_string_lossy(),
        "--store",
        &other.url(),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("no hallcast.db"), "{err}");
}
