//! Users, for instance admins: create, list and search, read, change.

use std::collections::BTreeSet;

use axum::Json;
use axum::extract::Path;
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::json;
use steward_core::{
    AuditDraft, Email, InstanceRole, OrgId, Permission, PersonName, RoleBook, TargetType, UserId, UserStatus,
};
use steward_store::{Tx, UserFilter, UserRow};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::declared::{BadRequest, Conflict, Forbidden, NotFound, PreconditionFailed};
use crate::error::{ApiError, ApiResult};
use crate::extract::{
    Acting, ApiJson, ApiQuery, Page, Principal, check_if_match, check_locale, check_timezone, nullable, paginate,
    role_book,
};
use crate::state::AppState;
use crate::views::{UserList, UserView};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_users, create_user)).routes(routes!(get_user, patch_user))
}

/// Filters of the user list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UserQuery {
    /// Case-insensitive substring of email or name.
    pub q: Option<String>,
    /// Only users in this status.
    pub status: Option<String>,
    /// Only current members of this org.
    pub org_id: Option<String>,
    /// Only users not signed in since this instant (RFC 3339).
    pub inactive_since: Option<String>,
    /// 1 to 500 (default 50).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// List users
///
/// Lists users, newest first. Needs `users.read`. Filters by text, status, org and inactivity.
/// Pages with `limit` (at most 500) and `cursor`: the answer's `next_cursor` reads the next page,
/// `null` at the end.
#[utoipa::path(get, path = "/api/v1/users", tag = "users", params(UserQuery), responses((status = 200, body = UserList),
    BadRequest, Forbidden))]
pub(crate) async fn list_users(
    Acting { state, principal }: Acting,
    ApiQuery(q): ApiQuery<UserQuery>,
) -> ApiResult<Json<UserList>> {
    Ok(Json(read_users(&state, &principal, q).await?))
}

/// A page of the users the caller may see, under the query's filter, for every surface that acts with a principal.
pub async fn read_users(state: &AppState, principal: &Principal, q: UserQuery) -> ApiResult<UserList> {
    principal.require(Permission::UsersRead)?;
    let page = Page { limit: q.limit, cursor: q.cursor };
    let limit = page.limit()?;
    let status = q.status.as_deref().map(str::parse::<UserStatus>).transpose()?;
    let org_id = q
        .org_id
        .as_deref()
        .map(|o| o.parse::<OrgId>().map_err(|_| ApiError::invalid("org_id", "is not an id")))
        .transpose()?;
    let inactive_since = q
        .inactive_since
        .as_deref()
        .map(|t| {
            OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                .map_err(|_| ApiError::invalid("inactive_since", "must be an RFC 3339 time"))
        })
        .transpose()?;
    let filter = UserFilter {
        q: q.q.filter(|s| !s.trim().is_empty()).map(|s| s.trim().to_owned()),
        status,
        org_id,
        inactive_since,
        before: page.cursor()?,
        limit: limit + 1,
    };
    let mut tx = state.store.read().await?;
    let rows = tx.list_users(&filter).await?;
    tx.rollback().await?;
    let (rows, next_cursor) = paginate(rows, limit, |u| u.id);
    Ok(UserList { items: rows.iter().map(UserView::from).collect(), next_cursor })
}

/// A new user.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "grace@acme.example", "name": "Grace Hopper", "instance_roles": []}))]
pub struct NewUser {
    #[schema(value_type = String, format = Email)]
    pub email: Email,
    #[schema(value_type = String)]
    pub name: PersonName,
    /// With a password the user is `active`; without, `invited`.
    pub password: Option<String>,
    /// Instance roles to grant; only roles whose permissions the caller holds.
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub instance_roles: Vec<InstanceRole>,
    /// Send the invitation email (invited users only); default true.
    pub send_invitation: Option<bool>,
}

/// Err unless every role exists and grants nothing the caller lacks.
fn check_grantable(principal: &Principal, book: &RoleBook, roles: &[InstanceRole]) -> ApiResult<()> {
    for role in roles {
        if !book.exists(role) {
            return Err(ApiError::invalid("instance_roles", format!("there is no role named {role}")));
        }
    }
    let wanted = book.permissions_of(roles);
    if !wanted.is_subset(&principal.permissions) {
        return Err(ApiError::forbidden("you cannot grant a role with permissions you do not hold"));
    }
    Ok(())
}

/// The 409 for an email already in use, naming a deactivated holder so that they are
/// reactivated. An erased (anonymized) holder is never named: their old address must not lead
/// back to their id.
pub fn email_in_use(existing: &UserRow) -> ApiError {
    steward_ops::users::email_in_use(existing).into()
}

/// Create a user
///
/// Creates a user. An email is never reused: a deactivated user's email answers `user_deactivated`.
/// Needs `users.write`. Without a password the user is `invited`. Answers 201 with `Location`.
#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = NewUser,
    responses((status = 201, body = UserView), BadRequest, Forbidden, Conflict))]
async fn create_user(
    Acting { state, principal }: Acting,
    ApiJson(req): ApiJson<NewUser>,
) -> ApiResult<crate::answer::Created<UserView>> {
    principal.require(Permission::UsersWrite)?;
    let mut roles = req.instance_roles.clone();
    roles.sort();
    roles.dedup();
    let password_hash = match &req.password {
        Some(p) => Some(state.passwords.hash(p).await?),
        None => None,
    };
    let now = state.clock.now();
    let status = if password_hash.is_some() { UserStatus::Active } else { UserStatus::Invited };
    let mut user = UserRow::new(req.email.as_str(), req.email.key(), req.name.as_str(), status, now);
    user.password_hash = password_hash;
    user.instance_roles = roles;
    let mut tx = state.store.write().await?;
    let book = role_book(tx.as_mut()).await?;
    check_grantable(&principal, &book, &user.instance_roles)?;
    if let Some(existing) = steward_ops::users::find_by_email(tx.as_mut(), &req.email, now).await? {
        return Err(email_in_use(&existing));
    }
    tx.insert_user(&user).await?;
    let event = AuditDraft::new("user.created", principal.actor(), TargetType::User, user.id)
        .detail(json!({
            "status": user.status,
            "instance_roles": user.instance_roles,
            "send_invitation": user.status == UserStatus::Invited && req.send_invitation.unwrap_or(true),
        }))
        .personal(json!({ "email": user.email, "name": user.name }));
    if user.status == UserStatus::Invited && req.send_invitation.unwrap_or(true) {
        crate::routes::invitations::invite(tx.as_mut(), &state, &user, None, vec![], Some(principal.user.id), now)
            .await?;
    }
    state.commit(tx, vec![event], now).await?;
    state.outbox_wake.notify_one();
    Ok(crate::answer::Created::at(format!("/api/v1/users/{}", user.id), UserView::from(&user)))
}

fn parse_user_id(id: &str) -> ApiResult<UserId> {
    id.parse().map_err(|_| ApiError::not_found("user"))
}

/// Get a user
///
/// Reads a user. Answers `ETag: "<version>"`; a `GET` with `If-None-Match` naming it answers 304
/// while the resource is unchanged.
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users", responses((status = 200, body = UserView), Forbidden,
    NotFound))]
pub(crate) async fn get_user(
    Acting { state, principal }: Acting,
    Path(id): Path<String>,
) -> ApiResult<crate::answer::Tagged<UserView>> {
    Ok(crate::answer::Tagged(read_user(&state, &principal, id).await?))
}

/// The user `id`, for every surface that acts with a principal.
pub async fn read_user(state: &AppState, principal: &Principal, id: String) -> ApiResult<UserView> {
    principal.require(Permission::UsersRead)?;
    let id = parse_user_id(&id)?;
    let mut tx = state.store.read().await?;
    let user = tx.user(id).await?.ok_or_else(|| ApiError::not_found("user"))?;
    tx.rollback().await?;
    Ok(UserView::from(&user))
}

/// Changes to a user; absent fields stay, `null` clears `locale` and `timezone`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    #[schema(value_type = Option<String>)]
    pub name: Option<PersonName>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub locale: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub timezone: Option<Option<String>>,
    /// Replaces the user's instance roles.
    #[schema(value_type = Option<Vec<String>>)]
    pub instance_roles: Option<Vec<InstanceRole>>,
    /// Sets a new password; the user's sessions end.
    pub password: Option<String>,
    /// Schedules a deactivation (RFC 3339, in the future); null clears it.
    #[serde(default, deserialize_with = "nullable_time")]
    pub deactivate_at: Option<Option<OffsetDateTime>>,
}

fn nullable_time<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<OffsetDateTime>>, D::Error> {
    let text: Option<String> = Option::deserialize(d)?;
    text.map(|t| {
        OffsetDateTime::parse(&t, &time::format_description::well_known::Rfc3339).map_err(serde::de::Error::custom)
    })
    .transpose()
    .map(Some)
}

/// Update a user
///
/// Changes a user. `If-Match: "<version>"` makes it conditional. Answers `ETag: "<version>"`; a
/// `GET` with `If-None-Match` naming it answers 304 while the resource is unchanged.
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", request_body = UserPatch,
    responses((status = 200, body = UserView), BadRequest, Forbidden, NotFound, Conflict, PreconditionFailed))]
async fn patch_user(
    Acting { state, principal }: Acting,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(patch): ApiJson<UserPatch>,
) -> ApiResult<crate::answer::Tagged<UserView>> {
    check_patch(&principal, &patch)?;
    let id = parse_user_id(&id)?;
    let new_hash = match &patch.password {
        Some(p) => Some(state.passwords.hash(p).await?),
        None => None,
    };
    let now = state.clock.now();
    let mut tx = state.store.write().await?;
    let before = tx.user(id).await?.ok_or_else(|| ApiError::not_found("user"))?;
    check_if_match(&headers, before.version)?;
    crate::governance::require_governs(tx.as_mut(), &principal, &before).await?;
    let mut user = before.clone();
    let mut events = Vec::new();
    let mut roles_changed = false;
    let mut changed = profile_changes(&mut user, &patch);
    if let Some(at) = patch.deactivate_at {
        schedule_deactivation(&mut user, at, &principal, state.clock.now())?;
        changed.push("deactivate_at");
    }
    if let Some(hash) = new_hash {
        set_password(&mut user, hash)?;
        changed.push("password");
    }
    if let Some(roles) = &patch.instance_roles
        && let Some(event) = change_roles(tx.as_mut(), &principal, &mut user, roles).await?
    {
        events.push(event);
        roles_changed = true;
    }
    if !changed.is_empty() || roles_changed {
        user.updated_at = now;
        tx.update_user(&user).await?;
        user.version += 1;
        if !changed.is_empty() {
            events.push(
                AuditDraft::new("user.updated", principal.actor(), TargetType::User, user.id)
                    .detail(json!({ "fields": changed }))
                    .personal(json!({ "name": user.name })),
            );
        }
    }
    if changed.contains(&"password") {
        end_sessions_after_password(tx.as_mut(), &principal, user.id, now).await?;
    }
    state.commit(tx, events, now).await?;
    Ok(crate::answer::Tagged(UserView::from(&user)))
}

/// What a patch may be refused for before anything is read: the caller's right, an
/// impersonation session, a locale or time zone that does not exist.
fn check_patch(principal: &Principal, patch: &UserPatch) -> ApiResult<()> {
    principal.require(Permission::UsersWrite)?;
    if principal.impersonator_id().is_some() {
        return Err(ApiError::forbidden("an impersonation session cannot change users"));
    }
    if let Some(Some(l)) = &patch.locale {
        check_locale(l)?;
    }
    if let Some(Some(t)) = &patch.timezone {
        check_timezone(t)?;
    }
    Ok(())
}

/// Gives `user` a new password hash; only a user who can hold roles has a password set.
fn set_password(user: &mut UserRow, hash: String) -> ApiResult<()> {
    if !user.status.can_receive_roles() {
        let status = user.status;
        return Err(ApiError::conflict("invalid_transition", format!("a {status} user's password cannot be set")));
    }
    user.password_hash = Some(hash);
    Ok(())
}

/// Sets or clears the scheduled deactivation of `user`: a time in the future, set by someone
/// holding `users.lifecycle`, whose rights the scheduler then acts with.
fn schedule_deactivation(
    user: &mut UserRow,
    at: Option<OffsetDateTime>,
    principal: &Principal,
    now: OffsetDateTime,
) -> ApiResult<()> {
    if at.is_some_and(|a| a <= now) {
        return Err(ApiError::invalid("deactivate_at", "must be in the future"));
    }
    if at.is_some() && !principal.has(Permission::UsersLifecycle) {
        return Err(ApiError::forbidden("scheduling a deactivation needs the users.lifecycle permission"));
    }
    user.deactivate_at = at;
    user.deactivate_by = at.map(|_| principal.user.id);
    Ok(())
}

/// Puts the patch's name, locale and time zone on `user`; returns the fields changed.
fn profile_changes(user: &mut UserRow, patch: &UserPatch) -> Vec<&'static str> {
    let mut changed = Vec::new();
    if let Some(name) = &patch.name {
        user.name = name.as_str().to_owned();
        changed.push("name");
    }
    if let Some(locale) = &patch.locale {
        user.locale = locale.clone();
        changed.push("locale");
    }
    if let Some(tz) = &patch.timezone {
        user.timezone = tz.clone();
        changed.push("timezone");
    }
    changed
}

/// Gives `user` exactly `roles`: the actor must hold what each role added or taken away grants,
/// and the last active system admin keeps that role. Returns the event, if anything changed.
async fn change_roles(
    tx: &mut dyn Tx,
    principal: &Principal,
    user: &mut UserRow,
    roles: &[InstanceRole],
) -> ApiResult<Option<AuditDraft>> {
    let mut roles = roles.to_vec();
    roles.sort();
    roles.dedup();
    let old: BTreeSet<_> = user.instance_roles.iter().cloned().collect();
    let new: BTreeSet<_> = roles.iter().cloned().collect();
    let added: Vec<InstanceRole> = new.difference(&old).cloned().collect();
    let removed: Vec<InstanceRole> = old.difference(&new).cloned().collect();
    let book = role_book(tx).await?;
    check_grantable(principal, &book, &added)?;
    // A role deleted since is no longer in the book; taking it away needs no permission.
    let removed_known: Vec<InstanceRole> = removed.iter().filter(|r| book.exists(r)).cloned().collect();
    check_grantable(principal, &book, &removed_known)?;
    let sysadmin = InstanceRole::system_admin();
    if removed.contains(&sysadmin)
        && tx.count_users_with_role(sysadmin.as_str()).await? <= 1
        && user.status == UserStatus::Active
    {
        return Err(ApiError::conflict("invalid_transition", "the last active system_admin cannot lose that role"));
    }
    if added.is_empty() && removed.is_empty() {
        return Ok(None);
    }
    tx.set_instance_roles(user.id, &roles).await?;
    user.instance_roles = roles;
    Ok(Some(
        AuditDraft::new("user.roles_changed", principal.actor(), TargetType::User, user.id)
            .detail(json!({ "added": added, "removed": removed })),
    ))
}

/// After a new password: set by someone else, it ends every session and API token the user
/// had; set by the user, it ends their other sessions.
async fn end_sessions_after_password(
    tx: &mut dyn Tx,
    principal: &Principal,
    user: UserId,
    now: OffsetDateTime,
) -> ApiResult<()> {
    if user != principal.user.id {
        tx.revoke_all_credentials(user, now).await?;
        return Ok(());
    }
    for s in tx.live_sessions(user, now).await? {
        if principal.session_id() != Some(s.id) {
            tx.revoke_session(s.id, now).await?;
        }
    }
    Ok(())
}
