//! The errors a domain rule can raise; the server maps each to its API code.

/// A rule of the domain refused the change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// Input that does not parse; `field` names where it came from.
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
    /// The change would leave an org without its one owner.
    #[error("{0}")]
    OwnerRequired(String),
    /// The entity is not in a state that allows the change.
    #[error("{0}")]
    InvalidTransition(String),
    /// The actor may not do this to this target, whatever its state.
    #[error("{0}")]
    Forbidden(String),
    /// The user is deactivated (or anonymized) and cannot be given anything new.
    #[error("user {0} is deactivated")]
    UserDeactivated(crate::UserId),
}

impl DomainError {
    /// Shorthand for an [`DomainError::Invalid`] error.
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid { field, message: message.into() }
    }
}
