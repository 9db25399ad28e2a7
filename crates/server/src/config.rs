//! Configuration, layered: defaults, then `steward.toml`, then `STEWARD_*` environment variables
//! (`__` nests). Secrets may come from files (`STEWARD_BOOTSTRAP_ADMIN_PASSWORD_FILE`).

use std::fmt;
use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// A secret that never prints.
#[derive(Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Everything `steward` reads at start.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address to listen on.
    pub listen: String,
    /// `sqlite://path` (default) or, once supported, `postgres://…`.
    pub database_url: String,
    /// The public base URL for links; defaults to `http://` + `listen`.
    pub public_url: Option<String>,
    /// Email of the system admin to create when none exists.
    pub bootstrap_admin_email: Option<String>,
    /// Password of that admin.
    pub bootstrap_admin_password: Option<Secret>,
    /// `text` or `json`.
    pub log_format: String,
    /// Seconds a request may take before it is answered 408.
    pub request_timeout_secs: u64,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// Password hashes computed at once (each holds 19 MiB); 0 means one per core.
    pub password_hash_concurrency: usize,
    /// Failed logins per account within the window before 429.
    pub login_failures_per_account: u32,
    /// Failed logins per client address within the window before 429.
    pub login_failures_per_address: u32,
    /// The window for counting failed logins, in seconds.
    pub login_failure_window_secs: u64,
    /// Passwords one SCIM token may have hashed per minute (a bulk request takes its count at
    /// once); beyond it, 429 with `Retry-After`.
    pub scim_passwords_per_minute: u64,
    /// SQLite commits on disk before they are answered (true), or left to the system to write.
    pub sqlite_durable: bool,
    /// PostgreSQL connections in the pool.
    pub database_max_connections: u32,
    /// Seconds to wait for a free PostgreSQL connection.
    pub database_acquire_timeout_secs: u64,
    /// `smtp://host:port`, `smtps://…` or `smtp://…?tls=required`, with credentials in the URL;
    /// without it emails are written to the log.
    pub smtp_url: Option<Secret>,
    /// The sender of every email.
    pub mail_from: String,
    /// How often the outbox is polled when nothing wakes it, in milliseconds.
    pub outbox_poll_ms: u64,
    /// Operations a node leases from an org's budget at once and serves from memory; 0: off.
    pub lease_slice: u64,
    /// A lease is taken only while the org's remaining operations are at least this many slices.
    pub lease_factor: u64,
    /// Unused leased operations go back to the budget after this many milliseconds.
    pub lease_ttl_ms: u64,
    /// Seconds a node holds a webhook delivery it is sending; another node retries after that
    /// if the first one died.
    pub webhook_lease_secs: u64,
    /// Consecutive failed logins that lock an account; 0: no lockout.
    pub login_lockout_failures: u32,
    /// Seconds a locked account stays locked.
    pub login_lockout_secs: u64,
    /// The instance key that seals two-factor secrets at rest; without it a random key kept in
    /// the database is used.
    pub secret_key: Option<Secret>,
    /// A PEM certificate chain: with `tls_key_file`, Steward serves HTTPS itself.
    pub tls_cert_file: Option<String>,
    /// The PEM private key of `tls_cert_file`.
    pub tls_key_file: Option<String>,
    /// The Ed25519 key (base64 of 32 bytes, from `steward audit keygen`) that signs checkpoints
    /// of the audit chain; kept outside the database. Without it the chain is not signed.
    pub audit_key: Option<Secret>,
    /// Seconds between checkpoints of the audit chain's head while events come in.
    pub audit_checkpoint_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".into(),
            database_url: "sqlite://steward.db".into(),
            public_url: None,
            bootstrap_admin_email: None,
            bootstrap_admin_password: None,
            log_format: "text".into(),
            request_timeout_secs: 30,
            max_body_bytes: 1024 * 1024,
            password_hash_concurrency: 0,
            login_failures_per_account: 5,
            login_failures_per_address: 50,
            login_failure_window_secs: 900,
            scim_passwords_per_minute: 120,
            sqlite_durable: true,
            database_max_connections: 10,
            database_acquire_timeout_secs: 30,
            smtp_url: None,
            mail_from: "Steward <steward@localhost>".into(),
            outbox_poll_ms: 1000,
            lease_slice: 0,
            lease_factor: 20,
            lease_ttl_ms: 2000,
            webhook_lease_secs: 60,
            login_lockout_failures: 10,
            login_lockout_secs: 900,
            secret_key: None,
            tls_cert_file: None,
            tls_key_file: None,
            audit_key: None,
            audit_checkpoint_secs: 10,
        }
    }
}

impl Config {
    /// Reads the layers; `file` is `steward.toml` unless `--config` names another.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        let file = file.unwrap_or(Path::new("steward.toml"));
        // Other STEWARD_ variables (STEWARD_LOG, STEWARD_CONFIG, test settings) are not config keys;
        // only the file is held to the known keys.
        let known: Vec<String> = match serde_json::to_value(Config::default()) {
            Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
            _ => Vec::new(),
        };
        let mut config: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::file(file))
            .merge(
                Env::prefixed("STEWARD_")
                    .split("__")
                    .filter(move |key| known.iter().any(|k| key.starts_with(k.as_str()))),
            )
            .extract()
            .map_err(|e| anyhow::anyhow!("configuration: {e}"))?;
        if let Ok(path) = std::env::var("STEWARD_BOOTSTRAP_ADMIN_PASSWORD_FILE") {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| anyhow::anyhow!("reading STEWARD_BOOTSTRAP_ADMIN_PASSWORD_FILE: {e}"))?;
            config.bootstrap_admin_password = Some(Secret::new(text.trim_end_matches(['\r', '\n'])));
        }
        if let Ok(path) = std::env::var("STEWARD_SECRET_KEY_FILE") {
            let text =
                std::fs::read_to_string(&path).map_err(|e| anyhow::anyhow!("reading STEWARD_SECRET_KEY_FILE: {e}"))?;
            config.secret_key = Some(Secret::new(text.trim_end_matches(['\r', '\n'])));
        }
        if let Ok(path) = std::env::var("STEWARD_AUDIT_KEY_FILE") {
            let text =
                std::fs::read_to_string(&path).map_err(|e| anyhow::anyhow!("reading STEWARD_AUDIT_KEY_FILE: {e}"))?;
            config.audit_key = Some(Secret::new(text.trim()));
        }
        if let Some(key) = &config.audit_key {
            crate::checkpoint::AuditKey::parse(key.expose()).map_err(|e| anyhow::anyhow!(e))?;
        }
        if config.secret_key.as_ref().is_some_and(|k| k.expose().len() < 32) {
            anyhow::bail!("secret_key must be at least 32 characters");
        }
        if config.tls_cert_file.is_some() != config.tls_key_file.is_some() {
            anyhow::bail!("tls_cert_file and tls_key_file go together");
        }
        Ok(config)
    }

    /// The base URL links are built from.
    pub fn public_url(&self, bound: std::net::SocketAddr) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None if self.tls() => format!("https://{bound}"),
            None => format!("http://{bound}"),
        }
    }

    /// Whether Steward serves HTTPS itself.
    pub fn tls(&self) -> bool {
        self.tls_cert_file.is_some() && self.tls_key_file.is_some()
    }
}
