//! Statements both databases accept, written once with `?` placeholders, and the one interface
//! through which each backend runs them ([`Exec`]). Each module holds the statements of one
//! aggregate; where a store trait is written over [`Exec`] it has one implementation, and the
//! backends supply only how a statement runs.

pub(crate) mod audit;
pub(crate) mod credentials;
pub(crate) mod invitations;
pub(crate) mod lifecycle;
pub(crate) mod metering;
pub(crate) mod orgs;
pub(crate) mod outbox;
pub(crate) mod reviews;
pub(crate) mod scim;
pub(crate) mod security;
pub(crate) mod settings;
pub(crate) mod sso;
pub(crate) mod stmt;
pub(crate) mod teams;
pub(crate) mod users;
pub(crate) mod webhooks;

use async_trait::async_trait;

use crate::StoreResult;
use crate::rows::{DbRow, FromColumn, FromRow, get};
pub(crate) use stmt::{Stmt, Table};

/// How a backend runs a statement written once.
#[async_trait]
pub(crate) trait Exec: Send {
    /// A result row of this backend.
    type Row: DbRow + Send + Sync;

    /// The columns of a user row (alias `u`) with its instance roles joined by commas: the one
    /// place the databases' SQL differs in a user read (`group_concat` and `string_agg`).
    const USER_COLUMNS: &'static str;

    /// What a claim of due rows adds to its `SELECT` so that two claimers never take the same
    /// row: nothing on SQLite, whose one writer claims alone; `FOR UPDATE SKIP LOCKED` on
    /// PostgreSQL, where nodes claim at once.
    const CLAIM_LOCK: &'static str;

    /// What a `SELECT` of rows this transaction will update adds so that no other writer changes
    /// them meanwhile: nothing on SQLite, whose one writer holds the whole database from `BEGIN
    /// IMMEDIATE`; `FOR UPDATE` on PostgreSQL.
    const ROW_LOCK: &'static str;

    /// The instance secrets this store has read as committed.
    fn secrets(&self) -> &crate::KnownSecrets;

    /// The enabled webhooks as the backend keeps them between transactions, when it does and
    /// this transaction has not changed them.
    fn remembered_webhooks(&self) -> Option<Vec<crate::WebhookRow>> {
        None
    }

    /// Keeps the enabled webhooks just read, when the backend keeps them.
    fn remember_webhooks(&mut self, _hooks: &[crate::WebhookRow]) {}

    /// Drops what the backend keeps of the webhooks, before this transaction writes one.
    fn forget_webhooks(&mut self) {}

    /// A condition that narrows a user search for `q` through an index, with the value it
    /// binds, when the backend has one and it is selective (SQLite's trigram index).
    async fn search_index(&mut self, _q: &str) -> StoreResult<Option<(&'static str, String)>> {
        Ok(None)
    }

    /// The audit chain's head as this transaction already knows it: SQLite's writer reads it
    /// with its `BEGIN IMMEDIATE`, under the lock no other writer passes, and moves it with each
    /// append. `None`: read it ([`audit::HEAD`]) — on PostgreSQL under the row lock on
    /// `write_lock` that each write transaction takes first.
    fn known_head(&self) -> Option<(i64, String)> {
        None
    }

    /// Keeps the head after this transaction's appends, or forgets it (`None`) when archiving
    /// moved the anchor.
    fn keep_head(&mut self, _head: Option<(i64, String)>) {}

    /// The total of `count` (a `COUNT(*)`) and the rows of `page`: SQLite answers both in one
    /// trip.
    async fn count_and_page(&mut self, count: Stmt, page: Stmt) -> StoreResult<(i64, Vec<Self::Row>)> {
        let total = self.fetch_one(count).await?.map(|r| get::<i64>(&r, "n")).transpose()?.unwrap_or(0);
        Ok((total, self.fetch(page).await?))
    }

    /// Runs `stmt`, whose result nobody reads at once: SQLite sends it with the transaction's
    /// next trip (an error then fails that trip, before anything commits); PostgreSQL runs it now.
    async fn later(&mut self, stmt: Stmt) -> StoreResult<()> {
        self.run(stmt).await.map(drop)
    }

    /// Runs `stmt` now and answers its rows.
    async fn fetch(&mut self, stmt: Stmt) -> StoreResult<Vec<Self::Row>>;

    /// Runs `stmt` now and answers how many rows it changed.
    async fn run(&mut self, stmt: Stmt) -> StoreResult<u64>;

    /// Runs `stmt` now; what it changed is not asked.
    async fn apply(&mut self, stmt: Stmt) -> StoreResult<()> {
        self.run(stmt).await.map(drop)
    }

    /// Runs `stmt` now, which must change exactly one row: a conditional update that matched
    /// nothing lost a race ([`crate::Constraint::VersionMismatch`]).
    async fn apply_one(&mut self, stmt: Stmt) -> StoreResult<()> {
        crate::rows::expect_one(self.run(stmt).await?)
    }

    /// Runs `statements` in order and answers how many rows they changed together. SQLite sends
    /// them in one trip; PostgreSQL runs them one by one.
    async fn run_all(&mut self, statements: Vec<Stmt>) -> StoreResult<u64> {
        let mut changed = 0;
        for stmt in statements {
            changed += self.run(stmt).await?;
        }
        Ok(changed)
    }

    /// The first row of `stmt`, if any.
    async fn fetch_one(&mut self, stmt: Stmt) -> StoreResult<Option<Self::Row>> {
        Ok(self.fetch(stmt).await?.into_iter().next())
    }

    /// The first row of `stmt`, which must have one.
    async fn fetch_one_required(&mut self, stmt: Stmt) -> StoreResult<Self::Row> {
        self.fetch_one(stmt).await?.ok_or_else(|| crate::StoreError::Corrupt("a statement answered no row".into()))
    }

    /// Inserts `row` into its table, every field in the column of its name.
    async fn insert<R: Table + Sync>(&mut self, row: &R) -> StoreResult<()> {
        self.apply(row.columns()?.insert(R::TABLE)).await
    }

    /// The rows of `stmt`, each read as a `T`.
    async fn rows<T: FromRow + Send>(&mut self, stmt: Stmt) -> StoreResult<Vec<T>> {
        self.fetch(stmt).await?.iter().map(T::from_row).collect()
    }

    /// The first row of `stmt` read as a `T`, if there is one.
    async fn row<T: FromRow + Send>(&mut self, stmt: Stmt) -> StoreResult<Option<T>> {
        self.fetch_one(stmt).await?.as_ref().map(T::from_row).transpose()
    }

    /// The column `col` of the first row of `stmt` (a `COUNT(*) AS n`, say).
    async fn scalar<T: FromColumn + Send>(&mut self, stmt: Stmt, col: &str) -> StoreResult<T> {
        let row = self.fetch_one(stmt).await?.ok_or_else(|| crate::StoreError::Corrupt(format!("no row for {col}")))?;
        get(&row, col)
    }
}
