//! Organizations and their memberships: one implementation of [`Orgs`] for both databases.

use async_trait::async_trait;
use steward_core::{OrgId, OrgRole, UserId};
use time::OffsetDateTime;

use super::stmt::Columns;
use super::{Exec, Stmt};
use crate::StoreResult;
use crate::model::*;
use crate::rows::*;
use crate::traits::*;

/// What an org's insert and update both write.
fn org_columns(o: &OrgRow) -> StoreResult<Columns> {
    Ok(Columns::default()
        .set("name", &o.name)
        .set("external_id", &o.external_id)
        .set("owner_id", o.owner_id.to_string())
        .set("state", o.state.as_str())
        .set("timezone", &o.timezone)
        .set("country", &o.country)
        .set("license", o.license.to_column()?)
        .set("expires_at", o.license.expires_at.map(micros))
        .set("updated_at", micros(o.updated_at)))
}

/// The current members of `org` (dormant ones too), each with the user's identity; a caller
/// adds the order and the page.
fn current_members(org: OrgId) -> Stmt {
    Stmt::new(
        "SELECT m.org_id, m.user_id, u.email, u.name, u.status, u.kind, m.role, m.dormant, m.created_at \
         FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.org_id = ? AND m.ended_at IS NULL",
    )
    .bind(org.to_string())
}

#[async_trait]
impl<E: Exec> Orgs for E {
    async fn insert_org(&mut self, o: &OrgRow) -> StoreResult<()> {
        let columns = org_columns(o)?.set("id", o.id.to_string()).set("created_at", micros(o.created_at));
        self.run(columns.set("version", o.version).insert("orgs")).await.map(drop)
    }

    async fn org(&mut self, id: OrgId) -> StoreResult<Option<OrgRow>> {
        self.row(Stmt::new("SELECT * FROM orgs WHERE id = ?").bind(id.to_string())).await
    }

    async fn list_orgs(&mut self, f: &OrgFilter) -> StoreResult<Vec<OrgRow>> {
        let member = " AND EXISTS (SELECT 1 FROM memberships m WHERE m.org_id = o.id AND m.user_id = ? \
                      AND m.ended_at IS NULL AND NOT m.dormant)";
        let query = Stmt::new("SELECT o.* FROM orgs o WHERE 1 = 1")
            .and_if(member, f.member.map(|m| m.to_string()))
            .and_if(" AND o.external_id = ?", f.external_id.clone())
            .newest_first("o.id", f.before.map(|b| b.to_string()), f.limit);
        self.rows(query).await
    }

    async fn update_org(&mut self, o: &OrgRow) -> StoreResult<()> {
        self.apply_one(org_columns(o)?.update_versioned("orgs", o.id.to_string(), o.version)).await
    }

    async fn membership_spans(
        &mut self,
        org: OrgId,
    ) -> StoreResult<Vec<(UserId, OffsetDateTime, Option<OffsetDateTime>)>> {
        let spans = Stmt::new(
            "SELECT m.user_id, m.created_at, m.ended_at FROM memberships m JOIN users u ON u.id = m.user_id \
             WHERE m.org_id = ? AND u.kind = 'person' ORDER BY m.created_at",
        );
        let rows = self.fetch(spans.bind(org.to_string())).await?;
        rows.iter()
            .map(|r| {
                let user = parse(&get::<String>(r, "user_id")?, "user id")?;
                Ok((user, from_micros(get(r, "created_at")?)?, opt_micros(get(r, "ended_at")?)?))
            })
            .collect()
    }

    async fn orgs_by_state(&mut self) -> StoreResult<Vec<(steward_core::OrgState, u64)>> {
        let rows = self.fetch(Stmt::new("SELECT state, COUNT(*) AS n FROM orgs GROUP BY state ORDER BY state")).await?;
        rows.iter().map(|r| Ok((parse(&get::<String>(r, "state")?, "org state")?, count(get(r, "n")?)))).collect()
    }

    async fn active_orgs_with_usage(
        &mut self,
        at: OffsetDateTime,
        after: Option<OrgId>,
        limit: u32,
    ) -> StoreResult<Vec<(OrgRow, Option<UsageRow>)>> {
        let page = Stmt::new(
            "SELECT o.*, u.period_start AS usage_start, u.period_end AS usage_end, \
             u.operations_used AS usage_operations, u.transfer_used AS usage_transfer \
             FROM orgs o LEFT JOIN usage_periods u ON u.org_id = o.id AND u.period_start <= ? AND u.period_end > ? \
             WHERE o.state = 'active' AND o.id > ? ORDER BY o.id LIMIT ?",
        )
        .bind(micros(at))
        .bind(micros(at))
        .bind(after.map_or_else(String::new, |id| id.to_string()))
        .bind(i64::from(limit));
        let rows = self.fetch(page).await?;
        rows.iter()
            .map(|r| {
                let org = OrgRow::from_row(r)?;
                let usage = match get::<Option<i64>>(r, "usage_start")? {
                    Some(start) => Some(UsageRow {
                        org_id: org.id,
                        period_start: from_micros(start)?,
                        period_end: from_micros(get(r, "usage_end")?)?,
                        operations_used: count(get(r, "usage_operations")?),
                        transfer_used: count(get(r, "usage_transfer")?),
                    }),
                    None => None,
                };
                Ok((org, usage))
            })
            .collect()
    }

    async fn newly_expired_orgs(&mut self, now: OffsetDateTime, limit: u32) -> StoreResult<Vec<OrgRow>> {
        self.rows(Stmt::new(
            "SELECT o.* FROM orgs o WHERE o.expires_at IS NOT NULL AND o.expires_at <= ? AND o.state <> 'purged' \
             AND NOT EXISTS (SELECT 1 FROM expiry_announcements a WHERE a.org_id = o.id AND a.expires_at = o.expires_at) \
             ORDER BY o.expires_at LIMIT ?",
        )
        .bind(micros(now))
        .bind(i64::from(limit))).await
    }

    async fn announce_expiry(&mut self, org: OrgId, expires_at: OffsetDateTime) -> StoreResult<()> {
        self.apply(
            Stmt::new(
                "INSERT INTO expiry_announcements (org_id, expires_at) VALUES (?, ?) \
             ON CONFLICT (org_id) DO UPDATE SET expires_at = excluded.expires_at",
            )
            .bind(org.to_string())
            .bind(micros(expires_at)),
        )
        .await
    }

    async fn members(&mut self, org: OrgId) -> StoreResult<Vec<MemberRow>> {
        self.rows(current_members(org).append(" ORDER BY m.created_at, m.id")).await
    }

    async fn member(&mut self, org: OrgId, user: UserId) -> StoreResult<Option<MemberRow>> {
        self.row(current_members(org).append(" AND m.user_id = ?").bind(user.to_string())).await
    }

    async fn members_page(&mut self, org: OrgId, after: Option<UserId>, limit: u32) -> StoreResult<Vec<MemberRow>> {
        let page = current_members(org)
            .and_if(" AND m.user_id > ?", after.map(|a| a.to_string()))
            .append(" ORDER BY m.user_id LIMIT ?");
        self.rows(page.bind(i64::from(limit))).await
    }

    async fn members_newest_first(
        &mut self,
        org: OrgId,
        before: Option<(OffsetDateTime, UserId)>,
        limit: u32,
    ) -> StoreResult<Vec<MemberRow>> {
        let mut page = current_members(org);
        if let Some((joined, user)) = before {
            let earlier = " AND (m.created_at < ? OR (m.created_at = ? AND m.user_id < ?))";
            page = page.append(earlier).bind(micros(joined)).bind(micros(joined)).bind(user.to_string());
        }
        let page = page.append(" ORDER BY m.created_at DESC, m.user_id DESC LIMIT ?");
        self.rows(page.bind(i64::from(limit))).await
    }

    async fn insert_membership(
        &mut self,
        org: OrgId,
        user: UserId,
        role: OrgRole,
        at: OffsetDateTime,
    ) -> StoreResult<()> {
        self.apply(MemberOf::Org(org).join(user, role.as_str(), at)).await
    }

    async fn set_membership_role(&mut self, org: OrgId, user: UserId, role: OrgRole) -> StoreResult<()> {
        self.apply_one(MemberOf::Org(org).update(user, Columns::default().set("role", role.as_str()))).await
    }

    async fn end_membership(&mut self, org: OrgId, user: UserId, at: OffsetDateTime) -> StoreResult<()> {
        self.apply_one(MemberOf::Org(org).update(user, Columns::default().set("ended_at", micros(at)))).await?;
        self.apply(
            Stmt::new(
                "UPDATE team_members SET ended_at = ? WHERE user_id = ? AND ended_at IS NULL \
             AND team_id IN (SELECT id FROM teams WHERE org_id = ?)",
            )
            .bind(micros(at))
            .bind(user.to_string())
            .bind(org.to_string()),
        )
        .await
    }

    async fn memberships_of(&mut self, user: UserId) -> StoreResult<Vec<MembershipOfUser>> {
        self.rows(
            Stmt::new(
                "SELECT m.org_id, o.name AS org_name, o.license, m.role, m.dormant, m.notifications FROM memberships m \
             JOIN orgs o ON o.id = m.org_id WHERE m.user_id = ? AND m.ended_at IS NULL ORDER BY o.name",
            )
            .bind(user.to_string()),
        )
        .await
    }

    async fn set_org_notifications(
        &mut self,
        org: OrgId,
        user: UserId,
        settings: &std::collections::BTreeMap<String, bool>,
    ) -> StoreResult<()> {
        let settings = Columns::default().set("notifications", settings.to_column()?);
        self.apply_one(MemberOf::Org(org).update(user, settings)).await
    }

    async fn membership_in(&mut self, org: OrgId, user: UserId) -> StoreResult<Option<MembershipOfUser>> {
        let sql = "SELECT m.org_id, o.name AS org_name, o.license, m.role, m.dormant, m.notifications FROM memberships m \
                   JOIN orgs o ON o.id = m.org_id WHERE m.org_id = ? AND m.user_id = ? AND m.ended_at IS NULL";
        self.row(Stmt::new(sql).bind(org.to_string()).bind(user.to_string())).await
    }
}

/// Whose membership a statement is about: an org's (`memberships`) or a team's (`team_members`),
/// kept alike: one current row per person, ended rather than deleted.
#[derive(Debug, Clone, Copy)]
pub(super) enum MemberOf {
    Org(OrgId),
    Team(steward_core::TeamId),
}

impl MemberOf {
    /// Its table, and the column naming the org or team there.
    fn table(self) -> (&'static str, &'static str) {
        match self {
            MemberOf::Org(_) => ("memberships", "org_id"),
            MemberOf::Team(_) => ("team_members", "team_id"),
        }
    }

    fn id(self) -> String {
        match self {
            MemberOf::Org(org) => org.to_string(),
            MemberOf::Team(team) => team.to_string(),
        }
    }

    /// A new current membership of `user` with `role` from `at`, not dormant.
    pub(super) fn join(self, user: UserId, role: &str, at: OffsetDateTime) -> Stmt {
        let (table, of) = self.table();
        Columns::default()
            .set("id", uuid::Uuid::now_v7().to_string())
            .set(of, self.id())
            .set("user_id", user.to_string())
            .set("role", role)
            .set("dormant", false)
            .set("created_at", micros(at))
            .insert(table)
    }

    /// What `columns` change of `user`'s current membership.
    pub(super) fn update(self, user: UserId, columns: Columns) -> Stmt {
        let (table, of) = self.table();
        let current = format!("{of} = ? AND user_id = ? AND ended_at IS NULL");
        columns.update_where(table, &current, [self.id(), user.to_string()])
    }
}
