//! Administration of users: search, detail, Deactivate and Reactivate, Suspend and Unsuspend, each
//! with a confirmation that names what follows, Log out everywhere, notification settings and
//! Login as user — each through the API's own handler.

use std::collections::{BTreeMap, HashMap};

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;
use steward_core::lifecycle::{NOTIFICATION_CATEGORIES, ORG_NOTIFICATION_CATEGORIES};
use steward_core::{Permission, UserId};

use super::{Admin, Chrome, PageError, Posted, RETURN_COOKIE, done, local_path, render, when};
use crate::error::ApiError;
use crate::extract::Page;
use crate::routes::ClientIp;
use crate::routes::lifecycle::{self as api, ImpersonateRequest, NotificationSettings};
use crate::routes::users::{self as api_users, UserQuery};
use crate::state::AppState;
use crate::views::AuditEventView;
use crate::views::{SessionView, UserView};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/users", get(list))
        .route("/admin/users/{id}", get(detail))
        .route("/admin/users/{id}/{action}", get(confirm).post(change_status))
        .route("/admin/users/{id}/sessions/revoke", post(revoke_sessions))
        .route("/admin/users/{id}/notifications", post(notifications))
        .route("/admin/users/{id}/impersonate", post(impersonate))
}

/// The statuses the list can be filtered by.
pub const STATUSES: &[&str] = &["invited", "active", "suspended", "deactivated", "anonymized"];

#[derive(Template)]
#[template(path = "admin/users.html")]
struct UsersPage {
    chrome: Chrome,
    q: String,
    status: String,
    statuses: &'static [&'static str],
    users: Vec<UserView>,
    next: Option<String>,
}

#[derive(Deserialize)]
struct ListQuery {
    q: Option<String>,
    status: Option<String>,
    cursor: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    Admin(viewer): Admin,
    axum::extract::Query(q): axum::extract::Query<ListQuery>,
) -> Result<Response, PageError> {
    let text = q.q.clone().unwrap_or_default();
    let status = q.status.clone().filter(|s| STATUSES.contains(&s.as_str())).unwrap_or_default();
    let query = UserQuery {
        q: Some(text.clone()).filter(|t| !t.trim().is_empty()),
        status: Some(status.clone()).filter(|s| !s.is_empty()),
        org_id: None,
        inactive_since: None,
        limit: Some(50),
        cursor: q.cursor.filter(|c| !c.is_empty()),
    };
    let list = api_users::read_users(&state, &viewer.principal(), query).await?;
    let next = list.next_cursor.map(|c| {
        let mut s = form_urlencoded::Serializer::new(String::new());
        s.append_pair("q", &text).append_pair("status", &status).append_pair("cursor", &c);
        format!("/admin/users?{}", s.finish())
    });
    let chrome = viewer.chrome.titled("Users");
    let page = UsersPage { chrome: chrome.clone(), q: text, status, statuses: STATUSES, users: list.items, next };
    render(&chrome, &page)
}

/// One of the user's org memberships.
struct MembershipLine {
    org_id: String,
    org_name: String,
    role: String,
    dormant: bool,
}

/// One of the user's team memberships.
struct TeamLine {
    team_name: String,
    org_id: String,
    org_name: String,
    role: String,
    dormant: bool,
}

/// An audit event as the pages list it.
pub struct HistoryLine {
    pub at: String,
    /// The event type, such as `org.member_added`.
    pub kind: String,
    /// What happened, with names and from → to values.
    pub sentence: String,
    /// The target as stored (type and id), and the facts as recorded, for those who look closer.
    pub target: String,
    pub detail: String,
}

/// A notification category and whether it is on.
pub struct Switch {
    /// The form field: the category, or `org:<org id>:<category>` for an org's own emails.
    pub name: String,
    pub label: String,
    pub on: bool,
}

/// "usage_alerts" → "Usage alerts".
fn category_label(c: &str) -> String {
    let mut s = c.replace('_', " ");
    if let Some(first) = s.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    s
}

/// The person's notification switches of a settings document.
pub fn switches(settings: &NotificationSettings) -> Vec<Switch> {
    NOTIFICATION_CATEGORIES
        .iter()
        .map(|c| Switch {
            name: (*c).to_owned(),
            label: category_label(c),
            on: settings.categories.get(*c).copied().unwrap_or(true),
        })
        .collect()
}

/// The switches of the org `org`'s own emails in a settings document.
pub fn org_switches(settings: &NotificationSettings, org: &str) -> Vec<Switch> {
    let of_org = settings.of_org(org);
    ORG_NOTIFICATION_CATEGORIES
        .iter()
        .map(|c| Switch {
            name: format!("org:{org}:{c}"),
            label: category_label(c),
            on: of_org.and_then(|o| o.get(*c)).copied().unwrap_or(true),
        })
        .collect()
}

/// Settings as a form sends them: the person's categories, every one named, the checked ones
/// on; and for each org the form showed (a hidden `org:<id>` field), its categories likewise.
pub fn settings_from_form(form: &BTreeMap<String, String>) -> NotificationSettings {
    let orgs = form
        .keys()
        .filter_map(|k| k.strip_prefix("org:").filter(|rest| !rest.contains(':')))
        .map(|org| {
            let categories = ORG_NOTIFICATION_CATEGORIES
                .iter()
                .map(|c| ((*c).to_owned(), form.contains_key(&format!("org:{org}:{c}"))))
                .collect();
            crate::routes::lifecycle::OrgNotifications { org_id: org.to_owned(), categories }
        })
        .collect();
    NotificationSettings {
        categories: NOTIFICATION_CATEGORIES.iter().map(|c| ((*c).to_owned(), form.contains_key(*c))).collect(),
        orgs,
    }
}

#[derive(Template)]
#[template(path = "admin/user.html")]
struct UserPage {
    chrome: Chrome,
    user: UserView,
    last_login: String,
    memberships: Vec<MembershipLine>,
    teams: Vec<TeamLine>,
    sessions: Vec<SessionLine>,
    history: Vec<HistoryLine>,
    /// Since when the user is in their status, by whom and why, for those who read the audit log.
    status_story: Option<String>,
    /// A deactivation the user is scheduled for.
    scheduled: Option<String>,
    switches: Vec<Switch>,
    can_lifecycle: bool,
    can_impersonate: bool,
    can_revoke: bool,
    can_write: bool,
    is_self: bool,
}

async fn detail(
    State(state): State<AppState>,
    Admin(viewer): Admin,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let principal = viewer.principal();
    let user = api_users::read_user(&state, &principal, id.clone()).await?;
    let user_id: UserId = user.id.parse().map_err(|_| ApiError::not_found("user"))?;
    let sessions =
        api::read_user_sessions(&state, &principal, id.clone(), Page { limit: Some(100), cursor: None }).await?;
    let settings = api::read_user_notifications(&state, &principal, id.clone()).await?;
    let history = if principal.has(Permission::AuditRead) {
        let list =
            api::read_user_history(&state, &principal, id.clone(), Page { limit: Some(30), cursor: None }).await?;
        list.items
    } else {
        vec![]
    };

    let mut tx = state.store.read().await.map_err(ApiError::from)?;
    let (memberships, teams) = places(tx.as_mut(), user_id).await?;
    let history = describe(tx.as_mut(), &history).await?;
    let status_story = match principal.has(Permission::AuditRead) {
        true => status_story(tx.as_mut(), &user).await?,
        false => None,
    };
    tx.rollback().await.map_err(ApiError::from)?;

    let last_login = user.last_login_at.as_ref().map_or_else(|| "never".into(), when);
    let chrome = viewer.chrome.titled(format!("{} — Users", user.name));
    let page = UserPage {
        chrome: chrome.clone(),
        is_self: user.id == principal.user.id.to_string(),
        last_login,
        memberships,
        teams,
        sessions: sessions.items.iter().map(SessionLine::from).collect(),
        history,
        status_story,
        scheduled: user.deactivate_at.as_ref().map(when),
        switches: switches(&settings),
        can_lifecycle: principal.has(Permission::UsersLifecycle),
        can_impersonate: principal.has(Permission::UsersImpersonate),
        can_revoke: principal.has(Permission::SessionsRevoke),
        can_write: principal.has(Permission::UsersWrite),
        user,
    };
    render(&chrome, &page)
}

/// The event that put the user in their status, told with its time: "2026-12-07 14:02 UTC: Ada
/// deactivated Bob, saying “Left”." None when no such event is kept (an archived log).
async fn status_story(tx: &mut dyn steward_store::Tx, user: &UserView) -> Result<Option<String>, PageError> {
    let kinds: &[&str] = match user.status.as_str() {
        "deactivated" => &["user.deactivated"],
        "suspended" => &["user.suspended"],
        "anonymized" => &["user.anonymized"],
        "invited" => &["user.created"],
        _ => &["user.reactivated", "user.unsuspended", "user.activated", "user.created"],
    };
    let target = Some(user.id.clone());
    let mut latest: Option<steward_core::AuditRecord> = None;
    for kind in kinds {
        let filter = steward_store::AuditFilter {
            target_id: target.clone(),
            kind: Some((*kind).to_owned()),
            limit: 1,
            ..Default::default()
        };
        let found = tx.list_audit(&filter).await.map_err(ApiError::from)?.into_iter().next();
        if let Some(r) = found.filter(|r| latest.as_ref().is_none_or(|l| r.seq > l.seq)) {
            latest = Some(r);
        }
    }
    let Some(record) = latest else { return Ok(None) };
    let view = AuditEventView::from(&record);
    let cast = super::story::Cast::of(tx, &mut super::story::Names::default(), &view).await?;
    Ok(Some(format!("{}: {}", when(&view.at), super::story::sentence(&view, &cast))))
}

/// The user's memberships and team memberships, with the names of their orgs and teams.
async fn places(
    tx: &mut dyn steward_store::Tx,
    user_id: UserId,
) -> Result<(Vec<MembershipLine>, Vec<TeamLine>), ApiError> {
    let member_rows = tx.memberships_of(user_id).await?;
    let org_names: HashMap<_, _> = member_rows.iter().map(|m| (m.org_id, m.org_name.clone())).collect();
    let memberships = member_rows
        .iter()
        .map(|m| MembershipLine {
            org_id: m.org_id.to_string(),
            org_name: m.org_name.clone(),
            role: m.role.to_string(),
            dormant: m.dormant,
        })
        .collect();
    let mut teams = Vec::new();
    for t in tx.teams_of_user(user_id).await? {
        let team_name = tx.team(t.team_id).await?.map(|t| t.name).unwrap_or_default();
        teams.push(TeamLine {
            team_name,
            org_id: t.org_id.to_string(),
            org_name: org_names.get(&t.org_id).cloned().unwrap_or_default(),
            role: super::story::role_words(t.role.as_str()),
            dormant: t.dormant,
        });
    }
    Ok((memberships, teams))
}

/// Audit events told as sentences, their people and orgs named.
pub async fn describe(
    tx: &mut dyn steward_store::Tx,
    events: &[AuditEventView],
) -> Result<Vec<HistoryLine>, PageError> {
    let mut names = super::story::Names::default();
    let mut lines = Vec::with_capacity(events.len());
    for e in events {
        let cast = super::story::Cast::of(tx, &mut names, e).await?;
        lines.push(HistoryLine {
            at: when(&e.at),
            kind: e.kind.clone(),
            sentence: super::story::sentence(e, &cast),
            target: format!("{} {}", e.target_type, e.target_id),
            detail: e.detail.to_string(),
        });
    }
    Ok(lines)
}

/// A session as the pages list it.
pub struct SessionLine {
    pub id: String,
    pub started: String,
    pub expires: String,
    pub ip: String,
    pub agent: String,
    pub impersonated: bool,
    pub current: bool,
}

impl From<&SessionView> for SessionLine {
    fn from(s: &SessionView) -> Self {
        SessionLine {
            id: s.id.clone(),
            started: when(&s.created_at),
            expires: when(&s.expires_at),
            ip: s.ip.clone().unwrap_or_default(),
            agent: s.user_agent.clone().unwrap_or_default(),
            impersonated: s.impersonator_id.is_some(),
            current: s.current,
        }
    }
}

/// A change of a user's status that the pages offer, each confirmed first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StatusChange {
    Deactivate,
    Reactivate,
    Suspend,
    Unsuspend,
}

impl StatusChange {
    fn parse(action: &str) -> Option<StatusChange> {
        match action {
            "deactivate" => Some(StatusChange::Deactivate),
            "reactivate" => Some(StatusChange::Reactivate),
            "suspend" => Some(StatusChange::Suspend),
            "unsuspend" => Some(StatusChange::Unsuspend),
            _ => None,
        }
    }

    /// The button's word, which is also the path's.
    fn verb(self) -> &'static str {
        match self {
            StatusChange::Deactivate => "Deactivate",
            StatusChange::Reactivate => "Reactivate",
            StatusChange::Suspend => "Suspend",
            StatusChange::Unsuspend => "Unsuspend",
        }
    }

    fn path(self) -> String {
        self.verb().to_lowercase()
    }

    /// Whether it takes access away (a danger button and a reason).
    fn takes_away(self) -> bool {
        matches!(self, StatusChange::Deactivate | StatusChange::Suspend)
    }

    /// What the flash says once it is done.
    fn done(self, name: &str) -> String {
        match self {
            StatusChange::Deactivate => {
                format!("{name} is deactivated: signed out everywhere, memberships kept dormant.")
            }
            StatusChange::Reactivate => format!("{name} is reactivated, with every previous role."),
            StatusChange::Suspend => {
                format!("{name} is suspended: signed out everywhere until the suspension is lifted.")
            }
            StatusChange::Unsuspend => format!("{name} is no longer suspended and can sign in again."),
        }
    }
}

#[derive(Template)]
#[template(path = "admin/confirm_user.html")]
struct ConfirmPage {
    chrome: Chrome,
    user: UserView,
    verb: &'static str,
    path: String,
    takes_away: bool,
    deactivate: bool,
    /// The orgs the user owns, which change owner on deactivation.
    owned: Vec<(String, String)>,
}

async fn confirm(
    State(state): State<AppState>,
    Admin(viewer): Admin,
    Path((id, action)): Path<(String, String)>,
) -> Result<Response, PageError> {
    let change = StatusChange::parse(&action).ok_or_else(|| ApiError::not_found("page"))?;
    let user = api_users::read_user(&state, &viewer.principal(), id).await?;
    let user_id: UserId = user.id.parse().map_err(|_| ApiError::not_found("user"))?;
    let owned = if change == StatusChange::Deactivate {
        let mut tx = state.store.read().await.map_err(ApiError::from)?;
        let orgs = tx.orgs_owned_by(user_id).await.map_err(ApiError::from)?;
        tx.rollback().await.map_err(ApiError::from)?;
        orgs.into_iter().map(|o| (o.id.to_string(), o.name)).collect()
    } else {
        vec![]
    };
    let chrome = viewer.chrome.titled(format!("{} {}", change.verb(), user.name));
    let page = ConfirmPage {
        chrome: chrome.clone(),
        user,
        verb: change.verb(),
        path: change.path(),
        takes_away: change.takes_away(),
        deactivate: change == StatusChange::Deactivate,
        owned,
    };
    render(&chrome, &page)
}

#[derive(Deserialize)]
struct ReasonForm {
    reason: Option<String>,
}

async fn change_status(
    Path((id, action)): Path<(String, String)>,
    Posted { state, viewer, form }: Posted<ReasonForm>,
) -> Result<Response, PageError> {
    let change = StatusChange::parse(&action).ok_or_else(|| ApiError::not_found("page"))?;
    let principal = viewer.principal();
    let result = match change {
        StatusChange::Deactivate => {
            let reason = form.reason.map(|r| r.trim().to_owned()).filter(|r| !r.is_empty());
            let request = api::DeactivateRequest { reason, new_owner_id: None };
            api::deactivate_user(&state, &principal, &id, request).await
        }
        StatusChange::Reactivate => api::reactivate_user(&state, &principal, &id).await,
        StatusChange::Suspend => api::change_suspension(&state, &principal, &id, true).await,
        StatusChange::Unsuspend => api::change_suspension(&state, &principal, &id, false).await,
    };
    done(&format!("/admin/users/{id}"), result, |u| change.done(&u.name))
}

async fn revoke_sessions(
    Path(id): Path<String>,
    Posted { state, viewer, form: _ }: Posted<ReasonForm>,
) -> Result<Response, PageError> {
    let result = api::end_user_sessions(&state, &viewer.principal(), id.clone()).await;
    done(&format!("/admin/users/{id}"), result, |r| format!("Logged out everywhere: {} sessions ended.", r.revoked))
}

async fn notifications(
    Path(id): Path<String>,
    Posted { state, viewer, form }: Posted<BTreeMap<String, String>>,
) -> Result<Response, PageError> {
    let settings = settings_from_form(&form);
    let result = api::set_user_notifications(&state, &viewer.principal(), id.clone(), settings).await;
    done(&format!("/admin/users/{id}"), result, |_| "Notification settings saved.".into())
}

#[derive(Deserialize)]
struct ImpersonateForm {
    reason: String,
}

/// Login as user: the API starts the session and sets its cookies; the page where the admin
/// pressed the button is remembered for "Return to administration".
async fn impersonate(
    ip: ClientIp,
    headers: HeaderMap,
    Path(id): Path<String>,
    Posted { state, viewer, form }: Posted<ImpersonateForm>,
) -> Result<Response, PageError> {
    let back = format!("/admin/users/{id}");
    let request = ImpersonateRequest { reason: form.reason };
    let secure = super::secure(&state);
    let session = match api::start_impersonation(&state, &viewer.principal(), (ip.0, &headers), &id, request).await {
        Ok(s) => s,
        Err(e) => return done(&back, Err::<(), _>(e), |_| String::new()),
    };
    let mut r = super::see_other("/app");
    let max_age = (session.expires_at - state.clock.now()).whole_seconds();
    crate::extract::set_session_cookies(&state, r.headers_mut(), &session.token, max_age);
    let back = local_path(Some(&back), "/admin");
    if let Ok(v) = HeaderValue::from_str(&format!("{RETURN_COOKIE}={back}; Path=/; HttpOnly; SameSite=Lax{secure}")) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(r)
}
