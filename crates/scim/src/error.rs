//! SCIM error messages (RFC 7644 §3.12): an HTTP status, a `scimType` for 400s and 409s, and a
//! detail safe to show.

use serde_json::{Value, json};

/// The `scimType` of an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScimType {
    InvalidFilter,
    TooMany,
    Uniqueness,
    Mutability,
    InvalidSyntax,
    InvalidPath,
    NoTarget,
    InvalidValue,
    InvalidVers,
    Sensitive,
}

impl ScimType {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ScimType::InvalidFilter => "invalidFilter",
            ScimType::TooMany => "tooMany",
            ScimType::Uniqueness => "uniqueness",
            ScimType::Mutability => "mutability",
            ScimType::InvalidSyntax => "invalidSyntax",
            ScimType::InvalidPath => "invalidPath",
            ScimType::NoTarget => "noTarget",
            ScimType::InvalidValue => "invalidValue",
            ScimType::InvalidVers => "invalidVers",
            ScimType::Sensitive => "sensitive",
        }
    }

    fn status(self) -> u16 {
        match self {
            ScimType::Uniqueness => 409,
            _ => 400,
        }
    }
}

/// An error answered to a SCIM client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {detail}")]
pub struct ScimError {
    pub status: u16,
    pub scim_type: Option<ScimType>,
    pub detail: String,
    /// For a 429: how many seconds to wait, sent as `Retry-After`.
    pub retry_after: Option<u64>,
}

impl ScimError {
    /// An error of a `scimType`, with its usual status.
    pub fn new(scim_type: ScimType, detail: impl Into<String>) -> Self {
        ScimError { status: scim_type.status(), scim_type: Some(scim_type), detail: detail.into(), retry_after: None }
    }
    /// An error with a status and no `scimType` (401, 403, 404, 412, 500…).
    pub fn status(status: u16, detail: impl Into<String>) -> Self {
        ScimError { status, scim_type: None, detail: detail.into(), retry_after: None }
    }
    pub fn invalid_value(detail: impl Into<String>) -> Self {
        Self::new(ScimType::InvalidValue, detail)
    }
    pub fn invalid_syntax(detail: impl Into<String>) -> Self {
        Self::new(ScimType::InvalidSyntax, detail)
    }
    pub fn invalid_path(detail: impl Into<String>) -> Self {
        Self::new(ScimType::InvalidPath, detail)
    }
    pub fn invalid_filter(detail: impl Into<String>) -> Self {
        Self::new(ScimType::InvalidFilter, detail)
    }
    pub fn not_found(what: &str) -> Self {
        Self::status(404, format!("no such {what}"))
    }
    /// 429: a budget is spent; try again after `retry_after` seconds.
    pub fn too_many_requests(detail: impl Into<String>, retry_after: u64) -> Self {
        ScimError { retry_after: Some(retry_after.max(1)), ..Self::status(429, detail) }
    }
    /// A failure of Steward's own; the detail never says more.
    pub fn internal() -> Self {
        Self::status(500, "internal error")
    }

    /// The error message body.
    pub fn body(&self) -> Value {
        let mut body = json!({
            "schemas": [crate::schema::ERROR],
            "status": self.status.to_string(),
            "detail": self.detail,
        });
        if let Some(t) = self.scim_type {
            body["scimType"] = json!(t.as_str());
        }
        body
    }
}
