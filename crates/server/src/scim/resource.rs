//! What every SCIM resource type answers alike: one set of handlers for `/Users` and `/Groups`
//! (list, search, read, create, replace, patch, delete), generic over what the two types do
//! differently, which each states once by implementing [`ResourceType`].

use std::future::Future;

use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, Uri};
use serde_json::Value;
use steward_scim::schema::Attr;

use super::{Failure, ListParams, Scim, ScimClient, ScimResult, body_json, check_if_match, project, query_projection};
use crate::state::AppState;

/// One SCIM request: the instance it reaches, the client that sent it, and its headers (where
/// `If-Match` makes a write conditional).
#[derive(Clone, Copy)]
pub(super) struct Call<'a> {
    pub state: &'a AppState,
    pub client: &'a ScimClient,
    pub headers: &'a HeaderMap,
}

/// A SCIM resource type: its attributes and how each of its operations is done.
pub(super) trait ResourceType: Send + Sync + 'static {
    /// The attributes of its schema, for projecting answers.
    const ATTRS: &'static [Attr];

    /// The current version of the resource `id`, when the client may see it.
    fn version(cx: Call<'_>, id: &str) -> impl Future<Output = Result<i64, Failure>> + Send;

    /// The resources `params` asks for, as a list response.
    fn list(cx: Call<'_>, params: ListParams) -> impl Future<Output = ScimResult> + Send;

    /// The resource `id`, when the client may see it.
    fn read(cx: Call<'_>, id: &str) -> impl Future<Output = Result<Value, Failure>> + Send;

    /// Creates a resource from `body`; answers its status with it.
    fn create(cx: Call<'_>, body: &Value) -> impl Future<Output = Result<(StatusCode, Value), Failure>> + Send;

    /// Replaces the resource `id` with `body`.
    fn replace(cx: Call<'_>, id: &str, body: &Value) -> impl Future<Output = Result<Value, Failure>> + Send;

    /// Applies the patch operations of `body` to the resource `id`.
    fn patch(cx: Call<'_>, id: &str, body: &Value) -> impl Future<Output = Result<Value, Failure>> + Send;

    /// Deletes the resource `id`, as the type defines deleting.
    fn delete(cx: Call<'_>, id: &str) -> impl Future<Output = Result<(), Failure>> + Send;
}

/// `If-Match` (when sent) names the current version of the resource `id`, which the client may
/// see: judged before the body is read or a password hashed, so that a stale version answers
/// 412 whatever the body holds. The write checks the version again under the write lock.
pub(super) async fn judge_before_body<R: ResourceType>(cx: Call<'_>, id: &str) -> Result<(), Failure> {
    check_if_match(cx.headers, R::version(cx, id).await?)?;
    Ok(())
}

/// A SCIM request as the handlers receive it: the state, the client that sent it (authenticated
/// before anything else is read) and its headers.
pub(super) struct Received {
    state: AppState,
    client: ScimClient,
    headers: HeaderMap,
}

impl FromRequestParts<AppState> for Received {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let client = ScimClient::from_request_parts(parts, state).await?;
        Ok(Received { state: state.clone(), client, headers: parts.headers.clone() })
    }
}

impl Received {
    fn call(&self) -> Call<'_> {
        Call { state: &self.state, client: &self.client, headers: &self.headers }
    }

    fn json(&self, body: &Bytes) -> Result<Value, Failure> {
        Ok(body_json(&self.headers, body)?)
    }
}

/// `GET /{type}`.
pub(super) async fn list<R: ResourceType>(rq: Received, uri: Uri) -> ScimResult {
    R::list(rq.call(), ListParams::from_query(uri.query())?).await
}

/// `POST /{type}/.search`.
pub(super) async fn search<R: ResourceType>(rq: Received, body: Bytes) -> ScimResult {
    R::list(rq.call(), ListParams::from_search(&rq.json(&body)?)?).await
}

/// `GET /{type}/{id}`.
pub(super) async fn get<R: ResourceType>(rq: Received, Path(id): Path<String>, uri: Uri) -> ScimResult {
    let projection = query_projection(&uri)?;
    let resource = R::read(rq.call(), &id).await?;
    Ok(Scim::resource(StatusCode::OK, project(resource, &projection, R::ATTRS)))
}

/// `POST /{type}`.
pub(super) async fn create<R: ResourceType>(rq: Received, body: Bytes) -> ScimResult {
    let (status, resource) = R::create(rq.call(), &rq.json(&body)?).await?;
    Ok(Scim::resource(status, resource))
}

/// `PUT /{type}/{id}`.
pub(super) async fn replace<R: ResourceType>(rq: Received, Path(id): Path<String>, body: Bytes) -> ScimResult {
    Ok(Scim::resource(StatusCode::OK, R::replace(rq.call(), &id, &rq.json(&body)?).await?))
}

/// `PATCH /{type}/{id}`.
pub(super) async fn patch<R: ResourceType>(rq: Received, Path(id): Path<String>, body: Bytes) -> ScimResult {
    Ok(Scim::resource(StatusCode::OK, R::patch(rq.call(), &id, &rq.json(&body)?).await?))
}

/// `DELETE /{type}/{id}`.
pub(super) async fn delete<R: ResourceType>(rq: Received, Path(id): Path<String>) -> Result<StatusCode, Failure> {
    R::delete(rq.call(), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// One operation of a bulk request on a resource of type `R`: `rest` is the path after the
/// type's name. Answers the status, the resource's location and its version.
pub(super) async fn bulk_one<R: ResourceType>(
    cx: Call<'_>,
    (method, rest): (&str, &[&str]),
    data: &Value,
) -> Option<Result<(u16, Option<String>, Option<String>), Failure>> {
    let done = match (method, rest) {
        ("POST", []) => R::create(cx, data).await.map(|(_, r)| (r, 201)),
        ("PUT", [id]) => R::replace(cx, id, data).await.map(|r| (r, 200)),
        ("PATCH", [id]) => R::patch(cx, id, data).await.map(|r| (r, 200)),
        ("DELETE", [id]) => return Some(R::delete(cx, id).await.map(|()| (204, None, None))),
        _ => return None,
    };
    Some(done.map(|(resource, status)| {
        let location = resource["meta"]["location"].as_str().map(str::to_owned);
        let version = resource["meta"]["version"].as_str().map(str::to_owned);
        (status, location, version)
    }))
}
