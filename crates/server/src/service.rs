//! Operations shared by the API, start-up and the CLI.

use serde_json::json;
use steward_core::governance::StatusSetter;
use steward_core::{Actor, AuditDraft, Email, InstanceRole, OrgRole, PersonName, TargetType, UserId, UserStatus};
use steward_store::{OrgRow, Store, Tx, UserRow};
use time::OffsetDateTime;

use crate::error::ApiResult;
use crate::routes::users::email_in_use;
use crate::state::commit;

/// Creates an active user with the given instance role, for bootstrap, the setup link and the CLI.
pub async fn create_admin(
    store: &dyn Store,
    email: &Email,
    name: &PersonName,
    password_hash: String,
    role: InstanceRole,
    actor: Actor,
) -> ApiResult<UserRow> {
    let now = OffsetDateTime::now_utc();
    let user = UserRow {
        id: UserId::new(),
        email: email.as_str().to_owned(),
        email_key: email.key(),
        name: name.as_str().to_owned(),
        status: UserStatus::Active,
        password_hash: Some(password_hash),
        locale: None,
        timezone: None,
        instance_roles: vec![role],
        kind: steward_core::UserKind::Person,
        notifications: Default::default(),
        created_at: now,
        updated_at: now,
        last_login_at: None,
        deactivate_at: None,
        status_by: None,
        deactivate_by: None,
        version: 1,
    };
    let mut tx = store.write().await?;
    if let Some(existing) = find_by_email(tx.as_mut(), email, now).await? {
        return Err(email_in_use(&existing));
    }
    tx.insert_user(&user).await?;
    let event = AuditDraft::new("user.created", actor, TargetType::User, user.id)
        .detail(json!({ "status": user.status, "instance_roles": user.instance_roles }))
        .personal(json!({ "email": user.email, "name": user.name }));
    commit(tx, vec![event], now).await?;
    Ok(user)
}

/// Creates the first (or another) system admin.
pub async fn create_system_admin(
    store: &dyn Store,
    email: &Email,
    name: &PersonName,
    password_hash: String,
    actor: Actor,
) -> ApiResult<UserRow> {
    create_admin(store, email, name, password_hash, InstanceRole::system_admin(), actor).await
}

/// Whether an active system admin exists.
pub async fn has_system_admin(store: &dyn Store) -> ApiResult<bool> {
    let mut tx = store.read().await?;
    let n = tx.count_users_with_role(InstanceRole::system_admin().as_str()).await?;
    tx.rollback().await?;
    Ok(n > 0)
}

/// The keyed hash that stands in for an anonymized user's email and still blocks its reuse.
pub async fn anonymized_email_key(tx: &mut dyn Tx, email_key: &str, now: OffsetDateTime) -> ApiResult<String> {
    let fresh = crate::auth::new_secret(crate::auth::SecretKind::Setup);
    let key = tx.ensure_instance_secret("email_hash_key", &fresh, now).await?;
    Ok(format!("anon:{}", crate::auth::secret_hash(&format!("{key}:{email_key}"))))
}

/// The user holding `email`, also when they were anonymized (then only the keyed hash matches).
pub async fn find_by_email(tx: &mut dyn Tx, email: &Email, now: OffsetDateTime) -> ApiResult<Option<UserRow>> {
    let key = email.key();
    let anonymized = anonymized_email_key(tx, &key, now).await?;
    Ok(tx.identity_holders(None, &key, &anonymized).await?.1)
}

/// The instance's placeholder owner: the one the settings name, or the one created on first use.
pub async fn ensure_placeholder(
    tx: &mut dyn Tx,
    actor: Actor,
    now: OffsetDateTime,
) -> ApiResult<(UserRow, Vec<AuditDraft>)> {
    let (settings, version) = crate::state::instance_settings(tx).await?;
    if let Some(id) = settings.placeholder_owner_id
        && let Some(u) = tx.user(id).await?
    {
        return Ok((u, vec![]));
    }
    if let Some(u) = tx.placeholder_user().await? {
        return Ok((u, vec![]));
    }
    let user = UserRow {
        id: UserId::new(),
        email: "placeholder-owner@steward.invalid".into(),
        email_key: "placeholder-owner@steward.invalid".into(),
        name: "Placeholder owner".into(),
        status: UserStatus::Active,
        password_hash: None,
        locale: None,
        timezone: None,
        instance_roles: vec![],
        kind: steward_core::UserKind::Placeholder,
        notifications: steward_core::lifecycle::all_notifications_off(),
        created_at: now,
        updated_at: now,
        last_login_at: None,
        deactivate_at: None,
        status_by: None,
        deactivate_by: None,
        version: 1,
    };
    tx.insert_user(&user).await?;
    let mut settings = settings;
    settings.placeholder_owner_id = Some(user.id);
    let doc = serde_json::to_value(&settings).map_err(crate::error::ApiError::internal)?;
    tx.put_instance_doc(&doc, version + 1).await?;
    let event = AuditDraft::new("user.created", actor, TargetType::User, user.id)
        .detail(json!({ "status": user.status, "kind": "placeholder" }));
    Ok((user, vec![event]))
}

/// Moves ownership of `org` to `to` (who becomes a member if needed); the previous owner keeps
/// `previous_role`. Returns the event.
pub async fn move_ownership(
    tx: &mut dyn Tx,
    org: &mut OrgRow,
    to: UserId,
    previous_role: OrgRole,
    actor: Actor,
    why: &str,
    now: OffsetDateTime,
) -> ApiResult<AuditDraft> {
    let from = org.owner_id;
    tx.set_membership_role(org.id, from, previous_role).await?;
    let is_member = tx.members(org.id).await?.iter().any(|m| m.user_id == to);
    if is_member {
        tx.set_membership_role(org.id, to, OrgRole::Owner).await?;
    } else {
        tx.insert_membership(org.id, to, OrgRole::Owner, now).await?;
    }
    org.owner_id = to;
    org.updated_at = now;
    tx.update_org(org).await?;
    org.version += 1;
    Ok(AuditDraft::new("org.ownership_transferred", actor, TargetType::Org, org.id)
        .in_org(org.id)
        .detail(json!({ "from": from, "to": to, "previous_owner_role": previous_role, "reason": why })))
}

/// Erases a deactivated user's personal data: the email gives way to a keyed hash that still
/// blocks its reuse, the name and settings go, and the personal parts of the audit events about
/// them are removed (the chain still verifies). History stays linked to the id.
pub async fn anonymize_user(
    tx: &mut dyn Tx,
    user: &mut UserRow,
    actor: Actor,
    now: OffsetDateTime,
) -> ApiResult<AuditDraft> {
    let next = steward_core::lifecycle::transition(
        user.status,
        steward_core::lifecycle::UserAction::Anonymize,
        user.password_hash.is_some(),
    )?;
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
/// `actor`: [`steward_core::lifecycle::guard_deactivate`] with what it needs loaded. Every path
/// that takes access away asks this, through [`deactivate_user`] or the suspension.
pub async fn guard_deactivate(
    tx: &mut dyn Tx,
    user: &UserRow,
    actor: Actor,
    action: steward_core::lifecycle::UserAction,
) -> ApiResult<UserStatus> {
    let sysadmin = steward_core::InstanceRole::system_admin();
    let system_admin = user.instance_roles.contains(&sysadmin);
    let active_system_admins = if system_admin { tx.count_users_with_role(sysadmin.as_str()).await? } else { 0 };
    let facts = steward_core::lifecycle::AccessRemoval {
        status: user.status,
        kind: user.kind,
        has_password: user.password_hash.is_some(),
        by_self: actor.user_id == Some(user.id) || actor.impersonator_id == Some(user.id),
        system_admin,
        active_system_admins,
    };
    Ok(steward_core::lifecycle::guard_deactivate(facts, action)?)
}

/// Deactivates a user in the caller's transaction: every session and token revoked, pending
/// invitations cancelled, memberships dormant, owned orgs handed to `new_owner` or to the
/// placeholder owner (recorded, so that reactivation can hand them back). Refused, before
/// anything is written, when [`guard_deactivate`] refuses.
pub async fn deactivate_user(
    tx: &mut dyn Tx,
    user: &mut UserRow,
    d: Deactivation<'_>,
    now: OffsetDateTime,
) -> ApiResult<Vec<AuditDraft>> {
    let Deactivation { actor, by, reason, new_owner, why } = d;
    let next = guard_deactivate(tx, user, actor, steward_core::lifecycle::UserAction::Deactivate).await?;
    let mut events = Vec::new();
    let (revoked, cancelled, owned) = tx.deactivation_sweep(user.id, now).await?;
    let mut handed = Vec::new();
    for mut org in owned {
        let to = match new_owner {
            Some(o) => o,
            None => {
                let (placeholder, created) = ensure_placeholder(tx, actor, now).await?;
                events.extend(created);
                placeholder.id
            }
        };
        events.push(move_ownership(tx, &mut org, to, OrgRole::Admin, actor, "deactivation", now).await?);
        tx.insert_handover(&steward_store::HandoverRow {
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
pub async fn reactivate_user(
    tx: &mut dyn Tx,
    user: &mut UserRow,
    actor: Actor,
    now: OffsetDateTime,
) -> ApiResult<Vec<AuditDraft>> {
    use steward_core::lifecycle::{UserAction, transition};
    let next = transition(user.status, UserAction::Reactivate, user.password_hash.is_some())?;
    tx.set_memberships_dormant(user.id, false).await?;
    let mut events = Vec::new();
    let mut returned = Vec::new();
    for h in tx.open_handovers_from(user.id).await? {
        if h.returnable
            && let Some(mut org) = tx.org(h.org_id).await?
            && org.owner_id == h.to_user_id
        {
            let current = tx.members(org.id).await?;
            if current.iter().any(|m| m.user_id == user.id) {
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

/// Changes the caller's own password once the current one is confirmed; their other sessions
/// end. Not in an impersonation session, which cannot change credentials.
pub async fn change_own_password(
    state: &crate::state::AppState,
    principal: &crate::extract::Principal,
    current: &str,
    new: &str,
) -> ApiResult<()> {
    if principal.impersonator_id().is_some() {
        return Err(crate::error::ApiError::forbidden("an impersonation session cannot change credentials"));
    }
    let key = principal.user.email_key.clone();
    state.throttle.admit(&key, None, None).await?;
    let mut tx = state.store.read().await?;
    let stored = tx.user(principal.user.id).await?.and_then(|u| u.password_hash);
    tx.rollback().await?;
    if !state.passwords.verify(current, stored.as_deref()).await? {
        state.throttle.failed(&key, None, None);
        return Err(crate::error::ApiError::invalid("current_password", "is not your current password"));
    }
    let hash = state.passwords.hash(new).await?;
    let now = OffsetDateTime::now_utc();
    let mut tx = state.store.write().await?;
    let mut user = tx
        .user(principal.user.id)
        .await?
        .ok_or_else(|| crate::error::ApiError::unauthenticated("the credentials are not valid"))?;
    user.password_hash = Some(hash);
    user.updated_at = now;
    tx.update_user(&user).await?;
    let mut ended = 0;
    for s in tx.live_sessions(user.id, now).await? {
        if Some(s.id) != principal.session_id() {
            tx.revoke_session(s.id, now).await?;
            ended += 1;
        }
    }
    let event = AuditDraft::new("user.password_changed", principal.actor(), TargetType::User, user.id)
        .detail(json!({ "sessions_ended": ended }));
    commit(tx, vec![event], now).await
}
