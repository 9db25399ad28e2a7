//! The `steward` command line: one small function per command. `serve` runs the server;
//! `migrate`, `admin`, `audit`, `backup`, `restore`, `migrate-data` and `orgs export` work on the
//! database directly; `users` and the other `orgs` commands call a running Steward over its API.

mod admin;
mod audit;
mod data;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use crate::config::Config;
use crate::remote::Remote;

#[derive(Parser)]
#[command(name = "steward", version, about = "The control plane for a multi-tenant SaaS")]
pub struct Cli {
    /// The configuration file (default: steward.toml, when present).
    #[arg(long, global = true, env = "STEWARD_CONFIG")]
    pub config: Option<PathBuf>,
    /// `text` or `json` logs (overrides the configuration).
    #[arg(long, global = true)]
    pub log_format: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Serve the API, the pages and the background jobs.
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Manage instance admins.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Work with the audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Print the OpenAPI document.
    Openapi,
    /// Write a consistent copy of the SQLite database to FILE, while Steward keeps serving.
    Backup { file: PathBuf },
    /// Put a backup in place of the SQLite database (Steward must not be running).
    Restore {
        file: PathBuf,
        /// Replace an existing database.
        #[arg(long)]
        force: bool,
    },
    /// Move a whole instance from SQLite to an empty PostgreSQL database, audit chain included.
    MigrateData {
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: String,
    },
    /// Bulk work on users of a running Steward.
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// Work with organizations.
    Orgs {
        #[command(subcommand)]
        command: OrgsCommand,
    },
}

#[derive(Subcommand)]
pub enum UsersCommand {
    /// Create users from a CSV file (email,name[,password][,org_external_id][,role]) on a running
    /// Steward (STEWARD_URL, STEWARD_TOKEN); existing users are skipped.
    Import {
        file: PathBuf,
        #[arg(long)]
        dry_run: bool,
    },
    /// Deactivate the active users not seen for N days, on a running Steward.
    Deactivate {
        #[arg(long)]
        inactive_days: u32,
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand)]
pub enum OrgsCommand {
    /// Deprovision the org with this external id, on a running Steward.
    Deprovision {
        #[arg(long)]
        external_id: String,
        #[arg(long, default_value = "deprovisioned from the command line")]
        reason: String,
        #[arg(long)]
        dry_run: bool,
    },
    /// Restore the org with this external id, on a running Steward.
    Restore {
        #[arg(long)]
        external_id: String,
        #[arg(long)]
        dry_run: bool,
    },
    /// Write an org's export bundle (JSON), streamed.
    Export {
        /// The org's id.
        org_id: String,
        /// Where to write (default: standard output).
        #[arg(long)]
        output: Option<PathBuf>,
        /// Print the process's peak memory to standard error at the end.
        #[arg(long)]
        report_memory: bool,
    },
}

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Create an instance admin.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long, default_value = "system_admin")]
        role: String,
        #[arg(long, default_value = "Administrator")]
        name: String,
        /// Read the password from standard input.
        #[arg(long, required = true)]
        password_stdin: bool,
    },
}

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain and, with STEWARD_AUDIT_KEY, its signed checkpoints: exit 0 when
    /// intact, 1 with what is wrong otherwise.
    Verify {
        /// Archive files to check first, oldest first; the database then continues from them.
        #[arg(long)]
        archive: Vec<PathBuf>,
        /// A checkpoint exported earlier (`steward audit checkpoint`): no event it covers may
        /// have been rewritten or removed.
        #[arg(long)]
        checkpoint: Option<PathBuf>,
    },
    /// Sign the chain's current head (with STEWARD_AUDIT_KEY) and write the checkpoint, to keep
    /// outside the database.
    Checkpoint {
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Print a new key for STEWARD_AUDIT_KEY.
    Keygen,
    /// Write the audit log of a running Steward (STEWARD_URL, STEWARD_TOKEN) as JSON lines.
    Export {
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Move events older than the policy `audit_retention_days` to a file, keeping the anchor.
    Archive {
        /// The JSON-lines file to write (default: audit-archive-<time>.jsonl).
        #[arg(long)]
        output: Option<PathBuf>,
    },
}

fn init_logs(format: &str) {
    let filter = EnvFilter::try_from_env("STEWARD_LOG").unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Runs the command the line names, with the configuration it names.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let mut config = Config::load(cli.config.as_deref())?;
    if let Some(f) = cli.log_format {
        config.log_format = f;
    }
    init_logs(&config.log_format);
    match cli.command {
        Command::Serve => serve(config).await,
        Command::Migrate => {
            crate::open_store(&config).await?;
            println!("migrations applied");
            Ok(ExitCode::SUCCESS)
        }
        Command::Admin { command: AdminCommand::Create { email, role, name, password_stdin } } => {
            admin::create(&config, &email, &role, &name, password_stdin).await
        }
        Command::Audit { command } => audit::run(&config, command).await,
        Command::Orgs { command: OrgsCommand::Export { org_id, output, report_memory } } => {
            data::export_org(&config, &org_id, output, report_memory).await
        }
        Command::Backup { file } => data::backup(&config, &file).await,
        Command::Restore { file, force } => data::restore(&config, &file, force).await,
        Command::MigrateData { from, to } => data::migrate(&from, &to).await,
        Command::Users { command } => users(command).await,
        Command::Orgs { command: OrgsCommand::Deprovision { external_id, reason, dry_run } } => {
            let summary = Remote::from_env()?.org_lifecycle(&external_id, false, &reason, dry_run).await?;
            Ok(summary.finish(if dry_run { "planned" } else { "deprovisioned" }))
        }
        Command::Orgs { command: OrgsCommand::Restore { external_id, dry_run } } => {
            let summary = Remote::from_env()?.org_lifecycle(&external_id, true, "", dry_run).await?;
            Ok(summary.finish("restored"))
        }
        Command::Openapi => {
            print!("{}", crate::app::openapi_json());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `steward serve`: the API, the pages and the background jobs, until a shutdown signal.
async fn serve(config: Config) -> anyhow::Result<ExitCode> {
    let listener =
        tokio::net::TcpListener::bind(&config.listen).await.with_context(|| format!("binding {}", config.listen))?;
    let server = crate::Server::build(config, listener).await?;
    if let Some(link) = &server.setup_link {
        println!("No system administrator exists yet. Create one within this run at:\n  {link}");
    }
    let scheme = if server.state.config.tls() { "https" } else { "http" };
    println!("Steward is listening on {scheme}://{}", server.addr);
    server.run(crate::app::shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

/// `steward users …`: bulk work on the users of a running Steward.
async fn users(command: UsersCommand) -> anyhow::Result<ExitCode> {
    let remote = Remote::from_env()?;
    match command {
        UsersCommand::Import { file, dry_run } => {
            let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            let summary = remote.import_users(&text, dry_run).await?;
            Ok(summary.finish(if dry_run { "to import" } else { "imported" }))
        }
        UsersCommand::Deactivate { inactive_days, dry_run } => {
            let summary = remote.deactivate_inactive(inactive_days, dry_run).await?;
            Ok(summary.finish(if dry_run { "to deactivate" } else { "deactivated" }))
        }
    }
}
