//! The first page of a new instance: the one-time setup link that `steward serve` prints when no
//! system administrator exists, with the form that creates the first one. It does not decide who
//! may use the link (the secret in it does) nor how the administrator is made
//! (`steward_ops::users::create_admin`).

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;
use steward_core::{Email, PersonName};
use subtle::ConstantTimeEq;

use super::auth::with_form_cookie;
use super::{AnonymousPost, Chrome, PageError, anonymous_chrome, done, friendly, render};
use crate::auth::secret_hash;
use crate::error::ApiError;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/setup/{token}", get(setup_form).post(setup))
}

/// Whether `token` is the setup link's secret, while it still works.
fn secret_matches(state: &AppState, token: &str) -> bool {
    let guard = state.setup_secret_hash.lock().unwrap_or_else(|p| p.into_inner());
    guard.as_ref().is_some_and(|h| bool::from(h.as_bytes().ct_eq(secret_hash(token).as_bytes())))
}

/// A link used up, or from before a restart.
fn gone() -> PageError {
    PageError::Status(
        StatusCode::NOT_FOUND,
        "This setup link does not work any more: the first administrator exists, or Steward was restarted and \
         printed a new link. Sign in, or use the link Steward printed last."
            .into(),
    )
}

#[derive(Template)]
#[template(path = "setup.html")]
struct SetupPage {
    chrome: Chrome,
    email: String,
    name: String,
    error: Option<String>,
}

async fn setup_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Result<Response, PageError> {
    if !secret_matches(&state, &token) {
        return Err(gone());
    }
    let (chrome, set) = anonymous_chrome(&state, &headers, "Set up").await;
    let page = SetupPage { chrome: chrome.clone(), email: String::new(), name: String::new(), error: None };
    with_form_cookie(render(&chrome, &page), set)
}

#[derive(Deserialize)]
struct SetupForm {
    email: String,
    name: String,
    password: String,
}

async fn setup(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(token): Path<String>,
    AnonymousPost(form): AnonymousPost<SetupForm>,
) -> Result<Response, PageError> {
    if !secret_matches(&state, &token) {
        return Err(gone());
    }
    match create_first_admin(&state, &form).await {
        Ok(()) => {
            *state.setup_secret_hash.lock().unwrap_or_else(|p| p.into_inner()) = None;
            done("/login", Ok::<_, ApiError>(()), |_| {
                "The administrator is created. Sign in with the email and password you chose.".into()
            })
        }
        Err(e) if e.problem().status < 500 => {
            let (chrome, set) = anonymous_chrome(&state, &headers, "Set up").await;
            let page =
                SetupPage { chrome: chrome.clone(), email: form.email, name: form.name, error: Some(friendly(&e)) };
            let mut r = with_form_cookie(render(&chrome, &page), set)?;
            *r.status_mut() = StatusCode::from_u16(e.problem().status).unwrap_or(StatusCode::BAD_REQUEST);
            Ok(r)
        }
        Err(e) => Err(e.into()),
    }
}

/// Creates the first system administrator from the form.
async fn create_first_admin(state: &AppState, form: &SetupForm) -> Result<(), ApiError> {
    let email = Email::parse(&form.email)?;
    let name = PersonName::parse(&form.name)?;
    let hash = state.passwords.hash(&form.password).await?;
    crate::create_system_admin(state, &email, &name, hash).await?;
    Ok(())
}
