//! Single sign-on with OpenID Connect: the connections (`/api/v1/sso/connections`), finding the
//! connection for an email (`/api/v1/auth/sso/discover`), and the browser's round trip
//! (`/sso/{id}/start`, `/sso/callback`): authorization code with PKCE (S256), `state` and
//! `nonce` bound to a signed short-lived cookie, the ID token checked with the provider's keys,
//! the user found, linked or created, group roles applied, then a session exactly as a password
//! login opens. Every sign-in, refusal and mapping change is audited with it.

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use steward_core::org::{self, RoleChange};
use steward_core::{Actor, AuditDraft, Email, OrgId, OrgRole, Permission, TargetType, UserStatus};
use steward_store::{RoleMappingRow, SsoClaims, SsoConnectionRow, Tx, UserRow};
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiJson, Principal, check_if_match, cookie, nullable};
use crate::routes::orgs::{check_seats, rules_view};
use crate::routes::{ClientIp, auth::open_session, auth::set_session_cookies};
use crate::sso::{ExternalIdentity, Found, check_provider_url, create_jit_user, find_user, validate_id_token};
use crate::state::AppState;

/// The cookie that carries the signed sign-in state between start and callback.
const STATE_COOKIE: &str = "steward_sso";
/// How long a sign-in may take at the provider.
const STATE_SECS: i64 = 600;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_connections, create_connection))
        .routes(routes!(get_connection, patch_connection, delete_connection))
        .routes(routes!(discover))
}

/// `/sso/{id}/start` and `/sso/callback`, outside the JSON API.
pub fn browser_router() -> Router<AppState> {
    Router::new().route("/sso/{id}/start", get(start)).route("/sso/callback", get(callback))
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
    #[schema(value_type = String)]
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
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
    pub version: i64,
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

fn redirect_uri(state: &AppState) -> String {
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

/// Lists the connections, newest first.
#[utoipa::path(get, path = "/api/v1/sso/connections", tag = "sso",
    responses((status = 200, body = ConnectionList), (status = 401, body = Problem), (status = 403, body = Problem)))]
async fn list_connections(State(state): State<AppState>, principal: Principal) -> ApiResult<Json<ConnectionList>> {
    principal.require(Permission::InstanceManage)?;
    let mut tx = state.store.read().await?;
    let rows = tx.sso_connections().await?;
    tx.rollback().await?;
    Ok(Json(ConnectionList { items: rows.iter().map(|c| view(&state, c)).collect(), next_cursor: None }))
}

/// Adds an OpenID Connect connection; the provider's discovery document must answer.
#[utoipa::path(post, path = "/api/v1/sso/connections", tag = "sso", request_body = NewConnection,
    responses((status = 201, body = ConnectionView), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 409, body = Problem)))]
async fn create_connection(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(req): ApiJson<NewConnection>,
) -> ApiResult<(StatusCode, Json<ConnectionView>)> {
    principal.require(Permission::InstanceManage)?;
    let secret = text("client_secret", &req.client_secret, 4096)?;
    let now = OffsetDateTime::now_utc();
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
    Ok((StatusCode::CREATED, Json(view(&state, &row))))
}

async fn load(tx: &mut dyn Tx, id: &str) -> ApiResult<SsoConnectionRow> {
    let id: uuid::Uuid = id.parse().map_err(|_| ApiError::not_found("SSO connection"))?;
    tx.sso_connection(id).await?.ok_or_else(|| ApiError::not_found("SSO connection"))
}

/// One connection.
#[utoipa::path(get, path = "/api/v1/sso/connections/{id}", tag = "sso", params(("id" = String, Path)),
    responses((status = 200, body = ConnectionView), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem)))]
async fn get_connection(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<ConnectionView>> {
    principal.require(Permission::InstanceManage)?;
    let mut tx = state.store.read().await?;
    let row = load(tx.as_mut(), &id).await?;
    tx.rollback().await?;
    Ok(Json(view(&state, &row)))
}

/// Changes a connection (`If-Match` honoured); a new `client_secret` replaces the stored one.
#[utoipa::path(patch, path = "/api/v1/sso/connections/{id}", tag = "sso", params(("id" = String, Path)),
    request_body = ConnectionPatch,
    responses((status = 200, body = ConnectionView), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 412, body = Problem)))]
async fn patch_connection(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<ConnectionPatch>,
) -> ApiResult<Json<ConnectionView>> {
    principal.require(Permission::InstanceManage)?;
    if let Some(issuer) = &req.issuer {
        discoverable(&state, issuer).await?;
    }
    let now = OffsetDateTime::now_utc();
    let mut tx = state.store.write().await?;
    let before = load(tx.as_mut(), &id).await?;
    check_if_match(&headers, before.version)?;
    let mut row = before.clone();
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
        row.claims = claims_row(req.claims, Some(&before.claims));
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
    check(tx.as_mut(), &mut row).await?;
    let secret_changed = req.client_secret.is_some();
    if let Some(secret) = req.client_secret {
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
    Ok(Json(view(&state, &row)))
}

/// Removes a connection; its users keep their accounts and may sign in by password again.
#[utoipa::path(delete, path = "/api/v1/sso/connections/{id}", tag = "sso", params(("id" = String, Path)),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn delete_connection(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    principal.require(Permission::InstanceManage)?;
    let now = OffsetDateTime::now_utc();
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

/// Finds the SSO connection owning the email's domain; 404 when none does.
#[utoipa::path(post, path = "/api/v1/auth/sso/discover", tag = "sso", request_body = DiscoverRequest, security(()),
    responses((status = 200, body = DiscoverResponse), (status = 400, body = Problem), (status = 404, body = Problem)))]
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

#[derive(Debug, Deserialize)]
struct StartQuery {
    login_hint: Option<String>,
}

fn unavailable(e: impl std::fmt::Display) -> ApiError {
    tracing::warn!(error = %e, "the identity provider could not be used");
    ApiError::other(StatusCode::BAD_GATEWAY, "sso_unavailable", "the identity provider could not be reached")
}

fn state_cookie(state: &AppState, value: &str, max_age: i64) -> HeaderValue {
    let secure = crate::pages::secure(state);
    HeaderValue::from_str(&format!(
        "{STATE_COOKIE}={value}; Path=/sso; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("steward_sso=; Path=/sso; Max-Age=0"))
}

/// Sends the browser to the provider with a fresh state, nonce and PKCE challenge.
async fn start(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<StartQuery>,
) -> ApiResult<Response> {
    let mut tx = state.store.read().await?;
    let c = load(tx.as_mut(), &id).await?;
    let key = state.sso.key(tx.as_mut()).await?.ok_or_else(|| ApiError::internal("no SSO key for a connection"))?;
    tx.rollback().await?;
    let discovery = state.sso.discover(&c.issuer).await.map_err(unavailable)?;
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(ApiError::internal)?;
    let sign_in = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, bytes);
    let (_, challenge) = key.pkce(&sign_in);
    let mut url = reqwest::Url::parse(&discovery.authorization_endpoint).map_err(unavailable)?;
    {
        let mut query = url.query_pairs_mut();
        query
            .append_pair("response_type", "code")
            .append_pair("client_id", &c.client_id)
            .append_pair("redirect_uri", &redirect_uri(&state))
            .append_pair("scope", &c.scopes.join(" "))
            .append_pair("state", &sign_in)
            .append_pair("nonce", &key.nonce(&sign_in))
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        if let Some(hint) = q.login_hint.as_deref().filter(|h| !h.is_empty() && h.len() <= 320) {
            query.append_pair("login_hint", hint);
        }
    }
    let expires = OffsetDateTime::now_utc().unix_timestamp() + STATE_SECS;
    let mut response = StatusCode::SEE_OTHER.into_response();
    let location = HeaderValue::from_str(url.as_str()).map_err(ApiError::internal)?;
    response.headers_mut().insert(header::LOCATION, location);
    response
        .headers_mut()
        .append(header::SET_COOKIE, state_cookie(&state, &key.sign_state(c.id, &sign_in, expires), STATE_SECS));
    Ok(response)
}

#[derive(Debug, Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    iss: Option<String>,
}

/// Why a sign-in through a connection was refused; audited, then answered with its code.
struct Refusal {
    code: &'static str,
    reason: String,
    user: Option<steward_core::UserId>,
    email: Option<String>,
}

impl Refusal {
    fn new(code: &'static str, reason: impl Into<String>) -> Self {
        Refusal { code, reason: reason.into(), user: None, email: None }
    }
}

/// Completes the sign-in the provider sent back: code exchange, ID token, user, roles, session.
async fn callback(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> ApiResult<Response> {
    let bad_state = || {
        ApiError::other(
            StatusCode::BAD_REQUEST,
            "sso_state_invalid",
            "this sign-in was not started here, or it expired; start again",
        )
    };
    let sign_in = q.state.clone().ok_or_else(bad_state)?;
    let now = OffsetDateTime::now_utc();
    let mut tx = state.store.read().await?;
    let key = state.sso.key(tx.as_mut()).await?.ok_or_else(bad_state)?;
    let cookie_value = cookie(&headers, STATE_COOKIE).ok_or_else(bad_state)?;
    let connection_id = key.verify_state(&cookie_value, &sign_in, now.unix_timestamp()).ok_or_else(bad_state)?;
    let c = tx.sso_connection(connection_id).await?.ok_or_else(bad_state)?;
    tx.rollback().await?;

    let outcome = match exchange(&state, &c, &key, &sign_in, &q, now).await {
        Ok((id, groups)) => sign_in_user(&state, &c, id, &groups, ip, &headers, now).await?,
        Err(refusal) => Err(refusal),
    };
    let mut response = match outcome {
        Ok((user, secret, expires_at)) => {
            let target = if user.instance_roles.is_empty() { "/app" } else { "/admin" };
            let mut response = StatusCode::SEE_OTHER.into_response();
            response.headers_mut().insert(header::LOCATION, HeaderValue::from_static(target));
            set_session_cookies(&state, response.headers_mut(), &secret, (expires_at - now).whole_seconds());
            response
        }
        Err(refusal) => {
            let tx = state.store.write().await?;
            let target = refusal.user.map_or_else(|| c.id.to_string(), |u| u.to_string());
            let kind = if refusal.user.is_some() { TargetType::User } else { TargetType::Instance };
            let mut event = AuditDraft::new("sso.refused", Actor::SYSTEM, kind, target)
                .in_org_opt(c.org_id)
                .detail(json!({ "connection_id": c.id, "code": refusal.code, "reason": refusal.reason }));
            if let Some(email) = &refusal.email {
                event = event.personal(json!({ "email": email }));
            }
            state.commit(tx, vec![event], now).await?;
            let status =
                if refusal.code == "sso_unavailable" { StatusCode::BAD_GATEWAY } else { StatusCode::UNAUTHORIZED };
            let wants_page = headers
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|a| a.to_ascii_lowercase().contains("text/html"));
            if wants_page {
                // A person's browser gets a page of the instance saying why.
                let message = format!("Single sign-on refused this sign-in: {}.", refusal.reason);
                crate::pages::PageError::Status(status, message).into_response()
            } else {
                ApiError::other(status, refusal.code, format!("single sign-on refused: {}", refusal.reason))
                    .into_response()
            }
        }
    };
    response.headers_mut().append(header::SET_COOKIE, state_cookie(&state, "", 0));
    Ok(response)
}

/// Trades the code for tokens and reads who the provider says signed in, with their groups.
async fn exchange(
    state: &AppState,
    c: &SsoConnectionRow,
    key: &crate::sso::SsoKey,
    sign_in: &str,
    q: &CallbackQuery,
    now: OffsetDateTime,
) -> Result<(ExternalIdentity, Vec<String>), Refusal> {
    if let Some(error) = &q.error {
        let safe: String = error.chars().filter(|ch| ch.is_ascii_alphanumeric() || *ch == '_').take(64).collect();
        return Err(Refusal::new("sso_failed", format!("the provider answered {safe}")));
    }
    // RFC 9207: a provider that names itself must be the one this sign-in went to.
    if q.iss.as_deref().is_some_and(|iss| iss != c.issuer) {
        return Err(Refusal::new("sso_failed", "the response came from another issuer"));
    }
    let code = q.code.as_deref().ok_or_else(|| Refusal::new("sso_failed", "no authorization code"))?;
    let discovery = state.sso.discover(&c.issuer).await.map_err(|e| {
        tracing::warn!(error = %e, "discovery failed");
        Refusal::new("sso_unavailable", "the provider's discovery document could not be read")
    })?;
    let secret = {
        let sealed = &c.client_secret_sealed;
        key.open(sealed).map_err(|_| Refusal::new("sso_failed", "the client secret cannot be opened"))?
    };
    let (verifier, _) = key.pkce(sign_in);
    let redirect = redirect_uri(state);
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect.as_str()),
        ("code_verifier", verifier.as_str()),
    ];
    let methods = &discovery.token_endpoint_auth_methods_supported;
    let basic = methods.is_empty() || methods.iter().any(|m| m == "client_secret_basic");
    let mut request = state.sso.http().post(&discovery.token_endpoint).header(header::ACCEPT, "application/json");
    if basic {
        let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        request = request.basic_auth(enc(&c.client_id), Some(enc(&secret)));
    } else {
        form.push(("client_id", c.client_id.as_str()));
        form.push(("client_secret", secret.as_str()));
    }
    let body = serde_urlencoded::to_string(&form).map_err(|_| Refusal::new("sso_failed", "bad token request"))?;
    let response =
        request.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded").body(body).send().await.map_err(
            |e| {
                tracing::warn!(error = %e, "token request failed");
                Refusal::new("sso_unavailable", "the provider's token endpoint could not be reached")
            },
        )?;
    let status = response.status();
    let tokens: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let error = tokens.get("error").and_then(Value::as_str).unwrap_or("unknown");
        let safe: String = error.chars().filter(|ch| ch.is_ascii_alphanumeric() || *ch == '_').take(64).collect();
        return Err(Refusal::new("sso_failed", format!("the token endpoint answered {status} {safe}")));
    }
    let id_token =
        tokens.get("id_token").and_then(Value::as_str).ok_or_else(|| Refusal::new("sso_failed", "no ID token"))?;
    let kid = crate::jwt::decode(id_token).ok().and_then(|u| u.kid().map(str::to_owned));
    let keys = state.sso.jwks(&discovery.jwks_uri, kid.as_deref()).await.map_err(|e| {
        tracing::warn!(error = %e, "JWKS fetch failed");
        Refusal::new("sso_unavailable", "the provider's keys could not be read")
    })?;
    let mut claims = validate_id_token(id_token, &keys, &c.issuer, &c.client_id, &key.nonce(sign_in), now)
        .map_err(|e| Refusal::new("sso_failed", format!("invalid ID token: {}", e.reason())))?;
    let wanted = [&c.claims.email, &c.claims.name, &c.claims.groups];
    if let (Some(userinfo), Some(access)) =
        (&discovery.userinfo_endpoint, tokens.get("access_token").and_then(Value::as_str))
        && wanted.iter().any(|w| !claims.contains_key(w.as_str()))
    {
        merge_userinfo(state, userinfo, access, &mut claims).await?;
    }
    let id = ExternalIdentity::from_claims(&c.issuer, &claims, "sub", Some(&c.claims.email), &c.claims.name)
        .ok_or_else(|| Refusal::new("sso_failed", "the ID token has no subject"))?;
    let groups = match claims.get(&c.claims.groups) {
        Some(Value::Array(list)) => list.iter().filter_map(|g| g.as_str().map(str::to_owned)).collect(),
        Some(Value::String(g)) => vec![g.clone()],
        _ => vec![],
    };
    Ok((id, groups))
}

/// Adds the UserInfo claims the ID token lacks (RFC: its `sub` must be the ID token's).
async fn merge_userinfo(
    state: &AppState,
    url: &str,
    access_token: &str,
    claims: &mut Map<String, Value>,
) -> Result<(), Refusal> {
    let info: Value = match state.sso.http().get(url).bearer_auth(access_token).send().await {
        Ok(r) if r.status().is_success() => r.json().await.unwrap_or(Value::Null),
        _ => return Err(Refusal::new("sso_unavailable", "the provider's userinfo endpoint could not be read")),
    };
    let Value::Object(info) = info else { return Err(Refusal::new("sso_failed", "userinfo is not a JSON object")) };
    if info.get("sub") != claims.get("sub") {
        return Err(Refusal::new("sso_failed", "userinfo is about another subject"));
    }
    for (k, v) in info {
        claims.entry(k).or_insert(v);
    }
    Ok(())
}

/// Finds, links or creates the user, checks their status, applies the role mapping and opens
/// the session, all in one transaction with its audit events.
async fn sign_in_user(
    state: &AppState,
    c: &SsoConnectionRow,
    id: ExternalIdentity,
    groups: &[String],
    ip: Option<std::net::IpAddr>,
    headers: &HeaderMap,
    now: OffsetDateTime,
) -> ApiResult<Result<(UserRow, String, OffsetDateTime), Refusal>> {
    let email = id.email.as_ref().map(|e| e.as_str().to_owned());
    let refuse = |code: &'static str, reason: &str, user: Option<&UserRow>| {
        Ok(Err(Refusal { code, reason: reason.to_owned(), user: user.map(|u| u.id), email: email.clone() }))
    };
    let in_domains =
        id.email.as_ref().is_some_and(|e| c.domains.is_empty() || c.domains.iter().any(|d| d == e.domain()));
    let mut tx = state.store.write().await?;
    let mut events = Vec::new();
    let mut created = false;
    let user = match find_user(tx.as_mut(), &id).await? {
        Some((user, Found::Linked)) => {
            // A link holds only while the connection's domains still take the user's address.
            let domain = user.email.rsplit_once('@').map(|(_, d)| d.to_ascii_lowercase());
            if !c.domains.is_empty() && !domain.is_some_and(|d| c.domains.contains(&d)) {
                tx.rollback().await?;
                return refuse("sso_user_unknown", "the user's email is outside the connection's domains", Some(&user));
            }
            user
        }
        Some((user, Found::ByEmail)) => {
            if !in_domains {
                tx.rollback().await?;
                return refuse("sso_user_unknown", "the email is outside the connection's domains", None);
            }
            if user.status.can_sign_in() || user.status == UserStatus::Invited {
                tx.link_external_identity(&id.issuer, &id.subject, user.id, now).await?;
                events.push(
                    AuditDraft::new("user.sso_linked", Actor::SYSTEM, TargetType::User, user.id)
                        .detail(json!({ "connection_id": c.id, "issuer": id.issuer })),
                );
            }
            user
        }
        None if c.jit && in_domains => {
            let detail = json!({ "method": "sso", "connection_id": c.id });
            match create_jit_user(tx.as_mut(), &id, detail, now).await {
                Ok((user, event)) => {
                    events.push(event);
                    created = true;
                    user
                }
                Err(e) => {
                    tx.rollback().await?;
                    return refuse("sso_user_unknown", &e.problem().detail, None);
                }
            }
        }
        None => {
            tx.rollback().await?;
            return refuse(
                "sso_user_unknown",
                "no user has this identity and the connection does not create users",
                None,
            );
        }
    };
    let mut user = user;
    if let Some(org) = c.org_id {
        if created {
            // An org's connection provisions into its org; the role mapping may raise the role.
            match join_org(tx.as_mut(), c, org, &user, now).await? {
                Ok(event) => events.push(event),
                Err(why) => {
                    tx.rollback().await?;
                    return refuse("sso_user_unknown", &why, None);
                }
            }
        }
        // An org's identity provider signs in only the people that org alone holds.
        if !crate::governance::directory_reach(tx.as_mut(), org, &user).await?.governs() {
            tx.rollback().await?;
            return refuse(
                "sso_not_governed",
                "the organization's identity provider cannot sign in a user that the organization does not alone hold",
                Some(&user),
            );
        }
    }
    // Signing in through the provider proves the address, as accepting the invitation would.
    if user.status == UserStatus::Invited && user.kind == steward_core::UserKind::Person {
        user.status = UserStatus::Active;
        user.updated_at = now;
        tx.update_user(&user).await?;
        user.version += 1;
        events.push(
            AuditDraft::new("user.activated", Actor::SYSTEM, TargetType::User, user.id)
                .detail(json!({ "via": "sso", "connection_id": c.id })),
        );
    }
    if !user.status.can_sign_in() || user.kind != steward_core::UserKind::Person {
        tx.rollback().await?;
        return refuse("sso_user_inactive", &format!("the user is {}", user.status), Some(&user));
    }
    events.extend(apply_role_mapping(tx.as_mut(), c, &user, groups, now).await?);
    let (secret, session, login) =
        open_session(tx.as_mut(), &user, ip, headers, json!({ "method": "sso", "connection_id": c.id }), now).await?;
    events.push(login);
    state.commit(tx, events, now).await?;
    metrics::counter!("steward_logins_total", "outcome" => "ok").increment(1);
    Ok(Ok((user, secret, session.expires_at)))
}

/// Makes a user just created through an org's connection a member of that org, seats permitting;
/// Err with the reason when the org cannot take them.
async fn join_org(
    tx: &mut dyn Tx,
    c: &SsoConnectionRow,
    org_id: OrgId,
    user: &UserRow,
    now: OffsetDateTime,
) -> ApiResult<Result<AuditDraft, String>> {
    let Some(org) = tx.org(org_id).await? else { return Ok(Err("the connection's organization is gone".into())) };
    if org.state != steward_core::OrgState::Active {
        return Ok(Err(format!("the organization is {}", org.state)));
    }
    if let Err(e) = check_seats(tx, &org, now).await {
        return Ok(Err(e.problem().detail));
    }
    tx.insert_membership(org.id, user.id, OrgRole::Member, now).await?;
    Ok(Ok(AuditDraft::new("org.member_added", Actor::SYSTEM, TargetType::User, user.id)
        .in_org(org.id)
        .detail(json!({ "role": OrgRole::Member, "source": "sso", "connection_id": c.id }))))
}

/// Grants or updates the org roles the user's groups map to. The owner's role is never touched,
/// and a grant past the license's seats is skipped (and audited as such).
async fn apply_role_mapping(
    tx: &mut dyn Tx,
    c: &SsoConnectionRow,
    user: &UserRow,
    groups: &[String],
    now: OffsetDateTime,
) -> ApiResult<Vec<AuditDraft>> {
    let mapping = c.role_mapping.iter().map(|m| (m.group.as_str(), m.org_id, m.role));
    let mut events = Vec::new();
    for (org_id, role) in steward_core::sso::granted_roles(groups, mapping) {
        let Some(org) = tx.org(org_id).await? else { continue };
        if org.state == steward_core::OrgState::Purged {
            continue;
        }
        let rules = rules_view(tx, &org).await?;
        let Ok((change, event)) = org::set_member_role(&rules, user.id, user.status, role, Actor::SYSTEM) else {
            continue;
        };
        if change == RoleChange::Added
            && let Err(e) = check_seats(tx, &org, now).await
        {
            events.push(
                AuditDraft::new("sso.mapping_skipped", Actor::SYSTEM, TargetType::User, user.id)
                    .in_org(org.id)
                    .detail(json!({ "connection_id": c.id, "role": role, "code": e.code() })),
            );
            continue;
        }
        match change {
            RoleChange::Added => tx.insert_membership(org.id, user.id, role, now).await?,
            RoleChange::Changed { .. } => tx.set_membership_role(org.id, user.id, role).await?,
            RoleChange::Unchanged => {}
        }
        if let Some(mut event) = event {
            if let Some(detail) = event.detail.as_object_mut() {
                detail.insert("source".into(), json!("sso"));
                detail.insert("connection_id".into(), json!(c.id));
            }
            events.push(event);
        }
    }
    Ok(events)
}
