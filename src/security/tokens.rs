//! Opaque tokens (refresh and reset): 256 random bits as URL-safe base64
//! without padding (43 characters), stored only as their SHA-256.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

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
    fn garbage_does_not_look_like_a_token() {
        assert!(!looks_like_token("short"));
        assert!(!looks_like_token(&"+".repeat(43)));
    }
}
