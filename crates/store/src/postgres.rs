//! The PostgreSQL implementation: one pool; write transactions first lock a single row, so that
//! writers are serialized as on SQLite and the audit chain has one order; migrations embedded and
//! run at open. Several Steward nodes may share the database.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, PgPool, Postgres, Transaction};
use steward_core::audit::GENESIS_HASH;
use steward_core::{AuditDraft, AuditRecord, OrgId, TeamId, UserId};
use time::OffsetDateTime;

use crate::model::*;
use crate::query::{GroupField, SCIM_GROUP_COLUMNS, SCIM_USER_COLUMNS, ScimQuery, UserField, bind_all};
use crate::rows::*;
use crate::sql;
use crate::traits::*;
use crate::{Constraint, KnownSecrets, StoreError, StoreResult};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// A PostgreSQL database (or one that speaks its protocol and SQL).
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    changes: tokio::sync::watch::Receiver<u64>,
    secrets: KnownSecrets,
}

/// The channel every committed write transaction notifies, so that every node drops what it
/// cached.
const CHANGES: &str = "steward_changes";

/// Listens for other nodes' commits; a lost connection counts as a change, since notifications
/// may have been missed while it was down.
async fn listen(pool: PgPool, tick: tokio::sync::watch::Sender<u64>) {
    loop {
        let mut listener = match sqlx::postgres::PgListener::connect_with(&pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for changes; retrying");
                tick.send_modify(|n| *n += 1);
                if tick.is_closed() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        if let Err(e) = listener.listen(CHANGES).await {
            tracing::warn!(error = %e, "cannot listen for changes; retrying");
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        loop {
            // The store is gone once nobody watches: stop, and let the pool close.
            let received = tokio::select! {
                () = tick.closed() => return,
                r = listener.try_recv() => r,
            };
            match received {
                Ok(Some(_)) | Ok(None) => tick.send_modify(|n| *n += 1),
                Err(e) => {
                    tracing::warn!(error = %e, "lost the change listener");
                    tick.send_modify(|n| *n += 1);
                    break;
                }
            }
        }
    }
}

impl PgStore {
    /// Connects to `url` (`postgres://…`), with at most `max_connections`, and applies migrations.
    pub async fn open(url: &str, max_connections: u32, acquire_timeout: Duration) -> StoreResult<Self> {
        let options = PgConnectOptions::from_str(url).map_err(backend)?.application_name("steward");
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(acquire_timeout)
            .connect_with(options)
            .await
            .map_err(backend)?;
        MIGRATOR.run(&pool).await.map_err(|e| StoreError::Backend(e.to_string()))?;
        let (tick, changes) = tokio::sync::watch::channel(0);
        tokio::spawn(listen(pool.clone(), tick));
        Ok(Self { pool, changes, secrets: KnownSecrets::default() })
    }
}

impl PgStore {
    /// The pool, for copying an instance in.
    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }
}

#[async_trait]
impl Store for PgStore {
    fn shared(&self) -> bool {
        true
    }

    fn changes(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        Some(self.changes.clone())
    }

    async fn write(&self) -> StoreResult<Box<dyn Tx>> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        sqlx::query("SELECT id FROM write_lock WHERE id = 1 FOR UPDATE").execute(&mut *tx).await.map_err(backend)?;
        Ok(Box::new(PgTx { tx, writes: true, secrets: self.secrets.clone() }))
    }

    async fn read(&self) -> StoreResult<Box<dyn Tx>> {
        let tx = self
            .pool
            .begin_with("BEGIN TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .map_err(backend)?;
        Ok(Box::new(PgTx { tx, writes: false, secrets: self.secrets.clone() }))
    }

    async fn ready(&self) -> StoreResult<bool> {
        let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
            .fetch_one(&self.pool)
            .await
            .map_err(backend)?;
        Ok(applied as usize >= MIGRATOR.iter().count())
    }

    async fn give_back(&self, org: OrgId, period_start: OffsetDateTime, operations: u64) -> StoreResult<()> {
        sqlx::query(
            "UPDATE usage_periods SET operations_used = CASE WHEN operations_used > $1 THEN operations_used - $2 ELSE 0 END \
             WHERE org_id = $3 AND period_start = $4",
        )
        .bind(amount(operations))
        .bind(amount(operations))
        .bind(org.to_string())
        .bind(micros(period_start))
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn consume(&self, c: &Consume) -> StoreResult<Option<UsageRow>> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        sqlx::query(
            "INSERT INTO usage_periods (org_id, period_start, period_end) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(c.org.to_string())
        .bind(micros(c.period_start))
        .bind(micros(c.period_end))
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        let row = sqlx::query(
            "UPDATE usage_periods SET operations_used = operations_used + $1, transfer_used = transfer_used + $2 \
             WHERE org_id = $3 AND period_start = $4 \
             AND ($5 IS NULL OR operations_used + $6 <= $7) AND ($8 IS NULL OR transfer_used + $9 <= $10) RETURNING *",
        )
        .bind(amount(c.operations))
        .bind(amount(c.transfer))
        .bind(c.org.to_string())
        .bind(micros(c.period_start))
        .bind(c.operations_limit.map(amount))
        .bind(amount(c.operations))
        .bind(c.operations_limit.map(amount))
        .bind(c.transfer_limit.map(amount))
        .bind(amount(c.transfer))
        .bind(c.transfer_limit.map(amount))
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend)?;
        let usage = row.as_ref().map(usage_from_row).transpose()?;
        // A refused consume leaves no trace, not even the period row it may have created.
        if usage.is_some() {
            tx.commit().await.map_err(backend)?;
        } else {
            tx.rollback().await.map_err(backend)?;
        }
        Ok(usage)
    }
}

const USER_COLUMNS: &str = "u.id, u.email, u.email_key, u.name, u.status, u.password_hash, u.locale, u.timezone, \
     u.kind, u.notifications, u.created_at, u.updated_at, u.last_login_at, u.deactivate_at, u.version, \
     u.status_by, u.deactivate_by, \
     (SELECT string_agg(r.role, ',') FROM user_instance_roles r WHERE r.user_id = u.id) AS roles";

struct PgTx {
    tx: Transaction<'static, Postgres>,
    /// A write transaction tells the other nodes when it commits.
    writes: bool,
    secrets: KnownSecrets,
}

fn backend(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &e
        && db.code().as_deref() == Some("23505")
    {
        return StoreError::Conflict(match db.constraint() {
            Some("users_email_key") => Constraint::EmailTaken,
            Some("orgs_external_id") => Constraint::ExternalIdTaken,
            Some("teams_name") => Constraint::TeamNameTaken,
            Some("users_user_name") => Constraint::UserNameTaken,
            Some("memberships_one_owner") => Constraint::OwnerTaken,
            Some("memberships_current") => Constraint::MembershipExists,
            Some("idempotency_keys_pkey") => Constraint::IdempotencyKey,
            Some("custom_roles_pkey") => Constraint::RoleExists,
            other => Constraint::Other(other.unwrap_or("unknown").to_owned()),
        });
    }
    StoreError::Backend(e.to_string())
}

/// Numbers the `?` placeholders of a query assembled from fragments as `$1`, `$2`, ….
fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push_str(&format!("${n}"));
        } else {
            out.push(c);
        }
    }
    out
}

/// The parameters of a statement of [`crate::sql`], each with its type, NULLs too.
fn pg_args(args: Vec<sql::stmt::Arg>) -> StoreResult<sqlx::postgres::PgArguments> {
    use sql::stmt::{Arg, Kind};
    use sqlx::Arguments;
    let mut out = sqlx::postgres::PgArguments::default();
    for arg in args {
        let bound = match arg {
            Arg::Null(Kind::Int) => out.add(Option::<i64>::None),
            Arg::Null(Kind::Real) => out.add(Option::<f64>::None),
            Arg::Null(Kind::Bool) => out.add(Option::<bool>::None),
            Arg::Null(Kind::Text) => out.add(Option::<String>::None),
            Arg::Int(v) => out.add(v),
            Arg::Real(v) => out.add(v),
            Arg::Bool(v) => out.add(v),
            Arg::Text(v) => out.add(v),
        };
        bound.map_err(|e| StoreError::Backend(e.to_string()))?;
    }
    Ok(out)
}

/// A statement of [`crate::sql`] runs at once, its placeholders numbered.
#[async_trait]
impl sql::Exec for PgTx {
    const CLAIM_LOCK: &'static str = " FOR UPDATE SKIP LOCKED";
    const USER_COLUMNS: &'static str = USER_COLUMNS;

    fn secrets(&self) -> &KnownSecrets {
        &self.secrets
    }

    type Row = sqlx::postgres::PgRow;

    async fn fetch(&mut self, stmt: sql::Stmt) -> StoreResult<Vec<Self::Row>> {
        let query = sqlx::query_with(AssertSqlSafe(numbered(&stmt.sql)), pg_args(stmt.args)?);
        query.fetch_all(&mut *self.tx).await.map_err(|e| (stmt.map)(backend(e)))
    }

    async fn run(&mut self, stmt: sql::Stmt) -> StoreResult<u64> {
        let query = sqlx::query_with(AssertSqlSafe(numbered(&stmt.sql)), pg_args(stmt.args)?);
        let changed = query.execute(&mut *self.tx).await.map_err(|e| (stmt.map)(backend(e)))?.rows_affected();
        if stmt.expect_one && changed != 1 {
            return Err((stmt.map)(StoreError::Conflict(Constraint::VersionMismatch)));
        }
        Ok(changed)
    }
}

#[async_trait]
impl Tx for PgTx {
    async fn commit(self: Box<Self>) -> StoreResult<()> {
        let mut this = self;
        if this.writes {
            // Delivered to the listeners only if, and when, the transaction commits.
            sqlx::query(AssertSqlSafe(format!("NOTIFY {CHANGES}"))).execute(&mut *this.tx).await.map_err(backend)?;
        }
        this.tx.commit().await.map_err(backend)
    }

    async fn rollback(self: Box<Self>) -> StoreResult<()> {
        self.tx.rollback().await.map_err(backend)
    }
}

#[async_trait]
impl Audit for PgTx {
    async fn append_audit(&mut self, drafts: Vec<AuditDraft>, at: OffsetDateTime) -> StoreResult<Vec<AuditRecord>> {
        let head = sqlx::query("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(backend)?;
        let (mut seq, mut prev) = match head {
            Some(row) => (get::<i64>(&row, "seq")?, get::<String>(&row, "hash")?),
            // Everything may have been archived: the chain then continues from the anchor.
            None => self.audit_anchor().await?.unwrap_or((0, GENESIS_HASH.to_owned())),
        };
        let mut sealed = Vec::with_capacity(drafts.len());
        for draft in drafts {
            seq += 1;
            let r = draft.seal(seq, at, &prev);
            sqlx::query(
                "INSERT INTO audit_events (seq, id, at, kind, actor_id, impersonator_id, target_type, target_id, \
                 org_id, detail, personal, personal_digest, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
            )
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
            .bind(&r.hash)
            .execute(&mut *self.tx)
            .await
            .map_err(backend)?;
            prev = r.hash.clone();
            sealed.push(r);
        }
        Ok(sealed)
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
        let mut query = sqlx::query(AssertSqlSafe(numbered(&sql)));
        for b in binds {
            query = query.bind(b);
        }
        for (_, i) in ints {
            query = query.bind(i);
        }
        let rows = query.bind(i64::from(f.limit)).fetch_all(&mut *self.tx).await.map_err(backend)?;
        rows.iter().map(audit_from_row).collect()
    }

    async fn redact_personal(&mut self, user: UserId) -> StoreResult<u64> {
        let result = sqlx::query(
            "UPDATE audit_events SET personal = NULL WHERE personal IS NOT NULL \
             AND ((target_type = 'user' AND target_id = $1) OR (actor_id = $2 AND kind = 'user.login'))",
        )
        .bind(user.to_string())
        .bind(user.to_string())
        .execute(&mut *self.tx)
        .await
        .map_err(backend)?;
        // Traces outside the audit log: the mail sent to them, where they signed in from.
        for sql in [
            "UPDATE outbox SET recipient = 'erased@anonymized.invalid', subject = '', body = '' WHERE user_id = ?",
            "UPDATE sessions SET ip = NULL, user_agent = NULL WHERE user_id = ?",
        ] {
            sqlx::query(AssertSqlSafe(sql.replace('?', "$1")))
                .bind(user.to_string())
                .execute(&mut *self.tx)
                .await
                .map_err(backend)?;
        }
        Ok(result.rows_affected())
    }

    async fn insert_audit_checkpoint(&mut self, c: &CheckpointRow) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO audit_checkpoints (seq, kind, hash, at, key_id, signature) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (seq, kind) DO NOTHING",
        )
        .bind(c.seq)
        .bind(&c.kind)
        .bind(&c.hash)
        .bind(micros(c.at))
        .bind(&c.key_id)
        .bind(&c.signature)
        .execute(&mut *self.tx)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn audit_checkpoints(&mut self) -> StoreResult<Vec<CheckpointRow>> {
        let rows =
            sqlx::query("SELECT seq, kind, hash, at, key_id, signature FROM audit_checkpoints ORDER BY seq, kind")
                .fetch_all(&mut *self.tx)
                .await
                .map_err(backend)?;
        rows.iter().map(checkpoint_from_row).collect()
    }

    async fn audit_anchor(&mut self) -> StoreResult<Option<(i64, String)>> {
        let row = sqlx::query("SELECT seq, hash FROM audit_anchor WHERE id = 1")
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(backend)?;
        row.map(|r| Ok((get::<i64>(&r, "seq")?, get::<String>(&r, "hash")?))).transpose()
    }

    async fn drop_archived_audit(&mut self, seq: i64, hash: &str, at: OffsetDateTime) -> StoreResult<u64> {
        sqlx::query(
            "INSERT INTO audit_anchor (id, seq, hash, archived_at) VALUES (1, $1, $2, $3) \
             ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, archived_at = excluded.archived_at",
        )
        .bind(seq)
        .bind(hash)
        .bind(micros(at))
        .execute(&mut *self.tx)
        .await
        .map_err(backend)?;
        let result = sqlx::query("DELETE FROM audit_events WHERE seq <= $1")
            .bind(seq)
            .execute(&mut *self.tx)
            .await
            .map_err(backend)?;
        Ok(result.rows_affected())
    }

    async fn audit_chain(&mut self, after: i64, limit: u32) -> StoreResult<Vec<AuditRecord>> {
        let rows = sqlx::query("SELECT * FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT $2")
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&mut *self.tx)
            .await
            .map_err(backend)?;
        rows.iter().map(audit_from_row).collect()
    }
}

#[async_trait]
impl Scim for PgTx {
    async fn scim_users(
        &mut self,
        q: &ScimQuery<UserField>,
    ) -> StoreResult<(u64, Vec<(UserRow, Option<ScimUserRow>)>)> {
        let (page, count) = crate::query::users_sql(q, &format!("{USER_COLUMNS}, {SCIM_USER_COLUMNS}"));
        let total: i64 = bind_all!(sqlx::query_scalar(AssertSqlSafe(numbered(&count.text))), &count.binds)
            .fetch_one(&mut *self.tx)
            .await
            .map_err(backend)?;
        let rows = bind_all!(sqlx::query(AssertSqlSafe(numbered(&page.text))), &page.binds)
            .fetch_all(&mut *self.tx)
            .await
            .map_err(backend)?;
        let items = rows.iter().map(|r| Ok((user_from_row(r)?, scim_user_from_row(r)?))).collect::<StoreResult<_>>()?;
        Ok((u64::try_from(total).unwrap_or(0), items))
    }

    async fn scim_user(&mut self, id: UserId) -> StoreResult<Option<(UserRow, Option<ScimUserRow>)>> {
        let sql = format!(
            "SELECT {USER_COLUMNS}, {SCIM_USER_COLUMNS} FROM users u LEFT JOIN scim_users s ON s.user_id = u.id \
             WHERE u.id = ?"
        );
        let row = sqlx::query(AssertSqlSafe(numbered(&sql)))
            .bind(id.to_string())
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(backend)?;
        row.map(|r| Ok((user_from_row(&r)?, scim_user_from_row(&r)?))).transpose()
    }

    async fn user_by_user_name_key(&mut self, key: &str) -> StoreResult<Option<UserRow>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users u WHERE COALESCE(u.scim_user_name_key, u.email_key) = ?");
        let row = sqlx::query(AssertSqlSafe(numbered(&sql)))
            .bind(key)
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(backend)?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn put_scim_user(&mut self, r: &ScimUserRow) -> StoreResult<()> {
        sqlx::query(AssertSqlSafe(numbered(
            "UPDATE users SET scim_user_name = ?, scim_user_name_key = ? WHERE id = ?",
        )))
        .bind(&r.user_name)
        .bind(r.user_name.as_ref().map(|n| n.to_lowercase()))
        .bind(r.user_id.to_string())
        .execute(&mut *self.tx)
        .await
        .map_err(backend)?;
        self.put_scim_attrs(r).await
    }

    async fn put_scim_attrs(&mut self, r: &ScimUserRow) -> StoreResult<()> {
        sqlx::query(AssertSqlSafe(numbered(
            "INSERT INTO scim_users (user_id, external_id, attrs, hidden_at, updated_at) VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (user_id) DO UPDATE SET external_id = excluded.external_id, attrs = excluded.attrs, \
             hidden_at = excluded.hidden_at, updated_at = excluded.updated_at",
        )))
        .bind(r.user_id.to_string())
        .bind(&r.external_id)
        .bind(json_text(&r.attrs)?)
        .bind(r.hidden_at.map(micros))
        .bind(micros(r.updated_at))
        .execute(&mut *self.tx)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn retire_email(&mut self, user: UserId, email_key: &str, at: OffsetDateTime) -> StoreResult<()> {
        sqlx::query(AssertSqlSafe(numbered(
            "INSERT INTO retired_emails (email_key, user_id, retired_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
        )))
        .bind(email_key)
        .bind(user.to_string())
        .bind(micros(at))
        .execute(&mut *self.tx)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn retired_email_holder(
        &mut self,
        email_key: &str,
        reclaimer: Option<UserId>,
    ) -> StoreResult<Option<UserId>> {
        let holder: Option<String> =
            sqlx::query_scalar(AssertSqlSafe(numbered("SELECT user_id FROM retired_emails WHERE email_key = ?")))
                .bind(email_key)
                .fetch_optional(&mut *self.tx)
                .await
                .map_err(backend)?;
        let holder: Option<UserId> = holder.map(|h| parse(&h, "user id")).transpose()?;
        if holder.is_some() && holder == reclaimer {
            sqlx::query(AssertSqlSafe(numbered("DELETE FROM retired_emails WHERE email_key = ?")))
                .bind(email_key)
                .execute(&mut *self.tx)
                .await
                .map_err(backend)?;
            return Ok(None);
        }
        Ok(holder)
    }

    async fn scim_groups(&mut self, q: &ScimQuery<GroupField>) -> StoreResult<(u64, Vec<ScimGroupRow>)> {
        let (page, count) = crate::query::groups_sql(q, SCIM_GROUP_COLUMNS);
        let total: i64 = bind_all!(sqlx::query_scalar(AssertSqlSafe(numbered(&count.text))), &count.binds)
            .fetch_one(&mut *self.tx)
            .await
            .map_err(backend)?;
        let rows = bind_all!(sqlx::query(AssertSqlSafe(numbered(&page.text))), &page.binds)
            .fetch_all(&mut *self.tx)
            .await
            .map_err(backend)?;
        let items = rows.iter().map(scim_group_from_row).collect::<StoreResult<_>>()?;
        Ok((u64::try_from(total).unwrap_or(0), items))
    }

    async fn scim_group(&mut self, id: TeamId) -> StoreResult<Option<ScimGroupRow>> {
        let sql = format!(
            "SELECT {SCIM_GROUP_COLUMNS} FROM teams t JOIN orgs o ON o.id = t.org_id \
             LEFT JOIN scim_groups g ON g.team_id = t.id WHERE t.id = ? AND t.archived_at IS NULL"
        );
        let row = sqlx::query(AssertSqlSafe(numbered(&sql)))
            .bind(id.to_string())
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(backend)?;
        row.as_ref().map(scim_group_from_row).transpose()
    }

    async fn put_scim_group(&mut self, team: TeamId, external_id: Option<&str>, at: OffsetDateTime) -> StoreResult<()> {
        sqlx::query(AssertSqlSafe(numbered(
            "INSERT INTO scim_groups (team_id, external_id, updated_at) VALUES (?, ?, ?) \
             ON CONFLICT (team_id) DO UPDATE SET external_id = excluded.external_id, updated_at = excluded.updated_at",
        )))
        .bind(team.to_string())
        .bind(external_id)
        .bind(micros(at))
        .execute(&mut *self.tx)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn archive_team(&mut self, team: TeamId, at: OffsetDateTime) -> StoreResult<()> {
        sqlx::query(AssertSqlSafe(numbered(
            "UPDATE team_members SET ended_at = ? WHERE team_id = ? AND ended_at IS NULL",
        )))
        .bind(micros(at))
        .bind(team.to_string())
        .execute(&mut *self.tx)
        .await
        .map_err(backend)?;
        sqlx::query(AssertSqlSafe(numbered(
            "UPDATE teams SET archived_at = ?, updated_at = ?, version = version + 1 WHERE id = ?",
        )))
        .bind(micros(at))
        .bind(micros(at))
        .bind(team.to_string())
        .execute(&mut *self.tx)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn orgs_named(&mut self, name: &str) -> StoreResult<Vec<OrgRow>> {
        let rows = sqlx::query("SELECT * FROM orgs WHERE lower(name) = $1 AND state <> 'purged' ORDER BY id LIMIT 2")
            .bind(name.to_lowercase())
            .fetch_all(&mut *self.tx)
            .await
            .map_err(backend)?;
        rows.iter().map(org_from_row).collect()
    }

    async fn insert_scim_token(&mut self, t: &ScimTokenRow) -> StoreResult<()> {
        sqlx::query(AssertSqlSafe(numbered(
            "INSERT INTO scim_tokens (id, name, token_hash, org_id, service_user_id, created_by, created_at, revoked_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )))
        .bind(t.id.to_string())
        .bind(&t.name)
        .bind(&t.token_hash)
        .bind(t.org_id.map(|o| o.to_string()))
        .bind(t.service_user_id.to_string())
        .bind(t.created_by.map(|b| b.to_string()))
        .bind(micros(t.created_at))
        .bind(t.revoked_at.map(micros))
        .execute(&mut *self.tx)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn scim_token_by_hash(&mut self, token_hash: &str) -> StoreResult<Option<ScimTokenRow>> {
        let row = sqlx::query(AssertSqlSafe(numbered("SELECT * FROM scim_tokens WHERE token_hash = ?")))
            .bind(token_hash)
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(backend)?;
        row.as_ref().map(scim_token_from_row).transpose()
    }

    async fn scim_tokens(&mut self) -> StoreResult<Vec<ScimTokenRow>> {
        let rows =
            sqlx::query(AssertSqlSafe(numbered("SELECT * FROM scim_tokens WHERE revoked_at IS NULL ORDER BY id DESC")))
                .fetch_all(&mut *self.tx)
                .await
                .map_err(backend)?;
        rows.iter().map(scim_token_from_row).collect()
    }

    async fn revoke_scim_token(&mut self, id: uuid::Uuid, at: OffsetDateTime) -> StoreResult<bool> {
        let done = sqlx::query(AssertSqlSafe(numbered(
            "UPDATE scim_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
        )))
        .bind(micros(at))
        .bind(id.to_string())
        .execute(&mut *self.tx)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected() > 0)
    }
}
