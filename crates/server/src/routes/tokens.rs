//! The caller's own API tokens and sessions (`/api/v1/me/tokens`, `/api/v1/me/sessions`).

use axum::Json;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use steward_core::{AuditDraft, SessionId, TargetType, TokenId, TokenScope};
use steward_store::ApiTokenRow;
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{SecretKind, new_secret, secret_hash};
use crate::error::declared::{BadRequest, Forbidden, NotFound, Unauthorized};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Acting, ApiJson, Page, Principal, paginate};
use crate::state::AppState;
use crate::views::{SessionList, SessionView, TokenList, TokenView};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(delete_token))
        .routes(routes!(list_sessions))
        .routes(routes!(delete_session))
}

/// A new API token.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// What the token is for.
    pub name: String,
    /// When it stops working; null: never.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// What the token may do beyond acting as its user: `users.impersonate` (start Login as
    /// user) and `scim_tokens.create`. Each needs its permission; a token made with a token gets
    /// no scope its maker lacks.
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub scopes: Vec<steward_core::TokenScope>,
}

/// A token just created: the only time its secret is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedToken {
    pub id: String,
    pub name: String,
    /// The secret; store it now, it is not shown again.
    pub token: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// What it may do beyond acting as its user.
    #[schema(value_type = Vec<String>)]
    pub scopes: Vec<steward_core::TokenScope>,
}

/// List my API tokens
///
/// The caller's API tokens. Tokens not revoked, newest first; secrets are never listed.
#[utoipa::path(get, path = "/api/v1/me/tokens", operation_id = "list_my_tokens", tag = "auth", params(Page), responses((status = 200, body = TokenList),
    Unauthorized))]
pub(crate) async fn list_tokens(
    Acting { state, principal }: Acting,
    Query(page): Query<Page>,
) -> ApiResult<Json<TokenList>> {
    Ok(Json(read_tokens(&state, &principal, page).await?))
}

/// A page of the caller's own API tokens, for every surface that acts with a principal.
pub async fn read_tokens(state: &AppState, principal: &Principal, page: Page) -> ApiResult<TokenList> {
    let limit = page.limit()?;
    let before: Option<TokenId> = page.cursor()?;
    let mut tx = state.store.read().await?;
    let rows: Vec<_> = tx
        .api_tokens_of(principal.user.id)
        .await?
        .into_iter()
        .filter(|t| before.is_none_or(|b| t.id < b))
        .take(limit as usize + 1)
        .collect();
    tx.rollback().await?;
    let (rows, next_cursor) = paginate(rows, limit, |t| t.id);
    Ok(TokenList { items: rows.iter().map(TokenView::from).collect(), next_cursor })
}

/// Create an API token
///
/// Creates an API token for the caller; its secret is in this response only. Answers 201 with
/// `Location`. A token may carry scopes beyond acting as its user, and an expiry.
#[utoipa::path(post, path = "/api/v1/me/tokens", operation_id = "create_my_token", tag = "auth", request_body = NewToken,
    responses((status = 201, body = CreatedToken), BadRequest, Forbidden))]
pub(crate) async fn create_token(
    Acting { state, principal }: Acting,
    ApiJson(req): ApiJson<NewToken>,
) -> ApiResult<crate::answer::Created<CreatedToken>> {
    let token = mint_token(&state, &principal, req).await?;
    Ok(crate::answer::Created::at(format!("/api/v1/me/tokens/{}", token.id), token))
}

/// The token's name and its scopes, each of which the caller must hold and may give.
fn checked_request(principal: &Principal, req: &NewToken) -> ApiResult<(String, Vec<TokenScope>)> {
    if principal.impersonator_id().is_some() {
        return Err(ApiError::forbidden("an impersonation session cannot create API tokens"));
    }
    principal.may_mint(None)?;
    let name = req.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::invalid("name", "must be 1 to 100 characters"));
    }
    let mut scopes = req.scopes.clone();
    scopes.sort();
    scopes.dedup();
    for scope in &scopes {
        principal.require(scope.permission())?;
        principal.may_mint(Some(*scope))?;
    }
    Ok((name.to_owned(), scopes))
}

/// Creates an API token for the caller, for every surface that acts with a principal; the
/// secret is in the answer only.
pub async fn mint_token(state: &AppState, principal: &Principal, req: NewToken) -> ApiResult<CreatedToken> {
    let (name, scopes) = checked_request(principal, &req)?;
    let now = state.clock.now();
    if req.expires_at.is_some_and(|e| e <= now) {
        return Err(ApiError::invalid("expires_at", "must be in the future"));
    }
    let mut tx = state.store.write().await?;
    // A token made with an API token expires no later than it and is revoked with it. (A
    // session makes long-lived tokens: that is what signing in to create one is for.)
    let parent = principal.api_token();
    let expires_at = match parent.and_then(|p| p.expires_at) {
        Some(until) => Some(req.expires_at.map_or(until, |e| e.min(until))),
        None => req.expires_at,
    };
    let secret = new_secret(SecretKind::ApiToken);
    let row = ApiTokenRow {
        id: TokenId::new(),
        user_id: principal.user.id,
        name,
        token_hash: secret_hash(&secret),
        created_at: now,
        expires_at,
        revoked_at: None,
        parent_token_id: parent.map(|p| p.id),
        scopes,
    };
    tx.insert_api_token(&row).await?;
    let event = AuditDraft::new("api_token.created", principal.actor(), TargetType::ApiToken, row.id)
        .detail(json!({
            "user_id": principal.user.id,
            "expires_at": expires_at.map(|e| e.unix_timestamp()),
            "parent_token_id": row.parent_token_id,
            "scopes": row.scopes,
        }))
        .personal(json!({ "name": row.name }));
    state.commit(tx, vec![event], now).await?;
    Ok(CreatedToken {
        id: row.id.to_string(),
        name: row.name,
        token: secret,
        created_at: now,
        expires_at: row.expires_at,
        scopes: row.scopes,
    })
}

/// Revoke an API token
///
/// Revokes one of the caller's API tokens. Tokens created with it are revoked too, and
/// impersonations started with it end.
#[utoipa::path(delete, path = "/api/v1/me/tokens/{id}", operation_id = "revoke_my_token", tag = "auth", responses((status = 204), Forbidden, NotFound))]
pub(crate) async fn delete_token(Acting { state, principal }: Acting, Path(id): Path<String>) -> ApiResult<StatusCode> {
    revoke_token(&state, &principal, id).await
}

/// Revokes one of the caller's API tokens, for every surface that acts with a principal.
pub async fn revoke_token(state: &AppState, principal: &Principal, id: String) -> ApiResult<StatusCode> {
    if principal.impersonator_id().is_some() {
        return Err(ApiError::forbidden("an impersonation session cannot revoke the user's credentials"));
    }
    let id: TokenId = id.parse().map_err(|_| ApiError::not_found("token"))?;
    let now = state.clock.now();
    let mut tx = state.store.write().await?;
    let owned = tx.api_tokens_of(principal.user.id).await?.iter().any(|t| t.id == id);
    if !owned {
        return Err(ApiError::not_found("token"));
    }
    tx.revoke_api_token(id, now).await?;
    let event = AuditDraft::new("api_token.revoked", principal.actor(), TargetType::ApiToken, id)
        .detail(json!({ "user_id": principal.user.id }));
    state.commit(tx, vec![event], now).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// List my sessions
///
/// The caller's live sessions. Newest first, each with its address and user agent.
#[utoipa::path(get, path = "/api/v1/me/sessions", operation_id = "list_my_sessions", tag = "auth", params(Page),
    responses((status = 200, body = SessionList), Unauthorized))]
pub(crate) async fn list_sessions(
    Acting { state, principal }: Acting,
    Query(page): Query<Page>,
) -> ApiResult<Json<SessionList>> {
    Ok(Json(read_sessions(&state, &principal, page).await?))
}

/// A page of the caller's own sessions, for every surface that acts with a principal.
pub async fn read_sessions(state: &AppState, principal: &Principal, page: Page) -> ApiResult<SessionList> {
    let limit = page.limit()?;
    let before: Option<SessionId> = page.cursor()?;
    let now = state.clock.now();
    let mut tx = state.store.read().await?;
    let rows: Vec<_> = tx
        .live_sessions(principal.user.id, now)
        .await?
        .into_iter()
        .filter(|s| before.is_none_or(|b| s.id < b))
        .take(limit as usize + 1)
        .collect();
    tx.rollback().await?;
    let (rows, next_cursor) = paginate(rows, limit, |s| s.id);
    let current = principal.session_id();
    Ok(SessionList { items: rows.iter().map(|s| SessionView::new(s, Some(s.id) == current)).collect(), next_cursor })
}

/// End one of my sessions
///
/// Ends one of the caller's sessions. Impersonations started from it end too.
#[utoipa::path(delete, path = "/api/v1/me/sessions/{id}", operation_id = "end_my_session", tag = "auth", responses((status = 204), Forbidden, NotFound))]
pub(crate) async fn delete_session(
    Acting { state, principal }: Acting,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    end_session(&state, &principal, id).await
}

/// Ends one of the caller's sessions, for every surface that acts with a principal.
pub async fn end_session(state: &AppState, principal: &Principal, id: String) -> ApiResult<StatusCode> {
    if principal.impersonator_id().is_some() {
        return Err(ApiError::forbidden("an impersonation session cannot revoke the user's credentials"));
    }
    let id: SessionId = id.parse().map_err(|_| ApiError::not_found("session"))?;
    let now = state.clock.now();
    let mut tx = state.store.write().await?;
    match tx.session(id).await? {
        Some(s) if s.user_id == principal.user.id && s.revoked_at.is_none() => {}
        _ => return Err(ApiError::not_found("session")),
    }
    tx.revoke_session(id, now).await?;
    let event = AuditDraft::new("session.ended", principal.actor(), TargetType::Session, id)
        .detail(json!({ "user_id": principal.user.id, "reason": "revoked_by_user" }));
    state.commit(tx, vec![event], now).await?;
    Ok(StatusCode::NO_CONTENT)
}
