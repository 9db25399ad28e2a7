//! Teams and their members: one implementation of [`Teams`] for both databases.

use async_trait::async_trait;
use steward_core::{OrgId, TeamId, TeamRole, UserId};
use time::OffsetDateTime;

use super::orgs::MemberOf;
use super::stmt::Columns;
use super::{Exec, Stmt};
use crate::StoreResult;
use crate::model::*;
use crate::rows::*;
use crate::traits::*;

/// The columns of a team member, with its team's org.
const TEAM_MEMBER_COLUMNS: &str = "tm.team_id, t.org_id, tm.user_id, tm.role, tm.dormant";

/// What a team's insert and update both write.
fn team_columns(t: &TeamRow) -> Columns {
    Columns::default()
        .set("name", &t.name)
        .set("name_key", t.name.to_lowercase())
        .set("updated_at", micros(t.updated_at))
}

#[async_trait]
impl<E: Exec> Teams for E {
    async fn insert_team(&mut self, t: &TeamRow) -> StoreResult<()> {
        let columns = team_columns(t).set("id", t.id.to_string()).set("org_id", t.org_id.to_string());
        self.run(columns.set("created_at", micros(t.created_at)).set("version", t.version).insert("teams"))
            .await
            .map(drop)
    }

    async fn team(&mut self, id: TeamId) -> StoreResult<Option<TeamRow>> {
        self.row(Stmt::new("SELECT * FROM teams WHERE id = ? AND archived_at IS NULL").bind(id.to_string())).await
    }

    async fn teams_of_org(&mut self, org: OrgId, before: Option<TeamId>, limit: u32) -> StoreResult<Vec<TeamRow>> {
        let page = Stmt::new("SELECT * FROM teams WHERE org_id = ? AND archived_at IS NULL")
            .bind(org.to_string())
            .newest_first("id", before.map(|b| b.to_string()), limit);
        self.rows(page).await
    }

    async fn update_team(&mut self, t: &TeamRow) -> StoreResult<()> {
        self.apply_one(team_columns(t).update_versioned("teams", t.id.to_string(), t.version)).await
    }

    async fn team_members(&mut self, team: TeamId) -> StoreResult<Vec<TeamMemberRow>> {
        let sql = format!(
            "SELECT {TEAM_MEMBER_COLUMNS} FROM team_members tm JOIN teams t ON t.id = tm.team_id \
             WHERE tm.team_id = ? AND tm.ended_at IS NULL ORDER BY tm.created_at, tm.id"
        );
        self.rows(Stmt::new(sql).bind(team.to_string())).await
    }

    async fn put_team_member(
        &mut self,
        team: TeamId,
        user: UserId,
        role: TeamRole,
        at: OffsetDateTime,
    ) -> StoreResult<()> {
        let member = MemberOf::Team(team);
        if self.run(member.update(user, Columns::default().set("role", role.as_str()))).await? == 0 {
            self.apply(member.join(user, role.as_str(), at)).await?;
        }
        Ok(())
    }

    async fn end_team_member(&mut self, team: TeamId, user: UserId, at: OffsetDateTime) -> StoreResult<()> {
        self.apply_one(MemberOf::Team(team).update(user, Columns::default().set("ended_at", micros(at)))).await
    }

    async fn teams_of_user(&mut self, user: UserId) -> StoreResult<Vec<TeamMemberRow>> {
        let sql = format!(
            "SELECT {TEAM_MEMBER_COLUMNS} FROM team_members tm JOIN teams t ON t.id = tm.team_id \
             WHERE tm.user_id = ? AND tm.ended_at IS NULL ORDER BY t.name"
        );
        self.rows(Stmt::new(sql).bind(user.to_string())).await
    }
}
