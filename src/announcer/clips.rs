//! The clip bank: every clip decoded once at start-up (with rodio) and
//! resampled to the output rate, so composing is only copying and adding.

use std::collections::HashMap;
use std::io::Cursor;
use std::path::Path;

use rodio::Source;

use super::embedded::BUILT_IN;
use super::script::ALL_CLIPS;

/// Sample rate of every composed announcement: speech needs no more, and
/// it halves the bytes screens download against 32 kHz.
pub const OUTPUT_RATE: u32 = 16_000;

/// A clip that cannot be used, named so it can be fixed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("sound clip {file}: {problem}")]
pub struct ClipError {
    pub file: String,
    pub problem: String,
}

/// Decoded clips, mono f32 at [`OUTPUT_RATE`].
pub struct ClipBank {
    clips: HashMap<&'static str, Vec<f32>>,
}

impl ClipBank {
    /// The built-in clips.
    pub fn built_in() -> Result<ClipBank, ClipError> {
        let mut clips = HashMap::new();
        for (name, bytes) in BUILT_IN {
            clips.insert(
                *name,
                decode(&format!("<built-in>/{name}.wav"), bytes.to_vec())?,
            );
        }
        ClipBank::complete(clips)
    }

    /// Clips from a folder (a real announcer's recordings), same names.
    pub fn from_dir(dir: &Path) -> Result<ClipBank, ClipError> {
        let mut clips = HashMap::new();
        for name in ALL_CLIPS {
            let path = dir.join(format!("{name}.wav"));
            let file = path.display().to_string();
            let bytes = std::fs::read(&path).map_err(|e| ClipError {
                file: file.clone(),
                problem: format!(
                    "cannot be read ({e}); every clip listed in sounds/README.md is needed"
                ),
            })?;
            clips.insert(*name, decode(&file, bytes)?);
        }
        ClipBank::complete(clips)
    }

    fn complete(clips: HashMap<&'static str, Vec<f32>>) -> Result<ClipBank, ClipError> {
        for name in ALL_CLIPS {
            match clips.get(name) {
                None => {
                    return Err(ClipError {
                        file: format!("{name}.wav"),
                        problem: "is missing".into(),
                    })
                }
                Some(s) if s.is_empty() => {
                    return Err(ClipError {
                        file: format!("{name}.wav"),
                        problem: "has no samples".into(),
                    })
                }
                Some(_) => {}
            }
        }
        Ok(ClipBank { clips })
    }

    /// A clip's samples.
    pub fn get(&self, name: &str) -> &[f32] {
        self.clips.get(name).map(Vec::as_slice).unwrap_or(&[])
    }
}

/// Decodes a WAV with rodio, mixes it down to mono and resamples it.
fn decode(file: &str, bytes: Vec<u8>) -> Result<Vec<f32>, ClipError> {
    let err = |problem: String| ClipError {
        file: file.to_string(),
        problem,
    };
    let decoder = rodio::Decoder::new(Cursor::new(bytes))
        .map_err(|e| err(format!("is not a readable WAV file ({e})")))?;
    let channels = decoder.channels().max(1) as usize;
    let rate = decoder.sample_rate();
    if rate == 0 {
        return Err(err("has a sample rate of 0".into()));
    }
    let interleaved: Vec<f32> = decoder.collect();
    let mono: Vec<f32> = interleaved
        .chunks(channels)
        .map(|frame| frame.iter().sum::<f32>() / frame.len() as f32)
        .collect();
    Ok(resample(&mono, rate, OUTPUT_RATE))
}

/// Linear-interpolation resampling: plenty for speech at these rates.
pub fn resample(input: &[f32], from: u32, to: u32) -> Vec<f32> {
    if from == to || input.is_empty() {
        return input.to_vec();
    }
    let out_len = (input.len() as u64 * u64::from(to) / u64::from(from)) as usize;
    let step = f64::from(from) / f64::from(to);
    (0..out_len)
        .map(|i| {
            let pos = i as f64 * step;
            let j = pos as usize;
            let frac = (pos - j as f64) as f32;
            let a = input[j.min(input.len() - 1)];
            let b = input[(j + 1).min(input.len() - 1)];
            a + (b - a) * frac
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_clip_decodes() {
        let bank = ClipBank::built_in().unwrap();
        for name in ALL_CLIPS {
            assert!(bank.get(name).len() > 800, "{name} is shorter than 50 ms");
        }
    }

    #[test]
    fn resampling_keeps_duration() {
        let one_second = vec![0.5f32; 22_050];
        assert_eq!(resample(&one_second, 22_050, 16_000).len(), 16_000);
        assert_eq!(resample(&one_second, 16_000, 16_000).len(), 22_050);
    }

    #[test]
    fn a_broken_folder_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let e = ClipBank::from_dir(dir.path()).err().unwrap();
        assert!(e.to_string().contains("chime.wav"), "{e}");
        for (name, bytes) in BUILT_IN {
            std::fs::write(dir.path().join(format!("{name}.wav")), bytes).unwrap();
        }
        ClipBank::from_dir(dir.path()).unwrap();
        std::fs::write(dir.path().join("zh-3.wav"), b"not a wav").unwrap();
        let e = ClipBank::from_dir(dir.path()).err().unwrap();
        assert!(
            e.to_string().contains("zh-3.wav") && e.to_string().contains("not a readable"),
            "{e}"
        );
    }
}
