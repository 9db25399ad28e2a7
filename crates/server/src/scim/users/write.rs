//! Writing a User resource onto a Steward user: the identity it claims checked free, the user
//! created or changed, and the lifecycle change `active` asks for.

use super::*;

/// A write to a user whom the client does not govern: `active: false` ends the membership of the
/// client's org (kept in history); anything else is accepted only when it changes nothing that
/// another authority governs (identity, password, status), and then changes nothing at all.
async fn write_place_in_org(
    tx: &mut dyn Tx,
    client: &ScimClient,
    (user, scim): Loaded,
    doc: &Map<String, Value>,
    sets_password: bool,
    now: OffsetDateTime,
) -> Result<(Loaded, Vec<AuditDraft>), Failure> {
    if client.token.org_id.is_none() {
        return Err(not_governed().into());
    }
    if doc.get("active").and_then(Value::as_bool) == Some(false) {
        let event = leave_org(tx, client, &user, now).await?;
        return Ok(((user, scim), vec![event]));
    }
    let (user_name, email) = identity(doc)?;
    let name = display_name(doc, &user_name)?;
    let held_name =
        scim.as_ref().and_then(|s| s.user_name.as_deref()).map_or(user.email_key.clone(), str::to_lowercase);
    let active = matches!(user.status, UserStatus::Active | UserStatus::Invited);
    let changes = email.key() != user.email_key
        || user_name.to_lowercase() != held_name
        || name.as_str() != user.name
        || sets_password
        || !active;
    if changes {
        return Err(not_governed().into());
    }
    Ok(((user, scim), vec![]))
}

/// Ends the user's membership in the client's org (kept in history), for an org-bound client.
pub(super) async fn leave_org(
    tx: &mut dyn Tx,
    client: &ScimClient,
    user: &UserRow,
    now: OffsetDateTime,
) -> Result<AuditDraft, Failure> {
    let org_id = client.token.org_id.ok_or_else(|| Failure(ScimError::internal()))?;
    let org = tx.org(org_id).await?.ok_or_else(|| Failure(ScimError::internal()))?;
    if org.owner_id == user.id {
        return Err(
            ScimError::new(ScimType::Mutability, "the org's owner cannot leave it; transfer ownership first").into()
        );
    }
    tx.end_membership(org_id, user.id, now).await?;
    Ok(AuditDraft::new("org.member_removed", client.actor(), TargetType::User, user.id)
        .in_org(org_id)
        .detail(json!({ "via": "scim", "scim_token_id": client.token.id, "reason": "deprovisioned by the org's identity provider" })))
}

/// The userName and the email (the primary one, or the first) of a resource.
pub(super) fn identity(doc: &Map<String, Value>) -> Result<(String, Email), ScimError> {
    let user_name = text(doc, "userName").map(str::trim).filter(|s| !s.is_empty());
    let user_name = user_name.ok_or_else(|| ScimError::invalid_value("userName is required"))?.to_owned();
    let emails = doc.get("emails").and_then(Value::as_array).cloned().unwrap_or_default();
    let chosen = emails
        .iter()
        .find(|e| e.get("primary") == Some(&Value::Bool(true)))
        .or_else(|| emails.first())
        .and_then(|e| e.get("value"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| user_name.contains('@').then(|| user_name.clone()));
    let email =
        chosen.ok_or_else(|| ScimError::invalid_value("an email is required (emails, or a userName that is one)"))?;
    let email = Email::parse(&email).map_err(|e| ScimError::invalid_value(format!("emails: {e}")))?;
    Ok((user_name, email))
}

/// The Steward name of a resource: displayName, else the formatted or given and family names,
/// else the userName.
fn display_name(doc: &Map<String, Value>, user_name: &str) -> Result<PersonName, ScimError> {
    let name = doc.get("name").and_then(Value::as_object);
    let joined =
        name.map(|n| [text(n, "givenName"), text(n, "familyName")].into_iter().flatten().collect::<Vec<_>>().join(" "));
    let candidate = text(doc, "displayName")
        .or_else(|| name.and_then(|n| text(n, "formatted")))
        .map(str::to_owned)
        .or(joined)
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| user_name.to_owned());
    PersonName::parse(&candidate).map_err(|e| ScimError::invalid_value(format!("displayName: {e}")))
}

/// Whether the userName and email a resource claims are known to be free.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Claim {
    /// Not looked at yet: `write` checks that no other user holds them.
    Unchecked,
    /// Looked up in this transaction, and no user holds either.
    Free,
}

/// Writes a resource onto a user (new, or as loaded), with the lifecycle change `active` asks
/// for; returns the user as it now stands and the audit events.
pub(super) async fn write(
    tx: &mut dyn Tx,
    client: &ScimClient,
    existing: Option<Loaded>,
    mut doc: Map<String, Value>,
    password: Option<String>,
    now: OffsetDateTime,
    claim: Claim,
) -> Result<(Loaded, Vec<AuditDraft>), Failure> {
    if let Some(loaded) = &existing {
        match client.reach(tx, &loaded.0).await? {
            Reach::Governs => {}
            Reach::PlaceInOrg => {
                let loaded = existing.expect("matched as Some");
                return write_place_in_org(tx, client, loaded, &doc, password.is_some(), now).await;
            }
            Reach::Nothing => return Err(not_governed().into()),
        }
    }
    let (user_name, email) = identity(&doc)?;
    let name = display_name(&doc, &user_name)?;
    let want_active = doc.remove("active").and_then(|v| v.as_bool()).unwrap_or(true);
    let external_id = doc.remove(EXTERNAL_ID).and_then(|v| v.as_str().map(str::to_owned));
    doc.remove("userName");
    let me = existing.as_ref().map(|(u, _)| u.id);
    if claim == Claim::Unchecked && !keeps_identity(existing.as_ref(), &user_name, &email) {
        check_free(tx, me, &user_name, &email, now).await?;
    }
    let mut events = Vec::new();
    let (mut user, scim) = match existing {
        Some(loaded) => loaded,
        None => (insert_new_user(tx, client, &email, &name, password.clone(), now, &mut events).await?, None),
    };
    let was_hidden = scim.as_ref().is_some_and(|s| s.hidden_at.is_some());
    let same_user_name = scim.as_ref().is_some_and(|s| s.user_name.as_deref() == Some(user_name.as_str()));
    let changed = apply_identity(tx, &mut user, me.is_some(), (&email, &name), password, now).await?;
    let row = ScimUserRow {
        user_id: user.id,
        user_name: Some(user_name),
        external_id,
        attrs: Value::Object(doc),
        hidden_at: None,
        updated_at: now,
    };
    if same_user_name {
        tx.put_scim_attrs(&row).await?;
    } else {
        tx.put_scim_user(&row).await?;
    }
    events.extend(apply_active(tx, client, &mut user, want_active, me.is_some(), now).await?);
    if me.is_some() {
        let mut detail = client.via();
        detail["changed"] = json!(changed);
        detail["restored_from_delete"] = json!(was_hidden);
        events.push(AuditDraft::new("user.scim_updated", client.actor(), TargetType::User, user.id).detail(detail));
    }
    Ok(((user, Some(row)), events))
}

/// Whether a user keeps the userName and email it holds, and so claims nothing new.
fn keeps_identity(existing: Option<&Loaded>, user_name: &str, email: &Email) -> bool {
    existing.is_some_and(|(u, s)| {
        let held_name = s.as_ref().and_then(|s| s.user_name.as_deref()).map(str::to_lowercase);
        u.email_key == email.key() && held_name.as_deref().unwrap_or(&u.email_key) == user_name.to_lowercase()
    })
}

/// Err(uniqueness) when another user (`me` aside) holds the userName or the email, now or as an
/// erased or retired address. The answer names no one: the holder may be someone this client
/// cannot see.
async fn check_free(
    tx: &mut dyn Tx,
    me: Option<UserId>,
    user_name: &str,
    email: &Email,
    now: OffsetDateTime,
) -> Result<(), Failure> {
    let anonymized = steward_ops::users::anonymized_email_key(tx, &email.key(), now).await?;
    let (by_name, by_email) = tx.identity_holders(Some(&user_name.to_lowercase()), &email.key(), &anonymized).await?;
    if [by_name, by_email].into_iter().flatten().any(|other| Some(other.id) != me) {
        return Err(taken().into());
    }
    if tx.retired_email_holder(&email.key(), me).await?.is_some() {
        return Err(taken().into());
    }
    Ok(())
}

/// Creates the user a resource describes, a member of the token's org when it has one.
async fn insert_new_user(
    tx: &mut dyn Tx,
    client: &ScimClient,
    email: &Email,
    name: &PersonName,
    password: Option<String>,
    now: OffsetDateTime,
    events: &mut Vec<AuditDraft>,
) -> Result<UserRow, Failure> {
    let mut user = UserRow::new(email.as_str(), email.key(), name.as_str(), UserStatus::Active, now);
    user.password_hash = password;
    tx.insert_user(&user).await?;
    events.push(
        AuditDraft::new("user.created", client.actor(), TargetType::User, user.id)
            .detail(json!({ "status": user.status, "via": "scim", "scim_token_id": client.token.id }))
            .personal(json!({ "email": user.email, "name": user.name })),
    );
    if let Some(org_id) = client.token.org_id {
        let org = tx.org(org_id).await?.ok_or_else(|| Failure(ScimError::internal()))?;
        crate::routes::orgs::check_seats(tx, &org, now).await?;
        tx.insert_membership(org_id, user.id, OrgRole::Member, now).await?;
        events.push(
            AuditDraft::new("org.member_added", client.actor(), TargetType::User, user.id)
                .in_org(org_id)
                .detail(json!({ "role": OrgRole::Member, "via": "scim" })),
        );
    }
    Ok(user)
}

/// Puts the resource's email, name and password on `user`; returns what changed. A new email
/// retires the old one and voids the links sent to it; a new password ends every credential.
async fn apply_identity(
    tx: &mut dyn Tx,
    user: &mut UserRow,
    existed: bool,
    (email, name): (&Email, &PersonName),
    password: Option<String>,
    now: OffsetDateTime,
) -> Result<Vec<&'static str>, Failure> {
    let mut changed = Vec::new();
    if user.email_key != email.key() {
        tx.retire_email(user.id, &user.email_key, now).await?;
        // Links sent to the old address die with it: they were the old mailbox's to use.
        if existed {
            tx.cancel_invitations_of(user.id, now).await?;
            tx.void_resets_of(user.id, now).await?;
        }
        user.email = email.as_str().to_owned();
        user.email_key = email.key();
        changed.push("email");
    } else if user.email != email.as_str() {
        user.email = email.as_str().to_owned();
    }
    if user.name != name.as_str() {
        user.name = name.as_str().to_owned();
        changed.push("name");
    }
    if let Some(hash) = password
        && user.password_hash.as_deref() != Some(hash.as_str())
    {
        user.password_hash = Some(hash);
        changed.push("password");
        // A password the directory sets ends every session and API token the user had.
        if existed {
            tx.revoke_all_credentials(user.id, now).await?;
        }
    }
    user.updated_at = now;
    Ok(changed)
}

/// Makes the lifecycle change `active` asks for, writing the user with whatever else changed:
/// a deactivated user is reactivated, an active or suspended one deactivated on the client's
/// authority.
async fn apply_active(
    tx: &mut dyn Tx,
    client: &ScimClient,
    user: &mut UserRow,
    want_active: bool,
    existed: bool,
    now: OffsetDateTime,
) -> Result<Vec<AuditDraft>, Failure> {
    let is_active = matches!(user.status, UserStatus::Active | UserStatus::Invited);
    if want_active && user.status == UserStatus::Deactivated {
        tx.update_user(user).await?;
        user.version += 1;
        let events = steward_ops::users::reactivate(tx, user, client.actor(), now).await?;
        // A SCIM user is active, not invited, whether or not it has a password (API.md).
        if user.status == UserStatus::Invited {
            user.status = UserStatus::Active;
            tx.update_user(user).await?;
            user.version += 1;
        }
        return Ok(events);
    }
    if !want_active && (is_active || user.status == UserStatus::Suspended) {
        let deactivation = Deactivation::by(client.actor(), client.status_setter(), client.via());
        return Ok(steward_ops::users::deactivate(tx, user, deactivation, now).await?);
    }
    if existed {
        tx.update_user(user).await?;
        user.version += 1;
    }
    Ok(Vec::new())
}
