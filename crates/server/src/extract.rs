//! Request extractors: JSON bodies and queries whose rejections are problem documents, the
//! authenticated principal (read from a bearer secret or the session cookie), pagination and
//! `If-Match`; the session cookies; and input checks several routes share.

use std::collections::BTreeSet;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use steward_core::{Permission, UserId};
use steward_store::UserRow;
use time::OffsetDateTime;
use utoipa::IntoParams;

use crate::auth::{SecretKind, csrf_token, secret_hash};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

pub use crate::principal::{Credential, Principal, PrincipalCache};

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

/// Who acts, in which instance: what nearly every handler of the API begins with.
pub struct Acting {
    /// The application state.
    pub state: AppState,
    /// Who makes the request.
    pub principal: Principal,
}

impl FromRequestParts<AppState> for Acting {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let principal = Principal::from_request_parts(parts, state).await?;
        Ok(Acting { state: state.clone(), principal })
    }
}

/// Looks a secret up and checks that it, and its user, are still good at this instant.
pub async fn authenticate(state: &AppState, secret: &str) -> ApiResult<Principal> {
    let invalid = || ApiError::unauthenticated("the credentials are not valid");
    // Steward's own secrets start with `stw_`; a JWT is three base64url parts.
    let kind =
        if crate::jwt::looks_like_jwt(secret) { None } else { Some(SecretKind::of(secret).ok_or_else(invalid)?) };
    let hash = secret_hash(secret);
    let now = state.clock.now();
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

/// The cookie attribute that keeps cookies off plain HTTP when Steward is served over HTTPS.
pub fn secure(state: &AppState) -> &'static str {
    if state.public_url.starts_with("https://") { "; Secure" } else { "" }
}

/// Sets the session cookie (HttpOnly) and the CSRF cookie (readable by the page's own scripts,
/// which echo it), both SameSite=Lax, and Secure whenever Steward is reached over https.
pub fn set_session_cookies(state: &AppState, headers: &mut axum::http::HeaderMap, secret: &str, max_age: i64) {
    let secure = secure(state);
    let session = format!("{SESSION_COOKIE}={secret}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}");
    let csrf = format!("{CSRF_COOKIE}={}; Path=/; SameSite=Lax; Max-Age={max_age}{secure}", csrf_token(secret));
    for c in [session, csrf] {
        if let Ok(v) = axum::http::HeaderValue::from_str(&c) {
            headers.append(axum::http::header::SET_COOKIE, v);
        }
    }
}

/// Ok when `locale` is a language tag such as `en` or `pt-BR`.
pub fn check_locale(locale: &str) -> ApiResult<()> {
    let mut parts = locale.split('-');
    let lang_ok =
        parts.next().is_some_and(|l| (2..=3).contains(&l.len()) && l.chars().all(|c| c.is_ascii_alphabetic()));
    let rest_ok = parts.all(|p| (1..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric()));
    if lang_ok && rest_ok {
        Ok(())
    } else {
        Err(ApiError::invalid("locale", "must be a language tag such as en or pt-BR"))
    }
}

/// Ok when `tz` looks like an IANA time zone such as `Europe/Prague`.
pub fn check_timezone(tz: &str) -> ApiResult<()> {
    let ok = (1..=64).contains(&tz.len())
        && tz.split('/').all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || "_-+".contains(c)));
    if ok { Ok(()) } else { Err(ApiError::invalid("timezone", "must be an IANA time zone such as Europe/Prague")) }
}
