//! Two-factor codes: RFC 6238 TOTP (HMAC-SHA-1, 6 digits, 30-second steps, one step of skew
//! either way), base32 secrets, and the replay rule that a step once used is never accepted again.
//! The clock and the random bytes are passed in; nothing here reads either.

use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use subtle::ConstantTimeEq;

/// Seconds per step.
pub const STEP_SECS: i64 = 30;
/// Digits of a code.
pub const DIGITS: u32 = 6;
/// Steps accepted on either side of the current one, for clocks that drift.
pub const SKEW_STEPS: i64 = 1;
/// Bytes of a new secret (160 bits, as RFC 4226 recommends).
pub const SECRET_BYTES: usize = 20;

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// RFC 4648 base32 without padding, as authenticator apps expect secrets.
pub fn base32_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(BASE32[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(BASE32[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// Decodes base32 (case-insensitive, spaces and padding ignored); `None` for other characters.
pub fn base32_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for c in text.chars().filter(|c| *c != ' ' && *c != '=') {
        let c = c.to_ascii_uppercase();
        let value = BASE32.iter().position(|&b| char::from(b) == c)? as u32;
        buffer = (buffer << 5) | value;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(((buffer >> bits) & 0xff) as u8);
        }
    }
    Some(out)
}

/// The step that `unix_secs` falls in.
pub fn step_at(unix_secs: i64) -> i64 {
    unix_secs.div_euclid(STEP_SECS)
}

/// The RFC 4226 HOTP value of `counter`, as `DIGITS` decimal digits.
pub fn hotp(secret: &[u8], counter: u64) -> String {
    let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(&counter.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest[digest.len() - 1] & 0x0f);
    let word = u32::from_be_bytes([digest[offset], digest[offset + 1], digest[offset + 2], digest[offset + 3]]);
    let value = (word & 0x7fff_ffff) % 10u32.pow(DIGITS);
    format!("{value:0width$}", width = DIGITS as usize)
}

/// Whether `code` looks like a TOTP code (six digits) rather than a recovery code.
pub fn looks_like_code(code: &str) -> bool {
    code.len() == DIGITS as usize && code.bytes().all(|b| b.is_ascii_digit())
}

/// The step `code` belongs to, if it is the code of the current step or one step either side and
/// that step is later than `last_used` (so that each code is accepted once only). Every candidate
/// is compared in constant time.
pub fn verify(secret: &[u8], code: &str, unix_secs: i64, last_used: Option<i64>) -> Option<i64> {
    if !looks_like_code(code) {
        return None;
    }
    let now = step_at(unix_secs);
    let mut matched = None;
    for step in (now - SKEW_STEPS)..=(now + SKEW_STEPS) {
        let Ok(counter) = u64::try_from(step) else { continue };
        let equal: bool = hotp(secret, counter).as_bytes().ct_eq(code.as_bytes()).into();
        if equal && last_used.is_none_or(|l| step > l) && matched.is_none() {
            matched = Some(step);
        }
    }
    matched
}

/// The `otpauth://` URI authenticator apps read from the QR code.
pub fn otpauth_uri(issuer: &str, account: &str, secret_b32: &str) -> String {
    let issuer_enc = percent_encode(issuer);
    format!(
        "otpauth://totp/{issuer_enc}:{}?secret={secret_b32}&issuer={issuer_enc}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
        percent_encode(account)
    )
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'@' => char::from(b).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A recovery code in the form users read and type: ten base32 characters in two groups of five.
pub fn recovery_code(random: &[u8; 7]) -> String {
    let text = base32_encode(random).to_ascii_lowercase();
    format!("{}-{}", &text[..5], &text[5..10])
}

/// A typed recovery code as it is hashed: spaces and dashes dropped, lower case.
pub fn normalize_recovery_code(input: &str) -> String {
    input.chars().filter(|c| !c.is_whitespace() && *c != '-').flat_map(char::to_lowercase).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC_SECRET: &[u8] = b"12345678901234567890";

    #[test]
    fn rfc_6238_sha1_vectors_hold_for_the_last_six_digits() {
        // Appendix B of RFC 6238 (eight digits there; the last six are our codes).
        for (t, eight) in [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
        ] {
            assert_eq!(hotp(RFC_SECRET, step_at(t) as u64), eight[2..], "t={t}");
        }
    }

    #[test]
    fn rfc_4226_hotp_vectors() {
        let expected = ["755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583"];
        for (counter, code) in expected.iter().enumerate() {
            assert_eq!(hotp(RFC_SECRET, counter as u64), *code);
        }
    }

    #[test]
    fn one_step_of_skew_either_way_and_no_more() {
        let t = 1_234_567_890;
        let step = step_at(t);
        for (offset, accepted) in [(-2, false), (-1, true), (0, true), (1, true), (2, false)] {
            let code = hotp(RFC_SECRET, (step + offset) as u64);
            assert_eq!(verify(RFC_SECRET, &code, t, None).is_some(), accepted, "offset {offset}");
        }
    }

    #[test]
    fn a_used_step_is_never_accepted_again() {
        let t = 1_234_567_890;
        let code = hotp(RFC_SECRET, step_at(t) as u64);
        let used = verify(RFC_SECRET, &code, t, None).unwrap();
        assert_eq!(verify(RFC_SECRET, &code, t, Some(used)), None);
        // Nor the previous step's code once a later one was used.
        let earlier = hotp(RFC_SECRET, (step_at(t) - 1) as u64);
        assert_eq!(verify(RFC_SECRET, &earlier, t, Some(used)), None);
        let next = hotp(RFC_SECRET, (step_at(t) + 1) as u64);
        assert_eq!(verify(RFC_SECRET, &next, t + 30, Some(used)), Some(used + 1));
    }

    #[test]
    fn base32_round_trips_and_matches_rfc_4648() {
        assert_eq!(base32_encode(b"foobar"), "MZXW6YTBOI");
        assert_eq!(base32_encode(b"f"), "MY");
        assert_eq!(base32_decode("mzxw6ytboi======").unwrap(), b"foobar");
        assert_eq!(base32_decode("MZ!"), None);
        let bytes: Vec<u8> = (0..20).collect();
        assert_eq!(base32_decode(&base32_encode(&bytes)).unwrap(), bytes);
    }

    #[test]
    fn recovery_codes_read_in_two_groups_and_normalize() {
        let code = recovery_code(&[1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(code.len(), 11);
        assert_eq!(code.as_bytes()[5], b'-');
        assert_eq!(normalize_recovery_code(&code.to_uppercase().replace('-', " ")), code.replace('-', ""));
        assert!(!looks_like_code(&code));
        assert!(looks_like_code("012345"));
    }

    #[test]
    fn otpauth_uri_names_issuer_account_and_parameters() {
        let uri = otpauth_uri("Acme Cloud", "ada@acme.example", "JBSWY3DPEHPK3PXP");
        assert_eq!(
            uri,
            "otpauth://totp/Acme%20Cloud:ada@acme.example?secret=JBSWY3DPEHPK3PXP&issuer=Acme%20Cloud&algorithm=SHA1&digits=6&period=30"
        );
    }
}
