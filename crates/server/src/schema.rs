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
    /// `monthly` or `annual`.
    #[schema(example = "monthly")]
    restart_period: String,
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
