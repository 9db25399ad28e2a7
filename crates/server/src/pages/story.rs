//! What happened, told as people read it: audit events as sentences with names and from → to
//! values, and a user's status with since when, by whom and why.

use std::collections::HashMap;

use serde_json::Value;
use steward_core::{OrgId, UserId};

use crate::error::ApiError;
use crate::views::AuditEventView;

/// Names of the people and orgs events speak of, each read once.
#[derive(Default)]
pub struct Names {
    people: HashMap<String, String>,
    orgs: HashMap<String, String>,
}

impl Names {
    /// The name of the user `id` (the id itself when there is no such user), or "System" for none.
    pub async fn person(&mut self, tx: &mut dyn steward_store::Tx, id: Option<&str>) -> Result<String, ApiError> {
        let Some(id) = id else { return Ok("System".into()) };
        if let Some(name) = self.people.get(id) {
            return Ok(name.clone());
        }
        let name = match id.parse::<UserId>() {
            Ok(uid) => tx.user(uid).await?.map_or_else(|| id.to_owned(), |u| u.name),
            Err(_) => id.to_owned(),
        };
        self.people.insert(id.to_owned(), name.clone());
        Ok(name)
    }

    /// The name of the org `id`, or "an organization" when it cannot be read.
    pub async fn org(&mut self, tx: &mut dyn steward_store::Tx, id: &str) -> Result<String, ApiError> {
        if let Some(name) = self.orgs.get(id) {
            return Ok(name.clone());
        }
        let name = match id.parse::<OrgId>() {
            Ok(oid) => tx.org(oid).await?.map_or_else(|| "an organization".to_owned(), |o| o.name),
            Err(_) => "an organization".to_owned(),
        };
        self.orgs.insert(id.to_owned(), name.clone());
        Ok(name)
    }
}

/// Who an event speaks of, by name.
pub struct Cast {
    pub actor: String,
    pub impersonator: Option<String>,
    /// The target's name: a person's or an org's; else the target's kind and id.
    pub target: String,
    /// The org it happened in, when one.
    pub org: Option<String>,
}

impl Cast {
    pub async fn of(tx: &mut dyn steward_store::Tx, names: &mut Names, e: &AuditEventView) -> Result<Cast, ApiError> {
        let actor = names.person(tx, e.actor_id.as_deref()).await?;
        let impersonator = match &e.impersonator_id {
            Some(i) => Some(names.person(tx, Some(i)).await?),
            None => None,
        };
        let target = match e.target_type.as_str() {
            "user" => names.person(tx, Some(&e.target_id)).await?,
            "org" => names.org(tx, &e.target_id).await?,
            other => format!("{} {}", other.replace('_', " "), e.target_id),
        };
        let org = match &e.org_id {
            Some(o) => Some(names.org(tx, o).await?),
            None => None,
        };
        Ok(Cast { actor, impersonator, target, org })
    }
}

/// A role as people read it: `team_member` → "team member".
pub fn role_words(role: &str) -> String {
    role.replace('_', " ")
}

fn text(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) => Some(role_words(s)),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// The sentence for `e` (with the reason, when its personal data is present).
pub fn sentence(e: &AuditEventView, c: &Cast) -> String {
    let (a, t, d) = (&c.actor, &c.target, &e.detail);
    let org = c.org.clone().unwrap_or_else(|| "an organization".into());
    let role = text(d, "role").or_else(|| text(d, "to")).unwrap_or_default();
    let from_to = match (text(d, "from"), text(d, "to")) {
        (Some(f), Some(to)) => format!(" from {f} to {to}"),
        _ => String::new(),
    };
    let said = match e.kind.as_str() {
        "user.created" => format!("{a} created {t}"),
        "user.activated" => format!("{t} activated their account"),
        "user.deactivated" => format!("{a} deactivated {t}"),
        "user.reactivated" => format!("{a} reactivated {t}"),
        "user.suspended" => format!("{a} suspended {t}"),
        "user.unsuspended" => format!("{a} lifted the suspension of {t}"),
        "user.anonymized" => format!("{a} anonymized {t}"),
        "user.login" => format!("{a} signed in"),
        "user.locked" => format!("{t} was locked out after failed sign-ins"),
        "user.unlocked" => format!("{a} unlocked {t}"),
        "user.impersonation_started" => format!("{a} started Login as user as {t}"),
        "user.impersonation_ended" => format!("Login as user as {t} ended"),
        "user.password_changed" => format!("{a} changed the password of {t}"),
        "user.password_reset" => format!("{t} set a new password with a reset link"),
        "user.password_reset_requested" => format!("A password reset link was sent to {t}"),
        "user.sessions_revoked" => format!("{a} signed {t} out everywhere"),
        "user.roles_changed" => {
            let list = |k: &str| {
                d.get(k)
                    .and_then(Value::as_array)
                    .map(|v| v.iter().filter_map(Value::as_str).map(role_words).collect::<Vec<_>>().join(", "))
            };
            let mut s = format!("{a} changed the instance roles of {t}");
            if let Some(added) = list("added").filter(|l| !l.is_empty()) {
                s.push_str(&format!(": added {added}"));
            }
            if let Some(removed) = list("removed").filter(|l| !l.is_empty()) {
                s.push_str(&format!("; removed {removed}"));
            }
            s
        }
        "user.notifications_changed" => format!("{a} changed the notification settings of {t}"),
        "user.totp_enabled" => format!("{t} turned on two-factor sign-in"),
        "user.totp_disabled" => format!("{a} turned off two-factor sign-in for {t}"),
        "user.totp_reset" => format!("{a} reset two-factor sign-in of {t}"),
        "user.updated" | "user.scim_updated" => format!("{a} updated the profile of {t}"),
        "user.sso_linked" => format!("{t} was linked to a single sign-on identity"),
        "org.created" => format!("{a} created {t}"),
        "org.updated" => format!("{a} updated {t}"),
        "org.license_changed" => format!("{a} changed the license of {t}"),
        "org.deprovisioned" => format!("{a} deprovisioned {t}"),
        "org.restored" => format!("{a} restored {t}"),
        "org.frozen" => format!("{t} froze"),
        "org.purged" => format!("{a} purged {t}"),
        "org.ownership_transferred" => format!("{a} transferred the ownership of {t}"),
        "org.member_added" => format!("{a} added {t} to {org} as {role}"),
        "org.member_removed" => format!("{a} removed {t} from {org}"),
        "org.member_role_changed" => format!("{a} changed the role of {t} in {org}{from_to}"),
        "team.member_put" => format!("{a} put {t} in a team of {org} as {role}"),
        "team.member_removed" => format!("{a} removed {t} from a team of {org}"),
        "invitation.created" => format!("{a} invited {t} to {org} as {role}"),
        "invitation.accepted" => format!("{t} accepted an invitation"),
        "invitation.revoked" => format!("{a} revoked the invitation of {t} to {org}"),
        kind => format!("{a}: {} — {t}{from_to}", kind.replace(['.', '_'], " ")),
    };
    let mut said = said;
    if let Some(i) = &c.impersonator {
        said.push_str(&format!(" (as user, by {i})"));
    }
    match e.personal.as_ref().and_then(|p| p.get("reason")).and_then(Value::as_str) {
        Some(reason) => format!("{said}, saying “{reason}”."),
        None => format!("{said}."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(kind: &str, detail: Value, personal: Option<Value>) -> AuditEventView {
        AuditEventView {
            id: "e".into(),
            seq: 1,
            at: time::OffsetDateTime::UNIX_EPOCH,
            kind: kind.into(),
            actor_id: None,
            impersonator_id: None,
            target_type: "user".into(),
            target_id: "u".into(),
            org_id: None,
            detail,
            personal,
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    fn cast() -> Cast {
        Cast { actor: "Ada".into(), impersonator: None, target: "Bob".into(), org: Some("Acme".into()) }
    }

    #[test]
    fn events_read_as_sentences_with_names_values_and_reasons() {
        let said =
            |kind: &str, detail: Value, personal: Option<Value>| sentence(&event(kind, detail, personal), &cast());
        assert_eq!(
            said("org.member_role_changed", json!({"from": "member", "to": "admin"}), None),
            "Ada changed the role of Bob in Acme from member to admin."
        );
        assert_eq!(
            said("team.member_put", json!({"to": "team_member"}), None),
            "Ada put Bob in a team of Acme as team member."
        );
        assert_eq!(
            said("user.deactivated", json!({}), Some(json!({"reason": "Left"}))),
            "Ada deactivated Bob, saying “Left”."
        );
        assert_eq!(
            said("user.roles_changed", json!({"added": ["admin"], "removed": []}), None),
            "Ada changed the instance roles of Bob: added admin."
        );
        assert_eq!(said("webhook.created", json!({}), None), "Ada: webhook created — Bob.");
        let mut c = cast();
        c.impersonator = Some("Root".into());
        assert_eq!(
            sentence(&event("org.member_removed", json!({}), None), &c),
            "Ada removed Bob from Acme (as user, by Root)."
        );
    }
}
