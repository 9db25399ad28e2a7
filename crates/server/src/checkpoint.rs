//! Signed checkpoints of the audit chain (invariant 12). The chain's hashes show an edited event
//! to anyone who did not also recompute every later hash; whoever can write the database can.
//! So the head's (seq, hash) is signed with an Ed25519 key that is not in the database
//! (`STEWARD_AUDIT_KEY`), every few seconds while events come in and at every archiving, and the
//! operator keeps exported checkpoints elsewhere. Verification then reports an event rewritten
//! and rehashed, newest events deleted, history renumbered, or an archive anchor forged.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use serde::{Deserialize, Serialize};
use steward_store::{AuditFilter, CheckpointRow, Store, StoreResult};
use time::OffsetDateTime;

/// The key that signs checkpoints: 32 random bytes, given base64-encoded.
pub struct AuditKey {
    pair: Ed25519KeyPair,
    id: String,
}

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AuditKey({})", self.id)
    }
}

impl AuditKey {
    /// Reads a key as `steward audit keygen` prints it (base64 of a 32-byte seed).
    pub fn parse(text: &str) -> Result<AuditKey, String> {
        let text = text.trim();
        let seed = STANDARD
            .decode(text)
            .or_else(|_| URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')))
            .map_err(|_| "STEWARD_AUDIT_KEY is not base64".to_owned())?;
        let pair = Ed25519KeyPair::from_seed_unchecked(&seed)
            .map_err(|_| "STEWARD_AUDIT_KEY must be 32 bytes (base64), as steward audit keygen prints".to_owned())?;
        let id = crate::auth::secret_hash(&STANDARD.encode(pair.public_key().as_ref()))[..16].to_owned();
        Ok(AuditKey { pair, id })
    }

    /// A new random key, base64-encoded.
    pub fn generate() -> Result<String, String> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| e.to_string())?;
        Ok(STANDARD.encode(seed))
    }

    /// Which key signed: a digest of its public half.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn sign(&self, seq: i64, kind: &str, hash: &str, at: OffsetDateTime) -> String {
        STANDARD.encode(self.pair.sign(message(seq, kind, hash, at).as_bytes()).as_ref())
    }

    /// Whether `c` was signed by this key, as it stands.
    pub fn verifies(&self, c: &Checkpoint) -> bool {
        let Ok(signature) = STANDARD.decode(&c.signature) else { return false };
        let public = UnparsedPublicKey::new(&ED25519, self.pair.public_key().as_ref());
        c.key_id == self.id && public.verify(message(c.seq, &c.kind, &c.hash, c.at).as_bytes(), &signature).is_ok()
    }
}

/// What is signed: the chain position, its hash and when, under a fixed label.
fn message(seq: i64, kind: &str, hash: &str, at: OffsetDateTime) -> String {
    let micros = at.unix_timestamp_nanos() / 1000;
    format!("steward-audit-checkpoint-v1\n{kind}\n{seq}\n{hash}\n{micros}")
}

/// A checkpoint as exported and kept: `{seq, hash, at, key_id, signature}` and its kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub seq: i64,
    pub hash: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub key_id: String,
    pub signature: String,
    /// `head`, or `anchor` for where an archiving left the chain.
    #[serde(default = "head")]
    pub kind: String,
}

fn head() -> String {
    "head".into()
}

impl From<CheckpointRow> for Checkpoint {
    fn from(r: CheckpointRow) -> Self {
        Checkpoint { seq: r.seq, hash: r.hash, at: r.at, key_id: r.key_id, signature: r.signature, kind: r.kind }
    }
}

/// Signs `(seq, hash)` as a checkpoint of `kind` and keeps it.
pub async fn keep(store: &dyn Store, key: &AuditKey, seq: i64, kind: &str, hash: &str) -> StoreResult<Checkpoint> {
    // Microseconds, as the store keeps times: what is signed is what is read back.
    let now = OffsetDateTime::now_utc();
    let at = now.replace_nanosecond(now.nanosecond() / 1000 * 1000).unwrap_or(now);
    let signature = key.sign(seq, kind, hash, at);
    let row =
        CheckpointRow { seq, kind: kind.to_owned(), hash: hash.to_owned(), at, key_id: key.id().to_owned(), signature };
    let mut tx = store.write().await?;
    tx.insert_audit_checkpoint(&row).await?;
    tx.commit().await?;
    Ok(row.into())
}

/// Signs the chain's current head unless it is signed already; returns the new checkpoint.
pub async fn sign_head(store: &dyn Store, key: &AuditKey) -> StoreResult<Option<Checkpoint>> {
    let mut tx = store.read().await?;
    let head = tx.list_audit(&AuditFilter { limit: 1, ..Default::default() }).await?.pop();
    let kept = tx.audit_checkpoints().await?;
    tx.rollback().await?;
    let Some(head) = head else { return Ok(None) };
    if kept.iter().any(|c| c.kind == "head" && c.seq == head.seq && c.key_id == key.id()) {
        return Ok(None);
    }
    keep(store, key, head.seq, "head", &head.hash).await.map(Some)
}

/// Signs the head every `every` while events come in, logging each checkpoint so that a copy
/// lives wherever the logs go.
pub async fn run(store: std::sync::Arc<dyn Store>, key: AuditKey, every: Duration) {
    loop {
        match sign_head(store.as_ref(), &key).await {
            Ok(Some(c)) => {
                tracing::info!(seq = c.seq, hash = %c.hash, key_id = %c.key_id, signature = %c.signature, "audit checkpoint")
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "audit checkpoint"),
        }
        tokio::time::sleep(every).await;
    }
}

/// What a verification of the checkpoints found: empty when everything holds.
pub async fn verify(store: &dyn Store, key: &AuditKey, exported: Option<&Checkpoint>) -> StoreResult<Vec<String>> {
    let mut problems = Vec::new();
    let mut tx = store.read().await?;
    let anchor = tx.audit_anchor().await?;
    let head = tx.list_audit(&AuditFilter { limit: 1, ..Default::default() }).await?.pop();
    let kept = tx.audit_checkpoints().await?;
    let head_seq = head.as_ref().map_or(anchor.as_ref().map_or(0, |a| a.0), |h| h.seq);
    let mut checks: Vec<(String, Checkpoint)> =
        kept.into_iter().map(|c| ("a kept checkpoint".to_owned(), Checkpoint::from(c))).collect();
    if let Some(c) = exported {
        checks.push(("the exported checkpoint".to_owned(), c.clone()));
    }
    for (what, c) in &checks {
        if c.key_id != key.id() {
            // Signed with another key (one rotated out): it says nothing either way.
            if exported.is_some_and(|e| e == c) {
                problems.push(format!("{what} was signed with key {}, not with STEWARD_AUDIT_KEY", c.key_id));
            }
            continue;
        }
        if !key.verifies(c) {
            problems.push(format!("{what} at event {} is not validly signed (forged or altered)", c.seq));
            continue;
        }
        if c.seq > head_seq {
            problems
                .push(format!("{what} covers event {} but the chain ends at {head_seq}: events were deleted", c.seq));
            continue;
        }
        match &anchor {
            Some((anchor_seq, _)) if c.seq <= *anchor_seq => {}
            _ => {
                let found = tx.audit_chain(c.seq - 1, 1).await?.pop().filter(|e| e.seq == c.seq);
                match found {
                    Some(e) if e.hash == c.hash => {}
                    Some(_) => problems
                        .push(format!("event {} does not match {what}: history was rewritten or renumbered", c.seq)),
                    None => problems.push(format!("event {} of {what} is missing from the chain", c.seq)),
                }
            }
        }
    }
    // An archive anchor must be one an archiving signed.
    if let Some((seq, hash)) = &anchor {
        let signed =
            checks.iter().any(|(_, c)| c.kind == "anchor" && c.seq == *seq && &c.hash == hash && key.verifies(c));
        if !signed {
            problems
                .push(format!("the archive anchor at event {seq} was not signed by an archiving: it may be forged"));
        }
    }
    tx.rollback().await?;
    Ok(problems)
}
