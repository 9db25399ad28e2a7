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

/// A usage period: `start` inclusive, `end` exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    /// First instant of the period.
    pub start: OffsetDateTime,
    /// First instant of the next period.
    pub end: OffsetDateTime,
}

/// `anchor` moved by `months` calendar months, the day clamped to the month's length (an anchor
/// on the 31st renews on the last day of shorter months).
pub fn add_months(anchor: OffsetDateTime, months: i64) -> OffsetDateTime {
    let total = i64::from(anchor.year()) * 12 + i64::from(u8::from(anchor.month())) - 1 + months;
    let year = total.div_euclid(12) as i32;
    let month = time::Month::try_from((total.rem_euclid(12) + 1) as u8).unwrap_or(time::Month::January);
    let day = anchor.day().min(month.length(year));
    let date = time::Date::from_calendar_date(year, month, day).unwrap_or(anchor.date());
    anchor.replace_date(date)
}

/// The period containing `now` for an org whose periods start at `anchor` and renew every
/// `restart` period.
pub fn period_containing(anchor: OffsetDateTime, restart: RestartPeriod, now: OffsetDateTime) -> Period {
    let step = match restart {
        RestartPeriod::Monthly => 1,
        RestartPeriod::Annual => 12,
    };
    let months = (i64::from(now.year()) - i64::from(anchor.year())) * 12 + i64::from(u8::from(now.month()))
        - i64::from(u8::from(anchor.month()));
    let mut k = months.div_euclid(step);
    while add_months(anchor, k * step) > now {
        k -= 1;
    }
    while add_months(anchor, (k + 1) * step) <= now {
        k += 1;
    }
    Period { start: add_months(anchor, k * step), end: add_months(anchor, (k + 1) * step) }
}

#[cfg(test)]
mod period_tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::datetime;

    #[test]
    fn monthly_periods_follow_the_anchor_day_and_clamp_short_months() {
        let anchor = datetime!(2026-01-31 10:00 UTC);
        let p = period_containing(anchor, RestartPeriod::Monthly, datetime!(2026-03-01 00:00 UTC));
        assert_eq!((p.start, p.end), (datetime!(2026-02-28 10:00 UTC), datetime!(2026-03-31 10:00 UTC)));
        let p = period_containing(anchor, RestartPeriod::Monthly, datetime!(2026-01-31 09:59 UTC));
        assert_eq!(p.start, datetime!(2025-12-31 10:00 UTC), "before the anchor the period runs backwards");
        let p = period_containing(anchor, RestartPeriod::Annual, datetime!(2027-06-01 00:00 UTC));
        assert_eq!((p.start, p.end), (datetime!(2027-01-31 10:00 UTC), datetime!(2028-01-31 10:00 UTC)));
    }

    proptest! {
        #[test]
        fn the_period_contains_now_and_the_next_starts_where_it_ends(
            anchor_s in 0i64..4_000_000_000, offset_s in -400_000_000i64..400_000_000, annual in any::<bool>()
        ) {
            let anchor = OffsetDateTime::from_unix_timestamp(anchor_s).unwrap();
            let now = anchor + time::Duration::seconds(offset_s);
            let restart = if annual { RestartPeriod::Annual } else { RestartPeriod::Monthly };
            let p = period_containing(anchor, restart, now);
            prop_assert!(p.start <= now && now < p.end);
            let next = period_containing(anchor, restart, p.end);
            prop_assert_eq!(next.start, p.end);
            let days = (p.end - p.start).whole_days();
            prop_assert!(if annual { (365..=366).contains(&days) } else { (28..=31).contains(&days) }, "{}", days);
        }
    }
}
