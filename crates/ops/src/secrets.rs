//! Random secrets and the digest they are stored and looked up under.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// What a secret is for; its prefix says so to whoever finds one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretKind {
    /// A login session.
    Session,
    /// A personal API token.
    ApiToken,
    /// A one-time setup link.
    Setup,
    /// A SCIM client's bearer token.
    Scim,
}

impl SecretKind {
    fn prefix(self) -> &'static str {
        match self {
            SecretKind::Session => "stw_s_",
            SecretKind::ApiToken => "stw_t_",
            SecretKind::Setup => "stw_setup_",
            SecretKind::Scim => "stw_scim_",
        }
    }

    /// Which kind a presented secret claims to be.
    pub fn of(secret: &str) -> Option<SecretKind> {
        [SecretKind::Session, SecretKind::ApiToken, SecretKind::Setup, SecretKind::Scim]
            .into_iter()
            .find(|k| secret.starts_with(k.prefix()))
    }
}

/// A new secret: 32 random bytes, base64url, behind the kind's prefix.
pub fn new_secret(kind: SecretKind) -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    format!("{}{}", kind.prefix(), URL_SAFE_NO_PAD.encode(bytes))
}

/// The digest under which a secret is stored and looked up: SHA-256, lower-case hex.
pub fn secret_hash(secret: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(secret.as_bytes());
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    out
}
