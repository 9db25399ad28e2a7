//! The user's status and the rules that hang on it.

use crate::roles::string_enum;

string_enum!(
    /// Where a user stands in its lifecycle. Users are never deleted; `anonymized` is the end.
    UserStatus, "status" {
        Invited => "invited",
        Active => "active",
        Suspended => "suspended",
        Deactivated => "deactivated",
        Anonymized => "anonymized",
    }
);

impl UserStatus {
    /// Whether a user in this status may hold a valid session or token.
    pub fn can_sign_in(self) -> bool {
        self == UserStatus::Active
    }

    /// Whether the user may be given new memberships, team roles or invitations.
    pub fn can_receive_roles(self) -> bool {
        matches!(self, UserStatus::Invited | UserStatus::Active | UserStatus::Suspended)
    }
}

string_enum!(
    /// What a user row stands for. Only people sign in, hold seats and are governed; the
    /// placeholder owner holds the orgs whose owner left; a service user is the actor a SCIM
    /// token's changes are attributed to.
    UserKind, "kind" {
        Person => "person",
        Placeholder => "placeholder",
        Service => "service",
    }
);
