//! The SQLite implementation: WAL, one writer connection whose transactions begin with
//! `BEGIN IMMEDIATE`, a pool of read-only connections, migrations embedded and run at open.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{Connection, Executor, SqliteConnection};
use steward_core::{OrgId, UserId};
use time::OffsetDateTime;

use crate::model::*;
use crate::rows::*;
use crate::sql;
use crate::traits::*;
use crate::{Constraint, KnownSecrets, StoreError, StoreResult};

mod batch;
mod exec;
mod flush;
mod pool;

use crate::sql::Stmt;
use batch::Outcome;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

/// A SQLite database file.
#[derive(Clone)]
pub struct SqliteStore {
    writer: pool::Pool,
    readers: pool::Pool,
    secrets: KnownSecrets,
    flush: std::sync::Arc<flush::Flush>,
    memo: std::sync::Arc<std::sync::Mutex<WriterMemo>>,
}

/// What the one writer knows of the committed database between its transactions, so that a
/// write does not read it again: the webhooks, which change only through this store. (The head
/// of the audit chain is read with each write's `BEGIN IMMEDIATE`, in the same trip: another
/// process, `steward admin create`, may append to the chain.)
#[derive(Default)]
struct WriterMemo {
    webhooks: Option<Vec<WebhookRow>>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `url` (`sqlite://path`) and applies migrations.
    /// `durable`: every change is on disk before it is answered (see the module `flush`); otherwise a
    /// crash of the machine (not of the process) may take back the last few.
    pub async fn open(url: &str, durable: bool) -> StoreResult<Self> {
        Self::open_with(url, durable, false).await
    }

    /// [`SqliteStore::open`] for a server: with `mapped`, readers map the file (up to 1 GiB)
    /// instead of copying its pages into caches of their own, which SQLite empties whenever
    /// another connection has written. One-shot commands leave it off: a pass over the whole file
    /// would show in their resident memory as the pages it mapped.
    pub async fn open_with(url: &str, durable: bool, mapped: bool) -> StoreResult<Self> {
        let base = SqliteConnectOptions::from_str(url)
            .map_err(backend)?
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(if durable { SqliteSynchronous::Full } else { SqliteSynchronous::Normal })
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        // The writer appends to the log without syncing it; a durable store flushes the log
        // after the writer is released, once for all the commits made meanwhile.
        let wal = durable.then(|| {
            let mut name = base.get_filename().as_os_str().to_owned();
            name.push("-wal");
            std::path::PathBuf::from(name)
        });
        let flush = std::sync::Arc::new(flush::Flush::new(wal));
        // Neither pool pings its connections (see [`pool`]). The writer's connections can check,
        // in SQL, that an update changed one row ([`batch::EXPECT_ONE_SETUP`]).
        let writer = pool::Pool::open(
            base.clone().synchronous(SqliteSynchronous::Normal).create_if_missing(true),
            1,
            Duration::from_secs(30),
            batch::EXPECT_ONE_SETUP,
        )
        .await?;
        let mut migrating = writer.acquire().await?;
        MIGRATOR.run_direct(None, &mut *migrating, false).await.map_err(|e| StoreError::Backend(e.to_string()))?;
        drop(migrating);
        flush.committed().await?;
        let mmap = if mapped { MMAP_BYTES } else { 0 };
        let readers = pool::Pool::open(
            base.read_only(true).pragma("mmap_size", mmap.to_string()),
            4,
            Duration::from_secs(30),
            "",
        )
        .await?;
        Ok(Self { writer, readers, secrets: KnownSecrets::default(), flush, memo: Default::default() })
    }

    /// A read-only connection, for copying the instance elsewhere.
    pub(crate) async fn reader(&self) -> StoreResult<pool::Lease> {
        self.readers.acquire().await
    }

    /// Writes a consistent copy of the database to `path` while it keeps serving (`VACUUM INTO`).
    pub async fn backup(&self, path: &std::path::Path) -> StoreResult<()> {
        sqlx::query("VACUUM INTO ?")
            .bind(path.to_string_lossy().into_owned())
            .execute(&mut *self.readers.acquire().await?)
            .await
            .map_err(backend)?;
        Ok(())
    }
}

/// How much of the database file a reader maps (SQLite's `mmap_size`).
const MMAP_BYTES: u64 = 1 << 30;

/// Fewer index matches than this and a search reads them through the trigram index; more, and
/// it walks the users in id order instead, where that many matches are met soon.
const SEARCH_INDEX_MAX_MATCHES: i64 = 2_000;

impl SqliteTx {
    /// The trigram phrase for `q` when the index narrows the search to few users: `q` has at
    /// least three characters (a trigram) and matches fewer than [`SEARCH_INDEX_MAX_MATCHES`].
    async fn search_is_selective(&mut self, q: &str) -> StoreResult<Option<String>> {
        if q.chars().count() < 3 {
            return Ok(None);
        }
        let phrase = format!("\"{}\"", q.to_lowercase().replace('"', "\"\""));
        let matches: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM (SELECT 1 FROM users_search WHERE users_search MATCH ? LIMIT ?)")
                .bind(&phrase)
                .bind(SEARCH_INDEX_MAX_MATCHES)
                .fetch_one(self.conn().await?)
                .await
                .map_err(backend)?;
        Ok((matches < SEARCH_INDEX_MAX_MATCHES).then_some(phrase))
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn write(&self) -> StoreResult<Box<dyn Tx>> {
        let conn = self.writer.acquire().await?;
        Ok(Box::new(SqliteTx::new(conn, true, self)))
    }

    async fn read(&self) -> StoreResult<Box<dyn Tx>> {
        let conn = self.readers.acquire().await?;
        Ok(Box::new(SqliteTx::new(conn, false, self)))
    }

    async fn ready(&self) -> StoreResult<bool> {
        let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
            .fetch_one(&mut *self.readers.acquire().await?)
            .await
            .map_err(backend)?;
        Ok(applied as usize >= MIGRATOR.iter().count())
    }

    async fn give_back(&self, org: OrgId, period_start: OffsetDateTime, operations: u64) -> StoreResult<()> {
        let committing = self.flush.begin();
        let give = sql::metering::give_back(org, period_start, operations);
        batch::send(&mut *self.writer.acquire().await?, give.into()).await?;
        self.flush.through(committing.done()).await
    }

    async fn consume(&self, c: &Consume) -> StoreResult<Option<UsageRow>> {
        let mut writer = self.writer.acquire().await?;
        let mut tx = writer.begin_with("BEGIN IMMEDIATE").await.map_err(backend)?;
        // The period's row, the conditional update and the day's count in one trip; the update
        // answers the usage.
        let outcomes = batch::send(&mut tx, sql::metering::consume(c).into()).await?;
        let answer = outcomes.into_iter().nth(1).and_then(|o| o.rows.into_iter().next());
        let usage = answer.as_ref().map(UsageRow::from_row).transpose()?;
        // A refused consume leaves no trace, not even the period row it may have created.
        if usage.is_some() {
            let committing = self.flush.begin();
            tx.commit().await.map_err(backend)?;
            let n = committing.done();
            // The next consume takes the writer while this one waits for its flush, which may
            // then cover both: concurrent consumes share their flushes.
            drop(writer);
            self.flush.through(n).await?;
        } else {
            tx.rollback().await.map_err(backend)?;
        }
        Ok(usage)
    }
}

/// The columns of a user row; the roles are joined with `group_concat`.
const USER_COLUMNS: &str = sql::users::user_columns_of!("group_concat");

struct SqliteTx {
    /// The pooled connection; taken when the transaction ends.
    conn: Option<pool::Lease>,
    /// `BEGIN` has been sent: the connection holds this transaction open.
    begun: bool,
    /// A read-only transaction's next trip is its last, and ends it ([`Tx::last_read`]).
    closing: bool,
    /// A read-only transaction ended with its last read: it still waits, when it is committed
    /// or rolled back, for the commits it may have seen to be flushed.
    closed: bool,
    /// Pieces waiting for the next trip to the connection's thread (see [`batch`]).
    pending: Vec<Stmt>,
    /// A statement failed: the transaction can only be rolled back.
    failed: bool,
    secrets: KnownSecrets,
    flush: std::sync::Arc<flush::Flush>,
    /// On the writer: its commit is flushed. On a reader: what it read is flushed.
    writes: bool,
    /// The writer's memo; readers keep to their snapshot.
    memo: Option<std::sync::Arc<std::sync::Mutex<WriterMemo>>>,
    /// The head of the audit chain in this transaction: read with its `BEGIN IMMEDIATE`, under
    /// the write lock, so no other process can move it; moved by each append.
    head: Option<(i64, String)>,
    /// This transaction wrote webhooks: it neither reads nor fills the memo of them.
    webhooks_changed: bool,
}

impl SqliteTx {
    fn new(conn: pool::Lease, writes: bool, store: &SqliteStore) -> Self {
        SqliteTx {
            conn: Some(conn),
            begun: false,
            closing: false,
            closed: false,
            pending: Vec::new(),
            failed: false,
            secrets: store.secrets.clone(),
            flush: store.flush.clone(),
            writes,
            memo: writes.then(|| store.memo.clone()),
            head: None,
            webhooks_changed: false,
        }
    }

    /// The writer's memo, locked for a moment (never across an await).
    fn memo(&self) -> Option<std::sync::MutexGuard<'_, WriterMemo>> {
        self.memo.as_ref().map(|m| m.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// Queues `stmt` for the next trip: for a statement whose result nobody reads at once.
    fn later(&mut self, stmt: Stmt) {
        self.pending.push(stmt);
    }

    /// Sends what waits, then `last`, in one trip; returns the outcomes of `last`. The first trip
    /// of a transaction begins it (`BEGIN IMMEDIATE` on the writer, with the audit chain's head).
    async fn trip(&mut self, last: Vec<Stmt>) -> StoreResult<Vec<Outcome>> {
        if self.failed {
            return Err(StoreError::Backend("an earlier statement of this transaction failed".into()));
        }
        let mut pieces = Vec::with_capacity(self.pending.len() + last.len() + 3);
        let begins = !self.begun;
        let ends = std::mem::take(&mut self.closing);
        if begins && self.writes {
            pieces.push(Stmt::new("BEGIN IMMEDIATE"));
            pieces.push(Stmt::new(sql::audit::HEAD));
        } else if begins {
            pieces.push(Stmt::new("BEGIN"));
        }
        pieces.append(&mut self.pending);
        let theirs = pieces.len();
        let wanted = last.len();
        pieces.extend(last);
        if ends {
            pieces.push(Stmt::new("COMMIT"));
        }
        // From here the transaction may be open, even if this future is dropped midway.
        self.begun = true;
        let conn = self.conn.as_deref_mut().ok_or_else(ended)?;
        match batch::send(conn, pieces).await {
            Ok(mut outcomes) => {
                if begins && self.writes {
                    self.head = Some(sql::audit::head_of(&outcomes[1].rows)?);
                }
                if ends {
                    self.begun = false;
                    self.closed = true;
                }
                let mut theirs = outcomes.split_off(theirs);
                theirs.truncate(wanted);
                Ok(theirs)
            }
            Err(e) => {
                self.failed = true;
                Err(e)
            }
        }
    }

    /// The rows of `stmt`, sent with what waits.
    async fn fetch(&mut self, stmt: Stmt) -> StoreResult<Vec<sqlx::sqlite::SqliteRow>> {
        Ok(self.trip(vec![stmt]).await?.pop().map(|o| o.rows).unwrap_or_default())
    }

    /// The connection, for a statement sent on its own, once what waits has gone before it.
    async fn conn(&mut self) -> StoreResult<&mut SqliteConnection> {
        if !self.begun || !self.pending.is_empty() {
            self.trip(Vec::new()).await?;
        }
        self.conn.as_deref_mut().ok_or_else(ended)
    }

    /// Ends the transaction without keeping anything: what waits is dropped, and what was sent
    /// is rolled back. A connection that cannot roll back is closed, which rolls back too.
    async fn abandon(&mut self) {
        self.pending.clear();
        if !std::mem::take(&mut self.begun) {
            return;
        }
        if let Some(conn) = self.conn.as_mut() {
            // "No transaction is active" when the batch that began it failed at its `BEGIN`.
            if let Err(e) = conn.execute("ROLLBACK").await
                && !e.to_string().contains("no transaction is active")
            {
                tracing::warn!(error = %e, "rolling back failed; closing the connection");
                if let Some(conn) = self.conn.take() {
                    conn.discard();
                }
            }
        }
    }

    /// Gives the connection back to its pool once the transaction has ended.
    fn release(&mut self) {
        self.begun = false;
        drop(self.conn.take());
    }
}

impl Drop for SqliteTx {
    fn drop(&mut self) {
        // Dropped without commit or rollback (an error on the way, a cancelled request): the
        // connection must not go back to its pool inside this transaction.
        let Some(mut conn) = self.conn.take() else { return };
        if !self.begun {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    if conn.execute("ROLLBACK").await.is_err() {
                        conn.discard();
                    }
                });
            }
            Err(_) => conn.discard(),
        }
    }
}

/// A transaction used after it ended; a bug, reported rather than panicking.
fn ended() -> StoreError {
    StoreError::Backend("the transaction has ended".into())
}

fn backend(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &e {
        let msg = db.message();
        if msg == batch::EXPECT_ONE_FAILED {
            return StoreError::Conflict(Constraint::VersionMismatch);
        }
        if let Some(cols) = msg.strip_prefix("UNIQUE constraint failed: ") {
            return StoreError::Conflict(match cols {
                "users.email_key" => Constraint::EmailTaken,
                "orgs.external_id" => Constraint::ExternalIdTaken,
                "teams.org_id, teams.name_key" => Constraint::TeamNameTaken,
                "index 'users_user_name'" => Constraint::UserNameTaken,
                "memberships.org_id" => Constraint::OwnerTaken,
                "memberships.org_id, memberships.user_id" => Constraint::MembershipExists,
                "idempotency_keys.scope, idempotency_keys.idem_key" => Constraint::IdempotencyKey,
                "custom_roles.name" => Constraint::RoleExists,
                other => Constraint::Other(other.to_owned()),
            });
        }
    }
    StoreError::Backend(e.to_string())
}

#[async_trait]
impl Tx for SqliteTx {
    fn last_read(&mut self) {
        self.closing = !self.writes;
    }

    async fn commit(mut self: Box<Self>) -> StoreResult<()> {
        if self.failed {
            self.abandon().await;
            return Err(StoreError::Backend("an earlier statement of this transaction failed".into()));
        }
        // Nothing was sent and nothing waits: there is nothing to commit. A read that ended
        // with its last trip still answers only what is on disk.
        if !self.begun && self.pending.is_empty() {
            self.release();
            return if self.closed { self.flush.through(self.flush.seen()).await } else { Ok(()) };
        }
        if !self.writes {
            if let Err(e) = self.trip(vec![Stmt::new("COMMIT")]).await {
                self.abandon().await;
                return Err(e);
            }
            self.release();
            return self.flush.through(self.flush.seen()).await;
        }
        let flush = self.flush.clone();
        let committing = flush.begin();
        if let Err(e) = self.trip(vec![Stmt::new("COMMIT")]).await {
            // A statement before the `COMMIT` failed, so it never ran; or it failed itself.
            self.abandon().await;
            return Err(e);
        }
        // The next writer goes on while this commit waits for its flush, which may cover both.
        self.release();
        flush.through(committing.done()).await
    }

    async fn rollback(mut self: Box<Self>) -> StoreResult<()> {
        let read = self.begun || self.closed;
        self.abandon().await;
        self.release();
        if read { self.flush.through(self.flush.seen()).await } else { Ok(()) }
    }

    async fn identity_holders(
        &mut self,
        name: Option<&str>,
        email: &str,
        anonymized: &str,
    ) -> StoreResult<(Option<UserRow>, Option<UserRow>)> {
        // Every lookup in one statement, each row tagged with the lookup that found it: one trip
        // to the connection's thread instead of four or five while the writer is held.
        let sql = format!(
            "SELECT 0 AS pick, {USER_COLUMNS} FROM users u WHERE COALESCE(u.scim_user_name_key, u.email_key) = ? \
             UNION ALL SELECT 1, {USER_COLUMNS} FROM users u WHERE u.email_key = ? \
             UNION ALL SELECT 2, {USER_COLUMNS} FROM users u WHERE COALESCE(u.scim_user_name_key, u.email_key) = ? \
             UNION ALL SELECT 3, {USER_COLUMNS} FROM retired_emails r JOIN users u ON u.id = r.user_id \
             WHERE r.email_key = ? \
             UNION ALL SELECT 4, {USER_COLUMNS} FROM users u WHERE u.email_key = ?"
        );
        let rows = self.fetch(Stmt::new(sql).bind(name).bind(email).bind(email).bind(email).bind(anonymized)).await?;
        let mut by_name = None;
        let mut by_email: Option<(i64, UserRow)> = None;
        for row in &rows {
            let pick = get::<i64>(row, "pick")?;
            let user = UserRow::from_row(row)?;
            if pick == 0 {
                by_name = Some(user);
            } else if by_email.as_ref().is_none_or(|(best, _)| pick < *best) {
                by_email = Some((pick, user));
            }
        }
        Ok((by_name, by_email.map(|(_, u)| u)))
    }

    async fn deactivation_sweep(&mut self, user: UserId, at: OffsetDateTime) -> StoreResult<(u64, u64, Vec<OrgRow>)> {
        // The seven steps in one trip, each row tagged with the step that returned it; the
        // credential statements are those of `revoke_all_credentials`.
        let id = user.to_string();
        let sweep = Stmt::new(
            "UPDATE sessions SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL RETURNING 'revoked' AS swept; \
             UPDATE api_tokens SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL RETURNING 'revoked' AS swept; \
             UPDATE sessions SET revoked_at = ? WHERE impersonator_id = ? AND revoked_at IS NULL \
             RETURNING 'revoked' AS swept; \
             UPDATE invitations SET cancelled_at = ? WHERE user_id = ? AND accepted_at IS NULL AND cancelled_at IS NULL \
             RETURNING 'cancelled' AS swept; \
             UPDATE memberships SET dormant = 1 WHERE user_id = ? AND ended_at IS NULL; \
             UPDATE team_members SET dormant = 1 WHERE user_id = ? AND ended_at IS NULL; \
             SELECT 'owned' AS swept, * FROM orgs WHERE owner_id = ? ORDER BY id",
        )
        .statements(7)
        .bind(micros(at))
        .bind(&id)
        .bind(micros(at))
        .bind(&id)
        .bind(micros(at))
        .bind(&id)
        .bind(micros(at))
        .bind(&id)
        .bind(&id)
        .bind(&id)
        .bind(&id);
        let rows = self.fetch(sweep).await?;
        let (mut revoked, mut cancelled, mut owned) = (0, 0, Vec::new());
        for row in &rows {
            match get::<String>(row, "swept")?.as_str() {
                "revoked" => revoked += 1,
                "cancelled" => cancelled += 1,
                _ => owned.push(OrgRow::from_row(row)?),
            }
        }
        Ok((revoked, cancelled, owned))
    }
}
#[cfg(test)]
mod tests;
