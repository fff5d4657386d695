//! Argon2id hashing and verification off the async executor, bounded by a
//! semaphore (CONTRACT.md, "Authentication model"; DEPENDENCIES.md, argon2).
//!
//! The work runs on a fixed set of threads, one per permit, and each thread
//! keeps its Argon2 memory (19 MiB by default) for the next hash. Allocating
//! it per hash on tokio's blocking pool left freed blocks resident in the
//! allocator's per-thread arenas (the API grew by ~200 MiB under a login
//! storm and kept it), and returning them to the system instead cost ~10 ms
//! of page faults per hash.
//!
//! The permit is owned and moves into the job, so a request whose client
//! hangs up keeps its slot until the hash is done and the bound holds. The
//! current span goes along, so the job's log lines keep the correlation id
//! (STYLE.md, habit 8).
//!
//! The queue in front of the threads is bounded too (`ARGON2_MAX_QUEUE`):
//! past it a caller gets [`HashError::Busy`] at once (a 503 with
//! `Retry-After`) instead of waiting behind a flood. Other CPU-heavy checks
//! of unauthenticated input (the password-strength estimate) run on the
//! same threads under the same bounds ([`PasswordHasher::compute`]).

use std::cell::RefCell;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, mpsc};

use anyhow::Context;
use argon2::password_hash::PasswordHasher as _;
use argon2::password_hash::phc::{Output, ParamsString, Salt};
use argon2::{Algorithm, Argon2, Block, Params, PasswordHash, Version};
use tokio::sync::Semaphore;

/// Argon2id cost parameters (CONTRACT.md, "Authentication model").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Params {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

/// One turn on the hasher; moved into the job that uses it.
pub struct HasherPermit {
    _held: tokio::sync::OwnedSemaphorePermit,
    _queued: tokio::sync::OwnedSemaphorePermit,
}

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// The queue is full: the caller should come back later.
    #[error("the password hasher is busy")]
    Busy,
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

type Job = Box<dyn FnOnce() + Send>;

#[derive(Clone)]
pub struct PasswordHasher {
    argon2: Arc<Argon2<'static>>,
    permits: Arc<Semaphore>,
    /// Turns running or waiting: `concurrency + max_queue`.
    queue: Arc<Semaphore>,
    jobs: mpsc::Sender<Job>,
    /// Verified against when the email is unknown, so that answer takes as
    /// long as a wrong password.
    dummy_hash: Arc<str>,
}

impl PasswordHasher {
    /// `concurrency` hashes run at once; up to `max_queue` more wait their
    /// turn, and callers beyond that are turned away.
    pub fn new(params: Argon2Params, concurrency: usize, max_queue: usize) -> anyhow::Result<Self> {
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
        let concurrency = concurrency.max(1);
        Ok(Self {
            argon2: Arc::new(argon2),
            permits: Arc::new(Semaphore::new(concurrency)),
            queue: Arc::new(Semaphore::new(concurrency + max_queue)),
            jobs: start_threads(concurrency)?,
            dummy_hash: dummy_hash.into(),
        })
    }

    /// The PHC string of `password`, with the current parameters.
    pub async fn hash(&self, password: &str) -> Result<String, HashError> {
        let permit = self.acquire().await?;
        self.hash_with(permit, password).await
    }

    /// [`Self::hash`] on a turn already taken.
    pub async fn hash_with(
        &self,
        permit: HasherPermit,
        password: &str,
    ) -> Result<String, HashError> {
        let argon2 = self.argon2.clone();
        let password = password.to_owned();
        Ok(self
            .run(permit, move || hash_phc(&argon2, password.as_bytes()))
            .await?)
    }

    /// Whether `password` matches `phc`. `None` verifies against the dummy
    /// hash and returns false, in the same time.
    pub async fn verify(&self, password: &str, phc: Option<&str>) -> Result<bool, HashError> {
        let permit = self.acquire().await?;
        self.verify_with(permit, password, phc).await
    }

    /// Whether `phc` was made with other parameters than the current ones,
    /// so it should be replaced at the next successful login.
    pub fn needs_rehash(&self, phc: &str) -> bool {
        let current = self.argon2.params();
        let Ok(parsed) = PasswordHash::new(phc) else {
            return true;
        };
        let same = parsed.algorithm == Algorithm::Argon2id.ident()
            && parsed.version == Some(Version::V0x13.into())
            && Params::try_from(&parsed).is_ok_and(|p| {
                p.m_cost() == current.m_cost()
                    && p.t_cost() == current.t_cost()
                    && p.p_cost() == current.p_cost()
                    && p.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN)
                        == current.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN)
            });
        !same
    }

    /// The dummy hash unknown emails are verified against.
    pub fn dummy_hash(&self) -> &str {
        &self.dummy_hash
    }

    /// Runs other CPU-heavy work on the hashing threads, under the same
    /// bounds as a hash.
    pub async fn compute<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let permit = self.acquire().await?;
        Ok(self.run(permit, move || Ok(work())).await?)
    }

    /// Waits for a turn on the hasher, or fails at once with
    /// [`HashError::Busy`] when the queue is full; for callers that must do
    /// something (count a login attempt) just before the work starts.
    pub async fn acquire(&self) -> Result<HasherPermit, HashError> {
        let queued = self
            .queue
            .clone()
            .try_acquire_owned()
            .map_err(|_| HashError::Busy)?;
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .context("the password hasher is closed")?;
        Ok(HasherPermit {
            _held: permit,
            _queued: queued,
        })
    }

    /// [`Self::verify`] on a turn already taken.
    pub async fn verify_with(
        &self,
        permit: HasherPermit,
        password: &str,
        phc: Option<&str>,
    ) -> Result<bool, HashError> {
        let known = phc.is_some();
        let phc: Arc<str> = phc.map_or_else(|| self.dummy_hash.clone(), Arc::from);
        let password = password.to_owned();
        let matches = self
            .run(permit, move || Ok(verify_phc(password.as_bytes(), &phc)))
            .await?;
        Ok(known && matches)
    }

    async fn run<T: Send + 'static>(
        &self,
        permit: HasherPermit,
        work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        let span = tracing::Span::current();
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _permit = permit;
            let _ = done.send(span.in_scope(work));
        });
        self.jobs
            .send(job)
            .map_err(|_| anyhow::anyhow!("the password hashing threads have stopped"))?;
        result.await.context("a password hashing job failed")?
    }
}

thread_local! {
    /// This thread's Argon2 memory, reused by every hash it computes.
    static BLOCKS: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

fn with_blocks<T>(count: usize, work: impl FnOnce(&mut [Block]) -> T) -> T {
    BLOCKS.with(|cell| {
        let mut blocks = cell.borrow_mut();
        if blocks.len() < count {
            blocks.resize(count, Block::default());
        }
        // Argon2 writes every block before it reads it, so leftovers from
        // the previous hash do not matter.
        work(&mut blocks[..count])
    })
}

/// A PHC string of `password` with a fresh 128-bit salt.
fn hash_phc(argon2: &Argon2<'_>, password: &[u8]) -> anyhow::Result<String> {
    let mut salt = [0u8; 16];
    rand::fill(&mut salt);
    let mut output = [0u8; 32];
    with_blocks(argon2.params().block_count(), |blocks| {
        argon2.hash_password_into_with_memory(password, &salt, &mut output, blocks)
    })
    .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(argon2.params())
            .map_err(|e| anyhow::anyhow!("encoding Argon2 parameters: {e}"))?,
        salt: Some(Salt::new(&salt).map_err(|e| anyhow::anyhow!("encoding a salt: {e}"))?),
        hash: Some(Output::new(&output).map_err(|e| anyhow::anyhow!("encoding a hash: {e}"))?),
    };
    Ok(phc.to_string())
}

/// Whether `password` matches the PHC string `phc`. The parameters come
/// from the stored hash, so hashes made with older settings still verify;
/// the comparison is constant-time (`Output`'s equality).
fn verify_phc(password: &[u8], phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm.as_str()) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from).transpose() {
        Ok(version) => version.unwrap_or_default(),
        Err(_) => return false,
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return false;
    };
    let argon2 = Argon2::new(algorithm, version, params);
    let mut computed = vec![0u8; expected.len()];
    let hashed = with_blocks(argon2.params().block_count(), |blocks| {
        argon2.hash_password_into_with_memory(password, salt, &mut computed, blocks)
    });
    hashed.is_ok() && Output::new(&computed).is_ok_and(|computed| computed == *expected)
}

/// `count` threads taking jobs from one queue; they end when every sender
/// (every clone of the hasher) is gone.
fn start_threads(count: usize) -> anyhow::Result<mpsc::Sender<Job>> {
    let (sender, receiver) = mpsc::channel::<Job>();
    let receiver = Arc::new(Mutex::new(receiver));
    for i in 0..count {
        let receiver = receiver.clone();
        std::thread::Builder::new()
            .name(format!("argon2-{i}"))
            .spawn(move || {
                lower_priority();
                loop {
                    let job = match receiver.lock() {
                        Ok(queue) => queue.recv(),
                        Err(_) => return,
                    };
                    let Ok(job) = job else { return };
                    // A panicking job must not take its thread with it.
                    let _ = std::panic::catch_unwind(AssertUnwindSafe(job));
                }
            })
            .context("starting a password hashing thread")?;
    }
    Ok(sender)
}

/// The hashing threads' niceness: below the async runtime's (0), so under
/// a login storm the hashes queue and the threads that answer every other
/// request still get the cores first (bench/ANALYSIS.md weighs the value).
const HASHING_NICE: libc::c_int = 5;

/// Gives this thread a lower CPU priority ([`HASHING_NICE`]) than the
/// async runtime's.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: plain system calls on the calling thread's own id; no
        // memory is shared with the kernel. A failure leaves the priority as
        // it was, which is harmless.
        unsafe {
            let thread = libc::gettid();
            libc::setpriority(libc::PRIO_PROCESS, thread as libc::id_t, HASHING_NICE);
        }
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
            4,
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

    #[test]
    fn hashes_interoperate_with_the_argon2_crate() {
        use argon2::password_hash::PasswordVerifier as _;
        let argon2 = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8192, 1, 1, None).unwrap(),
        );
        let theirs = argon2
            .hash_password(b"hunter2 hunter2")
            .unwrap()
            .to_string();
        assert!(verify_phc(b"hunter2 hunter2", &theirs));
        assert!(!verify_phc(b"hunter2 hunter3", &theirs));
        let ours = hash_phc(&argon2, b"hunter2 hunter2").unwrap();
        assert!(
            argon2
                .verify_password(b"hunter2 hunter2", ours.as_str())
                .is_ok()
        );
        assert!(argon2.verify_password(b"hunter3", ours.as_str()).is_err());
        // A second run on the same thread reuses the memory and still agrees.
        assert!(verify_phc(b"hunter2 hunter2", &ours));
    }

    #[test]
    fn malformed_hashes_never_verify() {
        for phc in [
            "",
            "not a hash",
            "$argon2id$v=19$m=8192,t=1,p=1$c2FsdHNhbHQ",
            "$bcrypt$xyz",
        ] {
            assert!(!verify_phc(b"anything", phc), "{phc}");
        }
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
            0,
        )
        .unwrap();
        let phc = hasher.hash("x").await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        // Unknown emails are checked against a hash of the same cost, so
        // their answer takes as long as a wrong password.
        assert!(
            hasher
                .dummy_hash()
                .starts_with("$argon2id$v=19$m=19456,t=2,p=1$")
        );
        assert!(!hasher.needs_rehash(&phc));
        assert!(!hasher.needs_rehash(hasher.dummy_hash()));
    }

    #[tokio::test]
    async fn hashes_with_older_parameters_need_a_rehash() {
        let hasher = hasher();
        let current = hasher.hash("correct horse battery staple").await.unwrap();
        assert!(!hasher.needs_rehash(&current));
        let older = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8192, 2, 1, None).unwrap(),
        );
        let old = hash_phc(&older, b"correct horse battery staple").unwrap();
        assert!(hasher.needs_rehash(&old));
        assert!(hasher.needs_rehash("garbage"));
    }

    #[tokio::test]
    async fn a_full_queue_turns_callers_away_at_once() {
        // One thread, no queue: while one turn is held, the next is refused.
        let hasher = PasswordHasher::new(
            Argon2Params {
                memory_kib: 8192,
                iterations: 1,
                parallelism: 1,
            },
            1,
            0,
        )
        .unwrap();
        let held = hasher.acquire().await.unwrap();
        assert!(matches!(hasher.acquire().await, Err(HashError::Busy)));
        assert!(matches!(hasher.compute(|| 1).await, Err(HashError::Busy)));
        drop(held);
        assert_eq!(hasher.compute(|| 2).await.unwrap(), 2);
    }
}
