//! A webhook receiver for `bench/events.sh`: answers every POST 204 after
//! checking its Standard Webhooks signature, and counts the deliveries it
//! accepted; `GET /count` tells the count (and how many were forged).
//!
//! Usage: webhook_sink ADDR SECRET (the `whsec_` secret the worker signs with).

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use sha2::Sha256;

#[derive(Default)]
struct Counts {
    accepted: AtomicU64,
    forged: AtomicU64,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(addr), Some(secret)) = (args.next(), args.next()) else {
        anyhow::bail!("usage: webhook_sink ADDR SECRET");
    };
    let key: Arc<[u8]> = STANDARD.decode(secret.trim_start_matches("whsec_"))?.into();
    let counts = Arc::new(Counts::default());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        let (key, counts) = (key.clone(), counts.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let (key, counts) = (key.clone(), counts.clone());
                async move { Ok::<_, Infallible>(answer(request, &key, &counts).await) }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn answer(
    request: Request<hyper::body::Incoming>,
    key: &[u8],
    counts: &Counts,
) -> Response<Full<Bytes>> {
    if request.method() == hyper::Method::GET {
        let body = format!(
            "{{\"accepted\": {}, \"forged\": {}}}",
            counts.accepted.load(Ordering::Relaxed),
            counts.forged.load(Ordering::Relaxed)
        );
        return Response::new(Full::new(Bytes::from(body)));
    }
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let (id, timestamp, signature) = (
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
    );
    let Ok(body) = request.into_body().collect().await else {
        return status(StatusCode::BAD_REQUEST);
    };
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("any key length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(&body.to_bytes());
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    if signature.split(' ').any(|s| s == expected) {
        counts.accepted.fetch_add(1, Ordering::Relaxed);
        status(StatusCode::NO_CONTENT)
    } else {
        counts.forged.fetch_add(1, Ordering::Relaxed);
        status(StatusCode::UNAUTHORIZED)
    }
}

fn status(code: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = code;
    response
}
