//! Headers every response carries (CONTRACT.md, "HTTP conventions").

use std::convert::Infallible;
use std::task::{Context, Poll};

use http::{HeaderValue, header};
use tower::{Layer, Service};

use super::{BoxFuture, take_ready};
use crate::http::Response;

#[derive(Debug, Clone, Copy, Default)]
pub struct SecurityHeadersLayer;

impl<S> Layer<S> for SecurityHeadersLayer {
    type Service = SecurityHeaders<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SecurityHeaders { inner }
    }
}

#[derive(Debug, Clone)]
pub struct SecurityHeaders<S> {
    inner: S,
}

impl<S, R> Service<R> for SecurityHeaders<S>
where
    S: Service<R, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
    R: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        let future = take_ready(&mut self.inner).call(request);
        Box::pin(async move {
            let mut response = future.await?;
            response.headers_mut().insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
            Ok(response)
        })
    }
}
