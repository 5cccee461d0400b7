//! Bookings (contract §8): slots, booking, the citizen's booking (read,
//! QR, cancel, check-in), the kiosk's check-in by code, the admin's day.

use chrono::{Duration, NaiveDate, Utc};

use super::auth::{authenticate, hall_admin, require_issuer};
use super::tickets::{qr_svg, ticket_reply};
use super::{known_hall, Answer, Api, Request};
use crate::engine::{new_code, new_key, new_token, HallEngine};
use crate::queue::hours::instant;
use crate::queue::{BookingRef, Hall, Outcome, QueueError};
use crate::wire::{self, parse_body, ApiError, Reply};

/// Codes drawn per booking: the first the hall does not hold is taken, so
/// a collision (one in ~10⁸ per pair) never refuses a booking.
const CODES_DRAWN: usize = 8;

fn no_booking() -> ApiError {
    ApiError::not_found("no booking has this token; check the link or book again")
}

/// `?date=YYYY-MM-DD` (today in the hall when absent).
fn date_of(req: &Request<'_>, h: &HallEngine) -> Result<NaiveDate, ApiError> {
    let mut date = None;
    for pair in req.query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("date", v)) => {
                date = Some(
                    NaiveDate::parse_from_str(v, "%Y-%m-%d")
                        .map_err(|_| ApiError::bad_request("'date' must be a date YYYY-MM-DD"))?,
                )
            }
            _ => {
                return Err(ApiError::bad_request(
                    "this route takes only ?date=YYYY-MM-DD",
                ))
            }
        }
    }
    Ok(date.unwrap_or_else(|| h.read(|hall| hall.local_day(Utc::now()))))
}

/// `GET /halls/{hall}/services/{service}/slots?date=` (no auth).
pub fn slots(api: &Api, req: &Request<'_>, hall: &str, service: &str) -> Result<Answer, ApiError> {
    let h = known_hall(&api.engine, hall)?;
    let date = date_of(req, h)?;
    h.read(|hall| {
        let s = hall.spec().service_index(service).ok_or_else(|| {
            ApiError::not_found(format!("no service '{service}' in hall {}", hall.spec().id))
        })?;
        let rules = hall.booking_rules(s).map_err(ApiError::from)?;
        let slots = hall.slots(s, date, Utc::now()).map_err(ApiError::from)?;
        Ok(wire::slot_list(hall.spec(), rules.per_slot, &slots).into())
    })
}

/// The answer of a command about a booking: the booking, or the refusal.
fn booking_reply(status: u16) -> impl FnMut(&Hall, &Result<Outcome, QueueError>) -> Reply {
    move |hall, result| match result {
        Ok(out) => {
            let a = hall
                .appointment(out.appointment.expect("the command names its booking"))
                .expect("the booking is live");
            wire::appointment_view(hall, a, status)
        }
        Err(e) => ApiError::from(e.clone()).reply(),
    }
}

/// `POST /halls/{hall}/appointments`: a citizen books (no auth), or staff
/// book for one (any token of the hall: they may name a phone directly,
/// and their address is not counted, A2–A3).
pub async fn book(api: &Api, req: &Request<'_>, hall: &str) -> Result<Answer, ApiError> {
    let h = known_hall(&api.engine, hall)?;
    let (caller, origin) = match req.header("authorization") {
        None => (req.anonymous_caller(), Some(req.origin())),
        header => {
            let who = authenticate(&api.engine, &h.spec, header)?;
            (who.id(&h.spec), None)
        }
    };
    let key = req.idempotency_key()?;
    let body: wire::BookBody = parse_body(&req.body)?;
    let codes = (0..CODES_DRAWN).map(|_| new_code()).collect();
    let booking = wire::book_request(body, new_token(), codes, origin, new_key())?;
    let reply = api
        .engine
        .execute(
            h,
            &caller,
            key.as_ref(),
            move |hall, now| hall.book(booking.clone(), now),
            booking_reply(201),
        )
        .await?;
    Ok(reply.into())
}

/// `GET /halls/{hall}/appointments?date=` (admin): the day's bookings, from
/// the store, so any day can be listed.
pub async fn day(api: &Api, req: &Request<'_>, hall: &str) -> Result<Answer, ApiError> {
    let h = hall_admin(
        &api.engine,
        hall,
        req.header("authorization"),
        "list the bookings",
    )?;
    let date = date_of(req, h)?;
    let tz = h.spec.timezone;
    let (Some(from), Some(to)) = (
        instant(tz, date, 0),
        instant(tz, date + Duration::days(1), 0),
    ) else {
        return Err(ApiError::bad_request("'date' is out of range"));
    };
    let rows = api.engine.appointments_between(hall, from, to).await?;
    Ok(wire::appointment_day(&h.spec, &rows).into())
}

/// `GET /appointments/{token}`
pub fn show(api: &Api, token: &str) -> Result<Answer, ApiError> {
    let h = api
        .engine
        .hall_of_appointment(token)
        .ok_or_else(no_booking)?;
    h.read(|hall| {
        let a = hall.appointment_by_token(token).ok_or_else(no_booking)?;
        Ok(wire::appointment_view(hall, a, 200).into())
    })
}

/// `GET /appointments/{token}/qr.svg`: a QR code of the booking's page,
/// for staff to scan or the citizen to keep.
pub fn qr(api: &Api, token: &str) -> Result<Answer, ApiError> {
    api.engine
        .hall_of_appointment(token)
        .ok_or_else(no_booking)?;
    qr_svg(
        &format!("{}/a/{}", api.public_url, token),
        "private, max-age=86400",
    )
}

/// `POST /appointments/{token}/cancel` and `/check-in`: the token is the
/// credential.
pub async fn act(
    api: &Api,
    req: &Request<'_>,
    token: &str,
    action: &str,
) -> Result<Answer, ApiError> {
    let h = api
        .engine
        .hall_of_appointment(token)
        .ok_or_else(no_booking)?;
    let key = req.idempotency_key()?;
    parse_body::<wire::Empty>(&req.body)?;
    let caller = format!("appointment:{token}");
    let token = token.to_string();
    let reply = match action {
        "cancel" => {
            api.engine
                .execute(
                    h,
                    &caller,
                    key.as_ref(),
                    move |hall, now| hall.cancel_booking(&token, now),
                    booking_reply(200),
                )
                .await?
        }
        "check-in" => {
            let ticket_token = new_token();
            api.engine
                .execute(
                    h,
                    &caller,
                    key.as_ref(),
                    move |hall, now| {
                        hall.check_in(BookingRef::Token(token.clone()), ticket_token.clone(), now)
                    },
                    ticket_reply(201),
                )
                .await?
        }
        _ => {
            return Err(ApiError::not_found(
                "a booking takes cancel or check-in; see the contract, section 8",
            ))
        }
    };
    Ok(reply.into())
}

/// `POST /halls/{hall}/check-in` `{"code"}` (kiosk or admin).
pub async fn check_in(api: &Api, req: &Request<'_>, hall: &str) -> Result<Answer, ApiError> {
    let h = known_hall(&api.engine, hall)?;
    let who = authenticate(&api.engine, &h.spec, req.header("authorization"))?;
    require_issuer(who)?;
    let caller = who.id(&h.spec);
    let guesser = format!("{}/{caller}", h.spec.id);
    if let Err(secs) = api.guesses.check(&guesser, Utc::now()) {
        return Err(ApiError {
            retry_after: Some(secs),
            ..ApiError::rate_limited(format!(
                "more than {} unknown booking codes within {} minutes from this credential; try again in {secs} s",
                super::guesses::UNKNOWN_CODES,
                super::guesses::WINDOW_MINUTES
            ))
        });
    }
    let key = req.idempotency_key()?;
    let code = parse_body::<wire::CheckInBody>(&req.body)?.code()?;
    let ticket_token = new_token();
    let reply = api
        .engine
        .execute(
            h,
            &caller,
            key.as_ref(),
            move |hall, now| {
                hall.check_in(BookingRef::Code(code.clone()), ticket_token.clone(), now)
            },
            ticket_reply(201),
        )
        .await?;
    if reply.status == 404 {
        api.guesses.missed(&guesser, Utc::now());
    }
    Ok(reply.into())
}
