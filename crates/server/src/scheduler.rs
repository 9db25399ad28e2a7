//! Scheduled lifecycle: deactivations that fall due, the `dormant_after_days` policy, and
//! announcing orgs frozen by an expired license. Each
//! pass runs in one write transaction, which serializes it with every other node's.

use std::time::Duration;

use serde_json::json;
use steward_core::{Actor, InstanceRole, UserStatus};

use crate::state::{AppState, commit, instance_settings};

/// Runs one pass; returns how many users were deactivated.
pub async fn run_once(state: &AppState) -> anyhow::Result<usize> {
    let now = state.clock.now();
    let mut tx = state.store.write().await?;
    let (settings, _) = instance_settings(tx.as_mut()).await.map_err(|e| anyhow::anyhow!("{}", e.problem().detail))?;
    let mut due: Vec<(steward_store::UserRow, serde_json::Value)> =
        tx.due_deactivations(now, 100).await?.into_iter().map(|u| (u, json!({ "scheduled": true }))).collect();
    if let Some(days) = settings.policies.dormant_after_days {
        let before = now - time::Duration::days(i64::from(days));
        for u in tx.dormant_users(before, 100).await? {
            if !due.iter().any(|(d, _)| d.id == u.id) {
                due.push((u, json!({ "policy": "dormant_after_days", "days": days })));
            }
        }
    }
    let sysadmin = InstanceRole::system_admin();
    let mut events = Vec::new();
    let mut done = 0;
    for (mut user, why) in due {
        // The instance must keep a way in: the last active system admin is never deactivated.
        let last_admin = user.status == UserStatus::Active
            && user.instance_roles.contains(&sysadmin)
            && tx.count_users_with_role(sysadmin.as_str()).await? <= 1;
        if last_admin {
            continue;
        }
        user.deactivate_at = None;
        let drafts = crate::service::deactivate_user(tx.as_mut(), &mut user, Actor::SYSTEM, None, None, why, now)
            .await
            .map_err(|e| anyhow::anyhow!("{}", e.problem().detail))?;
        events.extend(drafts);
        done += 1;
    }
    // A license that ran out freezes its org: announce it once per expiry.
    for org in tx.newly_expired_orgs(now, 100).await? {
        let Some(expired) = org.license.expires_at else { continue };
        tx.announce_expiry(org.id, expired).await?;
        events.push(
            steward_core::AuditDraft::new("org.frozen", Actor::SYSTEM, steward_core::TargetType::Org, org.id)
                .in_org(org.id)
                .detail(json!({ "cause": "license_expired", "expires_at": expired.unix_timestamp() })),
        );
    }
    if events.is_empty() {
        tx.rollback().await?;
    } else {
        commit(tx, events, now).await.map_err(|e| anyhow::anyhow!("{}", e.problem().detail))?;
    }
    Ok(done)
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
