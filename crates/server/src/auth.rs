//! Secrets and passwords: opaque 256-bit tokens kept only as SHA-256 digests, argon2id hashing on
//! a bounded pool, and the throttle for failed logins.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

use crate::error::{ApiError, ApiResult};

pub use steward_ops::secrets::{SecretKind, new_secret, secret_hash};

/// The CSRF token bound to a session secret: forms and cookie-authenticated API calls must echo it.
pub fn csrf_token(session_secret: &str) -> String {
    let digest = Sha256::digest(format!("steward-csrf:{session_secret}").as_bytes());
    URL_SAFE_NO_PAD.encode(&digest[..24])
}

fn keystream(key: &str, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 32);
    let mut block = 0u32;
    while out.len() < len {
        out.extend(Sha256::digest(format!("steward-return:{block}:{key}").as_bytes()));
        block += 1;
    }
    out.truncate(len);
    out
}

/// Seals `secret` so that only the holder of `key` (another secret) can open it.
pub fn seal(secret: &str, key: &str) -> String {
    let stream = keystream(key, secret.len());
    secret.bytes().zip(stream).map(|(a, b)| format!("{:02x}", a ^ b)).collect()
}

/// Opens what [`seal`] sealed with the same key.
pub fn open_sealed(sealed: &str, key: &str) -> Option<String> {
    let bytes: Vec<u8> = (0..sealed.len())
        .step_by(2)
        .map(|i| sealed.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect::<Option<_>>()?;
    let stream = keystream(key, bytes.len());
    String::from_utf8(bytes.iter().zip(stream).map(|(a, b)| a ^ b).collect()).ok()
}

/// Argon2id with the OWASP parameters (m=19456 KiB, t=2, p=1) on a fixed set of hashing worker
/// threads (one per core by default), each reusing one memory buffer, so that a burst of logins
/// queues instead of allocating 19 MiB per hash on whatever thread is free.
///
/// Resident memory is bounded by one buffer per worker while hashing goes on, and a worker that
/// has had nothing to do for [`WORKER_IDLE`] gives its buffer back to the system. Checks of
/// logins that look like an attack (suspect, see [`LoginThrottle::suspect`]) wait behind
/// everyone else's: they get the workers that nothing else wants, at most half of them at once,
/// and while other checks wait, one suspect check in every [`SUSPECT_MAX_WAIT`] goes first, so
/// that a storm of failures cannot slow the logins that succeed and a suspect login is still
/// answered.
#[derive(Clone)]
pub struct PasswordPool {
    queue: Arc<PoolHandle>,
}

/// How long a hashing worker keeps its memory buffer with no work.
pub const WORKER_IDLE: Duration = Duration::from_secs(5);

/// While other checks wait, how long a suspect check may be passed by them before it goes first,
/// and how often one may.
pub const SUSPECT_MAX_WAIT: Duration = Duration::from_secs(1);

enum Job {
    Hash {
        password: String,
        reply: oneshot::Sender<Result<String, String>>,
    },
    /// With no stored hash, spends the time of one hash and answers no.
    Verify {
        password: String,
        hash: Option<String>,
        reply: oneshot::Sender<bool>,
    },
}

struct Jobs {
    normal: VecDeque<Job>,
    suspect: VecDeque<(Instant, Job)>,
    /// When a suspect check last went before others that waited.
    last_jump: Option<Instant>,
    /// Suspect checks being computed, and how many may be at once (so that a worker is always
    /// left for the others).
    suspect_running: usize,
    suspect_limit: usize,
    closed: bool,
}

impl Jobs {
    fn new(suspect_limit: usize) -> Self {
        Jobs {
            normal: VecDeque::new(),
            suspect: VecDeque::new(),
            last_jump: None,
            suspect_running: 0,
            suspect_limit,
            closed: false,
        }
    }

    /// The next job to compute, and whether it is a suspect check; hand that back with
    /// [`Jobs::suspect_done`] when it is computed.
    fn next(&mut self, now: Instant) -> Option<(Job, bool)> {
        let waited = |since: Instant| now.saturating_duration_since(since) >= SUSPECT_MAX_WAIT;
        let overdue = self.suspect.front().is_some_and(|(at, _)| waited(*at));
        let jump = overdue && self.last_jump.is_none_or(waited);
        if self.suspect_running < self.suspect_limit
            && (self.normal.is_empty() || jump)
            && let Some((_, job)) = self.suspect.pop_front()
        {
            if !self.normal.is_empty() {
                self.last_jump = Some(now);
            }
            self.suspect_running += 1;
            return Some((job, true));
        }
        self.normal.pop_front().map(|job| (job, false))
    }

    fn suspect_done(&mut self) {
        self.suspect_running = self.suspect_running.saturating_sub(1);
    }
}

struct Queue {
    jobs: Mutex<Jobs>,
    ready: Condvar,
    /// Hashes computed (verifications included), for metrics and for tests that check that a
    /// refused request cost none.
    computed: std::sync::atomic::AtomicU64,
}

/// What the pool's clones share; dropping the last one stops the workers.
struct PoolHandle(Arc<Queue>);

impl Drop for PoolHandle {
    fn drop(&mut self) {
        self.0.jobs.lock().unwrap_or_else(|p| p.into_inner()).closed = true;
        self.0.ready.notify_all();
    }
}

/// Passwords need at least this many characters (and nothing else).
pub const MIN_PASSWORD_CHARS: usize = 12;
const MAX_PASSWORD_BYTES: usize = 1024;

impl PasswordPool {
    /// A pool computing at most `concurrency` hashes at once (0: one per core).
    pub fn new(concurrency: usize) -> Self {
        let n =
            if concurrency == 0 { std::thread::available_parallelism().map_or(2, |n| n.get()) } else { concurrency };
        let queue = Arc::new(Queue {
            jobs: Mutex::new(Jobs::new((n / 2).max(1))),
            ready: Condvar::new(),
            computed: std::sync::atomic::AtomicU64::new(0),
        });
        for i in 0..n {
            let queue = queue.clone();
            let spawned = std::thread::Builder::new().name(format!("steward-hash-{i}")).spawn(move || worker(&queue));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "could not start a password hashing worker");
            }
        }
        PasswordPool { queue: Arc::new(PoolHandle(queue)) }
    }

    /// How many hashes the pool has computed, verifications included.
    pub fn computed(&self) -> u64 {
        self.queue.0.computed.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Checks the password rule and hashes it.
    pub async fn hash(&self, password: &str) -> ApiResult<String> {
        self.hash_as(password, false).await
    }

    /// [`PasswordPool::hash`] for bulk work a directory sends (SCIM): it waits behind people
    /// signing in, as suspect checks do, so that one tenant's provisioning cannot slow another
    /// tenant's logins.
    pub async fn hash_in_background(&self, password: &str) -> ApiResult<String> {
        self.hash_as(password, true).await
    }

    async fn hash_as(&self, password: &str, low_priority: bool) -> ApiResult<String> {
        check_password(password)?;
        let (reply, answer) = oneshot::channel();
        self.submit(Job::Hash { password: password.to_owned(), reply }, low_priority);
        answer.await.map_err(ApiError::internal)?.map_err(ApiError::internal)
    }

    /// Whether `password` matches `hash`; with no hash, spends the same time and says no.
    pub async fn verify(&self, password: &str, hash: Option<&str>) -> ApiResult<bool> {
        self.verify_as(password, hash, false).await
    }

    /// [`PasswordPool::verify`] for a login that looks like an attack (`suspect`).
    pub async fn verify_as(&self, password: &str, hash: Option<&str>, suspect: bool) -> ApiResult<bool> {
        if password.len() > MAX_PASSWORD_BYTES {
            return Ok(false);
        }
        let (reply, answer) = oneshot::channel();
        self.submit(Job::Verify { password: password.to_owned(), hash: hash.map(str::to_owned), reply }, suspect);
        answer.await.map_err(ApiError::internal)
    }

    fn submit(&self, job: Job, suspect: bool) {
        let queue = &self.queue.0;
        let mut jobs = queue.jobs.lock().unwrap_or_else(|p| p.into_inner());
        if suspect {
            jobs.suspect.push_back((Instant::now(), job));
        } else {
            jobs.normal.push_back(job);
        }
        drop(jobs);
        queue.ready.notify_one();
    }
}

/// One hashing worker: takes jobs until the pool is dropped, with one buffer of argon2 blocks
/// that it keeps while busy and frees after [`WORKER_IDLE`] without work.
fn worker(queue: &Queue) {
    let argon = Argon2::default();
    let mut memory: Option<Vec<Block>> = None;
    let mut was_suspect = false;
    loop {
        let job = {
            let mut jobs = queue.jobs.lock().unwrap_or_else(|p| p.into_inner());
            if was_suspect {
                jobs.suspect_done();
            }
            loop {
                if let Some((job, suspect)) = jobs.next(Instant::now()) {
                    was_suspect = suspect;
                    break job;
                }
                if jobs.closed {
                    return;
                }
                let (guard, waited) = queue.ready.wait_timeout(jobs, WORKER_IDLE).unwrap_or_else(|p| p.into_inner());
                jobs = guard;
                if waited.timed_out() {
                    memory = None;
                }
            }
        };
        let blocks = memory.get_or_insert_with(|| hashing_memory(argon.params().block_count()));
        queue.computed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match job {
            Job::Hash { password, reply } => {
                let _ = reply.send(hash_with(&argon, password.as_bytes(), blocks));
            }
            Job::Verify { password, hash: Some(hash), reply } => {
                let _ = reply.send(verify_with(password.as_bytes(), &hash, blocks));
            }
            Job::Verify { password, hash: None, reply } => {
                let _ = hash_with(&argon, password.as_bytes(), blocks);
                let _ = reply.send(false);
            }
        }
    }
}

/// A buffer for `blocks` argon2 blocks. Its capacity is above glibc's largest dynamic mmap
/// threshold (32 MiB), so that the allocation is always its own mapping and freeing it returns
/// the memory to the system, instead of staying in an arena; only the `blocks` used are touched.
fn hashing_memory(blocks: usize) -> Vec<Block> {
    const OWN_MAPPING_BYTES: usize = 33 << 20;
    let mut memory = Vec::with_capacity(blocks.max(OWN_MAPPING_BYTES / std::mem::size_of::<Block>()));
    memory.resize(blocks, Block::default());
    memory
}

fn hash_with(argon: &Argon2<'_>, password: &[u8], memory: &mut [Block]) -> Result<String, String> {
    let salt = Salt::generate();
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    argon.hash_password_into_with_memory(password, &salt, &mut out, &mut *memory).map_err(|e| e.to_string())?;
    let phc = PasswordHash {
        algorithm: argon2::ARGON2ID_IDENT,
        version: Some(argon2::Version::V0x13.into()),
        params: ParamsString::try_from(argon.params()).map_err(|e| e.to_string())?,
        salt: Some(salt),
        hash: Some(Output::new(&out).map_err(|e| e.to_string())?),
    };
    Ok(phc.to_string())
}

/// Checks `password` against a PHC string of any argon2 variant and parameters; a stored hash
/// with more memory than the worker's buffer gets a buffer of its own.
fn verify_with(password: &[u8], stored: &str, memory: &mut [Block]) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else { return false };
    let (Ok(algorithm), Ok(params), Some(expected)) =
        (Algorithm::try_from(parsed.algorithm.as_str()), Params::try_from(&parsed), parsed.hash)
    else {
        return false;
    };
    let version = match parsed.version.map(argon2::Version::try_from) {
        None => argon2::Version::default(),
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let Some(salt) = parsed.salt else { return false };
    let argon = Argon2::new(algorithm, version, params);
    let mut out = vec![0u8; expected.len()];
    let needed = argon.params().block_count();
    let computed = if needed <= memory.len() {
        argon.hash_password_into_with_memory(password, &salt, &mut out, &mut memory[..needed])
    } else {
        argon.hash_password_into_with_memory(password, &salt, &mut out, hashing_memory(needed))
    };
    computed.is_ok() && bool::from(subtle::ConstantTimeEq::ct_eq(out.as_slice(), expected.as_bytes()))
}

/// The password rule: at least 12 characters, at most 1 KiB, no composition rules.
pub fn check_password(password: &str) -> ApiResult<()> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(ApiError::invalid("password", format!("must be at least {MIN_PASSWORD_CHARS} characters")));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(ApiError::invalid("password", "must be at most 1024 bytes"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_random_prefixed_and_hashed() {
        let a = new_secret(SecretKind::Session);
        let b = new_secret(SecretKind::Session);
        assert_ne!(a, b);
        assert_eq!(SecretKind::of(&a), Some(SecretKind::Session));
        assert_eq!(a.len(), "stw_s_".len() + 43);
        assert_eq!(secret_hash(&a).len(), 64);
        assert_eq!(secret_hash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_ne!(secret_hash(&a), secret_hash(&b));
    }

    #[test]
    fn sealed_secrets_open_only_with_their_key() {
        let admin = new_secret(SecretKind::Session);
        let key = new_secret(SecretKind::Session);
        let sealed = seal(&admin, &key);
        assert!(!sealed.contains(&admin));
        assert_eq!(open_sealed(&sealed, &key).as_deref(), Some(admin.as_str()));
        assert_ne!(open_sealed(&sealed, &new_secret(SecretKind::Session)).as_deref(), Some(admin.as_str()));
    }

    #[tokio::test]
    async fn the_pool_hashes_in_phc_form_and_verifies_what_argon2_itself_wrote() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let pool = PasswordPool::new(2);
        let hash = pool.hash("correct horse battery").await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        assert!(pool.verify("correct horse battery", Some(&hash)).await.unwrap());
        assert!(!pool.verify("correct horse batterz", Some(&hash)).await.unwrap());
        assert_ne!(pool.hash("correct horse battery").await.unwrap(), hash, "each hash has its own salt");
        // The argon2 crate's own verifier accepts the pool's hashes, and the pool accepts its.
        let parsed = PasswordHash::new(&hash).unwrap();
        assert!(Argon2::default().verify_password(b"correct horse battery", &parsed).is_ok());
        let other = Argon2::new(Algorithm::Argon2id, argon2::Version::V0x13, Params::new(32768, 3, 1, None).unwrap())
            .hash_password(b"stored with other parameters")
            .unwrap()
            .to_string();
        assert!(pool.verify("stored with other parameters", Some(&other)).await.unwrap());
        assert!(!pool.verify("stored with other parameterz", Some(&other)).await.unwrap());
        let argon2i = Argon2::new(Algorithm::Argon2i, argon2::Version::V0x13, Params::default())
            .hash_password(b"an older variant")
            .unwrap()
            .to_string();
        assert!(pool.verify("an older variant", Some(&argon2i)).await.unwrap());
    }

    #[tokio::test]
    async fn unknown_accounts_and_broken_hashes_say_no() {
        let pool = PasswordPool::new(1);
        assert!(!pool.verify("whatever it is, it is wrong", None).await.unwrap());
        assert!(!pool.verify("whatever it is, it is wrong", Some("not a PHC string")).await.unwrap());
        assert!(!pool.verify("x", Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ")).await.unwrap());
        assert!(!pool.verify(&"x".repeat(2000), None).await.unwrap());
        assert_eq!(pool.hash("too short").await.unwrap_err().code(), "validation_failed");
    }

    #[test]
    fn suspect_checks_wait_behind_the_others_but_not_for_ever() {
        let job = |tag: &str| Job::Verify { password: tag.to_owned(), hash: None, reply: oneshot::channel().0 };
        let tag = |next: Option<(Job, bool)>| match next {
            Some((Job::Verify { password, .. }, suspect)) => (password, suspect),
            _ => (String::new(), false),
        };
        let now = Instant::now();
        let mut jobs = Jobs::new(1);
        jobs.suspect.push_back((now, job("suspect")));
        jobs.normal.push_back(job("first"));
        jobs.normal.push_back(job("second"));
        assert_eq!(tag(jobs.next(now)), ("first".into(), false));
        let later = now + SUSPECT_MAX_WAIT;
        assert_eq!(tag(jobs.next(later)), ("suspect".into(), true), "overdue: it goes first");
        jobs.suspect_done();
        jobs.suspect.push_back((now, job("also overdue")));
        jobs.normal.push_back(job("third"));
        let once = "one suspect check per SUSPECT_MAX_WAIT goes first";
        assert_eq!(tag(jobs.next(later)), ("second".into(), false), "{once}");
        assert_eq!(tag(jobs.next(later + SUSPECT_MAX_WAIT)), ("also overdue".into(), true));
        jobs.suspect_done();
        assert_eq!(tag(jobs.next(later)), ("third".into(), false));
        jobs.suspect.push_back((later, job("alone")));
        jobs.suspect.push_back((later, job("alone too")));
        assert_eq!(tag(jobs.next(later)), ("alone".into(), true), "nothing else waits");
        assert!(jobs.next(later).is_none(), "the limit of suspect checks at once leaves a worker free");
        jobs.normal.push_back(job("fourth"));
        assert_eq!(tag(jobs.next(later)), ("fourth".into(), false), "for the others");
        jobs.suspect_done();
        assert_eq!(tag(jobs.next(later)), ("alone too".into(), true));
        assert!(jobs.next(later).is_none());
    }

    #[tokio::test]
    async fn concurrent_hashes_all_finish_on_a_bounded_pool() {
        let pool = PasswordPool::new(2);
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let pool = pool.clone();
                tokio::spawn(async move {
                    let password = format!("concurrent password {i}");
                    let hash = pool.hash(&password).await.unwrap();
                    pool.verify(&password, Some(&hash)).await.unwrap()
                })
            })
            .collect();
        for t in tasks {
            assert!(t.await.unwrap());
        }
    }
}
