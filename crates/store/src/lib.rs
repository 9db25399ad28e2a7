//! Steward's persistence: the storage traits the server talks to, and their SQLite
//! implementation. It stores and queries; the rules stay in `steward-core`.
//!
//! Every change happens inside a [`Tx`] from [`Store::write`], and the audit events of the change
//! are appended in that same transaction, so that a change and its event commit or fail together.

pub mod copy;
mod model;
mod postgres;
pub mod query;
mod rows;
mod security_rows;
mod sql;
mod sqlite;
mod traits;

pub use model::*;
pub use postgres::PgStore;
pub use query::{Cond, GroupField, Lit, Op, ScimQuery, UserField};
pub use sql::users::identity_holders_one_by_one;
pub use sqlite::SqliteStore;
pub use traits::*;

/// A time as the store keeps it (to the microsecond), so that an answer given before a read
/// back says the same as the read.
pub fn as_kept(t: time::OffsetDateTime) -> time::OffsetDateTime {
    t.replace_nanosecond(t.nanosecond() / 1000 * 1000).unwrap_or(t)
}

/// Why a storage call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness or condition the database enforces refused the write.
    #[error("conflict on {0:?}")]
    Conflict(Constraint),
    /// A value read back from storage did not parse; the database holds something unexpected.
    #[error("corrupt value in storage: {0}")]
    Corrupt(String),
    /// The database failed or could not be reached.
    #[error("database error: {0}")]
    Backend(String),
}

/// The named constraints the server turns into API errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Constraint {
    /// Another user has this email.
    EmailTaken,
    /// Another org has this external id.
    ExternalIdTaken,
    /// Another team of the org has this name.
    TeamNameTaken,
    /// Another user has this `userName` (or it is another user's email).
    UserNameTaken,
    /// The org already has an owner.
    OwnerTaken,
    /// The user already has a current membership.
    MembershipExists,
    /// The idempotency key is already recorded.
    IdempotencyKey,
    /// An instance role with this name exists.
    RoleExists,
    /// The row was changed since it was read (optimistic concurrency).
    VersionMismatch,
    /// Some other constraint, by the database's own words.
    Other(String),
}

/// Shorthand for results of storage calls.
pub type StoreResult<T> = Result<T, StoreError>;

/// The instance secrets a store has seen committed. A secret never changes once written, so the
/// store's later transactions take it from here instead of reading it again.
#[derive(Clone, Default)]
pub(crate) struct KnownSecrets(std::sync::Arc<std::sync::RwLock<std::collections::HashMap<String, String>>>);

impl KnownSecrets {
    pub(crate) fn get(&self, name: &str) -> Option<String> {
        self.0.read().ok()?.get(name).cloned()
    }

    /// Keeps `value`, which the caller read as committed (not written by its own transaction).
    pub(crate) fn learn(&self, name: &str, value: &str) {
        if let Ok(mut known) = self.0.write() {
            known.insert(name.to_owned(), value.to_owned());
        }
    }
}
