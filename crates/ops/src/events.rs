//! The webhook event types, and which audit event is published as which.

/// A change the operator's product may subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    UserCreated,
    UserActivated,
    UserDeactivated,
    UserReactivated,
    UserSuspended,
    UserUnsuspended,
    UserAnonymized,
    OrgCreated,
    OrgDeprovisioned,
    OrgRestored,
    OrgPurged,
    OrgFrozen,
    OrgUnfrozen,
    OrgOwnershipTransferred,
    MembershipAdded,
    MembershipChanged,
    MembershipRemoved,
    LicenseUpdated,
    UsageThresholdReached,
}

impl EventType {
    /// Every type, in the order the contract lists them.
    pub const ALL: [EventType; 19] = [
        EventType::UserCreated,
        EventType::UserActivated,
        EventType::UserDeactivated,
        EventType::UserReactivated,
        EventType::UserSuspended,
        EventType::UserUnsuspended,
        EventType::UserAnonymized,
        EventType::OrgCreated,
        EventType::OrgDeprovisioned,
        EventType::OrgRestored,
        EventType::OrgPurged,
        EventType::OrgFrozen,
        EventType::OrgUnfrozen,
        EventType::OrgOwnershipTransferred,
        EventType::MembershipAdded,
        EventType::MembershipChanged,
        EventType::MembershipRemoved,
        EventType::LicenseUpdated,
        EventType::UsageThresholdReached,
    ];

    /// The name subscribers see in `type` and subscribe by.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::UserCreated => "user.created",
            EventType::UserActivated => "user.activated",
            EventType::UserDeactivated => "user.deactivated",
            EventType::UserReactivated => "user.reactivated",
            EventType::UserSuspended => "user.suspended",
            EventType::UserUnsuspended => "user.unsuspended",
            EventType::UserAnonymized => "user.anonymized",
            EventType::OrgCreated => "org.created",
            EventType::OrgDeprovisioned => "org.deprovisioned",
            EventType::OrgRestored => "org.restored",
            EventType::OrgPurged => "org.purged",
            EventType::OrgFrozen => "org.frozen",
            EventType::OrgUnfrozen => "org.unfrozen",
            EventType::OrgOwnershipTransferred => "org.ownership_transferred",
            EventType::MembershipAdded => "membership.added",
            EventType::MembershipChanged => "membership.changed",
            EventType::MembershipRemoved => "membership.removed",
            EventType::LicenseUpdated => "license.updated",
            EventType::UsageThresholdReached => "usage.threshold_reached",
        }
    }

    /// The type an audit event of `kind` is published as, if it is published. Most keep their
    /// audit name; memberships, licenses and thresholds have names of their own.
    pub fn of_audit(kind: &str) -> Option<EventType> {
        Some(match kind {
            "org.member_added" => EventType::MembershipAdded,
            "org.member_role_changed" => EventType::MembershipChanged,
            "org.member_removed" => EventType::MembershipRemoved,
            "org.license_changed" => EventType::LicenseUpdated,
            "usage.threshold_crossed" => EventType::UsageThresholdReached,
            other => return Self::parse(other).filter(|t| t.keeps_audit_name()),
        })
    }

    /// The type named `name`.
    pub fn parse(name: &str) -> Option<EventType> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }

    fn keeps_audit_name(self) -> bool {
        !matches!(
            self,
            EventType::MembershipAdded
                | EventType::MembershipChanged
                | EventType::MembershipRemoved
                | EventType::LicenseUpdated
                | EventType::UsageThresholdReached
        )
    }
}

#[cfg(test)]
mod tests {
    use super::EventType;

    #[test]
    fn each_type_is_named_once_and_parses_back() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
        }
        let mut names: Vec<_> = EventType::ALL.iter().map(|t| t.as_str()).collect();
        names.dedup();
        assert_eq!(names.len(), EventType::ALL.len());
    }

    #[test]
    fn audit_events_are_published_under_their_contract_names() {
        assert_eq!(EventType::of_audit("user.deactivated"), Some(EventType::UserDeactivated));
        assert_eq!(EventType::of_audit("org.member_added"), Some(EventType::MembershipAdded));
        assert_eq!(EventType::of_audit("usage.threshold_crossed"), Some(EventType::UsageThresholdReached));
        // A contract name that is not an audit name is not published from an audit event of it.
        assert_eq!(EventType::of_audit("membership.added"), None);
        assert_eq!(EventType::of_audit("user.password_changed"), None);
    }
}
