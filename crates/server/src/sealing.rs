//! Sealing secrets at rest: ChaCha20-Poly1305 under a 256-bit key, bound to a context that
//! opening must name again.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use sha2::{Digest, Sha256};
use steward_core::UserId;

const SEALED_PREFIX: &str = "v1.";

/// The 256-bit key two-factor secrets are sealed with.
#[derive(Clone)]
pub struct SealingKey([u8; 32]);

impl SealingKey {
    pub(crate) fn derive(material: &str) -> Self {
        SealingKey(Sha256::digest(format!("steward-totp-sealing:{material}").as_bytes()).into())
    }

    /// A key for another purpose, from secret material only its holder can present again.
    pub fn for_purpose(purpose: &str, material: &[u8]) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(format!("steward-{purpose}:").as_bytes());
        hasher.update(material);
        SealingKey(hasher.finalize().into())
    }

    fn aead(&self) -> LessSafeKey {
        LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, &self.0).expect("a 32-byte ChaCha20 key"))
    }

    /// Seals `secret` for `user`.
    pub fn seal(&self, user: UserId, secret: &[u8]) -> String {
        self.seal_bound(user.to_string().as_bytes(), secret)
    }

    /// Opens what [`SealingKey::seal`] sealed for `user`; `None` for another key or user.
    pub fn open(&self, user: UserId, sealed: &str) -> Option<Vec<u8>> {
        self.open_bound(user.to_string().as_bytes(), sealed)
    }

    /// Seals `secret`, bound to `context`, which opening must name again.
    pub fn seal_bound(&self, context: &[u8], secret: &[u8]) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).expect("the operating system's random source failed");
        let mut data = secret.to_vec();
        self.aead()
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(context), &mut data)
            .expect("sealing fits ChaCha20-Poly1305's limits");
        let mut out = nonce.to_vec();
        out.extend(data);
        format!("{SEALED_PREFIX}{}", URL_SAFE_NO_PAD.encode(out))
    }

    /// Opens what [`SealingKey::seal_bound`] sealed with `context`.
    pub fn open_bound(&self, context: &[u8], sealed: &str) -> Option<Vec<u8>> {
        let bytes = URL_SAFE_NO_PAD.decode(sealed.strip_prefix(SEALED_PREFIX)?).ok()?;
        if bytes.len() < NONCE_LEN {
            return None;
        }
        let (nonce, data) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut data = data.to_vec();
        let plain = self.aead().open_in_place(nonce, Aad::from(context), &mut data).ok()?;
        Some(plain.to_vec())
    }
}
