//! Bearer tokens: who is calling, compared in constant time.

use subtle::ConstantTimeEq;

use crate::engine::Engine;
use crate::queue::HallSpec;
use crate::wire::ApiError;

/// An authenticated caller within one hall.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Caller {
    Admin,
    Window(usize),
    Kiosk(usize),
}

impl Caller {
    /// Stable name for idempotency scoping (never a token).
    pub fn id(self, spec: &HallSpec) -> String {
        match self {
            Caller::Admin => "admin".into(),
            Caller::Window(w) => format!("window:{}", spec.windows[w].id),
            Caller::Kiosk(k) => format!("kiosk:{}", spec.kiosks[k].id),
        }
    }
}

fn eq(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// Finds whose token this is in a hall. Every token of the hall is
/// compared, so the time taken does not tell which one matched.
fn lookup(spec: &HallSpec, token: &str) -> Option<Caller> {
    let mut found = None;
    if eq(&spec.admin_token, token) {
        found = Some(Caller::Admin);
    }
    for (i, w) in spec.windows.iter().enumerate() {
        if eq(&w.token, token) {
            found = Some(Caller::Window(i));
        }
    }
    for (i, k) in spec.kiosks.iter().enumerate() {
        if eq(&k.token, token) {
            found = Some(Caller::Kiosk(i));
        }
    }
    found
}

/// A window, kiosk or admin token of some hall.
pub fn is_known(engine: &Engine, token: &str) -> bool {
    engine
        .halls()
        .iter()
        .any(|h| lookup(&h.spec, token).is_some())
}

/// The bearer token of an `Authorization` header value.
pub fn bearer(header: Option<&str>) -> Result<&str, ApiError> {
    let h = header.ok_or_else(|| {
        ApiError::unauthorized(
            "send 'Authorization: Bearer TOKEN' with a window, kiosk or admin token",
        )
    })?;
    let (scheme, token) = h
        .trim()
        .split_once(' ')
        .ok_or_else(|| ApiError::unauthorized("the Authorization header must be 'Bearer TOKEN'"))?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(ApiError::unauthorized(
            "the Authorization header must be 'Bearer TOKEN'",
        ));
    }
    Ok(token.trim())
}

/// Authenticates a caller for a hall: 401 for an unknown token, 403 for a
/// token of another hall.
pub fn authenticate(
    engine: &Engine,
    spec: &HallSpec,
    header: Option<&str>,
) -> Result<Caller, ApiError> {
    let token = bearer(header)?;
    if let Some(c) = lookup(spec, token) {
        return Ok(c);
    }
    if engine
        .halls()
        .iter()
        .any(|h| h.spec.id != spec.id && lookup(&h.spec, token).is_some())
    {
        return Err(ApiError::forbidden(format!(
            "this token belongs to another hall, not to hall {}",
            spec.id
        )));
    }
    Err(ApiError::unauthorized(format!(
        "the token is not a window, kiosk or admin token of hall {}",
        spec.id
    )))
}

/// The hall with this id, and its admin calling (`what` says what only
/// the admin may do, for the 403).
pub fn hall_admin<'a>(
    engine: &'a Engine,
    hall: &str,
    header: Option<&str>,
    what: &str,
) -> Result<&'a crate::engine::HallEngine, ApiError> {
    let h = super::known_hall(engine, hall)?;
    if authenticate(engine, &h.spec, header)? != Caller::Admin {
        return Err(ApiError::forbidden(format!(
            "only the hall's admin token may {what}"
        )));
    }
    Ok(h)
}

/// May issue tickets: a kiosk or the admin.
pub fn require_issuer(caller: Caller) -> Result<(), ApiError> {
    match caller {
        Caller::Admin | Caller::Kiosk(_) => Ok(()),
        Caller::Window(_) => Err(ApiError::forbidden(
            "a window token cannot issue tickets; use a kiosk or the admin token",
        )),
    }
}

/// May act for window `w`: that window or the admin.
pub fn require_window(spec: &HallSpec, caller: Caller, w: usize) -> Result<(), ApiError> {
    match caller {
        Caller::Admin => Ok(()),
        Caller::Window(own) if own == w => Ok(()),
        Caller::Window(own) => Err(ApiError::forbidden(format!(
            "this is the token of window {}; it acts only for its own window, not {}",
            spec.windows[own].id, spec.windows[w].id
        ))),
        Caller::Kiosk(_) => Err(ApiError::forbidden(
            "a kiosk token may only issue tickets; use the window's token",
        )),
    }
}
