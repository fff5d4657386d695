//! The 64 KiB request body limit (CONTRACT.md, "HTTP conventions"). A
//! declared `Content-Length` over the limit is refused at once; any other
//! body, chunked included, is wrapped in `Limited`, and the body reader in
//! `http::extract` turns its overflow into the same 413.

use std::convert::Infallible;
use std::task::{Context, Poll};

use http::header;
use http_body_util::Limited;
use tower::{Layer, Service};

use super::correlation_id::CorrelationId;
use super::{BoxFuture, take_ready};
use crate::http::{ApiError, Response};

#[derive(Debug, Clone, Copy)]
pub struct BodyLimitLayer {
    limit: usize,
}

impl BodyLimitLayer {
    pub fn new(limit: usize) -> Self {
        Self { limit }
    }
}

impl<S> Layer<S> for BodyLimitLayer {
    type Service = BodyLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BodyLimit {
            inner,
            limit: self.limit,
        }
    }
}

#[derive(Debug, Clone)]
pub struct BodyLimit<S> {
    inner: S,
    limit: usize,
}

impl<S, B> Service<http::Request<B>> for BodyLimit<S>
where
    S: Service<http::Request<Limited<B>>, Response = Response, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|length| length > self.limit as u64) {
            let response =
                ApiError::payload_too_large(self.limit).into_response(&CorrelationId::of(&request));
            return Box::pin(std::future::ready(Ok(response)));
        }
        let limit = self.limit;
        let request = request.map(|body| Limited::new(body, limit));
        Box::pin(take_ready(&mut self.inner).call(request))
    }
}
