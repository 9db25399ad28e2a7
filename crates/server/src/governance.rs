//! The governance rule as the surfaces ask it: [`steward_ops::governance`] loads what
//! `steward_core::governance` decides from; this adds the one question asked with a
//! [`Principal`].

pub use steward_ops::governance::{Held, directory_reach, held, outranked, require_instance_reach};
use steward_store::{Tx, UserRow};

use crate::error::ApiResult;
use crate::extract::Principal;

/// Err(403) unless the principal may change the credentials, status, sessions, tokens, profile,
/// schedule or roles of `user`: the principal holds every permission the user's roles grant.
pub async fn require_governs(tx: &mut dyn Tx, principal: &Principal, user: &UserRow) -> ApiResult<()> {
    Ok(require_instance_reach(tx, &principal.permissions, user).await?)
}
