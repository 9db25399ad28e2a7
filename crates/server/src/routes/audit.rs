//! The audit log: filtered reading and chain verification.

use axum::Json;
use serde::{Deserialize, Serialize};
use steward_core::{OrgId, Permission, UserId};
use steward_store::AuditFilter;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::declared::{BadRequest, Forbidden};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Acting, ApiQuery, Page, Principal, paginate};
use crate::state::AppState;
use crate::views::{AuditEventView, AuditList};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_audit)).routes(routes!(verify_audit))
}

/// Filters of the audit log.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    pub actor_id: Option<String>,
    pub target_id: Option<String>,
    pub org_id: Option<String>,
    /// Event type, such as `user.created`.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub kind: Option<String>,
    /// From this instant (RFC 3339), inclusive.
    pub since: Option<String>,
    /// Before this instant (RFC 3339).
    pub until: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

fn parse_time(field: &'static str, value: Option<&str>) -> ApiResult<Option<OffsetDateTime>> {
    value
        .map(|v| OffsetDateTime::parse(v, &Rfc3339).map_err(|_| ApiError::invalid(field, "must be an RFC 3339 time")))
        .transpose()
}

/// List audit events
///
/// Reads the audit log, newest first. Needs `audit.read`. Filters by actor, target, org, type and
/// time. Pages with `limit` (at most 500) and `cursor`: the answer's `next_cursor` reads the next
/// page, `null` at the end.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, body = AuditList), BadRequest, Forbidden))]
pub(crate) async fn list_audit(
    Acting { state, principal }: Acting,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<Json<AuditList>> {
    Ok(Json(read_audit(&state, &principal, q).await?))
}

/// A page of the audit log under the query's filter, newest first, for every surface that acts
/// with a principal.
pub async fn read_audit(state: &AppState, principal: &Principal, q: AuditQuery) -> ApiResult<AuditList> {
    principal.require(Permission::AuditRead)?;
    let page = Page { limit: q.limit, cursor: q.cursor };
    let limit = page.limit()?;
    let actor_id = q
        .actor_id
        .as_deref()
        .map(|a| a.parse::<UserId>().map_err(|_| ApiError::invalid("actor_id", "is not an id")))
        .transpose()?;
    let org_id = q
        .org_id
        .as_deref()
        .map(|o| o.parse::<OrgId>().map_err(|_| ApiError::invalid("org_id", "is not an id")))
        .transpose()?;
    let filter = AuditFilter {
        actor_id,
        target_id: q.target_id,
        org_id,
        involving: None,
        kind: q.kind,
        since: parse_time("since", q.since.as_deref())?,
        until: parse_time("until", q.until.as_deref())?,
        before_seq: page.cursor()?,
        limit: limit + 1,
    };
    let mut tx = state.store.read().await?;
    let rows = tx.list_audit(&filter).await?;
    tx.rollback().await?;
    let (rows, next_cursor) = paginate(rows, limit, |r| r.seq);
    Ok(AuditList { items: rows.iter().map(AuditEventView::from).collect(), next_cursor })
}

/// The result of checking the chain.
#[derive(Debug, Serialize, ToSchema)]
pub struct VerifyResult {
    /// Whether every event holds.
    pub ok: bool,
    /// How many events were read.
    pub events: u64,
    /// The first event that does not hold.
    pub first_bad_seq: Option<i64>,
}

/// Verify the audit chain
///
/// Recomputes the hash chain over every event. Needs `audit.read`. Reads the chain from the archive
/// anchor, if any, and names the first event whose hash does not follow.
#[utoipa::path(get, path = "/api/v1/audit/verify", tag = "audit", responses((status = 200, body = VerifyResult),
    Forbidden))]
async fn verify_audit(Acting { state, principal }: Acting) -> ApiResult<Json<VerifyResult>> {
    principal.require(Permission::AuditRead)?;
    let check = state.store.verify_audit().await?;
    Ok(Json(VerifyResult {
        ok: check.first_bad_seq().is_none(),
        events: check.checked(),
        first_bad_seq: check.first_bad_seq(),
    }))
}
