//! HTTP metrics (CONTRACT.md, "Observability"): `http_requests_total`,
//! `http_request_duration_seconds` and `http_requests_in_flight`. Labels are
//! bounded whatever clients send: the route is the matched template (or
//! `unmatched`) and unknown methods collapse into `OTHER`.

use std::convert::Infallible;
use std::task::{Context, Poll};
use std::time::Instant;

use http::Method;
use tower::{Layer, Service};

use super::{BoxFuture, take_ready};
use crate::http::Response;
use crate::http::router::{MatchedRoute, Router};

#[derive(Debug, Clone, Copy, Default)]
pub struct MetricsLayer;

impl<S> Layer<S> for MetricsLayer {
    type Service = Metrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Metrics { inner }
    }
}

#[derive(Debug, Clone)]
pub struct Metrics<S> {
    inner: S,
}

/// Decrements the in-flight gauge even when hyper drops the request future
/// because the client went away (DEPENDENCIES.md, metrics).
struct InFlight;

impl InFlight {
    fn enter() -> Self {
        metrics::gauge!("http_requests_in_flight").increment(1.0);
        InFlight
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        metrics::gauge!("http_requests_in_flight").decrement(1.0);
    }
}

impl<S, B> Service<http::Request<B>> for Metrics<S>
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
        let method = method_label(request.method());
        let guard = InFlight::enter();
        let started = Instant::now();
        let future = take_ready(&mut self.inner).call(request);
        Box::pin(async move {
            let response = future.await?;
            let elapsed = started.elapsed().as_secs_f64();
            drop(guard);
            let route = MatchedRoute::of(&response);
            metrics::counter!(
                "http_requests_total",
                "method" => method,
                "route" => route,
                "status" => response.status().as_u16().to_string()
            )
            .increment(1);
            metrics::histogram!(
                "http_request_duration_seconds",
                "method" => method,
                "route" => route
            )
            .record(elapsed);
            Ok(response)
        })
    }
}

/// Exports every route's latency histogram at zero from the start
/// (CONTRACT.md, "Scale-out"), so dashboards and alerts see it before the
/// route's first request.
pub fn register_routes(router: &Router) {
    metrics::gauge!("http_requests_in_flight").increment(0.0);
    for (method, route) in router.routes() {
        let _ = metrics::histogram!(
            "http_request_duration_seconds",
            "method" => method_label(method),
            "route" => route
        );
    }
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_methods_share_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::from_bytes(b"BREW").unwrap()), "OTHER");
        assert_eq!(method_label(&Method::TRACE), "OTHER");
    }
}
