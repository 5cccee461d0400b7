//! §11's CSV export: one row per ticket, times in RFC 3339 at the hall's
//! offset, an empty cell for none. No phone, token or comment: the row
//! is built from [`TicketFact`], which carries none of them.

use std::fmt::Write;

use chrono::SecondsFormat;
use chrono_tz::Tz;

use super::{service_seconds, wait_seconds};
use crate::store::from_ms;
use crate::store::TicketFact;

/// The header row.
pub const HEADER: &str = "date,number,service,channel,priority,status,issued_at,called_at,window,started_at,finished_at,wait_seconds,service_seconds,rating\r\n";

/// A cell, quoted when it holds a comma, quote or line break (RFC 4180).
/// A cell that a spreadsheet would run as a formula gets a leading quote
/// mark: ids come from the config, but an export is opened by people.
fn cell(out: &mut String, value: &str) {
    let formula = value.starts_with(['=', '+', '-', '@']);
    if value.contains([',', '"', '\r', '\n']) || formula {
        out.push('"');
        if formula {
            out.push('\'');
        }
        out.push_str(&value.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(value);
    }
}

fn time(out: &mut String, tz: Tz, ms: Option<i64>) {
    if let Some(ms) = ms {
        let _ = write!(
            out,
            "{}",
            from_ms(ms)
                .with_timezone(&tz)
                .to_rfc3339_opts(SecondsFormat::Secs, false)
        );
    }
}

/// Appends one ticket's row.
pub fn row(out: &mut String, tz: Tz, t: &TicketFact<'_>) {
    for (i, v) in [t.day, t.number, t.service, t.channel, t.priority, t.status]
        .into_iter()
        .enumerate()
    {
        if i > 0 {
            out.push(',');
        }
        cell(out, v);
    }
    out.push(',');
    time(out, tz, Some(t.created_at));
    out.push(',');
    time(out, tz, t.first_called_at);
    out.push(',');
    cell(out, t.window.unwrap_or(""));
    out.push(',');
    time(out, tz, t.started_at);
    out.push(',');
    time(out, tz, t.finished_at);
    out.push(',');
    if let Some(w) = wait_seconds(t) {
        let _ = write!(out, "{w}");
    }
    out.push(',');
    if let Some(s) = service_seconds(t) {
        let _ = write!(out, "{s}");
    }
    out.push(',');
    if let Some(r) = t.rating {
        let _ = write!(out, "{r}");
    }
    out.push_str("\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_has_every_column_and_quotes_what_needs_it() {
        let t = TicketFact {
            day: "2026-12-02",
            id: 7,
            number: "A001",
            service: "a,b",
            issued_service: "a,b",
            channel: "kiosk",
            priority: "normal",
            status: "done",
            window: Some("=1"),
            created_at: 1_764_637_200_000,
            first_called_at: Some(1_764_637_260_000),
            called_at: Some(1_764_637_260_000),
            started_at: None,
            finished_at: Some(1_764_637_320_000),
            rating: Some(5),
        };
        let mut out = String::new();
        row(&mut out, chrono_tz::Asia::Shanghai, &t);
        assert_eq!(
            out,
            "2026-12-02,A001,\"a,b\",kiosk,normal,done,2025-12-02T09:00:00+08:00,\
             2025-12-02T09:01:00+08:00,\"'=1\",,2025-12-02T09:02:00+08:00,60,60,5\r\n"
        );
        assert_eq!(out.matches(',').count() - 1, HEADER.matches(',').count());
    }
}
