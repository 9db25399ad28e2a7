//! The API's error: an RFC 9457 problem document with a stable `code`. 5xx bodies carry no
//! internals; the cause goes to the log.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use steward_core::{DomainError, UserId};
use steward_ops::OpError;
use steward_store::{Constraint, StoreError};
use utoipa::ToSchema;

/// One field that did not pass.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FieldError {
    /// Where in the body (a dotted path), or the query parameter.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// The problem document every error answers with.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"type": "https://steward.dev/problems/quota-exhausted", "title": "Payment Required", "status": 402, "detail": "the period's operations do not cover 60 more", "code": "quota_exhausted", "request_id": "01936f0ea3b47d0e8f1a2b3c4d5e6f70"}))]
pub struct Problem {
    /// A URI naming the problem type.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the problem type.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong this time.
    pub detail: String,
    /// The stable machine code.
    pub code: String,
    /// Field-level errors, for `validation_failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
    /// The existing user, for `user_deactivated`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// The request's id, as in its `X-Request-Id` header: what to quote when asking about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// An error a handler returns.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    detail: String,
    errors: Option<Vec<FieldError>>,
    user_id: Option<UserId>,
    retry_after: Option<u64>,
}

/// Shorthand for handler results.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        ApiError { status, code, detail: detail.into(), errors: None, user_id: None, retry_after: None }
    }

    /// 401: no valid credentials.
    pub fn unauthenticated(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", detail)
    }
    /// 401 `totp_required`: the password was right, the two-factor code missing or wrong.
    pub fn totp_required() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "totp_required",
            "a two-factor code is required: send totp_code with a current code or an unused recovery code",
        )
    }
    /// 403 `totp_enrollment_required`: instance roles need two-factor under the instance policy.
    pub fn totp_enrollment_required() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "totp_enrollment_required",
            "the instance policy require_totp_for_admins holds back instance roles until you enrol in \
             two-factor: POST /api/v1/me/totp, then POST /api/v1/me/totp/confirm",
        )
    }
    /// 403: authenticated but not allowed.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }
    /// 404: nothing there, or nothing the caller may see.
    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", format!("{what} not found"))
    }
    /// 400 with one field error.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        let (field, message) = (field.into(), message.into());
        let mut e = Self::new(StatusCode::BAD_REQUEST, "validation_failed", format!("{field}: {message}"));
        e.errors = Some(vec![FieldError { field, message }]);
        e
    }
    /// 409 with one of the documented conflict codes.
    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, detail)
    }
    /// 409 `user_deactivated`, naming the user to reactivate.
    pub fn user_deactivated(user_id: UserId) -> Self {
        let mut e = Self::conflict(
            "user_deactivated",
            format!("this email belongs to deactivated user {user_id}; reactivate that user instead"),
        );
        e.user_id = Some(user_id);
        e
    }
    /// 412: `If-Match` did not match.
    pub fn precondition_failed(current: i64) -> Self {
        Self::new(
            StatusCode::PRECONDITION_FAILED,
            "precondition_failed",
            format!("the resource is at version {current}"),
        )
    }
    /// 429 with `Retry-After`.
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        let mut e = Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "too many attempts; try again later");
        e.retry_after = Some(retry_after_secs.max(1));
        e
    }
    /// The seconds a 429 asks to wait.
    pub fn retry_after(&self) -> Option<u64> {
        self.retry_after
    }
    /// 413: the body is over the limit.
    pub fn payload_too_large() -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "the request body is larger than the limit")
    }
    /// 500; `cause` is logged, never sent.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "an internal error occurred; it has been logged")
    }
    /// Any status and code, for the rarer cases.
    pub fn other(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(status, code, detail)
    }

    /// The machine code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The problem document.
    pub fn problem(&self) -> Problem {
        Problem {
            kind: format!("https://steward.dev/problems/{}", self.code.replace('_', "-")),
            title: self.status.canonical_reason().unwrap_or("Error").to_owned(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            code: self.code.to_owned(),
            errors: self.errors.clone(),
            user_id: self.user_id.map(|u| u.to_string()),
            request_id: crate::answer::request_id(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.problem()).unwrap_or_default();
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(Constraint::EmailTaken | Constraint::UserNameTaken) => {
                ApiError::conflict("email_taken", "a user with this email already exists")
            }
            StoreError::Conflict(Constraint::ExternalIdTaken) => {
                ApiError::conflict("external_id_taken", "another organization has this external_id")
            }
            StoreError::Conflict(Constraint::TeamNameTaken) => {
                ApiError::conflict("name_taken", "the organization already has a team with this name")
            }
            StoreError::Conflict(Constraint::OwnerTaken) => {
                ApiError::conflict("owner_required", "the organization already has an owner")
            }
            StoreError::Conflict(Constraint::RoleExists) => {
                ApiError::conflict("role_exists", "an instance role with this name exists")
            }
            StoreError::Conflict(Constraint::VersionMismatch) => {
                ApiError::conflict("conflict", "the resource changed while the request ran; try again")
            }
            other => ApiError::internal(other),
        }
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::Invalid { field, message } => ApiError::invalid(field, message),
            DomainError::OwnerRequired(d) => ApiError::conflict("owner_required", d),
            DomainError::InvalidTransition(d) => ApiError::conflict("invalid_transition", d),
            DomainError::Forbidden(d) => ApiError::forbidden(d),
            DomainError::UserDeactivated(id) => {
                let mut e =
                    ApiError::conflict("user_deactivated", format!("user {id} is deactivated; reactivate them first"));
                e.user_id = Some(id);
                e
            }
        }
    }
}

impl From<OpError> for ApiError {
    fn from(e: OpError) -> Self {
        match e {
            OpError::Domain(e) => e.into(),
            OpError::Store(e) => e.into(),
            OpError::NotFound(what) => ApiError::not_found(what),
            OpError::Conflict { code, detail, user_id } => {
                let mut e = ApiError::conflict(code, detail);
                e.user_id = user_id;
                e
            }
            OpError::Internal(cause) => ApiError::internal(cause),
        }
    }
}

/// The refusals an operation declares in the OpenAPI document, each one status answered with a
/// [`Problem`] as `application/problem+json`: `responses((status = 200, body = X), NotFound)`.
pub mod declared {
    use std::collections::BTreeMap;

    use utoipa::IntoResponses;
    use utoipa::openapi::schema::{Object, Ref, Type};
    use utoipa::openapi::{ContentBuilder, HeaderBuilder, RefOr, Response, ResponseBuilder};

    /// A refusal answered with a [`Problem`]; `retry_after` declares the `Retry-After` header.
    pub fn problem(description: &str, retry_after: bool) -> RefOr<Response> {
        let content = ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build();
        let mut response = ResponseBuilder::new().description(description).content("application/problem+json", content);
        if retry_after {
            let seconds = HeaderBuilder::new()
                .schema(Some(Object::with_type(Type::Integer)))
                .description(Some("Seconds to wait before trying again."))
                .build();
            response = response.header("Retry-After", seconds);
        }
        RefOr::T(response.build())
    }

    macro_rules! refusal {
        ($(#[$doc:meta])* $name:ident, $status:literal, $description:literal $(, $retry:literal)?) => {
            $(#[$doc])*
            pub struct $name;

            impl IntoResponses for $name {
                fn responses() -> BTreeMap<String, RefOr<Response>> {
                    BTreeMap::from([($status.to_owned(), problem($description, false $(|| $retry)?))])
                }
            }
        };
    }

    refusal!(
        /// 400: the request is malformed or does not pass validation.
        BadRequest, "400", "The request is malformed or does not pass validation (`validation_failed` and others)."
    );
    refusal!(
        /// 401: no valid credentials.
        Unauthorized, "401", "No valid credentials were presented (`unauthenticated`)."
    );
    refusal!(
        /// 402: the org's budget does not cover the request.
        PaymentRequired, "402", "The org's remaining budget does not cover the request (`quota_exhausted`)."
    );
    refusal!(
        /// 403: the caller may not do this.
        Forbidden, "403", "The caller may not do this (`forbidden` and others)."
    );
    refusal!(
        /// 404: no such resource, or not one the caller may see.
        NotFound, "404", "No such resource, or not one the caller may see (`not_found`)."
    );
    refusal!(
        /// 409: the resource's state does not allow the change.
        Conflict, "409", "The resource's state does not allow the change."
    );
    refusal!(
        /// 412: `If-Match` names a version that is no longer current.
        PreconditionFailed, "412", "`If-Match` names a version that is no longer current (`precondition_failed`)."
    );
    refusal!(
        /// 429: too many requests.
        TooManyRequests, "429", "Too many requests (`rate_limited`); `Retry-After` says when to try again.", true
    );
}
