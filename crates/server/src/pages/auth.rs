//! Signing in and out, the end of a Login as user, invitations and password resets — the pages
//! in front of the API's own login, logout, accept and reset handlers.

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;
use steward_core::PersonName;

use super::{
    AnonymousPost, Chrome, NoFields, PageError, Posted, RETURN_COOKIE, anonymous_chrome, done, friendly, local_path,
    render, see_other,
};
use crate::auth::secret_hash;
use crate::error::ApiError;
use crate::extract::{SESSION_COOKIE, authenticate, cookie};
use crate::routes::{ClientIp, auth as api_auth, invitations as api_inv};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/impersonation/end", post(logout))
        .route("/forgot", get(forgot_form).post(forgot))
        .route("/reset/{token}", get(reset_form).post(reset))
        .route("/invite/{token}", get(invite_form).post(accept))
}

/// `/`: the signed-in user's landing page, or the sign-in form.
pub async fn home(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match signed_in(&state, &headers).await {
        Some(true) => see_other("/admin"),
        Some(false) => see_other("/app"),
        None => see_other("/login"),
    }
}

/// Whether the session cookie is good, and if so whether its user is an instance admin.
async fn signed_in(state: &AppState, headers: &HeaderMap) -> Option<bool> {
    let secret = cookie(headers, SESSION_COOKIE).filter(|s| !s.is_empty())?;
    let principal = authenticate(state, &secret).await.ok()?;
    Some(!principal.permissions.is_empty())
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    chrome: Chrome,
    email: String,
    next: String,
    error: Option<String>,
    show_totp: bool,
    /// The instance-wide single sign-on connections, as (id, name), for "Sign in with …".
    connections: Vec<(String, String)>,
}

/// The instance-wide SSO connections offered on the sign-in page (an org's own connections are
/// found from the email instead).
async fn offered_connections(state: &AppState) -> Vec<(String, String)> {
    let listed = async {
        let mut tx = state.store.read().await?;
        let all = tx.sso_connections().await?;
        tx.rollback().await?;
        Ok::<_, ApiError>(all)
    }
    .await
    .unwrap_or_default();
    listed.into_iter().filter(|c| c.org_id.is_none()).map(|c| (c.id.to_string(), c.name)).collect()
}

/// The way on to an identity provider. A page, not a redirect: the pages' Content-Security-Policy
/// (`form-action 'self'`) stops a form submission from being redirected to another origin, so the
/// browser is sent on by this page instead.
#[derive(Template)]
#[template(path = "sso_continue.html")]
struct SsoContinuePage {
    chrome: Chrome,
    start: String,
}

async fn continue_to(state: &AppState, headers: &HeaderMap, start: String) -> Result<Response, PageError> {
    let (chrome, set) = anonymous_chrome(state, headers, "Single sign-on").await;
    with_form_cookie(render(&chrome, &SsoContinuePage { chrome: chrome.clone(), start }), set)
}

/// Where single sign-on for this email starts, when its domain belongs to a connection.
async fn sso_start(state: &AppState, email: &str) -> Option<String> {
    let email = steward_core::Email::parse(email.trim()).ok()?;
    let mut tx = state.store.read().await.ok()?;
    let found = tx.sso_connection_for_domain(email.domain()).await.ok()?;
    tx.rollback().await.ok()?;
    let hint: String = form_urlencoded::byte_serialize(email.as_str().as_bytes()).collect();
    found.map(|c| format!("/sso/{}/start?login_hint={hint}", c.id))
}

#[derive(Deserialize)]
struct Next {
    next: Option<String>,
}

async fn login_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    axum::extract::Query(q): axum::extract::Query<Next>,
) -> Result<Response, PageError> {
    if signed_in(&state, &headers).await.is_some() {
        return Ok(see_other(&local_path(q.next.as_deref(), "/")));
    }
    let (chrome, set) = anonymous_chrome(&state, &headers, "Sign in").await;
    let page = LoginPage {
        next: local_path(q.next.as_deref(), ""),
        chrome: chrome.clone(),
        email: String::new(),
        error: None,
        show_totp: false,
        connections: offered_connections(&state).await,
    };
    with_form_cookie(render(&chrome, &page), set)
}

pub(super) fn with_form_cookie(
    page: Result<Response, PageError>,
    set: Option<HeaderValue>,
) -> Result<Response, PageError> {
    let mut page = page?;
    if let Some(v) = set {
        page.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(page)
}

#[derive(Deserialize)]
struct LoginForm {
    email: String,
    #[serde(default)]
    password: String,
    totp_code: Option<String>,
    next: Option<String>,
    /// Set by "Continue with single sign-on": find the email's connection instead.
    sso: Option<String>,
}

async fn login(
    State(state): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    AnonymousPost(form): AnonymousPost<LoginForm>,
) -> Result<Response, PageError> {
    if form.sso.is_some() {
        if let Some(start) = sso_start(&state, &form.email).await {
            return continue_to(&state, &headers, start).await;
        }
        let error = "No single sign-on is set up for this email's domain; sign in with your password.";
        return login_again(&state, &headers, form, error.into(), false, StatusCode::NOT_FOUND).await;
    }
    // Built as the API's own body, so that fields the API adds keep their defaults.
    let mut body = json!({ "email": form.email.trim(), "password": form.password });
    if let Some(code) = form.totp_code.as_deref().map(str::trim).filter(|c| !c.is_empty()) {
        body["totp_code"] = json!(code);
    }
    let request: api_auth::LoginRequest =
        serde_json::from_value(body).map_err(|e| PageError::from(ApiError::internal(e)))?;
    match api_auth::password_login(&state, ip.0, &headers, request).await {
        Ok(signed_in) => {
            let admin = !steward_core::roles::permissions_of(&signed_in.user.instance_roles).is_empty();
            let landing = if admin { "/admin" } else { "/app" };
            let to = local_path(form.next.as_deref().filter(|n| !n.is_empty() && *n != "/"), landing);
            let mut r = see_other(&to);
            signed_in.set_cookies(&state, r.headers_mut());
            Ok(r)
        }
        Err(e) => {
            let problem = e.problem();
            if problem.status >= 500 {
                return Err(e.into());
            }
            // The domain signs in through its identity provider only: go there.
            if problem.code == "sso_required"
                && let Some(start) = sso_start(&state, &form.email).await
            {
                return continue_to(&state, &headers, start).await;
            }
            let message = match problem.code.as_str() {
                "unauthenticated" => "The email or password is wrong, or the account is not active.".to_owned(),
                "rate_limited" => "Too many failed attempts. Wait a few minutes and try again.".to_owned(),
                "totp_required" => "Enter the code from your authenticator app.".to_owned(),
                _ => friendly(&e),
            };
            let show_totp = problem.code == "totp_required" || form.totp_code.is_some();
            let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::UNAUTHORIZED);
            login_again(&state, &headers, form, message, show_totp, status).await
        }
    }
}

/// The sign-in page again, with what went wrong and the email kept.
async fn login_again(
    state: &AppState,
    headers: &HeaderMap,
    form: LoginForm,
    error: String,
    show_totp: bool,
    status: StatusCode,
) -> Result<Response, PageError> {
    let (chrome, set) = anonymous_chrome(state, headers, "Sign in").await;
    let page = LoginPage {
        chrome: chrome.clone(),
        email: form.email,
        next: local_path(form.next.as_deref(), ""),
        error: Some(error),
        show_totp,
        connections: offered_connections(state).await,
    };
    let mut r = with_form_cookie(render(&chrome, &page), set)?;
    *r.status_mut() = status;
    Ok(r)
}

/// Signs out; in a Login as user session, ends it and goes back to the administration page the
/// admin came from, in the admin's own session.
async fn logout(headers: HeaderMap, posted: Posted<NoFields>) -> Result<Response, PageError> {
    let Posted { state, viewer, form: NoFields {} } = posted;
    let impersonating = viewer.principal.impersonator_id().is_some();
    let returned = api_auth::sign_out(&state, &viewer.principal()).await?;
    if impersonating && returned.is_some() {
        let back = cookie(&headers, RETURN_COOKIE)
            .filter(|p| p.starts_with("/admin"))
            .map_or_else(|| "/admin".to_owned(), |p| local_path(Some(&p), "/admin"));
        let mut r = done(&back, Ok::<_, ApiError>(()), |_| "You are back in your own session.".into())?;
        api_auth::after_sign_out(&state, r.headers_mut(), returned.as_ref());
        if let Ok(v) = HeaderValue::from_str(&format!("{RETURN_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0")) {
            r.headers_mut().append(header::SET_COOKIE, v);
        }
        return Ok(r);
    }
    let mut r = done("/login", Ok::<_, ApiError>(()), |_| "You are signed out.".into())?;
    api_auth::after_sign_out(&state, r.headers_mut(), returned.as_ref());
    Ok(r)
}

#[derive(Template)]
#[template(path = "forgot.html")]
struct ForgotPage {
    chrome: Chrome,
}

async fn forgot_form(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, PageError> {
    let (chrome, set) = anonymous_chrome(&state, &headers, "Forgot password").await;
    with_form_cookie(render(&chrome, &ForgotPage { chrome: chrome.clone() }), set)
}

#[derive(Deserialize)]
struct ForgotForm {
    email: String,
}

async fn forgot(
    State(state): State<AppState>,
    AnonymousPost(form): AnonymousPost<ForgotForm>,
) -> Result<Response, PageError> {
    api_inv::ask_for_reset(state, &form.email);
    done("/login", Ok::<_, ApiError>(()), |_| {
        "If an active account has this email, a link to choose a new password is on its way.".into()
    })
}

#[derive(Template)]
#[template(path = "reset.html")]
struct ResetPage {
    chrome: Chrome,
    error: Option<String>,
}

async fn reset_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Result<Response, PageError> {
    let mut tx = state.store.read().await.map_err(ApiError::from)?;
    let reset = tx.reset_by_hash(&secret_hash(&token)).await.map_err(ApiError::from)?;
    tx.rollback().await.map_err(ApiError::from)?;
    let now = state.clock.now();
    if !reset.is_some_and(|r| r.used_at.is_none() && r.expires_at > now) {
        return Err(PageError::Status(
            StatusCode::NOT_FOUND,
            "This link has expired or was already used. Ask for a new one with Forgot your password.".into(),
        ));
    }
    let (chrome, set) = anonymous_chrome(&state, &headers, "Choose a new password").await;
    with_form_cookie(render(&chrome, &ResetPage { chrome: chrome.clone(), error: None }), set)
}

#[derive(Deserialize)]
struct PasswordForm {
    password: String,
    confirm: String,
}

async fn reset(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Path(token): Path<String>,
    AnonymousPost(form): AnonymousPost<PasswordForm>,
) -> Result<Response, PageError> {
    let result = if form.password != form.confirm {
        Err(ApiError::invalid("password", "and its confirmation differ"))
    } else {
        api_inv::reset_with_link(&state, ip, &token, &form.password).await
    };
    match result {
        Ok(_) => done("/login", Ok::<_, ApiError>(()), |_| "Your password is changed. Sign in with it.".into()),
        Err(e) if e.problem().status < 500 => {
            let (chrome, set) = anonymous_chrome(&state, &headers, "Choose a new password").await;
            let mut r = with_form_cookie(
                render(&chrome, &ResetPage { chrome: chrome.clone(), error: Some(friendly(&e)) }),
                set,
            )?;
            *r.status_mut() = StatusCode::from_u16(e.problem().status).unwrap_or(StatusCode::BAD_REQUEST);
            Ok(r)
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Template)]
#[template(path = "invite.html")]
struct InvitePage {
    chrome: Chrome,
    email: String,
    name: String,
    place: String,
    needs_password: bool,
    error: Option<String>,
}

/// What an invitation link invites to, if it still works.
async fn invitation(state: &AppState, token: &str) -> Result<(String, String, String, bool), PageError> {
    let gone = || PageError::Status(StatusCode::NOT_FOUND, "This invitation has expired or was already used.".into());
    let mut tx = state.store.read().await.map_err(ApiError::from)?;
    let inv = tx.invitation_by_hash(&secret_hash(token)).await.map_err(ApiError::from)?.ok_or_else(gone)?;
    let now = state.clock.now();
    if inv.accepted_at.is_some() || inv.cancelled_at.is_some() || inv.expires_at <= now {
        return Err(gone());
    }
    let user = tx.user(inv.user_id).await.map_err(ApiError::from)?.ok_or_else(gone)?;
    let place = match inv.org_id {
        Some(org) => tx.org(org).await.map_err(ApiError::from)?.map(|o| o.name),
        None => None,
    };
    tx.rollback().await.map_err(ApiError::from)?;
    let needs_password = user.status == steward_core::UserStatus::Invited;
    Ok((user.email, user.name, place.unwrap_or_default(), needs_password))
}

async fn invite_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Result<Response, PageError> {
    let (email, name, place, needs_password) = invitation(&state, &token).await?;
    let (chrome, set) = anonymous_chrome(&state, &headers, "Accept the invitation").await;
    let page = InvitePage { chrome: chrome.clone(), email, name, place, needs_password, error: None };
    with_form_cookie(render(&chrome, &page), set)
}

#[derive(Deserialize)]
struct AcceptForm {
    name: Option<String>,
    password: Option<String>,
    confirm: Option<String>,
}

async fn accept(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Path(token): Path<String>,
    AnonymousPost(form): AnonymousPost<AcceptForm>,
) -> Result<Response, PageError> {
    let (email, _, place, needs_password) = invitation(&state, &token).await?;
    let result = async {
        let password = form.password.filter(|p| !p.is_empty());
        if password.is_some() && password != form.confirm {
            return Err(ApiError::invalid("password", "and its confirmation differ"));
        }
        let name = match form.name.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
            Some(n) => Some(PersonName::parse(n)?),
            None => None,
        };
        let request = api_inv::AcceptInvitation { password, name };
        api_inv::accept_with_link(&state, ip, &token, request).await
    }
    .await;
    match result {
        Ok(_) => done("/login", Ok::<_, ApiError>(()), |_| "Welcome! Your invitation is accepted; sign in.".into()),
        Err(e) if e.problem().status < 500 => {
            let (chrome, set) = anonymous_chrome(&state, &headers, "Accept the invitation").await;
            let page = InvitePage {
                chrome: chrome.clone(),
                email,
                name: String::new(),
                place,
                needs_password,
                error: Some(friendly(&e)),
            };
            let mut r = with_form_cookie(render(&chrome, &page), set)?;
            *r.status_mut() = StatusCode::BAD_REQUEST;
            Ok(r)
        }
        Err(e) => Err(e.into()),
    }
}
