//! JWT authorization from trusted issuers: keys made in the test, a JWKS served from loopback,
//! tokens signed here.

use std::sync::{Arc, Mutex, OnceLock};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256, RsaKeyPair};
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::traits::PublicKeyParts;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};

/// A signing key with its public JWK.
pub enum TestKey {
    Rsa { pair: RsaKeyPair, jwk: Value, pem: String },
    Ed { pair: Ed25519KeyPair, jwk: Value },
}

/// An RSA key as PKCS#8 DER, its modulus and exponent, and its public PEM.
type RsaParts = (Vec<u8>, Vec<u8>, Vec<u8>, String);

fn rsa_pkcs8() -> &'static RsaParts {
    static KEY: OnceLock<RsaParts> = OnceLock::new();
    KEY.get_or_init(|| {
        let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
        let der = key.to_pkcs8_der().unwrap().as_bytes().to_vec();
        let pem = key.to_public_key().to_public_key_pem(LineEnding::LF).unwrap();
        (der, key.n().to_bytes_be(), key.e().to_bytes_be(), pem)
    })
}

impl TestKey {
    pub fn rsa(kid: &str) -> TestKey {
        let (der, n, e, pem) = rsa_pkcs8();
        let pair = RsaKeyPair::from_pkcs8(der).unwrap();
        let jwk = json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
            "n": URL_SAFE_NO_PAD.encode(n), "e": URL_SAFE_NO_PAD.encode(e)});
        TestKey::Rsa { pair, jwk, pem: pem.clone() }
    }

    pub fn ed25519(kid: &str) -> TestKey {
        let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(doc.as_ref()).unwrap();
        let jwk = json!({"kty": "OKP", "crv": "Ed25519", "kid": kid,
            "x": URL_SAFE_NO_PAD.encode(pair.public_key().as_ref())});
        TestKey::Ed { pair, jwk }
    }

    pub fn jwk(&self) -> &Value {
        match self {
            TestKey::Rsa { jwk, .. } | TestKey::Ed { jwk, .. } => jwk,
        }
    }

    /// The Ed25519 public key as SPKI PEM, or the RSA one.
    pub fn pem(&self) -> String {
        match self {
            TestKey::Rsa { pem, .. } => pem.clone(),
            TestKey::Ed { pair, .. } => {
                let mut der = vec![0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];
                der.extend(pair.public_key().as_ref());
                let b64 = base64::engine::general_purpose::STANDARD.encode(der);
                format!("-----BEGIN PUBLIC KEY-----\n{b64}\n-----END PUBLIC KEY-----\n")
            }
        }
    }

    /// A token with this key's own algorithm and kid.
    pub fn sign(&self, claims: &Value) -> String {
        let (alg, kid) = match self {
            TestKey::Rsa { jwk, .. } => ("RS256", jwk["kid"].clone()),
            TestKey::Ed { jwk, .. } => ("EdDSA", jwk["kid"].clone()),
        };
        self.sign_with_header(&json!({"alg": alg, "kid": kid, "typ": "JWT"}), claims)
    }

    pub fn sign_with_header(&self, header: &Value, claims: &Value) -> String {
        let input = format!("{}.{}", b64(header), b64(claims));
        let sig = match self {
            TestKey::Rsa { pair, .. } => {
                let mut sig = vec![0; pair.public().modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), input.as_bytes(), &mut sig).unwrap();
                sig
            }
            TestKey::Ed { pair, .. } => pair.sign(input.as_bytes()).as_ref().to_vec(),
        };
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }
}

pub fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// A JWKS served on loopback, whose keys the test may change.
pub struct Jwks {
    pub url: String,
    pub keys: Arc<Mutex<Vec<Value>>>,
    pub hits: Arc<Mutex<u32>>,
}

pub async fn serve_jwks(keys: Vec<Value>) -> Jwks {
    let shared = Arc::new(Mutex::new(keys));
    let hits = Arc::new(Mutex::new(0));
    let (s, h) = (shared.clone(), hits.clone());
    let app = axum::Router::new().route(
        "/jwks",
        axum::routing::get(move || {
            let (s, h) = (s.clone(), h.clone());
            async move {
                *h.lock().unwrap() += 1;
                axum::Json(json!({ "keys": s.lock().unwrap().clone() }))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Jwks { url: format!("http://{addr}/jwks"), keys: shared, hits }
}

const ISSUER: &str = "http://127.0.0.1/idp";
const AUDIENCE: &str = "steward-api";

fn claims(sub: &str, email: &str) -> Value {
    json!({"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "email": email, "iat": now(), "exp": now() + 300})
}

async fn trust(app: &TestApp, body: Value) -> Value {
    app.post("/api/v1/jwt-issuers", &app.admin, body).await.expect(201)
}

#[tokio::test]
async fn a_token_from_a_trusted_issuer_acts_as_its_user_until_the_user_is_deactivated() {
    let app = spawn_app().await;
    let ada = app.user("ada@acme.test").await;
    let (rsa_key, ed_key) = (TestKey::rsa("r1"), TestKey::ed25519("e1"));
    let jwks = serve_jwks(vec![rsa_key.jwk().clone(), ed_key.jwk().clone()]).await;
    let issuer = trust(&app, json!({"issuer": ISSUER, "audience": AUDIENCE, "jwks_url": jwks.url})).await;
    assert_eq!(issuer["claims"], json!({"subject": "sub", "email": "email"}));

    let rs = rsa_key.sign(&claims("ext-ada", "ada@acme.test"));
    assert_eq!(app.get("/api/v1/me", &rs).await.expect(200)["user"]["id"], ada.as_str());
    let ed = ed_key.sign(&claims("ext-ada", "Ada@ACME.test"));
    assert_eq!(app.get("/api/v1/me", &ed).await.expect(200)["user"]["id"], ada.as_str());
    assert_eq!(*jwks.hits.lock().unwrap(), 1, "the JWKS is cached");

    app.post(&format!("/api/v1/users/{ada}/deactivate"), &app.admin, json!({})).await.expect(200);
    app.get("/api/v1/me", &rs).await.expect_problem(401, "unauthenticated");
    app.get("/api/v1/me", &ed).await.expect_problem(401, "unauthenticated");

    // The refusal is audited against the user, once a minute however often the token comes back.
    for _ in 0..3 {
        app.get("/api/v1/me", &rs).await.expect_problem(401, "unauthenticated");
    }
    let refused = app.audit("&type=jwt.refused").await;
    assert_eq!(refused.len(), 1, "{refused:#?}");
    assert_eq!(refused[0]["target_id"], ada.as_str());
    assert_eq!(refused[0]["detail"]["reason"], "user_inactive");
    assert_eq!(refused[0]["detail"]["jwt_issuer_id"], issuer["id"]);
}

#[tokio::test]
async fn forged_misaddressed_and_stale_tokens_are_refused() {
    let app = spawn_app().await;
    app.user("ada@acme.test").await;
    let key = TestKey::rsa("r1");
    let jwks = serve_jwks(vec![key.jwk().clone()]).await;
    trust(&app, json!({"issuer": ISSUER, "audience": AUDIENCE, "jwks_url": jwks.url})).await;
    let good = claims("ext-ada", "ada@acme.test");
    app.get("/api/v1/me", &key.sign(&good)).await.expect(200);

    let mut refused: Vec<(&str, String)> = Vec::new();
    refused.push(("alg none", format!("{}.{}.", b64(&json!({"alg": "none", "kid": "r1"})), b64(&good))));
    // HMAC keyed with the public key, the classic confusion of an RSA verifier.
    let pem = key.pem();
    let hs_input = format!("{}.{}", b64(&json!({"alg": "HS256", "kid": "r1"})), b64(&good));
    let mac = ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, pem.as_bytes()), hs_input.as_bytes());
    refused.push(("HS256 with the public key", format!("{hs_input}.{}", URL_SAFE_NO_PAD.encode(mac))));
    let mut wrong_aud = good.clone();
    wrong_aud["aud"] = json!("someone-else");
    refused.push(("wrong audience", key.sign(&wrong_aud)));
    let mut wrong_iss = good.clone();
    wrong_iss["iss"] = json!("http://127.0.0.1/other");
    refused.push(("wrong issuer", key.sign(&wrong_iss)));
    let mut expired = good.clone();
    expired["exp"] = json!(now() - 600);
    refused.push(("expired", key.sign(&expired)));
    let mut early = good.clone();
    early["nbf"] = json!(now() + 600);
    refused.push(("not yet valid", key.sign(&early)));
    let signed = key.sign(&good);
    let (h, rest) = signed.split_once('.').unwrap();
    let (_, s) = rest.split_once('.').unwrap();
    let mut tampered_claims = good.clone();
    tampered_claims["sub"] = json!("ext-root");
    refused.push(("tampered payload", format!("{h}.{}.{s}", b64(&tampered_claims))));
    refused.push(("unknown kid", TestKey::ed25519("nobody").sign(&good)));
    let mut unverified = good.clone();
    unverified["email_verified"] = json!(false);
    refused.push(("unverified email", key.sign(&unverified)));
    refused.push(("unknown user", key.sign(&claims("ext-bob", "bob@acme.test"))));

    for (what, token) in refused {
        let reply = app.get("/api/v1/me", &token).await;
        assert_eq!(reply.status.as_u16(), 401, "{what}: {:#}", reply.body);
    }
    // Only authentic tokens that name nobody are audited; forged ones could come from anyone.
    let audited = app.audit("&type=jwt.refused").await;
    let reasons: Vec<&str> = audited.iter().map(|e| e["detail"]["reason"].as_str().unwrap()).collect();
    assert_eq!(reasons, ["unknown_user", "unknown_user"], "{audited:#?}");

    // The same confusion against an issuer trusted by its PEM public key rather than a JWKS.
    const PEM_ISSUER: &str = "http://127.0.0.1/pem-idp";
    trust(&app, json!({"issuer": PEM_ISSUER, "audience": AUDIENCE, "public_key_pem": pem})).await;
    let mut by_pem = good.clone();
    by_pem["iss"] = json!(PEM_ISSUER);
    app.get("/api/v1/me", &key.sign(&by_pem)).await.expect(200);
    let hs_input = format!("{}.{}", b64(&json!({"alg": "HS256", "kid": "r1"})), b64(&by_pem));
    let mac = ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, pem.as_bytes()), hs_input.as_bytes());
    let confused = format!("{hs_input}.{}", URL_SAFE_NO_PAD.encode(mac));
    app.get("/api/v1/me", &confused).await.expect_problem(401, "unauthenticated");
    let none = format!("{}.{}.", b64(&json!({"alg": "none"})), b64(&by_pem));
    app.get("/api/v1/me", &none).await.expect_problem(401, "unauthenticated");
}

#[tokio::test]
async fn a_pem_issuer_creates_unknown_users_just_in_time_and_keeps_their_subject() {
    let app = spawn_app().await;
    let key = TestKey::ed25519("ignored");
    let issuer =
        trust(&app, json!({"issuer": ISSUER, "audience": AUDIENCE, "public_key_pem": key.pem(), "jit": true})).await;
    assert_eq!(issuer["algorithm"], "EdDSA");
    let token = key.sign(&claims("ext-cy", "cy@new.test"));
    let me = app.get("/api/v1/me", &token).await.expect(200);
    assert_eq!(me["user"]["email"], "cy@new.test");
    assert_eq!(me["user"]["status"], "active");
    assert_eq!(me["instance_roles"], json!([]));
    // The subject stays linked when the email at the issuer changes.
    let renamed = key.sign(&claims("ext-cy", "cyril@new.test"));
    assert_eq!(app.get("/api/v1/me", &renamed).await.expect(200)["user"]["id"], me["user"]["id"]);
    let created: Vec<Value> =
        app.audit("&type=user.created").await.into_iter().filter(|e| e["detail"]["jit"] == true).collect();
    assert_eq!(created.len(), 1, "{created:#?}");
    assert_eq!(created[0]["detail"]["method"], "jwt");
    assert_eq!(created[0]["target_id"], me["user"]["id"]);
}

#[tokio::test]
async fn an_unknown_kid_refreshes_the_jwks_at_most_once_per_cooldown() {
    let app = spawn_app().await;
    app.user("ada@acme.test").await;
    let (old, new) = (TestKey::ed25519("old"), TestKey::ed25519("new"));
    let jwks = serve_jwks(vec![old.jwk().clone()]).await;
    trust(&app, json!({"issuer": ISSUER, "audience": AUDIENCE, "jwks_url": jwks.url})).await;
    let good = claims("ext-ada", "ada@acme.test");
    app.get("/api/v1/me", &old.sign(&good)).await.expect(200);
    jwks.keys.lock().unwrap().push(new.jwk().clone());
    // Within the cooldown the new key is not fetched yet.
    app.get("/api/v1/me", &new.sign(&good)).await.expect_problem(401, "unauthenticated");
    assert_eq!(*jwks.hits.lock().unwrap(), 1);
    app.state.sso.set_jwks_cooldown(std::time::Duration::ZERO);
    app.get("/api/v1/me", &new.sign(&good)).await.expect(200);
    assert_eq!(*jwks.hits.lock().unwrap(), 2);
}

#[tokio::test]
async fn issuers_are_managed_by_instance_managers_and_checked_on_the_way_in() {
    let app = spawn_app().await;
    let (_, bob) = app.user_with_session("bob@acme.test").await;
    let key = TestKey::ed25519("k");
    let body = json!({"issuer": ISSUER, "audience": AUDIENCE, "public_key_pem": key.pem()});
    app.post("/api/v1/jwt-issuers", &bob, body.clone()).await.expect_problem(403, "forbidden");
    app.get("/api/v1/jwt-issuers", &bob).await.expect_problem(403, "forbidden");
    let bad = [
        json!({"issuer": "http://idp.example", "audience": "a", "public_key_pem": key.pem()}),
        json!({"issuer": ISSUER, "audience": "a"}),
        json!({"issuer": ISSUER, "audience": "a", "public_key_pem": key.pem(), "jwks_url": "https://idp.example/k"}),
        json!({"issuer": ISSUER, "audience": "a", "public_key_pem": "-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----"}),
        json!({"issuer": ISSUER, "audience": "a", "public_key_pem": key.pem(), "algorithm": "HS256"}),
    ];
    for b in bad {
        app.post("/api/v1/jwt-issuers", &app.admin, b).await.expect_problem(400, "validation_failed");
    }
    let created = trust(&app, body.clone()).await;
    app.post("/api/v1/jwt-issuers", &app.admin, body).await.expect_problem(409, "issuer_exists");
    let list = app.get("/api/v1/jwt-issuers", &app.admin).await.expect(200);
    assert_eq!(list["items"].as_array().unwrap().len(), 1);

    app.user("ada@acme.test").await;
    let token = key.sign(&claims("ext-ada", "ada@acme.test"));
    app.get("/api/v1/me", &token).await.expect(200);
    let id = created["id"].as_str().unwrap();
    app.delete(&format!("/api/v1/jwt-issuers/{id}"), &app.admin).await.expect(204);
    app.get("/api/v1/me", &token).await.expect_problem(401, "unauthenticated");
    app.delete(&format!("/api/v1/jwt-issuers/{id}"), &app.admin).await.expect_problem(404, "not_found");
    let types: Vec<String> = app.audit("").await.iter().map(|e| e["type"].as_str().unwrap().to_owned()).collect();
    assert!(types.contains(&"jwt_issuer.created".to_owned()) && types.contains(&"jwt_issuer.deleted".to_owned()));
}

#[tokio::test]
async fn an_issuer_acts_only_for_its_domains_and_never_as_an_instance_admin_unless_allowed() {
    let app = spawn_app().await;
    let key = TestKey::ed25519("scoped");
    let body = json!({"issuer": ISSUER, "audience": AUDIENCE, "public_key_pem": key.pem(), "jit": true, "domains": ["acme.test"]});
    let issuer = trust(&app, body).await;
    assert_eq!(
        (issuer["domains"].clone(), issuer["allow_instance_roles"].clone()),
        (json!(["acme.test"]), json!(false))
    );
    let ada = app.user("ada@acme.test").await;
    app.user("eve@elsewhere.test").await;
    let root = app.me_id(&app.admin).await;
    let admin = json!({"email": "ops@acme.test", "name": "Ops", "password": crate::helpers::PASSWORD, "instance_roles": ["admin"]});
    let ops = app.post("/api/v1/users", &app.admin, admin).await.expect(201)["id"].as_str().unwrap().to_owned();

    let ada_jwt = key.sign(&claims("s-ada", "ada@acme.test"));
    assert_eq!(app.get("/api/v1/me", &ada_jwt).await.expect(200)["user"]["id"], ada.as_str());
    // A token from an identity provider makes no Steward credential that would outlive it.
    app.post("/api/v1/me/tokens", &ada_jwt, json!({"name": "minted"})).await.expect_problem(403, "forbidden");
    for (sub, email) in
        [("s-eve", "eve@elsewhere.test"), ("s-root", crate::helpers::ADMIN_EMAIL), ("s-new", "new@elsewhere.test")]
    {
        app.get("/api/v1/me", &key.sign(&claims(sub, email))).await.expect_problem(401, "unauthenticated");
    }
    app.get("/api/v1/me", &key.sign(&claims("s-ops", "ops@acme.test"))).await.expect_problem(401, "unauthenticated");
    let refused = app.audit("&type=jwt.refused").await;
    let reason_for = |id: &str| refused.iter().find(|e| e["target_id"] == id).map(|e| e["detail"]["reason"].clone());
    assert_eq!(reason_for(&ops), Some(json!("instance_role")));
    assert_eq!(reason_for(&root), Some(json!("outside_domains")));
    let users = app.get("/api/v1/users?q=new%40elsewhere.test", &app.admin).await.expect(200);
    assert!(users["items"].as_array().unwrap().is_empty(), "no one created outside the domains");

    // Allowing instance admins takes every permission, and then the issuer may act as one.
    let (_, narrow) = {
        let body = json!({"email": "settings@acme.test", "name": "S", "password": crate::helpers::PASSWORD, "instance_roles": ["admin"]});
        let id = app.post("/api/v1/users", &app.admin, body).await.expect(201)["id"].as_str().unwrap().to_owned();
        (id, app.login("settings@acme.test", crate::helpers::PASSWORD).await)
    };
    let other = TestKey::ed25519("trusting");
    let allowing = json!({"issuer": "http://127.0.0.1/other", "audience": AUDIENCE, "public_key_pem": other.pem(), "allow_instance_roles": true});
    app.post("/api/v1/jwt-issuers", &narrow, allowing.clone()).await.expect_problem(403, "forbidden");
    trust(&app, allowing).await;
    let mut c = claims("s-ops", "ops@acme.test");
    c["iss"] = json!("http://127.0.0.1/other");
    assert_eq!(app.get("/api/v1/me", &other.sign(&c)).await.expect(200)["user"]["id"], ops.as_str());
}
