//! Broken config files are refused at start: exit code 2, and a message
//! naming the file, the entry and the rule.

use std::process::Command;

const BASE: &str = r#"
[server]
listen = "127.0.0.1:0"

[[halls]]
id = "laoshan"
name = "崂山区政务服务大厅"
timezone = "Asia/Shanghai"
admin_token = "laoshan-admin-token-1"

  [[halls.floors]]
  number = 3
  name = "3F"
  announce = "voice"
  languages = ["zh", "en"]

  [[halls.services]]
  id = "business"
  name = "企业开办"
  prefix = "A"
  floor = 3
  zone = "A"

  [[halls.services]]
  id = "tax"
  name = "税务"
  prefix = "B"
  floor = 3
  zone = "B"

  [[halls.windows]]
  id = "3-01"
  label = "1"
  floor = 3
  zone = "A"
  services = ["business", "tax"]
  token = "laoshan-window-3-01-tok"

  [[halls.kiosks]]
  id = "lobby-1"
  token = "laoshan-kiosk-lobby-1"
"#;

fn run_with(config: &str) -> (Option<i32>, String, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("broken.toml");
    std::fs::write(&path, config).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hallcast"))
        .arg("--config")
        .arg(&path)
        .arg("--data-dir")
        .arg(tmp.path().join("data"))
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        tmp,
    )
}

#[test]
fn broken_configs_exit_2_naming_file_entry_and_rule() {
    // (replace this, with that, expect these words in the message)
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "floor = 3\n  zone = \"A\"\n  services",
            "floor = 9\n  zone = \"A\"\n  services",
            &["windows[0]", "floor 9"],
        ),
        (
            "prefix = \"B\"",
            "prefix = \"A\"",
            &["services[1]", "prefix 'A'", "unique"],
        ),
        (
            "prefix = \"B\"",
            "prefix = \"b\"",
            &["services[1]", "capital"],
        ),
        (
            "prefix = \"B\"",
            "prefix = \"AB\"",
            &["services[1]", "overlaps"],
        ),
        (
            "services = [\"business\", \"tax\"]",
            "services = [\"business\", \"visa\"]",
            &["windows[0]", "unknown service 'visa'"],
        ),
        (
            "services = [\"business\", \"tax\"]",
            "services = [\"business\"]",
            &["services[1]", "no window serves"],
        ),
        (
            "token = \"laoshan-window-3-01-tok\"",
            "token = \"short\"",
            &["windows[0]", "at least 16"],
        ),
        (
            "admin_token = \"laoshan-admin-token-1\"",
            "admin_token = \"short\"",
            &["halls[0]", "admin_token", "16"],
        ),
        (
            "timezone = \"Asia/Shanghai\"",
            "timezone = \"Mars/Olympus\"",
            &["halls[0]", "timezone 'Mars/Olympus'"],
        ),
        (
            "id = \"laoshan\"",
            "id = \"Lao Shan\"",
            &["halls[0]", "[a-z0-9-]"],
        ),
        (
            "announce = \"voice\"",
            "announce = \"loud\"",
            &["floors[0]", "voice", "silent"],
        ),
        (
            "languages = [\"zh\", \"en\"]",
            "languages = [\"zh\", \"fr\"]",
            &["floors[0]", "'fr'", "\"zh\", \"yue\", \"en\""],
        ),
        (
            "id = \"3-01\"",
            "id = \"window number one!\"",
            &["windows[0]", "[A-Za-z0-9-]"],
        ),
        (
            "token = \"laoshan-kiosk-lobby-1\"",
            "token = \"laoshan-window-3-01-tok\"",
            &["kiosks[0]", "already used"],
        ),
        (
            "listen = \"127.0.0.1:0\"",
            "listen = \"everywhere\"",
            &["[server] listen"],
        ),
        (
            "listen = \"127.0.0.1:0\"",
            "ping_seconds = 99",
            &["[server] ping_seconds", "between 1 and 30"],
        ),
        (
            "name = \"3F\"",
            "name = \"3F\"\n  colour = \"red\"",
            &["unknown field", "colour"],
        ),
        (
            "languages = [\"zh\", \"en\"]",
            "languages = [\"yue\", \"zh\", \"yue\"]",
            &["floors[0]", "'yue' is listed twice"],
        ),
        ("[[halls]]", "[[halls]\n", &["not valid"]),
        (
            "  [[halls.kiosks]]",
            "  [[halls.zones]]\n  floor = 9\n  id = \"A\"\n  name = \"A区\"\n\n  [[halls.kiosks]]",
            &["zones[0]", "floor 9"],
        ),
        (
            "  [[halls.kiosks]]",
            "  [[halls.zones]]\n  floor = 3\n  id = \"A\"\n  name = \"A区\"\n\n  [[halls.zones]]\n  floor = 3\n  id = \"A\"\n  name = \"又一个\"\n\n  [[halls.kiosks]]",
            &["zones[1]", "listed twice"],
        ),
        (
            "  [[halls.kiosks]]",
            "  [[halls.zones]]\n  floor = 3\n  id = \"A\"\n  name = \"A区\"\n  how = \"left\"\n\n  [[halls.kiosks]]",
            &["unknown field", "how"],
        ),
    ];
    for (i, (from, to, words)) in cases.iter().enumerate() {
        assert!(BASE.contains(from), "case {i}: base lacks {from:?}");
        let config = BASE.replacen(from, to, 1);
        let (code, stderr, _tmp) = run_with(&config);
        assert_eq!(code, Some(2), "case {i} exits 2; stderr: {stderr}");
        assert!(
            stderr.contains("broken.toml"),
            "case {i} names the file: {stderr}"
        );
        for w in *words {
            assert!(
                stderr.contains(w),
                "case {i}: message lacks {w:?}: {stderr}"
            );
        }
    }
}

#[test]
fn the_base_config_is_valid_and_a_missing_file_is_named() {
    let (code, stderr, _tmp) = run_with("this is = not toml [");
    assert_eq!(code, Some(2), "{stderr}");
    let out = Command::new(env!("CARGO_BIN_EXE_hallcast"))
        .args(["--config", "/nonexistent/hallcast.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/hallcast.toml"));
    // The base parses: a config test that could not fail would prove nothing.
    hallcast::config::parse("base.toml", BASE).expect("base config is valid");
}

#[test]
fn the_demo_config_is_valid() {
    let c = hallcast::config::parse("demo", hallcast::demo::CONFIG).unwrap();
    let demo = &c.halls[0];
    assert_eq!(demo.floors.len(), 7);
    let mut zones: Vec<&str> = demo.services.iter().map(|s| s.zone.as_str()).collect();
    zones.sort();
    zones.dedup();
    assert_eq!(zones, ["A", "B", "C", "D", "E", "F", "J"]);
    assert!(demo.services.iter().any(|s| s.name == "证照领取"));
    // Every zone a service or window is in has a guide.
    for (floor, zone) in demo
        .services
        .iter()
        .map(|s| (s.floor, &s.zone))
        .chain(demo.windows.iter().map(|w| (w.floor, &w.zone)))
    {
        let z = demo
            .zone(floor, zone)
            .unwrap_or_else(|| panic!("{floor}F {zone}"));
        assert!(z.where_.is_some(), "{floor}F {zone} says how to find it");
    }
}
