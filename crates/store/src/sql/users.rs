//! Users and their instance roles: one implementation of [`Users`] for both databases; SQLite narrows a search through its full-text index ([`Exec::search_index`]).

use async_trait::async_trait;
use steward_core::{InstanceRole, UserId};
use time::OffsetDateTime;

use super::stmt::Columns;
use super::{Exec, Stmt};
use crate::model::*;
use crate::rows::*;
use crate::traits::*;
use crate::{Constraint, StoreError, StoreResult};

/// The columns of a user row (alias `u`) with its instance roles joined by commas through the
/// database's aggregate `$agg` (`group_concat` on SQLite, `string_agg` on PostgreSQL): the one
/// place a user read differs ([`super::Exec::USER_COLUMNS`]).
macro_rules! user_columns_of {
    ($agg:literal) => {
        concat!(
            "u.id, u.email, u.email_key, u.name, u.status, u.password_hash, u.locale, u.timezone, u.kind, ",
            "u.notifications, u.created_at, u.updated_at, u.last_login_at, u.deactivate_at, u.version, ",
            "u.status_by, u.deactivate_by, (SELECT ",
            $agg,
            "(r.role, ',') FROM user_instance_roles r WHERE r.user_id = u.id) AS instance_roles"
        )
    };
}
pub(crate) use user_columns_of;

/// What a user's insert and update both write (its instance roles are rows of their own).
fn user_columns(u: &UserRow) -> StoreResult<Columns> {
    Ok(Columns::default()
        .set("email", &u.email)
        .set("email_key", &u.email_key)
        .set("name", &u.name)
        .set("status", u.status.as_str())
        .set("password_hash", &u.password_hash)
        .set("locale", &u.locale)
        .set("timezone", &u.timezone)
        .set("notifications", u.notifications.to_column()?)
        .set("updated_at", micros(u.updated_at))
        .set("last_login_at", u.last_login_at.map(micros))
        .set("deactivate_at", u.deactivate_at.map(micros))
        .set("status_by", u.status_by.map(|b| b.to_string()))
        .set("deactivate_by", u.deactivate_by.map(|b| b.to_string())))
}

#[async_trait]
impl<E: Exec> Users for E {
    async fn insert_user(&mut self, u: &UserRow) -> StoreResult<()> {
        let columns = user_columns(u)?.set("id", u.id.to_string()).set("kind", u.kind.as_str());
        let insert = columns
            .set("created_at", micros(u.created_at))
            .set("version", u.version)
            .insert("users")
            .map_err(email_collision);
        self.later(insert).await?;
        // A new user has no roles to replace.
        if u.instance_roles.is_empty() {
            return Ok(());
        }
        self.set_instance_roles(u.id, &u.instance_roles).await
    }

    async fn user(&mut self, id: UserId) -> StoreResult<Option<UserRow>> {
        let sql = format!("SELECT {} FROM users u WHERE u.id = ?", Self::USER_COLUMNS);
        self.row(Stmt::new(sql).bind(id.to_string())).await
    }

    async fn user_by_email_key(&mut self, key: &str) -> StoreResult<Option<UserRow>> {
        let columns = Self::USER_COLUMNS;
        let sql = format!("SELECT {columns} FROM users u WHERE u.email_key = ?");
        self.row(Stmt::new(sql).bind(key)).await
    }

    async fn list_users(&mut self, f: &UserFilter) -> StoreResult<Vec<UserRow>> {
        let indexed = match &f.q {
            Some(q) => self.search_index(q).await?,
            None => None,
        };
        let (clause, phrase) = indexed.map_or(("", None), |(clause, phrase)| (clause, Some(phrase)));
        let named = " AND (u.email_key LIKE ? ESCAPE '\\' OR lower(u.name) LIKE ? ESCAPE '\\')";
        let member =
            " AND EXISTS (SELECT 1 FROM memberships m WHERE m.user_id = u.id AND m.org_id = ? AND m.ended_at IS NULL)";
        let query = Stmt::new(format!("SELECT {} FROM users u WHERE 1 = 1", Self::USER_COLUMNS))
            .and_if(clause, phrase)
            .and_if(named, f.q.as_deref().map(like_pattern))
            .and_if(" AND u.status = ?", f.status.map(|s| s.as_str()))
            .and_if(member, f.org_id.map(|o| o.to_string()))
            .and_if(" AND COALESCE(u.last_login_at, u.created_at) < ?", f.inactive_since.map(micros))
            .newest_first("u.id", f.before.map(|b| b.to_string()), f.limit);
        self.rows(query).await
    }

    async fn update_user(&mut self, u: &UserRow) -> StoreResult<()> {
        // Its row count is checked when it has run, before anything is committed.
        self.later(user_columns(u)?.update_versioned("users", u.id.to_string(), u.version).expect_one()).await
    }

    async fn set_instance_roles(&mut self, id: UserId, roles: &[InstanceRole]) -> StoreResult<()> {
        self.run(Stmt::new("DELETE FROM user_instance_roles WHERE user_id = ?").bind(id.to_string())).await?;
        for role in roles {
            self.run(
                Stmt::new("INSERT INTO user_instance_roles (user_id, role) VALUES (?, ?) ON CONFLICT DO NOTHING")
                    .bind(id.to_string())
                    .bind(role.as_str()),
            )
            .await?;
        }
        Ok(())
    }

    async fn count_users_with_role(&mut self, role: &str) -> StoreResult<i64> {
        let holders = Stmt::new(
            "SELECT COUNT(*) AS n FROM user_instance_roles r JOIN users u ON u.id = r.user_id \
             WHERE r.role = ? AND u.status = 'active'",
        );
        self.scalar(holders.bind(role), "n").await
    }

    async fn people_by_status(&mut self) -> StoreResult<Vec<(steward_core::UserStatus, u64)>> {
        let counts =
            Stmt::new("SELECT status, COUNT(*) AS n FROM users WHERE kind = 'person' GROUP BY status ORDER BY status");
        let rows = self.fetch(counts).await?;
        rows.iter().map(|r| Ok((parse(&get::<String>(r, "status")?, "user status")?, count(get(r, "n")?)))).collect()
    }

    async fn due_deactivations(&mut self, now: OffsetDateTime, limit: u32) -> StoreResult<Vec<UserRow>> {
        let columns = Self::USER_COLUMNS;
        let sql = format!(
            "SELECT {columns} FROM users u WHERE u.deactivate_at IS NOT NULL AND u.deactivate_at <= ? \
             AND u.status IN ('invited', 'active', 'suspended') ORDER BY u.deactivate_at LIMIT ?"
        );
        self.rows(Stmt::new(sql).bind(micros(now)).bind(i64::from(limit))).await
    }

    async fn dormant_users(&mut self, before: OffsetDateTime, limit: u32) -> StoreResult<Vec<UserRow>> {
        let columns = Self::USER_COLUMNS;
        let sql = format!(
            "SELECT {columns} FROM users u WHERE u.status = 'active' AND u.kind = 'person' \
             AND COALESCE(u.last_login_at, u.created_at) < ? ORDER BY u.id LIMIT ?"
        );
        self.rows(Stmt::new(sql).bind(micros(before)).bind(i64::from(limit))).await
    }

    async fn record_login(&mut self, id: UserId, at: OffsetDateTime) -> StoreResult<()> {
        self.apply(Columns::default().set("last_login_at", micros(at)).update("users", id.to_string())).await
    }
}

/// A new user's address colliding with anyone's email or userName is a taken email.
fn email_collision(e: StoreError) -> StoreError {
    match e {
        StoreError::Conflict(Constraint::UserNameTaken) => StoreError::Conflict(Constraint::EmailTaken),
        other => other,
    }
}

/// [`crate::Tx::identity_holders`], one lookup after another: the answer a backend that asks in
/// one statement must agree with.
pub async fn identity_holders_one_by_one<T: Tx + ?Sized>(
    tx: &mut T,
    name: Option<&str>,
    email: &str,
    anonymized: &str,
) -> StoreResult<(Option<UserRow>, Option<UserRow>)> {
    let by_name = match name {
        Some(key) => tx.user_by_user_name_key(key).await?,
        None => None,
    };
    let by_email = if let Some(u) = tx.user_by_email_key(email).await? {
        Some(u)
    } else if let Some(u) = match name {
        Some(key) if key == email => by_name.clone(),
        _ => tx.user_by_user_name_key(email).await?,
    } {
        Some(u)
    } else if let Some(holder) = tx.retired_email_holder(email, None).await? {
        tx.user(holder).await?
    } else {
        tx.user_by_email_key(anonymized).await?
    };
    Ok((by_name, by_email))
}
