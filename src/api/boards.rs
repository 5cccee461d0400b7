//! Public boards: the list of halls, a hall's layout, a floor's snapshot.

use super::{Answer, Api};
use crate::wire::{self, ApiError};

/// `GET /halls`
pub fn list(api: &Api) -> Answer {
    wire::hall_list(api.engine.halls().iter().map(|h| &*h.spec)).into()
}

/// `GET /halls/{hall}`
pub fn hall(api: &Api, id: &str) -> Result<Answer, ApiError> {
    let h = super::known_hall(&api.engine, id)?;
    let now = chrono::Utc::now();
    Ok(h.read(|hall| wire::hall_board(hall, now)).into())
}

/// `GET /halls/{hall}/floors/{floor}`: the floor channel's snapshot.
pub fn floor(api: &Api, id: &str, floor: &str) -> Result<Answer, ApiError> {
    let h = super::known_hall(&api.engine, id)?;
    let n: i32 = floor
        .parse()
        .map_err(|_| ApiError::not_found(format!("no floor '{floor}' in hall {id}")))?;
    h.read(|hall| {
        let body = wire::floor_snapshot_message(hall, n)
            .ok_or_else(|| ApiError::not_found(format!("no floor {n} in hall {id}")))?;
        Ok(Answer::Json(wire::Reply::new(200, body)))
    })
}
