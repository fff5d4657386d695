//! Route tables and thin handlers: parse, call one service, map the result.

pub mod docs;
pub mod ops;

use http::Method;

use super::router::{Router, handler};
use crate::app::AppState;

/// Every route of the API process.
pub fn api_router(state: AppState) -> Router {
    Router::new()
        .route(Method::GET, "/healthz", handler((), ops::healthz))
        .route(Method::GET, "/readyz", handler(state.clone(), ops::readyz))
        .route(Method::GET, "/metrics", handler((), ops::metrics))
        .route(
            Method::GET,
            "/openapi.json",
            handler((), docs::openapi_json),
        )
        .route(Method::GET, "/docs", handler((), docs::swagger_ui))
        .route(Method::GET, "/docs/{*file}", handler((), docs::swagger_ui))
}

/// The worker's small operations server.
pub fn worker_router() -> Router {
    Router::new()
        .route(Method::GET, "/healthz", handler((), ops::healthz))
        .route(Method::GET, "/metrics", handler((), ops::metrics))
}
