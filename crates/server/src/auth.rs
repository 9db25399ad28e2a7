//! Secrets and passwords: opaque 256-bit tokens kept only as SHA-256 digests, argon2id hashing on
//! a bounded pool, and the throttle for failed logins.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::error::{ApiError, ApiResult};

/// What a bearer secret opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretKind {
    /// A login session.
    Session,
    /// A personal API token.
    ApiToken,
    /// A one-time setup link.
    Setup,
    /// A SCIM client's bearer token.
    Scim,
}

impl SecretKind {
    fn prefix(self) -> &'static str {
        match self {
            SecretKind::Session => "stw_s_",
            SecretKind::ApiToken => "stw_t_",
            SecretKind::Setup => "stw_setup_",
            SecretKind::Scim => "stw_scim_",
        }
    }

    /// Which kind a presented secret claims to be.
    pub fn of(secret: &str) -> Option<SecretKind> {
        [SecretKind::Session, SecretKind::ApiToken, SecretKind::Setup, SecretKind::Scim]
            .into_iter()
            .find(|k| secret.starts_with(k.prefix()))
    }
}

/// A new random secret of 256 bits, with a prefix telling what it opens.
pub fn new_secret(kind: SecretKind) -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    format!("{}{}", kind.prefix(), URL_SAFE_NO_PAD.encode(bytes))
}

/// The digest under which a secret is stored and looked up.
pub fn secret_hash(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

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

/// Argon2id with the OWASP parameters (m=19456 KiB, t=2, p=1) on a bounded number of blocking
/// threads, so that a burst of logins queues instead of exhausting memory.
#[derive(Clone)]
pub struct PasswordPool {
    permits: Arc<Semaphore>,
    /// Checks for accounts or addresses that failed recently take one of these first, so that
    /// they hold at most half of the hashing slots and a storm of failures cannot queue
    /// everyone else's logins behind it.
    suspect_permits: Arc<Semaphore>,
    dummy_hash: Arc<String>,
}

/// Passwords need at least this many characters (and nothing else).
pub const MIN_PASSWORD_CHARS: usize = 12;
const MAX_PASSWORD_BYTES: usize = 1024;

impl PasswordPool {
    /// A pool computing at most `concurrency` hashes at once (0: one per core).
    pub fn new(concurrency: usize) -> Self {
        let n =
            if concurrency == 0 { std::thread::available_parallelism().map_or(2, |n| n.get()) } else { concurrency };
        let dummy =
            Argon2::default().hash_password(b"steward timing equaliser").map(|h| h.to_string()).unwrap_or_default();
        PasswordPool {
            permits: Arc::new(Semaphore::new(n)),
            suspect_permits: Arc::new(Semaphore::new((n / 2).max(1))),
            dummy_hash: Arc::new(dummy),
        }
    }

    /// Checks the password rule and hashes it.
    pub async fn hash(&self, password: &str) -> ApiResult<String> {
        check_password(password)?;
        let password = password.to_owned();
        let _permit = self.permits.acquire().await.map_err(ApiError::internal)?;
        tokio::task::spawn_blocking(move || Argon2::default().hash_password(password.as_bytes()).map(|h| h.to_string()))
            .await
            .map_err(ApiError::internal)?
            .map_err(ApiError::internal)
    }

    /// Whether `password` matches `hash`; with no hash, spends the same time and says no.
    pub async fn verify(&self, password: &str, hash: Option<&str>) -> ApiResult<bool> {
        self.verify_as(password, hash, false).await
    }

    /// [`PasswordPool::verify`] for a login whose account or address failed recently
    /// (`suspect`), which waits for one of the slots such logins may hold.
    pub async fn verify_as(&self, password: &str, hash: Option<&str>, suspect: bool) -> ApiResult<bool> {
        if password.len() > MAX_PASSWORD_BYTES {
            return Ok(false);
        }
        let (password, known) = (password.to_owned(), hash.is_some());
        let hash = hash.map_or_else(|| self.dummy_hash.as_str().to_owned(), str::to_owned);
        let _gate =
            if suspect { Some(self.suspect_permits.acquire().await.map_err(ApiError::internal)?) } else { None };
        let _permit = self.permits.acquire().await.map_err(ApiError::internal)?;
        let ok = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&hash)
                .is_ok_and(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
        })
        .await
        .map_err(ApiError::internal)?;
        Ok(ok && known)
    }
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

/// Counts failed logins per account and per client address in a sliding window; successful
/// logins are never delayed, and a success clears the account's count.
pub struct LoginThrottle {
    per_account: u32,
    per_address: u32,
    window: Duration,
    failures: Mutex<HashMap<String, Vec<Instant>>>,
}

impl LoginThrottle {
    /// A throttle with the given limits.
    pub fn new(per_account: u32, per_address: u32, window: Duration) -> Self {
        LoginThrottle { per_account, per_address, window, failures: Mutex::new(HashMap::new()) }
    }

    fn keys(account: &str, address: Option<IpAddr>) -> [(String, bool); 2] {
        [
            (format!("account:{account}"), true),
            (format!("address:{}", address.map_or_else(|| "unknown".into(), |a| a.to_string())), false),
        ]
    }

    /// Err(429) when either count is at its limit, with the seconds until a slot frees.
    pub fn check(&self, account: &str, address: Option<IpAddr>) -> ApiResult<()> {
        let now = Instant::now();
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        for (key, is_account) in Self::keys(account, address) {
            let limit = if is_account { self.per_account } else { self.per_address } as usize;
            if let Some(times) = map.get_mut(&key) {
                times.retain(|t| now.duration_since(*t) < self.window);
                if times.len() >= limit {
                    let oldest = times[0];
                    let wait = self.window.saturating_sub(now.duration_since(oldest));
                    return Err(ApiError::rate_limited(wait.as_secs() + 1));
                }
            }
        }
        Ok(())
    }

    /// Whether the account failed within the window. (Not the address: people behind one NAT
    /// would wait for an attacker among them; the address limit cuts such a storm short anyway.)
    pub fn suspect(&self, account: &str) -> bool {
        let now = Instant::now();
        let map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&format!("account:{account}"))
            .is_some_and(|times| times.iter().any(|t| now.duration_since(*t) < self.window))
    }

    /// Records a failed attempt.
    pub fn failed(&self, account: &str, address: Option<IpAddr>) {
        let now = Instant::now();
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        for (key, _) in Self::keys(account, address) {
            map.entry(key).or_default().push(now);
        }
    }

    /// Clears the account's failures after a successful login.
    pub fn succeeded(&self, account: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&format!("account:{account}"));
    }

    /// Forgets failures older than the window; run periodically so the map stays bounded.
    pub fn prune(&self) {
        let now = Instant::now();
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, times| {
            times.retain(|t| now.duration_since(*t) < self.window);
            !times.is_empty()
        });
    }
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

    #[test]
    fn throttle_blocks_after_the_limit_and_success_clears_the_account() {
        let t = LoginThrottle::new(3, 100, Duration::from_secs(60));
        let ip = Some("127.0.0.1".parse().unwrap());
        for _ in 0..3 {
            t.check("a@x.io", ip).unwrap();
            t.failed("a@x.io", ip);
        }
        assert_eq!(t.check("a@x.io", ip).unwrap_err().code(), "rate_limited");
        assert!(t.check("b@x.io", ip).is_ok());
        assert!(t.suspect("a@x.io") && !t.suspect("b@x.io"));
        t.succeeded("a@x.io");
        assert!(t.check("a@x.io", ip).is_ok());
    }
}
