//! Webhooks and their deliveries: one implementation of [`Webhooks`] for both databases; a backend may remember the webhooks between transactions ([`Exec::remembered_webhooks`]).

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Exec, Stmt};
use crate::StoreResult;
use crate::model::*;
use crate::rows::*;
use crate::traits::*;

#[async_trait]
impl<E: Exec> Webhooks for E {
    async fn insert_webhook(&mut self, h: &WebhookRow) -> StoreResult<()> {
        self.forget_webhooks();
        self.apply(Stmt::new(
            "INSERT INTO webhooks (id, url, events, secret, created_at, created_by, disabled_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(h.id.to_string())
        .bind(&h.url)
        .bind(json_text(&h.events)?)
        .bind(&h.secret)
        .bind(micros(h.created_at))
        .bind(h.created_by.map(|u| u.to_string()))
        .bind(h.disabled_at.map(micros))).await
    }

    async fn webhooks(&mut self) -> StoreResult<Vec<WebhookRow>> {
        // Every write transaction fans its events out to them: a backend may keep them.
        if let Some(known) = self.remembered_webhooks() {
            return Ok(known);
        }
        let rows = self.fetch(Stmt::new("SELECT * FROM webhooks WHERE disabled_at IS NULL ORDER BY id DESC")).await?;
        let hooks = rows.iter().map(WebhookRow::from_row).collect::<StoreResult<Vec<_>>>()?;
        self.remember_webhooks(&hooks);
        Ok(hooks)
    }

    async fn disable_webhook(&mut self, id: Uuid, at: OffsetDateTime) -> StoreResult<()> {
        self.forget_webhooks();
        self.apply_one(
            Stmt::new("UPDATE webhooks SET disabled_at = ? WHERE id = ? AND disabled_at IS NULL")
                .bind(micros(at))
                .bind(id.to_string()),
        )
        .await
    }

    async fn enqueue_delivery(&mut self, d: &DeliveryRow) -> StoreResult<()> {
        self.apply(Stmt::new(
            "INSERT INTO webhook_deliveries (id, webhook_id, event_type, payload, created_at, attempts, next_attempt_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(d.id.to_string())
        .bind(d.webhook_id.to_string())
        .bind(&d.event_type)
        .bind(&d.payload)
        .bind(micros(d.created_at))
        .bind(d.attempts)
        .bind(micros(d.next_attempt_at))).await
    }

    async fn claim_deliveries(
        &mut self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: u32,
    ) -> StoreResult<Vec<DeliveryRow>> {
        let rows = self.fetch(Stmt::new(format!(
            "SELECT * FROM webhook_deliveries WHERE delivered_at IS NULL AND failed_at IS NULL AND next_attempt_at <= ? \
             AND (locked_until IS NULL OR locked_until <= ?) ORDER BY next_attempt_at LIMIT ?{}",
            Self::CLAIM_LOCK
        ))
        .bind(micros(now))
        .bind(micros(now))
        .bind(i64::from(limit))).await?;
        let claimed: Vec<DeliveryRow> = rows.iter().map(DeliveryRow::from_row).collect::<StoreResult<_>>()?;
        for d in &claimed {
            self.run(
                Stmt::new("UPDATE webhook_deliveries SET locked_until = ?, attempts = attempts + 1 WHERE id = ?")
                    .bind(micros(lease_until))
                    .bind(d.id.to_string()),
            )
            .await?;
        }
        Ok(claimed)
    }

    async fn record_attempt(
        &mut self,
        id: Uuid,
        status: Option<i64>,
        error: Option<&str>,
        delivered: Option<OffsetDateTime>,
        next: Option<OffsetDateTime>,
        failed: Option<OffsetDateTime>,
    ) -> StoreResult<()> {
        self.apply(
            Stmt::new(
                "UPDATE webhook_deliveries SET last_status = ?, last_error = ?, delivered_at = ?, \
             next_attempt_at = COALESCE(?, next_attempt_at), failed_at = ?, locked_until = NULL WHERE id = ?",
            )
            .bind(status)
            .bind(error)
            .bind(delivered.map(micros))
            .bind(next.map(micros))
            .bind(failed.map(micros))
            .bind(id.to_string()),
        )
        .await
    }

    async fn deliveries_of(&mut self, hook: Uuid, before: Option<Uuid>, limit: u32) -> StoreResult<Vec<DeliveryRow>> {
        self.rows(Stmt::new(
            "SELECT * FROM webhook_deliveries WHERE webhook_id = ? AND (? IS NULL OR id < ?) ORDER BY id DESC LIMIT ?",
        )
        .bind(hook.to_string())
        .bind(before.map(|b| b.to_string()))
        .bind(before.map(|b| b.to_string()))
        .bind(i64::from(limit))).await
    }

    async fn delivery(&mut self, id: Uuid) -> StoreResult<Option<DeliveryRow>> {
        let row =
            self.fetch_one(Stmt::new("SELECT * FROM webhook_deliveries WHERE id = ?").bind(id.to_string())).await?;
        row.as_ref().map(DeliveryRow::from_row).transpose()
    }

    async fn redeliver(&mut self, id: Uuid, now: OffsetDateTime) -> StoreResult<()> {
        self.apply_one(Stmt::new(
            "UPDATE webhook_deliveries SET delivered_at = NULL, failed_at = NULL, locked_until = NULL, next_attempt_at = ? \
             WHERE id = ?",
        )
        .bind(micros(now))
        .bind(id.to_string())).await
    }
}
