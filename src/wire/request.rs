//! Request bodies (§3): each refuses unknown fields and names the field,
//! and says what is wrong without quoting the caller's values.

use serde::Deserialize;

use super::ApiError;
use crate::queue::{Channel, IssueRequest, Priority};

/// The body of an action that takes no fields: empty or `{}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

/// Parses a JSON body; an empty body is `{}`. Every body type refuses
/// unknown fields, and the message names the field: a typo such as
/// `"priorty"` must not silently give a normal ticket.
pub fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    // serde's own message can quote the offending value (a phone number,
    // say): say where and what kind of problem, never the value.
    serde_json::from_slice(body).map_err(|e| {
        let text = e.to_string();
        if let Some(rest) = text.strip_prefix("unknown field ") {
            // serde names the field and the known ones: no value of the
            // caller's is quoted.
            let rest = rest.split(" at line ").next().unwrap_or(rest);
            return ApiError::bad_request(format!(
                "the request body has an unknown field {rest}; see the contract"
            ));
        }
        let what = match e.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                "is not valid JSON"
            }
            _ => "has a field of the wrong type or is not a JSON object",
        };
        ApiError::bad_request(format!(
            "the request body {what} (line {}, column {}); see the contract, section 3",
            e.line(),
            e.column()
        ))
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssueBody {
    service: Option<String>,
    priority: Option<String>,
    pub channel: Option<String>,
    notify: Option<Notify>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Notify {
    pub phone: Option<String>,
}

/// A phone number as SMS gateways take it: optional `+`, 5 to 20 digits.
fn valid_phone(p: &str) -> bool {
    let digits = p.strip_prefix('+').unwrap_or(p);
    (5..=20).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
}

/// The domain's request from a body (the contract's field rules); the
/// admin may issue outside the hours (`outside_hours`).
pub fn issue_request(body: IssueBody, outside_hours: bool) -> Result<IssueRequest, ApiError> {
    let service = body.service.filter(|s| !s.is_empty()).ok_or_else(|| {
        ApiError::bad_request("'service' is required: the id of a service of this hall")
    })?;
    let priority = match body.priority.as_deref() {
        None => Priority::Normal,
        Some(p) => Priority::parse(p).ok_or_else(|| {
            ApiError::bad_request("'priority' must be \"normal\" or \"priority\"")
        })?,
    };
    let channel = match body.channel.as_deref() {
        None => Channel::Kiosk,
        Some(c) => Channel::parse(c).ok_or_else(|| {
            ApiError::bad_request("'channel' must be \"kiosk\", \"mobile\" or \"appointment\"")
        })?,
    };
    let notify_phone = match body.notify.and_then(|n| n.phone) {
        None => None,
        Some(p) if valid_phone(&p) => Some(p),
        // The message must not echo the number: it is personal data.
        Some(_) => {
            return Err(ApiError::bad_request(
                "'notify.phone' must be 5 to 20 digits, optionally after a '+'",
            ))
        }
    };
    Ok(IssueRequest {
        service,
        priority,
        channel,
        notify_phone,
        outside_hours,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallBody {
    pub number: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferBody {
    pub service: Option<String>,
}
