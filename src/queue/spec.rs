//! The static shape of a hall: floors, services, windows and kiosks, as
//! validated from the config file. Nothing here changes while the server runs.

use chrono_tz::Tz;

/// How a floor announces calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Announce {
    /// Spoken calls over the floor's loudspeakers, in the floor's languages.
    Voice,
    /// Screens and phones only (无声叫号).
    Silent,
}

impl Announce {
    /// The config and wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Announce::Voice => "voice",
            Announce::Silent => "silent",
        }
    }
}

/// A language the announcer can speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Language {
    /// Mandarin (普通话).
    Zh,
    /// Cantonese (粤语), written in traditional characters.
    Yue,
    En,
}

impl Language {
    /// The config and wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Language::Zh => "zh",
            Language::Yue => "yue",
            Language::En => "en",
        }
    }

    /// Every language, in the spelling config errors list them by.
    pub const ALL: [Language; 3] = [Language::Zh, Language::Yue, Language::En];

    /// Parses the config spelling.
    pub fn parse(s: &str) -> Option<Language> {
        match s {
            "zh" => Some(Language::Zh),
            "yue" => Some(Language::Yue),
            "en" => Some(Language::En),
            _ => None,
        }
    }
}

/// One floor of a hall.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FloorSpec {
    pub number: i32,
    pub name: String,
    pub announce: Announce,
    pub languages: Vec<Language>,
}

/// A service (业务) that issues numbers with its own prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceSpec {
    pub id: String,
    pub name: String,
    pub name_en: Option<String>,
    pub prefix: String,
    pub floor: i32,
    pub zone: String,
    pub avg_service_seconds: u32,
    /// Bookings (§8); `None`: the service takes none.
    pub appointments: Option<AppointmentSpec>,
}

/// How a service takes bookings (预约, §8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppointmentSpec {
    /// Slots start at each opening range's start, this long each.
    pub slot_minutes: u32,
    /// Bookings one slot takes.
    pub per_slot: u32,
    /// How far ahead a citizen may book; today is 0.
    pub days_ahead: u32,
    /// Check-in opens this long before the slot starts.
    pub early_minutes: u32,
    /// Check-in closes this long after the slot ends; then it is missed.
    pub late_minutes: u32,
    /// A booking names its holder with a checked ID number (实名预约, A4).
    pub require_id: bool,
}

/// A window (窗口); `services` are indices into [`HallSpec::services`], in
/// the window's order of preference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WindowSpec {
    pub id: String,
    pub label: String,
    pub floor: i32,
    pub zone: String,
    pub services: Vec<usize>,
    pub token: String,
}

/// A kiosk that may issue tickets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KioskSpec {
    pub id: String,
    pub token: String,
}

/// A zone's guide: its name and how to find it ("出电梯右转"), shown to
/// a citizen sent there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneSpec {
    pub floor: i32,
    pub id: String,
    pub name: String,
    pub where_: Option<String>,
}

/// Where and how a hall's SMS/WeChat messages go (§9).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotifySpec {
    pub webhook_url: String,
    pub secret: String,
    /// The "N ahead of you" reminder (0: never).
    pub remind_ahead: u32,
    /// The appointment reminder before its slot (0: never).
    pub remind_before_minutes: u32,
    /// Tries before a message is dead.
    pub max_attempts: u32,
}

/// How a hall takes ratings and follows bad ones up (§10).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RatingsSpec {
    /// A ticket can be rated this many days after it was done.
    pub rate_within_days: u32,
    /// A bad review's case is due this many days after it opened.
    pub followup_days: u32,
}

impl RatingsSpec {
    /// How long a finished ticket stays in memory: while it can be rated,
    /// and at least two days (yesterday's ticket on a citizen's phone),
    /// with a day's slack.
    pub fn finished_kept(&self) -> chrono::Duration {
        chrono::Duration::days(i64::from(self.rate_within_days).max(2) + 1)
    }
}

impl Default for RatingsSpec {
    fn default() -> Self {
        RatingsSpec {
            rate_within_days: 7,
            followup_days: 5,
        }
    }
}

/// A validated hall. Built only by `config`, so every index inside is valid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HallSpec {
    pub id: String,
    pub name: String,
    pub timezone: Tz,
    pub admin_token: String,
    pub floors: Vec<FloorSpec>,
    pub services: Vec<ServiceSpec>,
    pub windows: Vec<WindowSpec>,
    pub kiosks: Vec<KioskSpec>,
    /// Opening hours; `None`: the hall never closes.
    pub hours: Option<super::hours::Hours>,
    /// A citizen may take a number on the phone without a token (§8).
    pub mobile_tickets: bool,
    /// Zone guides, where the config gives them.
    pub zones: Vec<ZoneSpec>,
    /// Messages to citizens' phones; `None`: nothing is sent.
    pub notify: Option<NotifySpec>,
    /// Ratings and their follow-up (defaults when the config is silent).
    pub ratings: RatingsSpec,
    /// Caps on what one phone or one address may take (A2–A3; defaults
    /// when the config is silent).
    pub citizens: super::citizen::CitizenRules,
}

impl HallSpec {
    /// Index of the service with this id.
    pub fn service_index(&self, id: &str) -> Option<usize> {
        self.services.iter().position(|s| s.id == id)
    }

    /// The guide of a floor's zone, if the config gives one.
    pub fn zone(&self, floor: i32, id: &str) -> Option<&ZoneSpec> {
        self.zones.iter().find(|z| z.floor == floor && z.id == id)
    }

    /// Index of the window with this id.
    pub fn window_index(&self, id: &str) -> Option<usize> {
        self.windows.iter().position(|w| w.id == id)
    }

    /// The floor with this number.
    pub fn floor(&self, number: i32) -> Option<&FloorSpec> {
        self.floors.iter().find(|f| f.number == number)
    }

    /// Floors whose screens show this service's waiting count: the floor the
    /// service is located on, and every floor with a window serving it (a
    /// floor of comprehensive windows shows every line it takes from).
    pub fn floors_of_service(&self, service: usize) -> Vec<i32> {
        let mut floors = vec![self.services[service].floor];
        for w in &self.windows {
            if w.services.contains(&service) && !floors.contains(&w.floor) {
                floors.push(w.floor);
            }
        }
        floors.sort_unstable();
        floors
    }

    /// Services whose waiting counts a floor's screen shows, in config order.
    pub fn services_of_floor(&self, floor: i32) -> Vec<usize> {
        (0..self.services.len())
            .filter(|&s| self.floors_of_service(s).contains(&floor))
            .collect()
    }
}
