//! The instance settings: name, branding, default license, policies.

use axum::http::HeaderMap;
use serde::Serialize;
use serde_json::json;
use steward_core::{AuditDraft, Permission, TargetType};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::declared::{BadRequest, Forbidden, PreconditionFailed};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Acting, ApiJson, Principal, check_if_match};
use crate::settings::InstanceSettings;
use crate::state::{AppState, instance_settings};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_instance, patch_instance))
}

/// The settings with their version.
#[derive(Debug, Serialize, ToSchema)]
pub struct InstanceView {
    #[serde(flatten)]
    pub settings: InstanceSettings,
    pub version: i64,
}

impl crate::answer::Versioned for InstanceView {
    fn version(&self) -> i64 {
        self.version
    }
}

/// Get the instance settings
///
/// Reads the instance settings (any instance admin). Answers `ETag: "<version>"`; a `GET` with
/// `If-None-Match` naming it answers 304 while the resource is unchanged.
#[utoipa::path(get, path = "/api/v1/instance", tag = "instance", responses((status = 200, body = InstanceView),
    Forbidden))]
pub(crate) async fn get_instance(
    Acting { state, principal }: Acting,
) -> ApiResult<crate::answer::Tagged<InstanceView>> {
    Ok(crate::answer::Tagged(read_instance(&state, &principal).await?))
}

/// The instance's settings and their version, for every surface that acts with an instance admin.
pub async fn read_instance(state: &AppState, principal: &Principal) -> ApiResult<InstanceView> {
    if principal.permissions.is_empty() {
        if !principal.withheld.is_empty() {
            return Err(ApiError::totp_enrollment_required());
        }
        return Err(ApiError::forbidden("the instance settings are for instance admins"));
    }
    let mut tx = state.store.read().await?;
    let (settings, version) = instance_settings(tx.as_mut()).await?;
    tx.rollback().await?;
    Ok(InstanceView { settings, version })
}

fn merge(target: &mut serde_json::Value, patch: &serde_json::Value) {
    match (target, patch) {
        (serde_json::Value::Object(t), serde_json::Value::Object(p)) => {
            for (k, v) in p {
                match t.get_mut(k) {
                    Some(existing) if existing.is_object() && v.is_object() => merge(existing, v),
                    _ => {
                        t.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

/// Update the instance settings
///
/// Changes the instance settings; nested objects merge (a JSON merge patch where `null` sets a
/// field to null). Needs `instance.manage`. Answers `ETag: "<version>"`; a `GET` with
/// `If-None-Match` naming it answers 304 while the resource is unchanged.
#[utoipa::path(patch, path = "/api/v1/instance", tag = "instance", request_body = InstanceSettings,
    responses((status = 200, body = InstanceView), BadRequest, Forbidden, PreconditionFailed))]
pub(crate) async fn patch_instance(
    Acting { state, principal }: Acting,
    headers: HeaderMap,
    ApiJson(patch): ApiJson<serde_json::Value>,
) -> ApiResult<crate::answer::Tagged<InstanceView>> {
    Ok(crate::answer::Tagged(change_instance(&state, &principal, &headers, patch).await?))
}

/// Merges `patch` into the instance's settings (`If-Match` in `headers` makes it conditional),
/// for every surface that acts with a principal.
pub async fn change_instance(
    state: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    patch: serde_json::Value,
) -> ApiResult<InstanceView> {
    principal.require(Permission::InstanceManage)?;
    if !patch.is_object() {
        return Err(ApiError::invalid("body", "must be an object"));
    }
    let now = state.clock.now();
    let mut tx = state.store.write().await?;
    let (before, version) = instance_settings(tx.as_mut()).await?;
    check_if_match(headers, version)?;
    let mut doc = serde_json::to_value(&before).map_err(ApiError::internal)?;
    merge(&mut doc, &patch);
    let after: InstanceSettings = crate::extract::parse_json(doc.to_string().as_bytes())?;
    after.validate()?;
    if let Some(id) = after.placeholder_owner_id
        && after.placeholder_owner_id != before.placeholder_owner_id
        && tx.user(id).await?.is_none_or(|u| u.kind != steward_core::UserKind::Placeholder)
    {
        // Naming a person would make them owner of every org handed over later.
        return Err(ApiError::invalid("placeholder_owner_id", "must be a placeholder owner, not a person"));
    }
    if after.policies.dormant_after_days != before.policies.dormant_after_days
        && !principal.has(Permission::UsersLifecycle)
    {
        return Err(ApiError::forbidden("the dormant_after_days policy deactivates users: it needs users.lifecycle"));
    }
    if after == before {
        tx.rollback().await?;
        return Ok(InstanceView { settings: before, version });
    }
    let doc = serde_json::to_value(&after).map_err(ApiError::internal)?;
    tx.put_instance_doc(&doc, version + 1).await?;
    let changed: Vec<&String> = patch.as_object().map(|o| o.keys().collect()).unwrap_or_default();
    let event = AuditDraft::new("instance.updated", principal.actor(), TargetType::Instance, "instance")
        .detail(json!({ "fields": changed, "policies": after.policies, "default_license": after.default_license }));
    state.commit(tx, vec![event], now).await?;
    Ok(InstanceView { settings: after, version: version + 1 })
}
