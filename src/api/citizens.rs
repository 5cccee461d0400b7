//! Verified phones (contract v1.2 A2): a code sent through the outbox, and
//! the phone token a right code buys. No auth: proving the phone is the
//! credential. The rules (one code a minute, five a day, three tries, five
//! minutes) are the hall's, in `queue::hall::citizen`.

use serde::Serialize;

use super::{known_hall, Answer, Api, Request};
use crate::engine::{new_phone_code, new_token};
use crate::queue::{CodeCheck, Hall, Outcome, QueueError};
use crate::wire::{self, json, parse_body, ApiError, PhoneCodeBody, Reply};

#[derive(Serialize)]
struct Sent {
    expires_at: String,
}

#[derive(Serialize)]
struct Verified<'a> {
    phone_token: &'a str,
    expires_at: String,
}

/// `POST /halls/{hall}/phone-codes` `{"phone"}` → 202 `{"expires_at"}`.
pub async fn send_code(api: &Api, req: &Request<'_>, hall: &str) -> Result<Answer, ApiError> {
    let h = known_hall(&api.engine, hall)?;
    let body: PhoneCodeBody = parse_body(&req.body)?;
    if body.has_code() {
        return Err(ApiError::bad_request(
            "to try a code, POST it to …/phone-codes/verify",
        ));
    }
    let phone = body.phone()?;
    let code = new_phone_code();
    // No idempotency key: every send is a new code (and counts as one).
    let reply = api
        .engine
        .execute(
            h,
            &req.anonymous_caller(),
            None,
            move |hall, now| hall.send_phone_code(&phone, code.clone(), now),
            |hall: &Hall, result: &Result<Outcome, QueueError>| match result {
                Ok(out) => {
                    let sent = out.sent_code.as_ref().expect("a sent code");
                    json(
                        202,
                        &Sent {
                            expires_at: wire::time(hall.spec(), sent.expires),
                        },
                    )
                }
                Err(e) => ApiError::from(e.clone()).reply(),
            },
        )
        .await?;
    Ok(reply.into())
}

/// `POST /halls/{hall}/phone-codes/verify` `{"phone", "code"}` → 200
/// `{"phone_token", "expires_at"}`; a wrong, used or expired code → 422.
pub async fn verify(api: &Api, req: &Request<'_>, hall: &str) -> Result<Answer, ApiError> {
    let h = known_hall(&api.engine, hall)?;
    let body: PhoneCodeBody = parse_body(&req.body)?;
    let phone = body.phone()?;
    let code = body.code()?;
    let token = new_token();
    let hash = crate::queue::citizen::token_hash(&token);
    let reply = api
        .engine
        .execute(
            h,
            &req.anonymous_caller(),
            None,
            move |hall, now| hall.verify_phone(&phone, &code, hash.clone(), now),
            |hall: &Hall, result: &Result<Outcome, QueueError>| -> Reply {
                match result {
                    Ok(out) => match out.code_check {
                        Some(CodeCheck::Verified { expires }) => json(
                            200,
                            &Verified {
                                phone_token: &token,
                                expires_at: wire::time(hall.spec(), expires),
                            },
                        ),
                        // The try is journaled; the answer is a refusal.
                        Some(CodeCheck::Wrong { tries_left }) => ApiError::new_status(
                            422,
                            "phone_unverified",
                            if tries_left == 0 {
                                "wrong code; that was the last try, ask for a new code".to_string()
                            } else {
                                format!("wrong code; {tries_left} tries left")
                            },
                        )
                        .reply(),
                        None => unreachable!("verify_phone says how the try ended"),
                    },
                    Err(e) => ApiError::from(e.clone()).reply(),
                }
            },
        )
        .await?;
    Ok(reply.into())
}
