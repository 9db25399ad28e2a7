//! Invitations (to the instance or to an org) and password resets: single-use links sent by
//! email, stored as digests.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use steward_core::{
    AuditDraft, Email, OrgAction, OrgRole, Permission, PersonName, TargetType, TeamId, UserId, UserStatus,
};
use steward_store::{InvitationRow, ResetRow, Tx, UserRow};
use time::{Duration, OffsetDateTime};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{SecretKind, new_secret, secret_hash};
use crate::error::declared::{BadRequest, Conflict, Forbidden, NotFound, TooManyRequests};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Acting, ApiJson, Principal};
use crate::mail::{self, ACCOUNT};
use crate::routes::ClientIp;
use crate::routes::orgs::{Need, org_access};
use crate::state::{AppState, instance_settings};
use crate::views::UserView;
use steward_ops::users::find_by_email;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(invite_to_org))
        .routes(routes!(accept_invitation))
        .routes(routes!(request_reset))
        .routes(routes!(complete_reset))
}

/// How long an invitation link works.
pub const INVITATION_DAYS: i64 = 7;
/// How long a password reset link works.
pub const RESET_MINUTES: i64 = 60;

/// Creates an invitation for `user` and queues its email; returns the row.
#[allow(clippy::too_many_arguments)]
pub async fn invite(
    tx: &mut dyn Tx,
    state: &AppState,
    user: &UserRow,
    org: Option<(steward_core::OrgId, &str, OrgRole)>,
    team_ids: Vec<TeamId>,
    invited_by: Option<UserId>,
    now: OffsetDateTime,
) -> ApiResult<InvitationRow> {
    let secret = new_secret(SecretKind::Setup);
    let row = InvitationRow {
        id: uuid::Uuid::now_v7(),
        user_id: user.id,
        org_id: org.map(|o| o.0),
        role: org.map(|o| o.2),
        team_ids,
        token_hash: secret_hash(&secret),
        invited_by,
        created_at: now,
        expires_at: now + Duration::days(INVITATION_DAYS),
        accepted_at: None,
        cancelled_at: None,
    };
    tx.insert_invitation(&row).await?;
    let (settings, _) = instance_settings(tx).await?;
    let product = settings.branding.product_name.clone().unwrap_or(settings.name);
    let place = org.map_or_else(|| product.clone(), |o| format!("{} on {product}", o.1));
    let link = format!("{}/invite/{secret}", state.public_url);
    let body = format!(
        "Hello {},\n\nYou are invited to join {place}.\nAccept within {INVITATION_DAYS} days: {link}\n\n\
         If you did not expect this, ignore this email.\n",
        user.name
    );
    mail::enqueue(tx, user, ACCOUNT, format!("You are invited to {place}"), body, now).await?;
    Ok(row)
}

/// An invitation to an org.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewInvitation {
    #[schema(value_type = String, format = Email)]
    pub email: Email,
    /// Any role but `owner`.
    #[schema(value_type = crate::schema::OrgRoleSchema)]
    pub role: OrgRole,
    /// Teams of the org to join on acceptance.
    #[serde(default)]
    pub team_ids: Vec<String>,
}

/// An invitation as created.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationView {
    pub id: String,
    pub org_id: Option<String>,
    /// The invited user, for callers who may read users; null otherwise.
    pub user_id: Option<String>,
    pub email: String,
    #[schema(value_type = Option<crate::schema::OrgRoleSchema>)]
    pub role: Option<String>,
    pub team_ids: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// Invite someone to an org
///
/// Invites someone to the org by email. An unknown email becomes an `invited` user; a known active
/// user gets the membership on acceptance; a deactivated user's email is refused. The invitation is
/// mailed with a link that works once.
#[utoipa::path(post, path = "/api/v1/orgs/{id}/invitations", operation_id = "invite_org_member", tag = "orgs", request_body = NewInvitation,
    responses((status = 201, body = InvitationView), BadRequest, Forbidden, NotFound, Conflict))]
pub(crate) async fn invite_to_org(
    Acting { state, principal }: Acting,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<NewInvitation>,
) -> ApiResult<(StatusCode, Json<InvitationView>)> {
    Ok((StatusCode::CREATED, Json(invite_member(&state, &principal, id, req).await?)))
}

/// Invites an email to the org `id`, for every surface that acts with a principal.
pub async fn invite_member(
    state: &AppState,
    principal: &Principal,
    id: String,
    req: NewInvitation,
) -> ApiResult<InvitationView> {
    if req.role == OrgRole::Owner {
        return Err(ApiError::invalid("role", "owner is given only by transferring ownership"));
    }
    let now = state.clock.now();
    let mut tx = state.store.write().await?;
    let access = org_access(state, tx.as_mut(), principal, &id, Need::Manage).await?;
    let team_ids = teams_of(tx.as_mut(), access.org.id, &req.team_ids).await?;
    let mut events = Vec::new();
    let user = invitee(tx.as_mut(), principal, access.org.id, &req.email, now, &mut events).await?;
    crate::routes::orgs::check_seats(tx.as_mut(), &access.org, now).await?;
    let org_name = access.org.name.clone();
    let row = invite(
        tx.as_mut(),
        state,
        &user,
        Some((access.org.id, &org_name, req.role)),
        team_ids,
        Some(principal.user.id),
        now,
    )
    .await?;
    events.push(
        AuditDraft::new("invitation.created", principal.actor(), TargetType::User, user.id)
            .in_org(access.org.id)
            .detail(json!({ "invitation_id": row.id, "role": req.role, "team_ids": row.team_ids })),
    );
    state.commit(tx, events, now).await?;
    state.outbox_wake.notify_one();
    // The same answer whether or not the address had an account, unless the caller may read
    // users anyway.
    let user_id = principal.has(Permission::UsersRead).then(|| user.id.to_string());
    let view = InvitationView {
        id: row.id.to_string(),
        org_id: row.org_id.map(|o| o.to_string()),
        user_id,
        email: user.email,
        role: row.role.map(|r| r.to_string()),
        team_ids: row.team_ids.iter().map(|t| t.to_string()).collect(),
        expires_at: row.expires_at,
    };
    Ok(view)
}

/// The teams `ids` name, each of which must be a team of `org`.
async fn teams_of(tx: &mut dyn Tx, org: steward_core::OrgId, ids: &[String]) -> ApiResult<Vec<TeamId>> {
    let mut team_ids = Vec::new();
    for t in ids {
        let team = match t.parse::<TeamId>() {
            Ok(tid) => tx.team(tid).await?,
            Err(_) => None,
        };
        match team {
            Some(team) if team.org_id == org => team_ids.push(team.id),
            _ => return Err(ApiError::invalid("team_ids", format!("{t} is not a team of this organization"))),
        }
    }
    Ok(team_ids)
}

/// The user an invitation to `org` goes to: the holder of `email`, who must be able to receive
/// roles and not yet be a member, or a new invited user.
async fn invitee(
    tx: &mut dyn Tx,
    principal: &Principal,
    org: steward_core::OrgId,
    email: &Email,
    now: OffsetDateTime,
    events: &mut Vec<AuditDraft>,
) -> ApiResult<UserRow> {
    match find_by_email(tx, email, now).await? {
        // Only a caller who may read users learns which user holds the address.
        Some(u) if !u.status.can_receive_roles() && principal.has(Permission::UsersRead) => {
            Err(steward_ops::users::email_in_use(&u).into())
        }
        Some(u) if !u.status.can_receive_roles() => Err(ApiError::conflict(
            "user_deactivated",
            "this email belongs to a deactivated user; an instance admin can reactivate them",
        )),
        Some(u) if tx.members(org).await?.iter().any(|m| m.user_id == u.id) => {
            Err(ApiError::conflict("invalid_transition", "this user is already a member of the organization"))
        }
        Some(u) => Ok(u),
        None => {
            let user = UserRow::new(email.as_str(), email.key(), &invited_name(email), UserStatus::Invited, now);
            tx.insert_user(&user).await?;
            events.push(
                AuditDraft::new("user.created", principal.actor(), TargetType::User, user.id)
                    .detail(json!({ "status": user.status, "via": "invitation" }))
                    .personal(json!({ "email": user.email })),
            );
            Ok(user)
        }
    }
}

/// Accepting an invitation.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptInvitation {
    /// Required for a user who has no password yet.
    pub password: Option<String>,
    #[schema(value_type = Option<String>)]
    pub name: Option<PersonName>,
}

/// Accept an invitation
///
/// Accepts an invitation: an invited user sets a password and becomes active; an existing user gets
/// the membership. The link works once. Needs no credentials: the link's token is the credential.
#[utoipa::path(post, path = "/api/v1/auth/invitations/{token}/accept", tag = "auth", params(("token" = String, Path)),
    request_body = AcceptInvitation, responses((status = 200, body = UserView), BadRequest, NotFound, TooManyRequests))]
pub(crate) async fn accept_invitation(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Path(token): Path<String>,
    ApiJson(req): ApiJson<AcceptInvitation>,
) -> ApiResult<Json<UserView>> {
    accept_with_link(&state, ip, &token, req).await.map(Json)
}

/// Accepts the invitation behind `token` (the JSON API and the invitation page).
pub async fn accept_with_link(
    state: &AppState,
    ip: Option<std::net::IpAddr>,
    token: &str,
    req: AcceptInvitation,
) -> ApiResult<UserView> {
    state.throttle.admit_address(ip).await?;
    let gone = || {
        state.throttle.failed_address(ip);
        ApiError::not_found("invitation (it may have expired or been used)")
    };
    let token_hash = secret_hash(token);
    let open = |i: &InvitationRow, now: OffsetDateTime| {
        i.accepted_at.is_none() && i.cancelled_at.is_none() && i.expires_at > now
    };
    // The link is looked up before the password is hashed: a made-up link costs no hashing.
    let mut tx = state.store.read().await?;
    let found = tx.invitation_by_hash(&token_hash).await?;
    tx.rollback().await?;
    if !found.is_some_and(|i| open(&i, state.clock.now())) {
        return Err(gone());
    }
    let hash = match &req.password {
        Some(p) => Some(state.passwords.hash(p).await?),
        None => None,
    };
    let now = state.clock.now();
    let mut tx = state.store.write().await?;
    let inv = tx.invitation_by_hash(&token_hash).await?.ok_or_else(gone)?;
    if !open(&inv, now) {
        return Err(gone());
    }
    let mut user = tx.user(inv.user_id).await?.ok_or_else(gone)?;
    let actor = steward_core::Actor::user(user.id);
    let mut events = match user.status {
        UserStatus::Invited => vec![activate(tx.as_mut(), &mut user, hash, req.name.as_ref(), now).await?],
        UserStatus::Active => Vec::new(),
        _ => return Err(gone()),
    };
    if let (Some(org_id), Some(role)) = (inv.org_id, inv.role) {
        inviter_still_may(tx.as_mut(), state, &inv, org_id).await?;
        events.extend(join_as_invited(tx.as_mut(), &inv, org_id, role, &user, now).await?);
    }
    tx.accept_invitation(inv.id, now).await?;
    events.push(
        AuditDraft::new("invitation.accepted", actor, TargetType::User, user.id)
            .detail(json!({ "invitation_id": inv.id })),
    );
    state.commit(tx, events, now).await?;
    Ok(UserView::from(&user))
}

/// Activates an invited user who accepts: their password (required) and, if given, their name.
async fn activate(
    tx: &mut dyn steward_store::Tx,
    user: &mut UserRow,
    hash: Option<String>,
    name: Option<&PersonName>,
    now: OffsetDateTime,
) -> ApiResult<AuditDraft> {
    let hash = hash.ok_or_else(|| ApiError::invalid("password", "is required to activate the account"))?;
    user.password_hash = Some(hash);
    if let Some(name) = name {
        user.name = name.as_str().to_owned();
    }
    user.status = UserStatus::Active;
    user.updated_at = now;
    tx.update_user(user).await?;
    user.version += 1;
    Ok(AuditDraft::new("user.activated", steward_core::Actor::user(user.id), TargetType::User, user.id)
        .detail(json!({ "via": "invitation" })))
}

/// Makes the user who accepts a member of the invitation's org with its role (unless they are
/// one already) and of its teams.
async fn join_as_invited(
    tx: &mut dyn steward_store::Tx,
    inv: &InvitationRow,
    org_id: steward_core::OrgId,
    role: OrgRole,
    user: &UserRow,
    now: OffsetDateTime,
) -> ApiResult<Vec<AuditDraft>> {
    let actor = steward_core::Actor::user(user.id);
    let mut events = Vec::new();
    if !tx.members(org_id).await?.iter().any(|m| m.user_id == user.id) {
        tx.insert_membership(org_id, user.id, role, now).await?;
        events.push(
            AuditDraft::new("org.member_added", actor, TargetType::User, user.id)
                .in_org(org_id)
                .detail(json!({ "role": role, "invitation_id": inv.id })),
        );
    }
    for team in &inv.team_ids {
        tx.put_team_member(*team, user.id, steward_core::TeamRole::TeamMember, now).await?;
        events.push(
            AuditDraft::new("team.member_put", actor, TargetType::User, user.id)
                .in_org(org_id)
                .detail(json!({ "team_id": team, "to": "team_member" })),
        );
    }
    Ok(events)
}

/// Err(409) unless the invitation's org still takes members and whoever sent it could still grant
/// its role now: an invitation carries its inviter's rights to the moment it is accepted.
async fn inviter_still_may(
    tx: &mut dyn steward_store::Tx,
    state: &AppState,
    inv: &steward_store::InvitationRow,
    org_id: steward_core::OrgId,
) -> ApiResult<()> {
    let refused =
        |why: &str| ApiError::conflict("invalid_transition", format!("this invitation no longer holds: {why}"));
    let org = tx.org(org_id).await?.ok_or_else(|| refused("the organization is gone"))?;
    if org.state != steward_core::OrgState::Active || steward_ops::orgs::frozen_now(tx, &org, state.clock.now()).await?
    {
        return Err(refused("the organization is frozen or deprovisioned"));
    }
    let Some(inviter_id) = inv.invited_by else { return Ok(()) };
    let inviter = tx.user(inviter_id).await?.filter(|u| u.status.can_sign_in());
    let inviter = inviter.ok_or_else(|| refused("whoever sent it is no longer active"))?;
    let permissions = crate::extract::role_book(tx).await?.permissions_of(&inviter.instance_roles);
    let role = tx.membership_in(org_id, inviter.id).await?.filter(|m| !m.dormant).map(|m| m.role);
    if permissions.contains(&Permission::OrgsWrite) || role.is_some_and(|r| r.allows(OrgAction::MemberInvite)) {
        Ok(())
    } else {
        Err(refused("whoever sent it may no longer invite to this organization"))
    }
}

/// A request for a password reset link.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetRequest {
    pub email: String,
}

/// Ask for a password reset link
///
/// Mails a reset link to an active user; answers 202 whatever the email, so that accounts cannot be
/// probed. Needs no credentials.
#[utoipa::path(post, path = "/api/v1/auth/password-reset", operation_id = "request_password_reset", tag = "auth", request_body = ResetRequest,
    responses((status = 202), BadRequest))]
pub(crate) async fn request_reset(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<ResetRequest>,
) -> ApiResult<StatusCode> {
    ask_for_reset(state, &req.email);
    Ok(StatusCode::ACCEPTED)
}

/// Takes a request for a reset link, for every surface: answered at once, alike whether or not
/// the address has an account, the link made and mailed meanwhile.
pub fn ask_for_reset(state: AppState, email: &str) {
    let Ok(email) = Email::parse(email) else { return };
    // The answer comes before anyone is looked up, so that its timing tells nothing of whether
    // the address has an account; the link is made and mailed meanwhile.
    // The work waiting at once is bounded: past it, a request is answered alike and dropped.
    let Ok(permit) = state.reset_requests.clone().try_acquire_owned() else {
        tracing::warn!("password reset requests arrive faster than they are handled; one was dropped");
        return;
    };
    tokio::spawn(async move {
        if let Err(e) = mail_reset_link(&state, &email).await {
            tracing::warn!(error = ?e, "password reset request");
        }
        drop(permit);
    });
}

/// Makes and mails a reset link when `email` belongs to an active person.
async fn mail_reset_link(state: &AppState, email: &Email) -> ApiResult<()> {
    let now = state.clock.now();
    let mut tx = state.store.write().await?;
    let user = tx.user_by_email_key(&email.key()).await?;
    let Some(user) = user.filter(|u| u.status == UserStatus::Active && u.kind == steward_core::UserKind::Person) else {
        tx.rollback().await?;
        return Ok(());
    };
    let secret = new_secret(SecretKind::Setup);
    tx.insert_reset(&ResetRow {
        id: uuid::Uuid::now_v7(),
        user_id: user.id,
        token_hash: secret_hash(&secret),
        created_at: now,
        expires_at: now + Duration::minutes(RESET_MINUTES),
        used_at: None,
    })
    .await?;
    let body = format!(
        "Hello {},\n\nSomeone asked to reset your password. Choose a new one within {RESET_MINUTES} minutes:\n{}/reset/{secret}\n\n\
         If it was not you, ignore this email; your password stays as it is.\n",
        user.name, state.public_url
    );
    mail::enqueue(tx.as_mut(), &user, ACCOUNT, "Reset your password", body, now).await?;
    let event =
        AuditDraft::new("user.password_reset_requested", steward_core::Actor::SYSTEM, TargetType::User, user.id);
    state.commit(tx, vec![event], now).await?;
    state.outbox_wake.notify_one();
    Ok(())
}

/// A new password.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPassword {
    pub password: String,
}

/// Set a password with a reset link
///
/// Sets a new password with a reset link; the user's sessions, API tokens and other links end.
/// Needs no credentials: the link's token is the credential, and it works once.
#[utoipa::path(post, path = "/api/v1/auth/password-reset/{token}", operation_id = "complete_password_reset", tag = "auth", params(("token" = String, Path)),
    request_body = NewPassword, responses((status = 204), BadRequest, NotFound, TooManyRequests))]
pub(crate) async fn complete_reset(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Path(token): Path<String>,
    ApiJson(req): ApiJson<NewPassword>,
) -> ApiResult<StatusCode> {
    reset_with_link(&state, ip, &token, &req.password).await.map(|()| StatusCode::NO_CONTENT)
}

/// Sets `password` with the reset link behind `token` (the JSON API and the reset page). An
/// address that tries as many unknown links as an address may fail logins is answered 429,
/// before any lookup.
pub async fn reset_with_link(
    state: &AppState,
    ip: Option<std::net::IpAddr>,
    token: &str,
    password: &str,
) -> ApiResult<()> {
    state.throttle.admit_address(ip).await?;
    let gone = || {
        state.throttle.failed_address(ip);
        ApiError::not_found("reset link (it may have expired or been used)")
    };
    let token_hash = secret_hash(token);
    let live = |r: &ResetRow, now: OffsetDateTime| r.used_at.is_none() && r.expires_at > now;
    // The link is looked up before the password is hashed: a made-up link costs no hashing.
    let mut tx = state.store.read().await?;
    let found = tx.reset_by_hash(&token_hash).await?;
    tx.rollback().await?;
    if !found.is_some_and(|r| live(&r, state.clock.now())) {
        return Err(gone());
    }
    let hash = state.passwords.hash(password).await?;
    let now = state.clock.now();
    let mut tx = state.store.write().await?;
    let reset = tx.reset_by_hash(&token_hash).await?.ok_or_else(gone)?;
    if !live(&reset, now) {
        return Err(gone());
    }
    let mut user = tx.user(reset.user_id).await?.ok_or_else(gone)?;
    if user.status != UserStatus::Active {
        return Err(gone());
    }
    user.password_hash = Some(hash);
    user.updated_at = now;
    tx.update_user(&user).await?;
    tx.use_reset(reset.id, now).await?;
    let voided = tx.void_resets_of(user.id, now).await?;
    let revoked = tx.revoke_all_credentials(user.id, now).await?;
    let event = AuditDraft::new("user.password_reset", steward_core::Actor::user(user.id), TargetType::User, user.id)
        .detail(json!({ "credentials_revoked": revoked, "other_links_voided": voided }));
    state.commit(tx, vec![event], now).await?;
    Ok(())
}

/// The name an invited user carries until they give their own: the email's local part, when it
/// is a usable name.
fn invited_name(email: &steward_core::Email) -> String {
    let local = email.as_str().split('@').next().unwrap_or("user");
    PersonName::parse(local).map(|n| n.as_str().to_owned()).unwrap_or_else(|_| "Invited user".into())
}
