//! The webhook body of a message to a citizen's phone (§9), and its texts
//! in the languages of the service's floor.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{encode, time};
use crate::announcer::script::notice;
use crate::queue::{Appointment, BookingNotice, HallSpec, Language, SentCode, Ticket};
use crate::store::OutboxRecord;

/// What a message says, besides the ticket it is about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Notice {
    /// Taken; `reminded_at`: how many ahead the reminder will come at
    /// (`None`: it is that close already, there will be none).
    Issued {
        ahead: usize,
        reminded_at: Option<usize>,
    },
    Reminder {
        ahead: usize,
    },
    Called {
        recall: u32,
    },
    Transferred,
    Expired,
}

#[derive(Serialize)]
struct WindowPart<'a> {
    id: &'a str,
    label: &'a str,
}

#[derive(Serialize)]
struct TicketPart<'a> {
    number: &'a str,
    service: &'a str,
    floor: i32,
    zone: &'a str,
    window: Option<WindowPart<'a>>,
}

#[derive(Serialize)]
struct AppointmentPart<'a> {
    code: &'a str,
    service: &'a str,
    start: String,
    end: String,
}

#[derive(Serialize)]
struct Body<'a> {
    id: &'a str,
    hall: &'a str,
    kind: &'a str,
    phone: &'a str,
    text: String,
    text_en: Option<String>,
    ticket: Option<TicketPart<'a>>,
    appointment: Option<AppointmentPart<'a>>,
    recall: u32,
    created_at: String,
}

/// The languages of a service's texts: its floor's Chinese (Mandarin or
/// Cantonese, whichever it speaks first), and whether it speaks English.
fn languages(spec: &HallSpec, service: usize) -> (Language, bool) {
    let langs = spec
        .floor(spec.services[service].floor)
        .map(|f| f.languages.clone())
        .unwrap_or_default();
    let chinese = langs
        .iter()
        .copied()
        .find(|l| *l != Language::En)
        .unwrap_or(Language::Zh);
    (chinese, langs.contains(&Language::En))
}

fn floor(n: i32) -> String {
    if n < 0 {
        format!("地下{}层", -n)
    } else {
        format!("{n}楼")
    }
}

/// The ticket a message is about, as the message needs it.
struct About<'a> {
    number: &'a str,
    service: usize,
    window: Option<usize>,
}

/// The text in one language.
fn text(spec: &HallSpec, t: &About<'_>, what: &Notice, lang: Language) -> String {
    let s = &spec.services[t.service];
    let (num, f, z) = (t.number, s.floor, &s.zone);
    let window = t.window.map(|w| &spec.windows[w]);
    let en = lang == Language::En;
    match what {
        Notice::Called { .. } => match window {
            Some(w) => notice(num, w.floor, &w.zone, &w.label, lang),
            None => String::new(),
        },
        Notice::Issued { ahead, reminded_at } => match (en, reminded_at) {
            (false, Some(r)) => format!(
                "您已取号{num}，前面{ahead}人，请在{}{z}区等候，前面剩{r}人时将提醒您",
                floor(f)
            ),
            (false, None) => format!(
                "您已取号{num}，前面{ahead}人，即将叫号，请到{}{z}区等候，不再另行提醒",
                floor(f)
            ),
            (true, Some(r)) => format!(
                "Your number is {num}; {ahead} ahead of you. Please wait on {f}F zone {z}; we will remind you when {r} are left."
            ),
            (true, None) => format!(
                "Your number is {num}; {ahead} ahead of you, your turn is near. Please go to {f}F zone {z} now; there will be no other reminder."
            ),
        },
        Notice::Reminder { ahead } if en => {
            format!("Number {num}: {ahead} ahead of you. Please come to {f}F zone {z}.")
        }
        Notice::Reminder { ahead } => {
            format!("{num}号您好，前面还有{ahead}人，请到{}{z}区等候叫号", floor(f))
        }
        Notice::Transferred if en => format!(
            "Number {num}: please go on to {} on {f}F zone {z}; you keep your number.",
            s.name_en.as_deref().unwrap_or(&s.name)
        ),
        Notice::Transferred => format!(
            "{num}号请到{}{z}区继续办理{}，号码不变",
            floor(f),
            s.name
        ),
        Notice::Expired if en => {
            format!("Number {num} has expired: the day has ended. Please take a new number.")
        }
        Notice::Expired => format!("{num}号已过期（今日办理已结束），请重新取号"),
    }
}

/// A phone number as listings show it: `138****0000`.
pub fn masked_phone(p: &str) -> String {
    let chars: Vec<char> = p.chars().collect();
    let (head, tail) = if chars.len() >= 11 {
        (3, 4)
    } else {
        (2.min(chars.len() / 3), 2.min(chars.len() / 3))
    };
    let mid = chars.len().saturating_sub(head + tail);
    format!(
        "{}{}{}",
        chars[..head].iter().collect::<String>(),
        "*".repeat(mid.max(1)),
        chars[chars.len() - tail..].iter().collect::<String>()
    )
}

#[derive(Serialize)]
struct OutboxItem<'a> {
    id: &'a str,
    kind: &'a str,
    phone: String,
    status: &'static str,
    attempts: u32,
    last_error: Option<&'a str>,
    created_at: String,
    next_attempt_at: String,
}

/// One message after a retry.
pub fn outbox_message(
    spec: &crate::queue::HallSpec,
    m: &crate::store::OutboxRecord,
) -> super::Reply {
    super::json(200, &outbox_item(spec, m))
}

fn outbox_item<'a>(
    spec: &crate::queue::HallSpec,
    m: &'a crate::store::OutboxRecord,
) -> OutboxItem<'a> {
    OutboxItem {
        id: &m.id,
        kind: &m.kind,
        phone: masked_phone(&m.phone),
        status: m.status.as_str(),
        attempts: m.attempts,
        last_error: m.last_error.as_deref(),
        created_at: time(spec, m.created_at),
        next_attempt_at: time(spec, m.next_attempt_at),
    }
}

/// `GET /halls/{hall}/outbox`: the messages, phones masked.
pub fn outbox_list(
    spec: &crate::queue::HallSpec,
    records: &[crate::store::OutboxRecord],
) -> super::Reply {
    let items: Vec<OutboxItem<'_>> = records.iter().map(|m| outbox_item(spec, m)).collect();
    super::json(200, &items)
}

/// A ticket's message as its command writes it to the outbox: the facts
/// its body is rendered from at delivery ([`rendered`]), not the body.
///
/// The body (two texts, the ticket, the window) is three to four times
/// the size of these facts, and rendering it was a part of every command
/// with a phone; the outbox thread renders it instead, below the
/// commands' priority, and the commit writes a fraction of the bytes. The
/// facts are the ticket's at the command (number, service, window, how
/// many ahead), so the text is what it would have been then; only the
/// config's names (a window's label) are read at delivery. Bookings'
/// messages are rare and keep their body rendered whole.
#[derive(Serialize, Deserialize)]
struct Draft<'a> {
    /// Always 1: tells a draft from a body rendered whole (bookings, and
    /// rows an older hallcast wrote).
    draft: u8,
    number: std::borrow::Cow<'a, str>,
    service: std::borrow::Cow<'a, str>,
    window: Option<std::borrow::Cow<'a, str>>,
    notice: Notice,
}

/// The outbox's stored form of a message about ticket `t`.
pub fn ticket_draft(spec: &HallSpec, t: &Ticket, what: &Notice) -> Bytes {
    let about = About {
        number: &t.number,
        service: t.service,
        window: t.window,
    };
    draft(spec, &about, what)
}

fn draft(spec: &HallSpec, t: &About<'_>, what: &Notice) -> Bytes {
    encode(&Draft {
        draft: 1,
        number: t.number.into(),
        service: spec.services[t.service].id.as_str().into(),
        window: t.window.map(|w| spec.windows[w].id.as_str().into()),
        notice: what.clone(),
    })
}

/// The webhook body of stored message `m`: rendered from its draft, or
/// as stored when it was rendered whole. An error names what the config
/// no longer has.
pub fn rendered(spec: &HallSpec, m: &OutboxRecord) -> Result<Bytes, String> {
    let Ok(d) = serde_json::from_slice::<Draft<'_>>(&m.body) else {
        return Ok(m.body.clone());
    };
    let service = spec
        .service_index(&d.service)
        .ok_or_else(|| format!("service {} is no longer in the config", d.service))?;
    let window = match &d.window {
        Some(w) => Some(
            spec.window_index(w)
                .ok_or_else(|| format!("window {w} is no longer in the config"))?,
        ),
        None => None,
    };
    let about = About {
        number: &d.number,
        service,
        window,
    };
    Ok(notify_body(
        spec,
        &about,
        &m.id,
        &m.kind,
        &m.phone,
        &d.notice,
        m.created_at,
    ))
}

/// The webhook body (§9) of one message about a ticket.
fn notify_body(
    spec: &HallSpec,
    t: &About<'_>,
    id: &str,
    kind: &str,
    phone: &str,
    what: &Notice,
    now: DateTime<Utc>,
) -> Bytes {
    let s = &spec.services[t.service];
    let (chinese, english) = languages(spec, t.service);
    let window = t.window.map(|w| {
        let w = &spec.windows[w];
        WindowPart {
            id: &w.id,
            label: &w.label,
        }
    });
    encode(&Body {
        id,
        hall: &spec.id,
        kind,
        phone,
        text: text(spec, t, what, chinese),
        text_en: english.then(|| text(spec, t, what, Language::En)),
        ticket: Some(TicketPart {
            number: t.number,
            service: &s.id,
            floor: s.floor,
            zone: &s.zone,
            window: if matches!(what, Notice::Called { .. }) {
                window
            } else {
                None
            },
        }),
        appointment: None,
        recall: match what {
            Notice::Called { recall } => *recall,
            _ => 0,
        },
        created_at: time(spec, now),
    })
}

/// A booking's text in one language.
fn booking_text(spec: &HallSpec, a: &Appointment, what: BookingNotice, lang: Language) -> String {
    let s = &spec.services[a.service];
    let local = |t: DateTime<Utc>| t.with_timezone(&spec.timezone);
    let (start, end) = (local(a.start), local(a.end));
    // A service that stopped taking bookings keeps the slot as its window.
    let (opens, closes) = match &s.appointments {
        Some(r) => (a.check_in_opens(r), a.check_in_closes(r)),
        None => (a.start, a.end),
    };
    let (opens, closes) = (local(opens).format("%H:%M"), local(closes).format("%H:%M"));
    let (code, f, z) = (&a.code, s.floor, &s.zone);
    let (day, from, to) = (
        start.format("%Y-%m-%d"),
        start.format("%H:%M"),
        end.format("%H:%M"),
    );
    let name_en = s.name_en.as_deref().unwrap_or(&s.name);
    match (what, lang == Language::En) {
        (BookingNotice::Booked, false) => format!(
            "您已预约{}：{}月{}日{from}-{to}，预约码{code}。请于{opens}后到{}{z}区签到取号",
            s.name,
            start.format("%-m"),
            start.format("%-d"),
            floor(f)
        ),
        (BookingNotice::Booked, true) => format!(
            "Booked: {name_en} on {day} {from}-{to}, code {code}. Check in from {opens} on {f}F zone {z}."
        ),
        (BookingNotice::Reminder, false) => format!(
            "您预约的{}将于{from}开始，预约码{code}，请于{closes}前到{}{z}区签到",
            s.name,
            floor(f)
        ),
        (BookingNotice::Reminder, true) => format!(
            "Reminder: your {name_en} booking starts at {from}, code {code}. Please check in on {f}F zone {z} by {closes}."
        ),
        (BookingNotice::Missed, false) => format!(
            "您预约的{}（{}月{}日{from}）未在{closes}前签到，预约已失效；如需办理请重新预约或现场取号",
            s.name,
            start.format("%-m"),
            start.format("%-d")
        ),
        (BookingNotice::Missed, true) => format!(
            "Your {name_en} booking of {day} {from} was missed: no check-in by {closes}. Please book again or take a number."
        ),
    }
}

/// The `verify` message's body (A2): the §9 form with `code`, and a
/// text that holds it.
pub fn verify_body(spec: &HallSpec, id: &str, code: &SentCode, now: DateTime<Utc>) -> Bytes {
    #[derive(Serialize)]
    struct Verify<'a> {
        id: &'a str,
        hall: &'a str,
        kind: &'a str,
        phone: &'a str,
        code: &'a str,
        text: String,
        text_en: String,
        ticket: Option<()>,
        appointment: Option<()>,
        recall: u32,
        expires_at: String,
        created_at: String,
    }
    let minutes = crate::queue::citizen::CODE_MINUTES;
    encode(&Verify {
        id,
        hall: &spec.id,
        kind: "verify",
        phone: &code.phone,
        code: &code.code,
        text: format!(
            "【{}】您的验证码是{}，{minutes}分钟内有效。请勿告诉他人；工作人员不会向您索要验证码。",
            spec.name, code.code
        ),
        text_en: format!(
            "{}: your code is {}. It is valid for {minutes} minutes. Never share it; staff will never ask for it.",
            spec.name, code.code
        ),
        ticket: None,
        appointment: None,
        recall: 0,
        expires_at: time(spec, code.expires),
        created_at: time(spec, now),
    })
}

/// The webhook body (§9) of one message about booking `a`.
pub fn booking_body(
    spec: &HallSpec,
    a: &Appointment,
    id: &str,
    kind: &str,
    phone: &str,
    what: BookingNotice,
    now: DateTime<Utc>,
) -> Bytes {
    let (chinese, english) = languages(spec, a.service);
    encode(&Body {
        id,
        hall: &spec.id,
        kind,
        phone,
        text: booking_text(spec, a, what, chinese),
        text_en: english.then(|| booking_text(spec, a, what, Language::En)),
        ticket: None,
        appointment: Some(AppointmentPart {
            code: &a.code,
            service: &spec.services[a.service].id,
            start: time(spec, a.start),
            end: time(spec, a.end),
        }),
        recall: 0,
        created_at: time(spec, now),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::OutboxStatus;

    fn stored(body: Bytes, kind: &str, at: DateTime<Utc>) -> OutboxRecord {
        OutboxRecord {
            id: "m1".into(),
            hall: "demo".into(),
            kind: kind.into(),
            phone: "13800000000".into(),
            ticket: Some(1),
            appointment: None,
            body,
            status: OutboxStatus::Pending,
            attempts: 0,
            last_error: None,
            created_at: at,
            next_attempt_at: at,
        }
    }

    #[test]
    fn a_draft_is_rendered_whole_at_delivery_and_a_whole_body_is_sent_as_stored() {
        let spec = crate::demo::spec();
        let at = DateTime::from_timestamp_millis(1_796_173_200_123).unwrap();
        let service = spec.service_index("business").unwrap();
        let window = spec.window_index("3-01");
        let called = About {
            number: "A023",
            service,
            window,
        };
        let d = draft(&spec, &called, &Notice::Called { recall: 1 });
        let body = rendered(&spec, &stored(d.clone(), "called", at)).unwrap();
        assert!(
            d.len() * 3 < body.len(),
            "{} vs {} bytes",
            d.len(),
            body.len()
        );
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["id"], "m1");
        assert_eq!(v["hall"], "demo");
        assert_eq!(v["kind"], "called");
        assert_eq!(v["phone"], "13800000000");
        assert_eq!(v["recall"], 1);
        assert_eq!(v["ticket"]["number"], "A023");
        assert_eq!(v["ticket"]["service"], "business");
        assert_eq!(v["ticket"]["window"]["id"], "3-01");
        assert_eq!(v["created_at"], time(&spec, at).as_str());
        assert!(
            v["text"].as_str().unwrap().contains("A023"),
            "{}",
            v["text"]
        );
        // The same facts give the same body: a retry signs what the first
        // try sent.
        assert_eq!(body, rendered(&spec, &stored(d, "called", at)).unwrap());

        let waiting = About {
            window: None,
            ..called
        };
        let issued = Notice::Issued {
            ahead: 2,
            reminded_at: None,
        };
        let body = rendered(
            &spec,
            &stored(draft(&spec, &waiting, &issued), "issued", at),
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(
            v["text"].as_str().unwrap().contains("前面2人"),
            "{}",
            v["text"]
        );
        assert!(v["ticket"]["window"].is_null());

        // Bookings and rows an older hallcast wrote hold the body itself.
        let whole = Bytes::from_static(br#"{"id":"m1","kind":"booked"}"#);
        assert_eq!(
            rendered(&spec, &stored(whole.clone(), "booked", at)).unwrap(),
            whole
        );

        // A service the config dropped since cannot be rendered: named.
        let gone = Bytes::from_static(
            br#"{"draft":1,"number":"Z001","service":"gone","window":null,"notice":"Expired"}"#,
        );
        let e = rendered(&spec, &stored(gone, "expired", at)).unwrap_err();
        assert!(e.contains("service gone is no longer in the config"), "{e}");
    }
}
