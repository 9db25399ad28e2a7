//! `/scim/v2`: the SCIM 2.0 service provider that identity providers drive. Users are Steward
//! users and Groups are teams; every change goes through the same lifecycle functions as the API
//! (`steward_ops::users::deactivate`, `steward_ops::users::reactivate`) and commits with its audit events,
//! attributed to the token's service user. What SCIM means on the wire lives in `steward-scim`.

mod bulk;
mod groups;
mod resource;
mod users;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;

use steward_core::governance::{Authority, INSTANCE_DIRECTORY, Reach, StatusSetter};
use steward_core::{Actor, Permission};
use steward_scim::schema;
use steward_scim::{ScimError, ScimType};
use steward_store::{Constraint, ScimTokenRow, StoreError};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::auth::{SecretKind, secret_hash};
use crate::error::ApiError;
use crate::state::AppState;
use groups::Groups;
use resource::ResourceType;
use users::Users;

/// The media type of every SCIM body.
pub const SCIM_JSON: &str = "application/scim+json";
/// Bulk operations accepted in one request.
pub const MAX_BULK_OPERATIONS: usize = 1000;
/// Operations of one bulk request that may set a password: each costs a password hash, and one
/// tenant's request must not hold the hashing workers that everyone's logins need.
pub const MAX_BULK_PASSWORDS: usize = 20;
/// The most resources one list page holds.
pub const MAX_RESULTS: u32 = 500;

/// The SCIM routes, to be nested at `/scim/v2`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ServiceProviderConfig", get(service_provider_config))
        .route("/Schemas", get(list_schemas))
        .route("/Schemas/{id}", get(get_schema))
        .route("/ResourceTypes", get(list_resource_types))
        .route("/ResourceTypes/{id}", get(get_resource_type))
        .merge(resource_routes::<Users>("/Users"))
        .merge(resource_routes::<Groups>("/Groups"))
        .route("/.search", post(root_search))
        .route("/Bulk", post(bulk::bulk))
        .fallback(|| async { Scim::err(ScimError::not_found("SCIM endpoint")) })
}

/// The routes of one resource type at `base`: its list, search and each resource.
fn resource_routes<R: ResourceType>(base: &str) -> Router<AppState> {
    Router::new()
        .route(base, get(resource::list::<R>).post(resource::create::<R>))
        .route(&format!("{base}/.search"), post(resource::search::<R>))
        .route(
            &format!("{base}/{{id}}"),
            get(resource::get::<R>)
                .put(resource::replace::<R>)
                .patch(resource::patch::<R>)
                .delete(resource::delete::<R>),
        )
}

/// An answer in SCIM's format.
pub struct Scim(Response);

impl Scim {
    fn json(status: StatusCode, body: Value) -> Self {
        let mut r = (status, body.to_string()).into_response();
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(SCIM_JSON));
        Scim(r)
    }

    /// A resource, with its ETag and, when created, its Location.
    fn resource(status: StatusCode, body: Value) -> Self {
        let etag = body["meta"]["version"].as_str().map(str::to_owned);
        let location = body["meta"]["location"].as_str().map(str::to_owned);
        let mut s = Self::json(status, body);
        if let Some(tag) = etag.and_then(|t| HeaderValue::from_str(&t).ok()) {
            s.0.headers_mut().insert(header::ETAG, tag);
        }
        if status == StatusCode::CREATED
            && let Some(loc) = location.and_then(|l| HeaderValue::from_str(&l).ok())
        {
            s.0.headers_mut().insert(header::LOCATION, loc);
        }
        s
    }

    fn err(e: ScimError) -> Self {
        let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut s = Self::json(status, e.body());
        if let Some(secs) = e.retry_after {
            s.0.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        s
    }
}

impl IntoResponse for Scim {
    fn into_response(self) -> Response {
        self.0
    }
}

/// What a handler returns.
pub type ScimResult = Result<Scim, Failure>;

/// A SCIM error on its way out.
pub struct Failure(pub ScimError);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        Scim::err(self.0).0
    }
}

impl From<ScimError> for Failure {
    fn from(e: ScimError) -> Self {
        Failure(e)
    }
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        Failure(from_api(&e))
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(Constraint::UserNameTaken | Constraint::EmailTaken) => Failure(taken()),
            StoreError::Conflict(Constraint::TeamNameTaken) => {
                Failure(ScimError::new(ScimType::Uniqueness, "the org has another team of this name"))
            }
            StoreError::Conflict(Constraint::VersionMismatch) => {
                Failure(ScimError::status(412, "the resource changed meanwhile; read it again"))
            }
            other => Failure::from(ApiError::from(other)),
        }
    }
}

impl From<steward_ops::OpError> for Failure {
    fn from(e: steward_ops::OpError) -> Self {
        match e {
            steward_ops::OpError::Store(e) => Failure::from(e),
            other => Failure::from(ApiError::from(other)),
        }
    }
}

/// The API's errors in SCIM's terms.
fn from_api(e: &ApiError) -> ScimError {
    let p = e.problem();
    match (p.status, p.code.as_str()) {
        (500.., _) => {
            tracing::error!(detail = %p.detail, "SCIM request failed");
            ScimError::internal()
        }
        (409, "email_taken" | "user_deactivated") => taken(),
        (400, _) => ScimError::invalid_value(p.detail),
        (429, _) => ScimError::too_many_requests(p.detail, e.retry_after().unwrap_or(60)),
        (status, _) => ScimError::status(status, p.detail),
    }
}

/// The SCIM client: a live token and the service user its changes are attributed to.
pub struct ScimClient {
    pub token: ScimTokenRow,
    /// Password hashes this request already took from the token's budget (a bulk request takes
    /// its count at once), spent before the budget is asked again.
    prepaid: std::sync::atomic::AtomicUsize,
}

impl ScimClient {
    /// The actor of every change the client makes.
    pub fn actor(&self) -> Actor {
        Actor::user(self.token.service_user_id)
    }

    /// Takes `n` from the token's budget of password hashes (`scim_passwords_per_minute`), all or
    /// nothing, before any is hashed: one directory cannot keep the hashing workers busy. What a
    /// bulk request took for its operations ([`ScimClient::prepay_passwords`]) is spent first.
    pub fn spend_passwords(&self, state: &AppState, n: usize) -> Result<(), Failure> {
        use std::sync::atomic::Ordering::SeqCst;
        let prepaid = self.prepaid.fetch_update(SeqCst, SeqCst, |p| p.checked_sub(n)).is_ok();
        if n == 0 || prepaid {
            return Ok(());
        }
        let per_minute = state.config.scim_passwords_per_minute;
        state.scim_passwords.take(self.token.id, n as u64, per_minute).map(drop).map_err(|wait| {
            let detail = format!("this token may set {per_minute} passwords a minute");
            Failure(ScimError::too_many_requests(detail, wait.unwrap_or(60)))
        })
    }

    /// Takes the passwords of a whole bulk request from the budget at once, so that it is
    /// refused before anything runs rather than halfway.
    pub fn prepay_passwords(&self, state: &AppState, n: usize) -> Result<(), Failure> {
        self.spend_passwords(state, n)?;
        self.prepaid.fetch_add(n, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    /// What audit events of SCIM changes say besides their own detail.
    pub fn via(&self) -> Value {
        json!({ "via": "scim", "scim_token_id": self.token.id })
    }

    /// The authority whose deactivations this client makes: its org's directory, or the instance.
    pub fn status_setter(&self) -> StatusSetter {
        self.token.org_id.map_or(StatusSetter::Instance, StatusSetter::Org)
    }

    /// How far this client reaches into `user` (`steward_core::governance`): an org's token as
    /// that org's directory, an instance-wide token with a directory's permissions only.
    pub async fn reach(&self, tx: &mut dyn steward_store::Tx, user: &steward_store::UserRow) -> Result<Reach, Failure> {
        let held = crate::governance::held(tx, user).await?;
        Ok(match self.token.org_id {
            Some(org) => held.reach(Authority::Directory(org)),
            None => {
                let directory: BTreeSet<Permission> = INSTANCE_DIRECTORY.iter().copied().collect();
                held.reach(Authority::Instance(&directory))
            }
        })
    }
}

/// The refusal of a change to a user that another authority governs.
pub fn not_governed() -> ScimError {
    ScimError::status(
        403,
        "this user is also held by another organization or the instance, or was deactivated by them; \
         this directory may only manage their groups and end their membership of its organization",
    )
}

/// The one answer for a userName or email that is taken, whoever holds it: it names no one.
pub fn taken() -> ScimError {
    ScimError::new(ScimType::Uniqueness, "this userName or email is not available")
}

impl FromRequestParts<AppState> for ScimClient {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let unauthorized = || Failure(ScimError::status(401, "a valid SCIM bearer token is required"));
        let value = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).ok_or_else(unauthorized)?;
        let (scheme, secret) = value.split_once(' ').ok_or_else(unauthorized)?;
        let secret = secret.trim();
        if !scheme.eq_ignore_ascii_case("bearer") || SecretKind::of(secret) != Some(SecretKind::Scim) {
            return Err(unauthorized());
        }
        let hash = secret_hash(secret);
        // Only this node writes (SQLite): a token read since the last revocation is still good.
        let keep = !state.store.shared();
        let token = match keep.then(|| state.hot.scim_token(&hash)).flatten() {
            Some(kept) => Some(kept),
            None => {
                let epoch = state.changes.scim_token_epoch();
                let mut tx = state.store.read().await?;
                tx.last_read();
                let token = tx.scim_token_by_hash(&hash).await?;
                tx.rollback().await?;
                if keep && let Some(t) = &token {
                    state.hot.keep_scim_token(hash, t.clone(), epoch);
                }
                token
            }
        };
        match token {
            Some(t) if t.revoked_at.is_none() => Ok(ScimClient { token: t, prepaid: Default::default() }),
            _ => Err(unauthorized()),
        }
    }
}

/// The base URL of `/scim/v2`, for `location` and `$ref`.
pub fn base(state: &AppState) -> String {
    format!("{}/scim/v2", state.public_url.trim_end_matches('/'))
}

/// A time as SCIM shows it: as kept, so that the answer to a write and a later read agree.
fn rfc3339(t: OffsetDateTime) -> String {
    steward_store::as_kept(t).format(&Rfc3339).unwrap_or_default()
}

/// The `meta` of a resource.
fn meta(kind: &str, location: String, created: OffsetDateTime, modified: OffsetDateTime, version: i64) -> Value {
    json!({
        "resourceType": kind,
        "created": rfc3339(created),
        "lastModified": rfc3339(modified),
        "location": location,
        "version": format!("W/\"{version}\""),
    })
}

/// Err(412) unless an `If-Match` header, when present, names the current version.
fn check_if_match(headers: &HeaderMap, version: i64) -> Result<(), ScimError> {
    let Some(value) = headers.get(header::IF_MATCH) else { return Ok(()) };
    let text = value.to_str().map_err(|_| ScimError::invalid_value("If-Match is not text"))?;
    let current = version.to_string();
    if text.split(',').map(str::trim).any(|t| t == "*" || t.trim_start_matches("W/").trim_matches('"') == current) {
        Ok(())
    } else {
        Err(ScimError::status(412, format!("the resource is at version W/\"{version}\"")))
    }
}

/// A JSON body in SCIM's content types.
fn body_json(headers: &HeaderMap, body: &Bytes) -> Result<Value, ScimError> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let mime = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if !(mime == SCIM_JSON || mime == "application/json" || mime.is_empty()) {
        return Err(ScimError::invalid_syntax("the body must be application/scim+json"));
    }
    serde_json::from_slice(body).map_err(|e| ScimError::invalid_syntax(format!("the body is not JSON: {e}")))
}

/// `filter`, `sortBy`, paging and projection of a list or search.
#[derive(Debug, Default)]
pub struct ListParams {
    pub filter: Option<String>,
    pub sort_by: Option<String>,
    pub descending: bool,
    pub start_index: u64,
    pub count: u32,
    pub projection: steward_scim::resource::Projection,
}

impl ListParams {
    fn from_query(query: Option<&str>) -> Result<Self, ScimError> {
        let pairs: Vec<(String, String)> =
            form_urlencoded::parse(query.unwrap_or("").as_bytes()).into_owned().collect();
        let get = |k: &str| pairs.iter().find(|(key, _)| key.eq_ignore_ascii_case(k)).map(|(_, v)| v.clone());
        Self::build(
            get("filter"),
            get("sortBy"),
            get("sortOrder"),
            get("startIndex").map(Value::String),
            get("count").map(Value::String),
            get("attributes"),
            get("excludedAttributes"),
        )
    }

    fn from_search(body: &Value) -> Result<Self, ScimError> {
        let text = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_owned);
        let list = |k: &str| match body.get(k) {
            Some(Value::Array(items)) => Some(items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(",")),
            Some(Value::String(s)) => Some(s.clone()),
            _ => None,
        };
        Self::build(
            text("filter"),
            text("sortBy"),
            text("sortOrder"),
            body.get("startIndex").cloned(),
            body.get("count").cloned(),
            list("attributes"),
            list("excludedAttributes"),
        )
    }

    fn build(
        filter: Option<String>,
        sort_by: Option<String>,
        sort_order: Option<String>,
        start_index: Option<Value>,
        count: Option<Value>,
        attributes: Option<String>,
        excluded: Option<String>,
    ) -> Result<Self, ScimError> {
        let number = |v: Option<Value>, what: &str| -> Result<Option<i64>, ScimError> {
            match v {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Number(n)) => {
                    n.as_i64().map(Some).ok_or_else(|| ScimError::invalid_value(format!("{what} must be an integer")))
                }
                Some(Value::String(s)) => s
                    .trim()
                    .parse()
                    .map(Some)
                    .map_err(|_| ScimError::invalid_value(format!("{what} must be an integer"))),
                Some(_) => Err(ScimError::invalid_value(format!("{what} must be an integer"))),
            }
        };
        let descending = match sort_order.as_deref().map(str::to_ascii_lowercase).as_deref() {
            None | Some("ascending") => false,
            Some("descending") => true,
            Some(_) => return Err(ScimError::invalid_value("sortOrder is ascending or descending")),
        };
        if attributes.as_deref().is_some_and(|a| !a.trim().is_empty())
            && excluded.as_deref().is_some_and(|a| !a.trim().is_empty())
        {
            return Err(ScimError::invalid_value("attributes and excludedAttributes exclude each other"));
        }
        Ok(ListParams {
            filter: filter.filter(|f| !f.trim().is_empty()),
            sort_by: sort_by.filter(|s| !s.trim().is_empty()),
            descending,
            // RFC 7644 §3.4.2.4: below 1 is taken as 1; a negative count as 0.
            start_index: number(start_index, "startIndex")?.unwrap_or(1).max(1) as u64,
            count: number(count, "count")?.unwrap_or(100).clamp(0, i64::from(MAX_RESULTS)) as u32,
            projection: steward_scim::resource::Projection::parse(attributes.as_deref(), excluded.as_deref())?,
        })
    }

    fn filter(&self) -> Result<Option<steward_scim::Filter>, ScimError> {
        self.filter
            .as_deref()
            .map(|f| {
                // The answer quotes a filter only as far as a person needs to find the fault.
                let quoted: String = f.chars().take(200).collect();
                let more = if f.chars().count() > 200 { "…" } else { "" };
                steward_scim::parse_filter(f).map_err(|e| ScimError::invalid_filter(format!("{quoted:?}{more}: {e}")))
            })
            .transpose()
    }
}

/// A ListResponse message.
fn list_response(total: u64, start_index: u64, resources: Vec<Value>) -> Scim {
    Scim::json(
        StatusCode::OK,
        json!({
            "schemas": [schema::LIST_RESPONSE],
            "totalResults": total,
            "startIndex": start_index,
            "itemsPerPage": resources.len(),
            "Resources": resources,
        }),
    )
}

/// Projects a full resource for the response.
fn project(resource: Value, projection: &steward_scim::resource::Projection, attrs: &[schema::Attr]) -> Value {
    match resource {
        Value::Object(map) => Value::Object(projection.apply(map, attrs)),
        other => other,
    }
}

fn query_projection(headers: &axum::http::Uri) -> Result<steward_scim::resource::Projection, ScimError> {
    let params = ListParams::from_query(headers.query())?;
    Ok(params.projection)
}

async fn service_provider_config(State(state): State<AppState>, _: ScimClient) -> Scim {
    let config =
        schema::service_provider_config(&base(&state), MAX_BULK_OPERATIONS, state.config.max_body_bytes, MAX_RESULTS);
    Scim::json(StatusCode::OK, config)
}

async fn list_schemas(State(state): State<AppState>, _: ScimClient) -> Scim {
    let all = schema::schemas(&base(&state));
    list_response(all.len() as u64, 1, all)
}

async fn get_schema(State(state): State<AppState>, _: ScimClient, Path(id): Path<String>) -> ScimResult {
    schema::schemas(&base(&state))
        .into_iter()
        .find(|s| s["id"].as_str().is_some_and(|i| i.eq_ignore_ascii_case(&id)))
        .map(|s| Scim::json(StatusCode::OK, s))
        .ok_or_else(|| Failure(ScimError::not_found("schema")))
}

async fn list_resource_types(State(state): State<AppState>, _: ScimClient) -> Scim {
    let all = schema::resource_types(&base(&state));
    list_response(all.len() as u64, 1, all)
}

async fn get_resource_type(State(state): State<AppState>, _: ScimClient, Path(id): Path<String>) -> ScimResult {
    schema::resource_types(&base(&state))
        .into_iter()
        .find(|s| s["id"].as_str().is_some_and(|i| i.eq_ignore_ascii_case(&id)))
        .map(|s| Scim::json(StatusCode::OK, s))
        .ok_or_else(|| Failure(ScimError::not_found("resource type")))
}

/// `POST /.search` over Users and Groups at once: users first, then groups, one page of both.
async fn root_search(State(state): State<AppState>, client: ScimClient, headers: HeaderMap, body: Bytes) -> ScimResult {
    let body = body_json(&headers, &body)?;
    let params = ListParams::from_search(&body)?;
    if params.sort_by.is_some() {
        return Err(ScimError::invalid_value("sortBy applies to one resource type; search /Users or /Groups").into());
    }
    let filter = params.filter()?;
    let offset = params.start_index - 1;
    let user_cond = filter.as_ref().map(steward_scim::query::user_cond).transpose();
    let group_cond =
        filter.as_ref().map(|f| steward_scim::query::group_cond(f, client.token.org_id.is_some())).transpose();
    if let (Err(e), Err(_)) = (&user_cond, &group_cond) {
        return Err(e.clone().into());
    }
    let mut tx = state.store.read().await?;
    let mut resources = Vec::new();
    let mut total = 0;
    if let Ok(cond) = user_cond {
        let q = users::query(&client, cond, None, offset, params.count);
        let (n, rows) = tx.scim_users(&q).await?;
        total += n;
        resources
            .extend(rows.iter().map(|r| project(users::resource(&state, r), &params.projection, schema::USER_ATTRS)));
    }
    if let Ok(cond) = group_cond {
        let skipped_users = total.min(offset);
        let room = params.count.saturating_sub(resources.len() as u32);
        let q = groups::query(&client, cond, None, offset - skipped_users, room);
        let (n, rows) = tx.scim_groups(&q).await?;
        total += n;
        for g in &rows {
            let members = tx.team_members(g.team.id).await?;
            resources.push(project(
                groups::resource(&state, &client, g, &members),
                &params.projection,
                schema::GROUP_ATTRS,
            ));
        }
    }
    tx.rollback().await?;
    Ok(list_response(total, params.start_index, resources))
}

/// A resource document's string attribute.
fn text<'a>(doc: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    doc.get(key).and_then(Value::as_str)
}
