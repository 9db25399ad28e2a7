//! Steward's operations: one function per change or question that more than one surface asks.
//!
//! An operation checks the actor's right over its target, loads what the rules of
//! `steward_core` decide from, applies the pure transition, and commits the state, its audit
//! events and its webhook deliveries in one transaction ([`commit`]); the change epoch then moves
//! ([`Changes`]), which makes every cached principal and answer stale. The surfaces of the
//! `steward` binary (JSON API, pages, SCIM, single sign-on, CLI, scheduler, access reviews) parse
//! their input, call the operation, and render its outcome in their own format.
//!
//! This crate knows neither HTTP nor SQL: it depends on the rules (`steward_core`) and the
//! storage traits (`steward_store`) only.

pub mod error;
pub mod events;
pub mod governance;
pub mod orgs;
pub mod ownership;
pub mod secrets;
pub mod users;

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::json;
use steward_core::AuditDraft;
use steward_store::{DeliveryRow, Tx};
use time::OffsetDateTime;

pub use error::{OpError, OpResult};
pub use events::EventType;

/// The change epochs of one running Steward: each moves after a committed change (here, or on
/// another node that shares the database), which makes whatever was read before it stale.
#[derive(Debug, Default)]
pub struct Changes {
    any: AtomicU64,
    scim_tokens: AtomicU64,
}

impl Changes {
    /// The epoch of every change: principals and kept answers are valid within one.
    pub fn epoch(&self) -> u64 {
        self.any.load(Ordering::SeqCst)
    }

    /// Moves the epoch of every change.
    pub fn changed(&self) {
        self.any.fetch_add(1, Ordering::SeqCst);
    }

    /// The SCIM token epoch: a SCIM token's answer depends on its own row alone, so only the
    /// revocation of a SCIM token (or a change on another node) moves it, and the tokens
    /// identity providers present stay kept while users are written.
    pub fn scim_token_epoch(&self) -> u64 {
        self.scim_tokens.load(Ordering::SeqCst)
    }

    /// Makes every kept SCIM token stale.
    pub fn scim_tokens_changed(&self) {
        self.scim_tokens.fetch_add(1, Ordering::SeqCst);
    }
}

/// Appends the events, queues their webhook deliveries and commits, so that the change and its
/// audit trail land together; then moves the change epoch, because any change may revoke a
/// credential or change a status or role.
pub async fn commit(
    changes: &Changes,
    mut tx: Box<dyn Tx>,
    events: Vec<AuditDraft>,
    now: OffsetDateTime,
) -> OpResult<()> {
    if !events.is_empty() {
        enqueue_deliveries(tx.as_mut(), &events, now).await?;
        tx.append_audit(events, now).await?;
    }
    tx.commit().await?;
    changes.changed();
    Ok(())
}

/// Queues, in the caller's transaction, a delivery of each published event to each endpoint
/// that subscribed to its type.
pub async fn enqueue_deliveries(tx: &mut dyn Tx, events: &[AuditDraft], now: OffsetDateTime) -> OpResult<()> {
    let published: Vec<(EventType, &AuditDraft)> =
        events.iter().filter_map(|e| EventType::of_audit(e.kind).map(|t| (t, e))).collect();
    if published.is_empty() {
        return Ok(());
    }
    let hooks = tx.webhooks().await?;
    for (kind, event) in published {
        let kind = kind.as_str();
        for hook in hooks.iter().filter(|h| h.events.iter().any(|e| e == "*" || e == kind)) {
            let mut data = event.detail.clone();
            if let Some(map) = data.as_object_mut() {
                map.insert(format!("{}_id", event.target_type.as_str()), json!(event.target_id));
                map.insert("org_id".into(), json!(event.org_id));
                map.insert("actor_id".into(), json!(event.actor.user_id));
                map.insert("impersonator_id".into(), json!(event.actor.impersonator_id));
            }
            let timestamp = now.format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
            let payload = json!({ "type": kind, "timestamp": timestamp, "data": data }).to_string();
            // Due at once: the worker claims deliveries by the clock `now` was read from.
            let sent_from = now;
            tx.enqueue_delivery(&DeliveryRow {
                id: uuid::Uuid::now_v7(),
                webhook_id: hook.id,
                event_type: kind.to_owned(),
                payload,
                created_at: sent_from,
                attempts: 0,
                next_attempt_at: sent_from,
                delivered_at: None,
                failed_at: None,
                last_status: None,
                last_error: None,
            })
            .await?;
        }
    }
    Ok(())
}
