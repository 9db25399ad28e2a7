//! What the API answers with: the JSON views of stored rows.

use serde::Serialize;
use steward_store::{ApiTokenRow, MemberRow, OrgRow, SessionRow, TeamMemberRow, TeamRow, UserRow};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::schema::LicenseSchema;

/// A user.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"id": "01936f0e-6d4c-7bd2-9c11-5a3f2b8e4a10", "email": "ada@acme.example", "name": "Ada Lovelace", "status": "active", "kind": "person", "locale": "en-GB", "timezone": "Europe/London", "instance_roles": [], "created_at": "2026-11-02T09:14:07Z", "updated_at": "2026-12-01T16:40:12Z", "last_login_at": "2026-12-07T08:02:51Z", "deactivate_at": null, "version": 4}))]
pub struct UserView {
    pub id: String,
    pub email: String,
    pub name: String,
    #[schema(value_type = crate::schema::UserStatusSchema)]
    pub status: String,
    /// `person`, or a system account: the `placeholder` owner that holds orgs, or a SCIM
    /// token's `service` user. A system account never signs in, gets no email and is never a seat.
    #[schema(value_type = crate::schema::UserKindSchema)]
    pub kind: String,
    pub locale: Option<String>,
    pub timezone: Option<String>,
    /// Names of the user's instance roles.
    pub instance_roles: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_login_at: Option<OffsetDateTime>,
    /// A scheduled deactivation, if any.
    #[serde(with = "time::serde::rfc3339::option")]
    pub deactivate_at: Option<OffsetDateTime>,
    pub version: i64,
}

impl crate::answer::Versioned for UserView {
    fn version(&self) -> i64 {
        self.version
    }
}

impl From<&UserRow> for UserView {
    fn from(u: &UserRow) -> Self {
        UserView {
            id: u.id.to_string(),
            email: u.email.clone(),
            name: u.name.clone(),
            status: u.status.to_string(),
            kind: u.kind.as_str().to_owned(),
            locale: u.locale.clone(),
            timezone: u.timezone.clone(),
            instance_roles: u.instance_roles.iter().map(|r| r.to_string()).collect(),
            created_at: u.created_at,
            updated_at: u.updated_at,
            last_login_at: u.last_login_at,
            deactivate_at: u.deactivate_at,
            version: u.version,
        }
    }
}

/// An organization.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"id": "01936f0e-9a21-7c33-8b0d-1e2f3a4b5c6d", "name": "Acme", "external_id": "crm-4711", "owner_id": "01936f0e-6d4c-7bd2-9c11-5a3f2b8e4a10", "state": "active", "frozen": false, "timezone": "Europe/Berlin", "country": "DE", "license": {"operations": 100000, "transfer": null, "restart_period": "monthly", "users": 25, "teams": null, "data_stores": null, "data_store_bytes": null, "file_bytes": null, "scenarios": null, "min_interval_minutes": null, "api_requests_per_minute": 600, "features": {"sso": true}, "audit_log_days": 90, "expires_at": null}, "created_at": "2026-11-02T09:20:00Z", "updated_at": "2026-11-30T12:00:00Z", "version": 3}))]
pub struct OrgView {
    pub id: String,
    pub name: String,
    pub external_id: Option<String>,
    pub owner_id: String,
    #[schema(value_type = crate::schema::OrgStateSchema)]
    pub state: String,
    /// Derived from the license and usage, never stored.
    pub frozen: bool,
    pub timezone: Option<String>,
    pub country: Option<String>,
    #[schema(value_type = LicenseSchema)]
    pub license: steward_core::License,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    pub version: i64,
}

impl crate::answer::Versioned for OrgView {
    fn version(&self) -> i64 {
        self.version
    }
}

impl OrgView {
    /// The view of `o`, with `frozen` as the caller derived it.
    pub fn new(o: &OrgRow, frozen: bool) -> Self {
        OrgView {
            id: o.id.to_string(),
            name: o.name.clone(),
            external_id: o.external_id.clone(),
            owner_id: o.owner_id.to_string(),
            state: o.state.to_string(),
            frozen,
            timezone: o.timezone.clone(),
            country: o.country.clone(),
            license: o.license.clone(),
            created_at: o.created_at,
            updated_at: o.updated_at,
            version: o.version,
        }
    }
}

/// A member of an org.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"user_id": "01936f0e-6d4c-7bd2-9c11-5a3f2b8e4a10", "email": "ada@acme.example", "name": "Ada Lovelace", "role": "admin", "status": "active", "dormant": false, "created_at": "2026-11-02T09:20:00Z"}))]
pub struct MemberView {
    pub user_id: String,
    pub email: String,
    pub name: String,
    #[schema(value_type = crate::schema::OrgRoleSchema)]
    pub role: String,
    /// The user's status.
    #[schema(value_type = crate::schema::UserStatusSchema)]
    pub status: String,
    /// `person`, or the `placeholder` owner (a system account holding the org, never a seat).
    #[schema(value_type = crate::schema::UserKindSchema)]
    pub kind: String,
    /// Kept while the user is deactivated, and restored on reactivation.
    pub dormant: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl From<&MemberRow> for MemberView {
    fn from(m: &MemberRow) -> Self {
        MemberView {
            user_id: m.user_id.to_string(),
            email: m.email.clone(),
            name: m.name.clone(),
            role: m.role.to_string(),
            status: m.status.to_string(),
            kind: m.kind.as_str().to_owned(),
            dormant: m.dormant,
            created_at: m.created_at,
        }
    }
}

/// A member of a team.
#[derive(Debug, Serialize, ToSchema)]
pub struct TeamMemberView {
    pub user_id: String,
    #[schema(value_type = crate::schema::TeamRoleSchema)]
    pub role: String,
    pub dormant: bool,
}

impl From<&TeamMemberRow> for TeamMemberView {
    fn from(m: &TeamMemberRow) -> Self {
        TeamMemberView { user_id: m.user_id.to_string(), role: m.role.to_string(), dormant: m.dormant }
    }
}

/// A team with its members.
#[derive(Debug, Serialize, ToSchema)]
pub struct TeamView {
    pub id: String,
    pub org_id: String,
    pub name: String,
    pub members: Vec<TeamMemberView>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    pub version: i64,
}

impl crate::answer::Versioned for TeamView {
    fn version(&self) -> i64 {
        self.version
    }
}

impl TeamView {
    /// The view of a team and its current members.
    pub fn new(t: &TeamRow, members: &[TeamMemberRow]) -> Self {
        TeamView {
            id: t.id.to_string(),
            org_id: t.org_id.to_string(),
            name: t.name.clone(),
            members: members.iter().map(TeamMemberView::from).collect(),
            created_at: t.created_at,
            version: t.version,
        }
    }
}

/// A login session (never its secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    pub id: String,
    pub user_id: String,
    /// The admin signed in as this user, for an impersonation session.
    pub impersonator_id: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// Whether this is the session making the request.
    pub current: bool,
}

impl SessionView {
    /// The view of `s`; `current` marks the caller's own.
    pub fn new(s: &SessionRow, current: bool) -> Self {
        SessionView {
            id: s.id.to_string(),
            user_id: s.user_id.to_string(),
            impersonator_id: s.impersonator_id.map(|i| i.to_string()),
            created_at: s.created_at,
            expires_at: s.expires_at,
            ip: s.ip.clone(),
            user_agent: s.user_agent.clone(),
            current,
        }
    }
}

/// An API token (the secret is shown only at creation).
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenView {
    pub id: String,
    pub name: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// What it may do beyond acting as its user.
    #[schema(value_type = Vec<String>)]
    pub scopes: Vec<steward_core::TokenScope>,
}

impl From<&ApiTokenRow> for TokenView {
    fn from(t: &ApiTokenRow) -> Self {
        TokenView {
            id: t.id.to_string(),
            name: t.name.clone(),
            created_at: t.created_at,
            expires_at: t.expires_at,
            scopes: t.scopes.clone(),
        }
    }
}

macro_rules! list_type {
    ($name:ident, $item:ty) => {
        /// A page of a list, newest first.
        #[derive(Debug, Serialize, ToSchema)]
        pub struct $name {
            pub items: Vec<$item>,
            /// Pass as `cursor` for the next page; null on the last.
            pub next_cursor: Option<String>,
        }
    };
}

/// One event of the audit log.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEventView {
    pub id: String,
    /// Position in the chain, from 1 without gaps.
    pub seq: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Dotted event type such as `org.member_added`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The user in whose name it happened; null for Steward itself.
    pub actor_id: Option<String>,
    /// The admin impersonating the actor, if any.
    pub impersonator_id: Option<String>,
    pub target_type: String,
    pub target_id: String,
    pub org_id: Option<String>,
    /// Facts without personal data.
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
    /// Personal data (names, emails, reasons); null when there was none or it was erased.
    #[schema(value_type = Option<Object>)]
    pub personal: Option<serde_json::Value>,
    pub prev_hash: String,
    pub hash: String,
}

impl From<&steward_core::AuditRecord> for AuditEventView {
    fn from(r: &steward_core::AuditRecord) -> Self {
        AuditEventView {
            id: r.id.to_string(),
            seq: r.seq,
            at: r.at,
            kind: r.kind.clone(),
            actor_id: r.actor_id.map(|a| a.to_string()),
            impersonator_id: r.impersonator_id.map(|a| a.to_string()),
            target_type: r.target_type.clone(),
            target_id: r.target_id.clone(),
            org_id: r.org_id.map(|o| o.to_string()),
            detail: serde_json::from_str(&r.detail).unwrap_or(serde_json::Value::Null),
            personal: r.personal.as_deref().and_then(|p| serde_json::from_str(p).ok()),
            prev_hash: r.prev_hash.clone(),
            hash: r.hash.clone(),
        }
    }
}

/// An invitation to an org, and what became of it.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationView {
    pub id: String,
    pub org_id: Option<String>,
    /// The org's name (empty for an invitation to the instance).
    pub org_name: String,
    /// The invited user, for callers who may read users and for the invited user; null otherwise.
    pub user_id: Option<String>,
    pub email: String,
    #[schema(value_type = Option<crate::schema::OrgRoleSchema>)]
    pub role: Option<String>,
    pub team_ids: Vec<String>,
    /// `pending` until it is accepted, revoked or expires.
    #[schema(value_type = crate::schema::InvitationStatusSchema)]
    pub status: &'static str,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

impl InvitationView {
    /// The view of `row` at `now`, to `email` (shown with `user_id` only to those who may see it).
    pub fn new(
        row: &steward_store::InvitationRow,
        user_id: Option<String>,
        email: &str,
        org_name: &str,
        now: OffsetDateTime,
    ) -> Self {
        let status = match row {
            r if r.accepted_at.is_some() => "accepted",
            r if r.cancelled_at.is_some() => "revoked",
            r if r.expires_at <= now => "expired",
            _ => "pending",
        };
        InvitationView {
            id: row.id.to_string(),
            org_id: row.org_id.map(|o| o.to_string()),
            org_name: org_name.to_owned(),
            user_id,
            email: email.to_owned(),
            role: row.role.map(|r| r.to_string()),
            team_ids: row.team_ids.iter().map(|t| t.to_string()).collect(),
            status,
            created_at: row.created_at,
            expires_at: row.expires_at,
        }
    }
}

list_type!(InvitationList, InvitationView);
list_type!(UserList, UserView);
list_type!(OrgList, OrgView);
list_type!(MemberList, MemberView);
list_type!(TeamList, TeamView);
list_type!(SessionList, SessionView);
list_type!(TokenList, TokenView);
list_type!(AuditList, AuditEventView);

/// The view of an org with `frozen` derived from this period's usage.
pub async fn org_view(
    tx: &mut dyn steward_store::Tx,
    org: &OrgRow,
    now: OffsetDateTime,
) -> crate::error::ApiResult<OrgView> {
    Ok(OrgView::new(org, steward_ops::orgs::frozen_now(tx, org, now).await?))
}
