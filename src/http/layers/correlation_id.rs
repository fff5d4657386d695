//! Correlation ids (CONTRACT.md, "HTTP conventions"): a valid incoming
//! `X-Correlation-ID` is kept, anything else is replaced by a new UUID v4.
//! The id goes into the request extensions, a tracing span around the whole
//! request (so every log line below carries it), and the response header.

use std::convert::Infallible;
use std::task::{Context, Poll};

use http::{HeaderName, HeaderValue};
use tower::{Layer, Service};
use tracing::Instrument;

use super::{BoxFuture, take_ready};
use crate::http::Response;

pub static X_CORRELATION_ID: HeaderName = HeaderName::from_static("x-correlation-id");

const MAX_LEN: usize = 128;

/// A validated correlation id; cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorrelationId(HeaderValue);

impl CorrelationId {
    /// Keeps `value` if it fits the contract's alphabet and length.
    pub fn parse(value: &HeaderValue) -> Option<Self> {
        let bytes = value.as_bytes();
        let valid = (1..=MAX_LEN).contains(&bytes.len())
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        valid.then(|| Self(value.clone()))
    }

    pub fn generate() -> Self {
        let mut buffer = uuid::Uuid::encode_buffer();
        let text = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buffer);
        Self(HeaderValue::from_str(text).expect("a UUID is a valid header value"))
    }

    pub fn from_static(value: &'static str) -> Self {
        Self(HeaderValue::from_static(value))
    }

    /// The id of a request that went through this layer. Outside it (which
    /// only a test would do) a fresh id keeps problem bodies well-formed.
    pub fn of<B>(request: &http::Request<B>) -> Self {
        request
            .extensions()
            .get::<CorrelationId>()
            .cloned()
            .unwrap_or_else(Self::generate)
    }

    pub fn as_str(&self) -> &str {
        // Only visible ASCII is ever stored.
        self.0.to_str().unwrap_or_default()
    }

    pub fn header_value(&self) -> &HeaderValue {
        &self.0
    }
}

impl std::fmt::Display for CorrelationId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct CorrelationIdLayer;

impl<S> Layer<S> for CorrelationIdLayer {
    type Service = CorrelationIdService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CorrelationIdService { inner }
    }
}

#[derive(Debug, Clone)]
pub struct CorrelationIdService<S> {
    inner: S,
}

impl<S, B> Service<http::Request<B>> for CorrelationIdService<S>
where
    S: Service<http::Request<B>, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let id = request
            .headers()
            .get(&X_CORRELATION_ID)
            .and_then(CorrelationId::parse)
            .unwrap_or_else(CorrelationId::generate);
        let span = tracing::info_span!("request", correlation_id = %id);
        request.extensions_mut().insert(id.clone());
        let mut inner = take_ready(&mut self.inner);
        Box::pin(
            async move {
                let mut response = inner.call(request).await?;
                response
                    .headers_mut()
                    .insert(X_CORRELATION_ID.clone(), id.0);
                Ok(response)
            }
            .instrument(span),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(value: &str) -> Option<CorrelationId> {
        CorrelationId::parse(&HeaderValue::from_str(value).unwrap())
    }

    #[test]
    fn ids_within_the_contract_are_kept() {
        for id in ["a", "req-1.2_3", &"x".repeat(128), "ABC.def-09_"] {
            assert_eq!(parse(id).unwrap().as_str(), id);
        }
    }

    #[test]
    fn ids_outside_the_contract_are_refused() {
        for id in [
            "",
            &"x".repeat(129),
            "has space",
            "semi;colon",
            "ünï",
            "a/b",
            "{}",
        ] {
            let value = HeaderValue::from_bytes(id.as_bytes()).unwrap();
            assert!(CorrelationId::parse(&value).is_none(), "{id:?}");
        }
    }

    #[test]
    fn generated_ids_are_uuid_v4() {
        let id = CorrelationId::generate();
        let parsed = uuid::Uuid::parse_str(id.as_str()).unwrap();
        assert_eq!(parsed.get_version_num(), 4);
    }
}
