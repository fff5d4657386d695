//! TOTP (RFC 6238: SHA-1, 6 digits, 30-second steps, one step of drift
//! either way) through the `totp-rs` crate, the sealing of its secrets at
//! rest, and recovery codes (CONTRACT.md, "Second factor").

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// 160 bits, the size RFC 4226 recommends for HMAC-SHA-1.
const SECRET_BYTES: usize = 20;
const NONCE_BYTES: usize = 24;
/// Recovery codes shown to the user at enrolment.
pub const RECOVERY_CODES: usize = 10;

/// The key secrets are sealed with (`DATA_ENCRYPTION_KEY`).
#[derive(Clone)]
pub struct SecretBox {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(***)")
    }
}

impl SecretBox {
    /// From the base64 of 32 bytes; `None` for anything else.
    pub fn from_base64(text: &str) -> Option<Self> {
        let bytes = STANDARD.decode(text.trim()).ok()?;
        let cipher = XChaCha20Poly1305::new_from_slice(&bytes).ok()?;
        Some(Self { cipher })
    }

    /// `nonce || ciphertext` of `secret`, bound to `user_id`: a sealed
    /// secret copied to another user's row does not open.
    pub fn seal(&self, user_id: Uuid, secret: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_BYTES];
        rand::fill(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: secret,
                    aad: user_id.as_bytes(),
                },
            )
            .expect("XChaCha20-Poly1305 seals any message of this size");
        [nonce.as_slice(), &sealed].concat()
    }

    /// The secret, or `None` for a wrong key, another user, or tampering.
    pub fn open(&self, user_id: Uuid, sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() <= NONCE_BYTES {
            return None;
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_BYTES);
        let nonce = XNonce::try_from(nonce).ok()?;
        self.cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: ciphertext,
                    aad: user_id.as_bytes(),
                },
            )
            .ok()
    }
}

/// A new random secret.
pub fn new_secret() -> Vec<u8> {
    let mut secret = vec![0u8; SECRET_BYTES];
    rand::fill(secret.as_mut_slice());
    secret
}

/// The secret as the base32 an authenticator app is given.
pub fn base32(secret: &[u8]) -> String {
    totp_rs::Secret::from(secret.to_vec()).to_base32()
}

/// `otpauth://totp/Portcullis:<email>?...&issuer=Portcullis`, for a QR code.
pub fn otpauth_uri(email: &str, secret: &[u8]) -> String {
    let label: String = email
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'_' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect();
    format!(
        "otpauth://totp/Portcullis:{label}?secret={}&algorithm=SHA1&digits=6&period=30&issuer=Portcullis",
        base32(secret)
    )
}

/// The time step `code` belongs to, within one step of `unix_seconds`;
/// `None` if it matches none.
pub fn matching_step(secret: &[u8], code: &str, unix_seconds: u64) -> Option<u64> {
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let totp = totp_rs::Builder::new()
        .with_secret(secret.to_vec())
        .build()
        .ok()?;
    totp.check(code, unix_seconds)
}

/// The code of `secret` at `unix_seconds` (for tests and tools).
pub fn code_at(secret: &[u8], unix_seconds: u64) -> String {
    totp_rs::Builder::new()
        .with_secret(secret.to_vec())
        .build_noncompliant()
        .generate(unix_seconds)
        .to_string()
}

/// New recovery codes, `xxxx-xxxx-xxxx-xxxx` of base32 letters and digits
/// (80 random bits each): the text for the user, the hash for storage.
pub fn new_recovery_codes() -> Vec<(String, [u8; 32])> {
    (0..RECOVERY_CODES)
        .map(|_| {
            let mut bytes = [0u8; 10];
            rand::fill(&mut bytes);
            let text = totp_rs::Secret::from(bytes.to_vec())
                .to_base32()
                .to_ascii_lowercase();
            let grouped = text
                .as_bytes()
                .chunks(4)
                .map(|c| std::str::from_utf8(c).unwrap_or_default())
                .collect::<Vec<_>>()
                .join("-");
            let hash = recovery_code_hash(&grouped);
            (grouped, hash)
        })
        .collect()
}

/// The stored form of a recovery code as typed: case, spaces and dashes do
/// not matter.
pub fn recovery_code_hash(typed: &str) -> [u8; 32] {
    let normalised: String = typed
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    Sha256::digest(normalised.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rfc_6238_test_vector_checks() {
        // RFC 6238, appendix B: SHA-1, T = 59 s, the last 6 of 94287082.
        let secret = b"12345678901234567890";
        assert_eq!(code_at(secret, 59), "287082");
        assert_eq!(matching_step(secret, "287082", 59), Some(1));
        // One step of drift either way, no more.
        assert_eq!(matching_step(secret, "287082", 59 + 30), Some(1));
        assert_eq!(matching_step(secret, "287082", 59 + 61), None);
        assert_eq!(matching_step(secret, "28708", 59), None);
        assert_eq!(matching_step(secret, "abcdef", 59), None);
    }

    #[test]
    fn a_sealed_secret_opens_only_with_its_key_and_user() {
        let key = STANDARD.encode([7u8; 32]);
        let sealer = SecretBox::from_base64(&key).unwrap();
        let user = Uuid::new_v4();
        let secret = new_secret();
        let sealed = sealer.seal(user, &secret);
        assert!(!sealed.windows(secret.len()).any(|w| w == secret.as_slice()));
        assert_eq!(sealer.open(user, &sealed), Some(secret.clone()));
        assert_eq!(sealer.open(Uuid::new_v4(), &sealed), None);
        let other = SecretBox::from_base64(&STANDARD.encode([8u8; 32])).unwrap();
        assert_eq!(other.open(user, &sealed), None);
        assert!(SecretBox::from_base64("too short").is_none());
    }

    #[test]
    fn recovery_codes_are_distinct_and_forgiving_to_type() {
        let codes = new_recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODES);
        let distinct: std::collections::HashSet<_> = codes.iter().map(|(t, _)| t).collect();
        assert_eq!(distinct.len(), RECOVERY_CODES);
        let (text, hash) = &codes[0];
        assert_eq!(text.len(), 19, "{text}");
        assert_eq!(
            recovery_code_hash(&text.to_uppercase().replace('-', " ")),
            *hash
        );
    }

    #[test]
    fn the_otpauth_uri_names_the_issuer_and_the_account() {
        let uri = otpauth_uri("ada@example.com", b"12345678901234567890");
        assert!(uri.starts_with("otpauth://totp/Portcullis:ada%40example.com?secret="));
        assert!(uri.ends_with("&issuer=Portcullis"));
    }
}
