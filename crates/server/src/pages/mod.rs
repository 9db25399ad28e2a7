//! The browser surface: server-rendered pages for instance admins (`/admin`) and end users
//! (`/app`), sign-in and its links. Every change goes through the same handlers and services
//! the JSON API uses; this module owns only forms, cookies, CSRF and HTML. It is not part of the
//! OpenAPI document.

mod admin;
mod admin_orgs;
mod admin_users;
mod app;
mod auth;
mod chart;
mod palette;
mod setup;
mod story;

use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq;
use tower_http::catch_panic::CatchPanicLayer;

use crate::auth::csrf_token;
use crate::error::ApiError;
use crate::extract::{Principal, SESSION_COOKIE, authenticate, cookie};
use crate::state::{AppState, instance_settings};

/// Carries a one-time message across a POST-redirect-GET.
const FLASH_COOKIE: &str = "steward_flash";
/// The CSRF token of forms shown before signing in (double-submitted: cookie and field).
const FORM_COOKIE: &str = "steward_form";
/// Where "Return to administration" goes back to after a Login as user.
const RETURN_COOKIE: &str = "steward_return";

/// Every page route, for `app::router` to merge.
mod format;
pub use format::{Bar, bytes_text, usage_bars, usage_story, when, when_text};

/// The pages, with `browser` (other routes a browser follows, such as single sign-on's round trip)
/// under the same error pages.
pub fn router(state: AppState, browser: Router<AppState>) -> Router<AppState> {
    Router::new()
        .route("/", get(auth::home))
        .route("/static/steward.css", get(stylesheet))
        .route("/static/brand.css", get(brand_stylesheet))
        .merge(auth::router())
        .merge(setup::router())
        .merge(admin::router())
        .merge(admin_users::router())
        .merge(admin_orgs::router())
        .merge(app::router())
        .merge(browser)
        .route("/admin/{*rest}", get(not_found))
        .route("/app/{*rest}", get(not_found))
        // Any other path a browser may ask for (the API and SCIM answer their own).
        .fallback(not_found)
        .layer(CatchPanicLayer::custom(|_| {
            PageError::Status(StatusCode::INTERNAL_SERVER_ERROR, String::new()).into_response()
        }))
        .layer(middleware::from_fn_with_state(state, error_pages))
}

async fn not_found() -> PageError {
    PageError::Status(StatusCode::NOT_FOUND, "There is no such page.".into())
}

const STYLESHEET: &str = include_str!("../../static/steward.css");

async fn stylesheet() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=3600")], STYLESHEET)
        .into_response()
}

/// The branding colour as a stylesheet of its own, since the pages' Content-Security-Policy
/// allows no inline styles. The colour was validated as `#rrggbb` when it was set.
async fn brand_stylesheet(State(state): State<AppState>) -> Response {
    let brand = Brand::load(&state).await;
    let fallback = palette::Rgb(0x1f, 0x6f, 0xeb);
    let palette = palette::Palette::of(palette::Rgb::parse(&brand.color).unwrap_or(fallback));
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")], palette.css())
        .into_response()
}

/// How the instance presents itself on every page.
#[derive(Debug, Clone)]
pub struct Brand {
    /// The product name in the header and the title.
    pub product: String,
    /// The primary colour (a validated `#rrggbb`).
    pub color: String,
    /// The logo, when one is set.
    pub logo_url: Option<String>,
    /// Where people write for help (the branding's support contact), when one is set.
    pub support_email: Option<String>,
}

impl Brand {
    async fn load(state: &AppState) -> Brand {
        let settings = async {
            let mut tx = state.store.read().await?;
            let (settings, _) = instance_settings(tx.as_mut()).await?;
            tx.rollback().await?;
            Ok::<_, ApiError>(settings)
        }
        .await
        .unwrap_or_default();
        Brand {
            product: settings.branding.product_name.clone().unwrap_or(settings.name),
            color: settings.branding.primary_color.clone().unwrap_or_else(|| "#1f6feb".into()),
            logo_url: settings.branding.logo_url,
            support_email: settings.branding.support_email,
        }
    }
}

/// A message shown once at the top of the next page.
#[derive(Debug, Clone)]
pub struct Flash {
    /// `notice` or `error`.
    pub kind: &'static str,
    /// What to say.
    pub text: String,
}

/// Who is looking, while an admin is signed in as a user.
#[derive(Debug, Clone)]
pub struct Impersonation {
    /// The user's name, shown in the banner.
    pub user_name: String,
    /// The admin's email.
    pub admin_email: String,
    /// The reason the admin gave, as recorded when the session started.
    pub reason: Option<String>,
    /// When the session ends by itself: "15:42 UTC, in 27 minutes".
    pub ends: String,
}

/// The reason recorded for the Login as user session `session` of `user`: its start event is
/// committed with the session, at the instant the session was created, so only the starts of
/// that second are read, however many came after.
async fn impersonation_reason(
    tx: &mut dyn steward_store::Tx,
    user: steward_core::UserId,
    session: &steward_store::SessionRow,
) -> Result<Option<String>, ApiError> {
    let filter = steward_store::AuditFilter {
        target_id: Some(user.to_string()),
        kind: Some("user.impersonation_started".into()),
        since: Some(session.created_at),
        until: Some(session.created_at + time::Duration::SECOND),
        limit: 100,
        ..Default::default()
    };
    let started = tx.list_audit(&filter).await?;
    let id = session.id.to_string();
    let ours = started.into_iter().find(|r| {
        serde_json::from_str::<serde_json::Value>(&r.detail).is_ok_and(|d| d["session_id"].as_str() == Some(&id))
    });
    Ok(ours
        .and_then(|r| r.personal)
        .and_then(|p| serde_json::from_str::<serde_json::Value>(&p).ok())
        .and_then(|p| p["reason"].as_str().map(str::to_owned)))
}

/// "15:42 UTC, in 27 minutes".
fn time_left(end: time::OffsetDateTime, now: time::OffsetDateTime) -> String {
    let minutes = (end - now).whole_minutes().max(0);
    let at = time::macros::format_description!("[hour]:[minute] UTC");
    let clock = end.to_offset(time::UtcOffset::UTC).format(&at).unwrap_or_default();
    match minutes {
        0 => format!("{clock}, in less than a minute"),
        1 => format!("{clock}, in 1 minute"),
        m if m < 120 => format!("{clock}, in {m} minutes"),
        m => format!("{clock}, in {} hours", m / 60),
    }
}

/// What the layout around every page needs: branding, the signed-in user, the CSRF token of
/// the page's forms, the impersonation banner and a flash message.
#[derive(Debug, Clone)]
pub struct Chrome {
    /// The instance's branding.
    pub brand: Brand,
    /// The CSRF token every form on the page carries.
    pub csrf: String,
    /// The signed-in user's name, if any.
    pub user_name: Option<String>,
    /// Whether the signed-in user holds any instance permission.
    pub is_admin: bool,
    /// Set in a Login as user session: the banner shows it.
    pub impersonation: Option<Impersonation>,
    /// The message left by the previous form, shown once.
    pub flash: Option<Flash>,
    /// The page's `<title>`, before the product name.
    pub title: String,
    /// The path of the page, so that navigation marks where the reader is.
    pub path: String,
}

impl Chrome {
    /// Whether the page is `section` itself, for `aria-current` in navigation.
    pub fn at(&self, section: &str) -> bool {
        self.path.split('?').next() == Some(section)
    }

    /// Whether the page is `section` or below it.
    pub fn within(&self, section: &str) -> bool {
        self.at(section) || self.path.starts_with(&format!("{section}/"))
    }

    /// The chrome with another title.
    pub fn titled(&self, title: impl Into<String>) -> Chrome {
        Chrome { title: title.into(), ..self.clone() }
    }
}

/// A signed-in user looking at a page: their principal and the page chrome. Anyone else is
/// sent to `/login`.
pub struct Viewer {
    /// Who is signed in, as the API handlers take it.
    pub principal: Principal,
    /// The layout of their pages.
    pub chrome: Chrome,
}

impl Viewer {
    /// The principal, as the API handlers take it.
    pub fn principal(&self) -> Principal {
        Principal { by_page: true, ..self.principal.clone() }
    }
}

fn read_flash(headers: &HeaderMap) -> Option<Flash> {
    let raw = cookie(headers, FLASH_COOKIE)?;
    let (kind, text) = raw.split_once('.')?;
    let kind = match kind {
        "n" => "notice",
        "e" => "error",
        _ => return None,
    };
    let text = String::from_utf8(URL_SAFE_NO_PAD.decode(text).ok()?).ok()?;
    Some(Flash { kind, text })
}

/// The signed-in principal behind a request's session cookie, with the chrome of its pages.
async fn signed_in(state: &AppState, headers: &HeaderMap) -> Result<Option<Viewer>, ApiError> {
    let Some(secret) = cookie(headers, SESSION_COOKIE).filter(|s| !s.is_empty()) else { return Ok(None) };
    let Ok(principal) = authenticate(state, &secret).await else { return Ok(None) };
    let impersonation = match principal.impersonator_id() {
        Some(admin) => {
            let mut tx = state.store.read().await?;
            let admin = tx.user(admin).await?;
            let (reason, ends) = match &principal.credential {
                crate::principal::Credential::Session(s) => (
                    impersonation_reason(tx.as_mut(), principal.user.id, s).await?,
                    time_left(s.expires_at, state.clock.now()),
                ),
                _ => (None, String::new()),
            };
            tx.rollback().await?;
            Some(Impersonation {
                user_name: principal.user.name.clone(),
                admin_email: admin.map(|a| a.email).unwrap_or_default(),
                reason,
                ends,
            })
        }
        None => None,
    };
    let chrome = Chrome {
        brand: Brand::load(state).await,
        csrf: csrf_token(&secret),
        user_name: Some(principal.user.name.clone()),
        is_admin: !principal.permissions.is_empty(),
        impersonation,
        flash: read_flash(headers),
        title: String::new(),
        path: String::new(),
    };
    Ok(Some(Viewer { principal, chrome }))
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let back = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
        let mut viewer = signed_in(state, &parts.headers).await?.ok_or_else(|| PageError::Login(back.clone()))?;
        viewer.chrome.path = back;
        Ok(viewer)
    }
}

/// A signed-in instance admin; anyone else signed in gets a 403 page.
pub struct Admin(pub Viewer);

impl FromRequestParts<AppState> for Admin {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let viewer = Viewer::from_request_parts(parts, state).await?;
        if let Some(imp) = viewer.chrome.impersonation.as_ref().filter(|_| !viewer.chrome.is_admin) {
            return Err(PageError::Status(
                StatusCode::FORBIDDEN,
                format!(
                    "You are signed in as {} through Login as user, and administration is not theirs to see. \
                     Use Return to administration, at the top of the page, to come back to it.",
                    imp.user_name
                ),
            ));
        }
        if !viewer.chrome.is_admin {
            return Err(PageError::Status(
                StatusCode::FORBIDDEN,
                "Administration is for instance administrators. Your own pages are at /app.".into(),
            ));
        }
        Ok(Admin(viewer))
    }
}

/// A form posted by a signed-in user, accepted only with the CSRF token of their session (compared
/// in constant time). Handlers that change anything take this, so no form can skip the check.
pub struct Posted<T> {
    /// The application state.
    pub state: AppState,
    /// Who posted it.
    pub viewer: Viewer,
    /// The form's other fields.
    pub form: T,
}

fn form_field(body: &[u8], name: &str) -> Option<String> {
    form_urlencoded::parse(body).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

fn same(a: &str, b: &str) -> bool {
    !a.is_empty() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

fn parse_form<T: DeserializeOwned>(body: &[u8]) -> Result<T, PageError> {
    serde_urlencoded::from_bytes(body)
        .map_err(|e| PageError::Status(StatusCode::BAD_REQUEST, format!("The form could not be read: {e}")))
}

impl<T: DeserializeOwned> FromRequest<AppState> for Posted<T> {
    type Rejection = PageError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let viewer = Viewer::from_request_parts(&mut parts, state).await?;
        let bytes = Bytes::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(|_| PageError::Status(StatusCode::PAYLOAD_TOO_LARGE, "The form is too large.".into()))?;
        let sent = form_field(&bytes, "csrf").unwrap_or_default();
        if !same(&sent, &viewer.chrome.csrf) {
            return Err(PageError::Csrf);
        }
        Ok(Posted { form: parse_form(&bytes)?, viewer, state: state.clone() })
    }
}

/// A form whose only field is its CSRF token.
#[derive(serde::Deserialize)]
pub struct NoFields {}

/// A form posted before signing in, accepted only when its `csrf` field matches the form cookie.
pub struct AnonymousPost<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for AnonymousPost<T> {
    type Rejection = PageError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let expected = cookie(req.headers(), FORM_COOKIE).unwrap_or_default();
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|_| PageError::Status(StatusCode::PAYLOAD_TOO_LARGE, "The form is too large.".into()))?;
        let sent = form_field(&bytes, "csrf").unwrap_or_default();
        if !same(&sent, &expected) {
            return Err(PageError::Csrf);
        }
        Ok(AnonymousPost(parse_form(&bytes)?))
    }
}

/// The chrome of a page shown before signing in, and the form token to set with it.
pub async fn anonymous_chrome(state: &AppState, headers: &HeaderMap, title: &str) -> (Chrome, Option<HeaderValue>) {
    let existing = cookie(headers, FORM_COOKIE).filter(|c| c.len() >= 32);
    let (token, set) = match existing {
        Some(t) => (t, None),
        None => {
            let t = crate::auth::new_secret(crate::auth::SecretKind::Setup);
            let t = t.trim_start_matches("stw_setup_").to_owned();
            let header =
                HeaderValue::from_str(&format!("{FORM_COOKIE}={t}; Path=/; HttpOnly; SameSite=Lax{}", secure(state)))
                    .ok();
            (t, header)
        }
    };
    let chrome = Chrome {
        brand: Brand::load(state).await,
        csrf: token,
        user_name: None,
        is_admin: false,
        impersonation: None,
        flash: read_flash(headers),
        title: title.into(),
        path: String::new(),
    };
    (chrome, set)
}

/// Why a page could not be shown.
#[derive(Debug)]
pub enum PageError {
    /// Not signed in: go to `/login`, then back here.
    Login(String),
    /// A form without the right CSRF token.
    Csrf,
    /// Any other refusal or failure, with what to tell the person (never internals).
    Status(StatusCode, String),
}

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        let problem = e.problem();
        match problem.status {
            401 => PageError::Login("/".into()),
            s => {
                PageError::Status(StatusCode::from_u16(s).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), problem.detail)
            }
        }
    }
}

impl From<steward_ops::OpError> for PageError {
    fn from(e: steward_ops::OpError) -> Self {
        PageError::from(ApiError::from(e))
    }
}

impl From<askama::Error> for PageError {
    fn from(e: askama::Error) -> Self {
        PageError::from(ApiError::internal(e))
    }
}

/// Marks a response whose body [`error_pages`] renders in the instance's branding.
#[derive(Clone)]
struct ErrorMessage(String);

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        match self {
            PageError::Login(back) => {
                let next = form_urlencoded::byte_serialize(back.as_bytes()).collect::<String>();
                see_other(&format!("/login?next={next}"))
            }
            PageError::Csrf => {
                let mut r = StatusCode::FORBIDDEN.into_response();
                r.extensions_mut().insert(ErrorMessage(
                    "This form has expired or did not come from this site. Go back, reload the page and try again."
                        .into(),
                ));
                r
            }
            PageError::Status(status, message) => {
                let mut r = status.into_response();
                let message = if status.is_server_error() {
                    "Something went wrong on our side. It has been logged; please try again.".into()
                } else {
                    message
                };
                r.extensions_mut().insert(ErrorMessage(message));
                r
            }
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    chrome: Chrome,
    status: u16,
    message: String,
}

/// Renders error responses as HTML pages with the branding, the signed-in user's navigation and
/// the impersonation banner (5xx pages say nothing of the cause).
async fn error_pages(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let headers = request.headers().clone();
    let response = next.run(request).await;
    let Some(ErrorMessage(message)) = response.extensions().get::<ErrorMessage>().cloned() else {
        return response;
    };
    let status = response.status();
    let title = status.canonical_reason().unwrap_or("Error").to_owned();
    let chrome = match signed_in(&state, &headers).await {
        Ok(Some(viewer)) => Chrome { flash: None, title, ..viewer.chrome },
        _ => Chrome {
            brand: Brand::load(&state).await,
            csrf: String::new(),
            user_name: None,
            is_admin: false,
            impersonation: None,
            flash: None,
            title,
            path: String::new(),
        },
    };
    let page = ErrorPage { chrome, status: status.as_u16(), message };
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(_) => (status, Html("<!doctype html><title>Error</title><p>Something went wrong.</p>")).into_response(),
    }
}

pub use crate::extract::secure;

/// A 303 to `to`.
pub fn see_other(to: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

fn flash_cookie(kind: &str, text: &str) -> Option<HeaderValue> {
    let text: String = text.chars().take(400).collect();
    HeaderValue::from_str(&format!(
        "{FLASH_COOKIE}={kind}.{}; Path=/; HttpOnly; SameSite=Lax; Max-Age=120",
        URL_SAFE_NO_PAD.encode(text)
    ))
    .ok()
}

/// After a form: back to `to` with the outcome shown once there. A refusal (4xx) is shown as
/// an error message on that page; a failure (5xx) is an error page.
pub fn done<T>(to: &str, result: Result<T, ApiError>, notice: impl FnOnce(T) -> String) -> Result<Response, PageError> {
    let (kind, text) = match result {
        Ok(v) => ("n", notice(v)),
        Err(e) if e.problem().status == 401 => return Err(PageError::Login(to.into())),
        Err(e) if e.problem().status >= 500 => return Err(e.into()),
        Err(e) => ("e", friendly(&e)),
    };
    let mut r = see_other(to);
    if let Some(c) = flash_cookie(kind, &text) {
        r.headers_mut().append(header::SET_COOKIE, c);
    }
    Ok(r)
}

/// An API refusal as a sentence for a person.
pub fn friendly(e: &ApiError) -> String {
    let p = e.problem();
    match (p.code.as_str(), p.errors.as_ref().and_then(|f| f.first())) {
        ("not_found", _) if p.detail.contains("link") || p.detail.contains("invitation") => {
            "This link has expired or was already used. Ask for a new one.".into()
        }
        ("validation_failed", Some(f)) => {
            let field = f.field.rsplit('.').next().unwrap_or(&f.field).replace('_', " ");
            let mut s = format!("The {field} {}", f.message);
            if !s.ends_with('.') {
                s.push('.');
            }
            s
        }
        _ => {
            let mut s = p.detail;
            if let Some(first) = s.get_mut(0..1) {
                first.make_ascii_uppercase();
            }
            s
        }
    }
}

/// Renders a page; a flash message shown on it is cleared.
pub fn render(chrome: &Chrome, page: &impl Template) -> Result<Response, PageError> {
    let html = page.render()?;
    let mut r = Html(html).into_response();
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if chrome.flash.is_some()
        && let Ok(v) = HeaderValue::from_str(&format!("{FLASH_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"))
    {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(r)
}

/// A local path to go back to, or `fallback` when `next` could lead off-site. `next` is read
/// as a browser reads a location (the WHATWG URL rules: tabs and newlines dropped, backslashes
/// taken as slashes), and only a result on this site's own origin is kept, as that parser
/// serialized it.
pub fn local_path(next: Option<&str>, fallback: &str) -> String {
    let Some(next) = next.filter(|n| n.starts_with(['/', '\\'])) else { return fallback.to_owned() };
    let Ok(base) = reqwest::Url::parse("https://steward.invalid/") else { return fallback.to_owned() };
    match base.join(next) {
        Ok(url) if url.origin() == base.origin() => {
            let mut path = url.path().to_owned();
            if let Some(q) = url.query() {
                path = format!("{path}?{q}");
            }
            if let Some(f) = url.fragment() {
                path = format!("{path}#{f}");
            }
            path
        }
        _ => fallback.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::local_path;

    #[test]
    fn a_redirect_target_stays_on_this_site_as_a_browser_reads_it() {
        for (next, kept) in
            [("/admin/users?q=ada", "/admin/users?q=ada"), ("/app#teams", "/app#teams"), ("/a/../admin", "/admin")]
        {
            assert_eq!(local_path(Some(next), "/fallback"), kept, "{next:?}");
        }
        for off_site in [
            "//evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "\\/evil.example",
            "/\r\n/evil.example/x",
            "https://evil.example/",
            "javascript:alert(1)",
            "evil.example",
            "",
        ] {
            assert_eq!(local_path(Some(off_site), "/fallback"), "/fallback", "{off_site:?}");
        }
        assert_eq!(local_path(None, "/fallback"), "/fallback");
    }
}
