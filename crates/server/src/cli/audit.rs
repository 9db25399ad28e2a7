//! `steward audit …`: verify the chain and its signed checkpoints, sign one, make a key, export
//! from a running Steward, archive old events.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use super::AuditCommand;
use crate::checkpoint::{AuditKey, Checkpoint};
use crate::config::Config;

/// Runs one `audit` command.
pub async fn run(config: &Config, command: AuditCommand) -> anyhow::Result<ExitCode> {
    match command {
        AuditCommand::Verify { archive, checkpoint } => verify(config, &archive, checkpoint.as_deref()).await,
        AuditCommand::Checkpoint { output } => checkpoint(config, output).await,
        AuditCommand::Keygen => {
            println!("{}", AuditKey::generate().map_err(|e| anyhow::anyhow!(e))?);
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Export { output } => export(output).await,
        AuditCommand::Archive { output } => archive(config, output).await,
    }
}

fn audit_key(config: &Config) -> anyhow::Result<Option<AuditKey>> {
    config.audit_key.as_ref().map(|k| AuditKey::parse(k.expose()).map_err(|e| anyhow::anyhow!(e))).transpose()
}

/// Exit 0 when the chain (archives first) is intact and, with a key, its checkpoints hold.
async fn verify(config: &Config, archive: &[PathBuf], checkpoint: Option<&Path>) -> anyhow::Result<ExitCode> {
    let store = crate::open_store(config).await?;
    let (check, archived) = crate::archive::verify_with_archives(store.as_ref(), archive).await?;
    if let Some(seq) = check.first_bad_seq() {
        println!("audit chain broken at event {seq} ({} events read)", check.checked());
        return Ok(ExitCode::from(1));
    }
    println!("audit chain intact: {} events ({archived} from archives)", check.checked() + archived);
    let exported = match checkpoint {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            Some(serde_json::from_str::<Checkpoint>(&text).context("the checkpoint")?)
        }
        None => None,
    };
    let Some(key) = audit_key(config)? else {
        anyhow::ensure!(exported.is_none(), "checking a checkpoint needs STEWARD_AUDIT_KEY");
        println!(
            "checkpoints NOT checked: no STEWARD_AUDIT_KEY, so whoever can write the database could have \
             rewritten the chain unseen"
        );
        return Ok(ExitCode::SUCCESS);
    };
    let problems = crate::checkpoint::verify(store.as_ref(), &key, exported.as_ref()).await?;
    if problems.is_empty() {
        println!("signed checkpoints hold (key {})", key.id());
        return Ok(ExitCode::SUCCESS);
    }
    for p in &problems {
        println!("{p}");
    }
    Ok(ExitCode::from(1))
}

/// Writes the latest checkpoint a running Steward signed; signs one only when there is none yet
/// (Steward never ran with this key).
async fn checkpoint(config: &Config, output: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let key = audit_key(config)?.context("signing a checkpoint needs STEWARD_AUDIT_KEY")?;
    let store = crate::open_store(config).await?;
    let mut tx = store.read().await?;
    let kept = tx.audit_checkpoints().await?;
    tx.rollback().await?;
    let kept = kept.into_iter().filter(|c| c.kind == "head" && c.key_id == key.id()).max_by_key(|c| c.seq);
    let latest = match kept {
        Some(c) => Some(Checkpoint::from(c)),
        None => crate::checkpoint::sign_head(store.as_ref(), &key).await?,
    };
    let latest = latest.context("the audit log is empty: nothing to sign")?;
    let text = serde_json::to_string_pretty(&latest)? + "\n";
    match output {
        Some(path) => std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?,
        None => print!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes the audit log of a running Steward as JSON lines.
async fn export(output: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let remote = crate::remote::Remote::from_env()?;
    let mut out: Box<dyn std::io::Write> = match output {
        Some(path) => Box::new(std::io::BufWriter::new(std::fs::File::create(&path)?)),
        None => Box::new(std::io::stdout()),
    };
    let summary = remote.export_audit(out.as_mut()).await?;
    out.flush()?;
    eprintln!("{} events exported", summary.done);
    Ok(ExitCode::SUCCESS)
}

/// Moves events older than `audit_retention_days` to a file, and signs the new anchor.
async fn archive(config: &Config, output: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let store = crate::open_store(config).await?;
    let mut tx = store.read().await?;
    let (settings, _) =
        crate::state::instance_settings(tx.as_mut()).await.map_err(|e| anyhow::anyhow!("{}", e.problem().detail))?;
    tx.rollback().await?;
    let Some(days) = settings.policies.audit_retention_days else {
        anyhow::bail!("the instance keeps its whole audit log: set the policy audit_retention_days to archive");
    };
    let now = time::OffsetDateTime::now_utc();
    let cutoff = now - time::Duration::days(i64::from(days));
    let file = output.unwrap_or_else(|| PathBuf::from(format!("audit-archive-{}.jsonl", now.unix_timestamp())));
    let done = crate::archive::archive(store.as_ref(), cutoff, &file).await?;
    // The new anchor is signed, so that a forged one is told apart from an archiving.
    if let (Some(key), Some(_)) = (audit_key(config)?, done.through_seq) {
        let mut tx = store.read().await?;
        let anchor = tx.audit_anchor().await?;
        tx.rollback().await?;
        if let Some((seq, hash)) = anchor {
            crate::checkpoint::keep(store.as_ref(), &key, seq, "anchor", &hash).await?;
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
