//! Start-up: the router with its layers, serving the OpenAPI document (`crate::document`), and
//! serving on a listener that the caller binds (so that tests bind port 0).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use sha2::{Digest, Sha256};
use steward_store::{IdempotentResponse, Store};
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;

use crate::auth::secret_hash;
pub use crate::document::openapi_json;
use crate::error::ApiError;
use crate::extract::{SESSION_COOKIE, cookie};
use crate::routes;
use crate::state::AppState;

/// The process-wide Prometheus recorder (installed once, shared by every app in the process).
pub fn metrics_handle() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets(&[0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0])
                .ok()?
                .install_recorder()
                .ok()
        })
        .clone()
}

/// The whole HTTP surface with its layers.
pub fn router(state: AppState) -> Router {
    let (api, doc) = crate::document::api_doc();
    let doc_json = Arc::new(doc.to_pretty_json().expect("the OpenAPI document serializes") + "\n");
    let timeout = Duration::from_secs(state.config.request_timeout_secs);
    let body_limit = state.config.max_body_bytes;
    let in_flight = IdempotencyInFlight::default();
    let tls = state.config.tls() || state.public_url.starts_with("https://");
    Router::new()
        .merge(api)
        .route(
            "/api/v1/openapi.json",
            get(move || {
                let doc = doc_json.clone();
                async move { ([(header::CONTENT_TYPE, "application/json")], (*doc).clone()) }
            }),
        )
        .route("/api/v1/{*rest}", axum::routing::any(|| async { ApiError::not_found("resource") }))
        .nest("/scim/v2", crate::scim::router())
        .merge(routes::health::router())
        .merge(crate::pages::router(state.clone(), routes::sso_sign_in::browser_router()))
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state((state.clone(), in_flight), idempotency))
        .layer(axum::extract::DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn(track))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, timeout))
        .layer(CatchPanicLayer::custom(|_| ApiError::internal("a handler panicked").into_response()))
        .layer(middleware::from_fn_with_state(tls, security_headers))
        .layer(middleware::from_fn(crate::answer::around))
        .with_state(state)
}

/// A method a path does not take: a problem document under `/api`, as every other refusal
/// there; elsewhere the bare status, as before.
async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    if uri.path().starts_with("/api/") {
        let detail = format!("{} does not take {method}", uri.path());
        return ApiError::other(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", detail).into_response();
    }
    StatusCode::METHOD_NOT_ALLOWED.into_response()
}

/// Counts requests and their latency per route, and logs each one.
async fn track(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route =
        request.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    let elapsed = started.elapsed().as_secs_f64();
    let labels = [("method", method.to_string()), ("route", route.clone()), ("status", status)];
    metrics::counter!("steward_http_requests_total", &labels).increment(1);
    metrics::histogram!("steward_http_request_duration_seconds", &labels[..2]).record(elapsed);
    tracing::info!(%method, %route, status = response.status().as_u16(), elapsed_ms = elapsed * 1000.0, "request");
    response
}

/// Keys whose first request is still running.
#[derive(Clone, Default)]
struct IdempotencyInFlight(Arc<Mutex<HashSet<(String, String)>>>);

/// The digest that tells a repeated request from another one under the same key: its method,
/// path and body.
fn request_digest(parts: &axum::http::request::Parts, body: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(parts.method.as_str().as_bytes());
    hasher.update(parts.uri.path().as_bytes());
    hasher.update(body);
    hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Replies can carry secrets (session and API tokens, two-factor secrets, recovery codes): they
/// are stored sealed under a key from what only a caller allowed to replay presents again —
/// their credential, the key and the very request body (which, for a login, holds the password).
fn reply_seal(credential: &str, key: &str, body: &[u8]) -> crate::twofactor::SealingKey {
    let mut material = Vec::with_capacity(credential.len() + key.len() + body.len() + 2);
    for part in [credential.as_bytes(), key.as_bytes(), body] {
        material.extend_from_slice(part);
        material.push(0);
    }
    crate::twofactor::SealingKey::for_purpose("idempotent-reply", &material)
}

/// A `POST` with `Idempotency-Key`: a repeat with the same key and body returns the first
/// response and changes nothing; the same key with another body is refused.
async fn idempotency(
    State((state, in_flight)): State<(AppState, IdempotencyInFlight)>,
    request: Request,
    next: Next,
) -> Response {
    let Some(key) = request.headers().get("idempotency-key").cloned() else {
        return next.run(request).await;
    };
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let key = match key.to_str() {
        Ok(k) if (1..=255).contains(&k.len()) => k.to_owned(),
        _ => return ApiError::invalid("Idempotency-Key", "must be 1 to 255 visible characters").into_response(),
    };
    let credential = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| cookie(request.headers(), SESSION_COOKIE))
        .unwrap_or_default();
    let scope = secret_hash(&format!("steward-idempotency:{credential}"));
    let (parts, body) = request.into_parts();
    let Ok(bytes) = to_bytes(body, state.config.max_body_bytes).await else {
        return ApiError::payload_too_large().into_response();
    };
    // Whatever is remembered of a request is a fast function of its body, which would let a copy
    // of the database test guesses at a password it carries without argon2's cost. Such requests
    // (logins, password resets, accepted invitations, users created with a password) are not
    // remembered: a repeat runs again.
    if carries_password(&bytes) {
        return next.run(Request::from_parts(parts, Body::from(bytes))).await;
    }
    let request_hash = request_digest(&parts, &bytes);
    let seal = reply_seal(&credential, &key, &bytes);
    let stored = async {
        let mut tx = state.store.read().await?;
        let found = tx.idempotent_response(&scope, &key).await?;
        tx.rollback().await?;
        Ok::<_, steward_store::StoreError>(found)
    }
    .await;
    match stored {
        Ok(Some(found)) if found.request_hash == request_hash => return replay(found, &seal, &scope),
        Ok(Some(_)) => {
            return ApiError::conflict("idempotency_key_reused", "this Idempotency-Key was used with another request")
                .into_response();
        }
        Ok(None) => {}
        Err(e) => return ApiError::from(e).into_response(),
    }
    let slot = (scope.clone(), key.clone());
    if !in_flight.0.lock().unwrap_or_else(|p| p.into_inner()).insert(slot.clone()) {
        return ApiError::conflict("idempotency_key_in_use", "a request with this Idempotency-Key is still running")
            .into_response();
    }
    let response = next.run(Request::from_parts(parts, Body::from(bytes))).await;
    let response = remember(state.store.as_ref(), &scope, &key, request_hash, &seal, response).await;
    in_flight.0.lock().unwrap_or_else(|p| p.into_inner()).remove(&slot);
    response
}

/// Whether a JSON body has a `password` field at its top level.
fn carries_password(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(body)
        .is_ok_and(|map| map.keys().any(|k| k.eq_ignore_ascii_case("password")))
}

async fn remember(
    store: &dyn Store,
    scope: &str,
    key: &str,
    request_hash: String,
    seal: &crate::twofactor::SealingKey,
    response: Response,
) -> Response {
    if response.status().is_server_error() {
        return response;
    }
    let (parts, body) = response.into_parts();
    let Ok(bytes) = to_bytes(body, 8 * 1024 * 1024).await else {
        return ApiError::internal("response too large to remember").into_response();
    };
    let saved = IdempotentResponse {
        request_hash,
        status: parts.status.as_u16(),
        body: seal.seal_bound(scope.as_bytes(), &bytes),
    };
    let result = async {
        let mut tx = store.write().await?;
        tx.save_idempotent_response(scope, key, &saved, OffsetDateTime::now_utc()).await?;
        tx.commit().await
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(error = %e, "could not remember an idempotent response");
    }
    Response::from_parts(parts, Body::from(bytes))
}

fn replay(found: IdempotentResponse, seal: &crate::twofactor::SealingKey, scope: &str) -> Response {
    let status = StatusCode::from_u16(found.status).unwrap_or(StatusCode::OK);
    let body = match seal.open_bound(scope.as_bytes(), &found.body) {
        Some(plain) => String::from_utf8_lossy(&plain).into_owned(),
        // Replies remembered before they were sealed.
        None if !found.body.starts_with("v1.") => found.body,
        None => return ApiError::internal("a remembered reply does not open").into_response(),
    };
    let content_type = if status.is_success() { "application/json" } else { "application/problem+json" };
    let mut response = (status, body).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    response
}

/// Serves `router` over TLS on `listener` until `shutdown` resolves, then drains.
pub async fn serve_tls(
    listener: crate::tls::TlsListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router.into_make_service_with_connect_info::<crate::tls::PeerAddr>())
        .with_graceful_shutdown(shutdown)
        .await
}

/// The policy for HTML pages: only Steward's own scripts, styles and forms, images also from
/// https (branding logos), never inside a frame.
pub const PAGE_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: https:; \
    object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";
/// The policy for everything else (JSON, SVG, text): nothing may load or frame it.
pub const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// Security headers on every response; HSTS only when Steward is reached over TLS (it serves
/// TLS itself, or its public URL is https behind a proxy that does).
async fn security_headers(State(tls): State<bool>, request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.trim_start().to_ascii_lowercase().starts_with("text/html"));
    let headers = response.headers_mut();
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        let csp = if html { PAGE_CSP } else { API_CSP };
        headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(csp));
    }
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    // Setup, invitation and reset links carry secrets in their path: never send them on.
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if tls {
        headers
            .insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000; includeSubDomains"));
    }
    response
}

/// Serves `router` on `listener` until `shutdown` resolves, then drains in-flight requests.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down; draining requests");
}
