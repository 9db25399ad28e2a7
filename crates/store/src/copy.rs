//! Moving a whole instance from SQLite to PostgreSQL: every table, row for row, audit chain
//! included, in one PostgreSQL transaction.

use sqlx::{AssertSqlSafe, Row};

use crate::{PgStore, SqliteStore, StoreError, StoreResult};

/// Tables in an order that satisfies their references.
const TABLES: &[&str] = &[
    "users",
    "user_instance_roles",
    "orgs",
    "memberships",
    "teams",
    "team_members",
    "sessions",
    "api_tokens",
    "audit_anchor",
    "audit_events",
    "audit_checkpoints",
    "instance_settings",
    "instance_secrets",
    "idempotency_keys",
    "ownership_handovers",
    "invitations",
    "password_resets",
    "outbox",
    "deprovision_records",
    "usage_periods",
    "usage_alerts",
    "usage_days",
    "usage_events",
    "assets",
    "webhooks",
    "webhook_deliveries",
    "access_reviews",
    "access_review_items",
    "expiry_announcements",
    "user_totp",
    "recovery_codes",
    "login_lockouts",
    "custom_roles",
    "retired_emails",
    "scim_tokens",
    "scim_users",
    "scim_groups",
    "jwt_issuers",
    "sso_connections",
    "sso_domains",
    "external_identities",
];

fn backend(e: sqlx::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// Copies every row of `from` into `to`, which must hold no users yet; returns rows per table.
pub async fn sqlite_to_postgres(from: &SqliteStore, to: &PgStore) -> StoreResult<Vec<(String, u64)>> {
    let mut source = from.reader().await?;
    let target = to.pool();
    let existing: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users").fetch_one(target).await.map_err(backend)?;
    if existing > 0 {
        return Err(StoreError::Backend("the target database already holds users; migrate into an empty one".into()));
    }
    let mut tx = target.begin().await.map_err(backend)?;
    let mut counts = Vec::new();
    for table in TABLES {
        let columns: Vec<(String, String)> = sqlx::query(
            "SELECT column_name::text, data_type::text FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
        )
        .bind(*table)
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?
        .iter()
        .map(|r| (r.get::<String, _>(0), r.get::<String, _>(1)))
        .collect();
        // Rows the migrations seeded (the write lock, defaults) are replaced by the source's.
        sqlx::query(AssertSqlSafe(format!("DELETE FROM {table}"))).execute(&mut *tx).await.map_err(backend)?;
        let names: Vec<&str> = columns.iter().map(|(c, _)| c.as_str()).collect();
        let select = format!("SELECT {} FROM {table}", names.join(", "));
        let placeholders: Vec<String> = (1..=names.len()).map(|i| format!("${i}")).collect();
        let insert = format!("INSERT INTO {table} ({}) VALUES ({})", names.join(", "), placeholders.join(", "));
        let rows = sqlx::query(AssertSqlSafe(select)).fetch_all(&mut *source).await.map_err(backend)?;
        for row in &rows {
            let mut q = sqlx::query(AssertSqlSafe(insert.clone()));
            for (i, (_, kind)) in columns.iter().enumerate() {
                q = match kind.as_str() {
                    "bigint" | "integer" => q.bind(row.try_get::<Option<i64>, _>(i).map_err(backend)?),
                    "boolean" => q.bind(row.try_get::<Option<i64>, _>(i).map_err(backend)?.map(|v| v != 0)),
                    _ => q.bind(row.try_get::<Option<String>, _>(i).map_err(backend)?),
                };
            }
            q.execute(&mut *tx).await.map_err(backend)?;
        }
        counts.push(((*table).to_owned(), rows.len() as u64));
    }
    tx.commit().await.map_err(backend)?;
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::TABLES;

    /// Tables a database keeps for itself, not copied: the write lock's one row.
    const NOT_COPIED: &[&str] = &["write_lock"];

    #[test]
    fn every_table_of_the_migrations_is_copied() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres");
        let mut missing = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let sql = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            for rest in sql.split("CREATE TABLE ").skip(1) {
                let name = rest.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).next().unwrap();
                if !TABLES.contains(&name) && !NOT_COPIED.contains(&name) {
                    missing.push(name.to_owned());
                }
            }
        }
        assert!(missing.is_empty(), "tables a move to PostgreSQL would lose: {missing:?}");
    }
}
