//! Bounds the time one request may take. tower-http's timeout answers with
//! an empty body (DEPENDENCIES.md), so this one renders a problem: 503,
//! since the server, not the client, was too slow.

use std::convert::Infallible;
use std::task::{Context, Poll};
use std::time::Duration;

use tower::{Layer, Service};

use super::correlation_id::CorrelationId;
use super::{BoxFuture, take_ready};
use crate::http::{ApiError, Response};

#[derive(Debug, Clone, Copy)]
pub struct TimeoutLayer {
    limit: Duration,
}

impl TimeoutLayer {
    pub fn new(limit: Duration) -> Self {
        Self { limit }
    }
}

impl<S> Layer<S> for TimeoutLayer {
    type Service = Timeout<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Timeout {
            inner,
            limit: self.limit,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Timeout<S> {
    inner: S,
    limit: Duration,
}

impl<S, B> Service<http::Request<B>> for Timeout<S>
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

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let correlation_id = CorrelationId::of(&request);
        let limit = self.limit;
        let future = take_ready(&mut self.inner).call(request);
        Box::pin(async move {
            match tokio::time::timeout(limit, future).await {
                Ok(response) => response,
                Err(_) => {
                    tracing::warn!(limit_ms = limit.as_millis() as u64, "request timed out");
                    Ok(ApiError::service_unavailable(
                        "request-timeout",
                        "the request took too long to complete",
                    )
                    .into_response(&correlation_id))
                }
            }
        })
    }
}
