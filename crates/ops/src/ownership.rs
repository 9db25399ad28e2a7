//! Who holds an org: handing ownership over, and the placeholder owner that holds orgs nobody
//! else may (a deactivated owner's, a deprovisioned customer's).

use serde_json::json;
use steward_core::{Actor, AuditDraft, OrgRole, TargetType, UserId, UserKind, UserStatus, lifecycle};
use steward_store::{OrgRow, Tx, UserRow};
use time::OffsetDateTime;

use crate::{OpError, OpResult};

/// The email of the placeholder owner, which no one can sign in with.
pub const PLACEHOLDER_EMAIL: &str = "placeholder-owner@steward.invalid";

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
) -> OpResult<AuditDraft> {
    let from = org.owner_id;
    tx.set_membership_role(org.id, from, previous_role).await?;
    let is_member = tx.membership_in(org.id, to).await?.is_some();
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

/// The instance's placeholder owner: the one the settings name, or the one created on first use
/// (and named in the settings from then on).
pub async fn ensure_placeholder(
    tx: &mut dyn Tx,
    actor: Actor,
    now: OffsetDateTime,
) -> OpResult<(UserRow, Vec<AuditDraft>)> {
    let (doc, version) = tx.instance_doc().await?.unwrap_or((json!({}), 0));
    let named = doc.get("placeholder_owner_id").and_then(|v| v.as_str()).and_then(|s| s.parse::<UserId>().ok());
    if let Some(id) = named
        && let Some(u) = tx.user(id).await?
    {
        return Ok((u, vec![]));
    }
    if let Some(u) = tx.placeholder_user().await? {
        return Ok((u, vec![]));
    }
    let mut user =
        UserRow::new(PLACEHOLDER_EMAIL, PLACEHOLDER_EMAIL.into(), "Placeholder owner", UserStatus::Active, now);
    user.kind = UserKind::Placeholder;
    user.notifications = lifecycle::all_notifications_off();
    tx.insert_user(&user).await?;
    let mut doc = doc;
    match doc.as_object_mut() {
        Some(map) => map.insert("placeholder_owner_id".into(), json!(user.id)),
        None => return Err(OpError::internal("the instance settings are not a JSON object")),
    };
    tx.put_instance_doc(&doc, version + 1).await?;
    let event = AuditDraft::new("user.created", actor, TargetType::User, user.id)
        .detail(json!({ "status": user.status, "kind": "placeholder" }));
    Ok((user, vec![event]))
}
