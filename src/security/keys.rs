//! Signing keys and the JWKS document (CONTRACT.md, "Signing keys and
//! JWKS"): access tokens are signed with an asymmetric key, so that any
//! service verifies them with the public half published at
//! `/.well-known/jwks.json` and none can forge them.
//!
//! `JWT_SIGNING_KEYS` lists PKCS#8 PEM files; the first signs, all verify
//! and are published. A key's `kid` is its RFC 7638 thumbprint, so it names
//! the key itself, whatever file it sits in. HS256 with `JWT_SECRET` stays
//! for deployments that choose it explicitly; its set publishes nothing.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use serde_json::{Value, json};

/// The algorithms `JWT_ALGORITHM` may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningAlgorithm {
    EdDsa,
    Es256,
    Hs256,
}

impl SigningAlgorithm {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "EdDSA" => Some(Self::EdDsa),
            "ES256" => Some(Self::Es256),
            "HS256" => Some(Self::Hs256),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::EdDsa => "EdDSA",
            Self::Es256 => "ES256",
            Self::Hs256 => "HS256",
        }
    }

    pub fn jwt(self) -> Algorithm {
        match self {
            Self::EdDsa => Algorithm::EdDSA,
            Self::Es256 => Algorithm::ES256,
            Self::Hs256 => Algorithm::HS256,
        }
    }
}

/// One key: what signs, what verifies, and its public JWK.
pub struct Key {
    /// `None` only for the HS256 secret, which has no published name.
    pub kid: Option<String>,
    pub algorithm: Algorithm,
    pub encoding: EncodingKey,
    pub decoding: DecodingKey,
    /// The public JWK with `kid`, `alg` and `use`; `None` for HS256.
    public: Option<Value>,
}

/// The keys in force: the first signs, every one verifies.
pub struct KeySet {
    keys: Vec<Key>,
    by_kid: HashMap<String, usize>,
    jwks: bytes::Bytes,
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Names only: never a key.
        let kids: Vec<&str> = self.keys.iter().filter_map(|k| k.kid.as_deref()).collect();
        f.debug_struct("KeySet").field("kids", &kids).finish()
    }
}

/// Why a key file cannot be used; names the file.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{path}: {problem}")]
pub struct KeyFileError {
    pub path: String,
    pub problem: String,
}

impl KeySet {
    /// The HS256 set: one secret, nothing published.
    pub fn hs256(secret: &[u8]) -> Self {
        Self::from_keys(vec![Key {
            kid: None,
            algorithm: Algorithm::HS256,
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            public: None,
        }])
    }

    /// Loads every file of `JWT_SIGNING_KEYS`, in order.
    pub fn load(algorithm: SigningAlgorithm, paths: &[PathBuf]) -> Result<Self, KeyFileError> {
        let mut keys = Vec::with_capacity(paths.len());
        for path in paths {
            let error = |problem: String| KeyFileError {
                path: path.display().to_string(),
                problem,
            };
            let pem = std::fs::read(path).map_err(|e| error(format!("cannot be read ({e})")))?;
            let key = Self::parse(algorithm, &pem).map_err(error)?;
            if keys.iter().any(|k: &Key| k.kid == key.kid) {
                return Err(error("is listed twice (the same key)".into()));
            }
            keys.push(key);
        }
        Ok(Self::from_keys(keys))
    }

    /// One PKCS#8 PEM private key of `algorithm`.
    pub fn parse(algorithm: SigningAlgorithm, pem: &[u8]) -> Result<Key, String> {
        let bad = |e: jsonwebtoken::errors::Error| {
            format!(
                "is not a PKCS#8 PEM private key for {} ({e})",
                algorithm.as_str()
            )
        };
        let alg = algorithm.jwt();
        let encoding = match algorithm {
            SigningAlgorithm::EdDsa => ed25519_from_pem(pem).ok_or_else(|| {
                format!("is not a PKCS#8 PEM private key for {}", algorithm.as_str())
            })?,
            SigningAlgorithm::Es256 => EncodingKey::from_ec_pem(pem).map_err(bad)?,
            SigningAlgorithm::Hs256 => return Err("HS256 uses JWT_SECRET, not key files".into()),
        };
        let mut jwk = Jwk::from_encoding_key(&encoding, alg).map_err(bad)?;
        let kid = jwk.thumbprint(ThumbprintHash::SHA256).map_err(bad)?;
        jwk.common.key_id = Some(kid.clone());
        let decoding = DecodingKey::from_jwk(&jwk).map_err(bad)?;
        // The public members only, whatever the library's JWK type holds.
        let public = match &jwk.algorithm {
            AlgorithmParameters::OctetKeyPair(p) => json!({
                "kty": "OKP", "crv": "Ed25519", "x": p.x,
                "kid": kid, "alg": "EdDSA", "use": "sig",
            }),
            AlgorithmParameters::EllipticCurve(p) => json!({
                "kty": "EC", "crv": "P-256", "x": p.x, "y": p.y,
                "kid": kid, "alg": "ES256", "use": "sig",
            }),
            _ => return Err(format!("is not an {} key", algorithm.as_str())),
        };
        Ok(Key {
            kid: Some(kid),
            algorithm: alg,
            encoding,
            decoding,
            public: Some(public),
        })
    }

    fn from_keys(keys: Vec<Key>) -> Self {
        let by_kid = keys
            .iter()
            .enumerate()
            .filter_map(|(i, k)| k.kid.clone().map(|kid| (kid, i)))
            .collect();
        let published: Vec<&Value> = keys.iter().filter_map(|k| k.public.as_ref()).collect();
        let jwks = serde_json::to_vec(&json!({ "keys": published }))
            .expect("a JSON value serialises")
            .into();
        Self { keys, by_kid, jwks }
    }

    /// The key that signs new tokens.
    pub fn signing(&self) -> &Key {
        &self.keys[0]
    }

    /// The key a token header names: by `kid`, or the HS256 secret for a
    /// header without one under HS256. `None` for any other header.
    pub fn verifying(&self, kid: Option<&str>) -> Option<&Key> {
        match kid {
            Some(kid) => self.by_kid.get(kid).map(|&i| &self.keys[i]),
            None => self.keys.iter().find(|k| k.kid.is_none()),
        }
    }

    /// The JWKS document, serialised once.
    pub fn jwks(&self) -> bytes::Bytes {
        self.jwks.clone()
    }

    /// The `kid`s, first (signing) first.
    pub fn kids(&self) -> Vec<&str> {
        self.keys.iter().filter_map(|k| k.kid.as_deref()).collect()
    }
}

/// The DER of an Ed25519 PKCS#8 v1 key (RFC 8410) up to its 32-byte seed.
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// The PKCS#8 v1 PEM of an Ed25519 seed (what `openssl genpkey` writes).
fn ed25519_pem(seed: &[u8; 32]) -> String {
    use base64::Engine;
    let der = [ED25519_PKCS8_PREFIX.as_slice(), seed].concat();
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    format!("-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n")
}

/// An Ed25519 key from PKCS#8 PEM, v1 or v2 (with the public key inside):
/// jsonwebtoken derives the public key from the v1 form only, so the seed
/// is re-encoded as v1.
fn ed25519_from_pem(pem: &[u8]) -> Option<EncodingKey> {
    use ed25519_dalek::pkcs8::DecodePrivateKey as _;
    let text = std::str::from_utf8(pem).ok()?;
    let key = ed25519_dalek::SigningKey::from_pkcs8_pem(text).ok()?;
    let der = [ED25519_PKCS8_PREFIX.as_slice(), &key.to_bytes()].concat();
    Some(EncodingKey::from_ed_der(&der))
}

/// A new private key as PKCS#8 PEM, and its `kid`.
pub fn generate(algorithm: SigningAlgorithm) -> anyhow::Result<(String, String)> {
    use p256::pkcs8::EncodePrivateKey as _;
    use p256::pkcs8::der::pem::LineEnding;
    let pem = match algorithm {
        SigningAlgorithm::EdDsa => {
            let mut seed = [0u8; 32];
            rand::fill(&mut seed);
            ed25519_pem(&seed)
        }
        SigningAlgorithm::Es256 => loop {
            let mut scalar = [0u8; 32];
            rand::fill(&mut scalar);
            // A few values are not scalars of the curve; draw again.
            if let Ok(key) = p256::SecretKey::from_slice(&scalar) {
                break key
                    .to_pkcs8_pem(LineEnding::LF)
                    .map_err(|e| anyhow::anyhow!("encoding the key: {e}"))?
                    .to_string();
            }
        },
        SigningAlgorithm::Hs256 => anyhow::bail!("HS256 uses JWT_SECRET, not a key file"),
    };
    let kid = KeySet::parse(algorithm, pem.as_bytes())
        .map_err(|e| anyhow::anyhow!("the generated key {e}"))?
        .kid
        .unwrap_or_default();
    Ok((pem, kid))
}

/// Writes `pem` to `path`, readable by its owner only, never over an
/// existing file.
pub fn write_private_key(path: &Path, pem: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options.open(path)?.write_all(pem.as_bytes())
}

/// Whether `path` lies inside a Git work tree (a checkout of this
/// repository): a key there is one `git add` away from being published.
pub fn inside_a_repository(path: &Path) -> bool {
    let Ok(path) = std::fs::canonicalize(path) else {
        return false;
    };
    path.ancestors()
        .skip(1)
        .any(|dir| dir.join(".git").exists())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_load_and_publish_their_public_half_only() {
        for algorithm in [SigningAlgorithm::EdDsa, SigningAlgorithm::Es256] {
            let (pem, kid) = generate(algorithm).unwrap();
            assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{pem}");
            let key = KeySet::parse(algorithm, pem.as_bytes()).unwrap();
            assert_eq!(key.kid.as_deref(), Some(kid.as_str()));
            let set = KeySet::from_keys(vec![key]);
            let jwks: Value = serde_json::from_slice(&set.jwks()).unwrap();
            let jwk = &jwks["keys"][0];
            assert_eq!(jwk["kid"], kid.as_str());
            assert_eq!(jwk["use"], "sig");
            assert_eq!(jwk["alg"], algorithm.as_str());
            assert!(jwk.get("d").is_none(), "no private part: {jwk}");
            // base64url of a SHA-256: 43 characters.
            assert_eq!(kid.len(), 43);
        }
    }

    #[test]
    fn the_kid_is_the_rfc_7638_thumbprint() {
        // RFC 8037, appendix A.3: the thumbprint of its Ed25519 example key.
        let seed: [u8; 32] =
            hex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
                .try_into()
                .unwrap();
        let pem = ed25519_pem(&seed);
        let key = KeySet::parse(SigningAlgorithm::EdDsa, pem.as_bytes()).unwrap();
        assert_eq!(
            key.kid.as_deref(),
            Some("kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k")
        );
    }

    #[test]
    fn a_pkcs8_v2_ed25519_key_with_its_public_half_loads_too() {
        use ed25519_dalek::pkcs8::EncodePrivateKey as _;
        let (v1, kid) = generate(SigningAlgorithm::EdDsa).unwrap();
        let key = ed25519_from_pem(v1.as_bytes()).unwrap();
        let seed: [u8; 32] = key.as_bytes()[16..].try_into().unwrap();
        let v2 = ed25519_dalek::SigningKey::from_bytes(&seed)
            .to_pkcs8_pem(p256::pkcs8::der::pem::LineEnding::LF)
            .unwrap();
        assert_ne!(v2.as_str(), v1);
        let loaded = KeySet::parse(SigningAlgorithm::EdDsa, v2.as_bytes()).unwrap();
        assert_eq!(loaded.kid.as_deref(), Some(kid.as_str()));
    }

    #[test]
    fn a_key_of_the_other_algorithm_is_refused() {
        let (ec, _) = generate(SigningAlgorithm::Es256).unwrap();
        assert!(KeySet::parse(SigningAlgorithm::EdDsa, ec.as_bytes()).is_err());
        let (ed, _) = generate(SigningAlgorithm::EdDsa).unwrap();
        assert!(KeySet::parse(SigningAlgorithm::Es256, ed.as_bytes()).is_err());
        assert!(KeySet::parse(SigningAlgorithm::EdDsa, b"not a key").is_err());
    }

    #[test]
    fn hs256_publishes_nothing() {
        let set = KeySet::hs256(b"0123456789abcdef0123456789abcdef");
        assert_eq!(&set.jwks()[..], br#"{"keys":[]}"#);
        assert!(set.verifying(None).is_some());
        assert!(set.verifying(Some("anything")).is_none());
    }

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }
}
