//! Authentication for the admin listener (CONTRACT.md, "Admin API"): an
//! `Authorization: Bearer` admin key that is live in the database, or 401
//! with `WWW-Authenticate: Bearer`; a read-only key on anything but a read,
//! 403. The key is looked up on every request, so a revocation holds on
//! every api process at once. The key goes into the request extensions as
//! [`AdminCaller`] for the handler, whose events name it.

use std::convert::Infallible;
use std::task::{Context, Poll};

use deadpool_postgres::Pool;
use http::{Method, StatusCode};
use tower::{Layer, Service};

use super::auth::bearer_token;
use super::correlation_id::CorrelationId;
use super::{BoxFuture, take_ready};
use crate::http::{ApiError, Request, Response};
use crate::services::admin_keys::{self, AdminKey};
use crate::services::db;

/// The admin key of a request that went through [`AdminAuthLayer`].
#[derive(Debug, Clone)]
pub struct AdminCaller(pub AdminKey);

impl AdminCaller {
    pub fn of(request: &Request) -> Result<&AdminKey, ApiError> {
        request
            .extensions()
            .get::<AdminCaller>()
            .map(|caller| &caller.0)
            .ok_or_else(|| ApiError::unauthorized("an admin key is required"))
    }
}

#[derive(Clone)]
pub struct AdminAuthLayer {
    db: Pool,
}

impl AdminAuthLayer {
    pub fn new(db: Pool) -> Self {
        Self { db }
    }
}

impl<S> Layer<S> for AdminAuthLayer {
    type Service = AdminAuth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AdminAuth {
            inner,
            db: self.db.clone(),
        }
    }
}

#[derive(Clone)]
pub struct AdminAuth<S> {
    inner: S,
    db: Pool,
}

impl<S> Service<Request> for AdminAuth<S>
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
        let mut inner = take_ready(&mut self.inner);
        let db = self.db.clone();
        Box::pin(async move {
            let correlation_id = CorrelationId::of(&request);
            let key = match authenticate(&db, &request).await {
                Ok(key) => key,
                Err(error) => return Ok(error.into_response(&correlation_id)),
            };
            let reads = matches!(*request.method(), Method::GET | Method::HEAD);
            if key.read_only && !reads {
                tracing::warn!(key = %key.name, "a read-only admin key tried to write");
                return Ok(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "read-only-key",
                    "Forbidden",
                    "this admin key may only read",
                )
                .into_response(&correlation_id));
            }
            tracing::info!(key = %key.name, "admin request");
            request.extensions_mut().insert(AdminCaller(key));
            inner.call(request).await
        })
    }
}

async fn authenticate(pool: &Pool, request: &Request) -> Result<AdminKey, ApiError> {
    let presented =
        bearer_token(request).ok_or_else(|| ApiError::unauthorized("an admin key is required"))?;
    let client = db(pool).await?;
    match admin_keys::authenticate(&client, presented).await {
        Ok(Some(key)) => Ok(key),
        Ok(None) => Err(ApiError::unauthorized(
            "the admin key is unknown or revoked",
        )),
        Err(error) => Err(error.into()),
    }
}
