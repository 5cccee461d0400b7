//! The pages of contract §5 and their assets, built into the binary so one
//! file deploys. Pages are plain HTML with ES modules; they learn their
//! hall, floor, window or ticket from their own path.

use bytes::Bytes;
use warp::http::{Response, StatusCode};
use warp::Filter;

use std::sync::Arc;

use crate::engine::Engine;

const INDEX: &str = include_str!("../displays/index.html");
const FLOOR: &str = include_str!("../displays/floor.html");
const ENTRANCE: &str = include_str!("../displays/entrance.html");
const PHONE: &str = include_str!("../displays/phone.html");
const CONSOLE: &str = include_str!("../displays/console.html");
const KIOSK: &str = include_str!("../displays/kiosk.html");
const JOIN: &str = include_str!("../displays/join.html");
const BOOK: &str = include_str!("../displays/book.html");
const APPOINTMENT: &str = include_str!("../displays/appointment.html");
const RATE: &str = include_str!("../displays/rate.html");
const DASHBOARD: &str = include_str!("../displays/dashboard.html");

const JS: &str = "text/javascript; charset=utf-8";

/// What a page may load and run: only this server's own scripts (no inline
/// script, so an injected string can never run), its own API and sockets,
/// its own images and sounds; and no one may frame it (a public lobby
/// page inside another site's frame is a clickjacking kiosk). Inline
/// styles stay allowed: the pages' `<style>` blocks carry no code.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
img-src 'self' data:; media-src 'self'; connect-src 'self'; font-src 'self'; \
base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// (name, content type, bytes) of every asset under `/assets/`.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../displays/app.js"),
    ),
    ("index.js", JS, include_bytes!("../displays/index.js")),
    ("floor.js", JS, include_bytes!("../displays/floor.js")),
    ("entrance.js", JS, include_bytes!("../displays/entrance.js")),
    ("phone.js", JS, include_bytes!("../displays/phone.js")),
    ("console.js", JS, include_bytes!("../displays/console.js")),
    ("kiosk.js", JS, include_bytes!("../displays/kiosk.js")),
    ("join.js", JS, include_bytes!("../displays/join.js")),
    ("book.js", JS, include_bytes!("../displays/book.js")),
    ("verify.js", JS, include_bytes!("../displays/verify.js")),
    (
        "appointment.js",
        JS,
        include_bytes!("../displays/appointment.js"),
    ),
    ("rate.js", JS, include_bytes!("../displays/rate.js")),
    (
        "dashboard.js",
        JS,
        include_bytes!("../displays/dashboard.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_bytes!("../displays/style.css"),
    ),
    (
        "chime.wav",
        "audio/wav",
        include_bytes!("../sounds/chime.wav"),
    ),
];

fn page(status: u16, html: &'static str) -> Response<Bytes> {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::OK))
        .header("content-type", "text/html; charset=utf-8")
        // Screens run for weeks: always revalidate so an upgrade reaches them
        // on their next reconnect-driven reload.
        .header("cache-control", "no-cache")
        .header("x-content-type-options", "nosniff")
        .header("content-security-policy", CSP)
        .header("x-frame-options", "DENY")
        // A ticket page's address holds its token: never send it onwards.
        .header("referrer-policy", "no-referrer")
        .body(Bytes::from_static(html.as_bytes()))
        .expect("page response builds")
}

const NOT_FOUND: &str = "<!doctype html><meta charset=utf-8><title>404</title>\
<style>body{font-family:sans-serif;background:#0b1f3a;color:#fff;text-align:center;padding-top:30vh}a{color:#ffd34d}</style><body>\
<h1>页面不存在 · Not found</h1><p><a href=\"/\">hallcast</a></p>";

/// `GET /`, `/display/…`, `/t/…`, `/window/…`, `/kiosk/…`, `/join/…`,
/// `/book/…`, `/a/…`, `/rate/…`, `/dashboard/…`, `/assets/…`.
pub fn routes(
    engine: Arc<Engine>,
) -> impl Filter<Extract = (Response<Bytes>,), Error = warp::Rejection> + Clone {
    warp::get()
        .and(warp::path::full())
        .map(move |path: warp::path::FullPath| {
            let segs: Vec<&str> = path.as_str().split('/').filter(|s| !s.is_empty()).collect();
            let hall_ok = |h: &str| engine.hall(h).is_some();
            match segs.as_slice() {
                [] => page(200, INDEX),
                ["display", hall] if hall_ok(hall) => page(200, ENTRANCE),
                ["display", hall, "floors", floor] if hall_ok(hall) => {
                    let known = floor
                        .parse::<i32>()
                        .ok()
                        .and_then(|f| engine.hall(hall)?.spec.floor(f).map(|_| ()))
                        .is_some();
                    if known {
                        page(200, FLOOR)
                    } else {
                        page(404, NOT_FOUND)
                    }
                }
                // The page itself says when the token is unknown.
                ["t", _token] => page(200, PHONE),
                ["window", hall, window]
                    if engine
                        .hall(hall)
                        .is_some_and(|h| h.spec.window_index(window).is_some()) =>
                {
                    page(200, CONSOLE)
                }
                ["kiosk", hall] if hall_ok(hall) => page(200, KIOSK),
                ["rate", hall, window]
                    if engine
                        .hall(hall)
                        .is_some_and(|h| h.spec.window_index(window).is_some()) =>
                {
                    page(200, RATE)
                }
                ["dashboard", hall] if hall_ok(hall) => page(200, DASHBOARD),
                ["join", hall] if hall_ok(hall) => page(200, JOIN),
                ["book", hall] if hall_ok(hall) => page(200, BOOK),
                // As for a ticket, the page says when the token is unknown.
                ["a", _token] => page(200, APPOINTMENT),
                ["assets", name] => match ASSETS.iter().find(|(n, _, _)| n == name) {
                    Some((_, ct, body)) => Response::builder()
                        .header("content-type", *ct)
                        .header("cache-control", "no-cache")
                        .header("x-content-type-options", "nosniff")
                        .body(Bytes::from_static(body))
                        .expect("asset response builds"),
                    None => page(404, NOT_FOUND),
                },
                _ => page(404, NOT_FOUND),
            }
        })
}
