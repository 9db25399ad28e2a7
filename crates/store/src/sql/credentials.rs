//! Sessions and API tokens: one implementation of [`Credentials`] for both databases; a credential
//! made with another is revoked with it.

use async_trait::async_trait;
use steward_core::{SessionId, TokenId, UserId};
use time::OffsetDateTime;

use super::{Exec, Stmt};
use crate::StoreResult;
use crate::model::*;
use crate::rows::*;
use crate::traits::*;

/// The tokens a token made, and the tokens those made, down to the last: `kin` holds the first
/// token's id and every descendant's. Binds: the token id.
const TOKEN_KIN: &str = "WITH RECURSIVE kin(id) AS (\
     SELECT CAST(? AS TEXT) \
     UNION SELECT t.id FROM api_tokens t JOIN kin ON t.parent_token_id = kin.id) ";

/// Revokes a token and every token it made. Binds: the token id, the time.
pub(crate) fn revoke_token_tree() -> String {
    format!("{TOKEN_KIN}UPDATE api_tokens SET revoked_at = ? WHERE id IN (SELECT id FROM kin) AND revoked_at IS NULL")
}

/// Ends the impersonations started with a token or any token it made. Binds: the token id, the
/// time.
pub(crate) fn end_sessions_of_token_tree() -> String {
    format!(
        "{TOKEN_KIN}UPDATE sessions SET revoked_at = ? WHERE parent_token_id IN (SELECT id FROM kin) \
         AND revoked_at IS NULL"
    )
}

/// Revokes a session and the impersonations started from it. Binds: the time, the session id
/// twice.
pub(crate) const REVOKE_SESSION: &str =
    "UPDATE sessions SET revoked_at = ? WHERE (id = ? OR parent_id = ?) AND revoked_at IS NULL";

/// Every session and token of a user, and the impersonations they started: with the
/// credentials gone, what they made goes too. Each statement binds the time, then the user id.
pub(crate) const REVOKE_ALL_OF_USER: [&str; 3] = [
    "UPDATE sessions SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL",
    "UPDATE api_tokens SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL",
    "UPDATE sessions SET revoked_at = ? WHERE impersonator_id = ? AND revoked_at IS NULL",
];

#[async_trait]
impl<E: Exec> Credentials for E {
    async fn insert_session(&mut self, s: &SessionRow) -> StoreResult<()> {
        self.insert(s).await
    }

    async fn session_by_hash(&mut self, token_hash: &str) -> StoreResult<Option<SessionRow>> {
        self.row(Stmt::new("SELECT * FROM sessions WHERE token_hash = ?").bind(token_hash)).await
    }

    async fn session(&mut self, id: SessionId) -> StoreResult<Option<SessionRow>> {
        self.row(Stmt::new("SELECT * FROM sessions WHERE id = ?").bind(id.to_string())).await
    }

    async fn live_sessions(&mut self, user: UserId, now: OffsetDateTime) -> StoreResult<Vec<SessionRow>> {
        self.rows(
            Stmt::new(
                "SELECT * FROM sessions WHERE user_id = ? AND revoked_at IS NULL AND expires_at > ? ORDER BY id DESC",
            )
            .bind(user.to_string())
            .bind(micros(now)),
        )
        .await
    }

    async fn revoke_session(&mut self, id: SessionId, at: OffsetDateTime) -> StoreResult<()> {
        self.apply(Stmt::new(REVOKE_SESSION).bind(micros(at)).bind(id.to_string()).bind(id.to_string())).await
    }

    async fn insert_api_token(&mut self, t: &ApiTokenRow) -> StoreResult<()> {
        self.insert(t).await
    }

    async fn api_token_by_hash(&mut self, token_hash: &str) -> StoreResult<Option<ApiTokenRow>> {
        self.row(Stmt::new("SELECT * FROM api_tokens WHERE token_hash = ?").bind(token_hash)).await
    }

    async fn api_tokens_of(&mut self, user: UserId) -> StoreResult<Vec<ApiTokenRow>> {
        self.rows(
            Stmt::new("SELECT * FROM api_tokens WHERE user_id = ? AND revoked_at IS NULL ORDER BY id DESC")
                .bind(user.to_string()),
        )
        .await
    }

    async fn revoke_api_token(&mut self, id: TokenId, at: OffsetDateTime) -> StoreResult<()> {
        for statement in [revoke_token_tree(), end_sessions_of_token_tree()] {
            self.run(Stmt::new(statement).bind(id.to_string()).bind(micros(at))).await?;
        }
        Ok(())
    }
}
