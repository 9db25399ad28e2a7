//! `/api/v1/jwt-issuers`: the issuers whose signed JWTs authorize API requests as the user they
//! map to. Verifying the tokens is `sso::jwt_user`'s work; this only keeps the list.

use axum::Json;
use axum::extract::Path;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use steward_core::{AuditDraft, Permission, TargetType};
use steward_store::JwtIssuerRow;
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::declared::{BadRequest, Conflict, Forbidden, NotFound, Unauthorized};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Acting, ApiJson};
use crate::jwt::PublicKey;
use crate::sso::check_provider_url;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_issuers, create_issuer)).routes(routes!(delete_issuer))
}

/// Which claims name the user.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssuerClaims {
    /// The claim holding the user's subject at the issuer (default `sub`); a subject linked to
    /// a user (by an SSO sign-in through the same issuer) maps to that user.
    pub subject: Option<String>,
    /// The claim holding the user's email (default `email`), used when the subject is not linked;
    /// null maps by subject only. A token with `email_verified: false` is not mapped by email.
    #[serde(default, deserialize_with = "crate::extract::nullable")]
    pub email: Option<Option<String>>,
}

/// A trusted issuer to add. Exactly one of `jwks_url` and `public_key_pem`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewIssuer {
    /// The exact `iss` of its tokens; https, or http on a loopback host.
    pub issuer: String,
    /// The `aud` its tokens must name.
    pub audience: String,
    /// Where its signing keys are published (fetched, cached, refreshed on an unknown `kid`).
    pub jwks_url: Option<String>,
    /// Its one public key: `PUBLIC KEY` (RSA, Ed25519, P-256, P-384) or `RSA PUBLIC KEY`.
    pub public_key_pem: Option<String>,
    pub claims: Option<IssuerClaims>,
    /// Create an unknown user (active, no roles) on their first token; needs a verified email.
    #[serde(default)]
    pub jit: bool,
    /// The email domains its tokens may act for; empty or absent: any.
    #[serde(default)]
    pub domains: Vec<String>,
    /// Whether its tokens may act as users holding instance roles (default false). Only a caller
    /// holding every permission may allow it.
    #[serde(default)]
    pub allow_instance_roles: bool,
}

/// The claims an issuer's tokens are mapped by.
#[derive(Debug, Serialize, ToSchema)]
pub struct IssuerClaimsView {
    pub subject: String,
    pub email: Option<String>,
}

/// A trusted issuer.
#[derive(Debug, Serialize, ToSchema)]
pub struct IssuerView {
    pub id: String,
    pub issuer: String,
    pub audience: String,
    pub jwks_url: Option<String>,
    pub public_key_pem: Option<String>,
    /// The algorithm the PEM key verifies (JWKS keys each carry their own).
    pub algorithm: Option<String>,
    pub claims: IssuerClaimsView,
    pub jit: bool,
    pub domains: Vec<String>,
    pub allow_instance_roles: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl From<&JwtIssuerRow> for IssuerView {
    fn from(r: &JwtIssuerRow) -> Self {
        IssuerView {
            id: r.id.to_string(),
            issuer: r.issuer.clone(),
            audience: r.audience.clone(),
            jwks_url: r.jwks_url.clone(),
            public_key_pem: r.public_key_pem.clone(),
            algorithm: r
                .public_key_pem
                .as_deref()
                .and_then(|p| PublicKey::from_pem(p).ok())
                .map(|k| k.alg.name().into()),
            claims: IssuerClaimsView { subject: r.subject_claim.clone(), email: r.email_claim.clone() },
            jit: r.jit,
            domains: r.domains.clone(),
            allow_instance_roles: r.allow_instance_roles,
            created_at: r.created_at,
        }
    }
}

/// The trusted issuers.
#[derive(Debug, Serialize, ToSchema)]
pub struct IssuerList {
    pub items: Vec<IssuerView>,
    pub next_cursor: Option<String>,
}

/// List trusted JWT issuers
///
/// Lists the trusted JWT issuers, newest first. Needs `instance.manage`.
#[utoipa::path(get, path = "/api/v1/jwt-issuers", operation_id = "list_jwt_issuers", tag = "sso", responses((status = 200, body = IssuerList),
    Unauthorized, Forbidden))]
async fn list_issuers(Acting { state, principal }: Acting) -> ApiResult<Json<IssuerList>> {
    principal.require(Permission::InstanceManage)?;
    let mut tx = state.store.read().await?;
    let rows = tx.jwt_issuers().await?;
    tx.rollback().await?;
    Ok(Json(IssuerList { items: rows.iter().map(IssuerView::from).collect(), next_cursor: None }))
}

fn claim_name(field: &str, value: &str) -> ApiResult<String> {
    let v = value.trim();
    if v.is_empty() || v.len() > 100 || v.chars().any(char::is_control) {
        return Err(ApiError::invalid(field, "must be a claim name (1 to 100 characters)"));
    }
    Ok(v.to_owned())
}

/// Trust a JWT issuer
///
/// Trusts an issuer: its tokens then authorize requests as the users they map to. Needs
/// `instance.manage`. Answers 201 with `Location`.
#[utoipa::path(post, path = "/api/v1/jwt-issuers", operation_id = "create_jwt_issuer", tag = "sso", request_body = NewIssuer,
    responses((status = 201, body = IssuerView), BadRequest, Unauthorized, Forbidden, Conflict))]
async fn create_issuer(
    Acting { state, principal }: Acting,
    ApiJson(req): ApiJson<NewIssuer>,
) -> ApiResult<crate::answer::Created<IssuerView>> {
    principal.require(Permission::InstanceManage)?;
    check_provider_url(&req.issuer).map_err(|e| ApiError::invalid("issuer", e))?;
    let audience = req.audience.trim();
    if audience.is_empty() || audience.len() > 500 {
        return Err(ApiError::invalid("audience", "is required"));
    }
    check_key_source(&req)?;
    let claims = req.claims.unwrap_or(IssuerClaims { subject: None, email: None });
    let subject_claim = claim_name("claims.subject", claims.subject.as_deref().unwrap_or("sub"))?;
    let email_claim = match claims.email {
        None => Some("email".to_owned()),
        Some(None) => None,
        Some(Some(e)) => Some(claim_name("claims.email", &e)?),
    };
    let domains = distinct_domains(&req.domains)?;
    // Its tokens could act as any admin: only for someone who holds every permission.
    if req.allow_instance_roles && !Permission::ALL.iter().all(|p| principal.has(*p)) {
        return Err(ApiError::forbidden("allowing an issuer to act as instance admins needs every permission"));
    }
    let now = state.clock.now();
    let row = JwtIssuerRow {
        id: uuid::Uuid::now_v7(),
        issuer: req.issuer.clone(),
        audience: audience.to_owned(),
        jwks_url: req.jwks_url,
        public_key_pem: req.public_key_pem.map(|p| p.trim().to_owned() + "\n"),
        subject_claim,
        email_claim,
        jit: req.jit,
        created_by: Some(principal.user.id),
        created_at: now,
        domains,
        allow_instance_roles: req.allow_instance_roles,
    };
    let mut tx = state.store.write().await?;
    if tx.jwt_issuers_named(&row.issuer).await?.iter().any(|r| r.audience == row.audience) {
        return Err(ApiError::conflict("issuer_exists", "this issuer is already trusted for this audience"));
    }
    tx.insert_jwt_issuer(&row).await?;
    let event = AuditDraft::new("jwt_issuer.created", principal.actor(), TargetType::Instance, row.id).detail(json!({
        "issuer": row.issuer, "audience": row.audience, "jwks_url": row.jwks_url,
        "subject_claim": row.subject_claim, "email_claim": row.email_claim, "jit": row.jit,
        "domains": row.domains, "allow_instance_roles": row.allow_instance_roles,
    }));
    state.commit(tx, vec![event], now).await?;
    Ok(crate::answer::Created::at(format!("/api/v1/jwt-issuers/{}", row.id), IssuerView::from(&row)))
}

/// An issuer's keys come from exactly one place: a JWKS URL or a PEM public key.
fn check_key_source(req: &NewIssuer) -> ApiResult<()> {
    match (&req.jwks_url, &req.public_key_pem) {
        (Some(url), None) => check_provider_url(url).map(drop).map_err(|e| ApiError::invalid("jwks_url", e)),
        (None, Some(pem)) => PublicKey::from_pem(pem).map(drop).map_err(|e| ApiError::invalid("public_key_pem", e)),
        _ => Err(ApiError::invalid("jwks_url", "give exactly one of jwks_url and public_key_pem")),
    }
}

/// The email domains, each parsed, each once.
fn distinct_domains(given: &[String]) -> ApiResult<Vec<String>> {
    let mut domains = Vec::new();
    for d in given {
        let d = steward_core::sso::parse_domain(d).map_err(ApiError::from)?;
        if !domains.contains(&d) {
            domains.push(d);
        }
    }
    Ok(domains)
}

/// Stop trusting a JWT issuer
///
/// Stops trusting an issuer: its tokens are refused from the next request on. Needs
/// `instance.manage`.
#[utoipa::path(delete, path = "/api/v1/jwt-issuers/{id}", operation_id = "delete_jwt_issuer", tag = "sso", responses((status = 204), Unauthorized,
    Forbidden, NotFound))]
async fn delete_issuer(Acting { state, principal }: Acting, Path(id): Path<String>) -> ApiResult<StatusCode> {
    principal.require(Permission::InstanceManage)?;
    let id: uuid::Uuid = id.parse().map_err(|_| ApiError::not_found("JWT issuer"))?;
    let now = state.clock.now();
    let mut tx = state.store.write().await?;
    let row =
        tx.jwt_issuers().await?.into_iter().find(|r| r.id == id).ok_or_else(|| ApiError::not_found("JWT issuer"))?;
    tx.delete_jwt_issuer(id).await?;
    let event = AuditDraft::new("jwt_issuer.deleted", principal.actor(), TargetType::Instance, id)
        .detail(json!({ "issuer": row.issuer, "audience": row.audience }));
    state.commit(tx, vec![event], now).await?;
    Ok(StatusCode::NO_CONTENT)
}
