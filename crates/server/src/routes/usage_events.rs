//! Batch ingestion of usage events (`POST /api/v1/usage/events`): up to 1,000 events of any
//! orgs in one request and one write transaction, each counted once however often its sender
//! retries it, each all or nothing and exact against its org's budget.

use std::collections::HashMap;

use axum::Json;
use serde::{Deserialize, Serialize};
use steward_core::Permission;
use steward_store::{Consume, EventOutcome, OrgRow, UsageEvent};
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::declared::{BadRequest, Forbidden, TooManyRequests};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Acting, Principal, parse_json};
use crate::routes::usage::{after_consume, check_amounts, check_asset, consume_facts, period_of};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(ingest_usage_events))
}

/// The most events one request may carry.
pub const MAX_EVENTS: usize = 1000;

/// A usage event as its sender sends it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"id": "run-2026-12-07-0001", "org_id": "01936f0e-9a21-7c33-8b0d-1e2f3a4b5c6d", "operations": 3}))]
pub struct UsageEventIn {
    /// The sender's id of the event, 1 to 128 visible characters, unique within its org: an id
    /// already counted counts nothing, for as long as its period and the one after.
    pub id: String,
    pub org_id: String,
    #[serde(default)]
    pub operations: u64,
    /// Bytes.
    #[serde(default)]
    pub transfer: u64,
    /// An asset of the org the use is of.
    pub asset_id: Option<String>,
}

/// A batch of usage events.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UsageEventBatch {
    /// 1 to 1,000 events, counted in this order.
    pub events: Vec<UsageEventIn>,
}

/// What became of one event.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageEventResult {
    pub id: String,
    /// `accepted` (counted), `duplicate` (counted before: nothing counted now),
    /// `quota_exhausted` (the period's budget does not cover it: nothing counted) or `invalid`.
    #[schema(value_type = crate::schema::UsageEventStatusSchema)]
    pub status: &'static str,
    /// Why, for `quota_exhausted` and `invalid`; null otherwise.
    pub detail: Option<String>,
}

/// One result per event, in the order sent.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageEventResults {
    pub results: Vec<UsageEventResult>,
}

/// Ingest usage events
///
/// Counts up to 1,000 usage events of any orgs at once, in the order sent. Each is all or
/// nothing and exact against its org's budget; an event whose `id` its org already counted
/// answers `duplicate` and counts nothing (retries are safe), for as long as its period and the
/// one after. One result per event; a malformed event is `invalid` without affecting the others.
/// Needs `usage.write` and read access to each event's org; each org of the batch counts once
/// against its `api_requests_per_minute`.
#[utoipa::path(post, path = "/api/v1/usage/events", operation_id = "ingest_usage_events", tag = "licenses",
    request_body = UsageEventBatch, responses((status = 200, body = UsageEventResults), BadRequest, Forbidden, TooManyRequests))]
pub(crate) async fn ingest_usage_events(
    Acting { state, principal }: Acting,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<Json<UsageEventResults>> {
    // Who acts is checked before up to a thousand events are read.
    principal.require(Permission::UsageWrite)?;
    let json = headers.get(axum::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|ct| {
        let mime = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        mime == "application/json" || mime.ends_with("+json")
    });
    if !json {
        return Err(ApiError::invalid("body", "expected a JSON body with Content-Type: application/json"));
    }
    let batch: UsageEventBatch = parse_json(&body)?;
    Ok(Json(ingest(&state, &principal, batch).await?))
}

/// An org of the batch, as its events are counted: its row and the consume its events share.
struct OrgOfBatch {
    org: OrgRow,
    /// The period, limits and instant of its events (amounts zero).
    base: Consume,
    keep_until: OffsetDateTime,
}

/// Counts `batch` for `principal` (every surface that takes usage events).
pub async fn ingest(state: &AppState, principal: &Principal, batch: UsageEventBatch) -> ApiResult<UsageEventResults> {
    principal.require(Permission::UsageWrite)?;
    if batch.events.is_empty() || batch.events.len() > MAX_EVENTS {
        return Err(ApiError::invalid("events", format!("must hold 1 to {MAX_EVENTS} events")));
    }
    let now = state.clock.now();
    // Each org once: access as for a consume (kept between changes), period and limits.
    let mut orgs: HashMap<String, Result<OrgOfBatch, String>> = HashMap::new();
    let mut results = Vec::with_capacity(batch.events.len());
    let mut events = Vec::new();
    let mut places = Vec::new();
    for (i, e) in batch.events.iter().enumerate() {
        results.push(UsageEventResult { id: e.id.clone(), status: "invalid", detail: None });
        if let Err(why) = check_id(&e.id).and_then(|()| check_amounts(e.operations, e.transfer).map_err(detail)) {
            results[i].detail = Some(why);
            continue;
        }
        if !orgs.contains_key(&e.org_id) {
            let found = org_of_batch(state, principal, &e.org_id, now).await;
            orgs.insert(e.org_id.clone(), found);
        }
        let of_org = match &orgs[&e.org_id] {
            Ok(o) => o,
            Err(why) => {
                results[i].detail = Some(why.clone());
                continue;
            }
        };
        if let Some(asset) = &e.asset_id
            && let Err(err) = check_asset(state, &of_org.org, asset).await
        {
            results[i].detail = Some(detail(err));
            continue;
        }
        let consume = Consume { operations: e.operations, transfer: e.transfer, ..of_org.base };
        events.push(UsageEvent { id: e.id.clone(), consume, keep_until: of_org.keep_until });
        places.push(i);
    }
    if events.is_empty() {
        return Ok(UsageEventResults { results });
    }
    let mut tx = state.store.write().await?;
    let (outcomes, usage) = tx.ingest_usage(&events, now).await?;
    tx.commit().await?;
    // The batch's orgs by id, however their senders spelt them.
    let by_id: HashMap<steward_core::OrgId, &OrgOfBatch> =
        orgs.values().filter_map(|o| o.as_ref().ok()).map(|o| (o.org.id, o)).collect();
    for ((event, outcome), i) in events.iter().zip(&outcomes).zip(places) {
        let r = &mut results[i];
        (r.status, r.detail) = match outcome {
            EventOutcome::Accepted => ("accepted", None),
            EventOutcome::Duplicate => ("duplicate", None),
            EventOutcome::Refused => {
                let expired = by_id.get(&event.consume.org).is_some_and(|o| o.org.license.expired(now));
                let why = if expired { "the license has expired" } else { "the period's budget does not cover this" };
                ("quota_exhausted", Some(why.to_owned()))
            }
        };
    }
    // What follows for each org that counted something: frozen when used up, thresholds alerted.
    for row in usage {
        let Some(of_org) = by_id.get(&row.org_id) else { continue };
        state.hot.consumed(of_org.org.id);
        let counted =
            events.iter().zip(&outcomes).filter(|(e, o)| e.consume.org == row.org_id && **o == EventOutcome::Accepted);
        let (operations, transfer) =
            counted.fold((0, 0), |(o, t), (e, _)| (o + e.consume.operations, t + e.consume.transfer));
        let summed = Consume { operations, transfer, ..of_org.base };
        let period = steward_core::license::Period { start: of_org.base.period_start, end: of_org.base.period_end };
        after_consume(state, &of_org.org, period, &summed, &row, now).await?;
    }
    metrics::counter!("steward_usage_events_total", "outcome" => "accepted")
        .increment(outcomes.iter().filter(|o| **o == EventOutcome::Accepted).count() as u64);
    Ok(UsageEventResults { results })
}

/// The org `id` as the events of a batch count in it, or why they cannot (the refusal's own
/// words: another org's events are `invalid` as "no such organization").
async fn org_of_batch(
    state: &AppState,
    principal: &Principal,
    id: &str,
    now: OffsetDateTime,
) -> Result<OrgOfBatch, String> {
    let (org, _) = consume_facts(state, principal, id).await.map_err(detail)?;
    let period = period_of(&org, now);
    let expired = org.license.expired(now);
    let limit = |l: Option<u64>| if expired { Some(0) } else { l };
    let base = Consume {
        org: org.id,
        period_start: period.start,
        period_end: period.end,
        at: now,
        operations: 0,
        transfer: 0,
        operations_limit: limit(org.license.operations),
        transfer_limit: limit(org.license.transfer),
    };
    // Remembered through the period after this one: as long again as this one, at least.
    let keep_until = period.end + (period.end - period.start);
    Ok(OrgOfBatch { org, base, keep_until })
}

/// An event id: 1 to 128 visible ASCII characters.
fn check_id(id: &str) -> Result<(), String> {
    let ok = (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic());
    if ok { Ok(()) } else { Err("id: must be 1 to 128 visible ASCII characters".into()) }
}

/// A refusal as an event's detail.
fn detail(e: ApiError) -> String {
    e.problem().detail
}
