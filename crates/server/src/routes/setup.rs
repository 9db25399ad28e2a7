//! First start: the one-time setup link that creates the first system admin when none was
//! bootstrapped from the environment.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use steward_core::{Actor, Email, PersonName};
use subtle::ConstantTimeEq;

use crate::auth::secret_hash;
use crate::error::ApiError;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/setup/{token}", get(setup_form).post(setup_submit))
}

fn secret_matches(state: &AppState, token: &str) -> bool {
    let guard = state.setup_secret_hash.lock().unwrap_or_else(|p| p.into_inner());
    guard.as_ref().is_some_and(|h| bool::from(h.as_bytes().ct_eq(secret_hash(token).as_bytes())))
}

const FORM: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Set up Steward</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><main><h1>Set up Steward</h1><p>Create the first system administrator.</p>
<form method="post">
<p><label>Email <input name="email" type="email" required autocomplete="username"></label></p>
<p><label>Name <input name="name" required></label></p>
<p><label>Password (at least 12 characters) <input name="password" type="password" minlength="12" required autocomplete="new-password"></label></p>
<p><button type="submit">Create administrator</button></p>
</form></main></body></html>"#;

async fn setup_form(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    if !secret_matches(&state, &token) {
        return (
            StatusCode::NOT_FOUND,
            Html("<!doctype html><title>Not found</title><p>This setup link is not valid any more.</p>"),
        )
            .into_response();
    }
    Html(FORM).into_response()
}

#[derive(Deserialize)]
struct SetupForm {
    email: String,
    name: String,
    password: String,
}

async fn setup_submit(
    State(state): State<AppState>,
    Path(token): Path<String>,
    axum::Form(form): axum::Form<SetupForm>,
) -> Response {
    if !secret_matches(&state, &token) {
        return (
            StatusCode::NOT_FOUND,
            Html("<!doctype html><title>Not found</title><p>This setup link is not valid any more.</p>"),
        )
            .into_response();
    }
    let result = async {
        let email = Email::parse(&form.email)?;
        let name = PersonName::parse(&form.name)?;
        let hash = state.passwords.hash(&form.password).await?;
        let role = steward_core::InstanceRole::system_admin();
        let who = (&email, &name);
        let now = state.clock.now();
        steward_ops::users::create_admin(state.store.as_ref(), &state.changes, who, hash, role, Actor::SYSTEM, now)
            .await?;
        Ok::<_, ApiError>(())
    }
    .await;
    match result {
        Ok(()) => {
            *state.setup_secret_hash.lock().unwrap_or_else(|p| p.into_inner()) = None;
            Html("<!doctype html><title>Steward is ready</title><p>The administrator is created. <a href=\"/login\">Sign in</a>.</p>").into_response()
        }
        Err(e) => {
            let problem = e.problem();
            (StatusCode::from_u16(problem.status).unwrap_or(StatusCode::BAD_REQUEST), problem.detail).into_response()
        }
    }
}
