//! Audit events and their hash chain. An event's hash covers the previous hash and a canonical
//! encoding of the event; personal data sits apart and only its digest enters the hash, so that
//! erasing it later leaves the chain verifiable.

use serde::Serialize;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{OrgId, UserId};

/// The `prev_hash` of the first event.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Who did it: the user acting, and the admin behind them when impersonating.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Actor {
    /// The user in whose name the change was made; `None` for the system itself.
    pub user_id: Option<UserId>,
    /// The instance admin impersonating that user, if any.
    pub impersonator_id: Option<UserId>,
}

impl Actor {
    /// Steward itself (start-up, CLI, scheduled jobs).
    pub const SYSTEM: Actor = Actor { user_id: None, impersonator_id: None };

    /// A user acting in their own session.
    pub fn user(id: UserId) -> Self {
        Actor { user_id: Some(id), impersonator_id: None }
    }
}

/// What kind of thing an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetType {
    /// A user (also for membership events, with the org in `org_id`).
    User,
    /// An organization.
    Org,
    /// A team.
    Team,
    /// A login session.
    Session,
    /// An API token.
    ApiToken,
    /// The instance settings.
    Instance,
    /// An instance role (a named permission set).
    Role,
}

impl TargetType {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetType::User => "user",
            TargetType::Org => "org",
            TargetType::Team => "team",
            TargetType::Session => "session",
            TargetType::ApiToken => "api_token",
            TargetType::Instance => "instance",
            TargetType::Role => "role",
        }
    }
}

/// An event as a transition produces it, before the store gives it a place in the chain.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditDraft {
    /// Dotted event type, such as `user.created`.
    pub kind: &'static str,
    /// Who did it.
    pub actor: Actor,
    /// What it is about.
    pub target_type: TargetType,
    /// The target's id.
    pub target_id: String,
    /// The org it concerns, if any.
    pub org_id: Option<OrgId>,
    /// Facts without personal data: ids, roles, states, flags.
    pub detail: serde_json::Value,
    /// Personal data (names, emails, free-text reasons), kept apart so that it can be erased.
    pub personal: Option<serde_json::Value>,
}

impl AuditDraft {
    /// A draft with empty detail.
    pub fn new(kind: &'static str, actor: Actor, target_type: TargetType, target_id: impl ToString) -> Self {
        AuditDraft {
            kind,
            actor,
            target_type,
            target_id: target_id.to_string(),
            org_id: None,
            detail: serde_json::Value::Object(Default::default()),
            personal: None,
        }
    }

    /// Sets the org the event concerns.
    pub fn in_org(mut self, org_id: OrgId) -> Self {
        self.org_id = Some(org_id);
        self
    }

    /// Sets the org the event concerns, when there is one.
    pub fn in_org_opt(mut self, org_id: Option<OrgId>) -> Self {
        self.org_id = org_id;
        self
    }

    /// Sets the non-personal detail.
    pub fn detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = detail;
        self
    }

    /// Sets the personal part.
    pub fn personal(mut self, personal: serde_json::Value) -> Self {
        self.personal = Some(personal);
        self
    }

    /// Gives the draft its place in the chain after `prev_hash`.
    pub fn seal(self, seq: i64, at: OffsetDateTime, prev_hash: &str) -> AuditRecord {
        let at = truncate_to_micros(at);
        let personal = self.personal.as_ref().map(canonical_json);
        let personal_digest = personal.as_deref().map(sha256_hex);
        let mut record = AuditRecord {
            id: Uuid::now_v7(),
            seq,
            at,
            kind: self.kind.to_owned(),
            actor_id: self.actor.user_id,
            impersonator_id: self.actor.impersonator_id,
            target_type: self.target_type.as_str().to_owned(),
            target_id: self.target_id,
            org_id: self.org_id,
            detail: canonical_json(&self.detail),
            personal,
            personal_digest,
            prev_hash: prev_hash.to_owned(),
            hash: String::new(),
        };
        record.hash = record.computed_hash();
        record
    }
}

/// An event as stored: sealed into the chain.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    /// The event's id.
    pub id: Uuid,
    /// Its position in the chain, from 1 without gaps.
    pub seq: i64,
    /// When it happened (microsecond precision).
    pub at: OffsetDateTime,
    /// Dotted event type.
    pub kind: String,
    /// The acting user.
    pub actor_id: Option<UserId>,
    /// The impersonating admin.
    pub impersonator_id: Option<UserId>,
    /// What kind of thing the target is.
    pub target_type: String,
    /// The target's id.
    pub target_id: String,
    /// The org concerned.
    pub org_id: Option<OrgId>,
    /// Canonical JSON of the non-personal detail, exactly as hashed.
    pub detail: String,
    /// Canonical JSON of the personal part; `None` when there was none or it was erased.
    pub personal: Option<String>,
    /// SHA-256 of `personal` as first written; it stays after erasure.
    pub personal_digest: Option<String>,
    /// The hash of the event before.
    pub prev_hash: String,
    /// This event's hash.
    pub hash: String,
}

impl AuditRecord {
    /// Recomputes the hash from the fields.
    pub fn computed_hash(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"steward-audit-v1");
        let micros = (self.at.unix_timestamp_nanos() / 1000).to_string();
        let actor = self.actor_id.map(|u| u.to_string()).unwrap_or_default();
        let impersonator = self.impersonator_id.map(|u| u.to_string()).unwrap_or_default();
        let org = self.org_id.map(|o| o.to_string()).unwrap_or_default();
        for field in [
            self.id.to_string().as_str(),
            &self.seq.to_string(),
            &micros,
            &self.kind,
            &actor,
            &impersonator,
            &self.target_type,
            &self.target_id,
            &org,
            &self.detail,
            self.personal_digest.as_deref().unwrap_or(""),
            &self.prev_hash,
        ] {
            h.update((field.len() as u64).to_be_bytes());
            h.update(field.as_bytes());
        }
        hex(&h.finalize())
    }
}

/// Walks a chain in `seq` order and reports the first event that does not hold.
#[derive(Debug, Clone)]
pub struct ChainCheck {
    expected_prev: String,
    expected_seq: i64,
    checked: u64,
    first_bad_seq: Option<i64>,
}

impl Default for ChainCheck {
    fn default() -> Self {
        ChainCheck { expected_prev: GENESIS_HASH.to_owned(), expected_seq: 1, checked: 0, first_bad_seq: None }
    }
}

impl ChainCheck {
    /// A check that starts after an archived prefix ending with event `seq` of hash `hash`.
    pub fn after(seq: i64, hash: &str) -> Self {
        ChainCheck { expected_prev: hash.to_owned(), expected_seq: seq + 1, checked: 0, first_bad_seq: None }
    }

    /// Checks the next event; after the first bad one the rest are only counted.
    pub fn push(&mut self, record: &AuditRecord) {
        self.checked += 1;
        if self.first_bad_seq.is_some() {
            return;
        }
        let personal_ok = match (&record.personal, &record.personal_digest) {
            (Some(p), Some(d)) => sha256_hex(p) == *d,
            (Some(_), None) => false,
            (None, _) => true,
        };
        let ok = record.seq == self.expected_seq
            && record.prev_hash == self.expected_prev
            && personal_ok
            && record.computed_hash() == record.hash;
        if ok {
            self.expected_prev = record.hash.clone();
            self.expected_seq += 1;
        } else {
            self.first_bad_seq = Some(record.seq);
        }
    }

    /// How many events were read.
    pub fn checked(&self) -> u64 {
        self.checked
    }

    /// The `seq` of the first event that breaks the chain, if any.
    pub fn first_bad_seq(&self) -> Option<i64> {
        self.first_bad_seq
    }
}

/// JSON with object keys sorted and no insignificant white space, whatever serde_json features
/// other crates turn on.
pub fn canonical_json(value: &serde_json::Value) -> String {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let body: Vec<String> =
                keys.into_iter().map(|k| format!("{}:{}", Value::String(k.clone()), canonical_json(&map[k]))).collect();
            format!("{{{}}}", body.join(","))
        }
        Value::Array(items) => {
            let body: Vec<String> = items.iter().map(canonical_json).collect();
            format!("[{}]", body.join(","))
        }
        other => other.to_string(),
    }
}

/// Lower-case hex SHA-256 of some text.
pub fn sha256_hex(text: &str) -> String {
    hex(&Sha256::digest(text.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn truncate_to_micros(at: OffsetDateTime) -> OffsetDateTime {
    let micros = at.unix_timestamp_nanos() / 1000;
    OffsetDateTime::from_unix_timestamp_nanos(micros * 1000).unwrap_or(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn chain(n: i64) -> Vec<AuditRecord> {
        let mut prev = GENESIS_HASH.to_owned();
        let now = OffsetDateTime::now_utc();
        (1..=n)
            .map(|seq| {
                let r = AuditDraft::new("user.created", Actor::SYSTEM, TargetType::User, seq)
                    .detail(json!({"b": 1, "a": [2, {"z": 1, "y": 2}]}))
                    .personal(json!({"email": format!("u{seq}@example.com")}))
                    .seal(seq, now, &prev);
                prev = r.hash.clone();
                r
            })
            .collect()
    }

    fn check(records: &[AuditRecord]) -> ChainCheck {
        let mut c = ChainCheck::default();
        records.iter().for_each(|r| c.push(r));
        c
    }

    #[test]
    fn an_intact_chain_verifies() {
        let c = check(&chain(5));
        assert_eq!(c.checked(), 5);
        assert_eq!(c.first_bad_seq(), None);
    }

    #[test]
    fn any_edit_is_found_at_its_event() {
        let mut records = chain(5);
        records[2].detail = r#"{"a":[2,{"y":2,"z":1}],"b":2}"#.into();
        assert_eq!(check(&records).first_bad_seq(), Some(3));

        let mut records = chain(5);
        records.remove(1);
        assert_eq!(check(&records).first_bad_seq(), Some(3));

        let mut records = chain(5);
        records[3].personal = Some(r#"{"email":"someone@else.com"}"#.into());
        assert_eq!(check(&records).first_bad_seq(), Some(4));
    }

    #[test]
    fn erasing_the_personal_part_keeps_the_chain() {
        let mut records = chain(4);
        records[1].personal = None;
        assert_eq!(check(&records).first_bad_seq(), None);
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_depth() {
        assert_eq!(canonical_json(&json!({"b": {"d": 1, "c": "x"}, "a": null})), r#"{"a":null,"b":{"c":"x","d":1}}"#);
    }
}
