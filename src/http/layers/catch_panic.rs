//! A panic in a handler becomes a 500 problem and the process lives on.
//! tower-http's `CatchPanicLayer` changes the body type, so this is ours.

use std::any::Any;
use std::convert::Infallible;
use std::panic::AssertUnwindSafe;
use std::task::{Context, Poll};

use futures_util::FutureExt;
use tower::{Layer, Service};

use super::correlation_id::CorrelationId;
use super::{BoxFuture, take_ready};
use crate::http::{ApiError, Response};

#[derive(Debug, Clone, Copy, Default)]
pub struct CatchPanicLayer;

impl<S> Layer<S> for CatchPanicLayer {
    type Service = CatchPanic<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CatchPanic { inner }
    }
}

#[derive(Debug, Clone)]
pub struct CatchPanic<S> {
    inner: S,
}

impl<S, B> Service<http::Request<B>> for CatchPanic<S>
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
        let mut inner = take_ready(&mut self.inner);
        // The synchronous part of `call` may panic as well as the future.
        let future = match std::panic::catch_unwind(AssertUnwindSafe(|| inner.call(request))) {
            Ok(future) => future,
            Err(payload) => {
                return Box::pin(std::future::ready(Ok(panic_response(
                    payload,
                    &correlation_id,
                ))));
            }
        };
        Box::pin(async move {
            match AssertUnwindSafe(future).catch_unwind().await {
                Ok(response) => response,
                Err(payload) => Ok(panic_response(payload, &correlation_id)),
            }
        })
    }
}

fn panic_response(payload: Box<dyn Any + Send>, correlation_id: &CorrelationId) -> Response {
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned());
    ApiError::Internal(anyhow::anyhow!("handler panicked: {message}")).into_response(correlation_id)
}
