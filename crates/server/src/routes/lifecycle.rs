//! A user's lifecycle for instance admins: deactivate and reactivate, suspend, anonymize, Login
//! as user, sessions, notification settings, history.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::Path;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use steward_core::governance::StatusSetter;
use steward_core::lifecycle::{NOTIFICATION_CATEGORIES, ORG_NOTIFICATION_CATEGORIES, UserAction, transition};
use steward_core::{AuditDraft, InstanceRole, Permission, SessionId, TargetType, UserId, UserStatus};
use steward_store::{AuditFilter, SessionRow, Tx, UserRow};
use time::{Duration, OffsetDateTime};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{SecretKind, csrf_token, new_secret, secret_hash};
use crate::error::declared::{BadRequest, Conflict, Forbidden, NotFound};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Acting, ApiJson, ApiQuery, Page, Principal, paginate};
use crate::mail;
use crate::routes::{ClientIp, user_agent};
use crate::state::{AppState, instance_settings};
use crate::views::AuditEventView;
use crate::views::{AuditList, SessionList, SessionView, UserView};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(deactivate))
        .routes(routes!(reactivate))
        .routes(routes!(suspend))
        .routes(routes!(unsuspend))
        .routes(routes!(anonymize))
        .routes(routes!(impersonate))
        .routes(routes!(user_sessions))
        .routes(routes!(revoke_user_sessions))
        .routes(routes!(get_user_notifications, put_user_notifications))
        .routes(routes!(user_history))
}

/// A JSON body that may be left out entirely.
fn optional_body<T: Default + serde::de::DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    if body.iter().all(u8::is_ascii_whitespace) { Ok(T::default()) } else { crate::extract::parse_json(body) }
}

async fn load_user(tx: &mut dyn Tx, id: &str) -> ApiResult<UserRow> {
    let id: UserId = id.parse().map_err(|_| ApiError::not_found("user"))?;
    tx.user(id).await?.ok_or_else(|| ApiError::not_found("user"))
}

fn not_impersonating(principal: &Principal) -> ApiResult<()> {
    if principal.impersonator_id().is_some() {
        return Err(ApiError::forbidden("an impersonation session cannot do this"));
    }
    Ok(())
}

/// A deactivation.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeactivateRequest {
    /// Why; kept in the audit log as personal data.
    pub reason: Option<String>,
    /// Who takes over the orgs the user owns; by default the instance's placeholder owner, and
    /// then reactivation hands them back.
    pub new_owner_id: Option<String>,
}

/// Deactivate a user
///
/// Deactivates a user: every session and token is revoked before the response, pending invitations
/// are cancelled, memberships become dormant, owned orgs pass to the placeholder owner (or
/// `new_owner_id`). Needs `users.lifecycle`. The user keeps every role and all history, and gets
/// them back on reactivation.
#[utoipa::path(post, path = "/api/v1/users/{id}/deactivate", operation_id = "deactivate_user", tag = "lifecycle", request_body = DeactivateRequest,
    responses((status = 200, body = UserView), BadRequest, Forbidden, NotFound, Conflict))]
pub(crate) async fn deactivate(
    Acting { state, principal }: Acting,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Json<UserView>> {
    // Who acts is checked before what they sent is read (deactivate_user asks again).
    principal.require(Permission::UsersLifecycle)?;
    let req: DeactivateRequest = optional_body(&body)?;
    let user = deactivate_user(&state, &principal, &id, req).await?;
    Ok(Json(UserView::from(&user)))
}

/// Deactivates the user `id` as `principal` asks, from any surface that acts with a principal
/// (the JSON API, the pages): the permission, the governance rule and the last-admin rule are
/// checked, then [`steward_ops::users::deactivate`] does it.
pub async fn deactivate_user(
    state: &AppState,
    principal: &Principal,
    id: &str,
    req: DeactivateRequest,
) -> ApiResult<UserRow> {
    principal.require(Permission::UsersLifecycle)?;
    not_impersonating(principal)?;
    if req.reason.as_ref().is_some_and(|r| r.chars().count() > 1000) {
        return Err(ApiError::invalid("reason", "must be at most 1000 characters"));
    }
    let now = state.clock.now();
    let mut tx = state.store.write().await?;
    let mut user = load_user(tx.as_mut(), id).await?;
    crate::governance::require_governs(tx.as_mut(), principal, &user).await?;
    steward_ops::users::guard_deactivate(tx.as_mut(), &user, principal.actor(), UserAction::Deactivate).await?;
    let new_owner = match &req.new_owner_id {
        Some(o) => {
            let o = load_user(tx.as_mut(), o).await.map_err(|_| ApiError::invalid("new_owner_id", "no such user"))?;
            if o.id == user.id || o.status != UserStatus::Active || o.kind != steward_core::UserKind::Person {
                return Err(ApiError::invalid("new_owner_id", "must be another active user"));
            }
            Some(o)
        }
        None => None,
    };
    let events = steward_ops::users::deactivate(
        tx.as_mut(),
        &mut user,
        steward_ops::users::Deactivation {
            actor: principal.actor(),
            by: StatusSetter::Instance,
            reason: req.reason.as_deref(),
            new_owner: new_owner.as_ref().map(|o| o.id),
            why: json!({}),
        },
        now,
    )
    .await?;
    state.commit(tx, events, now).await?;
    Ok(user)
}

/// Reactivate a user
///
/// Reactivates a deactivated user: memberships, team memberships and instance roles come back as
/// they were, and orgs held by the placeholder owner since the deactivation are handed back. Needs
/// `users.lifecycle`.
#[utoipa::path(post, path = "/api/v1/users/{id}/reactivate", operation_id = "reactivate_user", tag = "lifecycle",
    responses((status = 200, body = UserView), Forbidden, NotFound, Conflict))]
pub(crate) async fn reactivate(
    Acting { state, principal }: Acting,
    Path(id): Path<String>,
) -> ApiResult<Json<UserView>> {
    Ok(Json(UserView::from(&reactivate_user(&state, &principal, &id).await?)))
}

/// Reactivates the user `id` as `principal` asks, from any surface that acts with a principal.
pub async fn reactivate_user(state: &AppState, principal: &Principal, id: &str) -> ApiResult<UserRow> {
    principal.require(Permission::UsersLifecycle)?;
    not_impersonating(principal)?;
    let now = state.clock.now();
    let actor = principal.actor();
    let mut tx = state.store.write().await?;
    let mut user = load_user(tx.as_mut(), id).await?;
    crate::governance::require_governs(tx.as_mut(), principal, &user).await?;
    let events = steward_ops::users::reactivate(tx.as_mut(), &mut user, actor, now).await?;
    state.commit(tx, events, now).await?;
    Ok(user)
}

/// Suspends the user `id` (`suspend`) or lifts the suspension, as `principal` asks, from any
/// surface that acts with a principal.
pub async fn change_suspension(state: &AppState, principal: &Principal, id: &str, suspend: bool) -> ApiResult<UserRow> {
    match suspend {
        true => simple_transition(state, principal, id, UserAction::Suspend, "user.suspended").await,
        false => simple_transition(state, principal, id, UserAction::Unsuspend, "user.unsuspended").await,
    }
}

async fn simple_transition(
    state: &AppState,
    principal: &Principal,
    id: &str,
    action: UserAction,
    kind: &'static str,
) -> ApiResult<UserRow> {
    principal.require(Permission::UsersLifecycle)?;
    not_impersonating(principal)?;
    let now = state.clock.now();
    let mut tx = state.store.write().await?;
    let mut user = load_user(tx.as_mut(), id).await?;
    if user.id == principal.user.id {
        return Err(ApiError::conflict("invalid_transition", "you cannot do this to yourself"));
    }
    crate::governance::require_governs(tx.as_mut(), principal, &user).await?;
    let next = match action {
        UserAction::Suspend => {
            steward_ops::users::guard_deactivate(tx.as_mut(), &user, principal.actor(), action).await?
        }
        _ => transition(user.status, action, user.password_hash.is_some())?,
    };
    if action == UserAction::Suspend {
        for s in tx.live_sessions(user.id, now).await? {
            tx.revoke_session(s.id, now).await?;
        }
    }
    let from = user.status;
    user.status = next;
    user.status_by = (action == UserAction::Suspend).then_some(StatusSetter::Instance);
    user.updated_at = now;
    tx.update_user(&user).await?;
    user.version += 1;
    let event =
        AuditDraft::new(kind, principal.actor(), TargetType::User, user.id).detail(json!({ "from": from, "to": next }));
    state.commit(tx, vec![event], now).await?;
    Ok(user)
}

/// Suspend a user
///
/// Suspends an active user for a while: sessions end, memberships stay as they are. Needs
/// `users.lifecycle`.
#[utoipa::path(post, path = "/api/v1/users/{id}/suspend", operation_id = "suspend_user", tag = "lifecycle", responses((status = 200, body = UserView),
    Forbidden, NotFound, Conflict))]
async fn suspend(Acting { state, principal }: Acting, Path(id): Path<String>) -> ApiResult<Json<UserView>> {
    Ok(Json(UserView::from(&change_suspension(&state, &principal, &id, true).await?)))
}

/// Lift a suspension
///
/// Lifts a suspension. Needs `users.lifecycle`. The user signs in again as before.
#[utoipa::path(post, path = "/api/v1/users/{id}/unsuspend", operation_id = "unsuspend_user", tag = "lifecycle",
    responses((status = 200, body = UserView), Forbidden, NotFound, Conflict))]
async fn unsuspend(Acting { state, principal }: Acting, Path(id): Path<String>) -> ApiResult<Json<UserView>> {
    Ok(Json(UserView::from(&change_suspension(&state, &principal, &id, false).await?)))
}

/// Anonymize a deactivated user
///
/// Erases a deactivated user's personal data, irreversibly; history stays, and a keyed hash of the
/// email keeps blocking its reuse. Needs `users.lifecycle`.
#[utoipa::path(post, path = "/api/v1/users/{id}/anonymize", operation_id = "anonymize_user", tag = "lifecycle",
    responses((status = 200, body = UserView), Forbidden, NotFound, Conflict))]
async fn anonymize(Acting { state, principal }: Acting, Path(id): Path<String>) -> ApiResult<Json<UserView>> {
    principal.require(Permission::UsersLifecycle)?;
    not_impersonating(&principal)?;
    let now = state.clock.now();
    let mut tx = state.store.write().await?;
    let mut user = load_user(tx.as_mut(), &id).await?;
    crate::governance::require_governs(tx.as_mut(), &principal, &user).await?;
    let event = steward_ops::users::anonymize(tx.as_mut(), &mut user, principal.actor(), now).await?;
    state.commit(tx, vec![event], now).await?;
    Ok(Json(UserView::from(&user)))
}

/// Why an administrator signs in as someone.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImpersonateRequest {
    /// Required; recorded in the audit log.
    pub reason: String,
}

/// A session as another user.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImpersonationSession {
    pub token: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    pub csrf_token: String,
}

/// Log in as a user
///
/// Login as user: a session (one hour at most) in which the admin acts as the user; every event in
/// it names both. `POST /api/v1/auth/logout` ends it and returns the admin's own session. Needs
/// `users.impersonate` (an API token needs the `users.impersonate` scope). The reason is required
/// and recorded.
#[utoipa::path(post, path = "/api/v1/users/{id}/impersonate", operation_id = "impersonate_user", tag = "lifecycle", request_body = ImpersonateRequest,
    responses((status = 200, body = ImpersonationSession), BadRequest, Forbidden, NotFound, Conflict))]
pub(crate) async fn impersonate(
    Acting { state, principal }: Acting,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<ImpersonateRequest>,
) -> ApiResult<Response> {
    let session = start_impersonation(&state, &principal, (ip, &headers), &id, req).await?;
    let max_age = (session.expires_at - state.clock.now()).whole_seconds();
    let secret = session.token.clone();
    let mut response = Json(session).into_response();
    crate::extract::set_session_cookies(&state, response.headers_mut(), &secret, max_age);
    Ok(response)
}

/// Opens a Login as user session as the user `id`, for every surface that acts with a
/// principal; the caller sets its cookies.
pub async fn start_impersonation(
    state: &AppState,
    principal: &Principal,
    (ip, headers): (Option<std::net::IpAddr>, &HeaderMap),
    id: &str,
    req: ImpersonateRequest,
) -> ApiResult<ImpersonationSession> {
    principal.require(Permission::UsersImpersonate)?;
    if principal.impersonator_id().is_some() {
        return Err(ApiError::forbidden("an impersonation session cannot impersonate"));
    }
    principal.may_mint(Some(steward_core::TokenScope::Impersonate))?;
    let reason = req.reason.trim();
    if reason.is_empty() || reason.chars().count() > 1000 {
        return Err(ApiError::invalid("reason", "is required (1 to 1000 characters)"));
    }
    let now = state.clock.now();
    let mut tx = state.store.write().await?;
    let target = load_user(tx.as_mut(), id).await?;
    crate::governance::require_governs(tx.as_mut(), principal, &target).await?;
    steward_core::lifecycle::may_impersonate(steward_core::lifecycle::Impersonation {
        status: target.status,
        kind: target.kind,
        by_self: target.id == principal.user.id,
        target_has_instance_role: !target.instance_roles.is_empty(),
        actor_is_system_admin: principal.user.instance_roles.contains(&InstanceRole::system_admin()),
    })?;
    let (secret, session) = impersonation_session(principal, &target, ip, headers, now);
    let expires_at = session.expires_at;
    tx.insert_session(&session).await?;
    notify_impersonated(tx.as_mut(), &target, now).await?;
    let event = AuditDraft::new("user.impersonation_started", principal.actor(), TargetType::User, target.id)
        .detail(json!({ "session_id": session.id, "expires_at": expires_at.unix_timestamp() }))
        .personal(json!({ "reason": reason }));
    state.commit(tx, vec![event], now).await?;
    state.outbox_wake.notify_one();
    let csrf_token = csrf_token(&secret);
    Ok(ImpersonationSession { token: secret, expires_at, csrf_token })
}

/// The session Login as user opens as `target`: an hour at most, never past the credential that
/// started it, sealed to return to the admin's own session when it started from one, and
/// recorded with the token that started it, so that revoking either ends it.
fn impersonation_session(
    principal: &Principal,
    target: &UserRow,
    ip: Option<std::net::IpAddr>,
    headers: &HeaderMap,
    now: OffsetDateTime,
) -> (String, SessionRow) {
    let parent = match &principal.credential {
        crate::extract::Credential::Session(s) => Some(s.id),
        crate::extract::Credential::ApiToken(_) | crate::extract::Credential::Jwt(_) => None,
    };
    let mut expires_at = now + Duration::hours(1);
    if let Some(until) = principal.credential_expiry() {
        expires_at = expires_at.min(until);
    }
    let secret = new_secret(SecretKind::Session);
    let session = SessionRow {
        id: SessionId::new(),
        user_id: target.id,
        token_hash: secret_hash(&secret),
        impersonator_id: Some(principal.user.id),
        parent_id: parent,
        return_sealed: parent.map(|_| crate::auth::seal(principal.secret.expose(), &secret)),
        parent_token_id: principal.api_token().map(|t| t.id),
        created_at: now,
        expires_at,
        revoked_at: None,
        ip: ip.map(|i| i.to_string()),
        user_agent: user_agent(headers),
    };
    (secret, session)
}

/// Mails `target` that an administrator signed in as them, when the instance policy
/// `impersonation_notice` asks for it.
async fn notify_impersonated(tx: &mut dyn steward_store::Tx, target: &UserRow, now: OffsetDateTime) -> ApiResult<()> {
    let (settings, _) = instance_settings(tx).await?;
    if !settings.policies.impersonation_notice {
        return Ok(());
    }
    let body = format!(
        "Hello {},\n\nAn administrator of {} signed in as you at {} to help with your account.\n\
         Every action taken in that session is recorded under both your names.\n",
        target.name,
        settings.name,
        now.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
    );
    mail::enqueue(tx, target, "security", "An administrator signed in as you", body, now).await?;
    Ok(())
}

/// List a user's sessions
///
/// A user's live sessions. Needs `users.read`.
#[utoipa::path(get, path = "/api/v1/users/{id}/sessions", operation_id = "list_user_sessions", tag = "lifecycle", params(("id" = String, Path), Page),
    responses((status = 200, body = SessionList), Forbidden, NotFound))]
pub(crate) async fn user_sessions(
    Acting { state, principal }: Acting,
    Path(id): Path<String>,
    ApiQuery(page): ApiQuery<Page>,
) -> ApiResult<Json<SessionList>> {
    Ok(Json(read_user_sessions(&state, &principal, id, page).await?))
}

/// A page of a user's live sessions, for every surface that acts with a principal.
pub async fn read_user_sessions(
    state: &AppState,
    principal: &Principal,
    id: String,
    page: Page,
) -> ApiResult<SessionList> {
    principal.require(Permission::UsersRead)?;
    let limit = page.limit()?;
    let before: Option<SessionId> = page.cursor()?;
    let mut tx = state.store.read().await?;
    let user = load_user(tx.as_mut(), &id).await?;
    let rows: Vec<_> = tx
        .live_sessions(user.id, state.clock.now())
        .await?
        .into_iter()
        .filter(|s| before.is_none_or(|b| s.id < b))
        .take(limit as usize + 1)
        .collect();
    tx.rollback().await?;
    let (rows, next_cursor) = paginate(rows, limit, |s| s.id);
    Ok(SessionList { items: rows.iter().map(|s| SessionView::new(s, false)).collect(), next_cursor })
}

/// How many sessions ended.
#[derive(Debug, Serialize, ToSchema)]
pub struct Revoked {
    pub revoked: u64,
}

/// Sign a user out everywhere
///
/// Logs a user out everywhere. Needs `sessions.revoke`. Every session of the user ends before the
/// answer.
#[utoipa::path(post, path = "/api/v1/users/{id}/sessions/revoke", tag = "lifecycle",
    responses((status = 200, body = Revoked), Forbidden, NotFound))]
pub(crate) async fn revoke_user_sessions(
    Acting { state, principal }: Acting,
    Path(id): Path<String>,
) -> ApiResult<Json<Revoked>> {
    Ok(Json(end_user_sessions(&state, &principal, id).await?))
}

/// Ends every session of the user `id`, for every surface that acts with a principal.
pub async fn end_user_sessions(state: &AppState, principal: &Principal, id: String) -> ApiResult<Revoked> {
    principal.require(Permission::SessionsRevoke)?;
    let now = state.clock.now();
    let mut tx = state.store.write().await?;
    let user = load_user(tx.as_mut(), &id).await?;
    crate::governance::require_governs(tx.as_mut(), principal, &user).await?;
    let live = tx.live_sessions(user.id, now).await?;
    for s in &live {
        tx.revoke_session(s.id, now).await?;
    }
    let event = AuditDraft::new("user.sessions_revoked", principal.actor(), TargetType::User, user.id)
        .detail(json!({ "revoked": live.len() }));
    state.commit(tx, vec![event], now).await?;
    Ok(Revoked { revoked: live.len() as u64 })
}

/// Notification settings: the person's switch per category, and per org the switches of that
/// org's own emails.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NotificationSettings {
    /// The person's own settings, for every org: `product_updates`, `usage_alerts`, `security`,
    /// `org_activity`. No org's lifecycle changes them.
    pub categories: BTreeMap<String, bool>,
    /// For each org the person is a member of: that org's own emails (`usage_alerts`,
    /// `org_activity`), sent only when on there and in `categories`. Deprovisioning an org
    /// switches these off for its members, and restoring it puts them back. On a write, orgs
    /// left out keep their settings, and a category left out keeps its value.
    #[serde(default)]
    pub orgs: Vec<OrgNotifications>,
}

/// A member's settings for one org's own emails.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrgNotifications {
    pub org_id: String,
    /// `usage_alerts`, `org_activity`; a category not named is on.
    pub categories: BTreeMap<String, bool>,
}

impl NotificationSettings {
    /// The settings of the org `org`, when the document has them.
    pub fn of_org(&self, org: &str) -> Option<&BTreeMap<String, bool>> {
        self.orgs.iter().find(|o| o.org_id == org).map(|o| &o.categories)
    }
}

impl NotificationSettings {
    /// Every category of `user` with its effective value, and of each org they are a member of.
    pub async fn read(tx: &mut dyn Tx, user: &UserRow) -> ApiResult<Self> {
        let on = steward_core::lifecycle::notification_on;
        let categories =
            NOTIFICATION_CATEGORIES.iter().map(|c| ((*c).to_owned(), on(&user.notifications, c))).collect();
        let mut orgs = Vec::new();
        for m in tx.memberships_of(user.id).await? {
            let categories =
                ORG_NOTIFICATION_CATEGORIES.iter().map(|c| ((*c).to_owned(), on(&m.notifications, c))).collect();
            orgs.push(OrgNotifications { org_id: m.org_id.to_string(), categories });
        }
        Ok(NotificationSettings { categories, orgs })
    }
}

/// Applies new settings to `user` (unnamed categories keep their value) and records the change.
pub async fn set_notifications(
    tx: &mut dyn Tx,
    principal: &Principal,
    user: &mut UserRow,
    settings: NotificationSettings,
    now: OffsetDateTime,
) -> ApiResult<AuditDraft> {
    for name in settings.categories.keys() {
        if !NOTIFICATION_CATEGORIES.contains(&name.as_str()) {
            return Err(ApiError::invalid(
                format!("categories.{name}"),
                format!("is not a category; use {}", NOTIFICATION_CATEGORIES.join(", ")),
            ));
        }
    }
    let mut per_org = Vec::new();
    for OrgNotifications { org_id: org, categories } in &settings.orgs {
        let not_theirs = || ApiError::invalid(format!("orgs.{org}"), "is not an organization this user is a member of");
        let org_id: steward_core::OrgId = org.parse().map_err(|_| not_theirs())?;
        let membership = tx.membership_in(org_id, user.id).await?.ok_or_else(not_theirs)?;
        if let Some(name) = categories.keys().find(|c| !ORG_NOTIFICATION_CATEGORIES.contains(&c.as_str())) {
            return Err(ApiError::invalid(
                format!("orgs.{org}.{name}"),
                format!("is not an organization's category; use {}", ORG_NOTIFICATION_CATEGORIES.join(", ")),
            ));
        }
        let mut merged = membership.notifications;
        merged.extend(categories.clone());
        per_org.push((org_id, merged));
    }
    for (org_id, merged) in &per_org {
        tx.set_org_notifications(*org_id, user.id, merged).await?;
    }
    user.notifications.extend(settings.categories.clone());
    user.updated_at = now;
    tx.update_user(user).await?;
    user.version += 1;
    Ok(AuditDraft::new("user.notifications_changed", principal.actor(), TargetType::User, user.id)
        .detail(json!({ "categories": settings.categories, "orgs": settings.orgs })))
}

/// Get a user's notification settings
///
/// Reads another user's notification settings. Needs `users.read`. A category left out is on.
#[utoipa::path(get, path = "/api/v1/users/{id}/notifications", tag = "lifecycle",
    responses((status = 200, body = NotificationSettings), Forbidden, NotFound))]
pub(crate) async fn get_user_notifications(
    Acting { state, principal }: Acting,
    Path(id): Path<String>,
) -> ApiResult<Json<NotificationSettings>> {
    Ok(Json(read_user_notifications(&state, &principal, id).await?))
}

/// A user's notification settings, for every surface that acts with a principal.
pub async fn read_user_notifications(
    state: &AppState,
    principal: &Principal,
    id: String,
) -> ApiResult<NotificationSettings> {
    principal.require(Permission::UsersRead)?;
    let mut tx = state.store.read().await?;
    let user = load_user(tx.as_mut(), &id).await?;
    let settings = NotificationSettings::read(tx.as_mut(), &user).await?;
    tx.rollback().await?;
    Ok(settings)
}

/// Set a user's notification settings
///
/// Sets another user's notification settings. Needs `users.write`. A category not listed is on.
#[utoipa::path(put, path = "/api/v1/users/{id}/notifications", tag = "lifecycle", request_body = NotificationSettings,
    responses((status = 200, body = NotificationSettings), BadRequest, Forbidden, NotFound))]
pub(crate) async fn put_user_notifications(
    Acting { state, principal }: Acting,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<NotificationSettings>,
) -> ApiResult<Json<NotificationSettings>> {
    Ok(Json(set_user_notifications(&state, &principal, id, req).await?))
}

/// Sets the notification settings of the user `id`, for every surface that acts with a principal.
pub async fn set_user_notifications(
    state: &AppState,
    principal: &Principal,
    id: String,
    req: NotificationSettings,
) -> ApiResult<NotificationSettings> {
    principal.require(Permission::UsersWrite)?;
    let now = state.clock.now();
    let mut tx = state.store.write().await?;
    let mut user = load_user(tx.as_mut(), &id).await?;
    crate::governance::require_governs(tx.as_mut(), principal, &user).await?;
    let event = set_notifications(tx.as_mut(), principal, &mut user, req, now).await?;
    let settings = NotificationSettings::read(tx.as_mut(), &user).await?;
    state.commit(tx, vec![event], now).await?;
    Ok(settings)
}

/// Get a user's history
///
/// The audit events where the user is actor, impersonator or target, newest first. Pages with
/// `limit` (at most 500) and `cursor`: the answer's `next_cursor` reads the next page, `null` at
/// the end.
#[utoipa::path(get, path = "/api/v1/users/{id}/history", operation_id = "get_user_history", tag = "lifecycle", params(("id" = String, Path), Page),
    responses((status = 200, body = AuditList), Forbidden, NotFound))]
pub(crate) async fn user_history(
    Acting { state, principal }: Acting,
    Path(id): Path<String>,
    ApiQuery(page): ApiQuery<Page>,
) -> ApiResult<Json<AuditList>> {
    Ok(Json(read_user_history(&state, &principal, id, page).await?))
}

/// A page of the audit events about a user, newest first, for every surface that acts with a principal.
pub async fn read_user_history(
    state: &AppState,
    principal: &Principal,
    id: String,
    page: Page,
) -> ApiResult<AuditList> {
    principal.require(Permission::UsersRead)?;
    principal.require(Permission::AuditRead)?;
    let limit = page.limit()?;
    let mut tx = state.store.read().await?;
    let user = load_user(tx.as_mut(), &id).await?;
    let filter =
        AuditFilter { involving: Some(user.id), before_seq: page.cursor()?, limit: limit + 1, ..Default::default() };
    let rows = tx.list_audit(&filter).await?;
    tx.rollback().await?;
    let (rows, next_cursor) = paginate(rows, limit, |r| r.seq);
    Ok(AuditList { items: rows.iter().map(AuditEventView::from).collect(), next_cursor })
}
