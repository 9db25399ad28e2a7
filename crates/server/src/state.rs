//! The state every handler shares, and the one way a change is committed: with its audit events,
//! in the same transaction.

use std::ops::Deref;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use steward_core::AuditDraft;
use steward_store::{Store, Tx};
use time::OffsetDateTime;

use crate::auth::PasswordPool;
use crate::config::Config;
use crate::error::ApiResult;
use crate::settings::InstanceSettings;
use crate::throttle::LoginThrottle;

/// Shared by every request; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

/// What [`AppState`] holds.
pub struct Inner {
    /// The database.
    pub store: Arc<dyn Store>,
    /// The configuration read at start.
    pub config: Config,
    /// The base URL for links.
    pub public_url: String,
    /// Password hashing on a bounded pool.
    pub passwords: PasswordPool,
    /// Failed-login counting.
    pub throttle: LoginThrottle,
    /// Renders `/metrics`.
    pub metrics: Option<PrometheusHandle>,
    /// The digest of the one-time setup secret, while no system admin exists.
    pub setup_secret_hash: Mutex<Option<String>>,
    /// Wakes the outbox worker after a commit that queued mail.
    pub outbox_wake: Arc<tokio::sync::Notify>,
    /// The time usage periods and license expiry are judged by.
    pub clock: Clock,
    /// Per-org request budgets from the licenses' `api_requests_per_minute`.
    pub org_rate: OrgRateLimiter,
    /// Password-reset requests being worked on after their answer ([`RESET_REQUESTS_AT_ONCE`]).
    pub reset_requests: Arc<tokio::sync::Semaphore>,
    /// Passwords each SCIM token may have hashed, per minute (`scim_passwords_per_minute`).
    pub scim_passwords: Buckets<uuid::Uuid>,
    /// Principals by credential digest, valid until the next committed change.
    pub principals: crate::principal::PrincipalCache,
    /// Operations this node leased from orgs' budgets and serves from memory.
    pub leases: Leases,
    /// The key two-factor secrets are sealed with, resolved on first use.
    pub sealing_key: tokio::sync::OnceCell<crate::sealing::SealingKey>,
    /// Identity providers' keys and documents, and the instance's SSO key.
    pub sso: crate::sso::provider::SsoState,
    /// The current usage period of each org seen, so that a decision reads the usage row in the
    /// same query as the rest of its facts.
    periods: Mutex<std::collections::HashMap<steward_core::OrgId, steward_core::license::Period>>,
    /// Answers of `/me` and `/check` kept between changes.
    pub hot: crate::hot::HotAnswers,
    /// The change epochs that make kept principals and answers stale.
    pub changes: Arc<steward_ops::Changes>,
}

impl AppState {
    /// The lockout rule of the configuration.
    pub fn lockout_policy(&self) -> steward_core::lockout::LockoutPolicy {
        steward_core::lockout::LockoutPolicy {
            failures: self.config.login_lockout_failures,
            cooldown: time::Duration::seconds(i64::try_from(self.config.login_lockout_secs).unwrap_or(i64::MAX)),
        }
    }

    /// The period last seen for `org`.
    pub fn period_hint(&self, org: steward_core::OrgId) -> Option<steward_core::license::Period> {
        self.periods.lock().unwrap_or_else(|p| p.into_inner()).get(&org).copied()
    }

    /// Remembers the current period of `org`.
    pub fn remember_period(&self, org: steward_core::OrgId, period: steward_core::license::Period) {
        let mut map = self.periods.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 100_000 {
            map.clear();
        }
        map.insert(org, period);
    }
}

/// The wall clock, with an offset that tests move forward to cross period boundaries.
#[derive(Default)]
pub struct Clock {
    offset_secs: std::sync::atomic::AtomicI64,
}

impl Clock {
    /// Now, as Steward judges it.
    pub fn now(&self) -> OffsetDateTime {
        let offset = self.offset_secs.load(std::sync::atomic::Ordering::Relaxed);
        OffsetDateTime::now_utc() + time::Duration::seconds(offset)
    }

    /// Moves the clock forward (tests only need this).
    pub fn advance(&self, by: time::Duration) {
        self.offset_secs.fetch_add(by.whole_seconds(), std::sync::atomic::Ordering::Relaxed);
    }
}

/// The most password-reset requests worked on at once after they were answered; beyond it a
/// request is answered the same and dropped (logged), so that a flood of them queues no work.
pub const RESET_REQUESTS_AT_ONCE: usize = 256;

/// Token buckets by key, each holding up to a minute's allowance and refilled evenly over the
/// minute. The map is bounded: past [`Buckets::MAX_KEYS`] keys, the ones full again (untouched
/// for two minutes) are dropped, and if none are, every key starts afresh.
pub struct Buckets<K> {
    buckets: Mutex<std::collections::HashMap<K, (f64, std::time::Instant)>>,
}

impl<K> Default for Buckets<K> {
    fn default() -> Self {
        Buckets { buckets: Mutex::new(std::collections::HashMap::new()) }
    }
}

impl<K: std::hash::Hash + Eq> Buckets<K> {
    /// The most keys kept at once.
    pub const MAX_KEYS: usize = 100_000;

    /// Takes `n` from the key's bucket of `per_minute`, all or nothing; otherwise the seconds
    /// until they are there (`None`: never, `n` is over the whole allowance).
    pub fn take(&self, key: K, n: u64, per_minute: u64) -> Result<Level, Option<u64>> {
        let capacity = per_minute as f64;
        if n as f64 > capacity {
            return Err(None);
        }
        let rate = capacity / 60.0;
        let now = std::time::Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= Self::MAX_KEYS {
            buckets.retain(|_, (_, at)| now.duration_since(*at).as_secs() < 120);
            if buckets.len() >= Self::MAX_KEYS {
                buckets.clear();
            }
        }
        let (tokens, at) = buckets.entry(key).or_insert((capacity, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * rate).min(capacity);
        *at = now;
        if *tokens >= n as f64 {
            *tokens -= n as f64;
            Ok(Level { remaining: *tokens as u64, full_in_secs: ((capacity - *tokens) / rate).ceil() as u64 })
        } else {
            Err(Some(((n as f64 - *tokens) / rate).ceil() as u64))
        }
    }

    /// How many keys are kept.
    pub fn len(&self) -> usize {
        self.buckets.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether no key is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Where a bucket stands after a take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Level {
    /// Whole requests left.
    pub remaining: u64,
    /// Seconds until the bucket is full again.
    pub full_in_secs: u64,
}

/// Token buckets per org: `api_requests_per_minute` requests, refilled evenly over the minute.
#[derive(Default)]
pub struct OrgRateLimiter(Buckets<steward_core::OrgId>);

impl OrgRateLimiter {
    /// Takes one request from the org's bucket, or says how long to wait; the answer says where
    /// the bucket stands either way (`RateLimit`, `RateLimit-Policy`).
    pub fn take(&self, org: steward_core::OrgId, per_minute: Option<u64>) -> ApiResult<()> {
        let Some(limit) = per_minute else { return Ok(()) };
        let counted =
            |remaining, reset_secs| crate::answer::Counted { quota: limit, window_secs: 60, remaining, reset_secs };
        match self.0.take(org, 1, limit) {
            Ok(level) => {
                crate::answer::counted(counted(level.remaining, level.full_in_secs));
                Ok(())
            }
            Err(wait) => {
                let wait = wait.unwrap_or(60);
                crate::answer::counted(counted(0, wait));
                Err(crate::error::ApiError::rate_limited(wait))
            }
        }
    }
}

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// Assembles the state.
    pub fn new(store: Arc<dyn Store>, config: Config, public_url: String, metrics: Option<PrometheusHandle>) -> Self {
        let throttle = LoginThrottle::new(
            config.login_failures_per_account,
            config.login_failures_per_address,
            Duration::from_secs(config.login_failure_window_secs),
        );
        let changes = Arc::new(steward_ops::Changes::default());
        AppState(Arc::new(Inner {
            store,
            passwords: PasswordPool::new(config.password_hash_concurrency),
            throttle,
            config,
            public_url,
            metrics,
            setup_secret_hash: Mutex::new(None),
            outbox_wake: Arc::new(tokio::sync::Notify::new()),
            clock: Clock::default(),
            org_rate: OrgRateLimiter::default(),
            scim_passwords: Buckets::default(),
            reset_requests: Arc::new(tokio::sync::Semaphore::new(RESET_REQUESTS_AT_ONCE)),
            principals: crate::principal::PrincipalCache::default(),
            leases: Leases::default(),
            sealing_key: tokio::sync::OnceCell::new(),
            sso: crate::sso::provider::SsoState::default(),
            periods: Mutex::new(std::collections::HashMap::new()),
            hot: crate::hot::HotAnswers::new(changes.clone()),
            changes,
        }))
    }
}

impl AppState {
    /// Commits the change with its audit events and webhook deliveries ([`steward_ops::commit`]),
    /// which makes every kept principal and answer stale.
    pub async fn commit(&self, tx: Box<dyn Tx>, events: Vec<AuditDraft>, now: OffsetDateTime) -> ApiResult<()> {
        Ok(steward_ops::commit(&self.changes, tx, events, now).await?)
    }
}

/// Reads the instance settings, or their defaults when never written.
pub async fn instance_settings(tx: &mut dyn Tx) -> ApiResult<(InstanceSettings, i64)> {
    match tx.instance_doc().await? {
        Some((doc, version)) => {
            let settings = serde_json::from_value(doc).map_err(crate::error::ApiError::internal)?;
            Ok((settings, version))
        }
        None => Ok((InstanceSettings::default(), 0)),
    }
}

/// A slice of an org's period budget, already counted as used in the database, that this node
/// serves from memory. If the node dies its unused part stays counted: the limit is never
/// exceeded, and at most one slice per org is lost.
#[derive(Debug, Clone, Copy)]
pub struct Lease {
    /// Leased operations not yet served.
    pub remaining: u64,
    /// When the lease was taken.
    pub taken: std::time::Instant,
}

/// The leases of this node, by org and period start.
#[derive(Default)]
pub struct Leases {
    map: Mutex<std::collections::HashMap<(steward_core::OrgId, i128), Lease>>,
}

impl Leases {
    /// Serves `ops` from the lease, if it holds that many.
    pub fn take(&self, org: steward_core::OrgId, period_start: OffsetDateTime, ops: u64) -> bool {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        match map.get_mut(&(org, period_start.unix_timestamp_nanos())) {
            Some(lease) if lease.remaining >= ops => {
                lease.remaining -= ops;
                true
            }
            _ => false,
        }
    }

    /// Adds leased operations not yet served.
    pub fn add(&self, org: steward_core::OrgId, period_start: OffsetDateTime, unused: u64) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let lease = map
            .entry((org, period_start.unix_timestamp_nanos()))
            .or_insert(Lease { remaining: 0, taken: std::time::Instant::now() });
        lease.remaining += unused;
    }

    /// Removes the leases older than `ttl` (all of them with `None`) and returns their unused parts.
    pub fn expire(&self, ttl: Option<Duration>) -> Vec<(steward_core::OrgId, OffsetDateTime, u64)> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let due: Vec<_> =
            map.iter().filter(|(_, l)| ttl.is_none_or(|t| l.taken.elapsed() >= t)).map(|(k, _)| *k).collect();
        due.into_iter()
            .filter_map(|k| {
                let lease = map.remove(&k)?;
                let start = OffsetDateTime::from_unix_timestamp_nanos(k.1).ok()?;
                Some((k.0, start, lease.remaining))
            })
            .collect()
    }
}

/// Gives the unused part of expired leases (of all leases, with `None`) back to the budgets.
pub async fn return_leases(state: &AppState, ttl: Option<Duration>) {
    for (org, start, unused) in state.leases.expire(ttl) {
        if unused == 0 {
            continue;
        }
        match state.store.give_back(org, start, unused).await {
            Ok(()) => state.hot.consumed(org),
            Err(e) => tracing::warn!(error = %e, %org, unused, "could not give back leased operations"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Buckets;

    #[test]
    fn a_bucket_gives_a_minutes_allowance_all_or_nothing() {
        let buckets = Buckets::default();
        let left = |taken: Result<super::Level, Option<u64>>| taken.map(|level| level.remaining);
        assert_eq!(left(buckets.take("a", 2, 3)), Ok(1));
        assert!(matches!(buckets.take("a", 2, 3), Err(Some(wait)) if (1..=40).contains(&wait)));
        assert_eq!(left(buckets.take("a", 1, 3)), Ok(0), "the refused take spent nothing");
        assert_eq!(buckets.take("a", 4, 3), Err(None), "more than a minute's allowance never fits");
        let fresh = buckets.take("b", 3, 3).unwrap();
        assert_eq!((fresh.remaining, fresh.full_in_secs), (0, 60), "each key has its own; empty, full in a minute");
    }

    #[test]
    fn the_buckets_keep_a_bounded_number_of_keys() {
        let buckets = Buckets::default();
        for key in 0..Buckets::<u32>::MAX_KEYS as u32 + 10 {
            buckets.take(key, 1, 60).unwrap();
        }
        assert!(buckets.len() <= Buckets::<u32>::MAX_KEYS, "{} keys", buckets.len());
    }
}
