//! Admin keys (CONTRACT.md, "Admin API"): made, listed and revoked from the
//! command line, checked on every admin request. A key is `pcadm_` and 256
//! random bits; only its SHA-256 is stored, and its text is shown once.

use deadpool_postgres::GenericClient;

use super::ServiceError;
use crate::repositories::admin_keys::{self, AdminKeyRecord};
use crate::security::tokens::{OpaqueToken, TOKEN_CHARS, hash_token, looks_like_token};

/// What every admin key's text starts with, so a leaked one is easy to
/// recognise (and to scan for).
pub const KEY_PREFIX: &str = "pcadm_";

/// The key an admin request came with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminKey {
    /// The `actor.name` of every event the request causes.
    pub name: String,
    /// Read-only keys may only read.
    pub read_only: bool,
}

/// Why `admin-keys create` or `revoke` did nothing.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("a key name is 1 to 64 characters from A-Z a-z 0-9 . _ @ -")]
    BadName,
    #[error("a key named `{0}` exists (revoked keys keep their names)")]
    NameTaken(String),
    #[error("no live key is named `{0}`")]
    NoSuchKey(String),
    #[error(transparent)]
    Database(#[from] tokio_postgres::Error),
}

/// Makes a key named `name`; its text, to be shown once.
pub async fn create(
    client: &impl GenericClient,
    name: &str,
    read_only: bool,
) -> Result<String, KeyError> {
    if !valid_name(name) {
        return Err(KeyError::BadName);
    }
    let text = format!("{KEY_PREFIX}{}", OpaqueToken::generate().text);
    if !admin_keys::insert(client, name, &hash_token(&text), read_only).await? {
        return Err(KeyError::NameTaken(name.to_owned()));
    }
    Ok(text)
}

pub async fn list(client: &impl GenericClient) -> Result<Vec<AdminKeyRecord>, KeyError> {
    Ok(admin_keys::list(client).await?)
}

pub async fn revoke(client: &impl GenericClient, name: &str) -> Result<(), KeyError> {
    if admin_keys::revoke(client, name).await? {
        Ok(())
    } else {
        Err(KeyError::NoSuchKey(name.to_owned()))
    }
}

/// The live key whose text is `presented`, if there is one.
pub async fn authenticate(
    client: &impl GenericClient,
    presented: &str,
) -> Result<Option<AdminKey>, ServiceError> {
    let looks_right = presented
        .strip_prefix(KEY_PREFIX)
        .is_some_and(|rest| rest.len() == TOKEN_CHARS && looks_like_token(rest));
    if !looks_right {
        return Ok(None);
    }
    Ok(admin_keys::use_key(client, &hash_token(presented))
        .await?
        .map(|(name, read_only)| AdminKey { name, read_only }))
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._@-".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::valid_name;

    #[test]
    fn key_names_are_short_plain_words() {
        assert!(valid_name("ops@example.com"));
        assert!(valid_name("ci-deploy_1.0"));
        for bad in ["", "has space", "semi;colon", &"x".repeat(65), "é"] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
