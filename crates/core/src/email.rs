//! `Email`: a parsed address, trimmed, with its domain lower-cased, compared case-insensitively.

use std::fmt;

use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;

use crate::DomainError;

/// An email address that has been checked; holding one means it is well formed.
///
/// The local part keeps the case it was given (some mail servers honour it), the domain is
/// lower-cased, and two addresses are equal when they match ignoring case, which is also what
/// [`Email::key`] gives for uniqueness in storage.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct Email(String);

const MAX_LEN: usize = 254;
const MAX_LOCAL: usize = 64;
const MAX_LABEL: usize = 63;

impl Email {
    /// Parses an address as typed by a person or sent by an identity provider. It is taken in
    /// Unicode's compatibility form (NFKC), so that `ｏwner@…` (full-width) is `owner@…`, and a
    /// local part or domain label that mixes scripts (a Cyrillic `о` among Latin letters) is refused:
    /// look-alikes cannot become separate accounts.
    pub fn parse(input: &str) -> Result<Self, DomainError> {
        let bad = |message: &str| DomainError::invalid("email", message);
        let normalized: String = input.trim().nfkc().collect();
        let s = normalized.trim();
        if s.is_empty() {
            return Err(bad("is empty"));
        }
        if s.len() > MAX_LEN {
            return Err(bad("is longer than 254 characters"));
        }
        let (local, domain) = s.rsplit_once('@').ok_or_else(|| bad("has no @"))?;
        if local.is_empty() || local.len() > MAX_LOCAL {
            return Err(bad("needs a local part of 1 to 64 characters before the @"));
        }
        if local.contains('@') || local.starts_with('.') || local.ends_with('.') || local.contains("..") {
            return Err(bad("has a malformed local part"));
        }
        let local_ok =
            local.chars().all(|c| c.is_alphanumeric() || (c.is_ascii_punctuation() && !"\"(),:;<>[\\]".contains(c)));
        if !local_ok {
            return Err(bad("has a character that is not allowed in the local part"));
        }
        // Per label: an internationalized name under a Latin top-level domain is one script each.
        if mixes_scripts(local) || domain.split('.').any(mixes_scripts) {
            return Err(bad("mixes letters of different scripts, as look-alike addresses do"));
        }
        let domain = domain.to_lowercase();
        let labels: Vec<&str> = domain.split('.').collect();
        if labels.len() < 2 {
            return Err(bad("needs a domain with a dot"));
        }
        for label in &labels {
            let ok = !label.is_empty()
                && label.len() <= MAX_LABEL
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_alphanumeric() || c == '-');
            if !ok {
                return Err(bad("has a malformed domain"));
            }
        }
        Ok(Self(format!("{local}@{domain}")))
    }

    /// The address as stored and shown.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The case-insensitive key that makes an address unique across all users.
    pub fn key(&self) -> String {
        self.0.to_lowercase()
    }

    /// The domain part, lower-cased.
    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map_or("", |(_, d)| d)
    }
}

/// The writing systems letters are told apart by; digits, punctuation and symbols belong to none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Script {
    Latin,
    Greek,
    Cyrillic,
    Armenian,
    Hebrew,
    Arabic,
    /// Chinese, Japanese and Korean, which mix among themselves.
    Cjk,
    /// Any other alphabetic block, by its 128-character block.
    Other(u32),
}

fn script(c: char) -> Option<Script> {
    if !c.is_alphabetic() {
        return None;
    }
    let n = c as u32;
    Some(match n {
        0x0041..=0x024F | 0x0250..=0x02AF | 0x1D00..=0x1DBF | 0x1E00..=0x1EFF | 0x2C60..=0x2C7F | 0xA720..=0xA7FF => {
            Script::Latin
        }
        0x0370..=0x03FF | 0x1F00..=0x1FFF => Script::Greek,
        0x0400..=0x052F | 0x1C80..=0x1C8F | 0x2DE0..=0x2DFF | 0xA640..=0xA69F => Script::Cyrillic,
        0x0530..=0x058F => Script::Armenian,
        0x0590..=0x05FF => Script::Hebrew,
        0x0600..=0x06FF | 0x0750..=0x077F | 0x08A0..=0x08FF => Script::Arabic,
        0x1100..=0x11FF | 0x3040..=0x30FF | 0x3130..=0x318F | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xAC00..=0xD7AF => {
            Script::Cjk
        }
        _ => Script::Other(n >> 7),
    })
}

/// Whether `text` holds letters of more than one script.
fn mixes_scripts(text: &str) -> bool {
    let mut seen = None;
    for s in text.chars().filter_map(script) {
        match seen {
            None => seen = Some(s),
            Some(first) if first != s => return true,
            Some(_) => {}
        }
    }
    false
}

impl PartialEq for Email {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}
impl Eq for Email {}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Email {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Email::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn domain_is_lowercased_and_local_part_kept() {
        let e = Email::parse("  Ada.Lovelace@Example.COM ").unwrap();
        assert_eq!(e.as_str(), "Ada.Lovelace@example.com");
        assert_eq!(e.key(), "ada.lovelace@example.com");
        assert_eq!(e, Email::parse("ADA.LOVELACE@example.com").unwrap());
    }

    #[test]
    fn look_alikes_are_the_same_address_or_refused() {
        let plain = Email::parse("ownerb@acme.test").unwrap();
        assert_eq!(Email::parse("\u{FF4F}wnerb@acme.test").unwrap(), plain, "full-width o is o");
        assert_eq!(Email::parse("ownerb@\u{FF41}cme.test").unwrap(), plain, "full-width a in the domain too");
        for mixed in ["\u{043E}wnerb@acme.test", "ownerb@\u{0430}cme.test", "p\u{03B1}ypal@acme.test"] {
            assert!(Email::parse(mixed).is_err(), "{mixed:?} mixes scripts");
        }
        for whole in [
            "\u{0438}\u{0432}\u{0430}\u{043D}@\u{043F}\u{0440}\u{0438}\u{043C}\u{0435}\u{0440}.test",
            "jos\u{00E9}@acme.test",
            "\u{7530}\u{4E2D}\u{3055}\u{3093}@acme.test",
        ] {
            assert!(Email::parse(whole).is_ok(), "{whole:?} is in one script");
        }
    }

    #[test]
    fn rejects_malformed_addresses() {
        for bad in [
            "",
            "plain",
            "@example.com",
            "a@",
            "a@b",
            "a@@b.com",
            "a b@c.com",
            "a@-b.com",
            "a@b..com",
            ".a@b.com",
            "a.@b.com",
            "a..b@c.com",
            "a@b.com.",
            "<a>@b.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be refused");
        }
        let long_local = format!("{}@example.com", "a".repeat(65));
        assert!(Email::parse(&long_local).is_err());
    }

    fn local() -> impl Strategy<Value = String> {
        "[A-Za-z0-9_+-]{1,20}(\\.[A-Za-z0-9_+-]{1,20}){0,2}"
    }
    fn domain() -> impl Strategy<Value = String> {
        "[A-Za-z0-9]{1,15}(-[A-Za-z0-9]{1,10})?(\\.[A-Za-z]{2,8}){1,3}"
    }

    proptest! {
        #[test]
        fn valid_addresses_parse_and_normalise(l in local(), d in domain(), pad in "[ \t]{0,3}") {
            let input = format!("{pad}{l}@{d}{pad}");
            let e = Email::parse(&input).unwrap();
            prop_assert_eq!(e.as_str(), format!("{l}@{}", d.to_lowercase()));
            prop_assert_eq!(e.domain(), d.to_lowercase());
            // Parsing is idempotent and case does not make a new address.
            let again = Email::parse(e.as_str()).unwrap();
            prop_assert_eq!(again.as_str(), e.as_str());
            prop_assert_eq!(Email::parse(&input.to_uppercase()).unwrap(), e.clone());
            prop_assert_eq!(Email::parse(&input.to_uppercase()).unwrap().key(), e.key());
        }

        #[test]
        fn any_input_either_parses_to_a_wellformed_address_or_is_refused(s in "\\PC{0,80}") {
            if let Ok(e) = Email::parse(&s) {
                let text = e.as_str();
                prop_assert_eq!(text.matches('@').count(), 1);
                prop_assert!(!text.chars().any(char::is_whitespace));
                prop_assert!(text.len() <= MAX_LEN);
                prop_assert_eq!(e.domain(), e.domain().to_lowercase());
            }
        }

        #[test]
        fn without_an_at_nothing_parses(s in "[^@]{0,60}") {
            prop_assert!(Email::parse(&s).is_err());
        }
    }
}
