//! Account security: the caller's two-factor enrolment (`/me/totp`), and for admins the reset of
//! a user's two-factor and the unlock of a locked account.

use axum::Json;
use axum::extract::Path;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use steward_core::lockout::LockoutState;
use steward_core::{AuditDraft, Permission, TargetType, UserId, totp};
use steward_store::TotpRow;
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::declared::{BadRequest, Conflict, Forbidden, NotFound, Unauthorized};
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{Acting, ApiJson, Principal};
use crate::mail;
use crate::state::{AppState, instance_settings};
use crate::twofactor::{new_recovery_codes, new_totp_secret, sealing_key};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start_totp, disable_totp))
        .routes(routes!(confirm_totp))
        .routes(routes!(new_recovery_codes_for_me))
        .routes(routes!(reset_totp))
        .routes(routes!(unlock_user))
        .routes(routes!(user_security))
}

/// A started enrolment: scan the QR code (or type the secret), then confirm with a code.
#[derive(Debug, Serialize, ToSchema)]
pub struct TotpEnrolment {
    /// The base32 secret, for typing into an authenticator app.
    pub secret: String,
    /// The `otpauth://totp/…` URI the QR code holds.
    pub otpauth_uri: String,
    /// The QR code as an SVG document.
    pub qr_svg: String,
}

/// The first code from the authenticator app.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpConfirm {
    /// The six-digit code the app shows now.
    pub code: String,
}

/// Recovery codes, each good for one login; shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecoveryCodes {
    pub recovery_codes: Vec<String>,
}

fn refuse_impersonation(principal: &Principal) -> ApiResult<()> {
    if principal.impersonator_id().is_some() {
        return Err(ApiError::forbidden("an impersonation session cannot change two-factor settings"));
    }
    Ok(())
}

fn qr_svg(data: &str) -> ApiResult<String> {
    let code = qrcode::QrCode::new(data.as_bytes()).map_err(ApiError::internal)?;
    Ok(code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .dark_color(qrcode::render::svg::Color("#000000"))
        .light_color(qrcode::render::svg::Color("#ffffff"))
        .build())
}

/// Start two-factor enrolment
///
/// Starts two-factor enrolment (or starts it over while unconfirmed). Login needs a code only once
/// the enrolment is confirmed. Answers what an authenticator app needs to make codes.
#[utoipa::path(post, path = "/api/v1/me/totp", operation_id = "start_my_totp", tag = "auth", responses((status = 200, body = TotpEnrolment),
    Unauthorized, Forbidden,
    (status = 409, body = Problem, content_type = "application/problem+json", description = "two-factor is already on (`invalid_transition`)")))]
async fn start_totp(Acting { state, principal }: Acting) -> ApiResult<Json<TotpEnrolment>> {
    Ok(Json(start_enrolment(&state, &principal).await?))
}

/// Starts (or starts over) the caller's two-factor enrolment, for every surface.
pub async fn start_enrolment(state: &AppState, principal: &Principal) -> ApiResult<TotpEnrolment> {
    refuse_impersonation(principal)?;
    let key = sealing_key(state).await?;
    let now = state.clock.now();
    let user = &principal.user;
    let mut tx = state.store.write().await?;
    if tx.totp(user.id).await?.is_some_and(|t| t.confirmed_at.is_some()) {
        return Err(ApiError::conflict(
            "invalid_transition",
            "two-factor is already on; DELETE /api/v1/me/totp first to enrol a new authenticator",
        ));
    }
    let secret = new_totp_secret();
    tx.put_totp(&TotpRow {
        user_id: user.id,
        secret_sealed: key.seal(user.id, &secret),
        confirmed_at: None,
        last_step: None,
        created_at: now,
    })
    .await?;
    let (settings, _) = instance_settings(tx.as_mut()).await?;
    let issuer = settings.branding.product_name.clone().unwrap_or(settings.name);
    let event = AuditDraft::new("user.totp_enrollment_started", principal.actor(), TargetType::User, user.id);
    state.commit(tx, vec![event], now).await?;
    let secret = totp::base32_encode(&secret);
    let otpauth_uri = totp::otpauth_uri(&issuer, &user.email, &secret);
    let qr_svg = qr_svg(&otpauth_uri)?;
    Ok(TotpEnrolment { secret, otpauth_uri, qr_svg })
}

/// Confirm two-factor enrolment
///
/// Confirms the enrolment with a current code; from now on login needs a code. Answers the ten
/// recovery codes, which are shown this once. Recovery codes each work once.
#[utoipa::path(post, path = "/api/v1/me/totp/confirm", operation_id = "confirm_my_totp", tag = "auth", request_body = TotpConfirm,
    responses((status = 200, body = RecoveryCodes), BadRequest, Unauthorized, Forbidden, Conflict))]
async fn confirm_totp(
    Acting { state, principal }: Acting,
    ApiJson(req): ApiJson<TotpConfirm>,
) -> ApiResult<Json<RecoveryCodes>> {
    Ok(Json(confirm_enrolment(&state, &principal, &req.code).await?))
}

/// Confirms the caller's enrolment with a current `code`; answers the recovery codes, for every
/// surface.
pub async fn confirm_enrolment(state: &AppState, principal: &Principal, code: &str) -> ApiResult<RecoveryCodes> {
    refuse_impersonation(principal)?;
    let key = sealing_key(state).await?;
    let now = state.clock.now();
    let user = &principal.user;
    let mut tx = state.store.write().await?;
    let pending = match tx.totp(user.id).await? {
        Some(t) if t.confirmed_at.is_none() => t,
        Some(_) => return Err(ApiError::conflict("invalid_transition", "two-factor is already on")),
        None => {
            return Err(ApiError::conflict(
                "invalid_transition",
                "no enrolment to confirm; POST /api/v1/me/totp first",
            ));
        }
    };
    let secret = key
        .open(user.id, &pending.secret_sealed)
        .ok_or_else(|| ApiError::internal("a two-factor secret does not open with the instance key"))?;
    let step = totp::verify(&secret, code.trim(), now.unix_timestamp(), None)
        .ok_or_else(|| ApiError::invalid("code", "is not the current code of the authenticator"))?;
    tx.confirm_totp(user.id, now, step).await?;
    let (codes, hashes) = new_recovery_codes(user.id);
    tx.replace_recovery_codes(user.id, &hashes, now).await?;
    let (settings, _) = instance_settings(tx.as_mut()).await?;
    let body = format!(
        "Hello {},\n\nTwo-factor sign-in was turned on for your {} account. If this was not you, \
         contact your administrator at once.\n",
        user.name, settings.name
    );
    mail::enqueue(tx.as_mut(), user, "security", "Two-factor sign-in is on", body, now).await?;
    let event = AuditDraft::new("user.totp_enabled", principal.actor(), TargetType::User, user.id)
        .detail(json!({ "recovery_codes": codes.len() }));
    state.commit(tx, vec![event], now).await?;
    state.outbox_wake.notify_one();
    Ok(RecoveryCodes { recovery_codes: codes })
}

/// Replace my recovery codes
///
/// Replaces the caller's recovery codes with ten new ones, shown this once; the old ones stop
/// working. Needs a current code of the authenticator (each code works once), so that a session
/// left open cannot take the account's way back in.
#[utoipa::path(post, path = "/api/v1/me/totp/recovery-codes", operation_id = "replace_my_recovery_codes", tag = "auth",
    request_body = TotpConfirm, responses((status = 200, body = RecoveryCodes), BadRequest, Unauthorized, Forbidden, Conflict))]
async fn new_recovery_codes_for_me(
    Acting { state, principal }: Acting,
    ApiJson(req): ApiJson<TotpConfirm>,
) -> ApiResult<Json<RecoveryCodes>> {
    Ok(Json(replace_recovery_codes(&state, &principal, &req.code).await?))
}

/// Replaces the caller's recovery codes once `code` is a current, unused code, for every surface.
pub async fn replace_recovery_codes(state: &AppState, principal: &Principal, code: &str) -> ApiResult<RecoveryCodes> {
    refuse_impersonation(principal)?;
    let key = sealing_key(state).await?;
    let now = state.clock.now();
    let user = &principal.user;
    let mut tx = state.store.write().await?;
    let on = tx.totp(user.id).await?.filter(|t| t.confirmed_at.is_some());
    let on = on.ok_or_else(|| ApiError::conflict("invalid_transition", "two-factor is not on"))?;
    let secret = key
        .open(user.id, &on.secret_sealed)
        .ok_or_else(|| ApiError::internal("a two-factor secret does not open with the instance key"))?;
    let wrong = || ApiError::invalid("code", "is not a current, unused code of the authenticator");
    let step = totp::verify(&secret, code.trim(), now.unix_timestamp(), on.last_step).ok_or_else(wrong)?;
    if !tx.use_totp_step(user.id, step).await? {
        return Err(wrong());
    }
    let (codes, hashes) = new_recovery_codes(user.id);
    tx.replace_recovery_codes(user.id, &hashes, now).await?;
    let event = AuditDraft::new("user.recovery_codes_replaced", principal.actor(), TargetType::User, user.id)
        .detail(json!({ "recovery_codes": codes.len() }));
    state.commit(tx, vec![event], now).await?;
    Ok(RecoveryCodes { recovery_codes: codes })
}

/// The caller's two-factor state: (on, an enrolment pending, recovery codes left).
pub async fn my_two_factor(state: &AppState, principal: &Principal) -> ApiResult<(bool, bool, i64)> {
    let mut tx = state.store.read().await?;
    let totp = tx.totp(principal.user.id).await?;
    let left = tx.recovery_codes_left(principal.user.id).await?;
    tx.rollback().await?;
    let on = totp.as_ref().is_some_and(|t| t.confirmed_at.is_some());
    Ok((on, totp.is_some() && !on, left))
}

/// Turn my two-factor off
///
/// Turns the caller's two-factor off (or drops an unconfirmed enrolment) and their recovery codes.
/// Login then needs the password only.
#[utoipa::path(delete, path = "/api/v1/me/totp", operation_id = "disable_my_totp", tag = "auth", responses((status = 204), Unauthorized, Forbidden,
    NotFound))]
async fn disable_totp(Acting { state, principal }: Acting) -> ApiResult<StatusCode> {
    turn_off_two_factor(&state, &principal).await.map(|()| StatusCode::NO_CONTENT)
}

/// Turns the caller's two-factor off (or drops an unconfirmed enrolment), for every surface.
pub async fn turn_off_two_factor(state: &AppState, principal: &Principal) -> ApiResult<()> {
    refuse_impersonation(principal)?;
    let now = state.clock.now();
    let user = &principal.user;
    let mut tx = state.store.write().await?;
    if !tx.delete_totp(user.id).await? {
        return Err(ApiError::not_found("two-factor enrolment"));
    }
    let (settings, _) = instance_settings(tx.as_mut()).await?;
    let body = format!(
        "Hello {},\n\nTwo-factor sign-in was turned off for your {} account. If this was not you, \
         contact your administrator at once.\n",
        user.name, settings.name
    );
    mail::enqueue(tx.as_mut(), user, "security", "Two-factor sign-in is off", body, now).await?;
    let event = AuditDraft::new("user.totp_disabled", principal.actor(), TargetType::User, user.id);
    state.commit(tx, vec![event], now).await?;
    state.outbox_wake.notify_one();
    Ok(())
}

fn parse_user(id: &str) -> ApiResult<UserId> {
    id.parse().map_err(|_| ApiError::not_found("user"))
}

/// Reset a user's two-factor
///
/// Resets a user's two-factor (a lost phone): their enrolment and recovery codes are removed, they
/// are told by email, and their next login needs only the password. Needs `users.write` and every
/// permission the user holds. The user is told by email.
#[utoipa::path(delete, path = "/api/v1/users/{id}/totp", operation_id = "reset_user_totp", tag = "users", responses((status = 204), Forbidden, NotFound))]
async fn reset_totp(Acting { state, principal }: Acting, Path(id): Path<String>) -> ApiResult<StatusCode> {
    principal.require(Permission::UsersWrite)?;
    refuse_impersonation(&principal)?;
    let id = parse_user(&id)?;
    let now = state.clock.now();
    let mut tx = state.store.write().await?;
    let target = tx.user(id).await?.ok_or_else(|| ApiError::not_found("user"))?;
    crate::governance::require_governs(tx.as_mut(), &principal, &target).await?;
    if !tx.delete_totp(id).await? {
        return Err(ApiError::not_found("two-factor enrolment"));
    }
    let (settings, _) = instance_settings(tx.as_mut()).await?;
    let body = format!(
        "Hello {},\n\nAn administrator of {} reset two-factor sign-in for your account. Your next \
         sign-in needs only your password; enrol an authenticator again afterwards. If you did not \
         ask for this, contact your administrator at once.\n",
        target.name, settings.name
    );
    mail::enqueue(tx.as_mut(), &target, "security", "Your two-factor sign-in was reset", body, now).await?;
    let event = AuditDraft::new("user.totp_reset", principal.actor(), TargetType::User, id);
    state.commit(tx, vec![event], now).await?;
    state.outbox_wake.notify_one();
    Ok(StatusCode::NO_CONTENT)
}

/// Unlock a user
///
/// Unlocks an account that failed logins locked, and clears its count of failures. Needs
/// `users.lifecycle`.
#[utoipa::path(post, path = "/api/v1/users/{id}/unlock", tag = "users", responses((status = 204), Forbidden, NotFound))]
async fn unlock_user(Acting { state, principal }: Acting, Path(id): Path<String>) -> ApiResult<StatusCode> {
    principal.require(Permission::UsersLifecycle)?;
    let id = parse_user(&id)?;
    let now = state.clock.now();
    let mut tx = state.store.write().await?;
    let target = tx.user(id).await?.ok_or_else(|| ApiError::not_found("user"))?;
    crate::governance::require_governs(tx.as_mut(), &principal, &target).await?;
    let before = tx.lockout(id).await?;
    tx.put_lockout(id, &LockoutState::default(), now).await?;
    let event = AuditDraft::new("user.unlocked", principal.actor(), TargetType::User, id)
        .detail(json!({ "was_locked": before.is_locked(now), "failures": before.failures }));
    state.commit(tx, vec![event], now).await?;
    // This node's throttle forgets the account too; other nodes' windows run out on their own.
    state.throttle.succeeded(&target.email_key);
    Ok(StatusCode::NO_CONTENT)
}

/// A user's sign-in security, for admins and support.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserSecurity {
    /// Login needs a two-factor code.
    pub totp_enabled: bool,
    /// An enrolment was started and not confirmed yet.
    pub totp_pending: bool,
    /// Unused recovery codes.
    pub recovery_codes_left: i64,
    /// Consecutive failed logins counted towards a lock.
    pub failed_logins: u32,
    /// Until when the account is locked; null when it is not.
    #[serde(with = "time::serde::rfc3339::option")]
    pub locked_until: Option<OffsetDateTime>,
}

/// Get a user's security state
///
/// A user's two-factor and lockout state (`users.read`). Whether two-factor is on, and whether the
/// account is locked and until when.
#[utoipa::path(get, path = "/api/v1/users/{id}/security", operation_id = "get_user_security", tag = "users", responses((status = 200, body = UserSecurity),
    Forbidden, NotFound))]
async fn user_security(Acting { state, principal }: Acting, Path(id): Path<String>) -> ApiResult<Json<UserSecurity>> {
    principal.require(Permission::UsersRead)?;
    let id = parse_user(&id)?;
    let now = state.clock.now();
    let mut tx = state.store.read().await?;
    tx.user(id).await?.ok_or_else(|| ApiError::not_found("user"))?;
    let totp = tx.totp(id).await?;
    let left = tx.recovery_codes_left(id).await?;
    let lock = tx.lockout(id).await?;
    tx.rollback().await?;
    Ok(Json(UserSecurity {
        totp_enabled: totp.as_ref().is_some_and(|t| t.confirmed_at.is_some()),
        totp_pending: totp.as_ref().is_some_and(|t| t.confirmed_at.is_none()),
        recovery_codes_left: left,
        failed_logins: lock.failures,
        locked_until: lock.locked_until.filter(|_| lock.is_locked(now)),
    }))
}
