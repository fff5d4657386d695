//! The denylist check for the protected routes, inside [`super::auth`]: a
//! token whose `jti` or `sid` is denylisted, or that was issued before the
//! user's "not before" mark, gets 401. When Redis cannot answer, the request
//! fails closed with 503 (CONTRACT.md, "Authentication model").

use std::convert::Infallible;
use std::task::{Context, Poll};

use tower::{Layer, Service};

use super::auth::AuthenticatedUser;
use super::correlation_id::CorrelationId;
use super::{BoxFuture, take_ready};
use crate::cache::Denylist;
use crate::http::{ApiError, Request, Response};

#[derive(Clone)]
pub struct DenylistLayer {
    denylist: Denylist,
}

impl DenylistLayer {
    pub fn new(denylist: Denylist) -> Self {
        Self { denylist }
    }
}

impl<S> Layer<S> for DenylistLayer {
    type Service = DenylistCheck<S>;

    fn layer(&self, inner: S) -> Self::Service {
        DenylistCheck {
            inner,
            denylist: self.denylist.clone(),
        }
    }
}

#[derive(Clone)]
pub struct DenylistCheck<S> {
    inner: S,
    denylist: Denylist,
}

impl<S> Service<Request> for DenylistCheck<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let mut inner = take_ready(&mut self.inner);
        let denylist = self.denylist.clone();
        Box::pin(async move {
            let correlation_id = CorrelationId::of(&request);
            let claims = match AuthenticatedUser::of(&request) {
                Ok(claims) => claims,
                Err(error) => return Ok(error.into_response(&correlation_id)),
            };
            match denylist.allows(claims).await {
                Ok(true) => {
                    metrics::counter!("auth_denylist_checks_total", "result" => "allowed")
                        .increment(1);
                    inner.call(request).await
                }
                Ok(false) => {
                    metrics::counter!("auth_denylist_checks_total", "result" => "denied")
                        .increment(1);
                    Ok(ApiError::unauthorized("the access token has been revoked")
                        .into_response(&correlation_id))
                }
                Err(error) => {
                    tracing::warn!(error = %error, "denylist check failed; refusing the request");
                    Ok(ApiError::service_unavailable(
                        "dependency-unavailable",
                        "the session store is unavailable; try again shortly",
                    )
                    .into_response(&correlation_id))
                }
            }
        })
    }
}
