//! Window actions: call, recall, start, complete, no-show, transfer,
//! pause, resume; and the console's view of a window.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::auth::{authenticate, require_window, Caller};
use super::error::ApiError;
use super::{json, parse_body, Answer, Api, Request};
use crate::engine::{HallEngine, Reply};
use crate::gateway::wire;
use crate::queue::{Hall, Outcome, QueueError};

/// How many tickets of a window's line the console is shown.
const CONSOLE_LINE: usize = 50;

#[derive(Serialize)]
struct Current<'a> {
    number: &'a str,
    status: &'static str,
}

#[derive(Serialize)]
struct WindowView<'a> {
    id: &'a str,
    label: &'a str,
    floor: i32,
    zone: &'a str,
    services: Vec<&'a str>,
    state: &'static str,
    current: Option<Current<'a>>,
    /// Tickets this window could call now.
    waiting: usize,
}

fn window_view(hall: &Hall, w: usize) -> WindowView<'_> {
    let spec = hall.spec();
    let ws = &spec.windows[w];
    let st = hall.window(w);
    WindowView {
        id: &ws.id,
        label: &ws.label,
        floor: ws.floor,
        zone: &ws.zone,
        services: ws
            .services
            .iter()
            .map(|&s| spec.services[s].id.as_str())
            .collect(),
        state: if st.paused { "paused" } else { "open" },
        current: st.current.and_then(|id| hall.ticket(id)).map(|t| Current {
            number: &t.number,
            status: t.status.as_str(),
        }),
        waiting: ws.services.iter().map(|&s| hall.waiting_count(s)).sum(),
    }
}

#[derive(Serialize)]
struct WindowReply<'a> {
    window: WindowView<'a>,
    ticket: Option<wire::TicketView<'a>>,
}

fn window_reply(hall: &Hall, w: usize, ticket: Option<u64>) -> Reply {
    let ticket = ticket
        .and_then(|id| hall.ticket(id))
        .map(|t| wire::ticket_view(hall, t, false));
    json(
        200,
        &WindowReply {
            window: window_view(hall, w),
            ticket,
        },
    )
}

fn find<'a>(
    api: &'a Api,
    req: &Request<'_>,
    hall: &str,
    window: &str,
) -> Result<(&'a HallEngine, usize, Caller), ApiError> {
    let h = api
        .engine
        .hall(hall)
        .ok_or_else(|| ApiError::not_found(format!("no hall '{hall}'")))?;
    let caller = authenticate(&api.engine, &h.spec, req.header("authorization"))?;
    let w = h
        .spec
        .window_index(window)
        .ok_or_else(|| ApiError::not_found(format!("no window '{window}' in hall {hall}")))?;
    require_window(&h.spec, caller, w)?;
    Ok((h, w, caller))
}

#[derive(Serialize)]
struct LineItem<'a> {
    number: &'a str,
    service: &'a str,
    priority: &'static str,
    created_at: String,
}

#[derive(Serialize)]
struct Console<'a> {
    window: WindowView<'a>,
    ticket: Option<wire::TicketView<'a>>,
    line: Vec<LineItem<'a>>,
}

/// `GET /halls/{hall}/windows/{window}`: the console's view — the window,
/// its current ticket and the tickets it would call next, in order.
pub fn show(api: &Api, req: &Request<'_>, hall: &str, window: &str) -> Result<Answer, ApiError> {
    let (h, w, _) = find(api, req, hall, window)?;
    Ok(h.read(|hall| {
        let spec = hall.spec();
        let line = hall
            .window_line(w, CONSOLE_LINE)
            .into_iter()
            .map(|t| LineItem {
                number: &t.number,
                service: &spec.services[t.service].id,
                priority: t.priority.as_str(),
                created_at: wire::time(spec, t.created_at),
            })
            .collect();
        let ticket = hall
            .window(w)
            .current
            .and_then(|id| hall.ticket(id))
            .map(|t| wire::ticket_view(hall, t, false));
        json(
            200,
            &Console {
                window: window_view(hall, w),
                ticket,
                line,
            },
        )
        .into()
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CallBody {
    number: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TransferBody {
    service: Option<String>,
}

type Apply =
    Box<dyn FnOnce(&mut Hall, chrono::DateTime<chrono::Utc>) -> Result<Outcome, QueueError> + Send>;

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
        parse_body::<super::Empty>(req)?;
    }
    let apply: Apply = match action {
        "call" => {
            let body: CallBody = parse_body(req)?;
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
            let body: TransferBody = parse_body(req)?;
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
                Ok(out) if out.idle => Reply {
                    status: 204,
                    body: Bytes::new(),
                },
                Ok(out) => {
                    // Pause and resume are about the window; show its ticket.
                    let ticket = out.ticket.or(hall.window(w).current);
                    window_reply(hall, w, ticket)
                }
                Err(e) => ApiError::from(e.clone()).reply(),
            },
        )
        .await?;
    Ok(reply.into())
}
