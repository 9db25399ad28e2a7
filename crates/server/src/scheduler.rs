//! Scheduled lifecycle: deactivations that fall due, the `dormant_after_days` policy, and
//! announcing orgs frozen by an expired license. Each
//! pass runs in one write transaction, which serializes it with every other node's.

use std::time::Duration;

use serde_json::json;
use steward_core::governance::StatusSetter;
use steward_core::{Actor, Permission, UserStatus};

use crate::state::{AppState, instance_settings};

/// The users whose deactivation is due, with why: a schedule that still stands (one its setter
/// could no longer carry out is dropped, with its event), and, under `dormant_after_days`, the
/// people of the orgs not seen for that long.
async fn due_deactivations(
    tx: &mut dyn steward_store::Tx,
    settings: &crate::settings::InstanceSettings,
    now: time::OffsetDateTime,
    events: &mut Vec<steward_core::AuditDraft>,
) -> anyhow::Result<Vec<(steward_store::UserRow, serde_json::Value)>> {
    let mut due = Vec::new();
    for mut user in tx.due_deactivations(now, 100).await? {
        match schedule_stands(tx, &user).await {
            Ok(()) => {
                let by = user.deactivate_by;
                due.push((user, json!({ "scheduled": true, "scheduled_by": by })));
            }
            Err(why) => events.push(drop_schedule(tx, &mut user, &why, now).await?),
        }
    }
    if let Some(days) = settings.policies.dormant_after_days {
        let before = now - time::Duration::days(i64::from(days));
        for u in tx.dormant_users(before, 100).await? {
            // The policy is about people of the orgs; instance admins are not reached by it.
            if u.instance_roles.is_empty()
                && u.kind == steward_core::UserKind::Person
                && !due.iter().any(|(d, _): &(steward_store::UserRow, _)| d.id == u.id)
            {
                due.push((u, json!({ "policy": "dormant_after_days", "days": days })));
            }
        }
    }
    Ok(due)
}

/// A license that ran out freezes its org: each expiry is announced once, as `org.frozen`.
async fn announce_expiries(
    tx: &mut dyn steward_store::Tx,
    now: time::OffsetDateTime,
) -> anyhow::Result<Vec<steward_core::AuditDraft>> {
    let mut events = Vec::new();
    for org in tx.newly_expired_orgs(now, 100).await? {
        let Some(expired) = org.license.expires_at else { continue };
        tx.announce_expiry(org.id, expired).await?;
        events.push(
            steward_core::AuditDraft::new("org.frozen", Actor::SYSTEM, steward_core::TargetType::Org, org.id)
                .in_org(org.id)
                .detail(json!({ "cause": "license_expired", "expires_at": expired.unix_timestamp() })),
        );
    }
    Ok(events)
}

/// How many expired usage event ids one pass forgets at most.
const FORGET_PER_PASS: u32 = 10_000;

/// Runs one pass; returns how many users were deactivated.
pub async fn run_once(state: &AppState) -> anyhow::Result<usize> {
    let now = state.clock.now();
    let mut tx = state.store.write().await?;
    let (settings, _) = instance_settings(tx.as_mut()).await.map_err(|e| anyhow::anyhow!("{}", e.problem().detail))?;
    let mut events = Vec::new();
    let due = due_deactivations(tx.as_mut(), &settings, now, &mut events).await?;
    let mut done = 0;
    for (mut user, why) in due {
        // The rule every path asks (the last active system admin keeps the instance's way in); a
        // schedule it refuses is dropped, so that it is not tried again on every tick.
        let action = steward_core::lifecycle::UserAction::Deactivate;
        if let Err(refused) = steward_ops::users::guard_deactivate(tx.as_mut(), &user, Actor::SYSTEM, action).await {
            if user.deactivate_at.is_some() {
                events.push(
                    drop_schedule(tx.as_mut(), &mut user, &crate::error::ApiError::from(refused).problem().detail, now)
                        .await?,
                );
            }
            continue;
        }
        user.deactivate_at = None;
        let by = StatusSetter::Instance;
        let deactivation = steward_ops::users::Deactivation::by(Actor::SYSTEM, by, why);
        let drafts = steward_ops::users::deactivate(tx.as_mut(), &mut user, deactivation, now)
            .await
            .map_err(|e| anyhow::anyhow!("{}", crate::error::ApiError::from(e).problem().detail))?;
        events.extend(drafts);
        done += 1;
    }
    events.extend(announce_expiries(tx.as_mut(), now).await?);
    if let Some(days) = settings.policies.review_interval_days {
        events.extend(remind_reviews(tx.as_mut(), &settings, days, now).await?);
    }
    // Event ids of batch ingestion are remembered through the period after theirs, then
    // forgotten here, a bounded number a pass, whether or not their org sends again.
    let forgotten = tx.forget_usage_events(now, FORGET_PER_PASS).await?;
    if events.is_empty() && forgotten == 0 {
        tx.rollback().await?;
    } else if events.is_empty() {
        tx.commit().await?;
    } else {
        state.commit(tx, events, now).await.map_err(|e| anyhow::anyhow!("{}", e.problem().detail))?;
        state.outbox_wake.notify_one();
    }
    Ok(done)
}

/// Clears a schedule that will not be carried out, and says so in the audit log.
async fn drop_schedule(
    tx: &mut dyn steward_store::Tx,
    user: &mut steward_store::UserRow,
    reason: &str,
    now: time::OffsetDateTime,
) -> steward_store::StoreResult<steward_core::AuditDraft> {
    let by = user.deactivate_by.take();
    user.deactivate_at = None;
    user.updated_at = now;
    tx.update_user(user).await?;
    user.version += 1;
    let event =
        steward_core::AuditDraft::new("user.schedule_dropped", Actor::SYSTEM, steward_core::TargetType::User, user.id);
    Ok(event.detail(json!({ "scheduled_by": by, "reason": reason })))
}

/// Ok when a due schedule may still be carried out: it runs with the rights of whoever set it,
/// so that person must still be active, hold `users.lifecycle`, and govern the user. A schedule
/// from before setters were recorded reaches only users without instance roles.
async fn schedule_stands(tx: &mut dyn steward_store::Tx, user: &steward_store::UserRow) -> Result<(), String> {
    let failed = |e: steward_ops::OpError| crate::error::ApiError::from(e).problem().detail;
    let Some(setter_id) = user.deactivate_by else {
        return if user.instance_roles.is_empty() {
            Ok(())
        } else {
            Err("no one is recorded as having set the schedule".into())
        };
    };
    let setter = tx.user(setter_id).await.map_err(|e| failed(e.into()))?;
    let Some(setter) = setter.filter(|s| s.status.can_sign_in()) else {
        return Err("whoever set the schedule is no longer active".into());
    };
    let book = steward_ops::governance::role_book(tx).await.map_err(failed)?;
    let rights = book.permissions_of(&setter.instance_roles);
    if !rights.contains(&Permission::UsersLifecycle) {
        return Err("whoever set the schedule no longer holds users.lifecycle".into());
    }
    crate::governance::require_instance_reach(tx, &rights, user).await.map_err(failed)
}

/// Runs passes every `every` until the process ends.
pub async fn run(state: AppState, every: Duration) {
    loop {
        if let Err(e) = run_once(&state).await {
            tracing::warn!(error = %e, "scheduled lifecycle");
        }
        tokio::time::sleep(every).await;
    }
}

/// When no access review was started (or reminded of) for `days`, emails every instance admin
/// who may run one. The reminder's own audit event marks when it was sent.
async fn remind_reviews(
    tx: &mut dyn steward_store::Tx,
    settings: &crate::settings::InstanceSettings,
    days: u32,
    now: time::OffsetDateTime,
) -> anyhow::Result<Vec<steward_core::AuditDraft>> {
    use steward_store::AuditFilter;
    let mut last = None;
    for kind in ["review.started", "review.reminder_sent"] {
        let filter = AuditFilter { kind: Some(kind.into()), limit: 1, ..Default::default() };
        if let Some(e) = tx.list_audit(&filter).await?.first() {
            last = last.max(Some(e.at));
        }
    }
    let since = match last {
        Some(at) => at,
        // Never reviewed: count from the instance's first event.
        None => match tx.audit_chain(0, 1).await?.first() {
            Some(e) => e.at,
            None => return Ok(vec![]),
        },
    };
    if now - since < time::Duration::days(i64::from(days)) {
        return Ok(vec![]);
    }
    let book = crate::extract::role_book(tx).await.map_err(|e| anyhow::anyhow!("{}", e.problem().detail))?;
    let mut reminded = 0;
    let mut before = None;
    loop {
        let filter =
            steward_store::UserFilter { status: Some(UserStatus::Active), before, limit: 500, ..Default::default() };
        let page = tx.list_users(&filter).await?;
        for user in &page {
            let perms = book.permissions_of(&user.instance_roles);
            if !perms.contains(&steward_core::Permission::ReviewsManage) {
                continue;
            }
            let body = format!(
                "Hello {},\n\nNo access review of {} has been started for {days} days. Review who still needs access:\nPOST /api/v1/access-reviews\n",
                user.name, settings.name
            );
            let sent = crate::mail::enqueue(tx, user, "security", "An access review is due", body, now)
                .await
                .map_err(|e| anyhow::anyhow!("{}", e.problem().detail))?;
            reminded += usize::from(sent);
        }
        match page.last() {
            Some(last) if page.len() == 500 => before = Some(last.id),
            _ => break,
        }
    }
    Ok(vec![
        steward_core::AuditDraft::new(
            "review.reminder_sent",
            Actor::SYSTEM,
            steward_core::TargetType::Instance,
            "instance",
        )
        .detail(json!({ "interval_days": days, "admins_reminded": reminded })),
    ])
}
