//! The request body: the 64 KiB limit (CONTRACT.md, "HTTP conventions"),
//! and a connection kept usable when a request is answered before its body
//! was read.
//!
//! A declared `Content-Length` over the limit is refused at once; any other
//! body, chunked included, is wrapped in `Limited`, and the body reader in
//! `http::extract` turns its overflow into the same 413.
//!
//! A request answered early (a 401 before the handler, a 415, a 404) leaves
//! its body unread, and hyper then closes the connection after the response
//! without saying so, so a client that reuses it finds it gone. Here a body
//! dropped unread comes back to this layer, which reads the rest (up to the
//! limit, for a short while) before the response leaves; a body it cannot
//! finish gets the response `Connection: close`, so the client knows.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, header};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Limited};
use tokio::sync::oneshot;
use tower::{Layer, Service};

use super::correlation_id::CorrelationId;
use super::{BoxFuture, take_ready};
use crate::http::{ApiError, Response};

/// How long the rest of an unread body may take to arrive.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy)]
pub struct BodyLimitLayer {
    limit: usize,
}

impl BodyLimitLayer {
    pub fn new(limit: usize) -> Self {
        Self { limit }
    }
}

impl<S> Layer<S> for BodyLimitLayer {
    type Service = BodyLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BodyLimit {
            inner,
            limit: self.limit,
        }
    }
}

#[derive(Debug, Clone)]
pub struct BodyLimit<S> {
    inner: S,
    limit: usize,
}

impl<S, B> Service<http::Request<B>> for BodyLimit<S>
where
    S: Service<http::Request<Limited<Unread<B>>>, Response = Response, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Body<Data = Bytes> + Unpin + Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|length| length > self.limit as u64) {
            let mut response =
                ApiError::payload_too_large(self.limit).into_response(&CorrelationId::of(&request));
            // Too much to read just to keep the connection.
            close(&mut response);
            return Box::pin(std::future::ready(Ok(response)));
        }
        let limit = self.limit;
        let (give_back, mut unread) = oneshot::channel();
        let request = request.map(|body| Limited::new(Unread::new(body, give_back), limit));
        let response = take_ready(&mut self.inner).call(request);
        Box::pin(async move {
            let Ok(mut response) = response.await;
            // The handler's future is done, so its request, body included,
            // was dropped: an unread body is here now or never.
            if let Ok(body) = unread.try_recv()
                && !drain(body, limit).await
            {
                close(&mut response);
            }
            Ok(response)
        })
    }
}

fn close(response: &mut Response) {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
}

/// Reads and discards the rest of a body: true if it ended within `limit`
/// bytes and [`DRAIN_TIMEOUT`].
async fn drain<B: Body<Data = Bytes> + Unpin>(body: B, limit: usize) -> bool {
    let read = async {
        let mut body = body;
        let mut seen = 0usize;
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else { return false };
            if let Some(data) = frame.data_ref() {
                seen = seen.saturating_add(data.len());
                if seen > limit {
                    return false;
                }
            }
        }
        true
    };
    tokio::time::timeout(DRAIN_TIMEOUT, read)
        .await
        .unwrap_or(false)
}

/// A request body that, dropped before its end, goes back to the layer
/// that made it instead of being thrown away.
pub struct Unread<B: Body> {
    body: Option<B>,
    give_back: Option<oneshot::Sender<B>>,
    ended: bool,
}

impl<B: Body> Unread<B> {
    fn new(body: B, give_back: oneshot::Sender<B>) -> Self {
        Self {
            body: Some(body),
            give_back: Some(give_back),
            ended: false,
        }
    }
}

impl<B: Body + Unpin> Body for Unread<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let Some(body) = this.body.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(body).poll_frame(cx);
        if let Poll::Ready(None) = polled {
            this.ended = true;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.body
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

impl<B: Body> Drop for Unread<B> {
    fn drop(&mut self) {
        let Some(body) = self.body.take() else { return };
        // Nothing left to read (a GET, a body read to its end): nothing to do.
        if self.ended || body.is_end_stream() {
            return;
        }
        if let Some(give_back) = self.give_back.take() {
            let _ = give_back.send(body);
        }
    }
}
