//! Access reviews and their items: one implementation of [`Reviews`] for both databases.

use async_trait::async_trait;
use steward_core::UserId;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Exec, Stmt};
use crate::StoreResult;
use crate::model::*;
use crate::rows::*;
use crate::traits::*;

#[async_trait]
impl<E: Exec> Reviews for E {
    async fn insert_review(&mut self, r: &ReviewRow, items: &[ReviewItemRow]) -> StoreResult<()> {
        self.run(
            Stmt::new(
                "INSERT INTO access_reviews (id, org_id, inactive_days, created_at, created_by) VALUES (?, ?, ?, ?, ?)",
            )
            .bind(r.id.to_string())
            .bind(r.org_id.map(|o| o.to_string()))
            .bind(r.inactive_days)
            .bind(micros(r.created_at))
            .bind(r.created_by.map(|u| u.to_string())),
        )
        .await?;
        for i in items {
            self.run(
                Stmt::new(
                    "INSERT INTO access_review_items (review_id, user_id, email, last_login_at, roles, recommendation) \
                 VALUES (?, ?, ?, ?, ?, ?)",
                )
                .bind(r.id.to_string())
                .bind(i.user_id.to_string())
                .bind(&i.email)
                .bind(i.last_login_at.map(micros))
                .bind(json_text(&i.roles)?)
                .bind(&i.recommendation),
            )
            .await?;
        }
        Ok(())
    }

    async fn review(&mut self, id: Uuid) -> StoreResult<Option<(ReviewRow, Vec<ReviewItemRow>)>> {
        let Some(row) =
            self.fetch_one(Stmt::new("SELECT * FROM access_reviews WHERE id = ?").bind(id.to_string())).await?
        else {
            return Ok(None);
        };
        let review = ReviewRow::from_row(&row)?;
        let rows = self
            .fetch(
                Stmt::new("SELECT * FROM access_review_items WHERE review_id = ? ORDER BY email").bind(id.to_string()),
            )
            .await?;
        let items = rows.iter().map(ReviewItemRow::from_row).collect::<StoreResult<_>>()?;
        Ok(Some((review, items)))
    }

    async fn decide(&mut self, id: Uuid, user: UserId, decision: &str) -> StoreResult<()> {
        self.apply_one(
            Stmt::new("UPDATE access_review_items SET decision = ? WHERE review_id = ? AND user_id = ?")
                .bind(decision)
                .bind(id.to_string())
                .bind(user.to_string()),
        )
        .await
    }

    async fn complete_review(&mut self, id: Uuid, by: UserId, at: OffsetDateTime) -> StoreResult<()> {
        self.apply_one(
            Stmt::new(
                "UPDATE access_reviews SET completed_at = ?, completed_by = ? WHERE id = ? AND completed_at IS NULL",
            )
            .bind(micros(at))
            .bind(by.to_string())
            .bind(id.to_string()),
        )
        .await
    }
}
