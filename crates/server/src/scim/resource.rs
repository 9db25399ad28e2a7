//! What every SCIM resource type answers alike: one set of handlers for `/Users` and `/Groups`
//! (list, search, read, create, replace, patch, delete), generic over what the two types do
//! differently, which each states once by implementing [`ResourceType`].

use std::future::Future;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use serde_json::Value;
use steward_scim::schema::Attr;

use super::{Failure, ListParams, Scim, ScimClient, ScimResult, body_json, project, query_projection};
use crate::state::AppState;

/// A SCIM resource type: its attributes and how each of its operations is done.
pub(super) trait ResourceType: Send + Sync + 'static {
    /// The attributes of its schema, for projecting answers.
    const ATTRS: &'static [Attr];

    /// The resources `params` asks for, as a list response.
    fn list(state: &AppState, client: &ScimClient, params: ListParams) -> impl Future<Output = ScimResult> + Send;

    /// The resource `id`, when the client may see it.
    fn read(state: &AppState, client: &ScimClient, id: &str) -> impl Future<Output = Result<Value, Failure>> + Send;

    /// Creates a resource from `body`; answers its status (201, or 200 for one brought back).
    fn create(
        state: &AppState,
        client: &ScimClient,
        body: &Value,
    ) -> impl Future<Output = Result<(StatusCode, Value), Failure>> + Send;

    /// Replaces the resource `id` with `body`; `If-Match` in `headers` makes it conditional.
    fn replace(
        state: &AppState,
        client: &ScimClient,
        id: &str,
        body: &Value,
        headers: &HeaderMap,
    ) -> impl Future<Output = Result<Value, Failure>> + Send;

    /// Applies the patch operations of `body` to the resource `id`.
    fn patch(
        state: &AppState,
        client: &ScimClient,
        id: &str,
        body: &Value,
        headers: &HeaderMap,
    ) -> impl Future<Output = Result<Value, Failure>> + Send;

    /// Deletes the resource `id`, as the type defines deleting.
    fn delete(
        state: &AppState,
        client: &ScimClient,
        id: &str,
        headers: &HeaderMap,
    ) -> impl Future<Output = Result<(), Failure>> + Send;
}

/// `GET /{type}`.
pub(super) async fn list<R: ResourceType>(State(state): State<AppState>, client: ScimClient, uri: Uri) -> ScimResult {
    R::list(&state, &client, ListParams::from_query(uri.query())?).await
}

/// `POST /{type}/.search`.
pub(super) async fn search<R: ResourceType>(
    State(state): State<AppState>,
    client: ScimClient,
    headers: HeaderMap,
    body: Bytes,
) -> ScimResult {
    R::list(&state, &client, ListParams::from_search(&body_json(&headers, &body)?)?).await
}

/// `GET /{type}/{id}`.
pub(super) async fn get<R: ResourceType>(
    State(state): State<AppState>,
    client: ScimClient,
    Path(id): Path<String>,
    uri: Uri,
) -> ScimResult {
    let projection = query_projection(&uri)?;
    let resource = R::read(&state, &client, &id).await?;
    Ok(Scim::resource(StatusCode::OK, project(resource, &projection, R::ATTRS)))
}

/// `POST /{type}`.
pub(super) async fn create<R: ResourceType>(
    State(state): State<AppState>,
    client: ScimClient,
    headers: HeaderMap,
    body: Bytes,
) -> ScimResult {
    let (status, resource) = R::create(&state, &client, &body_json(&headers, &body)?).await?;
    Ok(Scim::resource(status, resource))
}

/// `PUT /{type}/{id}`.
pub(super) async fn replace<R: ResourceType>(
    State(state): State<AppState>,
    client: ScimClient,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ScimResult {
    let body = body_json(&headers, &body)?;
    Ok(Scim::resource(StatusCode::OK, R::replace(&state, &client, &id, &body, &headers).await?))
}

/// `PATCH /{type}/{id}`.
pub(super) async fn patch<R: ResourceType>(
    State(state): State<AppState>,
    client: ScimClient,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ScimResult {
    let body = body_json(&headers, &body)?;
    Ok(Scim::resource(StatusCode::OK, R::patch(&state, &client, &id, &body, &headers).await?))
}

/// `DELETE /{type}/{id}`.
pub(super) async fn delete<R: ResourceType>(
    State(state): State<AppState>,
    client: ScimClient,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, Failure> {
    R::delete(&state, &client, &id, &headers).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// One operation of a bulk request on a resource of type `R`: `rest` is the path after the
/// type's name. Answers the status, the resource's location and its version.
pub(super) async fn bulk_one<R: ResourceType>(
    state: &AppState,
    client: &ScimClient,
    (method, rest): (&str, &[&str]),
    data: &Value,
    headers: &HeaderMap,
) -> Option<Result<(u16, Option<String>, Option<String>), Failure>> {
    let done = match (method, rest) {
        ("POST", []) => R::create(state, client, data).await.map(|(_, r)| (r, 201)),
        ("PUT", [id]) => R::replace(state, client, id, data, headers).await.map(|r| (r, 200)),
        ("PATCH", [id]) => R::patch(state, client, id, data, headers).await.map(|r| (r, 200)),
        ("DELETE", [id]) => return Some(R::delete(state, client, id, headers).await.map(|()| (204, None, None))),
        _ => return None,
    };
    Some(done.map(|(resource, status)| {
        let location = resource["meta"]["location"].as_str().map(str::to_owned);
        let version = resource["meta"]["version"].as_str().map(str::to_owned);
        (status, location, version)
    }))
}
