//! Login and logout, the current principal (`/me`) and its notification settings.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use steward_core::lockout::LockoutState;
use steward_core::{AuditDraft, Email, SessionId, TargetType};
use steward_store::{SessionRow, Tx, UserRow};
use time::{Duration, OffsetDateTime};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{SecretKind, csrf_token, new_secret, secret_hash};
use crate::error::declared::{BadRequest, TooManyRequests, Unauthorized};
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::set_session_cookies;
use crate::extract::{Acting, ApiJson, Principal, cookie, role_book};
use crate::routes::lifecycle::{NotificationSettings, set_notifications};
use crate::routes::{ClientIp, user_agent};
use crate::state::{AppState, instance_settings};
use crate::twofactor::{SecondFactor, sealing_key, use_code};
use crate::views::UserView;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(me))
        .routes(routes!(get_my_notifications, put_my_notifications))
}

/// Credentials for a password login.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "ada@acme.example", "password": "correct horse battery staple"}))]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
    /// A current two-factor code or an unused recovery code, when two-factor is on.
    pub totp_code: Option<String>,
}

/// A new session.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    /// The session secret; send it as `Authorization: Bearer …`.
    pub token: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// Echo as `X-CSRF-Token` on unsafe requests that authenticate with the cookie.
    pub csrf_token: String,
    pub user: UserView,
    /// The instance policy `require_totp_for_admins` holds back this user's instance roles until
    /// they enrol in two-factor (`POST /api/v1/me/totp`).
    pub totp_enrollment_required: bool,
}

/// Sign in
///
/// Signs in with email and password, and the two-factor code once two-factor is on. Wrong
/// credentials, inactive users and locked accounts get the same 401 `unauthenticated`; a right
/// password with a missing or wrong code gets 401 `totp_required`; an email whose domain belongs to
/// an enforced SSO connection gets 401 `sso_required`. A success sets the session cookie and the
/// device cookie `steward_device`: a login that sends it back is judged by that device's own
/// failures only, so that an attacker failing the account or sharing the address neither refuses
/// (429) nor slows its owner.
#[utoipa::path(post, path = "/api/v1/auth/login", operation_id = "log_in", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = LoginResponse),
    (status = 401, body = Problem, content_type = "application/problem+json", description = "`unauthenticated`, or `totp_required` when a two-factor code is needed"),
    TooManyRequests))]
pub(crate) async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    ApiJson(req): ApiJson<LoginRequest>,
) -> ApiResult<Response> {
    let signed_in = password_login(&state, ip, &headers, req).await?;
    let body = LoginResponse {
        csrf_token: csrf_token(&signed_in.secret),
        expires_at: signed_in.expires_at,
        user: UserView::from(&signed_in.user),
        token: signed_in.secret.clone(),
        totp_enrollment_required: signed_in.totp_enrollment_required,
    };
    let mut response = Json(body).into_response();
    signed_in.set_cookies(&state, response.headers_mut());
    Ok(response)
}

/// A password login that went through.
pub struct SignedIn {
    /// Who signed in.
    pub user: UserRow,
    secret: String,
    expires_at: OffsetDateTime,
    totp_enrollment_required: bool,
    device_cookie: String,
    now: OffsetDateTime,
}

impl SignedIn {
    /// Sets the session and known-device cookies.
    pub fn set_cookies(&self, state: &AppState, headers: &mut HeaderMap) {
        set_session_cookies(state, headers, &self.secret, (self.expires_at - self.now).whole_seconds());
        if let Ok(v) = HeaderValue::from_str(&self.device_cookie) {
            headers.append(header::SET_COOKIE, v);
        }
    }
}

/// Signs in with an email and password (and a second factor when enrolled), from the JSON API
/// or the sign-in page: throttled per account, address and known device, refused the same way
/// whatever the reason, and opening a session with its audit event.
pub async fn password_login(
    state: &AppState,
    ip: Option<std::net::IpAddr>,
    headers: &HeaderMap,
    req: LoginRequest,
) -> ApiResult<SignedIn> {
    let email = Email::parse(&req.email).map_err(ApiError::from)?;
    let key = email.key();
    let now = state.clock.now();
    let device = match cookie(headers, DEVICE_COOKIE) {
        Some(presented) => known_device(&sealing_key(state).await?, &presented, &key, now),
        None => None,
    };
    let device = device.as_deref();
    state.throttle.admit(&key, ip, device).await?;
    crate::sso::password_login_allowed(state, &email).await?;
    let (user, lock, enrolled) = check_password(state, &key, ip, device, &req.password, now).await?;
    let instance_key = sealing_key(state).await?;
    let sealing = enrolled.then_some(&instance_key);
    let mut tx = state.store.write().await?;
    let factor = match check_factor(tx.as_mut(), sealing, user.id, req.totp_code.as_deref(), now).await? {
        Factor::Passed(factor) => factor,
        refused => {
            tx.rollback().await?;
            if refused == Factor::Wrong {
                login_failed(state, &key, ip, device, Some(&user), now).await?;
            }
            return Err(ApiError::totp_required());
        }
    };
    let (settings, _) = instance_settings(tx.as_mut()).await?;
    if lock.failures > 0 {
        tx.put_lockout(user.id, &LockoutState::default(), now).await?;
    }
    let has_roles = !role_book(tx.as_mut()).await?.permissions_of(&user.instance_roles).is_empty();
    let totp_enrollment_required = has_roles && settings.policies.require_totp_for_admins && !enrolled;
    let method = match factor {
        None => "password",
        Some(SecondFactor::Totp) => "password+totp",
        Some(SecondFactor::RecoveryCode) => "password+recovery_code",
    };
    if factor == Some(SecondFactor::RecoveryCode) {
        tell_recovery_code_used(tx.as_mut(), &user, &settings.name, now).await?;
    }
    let (secret, session, event) =
        open_session(tx.as_mut(), &user, ip, headers, json!({ "method": method }), now).await?;
    state.commit(tx, vec![event], now).await?;
    if factor == Some(SecondFactor::RecoveryCode) {
        state.outbox_wake.notify_one();
    }
    state.throttle.succeeded(&key);
    metrics::counter!("steward_logins_total", "outcome" => "ok").increment(1);
    let mut user = user;
    user.last_login_at = Some(now);
    let device_cookie = device_cookie(state, &instance_key, &key, now);
    Ok(SignedIn { user, secret, expires_at: session.expires_at, totp_enrollment_required, device_cookie, now })
}

/// The account `key` names, when `password` is its password and it may sign in now: an active
/// person, not locked. Otherwise the failure is counted and the answer is the same whatever the
/// reason; a locked account still spends the hash, so that its answer takes as long as any
/// other. Answers the user, their lockout state and whether they enrolled in two-factor.
async fn check_password(
    state: &AppState,
    key: &str,
    ip: Option<std::net::IpAddr>,
    device: Option<&str>,
    password: &str,
    now: OffsetDateTime,
) -> ApiResult<(UserRow, LockoutState, bool)> {
    let mut tx = state.store.read().await?;
    let user = tx.user_by_email_key(key).await?;
    let (lock, enrolled) = match &user {
        Some(u) => (tx.lockout(u.id).await?, tx.totp(u.id).await?.is_some_and(|t| t.confirmed_at.is_some())),
        None => (LockoutState::default(), false),
    };
    tx.rollback().await?;
    let hash = user.as_ref().and_then(|u| u.password_hash.as_deref());
    let suspect = state.throttle.suspect(key, ip, device);
    let password_ok = state.passwords.verify_as(password, hash, suspect).await?;
    match user {
        Some(u)
            if password_ok
                && !lock.is_locked(now)
                && u.status.can_sign_in()
                && u.kind == steward_core::UserKind::Person =>
        {
            Ok((u, lock, enrolled))
        }
        other => {
            login_failed(state, key, ip, device, other.as_ref(), now).await?;
            Err(ApiError::unauthenticated("the email or password is wrong, or the account is not active"))
        }
    }
}

/// How a login's second factor stands.
#[derive(Debug, PartialEq, Eq)]
enum Factor {
    /// Passed: none was needed, or this one was used.
    Passed(Option<SecondFactor>),
    /// A code is needed and none was sent, or two-factor was confirmed since the password was
    /// checked: ask for one.
    Ask,
    /// The code sent is wrong or used: a failed login.
    Wrong,
}

/// Checks the second factor in the login's transaction: with `sealing`, the user was enrolled
/// when the password was checked and `code` must be a current code or an unused recovery code.
async fn check_factor(
    tx: &mut dyn Tx,
    sealing: Option<&crate::twofactor::SealingKey>,
    user: steward_core::UserId,
    code: Option<&str>,
    now: OffsetDateTime,
) -> ApiResult<Factor> {
    let Some(sealing) = sealing else {
        let enrolled_since = tx.totp(user).await?.is_some_and(|t| t.confirmed_at.is_some());
        return Ok(if enrolled_since { Factor::Ask } else { Factor::Passed(None) });
    };
    let Some(code) = code.filter(|c| !c.trim().is_empty()) else { return Ok(Factor::Ask) };
    Ok(match use_code(tx, sealing, user, code, now).await? {
        Some(f) => Factor::Passed(Some(f)),
        None => Factor::Wrong,
    })
}

/// Mails the user that a recovery code was used to sign in, and how many are left.
async fn tell_recovery_code_used(tx: &mut dyn Tx, user: &UserRow, product: &str, now: OffsetDateTime) -> ApiResult<()> {
    let left = tx.recovery_codes_left(user.id).await?;
    let body = format!(
        "Hello {},\n\nA recovery code was used to sign in to your {product} account; {left} of them are left. \
         If this was not you, contact your administrator at once.\n",
        user.name
    );
    crate::mail::enqueue(tx, user, "security", "A recovery code was used", body, now).await?;
    Ok(())
}

/// The cookie that makes a browser or client a known device of one account. Every password
/// login sets it afresh, for [`KNOWN_DEVICE`]; it holds when it was issued, sealed with the
/// instance key and bound to the account, and nothing else. A login that presents it is judged by
/// the device's own failures only ([`crate::auth::LoginThrottle`]), so that an attacker failing
/// the account, or sharing the device's address, neither refuses nor slows its owner. Signing out
/// keeps it: the device stays known.
pub const DEVICE_COOKIE: &str = "steward_device";

/// How long a device stays known after its last password login.
pub const KNOWN_DEVICE: Duration = Duration::days(90);

/// How far ahead of this node's clock another node's cookie may have been issued.
const DEVICE_CLOCK_SKEW_SECS: i64 = 300;

fn device_context(account: &str) -> String {
    format!("steward-known-device:{account}")
}

/// The throttle's name for the device presenting `cookie` at a login of `account`: the digest of
/// the cookie, when it opens with this instance's key for this account and has not expired.
fn known_device(
    instance_key: &crate::twofactor::SealingKey,
    cookie: &str,
    account: &str,
    now: OffsetDateTime,
) -> Option<String> {
    let issued = instance_key.open_bound(device_context(account).as_bytes(), cookie)?;
    let issued = i64::from_be_bytes(issued.as_slice().try_into().ok()?);
    let age = now.unix_timestamp() - issued;
    (-DEVICE_CLOCK_SKEW_SECS..KNOWN_DEVICE.whole_seconds()).contains(&age).then(|| secret_hash(cookie))
}

fn device_cookie(
    state: &AppState,
    instance_key: &crate::twofactor::SealingKey,
    account: &str,
    now: OffsetDateTime,
) -> String {
    let sealed = instance_key.seal_bound(device_context(account).as_bytes(), &now.unix_timestamp().to_be_bytes());
    let secure = crate::extract::secure(state);
    format!(
        "{DEVICE_COOKIE}={sealed}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        KNOWN_DEVICE.whole_seconds()
    )
}

/// Counts a failed login: in this node's throttle (with the known device it came from, if any),
/// and for a known account that is not locked, in its lockout state in the database (so that
/// every node sees the lock). The count is not an audit event (anyone could flood the log with
/// them) and does not invalidate cached principals, so that a storm of failures costs successful
/// requests nothing; the lock itself is audited.
async fn login_failed(
    state: &AppState,
    key: &str,
    ip: Option<std::net::IpAddr>,
    device: Option<&str>,
    user: Option<&steward_store::UserRow>,
    now: OffsetDateTime,
) -> ApiResult<()> {
    state.throttle.failed(key, ip, device);
    metrics::counter!("steward_logins_total", "outcome" => "failed").increment(1);
    let policy = state.lockout_policy();
    let Some(user) = user.filter(|_| policy.failures > 0) else { return Ok(()) };
    let mut tx = state.store.write().await?;
    let before = tx.lockout(user.id).await?;
    if before.is_locked(now) {
        tx.rollback().await?;
        return Ok(());
    }
    let (after, locked_now) = before.after_failure(policy, now);
    tx.put_lockout(user.id, &after, now).await?;
    if locked_now {
        metrics::counter!("steward_lockouts_total").increment(1);
        let event = AuditDraft::new("user.locked", steward_core::Actor::SYSTEM, TargetType::User, user.id).detail(
            json!({ "failures": after.failures, "locked_until": after.locked_until.map(|t| t.unix_timestamp()) }),
        );
        state.commit(tx, vec![event], now).await
    } else {
        tx.commit().await.map_err(ApiError::from)
    }
}

/// Opens a login session for `user` as a password login does, and records the sign-in; returns
/// the secret, the session and its `user.login` event (with `detail` merged in) for the caller to
/// commit with its other changes.
pub async fn open_session(
    tx: &mut dyn Tx,
    user: &UserRow,
    ip: Option<std::net::IpAddr>,
    headers: &HeaderMap,
    detail: serde_json::Value,
    now: OffsetDateTime,
) -> ApiResult<(String, SessionRow, AuditDraft)> {
    let (settings, _) = instance_settings(tx).await?;
    let secret = new_secret(SecretKind::Session);
    let session = SessionRow {
        id: SessionId::new(),
        user_id: user.id,
        token_hash: secret_hash(&secret),
        impersonator_id: None,
        parent_id: None,
        return_sealed: None,
        parent_token_id: None,
        created_at: now,
        expires_at: now + Duration::hours(i64::from(settings.policies.session_hours)),
        revoked_at: None,
        ip: ip.map(|i| i.to_string()),
        user_agent: user_agent(headers),
    };
    tx.insert_session(&session).await?;
    tx.record_login(user.id, now).await?;
    let mut facts = json!({ "user_id": user.id });
    if let (Some(facts), serde_json::Value::Object(extra)) = (facts.as_object_mut(), detail) {
        facts.extend(extra);
    }
    let event = AuditDraft::new("user.login", steward_core::Actor::user(user.id), TargetType::Session, session.id)
        .detail(facts)
        .personal(json!({ "ip": session.ip, "user_agent": session.user_agent }));
    Ok((secret, session, event))
}

/// The admin's own session, given back when an impersonation ends.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReturnedSession {
    pub token: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    pub csrf_token: String,
}

/// Sign out
///
/// Ends the current session. Ending an impersonation returns the admin's own session. Answers the
/// admin's own session when it ends a Login as user, else 204.
#[utoipa::path(post, path = "/api/v1/auth/logout", operation_id = "log_out", tag = "auth",
    responses((status = 200, body = ReturnedSession, description = "the impersonation ended"), (status = 204),
    Unauthorized))]
pub(crate) async fn logout(Acting { state, principal }: Acting) -> ApiResult<Response> {
    let returned = sign_out(&state, &principal).await?;
    let mut response = match &returned {
        Some(session) => Json(session).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    };
    after_sign_out(&state, response.headers_mut(), returned.as_ref());
    Ok(response)
}

/// Sets the cookies of the session a sign-out leaves: the admin's own, or none.
pub fn after_sign_out(state: &AppState, headers: &mut HeaderMap, returned: Option<&ReturnedSession>) {
    match returned {
        Some(r) => set_session_cookies(state, headers, &r.token, (r.expires_at - state.clock.now()).whole_seconds()),
        None => set_session_cookies(state, headers, "", 0),
    }
}

/// Ends the caller's session, for every surface that acts with a principal. Ending a Login as
/// user session gives back the admin's own session, when it is still good.
pub async fn sign_out(state: &AppState, principal: &Principal) -> ApiResult<Option<ReturnedSession>> {
    let now = state.clock.now();
    let crate::extract::Credential::Session(session) = &principal.credential else {
        return Err(ApiError::invalid(
            "Authorization",
            "logout ends a session; revoke API tokens with DELETE /api/v1/me/tokens/{id}",
        ));
    };
    let mut tx = state.store.write().await?;
    tx.revoke_session(session.id, now).await?;
    let mut events = Vec::new();
    let mut returned = None;
    if let Some(admin) = session.impersonator_id {
        events.push(
            AuditDraft::new("user.impersonation_ended", principal.actor(), TargetType::User, principal.user.id)
                .detail(json!({ "session_id": session.id })),
        );
        let parent = match session.parent_id {
            Some(p) => tx.session(p).await?,
            None => None,
        };
        let live = parent.filter(|p| p.revoked_at.is_none() && p.expires_at > now && p.user_id == admin);
        let own = session.return_sealed.as_deref().and_then(|s| crate::auth::open_sealed(s, principal.secret.expose()));
        if let (Some(parent), Some(own)) = (live, own)
            && bool::from(subtle::ConstantTimeEq::ct_eq(secret_hash(&own).as_bytes(), parent.token_hash.as_bytes()))
        {
            returned = Some((own, parent.expires_at));
        }
    } else {
        events.push(
            AuditDraft::new("session.ended", principal.actor(), TargetType::Session, session.id)
                .detail(json!({ "user_id": principal.user.id, "reason": "logout" })),
        );
    }
    state.commit(tx, events, now).await?;
    Ok(returned.map(|(secret, expires_at)| ReturnedSession {
        csrf_token: csrf_token(&secret),
        expires_at,
        token: secret,
    }))
}

/// Get my notification settings
///
/// The caller's notification settings. A category left out is on.
#[utoipa::path(get, path = "/api/v1/me/notifications", tag = "auth",
    responses((status = 200, body = NotificationSettings), Unauthorized))]
async fn get_my_notifications(Acting { state, principal }: Acting) -> ApiResult<Json<NotificationSettings>> {
    Ok(Json(read_my_notifications(&state, &principal).await?))
}

/// The caller's notification settings, for every surface.
pub async fn read_my_notifications(state: &AppState, principal: &Principal) -> ApiResult<NotificationSettings> {
    let mut tx = state.store.read().await?;
    let settings = NotificationSettings::read(tx.as_mut(), &principal.user).await?;
    tx.rollback().await?;
    Ok(settings)
}

/// Set my notification settings
///
/// Sets the caller's notification settings (an admin impersonating the user may too). A category
/// not listed is on.
#[utoipa::path(put, path = "/api/v1/me/notifications", tag = "auth", request_body = NotificationSettings,
    responses((status = 200, body = NotificationSettings), BadRequest, Unauthorized))]
pub(crate) async fn put_my_notifications(
    Acting { state, principal }: Acting,
    ApiJson(req): ApiJson<NotificationSettings>,
) -> ApiResult<Json<NotificationSettings>> {
    Ok(Json(set_my_notifications(&state, &principal, req).await?))
}

/// Sets the caller's own notification settings, for every surface that acts with a principal.
pub async fn set_my_notifications(
    state: &AppState,
    principal: &Principal,
    req: NotificationSettings,
) -> ApiResult<NotificationSettings> {
    let now = state.clock.now();
    let mut tx = state.store.write().await?;
    let mut user = tx.user(principal.user.id).await?.ok_or_else(|| ApiError::unauthenticated("no such user"))?;
    let event = set_notifications(tx.as_mut(), principal, &mut user, req, now).await?;
    let settings = NotificationSettings::read(tx.as_mut(), &user).await?;
    state.commit(tx, vec![event], now).await?;
    Ok(settings)
}

/// The admin behind an impersonation.
#[derive(Debug, Serialize, ToSchema)]
pub struct Impersonator {
    pub id: String,
    pub email: String,
}

/// One of the caller's org memberships.
#[derive(Debug, Serialize, ToSchema)]
pub struct MyMembership {
    pub org_id: String,
    pub org_name: String,
    #[schema(value_type = crate::schema::OrgRoleSchema)]
    pub role: String,
    pub frozen: bool,
}

/// One of the caller's team memberships.
#[derive(Debug, Serialize, ToSchema)]
pub struct MyTeam {
    pub team_id: String,
    pub org_id: String,
    #[schema(value_type = crate::schema::TeamRoleSchema)]
    pub role: String,
}

/// The caller.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    pub user: UserView,
    pub impersonator: Option<Impersonator>,
    pub instance_roles: Vec<String>,
    /// The instance permissions those roles grant.
    pub permissions: Vec<String>,
    /// Whether login needs a two-factor code.
    pub totp_enabled: bool,
    /// The instance policy holds the roles' permissions back until two-factor is on.
    pub totp_enrollment_required: bool,
    pub memberships: Vec<MyMembership>,
    pub teams: Vec<MyTeam>,
}

fn json_body(body: axum::body::Bytes) -> Response {
    ([(axum::http::header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Get the current principal
///
/// Who the caller is, what they may do, and where they belong. The user, an impersonator if any,
/// the instance roles and permissions, memberships and teams.
#[utoipa::path(get, path = "/api/v1/me", operation_id = "get_me", tag = "auth", responses((status = 200, body = Me), Unauthorized))]
async fn me(Acting { state, principal }: Acting) -> ApiResult<Response> {
    // Only this node writes (SQLite): the answer can be kept between changes (crate::hot).
    let keep = !state.store.shared();
    if keep && let Some(body) = state.hot.me(&principal.credential_hash) {
        return Ok(json_body(body));
    }
    let version = state.hot.me_version(principal.epoch);
    let mut tx = state.store.read().await?;
    let impersonator = match principal.impersonator_id() {
        Some(id) => tx.user(id).await?.map(|u| Impersonator { id: u.id.to_string(), email: u.email }),
        None => None,
    };
    let now = state.clock.now();
    let mut memberships = Vec::new();
    for m in tx.memberships_of(principal.user.id).await? {
        if m.dormant {
            continue;
        }
        let frozen = match tx.org(m.org_id).await? {
            Some(org) => steward_ops::orgs::frozen_now(tx.as_mut(), &org, now).await?,
            None => false,
        };
        memberships.push(MyMembership {
            org_id: m.org_id.to_string(),
            org_name: m.org_name,
            role: m.role.to_string(),
            frozen,
        });
    }
    let teams = tx
        .teams_of_user(principal.user.id)
        .await?
        .into_iter()
        .filter(|t| !t.dormant)
        .map(|t| MyTeam { team_id: t.team_id.to_string(), org_id: t.org_id.to_string(), role: t.role.to_string() })
        .collect();
    let totp_enabled = tx.totp(principal.user.id).await?.is_some_and(|t| t.confirmed_at.is_some());
    tx.rollback().await?;
    let me = Me {
        user: UserView::from(&principal.user),
        impersonator,
        instance_roles: principal.user.instance_roles.iter().map(|r| r.to_string()).collect(),
        permissions: principal.permissions.iter().map(|p| p.to_string()).collect(),
        totp_enabled,
        totp_enrollment_required: !principal.withheld.is_empty(),
        memberships,
        teams,
    };
    let body = axum::body::Bytes::from(serde_json::to_vec(&me).map_err(ApiError::internal)?);
    if keep {
        state.hot.keep_me(principal.credential_hash.clone(), body.clone(), version);
    }
    Ok(json_body(body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::twofactor::SealingKey;

    #[test]
    fn a_device_cookie_is_known_to_its_own_account_on_its_own_instance_until_it_expires() {
        let key = SealingKey::for_purpose("test", b"instance one");
        let now = OffsetDateTime::now_utc();
        let sealed = key.seal_bound(device_context("a@x.io").as_bytes(), &now.unix_timestamp().to_be_bytes());
        let known = known_device(&key, &sealed, "a@x.io", now);
        assert_eq!(known.as_deref(), Some(secret_hash(&sealed).as_str()));
        assert_eq!(known_device(&key, &sealed, "b@x.io", now), None, "another account");
        let other = SealingKey::for_purpose("test", b"instance two");
        assert_eq!(known_device(&other, &sealed, "a@x.io", now), None, "another instance");
        assert!(known_device(&key, &sealed, "a@x.io", now + KNOWN_DEVICE - Duration::minutes(1)).is_some());
        assert_eq!(known_device(&key, &sealed, "a@x.io", now + KNOWN_DEVICE), None, "expired");
        assert_eq!(known_device(&key, &sealed, "a@x.io", now - Duration::hours(1)), None, "issued in the future");
        let mut tampered = sealed.clone().into_bytes();
        let last = tampered.len() - 1;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(known_device(&key, &String::from_utf8(tampered).unwrap(), "a@x.io", now), None, "tampered");
        let timestamp = key.seal_bound(device_context("a@x.io").as_bytes(), b"not eight bytes");
        assert_eq!(known_device(&key, &timestamp, "a@x.io", now), None, "not a timestamp");
    }
}
