//! Tower layers, each a `FooLayer` plus its service (STYLE.md, habit 7).
//! Their order is set, and explained, in [`crate::http::service`] (and, for
//! the protected routes' auth and denylist, in [`crate::http::handlers`]).
//!
//! Each service follows tower's idiom for calling a readied inner service
//! from a `'static` future: take the readied one out and leave a clone
//! behind (DEPENDENCIES.md, hyper).

pub mod access_log;
pub mod admin_auth;
pub mod auth;
pub mod body_limit;
pub mod catch_panic;
pub mod correlation_id;
pub mod denylist;
pub mod metrics;
pub mod timeout;

use std::future::Future;
use std::pin::Pin;

/// The future every layer returns.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Takes the readied inner service, leaving a fresh clone in its place.
pub(crate) fn take_ready<S: Clone>(inner: &mut S) -> S {
    let clone = inner.clone();
    std::mem::replace(inner, clone)
}
