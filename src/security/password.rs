//! Argon2id hashing and verification off the async executor, bounded by a
//! semaphore (CONTRACT.md, "Authentication model"; DEPENDENCIES.md, argon2).
//!
//! The permit is owned and moves into the blocking task, so a request whose
//! client hangs up keeps its slot until the hash is done and the bound holds.
//! The current span goes along, so the task's log lines keep the
//! correlation id (STYLE.md, habit 8).

use std::sync::Arc;

use anyhow::Context;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

use crate::config::Argon2Params;

/// One turn on the hasher; moved into the blocking task that uses it.
pub struct HasherPermit {
    _held: tokio::sync::OwnedSemaphorePermit,
}

#[derive(Clone)]
pub struct PasswordHasher {
    argon2: Arc<Argon2<'static>>,
    permits: Arc<Semaphore>,
    /// Verified against when the email is unknown, so that answer takes as
    /// long as a wrong password.
    dummy_hash: Arc<str>,
}

impl PasswordHasher {
    /// `concurrency` hashes run at once; more wait their turn.
    pub fn new(params: Argon2Params, concurrency: usize) -> anyhow::Result<Self> {
        let params = Params::new(
            params.memory_kib,
            params.iterations,
            params.parallelism,
            None,
        )
        .map_err(|e| anyhow::anyhow!("invalid Argon2 parameters: {e}"))?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let dummy_hash = argon2
            .hash_password(b"portcullis dummy password, never a real one")
            .map_err(|e| anyhow::anyhow!("hashing the dummy password: {e}"))?
            .to_string();
        Ok(Self {
            argon2: Arc::new(argon2),
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            dummy_hash: dummy_hash.into(),
        })
    }

    /// The PHC string of `password`.
    pub async fn hash(&self, password: &str) -> anyhow::Result<String> {
        let argon2 = self.argon2.clone();
        let password = password.to_owned();
        let permit = self.acquire().await?;
        self.run(permit, move || {
            argon2
                .hash_password(password.as_bytes())
                .map(|hash| hash.to_string())
                .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))
        })
        .await
    }

    /// Whether `password` matches `phc`. `None` verifies against the dummy
    /// hash and returns false, in the same time.
    pub async fn verify(&self, password: &str, phc: Option<&str>) -> anyhow::Result<bool> {
        let permit = self.acquire().await?;
        self.verify_with(permit, password, phc).await
    }

    /// Waits for a turn on the hasher; for callers that must do something
    /// (count a login attempt) just before the work starts.
    pub async fn acquire(&self) -> anyhow::Result<HasherPermit> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .context("the password hasher is closed")?;
        Ok(HasherPermit { _held: permit })
    }

    /// [`Self::verify`] on a turn already taken.
    pub async fn verify_with(
        &self,
        permit: HasherPermit,
        password: &str,
        phc: Option<&str>,
    ) -> anyhow::Result<bool> {
        let known = phc.is_some();
        let phc: Arc<str> = phc.map_or_else(|| self.dummy_hash.clone(), Arc::from);
        let argon2 = self.argon2.clone();
        let password = password.to_owned();
        let matches = self
            .run(permit, move || {
                // Parameters come from the stored hash, so hashes made with
                // older settings still verify.
                Ok(argon2.verify_password(password.as_bytes(), &*phc).is_ok())
            })
            .await?;
        Ok(known && matches)
    }

    async fn run<T: Send + 'static>(
        &self,
        permit: HasherPermit,
        work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            span.in_scope(work)
        })
        .await
        .context("the password hashing task failed")?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hasher() -> PasswordHasher {
        // Cheap parameters: these tests check behaviour, not cost.
        PasswordHasher::new(
            Argon2Params {
                memory_kib: 8192,
                iterations: 1,
                parallelism: 1,
            },
            2,
        )
        .unwrap()
    }

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let hasher = hasher();
        let phc = hasher.hash("correct horse battery staple").await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=8192,t=1,p=1$"));
        assert!(
            hasher
                .verify("correct horse battery staple", Some(&phc))
                .await
                .unwrap()
        );
        assert!(
            !hasher
                .verify("correct horse battery stapl", Some(&phc))
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn an_unknown_user_never_verifies() {
        let hasher = hasher();
        assert!(
            !hasher
                .verify("portcullis dummy password, never a real one", None)
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn the_default_parameters_are_the_contracts() {
        let hasher = PasswordHasher::new(
            Argon2Params {
                memory_kib: 19_456,
                iterations: 2,
                parallelism: 1,
            },
            1,
        )
        .unwrap();
        let phc = hasher.hash("x").await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
    }
}
