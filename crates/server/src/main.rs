//! The `steward` command: serve, migrate, create admins, verify the audit chain.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use steward::config::Config;
use steward_core::{Actor, Email, InstanceRole, PersonName};
use steward_store::Store;
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(name = "steward", version, about = "The control plane for a multi-tenant SaaS")]
struct Cli {
    /// The configuration file (default: steward.toml, when present).
    #[arg(long, global = true, env = "STEWARD_CONFIG")]
    config: Option<PathBuf>,
    /// `text` or `json` logs (overrides the configuration).
    #[arg(long, global = true)]
    log_format: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
enum UsersCommand {
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
enum OrgsCommand {
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
enum AdminCommand {
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
enum AuditCommand {
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let mut config = Config::load(cli.config.as_deref())?;
    if let Some(f) = cli.log_format {
        config.log_format = f;
    }
    init_logs(&config.log_format);
    match cli.command {
        Command::Serve => {
            let listener = tokio::net::TcpListener::bind(&config.listen)
                .await
                .with_context(|| format!("binding {}", config.listen))?;
            let server = steward::Server::build(config, listener).await?;
            if let Some(link) = &server.setup_link {
                println!("No system administrator exists yet. Create one within this run at:\n  {link}");
            }
            let scheme = if server.state.config.tls() { "https" } else { "http" };
            println!("Steward is listening on {scheme}://{}", server.addr);
            server.run(steward::app::shutdown_signal()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate => {
            steward::open_store(&config).await?;
            println!("migrations applied");
            Ok(ExitCode::SUCCESS)
        }
        Command::Admin { command: AdminCommand::Create { email, role, name, password_stdin } } => {
            let email = Email::parse(&email)?;
            let name = PersonName::parse(&name)?;
            let role = InstanceRole::parse(&role)?;
            anyhow::ensure!(password_stdin, "the password is read from standard input (--password-stdin)");
            let mut password = String::new();
            std::io::stdin().read_to_string(&mut password).context("reading the password")?;
            let password = password.trim_end_matches(['\r', '\n']);
            let store = steward::open_store(&config).await?;
            if !role.is_builtin() {
                let mut tx = store.read().await?;
                let custom = tx.custom_role(role.as_str()).await?;
                tx.rollback().await?;
                anyhow::ensure!(custom.is_some(), "there is no role named {role}");
            }
            let pool = steward::auth::PasswordPool::new(1);
            let hash = pool.hash(password).await.map_err(|e| anyhow::anyhow!("{}", e.problem().detail))?;
            let user = steward::service::create_admin(store.as_ref(), &email, &name, hash, role, Actor::SYSTEM)
                .await
                .map_err(|e| anyhow::anyhow!("{}", e.problem().detail))?;
            println!("created {} ({})", user.email, user.id);
            Ok(ExitCode::SUCCESS)
        }
        Command::Audit { command: AuditCommand::Verify { archive, checkpoint } } => {
            let store = steward::open_store(&config).await?;
            let (check, archived) = steward::archive::verify_with_archives(store.as_ref(), &archive).await?;
            if let Some(seq) = check.first_bad_seq() {
                println!("audit chain broken at event {seq} ({} events read)", check.checked());
                return Ok(ExitCode::from(1));
            }
            println!("audit chain intact: {} events ({archived} from archives)", check.checked() + archived);
            let exported = match &checkpoint {
                Some(path) => {
                    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
                    Some(serde_json::from_str::<steward::checkpoint::Checkpoint>(&text).context("the checkpoint")?)
                }
                None => None,
            };
            let Some(key) = audit_key(&config)? else {
                anyhow::ensure!(exported.is_none(), "checking a checkpoint needs STEWARD_AUDIT_KEY");
                println!(
                    "checkpoints NOT checked: no STEWARD_AUDIT_KEY, so whoever can write the database could have \
                     rewritten the chain unseen"
                );
                return Ok(ExitCode::SUCCESS);
            };
            let problems = steward::checkpoint::verify(store.as_ref(), &key, exported.as_ref()).await?;
            if problems.is_empty() {
                println!("signed checkpoints hold (key {})", key.id());
                Ok(ExitCode::SUCCESS)
            } else {
                for p in &problems {
                    println!("{p}");
                }
                Ok(ExitCode::from(1))
            }
        }
        Command::Audit { command: AuditCommand::Checkpoint { output } } => {
            let key = audit_key(&config)?.context("signing a checkpoint needs STEWARD_AUDIT_KEY")?;
            let store = steward::open_store(&config).await?;
            // The latest checkpoint a running Steward signed; one is signed here only when there
            // is none yet (Steward never ran with this key).
            let mut tx = store.read().await?;
            let kept = tx.audit_checkpoints().await?;
            tx.rollback().await?;
            let kept = kept.into_iter().filter(|c| c.kind == "head" && c.key_id == key.id()).max_by_key(|c| c.seq);
            let latest = match kept {
                Some(c) => Some(steward::checkpoint::Checkpoint::from(c)),
                None => steward::checkpoint::sign_head(store.as_ref(), &key).await?,
            };
            let latest = latest.context("the audit log is empty: nothing to sign")?;
            let text = serde_json::to_string_pretty(&latest)? + "\n";
            match output {
                Some(path) => std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?,
                None => print!("{text}"),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Audit { command: AuditCommand::Keygen } => {
            println!("{}", steward::checkpoint::AuditKey::generate().map_err(|e| anyhow::anyhow!(e))?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Audit { command: AuditCommand::Archive { output } } => {
            let store = steward::open_store(&config).await?;
            let mut tx = store.read().await?;
            let (settings, _) = steward::state::instance_settings(tx.as_mut())
                .await
                .map_err(|e| anyhow::anyhow!("{}", e.problem().detail))?;
            tx.rollback().await?;
            let Some(days) = settings.policies.audit_retention_days else {
                anyhow::bail!("the instance keeps its whole audit log: set the policy audit_retention_days to archive");
            };
            let now = time::OffsetDateTime::now_utc();
            let cutoff = now - time::Duration::days(i64::from(days));
            let file = output.unwrap_or_else(|| PathBuf::from(format!("audit-archive-{}.jsonl", now.unix_timestamp())));
            let done = steward::archive::archive(store.as_ref(), cutoff, &file).await?;
            // The new anchor is signed, so that a forged one is told apart from an archiving.
            if let (Some(key), Some(_)) = (audit_key(&config)?, done.through_seq) {
                let mut tx = store.read().await?;
                let anchor = tx.audit_anchor().await?;
                tx.rollback().await?;
                if let Some((seq, hash)) = anchor {
                    steward::checkpoint::keep(store.as_ref(), &key, seq, "anchor", &hash).await?;
                }
            }
            match done.through_seq {
                Some(seq) => println!("archived {} events through {seq} to {}", done.events, file.display()),
                None => {
                    let _ = std::fs::remove_file(&file);
                    println!("nothing older than {days} days to archive");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Orgs { command: OrgsCommand::Export { org_id, output, report_memory } } => {
            use futures_util::StreamExt;
            use tokio::io::AsyncWriteExt;
            let org: steward_core::OrgId = org_id.parse().context("the org id")?;
            let store = steward::open_store(&config).await?;
            let mut tx = store.read().await?;
            let found = tx.org(org).await?.is_some();
            tx.rollback().await?;
            anyhow::ensure!(found, "there is no org {org_id}");
            let mut out: Box<dyn tokio::io::AsyncWrite + Unpin> = match output {
                Some(path) => Box::new(
                    tokio::fs::File::create(&path).await.with_context(|| format!("creating {}", path.display()))?,
                ),
                None => Box::new(tokio::io::stdout()),
            };
            let mut stream = std::pin::pin!(steward::routes::erasure::export_stream(
                store,
                org,
                time::OffsetDateTime::now_utc(),
                None
            ));
            while let Some(chunk) = stream.next().await {
                out.write_all(&chunk?).await?;
            }
            out.flush().await?;
            if report_memory {
                let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
                let peak = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap_or("VmHWM: unknown");
                eprintln!("{peak}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Backup { file } => {
            anyhow::ensure!(
                config.database_url.starts_with("sqlite:"),
                "back PostgreSQL up with its own tools (pg_dump)"
            );
            anyhow::ensure!(!file.exists(), "{} exists; choose a new file", file.display());
            let store = steward_store::SqliteStore::open(&config.database_url, config.sqlite_durable).await?;
            store.backup(&file).await?;
            println!("backed up to {}", file.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Restore { file, force } => {
            let path = config
                .database_url
                .strip_prefix("sqlite://")
                .or_else(|| config.database_url.strip_prefix("sqlite:"))
                .context("restore puts back a SQLite database; restore PostgreSQL with its own tools")?
                .split('?')
                .next()
                .unwrap_or_default()
                .to_owned();
            // The backup must be a Steward database whose chain holds.
            let check_url = format!("sqlite://{}", file.display());
            let backup =
                steward_store::SqliteStore::open(&check_url, true).await.context("the backup does not open")?;
            let check = backup.verify_audit().await?;
            anyhow::ensure!(
                check.first_bad_seq().is_none(),
                "the backup's audit chain is broken at event {:?}",
                check.first_bad_seq()
            );
            drop(backup);
            anyhow::ensure!(
                force || !std::path::Path::new(&path).exists(),
                "{path} exists; pass --force to replace it"
            );
            for suffix in ["-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{path}{suffix}"));
            }
            std::fs::copy(&file, &path).with_context(|| format!("copying to {path}"))?;
            println!("restored {} to {path} ({} audit events verified)", file.display(), check.checked());
            Ok(ExitCode::SUCCESS)
        }
        Command::MigrateData { from, to } => {
            anyhow::ensure!(from.starts_with("sqlite:"), "--from must be a sqlite:// URL");
            anyhow::ensure!(
                to.starts_with("postgres:") || to.starts_with("postgresql:"),
                "--to must be a postgres:// URL"
            );
            let source = steward_store::SqliteStore::open(&from, true).await?;
            let target = steward_store::PgStore::open(&to, 4, std::time::Duration::from_secs(30)).await?;
            let counts = steward_store::copy::sqlite_to_postgres(&source, &target).await?;
            for (table, n) in &counts {
                println!("{table}: {n}");
            }
            let check = target.verify_audit().await?;
            anyhow::ensure!(check.first_bad_seq().is_none(), "the copied audit chain does not verify");
            println!("moved; the audit chain verifies on the target ({} events)", check.checked());
            Ok(ExitCode::SUCCESS)
        }
        Command::Users { command: UsersCommand::Import { file, dry_run } } => {
            let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            let summary = steward::remote::Remote::from_env()?.import_users(&text, dry_run).await?;
            Ok(summary.finish(if dry_run { "to import" } else { "imported" }))
        }
        Command::Users { command: UsersCommand::Deactivate { inactive_days, dry_run } } => {
            let summary = steward::remote::Remote::from_env()?.deactivate_inactive(inactive_days, dry_run).await?;
            Ok(summary.finish(if dry_run { "to deactivate" } else { "deactivated" }))
        }
        Command::Orgs { command: OrgsCommand::Deprovision { external_id, reason, dry_run } } => {
            let summary =
                steward::remote::Remote::from_env()?.org_lifecycle(&external_id, false, &reason, dry_run).await?;
            Ok(summary.finish(if dry_run { "planned" } else { "deprovisioned" }))
        }
        Command::Orgs { command: OrgsCommand::Restore { external_id, dry_run } } => {
            let summary = steward::remote::Remote::from_env()?.org_lifecycle(&external_id, true, "", dry_run).await?;
            Ok(summary.finish("restored"))
        }
        Command::Audit { command: AuditCommand::Export { output } } => {
            let remote = steward::remote::Remote::from_env()?;
            let mut out: Box<dyn std::io::Write> = match output {
                Some(path) => Box::new(std::io::BufWriter::new(std::fs::File::create(&path)?)),
                None => Box::new(std::io::stdout()),
            };
            let summary = remote.export_audit(out.as_mut()).await?;
            out.flush()?;
            eprintln!("{} events exported", summary.done);
            Ok(ExitCode::SUCCESS)
        }
        Command::Openapi => {
            print!("{}", steward::app::openapi_json());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The audit key of the configuration, if one is set.
fn audit_key(config: &Config) -> anyhow::Result<Option<steward::checkpoint::AuditKey>> {
    config
        .audit_key
        .as_ref()
        .map(|k| steward::checkpoint::AuditKey::parse(k.expose()).map_err(|e| anyhow::anyhow!(e)))
        .transpose()
}
