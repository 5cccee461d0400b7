//! What an announcement says: its text and its clips, for a ticket number,
//! a window label and a floor's languages. Pure.

use crate::queue::Language;

/// One language's part of an announcement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part {
    pub text: String,
    /// Words: each a list of clip names spoken without a gap between them
    /// beyond the word gap; phrases are separated by `None`.
    pub clips: Vec<Option<&'static str>>,
}

fn digit_zh(d: u32) -> &'static str {
    [
        "zh-0", "zh-1", "zh-2", "zh-3", "zh-4", "zh-5", "zh-6", "zh-7", "zh-8", "zh-9",
    ][d as usize]
}

fn digit_en(d: u32) -> &'static str {
    [
        "en-0", "en-1", "en-2", "en-3", "en-4", "en-5", "en-6", "en-7", "en-8", "en-9",
    ][d as usize]
}

fn letter(c: char) -> Option<&'static str> {
    const L: [&str; 26] = [
        "letter-A", "letter-B", "letter-C", "letter-D", "letter-E", "letter-F", "letter-G",
        "letter-H", "letter-I", "letter-J", "letter-K", "letter-L", "letter-M", "letter-N",
        "letter-O", "letter-P", "letter-Q", "letter-R", "letter-S", "letter-T", "letter-U",
        "letter-V", "letter-W", "letter-X", "letter-Y", "letter-Z",
    ];
    let c = c.to_ascii_uppercase();
    c.is_ascii_uppercase().then(|| L[(c as u8 - b'A') as usize])
}

/// A whole number as Chinese reads it: 12 → 十二, 20 → 二十, 105 → 一百零五.
/// Past 999, digit by digit.
fn number_zh(n: u32, out: &mut Vec<Option<&'static str>>) {
    match n {
        0..=9 => out.push(Some(digit_zh(n))),
        10..=19 => {
            out.push(Some("zh-10"));
            if n % 10 != 0 {
                out.push(Some(digit_zh(n % 10)));
            }
        }
        20..=99 => {
            out.push(Some(digit_zh(n / 10)));
            out.push(Some("zh-10"));
            if n % 10 != 0 {
                out.push(Some(digit_zh(n % 10)));
            }
        }
        100..=999 => {
            out.push(Some(digit_zh(n / 100)));
            out.push(Some("zh-100"));
            let rest = n % 100;
            if rest == 0 {
            } else if rest < 10 {
                out.push(Some("zh-0"));
                out.push(Some(digit_zh(rest)));
            } else {
                // 一百一十五: the tens digit is said after a hundred.
                out.push(Some(digit_zh(rest / 10)));
                out.push(Some("zh-10"));
                if rest % 10 != 0 {
                    out.push(Some(digit_zh(rest % 10)));
                }
            }
        }
        _ => digits(&n.to_string(), digit_zh, out),
    }
}

/// A whole number as English reads it up to 99; past that, digit by digit.
fn number_en(n: u32, out: &mut Vec<Option<&'static str>>) {
    const TEENS: [&str; 20] = [
        "en-0", "en-1", "en-2", "en-3", "en-4", "en-5", "en-6", "en-7", "en-8", "en-9", "en-10",
        "en-11", "en-12", "en-13", "en-14", "en-15", "en-16", "en-17", "en-18", "en-19",
    ];
    const TENS: [&str; 10] = [
        "", "", "en-20", "en-30", "en-40", "en-50", "en-60", "en-70", "en-80", "en-90",
    ];
    match n {
        0..=19 => out.push(Some(TEENS[n as usize])),
        20..=99 => {
            out.push(Some(TENS[(n / 10) as usize]));
            if n % 10 != 0 {
                out.push(Some(TEENS[(n % 10) as usize]));
            }
        }
        _ => digits(&n.to_string(), digit_en, out),
    }
}

fn digits(s: &str, clip: fn(u32) -> &'static str, out: &mut Vec<Option<&'static str>>) {
    for c in s.chars() {
        if let Some(d) = c.to_digit(10) {
            out.push(Some(clip(d)));
        }
    }
}

/// A ticket number, letter by letter and digit by digit: A023 → A 零 二 三.
fn ticket(number: &str, digit: fn(u32) -> &'static str, out: &mut Vec<Option<&'static str>>) {
    for c in number.chars() {
        if let Some(d) = c.to_digit(10) {
            out.push(Some(digit(d)));
        } else if let Some(l) = letter(c) {
            out.push(Some(l));
        }
    }
}

/// A window label: letters spelled, digit runs read as numbers, anything
/// else (a Chinese label) left to the text only.
fn label(
    label: &str,
    number: fn(u32, &mut Vec<Option<&'static str>>),
    out: &mut Vec<Option<&'static str>>,
) {
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut Vec<Option<&'static str>>| {
        if !run.is_empty() {
            if let Ok(n) = run.parse::<u32>() {
                number(n, out);
            }
            run.clear();
        }
    };
    for c in label.chars() {
        if c.is_ascii_digit() {
            run.push(c);
        } else {
            flush(&mut run, out);
            if let Some(l) = letter(c) {
                out.push(Some(l));
            }
        }
    }
    flush(&mut run, out);
}

/// The parts of an announcement, one per language, in the floor's order.
pub fn parts(number: &str, window_label: &str, languages: &[Language]) -> Vec<Part> {
    languages
        .iter()
        .map(|lang| match lang {
            Language::Zh => {
                let mut c = vec![Some("zh-please")];
                ticket(number, digit_zh, &mut c);
                c.push(Some("zh-hao"));
                c.push(None);
                c.push(Some("zh-to"));
                label(window_label, number_zh, &mut c);
                c.push(Some("zh-window"));
                c.push(Some("zh-handle"));
                Part {
                    text: format!("请{number}号到{window_label}号窗口办理"),
                    clips: c,
                }
            }
            Language::En => {
                let mut c = vec![Some("en-number")];
                ticket(number, digit_en, &mut c);
                c.push(None);
                c.push(Some("en-please"));
                label(window_label, number_en, &mut c);
                Part {
                    text: format!("Number {number}, please go to window {window_label}"),
                    clips: c,
                }
            }
        })
        .collect()
}

/// Every clip a script may use, for the start-up check.
pub const ALL_CLIPS: &[&str] = &[
    "chime",
    "zh-0",
    "zh-1",
    "zh-2",
    "zh-3",
    "zh-4",
    "zh-5",
    "zh-6",
    "zh-7",
    "zh-8",
    "zh-9",
    "zh-10",
    "zh-100",
    "zh-please",
    "zh-hao",
    "zh-to",
    "zh-window",
    "zh-handle",
    "en-0",
    "en-1",
    "en-2",
    "en-3",
    "en-4",
    "en-5",
    "en-6",
    "en-7",
    "en-8",
    "en-9",
    "en-10",
    "en-11",
    "en-12",
    "en-13",
    "en-14",
    "en-15",
    "en-16",
    "en-17",
    "en-18",
    "en-19",
    "en-20",
    "en-30",
    "en-40",
    "en-50",
    "en-60",
    "en-70",
    "en-80",
    "en-90",
    "en-number",
    "en-please",
    "letter-A",
    "letter-B",
    "letter-C",
    "letter-D",
    "letter-E",
    "letter-F",
    "letter-G",
    "letter-H",
    "letter-I",
    "letter-J",
    "letter-K",
    "letter-L",
    "letter-M",
    "letter-N",
    "letter-O",
    "letter-P",
    "letter-Q",
    "letter-R",
    "letter-S",
    "letter-T",
    "letter-U",
    "letter-V",
    "letter-W",
    "letter-X",
    "letter-Y",
    "letter-Z",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[Option<&'static str>]) -> String {
        v.iter()
            .map(|c| c.unwrap_or("|"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn chinese_and_english_scripts() {
        let p = parts("A023", "1", &[Language::Zh, Language::En]);
        assert_eq!(p[0].text, "请A023号到1号窗口办理");
        assert_eq!(
            names(&p[0].clips),
            "zh-please letter-A zh-0 zh-2 zh-3 zh-hao | zh-to zh-1 zh-window zh-handle"
        );
        assert_eq!(p[1].text, "Number A023, please go to window 1");
        assert_eq!(
            names(&p[1].clips),
            "en-number letter-A en-0 en-2 en-3 | en-please en-1"
        );
        let en_first = parts("A023", "1", &[Language::En, Language::Zh]);
        assert_eq!(en_first[0].text, p[1].text, "the floor's order");
    }

    #[test]
    fn window_numbers_are_read_as_numbers() {
        let cases = [
            ("10", "zh-10", "en-10"),
            ("12", "zh-10 zh-2", "en-12"),
            ("20", "zh-2 zh-10", "en-20"),
            ("25", "zh-2 zh-10 zh-5", "en-20 en-5"),
            ("105", "zh-1 zh-100 zh-0 zh-5", "en-1 en-0 en-5"),
            ("115", "zh-1 zh-100 zh-1 zh-10 zh-5", "en-1 en-1 en-5"),
            ("B3", "letter-B zh-3", "letter-B en-3"),
            ("综合", "", ""),
        ];
        for (l, zh, en) in cases {
            let mut z = Vec::new();
            label(l, number_zh, &mut z);
            let mut e = Vec::new();
            label(l, number_en, &mut e);
            assert_eq!(
                (names(&z).as_str(), names(&e).as_str()),
                (zh, en),
                "label {l}"
            );
        }
    }

    #[test]
    fn every_clip_a_script_uses_is_listed() {
        let mut used = std::collections::HashSet::new();
        for n in ["AB0123", "Z999"] {
            for l in ["1", "19", "99", "100", "999", "1000", "Q7"] {
                for p in parts(n, l, &[Language::Zh, Language::En]) {
                    used.extend(p.clips.into_iter().flatten());
                }
            }
        }
        for c in used {
            assert!(ALL_CLIPS.contains(&c), "{c} is not in ALL_CLIPS");
        }
    }
}
