//! Metering and decisions: usage per period, exact all-or-nothing consumption, threshold alerts,
//! and `POST /check`, the permission decision operators ask on every request of their product.

use axum::Json;
use axum::extract::Path;
use serde::{Deserialize, Serialize};
use serde_json::json;
use steward_core::license::{Period, period_containing};
use steward_core::{Actor, AuditDraft, License, OrgAction, OrgId, OrgRole, Permission, TargetType, UserId, UserStatus};
use steward_store::{Consume, OrgRow, Tx};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::declared::{BadRequest, Forbidden, NotFound, PaymentRequired, TooManyRequests};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Acting, ApiJson, ApiQuery, Principal};
use crate::mail;
use crate::routes::orgs::{Need, org_access};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_usage, consume)).routes(routes!(usage_days)).routes(routes!(check))
}

/// The largest amount one consume may carry.
pub const MAX_AMOUNT: u64 = 1 << 50;

pub use steward_ops::orgs::period_of;

/// A consumable's state in a period.
#[derive(Debug, Serialize, ToSchema)]
pub struct Consumable {
    /// Null: unlimited. An expired license counts as 0.
    pub limit: Option<u64>,
    pub used: u64,
    /// Null: unlimited.
    pub remaining: Option<u64>,
}

/// A capacity and what the org holds of it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Capacity {
    pub limit: Option<u64>,
    pub used: u64,
}

/// The period's bounds.
#[derive(Debug, Serialize, ToSchema)]
pub struct PeriodView {
    #[serde(with = "time::serde::rfc3339")]
    pub start: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub end: OffsetDateTime,
}

/// An org's usage in one period.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageView {
    pub period: PeriodView,
    pub operations: Consumable,
    pub transfer: Consumable,
    pub data_stores: Capacity,
    pub data_store_bytes: Capacity,
    pub scenarios: Capacity,
    pub file_bytes: Capacity,
    pub frozen: bool,
}

fn consumable(limit: Option<u64>, used: u64, expired: bool) -> Consumable {
    let limit = if expired { Some(0) } else { limit };
    Consumable { limit, used, remaining: limit.map(|l| l.saturating_sub(used)) }
}

/// The usage view of an org in `period`.
pub async fn usage_view(tx: &mut dyn Tx, org: &OrgRow, period: Period, now: OffsetDateTime) -> ApiResult<UsageView> {
    let row = tx.usage(org.id, period.start).await?;
    let totals = tx.asset_totals(org.id).await?;
    Ok(usage_view_of(org, period, row.as_ref(), totals, now))
}

/// The usage view of `org` in `period` from its usage row and asset totals as read.
fn usage_view_of(
    org: &OrgRow,
    period: Period,
    row: Option<&steward_store::UsageRow>,
    totals: steward_store::AssetTotals,
    now: OffsetDateTime,
) -> UsageView {
    let (ops, transfer) = row.map_or((0, 0), |r| (r.operations_used, r.transfer_used));
    let l = &org.license;
    let expired = l.expired(now);
    UsageView {
        period: PeriodView { start: period.start, end: period.end },
        operations: consumable(l.operations, ops, expired),
        transfer: consumable(l.transfer, transfer, expired),
        data_stores: Capacity { limit: l.data_stores, used: totals.data_stores },
        data_store_bytes: Capacity { limit: l.data_store_bytes, used: totals.data_store_bytes },
        scenarios: Capacity { limit: l.scenarios, used: totals.scenarios },
        file_bytes: Capacity { limit: l.file_bytes, used: totals.file_bytes },
        frozen: l.frozen(ops, transfer, now),
    }
}

/// The org `id` as `principal` may consume in it (read access), with its asset totals: from
/// what this node kept since the last committed change, or read and kept. A kept decision is
/// [`org_access`]'s own, reused while nothing it read can have changed; the request still counts
/// against the org's rate limit.
pub(crate) async fn consume_facts(
    state: &AppState,
    principal: &crate::extract::Principal,
    id: &str,
) -> ApiResult<crate::hot::ConsumeFacts> {
    let key = id.parse::<steward_core::OrgId>().ok().map(|org| (principal.user.id, org));
    if let Some(facts) = key.and_then(|(user, org)| state.hot.consume_facts(user, org)) {
        crate::routes::orgs::count_request(state, principal, &facts.0, Need::Read)?;
        return Ok(facts);
    }
    let epoch = state.hot.epoch();
    let mut tx = state.store.read().await?;
    let access = org_access(state, tx.as_mut(), principal, id, Need::Read).await?;
    let totals = tx.asset_totals(access.org.id).await?;
    tx.rollback().await?;
    let facts = (access.org, totals);
    state.hot.keep_consume_facts(principal.user.id, facts.0.id, facts.clone(), epoch);
    Ok(facts)
}

/// Which period to read.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// Any instant inside the wanted period (RFC 3339); default now.
    pub period: Option<String>,
}

/// Get an org's usage
///
/// An org's usage in the current period, or in the period containing `?period=`. Each consumable's
/// limit, use and what is left in the period, and whether the org is frozen.
#[utoipa::path(get, path = "/api/v1/orgs/{id}/usage", operation_id = "get_org_usage", tag = "licenses", params(("id" = String, Path), UsageQuery),
    responses((status = 200, body = UsageView), BadRequest, Forbidden, NotFound))]
pub(crate) async fn get_usage(
    Acting { state, principal }: Acting,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<UsageQuery>,
) -> ApiResult<Json<UsageView>> {
    Ok(Json(read_usage(&state, &principal, id, q).await?))
}

/// The org's usage in a period against its license, for every surface that acts with a principal.
pub async fn read_usage(state: &AppState, principal: &Principal, id: String, q: UsageQuery) -> ApiResult<UsageView> {
    let now = state.clock.now();
    let at = match &q.period {
        Some(p) => {
            OffsetDateTime::parse(p, &Rfc3339).map_err(|_| ApiError::invalid("period", "must be an RFC 3339 time"))?
        }
        None => now,
    };
    let mut tx = state.store.read().await?;
    let org = usage_access(state, tx.as_mut(), principal, &id).await?;
    let view = usage_view(tx.as_mut(), &org, period_of(&org, at), now).await?;
    tx.rollback().await?;
    Ok(view)
}

/// The org whose usage `principal` asks for, when they may read it: an instance admin who reads
/// orgs, or its owner, an admin or an accountant.
async fn usage_access(state: &AppState, tx: &mut dyn Tx, principal: &Principal, id: &str) -> ApiResult<OrgRow> {
    let access = org_access(state, tx, principal, id, Need::Read).await?;
    let allowed = principal.has(Permission::OrgsRead) || access.role.is_some_and(|r| r.allows(OrgAction::UsageRead));
    if !allowed {
        return Err(ApiError::forbidden("reading usage needs the owner, admin or accountant role"));
    }
    Ok(access.org)
}

/// What an org consumed per day, from the start of the previous period to now.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageDays {
    /// The previous period's start: the first day listed.
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
    /// Where the current period starts.
    #[serde(with = "time::serde::rfc3339")]
    pub period_start: OffsetDateTime,
    /// Now: the days listed end before it.
    #[serde(with = "time::serde::rfc3339")]
    pub until: OffsetDateTime,
    /// The days with consumption, oldest first; a day not listed consumed nothing.
    pub days: Vec<UsageDay>,
    /// The seats held at the end of every day listed, from `since` through today, oldest first:
    /// the people who were members then.
    pub seats: Vec<SeatDay>,
}

/// The seats held at the end of one UTC day.
#[derive(Debug, Serialize, ToSchema)]
pub struct SeatDay {
    /// The day's first instant (UTC).
    #[serde(with = "time::serde::rfc3339")]
    pub day: OffsetDateTime,
    pub seats: u64,
}

/// The people who held a membership at the end of each day from `since`'s day through `now`'s.
fn seats_per_day(
    spans: &[(UserId, OffsetDateTime, Option<OffsetDateTime>)],
    since: OffsetDateTime,
    now: OffsetDateTime,
) -> Vec<SeatDay> {
    let first = since.to_offset(time::UtcOffset::UTC).replace_time(time::Time::MIDNIGHT);
    let days = (now.to_offset(time::UtcOffset::UTC).date() - first.date()).whole_days().clamp(0, 400);
    (0..=days)
        .map(|i| {
            let day = first + time::Duration::days(i);
            let end = day + time::Duration::days(1);
            let held: std::collections::BTreeSet<&UserId> = spans
                .iter()
                .filter(|(_, from, until)| *from < end && until.is_none_or(|u| u >= end))
                .map(|(user, _, _)| user)
                .collect();
            SeatDay { day, seats: held.len() as u64 }
        })
        .collect()
}

/// One UTC day's consumption.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageDay {
    /// The day's first instant (UTC).
    #[serde(with = "time::serde::rfc3339")]
    pub day: OffsetDateTime,
    pub operations: u64,
    /// Bytes.
    pub transfer: u64,
}

/// List an org's usage per day
///
/// What the org consumed on each UTC day of the previous period and of the current one up to
/// now, as its pages chart it. Days without consumption are left out.
#[utoipa::path(get, path = "/api/v1/orgs/{id}/usage/days", operation_id = "list_org_usage_days", tag = "licenses",
    params(("id" = String, Path)), responses((status = 200, body = UsageDays), Forbidden, NotFound))]
pub(crate) async fn usage_days(
    Acting { state, principal }: Acting,
    Path(id): Path<String>,
) -> ApiResult<Json<UsageDays>> {
    Ok(Json(read_usage_days(&state, &principal, id).await?))
}

/// An org's usage per day since the previous period began, for every surface that reads it.
pub async fn read_usage_days(state: &AppState, principal: &Principal, id: String) -> ApiResult<UsageDays> {
    let now = state.clock.now();
    let mut tx = state.store.read().await?;
    let org = usage_access(state, tx.as_mut(), principal, &id).await?;
    let current = period_of(&org, now);
    let since = period_of(&org, current.start - time::Duration::seconds(1)).start;
    let rows = tx.usage_days(org.id, since, now).await?;
    let spans = tx.membership_spans(org.id).await?;
    tx.rollback().await?;
    let days = rows
        .into_iter()
        .map(|d| UsageDay { day: d.day, operations: d.operations_used, transfer: d.transfer_used })
        .collect();
    Ok(UsageDays { since, period_start: current.start, until: now, days, seats: seats_per_day(&spans, since, now) })
}

/// What to consume.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"operations": 60, "transfer": 1048576}))]
pub struct ConsumeRequest {
    #[serde(default)]
    pub operations: u64,
    /// Bytes.
    #[serde(default)]
    pub transfer: u64,
    /// The asset that consumed, for the record.
    pub asset_id: Option<String>,
}

const THRESHOLDS: [u64; 3] = [75, 90, 100];

/// Consume from an org's budget
///
/// Consumes from the org's current budget: all or nothing, exact under any concurrency. 402
/// `quota_exhausted` whenever the budget does not cover the request (nothing is consumed). Send an
/// `Idempotency-Key` so that a retried consume counts once. Counted against the org's
/// `api_requests_per_minute` like every org-scoped request (429 with `Retry-After`).
#[utoipa::path(post, path = "/api/v1/orgs/{id}/usage", operation_id = "consume_usage", tag = "licenses", request_body = ConsumeRequest,
    responses((status = 200, body = UsageView), BadRequest, PaymentRequired, Forbidden, NotFound, TooManyRequests))]
async fn consume(
    Acting { state, principal }: Acting,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<ConsumeRequest>,
) -> ApiResult<Json<UsageView>> {
    principal.require(Permission::UsageWrite)?;
    check_amounts(req.operations, req.transfer)?;
    let now = state.clock.now();
    let (org, totals) = consume_facts(&state, &principal, &id).await?;
    if let Some(asset) = &req.asset_id {
        check_asset(&state, &org, asset).await?;
    }
    let period = period_of(&org, now);
    let expired = org.license.expired(now);
    let limit = |l: Option<u64>| if expired { Some(0) } else { l };
    let request = Consume {
        org: org.id,
        period_start: period.start,
        period_end: period.end,
        at: now,
        operations: req.operations,
        transfer: req.transfer,
        operations_limit: limit(org.license.operations),
        transfer_limit: limit(org.license.transfer),
    };
    if let Some(limit) = request.operations_limit
        && req.transfer == 0
        && serve_from_lease(&state, &request, limit).await?
    {
        metrics::counter!("steward_consume_total", "outcome" => "leased").increment(1);
        let mut tx = state.store.read().await?;
        let view = usage_view(tx.as_mut(), &org, period, now).await?;
        tx.rollback().await?;
        return Ok(Json(view));
    }
    let Some(usage) = state.store.consume(&request).await? else {
        metrics::counter!("steward_consume_total", "outcome" => "refused").increment(1);
        let why = if expired { "the license has expired" } else { "the period's budget does not cover this" };
        return Err(ApiError::other(axum::http::StatusCode::PAYMENT_REQUIRED, "quota_exhausted", why));
    };
    state.hot.consumed(org.id);
    metrics::counter!("steward_consume_total", "outcome" => "ok").increment(1);
    after_consume(&state, &org, period, &request, &usage, now).await?;
    // The answer is the update's own: the period's usage as it returned it.
    Ok(Json(usage_view_of(&org, period, Some(&usage), totals, now)))
}

/// A consume counts something, and no more than an amount can hold.
pub(crate) fn check_amounts(operations: u64, transfer: u64) -> ApiResult<()> {
    if operations == 0 && transfer == 0 {
        return Err(ApiError::invalid("operations", "operations or transfer must be positive"));
    }
    if operations > MAX_AMOUNT || transfer > MAX_AMOUNT {
        return Err(ApiError::invalid("operations", format!("amounts are limited to {MAX_AMOUNT}")));
    }
    Ok(())
}

/// The asset a consume names must be one of the org's.
pub(crate) async fn check_asset(state: &AppState, org: &OrgRow, asset: &str) -> ApiResult<()> {
    let mut tx = state.store.read().await?;
    let found = match asset.parse::<uuid::Uuid>() {
        Ok(a) => tx.asset(a).await?,
        Err(_) => None,
    };
    tx.rollback().await?;
    if found.is_none_or(|a| a.org_id != org.id) {
        return Err(ApiError::invalid("asset_id", "is not an asset of this organization"));
    }
    Ok(())
}

/// What follows a consume that went through: the org is frozen when it used a consumable up, and
/// the thresholds of the operations budget it crossed are alerted.
pub(crate) async fn after_consume(
    state: &AppState,
    org: &OrgRow,
    period: Period,
    request: &Consume,
    usage: &steward_store::UsageRow,
    now: OffsetDateTime,
) -> ApiResult<()> {
    let used_up = |limit: Option<u64>, after: u64, amount: u64| limit.is_some_and(|l| after >= l && after - amount < l);
    if used_up(request.operations_limit, usage.operations_used, request.operations)
        || used_up(request.transfer_limit, usage.transfer_used, request.transfer)
    {
        // This consume used a consumable up: the org is frozen until the period renews.
        let tx = state.store.write().await?;
        let event = AuditDraft::new("org.frozen", Actor::SYSTEM, TargetType::Org, org.id)
            .in_org(org.id)
            .detail(json!({ "cause": "consumable_used_up", "period_start": period.start.unix_timestamp() }));
        state.commit(tx, vec![event], now).await?;
    }
    if let Some(l) = request.operations_limit.filter(|l| *l > 0) {
        let after = usage.operations_used;
        let before = after - request.operations;
        let (l128, before, after128) = (u128::from(l), u128::from(before), u128::from(after));
        let crossed: Vec<u64> = THRESHOLDS
            .into_iter()
            .filter(|t| before * 100 < l128 * u128::from(*t) && l128 * u128::from(*t) <= after128 * 100)
            .collect();
        if !crossed.is_empty() {
            alert(state, org, period, crossed, l, after, now).await?;
        }
    }
    Ok(())
}

/// Serves a consume from this node's lease of the org's budget, taking a new lease while the
/// budget is far above a slice. False when the consume must go to the database.
async fn serve_from_lease(state: &AppState, request: &Consume, limit: u64) -> ApiResult<bool> {
    let slice = state.config.lease_slice;
    if slice == 0 || request.operations > slice {
        return Ok(false);
    }
    if state.leases.take(request.org, request.period_start, request.operations) {
        return Ok(true);
    }
    // Only while at least `lease_factor` slices remain: near the limit every unit is exact.
    let reserve = slice.saturating_mul(state.config.lease_factor.max(2) - 1);
    let Some(ceiling) = limit.checked_sub(reserve) else { return Ok(false) };
    let lease = Consume { operations: slice, transfer: 0, operations_limit: Some(ceiling), ..*request };
    if state.store.consume(&lease).await?.is_none() {
        return Ok(false);
    }
    state.hot.consumed(request.org);
    state.leases.add(request.org, request.period_start, slice - request.operations);
    Ok(true)
}

/// Tells the org's owner and admins (who keep `usage_alerts` on) that a threshold was crossed,
/// once per threshold and period however many nodes and requests race past it.
async fn alert(
    state: &AppState,
    org: &OrgRow,
    period: Period,
    crossed: Vec<u64>,
    limit: u64,
    used: u64,
    now: OffsetDateTime,
) -> ApiResult<()> {
    let mut tx = state.store.write().await?;
    let mut events = Vec::new();
    for threshold in crossed {
        if !tx.claim_usage_alert(org.id, period.start, threshold, now).await? {
            continue;
        }
        for m in tx.members(org.id).await? {
            if m.dormant || !matches!(m.role, OrgRole::Owner | OrgRole::Admin) {
                continue;
            }
            let Some(user) = tx.user(m.user_id).await? else { continue };
            let body = format!(
                "Hello {},\n\n{} has used {used} of its {limit} operations ({threshold} %) in the period that ends {}.\n",
                user.name,
                org.name,
                period.end.format(&Rfc3339).unwrap_or_default()
            );
            let subject = format!("{}: {threshold} % of operations used", org.name);
            mail::enqueue_about_org(tx.as_mut(), &user, org.id, "usage_alerts", subject, body, now).await?;
        }
        events.push(
            AuditDraft::new("usage.threshold_crossed", Actor::SYSTEM, TargetType::Org, org.id)
                .in_org(org.id)
                .detail(json!({ "threshold": threshold, "limit": limit, "used": used, "period_start": period.start.unix_timestamp() })),
        );
    }
    state.commit(tx, events, now).await?;
    state.outbox_wake.notify_one();
    Ok(())
}

/// A permission question.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    pub user_id: String,
    pub org_id: String,
    /// `asset.read`, `asset.write`, `scenario.run`, `member.invite`, `org.manage`, `usage.read`.
    #[schema(value_type = String)]
    pub action: OrgAction,
    /// A license feature the action needs, if any.
    pub feature: Option<String>,
}

/// The answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckResponse {
    pub allowed: bool,
    /// `ok`, `user_inactive`, `not_a_member`, `role`, `license_expired`, `org_frozen` or `feature_disabled`.
    pub reason: String,
}

/// The decision, from facts already read: status, membership (dormant counts as none), role,
/// license for actions that consume or write, feature.
pub fn decide(
    status: UserStatus,
    membership: Option<(OrgRole, bool)>,
    license: &License,
    used: (u64, u64),
    action: OrgAction,
    feature: Option<&str>,
    now: OffsetDateTime,
) -> &'static str {
    if status != UserStatus::Active {
        return "user_inactive";
    }
    let Some((role, false)) = membership else { return "not_a_member" };
    if !role.allows(action) {
        return "role";
    }
    if matches!(action, OrgAction::AssetWrite | OrgAction::ScenarioRun) {
        if license.expired(now) {
            return "license_expired";
        }
        if license.frozen(used.0, used.1, now) {
            return "org_frozen";
        }
    }
    if let Some(f) = feature
        && license.features.get(f) == Some(&false)
    {
        return "feature_disabled";
    }
    "ok"
}

/// Check a decision
///
/// May this user do this in this org now? One read, no write. Answers whether the action is allowed
/// and, when not, the documented reason.
#[utoipa::path(post, path = "/api/v1/check", operation_id = "check_permission", tag = "licenses", request_body = CheckRequest,
    responses((status = 200, body = CheckResponse), BadRequest, Forbidden, NotFound, TooManyRequests))]
async fn check(
    Acting { state, principal }: Acting,
    ApiJson(req): ApiJson<CheckRequest>,
) -> ApiResult<Json<CheckResponse>> {
    principal.require(Permission::OrgsRead)?;
    let user: UserId = req.user_id.parse().map_err(|_| ApiError::not_found("user or organization"))?;
    let org: OrgId = req.org_id.parse().map_err(|_| ApiError::not_found("user or organization"))?;
    let now = state.clock.now();
    // Only this node writes (SQLite): the facts can be kept between changes (crate::hot), and are
    // used again while the period they were read for is the current one.
    let keep = !state.store.shared();
    let kept = if keep { state.hot.check(user, org) } else { None };
    let facts = match kept {
        Some((facts, start))
            if period_containing(facts.org_created_at, facts.license.restart_period, now).start == start =>
        {
            facts
        }
        _ => {
            let version = state.hot.check_version(org);
            let mut tx = state.store.read().await?;
            // The period depends on the org's anchor: read the facts for the period of the anchor
            // known from a previous answer, and read again only in the rare case the guess was wrong.
            let guess = state.period_hint(org).unwrap_or(Period { start: now, end: now });
            let mut facts = tx
                .check_facts(user, org, guess.start)
                .await?
                .ok_or_else(|| ApiError::not_found("user or organization"))?;
            let period = period_containing(facts.org_created_at, facts.license.restart_period, now);
            if period.start != guess.start {
                facts = tx
                    .check_facts(user, org, period.start)
                    .await?
                    .ok_or_else(|| ApiError::not_found("user or organization"))?;
                state.remember_period(org, period);
            }
            tx.rollback().await?;
            if keep {
                state.hot.keep_check(user, org, facts.clone(), period.start, version);
            }
            facts
        }
    };
    state.org_rate.take(org, facts.license.api_requests_per_minute)?;
    let reason = decide(
        facts.status,
        facts.membership,
        &facts.license,
        (facts.operations_used, facts.transfer_used),
        req.action,
        req.feature.as_deref(),
        now,
    );
    Ok(Json(CheckResponse { allowed: reason == "ok", reason: reason.to_owned() }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_follow_the_documented_order() {
        let now = OffsetDateTime::now_utc();
        let mut license = License::default();
        let member = Some((OrgRole::Member, false));
        assert_eq!(
            decide(UserStatus::Suspended, member, &license, (0, 0), OrgAction::AssetRead, None, now),
            "user_inactive"
        );
        assert_eq!(
            decide(UserStatus::Active, Some((OrgRole::Admin, true)), &license, (0, 0), OrgAction::AssetRead, None, now),
            "not_a_member"
        );
        assert_eq!(decide(UserStatus::Active, None, &license, (0, 0), OrgAction::AssetRead, None, now), "not_a_member");
        assert_eq!(
            decide(
                UserStatus::Active,
                Some((OrgRole::Viewer, false)),
                &license,
                (0, 0),
                OrgAction::AssetWrite,
                None,
                now
            ),
            "role"
        );
        license.operations = Some(10);
        assert_eq!(
            decide(UserStatus::Active, member, &license, (10, 0), OrgAction::ScenarioRun, None, now),
            "org_frozen"
        );
        assert_eq!(
            decide(UserStatus::Active, member, &license, (10, 0), OrgAction::AssetRead, None, now),
            "ok",
            "reads stay allowed"
        );
        license.expires_at = Some(now - time::Duration::seconds(1));
        assert_eq!(
            decide(UserStatus::Active, member, &license, (0, 0), OrgAction::AssetWrite, None, now),
            "license_expired"
        );
        license.expires_at = None;
        license.features.insert("sso".into(), false);
        assert_eq!(
            decide(UserStatus::Active, member, &license, (0, 0), OrgAction::AssetRead, Some("sso"), now),
            "feature_disabled"
        );
        assert_eq!(
            decide(UserStatus::Active, member, &license, (0, 0), OrgAction::AssetRead, Some("other"), now),
            "ok"
        );
    }
}
