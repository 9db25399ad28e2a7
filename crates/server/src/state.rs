//! The state every handler shares, and the one way a change is committed: with its audit events,
//! in the same transaction.

use std::ops::Deref;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use steward_core::AuditDraft;
use steward_store::{Store, Tx};
use time::OffsetDateTime;

use crate::auth::{LoginThrottle, PasswordPool};
use crate::config::Config;
use crate::error::ApiResult;
use crate::settings::InstanceSettings;

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
        AppState(Arc::new(Inner {
            store,
            passwords: PasswordPool::new(config.password_hash_concurrency),
            throttle,
            config,
            public_url,
            metrics,
            setup_secret_hash: Mutex::new(None),
            outbox_wake: Arc::new(tokio::sync::Notify::new()),
        }))
    }
}

/// Appends the events and commits, so that the change and its audit trail land together.
pub async fn commit(mut tx: Box<dyn Tx>, events: Vec<AuditDraft>, now: OffsetDateTime) -> ApiResult<()> {
    if !events.is_empty() {
        tx.append_audit(events, now).await?;
    }
    tx.commit().await?;
    Ok(())
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
