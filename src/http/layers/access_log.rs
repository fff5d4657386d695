//! One log line per request, at its end (CONTRACT.md, "Observability"):
//! `method`, `route` (the template, never the raw path), `status` and
//! `latency_ms`. It runs inside the correlation-id span, so the line carries
//! `correlation_id` too. Headers and bodies are never logged.

use std::convert::Infallible;
use std::task::{Context, Poll};
use std::time::Instant;

use tower::{Layer, Service};

use super::{BoxFuture, take_ready};
use crate::http::Response;
use crate::http::router::MatchedRoute;

#[derive(Debug, Clone, Copy, Default)]
pub struct AccessLogLayer;

impl<S> Layer<S> for AccessLogLayer {
    type Service = AccessLog<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AccessLog { inner }
    }
}

#[derive(Debug, Clone)]
pub struct AccessLog<S> {
    inner: S,
}

impl<S, B> Service<http::Request<B>> for AccessLog<S>
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
        let started = Instant::now();
        let method = request.method().clone();
        let future = take_ready(&mut self.inner).call(request);
        Box::pin(async move {
            let response = future.await?;
            let route = MatchedRoute::of(&response);
            let status = response.status().as_u16();
            let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
            tracing::info!(
                method = %method,
                route,
                status,
                latency_ms = (latency_ms * 1000.0).round() / 1000.0,
                "request completed"
            );
            Ok(response)
        })
    }
}
