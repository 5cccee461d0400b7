//! Window actions: call, recall, start, complete, no-show, transfer,
//! pause, resume; and the console's view of a window.

use bytes::Bytes;

use super::auth::{authenticate, require_window, Caller};
use super::{Answer, Api, Request};
use crate::engine::HallEngine;
use crate::queue::{Hall, Outcome, QueueError};
use crate::wire::{self, parse_body, ApiError, CallBody, Reply, TransferBody};

/// How many tickets of a window's line the console is shown.
const CONSOLE_LINE: usize = 50;

pub(super) fn find<'a>(
    api: &'a Api,
    req: &Request<'_>,
    hall: &str,
    window: &str,
) -> Result<(&'a HallEngine, usize, Caller), ApiError> {
    let h = super::known_hall(&api.engine, hall)?;
    let caller = authenticate(&api.engine, &h.spec, req.header("authorization"))?;
    let w = h
        .spec
        .window_index(window)
        .ok_or_else(|| ApiError::not_found(format!("no window '{window}' in hall {hall}")))?;
    require_window(&h.spec, caller, w)?;
    Ok((h, w, caller))
}

/// `GET /halls/{hall}/windows/{window}`: the console's view — the window,
/// its current ticket and the tickets it would call next, in order.
pub fn show(api: &Api, req: &Request<'_>, hall: &str, window: &str) -> Result<Answer, ApiError> {
    let (h, w, _) = find(api, req, hall, window)?;
    Ok(h.read(|hall| wire::window_console(hall, w, CONSOLE_LINE))
        .into())
}

type Apply =
    Box<dyn FnMut(&mut Hall, chrono::DateTime<chrono::Utc>) -> Result<Outcome, QueueError> + Send>;

/// `POST /halls/{hall}/windows/{window}/{action}`
pub async fn act(
    api: &Api,
    req: &Request<'_>,
    hall: &str,
    window: &str,
    action: &str,
) -> Result<Answer, ApiError> {
    let (h, w, caller) = find(api, req, hall, window)?;
    let key = req.idempotency_key()?;
    if !matches!(action, "call" | "transfer") {
        parse_body::<wire::Empty>(&req.body)?;
    }
    let apply: Apply = match action {
        "call" => {
            let body: CallBody = parse_body(&req.body)?;
            match body.number {
                Some(n) => {
                    let n = n.trim().to_ascii_uppercase();
                    let prefix = n.trim_end_matches(|c: char| c.is_ascii_digit());
                    let digits = &n[prefix.len()..];
                    if !(1..=2).contains(&prefix.len())
                        || !prefix.chars().all(|c| c.is_ascii_uppercase())
                        || !(3..=6).contains(&digits.len())
                    {
                        return Err(ApiError::bad_request(
                            "'number' must look like A031: a prefix of one or two letters and at least three digits",
                        ));
                    }
                    Box::new(move |hall, now| hall.call(w, Some(&n), now))
                }
                None => Box::new(move |hall, now| hall.call(w, None, now)),
            }
        }
        "recall" => Box::new(move |hall, now| hall.recall(w, now)),
        "start" => Box::new(move |hall, now| hall.start(w, now)),
        "complete" => Box::new(move |hall, now| hall.complete(w, now)),
        "no-show" => Box::new(move |hall, now| hall.no_show(w, now)),
        "transfer" => {
            let body: TransferBody = parse_body(&req.body)?;
            let service = body.service.filter(|s| !s.is_empty()).ok_or_else(|| {
                ApiError::bad_request("'service' is required: the id of the service to transfer to")
            })?;
            Box::new(move |hall, now| hall.transfer(w, &service, now))
        }
        "pause" => Box::new(move |hall, now| hall.pause(w, now)),
        "resume" => Box::new(move |hall, now| hall.resume(w, now)),
        other => {
            return Err(ApiError::not_found(format!(
                "no window action '{other}'; use call, recall, start, complete, no-show, transfer, pause or resume"
            )))
        }
    };
    let reply = api
        .engine
        .execute(
            h,
            &caller.id(&h.spec),
            key.as_ref(),
            apply,
            |hall, result| match result {
                Ok(out) if out.idle => Reply::new(204, Bytes::new()),
                Ok(out) => {
                    // Pause and resume are about the window; show its ticket.
                    let ticket = out.ticket.or(hall.window(w).current);
                    wire::window_reply(hall, w, ticket)
                }
                Err(e) => ApiError::from(e.clone()).reply(),
            },
        )
        .await?;
    Ok(reply.into())
}
