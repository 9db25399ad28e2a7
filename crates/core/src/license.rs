//! The license as data: consumables, limits, features and expiry. Enforcement lives with metering.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::DomainError;

/// How often consumables renew.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RestartPeriod {
    /// Every calendar month.
    #[default]
    Monthly,
    /// Every year.
    Annual,
}

/// An org's license. `None` means unlimited; `Some(0)` of a consumable freezes the org.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct License {
    /// Operations per period.
    pub operations: Option<u64>,
    /// Data transfer per period, in bytes.
    pub transfer: Option<u64>,
    /// When consumables renew.
    pub restart_period: RestartPeriod,
    /// Members (seats).
    pub users: Option<u64>,
    /// Teams.
    pub teams: Option<u64>,
    /// Data stores.
    pub data_stores: Option<u64>,
    /// Total bytes across data stores.
    pub data_store_bytes: Option<u64>,
    /// Total bytes of files.
    pub file_bytes: Option<u64>,
    /// Scenarios.
    pub scenarios: Option<u64>,
    /// The shortest schedule interval a scenario may use.
    pub min_interval_minutes: Option<u64>,
    /// API rate per minute for the org; 0 disables its API access.
    pub api_requests_per_minute: Option<u64>,
    /// Named feature switches.
    pub features: BTreeMap<String, bool>,
    /// How many days of audit history the org sees.
    pub audit_log_days: Option<u64>,
    /// After this instant every consumable counts as 0.
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
}

impl License {
    /// Applies a JSON merge patch (RFC 7396): present fields replace, `null` makes a field
    /// unlimited (or removes a feature), `features` merges key by key.
    pub fn merged(&self, patch: &serde_json::Value) -> Result<License, DomainError> {
        if !patch.is_object() {
            return Err(DomainError::invalid("license", "must be an object"));
        }
        let mut doc = serde_json::to_value(self).map_err(|e| DomainError::invalid("license", e.to_string()))?;
        merge_patch(&mut doc, patch);
        let merged: License =
            serde_json::from_value(doc).map_err(|e| DomainError::invalid("license", e.to_string()))?;
        merged.validated()
    }

    /// Checks what the types cannot: feature names.
    pub fn validated(self) -> Result<License, DomainError> {
        for name in self.features.keys() {
            let ok =
                (1..=64).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
            if !ok {
                return Err(DomainError::invalid(
                    "license",
                    format!("feature name {name:?} must be 1-64 letters, digits, '_', '-' or '.'"),
                ));
            }
        }
        Ok(self)
    }

    /// Whether the license has run out at `now`.
    pub fn expired(&self, now: OffsetDateTime) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    /// Frozen: a consumable exhausted (limit 0 or used up) or the license expired.
    pub fn frozen(&self, used_operations: u64, used_transfer: u64, now: OffsetDateTime) -> bool {
        let exhausted = |limit: Option<u64>, used: u64| limit.is_some_and(|l| used >= l);
        self.expired(now) || exhausted(self.operations, used_operations) || exhausted(self.transfer, used_transfer)
    }
}

fn merge_patch(target: &mut serde_json::Value, patch: &serde_json::Value) {
    use serde_json::Value;
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() && k == "features" {
                    t.insert(k.clone(), Value::Object(Default::default()));
                } else if v.is_null() {
                    // Inside `features`, null removes the key; at the top it means unlimited.
                    if t.get(k).is_some_and(Value::is_boolean) {
                        t.remove(k);
                    } else {
                        t.insert(k.clone(), Value::Null);
                    }
                } else if v.is_object() && t.get(k).is_some_and(Value::is_object) {
                    merge_patch(t.get_mut(k).expect("checked above"), v);
                } else {
                    t.insert(k.clone(), v.clone());
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_replaces_nulls_and_merges_features() {
        let base: License = serde_json::from_value(json!({
            "operations": 1000, "users": 5, "features": {"sso": true, "beta": true}
        }))
        .unwrap();
        let merged =
            base.merged(&json!({"operations": 0, "users": null, "features": {"beta": null, "api": false}})).unwrap();
        assert_eq!(merged.operations, Some(0));
        assert_eq!(merged.users, None);
        assert_eq!(merged.features, BTreeMap::from([("sso".into(), true), ("api".into(), false)]));
    }

    #[test]
    fn unknown_fields_and_bad_values_are_refused() {
        let base = License::default();
        assert!(base.merged(&json!({"operatons": 5})).is_err());
        assert!(base.merged(&json!({"operations": -1})).is_err());
        assert!(base.merged(&json!({"features": {"bad name": true}})).is_err());
        assert!(base.merged(&json!([1])).is_err());
    }

    #[test]
    fn frozen_when_a_consumable_is_zero_or_used_up_or_expired() {
        let now = OffsetDateTime::UNIX_EPOCH + time::Duration::days(100);
        let mut l = License::default();
        assert!(!l.frozen(10, 10, now));
        l.operations = Some(0);
        assert!(l.frozen(0, 0, now));
        l.operations = Some(10);
        assert!(l.frozen(10, 0, now));
        assert!(!l.frozen(9, 0, now));
        l.expires_at = Some(now);
        assert!(l.frozen(0, 0, now));
    }
}
