//! Who governs a user: the one rule that every path into a change of a user's identity (email,
//! name, credentials, sessions, tokens, status, roles, schedule) asks before it acts — the API, the
//! pages, SCIM, single sign-on, JWTs, the CLI, the scheduler and access reviews alike. It decides
//! from plain data; loading that data and refusing belong to the callers.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use crate::{DomainError, OrgId, Permission};

/// Who put a user in the deactivation or suspension now in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusSetter {
    /// An instance actor: an admin, the CLI, the scheduler, an access review, an instance-wide
    /// directory.
    Instance,
    /// An org's own directory or identity provider.
    Org(OrgId),
}

impl fmt::Display for StatusSetter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StatusSetter::Instance => f.write_str("instance"),
            StatusSetter::Org(org) => write!(f, "org:{org}"),
        }
    }
}

impl FromStr for StatusSetter {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, DomainError> {
        let bad = || DomainError::invalid("status_by", format!("{s:?} is neither instance nor org:<id>"));
        match s.split_once(':') {
            None if s == "instance" => Ok(StatusSetter::Instance),
            Some(("org", id)) => id.parse().map(StatusSetter::Org).map_err(|_| bad()),
            _ => Err(bad()),
        }
    }
}

/// Who wants to act on a user.
#[derive(Debug, Clone, Copy)]
pub enum Authority<'a> {
    /// An instance actor holding these permissions.
    Instance(&'a BTreeSet<Permission>),
    /// An org's directory (its SCIM tokens) or identity provider (its SSO connections).
    Directory(OrgId),
}

/// What the rule needs to know of the user acted on.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// Whether the user holds any instance role (granting permissions or not).
    pub has_instance_roles: bool,
    /// The permissions the user's instance roles grant.
    pub permissions: &'a BTreeSet<Permission>,
    /// The orgs the user is a member of now, dormant memberships included.
    pub orgs: &'a [OrgId],
    /// Who set the deactivation or suspension in force, if any.
    pub status_by: Option<StatusSetter>,
}

/// How far an authority reaches into a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Governs the user: identity, credentials, sessions, tokens, status and signing in.
    Governs,
    /// Only the user's place in the directory's own org: its teams, and ending the membership.
    PlaceInOrg,
    /// Nothing: the user is outside the directory's org, or outranks the instance actor.
    Nothing,
}

impl Reach {
    /// Whether the user's identity, credentials and status may be changed.
    pub fn governs(self) -> bool {
        self == Reach::Governs
    }
}

/// The permissions an instance-wide SCIM token acts with: those of a directory, no more. A user
/// whose instance roles grant anything beyond them is managed through the API, not a directory.
pub const INSTANCE_DIRECTORY: &[Permission] =
    &[Permission::UsersRead, Permission::UsersWrite, Permission::UsersLifecycle, Permission::SessionsRevoke];

/// Whether an actor holding `actor` may act on someone whose roles grant `target`: only when the
/// actor holds every one of those permissions, so no one acts above their own rights.
pub fn outranks_or_equals(actor: &BTreeSet<Permission>, target: &BTreeSet<Permission>) -> bool {
    target.is_subset(actor)
}

/// How far `authority` reaches into `subject` (API.md, "Who governs a user").
pub fn reach(authority: Authority<'_>, subject: &Subject<'_>) -> Reach {
    match authority {
        Authority::Instance(permissions) => {
            if outranks_or_equals(permissions, subject.permissions) {
                Reach::Governs
            } else {
                Reach::Nothing
            }
        }
        Authority::Directory(org) => {
            if !subject.orgs.contains(&org) {
                return Reach::Nothing;
            }
            let held_elsewhere = subject.has_instance_roles || subject.orgs.iter().any(|o| *o != org);
            let status_from_above = match subject.status_by {
                None => false,
                Some(StatusSetter::Org(by)) => by != org,
                Some(StatusSetter::Instance) => true,
            };
            if held_elsewhere || status_from_above { Reach::PlaceInOrg } else { Reach::Governs }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn subject<'a>(perms: &'a BTreeSet<Permission>, orgs: &'a [OrgId], by: Option<StatusSetter>) -> Subject<'a> {
        Subject { has_instance_roles: !perms.is_empty(), permissions: perms, orgs, status_by: by }
    }

    #[test]
    fn an_org_governs_only_the_people_it_alone_holds() {
        let (a, b) = (OrgId::new(), OrgId::new());
        let none = BTreeSet::new();
        let admin = BTreeSet::from([Permission::InstanceManage]);
        let only_a = [a];
        assert_eq!(reach(Authority::Directory(a), &subject(&none, &only_a, None)), Reach::Governs);
        let own = Some(StatusSetter::Org(a));
        assert_eq!(reach(Authority::Directory(a), &subject(&none, &only_a, own)), Reach::Governs);
        for by in [Some(StatusSetter::Instance), Some(StatusSetter::Org(b))] {
            assert_eq!(reach(Authority::Directory(a), &subject(&none, &only_a, by)), Reach::PlaceInOrg);
        }
        assert_eq!(reach(Authority::Directory(a), &subject(&admin, &only_a, None)), Reach::PlaceInOrg);
        let roleless = Subject { has_instance_roles: true, ..subject(&none, &only_a, None) };
        assert_eq!(reach(Authority::Directory(a), &roleless), Reach::PlaceInOrg, "a role granting nothing counts");
        assert_eq!(reach(Authority::Directory(a), &subject(&none, &[a, b], None)), Reach::PlaceInOrg);
        assert_eq!(reach(Authority::Directory(a), &subject(&none, &[b], None)), Reach::Nothing);
        assert_eq!(reach(Authority::Directory(a), &subject(&none, &[], None)), Reach::Nothing);
    }

    #[test]
    fn no_one_acts_above_their_own_rights() {
        let all: BTreeSet<Permission> = Permission::ALL.iter().copied().collect();
        let narrow = BTreeSet::from([Permission::UsersWrite, Permission::UsersLifecycle]);
        assert_eq!(reach(Authority::Instance(&narrow), &subject(&all, &[], None)), Reach::Nothing);
        assert_eq!(reach(Authority::Instance(&all), &subject(&narrow, &[], None)), Reach::Governs);
        assert_eq!(reach(Authority::Instance(&narrow), &subject(&narrow, &[], None)), Reach::Governs);
        let directory: BTreeSet<Permission> = INSTANCE_DIRECTORY.iter().copied().collect();
        assert_eq!(reach(Authority::Instance(&directory), &subject(&all, &[], None)), Reach::Nothing);
    }

    #[test]
    fn who_set_a_status_reads_back_as_written() {
        for by in [StatusSetter::Instance, StatusSetter::Org(OrgId::new())] {
            assert_eq!(by.to_string().parse::<StatusSetter>().unwrap(), by);
        }
        assert!("org:nope".parse::<StatusSetter>().is_err());
        assert!("someone".parse::<StatusSetter>().is_err());
    }

    fn permission_set() -> impl Strategy<Value = BTreeSet<Permission>> {
        proptest::collection::btree_set(proptest::sample::select(Permission::ALL), 0..Permission::ALL.len())
    }

    proptest! {
        /// A directory reaches only its members, and governs none held by anyone else.
        #[test]
        fn a_directory_never_governs_what_another_holds(
            perms in permission_set(),
            roles in any::<bool>(),
            in_a in any::<bool>(),
            others in 0usize..3,
            by in 0u8..4,
        ) {
            let a = OrgId::new();
            let mut orgs: Vec<OrgId> = (0..others).map(|_| OrgId::new()).collect();
            if in_a { orgs.push(a); }
            let status_by = match by {
                0 => None,
                1 => Some(StatusSetter::Instance),
                2 => Some(StatusSetter::Org(a)),
                _ => Some(StatusSetter::Org(OrgId::new())),
            };
            let s = Subject { has_instance_roles: roles || !perms.is_empty(), permissions: &perms, orgs: &orgs, status_by };
            let r = reach(Authority::Directory(a), &s);
            prop_assert_eq!(r == Reach::Nothing, !in_a);
            let alone = in_a && others == 0 && !s.has_instance_roles && by != 1 && by != 3;
            prop_assert_eq!(r.governs(), alone);
        }

        /// An instance actor governs exactly the users whose permissions it holds all of.
        #[test]
        fn an_instance_actor_governs_only_its_equals_and_below(actor in permission_set(), target in permission_set()) {
            let s = Subject { has_instance_roles: !target.is_empty(), permissions: &target, orgs: &[], status_by: None };
            prop_assert_eq!(reach(Authority::Instance(&actor), &s).governs(), target.iter().all(|p| actor.contains(p)));
        }
    }
}
