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
    ] {
        assert_eq!(c.get(bad).await.status, 404, "{bad}");
    }
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
