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

fn digit_yue(d: u32) -> &'static str {
    [
        "yue-0", "yue-1", "yue-2", "yue-3", "yue-4", "yue-5", "yue-6", "yue-7", "yue-8", "yue-9",
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

/// The clips Mandarin or Cantonese counts with: both read numbers the same
/// way (十二, 二十, 一百零五); only the voices differ.
struct Counting {
    digit: fn(u32) -> &'static str,
    ten: &'static str,
    hundred: &'static str,
}

const ZH: Counting = Counting {
    digit: digit_zh,
    ten: "zh-10",
    hundred: "zh-100",
};

const YUE: Counting = Counting {
    digit: digit_yue,
    ten: "yue-10",
    hundred: "yue-100",
};

/// A whole number as Chinese reads it: 12 → 十二, 20 → 二十, 105 → 一百零五.
/// Past 999, digit by digit.
fn number_chinese(c: &Counting, n: u32, out: &mut Vec<Option<&'static str>>) {
    let digit = c.digit;
    match n {
        0..=9 => out.push(Some(digit(n))),
        10..=19 => {
            out.push(Some(c.ten));
            if n % 10 != 0 {
                out.push(Some(digit(n % 10)));
            }
        }
        20..=99 => {
            out.push(Some(digit(n / 10)));
            out.push(Some(c.ten));
            if n % 10 != 0 {
                out.push(Some(digit(n % 10)));
            }
        }
        100..=999 => {
            out.push(Some(digit(n / 100)));
            out.push(Some(c.hundred));
            let rest = n % 100;
            if rest == 0 {
            } else if rest < 10 {
                out.push(Some(digit(0)));
                out.push(Some(digit(rest)));
            } else {
                // 一百一十五: the tens digit is said after a hundred.
                out.push(Some(digit(rest / 10)));
                out.push(Some(c.ten));
                if rest % 10 != 0 {
                    out.push(Some(digit(rest % 10)));
                }
            }
        }
        _ => digits(&n.to_string(), digit, out),
    }
}

fn number_zh(n: u32, out: &mut Vec<Option<&'static str>>) {
    number_chinese(&ZH, n, out)
}

fn number_yue(n: u32, out: &mut Vec<Option<&'static str>>) {
    number_chinese(&YUE, n, out)
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
            Language::Yue => {
                // 請 A 零二三 號 到 十二 號窗口: a Cantonese announcer reads
                // the ticket digit by digit and the window as a number, and
                // drops Mandarin's closing 办理.
                let mut c = vec![Some("yue-please")];
                ticket(number, digit_yue, &mut c);
                c.push(Some("yue-hao"));
                c.push(None);
                c.push(Some("yue-to"));
                label(window_label, number_yue, &mut c);
                c.push(Some("yue-window"));
                Part {
                    text: format!("請{number}號到{window_label}號窗口"),
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

/// A message telling a citizen where to go, for the SMS/WeChat texts of
/// silent calls (contract §9): floor, zone and window, in one language.
/// "请A023号到3楼A区1号窗口办理", "請A023號到3樓A區1號窗口", "Number A023,
/// please go to window 1, 3F zone A".
pub fn notice(number: &str, floor: i32, zone: &str, window_label: &str, lang: Language) -> String {
    match lang {
        Language::Zh => format!("请{number}号到{floor}楼{zone}区{window_label}号窗口办理"),
        Language::Yue => format!("請{number}號到{floor}樓{zone}區{window_label}號窗口"),
        Language::En => {
            format!("Number {number}, please go to window {window_label}, {floor}F zone {zone}")
        }
    }
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
    "yue-0",
    "yue-1",
    "yue-2",
    "yue-3",
    "yue-4",
    "yue-5",
    "yue-6",
    "yue-7",
    "yue-8",
    "yue-9",
    "yue-10",
    "yue-100",
    "yue-please",
    "yue-hao",
    "yue-to",
    "yue-window",
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
    fn cantonese_reads_the_ticket_digit_by_digit_and_the_window_as_a_number() {
        let p = parts("A023", "12", &[Language::Zh, Language::Yue, Language::En]);
        assert_eq!(p.len(), 3);
        assert_eq!(p[1].text, "請A023號到12號窗口", "traditional characters");
        assert_eq!(
            names(&p[1].clips),
            "yue-please letter-A yue-0 yue-2 yue-3 yue-hao | yue-to yue-10 yue-2 yue-window"
        );
        assert_eq!(p[0].text, "请A023号到12号窗口办理");
        assert_eq!(p[2].text, "Number A023, please go to window 12");
        let only = parts("B105", "115", &[Language::Yue]);
        assert_eq!(
            names(&only[0].clips),
            "yue-please letter-B yue-1 yue-0 yue-5 yue-hao | yue-to yue-1 yue-100 yue-1 yue-10 yue-5 yue-window"
        );
        // The floor's order, whatever it is.
        let order: Vec<_> = parts("A001", "1", &[Language::En, Language::Yue, Language::Zh])
            .iter()
            .map(|p| p.clips[0].unwrap())
            .collect();
        assert_eq!(order, ["en-number", "yue-please", "zh-please"]);
    }

    #[test]
    fn notices_name_floor_zone_and_window_in_each_language() {
        let n = |l| notice("A023", 3, "A", "1", l);
        assert_eq!(n(Language::Zh), "请A023号到3楼A区1号窗口办理");
        assert_eq!(n(Language::Yue), "請A023號到3樓A區1號窗口");
        assert_eq!(
            n(Language::En),
            "Number A023, please go to window 1, 3F zone A"
        );
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
            // Cantonese counts exactly as Mandarin does, in its own voice.
            let mut y = Vec::new();
            label(l, number_yue, &mut y);
            assert_eq!(names(&y), zh.replace("zh-", "yue-"), "label {l} in yue");
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
                for p in parts(n, l, &Language::ALL) {
                    used.extend(p.clips.into_iter().flatten());
                }
            }
        }
        for c in used {
            assert!(ALL_CLIPS.contains(&c), "{c} is not in ALL_CLIPS");
        }
    }
}
