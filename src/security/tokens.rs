//! Opaque tokens (refresh and reset): 256 random bits as URL-safe base64
//! without padding (43 characters), stored only as their SHA-256.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use uuid::Uuid;

pub const TOKEN_CHARS: usize = 43;

/// A freshly drawn token: the text goes to the client, the hash to storage.
pub struct OpaqueToken {
    pub text: String,
    pub hash: [u8; 32],
}

impl OpaqueToken {
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::fill(&mut bytes);
        let text = URL_SAFE_NO_PAD.encode(bytes);
        let hash = hash_token(&text);
        Self { text, hash }
    }
}

impl OpaqueToken {
    /// The reset token of a job: 256 bits of HMAC-SHA-256 under the
    /// server's secret, so a job handled again (after a crash between its
    /// email and its ledger row) mails the same working link rather than a
    /// second, different one. Unpredictable without the secret.
    pub fn for_reset_job(secret: &[u8], job_id: Uuid) -> Self {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret)
            .expect("HMAC takes keys of any length");
        mac.update(b"portcullis password-reset token v1\0");
        mac.update(job_id.as_bytes());
        let bytes: [u8; 32] = mac.finalize().into_bytes().into();
        let text = URL_SAFE_NO_PAD.encode(bytes);
        let hash = hash_token(&text);
        Self { text, hash }
    }
}

/// The stored form of a token the client presents. Input of the wrong
/// shape still hashes (and then matches nothing).
pub fn hash_token(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

/// True for text that could be one of our tokens; lets callers skip a
/// database round trip for obvious garbage.
pub fn looks_like_token(text: &str) -> bool {
    text.len() == TOKEN_CHARS
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_43_url_safe_characters_and_distinct() {
        let a = OpaqueToken::generate();
        let b = OpaqueToken::generate();
        assert_eq!(a.text.len(), TOKEN_CHARS);
        assert!(looks_like_token(&a.text));
        assert_ne!(a.text, b.text);
        assert_eq!(a.hash, hash_token(&a.text));
    }

    #[test]
    fn a_jobs_reset_token_is_stable_per_job_and_secret() {
        let job = Uuid::new_v4();
        let a = OpaqueToken::for_reset_job(b"secret-one", job);
        assert_eq!(a.text, OpaqueToken::for_reset_job(b"secret-one", job).text);
        assert!(looks_like_token(&a.text));
        assert_ne!(a.text, OpaqueToken::for_reset_job(b"secret-two", job).text);
        assert_ne!(
            a.text,
            OpaqueToken::for_reset_job(b"secret-one", Uuid::new_v4()).text
        );
    }

    #[test]
    fn garbage_does_not_look_like_a_token() {
        assert!(!looks_like_token("short"));
        assert!(!looks_like_token(&"+".repeat(43)));
    }
}
