//! Display names with length bounds: a person's, an org's and a team's.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::DomainError;

macro_rules! bounded_name {
    ($(#[$doc:meta])* $name:ident, $field:literal, $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The longest name accepted, in characters.
            pub const MAX_CHARS: usize = $max;

            /// Trims the input and checks it is 1 to `MAX_CHARS` characters with no control characters.
            pub fn parse(input: &str) -> Result<Self, DomainError> {
                let s = input.trim();
                if s.is_empty() {
                    return Err(DomainError::invalid($field, "must not be empty"));
                }
                if s.chars().count() > Self::MAX_CHARS {
                    return Err(DomainError::invalid(
                        $field,
                        format!("must be at most {} characters", Self::MAX_CHARS),
                    ));
                }
                if s.chars().any(char::is_control) {
                    return Err(DomainError::invalid($field, "must not contain control characters"));
                }
                Ok(Self(s.to_owned()))
            }

            /// The name as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                $name::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

bounded_name!(
    /// A person's name as shown in lists and emails.
    PersonName, "name", 200
);
bounded_name!(
    /// An organization's name; also what a purge must be confirmed with.
    OrgName, "name", 200
);
bounded_name!(
    /// A team's name, unique within its org.
    TeamName, "name", 100
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(OrgName::parse("  Acme  ").unwrap().as_str(), "Acme");
        assert!(OrgName::parse("   ").is_err());
        assert!(TeamName::parse(&"x".repeat(101)).is_err());
        assert!(TeamName::parse(&"é".repeat(100)).is_ok());
        assert!(PersonName::parse("Ada\u{0}").is_err());
    }
}
