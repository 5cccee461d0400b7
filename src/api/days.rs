//! A hall's day (contract §7): staff end it early with `close-day`.

use super::auth::{hall_admin, Caller};
use super::{Answer, Api, Request};
use crate::wire::{self, ApiError};

/// `POST /halls/{hall}/close-day` (admin): ends the day now, as midnight
/// would. Numbering still restarts only at midnight.
pub async fn close_day(api: &Api, req: &Request<'_>, hall: &str) -> Result<Answer, ApiError> {
    let h = hall_admin(
        &api.engine,
        hall,
        req.header("authorization"),
        "close the day",
    )?;
    let caller = Caller::Admin;
    let key = req.idempotency_key()?;
    wire::parse_body::<wire::Empty>(&req.body)?;
    let reply = api
        .engine
        .execute(
            h,
            &caller.id(&h.spec),
            key.as_ref(),
            |hall, now| Ok(hall.close_day(now)),
            |_, result| match result {
                Ok(out) => {
                    let end = out.day_end.unwrap_or_default();
                    wire::day_closed(end.expired, end.done)
                }
                Err(e) => ApiError::from(e.clone()).reply(),
            },
        )
        .await?;
    Ok(reply.into())
}
