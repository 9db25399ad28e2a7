//! Archiving the audit log: events older than the instance's `audit_retention_days` move to a
//! JSON-lines file, and the database keeps the last archived event's hash as the anchor from
//! which verification continues. The files verify on their own, and with the database after them.

use std::io::{BufRead, Write};
use std::path::Path;

use anyhow::Context;
use serde_json::{Value, json};
use steward_core::{AuditDraft, AuditRecord, ChainCheck, TargetType};
use steward_store::Store;
use time::OffsetDateTime;

fn micros(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1000) as i64
}

/// One archived event as a JSON line, with every field the hash covers.
pub fn to_line(r: &AuditRecord) -> Value {
    json!({
        "seq": r.seq, "id": r.id, "at_us": micros(r.at), "kind": r.kind,
        "actor_id": r.actor_id, "impersonator_id": r.impersonator_id,
        "target_type": r.target_type, "target_id": r.target_id, "org_id": r.org_id,
        "detail": r.detail, "personal": r.personal, "personal_digest": r.personal_digest,
        "prev_hash": r.prev_hash, "hash": r.hash,
    })
}

/// Reads an archived event back.
pub fn from_line(v: &Value) -> anyhow::Result<AuditRecord> {
    let text = |k: &str| v[k].as_str().map(str::to_owned).with_context(|| format!("{k} is missing"));
    let opt = |k: &str| v[k].as_str().map(str::to_owned);
    let at_us = v["at_us"].as_i64().context("at_us is missing")?;
    Ok(AuditRecord {
        id: text("id")?.parse()?,
        seq: v["seq"].as_i64().context("seq is missing")?,
        at: OffsetDateTime::from_unix_timestamp_nanos(i128::from(at_us) * 1000)?,
        kind: text("kind")?,
        actor_id: opt("actor_id").map(|s| s.parse()).transpose()?,
        impersonator_id: opt("impersonator_id").map(|s| s.parse()).transpose()?,
        target_type: text("target_type")?,
        target_id: text("target_id")?,
        org_id: opt("org_id").map(|s| s.parse()).transpose()?,
        detail: text("detail")?,
        personal: opt("personal"),
        personal_digest: opt("personal_digest"),
        prev_hash: text("prev_hash")?,
        hash: text("hash")?,
    })
}

/// What an archiving did.
pub struct Archived {
    pub events: u64,
    pub through_seq: Option<i64>,
}

/// Moves the events older than `cutoff` to `file` and anchors the chain at the last of them.
pub async fn archive(store: &dyn Store, cutoff: OffsetDateTime, file: &Path) -> anyhow::Result<Archived> {
    let mut tx = store.read().await?;
    let mut after = tx.audit_anchor().await?.map_or(0, |(seq, _)| seq);
    tx.rollback().await?;
    let mut out =
        std::io::BufWriter::new(std::fs::File::create(file).with_context(|| format!("creating {}", file.display()))?);
    let mut last: Option<(i64, String)> = None;
    let mut events = 0;
    'pages: loop {
        let mut tx = store.read().await?;
        let page = tx.audit_chain(after, 1000).await?;
        tx.rollback().await?;
        if page.is_empty() {
            break;
        }
        for r in &page {
            if r.at >= cutoff {
                break 'pages;
            }
            serde_json::to_writer(&mut out, &to_line(r))?;
            out.write_all(b"\n")?;
            last = Some((r.seq, r.hash.clone()));
            events += 1;
            after = r.seq;
        }
    }
    let file_handle = out.into_inner().map_err(|e| anyhow::anyhow!("writing the archive: {e}"))?;
    file_handle.sync_all()?;
    let Some((seq, hash)) = last else { return Ok(Archived { events: 0, through_seq: None }) };
    let now = OffsetDateTime::now_utc();
    let mut tx = store.write().await?;
    let dropped = tx.drop_archived_audit(seq, &hash, now).await?;
    let event = AuditDraft::new("audit.archived", steward_core::Actor::SYSTEM, TargetType::Instance, "audit")
        .detail(json!({ "through_seq": seq, "anchor_hash": hash, "events": dropped }));
    tx.append_audit(vec![event], now).await?;
    // No credential, status or role changes: nothing kept by a running node goes stale.
    tx.commit().await?;
    Ok(Archived { events, through_seq: Some(seq) })
}

/// Verifies archive files in order, then the database from its anchor; returns the check of the
/// first broken part, or the database's.
pub async fn verify_with_archives(
    store: &dyn Store,
    archives: &[std::path::PathBuf],
) -> anyhow::Result<(ChainCheck, u64)> {
    let mut check = ChainCheck::default();
    let mut archived = 0;
    for path in archives {
        let reader =
            std::io::BufReader::new(std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?);
        for line in reader.lines() {
            let record = from_line(&serde_json::from_str(&line?)?)?;
            check.push(&record);
            archived += 1;
        }
        if check.first_bad_seq().is_some() {
            return Ok((check, archived));
        }
    }
    let db = store.verify_audit().await?;
    Ok((db, archived))
}
