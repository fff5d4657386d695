//! `webhooks.delivery`: one security event POSTed to `WEBHOOK_URL`, signed
//! by the Standard Webhooks scheme (CONTRACT.md, "Security events and
//! webhooks"). The body is the outbox's, as published; `webhook-id` is the
//! event's id on every attempt; every attempt carries its own
//! `webhook-timestamp` and signature. A 2xx is delivered; any other status,
//! a redirect (never followed), or no answer within `WEBHOOK_TIMEOUT_SECONDS`
//! is a failure the worker retries with backoff, then dead-letters.

use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::config::WebhookConfig;
use crate::worker::{JobContext, Outcome};

/// The most of a receiver's answer that is read (then dropped).
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Sends webhooks: the receiver's address and secret, and an HTTP client
/// that follows no redirect and gives up after the timeout.
pub struct Webhooks {
    config: std::sync::Arc<WebhookConfig>,
    client: reqwest::Client,
}

impl Webhooks {
    pub fn new(config: std::sync::Arc<WebhookConfig>) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(config.timeout)
            .user_agent(concat!("Portcullis-Webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { config, client })
    }

    /// POSTs `body` as the delivery `id`, signed now.
    pub async fn deliver(&self, id: &str, body: &[u8]) -> anyhow::Result<()> {
        let timestamp = time::OffsetDateTime::now_utc().unix_timestamp();
        let signature = sign(&self.config.secret, id, timestamp, body);
        let started = Instant::now();
        let sent = self
            .client
            .post(&self.config.url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body.to_vec())
            .send()
            .await;
        let result = match sent {
            Ok(mut response) => {
                let status = response.status();
                // Read a bounded part of the answer, so the connection can
                // serve the next delivery; the rest is dropped.
                let mut read = 0usize;
                while read < MAX_ANSWER_BYTES {
                    match response.chunk().await {
                        Ok(Some(chunk)) => read += chunk.len(),
                        _ => break,
                    }
                }
                if status.is_success() {
                    Ok(())
                } else {
                    Err(anyhow::anyhow!("the receiver answered {status}"))
                }
            }
            // The error names the URL and the cause, never the secret.
            Err(error) if error.is_timeout() => Err(anyhow::anyhow!(
                "the receiver did not answer within {} s",
                self.config.timeout.as_secs()
            )),
            Err(error) => Err(anyhow::anyhow!(
                "the receiver could not be reached: {}",
                error.without_url()
            )),
        };
        metrics::histogram!("webhook_delivery_duration_seconds")
            .record(started.elapsed().as_secs_f64());
        result
    }
}

/// One attempt at the delivery `message_id` (the event's id) of `body`.
pub async fn attempt(ctx: &JobContext, message_id: &str, body: &[u8]) -> Outcome {
    let Some(webhooks) = &ctx.webhooks else {
        // Queued by an api that has a WEBHOOK_URL this worker lacks: kept
        // (retried, then dead-lettered) until the two agree.
        return Outcome::Retry(anyhow::anyhow!("WEBHOOK_URL is not set on this worker"));
    };
    match webhooks.deliver(message_id, body).await {
        Ok(()) => {
            tracing::info!("webhook delivered");
            Outcome::Sent
        }
        Err(error) => Outcome::Retry(error),
    }
}

/// `v1,` and the base64 of HMAC-SHA256 over `{id}.{timestamp}.{body}`, keyed
/// with the secret's bytes (Standard Webhooks, "Signature scheme").
pub fn sign(secret: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification's test vectors.
    #[test]
    fn signs_like_the_specification() {
        let secret = STANDARD.decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let signature = sign(
            &secret,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }
}
