//! Spoken announcements (contract §6): the WAV's format, timing, loudness,
//! determinism, language order, caching; and the HTTP side.

mod common;

use std::sync::Arc;

use common::{Client, Server, Ws};
use hallcast::announcer::clips::{ClipBank, OUTPUT_RATE};
use hallcast::announcer::mix;
use hallcast::announcer::Announcer;
use hallcast::queue::Language;

/// A parsed PCM WAV.
struct Wav {
    rate: u32,
    channels: u16,
    bits: u16,
    samples: Vec<i16>,
}

fn parse_wav(b: &[u8]) -> Wav {
    assert_eq!(&b[0..4], b"RIFF");
    assert_eq!(&b[8..12], b"WAVE");
    assert_eq!(
        u32::from_le_bytes(b[4..8].try_into().unwrap()) as usize,
        b.len() - 8
    );
    let mut i = 12;
    let (mut rate, mut channels, mut bits, mut samples) = (0, 0, 0, Vec::new());
    while i + 8 <= b.len() {
        let id = &b[i..i + 4];
        let len = u32::from_le_bytes(b[i + 4..i + 8].try_into().unwrap()) as usize;
        let body = &b[i + 8..i + 8 + len];
        if id == b"fmt " {
            assert_eq!(u16::from_le_bytes([body[0], body[1]]), 1, "PCM");
            channels = u16::from_le_bytes([body[2], body[3]]);
            rate = u32::from_le_bytes(body[4..8].try_into().unwrap());
            bits = u16::from_le_bytes([body[14], body[15]]);
        } else if id == b"data" {
            samples = body
                .chunks(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]]))
                .collect();
        }
        i += 8 + len;
    }
    Wav {
        rate,
        channels,
        bits,
        samples,
    }
}

fn announcer() -> Announcer {
    Announcer::new(ClipBank::built_in().unwrap(), Vec::new())
}

#[test]
fn a_composed_call_is_16_bit_pcm_of_the_planned_length_loud_and_unclipped() {
    let a = announcer();
    let langs = [Language::Zh, Language::En];
    let wav = parse_wav(&a.compose("A023", "1", &langs));
    assert_eq!((wav.rate, wav.channels, wav.bits), (OUTPUT_RATE, 1, 16));

    // Duration: chime, minus the overlap, plus every clip and every gap.
    let plan = a.plan("A023", "1", &langs);
    let clips: usize = plan.placed.iter().skip(1).map(|(n, _)| a.clip_len(n)).sum();
    let ms = |v: u32| (v * OUTPUT_RATE / 1000) as usize;
    // zh: 10 clips, 1 phrase gap, 8 word gaps; en: 7 clips, 1 phrase gap, 5 word gaps.
    let gaps = 2 * ms(mix::PHRASE_GAP_MS) + 13 * ms(mix::WORD_GAP_MS) + ms(mix::LANGUAGE_GAP_MS);
    let want = a.clip_len("chime") - ms(mix::CHIME_OVERLAP_MS) + clips + gaps;
    let got = wav.samples.len();
    assert!(
        got.abs_diff(want) <= ms(3),
        "{got} samples, expected {want}"
    );

    // Loud enough, never clipped.
    let rms = (wav.samples.iter().map(|&s| (s as f64).powi(2)).sum::<f64>() / got as f64).sqrt();
    assert!(rms > 1500.0, "RMS {rms} is too quiet");
    let peak = wav.samples.iter().map(|s| s.unsigned_abs()).max().unwrap();
    assert!(peak < 32000, "peak {peak} clips");
    // The chime's tail rings under the first word: both overlap.
    let first_word = plan.placed[1].1;
    assert!(first_word < a.clip_len("chime"));
}

#[test]
fn same_call_same_bytes_and_languages_in_the_floors_order() {
    let a = announcer();
    let zh_en = [Language::Zh, Language::En];
    assert_eq!(
        a.compose("B105", "12", &zh_en),
        a.compose("B105", "12", &zh_en)
    );
    assert_ne!(
        a.compose("B105", "12", &zh_en),
        a.compose("B106", "12", &zh_en)
    );
    let names = |langs: &[Language]| -> Vec<&'static str> {
        a.plan("B105", "12", langs)
            .placed
            .iter()
            .map(|(n, _)| *n)
            .collect()
    };
    let order = names(&zh_en);
    let zh = order.iter().position(|n| *n == "zh-please").unwrap();
    let en = order.iter().position(|n| *n == "en-number").unwrap();
    assert!(zh < en, "Chinese first on a zh,en floor");
    let order = names(&[Language::En, Language::Zh]);
    let zh = order.iter().position(|n| *n == "zh-please").unwrap();
    let en = order.iter().position(|n| *n == "en-number").unwrap();
    assert!(en < zh, "English first on an en,zh floor");
    assert!(!names(&[Language::Zh]).contains(&"en-number"));
}

#[tokio::test]
async fn called_events_carry_the_announcement_and_the_wav_is_served_and_cached() {
    let s = Server::start();
    let c = Client::new(&s);
    let mut ws = Ws::connect(&s.ws("/ws/v1/halls/demo/floors/3")).await;
    ws.next().await;
    c.issue("business").await;
    c.window("3-12", "call", "{}").await;
    let called = ws.until(|v| v["type"] == "called").await.pop().unwrap();
    let ann = &called["announcement"];
    assert_eq!(
        ann["text"],
        "请A001号到12号窗口办理 Number A001, please go to window 12"
    );
    let audio = ann["audio"].as_str().unwrap().to_string();
    assert!(audio.starts_with("/api/v1/announcements/") && audio.ends_with(".wav"));

    let get = || async {
        let r = c.http.get(s.url(&audio)).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "audio/wav");
        assert_eq!(r.headers()["cache-control"], "public, max-age=86400");
        r.bytes().await.unwrap()
    };
    let first = get().await;
    let wav = parse_wav(&first);
    assert_eq!((wav.rate, wav.bits), (OUTPUT_RATE, 16));
    // A recall names the same audio, and hits the cache.
    c.window("3-12", "recall", "").await;
    let recalled = ws.until(|v| v["type"] == "called").await.pop().unwrap();
    assert_eq!(recalled["recall"], 1);
    assert_eq!(recalled["announcement"]["audio"], audio.as_str());
    assert_eq!(get().await, first);
    let stats = c.get("/api/v1/announcements/stats").await.json;
    assert_eq!(
        (stats["misses"].as_u64(), stats["hits"].as_u64()),
        (Some(1), Some(1)),
        "{stats}"
    );
    assert!(stats["bytes"].as_u64().unwrap() >= first.len() as u64);

    // Ids that name no voice floor, window or number are 404.
    for bad in [
        "/api/v1/announcements/demo.5.E001.5-01.wav", // silent floor
        "/api/v1/announcements/demo.3.A001.9-99.wav",
        "/api/v1/announcements/demo.3.A001.1-01.wav", // window of another floor
        "/api/v1/announcements/demo.3.hello.3-01.wav",
        "/api/v1/announcements/nope.3.A001.3-01.wav",
        "/api/v1/announcements/demo.3.A001.3-01",
        // Well formed, but no such call was made (contract §13).
        "/api/v1/announcements/demo.3.A999.3-12.zh-en.wav",
        "/api/v1/announcements/demo.3.A001.3-13.zh-en.wav",
        "/api/v1/announcements/demo.3.A001.3-12.en.wav",
    ] {
        assert_eq!(c.get(bad).await.status, 404, "{bad}");
    }
    // A loop of made-up ids composes nothing and evicts nothing.
    for i in 0..200 {
        let id = format!(
            "/api/v1/announcements/demo.3.A{i:03}.3-0{}.zh-en.wav",
            i % 9 + 1
        );
        assert_eq!(c.get(&id).await.status, 404, "{id}");
    }
    let after = c.get("/api/v1/announcements/stats").await.json;
    assert_eq!(
        (after["misses"].as_u64(), after["entries"].as_u64()),
        (Some(1), Some(1)),
        "{after}"
    );
    // After a restart the call is still in the floor's ring: still served.
    let mut s = s;
    s.stop_and_restart();
    let c = Client::new(&s);
    assert_eq!(c.get(&audio).await.status, 200, "{audio} after a restart");
}

#[test]
fn cold_composition_uses_the_shared_clip_bank() {
    // The bank is decoded once; composing many calls reuses it.
    let a = Arc::new(announcer());
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let a = a.clone();
            std::thread::spawn(move || a.compose(&format!("A{:03}", i + 1), "3", &[Language::Zh]))
        })
        .collect();
    for h in handles {
        assert!(parse_wav(&h.join().unwrap()).samples.len() > OUTPUT_RATE as usize);
    }
}

/// A Guangdong hall (the Shekou hall in Shenzhen, for one): floor 1 speaks
/// Mandarin, Cantonese and English; floor 2 Cantonese only.
const SHEKOU: &str = r#"
[[halls]]
id = "shekou"
name = "蛇口政务服务中心"
timezone = "Asia/Shanghai"
admin_token = "shekou-admin-token-01"
  [[halls.floors]]
  number = 1
  name = "1F"
  announce = "voice"
  languages = ["zh", "yue", "en"]
  [[halls.floors]]
  number = 2
  name = "2F"
  announce = "voice"
  languages = ["yue"]
  [[halls.services]]
  id = "general"
  name = "综合"
  prefix = "A"
  floor = 1
  zone = "A"
  [[halls.services]]
  id = "permits"
  name = "港澳通行证"
  prefix = "G"
  floor = 2
  zone = "B"
  [[halls.windows]]
  id = "1-12"
  label = "12"
  floor = 1
  zone = "A"
  services = ["general"]
  token = "shekou-window-1-12-tok"
  [[halls.windows]]
  id = "2-03"
  label = "3"
  floor = 2
  zone = "B"
  services = ["permits"]
  token = "shekou-window-2-03-tok"
"#;

const SHEKOU_ADMIN: &str = "shekou-admin-token-01";

/// Issues a ticket of `service` and calls it on `window`; the `called`
/// event the floor channel got.
async fn shekou_call(s: &Server, floor: i32, service: &str, window: &str) -> serde_json::Value {
    let c = Client::new(s);
    let mut ws = Ws::connect(&s.ws(&format!("/ws/v1/halls/shekou/floors/{floor}"))).await;
    ws.next().await;
    let r = c
        .post(
            "/api/v1/halls/shekou/tickets",
            SHEKOU_ADMIN,
            &format!(r#"{{"service":"{service}"}}"#),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = c
        .post(
            &format!("/api/v1/halls/shekou/windows/{window}/call"),
            SHEKOU_ADMIN,
            "{}",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    ws.until(|v| v["type"] == "called").await.pop().unwrap()
}

async fn fetch_wav(s: &Server, audio: &str) -> Vec<u8> {
    let r = reqwest::get(s.url(audio)).await.unwrap();
    assert_eq!(r.status(), 200, "{audio}");
    r.bytes().await.unwrap().to_vec()
}

/// RMS of samples `from..to`.
fn rms(s: &[i16], from: usize, to: usize) -> f64 {
    let part = &s[from.min(s.len())..to.min(s.len())];
    (part.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / part.len().max(1) as f64).sqrt()
}

#[tokio::test]
async fn a_three_language_floor_speaks_mandarin_then_cantonese_then_english() {
    let s = Server::start_config(SHEKOU);
    let called = shekou_call(&s, 1, "general", "1-12").await;
    assert_eq!(
        called["announcement"]["text"],
        "请A001号到12号窗口办理 請A001號到12號窗口 Number A001, please go to window 12"
    );
    let audio = called["announcement"]["audio"].as_str().unwrap();
    assert!(audio.ends_with(".zh-yue-en.wav"), "{audio}");
    let wav = parse_wav(&fetch_wav(&s, audio).await);
    assert_eq!((wav.rate, wav.channels, wav.bits), (OUTPUT_RATE, 1, 16));

    // The served WAV follows the plan of the three parts, in that order.
    let a = announcer();
    let langs = [Language::Zh, Language::Yue, Language::En];
    let plan = a.plan("A001", "12", &langs);
    assert!(
        wav.samples.len().abs_diff(plan.len) <= 2,
        "length as planned"
    );
    let start = |clip: &str| plan.placed.iter().find(|(n, _)| *n == clip).unwrap().1;
    let end_of = |prefix: &str| {
        plan.placed
            .iter()
            .filter(|(n, _)| n.starts_with(prefix))
            .map(|(n, at)| at + a.clip_len(n))
            .max()
            .unwrap()
    };
    let (zh, yue, en) = (start("zh-please"), start("yue-please"), start("en-number"));
    assert!(zh < yue && yue < en, "zh {zh}, yue {yue}, en {en}");
    // Each part lasts its clips plus its gaps: 請 A 零零一 號 | 到 十二 號窗口
    // is 8 clips, 6 word gaps and one phrase gap.
    let ms = |v: u32| (v * OUTPUT_RATE / 1000) as usize;
    let yue_clips: usize = [
        "yue-please",
        "letter-A",
        "yue-0",
        "yue-0",
        "yue-1",
        "yue-hao",
    ]
    .iter()
    .chain(&["yue-to", "yue-10", "yue-2", "yue-window"])
    .map(|n| a.clip_len(n))
    .sum();
    let yue_len = end_of("yue-") - yue;
    assert_eq!(
        yue_len,
        yue_clips + 8 * ms(mix::WORD_GAP_MS) + ms(mix::PHRASE_GAP_MS),
        "the Cantonese part's duration"
    );
    // Speech where each part is, near-silence in the gaps between languages.
    for (name, from, to) in [
        ("zh", zh, end_of("zh-")),
        ("yue", yue, end_of("yue-")),
        ("en", en, plan.len),
    ] {
        assert!(rms(&wav.samples, from, to) > 1000.0, "{name} part is heard");
    }
    let gap = rms(&wav.samples, end_of("yue-") + ms(100), en - ms(100));
    assert!(
        gap < 50.0,
        "silence between Cantonese and English, RMS {gap}"
    );
}

#[tokio::test]
async fn a_cantonese_only_floor_and_cache_keys_that_follow_the_language_set() {
    let mut s = Server::start_config(SHEKOU);
    let called = shekou_call(&s, 2, "permits", "2-03").await;
    assert_eq!(called["announcement"]["text"], "請G001號到3號窗口");
    let yue_audio = called["announcement"]["audio"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(yue_audio.ends_with(".yue.wav"), "{yue_audio}");
    let yue_wav = fetch_wav(&s, &yue_audio).await;
    let a = announcer();
    let plan = a.plan("G001", "3", &[Language::Yue]);
    assert!(plan
        .placed
        .iter()
        .skip(1)
        .all(|(n, _)| n.starts_with("yue-") || n.starts_with("letter-")));
    assert!(parse_wav(&yue_wav).samples.len().abs_diff(plan.len) <= 2);

    // The hall switches floor 2 to Mandarin between restarts: the same
    // call gets a new id, new bytes, a cache entry of its own, and the old
    // id still says what it named.
    let cfg = s.dir.parent().unwrap().join("hallcast.toml");
    let changed = SHEKOU.replacen("languages = [\"yue\"]", "languages = [\"zh\"]", 1);
    std::fs::write(&cfg, changed).unwrap();
    s.stop_and_restart();
    let c = Client::new(&s);
    let mut ws = Ws::connect(&s.ws("/ws/v1/halls/shekou/floors/2")).await;
    ws.next().await;
    let r = c
        .post("/api/v1/halls/shekou/windows/2-03/recall", SHEKOU_ADMIN, "")
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let recalled = ws.until(|v| v["type"] == "called").await.pop().unwrap();
    assert_eq!(recalled["announcement"]["text"], "请G001号到3号窗口办理");
    let zh_audio = recalled["announcement"]["audio"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(zh_audio, yue_audio.replace(".yue.wav", ".zh.wav"));
    let zh_wav = fetch_wav(&s, &zh_audio).await;
    assert_ne!(zh_wav, yue_wav);
    assert_eq!(
        fetch_wav(&s, &yue_audio).await,
        yue_wav,
        "the old id, as it was"
    );
    let stats = c.get("/api/v1/announcements/stats").await.json;
    assert_eq!(stats["entries"], 2, "{stats}");
    assert_eq!(stats["misses"], 2, "{stats}");

    for bad in ["fr", "zh-zh", "zh-", ""] {
        let id = yue_audio.replace(".yue.wav", &format!(".{bad}.wav"));
        assert_eq!(c.get(&id).await.status, 404, "{id}");
    }
}
