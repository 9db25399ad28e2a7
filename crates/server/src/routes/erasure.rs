//! Data export and erasure: the org's bundle, streamed page by page so that memory stays flat
//! whatever the org's size; the purge of a long-deprovisioned org; the org's own audit view.

use std::sync::Arc;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use serde_json::json;
use steward_core::{AuditDraft, OrgAction, OrgId, Permission, TargetType, TeamId, UserId, UserStatus};
use steward_store::{AuditFilter, Store};
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::declared::{BadRequest, Conflict, Forbidden, NotFound};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Acting, ApiJson, ApiQuery, Page, paginate};
use crate::routes::assets::AssetView;
use crate::routes::deprovision::DeprovisionRecordView;
use crate::routes::orgs::{Need, org_access};
use crate::state::{AppState, instance_settings};
use crate::views::AuditEventView;
use crate::views::{AuditList, MemberView, OrgView, TeamView};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(export)).routes(routes!(purge)).routes(routes!(org_audit))
}

const PAGE: u32 = 500;

/// One usage period in the bundle.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsagePeriodView {
    #[serde(with = "time::serde::rfc3339")]
    pub start: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub end: OffsetDateTime,
    pub operations_used: u64,
    pub transfer_used: u64,
}

impl From<&steward_store::UsageRow> for UsagePeriodView {
    fn from(u: &steward_store::UsageRow) -> Self {
        UsagePeriodView {
            start: u.period_start,
            end: u.period_end,
            operations_used: u.operations_used,
            transfer_used: u.transfer_used,
        }
    }
}

/// The export bundle (documentation of the streamed body).
#[derive(Debug, Serialize, ToSchema)]
pub struct ExportBundle {
    /// `steward-org-export/1`.
    pub format: String,
    #[schema(format = DateTime)]
    pub exported_at: String,
    pub org: OrgView,
    pub members: Vec<MemberView>,
    pub teams: Vec<TeamView>,
    pub assets: Vec<AssetView>,
    pub usage: Vec<UsagePeriodView>,
    pub deprovision_records: Vec<DeprovisionRecordView>,
    /// Newest first.
    pub audit_events: Vec<AuditEventView>,
}

enum Stage {
    Head,
    Members(Option<UserId>),
    Teams(Option<TeamId>),
    Assets(Option<uuid::Uuid>),
    Usage,
    Records,
    Audit(Option<i64>),
    Done,
}

fn json_line<T: Serialize>(first: bool, item: &T) -> Result<Vec<u8>, std::io::Error> {
    let mut out = if first { Vec::new() } else { b",".to_vec() };
    serde_json::to_writer(&mut out, item).map_err(std::io::Error::other)?;
    out.push(b'\n');
    Ok(out)
}

/// Writes a whole list as JSON lines, closes it and opens the one named `next`.
fn whole<'a, T, V: Serialize>(
    out: &mut Vec<u8>,
    items: &'a [T],
    view: impl Fn(&'a T) -> V,
    next: &str,
) -> Result<(), std::io::Error> {
    for (i, item) in items.iter().enumerate() {
        out.extend(json_line(i == 0, &view(item))?);
    }
    out.extend_from_slice(format!("],\n\"{next}\":[\n").as_bytes());
    Ok(())
}

/// Writes one page of a list as JSON lines (`first`: the list's first page). A full page answers
/// the stage reading the one after its last item (`more`); the last page closes the list, opens
/// the one named `next` (none for the last list) and answers `then`.
fn paged<'a, T, V: Serialize>(
    out: &mut Vec<u8>,
    page: &'a [T],
    first: bool,
    view: impl Fn(&'a T) -> V,
    more: impl FnOnce(&'a T) -> Stage,
    next: &str,
    then: Stage,
) -> Result<Stage, std::io::Error> {
    for (i, item) in page.iter().enumerate() {
        out.extend(json_line(first && i == 0, &view(item))?);
    }
    match page.last() {
        Some(last) if page.len() == PAGE as usize => Ok(more(last)),
        _ => {
            if !next.is_empty() {
                out.extend_from_slice(format!("],\n\"{next}\":[\n").as_bytes());
            }
            Ok(then)
        }
    }
}

/// The bundle's opening: its format, the time of export and the org, up to the members' list.
async fn head(tx: &mut dyn steward_store::Tx, org: OrgId, now: OffsetDateTime) -> Result<Vec<u8>, std::io::Error> {
    let row = tx
        .org(org)
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?
        .ok_or_else(|| std::io::Error::other("the org vanished"))?;
    let frozen = steward_ops::orgs::frozen_now(tx, &row, now).await.map_err(std::io::Error::other)?;
    let head = json!({
        "format": "steward-org-export/1",
        "exported_at": now.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
        "org": OrgView::new(&row, frozen),
    });
    let head = serde_json::to_string(&head).map_err(std::io::Error::other)?;
    let mut out = head.strip_suffix('}').unwrap_or(&head).as_bytes().to_vec();
    out.extend_from_slice(b",\n\"members\":[\n");
    Ok(out)
}

async fn next_chunk(
    store: &dyn Store,
    org: OrgId,
    stage: Stage,
    now: OffsetDateTime,
    audit_since: Option<OffsetDateTime>,
) -> Result<(Vec<u8>, Stage), std::io::Error> {
    let io = |e: steward_store::StoreError| std::io::Error::other(e.to_string());
    let mut tx = store.read().await.map_err(io)?;
    let mut out = Vec::new();
    let next = match stage {
        Stage::Head => {
            out.extend(head(tx.as_mut(), org, now).await?);
            Stage::Members(None)
        }
        Stage::Members(after) => {
            let page = tx.members_page(org, after, PAGE).await.map_err(io)?;
            let more = |last: &steward_store::MemberRow| Stage::Members(Some(last.user_id));
            paged(&mut out, &page, after.is_none(), MemberView::from, more, "teams", Stage::Teams(None))?
        }
        Stage::Teams(before) => teams_chunk(tx.as_mut(), org, before, &mut out).await?,
        Stage::Assets(before) => {
            let page = tx.assets_of_org(org, before, PAGE).await.map_err(io)?;
            let more = |last: &steward_store::AssetRow| Stage::Assets(Some(last.id));
            paged(&mut out, &page, before.is_none(), AssetView::from, more, "usage", Stage::Usage)?
        }
        Stage::Usage => {
            let rows = tx.usage_history(org, 10_000).await.map_err(io)?;
            whole(&mut out, &rows, UsagePeriodView::from, "deprovision_records")?;
            Stage::Records
        }
        Stage::Records => {
            let rows = tx.deprovisions_of(org).await.map_err(io)?;
            whole(&mut out, &rows, |r| DeprovisionRecordView::from(r.clone()), "audit_events")?;
            Stage::Audit(None)
        }
        Stage::Audit(before) => audit_chunk(tx.as_mut(), org, audit_since, before, &mut out).await?,
        Stage::Done => Stage::Done,
    };
    tx.rollback().await.map_err(io)?;
    Ok((out, next))
}

/// A page of the org's teams, each with its members.
async fn teams_chunk(
    tx: &mut dyn steward_store::Tx,
    org: OrgId,
    before: Option<steward_core::TeamId>,
    out: &mut Vec<u8>,
) -> Result<Stage, std::io::Error> {
    let io = |e: steward_store::StoreError| std::io::Error::other(e.to_string());
    let page = tx.teams_of_org(org, before, PAGE).await.map_err(io)?;
    let mut views = Vec::with_capacity(page.len());
    for t in &page {
        views.push(TeamView::new(t, &tx.team_members(t.id).await.map_err(io)?));
    }
    let next = page.last().map(|last| Stage::Teams(Some(last.id)));
    paged(out, &views, before.is_none(), |v| v, |_| next.unwrap_or(Stage::Done), "assets", Stage::Assets(None))
}

/// A page of the org's audit events, newest first; the last one closes the bundle.
async fn audit_chunk(
    tx: &mut dyn steward_store::Tx,
    org: OrgId,
    since: Option<OffsetDateTime>,
    before: Option<i64>,
    out: &mut Vec<u8>,
) -> Result<Stage, std::io::Error> {
    let io = |e: steward_store::StoreError| std::io::Error::other(e.to_string());
    let filter = AuditFilter { org_id: Some(org), since, before_seq: before, limit: PAGE, ..Default::default() };
    let page = tx.list_audit(&filter).await.map_err(io)?;
    let more = |last: &steward_core::AuditRecord| Stage::Audit(Some(last.seq));
    let next = paged(out, &page, before.is_none(), AuditEventView::from, more, "", Stage::Done)?;
    if matches!(next, Stage::Done) {
        out.extend_from_slice(b"]}\n");
    }
    Ok(next)
}

/// The org's bundle as a stream of JSON chunks, read a page at a time; its audit events only
/// from `audit_since` on, when given.
pub fn export_stream(
    store: Arc<dyn Store>,
    org: OrgId,
    now: OffsetDateTime,
    audit_since: Option<OffsetDateTime>,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> {
    futures_util::stream::unfold(Some(Stage::Head), move |stage| {
        let store = store.clone();
        async move {
            let stage = stage?;
            if matches!(stage, Stage::Done) {
                return None;
            }
            match next_chunk(store.as_ref(), org, stage, now, audit_since).await {
                Ok((bytes, next)) => Some((Ok(Bytes::from(bytes)), Some(next))),
                Err(e) => Some((Err(e), None)),
            }
        }
    })
}

/// Export an org
///
/// Exports the org as one JSON bundle — profile, license, members and teams with roles, assets,
/// usage history, deprovision records, its audit events — streamed, for its owner and for instance
/// admins. The bundle is JSON, streamed as it is read.
#[utoipa::path(get, path = "/api/v1/orgs/{id}/export", operation_id = "export_org", tag = "data", responses((status = 200, body = ExportBundle),
    Forbidden, NotFound))]
async fn export(Acting { state, principal }: Acting, Path(id): Path<String>) -> ApiResult<Response> {
    let mut tx = state.store.read().await?;
    let access = org_access(&state, tx.as_mut(), &principal, &id, Need::Read).await?;
    tx.rollback().await?;
    let allowed = principal.has(Permission::OrgsRead) || access.role == Some(steward_core::OrgRole::Owner);
    if !allowed {
        return Err(ApiError::forbidden("the export is for the org's owner and for instance admins"));
    }
    // The bundle shows no more history than the org's own audit view does.
    let now = state.clock.now();
    let since = audit_window(&access.org, now);
    let stream = export_stream(state.store.clone(), access.org.id, now, since);
    let filename = format!("attachment; filename=\"org-{}.json\"", access.org.id);
    Ok((
        [(header::CONTENT_TYPE, "application/json".to_owned()), (header::CONTENT_DISPOSITION, filename)],
        Body::from_stream(stream),
    )
        .into_response())
}

/// The org's name, to confirm an irreversible purge.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PurgeRequest {
    pub confirm: String,
}

/// What a purge erased.
#[derive(Debug, Serialize, ToSchema)]
pub struct PurgeResult {
    pub org_id: String,
    pub state: String,
    pub rows_erased: u64,
    /// Deactivated members who belonged nowhere else, now anonymized.
    pub users_anonymized: Vec<String>,
}

/// Purge an org's data
///
/// Erases an org deprovisioned longer than the instance's `purge_after_days`: its assets, teams and
/// memberships; its deactivated members who belong nowhere else are anonymized; the org keeps only
/// its id and the state `purged`; personal data in its audit events is removed while the chain
/// still verifies. Emits `org.purged`. Needs `orgs.lifecycle`. Irreversible.
#[utoipa::path(post, path = "/api/v1/orgs/{id}/purge", operation_id = "purge_org", tag = "data", request_body = PurgeRequest,
    responses((status = 200, body = PurgeResult), BadRequest, Forbidden, NotFound, Conflict))]
async fn purge(
    Acting { state, principal }: Acting,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<PurgeRequest>,
) -> ApiResult<Json<PurgeResult>> {
    principal.require(Permission::OrgsLifecycle)?;
    let now = state.clock.now();
    let mut tx = state.store.write().await?;
    let access = org_access(&state, tx.as_mut(), &principal, &id, Need::Lifecycle).await?;
    let mut org = access.org;
    if req.confirm != org.name {
        return Err(ApiError::invalid("confirm", "must be the organization's name exactly"));
    }
    if org.state != steward_core::OrgState::Deprovisioned {
        return Err(ApiError::conflict(
            "invalid_transition",
            format!("only a deprovisioned org can be purged; this one is {}", org.state),
        ));
    }
    let (settings, _) = instance_settings(tx.as_mut()).await?;
    let since = tx.deprovisions_of(org.id).await?.into_iter().find(|r| r.restored_at.is_none()).map(|r| r.created_at);
    let ready_at = since.map(|s| s + time::Duration::days(i64::from(settings.policies.purge_after_days)));
    if ready_at.is_none_or(|r| r > now) {
        return Err(ApiError::conflict(
            "invalid_transition",
            format!("the org can be purged {} days after its deprovisioning", settings.policies.purge_after_days),
        ));
    }
    let members = tx.members(org.id).await?;
    let erased = tx.purge_org_data(org.id, org.owner_id).await?;
    let mut events = Vec::new();
    let mut anonymized = Vec::new();
    for m in members {
        if m.status != UserStatus::Deactivated || !tx.memberships_of(m.user_id).await?.is_empty() {
            continue;
        }
        if let Some(mut user) = tx.user(m.user_id).await? {
            events.push(steward_ops::users::anonymize(tx.as_mut(), &mut user, principal.actor(), now).await?);
            anonymized.push(user.id.to_string());
        }
    }
    org.name = format!("Purged organization {}", org.id);
    org.external_id = None;
    org.timezone = None;
    org.country = None;
    org.license = steward_core::License::default();
    org.state = steward_core::OrgState::Purged;
    org.updated_at = now;
    tx.update_org(&org).await?;
    events.push(
        AuditDraft::new("org.purged", principal.actor(), TargetType::Org, org.id)
            .in_org(org.id)
            .detail(json!({ "rows_erased": erased, "users_anonymized": anonymized })),
    );
    state.commit(tx, events, now).await?;
    Ok(Json(PurgeResult {
        org_id: org.id.to_string(),
        state: org.state.to_string(),
        rows_erased: erased,
        users_anonymized: anonymized,
    }))
}

/// Where the org's license lets its audit history start (`audit_log_days`), if it limits it.
fn audit_window(org: &steward_store::OrgRow, now: OffsetDateTime) -> Option<OffsetDateTime> {
    org.license.audit_log_days.map(|d| now - time::Duration::days(d.min(36_500) as i64))
}

/// List an org's audit events
///
/// The org's own audit events, newest first, for its owner and admins, limited to the license's
/// `audit_log_days`. Pages with `limit` (at most 500) and `cursor`: the answer's `next_cursor`
/// reads the next page, `null` at the end.
#[utoipa::path(get, path = "/api/v1/orgs/{id}/audit", operation_id = "list_org_audit", tag = "audit", params(("id" = String, Path), Page),
    responses((status = 200, body = AuditList), Forbidden, NotFound))]
async fn org_audit(
    Acting { state, principal }: Acting,
    Path(id): Path<String>,
    ApiQuery(page): ApiQuery<Page>,
) -> ApiResult<Json<AuditList>> {
    let limit = page.limit()?;
    let mut tx = state.store.read().await?;
    let access = org_access(&state, tx.as_mut(), &principal, &id, Need::Read).await?;
    let allowed = principal.has(Permission::AuditRead) || access.role.is_some_and(|r| r.allows(OrgAction::OrgManage));
    if !allowed {
        return Err(ApiError::forbidden("the org's audit log is for its owner and admins"));
    }
    let since = audit_window(&access.org, state.clock.now());
    let filter = AuditFilter {
        org_id: Some(access.org.id),
        since,
        before_seq: page.cursor()?,
        limit: limit + 1,
        ..Default::default()
    };
    let rows = tx.list_audit(&filter).await?;
    tx.rollback().await?;
    let (rows, next_cursor) = paginate(rows, limit, |r| r.seq);
    Ok(Json(AuditList { items: rows.iter().map(AuditEventView::from).collect(), next_cursor }))
}
