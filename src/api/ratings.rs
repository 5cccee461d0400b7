//! 好差评 (§10): the citizen's rating, the window's rating pad, the public
//! summary, and the follow-up cases staff work through.

use chrono::Utc;
use serde::Deserialize;

use super::auth::hall_admin;
use super::{Answer, Api, Request};
use crate::engine::HallEngine;
use crate::queue::{CaseStatus, Hall, Outcome, QueueError, RatingFrom};
use crate::report::RatingSummary;
use crate::wire::{self, parse_body, ApiError, CaseStepBody, RatingBody, Reply};

/// The pad's body: only the level (the pad has five buttons).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PadBody {
    level: u8,
}

/// The answer of a rating: the rating, or the refusal.
fn rating_reply(hall: &Hall, result: &Result<Outcome, QueueError>) -> Reply {
    match result {
        Ok(out) => {
            let t = hall
                .ticket(out.ticket.expect("a rating names its ticket"))
                .expect("the rated ticket is live");
            wire::rating_reply(hall.spec(), t.rating.as_ref().expect("just rated"))
        }
        Err(e) => ApiError::from(e.clone()).reply(),
    }
}

/// `POST /tickets/{token}/rating`: the token is the credential.
pub async fn by_phone(api: &Api, req: &Request<'_>, token: &str) -> Result<Answer, ApiError> {
    let h = api.engine.hall_of_token(token).ok_or_else(|| {
        ApiError::not_found("no ticket has this token; check the link on the ticket")
    })?;
    let key = req.idempotency_key()?;
    let body: RatingBody = parse_body(&req.body)?;
    let from = RatingFrom::Token(token.to_string());
    let caller = format!("ticket:{token}");
    let reply = api
        .engine
        .execute(
            h,
            &caller,
            key.as_ref(),
            move |hall, now| hall.rate(from.clone(), body.level, body.comment.clone(), now),
            rating_reply,
        )
        .await?;
    Ok(reply.into())
}

/// `POST /halls/{hall}/windows/{window}/rating`: the counter's pad rates
/// the window's latest finished ticket.
pub async fn by_pad(
    api: &Api,
    req: &Request<'_>,
    h: &HallEngine,
    w: usize,
    caller: &str,
) -> Result<Answer, ApiError> {
    let key = req.idempotency_key()?;
    let body: PadBody = parse_body(&req.body)?;
    let reply = api
        .engine
        .execute(
            h,
            caller,
            key.as_ref(),
            move |hall, now| hall.rate(RatingFrom::Window(w), body.level, None, now),
            rating_reply,
        )
        .await?;
    Ok(reply.into())
}

/// `GET /halls/{hall}/ratings?from=…&to=…`: public (halls publish their
/// 好评率), counts only.
pub async fn summary(api: &Api, req: &Request<'_>, hall: &str) -> Result<Answer, ApiError> {
    let h = super::known_hall(&api.engine, hall)?;
    // A year at most (A7): a public route must not make a century's read.
    let dates = super::reports::dates(h, req.query, &[], Some(366))?.0;
    let (from, to) = dates
        .instants(h.spec.timezone)
        .ok_or_else(|| ApiError::bad_request("the dates are out of range"))?;
    let id = h.spec.id.clone();
    let counts = api
        .engine
        .read_reports("ratings", move |b| b.rating_counts(&id, from, to))
        .await?;
    Ok(wire::ratings_summary(dates, &RatingSummary::new(&h.spec, &counts)).into())
}

fn admin<'a>(api: &'a Api, req: &Request<'_>, hall: &str) -> Result<&'a HallEngine, ApiError> {
    hall_admin(
        &api.engine,
        hall,
        req.header("authorization"),
        "follow cases up",
    )
}

/// `GET /halls/{hall}/cases[?status=…]`, newest first, from the store.
pub async fn cases(api: &Api, req: &Request<'_>, hall: &str) -> Result<Answer, ApiError> {
    let h = admin(api, req, hall)?;
    let mut status = None;
    for pair in req.query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("status", v)) => {
                status = Some(CaseStatus::parse(v).ok_or_else(|| {
                    ApiError::bad_request("'status' must be open, contacted, rectified or closed")
                })?)
            }
            _ => {
                return Err(ApiError::bad_request(
                    "cases take only ?status=open|contacted|rectified|closed",
                ))
            }
        }
    }
    let id = h.spec.id.clone();
    let rows = api
        .engine
        .read_reports("cases", move |b| b.cases(&id, status))
        .await?;
    Ok(wire::case_list(&h.spec, &rows, Utc::now()).into())
}

/// `POST /halls/{hall}/cases/{id}`: a step forward, with a note.
pub async fn step(api: &Api, req: &Request<'_>, hall: &str, id: &str) -> Result<Answer, ApiError> {
    let h = admin(api, req, hall)?;
    let missing = || ApiError::not_found(format!("no case '{id}' in hall {hall}"));
    let id: u64 = id.parse().map_err(|_| missing())?;
    let key = req.idempotency_key()?;
    let body: CaseStepBody = parse_body(&req.body)?;
    let to = match CaseStatus::parse(&body.status) {
        Some(s) if s != CaseStatus::Open => s,
        _ => {
            return Err(ApiError::bad_request(
                "'status' must be contacted, rectified or closed",
            ))
        }
    };
    if !h.read(|hall| hall.case(id).is_some()) {
        // Only cases closed days ago leave memory: a step is refused as
        // for any closed case.
        let hall_id = h.spec.id.clone();
        let stored = api
            .engine
            .read_reports("cases", move |b| b.case(&hall_id, id))
            .await?;
        return Err(match stored {
            Some(c) => ApiError::new_status(
                409,
                "conflict",
                format!(
                    "case {id} is {}; a case moves only forward and closed is final",
                    c.status.as_str()
                ),
            ),
            None => missing(),
        });
    }
    let note = body.note;
    let reply = api
        .engine
        .execute(
            h,
            "admin",
            key.as_ref(),
            move |hall, now| hall.step_case(id, to, note.clone(), now),
            |hall, result| match result {
                Ok(out) => {
                    let c = hall
                        .case(out.case.expect("a step names its case"))
                        .expect("the stepped case is live");
                    wire::case_reply(hall.spec(), &wire::case_row(hall.spec(), c), Utc::now())
                }
                Err(e) => ApiError::from(e.clone()).reply(),
            },
        )
        .await?;
    Ok(reply.into())
}
