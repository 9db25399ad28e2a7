//! `/api/v1/scim-tokens`: the bearer tokens identity providers use for `/scim/v2`. A token's
//! secret is shown once and kept only as a digest; each token acts through a service user of its
//! own, so that every SCIM change in the audit log names the token that made it.

use axum::Json;
use axum::extract::Path;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use steward_core::{AuditDraft, OrgId, Permission, TargetType, UserStatus};
use steward_store::{ScimTokenRow, UserRow};
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{SecretKind, new_secret, secret_hash};
use crate::error::declared::{BadRequest, Forbidden, NotFound, Unauthorized};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Acting, ApiJson};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_scim_tokens, create_scim_token)).routes(routes!(revoke_scim_token))
}

/// A new SCIM token.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewScimToken {
    /// What the token is for ("Okta", "Entra ID for Acme").
    pub name: String,
    /// Binds the token to one org: its Users are the org's members (new ones join it) and its
    /// Groups the org's teams, named without the org.
    pub org_id: Option<String>,
}

/// A SCIM token (the secret only at creation).
#[derive(Debug, Serialize, ToSchema)]
pub struct ScimTokenView {
    pub id: String,
    pub name: String,
    pub org_id: Option<String>,
    /// The service user SCIM changes are attributed to.
    pub service_user_id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// The bearer secret; present only in the answer to its creation.
    pub token: Option<String>,
}

impl From<&ScimTokenRow> for ScimTokenView {
    fn from(t: &ScimTokenRow) -> Self {
        ScimTokenView {
            id: t.id.to_string(),
            name: t.name.clone(),
            org_id: t.org_id.map(|o| o.to_string()),
            service_user_id: t.service_user_id.to_string(),
            created_at: t.created_at,
            token: None,
        }
    }
}

/// The live SCIM tokens.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScimTokenList {
    pub items: Vec<ScimTokenView>,
    pub next_cursor: Option<String>,
}

/// List SCIM tokens
///
/// Lists the SCIM tokens that are not revoked, newest first. Needs `scim.manage`. Secrets are never
/// listed.
#[utoipa::path(get, path = "/api/v1/scim-tokens", tag = "scim", responses((status = 200, body = ScimTokenList),
    Unauthorized, Forbidden))]
async fn list_scim_tokens(Acting { state, principal }: Acting) -> ApiResult<Json<ScimTokenList>> {
    principal.require(Permission::ScimManage)?;
    let mut tx = state.store.read().await?;
    let tokens = tx.scim_tokens().await?;
    tx.rollback().await?;
    Ok(Json(ScimTokenList { items: tokens.iter().map(ScimTokenView::from).collect(), next_cursor: None }))
}

/// Create a SCIM token
///
/// Creates a SCIM token; its secret is in this answer only. Needs `scim.manage`. A token bound to
/// an org provisions that org's members and teams only.
#[utoipa::path(post, path = "/api/v1/scim-tokens", tag = "scim", request_body = NewScimToken,
    responses((status = 201, body = ScimTokenView), BadRequest, Unauthorized, Forbidden))]
async fn create_scim_token(
    Acting { state, principal }: Acting,
    ApiJson(req): ApiJson<NewScimToken>,
) -> ApiResult<crate::answer::Created<ScimTokenView>> {
    principal.require(Permission::ScimManage)?;
    if principal.impersonator_id().is_some() {
        return Err(ApiError::forbidden("an impersonation session cannot create tokens"));
    }
    principal.may_mint(Some(steward_core::TokenScope::ScimTokens))?;
    let name = req.name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(ApiError::invalid("name", "is required (1 to 100 characters)"));
    }
    let org_id: Option<OrgId> = match &req.org_id {
        Some(o) => Some(o.parse().map_err(|_| ApiError::invalid("org_id", "no such organization"))?),
        None => None,
    };
    let now = state.clock.now();
    let mut tx = state.store.write().await?;
    if let Some(o) = org_id
        && tx.org(o).await?.is_none_or(|org| org.state == steward_core::OrgState::Purged)
    {
        return Err(ApiError::invalid("org_id", "no such organization"));
    }
    let id = uuid::Uuid::now_v7();
    let service_email = format!("scim-{id}@steward.invalid");
    let mut service =
        UserRow::new(&service_email, service_email.clone(), &format!("SCIM: {name}"), UserStatus::Active, now);
    service.kind = steward_core::UserKind::Service;
    tx.insert_user(&service).await?;
    let secret = new_secret(SecretKind::Scim);
    let token = ScimTokenRow {
        id,
        name: name.to_owned(),
        token_hash: secret_hash(&secret),
        org_id,
        service_user_id: service.id,
        created_by: Some(principal.user.id),
        created_at: now,
        revoked_at: None,
    };
    tx.insert_scim_token(&token).await?;
    let mut event = AuditDraft::new("scim_token.created", principal.actor(), TargetType::User, service.id)
        .detail(json!({ "scim_token_id": id, "org_id": org_id, "name": name }));
    if let Some(o) = org_id {
        event = event.in_org(o);
    }
    state.commit(tx, vec![event], now).await?;
    let mut view = ScimTokenView::from(&token);
    view.token = Some(secret);
    Ok(crate::answer::Created::at(format!("/api/v1/scim-tokens/{}", view.id), view))
}

/// Revoke a SCIM token
///
/// Revokes a SCIM token: its next request is refused. Needs `scim.manage`.
#[utoipa::path(delete, path = "/api/v1/scim-tokens/{id}", tag = "scim", responses((status = 204), Unauthorized,
    Forbidden, NotFound))]
async fn revoke_scim_token(Acting { state, principal }: Acting, Path(id): Path<String>) -> ApiResult<StatusCode> {
    principal.require(Permission::ScimManage)?;
    let id: uuid::Uuid = id.parse().map_err(|_| ApiError::not_found("SCIM token"))?;
    let now = state.clock.now();
    let mut tx = state.store.write().await?;
    let token =
        tx.scim_tokens().await?.into_iter().find(|t| t.id == id).ok_or_else(|| ApiError::not_found("SCIM token"))?;
    if !tx.revoke_scim_token(id, now).await? {
        return Err(ApiError::not_found("SCIM token"));
    }
    let event = AuditDraft::new("scim_token.revoked", principal.actor(), TargetType::User, token.service_user_id)
        .detail(json!({ "scim_token_id": id }));
    state.commit(tx, vec![event], now).await?;
    state.changes.scim_tokens_changed();
    Ok(StatusCode::NO_CONTENT)
}
