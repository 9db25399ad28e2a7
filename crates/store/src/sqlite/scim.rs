//! SCIM users and groups on SQLite.

use super::*;

/// Writes what SCIM keeps of a user beside its `userName`, binding the user's id, external id,
/// attributes, hidden and updated instants.
const SCIM_ATTRS_UPSERT: &str = "INSERT INTO scim_users (user_id, external_id, attrs, hidden_at, updated_at) \
     VALUES (?, ?, ?, ?, ?) ON CONFLICT (user_id) DO UPDATE SET external_id = excluded.external_id, \
     attrs = excluded.attrs, hidden_at = excluded.hidden_at, updated_at = excluded.updated_at";

#[async_trait]
impl Scim for SqliteTx {
    async fn scim_users(
        &mut self,
        q: &ScimQuery<UserField>,
    ) -> StoreResult<(u64, Vec<(UserRow, Option<ScimUserRow>)>)> {
        let (page, count) = crate::query::users_sql(q, &format!("{USER_COLUMNS}, {SCIM_USER_COLUMNS}"));
        let (total, rows) = self.count_and_page(count, page).await?;
        let items = rows.iter().map(|r| Ok((user_from_row(r)?, scim_user_from_row(r)?))).collect::<StoreResult<_>>()?;
        Ok((u64::try_from(total).unwrap_or(0), items))
    }

    async fn scim_user(&mut self, id: UserId) -> StoreResult<Option<(UserRow, Option<ScimUserRow>)>> {
        let sql = format!(
            "SELECT {USER_COLUMNS}, {SCIM_USER_COLUMNS} FROM users u LEFT JOIN scim_users s ON s.user_id = u.id \
             WHERE u.id = ?"
        );
        let rows = self.fetch(Stmt::new(sql).bind(id.to_string())).await?;
        rows.first().map(|r| Ok((user_from_row(r)?, scim_user_from_row(r)?))).transpose()
    }

    async fn user_by_user_name_key(&mut self, key: &str) -> StoreResult<Option<UserRow>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users u WHERE COALESCE(u.scim_user_name_key, u.email_key) = ?");
        let row =
            sqlx::query(AssertSqlSafe(sql)).bind(key).fetch_optional(self.conn().await?).await.map_err(backend)?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn put_scim_user(&mut self, r: &ScimUserRow) -> StoreResult<()> {
        // The userName and the attributes in one trip to the connection's thread.
        let sql =
            format!("UPDATE users SET scim_user_name = ?, scim_user_name_key = ? WHERE id = ?; {SCIM_ATTRS_UPSERT}");
        let put = Stmt::new(sql)
            .statements(2)
            .bind(&r.user_name)
            .bind(r.user_name.as_ref().map(|n| n.to_lowercase()))
            .bind(r.user_id.to_string())
            .bind(r.user_id.to_string())
            .bind(&r.external_id)
            .bind(json_text(&r.attrs)?)
            .bind(r.hidden_at.map(micros))
            .bind(micros(r.updated_at));
        self.later(put);
        Ok(())
    }

    async fn put_scim_attrs(&mut self, r: &ScimUserRow) -> StoreResult<()> {
        let put = Stmt::new(SCIM_ATTRS_UPSERT)
            .bind(r.user_id.to_string())
            .bind(&r.external_id)
            .bind(json_text(&r.attrs)?)
            .bind(r.hidden_at.map(micros))
            .bind(micros(r.updated_at));
        self.later(put);
        Ok(())
    }

    async fn retire_email(&mut self, user: UserId, email_key: &str, at: OffsetDateTime) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO retired_emails (email_key, user_id, retired_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(email_key)
        .bind(user.to_string())
        .bind(micros(at))
        .execute(self.conn().await?)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn retired_email_holder(
        &mut self,
        email_key: &str,
        reclaimer: Option<UserId>,
    ) -> StoreResult<Option<UserId>> {
        let holder: Option<String> = sqlx::query_scalar("SELECT user_id FROM retired_emails WHERE email_key = ?")
            .bind(email_key)
            .fetch_optional(self.conn().await?)
            .await
            .map_err(backend)?;
        let holder: Option<UserId> = holder.map(|h| parse(&h, "user id")).transpose()?;
        if holder.is_some() && holder == reclaimer {
            sqlx::query("DELETE FROM retired_emails WHERE email_key = ?")
                .bind(email_key)
                .execute(self.conn().await?)
                .await
                .map_err(backend)?;
            return Ok(None);
        }
        Ok(holder)
    }

    async fn scim_groups(&mut self, q: &ScimQuery<GroupField>) -> StoreResult<(u64, Vec<ScimGroupRow>)> {
        let (page, count) = crate::query::groups_sql(q, SCIM_GROUP_COLUMNS);
        let (total, rows) = self.count_and_page(count, page).await?;
        let items = rows.iter().map(scim_group_from_row).collect::<StoreResult<_>>()?;
        Ok((u64::try_from(total).unwrap_or(0), items))
    }

    async fn scim_group(&mut self, id: TeamId) -> StoreResult<Option<ScimGroupRow>> {
        let sql = format!(
            "SELECT {SCIM_GROUP_COLUMNS} FROM teams t JOIN orgs o ON o.id = t.org_id \
             LEFT JOIN scim_groups g ON g.team_id = t.id WHERE t.id = ? AND t.archived_at IS NULL"
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(id.to_string())
            .fetch_optional(self.conn().await?)
            .await
            .map_err(backend)?;
        row.as_ref().map(scim_group_from_row).transpose()
    }

    async fn put_scim_group(&mut self, team: TeamId, external_id: Option<&str>, at: OffsetDateTime) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO scim_groups (team_id, external_id, updated_at) VALUES (?, ?, ?) \
             ON CONFLICT (team_id) DO UPDATE SET external_id = excluded.external_id, updated_at = excluded.updated_at",
        )
        .bind(team.to_string())
        .bind(external_id)
        .bind(micros(at))
        .execute(self.conn().await?)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn archive_team(&mut self, team: TeamId, at: OffsetDateTime) -> StoreResult<()> {
        sqlx::query("UPDATE team_members SET ended_at = ? WHERE team_id = ? AND ended_at IS NULL")
            .bind(micros(at))
            .bind(team.to_string())
            .execute(self.conn().await?)
            .await
            .map_err(backend)?;
        sqlx::query("UPDATE teams SET archived_at = ?, updated_at = ?, version = version + 1 WHERE id = ?")
            .bind(micros(at))
            .bind(micros(at))
            .bind(team.to_string())
            .execute(self.conn().await?)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn orgs_named(&mut self, name: &str) -> StoreResult<Vec<OrgRow>> {
        let rows = sqlx::query("SELECT * FROM orgs WHERE lower(name) = ? AND state <> 'purged' ORDER BY id LIMIT 2")
            .bind(name.to_lowercase())
            .fetch_all(self.conn().await?)
            .await
            .map_err(backend)?;
        rows.iter().map(org_from_row).collect()
    }

    async fn insert_scim_token(&mut self, t: &ScimTokenRow) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO scim_tokens (id, name, token_hash, org_id, service_user_id, created_by, created_at, revoked_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(t.id.to_string())
        .bind(&t.name)
        .bind(&t.token_hash)
        .bind(t.org_id.map(|o| o.to_string()))
        .bind(t.service_user_id.to_string())
        .bind(t.created_by.map(|b| b.to_string()))
        .bind(micros(t.created_at))
        .bind(t.revoked_at.map(micros))
        .execute(self.conn().await?)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn scim_token_by_hash(&mut self, token_hash: &str) -> StoreResult<Option<ScimTokenRow>> {
        let row = sqlx::query("SELECT * FROM scim_tokens WHERE token_hash = ?")
            .bind(token_hash)
            .fetch_optional(self.conn().await?)
            .await
            .map_err(backend)?;
        row.as_ref().map(scim_token_from_row).transpose()
    }

    async fn scim_tokens(&mut self) -> StoreResult<Vec<ScimTokenRow>> {
        let rows = sqlx::query("SELECT * FROM scim_tokens WHERE revoked_at IS NULL ORDER BY id DESC")
            .fetch_all(self.conn().await?)
            .await
            .map_err(backend)?;
        rows.iter().map(scim_token_from_row).collect()
    }

    async fn revoke_scim_token(&mut self, id: uuid::Uuid, at: OffsetDateTime) -> StoreResult<bool> {
        let done = sqlx::query("UPDATE scim_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
            .bind(micros(at))
            .bind(id.to_string())
            .execute(self.conn().await?)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected() > 0)
    }
}
