//! Tickets: issue, read, QR code, cancel.

use bytes::Bytes;
use qrcode::render::svg;
use qrcode::QrCode;

use super::auth::{authenticate, require_issuer, Caller};
use super::{Answer, Api, Request};
use crate::engine::new_token;
use crate::queue::{Hall, Outcome, QueueError};
use crate::wire::{self, issue_request, json, parse_body, ApiError, IssueBody, Reply};

/// `POST /halls/{hall}/tickets`
pub async fn issue(api: &Api, req: &Request<'_>, hall: &str) -> Result<Answer, ApiError> {
    let h = super::known_hall(&api.engine, hall)?;
    // Who asks (for idempotency), whether it is the admin (who may issue
    // outside the hours), and the body.
    let (caller, admin, body, origin) = match req.header("authorization") {
        // §8: a phone takes a number without a token, where the hall
        // allows it, and only as a mobile ticket. Its idempotency keys are
        // scoped to its address, so another phone that picked the same
        // key never gets this one's ticket (and its private token).
        None if h.spec.mobile_tickets => {
            let body: IssueBody = parse_body(&req.body)?;
            if body.channel.as_deref() != Some("mobile") {
                return Err(ApiError::unauthorized(
                    "without a token a ticket must be taken with \"channel\": \"mobile\"; a kiosk sends its token",
                ));
            }
            // A1: the green channel is for people staff have seen (the
            // elderly, the disabled, veterans); a phone cannot claim it.
            if body.asks_green_channel() {
                return Err(ApiError::forbidden(
                    "the green channel (\"priority\") is given by staff: ask at the information desk or a window, who will issue your number",
                ));
            }
            (req.anonymous_caller(), false, body, Some(req.origin()))
        }
        header => {
            let who = authenticate(&api.engine, &h.spec, header)?;
            require_issuer(who)?;
            let body: IssueBody = parse_body(&req.body)?;
            (who.id(&h.spec), who == Caller::Admin, body, None)
        }
    };
    let key = req.idempotency_key()?;
    let issue = issue_request(body, admin, origin)?;
    let token = new_token();
    let reply = api
        .engine
        .execute(
            h,
            &caller,
            key.as_ref(),
            move |hall, now| hall.issue(issue.clone(), token.clone(), now),
            ticket_reply(201),
        )
        .await?;
    Ok(reply.into())
}

/// `GET /tickets/{token}`
pub fn show(api: &Api, token: &str) -> Result<Answer, ApiError> {
    let h = api.engine.hall_of_token(token).ok_or_else(no_ticket)?;
    h.read(|hall| {
        let t = hall.ticket_by_token(token).ok_or_else(no_ticket)?;
        Ok(json(200, &wire::ticket_view(hall, t, true)).into())
    })
}

/// `GET /tickets/{token}/qr.svg`: a QR code of the ticket's page.
pub fn qr(api: &Api, token: &str) -> Result<Answer, ApiError> {
    api.engine.hall_of_token(token).ok_or_else(no_ticket)?;
    // The code of a token never changes.
    qr_svg(
        &format!("{}/t/{}", api.public_url, token),
        "private, max-age=86400",
    )
}

/// `GET /halls/{hall}/join-qr.svg`: a QR code of the hall's `/join` page,
/// for a poster at the entrance (§8).
pub fn join_qr(api: &Api, hall: &str) -> Result<Answer, ApiError> {
    let h = super::known_hall(&api.engine, hall)?;
    if !h.spec.mobile_tickets {
        return Err(ApiError::not_found(format!(
            "hall {hall} does not take numbers on the phone; set mobile_tickets = true in its config"
        )));
    }
    qr_svg(
        &format!("{}/join/{}", api.public_url, hall),
        "public, max-age=3600",
    )
}

pub(super) fn qr_svg(url: &str, cache: &'static str) -> Result<Answer, ApiError> {
    let code = QrCode::new(url.as_bytes())
        .map_err(|e| ApiError::bad_request(format!("cannot encode a QR code: {e}")))?;
    let svg = code
        .render::<svg::Color<'_>>()
        .min_dimensions(240, 240)
        .quiet_zone(true)
        .build();
    Ok(Answer::Other {
        content_type: "image/svg+xml",
        cache: Some(cache),
        body: Bytes::from(svg),
    })
}

/// `POST /tickets/{token}/cancel`: the token is the credential.
pub async fn cancel(api: &Api, req: &Request<'_>, token: &str) -> Result<Answer, ApiError> {
    let h = api.engine.hall_of_token(token).ok_or_else(no_ticket)?;
    let key = req.idempotency_key()?;
    parse_body::<wire::Empty>(&req.body)?;
    let token = token.to_string();
    let caller = format!("ticket:{token}");
    let reply: Reply = api
        .engine
        .execute(
            h,
            &caller,
            key.as_ref(),
            |hall, now| hall.cancel(&token, now),
            ticket_reply(200),
        )
        .await?;
    Ok(reply.into())
}

/// The answer of a command about one ticket (issue, cancel, check-in):
/// the ticket with its token and links — the citizen's, or a kiosk's to
/// print — or the refusal.
pub(super) fn ticket_reply(
    status: u16,
) -> impl FnMut(&Hall, &Result<Outcome, QueueError>) -> Reply {
    move |hall, result| match result {
        Ok(out) => {
            let t = hall
                .ticket(out.ticket.expect("the command names its ticket"))
                .expect("the command's ticket is live");
            json(status, &wire::ticket_view(hall, t, true))
        }
        Err(e) => ApiError::from(e.clone()).reply(),
    }
}

fn no_ticket() -> ApiError {
    ApiError::not_found("no ticket has this token; check the link or take a new number")
}
