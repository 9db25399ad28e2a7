//! How SQLite runs the statements written once ([`crate::sql::Exec`]): with the transaction's
//! next trip to its connection's thread, and the writer's memo of the webhooks.

use super::*;

/// A statement of [`crate::sql`] runs with the transaction's next trip, after what waits.
#[async_trait]
impl sql::Exec for SqliteTx {
    const CLAIM_LOCK: &'static str = "";
    const ROW_LOCK: &'static str = "";
    const USER_COLUMNS: &'static str = USER_COLUMNS;

    fn secrets(&self) -> &KnownSecrets {
        &self.secrets
    }

    type Row = sqlx::sqlite::SqliteRow;

    async fn fetch(&mut self, stmt: Stmt) -> StoreResult<Vec<Self::Row>> {
        SqliteTx::fetch(self, stmt).await
    }

    async fn run(&mut self, stmt: Stmt) -> StoreResult<u64> {
        Ok(self.trip(vec![stmt]).await?.pop().map_or(0, |o| o.changes))
    }

    async fn run_all(&mut self, statements: Vec<Stmt>) -> StoreResult<u64> {
        Ok(self.trip(statements).await?.iter().map(|o| o.changes).sum())
    }

    /// Read with `BEGIN IMMEDIATE`, under the lock no other writer passes.
    fn known_head(&self) -> Option<(i64, String)> {
        self.head.clone()
    }

    fn keep_head(&mut self, head: Option<(i64, String)>) {
        self.head = head;
    }

    /// Both in one trip to the connection's thread.
    async fn count_and_page(&mut self, count: Stmt, page: Stmt) -> StoreResult<(i64, Vec<Self::Row>)> {
        let mut outcomes = self.trip(vec![count, page]).await?.into_iter();
        let total = match outcomes.next().as_ref().and_then(|o| o.rows.first()) {
            Some(row) => get::<i64>(row, "n")?,
            None => 0,
        };
        Ok((total, outcomes.next().map(|o| o.rows).unwrap_or_default()))
    }

    async fn later(&mut self, stmt: Stmt) -> StoreResult<()> {
        SqliteTx::later(self, stmt);
        Ok(())
    }

    async fn search_index(&mut self, q: &str) -> StoreResult<Option<(&'static str, String)>> {
        const CLAUSE: &str = " AND u.search_key IN (SELECT rowid FROM users_search WHERE users_search MATCH ?)";
        Ok(self.search_is_selective(q).await?.map(|phrase| (CLAUSE, phrase)))
    }

    /// The writer reads them once; a transaction that wrote one reads what it wrote.
    fn remembered_webhooks(&self) -> Option<Vec<WebhookRow>> {
        if self.webhooks_changed {
            return None;
        }
        self.memo().and_then(|m| m.webhooks.clone())
    }

    fn remember_webhooks(&mut self, hooks: &[WebhookRow]) {
        if !self.webhooks_changed
            && let Some(mut m) = self.memo()
        {
            m.webhooks = Some(hooks.to_vec());
        }
    }

    /// Until the transaction ends neither it nor (after a rollback) the memo holds anything but
    /// what is stored.
    fn forget_webhooks(&mut self) {
        self.webhooks_changed = true;
        if let Some(mut m) = self.memo() {
            m.webhooks = None;
        }
    }
}
