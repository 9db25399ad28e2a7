//! The email outbox: one implementation of [`Outbox`] for both databases; how a claim locks its rows is the backend's ([`Exec::CLAIM_LOCK`]).

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Exec, Stmt};
use crate::StoreResult;
use crate::model::*;
use crate::rows::*;
use crate::traits::*;

#[async_trait]
impl<E: Exec> Outbox for E {
    async fn enqueue(&mut self, m: &OutboxRow) -> StoreResult<()> {
        self.apply(
            Stmt::new(
                "INSERT INTO outbox (id, user_id, org_id, recipient, category, subject, body, created_at, attempts, \
             next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(m.id.to_string())
            .bind(m.user_id.map(|u| u.to_string()))
            .bind(m.org_id.map(|o| o.to_string()))
            .bind(&m.recipient)
            .bind(&m.category)
            .bind(&m.subject)
            .bind(&m.body)
            .bind(micros(m.created_at))
            .bind(m.attempts)
            .bind(micros(m.next_attempt_at)),
        )
        .await
    }

    async fn claim_due(
        &mut self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: u32,
    ) -> StoreResult<Vec<OutboxRow>> {
        let rows = self
            .fetch(
                Stmt::new(format!(
                    "SELECT * FROM outbox WHERE sent_at IS NULL AND dropped_at IS NULL AND next_attempt_at <= ? \
             AND (locked_until IS NULL OR locked_until <= ?) ORDER BY next_attempt_at LIMIT ?{}",
                    Self::CLAIM_LOCK
                ))
                .bind(micros(now))
                .bind(micros(now))
                .bind(i64::from(limit)),
            )
            .await?;
        let claimed: Vec<OutboxRow> = rows.iter().map(OutboxRow::from_row).collect::<StoreResult<_>>()?;
        for m in &claimed {
            self.run(
                Stmt::new("UPDATE outbox SET locked_until = ?, attempts = attempts + 1 WHERE id = ?")
                    .bind(micros(lease_until))
                    .bind(m.id.to_string()),
            )
            .await?;
        }
        Ok(claimed)
    }

    async fn mark_sent(&mut self, id: Uuid, at: OffsetDateTime) -> StoreResult<()> {
        self.apply(
            Stmt::new("UPDATE outbox SET sent_at = ?, locked_until = NULL WHERE id = ?")
                .bind(micros(at))
                .bind(id.to_string()),
        )
        .await
    }

    async fn mark_dropped(&mut self, id: Uuid, at: OffsetDateTime, why: &str) -> StoreResult<()> {
        self.apply(
            Stmt::new("UPDATE outbox SET dropped_at = ?, last_error = ?, locked_until = NULL WHERE id = ?")
                .bind(micros(at))
                .bind(why)
                .bind(id.to_string()),
        )
        .await
    }

    async fn mark_retry(&mut self, id: Uuid, next_attempt_at: OffsetDateTime, error: &str) -> StoreResult<()> {
        self.apply(
            Stmt::new("UPDATE outbox SET next_attempt_at = ?, last_error = ?, locked_until = NULL WHERE id = ?")
                .bind(micros(next_attempt_at))
                .bind(error)
                .bind(id.to_string()),
        )
        .await
    }

    async fn outbox_for(&mut self, recipient: &str) -> StoreResult<Vec<OutboxRow>> {
        let rows =
            self.fetch(Stmt::new("SELECT * FROM outbox WHERE recipient = ? ORDER BY id DESC").bind(recipient)).await?;
        rows.iter().map(OutboxRow::from_row).collect()
    }
}
