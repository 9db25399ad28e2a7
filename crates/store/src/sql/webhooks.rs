//! Webhooks and their deliveries: one implementation of [`Webhooks`] for both databases; a backend may remember the webhooks between transactions ([`Exec::remembered_webhooks`]).

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use super::stmt::Columns;
use super::{Exec, Stmt};
use crate::StoreResult;
use crate::model::*;
use crate::rows::*;
use crate::traits::*;

#[async_trait]
impl<E: Exec> Webhooks for E {
    async fn insert_webhook(&mut self, h: &WebhookRow) -> StoreResult<()> {
        self.forget_webhooks();
        self.insert(h).await
    }

    async fn webhooks(&mut self) -> StoreResult<Vec<WebhookRow>> {
        // Every write transaction fans its events out to them: a backend may keep them.
        if let Some(known) = self.remembered_webhooks() {
            return Ok(known);
        }
        let hooks: Vec<WebhookRow> =
            self.rows(Stmt::new("SELECT * FROM webhooks WHERE disabled_at IS NULL ORDER BY id DESC")).await?;
        self.remember_webhooks(&hooks);
        Ok(hooks)
    }

    async fn disable_webhook(&mut self, id: Uuid, at: OffsetDateTime) -> StoreResult<()> {
        self.forget_webhooks();
        let disabled = Columns::default().set("disabled_at", micros(at));
        self.apply_one(disabled.update_open("webhooks", id.to_string(), &["disabled_at"])).await
    }

    async fn enqueue_delivery(&mut self, d: &DeliveryRow) -> StoreResult<()> {
        self.insert(d).await
    }

    async fn claim_deliveries(
        &mut self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: u32,
    ) -> StoreResult<Vec<DeliveryRow>> {
        let ended = ["delivered_at", "failed_at"];
        super::outbox::claim(self, "webhook_deliveries", ended, now, lease_until, limit, |d: &DeliveryRow| d.id).await
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
        let page = Stmt::new("SELECT * FROM webhook_deliveries WHERE webhook_id = ?")
            .bind(hook.to_string())
            .newest_first("id", before.map(|b| b.to_string()), limit);
        self.rows(page).await
    }

    async fn delivery(&mut self, id: Uuid) -> StoreResult<Option<DeliveryRow>> {
        self.row(Stmt::new("SELECT * FROM webhook_deliveries WHERE id = ?").bind(id.to_string())).await
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
