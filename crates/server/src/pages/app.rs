//! The end-user dashboard: my organizations (role, Frozen badge, usage), my teams, notification
//! settings, security (password, sessions, API tokens), and for an org's owner and admins its
//! members, invitations, roles and teams — each through the API's own handler.

use std::collections::{BTreeMap, HashMap};

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;
use steward_core::{Email, OrgAction, OrgId, OrgRole, TeamName, TeamRole};

use super::admin_users::{SessionLine, Switch, org_switches, settings_from_form, switches};
use super::{Bar, Chrome, NoFields, PageError, Posted, Viewer, done, render, usage_story, when};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Page, Principal};
use crate::routes::auth as api_auth;
use crate::routes::invitations::{self as api_inv, NewInvitation};
use crate::routes::orgs::{self as api_orgs, MemberRole};
use crate::routes::security as api_security;
use crate::routes::teams::{self as api_teams, TeamInput, TeamMemberRole};
use crate::routes::tokens as api_tokens;
use crate::routes::usage::{self as api_usage, UsageQuery};
use crate::state::AppState;
use crate::views::{InvitationView, MemberView, OrgView};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/app", get(dashboard))
        .route("/app/notifications", post(notifications))
        .route("/app/security", get(security))
        .route("/app/totp/start", post(totp_start))
        .route("/app/totp/confirm", post(totp_confirm))
        .route("/app/totp/recovery-codes", post(totp_recovery_codes))
        .route("/app/totp/off", post(totp_off))
        .route("/app/password", post(password))
        .route("/app/sessions/{id}/end", post(end_session))
        .route("/app/tokens", post(create_token))
        .route("/app/tokens/{id}/revoke", post(revoke_token))
        .route("/app/orgs/{id}", get(org))
        .route("/app/orgs/{id}/invite", post(invite))
        .route("/app/orgs/{id}/invitations/{invitation_id}/revoke", post(revoke_invitation))
        .route("/app/invitations/{id}/accept", post(accept_invitation))
        .route("/app/orgs/{id}/members/{user_id}/role", post(member_role))
        .route("/app/orgs/{id}/members/{user_id}/remove", get(confirm_remove).post(remove_member))
        .route("/app/orgs/{id}/teams", post(create_team))
        .route("/app/orgs/{id}/teams/{team_id}/members", post(team_member))
}

/// One of my organizations, as its member sees it on the dashboard and at the top of its page
/// ([`org_card`]).
struct OrgCard {
    id: String,
    name: String,
    role: String,
    frozen: bool,
    manage: bool,
    bars: Vec<Bar>,
    /// When the period renews, for those who may read usage.
    renews: String,
    /// Why the org is frozen and what lifts it: with the amounts for those who may read usage.
    frozen_why: Vec<String>,
}

/// The summary of `org` for a viewer with `role` in it (none: an operator who is not a member):
/// one function for the dashboard's card and the org's page, so that both tell the same story.
async fn org_card(state: &AppState, principal: &Principal, org: &OrgView, role: Option<OrgRole>) -> ApiResult<OrgCard> {
    let now = state.clock.now();
    let mut card = OrgCard {
        id: org.id.clone(),
        name: org.name.clone(),
        role: role.map(|r| r.to_string()).unwrap_or_default(),
        frozen: org.frozen,
        manage: role.is_some_and(|r| r.allows(OrgAction::OrgManage)),
        bars: vec![],
        renews: String::new(),
        frozen_why: super::format::frozen_why_for_members(org, now),
    };
    if role.is_some_and(|r| r.allows(OrgAction::UsageRead)) {
        let usage = api_usage::read_usage(state, principal, org.id.clone(), UsageQuery { period: None }).await?;
        let story = usage_story(&usage, org, now);
        card.bars = story.bars.into_iter().filter(|b| b.limit.is_some() || b.used > 0).collect();
        card.renews = story.renews;
        card.frozen_why = story.frozen_why;
    }
    Ok(card)
}

/// One of my teams.
struct TeamCard {
    name: String,
    org_name: String,
    role: String,
}

#[derive(Template)]
#[template(path = "app/dashboard.html")]
struct DashboardPage {
    chrome: Chrome,
    name: String,
    orgs: Vec<OrgCard>,
    teams: Vec<TeamCard>,
    switches: Vec<Switch>,
    /// Per org: its id, name and the switches of its own emails.
    org_switches: Vec<(String, String, Vec<Switch>)>,
    /// Invitations to orgs waiting for my answer.
    invitations: Vec<InvitationView>,
}

async fn dashboard(State(state): State<AppState>, viewer: Viewer) -> Result<Response, PageError> {
    let principal = viewer.principal();
    let mut tx = state.store.read().await.map_err(ApiError::from)?;
    let memberships: Vec<_> = tx
        .memberships_of(principal.user.id)
        .await
        .map_err(ApiError::from)?
        .into_iter()
        .filter(|m| !m.dormant)
        .collect();
    let org_names: HashMap<_, _> = memberships.iter().map(|m| (m.org_id, m.org_name.clone())).collect();
    let mut teams = Vec::new();
    for t in tx.teams_of_user(principal.user.id).await.map_err(ApiError::from)? {
        if t.dormant {
            continue;
        }
        let name = tx.team(t.team_id).await.map_err(ApiError::from)?.map(|t| t.name).unwrap_or_default();
        teams.push(TeamCard {
            name,
            org_name: org_names.get(&t.org_id).cloned().unwrap_or_default(),
            role: super::story::role_words(t.role.as_str()),
        });
    }
    tx.rollback().await.map_err(ApiError::from)?;
    let mut cards = Vec::new();
    for m in memberships {
        // A membership ended since it was read leaves no card.
        match api_orgs::read_org(&state, &principal, m.org_id.to_string()).await {
            Ok(org) => cards.push(org_card(&state, &principal, &org, Some(m.role)).await?),
            Err(e) if matches!(e.code(), "not_found" | "forbidden") => continue,
            Err(e) => return Err(e.into()),
        }
    }
    let invitations = api_inv::read_my_invitations(&state, &principal, Page { limit: Some(50), cursor: None }).await?;
    let settings = api_auth::read_my_notifications(&state, &principal).await?;
    let org_cards_switches =
        cards.iter().map(|c| (c.id.clone(), c.name.clone(), org_switches(&settings, &c.id))).collect();
    let chrome = viewer.chrome.titled("My dashboard");
    let page = DashboardPage {
        chrome: chrome.clone(),
        name: principal.user.name.clone(),
        orgs: cards,
        teams,
        switches: switches(&settings),
        org_switches: org_cards_switches,
        invitations: invitations.items,
    };
    render(&chrome, &page)
}

async fn notifications(
    Posted { state, viewer, form }: Posted<BTreeMap<String, String>>,
) -> Result<Response, PageError> {
    let result = api_auth::set_my_notifications(&state, &viewer.principal(), settings_from_form(&form)).await;
    done("/app", result, |_| "Your notification settings are saved.".into())
}

/// An API token in the list.
struct TokenLine {
    id: String,
    name: String,
    created: String,
    expires: String,
}

#[derive(Template)]
#[template(path = "app/security.html")]
struct SecurityPage {
    chrome: Chrome,
    sessions: Vec<SessionLine>,
    tokens: Vec<TokenLine>,
    impersonating: bool,
    /// What this answer shows once: a token just created, an enrolment's QR code, recovery codes.
    shown: Shown,
    /// Whether two-factor sign-in is on, an enrolment is pending, and the recovery codes left.
    two_factor: (bool, bool, i64),
}

/// A secret the security page shows once, in the answer that made it.
enum Shown {
    Nothing,
    /// A new API token: its name and secret.
    Token(String, String),
    /// A started enrolment: the QR code as a data URI, and the secret for typing.
    Enrolment(String, String),
    /// New recovery codes.
    RecoveryCodes(Vec<String>),
}

async fn security_page(state: AppState, viewer: Viewer, shown: Shown) -> Result<Response, PageError> {
    let principal = viewer.principal();
    let page = || Page { limit: Some(100), cursor: None };
    let sessions = api_tokens::read_sessions(&state, &principal, page()).await?;
    let tokens = api_tokens::read_tokens(&state, &principal, page()).await?;
    let tokens = tokens
        .items
        .iter()
        .map(|t| TokenLine {
            id: t.id.clone(),
            name: t.name.clone(),
            created: when(&t.created_at),
            expires: t.expires_at.as_ref().map_or_else(|| "never".into(), when),
        })
        .collect();
    let chrome = viewer.chrome.titled("Security");
    let page = SecurityPage {
        chrome: chrome.clone(),
        sessions: sessions.items.iter().map(SessionLine::from).collect(),
        tokens,
        impersonating: principal.impersonator_id().is_some(),
        shown,
        two_factor: api_security::my_two_factor(&state, &principal).await?,
    };
    render(&chrome, &page)
}

async fn security(State(state): State<AppState>, viewer: Viewer) -> Result<Response, PageError> {
    security_page(state, viewer, Shown::Nothing).await
}

#[derive(Deserialize)]
struct PasswordForm {
    current_password: String,
    password: String,
    confirm: String,
}

async fn password(Posted { state, viewer, form }: Posted<PasswordForm>) -> Result<Response, PageError> {
    let result = if form.password != form.confirm {
        Err(ApiError::invalid("password", "and its confirmation differ"))
    } else {
        change_own_password(&state, &viewer.principal, &form.current_password, &form.password).await
    };
    done("/app/security", result, |_| "Your password is changed; your other sessions have ended.".into())
}

/// Changes the caller's own password once the current one is confirmed (throttled like a
/// login); their other sessions end. Not in an impersonation session, which cannot change
/// credentials.
async fn change_own_password(state: &AppState, principal: &Principal, current: &str, new: &str) -> ApiResult<()> {
    if principal.impersonator_id().is_some() {
        return Err(ApiError::forbidden("an impersonation session cannot change credentials"));
    }
    let key = principal.user.email_key.clone();
    state.throttle.admit(&key, None, None).await?;
    let mut tx = state.store.read().await?;
    let stored = tx.user(principal.user.id).await?.and_then(|u| u.password_hash);
    tx.rollback().await?;
    if !state.passwords.verify(current, stored.as_deref()).await? {
        state.throttle.failed(&key, None, None);
        return Err(ApiError::invalid("current_password", "is not your current password"));
    }
    let hash = state.passwords.hash(new).await?;
    let (actor, keep, now) = (principal.actor(), principal.session_id(), state.clock.now());
    Ok(steward_ops::users::set_own_password(state.store.as_ref(), &state.changes, actor, keep, hash, now).await?)
}

async fn end_session(
    Path(id): Path<String>,
    Posted { state, viewer, form: NoFields {} }: Posted<NoFields>,
) -> Result<Response, PageError> {
    let result = api_tokens::end_session(&state, &viewer.principal(), id).await;
    done("/app/security", result, |_| "The session has ended.".into())
}

#[derive(Deserialize)]
struct TokenForm {
    name: String,
}

/// Creates an API token and shows its secret on this response only (it is never stored).
async fn create_token(Posted { state, viewer, form }: Posted<TokenForm>) -> Result<Response, PageError> {
    let request = api_tokens::NewToken { name: form.name, expires_at: None, scopes: vec![] };
    match api_tokens::mint_token(&state, &viewer.principal(), request).await {
        Ok(t) => {
            let mut r = security_page(state, viewer, Shown::Token(t.name, t.token)).await?;
            *r.status_mut() = StatusCode::CREATED;
            Ok(r)
        }
        Err(e) => done("/app/security", Err::<(), _>(e), |_| String::new()),
    }
}

async fn totp_start(Posted { state, viewer, form: NoFields {} }: Posted<NoFields>) -> Result<Response, PageError> {
    match api_security::start_enrolment(&state, &viewer.principal()).await {
        Ok(e) => {
            use base64::Engine as _;
            let qr =
                format!("data:image/svg+xml;base64,{}", base64::engine::general_purpose::STANDARD.encode(e.qr_svg));
            security_page(state, viewer, Shown::Enrolment(qr, e.secret)).await
        }
        Err(e) => done("/app/security", Err::<(), _>(e), |_| String::new()),
    }
}

#[derive(Deserialize)]
struct CodeForm {
    code: String,
}

async fn totp_confirm(Posted { state, viewer, form }: Posted<CodeForm>) -> Result<Response, PageError> {
    match api_security::confirm_enrolment(&state, &viewer.principal(), &form.code).await {
        Ok(c) => security_page(state, viewer, Shown::RecoveryCodes(c.recovery_codes)).await,
        Err(e) => done("/app/security", Err::<(), _>(e), |_| String::new()),
    }
}

async fn totp_recovery_codes(Posted { state, viewer, form }: Posted<CodeForm>) -> Result<Response, PageError> {
    match api_security::replace_recovery_codes(&state, &viewer.principal(), &form.code).await {
        Ok(c) => security_page(state, viewer, Shown::RecoveryCodes(c.recovery_codes)).await,
        Err(e) => done("/app/security", Err::<(), _>(e), |_| String::new()),
    }
}

#[derive(Deserialize)]
struct OffForm {
    /// The box that confirms turning it off.
    confirm: Option<String>,
}

async fn totp_off(Posted { state, viewer, form }: Posted<OffForm>) -> Result<Response, PageError> {
    let result = match form.confirm {
        Some(_) => api_security::turn_off_two_factor(&state, &viewer.principal()).await,
        None => Err(ApiError::invalid("confirm", "tick the box to turn two-factor sign-in off")),
    };
    done("/app/security", result, |()| "Two-factor sign-in is off; signing in needs only your password.".into())
}

async fn revoke_token(
    Path(id): Path<String>,
    Posted { state, viewer, form: NoFields {} }: Posted<NoFields>,
) -> Result<Response, PageError> {
    let result = api_tokens::revoke_token(&state, &viewer.principal(), id).await;
    done("/app/security", result, |_| "The token is revoked.".into())
}

/// A team of the org with its members named.
struct TeamLine {
    id: String,
    name: String,
    members: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "app/org.html")]
struct OrgPage {
    chrome: Chrome,
    card: OrgCard,
    charts: Vec<super::chart::DayChart>,
    /// The viewer's own user id: their own row asks for a confirmation.
    me: String,
    members: Vec<MemberView>,
    /// Open invitations, for those who manage the org.
    invitations: Vec<InvitationView>,
    teams: Vec<TeamLine>,
    roles: Vec<&'static str>,
    /// Each team role's value and its words.
    team_roles: Vec<(&'static str, String)>,
}

async fn org(State(state): State<AppState>, viewer: Viewer, Path(id): Path<String>) -> Result<Response, PageError> {
    let principal = viewer.principal();
    let all = || Page { limit: Some(500), cursor: None };
    let org = api_orgs::read_org(&state, &principal, id.clone()).await?;
    let org_id: OrgId = org.id.parse().map_err(|_| ApiError::not_found("organization"))?;
    let mut tx = state.store.read().await.map_err(ApiError::from)?;
    let role = tx
        .membership_in(org_id, principal.user.id)
        .await
        .map_err(ApiError::from)?
        .filter(|m| !m.dormant)
        .map(|m| m.role);
    tx.rollback().await.map_err(ApiError::from)?;
    let card = org_card(&state, &principal, &org, role).await?;
    let members = api_orgs::read_members(&state, &principal, id.clone(), all()).await?;
    let teams = api_teams::read_teams(&state, &principal, id.clone(), all()).await?;
    let invitations = if card.manage {
        api_inv::read_org_invitations(&state, &principal, id.clone(), all()).await?.items
    } else {
        vec![]
    };
    let charts = if role.is_some_and(|r| r.allows(OrgAction::UsageRead)) {
        super::chart::usage_charts(&api_usage::read_usage_days(&state, &principal, id.clone()).await?)
    } else {
        vec![]
    };
    let names: HashMap<_, _> = members.items.iter().map(|m| (m.user_id.clone(), m.name.clone())).collect();
    let teams = teams
        .items
        .iter()
        .map(|t| TeamLine {
            id: t.id.clone(),
            name: t.name.clone(),
            members: t
                .members
                .iter()
                .filter(|m| !m.dormant)
                .map(|m| {
                    (
                        names.get(&m.user_id).cloned().unwrap_or_else(|| m.user_id.clone()),
                        super::story::role_words(&m.role),
                    )
                })
                .collect(),
        })
        .collect();
    let chrome = viewer.chrome.titled(org.name.clone());
    let page = OrgPage {
        chrome: chrome.clone(),
        card,
        charts,
        members: members.items,
        me: principal.user.id.to_string(),
        invitations,
        teams,
        roles: OrgRole::ALL.iter().filter(|r| **r != OrgRole::Owner).map(|r| r.as_str()).collect(),
        team_roles: TeamRole::ALL.iter().map(|r| (r.as_str(), super::story::role_words(r.as_str()))).collect(),
    };
    render(&chrome, &page)
}

#[derive(Deserialize)]
struct InviteForm {
    email: String,
    role: String,
}

async fn invite(
    Path(id): Path<String>,
    Posted { state, viewer, form }: Posted<InviteForm>,
) -> Result<Response, PageError> {
    let result = async {
        let request = NewInvitation { email: Email::parse(&form.email)?, role: form.role.parse()?, team_ids: vec![] };
        api_inv::invite_member(&state, &viewer.principal(), id.clone(), request).await
    }
    .await;
    done(&format!("/app/orgs/{id}"), result, |i| format!("{} is invited; the email is on its way.", i.email))
}

async fn revoke_invitation(
    Path((id, invitation)): Path<(String, String)>,
    Posted { state, viewer, form: NoFields {} }: Posted<NoFields>,
) -> Result<Response, PageError> {
    let result = api_inv::revoke_invitation(&state, &viewer.principal(), &id, &invitation).await;
    done(&format!("/app/orgs/{id}"), result, |()| "The invitation is revoked; its link no longer works.".into())
}

async fn accept_invitation(
    Path(id): Path<String>,
    Posted { state, viewer, form: NoFields {} }: Posted<NoFields>,
) -> Result<Response, PageError> {
    let result = api_inv::accept_as_myself(&state, &viewer.principal(), &id).await;
    done("/app", result, |i| format!("You joined {} as {}.", i.org_name, i.role.as_deref().unwrap_or("member")))
}

#[derive(Deserialize)]
struct RoleForm {
    role: String,
    /// Ticked to confirm a change of one's own role.
    confirm_self: Option<String>,
}

async fn member_role(
    Path((id, user_id)): Path<(String, String)>,
    Posted { state, viewer, form }: Posted<RoleForm>,
) -> Result<Response, PageError> {
    let result = async {
        if user_id == viewer.principal.user.id.to_string() && form.confirm_self.is_none() {
            return Err(ApiError::invalid("confirm_self", "tick the box to change your own role"));
        }
        let request = MemberRole { role: form.role.parse()? };
        api_orgs::set_member_role(&state, &viewer.principal(), (id.clone(), user_id), request).await
    }
    .await;
    done(&format!("/app/orgs/{id}"), result, |m| format!("{} is now {}.", m.name, m.role))
}

#[derive(Template)]
#[template(path = "app/confirm_remove.html")]
struct ConfirmRemovePage {
    chrome: Chrome,
    org_id: String,
    org_name: String,
    member: MemberView,
    is_self: bool,
}

/// Asks before a member is removed, naming them and what follows.
async fn confirm_remove(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((id, user_id)): Path<(String, String)>,
) -> Result<Response, PageError> {
    let principal = viewer.principal();
    let org = api_orgs::read_org(&state, &principal, id.clone()).await?;
    let members = api_orgs::read_members(&state, &principal, id, Page { limit: Some(500), cursor: None }).await?;
    let member =
        members.items.into_iter().find(|m| m.user_id == user_id).ok_or_else(|| ApiError::not_found("member"))?;
    let chrome = viewer.chrome.titled(format!("Remove {} from {}", member.name, org.name));
    let is_self = user_id == principal.user.id.to_string();
    let page = ConfirmRemovePage { chrome: chrome.clone(), org_id: org.id, org_name: org.name, member, is_self };
    render(&chrome, &page)
}

async fn remove_member(
    Path((id, user_id)): Path<(String, String)>,
    Posted { state, viewer, form: NoFields {} }: Posted<NoFields>,
) -> Result<Response, PageError> {
    let result = api_orgs::remove_member(&state, &viewer.principal(), (id.clone(), user_id)).await;
    done(&format!("/app/orgs/{id}"), result, |_| "The member is removed; their history stays.".into())
}

#[derive(Deserialize)]
struct TeamForm {
    name: String,
}

async fn create_team(
    Path(id): Path<String>,
    Posted { state, viewer, form }: Posted<TeamForm>,
) -> Result<Response, PageError> {
    let result = async {
        let request = TeamInput { name: TeamName::parse(&form.name)? };
        api_teams::add_team(&state, &viewer.principal(), id.clone(), request).await
    }
    .await;
    done(&format!("/app/orgs/{id}"), result, |t| format!("The team {} is created.", t.name))
}

#[derive(Deserialize)]
struct TeamMemberForm {
    user_id: String,
    role: String,
}

async fn team_member(
    Path((id, team_id)): Path<(String, String)>,
    Posted { state, viewer, form }: Posted<TeamMemberForm>,
) -> Result<Response, PageError> {
    let result = async {
        let request = TeamMemberRole { role: form.role.parse()? };
        api_teams::set_team_member(&state, &viewer.principal(), (team_id, form.user_id), request).await
    }
    .await;
    done(&format!("/app/orgs/{id}"), result, |t| format!("The team {} is updated.", t.name))
}
