//! Steward's domain: parsed value types, lifecycles as pure transitions, permissions, license data
//! and audit events. It owns the rules; it does no IO, reads no clock and knows no web or database.

pub mod audit;
pub mod email;
pub mod error;
pub mod governance;
pub mod ids;
pub mod license;
pub mod lifecycle;
pub mod lockout;
pub mod names;
pub mod org;
pub mod roles;
pub mod sso;
pub mod totp;
pub mod user;

pub use audit::{Actor, AuditDraft, AuditRecord, ChainCheck, TargetType};
pub use email::Email;
pub use error::DomainError;
pub use ids::{OrgId, SessionId, TeamId, TokenId, UserId};
pub use license::License;
pub use names::{OrgName, PersonName, TeamName};
pub use org::OrgState;
pub use roles::{InstanceRole, OrgAction, OrgRole, Permission, RoleBook, TeamRole, TokenScope};
pub use user::{UserKind, UserStatus};
