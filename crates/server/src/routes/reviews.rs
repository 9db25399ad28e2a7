//! Access reviews: who has access, when they were last seen, a recommendation per person; the
//! reviewer's decisions are applied on completion. Also as CSV.

use axum::Json;
use axum::extract::Path;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use steward_core::governance::StatusSetter;
use steward_core::{AuditDraft, OrgId, OrgRole, Permission, TargetType, UserId, UserStatus};
use steward_store::{ReviewItemRow, ReviewRow, UserFilter};
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::declared::{BadRequest, Conflict, Forbidden, NotFound};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Acting, ApiJson, Principal};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_review))
        .routes(routes!(get_review))
        .routes(routes!(decide))
        .routes(routes!(complete))
}

/// One person under review.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReviewItemView {
    pub user_id: String,
    pub email: String,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_login_at: Option<OffsetDateTime>,
    pub roles: Vec<String>,
    #[schema(value_type = crate::schema::ReviewDecisionSchema)]
    pub recommendation: String,
    #[schema(value_type = Option<crate::schema::ReviewDecisionSchema>)]
    pub decision: Option<String>,
}

/// A review.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReviewView {
    pub id: String,
    pub org_id: Option<String>,
    pub inactive_days: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub completed_at: Option<OffsetDateTime>,
    pub items: Vec<ReviewItemView>,
}

fn view(r: &ReviewRow, items: &[ReviewItemRow]) -> ReviewView {
    ReviewView {
        id: r.id.to_string(),
        org_id: r.org_id.map(|o| o.to_string()),
        inactive_days: r.inactive_days,
        created_at: r.created_at,
        completed_at: r.completed_at,
        items: items
            .iter()
            .map(|i| ReviewItemView {
                user_id: i.user_id.to_string(),
                email: i.email.clone(),
                last_login_at: i.last_login_at,
                roles: i.roles.clone(),
                recommendation: i.recommendation.clone(),
                decision: i.decision.clone(),
            })
            .collect(),
    }
}

/// A new review.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewReview {
    /// Review one org's members instead of every active user.
    pub org_id: Option<String>,
    /// People not seen for this many days are recommended for removal.
    pub inactive_days: u32,
}

/// Start an access review
///
/// Starts a review over the active users (or an org's members), with a recommendation each. Needs
/// `reviews.manage`. Answers 201 with `Location`.
#[utoipa::path(post, path = "/api/v1/access-reviews", tag = "reviews", request_body = NewReview,
    responses((status = 201, body = ReviewView), BadRequest, Forbidden, NotFound))]
async fn create_review(
    Acting { state, principal }: Acting,
    ApiJson(req): ApiJson<NewReview>,
) -> ApiResult<crate::answer::Created<ReviewView>> {
    principal.require(Permission::ReviewsManage)?;
    // A review lists people, their emails and roles: only for someone who may read them.
    principal.require(Permission::UsersRead)?;
    if req.org_id.is_some() {
        principal.require(Permission::OrgsRead)?;
    }
    if req.inactive_days > 36_500 {
        return Err(ApiError::invalid("inactive_days", "must be at most 36500"));
    }
    let now = state.clock.now();
    let cutoff = now - time::Duration::days(i64::from(req.inactive_days));
    let mut tx = state.store.write().await?;
    let org: Option<OrgId> = match &req.org_id {
        Some(o) => {
            let id: OrgId = o.parse().map_err(|_| ApiError::not_found("organization"))?;
            tx.org(id).await?.ok_or_else(|| ApiError::not_found("organization"))?;
            Some(id)
        }
        None => None,
    };
    let review = ReviewRow {
        id: uuid::Uuid::now_v7(),
        org_id: org,
        inactive_days: i64::from(req.inactive_days),
        created_at: now,
        created_by: Some(principal.user.id),
        completed_at: None,
        completed_by: None,
    };
    let items = match org {
        Some(org) => org_items(tx.as_mut(), &review, org, cutoff).await?,
        None => instance_items(tx.as_mut(), &review, cutoff).await?,
    };
    tx.insert_review(&review, &items).await?;
    let event = AuditDraft::new("review.started", principal.actor(), TargetType::Instance, review.id)
        .detail(json!({ "org_id": org, "inactive_days": req.inactive_days, "people": items.len() }));
    state.commit(tx, vec![event], now).await?;
    Ok(crate::answer::Created::at(format!("/api/v1/access-reviews/{}", review.id), view(&review, &items)))
}

/// Whether `u` has not signed in since `cutoff` (or, never having signed in, was created before).
fn stale(u: &steward_store::UserRow, cutoff: OffsetDateTime) -> bool {
    u.last_login_at.unwrap_or(u.created_at) < cutoff
}

/// The items of an org's review: each active person holding a live membership, with their role;
/// a stale one is recommended for removal, unless they own the org.
async fn org_items(
    tx: &mut dyn steward_store::Tx,
    review: &ReviewRow,
    org: OrgId,
    cutoff: OffsetDateTime,
) -> ApiResult<Vec<ReviewItemRow>> {
    let mut items = Vec::new();
    for m in tx.members(org).await? {
        if m.dormant || m.status != UserStatus::Active {
            continue;
        }
        let Some(u) = tx.user(m.user_id).await? else { continue };
        if u.kind != steward_core::UserKind::Person {
            continue;
        }
        let recommendation = if stale(&u, cutoff) && m.role != OrgRole::Owner { "remove_from_org" } else { "keep" };
        items.push(item(review, &u, vec![m.role.to_string()], recommendation));
    }
    Ok(items)
}

/// The items of an instance review: every active person, with their instance roles and their
/// roles in each org; a stale one is recommended for deactivation. Read 500 at a time.
async fn instance_items(
    tx: &mut dyn steward_store::Tx,
    review: &ReviewRow,
    cutoff: OffsetDateTime,
) -> ApiResult<Vec<ReviewItemRow>> {
    let mut items = Vec::new();
    let mut before = None;
    loop {
        let filter = UserFilter { status: Some(UserStatus::Active), before, limit: 500, ..Default::default() };
        let page = tx.list_users(&filter).await?;
        for u in page.iter().filter(|u| u.kind == steward_core::UserKind::Person) {
            let mut roles: Vec<String> = u.instance_roles.iter().map(|r| r.to_string()).collect();
            for m in tx.memberships_of(u.id).await? {
                roles.push(format!("{}:{}", m.org_name, m.role));
            }
            let recommendation = if stale(u, cutoff) { "deactivate" } else { "keep" };
            items.push(item(review, u, roles, recommendation));
        }
        match page.last() {
            Some(last) if page.len() == 500 => before = Some(last.id),
            _ => return Ok(items),
        }
    }
}

fn item(review: &ReviewRow, u: &steward_store::UserRow, roles: Vec<String>, recommendation: &str) -> ReviewItemRow {
    ReviewItemRow {
        review_id: review.id,
        user_id: u.id,
        email: u.email.clone(),
        last_login_at: u.last_login_at,
        roles,
        recommendation: recommendation.into(),
        decision: None,
    }
}

fn csv_field(value: &str) -> String {
    // Spreadsheets run cells that start like formulas: neutralise them, then quote.
    let value =
        if value.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{value}") } else { value.to_owned() };
    if value.contains([',', '"', '\n', '\r']) { format!("\"{}\"", value.replace('"', "\"\"")) } else { value }
}

/// Get an access review
///
/// Reads a review; as CSV with `Accept: text/csv`. Needs `reviews.manage`.
#[utoipa::path(get, path = "/api/v1/access-reviews/{id}", tag = "reviews",
    responses((status = 200, body = ReviewView, description = "JSON, or CSV with `Accept: text/csv`"), Forbidden,
    NotFound))]
async fn get_review(
    Acting { state, principal }: Acting,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    principal.require(Permission::ReviewsManage)?;
    let id: uuid::Uuid = id.parse().map_err(|_| ApiError::not_found("review"))?;
    let mut tx = state.store.read().await?;
    let (review, items) = tx.review(id).await?.ok_or_else(|| ApiError::not_found("review"))?;
    tx.rollback().await?;
    let wants_csv = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("text/csv"));
    if !wants_csv {
        return Ok(Json(view(&review, &items)).into_response());
    }
    let mut csv = String::from("user_id,email,last_login_at,roles,recommendation,decision\r\n");
    for i in &items {
        let last = i
            .last_login_at
            .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
            .unwrap_or_default();
        let row = [
            i.user_id.to_string(),
            i.email.clone(),
            last,
            i.roles.join(" "),
            i.recommendation.clone(),
            i.decision.clone().unwrap_or_default(),
        ];
        csv.push_str(&row.iter().map(|f| csv_field(f)).collect::<Vec<_>>().join(","));
        csv.push_str("\r\n");
    }
    let disposition = format!("attachment; filename=\"access-review-{}.csv\"", review.id);
    Ok((
        [(header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()), (header::CONTENT_DISPOSITION, disposition)],
        csv,
    )
        .into_response())
}

/// A decision about one person.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    pub user_id: String,
    /// `remove_from_org` in org reviews only.
    #[schema(value_type = crate::schema::ReviewDecisionSchema)]
    pub decision: String,
}

/// Decide on a person in a review
///
/// Records a decision (applied when the review is completed). Needs `reviews.manage`: `keep`,
/// `deactivate` or `remove_from_org`.
#[utoipa::path(post, path = "/api/v1/access-reviews/{id}/decisions", operation_id = "decide_review_item", tag = "reviews", request_body = Decision,
    responses((status = 200, body = ReviewView), BadRequest, Forbidden, NotFound, Conflict))]
async fn decide(
    Acting { state, principal }: Acting,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<Decision>,
) -> ApiResult<Json<ReviewView>> {
    principal.require(Permission::ReviewsManage)?;
    let id: uuid::Uuid = id.parse().map_err(|_| ApiError::not_found("review"))?;
    let user: UserId = req.user_id.parse().map_err(|_| ApiError::not_found("person in this review"))?;
    let now = state.clock.now();
    let mut tx = state.store.write().await?;
    let (review, _) = tx.review(id).await?.ok_or_else(|| ApiError::not_found("review"))?;
    if review.completed_at.is_some() {
        return Err(ApiError::conflict("invalid_transition", "the review is completed"));
    }
    let allowed: &[&str] = if review.org_id.is_some() { &["keep", "remove_from_org"] } else { &["keep", "deactivate"] };
    if !allowed.contains(&req.decision.as_str()) {
        return Err(ApiError::invalid("decision", format!("must be one of: {}", allowed.join(", "))));
    }
    // Only a decision the reviewer could carry out directly.
    match req.decision.as_str() {
        "deactivate" => {
            principal.require(Permission::UsersLifecycle)?;
            if let Some(target) = tx.user(user).await? {
                crate::governance::require_governs(tx.as_mut(), &principal, &target).await?;
            }
        }
        "remove_from_org" => principal.require(Permission::OrgsWrite)?,
        _ => {}
    }
    tx.decide(id, user, &req.decision).await.map_err(|_| ApiError::not_found("person in this review"))?;
    let (review, items) = tx.review(id).await?.ok_or_else(|| ApiError::not_found("review"))?;
    let event = AuditDraft::new("review.decided", principal.actor(), TargetType::User, user)
        .in_org_opt(review.org_id)
        .detail(json!({ "review_id": id, "decision": req.decision }));
    state.commit(tx, vec![event], now).await?;
    Ok(Json(view(&review, &items)))
}

/// Complete an access review
///
/// Completes a review and applies its decisions: deactivations, removals from the org. Needs
/// `reviews.manage`.
#[utoipa::path(post, path = "/api/v1/access-reviews/{id}/complete", operation_id = "complete_review", tag = "reviews",
    responses((status = 200, body = ReviewView), Forbidden, NotFound, Conflict))]
async fn complete(Acting { state, principal }: Acting, Path(id): Path<String>) -> ApiResult<Json<ReviewView>> {
    principal.require(Permission::ReviewsManage)?;
    let id: uuid::Uuid = id.parse().map_err(|_| ApiError::not_found("review"))?;
    let now = state.clock.now();
    let mut tx = state.store.write().await?;
    let (review, items) = tx.review(id).await?.ok_or_else(|| ApiError::not_found("review"))?;
    if review.completed_at.is_some() {
        return Err(ApiError::conflict("invalid_transition", "the review is completed"));
    }
    let mut events = Vec::new();
    let (mut applied, mut skipped) = (0, 0);
    for i in &items {
        match apply_decision(tx.as_mut(), &principal, &review, i, now).await? {
            Decided::Applied(done) => {
                events.extend(done);
                applied += 1;
            }
            Decided::Skipped => skipped += 1,
            Decided::Undecided => {}
        }
    }
    tx.complete_review(id, principal.user.id, now).await?;
    events.push(
        AuditDraft::new("review.completed", principal.actor(), TargetType::Instance, id)
            .detail(json!({ "applied": applied, "skipped": skipped })),
    );
    let (review, items) = tx.review(id).await?.ok_or_else(|| ApiError::not_found("review"))?;
    state.commit(tx, events, now).await?;
    Ok(Json(view(&review, &items)))
}

/// What completing a review did with one item's decision.
enum Decided {
    /// Carried out, with these events.
    Applied(Vec<AuditDraft>),
    /// Refused by the completer's rights or by the rule every path asks.
    Skipped,
    /// No decision to carry out.
    Undecided,
}

/// Carries out one item's decision with the rights of whoever completes the review, under the
/// rule every path asks (`guard_deactivate`); what either refuses is skipped.
async fn apply_decision(
    tx: &mut dyn steward_store::Tx,
    principal: &Principal,
    review: &ReviewRow,
    i: &ReviewItemRow,
    now: OffsetDateTime,
) -> ApiResult<Decided> {
    let why = json!({ "review_id": review.id });
    match (i.decision.as_deref(), review.org_id) {
        (Some("deactivate"), None) => {
            let Some(mut user) = tx.user(i.user_id).await? else { return Ok(Decided::Undecided) };
            let allowed = principal.has(Permission::UsersLifecycle)
                && crate::governance::require_governs(tx, principal, &user).await.is_ok();
            let action = steward_core::lifecycle::UserAction::Deactivate;
            if !allowed || steward_ops::users::guard_deactivate(tx, &user, principal.actor(), action).await.is_err() {
                return Ok(Decided::Skipped);
            }
            let deactivation = steward_ops::users::Deactivation::by(principal.actor(), StatusSetter::Instance, why);
            Ok(Decided::Applied(steward_ops::users::deactivate(tx, &mut user, deactivation, now).await?))
        }
        (Some("remove_from_org"), Some(org)) => {
            let member = tx.membership_in(org, i.user_id).await?;
            match member {
                Some(m) if m.role != OrgRole::Owner && principal.has(Permission::OrgsWrite) => {
                    tx.end_membership(org, i.user_id, now).await?;
                    Ok(Decided::Applied(vec![
                        AuditDraft::new("org.member_removed", principal.actor(), TargetType::User, i.user_id)
                            .in_org(org)
                            .detail(json!({ "role": m.role, "review_id": review.id })),
                    ]))
                }
                _ => Ok(Decided::Skipped),
            }
        }
        _ => Ok(Decided::Undecided),
    }
}
