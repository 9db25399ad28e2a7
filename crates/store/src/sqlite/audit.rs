//! The audit log on SQLite: its chain's head is read under the writer's `BEGIN IMMEDIATE`.

use super::*;

#[async_trait]
impl Audit for SqliteTx {
    async fn append_audit(&mut self, drafts: Vec<AuditDraft>, at: OffsetDateTime) -> StoreResult<Vec<AuditRecord>> {
        if drafts.is_empty() {
            return Ok(Vec::new());
        }
        self.insert_audit(drafts, at).await
    }

    async fn list_audit(&mut self, f: &AuditFilter) -> StoreResult<Vec<AuditRecord>> {
        let mut sql = String::from("SELECT * FROM audit_events WHERE 1 = 1");
        let mut binds: Vec<String> = Vec::new();
        let mut ints: Vec<(usize, i64)> = Vec::new();
        let mut push = |sql: &mut String, clause: &str, value: String| {
            sql.push_str(clause);
            binds.push(value);
        };
        if let Some(a) = f.actor_id {
            push(&mut sql, " AND actor_id = ?", a.to_string());
        }
        if let Some(t) = &f.target_id {
            push(&mut sql, " AND target_id = ?", t.clone());
        }
        if let Some(o) = f.org_id {
            push(&mut sql, " AND org_id = ?", o.to_string());
        }
        if let Some(k) = &f.kind {
            push(&mut sql, " AND kind = ?", k.clone());
        }
        if let Some(u) = f.involving {
            sql.push_str(" AND (actor_id = ? OR impersonator_id = ? OR (target_type = 'user' AND target_id = ?))");
            binds.extend([u.to_string(), u.to_string(), u.to_string()]);
        }
        let n = binds.len();
        if let Some(s) = f.since {
            sql.push_str(" AND at >= ?");
            ints.push((n, micros(s)));
        }
        if let Some(u) = f.until {
            sql.push_str(" AND at < ?");
            ints.push((n, micros(u)));
        }
        if let Some(b) = f.before_seq {
            sql.push_str(" AND seq < ?");
            ints.push((n, b));
        }
        sql.push_str(" ORDER BY seq DESC LIMIT ?");
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for b in binds {
            query = query.bind(b);
        }
        for (_, i) in ints {
            query = query.bind(i);
        }
        let rows = query.bind(i64::from(f.limit)).fetch_all(self.conn().await?).await.map_err(backend)?;
        rows.iter().map(audit_from_row).collect()
    }

    async fn redact_personal(&mut self, user: UserId) -> StoreResult<u64> {
        let result = sqlx::query(
            "UPDATE audit_events SET personal = NULL WHERE personal IS NOT NULL \
             AND ((target_type = 'user' AND target_id = ?) OR (actor_id = ? AND kind = 'user.login'))",
        )
        .bind(user.to_string())
        .bind(user.to_string())
        .execute(self.conn().await?)
        .await
        .map_err(backend)?;
        // Traces outside the audit log: the mail sent to them, where they signed in from.
        for sql in [
            "UPDATE outbox SET recipient = 'erased@anonymized.invalid', subject = '', body = '' WHERE user_id = ?",
            "UPDATE sessions SET ip = NULL, user_agent = NULL WHERE user_id = ?",
        ] {
            sqlx::query(AssertSqlSafe(sql))
                .bind(user.to_string())
                .execute(self.conn().await?)
                .await
                .map_err(backend)?;
        }
        Ok(result.rows_affected())
    }

    async fn insert_audit_checkpoint(&mut self, c: &CheckpointRow) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO audit_checkpoints (seq, kind, hash, at, key_id, signature) VALUES (?, ?, ?, ?, ?, ?) \
             ON CONFLICT (seq, kind) DO NOTHING",
        )
        .bind(c.seq)
        .bind(&c.kind)
        .bind(&c.hash)
        .bind(micros(c.at))
        .bind(&c.key_id)
        .bind(&c.signature)
        .execute(self.conn().await?)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn audit_checkpoints(&mut self) -> StoreResult<Vec<CheckpointRow>> {
        let rows =
            sqlx::query("SELECT seq, kind, hash, at, key_id, signature FROM audit_checkpoints ORDER BY seq, kind")
                .fetch_all(self.conn().await?)
                .await
                .map_err(backend)?;
        rows.iter().map(checkpoint_from_row).collect()
    }

    async fn audit_anchor(&mut self) -> StoreResult<Option<(i64, String)>> {
        let row = sqlx::query("SELECT seq, hash FROM audit_anchor WHERE id = 1")
            .fetch_optional(self.conn().await?)
            .await
            .map_err(backend)?;
        row.map(|r| Ok((get::<i64>(&r, "seq")?, get::<String>(&r, "hash")?))).transpose()
    }

    async fn drop_archived_audit(&mut self, seq: i64, hash: &str, at: OffsetDateTime) -> StoreResult<u64> {
        // The head is read again after archiving moves the anchor.
        self.head = None;
        sqlx::query(
            "INSERT INTO audit_anchor (id, seq, hash, archived_at) VALUES (1, ?, ?, ?) \
             ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, archived_at = excluded.archived_at",
        )
        .bind(seq)
        .bind(hash)
        .bind(micros(at))
        .execute(self.conn().await?)
        .await
        .map_err(backend)?;
        let result = sqlx::query("DELETE FROM audit_events WHERE seq <= ?")
            .bind(seq)
            .execute(self.conn().await?)
            .await
            .map_err(backend)?;
        Ok(result.rows_affected())
    }

    async fn audit_chain(&mut self, after: i64, limit: u32) -> StoreResult<Vec<AuditRecord>> {
        let rows = sqlx::query("SELECT * FROM audit_events WHERE seq > ? ORDER BY seq LIMIT ?")
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(self.conn().await?)
            .await
            .map_err(backend)?;
        rows.iter().map(audit_from_row).collect()
    }
}
