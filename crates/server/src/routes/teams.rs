//! Teams inside an organization and their members.

use axum::Json;
use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::json;
use steward_core::{AuditDraft, TargetType, TeamId, TeamName, TeamRole, UserId};
use steward_store::{TeamRow, Tx};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::declared::{BadRequest, Conflict, Forbidden, NotFound, PreconditionFailed};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Acting, ApiJson, ApiQuery, Page, Principal, check_if_match, paginate};
use crate::routes::orgs::{Need, OrgAccess, org_access};
use crate::state::AppState;
use crate::views::{TeamList, TeamView};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_teams, create_team))
        .routes(routes!(get_team, patch_team))
        .routes(routes!(put_team_member, delete_team_member))
}

async fn team_access(
    state: &AppState,
    tx: &mut dyn Tx,
    principal: &Principal,
    id: &str,
    need: Need,
) -> ApiResult<(TeamRow, OrgAccess)> {
    let id: TeamId = id.parse().map_err(|_| ApiError::not_found("team"))?;
    let team = tx.team(id).await?.ok_or_else(|| ApiError::not_found("team"))?;
    let access = org_access(state, tx, principal, &team.org_id.to_string(), need).await.map_err(|e| {
        // A team of an org the caller cannot see does not exist for them.
        if e.code() == "not_found" { ApiError::not_found("team") } else { e }
    })?;
    Ok((team, access))
}

/// List an org's teams
///
/// Lists an organization's teams, newest first. Pages with `limit` (at most 500) and `cursor`: the
/// answer's `next_cursor` reads the next page, `null` at the end.
#[utoipa::path(get, path = "/api/v1/orgs/{id}/teams", tag = "teams", params(("id" = String, Path), Page),
    responses((status = 200, body = TeamList), NotFound))]
pub(crate) async fn list_teams(
    Acting { state, principal }: Acting,
    Path(id): Path<String>,
    ApiQuery(page): ApiQuery<Page>,
) -> ApiResult<Json<TeamList>> {
    Ok(Json(read_teams(&state, &principal, id, page).await?))
}

/// A page of the org's teams with their members, for every surface that acts with a principal.
pub async fn read_teams(state: &AppState, principal: &Principal, id: String, page: Page) -> ApiResult<TeamList> {
    let limit = page.limit()?;
    let mut tx = state.store.read().await?;
    let access = org_access(state, tx.as_mut(), principal, &id, Need::Read).await?;
    let rows = tx.teams_of_org(access.org.id, page.cursor()?, limit + 1).await?;
    let (rows, next_cursor) = paginate(rows, limit, |t| t.id);
    let mut items = Vec::with_capacity(rows.len());
    for t in &rows {
        items.push(TeamView::new(t, &tx.team_members(t.id).await?));
    }
    tx.rollback().await?;
    Ok(TeamList { items, next_cursor })
}

/// A new team, or a team's new name.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TeamInput {
    /// Unique within the org, ignoring case.
    #[schema(value_type = String)]
    pub name: TeamName,
}

/// A merge patch of a team: a field left out stays as it is.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TeamPatch {
    /// Unique within the org, ignoring case.
    #[schema(value_type = Option<String>)]
    #[serde(default)]
    pub name: Option<TeamName>,
}

/// Create a team
///
/// Creates a team. Team names are unique within the org, ignoring case. Answers 201 with
/// `Location`.
#[utoipa::path(post, path = "/api/v1/orgs/{id}/teams", tag = "teams", request_body = TeamInput,
    responses((status = 201, body = TeamView), BadRequest, Forbidden, NotFound, Conflict))]
pub(crate) async fn create_team(
    Acting { state, principal }: Acting,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<TeamInput>,
) -> ApiResult<crate::answer::Created<TeamView>> {
    let team = add_team(&state, &principal, id, req).await?;
    Ok(crate::answer::Created::at(format!("/api/v1/teams/{}", team.id), team))
}

/// Creates a team in the org `id`, for every surface that acts with a principal.
pub async fn add_team(state: &AppState, principal: &Principal, id: String, req: TeamInput) -> ApiResult<TeamView> {
    let now = state.clock.now();
    let mut tx = state.store.write().await?;
    let access = org_access(state, tx.as_mut(), principal, &id, Need::Manage).await?;
    let (team, event) = new_team(tx.as_mut(), &access.org, &req.name, principal.actor(), now).await?;
    state.commit(tx, vec![event], now).await?;
    Ok(TeamView::new(&team, &[]))
}

/// A new team named `name` in `org`, within the teams its license allows: inserted, with its
/// audit event. One function for every surface that creates teams (the API and its pages, SCIM).
pub async fn new_team(
    tx: &mut dyn Tx,
    org: &steward_store::OrgRow,
    name: &TeamName,
    actor: steward_core::Actor,
    now: time::OffsetDateTime,
) -> ApiResult<(TeamRow, AuditDraft)> {
    if let Some(limit) = org.license.teams
        && tx.team_count(org.id).await? >= limit
    {
        return Err(ApiError::conflict("limit_reached", format!("the license allows {limit} teams")));
    }
    let team = TeamRow {
        id: TeamId::new(),
        org_id: org.id,
        name: name.as_str().to_owned(),
        created_at: now,
        updated_at: now,
        version: 1,
    };
    tx.insert_team(&team).await?;
    let event = AuditDraft::new("team.created", actor, TargetType::Team, team.id)
        .in_org(team.org_id)
        .personal(json!({ "name": team.name }));
    Ok((team, event))
}

/// Get a team
///
/// Reads a team with its members. Answers `ETag: "<version>"`; a `GET` with `If-None-Match` naming
/// it answers 304 while the resource is unchanged.
#[utoipa::path(get, path = "/api/v1/teams/{id}", tag = "teams", responses((status = 200, body = TeamView), NotFound))]
async fn get_team(
    Acting { state, principal }: Acting,
    Path(id): Path<String>,
) -> ApiResult<crate::answer::Tagged<TeamView>> {
    let mut tx = state.store.read().await?;
    let (team, _) = team_access(&state, tx.as_mut(), &principal, &id, Need::Read).await?;
    let members = tx.team_members(team.id).await?;
    tx.rollback().await?;
    Ok(crate::answer::Tagged(TeamView::new(&team, &members)))
}

/// Rename a team
///
/// Renames a team. `If-Match: "<version>"` makes it conditional. Answers `ETag: "<version>"`; a
/// `GET` with `If-None-Match` naming it answers 304 while the resource is unchanged.
#[utoipa::path(patch, path = "/api/v1/teams/{id}", tag = "teams", request_body = TeamPatch,
    responses((status = 200, body = TeamView), BadRequest, Forbidden, NotFound, Conflict, PreconditionFailed))]
async fn patch_team(
    Acting { state, principal }: Acting,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<TeamPatch>,
) -> ApiResult<crate::answer::Tagged<TeamView>> {
    let now = state.clock.now();
    let mut tx = state.store.write().await?;
    let (mut team, _) = team_access(&state, tx.as_mut(), &principal, &id, Need::Manage).await?;
    check_if_match(&headers, team.version)?;
    if let Some(name) = req.name.filter(|n| team.name != n.as_str()) {
        team.name = name.as_str().to_owned();
        team.updated_at = now;
        tx.update_team(&team).await?;
        team.version += 1;
        let event = AuditDraft::new("team.updated", principal.actor(), TargetType::Team, team.id)
            .in_org(team.org_id)
            .detail(json!({ "fields": ["name"] }))
            .personal(json!({ "name": team.name }));
        let members = tx.team_members(team.id).await?;
        state.commit(tx, vec![event], now).await?;
        return Ok(crate::answer::Tagged(TeamView::new(&team, &members)));
    }
    let members = tx.team_members(team.id).await?;
    tx.rollback().await?;
    Ok(crate::answer::Tagged(TeamView::new(&team, &members)))
}

/// A team role.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TeamMemberRole {
    /// `team_admin`, `team_member`, `team_operator` or `team_viewer`.
    #[schema(value_type = crate::schema::TeamRoleSchema)]
    pub role: TeamRole,
}

/// Add a team member or change their role
///
/// Adds a member of the org to the team, or changes their team role. Only members of the team's org
/// can join it.
#[utoipa::path(put, path = "/api/v1/teams/{id}/members/{user_id}", tag = "teams", params(("id" = String, Path),
    ("user_id" = String, Path)), request_body = TeamMemberRole, responses((status = 200, body = TeamView), BadRequest,
    Forbidden, NotFound, Conflict))]
pub(crate) async fn put_team_member(
    Acting { state, principal }: Acting,
    Path((id, user_id)): Path<(String, String)>,
    ApiJson(req): ApiJson<TeamMemberRole>,
) -> ApiResult<Json<TeamView>> {
    Ok(Json(set_team_member(&state, &principal, (id, user_id), req).await?))
}

/// Puts a member of the org in a team with a role, for every surface that acts with a principal.
pub async fn set_team_member(
    state: &AppState,
    principal: &Principal,
    (id, user_id): (String, String),
    req: TeamMemberRole,
) -> ApiResult<TeamView> {
    let now = state.clock.now();
    let user_id: UserId = user_id.parse().map_err(|_| ApiError::not_found("user"))?;
    let mut tx = state.store.write().await?;
    let (team, access) = team_access(state, tx.as_mut(), principal, &id, Need::Manage).await?;
    let user = tx.user(user_id).await?.ok_or_else(|| ApiError::not_found("user"))?;
    if !user.status.can_receive_roles() {
        return Err(ApiError::user_deactivated(user.id));
    }
    let is_member = tx.membership_in(access.org.id, user_id).await?.is_some_and(|m| !m.dormant);
    if !is_member {
        return Err(ApiError::conflict("invalid_transition", "only members of the organization can join its teams"));
    }
    let previous = tx.team_members(team.id).await?.into_iter().find(|m| m.user_id == user_id).map(|m| m.role);
    let events = if previous == Some(req.role) {
        vec![]
    } else {
        tx.put_team_member(team.id, user_id, req.role, now).await?;
        vec![
            AuditDraft::new("team.member_put", principal.actor(), TargetType::User, user_id)
                .in_org(team.org_id)
                .detail(json!({ "team_id": team.id, "from": previous, "to": req.role })),
        ]
    };
    let members = tx.team_members(team.id).await?;
    state.commit(tx, events, now).await?;
    Ok(TeamView::new(&team, &members))
}

/// Remove a team member
///
/// Removes a member from the team (kept in history). The org membership stays.
#[utoipa::path(delete, path = "/api/v1/teams/{id}/members/{user_id}", tag = "teams", params(("id" = String, Path),
    ("user_id" = String, Path)), responses((status = 204), Forbidden, NotFound))]
async fn delete_team_member(
    Acting { state, principal }: Acting,
    Path((id, user_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let now = state.clock.now();
    let user_id: UserId = user_id.parse().map_err(|_| ApiError::not_found("team member"))?;
    let mut tx = state.store.write().await?;
    let (team, _) = team_access(&state, tx.as_mut(), &principal, &id, Need::Manage).await?;
    let member = tx.team_members(team.id).await?.into_iter().find(|m| m.user_id == user_id);
    let Some(member) = member else { return Err(ApiError::not_found("team member")) };
    tx.end_team_member(team.id, user_id, now).await?;
    let event = AuditDraft::new("team.member_removed", principal.actor(), TargetType::User, user_id)
        .in_org(team.org_id)
        .detail(json!({ "team_id": team.id, "role": member.role }));
    state.commit(tx, vec![event], now).await?;
    Ok(StatusCode::NO_CONTENT)
}
