//! What an operation answers when it refuses or fails; each surface renders it in its own format.

use steward_core::{DomainError, UserId};
use steward_store::StoreError;

/// Why an operation did not happen. Nothing it would have written is written.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    /// A rule of core refused it (invalid input, a transition, a forbidden target).
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// The database refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Nothing there, or nothing the actor may see.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The change conflicts with what is stored; `code` is the documented conflict code and
    /// `user_id` names the user it is about, where there is one.
    #[error("{detail}")]
    Conflict { code: &'static str, detail: String, user_id: Option<UserId> },
    /// A stored document could not be read or written; never shown to a caller.
    #[error("{0}")]
    Internal(String),
}

impl OpError {
    /// A conflict with its documented code.
    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        OpError::Conflict { code, detail: detail.into(), user_id: None }
    }

    /// An internal failure; its cause goes to the log, never to a caller.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        OpError::Internal(cause.to_string())
    }

    /// A refusal on the rights of the actor over the target.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        OpError::Domain(DomainError::Forbidden(detail.into()))
    }
}

/// Shorthand for operation results.
pub type OpResult<T> = Result<T, OpError>;
