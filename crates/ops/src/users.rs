//! Changes to users that more than one surface makes: creating an admin, deactivating and
//! reactivating, erasing, a new password.

use serde_json::json;
use steward_core::governance::StatusSetter;
use steward_core::lifecycle::{self, AccessRemoval, UserAction};
use steward_core::{
    Actor, AuditDraft, Email, InstanceRole, OrgRole, PersonName, SessionId, TargetType, UserId, UserStatus,
};
use steward_store::{HandoverRow, Store, Tx, UserRow};
use time::OffsetDateTime;

use crate::secrets::{SecretKind, new_secret, secret_hash};
use crate::{Changes, OpError, OpResult, commit};

/// The refusal of an email already held: by a deactivated user (reactivate them instead), by an
/// erased one (never reused), or by an active one.
pub fn email_in_use(existing: &UserRow) -> OpError {
    match existing.status {
        UserStatus::Deactivated => OpError::Conflict {
            code: "user_deactivated",
            detail: format!("this email belongs to deactivated user {}; reactivate that user instead", existing.id),
            user_id: Some(existing.id),
        },
        UserStatus::Anonymized => OpError::conflict("user_deactivated", "this email belonged to an erased user"),
        _ => OpError::conflict("email_taken", "a user with this email already exists"),
    }
}

/// Creates an active user with the given instance role, for bootstrap, the setup link and the CLI.
pub async fn create_admin(
    store: &dyn Store,
    changes: &Changes,
    (email, name): (&Email, &PersonName),
    password_hash: String,
    role: InstanceRole,
    actor: Actor,
    now: OffsetDateTime,
) -> OpResult<UserRow> {
    let mut user = UserRow::new(email.as_str(), email.key(), name.as_str(), UserStatus::Active, now);
    user.password_hash = Some(password_hash);
    user.instance_roles = vec![role];
    let mut tx = store.write().await?;
    if let Some(existing) = find_by_email(tx.as_mut(), email, now).await? {
        return Err(email_in_use(&existing));
    }
    tx.insert_user(&user).await?;
    let event = AuditDraft::new("user.created", actor, TargetType::User, user.id)
        .detail(json!({ "status": user.status, "instance_roles": user.instance_roles }))
        .personal(json!({ "email": user.email, "name": user.name }));
    commit(changes, tx, vec![event], now).await?;
    Ok(user)
}

/// Whether an active system admin exists.
pub async fn has_system_admin(store: &dyn Store) -> OpResult<bool> {
    let mut tx = store.read().await?;
    let n = tx.count_users_with_role(InstanceRole::system_admin().as_str()).await?;
    tx.rollback().await?;
    Ok(n > 0)
}

/// The keyed hash that stands in for an anonymized user's email and still blocks its reuse.
pub async fn anonymized_email_key(tx: &mut dyn Tx, email_key: &str, now: OffsetDateTime) -> OpResult<String> {
    let fresh = new_secret(SecretKind::Setup);
    let key = tx.ensure_instance_secret("email_hash_key", &fresh, now).await?;
    Ok(format!("anon:{}", secret_hash(&format!("{key}:{email_key}"))))
}

/// The user holding `email`, also when they were anonymized (then only the keyed hash matches).
pub async fn find_by_email(tx: &mut dyn Tx, email: &Email, now: OffsetDateTime) -> OpResult<Option<UserRow>> {
    let key = email.key();
    let anonymized = anonymized_email_key(tx, &key, now).await?;
    Ok(tx.identity_holders(None, &key, &anonymized).await?.1)
}

/// Erases a deactivated user's personal data: the email gives way to a keyed hash that still
/// blocks its reuse, the name and settings go, and the personal parts of the audit events about
/// them are removed (the chain still verifies). History stays linked to the id.
pub async fn anonymize(tx: &mut dyn Tx, user: &mut UserRow, actor: Actor, now: OffsetDateTime) -> OpResult<AuditDraft> {
    let next = lifecycle::transition(user.status, UserAction::Anonymize, user.password_hash.is_some())?;
    user.email_key = anonymized_email_key(tx, &user.email_key, now).await?;
    user.email = format!("anonymized-{}@anonymized.invalid", user.id);
    user.name = "Anonymized user".into();
    user.password_hash = None;
    user.locale = None;
    user.timezone = None;
    user.notifications = Default::default();
    user.status = next;
    user.updated_at = now;
    tx.update_user(user).await?;
    user.version += 1;
    let redacted = tx.redact_personal(user.id).await?;
    // Credentials go with the person: a two-factor secret and recovery codes have no use left.
    let two_factor_removed = tx.delete_totp(user.id).await?;
    Ok(AuditDraft::new("user.anonymized", actor, TargetType::User, user.id)
        .detail(json!({ "events_redacted": redacted, "two_factor_removed": two_factor_removed })))
}

/// Who deactivates a user, on whose authority, and why.
pub struct Deactivation<'a> {
    /// Whom the audit events name.
    pub actor: Actor,
    /// The authority whose deactivation this is; only it or a higher one undoes it.
    pub by: StatusSetter,
    /// The reason given, kept as personal data.
    pub reason: Option<&'a str>,
    /// Who takes over owned orgs instead of the placeholder owner.
    pub new_owner: Option<UserId>,
    /// What joins the event's detail.
    pub why: serde_json::Value,
}

impl Deactivation<'_> {
    /// A deactivation by `actor` on `by`'s authority, with no reason or named new owner.
    pub fn by(actor: Actor, by: StatusSetter, why: serde_json::Value) -> Self {
        Deactivation { actor, by, reason: None, new_owner: None, why }
    }
}

/// The status `action` (deactivate or suspend) leaves `user` in, or why it may not be taken by
/// `actor`: [`lifecycle::guard_deactivate`] with what it needs loaded. Every path that takes
/// access away asks this, through [`deactivate`] or the suspension.
pub async fn guard_deactivate(
    tx: &mut dyn Tx,
    user: &UserRow,
    actor: Actor,
    action: UserAction,
) -> OpResult<UserStatus> {
    let sysadmin = InstanceRole::system_admin();
    let system_admin = user.instance_roles.contains(&sysadmin);
    let active_system_admins = if system_admin { tx.count_users_with_role(sysadmin.as_str()).await? } else { 0 };
    let facts = AccessRemoval {
        status: user.status,
        kind: user.kind,
        has_password: user.password_hash.is_some(),
        by_self: actor.user_id == Some(user.id) || actor.impersonator_id == Some(user.id),
        system_admin,
        active_system_admins,
    };
    Ok(lifecycle::guard_deactivate(facts, action)?)
}

/// Deactivates a user in the caller's transaction: every session and token revoked, pending
/// invitations cancelled, memberships dormant, owned orgs handed to `new_owner` or to the
/// placeholder owner (recorded, so that reactivation can hand them back). Refused, before
/// anything is written, when [`guard_deactivate`] refuses.
pub async fn deactivate(
    tx: &mut dyn Tx,
    user: &mut UserRow,
    d: Deactivation<'_>,
    now: OffsetDateTime,
) -> OpResult<Vec<AuditDraft>> {
    let Deactivation { actor, by, reason, new_owner, why } = d;
    let next = guard_deactivate(tx, user, actor, UserAction::Deactivate).await?;
    let mut events = Vec::new();
    let (revoked, cancelled, owned) = tx.deactivation_sweep(user.id, now).await?;
    let mut handed = Vec::new();
    for mut org in owned {
        let to = match new_owner {
            Some(o) => o,
            None => {
                let (placeholder, created) = crate::ownership::ensure_placeholder(tx, actor, now).await?;
                events.extend(created);
                placeholder.id
            }
        };
        events.push(
            crate::ownership::move_ownership(tx, &mut org, to, OrgRole::Admin, actor, "deactivation", now).await?,
        );
        tx.insert_handover(&HandoverRow {
            id: uuid::Uuid::now_v7(),
            org_id: org.id,
            from_user_id: user.id,
            to_user_id: to,
            returnable: new_owner.is_none(),
            created_at: now,
            closed_at: None,
        })
        .await?;
        handed.push(json!({ "org_id": org.id, "to": to }));
    }
    let from = user.status;
    user.status = next;
    user.status_by = Some(by);
    // A schedule set before is spent: a later reactivation must not be undone by it.
    user.deactivate_at = None;
    user.deactivate_by = None;
    user.updated_at = now;
    tx.update_user(user).await?;
    user.version += 1;
    let mut detail = json!({
        "from": from,
        "credentials_revoked": revoked,
        "invitations_cancelled": cancelled,
        "orgs_handed_over": handed,
    });
    if let (Some(d), Some(extra)) = (detail.as_object_mut(), why.as_object()) {
        d.extend(extra.clone());
    }
    let mut event = AuditDraft::new("user.deactivated", actor, TargetType::User, user.id).detail(detail);
    if let Some(reason) = reason {
        event = event.personal(json!({ "reason": reason }));
    }
    events.push(event);
    Ok(events)
}

/// Reactivates a deactivated user: memberships, team memberships and instance roles come back as
/// they were, and orgs the placeholder owner still holds from the deactivation are handed back.
pub async fn reactivate(
    tx: &mut dyn Tx,
    user: &mut UserRow,
    actor: Actor,
    now: OffsetDateTime,
) -> OpResult<Vec<AuditDraft>> {
    let next = lifecycle::transition(user.status, UserAction::Reactivate, user.password_hash.is_some())?;
    tx.set_memberships_dormant(user.id, false).await?;
    let mut events = Vec::new();
    let mut returned = Vec::new();
    for h in tx.open_handovers_from(user.id).await? {
        if h.returnable
            && let Some(mut org) = tx.org(h.org_id).await?
            && org.owner_id == h.to_user_id
            && tx.membership_in(org.id, user.id).await?.is_some()
        {
            // The placeholder leaves; the user is owner again.
            tx.end_membership(org.id, h.to_user_id, now).await?;
            tx.set_membership_role(org.id, user.id, OrgRole::Owner).await?;
            org.owner_id = user.id;
            org.updated_at = now;
            tx.update_org(&org).await?;
            events.push(
                AuditDraft::new("org.ownership_transferred", actor, TargetType::Org, org.id)
                    .in_org(org.id)
                    .detail(json!({ "from": h.to_user_id, "to": user.id, "reason": "reactivation" })),
            );
            returned.push(org.id);
        }
        tx.close_handover(h.id, now).await?;
    }
    user.status = next;
    user.status_by = None;
    user.updated_at = now;
    tx.update_user(user).await?;
    user.version += 1;
    events.push(
        AuditDraft::new("user.reactivated", actor, TargetType::User, user.id)
            .detail(json!({ "to": next, "orgs_returned": returned })),
    );
    Ok(events)
}

/// Stores a new password hash for `user`, checked before by the surface, and ends their other
/// sessions (all but `keep`).
pub async fn set_own_password(
    store: &dyn Store,
    changes: &Changes,
    actor: Actor,
    keep: Option<SessionId>,
    hash: String,
    now: OffsetDateTime,
) -> OpResult<()> {
    let id = actor.user_id.ok_or(OpError::NotFound("user"))?;
    let mut tx = store.write().await?;
    let mut user = tx.user(id).await?.ok_or(OpError::NotFound("user"))?;
    user.password_hash = Some(hash);
    user.updated_at = now;
    tx.update_user(&user).await?;
    let mut ended = 0;
    for s in tx.live_sessions(user.id, now).await? {
        if Some(s.id) != keep {
            tx.revoke_session(s.id, now).await?;
            ended += 1;
        }
    }
    let event = AuditDraft::new("user.password_changed", actor, TargetType::User, user.id)
        .detail(json!({ "sessions_ended": ended }));
    commit(changes, tx, vec![event], now).await
}
