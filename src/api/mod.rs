//! HTTP routes (contract §1 health, §3 API). Requests are routed by hand
//! from the path segments: one place shows every route, and every miss gets
//! the contract's JSON error rather than a framework default.

mod appointments;
mod auth;
mod boards;
mod body;
mod citizens;
mod days;
mod guesses;
mod outbox;
mod ratings;
mod reports;
mod tickets;
mod windows;

use std::sync::Arc;

use bytes::{Buf, Bytes};
use futures_util::Stream;
use tracing::Instrument;
use warp::http::{HeaderMap, Method, Response, StatusCode};
use warp::Filter;

use crate::engine::{Engine, Idempotency};
use crate::limits::{Limits, Poster};
use crate::listener::PeerAddr;
use crate::wire::{self, ApiError, Reply};

/// Request bodies over this are refused with 413 (contract §3).
pub const MAX_BODY: usize = 64 * 1024;

/// A whole request must have arrived within this (contract §13); the head
/// has its own 10 s in `listener`. A body that never finishes is answered
/// 408 and its connection closed, so it cannot hold a socket or the
/// shutdown.
pub const REQUEST_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

/// The hall with this id, or the contract's 404.
pub fn known_hall<'a>(
    engine: &'a Engine,
    id: &str,
) -> Result<&'a crate::engine::HallEngine, ApiError> {
    engine
        .hall(id)
        .ok_or_else(|| ApiError::not_found(format!("no hall '{id}'")))
}

/// What every handler needs.
pub struct Api {
    pub engine: Arc<Engine>,
    /// Rate limits of POSTs (contract §13).
    pub limits: Arc<Limits>,
    /// Base of links in QR codes, e.g. `http://127.0.0.1:8080`.
    pub public_url: String,
    /// Places to compose an announcement ([`COMPOSE_AT_ONCE`]).
    composing: tokio::sync::Semaphore,
    /// Unknown check-in codes per credential (A6).
    guesses: guesses::Guesses,
}

impl Api {
    pub fn new(engine: Arc<Engine>, limits: Arc<Limits>, public_url: String) -> Api {
        Api {
            engine,
            limits,
            public_url,
            composing: tokio::sync::Semaphore::new(COMPOSE_AT_ONCE),
            guesses: guesses::Guesses::default(),
        }
    }
}

/// A handler's answer: a JSON reply or another content type.
pub enum Answer {
    Json(Reply),
    Other {
        content_type: &'static str,
        cache: Option<&'static str>,
        body: Bytes,
    },
}

impl From<ApiError> for Answer {
    fn from(e: ApiError) -> Self {
        Answer::Json(e.reply())
    }
}

impl From<Reply> for Answer {
    fn from(r: Reply) -> Self {
        Answer::Json(r)
    }
}

/// A request as the handlers see it.
pub struct Request<'a> {
    pub method: &'a Method,
    /// The path below `/api/v1/`.
    pub path: &'a str,
    pub headers: &'a HeaderMap,
    pub body: Bytes,
    /// The query string, without `?` (empty when none).
    pub query: &'a str,
    /// The client's address (behind a trusted proxy, the one it names).
    pub client: Option<std::net::IpAddr>,
}

impl Request<'_> {
    /// A header as text, if present and readable.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Who a citizen without a token is, for idempotency: their address,
    /// so another phone that picked the same key never gets this one's
    /// answer (and the private token in it).
    pub fn anonymous_caller(&self) -> String {
        match self.client {
            Some(ip) => format!("phone:{ip}"),
            None => "phone:unknown".to_string(),
        }
    }

    /// The client address as per-address caps count it (A3: an IPv6 one
    /// by its /64).
    pub fn origin(&self) -> String {
        match self.client {
            Some(ip) => crate::limits::address_key(ip).to_string(),
            None => "unknown".to_string(),
        }
    }

    /// The `Idempotency-Key` header, checked against the contract's form,
    /// bound to this request's method, path and body.
    pub fn idempotency_key(&self) -> Result<Option<Idempotency>, ApiError> {
        let Some(v) = self.headers.get("idempotency-key") else {
            return Ok(None);
        };
        let k = v.to_str().unwrap_or("");
        if k.is_empty() || k.len() > 64 || !k.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ApiError::bad_request(
                "Idempotency-Key must be 1 to 64 visible ASCII characters",
            ));
        }
        Ok(Some(Idempotency::new(
            k,
            self.method.as_str(),
            self.path,
            &self.body,
        )))
    }
}

pub use reports::export_route;

/// `/healthz`, `/readyz` and everything under `/api/v1`.
pub fn routes(
    api: Arc<Api>,
) -> impl Filter<Extract = (Response<Bytes>,), Error = warp::Rejection> + Clone {
    let health = warp::path("healthz")
        .and(warp::path::end())
        .map(|| text(200, "ok"));
    let ready_api = api.clone();
    let ready = warp::path("readyz").and(warp::path::end()).map(move || {
        if ready_api.engine.is_ready() {
            text(200, "ready")
        } else {
            text(503, "store not writable")
        }
    });
    let metrics_api = api.clone();
    let metrics = warp::path("metrics")
        .and(warp::path::end())
        .and(warp::get())
        .then(move || {
            let api = metrics_api.clone();
            async move { scrape(&api).await }
        });
    let v1 = warp::path("api")
        .and(warp::path("v1"))
        .and(warp::method())
        .and(warp::path::tail())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::header::headers_cloned())
        .and(warp::ext::optional::<PeerAddr>())
        .and(warp::body::stream())
        .then(
            move |method: Method,
                  tail: warp::path::Tail,
                  query: String,
                  headers: HeaderMap,
                  peer: Option<PeerAddr>,
                  body| {
                let api = api.clone();
                async move {
                    let path = tail.as_str().to_string();
                    handle(&api, method, path, query, headers, peer, body).await
                }
            },
        );
    health.or(ready).unify().or(metrics).unify().or(v1).unify()
}

/// `GET /metrics`: the lines' counts from memory and the outbox's from
/// the store, set just before the text is rendered.
async fn scrape(api: &Api) -> Response<Bytes> {
    for h in api.engine.halls() {
        h.read(|hall| {
            for (s, spec) in h.spec.services.iter().enumerate() {
                crate::metrics::waiting(&h.spec.id, &spec.id, hall.waiting_count(s));
            }
        });
    }
    match api
        .engine
        .read_reports("outbox counts", |b| b.outbox_counts())
        .await
    {
        Ok(counts) => {
            for h in api.engine.halls() {
                for st in crate::metrics::OUTBOX_STATUSES {
                    let n = counts
                        .iter()
                        .find(|(hall, s, _)| *hall == h.spec.id && s == st)
                        .map_or(0, |c| c.2);
                    crate::metrics::outbox(&h.spec.id, st, n);
                }
            }
        }
        // The rest is still worth a scrape: the outbox keeps its last values.
        Err(e) => tracing::warn!(error = %e, "reading the outbox counts for /metrics failed"),
    }
    Response::builder()
        .status(200)
        .header("content-type", "text/plain; version=0.0.4; charset=utf-8")
        .header("cache-control", "no-store")
        .body(Bytes::from(crate::metrics::render()))
        .expect("a metrics response builds")
}

fn text(status: u16, body: &'static str) -> Response<Bytes> {
    Response::builder()
        .status(status)
        .header("content-type", "text/plain; charset=utf-8")
        .body(Bytes::from_static(body.as_bytes()))
        .expect("static response builds")
}

async fn handle<S, B>(
    api: &Api,
    method: Method,
    path: String,
    query: String,
    headers: HeaderMap,
    peer: Option<PeerAddr>,
    body: S,
) -> Response<Bytes>
where
    S: Stream<Item = Result<B, warp::Error>> + Send,
    B: Buf,
{
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let route = route_of(&format!("/api/v1/{path}"));
    let span = tracing::debug_span!("request", %method, route = route.unwrap_or("unknown"));
    let path = path.as_str();
    async move {
        let body = if method == Method::POST {
            // Over its limit, a POST has no effect: refused before its body
            // is even read.
            let who = poster(api, &segs, &headers, peer);
            if let Err(wait) = api.limits.post(who, std::time::Instant::now()) {
                let e = ApiError::rate_limited(format!("too many requests; retry in {} s", wait.0));
                let mut r = respond(e.into(), route.unwrap_or("unknown"));
                wait.set_on(&mut r);
                return r;
            }
            match tokio::time::timeout(REQUEST_DEADLINE, body::read_limited(body, MAX_BODY)).await {
                Ok(Ok(b)) => b,
                Ok(Err(e)) => return respond(e.into(), route.unwrap_or("unknown")),
                Err(_) => {
                    let e = ApiError::new_status(
                        408,
                        "request_timeout",
                        "the request body did not arrive within 30 s",
                    );
                    let mut r = respond(e.into(), route.unwrap_or("unknown"));
                    r.headers_mut()
                        .insert("connection", "close".parse().expect("a header value"));
                    return r;
                }
            }
        } else {
            Bytes::new()
        };
        let req = Request {
            method: &method,
            path,
            headers: &headers,
            body,
            query: &query,
            client: api.limits.client_ip(peer.map(|p| p.0), &headers),
        };
        if let ["tickets", token, ..] = segs.as_slice() {
            // In a cluster the ticket may have been issued on another node
            // a moment ago (a phone scanning the kiosk's QR at once).
            api.engine.await_token(token).await;
        }
        let answer = dispatch(api, &req, &segs).await;
        let r = respond(answer, route.unwrap_or("unknown"));
        if method == Method::POST && r.status().is_success() {
            if let (Some(route), Some(hall)) = (route, hall_of(api, &segs)) {
                crate::metrics::command(hall, crate::metrics::command_of(route));
            }
        }
        debug_assert!(
            route.is_some() || r.status() == StatusCode::NOT_FOUND,
            "/api/v1/{path} was answered {} but is not in api::ROUTES (nor openapi.json)",
            r.status()
        );
        r
    }
    .instrument(span)
    .await
}

/// The hall a path is about (by id, or by the ticket or booking token it
/// names), as the config spells it.
fn hall_of<'a>(api: &'a Api, segs: &[&str]) -> Option<&'a str> {
    let h = match segs {
        ["halls", hall, ..] => api.engine.hall(hall),
        ["tickets", token, ..] => api.engine.hall_of_token(token),
        ["appointments", token, ..] => api.engine.hall_of_appointment(token),
        _ => None,
    };
    h.map(|h| h.spec.id.as_str())
}

/// Whose bucket a POST takes from: a real ticket's token on its own
/// routes, a known staff token, else the client's address (so made-up
/// tokens cannot each open a fresh bucket).
fn poster(api: &Api, segs: &[&str], headers: &HeaderMap, peer: Option<PeerAddr>) -> Poster {
    match segs {
        ["tickets", token, ..] if api.engine.hall_of_token(token).is_some() => {
            return Poster::Citizen((*token).to_string());
        }
        ["appointments", token, ..] if api.engine.hall_of_appointment(token).is_some() => {
            return Poster::Citizen((*token).to_string());
        }
        _ => {}
    }
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|h| auth::bearer(Some(h)).ok());
    if let Some(t) = bearer.filter(|t| auth::is_known(&api.engine, t)) {
        return Poster::Staff(t.to_string());
    }
    let ip = api
        .limits
        .client_ip(peer.map(|p| p.0), headers)
        .unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]));
    Poster::Public(ip)
}

/// Every route of the HTTP API as `openapi.json` names it. The document is
/// tested against this list (the same routes, no more), each of them
/// against the running server, and in debug builds a request no entry
/// matches must have been answered 404: a route added to the dispatcher
/// but not here (and so not to the document) fails the tests.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/api/v1/openapi.json"),
    ("GET", "/api/v1/halls"),
    ("GET", "/api/v1/halls/{hall}"),
    ("GET", "/api/v1/halls/{hall}/floors/{floor}"),
    ("POST", "/api/v1/halls/{hall}/tickets"),
    ("POST", "/api/v1/halls/{hall}/close-day"),
    ("GET", "/api/v1/halls/{hall}/services/{service}/slots"),
    ("POST", "/api/v1/halls/{hall}/appointments"),
    ("GET", "/api/v1/halls/{hall}/appointments"),
    ("POST", "/api/v1/halls/{hall}/check-in"),
    ("POST", "/api/v1/halls/{hall}/phone-codes"),
    ("POST", "/api/v1/halls/{hall}/phone-codes/verify"),
    ("GET", "/api/v1/halls/{hall}/join-qr.svg"),
    ("GET", "/api/v1/halls/{hall}/outbox"),
    ("POST", "/api/v1/halls/{hall}/outbox/{id}/retry"),
    ("GET", "/api/v1/halls/{hall}/ratings"),
    ("GET", "/api/v1/halls/{hall}/cases"),
    ("POST", "/api/v1/halls/{hall}/cases/{id}"),
    ("GET", "/api/v1/halls/{hall}/stats"),
    ("GET", "/api/v1/halls/{hall}/stats.csv"),
    ("GET", "/api/v1/halls/{hall}/stats/chart.svg"),
    ("GET", "/api/v1/halls/{hall}/windows/{window}"),
    ("POST", "/api/v1/halls/{hall}/windows/{window}/rating"),
    ("POST", "/api/v1/halls/{hall}/windows/{window}/call"),
    ("POST", "/api/v1/halls/{hall}/windows/{window}/recall"),
    ("POST", "/api/v1/halls/{hall}/windows/{window}/start"),
    ("POST", "/api/v1/halls/{hall}/windows/{window}/complete"),
    ("POST", "/api/v1/halls/{hall}/windows/{window}/no-show"),
    ("POST", "/api/v1/halls/{hall}/windows/{window}/transfer"),
    ("POST", "/api/v1/halls/{hall}/windows/{window}/pause"),
    ("POST", "/api/v1/halls/{hall}/windows/{window}/resume"),
    ("GET", "/api/v1/tickets/{token}"),
    ("GET", "/api/v1/tickets/{token}/qr.svg"),
    ("POST", "/api/v1/tickets/{token}/cancel"),
    ("POST", "/api/v1/tickets/{token}/rating"),
    ("GET", "/api/v1/appointments/{token}"),
    ("GET", "/api/v1/appointments/{token}/qr.svg"),
    ("POST", "/api/v1/appointments/{token}/cancel"),
    ("POST", "/api/v1/appointments/{token}/check-in"),
    ("GET", "/api/v1/announcements/stats"),
    ("GET", "/api/v1/announcements/{id}.wav"),
    ("GET", "/ws/v1/halls/{hall}"),
    ("GET", "/ws/v1/halls/{hall}/floors/{floor}"),
    ("GET", "/ws/v1/tickets/{token}"),
    ("GET", "/sse/v1/halls/{hall}"),
    ("GET", "/sse/v1/halls/{hall}/floors/{floor}"),
    ("GET", "/sse/v1/tickets/{token}"),
];

/// The OpenAPI 3.1 document of [`ROUTES`], served as is.
pub const OPENAPI: &str = include_str!("openapi.json");

/// The template of [`ROUTES`] a path matches (any method), if any: a
/// `{name}` segment takes any non-empty segment, `{name}.wav` one that
/// ends so; a literal wins over a parameter.
pub fn route_of(path: &str) -> Option<&'static str> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let matches = |t: &str| {
        let tsegs: Vec<&str> = t.split('/').filter(|s| !s.is_empty()).collect();
        tsegs.len() == segs.len()
            && tsegs.iter().zip(&segs).all(|(t, s)| {
                match t.strip_prefix('{').and_then(|r| r.split_once('}')) {
                    Some((_, suffix)) => s.len() > suffix.len() && s.ends_with(suffix),
                    None => t == s,
                }
            })
    };
    let literal = |t: &str| t.matches('{').count();
    ROUTES
        .iter()
        .map(|(_, t)| *t)
        .filter(|t| matches(t))
        .min_by_key(|t| literal(t))
}

async fn dispatch(api: &Api, req: &Request<'_>, segs: &[&str]) -> Answer {
    let m = req.method;
    let result: Result<Answer, ApiError> = match segs {
        ["openapi.json"] => only(m, Method::GET).map(|_| Answer::Other {
            content_type: "application/json",
            cache: None,
            body: Bytes::from_static(OPENAPI.as_bytes()),
        }),
        ["halls"] => only(m, Method::GET).map(|_| boards::list(api)),
        ["halls", hall] => only(m, Method::GET).and_then(|_| boards::hall(api, hall)),
        ["halls", hall, "floors", floor] => {
            only(m, Method::GET).and_then(|_| boards::floor(api, hall, floor))
        }
        ["halls", hall, "tickets"] => match only(m, Method::POST) {
            Ok(()) => tickets::issue(api, req, hall).await,
            Err(e) => Err(e),
        },
        ["halls", hall, "outbox"] => match only(m, Method::GET) {
            Ok(()) => outbox::list(api, req, hall).await,
            Err(e) => Err(e),
        },
        ["halls", hall, "outbox", id, "retry"] => match only(m, Method::POST) {
            Ok(()) => outbox::retry(api, req, hall, id).await,
            Err(e) => Err(e),
        },
        ["halls", hall, "join-qr.svg"] => {
            only(m, Method::GET).and_then(|_| tickets::join_qr(api, hall))
        }
        ["halls", hall, "services", service, "slots"] => {
            only(m, Method::GET).and_then(|_| appointments::slots(api, req, hall, service))
        }
        ["halls", hall, "appointments"] if *m == Method::GET => {
            appointments::day(api, req, hall).await
        }
        ["halls", hall, "appointments"] => match only(m, Method::POST) {
            Ok(()) => appointments::book(api, req, hall).await,
            Err(e) => Err(e),
        },
        ["halls", hall, "phone-codes"] => match only(m, Method::POST) {
            Ok(()) => citizens::send_code(api, req, hall).await,
            Err(e) => Err(e),
        },
        ["halls", hall, "phone-codes", "verify"] => match only(m, Method::POST) {
            Ok(()) => citizens::verify(api, req, hall).await,
            Err(e) => Err(e),
        },
        ["halls", hall, "check-in"] => match only(m, Method::POST) {
            Ok(()) => appointments::check_in(api, req, hall).await,
            Err(e) => Err(e),
        },
        ["halls", hall, "close-day"] => match only(m, Method::POST) {
            Ok(()) => days::close_day(api, req, hall).await,
            Err(e) => Err(e),
        },
        ["halls", hall, "ratings"] => match only(m, Method::GET) {
            Ok(()) => ratings::summary(api, req, hall).await,
            Err(e) => Err(e),
        },
        ["halls", hall, "cases"] => match only(m, Method::GET) {
            Ok(()) => ratings::cases(api, req, hall).await,
            Err(e) => Err(e),
        },
        ["halls", hall, "cases", id] => match only(m, Method::POST) {
            Ok(()) => ratings::step(api, req, hall, id).await,
            Err(e) => Err(e),
        },
        ["halls", hall, "stats"] => match only(m, Method::GET) {
            Ok(()) => reports::stats(api, req, hall).await,
            Err(e) => Err(e),
        },
        // A GET is streamed by `reports::export_route`, before these.
        ["halls", _, "stats.csv"] => only(m, Method::GET)
            .and_then(|_| Err(ApiError::not_found("the export is served by its own route"))),
        ["halls", hall, "stats", "chart.svg"] => match only(m, Method::GET) {
            Ok(()) => reports::chart(api, req, hall).await,
            Err(e) => Err(e),
        },
        ["halls", hall, "windows", window, "rating"] => match only(m, Method::POST) {
            Ok(()) => match windows::find(api, req, hall, window) {
                Ok((h, w, caller)) => ratings::by_pad(api, req, h, w, &caller.id(&h.spec)).await,
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        },
        ["halls", hall, "windows", window] => {
            only(m, Method::GET).and_then(|_| windows::show(api, req, hall, window))
        }
        ["halls", hall, "windows", window, action] => match only(m, Method::POST) {
            Ok(()) => windows::act(api, req, hall, window, action).await,
            Err(e) => Err(e),
        },
        ["tickets", token] => only(m, Method::GET).and_then(|_| tickets::show(api, token)),
        ["tickets", token, "qr.svg"] => only(m, Method::GET).and_then(|_| tickets::qr(api, token)),
        ["tickets", token, "cancel"] => match only(m, Method::POST) {
            Ok(()) => tickets::cancel(api, req, token).await,
            Err(e) => Err(e),
        },
        ["tickets", token, "rating"] => match only(m, Method::POST) {
            Ok(()) => ratings::by_phone(api, req, token).await,
            Err(e) => Err(e),
        },
        ["appointments", token] => {
            only(m, Method::GET).and_then(|_| appointments::show(api, token))
        }
        ["appointments", token, "qr.svg"] => {
            only(m, Method::GET).and_then(|_| appointments::qr(api, token))
        }
        ["appointments", token, action @ ("cancel" | "check-in")] => match only(m, Method::POST) {
            Ok(()) => appointments::act(api, req, token, action).await,
            Err(e) => Err(e),
        },
        ["announcements", "stats"] => only(m, Method::GET)
            .map(|_| wire::announcement_stats(&api.engine.announcer().stats()).into()),
        ["announcements", file] => match only(m, Method::GET) {
            Ok(()) => announcement(api, file).await,
            Err(e) => Err(e),
        },
        _ => Err(ApiError::not_found(
            "no such API route; see the contract, section 3",
        )),
    };
    result.unwrap_or_else(Answer::from)
}

/// Compositions running at once: each takes a core for a few ms, and the
/// async threads must stay free for the screens.
const COMPOSE_AT_ONCE: usize = 2;

/// `GET /announcements/{id}.wav`: only ids of calls the hall made (contract
/// §13), composed on the blocking pool, a bounded number at a time.
async fn announcement(api: &Api, file: &str) -> Result<Answer, ApiError> {
    let missing = || ApiError::not_found("no such announcement; take the id from a called event");
    let id = file.strip_suffix(".wav").ok_or_else(missing)?;
    let hall = id.split('.').next().and_then(|h| api.engine.hall(h));
    if !hall.is_some_and(|h| h.made_call(id)) {
        return Err(missing());
    }
    // Every screen fetches each call: a hit is served here, and only a
    // miss waits for a place to compose.
    let wav = match api.engine.announcer().cached(id) {
        Some(wav) => wav,
        None => {
            let _permit = api
                .composing
                .acquire()
                .await
                .map_err(|_| ApiError::unavailable("hallcast is shutting down"))?;
            let announcer = api.engine.announcer().clone();
            let id = id.to_string();
            tokio::task::spawn_blocking(move || announcer.wav(&id))
                .await
                .map_err(|_| ApiError::unavailable("composing the announcement failed; retry"))?
                .ok_or_else(missing)?
                .0
        }
    };
    Ok(Answer::Other {
        content_type: "audio/wav",
        // The id names exactly what is said, so the bytes never change.
        cache: Some("public, max-age=86400"),
        body: wav,
    })
}

fn only(m: &Method, want: Method) -> Result<(), ApiError> {
    if *m == want {
        Ok(())
    } else {
        Err(ApiError::method_not_allowed(format!(
            "this route takes {want}, not {m}"
        )))
    }
}

pub(super) fn respond(answer: Answer, route: &'static str) -> Response<Bytes> {
    let (status, content_type, cache, body, retry_after) = match answer {
        Answer::Json(r) => (r.status, "application/json", None, r.body, r.retry_after),
        Answer::Other {
            content_type,
            cache,
            body,
        } => (200, content_type, cache, body, None),
    };
    if status >= 400 {
        // The body names ids and rules, never personal data.
        tracing::debug!(route, status, body = %String::from_utf8_lossy(&body), "request refused");
    }
    let mut b = Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", content_type);
    if let Some(c) = cache {
        b = b.header("cache-control", c);
    } else {
        b = b.header("cache-control", "no-store");
    }
    if let Some(secs) = retry_after {
        b = b.header("retry-after", secs);
    }
    let body = if status == 204 { Bytes::new() } else { body };
    b.body(body).expect("response builds")
}

#[cfg(test)]
mod tests {
    use super::route_of;

    #[test]
    fn every_post_route_has_a_command_name_of_its_own() {
        use crate::metrics::{command_of, COMMANDS_KNOWN};
        for (method, route) in super::ROUTES {
            if *method == "POST" {
                let c = command_of(route);
                assert_ne!(c, "other", "{route} has no command name");
                assert!(COMMANDS_KNOWN.contains(&c), "{c} is not registered");
            }
        }
    }

    #[test]
    fn a_path_finds_its_template_and_a_literal_wins() {
        assert_eq!(
            route_of("/api/v1/halls/demo/windows/3-01/no-show"),
            Some("/api/v1/halls/{hall}/windows/{window}/no-show")
        );
        assert_eq!(
            route_of("/api/v1/announcements/stats"),
            Some("/api/v1/announcements/stats")
        );
        assert_eq!(
            route_of("/api/v1/announcements/demo.3.A001.3-01.zh.wav"),
            Some("/api/v1/announcements/{id}.wav")
        );
        assert_eq!(route_of("/api/v1/announcements/.wav"), None);
        assert_eq!(route_of("/api/v1/halls/demo/windows/3-01/dance"), None);
    }
}
