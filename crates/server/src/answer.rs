//! What an answer carries besides its body, decided in one place for every route: the request
//! id (`X-Request-Id`, also in the logs and in problem documents), the `ETag` of a versioned
//! resource with `If-None-Match` answered by 304, the `Location` of a created one, and the
//! `RateLimit` and `RateLimit-Policy` headers of a request counted against a rate limit.
//!
//! It does not decide whether a request is allowed (the principal and the limits do that).

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tracing::Instrument;

/// The header a request id comes in and goes out with.
pub const REQUEST_ID: &str = "x-request-id";

/// The longest request id taken from a caller.
const REQUEST_ID_MAX: usize = 128;

tokio::task_local! {
    static CONTEXT: Context;
}

/// What is known of the request being answered.
struct Context {
    id: Arc<str>,
    counted: Mutex<Option<Counted>>,
}

/// A request counted against a rate limit: its policy and where the count stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counted {
    /// The requests the window allows.
    pub quota: u64,
    /// The window, in seconds.
    pub window_secs: u64,
    /// The requests left now.
    pub remaining: u64,
    /// Seconds until the whole quota is available again.
    pub reset_secs: u64,
}

/// The id of the request being answered, outside a request `None`.
pub fn request_id() -> Option<String> {
    CONTEXT.try_with(|c| c.id.to_string()).ok()
}

/// Records that the request was counted against a rate limit; its answer says so. Outside a
/// request (a test calling a limiter directly) it does nothing.
pub fn counted(count: Counted) {
    let _ = CONTEXT.try_with(|c| *c.counted.lock().unwrap_or_else(|p| p.into_inner()) = Some(count));
}

/// The caller's request id when it is 1 to 128 visible ASCII characters.
fn callers_id(headers: &HeaderMap) -> Option<Arc<str>> {
    let id = headers.get(REQUEST_ID)?.to_str().ok()?;
    let usable = (1..=REQUEST_ID_MAX).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic());
    usable.then(|| Arc::from(id))
}

/// The outermost layer: gives the request its id, answers with it and with the rate limit the
/// request was counted against, and answers a conditional `GET` whose resource is unchanged
/// with 304.
pub async fn around(request: Request, next: Next) -> Response {
    let id = callers_id(request.headers()).unwrap_or_else(|| Arc::from(uuid::Uuid::now_v7().simple().to_string()));
    let conditional = matches!(*request.method(), Method::GET | Method::HEAD)
        .then(|| request.headers().get(header::IF_NONE_MATCH).cloned())
        .flatten();
    let context = Context { id: id.clone(), counted: Mutex::new(None) };
    let span = tracing::info_span!("request", request_id = %id);
    let (mut response, counted) = CONTEXT
        .scope(context, async {
            let response = next.run(request).await;
            let counted = CONTEXT.with(|c| *c.counted.lock().unwrap_or_else(|p| p.into_inner()));
            (response, counted)
        })
        .instrument(span)
        .await;
    if let Some(tags) = conditional
        && response.status() == StatusCode::OK
        && response.headers().get(header::ETAG).is_some_and(|etag| matches_any(&tags, etag))
    {
        response = not_modified(&response);
    }
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&id) {
        headers.insert(REQUEST_ID, value);
    }
    if let Some(c) = counted {
        let policy = format!("\"org\";q={};w={}", c.quota, c.window_secs);
        let state = format!("\"org\";r={};t={}", c.remaining, c.reset_secs);
        for (name, value) in [("ratelimit-policy", policy), ("ratelimit", state)] {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(name, value);
            }
        }
    }
    response
}

/// Whether `If-None-Match` (a list of entity tags, or `*`) names `etag`; weak tags compare as
/// their strong selves, as RFC 9110 says for this header.
fn matches_any(if_none_match: &HeaderValue, etag: &HeaderValue) -> bool {
    let (Ok(list), Ok(etag)) = (if_none_match.to_str(), etag.to_str()) else { return false };
    let strip = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    list.split(',').any(|tag| tag.trim() == "*" || strip(tag) == strip(etag))
}

/// 304 in place of an unchanged resource: no body, its `ETag` kept.
fn not_modified(full: &Response) -> Response {
    let mut response = StatusCode::NOT_MODIFIED.into_response();
    for name in [header::ETAG, header::CACHE_CONTROL, header::VARY] {
        if let Some(value) = full.headers().get(&name) {
            response.headers_mut().insert(name, value.clone());
        }
    }
    response
}

/// A resource that carries a version (`ETag: "<version>"`, `If-Match` on its changes).
pub trait Versioned {
    fn version(&self) -> i64;
}

/// A versioned resource as answered: its JSON and its `ETag`.
#[derive(Debug)]
pub struct Tagged<T>(pub T);

impl<T: Serialize + Versioned> IntoResponse for Tagged<T> {
    fn into_response(self) -> Response {
        let etag = format!("\"{}\"", self.0.version());
        let mut response = Json(self.0).into_response();
        if let Ok(value) = HeaderValue::from_str(&etag) {
            response.headers_mut().insert(header::ETAG, value);
        }
        response
    }
}

/// A resource just created, answered with 201 and its `Location`.
#[derive(Debug)]
pub struct Created<T> {
    location: String,
    body: T,
}

impl<T> Created<T> {
    /// `body`, created at `location` (a path of this API).
    pub fn at(location: impl Into<String>, body: T) -> Self {
        Created { location: location.into(), body }
    }
}

impl<T: Serialize> IntoResponse for Created<T> {
    fn into_response(self) -> Response {
        let mut response = (StatusCode::CREATED, Json(self.body)).into_response();
        if let Ok(value) = HeaderValue::from_str(&self.location) {
            response.headers_mut().insert(header::LOCATION, value);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_callers_id_is_kept_only_when_short_and_visible() {
        let id = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(REQUEST_ID, HeaderValue::from_str(v).unwrap());
            callers_id(&h).map(|a| a.to_string())
        };
        assert_eq!(id("abc-123_X"), Some("abc-123_X".into()));
        assert_eq!(id(&"a".repeat(128)), Some("a".repeat(128)));
        assert_eq!(id(&"a".repeat(129)), None);
        assert_eq!(id("has space"), None);
        assert_eq!(id(""), None);
    }

    #[test]
    fn if_none_match_names_a_tag_in_its_list_or_everything() {
        let m = |list: &str, tag: &str| {
            matches_any(&HeaderValue::from_str(list).unwrap(), &HeaderValue::from_str(tag).unwrap())
        };
        assert!(m("\"3\"", "\"3\""));
        assert!(m("\"1\", W/\"3\"", "\"3\""));
        assert!(m("*", "\"7\""));
        assert!(!m("\"2\"", "\"3\""));
        assert!(!m("\"33\"", "\"3\""));
    }
}
