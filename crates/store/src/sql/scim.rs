//! SCIM users, groups and tokens: one implementation of [`Scim`] for both databases.

use async_trait::async_trait;
use steward_core::{TeamId, UserId};
use time::OffsetDateTime;
use uuid::Uuid;

use super::stmt::Columns;
use super::{Exec, Stmt};
use crate::StoreResult;
use crate::model::*;
use crate::query::{GroupField, SCIM_GROUP_COLUMNS, SCIM_USER_COLUMNS, ScimQuery, UserField};
use crate::rows::*;
use crate::traits::*;

/// Writes what SCIM keeps of a user beside its `userName`.
fn attrs_upsert(r: &ScimUserRow) -> StoreResult<Stmt> {
    Ok(Stmt::new(
        "INSERT INTO scim_users (user_id, external_id, attrs, hidden_at, updated_at) VALUES (?, ?, ?, ?, ?) \
         ON CONFLICT (user_id) DO UPDATE SET external_id = excluded.external_id, attrs = excluded.attrs, \
         hidden_at = excluded.hidden_at, updated_at = excluded.updated_at",
    )
    .bind(r.user_id.to_string())
    .bind(&r.external_id)
    .bind(r.attrs.to_column()?)
    .bind(r.hidden_at.map(micros))
    .bind(micros(r.updated_at)))
}

/// A user with what SCIM keeps of it.
fn scim_pair(row: &impl DbRow) -> StoreResult<(UserRow, Option<ScimUserRow>)> {
    Ok((UserRow::from_row(row)?, scim_user_from_row(row)?))
}

#[async_trait]
impl<E: Exec> Scim for E {
    async fn scim_users(
        &mut self,
        q: &ScimQuery<UserField>,
    ) -> StoreResult<(u64, Vec<(UserRow, Option<ScimUserRow>)>)> {
        let (page, count) = crate::query::users_sql(q, &format!("{}, {SCIM_USER_COLUMNS}", E::USER_COLUMNS));
        let (total, rows) = self.count_and_page(count.into(), page.into()).await?;
        let items = rows.iter().map(scim_pair).collect::<StoreResult<_>>()?;
        Ok((u64::try_from(total).unwrap_or(0), items))
    }

    async fn scim_user(&mut self, id: UserId) -> StoreResult<Option<(UserRow, Option<ScimUserRow>)>> {
        let sql = format!(
            "SELECT {}, {SCIM_USER_COLUMNS} FROM users u LEFT JOIN scim_users s ON s.user_id = u.id WHERE u.id = ?",
            E::USER_COLUMNS
        );
        self.fetch_one(Stmt::new(sql).bind(id.to_string())).await?.as_ref().map(scim_pair).transpose()
    }

    async fn user_by_user_name_key(&mut self, key: &str) -> StoreResult<Option<UserRow>> {
        let sql =
            format!("SELECT {} FROM users u WHERE COALESCE(u.scim_user_name_key, u.email_key) = ?", E::USER_COLUMNS);
        self.row(Stmt::new(sql).bind(key)).await
    }

    async fn put_scim_user(&mut self, r: &ScimUserRow) -> StoreResult<()> {
        let name = Columns::default()
            .set("scim_user_name", &r.user_name)
            .set("scim_user_name_key", r.user_name.as_ref().map(|n| n.to_lowercase()))
            .update("users", r.user_id.to_string());
        // Nobody reads the result: SQLite sends both with the transaction's next trip.
        self.later(name).await?;
        self.later(attrs_upsert(r)?).await
    }

    async fn put_scim_attrs(&mut self, r: &ScimUserRow) -> StoreResult<()> {
        self.later(attrs_upsert(r)?).await
    }

    async fn retire_email(&mut self, user: UserId, email_key: &str, at: OffsetDateTime) -> StoreResult<()> {
        let insert = Stmt::new(
            "INSERT INTO retired_emails (email_key, user_id, retired_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(email_key)
        .bind(user.to_string())
        .bind(micros(at));
        self.run(insert).await.map(drop)
    }

    async fn retired_email_holder(
        &mut self,
        email_key: &str,
        reclaimer: Option<UserId>,
    ) -> StoreResult<Option<UserId>> {
        let row =
            self.fetch_one(Stmt::new("SELECT user_id FROM retired_emails WHERE email_key = ?").bind(email_key)).await?;
        let holder: Option<UserId> =
            row.map(|r| get::<String>(&r, "user_id")).transpose()?.map(|h| parse(&h, "user id")).transpose()?;
        if holder.is_some() && holder == reclaimer {
            self.run(Stmt::new("DELETE FROM retired_emails WHERE email_key = ?").bind(email_key)).await?;
            return Ok(None);
        }
        Ok(holder)
    }

    async fn scim_groups(&mut self, q: &ScimQuery<GroupField>) -> StoreResult<(u64, Vec<ScimGroupRow>)> {
        let (page, count) = crate::query::groups_sql(q, SCIM_GROUP_COLUMNS);
        let (total, rows) = self.count_and_page(count.into(), page.into()).await?;
        let items = rows.iter().map(scim_group_from_row).collect::<StoreResult<_>>()?;
        Ok((u64::try_from(total).unwrap_or(0), items))
    }

    async fn scim_group(&mut self, id: TeamId) -> StoreResult<Option<ScimGroupRow>> {
        let sql = format!(
            "SELECT {SCIM_GROUP_COLUMNS} FROM teams t JOIN orgs o ON o.id = t.org_id \
             LEFT JOIN scim_groups g ON g.team_id = t.id WHERE t.id = ? AND t.archived_at IS NULL"
        );
        self.fetch_one(Stmt::new(sql).bind(id.to_string())).await?.as_ref().map(scim_group_from_row).transpose()
    }

    async fn put_scim_group(&mut self, team: TeamId, external_id: Option<&str>, at: OffsetDateTime) -> StoreResult<()> {
        let upsert = Stmt::new(
            "INSERT INTO scim_groups (team_id, external_id, updated_at) VALUES (?, ?, ?) \
             ON CONFLICT (team_id) DO UPDATE SET external_id = excluded.external_id, updated_at = excluded.updated_at",
        )
        .bind(team.to_string())
        .bind(external_id)
        .bind(micros(at));
        self.run(upsert).await.map(drop)
    }

    async fn archive_team(&mut self, team: TeamId, at: OffsetDateTime) -> StoreResult<()> {
        self.run_all(vec![
            Stmt::new("UPDATE team_members SET ended_at = ? WHERE team_id = ? AND ended_at IS NULL")
                .bind(micros(at))
                .bind(team.to_string()),
            Stmt::new("UPDATE teams SET archived_at = ?, updated_at = ?, version = version + 1 WHERE id = ?")
                .bind(micros(at))
                .bind(micros(at))
                .bind(team.to_string()),
        ])
        .await
        .map(drop)
    }

    async fn orgs_named(&mut self, name: &str) -> StoreResult<Vec<OrgRow>> {
        let stmt = Stmt::new("SELECT * FROM orgs WHERE lower(name) = ? AND state <> 'purged' ORDER BY id LIMIT 2")
            .bind(name.to_lowercase());
        self.rows(stmt).await
    }

    async fn insert_scim_token(&mut self, t: &ScimTokenRow) -> StoreResult<()> {
        self.insert(t).await
    }

    async fn scim_token_by_hash(&mut self, token_hash: &str) -> StoreResult<Option<ScimTokenRow>> {
        let stmt = Stmt::new("SELECT * FROM scim_tokens WHERE token_hash = ?").bind(token_hash);
        self.row(stmt).await
    }

    async fn scim_tokens(&mut self) -> StoreResult<Vec<ScimTokenRow>> {
        let stmt = Stmt::new("SELECT * FROM scim_tokens WHERE revoked_at IS NULL ORDER BY id DESC");
        self.rows(stmt).await
    }

    async fn revoke_scim_token(&mut self, id: Uuid, at: OffsetDateTime) -> StoreResult<bool> {
        let revoked = Columns::default().set("revoked_at", micros(at));
        Ok(self.run(revoked.update_open("scim_tokens", id.to_string(), &["revoked_at"])).await? > 0)
    }
}
