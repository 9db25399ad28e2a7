//! Invitations and password resets: one implementation of [`Invitations`] for both databases.

use async_trait::async_trait;
use steward_core::{OrgId, UserId};
use time::OffsetDateTime;
use uuid::Uuid;

use super::stmt::Columns;
use super::{Exec, Stmt};
use crate::StoreResult;
use crate::model::*;
use crate::rows::*;
use crate::traits::*;

#[async_trait]
impl<E: Exec> Invitations for E {
    async fn insert_invitation(&mut self, i: &InvitationRow) -> StoreResult<()> {
        self.insert(i).await
    }

    async fn invitation_by_hash(&mut self, token_hash: &str) -> StoreResult<Option<InvitationRow>> {
        self.row(Stmt::new("SELECT * FROM invitations WHERE token_hash = ?").bind(token_hash)).await
    }

    async fn accept_invitation(&mut self, id: Uuid, at: OffsetDateTime) -> StoreResult<()> {
        self.apply_one(close_open(id, "accepted_at", at)).await
    }

    async fn cancel_invitations_of(&mut self, user: UserId, at: OffsetDateTime) -> StoreResult<u64> {
        let result = self.run(Stmt::new(
            "UPDATE invitations SET cancelled_at = ? WHERE user_id = ? AND accepted_at IS NULL AND cancelled_at IS NULL",
        )
        .bind(micros(at))
        .bind(user.to_string())).await?;
        Ok(result)
    }

    async fn invitation(&mut self, id: Uuid) -> StoreResult<Option<InvitationRow>> {
        self.row(Stmt::new("SELECT * FROM invitations WHERE id = ?").bind(id.to_string())).await
    }

    async fn open_invitations(
        &mut self,
        org: Option<OrgId>,
        user: Option<UserId>,
        now: OffsetDateTime,
        before: Option<Uuid>,
        limit: u32,
    ) -> StoreResult<Vec<InvitationRow>> {
        let open = Stmt::new(
            "SELECT * FROM invitations WHERE org_id IS NOT NULL AND accepted_at IS NULL AND cancelled_at IS NULL \
             AND expires_at > ?",
        );
        let query = open
            .bind(micros(now))
            .and_if(" AND org_id = ?", org.map(|o| o.to_string()))
            .and_if(" AND user_id = ?", user.map(|u| u.to_string()))
            .newest_first("id", before.map(|b| b.to_string()), limit);
        self.rows(query).await
    }

    async fn cancel_invitation(&mut self, id: Uuid, at: OffsetDateTime) -> StoreResult<()> {
        self.apply_one(close_open(id, "cancelled_at", at)).await
    }

    async fn insert_reset(&mut self, r: &ResetRow) -> StoreResult<()> {
        self.insert(r).await
    }

    async fn reset_by_hash(&mut self, token_hash: &str) -> StoreResult<Option<ResetRow>> {
        self.row(Stmt::new("SELECT * FROM password_resets WHERE token_hash = ?").bind(token_hash)).await
    }

    async fn use_reset(&mut self, id: Uuid, at: OffsetDateTime) -> StoreResult<()> {
        let used = Columns::default().set("used_at", micros(at));
        self.apply_one(used.update_open("password_resets", id.to_string(), &["used_at"])).await
    }

    async fn void_resets_of(&mut self, user: UserId, at: OffsetDateTime) -> StoreResult<u64> {
        let result = self
            .run(
                Stmt::new("UPDATE password_resets SET used_at = ? WHERE user_id = ? AND used_at IS NULL")
                    .bind(micros(at))
                    .bind(user.to_string()),
            )
            .await?;
        Ok(result)
    }
}

/// Closes the open invitation `id` by setting `column` (`accepted_at` or `cancelled_at`) to `at`;
/// one closed already matches nothing.
fn close_open(id: Uuid, column: &'static str, at: OffsetDateTime) -> Stmt {
    Columns::default().set(column, micros(at)).update_open(
        "invitations",
        id.to_string(),
        &["accepted_at", "cancelled_at"],
    )
}
