//! Organizations, their members, ownership transfer and license.

use axum::Json;
use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::json;
use steward_core::org::{self, RoleChange};
use steward_core::{AuditDraft, License, OrgAction, OrgId, OrgName, OrgRole, Permission, TargetType, UserId};
use steward_store::{OrgFilter, OrgRow, Tx};
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::declared::{BadRequest, Conflict, Forbidden, NotFound, PreconditionFailed, Unauthorized};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Acting, ApiJson, ApiQuery, Page, Principal, check_if_match, nullable, paginate};
use crate::schema::LicenseSchema;
use crate::state::{AppState, instance_settings};
use crate::views::org_view;
use crate::views::{MemberList, MemberView, OrgList, OrgView};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_orgs, create_org))
        .routes(routes!(get_org, patch_org))
        .routes(routes!(list_members))
        .routes(routes!(put_member, delete_member))
        .routes(routes!(transfer_ownership))
        .routes(routes!(get_license, put_license, patch_license))
}

/// What a caller needs to do with an org.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// See it: instance `orgs.read` or a current, non-dormant membership.
    Read,
    /// Manage members and teams: instance `orgs.write`, or the org's owner or admins.
    Manage,
    /// See what only its managers see (open invitations): as `Manage`, and also while the org is
    /// frozen or deprovisioned, since reading changes nothing.
    Oversee,
    /// Act as its owner: instance `orgs.write`, or the owner.
    Own,
    /// Change its license: instance `licenses.write`.
    License,
    /// Deprovision or restore it: visibility only here; the handler checks `orgs.lifecycle`.
    Lifecycle,
}

/// Proof that the caller may do what was asked with this org; only [`org_access`] makes one.
// The private field keeps other modules from forging one; `non_exhaustive` would not, inside the crate.
#[allow(clippy::manual_non_exhaustive)]
pub struct OrgAccess {
    /// The org as read in the caller's transaction.
    pub org: OrgRow,
    /// The caller's own role in it, if a member.
    pub role: Option<OrgRole>,
    _private: (),
}

/// Loads the org and checks the caller's right to it. An org the caller may not see is 404,
/// so that another tenant's orgs cannot even be probed.
/// Requests that change the license or the lifecycle are not counted against the org's
/// `api_requests_per_minute`, so that an operator can always lift a limit; nor are the pages'.
pub async fn org_access(
    state: &AppState,
    tx: &mut dyn Tx,
    principal: &Principal,
    id: &str,
    need: Need,
) -> ApiResult<OrgAccess> {
    let id: OrgId = id.parse().map_err(|_| ApiError::not_found("organization"))?;
    let org = tx.org(id).await?.ok_or_else(|| ApiError::not_found("organization"))?;
    // The caller's membership of this org: one indexed row however large the org, and however
    // many orgs the caller is in.
    let role = tx.membership_in(id, principal.user.id).await?.filter(|m| !m.dormant).map(|m| m.role);
    if !(principal.has(Permission::OrgsRead) || role.is_some()) {
        return Err(ApiError::not_found("organization"));
    }
    let allowed = match need {
        Need::Read | Need::Lifecycle => true,
        Need::Manage | Need::Oversee => {
            principal.has(Permission::OrgsWrite) || role.is_some_and(|r| r.allows(OrgAction::OrgManage))
        }
        Need::Own => principal.has(Permission::OrgsWrite) || role == Some(OrgRole::Owner),
        Need::License => principal.has(Permission::LicensesWrite),
    };
    if !allowed {
        let what = match need {
            Need::Read | Need::Lifecycle => "read",
            Need::Manage | Need::Oversee => "manage",
            Need::Own => "act as the owner of",
            Need::License => "change the license of",
        };
        return Err(ApiError::forbidden(format!("you may not {what} this organization")));
    }
    // A deprovisioned or frozen org's own admins change nothing of it (its members, teams,
    // invitations, owner or profile); the operator's instance admins still may.
    if matches!(need, Need::Manage | Need::Own)
        && !principal.has(Permission::OrgsWrite)
        && (org.state != steward_core::OrgState::Active
            || steward_ops::orgs::frozen_now(tx, &org, state.clock.now()).await?)
    {
        return Err(ApiError::conflict(
            "org_frozen",
            "the organization is frozen or deprovisioned: its members, teams and settings cannot be changed",
        ));
    }
    count_request(state, principal, &org, need)?;
    Ok(OrgAccess { org, role, _private: () })
}

/// Counts a request against the org's `api_requests_per_minute` (429 past it), as [`org_access`]
/// does; for a request whose access was decided by [`org_access`] since the last change.
pub fn count_request(state: &AppState, principal: &Principal, org: &OrgRow, need: Need) -> ApiResult<()> {
    if !matches!(need, Need::License | Need::Lifecycle) && !principal.by_page {
        state.org_rate.take(org.id, org.license.api_requests_per_minute)?;
    }
    Ok(())
}

/// Filters of the org list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OrgQuery {
    /// Only the org with this external id.
    pub external_id: Option<String>,
    /// 1 to 500 (default 50).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// List orgs
///
/// Lists orgs: all of them for instance admins, the caller's own for everyone else. Pages with
/// `limit` (at most 500) and `cursor`: the answer's `next_cursor` reads the next page, `null` at
/// the end.
#[utoipa::path(get, path = "/api/v1/orgs", tag = "orgs", params(OrgQuery), responses((status = 200, body = OrgList),
    Unauthorized))]
pub(crate) async fn list_orgs(
    Acting { state, principal }: Acting,
    ApiQuery(q): ApiQuery<OrgQuery>,
) -> ApiResult<Json<OrgList>> {
    Ok(Json(read_orgs(&state, &principal, q).await?))
}

/// A page of the orgs the caller may see, under the query's filter, for every surface that acts with a principal.
pub async fn read_orgs(state: &AppState, principal: &Principal, q: OrgQuery) -> ApiResult<OrgList> {
    let page = Page { limit: q.limit, cursor: q.cursor };
    let limit = page.limit()?;
    let filter = OrgFilter {
        member: (!principal.has(Permission::OrgsRead)).then_some(principal.user.id),
        external_id: q.external_id,
        before: page.cursor()?,
        limit: limit + 1,
    };
    let now = state.clock.now();
    let mut tx = state.store.read().await?;
    let rows = tx.list_orgs(&filter).await?;
    let (rows, next_cursor) = paginate(rows, limit, |o| o.id);
    let mut items = Vec::with_capacity(rows.len());
    for o in &rows {
        items.push(org_view(tx.as_mut(), o, now).await?);
    }
    tx.rollback().await?;
    Ok(OrgList { items, next_cursor })
}

/// A new organization.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Acme", "owner_id": "01936f0e-6d4c-7bd2-9c11-5a3f2b8e4a10", "external_id": "crm-4711", "license": {"operations": 100000, "users": 25}}))]
pub struct NewOrg {
    #[schema(value_type = String)]
    pub name: OrgName,
    /// The user who owns it; they become its member with role `owner`.
    pub owner_id: String,
    /// The operator's own id for this customer, unique.
    pub external_id: Option<String>,
    pub timezone: Option<String>,
    /// ISO 3166-1 alpha-2.
    pub country: Option<String>,
    /// License fields; missing ones come from the instance default license.
    #[schema(value_type = Option<crate::schema::LicensePatchSchema>)]
    pub license: Option<serde_json::Value>,
}

fn check_external_id(id: &str) -> ApiResult<()> {
    if (1..=255).contains(&id.len()) && !id.chars().any(char::is_control) {
        Ok(())
    } else {
        Err(ApiError::invalid("external_id", "must be 1 to 255 characters"))
    }
}

fn check_country(c: &str) -> ApiResult<()> {
    if c.len() == 2 && c.chars().all(|c| c.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err(ApiError::invalid("country", "must be an ISO 3166-1 alpha-2 code such as CZ"))
    }
}

/// Create an org
///
/// Creates an organization with its owner. Needs `orgs.write`. Answers 201 with `Location`.
#[utoipa::path(post, path = "/api/v1/orgs", tag = "orgs", request_body = NewOrg,
    responses((status = 201, body = OrgView), BadRequest, Forbidden, NotFound, Conflict))]
async fn create_org(
    Acting { state, principal }: Acting,
    ApiJson(req): ApiJson<NewOrg>,
) -> ApiResult<crate::answer::Created<OrgView>> {
    principal.require(Permission::OrgsWrite)?;
    let owner_id: UserId = req.owner_id.parse().map_err(|_| ApiError::invalid("owner_id", "is not a user id"))?;
    if let Some(e) = &req.external_id {
        check_external_id(e)?;
    }
    if let Some(tz) = &req.timezone {
        crate::extract::check_timezone(tz)?;
    }
    if let Some(c) = &req.country {
        check_country(c)?;
    }
    let now = state.clock.now();
    let mut tx = state.store.write().await?;
    let (settings, _) = instance_settings(tx.as_mut()).await?;
    let license = match &req.license {
        Some(patch) => settings.default_license.merged(patch)?,
        None => settings.default_license.clone(),
    };
    let owner = tx.user(owner_id).await?.ok_or_else(|| ApiError::invalid("owner_id", "no such user"))?;
    if !owner.status.can_receive_roles() {
        return Err(ApiError::user_deactivated(owner.id));
    }
    let org = OrgRow {
        id: OrgId::new(),
        name: req.name.as_str().to_owned(),
        external_id: req.external_id.clone(),
        owner_id,
        state: steward_core::OrgState::Active,
        timezone: req.timezone.clone(),
        country: req.country.clone(),
        license,
        created_at: now,
        updated_at: now,
        version: 1,
    };
    tx.insert_org(&org).await?;
    tx.insert_membership(org.id, owner_id, OrgRole::Owner, now).await?;
    let events = vec![
        AuditDraft::new("org.created", principal.actor(), TargetType::Org, org.id)
            .in_org(org.id)
            .detail(json!({ "owner_id": owner_id, "external_id": org.external_id, "license": org.license }))
            .personal(json!({ "name": org.name })),
        AuditDraft::new("org.member_added", principal.actor(), TargetType::User, owner_id)
            .in_org(org.id)
            .detail(json!({ "role": OrgRole::Owner })),
    ];
    state.commit(tx, events, now).await?;
    let frozen = org.license.frozen(0, 0, state.clock.now());
    Ok(crate::answer::Created::at(format!("/api/v1/orgs/{}", org.id), OrgView::new(&org, frozen)))
}

/// Get an org
///
/// Reads an organization. Answers `ETag: "<version>"`; a `GET` with `If-None-Match` naming it
/// answers 304 while the resource is unchanged.
#[utoipa::path(get, path = "/api/v1/orgs/{id}", tag = "orgs", responses((status = 200, body = OrgView), NotFound))]
pub(crate) async fn get_org(
    Acting { state, principal }: Acting,
    Path(id): Path<String>,
) -> ApiResult<crate::answer::Tagged<OrgView>> {
    Ok(crate::answer::Tagged(read_org(&state, &principal, id).await?))
}

/// The org `id` as its admins see it, for every surface that acts with a principal.
pub async fn read_org(state: &AppState, principal: &Principal, id: String) -> ApiResult<OrgView> {
    let mut tx = state.store.read().await?;
    let access = org_access(state, tx.as_mut(), principal, &id, Need::Read).await?;
    let view = org_view(tx.as_mut(), &access.org, state.clock.now()).await?;
    tx.rollback().await?;
    Ok(view)
}

/// Changes to an organization's profile.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrgPatch {
    #[schema(value_type = Option<String>)]
    pub name: Option<OrgName>,
    /// Instance admins only.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub external_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub timezone: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub country: Option<Option<String>>,
}

/// Update an org
///
/// Changes an organization's profile. `If-Match: "<version>"` makes it conditional. Answers `ETag:
/// "<version>"`; a `GET` with `If-None-Match` naming it answers 304 while the resource is
/// unchanged.
#[utoipa::path(patch, path = "/api/v1/orgs/{id}", tag = "orgs", request_body = OrgPatch,
    responses((status = 200, body = OrgView), BadRequest, Forbidden, NotFound, PreconditionFailed))]
async fn patch_org(
    Acting { state, principal }: Acting,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(patch): ApiJson<OrgPatch>,
) -> ApiResult<crate::answer::Tagged<OrgView>> {
    if let Some(Some(e)) = &patch.external_id {
        check_external_id(e)?;
    }
    if let Some(Some(tz)) = &patch.timezone {
        crate::extract::check_timezone(tz)?;
    }
    if let Some(Some(c)) = &patch.country {
        check_country(c)?;
    }
    let now = state.clock.now();
    let mut tx = state.store.write().await?;
    let access = org_access(&state, tx.as_mut(), &principal, &id, Need::Manage).await?;
    check_if_match(&headers, access.org.version)?;
    let mut org = access.org;
    let mut fields = Vec::new();
    if let Some(name) = &patch.name {
        org.name = name.as_str().to_owned();
        fields.push("name");
    }
    if let Some(external_id) = patch.external_id {
        principal.require(Permission::OrgsWrite)?;
        org.external_id = external_id;
        fields.push("external_id");
    }
    if let Some(tz) = patch.timezone {
        org.timezone = tz;
        fields.push("timezone");
    }
    if let Some(c) = patch.country {
        org.country = c;
        fields.push("country");
    }
    if !fields.is_empty() {
        org.updated_at = now;
        tx.update_org(&org).await?;
        org.version += 1;
        let event = AuditDraft::new("org.updated", principal.actor(), TargetType::Org, org.id)
            .in_org(org.id)
            .detail(json!({ "fields": fields, "external_id": org.external_id }))
            .personal(json!({ "name": org.name }));
        let view = org_view(tx.as_mut(), &org, state.clock.now()).await?;
        state.commit(tx, vec![event], now).await?;
        return Ok(crate::answer::Tagged(view));
    }
    let view = org_view(tx.as_mut(), &org, state.clock.now()).await?;
    tx.rollback().await?;
    Ok(crate::answer::Tagged(view))
}

/// List an org's members
///
/// Lists an organization's current members, newest first. Pages with `limit` (at most 500) and
/// `cursor`: the answer's `next_cursor` reads the next page, `null` at the end.
#[utoipa::path(get, path = "/api/v1/orgs/{id}/members", operation_id = "list_org_members", tag = "orgs", params(("id" = String, Path), Page),
    responses((status = 200, body = MemberList), NotFound))]
pub(crate) async fn list_members(
    Acting { state, principal }: Acting,
    Path(id): Path<String>,
    ApiQuery(page): ApiQuery<Page>,
) -> ApiResult<Json<MemberList>> {
    Ok(Json(read_members(&state, &principal, id, page).await?))
}

/// A page of the org's members, for every surface that acts with a principal: the store reads
/// one page, however many members the org has.
pub async fn read_members(state: &AppState, principal: &Principal, id: String, page: Page) -> ApiResult<MemberList> {
    let limit = page.limit()?;
    let before: Option<MemberCursor> = page.cursor()?;
    let mut tx = state.store.read().await?;
    let access = org_access(state, tx.as_mut(), principal, &id, Need::Read).await?;
    let rows = tx.members_newest_first(access.org.id, before.map(|c| (c.joined, c.user)), limit + 1).await?;
    tx.rollback().await?;
    let (rows, next_cursor) = paginate(rows, limit, |m| MemberCursor { joined: m.created_at, user: m.user_id });
    Ok(MemberList { items: rows.iter().map(MemberView::from).collect(), next_cursor })
}

/// Where a page of members ends: when the last one joined, and who it is.
struct MemberCursor {
    joined: OffsetDateTime,
    user: UserId,
}

impl std::fmt::Display for MemberCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}~{}", self.joined.unix_timestamp_nanos() / 1000, self.user)
    }
}

impl std::str::FromStr for MemberCursor {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        let (micros, user) = s.split_once('~').ok_or(())?;
        let nanos = micros.parse::<i128>().map_err(drop)? * 1000;
        let joined = OffsetDateTime::from_unix_timestamp_nanos(nanos).map_err(drop)?;
        Ok(MemberCursor { joined, user: user.parse().map_err(drop)? })
    }
}

/// A role to put on a member.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberRole {
    /// `admin`, `member`, `accountant` or `viewer`; never `owner` (transfer ownership instead).
    #[schema(value_type = crate::schema::OrgRoleSchema)]
    pub role: OrgRole,
}

/// Add a member or change their role
///
/// Adds a member or changes their role. A member's role is replaced by the one sent.
#[utoipa::path(put, path = "/api/v1/orgs/{id}/members/{user_id}", operation_id = "put_org_member", tag = "orgs", params(("id" = String, Path),
    ("user_id" = String, Path)), request_body = MemberRole, responses((status = 200, body = MemberView), BadRequest,
    Forbidden, NotFound, Conflict))]
pub(crate) async fn put_member(
    Acting { state, principal }: Acting,
    Path((id, user_id)): Path<(String, String)>,
    ApiJson(req): ApiJson<MemberRole>,
) -> ApiResult<Json<MemberView>> {
    Ok(Json(set_member_role(&state, &principal, (id, user_id), req).await?))
}

/// Gives a member of the org `id` a role, for every surface that acts with a principal.
pub async fn set_member_role(
    state: &AppState,
    principal: &Principal,
    (id, user_id): (String, String),
    req: MemberRole,
) -> ApiResult<MemberView> {
    let now = state.clock.now();
    let mut tx = state.store.write().await?;
    let access = org_access(state, tx.as_mut(), principal, &id, Need::Manage).await?;
    let user_id: UserId = user_id.parse().map_err(|_| ApiError::not_found("user"))?;
    let rules = steward_ops::orgs::rules_view_of(tx.as_mut(), &access.org, &[user_id]).await?;
    // An org's admins add existing users by invitation only, accepted by that user; to them an
    // unknown id and someone else's user answer alike.
    if rules.member(user_id).is_none() && !principal.has(Permission::OrgsWrite) {
        return Err(ApiError::not_found("member of this organization; invite people who are not members yet"));
    }
    let user = tx.user(user_id).await?.ok_or_else(|| ApiError::not_found("user"))?;
    let (change, event) = org::set_member_role(&rules, user_id, user.status, req.role, principal.actor())?;
    if change == RoleChange::Added {
        check_seats(tx.as_mut(), &access.org, now).await?;
    }
    match change {
        RoleChange::Added => tx.insert_membership(access.org.id, user_id, req.role, now).await?,
        RoleChange::Changed { .. } => tx.set_membership_role(access.org.id, user_id, req.role).await?,
        RoleChange::Unchanged => {}
    }
    let member = tx
        .member(access.org.id, user_id)
        .await?
        .ok_or_else(|| ApiError::internal("membership vanished inside its own transaction"))?;
    state.commit(tx, event.into_iter().collect(), now).await?;
    Ok(MemberView::from(&member))
}

/// Remove a member
///
/// Ends a membership; the row stays as history. The owner cannot be removed. A member may remove
/// themselves. The member's teams in the org end with the membership.
#[utoipa::path(delete, path = "/api/v1/orgs/{id}/members/{user_id}", operation_id = "remove_org_member", tag = "orgs", params(("id" = String, Path),
    ("user_id" = String, Path)), responses((status = 204), Forbidden, NotFound, Conflict))]
pub(crate) async fn delete_member(
    Acting { state, principal }: Acting,
    Path((id, user_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    remove_member(&state, &principal, (id, user_id)).await
}

/// Ends a membership of the org `id` (one's own, or any for its managers), for every surface.
pub async fn remove_member(
    state: &AppState,
    principal: &Principal,
    (id, user_id): (String, String),
) -> ApiResult<StatusCode> {
    let now = state.clock.now();
    let user_id: UserId = user_id.parse().map_err(|_| ApiError::not_found("member"))?;
    let mut tx = state.store.write().await?;
    let need = if user_id == principal.user.id { Need::Read } else { Need::Manage };
    let access = org_access(state, tx.as_mut(), principal, &id, need).await?;
    let rules = steward_ops::orgs::rules_view_of(tx.as_mut(), &access.org, &[user_id]).await?;
    if rules.member(user_id).is_none() {
        return Err(ApiError::not_found("member"));
    }
    let event = org::remove_member(&rules, user_id, principal.actor())?;
    tx.end_membership(access.org.id, user_id, now).await?;
    state.commit(tx, vec![event], now).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Whom to hand ownership to.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferRequest {
    /// An active member of the org.
    pub new_owner_id: String,
    /// The role the previous owner keeps (default `admin`).
    #[schema(value_type = Option<String>)]
    pub previous_owner_role: Option<OrgRole>,
}

/// Transfer an org's ownership
///
/// Hands ownership to another active member; the previous owner stays a member. There is one owner
/// at any time.
#[utoipa::path(post, path = "/api/v1/orgs/{id}/transfer-ownership", operation_id = "transfer_org_ownership", tag = "orgs", request_body = TransferRequest,
    responses((status = 200, body = OrgView), BadRequest, Forbidden, NotFound, Conflict))]
pub(crate) async fn transfer_ownership(
    Acting { state, principal }: Acting,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<TransferRequest>,
) -> ApiResult<Json<OrgView>> {
    Ok(Json(transfer(&state, &principal, id, req).await?))
}

/// Hands the org `id` to another active member, for every surface that acts with a principal.
pub async fn transfer(state: &AppState, principal: &Principal, id: String, req: TransferRequest) -> ApiResult<OrgView> {
    let now = state.clock.now();
    let new_owner_id: UserId =
        req.new_owner_id.parse().map_err(|_| ApiError::invalid("new_owner_id", "is not a user id"))?;
    let mut tx = state.store.write().await?;
    let access = org_access(state, tx.as_mut(), principal, &id, Need::Own).await?;
    let new_owner = tx.user(new_owner_id).await?.ok_or_else(|| {
        ApiError::conflict("invalid_transition", "the new owner must be an active member of the organization")
    })?;
    let rules = steward_ops::orgs::rules_view_of(tx.as_mut(), &access.org, &[new_owner_id]).await?;
    let previous_role = req.previous_owner_role.unwrap_or(OrgRole::Admin);
    let (transfer, event) =
        org::transfer_ownership(&rules, new_owner_id, new_owner.status, previous_role, principal.actor())?;
    tx.set_membership_role(access.org.id, transfer.previous_owner_id, transfer.previous_owner_role).await?;
    tx.set_membership_role(access.org.id, transfer.new_owner_id, OrgRole::Owner).await?;
    let mut org = access.org;
    org.owner_id = transfer.new_owner_id;
    org.updated_at = now;
    tx.update_org(&org).await?;
    org.version += 1;
    let view = org_view(tx.as_mut(), &org, state.clock.now()).await?;
    state.commit(tx, vec![event], now).await?;
    Ok(view)
}

/// Get an org's license
///
/// Reads an organization's license. Absent or null limits are unlimited.
#[utoipa::path(get, path = "/api/v1/orgs/{id}/license", operation_id = "get_org_license", tag = "licenses",
    responses((status = 200, body = LicenseSchema), NotFound))]
async fn get_license(Acting { state, principal }: Acting, Path(id): Path<String>) -> ApiResult<Json<License>> {
    let mut tx = state.store.read().await?;
    let access = org_access(&state, tx.as_mut(), &principal, &id, Need::Read).await?;
    tx.rollback().await?;
    Ok(Json(access.org.license))
}

async fn change_license(
    state: &AppState,
    principal: &Principal,
    id: &str,
    headers: &HeaderMap,
    make: impl FnOnce(&License) -> ApiResult<License>,
) -> ApiResult<License> {
    let now = state.clock.now();
    let mut tx = state.store.write().await?;
    let access = org_access(state, tx.as_mut(), principal, id, Need::License).await?;
    check_if_match(headers, access.org.version)?;
    let mut org = access.org;
    let before = org.license.clone();
    org.license = make(&before)?;
    if org.license == before {
        tx.rollback().await?;
        return Ok(before);
    }
    let clock = state.clock.now();
    let was = OrgRow { license: before.clone(), ..org.clone() };
    let was_frozen = steward_ops::orgs::frozen_now(tx.as_mut(), &was, clock).await?;
    org.updated_at = now;
    tx.update_org(&org).await?;
    let is_frozen = steward_ops::orgs::frozen_now(tx.as_mut(), &org, clock).await?;
    let mut events = vec![
        AuditDraft::new("org.license_changed", principal.actor(), TargetType::Org, org.id)
            .in_org(org.id)
            .detail(json!({ "before": before, "after": org.license })),
    ];
    if was_frozen != is_frozen {
        let kind = if is_frozen { "org.frozen" } else { "org.unfrozen" };
        events.push(
            AuditDraft::new(kind, principal.actor(), TargetType::Org, org.id)
                .in_org(org.id)
                .detail(json!({ "cause": "license" })),
        );
    }
    state.commit(tx, events, now).await?;
    Ok(org.license)
}

/// Replace an org's license
///
/// Replaces an organization's license; absent fields become unlimited. Needs `licenses.write`.
/// `If-Match: "<version>"` makes the change conditional (412 `precondition_failed` when the
/// resource moved on).
#[utoipa::path(put, path = "/api/v1/orgs/{id}/license", operation_id = "put_org_license", tag = "licenses", request_body = LicenseSchema,
    responses((status = 200, body = LicenseSchema), BadRequest, Forbidden, NotFound, PreconditionFailed))]
async fn put_license(
    Acting { state, principal }: Acting,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(license): ApiJson<License>,
) -> ApiResult<Json<License>> {
    let license = license.validated()?;
    change_license(&state, &principal, &id, &headers, |_| Ok(license)).await.map(Json)
}

/// Update an org's license
///
/// Merges fields into an organization's license (JSON merge patch; null makes a limit unlimited).
/// Needs `licenses.write`. A field left out stays as it is. `If-Match: "<version>"` makes the
/// change conditional (412 `precondition_failed` when the resource moved on).
#[utoipa::path(patch, path = "/api/v1/orgs/{id}/license", operation_id = "patch_org_license", tag = "licenses", request_body = crate::schema::LicensePatchSchema,
    responses((status = 200, body = LicenseSchema), BadRequest, Forbidden, NotFound, PreconditionFailed))]
pub(crate) async fn patch_license(
    Acting { state, principal }: Acting,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(patch): ApiJson<serde_json::Value>,
) -> ApiResult<Json<License>> {
    Ok(Json(merge_license(&state, &principal, &id, &headers, &patch).await?))
}

/// Merges `patch` into the org's license (`If-Match` in `headers` makes it conditional), for
/// every surface that acts with a principal.
pub async fn merge_license(
    state: &AppState,
    principal: &Principal,
    id: &str,
    headers: &HeaderMap,
    patch: &serde_json::Value,
) -> ApiResult<License> {
    change_license(state, principal, id, headers, |before| Ok(before.merged(patch)?)).await
}

/// Err(409 `limit_reached`) when the org has no free seat under its license's `users`.
pub async fn check_seats(tx: &mut dyn Tx, org: &OrgRow, now: OffsetDateTime) -> ApiResult<()> {
    if let Some(limit) = org.license.users
        && tx.seats_in_use(org.id, now).await? >= limit
    {
        return Err(ApiError::conflict("limit_reached", format!("the license allows {limit} users")));
    }
    Ok(())
}
