//! SQLite queries for two-factor enrolments, recovery codes, lockout and custom roles.

use async_trait::async_trait;
use steward_core::UserId;
use steward_core::lockout::LockoutState;
use time::OffsetDateTime;

use super::{SqliteTx, backend};
use crate::StoreResult;
use crate::model::{RoleRow, TotpRow};
use crate::rows::{expect_one, micros, opt_micros};
use crate::security_rows::{permissions_text, role_from_row, totp_from_row};
use crate::traits::{Roles, Security};

#[async_trait]
impl Security for SqliteTx {
    async fn totp(&mut self, user: UserId) -> StoreResult<Option<TotpRow>> {
        let row = sqlx::query("SELECT * FROM user_totp WHERE user_id = ?")
            .bind(user.to_string())
            .fetch_optional(self.conn().await?)
            .await
            .map_err(backend)?;
        row.as_ref().map(totp_from_row).transpose()
    }

    async fn put_totp(&mut self, row: &TotpRow) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO user_totp (user_id, secret_sealed, confirmed_at, last_step, created_at) VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (user_id) DO UPDATE SET secret_sealed = excluded.secret_sealed, \
             confirmed_at = excluded.confirmed_at, last_step = excluded.last_step, created_at = excluded.created_at",
        )
        .bind(row.user_id.to_string())
        .bind(&row.secret_sealed)
        .bind(row.confirmed_at.map(micros))
        .bind(row.last_step)
        .bind(micros(row.created_at))
        .execute(self.conn().await?)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn confirm_totp(&mut self, user: UserId, at: OffsetDateTime, step: i64) -> StoreResult<()> {
        let result = sqlx::query("UPDATE user_totp SET confirmed_at = ?, last_step = ? WHERE user_id = ?")
            .bind(micros(at))
            .bind(step)
            .bind(user.to_string())
            .execute(self.conn().await?)
            .await
            .map_err(backend)?;
        expect_one(result.rows_affected())
    }

    async fn use_totp_step(&mut self, user: UserId, step: i64) -> StoreResult<bool> {
        let result = sqlx::query(
            "UPDATE user_totp SET last_step = ? WHERE user_id = ? AND (last_step IS NULL OR last_step < ?)",
        )
        .bind(step)
        .bind(user.to_string())
        .bind(step)
        .execute(self.conn().await?)
        .await
        .map_err(backend)?;
        Ok(result.rows_affected() == 1)
    }

    async fn delete_totp(&mut self, user: UserId) -> StoreResult<bool> {
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = ?")
            .bind(user.to_string())
            .execute(self.conn().await?)
            .await
            .map_err(backend)?;
        let result = sqlx::query("DELETE FROM user_totp WHERE user_id = ?")
            .bind(user.to_string())
            .execute(self.conn().await?)
            .await
            .map_err(backend)?;
        Ok(result.rows_affected() > 0)
    }

    async fn replace_recovery_codes(&mut self, user: UserId, hashes: &[String], at: OffsetDateTime) -> StoreResult<()> {
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = ?")
            .bind(user.to_string())
            .execute(self.conn().await?)
            .await
            .map_err(backend)?;
        for hash in hashes {
            sqlx::query("INSERT INTO recovery_codes (user_id, code_hash, created_at) VALUES (?, ?, ?)")
                .bind(user.to_string())
                .bind(hash)
                .bind(micros(at))
                .execute(self.conn().await?)
                .await
                .map_err(backend)?;
        }
        Ok(())
    }

    async fn use_recovery_code(&mut self, user: UserId, hash: &str, at: OffsetDateTime) -> StoreResult<bool> {
        let result = sqlx::query(
            "UPDATE recovery_codes SET used_at = ? WHERE user_id = ? AND code_hash = ? AND used_at IS NULL",
        )
        .bind(micros(at))
        .bind(user.to_string())
        .bind(hash)
        .execute(self.conn().await?)
        .await
        .map_err(backend)?;
        Ok(result.rows_affected() == 1)
    }

    async fn recovery_codes_left(&mut self, user: UserId) -> StoreResult<i64> {
        sqlx::query_scalar("SELECT COUNT(*) FROM recovery_codes WHERE user_id = ? AND used_at IS NULL")
            .bind(user.to_string())
            .fetch_one(self.conn().await?)
            .await
            .map_err(backend)
    }

    async fn lockout(&mut self, user: UserId) -> StoreResult<LockoutState> {
        let row: Option<(i64, Option<i64>)> =
            sqlx::query_as("SELECT failures, locked_until FROM login_lockouts WHERE user_id = ?")
                .bind(user.to_string())
                .fetch_optional(self.conn().await?)
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
            "INSERT INTO login_lockouts (user_id, failures, locked_until, updated_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT (user_id) DO UPDATE SET failures = excluded.failures, \
             locked_until = excluded.locked_until, updated_at = excluded.updated_at",
        )
        .bind(user.to_string())
        .bind(i64::from(state.failures))
        .bind(state.locked_until.map(micros))
        .bind(micros(at))
        .execute(self.conn().await?)
        .await
        .map_err(backend)?;
        Ok(())
    }
}

#[async_trait]
impl Roles for SqliteTx {
    async fn custom_roles(&mut self) -> StoreResult<Vec<RoleRow>> {
        let rows = sqlx::query("SELECT * FROM custom_roles ORDER BY name")
            .fetch_all(self.conn().await?)
            .await
            .map_err(backend)?;
        rows.iter().map(role_from_row).collect()
    }

    async fn custom_role(&mut self, name: &str) -> StoreResult<Option<RoleRow>> {
        let row = sqlx::query("SELECT * FROM custom_roles WHERE name = ?")
            .bind(name)
            .fetch_optional(self.conn().await?)
            .await
            .map_err(backend)?;
        row.as_ref().map(role_from_row).transpose()
    }

    async fn insert_custom_role(&mut self, role: &RoleRow) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO custom_roles (name, permissions, created_at, updated_at, version) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&role.name)
        .bind(permissions_text(&role.permissions))
        .bind(micros(role.created_at))
        .bind(micros(role.updated_at))
        .bind(role.version)
        .execute(self.conn().await?)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn update_custom_role(&mut self, role: &RoleRow) -> StoreResult<()> {
        let result = sqlx::query(
            "UPDATE custom_roles SET permissions = ?, updated_at = ?, version = version + 1 \
             WHERE name = ? AND version = ?",
        )
        .bind(permissions_text(&role.permissions))
        .bind(micros(role.updated_at))
        .bind(&role.name)
        .bind(role.version)
        .execute(self.conn().await?)
        .await
        .map_err(backend)?;
        expect_one(result.rows_affected())
    }

    async fn delete_custom_role(&mut self, name: &str) -> StoreResult<()> {
        let result = sqlx::query("DELETE FROM custom_roles WHERE name = ?")
            .bind(name)
            .execute(self.conn().await?)
            .await
            .map_err(backend)?;
        expect_one(result.rows_affected())
    }

    async fn role_holders(&mut self, name: &str) -> StoreResult<i64> {
        sqlx::query_scalar("SELECT COUNT(*) FROM user_instance_roles WHERE role = ?")
            .bind(name)
            .fetch_one(self.conn().await?)
            .await
            .map_err(backend)
    }

    async fn roles_held_beside(&mut self, name: &str) -> StoreResult<Vec<String>> {
        sqlx::query_scalar(
            "SELECT DISTINCT r2.role FROM user_instance_roles r1 \
             JOIN user_instance_roles r2 ON r2.user_id = r1.user_id WHERE r1.role = ?",
        )
        .bind(name)
        .fetch_all(self.conn().await?)
        .await
        .map_err(backend)
    }
}
