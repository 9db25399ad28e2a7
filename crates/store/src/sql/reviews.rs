//! Access reviews and their items: one implementation of [`Reviews`] for both databases.

use async_trait::async_trait;
use steward_core::UserId;
use time::OffsetDateTime;
use uuid::Uuid;

use super::stmt::Columns;
use super::{Exec, Stmt};
use crate::StoreResult;
use crate::model::*;
use crate::rows::*;
use crate::traits::*;

#[async_trait]
impl<E: Exec> Reviews for E {
    async fn insert_review(&mut self, r: &ReviewRow, items: &[ReviewItemRow]) -> StoreResult<()> {
        self.insert(r).await?;
        for item in items {
            self.insert(item).await?;
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
        let items = Stmt::new("SELECT * FROM access_review_items WHERE review_id = ? ORDER BY email");
        Ok(Some((review, self.rows(items.bind(id.to_string())).await?)))
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
        let completed = Columns::default().set("completed_at", micros(at)).set("completed_by", by.to_string());
        self.apply_one(completed.update_open("access_reviews", id.to_string(), &["completed_at"])).await
    }
}
