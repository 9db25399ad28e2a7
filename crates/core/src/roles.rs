//! Roles and what they allow: org roles, team roles, and instance roles as permission sets.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::DomainError;

macro_rules! string_enum {
    ($(#[$doc:meta])* $name:ident, $field:literal { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, ::serde::Serialize, ::serde::Deserialize)]
        pub enum $name {
            $(
                #[doc = concat!("`", $text, "`")]
                #[serde(rename = $text)]
                $variant,
            )+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The wire and storage spelling.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::DomainError;
            fn from_str(s: &str) -> Result<Self, $crate::DomainError> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err($crate::DomainError::invalid(
                        $field,
                        format!("must be one of: {}", [$($text),+].join(", ")),
                    )),
                }
            }
        }
    };
}
pub(crate) use string_enum;

string_enum!(
    /// A user's role in an organization. Exactly one member of each org is its `owner`.
    OrgRole, "role" {
        Owner => "owner",
        Admin => "admin",
        Member => "member",
        Accountant => "accountant",
        Viewer => "viewer",
    }
);

string_enum!(
    /// A user's role in a team.
    TeamRole, "role" {
        TeamAdmin => "team_admin",
        TeamMember => "team_member",
        TeamOperator => "team_operator",
        TeamViewer => "team_viewer",
    }
);

string_enum!(
    /// Something an org member may do; `check` answers for these.
    OrgAction, "action" {
        AssetRead => "asset.read",
        AssetWrite => "asset.write",
        ScenarioRun => "scenario.run",
        MemberInvite => "member.invite",
        OrgManage => "org.manage",
        UsageRead => "usage.read",
    }
);

string_enum!(
    /// An instance-level permission; instance roles are named sets of these.
    Permission, "permission" {
        UsersRead => "users.read",
        UsersWrite => "users.write",
        UsersLifecycle => "users.lifecycle",
        UsersImpersonate => "users.impersonate",
        SessionsRevoke => "sessions.revoke",
        OrgsRead => "orgs.read",
        OrgsWrite => "orgs.write",
        OrgsLifecycle => "orgs.lifecycle",
        LicensesWrite => "licenses.write",
        UsageWrite => "usage.write",
        AuditRead => "audit.read",
        ReviewsManage => "reviews.manage",
        InstanceManage => "instance.manage",
        RolesManage => "roles.manage",
        WebhooksManage => "webhooks.manage",
        ScimManage => "scim.manage",
    }
);

string_enum!(
    /// What an API token was created for beyond acting as its user. Without the scope a token
    /// cannot start Login as user or create SCIM tokens, whatever its user's roles grant: a
    /// credential that leaks then leaks no more than reading and writing as its user.
    TokenScope, "scopes" {
        Impersonate => "users.impersonate",
        ScimTokens => "scim_tokens.create",
    }
);

impl TokenScope {
    /// The permission the token's user must hold to create a token with this scope.
    pub fn permission(self) -> Permission {
        match self {
            TokenScope::Impersonate => Permission::UsersImpersonate,
            TokenScope::ScimTokens => Permission::ScimManage,
        }
    }
}

impl OrgRole {
    /// Whether this role may perform `action` in its org (license and status are checked apart).
    pub fn allows(self, action: OrgAction) -> bool {
        use OrgAction::*;
        use OrgRole::*;
        match action {
            AssetRead => true,
            AssetWrite | ScenarioRun => matches!(self, Owner | Admin | Member),
            MemberInvite | OrgManage => matches!(self, Owner | Admin),
            UsageRead => matches!(self, Owner | Admin | Accountant),
        }
    }
}

/// The name of an instance role: a built-in one or one an operator defined.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct InstanceRole(String);

/// The instance roles every Steward has, with their permissions; they cannot be changed.
pub const BUILTIN_ROLES: &[(&str, &[Permission])] = {
    use Permission::*;
    &[
        (
            "system_admin",
            &[
                UsersRead,
                UsersWrite,
                UsersLifecycle,
                UsersImpersonate,
                SessionsRevoke,
                OrgsRead,
                OrgsWrite,
                OrgsLifecycle,
                LicensesWrite,
                UsageWrite,
                AuditRead,
                ReviewsManage,
                InstanceManage,
                RolesManage,
                WebhooksManage,
                ScimManage,
            ],
        ),
        (
            "admin",
            &[
                UsersRead,
                UsersWrite,
                UsersLifecycle,
                SessionsRevoke,
                OrgsRead,
                OrgsWrite,
                OrgsLifecycle,
                LicensesWrite,
                UsageWrite,
                AuditRead,
                ReviewsManage,
                WebhooksManage,
                ScimManage,
            ],
        ),
        ("support", &[UsersRead, UsersImpersonate, SessionsRevoke, OrgsRead, AuditRead]),
        ("billing", &[UsersRead, OrgsRead, LicensesWrite, UsageWrite]),
        ("viewer", &[UsersRead, OrgsRead, AuditRead]),
    ]
};

impl InstanceRole {
    /// The built-in role that holds every permission.
    pub fn system_admin() -> Self {
        Self("system_admin".into())
    }

    /// A role name is 1 to 64 characters of lower-case letters, digits and `_`, starting with a letter.
    pub fn parse(input: &str) -> Result<Self, DomainError> {
        let ok = (1..=64).contains(&input.len())
            && input.starts_with(|c: char| c.is_ascii_lowercase())
            && input.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if ok {
            Ok(Self(input.to_owned()))
        } else {
            Err(DomainError::invalid(
                "instance_roles",
                format!("{input:?} is not a role name (lower-case letters, digits and _)"),
            ))
        }
    }

    /// The role's name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The permissions of a built-in role, or `None` for a role an operator defined.
    pub fn builtin_permissions(&self) -> Option<&'static [Permission]> {
        BUILTIN_ROLES.iter().find(|(name, _)| *name == self.0).map(|(_, p)| *p)
    }

    /// Whether this is one of the built-in roles.
    pub fn is_builtin(&self) -> bool {
        self.builtin_permissions().is_some()
    }
}

impl<'de> Deserialize<'de> for InstanceRole {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        InstanceRole::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for InstanceRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The union of the permissions of `roles`; unknown role names grant nothing.
pub fn permissions_of<'a>(roles: impl IntoIterator<Item = &'a InstanceRole>) -> BTreeSet<Permission> {
    roles.into_iter().filter_map(InstanceRole::builtin_permissions).flat_map(|p| p.iter().copied()).collect()
}

/// Every instance role the instance knows: the built-in ones and those operators defined, so
/// that a user's roles resolve to permissions. A role name it does not know grants nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleBook {
    custom: BTreeMap<String, BTreeSet<Permission>>,
}

impl RoleBook {
    /// The built-in roles and these operator-defined ones (a built-in name among them is ignored).
    pub fn new(custom: impl IntoIterator<Item = (String, BTreeSet<Permission>)>) -> Self {
        let custom =
            custom.into_iter().filter(|(name, _)| !BUILTIN_ROLES.iter().any(|(builtin, _)| builtin == name)).collect();
        RoleBook { custom }
    }

    /// The permissions of `role`, or `None` when no such role exists.
    pub fn permissions(&self, role: &InstanceRole) -> Option<BTreeSet<Permission>> {
        match role.builtin_permissions() {
            Some(p) => Some(p.iter().copied().collect()),
            None => self.custom.get(role.as_str()).cloned(),
        }
    }

    /// Whether `role` exists.
    pub fn exists(&self, role: &InstanceRole) -> bool {
        role.is_builtin() || self.custom.contains_key(role.as_str())
    }

    /// The union of the permissions of `roles`.
    pub fn permissions_of<'a>(&self, roles: impl IntoIterator<Item = &'a InstanceRole>) -> BTreeSet<Permission> {
        roles.into_iter().filter_map(|r| self.permissions(r)).flatten().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn org_rights_follow_the_contract() {
        assert!(OrgRole::Viewer.allows(OrgAction::AssetRead));
        assert!(!OrgRole::Viewer.allows(OrgAction::AssetWrite));
        assert!(OrgRole::Member.allows(OrgAction::ScenarioRun));
        assert!(!OrgRole::Member.allows(OrgAction::MemberInvite));
        assert!(OrgRole::Admin.allows(OrgAction::OrgManage));
        assert!(OrgRole::Accountant.allows(OrgAction::UsageRead));
        assert!(!OrgRole::Member.allows(OrgAction::UsageRead));
    }

    #[test]
    fn system_admin_holds_every_permission_and_support_cannot_write() {
        let all = permissions_of([&InstanceRole::system_admin()]);
        assert_eq!(all.len(), Permission::ALL.len());
        let support = permissions_of([&InstanceRole::parse("support").unwrap()]);
        assert!(support.contains(&Permission::UsersImpersonate));
        assert!(!support.contains(&Permission::UsersWrite));
        assert!(permissions_of([&InstanceRole::parse("custom_x").unwrap()]).is_empty());
    }

    #[test]
    fn the_role_book_resolves_custom_roles_and_keeps_built_ins_fixed() {
        let book = RoleBook::new([
            ("helpdesk".to_owned(), BTreeSet::from([Permission::UsersRead, Permission::SessionsRevoke])),
            ("viewer".to_owned(), BTreeSet::from([Permission::InstanceManage])),
        ]);
        let helpdesk = InstanceRole::parse("helpdesk").unwrap();
        let viewer = InstanceRole::parse("viewer").unwrap();
        let ghost = InstanceRole::parse("ghost").unwrap();
        assert!(book.exists(&helpdesk) && book.exists(&viewer) && !book.exists(&ghost));
        assert_eq!(book.permissions_of([&helpdesk, &ghost]).len(), 2);
        assert!(!book.permissions_of([&viewer]).contains(&Permission::InstanceManage));
        assert_eq!(book.permissions_of([&viewer]), permissions_of([&viewer]));
    }

    #[test]
    fn role_names_are_checked() {
        assert!(InstanceRole::parse("Admin").is_err());
        assert!(InstanceRole::parse("").is_err());
        assert!("owner".parse::<OrgRole>().is_ok());
        assert!("boss".parse::<OrgRole>().is_err());
    }
}
