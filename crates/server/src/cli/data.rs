//! The commands that work on a whole database: back up and restore SQLite, move an instance to
//! PostgreSQL, export one org.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use steward_store::{PgStore, SqliteStore, Store};

use crate::config::Config;

/// Writes an org's export bundle (JSON), streamed, to `output` or standard output.
pub async fn export_org(
    config: &Config,
    org_id: &str,
    output: Option<PathBuf>,
    report_memory: bool,
) -> anyhow::Result<ExitCode> {
    use futures_util::StreamExt;
    use tokio::io::AsyncWriteExt;
    let org: steward_core::OrgId = org_id.parse().context("the org id")?;
    let store = crate::open_store(config).await?;
    let mut tx = store.read().await?;
    let found = tx.org(org).await?.is_some();
    tx.rollback().await?;
    anyhow::ensure!(found, "there is no org {org_id}");
    let mut out: Box<dyn tokio::io::AsyncWrite + Unpin> = match output {
        Some(path) => {
            Box::new(tokio::fs::File::create(&path).await.with_context(|| format!("creating {}", path.display()))?)
        }
        None => Box::new(tokio::io::stdout()),
    };
    let now = time::OffsetDateTime::now_utc();
    let mut stream = std::pin::pin!(crate::routes::erasure::export_stream(store, org, now, None));
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

/// Writes a consistent copy of the SQLite database to `file`, while Steward keeps serving.
pub async fn backup(config: &Config, file: &Path) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(config.database_url.starts_with("sqlite:"), "back PostgreSQL up with its own tools (pg_dump)");
    anyhow::ensure!(!file.exists(), "{} exists; choose a new file", file.display());
    let store = SqliteStore::open(&config.database_url, config.sqlite_durable).await?;
    store.backup(file).await?;
    println!("backed up to {}", file.display());
    Ok(ExitCode::SUCCESS)
}

/// Puts a backup whose audit chain holds in place of the SQLite database.
pub async fn restore(config: &Config, file: &Path, force: bool) -> anyhow::Result<ExitCode> {
    let path = config
        .database_url
        .strip_prefix("sqlite://")
        .or_else(|| config.database_url.strip_prefix("sqlite:"))
        .context("restore puts back a SQLite database; restore PostgreSQL with its own tools")?
        .split('?')
        .next()
        .unwrap_or_default()
        .to_owned();
    let check_url = format!("sqlite://{}", file.display());
    let backup = SqliteStore::open(&check_url, true).await.context("the backup does not open")?;
    let check = backup.verify_audit().await?;
    anyhow::ensure!(
        check.first_bad_seq().is_none(),
        "the backup's audit chain is broken at event {:?}",
        check.first_bad_seq()
    );
    drop(backup);
    anyhow::ensure!(force || !Path::new(&path).exists(), "{path} exists; pass --force to replace it");
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{path}{suffix}"));
    }
    std::fs::copy(file, &path).with_context(|| format!("copying to {path}"))?;
    println!("restored {} to {path} ({} audit events verified)", file.display(), check.checked());
    Ok(ExitCode::SUCCESS)
}

/// Moves a whole instance from SQLite to an empty PostgreSQL database, audit chain included.
pub async fn migrate(from: &str, to: &str) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(from.starts_with("sqlite:"), "--from must be a sqlite:// URL");
    anyhow::ensure!(to.starts_with("postgres:") || to.starts_with("postgresql:"), "--to must be a postgres:// URL");
    let source = SqliteStore::open(from, true).await?;
    let target = PgStore::open(to, 4, std::time::Duration::from_secs(30)).await?;
    let counts = steward_store::copy::sqlite_to_postgres(&source, &target).await?;
    for (table, n) in &counts {
        println!("{table}: {n}");
    }
    let check = target.verify_audit().await?;
    anyhow::ensure!(check.first_bad_seq().is_none(), "the copied audit chain does not verify");
    println!("moved; the audit chain verifies on the target ({} events)", check.checked());
    Ok(ExitCode::SUCCESS)
}
