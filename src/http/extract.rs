//! Bounded body reading. The body-limit layer has already wrapped the body
//! in `Limited`; overflowing it here is the same 413 as a declared
//! oversize `Content-Length` (DEPENDENCIES.md, hyper: bodies).

use bytes::Bytes;
use http_body_util::BodyExt;
use http_body_util::LengthLimitError;

use super::{ApiError, Body, MAX_BODY_BYTES};

/// Reads the whole body; 413 past the limit, 400 if the client broke off.
pub async fn read_body(body: Body) -> Result<Bytes, ApiError> {
    match body.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => {
            Err(ApiError::payload_too_large(MAX_BODY_BYTES))
        }
        Err(_) => Err(ApiError::bad_request("the request body could not be read")),
    }
}
