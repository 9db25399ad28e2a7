//! The lifecycle of a customer: deprovision an org (freeze it, hand it to the placeholder owner,
//! demote the owner, silence notifications) and restore it exactly as it was.

use axum::Json;
use axum::extract::Path;
use serde::{Deserialize, Serialize};
use steward_core::{OrgRole, Permission};
use steward_ops::orgs::{Deprovision, Deprovisioned};
use steward_store::OrgRow;
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::declared::{BadRequest, Conflict, Forbidden, NotFound};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Acting, ApiJson, ApiQuery, Page, Principal, encode_cursor};
use crate::routes::orgs::{Need, org_access};
use crate::state::AppState;
use crate::views::OrgView;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(deprovision)).routes(routes!(restore)).routes(routes!(records))
}

/// A deprovisioning.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeprovisionRequest {
    /// Why; kept with the record.
    pub reason: String,
    /// Return the plan and change nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Another placeholder owner than the instance's.
    pub placeholder_owner_id: Option<String>,
    /// The former owner's new role (default `member`).
    #[schema(value_type = Option<String>)]
    pub demote_to: Option<OrgRole>,
    /// Switch off the members' notification emails (default true).
    pub notifications_off: Option<bool>,
}

/// What a deprovisioning did, or would do.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeprovisionResult {
    /// The record restore uses; null for a dry run.
    pub record_id: Option<String>,
    pub plan: Vec<String>,
    pub applied: bool,
}

/// Deprovision an org
///
/// Deprovisions an org in one transaction: consumables to 0, ownership to the placeholder owner,
/// the former owner demoted, the members' notifications off. `dry_run` changes nothing. Needs
/// `orgs.lifecycle`. The members keep their accounts and history; a restore puts everything back.
#[utoipa::path(post, path = "/api/v1/orgs/{id}/deprovision", operation_id = "deprovision_org", tag = "customer lifecycle",
    request_body = DeprovisionRequest, responses((status = 200, body = DeprovisionResult), BadRequest, Forbidden,
    NotFound, Conflict))]
pub(crate) async fn deprovision(
    Acting { state, principal }: Acting,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<DeprovisionRequest>,
) -> ApiResult<Json<DeprovisionResult>> {
    let placeholder_owner = match &req.placeholder_owner_id {
        Some(p) => Some(p.parse().map_err(|_| ApiError::invalid("placeholder_owner_id", "is not a user id"))?),
        None => None,
    };
    let asked = Deprovision {
        reason: &req.reason,
        placeholder_owner,
        demote_to: req.demote_to.unwrap_or(OrgRole::Member),
        notifications_off: req.notifications_off.unwrap_or(true),
        dry_run: req.dry_run,
    };
    let done = deprovision_org(&state, &principal, &id, asked).await?;
    let record_id = done.record_id.map(|r| r.to_string());
    Ok(Json(DeprovisionResult { applied: record_id.is_some(), record_id, plan: done.steps }))
}

/// Deprovisions the org `id` as `principal` asks, from any surface: their permission and their
/// access to the org are checked, then [`steward_ops::orgs::deprovision`] does it.
pub async fn deprovision_org(
    state: &AppState,
    principal: &Principal,
    id: &str,
    asked: Deprovision<'_>,
) -> ApiResult<Deprovisioned> {
    principal.require(Permission::OrgsLifecycle)?;
    let mut tx = state.store.write().await?;
    let org = org_access(state, tx.as_mut(), principal, id, Need::Lifecycle).await?.org;
    let (actor, now) = (principal.actor(), state.clock.now());
    Ok(steward_ops::orgs::deprovision(&state.changes, tx, org, asked, actor, now).await?)
}

/// Restores the org `id` as `principal` asks, from any surface: their permission and their
/// access to the org are checked, then [`steward_ops::orgs::restore`] does it.
pub async fn restore_org(state: &AppState, principal: &Principal, id: &str, record: Option<&str>) -> ApiResult<OrgRow> {
    principal.require(Permission::OrgsLifecycle)?;
    let mut tx = state.store.write().await?;
    let org = org_access(state, tx.as_mut(), principal, id, Need::Lifecycle).await?.org;
    let (actor, now) = (principal.actor(), state.clock.now());
    Ok(steward_ops::orgs::restore(&state.changes, tx, org, record, actor, now).await?)
}

/// Which deprovisioning to undo.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreRequest {
    /// Default: the latest one not yet restored.
    pub record_id: Option<String>,
}

/// Restore a deprovisioned org
///
/// Restores a deprovisioned org: license, owner, roles and notification settings come back as they
/// were just before the deprovisioning. Needs `orgs.lifecycle`.
#[utoipa::path(post, path = "/api/v1/orgs/{id}/restore", operation_id = "restore_org", tag = "customer lifecycle", request_body = RestoreRequest,
    responses((status = 200, body = OrgView), Forbidden, NotFound, Conflict))]
pub(crate) async fn restore(
    Acting { state, principal }: Acting,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Json<OrgView>> {
    // Who acts is checked before what they sent is read (restore_org asks again).
    principal.require(Permission::OrgsLifecycle)?;
    let req: RestoreRequest = if body.iter().all(u8::is_ascii_whitespace) {
        RestoreRequest::default()
    } else {
        crate::extract::parse_json(&body)?
    };
    let org = restore_org(&state, &principal, &id, req.record_id.as_deref()).await?;
    let mut tx = state.store.read().await?;
    let view = crate::views::org_view(tx.as_mut(), &org, state.clock.now()).await?;
    tx.rollback().await?;
    Ok(Json(view))
}

/// A deprovisioning and whether it was restored.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeprovisionRecordView {
    pub id: String,
    pub org_id: String,
    pub reason: String,
    /// License, owner, roles and notification settings as they were before.
    #[schema(value_type = Object)]
    pub snapshot: serde_json::Value,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    pub created_by: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub restored_at: Option<OffsetDateTime>,
    pub restored_by: Option<String>,
}

impl From<steward_store::DeprovisionRow> for DeprovisionRecordView {
    fn from(r: steward_store::DeprovisionRow) -> Self {
        DeprovisionRecordView {
            id: r.id.to_string(),
            org_id: r.org_id.to_string(),
            reason: r.reason,
            snapshot: r.snapshot,
            created_at: r.created_at,
            created_by: r.created_by.map(|u| u.to_string()),
            restored_at: r.restored_at,
            restored_by: r.restored_by.map(|u| u.to_string()),
        }
    }
}

/// A page of deprovision records.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeprovisionRecordList {
    pub items: Vec<DeprovisionRecordView>,
    pub next_cursor: Option<String>,
}

/// List deprovision records
///
/// The history of an org's deprovisionings and restorations, newest first. Needs `orgs.read`.
#[utoipa::path(get, path = "/api/v1/orgs/{id}/deprovision-records", operation_id = "list_deprovision_records", tag = "customer lifecycle",
    params(("id" = String, Path), Page), responses((status = 200, body = DeprovisionRecordList), Forbidden, NotFound))]
pub(crate) async fn records(
    Acting { state, principal }: Acting,
    Path(id): Path<String>,
    ApiQuery(page): ApiQuery<Page>,
) -> ApiResult<Json<DeprovisionRecordList>> {
    Ok(Json(read_records(&state, &principal, id, page).await?))
}

/// The org's deprovisioning records, newest first, for every surface that acts with a principal.
pub async fn read_records(
    state: &AppState,
    principal: &Principal,
    id: String,
    page: Page,
) -> ApiResult<DeprovisionRecordList> {
    principal.require(Permission::OrgsRead)?;
    let limit = page.limit()? as usize;
    let offset: usize = page.cursor()?.unwrap_or(0);
    let mut tx = state.store.read().await?;
    let access = org_access(state, tx.as_mut(), principal, &id, Need::Read).await?;
    let rows = tx.deprovisions_of(access.org.id).await?;
    tx.rollback().await?;
    let next_cursor = (offset + limit < rows.len()).then(|| encode_cursor(offset + limit));
    let items = rows.into_iter().skip(offset).take(limit).map(DeprovisionRecordView::from).collect();
    Ok(DeprovisionRecordList { items, next_cursor })
}
