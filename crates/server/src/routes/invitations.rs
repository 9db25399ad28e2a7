//! Invitations (to the instance or to an org) and password resets: single-use links sent by
//! email, stored as digests.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::json;
use steward_core::{
    AuditDraft, Email, OrgAction, OrgRole, Permission, PersonName, TargetType, TeamId, UserId, UserStatus,
};
use steward_store::{InvitationRow, ResetRow, Tx, UserRow};
use time::{Duration, OffsetDateTime};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::answer::Created;
use crate::auth::{SecretKind, new_secret, secret_hash};
use crate::error::declared::{BadRequest, Conflict, Forbidden, NotFound, TooManyRequests};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Acting, ApiJson, ApiQuery, Page, Principal, paginate};
use crate::mail::{self, ACCOUNT};
use crate::routes::ClientIp;
use crate::routes::orgs::{Need, org_access};
use crate::state::{AppState, instance_settings};
use crate::views::{InvitationList, InvitationView, UserView};
use steward_ops::users::find_by_email;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(invite_to_org, list_org_invitations))
        .routes(routes!(get_org_invitation, revoke_org_invitation))
        .routes(routes!(list_my_invitations))
        .routes(routes!(accept_my_invitation))
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
) -> ApiResult<Created<InvitationView>> {
    let view = invite_member(&state, &principal, id, req).await?;
    let org = view.org_id.clone().unwrap_or_default();
    Ok(Created::at(format!("/api/v1/orgs/{org}/invitations/{}", view.id), view))
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
    Ok(invitation_view(principal, &row, &user, &org_name, now))
}

/// The view of `row` for `principal`: the same whether or not the address had an account, unless
/// the caller may read users anyway or is the invited user.
fn invitation_view(
    principal: &Principal,
    row: &InvitationRow,
    user: &UserRow,
    org_name: &str,
    now: OffsetDateTime,
) -> InvitationView {
    let user_id = (principal.has(Permission::UsersRead) || principal.user.id == user.id).then(|| user.id.to_string());
    InvitationView::new(row, user_id, &user.email, org_name, now)
}

/// The open invitations and the org they belong to, read for `principal` (every surface).
pub async fn read_org_invitations(
    state: &AppState,
    principal: &Principal,
    id: String,
    page: Page,
) -> ApiResult<InvitationList> {
    let limit = page.limit()?;
    let now = state.clock.now();
    let mut tx = state.store.read().await?;
    let access = org_access(state, tx.as_mut(), principal, &id, Need::Oversee).await?;
    let rows = tx.open_invitations(Some(access.org.id), None, now, page.cursor()?, limit + 1).await?;
    let (rows, next_cursor) = paginate(rows, limit, |i| i.id);
    let mut items = Vec::with_capacity(rows.len());
    for row in &rows {
        let user = tx.user(row.user_id).await?.ok_or_else(|| ApiError::not_found("user"))?;
        items.push(invitation_view(principal, row, &user, &access.org.name, now));
    }
    tx.rollback().await?;
    Ok(InvitationList { items, next_cursor })
}

/// List an org's open invitations
///
/// Lists the invitations to an organization that are neither accepted, revoked nor expired, newest
/// first; they hold seats until then. For the org's owner and admins and instance `orgs.write`.
/// Pages with `limit` (at most 500) and `cursor`.
#[utoipa::path(get, path = "/api/v1/orgs/{id}/invitations", operation_id = "list_org_invitations", tag = "orgs",
    params(("id" = String, Path), Page), responses((status = 200, body = InvitationList), BadRequest, Forbidden, NotFound))]
pub(crate) async fn list_org_invitations(
    Acting { state, principal }: Acting,
    Path(id): Path<String>,
    ApiQuery(page): ApiQuery<Page>,
) -> ApiResult<Json<InvitationList>> {
    Ok(Json(read_org_invitations(&state, &principal, id, page).await?))
}

/// The invitation `invitation` of the org `id`, as `principal` may reach it for `need` (404
/// when it is another org's).
async fn org_invitation(
    state: &AppState,
    tx: &mut dyn Tx,
    principal: &Principal,
    id: &str,
    invitation: &str,
    need: Need,
) -> ApiResult<(crate::routes::orgs::OrgAccess, InvitationRow, UserRow)> {
    let access = org_access(state, tx, principal, id, need).await?;
    let missing = || ApiError::not_found("invitation");
    let found = match invitation.parse::<uuid::Uuid>() {
        Ok(iid) => tx.invitation(iid).await?,
        Err(_) => None,
    };
    let row = found.filter(|i| i.org_id == Some(access.org.id)).ok_or_else(missing)?;
    let user = tx.user(row.user_id).await?.ok_or_else(missing)?;
    Ok((access, row, user))
}

/// Get an invitation to an org
///
/// Reads one invitation to an organization, whatever became of it: `pending`, `accepted`,
/// `revoked` or `expired`. For the org's owner and admins and instance `orgs.write`.
#[utoipa::path(get, path = "/api/v1/orgs/{id}/invitations/{invitation_id}", operation_id = "get_org_invitation", tag = "orgs",
    params(("id" = String, Path), ("invitation_id" = String, Path)), responses((status = 200, body = InvitationView), Forbidden, NotFound))]
pub(crate) async fn get_org_invitation(
    Acting { state, principal }: Acting,
    Path((id, invitation)): Path<(String, String)>,
) -> ApiResult<Json<InvitationView>> {
    let now = state.clock.now();
    let mut tx = state.store.read().await?;
    let (access, row, user) = org_invitation(&state, tx.as_mut(), &principal, &id, &invitation, Need::Oversee).await?;
    tx.rollback().await?;
    Ok(Json(invitation_view(&principal, &row, &user, &access.org.name, now)))
}

/// Revoke an invitation to an org
///
/// Revokes an invitation that was not accepted: its link stops working and its seat is free. An
/// invited user it made stays, as every user does. 409 `invalid_transition` when it was accepted or
/// revoked already. For the org's owner and admins and instance `orgs.write`.
#[utoipa::path(delete, path = "/api/v1/orgs/{id}/invitations/{invitation_id}", operation_id = "revoke_org_invitation", tag = "orgs",
    params(("id" = String, Path), ("invitation_id" = String, Path)), responses((status = 204), Forbidden, NotFound, Conflict))]
pub(crate) async fn revoke_org_invitation(
    Acting { state, principal }: Acting,
    Path((id, invitation)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    revoke_invitation(&state, &principal, &id, &invitation).await.map(|()| StatusCode::NO_CONTENT)
}

/// Revokes an invitation to the org `id` (every surface).
pub async fn revoke_invitation(state: &AppState, principal: &Principal, id: &str, invitation: &str) -> ApiResult<()> {
    let now = state.clock.now();
    let mut tx = state.store.write().await?;
    let (access, row, user) = org_invitation(state, tx.as_mut(), principal, id, invitation, Need::Manage).await?;
    if row.accepted_at.is_some() || row.cancelled_at.is_some() {
        let what = if row.accepted_at.is_some() { "accepted" } else { "revoked" };
        return Err(ApiError::conflict("invalid_transition", format!("this invitation was {what} already")));
    }
    tx.cancel_invitation(row.id, now).await?;
    let event = AuditDraft::new("invitation.revoked", principal.actor(), TargetType::User, user.id)
        .in_org(access.org.id)
        .detail(json!({ "invitation_id": row.id, "role": row.role }));
    state.commit(tx, vec![event], now).await?;
    Ok(())
}

/// The caller's open invitations to orgs, with each org's name (every surface).
pub async fn read_my_invitations(state: &AppState, principal: &Principal, page: Page) -> ApiResult<InvitationList> {
    let limit = page.limit()?;
    let now = state.clock.now();
    let mut tx = state.store.read().await?;
    let me = principal.user.id;
    let rows = tx.open_invitations(None, Some(me), now, page.cursor()?, limit + 1).await?;
    let (rows, next_cursor) = paginate(rows, limit, |i| i.id);
    let mut items = Vec::with_capacity(rows.len());
    for row in &rows {
        let org = match row.org_id {
            Some(org) => tx.org(org).await?,
            None => None,
        };
        let name = org.map(|o| o.name).unwrap_or_default();
        items.push(invitation_view(principal, row, &principal.user, &name, now));
    }
    tx.rollback().await?;
    Ok(InvitationList { items, next_cursor })
}

/// List my invitations
///
/// Lists the caller's open invitations to organizations, newest first, each with the org's name.
/// Accept one with `POST /api/v1/me/invitations/{id}/accept`. Pages with `limit` and `cursor`.
#[utoipa::path(get, path = "/api/v1/me/invitations", operation_id = "list_my_invitations", tag = "auth",
    params(Page), responses((status = 200, body = InvitationList), BadRequest))]
pub(crate) async fn list_my_invitations(
    Acting { state, principal }: Acting,
    ApiQuery(page): ApiQuery<Page>,
) -> ApiResult<Json<InvitationList>> {
    Ok(Json(read_my_invitations(&state, &principal, page).await?))
}

/// Accept one of my invitations
///
/// Accepts an open invitation to the caller: they join the org with its role and teams, as with
/// the emailed link. Not in a Login as user session: accepting is the person's own choice. 404 for
/// an invitation that is not the caller's or no longer open; 409 `invalid_transition` when the org
/// no longer takes members or whoever sent it may no longer invite.
#[utoipa::path(post, path = "/api/v1/me/invitations/{id}/accept", operation_id = "accept_my_invitation", tag = "auth",
    params(("id" = String, Path)), responses((status = 200, body = InvitationView), Forbidden, NotFound, Conflict))]
pub(crate) async fn accept_my_invitation(
    Acting { state, principal }: Acting,
    Path(id): Path<String>,
) -> ApiResult<Json<InvitationView>> {
    Ok(Json(accept_as_myself(&state, &principal, &id).await?))
}

/// Accepts the caller's invitation `id` (every surface that acts with a principal).
pub async fn accept_as_myself(state: &AppState, principal: &Principal, id: &str) -> ApiResult<InvitationView> {
    if principal.impersonator_id().is_some() {
        return Err(ApiError::forbidden("an impersonation session cannot accept the user's invitations"));
    }
    let now = state.clock.now();
    let gone = || ApiError::not_found("invitation (it may have expired, been revoked or been used)");
    let mut tx = state.store.write().await?;
    let found = match id.parse::<uuid::Uuid>() {
        Ok(iid) => tx.invitation(iid).await?,
        Err(_) => None,
    };
    let mut inv = found.filter(|i| i.user_id == principal.user.id && i.org_id.is_some()).ok_or_else(gone)?;
    if !is_open(&inv, now) {
        return Err(gone());
    }
    let user = tx.user(inv.user_id).await?.ok_or_else(gone)?;
    let events = join(tx.as_mut(), state, &inv, &user, now).await?;
    let org = match inv.org_id {
        Some(org) => tx.org(org).await?,
        None => None,
    };
    state.commit(tx, events, now).await?;
    inv.accepted_at = Some(now);
    let name = org.map(|o| o.name).unwrap_or_default();
    Ok(invitation_view(principal, &inv, &user, &name, now))
}

/// Whether `i` can still be accepted at `now`.
fn is_open(i: &InvitationRow, now: OffsetDateTime) -> bool {
    i.accepted_at.is_none() && i.cancelled_at.is_none() && i.expires_at > now
}

/// What accepting `inv` does for `user`, with the link or as themselves: the org's membership and
/// teams, when the invitation still holds, and the invitation marked accepted.
async fn join(
    tx: &mut dyn Tx,
    state: &AppState,
    inv: &InvitationRow,
    user: &UserRow,
    now: OffsetDateTime,
) -> ApiResult<Vec<AuditDraft>> {
    let mut events = Vec::new();
    if let (Some(org_id), Some(role)) = (inv.org_id, inv.role) {
        inviter_still_may(tx, state, inv, org_id).await?;
        events.extend(join_as_invited(tx, inv, org_id, role, user, now).await?);
    }
    tx.accept_invitation(inv.id, now).await?;
    events.push(
        AuditDraft::new("invitation.accepted", steward_core::Actor::user(user.id), TargetType::User, user.id)
            .detail(json!({ "invitation_id": inv.id })),
    );
    Ok(events)
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
        Some(u) if tx.membership_in(org, u.id).await?.is_some() => {
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
    // The link is looked up before the password is hashed: a made-up link costs no hashing.
    let mut tx = state.store.read().await?;
    let found = tx.invitation_by_hash(&token_hash).await?;
    tx.rollback().await?;
    if !found.is_some_and(|i| is_open(&i, state.clock.now())) {
        return Err(gone());
    }
    let hash = match &req.password {
        Some(p) => Some(state.passwords.hash(p).await?),
        None => None,
    };
    let now = state.clock.now();
    let mut tx = state.store.write().await?;
    let inv = tx.invitation_by_hash(&token_hash).await?.ok_or_else(gone)?;
    if !is_open(&inv, now) {
        return Err(gone());
    }
    let mut user = tx.user(inv.user_id).await?.ok_or_else(gone)?;
    let mut events = match user.status {
        UserStatus::Invited => vec![activate(tx.as_mut(), &mut user, hash, req.name.as_ref(), now).await?],
        UserStatus::Active => Vec::new(),
        _ => return Err(gone()),
    };
    events.extend(join(tx.as_mut(), state, &inv, &user, now).await?);
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
    if tx.membership_in(org_id, user.id).await?.is_none() {
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
