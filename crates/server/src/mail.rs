//! Email: messages are written to the outbox in the transaction of the change that causes them,
//! and a worker delivers them over SMTP with retries, checking again at delivery that the
//! recipient may still receive them.

use std::sync::Arc;
use std::time::Duration;

use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use steward_core::UserStatus;
use steward_core::lifecycle::{NOTIFICATION_CATEGORIES, notification_on};
use steward_store::{OutboxRow, Tx, UserRow};
use time::OffsetDateTime;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::config::Config;
use crate::error::ApiResult;
use crate::state::AppState;

/// Mail that is not a notification (invitations, password resets): always sent to a user who
/// may receive mail at all.
pub const ACCOUNT: &str = "account";

/// Where mail goes.
pub enum Mailer {
    /// A real SMTP server.
    Smtp { transport: Box<AsyncSmtpTransport<Tokio1Executor>>, from: Mailbox },
    /// No server configured: messages are written to the log.
    Log,
}

impl Mailer {
    /// The mailer the configuration names.
    pub fn from_config(config: &Config) -> anyhow::Result<Mailer> {
        let Some(url) = &config.smtp_url else { return Ok(Mailer::Log) };
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose())
            .map_err(|e| anyhow::anyhow!("STEWARD_SMTP_URL: {e}"))?
            .timeout(Some(Duration::from_secs(20)))
            .build();
        let transport = Box::new(transport);
        let from = config.mail_from.parse().map_err(|e| anyhow::anyhow!("STEWARD_MAIL_FROM: {e}"))?;
        Ok(Mailer::Smtp { transport, from })
    }

    async fn send(&self, m: &OutboxRow) -> Result<(), String> {
        match self {
            Mailer::Log => {
                tracing::info!(to = %m.recipient, subject = %m.subject, body = %m.body, "email (no SMTP server configured)");
                Ok(())
            }
            Mailer::Smtp { transport, from } => {
                let to: Mailbox = m.recipient.parse().map_err(|e| format!("recipient: {e}"))?;
                let message = Message::builder()
                    .from(from.clone())
                    .to(to)
                    .subject(&m.subject)
                    .message_id(Some(format!("<{}@steward>", m.id)))
                    .body(m.body.clone())
                    .map_err(|e| e.to_string())?;
                transport.send(message).await.map(|_| ()).map_err(|e| e.to_string())
            }
        }
    }
}

/// Why a user gets no mail in `category` (about an org whose settings, for them, are
/// `in_org`), if they get none.
fn refusal(
    user: &UserRow,
    category: &str,
    in_org: Option<&std::collections::BTreeMap<String, bool>>,
) -> Option<&'static str> {
    match user.status {
        UserStatus::Deactivated | UserStatus::Suspended | UserStatus::Anonymized => Some("the user is not active"),
        _ if user.kind != steward_core::UserKind::Person => Some("the placeholder owner receives no mail"),
        _ if NOTIFICATION_CATEGORIES.contains(&category) && !notification_on(&user.notifications, category) => {
            Some("the user switched this category off")
        }
        _ if in_org.is_some_and(|s| !notification_on(s, category)) => {
            Some("this category is off for the user in this organization")
        }
        _ => None,
    }
}

/// Why `user` gets no email in `category` now, if they get none: their status, their settings,
/// and for one of the org `org`'s own emails their not being its member or their settings there.
/// The one rule of queueing and of delivery.
async fn refusal_now(
    tx: &mut dyn Tx,
    user: &UserRow,
    org: Option<steward_core::OrgId>,
    category: &str,
) -> steward_store::StoreResult<Option<&'static str>> {
    let in_org = match org {
        None => None,
        Some(org) => match tx.membership_in(org, user.id).await? {
            Some(membership) => Some(membership.notifications),
            None => return Ok(Some("the user is not a member of this organization")),
        },
    };
    Ok(refusal(user, category, in_org.as_ref()))
}

/// Queues an email about the org `org` to `user`, unless their status, their settings, or
/// their settings for that org (or their not being its member) refuse it; returns whether it
/// was queued. Delivery asks again.
pub async fn enqueue_about_org(
    tx: &mut dyn Tx,
    user: &UserRow,
    org: steward_core::OrgId,
    category: &str,
    subject: impl Into<String>,
    body: impl Into<String>,
    now: OffsetDateTime,
) -> ApiResult<bool> {
    queue(tx, user, Some(org), category, (subject.into(), body.into()), now).await
}

/// Queues an email to `user` in the caller's transaction, unless their status or settings
/// refuse it; returns whether it was queued.
pub async fn enqueue(
    tx: &mut dyn Tx,
    user: &UserRow,
    category: &str,
    subject: impl Into<String>,
    body: impl Into<String>,
    now: OffsetDateTime,
) -> ApiResult<bool> {
    queue(tx, user, None, category, (subject.into(), body.into()), now).await
}

/// Queues an email to `user`, about `org` when it is one of that org's own, unless
/// [`refusal_now`] refuses it; returns whether it was queued.
async fn queue(
    tx: &mut dyn Tx,
    user: &UserRow,
    org: Option<steward_core::OrgId>,
    category: &str,
    (subject, body): (String, String),
    now: OffsetDateTime,
) -> ApiResult<bool> {
    if refusal_now(tx, user, org, category).await?.is_some() {
        return Ok(false);
    }
    tx.enqueue(&OutboxRow {
        id: Uuid::now_v7(),
        user_id: Some(user.id),
        org_id: org,
        recipient: user.email.clone(),
        category: category.to_owned(),
        subject,
        body,
        created_at: now,
        attempts: 0,
        // Delivery runs on the wall clock, whatever instant the cause carries.
        next_attempt_at: now.min(OffsetDateTime::now_utc()),
        sent_at: None,
        dropped_at: None,
        last_error: None,
    })
    .await?;
    Ok(true)
}

const MAX_ATTEMPTS: i64 = 10;

/// Delivers what is due; returns how many messages it handled.
pub async fn deliver_due(state: &AppState, mailer: &Mailer) -> anyhow::Result<usize> {
    let now = state.clock.now();
    let mut tx = state.store.write().await?;
    let due = tx.claim_due(now, now + time::Duration::minutes(2), 20).await?;
    if due.is_empty() {
        // Nothing claimed, nothing changed: a commit would tell every node of a change (on
        // PostgreSQL) and drop what each keeps, on every poll.
        tx.rollback().await?;
        return Ok(0);
    }
    tx.commit().await?;
    for m in &due {
        let mut tx = state.store.read().await?;
        let refused = match m.user_id {
            Some(id) => match tx.user(id).await? {
                Some(user) => refusal_now(tx.as_mut(), &user, m.org_id, &m.category).await?,
                None => None,
            },
            None => None,
        };
        tx.rollback().await?;
        // The message is sent before the writer is taken: no write of the instance waits for a
        // mail server (the claim's lease keeps other workers off the message meanwhile).
        let sent = match refused {
            Some(why) => Err(why),
            None => Ok(mailer.send(m).await),
        };
        let now = state.clock.now();
        let mut tx = state.store.write().await?;
        match sent {
            Err(why) => tx.mark_dropped(m.id, now, why).await?,
            Ok(Ok(())) => {
                metrics::counter!("steward_emails_total", "outcome" => "sent").increment(1);
                tx.mark_sent(m.id, now).await?;
            }
            Ok(Err(e)) if m.attempts >= MAX_ATTEMPTS => {
                tracing::warn!(id = %m.id, error = %e, "giving up on an email");
                tx.mark_dropped(m.id, now, &format!("gave up after {} attempts: {e}", m.attempts)).await?;
            }
            Ok(Err(e)) => {
                metrics::counter!("steward_emails_total", "outcome" => "retry").increment(1);
                let backoff = 5i64.saturating_mul(1 << m.attempts.clamp(0, 10)).min(3600);
                tracing::info!(id = %m.id, error = %e, backoff, "email delivery failed; will retry");
                tx.mark_retry(m.id, now + time::Duration::seconds(backoff), &e).await?;
            }
        }
        tx.commit().await?;
    }
    Ok(due.len())
}

/// Runs the outbox worker until the process ends: woken by `wake`, or every `poll`.
pub async fn run_worker(state: AppState, mailer: Arc<Mailer>, wake: Arc<Notify>, poll: Duration) {
    loop {
        match deliver_due(&state, &mailer).await {
            Ok(n) if n > 0 => continue,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "outbox worker"),
        }
        tokio::select! {
            () = wake.notified() => {},
            () = tokio::time::sleep(poll) => {},
        }
    }
}
