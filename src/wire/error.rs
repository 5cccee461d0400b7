//! Contract errors: `{"error": {"code", "message"}}` with the matching
//! status. Domain and store errors map here (a command's own refusals, in
//! `engine`, next to their type).

use bytes::Bytes;
use serde::Serialize;

use super::Reply;
use crate::queue::QueueError;
use crate::store::StoreError;

/// A refused request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    /// `closed` (contract §7) also carries the next opening: `Some(None)`
    /// is a `null`, the hall has none ahead.
    pub next_open: Option<Option<String>>,
    /// A 429's `Retry-After`, in whole seconds.
    pub retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            next_open: None,
            retry_after: None,
        }
    }

    /// 400: malformed JSON or field.
    pub fn bad_request(m: impl Into<String>) -> Self {
        Self::new(400, "bad_request", m)
    }
    /// 401: no or unknown credentials.
    pub fn unauthorized(m: impl Into<String>) -> Self {
        Self::new(401, "unauthorized", m)
    }
    /// 403: credentials that may not do this.
    pub fn forbidden(m: impl Into<String>) -> Self {
        Self::new(403, "forbidden", m)
    }
    /// 404: unknown hall, floor, service, window, ticket or route.
    pub fn not_found(m: impl Into<String>) -> Self {
        Self::new(404, "not_found", m)
    }
    /// 405: the route exists, the method does not.
    pub fn method_not_allowed(m: impl Into<String>) -> Self {
        Self::new(405, "method_not_allowed", m)
    }
    /// 413: body over the limit.
    pub fn payload_too_large(m: impl Into<String>) -> Self {
        Self::new(413, "payload_too_large", m)
    }
    /// 429: over a rate limit (contract §13).
    pub fn rate_limited(m: impl Into<String>) -> Self {
        Self::new(429, "rate_limited", m)
    }
    /// Any other status and code.
    pub fn new_status(status: u16, code: &'static str, m: impl Into<String>) -> Self {
        Self::new(status, code, m)
    }
    /// 503: the store cannot take writes.
    pub fn unavailable(m: impl Into<String>) -> Self {
        Self::new(503, "unavailable", m)
    }

    /// The contract's JSON body.
    pub fn reply(&self) -> Reply {
        #[derive(Serialize)]
        struct Inner<'a> {
            code: &'a str,
            message: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            next_open: Option<&'a Option<String>>,
        }
        #[derive(Serialize)]
        struct Outer<'a> {
            error: Inner<'a>,
        }
        let body = serde_json::to_vec(&Outer {
            error: Inner {
                code: self.code,
                message: &self.message,
                next_open: self.next_open.as_ref(),
            },
        })
        .expect("error bodies serialize");
        Reply {
            status: self.status,
            body: Bytes::from(body),
            retry_after: self.retry_after,
        }
    }
}

impl From<QueueError> for ApiError {
    fn from(e: QueueError) -> Self {
        match e {
            QueueError::NotFound(m) => ApiError::not_found(m),
            QueueError::Conflict(m) => ApiError::new(409, "conflict", m),
            QueueError::BadRequest(m) => ApiError::bad_request(m),
            QueueError::Closed { message, next_open } => ApiError {
                next_open: Some(
                    next_open.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, false)),
                ),
                ..ApiError::new(409, "closed", message)
            },
            QueueError::LimitReached(m) => ApiError::new(409, "limit_reached", m),
            QueueError::PhoneUnverified(m) => ApiError::new(422, "phone_unverified", m),
            QueueError::TooMany {
                message,
                retry_after,
            } => ApiError {
                retry_after: Some(retry_after),
                ..ApiError::rate_limited(message)
            },
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::unavailable(e.message)
    }
}
