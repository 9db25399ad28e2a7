//! Instance settings, idempotency keys and other settings: one implementation of [`Settings`] for both databases.

use async_trait::async_trait;
use serde_json::Value;
use time::OffsetDateTime;

use super::{Exec, Stmt};
use crate::model::*;
use crate::rows::*;
use crate::traits::*;
use crate::{StoreError, StoreResult};

/// An instance secret's value. Binds: its name.
const SECRET: &str = "SELECT value FROM instance_secrets WHERE name = ?";

#[async_trait]
impl<E: Exec> Settings for E {
    async fn instance_doc(&mut self) -> StoreResult<Option<(Value, i64)>> {
        let row = self.fetch_one(Stmt::new("SELECT doc, version FROM instance_settings WHERE id = 1")).await?;
        row.map(|row| {
            let doc: String = get(&row, "doc")?;
            let doc = serde_json::from_str(&doc).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            Ok((doc, get(&row, "version")?))
        })
        .transpose()
    }

    async fn put_instance_doc(&mut self, doc: &Value, version: i64) -> StoreResult<()> {
        self.apply(
            Stmt::new(
                "INSERT INTO instance_settings (id, doc, version) VALUES (1, ?, ?) \
             ON CONFLICT (id) DO UPDATE SET doc = excluded.doc, version = excluded.version",
            )
            .bind(doc.to_string())
            .bind(version),
        )
        .await
    }

    async fn instance_secret(&mut self, name: &str) -> StoreResult<Option<String>> {
        if let Some(known) = self.secrets().get(name) {
            return Ok(Some(known));
        }
        let row = self.fetch_one(Stmt::new(SECRET).bind(name)).await?;
        row.map(|r| get(&r, "value")).transpose()
    }

    async fn ensure_instance_secret(&mut self, name: &str, value: &str, at: OffsetDateTime) -> StoreResult<String> {
        // Read first: the secret exists on all but the first call, which then writes nothing.
        if let Some(known) = self.secrets().get(name) {
            return Ok(known);
        }
        if let Some(row) = self.fetch_one(Stmt::new(SECRET).bind(name)).await? {
            let held: String = get(&row, "value")?;
            self.secrets().learn(name, &held);
            return Ok(held);
        }
        self.run(
            Stmt::new(
                "INSERT INTO instance_secrets (name, value, created_at) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING",
            )
            .bind(name)
            .bind(value)
            .bind(micros(at)),
        )
        .await?;
        self.scalar(Stmt::new(SECRET).bind(name), "value").await
    }

    async fn idempotent_response(&mut self, scope: &str, key: &str) -> StoreResult<Option<IdempotentResponse>> {
        let row = self
            .fetch_one(
                Stmt::new("SELECT request_hash, status, body FROM idempotency_keys WHERE scope = ? AND idem_key = ?")
                    .bind(scope)
                    .bind(key),
            )
            .await?;
        row.map(|row| {
            Ok(IdempotentResponse {
                request_hash: get(&row, "request_hash")?,
                status: u16::try_from(get::<i64>(&row, "status")?).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                body: get(&row, "body")?,
            })
        })
        .transpose()
    }

    async fn save_idempotent_response(
        &mut self,
        scope: &str,
        key: &str,
        r: &IdempotentResponse,
        at: OffsetDateTime,
    ) -> StoreResult<()> {
        self.apply(Stmt::new(
            "INSERT INTO idempotency_keys (scope, idem_key, request_hash, status, body, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(scope)
        .bind(key)
        .bind(&r.request_hash)
        .bind(i64::from(r.status))
        .bind(&r.body)
        .bind(micros(at))).await
    }
}
