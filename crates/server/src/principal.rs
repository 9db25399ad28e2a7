//! Who is acting: the authenticated principal (an active user, their permissions and what they
//! presented), and the principals kept between changes.

use std::collections::BTreeSet;

use steward_core::{Actor, Permission, SessionId, TokenScope, UserId};
use steward_store::{ApiTokenRow, SessionRow, UserRow};
use time::OffsetDateTime;

use crate::error::{ApiError, ApiResult};

/// How the principal authenticated.
#[derive(Debug, Clone)]
pub enum Credential {
    /// A login session (by bearer or by cookie).
    Session(SessionRow),
    /// A personal API token.
    ApiToken(ApiTokenRow),
    /// A JWT signed by the trusted issuer with this id.
    Jwt(uuid::Uuid),
}

/// The authenticated caller: an active user, their instance permissions and how they came in.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The user acting.
    pub user: UserRow,
    /// The union of their instance roles' permissions.
    pub permissions: BTreeSet<Permission>,
    /// Permissions their roles would grant but that are held back until they enrol in
    /// two-factor, while the instance policy `require_totp_for_admins` is on.
    pub withheld: BTreeSet<Permission>,
    /// What they presented.
    pub credential: Credential,
    /// The digest of the presented secret, which scopes idempotency keys.
    pub credential_hash: String,
    /// The presented secret itself (never printed), to open what was sealed for it.
    pub secret: crate::config::Secret,
    /// The change epoch ([`steward_ops::Changes::epoch`]) this principal was read under.
    pub epoch: u64,
    /// Whether a page acts for the user: pages are not an org's API client, so what they read
    /// is not counted against the org's `api_requests_per_minute`.
    pub by_page: bool,
}

impl Principal {
    /// The actor for audit events: the user, and the admin behind them when impersonating.
    pub fn actor(&self) -> Actor {
        Actor { user_id: Some(self.user.id), impersonator_id: self.impersonator_id() }
    }

    /// Err(403) unless what the caller presented may make credentials: a token from an identity
    /// provider never may (what it made would outlive it), and an API token may do what `scope`
    /// names only if it was created with that scope.
    pub fn may_mint(&self, scope: Option<TokenScope>) -> ApiResult<()> {
        match (&self.credential, scope) {
            (Credential::Jwt(_), _) => {
                Err(ApiError::forbidden("a JWT-authorized request cannot create tokens or sessions"))
            }
            (Credential::ApiToken(t), Some(scope)) if !t.scopes.contains(&scope) => {
                Err(ApiError::forbidden(format!("this API token was not created with the {scope} scope")))
            }
            _ => Ok(()),
        }
    }

    /// When the credential presented expires, if it does: whatever it makes expires no later.
    pub fn credential_expiry(&self) -> Option<OffsetDateTime> {
        match &self.credential {
            Credential::Session(s) => Some(s.expires_at),
            Credential::ApiToken(t) => t.expires_at,
            Credential::Jwt(_) => None,
        }
    }

    /// The API token presented, if one was: what it makes is revoked with it.
    pub fn api_token(&self) -> Option<&ApiTokenRow> {
        match &self.credential {
            Credential::ApiToken(t) => Some(t),
            Credential::Session(_) | Credential::Jwt(_) => None,
        }
    }

    /// The admin impersonating this user, if any.
    pub fn impersonator_id(&self) -> Option<UserId> {
        match &self.credential {
            Credential::Session(s) => s.impersonator_id,
            Credential::ApiToken(_) | Credential::Jwt(_) => None,
        }
    }

    /// The session, when the caller came in with one.
    pub fn session_id(&self) -> Option<SessionId> {
        match &self.credential {
            Credential::Session(s) => Some(s.id),
            Credential::ApiToken(_) | Credential::Jwt(_) => None,
        }
    }

    /// Whether the instance roles grant `permission`.
    pub fn has(&self, permission: Permission) -> bool {
        self.permissions.contains(&permission)
    }

    /// Err(403) unless the instance roles grant `permission`; `totp_enrollment_required` when
    /// they would but the caller must enrol in two-factor first.
    pub fn require(&self, permission: Permission) -> ApiResult<()> {
        if self.has(permission) {
            Ok(())
        } else if self.withheld.contains(&permission) {
            Err(ApiError::totp_enrollment_required())
        } else {
            Err(ApiError::forbidden(format!("this needs the {permission} permission")))
        }
    }
}

type CacheEntry = (Principal, Option<OffsetDateTime>, u64, std::time::Instant);

/// Principals by the digest of their credential, each valid while no change was committed since
/// it was read (and for a minute at most). Where other nodes share the database, their commits
/// reach this node as change notifications, which invalidate too.
#[derive(Default)]
pub struct PrincipalCache {
    entries: std::sync::Mutex<std::collections::HashMap<String, CacheEntry>>,
}

impl PrincipalCache {
    pub(crate) fn get(&self, hash: &str, now: OffsetDateTime, epoch: u64) -> Option<Principal> {
        let map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let (p, valid_until, at_epoch, at) = map.get(hash)?;
        let expired = valid_until.is_some_and(|v| v <= now);
        (*at_epoch == epoch && at.elapsed().as_secs() < 60 && !expired).then(|| p.clone())
    }

    pub(crate) fn put(&self, hash: String, principal: Principal, valid_until: Option<OffsetDateTime>, epoch: u64) {
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 50_000 {
            map.clear();
        }
        map.insert(hash, (principal, valid_until, epoch, std::time::Instant::now()));
    }
}
