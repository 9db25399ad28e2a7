//! Single sign-on rules: which email domains a connection may claim, and which org roles an
//! identity provider's groups grant. The protocols (OpenID Connect, JWT signatures) live in the
//! server; this module only decides.

use std::collections::BTreeMap;

use crate::{DomainError, OrgId, OrgRole};

/// An email domain a connection owns: lower case, dot-separated labels of letters, digits and
/// hyphens, with at least one dot.
pub fn parse_domain(input: &str) -> Result<String, DomainError> {
    let domain = input.trim().trim_start_matches('@').to_ascii_lowercase();
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if domain.len() > 253 || !domain.contains('.') || !domain.split('.').all(label_ok) {
        return Err(DomainError::invalid("domains", format!("{input:?} is not an email domain")));
    }
    Ok(domain)
}

/// How much a role may do, to pick one when several groups map into the same org.
fn rank(role: OrgRole) -> u8 {
    match role {
        OrgRole::Owner => 4,
        OrgRole::Admin => 3,
        OrgRole::Member => 2,
        OrgRole::Accountant => 1,
        OrgRole::Viewer => 0,
    }
}

/// Checks a mapping's role: ownership is never granted by a group.
pub fn mappable_role(role: OrgRole) -> Result<OrgRole, DomainError> {
    if role == OrgRole::Owner {
        return Err(DomainError::invalid("role_mapping", "owner is given only by transferring ownership"));
    }
    Ok(role)
}

/// The role in each org that a user's groups grant through `mapping` (group, org, role): where
/// several groups map into one org, the most capable role wins. Groups compare exactly.
pub fn granted_roles<'a>(
    groups: &[String],
    mapping: impl IntoIterator<Item = (&'a str, OrgId, OrgRole)>,
) -> BTreeMap<OrgId, OrgRole> {
    let mut out: BTreeMap<OrgId, OrgRole> = BTreeMap::new();
    for (group, org, role) in mapping {
        if role == OrgRole::Owner || !groups.iter().any(|g| g == group) {
            continue;
        }
        out.entry(org).and_modify(|r| *r = if rank(role) > rank(*r) { role } else { *r }).or_insert(role);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_lower_case_hostnames() {
        assert_eq!(parse_domain("Acme.Example").unwrap(), "acme.example");
        assert_eq!(parse_domain("@acme.example").unwrap(), "acme.example");
        for bad in ["", "acme", "acme..example", "-acme.example", "ac me.example", "acme.example/x"] {
            assert!(parse_domain(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_most_capable_mapped_role_wins_and_owner_is_never_granted() {
        let (a, b) = (OrgId::new(), OrgId::new());
        let groups = vec!["staff".to_owned(), "leads".to_owned()];
        let mapping = [
            ("staff", a, OrgRole::Viewer),
            ("leads", a, OrgRole::Admin),
            ("staff", b, OrgRole::Owner),
            ("others", b, OrgRole::Member),
        ];
        let granted = granted_roles(&groups, mapping);
        assert_eq!(granted.get(&a), Some(&OrgRole::Admin));
        assert_eq!(granted.get(&b), None);
        assert!(mappable_role(OrgRole::Owner).is_err());
    }
}
