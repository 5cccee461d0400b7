//! The config file (contract §2): raw TOML → a validated [`Config`].
//!
//! Every rule is checked here, once, so the rest of the program can trust
//! the indices and names inside a [`HallSpec`]. An error names the file, the
//! entry and the rule, so the person installing the hall can fix it.

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use crate::limits::LimitsConfig;

use crate::queue::{
    Announce, AppointmentSpec, CitizenRules, DayHours, FloorSpec, HallSpec, Hours, KioskSpec,
    Language, NotifySpec, RatingsSpec, ServiceSpec, WindowSpec, ZoneSpec,
};

/// Where the server listens unless told otherwise (contract §1).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Where state is kept unless told otherwise (contract §1).
pub const DEFAULT_DATA_DIR: &str = "./hallcast-data";
/// Tokens shorter than this are guessable (contract §2).
pub const MIN_TOKEN_LEN: usize = 16;
/// Service-time estimate when the config gives none: ten minutes is typical
/// for a counter service in a government hall.
pub const DEFAULT_AVG_SERVICE_SECONDS: u32 = 600;

/// A URL as it may be logged or shown: without its user, password or
/// token (`nats://***@host:4222`) and without its query.
pub fn redacted_url(url: &str) -> String {
    let url = url.split(['?', '#']).next().unwrap_or(url);
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host_end = rest.find('/').unwrap_or(rest.len());
            let (authority, path) = rest.split_at(host_end);
            match authority.rsplit_once('@') {
                Some((_, host)) => format!("{scheme}://***@{host}{path}"),
                None => format!("{scheme}://{authority}{path}"),
            }
        }
        None => "(a URL that does not read)".to_string(),
    }
}

/// The cluster's secret from `--cluster-secret-file`: the file's text
/// without its final newline.
pub fn read_secret_file(path: &Path) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.display().to_string(),
        entry: "cluster_secret".into(),
        rule: format!("cannot read the cluster's secret: {e}"),
    })?;
    Ok(text.trim_end_matches(['\n', '\r']).to_string())
}

/// The server pings every WebSocket this often unless `[server]
/// ping_seconds` says otherwise (the contract asks for at least every
/// 30 s); a peer that has not answered by the next ping is dead and is
/// dropped (`gateway::pinger`).
pub const PING_EVERY: std::time::Duration = std::time::Duration::from_secs(25);

/// The whole validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// Base of links put into QR codes; `None` means "http://{listen}".
    pub public_url: Option<String>,
    /// A folder of recorded clips replacing the built-in voice.
    pub sounds_dir: Option<PathBuf>,
    /// Play announcements on the server's sound device (`playback` feature).
    pub playback: bool,
    /// How often every WebSocket is pinged; a peer silent for one period
    /// after a ping is dropped.
    pub ping_every: std::time::Duration,
    /// `[server.limits]` (contract §13).
    pub limits: LimitsConfig,
    /// `[server] store` (contract §14): a cluster's PostgreSQL URL; `None`
    /// keeps state in SQLite in `data_dir`.
    pub store: Option<String>,
    /// `[server] bus`: the cluster's NATS URL; `None` keeps events in the
    /// process (other nodes of a cluster still read them from PostgreSQL).
    pub bus: Option<String>,
    /// `[server] cluster`: the cluster's name; `None` until
    /// [`Config::check_cluster`] sets the default.
    pub cluster: Option<String>,
    /// `[server] cluster_secret` (or `--cluster-secret-file`): signs every
    /// message on the bus (A8); required with a bus.
    pub cluster_secret: Option<String>,
    /// `--bus-creds` (or `[server] bus_creds`): a NATS credentials file.
    pub bus_creds: Option<PathBuf>,
    pub halls: Vec<Arc<HallSpec>>,
}

impl Config {
    /// Checks the cluster's settings (contract §14) once the command line
    /// had its say, and names the cluster after the PostgreSQL database
    /// when no name was given. `source` names where they came from.
    pub fn check_cluster(&mut self, source: &str) -> Result<(), ConfigError> {
        let err = |entry: &str, rule: String| ConfigError {
            file: source.to_string(),
            entry: entry.to_string(),
            rule,
        };
        if let Some(store) = &self.store {
            if !(store.starts_with("postgres://") || store.starts_with("postgresql://")) {
                return Err(err(
                    "store",
                    format!("'{store}' is not a PostgreSQL URL; write postgres://USER@HOST:PORT/DATABASE (or leave store out for SQLite in data_dir)"),
                ));
            }
        }
        if let Some(bus) = &self.bus {
            if !(bus.starts_with("nats://") || bus.starts_with("tls://")) {
                return Err(err(
                    "bus",
                    format!(
                        "'{}' is not a NATS URL; write nats://HOST:4222 (tls://HOST:4222 for TLS; credentials as nats://USER:PASSWORD@HOST or nats://TOKEN@HOST, or --bus-creds FILE)",
                        redacted_url(bus)
                    ),
                ));
            }
            if self.store.is_none() {
                return Err(err(
                    "bus",
                    "a bus joins the nodes of a cluster, which share a PostgreSQL store: give store too".into(),
                ));
            }
            match &self.cluster_secret {
                None => {
                    return Err(err(
                        "cluster_secret",
                        "a cluster with a bus needs a shared secret, so its nodes believe only each other: set [server] cluster_secret (or --cluster-secret-file FILE) to the same 32+ random characters on every node".into(),
                    ))
                }
                Some(s) if s.chars().count() < 32 => {
                    return Err(err(
                        "cluster_secret",
                        "must be at least 32 characters (e.g. `openssl rand -hex 32`)".into(),
                    ))
                }
                Some(_) => {}
            }
        }
        if self.cluster.is_none() {
            // The database's name, spelled as a cluster name may be
            // (`hallcast_city` → `hallcast-city`).
            self.cluster = self.store.as_deref().map(|s| {
                let path = s.split('?').next().unwrap_or(s);
                let db = path.rsplit('/').next().unwrap_or("");
                let name: String = db
                    .chars()
                    .map(|c| match c.to_ascii_lowercase() {
                        c @ ('a'..='z' | '0'..='9' | '-') => c,
                        _ => '-',
                    })
                    .take(64)
                    .collect();
                if name.is_empty() {
                    "hallcast".to_string()
                } else {
                    name
                }
            });
        }
        if let Some(name) = &self.cluster {
            let ok = (1..=64).contains(&name.len())
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !ok {
                return Err(err(
                    "cluster",
                    format!("'{name}' is not a cluster name: 1 to 64 of a-z, 0-9 and '-' (the default is the database's name; set cluster when that is not one)"),
                ));
            }
        }
        Ok(())
    }

    /// The base URL for links shown to citizens.
    pub fn public_url(&self, listen: SocketAddr) -> String {
        match &self.public_url {
            Some(u) => u.trim_end_matches('/').to_string(),
            None => format!("http://{listen}"),
        }
    }
}

/// A config file that breaks a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub entry: String,
    pub rule: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.entry.is_empty() {
            write!(f, "config file {}: {}", self.file, self.rule)
        } else {
            write!(
                f,
                "config file {}: {}: {}",
                self.file, self.entry, self.rule
            )
        }
    }
}

impl std::error::Error for ConfigError {}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    halls: Vec<RawHall>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<String>,
    data_dir: Option<String>,
    public_url: Option<String>,
    sounds_dir: Option<String>,
    playback: Option<bool>,
    ping_seconds: Option<u64>,
    limits: Option<RawLimits>,
    store: Option<String>,
    bus: Option<String>,
    cluster: Option<String>,
    cluster_secret: Option<String>,
    bus_creds: Option<PathBuf>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    citizen_per_second: Option<u32>,
    public_per_ip_per_second: Option<u32>,
    staff_per_second: Option<u32>,
    streams_per_ip: Option<u32>,
    connections_per_ip: Option<u32>,
    trusted_proxies: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHall {
    id: String,
    name: String,
    timezone: String,
    admin_token: String,
    #[serde(default)]
    floors: Vec<RawFloor>,
    #[serde(default)]
    services: Vec<RawService>,
    #[serde(default)]
    windows: Vec<RawWindow>,
    #[serde(default)]
    kiosks: Vec<RawKiosk>,
    hours: Option<RawHours>,
    /// Citizens may take a number on their phones without a token (§8).
    #[serde(default)]
    mobile_tickets: bool,
    /// Zone guides: a zone's name and how to find it.
    #[serde(default)]
    zones: Vec<RawZone>,
    notify: Option<RawNotify>,
    ratings: Option<RawRatings>,
    citizens: Option<RawCitizens>,
}

/// `[halls.citizens]` (A2–A3): every field optional, 0 = no cap.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCitizens {
    verify_phones: Option<bool>,
    open_bookings_per_phone: Option<u32>,
    bookings_per_phone_per_date: Option<u32>,
    bookings_per_address_per_day: Option<u32>,
    waiting_mobile_per_phone: Option<u32>,
    mobile_per_address_per_day: Option<u32>,
    messages_per_phone_per_day: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRatings {
    rate_within_days: Option<u32>,
    followup_days: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotify {
    webhook_url: String,
    secret: String,
    remind_ahead: Option<u32>,
    remind_before_minutes: Option<u32>,
    max_attempts: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawZone {
    floor: i32,
    id: String,
    name: String,
    #[serde(rename = "where")]
    where_: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHours {
    mon: Option<String>,
    tue: Option<String>,
    wed: Option<String>,
    thu: Option<String>,
    fri: Option<String>,
    sat: Option<String>,
    sun: Option<String>,
    last_ticket_minutes: Option<u32>,
    #[serde(default)]
    special: Vec<RawSpecial>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpecial {
    date: String,
    hours: String,
}

/// `[halls.hours]` → [`Hours`]; errors name the weekday or special date.
fn validate_hours(raw: RawHours) -> Result<Hours, Rule> {
    let at = |entry: String, rule: String| (entry, rule);
    let mut hours = Hours::default();
    let days = [
        ("mon", raw.mon),
        ("tue", raw.tue),
        ("wed", raw.wed),
        ("thu", raw.thu),
        ("fri", raw.fri),
        ("sat", raw.sat),
        ("sun", raw.sun),
    ];
    for (i, (name, text)) in days.into_iter().enumerate() {
        if let Some(text) = text {
            hours.week[i] = DayHours::parse(&text).map_err(|r| at(format!("hours.{name}"), r))?;
        }
    }
    let last = raw.last_ticket_minutes.unwrap_or(0);
    if last > 240 {
        return Err(at(
            "hours.last_ticket_minutes".into(),
            format!("{last} must be between 0 and 240"),
        ));
    }
    hours.last_ticket_minutes = last;
    for (i, sp) in raw.special.into_iter().enumerate() {
        let entry = format!("hours.special[{i}] (date '{}')", sp.date);
        let date = chrono::NaiveDate::parse_from_str(&sp.date, "%Y-%m-%d")
            .map_err(|_| at(entry.clone(), "date must be YYYY-MM-DD".into()))?;
        let day = DayHours::parse(&sp.hours).map_err(|r| at(entry.clone(), r))?;
        if hours.special.insert(date, day).is_some() {
            return Err(at(
                entry,
                "this date appears twice; give each special date once".into(),
            ));
        }
    }
    Ok(hours)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFloor {
    number: i32,
    name: String,
    announce: String,
    languages: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    id: String,
    name: String,
    name_en: Option<String>,
    prefix: String,
    floor: i32,
    zone: String,
    avg_service_seconds: Option<u32>,
    appointments: Option<RawAppointments>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAppointments {
    slot_minutes: Option<u32>,
    per_slot: Option<u32>,
    days_ahead: Option<u32>,
    early_minutes: Option<u32>,
    late_minutes: Option<u32>,
    #[serde(default)]
    require_id: bool,
}

/// `[halls.services.appointments]` → [`AppointmentSpec`]: each field within
/// what a hall's day can hold, the defaults of the contract's example.
fn validate_appointments(a: RawAppointments) -> Result<AppointmentSpec, String> {
    let field = |v: Option<u32>, default: u32, name: &str, range: std::ops::RangeInclusive<u32>| {
        let v = v.unwrap_or(default);
        if range.contains(&v) {
            Ok(v)
        } else {
            Err(format!(
                "appointments.{name} must be between {} and {}",
                range.start(),
                range.end()
            ))
        }
    };
    Ok(AppointmentSpec {
        slot_minutes: field(a.slot_minutes, 30, "slot_minutes", 5..=720)?,
        per_slot: field(a.per_slot, 4, "per_slot", 1..=1000)?,
        days_ahead: field(a.days_ahead, 7, "days_ahead", 0..=90)?,
        early_minutes: field(a.early_minutes, 30, "early_minutes", 0..=240)?,
        late_minutes: field(a.late_minutes, 15, "late_minutes", 0..=240)?,
        require_id: a.require_id,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWindow {
    id: String,
    label: String,
    floor: i32,
    zone: String,
    services: Vec<String>,
    token: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKiosk {
    id: String,
    token: String,
}

/// Reads and validates a config file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: file.clone(),
        entry: String::new(),
        rule: format!("cannot be read: {e}"),
    })?;
    parse(&file, &text)
}

/// Validates config text; `file` names it in errors.
pub fn parse(file: &str, text: &str) -> Result<Config, ConfigError> {
    let raw: RawFile = toml::from_str(text).map_err(|e| ConfigError {
        file: file.to_string(),
        entry: String::new(),
        rule: format!("is not valid hallcast TOML: {}", e.to_string().trim_end()),
    })?;
    let err = |entry: String, rule: String| ConfigError {
        file: file.to_string(),
        entry,
        rule,
    };
    let listen = match &raw.server.listen {
        Some(l) => l.parse().map_err(|_| {
            err(
                "[server] listen".into(),
                format!("'{l}' is not an IP:PORT address such as 127.0.0.1:8080"),
            )
        })?,
        None => DEFAULT_LISTEN
            .parse()
            .expect("default listen address parses"),
    };
    if let Some(u) = &raw.server.public_url {
        if !(u.starts_with("http://") || u.starts_with("https://")) {
            return Err(err(
                "[server] public_url".into(),
                format!("'{u}' must start with http:// or https://"),
            ));
        }
    }
    let ping_seconds = raw.server.ping_seconds.unwrap_or(PING_EVERY.as_secs());
    if !(1..=30).contains(&ping_seconds) {
        return Err(err(
            "[server] ping_seconds".into(),
            format!(
                "{ping_seconds} must be between 1 and 30 (the contract pings at least every 30 s)"
            ),
        ));
    }
    let limits = validate_limits(raw.server.limits.unwrap_or_default())
        .map_err(|(entry, rule)| err(format!("[server.limits] {entry}"), rule))?;
    if raw.halls.is_empty() {
        return Err(err(
            String::new(),
            "has no [[halls]]; declare at least one hall".into(),
        ));
    }
    let mut halls = Vec::new();
    let mut hall_ids = HashSet::new();
    for (i, h) in raw.halls.into_iter().enumerate() {
        let entry = format!("halls[{i}] (id '{}')", h.id);
        if !hall_ids.insert(h.id.clone()) {
            return Err(err(
                entry,
                "hall id is used twice; hall ids must be unique".into(),
            ));
        }
        let spec = validate_hall(h).map_err(|(sub, rule)| {
            err(
                if sub.is_empty() {
                    entry.clone()
                } else {
                    format!("{entry} {sub}")
                },
                rule,
            )
        })?;
        halls.push(Arc::new(spec));
    }
    Ok(Config {
        listen,
        data_dir: PathBuf::from(
            raw.server
                .data_dir
                .unwrap_or_else(|| DEFAULT_DATA_DIR.to_string()),
        ),
        public_url: raw.server.public_url,
        sounds_dir: raw.server.sounds_dir.map(PathBuf::from),
        playback: raw.server.playback.unwrap_or(false),
        ping_every: std::time::Duration::from_secs(ping_seconds),
        limits,
        store: raw.server.store,
        bus: raw.server.bus,
        cluster: raw.server.cluster,
        cluster_secret: raw.server.cluster_secret,
        bus_creds: raw.server.bus_creds,
        halls,
    })
}

type Rule = (String, String);

fn validate_limits(raw: RawLimits) -> Result<LimitsConfig, Rule> {
    let d = LimitsConfig::default();
    let mut trusted = Vec::new();
    for (i, p) in raw.trusted_proxies.unwrap_or_default().iter().enumerate() {
        let ip = p.parse().map_err(|_| {
            (
                format!("trusted_proxies[{i}]"),
                format!("'{p}' is not an IP address such as 127.0.0.1"),
            )
        })?;
        trusted.push(ip);
    }
    Ok(LimitsConfig {
        citizen_per_second: raw.citizen_per_second.unwrap_or(d.citizen_per_second),
        public_per_ip_per_second: raw
            .public_per_ip_per_second
            .unwrap_or(d.public_per_ip_per_second),
        staff_per_second: raw.staff_per_second.unwrap_or(d.staff_per_second),
        streams_per_ip: raw.streams_per_ip.unwrap_or(d.streams_per_ip),
        connections_per_ip: raw.connections_per_ip.unwrap_or(d.connections_per_ip),
        trusted_proxies: trusted,
    })
}

fn validate_hall(h: RawHall) -> Result<HallSpec, Rule> {
    let top = |rule: String| (String::new(), rule);
    if !valid_id(&h.id, 32, |c| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'
    }) {
        return Err(top("id must match [a-z0-9-]{1,32}".into()));
    }
    if h.name.trim().is_empty() {
        return Err(top("name must not be empty".into()));
    }
    let timezone: chrono_tz::Tz = h.timezone.parse().map_err(|_| {
        top(format!(
            "timezone '{}' is not an IANA time zone name such as Asia/Shanghai",
            h.timezone
        ))
    })?;
    check_token(&h.admin_token).map_err(|rule| top(format!("admin_{rule}")))?;
    if h.floors.is_empty() {
        return Err(top(
            "has no [[halls.floors]]; declare at least one floor".into()
        ));
    }

    let mut floors: Vec<FloorSpec> = Vec::new();
    for (i, f) in h.floors.into_iter().enumerate() {
        let at = |rule: String| (format!("floors[{i}] (number {})", f.number), rule);
        if floors.iter().any(|g| g.number == f.number) {
            return Err(at("floor number is used twice".into()));
        }
        if !(-9..=199).contains(&f.number) {
            return Err(at("number must be between -9 and 199".into()));
        }
        let announce = match f.announce.as_str() {
            "voice" => Announce::Voice,
            "silent" => Announce::Silent,
            other => {
                return Err(at(format!(
                    "announce '{other}' must be \"voice\" or \"silent\""
                )))
            }
        };
        let mut languages = Vec::new();
        for l in f.languages.unwrap_or_else(|| vec!["zh".into()]) {
            let lang = Language::parse(&l).ok_or_else(|| {
                let known: Vec<String> = Language::ALL
                    .iter()
                    .map(|k| format!("\"{}\"", k.as_str()))
                    .collect();
                at(format!(
                    "language '{l}' is not supported; the known languages are {}",
                    known.join(", ")
                ))
            })?;
            if languages.contains(&lang) {
                return Err(at(format!("language '{l}' is listed twice")));
            }
            languages.push(lang);
        }
        if announce == Announce::Voice && languages.is_empty() {
            return Err(at("a voice floor needs at least one language".into()));
        }
        floors.push(FloorSpec {
            number: f.number,
            name: f.name,
            announce,
            languages,
        });
    }
    let has_floor = |n: i32| floors.iter().any(|f| f.number == n);

    let mut services: Vec<ServiceSpec> = Vec::new();
    for (i, s) in h.services.into_iter().enumerate() {
        let at = |rule: String| (format!("services[{i}] (id '{}')", s.id), rule);
        if !valid_id(&s.id, 32, |c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_'
        }) {
            return Err(at("id must match [a-z0-9_-]{1,32}".into()));
        }
        if services.iter().any(|o| o.id == s.id) {
            return Err(at("service id is used twice in this hall".into()));
        }
        if !(1..=2).contains(&s.prefix.len()) || !s.prefix.chars().all(|c| c.is_ascii_uppercase()) {
            return Err(at(format!(
                "prefix '{}' must be one or two ASCII capital letters",
                s.prefix
            )));
        }
        if let Some(o) = services.iter().find(|o| o.prefix == s.prefix) {
            return Err(at(format!(
                "prefix '{}' is already used by service '{}'; prefixes must be unique in the hall",
                s.prefix, o.id
            )));
        }
        // "A" and "AB" would make "AB001" ambiguous on a screen.
        if let Some(o) = services
            .iter()
            .find(|o| o.prefix.starts_with(&s.prefix) || s.prefix.starts_with(&o.prefix))
        {
            return Err(at(format!(
                "prefix '{}' overlaps prefix '{}' of service '{}'; numbers would be ambiguous",
                s.prefix, o.prefix, o.id
            )));
        }
        if !has_floor(s.floor) {
            return Err(at(format!(
                "floor {} is not a floor of this hall; add it to [[halls.floors]]",
                s.floor
            )));
        }
        check_text(&s.name, "name").map_err(at)?;
        check_text(&s.zone, "zone").map_err(at)?;
        let avg = s.avg_service_seconds.unwrap_or(DEFAULT_AVG_SERVICE_SECONDS);
        if avg == 0 || avg > 86_400 {
            return Err(at("avg_service_seconds must be between 1 and 86400".into()));
        }
        let appointments = s
            .appointments
            .map(validate_appointments)
            .transpose()
            .map_err(at)?;
        if appointments.is_some() && h.hours.is_none() {
            return Err(at(
                "takes appointments, but the hall has no [halls.hours]: slots are cut from the opening hours; add them".into(),
            ));
        }
        services.push(ServiceSpec {
            id: s.id,
            name: s.name,
            name_en: s.name_en,
            prefix: s.prefix,
            floor: s.floor,
            zone: s.zone,
            avg_service_seconds: avg,
            appointments,
        });
    }
    if services.is_empty() {
        return Err(top(
            "has no [[halls.services]]; declare at least one service".into(),
        ));
    }

    let mut tokens: HashSet<String> = HashSet::from([h.admin_token.clone()]);
    let mut windows: Vec<WindowSpec> = Vec::new();
    for (i, w) in h.windows.into_iter().enumerate() {
        let at = |rule: String| (format!("windows[{i}] (id '{}')", w.id), rule);
        if !valid_id(&w.id, 16, |c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(at("id must match [A-Za-z0-9-]{1,16}".into()));
        }
        if windows.iter().any(|o| o.id == w.id) {
            return Err(at("window id is used twice in this hall".into()));
        }
        check_text(&w.label, "label").map_err(at)?;
        check_text(&w.zone, "zone").map_err(at)?;
        if !has_floor(w.floor) {
            return Err(at(format!(
                "floor {} is not a floor of this hall; add it to [[halls.floors]]",
                w.floor
            )));
        }
        if w.services.is_empty() {
            return Err(at("services must list at least one service".into()));
        }
        let mut idx = Vec::new();
        for sid in &w.services {
            let s = services.iter().position(|s| &s.id == sid).ok_or_else(|| {
                at(format!(
                    "serves unknown service '{sid}'; declare it in [[halls.services]]"
                ))
            })?;
            if idx.contains(&s) {
                return Err(at(format!("service '{sid}' is listed twice")));
            }
            idx.push(s);
        }
        check_token(&w.token).map_err(at)?;
        if !tokens.insert(w.token.clone()) {
            return Err(at("token is already used by another window, kiosk or the admin; every token must be unique".into()));
        }
        windows.push(WindowSpec {
            id: w.id,
            label: w.label,
            floor: w.floor,
            zone: w.zone,
            services: idx,
            token: w.token,
        });
    }
    for (i, s) in services.iter().enumerate() {
        if !windows.iter().any(|w| w.services.contains(&i)) {
            return Err((
                format!("services[{i}] (id '{}')", s.id),
                "no window serves this service, so its tickets could never be called; add it to a window's services".into(),
            ));
        }
    }

    let mut kiosks: Vec<KioskSpec> = Vec::new();
    for (i, k) in h.kiosks.into_iter().enumerate() {
        let at = |rule: String| (format!("kiosks[{i}] (id '{}')", k.id), rule);
        if !valid_id(&k.id, 32, |c| {
            c.is_ascii_alphanumeric() || c == '-' || c == '_'
        }) {
            return Err(at("id must match [A-Za-z0-9_-]{1,32}".into()));
        }
        if kiosks.iter().any(|o| o.id == k.id) {
            return Err(at("kiosk id is used twice in this hall".into()));
        }
        check_token(&k.token).map_err(at)?;
        if !tokens.insert(k.token.clone()) {
            return Err(at("token is already used by a window, another kiosk or the admin; every token must be unique".into()));
        }
        kiosks.push(KioskSpec {
            id: k.id,
            token: k.token,
        });
    }

    let hours = h.hours.map(validate_hours).transpose()?;

    let notify = match h.notify {
        None => None,
        Some(n) => {
            let at = |rule: String| ("notify".to_string(), rule);
            let url = n.webhook_url.trim();
            let scheme_ok = url.starts_with("http://") || url.starts_with("https://");
            if !scheme_ok || url.parse::<reqwest::Url>().is_err() {
                return Err(at(format!(
                    "webhook_url '{url}' must be an http:// or https:// URL"
                )));
            }
            if n.secret.chars().count() < 16 {
                return Err(at(
                    "secret must be at least 16 characters; it signs every delivery".into(),
                ));
            }
            let max_attempts = n.max_attempts.unwrap_or(8);
            if max_attempts == 0 {
                return Err(at("max_attempts must be at least 1".into()));
            }
            Some(NotifySpec {
                webhook_url: url.to_string(),
                secret: n.secret,
                remind_ahead: n.remind_ahead.unwrap_or(3),
                remind_before_minutes: n.remind_before_minutes.unwrap_or(60),
                max_attempts,
            })
        }
    };

    let ratings = match h.ratings {
        None => RatingsSpec::default(),
        Some(r) => {
            let d = RatingsSpec::default();
            let spec = RatingsSpec {
                rate_within_days: r.rate_within_days.unwrap_or(d.rate_within_days),
                followup_days: r.followup_days.unwrap_or(d.followup_days),
            };
            // Finished tickets stay in memory as long as they can be rated.
            if !(1..=90).contains(&spec.rate_within_days) {
                return Err(("ratings".into(), "rate_within_days must be 1 to 90".into()));
            }
            if !(1..=365).contains(&spec.followup_days) {
                return Err(("ratings".into(), "followup_days must be 1 to 365".into()));
            }
            spec
        }
    };

    let citizens = match h.citizens {
        None => CitizenRules::default(),
        Some(c) => {
            let d = CitizenRules::default();
            CitizenRules {
                verify_phones: c.verify_phones.unwrap_or(d.verify_phones),
                open_bookings_per_phone: c
                    .open_bookings_per_phone
                    .unwrap_or(d.open_bookings_per_phone),
                bookings_per_phone_per_date: c
                    .bookings_per_phone_per_date
                    .unwrap_or(d.bookings_per_phone_per_date),
                bookings_per_address_per_day: c
                    .bookings_per_address_per_day
                    .unwrap_or(d.bookings_per_address_per_day),
                waiting_mobile_per_phone: c
                    .waiting_mobile_per_phone
                    .unwrap_or(d.waiting_mobile_per_phone),
                mobile_per_address_per_day: c
                    .mobile_per_address_per_day
                    .unwrap_or(d.mobile_per_address_per_day),
                messages_per_phone_per_day: c
                    .messages_per_phone_per_day
                    .unwrap_or(d.messages_per_phone_per_day),
            }
        }
    };

    let mut zones: Vec<ZoneSpec> = Vec::new();
    for (i, z) in h.zones.into_iter().enumerate() {
        let at = |rule: String| {
            (
                format!("zones[{i}] (floor {}, id '{}')", z.floor, z.id),
                rule,
            )
        };
        if !has_floor(z.floor) {
            return Err(at(format!(
                "floor {} is not one of the hall's floors",
                z.floor
            )));
        }
        if z.id.is_empty() || z.id.len() > 8 {
            return Err(at(
                "id must be 1 to 8 characters, as windows and services name it".into(),
            ));
        }
        if zones.iter().any(|o| o.floor == z.floor && o.id == z.id) {
            return Err(at("this floor's zone is listed twice".into()));
        }
        if z.name.trim().is_empty() {
            return Err(at("name must not be empty".into()));
        }
        zones.push(ZoneSpec {
            floor: z.floor,
            id: z.id,
            name: z.name,
            where_: z.where_.filter(|w| !w.trim().is_empty()),
        });
    }

    Ok(HallSpec {
        id: h.id,
        name: h.name,
        timezone,
        admin_token: h.admin_token,
        floors,
        services,
        windows,
        kiosks,
        hours,
        mobile_tickets: h.mobile_tickets,
        zones,
        notify,
        ratings,
        citizens,
    })
}

fn valid_id(id: &str, max: usize, ok: impl Fn(char) -> bool) -> bool {
    !id.is_empty() && id.len() <= max && id.chars().all(ok)
}

fn check_text(value: &str, field: &str) -> Result<(), String> {
    if value.trim().is_empty() || value.chars().count() > 64 {
        return Err(format!("{field} must be 1 to 64 characters"));
    }
    Ok(())
}

fn check_token(token: &str) -> Result<(), String> {
    if token.chars().count() < MIN_TOKEN_LEN {
        return Err(format!("token must be at least {MIN_TOKEN_LEN} characters"));
    }
    if !token.chars().all(|c| c.is_ascii_graphic()) {
        return Err("token must be visible ASCII characters (it travels in an HTTP header)".into());
    }
    Ok(())
}
