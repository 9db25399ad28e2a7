//! The Steward server: configuration, start-up, the HTTP API, and the CLI's operations. The
//! binary in `main.rs` only parses arguments and calls in here.

pub mod answer;
pub mod app;
pub mod archive;
pub mod auth;
pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod document;
pub mod error;
pub mod extract;
pub mod governance;
pub mod hot;
pub mod jwt;
pub mod mail;
pub mod outbound;
pub mod pages;
pub mod principal;
pub mod remote;
pub mod routes;
pub mod scheduler;
pub mod schema;
pub mod scim;
pub mod sealing;
pub mod settings;
pub mod sso;
pub mod state;
pub mod throttle;
pub mod tls;
pub mod twofactor;
pub mod views;
pub mod webhooks;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use steward_core::{Actor, Email, PersonName};
use steward_store::{SqliteStore, Store};
use tokio::net::TcpListener;

use crate::auth::{SecretKind, new_secret, secret_hash};
use crate::config::Config;
use crate::state::AppState;

/// Opens the database named by the configuration, applying migrations.
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    open_store_with(config, false).await
}

/// [`open_store`] for `steward serve`: on SQLite the readers map the file
/// ([`SqliteStore::open_with`]).
async fn open_store_with(config: &Config, serving: bool) -> anyhow::Result<Arc<dyn Store>> {
    let url = config.database_url.as_str();
    if url.starts_with("sqlite:") {
        let store = SqliteStore::open_with(url, config.sqlite_durable, serving)
            .await
            .with_context(|| format!("opening the SQLite database {url}"))?;
        Ok(Arc::new(store))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        let timeout = std::time::Duration::from_secs(config.database_acquire_timeout_secs);
        let store = steward_store::PgStore::open(url, config.database_max_connections, timeout)
            .await
            .context("opening the PostgreSQL database")?;
        Ok(Arc::new(store))
    } else {
        anyhow::bail!("STEWARD_DATABASE_URL must start with sqlite:// or postgres://")
    }
}

/// A Steward ready to serve: its state, its router and the address it is bound to.
pub struct Server {
    /// Shared state (tests reach the store through it).
    pub state: AppState,
    /// The bound address.
    pub addr: SocketAddr,
    /// The one-time setup link, when no system admin existed and none was bootstrapped.
    pub setup_link: Option<String>,
    listener: TcpListener,
    mailer: Arc<mail::Mailer>,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl Server {
    /// Opens the store, ensures a system admin (or a setup link), and readies the listener.
    pub async fn build(config: Config, listener: TcpListener) -> anyhow::Result<Server> {
        let mailer = Arc::new(mail::Mailer::from_config(&config)?);
        let tls = match (&config.tls_cert_file, &config.tls_key_file) {
            (Some(cert), Some(key)) => Some(tls::acceptor(cert, key)?),
            _ => None,
        };
        let store = open_store_with(&config, true).await?;
        let addr = listener.local_addr()?;
        let public_url = config.public_url(addr);
        let state = AppState::new(store, config, public_url, app::metrics_handle());
        let setup_link = bootstrap(&state).await?;
        Ok(Server { state, addr, setup_link, listener, mailer, tls })
    }

    /// Serves until `shutdown` resolves, with the background tasks beside: upkeep, change
    /// notifications of other nodes, lease returns, the mail and webhook workers, the scheduler
    /// and the audit checkpoints. They stop with the server; unused leases are given back.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let state = self.state.clone();
        let mut tasks = background(&state);
        let poll = std::time::Duration::from_millis(state.config.outbox_poll_ms.max(10));
        tasks.push(tokio::spawn(mail::run_worker(state.clone(), self.mailer, state.outbox_wake.clone(), poll)));
        tasks.push(tokio::spawn(webhooks::run_worker(state.clone(), poll.min(std::time::Duration::from_millis(500)))));
        tasks.push(tokio::spawn(scheduler::run(state.clone(), std::time::Duration::from_secs(1))));
        tasks.extend(checkpoints(&state));
        let router = app::router(self.state);
        let result = match self.tls {
            Some(acceptor) => app::serve_tls(tls::TlsListener::new(self.listener, acceptor)?, router, shutdown).await,
            None => app::serve(self.listener, router, shutdown).await,
        };
        for task in tasks {
            task.abort();
        }
        state::return_leases(&state, None).await;
        result
    }
}

/// Upkeep every five seconds (histograms drained, so that memory stays flat whether or not anyone
/// scrapes /metrics; the throttle pruned every minute), change notifications of other nodes
/// turned into this node's change epochs, and expired leases given back.
fn background(state: &AppState) -> Vec<tokio::task::JoinHandle<()>> {
    let upkeep_state = state.clone();
    let mut tasks = vec![tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
        let mut ticks = 0u64;
        loop {
            tick.tick().await;
            if let Some(metrics) = &upkeep_state.metrics {
                metrics.run_upkeep();
            }
            ticks += 1;
            if ticks.is_multiple_of(12) {
                upkeep_state.throttle.prune();
            }
        }
    })];
    if let Some(mut changes) = state.store.changes() {
        let state = state.clone();
        tasks.push(tokio::spawn(async move {
            while changes.changed().await.is_ok() {
                state.changes.changed();
                state.changes.scim_tokens_changed();
            }
        }));
    }
    let lease_state = state.clone();
    let ttl = std::time::Duration::from_millis(state.config.lease_ttl_ms.max(50));
    tasks.push(tokio::spawn(async move {
        let mut tick = tokio::time::interval(ttl / 2);
        loop {
            tick.tick().await;
            state::return_leases(&lease_state, Some(ttl)).await;
        }
    }));
    tasks
}

/// The task that signs the audit chain's head, when an audit key is configured.
fn checkpoints(state: &AppState) -> Option<tokio::task::JoinHandle<()>> {
    match state.config.audit_key.as_ref().map(|k| checkpoint::AuditKey::parse(k.expose())) {
        Some(Ok(key)) => {
            let every = std::time::Duration::from_secs(state.config.audit_checkpoint_secs.max(1));
            Some(tokio::spawn(checkpoint::run(state.store.clone(), key, every)))
        }
        Some(Err(e)) => {
            tracing::error!(error = %e, "the audit chain is not signed");
            None
        }
        None => {
            tracing::warn!(
                "no STEWARD_AUDIT_KEY: the audit chain is not signed, so whoever can write the database can \
                 rewrite its history unseen (steward audit keygen makes a key)"
            );
            None
        }
    }
}

/// Makes a system administrator in the system's name, for the instance's first start: from
/// the environment (`bootstrap`) or through the setup link (`pages::setup`).
pub async fn create_system_admin(
    state: &AppState,
    email: &Email,
    name: &PersonName,
    password_hash: String,
) -> Result<steward_store::UserRow, steward_ops::OpError> {
    let role = steward_core::InstanceRole::system_admin();
    let now = state.clock.now();
    steward_ops::users::create_admin(
        state.store.as_ref(),
        &state.changes,
        (email, name),
        password_hash,
        role,
        Actor::SYSTEM,
        now,
    )
    .await
}

/// Creates the bootstrap system admin from the configuration, or, when there is none and no
/// system admin exists, makes a one-time setup link.
async fn bootstrap(state: &AppState) -> anyhow::Result<Option<String>> {
    if steward_ops::users::has_system_admin(state.store.as_ref()).await? {
        return Ok(None);
    }
    let config = &state.config;
    if let (Some(email), Some(password)) = (&config.bootstrap_admin_email, &config.bootstrap_admin_password) {
        let email = Email::parse(email).context("STEWARD_BOOTSTRAP_ADMIN_EMAIL")?;
        let name = PersonName::parse("System administrator")?;
        let hash = state
            .passwords
            .hash(password.expose())
            .await
            .map_err(|e| anyhow::anyhow!("STEWARD_BOOTSTRAP_ADMIN_PASSWORD: {}", e.problem().detail))?;
        let user = create_system_admin(state, &email, &name, hash).await.context("creating the bootstrap admin")?;
        tracing::info!(user_id = %user.id, "created the bootstrap system admin");
        return Ok(None);
    }
    let secret = new_secret(SecretKind::Setup);
    *state.setup_secret_hash.lock().unwrap_or_else(|p| p.into_inner()) = Some(secret_hash(&secret));
    Ok(Some(format!("{}/setup/{secret}", state.public_url)))
}
