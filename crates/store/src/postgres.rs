//! The PostgreSQL implementation: one pool; write transactions first lock a single row, so that
//! writers are serialized as on SQLite and the audit chain has one order; migrations embedded and
//! run at open. Several Steward nodes may share the database.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, PgPool, Postgres, Transaction};
use steward_core::OrgId;
use time::OffsetDateTime;

use crate::model::*;
use crate::rows::*;
use crate::sql;
use crate::traits::*;
use crate::{Constraint, KnownSecrets, StoreError, StoreResult};

/// How long a pooled connection may sit unused before it is asked whether it still works.
const PING_WHEN_IDLE_FOR: Duration = Duration::from_secs(1);

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
        // Commits made before the listener was heard (at start, or while it reconnected) were
        // not told: count them as a change.
        tick.send_modify(|n| *n += 1);
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
            // A connection back from a request moments ago is known to work: asking the server
            // again before every statement would be a second round trip per consume. One that
            // sat idle longer is asked first (a restarted server, a proxy that dropped it).
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= PING_WHEN_IDLE_FOR {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
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
        Ok(Box::new(PgTx { tx, changed: false, secrets: self.secrets.clone() }))
    }

    async fn read(&self) -> StoreResult<Box<dyn Tx>> {
        let tx = self
            .pool
            .begin_with("BEGIN TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .map_err(backend)?;
        Ok(Box::new(PgTx { tx, changed: false, secrets: self.secrets.clone() }))
    }

    async fn ready(&self) -> StoreResult<bool> {
        let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
            .fetch_one(&self.pool)
            .await
            .map_err(backend)?;
        Ok(applied as usize >= MIGRATOR.iter().count())
    }

    async fn give_back(&self, org: OrgId, period_start: OffsetDateTime, operations: u64) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        for give in sql::metering::give_back(org, period_start, operations) {
            pg_query(give)?.execute(&mut *tx).await.map_err(backend)?;
        }
        tx.commit().await.map_err(backend)
    }

    async fn consume(&self, c: &Consume) -> StoreResult<Option<UsageRow>> {
        // One statement, one round trip (see `consume_in_one_statement`); a refused consume
        // writes nothing, not even a period row.
        let row =
            pg_query(sql::metering::consume_in_one_statement(c))?.fetch_optional(&self.pool).await.map_err(backend)?;
        row.as_ref().map(UsageRow::from_row).transpose()
    }
}

/// The columns of a user row; the roles are joined with `string_agg`.
const USER_COLUMNS: &str = sql::users::user_columns_of!("string_agg");

struct PgTx {
    tx: Transaction<'static, Postgres>,
    /// Whether a statement of this transaction may have changed a row some node keeps: one run
    /// that changed a row, or any fetched statement other than a `SELECT`, unless the statement
    /// says no node keeps what it changes. Only then does its commit tell the other nodes, which
    /// drop what they keep on hearing it.
    changed: bool,
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

/// Whether what `stmt` changes must be told to the other nodes: it is not a `SELECT` (locks
/// included), which changes no row whatever it answers, nor says that no node keeps what it
/// changes.
fn tells(stmt: &sql::Stmt) -> bool {
    let select = stmt.sql.trim_start().get(..6).is_some_and(|word| word.eq_ignore_ascii_case("select"));
    !select && !stmt.kept_by_no_node
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

/// The query of a statement of [`crate::sql`], its placeholders numbered.
fn pg_query(stmt: sql::Stmt) -> StoreResult<sqlx::query::Query<'static, Postgres, sqlx::postgres::PgArguments>> {
    Ok(sqlx::query_with(AssertSqlSafe(numbered(&stmt.sql)), pg_args(stmt.args)?))
}

/// A statement of [`crate::sql`] runs at once, its placeholders numbered.
#[async_trait]
impl sql::Exec for PgTx {
    const CLAIM_LOCK: &'static str = " FOR UPDATE SKIP LOCKED";
    const ROW_LOCK: &'static str = " FOR UPDATE";
    const USER_COLUMNS: &'static str = USER_COLUMNS;

    fn secrets(&self) -> &KnownSecrets {
        &self.secrets
    }

    type Row = sqlx::postgres::PgRow;

    async fn fetch(&mut self, stmt: sql::Stmt) -> StoreResult<Vec<Self::Row>> {
        let (map, told) = (stmt.map, tells(&stmt));
        let rows = pg_query(stmt)?.fetch_all(&mut *self.tx).await.map_err(|e| map(backend(e)))?;
        // What a data-modifying statement answers need not show what it changed: count it.
        self.changed |= told;
        Ok(rows)
    }

    async fn run(&mut self, stmt: sql::Stmt) -> StoreResult<u64> {
        let (map, expect_one, told) = (stmt.map, stmt.expect_one, tells(&stmt));
        let changed = pg_query(stmt)?.execute(&mut *self.tx).await.map_err(|e| map(backend(e)))?.rows_affected();
        self.changed |= told && changed > 0;
        if expect_one && changed != 1 {
            return Err(map(StoreError::Conflict(Constraint::VersionMismatch)));
        }
        Ok(changed)
    }
}

#[async_trait]
impl Tx for PgTx {
    async fn commit(self: Box<Self>) -> StoreResult<()> {
        let mut this = self;
        if this.changed {
            // Delivered to the listeners only if, and when, the transaction commits.
            sqlx::query(AssertSqlSafe(format!("NOTIFY {CHANGES}"))).execute(&mut *this.tx).await.map_err(backend)?;
        }
        this.tx.commit().await.map_err(backend)
    }

    async fn rollback(self: Box<Self>) -> StoreResult<()> {
        self.tx.rollback().await.map_err(backend)
    }
}
