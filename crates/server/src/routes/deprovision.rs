//! The lifecycle of a customer: deprovision an org (freeze it, hand it to the placeholder owner,
//! demote the owner, silence notifications) and restore it exactly as it was.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use serde_json::json;
use steward_core::lifecycle::{Snapshot, all_notifications_off, plan_deprovision};
use steward_core::{AuditDraft, OrgRole, Permission, TargetType, UserId};
use steward_store::DeprovisionRow;
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiJson, ApiQuery, Page, Principal, encode_cursor};
use crate::routes::orgs::{Need, org_access, rules_view};
use crate::service::ensure_placeholder;
use crate::state::{AppState, commit};
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

/// Deprovisions an org in one transaction: consumables to 0, ownership to the placeholder owner,
/// the former owner demoted, the members' notifications off. `dry_run` changes nothing.
#[utoipa::path(post, path = "/api/v1/orgs/{id}/deprovision", tag = "customer lifecycle", params(("id" = String, Path)),
    request_body = DeprovisionRequest,
    responses((status = 200, body = DeprovisionResult), (status = 400, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem)))]
pub(crate) async fn deprovision(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<DeprovisionRequest>,
) -> ApiResult<Json<DeprovisionResult>> {
    principal.require(Permission::OrgsLifecycle)?;
    let reason = req.reason.trim();
    if reason.is_empty() || reason.chars().count() > 1000 {
        return Err(ApiError::invalid("reason", "is required (1 to 1000 characters)"));
    }
    let demote_to = req.demote_to.unwrap_or(OrgRole::Member);
    let notifications_off = req.notifications_off.unwrap_or(true);
    let now = OffsetDateTime::now_utc();
    let actor = principal.actor();
    let mut tx = state.store.write().await?;
    let access = org_access(&state, tx.as_mut(), &principal, &id, Need::Lifecycle).await?;
    let mut org = access.org;
    let mut events = Vec::new();
    let placeholder = match &req.placeholder_owner_id {
        Some(p) => {
            let pid: UserId = p.parse().map_err(|_| ApiError::invalid("placeholder_owner_id", "is not a user id"))?;
            let u = tx.user(pid).await?.ok_or_else(|| ApiError::invalid("placeholder_owner_id", "no such user"))?;
            if !u.status.can_sign_in() {
                return Err(ApiError::invalid("placeholder_owner_id", "must be an active user"));
            }
            u.id
        }
        None if req.dry_run => match tx.placeholder_user().await? {
            Some(u) => u.id,
            None => UserId::from_uuid(uuid::Uuid::nil()),
        },
        None => {
            let (u, created) = ensure_placeholder(tx.as_mut(), actor, now).await?;
            events.extend(created);
            u.id
        }
    };
    let rules = rules_view(tx.as_mut(), &org).await?;
    let mut settings = BTreeMap::new();
    for m in &rules.members {
        if let Some(u) = tx.user(m.user_id).await? {
            settings.insert(u.id, u.notifications);
        }
    }
    let plan = plan_deprovision(&rules, org.state, &org.license, placeholder, demote_to, notifications_off, &settings)?;
    if req.dry_run {
        tx.rollback().await?;
        return Ok(Json(DeprovisionResult { record_id: None, plan: plan.steps, applied: false }));
    }
    let former_owner = org.owner_id;
    events.push(
        crate::service::move_ownership(tx.as_mut(), &mut org, placeholder, demote_to, actor, "deprovisioning", now)
            .await?,
    );
    org.license = plan.license.clone();
    org.state = steward_core::OrgState::Deprovisioned;
    org.updated_at = now;
    tx.update_org(&org).await?;
    for uid in &plan.silenced {
        if let Some(mut u) = tx.user(*uid).await? {
            u.notifications = all_notifications_off();
            u.updated_at = now;
            tx.update_user(&u).await?;
        }
    }
    let record = DeprovisionRow {
        id: uuid::Uuid::now_v7(),
        org_id: org.id,
        reason: reason.to_owned(),
        snapshot: serde_json::to_value(&plan.snapshot).map_err(ApiError::internal)?,
        created_at: now,
        created_by: Some(principal.user.id),
        restored_at: None,
        restored_by: None,
    };
    tx.insert_deprovision(&record).await?;
    events.push(
        AuditDraft::new("org.deprovisioned", actor, TargetType::Org, org.id)
            .in_org(org.id)
            .detail(json!({
                "record_id": record.id,
                "former_owner_id": former_owner,
                "placeholder_owner_id": placeholder,
                "demoted_to": demote_to,
                "silenced": plan.silenced,
                "license_before": plan.snapshot.license,
                "license_after": plan.license,
            }))
            .personal(json!({ "reason": reason })),
    );
    commit(tx, events, now).await?;
    Ok(Json(DeprovisionResult { record_id: Some(record.id.to_string()), plan: plan.steps, applied: true }))
}

/// Which deprovisioning to undo.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreRequest {
    /// Default: the latest one not yet restored.
    pub record_id: Option<String>,
}

/// Restores a deprovisioned org: license, owner, roles and notification settings come back as
/// they were just before the deprovisioning.
#[utoipa::path(post, path = "/api/v1/orgs/{id}/restore", tag = "customer lifecycle", params(("id" = String, Path)),
    request_body = RestoreRequest,
    responses((status = 200, body = OrgView), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem)))]
pub(crate) async fn restore(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Json<OrgView>> {
    principal.require(Permission::OrgsLifecycle)?;
    let req: RestoreRequest = if body.iter().all(u8::is_ascii_whitespace) {
        RestoreRequest::default()
    } else {
        crate::extract::parse_json(&body)?
    };
    let now = OffsetDateTime::now_utc();
    let mut tx = state.store.write().await?;
    let access = org_access(&state, tx.as_mut(), &principal, &id, Need::Lifecycle).await?;
    let mut org = access.org;
    if org.state != steward_core::OrgState::Deprovisioned {
        return Err(ApiError::conflict(
            "invalid_transition",
            format!("the organization is {}, not deprovisioned", org.state),
        ));
    }
    let records = tx.deprovisions_of(org.id).await?;
    let record = match &req.record_id {
        Some(r) => records
            .into_iter()
            .find(|x| x.id.to_string() == *r)
            .ok_or_else(|| ApiError::not_found("deprovision record"))?,
        None => records
            .into_iter()
            .find(|x| x.restored_at.is_none())
            .ok_or_else(|| ApiError::not_found("deprovision record"))?,
    };
    if record.restored_at.is_some() {
        return Err(ApiError::conflict("invalid_transition", "that deprovisioning was already restored"));
    }
    let snapshot: Snapshot = serde_json::from_value(record.snapshot.clone()).map_err(ApiError::internal)?;
    let members = tx.members(org.id).await?;
    // Whoever holds ownership now steps down first, so that the org never has two owners.
    let holder = org.owner_id;
    match snapshot.roles.get(&holder) {
        Some(role) if *role != OrgRole::Owner => tx.set_membership_role(org.id, holder, *role).await?,
        Some(_) => {}
        None => tx.end_membership(org.id, holder, now).await?,
    }
    for m in &members {
        if m.user_id == holder || m.user_id == snapshot.owner_id {
            continue;
        }
        if let Some(role) = snapshot.roles.get(&m.user_id)
            && *role != m.role
        {
            tx.set_membership_role(org.id, m.user_id, *role).await?;
        }
    }
    if members.iter().any(|m| m.user_id == snapshot.owner_id) {
        if holder != snapshot.owner_id {
            tx.set_membership_role(org.id, snapshot.owner_id, OrgRole::Owner).await?;
        }
    } else {
        tx.insert_membership(org.id, snapshot.owner_id, OrgRole::Owner, now).await?;
    }
    for (uid, settings) in &snapshot.notifications {
        if let Some(mut u) = tx.user(*uid).await? {
            u.notifications = settings.clone();
            u.updated_at = now;
            tx.update_user(&u).await?;
        }
    }
    org.owner_id = snapshot.owner_id;
    org.license = snapshot.license.clone();
    org.state = steward_core::OrgState::Active;
    org.updated_at = now;
    tx.update_org(&org).await?;
    org.version += 1;
    tx.close_deprovision(record.id, now, Some(principal.user.id)).await?;
    let event = AuditDraft::new("org.restored", principal.actor(), TargetType::Org, org.id)
        .in_org(org.id)
        .detail(json!({ "record_id": record.id, "owner_id": snapshot.owner_id, "license": snapshot.license }));
    let view = crate::routes::usage::org_view(tx.as_mut(), &org, state.clock.now()).await?;
    commit(tx, vec![event], now).await?;
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
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    pub created_by: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
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

/// The history of an org's deprovisionings and restorations, newest first.
#[utoipa::path(get, path = "/api/v1/orgs/{id}/deprovision-records", tag = "customer lifecycle", params(("id" = String, Path), Page),
    responses((status = 200, body = DeprovisionRecordList), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub(crate) async fn records(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    ApiQuery(page): ApiQuery<Page>,
) -> ApiResult<Json<DeprovisionRecordList>> {
    principal.require(Permission::OrgsRead)?;
    let limit = page.limit()? as usize;
    let offset: usize = page.cursor()?.unwrap_or(0);
    let mut tx = state.store.read().await?;
    let access = org_access(&state, tx.as_mut(), &principal, &id, Need::Read).await?;
    let rows = tx.deprovisions_of(access.org.id).await?;
    tx.rollback().await?;
    let next_cursor = (offset + limit < rows.len()).then(|| encode_cursor(offset + limit));
    let items = rows.into_iter().skip(offset).take(limit).map(DeprovisionRecordView::from).collect();
    Ok(Json(DeprovisionRecordList { items, next_cursor }))
}
