//! Request bodies (§3): each refuses unknown fields and names the field,
//! and says what is wrong without quoting the caller's values.

use serde::Deserialize;

use super::ApiError;
use chrono::{DateTime, Utc};

use crate::queue::{BookRequest, Channel, HolderRequest, IssueRequest, Priority};

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
    /// What `…/phone-codes/verify` gave (A2).
    pub phone_token: Option<String>,
}

impl IssueBody {
    /// Asks for the green channel (contract A1: only with a staff credential).
    pub fn asks_green_channel(&self) -> bool {
        self.priority.as_deref() == Some("priority")
    }
}

/// A phone number as SMS gateways take it: optional `+`, 5 to 20 digits.
fn valid_phone(p: &str) -> bool {
    let digits = p.strip_prefix('+').unwrap_or(p);
    (5..=20).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
}

/// The domain's request from a body (the contract's field rules); the
/// admin may issue outside the hours (`outside_hours`); `origin` is the
/// client address of a request without a token.
pub fn issue_request(
    body: IssueBody,
    outside_hours: bool,
    origin: Option<String>,
) -> Result<IssueRequest, ApiError> {
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
    let (notify_phone, phone_token) = phone_of(body.notify)?;
    Ok(IssueRequest {
        service,
        priority,
        channel,
        notify_phone,
        phone_token,
        origin,
        outside_hours,
        slot: None,
    })
}

/// The checked `notify.phone` of a body, or the hash of its
/// `notify.phone_token`.
fn phone_of(notify: Option<Notify>) -> Result<(Option<String>, Option<String>), ApiError> {
    let Some(n) = notify else {
        return Ok((None, None));
    };
    match (n.phone, n.phone_token) {
        (Some(_), Some(_)) => Err(ApiError::bad_request(
            "'notify' takes 'phone' or 'phone_token', not both",
        )),
        (None, Some(t)) if !t.is_empty() && t.len() <= 100 => {
            Ok((None, Some(crate::queue::citizen::token_hash(&t))))
        }
        (None, Some(_)) => Err(ApiError::bad_request(
            "'notify.phone_token' must be the token …/phone-codes/verify gave",
        )),
        (Some(p), None) if valid_phone(&p) => Ok((Some(p), None)),
        // The message must not echo the number: it is personal data.
        (Some(_), None) => Err(ApiError::bad_request(
            "'notify.phone' must be 5 to 20 digits, optionally after a '+'",
        )),
        (None, None) => Ok((None, None)),
    }
}

/// `POST /halls/{hall}/phone-codes` (A2).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhoneCodeBody {
    phone: Option<String>,
    code: Option<String>,
}

impl PhoneCodeBody {
    /// The mainland mobile number it names.
    pub fn phone(&self) -> Result<String, ApiError> {
        match self.phone.as_deref() {
            Some(p) if crate::queue::citizen::is_mainland_mobile(p) => Ok(p.to_string()),
            _ => Err(ApiError::bad_request(
                "'phone' must be a mainland mobile number: 11 digits starting with 1",
            )),
        }
    }

    /// The 6-digit code of a verify request (any other shape can never be
    /// right: 422 as a wrong code, without using a try).
    pub fn code(&self) -> Result<String, ApiError> {
        match self.code.as_deref().map(str::trim) {
            Some(c) if !c.is_empty() => Ok(c.to_string()),
            _ => Err(ApiError::bad_request(
                "'code' is required: the 6 digits the message gave",
            )),
        }
    }

    /// A send request names no code.
    pub fn has_code(&self) -> bool {
        self.code.is_some()
    }
}

/// A real-name booking's holder (A4).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HolderBody {
    name: Option<String>,
    id_number: Option<String>,
}

/// `POST /halls/{hall}/appointments` (§8).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BookBody {
    service: Option<String>,
    start: Option<String>,
    notify: Option<Notify>,
    holder: Option<HolderBody>,
}

/// The domain's booking from a body; `token` and `codes` are drawn by the
/// caller.
pub fn book_request(
    body: BookBody,
    token: String,
    codes: Vec<String>,
    origin: Option<String>,
    new_key: Vec<u8>,
) -> Result<BookRequest, ApiError> {
    let service = body.service.filter(|s| !s.is_empty()).ok_or_else(|| {
        ApiError::bad_request("'service' is required: the id of a service that takes bookings")
    })?;
    let start = body
        .start
        .as_deref()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .ok_or_else(|| {
            ApiError::bad_request(
                "'start' is required: an RFC 3339 time, the start of a slot as GET …/slots lists it",
            )
        })?
        .with_timezone(&Utc);
    let (phone, phone_token) = phone_of(body.notify)?;
    let holder = match body.holder {
        None => None,
        Some(h) => {
            let name = h.name.as_deref().map(str::trim).unwrap_or("");
            if name.is_empty() || name.chars().count() > 30 {
                return Err(ApiError::bad_request(
                    "'holder.name' must be 1 to 30 characters, as on the ID card",
                ));
            }
            let id = h.id_number.as_deref().map(str::trim).unwrap_or("");
            // Never echo the number: it is personal data.
            if !crate::queue::citizen::valid_id_number(id) {
                return Err(ApiError::bad_request(
                    "'holder.id_number' is not a valid 18-character resident ID number (its last character does not check); please check it",
                ));
            }
            Some(HolderRequest {
                name: name.to_string(),
                id_number: id.to_ascii_uppercase(),
                new_key,
            })
        }
    };
    Ok(BookRequest {
        service,
        start,
        phone,
        phone_token,
        origin,
        holder,
        token,
        codes,
    })
}

/// `POST /halls/{hall}/check-in` (§8).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckInBody {
    code: Option<String>,
}

impl CheckInBody {
    /// The code, as typed: case and spaces forgiven.
    pub fn code(self) -> Result<String, ApiError> {
        let code: String = self
            .code
            .unwrap_or_default()
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .collect::<String>()
            .to_ascii_uppercase();
        if crate::queue::appointment::is_code(&code) {
            Ok(code)
        } else {
            Err(ApiError::bad_request(
                "'code' must be the 6-character booking code (letters and digits, as on the booking)",
            ))
        }
    }
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

/// `POST /tickets/{token}/rating` and a window's pad (which sends only
/// the level).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RatingBody {
    pub level: u8,
    pub comment: Option<String>,
}

/// `POST /halls/{hall}/cases/{id}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseStepBody {
    pub status: String,
    pub note: Option<String>,
}
