//! Handing orgs over, deprovisioning records, dormant memberships, revoking a user's credentials and purging an org's data: one implementation of [`Lifecycle`] for both databases.

use async_trait::async_trait;
use steward_core::{OrgId, UserId};
use time::OffsetDateTime;
use uuid::Uuid;

use super::stmt::Columns;
use super::{Exec, Stmt, credentials};
use crate::StoreResult;
use crate::model::*;
use crate::rows::*;
use crate::traits::*;

#[async_trait]
impl<E: Exec> Lifecycle for E {
    async fn set_memberships_dormant(&mut self, user: UserId, dormant: bool) -> StoreResult<()> {
        let statements = ["memberships", "team_members"].map(|table| {
            Stmt::new(format!("UPDATE {table} SET dormant = ? WHERE user_id = ? AND ended_at IS NULL"))
                .bind(dormant)
                .bind(user.to_string())
        });
        self.run_all(statements.into()).await?;
        Ok(())
    }

    async fn revoke_all_credentials(&mut self, user: UserId, at: OffsetDateTime) -> StoreResult<u64> {
        let statements =
            credentials::REVOKE_ALL_OF_USER.map(|sql| Stmt::new(sql).bind(micros(at)).bind(user.to_string()));
        self.run_all(statements.into()).await
    }

    async fn orgs_owned_by(&mut self, user: UserId) -> StoreResult<Vec<OrgRow>> {
        self.rows(Stmt::new("SELECT * FROM orgs WHERE owner_id = ? ORDER BY id").bind(user.to_string())).await
    }

    async fn insert_handover(&mut self, h: &HandoverRow) -> StoreResult<()> {
        self.insert(h).await
    }

    async fn open_handovers_from(&mut self, user: UserId) -> StoreResult<Vec<HandoverRow>> {
        self.rows(
            Stmt::new("SELECT * FROM ownership_handovers WHERE from_user_id = ? AND closed_at IS NULL ORDER BY id")
                .bind(user.to_string()),
        )
        .await
    }

    async fn close_handover(&mut self, id: Uuid, at: OffsetDateTime) -> StoreResult<()> {
        self.apply(Columns::default().set("closed_at", micros(at)).update("ownership_handovers", id.to_string())).await
    }

    async fn placeholder_user(&mut self) -> StoreResult<Option<UserRow>> {
        let sql =
            format!("SELECT {} FROM users u WHERE u.kind = 'placeholder' ORDER BY u.id LIMIT 1", Self::USER_COLUMNS);
        self.row(Stmt::new(sql)).await
    }

    async fn insert_deprovision(&mut self, r: &DeprovisionRow) -> StoreResult<()> {
        self.insert(r).await
    }

    async fn deprovisions_of(&mut self, org: OrgId) -> StoreResult<Vec<DeprovisionRow>> {
        self.rows(
            Stmt::new("SELECT * FROM deprovision_records WHERE org_id = ? ORDER BY id DESC").bind(org.to_string()),
        )
        .await
    }

    async fn purge_org_data(&mut self, org: OrgId, owner: UserId) -> StoreResult<u64> {
        let mut erased = 0;
        for sql in [
            "DELETE FROM team_members WHERE team_id IN (SELECT id FROM teams WHERE org_id = ?)",
            "DELETE FROM scim_groups WHERE team_id IN (SELECT id FROM teams WHERE org_id = ?)",
            "DELETE FROM assets WHERE org_id = ?",
            "DELETE FROM teams WHERE org_id = ?",
            "DELETE FROM invitations WHERE org_id = ?",
            "DELETE FROM usage_alerts WHERE org_id = ?",
            "DELETE FROM usage_periods WHERE org_id = ?",
            "DELETE FROM usage_days WHERE org_id = ?",
            "DELETE FROM usage_events WHERE org_id = ?",
            "DELETE FROM deprovision_records WHERE org_id = ?",
            "DELETE FROM ownership_handovers WHERE org_id = ?",
            // The org's own emails (usage alerts, its activity), sent or not.
            "DELETE FROM outbox WHERE org_id = ?",
            "UPDATE audit_events SET personal = NULL WHERE org_id = ? AND personal IS NOT NULL",
        ] {
            erased += self.run(Stmt::new(sql).bind(org.to_string())).await?;
        }
        erased += self.run(Stmt::new(
            "DELETE FROM memberships WHERE org_id = ? AND NOT (user_id = ? AND role = 'owner' AND ended_at IS NULL)",
        )
        .bind(org.to_string())
        .bind(owner.to_string())).await?;
        Ok(erased)
    }

    async fn close_deprovision(&mut self, id: Uuid, at: OffsetDateTime, by: Option<UserId>) -> StoreResult<()> {
        let restored = Columns::default().set("restored_at", micros(at)).set("restored_by", by.map(|u| u.to_string()));
        self.apply_one(restored.update_open("deprovision_records", id.to_string(), &["restored_at"])).await
    }
}
