//! Bounded body reading. The body-limit layer has already wrapped the body
//! in `Limited`; overflowing it here is the same 413 as a declared
//! oversize `Content-Length` (DEPENDENCIES.md, hyper: bodies).

use bytes::Bytes;
use http_body_util::BodyExt;
use http_body_util::{LengthLimitError, Limited};

use super::{ApiError, MAX_BODY_BYTES};

/// Reads the whole body; 413 past the limit, 400 if the client broke off.
pub async fn read_body<B>(body: Limited<B>) -> Result<Bytes, ApiError>
where
    B: http_body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    match body.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => {
            Err(ApiError::payload_too_large(MAX_BODY_BYTES))
        }
        Err(_) => Err(ApiError::bad_request("the request body could not be read")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full, StreamBody};

    #[tokio::test]
    async fn a_body_within_the_limit_is_read_whole() {
        let body = Limited::new(Full::new(Bytes::from_static(b"{}")), MAX_BODY_BYTES);
        assert_eq!(read_body(body).await.unwrap(), Bytes::from_static(b"{}"));
    }

    #[tokio::test]
    async fn a_streamed_body_over_the_limit_is_413() {
        // Many small frames, as a chunked request arrives.
        let frames = (0..70).map(|_| {
            Ok::<_, std::convert::Infallible>(http_body::Frame::data(Bytes::from(vec![b'a'; 1024])))
        });
        let body = StreamBody::new(futures_util::stream::iter(frames)).boxed();
        let error = read_body(Limited::new(body, MAX_BODY_BYTES))
            .await
            .unwrap_err();
        assert_eq!(error.status(), http::StatusCode::PAYLOAD_TOO_LARGE);
    }
}
