//! Reading a request body without trusting its size.

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};

use crate::wire::ApiError;

/// Collects the body, refusing it with 413 as soon as it passes `limit`,
/// whether or not it declared a length.
pub async fn read_limited<S, B>(body: S, limit: usize) -> Result<Bytes, ApiError>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let mut body = std::pin::pin!(body);
    let mut buf = BytesMut::new();
    while let Some(chunk) = body.next().await {
        let mut chunk =
            chunk.map_err(|_| ApiError::bad_request("the request body could not be read"))?;
        if buf.len() + chunk.remaining() > limit {
            return Err(ApiError::payload_too_large(format!(
                "request bodies are limited to {limit} bytes"
            )));
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            buf.extend_from_slice(part);
            let n = part.len();
            chunk.advance(n);
        }
    }
    Ok(buf.freeze())
}
