//! Request extractors: JSON bodies whose rejections are problem documents, the authenticated
//! principal, pagination and `If-Match`.

use std::collections::BTreeSet;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use steward_core::{Actor, Permission, SessionId, TokenScope, UserId};
use steward_store::{ApiTokenRow, SessionRow, UserRow};
use time::OffsetDateTime;
use utoipa::IntoParams;

use crate::auth::{SecretKind, csrf_token, secret_hash};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The session cookie.
pub const SESSION_COOKIE: &str = "steward_session";
/// The cookie holding the CSRF token that pages and scripts echo back.
pub const CSRF_COOKIE: &str = "steward_csrf";
/// The header cookie-authenticated unsafe requests carry the CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// A JSON body. Unknown fields, wrong types and values that do not parse are answered with
/// 400 `validation_failed` naming the field; an oversized body with 413.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|ct| {
            let mime = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
            mime == "application/json" || mime.ends_with("+json")
        });
        if !is_json {
            return Err(ApiError::invalid("body", "expected a JSON body with Content-Type: application/json"));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::payload_too_large()
            } else {
                ApiError::invalid("body", rejection.body_text())
            }
        })?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Deserializes JSON, naming the failing field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let field = if path == "." { "body".to_owned() } else { path };
        let message = inner.to_string();
        let message = message.split(" at line ").next().unwrap_or(&message).to_owned();
        // Values our own parsers refuse already say which field they are.
        let message = message.strip_prefix(&format!("{field}: ")).map(str::to_owned).unwrap_or(message);
        ApiError::invalid(field, message)
    })
}

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

fn presented_secret(parts: &Parts) -> Option<(String, bool)> {
    if let Some(value) = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let (scheme, secret) = value.split_once(' ')?;
        if scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token") {
            return Some((secret.trim().to_owned(), false));
        }
        return None;
    }
    cookie(&parts.headers, SESSION_COOKIE).map(|c| (c, true))
}

/// The value of a cookie.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let (secret, by_cookie) =
            presented_secret(parts).ok_or_else(|| ApiError::unauthenticated("credentials are required"))?;
        let principal = authenticate(state, &secret).await?;
        let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
        if by_cookie && !safe {
            let sent = parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
            let expected = csrf_token(&secret);
            if !bool::from(subtle::ConstantTimeEq::ct_eq(sent.as_bytes(), expected.as_bytes())) {
                return Err(ApiError::forbidden("a cookie-authenticated request must carry the X-CSRF-Token header"));
            }
        }
        Ok(principal)
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
    fn get(&self, hash: &str, now: OffsetDateTime, epoch: u64) -> Option<Principal> {
        let map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let (p, valid_until, at_epoch, at) = map.get(hash)?;
        let expired = valid_until.is_some_and(|v| v <= now);
        (*at_epoch == epoch && at.elapsed().as_secs() < 60 && !expired).then(|| p.clone())
    }

    fn put(&self, hash: String, principal: Principal, valid_until: Option<OffsetDateTime>, epoch: u64) {
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 50_000 {
            map.clear();
        }
        map.insert(hash, (principal, valid_until, epoch, std::time::Instant::now()));
    }
}

/// Looks a secret up and checks that it, and its user, are still good at this instant.
pub async fn authenticate(state: &AppState, secret: &str) -> ApiResult<Principal> {
    let invalid = || ApiError::unauthenticated("the credentials are not valid");
    // Steward's own secrets start with `stw_`; a JWT is three base64url parts.
    let kind =
        if crate::jwt::looks_like_jwt(secret) { None } else { Some(SecretKind::of(secret).ok_or_else(invalid)?) };
    let hash = secret_hash(secret);
    let now = OffsetDateTime::now_utc();
    // Where other nodes write too, only their change notifications make a cached entry safe.
    let cacheable = (!state.store.shared() || state.store.changes().is_some()) && kind != Some(SecretKind::Setup);
    if cacheable && let Some(p) = state.principals.get(&hash, now, state.changes.epoch()) {
        return Ok(Principal { secret: crate::config::Secret::new(secret), ..p });
    }
    let epoch = state.changes.epoch();
    let Some(kind) = kind else {
        let (user, issuer, valid_until) = crate::sso::jwt_user(state, secret).await?;
        let tx = state.store.read().await?;
        return finish(state, tx, secret, hash, user, Credential::Jwt(issuer), valid_until, cacheable, epoch).await;
    };
    let mut tx = state.store.read().await?;
    let (user_id, credential, valid_until) = match kind {
        SecretKind::Session => {
            let s = tx.session_by_hash(&hash).await?.ok_or_else(invalid)?;
            if s.revoked_at.is_some() || s.expires_at <= now {
                return Err(invalid());
            }
            if let Some(admin) = s.impersonator_id {
                impersonator_still_may(tx.as_mut(), admin).await?;
            }
            let until = Some(s.expires_at);
            (s.user_id, Credential::Session(s), until)
        }
        SecretKind::ApiToken => {
            let t = tx.api_token_by_hash(&hash).await?.ok_or_else(invalid)?;
            if t.revoked_at.is_some() || t.expires_at.is_some_and(|e| e <= now) {
                return Err(invalid());
            }
            (t.user_id, Credential::ApiToken(t.clone()), t.expires_at)
        }
        SecretKind::Setup | SecretKind::Scim => return Err(invalid()),
    };
    let user = tx.user(user_id).await?.ok_or_else(invalid)?;
    finish(state, tx, secret, hash, user, credential, valid_until, cacheable, epoch).await
}

/// Err(401) unless the admin behind an impersonation session is still active and still holds
/// `users.impersonate`: Login as user dies with the impersonator's access.
async fn impersonator_still_may(tx: &mut dyn steward_store::Tx, admin: UserId) -> ApiResult<()> {
    let ended = || ApiError::unauthenticated("the impersonation has ended");
    let admin = tx.user(admin).await?.ok_or_else(ended)?;
    if !admin.status.can_sign_in() {
        return Err(ended());
    }
    let permissions = role_book(tx).await?.permissions_of(&admin.instance_roles);
    if permissions.contains(&Permission::UsersImpersonate) { Ok(()) } else { Err(ended()) }
}

/// Admits an active user with what they presented (their instance permissions held back while a
/// required two-factor enrolment is missing), and caches the principal.
#[allow(clippy::too_many_arguments)]
async fn finish(
    state: &AppState,
    mut tx: Box<dyn steward_store::Tx>,
    secret: &str,
    hash: String,
    user: UserRow,
    credential: Credential,
    valid_until: Option<OffsetDateTime>,
    cacheable: bool,
    epoch: u64,
) -> ApiResult<Principal> {
    if !user.status.can_sign_in() {
        tx.rollback().await?;
        return Err(ApiError::unauthenticated("the credentials are not valid"));
    }
    // Most principals hold built-in roles or none: only custom ones need the role table.
    let book = if user.instance_roles.iter().any(|r| !r.is_builtin()) {
        role_book(tx.as_mut()).await?
    } else {
        steward_core::RoleBook::default()
    };
    let mut permissions = book.permissions_of(&user.instance_roles);
    let mut withheld = BTreeSet::new();
    if !permissions.is_empty() {
        let (settings, _) = crate::state::instance_settings(tx.as_mut()).await?;
        let enrolled = tx.totp(user.id).await?.is_some_and(|t| t.confirmed_at.is_some());
        if settings.policies.require_totp_for_admins && !enrolled {
            withheld = std::mem::take(&mut permissions);
        }
    }
    tx.rollback().await?;
    let principal = Principal {
        user,
        permissions,
        withheld,
        credential,
        credential_hash: hash.clone(),
        secret: crate::config::Secret::new(secret),
        epoch,
        by_page: false,
    };
    if cacheable {
        state.principals.put(hash, principal.clone(), valid_until, epoch);
    }
    Ok(principal)
}

/// The built-in roles and the instance's own.
pub async fn role_book(tx: &mut dyn steward_store::Tx) -> ApiResult<steward_core::RoleBook> {
    Ok(steward_ops::governance::role_book(tx).await?)
}

/// `?limit=&cursor=` of every list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Page {
    /// How many items, 1 to 500 (default 50).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl Page {
    /// The limit, checked.
    pub fn limit(&self) -> ApiResult<u32> {
        match self.limit {
            None => Ok(50),
            Some(n @ 1..=500) => Ok(n),
            Some(_) => Err(ApiError::invalid("limit", "must be 1 to 500")),
        }
    }

    /// The decoded cursor.
    pub fn cursor<T: std::str::FromStr>(&self) -> ApiResult<Option<T>> {
        let Some(c) = &self.cursor else { return Ok(None) };
        let bad = || ApiError::invalid("cursor", "is not a cursor this list gave out");
        let bytes = URL_SAFE_NO_PAD.decode(c).map_err(|_| bad())?;
        let text = String::from_utf8(bytes).map_err(|_| bad())?;
        text.parse().map(Some).map_err(|_| bad())
    }
}

/// Encodes a position as an opaque cursor.
pub fn encode_cursor(position: impl ToString) -> String {
    URL_SAFE_NO_PAD.encode(position.to_string())
}

/// The next cursor of a page fetched with `limit + 1` rows: trims the extra row.
pub fn paginate<T, K: ToString>(mut rows: Vec<T>, limit: u32, key: impl Fn(&T) -> K) -> (Vec<T>, Option<String>) {
    let limit = limit as usize;
    if rows.len() > limit {
        rows.truncate(limit);
        let next = rows.last().map(|r| encode_cursor(key(r)));
        (rows, next)
    } else {
        (rows, None)
    }
}

/// Err(412) unless an `If-Match` header, when present, names `version`.
pub fn check_if_match(headers: &HeaderMap, version: i64) -> ApiResult<()> {
    let Some(value) = headers.get(header::IF_MATCH) else { return Ok(()) };
    let text = value.to_str().map_err(|_| ApiError::invalid("If-Match", "is not text"))?;
    let matches = text.split(',').any(|tag| {
        let tag = tag.trim();
        tag == "*" || tag.trim_start_matches("W/").trim_matches('"') == version.to_string()
    });
    if matches { Ok(()) } else { Err(ApiError::precondition_failed(version)) }
}

/// A query string whose rejections are problem documents.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de).map(ApiQuery).map_err(|e| {
            let field = e.path().to_string();
            let message = e.into_inner().to_string();
            ApiError::invalid(if field == "." { "query".to_owned() } else { field }, message)
        })
    }
}

/// Deserializes a field that may be absent (outer `None`) or null (`Some(None)`), for PATCH.
pub fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}
