//! The email outbox: one implementation of [`Outbox`] for both databases; how a claim locks its rows is the backend's ([`Exec::CLAIM_LOCK`]).

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
impl<E: Exec> Outbox for E {
    async fn enqueue(&mut self, m: &OutboxRow) -> StoreResult<()> {
        self.insert(m).await
    }

    async fn claim_due(
        &mut self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: u32,
    ) -> StoreResult<Vec<OutboxRow>> {
        claim(self, "outbox", ["sent_at", "dropped_at"], now, lease_until, limit, |m: &OutboxRow| m.id).await
    }

    async fn mark_sent(&mut self, id: Uuid, at: OffsetDateTime) -> StoreResult<()> {
        self.apply(released().set("sent_at", micros(at)).update("outbox", id.to_string())).await
    }

    async fn mark_dropped(&mut self, id: Uuid, at: OffsetDateTime, why: &str) -> StoreResult<()> {
        let dropped = released().set("dropped_at", micros(at)).set("last_error", why);
        self.apply(dropped.update("outbox", id.to_string())).await
    }

    async fn mark_retry(&mut self, id: Uuid, next_attempt_at: OffsetDateTime, error: &str) -> StoreResult<()> {
        let retry = released().set("next_attempt_at", micros(next_attempt_at)).set("last_error", error);
        self.apply(retry.update("outbox", id.to_string())).await
    }

    async fn outbox_for(&mut self, recipient: &str) -> StoreResult<Vec<OutboxRow>> {
        self.rows(Stmt::new("SELECT * FROM outbox WHERE recipient = ? ORDER BY id DESC").bind(recipient)).await
    }
}

/// An email's lease given up: what its delivery writes, whatever the outcome.
fn released() -> Columns {
    Columns::default().set("locked_until", None::<i64>)
}

/// Claims up to `limit` rows of an outbox — emails, or webhook deliveries — due at `now`, neither
/// ended (each column of `ended` NULL) nor leased to another worker: each is leased until
/// `lease_until` and its attempt counted, with one statement, and answered as it was read.
pub(super) async fn claim<E: Exec, R: FromRow + Send>(
    tx: &mut E,
    table: &str,
    ended: [&str; 2],
    now: OffsetDateTime,
    lease_until: OffsetDateTime,
    limit: u32,
    id: fn(&R) -> Uuid,
) -> StoreResult<Vec<R>> {
    let [a, b] = ended;
    let due = Stmt::new(format!(
        "SELECT * FROM {table} WHERE {a} IS NULL AND {b} IS NULL AND next_attempt_at <= ? \
         AND (locked_until IS NULL OR locked_until <= ?) ORDER BY next_attempt_at LIMIT ?{}",
        E::CLAIM_LOCK
    ));
    let claimed: Vec<R> = tx.rows(due.bind(micros(now)).bind(micros(now)).bind(i64::from(limit))).await?;
    if !claimed.is_empty() {
        let marks = vec!["?"; claimed.len()].join(", ");
        let lease =
            Stmt::new(format!("UPDATE {table} SET locked_until = ?, attempts = attempts + 1 WHERE id IN ({marks})"));
        tx.apply(lease.bind(micros(lease_until)).bind_each(claimed.iter().map(|r| id(r).to_string()))).await?;
    }
    Ok(claimed)
}
