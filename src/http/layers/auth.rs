//! Authentication for the protected routes: a valid `Authorization: Bearer`
//! access token, or 401 with `WWW-Authenticate: Bearer`. A token verified
//! before is taken from the cache of verified tokens; any other is verified
//! by the keys, then kept there. The claims go into the request extensions
//! as [`AuthenticatedUser`] for the denylist layer, which runs next, and
//! the handler.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header;
use tower::{Layer, Service};

use super::correlation_id::CorrelationId;
use super::{BoxFuture, take_ready};
use crate::http::{ApiError, Request, Response};
use crate::security::claims::Claims;
use crate::security::jwt::JwtKeys;
use crate::security::verified::VerifiedTokens;

/// The caller of a protected route.
#[derive(Debug, Clone)]
pub struct AuthenticatedUser(pub Claims);

impl AuthenticatedUser {
    /// The caller of a request that went through [`AuthLayer`].
    pub fn of(request: &Request) -> Result<&Claims, ApiError> {
        request
            .extensions()
            .get::<AuthenticatedUser>()
            .map(|user| &user.0)
            .ok_or_else(|| ApiError::unauthorized("an access token is required"))
    }
}

#[derive(Clone)]
pub struct AuthLayer {
    keys: Arc<JwtKeys>,
    verified: Arc<VerifiedTokens>,
}

impl AuthLayer {
    pub fn new(keys: Arc<JwtKeys>, verified: Arc<VerifiedTokens>) -> Self {
        Self { keys, verified }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Auth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Auth {
            inner,
            keys: self.keys.clone(),
            verified: self.verified.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Auth<S> {
    inner: S,
    keys: Arc<JwtKeys>,
    verified: Arc<VerifiedTokens>,
}

impl<S> Service<Request> for Auth<S>
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

    fn call(&mut self, mut request: Request) -> Self::Future {
        let claims = bearer_token(&request)
            .and_then(|token| self.verified.verify_with(token, |t| self.keys.verify(t)));
        let Some(claims) = claims else {
            let response = ApiError::unauthorized("a valid access token is required")
                .into_response(&CorrelationId::of(&request));
            return Box::pin(std::future::ready(Ok(response)));
        };
        tracing::debug!(user_id = %claims.sub, session_id = %claims.sid, "access token verified");
        request.extensions_mut().insert(AuthenticatedUser(claims));
        Box::pin(take_ready(&mut self.inner).call(request))
    }
}

/// The token of `Authorization: Bearer <token>` (scheme case-insensitive).
pub(crate) fn bearer_token(request: &Request) -> Option<&str> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|token| !token.is_empty())
}
