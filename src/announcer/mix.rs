//! Composition: chime, then each language's words with natural gaps, the
//! chime's tail under the first words; loudness normalised; 16-bit WAV.
//! Deterministic: same clips and script, same bytes.

use super::clips::{ClipBank, OUTPUT_RATE};
use super::script::Part;

/// Gap between words of a phrase: espeak's clips are trimmed to the voice,
/// and a short breath keeps "A 零 二 三" from running together.
pub const WORD_GAP_MS: u32 = 60;
/// Gap between phrases ("请 A023 号" | "到 1 号窗口办理").
pub const PHRASE_GAP_MS: u32 = 220;
/// Gap between languages: long enough to hear a new sentence start.
pub const LANGUAGE_GAP_MS: u32 = 600;
/// The first word starts this long before the chime ends, so the chime's
/// decay rings under it as on a real PA.
pub const CHIME_OVERLAP_MS: u32 = 450;
/// Target loudness (RMS of the speech), about -18 dBFS: clear over hall
/// noise without the limiter working hard.
const TARGET_RMS: f32 = 0.125;
/// No sample goes above this: headroom against clipping on cheap speakers.
const PEAK_LIMIT: f32 = 0.89;

fn ms(v: u32) -> usize {
    (u64::from(v) * u64::from(OUTPUT_RATE) / 1000) as usize
}

/// Where each clip starts, in samples, and the total length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub placed: Vec<(&'static str, usize)>,
    pub len: usize,
}

/// Lays out the chime and the parts on a timeline.
pub fn plan(bank: &ClipBank, parts: &[Part]) -> Plan {
    let chime = bank.get("chime").len();
    let mut placed = vec![("chime", 0)];
    let mut at = chime.saturating_sub(ms(CHIME_OVERLAP_MS));
    let mut end = chime;
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            at += ms(LANGUAGE_GAP_MS);
        }
        let mut first = true;
        let mut phrase_break = false;
        for clip in &part.clips {
            let Some(name) = clip else {
                phrase_break = true;
                continue;
            };
            if !first {
                at += ms(if phrase_break {
                    PHRASE_GAP_MS
                } else {
                    WORD_GAP_MS
                });
            }
            first = false;
            phrase_break = false;
            placed.push((*name, at));
            at += bank.get(name).len();
            end = end.max(at);
        }
    }
    Plan { placed, len: end }
}

/// Mixes a plan into a normalised 16-bit WAV. The samples are written
/// straight into the WAV's bytes: a three-language call is half a
/// megabyte, and every extra buffer of that size is page faults on the
/// cold path.
pub fn render_wav(bank: &ClipBank, plan: &Plan) -> Vec<u8> {
    let mut buf = vec![0f32; plan.len];
    for (name, at) in &plan.placed {
        for (i, s) in bank.get(name).iter().enumerate() {
            buf[at + i] += s;
        }
    }
    // Loudness from the speech only: the chime is a constant part.
    let speech_from = plan.placed.get(1).map_or(0, |(_, at)| *at);
    let speech = &buf[speech_from.min(buf.len())..];
    let rms = if speech.is_empty() {
        0.0
    } else {
        (speech.iter().map(|s| s * s).sum::<f32>() / speech.len() as f32).sqrt()
    };
    let peak = buf.iter().fold(0f32, |m, s| m.max(s.abs()));
    let mut gain = if rms > 0.0 { TARGET_RMS / rms } else { 1.0 };
    if peak * gain > PEAK_LIMIT {
        gain = PEAK_LIMIT / peak;
    }
    let mut out = wav_header(buf.len());
    for s in &buf {
        let v = (s * gain * 32767.0).round().clamp(-32768.0, 32767.0) as i16;
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// The canonical 44-byte header of a mono 16-bit [`OUTPUT_RATE`] PCM WAV
/// of `samples` samples, in a vector with room for them.
fn wav_header(samples: usize) -> Vec<u8> {
    let data_len = (samples * 2) as u32;
    let mut out = Vec::with_capacity(44 + data_len as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes()); // fmt chunk size
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&OUTPUT_RATE.to_le_bytes());
    out.extend_from_slice(&(OUTPUT_RATE * 2).to_le_bytes()); // byte rate
    out.extend_from_slice(&2u16.to_le_bytes()); // block align
    out.extend_from_slice(&16u16.to_le_bytes()); // bits per sample
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    out
}
