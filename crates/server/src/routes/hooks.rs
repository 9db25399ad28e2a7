//! `/api/v1/webhooks`: endpoints, their delivery log, and redelivery.

use axum::Json;
use axum::extract::Path;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use steward_core::{AuditDraft, Permission, TargetType};
use steward_store::{DeliveryRow, WebhookRow};
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::declared::{BadRequest, Forbidden, NotFound};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Acting, ApiJson, ApiQuery, Page, paginate};
use crate::state::{AppState, instance_settings};
use crate::webhooks::{check_url, new_secret};
use steward_ops::EventType;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_webhooks, create_webhook))
        .routes(routes!(delete_webhook))
        .routes(routes!(list_deliveries))
        .routes(routes!(redeliver))
}

/// A webhook endpoint (the secret is shown only at creation).
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookView {
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl From<&WebhookRow> for WebhookView {
    fn from(h: &WebhookRow) -> Self {
        WebhookView { id: h.id.to_string(), url: h.url.clone(), events: h.events.clone(), created_at: h.created_at }
    }
}

/// A page of endpoints.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookList {
    pub items: Vec<WebhookView>,
    pub next_cursor: Option<String>,
}

/// List webhook endpoints
///
/// Lists the webhook endpoints. Needs `webhooks.manage`.
#[utoipa::path(get, path = "/api/v1/webhooks", tag = "webhooks", responses((status = 200, body = WebhookList),
    Forbidden))]
async fn list_webhooks(Acting { state, principal }: Acting) -> ApiResult<Json<WebhookList>> {
    principal.require(Permission::WebhooksManage)?;
    let mut tx = state.store.read().await?;
    let hooks = tx.webhooks().await?;
    tx.rollback().await?;
    Ok(Json(WebhookList { items: hooks.iter().map(WebhookView::from).collect(), next_cursor: None }))
}

/// A new endpoint.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    pub url: String,
    /// Event types, or `*` for all of them.
    pub events: Vec<String>,
}

/// An endpoint just created, with its signing secret (shown once).
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedWebhook {
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
    /// `whsec_…`: verify `webhook-signature` with it (Standard Webhooks).
    pub secret: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// Add a webhook endpoint
///
/// Adds a webhook endpoint. Deliveries are signed per Standard Webhooks with the returned secret.
/// Needs `webhooks.manage`. The secret is in this answer only.
#[utoipa::path(post, path = "/api/v1/webhooks", tag = "webhooks", request_body = NewWebhook,
    responses((status = 201, body = CreatedWebhook), BadRequest, Forbidden))]
async fn create_webhook(
    Acting { state, principal }: Acting,
    ApiJson(req): ApiJson<NewWebhook>,
) -> ApiResult<crate::answer::Created<CreatedWebhook>> {
    principal.require(Permission::WebhooksManage)?;
    if req.events.is_empty() {
        return Err(ApiError::invalid("events", "name at least one event type, or *"));
    }
    for e in &req.events {
        if e != "*" && EventType::parse(e).is_none() {
            return Err(ApiError::invalid(
                "events",
                format!("{e} is not an event type; use {}", EventType::ALL.map(EventType::as_str).join(", ")),
            ));
        }
    }
    let now = state.clock.now();
    let mut tx = state.store.write().await?;
    let (settings, _) = instance_settings(tx.as_mut()).await?;
    let url = check_url(&req.url, settings.policies.webhook_deny_private).await?;
    let hook = WebhookRow {
        id: uuid::Uuid::now_v7(),
        url: url.to_string(),
        events: req.events.clone(),
        secret: new_secret(),
        created_at: now,
        created_by: Some(principal.user.id),
        disabled_at: None,
    };
    tx.insert_webhook(&hook).await?;
    let event = AuditDraft::new("webhook.created", principal.actor(), TargetType::Instance, hook.id)
        .detail(json!({ "url": hook.url, "events": hook.events }));
    state.commit(tx, vec![event], now).await?;
    let created = CreatedWebhook {
        id: hook.id.to_string(),
        url: hook.url,
        events: hook.events,
        secret: hook.secret,
        created_at: now,
    };
    Ok(crate::answer::Created::at(format!("/api/v1/webhooks/{}", hook.id), created))
}

fn hook_id(id: &str) -> ApiResult<uuid::Uuid> {
    id.parse().map_err(|_| ApiError::not_found("webhook"))
}

/// Remove a webhook endpoint
///
/// Removes an endpoint; its deliveries stop, its log stays. Needs `webhooks.manage`.
#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", tag = "webhooks", responses((status = 204), Forbidden,
    NotFound))]
async fn delete_webhook(Acting { state, principal }: Acting, Path(id): Path<String>) -> ApiResult<StatusCode> {
    principal.require(Permission::WebhooksManage)?;
    let id = hook_id(&id)?;
    let now = state.clock.now();
    let mut tx = state.store.write().await?;
    if !tx.webhooks().await?.iter().any(|h| h.id == id) {
        return Err(ApiError::not_found("webhook"));
    }
    tx.disable_webhook(id, now).await?;
    let event = AuditDraft::new("webhook.deleted", principal.actor(), TargetType::Instance, id);
    state.commit(tx, vec![event], now).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// One delivery of one event.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    pub id: String,
    pub event_type: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    pub attempts: i64,
    /// The HTTP status of the last attempt.
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub next_attempt_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub delivered_at: Option<OffsetDateTime>,
    /// The body as sent.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
}

impl From<&DeliveryRow> for DeliveryView {
    fn from(d: &DeliveryRow) -> Self {
        let status = if d.delivered_at.is_some() {
            "delivered"
        } else if d.failed_at.is_some() {
            "failed"
        } else {
            "pending"
        };
        DeliveryView {
            id: d.id.to_string(),
            event_type: d.event_type.clone(),
            status: status.into(),
            attempts: d.attempts,
            last_status: d.last_status,
            last_error: d.last_error.clone(),
            created_at: d.created_at,
            next_attempt_at: d.next_attempt_at,
            delivered_at: d.delivered_at,
            payload: serde_json::from_str(&d.payload).unwrap_or(serde_json::Value::Null),
        }
    }
}

/// A page of deliveries.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryList {
    pub items: Vec<DeliveryView>,
    pub next_cursor: Option<String>,
}

/// List an endpoint's deliveries
///
/// An endpoint's delivery log, newest first. Needs `webhooks.manage`. Pages with `limit` (at most
/// 500) and `cursor`: the answer's `next_cursor` reads the next page, `null` at the end.
#[utoipa::path(get, path = "/api/v1/webhooks/{id}/deliveries", operation_id = "list_webhook_deliveries", tag = "webhooks", params(("id" = String, Path), Page),
    responses((status = 200, body = DeliveryList), Forbidden, NotFound))]
async fn list_deliveries(
    Acting { state, principal }: Acting,
    Path(id): Path<String>,
    ApiQuery(page): ApiQuery<Page>,
) -> ApiResult<Json<DeliveryList>> {
    principal.require(Permission::WebhooksManage)?;
    let id = hook_id(&id)?;
    let limit = page.limit()?;
    let mut tx = state.store.read().await?;
    let rows = tx.deliveries_of(id, page.cursor()?, limit + 1).await?;
    tx.rollback().await?;
    let (rows, next_cursor) = paginate(rows, limit, |d| d.id);
    Ok(Json(DeliveryList { items: rows.iter().map(DeliveryView::from).collect(), next_cursor }))
}

/// Redeliver a webhook event
///
/// Sends a delivery again, now. Needs `webhooks.manage`.
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver", operation_id = "redeliver_webhook_delivery", tag = "webhooks",
    params(("id" = String, Path), ("delivery_id" = String, Path)), responses((status = 200, body = DeliveryView),
    Forbidden, NotFound))]
async fn redeliver(
    Acting { state, principal }: Acting,
    Path((id, delivery_id)): Path<(String, String)>,
) -> ApiResult<Json<DeliveryView>> {
    principal.require(Permission::WebhooksManage)?;
    let id = hook_id(&id)?;
    let delivery_id: uuid::Uuid = delivery_id.parse().map_err(|_| ApiError::not_found("delivery"))?;
    let now = state.clock.now();
    let mut tx = state.store.write().await?;
    let found = tx
        .delivery(delivery_id)
        .await?
        .filter(|d| d.webhook_id == id)
        .ok_or_else(|| ApiError::not_found("delivery"))?;
    tx.redeliver(found.id, now).await?;
    let event = AuditDraft::new("webhook.redelivered", principal.actor(), TargetType::Instance, id)
        .detail(json!({ "delivery_id": found.id, "event_type": found.event_type }));
    let again = tx.delivery(found.id).await?.ok_or_else(|| ApiError::not_found("delivery"))?;
    state.commit(tx, vec![event], now).await?;
    Ok(Json(DeliveryView::from(&again)))
}
