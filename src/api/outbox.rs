//! The outbox as staff see it (§9): the messages to citizens' phones, with
//! phones masked, and a retry of a dead one.

use super::auth::hall_admin;
use super::{Answer, Api, Request};
use crate::engine::HallEngine;
use crate::store::{OutboxStatus, OutboxUpdate};
use crate::wire::{self, ApiError};

/// Messages listed at most.
const LISTED: usize = 500;

fn admin<'a>(api: &'a Api, req: &Request<'_>, hall: &str) -> Result<&'a HallEngine, ApiError> {
    hall_admin(
        &api.engine,
        hall,
        req.header("authorization"),
        "see the outbox",
    )
}

/// `GET /halls/{hall}/outbox[?status=pending|delivered|dead|dropped]`
pub async fn list(api: &Api, req: &Request<'_>, hall: &str) -> Result<Answer, ApiError> {
    let h = admin(api, req, hall)?;
    let mut status = None;
    for pair in req.query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("status", v)) => {
                status = Some(OutboxStatus::parse(v).ok_or_else(|| {
                    ApiError::bad_request("'status' must be pending, delivered, dead or dropped")
                })?)
            }
            _ => {
                return Err(ApiError::bad_request(
                    "the outbox takes only ?status=pending|delivered|dead|dropped",
                ))
            }
        }
    }
    let records = api.engine.outbox_list(hall, status, LISTED).await?;
    Ok(wire::outbox_list(&h.spec, &records).into())
}

/// `POST /halls/{hall}/outbox/{id}/retry`: a dead message is pending
/// again, with a fresh count of tries.
pub async fn retry(api: &Api, req: &Request<'_>, hall: &str, id: &str) -> Result<Answer, ApiError> {
    let h = admin(api, req, hall)?;
    wire::parse_body::<wire::Empty>(&req.body)?;
    let m =
        api.engine.outbox_get(hall, id).await?.ok_or_else(|| {
            ApiError::not_found(format!("no outbox message '{id}' in hall {hall}"))
        })?;
    if m.status != OutboxStatus::Dead {
        return Err(ApiError::new_status(
            409,
            "conflict",
            format!(
                "only a dead message can be retried; this one is {}",
                m.status.as_str()
            ),
        ));
    }
    let now = chrono::Utc::now();
    api.engine
        .outbox_update(vec![OutboxUpdate {
            hall: hall.to_string(),
            id: id.to_string(),
            status: OutboxStatus::Pending,
            attempts: 0,
            last_error: m.last_error.clone(),
            next_attempt_at: now,
        }])
        .await?;
    api.engine.wake_outbox();
    let m = api.engine.outbox_get(hall, id).await?.unwrap_or(m);
    Ok(wire::outbox_message(&h.spec, &m).into())
}
