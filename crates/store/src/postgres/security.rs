//! PostgreSQL queries for two-factor enrolments, recovery codes, lockout and custom roles.

use async_trait::async_trait;
use steward_core::UserId;
use steward_core::lockout::LockoutState;
use time::OffsetDateTime;

use super::{PgTx, backend};
use crate::StoreResult;
use crate::model::{RoleRow, TotpRow};
use crate::rows::{expect_one, micros, opt_micros};
use crate::security_rows::{permissions_text, role_from_row, totp_from_row};
use crate::traits::{Roles, Security};

#[async_trait]
impl Security for PgTx {
    async fn totp(&mut self, user: UserId) -> StoreResult<Option<TotpRow>> {
        let row = sqlx::query("SELECT * FROM user_totp WHERE user_id = $1")
            .bind(user.to_string())
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(backend)?;
        row.as_ref().map(totp_from_row).transpose()
    }

    async fn put_totp(&mut self, row: &TotpRow) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO user_totp (user_id, secret_sealed, confirmed_at, last_step, created_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (user_id) DO UPDATE SET secret_sealed = excluded.secret_sealed, \
             confirmed_at = excluded.confirmed_at, last_step = excluded.last_step, created_at = excluded.created_at",
        )
        .bind(row.user_id.to_string())
        .bind(&row.secret_sealed)
        .bind(row.confirmed_at.map(micros))
        .bind(row.last_step)
        .bind(micros(row.created_at))
        .execute(&mut *self.tx)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn confirm_totp(&mut self, user: UserId, at: OffsetDateTime, step: i64) -> StoreResult<()> {
        let result = sqlx::query("UPDATE user_totp SET confirmed_at = $1, last_step = $2 WHERE user_id = $3")
            .bind(micros(at))
            .bind(step)
            .bind(user.to_string())
            .execute(&mut *self.tx)
            .await
            .map_err(backend)?;
        expect_one(result.rows_affected())
    }

    async fn use_totp_step(&mut self, user: UserId, step: i64) -> StoreResult<bool> {
        let result = sqlx::query(
            "UPDATE user_totp SET last_step = $1 WHERE user_id = $2 AND (last_step IS NULL OR last_step < $3)",
        )
        .bind(step)
        .bind(user.to_string())
        .bind(step)
        .execute(&mut *self.tx)
        .await
        .map_err(backend)?;
        Ok(result.rows_affected() == 1)
    }

    async fn delete_totp(&mut self, user: UserId) -> StoreResult<bool> {
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
            .bind(user.to_string())
            .execute(&mut *self.tx)
            .await
            .map_err(backend)?;
        let result = sqlx::query("DELETE FROM user_totp WHERE user_id = $1")
            .bind(user.to_string())
            .execute(&mut *self.tx)
            .await
            .map_err(backend)?;
        Ok(result.rows_affected() > 0)
    }

    async fn replace_recovery_codes(&mut self, user: UserId, hashes: &[String], at: OffsetDateTime) -> StoreResult<()> {
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
            .bind(user.to_string())
            .execute(&mut *self.tx)
            .await
            .map_err(backend)?;
        for hash in hashes {
            sqlx::query("INSERT INTO recovery_codes (user_id, code_hash, created_at) VALUES ($1, $2, $3)")
                .bind(user.to_string())
                .bind(hash)
                .bind(micros(at))
                .execute(&mut *self.tx)
                .await
                .map_err(backend)?;
        }
        Ok(())
    }

    async fn use_recovery_code(&mut self, user: UserId, hash: &str, at: OffsetDateTime) -> StoreResult<bool> {
        let result = sqlx::query(
            "UPDATE recovery_codes SET used_at = $1 WHERE user_id = $2 AND code_hash = $3 AND used_at IS NULL",
        )
        .bind(micros(at))
        .bind(user.to_string())
        .bind(hash)
        .execute(&mut *self.tx)
        .await
        .map_err(backend)?;
        Ok(result.rows_affected() == 1)
    }

    async fn recovery_codes_left(&mut self, user: UserId) -> StoreResult<i64> {
        sqlx::query_scalar("SELECT COUNT(*) FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL")
            .bind(user.to_string())
            .fetch_one(&mut *self.tx)
            .await
            .map_err(backend)
    }

    async fn lockout(&mut self, user: UserId) -> StoreResult<LockoutState> {
        let row: Option<(i64, Option<i64>)> =
            sqlx::query_as("SELECT failures, locked_until FROM login_lockouts WHERE user_id = $1")
                .bind(user.to_string())
                .fetch_optional(&mut *self.tx)
                .await
                .map_err(backend)?;
        match row {
            None => Ok(LockoutState::default()),
            Some((failures, locked_until)) => Ok(LockoutState {
                failures: u32::try_from(failures).unwrap_or(u32::MAX),
                locked_until: opt_micros(locked_until)?,
            }),
        }
    }

    async fn put_lockout(&mut self, user: UserId, state: &LockoutState, at: OffsetDateTime) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO login_lockouts (user_id, failures, locked_until, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (user_id) DO UPDATE SET failures = excluded.failures, \
             locked_until = excluded.locked_until, updated_at = excluded.updated_at",
        )
        .bind(user.to_string())
        .bind(i64::from(state.failures))
        .bind(state.locked_until.map(micros))
        .bind(micros(at))
        .execute(&mut *self.tx)
        .await
        .map_err(backend)?;
        Ok(())
    }
}

#[async_trait]
impl Roles for PgTx {
    async fn custom_roles(&mut self) -> StoreResult<Vec<RoleRow>> {
        let rows =
            sqlx::query("SELECT * FROM custom_roles ORDER BY name").fetch_all(&mut *self.tx).await.map_err(backend)?;
        rows.iter().map(role_from_row).collect()
    }

    async fn custom_role(&mut self, name: &str) -> StoreResult<Option<RoleRow>> {
        let row = sqlx::query("SELECT * FROM custom_roles WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(backend)?;
        row.as_ref().map(role_from_row).transpose()
    }

    async fn insert_custom_role(&mut self, role: &RoleRow) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO custom_roles (name, permissions, created_at, updated_at, version) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&role.name)
        .bind(permissions_text(&role.permissions))
        .bind(micros(role.created_at))
        .bind(micros(role.updated_at))
        .bind(role.version)
        .execute(&mut *self.tx)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn update_custom_role(&mut self, role: &RoleRow) -> StoreResult<()> {
        let result = sqlx::query(
            "UPDATE custom_roles SET permissions = $1, updated_at = $2, version = version + 1 \
             WHERE name = $3 AND version = $4",
        )
        .bind(permissions_text(&role.permissions))
        .bind(micros(role.updated_at))
        .bind(&role.name)
        .bind(role.version)
        .execute(&mut *self.tx)
        .await
        .map_err(backend)?;
        expect_one(result.rows_affected())
    }

    async fn delete_custom_role(&mut self, name: &str) -> StoreResult<()> {
        let result = sqlx::query("DELETE FROM custom_roles WHERE name = $1")
            .bind(name)
            .execute(&mut *self.tx)
            .await
            .map_err(backend)?;
        expect_one(result.rows_affected())
    }

    async fn role_holders(&mut self, name: &str) -> StoreResult<i64> {
        sqlx::query_scalar("SELECT COUNT(*) FROM user_instance_roles WHERE role = $1")
            .bind(name)
            .fetch_one(&mut *self.tx)
            .await
            .map_err(backend)
    }

    async fn roles_held_beside(&mut self, name: &str) -> StoreResult<Vec<String>> {
        sqlx::query_scalar(
            "SELECT DISTINCT r2.role FROM user_instance_roles r1 \
             JOIN user_instance_roles r2 ON r2.user_id = r1.user_id WHERE r1.role = $1",
        )
        .bind(name)
        .fetch_all(&mut *self.tx)
        .await
        .map_err(backend)
    }
}
