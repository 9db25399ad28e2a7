//! Two-factor secrets at rest and the second step of a login. A TOTP secret must be kept to
//! verify codes, so it cannot be hashed: it is sealed with ChaCha20-Poly1305 under the instance
//! key (the configured `secret_key`, or else a random key Steward keeps in its database), bound to
//! its user so that a sealed value moved to another row does not open. Recovery codes are
//! single-use random strings, stored as SHA-256 digests like session secrets.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use steward_core::UserId;
use steward_core::totp;
use steward_store::Tx;
use time::OffsetDateTime;

use crate::auth::secret_hash;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// How many recovery codes an enrolment gives out.
pub const RECOVERY_CODES: usize = 10;
const DB_KEY_NAME: &str = "totp_sealing_key";

pub use crate::sealing::SealingKey;

/// The instance key: from the configuration when set, else the database's own (created once).
pub async fn sealing_key(state: &AppState) -> ApiResult<SealingKey> {
    state
        .sealing_key
        .get_or_try_init(|| async {
            if let Some(key) = &state.config.secret_key {
                return Ok(SealingKey::derive(key.expose()));
            }
            let mut tx = state.store.read().await?;
            let existing = tx.instance_secret(DB_KEY_NAME).await?;
            tx.rollback().await?;
            let material = match existing {
                Some(m) => m,
                None => {
                    let mut bytes = [0u8; 32];
                    getrandom::fill(&mut bytes).map_err(ApiError::internal)?;
                    let mut tx = state.store.write().await?;
                    let held = tx
                        .ensure_instance_secret(DB_KEY_NAME, &URL_SAFE_NO_PAD.encode(bytes), state.clock.now())
                        .await?;
                    tx.commit().await?;
                    held
                }
            };
            Ok::<_, ApiError>(SealingKey::derive(&material))
        })
        .await
        .cloned()
}

/// A new random TOTP secret.
pub fn new_totp_secret() -> [u8; totp::SECRET_BYTES] {
    let mut bytes = [0u8; totp::SECRET_BYTES];
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    bytes
}

/// Ten new recovery codes for `user` and their digests.
pub fn new_recovery_codes(user: UserId) -> (Vec<String>, Vec<String>) {
    (0..RECOVERY_CODES)
        .map(|_| {
            let mut random = [0u8; 7];
            getrandom::fill(&mut random).expect("the operating system's random source failed");
            let code = totp::recovery_code(&random);
            let hash = recovery_hash(user, &code);
            (code, hash)
        })
        .unzip()
}

/// The digest a recovery code of `user` is stored under. The user's id salts it, so that each
/// guess against a stolen table tests one user's codes, not every user's at once.
pub fn recovery_hash(user: UserId, code: &str) -> String {
    secret_hash(&format!("steward-recovery:{user}:{}", totp::normalize_recovery_code(code)))
}

/// The unsalted digest of the codes given out before the salt; they stay usable until used or
/// replaced by a new enrolment.
fn unsalted_recovery_hash(code: &str) -> String {
    secret_hash(&format!("steward-recovery:{}", totp::normalize_recovery_code(code)))
}

/// How the second factor was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecondFactor {
    /// A TOTP code of an authenticator app.
    Totp,
    /// A recovery code, now used up.
    RecoveryCode,
}

impl SecondFactor {
    /// The spelling in audit events.
    pub fn as_str(self) -> &'static str {
        match self {
            SecondFactor::Totp => "totp",
            SecondFactor::RecoveryCode => "recovery_code",
        }
    }
}

/// Checks `code` for `user`'s confirmed enrolment and uses it up in the caller's write
/// transaction: a TOTP code's step becomes the last used one (a conditional update, so that two
/// logins racing with one code cannot both pass), a recovery code is marked used.
pub async fn use_code(
    tx: &mut dyn Tx,
    key: &SealingKey,
    user: UserId,
    code: &str,
    now: OffsetDateTime,
) -> ApiResult<Option<SecondFactor>> {
    let Some(enrolment) = tx.totp(user).await?.filter(|t| t.confirmed_at.is_some()) else {
        return Ok(None);
    };
    let code = code.trim();
    if totp::looks_like_code(code) {
        let secret = key
            .open(user, &enrolment.secret_sealed)
            .ok_or_else(|| ApiError::internal("a two-factor secret does not open with the instance key"))?;
        let Some(step) = totp::verify(&secret, code, now.unix_timestamp(), enrolment.last_step) else {
            return Ok(None);
        };
        return Ok(tx.use_totp_step(user, step).await?.then_some(SecondFactor::Totp));
    }
    if code.is_empty() || code.len() > 64 {
        return Ok(None);
    }
    let used = tx.use_recovery_code(user, &recovery_hash(user, code), now).await?
        || tx.use_recovery_code(user, &unsalted_recovery_hash(code), now).await?;
    Ok(used.then_some(SecondFactor::RecoveryCode))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_digests_are_salted_by_user() {
        let (alice, bob) = (UserId::new(), UserId::new());
        let code = "abcde-fghij";
        assert_ne!(recovery_hash(alice, code), recovery_hash(bob, code));
        assert_ne!(recovery_hash(alice, code), unsalted_recovery_hash(code));
    }

    #[test]
    fn sealed_secrets_open_only_with_their_key_and_user() {
        let key = SealingKey::derive("one");
        let (alice, bob) = (UserId::new(), UserId::new());
        let sealed = key.seal(alice, b"12345678901234567890");
        assert!(!sealed.contains("12345678901234567890"));
        assert_eq!(key.open(alice, &sealed).as_deref(), Some(&b"12345678901234567890"[..]));
        assert_eq!(key.open(bob, &sealed), None);
        assert_eq!(SealingKey::derive("two").open(alice, &sealed), None);
        assert_ne!(key.seal(alice, b"same"), key.seal(alice, b"same"));
    }

    #[test]
    fn recovery_codes_are_ten_distinct_and_hash_as_typed() {
        let user = UserId::new();
        let (codes, hashes) = new_recovery_codes(user);
        assert_eq!(codes.len(), RECOVERY_CODES);
        let distinct: std::collections::BTreeSet<_> = hashes.iter().collect();
        assert_eq!(distinct.len(), RECOVERY_CODES);
        assert_eq!(recovery_hash(user, &codes[0].to_uppercase()), hashes[0]);
    }
}
