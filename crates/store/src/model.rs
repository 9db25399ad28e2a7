//! The rows the store reads and writes.

use std::collections::BTreeMap;

use steward_core::governance::StatusSetter;
use steward_core::license::License;
use steward_core::{
    InstanceRole, OrgId, OrgRole, Permission, SessionId, TeamId, TeamRole, TokenId, UserId, UserStatus,
};
use time::OffsetDateTime;

use crate::rows::stored;

stored! {
    /// A user as stored.
    #[derive(Debug, Clone, PartialEq)]
    pub struct UserRow {
        pub id: UserId,
        pub email: String,
        pub email_key: String,
        pub name: String,
        pub status: UserStatus,
        pub password_hash: Option<String>,
        pub locale: Option<String>,
        pub timezone: Option<String>,
        pub instance_roles: Vec<InstanceRole>,
        /// A person, the placeholder owner, or a SCIM token's service user.
        pub kind: steward_core::UserKind,
        /// Notification categories switched on or off; a missing category is on.
        pub notifications: BTreeMap<String, bool>,
        pub created_at: OffsetDateTime,
        pub updated_at: OffsetDateTime,
        pub last_login_at: Option<OffsetDateTime>,
        /// When a scheduled deactivation falls due.
        pub deactivate_at: Option<OffsetDateTime>,
        /// Who set the deactivation or suspension in force (see `steward_core::governance`).
        pub status_by: Option<StatusSetter>,
        /// Who scheduled `deactivate_at`; the scheduler acts with their rights.
        pub deactivate_by: Option<UserId>,
        pub version: i64,
    }
}

impl UserRow {
    /// A new person in `status`, created at `now`, with nothing else set: no password, roles,
    /// locale, schedule or notification settings.
    pub fn new(email: &str, email_key: String, name: &str, status: UserStatus, now: OffsetDateTime) -> Self {
        UserRow {
            id: UserId::new(),
            email: email.to_owned(),
            email_key,
            name: name.to_owned(),
            status,
            password_hash: None,
            locale: None,
            timezone: None,
            instance_roles: vec![],
            kind: steward_core::UserKind::Person,
            notifications: BTreeMap::new(),
            created_at: now,
            updated_at: now,
            last_login_at: None,
            deactivate_at: None,
            status_by: None,
            deactivate_by: None,
            version: 1,
        }
    }
}

/// Which users a list returns.
#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    /// Case-insensitive substring of email or name.
    pub q: Option<String>,
    pub status: Option<UserStatus>,
    /// Only current members of this org.
    pub org_id: Option<OrgId>,
    /// Only users whose last sign-in (or creation, when never signed in) is before this.
    pub inactive_since: Option<OffsetDateTime>,
    /// Only users older (in id order) than this one.
    pub before: Option<UserId>,
    pub limit: u32,
}

stored! {
    /// An organization as stored.
    #[derive(Debug, Clone, PartialEq)]
    pub struct OrgRow {
        pub id: OrgId,
        pub name: String,
        pub external_id: Option<String>,
        pub owner_id: UserId,
        pub state: steward_core::OrgState,
        pub timezone: Option<String>,
        pub country: Option<String>,
        pub license: License,
        pub created_at: OffsetDateTime,
        pub updated_at: OffsetDateTime,
        pub version: i64,
    }
}

/// Which orgs a list returns.
#[derive(Debug, Clone, Default)]
pub struct OrgFilter {
    /// Only orgs where this user has a current, non-dormant membership.
    pub member: Option<UserId>,
    /// Only the org with this external id.
    pub external_id: Option<String>,
    pub before: Option<OrgId>,
    pub limit: u32,
}

stored! {
    /// A current membership, with the user's identity for listing.
    #[derive(Debug, Clone, PartialEq)]
    pub struct MemberRow {
        pub org_id: OrgId,
        pub user_id: UserId,
        pub email: String,
        pub name: String,
        pub status: UserStatus,
        /// A person, or a system account (the placeholder owner holds orgs; it is never a seat).
        pub kind: steward_core::UserKind,
        pub role: OrgRole,
        pub dormant: bool,
        pub created_at: OffsetDateTime,
    }
}

stored! {
    /// A user's current membership, with the org's name and license.
    #[derive(Debug, Clone, PartialEq)]
    pub struct MembershipOfUser {
        pub org_id: OrgId,
        pub org_name: String,
        pub license: License,
        pub role: OrgRole,
        pub dormant: bool,
        /// The member's settings for this org's own emails (category -> on; one not named is on).
        pub notifications: BTreeMap<String, bool>,
    }
}

stored! {
    /// A team as stored.
    #[derive(Debug, Clone, PartialEq)]
    pub struct TeamRow {
        pub id: TeamId,
        pub org_id: OrgId,
        pub name: String,
        pub created_at: OffsetDateTime,
        pub updated_at: OffsetDateTime,
        pub version: i64,
    }
}

stored! {
    /// A current team membership.
    #[derive(Debug, Clone, PartialEq)]
    pub struct TeamMemberRow {
        pub team_id: TeamId,
        pub org_id: OrgId,
        pub user_id: UserId,
        pub role: TeamRole,
        pub dormant: bool,
    }
}

stored! {
    #[table = "sessions"]
    /// A login session; the secret itself is never stored.
    #[derive(Debug, Clone, PartialEq)]
    pub struct SessionRow {
        pub id: SessionId,
        pub user_id: UserId,
        pub token_hash: String,
        pub impersonator_id: Option<UserId>,
        /// The admin's own session an impersonation returns to.
        pub parent_id: Option<SessionId>,
        /// That session's secret, sealed with this session's secret.
        pub return_sealed: Option<String>,
        /// The API token an impersonation was started with; revoking it ends the session.
        pub parent_token_id: Option<TokenId>,
        pub created_at: OffsetDateTime,
        pub expires_at: OffsetDateTime,
        pub revoked_at: Option<OffsetDateTime>,
        pub ip: Option<String>,
        pub user_agent: Option<String>,
    }
}

stored! {
    #[table = "api_tokens"]
    /// An API token; the secret itself is never stored.
    #[derive(Debug, Clone, PartialEq)]
    pub struct ApiTokenRow {
        pub id: TokenId,
        pub user_id: UserId,
        pub name: String,
        pub token_hash: String,
        pub created_at: OffsetDateTime,
        pub expires_at: Option<OffsetDateTime>,
        pub revoked_at: Option<OffsetDateTime>,
        /// The API token this one was created with; revoking that revokes this.
        pub parent_token_id: Option<TokenId>,
        /// What it was created for beyond acting as its user.
        pub scopes: Vec<steward_core::TokenScope>,
    }
}

stored! {
    #[table = "audit_checkpoints"]
    /// A signed checkpoint of the audit chain, as kept.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct CheckpointRow {
        pub seq: i64,
        /// `head` (the chain's head at `at`) or `anchor` (where an archiving left the chain).
        pub kind: String,
        pub hash: String,
        pub at: OffsetDateTime,
        pub key_id: String,
        pub signature: String,
    }
}

/// Which audit events a list returns.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor_id: Option<UserId>,
    pub target_id: Option<String>,
    pub org_id: Option<OrgId>,
    /// Events where this user is actor, impersonator or target.
    pub involving: Option<UserId>,
    pub kind: Option<String>,
    pub since: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
    /// Only events with a smaller `seq`.
    pub before_seq: Option<i64>,
    pub limit: u32,
}

/// A stored answer to a request made with an `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq)]
pub struct IdempotentResponse {
    pub request_hash: String,
    pub status: u16,
    pub body: String,
}

stored! {
    #[table = "ownership_handovers"]
    /// An org handed from a deactivated owner to someone else.
    #[derive(Debug, Clone, PartialEq)]
    pub struct HandoverRow {
        pub id: uuid::Uuid,
        pub org_id: OrgId,
        pub from_user_id: UserId,
        pub to_user_id: UserId,
        /// Goes back to `from_user_id` on reactivation while `to_user_id` still owns the org.
        pub returnable: bool,
        pub created_at: OffsetDateTime,
        pub closed_at: Option<OffsetDateTime>,
    }
}

stored! {
    #[table = "invitations"]
    /// An invitation: to the instance (no org) or to an org with a role and teams.
    #[derive(Debug, Clone, PartialEq)]
    pub struct InvitationRow {
        pub id: uuid::Uuid,
        pub user_id: UserId,
        pub org_id: Option<OrgId>,
        pub role: Option<OrgRole>,
        pub team_ids: Vec<TeamId>,
        pub token_hash: String,
        pub invited_by: Option<UserId>,
        pub created_at: OffsetDateTime,
        pub expires_at: OffsetDateTime,
        pub accepted_at: Option<OffsetDateTime>,
        pub cancelled_at: Option<OffsetDateTime>,
    }
}

stored! {
    #[table = "password_resets"]
    /// A password reset link.
    #[derive(Debug, Clone, PartialEq)]
    pub struct ResetRow {
        pub id: uuid::Uuid,
        pub user_id: UserId,
        pub token_hash: String,
        pub created_at: OffsetDateTime,
        pub expires_at: OffsetDateTime,
        pub used_at: Option<OffsetDateTime>,
    }
}

stored! {
    #[table = "outbox"]
    /// An email waiting in the outbox.
    #[derive(Debug, Clone, PartialEq)]
    pub struct OutboxRow {
        pub id: uuid::Uuid,
        /// The user it is for; their status and settings are checked again at delivery.
        pub user_id: Option<UserId>,
        /// The org it is about, when it is one of an org's own emails: the user's membership and
        /// settings there are checked again at delivery.
        pub org_id: Option<OrgId>,
        pub recipient: String,
        pub category: String,
        pub subject: String,
        pub body: String,
        pub created_at: OffsetDateTime,
        pub attempts: i64,
        pub next_attempt_at: OffsetDateTime,
        pub sent_at: Option<OffsetDateTime>,
        pub dropped_at: Option<OffsetDateTime>,
        pub last_error: Option<String>,
    }
}

stored! {
    #[table = "deprovision_records"]
    /// A deprovisioning and the snapshot restore puts back.
    #[derive(Debug, Clone, PartialEq)]
    pub struct DeprovisionRow {
        pub id: uuid::Uuid,
        pub org_id: OrgId,
        pub reason: String,
        pub snapshot: serde_json::Value,
        pub created_at: OffsetDateTime,
        pub created_by: Option<UserId>,
        pub restored_at: Option<OffsetDateTime>,
        pub restored_by: Option<UserId>,
    }
}

stored! {
    /// Usage of one org in one period.
    #[derive(Debug, Clone, PartialEq)]
    pub struct UsageRow {
        pub org_id: OrgId,
        pub period_start: OffsetDateTime,
        pub period_end: OffsetDateTime,
        pub operations_used: u64,
        pub transfer_used: u64,
    }
}

stored! {
    /// What an org consumed on one UTC day.
    #[derive(Debug, Clone, PartialEq)]
    pub struct UsageDayRow {
        /// The day's first instant (UTC).
        pub day: OffsetDateTime,
        pub operations_used: u64,
        pub transfer_used: u64,
    }
}

stored! {
    /// An asset the operator's product keeps for an org.
    #[derive(Debug, Clone, PartialEq)]
    pub struct AssetRow {
        pub id: uuid::Uuid,
        pub org_id: OrgId,
        pub kind: String,
        pub name: String,
        pub team_id: Option<TeamId>,
        pub size_bytes: u64,
        pub created_by: Option<UserId>,
        pub created_at: OffsetDateTime,
        pub updated_at: OffsetDateTime,
        pub version: i64,
    }
}

/// What an org holds, for the license's capacity limits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AssetTotals {
    pub data_stores: u64,
    pub data_store_bytes: u64,
    pub scenarios: u64,
    pub file_bytes: u64,
}

/// Everything a permission decision needs, read at once.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckFacts {
    pub status: UserStatus,
    /// The current membership's role and whether it is dormant.
    pub membership: Option<(OrgRole, bool)>,
    pub license: License,
    pub org_created_at: OffsetDateTime,
    /// Usage of the period starting at the given instant (0 when none yet).
    pub operations_used: u64,
    pub transfer_used: u64,
}

stored! {
    #[table = "webhooks"]
    /// A webhook endpoint.
    #[derive(Debug, Clone, PartialEq)]
    pub struct WebhookRow {
        pub id: uuid::Uuid,
        pub url: String,
        /// Event types it receives; `*` for all.
        pub events: Vec<String>,
        /// The `whsec_` signing secret (kept to sign; shown once at creation).
        pub secret: String,
        pub created_at: OffsetDateTime,
        pub created_by: Option<UserId>,
        pub disabled_at: Option<OffsetDateTime>,
    }
}

stored! {
    #[table = "webhook_deliveries"]
    /// One event on its way to one endpoint.
    #[derive(Debug, Clone, PartialEq)]
    pub struct DeliveryRow {
        pub id: uuid::Uuid,
        pub webhook_id: uuid::Uuid,
        pub event_type: String,
        /// The body as sent: `{type, timestamp, data}`.
        pub payload: String,
        pub created_at: OffsetDateTime,
        pub attempts: i64,
        pub next_attempt_at: OffsetDateTime,
        pub delivered_at: Option<OffsetDateTime>,
        pub failed_at: Option<OffsetDateTime>,
        pub last_status: Option<i64>,
        pub last_error: Option<String>,
    }
}

stored! {
    #[table = "access_reviews"]
    /// An access review.
    #[derive(Debug, Clone, PartialEq)]
    pub struct ReviewRow {
        pub id: uuid::Uuid,
        /// The org reviewed, or `None` for all active users.
        pub org_id: Option<OrgId>,
        pub inactive_days: i64,
        pub created_at: OffsetDateTime,
        pub created_by: Option<UserId>,
        pub completed_at: Option<OffsetDateTime>,
        pub completed_by: Option<UserId>,
    }
}

stored! {
    #[table = "access_review_items"]
    /// One person in a review.
    #[derive(Debug, Clone, PartialEq)]
    pub struct ReviewItemRow {
        pub review_id: uuid::Uuid,
        pub user_id: UserId,
        pub email: String,
        pub last_login_at: Option<OffsetDateTime>,
        pub roles: Vec<String>,
        /// `keep`, `deactivate` or `remove_from_org`.
        pub recommendation: String,
        pub decision: Option<String>,
    }
}

/// What Steward keeps of a user provisioned through SCIM, beyond the user row.
#[derive(Debug, Clone, PartialEq)]
pub struct ScimUserRow {
    pub user_id: UserId,
    /// The `userName` as the identity provider wrote it; `None` means the email.
    pub user_name: Option<String>,
    pub external_id: Option<String>,
    /// The SCIM attributes kept as sent (name, displayName, emails, …).
    pub attrs: serde_json::Value,
    /// Set by `DELETE /Users/{id}`: the user is deactivated and no longer seen through SCIM.
    pub hidden_at: Option<OffsetDateTime>,
    pub updated_at: OffsetDateTime,
}

/// A team as SCIM sees it: with its org's name and external id.
#[derive(Debug, Clone, PartialEq)]
pub struct ScimGroupRow {
    pub team: TeamRow,
    pub org_name: String,
    pub external_id: Option<String>,
}

stored! {
    #[table = "scim_tokens"]
    /// A SCIM bearer token; the secret is kept only as a digest.
    #[derive(Debug, Clone, PartialEq)]
    pub struct ScimTokenRow {
        pub id: uuid::Uuid,
        pub name: String,
        pub token_hash: String,
        /// The org the token is bound to: its Groups are that org's teams and its Users its members.
        pub org_id: Option<OrgId>,
        /// The service user SCIM changes are attributed to.
        pub service_user_id: UserId,
        pub created_by: Option<UserId>,
        pub created_at: OffsetDateTime,
        pub revoked_at: Option<OffsetDateTime>,
    }
}

stored! {
    #[table = "user_totp"]
    /// A user's two-factor enrolment: pending until its first code confirms it.
    #[derive(Debug, Clone, PartialEq)]
    pub struct TotpRow {
        pub user_id: UserId,
        /// The secret sealed with the instance key; never stored in the clear.
        pub secret_sealed: String,
        pub confirmed_at: Option<OffsetDateTime>,
        /// The last step whose code was accepted.
        pub last_step: Option<i64>,
        pub created_at: OffsetDateTime,
    }
}

stored! {
    #[table = "custom_roles"]
    /// An instance role an operator defined.
    #[derive(Debug, Clone, PartialEq)]
    pub struct RoleRow {
        pub name: String,
        pub permissions: Vec<Permission>,
        pub created_at: OffsetDateTime,
        pub updated_at: OffsetDateTime,
        pub version: i64,
    }
}

stored! {
    #[table = "jwt_issuers"]
    /// An issuer whose signed JWTs authorize API requests as the user they map to.
    #[derive(Debug, Clone, PartialEq)]
    pub struct JwtIssuerRow {
        pub id: uuid::Uuid,
        /// The `iss` its tokens carry.
        pub issuer: String,
        /// The `aud` its tokens must name.
        pub audience: String,
        /// Where its keys are published, or else…
        pub jwks_url: Option<String>,
        /// …its one public key.
        pub public_key_pem: Option<String>,
        /// The claim holding the user's external subject (usually `sub`).
        pub subject_claim: String,
        /// The claim holding the user's email, if tokens are mapped by email too.
        pub email_claim: Option<String>,
        /// Whether an unknown user is created on their first token.
        pub jit: bool,
        pub created_by: Option<UserId>,
        pub created_at: OffsetDateTime,
        /// The email domains its tokens may act for; empty: any.
        pub domains: Vec<String>,
        /// Whether its tokens may act as users holding instance roles.
        pub allow_instance_roles: bool,
    }
}

/// The claims an OpenID Connect connection reads the user's email, name and groups from.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SsoClaims {
    pub email: String,
    pub name: String,
    pub groups: String,
}

/// Members of an identity provider's group get this role in this org.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RoleMappingRow {
    pub group: String,
    pub org_id: OrgId,
    pub role: OrgRole,
}

stored! {
    /// An OpenID Connect identity provider, for the whole instance or one org.
    #[derive(Debug, Clone, PartialEq)]
    pub struct SsoConnectionRow {
        pub id: uuid::Uuid,
        pub name: String,
        pub org_id: Option<OrgId>,
        pub issuer: String,
        pub client_id: String,
        /// The client secret, encrypted with the instance's SSO key.
        pub client_secret_sealed: String,
        pub scopes: Vec<String>,
        /// The email domains (lower case) whose users sign in here; each belongs to one connection.
        pub domains: Vec<String>,
        pub claims: SsoClaims,
        pub role_mapping: Vec<RoleMappingRow>,
        pub jit: bool,
        pub enforced: bool,
        pub created_at: OffsetDateTime,
        pub updated_at: OffsetDateTime,
        pub version: i64,
    }
}
