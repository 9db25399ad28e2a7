//! Assets: what the operator's product keeps for an org (scenarios, data stores, templates,
//! connections, files), registered so that counts and sizes are held to the license. Assets
//! belong to the org, never to a user, so no lifecycle step can orphan them.

use axum::Json;
use axum::extract::Path;
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::json;
use steward_core::{AuditDraft, License, OrgAction, Permission, TargetType, TeamId};
use steward_store::{AssetRow, AssetTotals, OrgRow, Tx};
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::declared::{BadRequest, Conflict, Forbidden, NotFound, PreconditionFailed};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Acting, ApiJson, ApiQuery, Page, Principal, check_if_match, nullable, paginate};
use crate::routes::orgs::{Need, OrgAccess, org_access};
use crate::routes::usage::MAX_AMOUNT;
use crate::state::AppState;
use steward_ops::orgs::frozen_now;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_assets, create_asset)).routes(routes!(get_asset, patch_asset))
}

/// An asset.
#[derive(Debug, Serialize, ToSchema)]
pub struct AssetView {
    pub id: String,
    pub org_id: String,
    /// `scenario`, `data_store`, `template`, `connection`, `file`, or another kind of the product's.
    pub kind: String,
    pub name: String,
    pub team_id: Option<String>,
    pub size_bytes: u64,
    pub created_by: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    pub version: i64,
}

impl crate::answer::Versioned for AssetView {
    fn version(&self) -> i64 {
        self.version
    }
}

impl From<&AssetRow> for AssetView {
    fn from(a: &AssetRow) -> Self {
        AssetView {
            id: a.id.to_string(),
            org_id: a.org_id.to_string(),
            kind: a.kind.clone(),
            name: a.name.clone(),
            team_id: a.team_id.map(|t| t.to_string()),
            size_bytes: a.size_bytes,
            created_by: a.created_by.map(|u| u.to_string()),
            created_at: a.created_at,
            updated_at: a.updated_at,
            version: a.version,
        }
    }
}

/// A page of assets.
#[derive(Debug, Serialize, ToSchema)]
pub struct AssetList {
    pub items: Vec<AssetView>,
    pub next_cursor: Option<String>,
}

/// List an org's assets
///
/// Lists an org's assets, newest first; frozen orgs too. Pages with `limit` (at most 500) and
/// `cursor`: the answer's `next_cursor` reads the next page, `null` at the end.
#[utoipa::path(get, path = "/api/v1/orgs/{id}/assets", tag = "assets", params(("id" = String, Path), Page),
    responses((status = 200, body = AssetList), NotFound))]
async fn list_assets(
    Acting { state, principal }: Acting,
    Path(id): Path<String>,
    ApiQuery(page): ApiQuery<Page>,
) -> ApiResult<Json<AssetList>> {
    let limit = page.limit()?;
    let mut tx = state.store.read().await?;
    let access = org_access(&state, tx.as_mut(), &principal, &id, Need::Read).await?;
    let rows = tx.assets_of_org(access.org.id, page.cursor()?, limit + 1).await?;
    tx.rollback().await?;
    let (rows, next_cursor) = paginate(rows, limit, |a| a.id);
    Ok(Json(AssetList { items: rows.iter().map(AssetView::from).collect(), next_cursor }))
}

/// A new asset.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAsset {
    pub kind: String,
    pub name: String,
    pub team_id: Option<String>,
    #[serde(default)]
    pub size_bytes: u64,
}

fn check_kind(kind: &str) -> ApiResult<()> {
    let ok = (1..=32).contains(&kind.len()) && kind.chars().all(|c| c.is_ascii_lowercase() || c == '_');
    if ok { Ok(()) } else { Err(ApiError::invalid("kind", "must be 1 to 32 lower-case letters or _")) }
}

fn check_name(name: &str) -> ApiResult<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(ApiError::invalid("name", "must be 1 to 200 characters"));
    }
    Ok(name.to_owned())
}

/// Writes need the asset.write right and an org that is not frozen.
async fn writable(tx: &mut dyn Tx, principal: &Principal, access: &OrgAccess, now: OffsetDateTime) -> ApiResult<()> {
    let allowed = principal.has(Permission::OrgsWrite) || access.role.is_some_and(|r| r.allows(OrgAction::AssetWrite));
    if !allowed {
        return Err(ApiError::forbidden("writing assets needs the owner, admin or member role"));
    }
    if frozen_now(tx, &access.org, now).await? {
        return Err(ApiError::conflict(
            "org_frozen",
            "the organization is frozen: its assets can be read, not changed",
        ));
    }
    Ok(())
}

/// Err(409 `limit_reached`) when going from `before` to `after` grows something past the
/// license (an org already over a lowered limit may still shrink).
fn within_license(license: &License, before: &AssetTotals, after: &AssetTotals) -> ApiResult<()> {
    let checks = [
        ("data_stores", license.data_stores, before.data_stores, after.data_stores),
        ("data_store_bytes", license.data_store_bytes, before.data_store_bytes, after.data_store_bytes),
        ("scenarios", license.scenarios, before.scenarios, after.scenarios),
        ("file_bytes", license.file_bytes, before.file_bytes, after.file_bytes),
    ];
    for (name, limit, was, used) in checks {
        if let Some(l) = limit
            && used > l
            && used > was
        {
            return Err(ApiError::conflict("limit_reached", format!("the license allows {name} up to {l}")));
        }
    }
    Ok(())
}

/// What the org would hold with `old` replaced by `new`.
fn totals_after(mut t: AssetTotals, old: Option<&AssetRow>, new: &AssetRow) -> AssetTotals {
    let apply = |t: &mut AssetTotals, a: &AssetRow, sign: i128| {
        let add = |v: &mut u64, d: u64| *v = (i128::from(*v) + sign * i128::from(d)).max(0) as u64;
        match a.kind.as_str() {
            "data_store" => {
                add(&mut t.data_stores, 1);
                add(&mut t.data_store_bytes, a.size_bytes);
            }
            "scenario" => add(&mut t.scenarios, 1),
            "file" => add(&mut t.file_bytes, a.size_bytes),
            _ => {}
        }
    };
    if let Some(o) = old {
        apply(&mut t, o, -1);
    }
    apply(&mut t, new, 1);
    t
}

async fn team_of(tx: &mut dyn Tx, org: &OrgRow, team: Option<&str>) -> ApiResult<Option<TeamId>> {
    let Some(team) = team else { return Ok(None) };
    let found = match team.parse::<TeamId>() {
        Ok(t) => tx.team(t).await?,
        Err(_) => None,
    };
    match found {
        Some(t) if t.org_id == org.id => Ok(Some(t.id)),
        _ => Err(ApiError::invalid("team_id", "is not a team of this organization")),
    }
}

/// Register an asset
///
/// Registers an asset; its count and size are checked against the license. Answers 201 with
/// `Location`; 409 `limit_reached` past the license's capacity, 409 `org_frozen` for a frozen org.
#[utoipa::path(post, path = "/api/v1/orgs/{id}/assets", tag = "assets", request_body = NewAsset,
    responses((status = 201, body = AssetView), BadRequest, Forbidden, NotFound, Conflict))]
async fn create_asset(
    Acting { state, principal }: Acting,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<NewAsset>,
) -> ApiResult<crate::answer::Created<AssetView>> {
    check_kind(&req.kind)?;
    let name = check_name(&req.name)?;
    if req.size_bytes > MAX_AMOUNT {
        return Err(ApiError::invalid("size_bytes", format!("must be at most {MAX_AMOUNT}")));
    }
    let now = state.clock.now();
    let mut tx = state.store.write().await?;
    let access = org_access(&state, tx.as_mut(), &principal, &id, Need::Read).await?;
    writable(tx.as_mut(), &principal, &access, now).await?;
    let asset = AssetRow {
        id: uuid::Uuid::now_v7(),
        org_id: access.org.id,
        kind: req.kind.clone(),
        name,
        team_id: team_of(tx.as_mut(), &access.org, req.team_id.as_deref()).await?,
        size_bytes: req.size_bytes,
        created_by: Some(principal.user.id),
        created_at: now,
        updated_at: now,
        version: 1,
    };
    let totals = tx.asset_totals(access.org.id).await?;
    within_license(&access.org.license, &totals, &totals_after(totals, None, &asset))?;
    tx.insert_asset(&asset).await?;
    let event = AuditDraft::new("asset.created", principal.actor(), TargetType::Org, access.org.id)
        .in_org(access.org.id)
        .detail(json!({ "asset_id": asset.id, "kind": asset.kind, "size_bytes": asset.size_bytes }))
        .personal(json!({ "name": asset.name }));
    state.commit(tx, vec![event], now).await?;
    Ok(crate::answer::Created::at(format!("/api/v1/assets/{}", asset.id), AssetView::from(&asset)))
}

async fn load_asset(
    state: &AppState,
    tx: &mut dyn Tx,
    principal: &Principal,
    id: &str,
) -> ApiResult<(AssetRow, OrgAccess)> {
    let id: uuid::Uuid = id.parse().map_err(|_| ApiError::not_found("asset"))?;
    let asset = tx.asset(id).await?.ok_or_else(|| ApiError::not_found("asset"))?;
    let access = org_access(state, tx, principal, &asset.org_id.to_string(), Need::Read)
        .await
        .map_err(|e| if e.code() == "not_found" { ApiError::not_found("asset") } else { e })?;
    Ok((asset, access))
}

/// Get an asset
///
/// Reads an asset (frozen orgs too). Answers `ETag: "<version>"`; a `GET` with `If-None-Match`
/// naming it answers 304 while the resource is unchanged.
#[utoipa::path(get, path = "/api/v1/assets/{id}", tag = "assets", responses((status = 200, body = AssetView),
    NotFound))]
async fn get_asset(
    Acting { state, principal }: Acting,
    Path(id): Path<String>,
) -> ApiResult<crate::answer::Tagged<AssetView>> {
    let mut tx = state.store.read().await?;
    let (asset, _) = load_asset(&state, tx.as_mut(), &principal, &id).await?;
    tx.rollback().await?;
    Ok(crate::answer::Tagged(AssetView::from(&asset)))
}

/// Changes to an asset.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssetPatch {
    pub kind: Option<String>,
    pub name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub team_id: Option<Option<String>>,
    pub size_bytes: Option<u64>,
}

/// Update an asset
///
/// Changes an asset; sizes are checked against the license. `If-Match` makes it conditional.
/// Answers `ETag: "<version>"`; a `GET` with `If-None-Match` naming it answers 304 while the
/// resource is unchanged.
#[utoipa::path(patch, path = "/api/v1/assets/{id}", tag = "assets", request_body = AssetPatch,
    responses((status = 200, body = AssetView), BadRequest, Forbidden, NotFound, Conflict, PreconditionFailed))]
async fn patch_asset(
    Acting { state, principal }: Acting,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(patch): ApiJson<AssetPatch>,
) -> ApiResult<crate::answer::Tagged<AssetView>> {
    if let Some(k) = &patch.kind {
        check_kind(k)?;
    }
    if patch.size_bytes.is_some_and(|s| s > MAX_AMOUNT) {
        return Err(ApiError::invalid("size_bytes", format!("must be at most {MAX_AMOUNT}")));
    }
    let now = state.clock.now();
    let mut tx = state.store.write().await?;
    let (before, access) = load_asset(&state, tx.as_mut(), &principal, &id).await?;
    writable(tx.as_mut(), &principal, &access, now).await?;
    check_if_match(&headers, before.version)?;
    let mut asset = before.clone();
    if let Some(k) = patch.kind {
        asset.kind = k;
    }
    if let Some(n) = &patch.name {
        asset.name = check_name(n)?;
    }
    if let Some(team) = &patch.team_id {
        asset.team_id = team_of(tx.as_mut(), &access.org, team.as_deref()).await?;
    }
    if let Some(s) = patch.size_bytes {
        asset.size_bytes = s;
    }
    if asset == before {
        tx.rollback().await?;
        return Ok(crate::answer::Tagged(AssetView::from(&asset)));
    }
    let totals = tx.asset_totals(access.org.id).await?;
    within_license(&access.org.license, &totals, &totals_after(totals, Some(&before), &asset))?;
    asset.updated_at = now;
    tx.update_asset(&asset).await?;
    asset.version += 1;
    let event = AuditDraft::new("asset.updated", principal.actor(), TargetType::Org, access.org.id)
        .in_org(access.org.id)
        .detail(json!({ "asset_id": asset.id, "kind": asset.kind, "size_bytes": asset.size_bytes }));
    state.commit(tx, vec![event], now).await?;
    Ok(crate::answer::Tagged(AssetView::from(&asset)))
}
