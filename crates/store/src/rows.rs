//! What both backends share: encoding of times and ids, and the mapping of result rows to the
//! store's rows, written once against [`DbRow`].

use std::str::FromStr;

use sqlx::Row;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use steward_core::license::License;
use steward_core::{AuditRecord, InstanceRole, OrgRole, TeamRole, UserStatus};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::model::*;
use crate::{Constraint, StoreError, StoreResult};

/// A column type both backends decode.
pub(crate) trait Col: Sized {
    fn from_sqlite(row: &SqliteRow, col: &str) -> Result<Self, sqlx::Error>;
    fn from_pg(row: &PgRow, col: &str) -> Result<Self, sqlx::Error>;
}

macro_rules! col {
    ($($t:ty),*) => {$(
        impl Col for $t {
            fn from_sqlite(row: &SqliteRow, col: &str) -> Result<Self, sqlx::Error> {
                row.try_get(col)
            }
            fn from_pg(row: &PgRow, col: &str) -> Result<Self, sqlx::Error> {
                row.try_get(col)
            }
        }
    )*};
}
col!(String, Option<String>, i64, Option<i64>, bool);

/// A result row of either backend.
pub(crate) trait DbRow {
    fn column<T: Col>(&self, col: &str) -> StoreResult<T>;
}

impl DbRow for SqliteRow {
    fn column<T: Col>(&self, col: &str) -> StoreResult<T> {
        T::from_sqlite(self, col).map_err(|e| StoreError::Corrupt(format!("{col}: {e}")))
    }
}

impl DbRow for PgRow {
    fn column<T: Col>(&self, col: &str) -> StoreResult<T> {
        T::from_pg(self, col).map_err(|e| StoreError::Corrupt(format!("{col}: {e}")))
    }
}

pub(crate) fn micros(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1000) as i64
}

pub(crate) fn from_micros(m: i64) -> StoreResult<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(m) * 1000).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub(crate) fn opt_micros(m: Option<i64>) -> StoreResult<Option<OffsetDateTime>> {
    m.map(from_micros).transpose()
}

pub(crate) fn parse<T: FromStr>(text: &str, what: &str) -> StoreResult<T> {
    text.parse().map_err(|_| StoreError::Corrupt(format!("{what}: {text:?}")))
}

pub(crate) fn opt_id<T: FromStr>(text: Option<String>, what: &str) -> StoreResult<Option<T>> {
    text.map(|t| parse(&t, what)).transpose()
}

/// Reads a column of a row of either backend.
pub(crate) fn get<T: Col>(row: &impl DbRow, col: &str) -> StoreResult<T> {
    row.column(col)
}

/// Escapes `%`, `_` and `\` for a `LIKE … ESCAPE '\'` pattern.
pub(crate) fn like_pattern(q: &str) -> String {
    let mut out = String::from("%");
    for c in q.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

pub(crate) fn user_from_row(row: &impl DbRow) -> StoreResult<UserRow> {
    let roles: Option<String> = get(row, "roles")?;
    let mut instance_roles = roles
        .unwrap_or_default()
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|r| InstanceRole::parse(r).map_err(|e| StoreError::Corrupt(e.to_string())))
        .collect::<StoreResult<Vec<_>>>()?;
    instance_roles.sort();
    Ok(UserRow {
        id: parse(&get::<String>(row, "id")?, "user id")?,
        email: get(row, "email")?,
        email_key: get(row, "email_key")?,
        name: get(row, "name")?,
        status: parse::<UserStatus>(&get::<String>(row, "status")?, "user status")?,
        password_hash: get(row, "password_hash")?,
        locale: get(row, "locale")?,
        timezone: get(row, "timezone")?,
        instance_roles,
        kind: parse::<steward_core::UserKind>(&get::<String>(row, "kind")?, "user kind")?,
        notifications: serde_json::from_str(&get::<String>(row, "notifications")?)
            .map_err(|e| StoreError::Corrupt(format!("notifications: {e}")))?,
        created_at: from_micros(get(row, "created_at")?)?,
        updated_at: from_micros(get(row, "updated_at")?)?,
        last_login_at: opt_micros(get(row, "last_login_at")?)?,
        deactivate_at: opt_micros(get(row, "deactivate_at")?)?,
        status_by: get::<Option<String>>(row, "status_by")?.map(|s| parse(&s, "status_by")).transpose()?,
        deactivate_by: get::<Option<String>>(row, "deactivate_by")?.map(|s| parse(&s, "deactivate_by")).transpose()?,
        version: get(row, "version")?,
    })
}

pub(crate) fn json_text<T: serde::Serialize>(value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub(crate) fn license_from(text: &str) -> StoreResult<License> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("license: {e}")))
}

pub(crate) fn license_to(license: &License) -> StoreResult<String> {
    serde_json::to_string(license).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub(crate) fn org_from_row(row: &impl DbRow) -> StoreResult<OrgRow> {
    Ok(OrgRow {
        id: parse(&get::<String>(row, "id")?, "org id")?,
        name: get(row, "name")?,
        external_id: get(row, "external_id")?,
        owner_id: parse(&get::<String>(row, "owner_id")?, "owner id")?,
        state: parse::<steward_core::OrgState>(&get::<String>(row, "state")?, "org state")?,
        timezone: get(row, "timezone")?,
        country: get(row, "country")?,
        license: license_from(&get::<String>(row, "license")?)?,
        created_at: from_micros(get(row, "created_at")?)?,
        updated_at: from_micros(get(row, "updated_at")?)?,
        version: get(row, "version")?,
    })
}

pub(crate) fn team_from_row(row: &impl DbRow) -> StoreResult<TeamRow> {
    Ok(TeamRow {
        id: parse(&get::<String>(row, "id")?, "team id")?,
        org_id: parse(&get::<String>(row, "org_id")?, "org id")?,
        name: get(row, "name")?,
        created_at: from_micros(get(row, "created_at")?)?,
        updated_at: from_micros(get(row, "updated_at")?)?,
        version: get(row, "version")?,
    })
}

pub(crate) fn team_member_from_row(row: &impl DbRow) -> StoreResult<TeamMemberRow> {
    Ok(TeamMemberRow {
        team_id: parse(&get::<String>(row, "team_id")?, "team id")?,
        org_id: parse(&get::<String>(row, "org_id")?, "org id")?,
        user_id: parse(&get::<String>(row, "user_id")?, "user id")?,
        role: parse::<TeamRole>(&get::<String>(row, "role")?, "team role")?,
        dormant: get(row, "dormant")?,
    })
}

pub(crate) fn session_from_row(row: &impl DbRow) -> StoreResult<SessionRow> {
    Ok(SessionRow {
        id: parse(&get::<String>(row, "id")?, "session id")?,
        user_id: parse(&get::<String>(row, "user_id")?, "user id")?,
        token_hash: get(row, "token_hash")?,
        impersonator_id: opt_id(get(row, "impersonator_id")?, "impersonator id")?,
        parent_id: opt_id(get(row, "parent_id")?, "parent session id")?,
        return_sealed: get(row, "return_sealed")?,
        parent_token_id: opt_id(get(row, "parent_token_id")?, "parent token id")?,
        created_at: from_micros(get(row, "created_at")?)?,
        expires_at: from_micros(get(row, "expires_at")?)?,
        revoked_at: opt_micros(get(row, "revoked_at")?)?,
        ip: get(row, "ip")?,
        user_agent: get(row, "user_agent")?,
    })
}

pub(crate) fn token_from_row(row: &impl DbRow) -> StoreResult<ApiTokenRow> {
    Ok(ApiTokenRow {
        id: parse(&get::<String>(row, "id")?, "token id")?,
        user_id: parse(&get::<String>(row, "user_id")?, "user id")?,
        name: get(row, "name")?,
        token_hash: get(row, "token_hash")?,
        created_at: from_micros(get(row, "created_at")?)?,
        expires_at: opt_micros(get(row, "expires_at")?)?,
        revoked_at: opt_micros(get(row, "revoked_at")?)?,
        parent_token_id: opt_id(get(row, "parent_token_id")?, "parent token id")?,
        scopes: get::<String>(row, "scopes")?
            .split_whitespace()
            .map(|s| s.parse().map_err(|_| StoreError::Corrupt(format!("token scope {s:?}"))))
            .collect::<StoreResult<_>>()?,
    })
}

pub(crate) fn checkpoint_from_row(row: &impl DbRow) -> StoreResult<CheckpointRow> {
    Ok(CheckpointRow {
        seq: get(row, "seq")?,
        kind: get(row, "kind")?,
        hash: get(row, "hash")?,
        at: from_micros(get(row, "at")?)?,
        key_id: get(row, "key_id")?,
        signature: get(row, "signature")?,
    })
}

/// How a token's scopes are kept: space-separated, as OAuth writes them.
pub(crate) fn scopes_text(scopes: &[steward_core::TokenScope]) -> String {
    scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ")
}

pub(crate) fn audit_from_row(row: &impl DbRow) -> StoreResult<AuditRecord> {
    Ok(AuditRecord {
        id: parse(&get::<String>(row, "id")?, "event id")?,
        seq: get(row, "seq")?,
        at: from_micros(get(row, "at")?)?,
        kind: get(row, "kind")?,
        actor_id: opt_id(get(row, "actor_id")?, "actor id")?,
        impersonator_id: opt_id(get(row, "impersonator_id")?, "impersonator id")?,
        target_type: get(row, "target_type")?,
        target_id: get(row, "target_id")?,
        org_id: opt_id(get(row, "org_id")?, "org id")?,
        detail: get(row, "detail")?,
        personal: get(row, "personal")?,
        personal_digest: get(row, "personal_digest")?,
        prev_hash: get(row, "prev_hash")?,
        hash: get(row, "hash")?,
    })
}

/// Ok when exactly one row was changed; a conditional update that matched nothing lost a race.
pub(crate) fn expect_one(rows_affected: u64) -> StoreResult<()> {
    if rows_affected == 1 { Ok(()) } else { Err(StoreError::Conflict(Constraint::VersionMismatch)) }
}

pub(crate) fn uuid_of(row: &impl DbRow, col: &str) -> StoreResult<Uuid> {
    parse(&get::<String>(row, col)?, col)
}

pub(crate) fn handover_from_row(row: &impl DbRow) -> StoreResult<HandoverRow> {
    Ok(HandoverRow {
        id: uuid_of(row, "id")?,
        org_id: parse(&get::<String>(row, "org_id")?, "org id")?,
        from_user_id: parse(&get::<String>(row, "from_user_id")?, "user id")?,
        to_user_id: parse(&get::<String>(row, "to_user_id")?, "user id")?,
        returnable: get(row, "returnable")?,
        created_at: from_micros(get(row, "created_at")?)?,
        closed_at: opt_micros(get(row, "closed_at")?)?,
    })
}

pub(crate) fn deprovision_from_row(row: &impl DbRow) -> StoreResult<DeprovisionRow> {
    Ok(DeprovisionRow {
        id: uuid_of(row, "id")?,
        org_id: parse(&get::<String>(row, "org_id")?, "org id")?,
        reason: get(row, "reason")?,
        snapshot: serde_json::from_str(&get::<String>(row, "snapshot")?)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        created_at: from_micros(get(row, "created_at")?)?,
        created_by: opt_id(get(row, "created_by")?, "user id")?,
        restored_at: opt_micros(get(row, "restored_at")?)?,
        restored_by: opt_id(get(row, "restored_by")?, "user id")?,
    })
}

pub(crate) fn invitation_from_row(row: &impl DbRow) -> StoreResult<InvitationRow> {
    let team_ids: Vec<String> =
        serde_json::from_str(&get::<String>(row, "team_ids")?).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(InvitationRow {
        id: uuid_of(row, "id")?,
        user_id: parse(&get::<String>(row, "user_id")?, "user id")?,
        org_id: opt_id(get(row, "org_id")?, "org id")?,
        role: opt_id(get(row, "role")?, "org role")?,
        team_ids: team_ids.iter().map(|t| parse(t, "team id")).collect::<StoreResult<_>>()?,
        token_hash: get(row, "token_hash")?,
        invited_by: opt_id(get(row, "invited_by")?, "user id")?,
        created_at: from_micros(get(row, "created_at")?)?,
        expires_at: from_micros(get(row, "expires_at")?)?,
        accepted_at: opt_micros(get(row, "accepted_at")?)?,
        cancelled_at: opt_micros(get(row, "cancelled_at")?)?,
    })
}

pub(crate) fn reset_from_row(row: &impl DbRow) -> StoreResult<ResetRow> {
    Ok(ResetRow {
        id: uuid_of(row, "id")?,
        user_id: parse(&get::<String>(row, "user_id")?, "user id")?,
        token_hash: get(row, "token_hash")?,
        created_at: from_micros(get(row, "created_at")?)?,
        expires_at: from_micros(get(row, "expires_at")?)?,
        used_at: opt_micros(get(row, "used_at")?)?,
    })
}

pub(crate) fn outbox_from_row(row: &impl DbRow) -> StoreResult<OutboxRow> {
    Ok(OutboxRow {
        id: uuid_of(row, "id")?,
        user_id: opt_id(get(row, "user_id")?, "user id")?,
        org_id: opt_id(get(row, "org_id")?, "org id")?,
        recipient: get(row, "recipient")?,
        category: get(row, "category")?,
        subject: get(row, "subject")?,
        body: get(row, "body")?,
        created_at: from_micros(get(row, "created_at")?)?,
        attempts: get(row, "attempts")?,
        next_attempt_at: from_micros(get(row, "next_attempt_at")?)?,
        sent_at: opt_micros(get(row, "sent_at")?)?,
        dropped_at: opt_micros(get(row, "dropped_at")?)?,
        last_error: get(row, "last_error")?,
    })
}

pub(crate) fn member_from_row(row: &impl DbRow) -> StoreResult<MemberRow> {
    Ok(MemberRow {
        org_id: parse(&get::<String>(row, "org_id")?, "org id")?,
        user_id: parse(&get::<String>(row, "user_id")?, "user id")?,
        email: get(row, "email")?,
        name: get(row, "name")?,
        status: parse::<UserStatus>(&get::<String>(row, "status")?, "user status")?,
        kind: parse::<steward_core::UserKind>(&get::<String>(row, "kind")?, "user kind")?,
        role: parse::<OrgRole>(&get::<String>(row, "role")?, "org role")?,
        dormant: get(row, "dormant")?,
        created_at: from_micros(get(row, "created_at")?)?,
    })
}

pub(crate) fn membership_of_user_from_row(row: &impl DbRow) -> StoreResult<MembershipOfUser> {
    Ok(MembershipOfUser {
        org_id: parse(&get::<String>(row, "org_id")?, "org id")?,
        org_name: get(row, "name")?,
        license: license_from(&get::<String>(row, "license")?)?,
        role: parse::<OrgRole>(&get::<String>(row, "role")?, "org role")?,
        dormant: get(row, "dormant")?,
        notifications: serde_json::from_str(&get::<String>(row, "notifications")?)
            .map_err(|e| StoreError::Corrupt(format!("membership notifications: {e}")))?,
    })
}

pub(crate) fn count(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Amounts are kept as BIGINT; anything above `i64::MAX` is refused before it gets here.
pub(crate) fn amount(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(crate) fn usage_from_row(row: &impl DbRow) -> StoreResult<UsageRow> {
    Ok(UsageRow {
        org_id: parse(&get::<String>(row, "org_id")?, "org id")?,
        period_start: from_micros(get(row, "period_start")?)?,
        period_end: from_micros(get(row, "period_end")?)?,
        operations_used: count(get(row, "operations_used")?),
        transfer_used: count(get(row, "transfer_used")?),
    })
}

pub(crate) fn usage_day_from_row(row: &impl DbRow) -> StoreResult<UsageDayRow> {
    Ok(UsageDayRow {
        day: from_micros(get(row, "day")?)?,
        operations_used: count(get(row, "operations_used")?),
        transfer_used: count(get(row, "transfer_used")?),
    })
}

pub(crate) fn asset_from_row(row: &impl DbRow) -> StoreResult<AssetRow> {
    Ok(AssetRow {
        id: uuid_of(row, "id")?,
        org_id: parse(&get::<String>(row, "org_id")?, "org id")?,
        kind: get(row, "kind")?,
        name: get(row, "name")?,
        team_id: opt_id(get(row, "team_id")?, "team id")?,
        size_bytes: count(get(row, "size_bytes")?),
        created_by: opt_id(get(row, "created_by")?, "user id")?,
        created_at: from_micros(get(row, "created_at")?)?,
        updated_at: from_micros(get(row, "updated_at")?)?,
        version: get(row, "version")?,
    })
}

pub(crate) fn check_facts_from_row(row: &impl DbRow) -> StoreResult<CheckFacts> {
    let role: Option<String> = get(row, "role")?;
    let membership = match role {
        Some(r) => Some((parse::<OrgRole>(&r, "org role")?, get::<bool>(row, "dormant")?)),
        None => None,
    };
    Ok(CheckFacts {
        status: parse::<UserStatus>(&get::<String>(row, "status")?, "user status")?,
        membership,
        license: license_from(&get::<String>(row, "license")?)?,
        org_created_at: from_micros(get(row, "org_created_at")?)?,
        operations_used: count(get::<Option<i64>>(row, "operations_used")?.unwrap_or(0)),
        transfer_used: count(get::<Option<i64>>(row, "transfer_used")?.unwrap_or(0)),
    })
}

pub(crate) fn webhook_from_row(row: &impl DbRow) -> StoreResult<WebhookRow> {
    Ok(WebhookRow {
        id: uuid_of(row, "id")?,
        url: get(row, "url")?,
        events: serde_json::from_str(&get::<String>(row, "events")?).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        secret: get(row, "secret")?,
        created_at: from_micros(get(row, "created_at")?)?,
        created_by: opt_id(get(row, "created_by")?, "user id")?,
        disabled_at: opt_micros(get(row, "disabled_at")?)?,
    })
}

pub(crate) fn delivery_from_row(row: &impl DbRow) -> StoreResult<DeliveryRow> {
    Ok(DeliveryRow {
        id: uuid_of(row, "id")?,
        webhook_id: uuid_of(row, "webhook_id")?,
        event_type: get(row, "event_type")?,
        payload: get(row, "payload")?,
        created_at: from_micros(get(row, "created_at")?)?,
        attempts: get(row, "attempts")?,
        next_attempt_at: from_micros(get(row, "next_attempt_at")?)?,
        delivered_at: opt_micros(get(row, "delivered_at")?)?,
        failed_at: opt_micros(get(row, "failed_at")?)?,
        last_status: get(row, "last_status")?,
        last_error: get(row, "last_error")?,
    })
}

pub(crate) fn review_from_row(row: &impl DbRow) -> StoreResult<ReviewRow> {
    Ok(ReviewRow {
        id: uuid_of(row, "id")?,
        org_id: opt_id(get(row, "org_id")?, "org id")?,
        inactive_days: get(row, "inactive_days")?,
        created_at: from_micros(get(row, "created_at")?)?,
        created_by: opt_id(get(row, "created_by")?, "user id")?,
        completed_at: opt_micros(get(row, "completed_at")?)?,
        completed_by: opt_id(get(row, "completed_by")?, "user id")?,
    })
}

pub(crate) fn review_item_from_row(row: &impl DbRow) -> StoreResult<ReviewItemRow> {
    Ok(ReviewItemRow {
        review_id: uuid_of(row, "review_id")?,
        user_id: parse(&get::<String>(row, "user_id")?, "user id")?,
        email: get(row, "email")?,
        last_login_at: opt_micros(get(row, "last_login_at")?)?,
        roles: serde_json::from_str(&get::<String>(row, "roles")?).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        recommendation: get(row, "recommendation")?,
        decision: get(row, "decision")?,
    })
}

pub(crate) fn scim_user_from_row(row: &impl DbRow) -> StoreResult<Option<ScimUserRow>> {
    let Some(id) = get::<Option<String>>(row, "s_user_id")? else { return Ok(None) };
    Ok(Some(ScimUserRow {
        user_id: parse(&id, "user id")?,
        user_name: get(row, "scim_user_name")?,
        external_id: get(row, "s_external_id")?,
        attrs: serde_json::from_str(&get::<String>(row, "s_attrs")?)
            .map_err(|e| StoreError::Corrupt(format!("scim attrs: {e}")))?,
        hidden_at: opt_micros(get(row, "s_hidden_at")?)?,
        updated_at: from_micros(get(row, "s_updated_at")?)?,
    }))
}

pub(crate) fn scim_group_from_row(row: &impl DbRow) -> StoreResult<ScimGroupRow> {
    Ok(ScimGroupRow {
        team: team_from_row(row)?,
        org_name: get(row, "org_name")?,
        external_id: get(row, "g_external_id")?,
    })
}

pub(crate) fn scim_token_from_row(row: &impl DbRow) -> StoreResult<ScimTokenRow> {
    let org: Option<String> = get(row, "org_id")?;
    let by: Option<String> = get(row, "created_by")?;
    Ok(ScimTokenRow {
        id: parse(&get::<String>(row, "id")?, "token id")?,
        name: get(row, "name")?,
        token_hash: get(row, "token_hash")?,
        org_id: org.map(|o| parse(&o, "org id")).transpose()?,
        service_user_id: parse(&get::<String>(row, "service_user_id")?, "user id")?,
        created_by: by.map(|b| parse(&b, "user id")).transpose()?,
        created_at: from_micros(get(row, "created_at")?)?,
        revoked_at: opt_micros(get(row, "revoked_at")?)?,
    })
}

pub(crate) fn jwt_issuer_from_row(row: &impl DbRow) -> StoreResult<JwtIssuerRow> {
    let by: Option<String> = get(row, "created_by")?;
    Ok(JwtIssuerRow {
        id: parse(&get::<String>(row, "id")?, "issuer id")?,
        issuer: get(row, "issuer")?,
        audience: get(row, "audience")?,
        jwks_url: get(row, "jwks_url")?,
        public_key_pem: get(row, "public_key_pem")?,
        subject_claim: get(row, "subject_claim")?,
        email_claim: get(row, "email_claim")?,
        jit: get(row, "jit")?,
        created_by: by.map(|b| parse(&b, "user id")).transpose()?,
        created_at: from_micros(get(row, "created_at")?)?,
        domains: json_col(row, "domains")?,
        allow_instance_roles: get(row, "allow_instance_roles")?,
    })
}

fn json_col<T: serde::de::DeserializeOwned>(row: &impl DbRow, col: &str) -> StoreResult<T> {
    serde_json::from_str(&get::<String>(row, col)?).map_err(|e| StoreError::Corrupt(format!("{col}: {e}")))
}

pub(crate) fn sso_connection_from_row(row: &impl DbRow) -> StoreResult<SsoConnectionRow> {
    Ok(SsoConnectionRow {
        id: parse(&get::<String>(row, "id")?, "connection id")?,
        name: get(row, "name")?,
        org_id: opt_id(get(row, "org_id")?, "org id")?,
        issuer: get(row, "issuer")?,
        client_id: get(row, "client_id")?,
        client_secret_sealed: get(row, "client_secret_sealed")?,
        scopes: json_col(row, "scopes")?,
        domains: json_col(row, "domains")?,
        claims: json_col(row, "claims")?,
        role_mapping: json_col(row, "role_mapping")?,
        jit: get(row, "jit")?,
        enforced: get(row, "enforced")?,
        created_at: from_micros(get(row, "created_at")?)?,
        updated_at: from_micros(get(row, "updated_at")?)?,
        version: get(row, "version")?,
    })
}
