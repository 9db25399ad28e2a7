//! Single sign-on machinery: mapping an external identity to a user (link by subject or email,
//! just-in-time creation), the ID token check, JWT authorization of API requests (`bearer`), and
//! what is fetched from identity providers and the instance's SSO key (`provider`). The HTTP
//! handlers live in `routes::sso`, `routes::sso_sign_in` and `routes::jwt_issuers`.

use std::time::Instant;

use serde_json::{Map, Value, json};
use steward_core::{Actor, AuditDraft, Email, PersonName, TargetType, UserStatus};
use steward_store::{JwtIssuerRow, Tx, UserRow};
use time::OffsetDateTime;

use crate::error::{ApiError, ApiResult};
use crate::jwt::{self, JwtError, PublicKey};
use crate::state::AppState;

mod bearer;
pub mod provider;
pub use bearer::jwt_user;
pub use provider::{Discovery, SsoKey, SsoState, check_provider_url};

/// One refusal of an authentic JWT (same issuer, subject and reason) is audited at most this
/// often: a client retrying a refused token must not add an event with every request.
const JWT_REFUSAL_AUDIT_EVERY: std::time::Duration = std::time::Duration::from_secs(60);
/// Past this many remembered refusals, the stale ones are forgotten.
const JWT_REFUSALS_KEPT: usize = 10_000;

/// Who an identity provider says the caller is.
#[derive(Debug, Clone)]
pub struct ExternalIdentity {
    pub issuer: String,
    pub subject: String,
    /// The email, unless the provider said it is not verified.
    pub email: Option<Email>,
    pub name: Option<String>,
}

impl ExternalIdentity {
    /// Reads subject, email and name from verified claims.
    pub fn from_claims(
        issuer: &str,
        claims: &Map<String, Value>,
        subject_claim: &str,
        email_claim: Option<&str>,
        name_claim: &str,
    ) -> Option<ExternalIdentity> {
        let subject = jwt::claim_text(claims, subject_claim)?;
        // Read strictly: a stated value counts only as `true` or "true"; "false", 0 or anything
        // else is not verified. A provider that states nothing is taken at its word.
        let verified = claims
            .get("email_verified")
            .is_none_or(|v| *v == Value::Bool(true) || v.as_str().is_some_and(|s| s.eq_ignore_ascii_case("true")));
        let email = email_claim
            .and_then(|c| jwt::claim_text(claims, c))
            .filter(|_| verified)
            .and_then(|e| Email::parse(&e).ok());
        let name = jwt::claim_text(claims, name_claim);
        Some(ExternalIdentity { issuer: issuer.to_owned(), subject, email, name })
    }
}

/// How the user behind an external identity was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// By the stored (issuer, subject) link.
    Linked,
    /// By email; the link is not stored yet.
    ByEmail,
}

/// The user an external identity maps to: by its linked subject, else by email.
pub async fn find_user(tx: &mut dyn Tx, id: &ExternalIdentity) -> ApiResult<Option<(UserRow, Found)>> {
    if let Some(user_id) = tx.external_identity(&id.issuer, &id.subject).await?
        && let Some(user) = tx.user(user_id).await?
    {
        return Ok(Some((user, Found::Linked)));
    }
    if let Some(email) = &id.email
        && let Some(user) = tx.user_by_email_key(&email.key()).await?
    {
        return Ok(Some((user, Found::ByEmail)));
    }
    Ok(None)
}

/// Creates an active user for an external identity (just-in-time provisioning) and links it.
/// Refused when the identity has no usable email or the email is anyone's, ever.
pub async fn create_jit_user(
    tx: &mut dyn Tx,
    id: &ExternalIdentity,
    detail: Value,
    now: OffsetDateTime,
) -> ApiResult<(UserRow, AuditDraft)> {
    let email = id.email.clone().ok_or_else(|| ApiError::unauthenticated("the identity carries no verified email"))?;
    if steward_ops::users::find_by_email(tx, &email, now).await?.is_some() {
        return Err(ApiError::unauthenticated("the identity's email belongs to another user"));
    }
    let fallback = email.as_str().split('@').next().unwrap_or("user").to_owned();
    let name = id
        .name
        .as_deref()
        .and_then(|n| PersonName::parse(n).ok())
        .or_else(|| PersonName::parse(&fallback).ok())
        .ok_or_else(|| ApiError::unauthenticated("the identity's name is not usable"))?;
    let user = UserRow::new(email.as_str(), email.key(), name.as_str(), UserStatus::Active, now);
    tx.insert_user(&user).await?;
    tx.link_external_identity(&id.issuer, &id.subject, user.id, now).await?;
    let mut facts = json!({ "status": user.status, "instance_roles": user.instance_roles, "jit": true });
    if let (Some(facts), Value::Object(extra)) = (facts.as_object_mut(), detail) {
        facts.extend(extra);
    }
    let event = AuditDraft::new("user.created", Actor::SYSTEM, TargetType::User, user.id)
        .detail(facts)
        .personal(json!({ "email": user.email, "name": user.name }));
    Ok((user, event))
}

/// Password login is refused (401 `sso_required`) for an email whose domain belongs to an
/// enforced connection.
pub async fn password_login_allowed(state: &AppState, email: &Email) -> ApiResult<()> {
    let mut tx = state.store.read().await?;
    let connection = tx.sso_connection_for_domain(email.domain()).await?;
    tx.rollback().await?;
    match connection {
        Some(c) if c.enforced => Err(ApiError::other(
            axum::http::StatusCode::UNAUTHORIZED,
            "sso_required",
            format!("this domain signs in with single sign-on: {}/sso/{}/start", state.public_url, c.id),
        )),
        _ => Ok(()),
    }
}

/// Checks an OpenID Connect ID token: signature with the provider's keys (their algorithm),
/// `iss`, `aud` naming the client (and `azp` when there are several audiences), `exp` with
/// skew, and the `nonce` bound to this sign-in.
pub fn validate_id_token(
    token: &str,
    keys: &[PublicKey],
    issuer: &str,
    client_id: &str,
    nonce: &str,
    now: OffsetDateTime,
) -> Result<Map<String, Value>, JwtError> {
    let claims = jwt::decode(token)?.verify(keys)?;
    jwt::check_claims(&claims, issuer, client_id, now)?;
    if let Some(Value::Array(aud)) = claims.get("aud")
        && aud.len() > 1
        && claims.get("azp").and_then(Value::as_str) != Some(client_id)
    {
        return Err(JwtError::Audience);
    }
    let sent = claims.get("nonce").and_then(Value::as_str).unwrap_or("");
    if !bool::from(subtle::ConstantTimeEq::ct_eq(sent.as_bytes(), nonce.as_bytes())) || nonce.is_empty() {
        return Err(JwtError::Claim);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use ring::rand::SystemRandom;

    use super::*;
    use ring::signature::{Ed25519KeyPair, KeyPair};

    #[test]
    fn an_email_counts_as_verified_only_when_the_claim_says_true() {
        let with = |verified: Option<Value>| {
            let mut claims = Map::new();
            claims.insert("sub".into(), json!("s1"));
            claims.insert("email".into(), json!("ada@acme.test"));
            if let Some(v) = verified {
                claims.insert("email_verified".into(), v);
            }
            ExternalIdentity::from_claims("https://idp.test", &claims, "sub", Some("email"), "name").unwrap().email
        };
        for yes in [None, Some(json!(true)), Some(json!("true")), Some(json!("TRUE"))] {
            assert!(with(yes.clone()).is_some(), "{yes:?}");
        }
        for no in
            [json!(false), json!("false"), json!(0), json!(1), json!("yes"), json!(null), json!([true]), json!({})]
        {
            assert!(with(Some(no.clone())).is_none(), "{no:?}");
        }
    }

    fn key(kid: &str) -> (Ed25519KeyPair, PublicKey) {
        let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(doc.as_ref()).unwrap();
        let jwk = json!({"kty": "OKP", "crv": "Ed25519", "kid": kid,
            "x": URL_SAFE_NO_PAD.encode(pair.public_key().as_ref())});
        (pair, PublicKey::from_jwk(&jwk).unwrap())
    }

    fn sign(pair: &Ed25519KeyPair, kid: &str, claims: &Value) -> String {
        let enc = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
        let input = format!("{}.{}", enc(&json!({"alg": "EdDSA", "kid": kid})), enc(claims));
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(pair.sign(input.as_bytes()).as_ref()))
    }

    #[test]
    fn id_tokens_are_checked_for_signature_audience_expiry_key_and_nonce() {
        let (pair, public) = key("k1");
        let keys = [public];
        let now = OffsetDateTime::now_utc();
        let t = now.unix_timestamp();
        let good = json!({"iss": "https://idp", "aud": "client", "sub": "s", "nonce": "n", "exp": t + 300, "iat": t});
        let check = |token: &str| validate_id_token(token, &keys, "https://idp", "client", "n", now);
        assert!(check(&sign(&pair, "k1", &good)).is_ok());

        let mut wrong_aud = good.clone();
        wrong_aud["aud"] = json!("other");
        assert_eq!(check(&sign(&pair, "k1", &wrong_aud)), Err(JwtError::Audience));
        let mut several = good.clone();
        several["aud"] = json!(["client", "other"]);
        assert_eq!(check(&sign(&pair, "k1", &several)), Err(JwtError::Audience), "no azp");
        several["azp"] = json!("client");
        assert!(check(&sign(&pair, "k1", &several)).is_ok());
        let mut expired = good.clone();
        expired["exp"] = json!(t - 600);
        assert_eq!(check(&sign(&pair, "k1", &expired)), Err(JwtError::Expired));
        let mut replayed = good.clone();
        replayed["nonce"] = json!("another sign-in");
        assert_eq!(check(&sign(&pair, "k1", &replayed)), Err(JwtError::Claim));
        let (stranger, _) = key("k2");
        assert_eq!(check(&sign(&stranger, "k2", &good)), Err(JwtError::UnknownKey));
        assert_eq!(check(&sign(&stranger, "k1", &good)), Err(JwtError::Signature));
        let token = sign(&pair, "k1", &good);
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let mut tampered = good.clone();
        tampered["sub"] = json!("admin");
        parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&tampered).unwrap());
        assert_eq!(check(&parts.join(".")), Err(JwtError::Signature));
    }

    #[test]
    fn sealed_secrets_and_signed_states_hold_only_with_the_key() {
        let key = SsoKey::from_stored(&URL_SAFE_NO_PAD.encode([7u8; 32])).unwrap();
        let other = SsoKey::from_stored(&URL_SAFE_NO_PAD.encode([8u8; 32])).unwrap();
        let sealed = key.seal("client secret").unwrap();
        assert!(!sealed.contains("client secret"));
        assert_ne!(sealed, key.seal("client secret").unwrap(), "a fresh nonce each time");
        assert_eq!(key.open(&sealed).unwrap(), "client secret");
        assert!(other.open(&sealed).is_err());

        let id = uuid::Uuid::now_v7();
        let cookie = key.sign_state(id, "st", 2000);
        assert_eq!(key.verify_state(&cookie, "st", 1000), Some(id));
        assert_eq!(key.verify_state(&cookie, "st", 3000), None, "expired");
        assert_eq!(key.verify_state(&cookie, "other", 1000), None, "another sign-in's state");
        assert_eq!(other.verify_state(&cookie, "st", 1000), None, "signed with another key");
        assert_eq!(key.verify_state(&cookie.replace("2000", "9999"), "st", 1000), None, "tampered");
        let (verifier, challenge) = key.pkce("st");
        assert_eq!(verifier.len(), 43);
        assert_ne!(verifier, challenge);
        assert_ne!(key.nonce("st"), key.nonce("st2"));
    }
}
