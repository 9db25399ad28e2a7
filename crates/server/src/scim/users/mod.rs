//! `/Users`: Steward users as SCIM resources. `active: false` deactivates exactly as the API does,
//! `DELETE` deactivates and hides the user from SCIM, and a later `POST` of the same `userName` or
//! email brings that same user back.

use axum::http::StatusCode;
use serde_json::{Map, Value, json};
use steward_core::governance::Reach;
use steward_core::{AuditDraft, Email, OrgRole, PersonName, TargetType, UserId, UserStatus};
use steward_ops::users::Deactivation;
use steward_scim::resource::{EXTERNAL_ID, apply_patch, normalize, parse_patch};
use steward_scim::schema::{Attr, USER_ATTRS, USER_SCHEMA};
use steward_scim::{ScimError, ScimType};
use steward_store::{Cond, ScimQuery, ScimUserRow, Tx, UserField, UserRow};
use time::OffsetDateTime;

use super::resource::{Call, ResourceType, judge_before_body};
use super::{
    Failure, ListParams, ScimClient, ScimResult, base, check_if_match, list_response, meta, not_governed, project,
    taken, text,
};
use crate::state::AppState;

type Loaded = (UserRow, Option<ScimUserRow>);

mod write;
use write::{Claim, identity, leave_org, write};

/// The store query of a list.
pub(super) fn query(
    client: &ScimClient,
    cond: Option<Cond<UserField>>,
    sort: Option<(UserField, bool)>,
    offset: u64,
    limit: u32,
) -> ScimQuery<UserField> {
    ScimQuery { cond: cond.unwrap_or(Cond::Const(true)), sort, offset, limit, org: client.token.org_id }
}

/// The SCIM attributes of a user that has none of its own: what the API gave it.
fn default_attrs(user: &UserRow) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("displayName".into(), json!(user.name));
    m.insert("emails".into(), json!([{ "value": user.email, "primary": true }]));
    m
}

/// The full resource.
pub(super) fn resource(state: &AppState, (user, scim): &Loaded) -> Value {
    let mut doc = scim.as_ref().and_then(|s| s.attrs.as_object().cloned()).unwrap_or_else(|| default_attrs(user));
    doc.insert("schemas".into(), json!([USER_SCHEMA]));
    doc.insert("id".into(), json!(user.id));
    if let Some(ext) = scim.as_ref().and_then(|s| s.external_id.clone()) {
        doc.insert(EXTERNAL_ID.into(), json!(ext));
    }
    let user_name = scim.as_ref().and_then(|s| s.user_name.clone()).unwrap_or_else(|| user.email.clone());
    doc.insert("userName".into(), json!(user_name));
    doc.insert("active".into(), json!(matches!(user.status, UserStatus::Active | UserStatus::Invited)));
    let location = format!("{}/Users/{}", base(state), user.id);
    doc.insert("meta".into(), meta("User", location, user.created_at, user.updated_at, user.version));
    Value::Object(doc)
}

/// The user a SCIM client may see under this id.
async fn visible(tx: &mut dyn Tx, client: &ScimClient, id: &str) -> Result<Loaded, Failure> {
    let not_found = || Failure(ScimError::not_found("user"));
    let id: UserId = id.parse().map_err(|_| not_found())?;
    // A read ends with its last query (an instance-wide client asks only this one).
    if client.token.org_id.is_none() {
        tx.last_read();
    }
    let loaded = tx.scim_user(id).await?.ok_or_else(not_found)?;
    let (user, scim) = &loaded;
    if user.kind != steward_core::UserKind::Person
        || user.status == UserStatus::Anonymized
        || scim.as_ref().is_some_and(|s| s.hidden_at.is_some())
    {
        return Err(not_found());
    }
    if let Some(org) = client.token.org_id {
        tx.last_read();
        if tx.membership_in(org, user.id).await?.is_none() {
            return Err(not_found());
        }
    }
    Ok(loaded)
}

/// Users as a SCIM resource type.
pub(super) struct Users;

impl ResourceType for Users {
    const ATTRS: &'static [Attr] = USER_ATTRS;

    /// Read apart from any write, to judge `If-Match` before the body.
    async fn version(cx: Call<'_>, id: &str) -> Result<i64, Failure> {
        let mut tx = cx.state.store.read().await?;
        let found = visible(tx.as_mut(), cx.client, id).await;
        tx.rollback().await?;
        Ok(found?.0.version)
    }

    async fn list(cx: Call<'_>, params: ListParams) -> ScimResult {
        let Call { state, client, .. } = cx;
        let cond = params.filter()?.as_ref().map(steward_scim::query::user_cond).transpose()?;
        let sort =
            params.sort_by.as_deref().map(steward_scim::query::user_sort).transpose()?.map(|f| (f, params.descending));
        let q = query(client, cond, sort, params.start_index - 1, params.count);
        let mut tx = state.store.read().await?;
        tx.last_read();
        let (total, rows) = tx.scim_users(&q).await?;
        tx.rollback().await?;
        let resources = rows.iter().map(|r| project(resource(state, r), &params.projection, USER_ATTRS)).collect();
        Ok(list_response(total, params.start_index, resources))
    }

    async fn read(cx: Call<'_>, id: &str) -> Result<Value, Failure> {
        let Call { state, client, .. } = cx;
        let mut tx = state.store.read().await?;
        let loaded = visible(tx.as_mut(), client, id).await?;
        tx.rollback().await?;
        Ok(resource(state, &loaded))
    }

    /// Creates a user, or brings back the user a `DELETE` hid.
    async fn create(cx: Call<'_>, body: &Value) -> Result<(StatusCode, Value), Failure> {
        let Call { state, client, .. } = cx;
        let mut doc = normalize(&with_defaults(body, true), USER_ATTRS, USER_SCHEMA)?;
        let password = password_of(state, client, &mut doc).await?;
        let now = state.clock.now();
        let (user_name, email) = identity(&doc)?;
        let mut tx = state.store.write().await?;
        // The user hidden by DELETE comes back, the same one, when its userName or email returns.
        let name_key = user_name.to_lowercase();
        let anonymized = steward_ops::users::anonymized_email_key(tx.as_mut(), &email.key(), now).await?;
        let (by_name, by_email) = tx.identity_holders(Some(&name_key), &email.key(), &anonymized).await?;
        // When no one holds either, `write` need not look again.
        let claim = if by_name.is_none() && by_email.is_none() { Claim::Free } else { Claim::Unchecked };
        for candidate in [by_name, by_email].into_iter().flatten() {
            if let Some(loaded) = tx.scim_user(candidate.id).await?
                && loaded.1.as_ref().is_some_and(|s| s.hidden_at.is_some())
                && candidate.status != UserStatus::Anonymized
                && client.reach(tx.as_mut(), &loaded.0).await?.governs()
            {
                let (user, events) =
                    write(tx.as_mut(), client, Some(loaded), doc, password, now, Claim::Unchecked).await?;
                state.commit(tx, events, now).await?;
                return Ok((StatusCode::CREATED, resource(state, &user)));
            }
        }
        let (user, events) = write(tx.as_mut(), client, None, doc, password, now, claim).await?;
        state.commit(tx, events, now).await?;
        Ok((StatusCode::CREATED, resource(state, &user)))
    }

    /// `PUT /Users/{id}`.
    async fn replace(cx: Call<'_>, id: &str, body: &Value) -> Result<Value, Failure> {
        let Call { state, client, headers } = cx;
        judge_before_body::<Self>(cx, id).await?;
        let explicit = body.as_object().is_some_and(|o| o.keys().any(|k| k.eq_ignore_ascii_case("active")));
        let mut doc = normalize(&with_defaults(body, true), USER_ATTRS, USER_SCHEMA)?;
        let password = password_of(state, client, &mut doc).await?;
        let now = state.clock.now();
        let mut tx = state.store.write().await?;
        let loaded = visible(tx.as_mut(), client, id).await?;
        check_if_match(headers, loaded.0.version)?;
        if !explicit {
            doc.insert("active".into(), json!(matches!(loaded.0.status, UserStatus::Active | UserStatus::Invited)));
        }
        let (user, events) = write(tx.as_mut(), client, Some(loaded), doc, password, now, Claim::Unchecked).await?;
        state.commit(tx, events, now).await?;
        Ok(resource(state, &user))
    }

    /// `PATCH /Users/{id}`.
    async fn patch(cx: Call<'_>, id: &str, body: &Value) -> Result<Value, Failure> {
        let Call { state, client, headers } = cx;
        judge_before_body::<Self>(cx, id).await?;
        let ops = parse_patch(body)?;
        // A password in a PATCH is hashed before the write transaction, like in POST and PUT.
        let mut password = None;
        for op in &ops {
            let sets_password = op.path.as_deref().is_some_and(|p| p.eq_ignore_ascii_case("password"));
            let value = if sets_password {
                op.value.clone()
            } else if op.path.is_none() {
                op.value.as_ref().and_then(|v| v.get("password")).cloned()
            } else {
                None
            };
            if let Some(v) = value {
                let mut holder = Map::new();
                holder.insert("password".into(), v);
                password = password_of(state, client, &mut holder).await?;
            }
        }
        let now = state.clock.now();
        let mut tx = state.store.write().await?;
        let loaded = visible(tx.as_mut(), client, id).await?;
        check_if_match(headers, loaded.0.version)?;
        let current = resource(state, &loaded);
        let mut doc = normalize(&current, USER_ATTRS, USER_SCHEMA)?;
        apply_patch(&mut doc, &ops, USER_ATTRS, USER_SCHEMA)?;
        doc.remove("password");
        let (user, events) = write(tx.as_mut(), client, Some(loaded), doc, password, now, Claim::Unchecked).await?;
        state.commit(tx, events, now).await?;
        Ok(resource(state, &user))
    }

    /// `DELETE /Users/{id}`: deactivation, and the user is no longer seen through SCIM.
    async fn delete(cx: Call<'_>, id: &str) -> Result<(), Failure> {
        let Call { state, client, headers } = cx;
        let now = state.clock.now();
        let mut tx = state.store.write().await?;
        let (mut user, scim) = visible(tx.as_mut(), client, id).await?;
        check_if_match(headers, user.version)?;
        match client.reach(tx.as_mut(), &user).await? {
            Reach::Governs => {}
            Reach::PlaceInOrg => {
                let event = leave_org(tx.as_mut(), client, &user, now).await?;
                state.commit(tx, vec![event], now).await?;
                return Ok(());
            }
            Reach::Nothing => return Err(not_governed().into()),
        }
        let mut events = Vec::new();
        if user.status != UserStatus::Deactivated {
            let by = client.status_setter();
            events = steward_ops::users::deactivate(
                tx.as_mut(),
                &mut user,
                Deactivation::by(client.actor(), by, client.via()),
                now,
            )
            .await?;
        }
        let mut row = scim.unwrap_or_else(|| ScimUserRow {
            user_id: user.id,
            user_name: None,
            external_id: None,
            attrs: Value::Object(default_attrs(&user)),
            hidden_at: None,
            updated_at: now,
        });
        row.hidden_at = Some(now);
        row.updated_at = now;
        tx.put_scim_user(&row).await?;
        events
            .push(AuditDraft::new("user.scim_deleted", client.actor(), TargetType::User, user.id).detail(client.via()));
        state.commit(tx, events, now).await?;
        Ok(())
    }
}

/// The password a resource sets, hashed before any transaction opens, within the token's budget.
async fn password_of(
    state: &AppState,
    client: &ScimClient,
    doc: &mut Map<String, Value>,
) -> Result<Option<String>, Failure> {
    match doc.remove("password") {
        Some(Value::String(p)) => {
            if p.chars().count() < 12 {
                return Err(ScimError::invalid_value("password needs at least 12 characters").into());
            }
            client.spend_passwords(state, 1)?;
            Ok(Some(state.passwords.hash_in_background(&p).await?))
        }
        _ => Ok(None),
    }
}

/// The resource with what identity providers often leave out filled in: `active` as given, or
/// `default`; and, when it has no `emails` and its userName is an email address (Entra ID sends
/// a user without a mail attribute so), that address as its one email.
fn with_defaults(body: &Value, default: bool) -> Value {
    let mut body = body.clone();
    let Some(obj) = body.as_object_mut() else { return body };
    if !obj.keys().any(|k| k.eq_ignore_ascii_case("active")) {
        obj.insert("active".into(), Value::Bool(default));
    }
    let has_emails =
        obj.iter().any(|(k, v)| k.eq_ignore_ascii_case("emails") && v.as_array().is_some_and(|a| !a.is_empty()));
    let address = obj
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("userName"))
        .and_then(|(_, v)| v.as_str())
        .map(str::trim)
        .filter(|u| u.contains('@'))
        .map(str::to_owned);
    if !has_emails && let Some(address) = address {
        obj.retain(|k, _| !k.eq_ignore_ascii_case("emails"));
        obj.insert("emails".into(), json!([{"value": address, "primary": true}]));
    }
    body
}
