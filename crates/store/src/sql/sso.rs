//! Single sign-on connections, their domains, external identities and trusted JWT issuers: one implementation of [`Sso`] for both databases.

use async_trait::async_trait;
use steward_core::UserId;
use time::OffsetDateTime;

use super::stmt::Columns;
use super::{Exec, Stmt};
use crate::StoreResult;
use crate::model::*;
use crate::rows::*;
use crate::traits::*;

/// What a connection's insert and update both write (its domains are rows of their own too).
fn sso_columns(r: &SsoConnectionRow) -> StoreResult<Columns> {
    Ok(Columns::default()
        .set("name", &r.name)
        .set("org_id", r.org_id.map(|o| o.to_string()))
        .set("issuer", &r.issuer)
        .set("client_id", &r.client_id)
        .set("client_secret_sealed", &r.client_secret_sealed)
        .set("scopes", r.scopes.to_column()?)
        .set("domains", r.domains.to_column()?)
        .set("claims", r.claims.to_column()?)
        .set("role_mapping", r.role_mapping.to_column()?)
        .set("jit", r.jit)
        .set("enforced", r.enforced)
        .set("updated_at", micros(r.updated_at)))
}

#[async_trait]
impl<E: Exec> Sso for E {
    async fn insert_jwt_issuer(&mut self, r: &JwtIssuerRow) -> StoreResult<()> {
        self.insert(r).await
    }

    async fn jwt_issuers(&mut self) -> StoreResult<Vec<JwtIssuerRow>> {
        self.rows(Stmt::new("SELECT * FROM jwt_issuers ORDER BY id DESC")).await
    }

    async fn jwt_issuers_named(&mut self, issuer: &str) -> StoreResult<Vec<JwtIssuerRow>> {
        self.rows(Stmt::new("SELECT * FROM jwt_issuers WHERE issuer = ? ORDER BY id").bind(issuer)).await
    }

    async fn delete_jwt_issuer(&mut self, id: uuid::Uuid) -> StoreResult<bool> {
        let done = self.run(Stmt::new("DELETE FROM jwt_issuers WHERE id = ?").bind(id.to_string())).await?;
        Ok(done > 0)
    }

    async fn insert_sso_connection(&mut self, r: &SsoConnectionRow) -> StoreResult<()> {
        let columns = sso_columns(r)?.set("id", r.id.to_string()).set("created_at", micros(r.created_at));
        self.run(columns.set("version", r.version).insert("sso_connections")).await?;
        put_sso_domains(self, r).await
    }

    async fn update_sso_connection(&mut self, r: &SsoConnectionRow) -> StoreResult<()> {
        self.apply_one(sso_columns(r)?.update_versioned("sso_connections", r.id.to_string(), r.version)).await?;
        put_sso_domains(self, r).await
    }

    async fn sso_connection(&mut self, id: uuid::Uuid) -> StoreResult<Option<SsoConnectionRow>> {
        self.row(Stmt::new("SELECT * FROM sso_connections WHERE id = ?").bind(id.to_string())).await
    }

    async fn sso_connections(&mut self) -> StoreResult<Vec<SsoConnectionRow>> {
        self.rows(Stmt::new("SELECT * FROM sso_connections ORDER BY id DESC")).await
    }

    async fn sso_connection_for_domain(&mut self, domain: &str) -> StoreResult<Option<SsoConnectionRow>> {
        self.row(
            Stmt::new(
                "SELECT c.* FROM sso_connections c JOIN sso_domains d ON d.connection_id = c.id WHERE d.domain = ?",
            )
            .bind(domain),
        )
        .await
    }

    async fn delete_sso_connection(&mut self, id: uuid::Uuid) -> StoreResult<bool> {
        self.run(Stmt::new("DELETE FROM sso_domains WHERE connection_id = ?").bind(id.to_string())).await?;
        let done = self.run(Stmt::new("DELETE FROM sso_connections WHERE id = ?").bind(id.to_string())).await?;
        Ok(done > 0)
    }

    async fn external_identity(&mut self, issuer: &str, subject: &str) -> StoreResult<Option<UserId>> {
        let linked = Stmt::new("SELECT user_id FROM external_identities WHERE issuer = ? AND subject = ?");
        let row = self.fetch_one(linked.bind(issuer).bind(subject)).await?;
        row.map(|r| parse(&get::<String>(&r, "user_id")?, "user id")).transpose()
    }

    async fn link_external_identity(
        &mut self,
        issuer: &str,
        subject: &str,
        user: UserId,
        at: OffsetDateTime,
    ) -> StoreResult<()> {
        self.apply(
            Stmt::new(
                "INSERT INTO external_identities (issuer, subject, user_id, created_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT DO NOTHING",
            )
            .bind(issuer)
            .bind(subject)
            .bind(user.to_string())
            .bind(micros(at)),
        )
        .await
    }
}

/// Makes the connection's domains exactly those of `r`.
async fn put_sso_domains(tx: &mut impl Exec, r: &SsoConnectionRow) -> StoreResult<()> {
    tx.run(Stmt::new("DELETE FROM sso_domains WHERE connection_id = ?").bind(r.id.to_string())).await?;
    for domain in &r.domains {
        let insert = Stmt::new("INSERT INTO sso_domains (domain, connection_id) VALUES (?, ?)");
        tx.run(insert.bind(domain).bind(r.id.to_string())).await?;
    }
    Ok(())
}
