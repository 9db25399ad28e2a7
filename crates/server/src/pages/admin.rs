//! The administration overview, the audit log viewer and the instance settings (branding).

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};
use steward_core::Permission;

use super::admin_users::{HistoryLine, describe};
use super::{Admin, Chrome, PageError, Posted, done, render};
use crate::error::ApiError;
use crate::routes::audit::{self as api_audit, AuditQuery};
use crate::routes::instance as api_instance;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin", get(overview))
        .route("/admin/audit", get(audit))
        .route("/admin/settings", get(settings_form).post(settings))
}

#[derive(Template)]
#[template(path = "admin/overview.html")]
struct OverviewPage {
    chrome: Chrome,
    recent: Vec<HistoryLine>,
    can_audit: bool,
    /// The instance at a glance, each figure for those allowed to read it.
    glance: Glance,
}

/// How many people and orgs there are, by status and state, and the sign-ins of the last 30 days.
#[derive(Debug, Default)]
struct Glance {
    people: Vec<(String, u64)>,
    orgs: Vec<(String, u64)>,
    /// Active orgs frozen now (a consumable used up or the license expired).
    frozen: Option<u64>,
    sign_ins: Option<super::chart::DayChart>,
}

/// Reads the figures of the overview that `principal` may read.
async fn glance(state: &AppState, principal: &crate::extract::Principal) -> Result<Glance, ApiError> {
    let now = state.clock.now();
    let mut tx = state.store.read().await?;
    let mut glance = Glance::default();
    if principal.has(Permission::UsersRead) {
        glance.people = tx.people_by_status().await?.into_iter().map(|(s, n)| (s.to_string(), n)).collect();
    }
    if principal.has(Permission::OrgsRead) {
        glance.orgs = tx.orgs_by_state().await?.into_iter().map(|(s, n)| (s.to_string(), n)).collect();
        let count = steward_ops::orgs::count_frozen(tx.as_mut(), now);
        glance.frozen = Some(state.hot.frozen_count(now, count).await?);
    }
    if principal.has(Permission::AuditRead) {
        let since = (now - time::Duration::days(29)).replace_time(time::Time::MIDNIGHT);
        let days = tx.sign_ins_per_day(since).await?;
        let title = "Sign-ins per day, the last 30 days";
        let through_today = now + time::Duration::days(1);
        let chart =
            super::chart::DayChart::new("sign-ins-per-day", title, since, through_today, &days, |n| n.to_string());
        glance.sign_ins = Some(chart);
    }
    tx.rollback().await?;
    Ok(glance)
}

async fn overview(State(state): State<AppState>, Admin(viewer): Admin) -> Result<Response, PageError> {
    let principal = viewer.principal();
    let can_audit = principal.has(Permission::AuditRead);
    let recent = if can_audit {
        let query = AuditQuery {
            actor_id: None,
            target_id: None,
            org_id: None,
            kind: None,
            since: None,
            until: None,
            limit: Some(10),
            cursor: None,
        };
        let list = api_audit::read_audit(&state, &principal, query).await?;
        let mut tx = state.store.read().await.map_err(ApiError::from)?;
        let lines = describe(tx.as_mut(), &list.items).await?;
        tx.rollback().await.map_err(ApiError::from)?;
        lines
    } else {
        vec![]
    };
    let glance = glance(&state, &principal).await?;
    let chrome = viewer.chrome.titled("Administration");
    render(&chrome, &OverviewPage { chrome: chrome.clone(), recent, can_audit, glance })
}

/// The audit filters as the form sends them (empty fields mean no filter).
#[derive(Debug, Default, Deserialize)]
struct AuditForm {
    actor_id: Option<String>,
    target_id: Option<String>,
    org_id: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    since: Option<String>,
    until: Option<String>,
    cursor: Option<String>,
}

fn given(v: &Option<String>) -> Option<String> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned)
}

/// A date (`YYYY-MM-DD`) from the form as the start of that day, or an RFC 3339 time as is.
fn day_start(v: &Option<String>) -> Option<String> {
    given(v).map(|d| if d.len() == 10 { format!("{d}T00:00:00Z") } else { d })
}

#[derive(Template)]
#[template(path = "admin/audit.html")]
struct AuditPage {
    chrome: Chrome,
    actor_id: String,
    target_id: String,
    org_id: String,
    kind: String,
    since: String,
    until: String,
    events: Vec<AuditLine>,
    next: Option<String>,
    error: Option<String>,
}

/// An event in the viewer.
struct AuditLine {
    seq: i64,
    line: HistoryLine,
    org_id: String,
}

impl AuditForm {
    /// The link to the next page of the same search.
    fn next_page(&self, cursor: &str) -> String {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("actor_id", &self.actor_id),
            ("target_id", &self.target_id),
            ("org_id", &self.org_id),
            ("type", &self.kind),
            ("since", &self.since),
            ("until", &self.until),
        ] {
            if let Some(v) = given(v) {
                s.append_pair(k, &v);
            }
        }
        s.append_pair("cursor", cursor);
        format!("/admin/audit?{}", s.finish())
    }
}

/// What a filter field names: nothing, an id, or a person (by email) or an org (by name) that
/// is looked up; Err says why the text names nothing, or which of several orgs to pick.
async fn resolve(
    tx: &mut dyn steward_store::Tx,
    text: Option<String>,
    people: bool,
    orgs: bool,
) -> Result<Option<String>, String> {
    let Some(text) = text else { return Ok(None) };
    if text.parse::<uuid::Uuid>().is_ok() {
        return Ok(Some(text));
    }
    if people && text.contains('@') {
        let email = steward_core::Email::parse(&text).map_err(|_| format!("{text} is not an email address"))?;
        let user = tx.user_by_email_key(&email.key()).await.map_err(|e| e.to_string())?;
        return user.map(|u| Some(u.id.to_string())).ok_or_else(|| format!("No user has the email {text}."));
    }
    if orgs {
        // The same lookup SCIM uses for a group's org: one org of that name, ignoring case.
        let named = tx.orgs_named(&text).await.map_err(|e| e.to_string())?;
        return match named.as_slice() {
            [one] => Ok(Some(one.id.to_string())),
            [] => Err(format!("No organization is named {text}.")),
            _ => Err(format!("Several organizations are named {text}; give the id shown on the one you mean.")),
        };
    }
    Err(format!("Give an email address or an id, not {text}."))
}

async fn audit(
    State(state): State<AppState>,
    Admin(viewer): Admin,
    axum::extract::Query(form): axum::extract::Query<AuditForm>,
) -> Result<Response, PageError> {
    let mut tx = state.store.read().await.map_err(ApiError::from)?;
    let resolved = async {
        let actor = resolve(tx.as_mut(), given(&form.actor_id), true, false).await?;
        let target = resolve(tx.as_mut(), given(&form.target_id), true, true).await?;
        let org = resolve(tx.as_mut(), given(&form.org_id), false, true).await?;
        Ok::<_, String>((actor, target, org))
    }
    .await;
    tx.rollback().await.map_err(ApiError::from)?;
    let (actor_id, target_id, org_id) = match resolved {
        Ok(ids) => ids,
        Err(why) => {
            let chrome = viewer.chrome.titled("Audit log");
            return render(&chrome, &AuditPage::of(chrome.clone(), &form, vec![], None, Some(why)));
        }
    };
    let query = AuditQuery {
        actor_id,
        target_id,
        org_id,
        kind: given(&form.kind),
        since: day_start(&form.since),
        until: day_start(&form.until),
        limit: Some(50),
        cursor: given(&form.cursor),
    };
    let (events, next, error) = match api_audit::read_audit(&state, &viewer.principal(), query).await {
        Ok(list) => {
            let mut tx = state.store.read().await.map_err(ApiError::from)?;
            let lines = describe(tx.as_mut(), &list.items).await?;
            tx.rollback().await.map_err(ApiError::from)?;
            let events = list
                .items
                .iter()
                .zip(lines)
                .map(|(e, line)| AuditLine { seq: e.seq, org_id: e.org_id.clone().unwrap_or_default(), line })
                .collect();
            let next = list.next_cursor.map(|c| form.next_page(&c));
            (events, next, None)
        }
        Err(e) if e.problem().status == 400 => (vec![], None, Some(e.problem().detail)),
        Err(e) => return Err(e.into()),
    };
    let chrome = viewer.chrome.titled("Audit log");
    render(&chrome, &AuditPage::of(chrome.clone(), &form, events, next, error))
}

impl AuditPage {
    /// The page with the filters as they were given.
    fn of(
        chrome: Chrome,
        form: &AuditForm,
        events: Vec<AuditLine>,
        next: Option<String>,
        error: Option<String>,
    ) -> Self {
        let text = |v: &Option<String>| given(v).unwrap_or_default();
        AuditPage {
            chrome,
            actor_id: text(&form.actor_id),
            target_id: text(&form.target_id),
            org_id: text(&form.org_id),
            kind: text(&form.kind),
            since: text(&form.since),
            until: text(&form.until),
            events,
            next,
            error,
        }
    }
}

#[derive(Template)]
#[template(path = "admin/settings.html")]
struct SettingsPage {
    chrome: Chrome,
    name: String,
    product_name: String,
    primary_color: String,
    logo_url: String,
    support_email: String,
    version: i64,
    can_manage: bool,
}

async fn settings_form(State(state): State<AppState>, Admin(viewer): Admin) -> Result<Response, PageError> {
    let principal = viewer.principal();
    let view = api_instance::read_instance(&state, &principal).await?;
    let b = &view.settings.branding;
    let chrome = viewer.chrome.titled("Instance settings");
    let page = SettingsPage {
        chrome: chrome.clone(),
        name: view.settings.name.clone(),
        product_name: b.product_name.clone().unwrap_or_default(),
        primary_color: b.primary_color.clone().unwrap_or_default(),
        logo_url: b.logo_url.clone().unwrap_or_default(),
        support_email: b.support_email.clone().unwrap_or_default(),
        version: view.version,
        can_manage: principal.has(Permission::InstanceManage),
    };
    render(&chrome, &page)
}

#[derive(Deserialize)]
struct SettingsForm {
    name: String,
    product_name: String,
    primary_color: String,
    logo_url: String,
    support_email: String,
    version: Option<String>,
}

async fn settings(Posted { state, viewer, form }: Posted<SettingsForm>) -> Result<Response, PageError> {
    let optional = |s: &str| {
        let s = s.trim();
        if s.is_empty() { Value::Null } else { json!(s) }
    };
    let patch = json!({
        "name": form.name.trim(),
        "branding": {
            "product_name": optional(&form.product_name),
            "primary_color": optional(&form.primary_color.to_ascii_lowercase()),
            "logo_url": optional(&form.logo_url),
            "support_email": optional(&form.support_email),
        }
    });
    let mut headers = HeaderMap::new();
    if let Some(v) = form.version.and_then(|v| axum::http::HeaderValue::from_str(&format!("\"{v}\"")).ok()) {
        headers.insert(axum::http::header::IF_MATCH, v);
    }
    let result = api_instance::change_instance(&state, &viewer.principal(), &headers, patch).await;
    done("/admin/settings", result, |_| "The settings are saved; every page now uses them.".into())
}
