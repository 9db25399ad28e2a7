//! Webhooks per the Standard Webhooks scheme: each change the operator's product should learn of
//! becomes a delivery row in the change's own transaction; a worker signs and posts them, retrying
//! with backoff for up to 24 hours. Redirects are never followed.

use std::net::IpAddr;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{KeyInit, Mac};
use sha2::Sha256;
use steward_store::{DeliveryRow, Tx};
use time::OffsetDateTime;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// A new `whsec_` secret: 24 random bytes, base64.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    format!("whsec_{}", STANDARD.encode(bytes))
}

/// The `webhook-signature` value: `v1,` and the base64 HMAC-SHA256 of `id.timestamp.body`
/// under the base64-decoded secret.
pub fn signature(secret: &str, id: &str, timestamp: i64, body: &str) -> String {
    let key = STANDARD.decode(secret.trim_start_matches("whsec_")).unwrap_or_default();
    let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(&key).expect("HMAC takes keys of any length");
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// Checks an endpoint URL: http(s) with a host; with `deny_private`, a numeric host that is
/// public and a name that resolves to public addresses only (`crate::outbound`). Deliveries
/// check again at the address they connect to.
pub async fn check_url(url: &str, deny_private: bool) -> ApiResult<reqwest::Url> {
    let parsed = reqwest::Url::parse(url).map_err(|e| ApiError::invalid("url", e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none_or(str::is_empty) {
        return Err(ApiError::invalid("url", "must be an http or https URL with a host"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(ApiError::invalid("url", "must not carry credentials"));
    }
    if deny_private {
        let refused = |why: String| ApiError::invalid("url", format!("{why}; the instance policy refuses it"));
        crate::outbound::check_host(&parsed).map_err(refused)?;
        let host = parsed.host_str().unwrap_or_default().trim_matches(['[', ']']).to_owned();
        let port = parsed.port_or_known_default().unwrap_or(443);
        let addrs: Vec<IpAddr> = tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|_| ApiError::invalid("url", "the host does not resolve"))?
            .map(|a| a.ip())
            .collect();
        if let Some(why) = addrs.iter().find_map(|a| crate::outbound::non_public(*a)) {
            return Err(refused(format!("resolves to a non-public address ({why})")));
        }
        if addrs.is_empty() {
            return Err(ApiError::invalid("url", "the host does not resolve"));
        }
    }
    Ok(parsed)
}

/// Seconds until the next attempt after `attempts` failures: the first retry within 10 s, then
/// growing to an hour.
pub fn backoff(attempts: i64) -> i64 {
    match attempts {
        ..=1 => 5,
        2 => 30,
        3 => 120,
        4 => 600,
        5 => 1800,
        _ => 3600,
    }
}

/// Delivers what is due; returns how many attempts were made.
/// The delivery clients: one that connects anywhere, one that connects to public addresses only
/// (for the instance policy `webhook_deny_private`). Neither follows redirects.
pub struct DeliveryClients {
    open: reqwest::Client,
    public_only: reqwest::Client,
}

impl Default for DeliveryClients {
    fn default() -> Self {
        let timeout = Duration::from_secs(10);
        DeliveryClients {
            open: crate::outbound::client("Steward-Webhooks/1", timeout, false),
            public_only: crate::outbound::client("Steward-Webhooks/1", timeout, true),
        }
    }
}

pub async fn deliver_due(state: &AppState, clients: &DeliveryClients) -> anyhow::Result<usize> {
    let now = state.clock.now();
    let mut tx = state.store.write().await?;
    let lease = time::Duration::seconds(state.config.webhook_lease_secs.clamp(1, 3600) as i64);
    let due = tx.claim_deliveries(now, now + lease, 20).await?;
    if due.is_empty() {
        tx.rollback().await?;
        return Ok(0);
    }
    let hooks = tx.webhooks().await?;
    tx.commit().await?;
    let (settings, _) = {
        let mut tx = state.store.read().await?;
        let s = crate::state::instance_settings(tx.as_mut())
            .await
            .map_err(|e| anyhow::anyhow!("{}", e.problem().detail))?;
        tx.rollback().await?;
        s
    };
    let deny_private = settings.policies.webhook_deny_private;
    let client = if deny_private { &clients.public_only } else { &clients.open };
    for d in &due {
        let now = state.clock.now();
        let outcome = attempt(client, hooks.iter().find(|h| h.id == d.webhook_id), d, deny_private, now).await;
        let mut tx = state.store.write().await?;
        record(tx.as_mut(), d, outcome, now).await?;
        tx.commit().await?;
    }
    Ok(due.len())
}

/// How one attempt went: the status answered, or what went wrong, with whether it is for good.
type Attempt = Result<i64, (Option<i64>, String, bool)>;

/// Posts one delivery, signed, to its endpoint (judged against the outbound policy as it is
/// connected to); an endpoint removed since fails for good.
async fn attempt(
    client: &reqwest::Client,
    hook: Option<&steward_store::WebhookRow>,
    d: &DeliveryRow,
    deny_private: bool,
    now: OffsetDateTime,
) -> Attempt {
    let Some(hook) = hook else { return Err((None, "the endpoint was removed".to_owned(), true)) };
    let url = check_url(&hook.url, deny_private).await.map_err(|e| (None, e.problem().detail, true))?;
    let ts = now.unix_timestamp();
    let id = d.id.to_string();
    let sent = client
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", &id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", signature(&hook.secret, &id, ts, &d.payload))
        .body(d.payload.clone())
        .send()
        .await;
    match sent {
        Ok(r) if r.status().is_success() => Ok(i64::from(r.status().as_u16())),
        Ok(r) => Err((Some(i64::from(r.status().as_u16())), format!("the endpoint answered {}", r.status()), false)),
        Err(e) => Err((None, e.to_string(), false)),
    }
}

/// Records an attempt: delivered, failed for good (or after 24 hours of retries), or due again
/// after its backoff.
async fn record(tx: &mut dyn Tx, d: &DeliveryRow, outcome: Attempt, now: OffsetDateTime) -> anyhow::Result<()> {
    match outcome {
        Ok(status) => {
            metrics::counter!("steward_webhooks_total", "outcome" => "delivered").increment(1);
            tx.record_attempt(d.id, Some(status), None, Some(now), None, None).await?;
        }
        Err((status, error, permanent)) => {
            let next = now + time::Duration::seconds(backoff(d.attempts));
            let expired = next - d.created_at > time::Duration::hours(24);
            if permanent || expired {
                metrics::counter!("steward_webhooks_total", "outcome" => "failed").increment(1);
                tx.record_attempt(d.id, status, Some(&error), None, None, Some(now)).await?;
            } else {
                metrics::counter!("steward_webhooks_total", "outcome" => "retry").increment(1);
                tx.record_attempt(d.id, status, Some(&error), None, Some(next), None).await?;
            }
        }
    }
    Ok(())
}

/// Runs the delivery worker, looking for due deliveries every `poll`.
pub async fn run_worker(state: AppState, poll: Duration) {
    let clients = DeliveryClients::default();
    loop {
        match deliver_due(&state, &clients).await {
            Ok(n) if n > 0 => continue,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "webhook worker"),
        }
        tokio::time::sleep(poll).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_follows_the_standard_webhooks_example() {
        // The example of the Standard Webhooks specification.
        let sig = signature(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            r#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[tokio::test]
    async fn urls_are_checked() {
        assert!(check_url("ftp://example.com/x", false).await.is_err());
        assert!(check_url("https://user:pw@example.com/x", false).await.is_err());
        assert!(check_url("http://127.0.0.1:9/hook", false).await.is_ok());
        assert!(check_url("http://127.0.0.1:9/hook", true).await.is_err());
        assert!(check_url("http://[::1]:9/hook", true).await.is_err());
    }
}
