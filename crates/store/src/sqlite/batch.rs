//! Statements sent to a connection's thread together.
//!
//! Each query sqlx runs on a SQLite connection is a trip to the connection's own thread and
//! back. While the one writer is held those trips, not the SQL, are most of a write's time on a
//! busy machine. A statement whose result nobody reads at once (an insert, an update whose row
//! count is checked later, `BEGIN`, `COMMIT`) therefore waits in the transaction and goes with
//! the next statement that is sent; one query string carries them all, and the results come
//! back statement by statement, so each is checked and any error is laid at the statement that
//! caused it.
//!
//! A statement that must change exactly one row is checked in SQL, by a statement that fails
//! otherwise ([`EXPECT_ONE`]): the failure stops the statements after it, so a `COMMIT` may go in
//! the same trip as the statements it must not commit unless they did what they should.

use futures_util::TryStreamExt;
use sqlx::sqlite::{SqliteArguments, SqliteQueryResult, SqliteRow};
use sqlx::{Arguments, AssertSqlSafe, Either, Executor, SqliteConnection};

use crate::sql::stmt::{Arg, Stmt};
use crate::{StoreError, StoreResult};

/// Made on each writer connection when it opens (temporary, so the database file never holds
/// it): inserting into `expect_one` the count of rows the statement before changed fails, with
/// [`EXPECT_ONE_FAILED`], unless that count is one.
pub(super) const EXPECT_ONE_SETUP: &str = "CREATE TEMP VIEW IF NOT EXISTS expect_one (changed) AS SELECT 0; \
     CREATE TEMP TRIGGER IF NOT EXISTS expect_one_check INSTEAD OF INSERT ON expect_one \
     BEGIN SELECT RAISE(ABORT, 'steward: expected to change one row') WHERE NEW.changed IS NOT 1; END";

/// The check [`Stmt::expect_one`] adds after its statement on SQLite: it changes nothing itself.
const EXPECT_ONE: &str = "INSERT INTO temp.expect_one VALUES (changes())";

/// The error of a failed [`EXPECT_ONE`]: someone else changed the row first.
pub(super) const EXPECT_ONE_FAILED: &str = "steward: expected to change one row";

/// What one piece sent back: its rows, and the rows its statements changed.
#[derive(Debug, Default)]
pub(super) struct Outcome {
    pub(super) rows: Vec<SqliteRow>,
    /// Counted for pieces that only write: SQLite reports, after a `SELECT`, the count of the
    /// connection's last write again.
    pub(super) changes: u64,
}

/// Sends `pieces` as one query and returns each one's outcome.
/// Statements run in order and the first error stops them: those after it do not run. An error
/// is the failing piece's own, as its [`Stmt::map_err`] reads it.
pub(super) async fn send(conn: &mut SqliteConnection, mut pieces: Vec<Stmt>) -> StoreResult<Vec<Outcome>> {
    let mut sql = String::new();
    let mut args = SqliteArguments::default();
    for (i, piece) in pieces.iter_mut().enumerate() {
        if i > 0 {
            sql.push_str(";\n");
        }
        sql.push_str(&piece.sql);
        if piece.expect_one {
            sql.push_str("; ");
            sql.push_str(EXPECT_ONE);
        }
        // The parameters move into the query: a user's attributes are not copied again.
        for arg in piece.args.drain(..) {
            let bound = match arg {
                Arg::Null(_) => args.add(Option::<i64>::None),
                Arg::Int(v) => args.add(v),
                Arg::Bool(v) => args.add(i64::from(v)),
                Arg::Real(v) => args.add(v),
                Arg::Text(v) => args.add(v),
            };
            bound.map_err(|e| StoreError::Backend(e.to_string()))?;
        }
    }
    let mut outcomes: Vec<Outcome> = pieces.iter().map(|_| Outcome::default()).collect();
    // Which piece the next result belongs to, and how many of its statements have finished.
    let (mut piece, mut finished) = (0, 0);
    let mut results = conn.fetch_many(sqlx::query_with(AssertSqlSafe(sql), args));
    loop {
        let next = results.try_next().await;
        let at = piece.min(pieces.len().saturating_sub(1));
        match next {
            Ok(None) => break,
            Ok(Some(Either::Right(row))) => outcomes[at].rows.push(row),
            Ok(Some(Either::Left(done))) => {
                outcomes[at].changes += SqliteQueryResult::rows_affected(&done);
                finished += 1;
                if finished == pieces[at].statements + usize::from(pieces[at].expect_one) {
                    piece += 1;
                    finished = 0;
                }
            }
            Err(e) => return Err((pieces[at].map)(super::backend(e))),
        }
    }
    Ok(outcomes)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::Constraint;
    use sqlx::{Connection, Row};

    async fn memory() -> SqliteConnection {
        let mut conn = SqliteConnection::connect("sqlite::memory:").await.unwrap();
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL UNIQUE, n INTEGER)").await.unwrap();
        conn.execute(EXPECT_ONE_SETUP).await.unwrap();
        conn
    }

    #[tokio::test]
    async fn each_piece_gets_its_own_rows_and_changes() {
        let mut conn = memory().await;
        let pieces = [
            Stmt::new("INSERT INTO t (v, n) VALUES (?, ?), (?, ?)")
                .bind("a")
                .bind(1_i64)
                .bind("b")
                .bind(Option::<i64>::None),
            Stmt::new("SELECT v FROM t ORDER BY v"),
            Stmt::new("UPDATE t SET n = 5 WHERE v = ?; UPDATE t SET n = n + 1 WHERE v = ? RETURNING n")
                .statements(2)
                .bind("b")
                .bind("b"),
        ];
        let out = send(&mut conn, pieces.to_vec()).await.unwrap();
        assert_eq!(out[0].changes, 2);
        assert!(out[0].rows.is_empty());
        let seen: Vec<String> = out[1].rows.iter().map(|r| r.get::<String, _>("v")).collect();
        assert_eq!(seen, ["a", "b"]);
        assert_eq!(out[2].changes, 2);
        assert_eq!(out[2].rows.iter().map(|r| r.get::<i64, _>("n")).collect::<Vec<_>>(), [6]);
    }

    #[tokio::test]
    async fn an_error_is_laid_at_its_piece_and_stops_the_rest() {
        let mut conn = memory().await;
        fn taken(_: StoreError) -> StoreError {
            StoreError::Conflict(Constraint::EmailTaken)
        }
        let pieces = [
            Stmt::new("INSERT INTO t (v) VALUES ('x')"),
            Stmt::new("INSERT INTO t (v) VALUES ('x')").map_err(taken),
            Stmt::new("INSERT INTO t (v) VALUES ('after')"),
        ];
        let failed = send(&mut conn, pieces.to_vec()).await.unwrap_err();
        assert!(matches!(failed, StoreError::Conflict(Constraint::EmailTaken)), "{failed:?}");
        let after: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM t WHERE v = 'after'").fetch_one(&mut conn).await.unwrap();
        assert_eq!(after, 0, "a statement after the failed one ran");
    }

    #[tokio::test]
    async fn a_piece_expecting_one_row_fails_when_none_changed() {
        let mut conn = memory().await;
        conn.execute("BEGIN").await.unwrap();
        let pieces = [
            Stmt::new("INSERT INTO t (v) VALUES ('y')"),
            Stmt::new("UPDATE t SET n = 1 WHERE v = ?").bind("nobody").expect_one(),
            Stmt::new("COMMIT"),
        ];
        let failed = send(&mut conn, pieces.to_vec()).await.unwrap_err();
        assert!(matches!(failed, StoreError::Conflict(Constraint::VersionMismatch)), "{failed:?}");
        // The failed check stopped the `COMMIT` behind it: the insert can still be taken back.
        conn.execute("ROLLBACK").await.unwrap();
        let kept: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t").fetch_one(&mut conn).await.unwrap();
        assert_eq!(kept, 0, "the COMMIT after a failed check ran");
        // Two rows changed is no better than none.
        let two = [
            Stmt::new("INSERT INTO t (v) VALUES ('y'), ('z')"),
            Stmt::new("UPDATE t SET n = 1 WHERE v IN ('y', 'z')").expect_one(),
        ];
        let failed = send(&mut conn, two.to_vec()).await.unwrap_err();
        assert!(matches!(failed, StoreError::Conflict(Constraint::VersionMismatch)), "{failed:?}");
        let one = [Stmt::new("UPDATE t SET n = 2 WHERE v = ?").bind("y").expect_one()];
        let out = send(&mut conn, one.to_vec()).await.unwrap();
        assert_eq!(out[0].changes, 1, "the check counts no change of its own");
    }

    #[tokio::test]
    async fn parameters_keep_their_types() {
        let mut conn = memory().await;
        let pieces =
            [Stmt::new("SELECT typeof(?) AS a, typeof(?) AS b, typeof(?) AS c, typeof(?) AS d, typeof(?) AS e")
                .bind(7_i64)
                .bind(1.5)
                .bind("s")
                .bind(Option::<String>::None)
                .bind(true)];
        let out = send(&mut conn, pieces.to_vec()).await.unwrap();
        let row = &out[0].rows[0];
        let types: Vec<String> = ["a", "b", "c", "d", "e"].iter().map(|c| row.get::<String, _>(*c)).collect();
        assert_eq!(types, ["integer", "real", "text", "null", "integer"]);
    }
}
