//! The HTTP layer: a hyper 1 server, hand-composed tower layers and a small
//! router. Handlers parse, call a service and map the result; nothing below
//! this module knows about HTTP.

pub mod extract;
pub mod handlers;
pub mod layers;
pub mod openapi;
pub mod pages;
pub mod problem;
pub mod router;
pub mod server;

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use http_body_util::{Full, Limited};
use hyper::body::Incoming;
use serde::Serialize;
use tower::ServiceBuilder;
use tower::util::BoxCloneSyncService;
use tower_http::set_header::SetResponseHeaderLayer;

pub use problem::ApiError;

/// A request body as handlers see it: bounded by the body-limit layer.
pub type Body = Limited<layers::body_limit::Unread<Incoming>>;
pub type Request = http::Request<Body>;
pub type Response = http::Response<Full<Bytes>>;
/// A route's service: errors are already responses (DEPENDENCIES.md, hyper).
pub type Handler = BoxCloneSyncService<Request, Response, Infallible>;

/// The most a request body may carry (CONTRACT.md, "HTTP conventions").
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A whole HTTP service: the common layers around a router. The API and
/// the worker's operations server both use it.
pub fn service(
    router: router::Router,
    timeout: Duration,
) -> impl tower::Service<
    http::Request<Incoming>,
    Response = Response,
    Error = Infallible,
    Future = impl Send + 'static,
> + Clone
+ Send
+ Sync
+ 'static {
    layers::metrics::register_routes(&router);
    // Outermost first. The correlation id comes first so that every line
    // logged below it, and every problem body, carries it; the security
    // headers reach every response, even the layers' own; the access log and
    // metrics see the final status, including 413s, timeouts and panics;
    // panics are caught nearest the router so the layers above still run.
    ServiceBuilder::new()
        .layer(layers::correlation_id::CorrelationIdLayer)
        // Every response, the layers' own included (CONTRACT.md, "HTTP
        // conventions").
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(layers::access_log::AccessLogLayer)
        .layer(layers::metrics::MetricsLayer)
        .layer(layers::timeout::TimeoutLayer::new(timeout))
        .layer(layers::catch_panic::CatchPanicLayer)
        .layer(layers::body_limit::BodyLimitLayer::new(MAX_BODY_BYTES))
        .service(router)
}

/// A JSON response with the given status.
pub fn json<T: Serialize>(status: StatusCode, body: &T) -> Result<Response, ApiError> {
    let bytes = serde_json::to_vec(body)
        .map_err(|e| ApiError::Internal(anyhow::Error::new(e).context("serialising a response")))?;
    let mut response = http::Response::new(Full::new(Bytes::from(bytes)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

/// A response with no body.
pub fn empty(status: StatusCode) -> Response {
    let mut response = http::Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}
