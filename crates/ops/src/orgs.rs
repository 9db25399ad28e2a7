//! Changes to orgs that more than one surface makes: deprovisioning and restoring; and whether an
//! org is frozen now.

use std::collections::BTreeMap;

use serde_json::json;
use steward_core::license::{Period, period_containing};
use steward_core::lifecycle::{MembershipStep, Snapshot, org_notifications_off, plan_deprovision, plan_restore};
use steward_core::org::{Member, OrgView as Rules};
use steward_core::{Actor, AuditDraft, DomainError, OrgRole, OrgState, TargetType, UserId};
use steward_store::{DeprovisionRow, OrgRow, Tx};
use time::OffsetDateTime;

use crate::{Changes, OpError, OpResult, commit};

/// The org's usage period containing `now`.
pub fn period_of(org: &OrgRow, now: OffsetDateTime) -> Period {
    period_containing(org.created_at, org.license.restart_period, now)
}

/// Whether the org is frozen now: derived from the license and this period's usage.
pub async fn frozen_now(tx: &mut dyn Tx, org: &OrgRow, now: OffsetDateTime) -> OpResult<bool> {
    let period = period_of(org, now);
    let row = tx.usage(org.id, period.start).await?;
    let (ops, transfer) = row.map_or((0, 0), |r| (r.operations_used, r.transfer_used));
    Ok(org.license.frozen(ops, transfer, now))
}

/// How many active orgs are frozen now, by the same rule as [`frozen_now`]; read a page at a time.
pub async fn count_frozen(tx: &mut dyn Tx, now: OffsetDateTime) -> OpResult<u64> {
    const PAGE: u32 = 500;
    let (mut frozen, mut after) = (0, None);
    loop {
        let page = tx.active_orgs_with_usage(now, after, PAGE).await?;
        for (org, usage) in &page {
            let period = period_of(org, now);
            let used = usage.as_ref().filter(|u| u.period_start == period.start);
            let (ops, transfer) = used.map_or((0, 0), |u| (u.operations_used, u.transfer_used));
            frozen += u64::from(org.license.frozen(ops, transfer, now));
        }
        match page.last() {
            Some((org, _)) if page.len() == PAGE as usize => after = Some(org.id),
            _ => return Ok(frozen),
        }
    }
}

/// The rules' view of a change about `users` in an org: their current memberships and the
/// recorded owner's — all that putting a role, removing a member or transferring ownership looks
/// at — read one by one, however many members the org has.
pub async fn rules_view_of(tx: &mut dyn Tx, org: &OrgRow, users: &[UserId]) -> OpResult<Rules> {
    let mut members: Vec<Member> = Vec::new();
    for user in users.iter().copied().chain([org.owner_id]) {
        if members.iter().any(|m| m.user_id == user) {
            continue;
        }
        if let Some(m) = tx.membership_in(org.id, user).await? {
            members.push(Member { user_id: user, role: m.role, dormant: m.dormant });
        }
    }
    Ok(Rules { id: org.id, owner_id: org.owner_id, members })
}

/// The rules' view of all an org's current memberships (a deprovisioning plans for each).
pub async fn rules_view(tx: &mut dyn Tx, org: &OrgRow) -> OpResult<Rules> {
    let members = tx
        .members(org.id)
        .await?
        .into_iter()
        .map(|m| Member { user_id: m.user_id, role: m.role, dormant: m.dormant })
        .collect();
    Ok(Rules { id: org.id, owner_id: org.owner_id, members })
}

/// A deprovisioning as asked.
pub struct Deprovision<'a> {
    /// Why; kept with the record, 1 to 1000 characters.
    pub reason: &'a str,
    /// Another placeholder owner than the instance's; must be active.
    pub placeholder_owner: Option<UserId>,
    /// The former owner's new role.
    pub demote_to: OrgRole,
    /// Whether the members' notification emails are switched off.
    pub notifications_off: bool,
    /// Plan only, and change nothing.
    pub dry_run: bool,
}

/// What a deprovisioning did, or would do.
pub struct Deprovisioned {
    /// The record a restore uses; none for a dry run.
    pub record_id: Option<uuid::Uuid>,
    /// The plan's steps, as a person reads them.
    pub steps: Vec<String>,
}

/// Deprovisions `org` (access already checked by the surface) in one transaction: consumables
/// to 0, ownership to the placeholder owner, the former owner demoted, the members'
/// notifications off, and a record of what was there for [`restore`]. A dry run plans and
/// changes nothing.
pub async fn deprovision(
    changes: &Changes,
    mut tx: Box<dyn Tx>,
    mut org: OrgRow,
    d: Deprovision<'_>,
    actor: Actor,
    now: OffsetDateTime,
) -> OpResult<Deprovisioned> {
    let reason = d.reason.trim();
    if reason.is_empty() || reason.chars().count() > 1000 {
        return Err(DomainError::invalid("reason", "is required (1 to 1000 characters)").into());
    }
    let mut events = Vec::new();
    let placeholder = placeholder_owner(tx.as_mut(), &d, actor, now, &mut events).await?;
    let rules = rules_view(tx.as_mut(), &org).await?;
    let settings = org_notification_settings(tx.as_mut(), &rules).await?;
    let plan =
        plan_deprovision(&rules, org.state, &org.license, placeholder, d.demote_to, d.notifications_off, &settings)?;
    if d.dry_run {
        tx.rollback().await?;
        return Ok(Deprovisioned { record_id: None, steps: plan.steps });
    }
    let former_owner = org.owner_id;
    events.push(
        crate::ownership::move_ownership(tx.as_mut(), &mut org, placeholder, d.demote_to, actor, "deprovisioning", now)
            .await?,
    );
    org.license = plan.license.clone();
    org.state = OrgState::Deprovisioned;
    org.updated_at = now;
    tx.update_org(&org).await?;
    let off = plan.silenced.iter().map(|u| (*u, org_notifications_off()));
    set_org_notifications(tx.as_mut(), org.id, off).await?;
    let record = DeprovisionRow {
        id: uuid::Uuid::now_v7(),
        org_id: org.id,
        reason: reason.to_owned(),
        snapshot: serde_json::to_value(&plan.snapshot).map_err(OpError::internal)?,
        created_at: now,
        created_by: actor.user_id,
        restored_at: None,
        restored_by: None,
    };
    tx.insert_deprovision(&record).await?;
    events.push(
        AuditDraft::new("org.deprovisioned", actor, TargetType::Org, org.id)
            .in_org(org.id)
            .detail(json!({
                "record_id": record.id,
                "former_owner_id": former_owner,
                "placeholder_owner_id": placeholder,
                "demoted_to": d.demote_to,
                "silenced": plan.silenced,
                "license_before": plan.snapshot.license,
                "license_after": plan.license,
            }))
            .personal(json!({ "reason": reason })),
    );
    commit(changes, tx, events, now).await?;
    Ok(Deprovisioned { record_id: Some(record.id), steps: plan.steps })
}

/// The user a deprovisioning hands the org to: the one named, which must be active, or the
/// instance's placeholder owner, created (with its event) if there is none yet.
async fn placeholder_owner(
    tx: &mut dyn Tx,
    d: &Deprovision<'_>,
    actor: Actor,
    now: OffsetDateTime,
    events: &mut Vec<AuditDraft>,
) -> OpResult<UserId> {
    Ok(match d.placeholder_owner {
        Some(id) => {
            let u = tx.user(id).await?.ok_or_else(|| DomainError::invalid("placeholder_owner_id", "no such user"))?;
            if !u.status.can_sign_in() {
                return Err(DomainError::invalid("placeholder_owner_id", "must be an active user").into());
            }
            u.id
        }
        None if d.dry_run => tx.placeholder_user().await?.map_or(UserId::from_uuid(uuid::Uuid::nil()), |u| u.id),
        None => {
            let (u, created) = crate::ownership::ensure_placeholder(tx, actor, now).await?;
            events.extend(created);
            u.id
        }
    })
}

/// Each member's settings for the org's own emails, as the plan keeps them for a restore.
async fn org_notification_settings(
    tx: &mut dyn Tx,
    rules: &Rules,
) -> OpResult<BTreeMap<UserId, BTreeMap<String, bool>>> {
    let mut settings = BTreeMap::new();
    for m in &rules.members {
        if let Some(membership) = tx.membership_in(rules.id, m.user_id).await? {
            settings.insert(m.user_id, membership.notifications);
        }
    }
    Ok(settings)
}

/// Sets each member's settings for the org's own emails; someone who is no longer a member is
/// passed over.
async fn set_org_notifications(
    tx: &mut dyn Tx,
    org: steward_core::OrgId,
    settings: impl Iterator<Item = (UserId, BTreeMap<String, bool>)>,
) -> OpResult<()> {
    for (id, notifications) in settings {
        if tx.membership_in(org, id).await?.is_some() {
            tx.set_org_notifications(org, id, &notifications).await?;
        }
    }
    Ok(())
}

/// Puts back the settings a deprovisioning recorded before settings were kept per org: the
/// members' settings as people.
async fn set_notifications(
    tx: &mut dyn Tx,
    settings: impl Iterator<Item = (UserId, BTreeMap<String, bool>)>,
    now: OffsetDateTime,
) -> OpResult<()> {
    for (id, notifications) in settings {
        if let Some(mut u) = tx.user(id).await? {
            u.notifications = notifications;
            u.updated_at = now;
            tx.update_user(&u).await?;
        }
    }
    Ok(())
}

/// Restores a deprovisioned `org` (access already checked by the surface) from the record
/// `record_id`, or the latest one not yet restored: license, owner, roles and notification
/// settings come back as they were just before ([`plan_restore`]). Returns the org as restored.
pub async fn restore(
    changes: &Changes,
    mut tx: Box<dyn Tx>,
    mut org: OrgRow,
    record_id: Option<&str>,
    actor: Actor,
    now: OffsetDateTime,
) -> OpResult<OrgRow> {
    if org.state != OrgState::Deprovisioned {
        let d = format!("the organization is {}, not deprovisioned", org.state);
        return Err(DomainError::InvalidTransition(d).into());
    }
    let records = tx.deprovisions_of(org.id).await?;
    let record = match record_id {
        Some(r) => records.into_iter().find(|x| x.id.to_string() == r),
        None => records.into_iter().find(|x| x.restored_at.is_none()),
    }
    .ok_or(OpError::NotFound("deprovision record"))?;
    if record.restored_at.is_some() {
        return Err(DomainError::InvalidTransition("that deprovisioning was already restored".into()).into());
    }
    let snapshot: Snapshot = serde_json::from_value(record.snapshot.clone()).map_err(OpError::internal)?;
    let members: Vec<_> = tx.members(org.id).await?.into_iter().map(|m| (m.user_id, m.role)).collect();
    let plan = plan_restore(org.state, org.owner_id, &members, &snapshot)?;
    for step in &plan.steps {
        match *step {
            MembershipStep::SetRole(user, role) => tx.set_membership_role(org.id, user, role).await?,
            MembershipStep::End(user) => tx.end_membership(org.id, user, now).await?,
            MembershipStep::Add(user, role) => tx.insert_membership(org.id, user, role, now).await?,
        }
    }
    match plan.org_scoped {
        true => set_org_notifications(tx.as_mut(), org.id, plan.notifications.into_iter()).await?,
        false => set_notifications(tx.as_mut(), plan.notifications.into_iter(), now).await?,
    }
    org.owner_id = plan.owner_id;
    org.license = plan.license;
    org.state = OrgState::Active;
    org.updated_at = now;
    tx.update_org(&org).await?;
    org.version += 1;
    tx.close_deprovision(record.id, now, actor.user_id).await?;
    let event = AuditDraft::new("org.restored", actor, TargetType::Org, org.id)
        .in_org(org.id)
        .detail(json!({ "record_id": record.id, "owner_id": snapshot.owner_id, "license": snapshot.license }));
    commit(changes, tx, vec![event], now).await?;
    Ok(org)
}
