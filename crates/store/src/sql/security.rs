//! Two-factor enrolments, recovery codes, lockouts and custom roles: one implementation of
//! [`Security`] and [`Roles`] for both databases.

use async_trait::async_trait;
use steward_core::UserId;
use steward_core::lockout::LockoutState;
use time::OffsetDateTime;

use super::{Exec, Stmt, Table};
use crate::StoreResult;
use crate::model::{RoleRow, TotpRow};
use crate::rows::{get, micros, opt_micros};
use crate::security_rows::permissions_text;
use crate::traits::{Roles, Security};

#[async_trait]
impl<E: Exec> Security for E {
    async fn totp(&mut self, user: UserId) -> StoreResult<Option<TotpRow>> {
        self.row(Stmt::new("SELECT * FROM user_totp WHERE user_id = ?").bind(user.to_string())).await
    }

    async fn put_totp(&mut self, row: &TotpRow) -> StoreResult<()> {
        self.apply(row.columns()?.upsert(TotpRow::TABLE, "user_id")).await
    }

    async fn confirm_totp(&mut self, user: UserId, at: OffsetDateTime, step: i64) -> StoreResult<()> {
        let confirm = Stmt::new("UPDATE user_totp SET confirmed_at = ?, last_step = ? WHERE user_id = ?");
        self.apply_one(confirm.bind(micros(at)).bind(step).bind(user.to_string())).await
    }

    async fn use_totp_step(&mut self, user: UserId, step: i64) -> StoreResult<bool> {
        let used =
            Stmt::new("UPDATE user_totp SET last_step = ? WHERE user_id = ? AND (last_step IS NULL OR last_step < ?)");
        Ok(self.run(used.bind(step).bind(user.to_string()).bind(step)).await? == 1)
    }

    async fn delete_totp(&mut self, user: UserId) -> StoreResult<bool> {
        self.run(Stmt::new("DELETE FROM recovery_codes WHERE user_id = ?").bind(user.to_string())).await?;
        Ok(self.run(Stmt::new("DELETE FROM user_totp WHERE user_id = ?").bind(user.to_string())).await? > 0)
    }

    async fn replace_recovery_codes(&mut self, user: UserId, hashes: &[String], at: OffsetDateTime) -> StoreResult<()> {
        self.run(Stmt::new("DELETE FROM recovery_codes WHERE user_id = ?").bind(user.to_string())).await?;
        for hash in hashes {
            let insert = Stmt::new("INSERT INTO recovery_codes (user_id, code_hash, created_at) VALUES (?, ?, ?)");
            self.run(insert.bind(user.to_string()).bind(hash).bind(micros(at))).await?;
        }
        Ok(())
    }

    async fn use_recovery_code(&mut self, user: UserId, hash: &str, at: OffsetDateTime) -> StoreResult<bool> {
        let used =
            Stmt::new("UPDATE recovery_codes SET used_at = ? WHERE user_id = ? AND code_hash = ? AND used_at IS NULL");
        Ok(self.run(used.bind(micros(at)).bind(user.to_string()).bind(hash)).await? == 1)
    }

    async fn recovery_codes_left(&mut self, user: UserId) -> StoreResult<i64> {
        let left = Stmt::new("SELECT COUNT(*) AS n FROM recovery_codes WHERE user_id = ? AND used_at IS NULL");
        self.scalar(left.bind(user.to_string()), "n").await
    }

    async fn lockout(&mut self, user: UserId) -> StoreResult<LockoutState> {
        let read = Stmt::new("SELECT failures, locked_until FROM login_lockouts WHERE user_id = ?");
        match self.fetch_one(read.bind(user.to_string())).await? {
            None => Ok(LockoutState::default()),
            Some(row) => Ok(LockoutState {
                failures: u32::try_from(get::<i64>(&row, "failures")?).unwrap_or(u32::MAX),
                locked_until: opt_micros(get(&row, "locked_until")?)?,
            }),
        }
    }

    async fn put_lockout(&mut self, user: UserId, state: &LockoutState, at: OffsetDateTime) -> StoreResult<()> {
        let put = Stmt::new(
            "INSERT INTO login_lockouts (user_id, failures, locked_until, updated_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT (user_id) DO UPDATE SET failures = excluded.failures, \
             locked_until = excluded.locked_until, updated_at = excluded.updated_at",
        );
        self.apply(
            put.bind(user.to_string())
                .bind(i64::from(state.failures))
                .bind(state.locked_until.map(micros))
                .bind(micros(at)),
        )
        .await
    }
}

#[async_trait]
impl<E: Exec> Roles for E {
    async fn custom_roles(&mut self) -> StoreResult<Vec<RoleRow>> {
        self.rows(Stmt::new("SELECT * FROM custom_roles ORDER BY name")).await
    }

    async fn custom_role(&mut self, name: &str) -> StoreResult<Option<RoleRow>> {
        self.row(Stmt::new("SELECT * FROM custom_roles WHERE name = ?").bind(name)).await
    }

    async fn insert_custom_role(&mut self, role: &RoleRow) -> StoreResult<()> {
        self.insert(role).await
    }

    async fn update_custom_role(&mut self, role: &RoleRow) -> StoreResult<()> {
        let update = Stmt::new(
            "UPDATE custom_roles SET permissions = ?, updated_at = ?, version = version + 1 \
             WHERE name = ? AND version = ?",
        );
        self.apply_one(
            update
                .bind(permissions_text(&role.permissions))
                .bind(micros(role.updated_at))
                .bind(&role.name)
                .bind(role.version),
        )
        .await
    }

    async fn delete_custom_role(&mut self, name: &str) -> StoreResult<()> {
        self.apply_one(Stmt::new("DELETE FROM custom_roles WHERE name = ?").bind(name)).await
    }

    async fn role_holders(&mut self, name: &str) -> StoreResult<i64> {
        self.scalar(Stmt::new("SELECT COUNT(*) AS n FROM user_instance_roles WHERE role = ?").bind(name), "n").await
    }

    async fn roles_held_beside(&mut self, name: &str) -> StoreResult<Vec<String>> {
        let beside = Stmt::new(
            "SELECT DISTINCT r2.role AS role FROM user_instance_roles r1 \
             JOIN user_instance_roles r2 ON r2.user_id = r1.user_id WHERE r1.role = ?",
        );
        self.fetch(beside.bind(name)).await?.iter().map(|r| get(r, "role")).collect()
    }
}
