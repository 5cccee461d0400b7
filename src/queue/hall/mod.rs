//! The live state of one hall and every command that changes it.
//!
//! Each command checks everything first and mutates only when it will
//! succeed, so a refused command changes nothing. Time comes in as an
//! argument; tokens are made by the caller. The result of a command is an
//! [`Outcome`]: the events it emitted (with their sequence numbers) and the
//! records it touched, which the engine journals before anyone sees them.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};

mod booking;
mod citizen;
mod rating;

use super::appointment::{Appointment, BookingNotice};
use super::citizen::Mark;
use super::error::QueueError;
use super::eta::ServiceClock;
use super::event::{Event, EventKind};
use super::rating::Case;
use super::spec::{Announce, HallSpec};
use super::ticket::{CallMark, Channel, Priority, Status, Ticket};

pub use booking::{BookRequest, BookingRef};
pub use citizen::{CodeCheck, PhoneClaim, SentCode};
pub use rating::RatingFrom;

/// How many calls a floor's "recent calls" list keeps (contract §4: 10).
pub const RECENT_CALLS: usize = 10;

/// A closed case stays in memory this long (the store keeps it for good).
pub const CASES_KEPT_DAYS: i64 = 2;

/// A window's changing state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WindowState {
    pub paused: bool,
    /// The ticket called to this window and not yet finished.
    pub current: Option<u64>,
}

/// One entry of a floor's recent-calls list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecentCall {
    pub floor: i32,
    pub seq: u64,
    pub number: String,
    pub window: usize,
    pub at: DateTime<Utc>,
}

/// The day's counter of a service's numbers after a ticket was issued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counter {
    pub service: usize,
    pub day: NaiveDate,
    pub last: u32,
}

/// What a command did.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// The ticket the command was about (issued, called, finished …).
    pub ticket: Option<u64>,
    /// Events in sequence order.
    pub events: Vec<Event>,
    /// Tickets whose records changed.
    pub tickets: Vec<u64>,
    /// Windows whose state changed.
    pub windows: Vec<usize>,
    /// Numbering counter after an issue.
    pub counter: Option<Counter>,
    /// Service whose service-time estimate changed.
    pub clocks: Vec<usize>,
    /// Calls to add to floors' recent lists.
    pub recent: Vec<RecentCall>,
    /// Services whose line changed, so `ahead`/ETA of their tickets moved.
    pub lines: Vec<usize>,
    /// `call` found nothing waiting.
    pub idle: bool,
    /// A day's end ended tickets (midnight, start-up or `close-day`).
    pub day_end: Option<DayEnd>,
    /// The booking the command was about (booked, cancelled, checked in).
    pub appointment: Option<u64>,
    /// Bookings whose records changed.
    pub appointments: Vec<u64>,
    /// Messages about bookings this change makes (§9).
    pub notices: Vec<(u64, BookingNotice)>,
    /// The follow-up case the command was about (opened or stepped).
    pub case: Option<u64>,
    /// Cases whose records changed.
    pub cases: Vec<u64>,
    /// Citizens' marks (by store key) that changed (A2–A4).
    pub marks: Vec<String>,
    /// A code to send to a phone as a `verify` message.
    pub sent_code: Option<SentCode>,
    /// How a try of a phone's code ended.
    pub code_check: Option<CodeCheck>,
}

/// How a window's part in a ticket ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    Done,
    NoShow,
    /// The ticket waits again, for this service.
    Transfer(usize),
    /// The day ended (midnight or close-day) with the ticket still at the
    /// window.
    Midnight,
}

/// What ending a day did (contract §7: `close-day`'s answer).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DayEnd {
    /// Waiting tickets that became `expired`.
    pub expired: usize,
    /// Called or serving tickets that became `done`.
    pub done: usize,
}

impl Outcome {
    /// Nothing happened: no event, no record.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
            && self.tickets.is_empty()
            && self.windows.is_empty()
            && self.counter.is_none()
            && self.clocks.is_empty()
            && self.recent.is_empty()
            && self.appointments.is_empty()
            && self.cases.is_empty()
            && self.marks.is_empty()
    }

    /// This outcome followed by `next`'s, as one: events stay in sequence
    /// order; the ticket named is `next`'s.
    pub fn then(mut self, next: Outcome) -> Outcome {
        self.ticket = next.ticket;
        self.events.extend(next.events);
        self.tickets.extend(next.tickets);
        self.windows.extend(next.windows);
        self.counter = next.counter.or(self.counter);
        self.clocks.extend(next.clocks);
        self.recent.extend(next.recent);
        self.lines.extend(next.lines);
        self.idle = next.idle;
        self.day_end = next.day_end.or(self.day_end);
        self.appointment = next.appointment;
        self.appointments.extend(next.appointments);
        self.notices.extend(next.notices);
        self.case = next.case.or(self.case);
        self.cases.extend(next.cases);
        self.marks.extend(next.marks);
        self.sent_code = next.sent_code.or(self.sent_code);
        self.code_check = next.code_check.or(self.code_check);
        self
    }
}

/// A new ticket's fields chosen by the caller.
#[derive(Clone, Debug)]
pub struct IssueRequest {
    pub service: String,
    pub priority: Priority,
    pub channel: Channel,
    pub notify_phone: Option<String>,
    /// The hash of a phone token naming the phone instead (A2).
    pub phone_token: Option<String>,
    /// The client address (an IPv6 one by its /64) of a request made
    /// without a token; `None` for staff, kiosks and check-ins.
    pub origin: Option<String>,
    /// Staff (the admin token) may issue outside the opening hours, for a
    /// citizen who is already inside; so may a booking's check-in.
    pub outside_hours: bool,
    /// The start of the booked slot, for a ticket of a check-in.
    pub slot: Option<DateTime<Utc>>,
}

/// Everything the store keeps of a hall, to rebuild it exactly.
#[derive(Clone, Debug, Default)]
pub struct Restored {
    pub tickets: Vec<Ticket>,
    /// Window index → state.
    pub windows: Vec<(usize, WindowState)>,
    pub counters: Vec<Counter>,
    pub floor_seqs: Vec<(i32, u64)>,
    pub hall_seq: u64,
    /// Service index → clock.
    pub clocks: Vec<(usize, ServiceClock)>,
    /// Recent calls, oldest first.
    pub recent: Vec<RecentCall>,
    /// Highest ticket id and line position ever used, also of tickets not
    /// loaded, so that ids are never reused.
    pub max_ticket_id: u64,
    pub max_line_pos: u64,
    /// Numbers issued on recent days, of every ticket in the store, also
    /// those of services no longer configured: a service renamed, or
    /// prefixes swapped, between restarts must never repeat a number of
    /// the day.
    pub issued: Vec<(NaiveDate, String)>,
    /// Bookings still open, and recent ones.
    pub appointments: Vec<Appointment>,
    /// Highest booking id ever used.
    pub max_appointment_id: u64,
    /// Follow-up cases not closed, and those closed lately.
    pub cases: Vec<Case>,
    /// Highest case id ever used.
    pub max_case_id: u64,
    /// Citizens' marks not yet past their time, by store key.
    pub marks: Vec<(String, Mark)>,
}

/// The live state of one hall.
#[derive(Clone, Debug, PartialEq)]
pub struct Hall {
    spec: Arc<HallSpec>,
    tickets: HashMap<u64, Ticket>,
    by_token: HashMap<String, u64>,
    by_number: HashMap<(NaiveDate, String), u64>,
    /// Per service: line key → ticket id, in call order.
    lines: Vec<BTreeMap<(Priority, u64), u64>>,
    windows: Vec<WindowState>,
    counters: HashMap<(usize, NaiveDate), u32>,
    floor_seqs: BTreeMap<i32, u64>,
    hall_seq: u64,
    next_ticket_id: u64,
    next_line_pos: u64,
    clocks: Vec<ServiceClock>,
    /// Per floor, newest first, one entry per number.
    recent: BTreeMap<i32, VecDeque<RecentCall>>,
    service_floors: Vec<Vec<i32>>,
    floor_services: BTreeMap<i32, Vec<usize>>,
    /// Tickets of this hall-local day and every earlier one have been
    /// ended; `None` until the first check after a start.
    ended_through: Option<NaiveDate>,
    appointments: HashMap<u64, Appointment>,
    appointment_by_token: HashMap<String, u64>,
    appointment_by_code: HashMap<String, u64>,
    /// Bookings holding a place, per (service, slot start).
    places: HashMap<(usize, DateTime<Utc>), u32>,
    next_appointment_id: u64,
    /// Per service: waiting normal tickets of a check-in, by (slot start,
    /// line position) — also in `lines`. Those whose slot started by
    /// `slots_through` are called before every other normal ticket.
    booked_lines: Vec<BTreeMap<(DateTime<Utc>, u64), u64>>,
    /// The instant the call order was last brought up to.
    slots_through: DateTime<Utc>,
    /// Follow-up cases not closed, and those closed lately (§10).
    cases: BTreeMap<u64, Case>,
    next_case_id: u64,
    /// What the hall remembers of phones, addresses and phone tokens.
    marks: HashMap<String, Mark>,
}

/// Where a waiting ticket stands in the call order, smallest first, field
/// by field as declared: the green channel; then checked-in bookings whose
/// slot has started, oldest slot first; then everything else — each by the
/// window's order of services, then age.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct OrderKey {
    class: Class,
    /// The booked slot's start (started bookings); the earliest instant
    /// for the others, so it never decides between them.
    slot: DateTime<Utc>,
    /// The service's place in the window's order of services.
    preference: usize,
    /// The ticket's place in the order tickets joined lines.
    line_pos: u64,
}

/// The three classes of the call order, first called first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Class {
    Green,
    StartedBooking,
    Other,
}

impl Hall {
    /// An empty hall.
    pub fn new(spec: Arc<HallSpec>) -> Hall {
        Hall::restore(spec, Restored::default())
    }

    /// Rebuilds a hall from what the store kept. Records that no longer fit
    /// the configuration (a removed window, say) are left out of the live
    /// state but stay in the store.
    pub fn restore(spec: Arc<HallSpec>, r: Restored) -> Hall {
        let service_floors: Vec<Vec<i32>> = (0..spec.services.len())
            .map(|s| spec.floors_of_service(s))
            .collect();
        let floor_services = spec
            .floors
            .iter()
            .map(|f| (f.number, spec.services_of_floor(f.number)))
            .collect();
        let mut hall = Hall {
            tickets: HashMap::new(),
            by_token: HashMap::new(),
            by_number: HashMap::new(),
            lines: vec![BTreeMap::new(); spec.services.len()],
            windows: vec![WindowState::default(); spec.windows.len()],
            counters: HashMap::new(),
            floor_seqs: spec.floors.iter().map(|f| (f.number, 0)).collect(),
            hall_seq: r.hall_seq,
            next_ticket_id: r.max_ticket_id + 1,
            next_line_pos: r.max_line_pos + 1,
            clocks: spec
                .services
                .iter()
                .map(|s| ServiceClock::seeded(s.avg_service_seconds))
                .collect(),
            recent: spec
                .floors
                .iter()
                .map(|f| (f.number, VecDeque::new()))
                .collect(),
            service_floors,
            floor_services,
            ended_through: None,
            appointments: HashMap::new(),
            appointment_by_token: HashMap::new(),
            appointment_by_code: HashMap::new(),
            places: HashMap::new(),
            next_appointment_id: r.max_appointment_id + 1,
            booked_lines: vec![BTreeMap::new(); spec.services.len()],
            slots_through: DateTime::<Utc>::MIN_UTC,
            cases: BTreeMap::new(),
            next_case_id: r.max_case_id + 1,
            marks: r.marks.into_iter().collect(),
            spec,
        };
        for (floor, seq) in r.floor_seqs {
            // Sequences of a floor removed from the config are kept in the
            // store; a floor that comes back continues where it stopped.
            hall.floor_seqs.insert(floor, seq);
        }
        for c in r.counters {
            hall.counters.insert((c.service, c.day), c.last);
        }
        // Each service counts on from the highest number its prefix has
        // issued that day, whoever issued it.
        for (day, number) in &r.issued {
            let digits = number.trim_start_matches(|c: char| c.is_ascii_uppercase());
            let prefix = &number[..number.len() - digits.len()];
            let Ok(n) = digits.parse::<u32>() else {
                continue;
            };
            for (s, spec) in hall.spec.services.iter().enumerate() {
                if spec.prefix == prefix {
                    let c = hall.counters.entry((s, *day)).or_insert(0);
                    *c = (*c).max(n);
                }
            }
        }
        for (s, clock) in r.clocks {
            if s < hall.clocks.len() {
                hall.clocks[s] = clock;
            }
        }
        for t in r.tickets {
            if t.service >= hall.spec.services.len() {
                continue;
            }
            hall.next_ticket_id = hall.next_ticket_id.max(t.id + 1);
            hall.next_line_pos = hall.next_line_pos.max(t.line_pos + 1);
            let (id, waiting) = (t.id, t.status == Status::Waiting);
            hall.by_token.insert(t.token.clone(), t.id);
            hall.by_number.insert((t.day, t.number.clone()), t.id);
            hall.tickets.insert(t.id, t);
            if waiting {
                hall.enqueue(id);
            }
        }
        for a in r.appointments {
            if a.service >= hall.spec.services.len() {
                continue;
            }
            hall.next_appointment_id = hall.next_appointment_id.max(a.id + 1);
            hall.index_appointment(a);
        }
        for c in r.cases {
            hall.next_case_id = hall.next_case_id.max(c.id + 1);
            hall.cases.insert(c.id, c);
        }
        for (w, state) in r.windows {
            if w >= hall.windows.len() {
                continue;
            }
            let current = state.current.filter(|id| {
                hall.tickets
                    .get(id)
                    .is_some_and(|t| t.status.is_at_window() && t.window == Some(w))
            });
            hall.windows[w] = WindowState {
                paused: state.paused,
                current,
            };
        }
        for call in r.recent {
            hall.push_recent(call);
        }
        hall
    }

    /// Takes in what other nodes of a cluster changed (contract §14): the
    /// after-images of every record their commands wrote since this hall
    /// was last at one with the store, as the store has them now. The hall
    /// is then what [`Hall::restore`] from the store would make of it,
    /// without reading what did not change.
    pub fn absorb(&mut self, d: Restored) {
        for (floor, seq) in d.floor_seqs {
            let s = self.floor_seqs.entry(floor).or_insert(0);
            *s = (*s).max(seq);
        }
        self.hall_seq = self.hall_seq.max(d.hall_seq);
        self.next_ticket_id = self.next_ticket_id.max(d.max_ticket_id + 1);
        self.next_line_pos = self.next_line_pos.max(d.max_line_pos + 1);
        self.next_appointment_id = self.next_appointment_id.max(d.max_appointment_id + 1);
        self.next_case_id = self.next_case_id.max(d.max_case_id + 1);
        for c in d.counters {
            let last = self.counters.entry((c.service, c.day)).or_insert(0);
            *last = (*last).max(c.last);
        }
        for (s, clock) in d.clocks {
            if s < self.clocks.len() {
                self.clocks[s] = clock;
            }
        }
        for t in d.tickets {
            if t.service >= self.spec.services.len() {
                continue;
            }
            if self
                .tickets
                .get(&t.id)
                .is_some_and(|old| old.status == Status::Waiting)
            {
                self.dequeue(t.id);
            }
            self.next_ticket_id = self.next_ticket_id.max(t.id + 1);
            self.next_line_pos = self.next_line_pos.max(t.line_pos + 1);
            let (id, waiting) = (t.id, t.status == Status::Waiting);
            self.by_token.insert(t.token.clone(), t.id);
            self.by_number.insert((t.day, t.number.clone()), t.id);
            self.tickets.insert(id, t);
            if waiting {
                self.enqueue(id);
            }
        }
        for a in d.appointments {
            if a.service >= self.spec.services.len() {
                continue;
            }
            if let Some(old) = self.appointments.get(&a.id) {
                if old.status.holds_place() {
                    if let Some(n) = self.places.get_mut(&(old.service, old.start)) {
                        *n = n.saturating_sub(1);
                    }
                }
            }
            self.next_appointment_id = self.next_appointment_id.max(a.id + 1);
            self.index_appointment(a);
        }
        for c in d.cases {
            self.next_case_id = self.next_case_id.max(c.id + 1);
            self.cases.insert(c.id, c);
        }
        self.marks.extend(d.marks);
        for (w, state) in d.windows {
            if w < self.windows.len() {
                self.windows[w] = state;
            }
        }
        for call in d.recent {
            self.push_recent(call);
        }
    }

    // ----- reading -----

    /// The hall's static shape.
    pub fn spec(&self) -> &Arc<HallSpec> {
        &self.spec
    }

    /// A ticket by internal id.
    pub fn ticket(&self, id: u64) -> Option<&Ticket> {
        self.tickets.get(&id)
    }

    /// Every ticket in memory (today's, and finished ones of the last days).
    pub fn tickets(&self) -> impl Iterator<Item = &Ticket> + '_ {
        self.tickets.values()
    }

    /// A ticket by its citizen token.
    pub fn ticket_by_token(&self, token: &str) -> Option<&Ticket> {
        self.by_token.get(token).and_then(|id| self.tickets.get(id))
    }

    /// A window's state.
    pub fn window(&self, w: usize) -> &WindowState {
        &self.windows[w]
    }

    /// Tickets waiting for a service.
    pub fn waiting_count(&self, service: usize) -> usize {
        self.lines[service].len()
    }

    /// A service's waiting tickets in call order.
    pub fn line(&self, service: usize) -> impl Iterator<Item = &Ticket> + '_ {
        // Lazily, in order: a caller that takes the first few pays for those.
        let line = &self.lines[service];
        let green = line.range(..(Priority::Normal, 0)).map(|(_, id)| id);
        let started = self.started(service).map(|(_, id)| id);
        let normal = line
            .range((Priority::Normal, 0)..)
            .map(|(_, id)| id)
            .filter(|id| !self.slot_started(&self.tickets[id]));
        green
            .chain(started)
            .chain(normal)
            .map(|id| &self.tickets[id])
    }

    /// The tickets a window would call next, in the order it would call them.
    pub fn window_line(&self, w: usize, limit: usize) -> Vec<&Ticket> {
        let prefs = &self.spec.windows[w].services;
        let mut all: Vec<(OrderKey, u64)> = Vec::new();
        for (pref, &s) in prefs.iter().enumerate() {
            // The best `limit` of each service hold the window's best `limit`.
            for t in self.line(s).take(limit) {
                all.push((self.order_key(t, pref), t.id));
            }
        }
        all.sort_unstable();
        all.into_iter()
            .take(limit)
            .map(|(_, id)| &self.tickets[&id])
            .collect()
    }

    /// Tickets its window would call before this one from its line; 0 once
    /// it left the line.
    pub fn ahead(&self, t: &Ticket) -> usize {
        if t.status != Status::Waiting {
            return 0;
        }
        let line = &self.lines[t.service];
        if t.priority == Priority::Green {
            return line.range(..t.line_key()).count();
        }
        let green = line.range(..(Priority::Normal, 0)).count();
        if self.slot_started(t) {
            let slot = t.slot.expect("a started ticket has a slot");
            return green
                + self.booked_lines[t.service]
                    .range(..(slot, t.line_pos))
                    .count();
        }
        // Every started booking, and the other normal tickets older than
        // this one (less the started ones among them, counted already).
        let started: Vec<u64> = self.started(t.service).map(|(k, _)| k.1).collect();
        let older = line.range((Priority::Normal, 0)..t.line_key()).count();
        let older_started = started.iter().filter(|&&pos| pos < t.line_pos).count();
        green + started.len() + older - older_started
    }

    /// Estimated seconds until the ticket is called, given `ahead`.
    pub fn eta_seconds(&self, t: &Ticket, ahead: usize) -> u64 {
        if t.status != Status::Waiting {
            return 0;
        }
        self.clocks[t.service].eta_seconds(ahead, self.open_windows(t.service))
    }

    /// A service's service-time estimate.
    pub fn clock(&self, service: usize) -> ServiceClock {
        self.clocks[service]
    }

    /// Windows taking calls for a service now.
    pub fn open_windows(&self, service: usize) -> usize {
        let serving = |(i, w): &(usize, &crate::queue::spec::WindowSpec)| {
            w.services.contains(&service) && !self.windows[*i].paused
        };
        self.spec.windows.iter().enumerate().filter(serving).count()
    }

    /// The last sequence number of a floor (0 before its first event).
    pub fn floor_seq(&self, floor: i32) -> u64 {
        self.floor_seqs.get(&floor).copied().unwrap_or(0)
    }

    /// The last sequence number of the hall.
    pub fn hall_seq(&self) -> u64 {
        self.hall_seq
    }

    /// A floor's recent calls, newest first.
    pub fn recent(&self, floor: i32) -> impl Iterator<Item = &RecentCall> + '_ {
        self.recent.get(&floor).into_iter().flatten()
    }

    /// Services whose waiting counts a floor shows.
    pub fn floor_services(&self, floor: i32) -> &[usize] {
        self.floor_services
            .get(&floor)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// The numbering counter of a service on a day.
    pub fn counter(&self, service: usize, day: NaiveDate) -> u32 {
        self.counters.get(&(service, day)).copied().unwrap_or(0)
    }

    /// The hall-local calendar day at `now`; numbering restarts with it.
    pub fn local_day(&self, now: DateTime<Utc>) -> NaiveDate {
        now.with_timezone(&self.spec.timezone).date_naive()
    }

    // ----- commands -----

    /// Issues a new ticket (kiosk, phone or appointment).
    pub fn issue(
        &mut self,
        req: IssueRequest,
        token: String,
        now: DateTime<Utc>,
    ) -> Result<Outcome, QueueError> {
        let service = self.service_by_id(&req.service)?;
        if let (Some(hours), false) = (&self.spec.hours, req.outside_hours) {
            let tz = self.spec.timezone;
            if !hours.takes_tickets(tz, now) {
                let next_open = hours.next_open(tz, now);
                let message = if hours.is_open(tz, now) {
                    format!(
                        "hall {} takes no new tickets in the last {} minutes before it closes",
                        self.spec.id, hours.last_ticket_minutes
                    )
                } else {
                    format!("hall {} is closed now", self.spec.id)
                };
                let when = match next_open {
                    Some(t) => format!("; it opens again at {}", self.local_time(t)),
                    None => "; it has no opening hours ahead".into(),
                };
                return Err(QueueError::Closed {
                    message: message + &when,
                    next_open: next_open.map(|t| t.with_timezone(&tz)),
                });
            }
        }
        let phone = self.claimed_phone(
            &PhoneClaim {
                phone: req.notify_phone.clone(),
                token_hash: req.phone_token.clone(),
            },
            req.origin.is_some(),
            now,
        )?;
        let caps = self.spec.citizens;
        if req.channel == Channel::Mobile {
            if let Some(p) = &phone {
                let waiting = self.lines[service]
                    .values()
                    .filter(|id| {
                        let t = &self.tickets[id];
                        t.channel == Channel::Mobile && t.notify_phone.as_deref() == Some(p)
                    })
                    .count() as u32;
                if super::citizen::over(caps.waiting_mobile_per_phone, waiting) {
                    return Err(QueueError::LimitReached(format!(
                        "waiting_mobile_per_phone: this phone already has {waiting} number(s) waiting for '{}'; follow that one, or cancel it first",
                        req.service
                    )));
                }
            }
            self.check_address(
                req.origin.as_deref(),
                caps.mobile_per_address_per_day,
                "mobile_per_address_per_day",
                |m| m.mobile,
                now,
            )?;
        }
        if self.by_token.contains_key(&token) {
            // 144 random bits make this unreachable in practice; refusing is
            // still better than handing one citizen another's ticket.
            return Err(QueueError::Conflict(
                "ticket token collision; retry the request".into(),
            ));
        }
        let day = self.local_day(now);
        let last = self.counter(service, day) + 1;
        let number = format!("{}{:03}", self.spec.services[service].prefix, last);
        if self.by_number.contains_key(&(day, number.clone())) {
            return Err(QueueError::Conflict(format!(
                "number {number} was already issued today; check the hall's prefixes"
            )));
        }
        self.counters.insert((service, day), last);
        let id = self.next_ticket_id;
        self.next_ticket_id += 1;
        let line_pos = self.next_line_pos;
        self.next_line_pos += 1;
        let ticket = Ticket {
            id,
            token: token.clone(),
            number: number.clone(),
            day,
            service,
            issued_service: service,
            priority: req.priority,
            channel: req.channel,
            status: Status::Waiting,
            window: None,
            recall: 0,
            line_pos,
            created_at: now,
            called_at: None,
            first_called_at: None,
            started_at: None,
            finished_at: None,
            last_call: None,
            notify_phone: phone,
            slot: req.slot,
            reminded: false,
            rating: None,
        };
        self.by_token.insert(token, id);
        self.by_number.insert((day, number), id);
        self.tickets.insert(id, ticket);
        self.enqueue(id);
        self.join_reminders(id);

        let mut out = Outcome {
            ticket: Some(id),
            tickets: vec![id],
            counter: Some(Counter { service, day, last }),
            lines: vec![service],
            ..Outcome::default()
        };
        if req.channel == Channel::Mobile {
            let origin = req.origin.as_deref();
            self.note_address(origin, |m| m.mobile += 1, now, &mut out);
        }
        self.emit_waiting(&mut out, service, now);
        Ok(out)
    }

    /// Calls the next ticket the window may serve, or the waiting ticket with
    /// `number`. The window's previous ticket, if still at the window, is done.
    pub fn call(
        &mut self,
        w: usize,
        number: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Outcome, QueueError> {
        let window = &self.spec.windows[w];
        if self.windows[w].paused {
            return Err(QueueError::Conflict(format!(
                "window {} is paused; resume it before calling",
                window.id
            )));
        }
        let next = match number {
            Some(number) => Some(self.callable_by_number(w, number, now)?),
            None => self.next_for(w),
        };

        let mut out = Outcome::default();
        if let Some(prev) = self.windows[w].current {
            self.finish(&mut out, w, prev, End::Done, now);
        }
        let Some(id) = next else {
            out.idle = true;
            return Ok(out);
        };
        self.dequeue(id);
        let t = self.tickets.get_mut(&id).expect("line holds live tickets");
        let service = t.service;
        t.status = Status::Called;
        t.window = Some(w);
        t.recall = 0;
        t.called_at = Some(now);
        t.first_called_at.get_or_insert(now);
        t.started_at = None;
        self.windows[w].current = Some(id);
        out.ticket = Some(id);
        out.windows.push(w);
        out.lines.push(service);
        self.emit_called(&mut out, w, id, now);
        self.emit_waiting(&mut out, service, now);
        Ok(out)
    }

    /// Announces the window's current ticket again.
    pub fn recall(&mut self, w: usize, now: DateTime<Utc>) -> Result<Outcome, QueueError> {
        let id = self.current_in(w, &[Status::Called], "recall")?;
        let t = self.tickets.get_mut(&id).expect("current ticket is live");
        t.recall += 1;
        let mut out = Outcome {
            ticket: Some(id),
            ..Outcome::default()
        };
        self.emit_called(&mut out, w, id, now);
        Ok(out)
    }

    /// The citizen arrived at the window.
    pub fn start(&mut self, w: usize, now: DateTime<Utc>) -> Result<Outcome, QueueError> {
        let id = self.current_in(w, &[Status::Called], "start")?;
        let t = self.tickets.get_mut(&id).expect("current ticket is live");
        t.status = Status::Serving;
        t.started_at = Some(now);
        let number = t.number.clone();
        let mut out = Outcome {
            ticket: Some(id),
            tickets: vec![id],
            ..Outcome::default()
        };
        let kind = EventKind::Ticket {
            number,
            window: w,
            status: Status::Serving,
            transferred_to: None,
        };
        self.emit(&mut out, self.spec.windows[w].floor, now, kind);
        Ok(out)
    }

    /// The window finished with its current ticket.
    pub fn complete(&mut self, w: usize, now: DateTime<Utc>) -> Result<Outcome, QueueError> {
        let id = self.current_in(w, &[Status::Called, Status::Serving], "complete")?;
        let mut out = Outcome {
            ticket: Some(id),
            ..Outcome::default()
        };
        self.finish(&mut out, w, id, End::Done, now);
        Ok(out)
    }

    /// The called citizen did not come.
    pub fn no_show(&mut self, w: usize, now: DateTime<Utc>) -> Result<Outcome, QueueError> {
        let id = self.current_in(w, &[Status::Called], "mark as no-show")?;
        let mut out = Outcome {
            ticket: Some(id),
            ..Outcome::default()
        };
        self.finish(&mut out, w, id, End::NoShow, now);
        Ok(out)
    }

    /// The current ticket keeps its number and waits again for `service`.
    pub fn transfer(
        &mut self,
        w: usize,
        service_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Outcome, QueueError> {
        let id = self.current_in(w, &[Status::Called, Status::Serving], "transfer")?;
        let to = self.service_by_id(service_id)?;
        if self.tickets[&id].service == to {
            return Err(QueueError::Conflict(format!(
                "ticket {} is already for {}; choose another service",
                self.tickets[&id].number, service_id
            )));
        }
        let mut out = Outcome {
            ticket: Some(id),
            ..Outcome::default()
        };
        self.finish(&mut out, w, id, End::Transfer(to), now);
        let t = self.tickets.get_mut(&id).expect("current ticket is live");
        t.service = to;
        t.window = None;
        t.recall = 0;
        t.called_at = None;
        t.started_at = None;
        t.finished_at = None;
        // The booking was for the first service: in the next line the
        // citizen waits by age like everyone else.
        t.slot = None;
        self.enqueue(id);
        self.join_reminders(id);
        out.lines.push(to);
        self.emit_waiting(&mut out, to, now);
        Ok(out)
    }

    /// The window stops taking calls.
    pub fn pause(&mut self, w: usize, now: DateTime<Utc>) -> Result<Outcome, QueueError> {
        self.set_paused(w, true, now)
    }

    /// The window takes calls again.
    pub fn resume(&mut self, w: usize, now: DateTime<Utc>) -> Result<Outcome, QueueError> {
        self.set_paused(w, false, now)
    }

    /// The citizen leaves the line.
    pub fn cancel(&mut self, token: &str, now: DateTime<Utc>) -> Result<Outcome, QueueError> {
        let id = *self
            .by_token
            .get(token)
            .ok_or_else(|| QueueError::NotFound("no ticket has this token".into()))?;
        let t = self.tickets.get_mut(&id).expect("indexed ticket is live");
        if t.status != Status::Waiting {
            return Err(QueueError::Conflict(format!(
                "ticket {} is {}; only a waiting ticket can be cancelled",
                t.number,
                t.status.as_str()
            )));
        }
        let service = t.service;
        self.dequeue(id);
        let t = self.tickets.get_mut(&id).expect("indexed ticket is live");
        t.status = Status::Cancelled;
        t.finished_at = Some(now);
        let mut out = Outcome {
            ticket: Some(id),
            tickets: vec![id],
            lines: vec![service],
            ..Outcome::default()
        };
        self.emit_waiting(&mut out, service, now);
        Ok(out)
    }

    /// Brings the hall up to `now`: ends the tickets of earlier days if the
    /// hall-local day changed since the last check (contract §7: at
    /// midnight, and at start-up for tickets of earlier days); moves the
    /// check-ins of slots that started ahead, marks bookings not checked in
    /// by their deadline missed and makes the reminders before slots (§8,
    /// §9). Runs before every command and about every second; empty when
    /// nothing was due.
    pub fn advance(&mut self, now: DateTime<Utc>) -> Outcome {
        let mut out = match self.local_day(now).pred_opt() {
            Some(yesterday) if self.day_is_due(now) => self.end_days_through(yesterday, now),
            _ => Outcome::default(),
        };
        self.advance_bookings(&mut out, now);
        if !out.is_empty() {
            self.forget_marks(now);
        }
        out
    }

    /// [`Hall::advance`] would change something. Cheap, for a ticker that
    /// asks every second.
    pub fn is_due(&self, now: DateTime<Utc>) -> bool {
        self.day_is_due(now) || self.bookings_due(now)
    }

    /// A day change is due: [`Hall::advance`] would end something or
    /// move the day on.
    pub fn day_is_due(&self, now: DateTime<Utc>) -> bool {
        let yesterday = self.local_day(now).pred_opt();
        match (self.ended_through, yesterday) {
            (Some(d), Some(y)) => d < y,
            (None, _) => true,
            (_, None) => false,
        }
    }

    /// Staff close the day now, as midnight would: today's tickets still
    /// waiting expire, those at a window are done. Numbering goes on.
    pub fn close_day(&mut self, now: DateTime<Utc>) -> Outcome {
        let today = self.local_day(now);
        let mut out = self.end_days_through(today, now);
        out.day_end.get_or_insert_with(DayEnd::default);
        out
    }

    /// Ends every unfinished ticket of `day` and earlier.
    fn end_days_through(&mut self, day: NaiveDate, now: DateTime<Utc>) -> Outcome {
        let mut out = Outcome::default();
        // The first time after a start, also tickets left at a window the
        // config no longer has (or that holds another): nothing can
        // finish them otherwise.
        let first = self.ended_through.is_none();
        let orphan = |t: &Ticket| {
            t.status.is_at_window()
                && t.window
                    .is_none_or(|w| self.windows[w].current != Some(t.id))
        };
        let mut ending: Vec<u64> = self
            .tickets
            .values()
            .filter(|t| !t.status.is_final() && (t.day <= day || (first && orphan(t))))
            .map(|t| t.id)
            .collect();
        // In issue order, so events and records come out the same every time.
        ending.sort_unstable();
        let mut end = DayEnd::default();
        let mut services = Vec::new();
        for id in ending {
            let t = &self.tickets[&id];
            match (t.status, t.window) {
                (Status::Waiting, _) => {
                    self.dequeue(id);
                    let t = self.tickets.get_mut(&id).expect("ending ticket is live");
                    t.status = Status::Expired;
                    t.finished_at = Some(now);
                    if !services.contains(&t.service) {
                        services.push(t.service);
                    }
                    out.tickets.push(id);
                    end.expired += 1;
                }
                (_, Some(w)) if self.windows[w].current == Some(id) => {
                    self.finish(&mut out, w, id, End::Midnight, now);
                    end.done += 1;
                }
                _ => {
                    // At no window (a window removed from the config):
                    // nothing to tell a screen, just end it.
                    let t = self.tickets.get_mut(&id).expect("ending ticket is live");
                    t.status = Status::Done;
                    t.finished_at = Some(now);
                    out.tickets.push(id);
                    end.done += 1;
                }
            }
        }
        services.sort_unstable();
        for s in services {
            out.lines.push(s);
            self.emit_waiting(&mut out, s, now);
        }
        self.ended_through = Some(self.ended_through.map_or(day, |d| d.max(day)));
        self.forget_finished(now);
        if end != DayEnd::default() {
            out.day_end = Some(end);
        }
        out
    }

    /// Drops from memory, once a day, finished tickets that can no longer
    /// be rated or followed on a phone, and cases closed days ago: the
    /// store keeps them (statistics and the case listing read it there),
    /// and a server that runs for months keeps only days in memory.
    fn forget_finished(&mut self, now: DateTime<Utc>) {
        let cutoff = now - self.spec.ratings.finished_kept();
        let old: Vec<u64> = self
            .tickets
            .values()
            .filter(|t| t.status.is_final() && t.finished_at.is_some_and(|f| f < cutoff))
            .map(|t| t.id)
            .collect();
        for id in old {
            if let Some(t) = self.tickets.remove(&id) {
                self.by_token.remove(&t.token);
                self.by_number.remove(&(t.day, t.number));
            }
        }
        let closed_by = now - chrono::Duration::days(CASES_KEPT_DAYS);
        self.cases.retain(|_, c| {
            c.status() != super::rating::CaseStatus::Closed || c.updated_at() >= closed_by
        });
    }

    // ----- helpers -----

    /// An instant as the hall's messages name it: "2026-12-02 14:30".
    fn local_time(&self, t: DateTime<Utc>) -> String {
        t.with_timezone(&self.spec.timezone)
            .format("%Y-%m-%d %H:%M")
            .to_string()
    }

    fn service_by_id(&self, id: &str) -> Result<usize, QueueError> {
        self.spec.service_index(id).ok_or_else(|| {
            QueueError::NotFound(format!(
                "no service '{id}' in hall {}; GET /api/v1/halls/{} lists them",
                self.spec.id, self.spec.id
            ))
        })
    }

    /// Best waiting ticket for a window, by [`OrderKey`]. Each service
    /// offers the head of its line and of its started bookings; the best
    /// of those is the best of all.
    fn next_for(&self, w: usize) -> Option<u64> {
        self.spec.windows[w]
            .services
            .iter()
            .enumerate()
            .flat_map(|(pref, &s)| {
                let head = self.lines[s].values().next();
                let booked = self.started(s).next().map(|(_, id)| id);
                head.into_iter()
                    .chain(booked)
                    .map(move |&id| (self.order_key(&self.tickets[&id], pref), id))
            })
            .min()
            .map(|(_, id)| id)
    }

    /// A ticket's place in the call order of a window that serves its
    /// service as its `pref`-th.
    fn order_key(&self, t: &Ticket, pref: usize) -> OrderKey {
        let (class, slot) = match (t.priority, t.slot) {
            (Priority::Green, _) => (Class::Green, DateTime::<Utc>::MIN_UTC),
            (_, Some(slot)) if self.slot_started(t) => (Class::StartedBooking, slot),
            _ => (Class::Other, DateTime::<Utc>::MIN_UTC),
        };
        OrderKey {
            class,
            slot,
            preference: pref,
            line_pos: t.line_pos,
        }
    }

    /// A normal ticket of a check-in whose slot has started.
    fn slot_started(&self, t: &Ticket) -> bool {
        t.priority == Priority::Normal && t.slot.is_some_and(|s| s <= self.slots_through)
    }

    /// A service's waiting check-ins whose slot has started, oldest slot first.
    fn started(&self, service: usize) -> impl Iterator<Item = (&(DateTime<Utc>, u64), &u64)> + '_ {
        let through = self.slots_through;
        self.booked_lines[service]
            .iter()
            .take_while(move |((slot, _), _)| *slot <= through)
    }

    /// Tickets with a phone whose place in `lines` fell to the hall's
    /// `remind_ahead` or less since they joined: each is marked (so its
    /// record goes into the batch) and named once, for its "N ahead of
    /// you" message (§9). Only the first `remind_ahead + 1` of each line
    /// are looked at: a command costs a few steps, not a walk of the hall.
    pub fn take_reminders(&mut self, lines: &[usize]) -> Vec<u64> {
        let Some(remind) = self.remind_ahead() else {
            return Vec::new();
        };
        let mut due = Vec::new();
        for &s in lines {
            let near: Vec<u64> = self
                .line(s)
                .take(remind + 1)
                .filter(|t| t.notify_phone.is_some() && !t.reminded)
                .map(|t| t.id)
                .collect();
            for id in near {
                if !due.contains(&id) {
                    self.tickets.get_mut(&id).expect("a line's ticket").reminded = true;
                    due.push(id);
                }
            }
        }
        due
    }

    fn remind_ahead(&self) -> Option<usize> {
        self.spec
            .notify
            .as_ref()
            .map(|n| n.remind_ahead as usize)
            .filter(|&r| r > 0)
    }

    /// A ticket that joins a line that close to its head gets no reminder
    /// there (its message says so).
    fn join_reminders(&mut self, id: u64) {
        let near = self
            .remind_ahead()
            .is_some_and(|r| self.ahead(&self.tickets[&id]) <= r);
        self.tickets.get_mut(&id).expect("joined ticket").reminded = near;
    }

    /// Puts a ticket (already in `tickets`, waiting) into its line.
    fn enqueue(&mut self, id: u64) {
        let t = &self.tickets[&id];
        self.lines[t.service].insert(t.line_key(), id);
        if let (Priority::Normal, Some(slot)) = (t.priority, t.slot) {
            self.booked_lines[t.service].insert((slot, t.line_pos), id);
        }
    }

    /// Takes a ticket out of its line.
    fn dequeue(&mut self, id: u64) {
        let t = &self.tickets[&id];
        self.lines[t.service].remove(&t.line_key());
        if let Some(slot) = t.slot {
            self.booked_lines[t.service].remove(&(slot, t.line_pos));
        }
    }

    fn callable_by_number(
        &self,
        w: usize,
        number: &str,
        now: DateTime<Utc>,
    ) -> Result<u64, QueueError> {
        let window = &self.spec.windows[w];
        let day = self.local_day(now);
        let id = *self
            .by_number
            .get(&(day, number.to_string()))
            .ok_or_else(|| QueueError::NotFound(format!("no ticket {number} was issued today")))?;
        let t = &self.tickets[&id];
        if t.status != Status::Waiting {
            return Err(QueueError::Conflict(format!(
                "ticket {number} is {}, not waiting",
                t.status.as_str()
            )));
        }
        if !window.services.contains(&t.service) {
            return Err(QueueError::Conflict(format!(
                "window {} does not serve '{}', the service ticket {number} waits for",
                window.id, self.spec.services[t.service].id
            )));
        }
        Ok(id)
    }

    fn current_in(&self, w: usize, fits: &[Status], action: &str) -> Result<u64, QueueError> {
        let window = &self.spec.windows[w];
        let id = self.windows[w].current.ok_or_else(|| {
            QueueError::Conflict(format!(
                "window {} has no current ticket to {action}; call one first",
                window.id
            ))
        })?;
        let t = &self.tickets[&id];
        if !fits.contains(&t.status) {
            return Err(QueueError::Conflict(format!(
                "cannot {action} ticket {}: it is {}",
                t.number,
                t.status.as_str()
            )));
        }
        Ok(id)
    }

    /// Ends a window's part in a ticket.
    fn finish(&mut self, out: &mut Outcome, w: usize, id: u64, end: End, now: DateTime<Utc>) {
        let (status, transferred_to, learn) = match end {
            End::Done => (Status::Done, None, true),
            End::NoShow => (Status::NoShow, None, false),
            End::Transfer(to) => (Status::Waiting, Some(to), true),
            // Not a service time worth learning from: the citizen may have
            // left hours ago.
            End::Midnight => (Status::Done, None, false),
        };
        let t = self.tickets.get_mut(&id).expect("finished ticket is live");
        if learn {
            // Service time runs from the arrival (or, unrecorded, the call).
            if let Some(from) = t.started_at.or(t.called_at) {
                let ms = (now - from).num_milliseconds().max(0) as u64;
                self.clocks[t.service].observe(ms);
                out.clocks.push(t.service);
            }
        }
        t.status = status;
        if status.is_final() {
            t.finished_at = Some(now);
        }
        let number = t.number.clone();
        self.windows[w].current = None;
        out.tickets.push(id);
        out.windows.push(w);
        let kind = EventKind::Ticket {
            number,
            window: w,
            status: if status == Status::Waiting {
                Status::Done
            } else {
                status
            },
            transferred_to,
        };
        self.emit(out, self.spec.windows[w].floor, now, kind);
    }

    fn set_paused(
        &mut self,
        w: usize,
        paused: bool,
        now: DateTime<Utc>,
    ) -> Result<Outcome, QueueError> {
        if self.windows[w].paused == paused {
            return Err(QueueError::Conflict(format!(
                "window {} is already {}",
                self.spec.windows[w].id,
                if paused { "paused" } else { "open" }
            )));
        }
        self.windows[w].paused = paused;
        let mut out = Outcome {
            windows: vec![w],
            ..Outcome::default()
        };
        // Open windows divide ETAs: every line this window takes from moves.
        out.lines = self.spec.windows[w].services.clone();
        self.emit(
            &mut out,
            self.spec.windows[w].floor,
            now,
            EventKind::Window { window: w, paused },
        );
        Ok(out)
    }

    fn emit_called(&mut self, out: &mut Outcome, w: usize, id: u64, now: DateTime<Utc>) {
        let floor = self.spec.windows[w].floor;
        let voice = self
            .spec
            .floor(floor)
            .is_some_and(|f| f.announce == Announce::Voice);
        let t = &self.tickets[&id];
        let kind = EventKind::Called {
            number: t.number.clone(),
            window: w,
            service: t.service,
            recall: t.recall,
            voice,
        };
        let number = t.number.clone();
        let seq = self.emit(out, floor, now, kind);
        let mark = CallMark {
            floor,
            seq,
            at: now,
        };
        self.tickets
            .get_mut(&id)
            .expect("called ticket is live")
            .last_call = Some(mark);
        if !out.tickets.contains(&id) {
            out.tickets.push(id);
        }
        let call = RecentCall {
            floor,
            seq,
            number,
            window: w,
            at: now,
        };
        self.push_recent(call.clone());
        out.recent.push(call);
    }

    fn emit_waiting(&mut self, out: &mut Outcome, service: usize, now: DateTime<Utc>) {
        let count = self.lines[service].len();
        for floor in self.service_floors[service].clone() {
            self.emit(out, floor, now, EventKind::Waiting { service, count });
        }
    }

    /// Appends an event with the floor's and the hall's next sequence number;
    /// returns the floor sequence.
    fn emit(&mut self, out: &mut Outcome, floor: i32, at: DateTime<Utc>, kind: EventKind) -> u64 {
        let floor_seq = {
            let s = self.floor_seqs.entry(floor).or_insert(0);
            *s += 1;
            *s
        };
        self.hall_seq += 1;
        out.events.push(Event {
            floor,
            floor_seq,
            hall_seq: self.hall_seq,
            at,
            kind,
        });
        floor_seq
    }

    fn push_recent(&mut self, call: RecentCall) {
        let list = self.recent.entry(call.floor).or_default();
        list.retain(|c| c.number != call.number);
        list.push_front(call);
        list.truncate(RECENT_CALLS);
    }
}
