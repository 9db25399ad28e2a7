//! Single sign-on with OpenID Connect, its administration: the connections
//! (`/api/v1/sso/connections`) and finding the connection for an email
//! (`/api/v1/auth/sso/discover`). The browser's round trip is in `sso_sign_in`. Every mapping
//! change is audited with it.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use steward_core::{AuditDraft, Email, OrgId, OrgRole, Permission, TargetType};
use steward_store::{RoleMappingRow, SsoClaims, SsoConnectionRow, Tx};
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::declared::{BadRequest, Conflict, Forbidden, NotFound, PreconditionFailed, Unauthorized};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Acting, ApiJson, check_if_match, nullable};
use crate::sso::check_provider_url;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_connections, create_connection))
        .routes(routes!(get_connection, patch_connection, delete_connection))
        .routes(routes!(discover))
}

/// Where the connection reads email, name and groups (defaults `email`, `name`, `groups`).
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimNames {
    pub email: Option<String>,
    pub name: Option<String>,
    pub groups: Option<String>,
}

/// Members of `group` at the provider get `role` in `org_id`, applied at every sign-in. Never
/// `owner`; several groups into one org give the most capable role; a mapping grants and
/// updates roles, it never removes a membership.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleMapping {
    pub group: String,
    pub org_id: String,
    #[schema(value_type = crate::schema::OrgRoleSchema)]
    pub role: OrgRole,
}

/// A new OpenID Connect connection.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewConnection {
    pub name: String,
    /// The org the connection is for; its role mapping may name only that org, and it needs
    /// `domains`. Null: the instance.
    pub org_id: Option<String>,
    /// The provider's issuer; `<issuer>/.well-known/openid-configuration` must answer. https,
    /// or http on a loopback host.
    pub issuer: String,
    pub client_id: String,
    /// Write-only: stored encrypted, never returned.
    pub client_secret: String,
    /// Default `openid email profile`; `openid` is always asked for.
    pub scopes: Option<Vec<String>>,
    /// Email domains that sign in here; each belongs to one connection. A connection with
    /// domains admits only emails of those domains.
    #[serde(default)]
    pub domains: Vec<String>,
    pub claims: Option<ClaimNames>,
    #[serde(default)]
    pub role_mapping: Vec<RoleMapping>,
    /// Create unknown users (active, with the mapped roles) at their first sign-in.
    #[serde(default)]
    pub jit: bool,
    /// Refuse password login (401 `sso_required`) for the connection's domains.
    #[serde(default)]
    pub enforced: bool,
}

/// Changes to a connection; absent fields stay.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectionPatch {
    pub name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub org_id: Option<Option<String>>,
    pub issuer: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub domains: Option<Vec<String>>,
    pub claims: Option<ClaimNames>,
    pub role_mapping: Option<Vec<RoleMapping>>,
    pub jit: Option<bool>,
    pub enforced: Option<bool>,
}

/// The claims a connection reads.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClaimsView {
    pub email: String,
    pub name: String,
    pub groups: String,
}

/// A connection (never its secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionView {
    pub id: String,
    pub name: String,
    pub org_id: Option<String>,
    pub issuer: String,
    pub client_id: String,
    pub scopes: Vec<String>,
    pub domains: Vec<String>,
    pub claims: ClaimsView,
    pub role_mapping: Vec<RoleMapping>,
    pub jit: bool,
    pub enforced: bool,
    /// The redirect URI to register at the provider.
    pub redirect_uri: String,
    /// Where a browser starts signing in.
    pub start_url: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    pub version: i64,
}

impl crate::answer::Versioned for ConnectionView {
    fn version(&self) -> i64 {
        self.version
    }
}

fn view(state: &AppState, c: &SsoConnectionRow) -> ConnectionView {
    ConnectionView {
        id: c.id.to_string(),
        name: c.name.clone(),
        org_id: c.org_id.map(|o| o.to_string()),
        issuer: c.issuer.clone(),
        client_id: c.client_id.clone(),
        scopes: c.scopes.clone(),
        domains: c.domains.clone(),
        claims: ClaimsView {
            email: c.claims.email.clone(),
            name: c.claims.name.clone(),
            groups: c.claims.groups.clone(),
        },
        role_mapping: c
            .role_mapping
            .iter()
            .map(|m| RoleMapping { group: m.group.clone(), org_id: m.org_id.to_string(), role: m.role })
            .collect(),
        jit: c.jit,
        enforced: c.enforced,
        redirect_uri: redirect_uri(state),
        start_url: format!("{}/sso/{}/start", state.public_url, c.id),
        created_at: c.created_at,
        updated_at: c.updated_at,
        version: c.version,
    }
}

pub(crate) fn redirect_uri(state: &AppState) -> String {
    format!("{}/sso/callback", state.public_url)
}

/// The connections.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionList {
    pub items: Vec<ConnectionView>,
    pub next_cursor: Option<String>,
}

fn text(field: &str, value: &str, max: usize) -> ApiResult<String> {
    let v = value.trim();
    if v.is_empty() || v.chars().count() > max || v.chars().any(char::is_control) {
        return Err(ApiError::invalid(field, format!("is required (1 to {max} characters)")));
    }
    Ok(v.to_owned())
}

fn org_id(field: &str, value: &str) -> ApiResult<OrgId> {
    value.parse().map_err(|_| ApiError::invalid(field, "no such organization"))
}

/// Reads the provider's discovery document afresh; done before the write transaction opens, so
/// that a slow provider never holds up other writers.
async fn discoverable(state: &AppState, issuer: &str) -> ApiResult<()> {
    check_provider_url(issuer).map_err(|e| ApiError::invalid("issuer", e))?;
    state.sso.forget(issuer).await;
    state.sso.discover(issuer).await.map(|_| ()).map_err(|e| ApiError::invalid("issuer", e))
}

/// Checks a connection as it would be stored: names, domains that no other connection owns,
/// mapped orgs that exist, and no `owner` in the mapping.
async fn check(tx: &mut dyn Tx, c: &mut SsoConnectionRow) -> ApiResult<()> {
    c.name = text("name", &c.name, 100)?;
    c.client_id = text("client_id", &c.client_id, 500)?;
    check_provider_url(&c.issuer).map_err(|e| ApiError::invalid("issuer", e))?;
    if !c.scopes.iter().any(|s| s == "openid") {
        c.scopes.insert(0, "openid".into());
    }
    if c.scopes.iter().any(|s| s.is_empty() || !s.chars().all(|ch| ch.is_ascii_graphic() && ch != '"' && ch != '\\')) {
        return Err(ApiError::invalid("scopes", "each scope is one word of visible ASCII"));
    }
    c.scopes.dedup();
    let mut domains = Vec::new();
    for d in &c.domains {
        let d = steward_core::sso::parse_domain(d).map_err(ApiError::from)?;
        if !domains.contains(&d) {
            domains.push(d);
        }
    }
    for d in &domains {
        if let Some(other) = tx.sso_connection_for_domain(d).await?
            && other.id != c.id
        {
            return Err(ApiError::conflict("domain_taken", format!("{d} belongs to connection {}", other.id)));
        }
    }
    c.domains = domains;
    if c.enforced && c.domains.is_empty() {
        return Err(ApiError::invalid("enforced", "an enforced connection needs domains"));
    }
    // An org's provider is run by the customer, who could assert anyone's email: it may sign in
    // only the domains it is given.
    if c.org_id.is_some() && c.domains.is_empty() {
        return Err(ApiError::invalid("domains", "an org's connection needs the email domains it signs in"));
    }
    c.claims.email = text("claims.email", &c.claims.email, 100)?;
    c.claims.name = text("claims.name", &c.claims.name, 100)?;
    c.claims.groups = text("claims.groups", &c.claims.groups, 100)?;
    if let Some(o) = c.org_id
        && tx.org(o).await?.is_none_or(|org| org.state == steward_core::OrgState::Purged)
    {
        return Err(ApiError::invalid("org_id", "no such organization"));
    }
    for m in &mut c.role_mapping {
        m.group = text("role_mapping.group", &m.group, 200)?;
        steward_core::sso::mappable_role(m.role).map_err(ApiError::from)?;
        if c.org_id.is_some_and(|o| o != m.org_id) {
            return Err(ApiError::invalid("role_mapping.org_id", "an org's connection maps into that org only"));
        }
        if tx.org(m.org_id).await?.is_none_or(|org| org.state == steward_core::OrgState::Purged) {
            return Err(ApiError::invalid("role_mapping.org_id", "no such organization"));
        }
    }
    Ok(())
}

fn mapping_rows(mapping: Vec<RoleMapping>) -> ApiResult<Vec<RoleMappingRow>> {
    mapping
        .into_iter()
        .map(|m| Ok(RoleMappingRow { group: m.group, org_id: org_id("role_mapping.org_id", &m.org_id)?, role: m.role }))
        .collect()
}

fn claims_row(names: Option<ClaimNames>, current: Option<&SsoClaims>) -> SsoClaims {
    let names = names.unwrap_or_default();
    let pick = |given: Option<String>, old: Option<&String>, default: &str| {
        given.or_else(|| old.cloned()).unwrap_or_else(|| default.to_owned())
    };
    SsoClaims {
        email: pick(names.email, current.map(|c| &c.email), "email"),
        name: pick(names.name, current.map(|c| &c.name), "name"),
        groups: pick(names.groups, current.map(|c| &c.groups), "groups"),
    }
}

fn described(c: &SsoConnectionRow) -> Value {
    json!({
        "name": c.name, "org_id": c.org_id, "issuer": c.issuer, "client_id": c.client_id, "scopes": c.scopes,
        "domains": c.domains, "claims": c.claims, "role_mapping": c.role_mapping, "jit": c.jit, "enforced": c.enforced,
    })
}

/// List SSO connections
///
/// Lists the connections, newest first. Needs `instance.manage`.
#[utoipa::path(get, path = "/api/v1/sso/connections", operation_id = "list_sso_connections", tag = "sso", responses((status = 200, body = ConnectionList),
    Unauthorized, Forbidden))]
async fn list_connections(Acting { state, principal }: Acting) -> ApiResult<Json<ConnectionList>> {
    principal.require(Permission::InstanceManage)?;
    let mut tx = state.store.read().await?;
    let rows = tx.sso_connections().await?;
    tx.rollback().await?;
    Ok(Json(ConnectionList { items: rows.iter().map(|c| view(&state, c)).collect(), next_cursor: None }))
}

/// Add an SSO connection
///
/// Adds an OpenID Connect connection; the provider's discovery document must answer. Needs
/// `instance.manage`. Answers 201 with `Location`.
#[utoipa::path(post, path = "/api/v1/sso/connections", operation_id = "create_sso_connection", tag = "sso", request_body = NewConnection,
    responses((status = 201, body = ConnectionView), BadRequest, Unauthorized, Forbidden, Conflict))]
async fn create_connection(
    Acting { state, principal }: Acting,
    ApiJson(req): ApiJson<NewConnection>,
) -> ApiResult<crate::answer::Created<ConnectionView>> {
    principal.require(Permission::InstanceManage)?;
    let secret = text("client_secret", &req.client_secret, 4096)?;
    let now = state.clock.now();
    let mut row = SsoConnectionRow {
        id: uuid::Uuid::now_v7(),
        name: req.name,
        org_id: req.org_id.as_deref().map(|o| org_id("org_id", o)).transpose()?,
        issuer: req.issuer,
        client_id: req.client_id,
        client_secret_sealed: String::new(),
        scopes: req.scopes.unwrap_or_else(|| vec!["openid".into(), "email".into(), "profile".into()]),
        domains: req.domains,
        claims: claims_row(req.claims, None),
        role_mapping: mapping_rows(req.role_mapping)?,
        jit: req.jit,
        enforced: req.enforced,
        created_at: now,
        updated_at: now,
        version: 1,
    };
    discoverable(&state, &row.issuer).await?;
    let mut tx = state.store.write().await?;
    check(tx.as_mut(), &mut row).await?;
    row.client_secret_sealed = state.sso.ensure_key(tx.as_mut(), now).await?.seal(&secret)?;
    tx.insert_sso_connection(&row).await?;
    let event = AuditDraft::new("sso_connection.created", principal.actor(), TargetType::Instance, row.id)
        .in_org_opt(row.org_id)
        .detail(described(&row));
    state.commit(tx, vec![event], now).await?;
    Ok(crate::answer::Created::at(format!("/api/v1/sso/connections/{}", row.id), view(&state, &row)))
}

pub(crate) async fn load(tx: &mut dyn Tx, id: &str) -> ApiResult<SsoConnectionRow> {
    let id: uuid::Uuid = id.parse().map_err(|_| ApiError::not_found("SSO connection"))?;
    tx.sso_connection(id).await?.ok_or_else(|| ApiError::not_found("SSO connection"))
}

/// Get an SSO connection
///
/// One connection. Answers `ETag: "<version>"`; a `GET` with `If-None-Match` naming it answers 304
/// while the resource is unchanged.
#[utoipa::path(get, path = "/api/v1/sso/connections/{id}", operation_id = "get_sso_connection", tag = "sso", responses((status = 200, body = ConnectionView),
    Unauthorized, Forbidden, NotFound))]
async fn get_connection(
    Acting { state, principal }: Acting,
    Path(id): Path<String>,
) -> ApiResult<crate::answer::Tagged<ConnectionView>> {
    principal.require(Permission::InstanceManage)?;
    let mut tx = state.store.read().await?;
    let row = load(tx.as_mut(), &id).await?;
    tx.rollback().await?;
    Ok(crate::answer::Tagged(view(&state, &row)))
}

/// Update an SSO connection
///
/// Changes a connection (`If-Match` honoured); a new `client_secret` replaces the stored one.
/// Answers `ETag: "<version>"`; a `GET` with `If-None-Match` naming it answers 304 while the
/// resource is unchanged.
#[utoipa::path(patch, path = "/api/v1/sso/connections/{id}", operation_id = "patch_sso_connection", tag = "sso", request_body = ConnectionPatch,
    responses((status = 200, body = ConnectionView), BadRequest, Unauthorized, Forbidden, NotFound, Conflict,
    PreconditionFailed))]
async fn patch_connection(
    Acting { state, principal }: Acting,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<ConnectionPatch>,
) -> ApiResult<crate::answer::Tagged<ConnectionView>> {
    principal.require(Permission::InstanceManage)?;
    if let Some(issuer) = &req.issuer {
        discoverable(&state, issuer).await?;
    }
    let now = state.clock.now();
    let mut tx = state.store.write().await?;
    let before = load(tx.as_mut(), &id).await?;
    check_if_match(&headers, before.version)?;
    let mut row = before.clone();
    let client_secret = patched(&mut row, req)?;
    check(tx.as_mut(), &mut row).await?;
    let secret_changed = client_secret.is_some();
    if let Some(secret) = client_secret {
        let secret = text("client_secret", &secret, 4096)?;
        row.client_secret_sealed = state.sso.ensure_key(tx.as_mut(), now).await?.seal(&secret)?;
    }
    row.updated_at = now;
    tx.update_sso_connection(&row).await?;
    row.version += 1;
    let (old, new) = (described(&before), described(&row));
    let changed: Vec<&String> = new
        .as_object()
        .map(|n| n.iter().filter(|(k, v)| old.get(k.as_str()) != Some(*v)).map(|(k, _)| k).collect())
        .unwrap_or_default();
    let event = AuditDraft::new("sso_connection.updated", principal.actor(), TargetType::Instance, row.id)
        .in_org_opt(row.org_id)
        .detail(json!({ "changed": changed, "client_secret_changed": secret_changed, "before": old, "after": new }));
    state.commit(tx, vec![event], now).await?;
    Ok(crate::answer::Tagged(view(&state, &row)))
}

/// Writes a patch's fields onto `row` and gives back the new client secret, if the patch has
/// one (it is sealed with the instance's key, which needs the transaction).
fn patched(row: &mut SsoConnectionRow, req: ConnectionPatch) -> ApiResult<Option<String>> {
    if let Some(v) = req.name {
        row.name = v;
    }
    if let Some(v) = req.org_id {
        row.org_id = v.as_deref().map(|o| org_id("org_id", o)).transpose()?;
    }
    if let Some(v) = req.issuer {
        row.issuer = v;
    }
    if let Some(v) = req.client_id {
        row.client_id = v;
    }
    if let Some(v) = req.scopes {
        row.scopes = v;
    }
    if let Some(v) = req.domains {
        row.domains = v;
    }
    if req.claims.is_some() {
        row.claims = claims_row(req.claims, Some(&row.claims.clone()));
    }
    if let Some(v) = req.role_mapping {
        row.role_mapping = mapping_rows(v)?;
    }
    if let Some(v) = req.jit {
        row.jit = v;
    }
    if let Some(v) = req.enforced {
        row.enforced = v;
    }
    Ok(req.client_secret)
}

/// Remove an SSO connection
///
/// Removes a connection; its users keep their accounts and may sign in by password again. Needs
/// `instance.manage`.
#[utoipa::path(delete, path = "/api/v1/sso/connections/{id}", operation_id = "delete_sso_connection", tag = "sso", responses((status = 204), Unauthorized,
    Forbidden, NotFound))]
async fn delete_connection(Acting { state, principal }: Acting, Path(id): Path<String>) -> ApiResult<StatusCode> {
    principal.require(Permission::InstanceManage)?;
    let now = state.clock.now();
    let mut tx = state.store.write().await?;
    let row = load(tx.as_mut(), &id).await?;
    tx.delete_sso_connection(row.id).await?;
    let event = AuditDraft::new("sso_connection.deleted", principal.actor(), TargetType::Instance, row.id)
        .in_org_opt(row.org_id)
        .detail(described(&row));
    state.commit(tx, vec![event], now).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// An email to find the connection for.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DiscoverRequest {
    pub email: String,
}

/// The connection an email signs in with.
#[derive(Debug, Serialize, ToSchema)]
pub struct DiscoverResponse {
    pub connection_id: String,
    /// Send the browser here.
    pub start_url: String,
}

/// Find the SSO connection for an email
///
/// Finds the SSO connection owning the email's domain; 404 when none does. Needs no credentials;
/// answers the connection and where sign-in through it starts.
#[utoipa::path(post, path = "/api/v1/auth/sso/discover", operation_id = "discover_sso_connection", tag = "sso", request_body = DiscoverRequest, security(()),
    responses((status = 200, body = DiscoverResponse), BadRequest, NotFound))]
async fn discover(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<DiscoverRequest>,
) -> ApiResult<Json<DiscoverResponse>> {
    let email = Email::parse(&req.email).map_err(ApiError::from)?;
    let mut tx = state.store.read().await?;
    let found = tx.sso_connection_for_domain(email.domain()).await?;
    tx.rollback().await?;
    let c = found.ok_or_else(|| ApiError::not_found("SSO connection for this email"))?;
    let hint: String = form_urlencoded::byte_serialize(email.as_str().as_bytes()).collect();
    Ok(Json(DiscoverResponse {
        connection_id: c.id.to_string(),
        start_url: format!("{}/sso/{}/start?login_hint={hint}", state.public_url, c.id),
    }))
}
