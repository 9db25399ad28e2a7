//! Answers of the two paths an operator's product calls on every request of its own —
//! `GET /api/v1/me` and `POST /api/v1/check` — and the SCIM tokens an identity provider presents
//! on each of its calls, kept in memory between changes, so that they cost no database round
//! trip while nothing they depend on changed (a revoked token is a committed change).
//!
//! An answer is reused only while
//! - no change was committed since it was read (the epoch that also guards cached principals,
//!   [`steward_ops::Changes::epoch`]), and
//! - no operation was consumed by its org since (a counter per org, and one for all orgs, that
//!   every consume on this node moves), and
//! - it is younger than its age bound ([`ME_MAX_AGE`], [`CHECK_MAX_AGE`]); `/check` decides again
//!   on every request from the facts it keeps, with the clock of that request.
//!
//! The epoch and counters are read before the database is, so an answer read across a change is
//! stale at once. Where other nodes write to the same database (PostgreSQL shared by several
//! nodes), consumes elsewhere would not move the counters here, so nothing is kept.
//!
//! The overview's count of frozen orgs is the exception: it reads every active org, so it is
//! kept for [`FROZEN_COUNT_MAX_AGE`] whatever changes, and counted by one request at a time.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use steward_core::{OrgId, UserId};
use steward_ops::Changes;
use steward_store::{AssetTotals, CheckFacts, OrgRow, ScimTokenRow};
use time::OffsetDateTime;

/// How long a `/me` answer is kept at most: it shows whether each org is frozen, which an expiring
/// license changes with no write.
pub const ME_MAX_AGE: Duration = Duration::from_secs(1);

/// How long the facts behind a `/check` answer are kept at most.
pub const CHECK_MAX_AGE: Duration = Duration::from_secs(60);

/// How long the count of active orgs frozen now is kept: counting reads every active org.
pub const FROZEN_COUNT_MAX_AGE: time::Duration = time::Duration::minutes(1);

/// More entries than this and a map starts again empty.
const MAX_ENTRIES: usize = 50_000;

/// A version: the change epoch and the consume counter read before the database was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    epoch: u64,
    /// Consumes counted: by all orgs for `/me`, by the org for `/check`.
    usage: u64,
    /// For `/check`, how many times the per-org counters started again.
    era: u64,
}

/// The facts of a `/check` and the start of the period they were read for.
type KeptFacts = (CheckFacts, OffsetDateTime);

/// What a consume reads besides its own write: the org, as its access check read it for the
/// caller (license, period anchor), and the org's asset totals for the usage answer. Both change
/// only with a committed change, so they are kept while the change epoch stands.
pub type ConsumeFacts = (OrgRow, AssetTotals);

struct Kept<T> {
    value: T,
    version: Version,
    at: Instant,
}

/// The kept answers of one node.
pub struct HotAnswers {
    me: Mutex<HashMap<String, Kept<Bytes>>>,
    checks: Mutex<HashMap<(UserId, OrgId), Kept<KeptFacts>>>,
    scim_tokens: Mutex<HashMap<String, Kept<ScimTokenRow>>>,
    consume_facts: Mutex<HashMap<(UserId, OrgId), Kept<ConsumeFacts>>>,
    consumed: AtomicU64,
    consumed_by_org: Mutex<Consumed>,
    changes: Arc<Changes>,
    /// The count of active orgs frozen and the instant (Steward's clock) it was counted at; held
    /// while counting, so that one count runs at a time.
    frozen_count: tokio::sync::Mutex<Option<(u64, OffsetDateTime)>>,
}

#[derive(Default)]
struct Consumed {
    by_org: HashMap<OrgId, u64>,
    era: u64,
}

fn put<K: std::hash::Hash + Eq, T>(map: &Mutex<HashMap<K, Kept<T>>>, key: K, value: T, version: Version) {
    let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
    if map.len() >= MAX_ENTRIES {
        map.clear();
    }
    map.insert(key, Kept { value, version, at: Instant::now() });
}

impl HotAnswers {
    /// Answers kept while `changes` stands still.
    pub fn new(changes: Arc<Changes>) -> Self {
        HotAnswers {
            me: Mutex::default(),
            checks: Mutex::default(),
            scim_tokens: Mutex::default(),
            consume_facts: Mutex::default(),
            consumed: AtomicU64::default(),
            consumed_by_org: Mutex::default(),
            changes,
            frozen_count: tokio::sync::Mutex::default(),
        }
    }

    /// The active orgs frozen at `now`: as counted less than [`FROZEN_COUNT_MAX_AGE`] before, or
    /// counted now with `count`, one count at a time on this node, whoever asks.
    pub async fn frozen_count<E>(
        &self,
        now: OffsetDateTime,
        count: impl std::future::Future<Output = Result<u64, E>>,
    ) -> Result<u64, E> {
        let mut kept = self.frozen_count.lock().await;
        if let Some((n, at)) = *kept
            && (at..at + FROZEN_COUNT_MAX_AGE).contains(&now)
        {
            return Ok(n);
        }
        let n = count.await?;
        *kept = Some((n, now));
        Ok(n)
    }

    /// Records that `org` consumed: its kept answers, and every `/me`, are stale.
    pub fn consumed(&self, org: OrgId) {
        let mut consumed = self.consumed_by_org.lock().unwrap_or_else(|p| p.into_inner());
        if consumed.by_org.len() >= MAX_ENTRIES {
            // Counters that start again could meet an old version: a new era tells them apart.
            consumed.by_org.clear();
            consumed.era += 1;
        }
        *consumed.by_org.entry(org).or_default() += 1;
        drop(consumed);
        self.consumed.fetch_add(1, Ordering::SeqCst);
    }

    /// The version to read `/me` under (before reading), for a principal read under the change
    /// epoch `principal_epoch`: an answer built on a principal older than the last change is
    /// never reused.
    pub fn me_version(&self, principal_epoch: u64) -> Version {
        Version { epoch: principal_epoch, usage: self.consumed.load(Ordering::SeqCst), era: 0 }
    }

    /// The version to read `/check` facts of `org` under (before reading).
    pub fn check_version(&self, org: OrgId) -> Version {
        let epoch = self.changes.epoch();
        let consumed = self.consumed_by_org.lock().unwrap_or_else(|p| p.into_inner());
        Version { epoch, usage: consumed.by_org.get(&org).copied().unwrap_or(0), era: consumed.era }
    }

    /// The kept `/me` body for the credential digest `key`, if still good.
    pub fn me(&self, key: &str) -> Option<Bytes> {
        let version = self.me_version(self.changes.epoch());
        let map = self.me.lock().unwrap_or_else(|p| p.into_inner());
        let kept = map.get(key)?;
        (kept.version == version && kept.at.elapsed() < ME_MAX_AGE).then(|| kept.value.clone())
    }

    /// Keeps a `/me` body read under `version`.
    pub fn keep_me(&self, key: String, body: Bytes, version: Version) {
        put(&self.me, key, body, version);
    }

    /// The SCIM token whose secret has the digest `hash`, as read since the last revocation of
    /// a SCIM token.
    pub fn scim_token(&self, hash: &str) -> Option<ScimTokenRow> {
        let epoch = self.changes.scim_token_epoch();
        let map = self.scim_tokens.lock().unwrap_or_else(|p| p.into_inner());
        let kept = map.get(hash)?;
        (kept.version.epoch == epoch && kept.at.elapsed() < CHECK_MAX_AGE).then(|| kept.value.clone())
    }

    /// Keeps a SCIM token read under the SCIM token epoch `epoch`.
    pub fn keep_scim_token(&self, hash: String, token: ScimTokenRow, epoch: u64) {
        put(&self.scim_tokens, hash, token, Version { epoch, usage: 0, era: 0 });
    }

    /// The change epoch now: read before the database, it versions what is kept from it.
    pub fn epoch(&self) -> u64 {
        self.changes.epoch()
    }

    /// The facts of a consume by `user` in `org`, as read since the last change.
    pub fn consume_facts(&self, user: UserId, org: OrgId) -> Option<ConsumeFacts> {
        let epoch = self.changes.epoch();
        let map = self.consume_facts.lock().unwrap_or_else(|p| p.into_inner());
        let kept = map.get(&(user, org))?;
        (kept.version.epoch == epoch && kept.at.elapsed() < CHECK_MAX_AGE).then(|| kept.value.clone())
    }

    /// Keeps the facts of a consume by `user` in `org`, read under the change epoch `epoch`.
    pub fn keep_consume_facts(&self, user: UserId, org: OrgId, facts: ConsumeFacts, epoch: u64) {
        put(&self.consume_facts, (user, org), facts, Version { epoch, usage: 0, era: 0 });
    }

    /// The kept facts for `user` in `org` and the period start they were read for, if still good.
    pub fn check(&self, user: UserId, org: OrgId) -> Option<(CheckFacts, OffsetDateTime)> {
        let version = self.check_version(org);
        let map = self.checks.lock().unwrap_or_else(|p| p.into_inner());
        let kept = map.get(&(user, org))?;
        (kept.version == version && kept.at.elapsed() < CHECK_MAX_AGE).then(|| kept.value.clone())
    }

    /// Keeps the facts for `user` in `org`, read for the period starting at `period_start`
    /// under `version`.
    pub fn keep_check(
        &self,
        user: UserId,
        org: OrgId,
        facts: CheckFacts,
        period_start: OffsetDateTime,
        version: Version,
    ) {
        put(&self.checks, (user, org), (facts, period_start), version);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> CheckFacts {
        CheckFacts {
            status: steward_core::UserStatus::Active,
            membership: None,
            license: steward_core::license::License::default(),
            org_created_at: OffsetDateTime::UNIX_EPOCH,
            operations_used: 0,
            transfer_used: 0,
        }
    }

    #[test]
    fn a_consume_makes_its_orgs_facts_and_every_me_stale_but_not_other_orgs_facts() {
        let changes = Arc::new(Changes::default());
        let hot = HotAnswers::new(changes.clone());
        let (user, a, b) = (UserId::new(), OrgId::new(), OrgId::new());
        let start = OffsetDateTime::UNIX_EPOCH;
        hot.keep_check(user, a, facts(), start, hot.check_version(a));
        hot.keep_check(user, b, facts(), start, hot.check_version(b));
        hot.keep_me("me".into(), Bytes::from_static(b"{}"), hot.me_version(changes.epoch()));
        assert!(hot.check(user, a).is_some() && hot.check(user, b).is_some() && hot.me("me").is_some());
        hot.consumed(a);
        assert!(hot.check(user, a).is_none(), "the consuming org's facts are stale");
        assert!(hot.check(user, b).is_some(), "another org's are not");
        assert!(hot.me("me").is_none(), "every /me shows frozen flags");

        // An answer built on a principal older than the last change is never reused.
        let stale = changes.epoch();
        changes.changed();
        hot.keep_me("me".into(), Bytes::from_static(b"{}"), hot.me_version(stale));
        assert!(hot.me("me").is_none());
    }

    #[test]
    fn a_kept_scim_token_outlives_other_changes_but_not_a_revocation() {
        let changes = Arc::new(Changes::default());
        let hot = HotAnswers::new(changes.clone());
        let token = ScimTokenRow {
            id: uuid::Uuid::now_v7(),
            name: "idp".into(),
            token_hash: "digest".into(),
            org_id: None,
            service_user_id: UserId::new(),
            created_by: None,
            created_at: OffsetDateTime::UNIX_EPOCH,
            revoked_at: None,
        };
        hot.keep_scim_token("digest".into(), token.clone(), changes.scim_token_epoch());
        changes.changed();
        assert_eq!(hot.scim_token("digest"), Some(token.clone()), "a user written elsewhere leaves the token kept");
        changes.scim_tokens_changed();
        assert_eq!(hot.scim_token("digest"), None, "a revoked SCIM token is read again");

        // A token read before a revocation and kept after it is never reused.
        let stale = changes.scim_token_epoch();
        changes.scim_tokens_changed();
        hot.keep_scim_token("digest".into(), token, stale);
        assert_eq!(hot.scim_token("digest"), None);
    }

    #[test]
    fn counters_that_start_again_do_not_meet_an_old_version() {
        let changes = Arc::new(Changes::default());
        let hot = HotAnswers::new(changes.clone());
        let (user, org) = (UserId::new(), OrgId::new());
        let old = hot.check_version(org);
        hot.keep_check(user, org, facts(), OffsetDateTime::UNIX_EPOCH, old);
        hot.consumed(org);
        hot.consumed_by_org.lock().unwrap().by_org.clear();
        hot.consumed_by_org.lock().unwrap().era += 1;
        assert_ne!(hot.check_version(org), old);
        assert!(hot.check(user, org).is_none());
    }
}
