//! Administration of organizations: list, detail with usage bars, license editing, members and
//! teams, Transfer ownership, the Deprovision wizard (plan first, then apply) and Restore — each
//! through the API's own handler.

use std::collections::HashMap;

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use steward_core::OrgRole;

use super::{Admin, Bar, Chrome, NoFields, PageError, Posted, done, render, usage_story, when};
use crate::error::ApiError;
use crate::extract::Page;
use crate::routes::deprovision as api_dep;
use crate::routes::orgs::{self as api, OrgQuery, TransferRequest};
use crate::routes::teams as api_teams;
use crate::routes::usage::{self as api_usage, UsageQuery};
use crate::state::AppState;
use crate::views::{MemberView, OrgView};
use steward_ops::orgs::Deprovision;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/orgs", get(list))
        .route("/admin/orgs/{id}", get(detail))
        .route("/admin/orgs/{id}/license", post(license))
        .route("/admin/orgs/{id}/transfer", post(transfer))
        .route("/admin/orgs/{id}/deprovision", get(deprovision_form).post(deprovision))
        .route("/admin/orgs/{id}/restore", get(confirm_restore).post(restore))
}

/// An org in the list.
struct OrgLine {
    org: OrgView,
    owner: String,
}

#[derive(Template)]
#[template(path = "admin/orgs.html")]
struct OrgsPage {
    chrome: Chrome,
    orgs: Vec<OrgLine>,
    next: Option<String>,
}

#[derive(Deserialize)]
struct ListQuery {
    cursor: Option<String>,
}

/// The names of users by id.
async fn names(state: &AppState, ids: Vec<String>) -> Result<HashMap<String, String>, PageError> {
    let mut tx = state.store.read().await.map_err(ApiError::from)?;
    let mut out = HashMap::new();
    for id in ids {
        if out.contains_key(&id) {
            continue;
        }
        if let Ok(uid) = id.parse()
            && let Some(u) = tx.user(uid).await.map_err(ApiError::from)?
        {
            out.insert(id, u.name);
        }
    }
    tx.rollback().await.map_err(ApiError::from)?;
    Ok(out)
}

async fn list(
    State(state): State<AppState>,
    Admin(viewer): Admin,
    axum::extract::Query(q): axum::extract::Query<ListQuery>,
) -> Result<Response, PageError> {
    let query = OrgQuery { external_id: None, limit: Some(50), cursor: q.cursor.filter(|c| !c.is_empty()) };
    let list = api::read_orgs(&state, &viewer.principal(), query).await?;
    let owners = names(&state, list.items.iter().map(|o| o.owner_id.clone()).collect()).await?;
    let orgs = list
        .items
        .into_iter()
        .map(|org| OrgLine { owner: owners.get(&org.owner_id).cloned().unwrap_or_default(), org })
        .collect();
    let next = list.next_cursor.map(|c| format!("/admin/orgs?cursor={c}"));
    let chrome = viewer.chrome.titled("Organizations");
    render(&chrome, &OrgsPage { chrome: chrome.clone(), orgs, next })
}

/// A license limit as a form field.
struct LimitField {
    name: &'static str,
    label: &'static str,
    value: String,
    hint: &'static str,
}

const LIMITS: &[(&str, &str, &str)] = &[
    ("operations", "Operations per period", "count"),
    ("transfer", "Data transfer per period", "bytes"),
    ("users", "Members (seats)", "count"),
    ("teams", "Teams", "count"),
    ("data_stores", "Data stores", "count"),
    ("data_store_bytes", "Data store storage", "bytes"),
    ("file_bytes", "File storage", "bytes"),
    ("scenarios", "Scenarios", "count"),
    ("api_requests_per_minute", "API requests per minute", "count; 0 turns the API off"),
];

fn limit_fields(license: &Value) -> Vec<LimitField> {
    LIMITS
        .iter()
        .map(|(name, label, hint)| LimitField {
            name,
            label,
            hint,
            value: license.get(*name).and_then(Value::as_u64).map(|n| n.to_string()).unwrap_or_default(),
        })
        .collect()
}

/// A team with its members named.
struct TeamLine {
    name: String,
    members: Vec<(String, String)>,
}

/// A deprovisioning in the org's history.
struct RecordLine {
    at: String,
    reason: String,
    restored: Option<String>,
}

#[derive(Template)]
#[template(path = "admin/org.html")]
struct OrgPage {
    chrome: Chrome,
    org: OrgView,
    owner: String,
    bars: Vec<Bar>,
    charts: Vec<super::chart::DayChart>,
    period: String,
    renews: String,
    frozen_why: Vec<String>,
    limits: Vec<LimitField>,
    restart_period: String,
    expires: String,
    members: Vec<MemberView>,
    candidates: Vec<MemberView>,
    teams: Vec<TeamLine>,
    records: Vec<RecordLine>,
    deprovisioned: bool,
}

impl From<&api_dep::DeprovisionRecordView> for RecordLine {
    fn from(r: &api_dep::DeprovisionRecordView) -> Self {
        RecordLine { at: when(&r.created_at), reason: r.reason.clone(), restored: r.restored_at.as_ref().map(when) }
    }
}

/// The members ownership can pass to: active, not dormant, not the owner.
fn owner_candidates(members: &[MemberView], owner_id: &str) -> Vec<MemberView> {
    let candidate = |m: &&MemberView| m.user_id != owner_id && m.status == "active" && m.kind == "person" && !m.dormant;
    members.iter().filter(candidate).cloned().collect()
}

async fn detail(
    State(state): State<AppState>,
    Admin(viewer): Admin,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let principal = viewer.principal();
    let all = || Page { limit: Some(500), cursor: None };
    let org = api::read_org(&state, &principal, id.clone()).await?;
    let usage = api_usage::read_usage(&state, &principal, id.clone(), UsageQuery { period: None }).await?;
    let charts = super::chart::usage_charts(&api_usage::read_usage_days(&state, &principal, id.clone()).await?);
    let members = api::read_members(&state, &principal, id.clone(), all()).await?;
    let teams = api_teams::read_teams(&state, &principal, id.clone(), all()).await?;
    let records = api_dep::read_records(&state, &principal, id.clone(), all()).await?;

    let story = usage_story(&usage, &org, state.clock.now());
    let mut bars = story.bars;
    // A seat is a person's: the placeholder owner holding the org takes none.
    let seats = members.items.iter().filter(|m| !m.dormant && m.kind == "person").count() as u64;
    bars.push(Bar::count("Members (seats)", seats, org.license.users));
    bars.push(Bar::count("Teams", teams.items.len() as u64, org.license.teams));
    let teams = team_lines(&teams.items, &members.items);
    let records = records.items.iter().map(RecordLine::from).collect();
    let owner = names(&state, vec![org.owner_id.clone()]).await?.remove(&org.owner_id).unwrap_or_default();
    let license = serde_json::to_value(&org.license).map_err(ApiError::internal)?;
    let candidates = owner_candidates(&members.items, &org.owner_id);
    let chrome = viewer.chrome.titled(format!("{} — Organizations", org.name));
    let page = OrgPage {
        chrome: chrome.clone(),
        owner,
        bars,
        charts,
        period: format!("{} to {}", when(&usage.period.start), when(&usage.period.end)),
        renews: story.renews,
        frozen_why: story.frozen_why,
        limits: limit_fields(&license),
        restart_period: license["restart_period"].as_str().unwrap_or("monthly").to_owned(),
        expires: org.license.expires_at.map(|e| e.date().to_string()).unwrap_or_default(),
        members: members.items,
        candidates,
        teams,
        records,
        deprovisioned: org.state == steward_core::OrgState::Deprovisioned.as_str(),
        org,
    };
    render(&chrome, &page)
}

/// Each team with its live members, named.
fn team_lines(teams: &[crate::views::TeamView], members: &[MemberView]) -> Vec<TeamLine> {
    let member_names: HashMap<_, _> = members.iter().map(|m| (m.user_id.clone(), m.name.clone())).collect();
    teams
        .iter()
        .map(|t| TeamLine {
            name: t.name.clone(),
            members: t
                .members
                .iter()
                .filter(|m| !m.dormant)
                .map(|m| {
                    let name = member_names.get(&m.user_id).cloned().unwrap_or_else(|| m.user_id.clone());
                    (name, super::story::role_words(&m.role))
                })
                .collect(),
        })
        .collect()
}

/// The license merge patch a form describes: an empty limit is unlimited.
fn license_patch(form: &HashMap<String, String>) -> Result<Value, ApiError> {
    let mut patch = serde_json::Map::new();
    for (name, _, _) in LIMITS {
        let Some(text) = form.get(*name) else { continue };
        let text = text.trim().replace(['_', ' ', ','], "");
        let value = if text.is_empty() {
            Value::Null
        } else {
            json!(
                text.parse::<u64>()
                    .map_err(|_| ApiError::invalid(*name, "must be a whole number, or empty for unlimited"))?
            )
        };
        patch.insert((*name).to_owned(), value);
    }
    if let Some(p) = form.get("restart_period") {
        patch.insert("restart_period".into(), json!(p));
    }
    if let Some(e) = form.get("expires_at") {
        let e = e.trim();
        let value = if e.is_empty() { Value::Null } else { json!(format!("{e}T00:00:00Z")) };
        patch.insert("expires_at".into(), value);
    }
    Ok(Value::Object(patch))
}

async fn license(
    Path(id): Path<String>,
    Posted { state, viewer, form }: Posted<HashMap<String, String>>,
) -> Result<Response, PageError> {
    let back = format!("/admin/orgs/{id}");
    let patch = match license_patch(&form) {
        Ok(p) => p,
        Err(e) => return done(&back, Err::<(), _>(e), |_| String::new()),
    };
    let mut headers = HeaderMap::new();
    if let Some(v) = form.get("version").and_then(|v| HeaderValue::from_str(&format!("\"{v}\"")).ok()) {
        headers.insert(header::IF_MATCH, v);
    }
    let result = api::merge_license(&state, &viewer.principal(), &id, &headers, &patch).await;
    done(&back, result, |_| "The license is saved.".into())
}

#[derive(Deserialize)]
struct TransferForm {
    new_owner_id: String,
    previous_owner_role: Option<String>,
}

async fn transfer(
    Path(id): Path<String>,
    Posted { state, viewer, form }: Posted<TransferForm>,
) -> Result<Response, PageError> {
    let back = format!("/admin/orgs/{id}");
    let role = match form.previous_owner_role.as_deref().filter(|r| !r.is_empty()).map(str::parse::<OrgRole>) {
        Some(Ok(r)) => Some(r),
        Some(Err(e)) => return done(&back, Err::<(), _>(e.into()), |_| String::new()),
        None => None,
    };
    let request = TransferRequest { new_owner_id: form.new_owner_id, previous_owner_role: role };
    let result = api::transfer(&state, &viewer.principal(), id, request).await;
    done(&back, result, |_| "Ownership is transferred.".into())
}

#[derive(Template)]
#[template(path = "admin/deprovision.html")]
struct DeprovisionPage {
    chrome: Chrome,
    org: OrgView,
    reason: String,
    demote_to: String,
    notifications_off: bool,
    /// The dry run's steps; empty on the first step of the wizard.
    plan: Vec<String>,
    /// The people whose role changes (the owner, with the role they get), by name.
    owner_name: String,
    /// The members whose emails from the org go off, by name.
    silenced: Vec<String>,
    error: Option<String>,
}

async fn deprovision_form(
    State(state): State<AppState>,
    Admin(viewer): Admin,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let org = api::read_org(&state, &viewer.principal(), id).await?;
    let chrome = viewer.chrome.titled(format!("Deprovision {}", org.name));
    let page = DeprovisionPage::choosing(chrome.clone(), org, String::new(), "member".into(), true);
    render(&chrome, &page)
}

#[derive(Deserialize)]
struct DeprovisionForm {
    reason: String,
    demote_to: Option<String>,
    notifications_off: Option<String>,
    /// `plan` (a dry run, shown for confirmation) or `apply`.
    step: String,
}

/// The wizard: `plan` shows what a deprovisioning would do (a dry run, nothing changes) with
/// the button that applies exactly those choices; `apply` does it.
async fn deprovision(
    Path(id): Path<String>,
    Posted { state, viewer, form }: Posted<DeprovisionForm>,
) -> Result<Response, PageError> {
    let demote_to = form.demote_to.clone().filter(|d| !d.is_empty()).unwrap_or_else(|| "member".into());
    let notifications_off = form.notifications_off.is_some();
    if form.step == "back" {
        // Back to the choices, as they were made.
        let org = api::read_org(&state, &viewer.principal(), id).await?;
        let chrome = viewer.chrome.titled(format!("Deprovision {}", org.name));
        let page = DeprovisionPage::choosing(chrome.clone(), org, form.reason, demote_to, notifications_off);
        return render(&chrome, &page);
    }
    let dry_run = form.step != "apply";
    let principal = viewer.principal();
    let result = async {
        let asked = Deprovision {
            reason: &form.reason,
            placeholder_owner: None,
            demote_to: demote_to.parse()?,
            notifications_off,
            dry_run,
        };
        api_dep::deprovision_org(&state, &principal, &id, asked).await
    }
    .await;
    if !dry_run {
        return done(&format!("/admin/orgs/{id}"), result, |_| {
            "The organization is deprovisioned: frozen, owned by the placeholder owner, its owner demoted. Restore undoes it."
                .into()
        });
    }
    let org = api::read_org(&state, &viewer.principal(), id.clone()).await?;
    let (plan, error) = match result {
        Ok(r) => (named_steps(&state, &viewer, &id, r.steps).await?, None),
        Err(e) if e.problem().status < 500 => (vec![], Some(e.problem().detail)),
        Err(e) => return Err(e.into()),
    };
    let members = api::read_members(&state, &viewer.principal(), id, Page { limit: Some(500), cursor: None }).await?;
    let people = members.items.iter().filter(|m| m.kind == "person");
    let owner_name = people.clone().find(|m| m.user_id == org.owner_id).map(|m| m.name.clone()).unwrap_or_default();
    let silenced = if notifications_off { people.map(|m| m.name.clone()).collect() } else { vec![] };
    let chrome = viewer.chrome.titled(format!("Deprovision {}", org.name));
    let choices = DeprovisionPage::choosing(chrome.clone(), org, form.reason, demote_to, notifications_off);
    render(&chrome, &DeprovisionPage { plan, owner_name, silenced, error, ..choices })
}

impl DeprovisionPage {
    /// The wizard's first step, with the choices as made (no plan yet).
    fn choosing(chrome: Chrome, org: OrgView, reason: String, demote_to: String, notifications_off: bool) -> Self {
        DeprovisionPage {
            chrome,
            org,
            reason,
            demote_to,
            notifications_off,
            plan: vec![],
            owner_name: String::new(),
            silenced: vec![],
            error: None,
        }
    }
}

/// The plan's steps with the people it names by id named by name.
async fn named_steps(
    state: &AppState,
    viewer: &super::Viewer,
    id: &str,
    steps: Vec<String>,
) -> Result<Vec<String>, PageError> {
    let all = Page { limit: Some(500), cursor: None };
    let members = api::read_members(state, &viewer.principal(), id.to_owned(), all).await?;
    let mut people: Vec<(String, String)> = members.items.into_iter().map(|m| (m.user_id, m.name)).collect();
    let mut tx = state.store.read().await.map_err(ApiError::from)?;
    let placeholder = tx.placeholder_user().await.map_err(ApiError::from)?;
    tx.rollback().await.map_err(ApiError::from)?;
    match placeholder {
        Some(p) => people.push((p.id.to_string(), p.name)),
        None => people.push((uuid::Uuid::nil().to_string(), "(created on first use)".into())),
    }
    Ok(steps.into_iter().map(|step| people.iter().fold(step, |s, (uid, name)| s.replace(uid.as_str(), name))).collect())
}

#[derive(Template)]
#[template(path = "admin/confirm_restore.html")]
struct ConfirmRestorePage {
    chrome: Chrome,
    org: OrgView,
    /// The deprovisioning restore undoes: when, and why.
    record: Option<RecordLine>,
}

/// Asks before a restore, saying which deprovisioning it undoes and what comes back.
async fn confirm_restore(
    State(state): State<AppState>,
    Admin(viewer): Admin,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let principal = viewer.principal();
    let org = api::read_org(&state, &principal, id.clone()).await?;
    let records = api_dep::read_records(&state, &principal, id, Page { limit: Some(50), cursor: None }).await?;
    let record = records.items.iter().find(|r| r.restored_at.is_none()).map(RecordLine::from);
    let chrome = viewer.chrome.titled(format!("Restore {}", org.name));
    render(&chrome, &ConfirmRestorePage { chrome: chrome.clone(), org, record })
}

async fn restore(
    Path(id): Path<String>,
    Posted { state, viewer, form: NoFields {} }: Posted<NoFields>,
) -> Result<Response, PageError> {
    let result = api_dep::restore_org(&state, &viewer.principal(), &id, None).await;
    done(&format!("/admin/orgs/{id}"), result, |o| {
        format!("{} is restored: license, owner, roles and notification settings are back.", o.name)
    })
}
