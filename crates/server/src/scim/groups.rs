//! `/Groups`: teams as SCIM groups. A token bound to one org sees that org's teams by their
//! names; an instance-wide token sees every team as "org name/team name". Members are team
//! members. An org's token adds to its teams only people already in its org; an instance-wide
//! token may add a user it governs to a team of an org they do not belong to, and they join the
//! org as `member`.

use std::collections::BTreeSet;

use axum::http::StatusCode;
use serde_json::{Map, Value, json};
use steward_core::{AuditDraft, OrgId, OrgRole, TargetType, TeamId, TeamName, TeamRole, UserId, UserStatus};
use steward_scim::resource::{EXTERNAL_ID, apply_patch, normalize, parse_patch};
use steward_scim::schema::{Attr, GROUP_ATTRS, GROUP_SCHEMA};
use steward_scim::{ScimError, ScimType};
use steward_store::{Cond, GroupField, ScimGroupRow, ScimQuery, TeamMemberRow, TeamRow, Tx};
use time::OffsetDateTime;

use super::resource::{Call, ResourceType, judge_before_body};
use super::{Failure, ListParams, ScimClient, ScimResult, base, check_if_match, list_response, meta, project, text};
use crate::state::AppState;

/// The store query of a list.
pub(super) fn query(
    client: &ScimClient,
    cond: Option<Cond<GroupField>>,
    sort: Option<(GroupField, bool)>,
    offset: u64,
    limit: u32,
) -> ScimQuery<GroupField> {
    ScimQuery { cond: cond.unwrap_or(Cond::Const(true)), sort, offset, limit, org: client.token.org_id }
}

/// The full resource.
pub(super) fn resource(state: &AppState, client: &ScimClient, g: &ScimGroupRow, members: &[TeamMemberRow]) -> Value {
    let base = base(state);
    let display =
        if client.token.org_id.is_some() { g.team.name.clone() } else { format!("{}/{}", g.org_name, g.team.name) };
    let mut doc = Map::new();
    doc.insert("schemas".into(), json!([GROUP_SCHEMA]));
    doc.insert("id".into(), json!(g.team.id));
    if let Some(ext) = &g.external_id {
        doc.insert(EXTERNAL_ID.into(), json!(ext));
    }
    doc.insert("displayName".into(), json!(display));
    let members: Vec<Value> = members
        .iter()
        .map(|m| json!({ "value": m.user_id, "$ref": format!("{base}/Users/{}", m.user_id), "type": "User" }))
        .collect();
    if !members.is_empty() {
        doc.insert("members".into(), Value::Array(members));
    }
    let location = format!("{base}/Groups/{}", g.team.id);
    doc.insert("meta".into(), meta("Group", location, g.team.created_at, g.team.updated_at, g.team.version));
    Value::Object(doc)
}

async fn visible(tx: &mut dyn Tx, client: &ScimClient, id: &str) -> Result<ScimGroupRow, Failure> {
    let not_found = || Failure(ScimError::not_found("group"));
    let id: TeamId = id.parse().map_err(|_| not_found())?;
    let g = tx.scim_group(id).await?.ok_or_else(not_found)?;
    if client.token.org_id.is_some_and(|o| o != g.team.org_id) {
        return Err(not_found());
    }
    Ok(g)
}

/// Teams as a SCIM resource type.
pub(super) struct Groups;

impl ResourceType for Groups {
    const ATTRS: &'static [Attr] = GROUP_ATTRS;

    /// Read apart from any write, to judge `If-Match` before the body.
    async fn version(cx: Call<'_>, id: &str) -> Result<i64, Failure> {
        let mut tx = cx.state.store.read().await?;
        let found = visible(tx.as_mut(), cx.client, id).await;
        tx.rollback().await?;
        Ok(found?.team.version)
    }

    async fn list(cx: Call<'_>, params: ListParams) -> ScimResult {
        let Call { state, client, .. } = cx;
        let scoped = client.token.org_id.is_some();
        let cond = params.filter()?.as_ref().map(|f| steward_scim::query::group_cond(f, scoped)).transpose()?;
        let sort = params
            .sort_by
            .as_deref()
            .map(|s| steward_scim::query::group_sort(s, scoped))
            .transpose()?
            .map(|f| (f, params.descending));
        let q = query(client, cond, sort, params.start_index - 1, params.count);
        let mut tx = state.store.read().await?;
        let (total, rows) = tx.scim_groups(&q).await?;
        let mut resources = Vec::with_capacity(rows.len());
        for g in &rows {
            let members = tx.team_members(g.team.id).await?;
            resources.push(project(resource(state, client, g, &members), &params.projection, GROUP_ATTRS));
        }
        tx.rollback().await?;
        Ok(list_response(total, params.start_index, resources))
    }

    async fn read(cx: Call<'_>, id: &str) -> Result<Value, Failure> {
        let Call { state, client, .. } = cx;
        let mut tx = state.store.read().await?;
        let g = visible(tx.as_mut(), client, id).await?;
        let members = tx.team_members(g.team.id).await?;
        tx.rollback().await?;
        Ok(resource(state, client, &g, &members))
    }

    async fn create(cx: Call<'_>, body: &Value) -> Result<(StatusCode, Value), Failure> {
        let Call { state, client, .. } = cx;
        Ok((StatusCode::CREATED, create_group(state, client, body).await?))
    }

    async fn replace(cx: Call<'_>, id: &str, body: &Value) -> Result<Value, Failure> {
        let Call { state, client, headers } = cx;
        judge_before_body::<Self>(cx, id).await?;
        let doc = normalize(body, GROUP_ATTRS, GROUP_SCHEMA)?;
        let now = state.clock.now();
        let mut tx = state.store.write().await?;
        let g = visible(tx.as_mut(), client, id).await?;
        check_if_match(headers, g.team.version)?;
        let value = write(tx, state, client, g, doc, now).await?;
        Ok(value)
    }

    async fn patch(cx: Call<'_>, id: &str, body: &Value) -> Result<Value, Failure> {
        let Call { state, client, headers } = cx;
        judge_before_body::<Self>(cx, id).await?;
        let ops = parse_patch(body)?;
        let now = state.clock.now();
        let mut tx = state.store.write().await?;
        let g = visible(tx.as_mut(), client, id).await?;
        check_if_match(headers, g.team.version)?;
        let members = tx.team_members(g.team.id).await?;
        let mut doc = normalize(&resource(state, client, &g, &members), GROUP_ATTRS, GROUP_SCHEMA)?;
        apply_patch(&mut doc, &ops, GROUP_ATTRS, GROUP_SCHEMA)?;
        write(tx, state, client, g, doc, now).await
    }

    async fn delete(cx: Call<'_>, id: &str) -> Result<(), Failure> {
        let Call { state, client, headers } = cx;
        let now = state.clock.now();
        let mut tx = state.store.write().await?;
        let g = visible(tx.as_mut(), client, id).await?;
        check_if_match(headers, g.team.version)?;
        tx.archive_team(g.team.id, now).await?;
        let event = AuditDraft::new("team.archived", client.actor(), TargetType::Team, g.team.id)
            .in_org(g.team.org_id)
            .detail(client.via());
        state.commit(tx, vec![event], now).await?;
        Ok(())
    }
}

/// The org and team name a displayName names, for this client.
async fn place(tx: &mut dyn Tx, client: &ScimClient, display: &str) -> Result<(OrgId, TeamName), Failure> {
    let bad = |m: &str| Failure(ScimError::invalid_value(m.to_owned()));
    let (org_id, team) = match client.token.org_id {
        // "org/team" is how instance-wide tokens name teams: an org's token may not name one so.
        Some(_) if display.contains('/') => {
            return Err(bad("an organization's token names its teams without an organization: no \"/\""));
        }
        Some(org) => (org, display),
        None => {
            let (org_name, team) = display
                .split_once('/')
                .ok_or_else(|| bad("displayName is \"org name/team name\" for an instance-wide token"))?;
            let orgs = tx.orgs_named(org_name.trim()).await?;
            match orgs.as_slice() {
                [one] => (one.id, team),
                [] => return Err(bad(&format!("no organization is named {org_name:?}"))),
                _ => return Err(bad(&format!("several organizations are named {org_name:?}"))),
            }
        }
    };
    let name = TeamName::parse(team).map_err(|e| bad(&format!("displayName: {e}")))?;
    Ok((org_id, name))
}

/// The member ids a resource lists.
fn member_ids(doc: &Map<String, Value>) -> Result<BTreeSet<UserId>, ScimError> {
    let mut ids = BTreeSet::new();
    for m in doc.get("members").and_then(Value::as_array).into_iter().flatten() {
        let value = m
            .get("value")
            .and_then(Value::as_str)
            .or_else(|| m.get("$ref").and_then(Value::as_str).and_then(|r| r.rsplit('/').next()))
            .ok_or_else(|| ScimError::invalid_value("a member needs a value"))?;
        let id = value.parse().map_err(|_| ScimError::invalid_value(format!("no user {value:?}")))?;
        ids.insert(id);
    }
    Ok(ids)
}

pub(super) async fn create_group(state: &AppState, client: &ScimClient, body: &Value) -> Result<Value, Failure> {
    let doc = normalize(body, GROUP_ATTRS, GROUP_SCHEMA)?;
    let now = state.clock.now();
    let mut tx = state.store.write().await?;
    let display = text(&doc, "displayName").unwrap_or_default().to_owned();
    let (org_id, name) = place(tx.as_mut(), client, &display).await?;
    let org = tx.org(org_id).await?.ok_or_else(|| Failure(ScimError::invalid_value("no such organization")))?;
    let (team, created) = crate::routes::teams::new_team(tx.as_mut(), &org, &name, client.actor(), now).await?;
    let mut events = vec![created.detail(client.via())];
    tx.put_scim_group(team.id, text(&doc, EXTERNAL_ID), now).await?;
    events.extend(set_members(tx.as_mut(), client, &team, &member_ids(&doc)?, now).await?);
    let g = tx.scim_group(team.id).await?.ok_or_else(|| Failure(ScimError::internal()))?;
    let members = tx.team_members(team.id).await?;
    state.commit(tx, events, now).await?;
    Ok(resource(state, client, &g, &members))
}

/// Writes a whole resource onto a team: its name, external id and members.
async fn write(
    mut tx: Box<dyn Tx>,
    state: &AppState,
    client: &ScimClient,
    g: ScimGroupRow,
    doc: Map<String, Value>,
    now: OffsetDateTime,
) -> Result<Value, Failure> {
    let display = text(&doc, "displayName").unwrap_or_default().to_owned();
    let (org_id, name) = place(tx.as_mut(), client, &display).await?;
    if org_id != g.team.org_id {
        return Err(ScimError::new(ScimType::Mutability, "a group cannot move to another organization").into());
    }
    let mut team = g.team.clone();
    let mut events = Vec::new();
    if team.name != name.as_str() {
        team.name = name.as_str().to_owned();
        events.push(
            AuditDraft::new("team.renamed", client.actor(), TargetType::Team, team.id)
                .in_org(team.org_id)
                .detail(client.via())
                .personal(json!({ "from": g.team.name, "to": team.name })),
        );
    }
    team.updated_at = now;
    tx.update_team(&team).await?;
    team.version += 1;
    tx.put_scim_group(team.id, text(&doc, EXTERNAL_ID), now).await?;
    events.extend(set_members(tx.as_mut(), client, &team, &member_ids(&doc)?, now).await?);
    let g = tx.scim_group(team.id).await?.ok_or_else(|| Failure(ScimError::internal()))?;
    let members = tx.team_members(team.id).await?;
    state.commit(tx, events, now).await?;
    Ok(resource(state, client, &g, &members))
}

/// Makes the team's current members exactly `wanted`: new ones join (through an instance-wide
/// token, the org too when they are not in it), the others leave (kept in history).
async fn set_members(
    tx: &mut dyn Tx,
    client: &ScimClient,
    team: &TeamRow,
    wanted: &BTreeSet<UserId>,
    now: OffsetDateTime,
) -> Result<Vec<AuditDraft>, Failure> {
    let current = tx.team_members(team.id).await?;
    let mut events = Vec::new();
    for m in current.iter().filter(|m| !wanted.contains(&m.user_id)) {
        tx.end_team_member(team.id, m.user_id, now).await?;
        events.push(
            AuditDraft::new("team.member_removed", client.actor(), TargetType::User, m.user_id)
                .in_org(team.org_id)
                .detail(json!({ "team_id": team.id, "role": m.role, "via": "scim" })),
        );
    }
    for id in wanted.iter().filter(|id| !current.iter().any(|m| m.user_id == **id)) {
        // Unknown, invisible and out-of-reach ids answer alike, so the answer reveals nothing.
        let unknown = || Failure(ScimError::invalid_value(format!("no user {id}")));
        let user = tx.user(*id).await?.ok_or_else(unknown)?;
        if user.kind != steward_core::UserKind::Person || user.status == UserStatus::Anonymized {
            return Err(unknown());
        }
        // The identity provider's assignment of a deactivated user is kept dormant: it grants
        // nothing until the user is reactivated.
        let dormant = !user.status.can_receive_roles();
        if tx.membership_in(team.org_id, *id).await?.is_none() {
            // An org's directory manages only the place of people already in its org; someone
            // else joins it by invitation. An instance-wide directory brings in users it governs.
            if client.token.org_id.is_some() || !client.reach(tx, &user).await?.governs() {
                return Err(unknown());
            }
            let org = tx.org(team.org_id).await?.ok_or_else(|| Failure(ScimError::internal()))?;
            crate::routes::orgs::check_seats(tx, &org, now).await?;
            tx.insert_membership(team.org_id, *id, OrgRole::Member, now).await?;
            events.push(
                AuditDraft::new("org.member_added", client.actor(), TargetType::User, *id)
                    .in_org(team.org_id)
                    .detail(json!({ "role": OrgRole::Member, "via": "scim" })),
            );
        }
        tx.put_team_member(team.id, *id, TeamRole::TeamMember, now).await?;
        if dormant {
            tx.set_memberships_dormant(*id, true).await?;
        }
        events
            .push(AuditDraft::new("team.member_put", client.actor(), TargetType::User, *id).in_org(team.org_id).detail(
            json!({ "team_id": team.id, "from": null, "to": TeamRole::TeamMember, "via": "scim", "dormant": dormant }),
        ));
    }
    Ok(events)
}
