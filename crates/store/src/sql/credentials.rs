//! Sessions and API tokens: a credential made with another is revoked with it.

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
