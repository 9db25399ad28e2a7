//! The audit log: one implementation of [`Audit`] for both databases. What differs is only when
//! the chain's head is read: SQLite reads it with the writer's `BEGIN IMMEDIATE` and keeps it
//! in the transaction ([`Exec::known_head`]); PostgreSQL reads it at each append, under the row
//! lock on `write_lock` that orders its write transactions.

use async_trait::async_trait;
use steward_core::audit::GENESIS_HASH;
use steward_core::{AuditDraft, AuditRecord, UserId};
use time::OffsetDateTime;

use super::{Exec, Stmt, Table};
use crate::StoreResult;
use crate::model::*;
use crate::rows::*;
use crate::traits::*;

/// The head of the audit chain as stored: its last event, else the anchor archiving left
/// (`pick` 1), else none (the chain starts from the genesis hash).
pub(crate) const HEAD: &str = "SELECT CAST(0 AS BIGINT) AS pick, seq, hash FROM \
     (SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1) AS last \
     UNION ALL SELECT CAST(1 AS BIGINT), seq, hash FROM audit_anchor WHERE id = 1";

/// Reads the head from the rows of [`HEAD`].
pub(crate) fn head_of(rows: &[impl DbRow]) -> StoreResult<(i64, String)> {
    let mut best: Option<(i64, i64, String)> = None;
    for row in rows {
        let pick = get::<i64>(row, "pick")?;
        if best.as_ref().is_none_or(|(p, _, _)| pick < *p) {
            best = Some((pick, get(row, "seq")?, get(row, "hash")?));
        }
    }
    Ok(best.map_or((0, GENESIS_HASH.to_owned()), |(_, seq, hash)| (seq, hash)))
}

/// Audit events written by one `INSERT` at most (14 parameters each, well under both
/// databases' limits).
const ROWS_PER_INSERT: usize = 200;

/// The columns of an event, in the order [`insert`] binds them.
const COLUMNS: &str = "seq, id, at, kind, actor_id, impersonator_id, target_type, target_id, org_id, detail, \
     personal, personal_digest, prev_hash, hash";

/// One `INSERT` of `events`.
fn insert(events: &[AuditRecord]) -> Stmt {
    let values = vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"; events.len()].join(", ");
    let mut stmt = Stmt::new(format!("INSERT INTO audit_events ({COLUMNS}) VALUES {values}"));
    for r in events {
        stmt = stmt
            .bind(r.seq)
            .bind(r.id.to_string())
            .bind(micros(r.at))
            .bind(&r.kind)
            .bind(r.actor_id.map(|i| i.to_string()))
            .bind(r.impersonator_id.map(|i| i.to_string()))
            .bind(&r.target_type)
            .bind(&r.target_id)
            .bind(r.org_id.map(|i| i.to_string()))
            .bind(&r.detail)
            .bind(&r.personal)
            .bind(&r.personal_digest)
            .bind(&r.prev_hash)
            .bind(&r.hash);
    }
    stmt
}

/// The events `f` selects, newest first.
fn select(f: &AuditFilter) -> Stmt {
    let involving = " AND (actor_id = ? OR impersonator_id = ? OR (target_type = 'user' AND target_id = ?))";
    Stmt::new("SELECT * FROM audit_events WHERE 1 = 1")
        .and_if(" AND actor_id = ?", f.actor_id.map(|a| a.to_string()))
        .and_if(" AND target_id = ?", f.target_id.clone())
        .and_if(" AND org_id = ?", f.org_id.map(|o| o.to_string()))
        .and_if(" AND kind = ?", f.kind.clone())
        .and_if(involving, f.involving.map(|u| u.to_string()))
        .and_if(" AND at >= ?", f.since.map(micros))
        .and_if(" AND at < ?", f.until.map(micros))
        .newest_first("seq", f.before_seq, f.limit)
}

#[async_trait]
impl<E: Exec> Audit for E {
    async fn append_audit(&mut self, drafts: Vec<AuditDraft>, at: OffsetDateTime) -> StoreResult<Vec<AuditRecord>> {
        if drafts.is_empty() {
            return Ok(Vec::new());
        }
        let (mut seq, mut prev) = match self.known_head() {
            Some(head) => head,
            None => head_of(&self.fetch(Stmt::new(HEAD)).await?)?,
        };
        let mut sealed = Vec::with_capacity(drafts.len());
        for draft in drafts {
            seq += 1;
            let r = draft.seal(seq, at, &prev);
            prev = r.hash.clone();
            sealed.push(r);
        }
        self.keep_head(Some((seq, prev)));
        // One statement per chunk of events, not per event; nobody reads its result.
        for chunk in sealed.chunks(ROWS_PER_INSERT) {
            self.later(insert(chunk)).await?;
        }
        Ok(sealed)
    }

    async fn list_audit(&mut self, f: &AuditFilter) -> StoreResult<Vec<AuditRecord>> {
        self.rows(select(f)).await
    }

    async fn redact_personal(&mut self, user: UserId) -> StoreResult<u64> {
        let user = user.to_string();
        let redacted = self
            .run(
                Stmt::new(
                    "UPDATE audit_events SET personal = NULL WHERE personal IS NOT NULL \
                     AND ((target_type = 'user' AND target_id = ?) OR (actor_id = ? AND kind = 'user.login'))",
                )
                .bind(&user)
                .bind(&user),
            )
            .await?;
        // Traces outside the audit log: the mail sent to them, where they signed in from.
        self.run_all(vec![
            Stmt::new(
                "UPDATE outbox SET recipient = 'erased@anonymized.invalid', subject = '', body = '' WHERE user_id = ?",
            )
            .bind(&user),
            Stmt::new("UPDATE sessions SET ip = NULL, user_agent = NULL WHERE user_id = ?").bind(&user),
        ])
        .await?;
        Ok(redacted)
    }

    async fn insert_audit_checkpoint(&mut self, c: &CheckpointRow) -> StoreResult<()> {
        // Signed after the events it covers, and kept by no node: the others are not told of it.
        self.apply(c.columns()?.insert_unless_present(CheckpointRow::TABLE).kept_by_no_node()).await
    }

    async fn audit_checkpoints(&mut self) -> StoreResult<Vec<CheckpointRow>> {
        self.rows(Stmt::new("SELECT seq, kind, hash, at, key_id, signature FROM audit_checkpoints ORDER BY seq, kind"))
            .await
    }

    async fn audit_anchor(&mut self) -> StoreResult<Option<(i64, String)>> {
        let row = self.fetch_one(Stmt::new("SELECT seq, hash FROM audit_anchor WHERE id = 1")).await?;
        row.map(|r| Ok((get::<i64>(&r, "seq")?, get::<String>(&r, "hash")?))).transpose()
    }

    async fn drop_archived_audit(&mut self, seq: i64, hash: &str, at: OffsetDateTime) -> StoreResult<u64> {
        // The head is read again after archiving moves the anchor.
        self.keep_head(None);
        let anchor = Stmt::new(
            "INSERT INTO audit_anchor (id, seq, hash, archived_at) VALUES (1, ?, ?, ?) ON CONFLICT (id) \
             DO UPDATE SET seq = excluded.seq, hash = excluded.hash, archived_at = excluded.archived_at",
        )
        .bind(seq)
        .bind(hash)
        .bind(micros(at));
        self.run(anchor).await?;
        self.run(Stmt::new("DELETE FROM audit_events WHERE seq <= ?").bind(seq)).await
    }

    async fn sign_ins_per_day(&mut self, since: OffsetDateTime) -> StoreResult<Vec<(OffsetDateTime, u64)>> {
        // `at` is in microseconds: integer division finds its UTC day on both databases.
        let per_day = Stmt::new(
            "SELECT (at / 86400000000) * 86400000000 AS day, COUNT(*) AS n FROM audit_events \
             WHERE kind = 'user.login' AND at >= ? GROUP BY (at / 86400000000) ORDER BY 1",
        );
        let rows = self.fetch(per_day.bind(micros(since))).await?;
        rows.iter().map(|r| Ok((from_micros(get(r, "day")?)?, count(get(r, "n")?)))).collect()
    }

    async fn audit_chain(&mut self, after: i64, limit: u32) -> StoreResult<Vec<AuditRecord>> {
        let stmt = Stmt::new("SELECT * FROM audit_events WHERE seq > ? ORDER BY seq LIMIT ?")
            .bind(after)
            .bind(i64::from(limit));
        self.rows(stmt).await
    }
}
