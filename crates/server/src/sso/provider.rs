//! What Steward fetches from identity providers and keeps (OpenID discovery documents and
//! JWKS, fetched again after an hour, an unknown `kid` at most every 30 seconds), and the
//! instance's SSO key that seals client secrets and signs the sign-in state.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use ring::hmac;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use steward_store::Tx;
use time::OffsetDateTime;

use crate::error::{ApiError, ApiResult};
use crate::jwt::{self, PublicKey};

/// Keys and discovery documents are fetched again after this long.
const DOCUMENT_TTL: Duration = Duration::from_secs(3600);
/// An unknown `kid` refetches a JWKS at most this often (a flood of made-up kids must not
/// become a flood of requests to the identity provider).
const DEFAULT_JWKS_COOLDOWN: Duration = Duration::from_secs(30);
/// Documents larger than this are refused.
const MAX_DOCUMENT_BYTES: usize = 512 * 1024;
const KEY_NAME: &str = "sso_key";

struct JwksEntry {
    keys: Arc<Vec<PublicKey>>,
    fetched: Instant,
    attempted: Instant,
}

/// The endpoints an OpenID provider publishes at `/.well-known/openid-configuration`.
#[derive(Debug, Clone, Deserialize)]
pub struct Discovery {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    pub userinfo_endpoint: Option<String>,
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Vec<String>,
}

/// What single sign-on keeps in memory on each node.
pub struct SsoState {
    http: reqwest::Client,
    jwks: tokio::sync::Mutex<HashMap<String, JwksEntry>>,
    discovery: tokio::sync::Mutex<HashMap<String, (Discovery, Instant)>>,
    key: Mutex<Option<Arc<SsoKey>>>,
    jwks_cooldown_ms: AtomicU64,
    /// When each (issuer, subject, reason) refusal was last audited.
    pub(crate) jwt_refusals: Mutex<HashMap<(uuid::Uuid, String, &'static str), Instant>>,
}

impl Default for SsoState {
    fn default() -> Self {
        // No redirects: a provider's https endpoint cannot hand Steward on to plain http or to
        // another host, and every URL Steward calls is one it checked.
        let http = crate::outbound::client("Steward", Duration::from_secs(10), false);
        SsoState {
            http,
            jwks: Default::default(),
            discovery: Default::default(),
            key: Mutex::new(None),
            jwks_cooldown_ms: AtomicU64::new(DEFAULT_JWKS_COOLDOWN.as_millis() as u64),
            jwt_refusals: Mutex::new(HashMap::new()),
        }
    }
}

/// Identity providers must be reached over https, except on loopback hosts (development, tests).
pub fn check_provider_url(url: &str) -> Result<reqwest::Url, String> {
    let parsed = reqwest::Url::parse(url).map_err(|_| "is not a URL".to_owned())?;
    let host = parsed.host_str().ok_or("has no host")?;
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" if loopback => Ok(parsed),
        _ => Err("must use https (http only on loopback hosts)".into()),
    }
}

impl SsoState {
    /// Sets how often an unknown `kid` may refetch a JWKS (tests shorten it).
    pub fn set_jwks_cooldown(&self, cooldown: Duration) {
        self.jwks_cooldown_ms.store(cooldown.as_millis() as u64, Ordering::Relaxed);
    }

    /// The HTTP client for identity providers.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    async fn get_json(&self, url: &str) -> Result<Value, String> {
        check_provider_url(url)?;
        let response = self.http.get(url).send().await.map_err(|e| format!("fetching {url}: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("fetching {url}: HTTP {}", response.status()));
        }
        let bytes = response.bytes().await.map_err(|e| format!("reading {url}: {e}"))?;
        if bytes.len() > MAX_DOCUMENT_BYTES {
            return Err(format!("{url} is larger than {MAX_DOCUMENT_BYTES} bytes"));
        }
        serde_json::from_slice(&bytes).map_err(|_| format!("{url} did not answer JSON"))
    }

    /// The keys published at `url`: cached for an hour, fetched again when `kid` is not among
    /// them (at most once per cooldown), and the last good set kept when a fetch fails.
    pub async fn jwks(&self, url: &str, kid: Option<&str>) -> Result<Arc<Vec<PublicKey>>, String> {
        let cooldown = Duration::from_millis(self.jwks_cooldown_ms.load(Ordering::Relaxed));
        let mut map = self.jwks.lock().await;
        if let Some(entry) = map.get(url) {
            let fresh = entry.fetched.elapsed() < DOCUMENT_TTL;
            let has_kid = kid.is_none_or(|k| entry.keys.iter().any(|key| key.kid.as_deref() == Some(k)));
            if (fresh && has_kid) || entry.attempted.elapsed() < cooldown {
                return Ok(entry.keys.clone());
            }
        }
        let now = Instant::now();
        if let Some(entry) = map.get_mut(url) {
            entry.attempted = now;
        }
        match self.get_json(url).await {
            Ok(doc) => {
                let keys = Arc::new(jwt::parse_jwks(&doc));
                map.insert(url.to_owned(), JwksEntry { keys: keys.clone(), fetched: now, attempted: now });
                Ok(keys)
            }
            Err(e) => match map.get(url) {
                Some(entry) => {
                    tracing::warn!(error = %e, "JWKS refresh failed; keeping the keys fetched before");
                    Ok(entry.keys.clone())
                }
                None => Err(e),
            },
        }
    }

    /// The provider's discovery document, checked to name `issuer` and to use https endpoints.
    pub async fn discover(&self, issuer: &str) -> Result<Discovery, String> {
        let mut map = self.discovery.lock().await;
        if let Some((doc, at)) = map.get(issuer)
            && at.elapsed() < DOCUMENT_TTL
        {
            return Ok(doc.clone());
        }
        let url = format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'));
        // What was fetched is never repeated in an error: it may be anything the URL answered.
        let doc: Discovery = serde_json::from_value(self.get_json(&url).await?)
            .map_err(|_| format!("{url} is not an OpenID Connect discovery document"))?;
        if doc.issuer != issuer {
            return Err(format!("the discovery document at {url} names another issuer than {issuer:?}"));
        }
        let named = [
            ("authorization_endpoint", Some(&doc.authorization_endpoint)),
            ("token_endpoint", Some(&doc.token_endpoint)),
            ("jwks_uri", Some(&doc.jwks_uri)),
            ("userinfo_endpoint", doc.userinfo_endpoint.as_ref()),
        ];
        for (name, endpoint) in named {
            if let Some(endpoint) = endpoint {
                check_provider_url(endpoint).map_err(|e| format!("the discovery document's {name} {e}"))?;
            }
        }
        map.insert(issuer.to_owned(), (doc.clone(), Instant::now()));
        Ok(doc)
    }

    /// Forgets a provider's discovery document (after its connection changed).
    pub async fn forget(&self, issuer: &str) {
        self.discovery.lock().await.remove(issuer);
    }

    /// The instance's SSO key, created in `tx` on first use.
    pub async fn ensure_key(&self, tx: &mut dyn Tx, now: OffsetDateTime) -> ApiResult<Arc<SsoKey>> {
        let mut fresh = [0u8; 32];
        getrandom::fill(&mut fresh).map_err(ApiError::internal)?;
        let stored = tx.ensure_instance_secret(KEY_NAME, &URL_SAFE_NO_PAD.encode(fresh), now).await?;
        SsoKey::from_stored(&stored).map(Arc::new)
    }

    /// The instance's SSO key, if one was ever created (by creating a connection).
    pub async fn key(&self, tx: &mut dyn Tx) -> ApiResult<Option<Arc<SsoKey>>> {
        if let Some(k) = self.key.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            return Ok(Some(k));
        }
        let Some(stored) = tx.instance_secret(KEY_NAME).await? else { return Ok(None) };
        let key = Arc::new(SsoKey::from_stored(&stored)?);
        *self.key.lock().unwrap_or_else(|p| p.into_inner()) = Some(key.clone());
        Ok(Some(key))
    }
}

/// The instance's SSO key: it encrypts client secrets at rest (ChaCha20-Poly1305) and signs the
/// short-lived sign-in state. It is kept in the database, so it protects secrets in exports,
/// logs and API answers, not from someone who holds the whole database.
pub struct SsoKey {
    seal: LessSafeKey,
    mac: hmac::Key,
}

impl SsoKey {
    pub(crate) fn from_stored(stored: &str) -> ApiResult<SsoKey> {
        let root = URL_SAFE_NO_PAD.decode(stored).map_err(ApiError::internal)?;
        let root = hmac::Key::new(hmac::HMAC_SHA256, &root);
        let seal_key = hmac::sign(&root, b"steward sso: seal");
        let mac_key = hmac::sign(&root, b"steward sso: state");
        let unbound = UnboundKey::new(&CHACHA20_POLY1305, seal_key.as_ref()).map_err(ApiError::internal)?;
        Ok(SsoKey { seal: LessSafeKey::new(unbound), mac: hmac::Key::new(hmac::HMAC_SHA256, mac_key.as_ref()) })
    }

    /// Encrypts a secret for storage.
    pub fn seal(&self, secret: &str) -> ApiResult<String> {
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).map_err(ApiError::internal)?;
        let mut data = secret.as_bytes().to_vec();
        self.seal
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(b"client_secret"), &mut data)
            .map_err(ApiError::internal)?;
        let mut out = nonce.to_vec();
        out.extend(data);
        Ok(format!("v1.{}", URL_SAFE_NO_PAD.encode(out)))
    }

    /// Decrypts what [`SsoKey::seal`] sealed.
    pub fn open(&self, sealed: &str) -> ApiResult<String> {
        let bytes = sealed
            .strip_prefix("v1.")
            .and_then(|b| URL_SAFE_NO_PAD.decode(b).ok())
            .filter(|b| b.len() > 12)
            .ok_or_else(|| ApiError::internal("a sealed client secret is malformed"))?;
        let (nonce, data) = bytes.split_at(12);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(ApiError::internal)?;
        let mut data = data.to_vec();
        let plain = self
            .seal
            .open_in_place(nonce, Aad::from(b"client_secret"), &mut data)
            .map_err(|_| ApiError::internal("a sealed client secret does not open with the instance's key"))?;
        String::from_utf8(plain.to_vec()).map_err(ApiError::internal)
    }

    fn mac(&self, label: &str, value: &str) -> String {
        URL_SAFE_NO_PAD.encode(hmac::sign(&self.mac, format!("{label}:{value}").as_bytes()))
    }

    /// The signed sign-in state kept in the browser: connection, state, expiry.
    pub fn sign_state(&self, connection: uuid::Uuid, state: &str, expires: i64) -> String {
        let payload = format!("{connection}.{state}.{expires}");
        let mac = self.mac("state", &payload);
        format!("{payload}.{mac}")
    }

    /// The connection of a signed state that is intact, unexpired and matches `state`.
    pub fn verify_state(&self, cookie: &str, state: &str, now: i64) -> Option<uuid::Uuid> {
        let (payload, mac) = cookie.rsplit_once('.')?;
        let expected = self.mac("state", payload);
        if !bool::from(subtle::ConstantTimeEq::ct_eq(mac.as_bytes(), expected.as_bytes())) {
            return None;
        }
        let mut parts = payload.splitn(3, '.');
        let (connection, sent, expires) = (parts.next()?, parts.next()?, parts.next()?);
        let fresh = expires.parse::<i64>().ok()? > now;
        let same = bool::from(subtle::ConstantTimeEq::ct_eq(sent.as_bytes(), state.as_bytes()));
        (fresh && same).then(|| connection.parse().ok()).flatten()
    }

    /// The OpenID nonce bound to a state.
    pub fn nonce(&self, state: &str) -> String {
        self.mac("nonce", state)
    }

    /// The PKCE verifier bound to a state (43 characters of base64url), and its S256 challenge.
    pub fn pkce(&self, state: &str) -> (String, String) {
        let verifier = self.mac("pkce", state);
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        (verifier, challenge)
    }
}
