//! Instance roles as named permission sets: the built-in ones, read-only, and those operators
//! define. Users get either kind through their `instance_roles`.

use std::collections::BTreeSet;

use axum::Json;
use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::json;
use steward_core::roles::BUILTIN_ROLES;
use steward_core::{AuditDraft, InstanceRole, Permission, TargetType};
use steward_store::RoleRow;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::declared::{BadRequest, Forbidden, NotFound, PreconditionFailed, Unauthorized};
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{Acting, ApiJson, Principal, check_if_match};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_roles, create_role)).routes(routes!(get_role, patch_role, delete_role))
}

/// An instance role.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoleView {
    pub name: String,
    /// Permission names, sorted.
    pub permissions: Vec<String>,
    /// Built-in roles cannot be changed or deleted.
    pub builtin: bool,
    /// Changes with every edit (built-in roles stay at 1); `PATCH` honours `If-Match`.
    pub version: i64,
}

impl crate::answer::Versioned for RoleView {
    fn version(&self) -> i64 {
        self.version
    }
}

/// Every role: the built-in ones first, then the instance's own by name.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoleList {
    pub items: Vec<RoleView>,
    /// Always null: the list is short and comes whole.
    pub next_cursor: Option<String>,
}

/// A new role.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRole {
    /// 1 to 64 lower-case letters, digits and `_`, starting with a letter.
    pub name: String,
    /// Permission names (see the instance permissions in the API description).
    pub permissions: Vec<String>,
}

/// A change to a role's permissions.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RolePatch {
    /// The role's new permission set, replacing the old one; left out, the set stays.
    #[serde(default)]
    pub permissions: Option<Vec<String>>,
}

fn view_of(row: &RoleRow) -> RoleView {
    let mut permissions: Vec<String> = row.permissions.iter().map(|p| p.to_string()).collect();
    permissions.sort();
    RoleView { name: row.name.clone(), permissions, builtin: false, version: row.version }
}

fn builtin_views() -> Vec<RoleView> {
    BUILTIN_ROLES
        .iter()
        .map(|(name, perms)| {
            let mut permissions: Vec<String> = perms.iter().map(|p| p.to_string()).collect();
            permissions.sort();
            RoleView { name: (*name).to_owned(), permissions, builtin: true, version: 1 }
        })
        .collect()
}

fn parse_permissions(names: &[String]) -> ApiResult<BTreeSet<Permission>> {
    names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            n.parse::<Permission>().map_err(|_| {
                ApiError::invalid(
                    format!("permissions[{i}]"),
                    format!(
                        "{n:?} is not a permission; use {}",
                        Permission::ALL.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(", ")
                    ),
                )
            })
        })
        .collect()
}

fn builtin_refused(name: &str) -> ApiError {
    ApiError::conflict(
        "builtin_role",
        format!("{name} is a built-in role; built-in roles cannot be changed or deleted"),
    )
}

/// Err(403) unless the caller holds every permission in `perms`, so that no one hands out more
/// than they have.
fn check_held(principal: &Principal, perms: &BTreeSet<Permission>) -> ApiResult<()> {
    if perms.is_subset(&principal.permissions) {
        Ok(())
    } else {
        Err(ApiError::forbidden("a role cannot grant permissions you do not hold"))
    }
}

fn require_reader(principal: &Principal) -> ApiResult<()> {
    if !principal.permissions.is_empty() {
        Ok(())
    } else if !principal.withheld.is_empty() {
        Err(ApiError::totp_enrollment_required())
    } else {
        Err(ApiError::forbidden("instance roles are for instance admins"))
    }
}

/// List instance roles
///
/// Lists the instance roles (any instance admin). Built-in and operator-defined roles, with their
/// permissions.
#[utoipa::path(get, path = "/api/v1/roles", tag = "roles", responses((status = 200, body = RoleList), Unauthorized,
    Forbidden))]
async fn list_roles(Acting { state, principal }: Acting) -> ApiResult<Json<RoleList>> {
    require_reader(&principal)?;
    let mut tx = state.store.read().await?;
    let custom = tx.custom_roles().await?;
    tx.rollback().await?;
    let mut items = builtin_views();
    items.extend(custom.iter().map(view_of));
    Ok(Json(RoleList { items, next_cursor: None }))
}

/// Get an instance role
///
/// Reads one role (any instance admin). Answers `ETag: "<version>"`; a `GET` with `If-None-Match`
/// naming it answers 304 while the resource is unchanged.
#[utoipa::path(get, path = "/api/v1/roles/{name}", tag = "roles", params(("name" = String, Path)),
    responses((status = 200, body = RoleView), Forbidden, NotFound))]
async fn get_role(
    Acting { state, principal }: Acting,
    Path(name): Path<String>,
) -> ApiResult<crate::answer::Tagged<RoleView>> {
    require_reader(&principal)?;
    if let Some(view) = builtin_views().into_iter().find(|v| v.name == name) {
        return Ok(crate::answer::Tagged(view));
    }
    let mut tx = state.store.read().await?;
    let role = tx.custom_role(&name).await?.ok_or_else(|| ApiError::not_found("role"))?;
    tx.rollback().await?;
    Ok(crate::answer::Tagged(view_of(&role)))
}

/// Define an instance role
///
/// Defines a role. Needs `roles.manage`, and only permissions the caller holds. Answers 201 with
/// `Location`.
#[utoipa::path(post, path = "/api/v1/roles", tag = "roles", request_body = NewRole,
    responses((status = 201, body = RoleView), BadRequest, Forbidden,
    (status = 409, body = Problem, content_type = "application/problem+json", description = "`builtin_role` or `role_exists`")))]
async fn create_role(
    Acting { state, principal }: Acting,
    ApiJson(req): ApiJson<NewRole>,
) -> ApiResult<crate::answer::Created<RoleView>> {
    principal.require(Permission::RolesManage)?;
    let name = InstanceRole::parse(&req.name).map_err(|e| ApiError::invalid("name", e.to_string()))?;
    if name.is_builtin() {
        return Err(builtin_refused(name.as_str()));
    }
    let permissions = parse_permissions(&req.permissions)?;
    check_held(&principal, &permissions)?;
    let now = state.clock.now();
    let row = RoleRow {
        name: name.as_str().to_owned(),
        permissions: permissions.iter().copied().collect(),
        created_at: now,
        updated_at: now,
        version: 1,
    };
    let mut tx = state.store.write().await?;
    tx.insert_custom_role(&row).await?;
    let event = AuditDraft::new("role.created", principal.actor(), TargetType::Role, &row.name)
        .detail(json!({ "permissions": permissions }));
    state.commit(tx, vec![event], now).await?;
    Ok(crate::answer::Created::at(format!("/api/v1/roles/{}", row.name), view_of(&row)))
}

/// Update an instance role
///
/// Replaces a role's permissions; its holders have the new set from their next request on. Needs
/// `roles.manage`; permissions added must be ones the caller holds. `If-Match` honoured. Answers
/// `ETag: "<version>"`; a `GET` with `If-None-Match` naming it answers 304 while the resource is
/// unchanged.
#[utoipa::path(patch, path = "/api/v1/roles/{name}", tag = "roles", params(("name" = String, Path)),
    request_body = RolePatch, responses((status = 200, body = RoleView), BadRequest, Forbidden, NotFound,
    (status = 409, body = Problem, content_type = "application/problem+json", description = "`builtin_role`"),
    PreconditionFailed))]
async fn patch_role(
    Acting { state, principal }: Acting,
    Path(name): Path<String>,
    headers: HeaderMap,
    ApiJson(patch): ApiJson<RolePatch>,
) -> ApiResult<crate::answer::Tagged<RoleView>> {
    principal.require(Permission::RolesManage)?;
    if InstanceRole::parse(&name).is_ok_and(|r| r.is_builtin()) {
        return Err(builtin_refused(&name));
    }
    let now = state.clock.now();
    let mut tx = state.store.write().await?;
    let mut role = tx.custom_role(&name).await?.ok_or_else(|| ApiError::not_found("role"))?;
    check_if_match(&headers, role.version)?;
    let before: BTreeSet<Permission> = role.permissions.iter().copied().collect();
    let permissions = match &patch.permissions {
        Some(sent) => parse_permissions(sent)?,
        None => before.clone(),
    };
    let added: BTreeSet<Permission> = permissions.difference(&before).copied().collect();
    let removed: BTreeSet<Permission> = before.difference(&permissions).copied().collect();
    check_held(&principal, &added)?;
    // Changing a role changes its holders: not when one of them outranks the caller.
    let beside: Vec<InstanceRole> =
        tx.roles_held_beside(&name).await?.iter().filter_map(|r| InstanceRole::parse(r).ok()).collect();
    let holders_hold = crate::extract::role_book(tx.as_mut()).await?.permissions_of(&beside);
    if !holders_hold.is_subset(&principal.permissions) {
        return Err(ApiError::forbidden(
            "this role is held by users whose instance roles grant permissions you do not hold",
        ));
    }
    if added.is_empty() && removed.is_empty() {
        tx.rollback().await?;
        return Ok(crate::answer::Tagged(view_of(&role)));
    }
    role.permissions = permissions.iter().copied().collect();
    role.updated_at = now;
    tx.update_custom_role(&role).await?;
    role.version += 1;
    let event = AuditDraft::new("role.updated", principal.actor(), TargetType::Role, &role.name)
        .detail(json!({ "added": added, "removed": removed }));
    state.commit(tx, vec![event], now).await?;
    Ok(crate::answer::Tagged(view_of(&role)))
}

/// Delete an instance role
///
/// Deletes a role no user holds (409 `role_in_use` otherwise, deactivated users included: they get
/// their roles back on reactivation). Needs `roles.manage`. Built-in roles cannot be deleted (409
/// `builtin_role`).
#[utoipa::path(delete, path = "/api/v1/roles/{name}", tag = "roles", params(("name" = String, Path)),
    responses((status = 204), Forbidden, NotFound,
    (status = 409, body = Problem, content_type = "application/problem+json", description = "`builtin_role` or `role_in_use`")))]
async fn delete_role(Acting { state, principal }: Acting, Path(name): Path<String>) -> ApiResult<StatusCode> {
    principal.require(Permission::RolesManage)?;
    if InstanceRole::parse(&name).is_ok_and(|r| r.is_builtin()) {
        return Err(builtin_refused(&name));
    }
    let now = state.clock.now();
    let mut tx = state.store.write().await?;
    let role = tx.custom_role(&name).await?.ok_or_else(|| ApiError::not_found("role"))?;
    let holders = tx.role_holders(&name).await?;
    if holders > 0 {
        return Err(ApiError::conflict(
            "role_in_use",
            format!("{holders} user(s) hold the role {name}; take it from them first"),
        ));
    }
    tx.delete_custom_role(&name).await?;
    let event = AuditDraft::new("role.deleted", principal.actor(), TargetType::Role, &name)
        .detail(json!({ "permissions": role.permissions }));
    state.commit(tx, vec![event], now).await?;
    Ok(StatusCode::NO_CONTENT)
}
