//! JSON Web Tokens (RFC 7519) signed with keys Steward trusts: compact parsing, public keys from
//! PEM or a JWKS, signature checks with the algorithm the key fixes — never the one the token
//! asks for, so `none` and HMAC keyed with a public key never pass — and the registered claims.
//! Which issuers are trusted, and whom a token names, is `sso`'s business.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde_json::{Map, Value};
use time::OffsetDateTime;

/// Longer tokens are refused before any decoding.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// The clock skew allowed on `exp`, `nbf` and `iat`, in seconds.
pub const SKEW_SECS: i64 = 60;

/// A signature algorithm, fixed by the key that verifies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    Rs256,
    Rs384,
    Rs512,
    Ps256,
    Ps384,
    Ps512,
    Es256,
    Es384,
    EdDsa,
}

impl Alg {
    /// The `alg` header values meaning this algorithm.
    fn names(self) -> &'static [&'static str] {
        match self {
            Alg::Rs256 => &["RS256"],
            Alg::Rs384 => &["RS384"],
            Alg::Rs512 => &["RS512"],
            Alg::Ps256 => &["PS256"],
            Alg::Ps384 => &["PS384"],
            Alg::Ps512 => &["PS512"],
            Alg::Es256 => &["ES256"],
            Alg::Es384 => &["ES384"],
            Alg::EdDsa => &["EdDSA", "Ed25519"],
        }
    }

    /// The registered name.
    pub fn name(self) -> &'static str {
        self.names()[0]
    }

    fn rsa(name: &str) -> Option<Alg> {
        [Alg::Rs256, Alg::Rs384, Alg::Rs512, Alg::Ps256, Alg::Ps384, Alg::Ps512]
            .into_iter()
            .find(|a| a.names().contains(&name))
    }
}

#[derive(Debug, Clone)]
enum Material {
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    Ed25519(Vec<u8>),
    /// An uncompressed point.
    Ec(Vec<u8>),
}

/// A public key with the one algorithm it verifies.
#[derive(Debug, Clone)]
pub struct PublicKey {
    /// The JWKS `kid`, if any.
    pub kid: Option<String>,
    /// The algorithm this key verifies.
    pub alg: Alg,
    material: Material,
}

fn strip_zeros(bytes: &[u8]) -> Vec<u8> {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len().saturating_sub(1));
    bytes[start..].to_vec()
}

/// One DER element: (tag, contents, what follows).
fn der(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];
const OID_EC: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];

/// `RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }`.
fn rsa_from_pkcs1(der_bytes: &[u8]) -> Option<Material> {
    let (0x30, seq, _) = der(der_bytes)? else { return None };
    let (0x02, n, rest) = der(seq)? else { return None };
    let (0x02, e, _) = der(rest)? else { return None };
    Some(Material::Rsa { n: strip_zeros(n), e: strip_zeros(e) })
}

fn from_spki(der_bytes: &[u8]) -> Option<(Alg, Material)> {
    let (0x30, spki, _) = der(der_bytes)? else { return None };
    let (0x30, alg_id, rest) = der(spki)? else { return None };
    let (0x03, bits, _) = der(rest)? else { return None };
    let (&unused, key) = bits.split_first()?;
    if unused != 0 {
        return None;
    }
    let (0x06, oid, params) = der(alg_id)? else { return None };
    match oid {
        OID_RSA => Some((Alg::Rs256, rsa_from_pkcs1(key)?)),
        OID_ED25519 if key.len() == 32 => Some((Alg::EdDsa, Material::Ed25519(key.to_vec()))),
        OID_EC => {
            let (0x06, curve, _) = der(params)? else { return None };
            let alg = match curve {
                OID_P256 => Alg::Es256,
                OID_P384 => Alg::Es384,
                _ => return None,
            };
            Some((alg, Material::Ec(key.to_vec())))
        }
        _ => None,
    }
}

fn b64url(value: Option<&Value>) -> Result<Vec<u8>, String> {
    let text = value.and_then(Value::as_str).ok_or("a key parameter is missing")?;
    URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).map_err(|_| "a key parameter is not base64url".to_owned())
}

impl PublicKey {
    /// A key from PEM: `PUBLIC KEY` (SPKI: RSA, Ed25519, P-256, P-384) or `RSA PUBLIC KEY`.
    /// RSA keys verify RS256.
    pub fn from_pem(pem: &str) -> Result<PublicKey, String> {
        let pem = pem.trim();
        let (label, body) = pem
            .strip_prefix("-----BEGIN ")
            .and_then(|rest| rest.split_once("-----"))
            .ok_or("is not a PEM public key")?;
        let end = format!("-----END {label}-----");
        let body = body.trim().strip_suffix(end.as_str()).ok_or("is not a PEM public key")?;
        let text: String = body.chars().filter(|c| !c.is_whitespace()).collect();
        let bytes = STANDARD.decode(text).map_err(|_| "holds invalid base64")?;
        let (alg, material) = match label {
            "PUBLIC KEY" => from_spki(&bytes).ok_or("is not an RSA, Ed25519, P-256 or P-384 public key")?,
            "RSA PUBLIC KEY" => (Alg::Rs256, rsa_from_pkcs1(&bytes).ok_or("is not an RSA public key")?),
            _ => return Err("must be a PUBLIC KEY or RSA PUBLIC KEY (never a private key)".into()),
        };
        Ok(PublicKey { kid: None, alg, material })
    }

    /// A key from one JWK. Symmetric (`oct`) and encryption keys are refused.
    pub fn from_jwk(jwk: &Value) -> Result<PublicKey, String> {
        let kid = jwk.get("kid").and_then(Value::as_str).map(str::to_owned);
        if jwk.get("use").and_then(Value::as_str).is_some_and(|u| u != "sig") {
            return Err("not a signing key".into());
        }
        let declared = jwk.get("alg").and_then(Value::as_str);
        let (alg, material) = match jwk.get("kty").and_then(Value::as_str) {
            Some("RSA") => {
                let alg = match declared {
                    None => Alg::Rs256,
                    Some(name) => Alg::rsa(name).ok_or_else(|| format!("RSA key for unsupported alg {name}"))?,
                };
                let (n, e) = (b64url(jwk.get("n"))?, b64url(jwk.get("e"))?);
                (alg, Material::Rsa { n: strip_zeros(&n), e: strip_zeros(&e) })
            }
            Some("OKP") if jwk.get("crv").and_then(Value::as_str) == Some("Ed25519") => {
                let x = b64url(jwk.get("x"))?;
                if x.len() != 32 {
                    return Err("Ed25519 key of the wrong length".into());
                }
                (Alg::EdDsa, Material::Ed25519(x))
            }
            Some("EC") => {
                let (alg, size) = match jwk.get("crv").and_then(Value::as_str) {
                    Some("P-256") => (Alg::Es256, 32),
                    Some("P-384") => (Alg::Es384, 48),
                    _ => return Err("unsupported curve".into()),
                };
                let (x, y) = (b64url(jwk.get("x"))?, b64url(jwk.get("y"))?);
                if x.len() != size || y.len() != size {
                    return Err("EC key of the wrong length".into());
                }
                let mut point = vec![4u8];
                point.extend(x);
                point.extend(y);
                (alg, Material::Ec(point))
            }
            _ => return Err("unsupported key type".into()),
        };
        if let Some(name) = declared
            && !alg.names().contains(&name)
        {
            return Err(format!("key declares alg {name}, which its type cannot verify"));
        }
        Ok(PublicKey { kid, alg, material })
    }

    fn verify(&self, message: &[u8], sig: &[u8]) -> bool {
        match &self.material {
            Material::Rsa { n, e } => {
                let params = match self.alg {
                    Alg::Rs256 => &signature::RSA_PKCS1_2048_8192_SHA256,
                    Alg::Rs384 => &signature::RSA_PKCS1_2048_8192_SHA384,
                    Alg::Rs512 => &signature::RSA_PKCS1_2048_8192_SHA512,
                    Alg::Ps256 => &signature::RSA_PSS_2048_8192_SHA256,
                    Alg::Ps384 => &signature::RSA_PSS_2048_8192_SHA384,
                    Alg::Ps512 => &signature::RSA_PSS_2048_8192_SHA512,
                    _ => return false,
                };
                RsaPublicKeyComponents { n: n.as_slice(), e: e.as_slice() }.verify(params, message, sig).is_ok()
            }
            Material::Ed25519(x) => UnparsedPublicKey::new(&signature::ED25519, x).verify(message, sig).is_ok(),
            Material::Ec(point) => {
                let alg = match self.alg {
                    Alg::Es256 => &signature::ECDSA_P256_SHA256_FIXED,
                    Alg::Es384 => &signature::ECDSA_P384_SHA384_FIXED,
                    _ => return false,
                };
                UnparsedPublicKey::new(alg, point).verify(message, sig).is_ok()
            }
        }
    }
}

/// The usable signing keys of a JWKS document; keys Steward cannot use are left out.
pub fn parse_jwks(doc: &Value) -> Vec<PublicKey> {
    doc.get("keys")
        .and_then(Value::as_array)
        .map(|keys| keys.iter().filter_map(|k| PublicKey::from_jwk(k).ok()).collect())
        .unwrap_or_default()
}

/// Why a token was refused (for logs and audit; callers answer a plain 401).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("the token is malformed")]
    Malformed,
    #[error("no trusted key has the token's kid")]
    UnknownKey,
    #[error("the token's alg is not the one its key verifies")]
    Algorithm,
    #[error("the signature does not verify")]
    Signature,
    #[error("the token's issuer is not the expected one")]
    Issuer,
    #[error("the token's audience is not the expected one")]
    Audience,
    #[error("the token has expired or has no exp")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("a required claim is missing or wrong")]
    Claim,
}

impl JwtError {
    /// A stable word for audit details.
    pub fn reason(self) -> &'static str {
        match self {
            JwtError::Malformed => "malformed",
            JwtError::UnknownKey => "unknown_key",
            JwtError::Algorithm => "algorithm",
            JwtError::Signature => "signature",
            JwtError::Issuer => "issuer",
            JwtError::Audience => "audience",
            JwtError::Expired => "expired",
            JwtError::NotYetValid => "not_yet_valid",
            JwtError::Claim => "claim",
        }
    }
}

/// Whether a bearer credential has the shape of a JWT (three base64url parts, a JSON header)
/// rather than one of Steward's own `stw_` secrets.
pub fn looks_like_jwt(credential: &str) -> bool {
    let parts: Vec<&str> = credential.split('.').collect();
    credential.starts_with("eyJ")
        && parts.len() == 3
        && parts[..2].iter().all(|p| !p.is_empty())
        && parts.iter().all(|p| p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
}

/// A token decoded but not yet trusted.
#[derive(Debug, Clone)]
pub struct Unverified {
    header: Map<String, Value>,
    claims: Map<String, Value>,
    signing_input: String,
    signature: Vec<u8>,
}

fn json_part(part: &str) -> Result<Map<String, Value>, JwtError> {
    let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| JwtError::Malformed)?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(JwtError::Malformed),
    }
}

/// Splits and decodes a compact JWS; nothing in it is trusted yet.
pub fn decode(token: &str) -> Result<Unverified, JwtError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(JwtError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(JwtError::Malformed);
    };
    let header = json_part(h)?;
    let claims = json_part(p)?;
    let signature = URL_SAFE_NO_PAD.decode(s).map_err(|_| JwtError::Malformed)?;
    // Extensions Steward does not understand must not be ignored (RFC 7515 §4.1.11).
    if header.contains_key("crit") {
        return Err(JwtError::Malformed);
    }
    Ok(Unverified { header, claims, signing_input: format!("{h}.{p}"), signature })
}

impl Unverified {
    /// The `iss` the token claims, to find which issuer's keys to try.
    pub fn issuer(&self) -> Option<&str> {
        self.claims.get("iss").and_then(Value::as_str)
    }

    /// The `kid` of the header.
    pub fn kid(&self) -> Option<&str> {
        self.header.get("kid").and_then(Value::as_str)
    }

    /// Checks the signature with the key named by `kid` (or, without one, each key), using
    /// that key's own algorithm; returns the claims.
    pub fn verify(self, keys: &[PublicKey]) -> Result<Map<String, Value>, JwtError> {
        let alg = self.header.get("alg").and_then(Value::as_str).ok_or(JwtError::Malformed)?;
        let mut candidates: Vec<&PublicKey> = match self.kid() {
            Some(kid) => keys.iter().filter(|k| k.kid.as_deref() == Some(kid)).collect(),
            None => keys.iter().collect(),
        };
        if candidates.is_empty() {
            // A key configured without a kid (PEM) answers for any kid.
            candidates = keys.iter().filter(|k| k.kid.is_none()).collect();
        }
        if candidates.is_empty() {
            return Err(JwtError::UnknownKey);
        }
        candidates.retain(|k| k.alg.names().contains(&alg));
        if candidates.is_empty() {
            return Err(JwtError::Algorithm);
        }
        if candidates.iter().any(|k| k.verify(self.signing_input.as_bytes(), &self.signature)) {
            Ok(self.claims)
        } else {
            Err(JwtError::Signature)
        }
    }
}

fn number(claims: &Map<String, Value>, name: &str) -> Result<Option<i64>, JwtError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_f64().map(|f| Some(f as i64)).ok_or(JwtError::Claim),
    }
}

/// Checks `iss`, `aud` (a string or an array naming `audience`), `exp` (required), `nbf` and
/// `iat`, with [`SKEW_SECS`] of skew.
pub fn check_claims(
    claims: &Map<String, Value>,
    issuer: &str,
    audience: &str,
    now: OffsetDateTime,
) -> Result<(), JwtError> {
    if claims.get("iss").and_then(Value::as_str) != Some(issuer) {
        return Err(JwtError::Issuer);
    }
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => a == audience,
        Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(audience)),
        _ => false,
    };
    if !aud_ok {
        return Err(JwtError::Audience);
    }
    let now = now.unix_timestamp();
    match number(claims, "exp")? {
        Some(exp) if now < exp.saturating_add(SKEW_SECS) => {}
        _ => return Err(JwtError::Expired),
    }
    if number(claims, "nbf")?.is_some_and(|nbf| now.saturating_add(SKEW_SECS) < nbf) {
        return Err(JwtError::NotYetValid);
    }
    if number(claims, "iat")?.is_some_and(|iat| now.saturating_add(SKEW_SECS) < iat) {
        return Err(JwtError::NotYetValid);
    }
    Ok(())
}

/// A claim as text: strings as they are, numbers written out (some issuers use numeric ids).
pub fn claim_text(claims: &Map<String, Value>, name: &str) -> Option<String> {
    match claims.get(name)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{Ed25519KeyPair, KeyPair};

    fn encode(v: &Value) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
    }

    fn ed25519() -> (Ed25519KeyPair, PublicKey) {
        let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(doc.as_ref()).unwrap();
        let jwk = serde_json::json!({"kty": "OKP", "crv": "Ed25519", "kid": "k1",
            "x": URL_SAFE_NO_PAD.encode(pair.public_key().as_ref())});
        let key = PublicKey::from_jwk(&jwk).unwrap();
        (pair, key)
    }

    fn sign(pair: &Ed25519KeyPair, header: &Value, claims: &Value) -> String {
        let input = format!("{}.{}", encode(header), encode(claims));
        let sig = pair.sign(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    }

    #[test]
    fn a_signed_token_verifies_and_a_tampered_one_does_not() {
        let (pair, key) = ed25519();
        let token = sign(&pair, &serde_json::json!({"alg": "EdDSA", "kid": "k1"}), &serde_json::json!({"sub": "a"}));
        assert!(looks_like_jwt(&token));
        let claims = decode(&token).unwrap().verify(std::slice::from_ref(&key)).unwrap();
        assert_eq!(claims["sub"], "a");
        let (h, rest) = token.split_once('.').unwrap();
        let (_, s) = rest.split_once('.').unwrap();
        let forged = format!("{h}.{}.{s}", encode(&serde_json::json!({"sub": "b"})));
        assert_eq!(decode(&forged).unwrap().verify(&[key]).unwrap_err(), JwtError::Signature);
    }

    #[test]
    fn the_algorithm_is_the_keys_never_the_tokens() {
        let (pair, key) = ed25519();
        let claims = serde_json::json!({"sub": "a"});
        let none = format!("{}.{}.", encode(&serde_json::json!({"alg": "none", "kid": "k1"})), encode(&claims));
        assert_eq!(decode(&none).unwrap().verify(std::slice::from_ref(&key)).unwrap_err(), JwtError::Algorithm);
        let hs = sign(&pair, &serde_json::json!({"alg": "HS256", "kid": "k1"}), &claims);
        assert_eq!(decode(&hs).unwrap().verify(std::slice::from_ref(&key)).unwrap_err(), JwtError::Algorithm);
        let other = sign(&pair, &serde_json::json!({"alg": "EdDSA", "kid": "k2"}), &claims);
        assert_eq!(decode(&other).unwrap().verify(&[key]).unwrap_err(), JwtError::UnknownKey);
    }

    #[test]
    fn claims_are_checked_with_skew() {
        let now = OffsetDateTime::now_utc();
        let t = now.unix_timestamp();
        let ok = serde_json::json!({"iss": "https://idp", "aud": ["x", "api"], "exp": t + 10});
        let ok = ok.as_object().unwrap();
        assert_eq!(check_claims(ok, "https://idp", "api", now), Ok(()));
        assert_eq!(check_claims(ok, "https://other", "api", now), Err(JwtError::Issuer));
        assert_eq!(check_claims(ok, "https://idp", "nope", now), Err(JwtError::Audience));
        let late = serde_json::json!({"iss": "i", "aud": "a", "exp": t - 30});
        assert_eq!(check_claims(late.as_object().unwrap(), "i", "a", now), Ok(()), "within the skew");
        let expired = serde_json::json!({"iss": "i", "aud": "a", "exp": t - 120});
        assert_eq!(check_claims(expired.as_object().unwrap(), "i", "a", now), Err(JwtError::Expired));
        let no_exp = serde_json::json!({"iss": "i", "aud": "a"});
        assert_eq!(check_claims(no_exp.as_object().unwrap(), "i", "a", now), Err(JwtError::Expired));
        let early = serde_json::json!({"iss": "i", "aud": "a", "exp": t + 900, "nbf": t + 600});
        assert_eq!(check_claims(early.as_object().unwrap(), "i", "a", now), Err(JwtError::NotYetValid));
    }

    #[test]
    fn es256_keys_from_a_jwks_verify_their_own_algorithm_only() {
        use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
        let rng = SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref(), &rng).unwrap();
        let point = pair.public_key().as_ref();
        let jwks = serde_json::json!({"keys": [
            {"kty": "EC", "crv": "P-256", "kid": "ec", "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
             "y": URL_SAFE_NO_PAD.encode(&point[33..])},
            {"kty": "oct", "kid": "hs", "k": "c2VjcmV0"},
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"},
        ]});
        let keys = parse_jwks(&jwks);
        assert_eq!(keys.len(), 1, "symmetric and encryption keys are left out");
        assert_eq!(keys[0].alg, Alg::Es256);
        let claims = serde_json::json!({"sub": "a"});
        let input = format!("{}.{}", encode(&serde_json::json!({"alg": "ES256", "kid": "ec"})), encode(&claims));
        let sig = pair.sign(&rng, input.as_bytes()).unwrap();
        let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()));
        assert!(decode(&token).unwrap().verify(&keys).is_ok());
        let relabelled = format!(
            "{}.{}.{}",
            encode(&serde_json::json!({"alg": "ES384", "kid": "ec"})),
            encode(&claims),
            token.rsplit('.').next().unwrap()
        );
        assert_eq!(decode(&relabelled).unwrap().verify(&keys).unwrap_err(), JwtError::Algorithm);
    }

    /// `cargo test -p steward --release --lib -- --ignored --nocapture jwt::tests::cost`
    #[test]
    #[ignore = "a measurement, not a check"]
    fn cost_of_verifying() {
        use rsa::pkcs8::EncodePrivateKey;
        use rsa::traits::PublicKeyParts;
        let rsa_key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
        let der = rsa_key.to_pkcs8_der().unwrap();
        let pair = ring::signature::RsaKeyPair::from_pkcs8(der.as_bytes()).unwrap();
        let jwk = serde_json::json!({"kty": "RSA", "kid": "r", "n": URL_SAFE_NO_PAD.encode(rsa_key.n().to_bytes_be()),
            "e": URL_SAFE_NO_PAD.encode(rsa_key.e().to_bytes_be())});
        let rsa_public = PublicKey::from_jwk(&jwk).unwrap();
        let claims = serde_json::json!({"iss": "https://idp", "aud": "api", "sub": "s", "exp": 4_000_000_000_i64});
        let input = format!("{}.{}", encode(&serde_json::json!({"alg": "RS256", "kid": "r"})), encode(&claims));
        let mut sig = vec![0; pair.public().modulus_len()];
        pair.sign(&ring::signature::RSA_PKCS1_SHA256, &SystemRandom::new(), input.as_bytes(), &mut sig).unwrap();
        let rs256 = format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig));
        let (ed_pair, ed_public) = ed25519();
        let eddsa = sign(&ed_pair, &serde_json::json!({"alg": "EdDSA", "kid": "k1"}), &claims);
        for (name, token, key) in [("RS256 (2048)", &rs256, &rsa_public), ("EdDSA", &eddsa, &ed_public)] {
            let n = 2000;
            let started = std::time::Instant::now();
            for _ in 0..n {
                let claims = decode(token).unwrap().verify(std::slice::from_ref(key)).unwrap();
                check_claims(&claims, "https://idp", "api", OffsetDateTime::now_utc()).unwrap();
            }
            println!(
                "{name}: {:.1} µs per decode + verify + claims",
                started.elapsed().as_secs_f64() * 1e6 / f64::from(n)
            );
        }
    }

    #[test]
    fn pem_keys_parse_and_private_keys_are_refused() {
        let (_, key) = ed25519();
        let Material::Ed25519(x) = &key.material else { panic!() };
        let mut der_bytes = vec![0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];
        der_bytes.extend(x);
        let pem = format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", STANDARD.encode(&der_bytes));
        let parsed = PublicKey::from_pem(&pem).unwrap();
        assert_eq!(parsed.alg, Alg::EdDsa);
        let private = pem.replace("PUBLIC KEY", "PRIVATE KEY");
        assert!(PublicKey::from_pem(&private).is_err());
        assert!(PublicKey::from_jwk(&serde_json::json!({"kty": "oct", "k": "c2VjcmV0"})).is_err());
    }
}
