//! A few SQLite connections, each lent to one user at a time.
//!
//! sqlx's pool pings every connection it takes back, before anyone else may have it: a round
//! trip to the connection's thread, which on the one writer holds up the next write as long as a
//! statement would. A SQLite connection has no network to lose, so these go back as they are.
//! What sqlx's ping also settled is settled here by their users: a transaction dropped while open
//! is rolled back before its connection goes back (the transaction's drop), and a connection
//! that cannot be trusted is [`Lease::discard`]ed; a new one is opened when next needed.

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Executor, SqliteConnection};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::{StoreError, StoreResult};

/// Up to `size` connections opened with the same options.
#[derive(Clone)]
pub(super) struct Pool {
    options: SqliteConnectOptions,
    /// Run on each connection when it opens.
    setup: &'static str,
    idle: Arc<Mutex<Vec<SqliteConnection>>>,
    permits: Arc<Semaphore>,
    /// How long [`Pool::acquire`] waits for a connection to be given back.
    wait: Duration,
}

/// A connection lent out; it goes back to its pool when dropped.
pub(crate) struct Lease {
    conn: Option<SqliteConnection>,
    idle: Arc<Mutex<Vec<SqliteConnection>>>,
    /// Given back after the connection, so that whoever it lets in finds the connection idle.
    _permit: OwnedSemaphorePermit,
}

impl Pool {
    /// A pool of up to `size` connections, each running `setup` when it opens; one is opened now,
    /// so that a database that cannot be opened is an error here, and the others when they are
    /// first needed.
    pub(super) async fn open(
        options: SqliteConnectOptions,
        size: usize,
        wait: Duration,
        setup: &'static str,
    ) -> StoreResult<Self> {
        let first = connect(&options, setup).await?;
        Ok(Self {
            options,
            setup,
            idle: Arc::new(Mutex::new(vec![first])),
            permits: Arc::new(Semaphore::new(size)),
            wait,
        })
    }

    /// A connection, once one is free: an idle one, else a new one.
    pub(super) async fn acquire(&self) -> StoreResult<Lease> {
        // A free connection is taken at once; only a wait for one arms a timer.
        let permit = match self.permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => tokio::time::timeout(self.wait, self.permits.clone().acquire_owned())
                .await
                .map_err(|_| StoreError::Backend(format!("no database connection was free within {:?}", self.wait)))?
                .map_err(|e| StoreError::Backend(e.to_string()))?,
        };
        let idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let conn = match idle {
            Some(conn) => conn,
            None => connect(&self.options, self.setup).await?,
        };
        Ok(Lease { conn: Some(conn), idle: self.idle.clone(), _permit: permit })
    }
}

async fn connect(options: &SqliteConnectOptions, setup: &'static str) -> StoreResult<SqliteConnection> {
    let mut conn = options.connect().await.map_err(super::backend)?;
    if !setup.is_empty() {
        conn.execute(setup).await.map_err(super::backend)?;
    }
    Ok(conn)
}

impl Lease {
    /// Closes the connection instead of giving it back: it may still be inside a transaction.
    pub(super) fn discard(mut self) {
        self.conn = None;
    }
}

impl Deref for Lease {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        // Only `discard` takes the connection, and it is the lease's last use.
        self.conn.as_ref().unwrap_or_else(|| unreachable!("a discarded lease was used"))
    }
}

impl DerefMut for Lease {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        self.conn.as_mut().unwrap_or_else(|| unreachable!("a discarded lease was used"))
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.idle.lock().unwrap_or_else(PoisonError::into_inner).push(conn);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    async fn pool(dir: &tempfile::TempDir, wait: Duration) -> Pool {
        let options = SqliteConnectOptions::new().filename(dir.path().join("pool.db")).create_if_missing(true);
        Pool::open(options, 1, wait, "CREATE TEMP TABLE opened (n INTEGER); INSERT INTO opened VALUES (1)")
            .await
            .unwrap()
    }

    /// Whether `conn` is one this test has marked, which only the same connection can see.
    async fn marked(conn: &mut SqliteConnection) -> bool {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM marked").fetch_one(conn).await.is_ok()
    }

    #[tokio::test]
    async fn a_connection_given_back_is_lent_again_and_a_discarded_one_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let pool = pool(&dir, Duration::from_secs(5)).await;
        let mut lease = pool.acquire().await.unwrap();
        let opened: i64 = sqlx::query_scalar("SELECT n FROM opened").fetch_one(&mut *lease).await.unwrap();
        assert_eq!(opened, 1, "the setup ran on the connection");
        lease.execute("CREATE TEMP TABLE marked (n INTEGER)").await.unwrap();
        drop(lease);
        let mut again = pool.acquire().await.unwrap();
        assert!(marked(&mut again).await, "a connection given back was not the one lent next");
        again.discard();
        let mut fresh = pool.acquire().await.unwrap();
        assert!(!marked(&mut fresh).await, "a discarded connection was lent again");
        let opened: i64 = sqlx::query_scalar("SELECT n FROM opened").fetch_one(&mut *fresh).await.unwrap();
        assert_eq!(opened, 1, "the setup ran on the new connection");
    }

    #[tokio::test]
    async fn no_more_connections_than_its_size_are_lent_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let pool = pool(&dir, Duration::from_millis(100)).await;
        let held = pool.acquire().await.unwrap();
        let refused = pool.acquire().await.err().unwrap();
        assert!(refused.to_string().contains("no database connection was free"), "{refused}");
        let waiting = tokio::spawn({
            let pool = pool.clone();
            async move { pool.acquire().await.map(drop) }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(held);
        waiting.await.unwrap().unwrap();
    }
}
