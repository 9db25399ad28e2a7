//! OpenAPI schemas for domain types that live in `steward-core`, which knows nothing of OpenAPI.

use std::collections::BTreeMap;

use utoipa::ToSchema;

/// An org's license. Absent or null limits are unlimited; a consumable at 0 freezes the org.
#[derive(ToSchema)]
#[schema(as = License)]
#[allow(dead_code)]
pub struct LicenseSchema {
    /// Operations per period.
    operations: Option<u64>,
    /// Data transfer per period, in bytes.
    transfer: Option<u64>,
    /// When the consumables start again from zero.
    restart_period: RestartPeriodSchema,
    /// Members (seats).
    users: Option<u64>,
    /// Teams.
    teams: Option<u64>,
    /// Data stores.
    data_stores: Option<u64>,
    /// Total bytes across data stores.
    data_store_bytes: Option<u64>,
    /// Total bytes of files.
    file_bytes: Option<u64>,
    /// Scenarios.
    scenarios: Option<u64>,
    /// The shortest schedule interval.
    min_interval_minutes: Option<u64>,
    /// API requests per minute; 0 disables the org's API access.
    api_requests_per_minute: Option<u64>,
    /// Named feature switches.
    features: BTreeMap<String, bool>,
    /// Days of audit history the org sees.
    audit_log_days: Option<u64>,
    /// After this instant every consumable counts as 0.
    #[schema(format = DateTime)]
    expires_at: Option<String>,
}

/// When an org's consumables start again from zero: each calendar month, or each year from the
/// org's creation.
#[derive(ToSchema)]
#[schema(as = RestartPeriod, rename_all = "lowercase")]
#[allow(dead_code)]
pub enum RestartPeriodSchema {
    Monthly,
    Annual,
}

/// A merge patch of an org's license (RFC 7396): a field sent replaces its value, `null` makes a
/// limit unlimited, a field left out stays as it is.
#[derive(ToSchema)]
#[schema(as = LicensePatch)]
#[allow(dead_code)]
pub struct LicensePatchSchema {
    /// Operations per period.
    operations: Option<u64>,
    /// Data transfer per period, in bytes.
    transfer: Option<u64>,
    /// When the consumables start again from zero.
    restart_period: Option<RestartPeriodSchema>,
    /// Members (seats).
    users: Option<u64>,
    /// Teams.
    teams: Option<u64>,
    /// Data stores.
    data_stores: Option<u64>,
    /// Total bytes across data stores.
    data_store_bytes: Option<u64>,
    /// Total bytes of files.
    file_bytes: Option<u64>,
    /// Scenarios.
    scenarios: Option<u64>,
    /// The shortest schedule interval.
    min_interval_minutes: Option<u64>,
    /// API requests per minute; 0 disables the org's API access.
    api_requests_per_minute: Option<u64>,
    /// Named feature switches, merged: a switch set to `null` is removed.
    features: Option<BTreeMap<String, Option<bool>>>,
    /// Days of audit history the org sees.
    audit_log_days: Option<u64>,
    /// After this instant every consumable counts as 0.
    #[schema(format = DateTime)]
    expires_at: Option<String>,
}

/// Where a user stands in its lifecycle.
#[derive(ToSchema)]
#[schema(as = UserStatus, rename_all = "lowercase")]
#[allow(dead_code)]
pub enum UserStatusSchema {
    Invited,
    Active,
    Suspended,
    Deactivated,
    Anonymized,
}

/// Where an org stands in its lifecycle (frozen is derived, see `frozen`).
#[derive(ToSchema)]
#[schema(as = OrgState, rename_all = "lowercase")]
#[allow(dead_code)]
pub enum OrgStateSchema {
    Active,
    Deprovisioned,
    Purged,
}

/// Who a user is: a person, or a system account.
#[derive(ToSchema)]
#[schema(as = UserKind, rename_all = "lowercase")]
#[allow(dead_code)]
pub enum UserKindSchema {
    Person,
    Placeholder,
    Service,
}

/// What became of a usage event.
#[derive(ToSchema)]
#[schema(as = UsageEventStatus, rename_all = "snake_case")]
#[allow(dead_code)]
pub enum UsageEventStatusSchema {
    Accepted,
    Duplicate,
    QuotaExhausted,
    Invalid,
}

/// What became of an invitation.
#[derive(ToSchema)]
#[schema(as = InvitationStatus, rename_all = "lowercase")]
#[allow(dead_code)]
pub enum InvitationStatusSchema {
    Pending,
    Accepted,
    Revoked,
    Expired,
}

/// A role in an org.
#[derive(ToSchema)]
#[schema(as = OrgRole, rename_all = "lowercase")]
#[allow(dead_code)]
pub enum OrgRoleSchema {
    Owner,
    Admin,
    Member,
    Accountant,
    Viewer,
}

/// A role in a team.
#[derive(ToSchema)]
#[schema(as = TeamRole, rename_all = "snake_case")]
#[allow(dead_code)]
pub enum TeamRoleSchema {
    TeamAdmin,
    TeamMember,
    TeamOperator,
    TeamViewer,
}

/// What an access review recommends, or decides, for one person.
#[derive(ToSchema)]
#[schema(as = ReviewDecision, rename_all = "snake_case")]
#[allow(dead_code)]
pub enum ReviewDecisionSchema {
    Keep,
    Deactivate,
    RemoveFromOrg,
}
